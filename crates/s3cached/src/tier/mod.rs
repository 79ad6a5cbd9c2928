//! Cache tiers: where entries are kept. Every tier implements [`CacheTier`]; the engine holds
//! one `Arc<dyn CacheTier>` built from configuration.
//!
//! The [`conformance`] module is one test suite that every tier must pass.

pub mod conformance;
pub mod memory;
pub mod record;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::entry::Entry;
use crate::key::CacheKey;

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

/// A place to keep cache entries.
///
/// Contract: `get` after a completed `insert` returns that entry until it expires, is
/// evicted or is removed; `remove` is complete when it returns (a later `get` misses).
#[async_trait]
pub trait CacheTier: Send + Sync + 'static {
    /// Short name used in metrics and in the `x-s3cached` response header.
    fn name(&self) -> &'static str;

    /// Looks an entry up.
    async fn get(&self, key: &CacheKey) -> Result<Option<Arc<Entry>>, TierError>;

    /// Stores an entry, replacing any entry under the same key. `ttl` of `None` keeps it until
    /// evicted or removed.
    async fn insert(
        &self,
        key: CacheKey,
        entry: Arc<Entry>,
        ttl: Option<Duration>,
    ) -> Result<(), TierError>;

    /// Removes an entry (no error when it is absent).
    async fn remove(&self, key: &CacheKey) -> Result<(), TierError>;

    /// Current size, for the `cache_entries` / `cache_bytes` gauges.
    fn stats(&self) -> TierStats;
}
