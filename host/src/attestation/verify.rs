//! Verifying an attestation token: signature, issuer, audience and validity window.

use super::claims::Claims;
use super::jwks::{JwksCache, KeyError};
use super::jwt::{self, shorten, Header, MalformedToken};
use super::pki::{self, PkiError, PkiRoot};
use super::rsa::RsaPublicKey;
use super::source::TokenType;
use serde_json::{Map, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The issuer of Confidential Space attestation tokens, without a trailing slash.
pub const GOOGLE_ISSUER: &str = "https://confidentialcomputing.googleapis.com";
/// Vault's JWT auth also allows this much clock skew.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(60);
/// Real tokens are 1-3 KB (PKI tokens with a chain ~6 KB); anything far larger is not one.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 16 * 1024;

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct VerifyPolicy {
    /// Compared byte for byte with `iss`.
    pub issuer: String,
    /// Clock skew tolerated on `exp`, `nbf` and `iat` (default [`DEFAULT_LEEWAY`]).
    pub leeway: Duration,
    /// Larger tokens are refused before parsing (default [`DEFAULT_MAX_TOKEN_BYTES`]).
    pub max_token_bytes: usize,
    /// Needed only for PKI tokens.
    pub pki_root: Option<PkiRoot>,
}

impl VerifyPolicy {
    /// The default policy for tokens from `issuer`: default leeway and size limit, no PKI root.
    pub fn new(issuer: impl Into<String>) -> Self {
        VerifyPolicy {
            issuer: issuer.into(),
            leeway: DEFAULT_LEEWAY,
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            pki_root: None,
        }
    }
}

/// Why a token is refused, or could not be checked. [`VerifyError::check`] names the check.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The token is over the policy's size limit.
    #[error("token is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// Its size, in bytes.
        size: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The token is not a well-formed compact JWS.
    #[error("malformed token: {0}")]
    Malformed(#[from] MalformedToken),
    /// `alg` is anything but RS256 (`none` and HS256 included).
    #[error("algorithm \"{found}\" is not allowed; Confidential Space tokens are signed with RS256 only")]
    Algorithm {
        /// The header's `alg`.
        found: String,
    },
    /// The header carries `jwk`, `jku` or `x5u` (the parameter named).
    #[error("header carries \"{0}\", a key chosen by the token's sender; attestgate only trusts the issuer's published keys")]
    EmbeddedKey(&'static str),
    /// The header has `crit`; the text says what it lists.
    #[error(
        "header parameter \"crit\" {0}; a token must be refused unless every critical extension \
         it lists is understood (RFC 7515 section 4.1.11), and attestgate understands none"
    )]
    CriticalExtension(String),
    /// An OIDC token without `kid`.
    #[error("header has no \"kid\", so the issuer's signing key cannot be chosen")]
    MissingKid,
    /// The issuer's key is unknown, or the keys could not be had at all.
    #[error("signing key: {0}")]
    Key(#[from] KeyError),
    /// A PKI token's chain is refused.
    #[error("PKI chain: {0}")]
    Pki(#[from] PkiError),
    /// The signature does not verify with the chosen key.
    #[error(
        "signature does not verify with {key}: the token was altered or signed by another key"
    )]
    Signature {
        /// The key tried, described.
        key: String,
    },
    /// A required claim (`iss`, `aud`, `exp`) is absent.
    #[error("claim \"{0}\" is missing")]
    MissingClaim(&'static str),
    /// `exp`, `nbf` or `iat` is present but not a whole number of seconds.
    #[error(
        "claim \"{claim}\" is {found}; it must be a whole number of seconds since 1970 \
         (a JSON integer that fits in a signed 64-bit number)"
    )]
    TimeClaim {
        /// The claim.
        claim: &'static str,
        /// What it is instead, described.
        found: String,
    },
    /// `iss` is not exactly the expected issuer.
    #[error("issuer (iss) is \"{found}\", expected exactly \"{expected}\"{hint}")]
    Issuer {
        /// The token's `iss`.
        found: String,
        /// The policy's issuer.
        expected: String,
        /// Empty, or a note on a near miss (a trailing slash).
        hint: &'static str,
    },
    /// `aud` does not include the expected audience.
    #[error("audience (aud) is [{}], expected \"{expected}\"", found.join(", "))]
    Audience {
        /// The token's audiences.
        found: Vec<String>,
        /// The audience the caller required.
        expected: String,
    },
    /// `exp` has passed, leeway included.
    #[error("token expired at {exp} ({} s before the check time {at}, beyond the {leeway} s leeway)", at - exp)]
    Expired {
        /// The token's `exp`, Unix seconds.
        exp: i64,
        /// The check time, Unix seconds.
        at: i64,
        /// The leeway, seconds.
        leeway: u64,
    },
    /// `nbf` is still ahead, leeway included.
    #[error("token is not valid before {nbf}, {} s after the check time {at} (leeway {leeway} s)", nbf - at)]
    NotYetValid {
        /// The token's `nbf`, Unix seconds.
        nbf: i64,
        /// The check time, Unix seconds.
        at: i64,
        /// The leeway, seconds.
        leeway: u64,
    },
    /// `iat` is in the future, leeway included: the clocks disagree, or the token is forged.
    #[error("token was issued at {iat}, {} s after the check time {at} (leeway {leeway} s)", iat - at)]
    IssuedInFuture {
        /// The token's `iat`, Unix seconds.
        iat: i64,
        /// The check time, Unix seconds.
        at: i64,
        /// The leeway, seconds.
        leeway: u64,
    },
}

impl VerifyError {
    /// A stable, short name for the check that failed, for exit reports and metrics.
    pub fn check(&self) -> &'static str {
        match self {
            VerifyError::TooLarge { .. } => "size",
            VerifyError::Malformed(MalformedToken::DuplicateKey { .. }) => "duplicate-key",
            VerifyError::Malformed(_) => "format",
            VerifyError::Algorithm { .. } => "algorithm",
            VerifyError::EmbeddedKey(_) => "embedded-key",
            VerifyError::CriticalExtension(_) => "crit",
            VerifyError::MissingKid | VerifyError::Key(KeyError::UnknownKid { .. }) => "kid",
            VerifyError::Key(_) => "keys-unavailable",
            VerifyError::Pki(_) => "pki-chain",
            VerifyError::Signature { .. } => "signature",
            VerifyError::MissingClaim(_) => "required-claim",
            VerifyError::TimeClaim { claim, .. } => claim,
            VerifyError::Issuer { .. } => "issuer",
            VerifyError::Audience { .. } => "audience",
            VerifyError::Expired { .. } => "exp",
            VerifyError::NotYetValid { .. } => "nbf",
            VerifyError::IssuedInFuture { .. } => "iat",
        }
    }

    /// True when the token itself is bad, false when the verifier could not do its job (keys
    /// unreachable), which callers may want to retry.
    pub fn is_token_rejection(&self) -> bool {
        !matches!(
            self,
            VerifyError::Key(KeyError::Fetch { .. } | KeyError::Invalid { .. })
        )
    }
}

/// A token whose signature and standard claims have been checked.
#[derive(Debug, Clone)]
pub struct VerifiedToken {
    /// The token's header.
    pub header: Header,
    /// The payload JSON as the issuer signed it; this is what plugins receive.
    pub payload_json: String,
    /// How it was signed: `Oidc` by one of the issuer's published keys (named by `kid`), `Pki`
    /// by the leaf of an `x5c` chain leading to the pinned root.
    pub kind: TokenType,
}

impl VerifiedToken {
    /// The typed view of its claims, with the raw payload. Built on each call: the exchange hands
    /// plugins [`payload_json`](Self::payload_json) and needs no tree.
    pub fn claims(&self) -> Claims {
        Claims::from_json(&self.payload_json)
    }
}

/// Checks attestation tokens: the issuer's keys (cached) and a [`VerifyPolicy`]. One per
/// process is enough; verifications may run concurrently.
pub struct Verifier {
    keys: JwksCache,
    policy: VerifyPolicy,
}

/// The current time in Unix seconds (0 if the clock is before 1970).
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Verifier {
    /// A verifier of tokens signed with `keys` (or a chain to `policy.pki_root`).
    pub fn new(keys: JwksCache, policy: VerifyPolicy) -> Self {
        Verifier { keys, policy }
    }

    /// The issuer's key cache, e.g. to warm it up with [`JwksCache::refresh`].
    pub fn keys(&self) -> &JwksCache {
        &self.keys
    }

    /// Verifies `token` for `audience` as of now.
    pub async fn verify(&self, token: &str, audience: &str) -> Result<VerifiedToken, VerifyError> {
        self.verify_at(token, audience, unix_now()).await
    }

    /// Verifies `token` for `audience` as of `at` (Unix seconds), e.g. for an audit of a past login.
    pub async fn verify_at(
        &self,
        token: &str,
        audience: &str,
        at: i64,
    ) -> Result<VerifiedToken, VerifyError> {
        if token.len() > self.policy.max_token_bytes {
            return Err(VerifyError::TooLarge {
                size: token.len(),
                limit: self.policy.max_token_bytes,
            });
        }
        let parsed = jwt::parse_unverified(token)?;
        if parsed.header.alg != "RS256" {
            return Err(VerifyError::Algorithm {
                found: parsed.header.alg.clone(),
            });
        }
        if let Some(parameter) = parsed.header.embedded_key_parameter() {
            return Err(VerifyError::EmbeddedKey(parameter));
        }
        if let Some(crit) = parsed.header.raw.get("crit") {
            return Err(VerifyError::CriticalExtension(describe_crit(crit)));
        }
        let (key, key_name, kind) = if parsed.header.x5c.is_empty() {
            let kid = parsed
                .header
                .kid
                .as_deref()
                .ok_or(VerifyError::MissingKid)?;
            let key = self.keys.key(kid).await?;
            (key, format!("issuer key \"{kid}\""), TokenType::Oidc)
        } else {
            let root = self
                .policy
                .pki_root
                .as_ref()
                .ok_or(PkiError::NoPinnedRoot)?;
            let leaf = pki::verify_chain(&parsed.header.x5c, root, at)?;
            (
                std::sync::Arc::new(RsaPublicKey::from_der(&leaf).map_err(PkiError::LeafKey)?),
                "the x5c leaf certificate's key".to_owned(),
                TokenType::Pki,
            )
        };
        if !key.verifies(parsed.signing_input.as_bytes(), &parsed.signature) {
            return Err(VerifyError::Signature { key: key_name });
        }
        // Only the registered claims: the rest of the payload is the plugins' to read.
        self.check_claims(
            &Claims::from_payload(parsed.registered.to_map()),
            audience,
            at,
        )?;
        Ok(VerifiedToken {
            header: parsed.header,
            payload_json: parsed.payload_json,
            kind,
        })
    }

    fn check_claims(&self, claims: &Claims, audience: &str, at: i64) -> Result<(), VerifyError> {
        let issuer = claims
            .issuer
            .as_deref()
            .ok_or(VerifyError::MissingClaim("iss"))?;
        if issuer != self.policy.issuer {
            let hint = if issuer.trim_end_matches('/') == self.policy.issuer.trim_end_matches('/') {
                " (they differ only by a trailing slash, and issuers are compared exactly)"
            } else {
                ""
            };
            return Err(VerifyError::Issuer {
                found: issuer.to_owned(),
                expected: self.policy.issuer.clone(),
                hint,
            });
        }
        if claims.audiences.is_empty() {
            return Err(VerifyError::MissingClaim("aud"));
        }
        if !claims.audiences.iter().any(|a| a == audience) {
            return Err(VerifyError::Audience {
                found: claims.audiences.clone(),
                expected: audience.to_owned(),
            });
        }
        let leeway = self.policy.leeway.as_secs();
        let slack = leeway as i64;
        // Read from the raw payload, not the lenient typed view: a time claim that is present but
        // unreadable is a rejection, never "absent".
        let exp = numeric_date(&claims.raw, "exp")?.ok_or(VerifyError::MissingClaim("exp"))?;
        let nbf = numeric_date(&claims.raw, "nbf")?;
        let iat = numeric_date(&claims.raw, "iat")?;
        if at > exp.saturating_add(slack) {
            return Err(VerifyError::Expired { exp, at, leeway });
        }
        if let Some(nbf) = nbf {
            if nbf > at.saturating_add(slack) {
                return Err(VerifyError::NotYetValid { nbf, at, leeway });
            }
        }
        if let Some(iat) = iat {
            if iat > at.saturating_add(slack) {
                return Err(VerifyError::IssuedInFuture { iat, at, leeway });
            }
        }
        Ok(())
    }
}

/// A NumericDate claim (RFC 7519 section 2) as whole seconds: `None` when absent, an error when
/// present as anything but a JSON integer within `i64`. Fractions are refused rather than rounded
/// (Google writes integers), and so are values beyond `i64`, which would otherwise saturate into
/// a token that never expires.
fn numeric_date(
    payload: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<i64>, VerifyError> {
    let Some(value) = payload.get(claim) else {
        return Ok(None);
    };
    let found = match value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(seconds), _) => return Ok(Some(seconds)),
            (None, Some(f)) if f.fract() != 0.0 => format!("{n}, not a whole number"),
            (None, Some(f)) if n.is_u64() || f.abs() >= 9.2e18 => {
                format!("{n}, beyond the signed 64-bit range")
            }
            _ => format!("{n}, written as a floating-point number"),
        },
        Value::Null => "null".to_owned(),
        Value::Bool(_) => "a boolean".to_owned(),
        Value::String(_) => "a string".to_owned(),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    };
    Err(VerifyError::TimeClaim { claim, found })
}

/// Says what is wrong with a `crit` header parameter; any `crit` at all is a rejection.
fn describe_crit(crit: &Value) -> String {
    const SHOWN: usize = 5;
    match crit {
        Value::Array(names) if names.is_empty() => {
            "is an empty list, which RFC 7515 forbids".to_owned()
        }
        Value::Array(names) if names.iter().all(Value::is_string) => {
            let mut shown: Vec<String> = names
                .iter()
                .take(SHOWN)
                .filter_map(Value::as_str)
                .map(|name| format!("{:?}", shorten(name)))
                .collect();
            if names.len() > SHOWN {
                shown.push(format!("and {} more", names.len() - SHOWN));
            }
            format!("marks extension(s) {} critical", shown.join(", "))
        }
        _ => "is not a list of extension names".to_owned(),
    }
}
