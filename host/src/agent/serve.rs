//! The agent's local HTTP endpoint (`[agent] listen`): `GET /healthz` and `GET /metrics`.
//! Read-only, and nothing it serves is a secret; it still belongs on loopback or a port the
//! launch policy keeps private, since collaborator names and failures are the operator's
//! business.

use super::health::Health;
use super::metrics::SharedMetrics;
use crate::local_server::{serve, ConnectionLimits};
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

/// Binds `address` and serves until `stop` is set. Binding fails at start-up, before anything is
/// delivered, so a taken port is a clear error rather than a silent gap. At most 16 connections
/// at once, each closed if it sends no request headers for 10 s: a local process holding
/// connections open cannot starve the endpoint, nor the agent of file descriptors.
pub async fn start(
    address: SocketAddr,
    health: Health,
    metrics: SharedMetrics,
    stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let router = Router::new()
        .route("/healthz", get(get_healthz))
        .route("/metrics", get(get_metrics))
        .with_state(Shared { health, metrics });
    let limits = ConnectionLimits {
        max_connections: 16,
        header_read_timeout: std::time::Duration::from_secs(10),
    };
    let task = tokio::spawn(serve(listener, router, limits, stop));
    Ok((bound, task))
}
