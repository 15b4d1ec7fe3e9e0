//! Secrets read from Vault: taking the value out of a read response (KV v1 or v2, one field or
//! the whole secret), and holding it so that it is wiped on drop and never printed.

use super::error::{SecretShapeError, Step, StepCause, StepError};
use crate::config::SecretConfig;
use crate::vault::{wipe, VaultClient, VaultToken};
use serde_json::Value;
use std::fmt;

/// A secret value read from Vault. Its strings are wiped on drop; it is never printed.
pub struct SecretValue(Value);

impl SecretValue {
    /// The value, for delivery. Never log it.
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// The text to deliver: a string as is, anything else as JSON.
    pub fn to_text(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(match &self.0 {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

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

/// A dynamic secret's lease. The id is not a credential, but it is only ever sent back to the
/// Vault that issued it, with the token that read the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretLease {
    /// `lease_id`, as Vault returned it.
    pub id: String,
    /// `lease_duration`: how long the secret is valid from when it was read.
    pub duration: std::time::Duration,
    /// Whether `sys/leases/renew` may extend it.
    pub renewable: bool,
}

impl SecretLease {
    /// The lease in a read response: `lease_id` set and `lease_duration` positive.
    fn of(response: &Value) -> Option<SecretLease> {
        let id = response
            .get("lease_id")?
            .as_str()
            .filter(|id| !id.is_empty())?;
        let seconds = response
            .get("lease_duration")?
            .as_u64()
            .filter(|s| *s > 0)?;
        Some(SecretLease {
            id: id.to_owned(),
            duration: std::time::Duration::from_secs(seconds),
            renewable: response
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
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
        let value = extract(response, secret).map_err(|e| fail(StepCause::Secret(e)))?;
        released.push(ReleasedSecret {
            secret: secret.clone(),
            value,
            lease,
        });
    }
    Ok(released)
}

/// Takes the secret out of a read response: KV v2's `data.data` is unwrapped, and `field` picks
/// one value. Error messages name fields, never values.
fn extract(mut response: Value, secret: &SecretConfig) -> Result<SecretValue, SecretShapeError> {
    let mut data = response
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let is_kv2 = data.get("data").is_some_and(Value::is_object) && data.get("metadata").is_some();
    if is_kv2 {
        data = data.get_mut("data").map(Value::take).unwrap_or(Value::Null);
    }
    wipe(&mut response);
    let data = SecretValue(data);
    if data.0.is_null() {
        return Err(SecretShapeError::NoData {
            path: secret.path.clone(),
        });
    }
    match &secret.field {
        None => Ok(data),
        Some(field) => {
            let mut data = data;
            match data.0.get_mut(field).map(Value::take) {
                Some(value) => Ok(SecretValue(value)),
                None => Err(SecretShapeError::NoField {
                    path: secret.path.clone(),
                    field: field.clone(),
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(field: Option<&str>) -> SecretConfig {
        SecretConfig {
            path: "kv/data/db".into(),
            field: field.map(str::to_owned),
            file: None,
            env: Some("BANK_A_DB".into()),
            write: None,
        }
    }

    fn kv2(data: Value) -> Value {
        serde_json::json!({"data": {"data": data, "metadata": {"version": 1}}})
    }

    #[test]
    fn kv2_data_is_unwrapped_and_a_field_picked() {
        let response = kv2(serde_json::json!({"user": "app", "password": "s3cret"}));
        let value = extract(response.clone(), &secret(Some("password"))).unwrap();
        assert_eq!(value.value(), "s3cret");
        let whole = extract(response, &secret(None)).unwrap();
        assert_eq!(whole.value()["user"], "app");
    }

    #[test]
    fn a_missing_field_is_named_alone_never_its_siblings() {
        let response = kv2(serde_json::json!({"admin-password-for-prod": "x", "user": "app"}));
        let error = extract(response, &secret(Some("password"))).unwrap_err();
        assert_eq!(
            error,
            SecretShapeError::NoField {
                path: "kv/data/db".into(),
                field: "password".into()
            }
        );
        let text = error.to_string();
        assert!(
            !text.contains("admin-password-for-prod") && !text.contains("user"),
            "the other fields' names are the secret's business: {text}"
        );
    }

    #[test]
    fn no_data_says_how_kv2_paths_are_written() {
        let error = extract(serde_json::json!({"data": null}), &secret(None)).unwrap_err();
        assert!(matches!(error, SecretShapeError::NoData { .. }));
        assert!(error.to_string().contains("<mount>/data/<name>"), "{error}");
    }
}
