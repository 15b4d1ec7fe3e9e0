use super::error::{AttemptError, UnexpectedResponse, VaultError, VaultSettingsError};
use super::hints::hint_for;
use super::response::{decode_reply, Reply, VaultLogin, VaultToken};
use crate::attestation::Jwt;
use crate::config::{RoleKind, VaultConfig};
use reqwest::Method;
use serde_json::Value;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Retries for transient failures: connection errors, 5xx, 429 and standby redirects.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, over all addresses (default 8).
    pub max_attempts: u32,
    /// The wait before the first retry (default 100 ms); it doubles each time, plus up to 50 %
    /// jitter.
    pub initial_backoff: Duration,
    /// The longest wait between two attempts, before jitter (default 2 s).
    pub max_backoff: Duration,
    /// No retry starts after this much time has passed since the first attempt (default 20 s).
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            deadline: Duration::from_secs(20),
        }
    }
}

/// A client of one collaborator's Vault (all its addresses), with its TLS settings and
/// namespace. Every request is retried as its [`RetryPolicy`] says.
pub struct VaultClient {
    http: reqwest::Client,
    /// Whether a client certificate is configured: without one, a Vault that requires client
    /// certificates closes the connection right after the handshake.
    has_client_identity: bool,
    addresses: Vec<String>,
    namespace: Option<String>,
    retry: RetryPolicy,
}

fn read_file(path: &std::path::Path, what: &'static str) -> Result<Vec<u8>, VaultError> {
    std::fs::read(path).map_err(|source| {
        VaultError::Settings(VaultSettingsError::ReadFile {
            what,
            path: path.to_owned(),
            source,
        })
    })
}

/// For a TLS failure that no retry will fix, what to check; `None` for other transport errors.
fn tls_hint(message: &str) -> Option<&'static str> {
    let lower = message.to_ascii_lowercase();
    if lower.contains("certificaterequired")
        || lower.contains("badcertificate")
        || lower.contains("unknownca")
    {
        Some("this Vault requires a client certificate it trusts: set client_cert and client_key in [collaborator.vault]")
    } else if lower.contains("invalid peer certificate") || lower.contains("certificate") {
        Some("is ca_cert the CA that signed this Vault's certificate, and does the certificate name this address?")
    } else if lower.contains("handshake") || lower.contains("tls") {
        Some("check that the address speaks TLS (https://) and that ca_cert matches it")
    } else {
        None
    }
}

/// The hint for a TLS 1.3 Vault that requires client certificates, seen from a client without
/// one: the client's handshake completes, and the server's `certificate_required` alert may
/// arrive only as a closed connection when the request is written.
const CLIENT_CERT_HINT: &str = "this Vault may require a client certificate (the connection closed right after the TLS handshake): if so, set client_cert and client_key in [collaborator.vault]";

/// Whether a transport error is a connection the server closed (reset, broken pipe, EOF).
fn closed_by_server(error: &AttemptError) -> bool {
    let (AttemptError::Transport(e) | AttemptError::ReadBody(e)) = error else {
        return false;
    };
    let text = crate::errors::error_chain(e).to_ascii_lowercase();
    [
        "connection closed",
        "broken pipe",
        "connection reset",
        "unexpected eof",
        "incompletemessage",
    ]
    .iter()
    .any(|symptom| text.contains(symptom))
}

impl VaultClient {
    /// A likely cause for attempts that all failed like `last` at `address`.
    fn hint_for_attempt(&self, address: &str, last: &AttemptError) -> Option<&'static str> {
        (address.starts_with("https://") && !self.has_client_identity && closed_by_server(last))
            .then_some(CLIENT_CERT_HINT)
    }

    /// A client for `config`'s addresses: its `ca_cert` (or `system_roots`, or plain HTTP
    /// when every address is `http://`), its client certificate, its namespace. Nothing is sent
    /// yet; files are read now.
    pub fn new(
        config: &VaultConfig,
        retry: RetryPolicy,
        system_roots: &crate::http::SystemRoots,
    ) -> Result<Self, VaultError> {
        let addresses: Vec<String> = config
            .all_addresses()
            .into_iter()
            .map(|a| a.trim_end_matches('/').to_owned())
            .collect();
        if addresses.is_empty() {
            return Err(VaultError::Settings(VaultSettingsError::NoAddress));
        }
        let trust = match &config.ca_cert {
            Some(ca) => {
                let certs = reqwest::Certificate::from_pem_bundle(&read_file(ca, "ca_cert")?)
                    .map_err(|source| {
                        VaultError::Settings(VaultSettingsError::CaCert {
                            path: ca.clone(),
                            source,
                        })
                    })?;
                crate::http::Trust::Only(certs)
            }
            None if addresses.iter().all(|a| a.starts_with("http://")) => {
                crate::http::Trust::PlainHttp
            }
            None => crate::http::Trust::SystemRoots(system_roots),
        };
        let mut builder = crate::http::client_builder(trust)
            // A standby's 307 is retried against the next address rather than followed blindly.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30));
        let has_client_identity = config.client_cert.is_some() && config.client_key.is_some();
        if let (Some(cert), Some(key)) = (&config.client_cert, &config.client_key) {
            let mut pem = read_file(cert, "client_cert")?;
            pem.push(b'\n');
            pem.extend(Zeroizing::new(read_file(key, "client_key")?).iter());
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| VaultError::Settings(VaultSettingsError::ClientIdentity(e)))?;
            zeroize::Zeroize::zeroize(&mut pem);
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| VaultError::Settings(VaultSettingsError::Client(e)))?;
        Ok(VaultClient {
            http,
            has_client_identity,
            addresses,
            namespace: config.namespace.clone(),
            retry,
        })
    }

    /// `POST auth/<mount>/login` (or `auth/<mount>/cel/login` for a CEL role) with the
    /// attestation token.
    pub async fn login_jwt(
        &self,
        mount: &str,
        kind: RoleKind,
        role: &str,
        jwt: &Jwt,
    ) -> Result<VaultLogin, VaultError> {
        let path = kind.login_path(mount);
        // Serialised straight from borrowed text, so the only copy of the JWT is wiped.
        #[derive(serde::Serialize)]
        struct Login<'a> {
            role: &'a str,
            jwt: &'a str,
        }
        let body = Zeroizing::new(
            serde_json::to_string(&Login {
                role,
                jwt: jwt.expose(),
            })
            .unwrap_or_default(),
        );
        let response = self
            .call(
                Method::POST,
                &path,
                None,
                Some(&body),
                &crate::http::jwt_parts(jwt.expose()),
            )
            .await?;
        super::response::login(response).map_err(|source| VaultError::Protocol {
            address: self.addresses[0].clone(),
            path,
            source,
        })
    }

    /// A logical read; returns Vault's whole response (the secret is under `data`).
    pub async fn read(&self, token: &VaultToken, path: &str) -> Result<Value, VaultError> {
        self.call(Method::GET, path.trim_matches('/'), Some(token), None, &[])
            .await
    }

    /// A logical write that returns a secret (PKI's `issue`, say): `parameters` as the JSON body.
    pub async fn write(
        &self,
        token: &VaultToken,
        path: &str,
        parameters: &serde_json::Map<String, Value>,
    ) -> Result<Value, VaultError> {
        let body = Value::Object(parameters.clone()).to_string();
        self.call(
            Method::POST,
            path.trim_matches('/'),
            Some(token),
            Some(&body),
            &[],
        )
        .await
    }

    /// `GET auth/token/lookup-self`.
    pub async fn lookup_self(&self, token: &VaultToken) -> Result<Value, VaultError> {
        self.call(
            Method::GET,
            "auth/token/lookup-self",
            Some(token),
            None,
            &[],
        )
        .await
    }

    /// `POST auth/token/revoke-self`.
    pub async fn revoke_self(&self, token: &VaultToken) -> Result<(), VaultError> {
        self.call(
            Method::POST,
            "auth/token/revoke-self",
            Some(token),
            None,
            &[],
        )
        .await
        .map(|_| ())
    }

    /// `POST auth/token/renew-self`: the token's TTL from now on, as Vault granted it (it may be
    /// shorter than asked, or capped by the role's maximum).
    pub async fn renew_self(&self, token: &VaultToken) -> Result<Duration, VaultError> {
        const PATH: &str = "auth/token/renew-self";
        let response = self
            .call(Method::POST, PATH, Some(token), Some("{}"), &[])
            .await?;
        super::response::renewed_token_ttl(response).map_err(|source| VaultError::Protocol {
            address: self.addresses[0].clone(),
            path: PATH.into(),
            source,
        })
    }

    /// `PUT sys/leases/renew` for `lease_id`: the lease's duration from now on.
    pub async fn renew_lease(
        &self,
        token: &VaultToken,
        lease_id: &str,
    ) -> Result<Duration, VaultError> {
        const PATH: &str = "sys/leases/renew";
        let body = serde_json::json!({ "lease_id": lease_id }).to_string();
        let response = self
            .call(Method::PUT, PATH, Some(token), Some(&body), &[])
            .await?;
        super::response::renewed_lease(&response).map_err(|source| VaultError::Protocol {
            address: self.addresses[0].clone(),
            path: PATH.into(),
            source,
        })
    }

    /// One request, retried as the policy says. `body_secrets` are the credentials in `body`:
    /// with the token, they are scrubbed from anything the server says back.
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&VaultToken>,
        body: Option<&str>,
        body_secrets: &[&str],
    ) -> Result<Value, VaultError> {
        let mut sent: Vec<&str> = body_secrets.to_vec();
        sent.extend(token.map(VaultToken::expose));
        let started = Instant::now();
        let mut backoff = self.retry.initial_backoff;
        let mut attempt: u32 = 0;
        loop {
            let address = &self.addresses[attempt as usize % self.addresses.len()];
            attempt += 1;
            let outcome = self
                .attempt(&method, address, path, token, body, &sent)
                .await;
            let last = match outcome {
                Attempt::Done(result) => return result,
                Attempt::Retry(reason) => reason,
            };
            tracing::debug!(address = %address, path, attempt, error = %crate::errors::error_chain(&last), "Vault request failed, retrying");
            let jitter = backoff.mul_f64(rand::random::<f64>() * 0.5);
            let wait = backoff + jitter;
            if attempt >= self.retry.max_attempts || started.elapsed() + wait > self.retry.deadline
            {
                let hint = self.hint_for_attempt(address, &last);
                return Err(VaultError::Unreachable {
                    address: address.clone(),
                    attempts: attempt,
                    elapsed_ms: started.elapsed().as_millis(),
                    last,
                    hint,
                });
            }
            tokio::time::sleep(wait).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
        }
    }

    async fn attempt(
        &self,
        method: &Method,
        address: &str,
        path: &str,
        token: Option<&VaultToken>,
        body: Option<&str>,
        sent: &[&str],
    ) -> Attempt {
        let mut request = self
            .http
            .request(method.clone(), format!("{address}/v1/{path}"))
            .header("X-Vault-Request", "true");
        if let Some(token) = token {
            // Marked sensitive so that the HTTP stack never prints it.
            let mut value = reqwest::header::HeaderValue::from_str(token.expose())
                .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        if let Some(namespace) = &self.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_owned());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                if let Some(hint) = tls_hint(&crate::errors::error_chain(&e)) {
                    return Attempt::Done(Err(VaultError::Tls {
                        address: address.to_owned(),
                        source: e,
                        hint,
                    }));
                }
                return Attempt::Retry(AttemptError::Transport(e));
            }
        };
        let status = response.status();
        let bytes = match crate::http::read_capped(response, MAX_RESPONSE_BYTES).await {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(crate::http::BodyError::TooLarge { limit }) => {
                return Attempt::Done(Err(VaultError::Protocol {
                    address: address.to_owned(),
                    path: path.to_owned(),
                    source: UnexpectedResponse::TooLarge { limit },
                }))
            }
            Err(crate::http::BodyError::Read(e)) => {
                return Attempt::Retry(AttemptError::ReadBody(e))
            }
        };
        let (status, errors) = match decode_reply(status.as_u16(), &bytes, sent) {
            Reply::Data(value) => return Attempt::Done(Ok(value)),
            Reply::NotJson(e) => {
                return Attempt::Done(Err(VaultError::Protocol {
                    address: address.to_owned(),
                    path: path.to_owned(),
                    source: UnexpectedResponse::NotJson(e),
                }))
            }
            Reply::Retry { status, errors } => {
                return Attempt::Retry(AttemptError::Status { status, errors })
            }
            Reply::Refused { status, errors } => (status, errors),
        };
        let hint = errors.iter().find_map(|e| hint_for(e));
        Attempt::Done(Err(VaultError::Denied {
            address: address.to_owned(),
            method: if *method == Method::GET {
                "GET"
            } else if *method == Method::PUT {
                "PUT"
            } else {
                "POST"
            },
            path: path.to_owned(),
            status,
            errors,
            hint,
        }))
    }
}

enum Attempt {
    Done(Result<Value, VaultError>),
    Retry(AttemptError),
}

#[cfg(test)]
mod tests {
    use super::tls_hint;

    #[test]
    fn tls_failures_name_what_to_check() {
        let client_cert = tls_hint("received fatal alert: CertificateRequired").unwrap();
        assert!(
            client_cert.contains("client_cert and client_key"),
            "{client_cert}"
        );
        let ca = tls_hint("invalid peer certificate: UnknownIssuer").unwrap();
        assert!(ca.contains("ca_cert"), "{ca}");
        let plain = tls_hint("tls handshake eof").unwrap();
        assert!(plain.contains("https://"), "{plain}");
        assert_eq!(tls_hint("Connection refused (os error 111)"), None);
    }
}
