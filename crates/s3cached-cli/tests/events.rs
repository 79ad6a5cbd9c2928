//! Keeping the cache fresh when writers go to the origin directly, with real components:
//!
//! - S3 event notifications over SQS, end to end: moto's server (S3 + SQS) with a bucket
//!   notification configuration pointing at a queue; objects written, overwritten and deleted
//!   at moto are hydrated or invalidated in s3cached without any GET through it; poison
//!   messages are counted and deleted; a sub-second `--sqs-wait` must not poll in a tight loop.
//! - The webhook (`POST /events` on the admin listener) in front of SeaweedFS: real-format
//!   events, bearer token, malformed bodies, SNS and EventBridge shapes, and out-of-order and
//!   duplicate sequences that must not bring back a deleted object.
//! - Revalidation of expired entries (the origin answers 304), stale-while-revalidate,
//!   stale-if-error with the origin stopped and with an origin that does not answer, negative
//!   caching, `s3cached warm` into Redis and `serve --warm` (also over several listing pages).
//! - The time from a direct origin write to the cache serving the new object, via SQS and via
//!   the webhook (printed; run with `--nocapture` to see it).

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::types::{Event, NotificationConfiguration, QueueConfiguration};
use aws_sdk_sqs::types::QueueAttributeName;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::moto::Moto;
use support::redis::RedisServer;
use support::relay::{Relay, Slowdown};
use support::{S3Cached, seaweed_origin_args};

const CLIENT_KEY: &str = "events-client";
const CLIENT_SECRET: &str = "events-client-secret";
const TOKEN: &str = "hook-t0ken-for-tests";

const ORIGIN_GETS: &str = r#"s3cached_origin_requests_total{operation="GetObject"}"#;
const ORIGIN_NOT_MODIFIED: &str = r#"s3cached_origin_requests_total{operation="GetObject",result="NotModified"}"#;
const CLIENT_GETS: &str = r#"s3cached_requests_total{operation="GetObject"}"#;
const FILLS_STORED: &str = r#"s3cached_cache_fills_total{result="stored"}"#;
const FILLS_NEGATIVE: &str = r#"s3cached_cache_fills_total{result="negative"}"#;
const MEMORY_HITS: &str = r#"s3cached_cache_hits_total{tier="memory"}"#;
const SQS_HYDRATED: &str = r#"s3cached_events_total{source="sqs",result="hydrated"}"#;
const SQS_INVALIDATED: &str = r#"s3cached_events_total{source="sqs",result="invalidated"}"#;
const SQS_ERRORS: &str = r#"s3cached_events_total{source="sqs",result="error"}"#;
const HOOK_EVENTS: &str = r#"s3cached_events_total{source="webhook"}"#;
const HOOK_HYDRATED: &str = r#"s3cached_events_total{source="webhook",result="hydrated"}"#;
const HOOK_INVALIDATED: &str = r#"s3cached_events_total{source="webhook",result="invalidated"}"#;
const HOOK_STALE: &str = r#"s3cached_events_total{source="webhook",result="stale"}"#;
const POISON: &str = "s3cached_event_poison_messages_total";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// s3cached with `origin_args`, the test client credentials and `extra`.
fn start_proxy(origin_args: Vec<String>, extra: &[&str]) -> S3Cached {
    S3Cached::builder()
        .args(origin_args)
        .args(["--access-key", CLIENT_KEY, "--secret-key", CLIENT_SECRET])
        .args(extra.iter().copied())
        .start()
}

/// s3cached in front of the shared SeaweedFS.
fn seaweed_proxy(extra: &[&str]) -> S3Cached {
    start_proxy(seaweed_origin_args(&support::shared().endpoint()), extra)
}

fn log_of(p: &S3Cached) -> String {
    support::log_tail(&p.dir().join("s3cached.log"))
}

/// Polls `query` until it reaches `at_least`; panics with the log after `timeout`.
async fn wait_metric(p: &S3Cached, query: &str, at_least: f64, timeout: Duration) -> f64 {
    let started = Instant::now();
    loop {
        let value = p.metric_value(query).await;
        if value >= at_least {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "{query} = {value}, still below {at_least} after {timeout:?}\n{}",
            log_of(p)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn metric(p: &S3Cached, query: &str) -> f64 {
    p.metric_value(query).await
}

/// One raw GET through s3cached.
struct Got {
    status: u16,
    /// The `x-s3cached` header (`hit-memory`, `miss`, …).
    cache: String,
    headers: BTreeMap<String, String>,
    body: Bytes,
}

impl Got {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A presigned GET through s3cached sent as a plain HTTP request, so the `x-s3cached` header is
/// visible.
async fn raw_get(p: &S3Cached, bucket: &str, key: &str) -> Got {
    let presigned = p
        .client(CLIENT_KEY, CLIENT_SECRET)
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("presigning config"))
        .await
        .expect("presign GET");
    let exchange = async {
        let raw = support::send_presigned(&presigned).await;
        Got {
            status: raw.status,
            cache: raw.headers.get("x-s3cached").cloned().unwrap_or_default(),
            headers: raw.headers,
            body: raw.body,
        }
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("GET s3://{bucket}/{key} through s3cached took over 30 s\n{}", log_of(p)))
}

/// The object must come from the memory tier with `want`, and no origin GetObject may happen.
async fn assert_hit(p: &S3Cached, bucket: &str, key: &str, want: &[u8]) {
    let origin_before = metric(p, ORIGIN_GETS).await;
    let got = raw_get(p, bucket, key).await;
    assert_eq!(got.status, 200, "GET {key}: {}", got.text());
    assert_eq!(
        got.body.as_ref(),
        want,
        "GET {key}: body {:?}, want {:?}",
        got.text(),
        String::from_utf8_lossy(want)
    );
    assert_eq!(
        got.cache, "hit-memory",
        "GET {key} must be a cache hit ({:?})",
        got.headers
    );
    assert_eq!(
        metric(p, ORIGIN_GETS).await,
        origin_before,
        "GET {key} was a hit yet s3cached read the origin"
    );
}

/// `POST /events` on the admin port with `authorization` (the whole header value).
async fn post_events(p: &S3Cached, authorization: Option<&str>, body: &str) -> (u16, String) {
    let mut builder = http::Request::builder()
        .method("POST")
        .uri(format!("{}/events", p.admin_endpoint()))
        .header("content-type", "application/json");
    if let Some(a) = authorization {
        builder = builder.header("authorization", a);
    }
    let request = builder.body(Full::new(Bytes::from(body.to_owned()))).expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let exchange = async {
        let resp = client.request(request).await.expect("POST /events");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("POST /events body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| panic!("POST /events took over 30 s\n{}", log_of(p)))
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// Posts `body` with the right token and expects 200.
async fn post_ok(p: &S3Cached, body: &str) -> String {
    let (status, answer) = post_events(p, Some(&bearer()), body).await;
    assert_eq!(
        status,
        200,
        "POST /events -> {status} {answer}\nbody: {body}\n{}",
        log_of(p)
    );
    answer
}

/// A JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// How S3 writes keys into notification records: URL-encoded, spaces as `+` (slashes kept).
fn event_key(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// One record of the standard S3 notification format, as AWS S3 sends it.
fn record(event_name: &str, bucket: &str, key: &str, object: Option<(usize, &str)>, sequencer: &str) -> String {
    let size_etag = match object {
        Some((size, etag)) => format!(r#""size":{size},"eTag":{},"#, json_str(etag)),
        None => String::new(),
    };
    format!(
        r#"{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2026-11-26T12:00:00.000Z",
"eventName":{},"userIdentity":{{"principalId":"AWS:AIDAEXAMPLE"}},"requestParameters":{{"sourceIPAddress":"127.0.0.1"}},
"responseElements":{{"x-amz-request-id":"C3D13FE58DE4C810","x-amz-id-2":"FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD"}},
"s3":{{"s3SchemaVersion":"1.0","configurationId":"s3cached","bucket":{{"name":{},"ownerIdentity":{{"principalId":"A3NL1KOZZKExample"}},
"arn":{}}},"object":{{"key":{},{size_etag}"sequencer":{}}}}}}}"#,
        json_str(event_name),
        json_str(bucket),
        json_str(&format!("arn:aws:s3:::{bucket}")),
        json_str(&event_key(key)),
        json_str(sequencer),
    )
}

fn records(records: &[String]) -> String {
    format!(r#"{{"Records":[{}]}}"#, records.join(","))
}

/// An `ObjectCreated:Put` notification.
fn created(bucket: &str, key: &str, size: usize, etag: &str, sequencer: &str) -> String {
    records(&[record("ObjectCreated:Put", bucket, key, Some((size, etag)), sequencer)])
}

/// An `ObjectRemoved:Delete` notification.
fn removed(bucket: &str, key: &str, sequencer: &str) -> String {
    records(&[record("ObjectRemoved:Delete", bucket, key, None, sequencer)])
}

/// Puts straight into an origin; returns the ETag without quotes.
async fn put_direct(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) -> String {
    let out = support::put_bytes(s3, bucket, key, body).await;
    out.e_tag().unwrap_or_default().trim_matches('"').to_owned()
}

async fn delete_direct(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("direct DELETE {bucket}/{key}: {}", support::error_chain(&e)));
}

#[track_caller]
fn assert_no_such_key(got: &Got, what: &str) {
    assert_eq!(
        got.status,
        404,
        "{what}: want NoSuchKey, got {} {}",
        got.status,
        got.text()
    );
    assert!(got.text().contains("NoSuchKey"), "{what}: {}", got.text());
}

/// Creates `bucket` and `queue` in moto and points the bucket's notifications for created and
/// removed objects at the queue. Returns the queue URL.
async fn bucket_notifying_queue(moto: &Moto, bucket: &str, queue: &str) -> String {
    let (s3, sqs) = (moto.s3(), moto.sqs());
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket in moto");
    let queue_url = create_queue(moto, queue, None).await;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("GetQueueAttributes QueueArn")
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .expect("a QueueArn attribute");
    let config = NotificationConfiguration::builder()
        .queue_configurations(
            QueueConfiguration::builder()
                .id("s3cached-events")
                .queue_arn(arn)
                .events(Event::S3ObjectCreated)
                .events(Event::S3ObjectRemoved)
                .build()
                .expect("queue configuration"),
        )
        .build();
    s3.put_bucket_notification_configuration()
        .bucket(bucket)
        .notification_configuration(config)
        .send()
        .await
        .expect("PutBucketNotificationConfiguration");
    queue_url
}

async fn create_queue(moto: &Moto, name: &str, visibility_timeout_secs: Option<u32>) -> String {
    let mut create = moto.sqs().create_queue().queue_name(name);
    if let Some(secs) = visibility_timeout_secs {
        create = create.attributes(QueueAttributeName::VisibilityTimeout, secs.to_string());
    }
    create
        .send()
        .await
        .expect("CreateQueue in moto")
        .queue_url
        .expect("a queue URL")
}

/// Messages in the queue: (visible, in flight).
async fn queue_depth(moto: &Moto, queue_url: &str) -> (u64, u64) {
    let attrs = moto
        .sqs()
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("GetQueueAttributes")
        .attributes
        .unwrap_or_default();
    let get = |name: &QueueAttributeName| attrs.get(name).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
    (
        get(&QueueAttributeName::ApproximateNumberOfMessages),
        get(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
    )
}

async fn wait_queue_empty(moto: &Moto, queue_url: &str, timeout: Duration) {
    let started = Instant::now();
    loop {
        let depth = queue_depth(moto, queue_url).await;
        if depth == (0, 0) {
            return;
        }
        assert!(
            started.elapsed() < timeout,
            "queue still holds (visible, in flight) = {depth:?} after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// s3cached over moto, polling `queue_url` and hydrating `hydrate`.
fn sqs_proxy(moto: &Moto, queue_url: &str, hydrate: &[&str], extra: &[&str]) -> S3Cached {
    let endpoint = moto.endpoint();
    let mut args = vec![
        "--sqs-queue-url",
        queue_url,
        "--sqs-endpoint",
        &endpoint,
        "--sqs-wait",
        "1s",
    ];
    for rule in hydrate {
        args.extend(["--hydrate", rule]);
    }
    args.extend(extra.iter().copied());
    start_proxy(moto.origin_args(), &args)
}

/// A relay to the origin in a runtime of its own: stopping it shuts that runtime down, which
/// closes the listener and every relayed connection, so the origin is gone for s3cached even on
/// pooled keep-alive connections.
struct StoppableRelay {
    runtime: Option<tokio::runtime::Runtime>,
    relay: Option<Relay>,
    endpoint: String,
}

impl StoppableRelay {
    async fn start(target: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("relay runtime");
        let relay = runtime
            .spawn(Relay::start(
                target,
                Slowdown {
                    latency: Duration::ZERO,
                    bytes_per_sec: None,
                },
            ))
            .await
            .expect("start relay");
        let endpoint = relay.endpoint();
        Self {
            runtime: Some(runtime),
            relay: Some(relay),
            endpoint,
        }
    }

    fn stop(&mut self) {
        drop(self.relay.take());
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for StoppableRelay {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An origin that does not answer: accepts connections on `addr` and reads requests, but never
/// writes a byte back. Stops (closing every connection) on drop.
struct BlackHole {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    /// Binds `addr` (with SO_REUSEADDR, as tokio does: the relay that had it leaves connections
    /// in TIME_WAIT), retrying while the previous owner lets go of it.
    async fn start(addr: SocketAddr) -> Self {
        use std::io::Read as _;
        use std::sync::atomic::Ordering;
        let started = Instant::now();
        let listener = loop {
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => break listener.into_std().expect("std listener"),
                Err(e) if started.elapsed() < Duration::from_secs(5) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("bind {addr} for the black hole: {e}"),
            }
        };
        listener.set_nonblocking(true).expect("nonblocking listener");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            let mut buf = [0u8; 4096];
            while !flag.load(Ordering::Relaxed) {
                if let Ok((stream, _)) = listener.accept() {
                    let _ = stream.set_nonblocking(true);
                    held.push(stream);
                }
                for stream in &mut held {
                    let _ = stream.read(&mut buf);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn median(sorted: &[Duration]) -> Duration {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn summary(label: &str, samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let (p50, p90) = (median(samples), percentile(samples, 0.9));
    eprintln!(
        "[latency] {label}: n={} median={} p90={} min={} max={}",
        samples.len(),
        ms(p50),
        ms(p90),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
    (p50, p90)
}

// ---------------------------------------------------------------------------------------------
// SQS, end to end with moto
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_notifications_hydrate_and_invalidate_without_any_get() {
    let moto = Moto::start();
    let bucket = "fresh-media";
    let queue_url = bucket_notifying_queue(&moto, bucket, "s3-events").await;
    let p = sqs_proxy(&moto, &queue_url, &[&format!("{bucket}/hot/")], &[]);
    let s3 = moto.s3();
    let t = Duration::from_secs(20);

    // Created under the hydration rule: loaded into the cache with no GET through s3cached.
    let key = "hot/cat photo (1).txt";
    put_direct(&s3, bucket, key, b"version one").await;
    wait_metric(&p, SQS_HYDRATED, 1.0, t).await;
    assert_eq!(metric(&p, FILLS_STORED).await, 1.0, "the hydration stored the object");
    assert_eq!(
        metric(&p, CLIENT_GETS).await,
        0.0,
        "no client GET went through s3cached"
    );
    assert_eq!(metric(&p, ORIGIN_GETS).await, 1.0, "only the hydration read the origin");
    assert_hit(&p, bucket, key, b"version one").await;

    // Overwritten at the origin: the cache serves the new bytes at once.
    put_direct(&s3, bucket, key, b"version two, longer").await;
    wait_metric(&p, SQS_HYDRATED, 2.0, t).await;
    assert_eq!(metric(&p, FILLS_STORED).await, 2.0);
    assert_hit(&p, bucket, key, b"version two, longer").await;

    // Deleted at the origin: dropped from the cache (the TTL of 5 minutes would keep it).
    delete_direct(&s3, bucket, key).await;
    wait_metric(&p, SQS_INVALIDATED, 1.0, t).await;
    assert_no_such_key(&raw_get(&p, bucket, key).await, "GET after a direct DELETE");

    // Created outside every hydration rule: invalidated, not hydrated.
    let cold = "cold/report.csv";
    put_direct(&s3, bucket, cold, b"a,b\n1,2\n").await;
    wait_metric(&p, SQS_INVALIDATED, 2.0, t).await;
    assert_eq!(
        metric(&p, SQS_HYDRATED).await,
        2.0,
        "{cold} is not under a hydration rule"
    );
    assert_eq!(metric(&p, FILLS_STORED).await, 2.0, "{cold} must not be loaded");
    let first = raw_get(&p, bucket, cold).await;
    assert_eq!((first.status, first.cache.as_str()), (200, "miss"), "{}", first.text());
    assert_hit(&p, bucket, cold, b"a,b\n1,2\n").await;
    put_direct(&s3, bucket, cold, b"a,b\n3,4\n").await;
    wait_metric(&p, SQS_INVALIDATED, 3.0, t).await;
    assert_eq!(metric(&p, SQS_HYDRATED).await, 2.0);
    let after = raw_get(&p, bucket, cold).await;
    assert_eq!(
        after.body.as_ref(),
        b"a,b\n3,4\n",
        "the invalidated entry must not be served"
    );
    assert_eq!(after.cache, "miss", "an invalidated key is read from the origin again");

    // Every message was applied and deleted (the s3:TestEvent moto sends on configuration too).
    wait_queue_empty(&moto, &queue_url, Duration::from_secs(10)).await;
    assert_eq!(metric(&p, POISON).await, 0.0);
    assert_eq!(metric(&p, SQS_ERRORS).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_poison_messages_are_counted_and_deleted() {
    let moto = Moto::start();
    // A short visibility timeout, so a message that fails is received again within a second.
    let queue_url = create_queue(&moto, "poison", Some(1)).await;
    // Objects of `ghost-bucket` are to be hydrated, but the bucket does not exist at the origin:
    // applying their events keeps failing.
    let p = sqs_proxy(&moto, &queue_url, &["ghost-bucket"], &[]);
    let sqs = moto.sqs();

    sqs.send_message()
        .queue_url(&queue_url)
        .message_body("this is not an S3 event notification {")
        .send()
        .await
        .expect("SendMessage");
    wait_metric(&p, POISON, 1.0, Duration::from_secs(10)).await;
    wait_queue_empty(&moto, &queue_url, Duration::from_secs(10)).await;

    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(created(
            "ghost-bucket",
            "k.txt",
            3,
            "d41d8cd98f00b204e9800998ecf8427e",
            "0A",
        ))
        .send()
        .await
        .expect("SendMessage");
    // Retried while it fails, then dropped after 5 receives instead of forever.
    wait_metric(&p, POISON, 2.0, Duration::from_secs(30)).await;
    wait_queue_empty(&moto, &queue_url, Duration::from_secs(10)).await;
    let errors = metric(&p, SQS_ERRORS).await;
    assert_eq!(errors, 5.0, "the failing message is applied once per receive, 5 times");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(metric(&p, SQS_ERRORS).await, errors, "the dropped message came back");
    assert_eq!(metric(&p, POISON).await, 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_wait_below_one_second_does_not_poll_in_a_tight_loop() {
    let moto = Moto::start();
    let queue_url = create_queue(&moto, "idle", None).await;
    let endpoint = moto.endpoint();
    let _p = start_proxy(
        moto.origin_args(),
        &[
            "--sqs-queue-url",
            &queue_url,
            "--sqs-endpoint",
            &endpoint,
            "--sqs-wait",
            "500ms",
        ],
    );
    // Every request s3cached makes to moto here is an SQS ReceiveMessage (a POST to /).
    let receives = || {
        moto.log_contents()
            .lines()
            .filter(|l| l.contains("\"POST / HTTP"))
            .count()
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = receives();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = receives() - before;
    // A 500 ms wait allows about 6 receives in 3 s (3 if rounded up to whole seconds).
    assert!(
        during <= 10,
        "--sqs-wait 500ms on an empty queue: {during} ReceiveMessage requests in 3 s (WaitTimeSeconds=0, no pause \
         between empty receives)"
    );
}

// ---------------------------------------------------------------------------------------------
// Webhook, in front of SeaweedFS
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_event_hydrates_an_object_written_at_the_origin() {
    let origin = support::shared();
    let bucket = origin.new_bucket("hook").await;
    let p = seaweed_proxy(&["--webhook-token", TOKEN, "--hydrate", &bucket]);
    let s3 = origin.client();
    let key = "reports/q1 2026+final (draft).txt";
    let data = b"quarterly numbers".as_slice();
    let etag = put_direct(&s3, &bucket, key, data).await;
    let event = created(&bucket, key, data.len(), &etag, "0055AED6DCD90281E5");
    assert!(event.contains("reports/q1+2026%2Bfinal+%28draft%29.txt"), "{event}");

    // Wrong or missing token: 401, nothing applied.
    for auth in [
        None,
        Some("Bearer wrong-token".to_owned()),
        Some(format!("Bearer {TOKEN}x")),
        Some(TOKEN.to_owned()),
        Some(format!("Basic {TOKEN}")),
    ] {
        let (status, answer) = post_events(&p, auth.as_deref(), &event).await;
        assert_eq!(status, 401, "Authorization {auth:?} -> {status} {answer}");
    }
    // Malformed bodies: 400.
    for bad in [
        "{not json",
        r#"{"hello":"world"}"#,
        r#"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#,
        "",
    ] {
        let (status, answer) = post_events(&p, Some(&bearer()), bad).await;
        assert_eq!(status, 400, "body {bad:?} -> {status} {answer}");
    }
    assert_eq!(metric(&p, HOOK_EVENTS).await, 0.0, "rejected requests applied events");
    assert_eq!(metric(&p, FILLS_STORED).await, 0.0);
    assert_eq!(metric(&p, ORIGIN_GETS).await, 0.0);

    // The right token: 200, and the object is in the cache before the answer.
    let answer = post_ok(&p, &event).await;
    assert!(answer.contains(r#""applied":1"#), "{answer}");
    assert_eq!(metric(&p, HOOK_HYDRATED).await, 1.0);
    assert_eq!(metric(&p, FILLS_STORED).await, 1.0);
    assert_hit(&p, &bucket, key, data).await;
    assert_eq!(metric(&p, CLIENT_GETS).await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_old_and_duplicate_events_never_resurrect_an_object() {
    let origin = support::shared();
    let bucket = origin.new_bucket("order").await;
    let p = seaweed_proxy(&["--webhook-token", TOKEN, "--hydrate", &bucket]);
    let s3 = origin.client();
    let key = "docs/ledger.txt";

    let v1 = b"ledger v1".as_slice();
    let etag1 = put_direct(&s3, &bucket, key, v1).await;
    post_ok(&p, &created(&bucket, key, v1.len(), &etag1, "0B")).await;
    assert_eq!(metric(&p, HOOK_HYDRATED).await, 1.0);
    assert_hit(&p, &bucket, key, v1).await;

    // Deleted at the origin; its event is newer.
    delete_direct(&s3, &bucket, key).await;
    post_ok(&p, &removed(&bucket, key, "0C")).await;
    assert_eq!(metric(&p, HOOK_INVALIDATED).await, 1.0);
    // The creation delivered again (a duplicate, older than the removal): skipped.
    post_ok(&p, &created(&bucket, key, v1.len(), &etag1, "0B")).await;
    assert_eq!(
        metric(&p, HOOK_STALE).await,
        1.0,
        "the old creation must be skipped as stale"
    );
    assert_eq!(metric(&p, HOOK_HYDRATED).await, 1.0);
    // And the removal again: a duplicate too.
    post_ok(&p, &removed(&bucket, key, "0C")).await;
    assert_eq!(metric(&p, HOOK_STALE).await, 2.0);
    assert_no_such_key(&raw_get(&p, &bucket, key).await, "GET after old events");
    assert_eq!(
        metric(&p, FILLS_STORED).await,
        1.0,
        "nothing was loaded after the delete"
    );

    // Created again later: a newer sequencer (longer, compared after zero padding) applies.
    let v2 = b"ledger v2".as_slice();
    let etag2 = put_direct(&s3, &bucket, key, v2).await;
    post_ok(&p, &created(&bucket, key, v2.len(), &etag2, "00000010")).await;
    assert_eq!(metric(&p, HOOK_HYDRATED).await, 2.0);
    assert_hit(&p, &bucket, key, v2).await;
    // Late events from before: the cache keeps v2.
    post_ok(&p, &removed(&bucket, key, "0C")).await;
    post_ok(&p, &created(&bucket, key, v1.len(), &etag1, "0B")).await;
    assert_eq!(metric(&p, HOOK_STALE).await, 4.0);
    assert_hit(&p, &bucket, key, v2).await;

    // Out of order within one body: the newest removal first, then an older creation.
    let other = "docs/other.txt";
    let v = b"short-lived".as_slice();
    let etag = put_direct(&s3, &bucket, other, v).await;
    delete_direct(&s3, &bucket, other).await;
    let body = records(&[
        record("ObjectRemoved:Delete", &bucket, other, None, "0000000000000000A2"),
        record(
            "ObjectCreated:Put",
            &bucket,
            other,
            Some((v.len(), &etag)),
            "0000000000000000A1",
        ),
    ]);
    post_ok(&p, &body).await;
    assert_eq!(metric(&p, HOOK_STALE).await, 5.0);
    assert_no_such_key(&raw_get(&p, &bucket, other).await, "GET after reordered events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_accepts_sns_wrapped_and_eventbridge_bodies() {
    let origin = support::shared();
    let bucket = origin.new_bucket("shapes").await;
    let p = seaweed_proxy(&["--webhook-token", TOKEN, "--hydrate", &bucket]);
    let s3 = origin.client();

    // SNS: the S3 notification as the escaped `Message` string of an SNS notification.
    let key = "sns/doc.json";
    let data = br#"{"via":"sns"}"#.as_slice();
    let etag = put_direct(&s3, &bucket, key, data).await;
    let inner = created(&bucket, key, data.len(), &etag, "0100");
    let sns = format!(
        r#"{{"Type":"Notification","MessageId":"22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
"TopicArn":"arn:aws:sns:us-east-1:123456789012:s3-events","Subject":"Amazon S3 Notification",
"Message":{},"Timestamp":"2026-11-26T12:00:00.000Z","SignatureVersion":"1","Signature":"EXAMPLE",
"SigningCertURL":"https://sns.us-east-1.amazonaws.com/cert.pem","UnsubscribeURL":"https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe"}}"#,
        json_str(&inner)
    );
    post_ok(&p, &sns).await;
    assert_eq!(metric(&p, HOOK_HYDRATED).await, 1.0);
    assert_hit(&p, &bucket, key, data).await;

    // EventBridge: "Object Created" with the key not URL-encoded.
    let key = "eb/my doc+1.txt";
    let data = b"via eventbridge".as_slice();
    let etag = put_direct(&s3, &bucket, key, data).await;
    let eventbridge = |detail_type: &str, sequencer: &str, object: &str| {
        format!(
            r#"{{"version":"0","id":"17793124-05d4-b198-2fde-7ededc63b103","detail-type":{},"source":"aws.s3",
"account":"123456789012","time":"2026-11-26T12:00:00Z","region":"us-east-1","resources":[{}],
"detail":{{"version":"0","bucket":{{"name":{}}},"object":{{"key":{}{object},"sequencer":{}}},
"request-id":"N4N7GDK58NMKJ12R","requester":"123456789012","source-ip-address":"1.2.3.4","reason":"PutObject"}}}}"#,
            json_str(detail_type),
            json_str(&format!("arn:aws:s3:::{bucket}")),
            json_str(&bucket),
            json_str(key),
            json_str(sequencer),
        )
    };
    post_ok(
        &p,
        &eventbridge(
            "Object Created",
            "617f08299329d189",
            &format!(r#","size":{},"etag":{}"#, data.len(), json_str(&etag)),
        ),
    )
    .await;
    assert_eq!(metric(&p, HOOK_HYDRATED).await, 2.0);
    assert_hit(&p, &bucket, key, data).await;

    // EventBridge "Object Deleted" invalidates.
    delete_direct(&s3, &bucket, key).await;
    post_ok(&p, &eventbridge("Object Deleted", "617f08299329d18a", "")).await;
    assert_eq!(metric(&p, HOOK_INVALIDATED).await, 1.0);
    assert_no_such_key(&raw_get(&p, &bucket, key).await, "GET after an EventBridge deletion");
}

// ---------------------------------------------------------------------------------------------
// Revalidation, stale-if-error, negative caching
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_revalidated_and_the_origin_answers_304() {
    let origin = support::shared();
    let bucket = origin.new_bucket("reval").await;
    let s3 = origin.client();
    let key = "page.html";
    put_direct(&s3, &bucket, key, b"<p>one</p>").await;
    let p = seaweed_proxy(&["--ttl", "1s"]);

    let first = raw_get(&p, &bucket, key).await;
    assert_eq!((first.status, first.cache.as_str()), (200, "miss"), "{}", first.text());
    let filled = Instant::now();
    // Past the TTL, within the revalidation window (one more TTL).
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(filled.elapsed())).await;
    let second = raw_get(&p, &bucket, key).await;
    assert_eq!((second.status, second.body.as_ref()), (200, b"<p>one</p>".as_slice()));
    let renewed = Instant::now();
    assert_eq!(
        metric(&p, ORIGIN_NOT_MODIFIED).await,
        1.0,
        "one conditional GET answered 304"
    );
    assert_eq!(
        metric(&p, r#"s3cached_revalidations_total{result="not_modified"}"#).await,
        1.0
    );
    assert_eq!(metric(&p, ORIGIN_GETS).await, 2.0, "the fill and the conditional GET");
    // Renewed: fresh again for a TTL.
    assert_hit(&p, &bucket, key, b"<p>one</p>").await;

    // Changed at the origin: the next revalidation brings the new bytes.
    put_direct(&s3, &bucket, key, b"<p>two</p>").await;
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(renewed.elapsed())).await;
    let third = raw_get(&p, &bucket, key).await;
    assert_eq!(third.status, 200, "{}", third.text());
    assert_eq!(
        third.body.as_ref(),
        b"<p>two</p>",
        "revalidation must return the new bytes"
    );
    assert_eq!(
        metric(&p, r#"s3cached_revalidations_total{result="changed"}"#).await,
        1.0
    );
    assert_eq!(metric(&p, ORIGIN_NOT_MODIFIED).await, 1.0);
    assert_hit(&p, &bucket, key, b"<p>two</p>").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_the_expired_entry_while_the_origin_is_down() {
    let origin = support::shared();
    let bucket = origin.new_bucket("sie").await;
    let key = "config.json";
    put_direct(&origin.client(), &bucket, key, br#"{"v":1}"#).await;
    let target: SocketAddr = ([127, 0, 0, 1], origin.s3_port()).into();
    let mut relay = StoppableRelay::start(target).await;
    let with = start_proxy(
        seaweed_origin_args(&relay.endpoint),
        &["--ttl", "1s", "--stale-if-error", "30s"],
    );
    let without = start_proxy(seaweed_origin_args(&relay.endpoint), &["--ttl", "1s"]);
    for p in [&with, &without] {
        let got = raw_get(p, &bucket, key).await;
        assert_eq!((got.status, got.cache.as_str()), (200, "miss"), "{}", got.text());
    }
    let filled = Instant::now();

    relay.stop();
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(filled.elapsed())).await;

    let got = raw_get(&with, &bucket, key).await;
    assert_eq!(
        got.status,
        200,
        "stale-if-error must answer with the old entry: {}",
        got.text()
    );
    assert_eq!(got.body.as_ref(), br#"{"v":1}"#);
    assert!(
        metric(&with, r#"s3cached_stale_served_total{reason="if_error"}"#).await >= 1.0,
        "{}",
        with.metrics_text().await
    );

    let got = raw_get(&without, &bucket, key).await;
    assert!(
        (500..600).contains(&got.status),
        "without stale-if-error the GET must fail: {} {}",
        got.status,
        got.text()
    );
    assert_eq!(
        metric(&without, r#"s3cached_stale_served_total{reason="if_error"}"#).await,
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_answers_when_the_origin_does_not_answer() {
    let origin = support::shared();
    let bucket = origin.new_bucket("hang").await;
    let key = "config.json";
    put_direct(&origin.client(), &bucket, key, br#"{"v":1}"#).await;
    let target: SocketAddr = ([127, 0, 0, 1], origin.s3_port()).into();
    let mut relay = StoppableRelay::start(target).await;
    let addr: SocketAddr = relay
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("relay address");
    let p = start_proxy(
        seaweed_origin_args(&relay.endpoint),
        &["--ttl", "1s", "--stale-if-error", "30s"],
    );
    let got = raw_get(&p, &bucket, key).await;
    assert_eq!((got.status, got.cache.as_str()), (200, "miss"), "{}", got.text());
    let filled = Instant::now();

    // The origin hangs: connections are accepted, requests read, nothing is answered.
    relay.stop();
    let _hole = BlackHole::start(addr).await;
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(filled.elapsed())).await;

    // "--stale-if-error: serve an expired entry ... when the origin fails with a 5xx or does
    // not answer": the client must get the stale entry, not wait as long as the origin hangs.
    let bound = Duration::from_secs(15);
    let asked = Instant::now();
    let answer = tokio::time::timeout(bound, raw_get(&p, &bucket, key)).await;
    let got = answer.unwrap_or_else(|_| {
        panic!(
            "GET of an expired entry with --stale-if-error 30s got no answer within {bound:?} while the origin \
             does not answer (stale_served if_error = {}, origin GetObject = {})\n{}",
            metric_blocking(&p, r#"s3cached_stale_served_total{reason="if_error"}"#),
            metric_blocking(&p, ORIGIN_GETS),
            log_of(&p)
        )
    });
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body.as_ref(), br#"{"v":1}"#);
    eprintln!(
        "stale entry served {:?} after the GET while the origin hung",
        asked.elapsed()
    );
}

/// A metric read from a sync context (a panic message).
fn metric_blocking(p: &S3Cached, query: &str) -> f64 {
    support::block_on_thread(p.metric_value(query))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_the_old_entry_once_and_refreshes_it() {
    let origin = support::shared();
    let bucket = origin.new_bucket("swr").await;
    let s3 = origin.client();
    let key = "feed.xml";
    put_direct(&s3, &bucket, key, b"<feed>1</feed>").await;
    let p = seaweed_proxy(&["--ttl", "1s", "--stale-while-revalidate", "10s"]);
    let got = raw_get(&p, &bucket, key).await;
    assert_eq!((got.status, got.cache.as_str()), (200, "miss"));
    let filled = Instant::now();
    put_direct(&s3, &bucket, key, b"<feed>2</feed>").await;
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(filled.elapsed())).await;

    // Expired: answered at once from the cache with the old bytes, while one refresh runs.
    let stale = raw_get(&p, &bucket, key).await;
    assert_eq!((stale.status, stale.body.as_ref()), (200, b"<feed>1</feed>".as_slice()));
    assert_eq!(stale.cache, "hit-memory");
    assert_eq!(
        metric(&p, r#"s3cached_stale_served_total{reason="while_revalidate"}"#).await,
        1.0
    );
    wait_metric(
        &p,
        r#"s3cached_revalidations_total{result="changed"}"#,
        1.0,
        Duration::from_secs(10),
    )
    .await;
    wait_metric(&p, FILLS_STORED, 2.0, Duration::from_secs(10)).await;
    // The refreshed entry is fresh: a hit with the new bytes.
    assert_hit(&p, &bucket, key, b"<feed>2</feed>").await;
    assert_eq!(
        metric(&p, ORIGIN_GETS).await,
        2.0,
        "one fill and one background refresh"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_entries_are_cached_and_cleared_by_writes_and_events() {
    let origin = support::shared();
    let bucket = origin.new_bucket("neg").await;
    let p = seaweed_proxy(&["--negative-ttl", "30s", "--webhook-token", TOKEN]);

    // Two GETs of a missing key: one origin GetObject.
    for _ in 0..2 {
        assert_no_such_key(&raw_get(&p, &bucket, "missing.txt").await, "GET of a missing key");
    }
    assert_eq!(
        metric(&p, ORIGIN_GETS).await,
        1.0,
        "the second NoSuchKey came from the cache"
    );
    assert_eq!(metric(&p, FILLS_NEGATIVE).await, 1.0);

    // A PUT through s3cached clears it.
    support::put_bytes(
        &p.client(CLIENT_KEY, CLIENT_SECRET),
        &bucket,
        "missing.txt",
        b"now here",
    )
    .await;
    let got = raw_get(&p, &bucket, "missing.txt").await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (200, b"now here".as_slice()),
        "{}",
        got.text()
    );

    // A direct write is hidden by the negative entry until its event arrives.
    let key = "late.txt";
    assert_no_such_key(&raw_get(&p, &bucket, key).await, "GET before the write");
    let etag = put_direct(&origin.client(), &bucket, key, b"late bytes").await;
    assert_no_such_key(&raw_get(&p, &bucket, key).await, "GET of a negatively cached key");
    post_ok(&p, &created(&bucket, key, 10, &etag, "01")).await;
    let got = raw_get(&p, &bucket, key).await;
    assert_eq!(
        (got.status, got.body.as_ref()),
        (200, b"late bytes".as_slice()),
        "{}",
        got.text()
    );

    // Auth errors are never cached: every GET asks the origin.
    let mut wrong_secret = seaweed_origin_args(&origin.endpoint());
    let flag = wrong_secret
        .iter()
        .position(|a| a == "--origin-secret-key")
        .expect("the origin args name a secret key");
    "not-the-secret".clone_into(&mut wrong_secret[flag + 1]);
    let denied = start_proxy(wrong_secret, &["--negative-ttl", "30s"]);
    for _ in 0..2 {
        let got = raw_get(&denied, &bucket, "missing.txt").await;
        assert_eq!(got.status, 403, "{}", got.text());
    }
    assert_eq!(metric(&denied, ORIGIN_GETS).await, 2.0, "an auth error was cached");
    assert_eq!(metric(&denied, FILLS_NEGATIVE).await, 0.0);
}

// ---------------------------------------------------------------------------------------------
// Warm-up
// ---------------------------------------------------------------------------------------------

/// Runs the s3cached binary with `args`; kills it after `timeout`. Returns (success, stdout,
/// stderr).
fn run_s3cached(args: &[String], timeout: Duration) -> (bool, String, String) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("warm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3cached"))
        .args(args)
        .env("NO_COLOR", "1")
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
    let origin = support::shared();
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
    let origin = support::shared();
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

// ---------------------------------------------------------------------------------------------
// Measured: direct origin write -> cache serving the new object
// ---------------------------------------------------------------------------------------------

const WRITES: usize = 50;

fn payload(path: &str, i: usize) -> Vec<u8> {
    format!("{path} write {i:03} {}", "p".repeat(64 + i)).into_bytes()
}

/// Overwrites `key` at the origin `WRITES` times; after each write waits until `hydrated` moves
/// (driven by `notify`, which gets the new ETag and size), then checks that a GET is a hit with
/// the new bytes. Returns, per write, the time from the start of the write to the cache holding
/// it, and the time from the origin acknowledging the write to the cache holding it.
async fn measure<F, Fut>(
    p: &S3Cached,
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    hydrated: &str,
    path: &str,
    notify: F,
) -> (Vec<Duration>, Vec<Duration>)
where
    F: Fn(usize, String, usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut from_start, mut from_ack) = (Vec::with_capacity(WRITES), Vec::with_capacity(WRITES));
    let base = metric(p, hydrated).await;
    for i in 0..WRITES {
        let data = payload(path, i);
        let started = Instant::now();
        let etag = put_direct(s3, bucket, key, &data).await;
        let acked = started.elapsed();
        notify(i, etag, data.len()).await;
        let want = base + (i + 1) as f64;
        wait_metric(p, hydrated, want, Duration::from_secs(10)).await;
        let held = started.elapsed();
        from_start.push(held);
        from_ack.push(held.saturating_sub(acked));
        assert_eq!(metric(p, hydrated).await, want, "write {i} hydrated more than once");
        assert_hit(p, bucket, key, &data).await;
    }
    (from_start, from_ack)
}

/// What a writer does after each write in the webhook measurement: POST the event at once.
fn webhook_notifier(
    p: &S3Cached,
    bucket: &str,
) -> impl Fn(usize, String, usize) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    let (admin, bucket) = (p.admin_endpoint(), bucket.to_owned());
    move |i, etag, size| {
        let body = created(&bucket, "doc.bin", size, &etag, &format!("{:016X}", i + 1));
        let uri = format!("{admin}/events");
        Box::pin(async move {
            let request = http::Request::builder()
                .method("POST")
                .uri(uri)
                .header("authorization", bearer())
                .body(Full::new(Bytes::from(body)))
                .expect("request");
            let resp = Client::builder(TokioExecutor::new())
                .build_http()
                .request(request)
                .await
                .expect("POST /events");
            assert_eq!(resp.status(), 200, "POST /events for write {i}");
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_time_from_origin_write_to_cache_via_sqs_and_webhook() {
    let started = Instant::now();
    let moto = Moto::start();
    let queue_url = bucket_notifying_queue(&moto, "latency-sqs", "latency-events").await;
    moto.s3()
        .create_bucket()
        .bucket("latency-hook")
        .send()
        .await
        .expect("create bucket");
    let via_queue = sqs_proxy(&moto, &queue_url, &["latency-sqs"], &[]);
    let hook = start_proxy(
        moto.origin_args(),
        &["--webhook-token", TOKEN, "--hydrate", "latency-hook"],
    );
    let s3 = moto.s3();

    // SQS: the event travels moto S3 -> queue -> long poll -> hydration.
    let mut via_sqs = measure(
        &via_queue,
        &s3,
        "latency-sqs",
        "doc.bin",
        SQS_HYDRATED,
        "sqs",
        |_, _, _| async {},
    )
    .await;
    wait_queue_empty(&moto, &queue_url, Duration::from_secs(10)).await;
    assert_eq!(metric(&via_queue, POISON).await, 0.0);
    assert_eq!(metric(&via_queue, SQS_ERRORS).await, 0.0);

    // Webhook: the writer posts the event right after its write.
    let mut via_hook_moto = measure(
        &hook,
        &s3,
        "latency-hook",
        "doc.bin",
        HOOK_HYDRATED,
        "webhook",
        webhook_notifier(&hook, "latency-hook"),
    )
    .await;

    // The same webhook path in front of SeaweedFS.
    let seaweed = support::shared();
    let bucket = seaweed.new_bucket("latency").await;
    let hook_seaweed = seaweed_proxy(&["--webhook-token", TOKEN, "--hydrate", &bucket]);
    let mut via_hook_seaweed = measure(
        &hook_seaweed,
        &seaweed.client(),
        &bucket,
        "doc.bin",
        HOOK_HYDRATED,
        "webhook",
        webhook_notifier(&hook_seaweed, &bucket),
    )
    .await;

    eprintln!("[latency] from the start of each direct PutObject to s3cached holding the new object:");
    let (sqs_p50, _) = summary("SQS (moto S3 -> SQS, --sqs-wait 1s)", &mut via_sqs.0);
    let (hook_p50, _) = summary("webhook (moto S3 origin)", &mut via_hook_moto.0);
    summary("webhook (SeaweedFS origin)", &mut via_hook_seaweed.0);
    eprintln!("[latency] from the origin acknowledging the PutObject to s3cached holding the new object:");
    summary("SQS (moto S3 -> SQS, --sqs-wait 1s)", &mut via_sqs.1);
    summary("webhook (moto S3 origin)", &mut via_hook_moto.1);
    summary("webhook (SeaweedFS origin)", &mut via_hook_seaweed.1);
    eprintln!("[latency] {WRITES} writes per path; test time {:?}", started.elapsed());
    // Long polling returns as soon as a message arrives: well under the 1 s wait.
    assert!(sqs_p50 < Duration::from_secs(1), "SQS median {sqs_p50:?}");
    assert!(hook_p50 < Duration::from_secs(1), "webhook median {hook_p50:?}");
}
