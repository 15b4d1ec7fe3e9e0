//! A custom rule that Vault's `bound_claims` cannot express, as a template for plugin authors:
//!
//! - the container image must carry a signature by **one of a set of key ids**
//!   (`submods.container.image_signatures[].key_id`), which is a question about a list of
//!   objects, not about one claim's value; and
//! - the token must be checked **inside a time window** (say, the term of the collaboration
//!   agreement), measured with the host's verification time so the decision can be reproduced.

use attestgate_plugin_sdk::{
    export_policy, rules, AudienceRequest, Claims, Context, Policy, Report, Verdict,
};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    audience: String,
    /// Key ids (as Confidential Space reports them) whose signatures are trusted.
    trusted_key_ids: Vec<String>,
    /// Unix seconds; the window is [not_before, not_after].
    not_before: i64,
    not_after: i64,
    #[serde(default)]
    vault_role: Option<String>,
}

struct SignedImageWindow;

impl Policy for SignedImageWindow {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        if config.trusted_key_ids.is_empty() {
            return Err("trusted_key_ids is empty, so no image could ever pass".into());
        }
        if config.not_before >= config.not_after {
            return Err(format!(
                "the window is empty: not_before {} is not before not_after {}",
                config.not_before, config.not_after
            ));
        }
        Ok(())
    }

    fn audience(ctx: &Context<Config>) -> Result<AudienceRequest, String> {
        Ok(AudienceRequest::oidc(&ctx.config.audience))
    }

    fn evaluate(ctx: &Context<Config>, claims: &Claims<'_>) -> Verdict {
        let config = &ctx.config;
        let mut report = Report::new();
        report.add(rules::production_only(claims));

        let now = ctx.verification_time;
        if now < config.not_before {
            report.fail(
                None,
                format!(
                    "checked at {now}, before the agreed window opens at {}",
                    config.not_before
                ),
            );
        } else if now > config.not_after {
            report.fail(
                None,
                format!(
                    "checked at {now}, after the agreed window closed at {}",
                    config.not_after
                ),
            );
        } else {
            report.pass(None, format!("checked at {now}, inside the agreed window"));
        }

        let signers: Vec<&str> = claims
            .image_signatures()
            .iter()
            .filter_map(|s| s.key_id)
            .collect();
        const KEY: &str = "/submods/container/image_signatures";
        match signers
            .iter()
            .find(|id| config.trusted_key_ids.iter().any(|t| t == *id))
        {
            Some(id) => report.pass(Some(KEY), format!("image signed by trusted key {id}")),
            None if signers.is_empty() => report.fail(Some(KEY), "the image carries no signatures"),
            None => report.fail(
                Some(KEY),
                format!("image signed only by untrusted keys {signers:?}"),
            ),
        };

        if let Some(role) = &config.vault_role {
            report.role(role);
        }
        report.verdict()
    }
}

export_policy!(SignedImageWindow);

#[cfg(test)]
mod tests {
    use super::*;
    use attestgate_plugin_sdk::testing::{self, failed_claims};
    use attestgate_plugin_sdk::UnixSeconds;
    use serde_json::{json, Value};

    const AUDIENCE: &str = "https://vault.bank-a.example";
    const OPENS: UnixSeconds = 1_900_000_000;
    const CLOSES: UnixSeconds = 1_930_000_000;
    const INSIDE: UnixSeconds = 1_910_000_000;
    const SIGNATURES: &str = "/submods/container/image_signatures";

    fn config() -> Value {
        json!({
            "audience": AUDIENCE, "trusted_key_ids": ["kid-1"],
            "not_before": OPENS, "not_after": CLOSES, "vault_role": "signed-analytics"
        })
    }

    /// Production claims of an image signed by `key_ids`, as Confidential Space reports them.
    fn signed_by(key_ids: &[&str], verification_time: UnixSeconds) -> Value {
        let mut claims = testing::production_claims(AUDIENCE, verification_time);
        let signatures: Vec<Value> = key_ids
            .iter()
            .map(|id| json!({"key_id": id, "signature": "c2lnbmF0dXJl", "signature_algorithm": "ECDSA_P256_SHA256"}))
            .collect();
        claims["submods"]["container"]["image_signatures"] = json!(signatures);
        claims
    }

    fn evaluate(claims: &Value, verification_time: UnixSeconds) -> Verdict {
        testing::evaluate::<SignedImageWindow>(&config(), claims, verification_time).unwrap()
    }

    #[test]
    fn a_trusted_signature_inside_the_window_is_allowed() {
        let verdict = evaluate(&signed_by(&["kid-9", "kid-1"], INSIDE), INSIDE);
        assert!(verdict.allow, "{:?}", verdict.reasons);
        assert_eq!(verdict.login.role.as_deref(), Some("signed-analytics"));
        assert!(verdict
            .reasons
            .iter()
            .any(|r| r.message == "image signed by trusted key kid-1"));
    }

    #[test]
    fn the_window_is_judged_at_the_verification_time() {
        for at in [OPENS, CLOSES] {
            assert!(evaluate(&signed_by(&["kid-1"], at), at).allow, "{at}");
        }
        for (at, expected) in [
            (OPENS - 1, "before the agreed window opens"),
            (CLOSES + 1, "after the agreed window closed"),
        ] {
            let verdict = evaluate(&signed_by(&["kid-1"], at), at);
            assert_eq!(failed_claims(&verdict), vec![None], "{at}");
            assert!(
                verdict.reasons.iter().any(|r| r.message.contains(expected)),
                "{at}: {:?}",
                verdict.reasons
            );
        }
    }

    #[test]
    fn an_untrusted_or_missing_signature_is_denied() {
        let verdict = evaluate(&signed_by(&["kid-9"], INSIDE), INSIDE);
        assert_eq!(failed_claims(&verdict), vec![Some(SIGNATURES)]);
        assert!(verdict
            .reasons
            .iter()
            .any(|r| r.message.contains("untrusted keys [\"kid-9\"]")));

        let unsigned = testing::production_claims(AUDIENCE, INSIDE);
        let verdict = evaluate(&unsigned, INSIDE);
        assert_eq!(failed_claims(&verdict), vec![Some(SIGNATURES)]);
        assert!(verdict
            .reasons
            .iter()
            .any(|r| r.message == "the image carries no signatures"));
    }

    #[test]
    fn a_debug_image_is_denied() {
        let mut claims = signed_by(&["kid-1"], INSIDE);
        claims["dbgstat"] = json!("enabled");
        assert_eq!(
            failed_claims(&evaluate(&claims, INSIDE)),
            vec![Some("/dbgstat")]
        );
    }

    #[test]
    fn configuration_mistakes_are_refused_at_load() {
        let mut no_keys = config();
        no_keys["trusted_key_ids"] = json!([]);
        let mut empty_window = config();
        empty_window["not_after"] = json!(OPENS);
        let mut misspelled = config();
        misspelled["trusted_keys"] = json!(["kid-1"]);
        for (config, expected) in [
            (no_keys, "trusted_key_ids is empty"),
            (empty_window, "the window is empty"),
            (misspelled, "unknown field `trusted_keys`"),
        ] {
            let err = testing::validate_config::<SignedImageWindow>(&config).unwrap_err();
            assert!(err.contains(expected), "{config}: {err}");
        }
        assert_eq!(
            testing::validate_config::<SignedImageWindow>(&config()),
            Ok(())
        );
    }

    #[test]
    fn the_token_is_minted_for_the_configured_audience() {
        let request = testing::select_audience::<SignedImageWindow>(&config()).unwrap();
        assert_eq!(request, AudienceRequest::oidc(AUDIENCE));
    }
}
