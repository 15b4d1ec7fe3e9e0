//! The host side of the plugin contract, generated from `wit/policy.wit`. Only this crate's
//! plugin modules see these types; everything outside speaks [`Verdict`] and friends.

// Generated from the WIT, whose own comments document every item.
#![allow(missing_docs)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { "attestgate:policy/host.log": trappable },
});

use super::verdict::{Login, Reason, Verdict};
use crate::attestation::{TokenRequest, TokenType};
use attestgate::policy::types as wit;

// What a plugin returns, moved into the host's plain types as sent: `verdict.rs` then holds
// them to the contract without depending on wasmtime's generated code.

impl From<wit::Verdict> for Verdict {
    fn from(raw: wit::Verdict) -> Self {
        Verdict {
            allow: raw.allow,
            reasons: raw
                .reasons
                .into_iter()
                .map(|r| Reason {
                    claim: r.claim,
                    passed: r.passed,
                    message: r.message,
                })
                .collect(),
            login: Login {
                role: raw.login.role,
            },
        }
    }
}

impl From<wit::AudienceRequest> for TokenRequest {
    fn from(raw: wit::AudienceRequest) -> Self {
        TokenRequest {
            audience: raw.audience,
            token_type: match raw.token_type {
                wit::TokenType::Oidc => TokenType::Oidc,
                wit::TokenType::Pki => TokenType::Pki,
            },
            nonces: raw.nonces,
        }
    }
}
