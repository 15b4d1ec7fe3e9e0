//! RS256 public keys, parsed once, when a key set or a chain is read, rather than at every
//! verification; and the signature check itself, in aws-lc. Parsing a 2048-bit key (the modulus
//! into a big number, the Montgomery set-up) costs about as much as the check, so a cached key
//! halves what a verification costs beyond RSA itself (BENCHMARKS.md, "Hot paths against their
//! floors").

use aws_lc_rs::signature::{ParsedPublicKey, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::fmt;

/// An RSA public key of 2048 to 8192 bits, ready to check RS256 (PKCS#1 v1.5, SHA-256)
/// signatures.
#[derive(Clone)]
pub struct RsaPublicKey(ParsedPublicKey);

impl fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RsaPublicKey")
    }
}

/// Why bytes are not a usable RSA public key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RsaKeyError {
    /// `n` or `e` of a JWK is not unpadded base64url.
    #[error("its {component} is not base64url: {source}")]
    Base64 {
        /// `n` or `e`.
        component: &'static str,
        /// Where the decoding failed.
        #[source]
        source: base64::DecodeError,
    },
    /// aws-lc refused the key (not RSA, malformed, or outside 2048–8192 bits).
    #[error("aws-lc refuses it as an RSA public key: {0}")]
    Rejected(#[source] aws_lc_rs::error::KeyRejected),
}

impl RsaPublicKey {
    /// A JWK's `n` and `e` (big-endian integers, base64url without padding).
    pub fn from_jwk_components(n: &str, e: &str) -> Result<Self, RsaKeyError> {
        let decode = |component: &'static str, text: &str| {
            URL_SAFE_NO_PAD
                .decode(text.trim_end_matches('='))
                .map_err(|source| RsaKeyError::Base64 { component, source })
        };
        let (n, e) = (decode("n", n)?, decode("e", e)?);
        RsaPublicKeyComponents { n: &n, e: &e }
            .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
            .map(RsaPublicKey)
            .map_err(RsaKeyError::Rejected)
    }

    /// A DER `RSAPublicKey` (PKCS#1) or `SubjectPublicKeyInfo` (X.509).
    pub fn from_der(der: &[u8]) -> Result<Self, RsaKeyError> {
        ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der)
            .map(RsaPublicKey)
            .map_err(RsaKeyError::Rejected)
    }

    /// Whether `signature` is this key's RS256 signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.0.verify_sig(message, signature).is_ok()
    }
}
