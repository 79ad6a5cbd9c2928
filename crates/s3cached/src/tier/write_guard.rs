//! The fill/write race guard (DESIGN.md §4.2).
//!
//! A fill reads the origin, then inserts. If a write to the same object was acknowledged in
//! between, the fill may hold the old bytes and must not insert them. Every write takes a
//! new sequence number and records it in the object's stripe while holding the stripe lock;
//! a fill remembers the sequence number from before its origin read and inserts only while
//! holding the same lock and only if no newer write was recorded.
//!
//! Locking contract: the stripe lock is held only for the tier operations of one write's
//! invalidation or one fill's insert, never across an origin request, and never on the hit
//! path. Stripes are shared by unrelated keys (bounded memory); a collision can only make a
//! fill skip its insert, never let a stale one through.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Mutex;

use crate::model::key::CacheKey;

const STRIPES: usize = 4096;

/// Sequence numbers and stripe locks.
pub struct WriteGuard {
    sequence: AtomicU64,
    stripes: Box<[Mutex<u64>]>,
}

impl Default for WriteGuard {
    fn default() -> Self {
        Self::new()
    }
}

/// Proof that a fill may insert: holds the stripe lock until dropped.
pub struct InsertPermit<'a> {
    _lock: tokio::sync::MutexGuard<'a, u64>,
}

/// Holds a stripe lock while a write invalidates; carries the write's sequence number.
pub struct WritePermit<'a> {
    _lock: tokio::sync::MutexGuard<'a, u64>,
    /// The write's sequence number; a fill that starts from it may insert.
    pub sequence: u64,
}

/// Holds the stripe locks of every object one write changes while it invalidates them all.
pub struct BatchPermit<'a> {
    _locks: Vec<tokio::sync::MutexGuard<'a, u64>>,
    /// The write's sequence number, recorded for every object of the batch.
    pub sequence: u64,
}

impl WriteGuard {
    /// A guard with no writes recorded.
    #[must_use]
    pub fn new() -> Self {
        Self {
            sequence: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
        }
    }

    // The modulo keeps the index below STRIPES, so the cast cannot truncate meaningfully.
    #[allow(clippy::cast_possible_truncation)]
    fn stripe_index(key: &CacheKey) -> usize {
        (key.object_hash() % STRIPES as u64) as usize
    }

    fn stripe(&self, key: &CacheKey) -> &Mutex<u64> {
        &self.stripes[Self::stripe_index(key)]
    }

    /// The sequence number a fill records before it reads the origin.
    #[must_use]
    pub fn snapshot(&self) -> u64 {
        self.sequence.load(Ordering::SeqCst)
    }

    /// Records a write to `key`'s object (all versions) and locks its stripe; invalidate the
    /// cache while holding the returned permit. Call only after the origin acknowledged.
    pub async fn begin_write(&self, key: &CacheKey) -> WritePermit<'_> {
        let mut lock = self.stripe(key).lock().await;
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        *lock = sequence;
        WritePermit { _lock: lock, sequence }
    }

    /// [`Self::begin_write`] for every object of `keys` at once (one write of many objects):
    /// their stripes are locked each once, in ascending order, so that two batches never wait
    /// for each other in a cycle (every other holder keeps one stripe at a time).
    pub async fn begin_writes(&self, keys: &[CacheKey]) -> BatchPermit<'_> {
        let mut indexes: Vec<usize> = keys.iter().map(Self::stripe_index).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut locks = Vec::with_capacity(indexes.len());
        for i in indexes {
            locks.push(self.stripes[i].lock().await);
        }
        let sequence = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        for lock in &mut locks {
            **lock = sequence;
        }
        BatchPermit {
            _locks: locks,
            sequence,
        }
    }

    /// Locks `key`'s stripe for an insert by a fill that read the origin after `snapshot`.
    /// `None` when a write was recorded since: the fill's data may be stale.
    pub async fn permit_insert(&self, key: &CacheKey, snapshot: u64) -> Option<InsertPermit<'_>> {
        let lock = self.stripe(key).lock().await;
        (*lock <= snapshot).then_some(InsertPermit { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> CacheKey {
        CacheKey::new("bkt", k).unwrap()
    }

    #[tokio::test]
    async fn fill_after_write_is_refused() {
        let g = WriteGuard::new();
        let snap = g.snapshot();
        drop(g.begin_write(&key("a")).await);
        assert!(g.permit_insert(&key("a"), snap).await.is_none());
    }

    #[tokio::test]
    async fn fill_started_after_write_is_allowed() {
        let g = WriteGuard::new();
        let seq = g.begin_write(&key("a")).await.sequence;
        assert!(g.permit_insert(&key("a"), seq).await.is_some());
        assert!(g.permit_insert(&key("a"), g.snapshot()).await.is_some());
    }

    #[tokio::test]
    async fn writes_to_other_objects_do_not_block_fills_of_this_one() {
        let g = WriteGuard::new();
        let snap = g.snapshot();
        // Find a key on another stripe.
        let other = (0..100)
            .map(|i| key(&format!("other{i}")))
            .find(|k| k.object_hash() % STRIPES as u64 != key("a").object_hash() % STRIPES as u64)
            .unwrap();
        drop(g.begin_write(&other).await);
        assert!(g.permit_insert(&key("a"), snap).await.is_some());
    }

    #[tokio::test]
    async fn a_batch_records_the_write_for_every_object_and_shares_stripes() {
        let g = WriteGuard::new();
        let snap = g.snapshot();
        // Enough keys that several share a stripe: each stripe is locked once.
        let keys: Vec<CacheKey> = (0..5_000).map(|i| key(&format!("k{i}"))).collect();
        let permit = g.begin_writes(&keys).await;
        assert_eq!(permit.sequence, snap + 1);
        drop(permit);
        for k in &keys {
            assert!(g.permit_insert(k, snap).await.is_none(), "{k:?}");
        }
        assert!(g.permit_insert(&keys[0], g.snapshot()).await.is_some());
    }

    #[tokio::test]
    async fn versions_share_the_object_stripe() {
        let g = WriteGuard::new();
        let snap = g.snapshot();
        drop(g.begin_write(&key("a")).await);
        assert!(
            g.permit_insert(&key("a").with_version(Some("v1")), snap)
                .await
                .is_none()
        );
    }
}
