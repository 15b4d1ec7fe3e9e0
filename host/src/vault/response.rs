//! What a Vault server answers, decoded: pure functions of a status and a body, without the
//! network, so that each rule is unit-tested and fuzzed directly (`fuzz/`). The server may be
//! hostile: nothing here trusts a shape, and error text is scrubbed of what was sent before it
//! can reach the operator.

use super::error::{SecretShapeError, UnexpectedResponse};
use super::wipe::wipe;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;
use zeroize::Zeroizing;

/// A Vault token: wiped on drop, never printed.
#[derive(Clone)]
pub struct VaultToken(Zeroizing<String>);

impl VaultToken {
    /// Wraps `token` (an `hvs.…` service or `hvb.…` batch token, say).
    pub fn new(token: impl Into<String>) -> Self {
        VaultToken(Zeroizing::new(token.into()))
    }

    /// The token itself. Only send it to the Vault that issued it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for VaultToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VaultToken(<redacted>)")
    }
}

/// The result of a successful login.
#[derive(Debug, Clone)]
pub struct VaultLogin {
    /// `auth.client_token`: the Vault token the login issued.
    pub token: VaultToken,
    /// `auth.accessor`: names the token in audit logs without being it.
    pub accessor: Option<String>,
    /// `auth.policies`: what the token may do.
    pub policies: Vec<String>,
    /// `auth.lease_duration`: the token's time to live, in seconds.
    pub lease_duration: u64,
    /// `auth.renewable`.
    pub renewable: bool,
    /// `batch` tokens cannot be revoked; they simply expire.
    pub is_batch: bool,
    /// `auth.metadata`: what the auth method recorded (claim mappings, the role).
    pub metadata: BTreeMap<String, String>,
    /// Vault's `warnings` for the login.
    pub warnings: Vec<String>,
}

/// One HTTP answer, classified.
#[derive(Debug)]
pub enum Reply {
    /// A 2xx with a JSON body (`null` for an empty one, as a revocation answers).
    Data(Value),
    /// A 2xx whose body is not JSON.
    NotJson(serde_json::Error),
    /// A 307 (a standby), 429 or 5xx: worth another attempt, elsewhere or later.
    Retry {
        /// The HTTP status.
        status: u16,
        /// Vault's `errors`, scrubbed.
        errors: Vec<String>,
    },
    /// Any other status: a final refusal.
    Refused {
        /// The HTTP status.
        status: u16,
        /// Vault's `errors`, scrubbed.
        errors: Vec<String>,
    },
}

/// Classifies `body`, answered with `status`. `sent` are the credentials of the request: a
/// hostile server may echo them in its errors, so they are scrubbed out, with control characters.
pub fn decode_reply(status: u16, body: &[u8], sent: &[&str]) -> Reply {
    if (200..300).contains(&status) {
        if body.is_empty() {
            return Reply::Data(Value::Null);
        }
        return match serde_json::from_slice(body) {
            Ok(value) => Reply::Data(value),
            Err(e) => Reply::NotJson(e),
        };
    }
    let errors: Vec<String> = match serde_json::from_slice::<Value>(body) {
        Ok(body) => body
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e.as_str().map(|e| crate::http::scrub(e, sent)))
                    .collect()
            })
            .unwrap_or_default(),
        // Scrubbed whole, then shortened: a cut could otherwise split a credential.
        Err(_) => vec![
            crate::http::scrub(String::from_utf8_lossy(body).trim(), sent)
                .chars()
                .take(500)
                .collect(),
        ],
    };
    if status == 307 || status == 429 || (500..600).contains(&status) {
        Reply::Retry { status, errors }
    } else {
        Reply::Refused { status, errors }
    }
}

/// The login a `…/login` response carries. The response is wiped, whatever the outcome.
pub fn login(mut response: Value) -> Result<VaultLogin, UnexpectedResponse> {
    let login = read_login(&response);
    wipe(&mut response);
    login
}

fn read_login(response: &Value) -> Result<VaultLogin, UnexpectedResponse> {
    let auth = response
        .get("auth")
        .filter(|a| a.is_object())
        .ok_or(UnexpectedResponse::NoAuth)?;
    let token = auth
        .get("client_token")
        .and_then(Value::as_str)
        .ok_or(UnexpectedResponse::NoClientToken)?;
    let strings = |value: Option<&Value>| -> Vec<String> {
        value
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(VaultLogin {
        token: VaultToken::new(token),
        accessor: auth
            .get("accessor")
            .and_then(Value::as_str)
            .map(str::to_owned),
        policies: strings(auth.get("policies")),
        lease_duration: auth
            .get("lease_duration")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        renewable: auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        is_batch: auth.get("token_type").and_then(Value::as_str) == Some("batch")
            || token.starts_with("b."),
        metadata: auth
            .get("metadata")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default(),
        warnings: strings(response.get("warnings")),
    })
}

/// The token's new TTL in a `renew-self` response. The response is wiped.
pub fn renewed_token_ttl(mut response: Value) -> Result<Duration, UnexpectedResponse> {
    let ttl = response
        .get("auth")
        .and_then(|auth| auth.get("lease_duration"))
        .and_then(Value::as_u64);
    wipe(&mut response);
    ttl.map(Duration::from_secs)
        .ok_or(UnexpectedResponse::NoAuth)
}

/// The lease's new duration in a `sys/leases/renew` response.
pub fn renewed_lease(response: &Value) -> Result<Duration, UnexpectedResponse> {
    response
        .get("lease_duration")
        .and_then(Value::as_u64)
        .map(Duration::from_secs)
        .ok_or(UnexpectedResponse::NoLease)
}

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

/// A dynamic secret's lease. The id is not a credential, but it is only ever sent back to the
/// Vault that issued it, with the token that read the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretLease {
    /// `lease_id`, as Vault returned it.
    pub id: String,
    /// `lease_duration`: how long the secret is valid from when it was read.
    pub duration: Duration,
    /// Whether `sys/leases/renew` may extend it.
    pub renewable: bool,
}

impl SecretLease {
    /// The lease in a read response: `lease_id` set and `lease_duration` positive.
    pub fn of(response: &Value) -> Option<SecretLease> {
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
            duration: Duration::from_secs(seconds),
            renewable: response
                .get("renewable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// Takes the secret at `path` out of a read response: KV v2's `data.data` is unwrapped, and
/// `field` picks one value. Error messages name fields, never values. The rest of the response
/// is wiped.
#[cfg_attr(not(any(feature = "engine", feature = "internals")), allow(dead_code))]
pub fn extract_secret(
    mut response: Value,
    path: &str,
    field: Option<&str>,
) -> Result<SecretValue, SecretShapeError> {
    let mut data = response
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let is_kv2 = data.get("data").is_some_and(Value::is_object) && data.get("metadata").is_some();
    if is_kv2 {
        let inner = data.get_mut("data").map(Value::take).unwrap_or(Value::Null);
        wipe(&mut data);
        data = inner;
    }
    wipe(&mut response);
    let mut data = SecretValue(data);
    if data.0.is_null() {
        return Err(SecretShapeError::NoData { path: path.into() });
    }
    match field {
        None => Ok(data),
        Some(field) => match data.0.get_mut(field).map(Value::take) {
            Some(value) => Ok(SecretValue(value)),
            None => Err(SecretShapeError::NoField {
                path: path.into(),
                field: field.into(),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kv2(data: Value) -> Value {
        json!({"data": {"data": data, "metadata": {"version": 1}}})
    }

    #[test]
    fn kv2_data_is_unwrapped_and_a_field_picked() {
        let response = kv2(json!({"user": "app", "password": "s3cret"}));
        let value = extract_secret(response.clone(), "kv/data/db", Some("password")).unwrap();
        assert_eq!(value.value(), "s3cret");
        let whole = extract_secret(response, "kv/data/db", None).unwrap();
        assert_eq!(whole.value()["user"], "app");
    }

    /// A token or a secret inside anything printed with `{:?}` (an error, a log field, a
    /// report) shows as redacted.
    #[test]
    fn debug_never_shows_a_vault_token_or_a_secret() {
        let value =
            extract_secret(kv2(json!({"password": "s3cret-value"})), "kv/data/db", None).unwrap();
        let token = VaultToken::new("hvs.a-token-never-printed");
        let printed = format!("{:?}", (&token, &value, Some(vec![&value])));
        assert!(!printed.contains("s3cret-value"), "{printed}");
        assert!(!printed.contains("a-token-never-printed"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
    }

    #[test]
    fn kv1_data_is_taken_as_is() {
        let value = extract_secret(json!({"data": {"metadata": "mine"}}), "kv/db", None).unwrap();
        assert_eq!(value.value(), &json!({"metadata": "mine"}));
    }

    #[test]
    fn a_missing_field_is_named_alone_never_its_siblings() {
        let response = kv2(json!({"admin-password-for-prod": "x", "user": "app"}));
        let error = extract_secret(response, "kv/data/db", Some("password")).unwrap_err();
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
        let error = extract_secret(json!({"data": null}), "kv/db", None).unwrap_err();
        assert!(matches!(error, SecretShapeError::NoData { .. }));
        assert!(error.to_string().contains("<mount>/data/<name>"), "{error}");
    }

    #[test]
    fn a_standby_a_throttle_and_a_5xx_are_retried_and_a_4xx_is_final() {
        for status in [307, 429, 500, 503] {
            assert!(
                matches!(decode_reply(status, b"", &[]), Reply::Retry { .. }),
                "{status}"
            );
        }
        let Reply::Refused { status, errors } =
            decode_reply(403, br#"{"errors":["permission denied"]}"#, &[])
        else {
            panic!("a 403 is final")
        };
        assert_eq!(
            (status, errors),
            (403, vec!["permission denied".to_owned()])
        );
        assert!(matches!(
            decode_reply(204, b"", &[]),
            Reply::Data(Value::Null)
        ));
        assert!(matches!(
            decode_reply(200, b"<html>", &[]),
            Reply::NotJson(_)
        ));
    }

    #[test]
    fn an_echoed_credential_never_reaches_the_errors() {
        for body in [
            &br#"{"errors":["bad role for jwt eyJhbGciOi.secret-part"]}"#[..],
            b"<html>jwt eyJhbGciOi.secret-part was refused</html>",
        ] {
            let Reply::Refused { errors, .. } =
                decode_reply(400, body, &["eyJhbGciOi.secret-part"])
            else {
                panic!("a 400 is final")
            };
            assert!(!errors.concat().contains("secret-part"), "{errors:?}");
        }
    }

    #[test]
    fn a_login_needs_auth_and_a_client_token() {
        assert!(matches!(login(json!({})), Err(UnexpectedResponse::NoAuth)));
        assert!(matches!(
            login(json!({"auth": {"policies": ["a"]}})),
            Err(UnexpectedResponse::NoClientToken)
        ));
        let login = login(
            json!({"auth": {"client_token": "b.batch", "policies": ["a", 1],
            "metadata": {"role": "r", "n": 2}, "lease_duration": 60}, "warnings": ["w"]}),
        )
        .unwrap();
        assert!(login.is_batch);
        assert_eq!(login.policies, ["a"]);
        assert_eq!(login.metadata.len(), 1);
        assert_eq!((login.lease_duration, login.warnings.len()), (60, 1));
    }
}
