//! Applying events: `ObjectCreated` hydrates the object when a hydration rule covers it
//! (otherwise it invalidates), `ObjectRemoved` invalidates.
//!
//! Events arrive at least once, late and out of order. Per object, the applier remembers the
//! newest sequencer it applied and skips anything not newer, so a duplicate does nothing and
//! an old `ObjectCreated` cannot follow a newer `ObjectRemoved`. Hydration always reads the
//! origin's current version, so even an event without a sequencer cannot bring back an object
//! that was deleted or overwritten since.

use std::sync::Arc;
use std::time::Duration;

use s3s::S3Result;
use tracing::debug;

use super::parse::{Event, EventKind, sequencer_cmp};
use crate::engine::Engine;
use crate::engine::fill::Hydrated;
use crate::metrics::Metrics;
use crate::model::config::ApplyConfig;

/// What was done with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Loaded into the cache.
    Hydrated,
    /// Created, but larger than the cacheable size: the old entry was dropped, nothing stored.
    TooLarge,
    /// Dropped from the cache.
    Invalidated,
    /// Not newer than an event already applied.
    Stale,
}

impl Applied {
    fn label(self) -> &'static str {
        match self {
            Self::Hydrated => "hydrated",
            Self::TooLarge => "too_large",
            Self::Invalidated => "invalidated",
            Self::Stale => "stale",
        }
    }
}

/// Applies events to one engine.
pub struct Applier {
    engine: Arc<Engine>,
    config: ApplyConfig,
    metrics: Arc<Metrics>,
    applied: moka::sync::Cache<(String, String), String>,
}

impl Applier {
    /// An applier for `engine`.
    #[must_use]
    pub fn new(engine: Arc<Engine>, config: ApplyConfig) -> Arc<Self> {
        let metrics = Arc::clone(engine.metrics());
        Arc::new(Self {
            engine,
            config,
            metrics,
            // Out-of-order delivery spans seconds to minutes; an hour of memory is plenty.
            applied: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        })
    }

    fn wants(&self, event: &Event) -> bool {
        event.size.is_none_or(|s| s <= self.config.hydrate_max_size)
            && self
                .config
                .hydrate
                .iter()
                .any(|r| r.bucket == event.bucket && event.key.starts_with(&r.prefix))
    }

    /// Applies one event.
    ///
    /// # Errors
    /// The origin's error when hydration failed (the event may be retried).
    pub async fn apply(&self, event: &Event, source: &'static str) -> S3Result<Applied> {
        let id = (event.bucket.clone(), event.key.clone());
        if let (Some(seq), Some(last)) = (&event.sequencer, self.applied.get(&id))
            && sequencer_cmp(seq, &last) != std::cmp::Ordering::Greater
        {
            self.metrics.event(source, Applied::Stale.label());
            debug!(bucket = %event.bucket, key = %event.key, %seq, "skipping an event not newer than one applied");
            return Ok(Applied::Stale);
        }
        let result = match event.kind {
            EventKind::Created if self.wants(event) => {
                match self.engine.hydrate(&event.bucket, &event.key, true).await {
                    Ok(Hydrated::Stored(_)) => Ok(Applied::Hydrated),
                    Ok(Hydrated::TooLarge) => Ok(Applied::TooLarge),
                    Ok(Hydrated::Gone) => Ok(Applied::Invalidated),
                    Err(e) => Err(e),
                }
            }
            EventKind::Created | EventKind::Removed => {
                self.engine.invalidate_object(&event.bucket, &event.key, None).await;
                if event.version_id.is_some() {
                    self.engine
                        .invalidate_object(&event.bucket, &event.key, event.version_id.as_deref())
                        .await;
                }
                Ok(Applied::Invalidated)
            }
        };
        match &result {
            Ok(applied) => {
                if let Some(seq) = &event.sequencer {
                    self.applied.insert(id, seq.clone());
                }
                self.metrics.event(source, applied.label());
            }
            Err(_) => self.metrics.event(source, "error"),
        }
        result
    }
}
