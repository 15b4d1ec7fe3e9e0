//! One shared wasmtime engine: compiled code, the epoch ticker behind deadlines, the linker, and
//! an optional on-disk cache of compiled plugins.

use super::bindings::Plugin;
use super::error::PluginError;
use super::inspect::{self, PluginInfo};
use super::runtime::{CompiledPlugin, StoreState};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Deadlines are counted in ticks of this length.
pub(crate) const TICK: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How many plugin instances may be alive at once (sizes the pooling allocator).
    pub max_concurrent_instances: u32,
    /// The largest memory any plugin may have (the pool's slot size).
    pub max_memory_bytes: u64,
    /// Where compiled plugins are cached. Only this program may write there.
    pub cache_dir: Option<PathBuf>,
    /// How much of each plugin memory is reset by zeroing (and stays resident) rather than handed
    /// back to the kernel. Zeroing what a call touched is much cheaper than faulting it in again
    /// on the next call; 256 KiB covers a Rust plugin's stack, data and heap with the SDK's
    /// 64 KiB stack.
    pub resident_memory_bytes: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_concurrent_instances: 32,
            max_memory_bytes: 256 << 20,
            cache_dir: None,
            resident_memory_bytes: 256 << 10,
        }
    }
}

/// Stops the ticker thread when the engine goes away.
struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub struct PluginEngine {
    engine: Engine,
    linker: Linker<StoreState>,
    options: EngineOptions,
    compiled: Mutex<HashMap<String, Arc<CompiledPlugin>>>,
    _ticker: Ticker,
}

fn config(pooling: Option<&EngineOptions>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    if let Some(options) = pooling {
        let n = options.max_concurrent_instances;
        let mut pool = PoolingAllocationConfig::default();
        // A Rust wasip2 component is a handful of core instances (the program and its WASI shims).
        pool.total_component_instances(n);
        pool.total_core_instances(n * 8);
        pool.max_core_instances_per_component(8);
        pool.total_memories(n * 2);
        pool.max_memories_per_component(2);
        pool.total_tables(n * 8);
        pool.max_tables_per_component(8);
        pool.max_memory_size(options.max_memory_bytes as usize);
        pool.linear_memory_keep_resident(options.resident_memory_bytes);
        pool.table_keep_resident(64 << 10);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

impl PluginEngine {
    pub fn new(options: EngineOptions) -> Result<Self, PluginError> {
        // The pool reserves virtual memory up front; where that is refused, allocate on demand.
        let engine = match Engine::new(&config(Some(&options))) {
            Ok(engine) => engine,
            Err(pool_error) => {
                tracing::warn!(error = %pool_error, "pooling allocator unavailable, allocating plugin instances on demand");
                Engine::new(&config(None)).map_err(|e| PluginError::Engine(e.to_string()))?
            }
        };
        let mut linker = Linker::new(&engine);
        // WASI is linked so that plugins from other languages can run, but every capability in
        // each store's context is empty (see `runtime::sandbox_wasi`).
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| PluginError::Engine(e.to_string()))?;
        Plugin::add_to_linker::<StoreState, HasSelf<StoreState>>(&mut linker, |state| state)
            .map_err(|e| PluginError::Engine(e.to_string()))?;

        let stop = Arc::new(AtomicBool::new(false));
        let ticker_engine = engine.weak();
        let ticker_stop = stop.clone();
        std::thread::Builder::new()
            .name("attestgate-plugin-epoch".into())
            .spawn(move || {
                while !ticker_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    match ticker_engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => return,
                    }
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start the deadline ticker: {e}")))?;

        Ok(PluginEngine {
            engine,
            linker,
            options,
            compiled: Mutex::new(HashMap::new()),
            _ticker: Ticker { stop },
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Reads, checks and compiles a plugin file, or returns the copy already compiled.
    pub fn compile_file(
        &self,
        path: &Path,
        expected_sha256: &str,
    ) -> Result<Arc<CompiledPlugin>, PluginError> {
        let (bytes, sha256) = read_plugin(path)?;
        if !sha256.eq_ignore_ascii_case(expected_sha256.trim()) {
            return Err(PluginError::DigestMismatch {
                path: path.to_owned(),
                expected: expected_sha256.trim().to_ascii_lowercase(),
                found: sha256,
            });
        }
        if let Some(compiled) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&sha256)
        {
            return Ok(compiled.clone());
        }
        let component = self.load_component(path, &sha256, &bytes)?;
        let info = inspect::describe(&self.engine, &component, &sha256, bytes.len());
        inspect::check_contract(path, &info)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link {
                path: path.to_owned(),
                reason: crate::error_chain(e.as_ref()),
            })?;
        let pre = super::bindings::PluginPre::new(pre).map_err(|e| PluginError::Link {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        let compiled = Arc::new(CompiledPlugin::new(pre, info, path.to_owned()));
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(sha256, compiled.clone());
        Ok(compiled)
    }

    /// Compiles without the contract and digest checks, for `plugin inspect`.
    pub fn describe_file(&self, path: &Path) -> Result<PluginInfo, PluginError> {
        let (bytes, sha256) = read_plugin(path)?;
        let component = self.load_component(path, &sha256, &bytes)?;
        Ok(inspect::describe(
            &self.engine,
            &component,
            &sha256,
            bytes.len(),
        ))
    }

    fn load_component(
        &self,
        path: &Path,
        sha256: &str,
        bytes: &[u8],
    ) -> Result<Component, PluginError> {
        let not_component = |e: wasmtime::Error| PluginError::NotAComponent {
            path: path.to_owned(),
            reason: format!("{e:#}"),
        };
        if !bytes.starts_with(b"\0asm") {
            return Err(PluginError::NotAComponent {
                path: path.to_owned(),
                reason: "the file does not start with the WebAssembly magic bytes \\0asm".into(),
            });
        }
        let Some(cache) = self.options.cache_dir.as_deref() else {
            return Component::new(&self.engine, bytes).map_err(not_component);
        };
        let cached = cache.join(format!("{sha256}-{}.cwasm", self.compatibility_tag()));
        if trusted_cache_file(cache, &cached) {
            // SAFETY: the file is in a directory only this user can write, named by the sha256
            // of the wasm we just verified and by the engine's compatibility hash, and it was
            // written by `serialize` below; deserialize_file checks its header.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(file = %cached.display(), error = %e, "ignoring an unusable compiled-plugin cache entry")
                }
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(not_component)?;
        if let Err(e) = store_in_cache(cache, &cached, &component) {
            tracing::warn!(dir = %cache.display(), error = %e, "could not cache the compiled plugin");
        }
        Ok(component)
    }

    fn compatibility_tag(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.engine
            .precompile_compatibility_hash()
            .hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}

/// A plugin file's bytes and their lowercase hex sha256.
fn read_plugin(path: &Path) -> Result<(Vec<u8>, String), PluginError> {
    let bytes = std::fs::read(path).map_err(|e| PluginError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

/// The sha256 to pin a plugin file by, as `plugin_sha256` takes it.
pub fn file_sha256(path: &Path) -> Result<String, PluginError> {
    read_plugin(path).map(|(_, sha256)| sha256)
}

/// Whether `path` belongs to this user, is writable by nobody else, and is not a symlink. The
/// cache directory and every file in it must be: `deserialize` executes what it reads.
fn is_private(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::getuid().as_raw();
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.uid() == uid && m.mode() & 0o022 == 0 && !m.file_type().is_symlink())
}

fn trusted_cache_file(dir: &Path, file: &Path) -> bool {
    is_private(dir) && is_private(file)
}

fn store_in_cache(dir: &Path, file: &Path, component: &Component) -> Result<(), String> {
    crate::fsutil::create_private_dir(dir).map_err(|e| e.to_string())?;
    if !is_private(dir) {
        return Err("the cache directory is writable by others or owned by someone else".into());
    }
    let bytes = component.serialize().map_err(|e| e.to_string())?;
    crate::fsutil::write_atomically(file, &bytes, 0o600).map_err(|e| e.to_string())
}
