//! The WASI world a plugin sees: nothing granted, time frozen, and no call that can block.
//!
//! Epoch interruption stops running wasm code, but not a host call the plugin is blocked in. The
//! only WASI calls that can block in this sandbox (no files, no network, stdin closed, output
//! into memory) are waits on the monotonic clock (`std::thread::sleep`, a `poll` with a timeout).
//! Those are replaced here: a wait is granted in *virtual* time, so it is ready at once and the
//! plugin's monotonic clock moves on by that much, and a wait that would end past the call's
//! deadline stops the call right there as a `deadline` failure. So every call ends within its
//! deadline, whatever the plugin calls, and never holds a thread in a sleep.

use super::runtime::StoreState;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Linker, Resource};
use wasmtime::StoreContextMut;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::p2::{subscribe, DynPollable, Pollable};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// The clock interface whose waits are replaced. It must be the version wasmtime-wasi links, or
/// the replacement would not shadow it (a test sleeps past the deadline to prove it does).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Random bytes per WASI call are capped, so a plugin cannot make the host allocate without
/// bound outside its memory cap.
pub(super) const MAX_RANDOM_BYTES: u64 = 64 << 10;

/// One call's time: when it must end, and how much virtual time its waits have taken.
pub(super) struct CallClock {
    started: Instant,
    deadline: Duration,
    /// Nanoseconds of virtual time granted to waits; also what the plugin's monotonic clock reads.
    waited: Arc<AtomicU64>,
    /// Set when a wait would have ended past the deadline.
    pub(super) exceeded: bool,
}

impl CallClock {
    pub(super) fn new(deadline: Duration) -> Self {
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
pub(super) fn sandbox_wasi(
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
pub(super) fn replace_blocking_waits(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
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
