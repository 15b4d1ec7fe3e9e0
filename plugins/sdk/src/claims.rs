//! Lenient access to Confidential Space claims.
//!
//! Claims differ between image versions and between debug and production images: any claim may be
//! missing, `null`, or of an unexpected type. Every accessor here returns `None` or an empty list in
//! those cases instead of failing, and [`Claims::pointer`] reaches any claim by JSON pointer.
//!
//! The well-known claims are read in one borrowing pass that skips everything else, which is much
//! cheaper inside a fresh WebAssembly instance than building a full JSON tree; the full tree is
//! built only when [`Claims::pointer`] is first used.

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;
use std::cell::OnceCell;
use std::fmt;

/// `dbgstat` of a production image.
pub const PRODUCTION_DBGSTAT: &str = "disabled-since-boot";

/// A claim value read without judging its type: strings and lists of strings are kept, other
/// shapes are remembered only as present.
#[derive(Debug, Clone, Default, PartialEq)]
enum Loose<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    List(Vec<Cow<'a, str>>),
    Bool(bool),
    Number(f64),
    Other,
}

impl<'a> Loose<'a> {
    fn str(&self) -> Option<&str> {
        match self {
            Loose::Str(s) => Some(s),
            _ => None,
        }
    }

    fn strings(&self) -> Vec<&str> {
        match self {
            Loose::Str(s) => vec![s.as_ref()],
            Loose::List(items) => items.iter().map(|s| s.as_ref()).collect(),
            _ => Vec::new(),
        }
    }

    fn is_present(&self) -> bool {
        !matches!(self, Loose::Absent)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LooseVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for LooseVisitor<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Owned(v)))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Loose::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Loose::Number(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Loose::Number(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Loose::Number(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Loose::Absent)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Loose<'a>>()? {
                    if let Loose::Str(text) = item {
                        items.push(text);
                    }
                }
                Ok(Loose::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        deserializer.deserialize_any(LooseVisitor(std::marker::PhantomData))
    }
}

/// An object of known shape `T`, or `T::default()` when the claim is missing or not an object.
/// A list (the documented shape of `tdx`) yields its first object.
#[derive(Debug, Clone, Default, PartialEq)]
struct Section<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Section<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SectionVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for SectionVisitor<T> {
            type Value = Section<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Section)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let first = seq.next_element::<Section<T>>()?.unwrap_or_default();
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(first)
            }
            fn visit_borrowed_str<E>(self, _: &'de str) -> Result<Self::Value, E> {
                Ok(Section::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Section::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Section::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Section::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Section::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Section::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Section::default())
            }
        }
        deserializer.deserialize_any(SectionVisitor(std::marker::PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Known<'a> {
    #[serde(borrow)]
    iss: Loose<'a>,
    #[serde(borrow)]
    sub: Loose<'a>,
    #[serde(borrow)]
    aud: Loose<'a>,
    #[serde(borrow)]
    exp: Loose<'a>,
    #[serde(borrow)]
    iat: Loose<'a>,
    #[serde(borrow)]
    eat_nonce: Loose<'a>,
    #[serde(borrow)]
    hwmodel: Loose<'a>,
    #[serde(borrow)]
    swname: Loose<'a>,
    #[serde(borrow)]
    swversion: Loose<'a>,
    #[serde(borrow)]
    dbgstat: Loose<'a>,
    #[serde(borrow)]
    google_service_accounts: Loose<'a>,
    #[serde(borrow)]
    tdx: Section<Tdx<'a>>,
    #[serde(borrow)]
    submods: Section<Submods<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Tdx<'a> {
    #[serde(borrow)]
    gcp_attester_tcb_status: Loose<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Submods<'a> {
    #[serde(borrow)]
    confidential_space: Section<ConfidentialSpace<'a>>,
    #[serde(borrow)]
    container: Section<Container<'a>>,
    #[serde(borrow)]
    gce: Section<Gce<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConfidentialSpace<'a> {
    #[serde(borrow)]
    support_attributes: Loose<'a>,
    monitoring_enabled: Section<Monitoring>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Monitoring {
    memory: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Container<'a> {
    #[serde(borrow)]
    image_reference: Loose<'a>,
    #[serde(borrow)]
    image_digest: Loose<'a>,
    #[serde(borrow)]
    image_signatures: Vec<Section<SignatureEntry<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SignatureEntry<'a> {
    #[serde(borrow)]
    key_id: Loose<'a>,
    #[serde(borrow)]
    signature_algorithm: Loose<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Gce<'a> {
    #[serde(borrow)]
    project_id: Loose<'a>,
}

/// One entry of `submods.container.image_signatures`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSignature<'a> {
    pub key_id: Option<&'a str>,
    pub signature_algorithm: Option<&'a str>,
}

/// A verified token's payload.
pub struct Claims<'a> {
    json: &'a str,
    known: Known<'a>,
    tree: OnceCell<Option<Value>>,
}

impl<'a> Claims<'a> {
    /// Reads the payload JSON the host passes in. Only a payload that is not a JSON object fails.
    pub fn parse(json: &'a str) -> Result<Self, String> {
        if !json.trim_start().starts_with('{') {
            return Err("claims are not a JSON object".into());
        }
        let known: Known<'a> =
            serde_json::from_str(json).map_err(|e| format!("claims are not valid JSON: {e}"))?;
        Ok(Claims {
            json,
            known,
            tree: OnceCell::new(),
        })
    }

    /// The whole payload as a JSON tree (built on first use).
    pub fn raw(&self) -> &Value {
        static EMPTY: Value = Value::Null;
        self.tree
            .get_or_init(|| serde_json::from_str(self.json).ok())
            .as_ref()
            .unwrap_or(&EMPTY)
    }

    /// A claim by JSON pointer (`/submods/gce/project_id`) or, without a leading `/`, by top-level
    /// name (`hwmodel`), as Vault's `bound_claims` keys work. `null` counts as missing.
    pub fn pointer(&self, key: &str) -> Option<&Value> {
        let raw = self.raw();
        let value = if key.starts_with('/') {
            raw.pointer(key)
        } else {
            raw.get(key)
        }?;
        (!value.is_null()).then_some(value)
    }

    /// A string claim, by pointer or top-level name.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.pointer(key)?.as_str()
    }

    /// A claim that may be a string or a list of strings, as a list.
    pub fn strings(&self, key: &str) -> Vec<&str> {
        match self.well_known(key) {
            Some(loose) => loose.strings(),
            None => match self.pointer(key) {
                Some(Value::String(s)) => vec![s.as_str()],
                Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            },
        }
    }

    /// The claims read in the fast pass, by the keys rules use for them.
    fn well_known(&self, key: &str) -> Option<&Loose<'a>> {
        let k = &self.known;
        let submods = &k.submods.0;
        Some(match key.trim_start_matches('/') {
            "iss" => &k.iss,
            "sub" => &k.sub,
            "aud" => &k.aud,
            "eat_nonce" => &k.eat_nonce,
            "hwmodel" => &k.hwmodel,
            "swname" => &k.swname,
            "swversion" => &k.swversion,
            "dbgstat" => &k.dbgstat,
            "google_service_accounts" => &k.google_service_accounts,
            "submods/confidential_space/support_attributes" => {
                &submods.confidential_space.0.support_attributes
            }
            "submods/container/image_digest" => &submods.container.0.image_digest,
            "submods/container/image_reference" => &submods.container.0.image_reference,
            "submods/gce/project_id" => &submods.gce.0.project_id,
            _ => return None,
        })
    }

    pub fn issuer(&self) -> Option<&str> {
        self.known.iss.str()
    }

    pub fn subject(&self) -> Option<&str> {
        self.known.sub.str()
    }

    pub fn audiences(&self) -> Vec<&str> {
        self.known.aud.strings()
    }

    pub fn expires_at(&self) -> Option<i64> {
        match self.known.exp {
            Loose::Number(n) => Some(n as i64),
            _ => None,
        }
    }

    pub fn issued_at(&self) -> Option<i64> {
        match self.known.iat {
            Loose::Number(n) => Some(n as i64),
            _ => None,
        }
    }

    pub fn nonces(&self) -> Vec<&str> {
        self.known.eat_nonce.strings()
    }

    pub fn hwmodel(&self) -> Option<&str> {
        self.known.hwmodel.str()
    }

    pub fn swname(&self) -> Option<&str> {
        self.known.swname.str()
    }

    pub fn swversion(&self) -> Vec<&str> {
        self.known.swversion.strings()
    }

    pub fn dbgstat(&self) -> Option<&str> {
        self.known.dbgstat.str()
    }

    /// A production image: debugging disabled since boot.
    pub fn is_production(&self) -> bool {
        self.dbgstat() == Some(PRODUCTION_DBGSTAT)
    }

    /// `None` when absent, which is what debug images send.
    pub fn support_attributes(&self) -> Option<Vec<&str>> {
        let attributes = &self.known.submods.0.confidential_space.0.support_attributes;
        attributes.is_present().then(|| attributes.strings())
    }

    pub fn memory_monitoring_enabled(&self) -> Option<bool> {
        self.known
            .submods
            .0
            .confidential_space
            .0
            .monitoring_enabled
            .0
            .memory
    }

    pub fn image_digest(&self) -> Option<&str> {
        self.known.submods.0.container.0.image_digest.str()
    }

    pub fn image_reference(&self) -> Option<&str> {
        self.known.submods.0.container.0.image_reference.str()
    }

    pub fn image_signatures(&self) -> Vec<ImageSignature<'_>> {
        self.known
            .submods
            .0
            .container
            .0
            .image_signatures
            .iter()
            .map(|s| ImageSignature {
                key_id: s.0.key_id.str(),
                signature_algorithm: s.0.signature_algorithm.str(),
            })
            .collect()
    }

    pub fn project_id(&self) -> Option<&str> {
        self.known.submods.0.gce.0.project_id.str()
    }

    pub fn service_accounts(&self) -> Vec<&str> {
        self.known.google_service_accounts.strings()
    }

    /// The TDX TCB status; `tdx` is an object in real tokens and an array in the docs.
    pub fn tdx_tcb_status(&self) -> Option<&str> {
        self.known.tdx.0.gcp_attester_tcb_status.str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_claims_leniently() {
        let json = r#"{"hwmodel":"GCP_INTEL_TDX","swversion":["260900"],"aud":"a","eat_nonce":["n1","n2"],
            "tdx":[{"gcp_attester_tcb_status":"UpToDate"}],"submods":{"confidential_space":null,
            "container":{"image_signatures":[{"key_id":"k1"},7],"image_digest":5},"gce":"oops"},"extra":{"x":[1]}}"#;
        let claims = Claims::parse(json).unwrap();
        assert_eq!(claims.hwmodel(), Some("GCP_INTEL_TDX"));
        assert_eq!(claims.nonces(), vec!["n1", "n2"]);
        assert_eq!(claims.tdx_tcb_status(), Some("UpToDate"));
        assert_eq!(claims.support_attributes(), None);
        assert_eq!(claims.image_digest(), None);
        assert_eq!(claims.project_id(), None);
        assert_eq!(claims.image_signatures()[0].key_id, Some("k1"));
        assert_eq!(claims.pointer("/extra/x/0"), Some(&Value::from(1)));
        assert_eq!(
            claims.strings("/submods/container/image_digest"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn escaped_strings_are_unescaped() {
        let claims = Claims::parse(r#"{"sub":"a\/b \u00e9"}"#).unwrap();
        assert_eq!(claims.subject(), Some("a/b é"));
    }
}
