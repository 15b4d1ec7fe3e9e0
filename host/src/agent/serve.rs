//! The agent's local HTTP endpoint (`[agent] listen`): `GET /healthz` and `GET /metrics`.
//! Read-only, and nothing it serves is a secret; it still belongs on loopback or a port the
//! launch policy keeps private, since collaborator names and failures are the operator's
//! business.

use super::health::Health;
use super::metrics::SharedMetrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use std::net::SocketAddr;

#[derive(Clone)]
struct Shared {
    health: Health,
    metrics: SharedMetrics,
}

async fn get_healthz(State(shared): State<Shared>) -> impl IntoResponse {
    let (healthy, report) = shared.health.report();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report))
}

async fn get_metrics(State(shared): State<Shared>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(&shared.health),
    )
}

/// Binds `address` and serves until the returned task is aborted. Binding fails at start-up,
/// before anything is delivered, so a taken port is a clear error rather than a silent gap.
pub async fn start(
    address: SocketAddr,
    health: Health,
    metrics: SharedMetrics,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/healthz", get(get_healthz))
        .route("/metrics", get(get_metrics))
        .with_state(Shared { health, metrics });
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!("the health and metrics endpoint stopped: {e}");
        }
    });
    Ok((bound, task))
}
