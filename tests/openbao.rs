//! The dev launcher is faithful to what Vault accepts: real OpenBao JWT auth, configured with the
//! launcher's JWKS URL and the real Confidential Space issuer string, logs in with a launcher token
//! and refuses a token signed by another key.

mod common;

use attestgate::attestation::GOOGLE_ISSUER;
use attestgate::dev::SigningKey;
use common::{OpenBao, TestLauncher, AUDIENCE};
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
    let claims = Value::Object(
        attestgate::attestation::jwt::parse(&genuine)
            .unwrap()
            .payload,
    );
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
    let default = attestgate::attestation::source::read_token_file(&launcher.info().token_file)
        .await
        .unwrap();
    let (status, body) = bao.jwt_login("workload", default.expose()).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        first_error(&body).contains("invalid audience (aud) claim"),
        "{body}"
    );
}
