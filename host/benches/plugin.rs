//! One evaluation of the `confidential-space` plugin in a fresh instance, on a ~2 KB claims
//! document, next to a native Rust implementation of the same checks.
//!
//! Build the plugins first: `(cd plugins && cargo build --release)`, then
//! `cargo bench -p attestgate --bench plugin`.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use attestgate::plugin::{EngineOptions, LimitOverrides, PluginEngine, PluginSpec};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

#[path = "native.rs"]
mod native;

const AUDIENCE: &str = "https://vault.bank-a.example";

const ALLOWED: native::Allowed<'static> = native::Allowed {
    image_digest: "sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646",
    service_account: "operator-svc-account@operator-project.iam.gserviceaccount.com",
};

fn config() -> Value {
    json!({
        "audience": AUDIENCE,
        "hwmodels": ["GCP_AMD_SEV", "GCP_INTEL_TDX"],
        "swnames": ["CONFIDENTIAL_SPACE"],
        "image_digests": ["sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646"],
        "projects": ["operator-project"],
        "service_accounts": ["operator-svc-account@operator-project.iam.gserviceaccount.com"],
        "min_swversion": "260600",
        "require_tdx_uptodate": true,
        "require_memory_monitoring_disabled": true
    })
}

fn claims_json() -> String {
    let mut claims = attestgate::dev::production_claims();
    attestgate::dev::merge_patch(
        &mut claims,
        &json!({"iss": attestgate::attestation::GOOGLE_ISSUER, "aud": AUDIENCE, "iat": 1_800_000_000, "nbf": 1_800_000_000,
                "exp": 1_800_003_600, "eat_nonce": ["0123456789abcdef0123", "fedcba9876543210fedc"],
                "submods": {"container": {
                    "image_signatures": [{"key_id": "projects/operator-project/locations/global/keyRings/signing/cryptoKeys/release/cryptoKeyVersions/1",
                        "signature": "MEUCIQDZ7e6x2b3JkYXRhIGZvciBhIHNpZ25hdHVyZSBvdmVyIHRoZSBpbWFnZSBkaWdlc3QuAiBhbm90aGVyIGhhbGYgb2YgdGhlIHNpZ25hdHVyZSBoZXJl",
                        "signature_algorithm": "ECDSA_P256_SHA256"}],
                    "env": {"LANG": "C.UTF-8", "RUST_LOG": "info", "ANALYTICS_MODE": "batch", "OUTPUT_BUCKET": "gs://operator-project-results/joint-analytics"}}}}),
    );
    claims.to_string()
}

fn bench_plugin(c: &mut Criterion) {
    let path = std::path::PathBuf::from(std::env::var("BENCH_PLUGIN").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/plugins/wasm32-wasip2/release/confidential_space.wasm"
        )
        .into()
    }));
    let bytes = std::fs::read(&path)
        .expect("build the plugins first: (cd plugins && cargo build --release)");
    let engine = PluginEngine::new(EngineOptions::default()).unwrap();
    let policy = engine
        .load(&PluginSpec {
            collaborator: "bank-a".into(),
            audience: None,
            path: path.clone(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            precompiled: None,
            config: config(),
            vault_role: None,
            limits: LimitOverrides::default(),
        })
        .unwrap();
    let claims = claims_json();
    assert!(
        policy
            .evaluate(&claims, 1_800_000_100)
            .unwrap()
            .verdict
            .allow
    );
    assert!(native::strict_checks(&claims, &ALLOWED));

    let mut group = c.benchmark_group("policy");
    group.bench_function(
        format!("wasm_fresh_instance_{}_byte_claims", claims.len()),
        |b| {
            b.iter(|| {
                policy
                    .evaluate(std::hint::black_box(&claims), 1_800_000_100)
                    .unwrap()
            })
        },
    );
    group.bench_function("native_same_checks", |b| {
        b.iter(|| native::strict_checks(std::hint::black_box(&claims), &ALLOWED))
    });
    group.finish();
}

criterion_group!(benches, bench_plugin);
criterion_main!(benches);
