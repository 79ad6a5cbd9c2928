//! Hits in Redis answered by the hot path: for `--tier redis` and for `memory+redis` on a
//! memory miss, the hot path's answers (status, headers, bytes) and metrics must be the full
//! path's (`--no-hot-path`), in front of a real SeaweedFS and a real Redis.

mod support;

use aws_sdk_s3::primitives::ByteStream;
use support::clients::{RawResponse, get_bytes, send_presigned};
use support::proxy_s3::*;
use support::redis::RedisServer;

const HOT_GETS: &str = r#"s3cached_hot_path_answers_total{operation="GetObject"}"#;
const HOT_HEADS: &str = r#"s3cached_hot_path_answers_total{operation="HeadObject"}"#;
const REDIS_HITS: &str = r#"s3cached_cache_hits_total{tier="redis"}"#;

fn cache_status(r: &RawResponse) -> Option<&str> {
    r.headers.get("x-s3cached").map(String::as_str)
}

/// A filler process stores two objects in Redis; then a process with the hot path and one
/// without send the same requests, each first reaching its object in Redis.
async fn same_answers_as_the_full_path(tier: &str) {
    let redis = RedisServer::start();
    let url = redis.url();
    let args = ["--tier", tier, "--redis-url", &url];
    let filler = proxy(&args);
    let hot = proxy(&args);
    let full = proxy(&[&args[..], &["--no-hot-path"]].concat());
    for p in [&filler, &hot, &full] {
        p.wait_status_ok().await;
    }
    let bucket = origin()
        .new_bucket(&format!("hotredis-{}", tier.replace('+', "-")))
        .await;
    let body = pattern(4096, 9);
    for key in ["dir/get first.bin", "head-first"] {
        origin()
            .client()
            .put_object()
            .bucket(&bucket)
            .key(key)
            .body(ByteStream::from(body.clone()))
            .content_type("application/x-thing")
            .cache_control("max-age=600")
            .content_disposition("inline")
            .content_language("en")
            .metadata("color", "blue")
            .send()
            .await
            .expect("put at origin");
        assert_bytes(&get_bytes(&client(&filler), &bucket, key).await, &body, "fill");
    }
    let mut answers: Vec<Vec<(String, RawResponse)>> = Vec::new();
    for p in [&hot, &full] {
        let c = client(p);
        let mut got = Vec::new();
        let get = |key: &'static str| {
            let c = c.clone();
            let bucket = bucket.clone();
            async move {
                let req = c.get_object().bucket(&bucket).key(key).presigned(presign_cfg()).await;
                send_presigned(&req.expect("presign")).await
            }
        };
        let head = |key: &'static str| {
            let c = c.clone();
            let bucket = bucket.clone();
            async move {
                let req = c.head_object().bucket(&bucket).key(key).presigned(presign_cfg()).await;
                send_presigned(&req.expect("presign")).await
            }
        };
        // The first request for each object finds it in Redis only (memory+redis: then in
        // memory too).
        got.push(("GET, first".to_owned(), get("dir/get first.bin").await));
        got.push(("HEAD, first".to_owned(), head("head-first").await));
        got.push(("GET, again".to_owned(), get("dir/get first.bin").await));
        got.push(("HEAD, again".to_owned(), head("head-first").await));
        got.push(("GET after HEAD".to_owned(), get("head-first").await));
        // The SDK asks for checksums; answered with the same bytes.
        assert_bytes(&get_bytes(&c, &bucket, "head-first").await, &body, "SDK GET");
        answers.push(got);
    }
    let (hot_answers, full_answers) = (&answers[0], &answers[1]);
    for ((what, h), (_, f)) in hot_answers.iter().zip(full_answers) {
        assert_eq!(h.status, 200, "{what}");
        assert_same(what, f, h);
        assert_eq!(cache_status(h), cache_status(f), "{what}: x-s3cached");
        if what.starts_with("GET") {
            assert_bytes(&h.body, &body, what);
        }
    }
    for (what, answer) in &hot_answers[..2] {
        assert_eq!(cache_status(answer), Some("hit-redis"), "{what}");
    }
    assert!(metric(&hot, HOT_GETS).await >= 4.0, "GET hits took the hot path");
    assert!(metric(&hot, HOT_HEADS).await >= 2.0, "HEAD hits took the hot path");
    assert_eq!(metric(&full, HOT_GETS).await + metric(&full, HOT_HEADS).await, 0.0);
    // Counted alike: the same lookups, hits and answers on both doors, and nothing from the
    // origin.
    for series in [
        REDIS_HITS,
        r#"s3cached_cache_misses_total{tier="redis"}"#,
        r#"s3cached_cache_hits_total{tier="memory"}"#,
        r#"s3cached_cache_misses_total{tier="memory"}"#,
        r#"s3cached_requests_total{operation="GetObject",result="ok"}"#,
        r#"s3cached_requests_total{operation="HeadObject",result="ok"}"#,
        r#"s3cached_bytes_served_total{source="cache"}"#,
        ORIGIN_GETS,
    ] {
        assert_eq!(metric(&hot, series).await, metric(&full, series).await, "{series}");
    }
    assert_eq!(metric(&hot, ORIGIN_GETS).await, 0.0);
    assert!(metric(&hot, REDIS_HITS).await >= 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_hits_take_the_hot_path_with_the_full_paths_answers() {
    same_answers_as_the_full_path("redis").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_over_redis_hits_take_the_hot_path_with_the_full_paths_answers() {
    same_answers_as_the_full_path("memory+redis").await;
}

/// Misses, negative entries and objects Redis does not hold leave the hot path without an
/// answer of its own: the full path answers them, from the lookup the hot path made.
#[tokio::test(flavor = "multi_thread")]
async fn misses_go_to_the_full_path_once() {
    let redis = RedisServer::start();
    let p = proxy(&["--tier", "redis", "--redis-url", &redis.url(), "--negative-ttl", "60s"]);
    let bucket = origin().new_bucket("hotredis-miss").await;
    let c = client(&p);
    let missing = c
        .get_object()
        .bucket(&bucket)
        .key("nothing-here")
        .presigned(presign_cfg())
        .await
        .expect("presign");
    for round in 0..2 {
        let r = send_presigned(&missing).await;
        assert_eq!(r.status, 404, "round {round}");
        assert!(String::from_utf8_lossy(&r.body).contains("NoSuchKey"), "round {round}");
    }
    // One lookup per request: a miss is not looked up again by the full path.
    assert_eq!(
        metric(&p, r#"s3cached_cache_misses_total{tier="redis"}"#).await + metric(&p, REDIS_HITS).await,
        2.0
    );
    assert_eq!(metric(&p, HOT_GETS).await, 0.0, "the hot path answers no 404");
}
