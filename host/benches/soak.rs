//! The hot path under a long run: verify a token and judge it with three plugins
//! (`confidential-space`, `bound-claims`, `cel-role`), on one core, for a fresh token every
//! time, for ten minutes. Prints the latency (p50, p99) and the resident set per tenth of the
//! run; fails if the resident set keeps growing after the first tenth (a leak is a bug).
//!
//! Build the plugins first: `(cd plugins && cargo build --release)`, then
//! `cargo bench -p attestgate --bench soak` (ten minutes; `ATTESTGATE_SOAK_SECONDS` changes it).
//! As part of `cargo test --all-targets` it runs for three seconds.

#![allow(missing_docs)]

#[path = "common.rs"]
mod common;

use common::{rss_kib, AUDIENCE};
use std::time::{Duration, Instant};

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
    let (key, verifier) = common::signer_and_verifier();
    let engine = common::new_engine();
    let policies = common::three_policies(&engine);

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
            let token = common::token(&key, now, &format!("soak-{serial:016}"));
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
