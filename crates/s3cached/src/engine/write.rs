//! The write path: every operation that changes an object goes to the origin first; after the
//! origin answered, the cache is invalidated (and for PutObject, updated with the new bytes)
//! before the client gets its answer.
//!
//! The origin call and the cache update run in their own task, so a client that disconnects
//! mid-request cannot leave the cache holding an object the origin already replaced.

use std::sync::Arc;

use futures::future::BoxFuture;
use s3s::dto::{HeadObjectInput, PutObjectInput, PutObjectOutput};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use tracing::{debug, warn};

use super::Engine;
use super::body::Capture;
use crate::entry::{Entry, ObjectMeta};
use crate::key::CacheKey;
use crate::origin;
use crate::tier::FillToken;

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
    /// Runs a write at the origin, then invalidates `targets`, in a task of its own.
    ///
    /// # Errors
    /// The origin's answer, unchanged.
    pub async fn write<T: Send + 'static>(
        self: &Arc<Self>,
        operation: &'static str,
        targets: Vec<Target>,
        call: impl for<'a> FnOnce(&'a dyn S3) -> BoxFuture<'a, S3Result<S3Response<T>>> + Send + 'static,
    ) -> S3Result<S3Response<T>> {
        let engine = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = engine.origin.call(operation, call(engine.origin.s3())).await;
            // Invalidate even when the origin failed: a timeout or 5xx may still have applied.
            for target in &targets {
                engine.invalidate(operation, target).await;
            }
            result
        });
        task.await.unwrap_or_else(|e| {
            Err(S3Error::with_message(
                S3ErrorCode::InternalError,
                format!("write task failed: {e}"),
            ))
        })
    }

    /// PutObject: origin first, then write-through of bodies up to the cacheable size.
    ///
    /// # Errors
    /// The origin's answer, unchanged.
    pub async fn put_object(
        self: &Arc<Self>,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let Some(target) = Target::new(&req.input.bucket, &req.input.key, None) else {
            return self.origin.call("PutObject", self.origin.s3().put_object(req)).await;
        };
        let declared = req.input.content_length.and_then(|n| u64::try_from(n).ok());
        let capture = match declared {
            // Tagged uploads are only invalidated: GET reports a tag count that HEAD does not,
            // so a write-through entry could not answer exactly like the origin.
            Some(len)
                if len <= self.policy.max_object_size
                    && req.input.sse_customer_algorithm.is_none()
                    && req.input.tagging.is_none() =>
            {
                usize::try_from(len).ok().map(Capture::new)
            }
            _ => None,
        };
        if let (Some(capture), Some(body)) = (&capture, req.input.body.take()) {
            req.input.body = Some(capture.tee(body));
        }
        let engine = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = engine
                .origin
                .call("PutObject", engine.origin.s3().put_object(req))
                .await;
            let (sequence, token) = engine.invalidate("PutObject", &target).await;
            if let (Ok(resp), Some(capture), Some(len), Some(token)) = (&result, capture, declared, token)
                && let Some(bytes) = capture.take().filter(|b| b.len() as u64 == len)
            {
                engine
                    .write_through(&target.key, &resp.output, bytes, sequence, token)
                    .await;
            }
            result
        });
        task.await.unwrap_or_else(|e| {
            Err(S3Error::with_message(
                S3ErrorCode::InternalError,
                format!("write task failed: {e}"),
            ))
        })
    }

    /// Stores the bytes just written, with the metadata the origin now reports for them.
    /// The origin's HEAD must show the ETag the PUT returned: otherwise another writer came
    /// in between and the entry stays invalidated.
    async fn write_through(
        &self,
        key: &CacheKey,
        put: &PutObjectOutput,
        bytes: bytes::Bytes,
        sequence: u64,
        token: FillToken,
    ) {
        let head_input = match HeadObjectInput::builder()
            .bucket(key.bucket().to_owned())
            .key(key.key().to_owned())
            .build()
        {
            Ok(input) => input,
            Err(e) => {
                warn!(%key, error = %e, "cannot build HEAD for write-through");
                return;
            }
        };
        let head = match self
            .origin
            .call_read("HeadObject", self.origin.s3().head_object(origin::request(head_input)))
            .await
        {
            Ok(resp) => resp.output,
            Err(e) => {
                debug!(%key, error = %e, "HEAD after PUT failed; entry stays invalidated");
                return;
            }
        };
        let same_version = head.e_tag.as_ref().map(s3s::dto::ETag::value)
            == put.e_tag.as_ref().map(s3s::dto::ETag::value)
            && head.content_length.and_then(|n| u64::try_from(n).ok()) == Some(bytes.len() as u64);
        if !same_version || head.sse_customer_algorithm.is_some() {
            debug!(%key, "object changed again after PUT; entry stays invalidated");
            return;
        }
        let meta = ObjectMeta::from_head_output(&head);
        self.store(key.clone(), Arc::new(Entry::new(meta, bytes)), sequence, token)
            .await;
    }

    /// Removes what the cache holds for `target` and stops in-flight fills from storing stale
    /// bytes. Returns the write's sequence number and, when the tier took the invalidation,
    /// the token a write-through presents (`None` when the tier failed: then nothing is
    /// written through).
    pub(super) async fn invalidate(&self, operation: &'static str, target: &Target) -> (u64, Option<FillToken>) {
        let latest = &target.key;
        let versioned = target.version.as_deref().map(|v| latest.clone().with_version(Some(v)));
        let permit = self.guard.begin_write(latest).await;
        let mut token = None;
        let keys: Vec<&CacheKey> = versioned.iter().chain(std::iter::once(latest)).collect();
        // The latest version last: its token is the one a write-through presents.
        for key in &keys {
            self.flights.forget(key);
            token = match self.tier.invalidate(key).await {
                Ok(t) => Some(t),
                Err(e) => {
                    self.metrics.tier_error(self.tier.name());
                    warn!(%key, error = %e, "cache invalidation failed");
                    None
                }
            };
        }
        let sequence = permit.sequence;
        // Peers may take a while to acknowledge: not under the lock, which they may need too.
        drop(permit);
        for key in keys {
            self.tier.announce(key).await;
        }
        self.metrics.invalidation(operation);
        (sequence, token)
    }
}

/// What [`Engine::hydrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hydrated {
    /// The object is in the cache now (this many bytes).
    Stored(u64),
    /// The object is larger than the cacheable size (or not cacheable): nothing stored.
    TooLarge,
    /// The object no longer exists at the origin: nothing stored.
    Gone,
}

impl Engine {
    /// Drops what the cache holds for an object that changed at the origin (an event).
    pub async fn invalidate_object(&self, bucket: &str, key: &str, version: Option<&str>) {
        if let Some(target) = Target::new(bucket, key, version) {
            let _ = self.invalidate("Event", &target).await;
        }
    }

    /// Loads the origin's current version of an object into the cache, replacing what the
    /// cache held (write-through for changes made at the origin, and warm-up).
    ///
    /// # Errors
    /// The origin's error, other than NoSuchKey (reported as [`Hydrated::Gone`]).
    pub async fn hydrate(self: &Arc<Self>, bucket: &str, key: &str, replace: bool) -> S3Result<Hydrated> {
        let Some(target) = Target::new(bucket, key, None) else {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidBucketName,
                format!("cannot cache {bucket}/{key}"),
            ));
        };
        if replace {
            let _ = self.invalidate("Event", &target).await;
        }
        let token = match self.tier.get(&target.key).await {
            Ok(lookup) if lookup.entry.as_ref().is_some_and(|e| !e.missing) && !replace => {
                let size = lookup.entry.map_or(0, |e| e.meta.size);
                return Ok(Hydrated::Stored(size));
            }
            Ok(lookup) => lookup.token,
            Err(_) => FillToken::default(),
        };
        let (flight, _) = self.start_fill(&target.key, token, None);
        match flight.await {
            super::read::FillOutcome::Cached(entry) => Ok(Hydrated::Stored(entry.meta.size)),
            super::read::FillOutcome::Stream(_) => Ok(Hydrated::TooLarge),
            super::read::FillOutcome::Failed(f) => {
                let e = f.to_error();
                if *e.code() == S3ErrorCode::NoSuchKey {
                    Ok(Hydrated::Gone)
                } else {
                    Err(e)
                }
            }
        }
    }
}
