//! Clients inside the test process: the AWS SDK for Rust pointed at an endpoint (with one-line
//! PUT/GET helpers), and plain HTTP requests (presigned requests sent as they are, so every
//! response header shows; simple GETs).

use std::collections::BTreeMap;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;

use super::REGION;
use super::util::error_chain;

/// An S3 client for `endpoint`: path-style addressing, region `us-east-1`, static credentials.
pub fn s3_client(endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
    s3_client_with_attempts(endpoint, access_key, secret_key, 3)
}

/// As [`s3_client`], with at most `max_attempts` attempts per request (1 = no retries).
pub fn s3_client_with_attempts(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    max_attempts: u32,
) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "s3cached-tests"))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(max_attempts))
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// PUTs `body` at `bucket`/`key` through `c`; panics with the error chain when it fails.
pub async fn put_bytes(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: impl Into<Vec<u8>>,
) -> aws_sdk_s3::operation::put_object::PutObjectOutput {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body.into()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT s3://{bucket}/{key}: {}", error_chain(&e)))
}

/// The whole body of `bucket`/`key`, read through `c`; panics when the GET fails.
pub async fn get_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    try_get_bytes(c, bucket, key)
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e}"))
}

/// The whole body of `bucket`/`key`, read through `c`, or what went wrong.
pub async fn try_get_bytes(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(out.body.collect().await.map_err(|e| e.to_string())?.to_vec())
}

pub struct RawResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: hyper::body::Bytes,
}

/// Sends a presigned request (method, URL and signed headers) without any other header, so
/// every response header (`x-s3cached` among them) is visible.
pub async fn send_presigned(req: &aws_sdk_s3::presigning::PresignedRequest) -> RawResponse {
    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let mut builder = http::Request::builder().method(req.method()).uri(req.uri());
    for (name, value) in req.headers() {
        builder = builder.header(name, value);
    }
    let request = builder.body(Empty::<Bytes>::new()).expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http();
    let resp = client.request(request).await.expect("raw request");
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp.into_body().collect().await.expect("raw body").to_bytes();
    RawResponse { status, headers, body }
}

/// A plain HTTP/1.1 GET; returns the status code and the body as text.
pub async fn http_get(url: &str) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt as _, Empty};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url:?}: {e}"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = client
        .get(uri)
        .await
        .map_err(|e| format!("GET {url}: {}", error_chain(&e)))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("GET {url}: reading body: {}", error_chain(&e)))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
