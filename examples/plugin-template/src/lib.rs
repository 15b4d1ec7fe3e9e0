use attestgate_plugin_sdk::{
    export_policy, rules, AudienceRequest, Claims, Context, Policy, Report, Verdict,
};
use serde::Deserialize;

/// This collaborator's rules, from `plugin_config` in attestgate.toml.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    audience: String,
    projects: Vec<String>,
    image_digests: Vec<String>,
}

struct OurRules;

impl Policy for OurRules {
    type Config = Config;

    fn audience(ctx: &Context<Config>) -> Result<AudienceRequest, String> {
        Ok(AudienceRequest::oidc(&ctx.config.audience))
    }

    fn evaluate(ctx: &Context<Config>, claims: &Claims<'_>) -> Verdict {
        let mut report = Report::new();
        report.add(rules::production_only(claims));
        report.add(rules::support_attribute(claims, "STABLE"));
        report.add(rules::one_of(
            claims,
            "/submods/gce/project_id",
            &ctx.config.projects,
        ));
        report.add(rules::one_of(
            claims,
            "/submods/container/image_digest",
            &ctx.config.image_digests,
        ));
        report.verdict()
    }
}

export_policy!(OurRules);

// Natively, with no wasm: `cargo test`. In this repository, plugins/.cargo/config.toml makes
// wasm32-wasip2 the default target, so name the host's:
// `cargo test --target "$(rustc -vV | sed -n 's/^host: //p')"`.
#[cfg(test)]
mod tests {
    use super::*;
    use attestgate_plugin_sdk::testing::{self, failed_claims, IMAGE_DIGEST, PROJECT_ID};
    use attestgate_plugin_sdk::UnixSeconds;
    use serde_json::{json, Value};

    const AUDIENCE: &str = "https://vault.bank-a.example";
    const NOW: UnixSeconds = 1_900_000_000;

    fn config() -> Value {
        json!({"audience": AUDIENCE, "projects": [PROJECT_ID], "image_digests": [IMAGE_DIGEST]})
    }

    fn evaluate(claims: &Value) -> Verdict {
        testing::evaluate::<OurRules>(&config(), claims, NOW).unwrap()
    }

    #[test]
    fn a_production_workload_is_allowed() {
        let verdict = evaluate(&testing::production_claims(AUDIENCE, NOW));
        assert!(verdict.allow, "{:?}", verdict.reasons);
        assert_eq!(verdict.reasons.len(), 4);
    }

    #[test]
    fn each_rule_denies_when_its_claim_changes() {
        let other_digest = format!("sha256:{}", "0".repeat(64));
        let cases = [
            ("/dbgstat", json!("enabled")),
            (
                "/submods/confidential_space/support_attributes",
                json!(["USABLE"]),
            ),
            ("/submods/gce/project_id", json!("attacker-project")),
            ("/submods/container/image_digest", json!(other_digest)),
        ];
        for (claim, value) in cases {
            let mut claims = testing::production_claims(AUDIENCE, NOW);
            *claims.pointer_mut(claim).unwrap() = value;
            let verdict = evaluate(&claims);
            assert!(!verdict.allow, "{claim}");
            assert_eq!(failed_claims(&verdict), vec![Some(claim)]);
        }
    }

    #[test]
    fn a_misspelled_or_missing_setting_is_refused() {
        let misspelled =
            json!({"audience": AUDIENCE, "project": [PROJECT_ID], "image_digests": []});
        let err = testing::validate_config::<OurRules>(&misspelled).unwrap_err();
        assert!(err.contains("unknown field `project`"), "{err}");
        let err = testing::validate_config::<OurRules>(&json!({"audience": AUDIENCE})).unwrap_err();
        assert!(err.contains("missing field `projects`"), "{err}");
        assert_eq!(testing::validate_config::<OurRules>(&config()), Ok(()));
    }

    #[test]
    fn the_token_is_minted_for_the_configured_audience() {
        let request = testing::select_audience::<OurRules>(&config()).unwrap();
        assert_eq!(request, AudienceRequest::oidc(AUDIENCE));
    }
}
