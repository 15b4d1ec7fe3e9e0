//! The `attestgate` binary end to end: the dev launcher as a process, `token get`, `token inspect`
//! and `verify`, with their output and exit codes.

use crate::harness::config::{Collaborator, ConfigBuilder};
use crate::harness::launcher::LauncherProcess;
use crate::harness::plugins::{plugin_wasm, sha256_file};
use crate::harness::{
    attestgate, attestgate_bin, claims_with, closed_address, corrected_role, production_claims,
    target_dir, AUDIENCE,
};
use std::path::Path;
use std::process::{Command, Stdio};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn get_token(launcher: &LauncherProcess, audience: &str) -> String {
    let socket = launcher.info.socket.to_str().unwrap();
    let out = attestgate(
        &[
            "token",
            "get",
            "--socket",
            socket,
            "--audience",
            audience,
            "--nonce",
            "0123456789abcdef",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn get_inspect_and_verify_a_custom_audience_token() {
    let launcher = LauncherProcess::start(&[]).await;
    let token = get_token(&launcher, AUDIENCE);

    let inspect = attestgate(&["token", "inspect", "-"], Some(&token));
    assert!(inspect.status.success());
    let summary = text(&inspect.stdout);
    assert!(summary.starts_with("UNVERIFIED"), "{summary}");
    for expected in [
        AUDIENCE,
        "GCP_AMD_SEV",
        "production (disabled-since-boot)",
        "STABLE, USABLE",
        "0123456789abcdef",
    ] {
        assert!(
            summary.contains(expected),
            "summary lacks {expected}: {summary}"
        );
    }

    let json = attestgate(&["token", "inspect", "--format", "json", "-"], Some(&token));
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(parsed["verified"], false);
    assert_eq!(parsed["claims"]["aud"], AUDIENCE);

    let jwks = launcher.info.jwks_url.as_str();
    let ok = attestgate(
        &["verify", "--jwks-url", jwks, "--audience", AUDIENCE],
        Some(&token),
    );
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(text(&ok.stdout).starts_with("VALID"));

    let discovery = launcher.info.discovery_url.as_str();
    let ok = attestgate(
        &[
            "verify",
            "--discovery-url",
            discovery,
            "--audience",
            AUDIENCE,
            "--format",
            "json",
        ],
        Some(&token),
    );
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["valid"], true);
    assert_eq!(report["claims"]["eat_nonce"], "0123456789abcdef");
}

#[tokio::test]
async fn verify_names_the_failed_check_and_exits_1() {
    let launcher = LauncherProcess::start(&[]).await;
    let token = get_token(&launcher, AUDIENCE);
    let jwks = launcher.info.jwks_url.as_str();

    let wrong_aud = attestgate(
        &[
            "verify",
            "--jwks-url",
            jwks,
            "--audience",
            "https://vault.bank-b.example",
        ],
        Some(&token),
    );
    assert_eq!(wrong_aud.status.code(), Some(1));
    assert!(
        text(&wrong_aud.stderr).contains("INVALID (audience check failed)"),
        "{}",
        text(&wrong_aud.stderr)
    );

    let slash = format!("{}/", attestgate::attestation::GOOGLE_ISSUER);
    let wrong_iss = attestgate(
        &[
            "verify",
            "--jwks-url",
            jwks,
            "--audience",
            AUDIENCE,
            "--issuer",
            &slash,
            "--format",
            "json",
        ],
        Some(&token),
    );
    assert_eq!(wrong_iss.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&wrong_iss.stdout).unwrap();
    assert_eq!(report["check"], "issuer");
    assert!(report["error"].as_str().unwrap().contains("trailing slash"));
}

#[tokio::test]
async fn at_checks_a_token_as_of_another_moment() {
    let launcher = LauncherProcess::start(&[]).await;
    let token = get_token(&launcher, AUDIENCE);
    let jwks = launcher.info.jwks_url.as_str();
    let later = (attestgate::attestation::unix_now() + 7200).to_string();
    let expired = attestgate(
        &[
            "verify",
            "--jwks-url",
            jwks,
            "--audience",
            AUDIENCE,
            "--at",
            &later,
        ],
        Some(&token),
    );
    assert_eq!(expired.status.code(), Some(1));
    assert!(
        text(&expired.stderr).contains("exp check failed"),
        "{}",
        text(&expired.stderr)
    );
}

#[tokio::test]
async fn an_unreachable_issuer_is_an_operational_error() {
    let launcher = LauncherProcess::start(&[]).await;
    let token = get_token(&launcher, AUDIENCE);
    let closed = format!("{}/jwks", closed_address());
    let out = attestgate(
        &["verify", "--jwks-url", &closed, "--audience", AUDIENCE],
        Some(&token),
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("could not fetch signing keys"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn the_launcher_error_text_reaches_the_user() {
    let launcher = LauncherProcess::start(&[]).await;
    let socket = launcher.info.socket.to_str().unwrap();
    let out = attestgate(
        &[
            "token",
            "get",
            "--socket",
            socket,
            "--audience",
            AUDIENCE,
            "--nonce",
            "short",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("HTTP 400") && stderr.contains("nonce 0 is 5 bytes"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_launcher_and_removes_its_socket() {
    let scratch = tempfile::tempdir().unwrap();
    let claims = scratch.path().join("claims.json");
    std::fs::write(&claims, r#"{"dbgstat": "enabled"}"#).unwrap();
    let mut debug = LauncherProcess::start(&["--claims", claims.to_str().unwrap()]).await;
    let token = get_token(&debug, AUDIENCE);
    let summary = text(&attestgate(&["token", "inspect", "-"], Some(&token)).stdout);
    assert!(summary.contains("DEBUG IMAGE (enabled)"), "{summary}");

    debug.terminate();
    let status = debug.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        !Path::new(&debug.info.socket).exists(),
        "socket removed on SIGTERM"
    );
    assert!(!debug.dir.path().join("launcher.json").exists());
}

#[test]
fn bad_claims_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let claims = dir.path().join("claims.json");
    std::fs::write(&claims, "[1, 2]").unwrap();
    let out = attestgate(
        &[
            "dev",
            "launcher",
            "--dir",
            dir.path().to_str().unwrap(),
            "--claims",
            claims.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(
        text(&out.stderr).contains("must be a JSON object"),
        "{}",
        text(&out.stderr)
    );
}

fn plugin(name: &str) -> String {
    plugin_wasm(name).to_str().unwrap().to_owned()
}

fn write_json(dir: &Path, name: &str, value: &serde_json::Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn plugin_inspect_shows_digest_and_contract() {
    let wasm = plugin("confidential-space");
    let out = attestgate(&["plugin", "inspect", &wasm], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&sha256_file(Path::new(&wasm))), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "attestgate:policy@{} (compatible",
            attestgate::plugin::CONTRACT_VERSION
        )),
        "{stdout}"
    );
    // The toolchain, from the component's producers section, and the limits its kind gets.
    assert!(stdout.contains("language  Rust"), "{stdout}");
    assert!(
        stdout.contains("kind      compiled to WebAssembly (default limits: 100 ms, 64 MiB)"),
        "{stdout}"
    );
    let future = attestgate(&["plugin", "inspect", &plugin("future-contract")], None);
    assert!(
        text(&future.stdout).contains("attestgate:policy@0.4.0 (NOT compatible"),
        "{}",
        text(&future.stdout)
    );
}

#[test]
fn plugin_test_exit_codes_follow_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let production = write_json(dir.path(), "prod.json", &production_claims(AUDIENCE));
    let debug = write_json(
        dir.path(),
        "debug.json",
        &claims_with(AUDIENCE, serde_json::json!({"dbgstat": "enabled"})),
    );
    let config = write_json(
        dir.path(),
        "cs.json",
        &serde_json::json!({"audience": AUDIENCE}),
    );
    let cs = plugin("confidential-space");

    let allow = attestgate(
        &[
            "plugin",
            "test",
            &cs,
            "--claims",
            &production,
            "--plugin-config",
            &config,
        ],
        None,
    );
    assert_eq!(allow.status.code(), Some(0), "{}", text(&allow.stderr));
    let stdout = text(&allow.stdout);
    assert!(
        stdout.contains(&format!("audience  {AUDIENCE} (OIDC)"))
            && stdout.contains("verdict   ALLOW"),
        "{stdout}"
    );

    let deny = attestgate(
        &[
            "plugin",
            "test",
            &cs,
            "--claims",
            &debug,
            "--plugin-config",
            &config,
        ],
        None,
    );
    assert_eq!(deny.status.code(), Some(1));
    assert!(
        text(&deny.stdout).contains("FAIL  /dbgstat: debug image"),
        "{}",
        text(&deny.stdout)
    );
    let expected = attestgate(
        &[
            "plugin",
            "test",
            &cs,
            "--claims",
            &debug,
            "--plugin-config",
            &config,
            "--expect",
            "deny",
        ],
        None,
    );
    assert_eq!(expected.status.code(), Some(0));
    let wrong = attestgate(
        &[
            "plugin",
            "test",
            &cs,
            "--claims",
            &production,
            "--plugin-config",
            &config,
            "--expect",
            "deny",
        ],
        None,
    );
    assert_eq!(wrong.status.code(), Some(1));

    let looping = write_json(
        dir.path(),
        "loop.json",
        &serde_json::json!({"attack": "infinite-loop"}),
    );
    let failed = attestgate(
        &[
            "plugin",
            "test",
            &plugin("hostile"),
            "--claims",
            &production,
            "--plugin-config",
            &looping,
            "--deadline-ms",
            "20",
        ],
        None,
    );
    assert_eq!(failed.status.code(), Some(4));
    assert!(
        text(&failed.stderr).contains("ran past its 20 ms deadline"),
        "{}",
        text(&failed.stderr)
    );
}

#[test]
fn a_plugin_sleeping_anywhere_is_stopped_without_a_panic_at_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let claims = write_json(dir.path(), "claims.json", &production_claims(AUDIENCE));
    for attack in ["sleep", "sleep-in-validate", "sleep-in-audience"] {
        let config = write_json(
            dir.path(),
            "sleep.json",
            &serde_json::json!({"attack": attack}),
        );
        let started = std::time::Instant::now();
        let out = attestgate(
            &[
                "plugin",
                "test",
                &plugin("hostile"),
                "--claims",
                &claims,
                "--plugin-config",
                &config,
                "--deadline-ms",
                "100",
            ],
            None,
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{attack}: {stderr}");
        assert!(stderr.contains("deadline"), "{attack}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{attack}: {stderr}"
        );
        // A 30 s sleep, stopped long before it would have ended.
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "{attack}"
        );
    }
}

#[tokio::test]
async fn verify_with_a_config_gives_one_verdict_per_collaborator() {
    let launcher = LauncherProcess::start(&[]).await;
    let token = get_token(&launcher, AUDIENCE);
    let dir = tempfile::tempdir().unwrap();
    let bank_b = "https://vault.bank-b.example";
    let path = ConfigBuilder::new(dir.path())
        .jwks_url(&launcher.info.jwks_url)
        .allow_plain_http(true)
        .collaborator(Collaborator::bound_claims("bank-a", corrected_role()))
        .collaborator(
            Collaborator::new("bank-b", "confidential-space")
                .audience(bank_b)
                .plugin_config(serde_json::json!({"audience": bank_b})),
        )
        .write();
    let out = attestgate(
        &[
            "verify",
            "--config",
            path.to_str().unwrap(),
            "--format",
            "json",
        ],
        Some(&token),
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "bank-b must refuse bank-a's token: {}",
        text(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let collaborators = report["collaborators"].as_array().unwrap();
    assert_eq!(collaborators[0]["collaborator"], "bank-a");
    assert_eq!(collaborators[0]["allow"], true, "{report}");
    assert_eq!(collaborators[1]["allow"], false);
    assert_eq!(collaborators[1]["step"], "verify token");
    assert!(
        collaborators[1]["error"]
            .as_str()
            .unwrap()
            .contains("audience check failed"),
        "{report}"
    );
}

/// `attestgate … | head -1`: a reader that went away is not an error, whatever the command
/// prints. (`tests/check-structure.py` keeps every write to standard output behind `out!`; this
/// runs the commands whose output is a token or a multi-line summary.)
#[test]
fn a_reader_that_went_away_is_not_an_error() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let encode = |value: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
    };
    let jwt = format!(
        "{}.{}.c2lnbmF0dXJl",
        encode(serde_json::json!({"alg": "RS256", "kid": "k", "typ": "JWT"})),
        encode(production_claims(AUDIENCE)),
    );
    let token = dir.path().join("token");
    std::fs::write(&token, &jwt).unwrap();
    let token = token.to_str().unwrap();
    let wasm = plugin("confidential-space");
    for args in [
        vec!["plugin", "inspect", &wasm],
        vec!["token", "inspect", token],
        vec!["token", "get", "--file", token],
    ] {
        // The read end is closed before attestgate writes anything: every write is a broken pipe.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(attestgate_bin())
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("c2lnbmF0dXJl"), "{args:?}: {stderr}");
    }
}

#[test]
fn completions_and_the_man_page_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = attestgate(&["completions", shell], None);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", text(&out.stderr));
        let script = text(&out.stdout);
        for command in ["exchange", "exec", "verify", "plugin", "dev"] {
            assert!(script.contains(command), "{shell} completes {command}");
        }
    }
    let man = attestgate(&["man"], None);
    assert_eq!(man.status.code(), Some(0));
    let page = text(&man.stdout);
    assert!(
        page.starts_with(".ie") || page.contains(".TH attestgate"),
        "{page}"
    );
    assert!(page.contains("exchange"), "{page}");
}

/// `attestgate plugin new NAME --lang LANG --dir DIR`, which must succeed.
fn new_plugin(dir: &Path, lang: &str, name: &str) {
    let dir = dir.to_str().unwrap();
    let out = attestgate(&["plugin", "new", name, "--lang", lang, "--dir", dir], None);
    assert!(out.status.success(), "{lang}: {}", text(&out.stderr));
}

/// `plugin new` in `lang` gives a directory whose own `test.sh` passes from where it was created,
/// outside this repository, and checks a production workload allowed and a debug image denied
/// through `plugin test --expect`. (One test per language: each builds with its own toolchain,
/// and in one test they were the suite's longest serial run.)
fn scaffold_passes_its_own_golden_checks(lang: &str, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    new_plugin(dir.path(), lang, name);
    let status = Command::new(dir.path().join(name).join("test.sh"))
        .env("ATTESTGATE", attestgate_bin())
        .env("REGO_POLICY_WASM", plugin_wasm("rego-policy"))
        .env("CEL_ROLE_WASM", plugin_wasm("cel-role"))
        // The dependencies the plugins workspace already compiled, at the same versions.
        .env("CARGO_TARGET_DIR", target_dir().join("plugins"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{lang}: {}\n{}",
        text(&status.stdout),
        text(&status.stderr)
    );
    assert!(
        text(&status.stdout).contains("ok: claims/debug-image.json -> deny"),
        "{lang}: {}",
        text(&status.stdout)
    );
}

/// The Rust scaffold builds with its vendored SDK and runs its native unit tests before the
/// golden checks.
#[test]
fn plugin_new_rust_scaffolds_a_plugin_that_passes_its_own_golden_checks() {
    scaffold_passes_its_own_golden_checks("rust", "bank-a-rules");
}

/// The Rego scaffold runs the reference `rego-policy` plugin on its policy.
#[test]
fn plugin_new_rego_scaffolds_a_policy_that_passes_its_own_golden_checks() {
    scaffold_passes_its_own_golden_checks("rego", "bank-a-rego");
}

/// The CEL scaffold runs the reference `cel-role` plugin on its role.
#[test]
fn plugin_new_cel_scaffolds_a_role_that_passes_its_own_golden_checks() {
    scaffold_passes_its_own_golden_checks("cel", "bank-a-cel");
}

/// The Python and JavaScript scaffolds build their components with the pinned toolchains they
/// install themselves (their golden checks cost a minute of compiling, which the golden tests
/// already spend on the reference plugins).
fn scaffold_builds_a_component(lang: &str, name: &str, wasm: &str) {
    let dir = tempfile::tempdir().unwrap();
    new_plugin(dir.path(), lang, name);
    let built = Command::new(dir.path().join(name).join("build.sh"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{lang}: {}", text(&built.stderr));
    let component = std::fs::read(dir.path().join(name).join(wasm)).unwrap();
    assert_eq!(&component[..8], b"\0asm\x0d\0\x01\0", "{lang}: a component");
}

#[test]
fn plugin_new_python_scaffolds_a_plugin_that_builds_a_component() {
    scaffold_builds_a_component("python", "bank-a-py", "bank_a_py.wasm");
}

#[test]
fn plugin_new_js_scaffolds_a_plugin_that_builds_a_component() {
    scaffold_builds_a_component("js", "bank-a-js", "target/plugins/js/rules_js.wasm");
}

/// A scaffold never writes over what exists.
#[test]
fn plugin_new_never_writes_over_what_exists() {
    let dir = tempfile::tempdir().unwrap();
    new_plugin(dir.path(), "cel", "bank-a-cel");
    let edited = dir.path().join("bank-a-cel/claims/production.json");
    std::fs::write(&edited, "{}").unwrap();
    let again = attestgate(
        &[
            "plugin",
            "new",
            "bank-a-cel",
            "--lang",
            "cel",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(again.status.code(), Some(3), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("File exists"));
    assert_eq!(std::fs::read_to_string(&edited).unwrap(), "{}");
}
