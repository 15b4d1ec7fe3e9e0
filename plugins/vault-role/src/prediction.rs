//! What a login would do: the decision OpenBao would return, and every check that led to it.

use serde::Serialize;
use std::collections::BTreeMap;

/// One check of the login, passed or failed. A failed check's `message` is OpenBao's own error
/// text where OpenBao would return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// Whether the check passed.
    pub passed: bool,
    /// The claim it is about, as a JSON pointer, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// What was checked and what was found.
    pub message: String,
}

/// The login's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// OpenBao issues a token with these policies (`default` included unless the role says
    /// otherwise) and this metadata.
    Allow {
        /// The token's policies, as `auth.policies` would list them.
        policies: Vec<String>,
        /// The token's metadata, as `auth.metadata` would hold it.
        metadata: BTreeMap<String, String>,
    },
    /// OpenBao answers 400 with one of these texts in `errors`. More than one only where
    /// OpenBao walks a Go map (bound claims, claim mappings), whose order changes from login to
    /// login: every failure it could report first is listed.
    Deny {
        /// The possible error texts, the first one the check this crate meets first.
        messages: Vec<String>,
    },
}

/// A predicted login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prediction {
    /// Allow or deny.
    pub decision: Decision,
    /// Every check, in the order OpenBao runs them; the checks after the first failure are
    /// evaluated too, so one run shows everything that needs fixing.
    pub reasons: Vec<Reason>,
}

impl Prediction {
    /// Whether the login succeeds.
    pub fn allows(&self) -> bool {
        matches!(self.decision, Decision::Allow { .. })
    }

    /// The texts OpenBao could answer with; empty on an allow.
    pub fn messages(&self) -> &[String] {
        match &self.decision {
            Decision::Deny { messages } => messages,
            Decision::Allow { .. } => &[],
        }
    }
}

/// Collects reasons and the failures OpenBao could report, in the order of its stages: a stage
/// is a group of checks OpenBao runs in a Go map's order (so any of its failures may be the one
/// reported); stages run in sequence and the first failing stage ends the login.
#[derive(Debug, Default)]
pub(crate) struct Trace {
    reasons: Vec<Reason>,
    /// The first failing stage's possible messages.
    denial: Option<Vec<String>>,
    /// The current stage's failures so far.
    stage: Vec<String>,
}

impl Trace {
    /// Records a passed check.
    pub(crate) fn pass(&mut self, claim: Option<&str>, message: impl Into<String>) {
        self.reasons.push(Reason {
            passed: true,
            claim: claim.map(str::to_owned),
            message: message.into(),
        });
    }

    /// Records a failed check whose text OpenBao would return (if no earlier stage failed).
    pub(crate) fn fail(&mut self, claim: Option<&str>, message: impl Into<String>) {
        let message = message.into();
        self.stage.push(message.clone());
        self.reasons.push(Reason {
            passed: false,
            claim: claim.map(str::to_owned),
            message,
        });
    }

    /// Ends a stage: if it failed and none before it did, its failures are the denial.
    pub(crate) fn end_stage(&mut self) {
        let failures = std::mem::take(&mut self.stage);
        if self.denial.is_none() && !failures.is_empty() {
            self.denial = Some(failures);
        }
    }

    /// Whether a stage has failed so far.
    pub(crate) fn denied(&self) -> bool {
        self.denial.is_some() || !self.stage.is_empty()
    }

    /// The prediction: a deny if any stage failed, else `allow`.
    pub(crate) fn finish(mut self, allow: Decision) -> Prediction {
        self.end_stage();
        let decision = match self.denial.take() {
            Some(mut messages) => {
                messages.dedup();
                Decision::Deny { messages }
            }
            None => allow,
        };
        Prediction {
            decision,
            reasons: self.reasons,
        }
    }

    /// The prediction of a login that a recorded failure ends.
    pub(crate) fn deny(self) -> Prediction {
        debug_assert!(self.denied(), "deny() without a recorded failure");
        self.finish(Decision::Deny {
            messages: Vec::new(),
        })
    }
}
