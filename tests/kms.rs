//! The KMS route: a VAULT_TOKEN encrypted with the collaborator's KMS key, unwrapped inside the TEE
//! through STS, optional impersonation and KMS decrypt (a local stand-in for Google's APIs), then
//! used at a real OpenBao.

use crate::harness;
use crate::harness::google::{GoogleStandIn, StandInOptions, KEY, PROVIDER, SERVICE_ACCOUNT};
use crate::harness::launcher::TestLauncher;
use crate::harness::openbao::OpenBao;
use crate::harness::plugins::{plugin_wasm, sha256_file};
use attestgate::config::Config;
use attestgate::exchange::{Exchange, Report, Step};
use attestgate::kms::KmsStep;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

const AUDIENCE_A: &str = "https://vault.bank-a.example";

fn production_only() -> harness::google::Condition {
    Arc::new(|claims: &Value| {
        claims["dbgstat"] == "disabled-since-boot" && claims["swname"] == "CONFIDENTIAL_SPACE"
    })
}

/// A Vault with a KV secret and a token, created by root, that may read only it.
async fn vault_with_token(bao: &OpenBao) -> String {
    bao.write(
        "sys/mounts/kv",
        json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    bao.write(
        "kv/data/reference-rates",
        json!({"data": {"eur-usd": "1.0842"}}),
    )
    .await;
    bao.write(
        "sys/policies/acl/bank-c-secrets",
        json!({"policy": "path \"kv/data/reference-rates\" { capabilities = [\"read\"] }"}),
    )
    .await;
    let (status, body) = bao
        .write(
            "auth/token/create",
            json!({"policies": ["bank-c-secrets"], "ttl": "1h"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["auth"]["client_token"].as_str().unwrap().to_owned()
}

fn kms_collaborator(dir: &Path, bao: &OpenBao, ciphertext: &str, impersonate: bool) -> String {
    let plugin = plugin_wasm("confidential-space");
    let ciphertext_file = dir.join("bank-c-vault-token.enc");
    std::fs::write(&ciphertext_file, ciphertext).unwrap();
    let service_account = if impersonate {
        format!("service_account = \"{SERVICE_ACCOUNT}\"\n")
    } else {
        String::new()
    };
    format!(
        r#"
[[collaborator]]
name = "bank-c"
plugin = "{plugin}"
plugin_sha256 = "{sha}"
plugin_config = {{ audience = "{PROVIDER}", projects = ["operator-project"] }}
[collaborator.vault]
address = "{addr}"
[collaborator.kms]
workload_identity_provider = "{PROVIDER}"
{service_account}key = "{KEY}"
ciphertext_file = "{ciphertext_file}"
[[collaborator.secret]]
path = "kv/data/reference-rates"
field = "eur-usd"
env = "BANK_C_EUR_USD"
"#,
        plugin = plugin.display(),
        sha = sha256_file(&plugin),
        addr = bao.addr,
        ciphertext_file = ciphertext_file.display(),
    )
}

/// The operator's sections: the launcher, plain HTTP for the local servers, and the Google
/// stand-in as the operator's (custom) endpoints.
fn header(launcher: &TestLauncher, google: &GoogleStandIn) -> String {
    format!(
        "[attestation]\nlauncher_socket = \"{}\"\njwks_url = \"{}\"\n[network]\nallow_plain_http = true\n[google]\nsts_endpoint = \"{endpoint}\"\niamcredentials_endpoint = \"{endpoint}\"\nkms_endpoint = \"{endpoint}\"\nallow_custom_endpoints = true\n",
        launcher.info().socket.display(),
        launcher.info().jwks_url,
        endpoint = google.endpoint,
    )
}

/// The whole configuration for bank-c alone, its VAULT_TOKEN encrypted as `gcloud kms encrypt` would.
fn bank_c_config(
    launcher: &TestLauncher,
    bao: &OpenBao,
    google: &GoogleStandIn,
    token: &str,
    dir: &Path,
    impersonate: bool,
) -> String {
    header(launcher, google)
        + &kms_collaborator(dir, bao, &google.encrypt(token.as_bytes()), impersonate)
}

async fn run(dir: &Path, text: &str) -> Report {
    let path = dir.join("attestgate.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let exchange = tokio::task::spawn_blocking(move || Exchange::prepare(&config))
        .await
        .unwrap()
        .unwrap();
    exchange.run().await
}

fn assert_succeeded(report: &Report) {
    assert!(
        report.all_succeeded(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
}

fn released_value(report: &Report, collaborator: &str) -> String {
    let (_, released) = report
        .released()
        .find(|(name, _)| *name == collaborator)
        .expect("released");
    released.secrets[0].value.to_text().to_string()
}

async fn setup(
    condition: harness::google::Condition,
    corrupt: bool,
) -> (TestLauncher, OpenBao, GoogleStandIn, String) {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start().await;
    let google = GoogleStandIn::start(StandInOptions {
        jwks_url: launcher.info().jwks_url.clone(),
        allowed_audiences: Vec::new(),
        condition,
        corrupt_plaintext_crc: corrupt,
    })
    .await;
    let token = vault_with_token(&bao).await;
    (launcher, bao, google, token)
}

#[tokio::test]
async fn the_unwrapped_vault_token_reads_the_secret() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let dir = tempfile::tempdir().unwrap();
    for impersonate in [false, true] {
        let text = bank_c_config(&launcher, &bao, &google, &token, dir.path(), impersonate);
        let report = run(dir.path(), &text).await;
        assert!(
            report.all_succeeded(),
            "impersonate={impersonate}: {:?}",
            report.failures().collect::<Vec<_>>()
        );
        assert_eq!(released_value(&report, "bank-c"), "1.0842");
        let (_, released) = report.released().next().unwrap();
        assert!(
            released.policies.iter().any(|p| p == "bank-c-secrets"),
            "lookup-self reported the token's policies"
        );
    }
}

#[tokio::test]
async fn a_debug_image_is_refused_by_the_attribute_condition() {
    let launcher = TestLauncher::start_with(|c| {
        c.claims = attestgate::dev::DevClaims::Patch(json!({"dbgstat": "enabled"}))
    })
    .await;
    let bao = OpenBao::start().await;
    let google = GoogleStandIn::start(StandInOptions {
        jwks_url: launcher.info().jwks_url.clone(),
        allowed_audiences: Vec::new(),
        condition: production_only(),
        corrupt_plaintext_crc: false,
    })
    .await;
    let token = vault_with_token(&bao).await;
    let dir = tempfile::tempdir().unwrap();
    // The collaborator's plugin does not insist on production here, so STS is what refuses.
    let text = header(&launcher, &google)
        + &kms_collaborator(dir.path(), &bao, &google.encrypt(token.as_bytes()), false).replace(
            "projects = [\"operator-project\"] }",
            "projects = [\"operator-project\"], require_production = false }",
        );
    let report = run(dir.path(), &text).await;
    let error = report.failures().next().expect("STS refuses");
    assert_eq!(error.step, Step::Kms(KmsStep::StsExchange));
    assert!(
        error.message.contains("invalid_grant") && error.message.contains("attribute condition"),
        "{}",
        error.message
    );
    assert!(
        error.to_string().starts_with("bank-c: STS token exchange:"),
        "{error}"
    );
}

#[tokio::test]
async fn a_tampered_ciphertext_gets_kms_own_error() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let mut sealed = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        google.encrypt(token.as_bytes()),
    )
    .unwrap();
    let last = sealed.len() - 1;
    sealed[last] ^= 0x01;
    let tampered = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sealed);
    let report = run(
        dir.path(),
        &(header(&launcher, &google) + &kms_collaborator(dir.path(), &bao, &tampered, false)),
    )
    .await;
    let error = report.failures().next().expect("KMS refuses");
    assert_eq!(error.step, Step::Kms(KmsStep::Decrypt));
    assert!(
        error.message.contains("INVALID_ARGUMENT") && error.message.contains("Decryption failed"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_corrupted_plaintext_checksum_is_caught() {
    let (launcher, bao, google, token) = setup(production_only(), true).await;
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        dir.path(),
        &bank_c_config(&launcher, &bao, &google, &token, dir.path(), false),
    )
    .await;
    let error = report.failures().next().expect("the checksum fails");
    assert_eq!(error.step, Step::Kms(KmsStep::Checksum));
    assert!(
        error.message.contains("plaintextCrc32c"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_revoked_vault_token_is_reported_as_revoked() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let (status, body) = bao
        .write("auth/token/revoke", json!({"token": token}))
        .await;
    assert!(status < 300, "{body}");
    let dir = tempfile::tempdir().unwrap();
    let report = run(
        dir.path(),
        &bank_c_config(&launcher, &bao, &google, &token, dir.path(), false),
    )
    .await;
    let error = report.failures().next().expect("the token is revoked");
    assert_eq!(error.step, Step::TokenLookup);
    assert!(
        error.message.contains("expired or revoked"),
        "{}",
        error.message
    );
    assert!(
        !error.message.contains(&token),
        "the token itself is never in an error"
    );
}

#[tokio::test]
async fn jwt_and_kms_collaborators_run_in_one_exchange() {
    let (launcher, bank_c, google, token) = setup(production_only(), false).await;
    let bank_a = OpenBao::start().await;
    let role: Value = serde_json::from_str(
        &std::fs::read_to_string(
            harness::workspace_root().join("examples/roles/seed-role-corrected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    bank_a
        .setup_collaborator(
            &launcher.info().jwks_url,
            "bank-a",
            role.clone(),
            &[("message", json!({"foo": "world"}))],
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let bound = plugin_wasm("bound-claims");
    let role_file = dir.path().join("role.json");
    std::fs::write(&role_file, role.to_string()).unwrap();
    let jwt_collaborator = format!(
        r#"
[[collaborator]]
name = "bank-a"
plugin = "{plugin}"
plugin_sha256 = "{sha}"
audience = "{AUDIENCE_A}"
plugin_config_file = "{role}"
[collaborator.vault]
address = "{addr}"
role = "bank-a"
[[collaborator.secret]]
path = "kv/data/message"
field = "foo"
env = "BANK_A_FOO"
"#,
        plugin = bound.display(),
        sha = sha256_file(&bound),
        role = role_file.display(),
        addr = bank_a.addr,
    );
    let text = header(&launcher, &google)
        + &jwt_collaborator
        + &kms_collaborator(dir.path(), &bank_c, &google.encrypt(token.as_bytes()), true);
    let report = run(dir.path(), &text).await;
    assert_succeeded(&report);
    assert_eq!(released_value(&report, "bank-a"), "world");
    assert_eq!(released_value(&report, "bank-c"), "1.0842");
    let audiences: Vec<&str> = report
        .released()
        .map(|(_, r)| r.audience.as_str())
        .collect();
    assert_eq!(
        audiences,
        vec![AUDIENCE_A, PROVIDER],
        "the KMS-route collaborator's token carries its own provider's audience, not STS's"
    );
}

#[tokio::test]
async fn a_denied_impersonation_is_reported_with_googles_words() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let text = bank_c_config(&launcher, &bao, &google, &token, dir.path(), true).replace(
        SERVICE_ACCOUNT,
        "someone-else@bank-c.iam.gserviceaccount.com",
    );
    let report = run(dir.path(), &text).await;
    let error = report.failures().next().expect("IAM refuses");
    assert_eq!(error.step, Step::Kms(KmsStep::Impersonate));
    assert!(
        error.message.contains("PERMISSION_DENIED")
            && error.message.contains("iam.serviceAccounts.getAccessToken"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn an_aborted_exchange_never_revokes_the_collaborators_own_token() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let kept = kms_collaborator(dir.path(), &bao, &google.encrypt(token.as_bytes()), false)
        .replace(
            "[collaborator.kms]",
            "keep_token = true\n[collaborator.kms]",
        );
    let closed = format!("http://127.0.0.1:{}", harness::openbao::free_port_pair());
    let failing = format!(
        "\n[[collaborator]]\nname = \"bank-d\"\nplugin = \"{plugin}\"\nplugin_sha256 = \"{sha}\"\naudience = \"https://vault.bank-d.example\"\nplugin_config = {{ audience = \"https://vault.bank-d.example\", vault_role = \"d\" }}\n[collaborator.vault]\naddress = \"{closed}\"\n",
        plugin = plugin_wasm("confidential-space").display(),
        sha = sha256_file(&plugin_wasm("confidential-space")),
    );
    let path = dir.path().join("attestgate.toml");
    std::fs::write(
        &path,
        header(&launcher, &google) + "[exchange]\ndeadline = \"3s\"\n" + &kept + &failing,
    )
    .unwrap();
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let exchange = tokio::task::spawn_blocking(move || Exchange::prepare(&config))
        .await
        .unwrap()
        .unwrap();
    let report = exchange.run().await;
    assert!(!report.all_succeeded(), "bank-d's Vault is down");
    exchange.revoke_kept(&report).await;
    let lookup = reqwest::Client::new()
        .get(format!("{}/v1/auth/token/lookup-self", bao.addr))
        .header("X-Vault-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        lookup.status(),
        200,
        "the collaborator's VAULT_TOKEN survived the abort"
    );
}

const MALLORY_PROVIDER: &str = "//iam.googleapis.com/projects/666666666666/locations/global/workloadIdentityPools/evil/providers/mallory";

/// Mallory on the KMS route, with a provider and ciphertext of her own.
fn mallory_kms(dir: &Path) -> String {
    let plugin = plugin_wasm("confidential-space");
    let ciphertext_file = dir.join("mallory.enc");
    std::fs::write(&ciphertext_file, "bWFsbG9yeQ==").unwrap();
    format!(
        r#"
[[collaborator]]
name = "mallory"
plugin = "{plugin}"
plugin_sha256 = "{sha}"
plugin_config = {{ audience = "{MALLORY_PROVIDER}" }}
[collaborator.vault]
address = "http://127.0.0.1:9"
[collaborator.kms]
workload_identity_provider = "{MALLORY_PROVIDER}"
key = "projects/mallory/locations/global/keyRings/k/cryptoKeys/k"
ciphertext_file = "{ciphertext}"
"#,
        plugin = plugin.display(),
        sha = sha256_file(&plugin),
        ciphertext = ciphertext_file.display(),
    )
}

#[tokio::test]
async fn a_kms_route_collaborator_cannot_choose_where_its_token_goes() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let capture = harness::capture::CaptureServer::start(200, r#"{"access_token":"x"}"#).await;
    let honest = bank_c_config(&launcher, &bao, &google, &token, dir.path(), false);
    for endpoint in ["sts_endpoint", "iamcredentials_endpoint", "kms_endpoint"] {
        let text = honest.clone()
            + &mallory_kms(dir.path()).replace(
                "[collaborator.kms]\n",
                &format!("[collaborator.kms]\n{endpoint} = \"{}\"\n", capture.addr),
            );
        let path = dir.path().join("attestgate.toml");
        std::fs::write(&path, text).unwrap();
        let err = Config::load(&path).unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.key.ends_with(&format!("kms.{endpoint}"))
                    && p.message
                        .contains("may not choose where its token is posted")),
            "{err}"
        );
    }
    // The operator's endpoints go to Google only, unless the operator opts out explicitly.
    let text = honest.replace("allow_custom_endpoints = true\n", "");
    let path = dir.path().join("attestgate.toml");
    std::fs::write(&path, text).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.key == "google.sts_endpoint" && p.message.contains("not on googleapis.com")),
        "{err}"
    );
    assert!(capture.requests().is_empty());
}

#[tokio::test]
async fn the_token_minted_for_mallory_is_useless_at_another_collaborators_provider() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let text = bank_c_config(&launcher, &bao, &google, &token, dir.path(), false)
        + "[exchange]\npartial = true\n"
        + &mallory_kms(dir.path());
    let report = run(dir.path(), &text).await;
    let outcome = |name: &str| {
        &report
            .outcomes
            .iter()
            .find(|o| o.collaborator == name)
            .unwrap()
            .result
    };
    assert!(outcome("bank-c").is_ok(), "{:?}", outcome("bank-c"));
    let mallory = outcome("mallory")
        .as_ref()
        .expect_err("no such provider at STS");
    assert_eq!(mallory.step, Step::Kms(KmsStep::StsExchange), "{mallory}");
    // STS saw one token per collaborator, each with that collaborator's provider as audience.
    let tokens = google.subject_tokens();
    let audience = |jwt: &str| {
        attestgate::attestation::jwt::parse(jwt).unwrap().payload["aud"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mallorys: Vec<&String> = tokens
        .iter()
        .filter(|t| audience(t) == MALLORY_PROVIDER)
        .collect();
    assert_eq!(mallorys.len(), 1, "{tokens:?}");
    assert!(tokens
        .iter()
        .all(|t| audience(t) == MALLORY_PROVIDER || audience(t) == PROVIDER));
    // Mallory replays her genuine token at STS for bank-c's provider: refused on audience.
    let replay = reqwest::Client::new()
        .post(format!("{}/v1/token", google.endpoint))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("audience", PROVIDER),
                    (
                        "requested_token_type",
                        "urn:ietf:params:oauth:token-type:access_token",
                    ),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                    ("subject_token", mallorys[0].as_str()),
                    ("scope", "https://www.googleapis.com/auth/cloud-platform"),
                ])
                .finish(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // Declaring bank-c's provider (in its https: spelling) as her own audience is refused.
    let text = bank_c_config(&launcher, &bao, &google, &token, dir.path(), false)
        + &mallory_kms(dir.path()).replace(
            "[[collaborator]]\nname = \"mallory\"\n",
            &format!("[[collaborator]]\nname = \"mallory\"\naudience = \"https:{PROVIDER}\"\n"),
        );
    let path = dir.path().join("attestgate.toml");
    std::fs::write(&path, text).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.key == "collaborator[1] (mallory).audience"
                && p.message.contains("collaborator[0] (bank-c)")),
        "{err}"
    );
}

#[tokio::test]
async fn the_shared_default_token_needs_the_operators_opt_in_and_a_single_collaborator() {
    let launcher = TestLauncher::start().await;
    let bao = OpenBao::start().await;
    let google = GoogleStandIn::start(StandInOptions {
        jwks_url: launcher.info().jwks_url.clone(),
        // A provider that lists STS as an allowed audience, as the default token needs.
        allowed_audiences: vec!["https://sts.googleapis.com".into()],
        condition: production_only(),
        corrupt_plaintext_crc: false,
    })
    .await;
    let token = vault_with_token(&bao).await;
    let dir = tempfile::tempdir().unwrap();
    let file_source = format!(
        "[attestation]\nsource = \"file\"\ntoken_file = \"{}\"\n",
        launcher.info().token_file.display()
    );
    let text = bank_c_config(&launcher, &bao, &google, &token, dir.path(), false)
        .replace("[attestation]\n", &file_source)
        .replace(
            &format!("audience = \"{PROVIDER}\""),
            "audience = \"https://sts.googleapis.com\"",
        );
    let path = dir.path().join("attestgate.toml");
    std::fs::write(&path, &text).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.key == "attestation.source" && p.message.contains("allow_default_audience")),
        "{err}"
    );
    let opted_in = text.replace(
        "source = \"file\"",
        "source = \"file\"\nallow_default_audience = true",
    );
    let report = run(dir.path(), &opted_in).await;
    assert_succeeded(&report);
    assert_eq!(released_value(&report, "bank-c"), "1.0842");
    // A second collaborator would share the same default token: refused, naming both.
    std::fs::write(&path, opted_in + &mallory_kms(dir.path())).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.key == "collaborator[1] (mallory).audience"
                && p.message.contains("collaborator[0] (bank-c)")),
        "{err}"
    );
}

#[tokio::test]
async fn a_redirect_from_sts_never_carries_the_token_elsewhere() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let capture = harness::capture::CaptureServer::start(200, r#"{"access_token":"x"}"#).await;
    let redirector = harness::capture::CaptureServer::answering(
        harness::capture::Answer::Redirect(format!("{}/v1/token", capture.addr)),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let text = bank_c_config(&launcher, &bao, &google, &token, dir.path(), false).replace(
        &format!("sts_endpoint = \"{}\"", google.endpoint),
        &format!("sts_endpoint = \"{}\"", redirector.addr),
    );
    let report = run(dir.path(), &text).await;
    let error = report.failures().next().expect("STS redirected");
    assert_eq!(error.step, Step::Kms(KmsStep::StsExchange), "{error}");
    assert!(error.message.contains("307"), "{error}");
    assert_eq!(redirector.requests().len(), 1);
    assert!(
        capture.requests().is_empty(),
        "the redirect was not followed: {:?}",
        capture.requests()
    );
}

#[tokio::test]
async fn an_endless_answer_from_a_google_endpoint_is_cut_off() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let endless =
        harness::capture::CaptureServer::answering(harness::capture::Answer::Endless).await;
    let dir = tempfile::tempdir().unwrap();
    let text = bank_c_config(&launcher, &bao, &google, &token, dir.path(), false).replace(
        &format!("sts_endpoint = \"{}\"", google.endpoint),
        &format!("sts_endpoint = \"{}\"", endless.addr),
    );
    let report = run(dir.path(), &text).await;
    let error = report.failures().next().expect("an endless body");
    assert_eq!(error.step, Step::Kms(KmsStep::StsExchange), "{error}");
    assert!(error.message.contains("larger than"), "{error}");
}
