//! OpenBao's CEL login roles (`auth/<mount>/cel/role/<name>`, logged in at
//! `auth/<mount>/cel/login`): what OpenBao refuses when the role is written, and what a login
//! with given claims returns, in OpenBao's words.
//!
//! - [`validate`] refuses what OpenBao refuses when the role is written: a program that does not
//!   parse, or does not type-check (an undeclared name, an undefined or mistyped `pb.Auth` field,
//!   an operator on arguments no overload takes), with the position.
//! - [`login`] checks `bound_audiences` as OpenBao does before the program runs, then runs the
//!   variables and the expression on the claims (see its `program` module). `pb.Auth{…}` allows; `false`,
//!   a string, any other result or an evaluation error denies with OpenBao's message.

mod check;
mod lint;
mod program;
mod rewrite;
mod role;
mod sets;

pub use lint::{lint_cel_role, may_return_true};
pub use program::{environment, Compiled, Outcome};
pub use role::{CelProgram, CelRole, Variable, READ_BACK_FIELDS};

use crate::jwt::TokenChecks;
use crate::prediction::{Prediction, Trace};
use program::Checkable;
use serde_json::Value;
use std::sync::Arc;

/// cel-go's default limit on the size of one expression, in code points.
pub const MAX_EXPRESSION_CODE_POINTS: usize = 100_000;

/// Why OpenBao would refuse to store a CEL role: its message, with the position of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Which part of the program: `None` for the main expression, else the variable's index and
    /// name.
    pub variable: Option<(usize, String)>,
    /// The refusal, as attestgate words it around OpenBao's (cel-go's) message.
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

fn refused(variable: Option<(usize, &str)>, what: &str, message: &str) -> Refusal {
    let text = match variable {
        Some((index, name)) => format!(
            "OpenBao would refuse this CEL role: variable[{index}].{name}: {what}: {message}"
        ),
        None => format!("OpenBao would refuse this CEL role: {what} CEL MainProgram: {message}"),
    };
    Refusal {
        variable: variable.map(|(i, n)| (i, n.to_owned())),
        message: text,
    }
}

/// Whether a parse failed on one of cel-go's two nesting limits (operators, `expr` levels),
/// which OpenBao reports as invalid syntax before anything else.
fn too_deep(e: &program::SyntaxError) -> bool {
    e.message.contains("max recursion depth exceeded") || e.message == program::NESTING_REFUSAL
}

fn syntax_refusal(e: &program::SyntaxError) -> Refusal {
    match &e.variable {
        Some((index, name)) => refused(
            Some((*index, name)),
            &format!("invalid CEL syntax for variable '{name}'"),
            &e.message,
        ),
        None => Refusal {
            variable: None,
            message: format!(
                "OpenBao would refuse this CEL role: invalid CEL syntax for main expression: {}",
                e.message
            ),
        },
    }
}

/// Checks a role as OpenBao does when it is written: the program parses and type-checks.
/// (Whether `bound_audiences` is present is attestgate's rule, not OpenBao's; the plugin and
/// the doctor say so themselves.)
pub fn validate(role: &CelRole) -> Result<(), Refusal> {
    // cel-go's limit on an expression's size, which also bounds how deep the (recursive)
    // parser, checker and interpreter here can be driven.
    let parts = role
        .cel_program
        .variables
        .iter()
        .enumerate()
        .map(|(i, v)| (Some((i, v.name.as_str())), v.expression.as_str()))
        .chain(std::iter::once((
            None,
            role.cel_program.expression.as_str(),
        )));
    for (variable, text) in parts {
        let size = text.chars().count();
        if size > MAX_EXPRESSION_CODE_POINTS {
            return Err(refused(
                variable,
                "error parsing",
                &format!("expression code point size exceeds limit: size: {size}, limit {MAX_EXPRESSION_CODE_POINTS}"),
            ));
        }
    }
    let env = environment();
    // The fast parser first, only for its depth check: a program too deep for cel-go is refused
    // before the other parser and the checker, which recurse over it.
    if let Err(e) = Compiled::new(&env, &role.cel_program) {
        if too_deep(&e) {
            return Err(syntax_refusal(&e));
        }
    }
    let parsed = Checkable::parse(&env, &role.cel_program).map_err(|e| match &e.variable {
        _ if too_deep(&e) => syntax_refusal(&e),
        Some((index, name)) => refused(
            Some((*index, name)),
            &format!("invalid CEL syntax for variable '{name}'"),
            &e.message,
        ),
        None => refused(None, "error parsing", &e.message),
    })?;
    let mut declared: Vec<&str> = Vec::new();
    for (index, (name, program)) in parsed.variables.iter().enumerate() {
        check::check(program, &declared).map_err(|f| {
            let source = &role.cel_program.variables[index].expression;
            refused(Some((index, name)), "type-checking", &f.render(source))
        })?;
        declared.push(name);
    }
    check::check(&parsed.expression, &declared).map_err(|f| {
        refused(
            None,
            "error type-checking",
            &f.render(&role.cel_program.expression),
        )
    })?;
    // What runs is parsed again, faster; both parsers must take the program.
    Compiled::new(&env, &role.cel_program)
        .map_err(|e| refused(None, "error parsing", &e.message))?;
    Ok(())
}

/// What `auth/<mount>/cel/login` returns for a token with these (signature-checked) claims.
/// `name` is the role's name as OpenBao quotes it (see [`CelRole::display_name`]).
///
/// OpenBao's validator checks the issuer, `bound_audiences` and the times (with the role's
/// leeways) before the program runs; the program then sees the claims and `now`.
pub fn login(
    role: &CelRole,
    name: &str,
    checks: &TokenChecks<'_>,
    claims: &Value,
    now: i64,
) -> Prediction {
    let mut trace = Trace::default();
    checks.validate(
        None,
        &role.bound_audiences,
        role.leeways(),
        claims,
        &mut trace,
    );

    let env = environment();
    let outcome = match Compiled::new(&env, &role.cel_program) {
        Ok(compiled) => compiled.run(Arc::new(env), claims, now),
        // `validate` refuses this; a deny all the same.
        Err(e) => {
            trace.fail(
                None,
                format!("the CEL program does not parse: {}", e.message),
            );
            return trace.deny();
        }
    };
    match outcome {
        Outcome::Allowed {
            policies,
            metadata,
            no_default_policy,
        } => {
            trace.pass(None, format!("CEL role '{name}' returned pb.Auth"));
            crate::jwt::finish_with_policies(trace, &policies, !no_default_policy, metadata)
        }
        denied => {
            if let Some(message) = denied.openbao_error(name) {
                trace.fail(None, message);
            }
            trace.deny()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(expression: &str) -> CelRole {
        serde_json::from_value(serde_json::json!({
            "cel_program": {"expression": expression},
            "bound_audiences": ["https://vault.bank-a.example"]
        }))
        .unwrap()
    }

    /// `validate`, on a thread with the doctor's stack: the parsers and the checker recurse once
    /// per level, 249 levels deep here, more than a test thread's 2 MiB hold unoptimised.
    fn validated(expression: String) -> Result<(), String> {
        std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn(move || validate(&role(&expression)).map_err(|r| r.message))
            .unwrap()
            .join()
            .unwrap()
    }

    const NESTING: &str = "OpenBao would refuse this CEL role: invalid CEL syntax for main expression: ERROR: <input>:-1:0: expression recursion limit exceeded: 250";
    const OPERATORS: &str = "OpenBao would refuse this CEL role: invalid CEL syntax for main expression: ERROR: <input>:-1:0: max recursion depth exceeded";

    /// Measured with OpenBao 2.7.2: 249 levels of parentheses, lists, calls or conditionals are
    /// stored; 250, or as many as fit in 100,000 code points, are refused with cel-go's words
    /// (the `cel` crate's own limit of 96 refused roles OpenBao stores).
    #[test]
    fn brackets_and_conditionals_nest_exactly_as_deep_as_cel_go_allows() {
        /// A name, the program nesting that shape `n` levels deep, and the most levels that fit
        /// in cel-go's 100,000 code points.
        type Shape = (&'static str, fn(usize) -> String, usize);
        let shapes: [Shape; 4] = [
            (
                "parentheses",
                |n| {
                    format!(
                        "{}true{} ? pb.Auth{{}} : 'no'",
                        "(".repeat(n),
                        ")".repeat(n)
                    )
                },
                49_000,
            ),
            (
                "conditionals",
                |n| format!("{}pb.Auth{{}}", "false ? 'no' : ".repeat(n)),
                6_600,
            ),
            (
                "lists",
                |n| {
                    format!(
                        "{}1{} == [] ? pb.Auth{{}} : 'no'",
                        "[".repeat(n),
                        "]".repeat(n)
                    )
                },
                49_000,
            ),
            (
                "calls",
                |n| {
                    format!(
                        "{}1{} == 1 ? pb.Auth{{}} : 'no'",
                        "int(".repeat(n),
                        ")".repeat(n)
                    )
                },
                19_000,
            ),
        ];
        for (shape, nested, most) in shapes {
            assert!(
                nested(most).chars().count() <= MAX_EXPRESSION_CODE_POINTS,
                "{shape}"
            );
            assert_eq!(validated(nested(249)), Ok(()), "{shape}");
            for n in [250, most] {
                assert_eq!(validated(nested(n)), Err(NESTING.to_owned()), "{shape} {n}");
            }
        }
    }

    /// Measured with OpenBao 2.7.2: operators and selections count, one level each, and so does
    /// each conditional in front of them; `&&`, brackets and calls around a chain do not.
    #[test]
    fn operator_chains_count_as_cel_go_counts_them() {
        let plus = |n: usize| "1".to_owned() + &"+1".repeat(n);
        /// The most of a shape OpenBao stores, and the program with `n` of it.
        type Chain = (usize, fn(usize) -> String);
        let shapes: [Chain; 8] = [
            (249, |n| format!("1{} == 2", "+1".repeat(n))),
            (248, |n| {
                format!("1{} == 2 ? pb.Auth{{}} : 'no'", "+1".repeat(n))
            }),
            (250, |n| format!("claims{}", ".a".repeat(n))),
            (188, |k| {
                format!(
                    "{}1{} == 2 ? pb.Auth{{}} : 'no'",
                    "false ? 'no' : ".repeat(k),
                    "+1".repeat(60)
                )
            }),
            (248, |n| {
                format!(
                    "{}1{} == 2 ? pb.Auth{{}} : 'no'",
                    "true && ".repeat(1_000),
                    "+1".repeat(n)
                )
            }),
            (248, |n| {
                format!("[1{}] == [2] ? pb.Auth{{}} : 'no'", "+1".repeat(n))
            }),
            (248, |n| {
                format!(
                    "'a'{} == 'a' ? pb.Auth{{}} : 'no'",
                    ".lowerAscii()".repeat(n)
                )
            }),
            (248, |n| {
                format!("claims{} == 1 ? pb.Auth{{}} : 'no'", "['a']".repeat(n))
            }),
        ];
        for (stored, expression) in shapes {
            assert_eq!(validated(expression(stored)), Ok(()), "{}", expression(2));
            assert_eq!(
                validated(expression(stored + 1)),
                Err(OPERATORS.to_owned()),
                "{}",
                expression(2)
            );
        }
        assert_eq!(validated(plus(3) + " == 4"), Ok(()));
        // cel-go's grammar refuses `!` and `-` alternating; a long run is refused before
        // anything walks the deep tree it would make.
        let alternating = format!("{}1 == 1 ? pb.Auth{{}} : 'no'", "!-".repeat(40_000));
        assert_eq!(validated(alternating), Err(OPERATORS.to_owned()));
    }

    #[test]
    fn the_textual_bound_counts_brackets_and_conditionals_but_not_strings_or_optionals() {
        use program::textual_nesting as nesting;
        assert_eq!(nesting("((a)) ? [b] : c ? d : e"), 2);
        assert_eq!(nesting(r#"'((((' + "[[[[" + '''?{''' + """((""""#), 0);
        assert_eq!(nesting(r"r'\' ? 1 : 2"), 1);
        assert_eq!(nesting(r"rb'\' ? 1 : 2 ? 3 : 4"), 2);
        assert_eq!(nesting(r#"br"\" + b'\'' + '\\' ? (1) : 2"#), 2);
        assert_eq!(nesting("a.?b.?c[?d] == {?'k': [1, ?x]}"), 2);
        assert_eq!(nesting("[a ? b : c, d ? e : f, g]"), 2);
        assert_eq!(nesting("// ((((\n(x)"), 1);
        assert_eq!(nesting("`a'b` ? 1 : 2 ? 3 : 4"), 2);
    }
}
