//! `[agent]` and `[collaborator.agent]`: how `attestgate agent` keeps secrets fresh, backs off,
//! and tells the workload about a change. Each choice is an enum parsed once, here, so the agent
//! matches on it instead of re-reading strings.

use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// `[agent]`: one collaboration-wide schedule.
#[derive(Debug, Clone, Deserialize)]
pub struct AgentConfig {
    /// Re-exchange every collaborator at least this often, even when nothing expires (default
    /// 5 minutes): a secret rotated in Vault reaches the workload within this.
    #[serde(default = "default_refresh", deserialize_with = "duration")]
    pub refresh: Duration,
    /// How long before a Vault token or lease expires to act on it: a share of its TTL
    /// (`"20%"`, the default) or a duration (`"30s"`).
    #[serde(default)]
    pub renew_before: RenewBefore,
    /// The first wait after a failure (default 1 s); it doubles, with jitter, per failure.
    #[serde(default = "default_backoff_min", deserialize_with = "duration")]
    pub backoff_min: Duration,
    /// The longest wait between attempts (default 2 minutes).
    #[serde(default = "default_backoff_max", deserialize_with = "duration")]
    pub backoff_max: Duration,
    /// Serve `GET /healthz` and `GET /metrics` here (say `127.0.0.1:9464`); off when unset.
    pub listen: Option<SocketAddr>,
    /// Changes this close together restart the workload once (default 2 s).
    #[serde(default = "default_debounce", deserialize_with = "duration")]
    pub restart_debounce: Duration,
    /// How long the workload has to exit after SIGTERM before it is killed (default 10 s).
    #[serde(default = "default_stop_timeout", deserialize_with = "duration")]
    pub stop_timeout: Duration,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            refresh: default_refresh(),
            renew_before: RenewBefore::default(),
            backoff_min: default_backoff_min(),
            backoff_max: default_backoff_max(),
            listen: None,
            restart_debounce: default_debounce(),
            stop_timeout: default_stop_timeout(),
        }
    }
}

fn default_refresh() -> Duration {
    Duration::from_secs(300)
}

fn default_backoff_min() -> Duration {
    Duration::from_secs(1)
}

fn default_backoff_max() -> Duration {
    Duration::from_secs(120)
}

fn default_debounce() -> Duration {
    Duration::from_secs(2)
}

fn default_stop_timeout() -> Duration {
    Duration::from_secs(10)
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(deserializer)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "{text:?} is not a duration ({e}); write it as \"30s\", \"5m\" or \"1h 30m\""
        ))
    })
}

/// `renew_before`: when, ahead of an expiry, the agent acts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RenewBefore {
    /// A share of the TTL, strictly between 0 and 1 (`"20%"` is 0.2).
    Share(f64),
    /// A fixed time ahead (capped at half the TTL, so a short TTL still gets used).
    Ahead(Duration),
}

impl Default for RenewBefore {
    fn default() -> Self {
        RenewBefore::Share(0.2)
    }
}

impl RenewBefore {
    /// How long after being issued with `ttl` something should be renewed.
    pub fn renew_after(self, ttl: Duration) -> Duration {
        match self {
            RenewBefore::Share(share) => ttl.mul_f64(1.0 - share),
            RenewBefore::Ahead(ahead) => ttl.saturating_sub(ahead.min(ttl / 2)),
        }
    }
}

impl<'de> Deserialize<'de> for RenewBefore {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Some(percent) = text.trim().strip_suffix('%') {
            return match percent.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p < 100.0 => Ok(RenewBefore::Share(p / 100.0)),
                _ => Err(serde::de::Error::custom(format!(
                    "{text:?}: a share of the TTL is between 0% and 100%, exclusive (say \"20%\")"
                ))),
            };
        }
        humantime::parse_duration(&text)
            .map(RenewBefore::Ahead)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is neither a share of the TTL (\"20%\") nor a duration (\"30s\"): {e}"
                ))
            })
    }
}

/// `[collaborator.agent]`: what a change or a revocation of this collaborator's secrets does.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub struct CollaboratorAgentConfig {
    /// When one of its secrets changes: `"restart"` the workload (the default), send it
    /// `"signal:SIGHUP"` (or another signal), or `"none"` (it re-reads the files itself).
    #[serde(default)]
    pub on_change: OnChange,
    /// When the collaborator stops releasing its secrets (its plugin denies, or its Vault refuses
    /// the login): `"remove"` them at once (the default) or `"keep"` them until their lease
    /// expires (a static KV secret has none, so it stays).
    #[serde(default)]
    pub on_revoke: OnRevoke,
}

/// `on_change`: how the workload learns that a secret changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnChange {
    /// Restart it (debounced across collaborators), with the new environment.
    #[default]
    Restart,
    /// Send it this signal.
    Signal(WorkloadSignal),
    /// Nothing: files are rewritten atomically, and the workload re-reads them.
    Nothing,
}

impl<'de> Deserialize<'de> for OnChange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        match text.as_str() {
            "restart" => Ok(OnChange::Restart),
            "none" => Ok(OnChange::Nothing),
            other => match other.strip_prefix("signal:") {
                Some(name) => match WorkloadSignal::from_name(name) {
                    // One collaborator's rotation must not end the workload (and the agent with
                    // it) for everyone: a signal that stops it is what "restart" is for.
                    Some(WorkloadSignal::Term | WorkloadSignal::Int | WorkloadSignal::Quit) => {
                        Err(serde::de::Error::custom(format!(
                            "{name}: a signal that ends the workload would end the agent with it, for every collaborator; use on_change = \"restart\""
                        )))
                    }
                    Some(signal) => Ok(OnChange::Signal(signal)),
                    None => Err(serde::de::Error::custom(format!(
                        "{name:?} is not a signal the workload can be sent; use SIGHUP, SIGUSR1, SIGUSR2 or SIGWINCH"
                    ))),
                },
                None => Err(serde::de::Error::custom(format!(
                    "{other:?}: on_change is \"restart\", \"signal:SIGHUP\" (or another signal) or \"none\""
                ))),
            },
        }
    }
}

/// `on_revoke`: what happens to the secrets of a collaborator that stopped releasing them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnRevoke {
    /// Remove its files (and its variables, at the workload's next start) at once.
    #[default]
    Remove,
    /// Keep the last value until its lease expires.
    Keep,
}

/// A signal the agent sends the workload: one `on_change` may name (SIGHUP, SIGUSR1, SIGUSR2,
/// SIGWINCH), or one it forwards (SIGTERM, SIGINT). The list is closed: SIGKILL and SIGSTOP
/// cannot be handled, and the agent owns the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadSignal {
    /// SIGHUP, the usual "reload your configuration".
    Hup,
    /// SIGUSR1.
    Usr1,
    /// SIGUSR2.
    Usr2,
    /// SIGTERM (the agent forwards it; `on_change` refuses it).
    Term,
    /// SIGINT (the agent forwards it; `on_change` refuses it).
    Int,
    /// SIGQUIT (`on_change` refuses it).
    Quit,
    /// SIGWINCH.
    Winch,
}

impl WorkloadSignal {
    /// The names `signal:` accepts.
    pub const NAMES: [&'static str; 7] = [
        "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT", "SIGQUIT", "SIGWINCH",
    ];

    fn from_name(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_uppercase();
        let name = name.strip_prefix("SIG").unwrap_or(&name);
        Some(match name {
            "HUP" => WorkloadSignal::Hup,
            "USR1" => WorkloadSignal::Usr1,
            "USR2" => WorkloadSignal::Usr2,
            "TERM" => WorkloadSignal::Term,
            "INT" => WorkloadSignal::Int,
            "QUIT" => WorkloadSignal::Quit,
            "WINCH" => WorkloadSignal::Winch,
            _ => return None,
        })
    }

    /// The signal itself.
    pub fn signal(self) -> rustix::process::Signal {
        use rustix::process::Signal;
        match self {
            WorkloadSignal::Hup => Signal::HUP,
            WorkloadSignal::Usr1 => Signal::USR1,
            WorkloadSignal::Usr2 => Signal::USR2,
            WorkloadSignal::Term => Signal::TERM,
            WorkloadSignal::Int => Signal::INT,
            WorkloadSignal::Quit => Signal::QUIT,
            WorkloadSignal::Winch => Signal::WINCH,
        }
    }
}

impl fmt::Display for WorkloadSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = match self {
            WorkloadSignal::Hup => 0,
            WorkloadSignal::Usr1 => 1,
            WorkloadSignal::Usr2 => 2,
            WorkloadSignal::Term => 3,
            WorkloadSignal::Int => 4,
            WorkloadSignal::Quit => 5,
            WorkloadSignal::Winch => 6,
        };
        f.write_str(Self::NAMES[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Wrapper {
        agent: AgentConfig,
        collaborator: CollaboratorAgentConfig,
    }

    fn parse(text: &str) -> Result<Wrapper, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn the_documented_keys_parse_to_their_types() {
        let parsed = parse(
            r#"
            [agent]
            refresh = "1m"
            renew_before = "30s"
            backoff_min = "500ms"
            backoff_max = "1m"
            listen = "127.0.0.1:9464"
            [collaborator]
            on_change = "signal:SIGHUP"
            on_revoke = "keep"
            "#,
        )
        .unwrap();
        assert_eq!(parsed.agent.refresh, Duration::from_secs(60));
        assert_eq!(
            parsed.agent.renew_before,
            RenewBefore::Ahead(Duration::from_secs(30))
        );
        assert_eq!(parsed.agent.backoff_min, Duration::from_millis(500));
        assert_eq!(parsed.agent.listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(
            parsed.collaborator.on_change,
            OnChange::Signal(WorkloadSignal::Hup)
        );
        assert_eq!(parsed.collaborator.on_revoke, OnRevoke::Keep);
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let parsed = parse("[agent]\n[collaborator]\n").unwrap();
        assert_eq!(parsed.agent.refresh, Duration::from_secs(300));
        assert_eq!(parsed.agent.renew_before, RenewBefore::Share(0.2));
        assert_eq!(parsed.collaborator.on_change, OnChange::Restart);
        assert_eq!(parsed.collaborator.on_revoke, OnRevoke::Remove);
    }

    #[test]
    fn bad_values_name_what_is_accepted() {
        for (text, expected) in [
            (
                "[agent]\nrenew_before = \"120%\"\n[collaborator]",
                "between 0% and 100%",
            ),
            (
                "[agent]\nrenew_before = \"soon\"\n[collaborator]",
                "neither a share",
            ),
            (
                "[agent]\nrefresh = \"often\"\n[collaborator]",
                "is not a duration",
            ),
            (
                "[agent]\n[collaborator]\non_change = \"signal:SIGKILL\"",
                "SIGHUP, SIGUSR1",
            ),
            (
                "[agent]\n[collaborator]\non_change = \"signal:SIGTERM\"",
                "use on_change = \"restart\"",
            ),
            (
                "[agent]\n[collaborator]\non_change = \"reboot\"",
                "on_change is \"restart\"",
            ),
            ("[agent]\n[collaborator]\non_revoke = \"forget\"", "remove"),
        ] {
            let error = parse(text).err().expect(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn renewal_comes_before_expiry_and_never_at_issue() {
        let ttl = Duration::from_secs(100);
        assert_eq!(
            RenewBefore::Share(0.2).renew_after(ttl),
            Duration::from_secs(80)
        );
        assert_eq!(
            RenewBefore::Ahead(Duration::from_secs(30)).renew_after(ttl),
            Duration::from_secs(70)
        );
        // Ahead of more than half the TTL: half, so a 5 s token is not renewed at once.
        assert_eq!(
            RenewBefore::Ahead(Duration::from_secs(30)).renew_after(Duration::from_secs(5)),
            Duration::from_millis(2500)
        );
        for signal in WorkloadSignal::NAMES {
            let parsed = WorkloadSignal::from_name(signal).unwrap();
            assert_eq!(parsed.to_string(), signal);
            assert!(parsed.signal().as_raw() > 0);
        }
    }
}
