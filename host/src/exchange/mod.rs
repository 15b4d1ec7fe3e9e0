//! The main job: for every collaborator, concurrently, get a token minted for its audience, verify
//! it, let its plugin judge the claims, log in to its Vault and read the secrets it releases.
//!
//! The token leaves the TEE only after the plugin allowed it, and only to that collaborator's
//! Vault. Every failure names the collaborator, the step and the cause.
//!
//! - `judge`: select the audience, verify, evaluate (shared with `attestgate verify`);
//! - `route`: from an allow to a Vault token (JWT login, or KMS unwrap);
//! - `secrets`: reading and holding secret values;
//! - `deliver`: files, JSON and environment, all or nothing;
//! - `report`, `error`: what came out, typed.

mod deliver;
mod error;
mod judge;
mod report;
mod route;
mod secrets;
mod secure_dir;

pub use deliver::{
    deliver_changed, deliver_files, digests_on_disk, environment, environment_of, file_digests,
    json_output, remove_files, Delivered, Delivery, DeliveryCause, DeliveryError, EnvironmentError,
    EnvironmentProblem, FileDigests, MAX_VARIABLE_BYTES,
};
pub use error::{PrepareError, SetupError, Step, StepCause, StepError};
pub use judge::{select_audience, verify_and_judge, Judged};
pub use report::{ExchangeReport, HeldToken, Outcome, Released, Route, TokenLease, TokenUse};
pub use secrets::{KeptToken, ReleasedSecret};
pub use secure_dir::UnsafeDir;

use crate::attestation::unix_now;
use crate::attestation::{read_token_file, DEFAULT_TOKEN_AUDIENCE};
use crate::attestation::{Jwt, LauncherClient, Verifier};
use crate::config::{
    CollaboratorConfig, Config, LoginRoute, RunKind, TokenSourceKind, VaultConfig,
};
use crate::http::SystemRoots;
use crate::kms::KmsClient;
use crate::plugin::{CollaboratorPolicy, EngineOptions, PluginEngine, Verdict};
use crate::vault::{RetryPolicy, SecretLease, VaultClient, VaultError, VaultToken};
use route::{login_with_jwt, unwrap_with_kms, Connection, VaultAccess};
use secrets::read_secrets;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Collaborator {
    config: CollaboratorConfig,
    policy: Arc<CollaboratorPolicy>,
    connection: Connection,
}

/// A prepared exchange: plugins loaded and configurations validated, Vault clients built.
pub struct Exchange {
    collaborators: Vec<Collaborator>,
    verifier: Arc<Verifier>,
    source: TokenSourceKind,
    launcher: LauncherClient,
    token_file: std::path::PathBuf,
    deadline: Duration,
    _engine: PluginEngine,
}

impl Exchange {
    /// Loads every plugin (in parallel) and builds the verifier and Vault clients, for a run of
    /// `kind` (which picks the compiler, [`Config::plugin_compiler`]). Any problem refuses to
    /// start, naming the collaborator.
    ///
    /// The plugins compile on a blocking thread (CPU work) while the issuer's keys are fetched
    /// on the runtime ([`JwksCache::prefetch`](crate::attestation::JwksCache::prefetch)): the
    /// first verification finds them cached, and a one-shot run's compile hides the fetch's
    /// round trips (two HTTPS requests to Google in production).
    pub async fn start(config: &Config, kind: RunKind) -> Result<Exchange, PrepareError> {
        let runtime = tokio::runtime::Handle::current();
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            // One read of the system's root certificates for every client of this exchange.
            let system_roots = SystemRoots::default();
            // Off the async workers too: the verifier may read `pki_root` and load the system's
            // root certificates.
            let verifier = Arc::new(config.attestation.verifier(&system_roots)?);
            let keys = Arc::clone(&verifier);
            runtime.spawn(async move { keys.keys().prefetch().await });
            Exchange::prepare(&config, kind, verifier, &system_roots)
        })
        .await
        .map_err(PrepareError::Task)?
    }

    fn prepare(
        config: &Config,
        kind: RunKind,
        verifier: Arc<Verifier>,
        system_roots: &SystemRoots,
    ) -> Result<Exchange, PrepareError> {
        let started = Instant::now();
        let attestation = &config.attestation;
        let compiler = config.plugin_compiler(kind);
        tracing::debug!(compiler = compiler.name(), "compiling plugins");
        let engine = PluginEngine::new(EngineOptions {
            max_concurrent_instances: (config.collaborators.len() as u32 * 2).max(4),
            compiler,
            ..EngineOptions::default()
        })
        .map_err(PrepareError::Engine)?;
        let specs = config.plugin_specs();
        // Retries stop early enough to report Vault's own failure before the deadline hits.
        let retry = RetryPolicy {
            deadline: config.exchange.deadline().mul_f64(0.8),
            ..RetryPolicy::default()
        };
        // The clients are built on a thread beside the plugins' loading: the first one that
        // trusts the system's roots reads them (3-4 ms), the others take them from it.
        let (loaded, connections) = std::thread::scope(|scope| {
            let connecting = scope.spawn(|| {
                config
                    .collaborators
                    .iter()
                    .map(|collaborator| connect(collaborator, config, &retry, system_roots))
                    .collect::<Vec<_>>()
            });
            let loaded = engine.load_all(&specs);
            let connections = connecting
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (loaded, connections)
        });
        let mut collaborators = Vec::new();
        let mut problems = Vec::new();
        for ((collaborator, loaded), connection) in
            config.collaborators.iter().zip(loaded).zip(connections)
        {
            // The plugin's problem first: it is the one the collaborator must fix first.
            let prepared = loaded.map_err(SetupError::Plugin).and_then(|policy| {
                Ok(Collaborator {
                    config: collaborator.clone(),
                    policy: Arc::new(policy),
                    connection: connection?,
                })
            });
            match prepared {
                Ok(prepared) => collaborators.push(prepared),
                Err(error) => problems.push((collaborator.name.clone(), error)),
            }
        }
        if !problems.is_empty() {
            return Err(PrepareError::Collaborators(problems));
        }
        tracing::debug!(
            took_ms = started.elapsed().as_secs_f64() * 1000.0,
            "plugins loaded, clients built"
        );
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
    pub async fn run(&self) -> ExchangeReport {
        let runs = (0..self.collaborators.len())
            .map(|index| self.run_collaborator(index, TokenUse::RevokeAfterRead));
        ExchangeReport {
            outcomes: futures::future::join_all(runs).await,
        }
    }

    /// The collaborators' configurations, in order: `index` in the calls below.
    pub fn collaborators(&self) -> impl Iterator<Item = &CollaboratorConfig> {
        self.collaborators.iter().map(|c| &c.config)
    }

    /// Runs one collaborator's exchange under its deadline (the agent runs each on its own
    /// schedule); `token_use` says whether its Vault token is revoked or handed back.
    ///
    /// # Panics
    /// If `index` is not a collaborator's.
    pub async fn run_collaborator(&self, index: usize, token_use: TokenUse) -> Outcome {
        let collaborator = &self.collaborators[index];
        let name = collaborator.config.name.clone();
        let result = self.run_one(collaborator, token_use).await;
        match &result {
            Ok(released) => tracing::info!(
                collaborator = %name,
                secrets = released.secrets.len(),
                duration_ms = released.duration.as_secs_f64() * 1000.0,
                steps = %StepTimes(&released.steps),
                "collaborator released its secrets"
            ),
            Err(error) => {
                tracing::warn!(collaborator = %name, step = %error.step, "exchange failed: {}", crate::errors::error_chain(&error.cause))
            }
        }
        Outcome {
            collaborator: name,
            result,
        }
    }

    /// `renew-self` with a token collaborator `index`'s exchange handed back: its new TTL.
    pub async fn renew_token(
        &self,
        index: usize,
        token: &VaultToken,
    ) -> Result<Duration, VaultError> {
        self.vault_of(index)?.renew_self(token).await
    }

    /// Renews a lease of a secret collaborator `index`'s exchange read with `token`.
    pub async fn renew_lease(
        &self,
        index: usize,
        token: &VaultToken,
        lease: &SecretLease,
    ) -> Result<Duration, VaultError> {
        self.vault_of(index)?.renew_lease(token, &lease.id).await
    }

    /// Revokes a token collaborator `index`'s exchange handed back (and with it the leases of
    /// what it read), within a bounded time; a failure is logged, since the token still expires.
    pub async fn revoke_held(&self, index: usize, held: HeldToken) {
        let name = &self.collaborators[index].config.name;
        let Some(vault) = self.collaborators[index].connection.vault() else {
            return;
        };
        if !held.revocable {
            return;
        }
        match tokio::time::timeout(REVOKE_TIMEOUT, vault.revoke_self(&held.token)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(collaborator = %name, step = %Step::Revoke, "could not revoke a replaced Vault token: {e}")
            }
            Err(_) => {
                tracing::warn!(collaborator = %name, step = %Step::Revoke, "Vault did not confirm revoking a replaced token within {} s", REVOKE_TIMEOUT.as_secs())
            }
        }
    }

    fn vault_of(&self, index: usize) -> Result<&VaultClient, VaultError> {
        self.collaborators[index]
            .connection
            .vault()
            .ok_or(VaultError::Settings(
                crate::vault::VaultSettingsError::NoAddress,
            ))
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
                Err(StepError::new(
                    name,
                    Step::Deadline,
                    StepCause::Deadline(self.deadline),
                ))
            })
    }

    /// Every step runs under the collaborator's deadline except the JWT login, which is allowed
    /// to finish so that its token can be revoked, and the revocation, which runs whatever
    /// happened before it, the deadline included: a Vault token obtained by login is never left
    /// behind alive because a read (or the login itself) was slow.
    async fn run_one(
        &self,
        collaborator: &Collaborator,
        token_use: TokenUse,
    ) -> Result<Released, StepError> {
        let started = Instant::now();
        let deadline = tokio::time::Instant::now() + self.deadline;
        let name = &collaborator.config.name;
        let mut steps = Vec::new();
        let authorised = self
            .before_deadline(
                deadline,
                name,
                self.authorise(collaborator, started, &mut steps),
            )
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
                let login_started = Instant::now();
                let access = login_with_jwt(name, vault, vault_config, &verdict, jwt).await?;
                steps.push((Step::VaultLogin, login_started.elapsed()));
                (audience, access, vault, vault_config)
            }
        };
        let read_started = Instant::now();
        let read = self
            .before_deadline(
                deadline,
                name,
                read_secrets(vault, &access.token, &collaborator.config.secrets, name),
            )
            .await;
        steps.push((Step::ReadSecret, read_started.elapsed()));
        let deliver_token = vault_config.keeps_token() && read.is_ok();
        let keep = read.is_ok() && (deliver_token || token_use == TokenUse::Hold);
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
            vault_token: deliver_token.then(|| KeptToken {
                token: access.token.clone(),
                file: vault_config.token_file.clone(),
                env: vault_config.token_env.clone(),
            }),
            token_lease: Some(access.lease),
            held_token: (token_use == TokenUse::Hold).then_some(HeldToken {
                token: access.token,
                revocable: access.revocable,
            }),
            steps,
            started,
            duration: started.elapsed(),
        })
    }

    /// Token, verification and the plugin's verdict; on the KMS route, the unwrapped token.
    async fn authorise<'a>(
        &self,
        collaborator: &'a Collaborator,
        started: Instant,
        steps: &mut Vec<(Step, Duration)>,
    ) -> Result<Authorised<'a>, StepError> {
        let name = &collaborator.config.name;
        let token_started = Instant::now();
        let (jwt, audience) = self.token_for(collaborator).await?;
        steps.push((Step::GetToken, token_started.elapsed()));
        let Judged {
            verdict,
            verify_time,
            policy_time,
            ..
        } = verify_and_judge(
            &collaborator.policy,
            &self.verifier,
            jwt.expose(),
            &audience,
            unix_now(),
        )
        .await?;
        steps.push((Step::VerifyToken, verify_time));
        steps.push((Step::Policy, policy_time));

        match &collaborator.connection {
            Connection::PolicyOnly => Ok(Authorised::PolicyOnly(Released {
                audience,
                route: Route::PolicyOnly,
                policies: Vec::new(),
                secrets: Vec::new(),
                vault_token: None,
                token_lease: None,
                held_token: None,
                steps: steps.clone(),
                started,
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
        let get_token = |e| StepError::new(name, Step::GetToken, StepCause::TokenSource(e));
        if self.source == TokenSourceKind::File {
            // Configuration validation admits this only for a single KMS-route collaborator,
            // with the operator's explicit opt-in.
            let jwt = read_token_file(&self.token_file).await.map_err(get_token)?;
            return Ok((jwt, DEFAULT_TOKEN_AUDIENCE.to_owned()));
        }
        let request = select_audience(&collaborator.policy, &collaborator.config.audience).await?;
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
    pub async fn revoke_kept(&self, report: &ExchangeReport) {
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

/// Where a collaborator's time went, for the log: `get token 3.1 ms, verify token 0.1 ms, …`.
struct StepTimes<'a>(&'a [(Step, Duration)]);

impl std::fmt::Display for StepTimes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (step, took)) in self.0.iter().enumerate() {
            let separator = if index == 0 { "" } else { ", " };
            write!(f, "{separator}{step} {:.1} ms", took.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}

/// The clients a collaborator's route needs: its Vault's, and on the KMS route Google's.
fn connect(
    collaborator: &CollaboratorConfig,
    config: &Config,
    retry: &RetryPolicy,
    system_roots: &SystemRoots,
) -> Result<Connection, SetupError> {
    let vault_client =
        |vault| VaultClient::new(vault, retry.clone(), system_roots).map_err(SetupError::Vault);
    Ok(match &collaborator.route {
        LoginRoute::PolicyOnly => Connection::PolicyOnly,
        LoginRoute::Jwt { vault } => Connection::JwtLogin {
            vault: vault_client(vault)?,
            config: vault.clone(),
        },
        LoginRoute::Kms { vault, kms } => Connection::Kms {
            vault: vault_client(vault)?,
            config: vault.clone(),
            kms: Box::new(
                KmsClient::new(kms, &config.google, system_roots).map_err(SetupError::Kms)?,
            ),
        },
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
        vault_config: &'a VaultConfig,
    },
    /// The JWT route: the plugin allowed; the token may go to this collaborator's Vault.
    Allowed {
        audience: String,
        jwt: Jwt,
        verdict: Verdict,
        vault: &'a VaultClient,
        vault_config: &'a VaultConfig,
    },
}
