//! When a collaborator's next step is due, and what it is: pure arithmetic on the moments its
//! Vault token and leases were obtained, so that it is tested without clocks or servers.
//!
//! - Everything is acted on `renew_before` ahead of its expiry, and at the latest after `refresh`.
//! - A renewable token or lease is renewed; anything else is re-exchanged (a fresh attestation
//!   token, a new login, the secrets read again).
//! - Each due time is brought forward by up to 10% of its interval (jitter), so collaborators
//!   and agents started together do not hit their Vaults in step.
//! - After a failure the next attempt waits `backoff_min`, doubling per failure up to
//!   `backoff_max`, with jitter: never a tight loop, whatever Vault answers.

use crate::config::RenewBefore;
use std::time::{Duration, Instant};

/// Something with a lifetime the agent tracks: a Vault token or a secret's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// When it was obtained or last renewed.
    pub since: Instant,
    /// Its TTL at that moment.
    pub ttl: Duration,
    /// Whether it may be renewed.
    pub renewable: bool,
}

/// The longest TTL the schedule takes from a server: a hostile Vault's `lease_duration` of
/// 2^64 - 1 seconds must not overflow the clock arithmetic (it would panic the collaborator's
/// task, and its secrets would never be refreshed, judged or removed again).
pub const MAX_TTL: Duration = Duration::from_secs(366 * 86_400);

impl Lifetime {
    fn ttl(&self) -> Duration {
        self.ttl.min(MAX_TTL)
    }

    /// When it expires.
    pub fn expires(&self) -> Instant {
        self.since + self.ttl()
    }

    /// When to act on it: `renew_before` ahead of expiry, brought forward by `jitter` (0 to 1)
    /// times a tenth of the interval.
    fn due(&self, renew_before: RenewBefore, jitter: f64) -> Instant {
        let after = renew_before.renew_after(self.ttl());
        self.since + after.saturating_sub(after.mul_f64(0.1 * jitter.clamp(0.0, 1.0)))
    }
}

/// What the agent does next for one collaborator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A whole exchange: fresh attestation token, login, secrets read and delivered.
    Exchange,
    /// `renew-self` on the held Vault token (its leases are renewed with it).
    RenewToken,
    /// Renew the secret lease with this index.
    RenewLease(usize),
}

/// The next action and when it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// When.
    pub at: Instant,
    /// What.
    pub action: Action,
}

/// What the schedule looks at for one collaborator.
#[derive(Debug, Clone)]
pub struct Holding {
    /// When its secrets were last read.
    pub refreshed: Instant,
    /// The Vault token held for its leases (none: policy-only, or no TTL).
    pub token: Option<Lifetime>,
    /// Its secrets' leases, in secret order.
    pub leases: Vec<Lifetime>,
    /// Vault refused `renew-self` once: re-exchange instead of renewing again (a policy without
    /// `auth/token/renew-self` must not turn into a renewal loop).
    pub token_renewal_refused: bool,
}

/// The schedule's settings.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// `[agent] refresh`.
    pub refresh: Duration,
    /// `[agent] renew_before`.
    pub renew_before: RenewBefore,
}

/// The earliest due action. `jitter` (0 to 1) is drawn per plan by the caller.
pub fn next(holding: &Holding, timing: Timing, jitter: f64) -> Plan {
    let refresh = timing.refresh;
    let mut plan = Plan {
        at: holding.refreshed + refresh.saturating_sub(refresh.mul_f64(0.1 * jitter)),
        action: Action::Exchange,
    };
    let mut consider = |at: Instant, action: Action| {
        if at < plan.at {
            plan = Plan { at, action };
        }
    };
    if let Some(token) = holding.token.filter(|t| !t.ttl.is_zero()) {
        let renew = token.renewable && !holding.token_renewal_refused;
        consider(
            token.due(timing.renew_before, jitter),
            if renew {
                Action::RenewToken
            } else {
                Action::Exchange
            },
        );
    }
    for (index, lease) in holding.leases.iter().enumerate() {
        consider(
            lease.due(timing.renew_before, jitter),
            if lease.renewable {
                Action::RenewLease(index)
            } else {
                Action::Exchange
            },
        );
    }
    plan
}

/// When the secrets held stop being valid: the earliest lease expiry, and the token's when
/// there are leases (Vault revokes a token's leases with it). `None`: nothing expires (static
/// secrets, or no Vault).
pub fn expiry(holding: &Holding) -> Option<Instant> {
    let leases = holding.leases.iter().map(Lifetime::expires).min()?;
    let token = holding
        .token
        .filter(|t| !t.ttl.is_zero())
        .map(|t| t.expires());
    Some(token.map_or(leases, |token| token.min(leases)))
}

/// A renewal that no longer extends the lifetime usefully (Vault capped it at the token's or
/// role's maximum TTL): better to re-exchange now than to renew in ever shorter steps.
pub fn renewal_exhausted(before: Lifetime, renewed_ttl: Duration) -> bool {
    renewed_ttl < before.ttl / 2
}

/// The wait before attempt `failures + 1` after `failures` consecutive failures (at least 1):
/// `min` doubled per failure, capped at `max`, then cut by up to a quarter (`jitter`, 0 to 1)
/// so that agents failing together spread out.
pub fn backoff(failures: u32, min: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    let base = min.saturating_mul(1u32 << doublings).min(max);
    base.saturating_sub(base.mul_f64(0.25 * jitter.clamp(0.0, 1.0)))
        .max(min.min(max))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    fn timing() -> Timing {
        Timing {
            refresh: S(300),
            renew_before: RenewBefore::Share(0.2),
        }
    }

    fn holding(start: Instant) -> Holding {
        Holding {
            refreshed: start,
            token: None,
            leases: Vec::new(),
            token_renewal_refused: false,
        }
    }

    #[test]
    fn static_secrets_are_refreshed_on_the_interval() {
        let start = Instant::now();
        let plan = next(&holding(start), timing(), 0.0);
        assert_eq!(
            plan,
            Plan {
                at: start + S(300),
                action: Action::Exchange
            }
        );
        assert_eq!(expiry(&holding(start)), None);
    }

    #[test]
    fn a_token_that_cannot_be_renewed_is_replaced_before_it_expires() {
        let start = Instant::now();
        let mut h = holding(start);
        h.token = Some(Lifetime {
            since: start,
            ttl: S(60),
            renewable: false,
        });
        let plan = next(&h, timing(), 0.0);
        assert_eq!(
            plan,
            Plan {
                at: start + S(48),
                action: Action::Exchange
            }
        );
        // Jitter only ever brings it forward, by at most a tenth.
        let jittered = next(&h, timing(), 1.0);
        assert!(jittered.at < plan.at && jittered.at >= start + S(48) - S(5));
    }

    #[test]
    fn renewable_tokens_and_leases_are_renewed_earliest_first() {
        let start = Instant::now();
        let mut h = holding(start);
        h.token = Some(Lifetime {
            since: start,
            ttl: S(100),
            renewable: true,
        });
        h.leases = vec![
            Lifetime {
                since: start,
                ttl: S(50),
                renewable: true,
            },
            Lifetime {
                since: start,
                ttl: S(20),
                renewable: false,
            },
        ];
        assert_eq!(
            next(&h, timing(), 0.0).action,
            Action::Exchange,
            "the 20 s lease first, and it cannot be renewed"
        );
        h.leases[1].renewable = true;
        assert_eq!(next(&h, timing(), 0.0).action, Action::RenewLease(1));
        h.leases.clear();
        assert_eq!(
            next(&h, timing(), 0.0),
            Plan {
                at: start + S(80),
                action: Action::RenewToken
            }
        );
        h.token_renewal_refused = true;
        assert_eq!(next(&h, timing(), 0.0).action, Action::Exchange);
    }

    #[test]
    fn secrets_expire_with_their_earliest_lease_or_their_token() {
        let start = Instant::now();
        let mut h = holding(start);
        h.token = Some(Lifetime {
            since: start,
            ttl: S(30),
            renewable: true,
        });
        assert_eq!(
            expiry(&h),
            None,
            "a token alone leaves static secrets valid"
        );
        h.leases = vec![Lifetime {
            since: start,
            ttl: S(100),
            renewable: true,
        }];
        assert_eq!(expiry(&h), Some(start + S(30)));
        h.token = None;
        assert_eq!(expiry(&h), Some(start + S(100)));
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_never_drops_below_the_minimum() {
        let (min, max) = (S(1), S(120));
        let waits: Vec<Duration> = (1..=10).map(|n| backoff(n, min, max, 0.0)).collect();
        assert_eq!(waits[..4], [S(1), S(2), S(4), S(8)]);
        assert_eq!(waits[9], S(120));
        assert_eq!(backoff(u32::MAX, min, max, 0.0), S(120));
        for n in 1..40 {
            let wait = backoff(n, min, max, 1.0);
            assert!(wait >= min && wait <= max, "{n}: {wait:?}");
        }
    }

    #[test]
    fn a_hostile_ttl_does_not_overflow_the_clock() {
        let start = Instant::now();
        let mut h = holding(start);
        let forever = Duration::from_secs(u64::MAX);
        h.token = Some(Lifetime {
            since: start,
            ttl: forever,
            renewable: true,
        });
        h.leases = vec![Lifetime {
            since: start,
            ttl: forever,
            renewable: false,
        }];
        assert_eq!(expiry(&h), Some(start + MAX_TTL));
        assert!(next(&h, timing(), 1.0).at <= start + S(300));
        assert!(super::super::health::unix_seconds(start + MAX_TTL) > 0);
    }

    #[test]
    fn a_capped_renewal_counts_as_exhausted() {
        let token = Lifetime {
            since: Instant::now(),
            ttl: S(60),
            renewable: true,
        };
        assert!(!renewal_exhausted(token, S(60)));
        assert!(renewal_exhausted(token, S(12)));
    }
}
