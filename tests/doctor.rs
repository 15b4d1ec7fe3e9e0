//! `attestgate vault doctor` against real OpenBao: its predictions must be OpenBao's answers,
//! login for login (allow or deny, the message, the policies and the metadata); a role read
//! from a running OpenBao over TLS, in a namespace, is diagnosed like its file; `--fix` turns
//! the seed's role into one OpenBao accepts and logs a production-shaped token in with; and
//! `vault role --from-plugin-config` writes a role that decides as the plugin does.

use crate::harness::capture::{Answer, CaptureServer};
use crate::harness::launcher::TestLauncher;
use crate::harness::openbao::{OpenBao, OpenBaoOptions};
use crate::harness::plugins::{engine, plugin_spec};
use crate::harness::{attestgate, example_role, patched, target_dir};
use attestgate::attestation::unix_now;
use attestgate::dev::SigningKey;
use attestgate::doctor::{detect_kind, Role};
use attestgate::plugin::FailureKind;
use attestgate_vault_role::lint::AuthConfig;
use attestgate_vault_role::{Decision, Prediction};
use serde_json::{json, Map, Value};

const AUDIENCE: &str = "https://vault.bank-a.example";

/// The seed's role with its audience, bound to the dev launcher's production claims, and
/// corrected: the base every trap is added to.
fn corrected() -> Value {
    example_role("seed-role-corrected.json")
}

/// The seed's traps, each a change to a corrected role: (name, change).
type Trap = (&'static str, fn(&mut Value));

const TRAPS: &[Trap] = &[
    ("claims_mappings typo", |role| {
        let mappings = role
            .as_object_mut()
            .unwrap()
            .remove("claim_mappings")
            .unwrap();
        role["claims_mappings"] = mappings;
    }),
    ("digest with a trailing space", |role| {
        role["bound_claims"]["/submods/container/image_digest"] =
            json!(["sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646 "]);
    }),
    ("list claims mapped", |role| {
        let key = if role.get("claim_mappings").is_some() {
            "claim_mappings"
        } else {
            "claims_mappings"
        };
        let mappings = &mut role[key];
        mappings["/submods/confidential_space/support_attributes"] = json!("support_attributes");
        mappings["google_service_accounts"] = json!("service_accounts");
    }),
    ("bound_subject pinned", |role| {
        role["bound_subject"] = json!("https://www.googleapis.com/compute/v1/projects/operator-project/zones/us-central1-a/instances/workload-vm");
    }),
];

/// Roles beyond the seed's traps: globs, numbers and booleans in bound claims, policy rules,
/// user claims, and roles OpenBao refuses to store.
fn other_roles() -> Vec<(&'static str, Value)> {
    let base = corrected();
    vec![
        (
            "glob project",
            patched(
                base.clone(),
                &json!({"bound_claims_type": "glob", "bound_claims": {"/submods/gce/project_id": "operator-*"}}),
            ),
        ),
        (
            "glob that misses",
            patched(
                base.clone(),
                &json!({"bound_claims_type": "glob", "bound_claims": {"/submods/gce/project_id": "*-other"}}),
            ),
        ),
        (
            "number bound",
            patched(base.clone(), &json!({"bound_claims": {"oemid": 11129}})),
        ),
        (
            "number bound as a string",
            patched(base.clone(), &json!({"bound_claims": {"oemid": "11129"}})),
        ),
        (
            "boolean bound",
            patched(
                base.clone(),
                &json!({"bound_claims": {"secboot": true, "/submods/confidential_space/monitoring_enabled/memory": false}}),
            ),
        ),
        (
            "object bound",
            patched(
                base.clone(),
                &json!({"bound_claims": {"/submods/gce": "x"}}),
            ),
        ),
        (
            "legacy policies, no default",
            patched(
                base.clone(),
                &json!({"token_policies": null, "policies": ["Zeta", "alpha"], "token_no_default_policy": true}),
            ),
        ),
        (
            "list user claim",
            patched(base.clone(), &json!({"user_claim": "swversion"})),
        ),
        (
            "missing user claim",
            patched(base.clone(), &json!({"user_claim": "eat_nonce"})),
        ),
        (
            "no audiences",
            patched(base.clone(), &json!({"bound_audiences": null})),
        ),
        (
            "two audiences",
            patched(
                base.clone(),
                &json!({"bound_audiences": ["https://other.example", AUDIENCE]}),
            ),
        ),
        (
            "groups: a list",
            patched(
                base.clone(),
                &json!({"groups_claim": "google_service_accounts"}),
            ),
        ),
        (
            "groups: a string",
            patched(base.clone(), &json!({"groups_claim": "hwmodel"})),
        ),
        (
            "groups: a number",
            patched(base.clone(), &json!({"groups_claim": "oemid"})),
        ),
        (
            "groups: a boolean",
            patched(base.clone(), &json!({"groups_claim": "secboot"})),
        ),
        (
            "groups: an object",
            patched(base.clone(), &json!({"groups_claim": "/submods/gce"})),
        ),
        (
            "groups: a list with numbers",
            patched(base.clone(), &json!({"groups_claim": "swversion"})),
        ),
        (
            "groups: sometimes missing",
            patched(base.clone(), &json!({"groups_claim": "eat_nonce"})),
        ),
        (
            "root policy",
            patched(base.clone(), &json!({"token_policies": ["root"]})),
        ),
        (
            "ROOT policy",
            patched(base.clone(), &json!({"token_policies": ["ROOT", "b"]})),
        ),
        (
            "policies unsorted",
            patched(
                base.clone(),
                &json!({"token_policies": ["Zeta", "alpha", "zeta", "default"]}),
            ),
        ),
        (
            "refused: no user claim",
            patched(base.clone(), &json!({"user_claim": null})),
        ),
        (
            "refused: metadata key role",
            patched(
                base.clone(),
                &json!({"claim_mappings": {"hwmodel": "role"}}),
            ),
        ),
        (
            "refused: no role_type",
            patched(base.clone(), &json!({"role_type": null})),
        ),
        (
            "refused: glob of a number",
            patched(
                base,
                &json!({"bound_claims_type": "glob", "bound_claims": {"oemid": 5}}),
            ),
        ),
    ]
}

/// Claim sets: production claims and mutations of each thing a role checks, alone and in
/// pseudo-random combinations. `now` is when the logins happen.
fn claim_sets(issuer: &str, now: i64) -> Vec<(String, Value)> {
    let mutations: Vec<(&str, Value)> = vec![
        ("hwmodel", json!({"hwmodel": "GCP_INTEL_TDX"})),
        (
            "debug image",
            json!({"dbgstat": "enabled", "submods": {"confidential_space": {"support_attributes": null}}}),
        ),
        (
            "digest",
            json!({"submods": {"container": {"image_digest": format!("sha256:{}", "0".repeat(64))}}}),
        ),
        (
            "no project",
            json!({"submods": {"gce": {"project_id": null}}}),
        ),
        (
            "project",
            json!({"submods": {"gce": {"project_id": "operator-attacker"}}}),
        ),
        (
            "service account",
            json!({"google_service_accounts": ["x@attacker.iam.gserviceaccount.com"]}),
        ),
        (
            "sub",
            json!({"sub": "https://www.googleapis.com/compute/v1/projects/operator-project/zones/us-central1-a/instances/other-vm"}),
        ),
        ("aud", json!({"aud": "https://vault.bank-b.example"})),
        (
            "aud list",
            json!({"aud": ["https://vault.bank-b.example", AUDIENCE]}),
        ),
        ("issuer", json!({"iss": format!("{issuer}/")})),
        (
            "expired",
            json!({"exp": now - 600, "iat": now - 4200, "nbf": now - 4200}),
        ),
        ("not yet valid", json!({"nbf": now + 600})),
        (
            "issued in the future",
            json!({"iat": now + 600, "nbf": now - 10}),
        ),
        ("no exp", json!({"exp": null})),
        ("oemid", json!({"oemid": 11130.7})),
        (
            "nonces",
            json!({"eat_nonce": ["0123456789abcdef", "fedcba9876543210"]}),
        ),
        ("one nonce", json!({"eat_nonce": "0123456789abcdef"})),
        (
            "numbers in a list",
            json!({"swversion": [260600, "260600"]}),
        ),
        ("expired, within the clock skew", json!({"exp": now - 30})),
        ("expired, past the clock skew", json!({"exp": now - 90})),
        (
            "not yet valid, within the clock skew",
            json!({"nbf": now + 30}),
        ),
        (
            "issued in the future, within the clock skew",
            json!({"iat": now + 30, "nbf": now - 10}),
        ),
    ];
    let base = patched(
        attestgate::dev::production_claims(),
        &json!({"iss": issuer, "aud": AUDIENCE, "iat": now - 10, "nbf": now - 10, "exp": now + 3600}),
    );
    let mut sets = vec![("production".to_owned(), base.clone())];
    for (name, patch) in &mutations {
        sets.push((name.to_string(), patched(base.clone(), patch)));
    }
    // Combinations, from a fixed-seed generator: several failures at once are where OpenBao's
    // map order shows.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..24 {
        let mut claims = base.clone();
        let mut names = Vec::new();
        for (name, patch) in &mutations {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            if (state >> 33).is_multiple_of(4) {
                claims = patched(claims, patch);
                names.push(*name);
            }
        }
        sets.push((names.join(" + "), claims));
    }
    sets
}

/// Whether OpenBao's answer is the prediction; `None` if it is, else the difference.
fn compare(prediction: &Prediction, status: u16, body: &Value) -> Option<String> {
    match &prediction.decision {
        Decision::Allow { policies, metadata } => {
            if status != 200 {
                return Some(format!("predicted allow, OpenBao said {status} {body}"));
            }
            let auth = &body["auth"];
            // OpenBao answers `null` for an empty metadata map.
            let answered = match &auth["metadata"] {
                Value::Null => json!({}),
                other => other.clone(),
            };
            if auth["policies"] != json!(policies) || answered != json!(metadata) {
                return Some(format!(
                    "predicted policies {policies:?} metadata {metadata:?}, OpenBao gave {} {}",
                    auth["policies"], auth["metadata"]
                ));
            }
            None
        }
        Decision::Deny { messages } => {
            let error = body["errors"][0].as_str().unwrap_or_default();
            if status == 400 && messages.iter().any(|m| m == error) {
                None
            } else {
                Some(format!(
                    "predicted deny {messages:?}, OpenBao said {status} {body}"
                ))
            }
        }
    }
}

/// Every role (each trap alone and in combination, on a mount whose `bound_issuer` is right
/// and on one where it has the seed's trailing slash, and the other roles), written to OpenBao
/// and logged in with every claim set: the prediction must be OpenBao's answer every time.
#[tokio::test]
async fn the_doctor_predicts_every_classic_login_as_openbao_answers_it() {
    let launcher = TestLauncher::start().await;
    let key = SigningKey::load_or_create(&launcher.dir.path().join("signing-key.pem")).unwrap();
    let issuer = launcher.info().issuer.clone();
    let bao = OpenBao::start().await;
    let mounts = [("jwt", issuer.clone()), ("jwt-slash", format!("{issuer}/"))];
    let mut configs = Vec::new();
    for (mount, bound_issuer) in &mounts {
        let (status, body) = bao
            .write(&format!("sys/auth/{mount}"), json!({"type": "jwt"}))
            .await;
        assert!(status < 300, "{body}");
        let config = json!({"jwks_url": launcher.info().jwks_url, "bound_issuer": bound_issuer});
        let (status, body) = bao
            .write(&format!("auth/{mount}/config"), config.clone())
            .await;
        assert!(status < 300, "{body}");
        configs.push(AuthConfig::from_json(config.as_object().unwrap()));
    }

    let mut roles: Vec<(String, &str, usize, Value)> = Vec::new();
    for mask in 0..(1 << TRAPS.len()) {
        let mut role = corrected();
        let names: Vec<&str> = TRAPS
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, (name, trap))| {
                trap(&mut role);
                *name
            })
            .collect();
        for (index, (mount, _)) in mounts.iter().enumerate() {
            let mut label = names.join(" + ");
            if index == 1 {
                label.push_str(" + bound_issuer trailing slash");
            }
            roles.push((label, mount, index, role.clone()));
        }
    }
    for (name, role) in other_roles() {
        roles.push((name.to_owned(), "jwt", 0, role));
    }

    let now = unix_now();
    let tokens: Vec<(String, String, Value)> = claim_sets(&issuer, now)
        .into_iter()
        .map(|(name, claims)| (name, key.sign(Map::new(), &claims).unwrap(), claims))
        .collect();

    let (mut writes, mut writes_agree, mut logins, mut logins_agree, mut several) = (0, 0, 0, 0, 0);
    let mut disagreements = Vec::new();
    for (index, (label, mount, config, role_json)) in roles.iter().enumerate() {
        let role_name = format!("r{index}");
        let (status, body) = bao
            .write(&format!("auth/{mount}/role/{role_name}"), role_json.clone())
            .await;
        let map = role_json.as_object().unwrap();
        let role = Role::parse(detect_kind(map), map).unwrap();
        let Role::Jwt(jwt_role) = &role else {
            unreachable!()
        };
        writes += 1;
        let refusal = jwt_role.write_refusal();
        let openbao_refusal =
            (status >= 300).then(|| body["errors"][0].as_str().unwrap_or_default().to_owned());
        if refusal != openbao_refusal {
            disagreements.push(format!(
                "{label}: predicted refusal {refusal:?}, OpenBao {status} {body}"
            ));
            continue;
        }
        writes_agree += 1;
        if refusal.is_some() {
            continue;
        }
        for (claims_name, jwt, claims) in &tokens {
            logins += 1;
            let prediction = role
                .predict(&role_name, Some(&configs[*config]), claims, unix_now())
                .unwrap();
            several += usize::from(prediction.messages().len() > 1);
            let (status, body) = bao
                .login_at(&format!("auth/{mount}/login"), &role_name, jwt)
                .await;
            match compare(&prediction, status, &body) {
                None => logins_agree += 1,
                Some(difference) => {
                    disagreements.push(format!("{label} / {claims_name}: {difference}"))
                }
            }
        }
    }
    let summary = format!(
        "vault doctor against OpenBao, classic roles ({} roles x {} claim sets):\n\
         \x20 store or refuse:          {writes_agree}/{writes} agree ({:.1}%)\n\
         \x20 login answer (decision, message, policies, metadata): {logins_agree}/{logins} agree ({:.1}%)\n\
         \x20 denials with several possible messages (Go map order): {several}",
        roles.len(),
        tokens.len(),
        100.0 * writes_agree as f64 / writes as f64,
        100.0 * logins_agree as f64 / logins.max(1) as f64,
    );
    println!("{summary}");
    let _ = std::fs::write(target_dir().join("doctor-differential.txt"), &summary);
    assert!(logins > 1000, "the differential ran {logins} logins");
    assert!(
        several > 0,
        "some denials must have several possible messages"
    );
    assert!(
        disagreements.is_empty(),
        "{} disagreements:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}

/// CEL roles through the doctor's prediction (time checks, issuer and audience included): the
/// project's example role, the same with the dev image's digest, and one that returns `true`.
#[tokio::test]
async fn the_doctor_predicts_cel_logins_as_openbao_answers_them() {
    let launcher = TestLauncher::start().await;
    let key = SigningKey::load_or_create(&launcher.dir.path().join("signing-key.pem")).unwrap();
    let issuer = launcher.info().issuer.clone();
    let bao = OpenBao::start().await;
    bao.enable_jwt_auth(&launcher.info().jwks_url, &issuer)
        .await;
    let config = AuthConfig::from_json(json!({"bound_issuer": issuer}).as_object().unwrap());

    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::harness::workspace_root().join("examples/cel/confidential-space-role.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let dev_digest =
        attestgate::dev::production_claims()["submods"]["container"]["image_digest"].clone();
    let text = example.to_string().replace(
        "sha256:3c5e0d8a6b1f4e2d9c7a8b6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d",
        dev_digest.as_str().unwrap(),
    );
    let for_dev: Value = serde_json::from_str(&text).unwrap();
    let roles = [
        example,
        for_dev.clone(),
        patched(
            for_dev.clone(),
            &json!({"cel_program": {"expression": "claims.hwmodel == 'GCP_AMD_SEV'"}}),
        ),
        patched(
            for_dev.clone(),
            &json!({"cel_program": {"expression": "pb.Auth{policies: ['b', 'A', 'a'], metadata: {'k': claims.hwmodel}}"}}),
        ),
        patched(
            for_dev,
            &json!({"cel_program": {"expression": "pb.Auth{policies: ['root']}"}}),
        ),
    ];
    let now = unix_now();
    let (mut logins, mut agree) = (0, 0);
    let mut disagreements = Vec::new();
    for (index, role_json) in roles.iter().enumerate() {
        let name = format!("c{index}");
        let (status, body) = bao
            .write(&format!("auth/jwt/cel/role/{name}"), role_json.clone())
            .await;
        assert!(status < 300, "{body}");
        let map = role_json.as_object().unwrap();
        let role = Role::parse(detect_kind(map), map).unwrap();
        for (claims_name, claims) in claim_sets(&issuer, now) {
            let jwt = key.sign(Map::new(), &claims).unwrap();
            let prediction = role
                .predict(&name, Some(&config), &claims, unix_now())
                .unwrap();
            let (status, body) = bao.cel_login(&name, &jwt).await;
            logins += 1;
            match compare(&prediction, status, &body) {
                None => agree += 1,
                Some(d) => disagreements.push(format!("{name} / {claims_name}: {d}")),
            }
        }
    }
    println!("vault doctor against OpenBao, CEL roles: {agree}/{logins} logins agree");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

fn write_json(dir: &std::path::Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
    path.to_string_lossy().into_owned()
}

fn stdout_json(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// `vault doctor --role ROLE --auth-config CONFIG --token TOKEN --format json`: its output and
/// the report.
async fn doctor_with_token(
    role: &str,
    config: &str,
    token: &std::path::Path,
) -> (std::process::Output, Value) {
    let output = crate::harness::attestgate_async(
        &[
            "vault",
            "doctor",
            "--role",
            role,
            "--auth-config",
            config,
            "--token",
            token.to_str().unwrap(),
            "--format",
            "json",
        ],
        &[],
    )
    .await;
    let report = stdout_json(&output);
    (output, report)
}

/// `--fix` on the seed's role as written: OpenBao stores the result, and a production-shaped
/// token from the dev launcher logs in with it, as the doctor predicted from the token itself
/// (signature checked against the launcher's keys).
#[tokio::test]
async fn the_fixed_seed_role_is_stored_by_openbao_and_logs_a_production_token_in() {
    let launcher = TestLauncher::start().await;
    let dir = tempfile::tempdir().unwrap();
    let seed = crate::harness::workspace_root().join("examples/roles/seed-role-as-written.json");
    let fixed = crate::harness::attestgate_async(
        &["vault", "doctor", "--role", seed.to_str().unwrap(), "--fix"],
        &[],
    )
    .await;
    assert_eq!(
        fixed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    let role = stdout_json(&fixed);

    let bao = OpenBao::start().await;
    bao.enable_jwt_auth(&launcher.info().jwks_url, &launcher.info().issuer)
        .await;
    let (status, body) = bao.write("auth/jwt/role/bank-a", role.clone()).await;
    assert!(status < 300, "OpenBao refuses the fixed role: {body}");

    let token = launcher.token(AUDIENCE).await;
    let token_file = dir.path().join("token.jwt");
    std::fs::write(&token_file, &token).unwrap();
    let config =
        json!({"jwks_url": launcher.info().jwks_url, "bound_issuer": launcher.info().issuer});
    let config_file = write_json(dir.path(), "config.json", &config);
    let role_file = write_json(dir.path(), "bank-a.json", &role);
    let (diagnosis, report) = doctor_with_token(&role_file, &config_file, &token_file).await;
    assert_eq!(report["prediction"]["allow"], json!(true), "{report:#}");

    let (status, body) = bao.jwt_login("bank-a", &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["auth"]["policies"], report["prediction"]["policies"]);
    assert_eq!(body["auth"]["metadata"], report["prediction"]["metadata"]);
    // The only error left is the dev launcher's keys, which a production role must not trust.
    let errors: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0]["key"], "jwks_url");
    assert_eq!(diagnosis.status.code(), Some(1));

    // A token signed by another key: the signature check fails first, in OpenBao's words.
    let forged = SigningKey::load_or_create(&dir.path().join("other-key.pem"))
        .unwrap()
        .sign(Map::new(), &crate::harness::payload(&token))
        .unwrap();
    std::fs::write(&token_file, &forged).unwrap();
    let (_, report) = doctor_with_token(&role_file, &config_file, &token_file).await;
    let (status, body) = bao.jwt_login("bank-a", &forged).await;
    assert_eq!(status, 400);
    assert_eq!(report["prediction"]["allow"], json!(false));
    assert_eq!(
        report["prediction"]["message"], body["errors"][0],
        "{report:#}"
    );
}

/// `--vault-role` and `--vault` read the role and the mount's config from a running OpenBao over
/// TLS with a private CA, inside a namespace, with the VAULT_* variables; the role read back has
/// lost the misspelled key, and the doctor still finds the digest's trailing space and the
/// issuer's trailing slash, and predicts the real login's answer.
#[tokio::test]
async fn the_doctor_reads_a_role_from_openbao_over_tls_in_a_namespace() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start_with(OpenBaoOptions {
        tls: true,
        ..OpenBaoOptions::default()
    })
    .await;
    let namespace = "bank-a";
    let ns = Some(namespace);
    let post = reqwest::Method::POST;
    for (path, body) in [(format!("sys/namespaces/{namespace}"), json!({}))] {
        let (status, response) = bao.api_in(None, post.clone(), &path, Some(body)).await;
        assert!(status < 300, "{path}: {response}");
    }
    let mut seed = example_role("seed-role-as-written.json");
    seed["bound_subject"] = json!(attestgate::dev::production_claims()["sub"]);
    for (path, body) in [
        ("sys/auth/jwt".to_owned(), json!({"type": "jwt"})),
        (
            "auth/jwt/config".to_owned(),
            json!({"jwks_url": launcher.info().jwks_url, "bound_issuer": format!("{}/", launcher.info().issuer)}),
        ),
        ("auth/jwt/role/seed".to_owned(), seed),
    ] {
        let (status, response) = bao.api_in(ns, post.clone(), &path, Some(body)).await;
        assert!(status < 300, "{path}: {response}");
    }
    let dir = tempfile::tempdir().unwrap();
    let token = launcher.token(AUDIENCE).await;
    let claims_file = write_json(dir.path(), "claims.json", &crate::harness::payload(&token));
    let ca = bao.ca_cert().unwrap();
    let env = [
        ("VAULT_ADDR", bao.addr.as_str()),
        ("VAULT_TOKEN", bao.root_token.as_str()),
        ("VAULT_CACERT", ca.to_str().unwrap()),
        ("VAULT_NAMESPACE", namespace),
    ];
    let output = crate::harness::attestgate_async(
        &[
            "vault",
            "doctor",
            "--vault-role",
            "seed",
            "--vault",
            "--claims",
            &claims_file,
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    assert_eq!(
        output.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = stdout_json(&output);
    let keys: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "error")
        .filter_map(|f| f["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"bound_claims./submods/container/image_digest"),
        "{keys:?}"
    );
    assert!(keys.contains(&"bound_issuer"), "{keys:?}");
    assert!(
        !keys.contains(&"claims_mappings"),
        "OpenBao dropped the key: {keys:?}"
    );

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&ca).unwrap()).unwrap())
        .build()
        .unwrap();
    let login: Value = client
        .post(format!("{}/v1/auth/jwt/login", bao.addr))
        .header("X-Vault-Namespace", namespace)
        .json(&json!({"role": "seed", "jwt": token}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report["prediction"]["allow"], json!(false));
    assert_eq!(
        report["prediction"]["message"], login["errors"][0],
        "{login}"
    );

    // Without VAULT_CACERT the private CA is not trusted: an operational error (exit 3).
    let output =
        crate::harness::attestgate_async(&["vault", "doctor", "--vault-role", "seed"], &env[..2])
            .await;
    assert_eq!(
        output.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `vault role --from-plugin-config` for a confidential-space configuration, classic and CEL:
/// the plugin inside the TEE, the doctor's prediction and a real OpenBao login decide every
/// claim set the same way.
#[tokio::test]
async fn the_role_from_a_plugin_config_decides_as_the_plugin_does() {
    let launcher = TestLauncher::start().await;
    let key = SigningKey::load_or_create(&launcher.dir.path().join("signing-key.pem")).unwrap();
    let issuer = launcher.info().issuer.clone();
    let bao = OpenBao::start().await;
    bao.enable_jwt_auth(&launcher.info().jwks_url, &issuer)
        .await;
    let config = AuthConfig::from_json(json!({"bound_issuer": issuer}).as_object().unwrap());
    let dev = attestgate::dev::production_claims();
    let rules = json!({
        "audience": AUDIENCE,
        "vault_role": "analytics",
        "hwmodels": ["GCP_AMD_SEV"],
        "swnames": ["CONFIDENTIAL_SPACE"],
        "image_digests": [dev["submods"]["container"]["image_digest"]],
        "projects": ["operator-project"],
        "service_accounts": dev["google_service_accounts"],
        "require_memory_monitoring_disabled": true
    });
    let with_minimum = patched(rules.clone(), &json!({"min_swversion": "260600"}));
    let dir = tempfile::tempdir().unwrap();
    let rules_file = write_json(dir.path(), "rules.json", &rules);
    let minimum_file = write_json(dir.path(), "minimum.json", &with_minimum);

    // A classic role cannot express a minimum swversion: refused, naming the rule.
    let refused = attestgate(
        &["vault", "role", "--from-plugin-config", &minimum_file],
        None,
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("min_swversion"));

    let cases = [
        (rules.clone(), rules_file.as_str(), false),
        (rules, rules_file.as_str(), true),
        (with_minimum, minimum_file.as_str(), true),
    ];
    let now = unix_now();
    let mut sets = claim_sets(&issuer, now);
    sets.push((
        "old image".into(),
        patched(sets[0].1.clone(), &json!({"swversion": ["250100"]})),
    ));
    sets.push((
        "monitored".into(),
        patched(
            sets[0].1.clone(),
            &json!({"submods": {"confidential_space": {"monitoring_enabled": {"memory": true}}}}),
        ),
    ));
    let (mut compared, mut disagreements) = (0, Vec::new());
    for (index, (rules, file, cel)) in cases.iter().enumerate() {
        let mut args = vec!["vault", "role", "--from-plugin-config", file];
        if *cel {
            args.push("--cel");
        }
        let output = attestgate(&args, None);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let role_json = stdout_json(&output);
        let name = format!("from-rules-{index}");
        let path = if *cel {
            format!("auth/jwt/cel/role/{name}")
        } else {
            format!("auth/jwt/role/{name}")
        };
        let (status, body) = bao.write(&path, role_json.clone()).await;
        assert!(
            status < 300,
            "OpenBao refuses the generated role: {body}\n{role_json:#}"
        );
        let map = role_json.as_object().unwrap();
        let role = Role::parse(detect_kind(map), map).unwrap();
        let plugin = engine()
            .load(&plugin_spec("confidential-space", rules.clone()))
            .unwrap();
        for (claims_name, claims) in &sets {
            // The plugin judges claims the host has verified; the time and issuer checks are
            // the verifier's, not the rules', so those claim sets are the doctor's and OpenBao's
            // business alone.
            let prediction = role
                .predict(&name, Some(&config), claims, unix_now())
                .unwrap();
            let jwt = key.sign(Map::new(), claims).unwrap();
            let (status, body) = if *cel {
                bao.cel_login(&name, &jwt).await
            } else {
                bao.jwt_login(&name, &jwt).await
            };
            if let Some(d) = compare(&prediction, status, &body) {
                disagreements.push(format!("{name} / {claims_name}: doctor vs OpenBao: {d}"));
            }
            let token_level = [
                "aud",
                "issuer",
                "expired",
                "not yet valid",
                "issued in the future",
            ];
            if claims_name
                .split(" + ")
                .any(|part| token_level.iter().any(|t| part.starts_with(t)))
            {
                continue;
            }
            compared += 1;
            let verdict = plugin
                .evaluate(&claims.to_string(), unix_now())
                .unwrap()
                .verdict;
            if verdict.allow != (status == 200) {
                disagreements.push(format!(
                    "{name} / {claims_name}: the plugin says {}, OpenBao {status} {body}",
                    verdict.allow
                ));
            }
        }
    }
    println!("vault role --from-plugin-config: {compared} claim sets compared with the plugin");
    assert!(compared >= 40, "{compared}");
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// The exit codes and the JSON document scripts rely on.
#[test]
fn the_doctors_exit_codes_and_json_are_stable() {
    let dir = tempfile::tempdir().unwrap();
    let seed = crate::harness::workspace_root().join("examples/roles/seed-role-as-written.json");
    let output = attestgate(
        &[
            "vault",
            "doctor",
            "--role",
            seed.to_str().unwrap(),
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let report = stdout_json(&output);
    assert_eq!(report["prediction"], Value::Null);
    let findings = report["findings"].as_array().unwrap();
    for finding in findings {
        for field in ["severity", "key", "message", "fix"] {
            assert!(finding[field].is_string(), "{finding}");
        }
    }
    let typo = findings
        .iter()
        .find(|f| f["key"] == "claims_mappings")
        .unwrap();
    assert_eq!(typo["severity"], "error");
    assert!(typo["fix"].as_str().unwrap().contains("claim_mappings"));

    // A clean role and production claims: exit 0 with an allow.
    let mut clean = corrected();
    clean["bound_claims"]["dbgstat"] = json!("disabled-since-boot");
    clean["token_ttl"] = json!("15m");
    clean["token_explicit_max_ttl"] = json!("1h");
    let role_file = write_json(dir.path(), "clean.json", &clean);
    let now = unix_now();
    let claims = patched(
        attestgate::dev::production_claims(),
        &json!({"iss": attestgate_vault_role::CONFIDENTIAL_SPACE_ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 3600}),
    );
    let claims_file = write_json(dir.path(), "claims.json", &claims);
    let output = attestgate(
        &[
            "vault",
            "doctor",
            "--role",
            &role_file,
            "--claims",
            &claims_file,
            "--format",
            "json",
        ],
        None,
    );
    let report = stdout_json(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(report["prediction"]["allow"], json!(true));
    assert_eq!(report["prediction"]["metadata"]["role"], json!("clean"));

    // The same claims an hour and a half later: expired, in OpenBao's words; exit 1.
    let at = (now + 5400).to_string();
    let output = attestgate(
        &[
            "vault",
            "doctor",
            "--role",
            &role_file,
            "--claims",
            &claims_file,
            "--at",
            &at,
            "--format",
            "json",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout_json(&output)["prediction"]["message"],
        "error validating token: invalid expiration time (exp) claim: token is expired"
    );

    // A file that is not there: operational, exit 3.
    let output = attestgate(
        &["vault", "doctor", "--role", "/nonexistent/role.json"],
        None,
    );
    assert_eq!(output.status.code(), Some(3));
}

/// The doctor only reads: every request it makes is a read (the audit log shows each one), and
/// a refused VAULT_TOKEN is reported with the path and status, never echoed.
#[tokio::test]
async fn the_doctor_only_reads_from_vault_and_never_shows_the_token() {
    let bao = OpenBao::start_with(OpenBaoOptions {
        audit: true,
        ..OpenBaoOptions::default()
    })
    .await;
    let launcher = TestLauncher::start().await;
    bao.enable_jwt_auth(&launcher.info().jwks_url, &launcher.info().issuer)
        .await;
    let (status, body) = bao.write("auth/jwt/role/bank-a", corrected()).await;
    assert!(status < 300, "{body}");
    let before = bao.audit_log().len();

    let env = [
        ("VAULT_ADDR", bao.addr.as_str()),
        ("VAULT_TOKEN", bao.root_token.as_str()),
    ];
    let output = crate::harness::attestgate_async(
        &[
            "vault",
            "doctor",
            "--vault-role",
            "bank-a",
            "--vault",
            "--format",
            "json",
        ],
        &env,
    )
    .await;
    assert!(
        output.status.code() == Some(0) || output.status.code() == Some(1),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let requests: Vec<Value> = bao.audit_log()[before..]
        .iter()
        .filter(|e| e["type"] == "request")
        .cloned()
        .collect();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for request in &requests {
        assert_eq!(request["request"]["operation"], "read", "{request:#}");
    }

    let secret_looking = "s.doctor-must-never-print-this";
    let output = crate::harness::attestgate_async(
        &["vault", "doctor", "--vault-role", "bank-a"],
        &[
            ("VAULT_ADDR", bao.addr.as_str()),
            ("VAULT_TOKEN", secret_looking),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("auth/jwt/role/bank-a") && stderr.contains("403"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(secret_looking)
            && !String::from_utf8_lossy(&output.stdout).contains(secret_looking)
    );
}

/// A hostile server as the Vault the doctor reads from: a role name that would walk Vault's API
/// path elsewhere is refused before any request, and a server that quotes the request's token
/// back in its error cannot make the doctor print it.
#[tokio::test]
async fn a_hostile_vault_gets_no_walked_path_and_cannot_make_the_doctor_print_its_token() {
    let echo = CaptureServer::answering(Answer::Echo).await;
    let token = "s.echoed-back-by-a-hostile-vault";
    let env = [("VAULT_ADDR", echo.addr.as_str()), ("VAULT_TOKEN", token)];
    let walked = crate::harness::attestgate_async(
        &["vault", "doctor", "--vault-role", "../../sys/seal"],
        &env,
    )
    .await;
    let stderr = String::from_utf8_lossy(&walked.stderr);
    assert_eq!(walked.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("../../sys/seal"), "{stderr}");
    assert!(echo.requests().is_empty(), "{:?}", echo.requests());

    let echoed =
        crate::harness::attestgate_async(&["vault", "doctor", "--vault-role", "bank-a"], &env)
            .await;
    let stderr = String::from_utf8_lossy(&echoed.stderr);
    assert_eq!(echoed.status.code(), Some(3), "{stderr}");
    let requests = echo.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path, "/v1/auth/jwt/role/bank-a");
    assert!(
        requests[0]
            .headers
            .iter()
            .any(|(name, value)| name == "x-vault-token" && value == token),
        "the server got the token, so its answer quoted it"
    );
    // The server's own words reach the operator; the token among them does not.
    assert!(
        stderr.contains("auth/jwt/role/bank-a") && stderr.contains("bad request"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(token) && !String::from_utf8_lossy(&echoed.stdout).contains(token),
        "{stderr}"
    );
}

/// Hostile CEL programs, within OpenBao's size limit but nested tens of thousands deep: the
/// doctor (native code, no sandbox) refuses them as OpenBao does, with OpenBao's words (measured
/// with OpenBao 2.7.2), instead of exhausting its stack, and the cel-role plugin refuses them at
/// load with the same words.
#[test]
fn deeply_nested_cel_programs_are_refused_not_crashed_on() {
    let dir = tempfile::tempdir().unwrap();
    let operators = "max recursion depth exceeded";
    let nesting = "expression recursion limit exceeded: 250";
    let programs = [
        (
            format!("1{} == 2 ? pb.Auth{{}} : 'no'", "+1".repeat(40_000)),
            Some(operators),
        ),
        (
            format!("claims{} == 1 ? pb.Auth{{}} : 'no'", ".a".repeat(40_000)),
            Some(operators),
        ),
        (format!("{}2", "a ? 1 : ".repeat(12_000)), Some(nesting)),
        (
            format!(
                "{}true{} ? pb.Auth{{}} : 'no'",
                "(".repeat(30_000),
                ")".repeat(30_000)
            ),
            Some(nesting),
        ),
        // A raw bytes literal ending in a backslash: the bound on nesting lexes it as the
        // parsers do, so the conditionals after it are counted.
        (
            format!("rb'\\' ? 1 : {}1", "1?1:".repeat(19_000)),
            Some(nesting),
        ),
        // Negations do not count: OpenBao stores this one.
        (
            format!("{}true ? pb.Auth{{}} : 'no'", "!".repeat(90_000)),
            None,
        ),
    ];
    let claims = write_json(
        dir.path(),
        "claims.json",
        &attestgate::dev::production_claims(),
    );
    for (index, (expression, refusal)) in programs.iter().enumerate() {
        let role =
            json!({"cel_program": {"expression": expression}, "bound_audiences": [AUDIENCE]});
        let file = write_json(dir.path(), &format!("deep{index}.json"), &role);
        let output = attestgate(
            &[
                "vault", "doctor", "--role", &file, "--claims", &claims, "--format", "json",
            ],
            None,
        );
        assert_eq!(
            output.status.code(),
            Some(1),
            "program {index}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report = stdout_json(&output);
        if let Some(words) = refusal {
            assert!(
                report.to_string().contains(words),
                "program {index}: {report:#}"
            );
            // Refused at load by the plugin's own checks, with the same words: not a trap.
            let failure = load_cel_role(role).expect_err("a program nested past the limit");
            assert!(
                matches!(failure.failure(), Some(FailureKind::Rejected(message))
                    if message.contains(words)),
                "program {index}: {failure}"
            );
            let shallow =
                json!({"cel_program": {"expression": "pb.Auth{}"}, "bound_audiences": [AUDIENCE]});
            load_cel_role(shallow).expect("the engine still loads a good role");
        }
    }
    // An escaped identifier holding a quote, before as many conditionals: refused (cel-go's
    // grammar has no such identifier here), not a trap.
    let backtick = format!("`'`?1:{}1", "1?1:".repeat(19_000));
    let failure = load_cel_role(
        json!({"cel_program": {"expression": backtick}, "bound_audiences": [AUDIENCE]}),
    )
    .expect_err("a program nested past the limit");
    assert!(
        matches!(failure.failure(), Some(FailureKind::Rejected(_))),
        "{failure}"
    );
}

/// What OpenBao stores, the plugin loads: 249 levels of conditionals or parentheses (measured
/// with OpenBao 2.7.2) fit the plugin's 1 MiB stack (`plugins/cel-role/build.rs`; with 64 KiB,
/// 200 levels of parentheses trapped). Lists, maps and calls that deep reach wasmtime's call-stack
/// limit first (README, CEL roles).
#[test]
fn the_cel_role_plugin_loads_roles_nested_as_deep_as_openbao_stores() {
    for expression in [
        format!("{}pb.Auth{{}}", "false ? 'no' : ".repeat(249)),
        format!(
            "{}true{} ? pb.Auth{{}} : 'no'",
            "(".repeat(249),
            ")".repeat(249)
        ),
    ] {
        let role =
            json!({"cel_program": {"expression": expression}, "bound_audiences": [AUDIENCE]});
        if let Err(error) = load_cel_role(role) {
            panic!("{}…: {error}", &expression[..40]);
        }
    }
}

/// The cel-role plugin loaded with `role` as its configuration, with a deadline long enough
/// that only the plugin's own checks decide, even while other tests compile on both cores
/// (lexing a 60 KB program before refusing it must not turn into a `deadline` failure).
fn load_cel_role(
    role: Value,
) -> Result<attestgate::plugin::CollaboratorPolicy, attestgate::plugin::PluginError> {
    let mut spec = plugin_spec("cel-role", role);
    spec.limits.deadline_ms = Some(10_000);
    engine().load(&spec)
}

/// `--token` checks the signature against the keys the mount trusts, whichever way it names
/// them (static PEM keys, a JWKS URL, OIDC discovery), and tries every key for a token without
/// a `kid`, as OpenBao does: genuine, kid-less and forged tokens, predicted and logged in.
#[tokio::test]
async fn the_signature_is_checked_against_static_keys_jwks_and_discovery_as_openbao_does() {
    // OIDC discovery requires the document's issuer to be the discovery URL itself: a launcher
    // whose issuer is its own address.
    let port = crate::harness::openbao::free_port_pair();
    let base = format!("http://127.0.0.1:{port}");
    let issuer = base.clone();
    let launcher = TestLauncher::start_with(move |config| {
        config.port = port;
        config.issuer = issuer;
    })
    .await;
    let key = SigningKey::load_or_create(&launcher.dir.path().join("signing-key.pem")).unwrap();
    let public_pem = rcgen::KeyPair::try_from(key.pkcs8_der())
        .unwrap()
        .public_key_pem();
    let info = launcher.info();
    let bao = OpenBao::start().await;
    let configs = [
        (
            "jwt-static",
            json!({"jwt_validation_pubkeys": [public_pem], "bound_issuer": info.issuer}),
        ),
        (
            "jwt-jwks",
            json!({"jwks_url": info.jwks_url, "bound_issuer": info.issuer}),
        ),
        (
            "jwt-discovery",
            json!({"oidc_discovery_url": base, "bound_issuer": info.issuer}),
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    let role_file = write_json(dir.path(), "bank-a.json", &corrected());
    let genuine = launcher.token(AUDIENCE).await;
    let claims = crate::harness::payload(&genuine);
    let mut without_kid = Map::new();
    without_kid.insert("typ".into(), json!("JWT"));
    let kidless = key.sign_with_header(without_kid, &claims).unwrap();
    let forged = SigningKey::load_or_create(&dir.path().join("other.pem"))
        .unwrap()
        .sign(Map::new(), &claims)
        .unwrap();
    let mut compared = 0;
    for (mount, config) in &configs {
        let (status, body) = bao
            .write(&format!("sys/auth/{mount}"), json!({"type": "jwt"}))
            .await;
        assert!(status < 300, "{body}");
        let (status, body) = bao
            .write(&format!("auth/{mount}/config"), config.clone())
            .await;
        assert!(status < 300, "{mount}: {body}");
        let (status, body) = bao
            .write(&format!("auth/{mount}/role/bank-a"), corrected())
            .await;
        assert!(status < 300, "{body}");
        let config_file = write_json(dir.path(), &format!("{mount}.json"), config);
        for (name, token) in [
            ("genuine", &genuine),
            ("without kid", &kidless),
            ("forged", &forged),
        ] {
            let token_file = dir.path().join("token.jwt");
            std::fs::write(&token_file, token).unwrap();
            let (_, report) = doctor_with_token(&role_file, &config_file, &token_file).await;
            let (status, body) = bao
                .login_at(&format!("auth/{mount}/login"), "bank-a", token)
                .await;
            assert_eq!(
                report["prediction"]["allow"],
                json!(status == 200),
                "{mount} / {name}: {body} vs {report:#}"
            );
            if status != 200 {
                assert_eq!(
                    report["prediction"]["message"], body["errors"][0],
                    "{mount} / {name}"
                );
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 9);
}
