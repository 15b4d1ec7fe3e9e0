//! The two ways to a collaborator's Vault token, chosen once at prepare time: JWT login with the
//! attestation token (the role from the plugin or the configuration), or the collaborator's own
//! VAULT_TOKEN unwrapped from Cloud KMS (checked with lookup-self before use).

use super::error::{Step, StepCause, StepError};
use super::report::{Route, TokenLease};
use crate::attestation::Jwt;
use crate::config::VaultConfig;
use crate::kms::KmsClient;
use crate::plugin::Verdict;
use crate::vault::{VaultClient, VaultError, VaultToken};

/// How a collaborator's secrets are reached: decided once, when the exchange is prepared, from a
/// configuration whose validation already refused a KMS section without a Vault.
pub(super) enum Connection {
    /// No Vault configured: the plugin's allow is the whole outcome.
    PolicyOnly,
    /// JWT login at the collaborator's Vault.
    JwtLogin {
        vault: VaultClient,
        config: VaultConfig,
    },
    /// The collaborator's VAULT_TOKEN, unwrapped from KMS, used at its Vault.
    Kms {
        vault: VaultClient,
        config: VaultConfig,
        kms: Box<KmsClient>,
    },
}

impl Connection {
    pub(super) fn vault(&self) -> Option<&VaultClient> {
        match self {
            Connection::PolicyOnly => None,
            Connection::JwtLogin { vault, .. } | Connection::Kms { vault, .. } => Some(vault),
        }
    }
}

/// A Vault token to read secrets with, however it was obtained.
pub(super) struct VaultAccess {
    pub(super) token: VaultToken,
    pub(super) route: Route,
    pub(super) policies: Vec<String>,
    /// False for batch tokens (Vault refuses to revoke them) and for the KMS route's token
    /// (the collaborator's own, meant to be used again).
    pub(super) revocable: bool,
    pub(super) lease: TokenLease,
}

/// JWT login at the collaborator's Vault with the role the plugin chose (or the configured one).
pub(super) async fn login_with_jwt(
    name: &str,
    vault: &VaultClient,
    vault_config: &VaultConfig,
    verdict: &Verdict,
    jwt: Jwt,
) -> Result<VaultAccess, StepError> {
    let fail = |cause| StepError::new(name, Step::VaultLogin, cause);
    let role = verdict
        .login
        .role
        .as_ref()
        .or(vault_config.role.as_ref())
        .cloned()
        .ok_or_else(|| fail(StepCause::NoRole))?;
    let login = match vault
        .login_jwt(
            &vault_config.auth_mount,
            vault_config.role_kind,
            &role,
            &jwt,
        )
        .await
    {
        Ok(login) => login,
        Err(source) => return Err(fail(StepCause::Login { role, source })),
    };
    Ok(VaultAccess {
        revocable: !login.is_batch,
        lease: TokenLease {
            ttl: std::time::Duration::from_secs(login.lease_duration),
            renewable: login.renewable,
        },
        token: login.token,
        route: Route::JwtLogin {
            role,
            kind: vault_config.role_kind,
        },
        policies: login.policies,
    })
}

/// The KMS route: STS, optional impersonation and KMS decrypt yield the VAULT_TOKEN, which
/// lookup-self then checks (an expired or revoked token is said to be one).
pub(super) async fn unwrap_with_kms(
    name: &str,
    kms: &KmsClient,
    vault: &VaultClient,
    jwt: Jwt,
) -> Result<VaultAccess, StepError> {
    let token = kms
        .unwrap_vault_token(&jwt)
        .await
        .map_err(|e| StepError::new(name, Step::Kms(e.step), StepCause::Kms(e)))?;
    let lookup = vault.lookup_self(&token).await.map_err(|e| {
        let cause = match &e {
            VaultError::Denied { status: 403, .. } => StepCause::StaleKmsToken(e),
            _ => StepCause::TokenLookup(e),
        };
        StepError::new(name, Step::TokenLookup, cause)
    })?;
    let data = &lookup["data"];
    let policies: Vec<String> = data["policies"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    tracing::info!(collaborator = %name, ?policies, ttl_s = data["ttl"].as_u64().unwrap_or(0), "VAULT_TOKEN unwrapped from KMS");
    Ok(VaultAccess {
        token,
        route: Route::Kms,
        policies,
        revocable: false,
        lease: TokenLease {
            ttl: std::time::Duration::from_secs(data["ttl"].as_u64().unwrap_or(0)),
            renewable: data["renewable"].as_bool().unwrap_or(false),
        },
    })
}
