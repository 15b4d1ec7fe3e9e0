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
