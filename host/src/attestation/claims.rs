//! A typed, lenient view of Confidential Space claims.
//!
//! Real tokens differ between image versions and between debug and production images: a claim may
//! be missing, `null`, or of another type. The typed view therefore never fails; a claim it cannot
//! read is simply absent from it, and the raw JSON is always kept beside it for plugins.

use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `dbgstat` of an image that cannot be debugged.
pub const PRODUCTION_DBGSTAT: &str = "disabled-since-boot";

/// The claims of a Confidential Space token, as far as they could be read. Field names follow
/// Google's token reference; each says which claim it comes from.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Claims {
    /// `iss`: who issued the token.
    pub issuer: Option<String>,
    /// `sub`: the VM instance's resource URL.
    pub subject: Option<String>,
    /// `aud` may be a string or an array of strings (RFC 7519 §4.1.3).
    pub audiences: Vec<String>,
    /// `exp`, Unix seconds (a fraction is floored here; verification refuses one).
    pub expires_at: Option<i64>,
    /// `iat`, Unix seconds.
    pub issued_at: Option<i64>,
    /// `nbf`, Unix seconds.
    pub not_before: Option<i64>,
    /// `eat_nonce` is a string for one nonce and an array for several.
    pub nonces: Vec<String>,
    /// `eat_profile`: the URL of the claims profile.
    pub eat_profile: Option<String>,
    /// `secboot`: whether the VM booted with Secure Boot.
    pub secboot: Option<bool>,
    /// `oemid`: the hardware vendor's IANA enterprise number (Google: 11129).
    pub oemid: Option<u64>,
    /// `hwmodel`: the TEE technology, e.g. `GCP_AMD_SEV` or `GCP_INTEL_TDX`.
    pub hwmodel: Option<String>,
    /// `swname`: the software stack, `CONFIDENTIAL_SPACE`.
    pub swname: Option<String>,
    /// `swversion`: the Confidential Space image version(s).
    pub swversion: Vec<String>,
    /// `dbgstat`: [`PRODUCTION_DBGSTAT`] for an image that cannot be debugged.
    pub dbgstat: Option<String>,
    /// `google_service_accounts`: the service accounts the workload runs as.
    pub google_service_accounts: Vec<String>,
    /// `attester_tcb`: the attester's TCB levels.
    pub attester_tcb: Vec<String>,
    /// `tdx` is an object in observed tokens and an array in the docs; both become a list here.
    pub tdx: Vec<TdxClaims>,
    /// `submods.confidential_space`.
    pub confidential_space: ConfidentialSpaceClaims,
    /// `submods.container`: the workload container.
    pub container: ContainerClaims,
    /// `submods.gce`: the VM.
    pub gce: GceClaims,
    /// `submods.nvidia_gpu.cc_mode`: the GPU's confidential-computing mode, when there is one.
    pub nvidia_gpu_cc_mode: Option<String>,
    /// The whole payload as it arrived, including claims this model does not know.
    #[serde(skip)]
    pub raw: Map<String, Value>,
}

/// One entry of `tdx`: Intel TDX attester state.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct TdxClaims {
    /// `gcp_attester_tcb_status`, e.g. `UpToDate` or `OutOfDate`.
    pub tcb_status: Option<String>,
    /// `gcp_attester_tcb_date`: when that TCB level was released.
    pub tcb_date: Option<String>,
}

/// `submods.confidential_space`: what the Confidential Space image itself vouches for.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ConfidentialSpaceClaims {
    /// `None` when the claim is absent, which is what debug images send.
    pub support_attributes: Option<Vec<String>>,
    /// `monitoring_enabled.memory`: whether memory usage monitoring is on.
    pub memory_monitoring_enabled: Option<bool>,
}

/// `submods.container`: the workload container as the launcher ran it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ContainerClaims {
    /// `image_reference`: the image as the operator named it (a tag may move).
    pub image_reference: Option<String>,
    /// `image_digest`: `sha256:…` of the image manifest, which pins the workload.
    pub image_digest: Option<String>,
    /// `image_id`: `sha256:…` of the image configuration.
    pub image_id: Option<String>,
    /// `restart_policy`: `Never`, `Always` or `OnFailure`.
    pub restart_policy: Option<String>,
    /// `args`: the container's command line.
    pub args: Vec<String>,
    /// `env`: the container's environment variables (string values only).
    pub env: BTreeMap<String, String>,
    /// `image_signatures`: signatures of the image the launcher verified.
    pub image_signatures: Vec<ImageSignature>,
}

/// One entry of `image_signatures`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ImageSignature {
    /// `key_id`: the fingerprint of the verifying key.
    pub key_id: Option<String>,
    /// `signature`: the signature, base64.
    pub signature: Option<String>,
    /// `signature_algorithm`, e.g. `ECDSA_P256_SHA256`.
    pub signature_algorithm: Option<String>,
}

/// `submods.gce`: the VM the workload runs on.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct GceClaims {
    /// `zone`, e.g. `us-central1-a`.
    pub zone: Option<String>,
    /// `project_id`: the operator's project.
    pub project_id: Option<String>,
    /// `project_number`, as a string.
    pub project_number: Option<String>,
    /// `instance_name`.
    pub instance_name: Option<String>,
    /// `instance_id`, as a string.
    pub instance_id: Option<String>,
}

fn string(value: Option<&Value>) -> Option<String> {
    value?.as_str().map(str::to_owned)
}

/// A numeric identifier (`project_number`, `instance_id`): a string in the docs, but it could
/// plausibly arrive as a number; readable either way. Only these: a number is not an issuer or
/// a debug status (the plugin SDK, Vault and the fuzzed differential agree).
fn identifier(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        other => other.as_str().map(str::to_owned),
    }
}

fn string_list(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn seconds(value: Option<&Value>) -> Option<i64> {
    let number = value?.as_number()?;
    number
        .as_i64()
        .or_else(|| number.as_f64().map(|f| f.floor() as i64))
}

fn tdx(value: Option<&Value>) -> Vec<TdxClaims> {
    let one = |v: &Value| TdxClaims {
        tcb_status: string(v.get("gcp_attester_tcb_status")),
        tcb_date: string(v.get("gcp_attester_tcb_date")),
    };
    match value {
        Some(Value::Object(_)) => vec![one(value.unwrap_or(&Value::Null))],
        Some(Value::Array(items)) => items.iter().filter(|v| v.is_object()).map(one).collect(),
        _ => Vec::new(),
    }
}

impl Claims {
    /// Reads `raw` (a token's payload) leniently: claims that are absent or of an unexpected
    /// type are left empty, never an error.
    pub fn from_payload(raw: Map<String, Value>) -> Self {
        let get = |key: &str| raw.get(key);
        let submods = get("submods");
        let sub =
            |module: &str, key: &str| submods.and_then(|s| s.get(module)).and_then(|m| m.get(key));
        let cs_support = match sub("confidential_space", "support_attributes") {
            None | Some(Value::Null) => None,
            value => Some(string_list(value)),
        };
        let env = match sub("container", "env") {
            Some(Value::Object(map)) => map
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect(),
            _ => BTreeMap::new(),
        };
        let image_signatures = match sub("container", "image_signatures") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|s| ImageSignature {
                    key_id: string(s.get("key_id")),
                    signature: string(s.get("signature")),
                    signature_algorithm: string(s.get("signature_algorithm")),
                })
                .collect(),
            _ => Vec::new(),
        };
        Claims {
            issuer: string(get("iss")),
            subject: string(get("sub")),
            audiences: string_list(get("aud")),
            expires_at: seconds(get("exp")),
            issued_at: seconds(get("iat")),
            not_before: seconds(get("nbf")),
            nonces: string_list(get("eat_nonce")),
            eat_profile: string(get("eat_profile")),
            secboot: get("secboot").and_then(Value::as_bool),
            oemid: get("oemid").and_then(Value::as_u64),
            hwmodel: string(get("hwmodel")),
            swname: string(get("swname")),
            swversion: string_list(get("swversion")),
            dbgstat: string(get("dbgstat")),
            google_service_accounts: string_list(get("google_service_accounts")),
            attester_tcb: string_list(get("attester_tcb")),
            tdx: tdx(get("tdx")),
            confidential_space: ConfidentialSpaceClaims {
                support_attributes: cs_support,
                memory_monitoring_enabled: sub("confidential_space", "monitoring_enabled")
                    .and_then(|m| m.get("memory"))
                    .and_then(Value::as_bool),
            },
            container: ContainerClaims {
                image_reference: string(sub("container", "image_reference")),
                image_digest: string(sub("container", "image_digest")),
                image_id: string(sub("container", "image_id")),
                restart_policy: string(sub("container", "restart_policy")),
                args: string_list(sub("container", "args")),
                env,
                image_signatures,
            },
            gce: GceClaims {
                zone: string(sub("gce", "zone")),
                project_id: string(sub("gce", "project_id")),
                project_number: identifier(sub("gce", "project_number")),
                instance_name: string(sub("gce", "instance_name")),
                instance_id: identifier(sub("gce", "instance_id")),
            },
            nvidia_gpu_cc_mode: string(sub("nvidia_gpu", "cc_mode")),
            raw,
        }
    }

    /// Reads `json`, a payload already checked by the token parser, leniently as
    /// [`Claims::from_payload`] does. Text that is not a JSON object gives empty claims.
    pub fn from_json(json: &str) -> Self {
        Self::from_payload(serde_json::from_str(json).unwrap_or_default())
    }

    /// A production image: debugging disabled since boot.
    pub fn is_production(&self) -> bool {
        self.dbgstat.as_deref() == Some(PRODUCTION_DBGSTAT)
    }

    /// Looks a claim up by JSON pointer (RFC 6901), e.g. `/submods/container/image_digest`.
    pub fn pointer(&self, pointer: &str) -> Option<&Value> {
        if pointer.is_empty() {
            return None;
        }
        let mut parts = pointer.strip_prefix('/')?.splitn(2, '/');
        let first = parts.next()?.replace("~1", "/").replace("~0", "~");
        let top = self.raw.get(&first)?;
        match parts.next() {
            None => Some(top),
            Some(rest) => top.pointer(&format!("/{rest}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(value: Value) -> Claims {
        Claims::from_payload(value.as_object().cloned().unwrap())
    }

    #[test]
    fn accepts_both_shapes_of_nonce_and_tdx() {
        let one = claims(
            json!({"eat_nonce": "abcdefghijkl", "tdx": {"gcp_attester_tcb_status": "UpToDate"}}),
        );
        assert_eq!(one.nonces, vec!["abcdefghijkl"]);
        assert_eq!(one.tdx[0].tcb_status.as_deref(), Some("UpToDate"));
        let many = claims(
            json!({"eat_nonce": ["a", "b"], "tdx": [{"gcp_attester_tcb_status": "OutOfDate"}]}),
        );
        assert_eq!(many.nonces, vec!["a", "b"]);
        assert_eq!(many.tdx[0].tcb_status.as_deref(), Some("OutOfDate"));
    }

    #[test]
    fn missing_null_and_mistyped_claims_are_absent_not_errors() {
        let c = claims(json!({
            "hwmodel": null, "swversion": 7, "submods": {"container": {"cmd_override": null}},
            "future_claim": {"x": 1}
        }));
        assert_eq!(c.hwmodel, None);
        assert!(c.swversion.is_empty());
        assert_eq!(c.confidential_space.support_attributes, None);
        assert_eq!(c.pointer("/future_claim/x"), Some(&json!(1)));
        assert!(!c.is_production());
    }

    #[test]
    fn a_number_is_not_a_string_claim_except_a_numeric_identifier() {
        // Found by the `claims` fuzz target: the host read `"iss": 1800003540` as the issuer
        // "1800003540", where the plugin SDK (and Vault) see no issuer at all.
        let c = claims(json!({
            "iss": 1800003540, "hwmodel": 1, "dbgstat": 0,
            "submods": {"gce": {"project_number": 501234, "instance_id": "77"}}
        }));
        assert_eq!((c.issuer, c.hwmodel, c.dbgstat), (None, None, None));
        assert_eq!(c.gce.project_number.as_deref(), Some("501234"));
        assert_eq!(c.gce.instance_id.as_deref(), Some("77"));
    }
}
