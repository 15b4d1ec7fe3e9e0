//! What is wrong with a role, or with its mount's configuration, before any token reaches it.
//!
//! Each rule looks for one way a Confidential Space role goes wrong in practice (most of them
//! found in the project's seed role, which fails four ways). A finding names the key, says
//! what is wrong and why it matters, and how to fix it, in words a Vault admin can act on.

use crate::jwt::{string_list, JwtRole};
use crate::CONFIDENTIAL_SPACE_ISSUER;
use serde::Serialize;
use serde_json::{Map, Value};

/// Google's signing keys for Confidential Space tokens (the discovery document's `jwks_uri`).
pub const CONFIDENTIAL_SPACE_JWKS_URL: &str = "https://www.googleapis.com/service_accounts/v1/metadata/jwk/signer@confidentialspace-sign.iam.gserviceaccount.com";

/// The audience of the launcher's default token, meant for Google's STS.
pub const STS_AUDIENCE: &str = "https://sts.googleapis.com";

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Logins fail, or a workload the collaborator did not mean to trust gets in.
    Error,
    /// Works today, but is fragile or weaker than intended.
    Warning,
    /// Worth knowing.
    Info,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// The role or config key it is about (`bound_claims./submods/container/image_digest`).
    pub key: String,
    /// What is wrong, and why it matters.
    pub message: String,
    /// What to do.
    pub fix: String,
}

fn finding(severity: Severity, key: &str, message: String, fix: impl Into<String>) -> Finding {
    Finding {
        severity,
        key: key.to_owned(),
        message,
        fix: fix.into(),
    }
}

/// The shape of a Confidential Space claim, for the rules that depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimShape {
    /// Always a string.
    String,
    /// A list of strings.
    List,
    /// A string or a list, depending on the request (`eat_nonce`, `aud`).
    StringOrList,
    /// A number.
    Number,
    /// A boolean.
    Bool,
    /// An object.
    Object,
}

/// The shapes of the claims Confidential Space tokens carry, by JSON pointer.
pub fn claim_shape(pointer: &str) -> Option<ClaimShape> {
    use ClaimShape::*;
    Some(match pointer {
        "/iss"
        | "/sub"
        | "/hwmodel"
        | "/swname"
        | "/dbgstat"
        | "/eat_profile"
        | "/submods/container/image_reference"
        | "/submods/container/image_digest"
        | "/submods/container/image_id"
        | "/submods/container/restart_policy"
        | "/submods/gce/zone"
        | "/submods/gce/project_id"
        | "/submods/gce/project_number"
        | "/submods/gce/instance_name"
        | "/submods/gce/instance_id"
        | "/tdx/gcp_attester_tcb_status"
        | "/tdx/gcp_attester_tcb_date"
        | "/submods/nvidia_gpu/cc_mode" => String,
        "/swversion"
        | "/google_service_accounts"
        | "/attester_tcb"
        | "/submods/confidential_space/support_attributes"
        | "/submods/container/args"
        | "/submods/container/cmd_override"
        | "/submods/container/image_signatures" => List,
        "/aud" | "/eat_nonce" => StringOrList,
        "/exp" | "/iat" | "/nbf" | "/oemid" => Number,
        "/secboot" | "/submods/confidential_space/monitoring_enabled/memory" => Bool,
        "/submods"
        | "/submods/container"
        | "/submods/gce"
        | "/submods/confidential_space"
        | "/submods/confidential_space/monitoring_enabled"
        | "/submods/container/env"
        | "/submods/container/env_override"
        | "/tdx"
        | "/submods/nvidia_gpu" => Object,
        _ => return None,
    })
}

/// The claims real tokens leave out on debug images or older image versions.
pub const OPTIONAL_CLAIMS: &[&str] = &[
    "eat_nonce",
    "eat_profile",
    "support_attributes",
    "tdx",
    "attester_tcb",
    "image_signatures",
    "cmd_override",
    "env_override",
    "nvidia_gpu",
];

/// A mount's `auth/<mount>/config`, as far as the rules need it.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// `bound_issuer` (empty: the issuer is not checked).
    pub bound_issuer: String,
    /// `jwks_url`.
    pub jwks_url: String,
    /// `oidc_discovery_url`.
    pub oidc_discovery_url: String,
    /// `jwt_validation_pubkeys`: PEM public keys.
    pub jwt_validation_pubkeys: Vec<String>,
    /// `jwks_ca_pem` (or `oidc_discovery_ca_pem`).
    pub ca_pem: String,
}

impl AuthConfig {
    /// Reads the config's JSON (as written, or as read back).
    pub fn from_json(raw: &Map<String, Value>) -> AuthConfig {
        let text = |key: &str| {
            raw.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let ca = text("jwks_ca_pem");
        AuthConfig {
            bound_issuer: text("bound_issuer"),
            jwks_url: text("jwks_url"),
            oidc_discovery_url: text("oidc_discovery_url"),
            jwt_validation_pubkeys: string_list(raw.get("jwt_validation_pubkeys"))
                .unwrap_or_default(),
            ca_pem: if ca.is_empty() {
                text("oidc_discovery_ca_pem")
            } else {
                ca
            },
        }
    }

    /// The rules about the mount's configuration.
    pub fn lint(&self) -> Vec<Finding> {
        let mut findings = Vec::new();
        lint_issuer(&self.bound_issuer, &mut findings);
        let production_keys = if !self.jwks_url.is_empty() {
            Some((
                "jwks_url",
                self.jwks_url.as_str(),
                self.jwks_url == CONFIDENTIAL_SPACE_JWKS_URL,
            ))
        } else if !self.oidc_discovery_url.is_empty() {
            let url = self.oidc_discovery_url.trim_end_matches('/');
            Some((
                "oidc_discovery_url",
                self.oidc_discovery_url.as_str(),
                url == CONFIDENTIAL_SPACE_ISSUER,
            ))
        } else if !self.jwt_validation_pubkeys.is_empty() {
            findings.push(finding(
                Severity::Warning,
                "jwt_validation_pubkeys",
                "the mount trusts static keys: Google rotates the Confidential Space signing keys, and every login fails after a rotation until the keys are replaced by hand".into(),
                format!("set jwks_url = \"{CONFIDENTIAL_SPACE_JWKS_URL}\" (or oidc_discovery_url = \"{CONFIDENTIAL_SPACE_ISSUER}\") and remove jwt_validation_pubkeys"),
            ));
            None
        } else {
            None
        };
        if let Some((key, url, google)) = production_keys {
            if !google {
                let local = ["://127.", "://localhost", "://[::1]", "://0.0.0.0"]
                    .iter()
                    .any(|h| url.contains(h));
                let why = if local {
                    "a local address (a dev launcher's keys left in?)"
                } else if url.starts_with("http://") {
                    "plain http, so anyone on the path can substitute keys"
                } else {
                    "not Google's Confidential Space keys"
                };
                findings.push(finding(
                    Severity::Error,
                    key,
                    format!("{key} {url:?} is {why}: a production role must trust only the keys that sign real attestation tokens, or whoever holds those other keys can mint any claims"),
                    format!("set jwks_url = \"{CONFIDENTIAL_SPACE_JWKS_URL}\" or oidc_discovery_url = \"{CONFIDENTIAL_SPACE_ISSUER}\""),
                ));
            }
        }
        findings
    }
}

fn lint_issuer(issuer: &str, findings: &mut Vec<Finding>) {
    if issuer == CONFIDENTIAL_SPACE_ISSUER {
        return;
    }
    let fix = format!("set bound_issuer = \"{CONFIDENTIAL_SPACE_ISSUER}\" in auth/<mount>/config");
    if issuer.is_empty() {
        findings.push(finding(
            Severity::Warning,
            "bound_issuer",
            "bound_issuer is empty, so Vault does not check the token's issuer at all: any token the trusted keys sign is accepted whatever its iss".into(),
            fix,
        ));
        return;
    }
    let why = if issuer.trim_end_matches('/') == CONFIDENTIAL_SPACE_ISSUER {
        "has a trailing slash; real tokens carry the issuer without one"
    } else if issuer.replacen("http://", "https://", 1) == CONFIDENTIAL_SPACE_ISSUER {
        "uses http; real tokens carry https"
    } else if issuer.trim() == CONFIDENTIAL_SPACE_ISSUER {
        "has leading or trailing whitespace"
    } else {
        "is not the Confidential Space issuer"
    };
    findings.push(finding(
        Severity::Error,
        "bound_issuer",
        format!("bound_issuer {issuer:?} {why}. Vault compares it exactly, so every login fails with \"error validating token: invalid issuer (iss) claim\""),
        fix,
    ));
}

/// Levenshtein distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// The closest known key, if it is close enough to be a typo (at most one edit per five
/// characters, at least one) and no other key is as close.
pub fn closest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (key.chars().count() / 5).max(1);
    let mut ranked: Vec<(usize, &str)> = known.iter().map(|k| (distance(key, k), *k)).collect();
    ranked.sort();
    match ranked.as_slice() {
        [(best, k), rest @ ..] if *best <= limit && rest.first().is_none_or(|(d, _)| d > best) => {
            Some(k)
        }
        _ => None,
    }
}

/// Unknown keys: Vault ignores them silently.
pub(crate) fn lint_unknown_keys(
    raw: &Map<String, Value>,
    known: &[&str],
    kind: &str,
    findings: &mut Vec<Finding>,
) {
    for key in raw.keys() {
        if known.contains(&key.as_str()) {
            continue;
        }
        match closest(key, known) {
            Some(real) => findings.push(finding(
                Severity::Error,
                key,
                format!("\"{key}\" is not a {kind} field; Vault ignores it without a warning, so whatever it was meant to do does not happen"),
                format!("rename it to \"{real}\""),
            )),
            None => findings.push(finding(
                Severity::Warning,
                key,
                format!("\"{key}\" is not a {kind} field; Vault ignores it without a warning"),
                "remove it",
            )),
        }
    }
}

/// Whitespace at either end, or an invisible character anywhere.
fn invisible(text: &str) -> Option<&'static str> {
    if text.trim() != text {
        return Some("leading or trailing whitespace");
    }
    if text.chars().any(|c| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00A0}' | '\u{00AD}')
    }) {
        return Some("an invisible character");
    }
    None
}

pub(crate) fn lint_audiences(audiences: &[String], findings: &mut Vec<Finding>) {
    match audiences {
        [] => findings.push(finding(
            Severity::Error,
            "bound_audiences",
            "no bound_audiences: the role accepts a token minted for any audience, including one meant for another collaborator's Vault, which can replay it here; attestgate also needs the audience to request this collaborator's token".into(),
            "bind exactly this collaborator's own audience, e.g. \"bound_audiences\": [\"https://vault.bank-a.example\"]",
        )),
        [_] => {}
        several => findings.push(finding(
            Severity::Warning,
            "bound_audiences",
            format!("{} audiences are bound: a token minted for any of them logs in here, so a collaborator that receives a token for one of the others can replay it against this role", several.len()),
            "bind exactly one audience, this collaborator's own",
        )),
    }
    if audiences
        .iter()
        .any(|a| a.trim_end_matches('/') == STS_AUDIENCE)
    {
        findings.push(finding(
            Severity::Error,
            "bound_audiences",
            format!("\"{STS_AUDIENCE}\" is the audience of the launcher's default token, which every relying party receives: any of them can replay it here (the seed itself calls sending it to Vault a misuse)"),
            "bind this collaborator's own audience, and have attestgate request a token for it",
        ));
    }
    for audience in audiences {
        if let Some(what) = invisible(audience) {
            findings.push(finding(
                Severity::Error,
                "bound_audiences",
                format!("the bound audience {audience:?} contains {what}, so it never equals a token's audience"),
                format!("use {:?}", audience.trim()),
            ));
        }
    }
}

/// The rules about a classic role.
pub fn lint_jwt_role(role: &JwtRole) -> Vec<Finding> {
    let mut findings = Vec::new();
    lint_unknown_keys(
        &role.raw,
        crate::jwt::ROLE_FIELDS,
        "Vault JWT role",
        &mut findings,
    );
    if let Some(refusal) = role.write_refusal() {
        findings.push(finding(
            Severity::Error,
            "role",
            format!("Vault refuses to store this role: {refusal}"),
            match role.role_type.as_deref() {
                None => "add \"role_type\": \"jwt\" (Vault makes a role without it an OIDC role)"
                    .to_owned(),
                _ => "fix the key the message names".to_owned(),
            },
        ));
    } else if role.role_type.is_none() {
        findings.push(finding(
            Severity::Error,
            "role_type",
            "role_type is not set, so Vault stores an OIDC role, and a JWT login with it fails: \"role with oidc role_type is not allowed\"".into(),
            "add \"role_type\": \"jwt\"",
        ));
    }
    lint_audiences(&role.bound_audiences, &mut findings);
    lint_subject(&role.bound_subject, &mut findings);

    for (key, value) in &role.bound_claims {
        let at = format!("bound_claims.{key}");
        let values: Vec<&Value> = match value {
            Value::Array(items) => items.iter().collect(),
            single => vec![single],
        };
        for value in &values {
            if let Some(text) = value.as_str() {
                if let Some(what) = invisible(text) {
                    findings.push(finding(
                        Severity::Error,
                        &at,
                        format!("the bound value {text:?} contains {what}, so it never equals a real claim: every login fails with \"error validating claims: claim {key:?} does not match any associated bound claim values\""),
                        format!("use {:?}", text.trim()),
                    ));
                }
                lint_glob(role.globs, key, &at, text, &mut findings);
            }
        }
        if !key.starts_with('/') && key.contains('/') {
            findings.push(finding(
                Severity::Error,
                &at,
                format!("\"{key}\" contains '/' but does not start with it, so Vault reads it as one top-level claim of that name, which tokens never carry: every login fails with \"claim {key:?} is missing\""),
                format!("write the JSON pointer \"/{key}\""),
            ));
        }
        let shape = claim_shape(&crate::lookup::pointer(key));
        if values.iter().any(|v| v.is_number()) && shape != Some(ClaimShape::Number) {
            findings.push(finding(
                Severity::Error,
                &at,
                format!("a number is bound, but \"{key}\" is not a number claim (numbers inside lists never match either): write the value as the token carries it"),
                "write the value as a string, as the claim carries it",
            ));
        }
        if shape == Some(ClaimShape::Object) {
            findings.push(finding(
                Severity::Error,
                &at,
                format!("\"{key}\" is an object in real tokens; Vault refuses to compare it: \"received claim is not a string, bool, int or list\""),
                "bind one of its string fields by JSON pointer instead",
            ));
        }
    }
    lint_bindings(
        &|pointer| {
            role.bound_claims
                .keys()
                .any(|k| crate::lookup::pointer(k) == pointer)
        },
        &|pointer, wanted| {
            role.bound_claims
                .iter()
                .find(|(k, _)| crate::lookup::pointer(k) == pointer)
                .is_some_and(|(_, v)| match v {
                    Value::Array(items) => items.iter().all(|i| i.as_str() == Some(wanted)),
                    other => other.as_str() == Some(wanted),
                })
        },
        &mut findings,
    );

    for (source, target) in &role.claim_mappings {
        let at = format!("claim_mappings.{source}");
        match claim_shape(&crate::lookup::pointer(source)) {
            Some(ClaimShape::String) | None => {}
            Some(shape) => findings.push(finding(
                Severity::Error,
                &at,
                format!("\"{source}\" is {} in real tokens, and claim_mappings takes only string claims: every login fails with \"error converting claim '{source}' to string\"", match shape {
                    ClaimShape::List => "a list",
                    ClaimShape::StringOrList => "a list whenever several values are requested",
                    ClaimShape::Number => "a number",
                    ClaimShape::Bool => "a boolean",
                    _ => "an object",
                }),
                "remove this mapping (bind the claim in bound_claims instead, if it is a rule)",
            )),
        }
        if target.as_str().is_some_and(|t| t.contains('/')) {
            findings.push(finding(
                Severity::Info,
                &at,
                format!("the metadata key {target} contains '/'; policies templated on it are awkward to write"),
                "use a plain name such as \"image_digest\"",
            ));
        }
    }

    lint_ttls(role, &mut findings);
    findings
}

fn lint_subject(subject: &str, findings: &mut Vec<Finding>) {
    if subject.contains("/instances/") {
        findings.push(finding(
            Severity::Warning,
            "bound_subject",
            format!("bound_subject pins one VM instance ({subject:?}): a re-created or scaled-out VM has another name and is refused with \"invalid subject (sub) claim\", although it runs the same workload"),
            "remove bound_subject; bind /submods/gce/project_id and google_service_accounts in bound_claims instead",
        ));
    }
    if let Some(what) = invisible(subject) {
        findings.push(finding(
            Severity::Error,
            "bound_subject",
            format!("bound_subject contains {what}, so it never equals a token's subject"),
            format!("use {:?}", subject.trim()),
        ));
    }
}

fn lint_glob(globs: bool, key: &str, at: &str, value: &str, findings: &mut Vec<Finding>) {
    if !value.contains('*') {
        return;
    }
    if !globs {
        findings.push(finding(
            Severity::Warning,
            at,
            format!("{value:?} contains '*', but bound_claims_type is not \"glob\", so it only matches a claim that is literally {value:?}"),
            "set \"bound_claims_type\": \"glob\", or list the exact values",
        ));
        return;
    }
    let pointer = crate::lookup::pointer(key);
    let severity = if value.trim_matches('*').is_empty() || value.starts_with('*') {
        Severity::Error
    } else {
        Severity::Warning
    };
    let example = match pointer.as_str() {
        "/submods/gce/project_id" => " (\"operator-*\" also matches a project called \"operator-attacker\", which anyone can create)",
        "/submods/container/image_digest" => " (any image at all)",
        "/google_service_accounts" => " (any service account whose name fits, in any project)",
        _ => "",
    };
    findings.push(finding(
        severity,
        at,
        format!("the glob {value:?} matches more than one value: '*' matches any run of characters, '/' and '.' included{example}"),
        "bind the exact values; keep globs for claims whose every match you control",
    ));
}

/// The bindings every production role needs: a production image, and which image.
fn lint_bindings(
    binds: &dyn Fn(&str) -> bool,
    binds_only: &dyn Fn(&str, &str) -> bool,
    findings: &mut Vec<Finding>,
) {
    let attributes = "/submods/confidential_space/support_attributes";
    if !binds("/dbgstat") && !binds(attributes) {
        findings.push(finding(
            Severity::Error,
            "bound_claims",
            "neither dbgstat nor support_attributes is bound, so a debug image passes: on a debug image the operator can read the workload's memory, and with it the secrets".into(),
            "bind \"dbgstat\": \"disabled-since-boot\" (and \"/submods/confidential_space/support_attributes\": [\"STABLE\"])",
        ));
    } else if binds("/dbgstat") && !binds_only("/dbgstat", "disabled-since-boot") {
        findings.push(finding(
            Severity::Error,
            "bound_claims.dbgstat",
            "dbgstat is bound to a value other than \"disabled-since-boot\", so a debug image passes".into(),
            "bind \"dbgstat\": \"disabled-since-boot\"",
        ));
    }
    if !binds("/submods/container/image_digest") && !binds("/submods/container/image_signatures") {
        findings.push(finding(
            Severity::Error,
            "bound_claims",
            "no image digest is bound, so any container image that runs in the bound project passes, including one the operator wrote to print the secrets".into(),
            "bind \"/submods/container/image_digest\" to the digests of the images you reviewed",
        ));
    }
}

fn lint_ttls(role: &JwtRole, findings: &mut Vec<Finding>) {
    const ATTESTATION_LIFETIME: i64 = 3600;
    let positive = |t: i64| (t > 0).then_some(t);
    // How long a token can live, renewals included: the explicit max, else the max TTL, else
    // the mount's maximum.
    let (cap_key, cap) = match (
        positive(role.token_explicit_max_ttl),
        positive(role.token_max_ttl),
    ) {
        (Some(explicit), _) => ("token_explicit_max_ttl", Some(explicit)),
        (None, Some(max)) => ("token_max_ttl", Some(max)),
        (None, None) => ("token_explicit_max_ttl", None),
    };
    match cap {
        None if role.token_period == 0 => findings.push(finding(
            Severity::Warning,
            cap_key,
            "no maximum TTL is set, so the token can be renewed for as long as the mount allows (768 h unless tuned), long after the attestation that earned it has expired".into(),
            "set \"token_explicit_max_ttl\": \"1h\" (and a shorter \"token_ttl\")",
        )),
        Some(cap) if cap > 24 * ATTESTATION_LIFETIME => findings.push(finding(
            Severity::Warning,
            cap_key,
            format!("the token can live {cap} s, far longer than the attestation that earned it (3600 s): a stolen token outlives any change to the workload's attestation"),
            "cap it near the attestation's lifetime, e.g. \"token_explicit_max_ttl\": \"1h\"",
        )),
        _ => {}
    }
    // How long before the agent must renew or log in again.
    let first = [positive(role.token_ttl), cap].into_iter().flatten().min();
    if let Some(ttl) = first.filter(|t| *t < 300) {
        findings.push(finding(
            Severity::Warning,
            if cap == Some(ttl) { cap_key } else { "token_ttl" },
            format!("the token lives {ttl} s: a one-shot exchange is fine, but attestgate's agent must renew or log in again every {ttl} s (and Vault answers an expired token with a bare \"permission denied\")"),
            "for an agent, allow at least a few minutes (e.g. \"token_ttl\": \"15m\", \"token_explicit_max_ttl\": \"1h\")",
        ));
    }
    if role.token_type.contains("batch") {
        findings.push(finding(
            Severity::Info,
            "token_type",
            "batch tokens cannot be revoked or renewed: attestgate's revoke-after-read has no effect, the token stays valid until its TTL, and the agent logs in again instead of renewing".into(),
            "use \"token_type\": \"service\" unless login volume makes batch tokens necessary",
        ));
    }
    if role.token_period > 0 && cap.is_none() {
        findings.push(finding(
            Severity::Warning,
            "token_period",
            format!(
                "a periodic token ({} s) with no explicit max TTL can be renewed forever",
                role.token_period
            ),
            "set \"token_explicit_max_ttl\"",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DIGEST: &str = "sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646";

    /// A role with nothing to find.
    fn clean() -> Value {
        json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "token_policies": ["bank-a-secrets"],
            "token_ttl": "15m",
            "token_explicit_max_ttl": "1h",
            "bound_audiences": ["https://vault.bank-a.example"],
            "claim_mappings": {"/submods/container/image_digest": "image_digest"},
            "bound_claims": {
                "dbgstat": "disabled-since-boot",
                "/submods/confidential_space/support_attributes": ["STABLE"],
                "/submods/container/image_digest": [DIGEST],
                "/submods/gce/project_id": ["operator-project"],
                "google_service_accounts": ["workload@operator-project.iam.gserviceaccount.com"]
            }
        })
    }

    fn findings(role: &Value) -> Vec<Finding> {
        lint_jwt_role(&JwtRole::from_json(role.as_object().unwrap()).unwrap())
    }

    fn patched(patch: Value) -> Value {
        let mut role = clean();
        merge(&mut role, &patch);
        role
    }

    fn merge(target: &mut Value, patch: &Value) {
        match (target, patch) {
            (Value::Object(t), Value::Object(p)) => {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(k);
                    } else {
                        merge(t.entry(k.clone()).or_insert(Value::Null), v);
                    }
                }
            }
            (t, p) => *t = p.clone(),
        }
    }

    #[test]
    fn a_careful_role_has_no_findings() {
        assert_eq!(findings(&clean()), vec![]);
        let config = AuthConfig {
            bound_issuer: CONFIDENTIAL_SPACE_ISSUER.into(),
            jwks_url: CONFIDENTIAL_SPACE_JWKS_URL.into(),
            ..AuthConfig::default()
        };
        assert_eq!(config.lint(), vec![]);
        let discovery = AuthConfig {
            bound_issuer: CONFIDENTIAL_SPACE_ISSUER.into(),
            oidc_discovery_url: CONFIDENTIAL_SPACE_ISSUER.into(),
            ..AuthConfig::default()
        };
        assert_eq!(discovery.lint(), vec![]);
    }

    /// Each rule: a change to the careful role that triggers it (with the key and severity it
    /// must report). The careful role above is the case that must not.
    #[test]
    fn each_role_rule_fires_on_its_mistake() {
        let attributes = "/submods/confidential_space/support_attributes";
        let cases: Vec<(&str, Value, Severity, &str)> = vec![
            (
                "misspelled key",
                json!({"claims_mappings": {"hwmodel": "hwmodel"}}),
                Severity::Error,
                "claims_mappings",
            ),
            (
                "unknown key",
                json!({"description": "bank A"}),
                Severity::Warning,
                "description",
            ),
            (
                "no role_type",
                json!({"role_type": null}),
                Severity::Error,
                "role",
            ),
            (
                "refused by Vault",
                json!({"user_claim": null}),
                Severity::Error,
                "role",
            ),
            (
                "no audience",
                json!({"bound_audiences": null}),
                Severity::Error,
                "bound_audiences",
            ),
            (
                "two audiences",
                json!({"bound_audiences": ["https://vault.bank-a.example", "https://vault.bank-b.example"]}),
                Severity::Warning,
                "bound_audiences",
            ),
            (
                "STS audience",
                json!({"bound_audiences": ["https://sts.googleapis.com"]}),
                Severity::Error,
                "bound_audiences",
            ),
            (
                "audience with a space",
                json!({"bound_audiences": ["https://vault.bank-a.example "]}),
                Severity::Error,
                "bound_audiences",
            ),
            (
                "instance pinned",
                json!({"bound_subject": "https://www.googleapis.com/compute/v1/projects/p/zones/z/instances/vm1"}),
                Severity::Warning,
                "bound_subject",
            ),
            (
                "digest with a space",
                json!({"bound_claims": {"/submods/container/image_digest": [format!("{DIGEST} ")]}}),
                Severity::Error,
                "bound_claims./submods/container/image_digest",
            ),
            (
                "zero-width space",
                json!({"bound_claims": {"/submods/gce/project_id": ["operator\u{200B}-project"]}}),
                Severity::Error,
                "bound_claims./submods/gce/project_id",
            ),
            (
                "star without glob",
                json!({"bound_claims": {"/submods/gce/project_id": ["operator-*"]}}),
                Severity::Warning,
                "bound_claims./submods/gce/project_id",
            ),
            (
                "narrow glob",
                json!({"bound_claims_type": "glob", "bound_claims": {"/submods/gce/project_id": ["operator-*"]}}),
                Severity::Warning,
                "bound_claims./submods/gce/project_id",
            ),
            (
                "open glob",
                json!({"bound_claims_type": "glob", "bound_claims": {"google_service_accounts": ["*@operator-project.iam.gserviceaccount.com"]}}),
                Severity::Error,
                "bound_claims.google_service_accounts",
            ),
            (
                "pointer without slash",
                json!({"bound_claims": {"submods/gce/zone": "us-central1-a"}}),
                Severity::Error,
                "bound_claims.submods/gce/zone",
            ),
            (
                "number for a string claim",
                json!({"bound_claims": {"swversion": [260600]}}),
                Severity::Error,
                "bound_claims.swversion",
            ),
            (
                "object claim bound",
                json!({"bound_claims": {"/submods/gce": "x"}}),
                Severity::Error,
                "bound_claims./submods/gce",
            ),
            (
                "debug image passes",
                json!({"bound_claims": {"dbgstat": null, attributes: null}}),
                Severity::Error,
                "bound_claims",
            ),
            (
                "debug status bound",
                json!({"bound_claims": {"dbgstat": "enabled"}}),
                Severity::Error,
                "bound_claims.dbgstat",
            ),
            (
                "any image passes",
                json!({"bound_claims": {"/submods/container/image_digest": null}}),
                Severity::Error,
                "bound_claims",
            ),
            (
                "list claim mapped",
                json!({"claim_mappings": {"google_service_accounts": "accounts"}}),
                Severity::Error,
                "claim_mappings.google_service_accounts",
            ),
            (
                "bool claim mapped",
                json!({"claim_mappings": {"secboot": "secboot"}}),
                Severity::Error,
                "claim_mappings.secboot",
            ),
            (
                "pointer as metadata key",
                json!({"claim_mappings": {"/submods/container/image_digest": "/submods/container/image_digest"}}),
                Severity::Info,
                "claim_mappings./submods/container/image_digest",
            ),
            (
                "short token",
                json!({"token_explicit_max_ttl": 60}),
                Severity::Warning,
                "token_explicit_max_ttl",
            ),
            (
                "long token",
                json!({"token_ttl": "768h", "token_explicit_max_ttl": "720h"}),
                Severity::Warning,
                "token_explicit_max_ttl",
            ),
            (
                "no TTL",
                json!({"token_ttl": null, "token_explicit_max_ttl": null}),
                Severity::Warning,
                "token_explicit_max_ttl",
            ),
            (
                "batch token",
                json!({"token_type": "batch"}),
                Severity::Info,
                "token_type",
            ),
            (
                "periodic token",
                json!({"token_period": "1h", "token_explicit_max_ttl": null, "token_ttl": "15m"}),
                Severity::Warning,
                "token_period",
            ),
        ];
        for (name, patch, severity, key) in cases {
            let found = findings(&patched(patch));
            assert!(
                found.iter().any(|f| f.severity == severity && f.key == key),
                "{name}: expected {severity:?} on {key}, found {found:#?}"
            );
            assert!(found
                .iter()
                .all(|f| !f.message.is_empty() && !f.fix.is_empty()));
        }
    }

    #[test]
    fn each_config_rule_fires_on_its_mistake() {
        let cases: Vec<(&str, AuthConfig, &str)> = vec![
            (
                "trailing slash",
                AuthConfig {
                    bound_issuer: format!("{CONFIDENTIAL_SPACE_ISSUER}/"),
                    ..Default::default()
                },
                "trailing slash",
            ),
            (
                "http",
                AuthConfig {
                    bound_issuer: CONFIDENTIAL_SPACE_ISSUER.replace("https", "http"),
                    ..Default::default()
                },
                "uses http",
            ),
            (
                "space",
                AuthConfig {
                    bound_issuer: format!("{CONFIDENTIAL_SPACE_ISSUER} "),
                    ..Default::default()
                },
                "whitespace",
            ),
            (
                "typo",
                AuthConfig {
                    bound_issuer: "https://confidentialcomputing.googleapis.co".into(),
                    ..Default::default()
                },
                "not the Confidential Space issuer",
            ),
            (
                "empty",
                AuthConfig::default(),
                "does not check the token's issuer",
            ),
            (
                "dev launcher keys",
                AuthConfig {
                    bound_issuer: CONFIDENTIAL_SPACE_ISSUER.into(),
                    jwks_url: "http://127.0.0.1:8080/jwks".into(),
                    ..Default::default()
                },
                "dev launcher",
            ),
            (
                "plain http keys",
                AuthConfig {
                    bound_issuer: CONFIDENTIAL_SPACE_ISSUER.into(),
                    jwks_url: "http://keys.example/jwks".into(),
                    ..Default::default()
                },
                "plain http",
            ),
            (
                "other keys",
                AuthConfig {
                    bound_issuer: CONFIDENTIAL_SPACE_ISSUER.into(),
                    oidc_discovery_url: "https://accounts.google.com".into(),
                    ..Default::default()
                },
                "not Google's Confidential Space keys",
            ),
            (
                "static keys",
                AuthConfig {
                    bound_issuer: CONFIDENTIAL_SPACE_ISSUER.into(),
                    jwt_validation_pubkeys: vec!["-----BEGIN PUBLIC KEY-----".into()],
                    ..Default::default()
                },
                "static keys",
            ),
        ];
        for (name, config, expected) in cases {
            let found = config.lint();
            assert!(
                found.iter().any(|f| f.message.contains(expected)),
                "{name}: expected {expected:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn typos_are_matched_to_the_closest_real_key() {
        assert_eq!(
            closest("claims_mappings", crate::jwt::ROLE_FIELDS),
            Some("claim_mappings")
        );
        assert_eq!(
            closest("bound_audience", crate::jwt::ROLE_FIELDS),
            Some("bound_audiences")
        );
        assert_eq!(closest("description", crate::jwt::ROLE_FIELDS), None);
    }
}
