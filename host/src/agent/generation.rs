//! A configuration and the exchange prepared from it: what every collaborator's task reads, and
//! what a reload replaces, both at once.

use super::error::AgentError;
use crate::config::{CollaboratorConfig, Config, RunKind};
use crate::exchange::Exchange;
use std::sync::Arc;

/// A configuration and the exchange prepared from it; a reload replaces both at once.
pub struct Generation {
    /// The configuration.
    pub config: Arc<Config>,
    /// The plugins loaded and clients built from it.
    pub exchange: Arc<Exchange>,
}

impl Generation {
    pub(super) async fn load(path: &std::path::Path) -> Result<Generation, AgentError> {
        let config = Config::load(path)?;
        let exchange = Exchange::start(&config, RunKind::LongRunning).await?;
        Ok(Generation {
            config: Arc::new(config),
            exchange: Arc::new(exchange),
        })
    }

    pub(super) fn index_of(&self, name: &str) -> Option<usize> {
        self.exchange.collaborators().position(|c| c.name == name)
    }

    pub(super) fn collaborator(&self, index: usize) -> Option<&CollaboratorConfig> {
        self.exchange.collaborators().nth(index)
    }
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("config", &self.config.path)
            .finish_non_exhaustive()
    }
}
