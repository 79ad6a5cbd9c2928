//! The caching engine: the read path ([`read`]: lookup, single-flight fill, respond) and the
//! write path ([`write`]: origin first, then cache update or invalidation), over one tier and
//! one origin.

pub mod body;
pub mod flight;
pub mod guard;
pub mod read;
pub mod write;

use std::sync::Arc;

use http::HeaderValue;

use crate::config::CachePolicy;
use crate::metrics::Metrics;
use crate::origin::Origin;
use crate::tier::CacheTier;

use self::flight::Flights;
use self::guard::WriteGuard;
use self::read::FillOutcome;

/// Response header naming what served a GET/HEAD: `hit-<tier>`, `miss` or `bypass`.
pub const CACHE_STATUS_HEADER: &str = "x-s3cached";

/// The read and write paths over one tier and one origin.
pub struct Engine {
    origin: Origin,
    tier: Arc<dyn CacheTier>,
    metrics: Arc<Metrics>,
    policy: CachePolicy,
    guard: WriteGuard,
    flights: Arc<Flights<FillOutcome>>,
    hit_header: HeaderValue,
}

impl Engine {
    /// An engine caching `origin`'s objects in `tier`.
    #[must_use]
    pub fn new(
        origin: Origin,
        tier: Arc<dyn CacheTier>,
        metrics: Arc<Metrics>,
        policy: CachePolicy,
    ) -> Arc<Self> {
        let hit_header = HeaderValue::from_str(&format!("hit-{}", tier.name()))
            .unwrap_or_else(|_| HeaderValue::from_static("hit"));
        Arc::new(Self {
            origin,
            tier,
            metrics,
            policy,
            guard: WriteGuard::new(),
            flights: Arc::new(Flights::new()),
            hit_header,
        })
    }

    /// The origin, for operations the cache does not handle.
    #[must_use]
    pub fn origin(&self) -> &Origin {
        &self.origin
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
        self.metrics
            .tier_size(self.tier.name(), stats.entries, stats.bytes);
    }
}

#[cfg(test)]
mod tests;
