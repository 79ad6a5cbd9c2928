//! s3cached in front of a real S3 server (SeaweedFS), driven by the AWS SDK for Rust and by
//! raw presigned HTTP requests: answers through the cache must be the origin's answers.
//! This file: cached and uncached GETs, HEADs and hot-path hits against the origin's own
//! answers, awkward keys and versioned reads.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use support::clients::{get_bytes, put_bytes, send_presigned};
use support::proxy_s3::*;

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
