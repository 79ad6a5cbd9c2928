//! Freshness: how long an entry may be answered without asking the origin, how long tiers keep
//! it after that (for revalidation and stale serving), and how an entry stands now. The rules
//! come from [`CachePolicy`]; tiers that copy entries between levels receive them through the
//! [`Lifetimes`] trait.

use std::time::{Duration, SystemTime};

use crate::model::config::CachePolicy;
use crate::model::entry::Entry;
use crate::model::key::CacheKey;
use crate::tier::Lifetimes;

/// How an entry stands against its key's TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Within its TTL.
    Fresh,
    /// Past its TTL by this much.
    Stale(Duration),
}

/// The freshness rules of one [`CachePolicy`].
#[derive(Debug, Clone)]
pub struct FreshnessRules {
    policy: CachePolicy,
}

impl FreshnessRules {
    /// The rules of `policy`.
    #[must_use]
    pub fn new(policy: CachePolicy) -> Self {
        Self { policy }
    }

    /// The policy these rules come from.
    #[must_use]
    pub fn policy(&self) -> &CachePolicy {
        &self.policy
    }

    /// The lifetime of an entry for `key`: the longest matching rule's, else the default.
    #[must_use]
    pub fn ttl_for(&self, key: &CacheKey) -> Option<Duration> {
        self.policy
            .ttl_rules
            .iter()
            .filter(|r| r.bucket == key.bucket() && key.key().starts_with(&r.prefix))
            .max_by_key(|r| r.prefix.len())
            .map_or(self.policy.ttl, |r| r.ttl)
    }

    /// How long a tier keeps an entry for `key`: its TTL, plus the window in which an expired
    /// entry is still useful (revalidation, stale serving). Negative entries: the negative TTL.
    #[must_use]
    pub fn retention_for(&self, key: &CacheKey, missing: bool) -> Option<Duration> {
        let f = &self.policy.freshness;
        if missing {
            return f.negative_ttl;
        }
        self.ttl_for(key).map(|ttl| {
            let revalidate = if f.revalidate { ttl } else { Duration::ZERO };
            ttl + revalidate.max(f.stale_while_revalidate).max(f.stale_if_error)
        })
    }

    /// How long a tier keeps `entry` for `key`: [`Self::retention_for`], except that the
    /// metadata of an object cached as blocks is kept as long as its blocks may be (the block
    /// TTL) while expired entries are revalidated. It is small, and keeping it lets an object
    /// read again long after its TTL be revalidated with one conditional request, whose 304
    /// keeps every block, instead of being read from the origin again (DESIGN.md §3, block
    /// lifetime).
    #[must_use]
    pub fn retention_of(&self, key: &CacheKey, entry: &Entry) -> Option<Duration> {
        let retention = self.retention_for(key, entry.missing);
        if !entry.in_blocks || entry.missing || !self.policy.freshness.revalidate {
            return retention;
        }
        match (retention, self.policy.blocks.ttl) {
            (Some(retention), Some(blocks)) => Some(retention.max(blocks)),
            _ => None,
        }
    }

    /// How `entry` (for `key`) stands against its TTL now.
    #[must_use]
    pub fn age(&self, key: &CacheKey, entry: &Entry) -> Age {
        let ttl = if entry.missing {
            self.policy.freshness.negative_ttl
        } else {
            self.ttl_for(key)
        };
        let Some(ttl) = ttl else { return Age::Fresh };
        let age = SystemTime::now().duration_since(entry.validated_at).unwrap_or_default();
        if age < ttl { Age::Fresh } else { Age::Stale(age - ttl) }
    }

    /// True when a stale entry this far past its TTL may be answered while one background
    /// revalidation runs (stale-while-revalidate).
    #[must_use]
    pub fn serve_while_revalidating(&self, past: Duration) -> bool {
        past < self.policy.freshness.stale_while_revalidate
    }

    /// True when a stale entry this far past its TTL may answer for a failing origin
    /// (stale-if-error).
    #[must_use]
    pub fn serve_if_error(&self, past: Duration) -> bool {
        past < self.policy.freshness.stale_if_error
    }

    /// True when expired entries are revalidated with a conditional GET.
    #[must_use]
    pub fn revalidates(&self) -> bool {
        self.policy.freshness.revalidate
    }

    /// True when NoSuchKey answers are cached.
    #[must_use]
    pub fn caches_absence(&self) -> bool {
        self.policy.freshness.negative_ttl.is_some()
    }
}

impl Lifetimes for FreshnessRules {
    fn is_fresh(&self, key: &CacheKey, entry: &Entry) -> bool {
        self.age(key, entry) == Age::Fresh
    }

    fn retention(&self, key: &CacheKey, entry: &Entry) -> Option<Duration> {
        self.retention_of(key, entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins() {
        let policy = CachePolicy {
            ttl: Some(Duration::from_secs(60)),
            ttl_rules: vec![
                "med/=10s".parse().unwrap(),
                "med/a/=none".parse().unwrap(),
                "med/a/b/=5s".parse().unwrap(),
            ],
            ..CachePolicy::default()
        };
        assert!(policy.pins_anything() && policy.expires_anything());
        let rules = FreshnessRules::new(policy);
        let ttl = |k: &str| rules.ttl_for(&CacheKey::new("med", k).unwrap());
        assert_eq!(ttl("x"), Some(Duration::from_secs(10)));
        assert_eq!(ttl("a/x"), None);
        assert_eq!(ttl("a/b/x"), Some(Duration::from_secs(5)));
        assert_eq!(
            rules.ttl_for(&CacheKey::new("other", "a/x").unwrap()),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn retention_covers_revalidation_and_stale_windows() {
        let mut policy = CachePolicy {
            ttl: Some(Duration::from_secs(60)),
            ..CachePolicy::default()
        };
        policy.freshness.stale_if_error = Duration::from_secs(300);
        policy.freshness.negative_ttl = Some(Duration::from_secs(5));
        let rules = FreshnessRules::new(policy);
        let key = CacheKey::new("bkt", "k").unwrap();
        assert_eq!(rules.retention_for(&key, false), Some(Duration::from_secs(360)));
        assert_eq!(rules.retention_for(&key, true), Some(Duration::from_secs(5)));
    }
}
