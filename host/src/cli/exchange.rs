use super::{Exit, Format};
use attestgate::config::{Config, RunKind};
use attestgate::exchange::{
    deliver_files, environment, json_output, Exchange, ExchangeReport, Route,
};
use clap::Args;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct ExchangeArgs {
    /// The attestgate configuration (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Deliver what succeeded even if some collaborator failed (default: all or nothing).
    #[arg(long)]
    partial: bool,
    /// `json` also prints {collaborator: {path: data}} on stdout — secrets included.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The attestgate configuration (TOML).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// Deliver what succeeded even if some collaborator failed (default: all or nothing).
    #[arg(long)]
    partial: bool,
    /// The command to replace attestgate with, secrets in its environment.
    #[arg(last = true, required = true, value_name = "CMD ARGS")]
    command: Vec<OsString>,
}

async fn run_exchange(
    config_path: &std::path::Path,
) -> anyhow::Result<(Config, Exchange, ExchangeReport)> {
    let config = Config::load(config_path)?;
    let exchange = Exchange::start(&config, RunKind::OneShot).await?;
    let report = exchange.run().await;
    print_report(&report);
    Ok((config, exchange, report))
}

fn print_report(report: &ExchangeReport) {
    for outcome in &report.outcomes {
        match &outcome.result {
            Ok(released) if released.route == Route::PolicyOnly => eprintln!(
                "{:<16} allowed by its plugin; no Vault configured (audience {}, {} ms)",
                outcome.collaborator,
                released.audience,
                released.duration.as_millis()
            ),
            Ok(released) => {
                let kept = if released.vault_token.is_some() {
                    ", Vault token kept"
                } else {
                    ""
                };
                eprintln!(
                    "{:<16} released {} secret(s) {} (audience {}, {} ms{kept})",
                    outcome.collaborator,
                    released.secrets.len(),
                    released.route,
                    released.audience,
                    released.duration.as_millis()
                );
            }
            Err(error) => {
                eprintln!(
                    "{:<16} FAILED at {}: {}",
                    outcome.collaborator,
                    error.step,
                    attestgate::error_chain(&error.cause)
                );
            }
        }
    }
}

/// Applies all-or-nothing; returns whether delivery may go ahead.
async fn may_deliver(
    config: &Config,
    exchange: &Exchange,
    report: &ExchangeReport,
    partial: bool,
) -> bool {
    if report.all_succeeded() {
        return true;
    }
    if partial || config.exchange.partial {
        eprintln!("partial delivery: delivering what the other collaborators released");
        return true;
    }
    exchange.revoke_kept(report).await;
    eprintln!("nothing was delivered: the exchange is all-or-nothing (use --partial or [exchange] partial = true to change that)");
    false
}

pub async fn exchange(args: ExchangeArgs) -> anyhow::Result<Exit> {
    let (config, exchange, report) = run_exchange(&args.config).await?;
    if !may_deliver(&config, &exchange, &report, args.partial).await {
        return Ok(Exit::Rejected);
    }
    let delivered = match deliver_files(&report, &config.delivery.root) {
        Ok(delivery) => delivery.commit(),
        Err(error) => {
            exchange.revoke_kept(&report).await;
            return Err(error.into());
        }
    };
    for path in delivered.paths() {
        eprintln!("wrote {}", path.display());
    }
    if args.format == Format::Json {
        out!("{}", serde_json::to_string_pretty(&json_output(&report))?);
    }
    Ok(if report.all_succeeded() {
        Exit::Ok
    } else {
        Exit::Rejected
    })
}

/// The program `exec` would run, if it can be found and executed: checked before anything is
/// delivered, so that a typo does not leave secret files behind.
pub fn resolve_program(program: &OsStr) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let path = Path::new(program);
    if path.components().count() > 1 {
        return executable(path).then(|| path.to_owned());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|candidate| executable(candidate))
}

pub async fn exec(args: ExecArgs) -> anyhow::Result<Exit> {
    use std::os::unix::process::CommandExt;
    let (config, exchange, report) = run_exchange(&args.config).await?;
    if !may_deliver(&config, &exchange, &report, args.partial).await {
        return Ok(Exit::Rejected);
    }
    // Everything that can be checked is checked before anything is delivered.
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let prepared = environment(&report)
        .map_err(anyhow::Error::from)
        .and_then(|env| {
            // A collaborator may add variables, never change the workload's own.
            if let Some((name, _)) = env.iter().find(|(name, _)| std::env::var_os(name).is_some()) {
                anyhow::bail!("{name} is already set in the workload's environment; a collaborator's secret may not replace it; nothing was delivered");
            }
            let resolved = resolve_program(program).ok_or_else(|| {
                anyhow::anyhow!(
                    "cannot run {}: no such executable; nothing was delivered",
                    program.to_string_lossy()
                )
            })?;
            Ok((env, resolved))
        });
    let (env, resolved) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => {
            exchange.revoke_kept(&report).await;
            return Err(error);
        }
    };
    let delivered = match deliver_files(&report, &config.delivery.root) {
        Ok(delivery) => delivery.commit(),
        Err(error) => {
            exchange.revoke_kept(&report).await;
            return Err(error.into());
        }
    };
    let mut command = std::process::Command::new(&resolved);
    command.arg0(program).args(rest);
    for (name, value) in &env {
        command.env(name, value.as_str());
    }
    // exec only returns on failure; on success the process is the workload now, so its signals
    // and exit code are the workload's own.
    let error = command.exec();
    delivered.remove();
    exchange.revoke_kept(&report).await;
    anyhow::bail!(
        "cannot run {}: {error}; the secret files were removed and kept Vault tokens revoked",
        program.to_string_lossy()
    )
}
