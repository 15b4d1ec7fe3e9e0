//! The token checks OpenBao's validator (hashicorp/cap's `jwt.Validator`) runs before a role's
//! own rules: issuer, subject, audience, then the times with the role's leeways.
//!
//! The leeways do not mean what their names suggest. `clock_skew_leeway` widens `nbf`, `exp`
//! and `iat` (0 means the default 60 s, a negative value none). `expiration_leeway` and
//! `not_before_leeway` (0 meaning 150 s) are used only to invent a missing `exp` or `nbf`; they
//! never extend a token's own `exp`. A token without `exp` is accepted if it has `iat` or `nbf`.

use crate::prediction::Trace;
use serde_json::Value;

const DEFAULT_CLOCK_SKEW: i64 = 60;
const DEFAULT_LEEWAY: i64 = 150;

/// A role's three leeways, in seconds, as stored (0 = OpenBao's default, negative = none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Leeways {
    /// `clock_skew_leeway`.
    pub clock_skew: i64,
    /// `expiration_leeway`.
    pub expiration: i64,
    /// `not_before_leeway`.
    pub not_before: i64,
}

fn effective(value: i64, default: i64) -> i64 {
    match value {
        0 => default,
        v if v < 0 => 0,
        v => v,
    }
}

/// A time claim as go-jose's `NumericDate` reads it: whole seconds (`Ok(None)` when absent,
/// `Err` when it is not a number, which go-jose refuses while decoding the claims).
fn numeric_date(claims: &Value, name: &str) -> Result<Option<i64>, ()> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64().map(|v| v as i64)),
        Some(_) => Err(()),
    }
}

impl Leeways {
    /// The leeway `clock_skew_leeway` amounts to, in seconds.
    pub fn clock_skew(&self) -> i64 {
        effective(self.clock_skew, DEFAULT_CLOCK_SKEW)
    }

    /// Records the time checks, each a stage of its own, in the validator's order.
    pub(crate) fn check(&self, claims: &Value, now: i64, trace: &mut Trace) {
        let mut dates = [None; 3];
        for (slot, name) in dates.iter_mut().zip(["iat", "nbf", "exp"]) {
            match numeric_date(claims, name) {
                Ok(value) => *slot = value,
                Err(()) => {
                    trace.fail(
                        Some(&format!("/{name}")),
                        format!("error validating token: the {name} claim is not a number, and OpenBao refuses to decode the token's claims"),
                    );
                    trace.end_stage();
                    return;
                }
            }
        }
        let [iat, nbf, exp] = dates;
        if iat.is_none() && nbf.is_none() && exp.is_none() {
            trace.fail(None, "error validating token: no issued at (iat), not before (nbf), or expiration time (exp) claims in token");
            trace.end_stage();
            return;
        }
        let exp = exp.unwrap_or_else(|| {
            iat.max(nbf)
                .unwrap_or(0)
                .saturating_add(effective(self.expiration, DEFAULT_LEEWAY))
        });
        let nbf = nbf
            .or(iat)
            .unwrap_or(exp.saturating_sub(effective(self.not_before, DEFAULT_LEEWAY)));
        let skew = self.clock_skew();
        if now.saturating_add(skew) < nbf {
            trace.fail(
                Some("/nbf"),
                "error validating token: invalid not before (nbf) claim: token not yet valid",
            );
        } else {
            trace.pass(
                Some("/nbf"),
                format!("not before {nbf}, with {skew} s of clock skew"),
            );
        }
        trace.end_stage();
        if now.saturating_sub(skew) > exp {
            trace.fail(
                Some("/exp"),
                "error validating token: invalid expiration time (exp) claim: token is expired",
            );
        } else {
            trace.pass(
                Some("/exp"),
                format!("expires at {exp}, with {skew} s of clock skew"),
            );
        }
        trace.end_stage();
        if let Some(iat) = iat {
            if now.saturating_add(skew) < iat {
                trace.fail(
                    Some("/iat"),
                    "error validating token: invalid issued at (iat) claim: token issued in the future",
                );
            } else {
                trace.pass(Some("/iat"), "issued in the past");
            }
            trace.end_stage();
        }
    }
}
