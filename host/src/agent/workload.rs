//! The workload as the agent's child: started with the collaborators' environment variables,
//! restarted (debounced) or signalled when a secret changes, and stopped with a grace period.
//!
//! Lessons from Vault Agent's supervisor: nothing happens when nothing changed; changes close
//! together (one rotation across three collaborators) make one restart; and a restart in
//! progress is never mistaken for the workload exiting.

use crate::config::WorkloadSignal;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;
use tokio::process::{Child, Command};
use tokio::time::Instant;
use zeroize::Zeroizing;

/// What to run: the resolved program, the name it was asked for (its `argv[0]`) and arguments.
#[derive(Debug, Clone)]
pub struct WorkloadCommand {
    /// The executable, found on `PATH` if need be.
    pub program: PathBuf,
    /// `argv[0]`, as the operator wrote it.
    pub arg0: OsString,
    /// The arguments.
    pub args: Vec<OsString>,
}

/// Environment variables per collaborator.
pub type WorkloadEnv = BTreeMap<String, Vec<(String, Zeroizing<String>)>>;

/// Why the child is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stopping {
    /// To start it again with new secrets.
    Restart,
    /// For good: the agent stops.
    Exit,
}

/// A running workload.
#[derive(Debug)]
pub struct Workload {
    command: WorkloadCommand,
    child: Child,
    restart_at: Option<Instant>,
    /// The first change of the batch `restart_at` waits on: a restart never waits more than
    /// four debounce times from it, however often changes keep coming.
    batch_started: Option<Instant>,
    stopping: Option<(Stopping, Instant)>,
    debounce: Duration,
    stop_timeout: Duration,
}

/// What the supervisor wants the agent to know after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum WorkloadEvent {
    /// Restarted with the current environment.
    Restarted,
    /// Exited for good with this code (128 + the signal's number when a signal ended it).
    Exited(i32),
}

fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}

fn spawn(command: &WorkloadCommand, env: &WorkloadEnv) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut std_command = std::process::Command::new(&command.program);
    std_command.arg0(&command.arg0).args(&command.args);
    for (name, value) in env.values().flatten() {
        std_command.env(name, value.as_str());
    }
    Command::from(std_command).spawn()
}

impl Workload {
    /// Starts the workload with `env` on top of the agent's own environment.
    pub fn start(
        command: WorkloadCommand,
        env: &WorkloadEnv,
        debounce: Duration,
        stop_timeout: Duration,
    ) -> std::io::Result<Workload> {
        let child = spawn(&command, env)?;
        Ok(Workload {
            command,
            child,
            restart_at: None,
            batch_started: None,
            stopping: None,
            debounce,
            stop_timeout,
        })
    }

    /// The child's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// A secret it uses changed: restart it once no further change came for the debounce time
    /// (and at the latest four debounce times after the batch's first change, so that one
    /// collaborator changing faster than the debounce cannot hold back everyone's rotations).
    pub fn restart_soon(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        let now = Instant::now();
        let first = *self.batch_started.get_or_insert(now);
        self.restart_at = Some(restart_time(now, first, self.debounce));
    }

    /// Sends it `signal` (a secret changed, or the agent forwards one it received).
    pub fn signal(&self, signal: WorkloadSignal) {
        if let Some(pid) = self
            .child
            .id()
            .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
        {
            if let Err(e) = rustix::process::kill_process(pid, signal.signal()) {
                tracing::warn!("could not send {signal} to the workload (pid {pid:?}): {e}");
            }
        }
    }

    /// Forwards `signal` and lets the workload exit; it is killed after the stop timeout.
    pub fn stop(&mut self, signal: WorkloadSignal) {
        self.restart_at = None;
        self.batch_started = None;
        self.signal(signal);
        self.stopping = Some((Stopping::Exit, Instant::now() + self.stop_timeout));
    }

    /// Waits for the next thing the supervisor must act on, acts, and reports what the agent
    /// must know (a restart or the final exit). Cancel-safe: the agent calls it in a `select!`.
    pub async fn next_event(&mut self, env: &WorkloadEnv) -> Option<WorkloadEvent> {
        let kill_at = self.stopping.map(|(_, at)| at);
        tokio::select! {
            status = self.child.wait() => {
                let code = match status {
                    Ok(status) => exit_code(status),
                    Err(e) => {
                        tracing::error!("cannot wait for the workload: {e}");
                        1
                    }
                };
                match self.stopping.take() {
                    Some((Stopping::Restart, _)) => match spawn(&self.command, env) {
                        Ok(child) => {
                            self.child = child;
                            Some(WorkloadEvent::Restarted)
                        }
                        Err(e) => {
                            tracing::error!("cannot restart the workload {}: {e}", self.command.program.display());
                            Some(WorkloadEvent::Exited(127))
                        }
                    },
                    _ => Some(WorkloadEvent::Exited(code)),
                }
            }
            () = sleep_until(self.restart_at), if self.restart_at.is_some() => {
                self.restart_at = None;
                self.batch_started = None;
                tracing::info!("secrets changed: restarting the workload");
                self.signal(WorkloadSignal::Term);
                self.stopping = Some((Stopping::Restart, Instant::now() + self.stop_timeout));
                None
            }
            () = sleep_until(kill_at), if kill_at.is_some() => {
                tracing::warn!("the workload did not exit within {} s of SIGTERM: killing it", self.stop_timeout.as_secs_f64());
                if let Err(e) = self.child.start_kill() {
                    tracing::warn!("cannot kill the workload: {e}");
                }
                if let Some((why, _)) = self.stopping {
                    // Killed now; only the wait above remains.
                    self.stopping = Some((why, Instant::now() + Duration::from_secs(3600)));
                }
                None
            }
        }
    }
}

/// When a batch of changes that began at `first` restarts the workload, after a change at `now`:
/// a debounce after the last change, but never later than four debounces after the first.
fn restart_time(now: Instant, first: Instant, debounce: Duration) -> Instant {
    (now + debounce).min(first + debounce * 4)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str) -> WorkloadCommand {
        WorkloadCommand {
            program: "/bin/sh".into(),
            arg0: "sh".into(),
            args: vec!["-c".into(), script.into()],
        }
    }

    async fn until_exit(workload: &mut Workload, env: &WorkloadEnv) -> Vec<WorkloadEvent> {
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(event) = workload.next_event(env).await {
                let done = matches!(event, WorkloadEvent::Exited(_));
                events.push(event);
                if done {
                    break;
                }
            }
        }
        events
    }

    #[tokio::test]
    async fn the_exit_code_and_a_fatal_signal_pass_through() {
        let env = WorkloadEnv::new();
        let mut workload = Workload::start(
            shell("exit 7"),
            &env,
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            until_exit(&mut workload, &env).await,
            [WorkloadEvent::Exited(7)]
        );
        let mut workload = Workload::start(
            shell("kill -USR1 $$; sleep 5"),
            &env,
            Duration::ZERO,
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(
            until_exit(&mut workload, &env).await,
            [WorkloadEvent::Exited(
                128 + rustix::process::Signal::USR1.as_raw()
            )]
        );
    }

    /// Polls until `path` holds `lines` lines (the script writes one once its trap is set).
    async fn lines_in(path: &std::path::Path, lines: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut poll = tokio::time::interval(Duration::from_millis(10));
        loop {
            poll.tick().await;
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= lines {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "{} never had {lines} lines",
                path.display()
            );
        }
    }

    /// A collaborator whose secret changes every half debounce would postpone a plain debounce
    /// forever, and with it every other collaborator's rotation.
    #[test]
    fn changes_that_never_stop_still_restart_within_four_debounces() {
        let debounce = Duration::from_secs(2);
        let first = Instant::now();
        assert_eq!(restart_time(first, first, debounce), first + debounce);
        for change in 1..100u32 {
            let now = first + debounce / 2 * change;
            assert!(restart_time(now, first, debounce) <= first + debounce * 4);
        }
        assert_eq!(
            restart_time(first + debounce, first, debounce),
            first + debounce * 2
        );
    }

    #[tokio::test]
    async fn changes_close_together_restart_once_with_the_new_environment() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("starts");
        let script = format!(
            "trap 'exit 0' TERM; echo \"$SECRET\" >> {}; while :; do sleep 0.05; done",
            log.display()
        );
        let mut env = WorkloadEnv::new();
        env.insert(
            "a".into(),
            vec![("SECRET".into(), Zeroizing::new("one".into()))],
        );
        let mut workload = Workload::start(
            shell(&script),
            &env,
            Duration::from_millis(300),
            Duration::from_secs(5),
        )
        .unwrap();
        lines_in(&log, 1).await;
        env.insert(
            "a".into(),
            vec![("SECRET".into(), Zeroizing::new("two".into()))],
        );
        for _ in 0..3 {
            workload.restart_soon();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            assert!(Instant::now() < deadline, "no restart");
            if workload.next_event(&env).await == Some(WorkloadEvent::Restarted) {
                break;
            }
        }
        assert_eq!(
            lines_in(&log, 2).await,
            "one\ntwo\n",
            "restarted once, with the new value"
        );
        workload.stop(WorkloadSignal::Term);
        assert_eq!(
            until_exit(&mut workload, &env).await,
            [WorkloadEvent::Exited(0)]
        );
    }

    #[tokio::test]
    async fn a_workload_ignoring_sigterm_is_killed_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let env = WorkloadEnv::new();
        let mut workload = Workload::start(
            shell(&format!(
                "trap '' TERM; echo >> {}; while :; do sleep 0.05; done",
                ready.display()
            )),
            &env,
            Duration::ZERO,
            Duration::from_millis(200),
        )
        .unwrap();
        lines_in(&ready, 1).await;
        workload.stop(WorkloadSignal::Term);
        assert_eq!(
            until_exit(&mut workload, &env).await,
            [WorkloadEvent::Exited(
                128 + rustix::process::Signal::KILL.as_raw()
            )]
        );
    }
}
