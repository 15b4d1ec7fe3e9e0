//! attestgate: turns a Google Confidential Space attestation into secrets from each collaborator's
//! own Vault.
//!
//! The library holds no global state and prints nothing; the `attestgate` binary is a thin layer
//! over it.
//!
//! Features: `engine` (on by default) is the wasmtime sandbox and everything that runs plugins
//! (the exchange, the agent); `dev` (on by default) the local stand-in for the launcher and the
//! issuer; `internals` a hidden surface for fuzz targets and benchmarks. Without `engine`, the
//! library is the parsers and checks of untrusted input alone, which is what `fuzz/` builds.

#[cfg(feature = "engine")]
pub mod agent;
pub mod attestation;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod doctor;
mod errors;
#[cfg(feature = "engine")]
pub mod exchange;
mod fsutil;
mod http;
pub mod kms;
// The HTTP server under the dev launcher and the agent's health endpoint.
#[cfg(any(feature = "dev", feature = "engine"))]
mod local_server;
pub mod plugin;
pub mod scaffold;
pub mod vault;

pub use errors::error_chain;
pub use fsutil::write_atomically;
pub use http::SystemRoots;

/// Internals that fuzz targets and benchmarks drive directly: the decoders of what servers,
/// the launcher's clients and plugins send, the checks on it, and the text scrubbing applied to
/// what servers say. Behind the `internals` feature and hidden from the docs: not a supported
/// API. None of it needs the `engine` feature, so a fuzz build does not instrument wasmtime.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::attestation::internals::*;
    #[cfg(feature = "dev")]
    pub use crate::dev::internals::*;
    pub use crate::http::{escape_control, scrub};
    /// Google's STS, IAM Credentials and KMS answers.
    pub mod kms {
        pub use crate::kms::internals::*;
    }
    pub use crate::plugin::internals::*;
    /// Vault's answers.
    pub mod vault {
        pub use crate::vault::internals::*;
    }
}
