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

mod artifact;
mod bindings;
mod compiled;
mod engine;
mod error;
mod inspect;
mod policy;
mod producers;
mod spec;
mod store;
mod verdict;

pub use compiled::CompiledPlugin;
pub use engine::{file_sha256, EngineOptions, PluginEngine};
pub use error::{ArtifactProblem, FailureKind, PluginError, WasmtimeCause};
pub use inspect::{PluginInfo, CONTRACT_VERSION};
pub use policy::CollaboratorPolicy;
pub use producers::{PluginKind, Producer};
pub use spec::{LimitOverrides, Limits, PluginSpec, Precompiled};
pub use verdict::{
    ContractViolation, Decision, Login, Reason, Verdict, MAX_MESSAGE_BYTES, MAX_REASONS,
    MAX_ROLE_BYTES,
};

/// The contract's raw types and the checks on them, for fuzz targets (feature `internals`).
#[cfg(feature = "internals")]
pub(crate) mod internals {
    pub use crate::plugin::bindings::attestgate::policy::types as contract;
    pub use crate::plugin::verdict::{check_audience_request, check_verdict};
}
