//! The attestgate configuration file (TOML): what to attest with, and for each collaborator, its
//! plugin, its Vault and the secrets it releases.
//!
//! Every problem is reported at once, each naming the file and the key. Unknown keys are errors
//! (collected with `serde_ignored` rather than `deny_unknown_fields`, so that all are reported):
//! a misspelled key must never be silently ignored the way Vault ignores `claims_mappings`.
//! Relative paths resolve against the configuration file's directory.

mod agent;
mod delivery;
mod files;
mod schema;
mod validate;

pub use agent::{
    AgentConfig, CollaboratorAgentConfig, OnChange, OnRevoke, RenewBefore, WorkloadSignal,
};
pub use delivery::{env_prefix_of, normalise_lexically, refused_variable, DeliveryConfig};
pub use schema::{
    AttestationConfig, CollaboratorConfig, CompilerChoice, ExchangeConfig, GoogleConfig, KmsConfig,
    LoginRoute, NetworkConfig, PluginsConfig, RoleKind, SecretConfig, TokenSourceKind, VaultConfig,
    VerifierSetupError, GOOGLE_DISCOVERY_URL,
};

use crate::attestation::DEFAULT_TOKEN_AUDIENCE;
use crate::plugin::{Compiler, PluginSpec, Precompiled};
use schema::RawConfig;
use std::path::{Path, PathBuf};

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
    /// `[agent]`: used by `attestgate agent` only.
    pub agent: AgentConfig,
    /// `[[collaborator]]`, in file order; audiences defaulted and routes built.
    pub collaborators: Vec<CollaboratorConfig>,
    /// Each collaborator's plugin configuration as JSON, in collaborator order.
    plugin_configs: Vec<serde_json::Value>,
}

/// How long the process that loads the plugins lives, which decides what compiling them costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    /// `exchange`: start, exchange once, exit. Compiling is most of a plugin's cost.
    OneShot,
    /// `agent`: plugins are compiled once and called for days.
    LongRunning,
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
            agent: raw.agent,
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

    /// The audience collaborator `index`'s token will carry: its own, or with `source = "file"`
    /// the default token's.
    pub fn received_audience(&self, index: usize) -> &str {
        match self.attestation.source {
            TokenSourceKind::File => DEFAULT_TOKEN_AUDIENCE,
            TokenSourceKind::Launcher => &self.collaborators[index].audience,
        }
    }

    /// The compiler for this configuration's plugins in a run of `kind`: see [`CompilerChoice`].
    pub fn plugin_compiler(&self, kind: RunKind) -> Compiler {
        let precompiled = self
            .collaborators
            .iter()
            .any(|collaborator| collaborator.plugin_compiled.is_some());
        match (self.plugins.compiler, kind) {
            (CompilerChoice::Cranelift, _) => Compiler::Cranelift,
            (CompilerChoice::Winch, _) => Compiler::Winch,
            (CompilerChoice::Auto, RunKind::OneShot) => Compiler::for_one_shot(precompiled),
            (CompilerChoice::Auto, RunKind::LongRunning) => Compiler::Cranelift,
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
                vault_role: match &collaborator.route {
                    LoginRoute::Jwt { vault } => vault.role.clone(),
                    LoginRoute::PolicyOnly | LoginRoute::Kms { .. } => None,
                },
                limits: collaborator.limits,
            })
            .collect()
    }
}
