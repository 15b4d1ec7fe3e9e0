//! The multi-party exchange against real OpenBao servers and the dev launcher.

use crate::harness::capture::{Answer, CaptureServer};
use crate::harness::config::{Collaborator, ConfigBuilder, Secret, Vault};
use crate::harness::exchange::{assert_succeeded, cause, run};
use crate::harness::launcher::TestLauncher;
use crate::harness::openbao::{free_port_pair, OpenBao, OpenBaoOptions};
use crate::harness::plugins::{plugin_wasm, precompiled, scripted_plugin, ScriptedPlugin};
use crate::harness::{
    attestgate_async, closed_address, corrected_role, example_role, payload, run_binary_async,
};
use attestgate::config::{Config, RunKind};
use attestgate::exchange::{deliver_files, Exchange, Step, StepCause};
use attestgate::plugin::{ContractViolation, FailureKind, PluginError};
use attestgate::vault::VaultError;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

const BANK_A: &str = "https://vault.bank-a.example";
const BANK_B: &str = "https://vault.bank-b.example";

/// The seed's Vault role for bank-a, as written.
fn role_as_written() -> Value {
    example_role("seed-role-as-written.json")
}

/// A role for bank-b bound to its own audience and a couple of claims.
fn bank_b_role() -> Value {
    json!({
        "role_type": "jwt", "user_claim": "sub", "bound_audiences": [BANK_B],
        "bound_claims": {"swname": "CONFIDENTIAL_SPACE", "/submods/gce/project_id": ["operator-project"]},
        "token_explicit_max_ttl": 60
    })
}

/// An OpenBao for bank-a: the corrected seed role, and `kv/data/message` = {foo: world}.
async fn bank_a_vault(launcher: &TestLauncher, options: OpenBaoOptions) -> OpenBao {
    OpenBao::bank_a(&launcher.info().jwks_url, options).await
}

/// [`bank_a_vault`] with a raw audit log, to see every request attestgate sent it.
async fn audited_bank_a_vault(launcher: &TestLauncher) -> OpenBao {
    let audited = OpenBaoOptions {
        audit: true,
        ..Default::default()
    };
    bank_a_vault(launcher, audited).await
}

/// An OpenBao for bank-b ([`bank_b_role`]) holding `kv/data/model` = `{"key": "k-123"}`.
async fn bank_b_vault(launcher: &TestLauncher, options: OpenBaoOptions) -> OpenBao {
    let bank_b = OpenBao::start_with(options).await;
    bank_b
        .setup_collaborator(
            &launcher.info().jwks_url,
            "bank-b",
            bank_b_role(),
            &[("model", json!({"key": "k-123"}))],
        )
        .await;
    bank_b
}

/// The operator's sections: the launcher, plain HTTP, and files delivered under `dir/out`.
fn config(dir: &Path, launcher: &TestLauncher) -> ConfigBuilder {
    ConfigBuilder::local(dir, launcher.info()).delivery_root(&dir.join("out"))
}

/// bank-a, with the corrected seed role as its plugin's configuration, at `vault`.
fn bank_a_at(vault: impl Into<Vault>) -> Collaborator {
    Collaborator::bound_claims("bank-a", corrected_role()).vault(vault.into().role("bank-a"))
}

/// `bank_a_at`, releasing `kv/data/message`'s `foo` as `BANK_A_FOO`.
fn bank_a_foo(vault: impl Into<Vault>) -> Collaborator {
    bank_a_at(vault).secret(Secret::at("kv/data/message").field("foo").env("BANK_A_FOO"))
}

/// `name`, for `audience`, whose confidential-space plugin names its Vault role (`name`) and
/// checks `rules` too.
fn confidential_space(name: &str, audience: &str, rules: Value) -> Collaborator {
    let mut plugin_config = json!({"audience": audience, "vault_role": name});
    for (k, v) in rules.as_object().unwrap() {
        plugin_config[k] = v.clone();
    }
    Collaborator::new(name, "confidential-space")
        .audience(audience)
        .plugin_config_file(plugin_config)
}

#[tokio::test]
async fn two_collaborators_each_release_their_secret_to_their_own_audience() {
    let launcher = TestLauncher::start().await;
    let bank_a = bank_a_vault(
        &launcher,
        OpenBaoOptions {
            tls: true,
            audit: true,
            ..Default::default()
        },
    )
    .await;
    let bank_b = OpenBao::start_with(OpenBaoOptions {
        audit: true,
        ..Default::default()
    })
    .await;
    bank_b
        .setup_collaborator(
            &launcher.info().jwks_url,
            "bank-b",
            bank_b_role(),
            &[("model", json!({"weights-key": "k-123", "salt": "s-456"}))],
        )
        .await;

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let config = config(dir.path(), &launcher)
        .collaborator(
            bank_a_at(&bank_a).secret(
                Secret::at("kv/data/message")
                    .field("foo")
                    .file(&out.join("bank-a/foo")),
            ),
        )
        .collaborator(
            confidential_space("bank-b", BANK_B, json!({"projects": ["operator-project"]}))
                .vault(&bank_b)
                .secret(Secret::at("kv/data/model").file(&out.join("bank-b/model.json"))),
        )
        .write();
    let report = run(&config).await;
    assert_succeeded(&report);
    deliver_files(&report, &out).unwrap().commit();
    assert_eq!(
        std::fs::read_to_string(out.join("bank-a/foo")).unwrap(),
        "world"
    );
    let model: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("bank-b/model.json")).unwrap())
            .unwrap();
    assert_eq!(model, json!({"weights-key": "k-123", "salt": "s-456"}));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(out.join("bank-a/foo"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(out.join("bank-a"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );

    // Each Vault saw exactly one login, with a token minted for its own audience.
    let a_logins = bank_a.logged_login_jwts();
    let b_logins = bank_b.logged_login_jwts();
    assert_eq!(a_logins.len(), 1);
    assert_eq!(b_logins.len(), 1);
    assert_eq!(payload(&a_logins[0])["aud"], BANK_A);
    assert_eq!(payload(&b_logins[0])["aud"], BANK_B);

    // bank-a's token is useless at bank-b.
    let (status, body) = bank_b.jwt_login("bank-b", &a_logins[0]).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("invalid audience (aud) claim"),
        "{body}"
    );

    // Tokens were revoked after the secrets were read.
    let revoked = bank_a
        .audit_log()
        .iter()
        .any(|e| e["type"] == "request" && e["request"]["path"] == "auth/token/revoke-self");
    assert!(revoked, "bank-a's Vault token was revoked");
}

#[tokio::test]
async fn the_seed_role_as_written_fails_with_vaults_words_and_a_hint() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start().await;
    // The seed configures the issuer with a trailing slash, and its role as written.
    let (status, _) = bao.write("sys/auth/jwt", json!({"type": "jwt"})).await;
    assert_eq!(status, 204);
    let seed_issuer = format!("{}/", attestgate::attestation::GOOGLE_ISSUER);
    bao.write(
        "auth/jwt/config",
        json!({"jwks_url": launcher.info().jwks_url, "bound_issuer": seed_issuer}),
    )
    .await;
    let (status, body) = bao.write("auth/jwt/role/bank-a", role_as_written()).await;
    assert!(status < 300, "{body}");
    bao.write(
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    bao.write("kv/data/message", json!({"data": {"foo": "world"}}))
        .await;

    // A permissive plugin, so the token does reach Vault and Vault's own checks decide.
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &launcher)
        .collaborator(
            confidential_space("bank-a", BANK_A, json!({}))
                .vault(&bao)
                .secret(Secret::at("kv/data/message").env("BANK_A_FOO")),
        )
        .write();

    let report = run(&config).await;
    let error = report.failures().next().expect("the seed's issuer fails");
    assert_eq!(error.step, Step::VaultLogin);
    assert!(
        cause(error).contains("error validating token: invalid issuer (iss) claim"),
        "{}",
        cause(error)
    );
    assert!(
        cause(error).contains("no trailing slash"),
        "the hint names the cause: {}",
        cause(error)
    );

    // With the issuer fixed, the role's bound_subject (one VM instance, not ours) fails next.
    bao.write("auth/jwt/config", json!({"jwks_url": launcher.info().jwks_url, "bound_issuer": attestgate::attestation::GOOGLE_ISSUER})).await;
    let report = run(&config).await;
    let error = report
        .failures()
        .next()
        .expect("the seed's subject pin fails");
    assert!(
        cause(error).contains("invalid subject (sub) claim"),
        "{}",
        cause(error)
    );
    assert!(cause(error).contains("re-created VM"), "{}", cause(error));

    // Without the instance pin, the role's digest (with its trailing space) still fails.
    let mut unpinned = role_as_written();
    unpinned["bound_subject"] = json!("");
    bao.write("auth/jwt/role/bank-a", unpinned).await;
    let report = run(&config).await;
    let error = report.failures().next().expect("the seed's digest fails");
    assert!(cause(error).contains("claim \"/submods/container/image_digest\" does not match any associated bound claim values"), "{}", cause(error));
    assert!(cause(error).contains("stray spaces"), "{}", cause(error));

    // The corrected role logs in (its policy grants nothing, which the read step reports).
    bao.write(
        "sys/policies/acl/bank-a-secrets",
        json!({"policy": "path \"kv/data/message\" { capabilities = [\"read\"] }"}),
    )
    .await;
    bao.write("auth/jwt/role/bank-a", corrected_role()).await;
    let report = run(&config).await;
    assert_succeeded(&report);
}

#[tokio::test]
async fn a_plugin_denial_keeps_the_token_inside_the_tee() {
    let launcher = TestLauncher::start().await;
    let bao = audited_bank_a_vault(&launcher).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out/bank-a/foo");
    let config = config(dir.path(), &launcher)
        .collaborator(
            confidential_space(
                "bank-a",
                BANK_A,
                json!({"projects": ["someone-elses-project"]}),
            )
            .vault(&bao)
            .secret(Secret::at("kv/data/message").file(&file)),
        )
        .write();
    let report = run(&config).await;
    let error = report.failures().next().expect("the plugin denies");
    assert_eq!(error.step, Step::Policy);
    assert!(
        cause(error).contains("/submods/gce/project_id"),
        "{}",
        cause(error)
    );
    let verdict = error.denial().expect("a deny carries the plugin's verdict");
    assert!(!verdict.allow && verdict.failed_reasons().count() > 0);
    assert!(
        bao.logged_login_jwts().is_empty(),
        "no login request reached Vault"
    );
    assert!(!file.exists());
}

#[tokio::test]
async fn a_secret_outside_the_policy_is_permission_denied_naming_the_path() {
    let launcher = TestLauncher::start().await;
    let bao = audited_bank_a_vault(&launcher).await;
    bao.write("kv/data/board-minutes", json!({"data": {"text": "secret"}}))
        .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &launcher)
        .collaborator(
            bank_a_at(&bao)
                .secret(Secret::at("kv/data/message").env("BANK_A_FOO"))
                .secret(Secret::at("kv/data/board-minutes").env("BANK_A_MINUTES")),
        )
        .write();
    let report = run(&config).await;
    let error = report.failures().next().expect("the read is refused");
    assert_eq!(error.step, Step::ReadSecret);
    assert!(
        cause(error).contains("kv/data/board-minutes")
            && cause(error).contains("permission denied"),
        "{}",
        cause(error)
    );
    // A failed read revokes the token the login issued, as a successful one does: Vault
    // answered the revocation without an error.
    let revoked = bao.audit_log().iter().any(|e| {
        e["type"] == "response"
            && e["request"]["path"] == "auth/token/revoke-self"
            && e["error"].is_null()
    });
    assert!(
        revoked,
        "the Vault token was revoked after the refused read"
    );
}

/// `ca_cert` is the only CA trusted for that Vault: with the Vault's real CA in the system's
/// store, a `ca_cert` naming another CA still refuses it, and says which setting to check.
#[tokio::test]
async fn a_wrong_ca_is_reported_as_a_tls_failure() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(
        &launcher,
        OpenBaoOptions {
            tls: true,
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    // Another CA entirely: the dev launcher's PKI root.
    let vault = Vault::from(&bao).ca_cert(&launcher.info().pki_root);
    let config = config(dir.path(), &launcher)
        .collaborator(bank_a_at(vault).secret(Secret::at("kv/data/message").env("BANK_A_FOO")))
        .write();
    let system_roots = bao.ca_cert().unwrap().display().to_string();
    let env = [
        ("SSL_CERT_FILE", system_roots.as_str()),
        ("SSL_CERT_DIR", ""),
    ];
    let out = attestgate_async(&["exchange", "--config", config.to_str().unwrap()], &env).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| line.contains("FAILED at vault login")
                && line.contains("TLS with Vault")
                && line.contains("is ca_cert the CA")),
        "{stderr}"
    );
}

/// Vaults without a `ca_cert` are trusted through the system's root store (`SSL_CERT_FILE`
/// here, as a public CA would be): the store is read once per exchange for all its clients, and
/// it trusts what it lists and nothing else.
#[tokio::test]
async fn vaults_trusted_through_the_system_roots_share_one_read_of_them() {
    let launcher = TestLauncher::start().await;
    let tls = OpenBaoOptions {
        tls: true,
        ..Default::default()
    };
    let bank_a = bank_a_vault(&launcher, tls).await;
    let bank_b = bank_b_vault(&launcher, tls).await;
    let dir = tempfile::tempdir().unwrap();
    // Each OpenBao made its own CA.
    let bank_a_ca = std::fs::read(bank_a.ca_cert().unwrap()).unwrap();
    let bank_b_ca = std::fs::read(bank_b.ca_cert().unwrap()).unwrap();
    let bundle = |name: &str, cas: &[&[u8]]| {
        let path = dir.path().join(name);
        std::fs::write(&path, cas.concat()).unwrap();
        path.display().to_string()
    };
    let both = bundle("both.pem", &[&bank_a_ca, &bank_b_ca]);
    let bank_a_only = bundle("bank-a-only.pem", &[&bank_a_ca]);
    let config = config(dir.path(), &launcher)
        .collaborator(bank_a_foo(Vault::at(&bank_a.addr)))
        .collaborator(
            confidential_space("bank-b", BANK_B, json!({}))
                .vault(Vault::at(&bank_b.addr))
                .secret(Secret::at("kv/data/model").field("key").env("BANK_B_KEY")),
        )
        .write();
    let exchange = |roots: String| {
        let config = config.clone();
        async move {
            // The store is exactly this file: no directory (this machine's environment may
            // name one).
            let env = [
                ("SSL_CERT_FILE", roots.as_str()),
                ("SSL_CERT_DIR", ""),
                ("RUST_LOG", "attestgate=debug"),
            ];
            let out =
                attestgate_async(&["exchange", "--config", config.to_str().unwrap()], &env).await;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code(), stderr)
        }
    };

    let (code, stderr) = exchange(both).await;
    assert_eq!(code, Some(0), "{stderr}");
    let reads: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("loaded the system's root certificates"))
        .collect();
    assert_eq!(reads.len(), 1, "two Vault clients, one read: {stderr}");
    assert!(reads[0].contains("certificates=2"), "{}", reads[0]);

    // A store without bank-b's CA: bank-b's Vault is refused, bank-a's still trusted.
    let (code, stderr) = exchange(bank_a_only).await;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|line| line.contains("bank-b") && line.contains("FAILED at vault login")),
        "{stderr}"
    );
    assert!(stderr.contains("TLS with Vault"), "{stderr}");
    assert!(
        !stderr
            .lines()
            .any(|line| line.contains("bank-a") && line.contains("FAILED")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_vault_that_never_comes_up_fails_clearly_within_the_deadline() {
    let launcher = TestLauncher::start().await;
    let dir = tempfile::tempdir().unwrap();
    let closed = closed_address();
    let config = config(dir.path(), &launcher)
        .deadline("3s")
        .collaborator(
            confidential_space("bank-a", BANK_A, json!({}))
                .vault(Vault::at(&closed))
                .secret(Secret::at("kv/data/message").env("BANK_A_FOO")),
        )
        .write();
    let report = run(&config).await;
    let error = report.failures().next().expect("Vault is down");
    assert_eq!(error.step, Step::VaultLogin, "{error}");
    assert!(
        cause(error).contains("Vault unreachable") && cause(error).contains("Connection refused"),
        "{}",
        cause(error)
    );
}

/// Accepts connections to a port and drops the first `refuse` of them, then forwards the rest to
/// `target`: a Vault that is down at first and then comes up.
async fn flaky_proxy(
    target: String,
    refuse: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if counter.fetch_add(1, Ordering::SeqCst) < refuse {
                drop(inbound);
                continue;
            }
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, seen)
}

#[tokio::test]
async fn a_vault_down_at_first_is_retried_until_it_answers() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher, OpenBaoOptions::default()).await;
    let (proxy, connections) =
        flaky_proxy(bao.addr.trim_start_matches("http://").to_owned(), 3).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &launcher)
        .collaborator(bank_a_foo(Vault::at(&proxy)))
        .write();
    let report = run(&config).await;
    assert_succeeded(&report);
    assert!(
        connections.load(std::sync::atomic::Ordering::SeqCst) > 3,
        "the first connections were dropped and retried"
    );
}

#[tokio::test]
async fn all_or_nothing_leaves_no_secret_file_and_exec_passes_the_exit_code() {
    let launcher = TestLauncher::start().await;
    let bank_a = bank_a_vault(&launcher, OpenBaoOptions::default()).await;
    let bank_b = bank_b_vault(&launcher, OpenBaoOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let a_file = dir.path().join("out/bank-a/foo");
    let good_b = confidential_space("bank-b", BANK_B, json!({}))
        .vault(&bank_b)
        .secret(Secret::at("kv/data/model").field("key").env("BANK_B_KEY"));
    let bad_b = confidential_space("bank-b", BANK_B, json!({"hwmodels": ["GCP_INTEL_TDX"]}))
        .vault(&bank_b)
        .secret(Secret::at("kv/data/model").env("BANK_B_KEY"));
    let a = || {
        bank_a_at(&bank_a).secret(
            Secret::at("kv/data/message")
                .field("foo")
                .file(&a_file)
                .env("BANK_A_FOO"),
        )
    };

    let failing = config(dir.path(), &launcher)
        .collaborator(a())
        .collaborator(bad_b)
        .write();
    let out = attestgate_async(&["exchange", "--config", failing.to_str().unwrap()], &[]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bank-b")
            && stderr.contains("FAILED at policy")
            && stderr.contains("nothing was delivered"),
        "{stderr}"
    );
    assert!(
        !a_file.exists(),
        "bank-a's secret must not be delivered when bank-b fails"
    );
    assert!(
        !a_file.parent().unwrap().exists()
            || std::fs::read_dir(a_file.parent().unwrap())
                .unwrap()
                .next()
                .is_none()
    );

    let partial = attestgate_async(
        &[
            "exchange",
            "--config",
            failing.to_str().unwrap(),
            "--partial",
        ],
        &[],
    )
    .await;
    assert_eq!(partial.status.code(), Some(1));
    assert_eq!(
        std::fs::read_to_string(&a_file).unwrap(),
        "world",
        "--partial delivers what succeeded"
    );
    std::fs::remove_file(&a_file).unwrap();

    let working = config(dir.path(), &launcher)
        .collaborator(a())
        .collaborator(good_b)
        .write();
    let script = r#"test "$BANK_A_FOO" = world && test "$BANK_B_KEY" = k-123 && exit 7; exit 2"#;
    let exec = attestgate_async(
        &[
            "exec",
            "--config",
            working.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            script,
        ],
        &[],
    )
    .await;
    assert_eq!(
        exec.status.code(),
        Some(7),
        "the child saw both secrets and its exit code came through: {}",
        String::from_utf8_lossy(&exec.stderr)
    );

    let json = attestgate_async(
        &[
            "exchange",
            "--config",
            working.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(json.status.code(), Some(0));
    let released: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(released["bank-a"]["kv/data/message"]["foo"], "world");
    assert_eq!(released["bank-b"]["kv/data/model"]["key"], "k-123");
}

#[tokio::test]
async fn nothing_secret_reaches_the_logs_even_at_trace() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start_with(OpenBaoOptions {
        audit: true,
        ..Default::default()
    })
    .await;
    let secret_value = "correct-horse-battery-staple-4242";
    bao.setup_collaborator(
        &launcher.info().jwks_url,
        "bank-a",
        corrected_role(),
        &[("message", json!({"foo": secret_value}))],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out/bank-a/foo");
    // Precompile the plugin, as an image build would, so the traced run is the exchange itself
    // rather than megabytes of compiler tracing.
    let artifact = dir.path().join("bound_claims.cwasm");
    let compiled = attestgate_async(
        &[
            "plugin",
            "compile",
            plugin_wasm("bound-claims").to_str().unwrap(),
            "--output",
            artifact.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    assert_eq!(compiled.status.code(), Some(0), "{compiled:?}");
    let compiled: Value = serde_json::from_slice(&compiled.stdout).unwrap();
    let artifact_sha256 = compiled["plugin_compiled_sha256"].as_str().unwrap();
    // The operator built the artifact itself, just above, and says so.
    let config = config(dir.path(), &launcher)
        .trust_precompiled()
        .collaborator(
            bank_a_at(&bao)
                .plugin_compiled(&artifact, artifact_sha256)
                .secret(Secret::at("kv/data/message").field("foo").file(&file)),
        )
        .write();
    let out = attestgate_async(
        &["exchange", "--config", config.to_str().unwrap()],
        &[("RUST_LOG", "trace")],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), secret_value);
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(logs.len() > 1000, "trace logging was on");
    let jwt = &bao.logged_login_jwts()[0];
    let signature = jwt.rsplit('.').next().unwrap();
    let client_token = bao
        .audit_log()
        .iter()
        .filter(|e| {
            e["type"] == "response"
                && e["request"]["path"]
                    .as_str()
                    .is_some_and(|p| p.ends_with("/login"))
        })
        .find_map(|e| {
            e["response"]["auth"]["client_token"]
                .as_str()
                .filter(|t| t.len() > 8)
                .map(str::to_owned)
        })
        .expect("the audit log has the issued token");
    // Name the offending log lines by their source, never by their content.
    let leaks = |needle: &str| -> Vec<String> {
        logs.lines()
            .filter(|line| line.contains(needle))
            .map(|line| {
                line.split_whitespace()
                    .take(3)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .take(5)
            .collect()
    };
    assert!(
        leaks(signature).is_empty(),
        "the JWT leaked into the logs: {:?}",
        leaks(signature)
    );
    assert!(
        leaks(secret_value).is_empty(),
        "the secret leaked into the logs: {:?}",
        leaks(secret_value)
    );
    assert!(
        leaks(&client_token).is_empty(),
        "the Vault token leaked into the logs: {:?}",
        leaks(&client_token)
    );
}

#[tokio::test]
async fn a_kept_vault_token_is_delivered_and_still_valid() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher, OpenBaoOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("out/bank-a/vault-token");
    let config = config(dir.path(), &launcher)
        .collaborator(bank_a_foo(Vault::from(&bao).token_file(&token_file)))
        .write();
    let report = run(&config).await;
    assert_succeeded(&report);
    deliver_files(&report, &dir.path().join("out"))
        .unwrap()
        .commit();
    let token = std::fs::read_to_string(&token_file).unwrap();
    let lookup = reqwest::Client::new()
        .get(format!("{}/v1/auth/token/lookup-self", bao.addr))
        .header("X-Vault-Token", token.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(lookup.status(), 200, "the kept token was not revoked");
    let body: Value = lookup.json().await.unwrap();
    assert!(
        body["data"]["policies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p == "bank-a-secrets"),
        "{body}"
    );
}

#[tokio::test]
async fn the_default_token_never_reaches_a_collaborators_vault() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file_source = config(dir.path(), &launcher)
        .token_file_source(&launcher.info().token_file)
        .collaborator(
            confidential_space("bank-a", BANK_A, json!({}))
                .vault(&bao)
                .secret(Secret::at("kv/data/message").env("BANK_A_FOO")),
        );
    let config = file_source.write();
    let err = Config::load(&config).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.key == "attestation.source" && p.message.contains("allow_default_audience")),
        "{err}"
    );

    // Even opted in, the default token (audience STS) is refused to a collaborator that logs in
    // to its own Vault: its owner could exchange it at STS as the workload.
    let config = file_source.allow_default_audience().write();
    let err = Config::load(&config).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.key == "collaborator[0] (bank-a).audience"
                && p.message.contains("Google's STS accepts")),
        "{err}"
    );
}

#[tokio::test]
async fn an_ha_cluster_is_reached_through_its_other_addresses() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher, OpenBaoOptions::default()).await;
    let down = closed_address();
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &launcher)
        .collaborator(bank_a_foo(Vault::cluster(&[&down, &bao.addr])))
        .write();
    let report = run(&config).await;
    assert_succeeded(&report);
}

#[tokio::test]
async fn a_vault_requiring_client_certificates_accepts_the_configured_identity() {
    let launcher = TestLauncher::start().await;
    let mtls_port = free_port_pair();
    let bao = bank_a_vault(
        &launcher,
        OpenBaoOptions {
            mtls_port: Some(mtls_port),
            ..Default::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let tls = bao.mtls.as_ref().unwrap();
    let mtls = Vault::at(&format!("https://127.0.0.1:{mtls_port}")).ca_cert(&tls.ca);
    let with = config(dir.path(), &launcher)
        .collaborator(bank_a_foo(
            mtls.clone()
                .client_identity(&tls.client_cert, &tls.client_key),
        ))
        .write();
    let report = run(&with).await;
    assert_succeeded(&report);

    let without = config(dir.path(), &launcher)
        .deadline("5s")
        .collaborator(bank_a_foo(mtls))
        .write();
    let report = run(&without).await;
    let error = report
        .failures()
        .next()
        .expect("no client certificate, no session");
    assert_eq!(error.step, Step::VaultLogin, "{error}");
    // TLS 1.3: the server's refusal arrives as an alert (a TLS error), or, when the client was
    // already writing its request, as a closed connection; both name the fix.
    let hint = match &*error.cause {
        StepCause::Login {
            source: VaultError::Tls { hint, .. },
            ..
        } => Some(*hint),
        StepCause::Login {
            source: VaultError::Unreachable { hint, .. },
            ..
        } => *hint,
        other => panic!("expected a refused TLS session, got {other}"),
    };
    assert!(
        hint.is_some_and(|h| h.contains("set client_cert and client_key")),
        "the hint names the fix: {}",
        cause(error)
    );
}

#[tokio::test]
async fn a_collaborator_in_a_vault_namespace_is_reached_through_it() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start().await;
    bao.setup_collaborator_in(
        Some("team-a"),
        &launcher.info().jwks_url,
        "bank-a",
        corrected_role(),
        &[("message", json!({"foo": "from-the-namespace"}))],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &launcher)
        .collaborator(bank_a_foo(Vault::from(&bao).namespace("team-a")))
        .write();
    let report = run(&config).await;
    assert_succeeded(&report);
    let (_, released) = report.released().next().unwrap();
    assert_eq!(
        released.secrets[0].value.to_text().as_str(),
        "from-the-namespace"
    );
}

#[tokio::test]
async fn a_standby_redirect_moves_on_to_the_next_address() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher, OpenBaoOptions::default()).await;
    // A standby node answers every request with 307 to the active node, as Vault's standbys do.
    let active = bao.addr.clone();
    let standby = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let standby_addr = format!("http://{}", standby.local_addr().unwrap());
    let redirects = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = redirects.clone();
    let router = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let (active, counter) = (active.clone(), counter.clone());
        async move {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (
                axum::http::StatusCode::TEMPORARY_REDIRECT,
                [("location", format!("{active}{uri}"))],
            )
        }
    });
    tokio::spawn(async move { axum::serve(standby, router).await });
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &launcher)
        .collaborator(bank_a_foo(Vault::cluster(&[&standby_addr, &bao.addr])))
        .write();
    let report = run(&config).await;
    assert_succeeded(&report);
    assert!(
        redirects.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the standby was asked first"
    );
}

#[tokio::test]
async fn every_collaborator_that_cannot_start_is_reported_at_once() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &launcher)
        .collaborator(
            confidential_space("bank-a", BANK_A, json!({}))
                .plugin_sha256(&"0".repeat(64))
                .vault(&bao),
        )
        .collaborator(
            confidential_space("bank-b", BANK_B, json!({"projcts": ["typo"]})).vault(&bao),
        )
        .write();
    let config = Config::load(&config).unwrap();
    let err = Exchange::start(&config, RunKind::OneShot)
        .await
        .err()
        .expect("both fail");
    let text = err.to_string();
    assert!(
        text.contains("collaborator \"bank-a\"") && text.contains("sha256"),
        "{text}"
    );
    assert!(
        text.contains("collaborator \"bank-b\"") && text.contains("unknown field `projcts`"),
        "{text}"
    );
}

/// Mallory: a collaborator whose plugin asks for `stolen`, and whose "Vault" is a server of hers
/// that records every request.
fn mallory(capture: &CaptureServer, stolen: &str) -> Collaborator {
    mallory_as("mallory", capture, "allow", stolen)
}

/// A collaborator of Mallory's, `name`, whose hostile plugin carries out `attack` and asks for
/// `audience`.
fn mallory_as(name: &str, capture: &CaptureServer, attack: &str, audience: &str) -> Collaborator {
    Collaborator::new(name, "hostile")
        .audience(audience)
        .plugin_config_file(json!({"attack": attack, "audience": audience}))
        .vault(Vault::at(&capture.addr).role("mallory"))
}

const STOLEN_AUDIENCES: [&str; 5] = [
    BANK_B,
    "https://sts.googleapis.com",
    "https://vault.bank-b.example/",
    "HTTPS://VAULT.BANK-B.EXAMPLE",
    "https://vault.bank-b.example:443",
];

#[tokio::test]
async fn mallorys_plugin_cannot_obtain_a_token_for_another_audience() {
    let launcher = TestLauncher::start().await;
    let bank_b = OpenBao::start().await;
    let capture = CaptureServer::start(400, r#"{"errors":["nope"]}"#).await;
    for stolen in STOLEN_AUDIENCES {
        let dir = tempfile::tempdir().unwrap();
        let honest = confidential_space("bank-b", BANK_B, json!({})).vault(&bank_b);
        // Mallory declares an audience of her own, as the operator reviewed it...
        let config = config(dir.path(), &launcher)
            .partial()
            .collaborator(honest)
            .collaborator(mallory(&capture, stolen).audience("https://vault.mallory.example"))
            .write();
        let report = run(&config).await;
        // ...but her plugin asks for bank-b's (or STS's): refused before anything is minted.
        let error = report
            .failures()
            .find(|e| e.collaborator == "mallory")
            .unwrap_or_else(|| panic!("mallory got a token for {stolen}"));
        assert_eq!(error.step, Step::SelectAudience, "{error}");
        assert!(
            matches!(
                &*error.cause,
                StepCause::Plugin(PluginError::Call {
                    kind: FailureKind::BadReturn(ContractViolation::NotTheDeclaredAudience { .. }),
                    ..
                })
            ),
            "{error}"
        );
    }
    assert!(
        capture.requests().is_empty(),
        "no token ever reached mallory's server: {:?}",
        capture.requests()
    );
}

#[tokio::test]
async fn a_configuration_giving_mallory_another_collaborators_audience_is_refused() {
    let launcher = TestLauncher::start().await;
    let bank_b = OpenBao::start().await;
    let capture = CaptureServer::start(400, r#"{"errors":["nope"]}"#).await;
    for stolen in STOLEN_AUDIENCES {
        let dir = tempfile::tempdir().unwrap();
        let honest = confidential_space("bank-b", BANK_B, json!({})).vault(&bank_b);
        // Mallory declares the stolen audience outright, hoping the operator misses it.
        let config = config(dir.path(), &launcher)
            .collaborator(honest)
            .collaborator(mallory(&capture, stolen))
            .write();
        let err = Config::load(&config).expect_err(stolen);
        let problem = err
            .problems
            .iter()
            .find(|p| p.key == "collaborator[1] (mallory).audience")
            .unwrap_or_else(|| panic!("{stolen}: {err}"));
        if stolen.contains("sts") {
            assert!(problem.message.contains("Google's STS accepts"), "{err}");
        } else {
            assert!(
                problem.message.contains("collaborator[0] (bank-b)")
                    && problem.message.contains("same audience"),
                "the refusal names both collaborators: {err}"
            );
        }
    }
    assert!(capture.requests().is_empty());
}

#[tokio::test]
async fn a_hostile_vault_cannot_echo_the_token_or_flood_memory_or_forge_output() {
    let launcher = TestLauncher::start().await;
    let dir = tempfile::tempdir().unwrap();
    let echo = CaptureServer::answering(Answer::Echo).await;
    let endless = CaptureServer::answering(Answer::Endless).await;
    let forger = CaptureServer::start(400, r#"{"errors":["unused"]}"#).await;
    let config = config(dir.path(), &launcher)
        .partial()
        .collaborator(mallory(&echo, "https://vault.mallory.example"))
        .collaborator(mallory_as(
            "flood",
            &endless,
            "allow",
            "https://vault.flood.example",
        ))
        .collaborator(mallory_as(
            "forger",
            &forger,
            "forge-output",
            "https://vault.forger.example",
        ))
        .write();
    let out = attestgate_async(&["exchange", "--config", config.to_str().unwrap()], &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    // The echoing server really got the token, and echoed it back; none of it reaches stderr.
    let sent = echo.requests();
    let jwt: Value = serde_json::from_str(&sent[0].body).unwrap();
    let jwt = jwt["jwt"].as_str().unwrap();
    assert!(stderr.contains("bad request"), "{stderr}");
    for part in jwt.split('.') {
        assert!(
            !stderr.contains(part),
            "a part of the token reached stderr: {stderr}"
        );
    }
    // The endless body was cut off at the limit, not read whole.
    assert!(
        stderr.contains("flood") && stderr.contains("larger than"),
        "{stderr}"
    );
    // The forged success line arrives escaped, on the forger's own line: one line carries its
    // text, that line names the forger, and the newline and colour codes in it are visible.
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
    // (It appears twice: in the log, and in the summary.)
    let forged: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("released 1 secret(s)"))
        .collect();
    assert!(!forged.is_empty(), "{stderr}");
    for line in forged {
        assert!(line.contains("forger"), "{line}");
        assert!(
            line.contains(r"no\n\u{1b}[32mbank-b"),
            "the forged line is not shown escaped: {line}"
        );
    }
    assert!(forger.requests().is_empty(), "the forger's plugin denied");
}

/// A Vault that answers the login with a redirect to another server: no client follows it, so
/// the attestation token never reaches the other server (mallory's Vault cannot steer it to
/// bank-b's, or anywhere else).
#[tokio::test]
async fn a_redirect_from_a_vault_never_carries_the_token_elsewhere() {
    let launcher = TestLauncher::start().await;
    let elsewhere = CaptureServer::start(200, r#"{"auth":{"client_token":"x"}}"#).await;
    let redirector = CaptureServer::answering(Answer::Redirect(format!(
        "{}/v1/auth/jwt/login",
        elsewhere.addr
    )))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &launcher)
        .deadline("2s")
        .collaborator(mallory(&redirector, "https://vault.mallory.example"))
        .write();
    let report = run(&config).await;
    let error = report.failures().next().expect("the login was redirected");
    assert_eq!(error.step, Step::VaultLogin, "{error}");
    assert!(!redirector.requests().is_empty());
    assert!(
        elsewhere.requests().is_empty(),
        "the redirect was followed: {:?}",
        elsewhere.requests()
    );
}

/// A Vault in front of `target` whose secret reads never answer; everything else is passed on
/// and recorded.
async fn stalling_vault(target: String) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let client = reqwest::Client::new();
    let router = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: axum::body::Bytes| {
            let (record, client, target) = (record.clone(), client.clone(), target.clone());
            async move {
                record
                    .lock()
                    .unwrap()
                    .push(format!("{method} {}", uri.path()));
                if uri.path().starts_with("/v1/kv/") {
                    std::future::pending::<()>().await;
                }
                let mut request = client.request(method, format!("{target}{uri}")).body(body);
                for (name, value) in &headers {
                    if name != "host" {
                        request = request.header(name, value);
                    }
                }
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                let bytes = response.bytes().await.unwrap();
                (axum::http::StatusCode::from_u16(status).unwrap(), bytes)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (addr, seen)
}

#[tokio::test]
async fn a_vault_token_is_revoked_even_when_the_deadline_cuts_the_read_short() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start_with(OpenBaoOptions {
        audit: true,
        ..Default::default()
    })
    .await;
    bao.setup_collaborator(
        &launcher.info().jwks_url,
        "bank-a",
        corrected_role(),
        &[("message", json!({"foo": "world"}))],
    )
    .await;
    let (stalling, seen) = stalling_vault(bao.addr.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), &launcher)
        .deadline("2s")
        .collaborator(bank_a_foo(Vault::at(&stalling)))
        .write();
    let report = run(&config).await;
    let error = report.failures().next().expect("the read never answers");
    assert_eq!(error.step, Step::Deadline, "{error}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|r| r == "POST /v1/auth/token/revoke-self"),
        "the login token was revoked after the deadline: {seen:?}"
    );
    // And OpenBao agrees: the token from the login is no longer valid.
    let login = bao
        .audit_log()
        .into_iter()
        .find(|entry| entry["type"] == "response" && entry["request"]["path"] == "auth/jwt/login")
        .expect("the login is in the audit log");
    let accessor = login["response"]["auth"]["accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = bao
        .write("auth/token/lookup-accessor", json!({"accessor": accessor}))
        .await;
    assert_ne!(
        status, 200,
        "the token's accessor is gone once it is revoked"
    );
}

/// bank-a's exchange run in process, releasing `kv/data/message`'s `foo` to each of `files`.
async fn bank_a_report(
    launcher: &TestLauncher,
    bao: &OpenBao,
    dir: &Path,
    files: &[PathBuf],
) -> attestgate::exchange::ExchangeReport {
    let collaborator = files.iter().fold(bank_a_at(bao), |collaborator, file| {
        collaborator.secret(Secret::at("kv/data/message").field("foo").file(file))
    });
    let config = config(dir, launcher).collaborator(collaborator).write();
    let report = run(&config).await;
    assert_succeeded(&report);
    report
}

#[tokio::test]
async fn delivery_never_follows_a_planted_symlink_nor_writes_into_a_foreign_directory() {
    use attestgate::exchange::{DeliveryCause, UnsafeDir};
    use std::os::unix::fs::PermissionsExt;
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher, OpenBaoOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let own = root.join("bank-a");
    let report = bank_a_report(&launcher, &bao, dir.path(), &[own.join("foo")]).await;
    std::fs::create_dir_all(&root).unwrap();
    std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Each refusal is a typed cause, and nothing is written anywhere.
    let refused = |what: &str| deliver_files(&report, &root).err().expect(what).cause;
    // Another process in the TEE plants a symlink where bank-a's directory goes.
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &own).unwrap();
    let cause = refused("a symlinked directory");
    assert!(
        matches!(
            cause,
            DeliveryCause::UnsafeDirectory(UnsafeDir::NotADirectory { .. })
        ),
        "{cause:?}"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).unwrap().count(),
        0,
        "nothing went through the link"
    );
    std::fs::remove_file(&own).unwrap();
    // Higher up: the delivery root itself swapped for a link to a directory that would pass
    // every other check.
    let real_root = dir.path().join("out-real");
    std::fs::rename(&root, &real_root).unwrap();
    std::os::unix::fs::symlink(&real_root, &root).unwrap();
    let cause = refused("a symlinked delivery root");
    assert!(
        matches!(
            cause,
            DeliveryCause::UnsafeDirectory(UnsafeDir::NotADirectory { .. })
        ),
        "{cause:?}"
    );
    assert_eq!(std::fs::read_dir(&real_root).unwrap().count(), 0);
    std::fs::remove_file(&root).unwrap();
    std::fs::rename(&real_root, &root).unwrap();
    // A directory others may write.
    std::fs::create_dir(&own).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cause = refused("a world-writable directory");
    assert!(
        matches!(
            cause,
            DeliveryCause::UnsafeDirectory(UnsafeDir::Writable { .. })
        ),
        "{cause:?}"
    );
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A directory someone else owns (CI runs as root, which can hand it to nobody).
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::chown(&own, Some(65534), Some(65534)).unwrap();
        let cause = refused("a foreign directory");
        assert!(
            matches!(
                cause,
                DeliveryCause::UnsafeDirectory(UnsafeDir::Owner { owner: 65534, .. })
            ),
            "{cause:?}"
        );
        std::os::unix::fs::chown(&own, Some(0), Some(0)).unwrap();
    }
    assert_eq!(
        std::fs::read_dir(&own).unwrap().count(),
        0,
        "no file was left behind"
    );
    deliver_files(&report, &root).unwrap().commit();
    assert_eq!(std::fs::read_to_string(own.join("foo")).unwrap(), "world");
}

#[tokio::test]
async fn a_failed_delivery_puts_back_the_previous_files_and_clears_crash_leftovers() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher, OpenBaoOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("out");
    let own = root.join("bank-a");
    let (foo, blocked) = (own.join("foo"), own.join("zzz"));
    let report = bank_a_report(&launcher, &bao, dir.path(), &[foo.clone(), blocked.clone()]).await;
    std::fs::create_dir_all(blocked.join("in-the-way")).unwrap();
    // Private whatever the umask: delivery refuses directories others may write.
    use std::os::unix::fs::PermissionsExt;
    for private in [&root, &own] {
        std::fs::set_permissions(private, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    std::fs::write(&foo, "previous").unwrap();
    // A crashed run's staged copy.
    for leftover in [
        ".attestgate-foo-00000000deadbeef.tmp",
        ".attestgate-zzz-00000000deadbeef.bak",
    ] {
        std::fs::write(own.join(leftover), "stale secret").unwrap();
    }
    let err = deliver_files(&report, &root)
        .err()
        .expect("zzz is a directory");
    assert_eq!(err.path, blocked, "{err}");
    assert_eq!(
        std::fs::read_to_string(&foo).unwrap(),
        "previous",
        "the old file is back"
    );
    let names: Vec<String> = std::fs::read_dir(&own)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with(".attestgate-")),
        "no staged, backup or leftover copy remains: {names:?}"
    );
    std::fs::remove_dir_all(&blocked).unwrap();
    let delivered = deliver_files(&report, &root).unwrap().commit();
    assert_eq!(delivered.paths().count(), 2);
    assert_eq!(std::fs::read_to_string(&foo).unwrap(), "world");
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(&blocked).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!(meta.uid(), rustix::process::geteuid().as_raw());
    assert_eq!(
        std::fs::read_dir(&own).unwrap().count(),
        2,
        "only the two secrets"
    );
}

#[tokio::test]
async fn exec_checks_everything_before_delivering_anything() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start().await;
    bao.setup_collaborator(
        &launcher.info().jwks_url,
        "bank-a",
        corrected_role(),
        &[(
            "message",
            json!({"foo": "world", "nul": "a\u{0}b", "huge": "x".repeat(200_000)}),
        )],
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out/bank-a/foo");
    let foo = || Secret::at("kv/data/message").field("foo").file(&file);
    // `exec` of `program` with bank-a's file and `extra`, refused before anything is delivered:
    // its stderr.
    let refused = |extra: Option<Secret>, program: &'static str, env: &'static [(&str, &str)]| {
        let mut bank_a = bank_a_at(&bao).secret(foo());
        if let Some(extra) = extra {
            bank_a = bank_a.secret(extra);
        }
        let config = config(dir.path(), &launcher).collaborator(bank_a).write();
        let file = &file;
        async move {
            let config = config.to_str().unwrap();
            let out = attestgate_async(&["exec", "--config", config, "--", program], env).await;
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_ne!(out.status.code(), Some(0), "{stderr}");
            assert!(!file.exists(), "nothing was delivered: {stderr}");
            stderr
        }
    };
    let env_secret = |field: &str, variable: &str| {
        Some(Secret::at("kv/data/message").field(field).env(variable))
    };
    let stderr = refused(env_secret("nul", "BANK_A_NUL"), "true", &[]).await;
    assert!(
        stderr.contains("BANK_A_NUL") && stderr.contains("NUL byte"),
        "{stderr}"
    );
    // A value too long for any process's environment: refused before anything is delivered,
    // not an `execve` failure after.
    let stderr = refused(env_secret("huge", "BANK_A_HUGE"), "true", &[]).await;
    assert!(
        stderr.contains("BANK_A_HUGE") && stderr.contains("131072 bytes"),
        "{stderr}"
    );
    let stderr = refused(None, "/nonexistent/workload", &[]).await;
    assert!(stderr.contains("no such executable"), "{stderr}");
    // A collaborator may add variables to the workload's environment, never replace one the
    // operator set.
    let operators = &[("BANK_A_FOO", "the operator's")];
    let stderr = refused(env_secret("foo", "BANK_A_FOO"), "true", operators).await;
    assert!(
        stderr.contains("BANK_A_FOO is already set in the workload's environment"),
        "{stderr}"
    );
    assert!(!stderr.contains("world"), "{stderr}");
}

#[tokio::test]
async fn plain_http_needs_the_operators_opt_in() {
    let launcher = TestLauncher::start().await;
    let dir = tempfile::tempdir().unwrap();
    let capture = CaptureServer::start(400, "{}").await;
    let config = config(dir.path(), &launcher)
        .allow_plain_http(false)
        .collaborator(mallory(&capture, "https://vault.mallory.example"))
        .write();
    let err = Config::load(&config).unwrap_err();
    for key in [
        "collaborator[0] (mallory).vault.address",
        "attestation.jwks_url",
    ] {
        assert!(
            err.problems
                .iter()
                .any(|p| p.key == key && p.message.contains("allow_plain_http")),
            "{key}: {err}"
        );
    }
}

#[tokio::test]
async fn a_production_build_without_the_dev_launcher_runs_the_exchange() {
    // ./tests/run.sh builds it (`cargo build --no-default-features --features engine`) and says where.
    let Ok(bin) = std::env::var("ATTESTGATE_NODEV_BIN") else {
        eprintln!("SKIPPED: ATTESTGATE_NODEV_BIN is not set; ./tests/run.sh sets it");
        return;
    };
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher, OpenBaoOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out/bank-a/foo");
    let config = config(dir.path(), &launcher)
        .collaborator(
            bank_a_at(&bao).secret(Secret::at("kv/data/message").field("foo").file(&file)),
        )
        .write();
    let bin = PathBuf::from(bin);
    let out = run_binary_async(
        &bin,
        &["exchange", "--config", config.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "world");
    // And the dev launcher is not in it.
    let dev = run_binary_async(
        &bin,
        &["dev", "launcher", "--dir", dir.path().to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(dev.status.code(), Some(2), "an unknown subcommand");
}

/// A collaborator whose rules are written in JavaScript completes an exchange against a real
/// OpenBao: the language changes nothing in the exchange. The component is loaded from its
/// precompiled artifact, as a production image would. The same rules deny a collaborator whose
/// project they do not list, before any login.
#[tokio::test]
async fn a_javascript_plugin_collaborator_completes_an_exchange() {
    exchange_with_scripted_plugin(ScriptedPlugin::JavaScript).await;
}

/// The same for a collaborator whose rules are written in Python (a CPython inside).
#[tokio::test]
async fn a_python_plugin_collaborator_completes_an_exchange() {
    exchange_with_scripted_plugin(ScriptedPlugin::Python).await;
}

/// `plugin`'s confidential-space rules for bank-a: allowed with its project listed (its secret
/// released), denied at the policy step without it.
async fn exchange_with_scripted_plugin(plugin: ScriptedPlugin) {
    let launcher = TestLauncher::start().await;
    let bank_a = bank_a_vault(&launcher, OpenBaoOptions::default()).await;
    let wasm = scripted_plugin(plugin);
    let artifact = precompiled(&wasm);
    let dir = tempfile::tempdir().unwrap();
    let allowed = config_with_project(
        dir.path(),
        &launcher,
        &wasm,
        &artifact,
        &bank_a,
        "operator-project",
    );
    let report = run(&allowed).await;
    assert_succeeded(&report);
    let released = report.outcomes[0].result.as_ref().unwrap();
    assert!(
        released.policies.contains(&"bank-a-secrets".to_owned()),
        "{plugin:?}: {:?}",
        released.policies
    );
    let denied = config_with_project(
        dir.path(),
        &launcher,
        &wasm,
        &artifact,
        &bank_a,
        "other-project",
    );
    let report = run(&denied).await;
    let error = report.failures().next().expect("the plugin denies");
    assert!(matches!(error.step, Step::Policy), "{plugin:?}: {error}");
    assert!(
        cause(error).contains("/submods/gce/project_id"),
        "{}",
        cause(error)
    );
}

fn config_with_project(
    dir: &Path,
    launcher: &TestLauncher,
    wasm: &Path,
    artifact: &attestgate::plugin::Precompiled,
    bao: &OpenBao,
    project: &str,
) -> PathBuf {
    let dir = dir.join(project);
    std::fs::create_dir_all(&dir).unwrap();
    config(&dir, launcher)
        .trust_precompiled()
        .collaborator(
            Collaborator::with_plugin_file("bank-a", wasm)
                .audience(BANK_A)
                .plugin_compiled(&artifact.path, &artifact.sha256)
                .plugin_config_file(
                    json!({"audience": BANK_A, "vault_role": "bank-a", "projects": [project]}),
                )
                .vault(Vault::from(bao).role("bank-a")),
        )
        .write()
}
