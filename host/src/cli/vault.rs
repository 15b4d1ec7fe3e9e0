//! `attestgate vault doctor` and `attestgate vault role`: the collaborator's side.

use super::{read_json, Exit, Format};
use anyhow::Context as _;
use attestgate::attestation::unix_now;
use attestgate::doctor::{
    detect_kind, fix_role, read_from_vault, with_signature_failure, Role, RoleKind, SignatureKeys,
    VaultAccess, VaultDocument,
};
use attestgate::vault::VaultToken;
use attestgate_vault_role::lint::{AuthConfig, Finding, Severity};
use attestgate_vault_role::rules::{cel_role, classic_role, ConfidentialSpaceRules};
use attestgate_vault_role::{Decision, Prediction};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Map, Value};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum VaultCommand {
    /// Lint a Vault role (classic or OpenBao CEL) and its mount's config, and predict exactly what
    /// a login with given claims or a given token returns. Never writes to Vault.
    Doctor(DoctorArgs),
    /// Print the Vault role that enforces a confidential-space plugin configuration's rules.
    Role(RoleArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("role_source").args(["role", "vault_role"]).required(true)))]
#[command(group(ArgGroup::new("config_source").args(["auth_config", "vault"])))]
#[command(group(ArgGroup::new("evidence").args(["claims", "token"])))]
pub struct DoctorArgs {
    /// The role's JSON, as written to (or read back from) auth/<mount>/role/NAME or
    /// auth/<mount>/cel/role/NAME. Lint files before writing them: Vault drops unknown keys.
    #[arg(long, value_name = "FILE")]
    role: Option<PathBuf>,
    /// Read the role NAME from a running Vault (VAULT_ADDR, VAULT_TOKEN, VAULT_CACERT,
    /// VAULT_NAMESPACE, or the BAO_* names).
    #[arg(long, value_name = "NAME")]
    vault_role: Option<String>,
    /// The role is an OpenBao CEL role (detected from `cel_program` in a file).
    #[arg(long)]
    cel: bool,
    /// The mount's auth/<mount>/config as JSON: its bound_issuer and keys are checked, and used
    /// to predict.
    #[arg(long, value_name = "FILE")]
    auth_config: Option<PathBuf>,
    /// Read auth/<mount>/config from the running Vault.
    #[arg(long)]
    vault: bool,
    /// Where the JWT auth method is mounted.
    #[arg(long, default_value = "jwt")]
    mount: String,
    /// Allow VAULT_ADDR to be plain http:// to a host other than loopback (the token then
    /// crosses the network in clear text).
    #[arg(long)]
    allow_plain_http: bool,
    /// Predict the login with these claims (a token payload as JSON, or a token whose signature
    /// is then not checked).
    #[arg(long, value_name = "FILE")]
    claims: Option<PathBuf>,
    /// Predict the login with this token: its signature is checked against the config's keys
    /// first (needs --auth-config or --vault).
    #[arg(long, value_name = "FILE")]
    token: Option<PathBuf>,
    /// Predict as of this moment (Unix seconds) instead of now.
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<i64>,
    /// The role's name in the server's messages (default: the role's `name`, --vault-role, or
    /// the file's stem).
    #[arg(long)]
    name: Option<String>,
    /// Print the role with the fixable findings fixed (classic roles), for review. Nothing is
    /// written to Vault.
    #[arg(long)]
    fix: bool,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct RoleArgs {
    /// A confidential-space plugin configuration (JSON).
    #[arg(long, value_name = "FILE")]
    from_plugin_config: PathBuf,
    /// Print an OpenBao CEL role instead of a classic JWT role.
    #[arg(long)]
    cel: bool,
    /// The token policies the role grants (repeatable) [default: the configuration's
    /// vault_role, else "attestgate"].
    #[arg(long = "policy", value_name = "POLICY")]
    policies: Vec<String>,
}

pub async fn run(command: VaultCommand) -> anyhow::Result<Exit> {
    match command {
        VaultCommand::Doctor(args) => doctor(args).await,
        VaultCommand::Role(args) => role(args),
    }
}

/// The first of the `VAULT_*` or `BAO_*` variables that is set.
fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

fn vault_access(mount: &str, allow_plain_http: bool) -> anyhow::Result<VaultAccess> {
    let address = env(&["VAULT_ADDR", "BAO_ADDR"])
        .context("set VAULT_ADDR (or BAO_ADDR) to read from a running Vault")?;
    let token = env(&["VAULT_TOKEN", "BAO_TOKEN"])
        .context("set VAULT_TOKEN (or BAO_TOKEN) to a token that can read the role")?;
    Ok(VaultAccess {
        address,
        token: VaultToken::new(token),
        ca_cert: env(&["VAULT_CACERT", "BAO_CACERT"]).map(PathBuf::from),
        namespace: env(&["VAULT_NAMESPACE", "BAO_NAMESPACE"]),
        mount: mount.to_owned(),
        allow_plain_http,
    })
}

fn object(value: Value, what: &str) -> anyhow::Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        other => anyhow::bail!("{what} must be a JSON object, not {}", json_type(&other)),
    }
}

/// A JSON value's type, for messages that must not repeat the value (it may be a token).
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

async fn doctor(args: DoctorArgs) -> anyhow::Result<Exit> {
    let (json, kind, default_name) = match (&args.role, &args.vault_role) {
        (Some(path), _) => {
            let json = object(read_json(path, "role")?, "the role")?;
            let kind = if args.cel {
                RoleKind::Cel
            } else {
                detect_kind(&json)
            };
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (json, kind, stem)
        }
        (None, Some(name)) => {
            let kind = if args.cel {
                RoleKind::Cel
            } else {
                RoleKind::Jwt
            };
            let access = vault_access(&args.mount, args.allow_plain_http)?;
            let json = read_from_vault(&access, VaultDocument::Role(kind, name)).await?;
            (json, kind, name.clone())
        }
        (None, None) => anyhow::bail!("give the role with --role FILE or --vault-role NAME"),
    };
    if args.fix {
        anyhow::ensure!(
            kind == RoleKind::Jwt,
            "--fix rewrites classic roles; for a CEL role, apply the findings' fixes to the program"
        );
        out!("{}", serde_json::to_string_pretty(&fix_role(&json))?);
        eprintln!(
            "Review the role, then write it yourself: bao write auth/{}/role/<name> @role.json",
            args.mount
        );
        return Ok(Exit::Ok);
    }
    let name = args
        .name
        .clone()
        .or_else(|| json.get("name").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(default_name);
    let role = Role::parse(kind, &json)?;

    let config = match (&args.auth_config, args.vault) {
        (Some(path), _) => Some(object(read_json(path, "auth config")?, "the auth config")?),
        (None, true) => {
            let access = vault_access(&args.mount, args.allow_plain_http)?;
            Some(read_from_vault(&access, VaultDocument::Config).await?)
        }
        (None, false) => None,
    }
    .map(|raw| AuthConfig::from_json(&raw));

    let findings = role.lint(config.as_ref())?;
    let at = args.at.unwrap_or_else(unix_now);
    let prediction = if let Some(path) = &args.claims {
        let claims = read_json(path, "claims")?;
        Some(role.predict(&name, config.as_ref(), &claims, at)?)
    } else if let Some(path) = &args.token {
        let config = config
            .as_ref()
            .context("--token needs the mount's keys: add --auth-config FILE or --vault")?;
        let token = super::read_token(path).await?;
        let keys = SignatureKeys::from_config(config)
            .map_err(|source| attestgate::doctor::DoctorError::Keys { source })?;
        let (claims, failure) = keys
            .check(token.expose())
            .await
            .map_err(|source| attestgate::doctor::DoctorError::Keys { source })?;
        let prediction = role.predict(&name, Some(config), &claims, at)?;
        Some(match failure {
            Some(message) => with_signature_failure(message, prediction),
            None => prediction,
        })
    } else {
        None
    };

    match args.format {
        Format::Json => out!(
            "{}",
            serde_json::to_string_pretty(&report_json(&findings, prediction.as_ref()))?
        ),
        Format::Text => print_text(&findings, prediction.as_ref()),
    }
    let failing = findings.iter().any(|f| f.severity == Severity::Error)
        || prediction.as_ref().is_some_and(|p| !p.allows());
    Ok(if failing { Exit::Rejected } else { Exit::Ok })
}

/// The `--format json` document (documented in the README).
fn report_json(findings: &[Finding], prediction: Option<&Prediction>) -> Value {
    let prediction = prediction.map(|p| {
        let (policies, metadata) = match &p.decision {
            Decision::Allow { policies, metadata } => (json!(policies), json!(metadata)),
            Decision::Deny { .. } => (json!([]), json!({})),
        };
        json!({
            "allow": p.allows(),
            "message": p.messages().first(),
            "messages": p.messages(),
            "policies": policies,
            "metadata": metadata,
            "reasons": p.reasons,
        })
    });
    json!({"findings": findings, "prediction": prediction})
}

fn print_text(findings: &[Finding], prediction: Option<&Prediction>) {
    if findings.is_empty() {
        out!("No findings.");
    }
    for finding in findings {
        let severity = match finding.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        };
        out!("{severity:<7} {}: {}", finding.key, finding.message);
        out!("        fix: {}", finding.fix);
    }
    let Some(prediction) = prediction else {
        return;
    };
    out!("");
    match &prediction.decision {
        Decision::Allow { policies, metadata } => {
            out!("Predicted login: ALLOW");
            out!("  policies: {}", policies.join(", "));
            for (key, value) in metadata {
                out!("  metadata {key} = {value}");
            }
        }
        Decision::Deny { messages } => {
            out!("Predicted login: DENY (HTTP 400)");
            match messages.as_slice() {
                [one] => out!("  {one}"),
                several => {
                    out!("  one of these, depending on the order OpenBao walks a Go map in:");
                    for message in several {
                        out!("  - {message}");
                    }
                }
            }
        }
    }
    out!("Every check:");
    for reason in &prediction.reasons {
        let mark = if reason.passed { "pass" } else { "FAIL" };
        let claim = reason.claim.as_deref().unwrap_or("-");
        out!("  {mark} {claim}: {}", reason.message);
    }
}

fn role(args: RoleArgs) -> anyhow::Result<Exit> {
    let rules: ConfidentialSpaceRules =
        serde_json::from_value(read_json(&args.from_plugin_config, "plugin configuration")?)
            .with_context(|| {
                format!(
                    "{} is not a confidential-space plugin configuration",
                    args.from_plugin_config.display()
                )
            })?;
    let policies = if args.policies.is_empty() {
        vec![rules
            .vault_role
            .clone()
            .unwrap_or_else(|| "attestgate".into())]
    } else {
        args.policies.clone()
    };
    let role = if args.cel {
        cel_role(&rules, &policies)
    } else {
        match classic_role(&rules, &policies) {
            Ok(role) => role,
            Err(rules) => {
                eprintln!(
                    "error: a classic Vault role cannot express {}; a role without them would let in workloads the plugin refuses. Use --cel for an OpenBao CEL role.",
                    rules.join(", ")
                );
                return Ok(Exit::Rejected);
            }
        }
    };
    out!("{}", serde_json::to_string_pretty(&Value::Object(role))?);
    Ok(Exit::Ok)
}
