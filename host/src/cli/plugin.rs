use super::{read_json, Exit, Format};
use attestgate::attestation::unix_now;
use attestgate::plugin::{
    file_sha256, Compiler, EngineOptions, LimitOverrides, Limits, PluginEngine, PluginKind,
    PluginSpec, Precompiled,
};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Run a plugin against a claims document: the selected audience and the verdict with reasons.
    ///
    /// Exits 0 on allow, 1 on deny, 4 when the plugin fails (trap, deadline, memory, bad return,
    /// rejected configuration). With --expect, exits 0 when the verdict matches and 1 when not.
    Test(TestArgs),
    /// Print a plugin's sha256, size, contract version, exports and imports.
    Inspect(InspectArgs),
    /// Precompile a plugin at image build time, for a baseline CPU, reproducibly. Prints the
    /// sha256 to pin as plugin_compiled_sha256 next to plugin_compiled.
    Compile(CompileArgs),
    /// Start a plugin in a new directory NAME: the rules, a configuration, claims fixtures, a
    /// test.sh with golden checks (plugin test --expect), and a README with the commands.
    New(NewArgs),
}

/// The languages `plugin new` scaffolds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// Rust, with a vendored copy of the SDK.
    Rust,
    /// A Rego policy for the rego-policy plugin.
    Rego,
    /// An OpenBao CEL role for the cel-role plugin.
    Cel,
    /// Python, with componentize-py and the guest SDK.
    Python,
    /// JavaScript, with componentize-js and the guest SDK.
    Js,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits and '-'; also its directory's.
    name: String,
    /// The language its rules are written in.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// Where to create the directory NAME (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct CompileArgs {
    /// The plugin component (.wasm).
    plugin: PathBuf,
    /// Where to write the artifact (default: the plugin's path with the extension .cwasm).
    #[arg(long, short)]
    output: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Expectation {
    Allow,
    Deny,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The plugin component (.wasm).
    plugin: PathBuf,
    /// A token payload as JSON (or a whole JWT, whose payload is used unverified).
    #[arg(long, value_name = "CLAIMS.json")]
    claims: PathBuf,
    /// The plugin's configuration as JSON (default `{}`).
    #[arg(long, value_name = "CONFIG.json")]
    plugin_config: Option<PathBuf>,
    /// The collaborator name handed to the plugin.
    #[arg(long, default_value = "test")]
    collaborator: String,
    /// The collaborator's declared audience: the plugin must select exactly this (as the
    /// exchange requires). Without it, any audience the plugin selects is shown.
    #[arg(long, value_name = "AUD")]
    audience: Option<String>,
    /// The Vault role handed to the plugin, as the collaborator's configured `role` is in an
    /// exchange (a CEL role's messages quote it).
    #[arg(long, value_name = "ROLE")]
    vault_role: Option<String>,
    /// The plugin's precompiled artifact (from `plugin compile`), loaded instead of compiling the
    /// component: a JavaScript or Python plugin then starts in milliseconds, not seconds. It must
    /// have been compiled from this very component by this attestgate.
    #[arg(long, value_name = "ARTIFACT.cwasm")]
    compiled: Option<PathBuf>,
    /// Verification time handed to the plugin (Unix seconds; default now).
    #[arg(long, value_name = "UNIX_SECONDS")]
    at: Option<i64>,
    /// Fail unless the verdict is this (for golden tests in a plugin's CI).
    #[arg(long)]
    expect: Option<Expectation>,
    /// Wall-clock deadline per call, in milliseconds (default: the plugin kind's, as in an
    /// exchange: 100 for a compiled plugin, 1000 for a JavaScript or Python one).
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Memory cap in bytes (default: the plugin kind's: 64 MiB compiled, 128 MiB JavaScript or
    /// Python).
    #[arg(long)]
    memory_bytes: Option<u64>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    plugin: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub async fn run(command: PluginCommand) -> anyhow::Result<Exit> {
    // Compiling and running plugins is CPU work; keep it off the async workers.
    tokio::task::spawn_blocking(move || match command {
        PluginCommand::Test(args) => test(args),
        PluginCommand::Inspect(args) => inspect(args),
        PluginCommand::Compile(args) => compile(args),
        PluginCommand::New(args) => new(args),
    })
    .await?
}

fn test(args: TestArgs) -> anyhow::Result<Exit> {
    let claims = read_json(&args.claims, "--claims")?;
    anyhow::ensure!(
        claims.is_object(),
        "--claims {} must be a JSON object",
        args.claims.display()
    );
    let config = match &args.plugin_config {
        Some(path) => read_json(path, "--plugin-config")?,
        None => serde_json::json!({}),
    };
    let spec = PluginSpec {
        collaborator: args.collaborator.clone(),
        audience: args.audience.clone(),
        path: args.plugin.clone(),
        // A local test pins the file as it is now.
        sha256: file_sha256(&args.plugin)?,
        precompiled: match &args.compiled {
            Some(path) => Some(Precompiled {
                sha256: file_sha256(path)?,
                path: path.clone(),
            }),
            None => None,
        },
        config,
        vault_role: args.vault_role.clone(),
        limits: LimitOverrides {
            deadline_ms: args.deadline_ms,
            memory_bytes: args.memory_bytes,
            log_bytes: None,
        },
    };
    let engine = PluginEngine::new(EngineOptions {
        max_concurrent_instances: 2,
        compiler: Compiler::for_one_shot(spec.precompiled.is_some()),
        ..EngineOptions::default()
    })?;
    let at = args.at.unwrap_or_else(unix_now);
    let outcome = engine.load(&spec).and_then(|policy| {
        let audience = policy.select_audience()?;
        let decision = policy.evaluate(&claims.to_string(), at)?;
        Ok((audience, decision))
    });
    let (audience, decision) = match outcome {
        Ok(done) => done,
        Err(error) => {
            // The whole chain: a link error's cause names the import the host does not provide.
            let message = attestgate::error_chain(&error);
            match args.format {
                Format::Json => out!(
                    "{}",
                    serde_json::json!({"error": message, "failure": error.failure().map(|k| k.name())})
                ),
                Format::Text => eprintln!("PLUGIN FAILED (counts as deny): {message}"),
            }
            return Ok(match args.expect {
                Some(Expectation::Deny) => Exit::Ok,
                Some(Expectation::Allow) => Exit::Rejected,
                None => Exit::PluginFailed,
            });
        }
    };
    let verdict = &decision.verdict;
    match args.format {
        Format::Json => out!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "audience": audience,
                "allow": verdict.allow,
                "reasons": verdict.reasons,
                "login": verdict.login,
                "duration_us": decision.duration.as_micros() as u64,
            }))?
        ),
        Format::Text => {
            out!(
                "audience  {} ({}{})",
                audience.audience,
                audience.token_type.as_str(),
                if audience.nonces.is_empty() {
                    String::new()
                } else {
                    format!(", {} nonces", audience.nonces.len())
                }
            );
            out!("verdict   {}", if verdict.allow { "ALLOW" } else { "DENY" });
            for reason in &verdict.reasons {
                out!("  {}", super::render::reason_line(reason));
            }
            if let Some(role) = &verdict.login.role {
                out!("login     role = {role}");
            }
        }
    }
    Ok(match (args.expect, verdict.allow) {
        (Some(Expectation::Allow), true) | (Some(Expectation::Deny), false) | (None, true) => {
            Exit::Ok
        }
        _ => Exit::Rejected,
    })
}

fn inspect(args: InspectArgs) -> anyhow::Result<Exit> {
    let engine = PluginEngine::new(EngineOptions {
        max_concurrent_instances: 1,
        compiler: Compiler::for_one_shot(false),
        ..EngineOptions::default()
    })?;
    let info = engine.describe_file(&args.plugin)?;
    match args.format {
        Format::Json => out!("{}", serde_json::to_string_pretty(&info)?),
        Format::Text => {
            out!("plugin    {}", args.plugin.display());
            out!("sha256    {}", info.sha256);
            out!("size      {} bytes", info.size_bytes);
            let compatible =
                info.contract_version.as_deref() == Some(attestgate::plugin::CONTRACT_VERSION);
            out!(
                "contract  {} ({})",
                info.contract_version
                    .as_deref()
                    .map(|v| format!("attestgate:policy@{v}"))
                    .unwrap_or_else(|| "none".into()),
                if compatible {
                    "compatible with this attestgate"
                } else {
                    "NOT compatible with this attestgate"
                }
            );
            let by = |field: &str| {
                let names: Vec<String> = info
                    .producers
                    .iter()
                    .filter(|p| p.field == field)
                    .map(|p| format!("{} {}", p.name, p.version).trim().to_owned())
                    .collect();
                if names.is_empty() {
                    "-".to_owned()
                } else {
                    names.join(", ")
                }
            };
            out!("language  {}", by("language"));
            out!("built by  {}", by("processed-by"));
            if info.producers.iter().any(|p| p.field == "needed") {
                out!("links     {}", by("needed"));
            }
            out!("kind      {}", plugin_kind(info.kind));
            out!("exports   {}", info.exports.join(", "));
            out!(
                "imports   {}",
                if info.imports.is_empty() {
                    "-".into()
                } else {
                    info.imports.join(", ")
                }
            );
            if info.imports_wasi() {
                out!("          (WASI is linked with every capability empty: no files, network or environment; the wall clock is frozen at the verification time)");
            }
        }
    }
    Ok(Exit::Ok)
}

fn new(args: NewArgs) -> anyhow::Result<Exit> {
    use attestgate::scaffold::{scaffold, Language};
    let language = match args.lang {
        Lang::Rust => Language::Rust,
        Lang::Rego => Language::Rego,
        Lang::Cel => Language::Cel,
        Lang::Python => Language::Python,
        Lang::Js => Language::JavaScript,
    };
    let files = scaffold(&args.name, language)?;
    let root = args.dir.join(&args.name);
    // Never write into something that exists: a scaffold does not merge.
    std::fs::create_dir_all(&args.dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", args.dir.display()))?;
    std::fs::create_dir(&root).map_err(|e| {
        anyhow::anyhow!(
            "cannot create {}: {e} (choose another name or --dir)",
            root.display()
        )
    })?;
    for file in &files {
        let path = root.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        if file.executable {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| anyhow::anyhow!("cannot make {} executable: {e}", path.display()))?;
        }
    }
    out!(
        "created {} ({language}, {} files); next: {}/test.sh (see its README.md)",
        root.display(),
        files.len(),
        root.display()
    );
    Ok(Exit::Ok)
}

/// How `plugin inspect` describes a plugin's kind, and the limits that come with it.
fn plugin_kind(kind: PluginKind) -> String {
    let limits = Limits::defaults_for(kind);
    let name = match kind {
        PluginKind::Compiled => "compiled to WebAssembly",
        PluginKind::JavaScript => "a JavaScript runtime inside",
        PluginKind::Python => "a Python interpreter inside",
    };
    format!(
        "{name} (default limits: {} ms, {} MiB)",
        limits.deadline_ms,
        limits.memory_bytes >> 20
    )
}

fn compile(args: CompileArgs) -> anyhow::Result<Exit> {
    // Artifacts are for speed: the optimising compiler, whatever `[plugins] compiler` says.
    let engine = PluginEngine::new(EngineOptions {
        max_concurrent_instances: 1,
        compiler: Compiler::Cranelift,
        ..EngineOptions::default()
    })?;
    let (artifact, sha256) = engine.precompile_file(&args.plugin)?;
    let plugin_sha256 = file_sha256(&args.plugin)?;
    let output = args
        .output
        .unwrap_or_else(|| args.plugin.with_extension("cwasm"));
    attestgate::write_atomically(&output, &artifact, 0o644)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", output.display()))?;
    match args.format {
        Format::Json => out!(
            "{}",
            serde_json::json!({
                "plugin": args.plugin,
                "plugin_sha256": plugin_sha256,
                "plugin_compiled": output,
                "plugin_compiled_sha256": sha256,
            })
        ),
        Format::Text => {
            out!("plugin_sha256 = \"{plugin_sha256}\"");
            out!("plugin_compiled = \"{}\"", output.display());
            out!("plugin_compiled_sha256 = \"{sha256}\"");
        }
    }
    Ok(Exit::Ok)
}
