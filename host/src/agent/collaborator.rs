//! One collaborator's life in the agent: renew what can be renewed, re-exchange before anything
//! expires, deliver what changed, back off after failures, and apply `on_revoke` when access is
//! withdrawn. Each collaborator runs as its own task; one collaborator's failure or slow Vault
//! never holds up another.

use super::generation::Generation;
use super::health::{unix_seconds, Health, LastError};
use super::metrics::{RenewalOutcome, Renewed, SharedMetrics};
use super::schedule::{self, Action, Holding, Lifetime, Timing};
use crate::config::{OnChange, OnRevoke};
use crate::exchange::{
    deliver_changed, environment_of, file_digests, remove_files, FileDigests, HeldToken, Released,
    StepCause, StepError, TokenUse,
};
use crate::vault::SecretLease;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use zeroize::Zeroizing;

/// A collaborator's environment variables for the workload.
pub type Variables = Vec<(String, Zeroizing<String>)>;

/// A collaborator's secrets changed (or were removed): what the workload supervisor acts on.
#[derive(Debug)]
pub struct Change {
    /// Whose.
    pub collaborator: String,
    /// Its variables now (empty once removed).
    pub env: Variables,
    /// What the workload should do about it.
    pub on_change: OnChange,
}

/// What a collaborator holds: carried from task to task across a reload, and handed back at the
/// end so the agent can revoke its token and remove its files.
#[derive(Debug)]
pub struct Held {
    /// Its variables, as last delivered.
    pub env: Variables,
    /// Its files, as last delivered, with their digests.
    pub files: FileDigests,
    /// The Vault token its current secrets were read with.
    pub token: Option<HeldToken>,
    /// The configuration generation (and the collaborator's index in it) whose Vault client
    /// issued `token`: renewals and the revocation go to that Vault, even after a reload changed
    /// the collaborator's address.
    issuer: Option<(Arc<Generation>, usize)>,
    /// The leases of its current secrets, in the order of `holding.leases`.
    pub leases: Vec<SecretLease>,
    /// What the schedule looks at.
    pub holding: Holding,
    /// Failures since the last success, and when to try again.
    pub failures: u32,
    retry_at: Option<Instant>,
}

impl Held {
    /// Nothing yet: a collaborator whose first exchange failed (partial delivery) or that a
    /// reload added. Its first exchange is due at once.
    pub fn nothing() -> Held {
        Held {
            env: Vec::new(),
            files: FileDigests::new(),
            token: None,
            issuer: None,
            leases: Vec::new(),
            holding: Holding {
                refreshed: Instant::now().into_std(),
                token: None,
                leases: Vec::new(),
                token_renewal_refused: false,
            },
            failures: 0,
            retry_at: Some(Instant::now()),
        }
    }

    /// What a successful exchange delivered: its variables and file digests, its token and
    /// leases, timed from when the exchange began (never later than Vault's own clock started
    /// them). The token is taken out of `released`.
    pub fn delivered(
        name: &str,
        released: &mut Released,
        env: Variables,
        issuer: (Arc<Generation>, usize),
    ) -> Held {
        let now = released.started;
        let leases: Vec<SecretLease> = released
            .secrets
            .iter()
            .filter_map(|s| s.lease.clone())
            .collect();
        Held {
            env,
            files: file_digests(name, released),
            token: released.held_token.take(),
            issuer: Some(issuer),
            holding: Holding {
                refreshed: now,
                token: released.token_lease.map(|lease| Lifetime {
                    since: now,
                    ttl: lease.ttl,
                    renewable: lease.renewable,
                }),
                leases: leases
                    .iter()
                    .map(|lease| Lifetime {
                        since: now,
                        ttl: lease.duration,
                        renewable: lease.renewable,
                    })
                    .collect(),
                token_renewal_refused: false,
            },
            leases,
            failures: 0,
            retry_at: None,
        }
    }

    /// The paths of its delivered files.
    pub fn paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.files.keys()
    }

    /// Revokes the held token (and with it its leases) at the Vault that issued it.
    pub async fn revoke_token(&mut self) {
        if let (Some(token), Some((generation, index))) = (self.token.take(), &self.issuer) {
            generation.exchange.revoke_held(*index, token).await;
        }
    }
}

/// Whether a failure means the collaborator withdrew access (its plugin denied, or its Vault
/// refused the login or the read), rather than something being down.
fn access_withdrawn(error: &StepError) -> bool {
    match &*error.cause {
        StepCause::Denied(_) => true,
        StepCause::Login { source, .. } | StepCause::Read { source, .. } => source.is_refusal(),
        _ => false,
    }
}

/// What a renewal's answer means for the schedule.
enum Renewal {
    /// Extended: the new lifetime.
    Extended(Lifetime),
    /// Granted, but capped too short to be worth it: exchange instead.
    Exhausted,
    /// Vault refused it (a 4xx): exchange instead.
    Refused,
    /// Vault did not answer usefully: back off.
    Failed,
}

/// One collaborator's task.
pub struct CollaboratorTask {
    /// Its name: how it is found in each generation.
    pub name: String,
    /// The current configuration and exchange (replaced by a reload).
    pub generation: watch::Receiver<Arc<Generation>>,
    /// Where its state shows.
    pub health: Health,
    /// Where its events are counted.
    pub metrics: SharedMetrics,
    /// Where changes to its secrets go.
    pub changes: mpsc::UnboundedSender<Change>,
    /// Set when the agent stops.
    pub stop: watch::Receiver<bool>,
}

impl CollaboratorTask {
    /// Runs until the agent stops or a reload removes the collaborator; hands back what it holds.
    pub async fn run(mut self, mut held: Held) -> Held {
        loop {
            let generation = self.generation.borrow_and_update().clone();
            let Some(index) = generation.index_of(&self.name) else {
                return held;
            };
            let agent = &generation.config.agent;
            let timing = Timing {
                refresh: agent.refresh,
                renew_before: agent.renew_before,
            };
            let plan = match held.retry_at {
                Some(at) => schedule::Plan {
                    at: at.into_std(),
                    action: Action::Exchange,
                },
                None => schedule::next(&held.holding, timing, rand::random::<f64>()),
            };
            let expires = schedule::expiry(&held.holding);
            self.health.update(&self.name, |h| {
                h.next_refresh = Some(unix_seconds(plan.at));
                h.expires = expires.map(unix_seconds);
            });
            let wake = expires.map_or(plan.at, |expires| expires.min(plan.at));
            let mut reloaded = false;
            tokio::select! {
                () = tokio::time::sleep_until(Instant::from_std(wake)) => {}
                changed = self.generation.changed() => {
                    if changed.is_err() {
                        return held;
                    }
                    // Re-run every check under the new configuration and plugins at once.
                    reloaded = true;
                }
                _ = self.stop.changed() => return held,
            }
            let now = std::time::Instant::now();
            if expires.is_some_and(|expires| now >= expires) {
                tracing::warn!(collaborator = %self.name, "its secrets expired before they could be refreshed; removing them");
                self.withdraw(&generation, index, &mut held, "expired")
                    .await;
            }
            if reloaded {
                // Every collaborator is judged again by the new plugins and rules, now.
                held.retry_at = Some(Instant::now());
                continue;
            }
            if now < plan.at {
                continue;
            }
            let renewed = match plan.action {
                Action::Exchange => false,
                Action::RenewToken => self.renew_token(&generation, &mut held).await,
                Action::RenewLease(lease) => self.renew_lease(&generation, &mut held, lease).await,
            };
            if !renewed {
                self.exchange(&generation, index, &mut held).await;
            }
        }
    }

    /// `renew-self`; false when an exchange must follow (refused, or no longer extending).
    async fn renew_token(&self, generation: &Generation, held: &mut Held) -> bool {
        let (Some(token), Some(before), Some((issuer, issued_index))) =
            (&held.token, held.holding.token, &held.issuer)
        else {
            return false;
        };
        let result = issuer
            .exchange
            .renew_token(*issued_index, &token.token)
            .await;
        match self.judge_renewal(Renewed::Token, before, result) {
            Renewal::Extended(lifetime) => {
                held.holding.token = Some(lifetime);
                true
            }
            Renewal::Exhausted => false,
            Renewal::Refused => {
                // From now on, logging in again replaces renewing.
                held.holding.token_renewal_refused = true;
                false
            }
            Renewal::Failed => {
                // Still valid for a while: try again (a whole exchange) after a backoff.
                self.failed_attempt(generation, held, None);
                true
            }
        }
    }

    /// Renews lease `lease`; false when an exchange must follow.
    async fn renew_lease(&self, generation: &Generation, held: &mut Held, lease: usize) -> bool {
        let (Some(token), Some(id), Some(before), Some((issuer, issued_index))) = (
            &held.token,
            held.leases.get(lease),
            held.holding.leases.get(lease).copied(),
            &held.issuer,
        ) else {
            return false;
        };
        let result = issuer
            .exchange
            .renew_lease(*issued_index, &token.token, id)
            .await;
        match self.judge_renewal(Renewed::Lease, before, result) {
            Renewal::Extended(lifetime) => {
                held.holding.leases[lease] = lifetime;
                true
            }
            Renewal::Exhausted | Renewal::Refused => false,
            Renewal::Failed => {
                self.failed_attempt(generation, held, None);
                true
            }
        }
    }

    /// What a renewal's answer means, with its metric and log line written.
    fn judge_renewal(
        &self,
        what: Renewed,
        before: Lifetime,
        result: Result<std::time::Duration, crate::vault::VaultError>,
    ) -> Renewal {
        let (outcome, renewal) = match result {
            Ok(ttl) if !schedule::renewal_exhausted(before, ttl) => (
                RenewalOutcome::Renewed,
                Renewal::Extended(Lifetime {
                    since: std::time::Instant::now(),
                    ttl,
                    renewable: true,
                }),
            ),
            Ok(_) => (RenewalOutcome::Refused, Renewal::Exhausted),
            Err(error) if error.is_refusal() => {
                tracing::info!(collaborator = %self.name, renewal = ?what, "Vault refused the renewal ({error}); exchanging again instead");
                (RenewalOutcome::Refused, Renewal::Refused)
            }
            Err(error) => {
                tracing::warn!(collaborator = %self.name, renewal = ?what, "the renewal failed: {}", crate::errors::error_chain(&error));
                (RenewalOutcome::Failed, Renewal::Failed)
            }
        };
        self.metrics.renewal(&self.name, what, outcome);
        renewal
    }

    /// A whole exchange; on success the changed files are rewritten, the workload told, and the
    /// token the previous secrets were read with revoked.
    async fn exchange(&self, generation: &Arc<Generation>, index: usize, held: &mut Held) {
        let outcome = generation
            .exchange
            .run_collaborator(index, TokenUse::Hold)
            .await;
        self.metrics.exchange(
            &self.name,
            outcome.result.as_ref().map(|r| r.steps.as_slice()),
        );
        let mut released = match outcome.result {
            Ok(released) => released,
            Err(error) => {
                let withdrawn = access_withdrawn(&error);
                self.failed_attempt(generation, held, Some(&error));
                if withdrawn {
                    let on_revoke = generation
                        .collaborator(index)
                        .map(|c| c.agent.on_revoke)
                        .unwrap_or_default();
                    if on_revoke == OnRevoke::Remove {
                        tracing::warn!(collaborator = %self.name, "access withdrawn: removing its secrets (on_revoke = \"remove\")");
                        self.withdraw(generation, index, held, "withdrawn").await;
                    }
                }
                return;
            }
        };
        let root = &generation.config.delivery.root;
        let env = environment_of(&self.name, &released)
            .map_err(|e| e.to_string())
            .and_then(|env| match env.iter().find(|(name, _)| std::env::var_os(name).is_some()) {
                // As at the first delivery: a collaborator (one a reload added, say) may add
                // variables to the workload's environment, never replace its own.
                Some((name, _)) => Err(format!(
                    "{name} is already set in the workload's environment; a collaborator's secret may not replace it"
                )),
                None => Ok(env),
            });
        let delivered = env.and_then(|env| {
            let mut files = held.files.clone();
            deliver_changed([(self.name.as_str(), &released)], root, &mut files)
                .map(|changed| (env, changed))
                .map_err(|e| crate::errors::error_chain(&e))
        });
        let (env, changed) = match delivered {
            Ok(done) => done,
            Err(message) => {
                tracing::error!(collaborator = %self.name, "cannot deliver its secrets: {message}");
                if let Some(token) = released.held_token.take() {
                    generation.exchange.revoke_held(index, token).await;
                }
                self.note_failure(generation, held, "deliver", message);
                return;
            }
        };
        let env_changed = !same_variables(&env, &held.env);
        if !changed.is_empty() || env_changed {
            tracing::info!(collaborator = %self.name, files = changed.len(), env_changed, "secrets changed");
            let on_change = generation
                .collaborator(index)
                .map(|c| c.agent.on_change)
                .unwrap_or_default();
            let _ = self.changes.send(Change {
                collaborator: self.name.clone(),
                env: env.clone(),
                on_change,
            });
        }
        let previous = std::mem::replace(
            held,
            Held::delivered(&self.name, &mut released, env, (generation.clone(), index)),
        );
        held.holding.token_renewal_refused = previous.holding.token_renewal_refused;
        // A file the configuration no longer delivers (a reload moved or dropped it) goes.
        let stale: Vec<PathBuf> = previous
            .files
            .keys()
            .filter(|path| !held.files.contains_key(*path))
            .cloned()
            .collect();
        remove_files(&stale, root);
        // The new secrets are in place: the old ones (and their leases) can go.
        let mut previous = previous;
        previous.revoke_token().await;
        self.health.update(&self.name, |h| {
            h.current = true;
            h.last_success = Some(unix_seconds(std::time::Instant::now()));
            h.consecutive_failures = 0;
            h.last_error = None;
        });
    }

    /// Removes the collaborator's files and variables and revokes its token (on_revoke =
    /// "remove", or its secrets expired).
    async fn withdraw(&self, generation: &Generation, index: usize, held: &mut Held, why: &str) {
        remove_files(held.files.keys(), &generation.config.delivery.root);
        held.files.clear();
        if !held.env.is_empty() {
            held.env.clear();
            let on_change = generation
                .collaborator(index)
                .map(|c| c.agent.on_change)
                .unwrap_or_default();
            let _ = self.changes.send(Change {
                collaborator: self.name.clone(),
                env: Vec::new(),
                on_change,
            });
        }
        held.revoke_token().await;
        held.leases.clear();
        held.holding.leases.clear();
        held.holding.token = None;
        self.health.update(&self.name, |h| {
            h.current = false;
            h.expires = None;
        });
        tracing::info!(collaborator = %self.name, reason = why, "its secrets were removed");
    }

    fn failed_attempt(&self, generation: &Generation, held: &mut Held, error: Option<&StepError>) {
        let (step, message) = match error {
            Some(error) => (
                error.step.to_string(),
                crate::errors::error_chain(&error.cause),
            ),
            None => ("renew".to_owned(), "renewal failed".to_owned()),
        };
        self.note_failure(generation, held, &step, message);
    }

    fn note_failure(&self, generation: &Generation, held: &mut Held, step: &str, message: String) {
        let agent = &generation.config.agent;
        held.failures = held.failures.saturating_add(1);
        let wait = schedule::backoff(
            held.failures,
            agent.backoff_min,
            agent.backoff_max,
            rand::random::<f64>(),
        );
        held.retry_at = Some(Instant::now() + wait);
        let failures = held.failures;
        self.health.update(&self.name, |h| {
            h.current = false;
            h.consecutive_failures = failures;
            h.last_error = Some(LastError {
                step: step.to_owned(),
                message,
                at: unix_seconds(std::time::Instant::now()),
            });
        });
    }
}

/// Whether two sets of variables hold the same names and values, in order.
fn same_variables(a: &Variables, b: &Variables) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((name_a, value_a), (name_b, value_b))| name_a == name_b && value_a == value_b)
}
