//! Local stand-ins for the parts of Google Cloud that cannot run here: the Confidential Space
//! launcher and its token issuer. They speak the real interfaces, so the code paths that talk to
//! them are the production ones.

pub mod claims;
pub mod launcher;
pub mod pki;
pub mod signing;

pub use claims::DevClaims;
pub use launcher::{Launcher, LauncherConfig, LauncherInfo, MintRequest};
pub use signing::SigningKey;
