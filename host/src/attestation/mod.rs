//! Attestation tokens: getting them from the launcher, verifying them, reading their claims.

pub mod audience;
pub mod claims;
pub mod jwks;
pub mod jwt;
pub mod pki;
pub mod source;
pub mod verify;

pub use claims::Claims;
pub use jwks::{JwksCache, KeyCacheOptions, KeySource};
pub use jwt::Jwt;
pub use source::{LauncherClient, TokenRequest, TokenType};
pub use verify::{VerifiedToken, Verifier, VerifyError, VerifyPolicy, GOOGLE_ISSUER};
