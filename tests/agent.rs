//! `attestgate agent` against real OpenBao servers and the dev launcher: secrets kept fresh,
//! tokens replaced before they expire, failures backed off and isolated, access withdrawn,
//! reloads, and the supervised workload.

use crate::harness::capture::{Answer, CaptureServer};
use crate::harness::config::{Collaborator, ConfigBuilder, Secret, Vault};
use crate::harness::gate::Gate;
use crate::harness::launcher::TestLauncher;
use crate::harness::openbao::{OpenBao, OpenBaoOptions};
use crate::harness::{closed_by_now, corrected_role, payload, wait_for};
use attestgate::agent::{AgentExit, AgentOptions, Control};
use attestgate::config::WorkloadSignal;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

const GENEROUS: Duration = Duration::from_secs(60);

fn audience(name: &str) -> String {
    format!("https://vault.{name}.example")
}

/// The corrected seed role for `name`'s audience, with short-lived tokens.
fn role(name: &str, ttl_seconds: u64) -> Value {
    let mut role = corrected_role();
    role["bound_audiences"] = json!([audience(name)]);
    role["token_ttl"] = json!(ttl_seconds);
    role["token_explicit_max_ttl"] = json!(ttl_seconds);
    role
}

/// An OpenBao for `name` whose `kv/data/message` holds `{foo: value}`.
async fn vault_for(launcher: &TestLauncher, name: &str, value: &str, ttl: u64) -> OpenBao {
    let bao = OpenBao::start_with(OpenBaoOptions {
        audit: true,
        ..Default::default()
    })
    .await;
    bao.setup_collaborator(
        &launcher.info().jwks_url,
        name,
        role(name, ttl),
        &[("message", json!({"foo": value}))],
    )
    .await;
    bao
}

/// `name`, judged by its role's own rules, releasing `foo` as a file (and as `env`).
fn collaborator(name: &str, vault: Vault, out: &Path, ttl: u64) -> Collaborator {
    Collaborator::bound_claims(name, role(name, ttl))
        .vault(vault.role(name))
        .secret(
            Secret::at("kv/data/message")
                .field("foo")
                .file(&out.join(name).join("foo"))
                .env(&format!("{}_FOO", name.to_uppercase().replace('-', "_"))),
        )
}

/// OpenBao's PKI engine on `bao`: `pki/issue/app` issues a certificate as a lease of `ttl` (not
/// renewable), which `name`'s policy may request besides reading `kv/data/message`.
async fn issue_certificates(bao: &OpenBao, name: &str, ttl: &str) {
    for (path, body) in [
        ("sys/mounts/pki".to_owned(), json!({"type": "pki"})),
        (
            "pki/root/generate/internal".to_owned(),
            json!({"common_name": "ca.internal", "ttl": "24h"}),
        ),
        (
            "pki/roles/app".to_owned(),
            json!({"allowed_domains": "example.internal", "allow_subdomains": true, "generate_lease": true, "ttl": ttl, "max_ttl": ttl}),
        ),
        (
            format!("sys/policies/acl/{name}-secrets"),
            json!({"policy": "path \"kv/data/message\" { capabilities = [\"read\"] }\npath \"pki/issue/app\" { capabilities = [\"update\"] }\n"}),
        ),
    ] {
        let (status, response) = bao.write(&path, body).await;
        assert!(status < 300, "{path}: {status} {response}");
    }
}

/// A certificate from [`issue_certificates`], delivered to `file`.
fn certificate(file: &Path) -> Secret {
    Secret::at("pki/issue/app")
        .field("certificate")
        .write(json!({"common_name": "app.example.internal"}))
        .file(file)
}

fn config(dir: &Path, launcher: &TestLauncher) -> ConfigBuilder {
    ConfigBuilder::local(dir, launcher.info())
        .delivery_root(&dir.join("out"))
        .agent("backoff_min", "200ms")
        .agent("backoff_max", "1s")
        .agent("listen", "127.0.0.1:0")
}

/// An agent running in this process, stopped on drop.
struct RunningAgent {
    control: mpsc::Sender<Control>,
    task: Option<tokio::task::JoinHandle<Result<AgentExit, attestgate::agent::AgentError>>>,
    health: Option<SocketAddr>,
    http: reqwest::Client,
}

impl RunningAgent {
    async fn start(config: PathBuf) -> RunningAgent {
        let (control, controls) = mpsc::channel(4);
        let (ready, bound) = oneshot::channel();
        let options = AgentOptions {
            config,
            once: false,
            workload: None,
        };
        let task = tokio::spawn(attestgate::agent::run(options, controls, Some(ready)));
        let health = tokio::time::timeout(GENEROUS, bound)
            .await
            .expect("the first delivery within a minute")
            .expect("the agent started");
        RunningAgent {
            control,
            task: Some(task),
            health,
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let address = self.health.expect("[agent] listen is set");
        let response = self
            .http
            .get(format!("http://{address}{path}"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn health(&self) -> (u16, Value) {
        let (status, body) = self.get("/healthz").await;
        (status, serde_json::from_str(&body).unwrap())
    }

    async fn stop(mut self) -> AgentExit {
        self.control
            .send(Control::Stop(WorkloadSignal::Term))
            .await
            .unwrap();
        let task = self.task.take().unwrap();
        tokio::time::timeout(GENEROUS, task)
            .await
            .expect("the agent stops")
            .unwrap()
            .unwrap()
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The agent binary on `config`, supervising `sh -c script`, with a guard that stops it.
fn agent_with_workload(config: &Path, script: &str) -> (tokio::process::Child, TermOnDrop) {
    let agent = tokio::process::Command::new(crate::harness::attestgate_bin())
        .arg("agent")
        .arg("--config")
        .arg(config)
        .args(["--", "sh", "-c", script])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stop = TermOnDrop(agent.id().unwrap());
    (agent, stop)
}

/// Sends SIGTERM to the agent binary when dropped (a test that fails half-way included), so it
/// stops its workload and exits instead of outliving the test.
struct TermOnDrop(u32);

impl Drop for TermOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
    }
}

fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

async fn rotate(bao: &OpenBao, value: &str) {
    let (status, body) = bao
        .write("kv/data/message", json!({"data": {"foo": value}}))
        .await;
    assert!(status < 300, "{status} {body}");
}

#[tokio::test]
async fn a_rotated_secret_reaches_its_file_and_every_login_uses_a_fresh_token() {
    let launcher = TestLauncher::start().await;
    // Tokens live 3 s and cannot be renewed past that: the agent must log in again each time.
    let bank_a = vault_for(&launcher, "bank-a", "world", 3).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .agent("refresh", "1h")
        .collaborator(collaborator("bank-a", Vault::from(&bank_a), &out, 3))
        .write();
    let agent = RunningAgent::start(config).await;
    let file = out.join("bank-a/foo");
    assert_eq!(read(&file).as_deref(), Some("world"));
    let (status, health) = agent.health().await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["collaborators"]["bank-a"]["current"], true);

    // Logins and reads that bring the same value leave the file alone: same inode, same mtime.
    let before = identity(&file);
    wait_for("two more logins", GENEROUS, || async {
        (bank_a.logged_login_jwts().len() >= 3).then_some(())
    })
    .await;
    assert_eq!(
        identity(&file),
        before,
        "an unchanged secret's file was rewritten"
    );

    rotate(&bank_a, "rotated").await;
    wait_for("the rotated value in the file", GENEROUS, || async {
        (read(&file).as_deref() == Some("rotated")).then_some(())
    })
    .await;
    // The refresh interval is an hour: only the token's expiry made the agent log in again,
    // and each login carried an attestation token minted for it.
    let iats: Vec<i64> = bank_a
        .logged_login_jwts()
        .iter()
        .map(|jwt| payload(jwt)["iat"].as_i64().unwrap())
        .collect();
    assert!(iats.len() >= 2, "{iats:?}");
    assert!(
        iats.windows(2).all(|w| w[0] < w[1]),
        "a fresh token per login: {iats:?}"
    );

    let revocations_before = revocations(&bank_a);
    assert_eq!(agent.stop().await, AgentExit::Done);
    assert_eq!(
        read(&file),
        None,
        "a stopped agent leaves no secret file behind"
    );
    assert!(
        revocations(&bank_a) > revocations_before,
        "a stopped agent revokes the token it held"
    );
}

/// A file's inode and modification time: what a rewrite changes.
fn identity(path: &Path) -> (u64, std::time::SystemTime) {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).unwrap();
    (metadata.ino(), metadata.modified().unwrap())
}

/// `auth/token/revoke-self` requests in `bao`'s audit log.
fn revocations(bao: &OpenBao) -> usize {
    bao.audit_log()
        .iter()
        .filter(|e| e["type"] == "request" && e["request"]["path"] == "auth/token/revoke-self")
        .count()
}

#[tokio::test]
async fn a_vault_that_goes_down_is_retried_with_backoff_while_the_others_carry_on() {
    let launcher = TestLauncher::start().await;
    let bank_a = vault_for(&launcher, "bank-a", "a1", 2).await;
    let bank_b = vault_for(&launcher, "bank-b", "b1", 2).await;
    let gate = Gate::to(&bank_a.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .agent("refresh", "1s")
        .agent("backoff_min", "2s")
        .agent("backoff_max", "8s")
        .deadline("1s")
        .collaborator(collaborator("bank-a", Vault::at(&gate.addr), &out, 2))
        .collaborator(collaborator("bank-b", Vault::from(&bank_b), &out, 2))
        .write();
    let agent = RunningAgent::start(config).await;
    assert_eq!(agent.health().await.0, 200);

    gate.set_open(false);
    let down_from = gate.connections();
    let failing = |at_least: u64| {
        let agent = &agent;
        wait_for("bank-a failing", GENEROUS, move || async move {
            let (status, health) = agent.health().await;
            let a = &health["collaborators"]["bank-a"];
            let failures = a["consecutive_failures"].as_u64().unwrap_or(0);
            (status == 503 && failures >= at_least).then_some((failures, health))
        })
    };
    failing(1).await;
    let first_failure_seen = std::time::Instant::now();
    let (failures, health) = failing(3).await;
    // The waits after the first and second failures: 2 s (the minimum), then 4 s less at most a
    // quarter of jitter. Without a backoff the refresh (1 s) would bring a failure every second.
    let waited = first_failure_seen.elapsed();
    assert!(
        waited >= Duration::from_millis(4500),
        "three failures within {waited:?}: no backoff between them"
    );
    // Each failed exchange is one login attempt, retried within its deadline: a bounded
    // number of connections per failure, never a loop.
    let attempts = gate.connections() - down_from;
    let per_exchange = attestgate::vault::RetryPolicy::default().max_attempts as usize;
    assert!(
        attempts <= (failures as usize + 1) * per_exchange,
        "{attempts} connections for {failures} failures"
    );
    assert_eq!(
        health["collaborators"]["bank-b"]["current"], true,
        "{health}"
    );
    assert!(health["collaborators"]["bank-a"]["last_error"]["step"].is_string());
    // bank-b's secrets keep being refreshed meanwhile.
    rotate(&bank_b, "b2").await;
    wait_for(
        "bank-b refreshed while bank-a is down",
        GENEROUS,
        || async { (read(&out.join("bank-b/foo")).as_deref() == Some("b2")).then_some(()) },
    )
    .await;
    assert_eq!(
        read(&out.join("bank-a/foo")).as_deref(),
        Some("a1"),
        "bank-a keeps its last good secret"
    );

    gate.set_open(true);
    wait_for("health back to 200", GENEROUS, || async {
        (agent.health().await.0 == 200).then_some(())
    })
    .await;
    let (_, metrics) = agent.get("/metrics").await;
    let parsed = parse_metrics(&metrics);
    assert!(
        parsed["attestgate_exchanges_total"]["bank-a,failed"].as_f64() >= Some(3.0),
        "{parsed}"
    );
    assert!(parsed["attestgate_exchanges_total"]["bank-b,released"].as_f64() >= Some(2.0));
    assert_eq!(parsed["attestgate_collaborator_current"]["bank-a"], 1.0);
    assert_eq!(agent.stop().await, AgentExit::Done);
}

/// `/metrics` as a real Prometheus parser reads it (the OpenMetrics parser of the Python
/// `prometheus-client`, installed in the test venv): `{family: {"label,values": value}}`.
fn parse_metrics(text: &str) -> Value {
    let python = crate::harness::python_with_prometheus_client();
    let script = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(v for k, v in sorted(sample.labels.items()) if k in ("collaborator", "outcome", "verdict", "what"))
        out.setdefault(sample.name, {})[labels] = sample.value
print(json.dumps(out))
"#;
    let output = crate::harness::run_binary(&python, &["-c", script], &[], Some(text));
    assert!(
        output.status.success(),
        "the Prometheus parser refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn withdrawn_access_removes_or_keeps_the_secret_as_configured() {
    let launcher = TestLauncher::start().await;
    let bank_a = vault_for(&launcher, "bank-a", "a1", 2).await;
    let bank_b = vault_for(&launcher, "bank-b", "b1", 2).await;
    // bank-c keeps a leased certificate: until the lease ends (10 s), not a moment longer.
    let bank_c = vault_for(&launcher, "bank-c", "c1", 10).await;
    issue_certificates(&bank_c, "bank-c", "10s").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let bank_c_cert = out.join("bank-c/cert.pem");
    let config = config(dir.path(), &launcher)
        .agent("refresh", "1s")
        .collaborator(
            collaborator("bank-a", Vault::from(&bank_a), &out, 2)
                .raw("agent.on_revoke = \"remove\""),
        )
        .collaborator(
            collaborator("bank-b", Vault::from(&bank_b), &out, 2).raw("agent.on_revoke = \"keep\""),
        )
        .collaborator(
            collaborator("bank-c", Vault::from(&bank_c), &out, 10)
                .secret(certificate(&bank_c_cert))
                .raw("agent.on_revoke = \"keep\""),
        )
        .write();
    let agent = RunningAgent::start(config).await;
    assert!(read(&bank_c_cert).is_some());
    for (bao, name) in [
        (&bank_a, "bank-a"),
        (&bank_b, "bank-b"),
        (&bank_c, "bank-c"),
    ] {
        let (status, body) = bao
            .api(
                reqwest::Method::DELETE,
                &format!("auth/jwt/role/{name}"),
                None,
            )
            .await;
        assert!(status < 300, "{status} {body}");
    }
    wait_for("bank-a's file removed", GENEROUS, || async {
        read(&out.join("bank-a/foo")).is_none().then_some(())
    })
    .await;
    wait_for("bank-b refused at least twice", GENEROUS, || async {
        let (_, health) = agent.health().await;
        (health["collaborators"]["bank-b"]["consecutive_failures"].as_u64() >= Some(2))
            .then_some(())
    })
    .await;
    assert_eq!(
        read(&out.join("bank-b/foo")).as_deref(),
        Some("b1"),
        "on_revoke = \"keep\": a static secret has no lease to expire, so it stays"
    );
    // bank-c's refusals come while its certificate's lease (issued at most a refresh before
    // the role went) has seconds left: kept; then removed when the lease ends.
    wait_for("bank-c refused", GENEROUS, || async {
        let (_, health) = agent.health().await;
        (health["collaborators"]["bank-c"]["consecutive_failures"].as_u64() >= Some(1))
            .then_some(())
    })
    .await;
    assert!(
        read(&bank_c_cert).is_some(),
        "on_revoke = \"keep\": kept while the lease lasts"
    );
    wait_for(
        "bank-c's certificate removed when its lease ended",
        GENEROUS,
        || async { read(&bank_c_cert).is_none().then_some(()) },
    )
    .await;
    // Vault's own words reach the operator in /healthz, and never the metrics' labels.
    let (_, health) = agent.get("/healthz").await;
    assert!(health.contains("could not be found"), "{health}");
    let (_, metrics) = agent.get("/metrics").await;
    assert!(!metrics.contains("could not be found"), "{metrics}");
    assert_eq!(agent.stop().await, AgentExit::Done);
}

/// A collaborator's Vault rotates to a value longer than Linux lets an environment variable be:
/// delivering it would make the next start of the shared workload fail for everyone. It is that
/// collaborator's failed delivery instead; its previous secret stays, and the others carry on.
#[tokio::test]
async fn a_value_too_long_for_the_environment_fails_only_its_collaborator() {
    let launcher = TestLauncher::start().await;
    let bank_a = vault_for(&launcher, "bank-a", "a1", 60).await;
    let bank_b = vault_for(&launcher, "bank-b", "b1", 60).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .agent("refresh", "1s")
        .collaborator(collaborator("bank-a", Vault::from(&bank_a), &out, 60))
        .collaborator(collaborator("bank-b", Vault::from(&bank_b), &out, 60))
        .write();
    let agent = RunningAgent::start(config).await;
    rotate(&bank_a, &"x".repeat(200_000)).await;
    rotate(&bank_b, "b2").await;
    let health = wait_for("bank-a's delivery refused", GENEROUS, || async {
        let (_, health) = agent.health().await;
        let error = health["collaborators"]["bank-a"]["last_error"]["message"].as_str();
        error
            .is_some_and(|m| m.contains("131072 bytes"))
            .then_some(health)
    })
    .await;
    assert_eq!(
        health["collaborators"]["bank-a"]["current"], false,
        "{health}"
    );
    assert_eq!(read(&out.join("bank-a/foo")).as_deref(), Some("a1"));
    wait_for("bank-b's rotation delivered", GENEROUS, || async {
        (read(&out.join("bank-b/foo")).as_deref() == Some("b2")).then_some(())
    })
    .await;
    assert_eq!(agent.stop().await, AgentExit::Done);
}

/// A local process cannot starve `/healthz` (or the agent of descriptors) by holding connections
/// open: the agent serves 16 at once and closes one that sends no request within 10 s, so a
/// client queued behind 16 idle connections is answered once the first of them is closed.
#[tokio::test]
async fn idle_connections_cannot_hold_the_health_endpoint() {
    let launcher = TestLauncher::start().await;
    let bank_a = vault_for(&launcher, "bank-a", "a1", 60).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .agent("refresh", "1h")
        .collaborator(collaborator("bank-a", Vault::from(&bank_a), &out, 60))
        .write();
    let agent = RunningAgent::start(config).await;
    let address = agent.health.unwrap();
    // Accepted in the order they were made: these take every slot.
    let idle: Vec<std::net::TcpStream> = (0..16)
        .map(|_| std::net::TcpStream::connect(address).unwrap())
        .collect();
    let (status, health) = agent.health().await;
    assert_eq!(status, 200, "{health}");
    assert!(
        idle.iter().any(closed_by_now),
        "answered while all 16 idle connections were still open"
    );
    assert_eq!(agent.stop().await, AgentExit::Done);
}

#[tokio::test]
async fn a_reload_applies_a_valid_configuration_and_survives_an_invalid_one() {
    let launcher = TestLauncher::start().await;
    let bank_a = vault_for(&launcher, "bank-a", "a1", 60).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let builder = config(dir.path(), &launcher).agent("refresh", "1h");
    let path = builder
        .clone()
        .collaborator(collaborator("bank-a", Vault::from(&bank_a), &out, 60))
        .write();
    let agent = RunningAgent::start(path.clone()).await;
    assert_eq!(read(&out.join("bank-a/foo")).as_deref(), Some("a1"));

    // Configurations that do not load, the file itself or its plugin (a digest that does not
    // match the file, the check that runs before any plugin code): refused, the running one
    // stays, and it says so.
    let valid = std::fs::read_to_string(&path).unwrap();
    let at = valid.find("plugin_sha256 = \"").unwrap() + "plugin_sha256 = \"".len();
    let wrong_digest = format!("{}{}{}", &valid[..at], "0".repeat(64), &valid[at + 64..]);
    for (refused, invalid) in [
        (1, format!("{valid}\n[agent]\nrefresh = \"often\"\n")),
        (2, wrong_digest),
    ] {
        std::fs::write(&path, invalid).unwrap();
        agent.control.send(Control::Reload).await.unwrap();
        let counted = format!("attestgate_reloads_failed_total {refused}");
        wait_for("the refused reload counted", GENEROUS, || async {
            let (_, metrics) = agent.get("/metrics").await;
            metrics.lines().any(|l| l == counted).then_some(())
        })
        .await;
        let (status, health) = agent.health().await;
        assert_eq!(status, 200, "{health}");
        assert_eq!(
            health["collaborators"]["bank-a"]["current"], true,
            "{health}"
        );
        assert_eq!(read(&out.join("bank-a/foo")).as_deref(), Some("a1"));
    }

    // A valid one: bank-a now also releases the value under a second name, at once.
    let reloaded = builder
        .collaborator(
            collaborator("bank-a", Vault::from(&bank_a), &out, 60).secret(
                Secret::at("kv/data/message")
                    .field("foo")
                    .file(&out.join("bank-a/foo-copy")),
            ),
        )
        .write();
    assert_eq!(reloaded, path);
    agent.control.send(Control::Reload).await.unwrap();
    wait_for(
        "the reloaded configuration's new file",
        GENEROUS,
        || async {
            read(&out.join("bank-a/foo-copy"))
                .filter(|v| v == "a1")
                .map(|_| ())
        },
    )
    .await;
    assert_eq!(agent.stop().await, AgentExit::Done);
}

#[tokio::test]
async fn the_workload_restarts_once_per_rotation_and_its_exit_code_is_the_agents() {
    let launcher = TestLauncher::start().await;
    let names = ["bank-a", "bank-b", "bank-c"];
    let mut vaults = Vec::new();
    for name in names {
        vaults.push(vault_for(&launcher, name, "v1", 60).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Every collaborator refreshes within 2 s of a rotation; the restart waits for 3 s of calm.
    let mut builder = config(dir.path(), &launcher)
        .agent("refresh", "2s")
        .agent("restart_debounce", "3s");
    for (name, bao) in names.iter().zip(&vaults) {
        builder = builder.collaborator(collaborator(name, Vault::from(bao), &out, 60));
    }
    let path = builder.write();
    let starts = dir.path().join("starts");
    let script = format!(
        "trap 'exit 3' TERM; echo \"$BANK_A_FOO $BANK_B_FOO $BANK_C_FOO\" >> {}; while :; do sleep 0.05; done",
        starts.display()
    );
    let (mut agent, _stop) = agent_with_workload(&path, &script);
    wait_for(
        "the workload started with every secret",
        GENEROUS,
        || async { read(&starts).filter(|s| s == "v1 v1 v1\n").map(|_| ()) },
    )
    .await;
    for bao in &vaults {
        rotate(bao, "v2").await;
    }
    wait_for(
        "one restart with the three new values",
        GENEROUS,
        || async { read(&starts).filter(|s| s.lines().count() >= 2).map(|_| ()) },
    )
    .await;
    // SIGTERM is forwarded; the workload's exit code (3) becomes the agent's.
    let pid = rustix::process::Pid::from_raw(agent.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = tokio::time::timeout(GENEROUS, agent.wait())
        .await
        .expect("the agent exits")
        .unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(
        read(&starts).unwrap(),
        "v1 v1 v1\nv2 v2 v2\n",
        "one start, and one restart for the whole rotation"
    );
    for name in names {
        assert_eq!(read(&out.join(name).join("foo")), None);
    }
}

#[tokio::test]
async fn a_dynamic_secret_is_issued_again_before_its_lease_expires_and_the_old_one_revoked() {
    let launcher = TestLauncher::start().await;
    let bank_a = vault_for(&launcher, "bank-a", "a1", 60).await;
    // Each certificate is a lease of 16 s (not renewable), issued again 6 s before it ends, so
    // the old one would outlive its replacement by 6 s.
    issue_certificates(&bank_a, "bank-a", "16s").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cert = out.join("bank-a/cert.pem");
    let gate = Gate::to(&bank_a.addr).await;
    let config = config(dir.path(), &launcher)
        .agent("refresh", "1h")
        .agent("renew_before", "6s")
        .collaborator(
            collaborator("bank-a", Vault::at(&gate.addr), &out, 60).secret(certificate(&cert)),
        )
        .write();
    let agent = RunningAgent::start(config).await;
    let first = read(&cert).unwrap();
    assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
    let list = reqwest::Method::from_bytes(b"LIST").unwrap();
    let leases = || async {
        let (_, leases) = bank_a
            .api(list.clone(), "sys/leases/lookup/pki/issue/app/", None)
            .await;
        leases["data"]["keys"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let old_lease = leases().await;
    assert_eq!(old_lease.len(), 1, "{old_lease:?}");
    wait_for(
        "a new certificate before the lease ran out",
        GENEROUS,
        || async { read(&cert).filter(|c| c != &first).map(|_| ()) },
    )
    .await;
    // The token the old certificate was issued with is revoked, and its lease with it: gone
    // well before its own end (6 s after its replacement), not expired by Vault.
    wait_for(
        "the old certificate's lease revoked before it would have expired",
        Duration::from_secs(5),
        || async {
            let now = leases().await;
            (now.len() == 1 && !now.contains(&old_lease[0])).then_some(())
        },
    )
    .await;
    let (_, health) = agent.health().await;
    assert!(
        health["collaborators"]["bank-a"]["expires"].is_u64(),
        "{health}"
    );
    // Vault goes away: the certificate is kept while valid and removed when its lease ends,
    // never served stale.
    gate.set_open(false);
    wait_for("the expired certificate removed", GENEROUS, || async {
        read(&cert).is_none().then_some(())
    })
    .await;
    let (status, health) = agent.health().await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(agent.stop().await, AgentExit::Done);
}

#[tokio::test]
async fn a_renewable_vault_token_is_renewed_until_its_maximum_then_replaced() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start_with(OpenBaoOptions {
        audit: true,
        ..Default::default()
    })
    .await;
    let mut renewable = role("bank-a", 2);
    renewable
        .as_object_mut()
        .unwrap()
        .remove("token_explicit_max_ttl");
    renewable["token_max_ttl"] = json!(8);
    bao.setup_collaborator(
        &launcher.info().jwks_url,
        "bank-a",
        renewable,
        &[("message", json!({"foo": "a1"}))],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .agent("refresh", "1h")
        .collaborator(collaborator("bank-a", Vault::from(&bao), &out, 2))
        .write();
    let agent = RunningAgent::start(config).await;
    wait_for(
        "renewals, then a second login at the maximum TTL",
        GENEROUS,
        || async {
            let renewals = bao
                .audit_log()
                .iter()
                .filter(|e| {
                    e["type"] == "request" && e["request"]["path"] == "auth/token/renew-self"
                })
                .count();
            (renewals >= 2 && bao.logged_login_jwts().len() >= 2).then_some(())
        },
    )
    .await;
    let (_, metrics) = agent.get("/metrics").await;
    let parsed = parse_metrics(&metrics);
    assert!(
        parsed["attestgate_renewals_total"]["bank-a,renewed,token"].as_f64() >= Some(2.0),
        "{parsed}"
    );
    assert_eq!(read(&out.join("bank-a/foo")).as_deref(), Some("a1"));
    assert_eq!(agent.stop().await, AgentExit::Done);
}

/// The soak: three collaborators for `ATTESTGATE_SOAK_SECONDS` (default 60) with 5 s Vault
/// tokens, secrets rotated every 3 s, and one collaborator's certificate a 5 s lease. Slow, so
/// `cargo test` skips it and `./tests/run.sh` runs it (unless `ATTESTGATE_SLOW=0`); the figures go to
/// `target/agent-soak.txt`, which BENCHMARKS.md quotes.
#[tokio::test]
#[ignore = "slow: ./tests/run.sh runs it (ATTESTGATE_SLOW=0 skips it)"]
async fn soak_three_collaborators_lose_nothing_serve_nothing_stale_and_stay_flat() {
    let seconds: u64 = std::env::var("ATTESTGATE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let launcher = TestLauncher::start().await;
    let names = ["bank-a", "bank-b", "bank-c"];
    let mut vaults = Vec::new();
    for name in names {
        vaults.push(vault_for(&launcher, name, "0", 5).await);
    }
    let bank_c = &vaults[2];
    for (path, body) in [
        ("sys/mounts/pki", json!({"type": "pki"})),
        (
            "pki/root/generate/internal",
            json!({"common_name": "ca.internal", "ttl": "24h"}),
        ),
        (
            "pki/roles/app",
            json!({"allowed_domains": "example.internal", "allow_subdomains": true, "generate_lease": true, "ttl": "5s", "max_ttl": "5s", "not_before_duration": "0s"}),
        ),
        (
            "sys/policies/acl/bank-c-secrets",
            json!({"policy": "path \"kv/data/message\" { capabilities = [\"read\"] }\npath \"pki/issue/app\" { capabilities = [\"update\"] }\n"}),
        ),
    ] {
        let (status, response) = bank_c.write(path, body).await;
        assert!(status < 300, "{path}: {status} {response}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cert = out.join("bank-c/cert.pem");
    let mut builder = config(dir.path(), &launcher).agent("refresh", "10s");
    for (name, bao) in names.iter().zip(&vaults) {
        let mut c = collaborator(name, Vault::from(bao), &out, 5).raw("agent.on_change = \"none\"");
        if *name == "bank-c" {
            c = c.secret(
                Secret::at("pki/issue/app")
                    .field("certificate")
                    .write(json!({"common_name": "app.example.internal"}))
                    .file(&cert),
            );
        }
        builder = builder.collaborator(c);
    }
    let path = builder.write();
    let (mut agent, _stop) = agent_with_workload(&path, "while :; do sleep 1; done");
    let pid = agent.id().unwrap();
    let files: Vec<PathBuf> = names.iter().map(|n| out.join(n).join("foo")).collect();
    wait_for("the first delivery", GENEROUS, || async {
        files.iter().all(|f| f.exists()).then_some(())
    })
    .await;

    let started = std::time::Instant::now();
    let mut rotation = 0u64;
    let mut last_rotation = started;
    let mut seen = vec![0u64; names.len()];
    let (mut checks, mut rss_start, mut rss_end) = (0u64, None, 0u64);
    // The files are sampled every 50 ms for the soak's whole length.
    let mut sample = tokio::time::interval(Duration::from_millis(50));
    while started.elapsed() < Duration::from_secs(seconds) {
        sample.tick().await;
        if last_rotation.elapsed() >= Duration::from_secs(3) {
            rotation += 1;
            for bao in &vaults {
                rotate(bao, &rotation.to_string()).await;
            }
            last_rotation = std::time::Instant::now();
        }
        for (index, file) in files.iter().enumerate() {
            // Never missing, never torn, never going back to an older rotation.
            let value: u64 = read(file)
                .unwrap_or_else(|| panic!("{} went missing", file.display()))
                .parse()
                .unwrap_or_else(|e| panic!("{}: not a whole value: {e}", file.display()));
            assert!(
                value >= seen[index],
                "{}: {value} after {}",
                file.display(),
                seen[index]
            );
            seen[index] = value;
        }
        let pem = read(&cert).expect("the certificate went missing");
        let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
        let not_after = der.parse_x509().unwrap().validity().not_after.timestamp();
        let now = attestgate::attestation::unix_now();
        assert!(
            not_after >= now,
            "a certificate {} s past its expiry",
            now - not_after
        );
        let rss = rss_kib(pid);
        if started.elapsed() >= Duration::from_secs(10) && rss_start.is_none() {
            rss_start = Some(rss);
        }
        rss_end = rss;
        checks += 1;
    }
    wait_for("the last rotation delivered", GENEROUS, || async {
        files
            .iter()
            .all(|f| read(f) == Some(rotation.to_string()))
            .then_some(())
    })
    .await;
    let logins: Vec<usize> = vaults.iter().map(|v| v.logged_login_jwts().len()).collect();
    // About one login per 3.6–3.75 s (a 5 s token replaced at 80%, less jitter), never a storm.
    // The ceiling is one per 3 s plus two: the collaborator holding the 5 s certificate lease
    // re-issues it out of phase with its token and measured up to 21 logins in 60 s; a storm
    // (openbao#4011) is hundreds a second.
    let ceiling = seconds as usize / 3 + 2;
    for (name, count) in names.iter().zip(&logins) {
        assert!(
            *count <= ceiling,
            "{name}: {count} logins in {seconds} s (ceiling {ceiling})"
        );
        assert!(
            *count >= seconds as usize / 6,
            "{name}: only {count} logins in {seconds} s"
        );
    }
    let rss_start = rss_start.unwrap_or(rss_end);
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let status = tokio::time::timeout(GENEROUS, agent.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(128 + 15),
        "sh ends on SIGTERM, and so does the agent"
    );
    let summary = format!(
        "agent soak: 3 collaborators, {seconds} s, 5 s tokens, {rotation} rotations, {checks} checks of every file: none missing, torn, stale or expired\n\
         \x20 logins per collaborator: {logins:?} (ceiling {ceiling})\n\
         \x20 agent RSS: {rss_start} KiB after 10 s, {rss_end} KiB at the end"
    );
    println!("{summary}");
    let _ = std::fs::write(
        crate::harness::target_dir().join("agent-soak.txt"),
        &summary,
    );
    assert!(
        rss_end <= rss_start + rss_start / 4 + 4096,
        "RSS grew from {rss_start} to {rss_end} KiB"
    );
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn a_refused_renewal_leads_to_one_new_login_never_a_renewal_storm() {
    // openbao#4011: a token without `auth/token/renew-self` in its policies made OpenBao Agent
    // renew about 1,700 times a second. Here the role leaves out the default policy.
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start_with(OpenBaoOptions {
        audit: true,
        ..Default::default()
    })
    .await;
    let mut no_renew = role("bank-a", 2);
    no_renew
        .as_object_mut()
        .unwrap()
        .remove("token_explicit_max_ttl");
    no_renew["token_max_ttl"] = json!(60);
    no_renew["token_no_default_policy"] = json!(true);
    bao.setup_collaborator(
        &launcher.info().jwks_url,
        "bank-a",
        no_renew,
        &[("message", json!({"foo": "a1"}))],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .agent("refresh", "1h")
        .collaborator(collaborator("bank-a", Vault::from(&bao), &out, 2))
        .write();
    let agent = RunningAgent::start(config).await;
    wait_for("three more logins", GENEROUS, || async {
        (bao.logged_login_jwts().len() >= 4).then_some(())
    })
    .await;
    let renewals: Vec<Value> = bao
        .audit_log()
        .into_iter()
        .filter(|e| e["type"] == "request" && e["request"]["path"] == "auth/token/renew-self")
        .collect();
    assert_eq!(
        renewals.len(),
        1,
        "one refused renewal, then logins: {renewals:?}"
    );
    assert_eq!(read(&out.join("bank-a/foo")).as_deref(), Some("a1"));
    assert_eq!(agent.health().await.0, 200);
    assert_eq!(agent.stop().await, AgentExit::Done);
}

#[tokio::test]
async fn a_secret_may_not_replace_a_variable_the_workload_already_has() {
    let launcher = TestLauncher::start().await;
    let bao = vault_for(&launcher, "bank-a", "a1", 60).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .collaborator(collaborator("bank-a", Vault::from(&bao), &out, 60))
        .write();
    let output = crate::harness::run_binary_async(
        &crate::harness::attestgate_bin(),
        &["agent", "--config", config.to_str().unwrap(), "--", "true"],
        &[("BANK_A_FOO", "the workload's own")],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("BANK_A_FOO is already set"), "{stderr}");
    assert_eq!(read(&out.join("bank-a/foo")), None, "nothing was delivered");
}

#[tokio::test]
async fn a_renewable_lease_is_renewed_in_place_without_a_new_login() {
    // OpenBao offers no renewable dynamic secret without an external service (its PKI leases
    // cannot be renewed), so a stand-in Vault answers as Vault's API documents: a database-style
    // credential with a renewable 2 s lease, renewed by `PUT sys/leases/renew`.
    let vault = CaptureServer::answering(Answer::ByPath(vec![
        (
            "/v1/auth/jwt/login",
            200,
            r#"{"auth": {"client_token": "s.stand-in-token", "accessor": "a", "policies": ["db"], "lease_duration": 3600, "renewable": true}}"#,
        ),
        (
            "/v1/database/creds/app",
            200,
            r#"{"lease_id": "database/creds/app/l1", "lease_duration": 2, "renewable": true, "data": {"username": "v-app", "password": "p-1"}}"#,
        ),
        (
            "/v1/sys/leases/renew",
            200,
            r#"{"lease_id": "database/creds/app/l1", "lease_duration": 2, "renewable": true}"#,
        ),
        ("/v1/auth/token/revoke-self", 204, ""),
    ]))
    .await;
    let launcher = TestLauncher::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = database_credentials_config(dir.path(), &launcher, &vault);
    let agent = RunningAgent::start(config).await;
    assert_eq!(
        read(&out.join("bank-a/db-password")).as_deref(),
        Some("p-1")
    );
    let renewals = || {
        vault
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/v1/sys/leases/renew"))
            .count()
    };
    wait_for("three renewals of the lease", GENEROUS, || async {
        (renewals() >= 3).then_some(())
    })
    .await;
    let requests = vault.requests();
    let logins = requests
        .iter()
        .filter(|r| r.path.ends_with("/login"))
        .count();
    let reads = requests
        .iter()
        .filter(|r| r.path.ends_with("/creds/app"))
        .count();
    assert_eq!((logins, reads), (1, 1), "renewed in place: {requests:?}");
    let renewal = requests
        .iter()
        .find(|r| r.path.ends_with("/sys/leases/renew"))
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&renewal.body).unwrap()["lease_id"],
        "database/creds/app/l1"
    );
    assert_eq!(agent.stop().await, AgentExit::Done);
}

#[tokio::test]
async fn the_first_delivery_waits_until_every_collaborator_released_its_secrets() {
    let launcher = TestLauncher::start().await;
    let bank_a = vault_for(&launcher, "bank-a", "a1", 60).await;
    let bank_b = vault_for(&launcher, "bank-b", "b1", 60).await;
    let gate = Gate::to(&bank_b.addr).await;
    gate.set_open(false);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .deadline("1s")
        .collaborator(collaborator("bank-a", Vault::from(&bank_a), &out, 60))
        .collaborator(collaborator("bank-b", Vault::at(&gate.addr), &out, 60))
        .write();
    let (control, controls) = mpsc::channel(4);
    let (ready, mut bound) = oneshot::channel();
    let options = AgentOptions {
        config,
        once: false,
        workload: None,
    };
    let agent = tokio::spawn(attestgate::agent::run(options, controls, Some(ready)));
    // bank-a released its secret long ago; nothing is written while bank-b's Vault is away.
    let attempts = gate.connections();
    wait_for("bank-b's Vault tried again", GENEROUS, || async {
        (gate.connections() > attempts + 2).then_some(())
    })
    .await;
    assert!(
        bound.try_recv().is_err(),
        "not ready before everyone released"
    );
    assert_eq!(read(&out.join("bank-a/foo")), None, "all or nothing");
    gate.set_open(true);
    tokio::time::timeout(GENEROUS, &mut bound)
        .await
        .expect("ready once bank-b's Vault is back")
        .unwrap();
    assert_eq!(read(&out.join("bank-a/foo")).as_deref(), Some("a1"));
    assert_eq!(read(&out.join("bank-b/foo")).as_deref(), Some("b1"));
    control
        .send(Control::Stop(WorkloadSignal::Term))
        .await
        .unwrap();
    let exit = tokio::time::timeout(GENEROUS, agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(exit, AgentExit::Done);
}

#[tokio::test]
async fn once_delivers_and_rewrites_only_what_changed_or_nothing_at_all() {
    let launcher = TestLauncher::start().await;
    let bank_a = vault_for(&launcher, "bank-a", "a1", 60).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .collaborator(collaborator("bank-a", Vault::from(&bank_a), &out, 60))
        .write();
    let once = || async {
        crate::harness::run_binary_async(
            &crate::harness::attestgate_bin(),
            &["agent", "--once", "--config", config.to_str().unwrap()],
            &[],
        )
        .await
    };
    let first = once().await;
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let file = out.join("bank-a/foo");
    assert_eq!(read(&file).as_deref(), Some("a1"));
    let before = identity(&file);
    assert_eq!(once().await.status.code(), Some(0));
    assert_eq!(
        identity(&file),
        before,
        "the same content is not written again"
    );
    rotate(&bank_a, "a2").await;
    assert_eq!(once().await.status.code(), Some(0));
    assert_eq!(read(&file).as_deref(), Some("a2"));
    // Withdrawn: the run fails, and what was delivered before stays as it was.
    let (status, body) = bank_a
        .api(reqwest::Method::DELETE, "auth/jwt/role/bank-a", None)
        .await;
    assert!(status < 300, "{status} {body}");
    let refused = once().await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("nothing was delivered"));
    assert_eq!(read(&file).as_deref(), Some("a2"));
}

#[tokio::test]
async fn signals_reach_the_workload_and_sighup_reloads_the_agent() {
    let launcher = TestLauncher::start().await;
    let bank_a = vault_for(&launcher, "bank-a", "a1", 60).await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let builder = config(dir.path(), &launcher).agent("refresh", "1s");
    let signalled = || {
        collaborator("bank-a", Vault::from(&bank_a), &out, 60)
            .raw("agent.on_change = \"signal:SIGHUP\"")
    };
    let path = builder.clone().collaborator(signalled()).write();
    let log = dir.path().join("log");
    let script = format!(
        "trap 'echo hup >> {log}' HUP; echo start >> {log}; while :; do sleep 0.05; done",
        log = log.display()
    );
    let (mut agent, _stop) = agent_with_workload(&path, &script);
    wait_for("the workload started", GENEROUS, || async {
        read(&log).filter(|l| l == "start\n").map(|_| ())
    })
    .await;
    // on_change = "signal:SIGHUP": the rotation reaches the workload as a signal, not a restart.
    rotate(&bank_a, "a2").await;
    wait_for("SIGHUP delivered to the workload", GENEROUS, || async {
        read(&log).filter(|l| l == "start\nhup\n").map(|_| ())
    })
    .await;
    // SIGHUP to the agent is the agent's own: it reloads (a second file appears, which is a
    // change, so the workload gets one SIGHUP for that), and is not forwarded itself.
    builder
        .collaborator(
            signalled().secret(
                Secret::at("kv/data/message")
                    .field("foo")
                    .file(&out.join("bank-a/foo-copy")),
            ),
        )
        .write();
    let pid = rustix::process::Pid::from_raw(agent.id().unwrap() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
    wait_for("the reloaded configuration's file", GENEROUS, || async {
        read(&out.join("bank-a/foo-copy"))
            .filter(|v| v == "a2")
            .map(|_| ())
    })
    .await;
    wait_for(
        "the workload signalled for the new file",
        GENEROUS,
        || async { read(&log).filter(|l| l == "start\nhup\nhup\n").map(|_| ()) },
    )
    .await;
    // SIGINT is forwarded; the workload dies of it, and the agent exits with 128 + 2.
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    let status = tokio::time::timeout(GENEROUS, agent.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(130));
    assert_eq!(
        read(&log).as_deref(),
        Some("start\nhup\nhup\n"),
        "a signal per change, the agent's own SIGHUP not forwarded, never a restart"
    );
}

#[tokio::test]
async fn a_lease_whose_renewal_is_refused_is_read_again_with_backoff_not_in_a_loop() {
    // The stand-in Vault refuses every lease renewal (as Vault does for a lease it revoked):
    // each refusal leads to one new exchange, at the lease's own pace.
    let vault = CaptureServer::answering(Answer::ByPath(vec![
        (
            "/v1/auth/jwt/login",
            200,
            r#"{"auth": {"client_token": "s.stand-in-token", "accessor": "a", "policies": ["db"], "lease_duration": 3600, "renewable": true}}"#,
        ),
        (
            "/v1/database/creds/app",
            200,
            r#"{"lease_id": "database/creds/app/l1", "lease_duration": 2, "renewable": true, "data": {"password": "p-1"}}"#,
        ),
        (
            "/v1/sys/leases/renew",
            400,
            r#"{"errors": ["lease not found"]}"#,
        ),
        ("/v1/auth/token/revoke-self", 204, ""),
    ]))
    .await;
    let launcher = TestLauncher::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = database_credentials_config(dir.path(), &launcher, &vault);
    let agent = RunningAgent::start(config).await;
    let count = |suffix: &str| {
        vault
            .requests()
            .iter()
            .filter(|r| r.path.ends_with(suffix))
            .count()
    };
    wait_for(
        "three re-reads after refused renewals",
        GENEROUS,
        || async { (count("/creds/app") >= 4).then_some(()) },
    )
    .await;
    let (renewals, reads) = (count("/sys/leases/renew"), count("/creds/app"));
    // One renewal attempt per lease read (give or take the one in flight), never a loop.
    assert!(renewals <= reads, "{renewals} renewals for {reads} reads");
    assert_eq!(count("/login"), reads, "each re-read is a whole exchange");
    assert_eq!(
        read(&out.join("bank-a/db-password")).as_deref(),
        Some("p-1")
    );
    assert_eq!(agent.stop().await, AgentExit::Done);
}

/// bank-a reading a database-style credential (`database/creds/app`, field `password`, delivered
/// as `out/bank-a/db-password`) from the stand-in Vault `vault`.
fn database_credentials_config(
    dir: &Path,
    launcher: &TestLauncher,
    vault: &CaptureServer,
) -> PathBuf {
    config(dir, launcher)
        .agent("refresh", "1h")
        .collaborator(
            Collaborator::bound_claims("bank-a", role("bank-a", 3600))
                .vault(Vault::at(&vault.addr).role("bank-a"))
                .secret(
                    Secret::at("database/creds/app")
                        .field("password")
                        .file(&dir.join("out/bank-a/db-password")),
                ),
        )
        .write()
}
