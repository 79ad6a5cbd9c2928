//! A TCP relay that slows the origin down: a fixed delay before the first byte of every
//! response, and an optional bandwidth cap on responses. Tests put it between s3cached and
//! SeaweedFS to widen race windows and to make concurrent misses overlap.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running relay; stops accepting when dropped (open connections end with their peers).
pub struct Relay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

/// How the relay slows responses.
#[derive(Debug, Clone, Copy)]
pub struct Slowdown {
    /// Added before the first response byte after each request.
    pub latency: Duration,
    /// Response bytes per second; `None` for no cap.
    pub bytes_per_sec: Option<u64>,
}

impl Relay {
    /// Starts a relay to `target` on a free loopback port. Needs a running tokio runtime.
    pub async fn start(target: SocketAddr, slowdown: Slowdown) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        pipe(client, server, slowdown).await;
                    }
                });
            }
        });
        Relay { addr, task }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, slowdown: Slowdown) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set when request bytes went out and no response byte came back since.
    let awaiting_response = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&awaiting_response);
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            flag.store(true, Ordering::SeqCst);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if awaiting_response.swap(false, Ordering::SeqCst) {
                tokio::time::sleep(slowdown.latency).await;
            }
            if let Some(rate) = slowdown.bytes_per_sec {
                tokio::time::sleep(Duration::from_secs_f64(n as f64 / rate as f64)).await;
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}
