//! S3 operations through s3cached in front of SeaweedFS: writes and deletes invalidate what
//! they touch, multipart uploads, listings, objects above the size limit, and who may read
//! (credentials, anonymous access).

mod support;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use support::clients::{get_bytes, put_bytes};
use support::proxy_s3::*;
use support::seaweed::{SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY};

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
async fn objects_above_the_size_limits_stream_through_uncached() {
    let p = proxy(&["--max-object-size", "1MiB", "--max-block-cached-object-size", "2MiB"]);
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
    assert_eq!(metric(&p, "s3cached_block_origin_fetches_total").await, 0.0);
}
