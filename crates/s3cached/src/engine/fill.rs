//! Fills: reading an object from the origin into the cache, once per object however many
//! requests wait for it (single flight), guarded against writes that overtake it. Also
//! revalidation of expired entries (a conditional GET through the same flight) and hydration
//! (loading an object on an event or at warm-up).

use std::sync::{Arc, Mutex};

use http::StatusCode;
use s3s::dto::{GetObjectInput, HeadObjectInput};
use s3s::{S3Error, S3ErrorCode, S3Result};
use tracing::{debug, warn};

use super::Engine;
use super::body;
use super::flight::Flight;
use super::freshness::Age;
use super::outcome::{FillOutcome, OriginFailure};
use super::store::Target;
use crate::model::entry::{Entry, ObjectMeta};
use crate::model::key::CacheKey;
use crate::origin;
use crate::tier::FillToken;

/// What [`Engine::hydrate`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hydrated {
    /// The object is in the cache now (this many bytes).
    Stored(u64),
    /// The object is larger than the cacheable size (or not cacheable): not stored whole.
    TooLarge,
    /// The object no longer exists at the origin: nothing stored.
    Gone,
}

impl Engine {
    /// Whether an object of `size` bytes (as a listing reports it) is cached as blocks.
    #[must_use]
    pub fn takes_as_blocks(&self, size: u64) -> bool {
        size > self.max_object_size() && self.blocks.takes(size)
    }

    /// Reads the whole object through the cache's read path and drops the bytes, so that
    /// every block of an object cached as blocks is in the cache afterwards (the first read
    /// keeps the blocks it streams; later ones fetch the blocks still missing). Warm-up of
    /// objects too large to be kept whole. Returns the bytes read.
    ///
    /// # Errors
    /// The origin's error for the object, or a failure of its body.
    pub async fn load_as_blocks(self: &Arc<Self>, bucket: &str, key: &str) -> S3Result<u64> {
        use futures::StreamExt as _;
        let input = GetObjectInput::builder()
            .bucket(bucket.to_owned())
            .key(key.to_owned())
            .build()
            .map_err(|e| S3Error::with_message(S3ErrorCode::InternalError, e.to_string()))?;
        let resp = self.get_object(origin::request(input)).await?;
        let mut read = 0u64;
        if let Some(mut body) = resp.output.body {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| {
                    S3Error::with_message(
                        S3ErrorCode::InternalError,
                        format!("reading {bucket}/{key} failed: {e}"),
                    )
                })?;
                read += chunk.len() as u64;
            }
        }
        self.blocks_stored().await;
        Ok(read)
    }
}

impl Engine {
    /// Joins or starts the single-flight fill of `key` (a revalidation when `validator` is
    /// the stale entry). The flight runs in a task of its own: a waiter that goes away does
    /// not cancel it.
    pub(super) fn start_fill(
        self: &Arc<Self>,
        key: &CacheKey,
        token: FillToken,
        validator: Option<Arc<Entry>>,
    ) -> (Flight<FillOutcome>, bool) {
        self.join_fill(key, move |engine, key| engine.fill(key, token, validator))
    }

    /// Joins or starts the single-flight fill of `key` for a ranged GET or a HEAD that missed:
    /// the origin is asked for the object's metadata first, and a small object is then read
    /// whole, while a large one is cached as metadata whose bytes are read as blocks.
    ///
    /// `wanted` is the range a ranged GET asks for (`first..end`, `end` exclusive, `None`
    /// for an open end): the aligned blocks it starts in are asked for at the same time as
    /// the metadata, so the range's first bytes do not wait for a second round trip.
    pub(super) fn start_fill_by_head(
        self: &Arc<Self>,
        key: &CacheKey,
        token: FillToken,
        wanted: Option<(u64, Option<u64>)>,
    ) -> (Flight<FillOutcome>, bool) {
        self.join_fill(key, move |engine, key| engine.fill_by_head(key, token, wanted))
    }

    /// Joins the fill of `key` in flight, or starts `fill` as its own task.
    fn join_fill<F>(
        self: &Arc<Self>,
        key: &CacheKey,
        fill: impl FnOnce(Arc<Self>, CacheKey) -> F,
    ) -> (Flight<FillOutcome>, bool)
    where
        F: Future<Output = FillOutcome> + Send + 'static,
    {
        let engine = Arc::clone(self);
        let fill_key = key.clone();
        self.flights.join_or_start(
            key,
            move || fill(engine, fill_key),
            || FillOutcome::Failed(OriginFailure::internal("cache fill task failed".to_owned())),
        )
    }

    /// Whether an object the origin described with `meta` (and could be cached at all) is
    /// cached as blocks: too large to keep whole, within the block limit, and with an ETag to
    /// name its blocks by.
    fn caches_as_blocks(&self, meta: &ObjectMeta) -> bool {
        self.takes_as_blocks(meta.size) && meta.e_tag.is_some()
    }

    async fn fill_by_head(
        self: Arc<Self>,
        key: CacheKey,
        token: FillToken,
        wanted: Option<(u64, Option<u64>)>,
    ) -> FillOutcome {
        let snapshot = self.guard.snapshot();
        // The blocks the range starts in, fetched while the HEAD is out.
        let head_start = wanted.and_then(|(first, end)| self.start_head_start(&key, first, end));
        let input = match HeadObjectInput::builder()
            .bucket(key.bucket().to_owned())
            .key(key.key().to_owned())
            .version_id(key.version().map(str::to_owned))
            .checksum_mode(Some(s3s::dto::ChecksumMode::from_static(
                s3s::dto::ChecksumMode::ENABLED,
            )))
            .build()
        {
            Ok(input) => input,
            Err(e) => return FillOutcome::Failed(OriginFailure::internal(e.to_string())),
        };
        let output = match self
            .origin
            .call_read_hedged("HeadObject", || {
                self.origin.s3().head_object(origin::request(input.clone()))
            })
            .await
        {
            Ok(resp) => resp.output,
            Err(e) => return self.fill_failed(key, token, snapshot, None, &e).await,
        };
        let mut meta = ObjectMeta::from_head_output(&output);
        let cacheable = output.content_length.is_some() && output.sse_customer_algorithm.is_none();
        let head_start = match head_start {
            Some(task) => task.await.ok().flatten().filter(|got| got.is_of(&meta)),
            None => None,
        };
        if let Some(got) = &head_start {
            // The entry answers GETs too, which report the tag count a HEAD leaves out.
            meta.tag_count = got.tag_count();
        }
        if cacheable && meta.size <= self.max_object_size() {
            // A small object the head start read whole needs no second GET.
            if let Some(bytes) = head_start.and_then(|got| got.whole(meta.size)) {
                let entry = Arc::new(Entry::new(meta, bytes));
                self.store(key, Arc::clone(&entry), snapshot, token).await;
                return FillOutcome::Cached(entry);
            }
            return self.fill(key, token, None).await;
        }
        if cacheable && self.caches_as_blocks(&meta) {
            let entry = Arc::new(Entry::in_blocks(meta));
            self.store(key.clone(), Arc::clone(&entry), snapshot, token).await;
            if let Some(got) = head_start {
                self.keep_head_start(&key, &entry, got).await;
            }
            return FillOutcome::Cached(entry);
        }
        self.metrics.fill(if cacheable { "too_large" } else { "uncacheable" });
        FillOutcome::Stream(Arc::new(Mutex::new(None)))
    }

    /// stale-while-revalidate: one background revalidation per key; nothing waits for it.
    pub(super) fn revalidate_in_background(self: &Arc<Self>, key: &CacheKey, token: FillToken, stale: Arc<Entry>) {
        let _ = self.start_fill(key, token, Some(stale));
    }

    /// Reads the whole object from the origin and stores it, unless a write to the object
    /// was acknowledged since the read began (DESIGN.md §4.2).
    async fn fill(self: Arc<Self>, key: CacheKey, token: FillToken, validator: Option<Arc<Entry>>) -> FillOutcome {
        let snapshot = self.guard.snapshot();
        let if_none_match = validator
            .as_ref()
            .and_then(|v| v.meta.e_tag.clone())
            .map(s3s::dto::ETagCondition::ETag);
        let input = match GetObjectInput::builder()
            .bucket(key.bucket().to_owned())
            .key(key.key().to_owned())
            .version_id(key.version().map(str::to_owned))
            .if_none_match(if_none_match)
            // Ask for checksums so the entry can answer clients that want them.
            .checksum_mode(Some(s3s::dto::ChecksumMode::from_static(
                s3s::dto::ChecksumMode::ENABLED,
            )))
            .build()
        {
            Ok(input) => input,
            Err(e) => return FillOutcome::Failed(OriginFailure::internal(e.to_string())),
        };
        let resp = match self
            .origin
            .call_read_hedged("GetObject", || {
                self.origin.s3().get_object(origin::request(input.clone()))
            })
            .await
        {
            Ok(resp) => resp,
            Err(e) => return self.fill_failed(key, token, snapshot, validator, &e).await,
        };
        if validator.is_some() {
            self.metrics.revalidation("changed");
        }
        let mut output = resp.output;
        let meta = ObjectMeta::from_get_output(&output);
        let cacheable = output.content_length.is_some()
            && output.content_range.is_none()
            && output.sse_customer_algorithm.is_none();
        if !cacheable || meta.size > self.max_object_size() {
            self.metrics.fill(if cacheable { "too_large" } else { "uncacheable" });
            debug!(%key, size = meta.size, cacheable, "streaming object through without caching");
            if cacheable && self.caches_as_blocks(&meta) {
                let entry = Arc::new(Entry::in_blocks(meta));
                self.store(key.clone(), Arc::clone(&entry), snapshot, token).await;
                if let Some(body) = output.body.take() {
                    if self.blocks.reads_in_parallel() {
                        // One stream is slower than several ranged GETs (S3 caps each
                        // connection): this answer gives the first block, and the rest is
                        // read as blocks, several at once, as it is answered.
                        self.keep_first_block(&key, &entry, body).await;
                        return FillOutcome::Cached(entry);
                    }
                    // This answer streams through and keeps the blocks it passes.
                    output.body = Some(self.keep_blocks_of(&key, &entry, body));
                }
            }
            return FillOutcome::Stream(Arc::new(Mutex::new(Some(output))));
        }
        let Some(_held) = self.in_flight.try_take(meta.size) else {
            // Too many bytes held for the cache already: this answer streams through.
            self.metrics.fill("over_budget");
            return FillOutcome::Stream(Arc::new(Mutex::new(Some(output))));
        };
        let bytes = match body::collect(output.body.take(), meta.size).await {
            Ok(bytes) => bytes,
            Err(e) => {
                self.metrics.fill("error");
                warn!(%key, error = %e, "origin body failed during cache fill");
                return FillOutcome::Failed(OriginFailure::internal(format!(
                    "reading the object from the origin failed: {e}"
                )));
            }
        };
        let entry = Arc::new(Entry::new(meta, bytes));
        self.store(key, Arc::clone(&entry), snapshot, token).await;
        FillOutcome::Cached(entry)
    }

    /// The origin did not answer a fill with the object: a revalidation's 304 renews the stale
    /// entry; NoSuchKey may be cached; a failure may be answered with the stale entry.
    async fn fill_failed(
        &self,
        key: CacheKey,
        token: FillToken,
        snapshot: u64,
        validator: Option<Arc<Entry>>,
        e: &S3Error,
    ) -> FillOutcome {
        let status = e.status_code();
        if let Some(stale) = &validator {
            if status == Some(StatusCode::NOT_MODIFIED) {
                self.metrics.revalidation("not_modified");
                let renewed = Arc::new(stale.revalidated());
                self.store(key, Arc::clone(&renewed), snapshot, token).await;
                return FillOutcome::Cached(renewed);
            }
            let origin_failed = status.is_none_or(|s| s.is_server_error());
            let past = match self.freshness.age(&key, stale) {
                Age::Stale(past) => past,
                Age::Fresh => std::time::Duration::ZERO,
            };
            if origin_failed && self.freshness.serve_if_error(past) {
                self.metrics.revalidation("error");
                self.metrics.stale_served("if_error");
                warn!(%key, error = %e, "origin failed; answering with the stale entry (stale-if-error)");
                return FillOutcome::Cached(Arc::clone(stale));
            }
        }
        self.metrics.fill("error");
        if *e.code() == S3ErrorCode::NoSuchKey {
            if validator.is_some() {
                self.metrics.revalidation("gone");
            }
            if self.freshness.caches_absence() {
                self.metrics.fill("negative");
                self.store(key, Arc::new(Entry::missing()), snapshot, token).await;
            } else if validator.is_some() {
                // The stale entry is gone at the origin: drop it like a write would.
                let _ = self.invalidate("GetObject", &Target { key, version: None }).await;
            }
        }
        FillOutcome::Failed(OriginFailure::of(e))
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
            // An object cached as blocks keeps its metadata (and at most its first block):
            // not stored whole, as when its answer streamed through.
            FillOutcome::Cached(entry) if entry.in_blocks => Ok(Hydrated::TooLarge),
            FillOutcome::Cached(entry) => Ok(Hydrated::Stored(entry.meta.size)),
            FillOutcome::Stream(_) => Ok(Hydrated::TooLarge),
            FillOutcome::Failed(f) => {
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
