//! A JWKS endpoint that misbehaves on demand, in front of a real one: slow, garbage, HTML, huge,
//! down, or serving someone else's keys. It counts every fetch, so tests can prove cached keys
//! were used and refetches were rate-limited.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How the endpoint answers.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Passes the real JWKS through.
    None,
    /// Accepts the request and never answers.
    Silent,
    /// 200 with a truncated JSON document.
    Garbage,
    /// 200 with an HTML error page, as a misconfigured proxy answers.
    Html,
    /// 200 with a 4 MiB document (Content-Length set).
    Huge,
    /// 503.
    Unavailable,
    /// A valid JWKS, without the key that signs the tokens (another key instead): the current
    /// key was dropped.
    OtherKeys(serde_json::Value),
}

/// The endpoint; its server stops on drop.
pub struct FaultyJwks {
    pub url: String,
    fault: Arc<Mutex<Fault>>,
    fetches: Arc<AtomicUsize>,
    server: tokio::task::JoinHandle<()>,
}

impl FaultyJwks {
    /// In front of the real JWKS at `upstream`, passing it through until told otherwise.
    pub async fn in_front_of(upstream: &str) -> Self {
        use axum::response::IntoResponse;
        let fault = Arc::new(Mutex::new(Fault::None));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (shared_fault, counter, upstream) =
            (fault.clone(), fetches.clone(), upstream.to_owned());
        let router = axum::Router::new().fallback(move || {
            let fault = shared_fault.lock().unwrap().clone();
            counter.fetch_add(1, Ordering::SeqCst);
            let upstream = upstream.clone();
            async move {
                let json = [("content-type", "application/json")];
                let pass = || async {
                    let body = reqwest::get(&upstream).await.unwrap().text().await.unwrap();
                    (json, body).into_response()
                };
                match fault {
                    Fault::None => pass().await,
                    Fault::Silent => std::future::pending().await,
                    Fault::Garbage => {
                        (json, "{\"keys\": [{\"kty\": \"RSA\", \"n\": ").into_response()
                    }
                    Fault::Html => (
                        [("content-type", "text/html")],
                        "<html><body><h1>502 Bad Gateway</h1></body></html>",
                    )
                        .into_response(),
                    Fault::Huge => (
                        json,
                        format!("{{\"keys\": [], \"pad\": \"{}\"}}", "a".repeat(4 << 20)),
                    )
                        .into_response(),
                    Fault::Unavailable => (
                        axum::http::StatusCode::SERVICE_UNAVAILABLE,
                        "upstream connect error",
                    )
                        .into_response(),
                    Fault::OtherKeys(jwks) => (json, jwks.to_string()).into_response(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FaultyJwks {
            url,
            fault,
            fetches,
            server,
        }
    }

    /// From now on, answer with `fault`.
    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    /// How many times the keys were fetched.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyJwks {
    fn drop(&mut self) {
        self.server.abort();
    }
}
