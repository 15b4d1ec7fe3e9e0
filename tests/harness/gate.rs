//! A TCP gate in front of a server: it forwards connections while open, and while closed accepts
//! and drops them at once, so the client sees a server that went away. It counts every
//! connection, which is how a test bounds the requests a client makes while the server is down
//! (every attempt at a dead server needs a new connection).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A gate on a free loopback port, forwarding to `target` (`host:port`).
pub struct Gate {
    /// `http://127.0.0.1:PORT`: give this to the client instead of the server's address.
    pub addr: String,
    open: watch::Sender<bool>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    /// Opens a gate to the `http://host:port` server at `target`.
    pub async fn to(target: &str) -> Gate {
        let target = target
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = format!("http://{}", listener.local_addr().unwrap());
        let (open, is_open) = watch::channel(true);
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                if !*is_open.borrow() {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                let mut closing = is_open.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    // A connection kept alive across a closing of the gate is cut as well.
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = closing.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Gate {
            addr,
            open,
            connections,
            task,
        }
    }

    /// Closes (false) or opens (true) the gate.
    pub fn set_open(&self, open: bool) {
        self.open.send_replace(open);
    }

    /// Connections accepted so far, open or closed.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}
