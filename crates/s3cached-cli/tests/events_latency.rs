//! The time from a direct origin write to the cache serving the new object, via SQS and via the
//! webhook (printed; run with `--nocapture` to see it).

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::events::*;
use support::metrics::wait_metric;
use support::moto::{Moto, bucket_notifying_queue, wait_queue_empty};
use support::proxy::S3Cached;

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
    let seaweed = support::seaweed::shared();
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
