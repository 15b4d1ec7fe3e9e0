use super::Exit;
use attestgate::dev::{DevClaims, Launcher, LauncherConfig};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Run a local Confidential Space launcher until SIGINT or SIGTERM.
    ///
    /// It serves the launcher's token API on DIR/teeserver.sock, keeps a default token in
    /// DIR/attestation_verifier_claims_token, and publishes OIDC discovery and a JWKS on
    /// 127.0.0.1. When ready it writes DIR/launcher.json with
    /// {issuer, jwks_url, discovery_url, socket, token_file, pki_root}.
    Launcher(LauncherArgs),
}

#[derive(Debug, Args)]
pub struct LauncherArgs {
    /// Directory for the socket, token file, keys and launcher.json; created with mode 0700 if
    /// missing. The socket and the token file are owner-only (0600) whatever the umask. An
    /// existing key file is used only if it is a regular file (not a symlink) owned by the current
    /// user with mode 0600 (or stricter).
    #[arg(long)]
    dir: PathBuf,
    /// Exactly these claims (a JSON object, e.g. a real token's payload); the launcher fills in
    /// iss, aud, iat, nbf, exp, and eat_nonce when nonces are requested.
    #[arg(long, value_name = "FILE.json", conflicts_with = "claims_patch")]
    claims: Option<PathBuf>,
    /// A JSON merge patch over the production-shaped default claims; `null` removes a claim.
    #[arg(long, value_name = "FILE.json")]
    claims_patch: Option<PathBuf>,
    /// Port for discovery and JWKS on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// The `iss` of minted tokens. Discovery names the same issuer.
    #[arg(long, default_value = attestgate::attestation::GOOGLE_ISSUER)]
    issuer: String,
    /// Rotate the signing key this often (e.g. 10m); old keys stay in the JWKS until their tokens expire.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    rotate_every: Option<Duration>,
    /// Lifetime of minted tokens (exp - iat).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "1h")]
    token_lifetime: Duration,
}

pub async fn run(command: DevCommand) -> anyhow::Result<Exit> {
    match command {
        DevCommand::Launcher(args) => launcher(args).await,
    }
}

async fn launcher(args: LauncherArgs) -> anyhow::Result<Exit> {
    let read = |flag: &str, path: &PathBuf| -> anyhow::Result<serde_json::Value> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {flag} {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{flag} {} is not valid JSON: {e}", path.display()))
    };
    let claims = match (&args.claims, &args.claims_patch) {
        (Some(path), _) => DevClaims::Exactly(read("--claims", path)?),
        (None, Some(path)) => DevClaims::Patch(read("--claims-patch", path)?),
        (None, None) => DevClaims::default(),
    };
    let config = LauncherConfig {
        claims,
        port: args.port,
        issuer: args.issuer,
        rotate_every: args.rotate_every,
        token_lifetime: args.token_lifetime,
        ..LauncherConfig::new(args.dir)
    };
    let launcher = Launcher::start(config).await?;
    let info = launcher.info();
    out!("dev launcher ready");
    out!("  issuer        {}", info.issuer);
    out!("  discovery     {}", info.discovery_url);
    out!("  jwks          {}", info.jwks_url);
    out!("  socket        {}", info.socket.display());
    out!("  token file    {}", info.token_file.display());
    out!("  pki root      {}", info.pki_root.display());
    wait_for_signal().await?;
    launcher.shutdown().await;
    Ok(Exit::Ok)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
