//! The seed's other route: a VAULT_TOKEN encrypted with the collaborator's Cloud KMS key, unwrapped
//! inside the TEE. The attestation token is exchanged at STS for a federated access token (the
//! collaborator's workload identity provider decides, with its attribute condition), optionally
//! turned into a service account's token, and used to call KMS `decrypt`. CRC32C checksums guard
//! the ciphertext on the way out and the plaintext on the way back.

use crate::attestation::Jwt;
use crate::config::{GoogleConfig, KmsConfig};
use crate::vault::VaultToken;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;
use zeroize::Zeroizing;

/// Google's answers here are small JSON documents.
const MAX_RESPONSE_BYTES: usize = 1 << 20;

const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The calls of the KMS route, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KmsStep {
    /// Reading and decoding the configured ciphertext.
    Ciphertext,
    /// Exchanging the attestation token at Google's STS for a federated access token.
    StsExchange,
    /// Turning the federated token into the service account's access token.
    Impersonate,
    /// KMS `decrypt` of the ciphertext.
    Decrypt,
    /// Checking the CRC32C of the decrypted plaintext.
    Checksum,
}

impl fmt::Display for KmsStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KmsStep::Ciphertext => "read the ciphertext",
            KmsStep::StsExchange => "STS token exchange",
            KmsStep::Impersonate => "service account impersonation",
            KmsStep::Decrypt => "KMS decrypt",
            KmsStep::Checksum => "KMS checksum",
        })
    }
}

/// A failed call of the KMS route: which step, and why.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {cause}")]
pub struct KmsError {
    /// The step that failed.
    pub step: KmsStep,
    /// Why it failed.
    #[source]
    pub cause: KmsCause,
}

/// Why a step of the KMS route failed.
#[derive(Debug, thiserror::Error)]
pub enum KmsCause {
    /// The HTTP client cannot be built (TLS roots).
    #[error("cannot build an HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Neither `ciphertext` nor `ciphertext_file` is set.
    #[error("no ciphertext or ciphertext_file configured")]
    NoCiphertext,
    /// `ciphertext_file` cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadCiphertext {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        #[source]
        source: std::io::Error,
    },
    /// The ciphertext is not standard base64.
    #[error("the ciphertext is not base64: {0}")]
    CiphertextBase64(#[source] base64::DecodeError),
    /// The request did not get through: DNS, connection, TLS, timeout.
    #[error("request failed: {0}")]
    Request(#[source] reqwest::Error),
    /// The response is over the 1 MiB limit.
    #[error("the response is larger than the {limit}-byte limit; not reading it")]
    ResponseTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// The connection broke while the response was read.
    #[error("reading the response failed: {0}")]
    ReadBody(#[source] reqwest::Error),
    /// Google refused: its status and its own error text, with every credential attestgate
    /// sent scrubbed out and control characters escaped (at most 600 characters).
    #[error("{0}")]
    Google(String),
    /// A successful response that is not JSON.
    #[error("the response is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// A successful response without the field the step needs.
    #[error("the response has no {0}")]
    MissingField(&'static str),
    /// The decrypted plaintext is not base64.
    #[error("the plaintext is not base64: {0}")]
    PlaintextBase64(#[source] base64::DecodeError),
    /// The decrypted VAULT_TOKEN is not UTF-8 (positions only, never its bytes).
    #[error("the decrypted VAULT_TOKEN is not text")]
    TokenNotText(#[source] std::str::Utf8Error),
    /// The decrypt response carries no checksum.
    #[error("the response has no plaintextCrc32c to check the plaintext against")]
    NoChecksum,
    /// The plaintext's CRC32C is not the one Google sent.
    #[error("plaintextCrc32c is {claimed} but the plaintext's CRC32C is {actual}: the response was corrupted in transit; not using it")]
    ChecksumMismatch {
        /// The checksum in the response, as sent.
        claimed: String,
        /// The plaintext's CRC32C.
        actual: u32,
    },
}

fn fail(step: KmsStep, cause: KmsCause) -> KmsError {
    KmsError { step, cause }
}

/// A bearer token for Google APIs: wiped on drop, never printed.
struct AccessToken(Zeroizing<String>);

/// Google's error bodies come in two shapes: OAuth (`error`, `error_description`) from STS and
/// `{"error": {"code", "message", "status"}}` from the other APIs.
fn google_error(status: u16, body: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return format!("HTTP {status}: {}", String::from_utf8_lossy(body).trim());
    };
    match value.get("error") {
        Some(Value::String(code)) => {
            let description = value
                .get("error_description")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("HTTP {status} {code}: {description}")
        }
        Some(Value::Object(error)) => {
            let state = error.get("status").and_then(Value::as_str).unwrap_or("");
            let message = error.get("message").and_then(Value::as_str).unwrap_or("");
            format!("HTTP {status} {state}: {message}")
        }
        _ => format!("HTTP {status}: {value}"),
    }
}

/// The KMS route for one collaborator: its provider, key and ciphertext, and the operator's
/// Google endpoints.
pub struct KmsClient {
    http: reqwest::Client,
    config: KmsConfig,
    /// The operator's endpoints: never the collaborator's choice.
    google: GoogleConfig,
}

impl KmsClient {
    /// A client for `config`, calling `google`'s endpoints with `system_roots` and a 20 s
    /// timeout per call. Nothing is read or sent yet.
    pub fn new(
        config: &KmsConfig,
        google: &GoogleConfig,
        system_roots: &crate::http::SystemRoots,
    ) -> Result<Self, KmsError> {
        let http = crate::http::client_builder(crate::http::Trust::SystemRoots(system_roots))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| fail(KmsStep::StsExchange, KmsCause::Client(e)))?;
        Ok(KmsClient {
            http,
            config: config.clone(),
            google: google.clone(),
        })
    }

    fn ciphertext(&self) -> Result<Vec<u8>, KmsError> {
        let text = match (&self.config.ciphertext, &self.config.ciphertext_file) {
            (Some(inline), _) => inline.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|source| {
                fail(
                    KmsStep::Ciphertext,
                    KmsCause::ReadCiphertext {
                        path: path.clone(),
                        source,
                    },
                )
            })?,
            (None, None) => return Err(fail(KmsStep::Ciphertext, KmsCause::NoCiphertext)),
        };
        let compact: String = text.split_whitespace().collect();
        STANDARD
            .decode(compact)
            .map_err(|e| fail(KmsStep::Ciphertext, KmsCause::CiphertextBase64(e)))
    }

    /// Attestation token → STS → (impersonation) → KMS decrypt → the VAULT_TOKEN.
    pub async fn unwrap_vault_token(&self, attestation: &Jwt) -> Result<VaultToken, KmsError> {
        let ciphertext = self.ciphertext()?;
        let federated = self.sts_exchange(attestation).await?;
        let access = match &self.config.service_account {
            Some(account) => self.impersonate(&federated, account).await?,
            None => federated,
        };
        let plaintext = self.decrypt(&access, &ciphertext).await?;
        vault_token_of(&plaintext)
    }

    /// Sends `request`; Google's answer, or its error with everything in `sent` scrubbed out.
    async fn post(
        &self,
        step: KmsStep,
        request: reqwest::RequestBuilder,
        sent: &[&str],
    ) -> Result<Value, KmsError> {
        let response = request
            .send()
            .await
            .map_err(|e| fail(step, KmsCause::Request(e)))?;
        let status = response.status().as_u16();
        let body = Zeroizing::new(
            crate::http::read_capped(response, MAX_RESPONSE_BYTES)
                .await
                .map_err(|e| {
                    fail(
                        step,
                        match e {
                            crate::http::BodyError::TooLarge { limit } => {
                                KmsCause::ResponseTooLarge { limit }
                            }
                            crate::http::BodyError::Read(e) => KmsCause::ReadBody(e),
                        },
                    )
                })?,
        );
        decode_reply(step, status, &body, sent)
    }

    async fn sts_exchange(&self, attestation: &Jwt) -> Result<AccessToken, KmsError> {
        let url = format!(
            "{}/v1/token",
            self.google.sts_endpoint.trim_end_matches('/')
        );
        let form = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", self.config.workload_identity_provider.as_str()),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ("subject_token", attestation.expose()),
            ("scope", CLOUD_PLATFORM_SCOPE),
        ];
        let body = Zeroizing::new(
            form.iter()
                .map(|(k, v)| format!("{k}={}", urlencode(v)))
                .collect::<Vec<_>>()
                .join("&"),
        );
        let request = self
            .http
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body.to_string());
        let response = self
            .post(
                KmsStep::StsExchange,
                request,
                &crate::http::jwt_parts(attestation.expose()),
            )
            .await?;
        access_token(&response, "access_token", KmsStep::StsExchange)
    }

    async fn impersonate(
        &self,
        federated: &AccessToken,
        account: &str,
    ) -> Result<AccessToken, KmsError> {
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{account}:generateAccessToken",
            self.google.iamcredentials_endpoint.trim_end_matches('/')
        );
        let request = self
            .http
            .post(url)
            .bearer_auth(federated.0.as_str())
            .json(&json!({"scope": [CLOUD_PLATFORM_SCOPE], "lifetime": "3600s"}));
        let response = self
            .post(KmsStep::Impersonate, request, &[federated.0.as_str()])
            .await?;
        access_token(&response, "accessToken", KmsStep::Impersonate)
    }

    async fn decrypt(
        &self,
        access: &AccessToken,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, KmsError> {
        let url = format!(
            "{}/v1/{}:decrypt",
            self.google.kms_endpoint.trim_end_matches('/'),
            self.config.key.trim_matches('/')
        );
        let body = json!({
            "ciphertext": STANDARD.encode(ciphertext),
            "ciphertextCrc32c": crc32c::crc32c(ciphertext).to_string(),
        });
        let request = self
            .http
            .post(url)
            .bearer_auth(access.0.as_str())
            .json(&body);
        let response = self
            .post(KmsStep::Decrypt, request, &[access.0.as_str()])
            .await?;
        plaintext_of(response)
    }
}

/// A 2xx answer's JSON, or Google's error with everything in `sent` scrubbed out.
fn decode_reply(step: KmsStep, status: u16, body: &[u8], sent: &[&str]) -> Result<Value, KmsError> {
    if !(200..300).contains(&status) {
        return Err(fail(
            step,
            // Scrubbed whole, then shortened: a cut could otherwise split a credential.
            KmsCause::Google(
                crate::http::scrub(&google_error(status, body), sent)
                    .chars()
                    .take(600)
                    .collect(),
            ),
        ));
    }
    serde_json::from_slice(body).map_err(|e| fail(step, KmsCause::NotJson(e)))
}

/// The plaintext of a decrypt response, checked against the CRC32C Google sent with it. The
/// response is wiped.
fn plaintext_of(mut response: Value) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let plaintext = plaintext_checked(&mut response);
    crate::vault::wipe(&mut response);
    plaintext
}

/// The VAULT_TOKEN a plaintext holds: text, surrounding whitespace trimmed.
fn vault_token_of(plaintext: &[u8]) -> Result<VaultToken, KmsError> {
    let token = std::str::from_utf8(plaintext)
        .map_err(|e| fail(KmsStep::Decrypt, KmsCause::TokenNotText(e)))?;
    Ok(VaultToken::new(token.trim()))
}

fn plaintext_checked(response: &mut Value) -> Result<Zeroizing<Vec<u8>>, KmsError> {
    let plaintext = response
        .get_mut("plaintext")
        .map(Value::take)
        .and_then(|v| v.as_str().map(|s| Zeroizing::new(s.to_owned())))
        .ok_or_else(|| fail(KmsStep::Decrypt, KmsCause::MissingField("plaintext")))?;
    let plaintext = Zeroizing::new(
        STANDARD
            .decode(plaintext.as_bytes())
            .map_err(|e| fail(KmsStep::Decrypt, KmsCause::PlaintextBase64(e)))?,
    );
    let claimed = response
        .get("plaintextCrc32c")
        .and_then(|v| {
            v.as_str()
                .map(str::to_owned)
                .or_else(|| v.as_u64().map(|n| n.to_string()))
        })
        .ok_or_else(|| fail(KmsStep::Checksum, KmsCause::NoChecksum))?;
    let actual = crc32c::crc32c(&plaintext);
    if claimed.parse::<u64>().ok() != Some(u64::from(actual)) {
        return Err(fail(
            KmsStep::Checksum,
            KmsCause::ChecksumMismatch { claimed, actual },
        ));
    }
    Ok(plaintext)
}

/// The bearer token in `field` of a Google response.
fn access_token(
    response: &Value,
    field: &'static str,
    step: KmsStep,
) -> Result<AccessToken, KmsError> {
    response
        .get(field)
        .and_then(Value::as_str)
        .map(|t| AccessToken(Zeroizing::new(t.to_owned())))
        .ok_or_else(|| fail(step, KmsCause::MissingField(field)))
}

/// Form-encodes a value (RFC 3986 unreserved characters kept).
fn urlencode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The decoders of Google's answers, for fuzz targets (feature `internals`).
#[cfg(feature = "internals")]
pub(crate) mod internals {
    use crate::kms::{KmsError, KmsStep};
    use crate::vault::VaultToken;
    use serde_json::Value;

    /// An STS, IAM Credentials or KMS answer: its JSON, or Google's error, scrubbed of `sent`.
    pub fn decode_reply(status: u16, body: &[u8], sent: &[&str]) -> Result<Value, KmsError> {
        crate::kms::decode_reply(KmsStep::StsExchange, status, body, sent)
    }

    /// The bearer token in an STS (`access_token`) or IAM Credentials (`accessToken`) answer.
    pub fn access_token(response: &Value, field: &'static str) -> Result<(), KmsError> {
        crate::kms::access_token(response, field, KmsStep::StsExchange).map(drop)
    }

    /// A decrypt answer's VAULT_TOKEN, checksum checked.
    pub fn vault_token(response: Value) -> Result<VaultToken, KmsError> {
        crate::kms::vault_token_of(&crate::kms::plaintext_of(response)?)
    }
}

#[cfg(test)]
mod tests {
    use super::google_error;

    #[test]
    fn both_shapes_of_googles_errors_keep_googles_words() {
        let sts = br#"{"error":"invalid_grant","error_description":"The attribute condition must be satisfied."}"#;
        assert_eq!(
            google_error(400, sts),
            "HTTP 400 invalid_grant: The attribute condition must be satisfied."
        );
        let kms =
            br#"{"error":{"code":400,"message":"Decryption failed","status":"INVALID_ARGUMENT"}}"#;
        assert_eq!(
            google_error(400, kms),
            "HTTP 400 INVALID_ARGUMENT: Decryption failed"
        );
    }

    #[test]
    fn a_body_that_is_not_googles_json_is_shown_as_sent() {
        assert_eq!(
            google_error(502, b" bad gateway \n"),
            "HTTP 502: bad gateway"
        );
        assert_eq!(
            google_error(500, br#"{"other":1}"#),
            r#"HTTP 500: {"other":1}"#
        );
    }
}
