//! OpenBao's CEL login roles (`auth/<mount>/cel/role/<name>`, logged in at
//! `auth/<mount>/cel/login`): what OpenBao refuses when the role is written, and what a login
//! with given claims returns, in OpenBao's words.
//!
//! - [`validate`] refuses what OpenBao refuses when the role is written: a program that does not
//!   parse, or does not type-check (an undeclared name, an undefined or mistyped `pb.Auth` field,
//!   an operator on arguments no overload takes), with the position.
//! - [`login`] checks `bound_audiences` as OpenBao does before the program runs, then runs the
//!   variables and the expression on the claims (see [`program`]). `pb.Auth{…}` allows; `false`,
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
        if e.message.contains("max recursion depth exceeded") {
            return Err(syntax_refusal(&e));
        }
    }
    let parsed = Checkable::parse(&env, &role.cel_program).map_err(|e| match &e.variable {
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
