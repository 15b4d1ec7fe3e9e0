//! A Vault (or OpenBao) client for the exchange: JWT login, logical reads, token revocation.
//!
//! Vault's own error text always reaches the caller verbatim, with a hint where the cause is
//! known. Connection errors, 5xx, 429 and a standby's 307 are retried with exponential backoff and
//! jitter, across the configured addresses; a 4xx denial is final.

mod client;
mod error;
mod hints;
mod wipe;

pub use client::{RetryPolicy, VaultClient, VaultLogin, VaultToken};
pub use error::{AttemptError, UnexpectedResponse, VaultError, VaultSettingsError};
pub use hints::hint_for;
pub use wipe::wipe;
