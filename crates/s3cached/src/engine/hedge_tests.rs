//! Hedged origin reads through the engine's fills: a slow first request is raced by a second
//! one, which wins, and the first is cancelled; the budget lets at most one read in twenty be
//! hedged. Time is paused, so the origin's delays are exact.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use s3s::dto::{ETag, GetObjectInput, GetObjectOutput, StreamingBlob};
use s3s::{S3, S3Request, S3Response, S3Result};
use tokio::time::Instant;

use super::Engine;
use crate::metrics::Metrics;
use crate::model::config::{CachePolicy, EvictionPolicy, HedgeAfter};
use crate::origin::{Origin, request};
use crate::tier::CacheTier;
use crate::tier::memory::MemoryTier;

/// Answers in 10 ms, except the first GET of a key named `slow-…`, which takes 10 s.
#[derive(Default)]
struct Origin2 {
    calls: Mutex<HashMap<String, usize>>,
    cancelled: AtomicUsize,
}

/// Counts a request dropped before it answered.
struct Cancelled<'a>(&'a AtomicUsize, bool);

impl Drop for Cancelled<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

struct Shared(Arc<Origin2>);

#[async_trait::async_trait]
impl S3 for Shared {
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let key = req.input.key.clone();
        let call = {
            let mut calls = self.0.calls.lock().unwrap();
            let n = calls.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let mut guard = Cancelled(&self.0.cancelled, false);
        let delay = if key.starts_with("slow-") && call == 1 {
            10_000
        } else {
            10
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        guard.1 = true;
        let body = Bytes::from(format!("body of {key}"));
        Ok(S3Response::new(GetObjectOutput {
            content_length: Some(body.len() as i64),
            e_tag: Some(ETag::Strong(format!("e-{key}"))),
            body: Some(StreamingBlob::from(s3s::Body::from(body))),
            ..GetObjectOutput::default()
        }))
    }
}

async fn read(engine: &Arc<Engine>, key: &str) -> Duration {
    let started = Instant::now();
    let input = GetObjectInput::builder()
        .bucket("bkt".to_owned())
        .key(key.to_owned())
        .build()
        .unwrap();
    engine.get_object(request(input)).await.unwrap();
    started.elapsed()
}

fn engine(hedge: HedgeAfter) -> (Arc<Engine>, Arc<Origin2>) {
    let origin = Arc::new(Origin2::default());
    let metrics = Arc::new(Metrics::new());
    let engine = Engine::new(
        Origin::from_s3(Shared(Arc::clone(&origin)), Arc::clone(&metrics), "slow".to_owned()).with_hedging(hedge),
        Arc::new(MemoryTier::new(64 << 20, EvictionPolicy::Lru, None)) as Arc<dyn CacheTier>,
        metrics,
        CachePolicy::default(),
    );
    (engine, origin)
}

#[tokio::test(start_paused = true)]
async fn a_slow_read_is_hedged_the_loser_cancelled_and_the_budget_holds() {
    let (engine, origin) = engine(HedgeAfter::After(Duration::from_millis(50)));
    // Forty fast reads earn two hedges; none of them needs one.
    for i in 0..40 {
        assert!(read(&engine, &format!("fast-{i}")).await < Duration::from_millis(50));
    }
    assert_eq!(origin.cancelled.load(Ordering::SeqCst), 0);

    for key in ["slow-1", "slow-2"] {
        let took = read(&engine, key).await;
        assert!(took < Duration::from_millis(100), "{key} took {took:?}");
        assert_eq!(origin.calls.lock().unwrap()[key], 2, "{key} was hedged");
    }
    assert_eq!(
        origin.cancelled.load(Ordering::SeqCst),
        2,
        "the slow first requests were cancelled"
    );

    // The budget is spent: the next slow read is waited out.
    let took = read(&engine, "slow-3").await;
    assert!(took >= Duration::from_secs(10), "slow-3 took {took:?}");
    assert_eq!(origin.calls.lock().unwrap()["slow-3"], 1, "not hedged");
}

#[tokio::test(start_paused = true)]
async fn a_percentile_delay_learns_from_unhedged_reads_then_hedges() {
    let (engine, origin) = engine(HedgeAfter::Percentile(95));
    // Until enough answers were seen, nothing is hedged: the first reads teach the delay
    // (10 ms, every fast read's time).
    for i in 0..60 {
        read(&engine, &format!("fast-{i}")).await;
    }
    let took = read(&engine, "slow-1").await;
    assert!(took < Duration::from_millis(100), "slow-1 took {took:?}");
    assert_eq!(origin.calls.lock().unwrap()["slow-1"], 2, "hedged after the p95");
    assert_eq!(origin.cancelled.load(Ordering::SeqCst), 1);
}
