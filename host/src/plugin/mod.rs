//! Per-collaborator policy plugins: WebAssembly components run in a sandbox that grants nothing.
//!
//! The shape follows the compile-once, instantiate-per-call pattern: one [`PluginEngine`] compiles
//! each plugin once (in parallel at start-up, optionally from an on-disk cache) and links it into a
//! pre-instantiated component; each call then gets a fresh store and instance, so no state
//! survives from one evaluation to the next.

mod artifact;
mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { "attestgate:policy/host.log": trappable },
    });
}

pub mod engine;
pub mod error;
pub mod inspect;
pub mod runtime;
mod sandbox;
pub mod spec;

pub use engine::{file_sha256, EngineOptions, PluginEngine, Precompiled};
pub use error::{ArtifactProblem, FailureKind, PluginError};
pub use inspect::{PluginInfo, CONTRACT_VERSION};
pub use runtime::{CollaboratorPolicy, Decision, Reason, Verdict};
pub use spec::{Limits, PluginSpec};

impl PluginEngine {
    /// Compiles (or reuses) the plugin, binds it to its collaborator and has it validate its
    /// configuration.
    pub fn load(&self, spec: &PluginSpec) -> Result<CollaboratorPolicy, PluginError> {
        let compiled = self.compile_file(&spec.path, &spec.sha256, spec.precompiled.as_ref())?;
        let policy = CollaboratorPolicy::new(
            compiled,
            &spec.collaborator,
            spec.audience.as_deref(),
            &spec.config,
            spec.limits,
        );
        policy.validate_config()?;
        Ok(policy)
    }

    /// Loads every plugin in parallel; one result per spec, in order.
    pub fn load_all(&self, specs: &[PluginSpec]) -> Vec<Result<CollaboratorPolicy, PluginError>> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .iter()
                .map(|spec| scope.spawn(move || self.load(spec)))
                .collect();
            handles
                .into_iter()
                .map(|handle| {
                    handle.join().unwrap_or_else(|_| {
                        Err(PluginError::Engine(
                            "a plugin loader thread panicked".into(),
                        ))
                    })
                })
                .collect()
        })
    }
}
