//! A Vault (or OpenBao) client for the exchange: JWT login, logical reads, token revocation.
//!
//! Vault's own error text always reaches the caller verbatim, with a hint where the cause is
//! known. Connection errors, 5xx, 429 and a standby's 307 are retried with exponential backoff and
//! jitter, across the configured addresses; a 4xx denial is final.

mod client;
mod hints;

pub use client::{RetryPolicy, VaultClient, VaultLogin, VaultToken};
pub use hints::hint_for;

/// What went wrong talking to Vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("invalid Vault settings: {0}")]
    Settings(String),
    /// Vault answered with an error; `errors` are its own words.
    #[error("Vault at {address} answered HTTP {status} to {method} {path}: {}{}", errors.join("; "), hint.map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Denied {
        address: String,
        method: &'static str,
        path: String,
        status: u16,
        errors: Vec<String>,
        hint: Option<&'static str>,
    },
    /// No address answered usefully before the retries or the deadline ran out.
    #[error("Vault unreachable after {attempts} attempt(s) over {elapsed_ms} ms; last error from {address}: {last}")]
    Unreachable {
        address: String,
        attempts: u32,
        elapsed_ms: u128,
        last: String,
    },
    /// TLS failed in a way no retry fixes.
    #[error("TLS with Vault at {address} failed: {reason} (hint: {hint})")]
    Tls {
        address: String,
        reason: String,
        hint: &'static str,
    },
    #[error("Vault at {address} sent an unexpected response to {path}: {reason}")]
    Protocol {
        address: String,
        path: String,
        reason: String,
    },
}

/// Zeroes every string in a Vault response (secrets, tokens) in place, before it is dropped.
pub fn wipe(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => zeroize::Zeroize::zeroize(s),
        Value::Array(items) => items.iter_mut().for_each(wipe),
        Value::Object(map) => map.values_mut().for_each(wipe),
        _ => {}
    }
}
