//! Built against `attestgate:policy@0.1.0`, an earlier contract than the host's (its WIT verbatim in
//! `wit/`): the host must refuse it, naming both versions. It uses what 0.2.0 changed (the
//! `verification-time` import, an empty reason claim, login as key-value pairs), so a host that
//! linked it anyway would fail on those instead of saying which version to rebuild against.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use attestgate::policy::host::verification_time;
use attestgate::policy::types::{AudienceRequest, Context, Reason, TokenType, Verdict};
use exports::attestgate::policy::policy::Guest;

struct Old;

impl Guest for Old {
    fn validate_config(_ctx: Context) -> Result<(), String> {
        Ok(())
    }

    fn select_audience(_ctx: Context) -> Result<AudienceRequest, String> {
        Ok(AudienceRequest {
            audience: "https://old.example".into(),
            token_type: TokenType::Oidc,
            nonces: vec![],
        })
    }

    fn evaluate(_ctx: Context, _claims: String) -> Verdict {
        Verdict {
            allow: true,
            reasons: vec![Reason {
                claim: String::new(),
                passed: true,
                message: format!("checked at {}", verification_time()),
            }],
            login: vec![("role".into(), "old-role".into())],
        }
    }
}

export!(Old);
