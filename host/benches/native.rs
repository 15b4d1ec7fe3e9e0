//! The `confidential-space` plugin's strict rules in plain Rust on the host's claims model: the
//! floor the benchmarks compare plugins with.

use attestgate::attestation::Claims;
use serde_json::{json, Value};

const AUDIENCE: &str = "https://vault.bank-a.example";

/// The values the rules allow that differ between benchmarks.
pub struct Allowed<'a> {
    pub image_digest: &'a str,
    pub service_account: &'a str,
}

/// Production image, STABLE, the hardware, Confidential Space, the image, the project, the
/// service account, a minimum swversion, an up-to-date TDX TCB and memory monitoring off:
/// parsing the JSON included.
pub fn strict_checks(json: &str, allowed: &Allowed<'_>) -> bool {
    let raw: serde_json::Map<String, Value> = serde_json::from_str(json).unwrap();
    let c = Claims::from_payload(raw);
    let one = |found: &Option<String>, allowed: &[&str]| {
        found.as_deref().is_some_and(|f| allowed.contains(&f))
    };
    c.is_production()
        && c.confidential_space
            .support_attributes
            .as_ref()
            .is_some_and(|a| a.iter().any(|s| s == "STABLE"))
        && one(&c.hwmodel, &["GCP_AMD_SEV", "GCP_INTEL_TDX"])
        && one(&c.swname, &["CONFIDENTIAL_SPACE"])
        && one(&c.container.image_digest, &[allowed.image_digest])
        && one(&c.gce.project_id, &["operator-project"])
        && c.google_service_accounts
            .iter()
            .any(|f| f == allowed.service_account)
        && c.swversion
            .iter()
            .filter_map(|v| v.parse::<u64>().ok())
            .any(|v| v >= 260600)
        && (c.hwmodel.as_deref() != Some("GCP_INTEL_TDX")
            || c.tdx
                .iter()
                .any(|t| t.tcb_status.as_deref() == Some("UpToDate")))
        && c.confidential_space.memory_monitoring_enabled == Some(false)
}

/// The allowed values of [`config`].
pub const ALLOWED: Allowed<'static> = Allowed {
    image_digest: "sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646",
    service_account: "operator-svc-account@operator-project.iam.gserviceaccount.com",
};

/// The `confidential-space` plugin's configuration for the same nine rules.
pub fn config() -> Value {
    json!({
        "audience": AUDIENCE,
        "hwmodels": ["GCP_AMD_SEV", "GCP_INTEL_TDX"],
        "swnames": ["CONFIDENTIAL_SPACE"],
        "image_digests": ["sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646"],
        "projects": ["operator-project"],
        "service_accounts": ["operator-svc-account@operator-project.iam.gserviceaccount.com"],
        "min_swversion": "260600",
        "require_tdx_uptodate": true,
        "require_memory_monitoring_disabled": true
    })
}

/// A production claims document of about 2 KB that passes them.
pub fn claims_json() -> String {
    let mut claims = attestgate::dev::production_claims();
    attestgate::dev::merge_patch(
        &mut claims,
        &json!({"iss": attestgate::attestation::GOOGLE_ISSUER, "aud": AUDIENCE, "iat": 1_800_000_000, "nbf": 1_800_000_000,
                "exp": 1_800_003_600, "eat_nonce": ["0123456789abcdef0123", "fedcba9876543210fedc"],
                "submods": {"container": {
                    "image_signatures": [{"key_id": "projects/operator-project/locations/global/keyRings/signing/cryptoKeys/release/cryptoKeyVersions/1",
                        "signature": "MEUCIQDZ7e6x2b3JkYXRhIGZvciBhIHNpZ25hdHVyZSBvdmVyIHRoZSBpbWFnZSBkaWdlc3QuAiBhbm90aGVyIGhhbGYgb2YgdGhlIHNpZ25hdHVyZSBoZXJl",
                        "signature_algorithm": "ECDSA_P256_SHA256"}],
                    "env": {"LANG": "C.UTF-8", "RUST_LOG": "info", "ANALYTICS_MODE": "batch", "OUTPUT_BUCKET": "gs://operator-project-results/joint-analytics"}}}}),
    );
    claims.to_string()
}
