//! How long blocks live and how they are first filled, in front of SeaweedFS: the first whole
//! GET of a large object fills its blocks (memory, Redis and memory+Redis tiers; by parallel
//! ranged reads after the first block, or, with `--origin-parallelism 1`, from the one stream
//! it passes on), so the second GET reads nothing from the origin; and blocks outlive the
//! metadata's TTL, so
//! an object read again long after its TTL costs one conditional request and no block fetch,
//! while an overwrite at the origin is seen with its new bytes.

mod support;

use std::time::{Duration, Instant};

use support::cli_tools::{CLIENT_KEY, CLIENT_SECRET, random_bytes, start_proxy};
use support::proxy::S3Cached;
use support::seaweed::shared;

const ORIGIN_GETS: &str = r#"s3cached_origin_requests_total{operation="GetObject"}"#;
const BLOCK_FETCHES: &str = "s3cached_block_origin_fetches_total";
const KEPT: &str = "s3cached_block_stream_kept_total";
const NOT_MODIFIED: &str = r#"s3cached_revalidations_total{result="not_modified"}"#;

/// The whole object, or `range` of it, read through `proxy`.
async fn read(proxy: &S3Cached, bucket: &str, key: &str, range: Option<&str>) -> Vec<u8> {
    let client = proxy.client(CLIENT_KEY, CLIENT_SECRET);
    let resp = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_range(range.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key} {range:?}: {e:?}\n{}", proxy.log_tail()));
    resp.body.collect().await.expect("body").into_bytes().to_vec()
}

/// Waits until the stored blocks counted in `proxy`'s metrics reach `blocks` (they are
/// stored in tasks of their own, just after the bytes went to the client).
async fn wait_for_kept(proxy: &S3Cached, blocks: f64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let kept = proxy.metric_value(KEPT).await;
        if kept >= blocks {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{kept} of {blocks} blocks kept\n{}",
            proxy.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_whole_get_keeps_its_blocks_and_the_second_reads_no_origin_bytes() {
    let seaweed = shared();
    let redis = support::redis::RedisServer::start();
    let bucket = seaweed.new_bucket("blocks-first-read").await;
    let size = 20usize << 20;
    let data = random_bytes(size);
    seaweed.put_object(&bucket, "big.bin", data.clone()).await;
    let url = redis.url();
    for (tier, parallelism) in [("memory", "8"), ("memory", "1"), ("redis", "8"), ("memory+redis", "8")] {
        // Every case starts cold: the Redis tiers get an empty database.
        let _ = redis.cli(&["flushall"]);
        let mut args = vec!["--tier", tier, "--origin-parallelism", parallelism];
        if tier != "memory" {
            args.extend(["--redis-url", url.as_str()]);
        }
        let proxy = start_proxy(seaweed, &args);
        let case = format!("{tier}, --origin-parallelism {parallelism}");
        let first = read(&proxy, &bucket, "big.bin", None).await;
        assert!(first == data, "{case}: the first GET's bytes differ");
        if parallelism == "1" {
            // One stream: one origin GET, whose blocks are stored just after they went out.
            assert_eq!(proxy.metric_value(ORIGIN_GETS).await, 1.0, "{case}: one origin GET");
            wait_for_kept(&proxy, 20.0).await;
        } else {
            // The first block from the whole GET, the other 19 in ranged GETs of up to 8.
            assert_eq!(proxy.metric_value(KEPT).await, 1.0, "{case}: the first block kept");
            assert!(
                proxy.metric_value(BLOCK_FETCHES).await >= 3.0,
                "{case}: blocks read in ranges"
            );
        }
        let gets = proxy.metric_value(ORIGIN_GETS).await;
        let fetches = proxy.metric_value(BLOCK_FETCHES).await;

        let second = read(&proxy, &bucket, "big.bin", None).await;
        assert!(second == data, "{case}: the second GET's bytes differ");
        let part = read(&proxy, &bucket, "big.bin", Some("bytes=3000000-9000000")).await;
        assert!(part[..] == data[3_000_000..=9_000_000], "{case}: the range differs");
        assert_eq!(
            proxy.metric_value(ORIGIN_GETS).await,
            gets,
            "{case}: the second GET read the origin\n{}",
            proxy.log_tail()
        );
        assert_eq!(
            proxy.metric_value(BLOCK_FETCHES).await,
            fetches,
            "{case}: blocks were fetched again"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_outlive_the_ttl_and_a_304_keeps_them_while_an_overwrite_is_seen() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("blocks-lifetime").await;
    let size = 12usize << 20;
    let data = random_bytes(size);
    seaweed.put_object(&bucket, "data.bin", data.clone()).await;
    let proxy = start_proxy(seaweed, &["--ttl", "1s"]);
    assert!(read(&proxy, &bucket, "data.bin", None).await == data);
    let fetches = proxy.metric_value(BLOCK_FETCHES).await;

    // Past three TTLs (and past the metadata's revalidation window of one more TTL).
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let gets = proxy.metric_value(ORIGIN_GETS).await;
    assert!(
        read(&proxy, &bucket, "data.bin", None).await == data,
        "bytes after 3 TTLs"
    );
    assert_eq!(proxy.metric_value(ORIGIN_GETS).await, gets + 1.0, "one conditional GET");
    assert_eq!(proxy.metric_value(NOT_MODIFIED).await, 1.0, "answered 304");
    assert_eq!(
        proxy.metric_value(BLOCK_FETCHES).await,
        fetches,
        "no block was read again"
    );

    // A range, again past the TTL: revalidated, then answered from the same blocks.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let part = read(&proxy, &bucket, "data.bin", Some("bytes=5000000-5100000")).await;
    assert!(part[..] == data[5_000_000..=5_100_000], "range after the TTL");
    assert_eq!(proxy.metric_value(NOT_MODIFIED).await, 2.0);
    assert_eq!(proxy.metric_value(BLOCK_FETCHES).await, fetches);

    // Overwritten at the origin: once the TTL has run out, the new bytes, never a mix.
    let newer = random_bytes(size);
    seaweed.put_object(&bucket, "data.bin", newer.clone()).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let part = read(&proxy, &bucket, "data.bin", Some("bytes=5000000-5100000")).await;
    assert!(part[..] == newer[5_000_000..=5_100_000], "range after the overwrite");
    assert!(
        read(&proxy, &bucket, "data.bin", None).await == newer,
        "whole after the overwrite"
    );
}
