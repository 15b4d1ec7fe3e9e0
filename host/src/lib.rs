//! attestgate: turns a Google Confidential Space attestation into secrets from each collaborator's
//! own Vault.
//!
//! The library holds no global state and prints nothing; the `attestgate` binary is a thin layer
//! over it.

pub mod attestation;
pub mod config;
pub mod dev;
pub mod exchange;
pub mod fsutil;
pub mod kms;
pub mod plugin;
pub mod vault;

/// An error with its whole cause chain, which is where the useful part (connection refused,
/// certificate unknown, the missing import) usually is.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// Which certificate authorities an HTTP client trusts.
pub(crate) enum Trust {
    /// The system's root store (public services such as Google's).
    SystemRoots,
    /// Only these CAs (a pinned private CA: VAULT_CACERT semantics).
    Only(Vec<reqwest::Certificate>),
    /// None: the client only speaks plain HTTP.
    PlainHttp,
}

/// An HTTP client builder with `trust` applied. Loading the system's root store costs a few
/// milliseconds per client, so it happens only for `Trust::SystemRoots`.
pub(crate) fn http_client_builder(trust: Trust) -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match trust {
        Trust::SystemRoots => builder,
        Trust::Only(certs) => builder.tls_certs_only(certs),
        Trust::PlainHttp => builder.tls_certs_only(Vec::new()),
    }
}
