//! The rules a careful collaborator wants of a Confidential Space workload, each configurable.
//! An absent list means no restriction; every other rule is on unless switched off.

use attestgate_plugin_sdk::{
    export_policy, log, rules, AudienceRequest, Claims, Context, LogLevel, Policy, Report, Verdict,
};
use serde::Deserialize;

fn yes() -> bool {
    true
}

fn stable() -> Option<String> {
    Some("STABLE".into())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The collaborator's own audience (typically its Vault address).
    audience: String,
    /// Nonces bound into the token.
    #[serde(default)]
    nonces: Vec<String>,
    /// Handed to the exchange as the Vault role, when set.
    vault_role: Option<String>,
    #[serde(default = "yes")]
    require_production: bool,
    /// `null` switches the rule off.
    #[serde(default = "stable")]
    support_attribute: Option<String>,
    hwmodels: Option<Vec<String>>,
    swnames: Option<Vec<String>>,
    image_digests: Option<Vec<String>>,
    projects: Option<Vec<String>>,
    service_accounts: Option<Vec<String>>,
    min_swversion: Option<String>,
    #[serde(default)]
    require_tdx_uptodate: bool,
    #[serde(default)]
    require_memory_monitoring_disabled: bool,
}

struct ConfidentialSpace;

impl Policy for ConfidentialSpace {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), String> {
        if config.audience.trim().is_empty() {
            return Err("\"audience\" must be this collaborator's own audience, not empty".into());
        }
        if let Some(digest) = config
            .image_digests
            .iter()
            .flatten()
            .find(|d| !rules::is_sha256_digest(d))
        {
            return Err(format!(
                "image digest {digest:?} is not sha256:<64 lowercase hex> (check for stray spaces)"
            ));
        }
        if let Some(min) = &config.min_swversion {
            if min.trim().parse::<u64>().is_err() {
                return Err(format!(
                    "min_swversion {min:?} is not a number like \"260600\""
                ));
            }
        }
        if config.support_attribute.as_deref() == Some("LATEST") {
            log(LogLevel::Warn, "support_attribute LATEST drops off about a month after release; long-running workloads will start failing. Prefer STABLE.");
        }
        Ok(())
    }

    fn audience(ctx: &Context<Config>) -> Result<AudienceRequest, String> {
        let mut request = AudienceRequest::oidc(&ctx.config.audience);
        request.nonces = ctx.config.nonces.clone();
        Ok(request)
    }

    fn evaluate(ctx: &Context<Config>, claims: &Claims<'_>) -> Verdict {
        let config = &ctx.config;
        let mut report = Report::new();
        if config.require_production {
            report.add(rules::production_only(claims));
        }
        if let Some(attribute) = &config.support_attribute {
            report.add(rules::support_attribute(claims, attribute));
        }
        let lists = [
            ("hwmodel", &config.hwmodels),
            ("swname", &config.swnames),
            ("/submods/container/image_digest", &config.image_digests),
            ("/submods/gce/project_id", &config.projects),
            ("google_service_accounts", &config.service_accounts),
        ];
        for (key, allowed) in lists {
            if let Some(allowed) = allowed {
                report.add(rules::one_of(claims, key, allowed));
            }
        }
        if let Some(minimum) = &config.min_swversion {
            report.add(rules::min_swversion(claims, minimum));
        }
        if config.require_tdx_uptodate {
            report.add(rules::tdx_up_to_date(claims));
        }
        if config.require_memory_monitoring_disabled {
            report.add(rules::memory_monitoring_disabled(claims));
        }
        if let Some(role) = &config.vault_role {
            report.role(role);
        }
        report.verdict()
    }
}

export_policy!(ConfidentialSpace);
