//! The rules a configuration must keep, each problem reported at once with its key: names,
//! audiences (unique after normalisation), routes, plugin limits, transport, KMS ownership, and
//! (in `delivery`) where secrets may be written.

mod delivery;

use super::files::read_small_file;
use super::schema::{CompilerChoice, TokenSourceKind, VaultConfig};
use super::{Config, Problem};
use crate::attestation::audience;
use crate::plugin::Limits;
use std::collections::HashSet;
use std::time::Duration;

/// A problem for every destination that an earlier entry already claimed.
fn report_shared(destinations: &[(String, String)], verb: &str, problems: &mut Vec<Problem>) {
    for (index, (destination, key)) in destinations.iter().enumerate() {
        if let Some((_, first)) = destinations[..index]
            .iter()
            .find(|(seen, _)| seen == destination)
        {
            problems.push(Problem {
                key: key.clone(),
                message: format!("{destination} {verb} {first}"),
            });
        }
    }
}

fn valid_collaborator_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

impl Config {
    pub(super) fn validate(&mut self, problems: &mut Vec<Problem>) {
        // Google accepts a provider's own resource name as the audience unless the provider
        // lists others, so that is a KMS-route collaborator's audience unless it names one.
        for collaborator in &mut self.collaborators {
            if let (true, Some(kms)) = (collaborator.audience.is_empty(), &collaborator.kms) {
                collaborator.audience = kms.workload_identity_provider.clone();
            }
        }
        let mut problem = |key: String, message: String| problems.push(Problem { key, message });
        let attestation = &self.attestation;
        let key_sources = [
            attestation.discovery_url.is_some(),
            attestation.jwks_url.is_some(),
            attestation.jwks_file.is_some(),
        ];
        if key_sources.iter().filter(|set| **set).count() > 1 {
            problem(
                "attestation".into(),
                "set at most one of discovery_url, jwks_url and jwks_file".into(),
            );
        }
        if attestation.source == TokenSourceKind::File && !attestation.allow_default_audience {
            problem(
                "attestation.source".into(),
                "\"file\" hands out the launcher's default token (audience https://sts.googleapis.com), which Google's STS accepts for any workload identity provider that trusts this workload; set allow_default_audience = true to accept that for a single KMS-route collaborator, or use \"launcher\"".into(),
            );
        }
        if self.collaborators.is_empty() {
            problem(
                "collaborator".into(),
                "no [[collaborator]] is configured".into(),
            );
        }
        let mut names = HashSet::new();
        let mut plugin_configs = Vec::new();
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let at = |key: &str| format!("collaborator[{index}] ({}).{key}", collaborator.name);
            if !valid_collaborator_name(&collaborator.name) {
                problem(
                    format!("collaborator[{index}].name"),
                    format!("\"{}\" must be 1 to 64 letters, digits, `-`, `_` or `.`, starting with a letter or digit: it names the collaborator's delivery directory and appears in every log line", collaborator.name.escape_debug()),
                );
            } else if !names.insert(collaborator.name.clone()) {
                problem(at("name"), "is used by another collaborator too".into());
            }
            let sha = collaborator.plugin_sha256.trim();
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                problem(
                    at("plugin_sha256"),
                    format!(
                        "\"{sha}\" is not 64 hex digits (run `attestgate plugin inspect {}`)",
                        collaborator.plugin.display()
                    ),
                );
            }
            match (
                &collaborator.plugin_compiled,
                collaborator.plugin_compiled_sha256.as_deref().map(str::trim),
            ) {
                (Some(path), Some(sha)) => {
                    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                        problem(
                            at("plugin_compiled_sha256"),
                            format!("\"{sha}\" is not 64 hex digits (`attestgate plugin compile` prints it)"),
                        );
                    }
                    if !path.is_file() {
                        problem(
                            at("plugin_compiled"),
                            format!("{} does not exist", path.display()),
                        );
                    }
                }
                (None, None) => {}
                _ => problem(
                    at("plugin_compiled"),
                    "plugin_compiled and plugin_compiled_sha256 go together: native code is loaded only when pinned".into(),
                ),
            }
            if !collaborator.plugin.is_file() {
                problem(
                    at("plugin"),
                    format!("{} does not exist", collaborator.plugin.display()),
                );
            }
            let plugin_config = match (
                &collaborator.plugin_config,
                &collaborator.plugin_config_file,
            ) {
                (Some(_), Some(_)) => {
                    problem(
                        at("plugin_config"),
                        "set plugin_config or plugin_config_file, not both".into(),
                    );
                    serde_json::Value::Null
                }
                (Some(inline), None) => {
                    serde_json::to_value(inline).unwrap_or(serde_json::Value::Null)
                }
                (None, Some(file)) => match read_small_file(file) {
                    Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
                        problem(
                            at("plugin_config_file"),
                            format!("{} is not valid JSON: {e}", file.display()),
                        );
                        serde_json::Value::Null
                    }),
                    Err(e) => {
                        problem(
                            at("plugin_config_file"),
                            format!("cannot read {}: {e}", file.display()),
                        );
                        serde_json::Value::Null
                    }
                },
                (None, None) => serde_json::json!({}),
            };
            plugin_configs.push(plugin_config);
            if let Some(vault) = &collaborator.vault {
                if vault.all_addresses().is_empty() {
                    problem(
                        at("vault"),
                        "needs address (or addresses for an HA cluster)".into(),
                    );
                }
                if vault.client_cert.is_some() != vault.client_key.is_some() {
                    problem(at("vault"), "client_cert and client_key go together".into());
                }
                for (key, value) in [
                    ("role", vault.role.as_deref()),
                    ("auth_mount", Some(vault.auth_mount.as_str())),
                ] {
                    if let Some(value) = value.filter(|v| {
                        v.is_empty() || v.chars().any(|c| c.is_control() || c.is_whitespace())
                    }) {
                        problem(
                            at(&format!("vault.{key}")),
                            format!(
                                "\"{}\" is empty or contains whitespace or control characters",
                                value.escape_debug()
                            ),
                        );
                    }
                }
                if let Some(namespace) = &vault.namespace {
                    let valid = !namespace.is_empty()
                        && namespace.bytes().all(|b| {
                            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/')
                        });
                    if !valid {
                        problem(
                            at("vault.namespace"),
                            format!("\"{}\" is not a Vault namespace path (letters, digits, `-`, `_`, `.` and `/`); it is sent as a header", namespace.escape_debug()),
                        );
                    }
                }
                for (key, path) in [
                    ("ca_cert", &vault.ca_cert),
                    ("client_cert", &vault.client_cert),
                    ("client_key", &vault.client_key),
                ] {
                    if let Some(path) = path.as_ref().filter(|p| !p.is_file()) {
                        problem(
                            at(&format!("vault.{key}")),
                            format!("{} does not exist", path.display()),
                        );
                    }
                }
            } else if !collaborator.secrets.is_empty() {
                problem(
                    at("secret"),
                    "secrets need a [collaborator.vault] to read them from".into(),
                );
            }
            if let Some(kms) = &collaborator.kms {
                if collaborator.vault.is_none() {
                    problem(
                        at("kms"),
                        "the KMS route unwraps a VAULT_TOKEN: add [collaborator.vault] with the Vault's address".into(),
                    );
                }
                match (&kms.ciphertext, &kms.ciphertext_file) {
                    (Some(_), Some(_)) => problem(
                        at("kms.ciphertext"),
                        "set ciphertext or ciphertext_file, not both".into(),
                    ),
                    (None, None) => problem(
                        at("kms"),
                        "needs ciphertext_file (or ciphertext): the base64 output of `gcloud kms encrypt` of the VAULT_TOKEN".into(),
                    ),
                    (None, Some(file)) if !file.is_file() => problem(
                        at("kms.ciphertext_file"),
                        format!("{} does not exist", file.display()),
                    ),
                    _ => {}
                }
            }
            if let Some(env) = collaborator
                .vault
                .as_ref()
                .and_then(|v| v.token_env.as_ref())
            {
                if !valid_env_name(env) {
                    problem(
                        at("vault.token_env"),
                        format!("\"{env}\" is not a valid environment variable name"),
                    );
                }
            }
            for (n, secret) in collaborator.secrets.iter().enumerate() {
                if secret.path.trim().is_empty() {
                    problem(at(&format!("secret[{n}].path")), "must not be empty".into());
                }
                if secret.file.is_none() && secret.env.is_none() {
                    problem(
                        at(&format!("secret[{n}]")),
                        "deliver it somewhere: set file, env, or both".into(),
                    );
                }
                if let Some(env) = &secret.env {
                    if env.is_empty()
                        || !env.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                        || env.as_bytes()[0].is_ascii_digit()
                    {
                        problem(
                            at(&format!("secret[{n}].env")),
                            format!("\"{env}\" is not a valid environment variable name"),
                        );
                    }
                }
            }
        }
        self.plugin_configs = plugin_configs;
        self.check_shared_variables(problems);
        self.check_delivery(problems);
        self.check_audiences(problems);
        self.check_kms_ownership(problems);
        self.check_transport(problems);
        self.check_plugins(problems);
        self.check_durations(problems);
    }

    /// Two secrets (or kept tokens) must never share an environment variable: the later one would
    /// silently replace the earlier. (Files are checked with the delivery rules.)
    fn check_shared_variables(&self, problems: &mut Vec<Problem>) {
        let mut envs: Vec<(String, String)> = Vec::new();
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let at = |key: String| format!("collaborator[{index}] ({}).{key}", collaborator.name);
            for (n, secret) in collaborator.secrets.iter().enumerate() {
                if let Some(env) = &secret.env {
                    envs.push((env.clone(), at(format!("secret[{n}].env"))));
                }
            }
            if let Some(env) = collaborator
                .vault
                .as_ref()
                .and_then(|v| v.token_env.as_ref())
            {
                envs.push((env.clone(), at("vault.token_env".into())));
            }
        }
        report_shared(&envs, "is already set by", problems);
    }

    /// No token minted for one collaborator may be usable by another: every audience is unique
    /// once normalised, and no collaborator that logs in to its own Vault receives a token that
    /// Google's STS would accept for a KMS-route collaborator's provider.
    fn check_audiences(&self, problems: &mut Vec<Problem>) {
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let at = format!("collaborator[{index}] ({}).audience", collaborator.name);
            let received = self.received_audience(index);
            if received.is_empty() {
                problems.push(Problem {
                    key: at,
                    message: format!("is required: the one audience {}'s Vault role binds (bound_audiences), e.g. \"https://vault.{}.example\"; its plugin must select exactly this", collaborator.name, collaborator.name),
                });
                continue;
            }
            if received
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
            {
                problems.push(Problem {
                    key: at.clone(),
                    message: format!(
                        "\"{}\" contains whitespace or control characters",
                        received.escape_debug()
                    ),
                });
            }
            match &collaborator.kms {
                None if audience::is_google_federation(received) => problems.push(Problem {
                    key: at.clone(),
                    message: format!("\"{received}\" is an audience Google's STS accepts; a collaborator that is not on the KMS route must never receive such a token, or it could exchange it at STS as this workload and decrypt a KMS-route collaborator's VAULT_TOKEN. Give it an audience of its own, e.g. \"https://vault.{}.example\"", collaborator.name),
                }),
                // On the KMS route, the one Google audience a collaborator may have is its own
                // provider's name (or, opted in, the shared default token's).
                Some(kms)
                    if self.attestation.source == TokenSourceKind::Launcher
                        && audience::is_google_federation(received)
                        && audience::normalise(received)
                            != audience::normalise(&kms.workload_identity_provider) =>
                {
                    problems.push(Problem {
                        key: at.clone(),
                        message: format!("\"{received}\" is a Google audience other than this collaborator's own provider ({}); use the provider's name, or an audience of the collaborator's own that its provider lists", kms.workload_identity_provider),
                    })
                }
                _ => {}
            }
            if let Some(violation) = crate::attestation::request_limits_violation(received, &[]) {
                problems.push(Problem {
                    key: at.clone(),
                    message: format!("the launcher would refuse it: {violation}"),
                });
            }
            let normal = audience::normalise(received);
            match seen.iter().find(|(other, _)| *other == normal) {
                Some((_, first)) => problems.push(Problem {
                    key: at,
                    message: format!(
                        "\"{received}\" is the same audience as collaborator[{first}] ({})'s \"{}\" (both are {normal} once normalised); a token minted for one would be accepted by the other's Vault or provider, so each collaborator needs an audience of its own",
                        self.collaborators[*first].name,
                        self.received_audience(*first),
                    ),
                }),
                None => seen.push((normal, index)),
            }
        }
    }

    /// No two KMS-route collaborators share a provider, a key, a ciphertext or a service account:
    /// sharing one would let the second use what the first's provider and key release.
    fn check_kms_ownership(&self, problems: &mut Vec<Problem>) {
        let mut owned: Vec<(&'static str, String, usize)> = Vec::new();
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let Some(kms) = &collaborator.kms else {
                continue;
            };
            let mut items = vec![
                (
                    "workload_identity_provider",
                    audience::normalise(&kms.workload_identity_provider),
                ),
                ("key", kms.key.trim().trim_matches('/').to_owned()),
            ];
            if let Some(account) = &kms.service_account {
                items.push(("service_account", account.trim().to_ascii_lowercase()));
            }
            if let Some(text) = &kms.ciphertext {
                items.push(("ciphertext", text.split_whitespace().collect()));
            }
            if let Some(file) = &kms.ciphertext_file {
                let text = read_small_file(file).unwrap_or_default();
                items.push(("ciphertext", text.split_whitespace().collect()));
            }
            for (key, value) in items {
                if value.is_empty() {
                    continue;
                }
                if let Some((_, _, first)) = owned.iter().find(|(k, v, _)| *k == key && *v == value)
                {
                    problems.push(Problem {
                        key: format!("collaborator[{index}] ({}).kms.{key}", collaborator.name),
                        message: format!(
                            "is the same as collaborator[{first}] ({})'s; each KMS-route collaborator has its own provider, key, ciphertext and service account",
                            self.collaborators[*first].name
                        ),
                    });
                } else {
                    owned.push((key, value, index));
                }
            }
        }
    }

    /// Durations stay within what the clock arithmetic and the operator's intent can bear.
    fn check_durations(&self, problems: &mut Vec<Problem>) {
        const MAX: Duration = Duration::from_secs(3600);
        for (key, value) in [
            ("exchange.deadline", self.exchange.deadline),
            ("attestation.leeway", self.attestation.leeway),
        ] {
            if let Some(value) = value.filter(|v| *v > MAX || v.is_zero()) {
                problems.push(Problem {
                    key: key.into(),
                    message: format!(
                        "{} is outside 1 ms..=1 h",
                        humantime::format_duration(value)
                    ),
                });
            }
        }
        let agent = &self.agent;
        const DAY: Duration = Duration::from_secs(86_400);
        for (key, value, min, max) in [
            ("agent.refresh", agent.refresh, Duration::from_secs(1), DAY),
            (
                "agent.backoff_min",
                agent.backoff_min,
                Duration::from_millis(10),
                MAX,
            ),
            (
                "agent.backoff_max",
                agent.backoff_max,
                Duration::from_millis(10),
                MAX,
            ),
            (
                "agent.restart_debounce",
                agent.restart_debounce,
                Duration::ZERO,
                Duration::from_secs(60),
            ),
            (
                "agent.stop_timeout",
                agent.stop_timeout,
                Duration::from_millis(100),
                Duration::from_secs(600),
            ),
        ] {
            if value < min || value > max {
                problems.push(Problem {
                    key: key.into(),
                    message: format!(
                        "{} is outside {}..={}",
                        humantime::format_duration(value),
                        humantime::format_duration(min),
                        humantime::format_duration(max)
                    ),
                });
            }
        }
        if agent.backoff_min > agent.backoff_max {
            problems.push(Problem {
                key: "agent.backoff_min".into(),
                message: format!(
                    "{} is longer than backoff_max ({})",
                    humantime::format_duration(agent.backoff_min),
                    humantime::format_duration(agent.backoff_max)
                ),
            });
        }
    }

    /// Tokens and secrets travel over TLS unless the operator allows plain HTTP, and the KMS
    /// route's calls go to Google unless the operator allows other endpoints.
    fn check_transport(&self, problems: &mut Vec<Problem>) {
        let allow_http = self.network.allow_plain_http;
        let mut check_url = |key: String, url: &str, google_only: bool| {
            let scheme_ok =
                url.starts_with("https://") || (allow_http && url.starts_with("http://"));
            if !scheme_ok {
                let message = if url.starts_with("http://") {
                    format!("\"{url}\" is plain HTTP: tokens and secrets would cross the network unencrypted; use https://, or set [network] allow_plain_http = true for a local test setup")
                } else {
                    format!("\"{url}\" must start with https://")
                };
                problems.push(Problem { key, message });
                return;
            }
            let parsed = url::Url::parse(url).ok();
            if parsed
                .as_ref()
                .is_some_and(|u| !u.username().is_empty() || u.password().is_some())
            {
                problems.push(Problem {
                    key: key.clone(),
                    message: "carries a user name or password; credentials do not belong in an address (it is shown in errors and logs)".into(),
                });
            }
            let host = parsed.and_then(|u| u.host_str().map(str::to_ascii_lowercase));
            let on_google = host
                .as_deref()
                .is_some_and(|h| h == "googleapis.com" || h.ends_with(".googleapis.com"));
            if google_only && !on_google && !self.google.allow_custom_endpoints {
                problems.push(Problem {
                    key,
                    message: format!("\"{url}\" is not on googleapis.com; the attestation token and Google credentials are posted there. Set [google] allow_custom_endpoints = true only for a stand-in you run yourself"),
                });
            }
        };
        for (key, url) in [
            ("attestation.jwks_url", &self.attestation.jwks_url),
            ("attestation.discovery_url", &self.attestation.discovery_url),
        ] {
            if let Some(url) = url {
                check_url(key.into(), url, false);
            }
        }
        if self.collaborators.iter().any(|c| c.kms.is_some()) {
            let google = &self.google;
            for (key, url) in [
                ("google.sts_endpoint", &google.sts_endpoint),
                (
                    "google.iamcredentials_endpoint",
                    &google.iamcredentials_endpoint,
                ),
                ("google.kms_endpoint", &google.kms_endpoint),
            ] {
                check_url(key.into(), url, true);
            }
        }
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            for address in collaborator
                .vault
                .iter()
                .flat_map(VaultConfig::all_addresses)
            {
                check_url(
                    format!(
                        "collaborator[{index}] ({}).vault.address",
                        collaborator.name
                    ),
                    &address,
                    false,
                );
            }
        }
    }

    /// Plugin limits stay within what the host can bear for one collaborator, and native code is
    /// loaded only where the operator vouches for it.
    fn check_plugins(&self, problems: &mut Vec<Problem>) {
        for (index, collaborator) in self.collaborators.iter().enumerate() {
            let at = |key: &str| format!("collaborator[{index}] ({}).{key}", collaborator.name);
            let limits = &collaborator.limits;
            for (key, value, max) in [
                (
                    "limits.deadline_ms",
                    limits.deadline_ms,
                    Limits::MAX.deadline_ms,
                ),
                (
                    "limits.memory_bytes",
                    limits.memory_bytes,
                    Limits::MAX.memory_bytes,
                ),
                ("limits.log_bytes", limits.log_bytes, Limits::MAX.log_bytes),
            ] {
                let Some(value) = value else { continue };
                if value == 0 || value > max {
                    problems.push(Problem {
                        key: at(key),
                        message: format!("{value} is outside 1..={max}: a collaborator's plugin may not hold the host longer or make it allocate more than that"),
                    });
                }
            }
            if collaborator.plugin_compiled.is_some() && !self.plugins.trust_precompiled {
                problems.push(Problem {
                    key: at("plugin_compiled"),
                    message: "a precompiled plugin is native code that runs outside the sandbox: build it yourself at image build time with `attestgate plugin compile` (it is reproducible, so the pin can be checked), then set [plugins] trust_precompiled = true".into(),
                });
            }
            if collaborator.plugin_compiled.is_some()
                && self.plugins.compiler == CompilerChoice::Winch
            {
                problems.push(Problem {
                    key: at("plugin_compiled"),
                    message: "precompiled artifacts are Cranelift code, which an engine set to [plugins] compiler = \"winch\" cannot load: remove plugin_compiled, or set compiler to \"auto\" (Cranelift where artifacts are used)".into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;
    use std::path::Path;

    /// A configuration of `collaborators`, each `(name, [(file, env)])`, and its problems.
    fn problems_of(collaborators: &[(&str, &[(&str, &str)])], extra: &str) -> Vec<String> {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let mut text = format!("[network]\nallow_plain_http = true\n{extra}\n");
        for (name, secrets) in collaborators {
            text += &format!(
                "[[collaborator]]\nname = \"{name}\"\naudience = \"https://vault.{name}.example\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n[collaborator.vault]\naddress = \"http://127.0.0.1:8200\"\n",
                wasm.display(),
                "a".repeat(64)
            );
            for (file, env) in *secrets {
                text += &format!(
                    "[[collaborator.secret]]\npath = \"kv/data/x\"\nfile = \"{file}\"\nenv = \"{env}\"\n"
                );
            }
        }
        match Config::parse(&text, &dir.path().join("attestgate.toml")) {
            Ok(_) => Vec::new(),
            Err(err) => err
                .problems
                .iter()
                .map(|p| format!("{}: {}", p.key, p.message))
                .collect(),
        }
    }

    #[test]
    fn two_secrets_may_not_share_a_destination_in_any_spelling() {
        let problems = problems_of(
            &[(
                "bank-a",
                &[
                    ("/run/secrets/bank-a/x", "BANK_A_X"),
                    ("/run/secrets/bank-a/./x", "BANK_A_X"),
                ],
            )],
            "",
        );
        assert!(problems.iter().any(|m| m.starts_with("collaborator[0] (bank-a).secret[1].file: /run/secrets/bank-a/x is already the destination of collaborator[0] (bank-a).secret[0].file")), "{problems:?}");
        assert!(
            problems.iter().any(|m| m
                .starts_with("collaborator[0] (bank-a).secret[1].env: BANK_A_X is already set by")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_collaborators_files_are_confined_to_its_own_directory() {
        for escape in [
            "/run/secrets/bank-b/pw",
            "/run/secrets/bank-a/../bank-b/pw",
            "/etc/ld.so.preload",
            "/run/secrets/bank-a",
        ] {
            let problems = problems_of(
                &[
                    ("bank-a", &[(escape, "BANK_A_X")]),
                    ("bank-b", &[("/run/secrets/bank-b/pw", "BANK_B_X")]),
                ],
                "",
            );
            assert!(
                problems
                    .iter()
                    .any(|m| m.starts_with("collaborator[0] (bank-a).secret[0].file")),
                "{escape}: {problems:?}"
            );
        }
        let nested = problems_of(
            &[(
                "bank-a",
                &[
                    ("/run/secrets/bank-a/d", "A"),
                    ("/run/secrets/bank-a/d/x", "B"),
                ],
            )],
            "",
        );
        assert!(
            nested
                .iter()
                .any(|m| m.contains("a directory and a file in it")),
            "{nested:?}"
        );
    }

    #[test]
    fn a_destination_may_not_overwrite_a_file_attestgate_reads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let config = format!("{root}/bank-a/attestgate.toml");
        let problems = problems_of(
            &[("bank-a", &[(&config, "BANK_A_X")])],
            &format!("[delivery]\nroot = \"{root}\"\n[attestation]\njwks_file = \"{config}\""),
        );
        assert!(
            problems
                .iter()
                .any(|m| m.contains("which attestgate itself reads")),
            "{problems:?}"
        );
    }

    #[test]
    fn loader_variables_and_foreign_prefixes_are_refused() {
        let problems = problems_of(
            &[("bank-a", &[("/run/secrets/bank-a/x", "LD_PRELOAD")])],
            "",
        );
        assert!(
            problems
                .iter()
                .any(|m| m.contains("LD_PRELOAD may not be set")),
            "{problems:?}"
        );
        let problems = problems_of(
            &[("bank-a", &[("/run/secrets/bank-a/x", "BANK_B_PASSWORD")])],
            "[delivery]\nenv_prefix = true",
        );
        assert!(
            problems
                .iter()
                .any(|m| m.contains("must start with BANK_A_")),
            "{problems:?}"
        );
        assert!(problems_of(
            &[("bank-a", &[("/run/secrets/bank-a/x", "BANK_A_X")])],
            "[delivery]\nenv_prefix = true"
        )
        .is_empty());
    }

    #[test]
    fn variables_that_steer_other_programs_are_refused_and_prefixes_may_not_overlap() {
        for variable in [
            "VAULT_ADDR",
            "GIT_CONFIG_COUNT",
            "HTTPS_PROXY",
            "PUBSUB_EMULATOR_HOST",
            "OPENSSL_CONF",
            "GCE_METADATA_HOST",
            "SSLKEYLOGFILE",
        ] {
            let problems = problems_of(
                &[("bank-a", &[("/run/secrets/bank-a/x", variable)])],
                "[delivery]\nenv_prefix = false",
            );
            assert!(
                problems
                    .iter()
                    .any(|m| m.contains("may not be set by a collaborator")),
                "{variable}: {problems:?}"
            );
        }
        // Prefixes are on by default, and "bank" would cover "bank-a"'s BANK_A_.
        let problems = problems_of(
            &[
                ("bank", &[("/run/secrets/bank/x", "BANK_X")]),
                ("bank-a", &[("/run/secrets/bank-a/x", "BANK_A_X")]),
            ],
            "",
        );
        assert!(
            problems
                .iter()
                .any(|m| m.starts_with("collaborator[1] (bank-a).name")
                    && m.contains("overlaps collaborator[0] (bank)")),
            "{problems:?}"
        );
    }

    #[test]
    fn plugin_limits_are_bounded_and_native_code_needs_the_operators_word() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let cwasm = dir.path().join("plugin.cwasm");
        std::fs::write(&cwasm, b"native").unwrap();
        let text = format!(
            "[[collaborator]]\nname = \"mallory\"\naudience = \"https://vault.mallory.example\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\nplugin_compiled = \"{}\"\nplugin_compiled_sha256 = \"{}\"\n[collaborator.limits]\ndeadline_ms = 3600000\nmemory_bytes = 1099511627776\nlog_bytes = 0\n",
            wasm.display(),
            "a".repeat(64),
            cwasm.display(),
            "b".repeat(64)
        );
        let err = Config::parse(&text, &dir.path().join("attestgate.toml")).unwrap_err();
        for key in [
            "limits.deadline_ms",
            "limits.memory_bytes",
            "limits.log_bytes",
            "plugin_compiled",
        ] {
            assert!(
                err.problems
                    .iter()
                    .any(|p| p.key == format!("collaborator[0] (mallory).{key}")),
                "{key}: {err}"
            );
        }
        let trusted = format!("[plugins]\ntrust_precompiled = true\n{text}")
            .replace("3600000", "100")
            .replace("1099511627776", "67108864")
            .replace("log_bytes = 0", "log_bytes = 16384");
        Config::parse(&trusted, &dir.path().join("attestgate.toml")).unwrap();
    }

    #[test]
    fn the_compiler_is_winch_only_for_one_shot_runs_without_artifacts() {
        use crate::config::RunKind::{LongRunning, OneShot};
        use crate::plugin::Compiler::{Cranelift, Winch};
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let cwasm = dir.path().join("plugin.cwasm");
        std::fs::write(&cwasm, b"native").unwrap();
        let parse = |plugins: &str, artifact: bool| {
            let compiled = if artifact {
                format!(
                    "plugin_compiled = \"{}\"\nplugin_compiled_sha256 = \"{}\"\n",
                    cwasm.display(),
                    "b".repeat(64)
                )
            } else {
                String::new()
            };
            let text = format!(
                "[plugins]\ntrust_precompiled = true\n{plugins}\n[[collaborator]]\nname = \"bank-a\"\naudience = \"https://vault.bank-a.example\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n{compiled}",
                wasm.display(),
                "a".repeat(64),
            );
            Config::parse(&text, &dir.path().join("attestgate.toml"))
        };
        let baseline = if cfg!(target_arch = "x86_64") {
            Winch
        } else {
            Cranelift
        };
        let auto = parse("", false).unwrap();
        assert_eq!(auto.plugin_compiler(OneShot), baseline);
        assert_eq!(auto.plugin_compiler(LongRunning), Cranelift);
        let with_artifact = parse("compiler = \"auto\"", true).unwrap();
        assert_eq!(with_artifact.plugin_compiler(OneShot), Cranelift);
        let pinned = parse("compiler = \"cranelift\"", false).unwrap();
        assert_eq!(pinned.plugin_compiler(OneShot), Cranelift);
        let winch = parse("compiler = \"winch\"", false).unwrap();
        assert_eq!(winch.plugin_compiler(LongRunning), Winch);
        // Artifacts are Cranelift code: an engine told to use Winch could not load them.
        let err = parse("compiler = \"winch\"", true).unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.key == "collaborator[0] (bank-a).plugin_compiled"
                    && p.message.contains("winch")),
            "{err}"
        );
        assert!(parse("compiler = \"fast\"", false).is_err());
    }

    #[test]
    fn a_kms_section_is_checked_when_the_file_loads() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let with = |kms_extra: &str, vault: bool| {
            let text = format!(
                "[[collaborator]]\nname = \"bank-c\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n{}[collaborator.kms]\nworkload_identity_provider = \"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/c\"\nkey = \"projects/c/locations/global/keyRings/r/cryptoKeys/k\"\n{kms_extra}",
                wasm.display(),
                "a".repeat(64),
                if vault { "[collaborator.vault]\naddress = \"https://vault.bank-c.example\"\n" } else { "" }
            );
            Config::parse(&text, &dir.path().join("attestgate.toml"))
                .err()
                .map(|e| {
                    e.problems
                        .into_iter()
                        .map(|p| format!("{}: {}", p.key, p.message))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let missing = with("", true);
        assert!(
            missing.iter().any(|m| m.contains("needs ciphertext_file")),
            "{missing:?}"
        );
        let both = with("ciphertext = \"YQ==\"\nciphertext_file = \"c.enc\"\n", true);
        assert!(both.iter().any(|m| m.contains("not both")), "{both:?}");
        let no_vault = with("ciphertext = \"YQ==\"\n", false);
        assert!(
            no_vault
                .iter()
                .any(|m| m.contains("add [collaborator.vault]")),
            "{no_vault:?}"
        );
        assert!(with("ciphertext = \"YQ==\"\n", true).is_empty());
    }

    #[test]
    fn a_kms_collaborator_cannot_reuse_anothers_provider_key_or_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let provider = "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/bank-c";
        let kms = |name: &str, audience: &str| {
            format!(
                "[[collaborator]]\nname = \"{name}\"\naudience = \"{audience}\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n[collaborator.kms]\nworkload_identity_provider = \"{provider}\"\nkey = \"projects/bank-c/locations/global/keyRings/r/cryptoKeys/k\"\nservice_account = \"unwrap@bank-c.iam.gserviceaccount.com\"\nciphertext = \"c2VjcmV0\"\n",
                wasm.display(),
                "a".repeat(64)
            )
        };
        let text = kms("bank-c", provider) + &kms("mallory", "https://sts.googleapis.com");
        let err = Config::parse(&text, &dir.path().join("attestgate.toml")).unwrap_err();
        for key in [
            "kms.workload_identity_provider",
            "kms.key",
            "kms.ciphertext",
            "kms.service_account",
            "audience",
        ] {
            assert!(
                err.problems
                    .iter()
                    .any(|p| p.key == format!("collaborator[1] (mallory).{key}")),
                "{key}: {err}"
            );
        }
    }

    #[test]
    fn a_read_that_reaches_the_delivery_root_through_dot_dot_or_a_link_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("secrets");
        std::fs::create_dir_all(root.join("bank-b")).unwrap();
        std::fs::create_dir_all(root.join("mallory")).unwrap();
        std::fs::write(root.join("bank-b/creds.json"), "{}").unwrap();
        std::os::unix::fs::symlink(&root, dir.path().join("alias")).unwrap();
        for sneaky in [
            format!("{}/mallory/../bank-b/creds.json", root.display()),
            format!("{}/alias/bank-b/creds.json", dir.path().display()),
        ] {
            let problems = problems_of(
                &[("mallory", &[])],
                &format!(
                    "[delivery]\nroot = \"{}\"\n[attestation]\njwks_file = \"{sneaky}\"",
                    root.display()
                ),
            );
            assert!(
                problems.iter().any(|m| m.starts_with("delivery.root")),
                "{sneaky}: {problems:?}"
            );
        }
    }

    #[test]
    fn credentials_in_an_address_and_absurd_durations_are_refused() {
        let problems = problems_of(
            &[("bank-a", &[])],
            "[attestation]\njwks_url = \"https://user:pass@keys.example/jwks\"\nleeway = \"10000h\"\n[exchange]\ndeadline = \"100000h\"",
        );
        for key in [
            "attestation.jwks_url",
            "attestation.leeway",
            "exchange.deadline",
        ] {
            assert!(
                problems.iter().any(|m| m.starts_with(key)),
                "{key}: {problems:?}"
            );
        }
    }

    #[test]
    fn files_attestgate_reads_may_not_lie_under_the_delivery_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().display().to_string();
        let problems = problems_of(
            &[("bank-a", &[])],
            &format!(
                "[delivery]\nroot = \"{root}\"\n[attestation]\njwks_file = \"{root}/bank-b/creds\""
            ),
        );
        assert!(
            problems
                .iter()
                .any(|m| m.starts_with("delivery.root") && m.contains("bank-b/creds")),
            "{problems:?}"
        );
    }

    /// Every file a collaborator's own settings make attestgate read is checked, not only the
    /// operator's: a plugin configuration, an artifact, a CA, a client certificate or key, or a
    /// ciphertext under the delivery root could be a file another collaborator's secret wrote.
    #[test]
    fn files_a_collaborator_names_may_not_lie_under_the_delivery_root() {
        for (collaborator_line, vault_line, section) in [
            ("plugin_config_file = \"{root}/bank-b/creds\"", "", ""),
            ("plugin_compiled = \"{root}/bank-b/creds\"", "", ""),
            ("", "ca_cert = \"{root}/bank-b/creds\"", ""),
            ("", "client_cert = \"{root}/bank-b/creds\"", ""),
            ("", "client_key = \"{root}/bank-b/creds\"", ""),
            (
                "",
                "",
                "[collaborator.kms]\nworkload_identity_provider = \"//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/x\"\nkey = \"projects/p/locations/global/keyRings/r/cryptoKeys/k\"\nciphertext_file = \"{root}/bank-b/creds\"",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("out").display().to_string();
            let wasm = dir.path().join("plugin.wasm");
            std::fs::write(&wasm, b"\0asm").unwrap();
            let text = format!(
                "[delivery]\nroot = \"{root}\"\n[[collaborator]]\nname = \"bank-a\"\naudience = \"https://vault.bank-a.example\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n{collaborator_line}\n[collaborator.vault]\naddress = \"https://vault.bank-a.example\"\n{vault_line}\n{section}\n",
                wasm.display(),
                "a".repeat(64)
            )
            .replace("{root}", &root);
            let err = Config::parse(&text, &dir.path().join("attestgate.toml")).unwrap_err();
            assert!(
                err.problems.iter().any(|p| p.key == "delivery.root"
                    && p.message.contains(&format!("{root}/bank-b/creds"))),
                "{collaborator_line}{vault_line}{section}: {err}"
            );
        }
    }

    /// bank-a with a Vault at https://vault.bank-a.example and `vault_extra` lines in its
    /// `[collaborator.vault]`, after `before` (operator sections), parsed in a fresh directory.
    fn parse_bank_a(
        before: &str,
        vault_extra: &str,
    ) -> (tempfile::TempDir, Result<Config, ConfigError>) {
        let dir = tempfile::tempdir().unwrap();
        let wasm = dir.path().join("plugin.wasm");
        std::fs::write(&wasm, b"\0asm").unwrap();
        let text = format!(
            "{}\n[[collaborator]]\nname = \"bank-a\"\naudience = \"https://vault.bank-a.example\"\nplugin = \"{}\"\nplugin_sha256 = \"{}\"\n[collaborator.vault]\naddress = \"https://vault.bank-a.example\"\n{vault_extra}\n",
            before.replace("{dir}", &dir.path().display().to_string()),
            wasm.display(),
            "a".repeat(64)
        );
        let parsed = Config::parse(&text, &dir.path().join("attestgate.toml"));
        (dir, parsed)
    }

    #[test]
    fn a_vault_role_that_could_forge_output_is_refused() {
        let (_dir, parsed) =
            parse_bank_a("", "role = \"a\\nbank-b           released 1 secret(s)\"");
        let err = parsed.unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.key == "collaborator[0] (bank-a).vault.role"),
            "{err}"
        );
    }

    #[test]
    fn names_and_namespaces_that_could_forge_output_or_headers_are_refused() {
        let problems = problems_of(&[("bank-a\\nreleased", &[])], "");
        assert!(
            problems
                .iter()
                .any(|m| m.starts_with("collaborator[0].name")),
            "{problems:?}"
        );
        let (_dir, parsed) = parse_bank_a("", "namespace = \"team\\r\\nX-Injected: 1\"");
        let err = parsed.unwrap_err();
        assert!(
            err.problems
                .iter()
                .any(|p| p.key == "collaborator[0] (bank-a).vault.namespace"),
            "{err}"
        );
    }

    #[test]
    fn a_relative_token_file_resolves_against_the_configuration_file() {
        let (dir, parsed) = parse_bank_a(
            "[delivery]\nroot = \"{dir}/out\"",
            "token_file = \"out/bank-a/vault-token\"",
        );
        let config = parsed.unwrap();
        assert_eq!(
            config.collaborators[0].route.vault().unwrap().token_file,
            Some(dir.path().join("out/bank-a/vault-token"))
        );
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let text = r#"
            [attestation]
            source = "file"
            jwks_url = "http://127.0.0.1:1/jwks"
            discovry_url = "typo"

            [[collaborator]]
            name = "bank-a"
            plugin = "missing.wasm"
            plugin_sha256 = "abc"
            plugin_confg = {}
            [collaborator.limits]
            deadline = 100
        "#;
        let err = Config::parse(text, Path::new("/etc/attestgate.toml")).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"attestation.discovry_url"), "{err}");
        assert!(
            keys.contains(&"collaborator[0] (bank-a).plugin_confg"),
            "unknown and invalid keys are located alike: {err}"
        );
        assert!(
            keys.contains(&"collaborator[0] (bank-a).limits.deadline"),
            "an unknown limit is one problem among the others: {err}"
        );
        assert!(keys.contains(&"attestation.source"), "{err}");
        assert!(
            keys.contains(&"collaborator[0] (bank-a).plugin_sha256"),
            "{err}"
        );
        assert!(keys.contains(&"collaborator[0] (bank-a).plugin"), "{err}");
        assert!(keys.contains(&"collaborator[0] (bank-a).audience"), "{err}");
        assert!(keys.contains(&"attestation.jwks_url"), "{err}");
        assert!(
            err.to_string()
                .starts_with("/etc/attestgate.toml has 8 problems:"),
            "{err}"
        );
        assert!(
            err.to_string().contains("/etc/missing.wasm does not exist"),
            "relative paths resolve against the file: {err}"
        );
    }
}
