//! The read path: GetObject and HeadObject.
//!
//! Lookup in the tier; on a fresh hit answer from the entry (conditionals, ranges, checksum
//! mode and response overrides applied to the cached bytes, headers from
//! [`crate::model::hit_headers`], the renderer the hot path uses too), or, for an object cached as
//! blocks, from its blocks ([`super::blocks`]). On a miss, a whole-object GET joins or starts
//! the single-flight fill ([`super::fill`]); a ranged GET or a HEAD that misses starts it with
//! a HEAD at the origin, so a small object is read whole and a large one is cached as blocks.
//! An expired entry is revalidated through the same single flight with `If-None-Match` (or
//! served stale while one refresh runs, or when the origin fails, within the configured
//! bounds). Requests the cache cannot answer exactly (part numbers, SSE-C, bucket-owner checks,
//! requester pays: see [`crate::model::read_request`]) bypass it.

use std::sync::{Arc, PoisonError};

use bytes::Bytes;
use http::HeaderValue;
use s3s::dto::{GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, StreamingBlob};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

use super::blocks::BlocksAnswer;
use super::freshness::Age;
use super::outcome::FillOutcome;
use super::{CACHE_STATUS_HEADER, Engine, hit_header};
use crate::model::conditional::{Conditions, Verdict};
use crate::model::entry::{Entry, ObjectMeta};
use crate::model::hit_headers::{self, HitView};
use crate::model::key::CacheKey;
use crate::model::range;
use crate::model::read_request::ReadRequest;
use crate::tier::Lookup;

const MISS: HeaderValue = HeaderValue::from_static("miss");
const BYPASS: HeaderValue = HeaderValue::from_static("bypass");

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

/// 416, with the `Content-Range: bytes */size` RFC 9110 asks for (S3-compatible origins send
/// it too).
fn invalid_range(size: u64) -> S3Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::InvalidRange,
        format!("The requested range is not satisfiable for an object of {size} bytes"),
    );
    let mut headers = http::HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        headers.insert(http::header::CONTENT_RANGE, v);
    }
    e.set_headers(headers);
    e
}

/// The span of `request`'s range in an object of `size` bytes (`None`: the whole object).
fn span_of(request: &ReadRequest, size: u64) -> S3Result<Option<std::ops::Range<u64>>> {
    request
        .range
        .as_ref()
        .map(|r| range::resolve(r, size).map_err(|_| invalid_range(size)))
        .transpose()
}

/// The headers of an answer from `meta`: the shared renderer's, with user metadata that
/// needs RFC 2047 encoding left for s3s to write (`Some` metadata to put in the output).
fn hit_headers(meta: &ObjectMeta, view: &HitView<'_>) -> S3Result<(http::HeaderMap, Option<s3s::dto::Metadata>)> {
    let rendered = hit_headers::render(meta, view).ok_or_else(|| {
        S3Error::with_message(
            S3ErrorCode::InternalError,
            "the cached metadata holds a value that is not a valid header value",
        )
    })?;
    let metadata = if rendered.metadata_left_out {
        meta.metadata.clone()
    } else {
        None
    };
    Ok((rendered.headers, metadata))
}

/// What a GET answer from cached metadata `meta` is made of, once the request's conditions
/// passed: the span asked for (`None`: the whole object), the output without its body, and
/// the rendered headers.
fn get_answer_parts(
    meta: &ObjectMeta,
    request: &ReadRequest,
    cache_status: &HeaderValue,
) -> S3Result<(Option<std::ops::Range<u64>>, GetObjectOutput, http::HeaderMap)> {
    check_conditions(&request.conditions, meta, cache_status)?;
    let span = span_of(request, meta.size)?;
    let view = HitView {
        get: true,
        checksums: request.checksums,
        span: span.as_ref(),
        overrides: &request.overrides,
    };
    let (headers, metadata) = hit_headers(meta, &view)?;
    let out = GetObjectOutput {
        // s3s answers 206 for an output with a Content-Range.
        content_range: span.as_ref().map(|s| range::content_range(s, meta.size)),
        metadata,
        ..GetObjectOutput::default()
    };
    Ok((span, out, headers))
}

/// A lookup the hot path made for a request it then left to the full path. It travels in the
/// request's extensions, so the full path neither asks the tier a second time (a second round
/// trip to a shared tier, or a second wait for a failing one) nor counts the lookup twice.
#[derive(Clone)]
pub struct Prefetched {
    key: CacheKey,
    lookup: Lookup,
}

impl Prefetched {
    /// The lookup made for `key`, when `extensions` carry one for that key (taken out).
    fn take(extensions: &mut http::Extensions, key: &CacheKey) -> Option<Lookup> {
        let prefetched = extensions.remove::<Self>()?;
        (prefetched.key == *key).then_some(prefetched.lookup)
    }
}

impl Engine {
    /// The hot path's lookup of `key` in the whole tier (for a shared tier one round trip),
    /// made and counted as the full path makes and counts its lookups, failing open. Returns
    /// the fresh object entry to answer, if any, with the name of the tier that held it, and
    /// the lookup to hand to the full path with the request when the hot path does not
    /// answer (a miss, a stale or negative entry, a failing tier).
    pub async fn lookup_fresh(&self, key: CacheKey) -> (Option<(Arc<Entry>, &'static str)>, Prefetched) {
        let lookup = self.lookup(&key).await;
        let fresh = lookup
            .entry
            .as_ref()
            .filter(|entry| !entry.missing && self.freshness.age(&key, entry) == Age::Fresh)
            .map(|entry| (Arc::clone(entry), lookup.tier));
        (fresh, Prefetched { key, lookup })
    }

    /// The tier's lookup for `key`: the one the hot path made for this request, if it made
    /// one, else a new one.
    async fn lookup_for(&self, extensions: &mut http::Extensions, key: &CacheKey) -> Lookup {
        match Prefetched::take(extensions, key) {
            Some(lookup) => lookup,
            None => self.lookup(key).await,
        }
    }

    /// GetObject through the cache.
    ///
    /// # Errors
    /// The origin's error for the object, `PreconditionFailed`, or `InvalidRange`.
    pub async fn get_object(self: &Arc<Self>, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        self.get_object_once(req, true).await
    }

    /// [`Self::get_object`]; `may_retry` once after finding, while reading its blocks, that the
    /// object changed at the origin.
    async fn get_object_once(
        self: &Arc<Self>,
        mut req: S3Request<GetObjectInput>,
        may_retry: bool,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let request = ReadRequest::of(&req.input);
        let Some(key) = request.cache_key().cloned() else {
            self.metrics.bypass("GetObject");
            return self.origin_get(req, BYPASS).await;
        };
        let lookup = self.lookup_for(&mut req.extensions, &key).await;
        let mut validator = None;
        if let Some(entry) = &lookup.entry {
            match self.freshness.age(&key, entry) {
                Age::Fresh => {
                    let entry = Arc::clone(entry);
                    return self
                        .answer_entry(req, &key, entry, &request, hit_header(lookup.tier), may_retry)
                        .await;
                }
                Age::Stale(past) if !entry.missing && self.freshness.serve_while_revalidating(past) => {
                    self.metrics.stale_served("while_revalidate");
                    self.revalidate_in_background(&key, lookup.token, Arc::clone(entry));
                    let entry = Arc::clone(entry);
                    return self
                        .answer_entry(req, &key, entry, &request, hit_header(lookup.tier), may_retry)
                        .await;
                }
                Age::Stale(_) if !entry.missing && self.freshness.revalidates() => validator = Some(Arc::clone(entry)),
                Age::Stale(_) => {}
            }
        }
        // A range of an uncached object: its metadata first, then the whole object when it
        // is small, or the blocks the range needs when it is large.
        let (flight, leader) = if lookup.entry.is_none() && request.range.is_some() {
            let wanted = match request.range {
                Some(s3s::dto::Range::Int { first, last }) => Some((first, last.map(|l| l.saturating_add(1)))),
                _ => None,
            };
            self.start_fill_by_head(&key, lookup.token, wanted)
        } else {
            self.start_fill(&key, lookup.token, validator)
        };
        if !leader {
            self.metrics.singleflight_wait();
        }
        match flight.await {
            FillOutcome::Cached(entry) => self.answer_entry(req, &key, entry, &request, MISS, may_retry).await,
            FillOutcome::Failed(failure) => Err(failure.to_error()),
            FillOutcome::Stream(slot) => {
                // The slot holds the whole object: a ranged request asks the origin for its range.
                let taken = if request.range.is_none() {
                    slot.lock().unwrap_or_else(PoisonError::into_inner).take()
                } else {
                    None
                };
                match taken {
                    Some(output) => self.answer_streamed(output, &request),
                    None => self.origin_get(req, MISS).await,
                }
            }
        }
    }

    /// The answer from `entry`: from its body, or from its blocks.
    async fn answer_entry(
        self: &Arc<Self>,
        req: S3Request<GetObjectInput>,
        key: &CacheKey,
        entry: Arc<Entry>,
        request: &ReadRequest,
        header: HeaderValue,
        may_retry: bool,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        if !entry.in_blocks || entry.missing {
            return self.answer_get(&entry, request, header);
        }
        let (span, out, headers) = get_answer_parts(&entry.meta, request, &header)?;
        let whole = span.unwrap_or(0..entry.meta.size);
        match self
            .answer_from_blocks(key, &entry, whole, out, headers, header)
            .await?
        {
            BlocksAnswer::Answer(resp) => Ok(*resp),
            BlocksAnswer::Changed if may_retry => Box::pin(self.get_object_once(req, false)).await,
            BlocksAnswer::Changed | BlocksAnswer::Bypass => self.origin_get(req, MISS).await,
        }
    }

    /// HeadObject through the cache.
    ///
    /// # Errors
    /// The origin's error for the object, `PreconditionFailed`, or `InvalidRange`.
    pub async fn head_object(
        self: &Arc<Self>,
        mut req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let request = ReadRequest::of(&req.input);
        let Some(key) = request.cache_key().cloned() else {
            self.metrics.bypass("HeadObject");
            return self.origin_head(req, BYPASS).await;
        };
        let lookup = self.lookup_for(&mut req.extensions, &key).await;
        let (entry, hit) = match lookup.entry {
            Some(entry) if self.freshness.age(&key, &entry) == Age::Fresh => (entry, hit_header(lookup.tier)),
            // HEAD does not revalidate: a stale entry is refreshed by the next GET.
            Some(_) => return self.origin_head(req, MISS).await,
            // A miss fills the object (whole when small, its metadata when large).
            None => match self.start_fill_by_head(&key, lookup.token, None).0.await {
                FillOutcome::Cached(entry) => (entry, MISS),
                FillOutcome::Failed(failure) => return Err(failure.to_error()),
                FillOutcome::Stream(_) => return self.origin_head(req, MISS).await,
            },
        };
        if entry.missing {
            return Err(no_such_key());
        }
        let meta = &entry.meta;
        check_conditions(&request.conditions, meta, &hit)?;
        let span = span_of(&request, meta.size)?;
        let view = HitView {
            get: false,
            checksums: request.checksums,
            span: span.as_ref(),
            overrides: &request.overrides,
        };
        let (headers, metadata) = hit_headers(meta, &view)?;
        let out = HeadObjectOutput {
            metadata,
            ..HeadObjectOutput::default()
        };
        let mut resp = S3Response::new(out);
        resp.headers = headers;
        resp.headers.insert(CACHE_STATUS_HEADER, hit);
        Ok(resp)
    }

    /// A fresh object entry held in this process's memory, found without I/O, with the name of
    /// the tier holding it (the hot path's lookup; nothing is counted).
    #[must_use]
    pub fn fresh_local(&self, key: &CacheKey) -> Option<(Arc<Entry>, &'static str)> {
        let (entry, tier) = self.tier.peek_local(key)?;
        (!entry.missing && self.freshness.age(key, &entry) == Age::Fresh).then_some((entry, tier))
    }

    fn answer_get(
        &self,
        entry: &Entry,
        request: &ReadRequest,
        header: HeaderValue,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        if entry.missing {
            return Err(no_such_key());
        }
        let (span, mut out, headers) = get_answer_parts(&entry.meta, request, &header)?;
        let body = match &span {
            // Spans are within the body, which holds exactly `size` bytes.
            Some(span) => entry
                .body
                .slice(usize::try_from(span.start).unwrap_or(0)..usize::try_from(span.end).unwrap_or(0)),
            None => entry.body.clone(),
        };
        self.metrics.served("cache", body.len() as u64);
        out.body = Some(blob(body));
        let mut resp = S3Response::new(out);
        resp.headers = headers;
        resp.headers.insert(CACHE_STATUS_HEADER, header);
        Ok(resp)
    }

    /// The origin's answer to a fill that could not be cached, streamed to the client. s3s
    /// applies the request's `response-*` overrides to every GetObject answer itself.
    fn answer_streamed(
        &self,
        mut output: GetObjectOutput,
        request: &ReadRequest,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let meta = ObjectMeta::from_get_output(&output);
        check_conditions(&request.conditions, &meta, &MISS)?;
        if !request.checksums {
            // The fill asked for checksums; the client did not.
            output.checksum_crc32 = None;
            output.checksum_crc32c = None;
            output.checksum_crc64nvme = None;
            output.checksum_sha1 = None;
            output.checksum_sha256 = None;
            output.checksum_type = None;
        }
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
}

fn blob(bytes: Bytes) -> StreamingBlob {
    StreamingBlob::from(s3s::Body::from(bytes))
}
