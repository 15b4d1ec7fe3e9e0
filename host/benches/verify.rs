//! Verifying a ~2 KB Confidential Space token with a cached JWKS: RS256 signature, structure and
//! claims. Run with `cargo bench -p attestgate --bench verify`.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use attestgate::attestation::unix_now;
use attestgate::attestation::KeyCacheOptions;
use attestgate::attestation::{JwksCache, KeySource, Verifier, VerifyPolicy, GOOGLE_ISSUER};
use attestgate::dev::{jwks, SigningKey};
use attestgate::dev::{merge_patch, production_claims};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map};

const AUDIENCE: &str = "https://vault.bank-a.example";

fn bench_verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let key = SigningKey::generate().unwrap();
    let now = unix_now();
    let mut claims = production_claims();
    merge_patch(
        &mut claims,
        &json!({
            "iss": GOOGLE_ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 3600,
            "eat_nonce": ["0123456789abcdef0123", "fedcba9876543210fedc"],
            "hwmodel": "GCP_INTEL_TDX", "attester_tcb": ["INTEL"],
            "tdx": {"gcp_attester_tcb_status": "UpToDate", "gcp_attester_tcb_date": "2026-08-12T00:00:00Z"}
        }),
    );
    let token = key.sign(Map::new(), &claims).unwrap();
    let keys = JwksCache::new(
        KeySource::Inline(jwks([&key]).to_string()),
        KeyCacheOptions::default(),
    )
    .unwrap();
    let verifier = Verifier::new(keys, VerifyPolicy::new(GOOGLE_ISSUER));
    runtime
        .block_on(verifier.verify(&token, AUDIENCE))
        .expect("the bench token verifies");

    let mut group = c.benchmark_group("verify");
    group.throughput(criterion::Throughput::Bytes(token.len() as u64));
    group.bench_function(format!("rs256_cached_jwks_{}_bytes", token.len()), |b| {
        b.iter(|| {
            runtime
                .block_on(verifier.verify(std::hint::black_box(&token), AUDIENCE))
                .unwrap()
        })
    });
    group.bench_function("parse_only", |b| {
        b.iter(|| attestgate::attestation::parse_unverified(std::hint::black_box(&token)).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
