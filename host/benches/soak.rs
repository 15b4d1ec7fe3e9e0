//! The hot path under a long run: verify a token and judge it with three plugins
//! (`confidential-space`, `bound-claims`, `cel-role`), on one core, for a fresh token every
//! time, for ten minutes. Prints the latency (p50, p99) and the resident set per tenth of the
//! run; fails if the resident set keeps growing after the first tenth (a leak is a bug).
//!
//! Build the plugins first: `(cd plugins && cargo build --release)`, then
//! `cargo bench -p attestgate --bench soak` (ten minutes; `ATTESTGATE_SOAK_SECONDS` changes it).
//! As part of `cargo test --all-targets` it runs for three seconds.

#![allow(missing_docs)]

use attestgate::attestation::{JwksCache, KeySource, Verifier, VerifyPolicy, GOOGLE_ISSUER};
use attestgate::dev::{jwks, merge_patch, production_claims, SigningKey};
use attestgate::plugin::{EngineOptions, LimitOverrides, PluginEngine, PluginSpec};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const AUDIENCE: &str = "https://vault.bank-a.example";

fn plugin(
    engine: &PluginEngine,
    name: &str,
    file: &str,
    config: Value,
) -> attestgate::plugin::CollaboratorPolicy {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/plugins/wasm32-wasip2/release"
    ))
    .join(file);
    let bytes = std::fs::read(&path)
        .expect("build the plugins first: (cd plugins && cargo build --release)");
    engine
        .load(&PluginSpec {
            collaborator: name.into(),
            audience: None,
            path: path.clone(),
            sha256: hex::encode(Sha256::digest(&bytes)),
            precompiled: None,
            config,
            vault_role: Some(name.into()),
            limits: LimitOverrides::default(),
        })
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn read_json(relative: &str) -> Value {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(relative);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The resident set, in KiB, from /proc.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[index]) / 1000.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = std::env::var("ATTESTGATE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 600 } else { 3 });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key = SigningKey::generate().unwrap();
    let keys = JwksCache::new(
        KeySource::Inline(jwks([&key]).to_string()),
        Default::default(),
    )
    .unwrap();
    let verifier = Verifier::new(keys, VerifyPolicy::new(GOOGLE_ISSUER));

    let engine = PluginEngine::new(EngineOptions::default()).unwrap();
    let digest = production_claims()["submods"]["container"]["image_digest"].clone();
    let mut role = read_json("examples/roles/seed-role-corrected.json");
    role["bound_audiences"] = json!([AUDIENCE]);
    // The example CEL role, bound to the dev launcher's image and service account.
    let cel = read_json("examples/cel/confidential-space-role.json")
        .to_string()
        .replace(
            "sha256:3c5e0d8a6b1f4e2d9c7a8b6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d",
            digest.as_str().unwrap(),
        )
        .replace(
            "workload-sa@operator-project.iam.gserviceaccount.com",
            "operator-svc-account@operator-project.iam.gserviceaccount.com",
        );
    let policies = [
        plugin(
            &engine,
            "bank-a",
            "confidential_space.wasm",
            json!({"audience": AUDIENCE, "image_digests": [digest], "projects": ["operator-project"]}),
        ),
        plugin(&engine, "bank-b", "bound_claims.wasm", role),
        plugin(
            &engine,
            "bank-c",
            "cel_role.wasm",
            serde_json::from_str(&cel).unwrap(),
        ),
    ];

    let windows = 10;
    let window = Duration::from_secs(seconds).max(Duration::from_millis(100)) / windows;
    println!("verify + 3 plugins, one core, a fresh token each time, {seconds} s");
    println!(
        "{:>6} {:>8} {:>10} {:>10} {:>10}",
        "window", "tokens", "p50 µs", "p99 µs", "RSS KiB"
    );
    let mut rss = Vec::new();
    let mut serial: u64 = 0;
    for index in 0..windows {
        let end = Instant::now() + window;
        let mut latencies: Vec<u32> = Vec::new();
        while Instant::now() < end {
            serial += 1;
            let now = attestgate::attestation::unix_now();
            let mut claims = production_claims();
            merge_patch(
                &mut claims,
                &json!({"iss": GOOGLE_ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 3600,
                        "eat_nonce": format!("soak-{serial:016}")}),
            );
            let token = key.sign(Map::new(), &claims).unwrap();
            let started = Instant::now();
            let verified = runtime
                .block_on(verifier.verify_at(&token, AUDIENCE, now))
                .expect("verifies");
            for policy in &policies {
                let decision = policy
                    .evaluate(&verified.payload_json, now)
                    .expect("decides");
                assert!(decision.verdict.allow, "{:?}", decision.verdict.reasons);
            }
            latencies.push(started.elapsed().as_nanos().min(u128::from(u32::MAX)) as u32);
        }
        latencies.sort_unstable();
        let resident = rss_kib();
        rss.push(resident);
        println!(
            "{:>6} {:>8} {:>10.1} {:>10.1} {:>10}",
            index + 1,
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            resident
        );
    }
    // After the first tenth (allocator pools, caches) the resident set must stay flat.
    let (settled, last) = (rss[1], rss[rss.len() - 1]);
    let growth = (last as f64 - settled as f64) / settled as f64 * 100.0;
    println!("RSS after the first tenth {settled} KiB, at the end {last} KiB ({growth:+.1}%), {serial} tokens");
    if full {
        assert!(
            growth < 5.0,
            "the resident set grew {growth:.1}% over the run: a leak"
        );
    }
}
