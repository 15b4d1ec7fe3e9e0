//! What several benchmarks share: the three plugins of the hot path (`confidential-space`,
//! `bound-claims`, `cel-role`) configured to allow the dev launcher's production claims, a token
//! signer with its verifier, and the resident set.

use attestgate::attestation::{JwksCache, KeySource, Verifier, VerifyPolicy, GOOGLE_ISSUER};
use attestgate::dev::{jwks, merge_patch, production_claims, SigningKey};
use attestgate::plugin::{
    CollaboratorPolicy, EngineOptions, LimitOverrides, PluginEngine, PluginSpec,
};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

pub const AUDIENCE: &str = "https://vault.bank-a.example";

/// A plugin built by `(cd plugins && cargo build --release)`, loaded for collaborator `name`.
pub fn plugin(engine: &PluginEngine, name: &str, file: &str, config: Value) -> CollaboratorPolicy {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/plugins/wasm32-wasip2/release"
    ))
    .join(file);
    let sha256 = attestgate::plugin::file_sha256(&path)
        .expect("build the plugins first: (cd plugins && cargo build --release)");
    engine
        .load(&PluginSpec {
            collaborator: name.into(),
            audience: None,
            path,
            sha256,
            precompiled: None,
            config,
            vault_role: Some(name.into()),
            limits: LimitOverrides::default(),
        })
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

pub fn read_json(relative: &str) -> Value {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join(relative);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The hot path's three plugins, each allowing the dev launcher's production claims.
pub fn three_policies(engine: &PluginEngine) -> [CollaboratorPolicy; 3] {
    let digest = production_claims()["submods"]["container"]["image_digest"].clone();
    let mut role = read_json("examples/roles/seed-role-corrected.json");
    role["bound_audiences"] = json!([AUDIENCE]);
    // The example CEL role, bound to the dev launcher's image and service account.
    let cel = read_json("examples/cel/confidential-space-role.json")
        .to_string()
        .replace(
            "sha256:3c5e0d8a6b1f4e2d9c7a8b6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d",
            digest.as_str().unwrap(),
        )
        .replace(
            "workload-sa@operator-project.iam.gserviceaccount.com",
            "operator-svc-account@operator-project.iam.gserviceaccount.com",
        );
    [
        plugin(
            engine,
            "bank-a",
            "confidential_space.wasm",
            json!({"audience": AUDIENCE, "image_digests": [digest], "projects": ["operator-project"]}),
        ),
        plugin(engine, "bank-b", "bound_claims.wasm", role),
        plugin(
            engine,
            "bank-c",
            "cel_role.wasm",
            serde_json::from_str(&cel).unwrap(),
        ),
    ]
}

pub fn new_engine() -> PluginEngine {
    PluginEngine::new(EngineOptions::default()).unwrap()
}

/// An issuer key and a verifier that trusts only it.
pub fn signer_and_verifier() -> (SigningKey, Verifier) {
    let key = SigningKey::generate().unwrap();
    let keys = JwksCache::new(
        KeySource::Inline(jwks([&key]).to_string()),
        Default::default(),
    )
    .unwrap();
    (key, Verifier::new(keys, VerifyPolicy::new(GOOGLE_ISSUER)))
}

/// A production token for [`AUDIENCE`], valid from `now` for an hour, made distinct by `nonce`.
pub fn token(key: &SigningKey, now: i64, nonce: &str) -> String {
    let mut claims = production_claims();
    merge_patch(
        &mut claims,
        &json!({"iss": GOOGLE_ISSUER, "aud": AUDIENCE, "iat": now, "nbf": now, "exp": now + 3600,
                "eat_nonce": nonce}),
    );
    key.sign(Map::new(), &claims).unwrap()
}

/// The resident set, in KiB, from /proc.
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}
