//! Secrets read from Vault for the exchange: every configured path read (or written, for a
//! dynamic secret), its value taken out of the response (`vault::extract_secret`) with its lease.

use super::error::{Step, StepCause, StepError};
use crate::config::SecretConfig;
use crate::vault::{extract_secret, SecretLease, SecretValue, VaultClient, VaultToken};

/// A Vault token that outlives the exchange, and where it is delivered.
#[derive(Debug)]
pub struct KeptToken {
    /// The token.
    pub token: VaultToken,
    /// The file it is written to (`token_file`).
    pub file: Option<std::path::PathBuf>,
    /// The variable it is handed over in (`token_env`).
    pub env: Option<String>,
}

/// One configured secret and the value Vault released for it.
#[derive(Debug)]
pub struct ReleasedSecret {
    /// Where it came from and where it goes.
    pub secret: SecretConfig,
    /// The value.
    pub value: SecretValue,
    /// Its lease, when Vault gave it one (a dynamic secret; a KV secret has none).
    pub lease: Option<SecretLease>,
}

/// Reads every configured secret with `token`; the first failure stops and names the path.
pub(super) async fn read_secrets(
    vault: &VaultClient,
    token: &VaultToken,
    secrets: &[SecretConfig],
    collaborator: &str,
) -> Result<Vec<ReleasedSecret>, StepError> {
    let fail = |cause| StepError::new(collaborator, Step::ReadSecret, cause);
    let mut released = Vec::new();
    for secret in secrets {
        let response = match &secret.write {
            Some(parameters) => vault.write(token, &secret.path, parameters).await,
            None => vault.read(token, &secret.path).await,
        };
        let response = response.map_err(|source| {
            fail(StepCause::Read {
                path: secret.path.clone(),
                source,
            })
        })?;
        let lease = SecretLease::of(&response);
        let value = extract_secret(response, &secret.path, secret.field.as_deref())
            .map_err(|e| fail(StepCause::Secret(e)))?;
        released.push(ReleasedSecret {
            secret: secret.clone(),
            value,
            lease,
        });
    }
    Ok(released)
}
