//! `memory+redis`: the in-process memory tier (L1) over the shared Redis tier (L2).
//!
//! A lookup tries L1, then L2; an L2 hit is copied into L1. Fills store into L2 first (which
//! refuses them when another process wrote the object since the lookup) and then into L1.
//! Invalidations empty L1, invalidate L2 and go out on the [`Bus`] so every other process
//! empties its L1 too before the write is acknowledged. L1 is used only while the bus can
//! vouch for it.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tracing::debug;

use super::memory::{self, MemoryTier};
use super::redis::RedisTier;
use super::{CacheTier, Coherence, FillToken, Lifetimes, Lookup, TierError, TierHealth, TierStats};
use bytes::Bytes;

use crate::metrics::Metrics;
use crate::model::block::BlockKey;
use crate::model::entry::Entry;
use crate::model::key::CacheKey;
use crate::tier::write_guard::WriteGuard;

/// Tier name in metrics and `/health`.
pub const NAME: &str = "memory+redis";

/// L1 over L2.
pub struct Tiered {
    l1: Arc<MemoryTier>,
    l2: Arc<RedisTier>,
    bus: Arc<dyn Coherence>,
    guard: Arc<WriteGuard>,
    metrics: Arc<Metrics>,
    /// Freshness and lifetimes of entries copied from L2 into L1.
    lifetimes: Arc<dyn Lifetimes>,
}

impl Tiered {
    /// Composes the tiers. `guard` must be the engine's, so writes heard from peers and local
    /// fills are ordered by the same locks; `bus` is the fleet's invalidation channel (the
    /// [`super::bus::Bus`] in production) and `lifetimes` the engine's freshness rules.
    #[must_use]
    pub fn new(
        l1: Arc<MemoryTier>,
        l2: Arc<RedisTier>,
        bus: Arc<dyn Coherence>,
        guard: Arc<WriteGuard>,
        metrics: Arc<Metrics>,
        lifetimes: Arc<dyn Lifetimes>,
    ) -> Self {
        Self {
            l1,
            l2,
            bus,
            guard,
            metrics,
            lifetimes,
        }
    }
}

#[async_trait]
impl CacheTier for Tiered {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn get(&self, key: &CacheKey) -> Result<Lookup, TierError> {
        let epoch = self.bus.epoch();
        let coherent = self.bus.is_coherent();
        // A stale L1 entry falls through to L2, whose lookup carries the write generation a
        // revalidation needs to store its result.
        if coherent
            && let Some(entry) = self.l1.peek(key)
            && self.lifetimes.is_fresh(key, &entry)
        {
            self.metrics.hit(memory::NAME);
            return Ok(Lookup {
                entry: Some(entry),
                tier: memory::NAME,
                token: FillToken {
                    generation: None,
                    epoch,
                },
            });
        }
        self.metrics.miss(memory::NAME);
        let snapshot = self.guard.snapshot();
        let mut lookup = self.l2.get(key).await?;
        lookup.token.epoch = epoch;
        if let Some(entry) = &lookup.entry
            && coherent
            && self.bus.epoch() == epoch
            && let Some(_permit) = self.guard.permit_insert(key, snapshot).await
        {
            self.l1
                .put(key.clone(), Arc::clone(entry), self.lifetimes.retention(key, entry));
        }
        Ok(lookup)
    }

    async fn insert(
        &self,
        key: CacheKey,
        entry: Arc<Entry>,
        ttl: Option<Duration>,
        token: FillToken,
    ) -> Result<bool, TierError> {
        match self.l2.insert(key.clone(), Arc::clone(&entry), ttl, token).await {
            Ok(false) => return Ok(false),
            Ok(true) => {}
            // L2 down: peers' writes still reach this process's guard through the bus (or the
            // bus is down too and L1 is not trusted), so L1 may take the entry.
            Err(e) => {
                self.metrics.tier_error(super::redis::NAME);
                debug!(%key, error = %e, "redis insert failed; memory tier only");
            }
        }
        if self.bus.is_coherent() && self.bus.epoch() == token.epoch {
            self.l1.put(key, entry, ttl);
        }
        Ok(true)
    }

    async fn invalidate(&self, key: &CacheKey) -> Result<FillToken, TierError> {
        self.l1.remove(key);
        let mut token = self.l2.invalidate(key).await?;
        token.epoch = self.bus.epoch();
        Ok(token)
    }

    async fn invalidate_many(&self, keys: &[CacheKey]) -> Vec<Result<FillToken, TierError>> {
        for key in keys {
            self.l1.remove(key);
        }
        let mut results = self.l2.invalidate_many(keys).await;
        let epoch = self.bus.epoch();
        for token in results.iter_mut().flatten() {
            token.epoch = epoch;
        }
        results
    }

    async fn announce(&self, keys: &[CacheKey]) {
        if let Err(e) = self.bus.broadcast(keys).await {
            debug!(keys = keys.len(), error = %e, "peers not told about this write");
        }
    }

    fn peek_local(&self, key: &CacheKey) -> Option<(Arc<Entry>, &'static str)> {
        // Only while the bus is up: otherwise L1 may hold entries peers have written over.
        if !self.bus.is_coherent() {
            return None;
        }
        Some((self.l1.peek(key)?, memory::NAME))
    }

    async fn get_block(
        &self,
        key: &BlockKey,
        part: Range<usize>,
        block_len: usize,
    ) -> Result<Option<(Bytes, &'static str)>, TierError> {
        // Blocks never change under their key, so L1 needs no vouching by the bus.
        if let Some(bytes) = self.l1.peek_block_part(key, part.clone(), block_len) {
            return Ok(Some((bytes, memory::NAME)));
        }
        // The whole block, so that L1 holds it for the next reads.
        let Some((block, tier)) = self.l2.get_block(key, 0..block_len, block_len).await? else {
            return Ok(None);
        };
        self.l1.put_block_now(key, block.clone(), None);
        Ok((part.end <= block.len()).then(|| (block.slice(part), tier)))
    }

    async fn put_block(&self, key: &BlockKey, bytes: Bytes, ttl: Option<Duration>) -> Result<(), TierError> {
        self.l1.put_block_now(key, bytes.clone(), ttl);
        self.l2.put_block(key, bytes, ttl).await
    }

    fn stats(&self) -> TierStats {
        self.l1.stats()
    }

    fn shared(&self) -> bool {
        true
    }

    fn health(&self) -> TierHealth {
        match self.l2.health() {
            TierHealth::Healthy if !self.bus.is_coherent() => {
                TierHealth::Degraded("memory tier not in use: invalidation bus connecting".to_owned())
            }
            other => other,
        }
    }
}
