//! The dev launcher is faithful to what Vault accepts: real OpenBao JWT auth, configured with the
//! launcher's JWKS URL and the real Confidential Space issuer string, logs in with a launcher token
//! and refuses a token signed by another key.

use crate::harness::launcher::TestLauncher;
use crate::harness::openbao::OpenBao;
use crate::harness::plugins::plugin_spec;
use crate::harness::{corrected_role, payload, AUDIENCE};
use attestgate::attestation::GOOGLE_ISSUER;
use attestgate::dev::SigningKey;
use serde_json::{json, Map, Value};

async fn configured() -> (TestLauncher, OpenBao) {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start().await;
    bao.enable_jwt_auth(&launcher.info().jwks_url, GOOGLE_ISSUER)
        .await;
    let (status, body) = bao
        .write(
            "auth/jwt/role/workload",
            json!({
                "role_type": "jwt",
                "user_claim": "sub",
                "bound_audiences": [AUDIENCE],
                "bound_claims": {
                    "swname": "CONFIDENTIAL_SPACE",
                    "/submods/confidential_space/support_attributes": ["STABLE"],
                    "/submods/gce/project_id": ["operator-project"]
                },
                "claim_mappings": {"/submods/container/image_digest": "image_digest"},
                "token_policies": ["default"],
                "token_explicit_max_ttl": 60
            }),
        )
        .await;
    assert!(status < 300, "creating the role: {status} {body}");
    (launcher, bao)
}

fn first_error(body: &Value) -> String {
    body["errors"][0].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn openbao_accepts_a_custom_audience_launcher_token() {
    let (launcher, bao) = configured().await;
    let token = launcher.token(AUDIENCE).await;
    let (status, body) = bao.jwt_login("workload", &token).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["auth"]["client_token"]
        .as_str()
        .unwrap()
        .starts_with("s."));
    assert_eq!(
        body["auth"]["metadata"]["image_digest"]
            .as_str()
            .unwrap()
            .len(),
        71
    );
}

#[tokio::test]
async fn openbao_refuses_a_token_signed_by_another_key() {
    let (launcher, bao) = configured().await;
    let genuine = launcher.token(AUDIENCE).await;
    let claims = payload(&genuine);
    let mut header = Map::new();
    // Same kid as the launcher's key, different key: only the signature can tell them apart.
    header.insert("kid".into(), json!(launcher.launcher.current_kid()));
    let forged = SigningKey::generate()
        .unwrap()
        .sign(header, &claims)
        .unwrap();
    let (status, body) = bao.jwt_login("workload", &forged).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        first_error(&body).contains("failed to verify id token signature"),
        "{body}"
    );
}

#[tokio::test]
async fn openbao_refuses_the_default_sts_audience_token() {
    let (launcher, bao) = configured().await;
    let default = attestgate::attestation::read_token_file(&launcher.info().token_file)
        .await
        .unwrap();
    let (status, body) = bao.jwt_login("workload", default.expose()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        first_error(&body).contains("invalid audience (aud) claim"),
        "{body}"
    );
}

/// The `bound-claims` plugin, configured with the role JSON itself, must deny exactly what
/// OpenBao denies, with the same words.
#[tokio::test]
async fn bound_claims_plugin_denies_exactly_what_openbao_denies() {
    use attestgate::plugin::{EngineOptions, PluginEngine};
    let role = corrected_role();
    let engine = PluginEngine::new(EngineOptions::default()).unwrap();
    let plugin = engine
        .load(&plugin_spec("bound-claims", role.clone()))
        .unwrap();
    assert_eq!(
        plugin.select_audience().unwrap().audience,
        AUDIENCE,
        "the first bound audience is requested"
    );

    let bao = OpenBao::start().await;
    let cases: Vec<(&str, Value)> = vec![
        ("production", json!({})),
        (
            "debug image",
            json!({"dbgstat": "enabled", "submods": {"confidential_space": {"support_attributes": null}}}),
        ),
        ("TDX hardware", json!({"hwmodel": "GCP_INTEL_TDX"})),
        (
            "another project",
            json!({"submods": {"gce": {"project_id": "intruder-project"}}}),
        ),
        (
            "another image",
            json!({"submods": {"container": {"image_digest": format!("sha256:{}", "0".repeat(64))}}}),
        ),
        (
            "several service accounts, one bound",
            json!({"google_service_accounts": ["x@y.iam.gserviceaccount.com", "operator-svc-account@operator-project.iam.gserviceaccount.com"]}),
        ),
        (
            "no bound service account",
            json!({"google_service_accounts": ["x@y.iam.gserviceaccount.com"]}),
        ),
        (
            "only USABLE support",
            json!({"submods": {"confidential_space": {"support_attributes": ["USABLE"]}}}),
        ),
        (
            "another audience",
            json!({"aud": "https://vault.bank-b.example"}),
        ),
        (
            "support attributes as a string",
            json!({"submods": {"confidential_space": {"support_attributes": "STABLE"}}}),
        ),
    ];
    let mut launchers = Vec::new();
    for (name, patch) in &cases {
        let launcher = TestLauncher::start_with(|c| {
            c.claims = attestgate::dev::DevClaims::Patch(patch.clone())
        })
        .await;
        launchers.push((name, launcher));
    }
    // One JWT auth mount per launcher, each trusting that launcher's key.
    for (index, (name, launcher)) in launchers.iter().enumerate() {
        let mount = format!("jwt{index}");
        let (status, body) = bao
            .write(&format!("sys/auth/{mount}"), json!({"type": "jwt"}))
            .await;
        assert!(status < 300, "{status} {body}");
        let (status, body) = bao
            .write(
                &format!("auth/{mount}/config"),
                json!({"jwks_url": launcher.info().jwks_url, "bound_issuer": GOOGLE_ISSUER}),
            )
            .await;
        assert!(status < 300, "{status} {body}");
        let (status, body) = bao
            .write(&format!("auth/{mount}/role/bank-a"), role.clone())
            .await;
        assert!(status < 300, "{name}: {status} {body}");

        let token = launcher.token(AUDIENCE).await;
        let verdict = plugin
            .evaluate(
                &payload(&token).to_string(),
                attestgate::attestation::unix_now(),
            )
            .unwrap()
            .verdict;
        let response = reqwest::Client::new()
            .post(format!("{}/v1/auth/{mount}/login", bao.addr))
            .json(&json!({"role": "bank-a", "jwt": token}))
            .send()
            .await
            .unwrap();
        let vault_status = response.status().as_u16();
        let vault_body: Value = response.json().await.unwrap();
        assert_eq!(
            verdict.allow,
            vault_status == 200,
            "{name}: plugin {verdict:?} vs OpenBao {vault_status} {vault_body}"
        );
        if !verdict.allow {
            let vault_error = first_error(&vault_body);
            assert!(
                verdict
                    .failed_reasons()
                    .any(|r| vault_error.contains(&r.message)),
                "{name}: OpenBao said {vault_error:?}; the plugin's failed reasons were {:?}",
                verdict
                    .failed_reasons()
                    .map(|r| &r.message)
                    .collect::<Vec<_>>()
            );
        }
    }
}
