//! Many collaborators: one exchange with twenty, sharing three plugins (bound-claims,
//! confidential-space, cel-role) and three OpenBao servers. Every one gets its own secret, the
//! plugins are compiled once each, and the pooling allocator's sizing holds (no fallback).

use crate::harness::config::{Collaborator, ConfigBuilder, Secret, Vault};
use crate::harness::launcher::TestLauncher;
use crate::harness::openbao::OpenBao;
use crate::harness::{attestgate_bin, corrected_role, target_dir, workspace_root};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::{Duration, Instant};

const COLLABORATORS: usize = 20;

fn audience(name: &str) -> String {
    format!("https://vault.{name}.example")
}

/// The example CEL role, bound to the dev launcher's image and service account.
fn cel_role(name: &str) -> Value {
    let text =
        std::fs::read_to_string(workspace_root().join("examples/cel/confidential-space-role.json"))
            .unwrap()
            .replace(
                "sha256:3c5e0d8a6b1f4e2d9c7a8b6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d",
                attestgate::dev::production_claims()["submods"]["container"]["image_digest"]
                    .as_str()
                    .unwrap(),
            )
            .replace(
                "workload-sa@operator-project.iam.gserviceaccount.com",
                "operator-svc-account@operator-project.iam.gserviceaccount.com",
            )
            .replace("'analytics-secrets'", &format!("'{name}-secrets'"));
    let mut role: Value = serde_json::from_str(&text).unwrap();
    role["name"] = json!(name);
    role["bound_audiences"] = json!([audience(name)]);
    role
}

#[tokio::test]
async fn an_exchange_with_twenty_collaborators_on_three_vaults_delivers_each_its_own() {
    let launcher = TestLauncher::start().await;
    let servers = [
        OpenBao::start().await,
        OpenBao::start().await,
        OpenBao::start().await,
    ];
    for bao in &servers {
        for (path, body) in [
            ("sys/auth/jwt", json!({"type": "jwt"})),
            (
                "auth/jwt/config",
                json!({"jwks_url": launcher.info().jwks_url, "bound_issuer": attestgate::attestation::GOOGLE_ISSUER}),
            ),
            (
                "sys/mounts/kv",
                json!({"type": "kv", "options": {"version": "2"}}),
            ),
        ] {
            let (status, response) = bao.write(path, body).await;
            assert!(status < 300, "{path}: {response}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut builder = ConfigBuilder::local(dir.path(), launcher.info())
        .delivery_root(&out)
        .deadline("60s");
    let mut plugins_used = [0usize; 3];
    for index in 0..COLLABORATORS {
        let name = format!("c{index:02}");
        let bao = &servers[index % servers.len()];
        let secret = format!("secret-of-{name}");
        // KV v2 upgrades a new mount in the background: retried within a deadline.
        crate::harness::wait_for(
            &format!("{name}'s secret"),
            Duration::from_secs(30),
            || async {
                let (status, _) = bao
                    .write(&format!("kv/data/{name}"), json!({"data": {"v": secret}}))
                    .await;
                (status < 300).then_some(())
            },
        )
        .await;
        let policy = format!("path \"kv/data/{name}\" {{ capabilities = [\"read\"] }}");
        let (status, body) = bao
            .write(
                &format!("sys/policies/acl/{name}-secrets"),
                json!({"policy": policy}),
            )
            .await;
        assert!(status < 300, "{body}");
        let mut role = corrected_role();
        role["bound_audiences"] = json!([audience(&name)]);
        role["token_policies"] = json!([format!("{name}-secrets")]);
        let file = out.join(&name).join("v");
        let collaborator = match index % 5 {
            // Two in five: the role itself, with bound-claims.
            0 | 1 => {
                plugins_used[0] += 1;
                let (status, body) = bao
                    .write(&format!("auth/jwt/role/{name}"), role.clone())
                    .await;
                assert!(status < 300, "{body}");
                Collaborator::bound_claims(&name, role).vault(Vault::from(bao).role(&name))
            }
            // Two in five: the confidential-space rules.
            2 | 3 => {
                plugins_used[1] += 1;
                let (status, body) = bao.write(&format!("auth/jwt/role/{name}"), role).await;
                assert!(status < 300, "{body}");
                Collaborator::new(&name, "confidential-space")
                    .audience(&audience(&name))
                    .plugin_config(json!({"audience": audience(&name), "vault_role": name, "projects": ["operator-project"]}))
                    .vault(Vault::from(bao))
            }
            // One in five: an OpenBao CEL role, the same JSON in the plugin and in OpenBao.
            _ => {
                plugins_used[2] += 1;
                let cel = cel_role(&name);
                let (status, body) = bao
                    .write(&format!("auth/jwt/cel/role/{name}"), cel.clone())
                    .await;
                assert!(status < 300, "{body}");
                // The CEL interpreter's validation parses the program twice: a collaborator
                // with heavy rules sets its deadline (README, "The sandbox"), the more so with
                // twenty plugins loading at once on two cores.
                Collaborator::new(&name, "cel-role")
                    .audience(&audience(&name))
                    .plugin_config(cel)
                    .raw("limits = { deadline_ms = 2000 }")
                    .vault(Vault::from(bao).role(&name).role_kind("cel"))
            }
        };
        builder = builder.collaborator(
            collaborator.secret(
                Secret::at(&format!("kv/data/{name}"))
                    .field("v")
                    .file(&file),
            ),
        );
    }
    let config = builder.write();

    // The binary, as in production; its peak resident set read from /proc while it runs.
    let started = Instant::now();
    let mut child = std::process::Command::new(attestgate_bin())
        .args(["exchange", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    let mut poll = tokio::time::interval(Duration::from_millis(10));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Ok(text) = std::fs::read_to_string(&status_path) {
            if let Some(hwm) = text
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(hwm);
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the exchange hangs"
        );
        poll.tick().await;
    };
    let took = started.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(
        !stderr.contains("pooling allocator unavailable"),
        "the pool must hold twenty collaborators: {stderr}"
    );
    for index in 0..COLLABORATORS {
        let name = format!("c{index:02}");
        assert_eq!(
            std::fs::read_to_string(out.join(&name).join("v")).unwrap(),
            format!("secret-of-{name}"),
            "{name} got its own secret"
        );
    }
    let summary = format!(
        "{COLLABORATORS} collaborators (bound-claims x{}, confidential-space x{}, cel-role x{}) on 3 OpenBao servers: \
         one exchange (the binary, debug build) in {:.2} s, peak RSS {:.1} MB",
        plugins_used[0],
        plugins_used[1],
        plugins_used[2],
        took.as_secs_f64(),
        peak_kib as f64 / 1024.0
    );
    println!("{summary}");
    let _ = std::fs::write(
        target_dir().join("twenty-collaborators.txt"),
        format!("{summary}\n"),
    );
}
