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
//! The semantics are `attestgate-vault-role`'s (`cel` module), the same code
//! `attestgate vault doctor` predicts logins with:
//! - `select-audience` asks for the first of `bound_audiences` (the host checks that it is the
//!   collaborator's declared audience);
//! - `validate-config` refuses what OpenBao refuses when the role is written;
//! - `evaluate` checks `bound_audiences`, then runs the program on the claims.
//!
//! The role name in OpenBao's messages is the role's `name`, which a role read back from OpenBao
//! carries; a role file without one is quoted by the role the host logs in with (the
//! collaborator's configured `role`, which the contract hands to the plugin), and only without
//! that by the collaborator's name.

use attestgate_plugin_sdk::{
    export_policy, log, AudienceRequest, Claims, Context, LogLevel, Policy, Report, Verdict,
};
use attestgate_vault_role::cel::{self, CelRole, READ_BACK_FIELDS};
use attestgate_vault_role::TokenChecks;

struct CelRolePolicy;

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
        cel::validate(role).map_err(|refusal| refusal.message)
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
        // The issuer and the times are the host verifier's business inside the TEE.
        let prediction = cel::login(
            role,
            &name,
            &TokenChecks::default(),
            claims.raw(),
            ctx.verification_time,
        );
        let mut report = Report::new();
        let allowed = prediction.allows();
        for reason in prediction.reasons {
            if reason.passed {
                report.pass(reason.claim.as_deref(), reason.message);
            } else {
                report.fail(reason.claim.as_deref(), reason.message);
            }
        }
        if allowed {
            if let Some(role_name) = &role.name {
                report.role(&role_name.to_lowercase());
            }
        }
        report.verdict()
    }
}

export_policy!(CelRolePolicy);

#[cfg(test)]
mod tests;
