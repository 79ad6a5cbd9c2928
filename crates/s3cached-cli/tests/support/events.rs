//! Fixtures of the `events_*` tests, which keep the cache fresh while writers go to the origin
//! directly: s3cached with those tests' client credentials and webhook token, raw GETs that
//! show the `x-s3cached` header, hit and NoSuchKey assertions, S3 notification records in the
//! format AWS sends, and `POST /events` to the webhook.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::clients::{put_bytes, send_presigned};
use super::moto::Moto;
use super::proxy::{S3Cached, seaweed_origin_args};
use super::seaweed::shared;
use super::util::error_chain;

pub const CLIENT_KEY: &str = "events-client";
pub const CLIENT_SECRET: &str = "events-client-secret";
pub const TOKEN: &str = "hook-t0ken-for-tests";

pub const ORIGIN_GETS: &str = r#"s3cached_origin_requests_total{operation="GetObject"}"#;
pub const ORIGIN_NOT_MODIFIED: &str = r#"s3cached_origin_requests_total{operation="GetObject",result="NotModified"}"#;
pub const CLIENT_GETS: &str = r#"s3cached_requests_total{operation="GetObject"}"#;
pub const FILLS_STORED: &str = r#"s3cached_cache_fills_total{result="stored"}"#;
pub const FILLS_NEGATIVE: &str = r#"s3cached_cache_fills_total{result="negative"}"#;
pub const MEMORY_HITS: &str = r#"s3cached_cache_hits_total{tier="memory"}"#;
pub const SQS_HYDRATED: &str = r#"s3cached_events_total{source="sqs",result="hydrated"}"#;
pub const SQS_INVALIDATED: &str = r#"s3cached_events_total{source="sqs",result="invalidated"}"#;
pub const SQS_ERRORS: &str = r#"s3cached_events_total{source="sqs",result="error"}"#;
pub const HOOK_EVENTS: &str = r#"s3cached_events_total{source="webhook"}"#;
pub const HOOK_HYDRATED: &str = r#"s3cached_events_total{source="webhook",result="hydrated"}"#;
pub const HOOK_INVALIDATED: &str = r#"s3cached_events_total{source="webhook",result="invalidated"}"#;
pub const HOOK_STALE: &str = r#"s3cached_events_total{source="webhook",result="stale"}"#;
pub const POISON: &str = "s3cached_event_poison_messages_total";

/// s3cached with `origin_args`, the test client credentials and `extra`.
pub fn start_proxy(origin_args: Vec<String>, extra: &[&str]) -> S3Cached {
    S3Cached::builder()
        .args(origin_args)
        .args(["--access-key", CLIENT_KEY, "--secret-key", CLIENT_SECRET])
        .args(extra.iter().copied())
        .start()
}

/// s3cached in front of the shared SeaweedFS.
pub fn seaweed_proxy(extra: &[&str]) -> S3Cached {
    start_proxy(seaweed_origin_args(&shared().endpoint()), extra)
}

pub fn log_of(p: &S3Cached) -> String {
    p.log_tail()
}
pub async fn metric(p: &S3Cached, query: &str) -> f64 {
    p.metric_value(query).await
}

/// One raw GET through s3cached.
pub struct Got {
    pub status: u16,
    /// The `x-s3cached` header (`hit-memory`, `miss`, …).
    pub cache: String,
    pub headers: BTreeMap<String, String>,
    pub body: Bytes,
}

impl Got {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A presigned GET through s3cached sent as a plain HTTP request, so the `x-s3cached` header is
/// visible.
pub async fn raw_get(p: &S3Cached, bucket: &str, key: &str) -> Got {
    let presigned = p
        .client(CLIENT_KEY, CLIENT_SECRET)
        .get_object()
        .bucket(bucket)
        .key(key)
        .presigned(PresigningConfig::expires_in(Duration::from_secs(600)).expect("presigning config"))
        .await
        .expect("presign GET");
    let exchange = async {
        let raw = send_presigned(&presigned).await;
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
pub async fn assert_hit(p: &S3Cached, bucket: &str, key: &str, want: &[u8]) {
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
pub async fn post_events(p: &S3Cached, authorization: Option<&str>, body: &str) -> (u16, String) {
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

pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// Posts `body` with the right token and expects 200.
pub async fn post_ok(p: &S3Cached, body: &str) -> String {
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
pub fn json_str(s: &str) -> String {
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
pub fn event_key(key: &str) -> String {
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
pub fn record(event_name: &str, bucket: &str, key: &str, object: Option<(usize, &str)>, sequencer: &str) -> String {
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

pub fn records(records: &[String]) -> String {
    format!(r#"{{"Records":[{}]}}"#, records.join(","))
}

/// An `ObjectCreated:Put` notification.
pub fn created(bucket: &str, key: &str, size: usize, etag: &str, sequencer: &str) -> String {
    records(&[record("ObjectCreated:Put", bucket, key, Some((size, etag)), sequencer)])
}

/// An `ObjectRemoved:Delete` notification.
pub fn removed(bucket: &str, key: &str, sequencer: &str) -> String {
    records(&[record("ObjectRemoved:Delete", bucket, key, None, sequencer)])
}

/// Puts straight into an origin; returns the ETag without quotes.
pub async fn put_direct(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, body: &[u8]) -> String {
    let out = put_bytes(s3, bucket, key, body).await;
    out.e_tag().unwrap_or_default().trim_matches('"').to_owned()
}

pub async fn delete_direct(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) {
    s3.delete_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("direct DELETE {bucket}/{key}: {}", error_chain(&e)));
}

#[track_caller]
pub fn assert_no_such_key(got: &Got, what: &str) {
    assert_eq!(
        got.status,
        404,
        "{what}: want NoSuchKey, got {} {}",
        got.status,
        got.text()
    );
    assert!(got.text().contains("NoSuchKey"), "{what}: {}", got.text());
}

/// s3cached over moto, polling `queue_url` and hydrating `hydrate`.
pub fn sqs_proxy(moto: &Moto, queue_url: &str, hydrate: &[&str], extra: &[&str]) -> S3Cached {
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
