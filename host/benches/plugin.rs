//! One evaluation of the `confidential-space` plugin in a fresh instance, on a ~2 KB claims
//! document, next to a native Rust implementation of the same checks.
//!
//! Build the plugins first: `(cd plugins && cargo build --release)`, then
//! `cargo bench -p attestgate --bench plugin`.

// criterion's macros generate undocumented public functions.
#![allow(missing_docs)]

use attestgate::plugin::{EngineOptions, LimitOverrides, PluginEngine, PluginSpec};
use criterion::{criterion_group, criterion_main, Criterion};
use sha2::{Digest, Sha256};

#[path = "native.rs"]
mod native;

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
            config: native::config(),
            vault_role: None,
            limits: LimitOverrides::default(),
        })
        .unwrap();
    let claims = native::claims_json();
    assert!(
        policy
            .evaluate(&claims, 1_800_000_100)
            .unwrap()
            .verdict
            .allow
    );
    assert!(native::strict_checks(&claims, &native::ALLOWED));

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
        b.iter(|| native::strict_checks(std::hint::black_box(&claims), &native::ALLOWED))
    });
    group.finish();
}

criterion_group!(benches, bench_plugin);
criterion_main!(benches);
