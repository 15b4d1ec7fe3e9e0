//! Verification: the attack catalogue, key rotation, issuer outages, real-world leniency, PKI.

use crate::harness;
use crate::harness::capture::{Answer, CaptureServer};
use crate::harness::launcher::TestLauncher;
use crate::harness::{patched, production_claims_at, AUDIENCE};
use attestgate::attestation::unix_now;
use attestgate::attestation::{
    JwksCache, KeyCacheOptions, KeySource, Verifier, VerifyError, VerifyPolicy, GOOGLE_ISSUER,
};
use attestgate::attestation::{KeyError, RefetchOutcome};
use attestgate::attestation::{PkiError, PkiRoot};
use attestgate::dev::DevPki;
use attestgate::dev::SigningKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::time::Duration;

fn claims(now: i64) -> Value {
    production_claims_at(AUDIENCE, now)
}

fn with(now: i64, patch: Value) -> Value {
    patched(claims(now), &patch)
}

fn verifier_for(key: &SigningKey) -> Verifier {
    let jwks = attestgate::dev::jwks([key]).to_string();
    let keys = JwksCache::new(KeySource::Inline(jwks), KeyCacheOptions::default()).unwrap();
    Verifier::new(keys, VerifyPolicy::new(GOOGLE_ISSUER))
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

fn parts(token: &str) -> Vec<String> {
    token.split('.').map(str::to_owned).collect()
}

struct Fixture {
    key: SigningKey,
    verifier: Verifier,
    now: i64,
}

impl Fixture {
    fn new() -> Self {
        let key = SigningKey::generate().unwrap();
        let verifier = verifier_for(&key);
        Fixture {
            key,
            verifier,
            now: unix_now(),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        self.key.sign(Map::new(), claims).unwrap()
    }

    async fn verify(
        &self,
        token: &str,
    ) -> Result<attestgate::attestation::VerifiedToken, VerifyError> {
        self.verifier.verify_at(token, AUDIENCE, self.now).await
    }
}

#[tokio::test]
async fn a_genuine_token_verifies() {
    let f = Fixture::new();
    let verified = f
        .verify(&f.sign(&claims(f.now)))
        .await
        .expect("valid token");
    assert_eq!(verified.claims().audiences, vec![AUDIENCE]);
    assert!(verified.claims().is_production());
}

#[tokio::test]
async fn alg_none_is_rejected_by_name() {
    let f = Fixture::new();
    let token = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": f.key.kid()})),
        b64(&claims(f.now))
    );
    let err = f.verify(&token).await.unwrap_err();
    assert!(
        matches!(&err, VerifyError::Algorithm { found } if found == "none"),
        "{err}"
    );
    assert!(err.to_string().contains("\"none\" is not allowed"));
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_rejected() {
    use aws_lc_rs::hmac;
    let f = Fixture::new();
    let header = b64(&json!({"alg": "HS256", "kid": f.key.kid(), "typ": "JWT"}));
    let input = format!("{header}.{}", b64(&claims(f.now)));
    // The classic confusion attack: the public key, as published, used as an HMAC secret.
    let secret = attestgate::dev::jwks([&f.key]).to_string();
    let tag = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        input.as_bytes(),
    );
    let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
    let err = f.verify(&token).await.unwrap_err();
    assert!(
        matches!(&err, VerifyError::Algorithm { found } if found == "HS256"),
        "{err}"
    );
    assert_eq!(err.check(), "algorithm");
}

#[tokio::test]
async fn an_unknown_kid_is_rejected() {
    let f = Fixture::new();
    let attacker = SigningKey::generate().unwrap();
    let err = f
        .verify(&attacker.sign(Map::new(), &claims(f.now)).unwrap())
        .await
        .unwrap_err();
    match &err {
        VerifyError::Key(KeyError::UnknownKid { kid, known, .. }) => {
            assert_eq!(kid, attacker.kid());
            assert_eq!(known, &vec![f.key.kid().to_owned()]);
        }
        other => panic!("expected an unknown kid, got {other}"),
    }
    assert_eq!(err.check(), "kid");
}

#[tokio::test]
async fn a_tampered_payload_or_header_breaks_the_signature() {
    let f = Fixture::new();
    let token = f.sign(&claims(f.now));
    let p = parts(&token);
    let forged_payload = b64(&with(
        f.now,
        json!({"dbgstat": "disabled-since-boot", "hwmodel": "GCP_INTEL_TDX"}),
    ));
    let err = f
        .verify(&format!("{}.{forged_payload}.{}", p[0], p[2]))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Signature { .. }), "{err}");

    let forged_header = b64(&json!({"alg": "RS256", "kid": f.key.kid(), "typ": "JWT", "cty": "x"}));
    let err = f
        .verify(&format!("{forged_header}.{}.{}", p[1], p[2]))
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::Signature { .. }), "{err}");
    assert!(err.to_string().contains("signature does not verify"));
}

#[tokio::test]
async fn the_issuer_must_match_exactly() {
    let f = Fixture::new();
    let slash = f.sign(&with(f.now, json!({"iss": format!("{GOOGLE_ISSUER}/")})));
    let err = f.verify(&slash).await.unwrap_err();
    assert!(matches!(err, VerifyError::Issuer { .. }), "{err}");
    assert!(err.to_string().contains("trailing slash"), "{err}");

    let other = f.sign(&with(f.now, json!({"iss": "https://accounts.google.com"})));
    let err = f.verify(&other).await.unwrap_err();
    assert!(
        err.to_string().contains("\"https://accounts.google.com\""),
        "{err}"
    );
    assert!(!err.to_string().contains("trailing slash"));
}

#[tokio::test]
async fn the_audience_must_match_and_be_present() {
    let f = Fixture::new();
    let wrong = f.sign(&with(f.now, json!({"aud": "https://vault.bank-b.example"})));
    let err = f.verify(&wrong).await.unwrap_err();
    assert!(
        matches!(&err, VerifyError::Audience { found, .. } if found == &vec!["https://vault.bank-b.example"])
    );
    let missing = f.sign(&with(f.now, json!({"aud": null})));
    assert!(matches!(
        f.verify(&missing).await.unwrap_err(),
        VerifyError::MissingClaim("aud")
    ));
    let list = f.sign(&with(f.now, json!({"aud": ["https://other", AUDIENCE]})));
    f.verify(&list)
        .await
        .expect("an audience list containing ours is fine");
}

#[tokio::test]
async fn time_claims_are_checked_with_leeway() {
    let f = Fixture::new();
    let within = f.sign(&with(f.now, json!({"exp": f.now - 30})));
    f.verify(&within)
        .await
        .expect("30 s past exp is inside the 60 s leeway");
    let expired = f.sign(&with(f.now, json!({"exp": f.now - 120})));
    let err = f.verify(&expired).await.unwrap_err();
    assert!(matches!(err, VerifyError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("120 s before"), "{err}");
    let early = f.sign(&with(f.now, json!({"nbf": f.now + 600})));
    assert!(matches!(
        f.verify(&early).await.unwrap_err(),
        VerifyError::NotYetValid { .. }
    ));
    let future = f.sign(&with(f.now, json!({"iat": f.now + 600})));
    assert!(matches!(
        f.verify(&future).await.unwrap_err(),
        VerifyError::IssuedInFuture { .. }
    ));
    let no_exp = f.sign(&with(f.now, json!({"exp": null})));
    assert!(matches!(
        f.verify(&no_exp).await.unwrap_err(),
        VerifyError::MissingClaim("exp")
    ));
}

#[tokio::test]
async fn an_oversized_token_is_rejected_before_parsing() {
    let f = Fixture::new();
    let huge = f.sign(&with(f.now, json!({"padding": "x".repeat(40_000)})));
    let err = f.verify(&huge).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::TooLarge { limit: 16384, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_tokens_say_which_part_is_wrong() {
    let f = Fixture::new();
    let p = parts(&f.sign(&claims(f.now)));
    let bad_b64 = format!("{}.{}*&.{}", p[0], p[1], p[2]);
    let err = f.verify(&bad_b64).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the payload is not valid base64url"),
        "{err}"
    );
    let not_object = format!("{}.{}.{}", p[0], b64(&json!("just a string")), p[2]);
    let err = f.verify(&not_object).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("the payload is JSON but not an object (found a string)"),
        "{err}"
    );
    let err = f.verify("only.two").await.unwrap_err();
    assert!(
        err.to_string().contains("has 2 dot-separated parts"),
        "{err}"
    );
    assert_eq!(err.check(), "format");
}

#[tokio::test]
async fn keys_carried_in_the_header_are_never_trusted() {
    let f = Fixture::new();
    let attacker = SigningKey::generate().unwrap();
    let mut header = Map::new();
    header.insert("jwk".into(), attacker.jwk());
    let token = attacker.sign(header, &claims(f.now)).unwrap();
    let err = f.verify(&token).await.unwrap_err();
    assert!(matches!(err, VerifyError::EmbeddedKey("jwk")), "{err}");

    let mut header = Map::new();
    header.insert("jku".into(), json!("https://attacker.example/jwks"));
    header.insert("kid".into(), json!(f.key.kid()));
    let err = f
        .verify(&attacker.sign(header, &claims(f.now)).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::EmbeddedKey("jku")), "{err}");
}

fn pki_verifier(root: &DevPki) -> Verifier {
    let keys = JwksCache::new(
        KeySource::Inline(attestgate::dev::jwks([&SigningKey::generate().unwrap()]).to_string()),
        KeyCacheOptions::default(),
    )
    .unwrap();
    let mut policy = VerifyPolicy::new(GOOGLE_ISSUER);
    policy.pki_root = Some(PkiRoot::from_pem_or_der(root.root_pem().as_bytes()).unwrap());
    Verifier::new(keys, policy)
}

fn dev_pki(leaf_valid: std::ops::Range<i64>) -> DevPki {
    let at = |s: i64| time::OffsetDateTime::from_unix_timestamp(s).unwrap();
    DevPki::issue(
        &SigningKey::generate().unwrap(),
        &SigningKey::generate().unwrap(),
        SigningKey::generate().unwrap(),
        at(leaf_valid.start),
        at(leaf_valid.end),
    )
    .unwrap()
}

#[tokio::test]
async fn pki_tokens_verify_to_the_pinned_root_only() {
    let now = unix_now();
    let pki = dev_pki(now - 60..now + 86_400);
    let token = pki.sign(&claims(now)).unwrap();
    let verified = pki_verifier(&pki)
        .verify_at(&token, AUDIENCE, now)
        .await
        .expect("valid PKI token");
    assert_eq!(verified.kind, attestgate::attestation::TokenType::Pki);

    let foreign = dev_pki(now - 60..now + 86_400);
    let err = pki_verifier(&foreign)
        .verify_at(&token, AUDIENCE, now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Pki(PkiError::BadSignature { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("pinned root"), "{err}");

    let no_root = verifier_for(&SigningKey::generate().unwrap());
    let err = no_root.verify_at(&token, AUDIENCE, now).await.unwrap_err();
    assert!(
        matches!(err, VerifyError::Pki(PkiError::NoPinnedRoot)),
        "{err}"
    );
}

#[tokio::test]
async fn a_pki_token_with_an_expired_leaf_is_rejected() {
    let now = unix_now();
    let pki = dev_pki(now - 7200..now - 3600);
    let token = pki.sign(&claims(now)).unwrap();
    let err = pki_verifier(&pki)
        .verify_at(&token, AUDIENCE, now)
        .await
        .unwrap_err();
    assert!(
        matches!(err, VerifyError::Pki(PkiError::Lifetime { .. })),
        "{err}"
    );
    assert!(
        err.to_string().contains("attestation token signer"),
        "{err}"
    );
}

fn launcher_verifier(launcher: &TestLauncher, refetch_interval: Duration) -> Verifier {
    let options = KeyCacheOptions {
        refetch_interval,
        ..KeyCacheOptions::default()
    };
    let keys = JwksCache::new(
        KeySource::JwksUrl(launcher.info().jwks_url.clone()),
        options,
    )
    .unwrap();
    Verifier::new(keys, VerifyPolicy::new(GOOGLE_ISSUER))
}

#[tokio::test]
async fn rotation_is_picked_up_through_a_refetch() {
    let launcher = TestLauncher::start().await;
    let verifier = launcher_verifier(&launcher, Duration::ZERO);
    let before = launcher.token(AUDIENCE).await;
    verifier
        .verify(&before, AUDIENCE)
        .await
        .expect("token before rotation");
    let old_kid = launcher.launcher.current_kid();

    let new_kid = launcher.launcher.rotate_key().unwrap();
    assert_ne!(old_kid, new_kid);
    let after = launcher.token(AUDIENCE).await;
    let verified = verifier
        .verify(&after, AUDIENCE)
        .await
        .expect("token after rotation");
    assert_eq!(verified.header.kid.as_deref(), Some(new_kid.as_str()));
    // The previous key is still published, so tokens it signed keep verifying.
    verifier
        .verify(&before, AUDIENCE)
        .await
        .expect("old token still verifies");
    assert_eq!(verifier.keys().known_kids().len(), 2);
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited() {
    let launcher = TestLauncher::start().await;
    let verifier = launcher_verifier(&launcher, Duration::from_secs(3600));
    verifier
        .verify(&launcher.token(AUDIENCE).await, AUDIENCE)
        .await
        .unwrap();
    launcher.launcher.rotate_key().unwrap();
    let err = verifier
        .verify(&launcher.token(AUDIENCE).await, AUDIENCE)
        .await
        .unwrap_err();
    match err {
        VerifyError::Key(KeyError::UnknownKid {
            refetch: RefetchOutcome::Suppressed { .. },
            ..
        }) => {}
        other => panic!("expected a suppressed refetch, got {other}"),
    }
}

#[tokio::test]
async fn cached_keys_keep_working_while_the_jwks_is_down() {
    let launcher = TestLauncher::start().await;
    let verifier = launcher_verifier(&launcher, Duration::ZERO);
    let token = launcher.token(AUDIENCE).await;
    verifier.verify(&token, AUDIENCE).await.unwrap();
    launcher.launcher.shutdown().await;

    verifier
        .verify(&token, AUDIENCE)
        .await
        .expect("cached key verifies without the issuer");
    let stranger = SigningKey::generate()
        .unwrap()
        .sign(Map::new(), &claims(unix_now()))
        .unwrap();
    let err = verifier.verify(&stranger, AUDIENCE).await.unwrap_err();
    match &err {
        VerifyError::Key(KeyError::UnknownKid {
            refetch: RefetchOutcome::Failed(reason),
            ..
        }) => {
            assert!(
                matches!(**reason, KeyError::Fetch { .. }),
                "the refetch failed to fetch: {reason}"
            );
        }
        other => panic!("expected a failed refetch, got {other}"),
    }
    assert!(err.to_string().contains("cached keys were kept"), "{err}");
}

#[tokio::test]
async fn debug_and_tdx_tokens_parse_and_verify() {
    let debug = TestLauncher::start_with(|c| {
        c.claims = attestgate::dev::DevClaims::Patch(json!({"dbgstat": "enabled", "submods": {"confidential_space": {"support_attributes": null}}}));
    })
    .await;
    let verified = launcher_verifier(&debug, Duration::ZERO)
        .verify(&debug.token(AUDIENCE).await, AUDIENCE)
        .await
        .expect("debug token verifies");
    assert!(!verified.claims().is_production());
    assert_eq!(
        verified.claims().confidential_space.support_attributes,
        None
    );

    let tdx = TestLauncher::start_with(|c| {
        c.claims = attestgate::dev::DevClaims::Patch(json!({
            "hwmodel": "GCP_INTEL_TDX", "attester_tcb": ["INTEL"],
            "tdx": {"gcp_attester_tcb_status": "UpToDate", "gcp_attester_tcb_date": "2026-08-12T00:00:00Z"},
            "submods": {"nvidia_gpu": {"cc_mode": "ON"}}
        }));
    })
    .await;
    let verified = launcher_verifier(&tdx, Duration::ZERO)
        .verify(&tdx.token(AUDIENCE).await, AUDIENCE)
        .await
        .expect("TDX token verifies");
    assert_eq!(
        verified.claims().tdx[0].tcb_status.as_deref(),
        Some("UpToDate")
    );
    assert_eq!(verified.claims().nvidia_gpu_cc_mode.as_deref(), Some("ON"));
    assert_eq!(verified.claims().attester_tcb, vec!["INTEL"]);
}

#[tokio::test]
async fn a_production_tdx_payload_verifies_at_its_own_time() {
    let text = std::fs::read_to_string(
        harness::workspace_root().join("tests/fixtures/claims-production-tdx.json"),
    )
    .unwrap();
    let f = Fixture::new();
    let claims: Value = serde_json::from_str(&text).unwrap();
    let token = f.sign(&claims);
    let issued = claims["iat"].as_i64().unwrap();
    let verified = f
        .verifier
        .verify_at(&token, AUDIENCE, issued + 10)
        .await
        .expect("verifies at its iat");
    assert_eq!(
        verified.claims().gce.project_number.as_deref(),
        Some("123456789012")
    );
    assert_eq!(
        verified.claims().container.restart_policy.as_deref(),
        Some("Never")
    );
    let err = f
        .verifier
        .verify_at(&token, AUDIENCE, issued + 7200)
        .await
        .unwrap_err();
    assert_eq!(
        err.check(),
        "exp",
        "an hour after expiry the same token is refused: {err}"
    );
}

// --- Leniency an attacker could lean on: repeated keys, `crit`, time claims ---

/// Signs `header` and `payload` byte for byte as given (RS256 with `key`), so a test can send JSON
/// that serde_json would never write, such as an object with a repeated key.
fn sign_raw(key: &SigningKey, header: &str, payload: &str) -> String {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
    let pair = RsaKeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

impl Fixture {
    fn raw_header(&self) -> String {
        json!({"alg": "RS256", "kid": self.key.kid(), "typ": "JWT"}).to_string()
    }

    /// Verifies `token` and returns why it was refused; a token that verifies fails the test
    /// without printing it.
    async fn reject(&self, token: &str) -> VerifyError {
        match self.verify(token).await {
            Ok(_) => panic!("the token verified, but it must be rejected"),
            Err(err) => err,
        }
    }
}

#[tokio::test]
async fn a_payload_with_a_repeated_dbgstat_is_rejected() {
    let f = Fixture::new();
    let body = claims(f.now).to_string();
    f.verify(&sign_raw(&f.key, &f.raw_header(), &body))
        .await
        .expect("the payload as serde_json writes it verifies");
    // A reader that keeps the first value sees a debuggable image; one that keeps the last sees
    // production. Whichever the host picks, a plugin might pick the other.
    let repeated = format!("{{\"dbgstat\":\"enabled\",{}", &body[1..]);
    let err = f
        .reject(&sign_raw(&f.key, &f.raw_header(), &repeated))
        .await;
    assert_eq!(err.check(), "duplicate-key", "{err}");
    assert!(err.to_string().contains("\"dbgstat\""), "{err}");
    assert!(err.to_string().contains("payload"), "{err}");

    // The same key spelled with a JSON escape is still the same key.
    let escaped = format!("{{\"dbg\\u0073tat\":\"enabled\",{}", &body[1..]);
    let err = f.reject(&sign_raw(&f.key, &f.raw_header(), &escaped)).await;
    assert_eq!(err.check(), "duplicate-key", "{err}");
}

#[tokio::test]
async fn a_repeated_key_deep_in_the_payload_is_rejected() {
    let f = Fixture::new();
    let body = claims(f.now).to_string();
    let nested = body.replacen(
        "\"container\":{",
        "\"container\":{\"image_digest\":\"sha256:attacker\",",
        1,
    );
    assert_ne!(nested, body);
    let err = f.reject(&sign_raw(&f.key, &f.raw_header(), &nested)).await;
    assert_eq!(err.check(), "duplicate-key", "{err}");
    assert!(
        err.to_string().contains("/submods/container"),
        "the message says where: {err}"
    );

    let in_array = body.replacen(
        "\"google_service_accounts\":[",
        "\"google_service_accounts\":[{\"a\":1,\"a\":2},",
        1,
    );
    assert_ne!(in_array, body);
    let err = f
        .reject(&sign_raw(&f.key, &f.raw_header(), &in_array))
        .await;
    assert_eq!(err.check(), "duplicate-key", "{err}");
    assert!(
        err.to_string().contains("/google_service_accounts/0"),
        "{err}"
    );
}

#[tokio::test]
async fn a_header_with_a_repeated_alg_is_rejected() {
    let f = Fixture::new();
    let header = format!(
        r#"{{"alg":"none","alg":"RS256","kid":"{}","typ":"JWT"}}"#,
        f.key.kid()
    );
    let err = f
        .reject(&sign_raw(&f.key, &header, &claims(f.now).to_string()))
        .await;
    assert_eq!(err.check(), "duplicate-key", "{err}");
    assert!(err.to_string().contains("header"), "{err}");
}

#[tokio::test]
async fn a_crit_header_naming_an_unknown_extension_is_rejected() {
    let f = Fixture::new();
    let mut header = Map::new();
    header.insert("crit".into(), json!(["https://attacker.example/ext"]));
    header.insert("https://attacker.example/ext".into(), json!(true));
    let token = f.key.sign(header, &claims(f.now)).unwrap();
    let err = f.reject(&token).await;
    assert_eq!(err.check(), "crit", "{err}");
    assert!(
        err.to_string().contains("https://attacker.example/ext"),
        "the message names the extension: {err}"
    );
}

#[tokio::test]
async fn an_empty_or_malformed_crit_header_is_rejected() {
    let f = Fixture::new();
    for crit in [json!([]), json!("b64"), json!([42])] {
        let mut header = Map::new();
        header.insert("crit".into(), crit.clone());
        let token = f.key.sign(header, &claims(f.now)).unwrap();
        let err = f.reject(&token).await;
        assert_eq!(err.check(), "crit", "crit = {crit}: {err}");
    }
}

#[tokio::test]
async fn a_token_with_a_string_nbf_is_rejected() {
    let f = Fixture::new();
    let token = f.sign(&with(f.now, json!({"nbf": "2099-01-01"})));
    let err = f.reject(&token).await;
    assert_eq!(err.check(), "nbf", "{err}");
    assert!(
        err.to_string().contains("\"nbf\" is a string"),
        "the message names the claim and what it holds: {err}"
    );
}

#[tokio::test]
async fn non_numeric_nbf_and_iat_are_rejected_whatever_their_type() {
    let f = Fixture::new();
    for claim in ["nbf", "iat"] {
        for value in [
            json!(true),
            json!("1700000000"),
            json!([f.now]),
            json!({"seconds": f.now}),
        ] {
            let token = f.sign(&with(f.now, json!({ claim: value.clone() })));
            let err = f.reject(&token).await;
            assert_eq!(err.check(), claim, "{claim} = {value}: {err}");
            assert!(err.to_string().contains(claim), "{err}");
        }
    }
}

#[tokio::test]
async fn an_exp_too_large_for_i64_is_rejected_instead_of_never_expiring() {
    let f = Fixture::new();
    // 1e30 is a float to serde_json and u64::MAX does not fit in i64; both used to saturate to
    // i64::MAX, a token that never expires.
    for exp in [r#"1e30"#, &u64::MAX.to_string()] {
        let body = claims(f.now).to_string();
        let payload = body.replacen(
            &format!("\"exp\":{}", f.now + 3600),
            &format!("\"exp\":{exp}"),
            1,
        );
        assert_ne!(payload, body, "the test must actually replace exp");
        let err = f.reject(&sign_raw(&f.key, &f.raw_header(), &payload)).await;
        assert_eq!(err.check(), "exp", "exp = {exp}: {err}");
        assert!(err.to_string().contains("\"exp\""), "{err}");
    }
}

#[tokio::test]
async fn time_claims_that_are_not_whole_seconds_are_rejected() {
    let f = Fixture::new();
    for (claim, value) in [
        ("exp", json!(f.now as f64 + 3600.5)),
        ("nbf", json!(f.now as f64 - 0.25)),
        ("iat", json!(1.7e9)),
    ] {
        let token = f.sign(&with(f.now, json!({ claim: value.clone() })));
        let err = f.reject(&token).await;
        assert_eq!(err.check(), claim, "{claim} = {value}: {err}");
    }
}

// --- PKI chains built by hand, one defect at a time ---

/// One certificate of a hand-built chain, with what it takes to sign the next one.
struct Link {
    der: Vec<u8>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

fn cert_params(common_name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    params
}

/// A CA as RFC 5280 wants it: cA true, keyCertSign and cRLSign.
fn ca_params(common_name: &str, constraints: rcgen::BasicConstraints) -> rcgen::CertificateParams {
    let mut params = cert_params(common_name);
    params.is_ca = rcgen::IsCa::Ca(constraints);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
}

fn unconstrained_ca(common_name: &str) -> rcgen::CertificateParams {
    ca_params(common_name, rcgen::BasicConstraints::Unconstrained)
}

/// A token-signing leaf: not a CA, keyUsage digitalSignature.
fn leaf_params() -> rcgen::CertificateParams {
    let mut params = cert_params("hand-built token signer");
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params
}

fn critical_extension() -> rcgen::CustomExtension {
    // A private-enterprise OID no verifier knows.
    let mut extension =
        rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 55555, 7], vec![0x05, 0x00]);
    extension.set_criticality(true);
    extension
}

/// Issues `links` (root first, each signed by the one before it; CAs on P-384, the last one an
/// RSA leaf), signs a token with the leaf carrying the chain as `x5c` (leaf first, root last) and
/// verifies it against the root, pinned.
async fn verify_hand_built(
    links: Vec<rcgen::CertificateParams>,
) -> Result<attestgate::attestation::VerifiedToken, VerifyError> {
    let leaf_key = SigningKey::generate().unwrap();
    let count = links.len();
    let mut built: Vec<Link> = Vec::new();
    for (index, params) in links.into_iter().enumerate() {
        let key = if index + 1 == count {
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
                &rustls_pki_types::PrivatePkcs8KeyDer::from(leaf_key.pkcs8_der()),
                &rcgen::PKCS_RSA_SHA256,
            )
            .unwrap()
        } else {
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap()
        };
        let cert = match built.last() {
            None => params.self_signed(&key),
            Some(parent) => params.signed_by(&key, &parent.issuer),
        }
        .unwrap();
        built.push(Link {
            der: cert.der().to_vec(),
            issuer: rcgen::Issuer::new(params, key),
        });
    }
    let x5c: Vec<String> = built
        .iter()
        .rev()
        .map(|link| base64::engine::general_purpose::STANDARD.encode(&link.der))
        .collect();
    let mut header = Map::new();
    header.insert("x5c".into(), json!(x5c));
    let now = unix_now();
    let token = leaf_key.sign_with_header(header, &claims(now)).unwrap();

    let keys = JwksCache::new(
        KeySource::Inline(attestgate::dev::jwks([&SigningKey::generate().unwrap()]).to_string()),
        KeyCacheOptions::default(),
    )
    .unwrap();
    let mut policy = VerifyPolicy::new(GOOGLE_ISSUER);
    policy.pki_root = Some(PkiRoot::from_pem_or_der(&built[0].der).unwrap());
    Verifier::new(keys, policy)
        .verify_at(&token, AUDIENCE, now)
        .await
}

fn assert_pki_rejection(
    result: Result<attestgate::attestation::VerifiedToken, VerifyError>,
    says: &str,
) {
    let Err(err) = result else {
        panic!("the chain verified, but it must be rejected");
    };
    assert_eq!(err.check(), "pki-chain", "{err}");
    assert!(
        err.to_string().contains(says),
        "expected the message to mention {says:?}: {err}"
    );
}

#[tokio::test]
async fn a_hand_built_three_level_chain_verifies() {
    let verified = verify_hand_built(vec![
        unconstrained_ca("hand-built root"),
        unconstrained_ca("hand-built intermediate"),
        leaf_params(),
    ])
    .await
    .expect("a well-formed root -> intermediate -> leaf chain verifies");
    assert_eq!(verified.kind, attestgate::attestation::TokenType::Pki);
}

#[tokio::test]
async fn a_chain_shaped_like_googles_verifies() {
    // Google's attestation leaf has basicConstraints cA:FALSE and neither keyUsage nor EKU; its
    // intermediate carries the TCG EK-certificate purpose (2.23.133.8.1) as EKU.
    let mut intermediate = unconstrained_ca("Confidential Space Intermediate CA (hand-built)");
    intermediate.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::Other(vec![
        2, 23, 133, 8, 1,
    ])];
    let mut leaf = cert_params("Confidential Space Leaf Certificate (hand-built)");
    leaf.is_ca = rcgen::IsCa::ExplicitNoCa;
    verify_hand_built(vec![
        unconstrained_ca("Confidential Space Root CA (hand-built)"),
        intermediate,
        leaf,
    ])
    .await
    .expect("a leaf without keyUsage or EKU under an intermediate with an EKU verifies");
}

#[tokio::test]
async fn an_intermediate_with_path_length_zero_cannot_sign_another_ca() {
    let chain = |path_len: u8| {
        vec![
            unconstrained_ca("hand-built root"),
            ca_params(
                "hand-built intermediate",
                rcgen::BasicConstraints::Constrained(path_len),
            ),
            unconstrained_ca("hand-built sub-CA"),
            leaf_params(),
        ]
    };
    verify_hand_built(chain(1))
        .await
        .expect("pathLen 1 allows the one CA below the intermediate");
    assert_pki_rejection(verify_hand_built(chain(0)).await, "pathLen");
}

#[tokio::test]
async fn the_pinned_roots_path_length_is_enforced() {
    assert_pki_rejection(
        verify_hand_built(vec![
            ca_params("hand-built root", rcgen::BasicConstraints::Constrained(0)),
            unconstrained_ca("hand-built intermediate"),
            leaf_params(),
        ])
        .await,
        "pathLen",
    );
}

#[tokio::test]
async fn an_issuer_without_key_cert_sign_is_rejected() {
    let without_cert_sign = |name: &str| {
        let mut params = unconstrained_ca(name);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        params
    };
    assert_pki_rejection(
        verify_hand_built(vec![
            unconstrained_ca("hand-built root"),
            without_cert_sign("hand-built intermediate"),
            leaf_params(),
        ])
        .await,
        "keyCertSign",
    );
    assert_pki_rejection(
        verify_hand_built(vec![
            without_cert_sign("hand-built root"),
            unconstrained_ca("hand-built intermediate"),
            leaf_params(),
        ])
        .await,
        "keyCertSign",
    );
}

#[tokio::test]
async fn a_certificate_with_an_unknown_critical_extension_is_rejected() {
    let mut intermediate = unconstrained_ca("hand-built intermediate");
    intermediate.custom_extensions = vec![critical_extension()];
    assert_pki_rejection(
        verify_hand_built(vec![
            unconstrained_ca("hand-built root"),
            intermediate,
            leaf_params(),
        ])
        .await,
        "critical extension",
    );

    let mut leaf = leaf_params();
    leaf.custom_extensions = vec![critical_extension()];
    assert_pki_rejection(
        verify_hand_built(vec![
            unconstrained_ca("hand-built root"),
            unconstrained_ca("hand-built intermediate"),
            leaf,
        ])
        .await,
        "critical extension",
    );
}

#[tokio::test]
async fn a_leaf_whose_key_usage_lacks_digital_signature_is_rejected() {
    let mut leaf = leaf_params();
    leaf.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment];
    assert_pki_rejection(
        verify_hand_built(vec![
            unconstrained_ca("hand-built root"),
            unconstrained_ca("hand-built intermediate"),
            leaf,
        ])
        .await,
        "digitalSignature",
    );
}

#[tokio::test]
async fn a_leaf_cannot_sign_another_leaf() {
    // The first leaf even claims keyCertSign; only its cA:FALSE tells it is no CA.
    let mut signing_leaf = leaf_params();
    signing_leaf.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    assert_pki_rejection(
        verify_hand_built(vec![
            unconstrained_ca("hand-built root"),
            unconstrained_ca("hand-built intermediate"),
            signing_leaf,
            leaf_params(),
        ])
        .await,
        "not a CA",
    );
}

#[tokio::test]
async fn a_ca_certificate_cannot_be_the_leaf() {
    let mut leaf = unconstrained_ca("hand-built CA posing as a leaf");
    leaf.key_usages
        .push(rcgen::KeyUsagePurpose::DigitalSignature);
    assert_pki_rejection(
        verify_hand_built(vec![
            unconstrained_ca("hand-built root"),
            unconstrained_ca("hand-built intermediate"),
            leaf,
        ])
        .await,
        "is a CA",
    );
}

#[tokio::test]
async fn an_endless_jwks_response_is_cut_off_not_read_whole() {
    let launcher = TestLauncher::start().await;
    let endless = CaptureServer::answering(Answer::Endless).await;
    let keys = JwksCache::new(
        KeySource::JwksUrl(format!("{}/jwks", endless.addr)),
        KeyCacheOptions::default(),
    )
    .unwrap();
    let verifier = Verifier::new(keys, VerifyPolicy::new(GOOGLE_ISSUER));
    let token = launcher.token(AUDIENCE).await;
    let err = verifier
        .verify(&token, AUDIENCE)
        .await
        .expect_err("no keys from an endless body");
    assert_eq!(err.check(), "keys-unavailable", "{err}");
    assert!(err.to_string().contains("larger than"), "{err}");
}
