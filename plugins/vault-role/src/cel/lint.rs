//! The rules about a CEL role: those of every role (audiences, production image, image digest)
//! read from the program's text, and those only a program can break: returning `true` (which
//! OpenBao treats as an error, not an allow) and reading a claim that real tokens omit without
//! `has()`.

use super::program::{environment, Checkable};
use super::{validate, CelRole, READ_BACK_FIELDS};
use crate::lint::{lint_audiences, lint_unknown_keys, Finding, Severity, OPTIONAL_CLAIMS};
use cel::common::ast::{operators, Expr, IdedExpr, LiteralValue};

/// The rules about a CEL role.
pub fn lint_cel_role(role: &CelRole) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut known = vec!["name", "cel_program", "bound_audiences"];
    known.extend_from_slice(READ_BACK_FIELDS);
    let mut raw = role.other.clone();
    raw.retain(|k, _| !matches!(k.as_str(), "name" | "cel_program" | "bound_audiences"));
    lint_unknown_keys(&raw, &known, "CEL role", &mut findings);
    lint_audiences(&role.bound_audiences, &mut findings);

    if let Err(refusal) = validate(role) {
        findings.push(Finding {
            severity: Severity::Error,
            key: match &refusal.variable {
                Some((index, name)) => format!("cel_program.variables[{index}] ({name})"),
                None => "cel_program.expression".into(),
            },
            message: refusal.message,
            fix: "fix the program at the position shown; OpenBao refuses to store the role until it type-checks".into(),
        });
        return findings;
    }
    let env = environment();
    if let Ok(parsed) = Checkable::parse(&env, &role.cel_program) {
        let variables: Vec<(&str, &IdedExpr)> = parsed
            .variables
            .iter()
            .map(|(name, program)| (name.as_str(), program.expression()))
            .collect();
        if may_return_true(parsed.expression.expression(), &variables) {
            findings.push(Finding {
                severity: Severity::Error,
                key: "cel_program.expression".into(),
                message: "the expression can evaluate to true, which OpenBao does not treat as an allow: the login fails with \"CEL program '<role>' returned unexpected type: types.Bool\"".into(),
                fix: "return pb.Auth{policies: [...]} to allow, and false or a message string to deny, e.g. `ok ? pb.Auth{policies: ['p']} : 'why not'`".into(),
            });
        }
    }

    let text: String = role
        .cel_program
        .variables
        .iter()
        .map(|v| v.expression.as_str())
        .chain(std::iter::once(role.cel_program.expression.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    for claim in OPTIONAL_CLAIMS {
        if reads_without_has(&text, claim) {
            findings.push(Finding {
                severity: Severity::Warning,
                key: "cel_program".into(),
                message: format!("the program reads `{claim}` without has(); real tokens omit it (on debug images, older images, or when not requested), and then every login fails with \"no such key: {claim}\" instead of the program's own message"),
                fix: format!("guard it: `has(<...>.{claim}) && ...`"),
            });
        }
    }
    let code = without_string_literals(&text);
    let checks_production = (code.contains("dbgstat") && text.contains("disabled-since-boot"))
        || code.contains("support_attributes");
    if !checks_production {
        findings.push(Finding {
            severity: Severity::Error,
            key: "cel_program".into(),
            message: "the program reads neither dbgstat nor support_attributes, so a debug image passes: on a debug image the operator can read the workload's memory, and with it the secrets".into(),
            fix: "require `claims.dbgstat == 'disabled-since-boot'` (and 'STABLE' in support_attributes, guarded by has())".into(),
        });
    }
    if !code.contains("image_digest") && !code.contains("image_signatures") {
        findings.push(Finding {
            severity: Severity::Error,
            key: "cel_program".into(),
            message: "the program does not check the image digest, so any container image that runs in the allowed project passes".into(),
            fix: "require `claims.submods.container.image_digest in ['sha256:...']`".into(),
        });
    }
    findings
}

/// The program's text with the contents of its string literals blanked, so that a word in a
/// denial message does not count as reading a claim.
fn without_string_literals(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                    out.push(c);
                }
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                out.push(c);
            }
        }
    }
    out
}

/// Whether `text` selects `.claim` somewhere without any `has(….claim)` guard for it.
fn reads_without_has(text: &str, claim: &str) -> bool {
    let selection = format!(".{claim}");
    let mut unguarded = false;
    let mut guarded = false;
    for (at, _) in text.match_indices(&selection) {
        let end = at + selection.len();
        if text[end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
        {
            continue;
        }
        let before = &text[..at];
        let in_has = before
            .rfind("has(")
            .is_some_and(|h| !before[h..].contains(')') && !before[h..].contains(' '));
        if in_has {
            guarded = true;
        } else {
            unguarded = true;
        }
    }
    unguarded && !guarded
}

/// Whether the expression can end in a bool other than `false` (following `?:` branches and
/// variables), which OpenBao answers with "returned unexpected type: types.Bool".
pub fn may_return_true(expr: &IdedExpr, variables: &[(&str, &IdedExpr)]) -> bool {
    match &expr.expr {
        Expr::Literal(LiteralValue::Boolean(b)) => **b,
        Expr::Call(call) if call.func_name == operators::CONDITIONAL && call.args.len() == 3 => {
            may_return_true(&call.args[1], variables) || may_return_true(&call.args[2], variables)
        }
        Expr::Call(call) => matches!(
            call.func_name.as_str(),
            operators::LOGICAL_AND
                | operators::LOGICAL_OR
                | operators::LOGICAL_NOT
                | operators::EQUALS
                | operators::NOT_EQUALS
                | operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS
                | operators::IN
                | "startsWith"
                | "endsWith"
                | "contains"
                | "matches"
        ),
        Expr::Select(select) => select.test,
        Expr::Ident(name) => variables
            .iter()
            .position(|(n, _)| n == name)
            .is_some_and(|i| may_return_true(variables[i].1, &variables[..i])),
        Expr::Comprehension(c) => match &c.result.expr {
            Expr::Ident(name) if *name == c.accu_var => {
                matches!(c.accu_init.expr, Expr::Literal(LiteralValue::Boolean(_)))
            }
            _ => may_return_true(&c.result, variables),
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    /// A CEL role with nothing to find.
    fn clean() -> Value {
        json!({
            "cel_program": {
                "variables": [
                    {"name": "cs", "expression": "claims.submods.confidential_space"},
                    {"name": "production", "expression": "claims.dbgstat == 'disabled-since-boot' && has(cs.support_attributes) && 'STABLE' in cs.support_attributes"},
                    {"name": "image", "expression": "claims.submods.container.image_digest in ['sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646']"}
                ],
                "expression": "!production ? 'a production image is required' : !image ? 'not an allowed image' : pb.Auth{policies: ['p']}"
            },
            "bound_audiences": ["https://vault.bank-a.example"]
        })
    }

    fn findings(role: &Value) -> Vec<Finding> {
        lint_cel_role(&serde_json::from_value(role.clone()).unwrap())
    }

    fn with_expression(expression: &str) -> Value {
        let mut role = clean();
        role["cel_program"]["expression"] = json!(expression);
        role
    }

    #[test]
    fn a_careful_cel_role_has_no_findings() {
        assert_eq!(findings(&clean()), vec![]);
    }

    #[test]
    fn each_cel_rule_fires_on_its_mistake() {
        let mut no_audience = clean();
        no_audience
            .as_object_mut()
            .unwrap()
            .remove("bound_audiences");
        let mut misspelled = clean();
        misspelled["bound_audience"] = json!(["x"]);
        let mut unguarded = clean();
        unguarded["cel_program"]["variables"][1]["expression"] =
            json!("claims.dbgstat == 'disabled-since-boot' && 'STABLE' in cs.support_attributes");
        let cases: Vec<(&str, Value, &str)> = vec![
            ("does not compile", with_expression("pb.Auth{ttl: 5}"), "OpenBao would refuse this CEL role"),
            ("returns true", with_expression("production && image"), "can evaluate to true"),
            ("a branch returns true", with_expression("!production ? false : image"), "can evaluate to true"),
            ("literal true", with_expression("production ? true : 'no'"), "can evaluate to true"),
            ("exists returns true", with_expression("claims.swversion.exists(v, v == '1')"), "can evaluate to true"),
            ("unguarded optional claim", unguarded, "without has()"),
            ("unguarded nonce", with_expression("claims.eat_nonce == 'x' ? pb.Auth{} : production && image ? 'a' : 'b'"), "`eat_nonce` without has()"),
            ("no production check", with_expression("image ? pb.Auth{} : 'no'").to_string().replace("claims.dbgstat == 'disabled-since-boot' && has(cs.support_attributes) && 'STABLE' in cs.support_attributes", "true").parse().unwrap(), "neither dbgstat nor support_attributes"),
            ("no image check", with_expression("production ? pb.Auth{} : 'no'").to_string().replace("claims.submods.container.image_digest in", "claims.submods.gce.project_id in").parse().unwrap(), "does not check the image digest"),
            ("no audience", no_audience, "no bound_audiences"),
            ("misspelled key", misspelled, "rename it to \"bound_audiences\""),
        ];
        for (name, role, expected) in cases {
            let found = findings(&role);
            assert!(
                found
                    .iter()
                    .any(|f| f.message.contains(expected) || f.fix.contains(expected)),
                "{name}: expected {expected:?} in {found:#?}"
            );
        }
    }

    #[test]
    fn a_claim_named_only_in_a_message_is_not_a_check() {
        let mut role = clean();
        role["cel_program"]["variables"][1]["expression"] = json!("true");
        role["cel_program"]["expression"] =
            json!("!image ? 'dbgstat and support_attributes are required' : pb.Auth{}");
        let found = findings(&role);
        assert!(
            found
                .iter()
                .any(|f| f.message.contains("neither dbgstat nor support_attributes")),
            "{found:#?}"
        );
    }

    #[test]
    fn guarded_reads_and_messages_are_not_findings() {
        // A has() guard, a string or pb.Auth result, and `false`.
        for expression in [
            "has(claims.eat_nonce) && claims.eat_nonce == 'x' ? pb.Auth{} : 'no'",
            "production && image ? pb.Auth{} : false",
            "!production ? 'no' : image ? pb.Auth{policies: ['p']} : 'no image'",
        ] {
            let found = findings(&with_expression(expression));
            assert_eq!(found, vec![], "{expression}");
        }
    }
}
