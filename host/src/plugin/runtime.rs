//! Running a plugin: a fresh, sandboxed store for every call, limits enforced, and every failure
//! turned into a typed deny.

use super::bindings::attestgate::policy::host::LogLevel;
use super::bindings::attestgate::policy::types as wit;
use super::bindings::PluginPre;
use super::engine::TICK;
use super::error::{FailureKind, PluginError};
use super::inspect::PluginInfo;
use super::sandbox::{sandbox_wasi, CallClock};
use super::spec::Limits;
use crate::attestation::source::{TokenRequest, TokenType};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Login parameters a verdict may carry, and what they mean to the exchange.
pub const LOGIN_KEYS: &[&str] = &["role"];
const MAX_REASONS: usize = 256;
const MAX_REASON_MESSAGE: usize = 2048;

/// A plugin compiled and linked once, instantiated afresh for every call.
pub struct CompiledPlugin {
    pre: PluginPre<StoreState>,
    info: PluginInfo,
    path: PathBuf,
}

impl CompiledPlugin {
    pub(crate) fn new(pre: PluginPre<StoreState>, info: PluginInfo, path: PathBuf) -> Self {
        CompiledPlugin { pre, info, path }
    }

    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One rule a plugin checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// JSON pointer to the claim, or empty.
    pub claim: String,
    pub passed: bool,
    pub message: String,
}

/// A plugin's decision, after the host checked it keeps the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub allow: bool,
    pub reasons: Vec<Reason>,
    /// Exchange parameters, from [`LOGIN_KEYS`].
    pub login: BTreeMap<String, String>,
}

impl Verdict {
    pub fn failed_reasons(&self) -> impl Iterator<Item = &Reason> {
        self.reasons.iter().filter(|r| !r.passed)
    }
}

/// A verdict and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub duration: Duration,
}

/// Host resources (pollables, streams) a plugin may hold at once: far more than any plugin
/// needs, far less than a plugin could make the host allocate outside its memory cap.
const MAX_HOST_RESOURCES: usize = 1024;

/// Per-call store data. Nothing in it outlives the call.
pub struct StoreState {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    /// The call's deadline as seen by WASI clock waits.
    pub(super) clock: CallClock,
    memory: MemoryCap,
    log: LogBudget,
    verification_time: i64,
}

struct MemoryCap {
    limit: u64,
    exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

struct LogBudget {
    collaborator: Arc<str>,
    plugin: Arc<str>,
    limit: u64,
    used: u64,
    exceeded: bool,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for StoreState {}

impl super::bindings::attestgate::policy::host::Host for StoreState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let log = &mut self.log;
        log.used += message.len() as u64;
        if log.used > log.limit {
            log.exceeded = true;
            wasmtime::bail!("plugin log output exceeded {} bytes", log.limit);
        }
        let (collaborator, plugin) = (&*log.collaborator, &*log.plugin);
        let message = crate::http::escape_control(&message);
        match level {
            LogLevel::Debug => {
                tracing::debug!(target: "attestgate::plugin", collaborator, plugin, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "attestgate::plugin", collaborator, plugin, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "attestgate::plugin", collaborator, plugin, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "attestgate::plugin", collaborator, plugin, "{message}")
            }
        }
        Ok(())
    }

    fn verification_time(&mut self) -> i64 {
        self.verification_time
    }
}

/// A plugin bound to one collaborator: its configuration and limits.
pub struct CollaboratorPolicy {
    compiled: Arc<CompiledPlugin>,
    collaborator: Arc<str>,
    /// What `select-audience` must return, when the operator declared it.
    declared_audience: Option<String>,
    short_sha: Arc<str>,
    /// Built once: handed to every call as is.
    context: wit::Context,
    limits: Limits,
}

impl std::fmt::Debug for CollaboratorPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CollaboratorPolicy")
            .field("collaborator", &self.collaborator)
            .field("plugin_sha256", &self.compiled.info.sha256)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Plugin-supplied text, cut to `max` bytes with control characters escaped: it is shown to the
/// operator, and a newline or terminal escape in it could forge lines of attestgate's output.
fn for_display(text: String, max: usize) -> String {
    let mut text = match crate::http::escape_control(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    };
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

impl CollaboratorPolicy {
    pub(crate) fn new(
        compiled: Arc<CompiledPlugin>,
        collaborator: &str,
        declared_audience: Option<&str>,
        config: &serde_json::Value,
        limits: Limits,
    ) -> Self {
        let short_sha: Arc<str> = compiled.info.sha256[..12].into();
        CollaboratorPolicy {
            compiled,
            collaborator: collaborator.into(),
            declared_audience: declared_audience.map(str::to_owned),
            short_sha,
            context: wit::Context {
                collaborator: collaborator.to_owned(),
                config: config.to_string(),
            },
            limits,
        }
    }

    pub fn collaborator(&self) -> &str {
        &self.collaborator
    }

    fn fail(&self, call: &'static str, kind: FailureKind) -> PluginError {
        PluginError::Call {
            collaborator: self.collaborator.to_string(),
            call,
            kind,
        }
    }

    /// Runs `body` against a fresh instance, under the collaborator's limits.
    fn call<R>(
        &self,
        call: &'static str,
        at: i64,
        body: impl FnOnce(&super::bindings::Plugin, &mut Store<StoreState>) -> wasmtime::Result<R>,
    ) -> Result<R, PluginError> {
        let cap = self.limits.log_bytes as usize;
        let (stdout, stderr) = (MemoryOutputPipe::new(cap), MemoryOutputPipe::new(cap));
        let clock = CallClock::new(self.limits.deadline());
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_RESOURCES);
        let state = StoreState {
            wasi: sandbox_wasi(at, &clock, stdout.clone(), stderr.clone()),
            table,
            clock,
            memory: MemoryCap {
                limit: self.limits.memory_bytes,
                exceeded: false,
            },
            log: LogBudget {
                collaborator: self.collaborator.clone(),
                plugin: self.short_sha.clone(),
                limit: self.limits.log_bytes,
                used: 0,
                exceeded: false,
            },
            verification_time: at,
        };
        let mut store = Store::new(self.compiled.pre.engine(), state);
        store.limiter(|state| &mut state.memory);
        let ticks = self
            .limits
            .deadline()
            .as_nanos()
            .div_ceil(TICK.as_nanos())
            .max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();

        let result = self
            .compiled
            .pre
            .instantiate(&mut store)
            .and_then(|instance| body(&instance, &mut store));
        self.forward_output(&stdout, &stderr);
        result.map_err(|error| {
            let state = store.data();
            let kind = if state.clock.exceeded {
                FailureKind::Deadline(self.limits.deadline())
            } else if state.memory.exceeded {
                FailureKind::Memory(self.limits.memory_bytes)
            } else if state.log.exceeded
                || stdout.contents().len() >= cap
                || stderr.contents().len() >= cap
            {
                FailureKind::LogLimit(self.limits.log_bytes)
            } else {
                match error.downcast_ref::<Trap>() {
                    Some(Trap::Interrupt) => FailureKind::Deadline(self.limits.deadline()),
                    Some(trap) => {
                        let said = String::from_utf8_lossy(&stderr.contents())
                            .trim()
                            .to_owned();
                        let said = if said.is_empty() {
                            String::new()
                        } else {
                            format!(" (plugin stderr: {})", for_display(said, 512))
                        };
                        FailureKind::Trap(format!("{trap}{said}"))
                    }
                    None => FailureKind::Trap(for_display(format!("{error:#}"), 1024)),
                }
            };
            self.fail(call, kind)
        })
    }

    fn forward_output(&self, stdout: &MemoryOutputPipe, stderr: &MemoryOutputPipe) {
        for (stream, pipe) in [("stdout", stdout), ("stderr", stderr)] {
            let bytes = pipe.contents();
            if !bytes.is_empty() {
                let text =
                    crate::http::escape_control(&String::from_utf8_lossy(&bytes)).into_owned();
                tracing::debug!(target: "attestgate::plugin", collaborator = &*self.collaborator, plugin = &*self.short_sha, stream, "{}", text.trim_end());
            }
        }
    }

    /// Asks the plugin whether its configuration is acceptable. Called once at load time.
    pub fn validate_config(&self) -> Result<(), PluginError> {
        let ctx = &self.context;
        let outcome = self.call(
            "validate-config",
            crate::attestation::verify::unix_now(),
            |plugin, store| {
                plugin
                    .attestgate_policy_policy()
                    .call_validate_config(store, ctx)
            },
        )?;
        outcome.map_err(|message| {
            self.fail(
                "validate-config",
                FailureKind::Rejected(for_display(message, MAX_REASON_MESSAGE)),
            )
        })
    }

    /// Whether `other` runs the very same compiled code (collaborators using one plugin share a
    /// single compilation).
    pub fn shares_compiled_code_with(&self, other: &CollaboratorPolicy) -> bool {
        Arc::ptr_eq(&self.compiled, &other.compiled)
    }

    /// The audience the operator declared for this collaborator, if any.
    pub fn declared_audience(&self) -> Option<&str> {
        self.declared_audience.as_deref()
    }

    /// The token this collaborator wants minted. Its audience is the declared one, exactly: a
    /// plugin that asks for another collaborator's audience (or answers differently from one
    /// call to the next) is refused every time, since this runs before every mint.
    pub fn select_audience(&self) -> Result<TokenRequest, PluginError> {
        let ctx = &self.context;
        let outcome = self.call(
            "select-audience",
            crate::attestation::verify::unix_now(),
            |plugin, store| {
                plugin
                    .attestgate_policy_policy()
                    .call_select_audience(store, ctx)
            },
        )?;
        let request = outcome.map_err(|message| {
            self.fail(
                "select-audience",
                FailureKind::Rejected(for_display(message, MAX_REASON_MESSAGE)),
            )
        })?;
        check_audience_request(request, self.declared_audience.as_deref())
            .map_err(|message| self.fail("select-audience", FailureKind::BadReturn(message)))
    }

    /// Judges verified claims (the token's payload JSON) as of `at`, Unix seconds.
    pub fn evaluate(&self, claims_json: &str, at: i64) -> Result<Decision, PluginError> {
        let started = Instant::now();
        let ctx = &self.context;
        let outcome = self.call("evaluate", at, |plugin, store| {
            plugin
                .attestgate_policy_policy()
                .call_evaluate(store, ctx, claims_json)
        });
        let duration = started.elapsed();
        let result = outcome.and_then(|raw| {
            check_verdict(raw)
                .map_err(|message| self.fail("evaluate", FailureKind::BadReturn(message)))
        });
        match &result {
            Ok(verdict) => {
                tracing::info!(
                    collaborator = &*self.collaborator,
                    plugin_sha256 = %self.compiled.info.sha256,
                    decision = if verdict.allow { "allow" } else { "deny" },
                    reasons = %ReasonSummary(&verdict.reasons),
                    duration_us = duration.as_micros() as u64,
                    "plugin decision"
                );
            }
            Err(error) => tracing::warn!(
                collaborator = &*self.collaborator,
                plugin_sha256 = %self.compiled.info.sha256,
                decision = "deny",
                failure = error.failure().map(FailureKind::name).unwrap_or("error"),
                duration_us = duration.as_micros() as u64,
                "plugin failed, denying: {error}"
            ),
        }
        result.map(|verdict| Decision { verdict, duration })
    }
}

/// Which rules passed and failed, by claim pointer only: messages may quote claim values, and
/// claim values are not logged. Formatted only when the log line is actually emitted.
struct ReasonSummary<'a>(&'a [Reason]);

impl std::fmt::Display for ReasonSummary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, reason) in self.0.iter().enumerate() {
            let claim = if reason.claim.is_empty() {
                "-"
            } else {
                &reason.claim
            };
            let outcome = if reason.passed { "pass" } else { "fail" };
            write!(f, "{}{claim}:{outcome}", if index == 0 { "" } else { " " })?;
        }
        Ok(())
    }
}

fn check_audience_request(
    request: wit::AudienceRequest,
    declared: Option<&str>,
) -> Result<TokenRequest, String> {
    if request.audience.trim().is_empty() {
        return Err("the audience is empty".into());
    }
    if let Some(declared) = declared.filter(|d| *d != request.audience) {
        return Err(format!(
            "it asked for audience \"{}\", but this collaborator's declared audience is \"{declared}\"; a plugin may only select its own collaborator's audience",
            request.audience.escape_debug()
        ));
    }
    if let Some(violation) =
        crate::attestation::source::request_limits_violation(&request.audience, &request.nonces)
    {
        return Err(format!("the launcher would refuse it: {violation}"));
    }
    Ok(TokenRequest {
        audience: request.audience,
        token_type: match request.token_type {
            wit::TokenType::Oidc => TokenType::Oidc,
            wit::TokenType::Pki => TokenType::Pki,
        },
        nonces: request.nonces,
    })
}

/// Holds a verdict to the contract; anything off is a deny with the reason why.
fn check_verdict(raw: wit::Verdict) -> Result<Verdict, String> {
    if raw.reasons.len() > MAX_REASONS {
        return Err(format!(
            "{} reasons, over the limit of {MAX_REASONS}",
            raw.reasons.len()
        ));
    }
    let reasons: Vec<Reason> = raw
        .reasons
        .into_iter()
        .map(|r| Reason {
            claim: for_display(r.claim, 256),
            passed: r.passed,
            message: for_display(r.message, MAX_REASON_MESSAGE),
        })
        .collect();
    if let Some(bad) = reasons
        .iter()
        .find(|r| !r.claim.is_empty() && !r.claim.starts_with('/'))
    {
        return Err(format!(
            "reason claim \"{}\" is not a JSON pointer",
            bad.claim
        ));
    }
    if raw.allow {
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
    let mut login = BTreeMap::new();
    for (key, value) in raw.login {
        let (key, value) = (for_display(key, 64), for_display(value, 256));
        if !LOGIN_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "unknown login parameter \"{key}\" (known: {LOGIN_KEYS:?})"
            ));
        }
        if login.insert(key.clone(), value).is_some() {
            return Err(format!("login parameter \"{key}\" given twice"));
        }
    }
    Ok(Verdict {
        allow: raw.allow,
        reasons,
        login,
    })
}
