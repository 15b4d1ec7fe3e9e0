//! What a plugin is: its digest, size, the contract version it was built against, and what it
//! imports and exports.

use super::error::PluginError;
use super::producers::{producers, PluginKind, Producer};
use serde::Serialize;
use std::path::Path;
use wasmtime::component::Component;
use wasmtime::Engine;

/// The contract this host speaks: the version on `wit/policy.wit`'s `package` line (a test holds
/// them equal).
pub const CONTRACT_VERSION: &str = "0.3.0";
const CONTRACT_PACKAGE: &str = "attestgate:policy";
const POLICY_INTERFACE: &str = "attestgate:policy/policy";

/// What a plugin file is, as `attestgate plugin inspect` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PluginInfo {
    /// Lowercase hex sha256 of the wasm file.
    pub sha256: String,
    /// The file's size.
    pub size_bytes: usize,
    /// The version in the exported `attestgate:policy/policy@X` interface, if any.
    pub contract_version: Option<String>,
    /// Every interface it imports.
    pub imports: Vec<String>,
    /// Every interface it exports.
    pub exports: Vec<String>,
    /// The languages and tools its `producers` sections name (`language`, `processed-by`, `sdk`).
    pub producers: Vec<Producer>,
    /// The runtime family those name, which decides the plugin's default limits.
    pub kind: PluginKind,
}

impl PluginInfo {
    /// Whether the plugin can reach WASI at all (all of it is empty in attestgate's sandbox).
    pub fn imports_wasi(&self) -> bool {
        self.imports.iter().any(|name| name.starts_with("wasi:"))
    }
}

/// Reads a compiled component's imports, exports and contract version, and the toolchain its
/// bytes (`wasm`) name.
pub(super) fn describe(
    engine: &Engine,
    component: &Component,
    sha256: &str,
    wasm: &[u8],
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
    let producers = producers(wasm);
    PluginInfo {
        sha256: sha256.to_owned(),
        size_bytes: wasm.len(),
        contract_version,
        imports,
        exports,
        kind: PluginKind::of(&producers),
        producers,
    }
}

/// Refuses a plugin built against another contract version, naming both.
pub(super) fn check_contract(path: &Path, info: &PluginInfo) -> Result<(), PluginError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `wit/policy.wit` is the one source of the contract version; this constant follows it.
    #[test]
    fn the_contract_version_is_the_wits() {
        let wit = include_str!("../../../wit/policy.wit");
        let package = wit
            .lines()
            .find_map(|line| line.strip_prefix("package attestgate:policy@"))
            .expect("wit/policy.wit has a package line");
        assert_eq!(package.trim_end_matches(';'), CONTRACT_VERSION);
    }
}
