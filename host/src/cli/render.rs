//! Human-readable summaries of tokens.

use attestgate::attestation::Claims;
use attestgate::attestation::Header;
use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

pub fn timestamp(seconds: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(seconds.max(0) as u64))
        .to_string()
}

fn time(seconds: Option<i64>, now: i64) -> String {
    let Some(seconds) = seconds else {
        return "-".into();
    };
    let when = timestamp(seconds);
    let delta = seconds - now;
    let relative = if delta >= 0 {
        format!(
            "in {}",
            humantime::format_duration(Duration::from_secs(delta as u64))
        )
    } else {
        format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs((-delta) as u64))
        )
    };
    format!("{when} ({relative})")
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

fn opt(value: &Option<String>) -> &str {
    value.as_deref().unwrap_or("-")
}

pub fn summary(header: &Header, claims: &Claims, now: i64) -> String {
    let mut out = String::new();
    let debug_status = match claims.dbgstat.as_deref() {
        Some(s) if claims.is_production() => format!("production ({s})"),
        Some(s) => format!("DEBUG IMAGE ({s})"),
        None => "unknown (no dbgstat)".into(),
    };
    let support = match &claims.confidential_space.support_attributes {
        Some(attributes) => list(attributes),
        None => "absent (debug images carry none)".into(),
    };
    let tdx = claims
        .tdx
        .iter()
        .map(|t| format!("{} ({})", opt(&t.tcb_status), opt(&t.tcb_date)))
        .collect::<Vec<_>>();
    let signing = if header.x5c.is_empty() {
        format!("{} kid={}", header.alg, opt(&header.kid))
    } else {
        format!(
            "{} with an x5c chain of {} certificates (PKI token)",
            header.alg,
            header.x5c.len()
        )
    };
    let rows: Vec<(&str, String)> = vec![
        ("issuer", opt(&claims.issuer).into()),
        ("audience", list(&claims.audiences)),
        ("subject", opt(&claims.subject).into()),
        ("signed", signing),
        ("issued at", time(claims.issued_at, now)),
        ("not before", time(claims.not_before, now)),
        ("expires", time(claims.expires_at, now)),
        ("nonces", list(&claims.nonces)),
        ("hardware", opt(&claims.hwmodel).into()),
        (
            "software",
            format!("{} {}", opt(&claims.swname), list(&claims.swversion)),
        ),
        ("debug status", debug_status),
        ("support attrs", support),
        ("image", opt(&claims.container.image_reference).into()),
        ("image digest", opt(&claims.container.image_digest).into()),
        ("project", opt(&claims.gce.project_id).into()),
        (
            "instance",
            format!(
                "{} in {}",
                opt(&claims.gce.instance_name),
                opt(&claims.gce.zone)
            ),
        ),
        ("service accts", list(&claims.google_service_accounts)),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "  {label:<14} {value}");
    }
    if !tdx.is_empty() {
        let _ = writeln!(out, "  {:<14} {}", "tdx tcb", tdx.join(", "));
    }
    if let Some(memory) = claims.confidential_space.memory_monitoring_enabled {
        let _ = writeln!(
            out,
            "  {:<14} {}",
            "mem monitoring",
            if memory { "enabled" } else { "disabled" }
        );
    }
    out
}

/// One checked rule, as `plugin test` and `verify --config` print it.
pub fn reason_line(reason: &attestgate::plugin::Reason) -> String {
    let mark = if reason.passed { "pass" } else { "FAIL" };
    format!("{mark}  {reason}")
}
