//! The Redis tier's reading connections: the calls that bring object bytes back (`MGET` of an
//! entry, `GET` of a block) travel on connections of their own, whose replies are parsed by
//! [`ReplyReader`], so a large value is read from the socket into one buffer of its size and
//! served from it without a copy (the general client copies it twice; BENCHMARKS.md §3).
//!
//! Used for a standalone server reached over plain TCP, which is where the copy was measured
//! to matter (1 MiB hits). Cluster mode and TLS keep every call on the general client, which
//! follows slot moves and holds the TLS settings.
//!
//! Each connection is pipelined: callers queue commands, a writer task sends whatever has
//! gathered in one write, and a reader task parses the replies in order and hands each to
//! its caller. A connection that fails (I/O, protocol) is closed, its pending calls fail,
//! and the next call opens a new one: the tier's timeout and breaker bound what that costs.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use redis::{Cmd, ConnectionAddr, IntoConnectionInfo, ProtocolVersion};
use tokio::net::TcpStream;
use tokio::sync::{Notify, oneshot};

use super::resp_reply::{ReadFailure, Reply, ReplyError, ReplyReader};
use crate::model::config::RedisTarget;

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
    /// host:port, for messages (an IPv6 address in brackets).
    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

type Waiter = oneshot::Sender<Result<Reply, ReadError>>;

/// What callers and the connection's tasks share.
struct Shared {
    stream: TcpStream,
    state: Mutex<State>,
    /// Wakes the writer task: bytes are waiting in [`State::unsent`], or the connection closed.
    flush: Notify,
    /// Stops the reader task when the connection is dropped.
    stop: Notify,
}

#[derive(Default)]
struct State {
    /// Set when the connection has failed: later calls fail at once instead of waiting.
    closed: bool,
    /// Calls sent (or queued in `unsent`) and not yet answered, in the order of their bytes.
    waiters: VecDeque<Waiter>,
    /// Bytes of commands not yet written, in order.
    unsent: Vec<u8>,
    /// The writer task has been woken for `unsent` and has not taken it yet.
    woken: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the connection failed, fails every call waiting on it and ends the writer task.
    fn close(&self) {
        {
            let mut state = self.lock();
            state.closed = true;
            state.waiters.clear();
            state.unsent.clear();
        }
        self.flush.notify_one();
    }
}

/// One pipelined connection.
///
/// A caller appends its command to [`State::unsent`] and its waiter to [`State::waiters`]
/// under one lock, so waiters stay in the order of the replies; the writer task sends
/// whatever has gathered in one write. (Callers writing to the socket themselves, one small
/// write each, took 1.28x the redis crate's CPU per 4 KiB hit; these batched writes take
/// 0.87x: BENCHMARKS.md §3.)
struct Conn {
    shared: Arc<Shared>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.shared.close();
        self.shared.stop.notify_one();
    }
}

impl Conn {
    async fn open(endpoint: &Endpoint) -> Result<Self, ReadError> {
        let addr = endpoint.addr();
        let stream = tokio::time::timeout(
            endpoint.connect_timeout,
            TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .map_err(|_| ReadError::ConnectTimeout(addr.clone()))?
        .map_err(|source| ReadError::Connect { addr, source })?;
        // Commands go out as they come; pipelining, not Nagle, batches them.
        let _ = stream.set_nodelay(true);
        let mut reader = ReplyReader::new();
        if let Some(password) = &endpoint.password {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = &endpoint.username {
                auth.arg(user);
            }
            auth.arg(password);
            expect_ok(&stream, &mut reader, &auth, endpoint.connect_timeout).await?;
        }
        if endpoint.db != 0 {
            let mut select = redis::cmd("SELECT");
            select.arg(endpoint.db);
            expect_ok(&stream, &mut reader, &select, endpoint.connect_timeout).await?;
        }
        let shared = Arc::new(Shared {
            stream,
            state: Mutex::new(State::default()),
            flush: Notify::new(),
            stop: Notify::new(),
        });
        tokio::spawn(write_loop(Arc::clone(&shared)));
        tokio::spawn(read_loop(Arc::clone(&shared), reader));
        Ok(Self { shared })
    }

    fn is_alive(&self) -> bool {
        !self.shared.lock().closed
    }

    async fn call(&self, cmd: &Cmd) -> Result<Reply, ReadError> {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(ReadError::Lost);
            }
            state.waiters.push_back(tx);
            cmd.write_packed_command(&mut state.unsent);
            if !std::mem::replace(&mut state.woken, true) {
                self.shared.flush.notify_one();
            }
        }
        match rx.await {
            Ok(Ok(Reply::Error(e))) => Err(ReadError::Server(e)),
            Ok(result) => result,
            Err(_) => Err(ReadError::Lost),
        }
    }
}

/// Writes all of `bytes`, waiting for the socket to take them.
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends one command during the handshake and requires `+OK`.
async fn expect_ok(
    stream: &TcpStream,
    reader: &mut ReplyReader,
    cmd: &Cmd,
    timeout: Duration,
) -> Result<(), ReadError> {
    let exchange = async {
        write_all(stream, &cmd.get_packed_command())
            .await
            .map_err(|_| ReadError::Lost)?;
        match reader.next_from(stream).await {
            Ok(Reply::Status(s)) if &s[..] == b"OK" => Ok(()),
            Ok(Reply::Error(e)) => Err(ReadError::Server(e)),
            Ok(_) => Err(ReadError::Unexpected("not OK to a handshake command")),
            Err(ReadFailure::Reply(e)) => Err(ReadError::Protocol(e)),
            Err(_) => Err(ReadError::Lost),
        }
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| ReadError::Lost)?
}

/// Writes the commands callers queue, in order, until the connection closes.
async fn write_loop(shared: Arc<Shared>) {
    // The two buffers trade places: callers fill one while this task writes the other.
    let mut bytes = Vec::new();
    loop {
        shared.flush.notified().await;
        // Woken by the first command, this task would run next on its thread (tokio's LIFO
        // slot), before the other tasks there queue theirs: a write per command. Behind
        // them, it sends one write for all.
        tokio::task::yield_now().await;
        {
            let mut state = shared.lock();
            if state.closed {
                return;
            }
            state.woken = false;
            std::mem::swap(&mut state.unsent, &mut bytes);
        }
        if !bytes.is_empty() && write_all(&shared.stream, &bytes).await.is_err() {
            shared.close();
            return;
        }
        bytes.clear();
    }
}

/// Hands each reply to the call waiting longest, until the connection fails or is dropped.
async fn read_loop(shared: Arc<Shared>, mut reader: ReplyReader) {
    loop {
        let reply = tokio::select! {
            reply = reader.next_from(&shared.stream) => reply,
            () = shared.stop.notified() => break,
        };
        let waiter = shared.lock().waiters.pop_front();
        match reply {
            // A reply nobody asked for: the stream is out of step.
            Ok(reply) => match waiter {
                // The caller may have given up (timeout); the reply is then dropped.
                Some(waiter) => drop(waiter.send(Ok(reply))),
                None => break,
            },
            Err(e) => {
                if let ReadFailure::Reply(e) = e {
                    tracing::warn!(error = %e, "bad reply from Redis; closing the connection");
                    if let Some(waiter) = waiter {
                        drop(waiter.send(Err(ReadError::Protocol(e))));
                    }
                }
                break;
            }
        }
    }
    shared.close();
}

/// One connection's place: the connection, and the lock held while one is opened.
#[derive(Default)]
struct Slot {
    conn: Mutex<Option<Arc<Conn>>>,
    connecting: tokio::sync::Mutex<()>,
}

impl Slot {
    /// The connection, if it is open.
    fn open(&self) -> Option<Arc<Conn>> {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .filter(|c| c.is_alive())
            .cloned()
    }
}

/// The reading connections of a Redis tier.
pub struct ReadConns {
    endpoint: Endpoint,
    slots: Vec<Slot>,
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
            slots: (0..connections.max(1)).map(|_| Slot::default()).collect(),
            next: AtomicUsize::new(0),
        })
    }

    /// An open connection, taking the slots in turn; opens one where the slot has none.
    async fn conn(&self) -> Result<Arc<Conn>, ReadError> {
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let slot = &self.slots[turn];
        if let Some(conn) = slot.open() {
            return Ok(conn);
        }
        // One call connects; the others queue here and take its connection (or its failure
        // is theirs to retry: each call is bounded by the tier's timeout).
        let _connecting = slot.connecting.lock().await;
        if let Some(conn) = slot.open() {
            return Ok(conn);
        }
        let conn = Arc::new(Conn::open(&self.endpoint).await?);
        *slot.conn.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&conn));
        Ok(conn)
    }

    async fn call(&self, cmd: &Cmd) -> Result<Reply, ReadError> {
        self.conn().await?.call(cmd).await
    }

    /// A command answered with `count` values, such as `MGET` of `count` keys.
    ///
    /// # Errors
    /// [`ReadError`] when Redis cannot be reached or answers otherwise.
    pub async fn values(&self, cmd: &Cmd, count: usize) -> Result<Vec<Option<Bytes>>, ReadError> {
        match self.call(cmd).await? {
            Reply::Array(Some(values)) if values.len() == count => Ok(values),
            _ => Err(ReadError::Unexpected("not one value per key")),
        }
    }

    /// A command answered with one value, such as `GET`.
    ///
    /// # Errors
    /// [`ReadError`] when Redis cannot be reached or answers otherwise.
    pub async fn value(&self, cmd: &Cmd) -> Result<Option<Bytes>, ReadError> {
        match self.call(cmd).await? {
            Reply::Value(value) => Ok(value),
            _ => Err(ReadError::Unexpected("not a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        let v6 = ReadConns::for_target(&standalone("redis://[::1]:6390"), 1, timeout);
        assert_eq!(v6.map(|c| c.endpoint.addr()).as_deref(), Some("[::1]:6390"));
        assert!(ReadConns::for_target(&standalone("rediss://cache:6380"), 1, timeout).is_none());
        assert!(ReadConns::for_target(&standalone("redis://cache:6380/?protocol=resp3"), 1, timeout).is_none());
        let cluster = RedisTarget::Cluster {
            nodes: vec!["a:1".to_owned()],
            read_from_replicas: false,
        };
        assert!(ReadConns::for_target(&cluster, 1, timeout).is_none());
    }

    #[test]
    fn commands_go_out_as_arrays_of_values() {
        let mut cmd = redis::cmd("MGET");
        cmd.arg("b:k").arg("");
        assert_eq!(cmd.get_packed_command(), b"*3\r\n$4\r\nMGET\r\n$3\r\nb:k\r\n$0\r\n\r\n");
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
        let values = conns
            .values(redis::cmd("MGET").arg("k1").arg("k2"), 2)
            .await
            .expect("first call");
        assert_eq!(values, vec![Some(Bytes::from_static(b"a")), None]);
        let err = conns.value(redis::cmd("GET").arg("k")).await.expect_err("garbage");
        assert!(
            matches!(err, ReadError::Protocol(ReplyError::UnknownType(b'!'))),
            "{err}"
        );
        // The canned server accepts one connection only: the next call must try a new one.
        let err = tokio::time::timeout(Duration::from_secs(5), conns.value(redis::cmd("GET").arg("k")))
            .await
            .expect("bounded")
            .expect_err("nobody listens");
        assert!(matches!(err, ReadError::Connect { .. } | ReadError::Lost), "{err}");
    }

    /// A server that, after a pause (so the client's socket buffer fills), answers each
    /// `ECHO payload` it receives with the payload.
    async fn slow_echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut commands = ReplyReader::new();
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let Ok(n) = socket.read(&mut buf).await else { return };
                if n == 0 {
                    return;
                }
                commands.feed(&buf[..n]);
                while let Ok(Some(Reply::Array(Some(args)))) = commands.next_reply() {
                    let payload = args.get(1).cloned().flatten().unwrap_or_default();
                    let mut reply = format!("${}\r\n", payload.len()).into_bytes();
                    reply.extend_from_slice(&payload);
                    reply.extend_from_slice(b"\r\n");
                    if socket.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            }
        });
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_the_socket_cannot_take_at_once_keep_their_order() {
        let addr = slow_echo_server().await;
        let conns = ReadConns::for_target(&standalone(&addr), 1, Duration::from_secs(5)).expect("plain");
        let conns = Arc::new(conns);
        let calls = (0..12u8).map(|i| {
            let conns = Arc::clone(&conns);
            tokio::spawn(async move {
                let payload = vec![i; (3 << 19) + usize::from(i)];
                let reply = conns.call(redis::cmd("ECHO").arg(&payload[..])).await;
                (payload, reply)
            })
        });
        for call in futures::future::join_all(calls).await {
            let (payload, reply) = call.expect("task");
            assert_eq!(reply.expect("echo"), Reply::Value(Some(Bytes::from(payload))));
        }
    }

    #[tokio::test]
    async fn a_server_error_and_a_wrong_reply_kind_are_errors() {
        let addr = canned_server(vec![b"-WRONGTYPE nope\r\n", b":1\r\n", b"$1\r\nx\r\n"]).await;
        let conns = ReadConns::for_target(&standalone(&addr), 1, Duration::from_secs(1)).expect("plain");
        let err = conns.value(redis::cmd("GET").arg("k")).await.expect_err("error reply");
        assert!(matches!(&err, ReadError::Server(e) if e == "WRONGTYPE nope"), "{err}");
        let err = conns.value(redis::cmd("GET").arg("k")).await.expect_err("integer");
        assert!(matches!(err, ReadError::Unexpected(_)), "{err}");
        let err = conns
            .values(redis::cmd("MGET").arg("a").arg("b"), 2)
            .await
            .expect_err("one value for two keys");
        assert!(matches!(err, ReadError::Unexpected(_)), "{err}");
    }

    #[tokio::test]
    async fn a_refused_password_is_an_error() {
        let addr = canned_server(vec![b"-WRONGPASS invalid username-password pair\r\n"]).await;
        let url = format!("redis://:secret@{addr}");
        let conns = ReadConns::for_target(&standalone(&url), 1, Duration::from_secs(1)).expect("plain");
        let err = conns.value(redis::cmd("GET").arg("k")).await.expect_err("refused");
        assert!(
            matches!(&err, ReadError::Server(e) if e.starts_with("WRONGPASS")),
            "{err}"
        );
    }
}
