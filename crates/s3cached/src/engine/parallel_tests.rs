//! Cold reads overlap their origin requests: reads from blocks keep `--origin-parallelism`
//! ranged GETs in flight while their blocks come from the origin, and a ranged miss of an
//! uncached object sends its HEAD and its first GET at once. The origin below answers every
//! request after a pause and records how many ranged GETs were in flight at once; time is
//! paused, so the counts and durations do not depend on the machine's speed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use s3s::dto::{ETag, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, StreamingBlob, Timestamp};
use s3s::{S3, S3Request, S3Response, S3Result};

use super::Engine;
use crate::metrics::Metrics;
use crate::model::config::{BlockPolicy, CachePolicy, EvictionPolicy};
use crate::origin::{Origin, request};
use crate::tier::CacheTier;
use crate::tier::memory::MemoryTier;

const SIZE: usize = 64 << 20;

/// Objects `big` (`SIZE` bytes) and `small` (300 KiB); every request takes 50 ms, ranged
/// GETs are counted while in flight.
struct SlowOrigin {
    body: Bytes,
    active: AtomicUsize,
    most: Mutex<usize>,
    gets: AtomicUsize,
}

const SMALL: usize = 300 << 10;

impl SlowOrigin {
    fn body_of(&self, key: &str) -> Bytes {
        if key == "small" {
            self.body.slice(..SMALL)
        } else {
            self.body.clone()
        }
    }
}

fn last_modified() -> Timestamp {
    Timestamp::from(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

/// The shared origin, as the engine reaches it.
struct Shared(Arc<SlowOrigin>);

#[async_trait::async_trait]
impl S3 for Shared {
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(self.0.body_of(&req.input.key).len() as i64),
            e_tag: Some(ETag::Strong("v1".to_owned())),
            last_modified: Some(last_modified()),
            ..HeadObjectOutput::default()
        }))
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let Some(s3s::dto::Range::Int {
            first,
            last: Some(last),
        }) = req.input.range
        else {
            panic!("only ranged GETs are expected");
        };
        self.0.gets.fetch_add(1, Ordering::SeqCst);
        let now = self.0.active.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut most = self.0.most.lock().unwrap();
            *most = (*most).max(now);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        let body = self.0.body_of(&req.input.key);
        let size = body.len();
        let (start, end) = (
            usize::try_from(first).unwrap(),
            (usize::try_from(last).unwrap() + 1).min(size),
        );
        let part = body.slice(start..end);
        Ok(S3Response::new(GetObjectOutput {
            content_length: Some(part.len() as i64),
            content_range: Some(format!("bytes {first}-{}/{size}", end - 1)),
            // GETs report the tag count, HEADs do not.
            tag_count: Some(3),
            e_tag: Some(ETag::Strong("v1".to_owned())),
            last_modified: Some(last_modified()),
            body: Some(StreamingBlob::from(s3s::Body::from(part))),
            ..GetObjectOutput::default()
        }))
    }
}

fn engine(parallelism: u64) -> (Arc<Engine>, Arc<SlowOrigin>) {
    let body: Bytes = (0..SIZE).map(|i| (i % 251) as u8).collect::<Vec<u8>>().into();
    let origin = Arc::new(SlowOrigin {
        body,
        active: AtomicUsize::new(0),
        most: Mutex::new(0),
        gets: AtomicUsize::new(0),
    });
    let metrics = Arc::new(Metrics::new());
    let tier = MemoryTier::new(64 << 20, EvictionPolicy::Lru, None).with_block_capacity(256 << 20);
    let policy = CachePolicy {
        max_object_size: 1 << 20,
        max_in_flight: 1 << 30,
        blocks: BlockPolicy {
            origin_parallelism: parallelism,
            prefetch_budget: 0,
            ..BlockPolicy::default()
        },
        ..CachePolicy::default()
    };
    let engine = Engine::new(
        Origin::from_s3(Shared(Arc::clone(&origin)), Arc::clone(&metrics), "slow".to_owned()),
        Arc::new(tier) as Arc<dyn CacheTier>,
        metrics,
        policy,
    );
    (engine, origin)
}

/// The bytes of a GET of `key` (`range`: `bytes=…`), and how long it took.
async fn get(engine: &Arc<Engine>, key: &str, range: Option<(u64, u64)>) -> (Vec<u8>, Duration) {
    let started = tokio::time::Instant::now();
    let get = GetObjectInput::builder()
        .bucket("bkt".to_owned())
        .key(key.to_owned())
        .range(range.map(|(first, last)| s3s::dto::Range::Int {
            first,
            last: Some(last),
        }))
        .build()
        .unwrap();
    let resp = engine.get_object(request(get)).await.unwrap();
    let mut stream = resp.output.body.unwrap();
    let mut read = Vec::new();
    while let Some(chunk) = stream.next().await {
        read.extend_from_slice(&chunk.unwrap());
    }
    (read, started.elapsed())
}

/// The most ranged GETs in flight at once during one whole GET of an object whose metadata
/// is cached and none of its blocks.
async fn most_in_flight(parallelism: u64) -> usize {
    let (engine, origin) = engine(parallelism);
    let head = HeadObjectInput::builder()
        .bucket("bkt".to_owned())
        .key("big".to_owned())
        .build()
        .unwrap();
    engine.head_object(request(head)).await.unwrap();
    let (read, _) = get(&engine, "big", None).await;
    assert!(read == origin.body, "the bytes differ");
    *origin.most.lock().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_cold_range_asks_for_its_metadata_and_its_first_blocks_at_once() {
    let (engine, origin) = engine(8);
    // A range of a large object: HEAD and block GET overlap (50 ms, not 100), and the blocks
    // the head start read are the ones answered (no second GET).
    let (read, took) = get(&engine, "big", Some((5_000_000, 5_065_535))).await;
    assert!(read[..] == origin.body[5_000_000..5_065_536], "range bytes differ");
    assert!(took < Duration::from_millis(100), "took {took:?}");
    assert_eq!(origin.gets.load(Ordering::SeqCst), 1);
    // Again: a hit, no origin request.
    let (again, took) = get(&engine, "big", Some((5_000_000, 5_065_535))).await;
    assert!(again == read && took < Duration::from_millis(50), "took {took:?}");
    assert_eq!(origin.gets.load(Ordering::SeqCst), 1);

    // A small object the head start read whole: its entry, without a second GET.
    let (read, took) = get(&engine, "small", Some((1000, 1999))).await;
    assert!(read[..] == origin.body[1000..2000], "small range bytes differ");
    assert!(took < Duration::from_millis(100), "took {took:?}");
    assert_eq!(origin.gets.load(Ordering::SeqCst), 2);
    let (whole, _) = get(&engine, "small", None).await;
    assert!(whole[..] == origin.body[..SMALL], "small object differs");
    let input = GetObjectInput::builder()
        .bucket("bkt".to_owned())
        .key("small".to_owned())
        .build()
        .unwrap();
    let hit = engine.get_object(request(input)).await.unwrap();
    let count = hit.headers.get("x-amz-tagging-count").map(|v| v.as_bytes().to_vec());
    assert_eq!(
        count.as_deref(),
        Some(&b"3"[..]),
        "the entry answers with the GET's tag count"
    );
    assert_eq!(
        origin.gets.load(Ordering::SeqCst),
        2,
        "the whole small object was cached"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_from_cold_blocks_keeps_the_configured_ranged_gets_in_flight() {
    let one = most_in_flight(1).await;
    assert!(one <= 2, "parallelism 1: {one} GETs in flight");
    let four = most_in_flight(4).await;
    assert!((4..=5).contains(&four), "parallelism 4: {four} GETs in flight");
}
