//! OpenBao's CEL login roles, evaluated inside the TEE before the token leaves it. The plugin's
//! configuration **is** the role JSON a collaborator writes to `auth/<mount>/cel/role/<name>`
//! (or reads back from it), unchanged, and a deny reads exactly like the error OpenBao's
//! `auth/<mount>/cel/login` would return.
//!
//! Why run the role here as well as in OpenBao: the operator sees, before any login and with the
//! collaborator's own words, why a token would be refused (`attestgate verify`, `plugin test`);
//! a token that the collaborator's rules reject never reaches its Vault; and the same program can
//! be tried against a token's claims offline, which OpenBao cannot do.
//!
//! - `select-audience` asks for the first of `bound_audiences` (the host checks that it is the
//!   collaborator's declared audience).
//! - `validate-config` refuses what OpenBao refuses when the role is written: a program that does
//!   not parse, or does not type-check (an undeclared name, an undefined or mistyped `pb.Auth`
//!   field, an operator on arguments no overload takes), with the position.
//! - `evaluate` checks `bound_audiences` as OpenBao does before the program runs, then runs the
//!   variables and the expression on the claims (see [`program`]). `pb.Auth{…}` allows; `false`,
//!   a string, any other result or an evaluation error denies with OpenBao's message.
//!
//! The role name in OpenBao's messages is the role's `name`, which a role read back from OpenBao
//! carries; a role file without one is quoted by the role the host logs in with (the
//! collaborator's configured `role`, which the contract hands to the plugin), and only without
//! that by the collaborator's name.

mod check;
mod program;
mod rewrite;
mod role;
mod sets;

use attestgate_plugin_sdk::{
    export_policy, log, AudienceRequest, Claims, Context, LogLevel, Policy, Report, Verdict,
};
use std::sync::Arc;

use program::{Checkable, Compiled, Outcome};
use role::{CelRole, READ_BACK_FIELDS};

struct CelRolePolicy;

/// What `validate-config` says about a part of the program that does not parse or type-check.
fn refused(variable: Option<(usize, &str)>, what: &str, message: &str) -> String {
    match variable {
        Some((index, name)) => format!(
            "OpenBao would refuse this CEL role: variable[{index}].{name}: {what}: {message}"
        ),
        None => format!("OpenBao would refuse this CEL role: {what} CEL MainProgram: {message}"),
    }
}

impl Policy for CelRolePolicy {
    type Config = CelRole;

    fn validate(role: &CelRole) -> Result<(), String> {
        for key in role.other.keys() {
            if !READ_BACK_FIELDS.contains(&key.as_str()) {
                log(
                    LogLevel::Warn,
                    &format!("\"{key}\" is not a CEL role field; OpenBao ignores it, and so does this plugin"),
                );
            }
        }
        if role.bound_audiences.is_empty() {
            return Err("bound_audiences is empty: attestgate needs the collaborator's audience to mint its token, and OpenBao checks it before the program runs".into());
        }
        if role.cel_program.expression.trim().is_empty() {
            return Err("cel_program.expression is empty: it decides every login".into());
        }
        let env = program::environment();
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

    fn audience(ctx: &Context<CelRole>) -> Result<AudienceRequest, String> {
        ctx.config
            .bound_audiences
            .first()
            .map(AudienceRequest::oidc)
            .ok_or_else(|| "the role has no bound_audiences to request a token for".into())
    }

    fn evaluate(ctx: &Context<CelRole>, claims: &Claims<'_>) -> Verdict {
        let role = &ctx.config;
        let name = role.display_name(ctx.vault_role.as_deref(), &ctx.collaborator);
        let mut report = Report::new();

        let audiences = claims.audiences();
        if audiences
            .iter()
            .any(|a| role.bound_audiences.iter().any(|b| b == a))
        {
            report.pass(Some("/aud"), "audience matches bound_audiences");
        } else {
            report.fail(
                Some("/aud"),
                "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience",
            );
            return report.verdict();
        }

        let env = program::environment();
        let compiled = match Compiled::new(&env, &role.cel_program) {
            Ok(compiled) => compiled,
            // validate-config refused this already; a deny all the same.
            Err(e) => {
                report.fail(
                    None,
                    format!("the CEL program does not parse: {}", e.message),
                );
                return report.verdict();
            }
        };
        let outcome = compiled.run(Arc::new(env), claims.raw(), ctx.verification_time);
        match outcome.openbao_error(&name) {
            None => {
                let policies = match &outcome {
                    Outcome::Allowed { policies } => policies.join(", "),
                    _ => String::new(),
                };
                report.pass(
                    None,
                    format!("CEL role '{name}' returned pb.Auth (policies: [{policies}])"),
                );
                if let Some(role_name) = &role.name {
                    report.role(&role_name.to_lowercase());
                }
            }
            Some(message) => {
                report.fail(None, message);
            }
        }
        report.verdict()
    }
}

export_policy!(CelRolePolicy);

#[cfg(test)]
mod tests;
