//! The wasm plugins under test: the reference plugins and the hostile test plugins.

use super::{target_dir, workspace_root};
use attestgate::plugin::{EngineOptions, LimitOverrides, PluginEngine, PluginSpec};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// One engine for every test in the process: each plugin is compiled once, however many tests
/// load it (the interpreter plugins take seconds to compile in a debug build).
pub fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| PluginEngine::new(EngineOptions::default()).unwrap())
}

/// The plugins workspace's output directory.
pub fn plugin_dir() -> PathBuf {
    target_dir().join("plugins/wasm32-wasip2/release")
}

/// Builds the plugin workspace (SDK, reference plugins, hostile test plugins) once, then returns
/// the path of `name.wasm`.
pub fn plugin_wasm(name: &str) -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        std::fs::create_dir_all(target_dir()).unwrap();
        let lock = std::fs::File::create(target_dir().join("plugins.lock")).unwrap();
        lock.lock().unwrap();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet", "--target", "wasm32-wasip2"])
            .arg("--target-dir")
            .arg(target_dir().join("plugins"))
            .current_dir(workspace_root().join("plugins"))
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .status()
            .expect("cargo builds the plugins");
        assert!(
            status.success(),
            "building the plugins failed (is the wasm32-wasip2 target installed?)"
        );
    });
    let path = plugin_dir().join(format!("{}.wasm", name.replace('-', "_")));
    assert!(path.exists(), "{} was not built", path.display());
    path
}

pub fn sha256_file(path: &Path) -> String {
    attestgate::plugin::file_sha256(path).unwrap()
}

/// `plugin` (such as "confidential-space") for bank-a, pinned by its sha256, with `config` and
/// the default limits.
pub fn plugin_spec(plugin: &str, config: Value) -> PluginSpec {
    plugin_spec_at(plugin_wasm(plugin), config)
}

/// `plugin_spec` for the file at `path`.
pub fn plugin_spec_at(path: PathBuf, config: Value) -> PluginSpec {
    PluginSpec {
        collaborator: "bank-a".into(),
        audience: None,
        sha256: sha256_file(&path),
        precompiled: None,
        path,
        config,
        limits: LimitOverrides::default(),
    }
}
