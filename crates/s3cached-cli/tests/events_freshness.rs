//! Revalidation of expired entries (the origin answers 304), stale-while-revalidate,
//! stale-if-error with the origin stopped and with an origin that does not answer, and negative
//! caching, in front of SeaweedFS.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use s3cached_bench::relay::{Relay, Shaping};
use support::events::*;
use support::metrics::wait_metric;
use support::proxy::{S3Cached, seaweed_origin_args};

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
            .spawn(Relay::start(target, Shaping::default()))
            .await
            .expect("relay task")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_revalidated_and_the_origin_answers_304() {
    let origin = support::seaweed::shared();
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
    let origin = support::seaweed::shared();
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
    let origin = support::seaweed::shared();
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
    support::util::block_on_thread(p.metric_value(query))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_serves_the_old_entry_once_and_refreshes_it() {
    let origin = support::seaweed::shared();
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
    let origin = support::seaweed::shared();
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
    support::clients::put_bytes(
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
