//! Unit-test a [`Policy`] with plain `cargo test`, natively, without WebAssembly or a host.
//!
//! [`validate_config`], [`select_audience`] and [`evaluate`] run a policy exactly as the exported
//! plugin does (the same configuration and claims parsing, the same code path as
//! [`export_policy!`](crate::export_policy)), and then hold the result to the checks the host makes,
//! so a test fails where the host would deny. [`production_claims`] builds the claims of a
//! production Confidential Space token to patch one claim at a time.
//!
//! Compiled only for native targets. A plugin crate's tests run with the host's target, since
//! the plugins' cargo configuration builds for `wasm32-wasip2` by default:
//!
//! ```sh
//! cargo test --target "$(rustc -vV | sed -n 's/^host: //p')"
//! ```
//!
//! ```
//! use attestgate_plugin_sdk::testing::{self, IMAGE_DIGEST};
//! use attestgate_plugin_sdk::{rules, AudienceRequest, Claims, Context, Policy, Report, Verdict};
//! use serde_json::json;
//!
//! struct OurImage;
//!
//! impl Policy for OurImage {
//!     type Config = Vec<String>;
//!     fn audience(_: &Context<Vec<String>>) -> Result<AudienceRequest, String> {
//!         Ok(AudienceRequest::oidc("https://vault.bank-a.example"))
//!     }
//!     fn evaluate(ctx: &Context<Vec<String>>, claims: &Claims<'_>) -> Verdict {
//!         let mut report = Report::new();
//!         report.add(rules::one_of(claims, "/submods/container/image_digest", &ctx.config));
//!         report.verdict()
//!     }
//! }
//!
//! let now = 1_900_000_000;
//! let config = json!([IMAGE_DIGEST]);
//! let mut claims = testing::production_claims("https://vault.bank-a.example", now);
//! assert!(testing::evaluate::<OurImage>(&config, &claims, now).unwrap().allow);
//!
//! claims["submods"]["container"]["image_digest"] = json!(format!("sha256:{}", "0".repeat(64)));
//! let verdict = testing::evaluate::<OurImage>(&config, &claims, now).unwrap();
//! assert!(!verdict.allow);
//! assert_eq!(verdict.reasons[0].claim.as_deref(), Some("/submods/container/image_digest"));
//! ```

use crate::{dispatch, wit, AudienceRequest, LogLevel, Policy, UnixSeconds, Verdict};
use serde_json::{json, Value};
use std::cell::RefCell;

/// The collaborator name the calls here pass in the context.
pub const COLLABORATOR: &str = "bank-a";

/// The Vault role the calls here pass in the context, as the host passes the collaborator's
/// configured `role`.
pub const VAULT_ROLE: &str = "bank-a-role";

/// The container image digest in [`production_claims`].
pub const IMAGE_DIGEST: &str =
    "sha256:3c5e0d8a6b1f4e2d9c7a8b6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d";

/// The Google Cloud project in [`production_claims`] (`/submods/gce/project_id`).
pub const PROJECT_ID: &str = "operator-project";

/// The workload's service account in [`production_claims`] (`/google_service_accounts`).
pub const SERVICE_ACCOUNT: &str = "workload-sa@operator-project.iam.gserviceaccount.com";

/// Reasons a verdict may carry (the host refuses more).
const MAX_REASONS: usize = 256;
/// The longest login role the host accepts, in bytes.
const MAX_ROLE_BYTES: usize = 256;
/// The longest audience the launcher accepts, in bytes.
const MAX_AUDIENCE_BYTES: usize = 512;
/// How many nonces the launcher accepts, and how long each may be, in bytes.
const MAX_NONCES: usize = 6;
const NONCE_BYTES: std::ops::RangeInclusive<usize> = 10..=74;

thread_local! {
    // Per thread, because the test harness runs each test on a thread of its own.
    static LOG: RefCell<Vec<(LogLevel, String)>> = const { RefCell::new(Vec::new()) };
}

/// Where [`crate::log`] writes when there is no host.
pub(crate) fn record_log(level: LogLevel, message: &str) {
    eprintln!("[{level:?}] {message}");
    LOG.with(|log| log.borrow_mut().push((level, message.to_owned())));
}

/// The lines the policy logged on this thread since the last call, oldest first.
pub fn take_log() -> Vec<(LogLevel, String)> {
    LOG.with(|log| log.take())
}

fn context(config: &Value, verification_time: UnixSeconds) -> wit::Context {
    wit::Context {
        collaborator: COLLABORATOR.into(),
        config: config.to_string(),
        verification_time,
        vault_role: Some(VAULT_ROLE.into()),
    }
}

/// In `validate-config` and `select-audience` the host passes the current time.
fn now() -> UnixSeconds {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() as UnixSeconds)
}

/// Runs `validate-config` as the host does when it loads the plugin: `Err` is the message that
/// refuses the configuration.
pub fn validate_config<P: Policy>(config: &Value) -> Result<(), String> {
    dispatch::validate_config::<P>(context(config, now()))
}

/// Runs `select-audience`. `Err` is the policy's own error, or what the Confidential Space
/// launcher would refuse in the request (an empty or over-long audience, too many nonces, a nonce
/// of the wrong length). The host also requires the collaborator's declared audience, which only
/// the operator's configuration knows: compare it in the test.
pub fn select_audience<P: Policy>(config: &Value) -> Result<AudienceRequest, String> {
    let request = dispatch::select_audience::<P>(context(config, now()))?;
    check_audience_request(&request)
        .map_err(|problem| format!("the launcher would refuse the audience request: {problem}"))?;
    Ok(request)
}

/// Runs `evaluate` on `claims` checked at `verification_time`. `Err` says how the verdict breaks
/// the contract, where the host would turn it into a deny.
pub fn evaluate<P: Policy>(
    config: &Value,
    claims: &Value,
    verification_time: UnixSeconds,
) -> Result<Verdict, String> {
    let verdict = dispatch::evaluate::<P>(context(config, verification_time), &claims.to_string());
    check_verdict(&verdict)
        .map_err(|problem| format!("the host would deny this verdict: {problem}"))?;
    Ok(verdict)
}

/// Evaluates `claims_json` at Unix time 1,900,000,000 natively and returns the verdict, held to
/// the contract. Also prints `NATIVE <engine> <µs> µs`: the median time of one evaluation over
/// `ATTESTGATE_NATIVE_RUNS` runs (default 1): the same Rust code the plugin runs in a fresh
/// instance per call (the configuration parsed, the rules applied to the claims JSON), without
/// WebAssembly, which `bench/run.sh` compares the plugin with (it sets 500, in release). Also
/// prints `NATIVE-CLAIMS <engine> <µs> µs`: the median of reading the claims JSON alone, the part
/// a claims representation parsed by the host would replace.
pub fn evaluate_timed<P: Policy>(
    engine: &str,
    config: &Value,
    claims_json: &str,
) -> Result<Verdict, String> {
    let claims: Value = serde_json::from_str(claims_json).map_err(|e| e.to_string())?;
    let compact = claims.to_string();
    let whole = median_micros(
        || context(config, 1_900_000_000),
        |context| {
            std::hint::black_box(dispatch::evaluate::<P>(context, &compact));
        },
    );
    println!("NATIVE {engine} {whole:.1} µs");
    let reading = median_micros(
        || (),
        |()| {
            let _ = std::hint::black_box(crate::Claims::parse(&compact));
        },
    );
    println!("NATIVE-CLAIMS {engine} {reading:.1} µs");
    evaluate::<P>(config, &claims, 1_900_000_000)
}

/// Prints `NATIVE-CONFIG <engine> <µs> µs`: the median time of `configure` over
/// `ATTESTGATE_NATIVE_RUNS` runs, where `configure` is the part of one `evaluate` that depends on
/// the configuration alone (parsing it, compiling a program from it). A plugin with its
/// configuration snapshotted into its instance image would skip that part; `bench/run.sh` prints
/// it next to [`evaluate_timed`]'s whole.
pub fn configuration_timed(engine: &str, configure: impl Fn()) {
    let micros = median_micros(|| (), |()| configure());
    println!("NATIVE-CONFIG {engine} {micros:.1} µs");
}

/// The median time of `run` over `ATTESTGATE_NATIVE_RUNS` runs (default 1), in µs; each run's
/// input comes from `prepare`, untimed.
fn median_micros<T>(mut prepare: impl FnMut() -> T, mut run: impl FnMut(T)) -> f64 {
    let runs: usize = std::env::var("ATTESTGATE_NATIVE_RUNS")
        .ok()
        .and_then(|runs| runs.parse().ok())
        .unwrap_or(1);
    let mut samples: Vec<std::time::Duration> = (0..runs.max(1))
        .map(|_| {
            let input = prepare();
            let started = std::time::Instant::now();
            run(input);
            started.elapsed()
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1e6
}

/// The claims of the verdict's failed reasons, in order: what a test of one rule compares.
pub fn failed_claims(verdict: &Verdict) -> Vec<Option<&str>> {
    verdict
        .reasons
        .iter()
        .filter(|reason| !reason.passed)
        .map(|reason| reason.claim.as_deref())
        .collect()
}

fn check_audience_request(request: &AudienceRequest) -> Result<(), String> {
    if request.audience.trim().is_empty() {
        return Err("the audience is empty".into());
    }
    if request.audience.len() > MAX_AUDIENCE_BYTES {
        return Err(format!(
            "the audience is {} bytes, longer than the maximum of {MAX_AUDIENCE_BYTES}",
            request.audience.len()
        ));
    }
    if request.nonces.len() > MAX_NONCES {
        return Err(format!(
            "{} nonces, but at most {MAX_NONCES} are allowed",
            request.nonces.len()
        ));
    }
    if let Some((index, nonce)) = request
        .nonces
        .iter()
        .enumerate()
        .find(|(_, nonce)| !NONCE_BYTES.contains(&nonce.len()))
    {
        return Err(format!(
            "nonce {index} is {} bytes; each nonce must be {} to {} bytes",
            nonce.len(),
            NONCE_BYTES.start(),
            NONCE_BYTES.end()
        ));
    }
    Ok(())
}

/// The host's checks on a verdict.
fn check_verdict(verdict: &Verdict) -> Result<(), String> {
    let reasons = &verdict.reasons;
    if reasons.len() > MAX_REASONS {
        return Err(format!(
            "{} reasons, over the limit of {MAX_REASONS}",
            reasons.len()
        ));
    }
    if let Some(claim) = reasons
        .iter()
        .filter_map(|r| r.claim.as_deref())
        .find(|claim| !claim.starts_with('/'))
    {
        return Err(format!(
            "reason claim {claim:?} is not a JSON pointer starting with \"/\" (use None for a rule about no single claim)"
        ));
    }
    if verdict.allow {
        if reasons.is_empty() {
            return Err("it allowed without giving any reason".into());
        }
        if let Some(failed) = reasons.iter().find(|r| !r.passed) {
            return Err(format!(
                "it allowed although a rule failed: {}",
                failed.message
            ));
        }
    } else if reasons.iter().all(|r| r.passed) {
        return Err("it denied without a failed reason".into());
    }
    if let Some(role) = &verdict.login.role {
        if role.is_empty() || role.len() > MAX_ROLE_BYTES {
            return Err(format!(
                "login role {role:?} is {} bytes; it must be 1 to {MAX_ROLE_BYTES}",
                role.len()
            ));
        }
        if role.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "login role {role:?} contains whitespace or control characters"
            ));
        }
    }
    Ok(())
}

/// The claims of a production Confidential Space token minted for `audience`, checked at
/// `verification_time`: issued a minute before, valid for the usual hour. A production image
/// (`dbgstat` `disabled-since-boot`, `STABLE` support) on Intel TDX with an up-to-date TCB and
/// memory monitoring off, running [`IMAGE_DIGEST`] in [`PROJECT_ID`] as [`SERVICE_ACCOUNT`].
/// Patch one claim to see its rule deny, e.g.
/// `claims["dbgstat"] = json!("enabled")`.
pub fn production_claims(audience: &str, verification_time: UnixSeconds) -> Value {
    let issued_at = verification_time - 60;
    json!({
        "aud": audience,
        "exp": issued_at + 3600,
        "iat": issued_at,
        "nbf": issued_at,
        "iss": "https://confidentialcomputing.googleapis.com",
        "sub": format!("https://www.googleapis.com/compute/v1/projects/{PROJECT_ID}/zones/europe-west4-a/instances/analytics-vm"),
        "eat_nonce": "7f2c1a9e0b3d4c5e6f708192a3b4c5d6",
        "eat_profile": "https://cloud.google.com/confidential-computing/confidential-space/docs/reference/token-claims",
        "secboot": true,
        "oemid": 11129,
        "hwmodel": "GCP_INTEL_TDX",
        "swname": "CONFIDENTIAL_SPACE",
        "swversion": ["260900"],
        "dbgstat": crate::claims::PRODUCTION_DBGSTAT,
        "attester_tcb": ["INTEL"],
        "tdx": {"gcp_attester_tcb_status": "UpToDate", "gcp_attester_tcb_date": "2026-08-12T00:00:00Z"},
        "submods": {
            "confidential_space": {
                "support_attributes": ["STABLE", "USABLE"],
                "monitoring_enabled": {"memory": false}
            },
            "container": {
                "image_reference": format!("europe-docker.pkg.dev/{PROJECT_ID}/workloads/joint-analytics@{IMAGE_DIGEST}"),
                "image_digest": IMAGE_DIGEST,
                "image_id": "sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
                "restart_policy": "Never",
                "args": ["/usr/local/bin/attestgate", "exec", "--config", "/etc/attestgate.toml", "--", "/app/analytics"],
                "env": {"HOSTNAME": "analytics-vm", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
            },
            "gce": {
                "zone": "europe-west4-a",
                "project_id": PROJECT_ID,
                "project_number": "123456789012",
                "instance_name": "analytics-vm",
                "instance_id": "5012345678901234567"
            }
        },
        "google_service_accounts": [SERVICE_ACCOUNT]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{log, rules, Claims, Context, Login, Reason, Report, TokenType};
    use serde::Deserialize;

    const AUDIENCE: &str = "https://vault.bank-a.example";
    const NOW: UnixSeconds = 1_900_000_000;

    /// Returns whatever verdict and audience request its configuration spells out, to try the
    /// contract checks.
    struct Scripted;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Script {
        #[serde(default)]
        reasons: Vec<(Option<String>, bool)>,
        allow: Option<bool>,
        role: Option<String>,
        #[serde(default)]
        nonces: Vec<String>,
        #[serde(default = "audience")]
        audience: String,
    }

    fn audience() -> String {
        AUDIENCE.into()
    }

    impl Policy for Scripted {
        type Config = Script;

        fn validate(script: &Script) -> Result<(), String> {
            log(LogLevel::Warn, "scripted policy loaded");
            if script.reasons.len() > 1000 {
                return Err("too many scripted reasons".into());
            }
            Ok(())
        }

        fn audience(ctx: &Context<Script>) -> Result<AudienceRequest, String> {
            let mut request = AudienceRequest::oidc(&ctx.config.audience);
            request.nonces = ctx.config.nonces.clone();
            Ok(request)
        }

        fn evaluate(ctx: &Context<Script>, claims: &Claims<'_>) -> Verdict {
            let script = &ctx.config;
            let reasons: Vec<Reason> = script
                .reasons
                .iter()
                .map(|(claim, passed)| Reason {
                    claim: claim.clone(),
                    passed: *passed,
                    message: format!(
                        "checked at {} for {:?}",
                        ctx.verification_time,
                        claims.audiences()
                    ),
                })
                .collect();
            Verdict {
                allow: script
                    .allow
                    .unwrap_or_else(|| !reasons.is_empty() && reasons.iter().all(|r| r.passed)),
                reasons,
                login: Login {
                    role: script.role.clone(),
                },
            }
        }
    }

    fn run(script: Value) -> Result<Verdict, String> {
        evaluate::<Scripted>(&script, &production_claims(AUDIENCE, NOW), NOW)
    }

    #[test]
    fn evaluate_passes_the_time_and_claims_through() {
        let verdict = run(json!({"reasons": [["/hwmodel", true]], "role": "analytics"})).unwrap();
        assert!(verdict.allow);
        assert_eq!(
            verdict.reasons[0].message,
            format!("checked at {NOW} for [\"{AUDIENCE}\"]")
        );
        assert_eq!(verdict.login.role.as_deref(), Some("analytics"));
    }

    #[test]
    fn failed_claims_lists_only_the_failed_reasons() {
        let verdict =
            run(json!({"reasons": [["/a", true], [null, false], ["/b", false]]})).unwrap();
        assert_eq!(failed_claims(&verdict), vec![None, Some("/b")]);
    }

    #[test]
    fn a_configuration_that_does_not_parse_is_refused_or_denied() {
        let err = validate_config::<Scripted>(&json!({"reasonz": []})).unwrap_err();
        assert!(
            err.starts_with("invalid plugin configuration: unknown field `reasonz`"),
            "{err}"
        );
        let verdict = run(json!({"reasonz": []})).unwrap();
        assert!(!verdict.allow);
        assert_eq!(verdict.reasons[0].claim, None);
        assert!(verdict.reasons[0].message.contains("reasonz"));
    }

    #[test]
    fn claims_that_are_not_an_object_are_a_deny() {
        let verdict = evaluate::<Scripted>(&json!({}), &json!(["not", "claims"]), NOW).unwrap();
        assert!(!verdict.allow);
        assert_eq!(verdict.reasons[0].message, "claims are not a JSON object");
    }

    #[test]
    fn evaluate_reports_what_the_host_would_deny() {
        let cases = [
            (json!({"allow": true}), "allowed without giving any reason"),
            (
                json!({"reasons": [["/dbgstat", false]], "allow": true}),
                "allowed although a rule failed",
            ),
            (
                json!({"reasons": [["/dbgstat", true]], "allow": false}),
                "denied without a failed reason",
            ),
            (json!({"allow": false}), "denied without a failed reason"),
            (
                json!({"reasons": [["hwmodel", true]]}),
                "reason claim \"hwmodel\" is not a JSON pointer",
            ),
            (
                json!({"reasons": [["", false]]}),
                "reason claim \"\" is not a JSON pointer",
            ),
            (
                json!({"reasons": [[null, true]], "role": "bank-b\nrole: admin"}),
                "contains whitespace or control characters",
            ),
            (
                json!({"reasons": [[null, true]], "role": "my role"}),
                "contains whitespace or control characters",
            ),
            (
                json!({"reasons": [[null, true]], "role": "bank-b\u{1b}[0m"}),
                "contains whitespace or control characters",
            ),
            (
                json!({"reasons": [[null, true]], "role": ""}),
                "is 0 bytes; it must be 1 to 256",
            ),
            (
                json!({"reasons": [[null, true]], "role": "r".repeat(257)}),
                "is 257 bytes",
            ),
            (
                json!({"reasons": vec![json!(["/a", true]); 257]}),
                "257 reasons, over the limit of 256",
            ),
        ];
        for (script, expected) in cases {
            let err = run(script.clone()).expect_err(&script.to_string());
            assert!(
                err.starts_with("the host would deny this verdict: "),
                "{err}"
            );
            assert!(err.contains(expected), "{script}: {err}");
        }
    }

    #[test]
    fn verdicts_at_the_limits_are_accepted() {
        assert!(run(json!({"reasons": vec![json!(["/a", true]); 256]})).is_ok());
        assert!(run(json!({"reasons": [[null, true]], "role": "r".repeat(256)})).is_ok());
        assert!(run(json!({"reasons": [[null, false], ["/a", true]]})).is_ok());
    }

    #[test]
    fn select_audience_applies_the_launcher_limits() {
        let request = select_audience::<Scripted>(&json!({"nonces": ["0123456789"]})).unwrap();
        assert_eq!(
            request,
            AudienceRequest {
                audience: AUDIENCE.into(),
                token_type: TokenType::Oidc,
                nonces: vec!["0123456789".into()],
            }
        );
        let refused = [
            (json!({"audience": " "}), "the audience is empty"),
            (json!({"audience": "a".repeat(513)}), "513 bytes"),
            (json!({"nonces": vec!["0123456789"; 7]}), "7 nonces"),
            (json!({"nonces": ["short"]}), "nonce 0 is 5 bytes"),
            (
                json!({"nonces": ["0123456789", "n".repeat(75)]}),
                "nonce 1 is 75 bytes",
            ),
        ];
        for (config, expected) in refused {
            let err = select_audience::<Scripted>(&config).unwrap_err();
            assert!(err.contains(expected), "{config}: {err}");
        }
    }

    #[test]
    fn log_lines_are_collected_natively() {
        take_log();
        validate_config::<Scripted>(&json!({})).unwrap();
        assert_eq!(
            take_log(),
            vec![(LogLevel::Warn, "scripted policy loaded".to_owned())]
        );
        assert!(take_log().is_empty());
    }

    #[test]
    fn production_claims_pass_the_production_rules() {
        let json = production_claims(AUDIENCE, NOW).to_string();
        let claims = Claims::parse(&json).unwrap();
        let mut report = Report::new();
        report
            .add(rules::production_only(&claims))
            .add(rules::support_attribute(&claims, "STABLE"))
            .add(rules::tdx_up_to_date(&claims))
            .add(rules::memory_monitoring_disabled(&claims))
            .add(rules::min_swversion(&claims, "260900"));
        assert!(report.passed(), "{report:?}");
        assert_eq!(claims.audiences(), vec![AUDIENCE]);
        assert_eq!(claims.image_digest(), Some(IMAGE_DIGEST));
        assert!(rules::is_sha256_digest(IMAGE_DIGEST));
        assert_eq!(claims.project_id(), Some(PROJECT_ID));
        assert_eq!(claims.service_accounts(), vec![SERVICE_ACCOUNT]);
        let issued_at = claims.issued_at().unwrap();
        assert!(issued_at <= NOW && NOW < claims.expires_at().unwrap());
    }
}
