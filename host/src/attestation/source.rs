//! Getting a token inside the TEE: from the launcher's Unix socket, or from the default token file.

use super::jwt::Jwt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the Confidential Space launcher mounts its socket and token file inside the container.
pub const DEFAULT_LAUNCHER_SOCKET: &str = "/run/container_launcher/teeserver.sock";
pub const DEFAULT_TOKEN_FILE: &str = "/run/container_launcher/attestation_verifier_claims_token";
/// The audience of the default token: Google's STS.
pub const DEFAULT_TOKEN_AUDIENCE: &str = "https://sts.googleapis.com";

const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The limits the attestation verifier puts on a custom token request.
pub const MAX_NONCES: usize = 6;
pub const NONCE_BYTES: std::ops::RangeInclusive<usize> = 10..=74;
pub const MAX_AUDIENCE_BYTES: usize = 512;

/// A token request the attestation verifier would refuse, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestLimitViolation {
    /// The audience is longer than [`MAX_AUDIENCE_BYTES`].
    #[error("audience is {0} bytes, longer than the maximum of {MAX_AUDIENCE_BYTES}")]
    AudienceTooLong(usize),
    /// More than [`MAX_NONCES`] nonces.
    #[error("got {0} nonces, but at most {MAX_NONCES} are allowed")]
    TooManyNonces(usize),
    /// A nonce outside [`NONCE_BYTES`].
    #[error("nonce {index} is {bytes} bytes; each nonce must be between {} and {} bytes", NONCE_BYTES.start(), NONCE_BYTES.end())]
    NonceLength {
        /// Which nonce, from 0.
        index: usize,
        /// Its length.
        bytes: usize,
    },
}

/// What is wrong with an audience and nonces by the verifier's limits, if anything.
pub(crate) fn request_limits_violation(
    audience: &str,
    nonces: &[String],
) -> Option<RequestLimitViolation> {
    if audience.len() > MAX_AUDIENCE_BYTES {
        return Some(RequestLimitViolation::AudienceTooLong(audience.len()));
    }
    if nonces.len() > MAX_NONCES {
        return Some(RequestLimitViolation::TooManyNonces(nonces.len()));
    }
    let (index, nonce) = nonces
        .iter()
        .enumerate()
        .find(|(_, n)| !NONCE_BYTES.contains(&n.len()))?;
    Some(RequestLimitViolation::NonceLength {
        index,
        bytes: nonce.len(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenType {
    #[default]
    Oidc,
    Pki,
    AwsPrincipaltags,
}

impl TokenType {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Oidc => "OIDC",
            TokenType::Pki => "PKI",
            TokenType::AwsPrincipaltags => "AWS_PRINCIPALTAGS",
        }
    }
}

impl std::str::FromStr for TokenType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_uppercase().as_str() {
            "OIDC" => Ok(TokenType::Oidc),
            "PKI" => Ok(TokenType::Pki),
            "AWS_PRINCIPALTAGS" => Ok(TokenType::AwsPrincipaltags),
            other => Err(format!(
                "unknown token type \"{other}\" (expected OIDC, PKI or AWS_PRINCIPALTAGS)"
            )),
        }
    }
}

/// The body of `POST /v1/token`, exactly as the launcher's API defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRequest {
    pub audience: String,
    pub token_type: TokenType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nonces: Vec<String>,
}

impl TokenRequest {
    pub fn new(audience: impl Into<String>) -> Self {
        TokenRequest {
            audience: audience.into(),
            token_type: TokenType::Oidc,
            nonces: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot connect to the launcher socket {socket}: {reason} (is this running inside Confidential Space, or is `attestgate dev launcher` running?)")]
    Connect { socket: PathBuf, reason: String },
    #[error("the launcher at {socket} did not answer within {timeout:?}")]
    Timeout { socket: PathBuf, timeout: Duration },
    #[error("talking to the launcher at {socket} failed: {reason}")]
    Protocol { socket: PathBuf, reason: String },
    /// The launcher's own words (control characters escaped).
    #[error("the launcher refused the token request (HTTP {status}): {message}")]
    Launcher { status: u16, message: String },
    #[error("cannot read the token file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("the token from {origin} is empty")]
    Empty { origin: String },
}

/// A client for the launcher's token API on its Unix socket.
#[derive(Debug, Clone)]
pub struct LauncherClient {
    socket: PathBuf,
    timeout: Duration,
}

impl LauncherClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        LauncherClient {
            socket: socket.into(),
            timeout: Duration::from_secs(10),
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `POST /v1/token`: a token with a custom audience, nonces and type.
    pub async fn custom_token(&self, request: &TokenRequest) -> Result<Jwt, SourceError> {
        let body = serde_json::to_vec(request).map_err(|e| self.protocol(e.to_string()))?;
        self.call("POST", Bytes::from(body)).await
    }

    /// `GET /v1/token`: a fresh token with the default STS audience.
    pub async fn default_token(&self) -> Result<Jwt, SourceError> {
        self.call("GET", Bytes::new()).await
    }

    fn protocol(&self, reason: String) -> SourceError {
        SourceError::Protocol {
            socket: self.socket.clone(),
            reason,
        }
    }

    async fn call(&self, method: &str, body: Bytes) -> Result<Jwt, SourceError> {
        tokio::time::timeout(self.timeout, self.exchange(method, body))
            .await
            .unwrap_or_else(|_| {
                Err(SourceError::Timeout {
                    socket: self.socket.clone(),
                    timeout: self.timeout,
                })
            })
    }

    async fn exchange(&self, method: &str, body: Bytes) -> Result<Jwt, SourceError> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| SourceError::Connect {
                socket: self.socket.clone(),
                reason: e.to_string(),
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol(e.to_string()))?;
        let driver = tokio::spawn(connection);
        let mut builder = Request::builder()
            .method(method)
            .uri("/v1/token")
            .header(hyper::header::HOST, "localhost");
        if method == "POST" {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(body))
            .map_err(|e| self.protocol(e.to_string()))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.protocol(e.to_string()))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| self.protocol(format!("reading the response: {e}")))?
            .to_bytes();
        driver.abort();
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        if !status.is_success() {
            return Err(SourceError::Launcher {
                status: status.as_u16(),
                message: crate::http::escape_control(&text).into_owned(),
            });
        }
        if text.is_empty() {
            return Err(SourceError::Empty {
                origin: format!("launcher socket {}", self.socket.display()),
            });
        }
        Ok(Jwt::new(text))
    }
}

/// Reads the default token file. Call it on every use: the launcher replaces the file before the
/// token in it expires.
pub async fn read_token_file(path: &Path) -> Result<Jwt, SourceError> {
    let bytes = tokio::fs::read(path).await.map_err(|e| SourceError::File {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|_| SourceError::File {
        path: path.to_owned(),
        reason: "not UTF-8 text".into(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(SourceError::Empty {
            origin: format!("token file {}", path.display()),
        });
    }
    Ok(Jwt::new(token))
}
