//! What an exchange produced, per collaborator: what it released, or where and why it failed.

use super::error::StepError;
use super::secrets::{KeptToken, ReleasedSecret};
use crate::config::RoleKind;
use std::fmt;
use std::time::Duration;

/// How a collaborator's Vault token was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No Vault is configured: the plugin's allow is the whole outcome.
    PolicyOnly,
    /// JWT login with this role.
    JwtLogin {
        /// The role logged in with.
        role: String,
        /// A classic JWT role or an OpenBao CEL role.
        kind: RoleKind,
    },
    /// The VAULT_TOKEN unwrapped from KMS.
    Kms,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::PolicyOnly => f.write_str("with no Vault configured"),
            Route::JwtLogin {
                role,
                kind: RoleKind::Jwt,
            } => write!(f, "via role \"{role}\""),
            Route::JwtLogin {
                role,
                kind: RoleKind::Cel,
            } => write!(f, "via CEL role \"{role}\""),
            Route::Kms => f.write_str("via the VAULT_TOKEN unwrapped from KMS"),
        }
    }
}

/// What one collaborator released.
#[derive(Debug)]
pub struct Released {
    /// The audience its token carried.
    pub audience: String,
    /// How the Vault token was obtained.
    pub route: Route,
    /// The Vault token's policies.
    pub policies: Vec<String>,
    /// Every configured secret, with its value.
    pub secrets: Vec<ReleasedSecret>,
    /// Present when the configuration keeps the token (keep_token, token_file, token_env).
    pub vault_token: Option<KeptToken>,
    /// Wall time of this collaborator's exchange.
    pub duration: Duration,
}

/// One collaborator's result.
#[derive(Debug)]
pub struct Outcome {
    /// The collaborator's name.
    pub collaborator: String,
    /// What it released, or why it failed.
    pub result: Result<Released, StepError>,
}

/// Every collaborator's outcome, in configuration order.
#[derive(Debug)]
pub struct ExchangeReport {
    /// One per collaborator.
    pub outcomes: Vec<Outcome>,
}

impl ExchangeReport {
    /// The collaborators that failed.
    pub fn failures(&self) -> impl Iterator<Item = &StepError> {
        self.outcomes.iter().filter_map(|o| o.result.as_ref().err())
    }

    /// Whether every collaborator released its secrets.
    pub fn all_succeeded(&self) -> bool {
        self.failures().next().is_none()
    }

    /// The collaborators that succeeded, by name.
    pub fn released(&self) -> impl Iterator<Item = (&str, &Released)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok().map(|r| (o.collaborator.as_str(), r)))
    }
}
