//! Single-flight: concurrent misses for one key share one origin read.
//!
//! The first miss (the leader) spawns the fill as its own task, so a leader whose client
//! disconnects does not strand the followers. Locking contract: the map's lock is a plain
//! mutex held only to look up, insert or remove a flight, never across an await.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::model::key::CacheKey;

/// A fill in progress; await it for its outcome.
pub type Flight<T> = Shared<BoxFuture<'static, T>>;

struct Slot<T: Clone> {
    id: u64,
    flight: Flight<T>,
}

/// The fills in progress, by key.
pub struct Flights<T: Clone> {
    map: Mutex<HashMap<CacheKey, Slot<T>>>,
    next_id: AtomicU64,
}

impl<T: Clone + Send + Sync + 'static> Default for Flights<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone + Send + Sync + 'static> Flights<T> {
    /// No fills in progress.
    #[must_use]
    pub fn new() -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// Joins the fill for `key`, or starts one with `start` when none is in progress.
    /// Returns the flight and whether this call started it. `on_panic` turns a fill task that
    /// died into an outcome for everyone waiting.
    pub fn join_or_start<F>(
        self: &Arc<Self>,
        key: &CacheKey,
        start: impl FnOnce() -> F,
        on_panic: fn() -> T,
    ) -> (Flight<T>, bool)
    where
        F: Future<Output = T> + Send + 'static,
    {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get(key) {
            return (slot.flight.clone(), false);
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let fill = start();
        let flights = Arc::clone(self);
        let owned_key = key.clone();
        let task = tokio::spawn(async move {
            let outcome = fill.await;
            flights.finish(&owned_key, id);
            outcome
        });
        let flights = Arc::clone(self);
        let owned_key = key.clone();
        let flight = async move {
            match task.await {
                Ok(outcome) => outcome,
                Err(_) => {
                    flights.finish(&owned_key, id);
                    on_panic()
                }
            }
        }
        .boxed()
        .shared();
        map.insert(
            key.clone(),
            Slot {
                id,
                flight: flight.clone(),
            },
        );
        (flight, true)
    }

    /// Stops new requests from joining the fill for `key` (a write made it stale); requests
    /// that already joined still get its outcome.
    pub fn forget(&self, key: &CacheKey) {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
    }

    fn finish(&self, key: &CacheKey, id: u64) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.get(key).is_some_and(|slot| slot.id == id) {
            map.remove(key);
        }
    }

    /// Number of fills in progress.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// True when no fill is in progress.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn key(k: &str) -> CacheKey {
        CacheKey::new("bkt", k).unwrap()
    }

    #[tokio::test]
    async fn concurrent_joins_share_one_fill() {
        let flights = Arc::new(Flights::<u32>::new());
        let starts = Arc::new(AtomicUsize::new(0));
        let mut waiters = Vec::new();
        let mut leaders = 0;
        for _ in 0..50 {
            let starts = Arc::clone(&starts);
            let (flight, leader) = flights.join_or_start(
                &key("a"),
                move || async move {
                    starts.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    7
                },
                || 0,
            );
            leaders += usize::from(leader);
            waiters.push(flight);
        }
        for w in waiters {
            assert_eq!(w.await, 7);
        }
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert_eq!(leaders, 1);
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn forget_makes_the_next_miss_start_a_new_fill() {
        let flights = Arc::new(Flights::<u32>::new());
        let (first, _) = flights.join_or_start(
            &key("a"),
            || async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                1
            },
            || 0,
        );
        flights.forget(&key("a"));
        let (second, leader) = flights.join_or_start(&key("a"), || async { 2 }, || 0);
        assert!(leader);
        assert_eq!(second.await, 2);
        assert_eq!(first.await, 1);
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn a_dropped_leader_does_not_strand_followers() {
        let flights = Arc::new(Flights::<u32>::new());
        let (leader, _) = flights.join_or_start(
            &key("a"),
            || async {
                tokio::time::sleep(Duration::from_millis(30)).await;
                5
            },
            || 0,
        );
        let (follower, started) = flights.join_or_start(&key("a"), || async { 9 }, || 0);
        assert!(!started);
        drop(leader);
        assert_eq!(follower.await, 5);
    }

    #[tokio::test]
    async fn a_panicking_fill_yields_the_fallback() {
        let flights = Arc::new(Flights::<u32>::new());
        let (flight, _) = flights.join_or_start(&key("a"), || async { panic!("boom") }, || 42);
        assert_eq!(flight.await, 42);
        assert!(flights.is_empty());
    }
}
