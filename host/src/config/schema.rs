//! The configuration file's shape: every section and key, with its default. Plain data; the
//! rules live in `validate`, path resolution in `files`.

use super::agent::{AgentConfig, CollaboratorAgentConfig};
use super::delivery::DeliveryConfig;
use crate::attestation::{
    JwksCache, KeyCacheOptions, KeySource, PkiRoot, Verifier, VerifyPolicy,
    DEFAULT_LAUNCHER_SOCKET, DEFAULT_LEEWAY, DEFAULT_TOKEN_FILE, GOOGLE_ISSUER,
};
use crate::http::SystemRoots;
use crate::plugin::LimitOverrides;
#[cfg(doc)]
use crate::plugin::Limits;
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
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
    /// a discovery document), the leeway, the size limit and the pinned PKI root; an `https` key
    /// source trusts `system_roots`.
    pub fn verifier(&self, system_roots: &SystemRoots) -> Result<Verifier, VerifierSetupError> {
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
            system_roots: system_roots.clone(),
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
    /// Which compiler turns plugins into native code at start-up.
    #[serde(default)]
    pub compiler: CompilerChoice,
}

/// `[plugins] compiler`: which compiler turns plugins into native code at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompilerChoice {
    /// Winch for a one-shot run (`exchange`), whose start-up is mostly compiling; Cranelift for
    /// the long-running agent, and wherever a collaborator has a precompiled artifact (which is
    /// Cranelift code) or the host is not x86-64 (Winch's other backends are not finished).
    #[default]
    Auto,
    /// Always the optimising compiler.
    Cranelift,
    /// Always the baseline compiler; incompatible with precompiled artifacts.
    Winch,
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
    /// Which kind of role `role` names: a classic JWT role (`auth/<mount>/login`, the default) or
    /// an OpenBao CEL role (`auth/<mount>/cel/login`).
    #[serde(default)]
    pub role_kind: RoleKind,
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

/// The kind of Vault role a collaborator logs in with, which decides the login endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RoleKind {
    /// A classic JWT role: `auth/<mount>/role/<name>`, logged in at `auth/<mount>/login`.
    #[default]
    Jwt,
    /// An OpenBao CEL role: `auth/<mount>/cel/role/<name>`, logged in at `auth/<mount>/cel/login`.
    Cel,
}

impl RoleKind {
    /// The login path under `auth/<mount>/`.
    pub fn login_path(self, mount: &str) -> String {
        let mount = mount.trim_matches('/');
        match self {
            RoleKind::Jwt => format!("auth/{mount}/login"),
            RoleKind::Cel => format!("auth/{mount}/cel/login"),
        }
    }
}

impl fmt::Display for RoleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RoleKind::Jwt => "JWT",
            RoleKind::Cel => "CEL",
        })
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
    /// Request the secret with a write carrying these parameters instead of a read, as engines
    /// that issue a new secret per request require (PKI's `pki/issue/<role>`, say).
    #[serde(default)]
    pub write: Option<serde_json::Map<String, serde_json::Value>>,
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
    /// `[collaborator.limits]`: the plugin's deadline, memory and log budget; what is left out
    /// takes the default for the plugin's kind ([`Limits::defaults_for`]).
    #[serde(default)]
    pub limits: LimitOverrides,
    /// `[collaborator.vault]` as written; the exchange reads [`CollaboratorConfig::route`].
    pub(in crate::config) vault: Option<VaultConfig>,
    /// `[collaborator.kms]` as written: the KMS route instead of a JWT login.
    pub(in crate::config) kms: Option<KmsConfig>,
    /// `[[collaborator.secret]]`: the secrets to read once logged in (none by default).
    #[serde(default, rename = "secret")]
    pub secrets: Vec<SecretConfig>,
    /// `[collaborator.agent]`: what `attestgate agent` does when its secrets change or are
    /// revoked.
    #[serde(default)]
    pub agent: CollaboratorAgentConfig,
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

/// The file as written, before paths are resolved and rules checked.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) attestation: AttestationConfig,
    #[serde(default)]
    pub(super) exchange: ExchangeConfig,
    #[serde(default)]
    pub(super) google: GoogleConfig,
    #[serde(default)]
    pub(super) network: NetworkConfig,
    #[serde(default)]
    pub(super) delivery: DeliveryConfig,
    #[serde(default)]
    pub(super) plugins: PluginsConfig,
    #[serde(default)]
    pub(super) agent: AgentConfig,
    #[serde(default, rename = "collaborator")]
    pub(super) collaborators: Vec<CollaboratorConfig>,
}
