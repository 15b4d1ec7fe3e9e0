//! Local stand-ins for the parts of Google Cloud that cannot run here: the Confidential Space
//! launcher and its token issuer. They speak the real interfaces, so the code paths that talk to
//! them are the production ones.

mod claims;
mod launcher;
mod pki;
mod signing;

pub use claims::{merge_patch, production_claims, DevClaims};
pub use launcher::{
    Launcher, LauncherConfig, LauncherError, LauncherInfo, MintRequest, TokenFileError,
    INFO_FILE_NAME, MAX_TOKEN_REQUEST_BYTES, SOCKET_NAME, TOKEN_FILE_NAME,
};
pub use pki::DevPki;
pub use signing::{jwks, DevPkiError, InvalidKey, KeyFileError, SigningError, SigningKey};

/// The launcher's request decoder, for fuzz targets (feature `internals`).
#[cfg(feature = "internals")]
pub(crate) mod internals {
    pub use crate::dev::launcher::{decode_token_request, TokenRequestRefusal};
}
