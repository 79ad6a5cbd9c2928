//! Cache tiers: where entries are kept. Every tier implements [`CacheTier`]; the engine holds
//! one `Arc<dyn CacheTier>` built from configuration.
//!
//! The [`conformance`] module is one test suite that every tier must pass.

pub mod breaker;
pub mod bus;
pub mod conformance;
pub mod memory;
pub mod record;
pub mod redis;
pub mod redis_reads;
pub mod resp_reply;
pub mod tiered;
pub mod write_guard;

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use bytes::Bytes;

use crate::model::block::BlockKey;
use crate::model::entry::Entry;
use crate::model::key::CacheKey;

/// A tier failure. The engine logs it, counts it and answers from the origin.
#[derive(Debug, thiserror::Error)]
pub enum TierError {
    /// The tier could not be reached or did not answer in time.
    #[error("cache tier {tier} unavailable: {reason}")]
    Unavailable {
        /// Tier name.
        tier: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The tier returned data that does not decode as an entry.
    #[error("cache tier {tier} returned a corrupt entry for {key}: {reason}")]
    Corrupt {
        /// Tier name.
        tier: &'static str,
        /// The entry's key.
        key: String,
        /// What did not decode.
        reason: String,
    },
}

/// Size of a tier's contents, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Entries held.
    pub entries: u64,
    /// Weighted bytes held.
    pub bytes: u64,
}

/// What a fill must present to store an entry: the state of the object's shared write
/// generation (and of the process's invalidation channel) when its lookup missed. A shared
/// tier refuses the insert when a write to the object happened since, in any process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FillToken {
    /// The object's write generation in the shared tier (`None`: never written, or no shared
    /// tier).
    pub generation: Option<i64>,
    /// The invalidation channel's connection epoch (see the tiered tier).
    pub epoch: u64,
}

/// The result of a lookup.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// The entry, on a hit.
    pub entry: Option<Arc<Entry>>,
    /// Name of the tier that answered (on a hit).
    pub tier: &'static str,
    /// For a fill after a miss.
    pub token: FillToken,
}

impl Lookup {
    /// A miss carrying `token`.
    #[must_use]
    pub fn miss(token: FillToken) -> Self {
        Self {
            entry: None,
            tier: "",
            token,
        }
    }
}

/// Whether a tier can currently do its job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TierHealth {
    /// Working.
    Healthy,
    /// Answering from the origin instead (the reason is for `/health`).
    Degraded(String),
}

/// How long entries live and whether one may still be answered: the engine's freshness rules,
/// handed to tiers that copy entries between levels (the tier layer never sees the engine).
pub trait Lifetimes: Send + Sync + 'static {
    /// True while `entry` (kept for `key`) may be answered without asking the origin.
    fn is_fresh(&self, key: &CacheKey, entry: &Entry) -> bool;

    /// How long a tier keeps `entry` for `key`; `None` keeps it until evicted or invalidated.
    fn retention(&self, key: &CacheKey, entry: &Entry) -> Option<Duration>;
}

/// The fleet's invalidation channel as a composed tier sees it: whether this process's memory
/// level may be trusted, and how to tell peers about a write. Implemented by
/// [`bus::Bus`]; tests may inject their own.
#[async_trait]
pub trait Coherence: Send + Sync + 'static {
    /// The channel's connection epoch; it changes whenever the channel was lost, so fills that
    /// began before cannot land in memory.
    fn epoch(&self) -> u64;

    /// True while every write made by a peer reaches this process before it is acknowledged.
    fn is_coherent(&self) -> bool;

    /// Tells every peer that `keys` changed and waits (bounded) for their acknowledgements:
    /// one announcement for all of them, so a write of many objects waits once.
    ///
    /// # Errors
    /// A description of why peers could not be told.
    async fn broadcast(&self, keys: &[CacheKey]) -> Result<(), String>;
}

/// A place to keep cache entries.
///
/// Contract: `get` after a completed `insert` returns that entry until it expires, is
/// evicted or is invalidated; `invalidate` is complete when it returns (a later `get` misses,
/// in every process sharing the tier). Tiers count their own hits and misses.
#[async_trait]
pub trait CacheTier: Send + Sync + 'static {
    /// Short name used in metrics, logs and `/health` (`memory`, `redis`, `memory+redis`).
    fn name(&self) -> &'static str;

    /// Looks an entry up.
    async fn get(&self, key: &CacheKey) -> Result<Lookup, TierError>;

    /// Stores an entry unless the object was written since `token` was issued; returns
    /// whether it was stored. `ttl` of `None` keeps it until evicted or invalidated.
    async fn insert(
        &self,
        key: CacheKey,
        entry: Arc<Entry>,
        ttl: Option<Duration>,
        token: FillToken,
    ) -> Result<bool, TierError>;

    /// Removes an entry and records a write to its object, so that fills holding an older
    /// token are refused. Returns the token a write-through of the new object presents.
    async fn invalidate(&self, key: &CacheKey) -> Result<FillToken, TierError>;

    /// [`Self::invalidate`] for each of `keys`, in one pass where the tier can (a write of many
    /// objects, such as DeleteObjects); one result per key, in order.
    async fn invalidate_many(&self, keys: &[CacheKey]) -> Vec<Result<FillToken, TierError>> {
        let mut results = Vec::with_capacity(keys.len());
        for key in keys {
            results.push(self.invalidate(key).await);
        }
        results
    }

    /// Tells other processes sharing the tier that `keys` changed, after
    /// [`Self::invalidate_many`] and before the write is acknowledged: once for all of them.
    /// Called without the write guard's locks held, since it may wait for peers.
    async fn announce(&self, _keys: &[CacheKey]) {}

    /// An entry this process holds in its own memory, found without I/O or waiting, with the
    /// name of the tier it counts as a hit in; `None` when there is none or the tier has no
    /// local part. Counts nothing: the caller counts the hit it answers.
    fn peek_local(&self, _key: &CacheKey) -> Option<(Arc<Entry>, &'static str)> {
        None
    }

    /// The bytes `part` of a block of an object ([`crate::model::block`]) that is `block_len` bytes
    /// long, with the name of the tier that held it; `None` when the tier does not hold the
    /// block whole. Blocks are immutable (their key names the object's version), so they need
    /// no invalidation: an overwrite orphans them and eviction or their TTL removes them.
    async fn get_block(
        &self,
        _key: &BlockKey,
        _part: Range<usize>,
        _block_len: usize,
    ) -> Result<Option<(Bytes, &'static str)>, TierError> {
        Ok(None)
    }

    /// Stores a block for at most `ttl`.
    async fn put_block(&self, _key: &BlockKey, _bytes: Bytes, _ttl: Option<Duration>) -> Result<(), TierError> {
        Ok(())
    }

    /// Current size, for the `cache_entries` / `cache_bytes` gauges.
    fn stats(&self) -> TierStats;

    /// True when other processes share this tier (fills are refused on stale tokens).
    fn shared(&self) -> bool {
        false
    }

    /// Health, for `/health`.
    fn health(&self) -> TierHealth {
        TierHealth::Healthy
    }
}
