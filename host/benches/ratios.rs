//! Every in-process hot path next to its floor, measured side by side in one run, so that the
//! ratio holds on a noisy or slower machine where absolute times do not:
//!
//! - verifying a 2.6 KB token with a cached JWKS, against one RSA-2048 verification in aws-lc
//!   (the library attestgate verifies with), key parsed and signature decoded beforehand;
//! - parsing alone (structure and JSON, no crypto), against its absolute goal;
//! - one `evaluate` of the `confidential-space` plugin (nine rules) in a fresh instance, against
//!   the same checks in native Rust;
//! - verify plus three plugins on one core, in tokens per second, against the RSA-only rate;
//! - the resident set of a process holding the ten plugins of a ten-collaborator configuration.
//!
//! Each pair is timed in alternating batches and the medians compared. Prints Markdown rows
//! (`| hot path | result | floor or competitor | ratio | goal | met |`), which `bench/run.sh`
//! gathers with the other benches' into one table. `cargo bench -p attestgate --bench ratios`
//! after building the plugins; as a test (`cargo test --benches`) it runs each row once.

#![allow(missing_docs)]

#[path = "common.rs"]
mod common;
#[path = "native.rs"]
mod native;

use attestgate::attestation::parse_unverified;
use attestgate::plugin::{
    Compiler, EngineOptions, LimitOverrides, PluginEngine, PluginSpec, Precompiled,
};
use aws_lc_rs::signature::{
    ParsedPublicKey, RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// How much measuring to do: `--bench` measures; a test run checks that every row works.
struct Effort {
    rounds: usize,
    batch: usize,
}

/// The medians of `a` and `b`, per call, timed in `rounds` alternating batches of `batch` calls.
fn side_by_side(effort: &Effort, mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    let batch = |f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..effort.batch {
            f();
        }
        started.elapsed() / effort.batch as u32
    };
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    for _ in 0..effort.rounds {
        times_a.push(batch(&mut a));
        times_b.push(batch(&mut b));
    }
    times_a.sort();
    times_b.sort();
    (times_a[times_a.len() / 2], times_b[times_b.len() / 2])
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// One row of the table; `ratio` is the result over the floor, or the floor over the result
/// for rates, as the goal reads.
fn row(path: &str, result: String, floor: &str, ratio: Option<f64>, goal: &str, met: Option<bool>) {
    let ratio = ratio
        .map(|r| format!("{r:.2}×"))
        .unwrap_or_else(|| "—".into());
    let met = match met {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "—",
    };
    println!("| {path} | {result} | {floor} | {ratio} | {goal} | {met} |");
}

/// The ten collaborators of one configuration: five distinct plugins, as (collaborator, file,
/// configuration).
fn ten_collaborators() -> Vec<(String, &'static str, serde_json::Value)> {
    let mut role = common::read_json("examples/roles/seed-role-corrected.json");
    role["bound_audiences"] = json!([common::AUDIENCE]);
    let cel = common::read_json("examples/cel/confidential-space-role.json");
    let window = json!({
        "audience": common::AUDIENCE,
        "trusted_key_ids": ["projects/operator-project/locations/global/keyRings/signing/cryptoKeys/release/cryptoKeyVersions/1"],
        "not_before": 1_700_000_000,
        "not_after": 1_900_000_000
    });
    let rego = json!({
        "audience": common::AUDIENCE,
        "policy": std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/rego/confidential-space.rego")).unwrap(),
        "data": common::read_json("examples/rego/confidential-space-data.json"),
    });
    let plugins: [(&str, serde_json::Value); 10] = [
        ("confidential_space.wasm", native::config()),
        (
            "confidential_space.wasm",
            json!({"audience": common::AUDIENCE}),
        ),
        (
            "confidential_space.wasm",
            json!({"audience": common::AUDIENCE, "projects": ["operator-project"]}),
        ),
        (
            "confidential_space.wasm",
            json!({"audience": common::AUDIENCE, "hwmodels": ["GCP_INTEL_TDX"]}),
        ),
        ("bound_claims.wasm", role.clone()),
        ("bound_claims.wasm", role),
        ("cel_role.wasm", cel.clone()),
        ("cel_role.wasm", cel),
        ("signed_image_window.wasm", window),
        ("rego_policy.wasm", rego),
    ];
    plugins
        .into_iter()
        .enumerate()
        .map(|(index, (file, config))| (format!("collaborator-{index}"), file, config))
        .collect()
}

fn plugin_path(file: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/plugins/wasm32-wasip2/release"
    ))
    .join(file)
}

/// In a fresh process: the ten collaborators' plugins loaded from the precompiled artifacts in
/// `dir` (as a production image does), each called once; prints the resident set in KiB with
/// the engine alone, with the plugins loaded, and after each has run once.
fn ten_plugins_child(dir: &std::path::Path) {
    // As the attestgate binary does first thing (`release_large_buffers` in main.rs).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a malloc parameter; no other thread runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
    let engine = common::new_engine();
    let claims = native::claims_json();
    let engine_only = common::rss_kib();
    let mut policies = Vec::new();
    for (name, file, config) in ten_collaborators() {
        let path = plugin_path(file);
        let artifact = dir.join(file).with_extension("cwasm");
        let policy = engine
            .load(&PluginSpec {
                collaborator: name,
                audience: None,
                sha256: attestgate::plugin::file_sha256(&path).unwrap(),
                path,
                precompiled: Some(Precompiled {
                    sha256: attestgate::plugin::file_sha256(&artifact).unwrap(),
                    path: artifact,
                }),
                config,
                vault_role: Some("role".into()),
                limits: LimitOverrides::default(),
            })
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        policies.push(policy);
    }
    let loaded = common::rss_kib();
    for policy in &policies {
        // A denial is fine here: what counts is that every plugin has run once.
        let _ = policy.evaluate(&claims, 1_800_000_100);
    }
    println!("{engine_only} {loaded} {}", common::rss_kib());
}

/// The resident set of a process holding the ten collaborators' plugins, in MB: with the engine
/// alone, with the plugins loaded, and after each has run once.
fn ten_plugins_rss() -> [f64; 3] {
    let dir = tempfile::tempdir().unwrap();
    let engine = common::new_engine();
    for (_, file, _) in ten_collaborators() {
        let artifact = dir.path().join(file).with_extension("cwasm");
        if !artifact.exists() {
            let (bytes, _) = engine.precompile_file(&plugin_path(file)).unwrap();
            std::fs::write(&artifact, bytes).unwrap();
        }
    }
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--ten-plugins")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(child.status.success(), "{child:?}");
    let sizes: Vec<f64> = String::from_utf8_lossy(&child.stdout)
        .split_whitespace()
        .map(|kib| kib.parse::<f64>().unwrap() / 1024.0)
        .collect();
    [sizes[0], sizes[1], sizes[2]]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(dir) = args
        .iter()
        .position(|a| a == "--ten-plugins")
        .map(|i| &args[i + 1])
    {
        ten_plugins_child(std::path::Path::new(dir));
        return;
    }
    let effort = if std::env::args().any(|a| a == "--bench") {
        Effort {
            rounds: 31,
            batch: 200,
        }
    } else {
        Effort {
            rounds: 1,
            batch: 1,
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (key, verifier) = common::signer_and_verifier();
    let now = attestgate::attestation::unix_now();
    let token = common::token(&key, now, "0123456789abcdef0123");
    let verify = || {
        runtime
            .block_on(verifier.verify_at(black_box(&token), common::AUDIENCE, now))
            .expect("the bench token verifies")
    };
    verify();

    // The floor: one RSA-2048 PKCS#1 v1.5 SHA-256 verification in aws-lc, nothing else.
    let public = RsaKeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
    let rsa_key = ParsedPublicKey::new(
        &RSA_PKCS1_2048_8192_SHA256,
        aws_lc_rs::signature::KeyPair::public_key(&public).as_ref(),
    )
    .unwrap();
    let (signing_input, signature_b64) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature_b64).unwrap();
    let rsa = || {
        rsa_key
            .verify_sig(black_box(signing_input.as_bytes()), black_box(&signature))
            .expect("the floor verifies")
    };
    rsa();

    println!("| hot path | result | floor or competitor | ratio | goal | met |");
    println!("|---|---|---|---|---|---|");
    let (verify_time, rsa_time) = side_by_side(
        &effort,
        || {
            verify();
        },
        rsa,
    );
    let ratio = verify_time.as_secs_f64() / rsa_time.as_secs_f64();
    row(
        &format!("verify a {}-byte token, cached JWKS", token.len()),
        micros(verify_time),
        &format!("one RSA-2048 verify in aws-lc, {}", micros(rsa_time)),
        Some(ratio),
        "≤ 1.3×",
        Some(ratio <= 1.3),
    );

    // What parsing the key at every verification cost (jsonwebtoken's way, until session 7).
    let jwk = key.jwk();
    let component = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    let (n, e) = (component("n"), component("e"));
    let (unparsed_time, parsed_time) = side_by_side(
        &effort,
        || {
            RsaPublicKeyComponents { n: &n, e: &e }
                .verify(
                    &RSA_PKCS1_2048_8192_SHA256,
                    black_box(signing_input.as_bytes()),
                    black_box(&signature),
                )
                .expect("verifies");
        },
        rsa,
    );
    let ratio = unparsed_time.as_secs_f64() / parsed_time.as_secs_f64();
    row(
        "one RSA verify, the key parsed from `n` and `e` each time (before session 7)",
        micros(unparsed_time),
        &format!("the key parsed once, {}", micros(parsed_time)),
        Some(ratio),
        "reported",
        None,
    );

    let (parse_time, _) = side_by_side(
        &effort,
        || {
            parse_unverified(black_box(&token)).unwrap();
        },
        || {},
    );
    row(
        "of which parsing alone (structure and JSON)",
        micros(parse_time),
        &format!(
            "{:.2}× the RSA floor",
            parse_time.as_secs_f64() / rsa_time.as_secs_f64()
        ),
        None,
        "≤ 3 µs",
        Some(parse_time <= Duration::from_micros(3)),
    );

    let engine = common::new_engine();
    let strict = common::plugin(
        &engine,
        "bank-a",
        "confidential_space.wasm",
        native::config(),
    );
    let claims = native::claims_json();
    assert!(
        strict
            .evaluate(&claims, 1_800_000_100)
            .unwrap()
            .verdict
            .allow
    );
    let (plugin_time, native_time) = side_by_side(
        &effort,
        || {
            strict.evaluate(black_box(&claims), 1_800_000_100).unwrap();
        },
        || {
            assert!(native::strict_checks(black_box(&claims), &native::ALLOWED));
        },
    );
    let ratio = plugin_time.as_secs_f64() / native_time.as_secs_f64();
    row(
        &format!(
            "plugin `evaluate`, fresh instance, 9 rules, {} B claims",
            claims.len()
        ),
        micros(plugin_time),
        &format!("the same checks in native Rust, {}", micros(native_time)),
        Some(ratio),
        "≤ 1.5×",
        Some(ratio <= 1.5),
    );

    // What Winch's code costs per call, the price of its fast compile in a one-shot run.
    let winch_engine = PluginEngine::new(EngineOptions {
        compiler: Compiler::Winch,
        ..EngineOptions::default()
    })
    .unwrap();
    let winch = common::plugin(
        &winch_engine,
        "bank-a",
        "confidential_space.wasm",
        native::config(),
    );
    let (winch_time, cranelift_time) = side_by_side(
        &effort,
        || {
            winch.evaluate(black_box(&claims), 1_800_000_100).unwrap();
        },
        || {
            strict.evaluate(black_box(&claims), 1_800_000_100).unwrap();
        },
    );
    row(
        "the same plugin call, compiled by Winch (one-shot runs)",
        micros(winch_time),
        &format!("compiled by Cranelift, {}", micros(cranelift_time)),
        Some(winch_time.as_secs_f64() / cranelift_time.as_secs_f64()),
        "reported",
        None,
    );

    // Distinct tokens, signed beforehand: the loop verifies and judges only.
    let policies = common::three_policies(&engine);
    let tokens: Vec<String> = (0..effort.batch.clamp(1, 64))
        .map(|serial| common::token(&key, now, &format!("ratios-{serial:016}")))
        .collect();
    let mut next = 0;
    let (hot_time, _) = side_by_side(
        &effort,
        || {
            let token = &tokens[next % tokens.len()];
            next += 1;
            let verified = runtime
                .block_on(verifier.verify_at(token, common::AUDIENCE, now))
                .unwrap();
            for policy in &policies {
                assert!(
                    policy
                        .evaluate(&verified.payload_json, now)
                        .unwrap()
                        .verdict
                        .allow
                );
            }
        },
        || {},
    );
    let (hot_rate, rsa_rate) = (1.0 / hot_time.as_secs_f64(), 1.0 / rsa_time.as_secs_f64());
    let ratio = hot_rate / rsa_rate;
    row(
        "verify + 3 plugins, one core, distinct tokens",
        format!("{hot_rate:.0} tokens/s"),
        &format!("RSA verify alone, {rsa_rate:.0}/s"),
        Some(ratio),
        "≥ 0.5",
        Some(ratio >= 0.5),
    );

    let [engine_mb, loaded_mb, rss_mb] = ten_plugins_rss();
    row(
        "RSS of a process holding a 10-collaborator config's plugins (5 distinct, precompiled)",
        format!("{rss_mb:.1} MB"),
        &format!(
            "the engine alone {engine_mb:.1} MB; plugins loaded {:.1} MB more; their first calls {:.1} MB more",
            loaded_mb - engine_mb,
            rss_mb - loaded_mb
        ),
        None,
        "≤ 40 MB",
        Some(rss_mb <= 40.0),
    );
}
