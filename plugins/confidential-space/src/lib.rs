//! The rules a careful collaborator wants of a Confidential Space workload, each configurable.
//! An absent list means no restriction; every other rule is on unless switched off.

use attestgate_plugin_sdk::{
    export_policy, log, rules, AudienceRequest, Claims, Context, LogLevel, Policy, Report, Verdict,
};
// The configuration's schema is shared with `attestgate vault role --from-plugin-config`, which
// turns it into the Vault role that enforces the same rules.
use attestgate_vault_role::rules::ConfidentialSpaceRules as Config;

struct ConfidentialSpace;

impl Policy for ConfidentialSpace {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        if config.audience.trim().is_empty() {
            return Err("\"audience\" must be this collaborator's own audience, not empty".into());
        }
        if let Some(digest) = config
            .image_digests
            .iter()
            .flatten()
            .find(|d| !rules::is_sha256_digest(d))
        {
            return Err(format!(
                "image digest {digest:?} is not sha256:<64 lowercase hex> (check for stray spaces)"
            ));
        }
        if let Some(min) = &config.min_swversion {
            if min.trim().parse::<u64>().is_err() {
                return Err(format!(
                    "min_swversion {min:?} is not a number like \"260600\""
                ));
            }
        }
        if config.support_attribute.as_deref() == Some("LATEST") {
            log(LogLevel::Warn, "support_attribute LATEST drops off about a month after release; long-running workloads will start failing. Prefer STABLE.");
        }
        Ok(())
    }

    fn audience(ctx: &Context<Config>) -> Result<AudienceRequest, String> {
        let mut request = AudienceRequest::oidc(&ctx.config.audience);
        request.nonces = ctx.config.nonces.clone();
        Ok(request)
    }

    fn evaluate(ctx: &Context<Config>, claims: &Claims<'_>) -> Verdict {
        let config = &ctx.config;
        let mut report = Report::new();
        if config.require_production {
            report.add(rules::production_only(claims));
        }
        if let Some(attribute) = &config.support_attribute {
            report.add(rules::support_attribute(claims, attribute));
        }
        let lists = [
            ("hwmodel", &config.hwmodels),
            ("swname", &config.swnames),
            ("/submods/container/image_digest", &config.image_digests),
            ("/submods/gce/project_id", &config.projects),
            ("google_service_accounts", &config.service_accounts),
        ];
        for (key, allowed) in lists {
            if let Some(allowed) = allowed {
                report.add(rules::one_of(claims, key, allowed));
            }
        }
        if let Some(minimum) = &config.min_swversion {
            report.add(rules::min_swversion(claims, minimum));
        }
        if config.require_tdx_uptodate {
            report.add(rules::tdx_up_to_date(claims));
        }
        if config.require_memory_monitoring_disabled {
            report.add(rules::memory_monitoring_disabled(claims));
        }
        if let Some(role) = &config.vault_role {
            report.role(role);
        }
        report.verdict()
    }
}

export_policy!(ConfidentialSpace);

#[cfg(test)]
mod tests {
    use super::*;
    use attestgate_plugin_sdk::testing::{
        self, failed_claims, IMAGE_DIGEST, PROJECT_ID, SERVICE_ACCOUNT,
    };
    use attestgate_plugin_sdk::{Login, UnixSeconds};
    use serde_json::{json, Value};

    const AUDIENCE: &str = "https://vault.bank-a.example";
    const NOW: UnixSeconds = 1_900_000_000;

    /// Every rule switched on, each allowing the production claims.
    fn strict() -> Value {
        json!({
            "audience": AUDIENCE,
            "vault_role": "analytics",
            "hwmodels": ["GCP_AMD_SEV", "GCP_INTEL_TDX"],
            "swnames": ["CONFIDENTIAL_SPACE"],
            "image_digests": [IMAGE_DIGEST],
            "projects": [PROJECT_ID],
            "service_accounts": [SERVICE_ACCOUNT],
            "min_swversion": "260600",
            "require_tdx_uptodate": true,
            "require_memory_monitoring_disabled": true
        })
    }

    fn evaluate(config: &Value, claims: &Value) -> Verdict {
        testing::evaluate::<ConfidentialSpace>(config, claims, NOW).unwrap()
    }

    fn production() -> Value {
        testing::production_claims(AUDIENCE, NOW)
    }

    #[test]
    fn a_production_workload_passes_every_rule_and_gets_its_role() {
        let verdict = evaluate(&strict(), &production());
        assert!(verdict.allow, "{:?}", verdict.reasons);
        assert_eq!(verdict.reasons.len(), 10);
        assert_eq!(
            verdict.login,
            Login {
                role: Some("analytics".into())
            }
        );
    }

    #[test]
    fn each_rule_denies_when_its_claim_changes() {
        let cases = [
            ("/dbgstat", json!("enabled")),
            (
                "/submods/confidential_space/support_attributes",
                json!(["USABLE"]),
            ),
            ("/hwmodel", json!("GCP_SHIELDED_VM")),
            ("/swname", json!("GCE")),
            (
                "/submods/container/image_digest",
                json!(format!("sha256:{}", "0".repeat(64))),
            ),
            ("/submods/gce/project_id", json!("attacker-project")),
            (
                "/google_service_accounts",
                json!(["attacker@attacker-project.iam.gserviceaccount.com"]),
            ),
            ("/swversion", json!(["250100"])),
            ("/tdx/gcp_attester_tcb_status", json!("OutOfDate")),
            (
                "/submods/confidential_space/monitoring_enabled/memory",
                json!(true),
            ),
        ];
        for (claim, value) in cases {
            let mut claims = production();
            *claims.pointer_mut(claim).unwrap() = value;
            let verdict = evaluate(&strict(), &claims);
            assert!(!verdict.allow, "{claim}");
            assert_eq!(failed_claims(&verdict), vec![Some(claim)]);
        }
    }

    #[test]
    fn a_debug_image_fails_production_and_support() {
        let mut claims = production();
        claims["dbgstat"] = json!("enabled");
        // Debug images carry no support attributes at all.
        claims["submods"]["confidential_space"]
            .as_object_mut()
            .unwrap()
            .remove("support_attributes");
        let verdict = evaluate(&json!({"audience": AUDIENCE}), &claims);
        assert_eq!(
            failed_claims(&verdict),
            vec![
                Some("/dbgstat"),
                Some("/submods/confidential_space/support_attributes")
            ]
        );
        assert!(verdict.reasons[1]
            .message
            .contains("absent (as on debug images)"));
    }

    #[test]
    fn by_default_only_production_and_stable_are_required() {
        let verdict = evaluate(&json!({"audience": AUDIENCE}), &production());
        let checked: Vec<_> = verdict.reasons.iter().map(|r| r.claim.as_deref()).collect();
        assert_eq!(
            checked,
            vec![
                Some("/dbgstat"),
                Some("/submods/confidential_space/support_attributes")
            ]
        );
        assert!(verdict.allow);
        assert_eq!(verdict.login.role, None);

        // An absent list is no restriction: another project passes.
        let mut claims = production();
        claims["submods"]["gce"]["project_id"] = json!("another-project");
        assert!(evaluate(&json!({"audience": AUDIENCE}), &claims).allow);

        let relaxed =
            json!({"audience": AUDIENCE, "require_production": false, "support_attribute": null});
        let verdict = evaluate(&relaxed, &production());
        assert!(!verdict.allow, "a policy that checks nothing denies");
        assert_eq!(failed_claims(&verdict), vec![None]);
    }

    #[test]
    fn a_missing_claim_denies_and_says_so() {
        let mut claims = production();
        claims["submods"]["gce"]["project_id"] = Value::Null;
        let verdict = evaluate(&strict(), &claims);
        assert_eq!(
            failed_claims(&verdict),
            vec![Some("/submods/gce/project_id")]
        );
        assert!(verdict
            .reasons
            .iter()
            .any(|r| r.message.contains("is missing")));
    }

    #[test]
    fn configuration_mistakes_are_refused_at_load() {
        let refused = [
            (json!({"audience": " "}), "\"audience\" must be"),
            (
                json!({"audience": AUDIENCE, "projcts": [PROJECT_ID]}),
                "unknown field `projcts`",
            ),
            (
                json!({"projects": [PROJECT_ID]}),
                "missing field `audience`",
            ),
            (
                json!({"audience": AUDIENCE, "image_digests": [format!("{IMAGE_DIGEST} ")]}),
                "check for stray spaces",
            ),
            (
                json!({"audience": AUDIENCE, "min_swversion": "26.06"}),
                "min_swversion \"26.06\" is not a number",
            ),
        ];
        for (config, expected) in refused {
            let err = testing::validate_config::<ConfidentialSpace>(&config).unwrap_err();
            assert!(err.contains(expected), "{config}: {err}");
        }
        assert_eq!(
            testing::validate_config::<ConfidentialSpace>(&strict()),
            Ok(())
        );
    }

    #[test]
    fn requiring_latest_is_accepted_with_a_warning() {
        testing::take_log();
        let config = json!({"audience": AUDIENCE, "support_attribute": "LATEST"});
        assert_eq!(
            testing::validate_config::<ConfidentialSpace>(&config),
            Ok(())
        );
        let log = testing::take_log();
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].0, LogLevel::Warn);
        assert!(log[0].1.contains("Prefer STABLE"), "{}", log[0].1);
    }

    #[test]
    fn the_token_carries_the_audience_and_nonces() {
        let nonce = "abcdefghijklmnop";
        let config = json!({"audience": AUDIENCE, "nonces": [nonce]});
        let request = testing::select_audience::<ConfidentialSpace>(&config).unwrap();
        assert_eq!(request.audience, AUDIENCE);
        assert_eq!(request.nonces, vec![nonce]);
    }

    /// The golden rules allow the golden production claims natively, as the plugin does in every
    /// language (`tests/golden.rs`); `bench/run.sh` runs this in release to time them.
    #[test]
    fn native_evaluate_time() {
        let config: serde_json::Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/golden/confidential-space.json"
        ))
        .unwrap();
        let verdict = testing::evaluate_timed::<ConfidentialSpace>(
            "rust",
            &config,
            include_str!("../../../tests/fixtures/golden/claims/production.json"),
        )
        .unwrap();
        assert!(verdict.allow, "{:?}", verdict.reasons);
        let text = config.to_string();
        testing::configuration_timed("rust", || {
            std::hint::black_box(serde_json::from_str::<Config>(&text).unwrap());
        });
    }
}
