//! A plugin bound to one collaborator: its configuration, declared audience and limits, and the
//! three contract calls made on its behalf. Every failure is a [`PluginError::Call`] naming the
//! collaborator and the call, so the caller denies.

use super::bindings::attestgate::policy::types as wit;
use super::bindings::exports::attestgate::policy::policy::Guest as PolicyExports;
use super::compiled::CompiledPlugin;
use super::error::{FailureKind, PluginError};
use super::spec::Limits;
use super::store::{LogTags, StoreState};
use super::verdict::{
    check_audience_request, check_verdict, for_display, Decision, ReasonSummary, MAX_MESSAGE_BYTES,
};
use crate::attestation::TokenRequest;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::Store;

/// A plugin bound to one collaborator: its configuration and limits.
pub struct CollaboratorPolicy {
    compiled: Arc<CompiledPlugin>,
    /// What `select-audience` must return, when the operator declared it.
    declared_audience: Option<String>,
    tags: LogTags,
    /// The collaborator's `plugin_config` as JSON text, handed to every call as is.
    config: String,
    /// The Vault role the exchange logs in with, handed to every call.
    vault_role: Option<String>,
    limits: Limits,
}

impl std::fmt::Debug for CollaboratorPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollaboratorPolicy")
            .field("collaborator", &self.tags.collaborator)
            .field("plugin_sha256", &self.compiled.info().sha256)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl CollaboratorPolicy {
    pub(super) fn new(
        compiled: Arc<CompiledPlugin>,
        collaborator: &str,
        declared_audience: Option<&str>,
        config: &serde_json::Value,
        vault_role: Option<&str>,
        limits: Limits,
    ) -> Self {
        let tags = LogTags {
            collaborator: collaborator.into(),
            plugin: compiled.info().sha256[..12].into(),
        };
        CollaboratorPolicy {
            compiled,
            declared_audience: declared_audience.map(str::to_owned),
            tags,
            config: config.to_string(),
            vault_role: vault_role.map(str::to_owned),
            limits,
        }
    }

    /// The collaborator this plugin decides for.
    pub fn collaborator(&self) -> &str {
        &self.tags.collaborator
    }

    /// The audience the operator declared for this collaborator, if any.
    pub fn declared_audience(&self) -> Option<&str> {
        self.declared_audience.as_deref()
    }

    /// The compiled plugin behind this policy.
    pub fn compiled(&self) -> &CompiledPlugin {
        &self.compiled
    }

    /// Whether `other` runs the very same compiled code (collaborators using one plugin share a
    /// single compilation).
    pub fn shares_compiled_code_with(&self, other: &CollaboratorPolicy) -> bool {
        Arc::ptr_eq(&self.compiled, &other.compiled)
    }

    fn fail(&self, call: &'static str, kind: FailureKind) -> PluginError {
        PluginError::Call {
            collaborator: self.tags.collaborator.to_string(),
            call,
            kind,
        }
    }

    fn context(&self, at: i64) -> wit::Context {
        wit::Context {
            collaborator: self.tags.collaborator.to_string(),
            config: self.config.clone(),
            verification_time: at,
            vault_role: self.vault_role.clone(),
        }
    }

    /// Runs one contract call on a fresh instance with this collaborator's context as of `at`;
    /// a failure of the call itself is a [`PluginError::Call`] naming the collaborator.
    fn call<R>(
        &self,
        call: &'static str,
        at: i64,
        body: impl FnOnce(&PolicyExports, &mut Store<StoreState>, &wit::Context) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let ctx = self.context(at);
        self.compiled
            .run(self.limits, at, self.tags.clone(), |plugin, store| {
                body(plugin.attestgate_policy_policy(), store, &ctx)
            })
            .map_err(|kind| self.fail(call, kind))
    }

    /// The plugin's own error (`result::err`), escaped and cut for display.
    fn rejected(&self, call: &'static str, message: String) -> PluginError {
        self.fail(
            call,
            FailureKind::Rejected(for_display(message, MAX_MESSAGE_BYTES)),
        )
    }

    /// Asks the plugin whether its configuration is acceptable. Called once at load time.
    pub fn validate_config(&self) -> Result<(), PluginError> {
        const CALL: &str = "validate-config";
        self.call(
            CALL,
            crate::attestation::unix_now(),
            |policy, store, ctx| policy.call_validate_config(store, ctx),
        )?
        .map_err(|message| self.rejected(CALL, message))
    }

    /// The token this collaborator wants minted. Its audience is the declared one, exactly: a
    /// plugin that asks for another collaborator's audience (or answers differently from one
    /// call to the next) is refused every time, since this runs before every mint.
    pub fn select_audience(&self) -> Result<TokenRequest, PluginError> {
        const CALL: &str = "select-audience";
        let request = self
            .call(
                CALL,
                crate::attestation::unix_now(),
                |policy, store, ctx| policy.call_select_audience(store, ctx),
            )?
            .map_err(|message| self.rejected(CALL, message))?;
        check_audience_request(request.into(), self.declared_audience.as_deref())
            .map_err(|violation| self.fail(CALL, FailureKind::BadReturn(violation)))
    }

    /// Judges verified claims (the token's payload JSON) as of `at`, Unix seconds.
    pub fn evaluate(&self, claims_json: &str, at: i64) -> Result<Decision, PluginError> {
        const CALL: &str = "evaluate";
        let started = Instant::now();
        let outcome = self.call(CALL, at, |policy, store, ctx| {
            policy.call_evaluate(store, ctx, claims_json)
        });
        let duration = started.elapsed();
        let result = outcome.and_then(|raw| {
            check_verdict(raw.into())
                .map_err(|violation| self.fail(CALL, FailureKind::BadReturn(violation)))
        });
        let (collaborator, plugin_sha256) =
            (&*self.tags.collaborator, &self.compiled.info().sha256);
        match &result {
            Ok(verdict) => {
                tracing::info!(
                    collaborator,
                    plugin_sha256 = %plugin_sha256,
                    decision = if verdict.allow { "allow" } else { "deny" },
                    reasons = %ReasonSummary(&verdict.reasons),
                    duration_us = duration.as_micros() as u64,
                    "plugin decision"
                );
            }
            Err(error) => tracing::warn!(
                collaborator,
                plugin_sha256 = %plugin_sha256,
                decision = "deny",
                failure = error.failure().map(FailureKind::name).unwrap_or("error"),
                duration_us = duration.as_micros() as u64,
                "plugin failed, denying: {error}"
            ),
        }
        result.map(|verdict| Decision { verdict, duration })
    }
}
