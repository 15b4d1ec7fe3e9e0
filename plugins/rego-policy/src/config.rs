//! The plugin's configuration, typed: every shape mistake (an unknown key, both or neither of
//! `policy` and `modules`, an empty audience, a package that is not a Rego path) is refused while
//! the configuration is parsed, so it surfaces when the host loads the plugin, not at the first token.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The package whose rules are the entry points when the configuration names none.
pub const DEFAULT_PACKAGE: &str = "attestgate";

/// The module name a single `policy` text is loaded under; Rego errors cite it as
/// `policy.rego:LINE:COL`.
pub const POLICY_MODULE_NAME: &str = "policy.rego";

/// A collaborator's `plugin_config`, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    audience: String,
    policy: Option<String>,
    modules: Option<Vec<Module>>,
    #[serde(default)]
    package: Option<String>,
    #[serde(default)]
    data: Option<Map<String, Value>>,
    #[serde(default)]
    rego_version: RegoVersion,
}

/// One Rego module: a file name (cited in error locations) and its text.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    /// Cited in error locations (`name:LINE:COL`); unique within the configuration.
    pub name: String,
    /// The module's Rego source.
    pub text: String,
}

/// Which Rego syntax the modules are written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegoVersion {
    /// Rego v1 (OPA 1.0 and later): `allow if { ... }`, `deny contains msg if { ... }`.
    #[default]
    V1,
    /// Pre-1.0 syntax (`allow { ... }`, `deny[msg] { ... }`), as older OPA and Trustee KBS
    /// policies are written. A module that says `import rego.v1` is still read as v1.
    V0,
}

/// Where the policy's text comes from: exactly one of the two keys.
#[derive(Debug, Clone)]
pub enum Source {
    /// `policy`: one module, loaded as [`POLICY_MODULE_NAME`].
    Policy(String),
    /// `modules`: several named modules.
    Modules(Vec<Module>),
}

/// A collaborator's configuration, checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "Written")]
pub struct Config {
    /// The token's audience: this collaborator's own (typically its Vault's address).
    pub audience: String,
    /// The Rego modules.
    pub source: Source,
    /// The entry-point package's path, split at the dots: `["attestgate"]` by default.
    pub package: Vec<String>,
    /// Loaded as OPA's `data` document, beside the rules.
    pub data: Map<String, Value>,
    /// The syntax the modules are written in.
    pub rego_version: RegoVersion,
}

impl Config {
    /// Every module as (name, text), in the order written.
    pub fn modules(&self) -> Vec<(&str, &str)> {
        match &self.source {
            Source::Policy(text) => vec![(POLICY_MODULE_NAME, text.as_str())],
            Source::Modules(modules) => modules
                .iter()
                .map(|m| (m.name.as_str(), m.text.as_str()))
                .collect(),
        }
    }

    /// The full path of the entry-point rule `rule`, such as `data.attestgate.allow`.
    pub fn rule_path(&self, rule: &str) -> String {
        format!("data.{}.{rule}", self.package.join("."))
    }

    /// The package as written in a module's `package` line, such as `attestgate`.
    pub fn package_name(&self) -> String {
        self.package.join(".")
    }
}

impl TryFrom<Written> for Config {
    type Error = String;

    fn try_from(written: Written) -> Result<Self, String> {
        if written.audience.trim().is_empty() {
            return Err("\"audience\" must be this collaborator's own audience (typically its Vault's address), not empty".into());
        }
        let source = match (written.policy, written.modules) {
            (Some(text), None) => Source::Policy(text),
            (None, Some(modules)) => Source::Modules(check_modules(modules)?),
            (Some(_), Some(_)) => {
                return Err("give the Rego policy as either \"policy\" (one module's text) or \"modules\" (a list of {\"name\", \"text\"}), not both".into())
            }
            (None, None) => {
                return Err("no Rego policy: set \"policy\" to one module's text, or \"modules\" to a list of {\"name\": \"x.rego\", \"text\": \"...\"}".into())
            }
        };
        let package = parse_package(written.package.as_deref().unwrap_or(DEFAULT_PACKAGE))?;
        let data = written.data.unwrap_or_default();
        if shadows_package(&data, &package) {
            return Err(format!(
                "\"data\" holds a value at data.{0}, where the policy's rules live: a value there could stand in for data.{0}.allow; keep lists and settings under another key",
                package.join(".")
            ));
        }
        Ok(Config {
            audience: written.audience,
            source,
            package,
            data,
            rego_version: written.rego_version,
        })
    }
}

fn check_modules(modules: Vec<Module>) -> Result<Vec<Module>, String> {
    if modules.is_empty() {
        return Err(
            "\"modules\" is empty: list at least one {\"name\": \"x.rego\", \"text\": \"...\"}"
                .into(),
        );
    }
    let mut names = BTreeSet::new();
    for (index, module) in modules.iter().enumerate() {
        if module.name.trim().is_empty() {
            return Err(format!(
                "modules[{index}] has an empty \"name\"; errors cite it as name:line:col, so give it one such as \"rules.rego\""
            ));
        }
        if !names.insert(module.name.as_str()) {
            return Err(format!(
                "two modules are named {:?}; names must be unique so that an error location points at one of them",
                module.name
            ));
        }
    }
    Ok(modules)
}

/// `attestgate` or `acme.attestgate` into its components; each must be a plain Rego identifier.
fn parse_package(package: &str) -> Result<Vec<String>, String> {
    if let Some(rest) = package.strip_prefix("data.") {
        return Err(format!(
            "\"package\" is the name on the modules' `package` line, without \"data.\": write {rest:?}, not {package:?}"
        ));
    }
    let components: Vec<String> = package.split('.').map(str::to_owned).collect();
    let is_identifier = |part: &str| {
        let mut chars = part.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if let Some(bad) = components.iter().find(|part| !is_identifier(part)) {
        return Err(format!(
            "\"package\" {package:?} is not a Rego package path: {bad:?} is not an identifier (letters, digits and _, not starting with a digit)"
        ));
    }
    Ok(components)
}

/// Whether `data` has a value at the package's whole path (so data, not rules, would answer there).
fn shadows_package(data: &Map<String, Value>, package: &[String]) -> bool {
    let mut node = data;
    for (depth, part) in package.iter().enumerate() {
        match node.get(part) {
            None => return false,
            Some(Value::Object(next)) if depth + 1 < package.len() => node = next,
            Some(_) => return true,
        }
    }
    // Unreachable with a non-empty package; an empty one would be everything.
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(config: Value) -> Result<Config, String> {
        serde_json::from_value(config).map_err(|e| e.to_string())
    }

    #[test]
    fn the_package_defaults_to_attestgate() {
        let config = parse(json!({"audience": "a", "policy": "package attestgate"})).unwrap();
        assert_eq!(config.rule_path("allow"), "data.attestgate.allow");
        assert_eq!(
            config.modules(),
            vec![(POLICY_MODULE_NAME, "package attestgate")]
        );
        assert_eq!(config.rego_version, RegoVersion::V1);
    }

    #[test]
    fn packages_must_be_rego_paths() {
        let ok = parse(json!({"audience": "a", "policy": "", "package": "acme.gate_2"})).unwrap();
        assert_eq!(ok.rule_path("deny"), "data.acme.gate_2.deny");
        for (package, expected) in [
            ("data.attestgate", "without \"data.\": write \"attestgate\""),
            ("acme..gate", "\"\" is not an identifier"),
            ("1gate", "\"1gate\" is not an identifier"),
            ("gate-x", "\"gate-x\" is not an identifier"),
            ("", "\"\" is not an identifier"),
        ] {
            let err =
                parse(json!({"audience": "a", "policy": "", "package": package})).unwrap_err();
            assert!(err.contains(expected), "{package}: {err}");
        }
    }

    #[test]
    fn data_may_not_sit_where_the_rules_are() {
        let err =
            parse(json!({"audience": "a", "policy": "", "data": {"attestgate": {"allow": true}}}))
                .unwrap_err();
        assert!(
            err.contains("a value there could stand in for data.attestgate.allow"),
            "{err}"
        );
        let err = parse(json!({"audience": "a", "policy": "", "package": "acme.gate", "data": {"acme": {"gate": 1}}}))
            .unwrap_err();
        assert!(err.contains("data.acme.gate"), "{err}");
        // A sibling key of the package is fine.
        parse(json!({"audience": "a", "policy": "", "package": "acme.gate", "data": {"acme": {"lists": []}}}))
            .unwrap();
    }
}
