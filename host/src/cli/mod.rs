/// `println!` for command output: a reader that went away (`attestgate … | head -1`) is not an
/// error, so a broken pipe ends the process quietly with success, as ripgrep does, instead of
/// panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*))
    };
}

mod agent;
#[cfg(feature = "dev")]
mod dev;
mod exchange;
mod plugin;
mod render;
mod token;
mod vault;
mod verify;

use clap::{Parser, Subcommand, ValueEnum};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Writes one line of command output; see `out!`.
pub fn write_stdout(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{line}").and_then(|()| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(Exit::Ok.code().into());
        }
        eprintln!("error: cannot write to standard output: {error}");
        std::process::exit(Exit::Operational.code().into());
    }
}

/// Exit codes, documented in the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Success: the token is valid, the command did its job.
    Ok,
    /// The token (or plugin verdict) was examined and rejected.
    Rejected,
    // 2 is clap's exit code for a command-line usage error.
    /// Something needed was unavailable: a file, the launcher, the issuer's keys.
    Operational,
    /// A plugin failed: trap, deadline, memory, log limit, bad return, rejected configuration.
    PluginFailed,
    /// `agent -- CMD`: the workload's own exit code.
    Workload(u8),
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::Rejected => 1,
            Exit::Operational => 3,
            Exit::PluginFailed => 4,
            Exit::Workload(code) => code,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "attestgate",
    version,
    about = "Turn a Confidential Space attestation into secrets from each collaborator's own Vault",
    long_about = "Turn a Google Confidential Space attestation into secrets from each collaborator's own \
Vault or OpenBao.\n\nLogs go to stderr and are controlled by RUST_LOG (e.g. RUST_LOG=attestgate=debug)."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// For every collaborator: a token for its audience, verified, judged by its plugin,
    /// exchanged at its Vault for the secrets it releases; then write the configured secret files.
    Exchange(exchange::ExchangeArgs),
    /// Run the exchange, then replace this process with CMD, the secrets in its environment.
    Exec(exchange::ExecArgs),
    /// Keep every collaborator's secrets fresh (renewing, re-exchanging, rewriting files that
    /// changed) and, with -- CMD, run the workload as a supervised child.
    Agent(agent::AgentArgs),
    /// Verify a token: RS256 signature against the issuer's keys, iss, aud, exp, nbf and iat.
    Verify(verify::VerifyArgs),
    /// Get and inspect attestation tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Write and check policy plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// For collaborators: check a Vault role before a login fails (`vault doctor`), or write the
    /// role that enforces a plugin's rules (`vault role`).
    #[command(subcommand)]
    Vault(vault::VaultCommand),
    /// Local stand-ins for Google's services, for development and tests.
    #[cfg(feature = "dev")]
    #[command(subcommand)]
    Dev(dev::DevCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout.
    Man,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum, PartialEq, Eq)]
pub enum Format {
    /// A readable summary.
    #[default]
    Text,
    /// Full JSON on stdout.
    Json,
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal: in a log file, escape sequences are noise (and the only escape
    // sequences in attestgate's output should be ones it chose).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}

pub async fn run(cli: Cli) -> anyhow::Result<Exit> {
    match cli.command {
        Command::Token(command) => token::run(command).await,
        Command::Verify(args) => verify::run(args).await,
        #[cfg(feature = "dev")]
        Command::Dev(command) => dev::run(command).await,
        Command::Plugin(command) => plugin::run(command).await,
        Command::Exchange(args) => exchange::exchange(args).await,
        Command::Exec(args) => exchange::exec(args).await,
        Command::Agent(args) => agent::run(args).await,
        Command::Vault(command) => vault::run(command).await,
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "attestgate", &mut script);
            out!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(Exit::Ok)
        }
        Command::Man => {
            let mut page = Vec::new();
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(&mut page)?;
            out!("{}", String::from_utf8_lossy(&page).trim_end());
            Ok(Exit::Ok)
        }
    }
}

/// Reads a token from a file (as the library reads the launcher's token file), or from stdin
/// for `-`.
pub async fn read_token(source: &Path) -> anyhow::Result<attestgate::attestation::Jwt> {
    if source != Path::new("-") {
        return Ok(attestgate::attestation::read_token_file(source).await?);
    }
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::stdin()
        .read_to_string(&mut text)
        .map_err(|e| anyhow::anyhow!("cannot read the token from stdin: {e}"))?;
    let token = attestgate::attestation::Jwt::new(text.trim());
    anyhow::ensure!(!token.is_empty(), "the token from stdin is empty");
    Ok(token)
}

pub fn stdin_or_path(path: Option<PathBuf>) -> PathBuf {
    path.unwrap_or_else(|| PathBuf::from("-"))
}

/// Reads a JSON file; a file holding a JWT gives its (unverified) payload.
pub fn read_json(path: &Path, what: &str) -> anyhow::Result<serde_json::Value> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read {what} {}: {e}", path.display()))?;
    let trimmed = text.trim();
    if trimmed.starts_with("eyJ") {
        let parsed = attestgate::attestation::parse_unverified(trimmed).map_err(|e| {
            anyhow::anyhow!(
                "{what} {} looks like a JWT but is malformed: {e}",
                path.display()
            )
        })?;
        return Ok(serde_json::Value::Object(
            parsed
                .payload()
                .map_err(|e| anyhow::anyhow!("{what} {}: {e}", path.display()))?,
        ));
    }
    serde_json::from_str(trimmed)
        .map_err(|e| anyhow::anyhow!("{what} {} is not valid JSON: {e}", path.display()))
}
