//! The caching engine: the read path ([`read`]: lookup, single-flight fill, respond) and the
//! write path ([`mod@write`]: origin first, then cache update or invalidation), over one tier and
//! one origin.

pub mod body;
pub mod flight;
pub mod guard;
pub mod read;
pub mod write;

use std::sync::Arc;

use crate::config::CachePolicy;
use crate::metrics::Metrics;
use crate::origin::Origin;
use crate::tier::CacheTier;

use self::flight::Flights;
use self::guard::WriteGuard;
use self::read::FillOutcome;

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
    policy: CachePolicy,
    guard: Arc<WriteGuard>,
    flights: Arc<Flights<FillOutcome>>,
}

impl Engine {
    /// An engine caching `origin`'s objects in `tier`.
    #[must_use]
    pub fn new(origin: Origin, tier: Arc<dyn CacheTier>, metrics: Arc<Metrics>, policy: CachePolicy) -> Arc<Self> {
        Self::with_guard(origin, tier, metrics, policy, Arc::new(WriteGuard::new()))
    }

    /// Like [`Engine::new`], sharing `guard` with the tier (a tier that hears about writes
    /// made by other processes records them in the same guard).
    #[must_use]
    pub fn with_guard(
        origin: Origin,
        tier: Arc<dyn CacheTier>,
        metrics: Arc<Metrics>,
        policy: CachePolicy,
        guard: Arc<WriteGuard>,
    ) -> Arc<Self> {
        Arc::new(Self {
            origin,
            tier,
            metrics,
            policy,
            guard,
            flights: Arc::new(Flights::new()),
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
        self.policy.max_object_size
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
mod tests;
