use super::{read_token, render, stdin_or_path, Exit, Format};

use attestgate::attestation::unix_now;
use attestgate::attestation::{read_token_file, DEFAULT_LAUNCHER_SOCKET};
use attestgate::attestation::{Claims, LauncherClient, TokenRequest, TokenType};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Get a token from the launcher (custom audience) or the default token file, and print it.
    Get(GetArgs),
    /// Decode a token WITHOUT verifying it and print a summary of its claims.
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The launcher's Unix socket.
    #[arg(long, default_value = DEFAULT_LAUNCHER_SOCKET)]
    socket: PathBuf,
    /// Audience of the token. Without it, the launcher's default token (aud https://sts.googleapis.com).
    #[arg(long)]
    audience: Option<String>,
    /// A nonce to bind into `eat_nonce` (repeatable, at most 6, 10-74 bytes each).
    #[arg(long = "nonce", value_name = "NONCE")]
    nonces: Vec<String>,
    /// OIDC, PKI or AWS_PRINCIPALTAGS (in any case).
    #[arg(long, default_value = "OIDC")]
    token_type: TokenType,
    /// Read the default token from this file instead of asking the socket.
    #[arg(long, conflicts_with_all = ["audience", "nonces"])]
    file: Option<PathBuf>,
    /// How long to wait for the launcher.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    timeout: Duration,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Token file, or - for stdin.
    #[arg(value_name = "FILE|-")]
    token: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn run(command: TokenCommand) -> anyhow::Result<Exit> {
    match command {
        TokenCommand::Get(args) => get(args).await,
        TokenCommand::Inspect(args) => inspect(args).await,
    }
}

async fn get(args: GetArgs) -> anyhow::Result<Exit> {
    let token = if let Some(file) = &args.file {
        read_token_file(file).await?
    } else {
        let client = LauncherClient::new(&args.socket).with_timeout(args.timeout);
        match args.audience {
            Some(audience) => {
                let request = TokenRequest {
                    audience,
                    token_type: args.token_type,
                    nonces: args.nonces,
                };
                client.custom_token(&request).await?
            }
            None => client.default_token().await?,
        }
    };
    out!("{}", token.expose());
    Ok(Exit::Ok)
}

async fn inspect(args: InspectArgs) -> anyhow::Result<Exit> {
    let token = read_token(&stdin_or_path(args.token)).await?;
    let parsed = attestgate::attestation::parse_unverified(token.expose())
        .map_err(|e| anyhow::anyhow!("malformed token: {e}"))?;
    let payload = parsed
        .payload()
        .map_err(|e| anyhow::anyhow!("malformed token: {e}"))?;
    match args.format {
        Format::Json => {
            let out = serde_json::json!({
                "verified": false,
                "header": parsed.header.raw,
                "claims": payload,
            });
            out!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => {
            let claims = Claims::from_payload(payload);
            out!("UNVERIFIED: decoded only. The signature, issuer, audience and expiry have NOT been checked;");
            out!("            use `attestgate verify` before trusting anything below.");
            out!(
                "{}",
                render::summary(&parsed.header, &claims, unix_now()).trim_end()
            );
        }
    }
    Ok(Exit::Ok)
}
