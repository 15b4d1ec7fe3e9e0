//! What an exchange produced, per collaborator: what it released, or where and why it failed.

use super::error::{Step, StepError};
use super::secrets::{KeptToken, ReleasedSecret};
use crate::config::RoleKind;
use crate::vault::VaultToken;
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
    /// The Vault token's TTL when it was obtained, and whether it can be renewed; `None` without
    /// a Vault.
    pub token_lease: Option<TokenLease>,
    /// With [`TokenUse::Hold`]: the token, which the caller renews and finally revokes.
    pub held_token: Option<HeldToken>,
    /// How long each step took, in order (the agent's latency histograms).
    pub steps: Vec<(Step, Duration)>,
    /// When the exchange began: before the token was issued and the secrets read, so lifetimes
    /// counted from it end no later than Vault's own.
    pub started: std::time::Instant,
    /// Wall time of this collaborator's exchange.
    pub duration: Duration,
}

/// A Vault token's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLease {
    /// Its TTL when it was obtained (0: it does not expire, such as a root token).
    pub ttl: Duration,
    /// Whether `renew-self` may extend it.
    pub renewable: bool,
}

/// What happens to the Vault token a collaborator's exchange obtained, once its secrets are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// Revoked at once (the one-shot exchange), unless the configuration keeps it (`keep_token`,
    /// `token_file`, `token_env`). Revoking a token also revokes the leases of what it read.
    RevokeAfterRead,
    /// Handed back in [`Released::held_token`]: the agent keeps it alive while the secrets read
    /// with it are in use, and revokes it when they are replaced or the agent stops.
    Hold,
}

/// A Vault token held for the secrets read with it.
#[derive(Debug)]
pub struct HeldToken {
    /// The token.
    pub token: VaultToken,
    /// False for the KMS route's token (the collaborator's own) and batch tokens: never revoked.
    pub revocable: bool,
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
