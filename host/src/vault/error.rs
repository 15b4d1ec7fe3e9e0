//! What goes wrong talking to Vault, typed: Vault's own words where it answered, the
//! transport's error where it did not.

use std::path::PathBuf;

/// What went wrong talking to Vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The client cannot be built from `[collaborator.vault]`.
    #[error("invalid Vault settings: {0}")]
    Settings(#[source] VaultSettingsError),
    /// Vault answered with an error; `errors` are its own words.
    #[error("Vault at {address} answered HTTP {status} to {method} {path}: {}{}", errors.join("; "), hint.map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Denied {
        /// The address that answered.
        address: String,
        /// `GET`, `PUT` or `POST`.
        method: &'static str,
        /// The API path, after `/v1/`.
        path: String,
        /// The HTTP status (a 4xx: final, not retried).
        status: u16,
        /// Vault's `errors`, with anything attestgate sent scrubbed out and control characters
        /// escaped.
        errors: Vec<String>,
        /// What the error usually means, when it is a known one.
        hint: Option<&'static str>,
    },
    /// No address answered usefully before the retries or the deadline ran out.
    #[error("Vault unreachable after {attempts} attempt(s) over {elapsed_ms} ms; last error from {address}: {last}{}", hint.map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Unreachable {
        /// The address tried last.
        address: String,
        /// How many attempts were made, over all addresses.
        attempts: u32,
        /// Time from the first attempt to giving up, in milliseconds.
        elapsed_ms: u128,
        /// Why the last attempt failed.
        #[source]
        last: AttemptError,
        /// What to check, when the failures have a likely cause.
        hint: Option<&'static str>,
    },
    /// TLS failed in a way no retry fixes.
    #[error("TLS with Vault at {address} failed: {source} (hint: {hint})")]
    Tls {
        /// The address.
        address: String,
        /// The HTTP client's error; its causes name the TLS failure.
        #[source]
        source: reqwest::Error,
        /// What to check.
        hint: &'static str,
    },
    /// Vault answered with success, but not with what the API promises.
    #[error("Vault at {address} sent an unexpected response to {path}: {source}")]
    Protocol {
        /// The address that answered.
        address: String,
        /// The API path, after `/v1/`.
        path: String,
        /// What is wrong with the response.
        #[source]
        source: UnexpectedResponse,
    },
}

/// Why a Vault client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum VaultSettingsError {
    /// Neither `address` nor `addresses` is set.
    #[error("no Vault address configured")]
    NoAddress,
    /// `ca_cert`, `client_cert` or `client_key` cannot be read.
    #[error("cannot read {what} {}: {source}", path.display())]
    ReadFile {
        /// The setting, e.g. `ca_cert`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What reading it said.
        #[source]
        source: std::io::Error,
    },
    /// `ca_cert` is not a PEM certificate bundle.
    #[error("ca_cert {} is not a PEM bundle: {source}", path.display())]
    CaCert {
        /// The file.
        path: PathBuf,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// `client_cert` and `client_key` do not make a TLS client identity.
    #[error("client_cert/client_key are not a usable PEM pair: {0}")]
    ClientIdentity(#[source] reqwest::Error),
    /// The HTTP client cannot be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// Why one attempt at a Vault request failed in a way worth retrying (at another address,
/// or later).
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The request did not get through: DNS, connection, timeout.
    #[error("{0}")]
    Transport(#[source] reqwest::Error),
    /// The connection broke while the response was read.
    #[error("reading the response failed: {0}")]
    ReadBody(#[source] reqwest::Error),
    /// A 5xx, a 429, or a standby's 307.
    #[error(
        "HTTP {status}{}: {}",
        if *status == 307 { " (standby node redirecting to the active one)" } else { "" },
        errors.join("; ")
    )]
    Status {
        /// The HTTP status.
        status: u16,
        /// Vault's `errors` (or the start of its body), scrubbed and escaped.
        errors: Vec<String>,
    },
}

/// What is wrong with a successful-looking Vault response.
#[derive(Debug, thiserror::Error)]
pub enum UnexpectedResponse {
    /// The body is over the client's limit.
    #[error("the response is larger than the {limit}-byte limit; not reading it")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body does not parse as JSON.
    #[error("the body is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A login response without `auth`.
    #[error("the login response has no \"auth\" object")]
    NoAuth,
    /// A login response whose `auth` has no `client_token`.
    #[error("the login response has no client_token")]
    NoClientToken,
    /// A lease renewal response without `lease_duration`.
    #[error("the lease renewal response has no lease_duration")]
    NoLease,
}

impl VaultError {
    /// Whether Vault itself refused (a 4xx: the token, role or policy no longer allows this), as
    /// opposed to not answering. A refusal is not retried in a loop: it calls for a new login.
    pub fn is_refusal(&self) -> bool {
        matches!(self, VaultError::Denied { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_status_reads_as_before() {
        let standby = AttemptError::Status {
            status: 307,
            errors: vec![],
        };
        assert_eq!(
            standby.to_string(),
            "HTTP 307 (standby node redirecting to the active one): "
        );
        let sealed = AttemptError::Status {
            status: 503,
            errors: vec!["Vault is sealed".into(), "try later".into()],
        };
        let error = VaultError::Unreachable {
            address: "https://vault.bank-b.example".into(),
            attempts: 8,
            elapsed_ms: 1500,
            last: sealed,
            hint: None,
        };
        assert_eq!(
            crate::errors::error_chain(&error),
            "Vault unreachable after 8 attempt(s) over 1500 ms; last error from \
             https://vault.bank-b.example: HTTP 503: Vault is sealed; try later"
        );
    }
}

/// A secret Vault returned without the data asked for. Names fields, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretShapeError {
    /// No `data` at all.
    #[error("{path}: Vault returned no data (is the path right? KV v2 reads go through <mount>/data/<name>)")]
    NoData {
        /// The secret's path.
        path: String,
    },
    /// The configured `field` is missing. Only the missing field is named: the others' names
    /// are the secret's business.
    #[error("{path}: the secret has no field \"{field}\"")]
    NoField {
        /// The secret's path.
        path: String,
        /// The missing field.
        field: String,
    },
}
