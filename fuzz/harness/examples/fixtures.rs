//! Writes the fuzz fixture (`fuzz/fixtures/x5c.json`: a certificate chain, whose keys are not
//! kept) and the seed corpora (`fuzz/seeds/<target>/`) from real shapes: dev-launcher tokens, the README's
//! and the examples' configurations, OpenBao's and Google's answers as they are documented and
//! measured. Run once; the outputs are committed, so that fuzzing is reproducible:
//!
//! ```sh
//! cargo run -p attestgate-fuzz --example fixtures             # seeds only, the chain kept
//! cargo run -p attestgate-fuzz --example fixtures -- --chain  # a new chain too
//! ```

use attestgate::dev::{production_claims, SigningKey};
use attestgate_fuzz::fixtures::{self, Fixtures, AT, AUDIENCE, ISSUER};
use serde_json::{json, Value};

fn main() {
    let dir = fixtures::dir();
    if std::env::args().any(|a| a == "--chain") {
        let pki = fixtures::chain(SigningKey::generate().unwrap());
        let text = serde_json::to_string_pretty(&pki.x5c()).unwrap();
        std::fs::write(dir.join("x5c.json"), text).unwrap();
    }
    let seeds = dir.join("../seeds");
    let fixtures = Fixtures::get();
    let mut claims = production_claims();
    claims["iss"] = json!(ISSUER);
    claims["aud"] = json!(AUDIENCE);
    claims["iat"] = json!(AT - 60);
    claims["nbf"] = json!(AT - 60);
    claims["exp"] = json!(AT + 3540);
    let payload = claims.to_string();
    let oidc_header = json!({"alg": "RS256", "kid": fixtures::KID, "typ": "JWT"}).to_string();
    let pki_header = json!({"alg": "RS256", "x5c": "fixture", "typ": "JWT"}).to_string();
    let oidc_token = fixtures::sign(
        &fixtures.issuer_key,
        oidc_header.as_bytes(),
        payload.as_bytes(),
    );

    let seed = |target: &str, name: &str, bytes: &[u8]| {
        let path = seeds.join(target).join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    };
    seed("jws", "oidc-token", oidc_token.as_bytes());
    seed(
        "jws",
        "repeated-key",
        b"eyJhbGciOiJSUzI1NiIsImFsZyI6Im5vbmUifQ.e30.AAAA",
    );
    seed(
        "verifier",
        "raw-oidc-token",
        &[&[0u8][..], oidc_token.as_bytes()].concat(),
    );
    seed(
        "verifier",
        "oidc",
        format!("\u{1}{oidc_header}\n{payload}").as_bytes(),
    );
    seed(
        "verifier",
        "pki",
        format!("\u{2}{pki_header}\n{payload}").as_bytes(),
    );
    seed(
        "x5c",
        "dev-chain",
        &attestgate_fuzz::encode_chain(&fixtures.x5c),
    );
    seed(
        "x5c",
        "leaf-and-root",
        &attestgate_fuzz::encode_chain(&[fixtures.x5c[0].clone(), fixtures.x5c[2].clone()]),
    );
    seed("claims", "production", payload.as_bytes());
    let mut debug = claims.clone();
    debug["dbgstat"] = json!("enabled");
    debug["eat_nonce"] = json!(["0123456789abcdef", "fedcba9876543210"]);
    debug["tdx"] = json!([{"gcp_attester_tcb_status": "UpToDate"}]);
    seed("claims", "debug-tdx", debug.to_string().as_bytes());

    let root = dir.join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for (index, block) in readme.split("```toml\n").skip(1).enumerate() {
        let toml = block.split("```").next().unwrap_or_default();
        seed("config", &format!("readme-{index}"), toml.as_bytes());
    }
    let template =
        std::fs::read(root.join("examples/multi-party/attestgate.toml.template")).unwrap();
    seed("config", "multi-party", &template);

    let vault: [(&str, u16, Value); 8] = [
        (
            "login",
            200,
            json!({"request_id": "9b1c", "lease_id": "", "renewable": false, "lease_duration": 0, "data": null, "wrap_info": null, "warnings": null,
            "auth": {"client_token": "hvs.CAESIJx", "accessor": "6Ujx", "policies": ["bank-a-read", "default"], "token_policies": ["bank-a-read", "default"],
                "metadata": {"role": "bank-a"}, "lease_duration": 900, "renewable": true, "entity_id": "4d2e", "token_type": "service", "orphan": true, "mfa_requirement": null, "num_uses": 0}}),
        ),
        (
            "kv2-read",
            200,
            json!({"request_id": "1", "lease_id": "", "renewable": false, "lease_duration": 0,
            "data": {"data": {"password": "s3cret", "user": "app"}, "metadata": {"created_time": "2026-11-30T00:00:00Z", "custom_metadata": null, "deletion_time": "", "destroyed": false, "version": 3}}}),
        ),
        (
            "dynamic-secret",
            200,
            json!({"lease_id": "database/creds/app/Jq2", "renewable": true, "lease_duration": 3600, "data": {"username": "v-app", "password": "A1a-x"}}),
        ),
        (
            "renew-self",
            200,
            json!({"auth": {"client_token": "hvs.CAESIJx", "lease_duration": 600, "renewable": true}}),
        ),
        ("denied", 403, json!({"errors": ["permission denied"]})),
        (
            "bad-audience",
            400,
            json!({"errors": ["error validating token: invalid audience (aud) claim"]}),
        ),
        (
            "no-leader",
            500,
            json!({"errors": ["local node not active but active cluster node not found"]}),
        ),
        ("sealed", 503, json!({"errors": ["Vault is sealed"]})),
    ];
    let status_byte = |status: u16| -> u8 {
        [
            200u16, 204, 307, 400, 403, 404, 412, 429, 500, 502, 503, 599,
        ]
        .iter()
        .position(|s| *s == status)
        .unwrap() as u8
    };
    for (name, status, body) in vault {
        seed(
            "vault_response",
            name,
            &[&[status_byte(status)][..], body.to_string().as_bytes()].concat(),
        );
    }
    seed("vault_response", "standby-redirect", &[status_byte(307)]);
    seed(
        "vault_response",
        "html",
        &[
            &[status_byte(502)][..],
            b"<html><body>Bad Gateway</body></html>",
        ]
        .concat(),
    );

    let plaintext = b"hvs.CAESIKmsWrappedToken";
    let plaintext_b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(plaintext)
    };
    let google: [(&str, u16, Value); 6] = [
        (
            "sts",
            200,
            json!({"access_token": "ya29.d.c0AY", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3599}),
        ),
        (
            "impersonate",
            200,
            json!({"accessToken": "ya29.c.c0AY", "expireTime": "2026-11-30T03:00:00Z"}),
        ),
        (
            "decrypt",
            200,
            json!({"plaintext": plaintext_b64, "plaintextCrc32c": crc32c(plaintext).to_string(), "usedPrimary": true, "protectionLevel": "SOFTWARE"}),
        ),
        (
            "sts-refused",
            400,
            json!({"error": "invalid_grant", "error_description": "The audience in ID Token [https://sts.googleapis.com] does not match the expected audience."}),
        ),
        (
            "kms-denied",
            403,
            json!({"error": {"code": 403, "message": "Permission 'cloudkms.cryptoKeyVersions.useToDecrypt' denied on resource", "status": "PERMISSION_DENIED"}}),
        ),
        (
            "unavailable",
            503,
            json!({"error": {"code": 503, "message": "The service is currently unavailable.", "status": "UNAVAILABLE"}}),
        ),
    ];
    for (name, status, body) in google {
        seed(
            "google_response",
            name,
            &[&[status_byte(status)][..], body.to_string().as_bytes()].concat(),
        );
    }

    seed(
        "jwks",
        "dev-jwks",
        attestgate::dev::jwks([&SigningKey::generate().unwrap()])
            .to_string()
            .as_bytes(),
    );
    seed("jwks", "google-discovery", json!({
        "issuer": ISSUER,
        "jwks_uri": "https://www.googleapis.com/service_accounts/v1/metadata/jwk/signer@confidentialspace-sign.iam.gserviceaccount.com",
        "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"], "scopes_supported": ["openid"],
        "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "dbgstat", "eat_nonce", "google_service_accounts", "hwmodel", "oemid", "secboot", "submods", "swname", "swversion"]}).to_string().as_bytes());

    for (name, body) in [
        (
            "oidc",
            json!({"audience": AUDIENCE, "token_type": "OIDC", "nonces": ["0123456789abcdef"]})
                .to_string(),
        ),
        (
            "pki",
            json!({"audience": AUDIENCE, "token_type": "PKI"}).to_string(),
        ),
        (
            "go-field-case",
            r#"{"Audience":"x","TOKEN_TYPE":"OIDC","nonces":null}"#.to_owned(),
        ),
        (
            "unknown-field",
            r#"{"audience":"x","token_type":"OIDC","extra":1}"#.to_owned(),
        ),
    ] {
        seed("launcher_request", name, body.as_bytes());
    }

    seed("verdict", "allow", &[1, 0, 1, 1, b'/', 1, b'm', 0]);
    seed(
        "verdict",
        "deny-with-role",
        &[
            0, 0, 2, 1, 2, b'/', b'a', 0, 1, b'x', 1, 4, b'r', b'o', b'l', b'e',
        ],
    );
    seed("producers", "rust-component", &producers_module());
}

/// A core module whose only section is `producers`: language Rust, processed-by rustc.
fn producers_module() -> Vec<u8> {
    fn name(text: &str, out: &mut Vec<u8>) {
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    }
    let mut body = Vec::new();
    name("producers", &mut body);
    body.push(2);
    for (field, value, version) in [
        ("language", "Rust", ""),
        ("processed-by", "rustc", "1.89.0"),
    ] {
        name(field, &mut body);
        body.push(1);
        name(value, &mut body);
        name(version, &mut body);
    }
    let mut module = b"\0asm\x01\0\0\0".to_vec();
    module.push(0);
    module.push(body.len() as u8);
    module.extend(body);
    module
}

/// CRC32C (Castagnoli), bitwise: what KMS puts in `plaintextCrc32c`.
fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
