//! The plugin sandbox and contract: hostile plugins end in a clean deny or refusal with the right
//! kind of error and leave the host healthy; reference plugins decide correctly; calls are isolated.

use crate::harness::plugins::{engine, plugin_spec, plugin_spec_at, plugin_wasm, sha256_file};
use crate::harness::{claims_with, corrected_role, production_claims, AUDIENCE};
use attestgate::plugin::{
    ArtifactProblem, Compiler, ContractViolation, EngineOptions, FailureKind, Limits, PluginEngine,
    PluginError, PluginSpec, Precompiled,
};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

fn hostile(attack: &str) -> PluginSpec {
    let mut spec = plugin_spec("hostile", json!({"attack": attack}));
    spec.limits = Limits {
        deadline_ms: 50,
        memory_bytes: 16 << 20,
        log_bytes: 4096,
    }
    .into();
    spec
}

fn now() -> i64 {
    attestgate::attestation::unix_now()
}

fn evaluate(spec: &PluginSpec, claims: &Value) -> Result<attestgate::plugin::Verdict, PluginError> {
    let policy = engine().load(spec)?;
    policy
        .evaluate(&claims.to_string(), now())
        .map(|d| d.verdict)
}

/// After any misbehaviour, a good plugin must still work on the same engine.
fn assert_host_healthy() {
    let good = plugin_spec("confidential-space", json!({"audience": AUDIENCE}));
    let verdict = evaluate(&good, &production_claims(AUDIENCE)).expect("a good plugin still runs");
    assert!(verdict.allow, "{verdict:?}");
}

fn failure(attack: &str) -> FailureKind {
    failure_of(&hostile(attack))
}

fn failure_of(spec: &PluginSpec) -> FailureKind {
    let err = evaluate(spec, &production_claims(AUDIENCE))
        .expect_err("the attack must not produce a verdict");
    assert!(
        err.to_string().contains("bank-a"),
        "the error names the collaborator: {err}"
    );
    let kind = err
        .failure()
        .cloned()
        .unwrap_or_else(|| panic!("not a call failure: {err}"));
    assert_host_healthy();
    kind
}

#[test]
fn an_infinite_loop_hits_the_deadline() {
    let started = std::time::Instant::now();
    assert_eq!(
        failure("infinite-loop"),
        FailureKind::Deadline(Duration::from_millis(50))
    );
    // Generous bound: only proves the loop was cut off rather than run to some natural end.
    assert!(started.elapsed() < Duration::from_secs(20));
}

#[test]
fn unbounded_memory_growth_hits_the_memory_cap() {
    // A deadline long enough that only the memory cap can stop it, even on a loaded machine.
    let mut spec = hostile("memory-bomb");
    spec.limits.deadline_ms = Some(10_000);
    assert_eq!(failure_of(&spec), FailureKind::Memory(16 << 20));
}

#[test]
fn a_log_flood_hits_the_log_limit() {
    assert_eq!(failure("flood-log"), FailureKind::LogLimit(4096));
    assert_eq!(failure("stdout-flood"), FailureKind::LogLimit(4096));
}

#[test]
fn a_panic_is_a_trap_with_its_message() {
    match failure("panic") {
        FailureKind::Trap(message) => assert!(message.contains("unreachable"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
}

#[test]
fn a_malformed_verdict_is_a_bad_return() {
    match failure("malformed-verdict") {
        FailureKind::BadReturn(violation) => {
            assert_eq!(violation, ContractViolation::AllowWithoutReason)
        }
        other => panic!("expected a bad return, got {other:?}"),
    }
    match failure("allow-with-failed-reason") {
        FailureKind::BadReturn(violation) => assert!(
            matches!(violation, ContractViolation::AllowDespiteFailure(_)),
            "{violation}"
        ),
        other => panic!("expected a bad return, got {other:?}"),
    }
}

/// These plugins report what the sandbox let them do; a pass means the attempt was refused.
fn sandbox_report(attack: &str) -> String {
    let verdict =
        evaluate(&hostile(attack), &production_claims(AUDIENCE)).expect("the plugin runs");
    assert!(
        verdict.allow,
        "the sandbox let the plugin through: {:?}",
        verdict.reasons
    );
    verdict.reasons[0].message.clone()
}

#[test]
fn the_sandbox_has_no_filesystem() {
    // The plugin tries an absolute path, its working directory and the root: none may answer.
    let message = sandbox_report("read-file");
    assert!(message.starts_with("file read failed"), "{message}");
    for attempt in ["read /etc/passwd", "list .", "list /", "read ./Cargo.toml"] {
        assert!(
            message.contains(attempt),
            "{attempt} was not refused: {message}"
        );
    }
}

#[test]
fn the_sandbox_has_no_network() {
    // A listener that would accept: a refused connection cannot pass for a missing network.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let spec = plugin_spec(
        "hostile",
        json!({"attack": "open-socket", "target": target}),
    );
    let verdict = evaluate(&spec, &production_claims(AUDIENCE)).expect("the plugin runs");
    let message = &verdict.reasons[0].message;
    assert!(verdict.allow, "the plugin reached {target}: {message}");
    assert!(message.starts_with("socket failed"), "{message}");
    listener.set_nonblocking(true).unwrap();
    assert_eq!(
        listener.accept().map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::WouldBlock),
        "a connection reached the listener"
    );
}

#[test]
fn the_sandbox_has_no_environment_or_arguments() {
    std::env::set_var("ATTESTGATE_TEST_SECRET", "must-not-leak");
    assert_eq!(
        sandbox_report("read-env"),
        "environment and arguments are empty"
    );
}

#[test]
fn the_wasi_clock_is_frozen_at_the_verification_time() {
    let policy = engine().load(&hostile("clock")).unwrap();
    let verdict = policy
        .evaluate(&production_claims(AUDIENCE).to_string(), 1_234_567_890)
        .unwrap()
        .verdict;
    assert_eq!(verdict.reasons[0].message, "wall clock says 1234567890");
}

#[test]
fn two_evaluations_share_no_state() {
    let policy = engine().load(&hostile("count")).unwrap();
    for _ in 0..3 {
        let verdict = policy
            .evaluate(&production_claims(AUDIENCE).to_string(), now())
            .unwrap()
            .verdict;
        assert_eq!(verdict.reasons[0].message, "call number 1");
    }
}

#[test]
fn a_plugin_built_for_another_contract_is_refused() {
    // A newer contract, and an older one (whose plugin imports `verification-time`, which 0.2.0
    // stopped offering: the version is what refuses it, before linking could).
    for (plugin, found) in [("future-contract", "0.4.0"), ("old-contract", "0.1.0")] {
        let err = engine().load(&plugin_spec(plugin, json!({}))).unwrap_err();
        match &err {
            PluginError::ContractVersion {
                found: built,
                expected,
                ..
            } => {
                assert_eq!(built, &format!("attestgate:policy@{found}"));
                assert_eq!(*expected, attestgate::plugin::CONTRACT_VERSION);
            }
            other => panic!("{plugin}: expected a contract-version refusal, got {other}"),
        }
        let text = err.to_string();
        assert!(
            text.contains(&format!("attestgate:policy@{found}"))
                && text.contains(&format!(
                    "attestgate:policy@{}",
                    attestgate::plugin::CONTRACT_VERSION
                )),
            "both versions are named: {text}"
        );
    }
}

#[test]
fn a_digest_mismatch_is_refused_naming_both_digests() {
    let mut pinned = plugin_spec("confidential-space", json!({"audience": AUDIENCE}));
    let actual = pinned.sha256.clone();
    pinned.sha256 = "0".repeat(64);
    let err = engine().load(&pinned).unwrap_err();
    assert!(matches!(err, PluginError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().contains(&actual) && err.to_string().contains(&"0".repeat(64)));
}

#[test]
fn bytes_that_are_not_wasm_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("not.wasm");
    std::fs::write(&path, b"#!/bin/sh\necho hello\n").unwrap();
    let spec = plugin_spec_at(path, json!({}));
    let err = engine().load(&spec).unwrap_err();
    assert!(matches!(err, PluginError::NotWasm { .. }), "{err}");
    assert!(err.to_string().contains("magic bytes"), "{err}");
}

#[test]
fn a_bad_configuration_is_refused_at_load_time() {
    let err = engine()
        .load(&plugin_spec(
            "confidential-space",
            json!({"audience": AUDIENCE, "projcts": ["x"]}),
        ))
        .unwrap_err();
    match err.failure() {
        Some(FailureKind::Rejected(message)) => {
            assert!(message.contains("unknown field `projcts`"), "{message}")
        }
        other => panic!("expected a rejected configuration, got {other:?}: {err}"),
    }
    let err = engine()
        .load(&plugin_spec(
            "confidential-space",
            json!({"audience": AUDIENCE, "image_digests": ["sha256:abc "]}),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("stray spaces"), "{err}");
}

#[test]
fn a_reason_claim_that_is_not_a_json_pointer_is_a_bad_return() {
    match failure("claim-not-a-pointer") {
        FailureKind::BadReturn(ContractViolation::ClaimNotAPointer(claim)) => {
            assert_eq!(claim, "hwmodel")
        }
        other => panic!("expected a claim that is not a pointer, got {other:?}"),
    }
}

#[test]
fn a_login_role_that_could_forge_output_is_a_bad_return() {
    // A role with a newline would print as a second line of attestgate's own report.
    match failure("login-role-with-newline") {
        FailureKind::BadReturn(ContractViolation::BadRole(role)) => {
            assert!(!role.contains('\n'), "shown escaped: {role}")
        }
        other => panic!("expected a bad role, got {other:?}"),
    }
}

fn cs(config: Value, claims: &Value) -> attestgate::plugin::Verdict {
    let mut config = config;
    config["audience"] = json!(AUDIENCE);
    evaluate(&plugin_spec("confidential-space", config), claims).unwrap()
}

fn failed_claims(verdict: &attestgate::plugin::Verdict) -> Vec<String> {
    verdict
        .failed_reasons()
        .map(|r| r.claim.clone().unwrap_or_default())
        .collect()
}

#[test]
fn confidential_space_selects_its_audience_and_nonces() {
    let nonce = "abcdefghijklmnop";
    let policy = engine()
        .load(&plugin_spec(
            "confidential-space",
            json!({"audience": AUDIENCE, "nonces": [nonce], "vault_role": "analytics"}),
        ))
        .unwrap();
    let request = policy.select_audience().unwrap();
    assert_eq!(request.audience, AUDIENCE);
    assert_eq!(request.nonces, vec![nonce]);
    let verdict = policy
        .evaluate(&production_claims(AUDIENCE).to_string(), now())
        .unwrap()
        .verdict;
    assert_eq!(verdict.login.role.as_deref(), Some("analytics"));
}

#[test]
fn confidential_space_allows_production_and_denies_debug() {
    let strict = json!({
        "hwmodels": ["GCP_AMD_SEV", "GCP_INTEL_TDX"], "swnames": ["CONFIDENTIAL_SPACE"],
        "projects": ["operator-project"], "min_swversion": "260600",
        "service_accounts": ["operator-svc-account@operator-project.iam.gserviceaccount.com"],
        "require_tdx_uptodate": true, "require_memory_monitoring_disabled": true
    });
    let production = cs(strict.clone(), &production_claims(AUDIENCE));
    assert!(production.allow, "{:?}", production.reasons);
    assert!(production.reasons.len() >= 9);

    let debug = claims_with(
        AUDIENCE,
        json!({"dbgstat": "enabled", "submods": {"confidential_space": {"support_attributes": null}}}),
    );
    let verdict = cs(strict.clone(), &debug);
    assert!(!verdict.allow);
    assert_eq!(
        failed_claims(&verdict),
        vec!["/dbgstat", "/submods/confidential_space/support_attributes"]
    );
    assert!(verdict
        .reasons
        .iter()
        .any(|r| r.message.contains("absent (as on debug images)")));
}

#[test]
fn confidential_space_checks_tdx_tcb_status() {
    let config = json!({"require_tdx_uptodate": true});
    let tdx = |status: &str| {
        claims_with(
            AUDIENCE,
            json!({"hwmodel": "GCP_INTEL_TDX", "tdx": {"gcp_attester_tcb_status": status}}),
        )
    };
    assert!(cs(config.clone(), &tdx("UpToDate")).allow);
    let stale = cs(config.clone(), &tdx("OutOfDate"));
    assert_eq!(failed_claims(&stale), vec!["/tdx/gcp_attester_tcb_status"]);
    let array = claims_with(
        AUDIENCE,
        json!({"hwmodel": "GCP_INTEL_TDX", "tdx": [{"gcp_attester_tcb_status": "UpToDate"}]}),
    );
    assert!(
        cs(config, &array).allow,
        "the documented array shape works too"
    );
}

#[test]
fn confidential_space_handles_missing_and_list_claims() {
    let missing_project = claims_with(AUDIENCE, json!({"submods": {"gce": {"project_id": null}}}));
    let verdict = cs(json!({"projects": ["operator-project"]}), &missing_project);
    assert_eq!(failed_claims(&verdict), vec!["/submods/gce/project_id"]);
    assert!(verdict
        .reasons
        .iter()
        .any(|r| r.message.contains("is missing")));

    let several_accounts = claims_with(
        AUDIENCE,
        json!({"google_service_accounts": ["other@x.iam.gserviceaccount.com", "ok@x.iam.gserviceaccount.com"]}),
    );
    assert!(
        cs(
            json!({"service_accounts": ["ok@x.iam.gserviceaccount.com"]}),
            &several_accounts
        )
        .allow
    );
    assert!(
        !cs(
            json!({"service_accounts": ["nobody@x.iam.gserviceaccount.com"]}),
            &several_accounts
        )
        .allow
    );
}

#[test]
fn confidential_space_denies_an_expired_support_window() {
    // An image that has fallen out of support keeps only USABLE (or nothing), not STABLE.
    let old = claims_with(
        AUDIENCE,
        json!({"swversion": ["240100"], "submods": {"confidential_space": {"support_attributes": ["USABLE"]}}}),
    );
    let verdict = cs(json!({"min_swversion": "250600"}), &old);
    assert_eq!(
        failed_claims(&verdict),
        vec![
            "/submods/confidential_space/support_attributes",
            "/swversion"
        ]
    );
}

#[test]
fn signed_image_window_uses_the_verification_time() {
    let config = json!({"audience": AUDIENCE, "trusted_key_ids": ["kid-1"], "not_before": 1_000, "not_after": 2_000});
    let policy = engine()
        .load(&plugin_spec("signed-image-window", config))
        .unwrap();
    let signed = claims_with(
        AUDIENCE,
        json!({"submods": {"container": {"image_signatures": [
            {"key_id": "kid-9", "signature": "x", "signature_algorithm": "ECDSA_P256_SHA256"},
            {"key_id": "kid-1", "signature": "y", "signature_algorithm": "ECDSA_P256_SHA256"}
        ]}}}),
    );
    assert!(
        policy
            .evaluate(&signed.to_string(), 1_500)
            .unwrap()
            .verdict
            .allow
    );
    let late = policy.evaluate(&signed.to_string(), 2_500).unwrap().verdict;
    assert!(
        !late.allow
            && late
                .reasons
                .iter()
                .any(|r| r.message.contains("after the agreed window"))
    );
    let unsigned = policy
        .evaluate(&production_claims(AUDIENCE).to_string(), 1_500)
        .unwrap()
        .verdict;
    assert_eq!(
        failed_claims(&unsigned),
        vec!["/submods/container/image_signatures"]
    );
}

#[test]
fn plugins_load_in_parallel_and_share_compiled_code() {
    let specs = vec![
        plugin_spec("confidential-space", json!({"audience": AUDIENCE})),
        plugin_spec("bound-claims", corrected_role()),
        plugin_spec(
            "confidential-space",
            json!({"audience": "https://vault.bank-b.example"}),
        ),
    ];
    // A fresh engine, so that both loads of confidential-space race to compile it.
    let fresh = PluginEngine::new(EngineOptions::default()).unwrap();
    let loaded = fresh.load_all(&specs);
    assert!(loaded.iter().all(Result::is_ok));
    let policy = |i: usize| loaded[i].as_ref().unwrap();
    assert!(
        policy(0).shares_compiled_code_with(policy(2)),
        "one compilation for two collaborators of the same plugin"
    );
    assert!(!policy(0).shares_compiled_code_with(policy(1)));
    let audiences: Vec<String> = loaded
        .iter()
        .map(|p| p.as_ref().unwrap().select_audience().unwrap().audience)
        .collect();
    assert_eq!(
        audiences,
        vec![AUDIENCE, AUDIENCE, "https://vault.bank-b.example"]
    );
}

/// `plugin compile`'s artifact for `plugin`, written into `dir`, and its sha256.
fn precompile(plugin: &str, dir: &std::path::Path) -> Precompiled {
    let (bytes, sha256) = engine().precompile_file(&plugin_wasm(plugin)).unwrap();
    let path = dir.join(format!("{plugin}.cwasm"));
    std::fs::write(&path, bytes).unwrap();
    Precompiled { path, sha256 }
}

#[test]
fn a_precompiled_plugin_is_reproducible_and_decides_like_its_wasm() {
    let dir = tempfile::tempdir().unwrap();
    let first = precompile("confidential-space", dir.path());
    let (again, again_sha256) = PluginEngine::new(EngineOptions::default())
        .unwrap()
        .precompile_file(&plugin_wasm("confidential-space"))
        .unwrap();
    assert_eq!(
        again_sha256, first.sha256,
        "the same wasm compiles to the same bytes"
    );
    assert_eq!(again, std::fs::read(&first.path).unwrap());
    let mut plugin = plugin_spec("confidential-space", json!({"audience": AUDIENCE}));
    plugin.precompiled = Some(first);
    let verdict = PluginEngine::new(EngineOptions::default())
        .unwrap()
        .load(&plugin)
        .unwrap()
        .evaluate(&production_claims(AUDIENCE).to_string(), now())
        .unwrap();
    assert!(verdict.verdict.allow, "{verdict:?}");
}

#[test]
fn another_plugins_artifact_never_stands_in_for_the_pinned_one() {
    let dir = tempfile::tempdir().unwrap();
    let pinned = precompile("confidential-space", dir.path());
    let allow_all = precompile("hostile", dir.path());
    // Mallory copies another plugin's artifact over the pinned one: its digest no longer matches.
    std::fs::copy(&allow_all.path, &pinned.path).unwrap();
    let mut plugin = plugin_spec("confidential-space", json!({"audience": AUDIENCE}));
    plugin.precompiled = Some(pinned.clone());
    let err = PluginEngine::new(EngineOptions::default())
        .unwrap()
        .load(&plugin)
        .expect_err("a substituted artifact");
    assert!(
        matches!(err, PluginError::ArtifactDigestMismatch { .. }),
        "{err}"
    );
    // Even pinned by its own digest, an artifact compiled from another wasm is refused.
    plugin.precompiled = Some(Precompiled {
        path: allow_all.path.clone(),
        sha256: allow_all.sha256.clone(),
    });
    let err = PluginEngine::new(EngineOptions::default())
        .unwrap()
        .load(&plugin)
        .expect_err("an artifact of another plugin");
    assert!(
        matches!(
            err,
            PluginError::Artifact {
                problem: ArtifactProblem::OtherPlugin { .. },
                ..
            }
        ),
        "{err}"
    );
    // A wasm file that is not an artifact at all.
    let wasm = plugin_wasm("confidential-space");
    plugin.precompiled = Some(Precompiled {
        sha256: sha256_file(&wasm),
        path: wasm,
    });
    let err = PluginEngine::new(EngineOptions::default())
        .unwrap()
        .load(&plugin)
        .expect_err("not an artifact");
    assert!(
        matches!(
            err,
            PluginError::Artifact {
                problem: ArtifactProblem::NotAnArtifact,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_artifact_for_another_engine_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let good = precompile("confidential-space", dir.path());
    // Same plugin, same envelope, but the engine tag of another build or CPU baseline.
    let mut bytes = std::fs::read(&good.path).unwrap();
    bytes[16 + 32] ^= 0xff;
    let path = dir.path().join("other-engine.cwasm");
    std::fs::write(&path, &bytes).unwrap();
    let mut plugin = plugin_spec("confidential-space", json!({"audience": AUDIENCE}));
    plugin.precompiled = Some(Precompiled {
        sha256: sha256_file(&path),
        path,
    });
    let err = PluginEngine::new(EngineOptions::default())
        .unwrap()
        .load(&plugin)
        .expect_err("another engine's artifact");
    assert!(
        matches!(
            err,
            PluginError::Artifact {
                problem: ArtifactProblem::OtherEngine,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("attestgate plugin compile"),
        "{err}"
    );
}

#[test]
fn the_readme_template_plugin_works_as_documented() {
    let config = json!({
        "audience": AUDIENCE,
        "projects": ["operator-project"],
        "image_digests": ["sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646"]
    });
    let policy = engine()
        .load(&plugin_spec("plugin-template", config))
        .unwrap();
    assert_eq!(policy.select_audience().unwrap().audience, AUDIENCE);
    assert!(
        policy
            .evaluate(&production_claims(AUDIENCE).to_string(), now())
            .unwrap()
            .verdict
            .allow
    );
    let elsewhere = claims_with(
        AUDIENCE,
        json!({"submods": {"gce": {"project_id": "someone-else"}}}),
    );
    let verdict = policy
        .evaluate(&elsewhere.to_string(), now())
        .unwrap()
        .verdict;
    assert_eq!(failed_claims(&verdict), vec!["/submods/gce/project_id"]);
}

/// The generous bound that proves a 30 s wait was stopped, not a timing claim.
const STOPPED_LONG_BEFORE: Duration = Duration::from_secs(10);

#[test]
fn a_plugin_sleeping_in_any_export_is_stopped_at_its_deadline() {
    for attack in ["sleep", "sleep-loop"] {
        let started = std::time::Instant::now();
        assert_eq!(
            failure(attack),
            FailureKind::Deadline(Duration::from_millis(50)),
            "{attack}"
        );
        assert!(started.elapsed() < STOPPED_LONG_BEFORE, "{attack}");
    }
    for (attack, call) in [
        ("sleep-in-validate", "validate-config"),
        ("sleep-in-audience", "select-audience"),
    ] {
        let started = std::time::Instant::now();
        let result = engine()
            .load(&hostile(attack))
            .and_then(|policy| policy.select_audience());
        let err = result.expect_err(attack);
        match &err {
            PluginError::Call {
                call: failed, kind, ..
            } => {
                assert_eq!(*failed, call, "{err}");
                assert_eq!(kind.name(), "deadline", "{err}");
            }
            other => panic!("{attack}: {other}"),
        }
        assert!(started.elapsed() < STOPPED_LONG_BEFORE, "{attack}");
    }
    assert_host_healthy();
}

#[test]
fn a_short_sleep_within_the_deadline_is_granted_in_virtual_time() {
    let verdict = evaluate(&hostile("short-sleep"), &production_claims(AUDIENCE)).unwrap();
    assert!(verdict.allow, "{verdict:?}");
}

#[test]
fn a_plugin_may_select_only_its_collaborators_declared_audience() {
    let mut spec = plugin_spec(
        "hostile",
        json!({"attack": "allow", "audience": "https://vault.bank-b.example"}),
    );
    spec.audience = Some(AUDIENCE.into());
    let err = engine()
        .load(&spec)
        .and_then(|policy| policy.select_audience())
        .expect_err("another collaborator's audience");
    assert!(
        matches!(
            err.failure(),
            Some(FailureKind::BadReturn(ContractViolation::NotTheDeclaredAudience { asked, declared }))
                if asked == "https://vault.bank-b.example" && declared == AUDIENCE
        ),
        "{err}"
    );
    spec.config = json!({"attack": "allow", "audience": AUDIENCE});
    let request = engine().load(&spec).unwrap().select_audience().unwrap();
    assert_eq!(request.audience, AUDIENCE);
}

/// The exchange looks at the request once more before a launcher mints it: a policy whose
/// declared audience is not the collaborator's (a mix-up anywhere between the configuration and
/// the plugin runtime) still cannot obtain a token for it.
#[tokio::test]
async fn the_exchange_mints_only_the_collaborators_declared_audience() {
    let mut spec = plugin_spec("hostile", json!({"attack": "allow", "audience": AUDIENCE}));
    spec.audience = Some(AUDIENCE.into());
    let policy = std::sync::Arc::new(engine().load(&spec).unwrap());
    let err = attestgate::exchange::select_audience(&policy, "https://vault.bank-b.example")
        .await
        .expect_err("an audience other than the declared one");
    assert_eq!(err.step, attestgate::exchange::Step::SelectAudience);
    assert!(
        matches!(&*err.cause, attestgate::exchange::StepCause::ForeignAudience { asked, declared }
            if asked == AUDIENCE && declared == "https://vault.bank-b.example"),
        "{err}"
    );
    let request = attestgate::exchange::select_audience(&policy, AUDIENCE)
        .await
        .unwrap();
    assert_eq!(request.audience, AUDIENCE);
}

#[test]
fn a_plugin_cannot_make_the_host_allocate_outside_its_memory_cap() {
    for attack in ["random-flood", "resource-flood"] {
        let mut spec = hostile(attack);
        // Long enough that only the host's own caps can stop these.
        spec.limits.deadline_ms = Some(10_000);
        let kind = failure_of(&spec);
        assert_eq!(kind.name(), "trap", "{attack}: {kind}");
    }
}

/// A file of `examples/rego/`: the policies `docs/rego.md` shows, run as written.
fn rego_example(file: &str) -> String {
    let path = crate::harness::workspace_root()
        .join("examples/rego")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The rego-policy plugin with `config`, under limits stated here rather than inherited: an
/// interpreter's cost depends on the policy, and these tests are about what stops it.
fn rego(config: Value) -> PluginSpec {
    let mut spec = plugin_spec("rego-policy", config);
    spec.limits = Limits {
        deadline_ms: 200,
        memory_bytes: 64 << 20,
        log_bytes: 16 << 10,
    }
    .into();
    spec
}

/// `examples/rego/seed.rego` with `seed-data.json`: the seed's Vault role as Rego.
fn rego_seed() -> Value {
    json!({
        "audience": AUDIENCE,
        "policy": rego_example("seed.rego"),
        "data": serde_json::from_str::<Value>(&rego_example("seed-data.json")).unwrap(),
    })
}

#[test]
fn rego_policy_allows_production_claims_with_the_seed_rules() {
    let policy = engine().load(&rego(rego_seed())).unwrap();
    assert_eq!(policy.select_audience().unwrap().audience, AUDIENCE);
    let verdict = policy
        .evaluate(&production_claims(AUDIENCE).to_string(), now())
        .unwrap()
        .verdict;
    assert!(verdict.allow, "{verdict:?}");
    assert_eq!(
        verdict.reasons[0].message,
        "data.attestgate.allow is true and data.attestgate.deny is empty"
    );

    // The KBS-shaped example, in pre-1.0 syntax, decides the same workload the same way.
    let kbs = json!({
        "audience": AUDIENCE,
        "policy": rego_example("kbs-style.rego"),
        "package": "policy",
        "rego_version": "v0",
        "data": serde_json::from_str::<Value>(&rego_example("kbs-style-data.json")).unwrap(),
    });
    assert!(
        evaluate(&rego(kbs), &production_claims(AUDIENCE))
            .unwrap()
            .allow
    );
}

#[test]
fn rego_policy_denies_with_the_policys_messages() {
    let debug = claims_with(
        AUDIENCE,
        json!({"dbgstat": "enabled", "submods": {"confidential_space": {"support_attributes": null}}}),
    );
    let verdict = evaluate(&rego(rego_seed()), &debug).unwrap();
    assert!(!verdict.allow);
    let messages: Vec<&str> = verdict
        .failed_reasons()
        .map(|r| r.message.as_str())
        .collect();
    assert_eq!(
        messages,
        vec![
            "data.attestgate.allow is false for these claims: no allow rule held",
            "dbgstat is \"enabled\"; a production image (dbgstat \"disabled-since-boot\") is required",
            "support_attributes are missing; \"STABLE\" is required",
        ]
    );
}

#[test]
fn rego_policy_reads_the_verification_time_not_a_clock() {
    let config = json!({
        "audience": AUDIENCE,
        "policy": "package attestgate\nallow if time.now_ns() == 1234567890000000000",
    });
    let policy = engine().load(&rego(config)).unwrap();
    let claims = production_claims(AUDIENCE).to_string();
    assert!(
        policy
            .evaluate(&claims, 1_234_567_890)
            .unwrap()
            .verdict
            .allow
    );
    assert!(!policy.evaluate(&claims, now()).unwrap().verdict.allow);
}

#[test]
fn a_rego_policy_that_does_not_parse_is_refused_at_load_with_its_location() {
    let config = json!({"audience": AUDIENCE, "policy": "package attestgate\nallow if {"});
    let err = engine().load(&rego(config)).unwrap_err();
    match err.failure() {
        Some(FailureKind::Rejected(message)) => assert_eq!(
            message,
            "Rego module policy.rego does not parse: policy.rego:2:11: expecting expression"
        ),
        other => panic!("expected a rejected configuration, got {other:?}: {err}"),
    }
}

#[test]
fn a_runaway_rego_policy_is_stopped_at_its_deadline() {
    // 10^8 rounds of an interpreted loop whose condition never holds: minutes of CPU in little
    // memory. It loads (nothing is evaluated at load); evaluating it must end at 200 ms.
    let policy = "package attestgate\nallow if {\n  some i in numbers.range(1, 10000)\n  some j in numbers.range(1, 10000)\n  i + j < 0\n}";
    let spec = rego(json!({"audience": AUDIENCE, "policy": policy}));
    // Compiled first (once per process), so that the bound below times the call alone: on a
    // loaded machine compiling the 3 MB component took seconds of the bound.
    engine().load(&spec).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(
        failure_of(&spec),
        FailureKind::Deadline(Duration::from_millis(200))
    );
    assert!(started.elapsed() < STOPPED_LONG_BEFORE);
}

#[test]
fn an_exploding_rego_policy_hits_the_memory_cap() {
    // numbers.range allocates its whole array at once: 10^8 values, gigabytes.
    let policy = "package attestgate\nallow if count(numbers.range(1, 100000000)) > 0";
    let mut spec = rego(json!({"audience": AUDIENCE, "policy": policy}));
    // Long enough that only the memory cap can stop it, even on a loaded machine.
    spec.limits.deadline_ms = Some(10_000);
    assert_eq!(failure_of(&spec), FailureKind::Memory(64 << 20));
}

/// A JavaScript component built with componentize-js's default features imports `wasi:http`:
/// such a plugin could send the claims anywhere. attestgate never links `wasi:http`, so the
/// component is refused before it runs, and the error names the import.
#[test]
fn a_component_importing_wasi_http_is_refused_naming_the_import() {
    // The JS toolchain is installed by the build of the JavaScript plugins.
    crate::harness::plugins::scripted_plugin(crate::harness::plugins::ScriptedPlugin::JavaScript);
    let wasm = crate::harness::target_dir().join("tmp/with_wasi_http.wasm");
    std::fs::create_dir_all(wasm.parent().unwrap()).unwrap();
    let js = crate::harness::workspace_root().join("plugins/js");
    let status = std::process::Command::new("node")
        .arg(js.join("test/build-with-http.mjs"))
        .arg(&wasm)
        .current_dir(&js)
        .status()
        .expect("node runs");
    assert!(status.success());
    // Linking does not depend on the compiler; Winch compiles the 12 MB component in a tenth
    // of Cranelift's time.
    let winch = PluginEngine::new(EngineOptions {
        compiler: Compiler::Winch,
        ..EngineOptions::default()
    })
    .unwrap();
    let error = winch
        .load(&plugin_spec_at(wasm, json!({"audience": AUDIENCE})))
        .expect_err("a plugin importing wasi:http must not load");
    assert!(matches!(error, PluginError::Link { .. }), "{error:?}");
    let message = attestgate::error_chain(&error);
    assert!(message.contains("wasi:http/"), "{message}");
    assert_host_healthy();
}

/// One-shot runs compile plugins with Winch, the baseline compiler: every limit of the sandbox
/// holds there as it does under Cranelift (the epoch deadline, the memory cap, the log limit, a
/// trap, fresh state per call), and a good plugin decides the same.
#[test]
fn under_winch_the_sandbox_holds_every_limit_and_plugins_decide_the_same() {
    let winch = PluginEngine::new(EngineOptions {
        compiler: Compiler::Winch,
        ..EngineOptions::default()
    })
    .unwrap();
    assert_eq!(winch.compiler(), Compiler::Winch);
    let claims = production_claims(AUDIENCE).to_string();
    let failure_under_winch = |spec: &PluginSpec| {
        winch
            .load(spec)
            .unwrap()
            .evaluate(&claims, now())
            .expect_err("the attack must not produce a verdict")
            .failure()
            .cloned()
            .expect("a call failure")
    };
    let started = std::time::Instant::now();
    assert_eq!(
        failure_under_winch(&hostile("infinite-loop")),
        FailureKind::Deadline(Duration::from_millis(50))
    );
    // Generous bound: only proves the loop was cut off rather than run to some natural end.
    assert!(started.elapsed() < Duration::from_secs(20));
    let mut bomb = hostile("memory-bomb");
    bomb.limits.deadline_ms = Some(10_000);
    assert_eq!(failure_under_winch(&bomb), FailureKind::Memory(16 << 20));
    assert_eq!(
        failure_under_winch(&hostile("flood-log")),
        FailureKind::LogLimit(4096)
    );
    assert!(matches!(
        failure_under_winch(&hostile("panic")),
        FailureKind::Trap(message) if message.contains("unreachable")
    ));
    let counter = winch.load(&hostile("count")).unwrap();
    for _ in 0..3 {
        let verdict = counter.evaluate(&claims, now()).unwrap().verdict;
        assert_eq!(verdict.reasons[0].message, "call number 1");
    }
    for config in [
        json!({"audience": AUDIENCE}),
        json!({"audience": AUDIENCE, "projects": ["another-project"]}),
    ] {
        let spec = plugin_spec("confidential-space", config);
        let decide = |engine: &PluginEngine| {
            engine
                .load(&spec)
                .unwrap()
                .evaluate(&claims, now())
                .unwrap()
                .verdict
        };
        assert_eq!(decide(&winch), decide(engine()));
    }
    // Artifacts are Cranelift code: an engine set to Winch refuses them rather than running them.
    let mut artifact = plugin_spec("confidential-space", json!({"audience": AUDIENCE}));
    artifact.precompiled = Some(crate::harness::plugins::precompiled(&artifact.path));
    assert!(matches!(
        winch.load(&artifact),
        Err(PluginError::Artifact {
            problem: ArtifactProblem::OtherEngine,
            ..
        })
    ));
}
