//! Structural parsing of a compact JWS, before any cryptography.
//!
//! Every failure says which part of the token is wrong and how, because "invalid token" at 3 a.m.
//! tells the operator nothing.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use zeroize::Zeroizing;

/// The three parts of a compact JWS, used in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenPart {
    /// The JOSE header, first.
    Header,
    /// The claims, second.
    Payload,
    /// The signature, last.
    Signature,
}

impl fmt::Display for TokenPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenPart::Header => "header",
            TokenPart::Payload => "payload",
            TokenPart::Signature => "signature",
        })
    }
}

/// Why a token is not a well-formed compact JWS. Nothing cryptographic has been checked yet.
#[derive(Debug, thiserror::Error)]
pub enum MalformedToken {
    /// Nothing but whitespace.
    #[error("the token is empty")]
    Empty,
    /// Not three dot-separated parts; the count is given.
    #[error("the token has {0} dot-separated parts; a compact JWS has exactly 3 (header.payload.signature)")]
    PartCount(usize),
    /// A header or payload with nothing in it.
    #[error("the {part} is empty")]
    EmptyPart {
        /// Which part.
        part: TokenPart,
    },
    /// A part that does not decode as unpadded base64url.
    #[error("the {part} is not valid base64url (RFC 7515, no padding): {source}")]
    Base64 {
        /// Which part.
        part: TokenPart,
        /// Where the decoding failed.
        #[source]
        source: base64::DecodeError,
    },
    /// A header or payload that decodes to bytes that are not UTF-8.
    #[error("the {part} is not valid JSON: not UTF-8: {source}")]
    NotUtf8 {
        /// Which part.
        part: TokenPart,
        /// Where the text stops being UTF-8.
        #[source]
        source: std::str::Utf8Error,
    },
    /// A header or payload that is not JSON.
    #[error("the {part} is not valid JSON: {source}")]
    Json {
        /// Which part.
        part: TokenPart,
        /// The parser's complaint, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A header or payload that is JSON, but not an object.
    #[error("the {part} is JSON but not an object (found {found})")]
    NotAnObject {
        /// Which part.
        part: TokenPart,
        /// What it is instead, e.g. "an array".
        found: &'static str,
    },
    /// A JSON object in the header or payload repeats a key.
    #[error(
        "the {part} has the key {key:?} more than once {}; a token with a repeated key is refused \
         because JSON readers disagree on which value counts",
        describe_location(location)
    )]
    DuplicateKey {
        /// Which part.
        part: TokenPart,
        /// The repeated key, cut to [`SHOWN_KEY_CHARS`] characters.
        key: String,
        /// JSON pointer (RFC 6901) to the object holding it; empty for the top level.
        location: String,
    },
    /// A header field attestgate reads has the wrong type, or `alg` is missing.
    #[error("header field \"{field}\" must be {expected}")]
    HeaderField {
        /// The field, e.g. `alg`.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
}

/// Keys and path segments longer than this are cut in error messages.
pub const SHOWN_KEY_CHARS: usize = 64;

fn describe_location(pointer: &str) -> String {
    if pointer.is_empty() {
        "at the top level".to_owned()
    } else {
        format!("in the object at {pointer:?}")
    }
}

/// `text` cut to [`SHOWN_KEY_CHARS`] characters, for error messages about attacker-chosen names.
pub(crate) fn shorten(text: &str) -> String {
    match text.char_indices().nth(SHOWN_KEY_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The first key found twice in one JSON object, and where.
#[derive(Debug, PartialEq, Eq)]
struct RepeatedKey {
    /// Keys and array indices leading to the object that holds the repeated key.
    path: Vec<String>,
    key: String,
}

impl RepeatedKey {
    fn pointer(&self) -> String {
        self.path
            .iter()
            .map(|segment| {
                format!(
                    "/{}",
                    shorten(segment).replace('~', "~0").replace('/', "~1")
                )
            })
            .collect()
    }
}

/// Checks a JSON value without building it: valid JSON, and no object, at any depth, that repeats
/// a key.
///
/// `serde_json::Value` keeps the last of repeated keys without a word, and other readers (a
/// plugin's JSON library, Vault's) may keep the first: an attacker who can shape a payload would
/// get the host and a plugin to read different claims. Keys are compared after unescaping, so
/// `"dbgstat"` and `"dbg\u0073tat"` are the same key. Depth is bounded by serde_json's
/// recursion limit. Nothing is built: each object's keys are compared on the stack (a hash set
/// only past [`FEW_KEYS`]), borrowed from the input unless escaped. The verifier needs five
/// claims and plugins get the JSON text, so building the tree here was most of a verification's
/// cost beyond the RSA check. Where a repeated key is
/// goes into `found`, built only on that path. At the top level, `registered` (when given)
/// receives the registered claims in the same pass.
struct StrictScan<'a> {
    found: &'a mut Option<RepeatedKey>,
    registered: Option<&'a mut RegisteredClaims>,
}

impl<'a> StrictScan<'a> {
    /// A scan of a nested value.
    fn nested(found: &'a mut Option<RepeatedKey>) -> Self {
        StrictScan {
            found,
            registered: None,
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictScan<'_> {
    /// What kind of JSON value it was, for "must be an object" errors.
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<&'static str, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictScan<'_> {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<&'static str, E> {
        Ok("a boolean")
    }

    fn visit_i64<E>(self, _: i64) -> Result<&'static str, E> {
        Ok("a number")
    }

    fn visit_u64<E>(self, _: u64) -> Result<&'static str, E> {
        Ok("a number")
    }

    fn visit_f64<E>(self, _: f64) -> Result<&'static str, E> {
        Ok("a number")
    }

    fn visit_str<E>(self, _: &str) -> Result<&'static str, E> {
        Ok("a string")
    }

    fn visit_unit<E>(self) -> Result<&'static str, E> {
        Ok("null")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<&'static str, A::Error> {
        let mut index = 0usize;
        loop {
            let item = seq.next_element_seed(StrictScan::nested(&mut *self.found));
            match item {
                Ok(Some(_)) => index += 1,
                Ok(None) => return Ok("an array"),
                Err(error) => {
                    if let Some(found) = self.found.as_mut() {
                        found.path.insert(0, index.to_string());
                    }
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<&'static str, A::Error> {
        let mut keys = KeySet::default();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            // Cloning a borrowed key copies a pointer; only a key with escapes is copied.
            if !keys.insert_new(key.clone()) {
                *self.found = Some(RepeatedKey {
                    path: Vec::new(),
                    key: key.into_owned(),
                });
                return Err(de::Error::custom("repeated key"));
            }
            let slot = self
                .registered
                .as_deref_mut()
                .and_then(|registered| registered.slot(&key));
            let value = match slot {
                Some(slot) => map
                    .next_value_seed(Capture(&mut *self.found))
                    .map(|value| *slot = Some(value)),
                None => map
                    .next_value_seed(StrictScan::nested(&mut *self.found))
                    .map(drop),
            };
            if let Err(error) = value {
                if let Some(found) = self.found.as_mut() {
                    found.path.insert(0, key.into_owned());
                }
                return Err(error);
            }
        }
        Ok("an object")
    }
}

/// An object key, borrowed from the input unless it had escapes to undo.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(key.to_owned()))
    }
}

/// A registered claim's value, checked as strictly as the rest and kept as far as the verifier
/// reads it: scalars and arrays whole, an object as an empty one (a registered claim that is an
/// object is refused by its kind alone).
struct Capture<'a>(&'a mut Option<RepeatedKey>);

impl<'de> DeserializeSeed<'de> for Capture<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Capture<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_f64<E>(self, value: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            match seq.next_element_seed(Capture(&mut *self.0)) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => return Ok(Value::Array(items)),
                Err(error) => {
                    if let Some(found) = self.0.as_mut() {
                        found.path.insert(0, items.len().to_string());
                    }
                    return Err(error);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        StrictScan::nested(self.0)
            .visit_map(map)
            .map(|_| Value::Object(Map::new()))
    }
}

/// The keys of one object seen so far: a list on the stack while it is short (claims objects
/// have a handful of keys), a hash set once it is long, so that an object of many keys costs
/// linear time.
#[derive(Default)]
struct KeySet<'de> {
    few: SmallVec<[Cow<'de, str>; FEW_KEYS]>,
    many: Option<HashSet<Cow<'de, str>>>,
}

/// Up to this many keys, an object's keys are compared one by one.
const FEW_KEYS: usize = 32;

impl<'de> KeySet<'de> {
    /// Adds `key`; false if it was already there.
    fn insert_new(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(many) = &mut self.many {
            return many.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() == FEW_KEYS {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

/// Checks `json` as serde_json would parse it, except that a repeated key anywhere is an error of
/// its own. Returns the kind of the top-level value; the registered claims at its top level go
/// into `registered`, when given.
fn scan_strict(
    json: &str,
    registered: Option<&mut RegisteredClaims>,
) -> Result<&'static str, Result<RepeatedKey, serde_json::Error>> {
    let mut found = None;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let scanned = StrictScan {
        found: &mut found,
        registered,
    }
    .deserialize(&mut deserializer)
    .and_then(|kind| deserializer.end().map(|()| kind));
    match (scanned, found) {
        (_, Some(repeated)) => Err(Ok(repeated)),
        (Ok(kind), None) => Ok(kind),
        (Err(error), None) => Err(Err(error)),
    }
}

/// A bearer token held in memory that is wiped on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Jwt(Zeroizing<String>);

impl Jwt {
    /// Takes `token` as it is; nothing is parsed or checked.
    pub fn new(token: impl Into<String>) -> Self {
        Jwt(Zeroizing::new(token.into()))
    }

    /// The compact serialisation. Only hand this to the party the token is meant for.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Jwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jwt(<redacted, {} bytes>)", self.0.len())
    }
}

/// The JOSE header fields attestgate looks at. Everything else stays in `raw`.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The signature algorithm; only `RS256` passes verification.
    pub alg: String,
    /// Which of the issuer's keys signed (OIDC tokens).
    pub kid: Option<String>,
    /// The media type, `JWT` in Google's tokens; informational.
    pub typ: Option<String>,
    /// DER certificates from `x5c`, leaf first (PKI tokens).
    pub x5c: Vec<Vec<u8>>,
    /// Every header field as it arrived, those above included.
    pub raw: Map<String, Value>,
}

impl Header {
    /// Header parameters that carry or point at a key. Trusting them lets the sender pick the key
    /// that verifies its own forgery, so their presence alone is a rejection.
    pub fn embedded_key_parameter(&self) -> Option<&'static str> {
        ["jwk", "jku", "x5u"]
            .into_iter()
            .find(|name| self.raw.contains_key(*name))
    }
}

/// A structurally valid compact JWS whose signature has not been checked.
///
/// The payload is checked (JSON, an object, no repeated key) but not built into a tree: the
/// verifier reads only the five registered claims (`iss`, `aud`, `exp`, `nbf`, `iat`), and
/// plugins get [`payload_json`] as it is. [`UnverifiedToken::payload`] builds the whole object
/// for whoever needs it.
///
/// [`payload_json`]: UnverifiedToken::payload_json
#[derive(Debug, Clone)]
pub struct UnverifiedToken<'a> {
    /// The decoded header.
    pub header: Header,
    /// The claims the verifier checks, not yet trusted.
    pub(crate) registered: RegisteredClaims,
    /// The payload exactly as decoded, for handing to plugins without re-serialising it.
    pub payload_json: String,
    /// `base64url(header) "." base64url(payload)`: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The signature as it appears in the token (base64url).
    pub signature_b64: &'a str,
    /// The signature, decoded (empty for an empty signature part).
    pub signature: Vec<u8>,
}

impl UnverifiedToken<'_> {
    /// The whole payload as a JSON object, not yet trusted.
    pub fn payload(&self) -> Result<Map<String, Value>, MalformedToken> {
        serde_json::from_str(&self.payload_json).map_err(|source| MalformedToken::Json {
            part: TokenPart::Payload,
            source,
        })
    }
}

/// The registered claims (RFC 7519 section 4.1) the verifier checks, read in the same pass that
/// checks the payload: `None` when absent, `Some(Value::Null)` when present as `null` (a time
/// claim present as `null` is refused, never taken as absent). A claim that is an object is kept
/// as an empty object: what the verifier refuses it for is its kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RegisteredClaims {
    iss: Option<Value>,
    aud: Option<Value>,
    exp: Option<Value>,
    nbf: Option<Value>,
    iat: Option<Value>,
}

impl RegisteredClaims {
    /// Where the claim named `key` goes, if it is one of them.
    fn slot(&mut self, key: &str) -> Option<&mut Option<Value>> {
        match key {
            "iss" => Some(&mut self.iss),
            "aud" => Some(&mut self.aud),
            "exp" => Some(&mut self.exp),
            "nbf" => Some(&mut self.nbf),
            "iat" => Some(&mut self.iat),
            _ => None,
        }
    }

    /// The claims that are present, as a JSON object.
    pub(crate) fn to_map(&self) -> Map<String, Value> {
        [
            ("iss", &self.iss),
            ("aud", &self.aud),
            ("exp", &self.exp),
            ("nbf", &self.nbf),
            ("iat", &self.iat),
        ]
        .into_iter()
        .filter_map(|(name, value)| Some((name.to_owned(), value.clone()?)))
        .collect()
    }
}

fn decode_part(part: TokenPart, text: &str) -> Result<Vec<u8>, MalformedToken> {
    if text.is_empty() {
        return Err(MalformedToken::EmptyPart { part });
    }
    if let Ok(bytes) = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(text) {
        return Ok(bytes);
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|source| MalformedToken::Base64 { part, source })
}

/// Decodes a header or payload part to its JSON text, checked to be one object without a
/// repeated key; its registered claims go into `registered`, when given.
fn decode_object(
    part: TokenPart,
    text: &str,
    registered: Option<&mut RegisteredClaims>,
) -> Result<String, MalformedToken> {
    let bytes = decode_part(part, text)?;
    let json = String::from_utf8(bytes).map_err(|e| MalformedToken::NotUtf8 {
        part,
        source: e.utf8_error(),
    })?;
    match scan_strict(&json, registered) {
        Ok("an object") => Ok(json),
        Ok(found) => Err(MalformedToken::NotAnObject { part, found }),
        Err(Ok(repeated)) => Err(MalformedToken::DuplicateKey {
            part,
            location: repeated.pointer(),
            key: shorten(&repeated.key),
        }),
        Err(Err(source)) => Err(MalformedToken::Json { part, source }),
    }
}

fn parse_header(raw: Map<String, Value>) -> Result<Header, MalformedToken> {
    let optional_string = |field: &'static str| match raw.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(MalformedToken::HeaderField {
            field,
            expected: "a string",
        }),
    };
    let alg = optional_string("alg")?.ok_or(MalformedToken::HeaderField {
        field: "alg",
        expected: "present (a string naming the signature algorithm)",
    })?;
    let kid = optional_string("kid")?;
    let typ = optional_string("typ")?;
    let x5c = match raw.get("x5c") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .and_then(|b64| STANDARD.decode(b64).ok())
                    .ok_or(MalformedToken::HeaderField {
                        field: "x5c",
                        expected: "an array of standard-base64 DER certificates",
                    })
            })
            .collect::<Result<_, _>>()?,
        Some(_) => {
            return Err(MalformedToken::HeaderField {
                field: "x5c",
                expected: "an array of standard-base64 DER certificates",
            })
        }
    };
    Ok(Header {
        alg,
        kid,
        typ,
        x5c,
        raw,
    })
}

/// Splits and decodes a compact JWS. No signature or claim is checked here.
pub fn parse_unverified(token: &str) -> Result<UnverifiedToken<'_>, MalformedToken> {
    let token = token.trim();
    if token.is_empty() {
        return Err(MalformedToken::Empty);
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(MalformedToken::PartCount(parts.len()));
    }
    let header_json = decode_object(TokenPart::Header, parts[0], None)?;
    let header = parse_header(serde_json::from_str(&header_json).map_err(|source| {
        MalformedToken::Json {
            part: TokenPart::Header,
            source,
        }
    })?)?;
    let mut registered = RegisteredClaims::default();
    let payload_json = decode_object(TokenPart::Payload, parts[1], Some(&mut registered))?;
    // An empty signature is left for the verifier, which rejects its algorithm ("none") by name.
    let signature = if parts[2].is_empty() {
        Vec::new()
    } else {
        decode_part(TokenPart::Signature, parts[2])?
    };
    let signing_input = &token[..parts[0].len() + 1 + parts[1].len()];
    Ok(UnverifiedToken {
        header,
        registered,
        payload_json,
        signing_input,
        signature_b64: parts[2],
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(json: &str) -> String {
        URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn reports_the_part_that_is_broken() {
        let header = b64(r#"{"alg":"RS256","kid":"k"}"#);
        let payload = b64(r#"{"iss":"x"}"#);
        assert!(matches!(
            parse_unverified("a.b").unwrap_err(),
            MalformedToken::PartCount(2)
        ));
        assert!(matches!(
            parse_unverified(&format!("{header}.{payload}.!!")).unwrap_err(),
            MalformedToken::Base64 {
                part: TokenPart::Signature,
                ..
            }
        ));
        assert!(matches!(
            parse_unverified(&format!("{header}.{}.c2ln", b64("[1]"))).unwrap_err(),
            MalformedToken::NotAnObject {
                part: TokenPart::Payload,
                found: "an array"
            }
        ));
        let not_json = parse_unverified(&format!("{}.{payload}.c2ln", b64("{nope"))).unwrap_err();
        assert!(matches!(
            not_json,
            MalformedToken::Json {
                part: TokenPart::Header,
                ..
            }
        ));
        // The parser's own error stays the cause, line and column included.
        let cause = std::error::Error::source(&not_json).expect("the JSON error is the source");
        assert!(
            not_json.to_string().ends_with(&cause.to_string()),
            "{not_json}"
        );
        let token = format!("{header}.{payload}.c2ln");
        let ok = parse_unverified(&token).unwrap();
        assert_eq!(ok.header.kid.as_deref(), Some("k"));
        assert_eq!(ok.signing_input, format!("{header}.{payload}"));
    }

    #[test]
    fn finds_a_repeated_key_at_any_depth() {
        let found = |json: &str| {
            scan_strict(json, None)
                .err()
                .map(|r| r.map(|r| (r.pointer(), r.key)))
        };
        assert!(found(r#"{"a":1,"b":{"a":2},"c":[{"a":3}]}"#).is_none());
        assert_eq!(
            found(r#"{"a":1,"a":1}"#).unwrap().unwrap(),
            (String::new(), "a".into())
        );
        assert_eq!(
            found(r#"{"a":{"b":[0,{"c":1,"c\u0000":2,"c":3}]}}"#)
                .unwrap()
                .unwrap(),
            ("/a/b/1".into(), "c".into())
        );
        assert_eq!(
            found(r#"{"x/y":{"t~":{"k":1,"\u006b":2}}}"#)
                .unwrap()
                .unwrap(),
            ("/x~1y/t~0".into(), "k".into())
        );
        // What serde_json refuses stays its error, trailing text included.
        assert!(matches!(found(r#"{"a":1} x"#), Some(Err(_))));
        assert!(matches!(found(r#"{"a":1,"a""#), Some(Ok(_))));
    }

    #[test]
    fn a_repeated_key_is_reported_with_its_part_and_place() {
        let header = b64(r#"{"alg":"RS256","kid":"k"}"#);
        let payload = b64(r#"{"submods":{"container":{"image_digest":"a","image_digest":"b"}}}"#);
        let err = parse_unverified(&format!("{header}.{payload}.c2ln")).unwrap_err();
        assert!(
            matches!(
                &err,
                MalformedToken::DuplicateKey {
                    part: TokenPart::Payload,
                    key,
                    location,
                } if key == "image_digest" && location == "/submods/container"
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("payload"), "{text}");
        assert!(text.contains("\"image_digest\""), "{text}");
        assert!(text.contains("/submods/container"), "{text}");

        let long = "k".repeat(1000);
        let header = b64(&format!(r#"{{"alg":"RS256","{long}":1,"{long}":2}}"#));
        let text = parse_unverified(&format!("{header}.{payload}.c2ln"))
            .unwrap_err()
            .to_string();
        assert!(text.contains("the header has the key"), "{text}");
        assert!(text.len() < 400, "a long key is cut in the message: {text}");
    }

    #[test]
    fn registered_claims_tell_null_from_absent_and_the_payload_is_kept_whole() {
        let header = b64(r#"{"alg":"RS256","kid":"k"}"#);
        let payload =
            r#"{"iss":"i","aud":["a","b"],"exp":null,"iat":1.5,"submods":{"x":[1,{"y":2}]}}"#;
        let token = format!("{header}.{}.c2ln", b64(payload));
        let parsed = parse_unverified(&token).unwrap();
        let registered = &parsed.registered;
        assert_eq!(registered.iss, Some(Value::from("i")));
        assert_eq!(registered.aud, Some(serde_json::json!(["a", "b"])));
        // Present as null is not absent: the verifier refuses the first, and says "missing" for
        // the second.
        assert_eq!(registered.exp, Some(Value::Null));
        assert_eq!(registered.nbf, None);
        assert_eq!(registered.iat, Some(serde_json::json!(1.5)));
        assert_eq!(registered.to_map().len(), 4);
        assert_eq!(parsed.payload_json, payload);
        assert_eq!(
            Value::Object(parsed.payload().unwrap()),
            serde_json::from_str::<Value>(payload).unwrap()
        );
    }

    #[test]
    fn long_objects_are_checked_for_repeated_keys_too() {
        let keys: Vec<String> = (0..100).map(|i| format!("\"k{i}\":{i}")).collect();
        let object = format!("{{{}}}", keys.join(","));
        assert!(scan_strict(&object, None).is_ok());
        let repeated = format!("{{{},\"k3\":0}}", keys.join(","));
        assert_eq!(
            scan_strict(&repeated, None).unwrap_err().unwrap(),
            RepeatedKey {
                path: Vec::new(),
                key: "k3".into()
            }
        );
    }

    #[test]
    fn the_fast_decoder_accepts_exactly_what_the_checked_one_does() {
        // `decode_part` tries base64-simd first and falls back to the base64 crate for its error:
        // the two must agree on every input, padding and non-zero trailing bits included.
        for text in [
            "",
            "A",
            "AB",
            "AA",
            "QQ",
            "QQ==",
            "QUI",
            "QUJ",
            "QUJD",
            "QUJDRA",
            "QUJDRB",
            "Q-_Q",
            "Q+/Q",
            "QU JD",
            "QUJD\n",
            "=QUJD",
            "QUJD=",
            "\u{e9}QUJD",
        ] {
            let simd = base64_simd::URL_SAFE_NO_PAD.decode_to_vec(text).ok();
            let checked = URL_SAFE_NO_PAD.decode(text).ok();
            assert_eq!(simd, checked, "{text:?}");
        }
    }

    #[test]
    fn debug_never_shows_the_token() {
        let jwt = Jwt::new("eyJhbGciOiJSUzI1NiJ9.secret.sig");
        assert!(!format!("{jwt:?}").contains("secret"));
    }
}
