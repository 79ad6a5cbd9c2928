//! The hot path against the full path, in process: for every request it answers, the full
//! path (s3s, front end, engine) must answer the same status, headers and body; every other
//! request must be left to the full path.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::SignatureLocation;
use bytes::Bytes;
use http_body_util::BodyExt;
use s3s::S3;
use s3s::dto::{ETag, Metadata, ServerSideEncryption, StorageClass, Timestamp};
use s3s::service::S3Service;

use super::*;
use crate::doors::auth::Authorizer;
use crate::doors::front::Front;
use crate::doors::sigv4::tests::{ACCESS_KEY, SECRET_KEY, signed};
use crate::metrics::Metrics;
use crate::model::config::{CachePolicy, ClientAuth, Credentials, EvictionPolicy};
use crate::model::entry::{Entry, ObjectMeta};
use crate::origin::Origin;
use crate::tier::memory::MemoryTier;
use crate::tier::{CacheTier, FillToken};

/// An origin that answers nothing: every answer in these tests comes from the cache.
struct NoOrigin;

impl S3 for NoOrigin {}

pub(super) struct Setup {
    pub(super) engine: Arc<Engine>,
    pub(super) hot: HotPath,
    pub(super) full: S3Service,
}

pub(super) fn setup(allow_anonymous: bool) -> Setup {
    let auth = ClientAuth {
        credentials: vec![Credentials {
            access_key: ACCESS_KEY.to_owned(),
            secret_key: SECRET_KEY.to_owned(),
        }],
        allow_anonymous,
        ..ClientAuth::default()
    };
    setup_with(crate::doors::auth::rules_of(&auth).expect("rules"))
}

/// Both doors over an in-memory tier, authorizing by `rules`.
pub(super) fn setup_with(rules: crate::model::identities::Identities) -> Setup {
    let metrics = Arc::new(Metrics::new());
    let tier: Arc<dyn CacheTier> = Arc::new(MemoryTier::new(
        64 << 20,
        EvictionPolicy::Lru,
        Some(Arc::clone(&metrics)),
    ));
    let origin = Origin::from_s3(NoOrigin, Arc::clone(&metrics), "none".to_owned());
    let engine = Engine::new(origin, tier, metrics, CachePolicy::default());
    let authorizer = Arc::new(Authorizer::new(rules, Some(Arc::clone(engine.metrics()))));
    let front = Front::new(Arc::clone(&engine), Arc::clone(&authorizer));
    let full = crate::process::server::build_service(&authorizer, &[], Arc::clone(&engine), front).expect("service");
    let hot = HotPath::new(Arc::clone(&engine), authorizer, None);
    Setup { engine, hot, full }
}

/// Metadata exercising every kind of header value the hot path writes.
pub(super) fn rich_meta(size: u64) -> ObjectMeta {
    let mut metadata = Metadata::default();
    metadata.insert("color".into(), "blue".into());
    metadata.insert("note".into(), "two  words".into());
    ObjectMeta {
        size,
        e_tag: Some(ETag::Strong("0123456789abcdef".into())),
        last_modified: Some(Timestamp::from(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )),
        content_type: Some("image/png".into()),
        content_encoding: Some("identity".into()),
        content_disposition: Some("attachment; filename=\"cat.png\"".into()),
        content_language: Some("en".into()),
        cache_control: Some("max-age=60".into()),
        expires: Some(Timestamp::from(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000),
        )),
        metadata: Some(metadata),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD_IA)),
        version_id: Some("v-1".into()),
        server_side_encryption: Some(ServerSideEncryption::from_static(ServerSideEncryption::AES256)),
        bucket_key_enabled: Some(false),
        parts_count: Some(3),
        tag_count: Some(2),
        accept_ranges: Some("bytes".into()),
        // Sent only to requests with checksum mode on.
        checksum_crc32: Some("AAAAAA==".into()),
        checksum_type: Some(s3s::dto::ChecksumType::from_static(s3s::dto::ChecksumType::FULL_OBJECT)),
        ..ObjectMeta::default()
    }
}

pub(super) async fn put(s: &Setup, bucket: &str, key: &str, entry: Entry) {
    let key = CacheKey::new(bucket, key).expect("key");
    s.engine
        .tier()
        .insert(key, Arc::new(entry), None, FillToken::default())
        .await
        .expect("insert");
}

/// A five-byte object with rich metadata.
pub(super) fn hello() -> Entry {
    Entry::new(rich_meta(5), Bytes::from_static(b"hello"))
}

pub(super) fn with_body(req: http::Request<()>) -> http::Request<s3s::Body> {
    req.map(|()| s3s::Body::empty())
}

/// Status, headers (sorted, without Date) and body of an answer.
pub(super) async fn parts(resp: HttpResponse) -> (http::StatusCode, Vec<(String, Vec<u8>)>, Bytes) {
    let (head, body) = resp.into_parts();
    let mut headers: Vec<(String, Vec<u8>)> = head
        .headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect();
    headers.sort();
    let body = body.collect().await.expect("body").to_bytes();
    (head.status, headers, body)
}

pub(super) fn now() -> SystemTime {
    SystemTime::now()
}

#[tokio::test]
async fn answers_exactly_what_the_full_path_answers() {
    let s = setup(true);
    let body = Bytes::from((0..4096u32).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    put(&s, "bucket", "dir/cat 1.png", Entry::new(rich_meta(4096), body.clone())).await;
    let path = "/bucket/dir/cat%201.png";
    let mut cases = Vec::new();
    for method in ["GET", "HEAD"] {
        cases.push(signed(method, path, SignatureLocation::QueryParams, SECRET_KEY, now()));
        cases.push(signed(
            method,
            &format!("{path}?x-id=GetObject"),
            SignatureLocation::Headers,
            SECRET_KEY,
            now(),
        ));
        cases.push(
            http::Request::builder()
                .method(method)
                .uri(path)
                .header("host", "localhost")
                .body(())
                .expect("anonymous"),
        );
    }
    // Recent SDKs ask for checksums on every GetObject.
    let with_checksums: Vec<_> = cases
        .iter()
        .map(|req| {
            let mut req = req.clone();
            req.headers_mut()
                .insert("x-amz-checksum-mode", http::HeaderValue::from_static("ENABLED"));
            req
        })
        .collect();
    cases.extend(with_checksums);
    for req in cases {
        let checksums = req.headers().contains_key("x-amz-checksum-mode");
        let what = format!("{} {} checksums={checksums}", req.method(), req.uri());
        let hot = s
            .hot
            .answer(&with_body(req.clone()))
            .unwrap_or_else(|| panic!("hot path declined {what}"));
        let full = s.full.call(with_body(req)).await.expect("full path");
        let (hot, full) = (parts(hot).await, parts(full).await);
        assert_eq!(hot, full, "{what}");
        assert_eq!(hot.0, http::StatusCode::OK);
        if what.starts_with("GET") {
            assert_eq!(hot.2, body);
        }
        assert!(hot.1.iter().any(|(n, v)| n == "x-s3cached" && v == b"hit-memory"));
        assert_eq!(
            hot.1.iter().any(|(n, _)| n == "x-amz-checksum-crc32"),
            checksums,
            "{what}"
        );
    }
}

#[tokio::test]
async fn counts_like_the_full_path() {
    let s = setup(false);
    put(&s, "bucket", "k", hello()).await;
    let req = signed("GET", "/bucket/k", SignatureLocation::QueryParams, SECRET_KEY, now());
    assert!(s.hot.answer(&with_body(req.clone())).is_some());
    let after_hot = s.engine.metrics().encode();
    let _ = s.full.call(with_body(req)).await.expect("full path");
    let after_full = s.engine.metrics().encode();
    for (family, labels, hot, both) in [
        ("cache_hits", "tier=\"memory\"", 1, 2),
        ("requests", "operation=\"GetObject\",result=\"ok\"", 1, 2),
        ("bytes_served", "source=\"cache\"", 5, 10),
    ] {
        assert_eq!(counter(&after_hot, family, labels), hot, "{family} after the hot path");
        assert_eq!(counter(&after_full, family, labels), both, "{family} after both");
    }
}

/// The value of the counter `family` with `labels` in a Prometheus exposition.
fn counter(text: &str, family: &str, labels: &str) -> u64 {
    let series = format!("s3cached_{family}_total{{");
    text.lines()
        .filter(|l| l.starts_with(&series) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

#[tokio::test]
async fn leaves_everything_else_to_the_full_path() {
    let s = setup(false);
    put(&s, "bucket", "k", hello()).await;
    put(&s, "bucket", "gone", Entry::missing()).await;
    let mut stale = hello();
    stale.validated_at = SystemTime::now() - Duration::from_secs(3600);
    put(&s, "bucket", "stale", stale).await;
    let presigned = |path: &str| signed("GET", path, SignatureLocation::QueryParams, SECRET_KEY, now());
    let with_header = |name: &'static str, value: &'static str| {
        let mut req = presigned("/bucket/k");
        req.headers_mut().insert(name, http::HeaderValue::from_static(value));
        req
    };
    let declined = [
        ("range", with_header("range", "bytes=0-1")),
        ("if-none-match", with_header("if-none-match", "\"0123456789abcdef\"")),
        (
            "if-modified-since",
            with_header("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ),
        (
            "checksum mode other than ENABLED",
            with_header("x-amz-checksum-mode", "enabled"),
        ),
        (
            "sse-c",
            with_header("x-amz-server-side-encryption-customer-algorithm", "AES256"),
        ),
        ("version id", presigned("/bucket/k?versionId=v-1")),
        (
            "response override",
            presigned("/bucket/k?response-content-type=text%2Fplain"),
        ),
        ("other operation", presigned("/bucket/k?tagging")),
        ("not cached", presigned("/bucket/other")),
        ("negative entry", presigned("/bucket/gone")),
        ("stale entry", presigned("/bucket/stale")),
        ("bucket", presigned("/bucket")),
        (
            "wrong secret",
            signed("GET", "/bucket/k", SignatureLocation::QueryParams, "wrong", now()),
        ),
        (
            "expired",
            signed(
                "GET",
                "/bucket/k",
                SignatureLocation::QueryParams,
                SECRET_KEY,
                now() - Duration::from_secs(3600),
            ),
        ),
        (
            "put",
            signed("PUT", "/bucket/k", SignatureLocation::Headers, SECRET_KEY, now()),
        ),
        (
            "anonymous",
            http::Request::get("/bucket/k")
                .header("host", "localhost")
                .body(())
                .expect("request"),
        ),
        (
            "sigv2",
            http::Request::get("/bucket/k")
                .header("host", "localhost")
                .header("authorization", format!("AWS {ACCESS_KEY}:c2lnbmF0dXJl"))
                .body(())
                .expect("request"),
        ),
    ];
    for (what, req) in declined {
        assert!(s.hot.answer(&with_body(req)).is_none(), "{what}");
    }
    // A request with a body.
    let req = presigned("/bucket/k").map(|()| s3s::Body::from(Bytes::from_static(b"x")));
    assert!(s.hot.answer(&req).is_none(), "body");
}

#[tokio::test]
async fn non_ascii_metadata_takes_the_full_path() {
    let s = setup(false);
    let mut meta = rich_meta(5);
    meta.metadata
        .get_or_insert_with(Metadata::default)
        .insert("name".into(), "naïve".into());
    put(&s, "bucket", "k", Entry::new(meta, Bytes::from_static(b"hello"))).await;
    let req = signed("GET", "/bucket/k", SignatureLocation::QueryParams, SECRET_KEY, now());
    assert!(s.hot.answer(&with_body(req)).is_none());
}

#[tokio::test]
async fn virtual_hosted_requests_name_the_same_object() {
    let metrics = Arc::new(Metrics::new());
    let tier: Arc<dyn CacheTier> = Arc::new(MemoryTier::new(1 << 20, EvictionPolicy::Lru, None));
    let origin = Origin::from_s3(NoOrigin, Arc::clone(&metrics), "none".to_owned());
    let engine = Engine::new(origin, Arc::clone(&tier), metrics, CachePolicy::default());
    let hosts = VirtualHosts::new(&["s3.local".to_owned()]).expect("domain");
    let anonymous_reads = ClientAuth {
        allow_anonymous: true,
        ..ClientAuth::default()
    };
    let rules = crate::doors::auth::rules_of(&anonymous_reads).expect("rules");
    let hot = HotPath::new(engine, Arc::new(Authorizer::new(rules, None)), Some(hosts));
    tier.insert(
        CacheKey::new("photos", "a/b.jpg").expect("key"),
        Arc::new(Entry::new(rich_meta(3), Bytes::from_static(b"jpg"))),
        None,
        FillToken::default(),
    )
    .await
    .expect("insert");
    let get = |host: &str, path: &str| {
        http::Request::get(path)
            .header("host", host)
            .body(s3s::Body::empty())
            .expect("request")
    };
    assert!(hot.answer(&get("photos.s3.local:8080", "/a/b.jpg")).is_some());
    assert!(hot.answer(&get("127.0.0.1:8080", "/photos/a/b.jpg")).is_some());
    assert!(hot.answer(&get("other.s3.local", "/a/b.jpg")).is_none());
}

#[test]
fn query_parsing_matches_form_urlencoded() {
    for q in [
        "X-Amz-Credential=AK%2F20261126%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261126T000000Z",
        "a=b&&c=d+e&f%2Bg=h%20i&j&=k&l=",
        "x-id=GetObject",
        "n=na%C3%AFve",
    ] {
        let ours = parse_query(q).expect("parses");
        let reference: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        let ours: Vec<(String, String)> = ours.into_iter().map(|(n, v)| (n.into(), v.into())).collect();
        assert_eq!(ours, reference, "{q}");
    }
    assert!(parse_query("a=%FF").is_none(), "not UTF-8");
}

/// A lookup the hot path made travels with the request: the full path answers from it rather
/// than asking the tier again, and only for the object it was made for.
#[tokio::test]
async fn the_full_path_answers_from_the_hot_paths_lookup() {
    let s = setup(false);
    put(&s, "bucket", "k", hello()).await;
    let (fresh, prefetched) = s.engine.lookup_fresh(CacheKey::new("bucket", "k").expect("key")).await;
    assert!(fresh.is_some(), "a fresh hit");
    // Gone from the tier: an answer with the object can only come from the carried lookup.
    s.engine
        .tier()
        .invalidate(&CacheKey::new("bucket", "k").expect("key"))
        .await
        .expect("invalidate");
    let mut req = with_body(signed(
        "GET",
        "/bucket/k",
        SignatureLocation::QueryParams,
        SECRET_KEY,
        now(),
    ));
    req.extensions_mut().insert(prefetched.clone());
    let (status, headers, body) = parts(s.full.call(req).await.expect("full path")).await;
    assert_eq!(status, http::StatusCode::OK);
    assert_eq!(body, Bytes::from_static(b"hello"));
    assert!(headers.iter().any(|(n, v)| n == "x-s3cached" && v == b"hit-memory"));
    // Carried with a request for another object, it is not used.
    let mut req = with_body(signed(
        "GET",
        "/bucket/other",
        SignatureLocation::QueryParams,
        SECRET_KEY,
        now(),
    ));
    req.extensions_mut().insert(prefetched);
    let (status, _, _) = parts(s.full.call(req).await.expect("full path")).await;
    assert_ne!(status, http::StatusCode::OK);
}
