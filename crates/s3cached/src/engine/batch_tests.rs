//! A write of many objects (DeleteObjects) invalidates them in one batch: one pass over the
//! tier and one announcement to peers, instead of one round of each per object.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use s3s::dto::{DeleteObjectsInput, DeleteObjectsOutput};
use s3s::{S3, S3Request, S3Response, S3Result};

use super::Engine;
use super::forward::Writes;
use super::store::Target;
use crate::metrics::Metrics;
use crate::model::config::{CachePolicy, EvictionPolicy};
use crate::model::entry::{Entry, ObjectMeta};
use crate::model::key::CacheKey;
use crate::origin::Origin;
use crate::origin::forward::Forwarder;
use crate::origin::outgoing::{Outgoing, Payload};
use crate::tier::memory::MemoryTier;
use crate::tier::{CacheTier, FillToken, Lookup, TierError, TierStats};

/// An origin that takes DeleteObjects and counts the keys it was asked to delete.
#[derive(Clone, Default)]
struct Deleting(Arc<Mutex<usize>>);

#[async_trait]
impl S3 for Deleting {
    async fn delete_objects(&self, req: S3Request<DeleteObjectsInput>) -> S3Result<S3Response<DeleteObjectsOutput>> {
        *self.0.lock().unwrap() += req.input.delete.objects.len();
        Ok(S3Response::new(DeleteObjectsOutput::default()))
    }
}

/// The memory tier, recording how the engine invalidates and announces.
struct Recording {
    inner: MemoryTier,
    single_invalidations: Mutex<usize>,
    batches: Mutex<Vec<usize>>,
    announcements: Mutex<Vec<Vec<CacheKey>>>,
}

#[async_trait]
impl CacheTier for Recording {
    fn name(&self) -> &'static str {
        "recording"
    }

    async fn get(&self, key: &CacheKey) -> Result<Lookup, TierError> {
        self.inner.get(key).await
    }

    async fn insert(
        &self,
        key: CacheKey,
        entry: Arc<Entry>,
        ttl: Option<Duration>,
        token: FillToken,
    ) -> Result<bool, TierError> {
        self.inner.insert(key, entry, ttl, token).await
    }

    async fn invalidate(&self, key: &CacheKey) -> Result<FillToken, TierError> {
        *self.single_invalidations.lock().unwrap() += 1;
        self.inner.invalidate(key).await
    }

    async fn invalidate_many(&self, keys: &[CacheKey]) -> Vec<Result<FillToken, TierError>> {
        self.batches.lock().unwrap().push(keys.len());
        self.inner.invalidate_many(keys).await
    }

    async fn announce(&self, keys: &[CacheKey]) {
        self.announcements.lock().unwrap().push(keys.to_vec());
    }

    fn stats(&self) -> TierStats {
        self.inner.stats()
    }
}

fn key(i: usize) -> CacheKey {
    CacheKey::new("bkt", &format!("k{i}")).unwrap()
}

#[tokio::test]
async fn a_write_of_many_objects_is_invalidated_and_announced_once() {
    const N: usize = 2_500;
    let metrics = Arc::new(Metrics::new());
    let origin = Deleting::default();
    let tier = Arc::new(Recording {
        inner: MemoryTier::new(64 << 20, EvictionPolicy::Lru, None),
        single_invalidations: Mutex::new(0),
        batches: Mutex::new(Vec::new()),
        announcements: Mutex::new(Vec::new()),
    });
    let engine = Engine::new(
        Origin::from_s3(origin.clone(), Arc::clone(&metrics), "deleting".to_owned())
            .with_forwarder(Forwarder::local(origin.clone())),
        Arc::clone(&tier) as Arc<dyn CacheTier>,
        metrics,
        CachePolicy::default(),
    );
    let entry = Arc::new(Entry::new(ObjectMeta::default(), Bytes::from_static(b"x")));
    for i in 0..N {
        tier.inner.put(key(i), Arc::clone(&entry), None);
    }
    // One target names a version too: both its keys go in the same batch.
    let targets: Vec<Target> = (0..N)
        .map(|i| Target::new("bkt", &format!("k{i}"), (i == 7).then_some("v1")).unwrap())
        .collect();
    let mut xml = String::from("<Delete>");
    for i in 0..N {
        xml.push_str(&format!("<Object><Key>k{i}</Key></Object>"));
    }
    xml.push_str("</Delete>");
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::CONTENT_LENGTH, xml.len().into());
    let delete = Outgoing {
        method: http::Method::POST,
        bucket: Some("bkt".to_owned()),
        key: None,
        query: Some("delete".to_owned()),
        headers,
        body: s3s::Body::from(xml),
        payload: Payload::Unsigned,
        credentials: None,
    };
    let answer = engine
        .forward("DeleteObjects", Writes::Objects(targets), delete)
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(*origin.0.lock().unwrap(), N, "the origin was asked for every key");

    assert_eq!(*tier.batches.lock().unwrap(), vec![N + 1], "one pass over the tier");
    assert_eq!(*tier.single_invalidations.lock().unwrap(), 0);
    let announcements = tier.announcements.lock().unwrap();
    assert_eq!(announcements.len(), 1, "one announcement to peers");
    assert_eq!(announcements[0].len(), N + 1);
    assert!(announcements[0].contains(&key(7).with_version(Some("v1"))));
    for i in 0..N {
        assert!(tier.inner.peek(&key(i)).is_none(), "k{i} still cached");
    }
}
