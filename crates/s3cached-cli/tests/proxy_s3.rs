//! s3cached in front of a real S3 server (SeaweedFS), driven by the AWS SDK for Rust and by
//! raw presigned HTTP requests: answers through the cache must be the origin's answers.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use s3cached_bench::relay::{Relay, Shaping};
use support::clients::{RawResponse, get_bytes, put_bytes, send_presigned};
use support::proxy::S3Cached;
use support::seaweed::{SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY, SeaweedFs};

const CLIENT_KEY: &str = "client-key";
const CLIENT_SECRET: &str = "client-secret";

/// s3cached in front of `origin_endpoint`, with client credentials unlike the origin's.
fn proxy_for(origin_endpoint: &str, extra: &[&str]) -> S3Cached {
    S3Cached::builder()
        .origin(origin_endpoint)
        .client_credentials(CLIENT_KEY, CLIENT_SECRET)
        .args(extra.iter().copied())
        .start()
}

fn origin() -> &'static SeaweedFs {
    support::seaweed::shared()
}

fn proxy(extra: &[&str]) -> S3Cached {
    proxy_for(&origin().endpoint(), extra)
}

fn client(p: &S3Cached) -> aws_sdk_s3::Client {
    p.client(CLIENT_KEY, CLIENT_SECRET)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Compares bodies without dumping megabytes into the failure message.
#[track_caller]
fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: got {} bytes, want {}; first difference at byte {first}",
            got.len(),
            want.len()
        );
    }
}

async fn metric(p: &S3Cached, query: &str) -> f64 {
    p.metric_value(query).await
}

const ORIGIN_GETS: &str = r#"s3cached_origin_requests_total{operation="GetObject"}"#;
const HITS: &str = r#"s3cached_cache_hits_total{tier="memory"}"#;

/// Headers that legitimately differ per response or per server process.
const PER_RESPONSE: &[&str] = &[
    "date",
    "server",
    "x-amz-request-id",
    "x-amz-id-2",
    "connection",
    "keep-alive",
];

/// SeaweedFS adds headers of its own that are not part of the S3 API (`Seaweed-X-Amz-*`, a CORS
/// `Vary`); the S3 protocol layer s3cached speaks to the origin does not carry them.
fn vendor_specific(name: &str) -> bool {
    name.starts_with("seaweed-") || name == "vary"
}

fn comparable(raw: &RawResponse) -> BTreeMap<String, String> {
    raw.headers
        .iter()
        .filter(|(k, _)| !PER_RESPONSE.contains(&k.as_str()) && k.as_str() != "x-s3cached" && !vendor_specific(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn presign_cfg() -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(600)).expect("presigning config")
}

type GetCustomizer = fn(
    aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder,
) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;

async fn same_get(
    direct: &aws_sdk_s3::Client,
    cached: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    customize: GetCustomizer,
) -> (RawResponse, RawResponse) {
    let o = customize(direct.get_object().bucket(bucket).key(key))
        .presigned(presign_cfg())
        .await
        .expect("presign origin");
    let p = customize(cached.get_object().bucket(bucket).key(key))
        .presigned(presign_cfg())
        .await
        .expect("presign proxy");
    (send_presigned(&o).await, send_presigned(&p).await)
}

fn assert_same(what: &str, origin: &RawResponse, proxy: &RawResponse) {
    assert_eq!(origin.status, proxy.status, "{what}: status differs");
    assert_eq!(origin.body, proxy.body, "{what}: body differs");
    assert_eq!(comparable(origin), comparable(proxy), "{what}: headers differ");
}

#[tokio::test]
async fn cached_get_is_byte_identical_to_the_origin() {
    let p = proxy(&[]);
    let bucket = origin().new_bucket("identical").await;
    let direct = origin().client();
    direct
        .put_object()
        .bucket(&bucket)
        .key("doc/4k.bin")
        .body(ByteStream::from(pattern(4096, 7)))
        .content_type("application/x-test")
        .cache_control("max-age=120")
        .content_disposition("attachment; filename=\"4k.bin\"")
        .content_language("en-GB")
        .metadata("color", "blue")
        .metadata("Owner", "Team-A")
        .send()
        .await
        .expect("put at origin");
    let cached = client(&p);
    let (o, miss) = same_get(&direct, &cached, &bucket, "doc/4k.bin", |b| b).await;
    assert_eq!(o.status, 200);
    assert_eq!(o.body.len(), 4096);
    assert_eq!(miss.headers.get("x-s3cached").map(String::as_str), Some("miss"));
    assert_same("miss", &o, &miss);
    let (o, hit) = same_get(&direct, &cached, &bucket, "doc/4k.bin", |b| b).await;
    assert_eq!(hit.headers.get("x-s3cached").map(String::as_str), Some("hit-memory"));
    assert_same("hit", &o, &hit);
    for (name, customize) in [
        ("range", (|b| b.range("bytes=100-199")) as GetCustomizer),
        ("suffix range", |b| b.range("bytes=-10")),
        ("open range", |b| b.range("bytes=4000-")),
        ("unsatisfiable range", |b| b.range("bytes=5000-")),
        ("if-none-match stale", |b| b.if_none_match("\"0123\"")),
        ("if-match wrong", |b| b.if_match("\"0123\"")),
        ("response override", |b| {
            b.response_content_type("text/plain").response_cache_control("no-cache")
        }),
    ] {
        let (o, hit) = same_get(&direct, &cached, &bucket, "doc/4k.bin", customize).await;
        assert_eq!(o.status, hit.status, "{name}: status");
        if hit.status < 400 {
            assert_eq!(
                hit.headers.get("x-s3cached").map(String::as_str),
                Some("hit-memory"),
                "{name}"
            );
        }
        if o.status < 300 {
            assert_same(name, &o, &hit);
        }
    }
    let etag = o.headers.get("etag").cloned().expect("etag");
    let last_modified = o.headers.get("last-modified").cloned().expect("last-modified");
    let o_req = direct
        .get_object()
        .bucket(&bucket)
        .key("doc/4k.bin")
        .if_none_match(&etag)
        .presigned(presign_cfg())
        .await
        .unwrap();
    let p_req = cached
        .get_object()
        .bucket(&bucket)
        .key("doc/4k.bin")
        .if_none_match(&etag)
        .presigned(presign_cfg())
        .await
        .unwrap();
    let (o304, p304) = (send_presigned(&o_req).await, send_presigned(&p_req).await);
    assert_eq!((o304.status, p304.status), (304, 304));
    assert_eq!(o304.headers.get("etag"), p304.headers.get("etag"));
    let since =
        aws_sdk_s3::primitives::DateTime::from_str(&last_modified, aws_sdk_s3::primitives::DateTimeFormat::HttpDate)
            .unwrap();
    let o_req = direct
        .get_object()
        .bucket(&bucket)
        .key("doc/4k.bin")
        .if_modified_since(since)
        .presigned(presign_cfg())
        .await
        .unwrap();
    let p_req = cached
        .get_object()
        .bucket(&bucket)
        .key("doc/4k.bin")
        .if_modified_since(since)
        .presigned(presign_cfg())
        .await
        .unwrap();
    assert_eq!(send_presigned(&o_req).await.status, send_presigned(&p_req).await.status);
    assert_eq!(
        metric(&p, ORIGIN_GETS).await,
        1.0,
        "only the first GET reached the origin"
    );
}

#[tokio::test]
async fn head_through_the_cache_matches_the_origin() {
    let p = proxy(&[]);
    let bucket = origin().new_bucket("head").await;
    let direct = origin().client();
    direct
        .put_object()
        .bucket(&bucket)
        .key("h")
        .body(ByteStream::from(pattern(1000, 1)))
        .metadata("k", "v")
        .send()
        .await
        .unwrap();
    let cached = client(&p);
    let _ = get_bytes(&cached, &bucket, "h").await;
    let o = direct
        .head_object()
        .bucket(&bucket)
        .key("h")
        .presigned(presign_cfg())
        .await
        .unwrap();
    let c = cached
        .head_object()
        .bucket(&bucket)
        .key("h")
        .presigned(presign_cfg())
        .await
        .unwrap();
    let (o, c) = (send_presigned(&o).await, send_presigned(&c).await);
    assert_eq!(c.headers.get("x-s3cached").map(String::as_str), Some("hit-memory"));
    assert_same("head", &o, &c);
}

const HOT_GETS: &str = r#"s3cached_hot_path_answers_total{operation="GetObject"}"#;
const HOT_HEADS: &str = r#"s3cached_hot_path_answers_total{operation="HeadObject"}"#;

/// Plain hits from the AWS SDK (SigV4 headers, checksum mode on) and from presigned URLs are
/// answered by the hot path, with the same answers as the full S3 request handling gives.
#[tokio::test]
async fn plain_hits_take_the_hot_path_with_the_full_paths_answers() {
    let hot = proxy(&[]);
    let full = proxy(&["--no-hot-path"]);
    let bucket = origin().new_bucket("hot").await;
    let body = pattern(4096, 5);
    origin()
        .client()
        .put_object()
        .bucket(&bucket)
        .key("dir/hot object.bin")
        .body(ByteStream::from(body.clone()))
        .content_type("application/x-thing")
        .cache_control("max-age=600")
        .content_disposition("inline")
        .metadata("color", "blue")
        .send()
        .await
        .unwrap();
    let key = "dir/hot object.bin";
    let mut answers = Vec::new();
    for p in [&hot, &full] {
        let c = client(p);
        // The first GET fills; everything after is a hit.
        assert_bytes(&get_bytes(&c, &bucket, key).await, &body, "fill");
        assert_bytes(&get_bytes(&c, &bucket, key).await, &body, "SDK hit");
        let head = c.head_object().bucket(&bucket).key(key).send().await.unwrap();
        assert_eq!(head.content_length(), Some(4096));
        assert_eq!(
            head.metadata().and_then(|m| m.get("color")).map(String::as_str),
            Some("blue")
        );
        let get = c
            .get_object()
            .bucket(&bucket)
            .key(key)
            .presigned(presign_cfg())
            .await
            .unwrap();
        let head = c
            .head_object()
            .bucket(&bucket)
            .key(key)
            .presigned(presign_cfg())
            .await
            .unwrap();
        answers.push((send_presigned(&get).await, send_presigned(&head).await));
    }
    assert!(
        metric(&hot, HOT_GETS).await >= 2.0,
        "SDK and presigned GET hits take the hot path"
    );
    assert!(
        metric(&hot, HOT_HEADS).await >= 2.0,
        "SDK and presigned HEAD hits take the hot path"
    );
    assert_eq!(metric(&full, HOT_GETS).await + metric(&full, HOT_HEADS).await, 0.0);
    let ((hot_get, hot_head), (full_get, full_head)) = (&answers[0], &answers[1]);
    assert_eq!(
        hot_get.headers.get("x-s3cached").map(String::as_str),
        Some("hit-memory")
    );
    assert_same("presigned GET", full_get, hot_get);
    assert_same("presigned HEAD", full_head, hot_head);
    assert_eq!(hot_get.body.as_ref(), body.as_slice());
}

#[tokio::test]
async fn put_get_head_delete_through_the_cache() {
    let p = proxy(&[]);
    let bucket = origin().new_bucket("crud").await;
    let c = client(&p);
    let body = pattern(10_000, 3);
    c.put_object()
        .bucket(&bucket)
        .key("obj")
        .body(ByteStream::from(body.clone()))
        .content_type("image/png")
        .send()
        .await
        .unwrap();
    // The origin holds the write before the client hears back.
    assert_bytes(&get_bytes(&origin().client(), &bucket, "obj").await, &body, "body");
    let gets_before = metric(&p, ORIGIN_GETS).await;
    let hits_before = metric(&p, HITS).await;
    assert_bytes(&get_bytes(&c, &bucket, "obj").await, &body, "body");
    assert_eq!(
        metric(&p, ORIGIN_GETS).await,
        gets_before,
        "the PUT wrote through: no origin GET"
    );
    assert_eq!(metric(&p, HITS).await, hits_before + 1.0);
    let head = c.head_object().bucket(&bucket).key("obj").send().await.unwrap();
    assert_eq!(head.content_length(), Some(10_000));
    assert_eq!(head.content_type(), Some("image/png"));
    // Overwrite: the next GET sees the new bytes at once.
    let body2 = pattern(5_000, 9);
    put_bytes(&c, &bucket, "obj", body2.clone()).await;
    assert_bytes(&get_bytes(&c, &bucket, "obj").await, &body2, "body");
    c.delete_object().bucket(&bucket).key("obj").send().await.unwrap();
    let err = c
        .get_object()
        .bucket(&bucket)
        .key("obj")
        .send()
        .await
        .expect_err("deleted");
    assert!(err.into_service_error().is_no_such_key());
}

#[tokio::test]
async fn delete_objects_and_copy_invalidate_what_they_touch() {
    let p = proxy(&[]);
    let bucket = origin().new_bucket("invalidate").await;
    let c = client(&p);
    for (k, seed) in [("a", 1u8), ("b", 2), ("src", 3)] {
        put_bytes(&c, &bucket, k, pattern(100, seed)).await;
        let _ = get_bytes(&c, &bucket, k).await;
    }
    let delete = Delete::builder()
        .objects(ObjectIdentifier::builder().key("a").build().unwrap())
        .build()
        .unwrap();
    c.delete_objects().bucket(&bucket).delete(delete).send().await.unwrap();
    assert!(
        c.get_object().bucket(&bucket).key("a").send().await.is_err(),
        "multi-deleted object must be gone"
    );
    c.copy_object()
        .bucket(&bucket)
        .key("b")
        .copy_source(format!("{bucket}/src"))
        .send()
        .await
        .unwrap();
    assert_bytes(
        &get_bytes(&c, &bucket, "b").await,
        &pattern(100, 3),
        "copy destination must show the copy",
    );
}

#[tokio::test]
async fn multipart_upload_of_20_mib_round_trips() {
    let p = proxy(&[]);
    let bucket = origin().new_bucket("multipart").await;
    let c = client(&p);
    let data = pattern(20 << 20, 5);
    let up = c
        .create_multipart_upload()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().expect("upload id");
    let mut parts = Vec::new();
    for (i, chunk) in data.chunks(5 << 20).enumerate() {
        let n = i32::try_from(i + 1).unwrap();
        let part = c
            .upload_part()
            .bucket(&bucket)
            .key("big.bin")
            .upload_id(id)
            .part_number(n)
            .body(ByteStream::from(chunk.to_vec()))
            .send()
            .await
            .unwrap();
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .set_e_tag(part.e_tag().map(str::to_owned))
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket(&bucket)
        .key("big.bin")
        .upload_id(id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .unwrap();
    // Larger than the cacheable size: streamed through, twice, byte-exact.
    assert_bytes(&get_bytes(&c, &bucket, "big.bin").await, &data, "body");
    assert_bytes(&get_bytes(&c, &bucket, "big.bin").await, &data, "body");
    assert!(metric(&p, r#"s3cached_cache_fills_total{result="too_large"}"#).await >= 1.0);
    let ranged = c
        .get_object()
        .bucket(&bucket)
        .key("big.bin")
        .range("bytes=10485760-10485769")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ranged.body.collect().await.unwrap().to_vec(),
        data[10_485_760..10_485_770].to_vec()
    );
}

#[tokio::test]
async fn list_objects_v2_paginates_through_the_cache() {
    let p = proxy(&[]);
    let bucket = origin().new_bucket("list").await;
    for i in 0..25 {
        origin()
            .put_object(&bucket, &format!("items/{i:03}"), vec![b'x'; 10])
            .await;
    }
    let c = client(&p);
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = c
            .list_objects_v2()
            .bucket(&bucket)
            .prefix("items/")
            .max_keys(10)
            .set_continuation_token(token.take())
            .send()
            .await
            .unwrap();
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        match page.next_continuation_token() {
            Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_owned()),
            _ => break,
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("items/{i:03}")).collect();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn wrong_or_missing_credentials_are_rejected() {
    let p = proxy(&[]);
    let bucket = origin().new_bucket("auth").await;
    origin().put_object(&bucket, "secret", b"data".to_vec()).await;
    let bad_secret = p.client(CLIENT_KEY, "not-the-secret");
    let err = bad_secret
        .get_object()
        .bucket(&bucket)
        .key("secret")
        .send()
        .await
        .expect_err("bad secret");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    let unknown = p.client("nobody", CLIENT_SECRET);
    let err = unknown
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect_err("unknown key");
    assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(403));
    // The origin's own credentials are not client credentials.
    let origin_creds = p.client(SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY);
    assert!(
        origin_creds
            .get_object()
            .bucket(&bucket)
            .key("secret")
            .send()
            .await
            .is_err()
    );
    let (status, _) = support::clients::http_get(&format!("{}/{bucket}/secret", p.endpoint()))
        .await
        .expect("anonymous GET");
    assert_eq!(status, 403, "unsigned requests are refused unless --allow-anonymous");
}

#[tokio::test]
async fn anonymous_reads_only_when_enabled() {
    let p = proxy(&["--allow-anonymous"]);
    let bucket = origin().new_bucket("anon").await;
    origin()
        .put_object(&bucket, "public.txt", b"hello world".to_vec())
        .await;
    let (status, body) = support::clients::http_get(&format!("{}/{bucket}/public.txt", p.endpoint()))
        .await
        .expect("GET");
    assert_eq!((status, body.as_str()), (200, "hello world"));
}

#[tokio::test]
async fn concurrent_misses_make_exactly_one_origin_get() {
    let relay = Relay::start(
        format!("127.0.0.1:{}", origin().s3_port()).parse().unwrap(),
        Shaping::latency(Duration::from_millis(300)),
    )
    .await
    .expect("start relay");
    let p = proxy_for(&relay.endpoint(), &[]);
    let bucket = origin().new_bucket("singleflight").await;
    let body = pattern(256 * 1024, 4);
    origin().put_object(&bucket, "hot", body.clone()).await;
    let c = client(&p);
    let before = metric(&p, ORIGIN_GETS).await;
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let (c, bucket) = (c.clone(), bucket.clone());
        tasks.push(tokio::spawn(async move { get_bytes(&c, &bucket, "hot").await }));
    }
    for t in tasks {
        assert_bytes(&t.await.unwrap(), &body, "concurrent GET");
    }
    assert_eq!(
        metric(&p, ORIGIN_GETS).await - before,
        1.0,
        "32 concurrent misses, one origin GET"
    );
    assert!(metric(&p, "s3cached_singleflight_waits_total").await >= 1.0);
}

#[tokio::test]
async fn a_slow_fill_of_the_old_object_never_overwrites_a_newer_put() {
    // Responses from the origin crawl at 2 MiB/s: reading the 2 MiB old version takes ~1 s,
    // long enough for a PUT of the new version to finish in between.
    let relay = Relay::start(
        format!("127.0.0.1:{}", origin().s3_port()).parse().unwrap(),
        Shaping::latency(Duration::from_millis(20)).with_bandwidth(2 << 20),
    )
    .await
    .expect("start relay");
    let p = proxy_for(&relay.endpoint(), &[]);
    let bucket = origin().new_bucket("race").await;
    let c = client(&p);
    for round in 0..3u8 {
        let key = format!("obj{round}");
        let old = pattern(2 << 20, round);
        let new = pattern(1000, round + 100);
        origin().put_object(&bucket, &key, old.clone()).await;
        let (c2, b2, k2) = (c.clone(), bucket.clone(), key.clone());
        let slow_get = tokio::spawn(async move { get_bytes(&c2, &b2, &k2).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        put_bytes(&c, &bucket, &key, new.clone()).await;
        assert_bytes(
            &get_bytes(&c, &bucket, &key).await,
            &new,
            &format!("round {round}: GET right after the PUT"),
        );
        let concurrent = slow_get.await.unwrap();
        assert!(
            concurrent == old || concurrent == new,
            "round {round}: a concurrent GET sees one version"
        );
        assert_bytes(
            &get_bytes(&c, &bucket, &key).await,
            &new,
            &format!("round {round}: after the slow fill finished"),
        );
    }
    assert!(
        metric(&p, r#"s3cached_cache_fills_total{result="raced"}"#).await >= 1.0,
        "the guard refused stale fills"
    );
}

#[tokio::test]
async fn awkward_keys_round_trip() {
    let p = proxy(&[]);
    let bucket = origin().new_bucket("keys").await;
    let c = client(&p);
    let keys = [
        "ünïcødé/日本語 ファイル.txt",
        "with space/and  two",
        "colon:in:key",
        "{brace}/x}{y",
        "percent%20and%2F/100%",
        "plus+sign&amp=1?q",
    ];
    for (i, key) in keys.iter().enumerate() {
        let body = pattern(500 + i, u8::try_from(i).unwrap());
        put_bytes(&c, &bucket, key, body.clone()).await;
        assert_bytes(
            &get_bytes(&c, &bucket, key).await,
            &body,
            &format!("{key:?} through the cache"),
        );
        assert_bytes(
            &get_bytes(&origin().client(), &bucket, key).await,
            &body,
            &format!("{key:?} at the origin"),
        );
    }
    let listed = c.list_objects_v2().bucket(&bucket).send().await.unwrap();
    let mut got: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    got.sort_unstable();
    let mut want = keys.to_vec();
    want.sort_unstable();
    assert_eq!(got, want);
}

#[tokio::test]
async fn versioned_reads_are_keyed_by_version() {
    let p = proxy(&[]);
    let bucket = origin().new_bucket("versions").await;
    let c = client(&p);
    c.put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let v1 = put_bytes(&c, &bucket, "doc", b"first").await;
    let v2 = put_bytes(&c, &bucket, "doc", b"second").await;
    let (v1, v2) = (
        v1.version_id().expect("version 1").to_owned(),
        v2.version_id().expect("version 2").to_owned(),
    );
    assert_ne!(v1, v2);
    for _ in 0..2 {
        let got = c
            .get_object()
            .bucket(&bucket)
            .key("doc")
            .version_id(&v1)
            .send()
            .await
            .unwrap();
        assert_eq!(got.version_id(), Some(v1.as_str()));
        assert_eq!(got.body.collect().await.unwrap().to_vec(), b"first");
        assert_bytes(&get_bytes(&c, &bucket, "doc").await, b"second", "body");
    }
    let got = c
        .get_object()
        .bucket(&bucket)
        .key("doc")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(got.body.collect().await.unwrap().to_vec(), b"second");
    // Deleting version 2 makes version 1 the latest again; the cached latest must not survive.
    c.delete_object()
        .bucket(&bucket)
        .key("doc")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_bytes(&get_bytes(&c, &bucket, "doc").await, b"first", "body");
}

#[tokio::test]
async fn objects_above_the_size_limit_stream_through_uncached() {
    let p = proxy(&["--max-object-size", "1MiB"]);
    let bucket = origin().new_bucket("stream").await;
    let data = pattern(3 << 20, 8);
    origin().put_object(&bucket, "large", data.clone()).await;
    let c = client(&p);
    for _ in 0..2 {
        assert_bytes(&get_bytes(&c, &bucket, "large").await, &data, "body");
    }
    assert_eq!(metric(&p, r#"s3cached_cache_entries{tier="memory"}"#).await, 0.0);
    assert_eq!(
        metric(&p, r#"s3cached_cache_fills_total{result="too_large"}"#).await,
        2.0
    );
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let relay = Relay::start(
        format!("127.0.0.1:{}", origin().s3_port()).parse().unwrap(),
        Shaping::latency(Duration::from_millis(1500)),
    )
    .await
    .expect("start relay");
    let mut p = proxy_for(&relay.endpoint(), &[]);
    let bucket = origin().new_bucket("shutdown").await;
    let body = pattern(50_000, 6);
    origin().put_object(&bucket, "slow", body.clone()).await;
    let c = client(&p);
    let (c2, b2) = (c.clone(), bucket.clone());
    let in_flight = tokio::spawn(async move { get_bytes(&c2, &b2, "slow").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = tokio::task::spawn_blocking(move || p.stop())
        .await
        .unwrap()
        .expect("exit status");
    assert!(status.success(), "clean exit after SIGTERM, got {status}");
    assert_bytes(&in_flight.await.unwrap(), &body, "request in flight during shutdown");
}
