//! A local HTTP/1.1 server that one client cannot monopolise: a cap on connections and a
//! header-read timeout. The dev launcher's endpoints and the agent's `/healthz` and `/metrics`
//! are reachable by other local processes, which must not be able to starve them (or, by holding
//! descriptors, the whole process).

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

async fn stop_requested(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}

/// What keeps one local client from holding a listener's connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// Connections served at once; the next waits to be accepted.
    pub(crate) max_connections: usize,
    /// A connection that has not sent a request's headers within this is closed.
    pub(crate) header_read_timeout: Duration,
}

/// Serves `router` on `listener` over HTTP/1.1 until `stopped`, then lets open connections finish.
///
/// Each connection holds one of `max_connections` permits from before it is accepted until its
/// socket is closed; without a free permit nothing is accepted. hyper closes a connection that
/// has not sent a request's headers within `header_read_timeout`, idle keep-alive ones included.
pub(crate) async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: ConnectionLimits,
    mut stopped: watch::Receiver<bool>,
) where
    L: axum::serve::Listener,
{
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = stop_requested(&mut stopped) => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        // `Listener::accept` retries failed accepts itself (with a pause after EMFILE and the like).
        let (io, _) = tokio::select! {
            _ = stop_requested(&mut stopped) => break,
            accepted = listener.accept() => accepted,
        };
        let service = TowerToHyperService::new(router.clone());
        let mut connection = Box::pin(http.serve_connection(TokioIo::new(io), service));
        let mut stopping = stopped.clone();
        connections.spawn(async move {
            let result = tokio::select! {
                result = connection.as_mut() => result,
                _ = stop_requested(&mut stopping) => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "local HTTP connection ended");
            }
            // The socket is closed before the permit lets the next client in.
            drop(connection);
            drop(permit);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}
