//! Write attestgate policy plugins in Rust.
//!
//! A plugin decides two things for one collaborator: which audience its attestation token carries,
//! and whether the token's claims satisfy the collaborator's rules. Implement [`Policy`] and export
//! it with [`export_policy!`]:
//!
//! ```no_run
//! use attestgate_plugin_sdk::{export_policy, rules, AudienceRequest, Claims, Context, Policy, Report, Verdict};
//!
//! #[derive(serde::Deserialize)]
//! struct Config { audience: String, projects: Vec<String> }
//!
//! struct OnlyOurProject;
//!
//! impl Policy for OnlyOurProject {
//!     type Config = Config;
//!     fn audience(ctx: &Context<Config>) -> Result<AudienceRequest, String> {
//!         Ok(AudienceRequest::oidc(&ctx.config.audience))
//!     }
//!     fn evaluate(ctx: &Context<Config>, claims: &Claims<'_>) -> Verdict {
//!         let mut report = Report::new();
//!         report.add(rules::production_only(claims));
//!         report.add(rules::one_of(claims, "/submods/gce/project_id", &ctx.config.projects));
//!         report.verdict()
//!     }
//! }
//!
//! export_policy!(OnlyOurProject);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`.

pub mod claims;
pub mod rules;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "attestgate_plugin_sdk::bindings",
    });
}

pub use bindings::attestgate::policy::host::LogLevel;
pub use bindings::attestgate::policy::types::{AudienceRequest, Reason, TokenType, Verdict};
pub use claims::Claims;
pub use rules::Report;

/// The contract version this SDK builds plugins against.
pub const CONTRACT_VERSION: &str = "0.1.0";

/// Who a call is for, with the collaborator's configuration already parsed.
#[derive(Debug, Clone)]
pub struct Context<C> {
    pub collaborator: String,
    pub config: C,
}

/// A collaborator's rules.
pub trait Policy {
    /// The collaborator's `plugin_config`, parsed from JSON. Use `#[serde(deny_unknown_fields)]`
    /// so a misspelled key is an error instead of a silently missing rule.
    type Config: serde::de::DeserializeOwned;

    /// Extra checks on the configuration, run once when the host loads the plugin.
    fn validate(_config: &Self::Config) -> Result<(), String> {
        Ok(())
    }

    /// The token this collaborator wants: its own audience, and optionally nonces.
    fn audience(ctx: &Context<Self::Config>) -> Result<AudienceRequest, String>;

    /// Judges verified claims. Report every rule, passed or failed.
    fn evaluate(ctx: &Context<Self::Config>, claims: &Claims<'_>) -> Verdict;
}

impl AudienceRequest {
    /// An OIDC token for `audience`, without nonces.
    pub fn oidc(audience: impl Into<String>) -> Self {
        AudienceRequest {
            audience: audience.into(),
            token_type: TokenType::Oidc,
            nonces: Vec::new(),
        }
    }
}

impl Verdict {
    /// A deny with one failed reason.
    pub fn deny(claim: impl Into<String>, message: impl Into<String>) -> Self {
        Verdict {
            allow: false,
            reasons: vec![Reason {
                claim: claim.into(),
                passed: false,
                message: message.into(),
            }],
            login: Vec::new(),
        }
    }
}

/// Writes a line to the host's log (capped by the host; flooding it is a deny).
pub fn log(level: LogLevel, message: &str) {
    bindings::attestgate::policy::host::log(level, message);
}

/// The moment the token is checked at, Unix seconds. Use it instead of a clock.
pub fn verification_time() -> i64 {
    bindings::attestgate::policy::host::verification_time()
}

#[doc(hidden)]
pub fn __context<C: serde::de::DeserializeOwned>(
    ctx: bindings::attestgate::policy::types::Context,
) -> Result<Context<C>, String> {
    let config = serde_json::from_str(&ctx.config)
        .map_err(|e| format!("invalid plugin configuration: {e}"))?;
    Ok(Context {
        collaborator: ctx.collaborator,
        config,
    })
}

/// Exports a [`Policy`] implementation as the plugin's `policy` interface.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        struct __AttestgatePolicyExport;

        impl $crate::bindings::exports::attestgate::policy::policy::Guest for __AttestgatePolicyExport {
            fn validate_config(ctx: $crate::bindings::attestgate::policy::types::Context) -> Result<(), String> {
                let ctx = $crate::__context::<<$policy as $crate::Policy>::Config>(ctx)?;
                <$policy as $crate::Policy>::validate(&ctx.config)
            }

            fn select_audience(
                ctx: $crate::bindings::attestgate::policy::types::Context,
            ) -> Result<$crate::AudienceRequest, String> {
                let ctx = $crate::__context::<<$policy as $crate::Policy>::Config>(ctx)?;
                <$policy as $crate::Policy>::audience(&ctx)
            }

            fn evaluate(ctx: $crate::bindings::attestgate::policy::types::Context, claims: String) -> $crate::Verdict {
                let ctx = match $crate::__context::<<$policy as $crate::Policy>::Config>(ctx) {
                    Ok(ctx) => ctx,
                    Err(message) => return $crate::Verdict::deny("", message),
                };
                match $crate::Claims::parse(&claims) {
                    Ok(claims) => <$policy as $crate::Policy>::evaluate(&ctx, &claims),
                    Err(message) => $crate::Verdict::deny("", message),
                }
            }
        }

        $crate::bindings::__export_plugin_world!(__AttestgatePolicyExport with_types_in $crate::bindings);
    };
}
