//! What the integration tests share, one module per concern. Nothing here sleeps for
//! synchronisation: readiness is polled with a deadline.

pub mod capture;
pub mod config;
pub mod exchange;
pub mod faulty;
pub mod gate;
pub mod google;
pub mod launcher;
pub mod openbao;
pub mod plugins;
pub mod raft;
pub mod tls;

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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

/// Whether the peer has already closed `stream` (end of file, or a reset), without waiting:
/// the stream is switched to non-blocking and drained.
pub fn closed_by_now<S: std::os::fd::AsFd>(stream: &S) -> bool {
    use rustix::io::Errno;
    let fd = stream.as_fd();
    let flags = rustix::fs::fcntl_getfl(fd).unwrap();
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK).unwrap();
    let mut buffer = [0u8; 4096];
    loop {
        match rustix::io::read(fd, &mut buffer) {
            Ok(0) | Err(Errno::CONNRESET) => return true,
            Ok(_) => continue,
            Err(Errno::AGAIN) => return false,
            Err(e) => panic!("reading: {e}"),
        }
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

/// An `http://` address on loopback where nothing listens.
pub fn closed_address() -> String {
    format!("http://127.0.0.1:{}", openbao::free_port_pair())
}

pub fn attestgate_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_attestgate"))
}

/// Runs `bin` to completion with `args` and `env`, and `stdin` (or nothing) as its input.
pub fn run_binary(bin: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut child = Command::new(bin)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

/// `run_binary` on a blocking thread, so that a launcher on the test's own runtime keeps serving.
pub async fn run_binary_async(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let bin = bin.to_owned();
    let args: Vec<String> = args.iter().map(|&a| a.to_owned()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|&(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        run_binary(&bin, &args, &env, None)
    })
    .await
    .unwrap()
}

/// The attestgate binary under test, run to completion with `stdin` as its input.
pub fn attestgate(args: &[&str], stdin: Option<&str>) -> Output {
    run_binary(&attestgate_bin(), args, &[], stdin)
}

/// The attestgate binary under test, run to completion beside a launcher in this process.
pub async fn attestgate_async(args: &[&str], env: &[(&str, &str)]) -> Output {
    run_binary_async(&attestgate_bin(), args, env).await
}

/// Production-shaped claims for `audience`, issued at `now` and valid for an hour.
pub fn production_claims_at(audience: &str, now: i64) -> Value {
    patched(
        attestgate::dev::production_claims(),
        &json!({"iss": attestgate::attestation::GOOGLE_ISSUER, "aud": audience, "iat": now, "nbf": now, "exp": now + 3600}),
    )
}

/// Production-shaped claims for `audience`, valid now.
pub fn production_claims(audience: &str) -> Value {
    production_claims_at(audience, attestgate::attestation::unix_now())
}

/// `production_claims` with a JSON merge patch applied.
pub fn claims_with(audience: &str, patch: Value) -> Value {
    patched(production_claims(audience), &patch)
}

/// `claims` with a JSON merge patch applied.
pub fn patched(mut claims: Value, patch: &Value) -> Value {
    attestgate::dev::merge_patch(&mut claims, patch);
    claims
}

/// One of the Vault roles in examples/roles/, as JSON.
pub fn example_role(file: &str) -> Value {
    let path = workspace_root().join("examples/roles").join(file);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The seed's Vault role for bank-a, corrected.
pub fn corrected_role() -> Value {
    example_role("seed-role-corrected.json")
}

/// A JWT's payload, unverified.
pub fn payload(jwt: &str) -> Value {
    Value::Object(
        attestgate::attestation::parse_unverified(jwt)
            .unwrap()
            .payload()
            .unwrap(),
    )
}

/// The test venv (`target/venv`), with `package` installed by `pip install ARGS` unless
/// `installed` says it is there: created on first use, under a lock, since several tests (of this
/// run or another) may get here at once.
pub fn test_venv(installed: impl Fn(&Path) -> bool, pip_args: &[&str]) -> PathBuf {
    let venv = target_dir().join("venv");
    if installed(&venv) {
        return venv;
    }
    std::fs::create_dir_all(target_dir()).unwrap();
    let lock = std::fs::File::create(target_dir().join("venv.lock")).unwrap();
    lock.lock().unwrap();
    if !installed(&venv) {
        if !venv.join("bin/pip").exists() {
            let status = Command::new("python3")
                .args(["-m", "venv"])
                .arg(&venv)
                .status()
                .unwrap();
            assert!(status.success(), "python3 -m venv failed");
        }
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .args(pip_args)
            .status()
            .unwrap();
        assert!(status.success(), "pip install {pip_args:?} failed");
    }
    venv
}

/// The test venv's Python with `prometheus-client` (pinned and hash-checked in
/// tests/requirements.txt), installed on first use.
pub fn python_with_prometheus_client() -> PathBuf {
    let requirements = workspace_root().join("tests/requirements.txt");
    let venv = test_venv(
        |venv| {
            Command::new(venv.join("bin/python"))
                .args(["-c", "import prometheus_client"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        },
        &["--require-hashes", "-r", requirements.to_str().unwrap()],
    );
    venv.join("bin/python")
}

/// The attestgate binary running `agent --config CONFIG`, quiet, killed on drop.
pub fn agent_process(config: &Path) -> tokio::process::Child {
    tokio::process::Command::new(attestgate_bin())
        .args(["agent", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A check for [`wait_for`]: whether the file at `path` holds exactly `value`.
pub fn file_holds(
    path: &Path,
    value: &'static str,
) -> impl FnMut() -> std::future::Ready<Option<()>> {
    let path = path.to_owned();
    move || {
        let holds = std::fs::read_to_string(&path).ok().as_deref() == Some(value);
        std::future::ready(holds.then_some(()))
    }
}
