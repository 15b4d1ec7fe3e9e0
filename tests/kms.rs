//! The KMS route: a VAULT_TOKEN encrypted with the collaborator's KMS key, unwrapped inside the TEE
//! through STS, optional impersonation and KMS decrypt (a local stand-in for Google's APIs), then
//! used at a real OpenBao.

use crate::harness::capture::{Answer, CaptureServer};
use crate::harness::config::{Collaborator, ConfigBuilder, Google, Kms, Secret, Vault};
use crate::harness::exchange::{assert_succeeded, cause, prepare, run};
use crate::harness::google::{
    Condition, GoogleStandIn, StandInOptions, KEY, PROVIDER, SERVICE_ACCOUNT,
};
use crate::harness::launcher::TestLauncher;
use crate::harness::openbao::OpenBao;
use crate::harness::{closed_address, corrected_role, payload};
use attestgate::config::Config;
use attestgate::exchange::{ExchangeReport, Step, StepCause};
use attestgate::kms::KmsStep;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;

const AUDIENCE_A: &str = "https://vault.bank-a.example";

fn production_only() -> Condition {
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

/// bank-c on the KMS route: its VAULT_TOKEN, encrypted as `ciphertext`, is unwrapped (as
/// `service_account`, if given) and used at `bao`.
fn bank_c_at(
    dir: &Path,
    bao: &OpenBao,
    ciphertext: &str,
    service_account: Option<&str>,
) -> Collaborator {
    let ciphertext_file = dir.join("bank-c-vault-token.enc");
    std::fs::write(&ciphertext_file, ciphertext).unwrap();
    let kms = Kms::new(PROVIDER, KEY, &ciphertext_file);
    Collaborator::new("bank-c", "confidential-space")
        .plugin_config(json!({"audience": PROVIDER, "projects": ["operator-project"]}))
        .vault(Vault::at(&bao.addr))
        .kms(match service_account {
            Some(service_account) => kms.impersonating(service_account),
            None => kms,
        })
        .secret(
            Secret::at("kv/data/reference-rates")
                .field("eur-usd")
                .env("BANK_C_EUR_USD"),
        )
}

/// The operator's sections: the launcher, plain HTTP for the local servers, and `google` as the
/// operator's (custom) endpoints.
fn config(dir: &Path, launcher: &TestLauncher, google: Google) -> ConfigBuilder {
    ConfigBuilder::local(dir, launcher.info()).google(google)
}

/// The whole configuration for bank-c alone, its VAULT_TOKEN encrypted as `gcloud kms encrypt`
/// would, and every Google endpoint at the stand-in.
fn bank_c_config(
    launcher: &TestLauncher,
    bao: &OpenBao,
    google: &GoogleStandIn,
    token: &str,
    dir: &Path,
    service_account: Option<&str>,
) -> ConfigBuilder {
    let ciphertext = google.encrypt(token.as_bytes());
    config(dir, launcher, Google::stand_in(google)).collaborator(bank_c_at(
        dir,
        bao,
        &ciphertext,
        service_account,
    ))
}

fn released_value(report: &ExchangeReport, collaborator: &str) -> String {
    let (_, released) = report
        .released()
        .find(|(name, _)| *name == collaborator)
        .expect("released");
    released.secrets[0].value.to_text().to_string()
}

async fn setup(
    condition: Condition,
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
        let service_account = impersonate.then_some(SERVICE_ACCOUNT);
        let config = bank_c_config(
            &launcher,
            &bao,
            &google,
            &token,
            dir.path(),
            service_account,
        );
        let report = run(&config.write()).await;
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
    // Every decrypt carried the ciphertext's CRC32C, which KMS checks (the stand-in refuses a
    // mismatch as Google does): a ciphertext corrupted on its way is refused, not decrypted.
    let checksums = google.ciphertext_checksums();
    assert_eq!(checksums.len(), 2, "{checksums:?}");
    assert!(checksums.iter().all(Option::is_some), "{checksums:?}");
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
    let ciphertext = google.encrypt(token.as_bytes());
    let config = config(dir.path(), &launcher, Google::stand_in(&google)).collaborator(
        bank_c_at(dir.path(), &bao, &ciphertext, None).plugin_config(json!({
            "audience": PROVIDER, "projects": ["operator-project"], "require_production": false
        })),
    );
    let report = run(&config.write()).await;
    let error = report.failures().next().expect("STS refuses");
    assert_eq!(error.step, Step::Kms(KmsStep::StsExchange));
    assert!(
        cause(error).contains("invalid_grant") && cause(error).contains("attribute condition"),
        "{}",
        cause(error)
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
    let config = config(dir.path(), &launcher, Google::stand_in(&google)).collaborator(bank_c_at(
        dir.path(),
        &bao,
        &tampered,
        None,
    ));
    let report = run(&config.write()).await;
    let error = report.failures().next().expect("KMS refuses");
    assert_eq!(error.step, Step::Kms(KmsStep::Decrypt));
    assert!(
        cause(error).contains("INVALID_ARGUMENT") && cause(error).contains("Decryption failed"),
        "{}",
        cause(error)
    );
}

#[tokio::test]
async fn a_corrupted_plaintext_checksum_is_caught() {
    let (launcher, bao, google, token) = setup(production_only(), true).await;
    let dir = tempfile::tempdir().unwrap();
    let config = bank_c_config(&launcher, &bao, &google, &token, dir.path(), None);
    let report = run(&config.write()).await;
    let error = report.failures().next().expect("the checksum fails");
    assert_eq!(error.step, Step::Kms(KmsStep::Checksum));
    assert!(cause(error).contains("plaintextCrc32c"), "{}", cause(error));
}

#[tokio::test]
async fn a_revoked_vault_token_is_reported_as_revoked() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let (status, body) = bao
        .write("auth/token/revoke", json!({"token": token}))
        .await;
    assert!(status < 300, "{body}");
    let dir = tempfile::tempdir().unwrap();
    let config = bank_c_config(&launcher, &bao, &google, &token, dir.path(), None);
    let report = run(&config.write()).await;
    let error = report.failures().next().expect("the token is revoked");
    assert_eq!(error.step, Step::TokenLookup);
    assert!(
        matches!(&*error.cause, StepCause::StaleKmsToken(_)),
        "{}",
        cause(error)
    );
    assert!(
        !cause(error).contains(&token),
        "the token itself is never in an error"
    );
}

#[tokio::test]
async fn jwt_and_kms_collaborators_run_in_one_exchange() {
    let (launcher, bank_c, google, token) = setup(production_only(), false).await;
    let bank_a = OpenBao::start().await;
    let role = corrected_role();
    bank_a
        .setup_collaborator(
            &launcher.info().jwks_url,
            "bank-a",
            role.clone(),
            &[("message", json!({"foo": "world"}))],
        )
        .await;
    let dir = tempfile::tempdir().unwrap();
    let bank_a = Collaborator::bound_claims("bank-a", role)
        .vault(Vault::at(&bank_a.addr).role("bank-a"))
        .secret(Secret::at("kv/data/message").field("foo").env("BANK_A_FOO"));
    let ciphertext = google.encrypt(token.as_bytes());
    let config = config(dir.path(), &launcher, Google::stand_in(&google))
        .collaborator(bank_a)
        .collaborator(bank_c_at(
            dir.path(),
            &bank_c,
            &ciphertext,
            Some(SERVICE_ACCOUNT),
        ));
    let report = run(&config.write()).await;
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
    let config = bank_c_config(
        &launcher,
        &bao,
        &google,
        &token,
        dir.path(),
        Some("someone-else@bank-c.iam.gserviceaccount.com"),
    );
    let report = run(&config.write()).await;
    let error = report.failures().next().expect("IAM refuses");
    assert_eq!(error.step, Step::Kms(KmsStep::Impersonate));
    assert!(
        cause(error).contains("PERMISSION_DENIED")
            && cause(error).contains("iam.serviceAccounts.getAccessToken"),
        "{}",
        cause(error)
    );
}

#[tokio::test]
async fn an_aborted_exchange_never_revokes_the_collaborators_own_token() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let ciphertext = google.encrypt(token.as_bytes());
    let kept =
        bank_c_at(dir.path(), &bao, &ciphertext, None).vault(Vault::at(&bao.addr).keep_token());
    let closed = closed_address();
    let failing = Collaborator::new("bank-d", "confidential-space")
        .audience("https://vault.bank-d.example")
        .plugin_config(json!({"audience": "https://vault.bank-d.example", "vault_role": "d"}))
        .vault(Vault::at(&closed));
    let config = config(dir.path(), &launcher, Google::stand_in(&google))
        .deadline("3s")
        .collaborator(kept)
        .collaborator(failing);
    let exchange = prepare(&config.write()).await;
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
fn mallory_kms(dir: &Path) -> Collaborator {
    let ciphertext_file = dir.join("mallory.enc");
    std::fs::write(&ciphertext_file, "bWFsbG9yeQ==").unwrap();
    Collaborator::new("mallory", "confidential-space")
        .plugin_config(json!({"audience": MALLORY_PROVIDER}))
        .vault(Vault::at("http://127.0.0.1:9"))
        .kms(Kms::new(
            MALLORY_PROVIDER,
            "projects/mallory/locations/global/keyRings/k/cryptoKeys/k",
            &ciphertext_file,
        ))
}

#[tokio::test]
async fn a_kms_route_collaborator_cannot_choose_where_its_token_goes() {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let capture = CaptureServer::start(200, r#"{"access_token":"x"}"#).await;
    let honest = bank_c_config(&launcher, &bao, &google, &token, dir.path(), None);
    for endpoint in ["sts_endpoint", "iamcredentials_endpoint", "kms_endpoint"] {
        let config = honest.clone().collaborator(
            mallory_kms(dir.path()).raw(&format!("kms.{endpoint} = \"{}\"", capture.addr)),
        );
        let err = Config::load(&config.write()).unwrap_err();
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
    let ciphertext = google.encrypt(token.as_bytes());
    let not_opted_in = Google {
        allow_custom_endpoints: false,
        ..Google::stand_in(&google)
    };
    let config = config(dir.path(), &launcher, not_opted_in).collaborator(bank_c_at(
        dir.path(),
        &bao,
        &ciphertext,
        None,
    ));
    let err = Config::load(&config.write()).unwrap_err();
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
    let config = bank_c_config(&launcher, &bao, &google, &token, dir.path(), None)
        .partial()
        .collaborator(mallory_kms(dir.path()));
    let report = run(&config.write()).await;
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
    let audience = |jwt: &str| payload(jwt)["aud"].as_str().unwrap().to_owned();
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
    let config = bank_c_config(&launcher, &bao, &google, &token, dir.path(), None)
        .collaborator(mallory_kms(dir.path()).audience(&format!("https:{PROVIDER}")));
    let err = Config::load(&config.write()).unwrap_err();
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
    let ciphertext = google.encrypt(token.as_bytes());
    let file_source = config(dir.path(), &launcher, Google::stand_in(&google))
        .token_file_source(&launcher.info().token_file)
        .collaborator(
            bank_c_at(dir.path(), &bao, &ciphertext, None).plugin_config(
                json!({"audience": "https://sts.googleapis.com", "projects": ["operator-project"]}),
            ),
        );
    let err = Config::load(&file_source.write()).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.key == "attestation.source" && p.message.contains("allow_default_audience")),
        "{err}"
    );
    let opted_in = file_source.allow_default_audience();
    let report = run(&opted_in.write()).await;
    assert_succeeded(&report);
    assert_eq!(released_value(&report, "bank-c"), "1.0842");
    // A second collaborator would share the same default token: refused, naming both.
    let config = opted_in.collaborator(mallory_kms(dir.path()));
    let err = Config::load(&config.write()).unwrap_err();
    assert!(
        err.problems
            .iter()
            .any(|p| p.key == "collaborator[1] (mallory).audience"
                && p.message.contains("collaborator[0] (bank-c)")),
        "{err}"
    );
}

/// bank-c's KMS-route exchange with every Google endpoint the stand-in's except STS, which is
/// `sts` (a hostile server).
async fn exchange_with_sts_at(sts: &str) -> ExchangeReport {
    let (launcher, bao, google, token) = setup(production_only(), false).await;
    let dir = tempfile::tempdir().unwrap();
    let endpoints = Google {
        sts_endpoint: sts.to_owned(),
        ..Google::stand_in(&google)
    };
    let ciphertext = google.encrypt(token.as_bytes());
    let config = config(dir.path(), &launcher, endpoints).collaborator(bank_c_at(
        dir.path(),
        &bao,
        &ciphertext,
        None,
    ));
    run(&config.write()).await
}

#[tokio::test]
async fn a_redirect_from_sts_never_carries_the_token_elsewhere() {
    let capture = CaptureServer::start(200, r#"{"access_token":"x"}"#).await;
    let redirector =
        CaptureServer::answering(Answer::Redirect(format!("{}/v1/token", capture.addr))).await;
    let report = exchange_with_sts_at(&redirector.addr).await;
    let error = report.failures().next().expect("STS redirected");
    assert_eq!(error.step, Step::Kms(KmsStep::StsExchange), "{error}");
    assert!(cause(error).contains("307"), "{error}");
    assert_eq!(redirector.requests().len(), 1);
    assert!(
        capture.requests().is_empty(),
        "the redirect was not followed: {:?}",
        capture.requests()
    );
}

#[tokio::test]
async fn an_endless_answer_from_a_google_endpoint_is_cut_off() {
    let endless = CaptureServer::answering(Answer::Endless).await;
    let report = exchange_with_sts_at(&endless.addr).await;
    let error = report.failures().next().expect("an endless body");
    assert_eq!(error.step, Step::Kms(KmsStep::StsExchange), "{error}");
    assert!(cause(error).contains("larger than"), "{error}");
}
