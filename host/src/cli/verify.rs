use super::{read_token, render, stdin_or_path, Exit, Format};
use attestgate::attestation::jwks::KeyCacheOptions;
use attestgate::attestation::pki::PkiRoot;
use attestgate::attestation::verify::{unix_now, DEFAULT_MAX_TOKEN_BYTES};
use attestgate::attestation::{JwksCache, KeySource, Verifier, VerifyPolicy, GOOGLE_ISSUER};
use clap::{ArgGroup, Args};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("keys").required(true).args(["jwks_url", "jwks_file", "discovery_url"])))]
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
    /// The audience the token must carry (required: a token for someone else is not yours to accept).
    #[arg(long)]
    audience: String,
    /// Expected `iss`, compared exactly.
    #[arg(long, default_value = GOOGLE_ISSUER)]
    issuer: String,
    /// Check the token as of this moment (Unix seconds) instead of now, e.g. for an audit.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<i64>,
    /// Clock skew allowed on exp, nbf and iat.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    leeway: Duration,
    /// Pinned root certificate (PEM or DER) for PKI tokens.
    #[arg(long, value_name = "FILE")]
    pki_root: Option<PathBuf>,
    /// Reject tokens larger than this many bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_TOKEN_BYTES)]
    max_token_bytes: usize,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<Exit> {
    let token = read_token(&stdin_or_path(args.token))?;
    let source = match (args.jwks_url, args.jwks_file, args.discovery_url) {
        (Some(url), _, _) => KeySource::JwksUrl(url),
        (_, Some(file), _) => KeySource::JwksFile(file),
        (_, _, Some(url)) => KeySource::Discovery(url),
        _ => unreachable!("clap requires one key source"),
    };
    let mut policy = VerifyPolicy::new(args.issuer.clone());
    policy.leeway = args.leeway;
    policy.max_token_bytes = args.max_token_bytes;
    if let Some(path) = &args.pki_root {
        let bytes = std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("cannot read --pki-root {}: {e}", path.display()))?;
        policy.pki_root = Some(PkiRoot::from_pem_or_der(&bytes)?);
    }
    let options = KeyCacheOptions {
        expected_issuer: Some(args.issuer),
        ..KeyCacheOptions::default()
    };
    let verifier = Verifier::new(JwksCache::new(source, options)?, policy);
    let at = args.at.unwrap_or_else(unix_now);
    match verifier.verify_at(token.expose(), &args.audience, at).await {
        Ok(verified) => {
            match args.format {
                Format::Json => {
                    let out = serde_json::json!({
                        "valid": true,
                        "kind": verified.kind,
                        "checked_at": at,
                        "header": verified.header.raw,
                        "claims": verified.claims.raw,
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                }
                Format::Text => {
                    println!(
                        "VALID: signature, issuer, audience and validity window check out at {at}"
                    );
                    print!(
                        "{}",
                        render::summary(&verified.header, &verified.claims, at)
                    );
                }
            }
            Ok(Exit::Ok)
        }
        Err(error) => {
            let exit = if error.is_token_rejection() {
                Exit::Rejected
            } else {
                Exit::Operational
            };
            match args.format {
                Format::Json => {
                    let out = serde_json::json!({
                        "valid": false,
                        "check": error.check(),
                        "error": error.to_string(),
                    });
                    println!("{}", serde_json::to_string_pretty(&out)?);
                }
                Format::Text => eprintln!("INVALID ({} check failed): {error}", error.check()),
            }
            Ok(exit)
        }
    }
}
