//! Several s3cached processes sharing Redis, in front of a real SeaweedFS: fleet-wide
//! read-after-write, the `bucket:key` convention seen from Python, and fail-open when Redis
//! dies, restarts or fails over.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::clients::{put_bytes, try_get_bytes as get};
use support::proxy::S3Cached;
use support::redis::{RedisCluster, RedisServer};

const KEY: &str = "fleet-key";
const HOT_GETS: &str = r#"s3cached_hot_path_answers_total{operation="GetObject"}"#;
const SECRET: &str = "fleet-secret";

fn proxy(extra: &[&str]) -> S3Cached {
    let origin = support::seaweed::shared();
    S3Cached::builder()
        .origin(&origin.endpoint())
        .client_credentials(KEY, SECRET)
        .args(extra.iter().copied())
        .start()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_through_one_process_is_seen_by_the_other_every_time() {
    let redis = RedisServer::start();
    let url = redis.url();
    read_after_write_across_processes(&["--tier", "memory+redis", "--redis-url", &url], 200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_put_through_one_process_is_seen_by_the_other_on_the_redis_tier() {
    let redis = RedisServer::start();
    let url = redis.url();
    read_after_write_across_processes(&["--tier", "redis", "--redis-url", &url], 200).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn read_after_write_across_processes_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let seeds = cluster.seeds().join(",");
    read_after_write_across_processes(&["--tier", "memory+redis", "--redis-cluster", &seeds], 60).await;
}

/// Two processes with `args`: `writes` PUTs through A, each followed by a GET through B that
/// must return the new bytes, while readers keep B's memory tier busy.
async fn read_after_write_across_processes(args: &[&str], writes: usize) {
    let a = proxy(args);
    let b = proxy(args);
    a.wait_status_ok().await;
    b.wait_status_ok().await;
    // Both processes must know each other before writes wait for acknowledgements.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bucket = support::seaweed::shared().new_bucket("fleet").await;
    let (ca, cb) = (a.client(KEY, SECRET), b.client(KEY, SECRET));
    put_bytes(&ca, &bucket, "doc", b"v-initial").await;

    // Readers keep B's memory tier hot with whatever is current.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for _ in 0..4 {
        let (cb, bucket, stop, reads) = (cb.clone(), bucket.clone(), Arc::clone(&stop), Arc::clone(&reads));
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let body = get(&cb, &bucket, "doc").await.expect("concurrent read");
                assert!(body.starts_with(b"v-"), "a reader saw {body:?}");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for i in 0..writes {
        let value = format!("v-{i:04}-{}", "x".repeat(i % 50));
        put_bytes(&ca, &bucket, "doc", value.clone().into_bytes()).await;
        let seen = get(&cb, &bucket, "doc").await.expect("read after write");
        assert_eq!(
            String::from_utf8_lossy(&seen),
            value,
            "write {i}: B served a stale object after A acknowledged"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) > 50, "readers ran concurrently");
    assert!(
        b.metric_value(HOT_GETS).await > 0.0,
        "B answered hits on the hot path between writes"
    );
    if args.contains(&"redis") {
        let redis_hits = b.metric_value(r#"s3cached_cache_hits_total{tier="redis"}"#).await;
        assert!(redis_hits > 0.0, "B served from Redis between writes");
        return;
    }
    let memory_hits = b.metric_value(r#"s3cached_cache_hits_total{tier="memory"}"#).await;
    assert!(memory_hits > 0.0, "B served from its memory tier between writes");
    assert!(
        a.metric_value(r#"s3cached_bus_invalidations_total{direction="sent"}"#)
            .await
            >= writes as f64
    );
    assert_eq!(a.metric_value("s3cached_bus_ack_timeouts_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn python_reads_the_object_at_bucket_colon_key() {
    let redis = RedisServer::start();
    // The write-through must reach Redis even on a loaded machine: what is checked is where
    // the bytes are, not how fast.
    let p = proxy(&["--tier", "redis", "--redis-url", &redis.url(), "--redis-timeout", "5s"]);
    let bucket = support::seaweed::shared().new_bucket("pyread").await;
    let c = p.client(KEY, SECRET);
    let body: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    put_bytes(&c, &bucket, "catalog/channels.json", body.clone()).await;
    let script = r#"
import os, sys, redis
r = redis.Redis(host="127.0.0.1", port=int(os.environ["PORT"]))
value = r.get(os.environ["BUCKET"] + ":" + "catalog/channels.json")
if value is None:
    sys.exit("no value at bucket:key")
print(value.hex())
"#;
    let out = std::process::Command::new(support::util::venv_bin("python"))
        .args(["-c", script])
        .env("PORT", redis.port().to_string())
        .env("BUCKET", &bucket)
        .output()
        .expect("run python");
    assert!(out.status.success(), "python: {}", String::from_utf8_lossy(&out.stderr));
    let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        String::from_utf8_lossy(&out.stdout).trim() == hex,
        "Redis holds other bytes than s3cached stored"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_redis_fails_no_request_and_hits_resume_after_restart() {
    let mut redis = RedisServer::start();
    let p = proxy(&[
        "--tier",
        "redis",
        "--redis-url",
        &redis.url(),
        "--redis-timeout",
        "100ms",
    ]);
    let bucket = support::seaweed::shared().new_bucket("killredis").await;
    let c = p.client(KEY, SECRET);
    for i in 0..5 {
        put_bytes(&c, &bucket, &format!("k{i}"), vec![b'a' + i as u8; 2048]).await;
    }
    let failures = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for t in 0..4 {
        let (c, bucket, failures, done, stop) = (
            c.clone(),
            bucket.clone(),
            Arc::clone(&failures),
            Arc::clone(&done),
            Arc::clone(&stop),
        );
        loops.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let k = i % 5;
                match get(&c, &bucket, &format!("k{k}")).await {
                    Ok(body) if body == vec![b'a' + k as u8; 2048] => {}
                    other => {
                        eprintln!("request failed: {other:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hot_before = p.metric_value(HOT_GETS).await;
    assert!(hot_before > 0.0, "Redis hits took the hot path before the kill");
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, health) = support::clients::http_get(&format!("{}/health", p.admin_endpoint()))
        .await
        .unwrap();
    assert!(health.contains("degraded"), "health while Redis is down: {health}");
    redis.restart();
    // Hits come back: the tier reconnects and fills again.
    let hits_before = p.metric_value(r#"s3cached_cache_hits_total{tier="redis"}"#).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while p.metric_value(r#"s3cached_cache_hits_total{tier="redis"}"#).await < hits_before + 20.0 {
        assert!(Instant::now() < deadline, "redis hits did not resume after restart");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        p.metric_value(HOT_GETS).await > hot_before,
        "Redis hits took the hot path again after the restart"
    );
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    assert!(done.load(Ordering::Relaxed) > 100);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "client requests failed while Redis was down"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_failover_fails_no_request() {
    let cluster = RedisCluster::start(3, 1);
    let seeds = cluster.seeds().join(",");
    let p = proxy(&[
        "--tier",
        "redis",
        "--redis-cluster",
        &seeds,
        "--redis-read-from-replicas",
        "--redis-timeout",
        "250ms",
    ]);
    let bucket = support::seaweed::shared().new_bucket("failover").await;
    let c = p.client(KEY, SECRET);
    for i in 0..20 {
        put_bytes(&c, &bucket, &format!("k{i}"), format!("value-{i}").into_bytes()).await;
    }
    let failures = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut loops = Vec::new();
    for t in 0..4 {
        let (c, bucket, failures, stop) = (c.clone(), bucket.clone(), Arc::clone(&failures), Arc::clone(&stop));
        loops.push(tokio::spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                let k = i % 20;
                match get(&c, &bucket, &format!("k{k}")).await {
                    Ok(body) if body == format!("value-{k}").into_bytes() => {}
                    other => {
                        eprintln!("request failed: {other:?}");
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replica = cluster.replicas().into_iter().next().expect("a replica");
    assert!(
        replica.cli(&["CLUSTER", "FAILOVER"]).contains("OK"),
        "failover accepted"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while !replica.cli(&["ROLE"]).starts_with("master") {
        assert!(Instant::now() < deadline, "failover did not complete");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        l.await.unwrap();
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "client requests failed during the failover"
    );
    assert!(p.metric_value(r#"s3cached_cache_hits_total{tier="redis"}"#).await > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_in_two_processes_do_not_stall_each_other() {
    let redis = RedisServer::start();
    let url = redis.url();
    let a = proxy(&["--tier", "memory+redis", "--redis-url", &url]);
    let b = proxy(&["--tier", "memory+redis", "--redis-url", &url]);
    a.wait_status_ok().await;
    b.wait_status_ok().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let bucket = support::seaweed::shared().new_bucket("contend").await;
    let mut writers = Vec::new();
    for (name, p) in [("a", &a), ("b", &b)] {
        let (c, bucket) = (p.client(KEY, SECRET), bucket.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..40 {
                let body = format!("{name}-{i}").into_bytes();
                put_bytes(&c, &bucket, "same", body).await;
            }
        }));
    }
    let started = Instant::now();
    for w in writers {
        w.await.unwrap();
    }
    let elapsed = started.elapsed();
    for p in [&a, &b] {
        assert_eq!(
            p.metric_value("s3cached_bus_ack_timeouts_total").await,
            0.0,
            "writers waited out an ack timeout"
        );
    }
    let truth = get(&support::seaweed::shared().client(), &bucket, "same")
        .await
        .unwrap();
    assert_eq!(get(&a.client(KEY, SECRET), &bucket, "same").await.unwrap(), truth);
    assert_eq!(get(&b.client(KEY, SECRET), &bucket, "same").await.unwrap(), truth);
    eprintln!("80 contending writes took {elapsed:?}");
}
