//! What the integration tests share, one module per concern. Nothing here sleeps for
//! synchronisation: readiness is polled with a deadline.

pub mod capture;
pub mod google;
pub mod launcher;
pub mod openbao;
pub mod plugins;
pub mod tls;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const AUDIENCE: &str = "https://vault.bank-a.example";

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    loop {
        poll.tick().await;
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn attestgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_attestgate"))
}

/// Production-shaped claims for `audience`, valid now.
pub fn production_claims(audience: &str) -> Value {
    let now = attestgate::attestation::verify::unix_now();
    let mut claims = attestgate::dev::claims::production_defaults();
    attestgate::dev::claims::merge(
        &mut claims,
        &json!({"iss": attestgate::attestation::GOOGLE_ISSUER, "aud": audience, "iat": now, "nbf": now, "exp": now + 3600}),
    );
    claims
}

/// `production_claims` with a JSON merge patch applied.
pub fn claims_with(audience: &str, patch: Value) -> Value {
    let mut claims = production_claims(audience);
    attestgate::dev::claims::merge(&mut claims, &patch);
    claims
}

