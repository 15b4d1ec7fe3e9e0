//! A local Confidential Space launcher: the same token API on a Unix socket, the same token file,
//! and an issuer (discovery + JWKS over HTTP) whose only difference from Google's is the key.

use super::claims::{merge_patch, production_claims, DevClaims};
use super::pki::DevPki;
use super::signing::{jwks, KeyFileError, SigningError, SigningKey};
use crate::attestation::{request_limits_violation, RequestLimitViolation, DEFAULT_TOKEN_AUDIENCE};
use crate::attestation::{unix_now, TokenType, GOOGLE_ISSUER};
use crate::local_server::{serve, ConnectionLimits};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The token API socket's name in the launcher's directory, as in Confidential Space.
pub const SOCKET_NAME: &str = "teeserver.sock";
/// The default token file's name in the launcher's directory, as in Confidential Space.
pub const TOKEN_FILE_NAME: &str = "attestation_verifier_claims_token";
/// The file in the launcher's directory that holds its [`LauncherInfo`] while it runs.
pub const INFO_FILE_NAME: &str = "launcher.json";
const SIGNING_KEY_NAME: &str = "signing-key.pem";
/// A `TokenOptions` body is well under 2 KiB at the verifier's limits (6 nonces of at most 74
/// bytes, an audience of at most 512); anything much larger is not a token request.
pub const MAX_TOKEN_REQUEST_BYTES: usize = 64 * 1024;

/// How to run a dev launcher; [`LauncherConfig::new`] gives the defaults.
#[derive(Debug, Clone)]
pub struct LauncherConfig {
    /// Holds the socket, the token file, the keys and `launcher.json`; created 0700 if missing.
    pub dir: PathBuf,
    /// What minted tokens claim.
    pub claims: DevClaims,
    /// The issuer's port on 127.0.0.1 (discovery, JWKS, PKI root). 0 picks a free port.
    pub port: u16,
    /// The `iss` of minted tokens, also named by discovery (default Google's).
    pub issuer: String,
    /// Replace the signing key this often (default never); retired keys stay in the JWKS until
    /// the tokens they signed have expired.
    pub rotate_every: Option<Duration>,
    /// `exp - iat` of minted tokens (default 1 h); the token file is refreshed at 0.8 of it.
    pub token_lifetime: Duration,
    /// Time a client of the socket or the issuer gets to send a request's headers, counted from
    /// when its connection is served or its previous response was sent; then the connection is
    /// closed. Idle and trickling connections (slowloris) cannot be held open longer than this.
    pub header_read_timeout: Duration,
    /// Time a client gets to send a `POST /v1/token` body once its headers are in; then it gets
    /// `408` and the connection is closed.
    pub body_read_timeout: Duration,
    /// Connections each listener (socket, issuer) serves at once. Further clients wait in the
    /// listen backlog, outside this process, until a connection ends: at the latest when an idle
    /// one reaches `header_read_timeout`. At least 1.
    pub max_connections: usize,
}

impl LauncherConfig {
    /// Defaults in `dir`: production-shaped claims, a free port, Google's issuer, no rotation,
    /// one-hour tokens, 10 s read timeouts and 64 connections per listener.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LauncherConfig {
            dir: dir.into(),
            claims: DevClaims::default(),
            port: 0,
            issuer: GOOGLE_ISSUER.to_owned(),
            rotate_every: None,
            token_lifetime: Duration::from_secs(3600),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// What scripts and tests need to talk to a running launcher; also written to `DIR/launcher.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LauncherInfo {
    /// The `iss` of its tokens.
    pub issuer: String,
    /// Its JWKS, over HTTP on 127.0.0.1.
    pub jwks_url: String,
    /// Its OIDC discovery document.
    pub discovery_url: String,
    /// The token API socket.
    pub socket: PathBuf,
    /// The default token file (audience `https://sts.googleapis.com`), kept fresh.
    pub token_file: PathBuf,
    /// The PKI root certificate (PEM) that PKI tokens chain to.
    pub pki_root: PathBuf,
}

impl LauncherInfo {
    /// Reads the `launcher.json` a running launcher wrote in `dir`. A malformed file is an
    /// error of kind `Other` that holds serde_json's.
    pub fn read(dir: &Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(dir.join(INFO_FILE_NAME))?;
        serde_json::from_str(&text).map_err(std::io::Error::other)
    }
}

/// Why the dev launcher cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    /// The directory cannot be created.
    #[error("launcher directory {}: {source}", path.display())]
    Dir {
        /// The launcher's directory.
        path: PathBuf,
        /// What creating it said.
        #[source]
        source: std::io::Error,
    },
    /// The issuer's port or the token socket cannot be bound.
    #[error("cannot listen on {what}: {source}")]
    Bind {
        /// The address or socket path.
        what: String,
        /// What binding said.
        #[source]
        source: std::io::Error,
    },
    /// The first default token cannot be minted or written.
    #[error("launcher directory {}: writing the token file: {source}", dir.display())]
    TokenFile {
        /// The launcher's directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: TokenFileError,
    },
    /// `launcher.json` cannot be encoded: a path in it is not UTF-8.
    #[error("launcher directory {}: encoding {INFO_FILE_NAME}: {source}", dir.display())]
    InfoJson {
        /// The launcher's directory.
        dir: PathBuf,
        /// What serde_json said.
        #[source]
        source: serde_json::Error,
    },
    /// `launcher.json` cannot be written.
    #[error("launcher directory {}: writing {INFO_FILE_NAME}: {source}", dir.display())]
    InfoFile {
        /// The launcher's directory.
        dir: PathBuf,
        /// What writing it said.
        #[source]
        source: std::io::Error,
    },
    /// A signing key, or the dev PKI, cannot be loaded or created.
    #[error(transparent)]
    Signing(#[from] SigningError),
    /// The configured claims are not a JSON object; the JSON given is included.
    #[error("the claims (--claims or --claims-patch) must be a JSON object, found {0}")]
    ClaimsNotObject(String),
}

/// Why the default token file could not be refreshed.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// Minting the token failed.
    #[error("{0}")]
    Mint(#[source] SigningError),
    /// Writing the file failed.
    #[error("{0}")]
    Write(#[source] std::io::Error),
}

struct KeyRing {
    current: Arc<SigningKey>,
    /// Keys rotated out stay published until tokens they signed have expired.
    retired: Vec<(Arc<SigningKey>, Instant)>,
}

struct Shared {
    issuer: String,
    claims: DevClaims,
    token_lifetime: Duration,
    key_path: PathBuf,
    keys: RwLock<KeyRing>,
    pki: DevPki,
    pki_root_pem: String,
    jwks_url: String,
    body_read_timeout: Duration,
}

/// A token request after validation, in the launcher's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    /// The token's `aud`.
    pub audience: String,
    /// The token's `eat_nonce` (left out when empty).
    pub nonces: Vec<String>,
    /// `Pki`: sign with the dev PKI's leaf and carry the chain in `x5c`; `Oidc`: with the
    /// current OIDC key.
    pub token_type: TokenType,
}

impl Shared {
    fn current_key(&self) -> Arc<SigningKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .clone()
    }

    fn jwks(&self) -> Value {
        let mut ring = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        ring.retired.retain(|(_, until)| *until > now);
        let keys: Vec<&SigningKey> = std::iter::once(ring.current.as_ref())
            .chain(ring.retired.iter().map(|(k, _)| k.as_ref()))
            .collect();
        jwks(keys)
    }

    fn rotate(&self) -> Result<String, SigningError> {
        let key = Arc::new(SigningKey::generate()?);
        key.save(&self.key_path)
            .map_err(|e| SigningError::KeyFile {
                path: self.key_path.clone(),
                source: KeyFileError::Write(e),
            })?;
        let kid = key.kid().to_owned();
        let mut ring = self.keys.write().unwrap_or_else(|p| p.into_inner());
        let old = std::mem::replace(&mut ring.current, key);
        // Published past the lifetime of the last token it signed, plus Vault's clock leeway.
        let until = Instant::now() + self.token_lifetime + Duration::from_secs(60);
        ring.retired.push((old, until));
        tracing::info!(kid = %kid, "dev launcher rotated its signing key");
        Ok(kid)
    }

    fn claims_for(&self, request: &MintRequest) -> Value {
        let now = unix_now();
        let mut claims = match &self.claims {
            DevClaims::Patch(_) => production_claims(),
            DevClaims::Exactly(exact) => exact.clone(),
        };
        let fields = claims.as_object_mut().expect("defaults are an object");
        fields.insert("iss".into(), json!(self.issuer));
        fields.insert("aud".into(), json!(request.audience));
        fields.insert("iat".into(), json!(now));
        fields.insert("nbf".into(), json!(now));
        fields.insert(
            "exp".into(),
            json!(now + self.token_lifetime.as_secs() as i64),
        );
        match request.nonces.as_slice() {
            [] => {}
            [one] => {
                fields.insert("eat_nonce".into(), json!(one));
            }
            many => {
                fields.insert("eat_nonce".into(), json!(many));
            }
        }
        if let DevClaims::Patch(patch) = &self.claims {
            merge_patch(&mut claims, patch);
        }
        claims
    }

    fn mint(&self, request: &MintRequest) -> Result<String, SigningError> {
        let claims = self.claims_for(request);
        if request.token_type == TokenType::Pki {
            self.pki.sign(&claims)
        } else {
            self.current_key().sign(Map::new(), &claims)
        }
    }

    fn default_request() -> MintRequest {
        MintRequest {
            audience: DEFAULT_TOKEN_AUDIENCE.to_owned(),
            nonces: Vec::new(),
            token_type: TokenType::Oidc,
        }
    }
}

/// A running dev launcher. Dropping it without `shutdown` leaves its files behind.
pub struct Launcher {
    info: LauncherInfo,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    dir: PathBuf,
}

impl Launcher {
    /// Starts a launcher as `config` says: keys loaded (or created) in its directory, the token
    /// socket, the issuer's HTTP port, the token file and `launcher.json` all in place.
    pub async fn start(config: LauncherConfig) -> Result<Launcher, LauncherError> {
        if !config.claims.json().is_object() {
            return Err(LauncherError::ClaimsNotObject(
                config.claims.json().to_string(),
            ));
        }
        let dir = config.dir.clone();
        // A directory the launcher creates is private (0700) whatever the umask; one that exists is
        // the caller's choice and is left as it is.
        crate::fsutil::create_private_dir(&dir).map_err(|source| LauncherError::Dir {
            path: dir.clone(),
            source,
        })?;
        let key_path = dir.join(SIGNING_KEY_NAME);
        let current = Arc::new(SigningKey::load_or_create(&key_path)?);
        let pki = DevPki::load_or_create(&dir)?;

        let bind_error = |source| LauncherError::Bind {
            what: format!("127.0.0.1:{}", config.port),
            source,
        };
        let http = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(bind_error)?;
        let base = format!("http://{}", http.local_addr().map_err(bind_error)?);
        let socket = dir.join(SOCKET_NAME);
        let unix = bind_private_socket(&socket).map_err(|source| LauncherError::Bind {
            what: socket.display().to_string(),
            source,
        })?;

        let shared = Arc::new(Shared {
            issuer: config.issuer.clone(),
            claims: config.claims.clone(),
            token_lifetime: config.token_lifetime,
            key_path,
            keys: RwLock::new(KeyRing {
                current,
                retired: Vec::new(),
            }),
            pki_root_pem: pki.root_pem().to_owned(),
            pki,
            jwks_url: format!("{base}/jwks"),
            body_read_timeout: config.body_read_timeout,
        });
        let info = LauncherInfo {
            issuer: config.issuer.clone(),
            jwks_url: shared.jwks_url.clone(),
            discovery_url: format!("{base}/.well-known/openid-configuration"),
            socket,
            token_file: dir.join(TOKEN_FILE_NAME),
            pki_root: dir.join("pki-root.pem"),
        };
        write_token_file(&shared, &info.token_file).map_err(|source| LauncherError::TokenFile {
            dir: dir.clone(),
            source,
        })?;

        let limits = ConnectionLimits {
            max_connections: config.max_connections.max(1),
            header_read_timeout: config.header_read_timeout,
        };
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(serve(
            http,
            issuer_routes(shared.clone()),
            limits,
            stopped.clone(),
        )));
        tasks.push(tokio::spawn(serve(
            unix,
            teeserver_routes(shared.clone()),
            limits,
            stopped.clone(),
        )));
        // Like the real launcher: refresh the token file at about 0.8 of the token's lifetime.
        let refresh = shared
            .token_lifetime
            .mul_f64(0.8)
            .max(Duration::from_millis(100));
        let (refresher, token_file) = (shared.clone(), info.token_file.clone());
        tasks.push(tokio::spawn(every(
            refresh,
            stopped.clone(),
            "refresh the token file",
            move || write_token_file(&refresher, &token_file),
        )));
        if let Some(period) = config.rotate_every {
            let rotator = shared.clone();
            tasks.push(tokio::spawn(every(
                period,
                stopped,
                "rotate its key",
                move || rotator.rotate().map(|_| ()),
            )));
        }

        let info_json =
            serde_json::to_vec_pretty(&info).map_err(|source| LauncherError::InfoJson {
                dir: dir.clone(),
                source,
            })?;
        crate::fsutil::write_atomically(&dir.join(INFO_FILE_NAME), &info_json, 0o644).map_err(
            |source| LauncherError::InfoFile {
                dir: dir.clone(),
                source,
            },
        )?;
        tracing::info!(jwks_url = %info.jwks_url, socket = %info.socket.display(), "dev launcher ready");
        Ok(Launcher {
            info,
            shared,
            stop,
            tasks,
            dir,
        })
    }

    /// Where the launcher's endpoints and files are.
    pub fn info(&self) -> &LauncherInfo {
        &self.info
    }

    /// The `kid` of the key OIDC tokens are signed with now.
    pub fn current_kid(&self) -> String {
        self.shared.current_key().kid().to_owned()
    }

    /// Replaces the signing key now; the old one stays in the JWKS. Returns the new kid.
    pub fn rotate_key(&self) -> Result<String, SigningError> {
        self.shared.rotate()
    }

    /// Mints a token in-process, exactly as the socket would.
    pub fn mint(&self, request: &MintRequest) -> Result<String, SigningError> {
        self.shared.mint(request)
    }

    /// Stops the servers and removes the socket and `launcher.json`.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let _ = std::fs::remove_file(&self.info.socket);
        let _ = std::fs::remove_file(self.dir.join(INFO_FILE_NAME));
    }
}

/// Binds the token socket at `socket` so that no other user can ever connect to it, whatever the
/// umask.
///
/// A socket file gets its mode from the umask at `bind`. Setting a restrictive umask around `bind`
/// is not an option for a library: the umask is process-wide, so other threads would create files
/// with it too. Binding at the final path and chmodding it there is racy: after `listen`, others
/// can connect until the chmod lands, and a chmod by path acts on whatever is at the path by then.
/// So the socket is bound in a fresh 0700 directory inside DIR, where no other user can reach it
/// (connecting needs search permission on every directory of the path), chmodded to 0600 there
/// before `listen`, and renamed into place. It appears at `socket` already owner-only, and the
/// rename atomically replaces a stale socket from an earlier run.
fn bind_private_socket(socket: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let dir = match socket.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    // `create` fails if the name is taken, so the directory is certainly this process's own;
    // its mode is 0700 minus the umask, never more.
    let staging = dir.join(format!(".teeserver.{:08x}", rand::random::<u32>()));
    std::fs::DirBuilder::new().mode(0o700).create(&staging)?;
    let staged = staging.join("s");
    let bound = (|| {
        let listener = tokio::net::UnixSocket::new_stream()?;
        listener.bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o600))?;
        let listener = listener.listen(1024)?;
        std::fs::rename(&staged, socket)?;
        Ok(listener)
    })();
    if bound.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    let _ = std::fs::remove_dir(&staging);
    bound
}

/// Resolves once the launcher is told to stop (or has gone).
fn write_token_file(shared: &Shared, path: &Path) -> Result<(), TokenFileError> {
    let token = shared
        .mint(&Shared::default_request())
        .map_err(TokenFileError::Mint)?;
    // The token is a bearer credential: only the launcher's user may read it.
    crate::fsutil::write_atomically(path, token.as_bytes(), 0o600).map_err(TokenFileError::Write)
}

/// Runs `chore` every `period` until the launcher stops; a failure is logged and retried next time.
async fn every<E: std::error::Error + 'static>(
    period: Duration,
    mut stopped: watch::Receiver<bool>,
    what: &'static str,
    chore: impl Fn() -> Result<(), E>,
) {
    loop {
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => return,
            _ = tokio::time::sleep(period) => {
                if let Err(e) = chore() {
                    tracing::error!(error = %crate::errors::error_chain(&e), "dev launcher could not {what}");
                }
            }
        }
    }
}

fn issuer_routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks_document))
        .route("/.well-known/attestation-pki-root", get(pki_root))
        .with_state(shared)
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(json!({
        "issuer": shared.issuer,
        "jwks_uri": shared.jwks_url,
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid"],
        "claims_supported": [
            "sub", "aud", "exp", "iat", "iss", "jti", "nbf", "dbgstat", "eat_nonce", "google_service_accounts",
            "hwmodel", "oemid", "secboot", "submods", "swname", "swversion"
        ]
    }))
}

async fn jwks_document(State(shared): State<Arc<Shared>>) -> Json<Value> {
    Json(shared.jwks())
}

async fn pki_root(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/x-pem-file")],
        shared.pki_root_pem.clone(),
    )
        .into_response()
}

fn teeserver_routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/token", any(token_endpoint))
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n") })
        .with_state(shared)
}

/// The launcher answers in `text/html` whatever the outcome; errors are the bare message.
fn launcher_reply(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html")], body).into_response()
}

async fn token_endpoint(State(shared): State<Arc<Shared>>, method: Method, body: Body) -> Response {
    let request = match method {
        Method::GET => Shared::default_request(),
        Method::POST => {
            // hyper's header timeout does not cover the body: bound both its size and its time.
            let read = axum::body::to_bytes(body, MAX_TOKEN_REQUEST_BYTES);
            let body = match tokio::time::timeout(shared.body_read_timeout, read).await {
                Ok(Ok(body)) => body,
                Ok(Err(e)) => {
                    let too_large = std::error::Error::source(&e)
                        .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
                    return if too_large {
                        launcher_reply(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            format!("request body is larger than {MAX_TOKEN_REQUEST_BYTES} bytes"),
                        )
                    } else {
                        launcher_reply(
                            StatusCode::BAD_REQUEST,
                            format!("failed to read the request body: {e}"),
                        )
                    };
                }
                Err(_) => {
                    return launcher_reply(
                        StatusCode::REQUEST_TIMEOUT,
                        "timed out reading the request body".into(),
                    )
                }
            };
            match parse_token_options(&body).and_then(validate) {
                Ok(request) => request,
                Err(refusal) => {
                    return launcher_reply(StatusCode::BAD_REQUEST, refusal.to_string())
                }
            }
        }
        other => {
            return launcher_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("TEE server received an invalid HTTP method: {other}"),
            )
        }
    };
    match shared.mint(&request) {
        Ok(token) => launcher_reply(StatusCode::OK, token),
        Err(e) => launcher_reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// The fields of the launcher's `TokenOptions`, as Go's `encoding/json` decodes them: field names
/// match case-insensitively, unknown fields are rejected, `null` leaves the zero value.
#[derive(Debug, Default)]
struct TokenOptions {
    audience: String,
    token_type: String,
    nonces: Vec<String>,
}

fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Why the launcher refuses a `POST /v1/token`, worded exactly as the real launcher words it
/// (the text is the response body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRequestRefusal {
    /// The body is not a `TokenOptions` JSON object.
    #[error("failed to parse POST body as TokenOptions: {0}")]
    Parse(#[source] GoDecodeError),
    /// No audience: that is what `GET` is for.
    #[error("use GET request for the default identity token")]
    NoAudience,
    /// No token type.
    #[error("token_type is a required parameter")]
    NoTokenType,
    /// The attestation verifier would refuse the request.
    #[error("failed to retrieve custom attestation service token: rpc error: code = InvalidArgument desc = {0}")]
    Verifier(#[source] VerifierRefusal),
}

/// What Go's `encoding/json` says of a body it cannot decode into `TokenOptions`. serde_json's
/// own error is dropped on purpose: the launcher answers with Go's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoDecodeError {
    /// Nothing but whitespace.
    #[error("EOF")]
    Eof,
    /// The JSON stops early.
    #[error("unexpected EOF")]
    UnexpectedEof,
    /// Not JSON; the first non-blank byte is given.
    #[error("invalid character '{}' looking for beginning of value", char::from(*.0))]
    InvalidCharacter(u8),
    /// JSON, but not an object.
    #[error("json: cannot unmarshal {found} into Go value of type models.TokenOptions")]
    NotAnObject { found: &'static str },
    /// A known field of the wrong JSON type.
    #[error("json: cannot unmarshal {found} into Go struct field TokenOptions.{field} of type {go_type}")]
    FieldType {
        field: &'static str,
        found: &'static str,
        go_type: &'static str,
    },
    /// A field `TokenOptions` does not have.
    #[error("json: unknown field \"{0}\"")]
    UnknownField(String),
}

/// Why the attestation verifier would refuse a well-formed request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierRefusal {
    /// AWS principal-tags tokens are not minted here.
    #[error("token type AWS_PRINCIPALTAGS is not supported by the attestgate dev launcher")]
    AwsPrincipalTags,
    /// A token type the verifier does not know.
    #[error("unsupported token type \"{0}\"")]
    UnsupportedType(String),
    /// The audience or the nonces are out of the verifier's limits.
    #[error("{0}")]
    Limits(#[source] RequestLimitViolation),
}

fn parse_token_options(body: &[u8]) -> Result<TokenOptions, TokenRequestRefusal> {
    let fail = TokenRequestRefusal::Parse;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(fail(GoDecodeError::Eof));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        fail(if e.is_eof() {
            GoDecodeError::UnexpectedEof
        } else {
            let offset = body
                .iter()
                .position(|b| !b.is_ascii_whitespace())
                .unwrap_or(0);
            GoDecodeError::InvalidCharacter(body[offset])
        })
    })?;
    let Value::Object(fields) = value else {
        return Err(fail(GoDecodeError::NotAnObject {
            found: go_kind(&value),
        }));
    };
    let mismatch = |field: &'static str, value: &Value, go_type: &'static str| {
        fail(GoDecodeError::FieldType {
            field,
            found: go_kind(value),
            go_type,
        })
    };
    let mut options = TokenOptions::default();
    for (name, value) in &fields {
        match name.to_ascii_lowercase().as_str() {
            "audience" => match value {
                Value::Null => {}
                Value::String(s) => options.audience = s.clone(),
                other => return Err(mismatch("audience", other, "string")),
            },
            "token_type" => match value {
                Value::Null => {}
                Value::String(s) => options.token_type = s.clone(),
                other => return Err(mismatch("token_type", other, "string")),
            },
            "nonces" => match value {
                Value::Null => {}
                Value::Array(items) => {
                    for item in items {
                        match item {
                            Value::String(s) => options.nonces.push(s.clone()),
                            other => return Err(mismatch("nonces", other, "string")),
                        }
                    }
                }
                other => return Err(mismatch("nonces", other, "[]string")),
            },
            _ => return Err(fail(GoDecodeError::UnknownField(name.clone()))),
        }
    }
    Ok(options)
}

fn validate(options: TokenOptions) -> Result<MintRequest, TokenRequestRefusal> {
    if options.audience.is_empty() {
        return Err(TokenRequestRefusal::NoAudience);
    }
    if options.token_type.is_empty() {
        return Err(TokenRequestRefusal::NoTokenType);
    }
    let token_type = match options.token_type.as_str() {
        "OIDC" => TokenType::Oidc,
        "PKI" => TokenType::Pki,
        "AWS_PRINCIPALTAGS" => {
            return Err(TokenRequestRefusal::Verifier(
                VerifierRefusal::AwsPrincipalTags,
            ))
        }
        other => {
            return Err(TokenRequestRefusal::Verifier(
                VerifierRefusal::UnsupportedType(other.to_owned()),
            ))
        }
    };
    if let Some(violation) = request_limits_violation(&options.audience, &options.nonces) {
        return Err(TokenRequestRefusal::Verifier(VerifierRefusal::Limits(
            violation,
        )));
    }
    Ok(MintRequest {
        audience: options.audience,
        nonces: options.nonces,
        token_type,
    })
}

/// Decodes a `POST /v1/token` body as the launcher does: the token to mint, or the launcher's
/// refusal. For fuzz targets (feature `internals`).
#[cfg(feature = "internals")]
pub fn decode_token_request(body: &[u8]) -> Result<MintRequest, TokenRequestRefusal> {
    parse_token_options(body).and_then(validate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_options_are_decoded_like_go_does() {
        let refusal = |body: &[u8]| parse_token_options(body).unwrap_err().to_string();
        assert_eq!(
            refusal(br#"{"audience":"a","bogus":1}"#),
            r#"failed to parse POST body as TokenOptions: json: unknown field "bogus""#
        );
        let options = parse_token_options(br#"{"Audience":"a","TOKEN_TYPE":"OIDC"}"#).unwrap();
        assert_eq!(
            (options.audience.as_str(), options.token_type.as_str()),
            ("a", "OIDC")
        );
        assert!(refusal(br#"{"audience":5}"#)
            .ends_with("json: cannot unmarshal number into Go struct field TokenOptions.audience of type string"));
        assert!(refusal(b"").ends_with(": EOF"));
        assert_eq!(
            refusal(b"  nope"),
            "failed to parse POST body as TokenOptions: invalid character 'n' looking for beginning of value"
        );
        assert_eq!(
            refusal(b"[1]"),
            "failed to parse POST body as TokenOptions: json: cannot unmarshal array into Go value of type models.TokenOptions"
        );
    }

    #[test]
    fn refusals_read_like_the_real_launchers() {
        let options = |audience: &str, token_type: &str, nonces: &[&str]| TokenOptions {
            audience: audience.into(),
            token_type: token_type.into(),
            nonces: nonces.iter().map(|n| n.to_string()).collect(),
        };
        let refusal = |o: TokenOptions| validate(o).unwrap_err().to_string();
        assert_eq!(
            refusal(options("", "OIDC", &[])),
            "use GET request for the default identity token"
        );
        assert_eq!(
            refusal(options("a", "", &[])),
            "token_type is a required parameter"
        );
        let verifier = "failed to retrieve custom attestation service token: rpc error: code = InvalidArgument desc = ";
        assert_eq!(
            refusal(options("a", "JWT", &[])),
            format!("{verifier}unsupported token type \"JWT\"")
        );
        assert_eq!(
            refusal(options("a", "AWS_PRINCIPALTAGS", &[])),
            format!("{verifier}token type AWS_PRINCIPALTAGS is not supported by the attestgate dev launcher")
        );
        assert_eq!(
            refusal(options("a", "OIDC", &["short"])),
            format!("{verifier}nonce 0 is 5 bytes; each nonce must be between 10 and 74 bytes")
        );
        assert_eq!(
            validate(options("a", "PKI", &[])).unwrap().token_type,
            TokenType::Pki
        );
    }
}
