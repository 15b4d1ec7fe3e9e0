//! What each plugin language costs, side by side in one run: the golden rules
//! (`tests/fixtures/golden/`) written in Rust, as a CEL role, as a Rego policy, and in
//! JavaScript and Python when their components are built, next to the same checks in native Rust.
//!
//! For each: the cold compile (cranelift, what a one-shot `exchange` pays without a precompiled
//! artifact), loading its precompiled artifact, a fresh instance with `select-audience` (the
//! cheapest call), and `evaluate` in a fresh instance on the production claims. Medians, with
//! the ratio to the Rust plugin and to native Rust.
//!
//! `cargo bench -p attestgate --bench languages` after building the plugins (`tests/run.sh`
//! builds them all). Run as a test (`cargo test --benches`), it checks the Rust plugin once.

#![allow(missing_docs)]

// Only the checks: this bench takes its claims and configuration from the golden fixtures.
#[allow(dead_code)]
#[path = "native.rs"]
mod native;

use attestgate::plugin::{
    Compiler, EngineOptions, LimitOverrides, PluginEngine, PluginSpec, Precompiled,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const AT: i64 = 1_900_000_000;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every language's plugin file and its configuration for the golden rules; `None` when that
/// language's component is not built.
fn languages() -> Vec<(&'static str, PathBuf, Value)> {
    let wasm = |dir: &str, file: &str| root().join("target/plugins").join(dir).join(file);
    let golden = root().join("tests/fixtures/golden");
    let rego = root().join("examples/rego");
    let candidates = vec![
        (
            "Rust (confidential-space)",
            wasm("wasm32-wasip2/release", "confidential_space.wasm"),
            read_json(&golden.join("confidential-space.json")),
        ),
        (
            "CEL (cel-role)",
            wasm("wasm32-wasip2/release", "cel_role.wasm"),
            read_json(&root().join("examples/cel/confidential-space-role.json")),
        ),
        (
            "Rego (rego-policy)",
            wasm("wasm32-wasip2/release", "rego_policy.wasm"),
            json!({
                "audience": "https://vault.bank-a.example",
                "policy": std::fs::read_to_string(rego.join("confidential-space.rego")).unwrap(),
                "data": read_json(&rego.join("confidential-space-data.json")),
            }),
        ),
        (
            "JavaScript (componentize-js)",
            wasm("js", "confidential_space_js.wasm"),
            read_json(&golden.join("confidential-space.json")),
        ),
        (
            "Python (componentize-py)",
            wasm("python", "confidential_space_py.wasm"),
            read_json(&golden.join("confidential-space.json")),
        ),
    ];
    candidates
        .into_iter()
        .filter(|(_, path, _)| path.exists())
        .collect()
}

fn spec(path: &Path, config: &Value, precompiled: Option<Precompiled>) -> PluginSpec {
    PluginSpec {
        collaborator: "bank-a".into(),
        audience: None,
        path: path.to_owned(),
        sha256: attestgate::plugin::file_sha256(path).unwrap(),
        precompiled,
        config: config.clone(),
        vault_role: None,
        limits: LimitOverrides::default(),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The median of `runs` timings of `f`.
fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let started = Instant::now();
                f();
                started.elapsed()
            })
            .collect(),
    )
}

struct Row {
    language: &'static str,
    size: u64,
    compile: Duration,
    load_artifact: Duration,
    instance: Duration,
    evaluate: Duration,
    /// The same with Winch, the compiler of one-shot runs: its compile and its calls.
    winch_compile: Duration,
    winch_evaluate: Duration,
}

fn measure(language: &'static str, path: &Path, config: &Value, claims: &str, runs: usize) -> Row {
    let options = EngineOptions::default();
    let compile = time(runs.min(3), || {
        let engine = PluginEngine::new(options.clone()).unwrap();
        engine.precompile_file(path).unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let engine = PluginEngine::new(options.clone()).unwrap();
    let (artifact, artifact_sha256) = engine.precompile_file(path).unwrap();
    let artifact_path = dir.path().join("plugin.cwasm");
    std::fs::write(&artifact_path, artifact).unwrap();
    let precompiled = Precompiled {
        path: artifact_path,
        sha256: artifact_sha256,
    };
    let load_artifact = time(runs.min(10), || {
        let engine = PluginEngine::new(options.clone()).unwrap();
        engine
            .load(&spec(path, config, Some(precompiled.clone())))
            .unwrap();
    });
    let policy = engine.load(&spec(path, config, None)).unwrap();
    let decision = policy.evaluate(claims, AT).unwrap();
    assert!(decision.verdict.allow, "{language}: {:?}", decision.verdict);
    let instance = time(runs, || {
        policy.select_audience().unwrap();
    });
    let evaluate = time(runs, || {
        policy.evaluate(std::hint::black_box(claims), AT).unwrap();
    });
    let winch_options = EngineOptions {
        compiler: Compiler::Winch,
        ..options
    };
    let winch_compile = time(runs.min(3), || {
        let engine = PluginEngine::new(winch_options.clone()).unwrap();
        engine.precompile_file(path).unwrap();
    });
    let winch = PluginEngine::new(winch_options).unwrap();
    let winch_policy = winch.load(&spec(path, config, None)).unwrap();
    let winch_evaluate = time(runs, || {
        winch_policy
            .evaluate(std::hint::black_box(claims), AT)
            .unwrap();
    });
    Row {
        language,
        size: std::fs::metadata(path).unwrap().len(),
        compile,
        load_artifact,
        instance,
        evaluate,
        winch_compile,
        winch_evaluate,
    }
}

fn show(d: Duration) -> String {
    if d >= Duration::from_millis(10) {
        format!("{:.0} ms", d.as_secs_f64() * 1e3)
    } else if d >= Duration::from_millis(1) {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    }
}

fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.1}×", a.as_secs_f64() / b.as_secs_f64())
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let claims =
        std::fs::read_to_string(root().join("tests/fixtures/golden/claims/production.json"))
            .unwrap();
    let claims: Value = serde_json::from_str(&claims).unwrap();
    let claims = claims.to_string();
    // The golden configuration's values, so the native checks are the plugins' rules exactly.
    let golden = read_json(&root().join("tests/fixtures/golden/confidential-space.json"));
    let first = |key: &str| golden[key][0].as_str().unwrap().to_owned();
    let (image_digest, service_account) = (first("image_digests"), first("service_accounts"));
    let allowed = native::Allowed {
        image_digest: &image_digest,
        service_account: &service_account,
    };
    assert!(native::strict_checks(&claims, &allowed));
    let mut languages = languages();
    if !bench {
        // As a test: the bench works, on the one plugin every build has.
        languages.truncate(1);
    }
    let runs = if bench { 200 } else { 1 };
    let native = time(runs.max(1000), || {
        native::strict_checks(std::hint::black_box(&claims), &allowed);
    });
    let rows: Vec<Row> = languages
        .iter()
        .map(|(language, path, config)| measure(language, path, config, &claims, runs))
        .collect();
    let rust = &rows[0];
    println!("| plugin | size | cold compile | load precompiled | fresh instance + select-audience | evaluate | evaluate / Rust plugin | evaluate / native Rust | Winch: compile, evaluate |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in &rows {
        println!(
            "| {} | {:.1} MB | {} ({}) | {} ({}) | {} | {} | {} | {} | {}, {} ({} Cranelift's) |",
            row.language,
            row.size as f64 / 1e6,
            show(row.compile),
            ratio(row.compile, rust.compile),
            show(row.load_artifact),
            ratio(row.load_artifact, rust.load_artifact),
            show(row.instance),
            show(row.evaluate),
            ratio(row.evaluate, rust.evaluate),
            ratio(row.evaluate, native),
            show(row.winch_compile),
            show(row.winch_evaluate),
            ratio(row.winch_evaluate, row.evaluate),
        );
    }
    println!(
        "| native Rust, the same checks | | | | | {} | | 1.0× | |",
        show(native)
    );
    if std::env::args().any(|a| a == "--rows") {
        println!();
        print_rows(&rows);
    }
}

/// The interpreter and runtime plugins as rows of `bench/run.sh`'s table: against the Rust
/// plugin, and the CEL and Rego ones against their engines run natively on the same rules (from
/// `ATTESTGATE_NATIVE_US`, e.g. `cel=120.5,rego=900.1`, measured by the plugins' native tests).
/// The issue sets no goal for these rows: they are reported.
fn print_rows(rows: &[Row]) {
    let native_us = |engine: &str| -> Option<f64> {
        std::env::var("ATTESTGATE_NATIVE_US")
            .ok()?
            .split(',')
            .find_map(|pair| pair.strip_prefix(&format!("{engine}="))?.parse().ok())
    };
    let rust = &rows[0];
    let cold = |row: &Row| row.load_artifact + row.instance;
    for row in &rows[1..] {
        let name = row.language.split(' ').next().unwrap_or(row.language);
        let engine = match name {
            "CEL" => Some(("cel", "the `cel` crate")),
            "Rego" => Some(("rego", "regorus")),
            _ => None,
        };
        if let Some(us) = engine.and_then(|(key, _)| native_us(key)) {
            let floor = Duration::from_secs_f64(us / 1e6);
            println!(
                "| {name} plugin `evaluate`, golden rules | {} | {} natively, same rules, {} | {} | reported | — |",
                show(row.evaluate),
                engine.map_or("", |(_, e)| e),
                show(floor),
                ratio(row.evaluate, floor)
            );
        }
        println!(
            "| {name} plugin `evaluate`, golden rules | {} | the Rust plugin, {} | {} | reported | — |",
            show(row.evaluate),
            show(rust.evaluate),
            ratio(row.evaluate, rust.evaluate)
        );
        println!(
            "| {name} plugin `evaluate` compiled by Winch (one-shot runs) | {} | compiled by Cranelift, {} | {} | reported | — |",
            show(row.winch_evaluate),
            show(row.evaluate),
            ratio(row.winch_evaluate, row.evaluate)
        );
        if matches!(name, "JavaScript" | "Python") {
            println!(
                "| {name} plugin cold start (load precompiled, first call) | {} | the Rust plugin, {} | {} | reported | — |",
                show(cold(row)),
                show(cold(rust)),
                ratio(cold(row), cold(rust))
            );
        }
    }
}
