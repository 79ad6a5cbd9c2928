//! Checks of the test harness itself: SeaweedFS starts, serves S3 with the test identity, and
//! goes away cleanly; the helpers produce what tests rely on.

mod support;

use std::collections::BTreeSet;

use aws_sdk_s3::primitives::ByteStream;
use support::metrics::metric_sum;
use support::proxy::S3Cached;
use support::seaweed::{SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY, SeaweedFs, shared};
use support::util::unique_bucket;

#[tokio::test]
async fn shared_seaweedfs_puts_and_gets_an_object() {
    let seaweed = shared();
    let bucket = unique_bucket("smoke-put-get");
    seaweed.create_bucket(&bucket).await;

    let client = seaweed.client();
    let body = b"hello from the harness".to_vec();
    client
        .put_object()
        .bucket(&bucket)
        .key("dir/hello.txt")
        .content_type("text/plain")
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .expect("PutObject to SeaweedFS");

    let got = client
        .get_object()
        .bucket(&bucket)
        .key("dir/hello.txt")
        .send()
        .await
        .expect("GetObject from SeaweedFS");
    assert_eq!(got.content_type(), Some("text/plain"));
    assert_eq!(got.content_length(), Some(body.len() as i64));
    let etag = got.e_tag().map(str::to_owned);
    let bytes = got.body.collect().await.expect("read body").into_bytes();
    assert_eq!(bytes.as_ref(), body.as_slice());

    let listed = client
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("ListObjectsV2");
    let keys: Vec<_> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(keys, ["dir/hello.txt"]);
    assert_eq!(listed.contents()[0].e_tag().map(str::to_owned), etag);
}

#[tokio::test]
async fn shared_seaweedfs_is_shared_and_isolates_buckets() {
    // Runs in parallel with the test above: both race to initialise the shared instance.
    let seaweed = shared();
    assert_eq!(seaweed.endpoint(), shared().endpoint());

    let bucket = seaweed.new_bucket("smoke-isolated").await;
    seaweed.put_object(&bucket, "a", "1").await;
    seaweed.put_object(&bucket, "b", "22").await;

    let head = seaweed
        .client()
        .head_object()
        .bucket(&bucket)
        .key("b")
        .send()
        .await
        .expect("HeadObject");
    assert_eq!(head.content_length(), Some(2));

    let missing = seaweed
        .client()
        .get_object()
        .bucket(&bucket)
        .key("nope")
        .send()
        .await
        .expect_err("GetObject of a missing key must fail");
    assert!(
        missing.as_service_error().is_some_and(|e| e.is_no_such_key()),
        "expected NoSuchKey, got {missing:?}"
    );
}

#[tokio::test]
async fn seaweedfs_rejects_wrong_credentials() {
    let seaweed = shared();
    let client = support::clients::s3_client(&seaweed.endpoint(), SEAWEED_ACCESS_KEY, "not-the-secret");
    let err = client
        .list_buckets()
        .send()
        .await
        .expect_err("a wrong secret must be refused");
    let code = err.as_service_error().and_then(|e| {
        use aws_sdk_s3::error::ProvideErrorMetadata as _;
        e.code().map(str::to_owned)
    });
    assert_eq!(code.as_deref(), Some("SignatureDoesNotMatch"), "{err:?}");
}

#[test]
fn own_seaweedfs_instance_stops_and_cleans_up() {
    let seaweed = SeaweedFs::start();
    let dir = seaweed.dir().to_path_buf();
    let port = seaweed.s3_port();
    assert!(dir.join("weed.log").exists());
    assert!(
        seaweed.log_contents().contains("-s3.port="),
        "log starts with the command line"
    );

    seaweed.stop();
    assert!(!dir.exists(), "{} was not removed", dir.display());
    assert!(
        std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
        "S3 port {port} still in use after stop"
    );
}

#[test]
fn free_ports_are_not_handed_out_twice() {
    let ports: BTreeSet<u16> = (0..200).map(|_| support::util::free_port()).collect();
    assert_eq!(ports.len(), 200);
    let (a, b) = support::util::free_port_pair(10000);
    assert_eq!(b, a + 10000);
    assert!(!ports.contains(&a) && !ports.contains(&b));
}

#[test]
fn unique_bucket_names_are_valid() {
    let mut seen = BTreeSet::new();
    for prefix in [
        "Simple",
        "with_underscores and spaces",
        "--",
        "",
        "a-very-long-prefix-that-goes-on-and-on-and-on-beyond-sixty-three",
    ] {
        let name = unique_bucket(prefix);
        assert!((3..=63).contains(&name.len()), "{name:?}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name:?}"
        );
        assert!(!name.starts_with('-') && !name.ends_with('-'), "{name:?}");
        assert!(seen.insert(name));
    }
}

#[test]
fn metric_sum_parses_prometheus_and_openmetrics_text() {
    let text = r#"
# HELP s3cached_requests_total Requests by operation and result.
# TYPE s3cached_requests_total counter
s3cached_requests_total{op="GetObject",result="hit",tier="memory"} 3
s3cached_requests_total{op="GetObject",result="hit",tier="redis"} 2
s3cached_requests_total{op="GetObject",result="miss"} 1.5
s3cached_requests_total{op="HeadObject",result="hit"} 7 1700000000000
s3cached_odd_total{path="a \"quoted\", {braced} value\\",x="y"} 4
s3cached_bytes 1e3
s3cached_latency_seconds_bucket{le="+Inf"} 9
# EOF
"#;
    assert_eq!(metric_sum(text, "s3cached_requests_total"), Some(13.5));
    assert_eq!(
        metric_sum(text, r#"s3cached_requests_total{op="GetObject"}"#),
        Some(6.5)
    );
    assert_eq!(
        metric_sum(text, r#"s3cached_requests_total{op="GetObject",result="hit"}"#),
        Some(5.0)
    );
    assert_eq!(
        metric_sum(text, "s3cached_requests_total{result=hit, tier=redis}"),
        Some(2.0)
    );
    assert_eq!(
        metric_sum(text, r#"s3cached_odd_total{path="a \"quoted\", {braced} value\\"}"#),
        Some(4.0)
    );
    assert_eq!(metric_sum(text, "s3cached_bytes"), Some(1000.0));
    assert_eq!(
        metric_sum(text, r#"s3cached_latency_seconds_bucket{le="+Inf"}"#),
        Some(9.0)
    );
    assert_eq!(metric_sum(text, "s3cached_requests"), None);
    assert_eq!(metric_sum(text, r#"s3cached_requests_total{op="PutObject"}"#), None);
}

#[tokio::test]
async fn s3cached_starts_in_front_of_seaweedfs() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("smoke-s3cached").await;
    let origin = seaweed.endpoint();
    let mut proxy = S3Cached::start(
        &[
            "--origin-endpoint",
            &origin,
            "--origin-region",
            support::REGION,
            "--origin-path-style",
            "--origin-access-key",
            SEAWEED_ACCESS_KEY,
            "--origin-secret-key",
            SEAWEED_SECRET_KEY,
            "--access-key",
            "smoke-client",
            "--secret-key",
            "smoke-client-secret",
        ],
        &[],
    );

    let client = proxy.client("smoke-client", "smoke-client-secret");
    support::clients::put_bytes(&client, &bucket, "through", b"via s3cached").await;
    for _ in 0..2 {
        assert_eq!(
            support::clients::get_bytes(&client, &bucket, "through").await,
            b"via s3cached"
        );
    }
    // The object reached the origin.
    let direct = seaweed
        .client()
        .head_object()
        .bucket(&bucket)
        .key("through")
        .send()
        .await
        .expect("HeadObject on SeaweedFS");
    assert_eq!(direct.content_length(), Some(12));

    let samples = support::metrics::parse_metrics(&proxy.metrics_text().await);
    assert!(
        samples.iter().any(|s| s.name.starts_with("s3cached_")),
        "no s3cached_ metric in /metrics"
    );

    let status = proxy.stop().expect("s3cached stopped");
    assert!(status.success(), "s3cached exited with {status} on SIGTERM");
    assert!(proxy.log_contents().contains("serve --listen 127.0.0.1:"));
}
