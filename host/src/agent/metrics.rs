//! What `GET /metrics` exports, in the OpenMetrics text format (`prometheus-client`). Label
//! values come only from the configuration (collaborator names) and fixed enums, never from a
//! plugin's or a server's text, so neither can inflate the series count or inject into it.

use super::health::Health;
use crate::exchange::{Step, StepCause, StepError};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// How one collaborator's exchange ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExchangeOutcome {
    /// Its secrets were read (and delivered where they changed).
    Released,
    /// Its plugin denied the token.
    Denied,
    /// Any other failure.
    Failed,
}

/// A plugin's decision, for `attestgate_plugin_decisions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied, with reasons.
    Deny,
    /// Failed (trap, deadline, memory, bad return): counts as a deny.
    Error,
}

/// What was renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Renewed {
    /// The Vault token (`renew-self`).
    Token,
    /// A secret's lease.
    Lease,
}

/// How a renewal went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RenewalOutcome {
    /// Extended.
    Renewed,
    /// Vault refused it (a 4xx), or it no longer extends the lifetime: re-exchanged instead.
    Refused,
    /// Vault did not answer usefully.
    Failed,
}

/// Label values in lowercase, from fixed names.
macro_rules! label_values {
    ($($type:ty { $($variant:ident => $name:literal),* $(,)? })*) => {$(
        impl EncodeLabelValue for $type {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                let name: &str = match self { $(Self::$variant => $name),* };
                EncodeLabelValue::encode(&name, encoder)
            }
        }
    )*};
}

label_values! {
    ExchangeOutcome { Released => "released", Denied => "denied", Failed => "failed" }
    Decision { Allow => "allow", Deny => "deny", Error => "error" }
    Renewed { Token => "token", Lease => "lease" }
    RenewalOutcome { Renewed => "renewed", Refused => "refused", Failed => "failed" }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CollaboratorLabels {
    collaborator: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ExchangeLabels {
    collaborator: String,
    outcome: ExchangeOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StepLabels {
    collaborator: String,
    /// A [`Step`]'s fixed name.
    step: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    collaborator: String,
    verdict: Decision,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RenewalLabels {
    collaborator: String,
    what: Renewed,
    outcome: RenewalOutcome,
}

fn step_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// The agent's metrics.
pub struct Metrics {
    registry: Registry,
    exchanges: Family<ExchangeLabels, Counter>,
    steps: Family<StepLabels, Histogram, fn() -> Histogram>,
    decisions: Family<DecisionLabels, Counter>,
    renewals: Family<RenewalLabels, Counter>,
    until_expiry: Family<CollaboratorLabels, Gauge<f64, AtomicU64>>,
    current: Family<CollaboratorLabels, Gauge>,
    restarts: Counter,
    reloads_failed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("attestgate");
        let exchanges = Family::<ExchangeLabels, Counter>::default();
        registry.register(
            "exchanges",
            "Exchanges per collaborator, by outcome",
            exchanges.clone(),
        );
        let steps = Family::<StepLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            step_histogram,
        );
        registry.register(
            "step_duration_seconds",
            "How long each step of a successful exchange took",
            steps.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "plugin_decisions",
            "Plugin decisions per collaborator, by verdict",
            decisions.clone(),
        );
        let renewals = Family::<RenewalLabels, Counter>::default();
        registry.register(
            "renewals",
            "Vault token and lease renewals, by outcome",
            renewals.clone(),
        );
        let until_expiry = Family::<CollaboratorLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "seconds_until_expiry",
            "Seconds until the earliest expiry among the secrets a collaborator holds (absent for static secrets)",
            until_expiry.clone(),
        );
        let current = Family::<CollaboratorLabels, Gauge>::default();
        registry.register(
            "collaborator_current",
            "1 when the collaborator's secrets are current, 0 when its last attempt failed or they expired",
            current.clone(),
        );
        let restarts = Counter::default();
        registry.register(
            "workload_restarts",
            "Restarts of the workload after secrets changed",
            restarts.clone(),
        );
        let reloads_failed = Counter::default();
        registry.register(
            "reloads_failed",
            "SIGHUP reloads refused because the new configuration or plugins failed their checks",
            reloads_failed.clone(),
        );
        Metrics {
            registry,
            exchanges,
            steps,
            decisions,
            renewals,
            until_expiry,
            current,
            restarts,
            reloads_failed,
        }
    }
}

impl Metrics {
    /// Records one exchange: its outcome, the plugin's decision and, on success, its steps.
    pub fn exchange(&self, collaborator: &str, result: Result<&[(Step, Duration)], &StepError>) {
        let (outcome, decision) = match result {
            Ok(steps) => {
                for (step, took) in steps {
                    self.steps
                        .get_or_create(&StepLabels {
                            collaborator: collaborator.to_owned(),
                            step: step.to_string(),
                        })
                        .observe(took.as_secs_f64());
                }
                (ExchangeOutcome::Released, Some(Decision::Allow))
            }
            Err(error) => match (&error.step, &*error.cause) {
                (_, StepCause::Denied(_)) => (ExchangeOutcome::Denied, Some(Decision::Deny)),
                (Step::SelectAudience | Step::Policy, StepCause::Plugin(_)) => {
                    (ExchangeOutcome::Failed, Some(Decision::Error))
                }
                // Everything after the policy step: the plugin allowed.
                (Step::VaultLogin | Step::ReadSecret | Step::Kms(_) | Step::TokenLookup, _) => {
                    (ExchangeOutcome::Failed, Some(Decision::Allow))
                }
                _ => (ExchangeOutcome::Failed, None),
            },
        };
        self.exchanges
            .get_or_create(&ExchangeLabels {
                collaborator: collaborator.to_owned(),
                outcome,
            })
            .inc();
        if let Some(verdict) = decision {
            self.decisions
                .get_or_create(&DecisionLabels {
                    collaborator: collaborator.to_owned(),
                    verdict,
                })
                .inc();
        }
    }

    /// Records one renewal.
    pub fn renewal(&self, collaborator: &str, what: Renewed, outcome: RenewalOutcome) {
        self.renewals
            .get_or_create(&RenewalLabels {
                collaborator: collaborator.to_owned(),
                what,
                outcome,
            })
            .inc();
    }

    /// Counts a workload restart.
    pub fn restarted(&self) {
        self.restarts.inc();
    }

    /// Counts a refused reload.
    pub fn reload_failed(&self) {
        self.reloads_failed.inc();
    }

    /// The text exposition, with the gauges brought up to date from `health` first.
    pub fn encode(&self, health: &Health) -> String {
        let (_, report) = health.report();
        let now = super::health::unix_seconds(std::time::Instant::now()) as f64;
        self.until_expiry.clear();
        self.current.clear();
        for (name, status) in &report.collaborators {
            let labels = CollaboratorLabels {
                collaborator: name.clone(),
            };
            self.current
                .get_or_create(&labels)
                .set(i64::from(status.current));
            if let Some(expires) = status.expires {
                self.until_expiry
                    .get_or_create(&labels)
                    .set((expires as f64 - now).max(0.0));
            }
        }
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Shared by the collaborators' tasks, the workload supervisor and the HTTP endpoint.
pub type SharedMetrics = Arc<Metrics>;
