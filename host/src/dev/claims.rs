//! Production-shaped claims for the dev launcher.

use serde_json::{json, Map, Value};

/// What the dev launcher's tokens claim (besides `iss`, `aud`, `iat`, `nbf`, `exp` and
/// `eat_nonce`, which it fills in for every token).
#[derive(Debug, Clone, PartialEq)]
pub enum DevClaims {
    /// The production-shaped defaults with this JSON merge patch applied (`null` removes a
    /// claim): `{"dbgstat": "enabled"}` is a production token with one claim changed.
    Patch(Value),
    /// Exactly these claims: a real token's payload reproduces that token, debug images included
    /// (no production `support_attributes` creep in).
    Exactly(Value),
}

impl Default for DevClaims {
    fn default() -> Self {
        DevClaims::Patch(json!({}))
    }
}

impl DevClaims {
    /// The JSON object given, whichever way it is applied.
    pub fn json(&self) -> &Value {
        match self {
            DevClaims::Patch(value) | DevClaims::Exactly(value) => value,
        }
    }
}

/// Every claim a production Confidential Space token carries, with realistic values. The time
/// claims, `aud`, `iss` and `eat_nonce` are filled in per token.
pub fn production_claims() -> Value {
    json!({
        "sub": "https://www.googleapis.com/compute/v1/projects/operator-project/zones/us-central1-a/instances/workload-vm",
        "eat_profile": "https://cloud.google.com/confidential-computing/confidential-space/docs/reference/token-claims",
        "secboot": true,
        "oemid": 11129,
        "hwmodel": "GCP_AMD_SEV",
        "swname": "CONFIDENTIAL_SPACE",
        "swversion": ["260900"],
        "dbgstat": "disabled-since-boot",
        "submods": {
            "confidential_space": {
                "support_attributes": ["STABLE", "USABLE"],
                "monitoring_enabled": {"memory": false}
            },
            "container": {
                "image_reference": "us-docker.pkg.dev/operator-project/workloads/joint-analytics@sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646",
                "image_digest": "sha256:1447781b9a6fd0a09a6352c10efaffaf6a67d2d12940b56d00cb38c5b56ad646",
                "image_id": "sha256:9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b",
                "restart_policy": "Never",
                "args": ["/usr/local/bin/attestgate", "exec", "--config", "/etc/attestgate.toml", "--", "/app/analytics"],
                "env": {
                    "HOSTNAME": "workload-vm",
                    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
                }
            },
            "gce": {
                "zone": "us-central1-a",
                "project_id": "operator-project",
                "project_number": "123456789012",
                "instance_name": "workload-vm",
                "instance_id": "5012345678901234567"
            }
        },
        "google_service_accounts": ["operator-svc-account@operator-project.iam.gserviceaccount.com"]
    })
}

/// Merges `overrides` into `base` recursively (RFC 7386 JSON merge patch): objects merge key by
/// key, `null` removes a claim, anything else replaces it.
pub fn merge_patch(base: &mut Value, overrides: &Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(patch)) => merge_objects(base, patch),
        (base, patch) => *base = patch.clone(),
    }
}

fn merge_objects(base: &mut Map<String, Value>, patch: &Map<String, Value>) {
    for (key, value) in patch {
        if value.is_null() {
            base.remove(key);
        } else if let (Some(existing @ Value::Object(_)), Value::Object(_)) =
            (base.get_mut(key), value)
        {
            merge_patch(existing, value);
        } else {
            base.insert(key.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_removes_and_objects_merge() {
        let mut claims = production_claims();
        merge_patch(
            &mut claims,
            &json!({"dbgstat": "enabled", "submods": {"confidential_space": {"support_attributes": null}}}),
        );
        assert_eq!(claims["dbgstat"], "enabled");
        assert!(claims["submods"]["confidential_space"]
            .get("support_attributes")
            .is_none());
        assert_eq!(claims["submods"]["gce"]["project_id"], "operator-project");
    }
}
