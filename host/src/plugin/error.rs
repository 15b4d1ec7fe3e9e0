//! Everything that can go wrong with a plugin, as types: loading it ([`PluginError`]) and calling
//! it ([`FailureKind`], always a deny).

use super::spec::Compiler;
use super::verdict::ContractViolation;
use std::path::PathBuf;
use std::time::Duration;

/// A cause from wasmtime (whose errors are `anyhow` errors), kept with its whole chain.
pub type WasmtimeCause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What to try when `compiler` refused a component: Winch, chosen for one-shot runs, lacks a few
/// WebAssembly proposals (tail calls, exceptions, GC) that Cranelift compiles.
fn compiler_hint(compiler: Compiler) -> &'static str {
    match compiler {
        Compiler::Cranelift => "",
        Compiler::Winch => " (Winch, the baseline compiler for one-shot runs, lacks some WebAssembly proposals such as tail calls, exceptions and GC: if `[plugins] compiler = \"cranelift\"` compiles it, set that)",
    }
}

/// How a plugin call failed. Every kind is a deny.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The call ran past its wall-clock deadline.
    Deadline(Duration),
    /// The plugin tried to grow its memory past the cap.
    Memory(u64),
    /// The plugin wrote more log output than allowed.
    LogLimit(u64),
    /// The plugin trapped (a panic, an unreachable, a bad memory access).
    Trap(String),
    /// The plugin returned something that breaks the contract.
    BadReturn(ContractViolation),
    /// The plugin returned an error of its own.
    Rejected(String),
}

impl FailureKind {
    /// A stable one-word name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            FailureKind::Deadline(_) => "deadline",
            FailureKind::Memory(_) => "memory",
            FailureKind::LogLimit(_) => "log-limit",
            FailureKind::Trap(_) => "trap",
            FailureKind::BadReturn(_) => "bad-return",
            FailureKind::Rejected(_) => "rejected",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FailureKind::Deadline(limit) => {
                write!(f, "ran past its {} ms deadline", limit.as_millis())
            }
            FailureKind::Memory(limit) => write!(
                f,
                "tried to use more than its {} MiB memory cap",
                limit >> 20
            ),
            FailureKind::LogLimit(limit) => write!(f, "wrote more than its {limit}-byte log limit"),
            FailureKind::Trap(message) => write!(f, "trapped: {message}"),
            FailureKind::BadReturn(violation) => write!(
                f,
                "returned a result that breaks the contract: {}",
                crate::errors::error_chain(violation)
            ),
            FailureKind::Rejected(message) => write!(f, "returned an error: {message}"),
        }
    }
}

/// Why a precompiled artifact cannot stand in for its plugin.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactProblem {
    /// No attestgate envelope.
    #[error("it is not an artifact made by `attestgate plugin compile`")]
    NotAnArtifact,
    /// The envelope names another wasm digest.
    #[error(
        "it was compiled from the plugin with sha256 {compiled_from}, not from the pinned {pinned}"
    )]
    OtherPlugin {
        /// The wasm digest in the envelope.
        compiled_from: String,
        /// The digest the configuration pins.
        pinned: String,
    },
    /// Another engine configuration or attestgate build.
    #[error("it was compiled by another attestgate build or for another CPU baseline")]
    OtherEngine,
    /// wasmtime refused to deserialise it.
    #[error("wasmtime cannot load it")]
    Unloadable(#[source] WasmtimeCause),
}

/// Why a plugin cannot be loaded, or how a call to it failed.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The plugin (or artifact) file cannot be read.
    #[error("cannot read plugin {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The plugin's digest is not the pinned one.
    #[error("plugin {path} has sha256 {found}, but the configuration pins {expected}; refusing to load it")]
    DigestMismatch {
        /// The file.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        found: String,
    },
    /// The precompiled artifact's digest is not the pinned one.
    #[error("precompiled plugin {path} has sha256 {found}, but the configuration pins {expected}; refusing to load it")]
    ArtifactDigestMismatch {
        /// The artifact file.
        path: PathBuf,
        /// The pinned digest.
        expected: String,
        /// The file's digest.
        found: String,
    },
    /// The precompiled artifact cannot stand in for the plugin.
    #[error("precompiled plugin {path} is refused: {problem}; rebuild it with `attestgate plugin compile` and pin the new sha256")]
    Artifact {
        /// The artifact file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        problem: ArtifactProblem,
    },
    /// The file is not WebAssembly at all.
    #[error("plugin {path} is not a WebAssembly component: the file does not start with the WebAssembly magic bytes \\0asm")]
    NotWasm {
        /// The file.
        path: PathBuf,
    },
    /// WebAssembly, but not a component wasmtime can compile with `compiler`.
    #[error("plugin {path} is not a WebAssembly component {} can compile{}", compiler.name(), compiler_hint(*compiler))]
    NotAComponent {
        /// The file.
        path: PathBuf,
        /// The compiler that refused it.
        compiler: Compiler,
        /// wasmtime's reason.
        #[source]
        source: WasmtimeCause,
    },
    /// Built against another contract version, or exporting no policy at all.
    #[error("plugin {path} was built against contract {found}, but this attestgate speaks attestgate:policy@{expected}; rebuild it with a matching SDK")]
    ContractVersion {
        /// The file.
        path: PathBuf,
        /// What it was built against.
        found: String,
        /// What this host speaks.
        expected: &'static str,
    },
    /// It imports something the host does not provide.
    #[error("plugin {path} cannot be linked")]
    Link {
        /// The file.
        path: PathBuf,
        /// wasmtime's reason (the missing import).
        #[source]
        source: WasmtimeCause,
    },
    /// The engine itself could not be set up.
    #[error("plugin engine: {what}")]
    Engine {
        /// What failed.
        what: &'static str,
        /// Why.
        #[source]
        source: WasmtimeCause,
    },
    /// A loader thread panicked (a bug; the plugin is refused).
    #[error("the loader thread for plugin {path} panicked")]
    LoaderPanicked {
        /// The plugin being loaded.
        path: PathBuf,
    },
    /// A call failed: always a deny.
    #[error("plugin for \"{collaborator}\" ({call}) {kind}")]
    Call {
        /// The collaborator it was called for.
        collaborator: String,
        /// `validate-config`, `select-audience` or `evaluate`.
        call: &'static str,
        /// How it failed.
        kind: FailureKind,
    },
}

impl PluginError {
    /// The failure kind of a call, if this was one.
    pub fn failure(&self) -> Option<&FailureKind> {
        match self {
            PluginError::Call { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_winch_refuses_names_the_compiler_and_the_setting_that_fixes_it() {
        let refused = |compiler| PluginError::NotAComponent {
            path: PathBuf::from("plugins/rules.wasm"),
            compiler,
            source: "tail calls support is not enabled".into(),
        };
        let winch = refused(Compiler::Winch).to_string();
        assert!(winch.contains("winch can compile"), "{winch}");
        assert!(winch.contains("compiler = \"cranelift\""), "{winch}");
        let cranelift = refused(Compiler::Cranelift).to_string();
        assert!(cranelift.contains("cranelift can compile"), "{cranelift}");
        assert!(!cranelift.contains("compiler ="), "{cranelift}");
        // wasmtime's reason stays the cause.
        let source = std::error::Error::source(&refused(Compiler::Winch)).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("tail calls support is not enabled"));
    }
}
