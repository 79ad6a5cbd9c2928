//! The shared Redis/Valkey tier (standalone, or cluster mode), with the key schema of
//! [`RedisKeys`]: object bytes at `bucket:key`, metadata at `{bucket:key}:m`, a per-object
//! write generation at `{bucket:key}:g`.
//!
//! - A hit is one round trip: `MGET body meta generation` (one slot).
//! - Fills store body and metadata with one script that first checks the generation the
//!   fill's lookup saw, so a fill that read the origin before another process's write is
//!   refused (DESIGN.md §4.2, across processes). Both keys get the same TTL.
//! - Invalidation deletes both keys and bumps the generation in one script.
//! - An entry is served only when body and metadata are both present and agree on the size,
//!   so an evicted half of an entry is a miss, never a wrong answer.
//! - Blocks of large objects ([`crate::model::block`]) are plain values at `s3cached:blk:<digest>`,
//!   spread over cluster slots; an object cached as blocks keeps only its metadata record
//!   here (no value at `bucket:key`).
//! - Objects larger than the inline limit are not stored here (they stay in the memory tier,
//!   when there is one): Redis never holds one giant value.
//! - Fail-open: every call is bounded by a timeout; a circuit breaker stops calls to a dead
//!   server; the connection re-establishes itself in the background.
//! - Calls are spread round-robin over [`RedisConfig::connections`] multiplexed connections.
//!   One connection's reader task decodes every reply in turn; more connections let replies
//!   be decoded on several cores at once, which did not pay on 2 cores (one was fastest,
//!   BENCHMARKS.md) but may on larger machines.
//! - On a standalone server over plain TCP, the reads that bring bytes back (the hit's
//!   `MGET`, a block's `GET`) use [`ReadConns`] instead, which keep a large value in the
//!   buffer it was read into; the general client copies it twice.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, RedisResult, Script, ScriptInvocation};
use tracing::{info, warn};

use super::breaker::{Breaker, Permit};
use super::record;
use super::redis_reads::ReadConns;
use super::{CacheTier, FillToken, Lookup, TierError, TierHealth, TierStats};
use crate::metrics::Metrics;
use crate::model::block::BlockKey;
use crate::model::config::{RedisConfig, RedisTarget};
use crate::model::entry::Entry;
use crate::model::key::{CacheKey, RedisKeys};

/// Tier name in metrics and response headers.
pub const NAME: &str = "redis";

/// How long a generation key outlives the last write to its object. Fills are bounded far
/// below this, so a fill can never miss a write because the generation key expired.
const GENERATION_TTL_MS: u64 = 3_600_000;

/// Invalidations of one batch in flight at once (sent together on the multiplexed connection).
const INVALIDATE_CONCURRENCY: usize = 64;

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Self::Single(c) => cmd.query_async(c).await,
            Self::Cluster(c) => cmd.query_async(c).await,
        }
    }

    async fn invoke<T: FromRedisValue>(&mut self, inv: &ScriptInvocation<'_>) -> RedisResult<T> {
        match self {
            Self::Single(c) => inv.invoke_async(c).await,
            Self::Cluster(c) => inv.invoke_async(c).await,
        }
    }
}

/// `count` (at least one) connections to `target`.
async fn open_all(target: &RedisTarget, timeout: Duration, count: usize) -> RedisResult<Vec<Conn>> {
    let mut conns = Vec::with_capacity(count.max(1));
    for _ in 0..count.max(1) {
        conns.push(open(target, timeout).await?);
    }
    Ok(conns)
}

async fn open(target: &RedisTarget, timeout: Duration) -> RedisResult<Conn> {
    let connect_timeout = timeout.max(Duration::from_millis(500));
    match target {
        RedisTarget::Standalone { .. } => {
            let client = redis::Client::open(target.urls().remove(0))?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(connect_timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_secs(2));
            Ok(Conn::Single(client.get_connection_manager_with_config(config).await?))
        }
        RedisTarget::Cluster { read_from_replicas, .. } => {
            let mut builder = ClusterClient::builder(target.urls())
                .connection_timeout(connect_timeout)
                .response_timeout(timeout)
                .retries(1);
            if *read_from_replicas {
                builder = builder.read_routing_strategy(redis::cluster_read_routing::RandomReplicaStrategy);
            }
            Ok(Conn::Cluster(builder.build()?.get_async_connection().await?))
        }
    }
}

// ARGV[5] is 1 for an entry whose bytes are blocks: only its metadata is stored, and no
// body is left at `bucket:key` (readers of that key find nothing rather than old bytes).
const STORE_SCRIPT: &str = r"
local g = redis.call('GET', KEYS[3])
if (g or '') ~= ARGV[1] then return 0 end
if ARGV[5] == '1' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] == '0' then
  redis.call('SET', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2])
end
if ARGV[2] == '0' then
  redis.call('SET', KEYS[2], ARGV[4])
else
  redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[2])
end
return 1
";

const INVALIDATE_SCRIPT: &str = r"
redis.call('DEL', KEYS[1], KEYS[2])
local g = redis.call('INCR', KEYS[3])
redis.call('PEXPIRE', KEYS[3], ARGV[1])
return g
";

/// The Redis tier.
pub struct RedisTier {
    config: RedisConfig,
    /// The connections (empty until connected); calls take them in turn.
    conns: Mutex<Vec<Conn>>,
    /// Connections for the reads that return bytes, where they are used.
    reads: Option<ReadConns>,
    next: AtomicUsize,
    breaker: Breaker,
    metrics: Arc<Metrics>,
    store: Script,
    invalidate: Script,
}

impl RedisTier {
    /// Connects (or, when Redis is unreachable now, keeps trying in the background while the
    /// tier answers every call with an error, so requests go to the origin).
    pub async fn connect(config: RedisConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        let tier = Arc::new(Self {
            conns: Mutex::new(Vec::new()),
            reads: ReadConns::for_target(
                &config.target,
                config.connections,
                config.timeout.max(Duration::from_millis(500)),
            ),
            next: AtomicUsize::new(0),
            breaker: Breaker::new(config.breaker),
            metrics,
            store: Script::new(STORE_SCRIPT),
            invalidate: Script::new(INVALIDATE_SCRIPT),
            config,
        });
        match open_all(&tier.config.target, tier.config.timeout, tier.config.connections).await {
            Ok(conns) => {
                let first = conns.first().cloned();
                *tier.conns.lock().unwrap_or_else(PoisonError::into_inner) = conns;
                if let Some(conn) = first {
                    tier.check_eviction_policy(conn).await;
                }
            }
            Err(e) => {
                warn!(error = %e, "Redis unreachable at start; serving from the origin until it is back");
                let weak = Arc::downgrade(&tier);
                tokio::spawn(async move { reconnect_loop(weak).await });
            }
        }
        tier
    }

    fn unavailable(reason: impl std::fmt::Display) -> TierError {
        TierError::Unavailable {
            tier: NAME,
            reason: reason.to_string(),
        }
    }

    /// The breaker's permit for one call, if the breaker lets it through.
    fn permit(&self) -> Result<Permit<'_>, TierError> {
        self.breaker.allow().ok_or_else(|| {
            self.metrics.tier_bypass(NAME);
            Self::unavailable("circuit open")
        })
    }

    /// A connection and the breaker's permit for one call, if the breaker lets it through.
    fn conn(&self) -> Result<(Conn, Permit<'_>), TierError> {
        let permit = self.permit()?;
        // Without a connection the permit is dropped unused: a probe ends there.
        let conn = {
            let conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
            let turn = self.next.fetch_add(1, Ordering::Relaxed);
            conns.get(turn % conns.len().max(1)).cloned()
        };
        let conn = conn.ok_or_else(|| Self::unavailable("not connected"))?;
        Ok((conn, permit))
    }

    /// Runs one call with the timeout, reporting its outcome through `permit` (a call dropped
    /// before it ends drops the permit, which ends a probe).
    async fn call<T, E: std::fmt::Display>(
        &self,
        permit: Permit<'_>,
        fut: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, TierError> {
        match tokio::time::timeout(self.config.timeout, fut).await {
            Ok(Ok(v)) => {
                permit.success();
                Ok(v)
            }
            Ok(Err(e)) => {
                permit.failure();
                Err(Self::unavailable(e))
            }
            Err(_) => {
                permit.failure();
                Err(Self::unavailable(format!("no answer within {:?}", self.config.timeout)))
            }
        }
    }

    async fn check_eviction_policy(&self, mut conn: Conn) {
        let policy: RedisResult<Vec<String>> = conn
            .query(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy"))
            .await;
        match policy.ok().and_then(|v| v.get(1).cloned()) {
            Some(p) => {
                info!(maxmemory_policy = %p, "Redis eviction policy");
                if p == "noeviction" {
                    warn!(
                        "Redis maxmemory-policy is noeviction: once Redis is full, new entries are refused \
                         (requests still succeed from the origin); use allkeys-lru, or volatile-lru with TTLs"
                    );
                }
            }
            None => info!("cannot read Redis maxmemory-policy (CONFIG may be disabled, as on ElastiCache)"),
        }
    }

    /// Reads the eviction policy, for warnings about TTL rules that contradict it.
    pub async fn eviction_policy(&self) -> Option<String> {
        let (mut conn, permit) = self.conn().ok()?;
        let v: Vec<String> = self
            .call(
                permit,
                conn.query(redis::cmd("CONFIG").arg("GET").arg("maxmemory-policy")),
            )
            .await
            .ok()?;
        v.get(1).cloned()
    }
}

async fn reconnect_loop(tier: std::sync::Weak<RedisTier>) {
    let mut delay = Duration::from_millis(200);
    loop {
        tokio::time::sleep(delay).await;
        let Some(t) = tier.upgrade() else { return };
        match open_all(&t.config.target, t.config.timeout, t.config.connections).await {
            Ok(conns) => {
                info!(connections = conns.len(), "connected to Redis");
                *t.conns.lock().unwrap_or_else(PoisonError::into_inner) = conns;
                t.breaker.success();
                return;
            }
            Err(e) => {
                delay = (delay * 2).min(Duration::from_secs(5));
                tracing::debug!(error = %e, "Redis still unreachable");
            }
        }
    }
}

fn parse_generation(raw: Option<&[u8]>) -> Option<i64> {
    raw.and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
}

#[async_trait]
impl CacheTier for RedisTier {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get(&self, key: &CacheKey) -> Result<Lookup, TierError> {
        let keys = RedisKeys::of(key);
        let mut cmd = redis::cmd("MGET");
        cmd.arg(&keys.body).arg(&keys.meta).arg(&keys.generation);
        let mut values = if let Some(reads) = &self.reads {
            let permit = self.permit()?;
            self.call(permit, reads.values(&cmd, 3)).await?
        } else {
            let (mut conn, permit) = self.conn()?;
            let values: Vec<Option<Vec<u8>>> = self.call(permit, conn.query(&cmd)).await?;
            values.into_iter().map(|v| v.map(Bytes::from)).collect()
        };
        let generation = parse_generation(values.get(2).and_then(Option::as_deref));
        let token = FillToken { generation, epoch: 0 };
        let (body, Some(Some(meta))) = (values.get_mut(0).and_then(Option::take), values.get(1)) else {
            self.metrics.miss(NAME);
            return Ok(Lookup::miss(token));
        };
        let header = match (record::decode(meta), body) {
            (Ok(h), None) if h.in_blocks => (h, Bytes::new()),
            (Ok(h), Some(body)) if !h.in_blocks && h.meta.size == body.len() as u64 => (h, body),
            _ => {
                // Half an entry (one key evicted, or written by another version): a miss.
                self.metrics.miss(NAME);
                return Ok(Lookup::miss(token));
            }
        };
        let (header, body) = header;
        self.metrics.hit(NAME);
        Ok(Lookup {
            entry: Some(Arc::new(header.with_body(body))),
            tier: NAME,
            token,
        })
    }

    async fn insert(
        &self,
        key: CacheKey,
        entry: Arc<Entry>,
        ttl: Option<Duration>,
        token: FillToken,
    ) -> Result<bool, TierError> {
        if entry.body.len() as u64 > self.config.inline_limit {
            // Not kept in Redis; callers see it as stored where it could be (the memory tier).
            return Ok(true);
        }
        let keys = RedisKeys::of(&key);
        let (mut conn, permit) = self.conn()?;
        let expected = token.generation.map(|g| g.to_string()).unwrap_or_default();
        let ttl_ms = ttl.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1));
        let mut inv = self.store.prepare_invoke();
        inv.key(&keys.body)
            .key(&keys.meta)
            .key(&keys.generation)
            .arg(expected)
            .arg(ttl_ms)
            .arg(entry.body.as_ref())
            .arg(record::encode(&record::Header::of(&entry)))
            .arg(if entry.in_blocks { "1" } else { "0" });
        let stored: i64 = self.call(permit, conn.invoke(&inv)).await?;
        Ok(stored == 1)
    }

    async fn invalidate(&self, key: &CacheKey) -> Result<FillToken, TierError> {
        let keys = RedisKeys::of(key);
        let (mut conn, permit) = self.conn()?;
        let mut inv = self.invalidate.prepare_invoke();
        inv.key(&keys.body)
            .key(&keys.meta)
            .key(&keys.generation)
            .arg(GENERATION_TTL_MS);
        let generation: i64 = self.call(permit, conn.invoke(&inv)).await?;
        Ok(FillToken {
            generation: Some(generation),
            epoch: 0,
        })
    }

    async fn invalidate_many(&self, keys: &[CacheKey]) -> Vec<Result<FillToken, TierError>> {
        // Concurrent calls share the multiplexed connection, so they travel pipelined: one
        // pass instead of a round trip per key.
        let mut results = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(INVALIDATE_CONCURRENCY) {
            let mut calls = Vec::with_capacity(chunk.len());
            for key in chunk {
                calls.push(self.invalidate(key));
            }
            results.extend(futures::future::join_all(calls).await);
        }
        results
    }

    async fn get_block(
        &self,
        key: &BlockKey,
        part: Range<usize>,
        block_len: usize,
    ) -> Result<Option<(Bytes, &'static str)>, TierError> {
        if part.start >= part.end || part.end > block_len {
            return Ok(None);
        }
        if part.len() == block_len {
            let mut cmd = redis::cmd("GET");
            cmd.arg(key.storage_key());
            let value = if let Some(reads) = &self.reads {
                let permit = self.permit()?;
                self.call(permit, reads.value(&cmd)).await?
            } else {
                let (mut conn, permit) = self.conn()?;
                let value: Option<Vec<u8>> = self.call(permit, conn.query(&cmd)).await?;
                value.map(Bytes::from)
            };
            return Ok(value.filter(|v| v.len() == block_len).map(|v| (v, NAME)));
        }
        let (mut conn, permit) = self.conn()?;
        // Only the part crosses the network: a 64 KiB range of a 1 MiB block moves 64 KiB.
        let mut cmd = redis::cmd("GETRANGE");
        cmd.arg(key.storage_key()).arg(part.start).arg(part.end - 1);
        let value: Vec<u8> = self.call(permit, conn.query(&cmd)).await?;
        // A missing key reads as empty; a shorter (foreign or damaged) value as short.
        Ok((value.len() == part.len()).then(|| (Bytes::from(value), NAME)))
    }

    async fn put_block(&self, key: &BlockKey, bytes: Bytes, ttl: Option<Duration>) -> Result<(), TierError> {
        let (mut conn, permit) = self.conn()?;
        let mut cmd = redis::cmd("SET");
        cmd.arg(key.storage_key()).arg(bytes.as_ref());
        if let Some(ttl) = ttl {
            cmd.arg("PX")
                .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        }
        let () = self.call(permit, conn.query(&cmd)).await?;
        Ok(())
    }

    fn stats(&self) -> TierStats {
        // Redis' size is Redis' business (INFO memory); this process does not track it.
        TierStats::default()
    }

    fn shared(&self) -> bool {
        true
    }

    fn health(&self) -> TierHealth {
        let connected = !self.conns.lock().unwrap_or_else(PoisonError::into_inner).is_empty();
        if !connected {
            TierHealth::Degraded("redis: not connected".to_owned())
        } else if self.breaker.is_open() {
            TierHealth::Degraded("redis: failing, requests served from the origin".to_owned())
        } else {
            TierHealth::Healthy
        }
    }
}
