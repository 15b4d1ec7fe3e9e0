//! The `confidential-space` plugin's configuration, and the Vault role that enforces the same
//! rules: so a collaborator's Vault and the plugin inside the TEE agree (`attestgate vault role
//! --from-plugin-config`).
//!
//! A classic role can bind values but not compare them: a minimum `swversion`, or "TDX TCB up to
//! date, on TDX machines only" when other machine types are allowed, has no classic form. Those
//! configurations are refused for classic roles with the rules named, rather than converted into
//! a role that enforces less; a CEL role expresses all of them.

use serde::Deserialize;
use serde_json::{json, Map, Value};

fn yes() -> bool {
    true
}

fn stable() -> Option<String> {
    Some("STABLE".into())
}

/// The rules a careful collaborator wants of a Confidential Space workload, each configurable.
/// An absent list means no restriction; every other rule is on unless switched off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfidentialSpaceRules {
    /// The collaborator's own audience (typically its Vault address).
    pub audience: String,
    /// Nonces bound into the token.
    #[serde(default)]
    pub nonces: Vec<String>,
    /// Handed to the exchange as the Vault role, when set.
    pub vault_role: Option<String>,
    /// `dbgstat` must be `disabled-since-boot`.
    #[serde(default = "yes")]
    pub require_production: bool,
    /// A support attribute the image must have; `null` switches the rule off.
    #[serde(default = "stable")]
    pub support_attribute: Option<String>,
    /// Allowed `hwmodel`s.
    pub hwmodels: Option<Vec<String>>,
    /// Allowed `swname`s.
    pub swnames: Option<Vec<String>>,
    /// Allowed image digests.
    pub image_digests: Option<Vec<String>>,
    /// Allowed GCP projects.
    pub projects: Option<Vec<String>>,
    /// Allowed service accounts (any one of the token's).
    pub service_accounts: Option<Vec<String>>,
    /// The lowest `swversion` allowed.
    pub min_swversion: Option<String>,
    /// On TDX machines, the attester's TCB must be `UpToDate`.
    #[serde(default)]
    pub require_tdx_uptodate: bool,
    /// Memory monitoring must be off.
    #[serde(default)]
    pub require_memory_monitoring_disabled: bool,
}

/// The claim pointers and allowed values of the list rules.
fn lists(rules: &ConfidentialSpaceRules) -> Vec<(&'static str, &Vec<String>)> {
    [
        ("hwmodel", &rules.hwmodels),
        ("swname", &rules.swnames),
        ("/submods/container/image_digest", &rules.image_digests),
        ("/submods/gce/project_id", &rules.projects),
        ("google_service_accounts", &rules.service_accounts),
    ]
    .into_iter()
    .filter_map(|(key, values)| values.as_ref().map(|v| (key, v)))
    .collect()
}

/// The token settings both role kinds get: a token that lives about as long as the
/// attestation that earned it.
fn token_settings(role: &mut Map<String, Value>, policies: &[String]) {
    role.insert("token_policies".into(), json!(policies));
    role.insert("token_ttl".into(), json!("15m"));
    role.insert("token_explicit_max_ttl".into(), json!("1h"));
}

/// A classic JWT role enforcing `rules`, or the names of the rules a classic role cannot
/// express.
pub fn classic_role(
    rules: &ConfidentialSpaceRules,
    policies: &[String],
) -> Result<Map<String, Value>, Vec<&'static str>> {
    let only_tdx = rules.hwmodels.as_deref() == Some(&["GCP_INTEL_TDX".to_owned()][..]);
    let mut inexpressible = Vec::new();
    if rules.min_swversion.is_some() {
        inexpressible.push("min_swversion");
    }
    if rules.require_tdx_uptodate && !only_tdx {
        inexpressible.push("require_tdx_uptodate (unless hwmodels is exactly [\"GCP_INTEL_TDX\"])");
    }
    if !inexpressible.is_empty() {
        return Err(inexpressible);
    }
    let mut bound = Map::new();
    if rules.require_production {
        bound.insert("dbgstat".into(), json!("disabled-since-boot"));
    }
    if let Some(attribute) = &rules.support_attribute {
        bound.insert(
            "/submods/confidential_space/support_attributes".into(),
            json!([attribute]),
        );
    }
    for (key, values) in lists(rules) {
        bound.insert(key.into(), json!(values));
    }
    if rules.require_tdx_uptodate {
        bound.insert("/tdx/gcp_attester_tcb_status".into(), json!("UpToDate"));
    }
    if rules.require_memory_monitoring_disabled {
        bound.insert(
            "/submods/confidential_space/monitoring_enabled/memory".into(),
            json!(false),
        );
    }
    let mut role = Map::new();
    role.insert("role_type".into(), json!("jwt"));
    role.insert("user_claim".into(), json!("sub"));
    role.insert("bound_audiences".into(), json!([rules.audience]));
    role.insert("bound_claims".into(), Value::Object(bound));
    token_settings(&mut role, policies);
    Ok(role)
}

/// A CEL string literal.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn quote_list(values: &[String]) -> String {
    format!(
        "[{}]",
        values
            .iter()
            .map(|v| quote(v))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// An OpenBao CEL role enforcing `rules`, each rule a named variable with its own denial
/// message.
pub fn cel_role(rules: &ConfidentialSpaceRules, policies: &[String]) -> Map<String, Value> {
    let mut checks: Vec<(&str, String, String)> = Vec::new();
    if rules.require_production {
        checks.push((
            "production",
            "has(claims.dbgstat) && claims.dbgstat == 'disabled-since-boot'".into(),
            "a production image (dbgstat disabled-since-boot) is required".into(),
        ));
    }
    if let Some(attribute) = &rules.support_attribute {
        checks.push((
            "supported",
            format!(
                "has(claims.submods.confidential_space.support_attributes) && {} in claims.submods.confidential_space.support_attributes",
                quote(attribute)
            ),
            format!("support_attributes do not include {attribute}"),
        ));
    }
    let names = [
        ("hwmodel", "hardware", "claims.hwmodel"),
        ("swname", "software", "claims.swname"),
        (
            "/submods/container/image_digest",
            "image",
            "claims.submods.container.image_digest",
        ),
        (
            "/submods/gce/project_id",
            "project",
            "claims.submods.gce.project_id",
        ),
    ];
    for (key, values) in lists(rules) {
        let (name, expression) = match names.iter().find(|(k, _, _)| *k == key) {
            Some((_, name, path)) => (*name, format!("{path} in {}", quote_list(values))),
            None => (
                "service_account",
                format!(
                    "has(claims.google_service_accounts) && claims.google_service_accounts.exists(a, a in {})",
                    quote_list(values)
                ),
            ),
        };
        checks.push((name, expression, format!("{key} is not one of {values:?}")));
    }
    if let Some(minimum) = &rules.min_swversion {
        let minimum = minimum.trim();
        checks.push((
            "recent",
            format!("claims.swversion.exists(v, v.matches('^[0-9]+$') && int(v) >= {minimum})"),
            format!("swversion is below {minimum}"),
        ));
    }
    if rules.require_tdx_uptodate {
        checks.push((
            "tcb",
            "claims.hwmodel != 'GCP_INTEL_TDX' || (has(claims.tdx.gcp_attester_tcb_status) && claims.tdx.gcp_attester_tcb_status == 'UpToDate')".into(),
            "the TDX TCB is not up to date".into(),
        ));
    }
    if rules.require_memory_monitoring_disabled {
        checks.push((
            "unmonitored",
            "has(claims.submods.confidential_space.monitoring_enabled.memory) && claims.submods.confidential_space.monitoring_enabled.memory == false".into(),
            "memory monitoring must be disabled".into(),
        ));
    }
    let allow = format!("pb.Auth{{policies: {}}}", quote_list(policies));
    let expression = checks.iter().rev().fold(allow, |rest, (name, _, message)| {
        format!("!{name} ? {} : {rest}", quote(message))
    });
    let variables: Vec<Value> = checks
        .iter()
        .map(|(name, expression, _)| json!({"name": name, "expression": expression}))
        .collect();
    let mut role = Map::new();
    role.insert(
        "cel_program".into(),
        json!({"variables": variables, "expression": expression}),
    );
    role.insert("bound_audiences".into(), json!([rules.audience]));
    role
}
