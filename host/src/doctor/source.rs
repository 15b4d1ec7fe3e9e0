//! Reading a role, or a mount's configuration, from a running Vault, with the usual
//! `VAULT_ADDR`/`VAULT_TOKEN`/`VAULT_CACERT`/`VAULT_NAMESPACE` settings.

use super::error::DoctorError;
use crate::config::{RoleKind, VaultConfig};
use crate::http::SystemRoots;
use crate::vault::{RetryPolicy, VaultClient, VaultToken};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// Where and how to reach the Vault (what the `VAULT_*` variables say).
#[derive(Clone)]
pub struct VaultAccess {
    /// `VAULT_ADDR`.
    pub address: String,
    /// `VAULT_TOKEN`.
    pub token: VaultToken,
    /// `VAULT_CACERT`.
    pub ca_cert: Option<PathBuf>,
    /// `VAULT_NAMESPACE`.
    pub namespace: Option<String>,
    /// The JWT auth method's mount (`jwt`).
    pub mount: String,
    /// Send the token over plain HTTP to a host other than loopback.
    pub allow_plain_http: bool,
}

/// A role name as Vault accepts it (`\w(([\w-.@]+)?\w)?`), so that a name cannot walk the API
/// path (`../../sys/…`).
fn valid_role_name(name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let (Some(first), Some(last)) = (name.chars().next(), name.chars().last()) else {
        return false;
    };
    word(first)
        && word(last)
        && name
            .chars()
            .all(|c| word(c) || matches!(c, '-' | '.' | '@'))
        && !name.contains("..")
}

/// A mount path: words, `-`, `.` and `/` between them, no `..`.
fn valid_mount(mount: &str) -> bool {
    !mount.is_empty()
        && !mount
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..")
        && mount
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
}

/// Whether `address` is plain HTTP to a host other than loopback.
fn plain_http_off_host(address: &str) -> bool {
    match url::Url::parse(address) {
        Ok(url) if url.scheme() == "http" => {
            !matches!(
                url.host(),
                Some(url::Host::Ipv4(ip)) if ip.is_loopback()
            ) && !matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback())
                && url.host_str() != Some("localhost")
        }
        _ => false,
    }
}

/// What to read.
#[derive(Debug, Clone, Copy)]
pub enum VaultDocument<'a> {
    /// A role of this kind and name.
    Role(RoleKind, &'a str),
    /// The mount's `config`.
    Config,
}

/// Reads a role or the mount's configuration; returns its `data`.
pub async fn read_from_vault(
    access: &VaultAccess,
    document: VaultDocument<'_>,
) -> Result<Map<String, Value>, DoctorError> {
    let mount = access.mount.trim_matches('/');
    if !valid_mount(mount) {
        return Err(DoctorError::InvalidName {
            what: "mount",
            name: access.mount.clone(),
        });
    }
    if let VaultDocument::Role(_, name) = document {
        if !valid_role_name(name) {
            return Err(DoctorError::InvalidName {
                what: "role name",
                name: name.to_owned(),
            });
        }
    }
    if plain_http_off_host(&access.address) && !access.allow_plain_http {
        return Err(DoctorError::PlainHttp {
            address: access.address.clone(),
        });
    }
    let path = match document {
        VaultDocument::Role(RoleKind::Jwt, name) => format!("auth/{mount}/role/{name}"),
        VaultDocument::Role(RoleKind::Cel, name) => format!("auth/{mount}/cel/role/{name}"),
        VaultDocument::Config => format!("auth/{mount}/config"),
    };
    let config = VaultConfig {
        address: Some(access.address.clone()),
        addresses: Vec::new(),
        ca_cert: access.ca_cert.clone(),
        client_cert: None,
        client_key: None,
        auth_mount: mount.to_owned(),
        role: None,
        role_kind: RoleKind::Jwt,
        namespace: access.namespace.clone(),
        keep_token: false,
        token_file: None,
        token_env: None,
    };
    let vault_error = |source| DoctorError::Vault {
        path: path.clone(),
        source: Box::new(source),
    };
    let client = VaultClient::new(&config, RetryPolicy::default(), &SystemRoots::default())
        .map_err(vault_error)?;
    let response = client
        .read(&access.token, &path)
        .await
        .map_err(vault_error)?;
    match response.get("data") {
        Some(Value::Object(data)) => Ok(data.clone()),
        _ => Err(DoctorError::NoData { path }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_walk_the_api_path() {
        for good in ["bank-a", "bank_a.v2", "a", "x@y"] {
            assert!(valid_role_name(good), "{good}");
        }
        for bad in ["../../sys/seal", "a/b", "", "-a", "a..b", "a?x=1"] {
            assert!(!valid_role_name(bad), "{bad}");
        }
        assert!(valid_mount("jwt") && valid_mount("team/jwt-prod"));
        assert!(!valid_mount("jwt/../sys") && !valid_mount("") && !valid_mount("a//b"));
    }

    #[test]
    fn plain_http_is_refused_off_loopback() {
        assert!(plain_http_off_host("http://vault.example:8200"));
        assert!(!plain_http_off_host("http://127.0.0.1:8200"));
        assert!(!plain_http_off_host("http://[::1]:8200"));
        assert!(!plain_http_off_host("http://localhost:8200"));
        assert!(!plain_http_off_host("https://vault.example:8200"));
    }
}
