//! The wasm plugins under test: the reference plugins and the hostile test plugins.

use super::{target_dir, workspace_root};
use attestgate::plugin::{EngineOptions, LimitOverrides, PluginEngine, PluginSpec, Precompiled};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

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
            // tests/run.sh compiles the host under clippy-driver; inherited, the wrapper would
            // change the plugins' fingerprints and rebuild every one of them here.
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS")
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
        vault_role: None,
        limits: LimitOverrides::default(),
    }
}

/// The plugins written in languages whose toolchains are not cargo: built by their own scripts
/// (which install the pinned toolchain on first use), once per test process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptedPlugin {
    /// `plugins/js/build.sh`: componentize-js.
    JavaScript,
    /// `plugins/python/build.sh`: componentize-py.
    Python,
}

impl ScriptedPlugin {
    fn script(self) -> PathBuf {
        workspace_root().join(match self {
            ScriptedPlugin::JavaScript => "plugins/js/build.sh",
            ScriptedPlugin::Python => "plugins/python/build.sh",
        })
    }

    /// The confidential-space plugin in this language.
    pub fn wasm(self) -> PathBuf {
        target_dir().join(match self {
            ScriptedPlugin::JavaScript => "plugins/js/confidential_space_js.wasm",
            ScriptedPlugin::Python => "plugins/python/confidential_space_py.wasm",
        })
    }
}

/// Builds `plugin` unless `tests/run.sh` already did, and returns its path.
pub fn scripted_plugin(plugin: ScriptedPlugin) -> PathBuf {
    static BUILT: Mutex<Vec<ScriptedPlugin>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !built.contains(&plugin) {
        if !plugin.wasm().exists() {
            let status = Command::new(plugin.script())
                .env_remove("CARGO_TARGET_DIR")
                .status()
                .expect("the build script runs");
            assert!(status.success(), "{} failed", plugin.script().display());
        }
        built.push(plugin);
    }
    plugin.wasm()
}

/// A precompiled artifact of the plugin at `path` for the test engines, compiled once per
/// process: a component with a language runtime inside takes cranelift tens of seconds, and
/// several tests load it.
pub fn precompiled(path: &Path) -> Precompiled {
    static ARTIFACTS: Mutex<Vec<(PathBuf, Precompiled)>> = Mutex::new(Vec::new());
    let mut artifacts = ARTIFACTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, artifact)) = artifacts.iter().find(|(p, _)| p == path) {
        return artifact.clone();
    }
    let (bytes, sha256) = engine().precompile_file(path).unwrap();
    let dir = target_dir().join("tmp");
    std::fs::create_dir_all(&dir).unwrap();
    let artifact_path = dir.join(format!("{sha256}.cwasm"));
    std::fs::write(&artifact_path, bytes).unwrap();
    let artifact = Precompiled {
        path: artifact_path,
        sha256,
    };
    artifacts.push((path.to_owned(), artifact.clone()));
    artifact
}
