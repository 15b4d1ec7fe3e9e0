use attestgate_plugin_sdk::{
    export_policy, rules, AudienceRequest, Claims, Context, Policy, Report, Verdict,
};
use serde::Deserialize;

/// This collaborator's rules, from `plugin_config` in attestgate.toml.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    audience: String,
    projects: Vec<String>,
    image_digests: Vec<String>,
}

struct OurRules;

impl Policy for OurRules {
    type Config = Config;

    fn audience(ctx: &Context<Config>) -> Result<AudienceRequest, String> {
        Ok(AudienceRequest::oidc(&ctx.config.audience))
    }

    fn evaluate(ctx: &Context<Config>, claims: &Claims<'_>) -> Verdict {
        let mut report = Report::new();
        report.add(rules::production_only(claims));
        report.add(rules::support_attribute(claims, "STABLE"));
        report.add(rules::one_of(
            claims,
            "/submods/gce/project_id",
            &ctx.config.projects,
        ));
        report.add(rules::one_of(
            claims,
            "/submods/container/image_digest",
            &ctx.config.image_digests,
        ));
        report.verdict()
    }
}

export_policy!(OurRules);
