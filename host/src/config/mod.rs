//! The attestgate configuration file (TOML): what to attest with, and for each collaborator, its
//! plugin, its Vault and the secrets it releases.
//!
//! Every problem is reported at once, each naming the file and the key. Unknown keys are errors
//! (collected with `serde_ignored` rather than `deny_unknown_fields`, so that all are reported):
//! a misspelled key must never be silently ignored the way Vault ignores `claims_mappings`.
//! Relative paths resolve against the configuration file's directory.

mod delivery;

pub use delivery::{env_prefix_of, normalise_lexically, refused_variable, DeliveryConfig};

use crate::attestation::audience;
use crate::attestation::PkiRoot;
use crate::attestation::{JwksCache, Verifier, VerifyPolicy};
use crate::attestation::{KeyCacheOptions, KeySource};
use crate::attestation::{DEFAULT_LAUNCHER_SOCKET, DEFAULT_TOKEN_AUDIENCE, DEFAULT_TOKEN_FILE};
use crate::attestation::{DEFAULT_LEEWAY, GOOGLE_ISSUER};
use crate::plugin::{Limits, PluginSpec, Precompiled};
use serde::Deserialize;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Google's OIDC discovery document for attestation tokens.
pub const GOOGLE_DISCOVERY_URL: &str =
    "https://confidentialcomputing.googleapis.com/.well-known/openid-configuration";

/// `[attestation] source`: where the exchange gets its attestation tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TokenSourceKind {
    /// A token per collaborator, with that collaborator's audience, from the launcher socket.
    #[default]
    Launcher,
    /// The launcher's default token file (audience `https://sts.googleapis.com` for everyone).
    File,
}

/// `[attestation]`: where tokens come from and how they are verified.
#[derive(Debug, Clone, Deserialize)]
pub struct AttestationConfig {
    /// `"launcher"` (default): a token per collaborator from the socket; `"file"`: the
    /// launcher's default token file for everyone.
    #[serde(default)]
    pub source: TokenSourceKind,
    /// The launcher's token API socket (default `/run/container_launcher/teeserver.sock`).
    #[serde(default = "default_socket")]
    pub launcher_socket: PathBuf,
    /// The default token file, read with `source = "file"` (default
    /// `/run/container_launcher/attestation_verifier_claims_token`).
    #[serde(default = "default_token_file")]
    pub token_file: PathBuf,
    /// The exact `iss` tokens must carry, also required of the discovery document (default
    /// `https://confidentialcomputing.googleapis.com`).
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// An OIDC discovery document to find the issuer's keys through (default Google's, when
    /// neither `jwks_url` nor `jwks_file` is set).
    pub discovery_url: Option<String>,
    /// The issuer's JWKS, fetched directly without discovery.
    pub jwks_url: Option<String>,
    /// The issuer's JWKS on disk (air-gapped audits, tests); re-read for unknown kids.
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
    /// Where the issuer's keys come from: `jwks_url`, else `jwks_file`, else `discovery_url`,
    /// else Google's discovery document.
    pub fn key_source(&self) -> KeySource {
        match (&self.jwks_url, &self.jwks_file, &self.discovery_url) {
            (Some(url), _, _) => KeySource::JwksUrl(url.clone()),
            (_, Some(file), _) => KeySource::JwksFile(file.clone()),
            (_, _, Some(url)) => KeySource::Discovery(url.clone()),
            _ => KeySource::Discovery(GOOGLE_DISCOVERY_URL.to_owned()),
        }
    }

    /// The configured leeway, or 60 s.
    pub fn leeway(&self) -> Duration {
        self.leeway.unwrap_or(DEFAULT_LEEWAY)
    }

    /// The verifier these settings describe: the key source, the exact issuer (also required of
    /// a discovery document), the leeway, the size limit and the pinned PKI root.
    pub fn verifier(&self) -> Result<Verifier, VerifierSetupError> {
        let mut policy = VerifyPolicy::new(self.issuer.clone());
        policy.leeway = self.leeway();
        if let Some(limit) = self.max_token_bytes {
            policy.max_token_bytes = limit;
        }
        if let Some(path) = &self.pki_root {
            let bytes = std::fs::read(path).map_err(|source| VerifierSetupError::ReadPkiRoot {
                path: path.clone(),
                source,
            })?;
            policy.pki_root = Some(PkiRoot::from_pem_or_der(&bytes)?);
        }
        let options = KeyCacheOptions {
            expected_issuer: Some(self.issuer.clone()),
            ..KeyCacheOptions::default()
        };
        let keys = JwksCache::new(self.key_source(), options)?;
        Ok(Verifier::new(keys, policy))
    }
}

/// Why the verifier described by `[attestation]` cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum VerifierSetupError {
    /// `pki_root` cannot be read.
    #[error("cannot read pki_root {path}: {source}")]
    ReadPkiRoot {
        /// The file.
        path: PathBuf,
        /// What reading it said.
        #[source]
        source: std::io::Error,
    },
    /// `pki_root` is not a usable root certificate.
    #[error("pki_root: {0}")]
    PkiRoot(#[from] crate::attestation::PkiError),
    /// The key cache cannot be set up.
    #[error("the issuer's keys: {0}")]
    Keys(#[from] crate::attestation::KeyError),
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
    /// Each collaborator's deadline when none is configured.
    pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

    /// The configured deadline, or [`ExchangeConfig::DEFAULT_DEADLINE`].
    pub fn deadline(&self) -> Duration {
        self.deadline.unwrap_or(Self::DEFAULT_DEADLINE)
    }
}

/// Where the KMS route's calls to Google go. Operator-level on purpose: the attestation token is
/// posted to `sts_endpoint`, so a collaborator who could choose it could collect a genuine token.
#[derive(Debug, Clone, Deserialize)]
pub struct GoogleConfig {
    /// Where the attestation token is exchanged (default `https://sts.googleapis.com`).
    #[serde(default = "default_sts")]
    pub sts_endpoint: String,
    /// Where a service account is impersonated (default
    /// `https://iamcredentials.googleapis.com`).
    #[serde(default = "default_iamcredentials")]
    pub iamcredentials_endpoint: String,
    /// Where `decrypt` is called (default `https://cloudkms.googleapis.com`).
    #[serde(default = "default_kms")]
    pub kms_endpoint: String,
    /// Allow endpoints outside `googleapis.com` (a test stand-in). Off: only `https://` endpoints
    /// on Google's own domain (private service connect names included) are accepted.
    #[serde(default)]
    pub allow_custom_endpoints: bool,
}

impl Default for GoogleConfig {
    fn default() -> Self {
        GoogleConfig {
            sts_endpoint: default_sts(),
            iamcredentials_endpoint: default_iamcredentials(),
            kms_endpoint: default_kms(),
            allow_custom_endpoints: false,
        }
    }
}

/// The operator's rules for plugins.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PluginsConfig {
    /// Load `plugin_compiled` artifacts. They are native code, outside the sandbox: the operator
    /// vouches that it built every one from its pinned wasm (`attestgate plugin compile`).
    #[serde(default)]
    pub trust_precompiled: bool,
}

/// Transport rules for every server attestgate talks to.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetworkConfig {
    /// Allow `http://` Vault addresses, JWKS/discovery URLs and Google endpoints. Off: tokens and
    /// secrets only travel over TLS. Local dev and test setups turn it on.
    #[serde(default)]
    pub allow_plain_http: bool,
}

/// `[collaborator.vault]`: the collaborator's Vault, and what happens to the token it issues.
#[derive(Debug, Clone, Deserialize)]
pub struct VaultConfig {
    /// One address, or `addresses` for an HA cluster.
    pub address: Option<String>,
    /// The addresses of an HA cluster, tried in turn (after `address`, if both are set).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// CA bundle for the Vault's TLS certificate (VAULT_CACERT semantics).
    pub ca_cert: Option<PathBuf>,
    /// Client certificate for mTLS (PEM); needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM); needs `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Where the JWT auth method is mounted (default `jwt`): login is `auth/<mount>/login`.
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

/// `[[collaborator.secret]]`: one secret to read, and where to deliver it.
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
    /// A file holding the base64 ciphertext of the VAULT_TOKEN (`gcloud kms encrypt` output).
    pub ciphertext_file: Option<PathBuf>,
    /// The same ciphertext inline; set this or `ciphertext_file`.
    pub ciphertext: Option<String>,
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

/// `[[collaborator]]`: one party whose plugin judges the token and whose Vault releases its
/// secrets.
#[derive(Debug, Clone, Deserialize)]
pub struct CollaboratorConfig {
    /// Unique; 1 to 64 letters, digits, `-`, `_` or `.`. Names its delivery directory and
    /// appears in every log line.
    pub name: String,
    /// The audience this collaborator's token carries, reviewed by the operator: its plugin must
    /// select exactly this, and no other collaborator may have it. On the KMS route it defaults
    /// to the workload identity provider's resource name, which Google accepts by default.
    #[serde(default)]
    pub audience: String,
    /// The policy plugin (a WebAssembly component).
    pub plugin: PathBuf,
    /// The plugin's SHA-256, 64 hex digits (`attestgate plugin inspect` prints it); a plugin
    /// that does not match is not loaded.
    pub plugin_sha256: String,
    /// The plugin precompiled at image build time (`attestgate plugin compile`), loaded instead
    /// of compiling at start-up; pinned by `plugin_compiled_sha256`.
    pub plugin_compiled: Option<PathBuf>,
    /// The SHA-256 of `plugin_compiled`, 64 hex digits; required with it.
    pub plugin_compiled_sha256: Option<String>,
    /// The plugin's configuration, inline.
    pub plugin_config: Option<toml::Value>,
    /// Or a JSON file holding it (a Vault role JSON for `bound-claims`, say).
    pub plugin_config_file: Option<PathBuf>,
    /// `[collaborator.limits]`: the plugin's deadline, memory and log budget (defaults in
    /// [`Limits`]).
    #[serde(default)]
    pub limits: Limits,
    /// `[collaborator.vault]` as written; the exchange reads [`CollaboratorConfig::route`].
    pub(in crate::config) vault: Option<VaultConfig>,
    /// `[collaborator.kms]` as written: the KMS route instead of a JWT login.
    pub(in crate::config) kms: Option<KmsConfig>,
    /// `[[collaborator.secret]]`: the secrets to read once logged in (none by default).
    #[serde(default, rename = "secret")]
    pub secrets: Vec<SecretConfig>,
    /// How the collaborator's secrets are reached, built once the configuration validated.
    #[serde(skip)]
    pub route: LoginRoute,
}

/// How a collaborator's secrets are reached: one validated choice, so the exchange matches on it
/// instead of re-checking which optional sections are present.
#[derive(Debug, Clone, Default)]
pub enum LoginRoute {
    /// No Vault: the plugin's allow is the whole outcome.
    #[default]
    PolicyOnly,
    /// JWT login at the collaborator's Vault with the attestation token.
    Jwt {
        /// The collaborator's Vault.
        vault: VaultConfig,
    },
    /// The collaborator's VAULT_TOKEN, unwrapped with Cloud KMS, used at its Vault.
    Kms {
        /// The collaborator's Vault.
        vault: VaultConfig,
        /// Where the wrapped token is and who may decrypt it.
        kms: KmsConfig,
    },
}

impl LoginRoute {
    /// The collaborator's Vault, on either route that has one.
    pub fn vault(&self) -> Option<&VaultConfig> {
        match self {
            LoginRoute::PolicyOnly => None,
            LoginRoute::Jwt { vault } | LoginRoute::Kms { vault, .. } => Some(vault),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
struct RawConfig {
    #[serde(default)]
    attestation: AttestationConfig,
    #[serde(default)]
    exchange: ExchangeConfig,
    #[serde(default)]
    google: GoogleConfig,
    #[serde(default)]
    network: NetworkConfig,
    #[serde(default)]
    delivery: DeliveryConfig,
    #[serde(default)]
    plugins: PluginsConfig,
    #[serde(default, rename = "collaborator")]
    collaborators: Vec<CollaboratorConfig>,
}

/// A configuration that parsed and passed validation; paths are absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    /// `[attestation]`.
    pub attestation: AttestationConfig,
    /// `[exchange]`.
    pub exchange: ExchangeConfig,
    /// `[google]`.
    pub google: GoogleConfig,
    /// `[network]`.
    pub network: NetworkConfig,
    /// `[delivery]`.
    pub delivery: DeliveryConfig,
    /// `[plugins]`.
    pub plugins: PluginsConfig,
    /// `[[collaborator]]`, in file order; audiences defaulted and routes built.
    pub collaborators: Vec<CollaboratorConfig>,
    /// Each collaborator's plugin configuration as JSON, in collaborator order.
    plugin_configs: Vec<serde_json::Value>,
}

/// One thing wrong with a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key, e.g. `collaborator[1].vault.ca_cert`.
    pub key: String,
    /// What is wrong, and usually how to fix it.
    pub message: String,
}

/// A configuration file that cannot be used, with every problem found in it.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// Every problem, in the order found; a file that cannot be read or parsed has one.
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

/// The most any configuration-side file (plugin configuration, ciphertext) may hold.
const MAX_SMALL_FILE_BYTES: u64 = 1 << 20;

/// A small regular file's text: a FIFO, a device or anything over 1 MiB is refused rather than
/// read (`/dev/zero` must not exhaust memory, a FIFO must not stall the load).
fn read_small_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.len() > MAX_SMALL_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("not a regular file of at most {MAX_SMALL_FILE_BYTES} bytes"),
        ));
    }
    let mut text = String::new();
    file.take(MAX_SMALL_FILE_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

/// `collaborator.0.x` as validation spells it: `collaborator[0] (bank-a).x`.
fn locate(key: &str, names: &[String]) -> String {
    let Some(rest) = key.strip_prefix("collaborator.") else {
        return key.to_owned();
    };
    let (index, tail) = rest.split_once('.').unwrap_or((rest, ""));
    let Ok(index) = index.parse::<usize>() else {
        return key.to_owned();
    };
    let name = names.get(index).map(String::as_str).unwrap_or("?");
    let located = format!("collaborator[{index}] ({name})");
    if tail.is_empty() {
        located
    } else {
        format!("{located}.{tail}")
    }
}

fn valid_collaborator_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
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
    /// Reads, parses and validates the file at `path`.
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
        let names: Vec<String> = parsed
            .as_ref()
            .map(|raw| raw.collaborators.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        for key in unknown {
            // serde_ignored writes an Option's inside as `?` and an array index as `.N`; problems
            // are located the same way whether a key is unknown or invalid.
            let key = locate(&key.replace(".?", ""), &names);
            let message = if key == "plugins.cache_dir" {
                "the compiled-plugin cache is gone: precompile plugins at image build time with `attestgate plugin compile` and pin them with plugin_compiled and plugin_compiled_sha256"
            } else if ["sts_endpoint", "iamcredentials_endpoint", "kms_endpoint"]
                .iter()
                .any(|endpoint| key.ends_with(&format!(".kms.{endpoint}")))
            {
                "a collaborator may not choose where its token is posted; the operator sets Google's endpoints in [google]"
            } else {
                "unknown key (misspelled?)"
            };
            problems.push(Problem {
                key,
                message: message.into(),
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
            exchange: raw.exchange,
            google: raw.google,
            network: raw.network,
            delivery: raw.delivery,
            plugins: raw.plugins,
            collaborators: raw.collaborators,
            plugin_configs: Vec::new(),
        };
        config.resolve_paths(&base);
        config.validate(&mut problems);
        if problems.is_empty() {
            for collaborator in &mut config.collaborators {
                // Validation refused a KMS section without a Vault.
                collaborator.route = match (collaborator.vault.take(), collaborator.kms.take()) {
                    (Some(vault), Some(kms)) => LoginRoute::Kms { vault, kms },
                    (Some(vault), None) => LoginRoute::Jwt { vault },
                    (None, _) => LoginRoute::PolicyOnly,
                };
            }
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
        for path in [&mut attestation.jwks_file, &mut attestation.pki_root]
            .into_iter()
            .flatten()
        {
            resolve(base, path);
        }
        for collaborator in &mut self.collaborators {
            resolve(base, &mut collaborator.plugin);
            if let Some(path) = &mut collaborator.plugin_compiled {
                resolve(base, path);
            }
            if let Some(path) = &mut collaborator.plugin_config_file {
                resolve(base, path);
            }
            if let Some(vault) = &mut collaborator.vault {
                for path in [
                    &mut vault.ca_cert,
                    &mut vault.client_cert,
                    &mut vault.client_key,
                    &mut vault.token_file,
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
        // Google accepts a provider's own resource name as the audience unless the provider
        // lists others, so that is a KMS-route collaborator's audience unless it names one.
        for collaborator in &mut self.collaborators {
            if let (true, Some(kms)) = (collaborator.audience.is_empty(), &collaborator.kms) {
                collaborator.audience = kms.workload_identity_provider.clone();
            }
        }
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
        if attestation.source == TokenSourceKind::File && !attestation.allow_default_audience {
            problem(
                "attestation.source".into(),
                "\"file\" hands out the launcher's default token (audience https://sts.googleapis.com), which Google's STS accepts for any workload identity provider that trusts this workload; set allow_default_audience = true to accept that for a single KMS-route collaborator, or use \"launcher\"".into(),
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
            if !valid_collaborator_name(&collaborator.name) {
                problem(
                    format!("collaborator[{index}].name"),
                    format!("\"{}\" must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit: it names the collaborator's delivery directory and appears in every log line", collaborator.name.escape_debug()),
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
            match (
                &collaborator.plugin_compiled,
                collaborator.plugin_compiled_sha256.as_deref().map(str::trim),
            ) {
                (Some(path), Some(sha)) => {
                    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                        problem(
                            at("plugin_compiled_sha256"),
                            format!("\"{sha}\" is not 64 hex digits (`attestgate plugin compile` prints it)"),
                        );
                    }
                    if !path.is_file() {
                        problem(
                            at("plugin_compiled"),
                            format!("{} does not exist", path.display()),
                        );
                    }
                }
                (None, None) => {}
                _ => problem(
                    at("plugin_compiled"),
                    "plugin_compiled and plugin_compiled_sha256 go together: native code is loaded only when pinned".into(),
                ),
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
                (None, Some(file)) => match read_small_file(file) {
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
                if vault.client_cert.is_some() != vault.client_key.is_some() {
                    problem(at("vault"), "client_cert and client_key go together".into());
                }
                for (key, value) in [
                    ("role", vault.role.as_deref()),
                    ("auth_mount", Some(vault.auth_mount.as_str())),
                ] {
                    if let Some(value) = value.filter(|v| {
                        v.is_empty() || v.chars().any(|c| c.is_control() || c.is_whitespace())
                    }) {
                        problem(
                            at(&format!("vault.{key}")),
                            format!(
                                "\"{}\" is empty or contains whitespace or control characters",
                                value.escape_debug()
                            ),
                        );
                    }
                }
                if let Some(namespace) = &vault.namespace {
                    let valid = !namespace.is_empty()
                        && namespace.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')
                        });
                    if !valid {
                        problem(
                            at("vault.namespace"),
                            format!("\"{}\" is not a Vault namespace path (letters, digits, `-`, `_`, `.` and `/`); it is sent as a header", namespace.escape_debug()),
                        );
                    }
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
            if let Some(kms) = &collaborator.kms {
                if collaborator.vault.is_none() {
                    problem(
                        at("kms"),
                        "the KMS route unwraps a VAULT_TOKEN: add [collaborator.vault] with the Vault's address".into(),
                    );
                }
                match (&kms.ciphertext, &kms.ciphertext_file) {
                    (Some(_), Some(_)) => problem(
                        at("kms.ciphertext"),
                        "set ciphertext or ciphertext_file, not both".into(),
                    ),
                    (None, None) => problem(
                        at("kms"),
                        "needs ciphertext_file (or ciphertext): the base64 output of `gcloud kms encrypt` of the VAULT_TOKEN".into(),
                    ),
                    (None, Some(file)) if !file.is_file() => problem(
                        at("kms.ciphertext_file"),
                        format!("{} does not exist", file.display()),
                    ),
                    _ => {}
                }
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
        self.check_shared_variables(problems);
        self.check_delivery(problems);
        self.check_audiences(problems);
        self.check_kms_ownership(problems);
        self.check_transport(problems);
        self.check_plugins(problems);
        self.check_durations(problems);
    }

    /// Two secrets (or kept tokens) must never share an environment variable: the later one would
    /// silently replace the earlier. (Files are checked with the delivery rules.)
    fn check_shared_variables(&self, problems: &mut Vec<Problem>) {
        let mut envs: Vec<(String, String)> = Vec::new();
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let at = |key: String| format!("collaborator[{index}] ({}).{key}", collaborator.name);
            for (n, secret) in collaborator.secrets.iter().enumerate() {
                if let Some(env) = &secret.env {
                    envs.push((env.clone(), at(format!("secret[{n}].env"))));
                }
            }
            if let Some(env) = collaborator
                .vault
                .as_ref()
                .and_then(|v| v.token_env.as_ref())
            {
                envs.push((env.clone(), at("vault.token_env".into())));
            }
        }
        report_shared(&envs, "is already set by", problems);
    }

    /// The audience collaborator `index`'s token will carry: its own, or with `source = "file"`
    /// the default token's.
    pub fn received_audience(&self, index: usize) -> &str {
        match self.attestation.source {
            TokenSourceKind::File => DEFAULT_TOKEN_AUDIENCE,
            TokenSourceKind::Launcher => &self.collaborators[index].audience,
        }
    }

    /// No token minted for one collaborator may be usable by another: every audience is unique
    /// once normalised, and no collaborator that logs in to its own Vault receives a token that
    /// Google's STS would accept for a KMS-route collaborator's provider.
    fn check_audiences(&self, problems: &mut Vec<Problem>) {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let at = format!("collaborator[{index}] ({}).audience", collaborator.name);
            let received = self.received_audience(index);
            if received.is_empty() {
                problems.push(Problem {
                    key: at,
                    message: format!("is required: the one audience {}'s Vault role binds (bound_audiences), e.g. \"https://vault.{}.example\"; its plugin must select exactly this", collaborator.name, collaborator.name),
                });
                continue;
            }
            if received
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
            {
                problems.push(Problem {
                    key: at.clone(),
                    message: format!(
                        "\"{}\" contains whitespace or control characters",
                        received.escape_debug()
                    ),
                });
            }
            match &collaborator.kms {
                None if audience::is_google_federation(received) => problems.push(Problem {
                    key: at.clone(),
                    message: format!("\"{received}\" is an audience Google's STS accepts; a collaborator that is not on the KMS route must never receive such a token, or it could exchange it at STS as this workload and decrypt a KMS-route collaborator's VAULT_TOKEN. Give it an audience of its own, e.g. \"https://vault.{}.example\"", collaborator.name),
                }),
                // On the KMS route, the one Google audience a collaborator may have is its own
                // provider's name (or, opted in, the shared default token's).
                Some(kms)
                    if self.attestation.source == TokenSourceKind::Launcher
                        && audience::is_google_federation(received)
                        && audience::normalise(received)
                            != audience::normalise(&kms.workload_identity_provider) =>
                {
                    problems.push(Problem {
                        key: at.clone(),
                        message: format!("\"{received}\" is a Google audience other than this collaborator's own provider ({}); use the provider's name, or an audience of the collaborator's own that its provider lists", kms.workload_identity_provider),
                    })
                }
                _ => {}
            }
            if let Some(violation) = crate::attestation::request_limits_violation(received, &[]) {
                problems.push(Problem {
                    key: at.clone(),
                    message: format!("the launcher would refuse it: {violation}"),
                });
            }
            let normal = audience::normalise(received);
            match seen.iter().find(|(other, _)| *other == normal) {
                Some((_, first)) => problems.push(Problem {
                    key: at,
                    message: format!(
                        "\"{received}\" is the same audience as collaborator[{first}] ({})'s \"{}\" (both are {normal} once normalised); a token minted for one would be accepted by the other's Vault or provider, so each collaborator needs an audience of its own",
                        self.collaborators[*first].name,
                        self.received_audience(*first),
                    ),
                }),
                None => seen.push((normal, index)),
            }
        }
    }

    /// No two KMS-route collaborators share a provider, a key, a ciphertext or a service account:
    /// sharing one would let the second use what the first's provider and key release.
    fn check_kms_ownership(&self, problems: &mut Vec<Problem>) {
        let mut owned: Vec<(&'static str, String, usize)> = Vec::new();
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let Some(kms) = &collaborator.kms else {
                continue;
            };
            let mut items = vec![
                (
                    "workload_identity_provider",
                    audience::normalise(&kms.workload_identity_provider),
                ),
                ("key", kms.key.trim().trim_matches('/').to_owned()),
            ];
            if let Some(account) = &kms.service_account {
                items.push(("service_account", account.trim().to_ascii_lowercase()));
            }
            if let Some(text) = &kms.ciphertext {
                items.push(("ciphertext", text.split_whitespace().collect()));
            }
            if let Some(file) = &kms.ciphertext_file {
                let text = read_small_file(file).unwrap_or_default();
                items.push(("ciphertext", text.split_whitespace().collect()));
            }
            for (key, value) in items {
                if value.is_empty() {
                    continue;
                }
                if let Some((_, _, first)) = owned.iter().find(|(k, v, _)| *k == key && *v == value)
                {
                    problems.push(Problem {
                        key: format!("collaborator[{index}] ({}).kms.{key}", collaborator.name),
                        message: format!(
                            "is the same as collaborator[{first}] ({})'s; each KMS-route collaborator has its own provider, key, ciphertext and service account",
                            self.collaborators[*first].name
                        ),
                    });
                } else {
                    owned.push((key, value, index));
                }
            }
        }
    }

    /// Durations stay within what the clock arithmetic and the operator's intent can bear.
    fn check_durations(&self, problems: &mut Vec<Problem>) {
        const MAX: Duration = Duration::from_secs(3600);
        for (key, value) in [
            ("exchange.deadline", self.exchange.deadline),
            ("attestation.leeway", self.attestation.leeway),
        ] {
            if let Some(value) = value.filter(|v| *v > MAX || v.is_zero()) {
                problems.push(Problem {
                    key: key.into(),
                    message: format!(
                        "{} is outside 1 ms..=1 h",
                        humantime::format_duration(value)
                    ),
                });
            }
        }
    }

    /// Tokens and secrets travel over TLS unless the operator allows plain HTTP, and the KMS
    /// route's calls go to Google unless the operator allows other endpoints.
    fn check_transport(&self, problems: &mut Vec<Problem>) {
        let allow_http = self.network.allow_plain_http;
        let mut check_url = |key: String, url: &str, google_only: bool| {
            let scheme_ok =
                url.starts_with("https://") || (allow_http && url.starts_with("http://"));
            if !scheme_ok {
                let message = if url.starts_with("http://") {
                    format!("\"{url}\" is plain HTTP: tokens and secrets would cross the network unencrypted; use https://, or set [network] allow_plain_http = true for a local test setup")
                } else {
                    format!("\"{url}\" must start with https://")
                };
                problems.push(Problem { key, message });
                return;
            }
            let parsed = url::Url::parse(url).ok();
            if parsed
                .as_ref()
                .is_some_and(|u| !u.username().is_empty() || u.password().is_some())
            {
                problems.push(Problem {
                    key: key.clone(),
                    message: "carries a user name or password; credentials do not belong in an address (it is shown in errors and logs)".into(),
                });
            }
            let host = parsed.and_then(|u| u.host_str().map(str::to_ascii_lowercase));
            let on_google = host
                .as_deref()
                .is_some_and(|h| h == "googleapis.com" || h.ends_with(".googleapis.com"));
            if google_only && !on_google && !self.google.allow_custom_endpoints {
                problems.push(Problem {
                    key,
                    message: format!("\"{url}\" is not on googleapis.com; the attestation token and Google credentials are posted there. Set [google] allow_custom_endpoints = true only for a stand-in you run yourself"),
                });
            }
        };
        for (key, url) in [
            ("attestation.jwks_url", &self.attestation.jwks_url),
            ("attestation.discovery_url", &self.attestation.discovery_url),
        ] {
            if let Some(url) = url {
                check_url(key.into(), url, false);
            }
        }
        if self.collaborators.iter().any(|c| c.kms.is_some()) {
            let google = &self.google;
            for (key, url) in [
                ("google.sts_endpoint", &google.sts_endpoint),
                (
                    "google.iamcredentials_endpoint",
                    &google.iamcredentials_endpoint,
                ),
                ("google.kms_endpoint", &google.kms_endpoint),
            ] {
                check_url(key.into(), url, true);
            }
        }
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            for address in collaborator
                .vault
                .iter()
                .flat_map(VaultConfig::all_addresses)
            {
                check_url(
                    format!(
                        "collaborator[{index}] ({}).vault.address",
                        collaborator.name
                    ),
                    &address,
                    false,
                );
            }
        }
    }

    /// Plugin limits stay within what the host can bear for one collaborator, and native code is
    /// loaded only where the operator vouches for it.
    fn check_plugins(&self, problems: &mut Vec<Problem>) {
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let at = |key: &str| format!("collaborator[{index}] ({}).{key}", collaborator.name);
            for (key, value, max) in [
                (
                    "limits.deadline_ms",
                    collaborator.limits.deadline_ms,
                    Limits::MAX.deadline_ms,
                ),
                (
                    "limits.memory_bytes",
                    collaborator.limits.memory_bytes,
                    Limits::MAX.memory_bytes,
                ),
                (
                    "limits.log_bytes",
                    collaborator.limits.log_bytes,
                    Limits::MAX.log_bytes,
                ),
            ] {
                if value == 0 || value > max {
                    problems.push(Problem {
                        key: at(key),
                        message: format!("{value} is outside 1..={max}: a collaborator's plugin may not hold the host longer or make it allocate more than that"),
                    });
                }
            }
            if collaborator.plugin_compiled.is_some() && !self.plugins.trust_precompiled {
                problems.push(Problem {
                    key: at("plugin_compiled"),
                    message: "a precompiled plugin is native code that runs outside the sandbox: build it yourself at image build time with `attestgate plugin compile` (it is reproducible, so the pin can be checked), then set [plugins] trust_precompiled = true".into(),
                });
            }
        }
    }

    /// One plugin spec per collaborator, in order.
    pub fn plugin_specs(&self) -> Vec<PluginSpec> {
        self.collaborators
            .iter()
            .zip(&self.plugin_configs)
            .enumerate()
            .map(|(index, (collaborator, config))| PluginSpec {
                collaborator: collaborator.name.clone(),
                audience: Some(self.received_audience(index).to_owned()),
                path: collaborator.plugin.clone(),
                sha256: collaborator.plugin_sha256.trim().to_ascii_lowercase(),
                precompiled: collaborator
                    .plugin_compiled
                    .as_ref()
                    .map(|path| Precompiled {
                        path: path.clone(),
                        sha256: collaborator
                            .plugin_compiled_sha256
                            .as_deref()
                            .unwrap_or_default()
                            .trim()
                            .to_ascii_lowercase(),
                    }),
                config: config.clone(),
                limits: collaborator.limits,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration of `collaborators`, each `(name, [(file, env)])`, and its problems.
    fn problems_of(collaborators: &[(&str, &[(&str, &str)])], extra: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let mut text = format!("[network]\nallow_plain_http = true\n{extra}\n");
        for (name, secrets) in collaborators {
            text += &format!(
                "[[collaborator]]\nname = \"{name}\"\naudience = \"https://vault.{name}.example\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n[collaborator.vault]\naddress = \"http://127.0.0.1:8200\"\n",
                wasm.display(),
                "a".repeat(64)
            );
            for (file, env) in *secrets {
                text += &format!(
                    "[[collaborator.secret]]\npath = \"kv/data/x\"\nfile = \"{file}\"\nenv = \"{env}\"\n"
                );
            }
        }
        match Config::parse(&text, &dir.path().join("attestgate.toml")) {
            Ok(_) => Vec::new(),
            Err(err) => err
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
        }
    }

    #[test]
    fn two_secrets_may_not_share_a_destination_in_any_spelling() {
        let problems = problems_of(
            &[(
                "bank-a",
                &[
                    ("/run/secrets/bank-a/x", "BANK_A_X"),
                    ("/run/secrets/bank-a/./x", "BANK_A_X"),
                ],
            )],
            "",
        );
        assert!(problems.iter().any(|m| m.starts_with("collaborator[0] (bank-a).secret[1].file: /run/secrets/bank-a/x is already the destination of collaborator[0] (bank-a).secret[0].file")), "{problems:?}");
        assert!(
            problems.iter().any(|m| m
                .starts_with("collaborator[0] (bank-a).secret[1].env: BANK_A_X is already set by")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_collaborators_files_are_confined_to_its_own_directory() {
        for escape in [
            "/run/secrets/bank-b/pw",
            "/run/secrets/bank-a/../bank-b/pw",
            "/etc/ld.so.preload",
            "/run/secrets/bank-a",
        ] {
            let problems = problems_of(
                &[
                    ("bank-a", &[(escape, "BANK_A_X")]),
                    ("bank-b", &[("/run/secrets/bank-b/pw", "BANK_B_X")]),
                ],
                "",
            );
            assert!(
                problems
                    .iter()
                    .any(|m| m.starts_with("collaborator[0] (bank-a).secret[0].file")),
                "{escape}: {problems:?}"
            );
        }
        let nested = problems_of(
            &[(
                "bank-a",
                &[
                    ("/run/secrets/bank-a/d", "A"),
                    ("/run/secrets/bank-a/d/x", "B"),
                ],
            )],
            "",
        );
        assert!(
            nested
                .iter()
                .any(|m| m.contains("a directory and a file in it")),
            "{nested:?}"
        );
    }

    #[test]
    fn a_destination_may_not_overwrite_a_file_attestgate_reads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let config = format!("{root}/bank-a/attestgate.toml");
        let problems = problems_of(
            &[("bank-a", &[(&config, "BANK_A_X")])],
            &format!("[delivery]\nroot = \"{root}\"\n[attestation]\njwks_file = \"{config}\""),
        );
        assert!(
            problems
                .iter()
                .any(|m| m.contains("which attestgate itself reads")),
            "{problems:?}"
        );
    }

    #[test]
    fn loader_variables_and_foreign_prefixes_are_refused() {
        let problems = problems_of(
            &[("bank-a", &[("/run/secrets/bank-a/x", "LD_PRELOAD")])],
            "",
        );
        assert!(
            problems
                .iter()
                .any(|m| m.contains("LD_PRELOAD may not be set")),
            "{problems:?}"
        );
        let problems = problems_of(
            &[("bank-a", &[("/run/secrets/bank-a/x", "BANK_B_PASSWORD")])],
            "[delivery]\nenv_prefix = true",
        );
        assert!(
            problems
                .iter()
                .any(|m| m.contains("must start with BANK_A_")),
            "{problems:?}"
        );
        assert!(problems_of(
            &[("bank-a", &[("/run/secrets/bank-a/x", "BANK_A_X")])],
            "[delivery]\nenv_prefix = true"
        )
        .is_empty());
    }

    #[test]
    fn variables_that_steer_other_programs_are_refused_and_prefixes_may_not_overlap() {
        for variable in [
            "VAULT_ADDR",
            "GIT_CONFIG_COUNT",
            "HTTPS_PROXY",
            "PUBSUB_EMULATOR_HOST",
            "OPENSSL_CONF",
        ] {
            let problems = problems_of(
                &[("bank-a", &[("/run/secrets/bank-a/x", variable)])],
                "[delivery]\nenv_prefix = false",
            );
            assert!(
                problems
                    .iter()
                    .any(|m| m.contains("may not be set by a collaborator")),
                "{variable}: {problems:?}"
            );
        }
        // Prefixes are on by default, and "bank" would cover "bank-a"'s BANK_A_.
        let problems = problems_of(
            &[
                ("bank", &[("/run/secrets/bank/x", "BANK_X")]),
                ("bank-a", &[("/run/secrets/bank-a/x", "BANK_A_X")]),
            ],
            "",
        );
        assert!(
            problems
                .iter()
                .any(|m| m.starts_with("collaborator[1] (bank-a).name")
                    && m.contains("overlaps collaborator[0] (bank)")),
            "{problems:?}"
        );
    }

    #[test]
    fn plugin_limits_are_bounded_and_native_code_needs_the_operators_word() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let cwasm = dir.path().join("plugin.cwasm");
        std::fs::write(&cwasm, b"native").unwrap();
        let text = format!(
            "[[collaborator]]\nname = \"mallory\"\naudience = \"https://vault.mallory.example\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\nplugin_compiled = \"{}\"\nplugin_compiled_sha256 = \"{}\"\n[collaborator.limits]\ndeadline_ms = 3600000\nlog_bytes = 1099511627776\n",
            wasm.display(),
            "a".repeat(64),
            cwasm.display(),
            "b".repeat(64)
        );
        let err = Config::parse(&text, &dir.path().join("attestgate.toml")).unwrap_err();
        for key in ["limits.deadline_ms", "limits.log_bytes", "plugin_compiled"] {
            assert!(
                err.problems
                    .iter()
                    .any(|p| p.key == format!("collaborator[0] (mallory).{key}")),
                "{key}: {err}"
            );
        }
        let trusted = format!("[plugins]\ntrust_precompiled = true\n{text}")
            .replace("3600000", "100")
            .replace("1099511627776", "16384");
        Config::parse(&trusted, &dir.path().join("attestgate.toml")).unwrap();
    }

    #[test]
    fn a_kms_section_is_checked_when_the_file_loads() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let with = |kms_extra: &str, vault: bool| {
            let text = format!(
                "[[collaborator]]\nname = \"bank-c\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n{}[collaborator.kms]\nworkload_identity_provider = \"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/c\"\nkey = \"projects/c/locations/global/keyRings/r/cryptoKeys/k\"\n{kms_extra}",
                wasm.display(),
                "a".repeat(64),
                if vault { "[collaborator.vault]\naddress = \"https://vault.bank-c.example\"\n" } else { "" }
            );
            Config::parse(&text, &dir.path().join("attestgate.toml"))
                .err()
                .map(|e| {
                    e.problems
                        .into_iter()
                        .map(|p| format!("{}: {}", p.key, p.message))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let missing = with("", true);
        assert!(
            missing.iter().any(|m| m.contains("needs ciphertext_file")),
            "{missing:?}"
        );
        let both = with("ciphertext = \"YQ==\"\nciphertext_file = \"c.enc\"\n", true);
        assert!(both.iter().any(|m| m.contains("not both")), "{both:?}");
        let no_vault = with("ciphertext = \"YQ==\"\n", false);
        assert!(
            no_vault
                .iter()
                .any(|m| m.contains("add [collaborator.vault]")),
            "{no_vault:?}"
        );
        assert!(with("ciphertext = \"YQ==\"\n", true).is_empty());
    }

    #[test]
    fn a_kms_collaborator_cannot_reuse_anothers_provider_key_or_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let provider = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/bank-c";
        let kms = |name: &str, audience: &str| {
            format!(
                "[[collaborator]]\nname = \"{name}\"\naudience = \"{audience}\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n[collaborator.kms]\nworkload_identity_provider = \"{provider}\"\nkey = \"projects/bank-c/locations/global/keyRings/r/cryptoKeys/k\"\nciphertext = \"c2VjcmV0\"\n",
                wasm.display(),
                "a".repeat(64)
            )
        };
        let text = kms("bank-c", provider) + &kms("mallory", "https://sts.googleapis.com");
        let err = Config::parse(&text, &dir.path().join("attestgate.toml")).unwrap_err();
        for key in [
            "kms.workload_identity_provider",
            "kms.key",
            "kms.ciphertext",
            "audience",
        ] {
            assert!(
                err.problems
                    .iter()
                    .any(|p| p.key == format!("collaborator[1] (mallory).{key}")),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn a_read_that_reaches_the_delivery_root_through_dot_dot_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("secrets");
        std::fs::create_dir_all(root.join("bank-b")).unwrap();
        std::fs::create_dir_all(root.join("mallory")).unwrap();
        std::fs::write(root.join("bank-b/creds.json"), "{}").unwrap();
        std::os::unix::fs::symlink(&root, dir.path().join("alias")).unwrap();
        for sneaky in [
            format!("{}/mallory/../bank-b/creds.json", root.display()),
            format!("{}/alias/bank-b/creds.json", dir.path().display()),
        ] {
            let problems = problems_of(
                &[("mallory", &[])],
                &format!(
                    "[delivery]\nroot = \"{}\"\n[attestation]\njwks_file = \"{sneaky}\"",
                    root.display()
                ),
            );
            assert!(
                problems.iter().any(|m| m.starts_with("delivery.root")),
                "{sneaky}: {problems:?}"
            );
        }
    }

    #[test]
    fn a_fifo_or_a_device_is_not_read_as_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_small_file(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(read_small_file(&fifo).is_err(), "refused without blocking");
    }

    #[test]
    fn credentials_in_an_address_and_absurd_durations_are_refused() {
        let problems = problems_of(
            &[("bank-a", &[])],
            "[attestation]\njwks_url = \"https://user:pass@keys.example/jwks\"\nleeway = \"10000h\"\n[exchange]\ndeadline = \"100000h\"",
        );
        for key in [
            "attestation.jwks_url",
            "attestation.leeway",
            "exchange.deadline",
        ] {
            assert!(
                problems.iter().any(|m| m.starts_with(key)),
                "{key}: {problems:?}"
            );
        }
    }

    #[test]
    fn files_attestgate_reads_may_not_lie_under_the_delivery_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let problems = problems_of(
            &[("bank-a", &[])],
            &format!(
                "[delivery]\nroot = \"{root}\"\n[attestation]\njwks_file = \"{root}/bank-b/creds\""
            ),
        );
        assert!(
            problems
                .iter()
                .any(|m| m.starts_with("delivery.root") && m.contains("bank-b/creds")),
            "{problems:?}"
        );
    }

    /// bank-a with a Vault at https://vault.bank-a.example and `vault_extra` lines in its
    /// `[collaborator.vault]`, after `before` (operator sections), parsed in a fresh directory.
    fn parse_bank_a(
        before: &str,
        vault_extra: &str,
    ) -> (tempfile::TempDir, Result<Config, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let text = format!(
            "{}\n[[collaborator]]\nname = \"bank-a\"\naudience = \"https://vault.bank-a.example\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n[collaborator.vault]\naddress = \"https://vault.bank-a.example\"\n{vault_extra}\n",
            before.replace("{dir}", &dir.path().display().to_string()),
            wasm.display(),
            "a".repeat(64)
        );
        let parsed = Config::parse(&text, &dir.path().join("attestgate.toml"));
        (dir, parsed)
    }

    #[test]
    fn a_vault_role_that_could_forge_output_is_refused() {
        let (_dir, parsed) =
            parse_bank_a("", "role = \"a\\nbank-b           released 1 secret(s)\"");
        let err = parsed.unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.key == "collaborator[0] (bank-a).vault.role"),
            "{err}"
        );
    }

    #[test]
    fn names_and_namespaces_that_could_forge_output_or_headers_are_refused() {
        let problems = problems_of(&[("bank-a\\nreleased", &[])], "");
        assert!(
            problems
                .iter()
                .any(|m| m.starts_with("collaborator[0].name")),
            "{problems:?}"
        );
        let (_dir, parsed) = parse_bank_a("", "namespace = \"team\\r\\nX-Injected: 1\"");
        let err = parsed.unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.key == "collaborator[0] (bank-a).vault.namespace"),
            "{err}"
        );
    }

    #[test]
    fn a_relative_token_file_resolves_against_the_configuration_file() {
        let (dir, parsed) = parse_bank_a(
            "[delivery]\nroot = \"{dir}/out\"",
            "token_file = \"out/bank-a/vault-token\"",
        );
        let config = parsed.unwrap();
        assert_eq!(
            config.collaborators[0].route.vault().unwrap().token_file,
            Some(dir.path().join("out/bank-a/vault-token"))
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
        assert!(
            keys.contains(&"collaborator[0] (bank-a).plugin_confg"),
            "unknown and invalid keys are located alike: {err}"
        );
        assert!(keys.contains(&"attestation.source"), "{err}");
        assert!(
            keys.contains(&"collaborator[0] (bank-a).plugin_sha256"),
            "{err}"
        );
        assert!(keys.contains(&"collaborator[0] (bank-a).plugin"), "{err}");
        assert!(keys.contains(&"collaborator[0] (bank-a).audience"), "{err}");
        assert!(keys.contains(&"attestation.jwks_url"), "{err}");
        assert!(
            err.to_string()
                .starts_with("/etc/attestgate.toml has 7 problems:"),
            "{err}"
        );
        assert!(
            err.to_string().contains("/etc/missing.wasm does not exist"),
            "relative paths resolve against the file: {err}"
        );
    }
}
