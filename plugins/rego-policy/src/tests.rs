//! Native tests through the SDK's `testing` module: the same parsing and dispatch as the plugin,
//! and every verdict held to the host's contract checks.

use super::*;
use attestgate_plugin_sdk::testing::{self, take_log};
use serde_json::{json, Value as Json};

const AUDIENCE: &str = "https://vault.bank-a.example";
const NOW: UnixSeconds = 1_900_000_000;

/// The example policies and their data: the tests run the very files the docs point at.
const SEED_POLICY: &str = include_str!("../../../examples/rego/seed.rego");
const SEED_DATA: &str = include_str!("../../../examples/rego/seed-data.json");
const KBS_POLICY: &str = include_str!("../../../examples/rego/kbs-style.rego");
const KBS_DATA: &str = include_str!("../../../examples/rego/kbs-style-data.json");

/// The seed's workload, which `seed-data.json` allows: the SDK's production claims with the
/// seed's hardware, image and service account.
const SEED_DIGEST: &str = "sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646";
const SEED_ACCOUNT: &str = "operator-svc-account@operator-project.iam.gserviceaccount.com";

fn seed_claims() -> Json {
    let mut claims = testing::production_claims(AUDIENCE, NOW);
    claims["hwmodel"] = json!("GCP_AMD_SEV");
    claims["submods"]["container"]["image_digest"] = json!(SEED_DIGEST);
    claims["google_service_accounts"] = json!([SEED_ACCOUNT]);
    claims
}

fn data(file: &str) -> Json {
    serde_json::from_str(file).unwrap()
}

fn seed_config() -> Json {
    json!({"audience": AUDIENCE, "policy": SEED_POLICY, "data": data(SEED_DATA)})
}

fn kbs_config() -> Json {
    json!({
        "audience": AUDIENCE,
        "modules": [{"name": "kbs-style.rego", "text": KBS_POLICY}],
        "package": "policy",
        "rego_version": "v0",
        "data": data(KBS_DATA)
    })
}

/// A configuration around one inline module.
fn inline(policy: &str) -> Json {
    json!({"audience": AUDIENCE, "policy": policy})
}

fn evaluate(config: &Json, claims: &Json) -> Verdict {
    testing::evaluate::<RegoPolicy>(config, claims, NOW).unwrap()
}

fn evaluate_at(config: &Json, at: UnixSeconds) -> Verdict {
    testing::evaluate::<RegoPolicy>(config, &seed_claims(), at).unwrap()
}

fn failed_messages(verdict: &Verdict) -> Vec<&str> {
    verdict
        .reasons
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.message.as_str())
        .collect()
}

fn load_error(config: &Json) -> String {
    testing::validate_config::<RegoPolicy>(config).unwrap_err()
}

#[test]
fn the_seed_policy_allows_the_seed_workload() {
    assert_eq!(
        testing::validate_config::<RegoPolicy>(&seed_config()),
        Ok(())
    );
    let verdict = evaluate(&seed_config(), &seed_claims());
    assert!(verdict.allow, "{:?}", verdict.reasons);
    assert_eq!(verdict.reasons.len(), 1);
    assert_eq!(
        verdict.reasons[0].message,
        "data.attestgate.allow is true and data.attestgate.deny is empty"
    );
    assert_eq!(verdict.reasons[0].claim, None);
    assert_eq!(verdict.login.role, None);
}

#[test]
fn each_seed_requirement_denies_with_its_message() {
    let cases = [
        (
            "/dbgstat",
            json!("enabled"),
            "dbgstat is \"enabled\"; a production image (dbgstat \"disabled-since-boot\") is required",
        ),
        (
            "/submods/confidential_space/support_attributes",
            json!(["USABLE"]),
            "support_attributes are [\"USABLE\"]; \"STABLE\" is required",
        ),
        (
            "/hwmodel",
            json!("GCP_INTEL_TDX"),
            "hwmodel is \"GCP_INTEL_TDX\"; allowed: [\"GCP_AMD_SEV\"]",
        ),
        (
            "/swname",
            json!("GCE"),
            "swname is \"GCE\"; \"CONFIDENTIAL_SPACE\" is required",
        ),
        (
            "/submods/container/image_digest",
            json!(format!("sha256:{}", "0".repeat(64))),
            "image_digest is \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"; allowed: [\"sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646\"]",
        ),
        (
            "/submods/gce/project_id",
            json!("attacker-project"),
            "project_id is \"attacker-project\"; allowed: [\"operator-project\"]",
        ),
        (
            "/google_service_accounts",
            json!(["attacker@attacker-project.iam.gserviceaccount.com"]),
            "google_service_accounts are [\"attacker@attacker-project.iam.gserviceaccount.com\"]; one of [\"operator-svc-account@operator-project.iam.gserviceaccount.com\"] is required",
        ),
        (
            "/swversion",
            json!(["250100"]),
            "swversion is [\"250100\"]; at least 260600 is required",
        ),
        (
            "/swversion",
            json!(["not-a-number"]),
            "swversion is [\"not-a-number\"]; at least 260600 is required",
        ),
    ];
    for (claim, value, message) in cases {
        let mut claims = seed_claims();
        *claims.pointer_mut(claim).unwrap() = value;
        let verdict = evaluate(&seed_config(), &claims);
        assert!(!verdict.allow, "{claim}");
        assert_eq!(
            failed_messages(&verdict),
            vec![
                "data.attestgate.allow is false for these claims: no allow rule held",
                message
            ],
            "{claim}"
        );
        assert!(verdict.reasons.iter().all(|r| r.claim.is_none()));
    }
}

#[test]
fn a_debug_image_is_denied_for_each_missing_claim() {
    let mut claims = seed_claims();
    claims["dbgstat"] = json!("enabled");
    let submods = claims["submods"].as_object_mut().unwrap();
    submods["confidential_space"]
        .as_object_mut()
        .unwrap()
        .remove("support_attributes");
    submods.remove("gce");
    let verdict = evaluate(&seed_config(), &claims);
    assert!(!verdict.allow);
    // Sorted, as a Rego set is.
    assert_eq!(
        failed_messages(&verdict)[1..],
        [
            "dbgstat is \"enabled\"; a production image (dbgstat \"disabled-since-boot\") is required",
            "project_id is missing; allowed: [\"operator-project\"]",
            "support_attributes are missing; \"STABLE\" is required",
        ]
    );
}

#[test]
fn the_kbs_style_policy_allows_the_seed_workload_and_says_why_not() {
    assert_eq!(
        testing::validate_config::<RegoPolicy>(&kbs_config()),
        Ok(())
    );
    let verdict = evaluate(&kbs_config(), &seed_claims());
    assert!(verdict.allow, "{:?}", verdict.reasons);
    assert_eq!(
        verdict.reasons[0].message,
        "data.policy.allow is true and data.policy.deny is empty"
    );

    let mut debug = seed_claims();
    debug["dbgstat"] = json!("enabled");
    debug["submods"]["container"]["image_digest"] = json!(format!("sha256:{}", "0".repeat(64)));
    let verdict = evaluate(&kbs_config(), &debug);
    assert!(!verdict.allow);
    assert_eq!(
        failed_messages(&verdict),
        vec![
            "data.policy.allow is false for these claims: no allow rule held",
            "a production image is required (dbgstat must be \"disabled-since-boot\")",
            "image sha256:0000000000000000000000000000000000000000000000000000000000000000 is not one of the reference image digests",
        ]
    );
}

#[test]
fn pre_1_0_syntax_without_rego_version_v0_is_refused_with_a_hint() {
    let mut config = kbs_config();
    config.as_object_mut().unwrap().remove("rego_version");
    let err = load_error(&config);
    assert!(
        err.starts_with("Rego module kbs-style.rego does not parse: kbs-style.rego:"),
        "{err}"
    );
    assert!(err.contains("`if` keyword is required"), "{err}");
    assert!(err.ends_with("needs \"rego_version\": \"v0\")"), "{err}");
}

#[test]
fn the_audience_is_selected() {
    let request = testing::select_audience::<RegoPolicy>(&seed_config()).unwrap();
    assert_eq!(request, AudienceRequest::oidc(AUDIENCE));
}

#[test]
fn allow_with_a_deny_message_is_a_deny() {
    let policy = r#"package attestgate
allow := true
deny contains "the collaboration is paused" if data.paused
"#;
    let mut config = inline(policy);
    config["data"] = json!({"paused": true});
    let verdict = evaluate(&config, &seed_claims());
    assert!(!verdict.allow);
    assert_eq!(
        failed_messages(&verdict),
        vec!["the collaboration is paused"]
    );
    assert!(verdict.reasons.iter().any(|r| r.passed
        && r.message
            == "data.attestgate.allow is true, but every message in data.attestgate.deny denies"));

    config["data"] = json!({"paused": false});
    assert!(evaluate(&config, &seed_claims()).allow);
}

#[test]
fn an_undefined_or_non_boolean_allow_is_a_deny() {
    let undefined = inline("package attestgate\nallow if input.hwmodel == \"GCP_INTEL_TDX\"");
    let verdict = evaluate(&undefined, &seed_claims());
    assert!(!verdict.allow);
    assert_eq!(
        failed_messages(&verdict),
        vec!["data.attestgate.allow is undefined for these claims (no allow rule held, and there is no `default allow := false`); undefined is a deny"]
    );

    let cases = [
        ("allow := \"yes\"", "the string \"yes\""),
        ("allow := 1", "the number 1"),
        ("allow contains input.hwmodel", "the set [\"GCP_AMD_SEV\"]"),
        ("allow := {\"ok\": true}", "the object {\"ok\":true}"),
    ];
    for (rule, found) in cases {
        let verdict = evaluate(
            &inline(&format!("package attestgate\n{rule}")),
            &seed_claims(),
        );
        assert!(!verdict.allow, "{rule}");
        assert_eq!(
            failed_messages(&verdict),
            vec![format!(
                "data.attestgate.allow is {found}, not a boolean; only true allows, so this is a deny"
            )],
            "{rule}"
        );
    }
}

#[test]
fn a_deny_that_is_not_a_collection_of_messages_is_a_deny() {
    let verdict = evaluate(
        &inline("package attestgate\nallow := true\ndeny := true"),
        &seed_claims(),
    );
    assert!(!verdict.allow);
    assert_eq!(
        failed_messages(&verdict),
        vec!["data.attestgate.deny is the boolean true; it must be a set (or array) of messages, so this is a deny"]
    );
    // An array works like a set; a message that is not a string is quoted.
    let verdict = evaluate(
        &inline("package attestgate\nallow := true\ndeny := [\"first\", {\"code\": 7}]"),
        &seed_claims(),
    );
    assert_eq!(
        failed_messages(&verdict),
        vec!["first", "data.attestgate.deny: {\"code\":7}"]
    );
    // An empty deny does not deny.
    let verdict = evaluate(
        &inline("package attestgate\nallow := true\ndeny := []"),
        &seed_claims(),
    );
    assert!(verdict.allow, "{:?}", verdict.reasons);
}

#[test]
fn thousands_of_deny_messages_stay_within_the_contract() {
    let policy = "package attestgate\nallow := true\ndeny contains sprintf(\"rule %d failed\", [i]) if some i in numbers.range(1, 1000)";
    // `testing::evaluate` fails if the verdict would break the host's limit of 256 reasons.
    let verdict = evaluate(&inline(policy), &seed_claims());
    assert!(!verdict.allow);
    assert_eq!(verdict.reasons.len(), MAX_DENY_MESSAGES + 2);
    assert!(verdict
        .reasons
        .iter()
        .any(|r| r.message
            == format!("data.attestgate.deny gave 1000 messages; only the first {MAX_DENY_MESSAGES} are listed")));
}

#[test]
fn a_syntax_error_is_refused_at_load_with_its_location() {
    let err = load_error(&inline(
        "package attestgate\n\nallow if {\n  input.hwmodel ==\n}\n",
    ));
    assert_eq!(
        err,
        "Rego module policy.rego does not parse: policy.rego:5:1: expecting expression"
    );
    // In `modules`, the location names the module.
    let config = json!({"audience": AUDIENCE, "modules": [
        {"name": "main.rego", "text": "package attestgate\nimport data.lib\nallow if lib.ok"},
        {"name": "lib.rego", "text": "package lib\nok if {"}
    ]});
    let err = load_error(&config);
    assert!(
        err.starts_with("Rego module lib.rego does not parse: lib.rego:2:8: "),
        "{err}"
    );
}

#[test]
fn a_policy_that_does_not_compile_is_refused_at_load_with_its_location() {
    let err = load_error(&inline(
        "package attestgate\nallow if {\n  input.hwmodel == model\n}",
    ));
    assert_eq!(
        err,
        "Rego policy does not compile: policy.rego:3:20: use of undefined variable `model` is unsafe"
    );
    // A misspelt rule name is an unsafe variable too.
    let err = load_error(&inline(
        "package attestgate\nproduction if input.dbgstat == \"disabled-since-boot\"\nallow if prodction",
    ));
    assert_eq!(
        err,
        "Rego policy does not compile: policy.rego:3:10: use of undefined variable `prodction` is unsafe"
    );
}

#[test]
fn modules_in_several_packages_work_together() {
    let config = json!({"audience": AUDIENCE, "modules": [
        {"name": "main.rego", "text": "package attestgate\nimport data.lib\ndefault allow := false\nallow if lib.production"},
        {"name": "lib.rego", "text": "package lib\nproduction if input.dbgstat == \"disabled-since-boot\""}
    ]});
    assert_eq!(testing::validate_config::<RegoPolicy>(&config), Ok(()));
    assert!(evaluate(&config, &seed_claims()).allow);
    let mut debug = seed_claims();
    debug["dbgstat"] = json!("enabled");
    assert!(!evaluate(&config, &debug).allow);
}

#[test]
fn a_runtime_error_is_a_deny_with_its_message() {
    let policy = "package attestgate\nallow if {\n  to_number(input.hwmodel) > 1\n}";
    // It compiles: the error depends on the claims.
    assert_eq!(
        testing::validate_config::<RegoPolicy>(&inline(policy)),
        Ok(())
    );
    let verdict = evaluate(&inline(policy), &seed_claims());
    assert!(!verdict.allow);
    assert_eq!(
        failed_messages(&verdict),
        vec!["Rego evaluation of data.attestgate.allow failed: policy.rego:3:18: could not parse string as number"]
    );
    // Two bodies of a complete rule that give different values.
    let verdict = evaluate(
        &inline(
            "package attestgate\nallow := true if input.hwmodel\nallow := false if input.dbgstat",
        ),
        &seed_claims(),
    );
    assert_eq!(
        failed_messages(&verdict),
        vec!["Rego evaluation of data.attestgate.allow failed: policy.rego:3:1: rule conflicts with rule at policy.rego:2:1"]
    );
    // A function this build of regorus does not have is found only when it is called.
    let verdict = evaluate(
        &inline("package attestgate\nallow if time.parse_rfc3339_ns(\"2026-01-01T00:00:00Z\") > 0"),
        &seed_claims(),
    );
    assert!(!verdict.allow);
    assert!(
        failed_messages(&verdict)[0].contains("could not find function time.parse_rfc3339_ns"),
        "{:?}",
        verdict.reasons
    );
}

#[test]
fn data_is_used_by_the_rules() {
    let policy = "package attestgate\nallow if input.submods.gce.project_id in data.projects";
    let mut config = inline(policy);
    config["data"] = json!({"projects": ["operator-project"]});
    assert!(evaluate(&config, &seed_claims()).allow);
    config["data"] = json!({"projects": ["another-project"]});
    assert!(!evaluate(&config, &seed_claims()).allow);
    // Without data the rule is undefined: a deny.
    assert!(!evaluate(&inline(policy), &seed_claims()).allow);
}

#[test]
fn time_now_ns_is_the_verification_time_not_a_clock() {
    // The collaboration agreement ends at 1950000000 (2031-10-17).
    let policy = r#"package attestgate
default allow := false
allow if time.now_ns() < data.agreement_ends * 1000000000
deny contains msg if {
  time.now_ns() >= data.agreement_ends * 1000000000
  msg := sprintf("the agreement ended at %d; checked at %d", [data.agreement_ends, time.now_ns() / 1000000000])
}
"#;
    let mut config = inline(policy);
    config["data"] = json!({"agreement_ends": 1_950_000_000});
    assert!(evaluate_at(&config, 1_949_999_999).allow);
    let verdict = evaluate_at(&config, 1_950_000_000);
    assert!(!verdict.allow);
    assert_eq!(
        failed_messages(&verdict)[1],
        "the agreement ended at 1950000000; checked at 1950000000"
    );
    // Exactly the verification time, to the nanosecond.
    let exact = inline("package attestgate\nallow if time.now_ns() == 1234567890000000000");
    assert!(evaluate_at(&exact, 1_234_567_890).allow);
    assert!(!evaluate_at(&exact, 1_234_567_891).allow);
}

#[test]
fn login_chooses_the_vault_role_on_an_allow() {
    let policy = r#"package attestgate
allow := true
login := {"role": "analytics-tdx"} if input.hwmodel == "GCP_INTEL_TDX"
login := {"role": "analytics-sev"} if input.hwmodel == "GCP_AMD_SEV"
"#;
    let verdict = evaluate(&inline(policy), &seed_claims());
    assert!(verdict.allow);
    assert_eq!(verdict.login.role.as_deref(), Some("analytics-sev"));
    // Undefined login: the configured role.
    let mut claims = seed_claims();
    claims["hwmodel"] = json!("GCP_AMD_SEV_ES");
    assert_eq!(evaluate(&inline(policy), &claims).login.role, None);
}

#[test]
fn a_malformed_login_is_a_deny() {
    let cases = [
        (
            "login := \"analytics\"",
            "data.attestgate.login is the string \"analytics\"; it must be an object like {\"role\": \"my-role\"}",
        ),
        (
            "login := {\"rol\": \"analytics\"}",
            "data.attestgate.login has the key \"rol\", but only \"role\" is understood",
        ),
        (
            "login := {\"role\": \"analytics\\nrole: admin\"}",
            "data.attestgate.login.role is the string \"analytics\\nrole: admin\"; a Vault role is a string of 1 to 256 bytes without whitespace or control characters",
        ),
        (
            "login := {\"role\": 7}",
            "data.attestgate.login.role is the number 7; a Vault role is a string of 1 to 256 bytes without whitespace or control characters",
        ),
    ];
    for (rule, message) in cases {
        let policy = format!("package attestgate\nallow := true\n{rule}");
        let verdict = evaluate(&inline(&policy), &seed_claims());
        assert!(!verdict.allow, "{rule}");
        assert_eq!(failed_messages(&verdict), vec![message], "{rule}");
        assert_eq!(verdict.login.role, None);
    }
}

#[test]
fn prints_go_to_the_log() {
    take_log();
    let policy = "package attestgate\nallow if {\n  print(\"checking\", input.hwmodel)\n}";
    assert!(evaluate(&inline(policy), &seed_claims()).allow);
    assert_eq!(
        take_log(),
        vec![(
            LogLevel::Debug,
            "rego print: policy.rego:3: checking GCP_AMD_SEV".to_owned()
        )]
    );
}

#[test]
fn configuration_mistakes_are_refused_at_load() {
    let module = json!([{"name": "a.rego", "text": "package attestgate\nallow := true"}]);
    let cases = [
        (json!({"audience": AUDIENCE}), "no Rego policy: set \"policy\""),
        (
            json!({"audience": AUDIENCE, "policy": "package attestgate\nallow := true", "modules": module}),
            "not both",
        ),
        (json!({"audience": " ", "policy": "package attestgate"}), "\"audience\" must be"),
        (
            json!({"audience": AUDIENCE, "policy": "package attestgate", "polcy": ""}),
            "unknown field `polcy`",
        ),
        (json!({"audience": AUDIENCE, "modules": []}), "\"modules\" is empty"),
        (
            json!({"audience": AUDIENCE, "modules": [{"name": "a.rego", "text": ""}, {"name": "a.rego", "text": ""}]}),
            "two modules are named \"a.rego\"",
        ),
        (
            json!({"audience": AUDIENCE, "policy": "package attestgate\nallow := true", "rego_version": "v2"}),
            "unknown variant `v2`",
        ),
        (
            json!({"audience": AUDIENCE, "policy": "package attestgate\nallow := true", "data": ["x"]}),
            "invalid type: sequence, expected a map",
        ),
        (
            json!({"audience": AUDIENCE, "policy": "package other\nallow := true"}),
            "no module declares `package attestgate`, where attestgate looks for data.attestgate.allow (packages found: [\"other\"])",
        ),
        (
            json!({"audience": AUDIENCE, "policy": "package attestgate\ndeny contains \"x\" if false"}),
            "package attestgate declares no `allow` rule, so every token would be denied",
        ),
    ];
    for (config, expected) in cases {
        let err = load_error(&config);
        assert!(err.contains(expected), "{config}: {err}");
    }
}

#[test]
fn a_broken_configuration_at_evaluate_is_a_deny_not_a_panic() {
    // The host refuses these at load; evaluate still fails closed if it ever sees one.
    for config in [
        json!({"audience": AUDIENCE}),
        inline("package attestgate\nallow if {"),
        inline("package other\nallow := true"),
    ] {
        let verdict = evaluate(&config, &seed_claims());
        assert!(!verdict.allow, "{config}");
        assert_eq!(verdict.reasons.len(), 1);
    }
}

#[test]
fn regexes_take_the_classes_and_flags_opa_authors_use() {
    let policy = r#"package attestgate
allow if {
  regex.match(`^\d{6}$`, input.swversion[0])
  regex.match(`(?i)^gcp_amd_`, input.hwmodel)
  some account in input.google_service_accounts
  regex.match(`^[\w-]+@operator-project\.iam\.gserviceaccount\.com$`, account)
}"#;
    let verdict = evaluate(&inline(policy), &seed_claims());
    assert!(verdict.allow, "{:?}", verdict.reasons);
    let mut claims = seed_claims();
    claims["google_service_accounts"] = json!(["x@attacker.iam.gserviceaccount.com"]);
    assert!(!evaluate(&inline(policy), &claims).allow);
}

#[test]
fn the_docs_show_the_example_policies_as_they_are() {
    let docs = include_str!("../../../docs/rego.md");
    for (file, text) in [
        ("seed.rego", SEED_POLICY),
        ("seed-data.json", SEED_DATA),
        ("kbs-style.rego", KBS_POLICY),
        ("kbs-style-data.json", KBS_DATA),
    ] {
        assert!(
            docs.contains(&format!("\n{text}```")),
            "docs/rego.md does not show examples/rego/{file} as it is"
        );
    }
}

/// The golden rules allow the golden production claims natively, as the plugin does in every
/// language (`tests/golden.rs`); `bench/run.sh` runs this in release to time them.
#[test]
fn native_evaluate_time() {
    let config: serde_json::Value = serde_json::json!({
        "audience": AUDIENCE,
        "policy": include_str!("../../../examples/rego/confidential-space.rego"),
        "data": serde_json::from_str::<serde_json::Value>(include_str!(
            "../../../examples/rego/confidential-space-data.json"
        ))
        .unwrap(),
    });
    let verdict = testing::evaluate_timed::<RegoPolicy>(
        "rego",
        &config,
        include_str!("../../../tests/fixtures/golden/claims/production.json"),
    )
    .unwrap();
    assert!(verdict.allow, "{:?}", verdict.reasons);
    // The configuration parsed, the modules parsed and the data loaded into an engine, its
    // entry points found: what `evaluate` does before it gives the engine the claims.
    let text = config.to_string();
    testing::configuration_timed("rego", || {
        let config: Config = serde_json::from_str(&text).unwrap();
        let engine = load(&config, 1_900_000_000).unwrap();
        std::hint::black_box(entry_points(&engine, &config).is_ok());
    });
}
