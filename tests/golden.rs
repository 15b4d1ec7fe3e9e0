//! The golden cases (`tests/fixtures/golden/`): the same claims, judged by the same rules written
//! in every plugin language, must get the same verdicts as the Rust reference plugin. Languages
//! whose reasons name claims (Rust, JavaScript, Python) must also fail the same claims.

use crate::harness::plugins::{
    engine, plugin_spec, plugin_spec_at, precompiled, scripted_plugin, ScriptedPlugin,
};
use crate::harness::{attestgate, workspace_root};
use attestgate::plugin::{PluginSpec, Verdict};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Golden {
    at: i64,
    audience: String,
    role: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    case: String,
    claims: PathBuf,
    expect: String,
    failed_claims: Vec<String>,
}

fn golden_dir() -> PathBuf {
    workspace_root().join("tests/fixtures/golden")
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn golden() -> Golden {
    serde_json::from_value(read_json(&golden_dir().join("cases.json"))).unwrap()
}

/// Runs every golden case through `spec`; `names_claims` says whether the language's reasons
/// point at claims (a CEL or Rego denial is one message about the whole program).
fn assert_golden(language: &str, mut spec: PluginSpec, names_claims: bool) {
    let golden = golden();
    spec.audience = Some(golden.audience.clone());
    let policy = engine()
        .load(&spec)
        .unwrap_or_else(|e| panic!("{language}: {e}"));
    let audience = policy.select_audience().unwrap();
    assert_eq!(audience.audience, golden.audience, "{language}");
    for case in &golden.cases {
        let claims = read_json(&golden_dir().join(&case.claims));
        let verdict: Verdict = policy
            .evaluate(&claims.to_string(), golden.at)
            .unwrap_or_else(|e| panic!("{language} on {}: {e}", case.case))
            .verdict;
        assert_eq!(
            verdict.allow,
            case.expect == "allow",
            "{language} on {}: {:?}",
            case.case,
            verdict.reasons
        );
        if verdict.allow {
            assert!(
                verdict.login.role.is_none() || verdict.login.role.as_deref() == Some(&golden.role),
                "{language}: {:?}",
                verdict.login
            );
        } else {
            assert!(verdict.reasons.iter().any(|r| !r.passed), "{language}");
        }
        if names_claims {
            let failed: BTreeSet<&str> = verdict
                .reasons
                .iter()
                .filter(|r| !r.passed)
                .filter_map(|r| r.claim.as_deref())
                .collect();
            let expected: BTreeSet<&str> = case.failed_claims.iter().map(String::as_str).collect();
            assert_eq!(failed, expected, "{language} on {}", case.case);
        }
    }
}

#[test]
fn the_rust_reference_plugin_passes_the_golden_cases() {
    let config = read_json(&golden_dir().join("confidential-space.json"));
    assert_golden("rust", plugin_spec("confidential-space", config), true);
}

#[test]
fn a_cel_role_passes_the_golden_cases() {
    let role = read_json(&workspace_root().join("examples/cel/confidential-space-role.json"));
    assert_golden("cel", plugin_spec("cel-role", role), false);
}

#[test]
fn a_rego_policy_passes_the_golden_cases() {
    let rego = workspace_root().join("examples/rego");
    let config = serde_json::json!({
        "audience": golden().audience,
        "policy": std::fs::read_to_string(rego.join("confidential-space.rego")).unwrap(),
        "data": read_json(&rego.join("confidential-space-data.json")),
    });
    assert_golden("rego", plugin_spec("rego-policy", config), false);
}

/// A plugin built by its language's script, loaded from a precompiled artifact (compiled once
/// per test process: cranelift takes tens of seconds on a component with a runtime inside).
fn scripted_spec(plugin: ScriptedPlugin) -> PluginSpec {
    let wasm = scripted_plugin(plugin);
    let config = read_json(&golden_dir().join("confidential-space.json"));
    let mut spec = plugin_spec_at(wasm.clone(), config);
    spec.precompiled = Some(precompiled(&wasm));
    spec
}

#[test]
fn the_python_plugin_passes_the_golden_cases() {
    assert_golden("python", scripted_spec(ScriptedPlugin::Python), true);
}

#[test]
fn the_javascript_plugin_passes_the_golden_cases() {
    assert_golden(
        "javascript",
        scripted_spec(ScriptedPlugin::JavaScript),
        true,
    );
}

/// The golden cases through `attestgate plugin test --expect`, as a plugin author's CI runs them,
/// with the artifact precompiled once (`--compiled`) so each run starts in milliseconds.
fn assert_golden_cli(language: &str, plugin: ScriptedPlugin) {
    let golden = golden();
    let wasm = scripted_plugin(plugin);
    let artifact = precompiled(&wasm).path;
    let config = golden_dir().join("confidential-space.json");
    let at = golden.at.to_string();
    for case in &golden.cases {
        let claims = golden_dir().join(&case.claims);
        let out = attestgate(
            &[
                "plugin",
                "test",
                wasm.to_str().unwrap(),
                "--compiled",
                artifact.to_str().unwrap(),
                "--claims",
                claims.to_str().unwrap(),
                "--plugin-config",
                config.to_str().unwrap(),
                "--audience",
                &golden.audience,
                "--at",
                &at,
                "--expect",
                &case.expect,
                "--format",
                "json",
            ],
            None,
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{language} on {}: {stdout} {}",
            case.case,
            String::from_utf8_lossy(&out.stderr)
        );
        let verdict: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            verdict["allow"],
            case.expect == "allow",
            "{language}: {verdict}"
        );
        assert_eq!(verdict["audience"]["audience"], golden.audience.as_str());
    }
}

#[test]
fn the_python_plugin_passes_the_golden_cases_through_plugin_test() {
    assert_golden_cli("python", ScriptedPlugin::Python);
}

#[test]
fn the_javascript_plugin_passes_the_golden_cases_through_plugin_test() {
    assert_golden_cli("javascript", ScriptedPlugin::JavaScript);
}
