//! A server that records every request and answers as told: a hostile collaborator's Vault, or
//! any endpoint a test needs to watch.

/// One request a [`CaptureServer`] received.
#[derive(Debug, Clone)]
pub struct CapturedRequest {
    #[expect(
        dead_code,
        reason = "read through Debug: failure messages show what arrived"
    )]
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// How a [`CaptureServer`] answers.
#[derive(Debug, Clone)]
pub enum Answer {
    /// This status and JSON body.
    Fixed(u16, &'static str),
    /// HTTP 400 with Vault's error shape, quoting the request body and X-Vault-Token back.
    Echo,
    /// HTTP 400 with a body that never ends (and no Content-Length).
    Endless,
    /// HTTP 307 to this URL.
    Redirect(String),
    /// By path (the first whose suffix matches): this status and JSON body; 404 otherwise. A
    /// stand-in for a server that answers each endpoint its own way.
    ByPath(Vec<(&'static str, u16, &'static str)>),
}

/// A hostile collaborator's server standing in as its Vault (or any endpoint): it records every
/// request it gets and answers each as told.
pub struct CaptureServer {
    pub addr: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<CapturedRequest>>>,
    server: tokio::task::JoinHandle<()>,
}

impl CaptureServer {
    pub async fn start(status: u16, body: &'static str) -> Self {
        Self::answering(Answer::Fixed(status, body)).await
    }

    pub async fn answering(answer: Answer) -> Self {
        use axum::response::IntoResponse;
        let requests = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = requests.clone();
        let router = axum::Router::new().fallback(
            move |method: axum::http::Method,
                  uri: axum::http::Uri,
                  headers: axum::http::HeaderMap,
                  bytes: axum::body::Bytes| {
                let seen = seen.clone();
                let answer = answer.clone();
                async move {
                    let request = CapturedRequest {
                        method: method.to_string(),
                        path: uri.to_string(),
                        headers: headers
                            .iter()
                            .map(|(k, v)| {
                                (
                                    k.to_string(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                            .collect(),
                        body: String::from_utf8_lossy(&bytes).into_owned(),
                    };
                    seen.lock().unwrap().push(request.clone());
                    let status = |code| axum::http::StatusCode::from_u16(code).unwrap();
                    match answer {
                        Answer::Fixed(code, body) => {
                            (status(code), [("content-type", "application/json")], body)
                                .into_response()
                        }
                        Answer::Echo => {
                            let token = request
                                .headers
                                .iter()
                                .find(|(k, _)| k == "x-vault-token")
                                .map(|(_, v)| v.clone())
                                .unwrap_or_default();
                            let echoed = serde_json::json!({"errors": [
                                format!("bad request {}: {}", request.body, token)
                            ]});
                            (status(400), axum::Json(echoed)).into_response()
                        }
                        Answer::Endless => {
                            let chunk = axum::body::Bytes::from(vec![b'x'; 64 << 10]);
                            let stream = futures::stream::repeat_with(move || {
                                Ok::<_, std::io::Error>(chunk.clone())
                            });
                            (status(400), axum::body::Body::from_stream(stream)).into_response()
                        }
                        Answer::Redirect(location) => {
                            (status(307), [("location", location)]).into_response()
                        }
                        Answer::ByPath(routes) => {
                            match routes
                                .iter()
                                .find(|(path, _, _)| request.path.ends_with(path))
                            {
                                Some((_, code, body)) => {
                                    (status(*code), [("content-type", "application/json")], *body)
                                        .into_response()
                                }
                                None => (status(404), "{\"errors\":[]}").into_response(),
                            }
                        }
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        CaptureServer {
            addr,
            requests,
            server,
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for CaptureServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}
