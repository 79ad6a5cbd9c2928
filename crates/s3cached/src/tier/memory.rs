//! The in-process memory tier: a byte-weighted moka cache of entries, and a second one of
//! blocks ([`crate::model::block`]) with its own capacity, so a scan of large objects cannot push the
//! hot small objects out.
//!
//! Capacity is counted in bytes ([`Entry::weight`]). Eviction is LRU by default: a
//! write-through entry must be admitted even when the cache is full, which moka's TinyLFU
//! admission policy does not promise; TinyLFU is available for scan-heavy workloads.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::Expiry;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy as MokaPolicy;
use moka::sync::Cache;

use bytes::Bytes;

use super::{CacheTier, FillToken, Lookup, TierError, TierStats};
use crate::metrics::Metrics;
use crate::model::block::BlockKey;
use crate::model::config::{DEFAULT_BLOCK_CAPACITY, EvictionPolicy};
use crate::model::entry::Entry;
use crate::model::key::CacheKey;

/// Tier name in metrics and response headers.
pub const NAME: &str = "memory";

#[derive(Clone)]
struct Slot {
    entry: Arc<Entry>,
    ttl: Option<Duration>,
}

struct PerEntryTtl;

impl Expiry<CacheKey, Slot> for PerEntryTtl {
    fn expire_after_create(&self, _key: &CacheKey, value: &Slot, _now: Instant) -> Option<Duration> {
        value.ttl
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &Slot,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        value.ttl
    }
}

#[derive(Clone)]
struct BlockSlot {
    bytes: Bytes,
    ttl: Option<Duration>,
}

struct PerBlockTtl;

impl Expiry<String, BlockSlot> for PerBlockTtl {
    fn expire_after_create(&self, _key: &String, value: &BlockSlot, _now: Instant) -> Option<Duration> {
        value.ttl
    }
}

/// The in-process tier.
pub struct MemoryTier {
    cache: Cache<CacheKey, Slot>,
    blocks: Cache<String, BlockSlot>,
    metrics: Option<Arc<Metrics>>,
}

fn block_cache(capacity_bytes: u64) -> Cache<String, BlockSlot> {
    Cache::builder()
        .max_capacity(capacity_bytes)
        .weigher(|k: &String, v: &BlockSlot| u32::try_from(v.bytes.len() + k.len() + 64).unwrap_or(u32::MAX))
        .expire_after(PerBlockTtl)
        .build()
}

impl MemoryTier {
    /// A tier holding at most `capacity_bytes` of weighted entries.
    #[must_use]
    pub fn new(capacity_bytes: u64, policy: EvictionPolicy, metrics: Option<Arc<Metrics>>) -> Self {
        let moka_policy = match policy {
            EvictionPolicy::Lru => MokaPolicy::lru(),
            EvictionPolicy::TinyLfu => MokaPolicy::tiny_lfu(),
        };
        let mut builder = Cache::builder()
            .max_capacity(capacity_bytes)
            .weigher(|_k: &CacheKey, v: &Slot| u32::try_from(v.entry.weight()).unwrap_or(u32::MAX))
            .eviction_policy(moka_policy)
            .expire_after(PerEntryTtl);
        if let Some(metrics) = metrics.clone() {
            builder = builder.eviction_listener(move |_k, _v, cause| match cause {
                RemovalCause::Size => metrics.eviction(NAME, "size"),
                RemovalCause::Expired => metrics.eviction(NAME, "expired"),
                RemovalCause::Explicit | RemovalCause::Replaced => {}
            });
        }
        Self {
            cache: builder.build(),
            blocks: block_cache(DEFAULT_BLOCK_CAPACITY),
            metrics,
        }
    }

    /// The same tier with a block cache of `capacity_bytes` (0: blocks are not kept here).
    #[must_use]
    pub fn with_block_capacity(mut self, capacity_bytes: u64) -> Self {
        self.blocks = block_cache(capacity_bytes);
        self
    }

    /// The bytes `part` of a block held here whole (`block_len` bytes), without counting.
    #[must_use]
    pub fn peek_block_part(&self, key: &BlockKey, part: Range<usize>, block_len: usize) -> Option<Bytes> {
        let block = self.blocks.get(key.storage_key())?.bytes;
        (block.len() == block_len && part.start <= part.end && part.end <= block_len).then(|| block.slice(part))
    }

    /// Stores a block.
    pub fn put_block_now(&self, key: &BlockKey, bytes: Bytes, ttl: Option<Duration>) {
        if self.blocks.policy().max_capacity() != Some(0) {
            self.blocks
                .insert(key.storage_key().to_owned(), BlockSlot { bytes, ttl });
        }
    }

    /// Looks an entry up without counting a hit or miss.
    #[must_use]
    pub fn peek(&self, key: &CacheKey) -> Option<Arc<Entry>> {
        self.cache.get(key).map(|slot| slot.entry)
    }

    /// Stores an entry unconditionally.
    pub fn put(&self, key: CacheKey, entry: Arc<Entry>, ttl: Option<Duration>) {
        self.cache.insert(key, Slot { entry, ttl });
    }

    /// Removes an entry.
    pub fn remove(&self, key: &CacheKey) {
        self.cache.invalidate(key);
    }

    /// Drops every entry (used when this process can no longer vouch for them).
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Runs moka's pending maintenance (evictions, expirations) now; tests use it to observe
    /// a settled state.
    pub fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }
}

#[async_trait]
impl CacheTier for MemoryTier {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get(&self, key: &CacheKey) -> Result<Lookup, TierError> {
        let entry = self.peek(key);
        if let Some(m) = &self.metrics {
            if entry.is_some() { m.hit(NAME) } else { m.miss(NAME) }
        }
        Ok(Lookup {
            entry,
            tier: NAME,
            token: FillToken::default(),
        })
    }

    async fn insert(
        &self,
        key: CacheKey,
        entry: Arc<Entry>,
        ttl: Option<Duration>,
        _token: FillToken,
    ) -> Result<bool, TierError> {
        // In-process races are the engine's write guard's job; tokens matter to shared tiers.
        self.put(key, entry, ttl);
        Ok(true)
    }

    async fn invalidate(&self, key: &CacheKey) -> Result<FillToken, TierError> {
        self.remove(key);
        Ok(FillToken::default())
    }

    fn peek_local(&self, key: &CacheKey) -> Option<(Arc<Entry>, &'static str)> {
        Some((self.peek(key)?, NAME))
    }

    async fn get_block(
        &self,
        key: &BlockKey,
        part: Range<usize>,
        block_len: usize,
    ) -> Result<Option<(Bytes, &'static str)>, TierError> {
        Ok(self.peek_block_part(key, part, block_len).map(|b| (b, NAME)))
    }

    async fn put_block(&self, key: &BlockKey, bytes: Bytes, ttl: Option<Duration>) -> Result<(), TierError> {
        self.put_block_now(key, bytes, ttl);
        Ok(())
    }

    fn stats(&self) -> TierStats {
        TierStats {
            entries: self.cache.entry_count() + self.blocks.entry_count(),
            bytes: self.cache.weighted_size() + self.blocks.weighted_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::entry::ObjectMeta;

    fn entry(len: usize) -> Arc<Entry> {
        Arc::new(Entry::new(
            ObjectMeta {
                size: len as u64,
                ..ObjectMeta::default()
            },
            Bytes::from(vec![7u8; len]),
        ))
    }

    #[tokio::test]
    async fn conformance() {
        super::super::conformance::run(&MemoryTier::new(64 << 20, EvictionPolicy::Lru, None)).await;
    }

    #[tokio::test]
    async fn capacity_is_counted_in_bytes() {
        let metrics = Arc::new(Metrics::new());
        let tier = MemoryTier::new(100 * 1024, EvictionPolicy::Lru, Some(Arc::clone(&metrics)));
        for i in 0..20 {
            let key = CacheKey::new("bkt", &format!("k{i}")).unwrap();
            tier.insert(key, entry(10 * 1024), None, FillToken::default())
                .await
                .unwrap();
        }
        tier.run_pending_tasks();
        let stats = tier.stats();
        assert!(stats.bytes <= 100 * 1024, "{stats:?}");
        assert!(stats.entries < 20 && stats.entries >= 5, "{stats:?}");
        // The newest entry is admitted under LRU.
        let newest = CacheKey::new("bkt", "k19").unwrap();
        assert!(tier.get(&newest).await.unwrap().entry.is_some());
        assert!(
            metrics
                .encode()
                .contains("s3cached_cache_evictions_total{tier=\"memory\",cause=\"size\"}")
        );
    }
}
