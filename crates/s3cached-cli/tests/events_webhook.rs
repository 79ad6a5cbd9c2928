//! The webhook (`POST /events` on the admin listener) in front of SeaweedFS: real-format
//! events, bearer token, malformed bodies, SNS and EventBridge shapes, and out-of-order and
//! duplicate sequences that must not bring back a deleted object.

mod support;

use support::events::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_event_hydrates_an_object_written_at_the_origin() {
    let origin = support::seaweed::shared();
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
    let origin = support::seaweed::shared();
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
    let origin = support::seaweed::shared();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_senders_of_the_identities_file_apply_only_what_they_are_granted() {
    let origin = support::seaweed::shared();
    let bucket = origin.new_bucket("hook-scope").await;
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("identities.toml");
    let sender = |token: &str| {
        format!("[[event-sender]]\nname = \"scoped\"\ntoken = \"{token}\"\non = [\"{bucket}/granted/\"]\n")
    };
    std::fs::write(&file, sender("first-token")).expect("write identities");
    let file_arg = file.to_string_lossy().into_owned();
    let p = seaweed_proxy(&["--identities", &file_arg, "--hydrate", &bucket]);
    let s3 = origin.client();
    let (inside, outside) = ("granted/a.txt", "elsewhere/b.txt");
    let data = b"scoped events".as_slice();
    let etag_in = put_direct(&s3, &bucket, inside, data).await;
    let etag_out = put_direct(&s3, &bucket, outside, data).await;
    let body = records(&[
        record("ObjectCreated:Put", &bucket, inside, Some((data.len(), &etag_in)), "0A"),
        record(
            "ObjectCreated:Put",
            &bucket,
            outside,
            Some((data.len(), &etag_out)),
            "0A",
        ),
    ]);

    // `--webhook-token` was not given: only the file's sender is let in.
    let (status, _) = post_events(&p, Some(&bearer()), &body).await;
    assert_eq!(status, 401);
    // The granted event is applied; the other is refused, counted, and makes the answer a 403.
    let (status, answer) = post_events(&p, Some("Bearer first-token"), &body).await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer.contains(r#""applied":1"#) && answer.contains(r#""denied":1"#),
        "{answer}"
    );
    assert_eq!(metric(&p, HOOK_HYDRATED).await, 1.0);
    let denials = r#"s3cached_authorization_denials_total{identity="scoped",action="notify"}"#;
    assert_eq!(metric(&p, denials).await, 1.0);
    assert_hit(&p, &bucket, inside, data).await;
    let got = raw_get(&p, &bucket, outside).await;
    assert_eq!(
        (got.status, got.cache.as_str()),
        (200, "miss"),
        "the refused event filled nothing"
    );

    // A new token in the file takes over on reload; the old one is refused.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    std::fs::write(&file, sender("second-token")).expect("rewrite identities");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while post_events(&p, Some("Bearer second-token"), &records(&[])).await.0 == 401 {
        assert!(std::time::Instant::now() < deadline, "reload not seen:\n{}", log_of(&p));
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(post_events(&p, Some("Bearer first-token"), &body).await.0, 401);
}
