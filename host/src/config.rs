//! The attestgate configuration file (TOML): what to attest with, and for each collaborator, its
//! plugin, its Vault and the secrets it releases.
//!
//! Every problem is reported at once, each naming the file and the key. Unknown keys are errors
//! (collected with `serde_ignored` rather than `deny_unknown_fields`, so that all are reported):
//! a misspelled key must never be silently ignored the way Vault ignores `claims_mappings`.
//! Relative paths resolve against the configuration file's directory.

use crate::attestation::jwks::{KeyCacheOptions, KeySource};
use crate::attestation::pki::PkiRoot;
use crate::attestation::source::{DEFAULT_LAUNCHER_SOCKET, DEFAULT_TOKEN_FILE};
use crate::attestation::verify::{DEFAULT_LEEWAY, GOOGLE_ISSUER};
use crate::attestation::{JwksCache, Verifier, VerifyPolicy};
use crate::plugin::{Limits, PluginSpec};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Google's OIDC discovery document for attestation tokens.
pub const GOOGLE_DISCOVERY_URL: &str =
    "https://confidentialcomputing.googleapis.com/.well-known/openid-configuration";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenSourceKind {
    /// A token per collaborator, with that collaborator's audience, from the launcher socket.
    #[default]
    Launcher,
    /// The launcher's default token file (audience `https://sts.googleapis.com` for everyone).
    File,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AttestationConfig {
    #[serde(default)]
    pub source: TokenSourceKind,
    #[serde(default = "default_socket")]
    pub launcher_socket: PathBuf,
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
    #[serde(default = "default_issuer")]
    pub issuer: String,
    pub discovery_url: Option<String>,
    pub jwks_url: Option<String>,
    pub jwks_file: Option<PathBuf>,
    /// Pinned root certificate for PKI tokens.
    pub pki_root: Option<PathBuf>,
    /// Clock skew allowed on exp/nbf/iat, e.g. "60s".
    #[serde(default, with = "humantime_opt")]
    pub leeway: Option<Duration>,
    /// Tokens larger than this are refused (default 16384).
    pub max_token_bytes: Option<usize>,
    /// Required to use `source = "file"`: every collaborator then receives a token whose audience
    /// is Google's STS, which any of them could replay to the others.
    #[serde(default)]
    pub allow_default_audience: bool,
}

impl Default for AttestationConfig {
    fn default() -> Self {
        AttestationConfig {
            source: TokenSourceKind::default(),
            launcher_socket: default_socket(),
            token_file: default_token_file(),
            issuer: default_issuer(),
            discovery_url: None,
            jwks_url: None,
            jwks_file: None,
            pki_root: None,
            leeway: None,
            max_token_bytes: None,
            allow_default_audience: false,
        }
    }
}

impl AttestationConfig {
    pub fn key_source(&self) -> KeySource {
        match (&self.jwks_url, &self.jwks_file, &self.discovery_url) {
            (Some(url), _, _) => KeySource::JwksUrl(url.clone()),
            (_, Some(file), _) => KeySource::JwksFile(file.clone()),
            (_, _, Some(url)) => KeySource::Discovery(url.clone()),
            _ => KeySource::Discovery(GOOGLE_DISCOVERY_URL.to_owned()),
        }
    }

    pub fn leeway(&self) -> Duration {
        self.leeway.unwrap_or(DEFAULT_LEEWAY)
    }

    /// The verifier these settings describe: the key source, the exact issuer (also required of
    /// a discovery document), the leeway, the size limit and the pinned PKI root.
    pub fn verifier(&self) -> Result<Verifier, String> {
        let mut policy = VerifyPolicy::new(self.issuer.clone());
        policy.leeway = self.leeway();
        if let Some(limit) = self.max_token_bytes {
            policy.max_token_bytes = limit;
        }
        if let Some(path) = &self.pki_root {
            let bytes = std::fs::read(path)
                .map_err(|e| format!("cannot read pki_root {}: {e}", path.display()))?;
            policy.pki_root = Some(PkiRoot::from_pem_or_der(&bytes).map_err(|e| e.to_string())?);
        }
        let options = KeyCacheOptions {
            expected_issuer: Some(self.issuer.clone()),
            ..KeyCacheOptions::default()
        };
        let keys = JwksCache::new(self.key_source(), options).map_err(|e| e.to_string())?;
        Ok(Verifier::new(keys, policy))
    }
}

fn default_socket() -> PathBuf {
    DEFAULT_LAUNCHER_SOCKET.into()
}

fn default_token_file() -> PathBuf {
    DEFAULT_TOKEN_FILE.into()
}

fn default_issuer() -> String {
    GOOGLE_ISSUER.into()
}

fn default_auth_mount() -> String {
    "jwt".into()
}

mod humantime_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(deserializer)?;
        text.map(|t| humantime::parse_duration(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// How the exchange as a whole behaves.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExchangeConfig {
    /// Each collaborator's whole exchange must finish within this, e.g. "30s".
    #[serde(default, with = "humantime_opt")]
    pub deadline: Option<Duration>,
    /// Deliver what succeeded even when some collaborator failed. Off by default: all or nothing.
    #[serde(default)]
    pub partial: bool,
}

impl ExchangeConfig {
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

    pub fn deadline(&self) -> Duration {
        self.deadline.unwrap_or(Self::DEFAULT_DEADLINE)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PluginsConfig {
    /// Where compiled plugins are cached between runs (a directory only attestgate writes).
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VaultConfig {
    /// One address, or `addresses` for an HA cluster.
    pub address: Option<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    /// CA bundle for the Vault's TLS certificate (VAULT_CACERT semantics).
    pub ca_cert: Option<PathBuf>,
    /// Client certificate and key for mTLS.
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    #[serde(default = "default_auth_mount")]
    pub auth_mount: String,
    /// The JWT role; a plugin verdict's `role` overrides it.
    pub role: Option<String>,
    /// Sent as X-Vault-Namespace.
    pub namespace: Option<String>,
    /// Keep the Vault token instead of revoking it once the secrets are read (the seed's
    /// VAULT_TOKEN use case). Implied by token_file and token_env.
    #[serde(default)]
    pub keep_token: bool,
    /// Write the Vault token to this file (mode 0600).
    pub token_file: Option<PathBuf>,
    /// Hand the Vault token to `attestgate exec` in this environment variable.
    pub token_env: Option<String>,
}

impl VaultConfig {
    /// Whether the token outlives the exchange.
    pub fn keeps_token(&self) -> bool {
        self.keep_token || self.token_file.is_some() || self.token_env.is_some()
    }

    /// Every address, `address` first.
    pub fn all_addresses(&self) -> Vec<String> {
        self.address
            .iter()
            .chain(self.addresses.iter())
            .cloned()
            .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SecretConfig {
    /// Any logical read path; KV v2 `data.data` is unwrapped.
    pub path: String,
    /// One field instead of the whole map.
    pub field: Option<String>,
    /// Deliver as this file (mode 0600).
    pub file: Option<PathBuf>,
    /// Deliver in this environment variable to `attestgate exec`.
    pub env: Option<String>,
}

/// The KMS route: the collaborator's VAULT_TOKEN, encrypted with its Cloud KMS key, unwrapped in
/// the TEE instead of a JWT login.
#[derive(Debug, Clone, Deserialize)]
pub struct KmsConfig {
    /// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/X`
    pub workload_identity_provider: String,
    /// A service account to impersonate with the federated token (optional).
    pub service_account: Option<String>,
    /// `projects/P/locations/L/keyRings/R/cryptoKeys/K`
    pub key: String,
    /// The base64 ciphertext of the VAULT_TOKEN, in a file or inline.
    pub ciphertext_file: Option<PathBuf>,
    pub ciphertext: Option<String>,
    #[serde(default = "default_sts")]
    pub sts_endpoint: String,
    #[serde(default = "default_iamcredentials")]
    pub iamcredentials_endpoint: String,
    #[serde(default = "default_kms")]
    pub kms_endpoint: String,
}

fn default_sts() -> String {
    "https://sts.googleapis.com".into()
}

fn default_iamcredentials() -> String {
    "https://iamcredentials.googleapis.com".into()
}

fn default_kms() -> String {
    "https://cloudkms.googleapis.com".into()
}

#[derive(Debug, Clone, Deserialize)]
pub struct CollaboratorConfig {
    pub name: String,
    pub plugin: PathBuf,
    pub plugin_sha256: String,
    /// The plugin's configuration, inline.
    pub plugin_config: Option<toml::Value>,
    /// Or a JSON file holding it (a Vault role JSON for `bound-claims`, say).
    pub plugin_config_file: Option<PathBuf>,
    #[serde(default)]
    pub limits: Limits,
    pub vault: Option<VaultConfig>,
    /// Use the KMS route instead of a JWT login.
    pub kms: Option<KmsConfig>,
    #[serde(default, rename = "secret")]
    pub secrets: Vec<SecretConfig>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawConfig {
    #[serde(default)]
    attestation: AttestationConfig,
    #[serde(default)]
    plugins: PluginsConfig,
    #[serde(default)]
    exchange: ExchangeConfig,
    #[serde(default, rename = "collaborator")]
    collaborators: Vec<CollaboratorConfig>,
}

/// A configuration that parsed and passed validation; paths are absolute.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub attestation: AttestationConfig,
    pub plugins: PluginsConfig,
    pub exchange: ExchangeConfig,
    pub collaborators: Vec<CollaboratorConfig>,
    /// Each collaborator's plugin configuration as JSON, in collaborator order.
    plugin_configs: Vec<serde_json::Value>,
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `collaborator[1].vault.ca_cert`.
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{} has {count} problem{}:",
            self.file.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            if problem.key.is_empty() {
                write!(f, "\n  - {}", problem.message)?;
            } else {
                write!(f, "\n  - {}: {}", problem.key, problem.message)?;
            }
        }
        Ok(())
    }
}

/// A problem for every destination that an earlier entry already claimed.
fn report_shared(destinations: &[(String, String)], verb: &str, problems: &mut Vec<Problem>) {
    for (index, (destination, key)) in destinations.iter().enumerate() {
        if let Some((_, first)) = destinations[..index]
            .iter()
            .find(|(seen, _)| seen == destination)
        {
            problems.push(Problem {
                key: key.clone(),
                message: format!("{destination} {verb} {first}"),
            });
        }
    }
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

fn resolve(base: &Path, path: &mut PathBuf) {
    if path.is_relative() {
        *path = base.join(&*path);
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let fail = |problems: Vec<Problem>| ConfigError {
            file: path.to_owned(),
            problems,
        };
        let text = std::fs::read_to_string(path).map_err(|e| {
            fail(vec![Problem {
                key: String::new(),
                message: format!("cannot read it: {e}"),
            }])
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` as if it were the file at `path` (for relative paths and messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let deserializer = toml::Deserializer::parse(text).map_err(|e| ConfigError {
            file: path.to_owned(),
            problems: vec![Problem {
                key: String::new(),
                message: e.to_string().trim().to_owned(),
            }],
        })?;
        // Unknown keys are collected rather than stopping at the first, so all are reported.
        let mut unknown = Vec::new();
        let parsed: Result<RawConfig, _> =
            serde_ignored::deserialize(deserializer, |key| unknown.push(key.to_string()));
        for key in unknown {
            problems.push(Problem {
                key,
                message: "unknown key (misspelled?)".into(),
            });
        }
        let raw = match parsed {
            Ok(raw) => raw,
            Err(e) => {
                problems.push(Problem {
                    key: String::new(),
                    message: e.to_string().trim().to_owned(),
                });
                return Err(ConfigError {
                    file: path.to_owned(),
                    problems,
                });
            }
        };
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let mut config = Config {
            path: path.to_owned(),
            attestation: raw.attestation,
            plugins: raw.plugins,
            exchange: raw.exchange,
            collaborators: raw.collaborators,
            plugin_configs: Vec::new(),
        };
        config.resolve_paths(&base);
        config.validate(&mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                file: path.to_owned(),
                problems,
            })
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let attestation = &mut self.attestation;
        for path in [
            &mut attestation.launcher_socket,
            &mut attestation.token_file,
        ] {
            resolve(base, path);
        }
        for path in [
            &mut attestation.jwks_file,
            &mut attestation.pki_root,
            &mut self.plugins.cache_dir,
        ]
        .into_iter()
        .flatten()
        {
            resolve(base, path);
        }
        for collaborator in &mut self.collaborators {
            resolve(base, &mut collaborator.plugin);
            if let Some(path) = &mut collaborator.plugin_config_file {
                resolve(base, path);
            }
            if let Some(vault) = &mut collaborator.vault {
                for path in [
                    &mut vault.ca_cert,
                    &mut vault.client_cert,
                    &mut vault.client_key,
                ]
                .into_iter()
                .flatten()
                {
                    resolve(base, path);
                }
            }
            if let Some(file) = collaborator
                .kms
                .as_mut()
                .and_then(|k| k.ciphertext_file.as_mut())
            {
                resolve(base, file);
            }
            for secret in &mut collaborator.secrets {
                if let Some(file) = &mut secret.file {
                    resolve(base, file);
                }
            }
        }
    }

    fn validate(&mut self, problems: &mut Vec<Problem>) {
        let mut problem = |key: String, message: String| problems.push(Problem { key, message });
        let attestation = &self.attestation;
        let key_sources = [
            attestation.discovery_url.is_some(),
            attestation.jwks_url.is_some(),
            attestation.jwks_file.is_some(),
        ];
        if key_sources.iter().filter(|set| **set).count() > 1 {
            problem(
                "attestation".into(),
                "set at most one of discovery_url, jwks_url and jwks_file".into(),
            );
        }
        if attestation.source == TokenSourceKind::File
            && !attestation.allow_default_audience
            // The KMS route hands the default token to STS, its intended audience: no replay risk.
            && self.collaborators.iter().any(|c| c.kms.is_none())
        {
            problem(
                "attestation.source".into(),
                "\"file\" sends every collaborator the same default token (audience https://sts.googleapis.com), which any of them could replay to the others; set allow_default_audience = true to accept that, or use \"launcher\"".into(),
            );
        }
        if self.collaborators.is_empty() {
            problem(
                "collaborator".into(),
                "no [[collaborator]] is configured".into(),
            );
        }
        let mut names = HashSet::new();
        let mut plugin_configs = Vec::new();
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let at = |key: &str| format!("collaborator[{index}] ({}).{key}", collaborator.name);
            if collaborator.name.trim().is_empty() {
                problem(
                    format!("collaborator[{index}].name"),
                    "must not be empty".into(),
                );
            } else if !names.insert(collaborator.name.clone()) {
                problem(at("name"), "is used by another collaborator too".into());
            }
            let sha = collaborator.plugin_sha256.trim();
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                problem(
                    at("plugin_sha256"),
                    format!(
                        "\"{sha}\" is not 64 hex digits (run `attestgate plugin inspect {}`)",
                        collaborator.plugin.display()
                    ),
                );
            }
            if !collaborator.plugin.is_file() {
                problem(
                    at("plugin"),
                    format!("{} does not exist", collaborator.plugin.display()),
                );
            }
            let plugin_config = match (
                &collaborator.plugin_config,
                &collaborator.plugin_config_file,
            ) {
                (Some(_), Some(_)) => {
                    problem(
                        at("plugin_config"),
                        "set plugin_config or plugin_config_file, not both".into(),
                    );
                    serde_json::Value::Null
                }
                (Some(inline), None) => {
                    serde_json::to_value(inline).unwrap_or(serde_json::Value::Null)
                }
                (None, Some(file)) => match std::fs::read_to_string(file) {
                    Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                        problem(
                            at("plugin_config_file"),
                            format!("{} is not valid JSON: {e}", file.display()),
                        );
                        serde_json::Value::Null
                    }),
                    Err(e) => {
                        problem(
                            at("plugin_config_file"),
                            format!("cannot read {}: {e}", file.display()),
                        );
                        serde_json::Value::Null
                    }
                },
                (None, None) => serde_json::json!({}),
            };
            plugin_configs.push(plugin_config);
            if let Some(vault) = &collaborator.vault {
                if vault.all_addresses().is_empty() {
                    problem(
                        at("vault"),
                        "needs address (or addresses for an HA cluster)".into(),
                    );
                }
                for address in vault.all_addresses() {
                    if !(address.starts_with("https://") || address.starts_with("http://")) {
                        problem(
                            at("vault.address"),
                            format!("\"{address}\" must start with https:// or http://"),
                        );
                    }
                }
                if vault.client_cert.is_some() != vault.client_key.is_some() {
                    problem(at("vault"), "client_cert and client_key go together".into());
                }
                for (key, path) in [
                    ("ca_cert", &vault.ca_cert),
                    ("client_cert", &vault.client_cert),
                    ("client_key", &vault.client_key),
                ] {
                    if let Some(path) = path.as_ref().filter(|p| !p.is_file()) {
                        problem(
                            at(&format!("vault.{key}")),
                            format!("{} does not exist", path.display()),
                        );
                    }
                }
            } else if !collaborator.secrets.is_empty() {
                problem(
                    at("secret"),
                    "secrets need a [collaborator.vault] to read them from".into(),
                );
            }
            if let Some(env) = collaborator
                .vault
                .as_ref()
                .and_then(|v| v.token_env.as_ref())
            {
                if !valid_env_name(env) {
                    problem(
                        at("vault.token_env"),
                        format!("\"{env}\" is not a valid environment variable name"),
                    );
                }
            }
            for (n, secret) in collaborator.secrets.iter().enumerate() {
                if secret.path.trim().is_empty() {
                    problem(at(&format!("secret[{n}].path")), "must not be empty".into());
                }
                if secret.file.is_none() && secret.env.is_none() {
                    problem(
                        at(&format!("secret[{n}]")),
                        "deliver it somewhere: set file, env, or both".into(),
                    );
                }
                if let Some(env) = &secret.env {
                    if env.is_empty()
                        || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        || env.as_bytes()[0].is_ascii_digit()
                    {
                        problem(
                            at(&format!("secret[{n}].env")),
                            format!("\"{env}\" is not a valid environment variable name"),
                        );
                    }
                }
            }
        }
        self.plugin_configs = plugin_configs;
        self.check_destinations(problems);
    }

    /// Two secrets (or kept tokens) must never share a file or an environment variable: the later
    /// one would silently replace the earlier.
    fn check_destinations(&self, problems: &mut Vec<Problem>) {
        // (destination, key that names it): files as displayed paths, variables by name.
        let mut files: Vec<(String, String)> = Vec::new();
        let mut envs: Vec<(String, String)> = Vec::new();
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let at = |key: String| format!("collaborator[{index}] ({}).{key}", collaborator.name);
            for (n, secret) in collaborator.secrets.iter().enumerate() {
                if let Some(file) = &secret.file {
                    files.push((file.display().to_string(), at(format!("secret[{n}].file"))));
                }
                if let Some(env) = &secret.env {
                    envs.push((env.clone(), at(format!("secret[{n}].env"))));
                }
            }
            if let Some(vault) = &collaborator.vault {
                if let Some(file) = &vault.token_file {
                    files.push((file.display().to_string(), at("vault.token_file".into())));
                }
                if let Some(env) = &vault.token_env {
                    envs.push((env.clone(), at("vault.token_env".into())));
                }
            }
        }
        report_shared(&files, "is already the destination of", problems);
        report_shared(&envs, "is already set by", problems);
    }

    /// One plugin spec per collaborator, in order.
    pub fn plugin_specs(&self) -> Vec<PluginSpec> {
        self.collaborators
            .iter()
            .zip(&self.plugin_configs)
            .map(|(collaborator, config)| PluginSpec {
                collaborator: collaborator.name.clone(),
                path: collaborator.plugin.clone(),
                sha256: collaborator.plugin_sha256.trim().to_ascii_lowercase(),
                config: config.clone(),
                limits: collaborator.limits,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_secrets_may_not_share_a_destination() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let collaborator = |name: &str| {
            format!(
                "[[collaborator]]\nname = \"{name}\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n[collaborator.vault]\naddress = \"http://127.0.0.1:8200\"\n[[collaborator.secret]]\npath = \"kv/data/x\"\nfile = \"/run/secrets/x\"\nenv = \"X\"\n",
                wasm.display(),
                "a".repeat(64)
            )
        };
        let text = collaborator("bank-a") + &collaborator("bank-b");
        let err = Config::parse(&text, Path::new("/etc/attestgate.toml")).unwrap_err();
        let messages: Vec<String> = err
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect();
        assert!(messages.iter().any(|m| m.starts_with("collaborator[1] (bank-b).secret[0].file: /run/secrets/x is already the destination of collaborator[0] (bank-a).secret[0].file")), "{err}");
        assert!(
            messages.iter().any(|m| m.starts_with(
                "collaborator[1] (bank-b).secret[0].env: X is already set by collaborator[0]"
            )),
            "{err}"
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = r#"
            [attestation]
            source = "file"
            jwks_url = "http://127.0.0.1:1/jwks"
            discovry_url = "typo"

            [[collaborator]]
            name = "bank-a"
            plugin = "missing.wasm"
            plugin_sha256 = "abc"
            plugin_confg = {}
        "#;
        let err = Config::parse(text, Path::new("/etc/attestgate.toml")).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"attestation.discovry_url"), "{err}");
        assert!(keys.contains(&"collaborator.0.plugin_confg"), "{err}");
        assert!(keys.contains(&"attestation.source"), "{err}");
        assert!(
            keys.contains(&"collaborator[0] (bank-a).plugin_sha256"),
            "{err}"
        );
        assert!(keys.contains(&"collaborator[0] (bank-a).plugin"), "{err}");
        assert!(
            err.to_string()
                .starts_with("/etc/attestgate.toml has 5 problems:"),
            "{err}"
        );
        assert!(
            err.to_string().contains("/etc/missing.wasm does not exist"),
            "relative paths resolve against the file: {err}"
        );
    }
}
