//! Where secrets may be delivered, checked before anything is minted.
//!
//! Collaborators do not trust each other, and the workload holds everyone's secrets. A
//! collaborator that could pick any file could overwrite another's secret (`/x/./b/pw` is
//! `/x/b/pw`), a file attestgate itself reads, or `/etc/ld.so.preload`; one that could pick any
//! environment variable could set `LD_PRELOAD` and run its Vault's answer as code inside the
//! workload. So each collaborator's files are confined to its own directory under the operator's
//! delivery root, paths are compared after lexical normalisation, and loader and interpreter
//! variables are refused outright.

use serde::Deserialize;
use std::path::{Component, Path, PathBuf};

/// The operator's delivery rules.
#[derive(Debug, Clone, Deserialize)]
pub struct DeliveryConfig {
    /// Every collaborator's files go under `<root>/<collaborator name>/`, and nowhere else.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// Require every environment variable a collaborator sets to start with its name in
    /// upper case, `-` and `.` as `_`, and a `_` (`BANK_A_` for "bank-a"). On by default: a
    /// variable named by one collaborator could otherwise steer a program that another's
    /// secrets pass through (`VAULT_ADDR` next to someone's `VAULT_TOKEN`).
    #[serde(default = "default_env_prefix")]
    pub env_prefix: bool,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            root: default_root(),
            env_prefix: default_env_prefix(),
        }
    }
}

fn default_env_prefix() -> bool {
    true
}

fn default_root() -> PathBuf {
    PathBuf::from("/run/secrets")
}

impl DeliveryConfig {
    /// The directory `collaborator`'s files are confined to.
    pub fn directory_of(&self, collaborator: &str) -> PathBuf {
        self.root.join(collaborator)
    }
}

/// The prefix `[delivery] env_prefix` requires of `collaborator`'s variables.
pub fn env_prefix_of(collaborator: &str) -> String {
    let mut prefix: String = collaborator
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    prefix.push('_');
    prefix
}

/// Variables that make a program load or run code, or trust other servers. A collaborator's
/// Vault answers with the value, so setting one would run that collaborator's code inside the
/// workload that holds everyone's secrets.
const REFUSED_VARIABLES: &[&str] = &[
    "PATH",
    "PAGER",
    "EDITOR",
    "VISUAL",
    "BROWSER",
    "ZDOTDIR",
    "OPENSSL_CONF",
    "OPENSSL_MODULES",
    "OPENSSL_ENGINES",
    "GRPC_PROXY",
    "GRPC_DEFAULT_SSL_ROOTS_FILE_PATH",
    "PHPRC",
    "PHP_INI_SCAN_DIR",
    "DOTNET_STARTUP_HOOKS",
    "CORECLR_PROFILER_PATH",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
    "R_PROFILE_USER",
    "R_ENVIRON_USER",
    "JAVA_HOME",
    "SHELL",
    "USER",
    "LOGNAME",
    "IFS",
    "ENV",
    "BASH_ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "PROMPT_COMMAND",
    "HOME",
    "TMPDIR",
    "GCONV_PATH",
    "GETCONF_DIR",
    "HOSTALIASES",
    "LOCPATH",
    "NLSPATH",
    "RESOLV_HOST_CONF",
    "RES_OPTIONS",
    "TZDIR",
    "GLIBC_TUNABLES",
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_EXTRA_CA_CERTS",
    "PERL5LIB",
    "PERL5OPT",
    "PERLLIB",
    "RUBYLIB",
    "RUBYOPT",
    "CLASSPATH",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "RUST_LOG",
    // Where Google's client libraries fetch credentials (inside Confidential Space, the
    // metadata server), where TLS libraries write their session keys, where the resolver
    // looks names up, where curses loads terminal descriptions from.
    "GCE_METADATA_HOST",
    "GCE_METADATA_IP",
    "GCE_METADATA_ROOT",
    "SSLKEYLOGFILE",
    "LOCALDOMAIN",
    "TERMINFO",
    "TERMINFO_DIRS",
];

/// Prefixes of refused variables (the dynamic loaders', Python's, malloc's, Go's runtime).
const REFUSED_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "PYTHON",
    "MALLOC_",
    "GODEBUG",
    "GOTRACEBACK",
    "GOFLAGS",
    "LUA_",
    "TCL",
    "NODE_",
    "NPM_CONFIG_",
    "GIT_",
    "VAULT_",
    "BAO_",
    "GOOGLE_",
    "CLOUDSDK_",
    "AWS_",
    "AZURE_",
    "XDG_",
    "LESS",
    "DOTNET_",
    "COMPLUS_",
    "CORECLR_",
    "BUNDLE_",
    "GEM_",
    "RUBY",
    "PERL",
    "JAVA",
    "_JAVA",
    "JDK_",
    "SSL_",
    "CURL_",
    "LC_",
    "LANG",
    "DOCKER_",
    "OTEL_",
    "PIP_",
    "UV_",
    "CONDA",
    "HF_",
    "TRANSFORMERS_",
    "TORCH",
    "CUDA",
    "NVIDIA_",
    "KRB5",
    "KUBE",
    "HELM_",
    "TF_",
    "CARGO_",
    "RUSTUP_",
    "RUSTC",
    "NPM_",
    "YARN_",
    "DENO_",
    "BUN_",
    "GRADLE_",
    "MAVEN_",
    "SPARK_",
    "HADOOP_",
    "JUPYTER",
];

/// Suffixes of refused variables (emulator hosts and proxies redirect a program's traffic).
const REFUSED_SUFFIXES: &[&str] = &["_EMULATOR_HOST", "_PROXY"];

/// Why `name` may not be set by a collaborator, if it may not.
pub fn refused_variable(name: &str) -> Option<&'static str> {
    let upper = name.to_ascii_uppercase();
    if REFUSED_VARIABLES.contains(&upper.as_str())
        || REFUSED_PREFIXES.iter().any(|p| upper.starts_with(p))
        || REFUSED_SUFFIXES.iter().any(|s| upper.ends_with(s))
    {
        return Some("it changes what programs load, run or trust; a collaborator's Vault would choose code that runs inside the workload");
    }
    None
}

/// `path` without `.` components and repeated separators. `None` if it has a `..`: whether that
/// goes where it says depends on symlinks, so it is refused rather than resolved.
pub fn normalise_lexically(path: &Path) -> Option<PathBuf> {
    let mut normal = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => return None,
            Component::CurDir => {}
            other => normal.push(other.as_os_str()),
        }
    }
    Some(normal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalisation_removes_dots_and_refuses_parents() {
        assert_eq!(
            normalise_lexically(Path::new("/x/./b//pw")),
            Some(PathBuf::from("/x/b/pw"))
        );
        assert_eq!(normalise_lexically(Path::new("/x/a/../b/pw")), None);
    }

    #[test]
    fn loader_and_interpreter_variables_are_refused() {
        for name in [
            "LD_PRELOAD",
            "ld_library_path",
            "PATH",
            "PYTHONPATH",
            "NODE_OPTIONS",
            "BASH_ENV",
        ] {
            assert!(refused_variable(name).is_some(), "{name}");
        }
        assert!(refused_variable("BANK_A_PASSWORD").is_none());
        assert_eq!(env_prefix_of("bank-a.eu"), "BANK_A_EU_");
    }
}
