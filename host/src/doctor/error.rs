//! Why the doctor could not do its job, as opposed to what it found.

use super::signature::KeysError;

/// Why the doctor could not do its job (as opposed to finding something wrong).
#[derive(Debug, thiserror::Error)]
pub enum DoctorError {
    /// A classic role's JSON has a field Vault cannot read as its type.
    #[error("the role is not a valid classic JWT role: {0}")]
    JwtRoleShape(#[source] attestgate_vault_role::jwt::FieldError),
    /// A CEL role's JSON does not have a CEL role's shape.
    #[error("the role is not a valid CEL role: {0}")]
    CelRoleShape(#[source] serde_json::Error),
    /// Reading from Vault failed.
    #[error("cannot read {path} from Vault: {source}")]
    Vault {
        /// The API path.
        path: String,
        /// The cause.
        #[source]
        source: Box<crate::vault::VaultError>,
    },
    /// Vault answered, but without the expected `data`.
    #[error("Vault's answer for {path} has no data object (is it a role?)")]
    NoData {
        /// The API path.
        path: String,
    },
    /// The token's signing keys could not be obtained.
    #[error("cannot check the token's signature: {source}")]
    Keys {
        /// The cause.
        #[source]
        source: KeysError,
    },
    /// The thread that runs a CEL program could not be started.
    #[error("cannot start a thread to run the CEL program: {0}")]
    Thread(#[source] std::io::Error),
    /// A role name or mount that Vault would not accept, and that could walk the API path.
    #[error("{name:?} is not a valid {what} (letters, digits, _ - . @)")]
    InvalidName {
        /// "role name" or "mount".
        what: &'static str,
        /// What was given.
        name: String,
    },
    /// VAULT_ADDR is plain HTTP to another host: the token would cross the network in clear.
    #[error("VAULT_ADDR {address} is plain HTTP to another host, which would send VAULT_TOKEN in clear text; use https://, or --allow-plain-http if the network is yours")]
    PlainHttp {
        /// The address.
        address: String,
    },
}
