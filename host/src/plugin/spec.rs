//! What the configuration says about a collaborator's plugin: plain data, kept apart from the
//! runtime that executes it.

use super::producers::PluginKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The code generator that turns plugins into native code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    /// Wasmtime's optimising compiler: the fastest calls, and a compile of hundreds of
    /// milliseconds (a Rust plugin) to seconds (a JavaScript or Python runtime). For long-running
    /// processes and precompiled artifacts.
    #[default]
    Cranelift,
    /// Wasmtime's baseline compiler (single pass, tier 1 on x86-64): compiles 4 to 9 times faster,
    /// and its code runs slower. For one-shot runs, where the compile is most of the plugin's
    /// cost (BENCHMARKS.md, "Hot paths against their floors").
    Winch,
}

impl Compiler {
    /// The compiler for a process that compiles its plugins, calls them a few times and exits:
    /// Winch, unless an artifact is to be loaded (`precompiled`: Cranelift code) or the host is
    /// not x86-64 (Winch's other backends are unfinished).
    pub fn for_one_shot(precompiled: bool) -> Compiler {
        if precompiled || !cfg!(target_arch = "x86_64") {
            Compiler::Cranelift
        } else {
            Compiler::Winch
        }
    }

    /// Its name in configuration and logs.
    pub fn name(self) -> &'static str {
        match self {
            Compiler::Cranelift => "cranelift",
            Compiler::Winch => "winch",
        }
    }
}

/// Limits for one collaborator's plugin, resolved for its kind. Crossing any of them is a deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock time for one call, in milliseconds.
    pub deadline_ms: u64,
    /// Linear memory a plugin may grow to, in bytes.
    pub memory_bytes: u64,
    /// Log output (host `log` plus stdout/stderr) per call, in bytes.
    pub log_bytes: u64,
}

impl Default for Limits {
    /// The defaults for a plugin compiled to WebAssembly (Rust and the like).
    fn default() -> Self {
        Limits {
            deadline_ms: 100,
            memory_bytes: 64 << 20,
            log_bytes: 16 << 10,
        }
    }
}

impl Limits {
    /// The defaults for a plugin of `kind`. A component that carries a JavaScript engine or a
    /// Python interpreter starts that runtime in every fresh instance and holds its heap: it
    /// gets more time and memory than a compiled plugin, still well under [`Limits::MAX`]
    /// (measured in BENCHMARKS.md, "Plugin languages").
    pub fn defaults_for(kind: PluginKind) -> Limits {
        match kind {
            PluginKind::Compiled => Limits::default(),
            PluginKind::JavaScript | PluginKind::Python => Limits {
                deadline_ms: 1_000,
                memory_bytes: 128 << 20,
                log_bytes: 16 << 10,
            },
        }
    }

    /// The most any collaborator may ask for: one plugin must not be able to hold start-up for
    /// minutes or make the host allocate gigabytes of output.
    pub const MAX: Limits = Limits {
        deadline_ms: 10_000,
        memory_bytes: 256 << 20,
        log_bytes: 1 << 20,
    };

    /// `deadline_ms` as a duration: the most one plugin call may take.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

/// `[collaborator.limits]` as configured: each limit left out takes the default for the plugin's
/// kind ([`Limits::defaults_for`]), known once the plugin is read. (An unknown key here is
/// reported by the configuration's loader with every other problem, not as a parse failure.)
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitOverrides {
    /// Wall-clock time for one call, in milliseconds.
    pub deadline_ms: Option<u64>,
    /// Linear memory a plugin may grow to, in bytes.
    pub memory_bytes: Option<u64>,
    /// Log output (host `log` plus stdout/stderr) per call, in bytes.
    pub log_bytes: Option<u64>,
}

impl LimitOverrides {
    /// The limits for a plugin of `kind`: these overrides over its kind's defaults.
    pub fn resolve(&self, kind: PluginKind) -> Limits {
        let defaults = Limits::defaults_for(kind);
        Limits {
            deadline_ms: self.deadline_ms.unwrap_or(defaults.deadline_ms),
            memory_bytes: self.memory_bytes.unwrap_or(defaults.memory_bytes),
            log_bytes: self.log_bytes.unwrap_or(defaults.log_bytes),
        }
    }
}

impl From<Limits> for LimitOverrides {
    /// Every limit set: the plugin's kind changes nothing.
    fn from(limits: Limits) -> Self {
        LimitOverrides {
            deadline_ms: Some(limits.deadline_ms),
            memory_bytes: Some(limits.memory_bytes),
            log_bytes: Some(limits.log_bytes),
        }
    }
}

/// One collaborator's plugin: which file, pinned by which digest, with which configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginSpec {
    /// The collaborator this plugin decides for.
    pub collaborator: String,
    /// The audience the operator declared for this collaborator. When set, `select-audience`
    /// must return exactly it, on every call, or the call is a bad-return deny.
    pub audience: Option<String>,
    /// The plugin's WebAssembly component file.
    pub path: PathBuf,
    /// Lowercase hex sha256 of the file. A mismatch refuses to load.
    pub sha256: String,
    /// Its precompiled artifact, if the image ships one: loaded instead of compiling.
    pub precompiled: Option<Precompiled>,
    /// Handed to the plugin as JSON text.
    pub config: serde_json::Value,
    /// The Vault role the exchange logs in with (the collaborator's configured `role`), handed to
    /// the plugin so its messages can name it; `None` without a role login.
    pub vault_role: Option<String>,
    /// Its deadline, memory and log budget, as configured (the rest from its kind's defaults).
    pub limits: LimitOverrides,
}

/// A plugin's precompiled artifact, pinned by its own sha256 (`plugin_compiled` and
/// `plugin_compiled_sha256` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Precompiled {
    /// The artifact file.
    pub path: PathBuf,
    /// Lowercase hex sha256 of the artifact file.
    pub sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kinds_defaults_stay_under_the_maxima_and_overrides_win() {
        for kind in [
            PluginKind::Compiled,
            PluginKind::JavaScript,
            PluginKind::Python,
        ] {
            let limits = LimitOverrides::default().resolve(kind);
            assert!(limits.deadline_ms <= Limits::MAX.deadline_ms, "{kind:?}");
            assert!(limits.memory_bytes <= Limits::MAX.memory_bytes, "{kind:?}");
            assert!(limits.log_bytes <= Limits::MAX.log_bytes, "{kind:?}");
            let set = LimitOverrides {
                deadline_ms: Some(7),
                ..LimitOverrides::default()
            };
            assert_eq!(set.resolve(kind).deadline_ms, 7);
            assert_eq!(
                set.resolve(kind).memory_bytes,
                Limits::defaults_for(kind).memory_bytes
            );
        }
        assert!(
            Limits::defaults_for(PluginKind::Python).deadline_ms
                > Limits::defaults_for(PluginKind::Compiled).deadline_ms
        );
    }
}
