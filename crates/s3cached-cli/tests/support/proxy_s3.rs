//! Fixtures of the `proxy_s3*` tests: s3cached in front of the shared SeaweedFS with client
//! credentials unlike the origin's, test bodies, and comparing an answer through the cache with
//! the origin's own answer to the same presigned request.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::presigning::PresigningConfig;

use super::clients::{RawResponse, send_presigned};
use super::proxy::S3Cached;
use super::seaweed::SeaweedFs;

pub const CLIENT_KEY: &str = "client-key";
pub const CLIENT_SECRET: &str = "client-secret";

/// s3cached in front of `origin_endpoint`, with client credentials unlike the origin's.
pub fn proxy_for(origin_endpoint: &str, extra: &[&str]) -> S3Cached {
    S3Cached::builder()
        .origin(origin_endpoint)
        .client_credentials(CLIENT_KEY, CLIENT_SECRET)
        .args(extra.iter().copied())
        .start()
}

pub fn origin() -> &'static SeaweedFs {
    super::seaweed::shared()
}

pub fn proxy(extra: &[&str]) -> S3Cached {
    proxy_for(&origin().endpoint(), extra)
}

pub fn client(p: &S3Cached) -> aws_sdk_s3::Client {
    p.client(CLIENT_KEY, CLIENT_SECRET)
}

pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Compares bodies without dumping megabytes into the failure message.
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got != want {
        let first = got
            .iter()
            .zip(want)
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        panic!(
            "{what}: got {} bytes, want {}; first difference at byte {first}",
            got.len(),
            want.len()
        );
    }
}

pub async fn metric(p: &S3Cached, query: &str) -> f64 {
    p.metric_value(query).await
}

pub const ORIGIN_GETS: &str = r#"s3cached_origin_requests_total{operation="GetObject"}"#;
pub const HITS: &str = r#"s3cached_cache_hits_total{tier="memory"}"#;

/// Headers that legitimately differ per response or per server process.
pub const PER_RESPONSE: &[&str] = &[
    "date",
    "server",
    "x-amz-request-id",
    "x-amz-id-2",
    "connection",
    "keep-alive",
];

/// SeaweedFS adds headers of its own that are not part of the S3 API (`Seaweed-X-Amz-*`, a CORS
/// `Vary`); the S3 protocol layer s3cached speaks to the origin does not carry them.
pub fn vendor_specific(name: &str) -> bool {
    name.starts_with("seaweed-") || name == "vary"
}

pub fn comparable(raw: &RawResponse) -> BTreeMap<String, String> {
    raw.headers
        .iter()
        .filter(|(k, _)| !PER_RESPONSE.contains(&k.as_str()) && k.as_str() != "x-s3cached" && !vendor_specific(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

pub fn presign_cfg() -> PresigningConfig {
    PresigningConfig::expires_in(Duration::from_secs(600)).expect("presigning config")
}

pub type GetCustomizer = fn(
    aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder,
) -> aws_sdk_s3::operation::get_object::builders::GetObjectFluentBuilder;

pub async fn same_get(
    direct: &aws_sdk_s3::Client,
    cached: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    customize: GetCustomizer,
) -> (RawResponse, RawResponse) {
    let o = customize(direct.get_object().bucket(bucket).key(key))
        .presigned(presign_cfg())
        .await
        .expect("presign origin");
    let p = customize(cached.get_object().bucket(bucket).key(key))
        .presigned(presign_cfg())
        .await
        .expect("presign proxy");
    (send_presigned(&o).await, send_presigned(&p).await)
}

pub fn assert_same(what: &str, origin: &RawResponse, proxy: &RawResponse) {
    assert_eq!(origin.status, proxy.status, "{what}: status differs");
    assert_eq!(origin.body, proxy.body, "{what}: body differs");
    assert_eq!(comparable(origin), comparable(proxy), "{what}: headers differ");
}
