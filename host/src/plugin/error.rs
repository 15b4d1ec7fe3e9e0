use std::path::PathBuf;
use std::time::Duration;

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
    BadReturn(String),
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
            FailureKind::BadReturn(message) => {
                write!(f, "returned a result that breaks the contract: {message}")
            }
            FailureKind::Rejected(message) => write!(f, "returned an error: {message}"),
        }
    }
}

/// Why a precompiled artifact cannot stand in for its plugin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactProblem {
    #[error("it is not an artifact made by `attestgate plugin compile`")]
    NotAnArtifact,
    #[error(
        "it was compiled from the plugin with sha256 {compiled_from}, not from the pinned {pinned}"
    )]
    OtherPlugin {
        compiled_from: String,
        pinned: String,
    },
    #[error("it was compiled by another attestgate build or for another CPU baseline")]
    OtherEngine,
    #[error("wasmtime cannot load it: {0}")]
    Unloadable(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("plugin {path} has sha256 {found}, but the configuration pins {expected}; refusing to load it")]
    DigestMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("precompiled plugin {path} has sha256 {found}, but the configuration pins {expected}; refusing to load it")]
    ArtifactDigestMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
    #[error("precompiled plugin {path} is refused: {problem}; rebuild it with `attestgate plugin compile` and pin the new sha256")]
    Artifact {
        path: PathBuf,
        problem: ArtifactProblem,
    },
    #[error("plugin {path} is not a WebAssembly component: {reason}")]
    NotAComponent { path: PathBuf, reason: String },
    #[error("plugin {path} was built against contract {found}, but this attestgate speaks attestgate:policy@{expected}; rebuild it with a matching SDK")]
    ContractVersion {
        path: PathBuf,
        found: String,
        expected: &'static str,
    },
    #[error("plugin {path} cannot be linked: {reason}")]
    Link { path: PathBuf, reason: String },
    #[error("plugin engine: {0}")]
    Engine(String),
    #[error("plugin for \"{collaborator}\" ({call}) {kind}")]
    Call {
        collaborator: String,
        call: &'static str,
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
