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
//! The messages and their wire format are in [`message`].

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

pub mod message;

use self::message::invalidation;
pub use self::message::{MAX_PER_MESSAGE, Message, Named};

/// The channel every s3cached process sharing a Redis listens on.
pub const CHANNEL: &str = "s3cached:invalidate";

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
