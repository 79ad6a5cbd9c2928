//! Large objects and ranged reads served from blocks, in front of SeaweedFS: random ranges of
//! a 64 MiB object compared byte for byte with the origin's answers (block edges, suffix
//! ranges, the last partial block, an empty object, 416), a second pass with no origin
//! GetObject, an object overwritten while a client streams it, and the aws cli's multipart
//! download of a 100 MiB object twice, and Polars (cold first), DuckDB and pyarrow scanning a Parquet dataset twice
//! (`analytics_scan.py`).

mod support;

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use support::cli_tools::{
    AwsCli, CLIENT_KEY, CLIENT_SECRET, TempDir, random_bytes, run_python_within, start_proxy, tail,
};
use support::seaweed::shared;

const ORIGIN_GETS: &str = r#"s3cached_origin_requests_total{operation="GetObject"}"#;
const BLOCK_FETCHES: &str = "s3cached_block_origin_fetches_total";

/// One answer, as a client sees it.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    content_range: Option<String>,
    content_length: Option<String>,
    etag: Option<String>,
    body: Bytes,
}

/// A GET of `url` (presigned) with an optional `Range` header.
async fn get(url: &str, range: Option<&str>) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = http::Request::get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = tokio::time::timeout(
        Duration::from_secs(60),
        client.request(req.body(Empty::new()).expect("request")),
    )
    .await
    .expect("GET took over 60 s")
    .expect("GET");
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (status, content_range, content_length, etag) = (
        resp.status().as_u16(),
        header("content-range"),
        header("content-length"),
        header("etag"),
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        content_range,
        content_length,
        etag,
        body,
    }
}

async fn presigned(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> String {
    let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(3600)).expect("presign");
    client
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(config)
        .await
        .expect("presign")
        .uri()
        .to_owned()
}

/// A small deterministic generator: the cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn ranges(size: u64, block: u64, cases: usize) -> Vec<String> {
    let mut out = vec![
        format!("bytes=0-{}", block - 1),
        format!("bytes={}-{}", block - 1, block),
        format!("bytes={}-{}", block, 3 * block - 1),
        format!("bytes={}-", size - 1),
        format!("bytes={}-", size - block / 2),
        format!("bytes={}-{}", size - 10, size + 1000),
        "bytes=-1".to_owned(),
        format!("bytes=-{}", block + 7),
        format!("bytes=-{}", size + 5),
        format!("bytes={size}-"),
        format!("bytes={}-{}", size + 10, size + 20),
        "bytes=0-".to_owned(),
    ];
    let mut rng = Rng(0x5eed_cafe_f00d);
    for _ in 0..cases {
        let start = rng.below(size);
        let len = match rng.below(3) {
            0 => 1 + rng.below(64 << 10),
            1 => 1 + rng.below(8 << 20),
            _ => 1 + rng.below(block * 3),
        };
        out.push(format!("bytes={start}-{}", start + len - 1));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_ranges_of_a_large_object_match_the_origin_byte_for_byte() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("blocks-ranges").await;
    let size: u64 = 64 << 20;
    let data = random_bytes(size as usize);
    seaweed.put_object(&bucket, "big.bin", data.clone()).await;
    seaweed.put_object(&bucket, "empty.bin", Vec::new()).await;
    let proxy = start_proxy(seaweed, &[]);
    let through = proxy.client(CLIENT_KEY, CLIENT_SECRET);
    let origin = seaweed.client();
    let cases = ranges(size, 1 << 20, 120);

    for pass in 0..2 {
        let origin_gets_before = proxy.metric_value(ORIGIN_GETS).await;
        let url = presigned(&through, &bucket, "big.bin").await;
        let direct = presigned(&origin, &bucket, "big.bin").await;
        for range in &cases {
            let want = get(&direct, Some(range)).await;
            let got = get(&url, Some(range)).await;
            assert_eq!(
                (got.status, &got.content_range),
                (want.status, &want.content_range),
                "pass {pass}, Range {range}\n{}",
                proxy.log_tail()
            );
            if want.status < 300 {
                assert_eq!(
                    (&got.content_length, &got.etag),
                    (&want.content_length, &want.etag),
                    "pass {pass}, Range {range}"
                );
                assert!(got.body == want.body, "pass {pass}, Range {range}: bytes differ");
            }
        }
        // A whole GET of the large object comes from the same blocks.
        let whole = get(&url, None).await;
        assert_eq!(whole.status, 200);
        assert!(whole.body == data, "pass {pass}: whole GET differs");
        if pass == 1 {
            assert_eq!(
                proxy.metric_value(ORIGIN_GETS).await,
                origin_gets_before,
                "the second pass read the origin\n{}",
                proxy.log_tail()
            );
        }
    }
    let fetches = proxy.metric_value(BLOCK_FETCHES).await;
    let blocks = proxy.metric_value("s3cached_block_origin_fetch_blocks_total").await;
    assert!(blocks <= 64.0 + 8.0, "{blocks} blocks fetched for a 64-block object");
    assert!(
        fetches < blocks,
        "contiguous missing blocks were not coalesced ({fetches} fetches)"
    );

    // An empty object, whole and ranged.
    let url = presigned(&through, &bucket, "empty.bin").await;
    let direct = presigned(&origin, &bucket, "empty.bin").await;
    for range in [None, Some("bytes=0-"), Some("bytes=-5")] {
        let (got, want) = (get(&url, range).await, get(&direct, range).await);
        assert_eq!(
            (got.status, &got.content_range),
            (want.status, &want.content_range),
            "empty object, Range {range:?}"
        );
        if want.status < 300 {
            assert_eq!((got.content_length, got.body), (want.content_length, want.body));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_overwritten_while_streamed_is_never_served_with_mixed_bytes() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("blocks-overwrite").await;
    let size = 48usize << 20;
    let old = random_bytes(size);
    seaweed.put_object(&bucket, "movie.bin", old.clone()).await;
    // One ranged GET ahead of the client, so that most blocks are fetched after the overwrite
    // (with more in flight, the whole 48 MiB may be read before it, all of the old version).
    let proxy = start_proxy(seaweed, &["--origin-parallelism", "1"]);
    let through = proxy.client(CLIENT_KEY, CLIENT_SECRET);
    // The metadata is cached as blocks (ranged miss), and no block beyond the first is.
    let url = presigned(&through, &bucket, "movie.bin").await;
    assert_eq!(get(&url, Some("bytes=0-9")).await.status, 206);

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client
        .request(http::Request::get(&url).body(Empty::new()).expect("request"))
        .await
        .expect("GET");
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    let mut got = Vec::new();
    while got.len() < 1 << 20 {
        match body.frame().await {
            Some(Ok(frame)) => got.extend_from_slice(&frame.into_data().unwrap_or_default()),
            other => panic!("stream ended early: {:?}", other.map(|r| r.map(|_| ()))),
        }
    }
    // Overwritten at the origin behind the cache's back (no event, no write through it).
    let new = random_bytes(size);
    seaweed.put_object(&bucket, "movie.bin", new).await;
    let mut failed = false;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => got.extend_from_slice(&frame.into_data().unwrap_or_default()),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(
        got.len() <= size && got[..] == old[..got.len()],
        "the answer mixed versions"
    );
    assert!(failed || got.len() == size, "a short body must end in an error");
    assert!(got.len() < size, "the old version was served whole after the overwrite");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_cli_downloads_a_100_mib_object_twice_and_the_second_reads_no_origin_bytes() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("blocks-cli").await;
    let data = random_bytes(100 << 20);
    seaweed.put_object(&bucket, "dataset.bin", data.clone()).await;
    let proxy = start_proxy(seaweed, &[]);
    let aws = AwsCli::new(&proxy.endpoint(), CLIENT_KEY, CLIENT_SECRET, || proxy.log_contents());
    let work = TempDir::new("blocks-cli");
    for round in 0..2 {
        let origin_gets = proxy.metric_value(ORIGIN_GETS).await;
        let path = work.join(format!("down-{round}.bin"));
        aws.cp(format!("s3://{bucket}/dataset.bin"), &path);
        let down = std::fs::read(&path).expect("read download");
        assert!(down == data, "round {round}: the download differs from the object");
        if round == 1 {
            assert_eq!(
                proxy.metric_value(ORIGIN_GETS).await,
                origin_gets,
                "the second download read the origin\n{}",
                proxy.log_tail()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polars_duckdb_and_pyarrow_scan_parquet_twice_and_the_second_scan_reads_no_origin_bytes() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("blocks-parquet").await;
    let proxy = start_proxy(seaweed, &[]);
    let work = TempDir::new("blocks-parquet");
    let origin_env = seaweed.aws_env();
    let env_of = |name: &str| {
        origin_env
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let envs = [
        ("PROXY_ENDPOINT", proxy.endpoint()),
        ("ORIGIN_ENDPOINT", seaweed.endpoint()),
        ("METRICS_URL", format!("{}/metrics", proxy.admin_endpoint())),
        ("BUCKET", bucket),
        ("CLIENT_KEY", CLIENT_KEY.to_owned()),
        ("CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("ORIGIN_KEY", env_of("AWS_ACCESS_KEY_ID")),
        ("ORIGIN_SECRET", env_of("AWS_SECRET_ACCESS_KEY")),
    ];
    let output = run_python_within(
        &work,
        "analytics_scan.py",
        include_str!("analytics_scan.py"),
        &envs,
        Duration::from_secs(600),
    );
    assert!(
        output.success() && output.stdout.contains("ALL OK"),
        "{}\n--- s3cached log ---\n{}",
        output.describe(),
        tail(&proxy.log_contents(), 6000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_on_redis_shares_blocks_and_the_second_process_reads_no_origin_bytes() {
    let seaweed = shared();
    let redis = support::redis::RedisServer::start();
    let bucket = seaweed.new_bucket("blocks-fleet").await;
    let size: u64 = 24 << 20;
    let data = random_bytes(size as usize);
    seaweed.put_object(&bucket, "shared.bin", data.clone()).await;
    let url = redis.url();
    let first = start_proxy(seaweed, &["--tier", "memory+redis", "--redis-url", &url]);
    let second = start_proxy(seaweed, &["--tier", "redis", "--redis-url", &url]);
    let cases = ranges(size, 1 << 20, 25);
    for (n, proxy) in [&first, &second].into_iter().enumerate() {
        let origin_gets = proxy.metric_value(ORIGIN_GETS).await;
        let link = presigned(&proxy.client(CLIENT_KEY, CLIENT_SECRET), &bucket, "shared.bin").await;
        let direct = presigned(&seaweed.client(), &bucket, "shared.bin").await;
        for range in &cases {
            let (got, want) = (get(&link, Some(range)).await, get(&direct, Some(range)).await);
            assert_eq!(
                (got.status, &got.content_range),
                (want.status, &want.content_range),
                "process {n}, {range}"
            );
            if want.status < 300 {
                assert!(got.body == want.body, "process {n}, Range {range}: bytes differ");
            }
        }
        let whole = get(&link, None).await;
        assert!(
            whole.status == 200 && whole.body == data,
            "process {n}: whole GET differs"
        );
        if n == 1 {
            assert_eq!(
                proxy.metric_value(ORIGIN_GETS).await,
                origin_gets,
                "the second process read the origin\n{}",
                proxy.log_tail()
            );
            let redis_hits = proxy.metric_value(r#"s3cached_block_hits_total{tier="redis"}"#).await;
            assert!(redis_hits >= 24.0, "blocks came from Redis: {redis_hits}");
        }
    }
    // One value per block, under keys with no hash tag (spread over cluster slots), and no
    // body under `bucket:key` for an object cached as blocks.
    let keys = redis.cli(&["--scan", "--pattern", "s3cached:blk:*"]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 24, "{keys}");
    assert!(!keys.contains('{'));
    assert_eq!(redis.cli(&["exists", &format!("{bucket}:shared.bin")]).trim(), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_readers_share_one_fetch_per_block_and_a_reader_hanging_up_cancels_none() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("blocks-flight").await;
    let size = 16usize << 20;
    let data = random_bytes(size);
    seaweed.put_object(&bucket, "hot.bin", data.clone()).await;
    let proxy = start_proxy(seaweed, &["--prefetch-budget", "0"]);
    let url = presigned(&proxy.client(CLIENT_KEY, CLIENT_SECRET), &bucket, "hot.bin").await;
    // The metadata, and block 0, are cached by a first small range.
    assert_eq!(get(&url, Some("bytes=0-0")).await.status, 206);

    // A reader that hangs up after its first bytes.
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client
        .request(http::Request::get(&url).body(Empty::new()).expect("request"))
        .await
        .expect("GET");
    let mut body = resp.into_body();
    let _ = body.frame().await;
    drop(body);
    // Eight readers at once, each of the whole object.
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url, None).await })
        })
        .collect();
    for reader in readers {
        let got = reader.await.expect("reader");
        assert!(
            got.status == 200 && got.body == data,
            "a concurrent reader got other bytes"
        );
    }
    let fetched = proxy.metric_value("s3cached_block_origin_fetch_blocks_total").await;
    assert!(
        fetched <= 16.0,
        "{fetched} blocks fetched for 16: concurrent readers did not share fetches\n{}",
        proxy.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_readers_are_read_ahead_and_the_read_ahead_is_used() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("blocks-ahead").await;
    let size: u64 = 48 << 20;
    let data = random_bytes(size as usize);
    seaweed.put_object(&bucket, "log.bin", data.clone()).await;
    let proxy = start_proxy(seaweed, &[]);
    let url = presigned(&proxy.client(CLIENT_KEY, CLIENT_SECRET), &bucket, "log.bin").await;
    let step: u64 = 1 << 20;
    for start in (0..size).step_by(step as usize) {
        let got = get(&url, Some(&format!("bytes={start}-{}", start + step - 1))).await;
        assert_eq!(got.status, 206);
        assert!(
            got.body[..] == data[start as usize..(start + step) as usize],
            "range at {start}"
        );
    }
    let issued = proxy
        .metric_value(r#"s3cached_prefetch_blocks_total{result="issued"}"#)
        .await;
    let used = proxy
        .metric_value(r#"s3cached_prefetch_blocks_total{result="used"}"#)
        .await;
    let misses = proxy.metric_value("s3cached_block_misses_total").await;
    assert!(issued > 0.0 && used > 0.0, "read-ahead issued {issued}, used {used}");
    assert!(
        misses < 48.0,
        "every block was a miss ({misses}): read-ahead did not help"
    );
}
