//! The measuring client and the S3 set-up around it.
//!
//! Measured requests are plain HTTP/1.1 GETs of presigned URLs over kept-alive connections
//! (hyper's low-level client, one connection per worker): URLs are signed once, before the
//! clock runs, so the figures are the servers' time plus loopback, not an SDK's signing, retry
//! and deserialization layers. The same client measures the origin and the cache. Set-up
//! (bucket, uploads, presigning) uses the AWS SDK.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::plan::Keys;

/// Longest a single measured request may take before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Concurrent uploads during set-up.
const UPLOAD_CONCURRENCY: usize = 16;
/// Lifetime of presigned URLs (a run must finish within it).
const PRESIGN_LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// A resolved HTTP endpoint: where to connect and what to send as `Host`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL it was made from.
    pub url: String,
    /// Socket address to connect to.
    pub addr: SocketAddr,
    /// `Host` header value.
    pub host: HeaderValue,
}

impl Endpoint {
    /// Resolves `url` (`http://host:port`).
    ///
    /// # Errors
    /// When the URL has no authority or the host does not resolve.
    pub async fn resolve(url: &str) -> anyhow::Result<Self> {
        let uri: Uri = url.parse().with_context(|| format!("{url:?} is not a URL"))?;
        let authority = uri.authority().ok_or_else(|| anyhow!("{url:?} has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addr = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("cannot resolve {}", authority.host()))?
            .next()
            .ok_or_else(|| anyhow!("{} resolves to no address", authority.host()))?;
        Ok(Self {
            url: url.to_owned(),
            addr,
            host: HeaderValue::from_str(authority.as_str())
                .with_context(|| format!("{url:?}: host is not a header value"))?,
        })
    }
}

/// Presigned GET URLs of one set of objects on one endpoint.
#[derive(Debug, Clone)]
pub struct UrlSet {
    /// Where they point.
    pub endpoint: Endpoint,
    /// Path and query of each object's URL, by object index.
    pub paths: Arc<[PathAndQuery]>,
}

/// What the cache said about one answer (`x-s3cached` header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    /// `hit-*`.
    Hit,
    /// `miss`.
    Miss,
    /// `bypass`, or no header (the origin).
    Other,
}

/// One answered request.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// Body bytes received.
    pub bytes: u64,
    /// The cache's own account.
    pub cache: CacheStatus,
    /// From sending the request to the last body byte.
    pub elapsed: Duration,
}

/// One kept-alive HTTP/1.1 connection that reconnects after a failure.
pub struct Conn {
    endpoint: Endpoint,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl Conn {
    /// A connection to `endpoint` (opened on first use).
    pub fn new(endpoint: Endpoint) -> Self {
        Self { endpoint, sender: None }
    }

    /// Opens the connection now, so the first measured request does not pay for it.
    ///
    /// # Errors
    /// When the server cannot be reached.
    pub async fn open(&mut self) -> anyhow::Result<()> {
        if self.sender.as_ref().is_none_or(SendRequest::is_closed) {
            let stream = TcpStream::connect(self.endpoint.addr)
                .await
                .with_context(|| format!("cannot connect to {}", self.endpoint.url))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .with_context(|| format!("HTTP handshake with {} failed", self.endpoint.url))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            self.sender = Some(sender);
        }
        Ok(())
    }

    /// GETs `path`, reads the whole body, and times it (connection set-up excluded).
    ///
    /// # Errors
    /// Connection failures and timeouts (the connection is reopened on the next call).
    pub async fn get(&mut self, path: &PathAndQuery) -> anyhow::Result<Answer> {
        self.open().await?;
        let result = tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(path)).await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(anyhow!(
                    "no complete answer from {} within {REQUEST_TIMEOUT:?}",
                    self.endpoint.url
                ))
            }
        }
    }

    async fn exchange(&mut self, path: &PathAndQuery) -> anyhow::Result<Answer> {
        let sender = self.sender.as_mut().ok_or_else(|| anyhow!("connection not open"))?;
        let req = Request::get(Uri::from(path.clone()))
            .header(http::header::HOST, self.endpoint.host.clone())
            .body(Empty::<Bytes>::new())
            .context("building a request")?;
        sender.ready().await.context("connection closed")?;
        let started = Instant::now();
        let resp = sender.send_request(req).await.context("request failed")?;
        let status = resp.status().as_u16();
        let cache = match resp.headers().get("x-s3cached").map(HeaderValue::as_bytes) {
            Some(v) if v.starts_with(b"hit") => CacheStatus::Hit,
            Some(b"miss") => CacheStatus::Miss,
            _ => CacheStatus::Other,
        };
        let mut body = resp.into_body();
        let mut bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the body")?;
            if let Some(data) = frame.data_ref() {
                bytes += data.len() as u64;
            }
        }
        Ok(Answer {
            status,
            bytes,
            cache,
            elapsed: started.elapsed(),
        })
    }

    /// GETs `path` and returns the body as text (for `/metrics`).
    ///
    /// # Errors
    /// Connection failures, non-200 answers, bodies that are not UTF-8.
    pub async fn get_text(&mut self, path: &PathAndQuery) -> anyhow::Result<String> {
        self.open().await?;
        let sender = self.sender.as_mut().ok_or_else(|| anyhow!("connection not open"))?;
        let req = Request::get(Uri::from(path.clone()))
            .header(http::header::HOST, self.endpoint.host.clone())
            .body(Empty::<Bytes>::new())
            .context("building a request")?;
        let fetch = async {
            sender.ready().await.context("connection closed")?;
            let resp = sender.send_request(req).await.context("request failed")?;
            let status = resp.status();
            let body = resp.into_body().collect().await.context("reading the body")?;
            anyhow::ensure!(status.is_success(), "answered {status}");
            String::from_utf8(body.to_bytes().to_vec()).context("body is not UTF-8")
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, fetch).await {
            Ok(r) => r.with_context(|| format!("GET {}{path}", self.endpoint.url)),
            Err(_) => Err(anyhow!("GET {}{path}: timed out", self.endpoint.url)),
        }
    }
}

/// An SDK client for set-up (path-style, checksums only where required).
pub fn sdk(url: &str, keys: &Keys, region: &str) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .endpoint_url(url)
        .force_path_style(true)
        .credentials_provider(Credentials::new(
            &keys.access,
            &keys.secret,
            None,
            None,
            "s3cached-bench",
        ))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Creates `bucket` unless it exists.
///
/// # Errors
/// When the bucket neither exists nor can be created.
pub async fn ensure_bucket(client: &aws_sdk_s3::Client, bucket: &str) -> anyhow::Result<()> {
    if client.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    client
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(|e| anyhow!("cannot create bucket {bucket}: {}", sdk_error(&e)))?;
    Ok(())
}

/// The most useful line of an SDK error.
pub fn sdk_error<E: std::error::Error + 'static>(e: &E) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = format!("{msg}: {s}");
        source = s.source();
    }
    msg
}

/// Deterministic object content: a pattern with the object's index in front.
pub fn object_body(index: u64, size: u64) -> Bytes {
    let len = usize::try_from(size).unwrap_or(usize::MAX);
    let mut v: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let tag = index.to_be_bytes();
    let n = tag.len().min(v.len());
    v[..n].copy_from_slice(&tag[..n]);
    Bytes::from(v)
}

/// Uploads `keys` (each `size` bytes) with a few requests in flight; calls `tick` per upload.
///
/// # Errors
/// The first failed upload.
pub async fn put_objects(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    keys: &[String],
    size: u64,
    tick: impl Fn(),
) -> anyhow::Result<()> {
    let mut set = JoinSet::new();
    let mut next = 0usize;
    loop {
        while set.len() < UPLOAD_CONCURRENCY && next < keys.len() {
            let (client, bucket, key) = (client.clone(), bucket.to_owned(), keys[next].clone());
            let body = object_body(next as u64, size);
            set.spawn(async move {
                client
                    .put_object()
                    .bucket(&bucket)
                    .key(&key)
                    .content_type("application/octet-stream")
                    .body(ByteStream::from(body))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| anyhow!("upload of {bucket}/{key} failed: {}", sdk_error(&e)))
            });
            next += 1;
        }
        match set.join_next().await {
            None => return Ok(()),
            Some(joined) => {
                joined.context("upload task failed")??;
                tick();
            }
        }
    }
}

/// Presigns a GET of every key on `endpoint`.
///
/// # Errors
/// When signing fails or a URL does not parse.
pub async fn presign_all(
    client: &aws_sdk_s3::Client,
    endpoint: Endpoint,
    bucket: &str,
    keys: &[String],
) -> anyhow::Result<UrlSet> {
    let config = PresigningConfig::expires_in(PRESIGN_LIFETIME).context("presigning config")?;
    let mut paths = Vec::with_capacity(keys.len());
    for key in keys {
        let req = client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config.clone())
            .await
            .map_err(|e| anyhow!("cannot presign {bucket}/{key}: {}", sdk_error(&e)))?;
        let uri: Uri = req
            .uri()
            .parse()
            .with_context(|| format!("presigned URL {:?} does not parse", req.uri()))?;
        let pq = uri
            .path_and_query()
            .cloned()
            .ok_or_else(|| anyhow!("presigned URL without a path"))?;
        paths.push(pq);
    }
    Ok(UrlSet {
        endpoint,
        paths: Arc::from(paths),
    })
}

/// Deletes `keys` from a bucket the run does not own (best effort: failures are ignored).
pub async fn delete_objects(client: &aws_sdk_s3::Client, bucket: &str, keys: &[String]) {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    for chunk in keys.chunks(1000) {
        let ids: Vec<ObjectIdentifier> = chunk
            .iter()
            .filter_map(|k| ObjectIdentifier::builder().key(k).build().ok())
            .collect();
        if let Ok(delete) = Delete::builder().set_objects(Some(ids)).quiet(true).build() {
            let _ = client.delete_objects().bucket(bucket).delete(delete).send().await;
        }
    }
}
