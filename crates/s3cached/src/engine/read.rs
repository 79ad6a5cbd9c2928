//! The read path: GetObject and HeadObject.
//!
//! Lookup in the tier; on a fresh hit answer from the entry (conditionals, ranges, checksum
//! mode and response overrides applied to the cached bytes). On a miss, a whole-object GET
//! joins or starts the single-flight fill; a ranged miss goes to the origin as a ranged GET; a
//! HEAD miss goes to the origin as a HEAD. An expired entry is revalidated through the same
//! single flight with `If-None-Match` (or served stale while one refresh runs, or when the
//! origin fails, within the configured bounds). Requests the cache cannot answer exactly (part
//! numbers, SSE-C, bucket-owner checks, requester pays) bypass it.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use s3s::dto::{GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, Range, StreamingBlob, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use tracing::{debug, warn};

use super::{CACHE_STATUS_HEADER, Engine, body, hit_header};
use crate::conditional::{Conditions, Verdict};
use crate::config::Age;
use crate::entry::{Entry, ObjectMeta};
use crate::key::CacheKey;
use crate::origin;
use crate::range;
use crate::tier::{FillToken, Lookup};

/// How a fill ended, shared with every request that waited for it.
#[derive(Clone)]
pub enum FillOutcome {
    /// The whole object was read (and stored unless a write overtook the fill).
    Cached(Arc<Entry>),
    /// The object may not be buffered (too large, or not cacheable): the first request to
    /// take the origin's answer streams it, the others ask the origin themselves.
    Stream(Arc<Mutex<Option<GetObjectOutput>>>),
    /// The origin answered with an error, which every waiter gets.
    Failed(OriginFailure),
}

/// An origin error, kept so it can be answered to several waiters.
#[derive(Clone, Debug)]
pub struct OriginFailure {
    code: S3ErrorCode,
    message: Option<String>,
    status: Option<StatusCode>,
}

impl OriginFailure {
    fn of(e: &S3Error) -> Self {
        Self {
            code: e.code().clone(),
            message: e.message().map(str::to_owned),
            status: e.status_code(),
        }
    }

    fn internal(message: String) -> Self {
        Self {
            code: S3ErrorCode::InternalError,
            message: Some(message),
            status: None,
        }
    }

    pub(super) fn to_error(&self) -> S3Error {
        let mut e = S3Error::new(self.code.clone());
        if let Some(m) = &self.message {
            e.set_message(m.clone());
        }
        if let Some(s) = self.status {
            e.set_status_code(s);
        }
        e
    }
}

const MISS: HeaderValue = HeaderValue::from_static("miss");
const BYPASS: HeaderValue = HeaderValue::from_static("bypass");

/// The parts of a GET or HEAD request the read path looks at (both inputs have the same
/// fields).
struct ReadParams {
    key: Option<CacheKey>,
    bypass: bool,
    /// `x-amz-checksum-mode: ENABLED`: the answer carries the object's checksums.
    checksums: bool,
    conditions: Conditions,
    range: Option<Range>,
    overrides: Overrides,
}

#[derive(Default)]
struct Overrides {
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    content_type: Option<String>,
    expires: Option<Timestamp>,
}

macro_rules! read_params {
    ($input:expr) => {{
        let i = $input;
        ReadParams {
            key: CacheKey::new(&i.bucket, &i.key)
                .ok()
                .map(|k| k.with_version(i.version_id.as_deref())),
            bypass: i.part_number.is_some()
                || i.sse_customer_algorithm.is_some()
                || i.sse_customer_key.is_some()
                || i.expected_bucket_owner.is_some()
                || i.request_payer.is_some(),
            checksums: i
                .checksum_mode
                .as_ref()
                .is_some_and(|m| m.as_str() == s3s::dto::ChecksumMode::ENABLED),
            conditions: Conditions {
                if_match: i.if_match.clone(),
                if_none_match: i.if_none_match.clone(),
                if_modified_since: i.if_modified_since.clone(),
                if_unmodified_since: i.if_unmodified_since.clone(),
            },
            range: i.range,
            overrides: Overrides {
                cache_control: i.response_cache_control.clone(),
                content_disposition: i.response_content_disposition.clone(),
                content_encoding: i.response_content_encoding.clone(),
                content_language: i.response_content_language.clone(),
                content_type: i.response_content_type.clone(),
                expires: i.response_expires.clone(),
            },
        }
    }};
}

/// Applies the `response-*` query overrides, and drops the checksums unless the request asked
/// for them and gets the whole object (S3 reports none for ranges).
macro_rules! apply_overrides {
    ($out:expr, $params:expr) => {{
        let (out, params) = ($out, $params);
        if !params.checksums || params.range.is_some() {
            out.checksum_crc32 = None;
            out.checksum_crc32c = None;
            out.checksum_crc64nvme = None;
            out.checksum_sha1 = None;
            out.checksum_sha256 = None;
            out.checksum_type = None;
        }
        let o = &params.overrides;
        if o.cache_control.is_some() {
            out.cache_control.clone_from(&o.cache_control);
        }
        if o.content_disposition.is_some() {
            out.content_disposition.clone_from(&o.content_disposition);
        }
        if o.content_encoding.is_some() {
            out.content_encoding.clone_from(&o.content_encoding);
        }
        if o.content_language.is_some() {
            out.content_language.clone_from(&o.content_language);
        }
        if o.content_type.is_some() {
            out.content_type.clone_from(&o.content_type);
        }
        if o.expires.is_some() {
            out.expires.clone_from(&o.expires);
        }
    }};
}

fn with_status<T>(output: T, header: HeaderValue) -> S3Response<T> {
    let mut resp = S3Response::new(output);
    resp.headers.insert(CACHE_STATUS_HEADER, header);
    resp
}

/// 304 Not Modified. s3s answers statuses other than 200/206 only through errors; the 304
/// carries the validators S3 sends with it and no body.
fn not_modified(meta: &ObjectMeta, header: HeaderValue) -> S3Error {
    let mut headers = http::HeaderMap::new();
    if let Some(v) = meta.e_tag.as_ref().and_then(|e| e.to_http_header().ok()) {
        headers.insert(http::header::ETAG, v);
    }
    if let Some(lm) = &meta.last_modified {
        let mut buf = Vec::new();
        if lm.format(s3s::dto::TimestampFormat::HttpDate, &mut buf).is_ok()
            && let Ok(v) = HeaderValue::from_bytes(&buf)
        {
            headers.insert(http::header::LAST_MODIFIED, v);
        }
    }
    headers.insert(CACHE_STATUS_HEADER, header);
    let mut e = S3Error::new(S3ErrorCode::NotModified);
    e.set_headers(headers);
    e
}

/// 304 or 412 when the request's conditions say so about `meta`; `header` goes on a 304.
fn check_conditions(conditions: &Conditions, meta: &ObjectMeta, header: &HeaderValue) -> S3Result<()> {
    match conditions.evaluate(meta) {
        Verdict::NotModified => Err(not_modified(meta, header.clone())),
        Verdict::PreconditionFailed => Err(S3Error::new(S3ErrorCode::PreconditionFailed)),
        Verdict::Proceed => Ok(()),
    }
}

fn no_such_key() -> S3Error {
    S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist.")
}

fn invalid_range(size: u64) -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidRange,
        format!("The requested range is not satisfiable for an object of {size} bytes"),
    )
}

impl Engine {
    /// GetObject through the cache.
    ///
    /// # Errors
    /// The origin's error for the object, `PreconditionFailed`, or `InvalidRange`.
    pub async fn get_object(self: &Arc<Self>, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let params = read_params!(&req.input);
        let Some(key) = params.key.clone().filter(|_| !params.bypass) else {
            self.metrics.bypass("GetObject");
            return self.origin_get(req, BYPASS).await;
        };
        let lookup = self.lookup(&key).await;
        let mut validator = None;
        if let Some(entry) = &lookup.entry {
            match self.policy.age(&key, entry) {
                Age::Fresh => return self.answer_get(entry, &params, hit_header(lookup.tier)),
                Age::Stale(past) if !entry.missing && past < self.policy.freshness.stale_while_revalidate => {
                    self.metrics.stale_served("while_revalidate");
                    self.revalidate_in_background(&key, lookup.token, Arc::clone(entry));
                    return self.answer_get(entry, &params, hit_header(lookup.tier));
                }
                Age::Stale(_) if !entry.missing && self.policy.freshness.revalidate => {
                    validator = Some(Arc::clone(entry))
                }
                Age::Stale(_) => {}
            }
        } else if params.range.is_some() {
            // A range of an uncached object: fetch only that range, and cache nothing.
            return self.origin_get(req, MISS).await;
        }
        let (flight, leader) = self.start_fill(&key, lookup.token, validator);
        if !leader {
            self.metrics.singleflight_wait();
        }
        match flight.await {
            FillOutcome::Cached(entry) => self.answer_get(&entry, &params, MISS),
            FillOutcome::Failed(failure) => Err(failure.to_error()),
            FillOutcome::Stream(slot) => {
                let taken = slot.lock().unwrap_or_else(PoisonError::into_inner).take();
                match taken {
                    Some(output) => self.answer_streamed(output, &params),
                    None => self.origin_get(req, MISS).await,
                }
            }
        }
    }

    /// Joins or starts the single-flight fill of `key` (a revalidation when `validator` is
    /// the stale entry).
    pub(super) fn start_fill(
        self: &Arc<Self>,
        key: &CacheKey,
        token: FillToken,
        validator: Option<Arc<Entry>>,
    ) -> (super::flight::Flight<FillOutcome>, bool) {
        let engine = Arc::clone(self);
        let fill_key = key.clone();
        self.flights.join_or_start(
            key,
            move || async move { engine.fill(fill_key, token, validator).await },
            || FillOutcome::Failed(OriginFailure::internal("cache fill task failed".to_owned())),
        )
    }

    /// stale-while-revalidate: one background revalidation per key; the flight runs in its
    /// own task, so nothing needs to wait for it.
    fn revalidate_in_background(self: &Arc<Self>, key: &CacheKey, token: FillToken, stale: Arc<Entry>) {
        let _ = self.start_fill(key, token, Some(stale));
    }

    /// HeadObject through the cache.
    ///
    /// # Errors
    /// The origin's error for the object, `PreconditionFailed`, or `InvalidRange`.
    pub async fn head_object(
        self: &Arc<Self>,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let params = read_params!(&req.input);
        let params = &params;
        let Some(key) = params.key.clone().filter(|_| !params.bypass) else {
            self.metrics.bypass("HeadObject");
            return self.origin_head(req, BYPASS).await;
        };
        let lookup = self.lookup(&key).await;
        let Some(entry) = lookup.entry.filter(|e| self.policy.age(&key, e) == Age::Fresh) else {
            // HEAD does not revalidate: a stale entry is refreshed by the next GET.
            return self.origin_head(req, MISS).await;
        };
        if entry.missing {
            return Err(no_such_key());
        }
        let hit = hit_header(lookup.tier);
        let meta = &entry.meta;
        check_conditions(&params.conditions, meta, &hit)?;
        let mut out = meta.to_head_output();
        if let Some(r) = &params.range {
            let span = range::resolve(r, meta.size).map_err(|_| invalid_range(meta.size))?;
            out.content_range = Some(range::content_range(&span, meta.size));
            out.content_length = i64::try_from(span.end - span.start).ok();
        }
        apply_overrides!(&mut out, params);
        Ok(with_status(out, hit))
    }

    /// A fresh object entry held in this process's memory, found without I/O, with the name of
    /// the tier holding it (the hot path's lookup; nothing is counted).
    #[must_use]
    pub fn fresh_local(&self, key: &CacheKey) -> Option<(Arc<Entry>, &'static str)> {
        let (entry, tier) = self.tier.peek_local(key)?;
        (!entry.missing && self.policy.age(key, &entry) == Age::Fresh).then_some((entry, tier))
    }

    /// Tier lookup; a failing tier counts as a miss (the origin still answers).
    async fn lookup(&self, key: &CacheKey) -> Lookup {
        match self.tier.get(key).await {
            Ok(lookup) => lookup,
            Err(e) => {
                self.metrics.tier_error(self.tier.name());
                debug!(error = %e, %key, "cache lookup failed; reading from origin");
                Lookup::miss(FillToken::default())
            }
        }
    }

    fn answer_get(
        &self,
        entry: &Entry,
        params: &ReadParams,
        header: HeaderValue,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        if entry.missing {
            return Err(no_such_key());
        }
        let meta = &entry.meta;
        check_conditions(&params.conditions, meta, &header)?;
        let mut out = meta.to_get_output();
        let body = match &params.range {
            Some(r) => {
                let span = range::resolve(r, meta.size).map_err(|_| invalid_range(meta.size))?;
                out.content_range = Some(range::content_range(&span, meta.size));
                out.content_length = i64::try_from(span.end - span.start).ok();
                // Spans are within the body, which holds exactly `size` bytes.
                let (start, end) = (
                    usize::try_from(span.start).unwrap_or(0),
                    usize::try_from(span.end).unwrap_or(0),
                );
                entry.body.slice(start..end)
            }
            None => entry.body.clone(),
        };
        apply_overrides!(&mut out, params);
        self.metrics.served("cache", body.len() as u64);
        out.body = Some(blob(body));
        Ok(with_status(out, header))
    }

    fn answer_streamed(
        &self,
        mut output: GetObjectOutput,
        params: &ReadParams,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let meta = ObjectMeta::from_get_output(&output);
        check_conditions(&params.conditions, &meta, &MISS)?;
        apply_overrides!(&mut output, params);
        self.metrics.served("origin", meta.size);
        Ok(with_status(output, MISS))
    }

    async fn origin_get(
        &self,
        req: S3Request<GetObjectInput>,
        header: HeaderValue,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let mut resp = self
            .origin
            .call_read("GetObject", self.origin.s3().get_object(req))
            .await?;
        let len = resp
            .output
            .content_length
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        self.metrics.served("origin", len);
        resp.headers.insert(CACHE_STATUS_HEADER, header);
        Ok(resp)
    }

    async fn origin_head(
        &self,
        req: S3Request<HeadObjectInput>,
        header: HeaderValue,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let mut resp = self
            .origin
            .call_read("HeadObject", self.origin.s3().head_object(req))
            .await?;
        resp.headers.insert(CACHE_STATUS_HEADER, header);
        Ok(resp)
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
            .call_read("GetObject", self.origin.s3().get_object(origin::request(input)))
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
        if !cacheable || meta.size > self.policy.max_object_size {
            self.metrics.fill(if cacheable { "too_large" } else { "uncacheable" });
            debug!(%key, size = meta.size, cacheable, "streaming object through without caching");
            return FillOutcome::Stream(Arc::new(Mutex::new(Some(output))));
        }
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
            let past = match self.policy.age(&key, stale) {
                Age::Stale(past) => past,
                Age::Fresh => std::time::Duration::ZERO,
            };
            if origin_failed && past < self.policy.freshness.stale_if_error {
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
            if self.policy.freshness.negative_ttl.is_some() {
                self.metrics.fill("negative");
                self.store(key, Arc::new(Entry::missing()), snapshot, token).await;
            } else if validator.is_some() {
                // The stale entry is gone at the origin: drop it like a write would.
                let _ = self
                    .invalidate("GetObject", &super::write::Target { key, version: None })
                    .await;
            }
        }
        FillOutcome::Failed(OriginFailure::of(e))
    }

    /// Inserts `entry` if no write to its object was recorded after `snapshot` in this process
    /// nor, for shared tiers, after `token` was issued in any process.
    pub(super) async fn store(&self, key: CacheKey, entry: Arc<Entry>, snapshot: u64, token: FillToken) {
        let Some(_permit) = self.guard.permit_insert(&key, snapshot).await else {
            self.metrics.fill("raced");
            debug!(%key, "a write overtook this fill; not storing it");
            return;
        };
        let ttl = self.policy.retention_for(&key, entry.missing);
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
}

fn blob(bytes: Bytes) -> StreamingBlob {
    StreamingBlob::from(s3s::Body::from(bytes))
}
