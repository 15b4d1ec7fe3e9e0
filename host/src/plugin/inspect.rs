//! What a plugin is: its digest, size, the contract version it was built against, and what it
//! imports and exports.

use super::error::PluginError;
use serde::Serialize;
use std::path::Path;
use wasmtime::component::Component;
use wasmtime::Engine;

/// The contract this host speaks (`wit/policy.wit`).
pub const CONTRACT_VERSION: &str = "0.1.0";
const CONTRACT_PACKAGE: &str = "attestgate:policy";
const POLICY_INTERFACE: &str = "attestgate:policy/policy";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginInfo {
    pub sha256: String,
    pub size_bytes: usize,
    /// The version in the exported `attestgate:policy/policy@X` interface, if any.
    pub contract_version: Option<String>,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
}

impl PluginInfo {
    /// Whether the plugin can reach WASI at all (all of it is empty in attestgate's sandbox).
    pub fn imports_wasi(&self) -> bool {
        self.imports.iter().any(|name| name.starts_with("wasi:"))
    }
}

pub fn describe(
    engine: &Engine,
    component: &Component,
    sha256: &str,
    size_bytes: usize,
) -> PluginInfo {
    let ty = component.component_type();
    let imports: Vec<String> = ty
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    let contract_version = exports
        .iter()
        .find_map(|name| name.strip_prefix(POLICY_INTERFACE)?.strip_prefix('@'))
        .map(str::to_owned);
    PluginInfo {
        sha256: sha256.to_owned(),
        size_bytes,
        contract_version,
        imports,
        exports,
    }
}

pub fn check_contract(path: &Path, info: &PluginInfo) -> Result<(), PluginError> {
    match info.contract_version.as_deref() {
        Some(CONTRACT_VERSION) => Ok(()),
        Some(found) => Err(PluginError::ContractVersion {
            path: path.to_owned(),
            found: format!("{CONTRACT_PACKAGE}@{found}"),
            expected: CONTRACT_VERSION,
        }),
        None => Err(PluginError::ContractVersion {
            path: path.to_owned(),
            found: format!(
                "none (it does not export {POLICY_INTERFACE}; exports: [{}])",
                info.exports.join(", ")
            ),
            expected: CONTRACT_VERSION,
        }),
    }
}
