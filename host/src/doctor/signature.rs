//! A token's signature, checked as the mount would: against the keys its configuration trusts
//! (`jwt_validation_pubkeys`, `jwks_url` or `oidc_discovery_url`), with the mount's error text
//! when it fails.

use crate::attestation::{
    parse_unverified, JwksCache, KeyCacheOptions, KeyError, KeySource, MalformedToken, RsaKeyError,
    RsaPublicKey,
};
use attestgate_vault_role::lint::AuthConfig;
use serde_json::Value;

/// The prefix of every signature failure OpenBao reports.
const PREFIX: &str = "error validating token: error verifying token signature: ";

/// Why the keys, or the token, could not be examined.
#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    /// A `jwt_validation_pubkeys` entry is not a PEM RSA public key.
    #[error("jwt_validation_pubkeys[{index}] is not a PEM RSA public key: {source}")]
    Pem {
        /// Which entry.
        index: usize,
        /// The parser's complaint.
        #[source]
        source: PemKeyError,
    },
    /// The JWKS or discovery document could not be fetched or used.
    #[error(transparent)]
    Fetch(KeyError),
    /// The token is not a compact JWS.
    #[error("the token is malformed: {0}")]
    Malformed(#[source] MalformedToken),
    /// The token is signed with an algorithm other than RS256 (Confidential Space's only one).
    #[error("the token is signed with {0}; the doctor checks RS256 signatures (what Confidential Space uses): predict with --claims instead")]
    Algorithm(String),
    /// The configuration names no keys at all.
    #[error("the auth config sets none of jwt_validation_pubkeys, jwks_url or oidc_discovery_url")]
    NoKeys,
}

/// Why a `jwt_validation_pubkeys` entry is not a key.
#[derive(Debug, thiserror::Error)]
pub enum PemKeyError {
    /// Not PEM at all.
    #[error("{0}")]
    Pem(#[source] pem::PemError),
    /// PEM, but not an RSA public key aws-lc accepts.
    #[error("{0}")]
    Key(#[source] RsaKeyError),
}

/// The keys a mount's configuration trusts.
pub enum SignatureKeys {
    /// `jwt_validation_pubkeys`.
    Static(Vec<RsaPublicKey>),
    /// `jwks_url` or `oidc_discovery_url`, fetched.
    Fetched(Box<JwksCache>),
}

impl SignatureKeys {
    /// The keys `config` trusts, in Vault's order of precedence.
    pub fn from_config(config: &AuthConfig) -> Result<SignatureKeys, KeysError> {
        if !config.jwt_validation_pubkeys.is_empty() {
            let keys = config
                .jwt_validation_pubkeys
                .iter()
                .enumerate()
                .map(|(index, text)| {
                    pem::parse(text.as_bytes())
                        .map_err(PemKeyError::Pem)
                        .and_then(|block| {
                            RsaPublicKey::from_der(block.contents()).map_err(PemKeyError::Key)
                        })
                        .map_err(|source| KeysError::Pem { index, source })
                })
                .collect::<Result<_, _>>()?;
            return Ok(SignatureKeys::Static(keys));
        }
        let (source, expected_issuer) = if !config.jwks_url.is_empty() {
            (KeySource::JwksUrl(config.jwks_url.clone()), None)
        } else if !config.oidc_discovery_url.is_empty() {
            let url = config.oidc_discovery_url.trim_end_matches('/').to_owned();
            (
                KeySource::Discovery(format!("{url}/.well-known/openid-configuration")),
                Some(config.oidc_discovery_url.clone()),
            )
        } else {
            return Err(KeysError::NoKeys);
        };
        let options = KeyCacheOptions {
            expected_issuer,
            ..KeyCacheOptions::default()
        };
        JwksCache::new(source, options)
            .map(|cache| SignatureKeys::Fetched(Box::new(cache)))
            .map_err(KeysError::Fetch)
    }

    /// The token's claims, and OpenBao's error if its signature does not verify.
    pub async fn check(&self, token: &str) -> Result<(Value, Option<String>), KeysError> {
        let parsed = parse_unverified(token).map_err(KeysError::Malformed)?;
        let claims = Value::Object(parsed.payload().map_err(KeysError::Malformed)?);
        if parsed.header.alg != "RS256" {
            return Err(KeysError::Algorithm(parsed.header.alg.clone()));
        }
        let verifies =
            |key: &RsaPublicKey| key.verifies(parsed.signing_input.as_bytes(), &parsed.signature);
        let verified = match self {
            SignatureKeys::Static(keys) => keys.iter().any(verifies),
            SignatureKeys::Fetched(cache) => match &parsed.header.kid {
                Some(kid) => match cache.key(kid).await {
                    Ok(key) => verifies(&key),
                    Err(KeyError::UnknownKid { .. }) => false,
                    Err(other) => return Err(KeysError::Fetch(other)),
                },
                // Without a kid, every published key is tried, as go-oidc does.
                None => {
                    cache.refresh().await.map_err(KeysError::Fetch)?;
                    let mut any = false;
                    for kid in cache.known_kids() {
                        if let Ok(key) = cache.key(&kid).await {
                            any |= verifies(&key);
                        }
                    }
                    any
                }
            },
        };
        let failure = (!verified).then(|| match self {
            SignatureKeys::Static(_) => {
                format!("{PREFIX}no known key successfully validated the token signature")
            }
            SignatureKeys::Fetched(_) => format!("{PREFIX}failed to verify id token signature"),
        });
        Ok((claims, failure))
    }
}
