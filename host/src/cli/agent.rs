use super::Exit;
use attestgate::agent::{AgentExit, AgentOptions, Control, WorkloadCommand};
use attestgate::config::WorkloadSignal;
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The attestgate configuration (TOML); re-read on SIGHUP.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// One cycle, then exit: the exchange with the agent's delivery rules (files rewritten only
    /// when their content changed).
    #[arg(long, conflicts_with = "command")]
    once: bool,
    /// The workload to start and supervise, secrets in its environment; its exit code becomes
    /// the agent's.
    #[arg(last = true, value_name = "CMD ARGS")]
    command: Vec<OsString>,
}

pub async fn run(args: AgentArgs) -> anyhow::Result<Exit> {
    let workload = match args.command.split_first() {
        Some((program, rest)) => Some(WorkloadCommand {
            program: super::exchange::resolve_program(program).ok_or_else(|| {
                anyhow::anyhow!(
                    "cannot run {}: no such executable; nothing was delivered",
                    program.to_string_lossy()
                )
            })?,
            arg0: program.clone(),
            args: rest.to_vec(),
        }),
        None => None,
    };
    // Signals become the agent's controls: SIGHUP reloads, SIGTERM and SIGINT stop (forwarded
    // to the workload first).
    let (control, controls) = tokio::sync::mpsc::channel(8);
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let forward = tokio::spawn(async move {
        loop {
            let command = tokio::select! {
                _ = hangup.recv() => Control::Reload,
                _ = terminate.recv() => Control::Stop(WorkloadSignal::Term),
                _ = interrupt.recv() => Control::Stop(WorkloadSignal::Int),
            };
            if control.send(command).await.is_err() {
                return;
            }
        }
    });
    let options = AgentOptions {
        config: args.config,
        once: args.once,
        workload,
    };
    let exit = attestgate::agent::run(options, controls, None).await;
    forward.abort();
    Ok(match exit? {
        AgentExit::Done => Exit::Ok,
        AgentExit::Rejected => {
            eprintln!("nothing was delivered: not every collaborator released its secrets (see the log above)");
            Exit::Rejected
        }
        AgentExit::Workload(code) => Exit::Workload(code.clamp(0, 255) as u8),
    })
}
