//! A delaying TCP relay: it sits in the network path in front of the origin and holds every
//! chunk of response bytes for a fixed delay (plus optional jitter) before passing it on.
//!
//! Each chunk read from the origin is stamped `arrival + delay` and written out at that time,
//! in order; reading goes on meanwhile, so the relay adds latency without capping bandwidth
//! (like a long link). The delay (base ± jitter) is drawn once per round trip: when the first
//! response chunk after new request bytes arrives. Request bytes pass straight through, so one
//! request/response round trip costs the delay once. Connections are set up without delay
//! (the clients keep them open).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::plan::Latency;
use super::workload::SplitMix;

/// Chunks in flight per connection before reading from the origin pauses.
const IN_FLIGHT_CHUNKS: usize = 1024;
/// Part of a delay left to a precise OS sleep (tokio's timer granularity).
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// A running relay; it stops accepting when dropped.
pub struct Relay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts a relay to `target` on a free loopback port, on the current runtime.
    ///
    /// # Errors
    /// The OS error when no port can be bound.
    pub async fn start(target: SocketAddr, latency: Latency, seed: u64) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut n: u64 = 0;
            loop {
                let client = match listener.accept().await {
                    Ok((client, _)) => client,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                n += 1;
                let rng = SplitMix::new(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        pipe(client, server, latency, rng).await;
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// The relay's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn pipe(client: TcpStream, server: TcpStream, latency: Latency, mut rng: SplitMix) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    // Set when request bytes went out and no response byte came back since: the next response
    // chunk starts a new round trip and draws a new delay.
    let new_turn = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&new_turn);
    let upstream = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            flag.store(true, Ordering::Release);
            if server_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let (tx, mut rx) = mpsc::channel::<(Instant, Bytes)>(IN_FLIGHT_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last = Instant::now();
        let mut current = latency.base;
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if new_turn.swap(false, Ordering::AcqRel) {
                current = delay(latency, &mut rng);
            }
            // Chunks keep their order; each is held `current` after it arrived.
            let due = (Instant::now() + current).max(last);
            last = due;
            if tx.send((due, Bytes::copy_from_slice(&buf[..n]))).await.is_err() {
                break;
            }
        }
    };
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            sleep_until_precise(due).await;
            if client_write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, reader, writer);
}

/// Sleeps until `due` to within about 0.1 ms. tokio's timer has 1 ms granularity and rounds
/// up, which would add half a millisecond on average to every delay; the last stretch is
/// slept on a blocking thread with the OS's finer timer instead.
async fn sleep_until_precise(due: Instant) {
    let coarse = due.checked_sub(TIMER_SLACK).unwrap_or(due);
    if coarse > Instant::now() {
        tokio::time::sleep_until(coarse).await;
    }
    let rest = due.saturating_duration_since(Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// `base` plus a uniform offset in `[-jitter, +jitter]`.
fn delay(latency: Latency, rng: &mut SplitMix) -> Duration {
    if latency.jitter.is_zero() {
        return latency.base;
    }
    let j = latency.jitter.as_secs_f64();
    let offset = (rng.next_f64() * 2.0 - 1.0) * j;
    Duration::from_secs_f64((latency.base.as_secs_f64() + offset).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_range() {
        let l = Latency {
            base: Duration::from_millis(14),
            jitter: Duration::from_millis(2),
        };
        let mut rng = SplitMix::new(7);
        for _ in 0..1000 {
            let d = delay(l, &mut rng);
            assert!(d >= Duration::from_millis(12) && d <= Duration::from_millis(16));
        }
    }

    #[tokio::test]
    async fn adds_the_delay_to_a_round_trip() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).await.unwrap();
            s.write_all(&b).await.unwrap();
        });
        let l = Latency {
            base: Duration::from_millis(30),
            jitter: Duration::ZERO,
        };
        let relay = Relay::start(echo_addr, l, 1).await.unwrap();
        let mut c = TcpStream::connect(relay.addr()).await.unwrap();
        let t = std::time::Instant::now();
        c.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping");
        assert!(t.elapsed() >= Duration::from_millis(30));
    }
}
