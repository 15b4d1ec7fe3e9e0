//! One plugin call's store: everything a call can touch and every limit it runs under.
//!
//! A newcomer asking "how is X enforced" finds it here:
//! - **deadline**: the engine's epoch ticks every [`TICK`]; each store traps once its deadline's
//!   worth of ticks has passed ([`CallStore::new`]). Epoch interruption stops running wasm code,
//!   but not a host call the plugin is blocked in. The only WASI calls that can block in this
//!   sandbox (no files, no network, stdin closed, output into memory) are waits on the monotonic
//!   clock (`std::thread::sleep`, a `poll` with a timeout). Those are replaced: a wait is granted
//!   in *virtual* time, so it is ready at once and the plugin's monotonic clock moves on by that
//!   much, and a wait that would end past the call's deadline stops the call right there as a
//!   `deadline` failure. So every call ends within its deadline, whatever the plugin calls, and
//!   never holds a thread in a sleep.
//! - **memory**: a [`ResourceLimiter`] refuses growth past the collaborator's cap.
//! - **log output**: the host `log` import and stdout/stderr share one per-call budget.
//! - **the sandbox**: a WASI context that grants nothing ([`sandbox_wasi`]), with the wall clock
//!   frozen at the verification time and randomness a fixed sequence, so decisions are
//!   reproducible.
//!
//! [`CallStore::failure`] then says which of these stopped a call.

use super::bindings::attestgate::policy::host::{Host, LogLevel};
use super::bindings::attestgate::policy::types as wit;
use super::bindings::Plugin;
use super::error::FailureKind;
use super::spec::Limits;
use super::verdict::for_display;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store, StoreContextMut, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Deadlines are counted in ticks of this length.
pub(super) const TICK: Duration = Duration::from_millis(1);

/// Host resources (pollables, streams) a plugin may hold at once: far more than any plugin
/// needs, far less than a plugin could make the host allocate outside its memory cap.
const MAX_HOST_RESOURCES: usize = 1024;

/// Who a call's log lines are tagged with.
#[derive(Debug, Clone)]
pub(super) struct LogTags {
    /// The collaborator's name.
    pub(super) collaborator: Arc<str>,
    /// The first 12 hex digits of the plugin's sha256.
    pub(super) plugin: Arc<str>,
}

/// Per-call store data. Nothing in it outlives the call.
pub(super) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    /// The call's deadline as seen by WASI clock waits.
    clock: CallClock,
    memory: MemoryCap,
    log: LogBudget,
}

struct MemoryCap {
    limit: u64,
    exceeded: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

struct LogBudget {
    tags: LogTags,
    limit: u64,
    used: u64,
    exceeded: bool,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl wit::Host for StoreState {}

impl Host for StoreState {
    fn log(&mut self, level: LogLevel, message: String) -> wasmtime::Result<()> {
        let log = &mut self.log;
        log.used += message.len() as u64;
        if log.used > log.limit {
            log.exceeded = true;
            wasmtime::bail!("plugin log output exceeded {} bytes", log.limit);
        }
        let (collaborator, plugin) = (&*log.tags.collaborator, &*log.tags.plugin);
        let message = crate::http::escape_control(&message);
        match level {
            LogLevel::Debug => {
                tracing::debug!(target: "attestgate::plugin", collaborator, plugin, "{message}")
            }
            LogLevel::Info => {
                tracing::info!(target: "attestgate::plugin", collaborator, plugin, "{message}")
            }
            LogLevel::Warn => {
                tracing::warn!(target: "attestgate::plugin", collaborator, plugin, "{message}")
            }
            LogLevel::Error => {
                tracing::error!(target: "attestgate::plugin", collaborator, plugin, "{message}")
            }
        }
        Ok(())
    }
}

/// Links what a plugin may import into `linker`: WASI with every capability empty (so plugins
/// from other languages run), its blocking waits replaced, and the contract's `host` interface.
pub(super) fn link_sandbox(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)?;
    replace_blocking_waits(linker)?;
    Plugin::add_to_linker::<StoreState, HasSelf<StoreState>>(linker, |state| state)
}

/// A fresh store for one call, with its output pipes and limits.
pub(super) struct CallStore {
    /// The wasmtime store; instantiate into it once.
    pub(super) store: Store<StoreState>,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
    limits: Limits,
}

impl CallStore {
    /// A store that grants nothing, checked at `at` (Unix seconds), under `limits`.
    pub(super) fn new(engine: &Engine, limits: Limits, at: i64, tags: LogTags) -> Self {
        let cap = limits.log_bytes as usize;
        let (stdout, stderr) = (MemoryOutputPipe::new(cap), MemoryOutputPipe::new(cap));
        let clock = CallClock::new(limits.deadline());
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_RESOURCES);
        let state = StoreState {
            wasi: sandbox_wasi(at, &clock, stdout.clone(), stderr.clone()),
            table,
            clock,
            memory: MemoryCap {
                limit: limits.memory_bytes,
                exceeded: false,
            },
            log: LogBudget {
                tags,
                limit: limits.log_bytes,
                used: 0,
                exceeded: false,
            },
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.memory);
        let ticks = limits
            .deadline()
            .as_nanos()
            .div_ceil(TICK.as_nanos())
            .max(1) as u64;
        store.set_epoch_deadline(ticks);
        store.epoch_deadline_trap();
        CallStore {
            store,
            stdout,
            stderr,
            limits,
        }
    }

    /// Which limit (or trap) stopped the call that failed with `error`.
    pub(super) fn failure(&self, error: &wasmtime::Error) -> FailureKind {
        let state = self.store.data();
        let cap = self.limits.log_bytes as usize;
        if state.clock.exceeded {
            FailureKind::Deadline(self.limits.deadline())
        } else if state.memory.exceeded {
            FailureKind::Memory(self.limits.memory_bytes)
        } else if state.log.exceeded
            || self.stdout.contents().len() >= cap
            || self.stderr.contents().len() >= cap
        {
            FailureKind::LogLimit(self.limits.log_bytes)
        } else {
            match error.downcast_ref::<Trap>() {
                Some(Trap::Interrupt) => FailureKind::Deadline(self.limits.deadline()),
                Some(trap) => {
                    let said = String::from_utf8_lossy(&self.stderr.contents())
                        .trim()
                        .to_owned();
                    let said = if said.is_empty() {
                        String::new()
                    } else {
                        format!(" (plugin stderr: {})", for_display(said, 512))
                    };
                    FailureKind::Trap(format!("{trap}{said}"))
                }
                None => FailureKind::Trap(for_display(format!("{error:#}"), 1024)),
            }
        }
    }

    /// Hands what the plugin wrote to stdout and stderr to the debug log, escaped.
    pub(super) fn forward_output(&self) {
        let tags = &self.store.data().log.tags;
        for (stream, pipe) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            let bytes = pipe.contents();
            if !bytes.is_empty() {
                let text =
                    crate::http::escape_control(&String::from_utf8_lossy(&bytes)).into_owned();
                tracing::debug!(target: "attestgate::plugin", collaborator = &*tags.collaborator, plugin = &*tags.plugin, stream, "{}", text.trim_end());
            }
        }
    }
}

/// The clock interface whose waits are replaced. It must be the version wasmtime-wasi links, or
/// the replacement would not shadow it (a test sleeps past the deadline to prove it does).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Random bytes per WASI call are capped, so a plugin cannot make the host allocate without
/// bound outside its memory cap.
const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// One call's time: when it must end, and how much virtual time its waits have taken.
struct CallClock {
    started: Instant,
    deadline: Duration,
    /// Nanoseconds of virtual time granted to waits; also what the plugin's monotonic clock reads.
    waited: Arc<AtomicU64>,
    /// Set when a wait would have ended past the deadline.
    exceeded: bool,
}

impl CallClock {
    fn new(deadline: Duration) -> Self {
        CallClock {
            started: Instant::now(),
            deadline,
            waited: Arc::new(AtomicU64::new(0)),
            exceeded: false,
        }
    }

    /// Grants a wait of `nanos` in virtual time, or refuses it if the call would then run past
    /// its deadline (real time spent so far plus every wait granted).
    fn wait(&mut self, nanos: u64) -> wasmtime::Result<()> {
        let waited = self.waited.load(Ordering::Relaxed).saturating_add(nanos);
        let spent = self
            .started
            .elapsed()
            .saturating_add(Duration::from_nanos(waited));
        if spent > self.deadline {
            self.exceeded = true;
            wasmtime::bail!(
                "the plugin waited on the clock past its {} ms deadline",
                self.deadline.as_millis()
            );
        }
        self.waited.store(waited, Ordering::Relaxed);
        Ok(())
    }

    fn now(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }
}

/// Wall clock frozen at the verification time: a plugin that reads WASI's clock sees the same
/// moment the host checked the token at, so its decision is reproducible.
struct FrozenWallClock(Duration);

impl wasmtime_wasi::HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

/// Monotonic time that moves only by the waits granted to the plugin.
struct VirtualMonotonicClock(Arc<AtomicU64>);

impl wasmtime_wasi::HostMonotonicClock for VirtualMonotonicClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A WASI context that grants nothing: no preopened directories, no environment or arguments,
/// no network, stdin closed, stdout/stderr into capped in-memory pipes, the wall clock frozen at
/// the verification time, the monotonic clock virtual, and randomness a fixed sequence.
fn sandbox_wasi(
    at: i64,
    clock: &CallClock,
    stdout: MemoryOutputPipe,
    stderr: MemoryOutputPipe,
) -> WasiCtx {
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdout(stdout)
        .stderr(stderr)
        .wall_clock(FrozenWallClock(Duration::from_secs(at.max(0) as u64)))
        .monotonic_clock(VirtualMonotonicClock(clock.waited.clone()))
        .secure_random(wasmtime_wasi::Deterministic::new(vec![0x42; 64]))
        .insecure_random(wasmtime_wasi::Deterministic::new(vec![0x24; 64]))
        .insecure_random_seed(0)
        .max_random_size(MAX_RANDOM_BYTES)
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false);
    builder.build()
}

/// A pollable that is always ready: the wait it stands for was granted in virtual time.
struct Granted;

impl Pollable for Granted {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

fn granted_wait(
    mut store: StoreContextMut<'_, StoreState>,
    nanos: u64,
) -> wasmtime::Result<(Resource<DynPollable>,)> {
    let state = store.data_mut();
    state.clock.wait(nanos)?;
    let granted = state.table.push(Granted)?;
    Ok((subscribe(&mut state.table, granted)?,))
}

/// Replaces the monotonic clock's waits in `linker` (which already has WASI) with granted ones.
fn replace_blocking_waits(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap(
        "subscribe-duration",
        |store: StoreContextMut<'_, StoreState>, (nanos,): (u64,)| granted_wait(store, nanos),
    )?;
    clock.func_wrap(
        "subscribe-instant",
        |store: StoreContextMut<'_, StoreState>, (when,): (u64,)| {
            let now = store.data().clock.now();
            granted_wait(store, when.saturating_sub(now))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
