//! What a plugin answers, once the host has held it to the contract: a [`Verdict`] of
//! [`Reason`]s and [`Login`] parameters, and the [`TokenRequest`] it selects. Whatever breaks the
//! contract is a typed [`ContractViolation`], which the caller turns into a deny.
//!
//! Everything here is plain data in, plain data out: no wasmtime (`bindings.rs` converts the
//! contract's generated types into these), so every rule is unit-tested and fuzzed directly.

use crate::attestation::TokenRequest;
use crate::attestation::{request_limits_violation, RequestLimitViolation};
use serde::Serialize;
use std::time::Duration;

/// The most reasons one verdict may carry.
pub const MAX_REASONS: usize = 256;
/// Reason messages and plugin errors are cut to this many bytes for display.
pub const MAX_MESSAGE_BYTES: usize = 2048;
/// The longest claim pointer kept; a longer one is cut.
const MAX_CLAIM_BYTES: usize = 256;
/// The longest Vault role a plugin may choose.
pub const MAX_ROLE_BYTES: usize = 256;

/// One rule a plugin checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// JSON pointer to the claim the rule looked at; `None` when it concerns no single claim.
    pub claim: Option<String>,
    /// Whether the rule held.
    pub passed: bool,
    /// What was required and what was found, escaped and cut for display.
    pub message: String,
}

impl std::fmt::Display for Reason {
    /// `/claim: message`, or the message alone: how every report prints a reason.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.claim {
            Some(claim) => write!(f, "{claim}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// How the host logs in with the token, as far as the plugin chose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Login {
    /// The Vault role, overriding the collaborator's configured one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A plugin's decision, after the host checked it keeps the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// True only when every rule held.
    pub allow: bool,
    /// Every rule checked, passed or failed.
    pub reasons: Vec<Reason>,
    /// Login parameters the plugin chose.
    pub login: Login,
}

impl Verdict {
    /// The rules that failed.
    pub fn failed_reasons(&self) -> impl Iterator<Item = &Reason> {
        self.reasons.iter().filter(|r| !r.passed)
    }

    /// The failed rules, one after another, for a one-line error message.
    pub fn failures_summary(&self) -> String {
        let failed: Vec<String> = self.failed_reasons().map(Reason::to_string).collect();
        failed.join("; ")
    }
}

/// A verdict and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    /// The checked verdict.
    pub verdict: Verdict,
    /// Wall time of the `evaluate` call, instantiation included.
    pub duration: Duration,
}

/// How a plugin's answer breaks the contract. Each one is a deny.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContractViolation {
    /// More reasons than [`MAX_REASONS`].
    #[error("{0} reasons, over the limit of {MAX_REASONS}")]
    TooManyReasons(usize),
    /// A reason's claim is not a JSON pointer.
    #[error("reason claim \"{0}\" is not a JSON pointer (it must start with `/`, or be none)")]
    ClaimNotAPointer(String),
    /// An allow with no reason at all.
    #[error("it allowed without giving any reason")]
    AllowWithoutReason,
    /// An allow although a rule failed.
    #[error("it allowed although a rule failed: {0}")]
    AllowDespiteFailure(String),
    /// A deny with no failed rule to say why.
    #[error("it denied without a failed reason")]
    DenyWithoutFailure,
    /// A login role that cannot be a Vault role name.
    #[error("login role \"{0}\" is empty, longer than {MAX_ROLE_BYTES} bytes, or contains whitespace or control characters")]
    BadRole(String),
    /// An empty audience.
    #[error("the audience is empty")]
    EmptyAudience,
    /// An audience other than the collaborator's declared one.
    #[error("it asked for audience \"{asked}\", but this collaborator's declared audience is \"{declared}\"; a plugin may only select its own collaborator's audience")]
    NotTheDeclaredAudience {
        /// What the plugin asked for (escaped).
        asked: String,
        /// What the operator declared.
        declared: String,
    },
    /// A request the attestation verifier would refuse.
    #[error("the launcher would refuse it")]
    LauncherLimits(#[source] RequestLimitViolation),
}

/// Plugin-supplied text, cut to `max` bytes with control characters escaped: it is shown to the
/// operator, and a newline or terminal escape in it could forge lines of attestgate's output.
pub(super) fn for_display(text: String, max: usize) -> String {
    let mut text = match crate::http::escape_control(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    };
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

/// Holds a verdict, as the plugin returned it, to the contract.
pub fn check_verdict(raw: Verdict) -> Result<Verdict, ContractViolation> {
    if raw.reasons.len() > MAX_REASONS {
        return Err(ContractViolation::TooManyReasons(raw.reasons.len()));
    }
    let reasons: Vec<Reason> = raw
        .reasons
        .into_iter()
        .map(|r| Reason {
            claim: r.claim.map(|claim| for_display(claim, MAX_CLAIM_BYTES)),
            passed: r.passed,
            message: for_display(r.message, MAX_MESSAGE_BYTES),
        })
        .collect();
    if let Some(claim) = reasons
        .iter()
        .filter_map(|r| r.claim.as_ref())
        .find(|claim| !claim.starts_with('/'))
    {
        return Err(ContractViolation::ClaimNotAPointer(claim.clone()));
    }
    if raw.allow {
        if reasons.is_empty() {
            return Err(ContractViolation::AllowWithoutReason);
        }
        if let Some(failed) = reasons.iter().find(|r| !r.passed) {
            return Err(ContractViolation::AllowDespiteFailure(failed.to_string()));
        }
    } else if reasons.iter().all(|r| r.passed) {
        return Err(ContractViolation::DenyWithoutFailure);
    }
    let role = match raw.login.role {
        Some(role) if is_role_name(&role) => Some(role),
        Some(role) => {
            return Err(ContractViolation::BadRole(for_display(
                role,
                MAX_ROLE_BYTES,
            )))
        }
        None => None,
    };
    Ok(Verdict {
        allow: raw.allow,
        reasons,
        login: Login { role },
    })
}

/// A Vault role name as the plugin may choose it: sent in a JSON body, and printed in reports.
fn is_role_name(role: &str) -> bool {
    !role.is_empty()
        && role.len() <= MAX_ROLE_BYTES
        && !role.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Holds a `select-audience` answer, as the plugin returned it, to the contract and to the
/// declared audience.
pub fn check_audience_request(
    request: TokenRequest,
    declared: Option<&str>,
) -> Result<TokenRequest, ContractViolation> {
    if request.audience.trim().is_empty() {
        return Err(ContractViolation::EmptyAudience);
    }
    if let Some(declared) = declared.filter(|d| *d != request.audience) {
        return Err(ContractViolation::NotTheDeclaredAudience {
            asked: for_display(request.audience, crate::attestation::MAX_AUDIENCE_BYTES),
            declared: declared.to_owned(),
        });
    }
    if let Some(violation) = request_limits_violation(&request.audience, &request.nonces) {
        return Err(ContractViolation::LauncherLimits(violation));
    }
    Ok(request)
}

/// Which rules passed and failed, by claim pointer only: messages may quote claim values, and
/// claim values are not logged. Formatted only when the log line is actually emitted.
#[cfg(feature = "engine")]
pub(super) struct ReasonSummary<'a>(pub(super) &'a [Reason]);

#[cfg(feature = "engine")]
impl std::fmt::Display for ReasonSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, reason) in self.0.iter().enumerate() {
            let claim = reason.claim.as_deref().unwrap_or("-");
            let outcome = if reason.passed { "pass" } else { "fail" };
            write!(f, "{}{claim}:{outcome}", if index == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attestation::TokenType;

    fn reason(claim: Option<&str>, passed: bool) -> Reason {
        Reason {
            claim: claim.map(str::to_owned),
            passed,
            message: format!("rule on {claim:?}"),
        }
    }

    fn verdict(allow: bool, reasons: Vec<Reason>) -> Verdict {
        Verdict {
            allow,
            reasons,
            login: Login { role: None },
        }
    }

    fn request(audience: &str, nonces: &[&str]) -> TokenRequest {
        TokenRequest {
            audience: audience.into(),
            token_type: TokenType::Oidc,
            nonces: nonces.iter().map(|n| n.to_string()).collect(),
        }
    }

    #[test]
    fn an_allow_with_all_rules_passed_is_kept() {
        let checked = check_verdict(verdict(true, vec![reason(Some("/hwmodel"), true)])).unwrap();
        assert!(checked.allow);
        assert_eq!(checked.reasons[0].claim.as_deref(), Some("/hwmodel"));
    }

    #[test]
    fn an_allow_must_give_a_reason_and_pass_every_rule() {
        assert_eq!(
            check_verdict(verdict(true, vec![])),
            Err(ContractViolation::AllowWithoutReason)
        );
        assert!(matches!(
            check_verdict(verdict(
                true,
                vec![reason(None, true), reason(Some("/a"), false)]
            )),
            Err(ContractViolation::AllowDespiteFailure(_))
        ));
    }

    #[test]
    fn a_deny_must_name_a_failed_rule() {
        assert_eq!(
            check_verdict(verdict(false, vec![reason(None, true)])),
            Err(ContractViolation::DenyWithoutFailure)
        );
        assert!(check_verdict(verdict(false, vec![reason(None, false)])).is_ok());
    }

    #[test]
    fn claims_must_be_json_pointers() {
        assert_eq!(
            check_verdict(verdict(true, vec![reason(Some("hwmodel"), true)])),
            Err(ContractViolation::ClaimNotAPointer("hwmodel".into()))
        );
    }

    #[test]
    fn too_many_reasons_are_refused_before_anything_is_copied() {
        let many = (0..=MAX_REASONS).map(|_| reason(None, true)).collect();
        assert_eq!(
            check_verdict(verdict(true, many)),
            Err(ContractViolation::TooManyReasons(MAX_REASONS + 1))
        );
    }

    #[test]
    fn plugin_text_is_escaped_and_cut_for_display() {
        let mut raw = verdict(false, vec![reason(Some("/a"), false)]);
        raw.reasons[0].message = format!("line\nforged{}", "x".repeat(3 * MAX_MESSAGE_BYTES));
        let checked = check_verdict(raw).unwrap();
        let message = &checked.reasons[0].message;
        assert!(!message.contains('\n'), "{message}");
        assert!(message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
    }

    #[test]
    fn a_login_role_must_be_a_plain_name() {
        for bad in ["", "a b", "role\nforged", &"r".repeat(MAX_ROLE_BYTES + 1)] {
            let mut raw = verdict(true, vec![reason(None, true)]);
            raw.login.role = Some(bad.to_owned());
            assert!(
                matches!(check_verdict(raw), Err(ContractViolation::BadRole(_))),
                "{bad:?} was accepted"
            );
        }
        let mut raw = verdict(true, vec![reason(None, true)]);
        raw.login.role = Some("bank-a.reader_2".into());
        assert_eq!(
            check_verdict(raw).unwrap().login.role.as_deref(),
            Some("bank-a.reader_2")
        );
    }

    #[test]
    fn reasons_render_with_their_claim_when_they_have_one() {
        let with = Reason {
            claim: Some("/dbgstat".into()),
            passed: false,
            message: "must be disabled".into(),
        };
        let without = Reason {
            claim: None,
            ..with.clone()
        };
        assert_eq!(with.to_string(), "/dbgstat: must be disabled");
        assert_eq!(without.to_string(), "must be disabled");
        assert_eq!(
            ReasonSummary(&[with, without]).to_string(),
            "/dbgstat:fail -:fail"
        );
    }

    #[test]
    fn only_the_declared_audience_may_be_selected() {
        let declared = Some("https://vault.bank-a.example");
        assert!(
            check_audience_request(request("https://vault.bank-a.example", &[]), declared).is_ok()
        );
        assert!(matches!(
            check_audience_request(request("https://vault.bank-b.example", &[]), declared),
            Err(ContractViolation::NotTheDeclaredAudience { .. })
        ));
        assert_eq!(
            check_audience_request(request("  ", &[]), None),
            Err(ContractViolation::EmptyAudience)
        );
    }

    #[test]
    fn a_request_the_launcher_would_refuse_is_refused_here() {
        assert_eq!(
            check_audience_request(request("https://a.example", &["short"]), None),
            Err(ContractViolation::LauncherLimits(
                RequestLimitViolation::NonceLength { index: 0, bytes: 5 }
            ))
        );
    }
}
