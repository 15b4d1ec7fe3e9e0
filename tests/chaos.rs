//! The issuer misbehaves while exchanges and the agent run: its JWKS endpoint is slow, answers
//! garbage, HTML, a huge body or 503, or drops the signing key; a discovery document sends the
//! key fetch elsewhere. Cached keys carry on through outages, unknown-kid refetches are rate
//! limited (counted), every failure names its cause, and nothing hangs past its deadline.

use crate::harness::config::{Collaborator, ConfigBuilder, Secret, Vault};
use crate::harness::exchange::{cause, prepare};
use crate::harness::faulty::{Fault, FaultyJwks};
use crate::harness::launcher::TestLauncher;
use crate::harness::openbao::{OpenBao, OpenBaoOptions};
use crate::harness::{agent_process, corrected_role, file_holds, wait_for};
use attestgate::dev::SigningKey;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// Shorter than the key fetch's 10 s timeout, so that an issuer that never answers meets the
/// deadline first, even when the key fetch started (as a prefetch) while the plugins compiled.
const DEADLINE_SECONDS: u64 = 5;

async fn bank_a_vault(launcher: &TestLauncher) -> OpenBao {
    OpenBao::bank_a(&launcher.info().jwks_url, OpenBaoOptions::default()).await
}

/// bank-a's exchange, verifying tokens with the keys at `jwks_url`.
fn config(dir: &Path, launcher: &TestLauncher, jwks_url: &str, bao: &OpenBao) -> ConfigBuilder {
    ConfigBuilder::local(dir, launcher.info())
        .jwks_url(jwks_url)
        .delivery_root(&dir.join("out"))
        .deadline(&format!("{DEADLINE_SECONDS}s"))
        .collaborator(
            Collaborator::bound_claims("bank-a", corrected_role())
                .vault(Vault::from(bao).role("bank-a"))
                .secret(
                    Secret::at("kv/data/message")
                        .field("foo")
                        .file(&dir.join("out/bank-a/foo")),
                ),
        )
}

/// Every failure the endpoint can stage, after one good fetch.
fn faults() -> Vec<(&'static str, Fault)> {
    let other = SigningKey::generate().unwrap();
    vec![
        ("garbage JSON", Fault::Garbage),
        ("an HTML page", Fault::Html),
        ("a 4 MiB body", Fault::Huge),
        ("503", Fault::Unavailable),
        ("no answer at all", Fault::Silent),
        (
            "the signing key dropped",
            Fault::OtherKeys(attestgate::dev::jwks([&other])),
        ),
    ]
}

#[tokio::test]
async fn cached_keys_carry_the_exchange_through_every_jwks_failure() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher).await;
    let jwks = FaultyJwks::in_front_of(&launcher.info().jwks_url).await;
    let dir = tempfile::tempdir().unwrap();
    let exchange = prepare(&config(dir.path(), &launcher, &jwks.url, &bao).write()).await;
    // The keys are fetched while the plugins load, before any token exists...
    wait_for(
        "the keys fetched ahead of the first token",
        Duration::from_secs(10),
        || async { (jwks.fetches() == 1).then_some(()) },
    )
    .await;
    // ...and that fetch is the one the first verification would have made.
    assert!(exchange.run().await.all_succeeded());
    assert_eq!(jwks.fetches(), 1);
    for (name, fault) in faults() {
        jwks.set(fault);
        let report = exchange.run().await;
        assert!(
            report.all_succeeded(),
            "{name}: {:?}",
            report.failures().collect::<Vec<_>>()
        );
    }
    // The kid was known: not one fetch during the outage.
    assert_eq!(jwks.fetches(), 1);
}

#[tokio::test]
async fn without_a_cached_key_each_jwks_failure_fails_in_time_and_names_its_cause() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher).await;
    let expected = [
        "not JSON",
        "not JSON",
        "larger than the",
        "503",
        "deadline",
        "no signing key with kid",
    ];
    for ((name, fault), expected) in faults().into_iter().zip(expected) {
        let jwks = FaultyJwks::in_front_of(&launcher.info().jwks_url).await;
        jwks.set(fault);
        let dir = tempfile::tempdir().unwrap();
        let exchange = prepare(&config(dir.path(), &launcher, &jwks.url, &bao).write()).await;
        let began = Instant::now();
        let report = exchange.run().await;
        let took = began.elapsed();
        let failure = report
            .failures()
            .next()
            .unwrap_or_else(|| panic!("{name}: the exchange succeeded"));
        let text = format!("{failure}: {}", cause(failure));
        assert!(text.contains("bank-a"), "{name}: {text}");
        assert!(
            text.contains(expected),
            "{name}: expected {expected:?} in {text}"
        );
        assert!(
            took < Duration::from_secs(DEADLINE_SECONDS + 5),
            "{name}: the exchange took {took:?}"
        );
        assert!(
            !dir.path().join("out/bank-a/foo").exists(),
            "{name}: nothing is delivered"
        );
    }
}

#[tokio::test]
async fn unknown_kid_refetches_are_rate_limited_while_exchanges_keep_coming() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher).await;
    let jwks = FaultyJwks::in_front_of(&launcher.info().jwks_url).await;
    let other = SigningKey::generate().unwrap();
    jwks.set(Fault::OtherKeys(attestgate::dev::jwks([&other])));
    let dir = tempfile::tempdir().unwrap();
    let exchange = prepare(&config(dir.path(), &launcher, &jwks.url, &bao).write()).await;
    let runs = 20;
    for _ in 0..runs {
        let report = exchange.run().await;
        let failure = report
            .failures()
            .next()
            .expect("the signing key is not published");
        assert!(
            cause(failure).contains("no signing key with kid"),
            "{}",
            cause(failure)
        );
    }
    // One load, and at most one refetch inside the 30 s interval, for 20 tokens with an unknown
    // kid.
    let fetches = jwks.fetches();
    println!("{runs} exchanges with an unknown kid: {fetches} JWKS fetches");
    assert!(fetches <= 2, "{fetches} fetches for {runs} exchanges");
}

#[tokio::test]
async fn a_discovery_document_cannot_send_the_key_fetch_elsewhere() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher).await;
    for (jwks_uri, expected) in [
        ("http://127.0.0.2:9/jwks", "outside the domain"),
        ("https://keys.attacker.example/jwks", "outside the domain"),
    ] {
        let discovery = crate::harness::capture::CaptureServer::answering(
            crate::harness::capture::Answer::ByPath(vec![(
                "/.well-known/openid-configuration",
                200,
                Box::leak(
                    json!({"issuer": attestgate::attestation::GOOGLE_ISSUER, "jwks_uri": jwks_uri})
                        .to_string()
                        .into_boxed_str(),
                ),
            )]),
        )
        .await;
        let dir = tempfile::tempdir().unwrap();
        let config = config(dir.path(), &launcher, &launcher.info().jwks_url, &bao)
            .discovery_url(&format!(
                "{}/.well-known/openid-configuration",
                discovery.addr
            ))
            .write();
        let report = prepare(&config).await.run().await;
        let failure = report
            .failures()
            .next()
            .expect("the keys cannot be fetched");
        assert!(
            cause(failure).contains(expected),
            "{jwks_uri}: {}",
            cause(failure)
        );
    }
}

#[tokio::test]
async fn the_agent_keeps_working_on_cached_keys_while_the_jwks_is_down() {
    let launcher = TestLauncher::start().await;
    let bao = bank_a_vault(&launcher).await;
    let jwks = FaultyJwks::in_front_of(&launcher.info().jwks_url).await;
    let dir = tempfile::tempdir().unwrap();
    let foo = dir.path().join("out/bank-a/foo");
    let config = config(dir.path(), &launcher, &jwks.url, &bao)
        .agent("refresh", "1s")
        .agent("backoff_min", "200ms")
        .agent("backoff_max", "1s")
        .write();
    let mut agent = agent_process(&config);
    wait_for(
        "the agent's first delivery",
        Duration::from_secs(60),
        file_holds(&foo, "world"),
    )
    .await;
    let fetched = jwks.fetches();
    jwks.set(Fault::Unavailable);
    // A rotation during the outage reaches the workload: the agent's re-exchanges verify tokens
    // with the cached key.
    let (status, body) = bao
        .write("kv/data/message", json!({"data": {"foo": "rotated"}}))
        .await;
    assert!(status < 300, "{body}");
    wait_for(
        "the rotated secret, during the outage",
        Duration::from_secs(60),
        file_holds(&foo, "rotated"),
    )
    .await;
    assert_eq!(jwks.fetches(), fetched, "no fetch while the key was cached");
    assert!(
        agent.try_wait().unwrap().is_none(),
        "the agent kept running"
    );
    agent.start_kill().unwrap();
}
