//! Vault's and OpenBao's JWT login roles, implemented once: what a role refuses or allows for a
//! token's claims, in the server's own words and order, and what is wrong with a role before
//! any token reaches it.
//!
//! Two programs use this crate, and they must agree with each other and with the server:
//! - the `bound-claims` and `cel-role` plugins, inside the TEE, where a collaborator's role
//!   judges the claims before the token leaves;
//! - `attestgate vault doctor`, on the collaborator's side, which lints a role and predicts a
//!   login exactly.
//!
//! The semantics were read from OpenBao's source (`internal/builtin/credential/jwt`, hashicorp/cap
//! v0.13) and measured against OpenBao 2.7.2; the host's differential tests compare the
//! predictions with real logins.
//!
//! - [`jwt`]: classic roles (`auth/<mount>/role/<name>`).
//! - [`cel`]: OpenBao's CEL roles (`auth/<mount>/cel/role/<name>`), with the `cel` feature.
//! - [`lint`]: findings about a role and its mount's configuration, without a token.
//! - [`prediction`]: what a login returns, with every reason.
//! - [`rules`]: the `confidential-space` plugin's rules, and the role that enforces the same.

#[cfg(feature = "cel")]
pub mod cel;
pub mod jwt;
pub mod lint;
pub mod lookup;
pub mod prediction;
pub mod rules;
pub mod timing;

pub use jwt::{JwtRole, TokenChecks};
pub use prediction::{Decision, Prediction, Reason};
pub use timing::Leeways;

/// The issuer of Confidential Space attestation tokens, exactly as tokens carry it (no trailing
/// slash).
pub const CONFIDENTIAL_SPACE_ISSUER: &str = "https://confidentialcomputing.googleapis.com";
