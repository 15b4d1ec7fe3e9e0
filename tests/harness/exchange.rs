//! Running an exchange in this process, from a written configuration.

use attestgate::config::{Config, RunKind};
use attestgate::exchange::{Exchange, ExchangeReport, StepError};
use std::path::Path;

/// Loads the configuration at `path` and prepares its exchange.
pub async fn prepare(path: &Path) -> Exchange {
    let config = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    Exchange::start(&config, RunKind::OneShot)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Prepares and runs the exchange configured at `path`.
pub async fn run(path: &Path) -> ExchangeReport {
    prepare(path).await.run().await
}

pub fn assert_succeeded(report: &ExchangeReport) {
    assert!(
        report.all_succeeded(),
        "{:?}",
        report.failures().collect::<Vec<_>>()
    );
}

/// A step's cause with its whole chain: where a test checks what a *server* said (Vault's or
/// Google's own words), text is the only kind there is.
pub fn cause(error: &StepError) -> String {
    attestgate::error_chain(&*error.cause)
}
