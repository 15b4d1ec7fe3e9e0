//! What `GET /healthz` reports: per collaborator, whether its secrets are current, when it last
//! succeeded, when it acts next, when its secrets expire and its last error. Never a secret: the
//! last error is the exchange's own message, which names steps, paths and Vault's words, and
//! already has anything attestgate sent scrubbed from what servers echo.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// One collaborator's state, as the health endpoint shows it.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct CollaboratorHealth {
    /// Its last attempt succeeded and nothing it delivered has expired.
    pub current: bool,
    /// When its secrets were last read (Unix seconds).
    pub last_success: Option<u64>,
    /// When the agent acts for it next (Unix seconds).
    pub next_refresh: Option<u64>,
    /// When the secrets it holds expire (Unix seconds); none for static secrets.
    pub expires: Option<u64>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<LastError>,
}

/// A failure, as the health endpoint shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LastError {
    /// The step that failed (`vault login`, `policy`, …).
    pub step: String,
    /// The whole error chain.
    pub message: String,
    /// When (Unix seconds).
    pub at: u64,
}

/// Every collaborator's health, shared by the collaborators' tasks and the HTTP endpoint.
#[derive(Debug, Clone, Default)]
pub struct Health {
    collaborators: Arc<Mutex<BTreeMap<String, CollaboratorHealth>>>,
}

/// The body of `GET /healthz`.
#[derive(Debug, Serialize)]
pub struct HealthReport {
    /// `"ok"` when every collaborator is current, else `"degraded"`.
    pub status: &'static str,
    /// By collaborator name.
    pub collaborators: BTreeMap<String, CollaboratorHealth>,
}

impl Health {
    /// Changes one collaborator's entry (creating it).
    pub fn update(&self, collaborator: &str, change: impl FnOnce(&mut CollaboratorHealth)) {
        let mut all = self.collaborators.lock().unwrap_or_else(|p| p.into_inner());
        change(all.entry(collaborator.to_owned()).or_default());
    }

    /// Drops a collaborator that a reload removed.
    pub fn remove(&self, collaborator: &str) {
        let mut all = self.collaborators.lock().unwrap_or_else(|p| p.into_inner());
        all.remove(collaborator);
    }

    /// A snapshot; healthy when there is at least one collaborator and every one is current.
    pub fn report(&self) -> (bool, HealthReport) {
        let all = self
            .collaborators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let healthy = !all.is_empty() && all.values().all(|c| c.current);
        (
            healthy,
            HealthReport {
                status: if healthy { "ok" } else { "degraded" },
                collaborators: all,
            },
        )
    }
}

/// `at` as Unix seconds (an [`Instant`] has no calendar meaning of its own).
pub fn unix_seconds(at: Instant) -> u64 {
    let now = Instant::now();
    let wall = if at >= now {
        SystemTime::now().checked_add(at - now)
    } else {
        SystemTime::now().checked_sub(now - at)
    };
    wall.and_then(|wall| wall.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_collaborator_behind_degrades_the_whole() {
        let health = Health::default();
        assert!(!health.report().0, "nothing delivered yet is not healthy");
        health.update("bank-a", |c| c.current = true);
        health.update("bank-b", |c| c.current = true);
        assert!(health.report().0);
        health.update("bank-b", |c| {
            c.current = false;
            c.consecutive_failures = 1;
        });
        let (healthy, report) = health.report();
        assert!(!healthy);
        assert_eq!(report.status, "degraded");
        assert!(report.collaborators["bank-a"].current);
        health.remove("bank-b");
        assert!(health.report().0);
    }

    #[test]
    fn instants_map_to_the_wall_clock() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let later = unix_seconds(Instant::now() + std::time::Duration::from_secs(100));
        assert!((now + 99..=now + 101).contains(&later), "{now} {later}");
    }
}
