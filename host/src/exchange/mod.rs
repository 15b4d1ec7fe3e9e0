//! The main job: for every collaborator, concurrently, get a token minted for its audience, verify
//! it, let its plugin judge the claims, log in to its Vault and read the secrets it releases.
//!
//! The token leaves the TEE only after the plugin allowed it, and only to that collaborator's
//! Vault. Every failure names the collaborator, the step and the cause.

mod deliver;
mod secure_dir;

pub use deliver::{
    deliver_files, environment, json_output, Delivered, Delivery, DeliveryCause, DeliveryError,
    EnvironmentError,
};
pub use secure_dir::UnsafeDir;

use crate::attestation::source::{read_token_file, TokenRequest, DEFAULT_TOKEN_AUDIENCE};
use crate::attestation::verify::unix_now;
use crate::attestation::{Jwt, LauncherClient, Verifier};
use crate::config::{CollaboratorConfig, Config, SecretConfig, TokenSourceKind};
use crate::plugin::{CollaboratorPolicy, EngineOptions, PluginEngine, Reason, Verdict};
use crate::vault::{wipe, RetryPolicy, VaultClient, VaultToken};
use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The steps of one collaborator's exchange, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    SelectAudience,
    GetToken,
    VerifyToken,
    Policy,
    VaultLogin,
    /// One call of the KMS route (STS, impersonation, decrypt, checksum).
    Kms(crate::kms::KmsStep),
    /// Checking the VAULT_TOKEN unwrapped from KMS.
    TokenLookup,
    ReadSecret,
    Revoke,
    Deadline,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::SelectAudience => "select audience",
            Step::GetToken => "get token",
            Step::VerifyToken => "verify token",
            Step::Policy => "policy",
            Step::VaultLogin => "vault login",
            Step::Kms(step) => return write!(f, "{step}"),
            Step::TokenLookup => "vault token lookup",
            Step::ReadSecret => "read secret",
            Step::Revoke => "revoke token",
            Step::Deadline => "deadline",
        })
    }
}

/// One collaborator's failure: who, at which step, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{collaborator}: {step}: {message}")]
pub struct StepError {
    pub collaborator: String,
    pub step: Step,
    pub message: String,
    /// The plugin's reasons, when the policy denied.
    pub reasons: Vec<Reason>,
}

/// Anything that stops the exchange before it starts.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// Every collaborator that cannot start, each with its reason.
    #[error("{}", .0.iter().map(|(name, message)| format!("collaborator \"{name}\": {message}")).collect::<Vec<_>>().join("\n"))]
    Collaborators(Vec<(String, String)>),
    /// The `[attestation]` settings do not make a verifier.
    #[error("[attestation]: {0}")]
    Verifier(#[from] crate::config::VerifierSetupError),
    /// The plugin engine could not start.
    #[error(transparent)]
    Engine(crate::plugin::PluginError),
}

/// A secret value read from Vault. Its strings are wiped on drop; it is never printed.
pub struct SecretValue(Value);

impl SecretValue {
    pub fn value(&self) -> &Value {
        &self.0
    }

    /// The text to deliver: a string as is, anything else as JSON.
    pub fn to_text(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(match &self.0 {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// A Vault token that outlives the exchange, and where it is delivered.
#[derive(Debug)]
pub struct KeptToken {
    pub token: VaultToken,
    pub file: Option<std::path::PathBuf>,
    pub env: Option<String>,
}

#[derive(Debug)]
pub struct ReleasedSecret {
    pub secret: SecretConfig,
    pub value: SecretValue,
}

/// How a collaborator's Vault token was obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// No Vault is configured: the plugin's allow is the whole outcome.
    PolicyOnly,
    /// JWT login with this role.
    JwtLogin { role: String },
    /// The VAULT_TOKEN unwrapped from KMS.
    Kms,
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route::PolicyOnly => f.write_str("with no Vault configured"),
            Route::JwtLogin { role } => write!(f, "via role \"{role}\""),
            Route::Kms => f.write_str("via the VAULT_TOKEN unwrapped from KMS"),
        }
    }
}

/// What one collaborator released.
#[derive(Debug)]
pub struct Released {
    pub audience: String,
    pub route: Route,
    pub policies: Vec<String>,
    pub secrets: Vec<ReleasedSecret>,
    /// Present when the configuration keeps the token (keep_token, token_file, token_env).
    pub vault_token: Option<KeptToken>,
    pub duration: Duration,
}

#[derive(Debug)]
pub struct Outcome {
    pub collaborator: String,
    pub result: Result<Released, StepError>,
}

#[derive(Debug)]
pub struct Report {
    pub outcomes: Vec<Outcome>,
}

impl Report {
    pub fn failures(&self) -> impl Iterator<Item = &StepError> {
        self.outcomes.iter().filter_map(|o| o.result.as_ref().err())
    }

    pub fn all_succeeded(&self) -> bool {
        self.failures().next().is_none()
    }

    pub fn released(&self) -> impl Iterator<Item = (&str, &Released)> {
        self.outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok().map(|r| (o.collaborator.as_str(), r)))
    }
}

struct Collaborator {
    config: CollaboratorConfig,
    policy: Arc<CollaboratorPolicy>,
    connection: Connection,
}

/// How a collaborator's secrets are reached: decided once, when the exchange is prepared, from a
/// configuration whose validation already refused a KMS section without a Vault.
enum Connection {
    /// No Vault configured: the plugin's allow is the whole outcome.
    PolicyOnly,
    /// JWT login at the collaborator's Vault.
    JwtLogin {
        vault: VaultClient,
        config: crate::config::VaultConfig,
    },
    /// The collaborator's VAULT_TOKEN, unwrapped from KMS, used at its Vault.
    Kms {
        vault: VaultClient,
        config: crate::config::VaultConfig,
        kms: Box<crate::kms::KmsClient>,
    },
}

impl Connection {
    fn vault(&self) -> Option<&VaultClient> {
        match self {
            Connection::PolicyOnly => None,
            Connection::JwtLogin { vault, .. } | Connection::Kms { vault, .. } => Some(vault),
        }
    }
}

/// A prepared exchange: plugins loaded and configurations validated, Vault clients built.
pub struct Exchange {
    collaborators: Vec<Collaborator>,
    verifier: Verifier,
    source: TokenSourceKind,
    launcher: LauncherClient,
    token_file: std::path::PathBuf,
    deadline: Duration,
    _engine: PluginEngine,
}

impl Exchange {
    /// Loads every plugin (in parallel) and builds the verifier and Vault clients. Any problem
    /// refuses to start, naming the collaborator.
    pub fn prepare(config: &Config) -> Result<Exchange, PrepareError> {
        let attestation = &config.attestation;
        let verifier = attestation.verifier()?;
        let engine = PluginEngine::new(EngineOptions {
            max_concurrent_instances: (config.collaborators.len() as u32 * 2).max(4),
            ..EngineOptions::default()
        })
        .map_err(PrepareError::Engine)?;
        let specs = config.plugin_specs();
        // Retries stop early enough to report Vault's own failure before the deadline hits.
        let retry = RetryPolicy {
            deadline: config.exchange.deadline().mul_f64(0.8),
            ..RetryPolicy::default()
        };
        let mut collaborators = Vec::new();
        let mut problems = Vec::new();
        for (collaborator, loaded) in config.collaborators.iter().zip(engine.load_all(&specs)) {
            let prepared = (|| -> Result<Collaborator, String> {
                let policy = loaded.map_err(|e| e.to_string())?;
                let vault_client = |vault| VaultClient::new(vault, retry.clone());
                let connection = match (&collaborator.vault, &collaborator.kms) {
                    (None, None) => Connection::PolicyOnly,
                    (Some(vault), None) => Connection::JwtLogin {
                        vault: vault_client(vault).map_err(|e| e.to_string())?,
                        config: vault.clone(),
                    },
                    (Some(vault), Some(kms)) => Connection::Kms {
                        vault: vault_client(vault).map_err(|e| e.to_string())?,
                        config: vault.clone(),
                        kms: Box::new(
                            crate::kms::KmsClient::new(kms, &config.google)
                                .map_err(|e| e.to_string())?,
                        ),
                    },
                    (None, Some(_)) => {
                        return Err("the KMS route needs a [collaborator.vault]".into())
                    }
                };
                Ok(Collaborator {
                    config: collaborator.clone(),
                    policy: Arc::new(policy),
                    connection,
                })
            })();
            match prepared {
                Ok(prepared) => collaborators.push(prepared),
                Err(message) => problems.push((collaborator.name.clone(), message)),
            }
        }
        if !problems.is_empty() {
            return Err(PrepareError::Collaborators(problems));
        }
        Ok(Exchange {
            collaborators,
            verifier,
            source: attestation.source,
            launcher: LauncherClient::new(&attestation.launcher_socket),
            token_file: attestation.token_file.clone(),
            deadline: config.exchange.deadline(),
            _engine: engine,
        })
    }

    /// Runs every collaborator concurrently, each under its own deadline, and reports them all.
    pub async fn run(&self) -> Report {
        let runs = self.collaborators.iter().map(|collaborator| async move {
            let name = collaborator.config.name.clone();
            let result = self.run_one(collaborator).await;
            match &result {
                Ok(released) => tracing::info!(
                    collaborator = %name,
                    secrets = released.secrets.len(),
                    duration_ms = released.duration.as_millis() as u64,
                    "collaborator released its secrets"
                ),
                Err(error) => tracing::warn!(collaborator = %name, step = %error.step, "exchange failed: {}", error.message),
            }
            Outcome { collaborator: name, result }
        });
        Report {
            outcomes: futures::future::join_all(runs).await,
        }
    }

    /// `future`, unless the collaborator's deadline passes first.
    async fn before_deadline<T>(
        &self,
        deadline: tokio::time::Instant,
        name: &str,
        future: impl std::future::Future<Output = Result<T, StepError>>,
    ) -> Result<T, StepError> {
        tokio::time::timeout_at(deadline, future)
            .await
            .unwrap_or_else(|_| {
                Err(step_error(
                    name,
                    Step::Deadline,
                    format!("did not finish within {} s", self.deadline.as_secs_f64()),
                ))
            })
    }

    /// Every step runs under the collaborator's deadline except the JWT login, which is allowed
    /// to finish so that its token can be revoked, and the revocation, which runs whatever
    /// happened before it, the deadline included: a Vault token obtained by login is never left
    /// behind alive because a read (or the login itself) was slow.
    async fn run_one(&self, collaborator: &Collaborator) -> Result<Released, StepError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.deadline;
        let name = &collaborator.config.name;
        let authorised = self
            .before_deadline(deadline, name, self.authorise(collaborator, started))
            .await?;
        let (audience, access, vault, vault_config) = match authorised {
            Authorised::PolicyOnly(released) => return Ok(released),
            Authorised::Unwrapped {
                audience,
                access,
                vault,
                vault_config,
            } => (audience, access, vault, vault_config),
            Authorised::Allowed {
                audience,
                jwt,
                verdict,
                vault,
                vault_config,
            } => {
                // Not cut short by the deadline: once Vault has issued a token, attestgate must
                // hold it to revoke it. The login's retries stop at 0.8 of the deadline and each
                // attempt has its own timeout; a late token is revoked below, as the read then
                // finds the deadline passed.
                let access = login_with_jwt(name, vault, vault_config, &verdict, jwt).await?;
                (audience, access, vault, vault_config)
            }
        };
        let read = self
            .before_deadline(
                deadline,
                name,
                read_secrets(vault, &access.token, &collaborator.config.secrets, name),
            )
            .await;
        let keep = vault_config.keeps_token() && read.is_ok();
        // A token from the KMS route is the collaborator's own and meant to be used again, and
        // batch tokens cannot be revoked (Vault answers 400): both simply keep their TTL.
        if !keep && access.revocable {
            match tokio::time::timeout(REVOKE_TIMEOUT, vault.revoke_self(&access.token)).await {
                Ok(Ok(())) => {}
                // Not fatal: the token still expires with its TTL. Worth a warning, though.
                Ok(Err(e)) => {
                    tracing::warn!(collaborator = %name, step = %Step::Revoke, "could not revoke the Vault token: {e}")
                }
                Err(_) => {
                    tracing::warn!(collaborator = %name, step = %Step::Revoke, "Vault did not confirm the revocation within {} s", REVOKE_TIMEOUT.as_secs())
                }
            }
        }
        Ok(Released {
            audience,
            route: access.route,
            policies: access.policies,
            secrets: read?,
            vault_token: keep.then(|| KeptToken {
                token: access.token,
                file: vault_config.token_file.clone(),
                env: vault_config.token_env.clone(),
            }),
            duration: started.elapsed(),
        })
    }

    /// Token, verification and the plugin's verdict; on the KMS route, the unwrapped token.
    async fn authorise<'a>(
        &self,
        collaborator: &'a Collaborator,
        started: Instant,
    ) -> Result<Authorised<'a>, StepError> {
        let name = &collaborator.config.name;
        let (jwt, audience) = self.token_for(collaborator).await?;
        let at = unix_now();
        let verified = self
            .verifier
            .verify_at(jwt.expose(), &audience, at)
            .await
            .map_err(|e| {
                step_error(
                    name,
                    Step::VerifyToken,
                    format!("{} check failed: {e}", e.check()),
                )
            })?;
        let verdict = judge(collaborator, verified.payload_json, at).await?;

        match &collaborator.connection {
            Connection::PolicyOnly => Ok(Authorised::PolicyOnly(Released {
                audience,
                route: Route::PolicyOnly,
                policies: Vec::new(),
                secrets: Vec::new(),
                vault_token: None,
                duration: started.elapsed(),
            })),
            Connection::Kms { vault, config, kms } => Ok(Authorised::Unwrapped {
                access: unwrap_with_kms(name, kms, vault, jwt).await?,
                audience,
                vault,
                vault_config: config,
            }),
            Connection::JwtLogin { vault, config } => Ok(Authorised::Allowed {
                audience,
                jwt,
                verdict,
                vault,
                vault_config: config,
            }),
        }
    }

    /// The attestation token for this collaborator, and the audience it must carry.
    async fn token_for(&self, collaborator: &Collaborator) -> Result<(Jwt, String), StepError> {
        let name = &collaborator.config.name;
        let get_token = |e: crate::attestation::source::SourceError| {
            step_error(name, Step::GetToken, e.to_string())
        };
        if self.source == TokenSourceKind::File {
            // Configuration validation admits this only for a single KMS-route collaborator,
            // with the operator's explicit opt-in.
            let jwt = read_token_file(&self.token_file).await.map_err(get_token)?;
            return Ok((jwt, DEFAULT_TOKEN_AUDIENCE.to_owned()));
        }
        let policy = collaborator.policy.clone();
        let request: TokenRequest = tokio::task::spawn_blocking(move || policy.select_audience())
            .await
            .map_err(|e| step_error(name, Step::SelectAudience, e.to_string()))?
            .map_err(|e| step_error(name, Step::SelectAudience, e.to_string()))?;
        // The plugin runtime already holds the request to the declared audience; this is the
        // last look at the exact request before the launcher mints it.
        if request.audience != collaborator.config.audience {
            return Err(step_error(
                name,
                Step::SelectAudience,
                format!(
                    "the plugin asked for audience \"{}\", not this collaborator's declared \"{}\"; refusing to mint it",
                    request.audience.escape_debug(),
                    collaborator.config.audience
                ),
            ));
        }
        let jwt = self
            .launcher
            .custom_token(&request)
            .await
            .map_err(get_token)?;
        Ok((jwt, request.audience))
    }

    /// Revokes the tokens a failed all-or-nothing exchange would otherwise leave behind, all at
    /// once and each within a bounded time. A token unwrapped from KMS is the collaborator's own
    /// and is never revoked.
    pub async fn revoke_kept(&self, report: &Report) {
        let revocations = report
            .released()
            .filter(|(_, r)| matches!(r.route, Route::JwtLogin { .. }))
            .filter_map(|(name, released)| {
                let token = released.vault_token.as_ref()?;
                let collaborator = self.collaborators.iter().find(|c| c.config.name == name)?;
                let vault = collaborator.connection.vault()?;
                Some(async move {
                    match tokio::time::timeout(REVOKE_TIMEOUT, vault.revoke_self(&token.token)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::warn!(collaborator = %name, "could not revoke a kept Vault token: {e}"),
                        Err(_) => tracing::warn!(collaborator = %name, "Vault did not confirm revoking a kept token within {} s", REVOKE_TIMEOUT.as_secs()),
                    }
                })
            });
        futures::future::join_all(revocations).await;
    }
}

fn step_error(collaborator: &str, step: Step, message: String) -> StepError {
    StepError {
        collaborator: collaborator.to_owned(),
        step,
        message,
        reasons: Vec::new(),
    }
}

/// The plugin's verdict on verified claims; a deny (or a plugin failure) stops the exchange here,
/// before the token leaves the TEE.
async fn judge(
    collaborator: &Collaborator,
    claims_json: String,
    at: i64,
) -> Result<Verdict, StepError> {
    let name = &collaborator.config.name;
    let policy = collaborator.policy.clone();
    let decision = tokio::task::spawn_blocking(move || policy.evaluate(&claims_json, at))
        .await
        .map_err(|e| step_error(name, Step::Policy, e.to_string()))?
        .map_err(|e| step_error(name, Step::Policy, format!("{e}; denying")))?;
    let verdict = decision.verdict;
    if verdict.allow {
        return Ok(verdict);
    }
    let failed: Vec<String> = verdict
        .failed_reasons()
        .map(|r| {
            if r.claim.is_empty() {
                r.message.clone()
            } else {
                format!("{}: {}", r.claim, r.message)
            }
        })
        .collect();
    Err(StepError {
        collaborator: name.clone(),
        step: Step::Policy,
        message: format!(
            "the plugin denied; the token was not sent to Vault. Failed rules: {}",
            failed.join("; ")
        ),
        reasons: verdict.reasons,
    })
}

/// How long a revocation may take once the rest is over (the deadline may already have passed).
const REVOKE_TIMEOUT: Duration = Duration::from_secs(5);

/// What a collaborator's plugin (and on the KMS route, Google) granted, before any login.
enum Authorised<'a> {
    /// No Vault configured: the plugin's allow is the whole outcome.
    PolicyOnly(Released),
    /// The KMS route: the VAULT_TOKEN is unwrapped (and never revoked).
    Unwrapped {
        audience: String,
        access: VaultAccess,
        vault: &'a VaultClient,
        vault_config: &'a crate::config::VaultConfig,
    },
    /// The JWT route: the plugin allowed; the token may go to this collaborator's Vault.
    Allowed {
        audience: String,
        jwt: Jwt,
        verdict: Verdict,
        vault: &'a VaultClient,
        vault_config: &'a crate::config::VaultConfig,
    },
}

/// A Vault token to read secrets with, however it was obtained.
struct VaultAccess {
    token: VaultToken,
    route: Route,
    policies: Vec<String>,
    revocable: bool,
}

/// JWT login at the collaborator's Vault with the role the plugin chose (or the configured one).
async fn login_with_jwt(
    name: &str,
    vault: &VaultClient,
    vault_config: &crate::config::VaultConfig,
    verdict: &Verdict,
    jwt: Jwt,
) -> Result<VaultAccess, StepError> {
    let role = verdict.login.get("role").or(vault_config.role.as_ref()).cloned().ok_or_else(|| {
        step_error(name, Step::VaultLogin, "no Vault role: set `role` in [collaborator.vault], or have the plugin return a login role".into())
    })?;
    let login = vault
        .login_jwt(&vault_config.auth_mount, &role, &jwt)
        .await
        .map_err(|e| step_error(name, Step::VaultLogin, format!("role \"{role}\": {e}")))?;
    Ok(VaultAccess {
        revocable: !login.is_batch,
        token: login.token,
        route: Route::JwtLogin { role },
        policies: login.policies,
    })
}

/// The KMS route: STS, optional impersonation and KMS decrypt yield the VAULT_TOKEN, which
/// lookup-self then checks (an expired or revoked token is said to be one).
async fn unwrap_with_kms(
    name: &str,
    kms: &crate::kms::KmsClient,
    vault: &VaultClient,
    jwt: Jwt,
) -> Result<VaultAccess, StepError> {
    let token = kms
        .unwrap_vault_token(&jwt)
        .await
        .map_err(|e| step_error(name, Step::Kms(e.step), e.message))?;
    let lookup = vault.lookup_self(&token).await.map_err(|e| match &e {
        crate::vault::VaultError::Denied { status: 403, .. } => step_error(
            name,
            Step::TokenLookup,
            format!("the VAULT_TOKEN unwrapped from KMS is expired or revoked ({e}); ask the collaborator for a fresh one"),
        ),
        _ => step_error(name, Step::TokenLookup, e.to_string()),
    })?;
    let data = &lookup["data"];
    let policies: Vec<String> = data["policies"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    tracing::info!(collaborator = %name, ?policies, ttl_s = data["ttl"].as_u64().unwrap_or(0), "VAULT_TOKEN unwrapped from KMS");
    Ok(VaultAccess {
        token,
        route: Route::Kms,
        policies,
        revocable: false,
    })
}

/// Reads every configured secret with `token`; the first failure stops and names the path.
async fn read_secrets(
    vault: &VaultClient,
    token: &VaultToken,
    secrets: &[SecretConfig],
    collaborator: &str,
) -> Result<Vec<ReleasedSecret>, StepError> {
    let fail = |message: String| step_error(collaborator, Step::ReadSecret, message);
    let mut released = Vec::new();
    for secret in secrets {
        let response = vault
            .read(token, &secret.path)
            .await
            .map_err(|e| fail(format!("{}: {e}", secret.path)))?;
        let value = extract(response, secret).map_err(fail)?;
        released.push(ReleasedSecret {
            secret: secret.clone(),
            value,
        });
    }
    Ok(released)
}

/// Takes the secret out of a read response: KV v2's `data.data` is unwrapped, and `field` picks
/// one value. Error messages name fields, never values.
fn extract(mut response: Value, secret: &SecretConfig) -> Result<SecretValue, String> {
    let mut data = response
        .get_mut("data")
        .map(Value::take)
        .unwrap_or(Value::Null);
    let is_kv2 = data.get("data").is_some_and(Value::is_object) && data.get("metadata").is_some();
    if is_kv2 {
        data = data.get_mut("data").map(Value::take).unwrap_or(Value::Null);
    }
    wipe(&mut response);
    let data = SecretValue(data);
    if data.0.is_null() {
        return Err(format!("{}: Vault returned no data (is the path right? KV v2 reads go through <mount>/data/<name>)", secret.path));
    }
    match &secret.field {
        None => Ok(data),
        Some(field) => {
            let mut data = data;
            match data.0.get_mut(field).map(Value::take) {
                Some(value) => Ok(SecretValue(value)),
                // Only the missing field is named: the others' names are the secret's business.
                None => Err(format!(
                    "{}: the secret has no field \"{field}\"",
                    secret.path
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(field: Option<&str>) -> SecretConfig {
        SecretConfig {
            path: "kv/data/db".into(),
            field: field.map(str::to_owned),
            file: None,
            env: Some("BANK_A_DB".into()),
        }
    }

    fn kv2(data: Value) -> Value {
        serde_json::json!({"data": {"data": data, "metadata": {"version": 1}}})
    }

    #[test]
    fn kv2_data_is_unwrapped_and_a_field_picked() {
        let response = kv2(serde_json::json!({"user": "app", "password": "s3cret"}));
        let value = extract(response.clone(), &secret(Some("password"))).unwrap();
        assert_eq!(value.value(), "s3cret");
        let whole = extract(response, &secret(None)).unwrap();
        assert_eq!(whole.value()["user"], "app");
    }

    #[test]
    fn a_missing_field_is_named_alone_never_its_siblings() {
        let response = kv2(serde_json::json!({"admin-password-for-prod": "x", "user": "app"}));
        let error = extract(response, &secret(Some("password"))).unwrap_err();
        assert!(error.contains("\"password\""), "{error}");
        assert!(
            !error.contains("admin-password-for-prod") && !error.contains("user"),
            "the other fields' names are the secret's business: {error}"
        );
    }

    #[test]
    fn no_data_says_how_kv2_paths_are_written() {
        let error = extract(serde_json::json!({"data": null}), &secret(None)).unwrap_err();
        assert!(error.contains("<mount>/data/<name>"), "{error}");
    }
}
