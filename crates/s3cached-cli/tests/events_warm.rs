//! Warm-up: `s3cached warm` loads a prefix into Redis (large objects as blocks, without client
//! credentials), `serve --warm` loads one into memory (also over several listing pages).

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::events::*;
use support::metrics::wait_metric;
use support::proxy::seaweed_origin_args;
use support::redis::RedisServer;

/// Runs the s3cached binary with `args`; kills it after `timeout`. Returns (success, stdout,
/// stderr).
fn run_s3cached(args: &[String], timeout: Duration) -> (bool, String, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("warm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3cached"))
        .args(args)
        .env("NO_COLOR", "1")
        // Warm serves no client: it must not need client credentials from anywhere.
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn s3cached");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait s3cached") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.unwrap_or_else(|| panic!("s3cached {args:?} ran over {timeout:?}\n{stdout}\n{stderr}"));
    (status.success(), stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_loads_a_prefix_into_redis_and_serve_warm_into_memory() {
    let origin = support::seaweed::shared();
    let bucket = origin.new_bucket("warm").await;
    let s3 = origin.client();
    let content = |i: usize| format!("object {i:02} {}", "w".repeat(i * 7));
    for i in 0..30 {
        put_direct(&s3, &bucket, &format!("hot/obj-{i:02}.txt"), content(i).as_bytes()).await;
    }
    for name in ["cold/a.txt", "cold/b.txt", "hotel.txt"] {
        put_direct(&s3, &bucket, name, b"not warmed").await;
    }

    let redis = RedisServer::start();
    let mut args: Vec<String> = vec!["warm".into(), format!("s3://{bucket}/hot/")];
    args.extend(seaweed_origin_args(&origin.endpoint()));
    args.extend(
        [
            "--tier",
            "redis",
            "--redis-url",
            &redis.url(),
            "--access-key",
            "x",
            "--secret-key",
            "y",
            "--redis-timeout",
            "2s",
        ]
        .iter()
        .map(|s| (*s).to_owned()),
    );
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || run_s3cached(&args, Duration::from_secs(60)))
        .await
        .expect("warm thread");
    assert!(ok, "s3cached warm failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("30 objects listed") && stdout.contains("30 loaded") && stdout.contains("0 failed"),
        "summary: {stdout}"
    );
    for i in [0, 13, 29] {
        let got = redis.cli(&["GET", &format!("{bucket}:hot/obj-{i:02}.txt")]);
        assert_eq!(
            got.trim_end_matches('\n'),
            content(i),
            "Redis value of hot/obj-{i:02}.txt"
        );
    }
    let scan = |pattern: String| {
        redis
            .cli(&["--scan", "--pattern", &pattern])
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    };
    assert_eq!(scan(format!("{bucket}:hot/*")), 30);
    assert_eq!(scan(format!("{bucket}:cold/*")), 0);
    assert_eq!(scan(format!("{bucket}:hotel*")), 0);

    // serve --warm: the memory tier is loaded at start-up.
    let warm_target = format!("s3://{bucket}/hot/");
    let p = seaweed_proxy(&["--warm", &warm_target]);
    wait_metric(&p, FILLS_STORED, 30.0, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(metric(&p, FILLS_STORED).await, 30.0, "only the prefix is loaded");
    assert_eq!(metric(&p, ORIGIN_GETS).await, 30.0);
    for i in 0..30 {
        assert_hit(&p, &bucket, &format!("hot/obj-{i:02}.txt"), content(i).as_bytes()).await;
    }
    assert_eq!(metric(&p, MEMORY_HITS).await, 30.0);
    assert_eq!(metric(&p, ORIGIN_GETS).await, 30.0);
    let outside = raw_get(&p, &bucket, "hotel.txt").await;
    assert_eq!((outside.status, outside.cache.as_str()), (200, "miss"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_warm_pages_through_a_listing_longer_than_one_page() {
    // ListObjectsV2 answers at most 1000 keys per page.
    const OBJECTS: usize = 1010;
    let origin = support::seaweed::shared();
    let bucket = origin.new_bucket("warm-pages").await;
    let s3 = origin.client();
    let mut puts = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (s3, bucket) = (s3.clone(), bucket.clone());
        puts.spawn(async move {
            for i in (worker..OBJECTS).step_by(16) {
                put_direct(&s3, &bucket, &format!("many/{i:05}"), format!("#{i}").as_bytes()).await;
            }
        });
    }
    while let Some(done) = puts.join_next().await {
        done.expect("put worker");
    }
    let target = format!("s3://{bucket}/many/");
    let p = seaweed_proxy(&["--warm", &target, "--warm-concurrency", "16"]);
    wait_metric(&p, FILLS_STORED, OBJECTS as f64, Duration::from_secs(60)).await;
    assert_eq!(
        metric(&p, r#"s3cached_origin_requests_total{operation="ListObjectsV2"}"#).await,
        2.0,
        "two listing pages"
    );
    for i in [0, 999, 1000, OBJECTS - 1] {
        assert_hit(&p, &bucket, &format!("many/{i:05}"), format!("#{i}").as_bytes()).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_loads_large_objects_as_blocks_and_the_next_reads_make_no_origin_get() {
    let origin = support::seaweed::shared();
    let bucket = origin.new_bucket("warm-lake").await;
    let s3 = origin.client();
    let a = support::cli_tools::random_bytes(12 << 20);
    let b = support::cli_tools::random_bytes((9 << 20) + 12_345);
    put_direct(&s3, &bucket, "lake/a.parquet", &a).await;
    put_direct(&s3, &bucket, "lake/b.parquet", &b).await;
    put_direct(&s3, &bucket, "lake/_meta.json", b"{}").await;
    put_direct(&s3, &bucket, "lake/huge.bin", &vec![7u8; 20 << 20]).await;

    let redis = RedisServer::start();
    let tier = [
        "--tier",
        "redis",
        "--redis-url",
        &redis.url(),
        "--max-block-cached-object-size",
        "16MiB",
    ];
    let mut args: Vec<String> = vec!["warm".into(), format!("s3://{bucket}/lake/")];
    args.extend(seaweed_origin_args(&origin.endpoint()));
    args.extend(tier.iter().map(|s| (*s).to_owned()));
    let (ok, stdout, stderr) = tokio::task::spawn_blocking(move || run_s3cached(&args, Duration::from_secs(120)))
        .await
        .expect("warm thread");
    assert!(ok, "s3cached warm failed\nstdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("4 objects listed")
            && stdout.contains("3 loaded")
            && stdout.contains("2 of them as blocks")
            && stdout.contains("1 skipped")
            && stdout.contains("0 failed"),
        "summary: {stdout}"
    );

    let p = support::cli_tools::start_proxy(origin, &tier);
    let client = p.client(support::cli_tools::CLIENT_KEY, support::cli_tools::CLIENT_SECRET);
    for (key, want) in [("lake/a.parquet", &a), ("lake/b.parquet", &b)] {
        let got = support::clients::get_bytes(&client, &bucket, key).await;
        assert!(got[..] == want[..], "{key}: bytes differ");
    }
    assert_eq!(
        metric(&p, ORIGIN_GETS).await,
        0.0,
        "warmed objects read the origin\n{}",
        p.log_tail()
    );
    assert_eq!(metric(&p, "s3cached_block_origin_fetches_total").await, 0.0);
}
