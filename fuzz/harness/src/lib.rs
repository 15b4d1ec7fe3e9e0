//! The bodies of attestgate's fuzz targets: one function per place where attestgate parses input
//! it does not control. Each runs the real code on arbitrary bytes and panics only when a
//! promise is broken, so that libFuzzer reports it: a panic inside attestgate, a credential that
//! reaches an error message, a check that lets through what it exists to stop.
//!
//! They live here, not in `fuzz/fuzz_targets/`, so that the normal test suite (on stable Rust)
//! runs every seed and every past crash through them (`tests/replay.rs`), and the targets
//! themselves stay one line each. attestgate is built without its `engine` feature: no wasmtime
//! to instrument.

use attestgate::attestation::{
    parse_unverified, Claims, TokenType, VerifiedToken, VerifyError, GOOGLE_ISSUER,
};
use attestgate::config::Config;
use attestgate::internals;
use attestgate::plugin::{Login, Reason, Verdict, MAX_MESSAGE_BYTES, MAX_ROLE_BYTES};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use std::path::Path;
use std::sync::OnceLock;

pub mod fixtures;

pub use fixtures::{Fixtures, AT, AUDIENCE, ISSUER};

/// A Vault token the fuzzed Vault answers are told was sent: it must never come back out.
const SENT_VAULT_TOKEN: &str = "hvs.CAESIFuzzedVaultTokenNeverShown0123";
/// A Google access token the fuzzed Google answers are told was sent.
const SENT_ACCESS_TOKEN: &str = "ya29.FuzzedAccessTokenNeverShown0123";

/// The signature part of `token`, when it looks like one (16 or more base64url characters) and
/// appears nowhere in the decoded header or payload: errors may quote what those say (a `kid`,
/// an issuer), never the signature.
fn signature_part(token: &str) -> Option<&str> {
    let mut parts = token.trim().split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    let looks_like_one = signature.len() >= 16
        && signature
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let quoted = [header, payload].iter().any(|part| {
        let decoded = URL_SAFE_NO_PAD.decode(part).unwrap_or_default();
        String::from_utf8_lossy(&decoded).contains(signature) || part.contains(signature)
    });
    (looks_like_one && !quoted).then_some(signature)
}

/// Compact JWS parsing alone: whatever the text, a result or a typed error whose message does
/// not repeat the token's signature.
pub fn jws(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_unverified(text) {
        Ok(parsed) => {
            // Surrounding whitespace is dropped (token files end with a newline), nothing else.
            let token = text.trim();
            assert!(token.starts_with(parsed.signing_input));
            assert!(token.ends_with(parsed.signature_b64));
            assert_eq!(
                token.len(),
                parsed.signing_input.len() + 1 + parsed.signature_b64.len()
            );
            assert_eq!(
                serde_json::from_str::<Value>(&parsed.payload_json).ok(),
                parsed.payload().ok().map(Value::Object)
            );
            // The fast base64 decoder accepted nothing the strict one refuses, and decoded the
            // same bytes.
            let payload_b64 = parsed.signing_input.split('.').nth(1).unwrap_or_default();
            assert_eq!(
                URL_SAFE_NO_PAD.decode(payload_b64).ok(),
                Some(parsed.payload_json.clone().into_bytes())
            );
            if !parsed.signature_b64.is_empty() {
                assert_eq!(
                    URL_SAFE_NO_PAD.decode(parsed.signature_b64).ok(),
                    Some(parsed.signature.clone())
                );
            }
        }
        Err(error) => {
            if let Some(signature) = signature_part(text) {
                assert!(!error.to_string().contains(signature), "{error}");
            }
        }
    }
}

/// The whole [`Verifier`], against the fixtures' JWKS and pinned PKI root, at [`AT`]: a token
/// that passes is from the issuer, for the audience, and current; a refusal does not repeat the
/// token's signature.
pub fn verifier(data: &[u8]) {
    let Some((token, outcome)) = verify(data) else {
        return;
    };
    match outcome {
        Ok(verified) => {
            let claims = &verified.claims();
            assert_eq!(claims.issuer.as_deref(), Some(ISSUER));
            assert!(claims.audiences.iter().any(|aud| aud == AUDIENCE));
            assert!(claims
                .expires_at
                .is_some_and(|exp| exp.saturating_add(60) >= AT));
            assert!(claims.not_before.is_none_or(|nbf| nbf <= AT + 60));
            match verified.kind {
                TokenType::Oidc => assert!(verified.header.x5c.is_empty()),
                TokenType::Pki => assert!(!verified.header.x5c.is_empty()),
                other => panic!("verified as {other:?}"),
            }
        }
        Err(error) => {
            if let Some(signature) = signature_part(&token) {
                let text = attestgate::error_chain(&error);
                assert!(!text.contains(signature), "{text}");
            }
        }
    }
}

/// The token [`verifier`] makes of `data`, and what the verifier said of it.
///
/// The first byte picks how the rest becomes a token: `0` as the token's text; `1` as a header
/// and a payload (split at the first newline) signed with the issuer's key (published under the
/// `kid` [`fixtures::KID`]); `2` the same signed with the PKI leaf's key (a header whose `x5c` is
/// `"fixture"` gets the chain). So signatures are valid as often as the fuzzer wants, and the
/// claim checks behind them are reached.
pub fn verify(data: &[u8]) -> Option<(String, Result<VerifiedToken, VerifyError>)> {
    let (&mode, rest) = data.split_first()?;
    let fixtures = Fixtures::get();
    let token = match mode % 3 {
        0 => std::str::from_utf8(rest).ok()?.to_owned(),
        signed => {
            let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
            let (header, payload) = (&rest[..split], rest.get(split + 1..).unwrap_or_default());
            if signed == 1 {
                fixtures::sign(&fixtures.issuer_key, header, payload)
            } else {
                fixtures::sign(&fixtures.leaf_key, &fixtures.with_chain(header), payload)
            }
        }
    };
    let outcome = runtime().block_on(fixtures.verifier.verify_at(&token, AUDIENCE, AT));
    Some((token, outcome))
}

/// x5c chain verification against the pinned root, at [`AT`]. The input is a chain of DER
/// certificates, each preceded by its length as two big-endian bytes.
pub fn x5c(data: &[u8]) {
    let chain = length_prefixed(data);
    if let Ok(leaf_key) = internals::verify_chain(&chain, &Fixtures::get().x5c_root, AT) {
        let leaf = &chain[0];
        assert!(
            leaf.windows(leaf_key.len()).any(|w| w == leaf_key),
            "the key returned is not the leaf's"
        );
    }
}

fn length_prefixed(mut data: &[u8]) -> Vec<Vec<u8>> {
    let mut chain = Vec::new();
    while let [high, low, rest @ ..] = data {
        let len = usize::from(u16::from_be_bytes([*high, *low])).min(rest.len());
        chain.push(rest[..len].to_vec());
        data = &rest[len..];
    }
    chain
}

/// The chain `certs` in [`x5c`]'s input format (for seeds).
pub fn encode_chain(certs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for cert in certs {
        let len = u16::try_from(cert.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&cert[..usize::from(len)]);
    }
    out
}

/// The host's typed claims of a payload that passed the token parser, as a plugin would receive
/// it; `None` when the parser refused it. The `claims` fuzz target compares this with the SDK's
/// reading of the same JSON.
pub fn claims(data: &[u8]) -> Option<(Claims, String)> {
    let token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","kid":"k"}"#),
        URL_SAFE_NO_PAD.encode(data),
        URL_SAFE_NO_PAD.encode([0u8; 32])
    );
    let parsed = parse_unverified(&token).ok()?;
    let claims = Claims::from_payload(parsed.payload().ok()?);
    for pointer in [
        "/submods/container/image_digest",
        "/submods/gce/project_id",
        "/aud/0",
        "/eat_nonce",
        "/tdx/0/gcp_attester_tcb_status",
        "/",
        "/~1/~0",
    ] {
        let _ = claims.pointer(pointer);
    }
    assert_eq!(
        claims.is_production(),
        claims.dbgstat.as_deref() == Some("disabled-since-boot")
    );
    // A string claim is read only from a JSON string, as the plugin SDK and Vault read it.
    for (key, read) in [
        ("iss", &claims.issuer),
        ("sub", &claims.subject),
        ("hwmodel", &claims.hwmodel),
        ("swname", &claims.swname),
        ("dbgstat", &claims.dbgstat),
    ] {
        if let Some(read) = read {
            assert_eq!(
                claims.raw.get(key).and_then(Value::as_str),
                Some(read.as_str())
            );
        }
    }
    Some((claims, parsed.payload_json))
}

/// The TOML configuration, as if it were `/nonexistent/attestgate.toml`: a configuration or a
/// list of problems, each naming where it is.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new("/nonexistent/fuzz/attestgate.toml")) {
        Ok(config) => {
            let specs = config.plugin_specs();
            assert_eq!(specs.len(), config.collaborators.len());
            for index in 0..config.collaborators.len() {
                assert!(!config.received_audience(index).is_empty());
            }
        }
        Err(error) => assert!(!error.problems.is_empty()),
    }
}

/// The HTTP status a fuzzed answer carries: its first byte picks one of those servers send.
fn status(byte: u8) -> u16 {
    const STATUSES: [u16; 12] = [200, 204, 307, 400, 403, 404, 412, 429, 500, 502, 503, 599];
    STATUSES[usize::from(byte) % STATUSES.len()]
}

/// Vault's answers: the classification of a status and body, the login, renewal and lease
/// readers, and KV extraction. The token sent never comes back in an error.
pub fn vault_response(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    use internals::vault::{self as decode, Reply};
    match decode::decode_reply(status(first), body, &[SENT_VAULT_TOKEN]) {
        Reply::Data(value) => {
            if let Ok(login) = decode::login(value.clone()) {
                let sent = value.pointer("/auth/client_token").and_then(Value::as_str);
                assert_eq!(Some(login.token.expose()), sent);
                let token = login.token.expose();
                assert!(token.len() < 8 || !format!("{login:?}").contains(token));
            }
            let _ = decode::renewed_token_ttl(value.clone());
            let _ = decode::renewed_lease(&value);
            let _ = attestgate::vault::SecretLease::of(&value);
            let field = value
                .pointer("/data/data")
                .and_then(Value::as_object)
                .and_then(|data| data.keys().next().cloned());
            for field in [None, field.as_deref(), Some("password")] {
                if let Err(error) = decode::extract_secret(value.clone(), "kv/data/app", field) {
                    let text = error.to_string();
                    assert!(text.starts_with("kv/data/app: "), "{text}");
                }
            }
        }
        Reply::NotJson(_) => {}
        Reply::Retry { errors, .. } | Reply::Refused { errors, .. } => {
            let shown = errors.join("; ");
            assert!(!shown.contains(SENT_VAULT_TOKEN), "{shown}");
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
        }
    }
}

/// Google's STS, IAM Credentials and KMS answers: errors never repeat the access token sent, and
/// a VAULT_TOKEN comes out only with a matching checksum.
pub fn google_response(data: &[u8]) {
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    use internals::kms as decode;
    match decode::decode_reply(status(first), body, &[SENT_ACCESS_TOKEN]) {
        Ok(value) => {
            let _ = decode::access_token(&value, "access_token");
            let _ = decode::access_token(&value, "accessToken");
            if let Ok(token) = decode::vault_token(value.clone()) {
                assert_eq!(token.expose(), token.expose().trim());
                assert!(value.get("plaintextCrc32c").is_some());
            }
        }
        Err(error) => {
            let text = attestgate::error_chain(&error);
            assert!(!text.contains(SENT_ACCESS_TOKEN), "{text}");
        }
    }
}

/// The issuer's documents: a JWKS, and a discovery document as if fetched from Google's. A
/// `jwks_uri` is accepted only over HTTPS on Google's own domain.
pub fn jwks(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(keys) = internals::parse_jwks(text) {
        assert!(!keys.is_empty());
    }
    const DISCOVERY: &str =
        "https://confidentialcomputing.googleapis.com/.well-known/openid-configuration";
    for expected in [None, Some(GOOGLE_ISSUER)] {
        if let Ok(uri) = internals::jwks_uri_of(DISCOVERY, text, expected) {
            let url = url::Url::parse(&uri).expect("an accepted jwks_uri parses");
            assert_eq!(url.scheme(), "https", "{uri}");
            let host = url.host_str().unwrap_or_default();
            assert!(
                host == "googleapis.com" || host.ends_with(".googleapis.com"),
                "{uri} is not on Google's domain"
            );
        }
    }
}

/// The dev launcher's `POST /v1/token` decoder: what it accepts, the host's own check of a
/// plugin's audience request accepts too (both stand for the real launcher's limits).
pub fn launcher_request(data: &[u8]) {
    if let Ok(request) = internals::decode_token_request(data) {
        assert!(!request.audience.is_empty());
        let as_plugin_asked = attestgate::attestation::TokenRequest {
            audience: request.audience.clone(),
            token_type: request.token_type,
            nonces: request.nonces.clone(),
        };
        let checked = internals::check_audience_request(as_plugin_asked, None);
        assert!(
            checked.is_ok() || request.audience.trim().is_empty(),
            "the launcher mints what the host refuses: {checked:?}"
        );
    }
}

/// The contract checks on a plugin's answers, on arbitrary verdicts and audience requests: what
/// passes is consistent (an allow has reasons and no failure, a deny has a failure) and safe to
/// print (no control characters, bounded).
pub fn verdict(data: &[u8]) {
    let mut input = arbitrary::Unstructured::new(data);
    let Ok(raw) = arbitrary_verdict(&mut input) else {
        return;
    };
    if let Ok(checked) = internals::check_verdict(raw) {
        if checked.allow {
            assert!(!checked.reasons.is_empty() && checked.reasons.iter().all(|r| r.passed));
        } else {
            assert!(checked.reasons.iter().any(|r| !r.passed));
        }
        for reason in &checked.reasons {
            let shown = reason.to_string();
            assert!(!shown.chars().any(char::is_control), "{shown:?}");
            assert!(reason.message.len() <= MAX_MESSAGE_BYTES + '…'.len_utf8());
            assert!(reason.claim.as_ref().is_none_or(|c| c.starts_with('/')));
        }
        if let Some(role) = &checked.login.role {
            assert!(!role.is_empty() && role.len() <= MAX_ROLE_BYTES);
            assert!(!role.chars().any(|c| c.is_control() || c.is_whitespace()));
        }
    }
    let declared = "https://vault.bank-a.example";
    let Ok(request) = arbitrary_request(&mut input) else {
        return;
    };
    let asked = request.audience.clone();
    if let Ok(checked) = internals::check_audience_request(request, Some(declared)) {
        assert_eq!(checked.audience, declared);
        assert_eq!(asked, declared);
    }
}

fn arbitrary_verdict(input: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Verdict> {
    let allow = input.arbitrary()?;
    let count = input.int_in_range(0..=300u16)?;
    let mut reasons = Vec::new();
    for _ in 0..count {
        reasons.push(Reason {
            claim: input.arbitrary()?,
            passed: input.arbitrary()?,
            message: input.arbitrary()?,
        });
    }
    Ok(Verdict {
        allow,
        reasons,
        login: Login {
            role: input.arbitrary()?,
        },
    })
}

fn arbitrary_request(
    input: &mut arbitrary::Unstructured<'_>,
) -> arbitrary::Result<attestgate::attestation::TokenRequest> {
    Ok(attestgate::attestation::TokenRequest {
        audience: input.arbitrary()?,
        token_type: if input.arbitrary()? {
            TokenType::Pki
        } else {
            TokenType::Oidc
        },
        nonces: input.arbitrary()?,
    })
}

/// A plugin file's producers section, read when it is loaded and printed by `plugin inspect`:
/// any bytes give an answer, and what it names is safe to print.
pub fn producers(data: &[u8]) {
    for producer in internals::producers(data) {
        for text in [&producer.field, &producer.name, &producer.version] {
            assert!(!text.chars().any(char::is_control), "{text:?}");
        }
    }
}

/// The current-thread runtime the verifier's futures run on (it never does I/O here: its keys
/// are inline).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("a current-thread runtime")
    })
}

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// The fuzz targets by name, for the replay test.
pub const TARGETS: &[(&str, Target)] = &[
    ("jws", jws),
    ("verifier", verifier),
    ("x5c", x5c),
    ("claims", |data| {
        claims(data);
    }),
    ("config", config),
    ("vault_response", vault_response),
    ("google_response", google_response),
    ("jwks", jwks),
    ("launcher_request", launcher_request),
    ("verdict", verdict),
    ("producers", producers),
];
