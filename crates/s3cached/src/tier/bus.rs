//! The invalidation bus: how processes sharing a Redis keep their memory tiers coherent
//! (DESIGN.md §4.2, fleet-wide read-after-write).
//!
//! Every process subscribes to one Redis pub/sub channel. A write publishes the objects it
//! changed; every other process drops them from its memory tier (recording the write in its
//! fill guard) and answers with an acknowledgement. The writer waits for the acks of every
//! live peer, bounded by a timeout, before the client gets its answer.
//!
//! Peers are known from heartbeats. A process only trusts its memory tier while its
//! subscription is up and has been up long enough for every peer to know it; when the
//! subscription drops it empties its memory tier, bumps its epoch (so fills that began
//! before cannot land) and reads through Redis and the origin until it is back.
//!
//! Messages are a kind byte and length-prefixed fields: `H id` (heartbeat), `I id msg bucket
//! key version` (invalidate one object), `B id msg count` followed by `count` times `bucket
//! key version` (invalidate several, at most [`MAX_PER_MESSAGE`]), `A to msg from` (ack). The
//! kind byte versions the format: a process ignores kinds it does not know, and a write of one
//! object still goes out as `I`, which every release reads.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures::StreamExt;
use redis::aio::ConnectionManager;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::Coherence;
use super::memory::MemoryTier;
use crate::metrics::Metrics;
use crate::model::config::BusConfig;
use crate::model::key::CacheKey;
use crate::tier::write_guard::WriteGuard;

/// The channel every s3cached process sharing a Redis listens on.
pub const CHANNEL: &str = "s3cached:invalidate";

/// The most objects one invalidation message names; a write of more sends several messages
/// (and waits for all of their acknowledgements at once), which bounds a message's size.
pub const MAX_PER_MESSAGE: usize = 1_000;

/// One object an invalidation names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version, for a versioned entry.
    pub version: Option<String>,
}

impl Named {
    /// The object `key` stands for.
    #[must_use]
    pub fn of(key: &CacheKey) -> Self {
        Self {
            bucket: key.bucket().to_owned(),
            key: key.key().to_owned(),
            version: key.version().map(str::to_owned),
        }
    }
}

/// A message on the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// "I am alive."
    Heartbeat {
        /// Sender.
        from: String,
    },
    /// "Drop these objects."
    Invalidate {
        /// Sender.
        from: String,
        /// Sender's message number.
        id: u64,
        /// The objects, at least one and at most [`MAX_PER_MESSAGE`].
        objects: Vec<Named>,
    },
    /// "Dropped."
    Ack {
        /// The writer being answered.
        to: String,
        /// The writer's message number.
        id: u64,
        /// The peer answering.
        from: String,
    },
}

fn put(out: &mut Vec<u8>, field: &str) {
    out.extend_from_slice(field.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(field.as_bytes());
}

fn put_object(out: &mut Vec<u8>, object: &Named) {
    put(out, &object.bucket);
    put(out, &object.key);
    // "-" for none, "+version" for some: keeps an empty version id distinct.
    put(
        out,
        &object
            .version
            .as_ref()
            .map_or_else(|| "-".to_owned(), |v| format!("+{v}")),
    );
}

/// Reads length-prefixed fields off the front of a message.
struct Fields<'a> {
    rest: &'a [u8],
}

impl Fields<'_> {
    fn string(&mut self) -> Option<String> {
        let colon = self.rest.iter().position(|&b| b == b':')?;
        let len: usize = std::str::from_utf8(&self.rest[..colon]).ok()?.parse().ok()?;
        // The length comes from the wire: it may be anything up to usize::MAX.
        let start = colon.checked_add(1)?;
        let end = start.checked_add(len)?;
        let body = self.rest.get(start..end)?;
        let s = String::from_utf8(body.to_vec()).ok()?;
        self.rest = self.rest.get(end..)?;
        Some(s)
    }

    fn object(&mut self) -> Option<Named> {
        let bucket = self.string()?;
        let key = self.string()?;
        let version = match self.string()? {
            v if v == "-" => None,
            v => Some(v.strip_prefix('+')?.to_owned()),
        };
        Some(Named { bucket, key, version })
    }
}

impl Message {
    /// Wire form.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        match self {
            Self::Heartbeat { from } => {
                out.push(b'H');
                put(&mut out, from);
            }
            Self::Invalidate { from, id, objects } => {
                if objects.len() == 1 {
                    out.push(b'I');
                    put(&mut out, from);
                    put(&mut out, &id.to_string());
                } else {
                    out.push(b'B');
                    put(&mut out, from);
                    put(&mut out, &id.to_string());
                    put(&mut out, &objects.len().to_string());
                }
                for object in objects {
                    put_object(&mut out, object);
                }
            }
            Self::Ack { to, id, from } => {
                out.push(b'A');
                put(&mut out, to);
                put(&mut out, &id.to_string());
                put(&mut out, from);
            }
        }
        out
    }

    /// Parses the wire form; `None` for anything malformed (or of a kind this release does
    /// not know).
    #[must_use]
    pub fn decode(buf: &[u8]) -> Option<Self> {
        let (&kind, rest) = buf.split_first()?;
        let mut fields = Fields { rest };
        let msg = match kind {
            b'H' => Self::Heartbeat { from: fields.string()? },
            b'I' => {
                let from = fields.string()?;
                let id = fields.string()?.parse().ok()?;
                let objects = vec![fields.object()?];
                Self::Invalidate { from, id, objects }
            }
            b'B' => {
                let from = fields.string()?;
                let id = fields.string()?.parse().ok()?;
                let count: usize = fields.string()?.parse().ok()?;
                if !(1..=MAX_PER_MESSAGE).contains(&count) {
                    return None;
                }
                let objects = (0..count).map(|_| fields.object()).collect::<Option<Vec<_>>>()?;
                Self::Invalidate { from, id, objects }
            }
            b'A' => {
                let to = fields.string()?;
                let id = fields.string()?.parse().ok()?;
                Self::Ack {
                    to,
                    id,
                    from: fields.string()?,
                }
            }
            _ => return None,
        };
        fields.rest.is_empty().then_some(msg)
    }
}

struct Pending {
    waiting_for: HashSet<String>,
    done: Option<oneshot::Sender<()>>,
}

/// The bus of one process.
pub struct Bus {
    id: String,
    urls: Vec<String>,
    config: BusConfig,
    l1: Arc<MemoryTier>,
    guard: Arc<WriteGuard>,
    metrics: Arc<Metrics>,
    publisher: Mutex<Option<ConnectionManager>>,
    peers: Mutex<HashMap<String, Instant>>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    epoch: AtomicU64,
    connected: AtomicBool,
    trusted_from: Mutex<Option<Instant>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[async_trait::async_trait]
impl Coherence for Bus {
    fn epoch(&self) -> u64 {
        Bus::epoch(self)
    }

    fn is_coherent(&self) -> bool {
        Bus::is_coherent(self)
    }

    async fn broadcast(&self, keys: &[CacheKey]) -> Result<(), String> {
        Bus::broadcast(self, keys).await
    }
}

impl Bus {
    /// Starts the bus on the first reachable of `urls` (any node of a cluster will do: Redis
    /// Cluster forwards published messages to every node).
    pub fn start(
        urls: Vec<String>,
        config: BusConfig,
        l1: Arc<MemoryTier>,
        guard: Arc<WriteGuard>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        let id = format!("{:016x}", rand_u64());
        let bus = Arc::new(Self {
            id,
            urls,
            config,
            l1,
            guard,
            metrics,
            publisher: Mutex::new(None),
            peers: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            epoch: AtomicU64::new(1),
            connected: AtomicBool::new(false),
            trusted_from: Mutex::new(None),
        });
        tokio::spawn(subscribe_loop(Arc::downgrade(&bus)));
        tokio::spawn(heartbeat_loop(Arc::downgrade(&bus)));
        bus
    }

    /// This process's id on the bus.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Changes whenever the subscription drops; fills present the epoch of their lookup.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Whether the memory tier may be trusted now.
    #[must_use]
    pub fn is_coherent(&self) -> bool {
        self.connected.load(Ordering::SeqCst) && lock(&self.trusted_from).is_some_and(|t| Instant::now() >= t)
    }

    /// Tells every peer to drop `keys`, and waits (bounded) for their acknowledgements: one
    /// message per [`MAX_PER_MESSAGE`] keys, then one wait for the acknowledgements of all.
    ///
    /// # Errors
    /// A description when the bus is down: peers may still hold the objects (they will have
    /// stopped trusting their memory tiers if their own subscriptions dropped too).
    pub async fn broadcast(&self, keys: &[CacheKey]) -> Result<(), String> {
        if keys.is_empty() {
            return Ok(());
        }
        let Some(mut conn) = lock(&self.publisher).clone() else {
            return Err("invalidation bus not connected".to_owned());
        };
        let live = self.live_peers();
        let mut ids = Vec::new();
        let mut acks = Vec::new();
        for chunk in keys.chunks(MAX_PER_MESSAGE) {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            ids.push(id);
            if !live.is_empty() {
                let (tx, rx) = oneshot::channel();
                lock(&self.pending).insert(
                    id,
                    Pending {
                        waiting_for: live.clone(),
                        done: Some(tx),
                    },
                );
                acks.push(rx);
            }
            let msg = invalidation(&self.id, id, chunk);
            let published: redis::RedisResult<i64> = tokio::time::timeout(
                self.config.ack_timeout,
                redis::cmd("PUBLISH")
                    .arg(CHANNEL)
                    .arg(msg.encode())
                    .query_async(&mut conn),
            )
            .await
            .unwrap_or_else(|_| Err(redis::RedisError::from((redis::ErrorKind::Io, "publish timed out"))));
            self.metrics.bus_message("sent");
            if let Err(e) = published {
                self.forget(&ids);
                return Err(format!("publish failed: {e}"));
            }
        }
        if !acks.is_empty()
            && tokio::time::timeout(self.config.ack_timeout, futures::future::join_all(acks))
                .await
                .is_err()
        {
            let missing: HashSet<String> = {
                let pending = lock(&self.pending);
                ids.iter()
                    .filter_map(|id| pending.get(id))
                    .flat_map(|p| p.waiting_for.iter().cloned())
                    .collect()
            };
            if !missing.is_empty() {
                self.metrics.bus_ack_timeout();
                warn!(
                    first = %keys[0],
                    keys = keys.len(),
                    missing = missing.len(),
                    "peers did not acknowledge an invalidation in time"
                );
            }
        }
        self.forget(&ids);
        Ok(())
    }

    fn forget(&self, ids: &[u64]) {
        let mut pending = lock(&self.pending);
        for id in ids {
            pending.remove(id);
        }
    }

    fn live_peers(&self) -> HashSet<String> {
        let horizon = self.config.heartbeat * 3;
        let mut peers = lock(&self.peers);
        peers.retain(|_, seen| seen.elapsed() < horizon);
        peers.keys().cloned().collect()
    }

    /// Drops everything this process cannot vouch for.
    fn distrust(&self) {
        self.connected.store(false, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        *lock(&self.trusted_from) = None;
        self.l1.clear();
    }

    async fn handle(&self, payload: &[u8], last_seen_self: &mut Instant) {
        let Some(msg) = Message::decode(payload) else {
            debug!("ignoring a malformed bus message");
            return;
        };
        match msg {
            Message::Heartbeat { from } => {
                if from == self.id {
                    *last_seen_self = Instant::now();
                } else {
                    lock(&self.peers).insert(from, Instant::now());
                }
            }
            Message::Invalidate { from, id, objects } => {
                if from == self.id {
                    return;
                }
                lock(&self.peers).insert(from.clone(), Instant::now());
                self.metrics.bus_message("received");
                // In a task of its own: the write guard's stripe may be busy, and the
                // subscription must keep delivering (acks to this process's own writes, too).
                let (guard, l1, me) = (Arc::clone(&self.guard), Arc::clone(&self.l1), self.id.clone());
                let publisher = lock(&self.publisher).clone();
                tokio::spawn(async move {
                    for object in objects {
                        if let Ok(k) = CacheKey::new(&object.bucket, &object.key) {
                            let k = k.with_version(object.version.as_deref());
                            // Recorded like a local write: a fill of this object that began
                            // before cannot land in the memory tier after this.
                            let _permit = guard.begin_write(&k).await;
                            l1.remove(&k);
                        }
                    }
                    let ack = Message::Ack { to: from, id, from: me };
                    if let Some(mut conn) = publisher {
                        let _: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                            .arg(CHANNEL)
                            .arg(ack.encode())
                            .query_async(&mut conn)
                            .await;
                    }
                });
            }
            Message::Ack { to, id, from } => {
                if to != self.id {
                    return;
                }
                let mut pending = lock(&self.pending);
                if let Some(p) = pending.get_mut(&id) {
                    p.waiting_for.remove(&from);
                    if p.waiting_for.is_empty()
                        && let Some(done) = p.done.take()
                    {
                        let _ = done.send(());
                    }
                }
            }
        }
    }
}

/// The invalidation message naming `keys` (at most [`MAX_PER_MESSAGE`] of them).
fn invalidation(from: &str, id: u64, keys: &[CacheKey]) -> Message {
    Message::Invalidate {
        from: from.to_owned(),
        id,
        objects: keys.iter().map(Named::of).collect(),
    }
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

async fn heartbeat_loop(bus: std::sync::Weak<Bus>) {
    loop {
        let Some(b) = bus.upgrade() else { return };
        let interval = b.config.heartbeat;
        let publisher = lock(&b.publisher).clone();
        if let Some(mut conn) = publisher {
            let hb = Message::Heartbeat { from: b.id.clone() }.encode();
            let _ = tokio::time::timeout(
                interval,
                redis::cmd("PUBLISH").arg(CHANNEL).arg(hb).query_async::<i64>(&mut conn),
            )
            .await;
        }
        drop(b);
        tokio::time::sleep(interval).await;
    }
}

async fn subscribe_loop(bus: std::sync::Weak<Bus>) {
    let mut attempt = 0usize;
    loop {
        let Some(b) = bus.upgrade() else { return };
        let url = b.urls[attempt % b.urls.len().max(1)].clone();
        attempt += 1;
        match session(&b, &url).await {
            Ok(()) => info!(%url, "invalidation bus disconnected"),
            Err(e) => debug!(%url, error = %e, "invalidation bus unavailable"),
        }
        b.distrust();
        *lock(&b.publisher) = None;
        let pause = b.config.heartbeat;
        drop(b);
        tokio::time::sleep(pause).await;
    }
}

/// One subscription, until it fails. The memory tier is trusted only from two heartbeat
/// intervals after subscribing: by then every peer has heard this process's heartbeat and
/// waits for its acknowledgements.
async fn session(bus: &Arc<Bus>, url: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let timeout = bus.config.heartbeat * 4;
    let publisher = tokio::time::timeout(timeout, client.get_connection_manager())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    let mut pubsub = tokio::time::timeout(timeout, client.get_async_pubsub())
        .await
        .map_err(|_| redis::RedisError::from((redis::ErrorKind::Io, "connect timed out")))??;
    pubsub.subscribe(CHANNEL).await?;
    // Anything cached before this point may have missed invalidations.
    bus.l1.clear();
    *lock(&bus.publisher) = Some(publisher);
    *lock(&bus.trusted_from) = Some(Instant::now() + bus.config.heartbeat * 2);
    bus.connected.store(true, Ordering::SeqCst);
    info!(%url, id = %bus.id, "invalidation bus connected");
    let mut stream = pubsub.on_message();
    let mut last_seen_self = Instant::now();
    loop {
        // Our own heartbeats come back through the subscription: silence means it is broken.
        let silence = bus.config.heartbeat * 4;
        match tokio::time::timeout(silence, stream.next()).await {
            Ok(Some(msg)) => bus.handle(msg.get_payload_bytes(), &mut last_seen_self).await,
            Ok(None) => return Ok(()),
            Err(_) => {}
        }
        if last_seen_self.elapsed() > silence {
            warn!("invalidation bus silent; treating the subscription as lost");
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let msgs = [
            Message::Heartbeat { from: "abc".into() },
            Message::Invalidate {
                from: "abc".into(),
                id: 42,
                objects: vec![named("bkt", "a:b|c 12:{x}\n", None)],
            },
            Message::Invalidate {
                from: "a".into(),
                id: 1,
                objects: vec![named("b", "k", Some(""))],
            },
            Message::Invalidate {
                from: "a".into(),
                id: 2,
                objects: vec![
                    named("b", "k", Some("v1")),
                    named("b", "k", None),
                    named("c", "3:x", None),
                ],
            },
            Message::Ack {
                to: "abc".into(),
                id: 42,
                from: "def".into(),
            },
        ];
        for m in msgs {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
    }

    fn named(bucket: &str, key: &str, version: Option<&str>) -> Named {
        Named {
            bucket: bucket.into(),
            key: key.into(),
            version: version.map(Into::into),
        }
    }

    #[test]
    fn one_object_keeps_the_single_invalidation_format() {
        let one = Message::Invalidate {
            from: "a".into(),
            id: 7,
            objects: vec![named("bkt", "k", None)],
        };
        // What releases that only know `I` send and read.
        assert_eq!(one.encode(), b"I1:a1:73:bkt1:k1:-");
    }

    #[test]
    fn a_batch_of_keys_goes_out_in_bounded_messages() {
        let keys: Vec<CacheKey> = (0..2_500)
            .map(|i| CacheKey::new("bkt", &format!("k{i}")).unwrap())
            .collect();
        let messages: Vec<Message> = keys
            .chunks(MAX_PER_MESSAGE)
            .enumerate()
            .map(|(i, chunk)| invalidation("me", i as u64, chunk))
            .collect();
        assert_eq!(messages.len(), 3);
        let mut seen = Vec::new();
        for m in &messages {
            let Some(Message::Invalidate { objects, .. }) = Message::decode(&m.encode()) else {
                panic!("undecodable: {m:?}");
            };
            assert!(objects.len() <= MAX_PER_MESSAGE);
            seen.extend(objects);
        }
        assert_eq!(seen, keys.iter().map(Named::of).collect::<Vec<_>>());
    }

    #[test]
    fn lengths_near_usize_max_are_rejected_without_panicking() {
        let max = usize::MAX;
        let near = [max, max - 1, max - 2, max / 2 + 1];
        for len in near {
            let crafted = [
                format!("H{len}:abc"),
                format!("A1:a1:1{len}:b"),
                format!("I1:a1:1{len}:bkt1:k1:-"),
                format!("I1:a1:13:bkt{len}:k1:-"),
                format!("B1:a1:1{len}:3:bkt1:k1:-"),
                format!("B1:a1:11:2{len}:bkt1:k1:-"),
            ];
            for bad in crafted {
                assert_eq!(Message::decode(bad.as_bytes()), None, "{bad}");
            }
        }
        // Longer than usize, counts outside a message's bounds, more objects claimed than sent.
        for bad in [
            "H99999999999999999999999:a",
            "B1:a1:11:0",
            "B1:a1:14:1001",
            "B1:a1:12:23:bkt1:k1:-",
        ] {
            assert_eq!(Message::decode(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn malformed_messages_are_rejected() {
        for bad in [&b""[..], b"X3:abc", b"H3:ab", b"H3:abcx", b"I1:a", b"A1:a2:xx1:b"] {
            assert_eq!(Message::decode(bad), None, "{bad:?}");
        }
    }
}
