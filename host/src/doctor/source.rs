//! Reading a role, or a mount's configuration, from a running Vault, with the usual
//! `VAULT_ADDR`/`VAULT_TOKEN`/`VAULT_CACERT`/`VAULT_NAMESPACE` settings.

use super::error::DoctorError;
use crate::config::{RoleKind, VaultConfig};
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
    let client = VaultClient::new(&config, RetryPolicy::default()).map_err(vault_error)?;
    let response = client
        .read(&access.token, &path)
        .await
        .map_err(vault_error)?;
    match response.get("data") {
        Some(Value::Object(data)) => Ok(data.clone()),
        _ => Err(DoctorError::NoData { path }),
    }
}
