//! The `confidential-space` plugin's strict rules in plain Rust on the host's claims model: the
//! floor the benchmarks compare plugins with.

use attestgate::attestation::Claims;
use serde_json::Value;

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
