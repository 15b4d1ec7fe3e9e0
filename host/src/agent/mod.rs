//! `attestgate agent`: the exchange, kept running. Every collaborator's secrets stay fresh on
//! their own schedule, the workload runs as a supervised child, and a local endpoint reports
//! health and metrics.
//!
//! Why attestgate is its own agent rather than a front for Vault Agent: Vault Agent cannot ask the
//! Confidential Space launcher for a custom-audience token, deletes the JWT file it reads (the
//! launcher's directory is read-only), and serves one identity per agent. attestgate already
//! knows every collaborator, and gets a fresh attestation token for every login.
//!
//! - `schedule`: when to renew, re-exchange and retry (pure, tested without clocks);
//! - `collaborator`: one collaborator's task (renewals, exchanges, delivery, `on_revoke`);
//! - `workload`: the child process (restart debounced, signals, grace period);
//! - `health`, `metrics`, `serve`: `GET /healthz` and `GET /metrics`.
//!
//! The first delivery is all or nothing, as in `exchange` (unless `[exchange] partial`): until
//! every collaborator released its secrets nothing is written and the workload does not start.
//! After that, each collaborator that fails keeps its last good secrets until they expire.
//! When the agent stops, it revokes the Vault tokens it holds (and with them their leases) and
//! removes the files it delivered.

mod collaborator;
mod error;
mod generation;
mod health;
mod metrics;
mod schedule;
mod serve;
mod workload;

pub use collaborator::{Change, Held};
pub use error::AgentError;
pub use generation::Generation;
pub use health::{CollaboratorHealth, Health, HealthReport, LastError};
pub use metrics::Metrics;
pub use schedule::{backoff, Action, Holding, Lifetime, Plan, Timing};
pub use workload::{Workload, WorkloadCommand, WorkloadEnv, WorkloadEvent};

use crate::config::{ConfigError, OnChange, WorkloadSignal};
use crate::exchange::{
    deliver_changed, digests_on_disk, environment_of, remove_files, HeldToken, Outcome, Route,
    TokenUse,
};
use collaborator::CollaboratorTask;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};

/// What `attestgate agent` was asked to do.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The configuration file (re-read on [`Control::Reload`]).
    pub config: PathBuf,
    /// One cycle, then exit: the exchange with the agent's delivery rules.
    pub once: bool,
    /// The workload to start and supervise, if any.
    pub workload: Option<WorkloadCommand>,
}

/// What the process tells a running agent (the binary turns signals into these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGHUP: reload the configuration and plugins, re-running every check.
    Reload,
    /// SIGTERM or SIGINT: forward it to the workload, then stop.
    Stop(WorkloadSignal),
}

/// How an agent run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentExit {
    /// Stopped when asked, or `--once` delivered everything.
    Done,
    /// `--once`: some collaborator failed, so nothing was delivered.
    Rejected,
    /// The workload exited with this code (128 + signal when a signal ended it).
    Workload(i32),
}

/// Everything the agent's tasks share.
struct Shared {
    health: Health,
    metrics: Arc<Metrics>,
    generation: watch::Sender<Arc<Generation>>,
    changes: mpsc::UnboundedSender<Change>,
    stop: watch::Sender<bool>,
}

/// Runs the agent until it is stopped, its workload exits, or (`--once`) one cycle is done.
/// `control` carries the process's signals; `ready` receives the bound health address (if any)
/// once the first delivery is done.
pub async fn run(
    options: AgentOptions,
    mut control: mpsc::Receiver<Control>,
    ready: Option<tokio::sync::oneshot::Sender<Option<SocketAddr>>>,
) -> Result<AgentExit, AgentError> {
    let generation = Arc::new(Generation::load(&options.config).await?);
    let health = Health::default();
    let metrics = Arc::new(Metrics::default());
    let (stop_server, server_stopped) = watch::channel(false);
    let server = match generation.config.agent.listen.filter(|_| !options.once) {
        Some(address) => Some(
            serve::start(address, health.clone(), metrics.clone(), server_stopped)
                .await
                .map_err(|source| AgentError::Listen { address, source })?,
        ),
        None => None,
    };
    let bound = server.as_ref().map(|(address, _)| *address);
    let result = supervise(
        options,
        generation,
        health,
        metrics,
        &mut control,
        ready,
        bound,
    )
    .await;
    let _ = stop_server.send(true);
    if let Some((_, task)) = server {
        let _ = task.await;
    }
    result
}

async fn supervise(
    options: AgentOptions,
    generation: Arc<Generation>,
    health: Health,
    metrics: Arc<Metrics>,
    control: &mut mpsc::Receiver<Control>,
    ready: Option<tokio::sync::oneshot::Sender<Option<SocketAddr>>>,
    bound: Option<SocketAddr>,
) -> Result<AgentExit, AgentError> {
    let token_use = if options.once {
        TokenUse::RevokeAfterRead
    } else {
        TokenUse::Hold
    };
    let Some(mut outcomes) = first_exchange(
        &generation,
        &health,
        &metrics,
        control,
        token_use,
        options.once,
    )
    .await
    else {
        return Ok(if options.once {
            AgentExit::Rejected
        } else {
            AgentExit::Done
        });
    };
    // Asked to stop while the first exchange ran: nothing is delivered, nothing is started.
    while let Ok(command) = control.try_recv() {
        if let Control::Stop(_) = command {
            revoke_all(&generation, &mut outcomes).await;
            return Ok(AgentExit::Done);
        }
    }
    let config = generation.config.clone();
    let root = config.delivery.root.clone();

    // Everything that can be checked is checked before anything is delivered.
    let mut env = WorkloadEnv::new();
    let checked = (|| -> Result<(), AgentError> {
        for outcome in &outcomes {
            if let Ok(released) = &outcome.result {
                let variables = environment_of(&outcome.collaborator, released)?;
                if let Some((variable, _)) = variables
                    .iter()
                    .find(|(name, _)| std::env::var_os(name).is_some())
                {
                    return Err(AgentError::VariableTaken {
                        collaborator: outcome.collaborator.clone(),
                        variable: variable.clone(),
                    });
                }
                env.insert(outcome.collaborator.clone(), variables);
            }
        }
        let paths: Vec<PathBuf> = config
            .collaborators
            .iter()
            .flat_map(|c| c.secrets.iter().filter_map(|s| s.file.clone()))
            .chain(
                config
                    .collaborators
                    .iter()
                    .filter_map(|c| c.route.vault().and_then(|v| v.token_file.clone())),
            )
            .collect();
        let mut digests = digests_on_disk(&paths, &root);
        let released = outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok().map(|r| (o.collaborator.as_str(), r)));
        let written = deliver_changed(released, &root, &mut digests)?;
        tracing::info!(files = written.len(), "first delivery done");
        Ok(())
    })();
    if let Err(error) = checked {
        revoke_all(&generation, &mut outcomes).await;
        return Err(error);
    }
    if options.once {
        return Ok(AgentExit::Done);
    }

    let mut workload = match options.workload {
        Some(command) => {
            let program = command.program.clone();
            match Workload::start(
                command,
                &env,
                config.agent.restart_debounce,
                config.agent.stop_timeout,
            ) {
                Ok(workload) => Some(workload),
                Err(source) => {
                    let mut paths = Vec::new();
                    for outcome in &outcomes {
                        if let Ok(released) = &outcome.result {
                            paths.extend(
                                crate::exchange::file_digests(&outcome.collaborator, released)
                                    .into_keys(),
                            );
                        }
                    }
                    remove_files(&paths, &root);
                    revoke_all(&generation, &mut outcomes).await;
                    return Err(AgentError::Start { program, source });
                }
            }
        }
        None => None,
    };

    let (changes_tx, mut changes) = mpsc::unbounded_channel();
    let (stop_tx, _) = watch::channel(false);
    let (generation_tx, _) = watch::channel(generation.clone());
    let shared = Shared {
        health,
        metrics,
        generation: generation_tx,
        changes: changes_tx,
        stop: stop_tx,
    };
    let mut tasks = BTreeMap::new();
    for (index, outcome) in outcomes.into_iter().enumerate() {
        let held = match outcome.result {
            Ok(mut released) => {
                let variables = env.get(&outcome.collaborator).cloned().unwrap_or_default();
                let issuer = (generation.clone(), index);
                Held::delivered(&outcome.collaborator, &mut released, variables, issuer)
            }
            Err(_) => Held::nothing(),
        };
        tasks.insert(
            outcome.collaborator.clone(),
            spawn_task(&shared, outcome.collaborator, held),
        );
    }
    if let Some(ready) = ready {
        let _ = ready.send(bound);
    }

    let mut stopping = false;
    let exit = loop {
        tokio::select! {
            event = next_workload_event(&mut workload, &env) => match event {
                WorkloadEvent::Restarted => shared.metrics.restarted(),
                WorkloadEvent::Exited(code) => {
                    tracing::info!(code, "the workload exited; stopping");
                    break AgentExit::Workload(code);
                }
            },
            Some(change) = changes.recv() => {
                env.insert(change.collaborator.clone(), change.env);
                if let (Some(workload), false) = (workload.as_mut(), stopping) {
                    match change.on_change {
                        OnChange::Restart => workload.restart_soon(),
                        OnChange::Signal(signal) => workload.signal(signal),
                        OnChange::Nothing => {}
                    }
                }
            }
            command = control.recv(), if !stopping => match command {
                Some(Control::Reload) => reload(&options.config, &shared, &mut tasks).await,
                Some(Control::Stop(signal)) => match workload.as_mut() {
                    // The workload's exit, once it comes, ends the agent with its code.
                    Some(workload) => {
                        tracing::info!("forwarding {signal} to the workload");
                        workload.stop(signal);
                        stopping = true;
                    }
                    None => break AgentExit::Done,
                },
                // The process that drives this agent is gone: stop as if told to.
                None => match workload.as_mut() {
                    Some(workload) => {
                        workload.stop(WorkloadSignal::Term);
                        stopping = true;
                    }
                    None => break AgentExit::Done,
                },
            },
        }
    };
    shut_down(&shared, tasks).await;
    Ok(exit)
}

async fn next_workload_event(workload: &mut Option<Workload>, env: &WorkloadEnv) -> WorkloadEvent {
    match workload {
        Some(workload) => loop {
            if let Some(event) = workload.next_event(env).await {
                return event;
            }
        },
        None => std::future::pending().await,
    }
}

type Tasks = BTreeMap<String, tokio::task::JoinHandle<Held>>;

fn spawn_task(shared: &Shared, name: String, held: Held) -> tokio::task::JoinHandle<Held> {
    let task = CollaboratorTask {
        name,
        generation: shared.generation.subscribe(),
        health: shared.health.clone(),
        metrics: shared.metrics.clone(),
        changes: shared.changes.clone(),
        stop: shared.stop.subscribe(),
    };
    tokio::spawn(task.run(held))
}

/// The first exchange of every collaborator, retried (with backoff) until all succeed, or enough
/// of them under `[exchange] partial`. `None`: stopped while waiting, or `--once` failed.
async fn first_exchange(
    generation: &Generation,
    health: &Health,
    metrics: &Metrics,
    control: &mut mpsc::Receiver<Control>,
    token_use: TokenUse,
    once: bool,
) -> Option<Vec<Outcome>> {
    let config = &generation.config;
    let mut failures = 0;
    loop {
        let runs = (0..config.collaborators.len())
            .map(|index| generation.exchange.run_collaborator(index, token_use));
        let mut outcomes = futures::future::join_all(runs).await;
        for outcome in &outcomes {
            metrics.exchange(
                &outcome.collaborator,
                outcome.result.as_ref().map(|r| r.steps.as_slice()),
            );
            health.update(&outcome.collaborator, |h| match &outcome.result {
                Ok(_) => {
                    h.current = true;
                    h.last_success = Some(health::unix_seconds(std::time::Instant::now()));
                    h.consecutive_failures = 0;
                    h.last_error = None;
                }
                Err(error) => {
                    h.current = false;
                    h.consecutive_failures += 1;
                    h.last_error = Some(LastError {
                        step: error.step.to_string(),
                        message: crate::errors::error_chain(&error.cause),
                        at: health::unix_seconds(std::time::Instant::now()),
                    });
                }
            });
        }
        let succeeded = outcomes.iter().filter(|o| o.result.is_ok()).count();
        if succeeded == outcomes.len() || (config.exchange.partial && succeeded > 0) {
            return Some(outcomes);
        }
        revoke_all(generation, &mut outcomes).await;
        if once {
            return None;
        }
        failures += 1;
        let wait = backoff(
            failures,
            config.agent.backoff_min,
            config.agent.backoff_max,
            rand::random::<f64>(),
        );
        tracing::warn!(
            retry_in_ms = wait.as_millis() as u64,
            "not every collaborator released its secrets; nothing is delivered until all do"
        );
        // The whole backoff is waited out: a SIGHUP here (the configuration is re-read once
        // the agent runs) must not turn into an immediate retry at every collaborator's Vault.
        let retry_at = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(retry_at) => break,
                command = control.recv() => match command {
                    Some(Control::Reload) => {
                        tracing::warn!("SIGHUP before the first delivery: the configuration is re-read only once the agent runs; restart it to use a new one now");
                    }
                    Some(Control::Stop(_)) | None => return None,
                },
            }
        }
    }
}

/// Revokes the tokens that successful outcomes hold, kept ones included (the first delivery did
/// not go ahead, so nothing may outlive it).
async fn revoke_all(generation: &Generation, outcomes: &mut [Outcome]) {
    let revocations = outcomes
        .iter_mut()
        .enumerate()
        .filter_map(|(index, outcome)| {
            let released = outcome.result.as_mut().ok()?;
            let kept = released.vault_token.take();
            let token = released.held_token.take().or_else(|| {
                // `--once` with token_file or token_env: the token the configuration keeps.
                let logged_in = matches!(released.route, Route::JwtLogin { .. });
                kept.filter(|_| logged_in).map(|kept| HeldToken {
                    token: kept.token,
                    revocable: true,
                })
            })?;
            Some(generation.exchange.revoke_held(index, token))
        });
    futures::future::join_all(revocations).await;
}

/// SIGHUP: the new configuration and plugins are loaded and checked first; only then does
/// every collaborator switch to them (and re-exchange at once). Anything wrong keeps the running
/// generation and says why.
async fn reload(path: &std::path::Path, shared: &Shared, tasks: &mut Tasks) {
    let current = shared.generation.borrow().clone();
    let loaded = Generation::load(path).await.and_then(|next| {
        if next.config.delivery.root != current.config.delivery.root {
            return Err(AgentError::Config(ConfigError {
                file: path.to_owned(),
                problems: vec![crate::config::Problem {
                    key: "delivery.root".into(),
                    message: "cannot change while the agent runs (its files are under the old root); restart the agent instead".into(),
                }],
            }));
        }
        Ok(next)
    });
    let next = match loaded {
        Ok(next) => Arc::new(next),
        Err(error) => {
            shared.metrics.reload_failed();
            tracing::error!(
                "reload refused, the running configuration stays: {}",
                crate::errors::error_chain(&error)
            );
            return;
        }
    };
    let names: Vec<String> = next
        .exchange
        .collaborators()
        .map(|c| c.name.clone())
        .collect();
    shared.generation.send_replace(next.clone());
    // Collaborators the new configuration dropped: their tasks end on the switch; their secrets go.
    let dropped: Vec<String> = tasks
        .keys()
        .filter(|n| !names.contains(n))
        .cloned()
        .collect();
    for name in dropped {
        if let Some(task) = tasks.remove(&name) {
            if let Ok(held) = task.await {
                release(&current, held).await;
            }
            shared.health.remove(&name);
            let _ = shared.changes.send(Change {
                collaborator: name,
                env: Vec::new(),
                on_change: OnChange::Restart,
            });
        }
    }
    for name in names {
        if let std::collections::btree_map::Entry::Vacant(slot) = tasks.entry(name) {
            let task = spawn_task(shared, slot.key().clone(), Held::nothing());
            slot.insert(task);
        }
    }
    tracing::info!("configuration reloaded");
}

/// Revokes a collaborator's token and removes its files.
async fn release(generation: &Generation, mut held: Held) {
    remove_files(held.files.keys(), &generation.config.delivery.root);
    held.revoke_token().await;
}

/// Stops every collaborator's task, then revokes what they hold and removes their files.
async fn shut_down(shared: &Shared, tasks: Tasks) {
    let _ = shared.stop.send(true);
    let generation = shared.generation.borrow().clone();
    let releases = tasks.into_values().map(|task| {
        let generation = generation.clone();
        async move {
            if let Ok(held) = task.await {
                release(&generation, held).await;
            }
        }
    });
    futures::future::join_all(releases).await;
}
