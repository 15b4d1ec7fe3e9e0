use super::{Exit, Format};
use attestgate::config::Config;
use attestgate::exchange::{deliver_files, environment, json_output, Exchange, Report, Route};
use clap::Args;
use std::ffi::OsString;
use std::path::PathBuf;

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

async fn run_exchange(config_path: &std::path::Path) -> anyhow::Result<(Config, Exchange, Report)> {
    let config = Config::load(config_path)?;
    let prepare_config = config.clone();
    // Compiling plugins is CPU work; keep it off the async workers.
    let exchange =
        tokio::task::spawn_blocking(move || Exchange::prepare(&prepare_config)).await??;
    let report = exchange.run().await;
    print_report(&report);
    Ok((config, exchange, report))
}

fn print_report(report: &Report) {
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
                    outcome.collaborator, error.step, error.message
                );
            }
        }
    }
}

/// Applies all-or-nothing; returns whether delivery may go ahead.
async fn may_deliver(config: &Config, exchange: &Exchange, report: &Report, partial: bool) -> bool {
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
    let written = deliver_files(&report)?;
    for path in &written {
        eprintln!("wrote {}", path.display());
    }
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&json_output(&report))?);
    }
    Ok(if report.all_succeeded() {
        Exit::Ok
    } else {
        Exit::Rejected
    })
}

pub async fn exec(args: ExecArgs) -> anyhow::Result<Exit> {
    use std::os::unix::process::CommandExt;
    let (config, exchange, report) = run_exchange(&args.config).await?;
    if !may_deliver(&config, &exchange, &report, args.partial).await {
        return Ok(Exit::Rejected);
    }
    deliver_files(&report)?;
    let env = environment(&report);
    drop(report);
    let (program, rest) = args.command.split_first().expect("clap requires a command");
    let mut command = std::process::Command::new(program);
    command.args(rest);
    for (name, value) in &env {
        command.env(name, value.as_str());
    }
    // exec only returns on failure; on success the process is the workload now, so its signals
    // and exit code are the workload's own.
    let error = command.exec();
    anyhow::bail!("cannot run {}: {error}", program.to_string_lossy())
}
