//! The hot path: plain GET and HEAD requests for objects the cache holds fresh are answered
//! straight from the HTTP request, before s3s parses, routes and deserializes it.
//!
//! A request qualifies only when the answer cannot differ from the full path's: no body, no
//! query parameters besides SigV4's and `x-id`, none of the headers GetObject reads (ranges,
//! conditions, SSE-C, bucket owner, requester pays) except checksum mode `ENABLED`, a valid
//! SigV4 signature (checked by [`crate::doors::sigv4`], which keeps signing keys) or anonymous access
//! allowed, and a fresh whole-object entry. An entry in this process's memory is answered
//! synchronously; with a shared tier (`redis`, or `memory+redis` when memory misses), the
//! request waits for one tier lookup (one Redis round trip) and a fresh entry is answered
//! the same way. Everything else (misses, stale or negative entries, errors of any kind,
//! other operations) goes to s3s unchanged, so the hot path never answers with an error of
//! its own; a lookup already made travels with the request, so the full path does not repeat
//! it. The answer carries the same headers s3s would write for the entry, and is counted in
//! the same metrics.
//!
//! On HTTP/1.1 connections (plain TCP, or TLS without `h2`) the requests reach the hot path
//! first through its own loop ([`connection`]), which writes memory hits itself and gives the
//! connection to hyper (and so to [`service::HotPathService`]) at the first request it does not answer.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use http::{HeaderMap, HeaderName, Method, Request, Response, Version, header};
use prometheus_client::metrics::counter::Counter;
use s3s::HttpResponse;
use s3s::path::S3Path;

use crate::doors::auth::{Action, Authorizer, Caller, Target};
use crate::doors::host::VirtualHosts;
use crate::doors::sigv4::SignedRequest;
use crate::engine::read::Prefetched;
use crate::engine::{CACHE_STATUS_HEADER, Engine, hit_header};
use crate::metrics::HitCounters;
use crate::model::entry::{Entry, RenderedHit};
use crate::model::form_decode::decode_component;
use crate::model::hit_headers;
use crate::model::key::CacheKey;
use crate::model::read_request::{QueryRole, query_role, scan_headers};
use crate::tier::memory;

static CACHE_STATUS: HeaderName = HeaderName::from_static(CACHE_STATUS_HEADER);

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

/// Query parameters a hot-path request may carry: SigV4's and the `x-id` SDKs add.
fn allowed_query_param(name: &str) -> bool {
    matches!(query_role(name), QueryRole::Signature | QueryRole::OperationHint)
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

/// Answers qualifying requests from the cache.
pub struct HotPath {
    engine: Arc<Engine>,
    counters: Counters,
    authorizer: Arc<Authorizer>,
    hosts: Option<VirtualHosts>,
    /// Whether the tier has a shared part worth one lookup when memory has nothing.
    shared: bool,
    /// How long the connection loop answers without a pause before yielding its core
    /// ([`cpu_turn`]).
    yield_after: Option<Duration>,
}

/// A qualifying, authorized request whose object this process does not hold in memory: what
/// the lookup in the shared tier needs to answer it.
pub struct SharedRead {
    key: CacheKey,
    get: bool,
    checksums: bool,
    started: Instant,
}

/// What the hot path makes of a request without waiting.
pub enum Verdict {
    /// Answered from this process's memory (already counted).
    Answered(Hit),
    /// Qualified and allowed, but not in memory: a lookup in the shared tier may answer it.
    Shared(SharedRead),
    /// The full path's.
    Declined,
}

/// A request's line and header section: what the hot path reads of a request, from hyper's
/// parse or from the connection loop's own ([`connection`]).
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// The method.
    pub method: &'a Method,
    /// The protocol version.
    pub version: Version,
    /// The path and query, as sent (percent-encoded).
    pub target: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The request has no body.
    pub no_body: bool,
}

impl<'a> RequestHead<'a> {
    /// The head of `req`.
    pub fn of<B: http_body::Body>(req: &'a Request<B>) -> Self {
        Self {
            method: req.method(),
            version: req.version(),
            target: req.uri().path_and_query().map_or("/", http::uri::PathAndQuery::as_str),
            headers: req.headers(),
            no_body: req.body().is_end_stream(),
        }
    }

    /// The path and the query (empty when there is none).
    fn path_and_query(&self) -> (&'a str, &'a str) {
        self.target.split_once('?').unwrap_or((self.target, ""))
    }
}

/// A hit the hot path answers (counted when it was made): the entry and how to write it.
pub struct Hit {
    entry: Arc<Entry>,
    tier: &'static str,
    get: bool,
    checksums: bool,
}

impl Hit {
    fn rendered(&self) -> &RenderedHit {
        // Rendered (and found complete) before the hit was made.
        self.entry
            .hit_headers
            .get_or_render(self.get, self.checksums, || None)
            .unwrap_or(&NOT_RENDERED)
    }

    /// The answer for hyper to write.
    #[must_use]
    pub fn into_response(self) -> HttpResponse {
        let mut headers = self.rendered().headers.clone();
        headers.insert(&CACHE_STATUS, hit_header(self.tier));
        let body = if self.get {
            s3s::Body::from(self.entry.body.clone())
        } else {
            s3s::Body::empty()
        };
        let mut resp = Response::new(body);
        *resp.headers_mut() = headers;
        resp
    }

    /// The status line and the entry's headers as HTTP/1.1 bytes: the head of the answer up
    /// to the headers of this answer alone ([`Self::cache_status`], then `date`).
    #[must_use]
    pub fn wire_head(&self) -> &Bytes {
        &self.rendered().wire
    }

    /// The value of this answer's cache-status header.
    #[must_use]
    pub fn cache_status(&self) -> http::HeaderValue {
        hit_header(self.tier)
    }

    /// The body (empty for HEAD).
    #[must_use]
    pub fn body(&self) -> Bytes {
        if self.get {
            self.entry.body.clone()
        } else {
            Bytes::new()
        }
    }
}

static NOT_RENDERED: LazyLock<RenderedHit> = LazyLock::new(|| RenderedHit {
    headers: HeaderMap::new(),
    wire: Bytes::new(),
});

impl HotPath {
    /// A hot path over `engine`'s tier, for the reads `authorizer` allows: the same rules and
    /// secrets the full path asks.
    #[must_use]
    pub fn new(engine: Arc<Engine>, authorizer: Arc<Authorizer>, hosts: Option<VirtualHosts>) -> Self {
        let metrics = engine.metrics();
        let counters = Counters {
            get: metrics.hit_counters(memory::NAME, operation(true)),
            head: metrics.hit_counters(memory::NAME, operation(false)),
            hot_get: metrics.hot_path_answers(operation(true)),
            hot_head: metrics.hot_path_answers(operation(false)),
        };
        let shared = engine.tier().shared();
        Self {
            engine,
            counters,
            authorizer,
            hosts,
            shared,
            yield_after: Some(cpu_turn::DEFAULT_YIELD_AFTER),
        }
    }

    /// Sets how long the connection loop answers without a pause before it yields its core
    /// (`None`: it never does); [`cpu_turn::DEFAULT_YIELD_AFTER`] unless set.
    #[must_use]
    pub fn yielding_after(mut self, limit: Option<Duration>) -> Self {
        self.yield_after = limit;
        self
    }

    /// The answer to `req` when it qualifies and its object is a fresh hit in this process's
    /// memory; `None` sends it down the full path (or to [`Self::answer_shared`]).
    pub fn answer<B: http_body::Body>(&self, req: &Request<B>) -> Option<HttpResponse> {
        match self.decide(&RequestHead::of(req)) {
            Verdict::Answered(hit) => Some(hit.into_response()),
            Verdict::Shared(_) | Verdict::Declined => None,
        }
    }

    /// What to do with `req`: answer it from memory now, look it up in the shared tier, or
    /// leave it to the full path.
    pub fn decide(&self, req: &RequestHead<'_>) -> Verdict {
        self.qualify(req).unwrap_or(Verdict::Declined)
    }

    fn qualify(&self, req: &RequestHead<'_>) -> Option<Verdict> {
        let started = Instant::now();
        let get = match *req.method {
            Method::GET => true,
            Method::HEAD => false,
            _ => return None,
        };
        if req.version > Version::HTTP_11 || !req.no_body {
            return None;
        }
        let headers = req.headers;
        let scan = scan_headers(headers)?;
        let (raw_path, raw_query) = req.path_and_query();
        if !raw_query.split('&').filter(|pair| !pair.is_empty()).all(|pair| {
            decode_component(pair.split_once('=').map_or(pair, |(name, _)| name))
                .is_some_and(|name| allowed_query_param(&name))
        }) {
            return None;
        }
        let decoded_path = if raw_path.contains('%') {
            percent_encoding::percent_decode_str(raw_path).decode_utf8().ok()?
        } else {
            Cow::Borrowed(raw_path)
        };
        // A presigned URL asked for again is known by its bytes: no query decoding and no
        // signature check (the date is checked again).
        let recalled = if scan.signed || !raw_query.contains("X-Amz-Signature=") {
            None
        } else {
            self.authorizer
                .recall_presigned(req.method.as_str(), req.target, headers)
        };
        let query;
        let caller = match recalled.as_deref() {
            Some(access_key) => Caller::AccessKey(access_key),
            None => {
                query = parse_query(raw_query)?;
                self.authenticate(req, &decoded_path, &query, scan.signed)?
            }
        };
        let key = self.object_key(headers, &decoded_path)?;
        // Authorization before the lookup; a refusal is s3s's to answer (and count), with its
        // own error.
        if !self
            .authorizer
            .allows(caller, Action::Read, Target::Object(key.bucket(), key.key()))
        {
            return None;
        }
        if let Some((entry, tier)) = self.engine.fresh_local(&key) {
            // Nothing was counted for the peek: this answer counts the hit.
            return self
                .respond(entry, tier, get, scan.checksums, started, true)
                .map(Verdict::Answered);
        }
        if !self.shared {
            return None;
        }
        Some(Verdict::Shared(SharedRead {
            key,
            get,
            checksums: scan.checksums,
            started,
        }))
    }

    /// The answer to `read` from the whole tier: one lookup (one Redis round trip), counted
    /// as the full path counts it.
    ///
    /// # Errors
    /// The lookup, for the full path to answer from, when there is no fresh object entry or
    /// its headers cannot be written here.
    pub async fn answer_shared(&self, read: SharedRead) -> Result<HttpResponse, Prefetched> {
        let (fresh, prefetched) = self.engine.lookup_fresh(read.key).await;
        let (entry, tier) = fresh.ok_or_else(|| prefetched.clone())?;
        // The tier counted the hit in its lookup.
        self.respond(entry, tier, read.get, read.checksums, read.started, false)
            .map(Hit::into_response)
            .ok_or(prefetched)
    }

    /// The answer from `entry` (found in `tier`), counted; `None` when its headers cannot be
    /// written here (s3s encodes non-ASCII metadata).
    fn respond(
        &self,
        entry: Arc<Entry>,
        tier: &'static str,
        get: bool,
        checksums: bool,
        started: Instant,
        count_hit: bool,
    ) -> Option<Hit> {
        if get && entry.in_blocks {
            // The bytes are blocks, read (and perhaps fetched) by the full path.
            return None;
        }
        entry
            .hit_headers
            .get_or_render(get, checksums, || hit_headers::hit(&entry.meta, get, checksums))?;
        let resolved;
        let counters = match (tier, get) {
            (memory::NAME, true) => &self.counters.get,
            (memory::NAME, false) => &self.counters.head,
            (tier, get) => {
                resolved = self.engine.metrics().hit_counters(tier, operation(get));
                &resolved
            }
        };
        let body_bytes = get.then_some(entry.meta.size);
        if count_hit {
            counters.record(body_bytes, started.elapsed());
        } else {
            counters.record_answer(body_bytes, started.elapsed());
        }
        if get {
            &self.counters.hot_get
        } else {
            &self.counters.hot_head
        }
        .inc();
        Some(Hit {
            entry,
            tier,
            get,
            checksums,
        })
    }

    /// Who signed the request (anonymous when nothing is signed); `None` when a signature is
    /// present but this door cannot vouch for it.
    fn authenticate<'a>(
        &self,
        req: &RequestHead<'a>,
        decoded_path: &'a str,
        query: &'a [(Cow<'a, str>, Cow<'a, str>)],
        authorization_header: bool,
    ) -> Option<Caller<'a>> {
        let signed = authorization_header || query.iter().any(|(n, _)| n == "X-Amz-Signature");
        if !signed {
            return Some(Caller::Anonymous);
        }
        let request = SignedRequest {
            method: req.method.as_str(),
            decoded_path,
            query,
            headers: req.headers,
            raw_target: Some(req.target),
        };
        let access_key = self.authorizer.verify(&request)?;
        Some(Caller::AccessKey(access_key))
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

/// S3's limit on a request's header section, in bytes (every `name: value` line with its
/// line break).
pub const MAX_HEADER_SECTION: usize = 8 * 1024;

pub mod connection;
pub mod cpu_turn;
#[cfg(test)]
mod differential_tests;
pub mod service;
#[cfg(test)]
mod tests;
