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
//! struct Config { audience: String, projects: Vec<String>, vault_role: Option<String> }
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
//!         // A rule about the moment of checking, not about one claim: its reason names no claim.
//!         if ctx.verification_time > 1_900_000_000 {
//!             report.fail(None, "the collaboration agreement ended at 1900000000");
//!         }
//!         if let Some(role) = &ctx.config.vault_role {
//!             report.role(role);
//!         }
//!         report.verdict()
//!     }
//! }
//!
//! export_policy!(OnlyOurProject);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release`, and test the rules natively with
//! plain `cargo test` through [`testing`].

pub mod claims;
pub mod rules;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "plugin",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "attestgate_plugin_sdk::bindings",
        // So tests can compare verdicts and audience requests whole.
        additional_derives: [PartialEq, Eq],
    });
}

use bindings::attestgate::policy::types as wit;

pub use bindings::attestgate::policy::host::LogLevel;
pub use bindings::attestgate::policy::types::{
    AudienceRequest, Login, Reason, TokenType, UnixSeconds, Verdict,
};
pub use claims::Claims;
pub use rules::Report;

/// The contract version this SDK builds plugins against: the version on the `package` line of
/// `wit/policy.wit` (a test keeps the two equal).
pub const CONTRACT_VERSION: &str = "0.3.0";

/// Who a call is for, with the collaborator's configuration already parsed.
#[derive(Debug, Clone)]
pub struct Context<C> {
    /// The collaborator's name, from the host configuration.
    pub collaborator: String,
    /// The collaborator's `plugin_config`, parsed.
    pub config: C,
    /// The moment the token is checked at. Time-based rules use this, never a clock of their own,
    /// so that a decision can be reproduced (`attestgate verify --at`) and tested. In
    /// [`Policy::audience`] it is the current time.
    pub verification_time: UnixSeconds,
    /// The Vault role the host logs in with unless the verdict names another (the collaborator's
    /// configured `role`); `None` when the collaborator has no role login. For messages that
    /// speak Vault's language.
    pub vault_role: Option<String>,
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
    /// A deny with one failed reason about `claim` (a JSON pointer), or about no single claim.
    pub fn deny(claim: Option<&str>, message: impl Into<String>) -> Self {
        Verdict {
            allow: false,
            reasons: vec![Reason {
                claim: claim.map(rules::pointer),
                passed: false,
                message: message.into(),
            }],
            login: Login { role: None },
        }
    }
}

/// Writes a line to the host's log (capped by the host; flooding it is a deny).
///
/// Compiled natively, as in `cargo test`, there is no host: the line goes to stderr, and
/// [`testing::take_log`] returns it.
pub fn log(level: LogLevel, message: &str) {
    #[cfg(target_arch = "wasm32")]
    bindings::attestgate::policy::host::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    testing::record_log(level, message);
}

/// The `policy` interface's three calls, from the contract's types to a [`Policy`] and back.
/// [`export_policy!`] and [`testing`] both go through here, so a native test runs a policy exactly
/// as the plugin does.
#[doc(hidden)]
pub mod dispatch {
    use super::{wit, AudienceRequest, Claims, Context, Policy, Verdict};

    fn context<C: serde::de::DeserializeOwned>(ctx: wit::Context) -> Result<Context<C>, String> {
        let config = serde_json::from_str(&ctx.config)
            .map_err(|e| format!("invalid plugin configuration: {e}"))?;
        Ok(Context {
            collaborator: ctx.collaborator,
            config,
            verification_time: ctx.verification_time,
            vault_role: ctx.vault_role,
        })
    }

    /// `validate-config`: the configuration parses, and the policy's own checks pass.
    pub fn validate_config<P: Policy>(ctx: wit::Context) -> Result<(), String> {
        let ctx = context::<P::Config>(ctx)?;
        P::validate(&ctx.config)
    }

    /// `select-audience`.
    pub fn select_audience<P: Policy>(ctx: wit::Context) -> Result<AudienceRequest, String> {
        P::audience(&context::<P::Config>(ctx)?)
    }

    /// `evaluate`: a configuration or claims that do not parse are a deny naming no claim.
    pub fn evaluate<P: Policy>(ctx: wit::Context, claims: &str) -> Verdict {
        let ctx = match context::<P::Config>(ctx) {
            Ok(ctx) => ctx,
            Err(message) => return Verdict::deny(None, message),
        };
        match Claims::parse(claims) {
            Ok(claims) => P::evaluate(&ctx, &claims),
            Err(message) => Verdict::deny(None, message),
        }
    }
}

/// Exports a [`Policy`] implementation as the plugin's `policy` interface.
#[macro_export]
macro_rules! export_policy {
    ($policy:ty) => {
        struct __AttestgatePolicyExport;

        impl $crate::bindings::exports::attestgate::policy::policy::Guest for __AttestgatePolicyExport {
            fn validate_config(ctx: $crate::bindings::attestgate::policy::types::Context) -> Result<(), String> {
                $crate::dispatch::validate_config::<$policy>(ctx)
            }

            fn select_audience(
                ctx: $crate::bindings::attestgate::policy::types::Context,
            ) -> Result<$crate::AudienceRequest, String> {
                $crate::dispatch::select_audience::<$policy>(ctx)
            }

            fn evaluate(ctx: $crate::bindings::attestgate::policy::types::Context, claims: String) -> $crate::Verdict {
                $crate::dispatch::evaluate::<$policy>(ctx, &claims)
            }
        }

        $crate::bindings::__export_plugin_world!(__AttestgatePolicyExport with_types_in $crate::bindings);
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_version_is_the_one_in_the_wit_package_line() {
        let wit = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../wit/policy.wit"));
        let version = wit
            .lines()
            .find_map(|line| line.trim().strip_prefix("package attestgate:policy@"))
            .and_then(|rest| rest.strip_suffix(';'));
        assert_eq!(version, Some(CONTRACT_VERSION));
    }

    #[test]
    fn a_deny_names_its_claim_as_a_pointer_or_none() {
        let deny = Verdict::deny(Some("hwmodel"), "wrong hardware");
        assert_eq!(deny.reasons[0].claim.as_deref(), Some("/hwmodel"));
        assert!(!deny.allow && !deny.reasons[0].passed);
        assert_eq!(Verdict::deny(None, "no claims").reasons[0].claim, None);
    }
}
