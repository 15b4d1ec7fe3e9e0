//! Lenient access to Confidential Space claims.
//!
//! Claims differ between image versions and between debug and production images: any claim may be
//! missing, `null`, or of an unexpected type. Every accessor here returns `None` or an empty list in
//! those cases instead of failing, and [`Claims::pointer`] reaches any claim by JSON pointer.

use serde_json::Value;

/// `dbgstat` of a production image.
pub const PRODUCTION_DBGSTAT: &str = "disabled-since-boot";

/// One entry of `submods.container.image_signatures`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSignature<'a> {
    pub key_id: Option<&'a str>,
    pub signature_algorithm: Option<&'a str>,
}

/// A verified token's payload.
#[derive(Debug, Clone)]
pub struct Claims {
    raw: Value,
}

impl Claims {
    /// Parses the payload JSON the host passes in. Only a payload that is not a JSON object fails.
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: Value =
            serde_json::from_str(json).map_err(|e| format!("claims are not valid JSON: {e}"))?;
        if !raw.is_object() {
            return Err("claims are not a JSON object".into());
        }
        Ok(Claims { raw })
    }

    /// The whole payload.
    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// A claim by JSON pointer (`/submods/gce/project_id`) or, without a leading `/`, by top-level
    /// name (`hwmodel`), as Vault's `bound_claims` keys work.
    pub fn pointer(&self, key: &str) -> Option<&Value> {
        let value = if key.starts_with('/') {
            self.raw.pointer(key)
        } else {
            self.raw.get(key)
        }?;
        (!value.is_null()).then_some(value)
    }

    /// A string claim.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.pointer(key)?.as_str()
    }

    /// A claim that may be a string or a list of strings, as a list.
    pub fn strings(&self, key: &str) -> Vec<&str> {
        match self.pointer(key) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        }
    }

    /// A number claim in whole seconds.
    pub fn seconds(&self, key: &str) -> Option<i64> {
        let number = self.pointer(key)?;
        number
            .as_i64()
            .or_else(|| number.as_f64().map(|f| f as i64))
    }

    pub fn issuer(&self) -> Option<&str> {
        self.str("iss")
    }

    pub fn subject(&self) -> Option<&str> {
        self.str("sub")
    }

    pub fn audiences(&self) -> Vec<&str> {
        self.strings("aud")
    }

    pub fn nonces(&self) -> Vec<&str> {
        self.strings("eat_nonce")
    }

    pub fn hwmodel(&self) -> Option<&str> {
        self.str("hwmodel")
    }

    pub fn swname(&self) -> Option<&str> {
        self.str("swname")
    }

    pub fn swversion(&self) -> Vec<&str> {
        self.strings("swversion")
    }

    pub fn dbgstat(&self) -> Option<&str> {
        self.str("dbgstat")
    }

    /// A production image: debugging disabled since boot.
    pub fn is_production(&self) -> bool {
        self.dbgstat() == Some(PRODUCTION_DBGSTAT)
    }

    /// `None` when absent, which is what debug images send.
    pub fn support_attributes(&self) -> Option<Vec<&str>> {
        self.pointer("/submods/confidential_space/support_attributes")?;
        Some(self.strings("/submods/confidential_space/support_attributes"))
    }

    pub fn memory_monitoring_enabled(&self) -> Option<bool> {
        self.pointer("/submods/confidential_space/monitoring_enabled/memory")?
            .as_bool()
    }

    pub fn image_digest(&self) -> Option<&str> {
        self.str("/submods/container/image_digest")
    }

    pub fn image_reference(&self) -> Option<&str> {
        self.str("/submods/container/image_reference")
    }

    pub fn image_signatures(&self) -> Vec<ImageSignature<'_>> {
        match self.pointer("/submods/container/image_signatures") {
            Some(Value::Array(items)) => items
                .iter()
                .map(|s| ImageSignature {
                    key_id: s.get("key_id").and_then(Value::as_str),
                    signature_algorithm: s.get("signature_algorithm").and_then(Value::as_str),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    pub fn project_id(&self) -> Option<&str> {
        self.str("/submods/gce/project_id")
    }

    pub fn service_accounts(&self) -> Vec<&str> {
        self.strings("google_service_accounts")
    }

    /// The TDX TCB status; `tdx` is an object in real tokens and an array in the docs.
    pub fn tdx_tcb_status(&self) -> Option<&str> {
        match self.pointer("tdx")? {
            Value::Array(items) => items.first()?.get("gcp_attester_tcb_status")?.as_str(),
            object => object.get("gcp_attester_tcb_status")?.as_str(),
        }
    }
}
