//! Getting a token inside the TEE: from the launcher's Unix socket, or from the default token file.

use super::jwt::Jwt;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the Confidential Space launcher mounts its token API socket inside the container.
pub const DEFAULT_LAUNCHER_SOCKET: &str = "/run/container_launcher/teeserver.sock";
/// Where the launcher keeps the default token (audience [`DEFAULT_TOKEN_AUDIENCE`]) inside the
/// container, replaced before it expires.
pub const DEFAULT_TOKEN_FILE: &str = "/run/container_launcher/attestation_verifier_claims_token";
/// The audience of the default token: Google's STS.
pub const DEFAULT_TOKEN_AUDIENCE: &str = "https://sts.googleapis.com";

const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The most nonces the attestation verifier accepts in one custom token request.
pub const MAX_NONCES: usize = 6;
/// The length in bytes the attestation verifier accepts for each nonce.
pub const NONCE_BYTES: std::ops::RangeInclusive<usize> = 10..=74;
/// The longest audience, in bytes, the attestation verifier accepts.
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

/// The kind of token the launcher is asked for (`token_type` of `POST /v1/token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TokenType {
    /// Signed with one of the issuer's published keys, found by `kid` in its JWKS.
    #[default]
    Oidc,
    /// Signed by a certificate whose chain (`x5c`) leads to the attestation PKI root.
    Pki,
    /// The AWS principal-tags format; attestgate cannot verify it, and the dev launcher refuses
    /// to mint it.
    AwsPrincipaltags,
}

/// A token type name that is none of OIDC, PKI and AWS_PRINCIPALTAGS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown token type \"{0}\" (expected OIDC, PKI or AWS_PRINCIPALTAGS)")]
pub struct UnknownTokenType(
    /// The name given, upper-cased.
    pub String,
);

impl TokenType {
    /// The name the launcher's API uses, e.g. `"OIDC"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Oidc => "OIDC",
            TokenType::Pki => "PKI",
            TokenType::AwsPrincipaltags => "AWS_PRINCIPALTAGS",
        }
    }
}

impl std::str::FromStr for TokenType {
    type Err = UnknownTokenType;

    /// Reads a token type name in any case.
    fn from_str(s: &str) -> Result<Self, UnknownTokenType> {
        match s.to_ascii_uppercase().as_str() {
            "OIDC" => Ok(TokenType::Oidc),
            "PKI" => Ok(TokenType::Pki),
            "AWS_PRINCIPALTAGS" => Ok(TokenType::AwsPrincipaltags),
            other => Err(UnknownTokenType(other.to_owned())),
        }
    }
}

/// The body of `POST /v1/token`, exactly as the launcher's API defines it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRequest {
    /// The token's `aud`: the relying party it is minted for (at most [`MAX_AUDIENCE_BYTES`]).
    pub audience: String,
    /// OIDC or PKI.
    pub token_type: TokenType,
    /// Copied into the token's `eat_nonce`: at most [`MAX_NONCES`], each of [`NONCE_BYTES`]
    /// bytes. Left out of the body when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nonces: Vec<String>,
}

impl TokenRequest {
    /// An OIDC token request for `audience`, without nonces.
    pub fn new(audience: impl Into<String>) -> Self {
        TokenRequest {
            audience: audience.into(),
            token_type: TokenType::Oidc,
            nonces: Vec::new(),
        }
    }
}

/// Why no token could be had from the launcher or the token file.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The socket cannot be connected to: no launcher, or no permission.
    #[error("cannot connect to the launcher socket {socket}: {source} (is this running inside Confidential Space, or is `attestgate dev launcher` running?)")]
    Connect {
        /// The socket's path.
        socket: PathBuf,
        /// What `connect` said.
        #[source]
        source: std::io::Error,
    },
    /// The launcher took longer than the client's timeout.
    #[error("the launcher at {socket} did not answer within {timeout:?}")]
    Timeout {
        /// The socket's path.
        socket: PathBuf,
        /// The client's timeout.
        timeout: Duration,
    },
    /// The HTTP exchange over the socket broke down.
    #[error("talking to the launcher at {socket} failed: {source}")]
    Protocol {
        /// The socket's path.
        socket: PathBuf,
        /// Where it broke down.
        #[source]
        source: LauncherProtocolError,
    },
    /// The launcher's own words (control characters escaped).
    #[error("the launcher refused the token request (HTTP {status}): {message}")]
    Launcher {
        /// The HTTP status it answered with.
        status: u16,
        /// Its response body: the launcher's error text, escaped.
        message: String,
    },
    /// The token file cannot be read.
    #[error("cannot read the token file {path}: {source}")]
    File {
        /// The file's path.
        path: PathBuf,
        /// What reading it said.
        #[source]
        source: std::io::Error,
    },
    /// The token file holds bytes that are not UTF-8, so no token.
    #[error("cannot read the token file {path}: not UTF-8 text ({source})")]
    NotText {
        /// The file's path.
        path: PathBuf,
        /// Where the text stops being UTF-8 (positions only: the bytes may be a token).
        #[source]
        source: std::str::Utf8Error,
    },
    /// The launcher or the file gave an empty token.
    #[error("the token from {origin} is empty")]
    Empty {
        /// The socket or the file, described.
        origin: String,
    },
}

/// Where an HTTP exchange with the launcher broke down.
#[derive(Debug, thiserror::Error)]
pub enum LauncherProtocolError {
    /// The request body could not be encoded.
    #[error("encoding the request: {0}")]
    Encode(#[source] serde_json::Error),
    /// The HTTP request could not be built.
    #[error("building the request: {0}")]
    Request(#[source] hyper::http::Error),
    /// The HTTP/1 handshake, or sending the request, failed.
    #[error("{0}")]
    Http(#[source] hyper::Error),
    /// The response body could not be read whole (a broken connection, or over 64 KiB).
    #[error("reading the response: {0}")]
    ReadBody(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A client for the launcher's token API on its Unix socket.
#[derive(Debug, Clone)]
pub struct LauncherClient {
    socket: PathBuf,
    timeout: Duration,
}

impl LauncherClient {
    /// A client of the launcher listening on `socket`, with a 10 s timeout per request.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        LauncherClient {
            socket: socket.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The same client with another limit on each whole request (connect, send, read).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `POST /v1/token`: a token with a custom audience, nonces and type.
    pub async fn custom_token(&self, request: &TokenRequest) -> Result<Jwt, SourceError> {
        let body = serde_json::to_vec(request)
            .map_err(|e| self.protocol(LauncherProtocolError::Encode(e)))?;
        self.call("POST", Bytes::from(body)).await
    }

    /// `GET /v1/token`: a fresh token with the default STS audience.
    pub async fn default_token(&self) -> Result<Jwt, SourceError> {
        self.call("GET", Bytes::new()).await
    }

    fn protocol(&self, source: LauncherProtocolError) -> SourceError {
        SourceError::Protocol {
            socket: self.socket.clone(),
            source,
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
            .map_err(|source| SourceError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.protocol(LauncherProtocolError::Http(e)))?;
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
            .map_err(|e| self.protocol(LauncherProtocolError::Request(e)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.protocol(LauncherProtocolError::Http(e)))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
            .collect()
            .await
            .map_err(|e| self.protocol(LauncherProtocolError::ReadBody(e)))?
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
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| SourceError::File {
            path: path.to_owned(),
            source,
        })?;
    // The Utf8Error, not the FromUtf8Error: that one would keep the token's bytes in the error.
    let text = String::from_utf8(bytes).map_err(|e| SourceError::NotText {
        path: path.to_owned(),
        source: e.utf8_error(),
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(SourceError::Empty {
            origin: format!("token file {}", path.display()),
        });
    }
    Ok(Jwt::new(token))
}
