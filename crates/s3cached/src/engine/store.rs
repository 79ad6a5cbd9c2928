//! The engine's side of the tier: lookups that fail open, inserts guarded against the
//! fill/write race (DESIGN.md §4.2), and invalidations that record a write before anything
//! else may store the object again.

use std::sync::Arc;

use tracing::{debug, warn};

use super::Engine;
use crate::model::entry::Entry;
use crate::model::key::CacheKey;
use crate::tier::{FillToken, Lookup};

/// An object a write changes: its key and, when the write names one, the version.
#[derive(Debug, Clone)]
pub struct Target {
    /// The object (latest version).
    pub key: CacheKey,
    /// The version the write names, if any.
    pub version: Option<String>,
}

impl Target {
    /// The object `bucket`/`key` (version `version`); `None` when the names cannot be cached
    /// (then nothing was cached under them either).
    #[must_use]
    pub fn new(bucket: &str, key: &str, version: Option<&str>) -> Option<Self> {
        CacheKey::new(bucket, key).ok().map(|key| Self {
            key,
            version: version.map(str::to_owned),
        })
    }
}

impl Engine {
    /// Tier lookup; a failing tier counts as a miss (the origin still answers).
    pub(super) async fn lookup(&self, key: &CacheKey) -> Lookup {
        match self.tier.get(key).await {
            Ok(lookup) => lookup,
            Err(e) => {
                self.metrics.tier_error(self.tier.name());
                debug!(error = %e, %key, "cache lookup failed; reading from origin");
                Lookup::miss(FillToken::default())
            }
        }
    }

    /// Inserts `entry` if no write to its object was recorded after `snapshot` in this process
    /// nor, for shared tiers, after `token` was issued in any process.
    pub(super) async fn store(&self, key: CacheKey, entry: Arc<Entry>, snapshot: u64, token: FillToken) {
        let Some(_permit) = self.guard.permit_insert(&key, snapshot).await else {
            self.metrics.fill("raced");
            debug!(%key, "a write overtook this fill; not storing it");
            return;
        };
        let ttl = self.freshness.retention_of(&key, &entry);
        match self.tier.insert(key.clone(), entry, ttl, token).await {
            Ok(true) => self.metrics.fill("stored"),
            Ok(false) => {
                self.metrics.fill("raced");
                debug!(%key, "the shared tier saw a newer write; not storing this fill");
            }
            Err(e) => {
                self.metrics.fill("error");
                self.metrics.tier_error(self.tier.name());
                debug!(%key, error = %e, "cache insert failed");
            }
        }
    }

    /// Removes what the cache holds for `target` and stops in-flight fills from storing stale
    /// bytes. Returns the write's sequence number and, when the tier took the invalidation,
    /// the token a write-through presents (`None` when the tier failed: then nothing is
    /// written through).
    pub(super) async fn invalidate(&self, operation: &'static str, target: &Target) -> (u64, Option<FillToken>) {
        let (sequence, tokens) = self.invalidate_all(operation, std::slice::from_ref(target)).await;
        (sequence, tokens.into_iter().next().flatten())
    }

    /// [`Self::invalidate`] for every object one write changed (DeleteObjects names up to a
    /// thousand): one pass over the tier and one announcement to peers for all of them, so
    /// the write waits for the fleet's acknowledgements once. One token per target.
    pub(super) async fn invalidate_all(
        &self,
        operation: &'static str,
        targets: &[Target],
    ) -> (u64, Vec<Option<FillToken>>) {
        let latest: Vec<CacheKey> = targets.iter().map(|t| t.key.clone()).collect();
        let mut keys: Vec<CacheKey> = targets
            .iter()
            .filter_map(|t| t.version.as_deref().map(|v| t.key.clone().with_version(Some(v))))
            .collect();
        let versioned = keys.len();
        // The latest versions last: their tokens are the ones a write-through presents.
        keys.extend(latest.iter().cloned());
        let permit = self.guard.begin_writes(&latest).await;
        for key in &keys {
            self.flights.forget(key);
        }
        let results = self.tier.invalidate_many(&keys).await;
        let mut tokens = Vec::with_capacity(targets.len());
        for (i, (key, result)) in keys.iter().zip(results).enumerate() {
            let token = match result {
                Ok(t) => Some(t),
                Err(e) => {
                    self.metrics.tier_error(self.tier.name());
                    warn!(%key, error = %e, "cache invalidation failed");
                    None
                }
            };
            if i >= versioned {
                tokens.push(token);
            }
        }
        let sequence = permit.sequence;
        // Peers may take a while to acknowledge: not under the locks, which they may need too.
        drop(permit);
        if !keys.is_empty() {
            self.tier.announce(&keys).await;
        }
        for _ in targets {
            self.metrics.invalidation(operation);
        }
        (sequence, tokens)
    }
}
