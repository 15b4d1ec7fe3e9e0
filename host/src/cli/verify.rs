use super::{read_token, render, stdin_or_path, Exit, Format};
use attestgate::attestation::unix_now;
use attestgate::attestation::Verifier;
use attestgate::config::{Config, RunKind};
use attestgate::exchange::{select_audience, verify_and_judge};
use attestgate::plugin::{EngineOptions, PluginEngine};
use clap::{ArgGroup, Args};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("keys").args(["jwks_url", "jwks_file", "discovery_url"])))]
pub struct VerifyArgs {
    /// Token file, or - for stdin.
    #[arg(long, value_name = "FILE|-")]
    token: Option<PathBuf>,
    /// The issuer's JWKS URL.
    #[arg(long)]
    jwks_url: Option<String>,
    /// A JWKS on disk.
    #[arg(long)]
    jwks_file: Option<PathBuf>,
    /// An OIDC discovery document; its issuer must equal --issuer.
    #[arg(long)]
    discovery_url: Option<String>,
    /// The audience the token must carry. Required without --config: a token minted for someone
    /// else is not yours to accept. With --config, each collaborator's plugin names its own.
    #[arg(long, required_unless_present = "config")]
    audience: Option<String>,
    /// Also run every configured collaborator's plugin on the token; one verdict per collaborator.
    /// Keys, issuer, leeway and PKI root default to the file's [attestation] section.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Expected `iss`, compared exactly [default: https://confidentialcomputing.googleapis.com].
    #[arg(long)]
    issuer: Option<String>,
    /// Check the token as of this moment (Unix seconds) instead of now, e.g. for an audit.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<i64>,
    /// Clock skew allowed on exp, nbf and iat [default: 60s].
    #[arg(long, value_parser = humantime::parse_duration)]
    leeway: Option<Duration>,
    /// Pinned root certificate (PEM or DER) for PKI tokens.
    #[arg(long, value_name = "FILE")]
    pki_root: Option<PathBuf>,
    /// Reject tokens larger than this many bytes [default: 16384].
    #[arg(long)]
    max_token_bytes: Option<usize>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// The file's [attestation] settings (or the defaults), with the command line's options on top.
fn build_verifier(args: &VerifyArgs, config: Option<&Config>) -> anyhow::Result<Verifier> {
    let mut attestation = config.map(|c| c.attestation.clone()).unwrap_or_default();
    let keys_on_command_line =
        args.jwks_url.is_some() || args.jwks_file.is_some() || args.discovery_url.is_some();
    if keys_on_command_line {
        attestation.jwks_url = args.jwks_url.clone();
        attestation.jwks_file = args.jwks_file.clone();
        attestation.discovery_url = args.discovery_url.clone();
    } else if config.is_none() {
        anyhow::bail!(
            "name the issuer's keys: --jwks-url, --jwks-file or --discovery-url (or --config)"
        );
    }
    if let Some(issuer) = &args.issuer {
        attestation.issuer = issuer.clone();
    }
    attestation.leeway = args.leeway.or(attestation.leeway);
    attestation.pki_root = args.pki_root.clone().or(attestation.pki_root);
    attestation.max_token_bytes = args.max_token_bytes.or(attestation.max_token_bytes);
    Ok(attestation.verifier(&attestgate::SystemRoots::default())?)
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let token = read_token(&stdin_or_path(args.token.clone())).await?;
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let verifier = build_verifier(&args, config.as_ref())?;
    let at = args.at.unwrap_or_else(unix_now);
    let mut exit = Exit::Ok;
    if let Some(audience) = &args.audience {
        exit = verify_one(&verifier, token.expose(), audience, at, args.format).await?;
    }
    if let Some(config) = &config {
        let per_collaborator =
            verify_collaborators(&verifier, config, token.expose(), at, args.format).await?;
        if exit == Exit::Ok {
            exit = per_collaborator;
        }
    }
    Ok(exit)
}

async fn verify_one(
    verifier: &Verifier,
    token: &str,
    audience: &str,
    at: i64,
    format: Format,
) -> anyhow::Result<Exit> {
    match verifier.verify_at(token, audience, at).await {
        Ok(verified) => {
            let claims = verified.claims();
            match format {
                Format::Json => {
                    let out = json!({
                        "valid": true,
                        "kind": verified.kind,
                        "checked_at": at,
                        "header": verified.header.raw,
                        "claims": claims.raw,
                    });
                    out!("{}", serde_json::to_string_pretty(&out)?);
                }
                Format::Text => {
                    out!(
                        "VALID: signature, issuer, audience and validity window check out at {}",
                        render::timestamp(at)
                    );
                    out!(
                        "{}",
                        render::summary(&verified.header, &claims, at).trim_end()
                    );
                }
            }
            Ok(Exit::Ok)
        }
        Err(error) => {
            match format {
                Format::Json => {
                    let out =
                        json!({"valid": false, "check": error.check(), "error": error.to_string()});
                    out!("{}", serde_json::to_string_pretty(&out)?);
                }
                Format::Text => eprintln!("INVALID ({} check failed): {error}", error.check()),
            }
            Ok(if error.is_token_rejection() {
                Exit::Rejected
            } else {
                Exit::Operational
            })
        }
    }
}

/// For each collaborator, through the exchange's own pipeline: the audience its plugin selects,
/// the token checked for that audience, and the plugin's verdict on the claims.
async fn verify_collaborators(
    verifier: &Verifier,
    config: &Config,
    token: &str,
    at: i64,
    format: Format,
) -> anyhow::Result<Exit> {
    let specs = config.plugin_specs();
    let compiler = config.plugin_compiler(RunKind::OneShot);
    let (loaded, _engine) = tokio::task::spawn_blocking(move || {
        let engine = PluginEngine::new(EngineOptions {
            compiler,
            ..EngineOptions::default()
        })?;
        anyhow::Ok((engine.load_all(&specs), engine))
    })
    .await??;
    let mut all_allow = true;
    let mut report = Vec::new();
    for (collaborator, loaded) in config.collaborators.iter().zip(loaded) {
        let name = &collaborator.name;
        let policy = match loaded {
            Ok(policy) => Arc::new(policy),
            Err(error) => {
                all_allow = false;
                let message = attestgate::error_chain(&error);
                if format == Format::Text {
                    out!("{name:<16} DENY   plugin: {message}");
                }
                report.push(json!({"collaborator": name, "allow": false, "step": "plugin", "error": message}));
                continue;
            }
        };
        let judged = async {
            let request = select_audience(&policy, &collaborator.audience).await?;
            verify_and_judge(&policy, verifier, token, &request.audience, at).await
        }
        .await;
        let audience = &collaborator.audience;
        // An allow, or a deny with the plugin's reasons, is a verdict; anything else failed a step.
        let verdict = match &judged {
            Ok(judged) => Ok(&judged.verdict),
            Err(error) => error.denial().ok_or(error),
        };
        match verdict {
            Ok(verdict) => {
                all_allow &= verdict.allow;
                if format == Format::Text {
                    out!(
                        "{name:<16} {}  (audience {audience})",
                        if verdict.allow { "ALLOW" } else { "DENY " }
                    );
                    for reason in &verdict.reasons {
                        out!("    {}", render::reason_line(reason));
                    }
                }
                report.push(
                    json!({"collaborator": name, "audience": audience, "allow": verdict.allow,
                                   "reasons": verdict.reasons, "login": verdict.login}),
                );
            }
            Err(error) => {
                all_allow = false;
                let message = attestgate::error_chain(&error.cause);
                if format == Format::Text {
                    out!("{name:<16} DENY   {}: {message}", error.step);
                }
                report.push(json!({"collaborator": name, "allow": false, "step": error.step.to_string(), "error": message}));
            }
        }
    }
    if format == Format::Json {
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({"checked_at": at, "collaborators": report}))?
        );
    }
    Ok(if all_allow { Exit::Ok } else { Exit::Rejected })
}
