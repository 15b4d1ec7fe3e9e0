//! `attestgate vault doctor`: what is wrong with a collaborator's Vault role, and exactly what a
//! login with given claims (or a given token) would return, before any workload is deployed.
//!
//! The role's semantics are `attestgate_vault_role`'s, the same code the `bound-claims` and
//! `cel-role` plugins run inside the TEE: one implementation of Vault's rules, compared with a
//! real OpenBao by the differential tests. This module adds what only the host can do: read the
//! role and the mount's configuration from a running Vault, check a token's signature against
//! the keys that configuration trusts, and rewrite a role with its mistakes fixed.

mod error;
mod fix;
mod signature;
mod source;

pub use error::DoctorError;
pub use fix::fix_role;
pub use signature::{KeysError, SignatureKeys};
pub use source::{read_from_vault, VaultAccess, VaultDocument};

use attestgate_vault_role::cel::{self, CelRole};
use attestgate_vault_role::lint::{self, AuthConfig, Finding};
use attestgate_vault_role::{Decision, JwtRole, Prediction, Reason, TokenChecks};
use serde_json::{Map, Value};

pub use crate::config::RoleKind;

/// The kind a role's JSON is: CEL when it has a `cel_program`.
pub fn detect_kind(role: &Map<String, Value>) -> RoleKind {
    if role.contains_key("cel_program") {
        RoleKind::Cel
    } else {
        RoleKind::Jwt
    }
}

/// A role, parsed.
#[derive(Debug, Clone)]
pub enum Role {
    /// A classic role.
    Jwt(Box<JwtRole>),
    /// A CEL role.
    Cel(Box<CelRole>),
}

impl Role {
    /// Parses `json` as `kind`.
    pub fn parse(kind: RoleKind, json: &Map<String, Value>) -> Result<Role, DoctorError> {
        match kind {
            RoleKind::Jwt => JwtRole::from_json(json)
                .map(|role| Role::Jwt(Box::new(role)))
                .map_err(DoctorError::JwtRoleShape),
            RoleKind::Cel => serde_json::from_value::<CelRole>(Value::Object(json.clone()))
                .map(|role| Role::Cel(Box::new(role)))
                .map_err(DoctorError::CelRoleShape),
        }
    }

    /// Every finding about the role (and the mount's configuration, when given), most severe
    /// first.
    pub fn lint(&self, config: Option<&AuthConfig>) -> Result<Vec<Finding>, DoctorError> {
        let mut findings = match self {
            Role::Jwt(role) => lint::lint_jwt_role(role),
            Role::Cel(role) => on_deep_stack(|| cel::lint_cel_role(role))?,
        };
        if let Some(config) = config {
            findings.extend(config.lint());
        }
        findings.sort_by_key(|f| f.severity);
        Ok(findings)
    }

    /// The login OpenBao would answer, for claims whose signature is already settled, at `at`
    /// (Unix seconds). `name` is the role's name as the server stores it. Without `config`,
    /// the mount's issuer check is not predicted (a reason says so).
    pub fn predict(
        &self,
        name: &str,
        config: Option<&AuthConfig>,
        claims: &Value,
        at: i64,
    ) -> Result<Prediction, DoctorError> {
        let checks = TokenChecks {
            bound_issuer: config.map(|c| c.bound_issuer.as_str()),
            at: Some(at),
        };
        // OpenBao lowercases the role name a login asks for.
        let name = name.to_lowercase();
        let mut prediction = match self {
            Role::Jwt(role) => role.login(&name, &checks, claims),
            Role::Cel(role) => on_deep_stack(|| cel::login(role, &name, &checks, claims, at))?,
        };
        if config.is_none() {
            prediction.reasons.insert(
                0,
                Reason {
                    passed: true,
                    claim: Some("/iss".into()),
                    message: "the mount's bound_issuer and keys are not known (give --auth-config or --vault): the issuer and the signature are not checked".into(),
                },
            );
        }
        Ok(prediction)
    }
}

/// The stack a CEL role is parsed, checked and run on. That code recurses over the program's
/// tree, and a program nested deep enough (within cel-go's size limit) would overflow an
/// ordinary thread's stack, which aborts the process rather than failing. A thread with a large
/// stack (reserved, not committed, memory) takes any program OpenBao would store.
const CEL_STACK_BYTES: usize = 1 << 30;

fn on_deep_stack<T: Send>(work: impl FnOnce() -> T + Send) -> Result<T, DoctorError> {
    std::thread::scope(|scope| {
        let handle = std::thread::Builder::new()
            .name("cel".into())
            .stack_size(CEL_STACK_BYTES)
            .spawn_scoped(scope, work)
            .map_err(DoctorError::Thread)?;
        Ok(handle
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// Puts a signature check's failure in front of a prediction: the validator checks the
/// signature first, so its failure is the answer.
pub fn with_signature_failure(message: String, mut prediction: Prediction) -> Prediction {
    prediction.reasons.insert(
        0,
        Reason {
            passed: false,
            claim: None,
            message: message.clone(),
        },
    );
    prediction.decision = Decision::Deny {
        messages: vec![message],
    };
    prediction
}
