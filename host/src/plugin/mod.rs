//! Per-collaborator policy plugins: WebAssembly components run in a sandbox that grants nothing.
//!
//! The shape follows wasmtime's compile-once, instantiate-per-call pattern, and dependencies run
//! one way, as in Kubewarden's policy evaluator:
//!
//! ```text
//! PluginEngine (engine.rs) ──compiles──▶ CompiledPlugin (compiled.rs, the *Pre)
//!      │ binds to a collaborator                    │ instantiates, per call
//!      ▼                                            ▼
//! CollaboratorPolicy (policy.rs) ──calls──▶ CallStore (store.rs: limits, sandbox, host imports)
//!      │ checks what came back
//!      ▼
//! Verdict, TokenRequest (verdict.rs: types and contract checks)
//! ```
//!
//! Each call gets a fresh store and instance, so no state survives from one evaluation to the
//! next. Where a limit is enforced (deadline, memory, log output, the WASI sandbox) is written
//! at the top of `store.rs`.

// The sandbox itself, behind the `engine` feature (on by default). Without it, what is left is
// plain data: plugin specifications and limits for the configuration, and the checks on what a
// plugin returns, for fuzz targets that should not instrument wasmtime.
#[cfg(feature = "engine")]
mod artifact;
#[cfg(feature = "engine")]
mod bindings;
#[cfg(feature = "engine")]
mod compiled;
#[cfg(feature = "engine")]
mod engine;
#[cfg(feature = "engine")]
mod error;
#[cfg(feature = "engine")]
mod inspect;
#[cfg(feature = "engine")]
mod policy;
// Read when a plugin is loaded, and by a fuzz target.
#[cfg_attr(not(any(feature = "engine", feature = "internals")), allow(dead_code))]
mod producers;
mod spec;
#[cfg(feature = "engine")]
mod store;
// Run on every plugin answer, and by fuzz targets.
#[cfg_attr(not(any(feature = "engine", feature = "internals")), allow(dead_code))]
mod verdict;

#[cfg(feature = "engine")]
pub use compiled::CompiledPlugin;
#[cfg(feature = "engine")]
pub use engine::{file_sha256, EngineOptions, PluginEngine};
#[cfg(feature = "engine")]
pub use error::{ArtifactProblem, FailureKind, PluginError, WasmtimeCause};
#[cfg(feature = "engine")]
pub use inspect::{PluginInfo, CONTRACT_VERSION};
#[cfg(feature = "engine")]
pub use policy::CollaboratorPolicy;
pub use producers::{PluginKind, Producer};
pub use spec::{Compiler, LimitOverrides, Limits, PluginSpec, Precompiled};
pub use verdict::{
    ContractViolation, Decision, Login, Reason, Verdict, MAX_MESSAGE_BYTES, MAX_REASONS,
    MAX_ROLE_BYTES,
};

/// The checks on what a plugin returns, and the reader of its producers section, for fuzz
/// targets (feature `internals`).
#[cfg(feature = "internals")]
pub(crate) mod internals {
    pub use crate::plugin::producers::producers;
    pub use crate::plugin::verdict::{check_audience_request, check_verdict};
}
