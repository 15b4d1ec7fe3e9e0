//! One shared wasmtime engine: compiled code, the epoch ticker behind deadlines, and the linker.
//! Plugins are compiled from their pinned wasm, or loaded from a pinned precompiled artifact
//! (see `artifact`); nothing else on disk is ever loaded as code.

use super::bindings::PluginPre;
use super::compiled::CompiledPlugin;
use super::error::PluginError;
use super::inspect::{self, PluginInfo};
use super::policy::CollaboratorPolicy;
use super::spec::{Compiler, PluginSpec, Precompiled};
use super::store::{link_sandbox, StoreState, TICK};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Strategy};

/// How the shared engine is sized.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How many plugin instances may be alive at once (sizes the pooling allocator).
    pub max_concurrent_instances: u32,
    /// The largest memory any plugin may have (the pool's slot size).
    pub max_memory_bytes: u64,
    /// How much of each plugin memory is reset by zeroing (and stays resident) rather than handed
    /// back to the kernel. Zeroing what a call touched is much cheaper than faulting it in again
    /// on the next call; 256 KiB covers a Rust plugin's stack, data and heap with the SDK's
    /// 64 KiB stack.
    pub resident_memory_bytes: usize,
    /// Which compiler makes native code of the plugins this engine compiles. Precompiled
    /// artifacts load only into an engine of the compiler that made them (Cranelift).
    pub compiler: Compiler,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_concurrent_instances: 32,
            max_memory_bytes: 256 << 20,
            resident_memory_bytes: 256 << 10,
            compiler: Compiler::Cranelift,
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

/// Compiles plugins once and binds them to collaborators. One per process.
pub struct PluginEngine {
    engine: Engine,
    compiler: Compiler,
    linker: Linker<StoreState>,
    /// Compiled plugins by wasm digest (and artifact digest). Each slot is locked while its
    /// plugin compiles, so collaborators loading the same plugin at once compile it once.
    compiled: Mutex<HashMap<String, CompileSlot>>,
    _ticker: Ticker,
}

/// One plugin's compiled form, filled by whichever collaborator loads it first.
type CompileSlot = Arc<Mutex<Option<Arc<CompiledPlugin>>>>;

/// The CPU every build of native code targets, whatever machine compiles it: an artifact built
/// on the image-build machine must load on a Confidential Space VM of another CPU generation.
/// x86-64-v2 (SSE4.2, POPCNT) is on every x86 machine type Confidential Space offers; wasmtime
/// checks at load time that the host really has it.
fn set_baseline_target(config: &mut Config) -> Result<(), PluginError> {
    let baseline = |e: wasmtime::Error| PluginError::Engine {
        what: "cannot set the baseline CPU target",
        source: e.into(),
    };
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        config
            .target("x86_64-unknown-linux-gnu")
            .map_err(baseline)?;
        // SAFETY: enabling a CPU-feature preset; wasmtime verifies at load time that the host
        // has every feature the code was compiled for.
        unsafe {
            config.cranelift_flag_enable("x86-64-v2");
        }
    }
    #[cfg(all(target_arch = "aarch64", target_os = "linux"))]
    config
        .target("aarch64-unknown-linux-gnu")
        .map_err(baseline)?;
    let _ = baseline;
    Ok(())
}

fn config(compiler: Compiler, pooling: Option<&EngineOptions>) -> Result<Config, PluginError> {
    let mut config = Config::new();
    config.strategy(match compiler {
        Compiler::Cranelift => Strategy::Cranelift,
        Compiler::Winch => Strategy::Winch,
    });
    set_baseline_target(&mut config)?;
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.parallel_compilation(true);
    if let Some(options) = pooling {
        let n = options.max_concurrent_instances;
        let mut pool = PoolingAllocationConfig::default();
        // A Rust wasip2 component is a handful of core instances (the program and its WASI
        // shims); components that embed a language runtime (JavaScript, Python) have dozens, and
        // up to a few memories. The per-component maxima admit those; the totals bound the pool.
        pool.total_component_instances(n);
        pool.total_core_instances(n * 16);
        pool.max_core_instances_per_component(64);
        pool.total_memories(n * 4);
        pool.max_memories_per_component(4);
        pool.total_tables(n * 16);
        pool.max_tables_per_component(64);
        pool.max_memory_size(options.max_memory_bytes as usize);
        pool.linear_memory_keep_resident(options.resident_memory_bytes);
        pool.table_keep_resident(64 << 10);
        // Plugins run synchronously, on the calling thread's stack: no fiber stack is ever
        // taken from the pool. The default reserves 1000 of them, each with a guard page set by
        // its own mprotect (14% of a one-shot exchange's CPU time), then unmapped at exit
        // (another 11%): 2000 memory mappings (BENCHMARKS.md, "The exchange's fixed costs").
        pool.total_stacks(0);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    Ok(config)
}

impl PluginEngine {
    /// Starts the engine and its deadline ticker.
    pub fn new(options: EngineOptions) -> Result<Self, PluginError> {
        // The pool reserves virtual memory up front; where that is refused, allocate on demand.
        let engine = match Engine::new(&config(options.compiler, Some(&options))?) {
            Ok(engine) => engine,
            Err(pool_error) => {
                tracing::warn!(error = %pool_error, "pooling allocator unavailable, allocating plugin instances on demand");
                Engine::new(&config(options.compiler, None)?).map_err(|e| PluginError::Engine {
                    what: "cannot create the wasmtime engine",
                    source: e.into(),
                })?
            }
        };
        let mut linker = Linker::new(&engine);
        link_sandbox(&mut linker).map_err(|e| PluginError::Engine {
            what: "cannot link the plugin sandbox",
            source: e.into(),
        })?;

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
            .map_err(|e| PluginError::Engine {
                what: "cannot start the deadline ticker",
                source: e.into(),
            })?;

        Ok(PluginEngine {
            engine,
            compiler: options.compiler,
            linker,
            compiled: Mutex::new(HashMap::new()),
            _ticker: Ticker { stop },
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The compiler it compiles plugins with.
    pub fn compiler(&self) -> Compiler {
        self.compiler
    }

    /// Compiles (or reuses) the plugin, binds it to its collaborator and has it validate its
    /// configuration.
    pub fn load(&self, spec: &PluginSpec) -> Result<CollaboratorPolicy, PluginError> {
        let (bytes, sha256) = read_plugin(&spec.path)?;
        self.load_read(spec, &bytes, &sha256)
    }

    /// [`PluginEngine::load`] from the plugin file's bytes, already read, and their sha256.
    fn load_read(
        &self,
        spec: &PluginSpec,
        bytes: &[u8],
        sha256: &str,
    ) -> Result<CollaboratorPolicy, PluginError> {
        let compiled = self.compile(
            &spec.path,
            bytes,
            sha256,
            &spec.sha256,
            spec.precompiled.as_ref(),
        )?;
        let limits = spec.limits.resolve(compiled.info().kind);
        let policy = CollaboratorPolicy::new(
            compiled,
            &spec.collaborator,
            spec.audience.as_deref(),
            &spec.config,
            spec.vault_role.as_deref(),
            limits,
        );
        policy.validate_config()?;
        Ok(policy)
    }

    /// Loads every plugin in parallel; one result per spec, in order. A file several
    /// collaborators use is read and hashed once, and every one of them checks its pin against,
    /// and runs, that one snapshot of it.
    pub fn load_all(&self, specs: &[PluginSpec]) -> Vec<Result<CollaboratorPolicy, PluginError>> {
        // A file that cannot be read is left to each collaborator's own `load`, whose error
        // then names it for that collaborator.
        let files: HashMap<&Path, OnceLock<Option<PluginFile>>> = specs
            .iter()
            .map(|spec| (spec.path.as_path(), OnceLock::new()))
            .collect();
        let files = &files;
        std::thread::scope(|scope| {
            let handles: Vec<_> = specs
                .iter()
                .map(|spec| {
                    let load = move || {
                        let file =
                            files[spec.path.as_path()].get_or_init(|| read_plugin(&spec.path).ok());
                        match file {
                            Some((bytes, sha256)) => self.load_read(spec, bytes, sha256),
                            None => self.load(spec),
                        }
                    };
                    (spec, scope.spawn(load))
                })
                .collect();
            handles
                .into_iter()
                .map(|(spec, handle)| {
                    handle.join().unwrap_or_else(|_| {
                        Err(PluginError::LoaderPanicked {
                            path: spec.path.clone(),
                        })
                    })
                })
                .collect()
        })
    }

    /// Checks a plugin file's bytes against its pin and compiles them (or loads its pinned
    /// precompiled artifact), or returns the copy already compiled: collaborators using the same
    /// plugin share one.
    fn compile(
        &self,
        path: &Path,
        bytes: &[u8],
        sha256: &str,
        expected_sha256: &str,
        precompiled: Option<&Precompiled>,
    ) -> Result<Arc<CompiledPlugin>, PluginError> {
        if !sha256.eq_ignore_ascii_case(expected_sha256.trim()) {
            return Err(PluginError::DigestMismatch {
                path: path.to_owned(),
                expected: expected_sha256.trim().to_ascii_lowercase(),
                found: sha256.to_owned(),
            });
        }
        let key = match precompiled {
            Some(artifact) => format!("{sha256}+{}", artifact.sha256.to_ascii_lowercase()),
            None => sha256.to_owned(),
        };
        let slot = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key)
            .or_default()
            .clone();
        let mut slot = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(compiled) = slot.as_ref() {
            return Ok(compiled.clone());
        }
        let component = match precompiled {
            Some(artifact) => {
                let artifact_bytes =
                    std::fs::read(&artifact.path).map_err(|source| PluginError::Read {
                        path: artifact.path.clone(),
                        source,
                    })?;
                super::artifact::load(
                    &self.engine,
                    &artifact.path,
                    &artifact_bytes,
                    &artifact.sha256,
                    sha256,
                )?
            }
            None => self.load_component(path, bytes)?,
        };
        let info = inspect::describe(&self.engine, &component, sha256, bytes);
        inspect::check_contract(path, &info)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| PluginError::Link {
                path: path.to_owned(),
                source: e.into(),
            })?;
        let pre = PluginPre::new(pre).map_err(|e| PluginError::Link {
            path: path.to_owned(),
            source: e.into(),
        })?;
        let compiled = Arc::new(CompiledPlugin::new(pre, info, path.to_owned()));
        *slot = Some(compiled.clone());
        Ok(compiled)
    }

    /// Compiles without the contract and digest checks, for `plugin inspect`.
    pub fn describe_file(&self, path: &Path) -> Result<PluginInfo, PluginError> {
        let (bytes, sha256) = read_plugin(path)?;
        let component = self.load_component(path, &bytes)?;
        Ok(inspect::describe(&self.engine, &component, &sha256, &bytes))
    }

    /// Compiles a plugin file into a precompiled artifact for this engine's baseline target:
    /// the bytes `plugin compile` writes, and their sha256 to pin.
    pub fn precompile_file(&self, path: &Path) -> Result<(Vec<u8>, String), PluginError> {
        let (bytes, sha256) = read_plugin(path)?;
        check_magic(path, &bytes)?;
        let artifact =
            super::artifact::compile(&self.engine, self.compiler, path, &bytes, &sha256)?;
        let artifact_sha256 = hex::encode(Sha256::digest(&artifact));
        Ok((artifact, artifact_sha256))
    }

    fn load_component(&self, path: &Path, bytes: &[u8]) -> Result<Component, PluginError> {
        check_magic(path, bytes)?;
        Component::new(&self.engine, bytes).map_err(|e| PluginError::NotAComponent {
            path: path.to_owned(),
            compiler: self.compiler,
            source: e.into(),
        })
    }
}

fn check_magic(path: &Path, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.starts_with(b"\0asm") {
        return Ok(());
    }
    Err(PluginError::NotWasm {
        path: path.to_owned(),
    })
}

/// A plugin file's bytes and their lowercase hex sha256.
type PluginFile = (Vec<u8>, String);

/// Reads a plugin file and hashes it.
fn read_plugin(path: &Path) -> Result<PluginFile, PluginError> {
    let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
        path: path.to_owned(),
        source,
    })?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok((bytes, sha256))
}

/// The sha256 to pin a plugin file by, as `plugin_sha256` takes it.
pub fn file_sha256(path: &Path) -> Result<String, PluginError> {
    read_plugin(path).map(|(_, sha256)| sha256)
}
