//! Attestation tokens: getting them from the launcher, verifying them, reading their claims.
//!
//! - `source`: the launcher's token API and the default token file;
//! - `jwt`: the compact JWS, parsed strictly and never trusted before verification;
//! - `jwks` and `pki`: the issuer's keys (OIDC) or its certificate chain (PKI);
//! - `verify`: the checks every token must pass, in order;
//! - `claims`: the typed view of what Confidential Space attests;
//! - `audience`: audience normalisation, so "another spelling of the same audience" is caught.

pub(crate) mod audience;
mod claims;
mod jwks;
mod jwt;
mod pki;
mod rsa;
mod source;
mod verify;

pub use claims::{
    Claims, ConfidentialSpaceClaims, ContainerClaims, GceClaims, ImageSignature, TdxClaims,
    PRODUCTION_DBGSTAT,
};
pub use jwks::{
    InvalidKeySet, JwksCache, KeyCacheOptions, KeyError, KeyFetchError, KeySource, RefetchOutcome,
};
pub use jwt::{
    parse_unverified, Header, Jwt, MalformedToken, TokenPart, UnverifiedToken, SHOWN_KEY_CHARS,
};
pub use pki::{DerError, PkiError, PkiRoot, UnusableRoot};
pub use rsa::{RsaKeyError, RsaPublicKey};
pub(crate) use source::request_limits_violation;
pub use source::{
    read_token_file, LauncherClient, LauncherProtocolError, RequestLimitViolation, SourceError,
    TokenRequest, TokenType, UnknownTokenType, DEFAULT_LAUNCHER_SOCKET, DEFAULT_TOKEN_AUDIENCE,
    DEFAULT_TOKEN_FILE, MAX_AUDIENCE_BYTES, MAX_NONCES, NONCE_BYTES,
};
pub use verify::{
    unix_now, VerifiedToken, Verifier, VerifyError, VerifyPolicy, DEFAULT_LEEWAY,
    DEFAULT_MAX_TOKEN_BYTES, GOOGLE_ISSUER,
};

/// The decoders of what the issuer sends, for fuzz targets (feature `internals`).
#[cfg(feature = "internals")]
pub(crate) mod internals {
    pub use crate::attestation::jwks::{jwks_uri_of, parse_jwks};
    pub use crate::attestation::pki::verify_chain;
}
