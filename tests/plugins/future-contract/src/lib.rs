//! Built against `attestgate:policy@0.4.0`, a contract newer than the host's: the host must refuse
//! it, naming both versions.

wit_bindgen::generate!({ path: "wit", world: "plugin" });

use attestgate::policy::types::{AudienceRequest, Context, Login, TokenType, Verdict};
use exports::attestgate::policy::policy::Guest;

struct Future;

impl Guest for Future {
    fn validate_config(_ctx: Context) -> Result<(), String> {
        Ok(())
    }

    fn select_audience(_ctx: Context) -> Result<AudienceRequest, String> {
        Ok(AudienceRequest {
            audience: "https://future.example".into(),
            token_type: TokenType::Oidc,
            nonces: vec![],
        })
    }

    fn evaluate(_ctx: Context, _claims: String) -> Verdict {
        Verdict {
            allow: true,
            reasons: vec![],
            login: Login { role: None },
        }
    }
}

export!(Future);
