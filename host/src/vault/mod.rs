//! A Vault (or OpenBao) client for the exchange: JWT login, logical reads, token revocation.
//!
//! Vault's own error text always reaches the caller verbatim, with a hint where the cause is
//! known. Connection errors, 5xx, 429 and a standby's 307 are retried with exponential backoff and
//! jitter, across the configured addresses; a 4xx denial is final.
//!
//! What Vault answers is decoded by pure functions (`response.rs`: the status and errors, a
//! login, renewals, KV extraction), apart from the network, so that they are unit-tested and
//! fuzzed directly.

mod client;
mod error;
mod hints;
mod response;
mod wipe;

pub use client::{RetryPolicy, VaultClient};
pub use error::{
    AttemptError, SecretShapeError, UnexpectedResponse, VaultError, VaultSettingsError,
};
pub use hints::hint_for;
#[cfg_attr(not(feature = "engine"), allow(unused_imports))]
pub(crate) use response::extract_secret;
pub use response::{SecretLease, SecretValue, VaultLogin, VaultToken};
pub use wipe::wipe;

/// The response decoders, for fuzz targets (feature `internals`).
#[cfg(feature = "internals")]
pub(crate) mod internals {
    pub use crate::vault::response::{
        decode_reply, extract_secret, login, renewed_lease, renewed_token_ttl, Reply,
    };
}
