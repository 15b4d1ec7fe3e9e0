//! How a collaborator's exchange fails: at which [`Step`], and why, as a typed [`StepCause`]
//! that keeps the layer's own error as its source. Nothing here flattens a cause into text.

use crate::attestation::SourceError;
use crate::attestation::VerifyError;
use crate::kms::KmsError;
use crate::plugin::{PluginError, Verdict};
use crate::vault::{SecretShapeError, VaultError};
use std::fmt;
use std::time::Duration;

/// The steps of one collaborator's exchange, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The plugin chooses the token's audience.
    SelectAudience,
    /// The launcher mints the token (or the token file is read).
    GetToken,
    /// Signature, issuer, audience and validity window.
    VerifyToken,
    /// The plugin judges the claims.
    Policy,
    /// JWT login at the collaborator's Vault.
    VaultLogin,
    /// One call of the KMS route (STS, impersonation, decrypt, checksum).
    Kms(crate::kms::KmsStep),
    /// Checking the VAULT_TOKEN unwrapped from KMS.
    TokenLookup,
    /// Reading the configured secrets.
    ReadSecret,
    /// Revoking the Vault token after use.
    Revoke,
    /// The collaborator's deadline passed.
    Deadline,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::SelectAudience => "select audience",
            Step::GetToken => "get token",
            Step::VerifyToken => "verify token",
            Step::Policy => "policy",
            Step::VaultLogin => "vault login",
            Step::Kms(step) => return write!(f, "{step}"),
            Step::TokenLookup => "vault token lookup",
            Step::ReadSecret => "read secret",
            Step::Revoke => "revoke token",
            Step::Deadline => "deadline",
        })
    }
}

/// Why a step failed, one variant per layer. The layer's error is the source, so the whole
/// chain (Vault's own words, the failed check, the plugin's trap) reaches the operator.
#[derive(Debug, thiserror::Error)]
pub enum StepCause {
    /// The plugin failed (trap, deadline, memory, broken contract) or returned an error.
    #[error("{0}")]
    Plugin(#[source] PluginError),
    /// The plugin asked for an audience other than the collaborator's declared one.
    #[error("the plugin asked for audience \"{asked}\", not this collaborator's declared \"{declared}\"; refusing to mint it")]
    ForeignAudience {
        /// What it asked for (escaped).
        asked: String,
        /// The declared audience.
        declared: String,
    },
    /// The launcher or the token file.
    #[error("{0}")]
    TokenSource(#[source] SourceError),
    /// The token failed a check.
    #[error("{check} check failed: {0}", check = .0.check())]
    Verify(#[source] VerifyError),
    /// The plugin denied; its verdict holds every reason, passed and failed.
    #[error("the plugin denied; the token was not sent to Vault. Failed rules: {}", .0.failures_summary())]
    Denied(Verdict),
    /// Neither the configuration nor the plugin named a Vault role.
    #[error(
        "no Vault role: set `role` in [collaborator.vault], or have the plugin return a login role"
    )]
    NoRole,
    /// Vault refused the JWT login.
    #[error("role \"{role}\": {source}")]
    Login {
        /// The role tried.
        role: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// A call of the KMS route failed.
    #[error("{0}")]
    Kms(#[source] KmsError),
    /// The unwrapped VAULT_TOKEN is expired or revoked.
    #[error("the VAULT_TOKEN unwrapped from KMS is expired or revoked ({0}); ask the collaborator for a fresh one")]
    StaleKmsToken(#[source] VaultError),
    /// Checking the unwrapped VAULT_TOKEN failed otherwise.
    #[error("{0}")]
    TokenLookup(#[source] VaultError),
    /// Reading a secret failed at Vault.
    #[error("{path}: {source}")]
    Read {
        /// The secret's path.
        path: String,
        /// Vault's answer.
        #[source]
        source: VaultError,
    },
    /// Vault answered, but the secret is not there.
    #[error("{0}")]
    Secret(#[source] SecretShapeError),
    /// The deadline passed.
    #[error("did not finish within {} s", .0.as_secs_f64())]
    Deadline(Duration),
    /// A blocking plugin task was lost (a bug; the collaborator is denied).
    #[error("the plugin task stopped unexpectedly")]
    Task(#[source] tokio::task::JoinError),
}

/// One collaborator's failure: who, at which step, and why.
#[derive(Debug, thiserror::Error)]
#[error("{collaborator}: {step}: {cause}")]
pub struct StepError {
    /// The collaborator's name.
    pub collaborator: String,
    /// Where it failed.
    pub step: Step,
    /// Why (boxed: the causes carry whole layer errors, and results stay small).
    #[source]
    pub cause: Box<StepCause>,
}

impl StepError {
    pub(crate) fn new(collaborator: &str, step: Step, cause: StepCause) -> Self {
        StepError {
            collaborator: collaborator.to_owned(),
            step,
            cause: Box::new(cause),
        }
    }

    /// The plugin's verdict, when the policy denied.
    pub fn denial(&self) -> Option<&Verdict> {
        match &*self.cause {
            StepCause::Denied(verdict) => Some(verdict),
            _ => None,
        }
    }
}

/// Why one collaborator cannot take part: its plugin or its clients cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The plugin cannot be loaded, or refused its configuration.
    #[error("{0}")]
    Plugin(#[source] PluginError),
    /// The Vault client cannot be built (TLS material, addresses).
    #[error("{0}")]
    Vault(#[source] VaultError),
    /// The KMS client cannot be built.
    #[error("{0}")]
    Kms(#[source] KmsError),
}

/// Anything that stops the exchange before it starts.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Every collaborator that cannot start, each with its reason.
    #[error("{}", .0.iter().map(|(name, error)| format!("collaborator \"{name}\": {}", crate::errors::error_chain(error))).collect::<Vec<_>>().join("\n"))]
    Collaborators(Vec<(String, SetupError)>),
    /// The `[attestation]` settings do not make a verifier.
    #[error("[attestation]: {0}")]
    Verifier(#[from] crate::config::VerifierSetupError),
    /// The plugin engine could not start.
    #[error(transparent)]
    Engine(PluginError),
    /// The blocking task loading the plugins was lost (a bug; nothing starts).
    #[error("the task loading the plugins stopped unexpectedly")]
    Task(#[source] tokio::task::JoinError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Login, Reason};

    #[test]
    fn a_denial_names_only_the_failed_rules_and_keeps_the_verdict() {
        let verdict = Verdict {
            allow: false,
            reasons: vec![
                Reason {
                    claim: Some("/hwmodel".into()),
                    passed: true,
                    message: "GCP_AMD_SEV".into(),
                },
                Reason {
                    claim: Some("/dbgstat".into()),
                    passed: false,
                    message: "must be disabled-since-boot".into(),
                },
            ],
            login: Login::default(),
        };
        let error = StepError::new("bank-a", Step::Policy, StepCause::Denied(verdict));
        let text = error.to_string();
        assert!(
            text.starts_with("bank-a: policy: the plugin denied"),
            "{text}"
        );
        assert!(
            text.contains("/dbgstat: must be disabled-since-boot"),
            "{text}"
        );
        assert!(!text.contains("GCP_AMD_SEV"), "{text}");
        assert_eq!(error.denial().map(|v| v.reasons.len()), Some(2));
    }

    #[test]
    fn a_deadline_says_how_long_it_was() {
        let error = StepError::new(
            "bank-b",
            Step::Deadline,
            StepCause::Deadline(Duration::from_millis(1500)),
        );
        assert_eq!(
            error.to_string(),
            "bank-b: deadline: did not finish within 1.5 s"
        );
        assert!(error.denial().is_none());
    }
}
