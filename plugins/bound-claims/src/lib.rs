//! Vault's JWT-role semantics inside the TEE, so a collaborator's Vault role judges a token
//! before the token leaves. The configuration **is** the role JSON a collaborator writes to
//! `auth/jwt/role/NAME`, unchanged, and deny reasons are Vault's own error messages.
//!
//! The semantics are `attestgate-vault-role`'s, the same code `attestgate vault doctor` predicts
//! logins with: the audience, `bound_subject`, the user claim, `claim_mappings` (string claims
//! only), `groups_claim` and `bound_claims` (JSON pointers, lists meaning "any of", globs with
//! `bound_claims_type: glob`), in Vault's order. The issuer and the times are the host
//! verifier's business here.

use attestgate_plugin_sdk::{
    export_policy, log, AudienceRequest, Claims, Context, LogLevel, Policy, Report, Verdict,
};
use attestgate_vault_role::jwt::ROLE_FIELDS;
use attestgate_vault_role::lint::closest;
use attestgate_vault_role::{JwtRole, TokenChecks};
use serde_json::{Map, Value};

struct BoundClaims;

fn role(config: &Map<String, Value>) -> Result<JwtRole, String> {
    JwtRole::from_json(config).map_err(|e| e.to_string())
}

impl Policy for BoundClaims {
    type Config = Map<String, Value>;

    fn validate(config: &Map<String, Value>) -> Result<(), String> {
        for key in config.keys() {
            if !ROLE_FIELDS.contains(&key.as_str()) {
                let hint = closest(key, ROLE_FIELDS)
                    .map(|real| format!(" (did you mean \"{real}\"?)"))
                    .unwrap_or_default();
                log(LogLevel::Warn, &format!("\"{key}\" is not a Vault JWT role field{hint}; Vault ignores it silently, and so does this plugin"));
            }
        }
        let role = role(config)?;
        if let Some(refusal) = role.write_refusal() {
            return Err(format!("Vault would refuse this role: {refusal}"));
        }
        if role.role_type.as_deref() != Some("jwt") {
            return Err(
                "role_type must be \"jwt\": Vault refuses JWT logins with any other role".into(),
            );
        }
        if role.bound_audiences.is_empty() {
            return Err("bound_audiences is empty: attestgate needs the collaborator's audience to mint its token, and a role without one lets any audience in".into());
        }
        Ok(())
    }

    fn audience(ctx: &Context<Map<String, Value>>) -> Result<AudienceRequest, String> {
        role(&ctx.config)?
            .bound_audiences
            .into_iter()
            .next()
            .map(AudienceRequest::oidc)
            .ok_or_else(|| "the role has no bound_audiences to request a token for".into())
    }

    fn evaluate(ctx: &Context<Map<String, Value>>, claims: &Claims<'_>) -> Verdict {
        let mut report = Report::new();
        let role = match role(&ctx.config) {
            Ok(role) => role,
            Err(e) => {
                report.fail(None, e);
                return report.verdict();
            }
        };
        let name = ctx
            .vault_role
            .as_deref()
            .unwrap_or(&ctx.collaborator)
            .to_lowercase();
        let prediction = role.login(&name, &TokenChecks::default(), claims.raw());
        for reason in prediction.reasons {
            if reason.passed {
                report.pass(reason.claim.as_deref(), reason.message);
            } else {
                report.fail(reason.claim.as_deref(), reason.message);
            }
        }
        report.verdict()
    }
}

export_policy!(BoundClaims);

#[cfg(test)]
mod tests {
    use super::*;
    use attestgate_plugin_sdk::testing::{
        self, failed_claims, IMAGE_DIGEST, PROJECT_ID, SERVICE_ACCOUNT,
    };
    use attestgate_plugin_sdk::UnixSeconds;
    use serde_json::json;

    const AUDIENCE: &str = "https://vault.bank-a.example";
    const NOW: UnixSeconds = 1_900_000_000;

    /// `examples/roles/seed-role-corrected.json`, bound to the production claims' values.
    fn role() -> Value {
        json!({
            "role_type": "jwt",
            "token_policies": ["bank-a-secrets"],
            "token_explicit_max_ttl": 60,
            "user_claim": "sub",
            "bound_audiences": [AUDIENCE],
            "claim_mappings": {
                "hwmodel": "hwmodel",
                "/submods/container/image_digest": "image_digest",
                "/submods/gce/project_id": "project_id"
            },
            "bound_claims": {
                "hwmodel": "GCP_INTEL_TDX",
                "swname": "CONFIDENTIAL_SPACE",
                "/submods/confidential_space/support_attributes": ["STABLE"],
                "/submods/container/image_digest": [IMAGE_DIGEST],
                "/submods/gce/project_id": [PROJECT_ID],
                "google_service_accounts": [SERVICE_ACCOUNT]
            }
        })
    }

    fn evaluate(role: &Value, claims: &Value) -> Verdict {
        testing::evaluate::<BoundClaims>(role, claims, NOW).unwrap()
    }

    fn production() -> Value {
        testing::production_claims(AUDIENCE, NOW)
    }

    #[test]
    fn a_production_workload_satisfies_the_role() {
        let verdict = evaluate(&role(), &production());
        assert!(verdict.allow, "{:?}", verdict.reasons);
        // The audience, the user claim, three mappings and six bound claims.
        assert_eq!(verdict.reasons.len(), 11);
    }

    #[test]
    fn each_bound_claim_denies_when_its_claim_changes() {
        let cases = [
            ("/aud", json!("https://vault.bank-b.example")),
            ("/hwmodel", json!("GCP_AMD_SEV")),
            ("/swname", json!("GCE")),
            (
                "/submods/confidential_space/support_attributes",
                json!(["USABLE"]),
            ),
            (
                "/submods/container/image_digest",
                json!(format!("sha256:{}", "0".repeat(64))),
            ),
            ("/submods/gce/project_id", json!("attacker-project")),
            (
                "/google_service_accounts",
                json!(["attacker@attacker-project.iam.gserviceaccount.com"]),
            ),
        ];
        for (claim, value) in cases {
            let mut claims = production();
            *claims.pointer_mut(claim).unwrap() = value;
            let verdict = evaluate(&role(), &claims);
            assert!(!verdict.allow, "{claim}");
            assert_eq!(failed_claims(&verdict), vec![Some(claim)]);
        }
    }

    #[test]
    fn deny_reasons_read_like_vaults_errors() {
        let mut claims = production();
        claims["aud"] = json!("https://sts.googleapis.com");
        claims["submods"]["gce"]
            .as_object_mut()
            .unwrap()
            .remove("project_id");
        let messages: Vec<String> = evaluate(&role(), &claims)
            .reasons
            .into_iter()
            .filter(|r| !r.passed)
            .map(|r| r.message)
            .collect();
        assert_eq!(
            messages,
            vec![
                "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience",
                "error validating claims: claim \"/submods/gce/project_id\" is missing",
            ]
        );
    }

    #[test]
    fn bound_subject_pins_one_instance() {
        let mut pinned = role();
        pinned["bound_subject"] = production()["sub"].clone();
        assert!(evaluate(&pinned, &production()).allow);
        let mut recreated = production();
        recreated["sub"] = json!("https://www.googleapis.com/compute/v1/projects/operator-project/zones/europe-west4-a/instances/analytics-vm-2");
        assert_eq!(
            failed_claims(&evaluate(&pinned, &recreated)),
            vec![Some("/sub")]
        );
    }

    #[test]
    fn globs_match_only_with_bound_claims_type_glob() {
        let mut globbed = role();
        globbed["bound_claims"]["/submods/gce/project_id"] = json!("operator-*");
        assert!(
            !evaluate(&globbed, &production()).allow,
            "a glob is a plain string unless asked for"
        );
        globbed["bound_claims_type"] = json!("glob");
        assert!(evaluate(&globbed, &production()).allow);
        globbed["bound_claims"]["/submods/gce/project_id"] = json!("other-*");
        assert_eq!(
            failed_claims(&evaluate(&globbed, &production())),
            vec![Some("/submods/gce/project_id")]
        );
    }

    #[test]
    fn mapping_or_naming_a_user_by_a_list_claim_denies() {
        let mut mapped = role();
        mapped["claim_mappings"]["google_service_accounts"] = json!("service_accounts");
        let verdict = evaluate(&mapped, &production());
        assert_eq!(
            failed_claims(&verdict),
            vec![Some("/google_service_accounts")]
        );
        assert!(verdict.reasons.iter().any(|r| r
            .message
            .contains("error converting claim 'google_service_accounts'")));

        let mut user = role();
        user["user_claim"] = json!("swversion");
        let verdict = evaluate(&user, &production());
        assert_eq!(failed_claims(&verdict), vec![Some("/swversion")]);
    }

    #[test]
    fn configuration_mistakes_are_refused_at_load() {
        let broken = [
            ("role_type", json!("oidc"), "allowed_redirect_uris"),
            (
                "bound_claims_type",
                json!("regex"),
                "invalid 'bound_claims_type': regex",
            ),
            (
                "bound_claims",
                json!(["hwmodel"]),
                "\"bound_claims\" must be an object",
            ),
            (
                "claim_mappings",
                json!({"hwmodel": "role"}),
                "metadata key \"role\" is reserved",
            ),
            ("user_claim", json!(""), "a user claim must be defined"),
            ("bound_audiences", json!([]), "bound_audiences is empty"),
        ];
        for (field, value, expected) in broken {
            let mut config = role();
            config[field] = value;
            let err = testing::validate_config::<BoundClaims>(&config).unwrap_err();
            assert!(err.contains(expected), "{field}: {err}");
        }
        assert_eq!(testing::validate_config::<BoundClaims>(&role()), Ok(()));
    }

    #[test]
    fn the_seed_roles_misspelled_field_is_logged_at_load() {
        let seed: Value = serde_json::from_str(include_str!(
            "../../../examples/roles/seed-role-as-written.json"
        ))
        .unwrap();
        testing::take_log();
        assert_eq!(testing::validate_config::<BoundClaims>(&seed), Ok(()));
        let log = testing::take_log();
        assert_eq!(log.len(), 1, "{log:?}");
        assert_eq!(log[0].0, LogLevel::Warn);
        assert!(
            log[0].1.starts_with("\"claims_mappings\" is not a Vault JWT role field (did you mean \"claim_mappings\"?)"),
            "{}",
            log[0].1
        );
    }

    #[test]
    fn the_token_is_minted_for_the_first_bound_audience() {
        let mut config = role();
        config["bound_audiences"] = json!(format!("{AUDIENCE}, https://vault.other.example"));
        let request = testing::select_audience::<BoundClaims>(&config).unwrap();
        assert_eq!(request, AudienceRequest::oidc(AUDIENCE));
    }
}
