//! A TCP relay that slows an origin's responses down: it sits in the network path in front of
//! the origin and passes every byte on, but holds response bytes back. The bench uses it to
//! emulate a distant origin (`--origin-latency`, `--origin-jitter`); the integration tests use
//! it to widen race windows, make concurrent misses overlap and cut an origin off.
//!
//! The relay behaves like a long link with an optional bandwidth limit. Each chunk read from
//! the origin is stamped with the time it may leave: no earlier than `latency` after it
//! arrived, and, with a bandwidth cap, no earlier than the previous chunk left plus the time
//! the chunk takes to send at that rate. Chunks leave in order; reading from the origin goes on
//! meanwhile, so latency alone does not cap bandwidth. The delay (latency ± jitter) is drawn
//! once per round trip: when the first response chunk after new request bytes arrives. Request
//! bytes pass straight through, so one request/response round trip costs the delay once.
//! Connections are set up without delay (clients keep them open).
//!
//! Every task of a relay runs on the runtime that started it: shutting that runtime down closes
//! the listener and every relayed connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::workload::SplitMix;

/// Chunks in flight per connection before reading from the origin pauses.
const IN_FLIGHT_CHUNKS: usize = 1024;
/// Part of a delay left to a precise OS sleep (tokio's timer granularity).
const TIMER_SLACK: Duration = Duration::from_millis(2);

/// How the relay slows responses down. The default passes everything on at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shaping {
    /// Added to every response round trip.
    pub latency: Duration,
    /// Random extra delay per round trip, uniform in ±this.
    pub jitter: Duration,
    /// Response bytes per second; `None` for no cap.
    pub bytes_per_sec: Option<u64>,
    /// Seed of the jitter draws (relays with one seed draw the same delays).
    pub seed: u64,
    /// Round trips, per thousand, that get [`Shaping::tail_delay`] on top: a slow tail, as
    /// S3's p99 is many times its median.
    pub tail_per_mille: u32,
    /// The extra delay of the slow tail.
    pub tail_delay: Duration,
}

impl Shaping {
    /// A fixed `latency` per round trip, nothing else.
    pub fn latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    /// The same, with responses capped at `bytes_per_sec`.
    pub fn with_bandwidth(self, bytes_per_sec: u64) -> Self {
        Self {
            bytes_per_sec: Some(bytes_per_sec),
            ..self
        }
    }

    /// The same, with a random extra delay in ±`jitter` drawn from a generator seeded with
    /// `seed`.
    pub fn with_jitter(self, jitter: Duration, seed: u64) -> Self {
        Self { jitter, seed, ..self }
    }

    /// The same, with `per_mille` of the round trips (drawn from a generator seeded with
    /// `seed`) delayed by `extra` more.
    pub fn with_tail(self, per_mille: u32, extra: Duration, seed: u64) -> Self {
        Self {
            tail_per_mille: per_mille.min(1000),
            tail_delay: extra,
            seed,
            ..self
        }
    }
}

/// A running relay; it stops accepting when dropped (open connections end with their peers).
pub struct Relay {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts a relay to `target` on a free loopback port, on the current runtime.
    ///
    /// # Errors
    /// The OS error when no port can be bound.
    pub async fn start(target: SocketAddr, shaping: Shaping) -> std::io::Result<Self> {
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
                let rng = SplitMix::new(shaping.seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        pipe(client, server, shaping, rng).await;
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

async fn pipe(client: TcpStream, server: TcpStream, shaping: Shaping, mut rng: SplitMix) {
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
        let mut current = shaping.latency;
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if new_turn.swap(false, Ordering::AcqRel) {
                current = delay(shaping, &mut rng);
            }
            // Chunks keep their order; each is held `current` after it arrived, then takes its
            // time on the (capped) link.
            let due = (Instant::now() + current).max(last) + send_time(n, shaping.bytes_per_sec);
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

/// How long `n` bytes take at `bytes_per_sec`; zero without a cap.
fn send_time(n: usize, bytes_per_sec: Option<u64>) -> Duration {
    match bytes_per_sec {
        Some(rate) if rate > 0 => Duration::from_secs_f64(n as f64 / rate as f64),
        _ => Duration::ZERO,
    }
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

/// `latency` plus a uniform offset in `[-jitter, +jitter]`, plus the tail's delay for the
/// share of round trips drawn for it.
fn delay(shaping: Shaping, rng: &mut SplitMix) -> Duration {
    let base = if shaping.jitter.is_zero() {
        shaping.latency
    } else {
        let j = shaping.jitter.as_secs_f64();
        let offset = (rng.next_f64() * 2.0 - 1.0) * j;
        Duration::from_secs_f64((shaping.latency.as_secs_f64() + offset).max(0.0))
    };
    if shaping.tail_per_mille > 0 && rng.next_f64() * 1000.0 < f64::from(shaping.tail_per_mille) {
        base + shaping.tail_delay
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server for one connection: sends back every byte it reads, `reply_len` bytes of
    /// it for each 4-byte request.
    async fn echo_server(reply_len: usize) -> SocketAddr {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = echo.accept().await.unwrap();
            let mut b = [0u8; 4];
            while s.read_exact(&mut b).await.is_ok() {
                let reply: Vec<u8> = b.iter().copied().cycle().take(reply_len).collect();
                if s.write_all(&reply).await.is_err() {
                    break;
                }
            }
        });
        addr
    }

    #[test]
    fn jitter_stays_in_range() {
        let s = Shaping::latency(Duration::from_millis(14)).with_jitter(Duration::from_millis(2), 7);
        let mut rng = SplitMix::new(7);
        for _ in 0..1000 {
            let d = delay(s, &mut rng);
            assert!(d >= Duration::from_millis(12) && d <= Duration::from_millis(16));
        }
    }

    #[test]
    fn the_tail_delays_its_share_of_round_trips() {
        let s = Shaping::latency(Duration::from_millis(14)).with_tail(10, Duration::from_millis(200), 3);
        let mut rng = SplitMix::new(3);
        let slow = (0..100_000)
            .filter(|_| delay(s, &mut rng) == Duration::from_millis(214))
            .count();
        assert!((800..1200).contains(&slow), "{slow} of 100000 in the tail");
    }

    #[tokio::test]
    async fn adds_the_delay_to_a_round_trip() {
        let relay = Relay::start(echo_server(4).await, Shaping::latency(Duration::from_millis(30)))
            .await
            .unwrap();
        let mut c = TcpStream::connect(relay.addr()).await.unwrap();
        for _ in 0..2 {
            let t = std::time::Instant::now();
            c.write_all(b"ping").await.unwrap();
            let mut b = [0u8; 4];
            c.read_exact(&mut b).await.unwrap();
            assert_eq!(&b, b"ping");
            assert!(t.elapsed() >= Duration::from_millis(30));
        }
    }

    #[tokio::test]
    async fn caps_response_bandwidth() {
        // 256 KiB at 1 MiB/s: about 250 ms.
        let relay = Relay::start(
            echo_server(256 * 1024).await,
            Shaping::default().with_bandwidth(1 << 20),
        )
        .await
        .unwrap();
        assert!(relay.endpoint().starts_with("http://127.0.0.1:"));
        let mut c = TcpStream::connect(relay.addr()).await.unwrap();
        let t = std::time::Instant::now();
        c.write_all(b"data").await.unwrap();
        let mut b = vec![0u8; 256 * 1024];
        c.read_exact(&mut b).await.unwrap();
        assert!(b.chunks(4).all(|c| c == b"data"));
        assert!(t.elapsed() >= Duration::from_millis(200), "{:?}", t.elapsed());
    }
}
