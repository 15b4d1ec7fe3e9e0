//! The rules collaborators usually want, each returning a [`Reason`] that says what was required
//! and what was found, and a [`Report`] that turns reasons into a [`Verdict`].

use crate::{Claims, Login, Reason, Verdict};

/// A claim key as a JSON pointer: a top-level name such as `hwmodel` becomes `/hwmodel` (escaped
/// per RFC 6901), and a pointer stays as it is.
pub fn pointer(key: &str) -> String {
    if key.starts_with('/') {
        key.to_owned()
    } else {
        format!("/{}", key.replace('~', "~0").replace('/', "~1"))
    }
}

/// A reason about one claim, by pointer or top-level name.
fn reason(claim: &str, passed: bool, message: String) -> Reason {
    Reason {
        claim: Some(pointer(claim)),
        passed,
        message,
    }
}

fn quoted(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("\"{v}\"")).collect();
    format!("[{}]", quoted.join(", "))
}

/// Collects reasons; the verdict allows only if there is at least one and all passed.
#[derive(Debug, Default, Clone)]
pub struct Report {
    reasons: Vec<Reason>,
    role: Option<String>,
}

impl Report {
    /// A report with no reasons yet.
    pub fn new() -> Self {
        Report::default()
    }

    /// Adds a reason, usually one from this module's rules.
    pub fn add(&mut self, reason: Reason) -> &mut Self {
        self.reasons.push(reason);
        self
    }

    /// Adds a rule that held. `claim` is the claim it looked at (a JSON pointer or a top-level
    /// name), or `None` when the rule concerns no single claim (say, a time window).
    pub fn pass(&mut self, claim: Option<&str>, message: impl Into<String>) -> &mut Self {
        self.add(Reason {
            claim: claim.map(pointer),
            passed: true,
            message: message.into(),
        })
    }

    /// Adds a rule that failed; `claim` as in [`Report::pass`].
    pub fn fail(&mut self, claim: Option<&str>, message: impl Into<String>) -> &mut Self {
        self.add(Reason {
            claim: claim.map(pointer),
            passed: false,
            message: message.into(),
        })
    }

    /// The Vault role to log in with, overriding the collaborator's configured `role`. The host
    /// refuses a role that is empty, longer than 256 bytes, or holds whitespace or control
    /// characters.
    pub fn role(&mut self, role: &str) -> &mut Self {
        self.role = Some(role.to_owned());
        self
    }

    /// Whether there is at least one reason and every one passed.
    pub fn passed(&self) -> bool {
        !self.reasons.is_empty() && self.reasons.iter().all(|r| r.passed)
    }

    /// The verdict. Fails closed: a policy that checked nothing denies.
    pub fn verdict(mut self) -> Verdict {
        if self.reasons.is_empty() {
            self.fail(
                None,
                "the policy checked no rule, so nothing vouches for this workload",
            );
        }
        Verdict {
            allow: self.passed(),
            reasons: self.reasons,
            login: Login { role: self.role },
        }
    }
}

/// The claim (a string, or a list of strings of which any one counts) must be in `allowed`.
pub fn one_of(claims: &Claims<'_>, key: &str, allowed: &[String]) -> Reason {
    let found = claims.strings(key);
    if found.is_empty() {
        return reason(
            key,
            false,
            format!("claim \"{key}\" is missing; allowed: {allowed:?}"),
        );
    }
    let passed = found.iter().any(|value| allowed.iter().any(|a| a == value));
    let verb = if passed { "is" } else { "is not" };
    reason(
        key,
        passed,
        format!("{} {verb} one of {allowed:?}", quoted(&found)),
    )
}

/// The list claim must contain at least one of `wanted`.
pub fn contains_any(claims: &Claims<'_>, key: &str, wanted: &[String]) -> Reason {
    let found = claims.strings(key);
    let passed = found.iter().any(|value| wanted.iter().any(|w| w == value));
    let verb = if passed {
        "contains"
    } else {
        "does not contain"
    };
    reason(
        key,
        passed,
        format!("{} {verb} any of {wanted:?}", quoted(&found)),
    )
}

/// Production images only: `dbgstat` must be `disabled-since-boot`.
pub fn production_only(claims: &Claims<'_>) -> Reason {
    match claims.dbgstat() {
        Some(status) if claims.is_production() => reason(
            "/dbgstat",
            true,
            format!("production image (dbgstat \"{status}\")"),
        ),
        Some(status) => reason(
            "/dbgstat",
            false,
            format!("debug image (dbgstat \"{status}\"); a production image is required"),
        ),
        None => reason(
            "/dbgstat",
            false,
            "dbgstat is missing; a production image is required".into(),
        ),
    }
}

/// `support_attributes` must contain `attribute` (debug images have none at all).
pub fn support_attribute(claims: &Claims<'_>, attribute: &str) -> Reason {
    const KEY: &str = "/submods/confidential_space/support_attributes";
    match claims.support_attributes() {
        None => reason(
            KEY,
            false,
            format!(
                "support_attributes is absent (as on debug images); \"{attribute}\" is required"
            ),
        ),
        Some(found) => {
            let passed = found.contains(&attribute);
            let verb = if passed { "include" } else { "do not include" };
            reason(
                KEY,
                passed,
                format!(
                    "support attributes {} {verb} \"{attribute}\"",
                    quoted(&found)
                ),
            )
        }
    }
}

/// Parses a `swversion` like `"260900"` as a number.
fn version_number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Some `swversion` must be at least `minimum`.
pub fn min_swversion(claims: &Claims<'_>, minimum: &str) -> Reason {
    const KEY: &str = "/swversion";
    let found = claims.swversion();
    let Some(min) = version_number(minimum) else {
        return reason(
            KEY,
            false,
            format!("the minimum swversion \"{minimum}\" is not a number"),
        );
    };
    let passed = found
        .iter()
        .filter_map(|v| version_number(v))
        .any(|v| v >= min);
    let verb = if passed { "meets" } else { "is below" };
    reason(
        KEY,
        passed,
        format!("swversion {} {verb} the minimum {minimum}", quoted(&found)),
    )
}

/// Whether `digest` is `sha256:` followed by 64 lowercase hex digits.
pub fn is_sha256_digest(digest: &str) -> bool {
    digest.strip_prefix("sha256:").is_some_and(|hex| {
        hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// On TDX hardware the attester TCB must be `UpToDate`; other hardware passes as not applicable.
pub fn tdx_up_to_date(claims: &Claims<'_>) -> Reason {
    const KEY: &str = "/tdx/gcp_attester_tcb_status";
    if claims.hwmodel() != Some("GCP_INTEL_TDX") {
        return reason(
            KEY,
            true,
            format!(
                "not a TDX machine (hwmodel {:?}); TCB status does not apply",
                claims.hwmodel()
            ),
        );
    }
    match claims.tdx_tcb_status() {
        Some("UpToDate") => reason(KEY, true, "TDX TCB status is \"UpToDate\"".into()),
        Some(status) => reason(
            KEY,
            false,
            format!("TDX TCB status is \"{status}\", \"UpToDate\" is required"),
        ),
        None => reason(
            KEY,
            false,
            "TDX TCB status is missing on a TDX machine".into(),
        ),
    }
}

/// Memory monitoring must be disabled (monitoring exposes workload memory statistics).
pub fn memory_monitoring_disabled(claims: &Claims<'_>) -> Reason {
    const KEY: &str = "/submods/confidential_space/monitoring_enabled/memory";
    match claims.memory_monitoring_enabled() {
        Some(false) => reason(KEY, true, "memory monitoring is disabled".into()),
        Some(true) => reason(
            KEY,
            false,
            "memory monitoring is enabled; it must be disabled".into(),
        ),
        None => reason(KEY, false, "memory monitoring status is missing".into()),
    }
}

/// Matches `text` against a glob where `*` matches any run of characters (Vault's
/// `bound_claims_type: glob`).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_become_pointers() {
        assert_eq!(pointer("hwmodel"), "/hwmodel");
        assert_eq!(pointer("a/b~c"), "/a~1b~0c");
        assert_eq!(
            pointer("/submods/gce/project_id"),
            "/submods/gce/project_id"
        );
    }

    #[test]
    fn a_report_allows_only_when_every_rule_passed() {
        let mut report = Report::new();
        report
            .pass(Some("hwmodel"), "ok")
            .pass(None, "inside the window");
        report.role("analytics");
        let verdict = report.verdict();
        assert!(verdict.allow);
        assert_eq!(verdict.reasons[0].claim.as_deref(), Some("/hwmodel"));
        assert_eq!(verdict.reasons[1].claim, None);
        assert_eq!(verdict.login.role.as_deref(), Some("analytics"));

        let mut report = Report::new();
        report.pass(Some("/dbgstat"), "ok").fail(None, "too late");
        let verdict = report.verdict();
        assert!(!verdict.allow);
        assert_eq!(verdict.login.role, None);
    }

    #[test]
    fn a_report_with_no_rule_denies_naming_no_claim() {
        let verdict = Report::new().verdict();
        assert!(!verdict.allow);
        assert_eq!(verdict.reasons.len(), 1);
        assert_eq!(verdict.reasons[0].claim, None);
        assert!(!verdict.reasons[0].passed);
    }

    #[test]
    fn globs_and_digests() {
        assert!(glob_match("operator-*", "operator-project"));
        assert!(glob_match(
            "*@*.iam.gserviceaccount.com",
            "a@b.iam.gserviceaccount.com"
        ));
        assert!(!glob_match("operator-*", "other-project"));
        assert!(is_sha256_digest(&format!("sha256:{}", "a".repeat(64))));
        assert!(!is_sha256_digest(&format!("sha256:{} ", "a".repeat(64))));
    }
}
