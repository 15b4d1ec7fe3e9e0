//! The outcome rows measured against OpenBao 2.7.2 (`openbao-cel-roles.md`), natively. The
//! differential test in the host suite checks the same against a real OpenBao.

use super::*;
use attestgate_plugin_sdk::testing::{self, production_claims};
use attestgate_plugin_sdk::UnixSeconds;
use serde_json::{json, Value};

const AUDIENCE: &str = "https://vault.bank-a.example";
const NOW: UnixSeconds = 1_900_000_000;

fn role(expression: &str) -> Value {
    json!({
        "name": "t1",
        "cel_program": {
            "variables": [{"name": "cs", "expression": "claims.submods.confidential_space"}],
            "expression": expression,
        },
        "bound_audiences": [AUDIENCE],
    })
}

fn evaluate(role: &Value, claims: &Value) -> Verdict {
    testing::evaluate::<CelRolePolicy>(role, claims, NOW).unwrap()
}

fn denial(expression: &str) -> String {
    let verdict = evaluate(&role(expression), &production_claims(AUDIENCE, NOW));
    assert!(!verdict.allow, "{expression} must deny");
    verdict
        .reasons
        .iter()
        .find(|r| !r.passed)
        .map(|r| r.message.clone())
        .unwrap()
}

#[test]
fn a_pb_auth_result_allows_and_logs_in_with_the_roles_name() {
    let verdict = evaluate(
        &role("'STABLE' in cs.support_attributes ? pb.Auth{policies: ['a', 'b'], metadata: {'k': 'v'}} : 'not a stable image'"),
        &production_claims(AUDIENCE, NOW),
    );
    assert!(verdict.allow, "{:?}", verdict.reasons);
    assert_eq!(verdict.login.role.as_deref(), Some("t1"));
    assert!(evaluate(&role("pb.Auth{}"), &production_claims(AUDIENCE, NOW)).allow);
}

#[test]
fn a_role_file_without_a_name_is_quoted_by_the_role_the_host_logs_in_with() {
    let mut unnamed = role("false");
    unnamed.as_object_mut().unwrap().remove("name");
    let verdict = evaluate(&unnamed, &production_claims(AUDIENCE, NOW));
    let expected = format!(
        "error executing cel program: CEL role '{}' blocked authorization with boolean false return",
        testing::VAULT_ROLE
    );
    assert_eq!(verdict.reasons.last().unwrap().message, expected);
    // The role's own name wins: the plugin logs in with it.
    assert!(denial("false").contains("CEL role 't1'"));
}

#[test]
fn every_other_result_denies_with_openbaos_message() {
    let cases = [
        ("false", "error executing cel program: CEL role 't1' blocked authorization with boolean false return"),
        ("true", "error executing cel program: CEL program 't1' returned unexpected type: types.Bool"),
        ("'custom denial'", "error executing cel program: CEL role 't1' blocked authorization with message: custom denial"),
        ("claims.nosuch.size() > 0 ? pb.Auth{} : 'x'", "error executing cel program: CEL auth program failed: failed to evaluate expression: failed to evaluate expression \"claims.nosuch.size() > 0 ? pb.Auth{} : 'x'\": no such key: nosuch"),
        ("1/0 == 1", "error executing cel program: CEL auth program failed: failed to evaluate expression: failed to evaluate expression \"1/0 == 1\": division by zero"),
        ("1", "error executing cel program: CEL program 't1' returned unexpected type: types.Int"),
        ("claims.swversion", "error executing cel program: CEL program 't1' returned unexpected type: *types.baseList"),
    ];
    for (expression, expected) in cases {
        assert_eq!(denial(expression), expected, "{expression}");
    }
}

#[test]
fn json_numbers_are_doubles_and_compare_with_ints() {
    assert!(
        evaluate(
            &role("claims.exp + 1.5 > 0.0 ? pb.Auth{} : 'x'"),
            &production_claims(AUDIENCE, NOW)
        )
        .allow
    );
    assert!(
        evaluate(
            &role("claims.iat > 0 ? pb.Auth{} : 'x'"),
            &production_claims(AUDIENCE, NOW)
        )
        .allow
    );
}

#[test]
fn programs_openbao_refuses_to_store_are_refused_at_load_with_the_position() {
    let cases = [
        ("pb.Auth{bogus: 1}", "1:14: undefined field 'bogus'"),
        ("pb.Auth{ttl: 5}", "1:12: undefined field 'ttl'"),
        (
            "pb.Auth{period: 'x'}",
            "1:15: expected type of field 'period' is 'int' but provided type is 'string'",
        ),
        (
            "1 + 'a'",
            "1:3: found no matching overload for '_+_' applied to '(int, string)'",
        ),
        ("x", "1:1: undeclared reference to 'x' (in container '')"),
        (
            "claims.sub.startsWith(1)",
            "found no matching overload for 'startsWith' applied to 'dyn.(int)'",
        ),
        ("'STABLE' in cs ?", "Syntax error"),
    ];
    for (expression, expected) in cases {
        let err = testing::validate_config::<CelRolePolicy>(&role(expression)).unwrap_err();
        assert!(err.contains(expected), "{expression}: {err}");
    }
    assert_eq!(
        testing::validate_config::<CelRolePolicy>(&role("pb.Auth{}")),
        Ok(())
    );
}

#[test]
fn the_token_is_minted_for_the_first_bound_audience() {
    let request = testing::select_audience::<CelRolePolicy>(&role("pb.Auth{}")).unwrap();
    assert_eq!(request, AudienceRequest::oidc(AUDIENCE));
}

#[test]
fn a_program_nested_deeper_than_cel_go_allows_is_refused_without_exhausting_the_stack() {
    // Measured with OpenBao 2.7.2: 200 additions are stored, 260 are refused.
    let chain = |n: usize| format!("1{} == 2 ? pb.Auth{{}} : 'no'", "+1".repeat(n));
    assert_eq!(
        testing::validate_config::<CelRolePolicy>(&role(&chain(200))),
        Ok(())
    );
    for n in [260, 20_000] {
        let err = testing::validate_config::<CelRolePolicy>(&role(&chain(n))).unwrap_err();
        assert!(err.contains("max recursion depth exceeded"), "{n}: {err}");
    }
    let selections = format!("claims{} == 1 ? pb.Auth{{}} : 'x'", ".a".repeat(5_000));
    let err = testing::validate_config::<CelRolePolicy>(&role(&selections)).unwrap_err();
    assert!(err.contains("max recursion depth exceeded"), "{err}");
    // Evaluating such a program (a role file that skipped validation) denies the same way.
    let verdict = evaluate(&role(&chain(20_000)), &production_claims(AUDIENCE, NOW));
    assert!(!verdict.allow);
}

/// The golden rules allow the golden production claims natively, as the plugin does in every
/// language (`tests/golden.rs`); `bench/run.sh` runs this in release to time them.
#[test]
fn native_evaluate_time() {
    let config: serde_json::Value = serde_json::from_str(include_str!(
        "../../../examples/cel/confidential-space-role.json"
    ))
    .unwrap();
    let verdict = testing::evaluate_timed::<CelRolePolicy>(
        "cel",
        &config,
        include_str!("../../../tests/fixtures/golden/claims/production.json"),
    )
    .unwrap();
    assert!(verdict.allow, "{:?}", verdict.reasons);
    // The role parsed, the environment built and the program parsed: what `cel::login` does
    // before it runs the program on the claims.
    let text = config.to_string();
    testing::configuration_timed("cel", || {
        let role: CelRole = serde_json::from_str(&text).unwrap();
        let env = cel::environment();
        std::hint::black_box(cel::Compiled::new(&env, &role.cel_program).is_ok());
    });
}
