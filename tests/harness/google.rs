//! A local stand-in for the three Google APIs of the KMS route, speaking their documented REST
//! shapes: STS `v1/token` (token exchange), IAM Credentials `generateAccessToken`, and Cloud KMS
//! `decrypt`. Its ciphertexts are real AES-256-GCM under a key it holds; it checks the subject
//! token's signature against the dev launcher's JWKS, its audience, and an attribute condition; and
//! it answers errors in Google's shapes. Tests only: nothing of this ships in the binary.

use attestgate::attestation::{
    JwksCache, KeyCacheOptions, KeySource, Verifier, VerifyPolicy, GOOGLE_ISSUER,
};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

pub const PROVIDER: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/tee/providers/confidential-space";
pub const KEY: &str = "projects/bank-c/locations/global/keyRings/tee/cryptoKeys/vault-token";
pub const SERVICE_ACCOUNT: &str = "vault-unwrap@bank-c.iam.gserviceaccount.com";

/// The attribute condition (CEL in Google; a Rust predicate on the verified claims here).
pub type Condition = Arc<dyn Fn(&Value) -> bool + Send + Sync>;

pub struct StandInOptions {
    pub jwks_url: String,
    pub condition: Condition,
    /// The provider's allowed audiences. Empty: Google's default, the provider's own resource
    /// name with or without an `https:` prefix.
    pub allowed_audiences: Vec<String>,
    /// Report a wrong plaintextCrc32c, as a response corrupted in transit would.
    pub corrupt_plaintext_crc: bool,
}

struct Shared {
    key: LessSafeKey,
    verifier: Verifier,
    condition: Condition,
    allowed_audiences: Vec<String>,
    /// Every subject token STS received, in order.
    subject_tokens: Mutex<Vec<String>>,
    /// The `ciphertextCrc32c` of every decrypt request, in order (Google's API makes it optional).
    ciphertext_checksums: Mutex<Vec<Option<String>>>,
    corrupt_plaintext_crc: bool,
    federated: Mutex<HashSet<String>>,
    impersonated: Mutex<HashSet<String>>,
}

pub struct GoogleStandIn {
    pub endpoint: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for GoogleStandIn {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn google_error(status: StatusCode, state: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": status.as_u16(), "message": message, "status": state}})),
    )
        .into_response()
}

fn oauth_error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::to_owned)
}

async fn sts_token(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let form: std::collections::HashMap<String, String> = String::from_utf8_lossy(&body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    shared
        .subject_tokens
        .lock()
        .unwrap()
        .push(field("subject_token").to_owned());
    if field("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" {
        return oauth_error("unsupported_grant_type", "Unsupported grant type.");
    }
    if field("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt"
        || field("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token"
    {
        return oauth_error(
            "invalid_request",
            "Invalid subject_token_type or requested_token_type.",
        );
    }
    if field("audience") != PROVIDER {
        return oauth_error(
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        );
    }
    // Google compares the token's audience with the provider's allowed audiences exactly.
    let token_audience = attestgate::attestation::parse_unverified(field("subject_token"))
        .ok()
        .and_then(|jwt| {
            jwt.payload()
                .ok()?
                .get("aud")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default();
    if !shared.allowed_audiences.contains(&token_audience) {
        return oauth_error(
            "invalid_grant",
            &format!(
                "The audience in ID Token [{token_audience}] does not match the expected audience."
            ),
        );
    }
    let verified = match shared
        .verifier
        .verify(field("subject_token"), &token_audience)
        .await
    {
        Ok(verified) => verified,
        Err(e) => {
            return oauth_error(
                "invalid_grant",
                &format!("The given credential is invalid: {e}"),
            )
        }
    };
    if !(shared.condition)(&Value::Object(verified.claims().raw)) {
        return oauth_error(
            "invalid_grant",
            "The given credential is rejected by the attribute condition.",
        );
    }
    let token = format!("ya29.federated-{:016x}", rand::random::<u64>());
    shared.federated.lock().unwrap().insert(token.clone());
    Json(json!({
        "access_token": token,
        "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
        "token_type": "Bearer",
        "expires_in": 3600
    }))
    .into_response()
}

async fn generate_access_token(
    State(shared): State<Arc<Shared>>,
    Path(target): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some((account, "generateAccessToken")) = target.split_once(':') else {
        return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Unknown method.");
    };
    let authorized =
        bearer(&headers).is_some_and(|t| shared.federated.lock().unwrap().contains(&t));
    if !authorized {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    if account != SERVICE_ACCOUNT {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!("Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): projects/-/serviceAccounts/{account}"),
        );
    }
    let token = format!("ya29.impersonated-{:016x}", rand::random::<u64>());
    shared.impersonated.lock().unwrap().insert(token.clone());
    Json(json!({"accessToken": token, "expireTime": "2099-01-01T00:00:00Z"})).into_response()
}

async fn kms(
    State(shared): State<Arc<Shared>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(key) = uri
        .path()
        .strip_prefix("/v1/")
        .and_then(|p| p.strip_suffix(":decrypt"))
    else {
        return google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "Unknown method.");
    };
    let token = bearer(&headers).unwrap_or_default();
    let authenticated = shared.federated.lock().unwrap().contains(&token)
        || shared.impersonated.lock().unwrap().contains(&token);
    if !authenticated {
        return google_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    }
    if key != KEY {
        return google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!("Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied on resource '{key}' (or it may not exist)."),
        );
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(ciphertext) = request["ciphertext"]
        .as_str()
        .and_then(|c| STANDARD.decode(c).ok())
    else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Invalid value at 'ciphertext'.",
        );
    };
    shared
        .ciphertext_checksums
        .lock()
        .unwrap()
        .push(request["ciphertextCrc32c"].as_str().map(str::to_owned));
    if let Some(crc) = request["ciphertextCrc32c"].as_str() {
        if crc.parse::<u64>().ok() != Some(u64::from(crc32c::crc32c(&ciphertext))) {
            return google_error(
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                "The checksum in field ciphertext_crc32c did not match the data in field ciphertext.",
            );
        }
    }
    let Some(plaintext) = open(&shared.key, ciphertext) else {
        return google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Decryption failed: the ciphertext is invalid.",
        );
    };
    let mut crc = u64::from(crc32c::crc32c(&plaintext));
    if shared.corrupt_plaintext_crc {
        crc ^= 1;
    }
    Json(json!({
        "plaintext": STANDARD.encode(&plaintext),
        "plaintextCrc32c": crc.to_string(),
        "usedPrimary": true,
        "protectionLevel": "SOFTWARE"
    }))
    .into_response()
}

fn open(key: &LessSafeKey, mut sealed: Vec<u8>) -> Option<Vec<u8>> {
    if sealed.len() < 12 {
        return None;
    }
    let body = sealed.split_off(12);
    let nonce = Nonce::try_assume_unique_for_key(&sealed).ok()?;
    let mut body = body;
    let plaintext = key.open_in_place(nonce, Aad::empty(), &mut body).ok()?;
    Some(plaintext.to_vec())
}

impl GoogleStandIn {
    pub async fn start(options: StandInOptions) -> Self {
        let mut key_bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut key_bytes).unwrap();
        let keys = JwksCache::new(
            KeySource::JwksUrl(options.jwks_url),
            KeyCacheOptions::default(),
        )
        .unwrap();
        let shared = Arc::new(Shared {
            key: LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key_bytes).unwrap()),
            verifier: Verifier::new(keys, VerifyPolicy::new(GOOGLE_ISSUER)),
            condition: options.condition,
            allowed_audiences: if options.allowed_audiences.is_empty() {
                vec![PROVIDER.to_owned(), format!("https:{PROVIDER}")]
            } else {
                options.allowed_audiences
            },
            subject_tokens: Mutex::new(Vec::new()),
            ciphertext_checksums: Mutex::new(Vec::new()),
            corrupt_plaintext_crc: options.corrupt_plaintext_crc,
            federated: Mutex::new(HashSet::new()),
            impersonated: Mutex::new(HashSet::new()),
        });
        let router = Router::new()
            .route("/v1/token", post(sts_token))
            .route(
                "/v1/projects/-/serviceAccounts/{target}",
                post(generate_access_token),
            )
            .fallback(post(kms))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        GoogleStandIn {
            endpoint,
            shared,
            server,
        }
    }

    /// Every subject token STS received, in order.
    pub fn subject_tokens(&self) -> Vec<String> {
        self.shared.subject_tokens.lock().unwrap().clone()
    }

    /// The `ciphertextCrc32c` each decrypt request carried (checked against its ciphertext when
    /// present), in order.
    pub fn ciphertext_checksums(&self) -> Vec<Option<String>> {
        self.shared.ciphertext_checksums.lock().unwrap().clone()
    }

    /// What `gcloud kms encrypt` would produce, base64-encoded.
    pub fn encrypt(&self, plaintext: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        aws_lc_rs::rand::fill(&mut nonce).unwrap();
        let mut body = plaintext.to_vec();
        self.shared
            .key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut body)
            .unwrap();
        let mut sealed = nonce.to_vec();
        sealed.extend(body);
        STANDARD.encode(sealed)
    }
}
