//! The hot path: plain GET and HEAD requests for objects this process holds fresh in memory are
//! answered straight from the HTTP request, before s3s parses, routes and deserializes it.
//!
//! A request qualifies only when the answer cannot differ from the full path's: no body, no
//! query parameters besides SigV4's and `x-id`, none of the headers GetObject reads (ranges,
//! conditions, SSE-C, bucket owner, requester pays) except checksum mode `ENABLED`, a valid
//! SigV4 signature (checked by [`crate::sigv4`], which keeps signing keys) or anonymous access
//! allowed, and a fresh whole-object entry in the memory tier. Everything else (misses, stale
//! entries, errors of any kind, other operations) goes to s3s unchanged, so the hot path never
//! answers with an error of its own. The answer carries the same headers s3s would write for
//! the entry, and is counted in the same metrics.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::future::{BoxFuture, Either, Ready, ready};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Version, header};
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use s3s::dto::{Timestamp, TimestampFormat};
use s3s::path::S3Path;
use s3s::service::S3Service;
use s3s::{HttpError, HttpResponse};

use crate::engine::{CACHE_STATUS_HEADER, Engine, hit_header};
use crate::entry::ObjectMeta;
use crate::host::VirtualHosts;
use crate::key::CacheKey;
use crate::metrics::HitCounters;
use crate::sigv4::{SignedRequest, Verifier};
use crate::tier::memory;

static CACHE_STATUS: HeaderName = HeaderName::from_static(CACHE_STATUS_HEADER);

/// How a request's headers bear on the hot path.
struct HeaderScan {
    /// An `Authorization` header is present.
    signed: bool,
    /// `x-amz-checksum-mode: ENABLED`.
    checksums: bool,
}

/// One pass over the request headers (cheaper than a lookup per name); `None` when a header
/// changes what GetObject/HeadObject answers (ranges, conditions, SSE-C, bucket owner,
/// requester pays, a checksum mode other than `ENABLED`).
fn scan_headers(headers: &HeaderMap) -> Option<HeaderScan> {
    let mut scan = HeaderScan {
        signed: false,
        checksums: false,
    };
    for (name, value) in headers {
        match name.as_str() {
            "range"
            | "if-match"
            | "if-none-match"
            | "if-modified-since"
            | "if-unmodified-since"
            | "x-amz-expected-bucket-owner"
            | "x-amz-request-payer"
            | "x-amz-server-side-encryption-customer-algorithm"
            | "x-amz-server-side-encryption-customer-key"
            | "x-amz-server-side-encryption-customer-key-md5" => return None,
            // Recent SDKs ask for checksums on every GET; other values are rare.
            "x-amz-checksum-mode" if value.as_bytes() == b"ENABLED" => scan.checksums = true,
            "x-amz-checksum-mode" => return None,
            "authorization" => scan.signed = true,
            _ => {}
        }
    }
    Some(scan)
}

/// The query's `application/x-www-form-urlencoded` pairs as s3s reads them (`+` is a space),
/// borrowed unless something needs decoding; `None` when a decoded part is not UTF-8.
fn parse_query(query: &str) -> Option<Vec<(Cow<'_, str>, Cow<'_, str>)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode_component(name)?, decode_component(value)?))
        })
        .collect()
}

fn decode_component(s: &str) -> Option<Cow<'_, str>> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Some(Cow::Borrowed(s));
    }
    let spaced = s.replace('+', " ");
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(&spaced).collect();
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

/// Query parameters a hot-path request may carry: SigV4's and the `x-id` SDKs add.
fn allowed_query_param(name: &str) -> bool {
    matches!(
        name,
        "X-Amz-Algorithm"
            | "X-Amz-Credential"
            | "X-Amz-Date"
            | "X-Amz-Expires"
            | "X-Amz-SignedHeaders"
            | "X-Amz-Signature"
            | "X-Amz-Security-Token"
            | "x-id"
    )
}

/// The metric series of memory hits, per operation.
struct Counters {
    get: HitCounters,
    head: HitCounters,
    hot_get: Counter,
    hot_head: Counter,
}

fn operation(get: bool) -> &'static str {
    if get { "GetObject" } else { "HeadObject" }
}

/// Answers qualifying requests from the memory tier.
pub struct HotPath {
    engine: Arc<Engine>,
    counters: Counters,
    verifier: Option<Verifier>,
    allow_anonymous: bool,
    hosts: Option<VirtualHosts>,
}

impl HotPath {
    /// A hot path over `engine`'s tier, accepting signatures by `verifier` (none: signed
    /// requests always take the full path) and unsigned requests when `allow_anonymous`.
    #[must_use]
    pub fn new(
        engine: Arc<Engine>,
        verifier: Option<Verifier>,
        allow_anonymous: bool,
        hosts: Option<VirtualHosts>,
    ) -> Self {
        let metrics = engine.metrics();
        let counters = Counters {
            get: metrics.hit_counters(memory::NAME, operation(true)),
            head: metrics.hit_counters(memory::NAME, operation(false)),
            hot_get: metrics.hot_path_answers(operation(true)),
            hot_head: metrics.hot_path_answers(operation(false)),
        };
        Self {
            engine,
            counters,
            verifier,
            allow_anonymous,
            hosts,
        }
    }

    /// The answer to `req` when it qualifies and its object is a fresh memory hit; `None`
    /// sends it down the full path.
    pub fn answer<B: http_body::Body>(&self, req: &Request<B>) -> Option<HttpResponse> {
        let started = Instant::now();
        let get = match *req.method() {
            Method::GET => true,
            Method::HEAD => false,
            _ => return None,
        };
        if req.version() > Version::HTTP_11 || !req.body().is_end_stream() {
            return None;
        }
        let headers = req.headers();
        let scan = scan_headers(headers)?;
        let query = match req.uri().query() {
            Some(q) => parse_query(q)?,
            None => Vec::new(),
        };
        if !query.iter().all(|(name, _)| allowed_query_param(name)) {
            return None;
        }
        let raw_path = req.uri().path();
        let decoded_path = if raw_path.contains('%') {
            percent_encoding::percent_decode_str(raw_path).decode_utf8().ok()?
        } else {
            Cow::Borrowed(raw_path)
        };
        if !self.authorized(req.method(), &decoded_path, &query, headers, scan.signed) {
            return None;
        }
        let key = self.object_key(headers, &decoded_path)?;
        let (entry, tier) = self.engine.fresh_local(&key)?;
        let render = || response_headers(&entry.meta, get, scan.checksums);
        let mut headers = match (get, scan.checksums) {
            (true, false) => entry.hit_headers.plain.get_or_init(render).clone()?,
            (true, true) => entry.hit_headers.with_checksums.get_or_init(render).clone()?,
            (false, _) => render()?,
        };
        headers.insert(&CACHE_STATUS, hit_header(tier));
        let body = if get {
            s3s::Body::from(entry.body.clone())
        } else {
            s3s::Body::empty()
        };
        let mut resp = Response::new(body);
        *resp.headers_mut() = headers;
        let resolved;
        let counters = match (tier, get) {
            (memory::NAME, true) => &self.counters.get,
            (memory::NAME, false) => &self.counters.head,
            (tier, get) => {
                resolved = self.engine.metrics().hit_counters(tier, operation(get));
                &resolved
            }
        };
        counters.record(get.then_some(entry.meta.size), started.elapsed());
        if get {
            &self.counters.hot_get
        } else {
            &self.counters.hot_head
        }
        .inc();
        Some(resp)
    }

    fn authorized(
        &self,
        method: &Method,
        decoded_path: &str,
        query: &[(Cow<'_, str>, Cow<'_, str>)],
        headers: &HeaderMap,
        authorization_header: bool,
    ) -> bool {
        let signed = authorization_header || query.iter().any(|(n, _)| n == "X-Amz-Signature");
        if !signed {
            return self.allow_anonymous;
        }
        self.verifier.as_ref().is_some_and(|v| {
            v.verify(
                &SignedRequest {
                    method: method.as_str(),
                    decoded_path,
                    query,
                    headers,
                },
                SystemTime::now(),
            )
        })
    }

    /// The object the request names, parsed as s3s parses it (virtual-hosted style for hosts
    /// under a configured domain, path style otherwise).
    fn object_key(&self, headers: &HeaderMap, decoded_path: &str) -> Option<CacheKey> {
        let vh_bucket = self.hosts.as_ref().and_then(|hosts| {
            let host = headers.get(header::HOST)?.to_str().ok()?;
            hosts.bucket_of(host)
        });
        match s3s::path::parse_virtual_hosted_style(vh_bucket, decoded_path).ok()? {
            S3Path::Object { bucket, key } => CacheKey::new(&bucket, &key).ok(),
            S3Path::Root | S3Path::Bucket { .. } => None,
        }
    }
}

/// The headers s3s writes for a GetObject (`get`) or HeadObject answer built from `meta`
/// without overrides or range, with the object's checksums when `checksums` (the cache status
/// is added per answer); `None` when a value is not a valid header (the full path reports that).
fn response_headers(meta: &ObjectMeta, get: bool, checksums: bool) -> Option<HeaderMap> {
    let mut h = HeaderMap::with_capacity(16);
    let text = |v: &str| HeaderValue::from_str(v).ok();
    let mut put = |name: HeaderName, value: Option<HeaderValue>| -> Option<()> {
        h.insert(name, value?);
        Some(())
    };
    macro_rules! opt {
        ($name:expr, $field:expr, $conv:expr) => {
            if let Some(v) = &$field {
                put($name, $conv(v))?;
            }
        };
    }
    opt!(header::ACCEPT_RANGES, meta.accept_ranges, |v: &String| text(v));
    opt!(
        HeaderName::from_static("x-amz-server-side-encryption-bucket-key-enabled"),
        meta.bucket_key_enabled,
        |v: &bool| Some(HeaderValue::from_static(if *v { "true" } else { "false" }))
    );
    opt!(header::CACHE_CONTROL, meta.cache_control, |v: &String| text(v));
    if checksums {
        opt!(
            HeaderName::from_static("x-amz-checksum-crc32"),
            meta.checksum_crc32,
            |v: &String| text(v)
        );
        opt!(
            HeaderName::from_static("x-amz-checksum-crc32c"),
            meta.checksum_crc32c,
            |v: &String| text(v)
        );
        opt!(
            HeaderName::from_static("x-amz-checksum-crc64nvme"),
            meta.checksum_crc64nvme,
            |v: &String| text(v)
        );
        opt!(
            HeaderName::from_static("x-amz-checksum-sha1"),
            meta.checksum_sha1,
            |v: &String| text(v)
        );
        opt!(
            HeaderName::from_static("x-amz-checksum-sha256"),
            meta.checksum_sha256,
            |v: &String| text(v)
        );
        opt!(
            HeaderName::from_static("x-amz-checksum-type"),
            meta.checksum_type,
            |v: &s3s::dto::ChecksumType| text(v.as_str())
        );
    }
    opt!(
        header::CONTENT_DISPOSITION,
        meta.content_disposition,
        |v: &String| text(v)
    );
    opt!(header::CONTENT_ENCODING, meta.content_encoding, |v: &String| text(v));
    opt!(header::CONTENT_LANGUAGE, meta.content_language, |v: &String| text(v));
    put(header::CONTENT_LENGTH, Some(HeaderValue::from(meta.size)))?;
    opt!(header::CONTENT_TYPE, meta.content_type, |v: &String| text(v));
    opt!(header::ETAG, meta.e_tag, |v: &s3s::dto::ETag| v.to_http_header().ok());
    opt!(
        HeaderName::from_static("x-amz-expiration"),
        meta.expiration,
        |v: &String| text(v)
    );
    opt!(header::EXPIRES, meta.expires, |v| timestamp(
        v,
        TimestampFormat::HttpDate
    ));
    opt!(header::LAST_MODIFIED, meta.last_modified, |v| timestamp(
        v,
        TimestampFormat::HttpDate
    ));
    if let Some(metadata) = &meta.metadata {
        for (name, value) in metadata {
            // s3s RFC 2047-encodes values with non-printable or non-ASCII characters; those
            // entries take the full path.
            if !value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return None;
            }
            let name = HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()).ok()?;
            put(name, text(value))?;
        }
    }
    opt!(
        HeaderName::from_static("x-amz-missing-meta"),
        meta.missing_meta,
        |v: &i32| { Some(HeaderValue::from(*v)) }
    );
    opt!(
        HeaderName::from_static("x-amz-object-lock-legal-hold"),
        meta.object_lock_legal_hold_status,
        |v: &s3s::dto::ObjectLockLegalHoldStatus| text(v.as_str())
    );
    opt!(
        HeaderName::from_static("x-amz-object-lock-mode"),
        meta.object_lock_mode,
        |v: &s3s::dto::ObjectLockMode| text(v.as_str())
    );
    opt!(
        HeaderName::from_static("x-amz-object-lock-retain-until-date"),
        meta.object_lock_retain_until_date,
        |v| timestamp(v, TimestampFormat::DateTime)
    );
    opt!(
        HeaderName::from_static("x-amz-mp-parts-count"),
        meta.parts_count,
        |v: &i32| { Some(HeaderValue::from(*v)) }
    );
    opt!(
        HeaderName::from_static("x-amz-replication-status"),
        meta.replication_status,
        |v: &s3s::dto::ReplicationStatus| text(v.as_str())
    );
    opt!(HeaderName::from_static("x-amz-restore"), meta.restore, |v: &String| {
        text(v)
    });
    opt!(
        HeaderName::from_static("x-amz-server-side-encryption-aws-kms-key-id"),
        meta.ssekms_key_id,
        |v: &String| text(v)
    );
    opt!(
        HeaderName::from_static("x-amz-server-side-encryption"),
        meta.server_side_encryption,
        |v: &s3s::dto::ServerSideEncryption| text(v.as_str())
    );
    opt!(
        HeaderName::from_static("x-amz-storage-class"),
        meta.storage_class,
        |v: &s3s::dto::StorageClass| text(v.as_str())
    );
    if get {
        opt!(
            HeaderName::from_static("x-amz-tagging-count"),
            meta.tag_count,
            |v: &i32| { Some(HeaderValue::from(*v)) }
        );
    }
    opt!(
        HeaderName::from_static("x-amz-version-id"),
        meta.version_id,
        |v: &String| text(v)
    );
    opt!(
        HeaderName::from_static("x-amz-website-redirect-location"),
        meta.website_redirect_location,
        |v: &String| text(v)
    );
    Some(h)
}

fn timestamp(t: &Timestamp, format: TimestampFormat) -> Option<HeaderValue> {
    let mut buf = Vec::with_capacity(32);
    t.format(format, &mut buf).ok()?;
    HeaderValue::from_bytes(&buf).ok()
}

/// The S3 service with the hot path in front: what the S3 listener serves.
#[derive(Clone)]
pub struct HotPathService {
    hot: Option<Arc<HotPath>>,
    full: S3Service,
}

impl HotPathService {
    /// `full` behind `hot` (`None`: every request takes the full path).
    #[must_use]
    pub fn new(hot: Option<HotPath>, full: S3Service) -> Self {
        Self {
            hot: hot.map(Arc::new),
            full,
        }
    }
}

type Answer = Result<HttpResponse, HttpError>;

impl hyper::service::Service<Request<Incoming>> for HotPathService {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = Either<Ready<Answer>, BoxFuture<'static, Answer>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        match self.hot.as_ref().and_then(|hot| hot.answer(&req)) {
            Some(resp) => Either::Left(ready(Ok(resp))),
            None => Either::Right(hyper::service::Service::call(&self.full, req)),
        }
    }
}

#[cfg(test)]
mod tests;
