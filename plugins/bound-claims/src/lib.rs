//! Vault's JWT-role semantics, so a collaborator can check its Vault role against a token before
//! the token leaves the TEE. The configuration **is** the role JSON a collaborator writes to
//! `auth/jwt/role/NAME`, unchanged, and deny reasons read like Vault's own error messages.
//!
//! Implemented: `bound_audiences` (any match; the first one is the requested audience),
//! `bound_subject` (exact), `bound_claims` (JSON-pointer or top-level keys, list values meaning
//! "any of", list claims passing when any element matches, keys ANDed), `bound_claims_type: glob`,
//! `user_claim` (must be a string claim), and `claim_mappings` (Vault refuses non-string claims).

use attestgate_plugin_sdk::rules::{glob_match, pointer};
use attestgate_plugin_sdk::{
    export_policy, log, AudienceRequest, Claims, Context, LogLevel, Policy, Report, Verdict,
};
use serde_json::{Map, Value};

/// The fields Vault's JWT role accepts; anything else is silently ignored by Vault, which is how
/// a misspelled `claims_mappings` goes unnoticed. This plugin says so at load time.
const VAULT_ROLE_FIELDS: &[&str] = &[
    "role_type",
    "bound_audiences",
    "bound_subject",
    "bound_claims",
    "bound_claims_type",
    "claim_mappings",
    "user_claim",
    "user_claim_json_pointer",
    "groups_claim",
    "oidc_scopes",
    "allowed_redirect_uris",
    "verbose_oidc_logging",
    "max_age",
    "expiration_leeway",
    "not_before_leeway",
    "clock_skew_leeway",
    "policies",
    "token_policies",
    "ttl",
    "max_ttl",
    "token_ttl",
    "token_max_ttl",
    "token_explicit_max_ttl",
    "token_type",
    "token_period",
    "period",
    "token_num_uses",
    "num_uses",
    "token_bound_cidrs",
    "bound_cidrs",
    "token_no_default_policy",
    "callback_mode",
    "poll_interval",
];

struct BoundClaims;

fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        // Vault also accepts a comma-separated string for list fields.
        Some(Value::String(s)) => s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn equal(expected: &Value, actual: &Value, globs: bool) -> bool {
    match (expected, actual) {
        (Value::String(e), Value::String(a)) if globs => glob_match(e, a),
        (Value::String(e), Value::String(a)) => e == a,
        (Value::Number(e), Value::Number(a)) => e.as_f64() == a.as_f64(),
        (e, a) => e == a,
    }
}

fn uses_globs(role: &Map<String, Value>) -> bool {
    role.get("bound_claims_type").and_then(Value::as_str) == Some("glob")
}

impl Policy for BoundClaims {
    type Config = Map<String, Value>;

    fn validate(role: &Map<String, Value>) -> Result<(), String> {
        for key in role.keys() {
            if !VAULT_ROLE_FIELDS.contains(&key.as_str()) {
                let hint = if key == "claims_mappings" {
                    " (did you mean \"claim_mappings\"?)"
                } else {
                    ""
                };
                log(LogLevel::Warn, &format!("\"{key}\" is not a Vault JWT role field{hint}; Vault ignores it silently, and so does this plugin"));
            }
        }
        if let Some(kind) = role.get("role_type").and_then(Value::as_str) {
            if kind != "jwt" {
                return Err(format!(
                    "role_type is \"{kind}\"; only \"jwt\" roles log in with a token"
                ));
            }
        }
        match role.get("bound_claims_type").and_then(Value::as_str) {
            None | Some("string") | Some("glob") => {}
            Some(other) => {
                return Err(format!(
                    "bound_claims_type \"{other}\" is not \"string\" or \"glob\""
                ))
            }
        }
        match role.get("bound_claims") {
            None | Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(
                    "bound_claims must be an object of claim -> value or list of values".into(),
                )
            }
        }
        if let Some(Value::Object(mappings)) = role.get("claim_mappings") {
            if mappings.values().any(|v| !v.is_string()) {
                return Err("claim_mappings values must be metadata key names (strings)".into());
            }
        }
        if string_list(role.get("bound_audiences")).is_empty() {
            return Err("bound_audiences is empty: attestgate needs the collaborator's audience to mint its token, and a role without one lets any audience in".into());
        }
        Ok(())
    }

    fn audience(ctx: &Context<Map<String, Value>>) -> Result<AudienceRequest, String> {
        string_list(ctx.config.get("bound_audiences"))
            .into_iter()
            .next()
            .map(AudienceRequest::oidc)
            .ok_or_else(|| "the role has no bound_audiences to request a token for".into())
    }

    fn evaluate(ctx: &Context<Map<String, Value>>, claims: &Claims<'_>) -> Verdict {
        let role = &ctx.config;
        let mut report = Report::new();

        let bound_audiences = string_list(role.get("bound_audiences"));
        let audiences = claims.audiences();
        if bound_audiences.is_empty() {
            if audiences.is_empty() {
                report.pass(Some("/aud"), "no audiences bound and none in the token");
            } else {
                report.fail(
                    Some("/aud"),
                    "audience claim found in JWT but no audiences bound to the role",
                );
            }
        } else if audiences
            .iter()
            .any(|a| bound_audiences.iter().any(|b| b == a))
        {
            report.pass(
                Some("/aud"),
                format!("audience {audiences:?} matches bound_audiences"),
            );
        } else {
            report.fail(Some("/aud"), "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience");
        }

        if let Some(subject) = role
            .get("bound_subject")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            if claims.subject() == Some(subject) {
                report.pass(Some("/sub"), "subject matches bound_subject");
            } else {
                report.fail(
                    Some("/sub"),
                    "error validating token: invalid subject (sub) claim",
                );
            }
        }

        let globs = uses_globs(role);
        if let Some(Value::Object(bound)) = role.get("bound_claims") {
            for (key, expected) in bound {
                let pointer = pointer(key);
                match claims.pointer(key) {
                    None => report.fail(
                        Some(&pointer),
                        format!("error validating claims: claim \"{key}\" is missing"),
                    ),
                    Some(actual) => {
                        let matched = list(expected)
                            .iter()
                            .any(|e| list(actual).iter().any(|a| equal(e, a, globs)));
                        if matched {
                            report.pass(
                                Some(&pointer),
                                format!("claim \"{key}\" matches a bound claim value"),
                            )
                        } else {
                            report.fail(Some(&pointer), format!("error validating claims: claim \"{key}\" does not match any associated bound claim values"))
                        }
                    }
                };
            }
        }

        if let Some(user_claim) = role.get("user_claim").and_then(Value::as_str) {
            match claims.pointer(user_claim) {
                None => report.fail(
                    Some(&pointer(user_claim)),
                    format!("claim \"{user_claim}\" not found in token"),
                ),
                Some(Value::String(_)) => report.pass(
                    Some(&pointer(user_claim)),
                    format!("user claim \"{user_claim}\" is a string"),
                ),
                Some(_) => report.fail(
                    Some(&pointer(user_claim)),
                    format!("claim \"{user_claim}\" could not be converted to string"),
                ),
            };
        }

        if let Some(Value::Object(mappings)) = role.get("claim_mappings") {
            for source in mappings.keys() {
                let pointer = pointer(source);
                match claims.pointer(source) {
                    None | Some(Value::String(_)) => {}
                    Some(_) => {
                        report.fail(Some(&pointer), format!("error converting claim '{source}' to string (claim_mappings only takes string claims)"));
                    }
                }
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
        // The audience, six bound claims and the user claim.
        assert_eq!(verdict.reasons.len(), 8);
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
            ("role_type", json!("oidc"), "only \"jwt\" roles"),
            (
                "bound_claims_type",
                json!("regex"),
                "bound_claims_type \"regex\"",
            ),
            (
                "bound_claims",
                json!(["hwmodel"]),
                "bound_claims must be an object",
            ),
            (
                "claim_mappings",
                json!({"hwmodel": 1}),
                "claim_mappings values must be",
            ),
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
