//! S3 event notifications over SQS, end to end: moto's server (S3 + SQS) with a bucket
//! notification configuration pointing at a queue; objects written, overwritten and deleted at
//! moto are hydrated or invalidated in s3cached without any GET through it; poison messages are
//! counted and deleted; a sub-second `--sqs-wait` must not poll in a tight loop.

mod support;

use std::time::Duration;

use support::events::*;
use support::metrics::wait_metric;
use support::moto::{Moto, bucket_notifying_queue, create_queue, wait_queue_empty};

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
