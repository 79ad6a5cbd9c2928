//! s3cached in front of a slowed-down SeaweedFS (the bench's TCP relay): concurrent misses make
//! one origin GET, a slow fill never overwrites a newer PUT, and SIGTERM lets in-flight
//! requests finish.

mod support;

use std::time::Duration;

use s3cached_bench::relay::{Relay, Shaping};
use support::clients::{get_bytes, put_bytes};
use support::proxy_s3::*;

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
