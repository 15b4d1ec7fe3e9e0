//! A typed builder for attestgate's TOML configuration: every test writes its configuration the
//! same way, and says only what differs. What the types cannot say (a key attestgate must refuse,
//! say) goes in as a TOML fragment, with `raw`.

use super::google::GoogleStandIn;
use super::openbao::OpenBao;
use super::plugins::{plugin_wasm, sha256_file};
use attestgate::dev::LauncherInfo;
use serde_json::Value;
use std::path::{Path, PathBuf};
use toml::{Table, Value as Toml};

/// An attestgate.toml, written with the plugin configurations it refers to by `write`.
#[derive(Clone)]
pub struct ConfigBuilder {
    dir: PathBuf,
    /// The operator's sections: everything but the collaborators.
    operator: Table,
    collaborators: Vec<Collaborator>,
}

impl ConfigBuilder {
    /// An empty configuration, to be written into `dir`.
    pub fn new(dir: &Path) -> Self {
        ConfigBuilder {
            dir: dir.to_owned(),
            operator: Table::new(),
            collaborators: Vec::new(),
        }
    }

    /// The operator's sections of a local setup: tokens from `launcher`, and plain HTTP allowed,
    /// as the local servers speak it.
    pub fn local(dir: &Path, launcher: &LauncherInfo) -> Self {
        Self::new(dir).launcher(launcher).allow_plain_http(true)
    }

    /// Tokens from `launcher`'s socket, verified against its JWKS.
    pub fn launcher(self, launcher: &LauncherInfo) -> Self {
        self.set("attestation", "launcher_socket", path(&launcher.socket))
            .jwks_url(&launcher.jwks_url)
    }

    /// Tokens verified against the keys at `url`.
    pub fn jwks_url(self, url: &str) -> Self {
        self.set("attestation", "jwks_url", url)
    }

    /// The issuer's keys through this OIDC discovery document, instead of a JWKS URL.
    pub fn discovery_url(mut self, url: &str) -> Self {
        if let Some(Toml::Table(attestation)) = self.operator.get_mut("attestation") {
            attestation.remove("jwks_url");
        }
        self.set("attestation", "discovery_url", url)
    }

    /// Every collaborator gets the launcher's default token, read from `token_file`.
    pub fn token_file_source(self, token_file: &Path) -> Self {
        self.set("attestation", "source", "file")
            .set("attestation", "token_file", path(token_file))
    }

    /// The operator's opt-in to the default token, whose audience is Google's STS.
    pub fn allow_default_audience(self) -> Self {
        self.set("attestation", "allow_default_audience", true)
    }

    pub fn allow_plain_http(self, allow: bool) -> Self {
        self.set("network", "allow_plain_http", allow)
    }

    /// Where the KMS route's calls to Google go.
    pub fn google(self, google: Google) -> Self {
        let with_endpoints = self
            .set("google", "sts_endpoint", google.sts_endpoint)
            .set(
                "google",
                "iamcredentials_endpoint",
                google.iamcredentials_endpoint,
            )
            .set("google", "kms_endpoint", google.kms_endpoint);
        // Written only when on: an operator who never opted in has no such line.
        if google.allow_custom_endpoints {
            with_endpoints.set("google", "allow_custom_endpoints", true)
        } else {
            with_endpoints
        }
    }

    /// Each collaborator's exchange must finish within `deadline`, e.g. "3s".
    pub fn deadline(self, deadline: &str) -> Self {
        self.set("exchange", "deadline", deadline)
    }

    /// Deliver what succeeded even when some collaborator failed.
    pub fn partial(self) -> Self {
        self.set("exchange", "partial", true)
    }

    /// Every collaborator's files go under `root/<its name>/`.
    pub fn delivery_root(self, root: &Path) -> Self {
        self.set("delivery", "root", path(root))
    }

    /// `[agent] key = value`.
    pub fn agent(self, key: &str, value: &str) -> Self {
        self.set("agent", key, value)
    }

    /// Load `plugin_compiled` artifacts: the operator vouches that it built them.
    pub fn trust_precompiled(self) -> Self {
        self.set("plugins", "trust_precompiled", true)
    }

    pub fn collaborator(mut self, collaborator: Collaborator) -> Self {
        self.collaborators.push(collaborator);
        self
    }

    /// Writes attestgate.toml, and the plugin configuration files it refers to, into the
    /// directory; returns its path.
    pub fn write(&self) -> PathBuf {
        let mut document = self.operator.clone();
        let collaborators = self
            .collaborators
            .iter()
            .map(|c| Toml::Table(c.write_into(&self.dir)))
            .collect();
        document.insert("collaborator".into(), Toml::Array(collaborators));
        let path = self.dir.join("attestgate.toml");
        std::fs::write(&path, toml::to_string(&document).unwrap()).unwrap();
        path
    }

    fn set(mut self, section: &str, key: &str, value: impl Into<Toml>) -> Self {
        self.operator
            .entry(section)
            .or_insert_with(|| Toml::Table(Table::new()))
            .as_table_mut()
            .unwrap()
            .insert(key.into(), value.into());
        self
    }
}

/// The operator's `[google]` endpoints.
pub struct Google {
    pub sts_endpoint: String,
    pub iamcredentials_endpoint: String,
    pub kms_endpoint: String,
    pub allow_custom_endpoints: bool,
}

impl Google {
    /// Every endpoint at the local stand-in, which the operator allows explicitly.
    pub fn stand_in(google: &GoogleStandIn) -> Self {
        Google {
            sts_endpoint: google.endpoint.clone(),
            iamcredentials_endpoint: google.endpoint.clone(),
            kms_endpoint: google.endpoint.clone(),
            allow_custom_endpoints: true,
        }
    }
}

/// How a plugin's configuration is given.
#[derive(Clone)]
enum PluginConfig {
    Inline(Value),
    /// In a JSON file beside attestgate.toml, written with it.
    File(Value),
}

/// One `[[collaborator]]`, running one of the plugins built from the plugins workspace.
#[derive(Clone)]
pub struct Collaborator {
    name: String,
    table: Table,
    plugin_config: Option<PluginConfig>,
    vault: Option<Vault>,
    kms: Option<Kms>,
    secrets: Vec<Secret>,
    raw: Vec<Table>,
}

impl Collaborator {
    /// `name`, running `plugin` (such as "confidential-space"), pinned by its sha256.
    pub fn new(name: &str, plugin: &str) -> Self {
        Self::with_plugin_file(name, &plugin_wasm(plugin))
    }

    /// `name`, running the plugin file at `wasm`, pinned by its sha256.
    pub fn with_plugin_file(name: &str, wasm: &Path) -> Self {
        let mut table = Table::new();
        table.insert("name".into(), name.into());
        table.insert("plugin_sha256".into(), sha256_file(wasm).into());
        table.insert("plugin".into(), path(wasm).into());
        Collaborator {
            name: name.into(),
            table,
            plugin_config: None,
            vault: None,
            kms: None,
            secrets: Vec::new(),
            raw: Vec::new(),
        }
    }

    /// `bound-claims`, configured with a Vault role's JSON in a file (as an operator copies it
    /// from its Vault), declaring the role's first bound audience.
    pub fn bound_claims(name: &str, role: Value) -> Self {
        let audience = role["bound_audiences"][0]
            .as_str()
            .expect("the role binds an audience")
            .to_owned();
        Self::new(name, "bound-claims")
            .audience(&audience)
            .plugin_config_file(role)
    }

    /// The audience the operator reviewed: the plugin must select exactly this one.
    pub fn audience(self, audience: &str) -> Self {
        self.set("audience", audience)
    }

    /// Pins `sha256` instead of the plugin's own digest.
    pub fn plugin_sha256(self, sha256: &str) -> Self {
        self.set("plugin_sha256", sha256)
    }

    /// The plugin's configuration, inline.
    pub fn plugin_config(mut self, config: Value) -> Self {
        self.plugin_config = Some(PluginConfig::Inline(config));
        self
    }

    /// The plugin's configuration, in a JSON file.
    pub fn plugin_config_file(mut self, config: Value) -> Self {
        self.plugin_config = Some(PluginConfig::File(config));
        self
    }

    /// The plugin precompiled by `attestgate plugin compile`, pinned by `sha256`.
    pub fn plugin_compiled(self, artifact: &Path, sha256: &str) -> Self {
        self.set("plugin_compiled", path(artifact))
            .set("plugin_compiled_sha256", sha256)
    }

    pub fn vault(mut self, vault: impl Into<Vault>) -> Self {
        self.vault = Some(vault.into());
        self
    }

    /// The KMS route instead of a JWT login.
    pub fn kms(mut self, kms: Kms) -> Self {
        self.kms = Some(kms);
        self
    }

    pub fn secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
        self
    }

    /// Merges a TOML fragment into this collaborator's table (`kms.sts_endpoint = "…"`, say).
    pub fn raw(mut self, fragment: &str) -> Self {
        self.raw.push(
            fragment
                .parse()
                .unwrap_or_else(|e| panic!("{fragment}: {e}")),
        );
        self
    }

    fn set(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.table.insert(key.into(), value.into());
        self
    }

    /// This collaborator's table, its plugin configuration file written into `dir` if it has one.
    fn write_into(&self, dir: &Path) -> Table {
        let mut table = self.table.clone();
        match &self.plugin_config {
            Some(PluginConfig::Inline(config)) => {
                let config = Toml::try_from(config).expect("a plugin configuration TOML can hold");
                table.insert("plugin_config".into(), config);
            }
            Some(PluginConfig::File(config)) => {
                let file = dir.join(format!("{}-plugin.json", self.name));
                std::fs::write(&file, config.to_string()).unwrap();
                table.insert("plugin_config_file".into(), path(&file).into());
            }
            None => {}
        }
        if let Some(vault) = &self.vault {
            table.insert("vault".into(), Toml::Table(vault.0.clone()));
        }
        if let Some(kms) = &self.kms {
            table.insert("kms".into(), Toml::Table(kms.0.clone()));
        }
        if !self.secrets.is_empty() {
            let secrets = self.secrets.iter().map(|s| Toml::Table(s.0.clone()));
            table.insert("secret".into(), Toml::Array(secrets.collect()));
        }
        for fragment in &self.raw {
            merge(&mut table, fragment);
        }
        table
    }
}

/// A collaborator's `[collaborator.vault]`.
#[derive(Clone)]
pub struct Vault(Table);

impl Vault {
    pub fn at(address: &str) -> Self {
        Vault(Table::new()).set("address", address)
    }

    /// The nodes of an HA cluster, tried in order.
    pub fn cluster(addresses: &[&str]) -> Self {
        let addresses: Vec<Toml> = addresses.iter().map(|&a| a.into()).collect();
        Vault(Table::new()).set("addresses", addresses)
    }

    /// The JWT role to log in with.
    pub fn role(self, role: &str) -> Self {
        self.set("role", role)
    }

    /// `jwt` (a classic role, the default) or `cel` (an OpenBao CEL role).
    pub fn role_kind(self, kind: &str) -> Self {
        self.set("role_kind", kind)
    }

    /// The CA that signed the Vault's TLS certificate.
    pub fn ca_cert(self, ca: &Path) -> Self {
        self.set("ca_cert", path(ca))
    }

    /// The client certificate and key presented for mTLS.
    pub fn client_identity(self, cert: &Path, key: &Path) -> Self {
        self.set("client_cert", path(cert))
            .set("client_key", path(key))
    }

    pub fn namespace(self, namespace: &str) -> Self {
        self.set("namespace", namespace)
    }

    /// Keep the Vault token rather than revoke it once the secrets are read.
    pub fn keep_token(self) -> Self {
        self.set("keep_token", true)
    }

    /// Keep the Vault token, delivered in this file.
    pub fn token_file(self, file: &Path) -> Self {
        self.set("token_file", path(file))
    }

    fn set(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }
}

/// The server's address, and its CA if it serves TLS.
impl From<&OpenBao> for Vault {
    fn from(bao: &OpenBao) -> Self {
        let vault = Vault::at(&bao.addr);
        match bao.ca_cert() {
            Some(ca) => vault.ca_cert(&ca),
            None => vault,
        }
    }
}

/// A collaborator's `[collaborator.kms]`: its VAULT_TOKEN, encrypted with its Cloud KMS key.
#[derive(Clone)]
pub struct Kms(Table);

impl Kms {
    /// The ciphertext in `ciphertext_file`, decrypted with `key` by a token federated through
    /// the workload identity `provider`.
    pub fn new(provider: &str, key: &str, ciphertext_file: &Path) -> Self {
        let mut table = Table::new();
        table.insert("workload_identity_provider".into(), provider.into());
        table.insert("key".into(), key.into());
        table.insert("ciphertext_file".into(), path(ciphertext_file).into());
        Kms(table)
    }

    /// Decrypt as `service_account`, impersonated with the federated token.
    pub fn impersonating(mut self, service_account: &str) -> Self {
        self.0
            .insert("service_account".into(), service_account.into());
        self
    }
}

/// One `[[collaborator.secret]]`.
#[derive(Clone)]
pub struct Secret(Table);

impl Secret {
    /// The secret at this logical read path.
    pub fn at(path: &str) -> Self {
        Secret(Table::new()).set("path", path)
    }

    /// Only this field.
    pub fn field(self, field: &str) -> Self {
        self.set("field", field)
    }

    /// Delivered in this file.
    pub fn file(self, file: &Path) -> Self {
        self.set("file", path(file))
    }

    /// Requested with a write carrying `parameters` (PKI's `issue`, say).
    pub fn write(self, parameters: Value) -> Self {
        let parameters = Toml::try_from(parameters).expect("TOML can hold the parameters");
        self.set("write", parameters)
    }

    /// Delivered in this environment variable, to `attestgate exec`.
    pub fn env(self, name: &str) -> Self {
        self.set("env", name)
    }

    fn set(mut self, key: &str, value: impl Into<Toml>) -> Self {
        self.0.insert(key.into(), value.into());
        self
    }
}

fn path(path: &Path) -> String {
    path.to_str().expect("a UTF-8 path").to_owned()
}

/// Merges `fragment` into `table`: tables key by key, any other value replaced.
fn merge(table: &mut Table, fragment: &Table) {
    for (key, value) in fragment {
        match (table.get_mut(key), value) {
            (Some(Toml::Table(inner)), Toml::Table(value)) => merge(inner, value),
            _ => {
                table.insert(key.clone(), value.clone());
            }
        }
    }
}
