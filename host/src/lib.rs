//! attestgate: turns a Google Confidential Space attestation into secrets from each collaborator's
//! own Vault.
//!
//! The library holds no global state and prints nothing; the `attestgate` binary is a thin layer
//! over it.

pub mod agent;
pub mod attestation;
pub mod config;
#[cfg(feature = "dev")]
pub mod dev;
pub mod doctor;
mod errors;
pub mod exchange;
mod fsutil;
mod http;
pub mod kms;
mod local_server;
pub mod plugin;
pub mod scaffold;
pub mod vault;

pub use errors::error_chain;
pub use fsutil::write_atomically;

/// Internals that fuzz targets and benchmarks drive directly: the checks on what a plugin
/// returns, with the contract's raw types, and the text scrubbing applied to what servers send.
/// Behind the `internals` feature and hidden from the docs: not a supported API.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::http::{escape_control, scrub};
    pub use crate::plugin::internals::{check_audience_request, check_verdict, contract};
}
