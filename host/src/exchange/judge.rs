//! The attestation half of an exchange, shared by `exchange`, `exec` and `verify --config`:
//! the plugin selects the audience, the token is verified for exactly that audience, and the
//! plugin judges the claims. Plugin calls are CPU work bounded by their deadline, so they run
//! on the blocking pool, never on the async workers.

use super::error::{Step, StepCause, StepError};
use crate::attestation::{TokenRequest, VerifiedToken, Verifier};
use crate::plugin::{CollaboratorPolicy, Verdict};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The token request the collaborator's plugin selects, held to the declared audience.
///
/// The plugin runtime already refuses any audience but the declared one; this is the last look
/// at the exact request before a launcher mints it.
pub async fn select_audience(
    policy: &Arc<CollaboratorPolicy>,
    declared: &str,
) -> Result<TokenRequest, StepError> {
    let name = policy.collaborator();
    let fail = |cause| StepError::new(name, Step::SelectAudience, cause);
    let task = policy.clone();
    let request = tokio::task::spawn_blocking(move || task.select_audience())
        .await
        .map_err(|e| fail(StepCause::Task(e)))?
        .map_err(|e| fail(StepCause::Plugin(e)))?;
    if request.audience != declared {
        return Err(fail(StepCause::ForeignAudience {
            asked: request.audience.escape_debug().to_string(),
            declared: declared.to_owned(),
        }));
    }
    Ok(request)
}

/// What the attestation half concluded: the verified token and the plugin's allow.
#[derive(Debug)]
pub struct Judged {
    /// The token, verified for the collaborator's audience.
    pub verified: VerifiedToken,
    /// The plugin's verdict: always an allow (a deny is a [`StepCause::Denied`] error).
    pub verdict: Verdict,
    /// How long verification took.
    pub verify_time: Duration,
    /// How long the plugin's evaluation took, its instance included.
    pub policy_time: Duration,
}

/// Verifies `token` for `audience` as of `at` (Unix seconds) and has the plugin judge its
/// claims. A deny, or a plugin failure, is an error at [`Step::Policy`]: the token goes no
/// further.
pub async fn verify_and_judge(
    policy: &Arc<CollaboratorPolicy>,
    verifier: &Verifier,
    token: &str,
    audience: &str,
    at: i64,
) -> Result<Judged, StepError> {
    let name = policy.collaborator();
    let started = Instant::now();
    let verified = verifier
        .verify_at(token, audience, at)
        .await
        .map_err(|e| StepError::new(name, Step::VerifyToken, StepCause::Verify(e)))?;
    let verify_time = started.elapsed();
    let fail = |cause| StepError::new(name, Step::Policy, cause);
    let task = policy.clone();
    let started = Instant::now();
    let (verified, decision) = tokio::task::spawn_blocking(move || {
        let decision = task.evaluate(&verified.payload_json, at);
        (verified, decision)
    })
    .await
    .map_err(|e| fail(StepCause::Task(e)))?;
    let decision = decision.map_err(|e| fail(StepCause::Plugin(e)))?;
    if !decision.verdict.allow {
        return Err(fail(StepCause::Denied(decision.verdict)));
    }
    Ok(Judged {
        verified,
        verdict: decision.verdict,
        verify_time,
        policy_time: started.elapsed(),
    })
}
