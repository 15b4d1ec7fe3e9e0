//! Classic JWT roles (`auth/<mount>/role/<name>`, logged in at `auth/<mount>/login`): the role
//! JSON as Vault reads it, what Vault refuses when the role is written, and what a login with
//! given claims returns, in Vault's words and order.
//!
//! A login runs, in order (vault-plugin-auth-jwt's `pathLogin`): the role type; the validator's
//! token checks (signature, done by the caller; issuer, subject, audience, times); the strict
//! audience rule; the user claim; `claim_mappings`; `groups_claim`; `bound_claims`. The first
//! failure is the answer. `claim_mappings` and `bound_claims` are Go maps, walked in a random
//! order, so when several of their entries fail, any of them can be the one reported.

use crate::lookup::{claim, glob_match, go_quote, pointer, GoValue};
use crate::prediction::{Decision, Prediction, Trace};
use crate::timing::Leeways;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The keys Vault's JWT role takes (`path_role.go`); anything else is silently ignored when the
/// role is written, which is how a misspelled `claims_mappings` goes unnoticed.
pub const ROLE_FIELDS: &[&str] = &[
    "name",
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
    "callback_mode",
    "poll_interval",
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
    "token_policies_template_claims",
    "oidc_disable_confirmation",
    "oauth2_metadata",
    "token_strictly_bind_ip",
];

/// A classic role, read leniently as Vault reads it: list fields take a JSON list or one
/// comma-separated string, durations take seconds or Go durations (`"1h30m"`).
#[derive(Debug, Clone, Default)]
pub struct JwtRole {
    /// The JSON as given, for the lints that look at keys Vault ignores.
    pub raw: Map<String, Value>,
    /// `role_type`; Vault stores `oidc` when it is omitted.
    pub role_type: Option<String>,
    /// `bound_audiences`.
    pub bound_audiences: Vec<String>,
    /// `bound_subject` (empty: not checked).
    pub bound_subject: String,
    /// `bound_claims`.
    pub bound_claims: Map<String, Value>,
    /// `bound_claims_type` is `glob`.
    pub globs: bool,
    /// `claim_mappings`: claim (key or JSON pointer) → metadata key.
    pub claim_mappings: Map<String, Value>,
    /// `user_claim`.
    pub user_claim: String,
    /// `user_claim_json_pointer`.
    pub user_claim_json_pointer: bool,
    /// `groups_claim`.
    pub groups_claim: String,
    /// `token_policies`, or the legacy `policies` when only it is given.
    pub token_policies: Vec<String>,
    /// `token_no_default_policy`.
    pub token_no_default_policy: bool,
    /// `token_policies_template_claims`: the policies are templated from the claims (OpenBao).
    pub token_policies_template_claims: bool,
    /// The three leeways.
    pub leeways: Leeways,
    /// `token_ttl` (or legacy `ttl`), seconds.
    pub token_ttl: i64,
    /// `token_max_ttl` (or legacy `max_ttl`), seconds.
    pub token_max_ttl: i64,
    /// `token_explicit_max_ttl`, seconds.
    pub token_explicit_max_ttl: i64,
    /// `token_period` (or legacy `period`), seconds.
    pub token_period: i64,
    /// `token_type` (`default`, `service`, `batch`, …).
    pub token_type: String,
    /// `token_num_uses` (or legacy `num_uses`).
    pub token_num_uses: i64,
    /// `token_bound_cidrs` (or legacy `bound_cidrs`).
    pub token_bound_cidrs: Vec<String>,
}

/// A field whose value Vault cannot read as its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The role key.
    pub key: String,
    /// What it should be.
    pub expected: &'static str,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "\"{}\" must be {}", self.key, self.expected)
    }
}

impl std::error::Error for FieldError {}

/// Vault's list fields: a JSON list of strings, or one comma-separated string.
pub fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        None | Some(Value::Null) => Some(Vec::new()),
        Some(Value::String(s)) => Some(
            s.split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect(),
        ),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => None,
    }
}

/// Vault's duration fields: whole seconds, or a Go duration such as `"90s"`, `"1h30m"`.
pub fn seconds(value: Option<&Value>) -> Option<i64> {
    match value {
        None | Some(Value::Null) => Some(0),
        Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Some(Value::String(s)) => parse_duration(s.trim()),
        Some(_) => None,
    }
}

fn parse_duration(text: &str) -> Option<i64> {
    if text.is_empty() {
        return Some(0);
    }
    if let Ok(n) = text.parse::<i64>() {
        return Some(n);
    }
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    let total = total as i64;
    Some(if negative { -total } else { total })
}

fn flag(value: Option<&Value>) -> Option<bool> {
    match value {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    }
}

impl JwtRole {
    /// Reads a role's JSON. Unknown keys are kept in `raw` (Vault ignores them).
    pub fn from_json(raw: &Map<String, Value>) -> Result<JwtRole, FieldError> {
        let err = |key: &str, expected: &'static str| FieldError {
            key: key.to_owned(),
            expected,
        };
        let list = |key: &str| {
            string_list(raw.get(key))
                .ok_or_else(|| err(key, "a list of strings or a comma-separated string"))
        };
        let duration = |key: &str| {
            seconds(raw.get(key))
                .ok_or_else(|| err(key, "a number of seconds or a duration such as \"1h\""))
        };
        let either = |new: &str, legacy: &str| -> Result<i64, FieldError> {
            if raw.contains_key(new) {
                duration(new)
            } else {
                duration(legacy)
            }
        };
        let text = |key: &str| match raw.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(err(key, "a string")),
        };
        let object = |key: &str| match raw.get(key) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(map)) => Ok(map.clone()),
            Some(_) => Err(err(key, "an object")),
        };
        let token_policies = if raw.contains_key("token_policies") {
            list("token_policies")?
        } else {
            list("policies")?
        };
        let globs = match raw.get("bound_claims_type") {
            None | Some(Value::Null) => false,
            Some(Value::String(kind)) => kind == "glob",
            Some(_) => return Err(err("bound_claims_type", "\"string\" or \"glob\"")),
        };
        Ok(JwtRole {
            raw: raw.clone(),
            role_type: match raw.get("role_type") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(err("role_type", "\"jwt\" or \"oidc\"")),
            },
            bound_audiences: list("bound_audiences")?,
            bound_subject: text("bound_subject")?,
            bound_claims: object("bound_claims")?,
            globs,
            claim_mappings: object("claim_mappings")?,
            user_claim: text("user_claim")?,
            user_claim_json_pointer: flag(raw.get("user_claim_json_pointer"))
                .ok_or_else(|| err("user_claim_json_pointer", "true or false"))?,
            groups_claim: text("groups_claim")?,
            token_policies,
            token_no_default_policy: flag(raw.get("token_no_default_policy"))
                .ok_or_else(|| err("token_no_default_policy", "true or false"))?,
            token_policies_template_claims: flag(raw.get("token_policies_template_claims"))
                .ok_or_else(|| err("token_policies_template_claims", "true or false"))?,
            leeways: Leeways {
                clock_skew: duration("clock_skew_leeway")?,
                expiration: duration("expiration_leeway")?,
                not_before: duration("not_before_leeway")?,
            },
            token_ttl: either("token_ttl", "ttl")?,
            token_max_ttl: either("token_max_ttl", "max_ttl")?,
            token_explicit_max_ttl: duration("token_explicit_max_ttl")?,
            token_period: either("token_period", "period")?,
            token_type: match text("token_type")? {
                t if t.is_empty() => "default".into(),
                t => t,
            },
            token_num_uses: either("token_num_uses", "num_uses")?,
            token_bound_cidrs: if raw.contains_key("token_bound_cidrs") {
                list("token_bound_cidrs")?
            } else {
                list("bound_cidrs")?
            },
        })
    }

    /// Why Vault would refuse to store this role (`pathRoleCreateUpdate`'s checks, in its
    /// order), or `None`.
    pub fn write_refusal(&self) -> Option<String> {
        let role_type = self.role_type.as_deref().unwrap_or("oidc");
        if role_type != "jwt" && role_type != "oidc" {
            return Some(format!("invalid 'role_type': {role_type}"));
        }
        if ![
            "default",
            "service",
            "batch",
            "default-service",
            "default-batch",
        ]
        .contains(&self.token_type.as_str())
        {
            return Some(format!(
                "invalid 'token_type' value {}",
                go_quote(&self.token_type)
            ));
        }
        if let Some(Value::String(kind)) = self.raw.get("bound_claims_type") {
            if kind != "string" && kind != "glob" {
                return Some(format!("invalid 'bound_claims_type': {kind}"));
            }
        }
        if self.globs {
            for value in self.bound_claims.values() {
                let value = GoValue::from_role(value);
                let Some(items) = value.normalize() else {
                    return Some(format!(
                        "claim is not a string or list: {}",
                        value.go_format()
                    ));
                };
                if let Some(bad) = items.iter().find(|v| !matches!(v, GoValue::String(_))) {
                    return Some(format!("claim is not a string: {}", bad.go_format()));
                }
            }
        }
        let mut targets: Vec<&str> = Vec::new();
        for target in self.claim_mappings.values() {
            let target = target.as_str().unwrap_or_default();
            if target == "role" {
                return Some(format!(
                    "metadata key {} is reserved and may not be a mapping destination",
                    go_quote(target)
                ));
            }
            if targets.contains(&target) {
                return Some(format!(
                    "multiple keys are mapped to metadata key {}",
                    go_quote(target)
                ));
            }
            targets.push(target);
        }
        if self.user_claim.is_empty() {
            return Some("a user claim must be defined on the role".into());
        }
        if role_type == "oidc" {
            let redirects = string_list(self.raw.get("allowed_redirect_uris")).unwrap_or_default();
            if redirects.is_empty() {
                return Some(
                    "'allowed_redirect_uris' must be set if 'role_type' is 'oidc' or unspecified."
                        .into(),
                );
            }
        } else if self.bound_audiences.is_empty()
            && self.token_bound_cidrs.is_empty()
            && self.bound_subject.is_empty()
            && self.bound_claims.is_empty()
        {
            return Some(
                "must have at least one bound constraint when creating/updating a role".into(),
            );
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Some("ttl should not be greater than max ttl".into());
        }
        None
    }

    /// What `auth/<mount>/login` returns for a token with these (signature-checked) claims.
    /// `name` is the role's name (lowercased, as Vault stores it).
    pub fn login(&self, name: &str, checks: &TokenChecks<'_>, claims: &Value) -> Prediction {
        let mut trace = Trace::default();
        if let Some(refusal) = self.write_refusal() {
            trace.fail(None, format!("Vault refuses to store this role: {refusal}"));
            return trace.deny();
        }
        if self.role_type.as_deref() != Some("jwt") {
            trace.fail(None, "role with oidc role_type is not allowed");
            return trace.deny();
        }
        if !self.token_bound_cidrs.is_empty() {
            // Vault checks these first, against the address the login comes from, and answers
            // a bare "permission denied" (403) from outside them; only the server knows it.
            trace.pass(
                None,
                format!(
                    "token_bound_cidrs {:?}: the login must come from one of them (not predicted: it depends on the client's address)",
                    self.token_bound_cidrs
                ),
            );
        }
        checks.validate(
            Some(&self.bound_subject),
            &self.bound_audiences,
            self.leeways,
            claims,
            &mut trace,
        );
        if self.bound_audiences.is_empty() && !audiences(claims).is_empty() {
            trace.fail(
                Some("/aud"),
                "audience claim found in JWT but no audiences bound to the role",
            );
            trace.end_stage();
        }

        let user = if self.user_claim_json_pointer {
            claim(claims, &self.user_claim)
        } else {
            claims.get(&self.user_claim).filter(|v| !v.is_null())
        };
        let user_pointer = pointer(&self.user_claim);
        match user {
            None => trace.fail(
                Some(&user_pointer),
                format!("claim {} not found in token", go_quote(&self.user_claim)),
            ),
            Some(Value::String(_)) => trace.pass(
                Some(&user_pointer),
                format!("user claim {:?} is a string", self.user_claim),
            ),
            Some(_) => trace.fail(
                Some(&user_pointer),
                format!(
                    "claim {} could not be converted to string",
                    go_quote(&self.user_claim)
                ),
            ),
        }
        trace.end_stage();

        let mut metadata = BTreeMap::new();
        for (source, target) in &self.claim_mappings {
            let target = target.as_str().unwrap_or_default();
            match claim(claims, source) {
                None => trace.pass(
                    Some(&pointer(source)),
                    format!("claim '{source}' is absent: no metadata {target:?}"),
                ),
                Some(Value::String(value)) => {
                    trace.pass(
                        Some(&pointer(source)),
                        format!("claim '{source}' is mapped to metadata {target:?}"),
                    );
                    metadata.insert(target.to_owned(), value.clone());
                }
                Some(_) => trace.fail(
                    Some(&pointer(source)),
                    format!("error converting claim '{source}' to string"),
                ),
            }
        }
        trace.end_stage();
        metadata.insert("role".to_owned(), name.to_owned());

        if !self.groups_claim.is_empty() {
            self.check_groups(claims, &mut trace);
            trace.end_stage();
        }

        for (key, expected) in &self.bound_claims {
            self.check_bound_claim(key, expected, claims, &mut trace);
        }
        trace.end_stage();

        if self.token_policies_template_claims {
            trace.pass(
                None,
                "token_policies_template_claims: the policies are templated from the claims (not predicted)",
            );
        }
        finish_with_policies(
            trace,
            &self.token_policies,
            !self.token_no_default_policy,
            metadata,
        )
    }

    /// `groups_claim`, as `createIdentity` reads it: `normalizeList`, then every value a string.
    fn check_groups(&self, claims: &Value, trace: &mut Trace) {
        let key = &self.groups_claim;
        let at = pointer(key);
        let Some(groups) = claim(claims, key).and_then(GoValue::from_claim) else {
            trace.fail(
                Some(&at),
                format!(
                    "failed to fetch groups: {} claim not found in token",
                    go_quote(key)
                ),
            );
            return;
        };
        let Some(items) = groups.normalize() else {
            trace.fail(
                Some(&at),
                format!(
                    "{} claim could not be converted to string list",
                    go_quote(key)
                ),
            );
            return;
        };
        match items.iter().find(|v| !matches!(v, GoValue::String(_))) {
            Some(bad) => trace.fail(
                Some(&at),
                format!(
                    "value {} in groups claim could not be parsed as string",
                    bad.go_format()
                ),
            ),
            None => trace.pass(
                Some(&at),
                format!("groups claim {} holds strings", go_quote(key)),
            ),
        }
    }

    /// One entry of `validateBoundClaims`.
    fn check_bound_claim(&self, key: &str, expected: &Value, claims: &Value, trace: &mut Trace) {
        let at = pointer(key);
        let Some(actual) = claim(claims, key).and_then(GoValue::from_claim) else {
            trace.fail(
                Some(&at),
                format!(
                    "error validating claims: claim {} is missing",
                    go_quote(key)
                ),
            );
            return;
        };
        let Some(actual_items) = actual.normalize() else {
            trace.fail(
                Some(&at),
                format!(
                    "error validating claims: received claim is not a string, bool, int or list: {}",
                    actual.go_format()
                ),
            );
            return;
        };
        let expected = GoValue::from_role(expected);
        let Some(expected_items) = expected.normalize() else {
            trace.fail(
                Some(&at),
                format!(
                    "error validating claims: bound claim is not a string, bool, int or list: {}",
                    expected.go_format()
                ),
            );
            return;
        };
        let matched = expected_items.iter().any(|e| {
            actual_items.iter().any(|a| match (self.globs, e, a) {
                (true, GoValue::String(pattern), GoValue::String(text)) => {
                    glob_match(pattern, text)
                }
                (true, _, _) => false,
                (false, e, a) => e.go_equal(a),
            })
        });
        if matched {
            trace.pass(
                Some(&at),
                format!("claim {key:?} matches a bound claim value"),
            );
        } else {
            trace.fail(
                Some(&at),
                format!("error validating claims: claim {} does not match any associated bound claim values", go_quote(key)),
            );
        }
    }
}

/// The end of a login that passed the role's checks: Vault core refuses to let an auth method
/// create a root token, and otherwise issues the sanitised policies.
pub(crate) fn finish_with_policies(
    mut trace: Trace,
    policies: &[String],
    add_default: bool,
    metadata: BTreeMap<String, String>,
) -> Prediction {
    if policies.iter().any(|p| p.to_lowercase() == "root") {
        trace.fail(None, "auth methods cannot create root tokens");
        return trace.deny();
    }
    let policies = sanitize_policies(policies, add_default);
    trace.finish(Decision::Allow { policies, metadata })
}

/// Vault core's `SanitizePolicies`: lowercased, without empties, `default` added (unless the
/// role says not to, or `root` is among them), deduplicated and sorted.
pub fn sanitize_policies(policies: &[String], add_default: bool) -> Vec<String> {
    let mut out: Vec<String> = policies
        .iter()
        .map(|p| p.to_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    if out.iter().any(|p| p == "root") {
        return vec!["root".into()];
    }
    if add_default && !out.iter().any(|p| p == "default") {
        out.push("default".into());
    }
    out.sort();
    out.dedup();
    out
}

/// The token's `aud`: one string or a list.
pub fn audiences(claims: &Value) -> Vec<&str> {
    match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The validator's audience check: skipped without bound audiences, else any match.
pub(crate) fn check_audience(bound: &[String], claims: &Value, trace: &mut Trace) {
    if bound.is_empty() {
        return;
    }
    let found = audiences(claims);
    if found.iter().any(|a| bound.iter().any(|b| b == a)) {
        trace.pass(Some("/aud"), format!("audience {found:?} is bound"));
    } else {
        trace.fail(
            Some("/aud"),
            "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience",
        );
    }
}

/// The mount-level checks a login runs before the role's: the issuer from the mount's
/// `bound_issuer`, and the times. Every check is run and recorded; the first failure is the
/// answer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokenChecks<'a> {
    /// The mount's `bound_issuer`; `None` or empty: not checked (as Vault does not).
    pub bound_issuer: Option<&'a str>,
    /// When the login happens (Unix seconds); `None` skips the time checks (inside the TEE, the
    /// host's verifier has checked them).
    pub at: Option<i64>,
}

impl TokenChecks<'_> {
    /// The validator's checks after the signature, in its order: issuer, subject, audience,
    /// times; each a stage of its own.
    pub(crate) fn validate(
        &self,
        bound_subject: Option<&str>,
        bound_audiences: &[String],
        leeways: Leeways,
        claims: &Value,
        trace: &mut Trace,
    ) {
        if let Some(issuer) = self.bound_issuer.filter(|i| !i.is_empty()) {
            if claims.get("iss").and_then(Value::as_str) == Some(issuer) {
                trace.pass(
                    Some("/iss"),
                    format!("issuer {issuer:?} is the bound issuer"),
                );
            } else {
                trace.fail(
                    Some("/iss"),
                    "error validating token: invalid issuer (iss) claim",
                );
            }
            trace.end_stage();
        }
        if let Some(subject) = bound_subject.filter(|s| !s.is_empty()) {
            if claims.get("sub").and_then(Value::as_str) == Some(subject) {
                trace.pass(Some("/sub"), "subject is the bound subject");
            } else {
                trace.fail(
                    Some("/sub"),
                    "error validating token: invalid subject (sub) claim",
                );
            }
            trace.end_stage();
        }
        check_audience(bound_audiences, claims, trace);
        trace.end_stage();
        if let Some(now) = self.at {
            leeways.check(claims, now, trace);
        }
    }
}
