//! The caching engine over one tier and one origin. This module holds the [`Engine`] itself;
//! its work is split by path:
//!
//! - [`read`]: GetObject and HeadObject (lookup, answer from the entry or the origin);
//! - [`blocks`]: GETs of objects cached as blocks (large objects, ranged reads);
//! - [`fill`]: single-flight fills from the origin, revalidation, hydration;
//! - [`store`]: the tier side (lookups, guarded inserts, invalidations);
//! - [`mod@forward`]: requests forwarded as the client sent them (invalidation and
//!   write-through for those that change objects);
//! - [`mod@write`]: writes s3s parsed (origin first, then invalidation and write-through);
//! - [`freshness`]: TTLs, retention and stale serving;
//! - [`flight`], [`outcome`], [`body`]: single flight, fill results, body capture;
//! - [`budget`]: the bound on bytes held in flight (fills, block reads, upload capture).

pub mod blocks;
pub mod body;
pub mod budget;
pub mod fill;
pub mod flight;
pub mod forward;
pub mod freshness;
pub mod outcome;
pub mod read;
pub mod store;
pub mod write;

use std::sync::Arc;

use crate::metrics::Metrics;
use crate::model::config::CachePolicy;
use crate::origin::Origin;
use crate::tier::CacheTier;
use crate::tier::write_guard::WriteGuard;

use self::flight::Flights;
use self::freshness::FreshnessRules;
use self::outcome::FillOutcome;

/// Response header naming what served a GET/HEAD: `hit-<tier>`, `miss` or `bypass`.
pub const CACHE_STATUS_HEADER: &str = "x-s3cached";

/// The `x-s3cached` value for a hit in the named tier.
#[must_use]
pub fn hit_header(tier: &str) -> http::HeaderValue {
    match tier {
        "memory" => http::HeaderValue::from_static("hit-memory"),
        "redis" => http::HeaderValue::from_static("hit-redis"),
        other => http::HeaderValue::from_str(&format!("hit-{other}"))
            .unwrap_or_else(|_| http::HeaderValue::from_static("hit")),
    }
}

/// The read and write paths over one tier and one origin.
pub struct Engine {
    origin: Origin,
    tier: Arc<dyn CacheTier>,
    metrics: Arc<Metrics>,
    freshness: Arc<FreshnessRules>,
    guard: Arc<WriteGuard>,
    flights: Arc<Flights<FillOutcome>>,
    blocks: blocks::Blocks,
    in_flight: budget::Budget,
}

impl Engine {
    /// An engine caching `origin`'s objects in `tier`.
    #[must_use]
    pub fn new(origin: Origin, tier: Arc<dyn CacheTier>, metrics: Arc<Metrics>, policy: CachePolicy) -> Arc<Self> {
        let freshness = Arc::new(FreshnessRules::new(policy));
        Self::with_guard(origin, tier, metrics, freshness, Arc::new(WriteGuard::new()))
    }

    /// Like [`Engine::new`], sharing `guard` and `freshness` with the tier (a tier that hears
    /// about writes made by other processes records them in the same guard, and a tier that
    /// copies entries between levels keeps them for the same lifetimes).
    #[must_use]
    pub fn with_guard(
        origin: Origin,
        tier: Arc<dyn CacheTier>,
        metrics: Arc<Metrics>,
        freshness: Arc<FreshnessRules>,
        guard: Arc<WriteGuard>,
    ) -> Arc<Self> {
        let blocks = blocks::Blocks::new(freshness.policy().blocks.clone(), &metrics);
        let in_flight = budget::Budget::new(freshness.policy().max_in_flight);
        Arc::new(Self {
            origin,
            tier,
            metrics,
            freshness,
            guard,
            flights: Arc::new(Flights::new()),
            blocks,
            in_flight,
        })
    }

    /// The origin, for operations the cache does not handle.
    #[must_use]
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The largest object the cache stores.
    #[must_use]
    pub fn max_object_size(&self) -> u64 {
        self.freshness.policy().max_object_size
    }

    /// The freshness rules (shared with tiers that copy entries between levels).
    #[must_use]
    pub fn freshness(&self) -> &Arc<FreshnessRules> {
        &self.freshness
    }

    /// The metric set.
    #[must_use]
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The cache tier.
    #[must_use]
    pub fn tier(&self) -> &Arc<dyn CacheTier> {
        &self.tier
    }

    /// Updates the size gauges; called before metrics are rendered.
    pub fn refresh_gauges(&self) {
        let stats = self.tier.stats();
        self.metrics.tier_size(self.tier.name(), stats.entries, stats.bytes);
    }
}

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod hedge_tests;
#[cfg(test)]
mod parallel_tests;
#[cfg(test)]
mod tests;
