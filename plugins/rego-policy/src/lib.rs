//! A collaborator's rules written in OPA's Rego, evaluated inside the plugin by regorus (a Rego
//! interpreter in Rust), so a collaborator that already writes Rego for OPA or Trustee KBS can
//! state its rules in the language its reviewers read, and still get attestgate's sandbox: the
//! interpreter runs under the plugin's deadline and memory cap, with no files, network or clock.
//!
//! The contract with the policy (documented for policy authors in `docs/rego.md`):
//! - `input` is the verified token's claims, exactly as the token carries them.
//! - `data` is the configuration's `data` object.
//! - `time.now_ns()` is the verification time (the moment the host checks the token at), never a
//!   clock: a decision can be reproduced later, and tested natively.
//! - The entry points are rules of one package (`attestgate` unless configured):
//!   `allow` (must be `true` to allow; undefined or non-boolean is a deny), `deny` (a set or array
//!   of messages; any message denies, even when `allow` is true), and optionally `login`
//!   (`{"role": "..."}`, the Vault role to log in with).
//!
//! Everything fails closed: a policy that does not parse is refused at load, with its
//! `file:line:col`; a runtime error, an undefined `allow` or a malformed `deny` or `login` is a deny
//! whose reason says which rule and what was found.

mod config;

use attestgate_plugin_sdk::{
    export_policy, log, AudienceRequest, Claims, Context, LogLevel, Policy, Report, UnixSeconds,
    Verdict,
};
use config::{Config, RegoVersion};
use regorus::{Engine, Value};

/// Reasons the host accepts in one verdict, less room for the rule reasons beside the messages.
const MAX_DENY_MESSAGES: usize = 240;

/// How much of a Rego value a reason quotes: enough to recognise it, not a whole document.
const MAX_QUOTED_BYTES: usize = 200;

/// The longest Vault role the host accepts, in bytes.
const MAX_ROLE_BYTES: usize = 256;

struct RegoPolicy;

/// Which optional entry points the policy declares: evaluating an undeclared rule is an error in
/// regorus, whereas for the policy author leaving out `deny` or `login` simply means "none".
struct EntryPoints {
    deny: bool,
    login: bool,
}

/// A fresh engine with the configured modules and data, and `time.now_ns()` answering the
/// verification time. `Err` is a message for the operator.
fn load(config: &Config, verification_time: UnixSeconds) -> Result<Engine, String> {
    let mut engine = Engine::new();
    engine.set_rego_v0(config.rego_version == RegoVersion::V0);
    // A builtin that fails (say, `to_number("abc")`) is an error that denies with its location,
    // instead of OPA's default of quietly making the expression undefined, where a `not` around
    // it would turn a failure into a pass.
    engine.set_strict_builtin_errors(true);
    // `print` output is handed to the host log (debug level) instead of stderr.
    engine.set_gather_prints(true);
    for (name, text) in config.modules() {
        engine
            .add_policy(name.to_owned(), text.to_owned())
            .map_err(|e| parse_error(config, name, &e))?;
    }
    engine
        .add_data(Value::from(serde_json::Value::Object(config.data.clone())))
        .map_err(|e| format!("\"data\" cannot be loaded: {}", error_text(&e)))?;
    // Extensions are looked up before builtins, so this answers every `time.now_ns()` call, and
    // this build has no clock-reading builtin besides (no `time` feature). The host freezes the
    // plugin's wall clock at the verification time too; answering here makes native tests agree,
    // and keeps OPA's promise that `time.now_ns()` is one value throughout an evaluation.
    let now_ns = verification_time.checked_mul(1_000_000_000);
    engine
        .add_extension(
            "time.now_ns".into(),
            0,
            Box::new(move |_: Vec<Value>| match now_ns {
                Some(ns) => Ok(Value::from(ns)),
                None => Err(anyhow::anyhow!(
                    "the verification time {verification_time} s is out of range for time.now_ns()"
                )),
            }),
        )
        .map_err(|e| format!("cannot provide time.now_ns(): {}", error_text(&e)))?;
    Ok(engine)
}

/// Why module `name` does not parse, with a hint when it looks like pre-1.0 syntax read as v1.
fn parse_error(config: &Config, name: &str, error: &anyhow::Error) -> String {
    let mut message = format!("Rego module {name} does not parse: {}", error_text(error));
    // regorus says "`if` keyword is required before rule body" (or `contains`) for v0 rules.
    if config.rego_version == RegoVersion::V1 && message.contains("keyword is required") {
        message.push_str(
            " (this is Rego v1 syntax; a policy in pre-1.0 syntax, such as a KBS policy, needs \"rego_version\": \"v0\")",
        );
    }
    message
}

/// Checks that some module declares the entry-point package and its `allow` rule, and says which
/// optional entry points exist.
fn entry_points(engine: &Engine, config: &Config) -> Result<EntryPoints, String> {
    let packages = engine
        .get_policy_package_components()
        .map_err(|e| error_text(&e))?;
    let ours: Vec<&str> = packages
        .iter()
        .filter(|p| p.components == config.package)
        .map(|p| p.source_file.as_str())
        .collect();
    let package = config.package_name();
    if ours.is_empty() {
        let found: Vec<String> = packages.iter().map(|p| p.components.join(".")).collect();
        return Err(format!(
            "no module declares `package {package}`, where attestgate looks for {} (packages found: {found:?}); change the modules' package line or set \"package\"",
            config.rule_path("allow")
        ));
    }
    let declared = |rule: &str| -> Result<bool, String> {
        let mut found = false;
        for source in &ours {
            found |= engine
                .has_declared_rule_rooted_at(source, rule)
                .map_err(|e| error_text(&e))?;
        }
        Ok(found)
    };
    if !declared("allow")? {
        return Err(format!(
            "package {package} declares no `allow` rule, so every token would be denied; write one, such as `default allow := false` and `allow if {{ ... }}`"
        ));
    }
    Ok(EntryPoints {
        deny: declared("deny")?,
        login: declared("login")?,
    })
}

/// An error from regorus as one line, for a reason or a load error: `file:line:col: message`.
/// regorus writes the location (`--> file:line:col`), an excerpt of the source, then
/// `error: message`; the excerpt is left out, because a reason is one log line and the operator
/// has the policy text.
fn error_text(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let location = lines.iter().find_map(|l| l.strip_prefix("--> "));
    let message = lines.iter().find_map(|l| l.strip_prefix("error: "));
    match (location, message) {
        (Some(location), Some(message)) => format!("{location}: {message}"),
        // Not a located error (say, a limit): keep every line, joined.
        _ => lines.join(" "),
    }
}

/// What a Rego value is, for a reason that says what was found: "the string \"yes\"".
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::Null => return "null".into(),
        Value::Undefined => return "undefined".into(),
        Value::Bool(b) => return format!("the boolean {b}"),
        Value::Number(_) => "the number",
        Value::String(_) => "the string",
        Value::Array(_) => "the array",
        Value::Set(_) => "the set",
        Value::Object(_) => "the object",
    };
    format!("{kind} {}", quote(value))
}

/// The value as Rego/JSON text, cut to [`MAX_QUOTED_BYTES`].
fn quote(value: &Value) -> String {
    let text = value.to_string();
    if text.len() <= MAX_QUOTED_BYTES {
        return text;
    }
    let mut end = MAX_QUOTED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// One Rego rule's value, or the reason it could not be had.
fn eval(engine: &mut Engine, path: &str) -> Result<Value, String> {
    engine
        .eval_rule(path.to_owned())
        .map_err(|e| format!("Rego evaluation of {path} failed: {}", error_text(&e)))
}

/// `allow`: only the boolean `true` allows.
fn judge_allow(report: &mut Report, path: &str, allow: Result<Value, String>) -> bool {
    match allow {
        Ok(Value::Bool(true)) => true,
        Ok(Value::Bool(false)) => {
            report.fail(
                None,
                format!("{path} is false for these claims: no allow rule held"),
            );
            false
        }
        Ok(Value::Undefined) => {
            report.fail(None, format!("{path} is undefined for these claims (no allow rule held, and there is no `default allow := false`); undefined is a deny"));
            false
        }
        Ok(other) => {
            report.fail(
                None,
                format!(
                    "{path} is {}, not a boolean; only true allows, so this is a deny",
                    describe(&other)
                ),
            );
            false
        }
        Err(message) => {
            report.fail(None, message);
            false
        }
    }
}

/// `deny`: every message is a failed reason. Returns how many there were.
fn judge_deny(report: &mut Report, path: &str, deny: Result<Value, String>) -> usize {
    let messages: Vec<Value> = match deny {
        Ok(Value::Undefined) => return 0,
        Ok(Value::Set(set)) => set.iter().cloned().collect(),
        Ok(Value::Array(array)) => array.iter().cloned().collect(),
        Ok(other) => {
            report.fail(
                None,
                format!(
                    "{path} is {}; it must be a set (or array) of messages, so this is a deny",
                    describe(&other)
                ),
            );
            return 1;
        }
        Err(message) => {
            report.fail(None, message);
            return 1;
        }
    };
    for message in messages.iter().take(MAX_DENY_MESSAGES) {
        match message {
            Value::String(text) => report.fail(None, text.to_string()),
            // A message that is not a string still denies; it is quoted as it is.
            other => report.fail(None, format!("{path}: {}", quote(other))),
        };
    }
    if messages.len() > MAX_DENY_MESSAGES {
        report.fail(
            None,
            format!(
                "{path} gave {} messages; only the first {MAX_DENY_MESSAGES} are listed",
                messages.len()
            ),
        );
    }
    messages.len()
}

/// `login`: `{"role": "..."}` sets the Vault role. Anything else is a deny: a misspelt key would
/// otherwise log in with the configured role, which is not what the policy author asked for.
fn judge_login(report: &mut Report, path: &str, login: Result<Value, String>) {
    let login = match login {
        Ok(Value::Undefined) => return,
        Ok(Value::Object(login)) => login,
        Ok(other) => {
            report.fail(
                None,
                format!(
                    "{path} is {}; it must be an object like {{\"role\": \"my-role\"}}",
                    describe(&other)
                ),
            );
            return;
        }
        Err(message) => {
            report.fail(None, message);
            return;
        }
    };
    for key in login.keys() {
        if key != &Value::from("role") {
            report.fail(
                None,
                format!(
                    "{path} has the key {}, but only \"role\" is understood",
                    quote(key)
                ),
            );
        }
    }
    match login.get(&Value::from("role")) {
        None => {}
        Some(Value::String(role))
            if !role.is_empty()
                && role.len() <= MAX_ROLE_BYTES
                && !role.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            report.role(role);
        }
        Some(other) => {
            report.fail(
                None,
                format!(
                    "{path}.role is {}; a Vault role is a string of 1 to {MAX_ROLE_BYTES} bytes without whitespace or control characters",
                    describe(other)
                ),
            );
        }
    }
}

/// Hands what the policy printed to the host log.
fn forward_prints(engine: &mut Engine) {
    if let Ok(prints) = engine.take_prints() {
        for line in prints {
            log(LogLevel::Debug, &format!("rego print: {line}"));
        }
    }
}

impl Policy for RegoPolicy {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        // Parse every module, then prepare the entry point as evaluation would (this resolves
        // imports and rule references, and checks that every variable is safe), without input.
        let mut engine = load(config, 0)?;
        entry_points(&engine, config)?;
        let allow = config.rule_path("allow");
        engine
            .compile_with_entrypoint(&allow.as_str().into())
            .map_err(|e| format!("Rego policy does not compile: {}", error_text(&e)))?;
        Ok(())
    }

    fn audience(ctx: &Context<Config>) -> Result<AudienceRequest, String> {
        Ok(AudienceRequest::oidc(&ctx.config.audience))
    }

    fn evaluate(ctx: &Context<Config>, claims: &Claims<'_>) -> Verdict {
        let config = &ctx.config;
        let mut engine = match load(config, ctx.verification_time) {
            Ok(engine) => engine,
            Err(message) => return Verdict::deny(None, message),
        };
        let entry = match entry_points(&engine, config) {
            Ok(entry) => entry,
            Err(message) => return Verdict::deny(None, message),
        };
        engine.set_input(Value::from(claims.raw().clone()));

        let mut report = Report::new();
        let allow_path = config.rule_path("allow");
        let deny_path = config.rule_path("deny");
        let allowed = judge_allow(&mut report, &allow_path, eval(&mut engine, &allow_path));
        let denied = if entry.deny {
            judge_deny(&mut report, &deny_path, eval(&mut engine, &deny_path))
        } else {
            0
        };
        if allowed && denied == 0 {
            report.pass(
                None,
                if entry.deny {
                    format!("{allow_path} is true and {deny_path} is empty")
                } else {
                    format!("{allow_path} is true")
                },
            );
            // The role matters only to an allow; a deny need not evaluate it.
            if entry.login {
                let login_path = config.rule_path("login");
                judge_login(&mut report, &login_path, eval(&mut engine, &login_path));
            }
        } else if allowed {
            report.pass(
                None,
                format!("{allow_path} is true, but every message in {deny_path} denies"),
            );
        }
        forward_prints(&mut engine);
        report.verdict()
    }
}

export_policy!(RegoPolicy);

#[cfg(test)]
mod tests;
