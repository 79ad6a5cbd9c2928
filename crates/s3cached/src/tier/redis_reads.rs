//! The Redis tier's reading connections: the calls that bring object bytes back (`MGET` of an
//! entry, `GET` of a block) travel on connections of their own, whose replies are parsed by
//! [`ReplyReader`], so a large value is read from the socket into one buffer of its size and
//! served from it without a copy (the general client copies it twice; BENCHMARKS.md §3).
//!
//! Used for a standalone server reached over plain TCP, which is where the copy was measured
//! to matter (1 MiB hits). Cluster mode and TLS keep every call on the general client, which
//! follows slot moves and holds the TLS settings.
//!
//! Each connection is pipelined: callers queue commands to a writer task, which sends
//! whatever is queued in one write; a reader task parses the replies in order and hands each
//! to its caller. A connection that fails (I/O, protocol) is closed, its pending calls fail,
//! and the next call opens a new one: the tier's timeout and breaker bound what that costs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use redis::{ConnectionAddr, IntoConnectionInfo, ProtocolVersion};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use super::resp_reply::{Reply, ReplyError, ReplyReader, encode_command};
use crate::config::RedisTarget;

/// Most bytes of queued commands sent in one write.
const MAX_BATCH: usize = 64 * 1024;

/// Why a read call failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// No connection could be opened.
    #[error("cannot connect to Redis at {addr}: {source}")]
    Connect {
        /// host:port.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// No connection within the connect timeout.
    #[error("no connection to Redis at {0} in time")]
    ConnectTimeout(String),
    /// The connection failed or closed before the reply.
    #[error("Redis connection lost")]
    Lost,
    /// The server's reply does not parse; the connection was closed.
    #[error("bad reply from Redis: {0}")]
    Protocol(#[from] ReplyError),
    /// The server answered with an error.
    #[error("Redis error: {0}")]
    Server(String),
    /// A reply of another kind than the command's.
    #[error("unexpected reply from Redis: {0}")]
    Unexpected(&'static str),
}

/// Where and how to connect.
#[derive(Debug, Clone)]
struct Endpoint {
    host: String,
    port: u16,
    username: Option<String>,
    password: Option<String>,
    db: i64,
    connect_timeout: Duration,
}

impl Endpoint {
    fn addr(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

type Waiter = oneshot::Sender<Result<Reply, ReadError>>;

/// Calls sent and not yet answered, in the order they were sent.
#[derive(Default)]
struct Pending {
    /// Set when the connection has failed: later calls fail at once instead of waiting.
    closed: bool,
    waiters: VecDeque<Waiter>,
}

/// One pipelined connection.
struct Conn {
    queue: mpsc::UnboundedSender<(Bytes, Waiter)>,
    alive: Arc<AtomicBool>,
}

impl Conn {
    async fn open(endpoint: &Endpoint) -> Result<Self, ReadError> {
        let addr = endpoint.addr();
        let stream = tokio::time::timeout(endpoint.connect_timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| ReadError::ConnectTimeout(addr.clone()))?
            .map_err(|source| ReadError::Connect { addr, source })?;
        // Small commands go out at once; batching is the writer task's job.
        let _ = stream.set_nodelay(true);
        let (mut read, mut write) = stream.into_split();
        let mut reader = ReplyReader::new();
        if let Some(password) = &endpoint.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &endpoint.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            expect_ok(&mut read, &mut write, &mut reader, &args, endpoint.connect_timeout).await?;
        }
        if endpoint.db != 0 {
            let db = endpoint.db.to_string();
            let args: [&[u8]; 2] = [b"SELECT", db.as_bytes()];
            expect_ok(&mut read, &mut write, &mut reader, &args, endpoint.connect_timeout).await?;
        }
        let (queue, requests) = mpsc::unbounded_channel();
        let alive = Arc::new(AtomicBool::new(true));
        let pending = Arc::new(Mutex::new(Pending::default()));
        tokio::spawn(write_loop(write, requests, Arc::clone(&pending), Arc::clone(&alive)));
        tokio::spawn(read_loop(read, reader, pending, Arc::clone(&alive)));
        Ok(Self { queue, alive })
    }

    fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire) && !self.queue.is_closed()
    }

    async fn call(&self, command: Bytes) -> Result<Reply, ReadError> {
        let (tx, rx) = oneshot::channel();
        self.queue.send((command, tx)).map_err(|_| ReadError::Lost)?;
        match rx.await {
            Ok(Ok(Reply::Error(e))) => Err(ReadError::Server(e)),
            Ok(result) => result,
            Err(_) => Err(ReadError::Lost),
        }
    }
}

/// Sends one command during the handshake and requires `+OK`.
async fn expect_ok(
    read: &mut OwnedReadHalf,
    write: &mut OwnedWriteHalf,
    reader: &mut ReplyReader,
    args: &[&[u8]],
    timeout: Duration,
) -> Result<(), ReadError> {
    let exchange = async {
        write
            .write_all(&encode_command(args))
            .await
            .map_err(|_| ReadError::Lost)?;
        loop {
            if let Some(reply) = reader.next_reply()? {
                return match reply {
                    Reply::Status(s) if &s[..] == b"OK" => Ok(()),
                    Reply::Error(e) => Err(ReadError::Server(e)),
                    _ => Err(ReadError::Unexpected("not OK to a handshake command")),
                };
            }
            if reader.read_from(read).await.map_err(|_| ReadError::Lost)? == 0 {
                return Err(ReadError::Lost);
            }
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ReadError::Lost)?
}

async fn write_loop(
    mut write: OwnedWriteHalf,
    mut requests: mpsc::UnboundedReceiver<(Bytes, Waiter)>,
    pending: Arc<Mutex<Pending>>,
    alive: Arc<AtomicBool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = requests.recv().await {
        batch.clear();
        let mut next = Some(first);
        {
            let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
            while let Some((command, waiter)) = next.take() {
                if pending.closed {
                    // Dropping the waiter fails the call at once.
                    continue;
                }
                batch.extend_from_slice(&command);
                pending.waiters.push_back(waiter);
                if batch.len() < MAX_BATCH {
                    next = requests.try_recv().ok();
                }
            }
        }
        if batch.is_empty() {
            break;
        }
        if write.write_all(&batch).await.is_err() {
            break;
        }
    }
    close(&pending, &alive);
}

async fn read_loop(
    mut read: OwnedReadHalf,
    mut reader: ReplyReader,
    pending: Arc<Mutex<Pending>>,
    alive: Arc<AtomicBool>,
) {
    loop {
        match reader.next_reply() {
            Ok(Some(reply)) => {
                let waiter = pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .waiters
                    .pop_front();
                // A reply nobody asked for: the stream is out of step.
                let Some(waiter) = waiter else { break };
                // The caller may have given up (timeout); the reply is then dropped.
                let _ = waiter.send(Ok(reply));
            }
            Ok(None) => match reader.read_from(&mut read).await {
                Ok(n) if n > 0 => {}
                _ => break,
            },
            Err(e) => {
                tracing::warn!(error = %e, "bad reply from Redis; closing the connection");
                let waiter = pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .waiters
                    .pop_front();
                if let Some(waiter) = waiter {
                    let _ = waiter.send(Err(ReadError::Protocol(e)));
                }
                break;
            }
        }
    }
    close(&pending, &alive);
}

/// Marks the connection failed and fails every call waiting on it.
fn close(pending: &Mutex<Pending>, alive: &AtomicBool) {
    alive.store(false, Ordering::Release);
    let mut pending = pending.lock().unwrap_or_else(PoisonError::into_inner);
    pending.closed = true;
    pending.waiters.clear();
}

/// The reading connections of a Redis tier.
pub struct ReadConns {
    endpoint: Endpoint,
    slots: Vec<Mutex<Option<Arc<Conn>>>>,
    next: AtomicUsize,
}

impl ReadConns {
    /// Reading connections for `target`, when it is one where they are used (a standalone
    /// server over plain TCP); `None` otherwise. Connections open on first use.
    #[must_use]
    pub fn for_target(target: &RedisTarget, connections: usize, connect_timeout: Duration) -> Option<Self> {
        let RedisTarget::Standalone { .. } = target else {
            return None;
        };
        let url = target.urls().into_iter().next()?;
        let info = url.as_str().into_connection_info().ok()?;
        let ConnectionAddr::Tcp(host, port) = info.addr() else {
            return None;
        };
        let settings = info.redis_settings();
        if settings.protocol() != ProtocolVersion::RESP2 {
            return None;
        }
        Some(Self {
            endpoint: Endpoint {
                host: host.clone(),
                port: *port,
                username: settings.username().map(str::to_owned),
                password: settings.password().map(str::to_owned),
                db: settings.db(),
                connect_timeout,
            },
            slots: (0..connections.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// An open connection, taking the slots in turn; opens one where the slot has none.
    async fn conn(&self) -> Result<Arc<Conn>, ReadError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[turn];
        if let Some(conn) = slot.lock().unwrap_or_else(PoisonError::into_inner).as_ref()
            && conn.is_alive()
        {
            return Ok(Arc::clone(conn));
        }
        let conn = Arc::new(Conn::open(&self.endpoint).await?);
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        // Another call may have reconnected meanwhile: keep one connection per slot.
        match slot.as_ref() {
            Some(current) if current.is_alive() => Ok(Arc::clone(current)),
            _ => {
                *slot = Some(Arc::clone(&conn));
                Ok(conn)
            }
        }
    }

    async fn call(&self, args: &[&[u8]]) -> Result<Reply, ReadError> {
        self.conn().await?.call(encode_command(args)).await
    }

    /// `MGET keys...`: one value (or `None`) per key.
    ///
    /// # Errors
    /// [`ReadError`] when Redis cannot be reached or answers otherwise.
    pub async fn mget(&self, keys: &[&[u8]]) -> Result<Vec<Option<Bytes>>, ReadError> {
        let mut args: Vec<&[u8]> = Vec::with_capacity(keys.len() + 1);
        args.push(b"MGET");
        args.extend_from_slice(keys);
        match self.call(&args).await? {
            Reply::Array(Some(values)) if values.len() == keys.len() => Ok(values),
            _ => Err(ReadError::Unexpected("MGET did not answer one value per key")),
        }
    }

    /// `GET key`.
    ///
    /// # Errors
    /// [`ReadError`] when Redis cannot be reached or answers otherwise.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Bytes>, ReadError> {
        match self.call(&[b"GET", key]).await? {
            Reply::Value(value) => Ok(value),
            _ => Err(ReadError::Unexpected("GET did not answer a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    fn standalone(url: &str) -> RedisTarget {
        RedisTarget::Standalone { url: url.to_owned() }
    }

    #[test]
    fn used_for_plain_standalone_servers_only() {
        let timeout = Duration::from_secs(1);
        let plain = ReadConns::for_target(&standalone("redis://u:p%40ss@cache:6380/3"), 2, timeout);
        let Some(plain) = plain else {
            panic!("a plain standalone URL uses reading connections")
        };
        assert_eq!(plain.endpoint.addr(), "cache:6380");
        assert_eq!(plain.endpoint.username.as_deref(), Some("u"));
        assert_eq!(plain.endpoint.password.as_deref(), Some("p@ss"));
        assert_eq!(plain.endpoint.db, 3);
        assert_eq!(plain.slots.len(), 2);
        assert!(ReadConns::for_target(&standalone("127.0.0.1:6379"), 0, timeout).is_some());
        assert!(ReadConns::for_target(&standalone("rediss://cache:6380"), 1, timeout).is_none());
        assert!(ReadConns::for_target(&standalone("redis://cache:6380/?protocol=resp3"), 1, timeout).is_none());
        let cluster = RedisTarget::Cluster {
            nodes: vec!["a:1".to_owned()],
            read_from_replicas: false,
        };
        assert!(ReadConns::for_target(&cluster, 1, timeout).is_none());
    }

    /// A server that answers each command it reads with the next canned reply, then closes.
    async fn canned_server(replies: Vec<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            for reply in replies {
                if !matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {
                    return;
                }
                if socket.write_all(reply).await.is_err() {
                    return;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_bad_reply_fails_the_call_and_the_next_call_reconnects() {
        let addr = canned_server(vec![b"*2\r\n$1\r\na\r\n$-1\r\n", b"!garbage\r\n"]).await;
        let conns = ReadConns::for_target(&standalone(&addr), 1, Duration::from_secs(1)).expect("plain");
        let values = conns.mget(&[b"k1", b"k2"]).await.expect("first call");
        assert_eq!(values, vec![Some(Bytes::from_static(b"a")), None]);
        let err = conns.get(b"k").await.expect_err("garbage");
        assert!(
            matches!(err, ReadError::Protocol(ReplyError::UnknownType(b'!'))),
            "{err}"
        );
        // The canned server accepts one connection only: the next call must try a new one.
        let err = tokio::time::timeout(Duration::from_secs(5), conns.get(b"k"))
            .await
            .expect("bounded")
            .expect_err("nobody listens");
        assert!(matches!(err, ReadError::Connect { .. } | ReadError::Lost), "{err}");
    }

    #[tokio::test]
    async fn a_server_error_and_a_wrong_reply_kind_are_errors() {
        let addr = canned_server(vec![b"-WRONGTYPE nope\r\n", b":1\r\n", b"$1\r\nx\r\n"]).await;
        let conns = ReadConns::for_target(&standalone(&addr), 1, Duration::from_secs(1)).expect("plain");
        let err = conns.get(b"k").await.expect_err("error reply");
        assert!(matches!(&err, ReadError::Server(e) if e == "WRONGTYPE nope"), "{err}");
        let err = conns.get(b"k").await.expect_err("integer");
        assert!(matches!(err, ReadError::Unexpected(_)), "{err}");
        let err = conns.mget(&[b"a", b"b"]).await.expect_err("one value for two keys");
        assert!(matches!(err, ReadError::Unexpected(_)), "{err}");
    }

    #[tokio::test]
    async fn a_refused_password_is_an_error() {
        let addr = canned_server(vec![b"-WRONGPASS invalid username-password pair\r\n"]).await;
        let url = format!("redis://:secret@{addr}");
        let conns = ReadConns::for_target(&standalone(&url), 1, Duration::from_secs(1)).expect("plain");
        let err = conns.get(b"k").await.expect_err("refused");
        assert!(
            matches!(&err, ReadError::Server(e) if e.starts_with("WRONGPASS")),
            "{err}"
        );
    }
}
