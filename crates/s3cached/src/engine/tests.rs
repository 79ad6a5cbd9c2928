//! Engine tests against an in-process fake origin whose reads can be held mid-flight, so
//! races are reproduced deterministically.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use s3s::dto::{
    DeleteObjectInput, DeleteObjectOutput, ETag, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput,
    PutObjectInput, PutObjectOutput, StreamingBlob, Timestamp,
};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use tokio::sync::Semaphore;

use super::Engine;
use super::forward::Writes;
use super::store::Target;
use crate::metrics::Metrics;
use crate::model::config::{CachePolicy, EvictionPolicy};
use crate::origin::forward::Forwarder;
use crate::origin::outgoing::{Outgoing, Payload};
use crate::origin::{Origin, request};
use crate::tier::CacheTier;
use crate::tier::memory::MemoryTier;

#[derive(Default)]
struct FakeOrigin {
    objects: Mutex<HashMap<String, (Bytes, String)>>,
    gets: AtomicUsize,
    not_modified: AtomicUsize,
    /// When set, every GetObject fails with 503.
    down: std::sync::atomic::AtomicBool,
    versions: AtomicUsize,
    /// When set, GetObject reads the object, signals `read`, then waits for a `release` permit.
    hold: Mutex<Option<(Arc<Semaphore>, Arc<Semaphore>)>>,
}

impl FakeOrigin {
    fn store(&self, key: &str, body: &'static [u8]) -> String {
        let etag = format!("etag{}", self.versions.fetch_add(1, Ordering::SeqCst));
        self.objects
            .lock()
            .unwrap()
            .insert(key.to_owned(), (Bytes::from_static(body), etag.clone()));
        etag
    }

    fn hold_reads(&self) -> (Arc<Semaphore>, Arc<Semaphore>) {
        let read = Arc::new(Semaphore::new(0));
        let release = Arc::new(Semaphore::new(0));
        *self.hold.lock().unwrap() = Some((Arc::clone(&read), Arc::clone(&release)));
        (read, release)
    }

    fn meta(body: &Bytes, etag: &str) -> (i64, ETag, Timestamp) {
        (
            i64::try_from(body.len()).unwrap(),
            ETag::Strong(etag.to_owned()),
            Timestamp::from(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
        )
    }
}

fn no_such_key() -> S3Error {
    S3Error::new(S3ErrorCode::NoSuchKey)
}

#[async_trait::async_trait]
impl S3 for FakeOrigin {
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let found = self.objects.lock().unwrap().get(&req.input.key).cloned();
        let hold = self.hold.lock().unwrap().clone();
        if let Some((read, release)) = hold {
            read.add_permits(1);
            release.acquire().await.expect("release semaphore open").forget();
        }
        if self.down.load(Ordering::SeqCst) {
            return Err(S3Error::new(S3ErrorCode::ServiceUnavailable));
        }
        let (body, etag) = found.ok_or_else(no_such_key)?;
        if let Some(s3s::dto::ETagCondition::ETag(want)) = &req.input.if_none_match
            && want.value() == etag
        {
            self.not_modified.fetch_add(1, Ordering::SeqCst);
            let mut e = S3Error::new(S3ErrorCode::Custom("NotModified".into()));
            e.set_status_code(http::StatusCode::NOT_MODIFIED);
            return Err(e);
        }
        let (_, e_tag, lm) = Self::meta(&body, &etag);
        // Ranges of the form `bytes=first-last`, as the tests below send them.
        let (body, content_range) = match req.input.range {
            Some(s3s::dto::Range::Int {
                first,
                last: Some(last),
            }) => {
                let (start, end) = (usize::try_from(first).unwrap(), usize::try_from(last).unwrap() + 1);
                let range = format!("bytes {first}-{last}/{}", body.len());
                (body.slice(start..end), Some(range))
            }
            _ => (body, None),
        };
        Ok(S3Response::new(GetObjectOutput {
            content_length: Some(i64::try_from(body.len()).unwrap()),
            content_range,
            e_tag: Some(e_tag),
            last_modified: Some(lm),
            content_type: Some("text/plain".to_owned()),
            body: Some(StreamingBlob::from(s3s::Body::from(body))),
            ..GetObjectOutput::default()
        }))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let (body, etag) = self
            .objects
            .lock()
            .unwrap()
            .get(&req.input.key)
            .cloned()
            .ok_or_else(no_such_key)?;
        let (len, e_tag, lm) = Self::meta(&body, &etag);
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(len),
            e_tag: Some(e_tag),
            last_modified: Some(lm),
            content_type: Some("text/plain".to_owned()),
            ..HeadObjectOutput::default()
        }))
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let len = req
            .input
            .content_length
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let mut body = req
            .input
            .body
            .ok_or_else(|| S3Error::new(S3ErrorCode::IncompleteBody))?;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.map_err(|_| S3Error::new(S3ErrorCode::IncompleteBody))?);
        }
        assert_eq!(bytes.len() as u64, len);
        let etag = format!("etag{}", self.versions.fetch_add(1, Ordering::SeqCst));
        self.objects
            .lock()
            .unwrap()
            .insert(req.input.key.clone(), (Bytes::from(bytes), etag.clone()));
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            ..PutObjectOutput::default()
        }))
    }

    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.objects.lock().unwrap().remove(&req.input.key);
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }
}

struct Setup {
    engine: Arc<Engine>,
    origin: Arc<FakeOrigin>,
    tier: Arc<MemoryTier>,
}

/// Lets the engine reach the shared fake through the `S3` trait.
struct Shared(Arc<FakeOrigin>);

#[async_trait::async_trait]
impl S3 for Shared {
    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.0.get_object(req).await
    }
    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        self.0.head_object(req).await
    }
    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        self.0.put_object(req).await
    }
    async fn delete_object(&self, req: S3Request<DeleteObjectInput>) -> S3Result<S3Response<DeleteObjectOutput>> {
        self.0.delete_object(req).await
    }
}

fn setup() -> Setup {
    setup_with(CachePolicy {
        max_object_size: 1 << 20,
        ttl: None,
        ..CachePolicy::default()
    })
}

fn setup_with(policy: CachePolicy) -> Setup {
    let metrics = Arc::new(Metrics::new());
    let origin = Arc::new(FakeOrigin::default());
    let tier = Arc::new(MemoryTier::new(64 << 20, EvictionPolicy::Lru, None));
    let engine = Engine::new(
        Origin::from_s3(Shared(Arc::clone(&origin)), Arc::clone(&metrics), "fake".to_owned())
            .with_forwarder(Forwarder::local(Shared(Arc::clone(&origin)))),
        Arc::clone(&tier) as Arc<dyn CacheTier>,
        metrics,
        policy,
    );
    Setup { engine, origin, tier }
}

fn get_input(key: &str) -> S3Request<GetObjectInput> {
    request(
        GetObjectInput::builder()
            .bucket("bkt".to_owned())
            .key(key.to_owned())
            .build()
            .unwrap(),
    )
}

fn put_input(key: &str, body: &'static [u8]) -> S3Request<PutObjectInput> {
    let mut input = PutObjectInput::builder()
        .bucket("bkt".to_owned())
        .key(key.to_owned())
        .build()
        .unwrap();
    input.content_length = Some(i64::try_from(body.len()).unwrap());
    input.body = Some(StreamingBlob::from(s3s::Body::from(Bytes::from_static(body))));
    request(input)
}

async fn read_body(resp: S3Response<GetObjectOutput>) -> (Bytes, String) {
    let status = resp
        .headers
        .get(super::CACHE_STATUS_HEADER)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut body = resp.output.body.unwrap();
    while let Some(c) = body.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    (Bytes::from(out), status)
}

#[tokio::test]
async fn miss_then_hit() {
    let s = setup();
    s.origin.store("k", b"hello");
    let (body, status) = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    assert_eq!((&body[..], status.as_str()), (&b"hello"[..], "miss"));
    let (body, status) = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    assert_eq!((&body[..], status.as_str()), (&b"hello"[..], "hit-memory"));
    assert_eq!(s.origin.gets.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn concurrent_misses_make_one_origin_read() {
    let s = setup();
    s.origin.store("k", b"shared");
    let (read, release) = s.origin.hold_reads();
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let engine = Arc::clone(&s.engine);
        tasks.push(tokio::spawn(async move {
            read_body(engine.get_object(get_input("k")).await.unwrap()).await
        }));
    }
    read.acquire().await.unwrap().forget();
    // Give every request time to reach the flight before the origin answers.
    tokio::time::sleep(Duration::from_millis(100)).await;
    release.add_permits(1000);
    for t in tasks {
        assert_eq!(&t.await.unwrap().0[..], b"shared");
    }
    assert_eq!(s.origin.gets.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_fill_that_read_the_old_object_does_not_overwrite_a_newer_put() {
    let s = setup();
    s.origin.store("k", b"old");
    let (read, release) = s.origin.hold_reads();
    let engine = Arc::clone(&s.engine);
    let slow_get = tokio::spawn(async move { read_body(engine.get_object(get_input("k")).await.unwrap()).await });
    // The fill has read "old" from the origin and is held before it can insert.
    read.acquire().await.unwrap().forget();
    *s.origin.hold.lock().unwrap() = None;
    s.engine.put_object(put_input("k", b"new")).await.unwrap();
    release.add_permits(1);
    // The slow GET was concurrent with the PUT: either answer is allowed for it.
    let _ = slow_get.await.unwrap();
    let (body, status) = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    assert_eq!(
        &body[..],
        b"new",
        "a GET after the PUT was acknowledged must see the new bytes"
    );
    assert_eq!(status, "hit-memory", "the PUT wrote through");
}

#[tokio::test]
async fn a_fill_that_read_the_old_object_does_not_resurrect_a_delete() {
    let s = setup();
    s.origin.store("k", b"old");
    let (read, release) = s.origin.hold_reads();
    let engine = Arc::clone(&s.engine);
    let slow_get = tokio::spawn(async move { engine.get_object(get_input("k")).await.map(|_| ()) });
    read.acquire().await.unwrap().forget();
    *s.origin.hold.lock().unwrap() = None;
    let delete = Outgoing {
        method: http::Method::DELETE,
        bucket: Some("bkt".to_owned()),
        key: Some("k".to_owned()),
        query: None,
        headers: http::HeaderMap::new(),
        body: s3s::Body::empty(),
        payload: Payload::Unsigned,
        credentials: None,
    };
    let targets = Target::new("bkt", "k", None).into_iter().collect();
    let answer = s
        .engine
        .forward("DeleteObject", Writes::Objects(targets), delete)
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    assert!(s.origin.objects.lock().unwrap().is_empty(), "the origin deleted it");
    release.add_permits(1);
    let _ = slow_get.await.unwrap();
    let err = s
        .engine
        .get_object(get_input("k"))
        .await
        .map(|_| ())
        .expect_err("deleted object must not be served");
    assert_eq!(*err.code(), S3ErrorCode::NoSuchKey);
}

#[tokio::test]
async fn put_writes_through_and_get_is_a_hit() {
    let s = setup();
    s.engine.put_object(put_input("k", b"fresh")).await.unwrap();
    let (body, status) = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    assert_eq!((&body[..], status.as_str()), (&b"fresh"[..], "hit-memory"));
    assert_eq!(s.origin.gets.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn errors_are_not_cached() {
    let s = setup();
    assert!(s.engine.get_object(get_input("absent")).await.is_err());
    assert!(s.engine.get_object(get_input("absent")).await.is_err());
    assert_eq!(s.origin.gets.load(Ordering::SeqCst), 2);
    s.tier.run_pending_tasks();
    assert_eq!(s.tier.stats().entries, 0);
}

#[tokio::test]
async fn ranges_and_conditionals_are_answered_from_the_entry() {
    let s = setup();
    let etag = s.origin.store("k", b"0123456789");
    let _ = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    let mut req = get_input("k");
    req.input.range = Some(s3s::dto::Range::Int {
        first: 2,
        last: Some(4),
    });
    let resp = s.engine.get_object(req).await.unwrap();
    assert_eq!(resp.output.content_range.as_deref(), Some("bytes 2-4/10"));
    assert_eq!(&read_body(resp).await.0[..], b"234");
    let mut req = get_input("k");
    req.input.range = Some(s3s::dto::Range::Int { first: 10, last: None });
    let err = s.engine.get_object(req).await.err().unwrap();
    assert_eq!(*err.code(), S3ErrorCode::InvalidRange);
    let mut req = get_input("k");
    req.input.if_none_match = Some(s3s::dto::ETagCondition::ETag(ETag::Strong(etag)));
    let err = s.engine.get_object(req).await.map(|_| ()).expect_err("304");
    assert_eq!(*err.code(), S3ErrorCode::NotModified);
    let mut req = get_input("k");
    req.input.if_match = Some(s3s::dto::ETagCondition::ETag(ETag::Strong("other".into())));
    let err = s.engine.get_object(req).await.err().unwrap();
    assert_eq!(*err.code(), S3ErrorCode::PreconditionFailed);
    assert_eq!(s.origin.gets.load(Ordering::SeqCst), 1);
}

fn expiring(ttl_ms: u64, freshness: crate::model::config::Freshness) -> Setup {
    setup_with(CachePolicy {
        max_object_size: 1 << 20,
        ttl: Some(Duration::from_millis(ttl_ms)),
        ttl_rules: Vec::new(),
        freshness,
        ..CachePolicy::default()
    })
}

#[tokio::test]
async fn an_expired_entry_is_renewed_by_a_304_without_moving_bytes() {
    let s = expiring(100, crate::model::config::Freshness::default());
    s.origin.store("k", b"same");
    let _ = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (body, status) = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    assert_eq!((&body[..], status.as_str()), (&b"same"[..], "miss"));
    assert_eq!(
        s.origin.not_modified.load(Ordering::SeqCst),
        1,
        "revalidated with If-None-Match"
    );
    // Renewed: fresh again, no origin request.
    let (_, status) = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    assert_eq!(status, "hit-memory");
    assert_eq!(s.origin.gets.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_changed_object_replaces_the_expired_entry() {
    let s = expiring(100, crate::model::config::Freshness::default());
    s.origin.store("k", b"old");
    let _ = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    s.origin.store("k", b"new");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        &read_body(s.engine.get_object(get_input("k")).await.unwrap()).await.0[..],
        b"new"
    );
    assert_eq!(s.origin.not_modified.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_range_of_a_stale_entry_whose_object_outgrew_the_cache_is_a_range() {
    let s = setup_with(CachePolicy {
        max_object_size: 8,
        ttl: Some(Duration::from_millis(100)),
        ..CachePolicy::default()
    });
    s.origin.store("k", b"0123");
    let _ = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    // The object grows past --max-object-size; the cached entry expires.
    s.origin.store("k", b"0123456789abcdef");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let mut req = get_input("k");
    req.input.range = Some(s3s::dto::Range::Int {
        first: 2,
        last: Some(4),
    });
    let resp = s.engine.get_object(req).await.unwrap();
    assert_eq!(
        resp.output.content_range.as_deref(),
        Some("bytes 2-4/16"),
        "a 206 for the range, not the whole object"
    );
    let (body, status) = read_body(resp).await;
    assert_eq!((&body[..], status.as_str()), (&b"234"[..], "miss"));
}

#[tokio::test]
async fn stale_if_error_serves_the_expired_entry_within_its_bound_only() {
    let s = expiring(
        100,
        crate::model::config::Freshness {
            stale_if_error: Duration::from_millis(300),
            ..Default::default()
        },
    );
    s.origin.store("k", b"kept");
    let _ = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    s.origin.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (body, _) = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    assert_eq!(
        &body[..],
        b"kept",
        "origin down, within stale-if-error: the stale entry"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    let err = s
        .engine
        .get_object(get_input("k"))
        .await
        .map(|_| ())
        .expect_err("past the bound");
    assert_eq!(*err.code(), S3ErrorCode::ServiceUnavailable);
}

#[tokio::test]
async fn without_stale_if_error_an_origin_failure_is_an_error() {
    let s = expiring(100, crate::model::config::Freshness::default());
    s.origin.store("k", b"kept");
    let _ = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    s.origin.down.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(s.engine.get_object(get_input("k")).await.is_err());
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_in_the_background() {
    let s = expiring(
        100,
        crate::model::config::Freshness {
            stale_while_revalidate: Duration::from_secs(5),
            ..Default::default()
        },
    );
    s.origin.store("k", b"v1");
    let _ = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    s.origin.store("k", b"v2");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (body, status) = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
    assert_eq!(
        (&body[..], status.as_str()),
        (&b"v1"[..], "hit-memory"),
        "stale answer at once"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (body, _) = read_body(s.engine.get_object(get_input("k")).await.unwrap()).await;
        if &body[..] == b"v2" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "background refresh never landed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn negative_caching_holds_a_404_until_a_write() {
    let s = expiring(
        60_000,
        crate::model::config::Freshness {
            negative_ttl: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    );
    for _ in 0..3 {
        let err = s
            .engine
            .get_object(get_input("nothing"))
            .await
            .map(|_| ())
            .expect_err("404");
        assert_eq!(*err.code(), S3ErrorCode::NoSuchKey);
    }
    assert_eq!(s.origin.gets.load(Ordering::SeqCst), 1, "the 404 was cached");
    s.engine
        .put_object(put_input("nothing", b"now it exists"))
        .await
        .unwrap();
    let (body, _) = read_body(s.engine.get_object(get_input("nothing")).await.unwrap()).await;
    assert_eq!(&body[..], b"now it exists");
}

#[tokio::test]
async fn negative_caching_is_off_by_default() {
    let s = setup();
    for _ in 0..2 {
        assert!(s.engine.get_object(get_input("nothing")).await.is_err());
    }
    assert_eq!(s.origin.gets.load(Ordering::SeqCst), 2);
}
