//! The CEL role JSON, as a collaborator writes it to `auth/<mount>/cel/role/<name>` or reads it
//! back. Only the program and the audiences decide a login; the rest is accepted so that a role
//! read back from OpenBao can be pasted unchanged.

use serde::Deserialize;
use serde_json::Value;

use crate::timing::Leeways;

/// One named step of the program, evaluated in order before the expression.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    pub name: String,
    pub expression: String,
}

/// `cel_program`: variables, then the main expression.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CelProgram {
    #[serde(default)]
    pub variables: Vec<Variable>,
    pub expression: String,
}

/// A CEL role. The fields OpenBao shows when the role is read back are accepted; unknown ones are
/// logged at load (OpenBao ignores them when the role is written).
#[derive(Debug, Clone, Deserialize)]
pub struct CelRole {
    pub cel_program: CelProgram,
    #[serde(default, deserialize_with = "string_or_list")]
    pub bound_audiences: Vec<String>,
    /// Present in a role read back from OpenBao: the name its messages quote. OpenBao lowercases
    /// role names.
    pub name: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// The keys of a role read back from OpenBao besides the ones modelled above.
pub const READ_BACK_FIELDS: &[&str] = &[
    "message",
    "clock_skew_leeway",
    "expiration_leeway",
    "not_before_leeway",
];

/// OpenBao takes a list field as a JSON list or as one comma-separated string.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s
            .split(',')
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect()),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => Ok(s),
                other => Err(serde::de::Error::custom(format!(
                    "bound_audiences holds {other}, not a string"
                ))),
            })
            .collect(),
        Value::Null => Ok(Vec::new()),
        other => Err(serde::de::Error::custom(format!(
            "bound_audiences is {other}, not a list of strings"
        ))),
    }
}

impl CelRole {
    /// The role's leeways: as stored (OpenBao writes 60, 150 and 150 when a CEL role is created),
    /// or OpenBao's defaults where the file leaves them out.
    pub fn leeways(&self) -> Leeways {
        let read = |key: &str| crate::jwt::seconds(self.other.get(key)).unwrap_or(0);
        Leeways {
            clock_skew: read("clock_skew_leeway"),
            expiration: read("expiration_leeway"),
            not_before: read("not_before_leeway"),
        }
    }

    /// The name OpenBao's messages quote, lowercased as OpenBao stores it: the role's own `name`
    /// (the plugin then logs in with it), else the role the host logs in with (the
    /// collaborator's configured `role`), else the collaborator's name.
    pub fn display_name(&self, vault_role: Option<&str>, collaborator: &str) -> String {
        self.name
            .as_deref()
            .or(vault_role)
            .unwrap_or(collaborator)
            .to_lowercase()
    }
}
