//! Why the agent could not start or go on, typed; each cause kept as the source.

use crate::config::ConfigError;
use crate::exchange::{DeliveryError, EnvironmentError, PrepareError};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the agent could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration does not load.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A plugin, verifier or Vault client cannot be set up.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// `[agent] listen` cannot be bound.
    #[error("cannot serve /healthz and /metrics on {address}: {source}")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// What binding said.
        #[source]
        source: std::io::Error,
    },
    /// A secret cannot go into the workload's environment; nothing was delivered.
    #[error(transparent)]
    Environment(#[from] EnvironmentError),
    /// A collaborator's variable would replace one the workload already has.
    #[error("collaborator \"{collaborator}\": {variable} is already set in the workload's environment; a collaborator's secret may not replace it; nothing was delivered")]
    VariableTaken {
        /// Whose secret.
        collaborator: String,
        /// The variable.
        variable: String,
    },
    /// The first delivery failed; nothing was left behind.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The workload cannot be started; the secret files were removed and tokens revoked.
    #[error("cannot start the workload {}: {source}; the secret files were removed and the Vault tokens revoked", program.display())]
    Start {
        /// The program.
        program: PathBuf,
        /// What spawning said.
        #[source]
        source: std::io::Error,
    },
}
