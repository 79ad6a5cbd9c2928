//! Criterion micro-benchmarks of the hit path's parts.
//!
//! - `cache_key/*`: building a [`CacheKey`] from request strings (bucket validation and two
//!   `Arc<str>` allocations), its stripe hash, and its `bucket:key` rendering.
//! - `memory_tier/*`: [`MemoryTier::get`] of a present and an absent key in a tier holding
//!   10,000 entries of 4 KiB (the async call is polled once; it never waits).
//! - `object_meta/*`: [`ObjectMeta`] from a `GetObjectOutput` with typical S3 headers, and back
//!   to `GetObjectOutput` / `HeadObjectOutput` (done on every fill and every hit).
//! - `s3_service/*`: one whole request through s3s's `S3Service::call` against a trivial `S3`
//!   implementation that answers GetObject with 5 bytes: unsigned without an auth provider
//!   (the baseline: parsing, routing, response), signed with SigV4 headers, and presigned
//!   (SigV4 query). The difference to the baseline is the signature check (canonical request,
//!   HMAC-SHA256 key derivation and signature) plus the header parsing it needs.
//! - `hit_path/get_4KiB_presigned`: a presigned GetObject of a cached 4 KiB object through s3s
//!   and s3cached's front end, engine and memory tier, in process (no sockets), body drained.
//! - `hit_path/get_4KiB_presigned_hot_path`: the same request answered by [`HotPath`], which the
//!   server puts in front of s3s.
//! - `sigv4/*`: [`Verifier::verify`] of a presigned URL and of an `Authorization` header, with
//!   the signing key already derived (every request after the first of the day).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures::executor::block_on;
use http_body_util::BodyExt;
use s3cached::config::{CachePolicy, ClientAuth, Credentials, EvictionPolicy};
use s3cached::doors::auth::{Authorizer, rules_of};
use s3cached::doors::front::Front;
use s3cached::doors::hot_path::HotPath;
use s3cached::doors::sigv4::{SignedRequest, Verifier};
use s3cached::engine::Engine;
use s3cached::metrics::Metrics;
use s3cached::model::entry::{Entry, ObjectMeta};
use s3cached::model::hit_headers::{self, HitView};
use s3cached::model::key::CacheKey;
use s3cached::origin::Origin;
use s3cached::tier::memory::MemoryTier;
use s3cached::tier::{CacheTier, FillToken};
use s3s::auth::SimpleAuth;
use s3s::dto::{ETag, GetObjectInput, GetObjectOutput, Metadata, StorageClass, StreamingBlob, Timestamp};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result};

const ACCESS_KEY: &str = "AKIDBENCHMARK";
const SECRET_KEY: &str = "bench/secret/key/0123456789abcdefghijklmn";
const HOST: &str = "127.0.0.1:8080";

fn cache_key(c: &mut Criterion) {
    let mut g = c.benchmark_group("cache_key");
    g.bench_function("new", |b| {
        b.iter(|| CacheKey::new(black_box("photos-2024"), black_box("users/42/cat-00042.jpg")));
    });
    g.bench_function("new_with_version", |b| {
        b.iter(|| {
            CacheKey::new(black_box("photos-2024"), black_box("users/42/cat-00042.jpg"))
                .map(|k| k.with_version(Some(black_box("3HL4kqtJlcpXroDTDmJ"))))
        });
    });
    let key = CacheKey::new("photos-2024", "users/42/cat-00042.jpg").expect("valid key");
    g.bench_function("object_hash", |b| b.iter(|| black_box(&key).object_hash()));
    g.bench_function("to_string", |b| b.iter(|| black_box(&key).to_string()));
    g.finish();
}

fn entry(len: usize) -> Arc<Entry> {
    Arc::new(Entry::new(
        ObjectMeta {
            size: len as u64,
            ..ObjectMeta::default()
        },
        Bytes::from(vec![7u8; len]),
    ))
}

fn memory_tier(c: &mut Criterion) {
    let tier = MemoryTier::new(256 << 20, EvictionPolicy::Lru, None);
    let keys: Vec<CacheKey> = (0..10_000)
        .map(|i| CacheKey::new("bench", &format!("obj-{i:05}")).expect("valid key"))
        .collect();
    for k in &keys {
        block_on(tier.insert(k.clone(), entry(4096), None, FillToken::default())).expect("insert");
    }
    tier.run_pending_tasks();
    let present = &keys[4242];
    let absent = CacheKey::new("bench", "absent").expect("valid key");
    let mut g = c.benchmark_group("memory_tier");
    g.bench_function("get_hit_4KiB", |b| {
        b.iter(|| block_on(tier.get(black_box(present))));
    });
    g.bench_function("get_miss", |b| {
        b.iter(|| block_on(tier.get(black_box(&absent))));
    });
    g.finish();
}

fn sample_output() -> GetObjectOutput {
    let mut metadata = Metadata::default();
    metadata.insert("owner".into(), "team-a".into());
    metadata.insert("source".into(), "ingest".into());
    GetObjectOutput {
        content_length: Some(4096),
        e_tag: Some(ETag::Strong("9b2cf535f27731c974343645a3985328".into())),
        last_modified: Some(Timestamp::from(SystemTime::UNIX_EPOCH)),
        content_type: Some("application/octet-stream".into()),
        cache_control: Some("max-age=60".into()),
        metadata: Some(metadata),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        accept_ranges: Some("bytes".into()),
        ..GetObjectOutput::default()
    }
}

fn object_meta(c: &mut Criterion) {
    let out = sample_output();
    let meta = ObjectMeta::from_get_output(&out);
    let mut g = c.benchmark_group("object_meta");
    g.bench_function("from_get_output", |b| {
        b.iter(|| ObjectMeta::from_get_output(black_box(&out)));
    });
    g.bench_function("render_get_headers", |b| {
        b.iter(|| hit_headers::render(black_box(&meta), &HitView::plain(true, false)));
    });
    g.bench_function("render_head_headers", |b| {
        b.iter(|| hit_headers::render(black_box(&meta), &HitView::plain(false, false)));
    });
    g.finish();
}

/// Answers every GetObject with five bytes.
struct Trivial;

#[async_trait::async_trait]
impl S3 for Trivial {
    async fn get_object(&self, _req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        Ok(S3Response::new(GetObjectOutput {
            content_length: Some(5),
            body: Some(StreamingBlob::from(s3s::Body::from(Bytes::from_static(b"hello")))),
            ..GetObjectOutput::default()
        }))
    }
}

/// A GetObject request's parts, signed as asked; rebuilt per iteration.
#[derive(Clone)]
struct Template {
    uri: http::Uri,
    headers: http::HeaderMap,
}

impl Template {
    fn new(path: &str, location: Option<SignatureLocation>) -> Self {
        let url = format!("http://{HOST}{path}");
        let mut req = http::Request::get(&url)
            .header(http::header::HOST, HOST)
            .body(())
            .expect("request");
        if let Some(location) = location {
            let identity = aws_credential_types::Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "bench").into();
            let mut settings = SigningSettings::default();
            settings.signature_location = location;
            if location == SignatureLocation::Headers {
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            } else {
                settings.expires_in = Some(Duration::from_secs(3600));
            }
            let params = v4::SigningParams::builder()
                .identity(&identity)
                .region("us-east-1")
                .name("s3")
                .time(SystemTime::now())
                .settings(settings)
                .build()
                .expect("signing params")
                .into();
            // Presigned URLs sign UNSIGNED-PAYLOAD, as S3 clients do.
            let body = if location == SignatureLocation::Headers {
                SignableBody::Bytes(&[])
            } else {
                SignableBody::UnsignedPayload
            };
            let signable = SignableRequest::new("GET", url.as_str(), [("host", HOST)].into_iter(), body)
                .expect("signable request");
            let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
            instructions.apply_to_request_http1x(&mut req);
        }
        let (parts, ()) = req.into_parts();
        Self {
            uri: parts.uri,
            headers: parts.headers,
        }
    }

    fn request(&self) -> s3s::HttpRequest {
        let mut req = http::Request::new(s3s::Body::empty());
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

fn signed_service(s3: impl S3) -> S3Service {
    let mut builder = S3ServiceBuilder::new(s3);
    let mut auth = SimpleAuth::new();
    auth.register(ACCESS_KEY.to_owned(), SECRET_KEY.to_owned().into());
    builder.set_auth(auth);
    builder.build()
}

async fn call(service: &S3Service, template: &Template) -> usize {
    let resp = service.call(template.request()).await.expect("answered");
    assert_eq!(resp.status(), http::StatusCode::OK);
    resp.into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .expect("body")
}

fn s3_service(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let open = S3ServiceBuilder::new(Trivial).build();
    let signed = signed_service(Trivial);
    let plain = Template::new("/bucket/key.txt", None);
    let headers = Template::new("/bucket/key.txt", Some(SignatureLocation::Headers));
    let presigned = Template::new("/bucket/key.txt", Some(SignatureLocation::QueryParams));
    let mut g = c.benchmark_group("s3_service");
    g.bench_function("get_unsigned_no_auth", |b| {
        b.iter(|| rt.block_on(call(&open, &plain)));
    });
    g.bench_function("get_sigv4_header", |b| {
        b.iter(|| rt.block_on(call(&signed, &headers)));
    });
    g.bench_function("get_sigv4_presigned", |b| {
        b.iter(|| rt.block_on(call(&signed, &presigned)));
    });
    g.finish();
}

fn hit_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let metrics = Arc::new(Metrics::new());
    let tier: Arc<dyn CacheTier> = Arc::new(MemoryTier::new(
        64 << 20,
        EvictionPolicy::Lru,
        Some(Arc::clone(&metrics)),
    ));
    // The origin is never asked: the entry is cached up front.
    let origin = Origin::from_s3(Trivial, Arc::clone(&metrics), "unused".to_owned());
    let key = CacheKey::new("bucket", "object-4k").expect("valid key");
    let mut meta = ObjectMeta::from_get_output(&sample_output());
    meta.size = 4096;
    rt.block_on(tier.insert(
        key,
        Arc::new(Entry::new(meta, Bytes::from(vec![1u8; 4096]))),
        None,
        FillToken::default(),
    ))
    .expect("insert");
    let engine = Engine::new(origin, tier, metrics, CachePolicy::default());
    let service = signed_service(Front::new(Arc::clone(&engine), authorizer()));
    let template = Template::new("/bucket/object-4k", Some(SignatureLocation::QueryParams));
    assert_eq!(rt.block_on(call(&service, &template)), 4096);
    c.bench_function("hit_path/get_4KiB_presigned", |b| {
        b.iter(|| rt.block_on(call(&service, &template)));
    });
    let hot = HotPath::new(engine, authorizer(), None);
    let answer = |hot: &HotPath| {
        let resp = hot.answer(&template.request()).expect("a hot-path hit");
        rt.block_on(resp.into_body().collect())
            .map(|b| b.to_bytes().len())
            .expect("body")
    };
    assert_eq!(answer(&hot), 4096);
    c.bench_function("hit_path/get_4KiB_presigned_hot_path", |b| b.iter(|| answer(&hot)));
}

fn credentials() -> Credentials {
    Credentials {
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET_KEY.to_owned(),
    }
}

fn verifier() -> Verifier {
    Verifier::new(&[credentials()])
}

fn authorizer() -> Arc<Authorizer> {
    let auth = ClientAuth {
        credentials: vec![credentials()],
        ..ClientAuth::default()
    };
    Arc::new(Authorizer::new(rules_of(&auth).expect("rules"), None))
}

fn sigv4(c: &mut Criterion) {
    let verifier = verifier();
    let mut g = c.benchmark_group("sigv4");
    for (name, location) in [
        ("verify_presigned", SignatureLocation::QueryParams),
        ("verify_header", SignatureLocation::Headers),
    ] {
        let template = Template::new("/bucket/users/42/cat-00042.jpg", Some(location));
        let query: Vec<_> = template
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
            .unwrap_or_default();
        let req = SignedRequest {
            method: "GET",
            decoded_path: template.uri.path(),
            query: &query,
            headers: &template.headers,
            raw_target: None,
        };
        assert!(verifier.verify(&req, SystemTime::now()).is_some(), "{name}");
        g.bench_function(name, |b| b.iter(|| verifier.verify(black_box(&req), SystemTime::now())));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = cache_key, memory_tier, object_meta, s3_service, hit_path, sigv4
}
criterion_main!(benches);
