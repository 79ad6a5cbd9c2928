//! The origin: the S3 service that holds the truth. Either a remote S3-compatible endpoint or,
//! in development mode, a local directory served by s3s-fs.
//!
//! It is reached two ways. The cache's own reads (fills, revalidation, the HEAD after a
//! write, warm-up listings) go through the typed `s3s::S3` trait (s3s-aws's `Proxy` over
//! `aws_sdk_s3::Client` for a remote endpoint). Everything a client asks that the cache does
//! not answer itself is forwarded as the client sent it ([`forward`]), so the origin sees the
//! client's request and the client gets the origin's answer.

pub mod aws_chunked;
pub mod forward;
pub mod hedge;
pub mod outgoing;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Result};

use self::forward::{Endpoint, Forwarder};
use self::outgoing::Outgoing;
use crate::metrics::Metrics;
use crate::model::config::{HedgeAfter, OriginConfig};

/// Failure to set up the origin.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    /// The development directory could not be created or opened.
    #[error("cannot use {path} as the local origin: {source}")]
    LocalDir {
        /// The directory.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The forwarding client cannot be set up (endpoint URL, root certificates).
    #[error("cannot forward to the origin: {0}")]
    Forwarding(String),
    /// s3s-fs refused the directory.
    #[error("cannot serve {path} as the local origin: {reason}")]
    LocalFs {
        /// The directory.
        path: String,
        /// s3s-fs's message.
        reason: String,
    },
}

/// The origin and the bookkeeping around every call made to it.
#[derive(Clone)]
pub struct Origin {
    s3: Arc<dyn S3>,
    forwarder: Option<Arc<Forwarder>>,
    metrics: Arc<Metrics>,
    description: String,
    read_timeout: Option<Duration>,
    hedging: Arc<hedge::Hedging>,
}

impl Origin {
    /// Connects to the configured origin (no request is made yet).
    ///
    /// # Errors
    /// [`OriginError`] when the local development directory cannot be used.
    pub async fn connect(config: &OriginConfig, metrics: Arc<Metrics>) -> Result<Self, OriginError> {
        match config {
            OriginConfig::S3 {
                endpoint,
                region,
                force_path_style,
                credentials,
                first_byte_timeout,
                hedge_after,
            } => {
                let shared = aws_shared_config(region, credentials.as_ref(), Some(timeouts(*first_byte_timeout))).await;
                let client = s3_client(&shared, endpoint.as_deref(), *force_path_style);
                let forwarder = Forwarder::remote(
                    Endpoint::new(endpoint.as_deref(), region, *force_path_style).map_err(OriginError::Forwarding)?,
                    shared.credentials_provider(),
                    region,
                    *first_byte_timeout,
                )
                .map_err(OriginError::Forwarding)?;
                let description = match endpoint {
                    Some(url) => format!("S3 endpoint {url}"),
                    None => format!("AWS S3 ({region})"),
                };
                let mut origin =
                    Self::from_s3(s3s_aws::Proxy::from(client), metrics, description).with_hedging(*hedge_after);
                origin.read_timeout = Some(*first_byte_timeout);
                origin.forwarder = Some(Arc::new(forwarder));
                Ok(origin)
            }
            OriginConfig::LocalDir(path) => {
                let shown = path.display().to_string();
                std::fs::create_dir_all(path).map_err(|source| OriginError::LocalDir {
                    path: shown.clone(),
                    source,
                })?;
                let fs = s3s_fs::FileSystem::new(path).map_err(|e| OriginError::LocalFs {
                    path: shown.clone(),
                    reason: format!("{e:?}"),
                })?;
                // A second view of the same directory answers forwarded requests.
                let raw = s3s_fs::FileSystem::new(path).map_err(|e| OriginError::LocalFs {
                    path: shown.clone(),
                    reason: format!("{e:?}"),
                })?;
                let mut origin = Self::from_s3(fs, metrics, format!("local directory {shown}"));
                origin.forwarder = Some(Arc::new(Forwarder::local(raw)));
                Ok(origin)
            }
        }
    }

    /// Wraps any `S3` implementation as the origin (tests use in-process fakes). Such an
    /// origin forwards nothing: [`Origin::forward`] answers `NotImplemented`.
    pub fn from_s3(s3: impl S3, metrics: Arc<Metrics>, description: String) -> Self {
        Self {
            s3: Arc::new(s3),
            forwarder: None,
            metrics,
            description,
            read_timeout: None,
            hedging: Arc::new(hedge::Hedging::new(HedgeAfter::Off)),
        }
    }

    /// The same origin, taking forwarded requests through `forwarder` (tests forward to an
    /// in-process fake this way, through [`Forwarder::local`]).
    #[must_use]
    pub fn with_forwarder(mut self, forwarder: Forwarder) -> Self {
        self.forwarder = Some(Arc::new(forwarder));
        self
    }

    /// The same origin, hedging the cache's reads as `after` says.
    #[must_use]
    pub fn with_hedging(mut self, after: HedgeAfter) -> Self {
        self.hedging = Arc::new(hedge::Hedging::new(after));
        self
    }

    /// What the origin is, for logs.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The origin's `S3` implementation.
    #[must_use]
    pub fn s3(&self) -> &dyn S3 {
        self.s3.as_ref()
    }

    /// Runs one origin call, recording its count, result and latency.
    ///
    /// # Errors
    /// The origin's own error, unchanged.
    pub async fn call<T>(&self, operation: &'static str, call: impl Future<Output = S3Result<T>>) -> S3Result<T> {
        let started = Instant::now();
        let result = call.await.map_err(answerable);
        let label = match &result {
            Ok(_) => "ok",
            // A 304 reaches s3s without an error code of its own.
            Err(e) if e.status_code() == Some(http::StatusCode::NOT_MODIFIED) => "NotModified",
            Err(e) => e.code().as_str(),
        };
        self.metrics.origin_request(operation, label, started.elapsed());
        result
    }
}

impl Origin {
    /// Forwards a client's request ([`forward`]), recording it like [`Origin::call`]: the
    /// result label is `ok` for a 2xx or 304 answer, else `http_<status>`.
    ///
    /// # Errors
    /// When the origin could not be reached (its own error answers are `Ok`).
    pub async fn forward(&self, operation: &'static str, out: Outgoing) -> S3Result<http::Response<s3s::Body>> {
        let Some(forwarder) = &self.forwarder else {
            return Err(S3Error::with_message(
                S3ErrorCode::NotImplemented,
                "this origin does not take forwarded requests",
            ));
        };
        let started = Instant::now();
        let result = forwarder.send(out).await;
        self.metrics
            .origin_request(operation, &forward::result_label(&result), started.elapsed());
        result
    }

    /// Like [`Origin::call`] for reads (GET, HEAD, List), whose answers must start within the
    /// origin's first-byte timeout, retries included: a hung origin then fails like a 5xx, and
    /// stale-if-error can answer. Writes are not bounded this way (an upload takes as long as
    /// its body does).
    ///
    /// # Errors
    /// The origin's error, or `ServiceUnavailable` when it did not answer in time.
    pub async fn call_read<T>(&self, operation: &'static str, call: impl Future<Output = S3Result<T>>) -> S3Result<T> {
        let Some(limit) = self.read_timeout else {
            return self.call(operation, call).await;
        };
        match tokio::time::timeout(limit, self.call(operation, call)).await {
            Ok(result) => result,
            Err(_) => {
                self.metrics.origin_request(operation, "Timeout", limit);
                Err(S3Error::with_message(
                    S3ErrorCode::ServiceUnavailable,
                    format!("the origin did not answer within {limit:?}"),
                ))
            }
        }
    }
}

impl Origin {
    /// [`Origin::call_read`] of an idempotent read, hedged ([`hedge`]): `make` builds the
    /// request; when the first has not answered within the hedging delay and the budget
    /// allows, a second races it, the first answer wins and the other is dropped (cancelled).
    ///
    /// # Errors
    /// The winning request's error.
    pub async fn call_read_hedged<T, F>(&self, operation: &'static str, make: impl Fn() -> F) -> S3Result<T>
    where
        F: Future<Output = S3Result<T>>,
    {
        // Tokio's clock, which the hedge's sleep runs on too (and which tests can pause).
        let started = tokio::time::Instant::now();
        let result = match self.hedging.delay() {
            Some(delay) => self.race(operation, &make, delay).await,
            None => self.call_read(operation, make()).await,
        };
        // Unhedged reads too teach a percentile delay what the origin's answers take.
        self.hedging.record(started.elapsed());
        result
    }

    /// The first read, raced by a second one once `delay` has passed without an answer (when
    /// the budget allows).
    async fn race<T, F>(&self, operation: &'static str, make: &impl Fn() -> F, delay: Duration) -> S3Result<T>
    where
        F: Future<Output = S3Result<T>>,
    {
        let first = self.call_read(operation, make());
        tokio::pin!(first);
        tokio::select! {
            // An answer ready when the delay runs out wins: no hedge for it.
            biased;
            result = &mut first => return result,
            () = tokio::time::sleep(delay) => {}
        }
        if !self.hedging.take() {
            return first.await;
        }
        self.metrics.hedge("sent");
        let second = self.call_read(operation, make());
        tokio::pin!(second);
        tokio::select! {
            biased;
            result = &mut first => result,
            result = &mut second => {
                self.metrics.hedge("won");
                result
            }
        }
    }
}

/// The typed client's error as the client should get it: an origin that could not be reached
/// is 503 ServiceUnavailable (as when forwarding), an answer the client could not read is
/// never sent with a success status, and the origin's request id is in the `x-amz-request-id`
/// header too, as the origin sent it (s3s writes it into the XML body only).
#[must_use]
pub fn answerable(mut e: S3Error) -> S3Error {
    if *e.code() == S3ErrorCode::InternalError && unreachable_origin(&e) {
        let mut unavailable = S3Error::with_message(S3ErrorCode::ServiceUnavailable, "cannot reach the origin");
        if let Some(source) = e.source() {
            unavailable.set_message(format!("cannot reach the origin: {source}"));
        }
        return unavailable;
    }
    if e.status_code().is_some_and(|s| s.is_success()) {
        // The origin answered, but not in a form the client could read (for example a header
        // the S3 model cannot parse).
        e.set_status_code(http::StatusCode::BAD_GATEWAY);
    }
    with_request_id_header(e)
}

/// Whether the typed client's error means no answer came (connection refused or reset, a
/// timeout), as opposed to an answer it could not use.
fn unreachable_origin(e: &S3Error) -> bool {
    e.source().is_some_and(|s| {
        let shown = format!("{s:?}");
        shown.starts_with("DispatchFailure") || shown.starts_with("TimeoutError")
    })
}

/// The origin's error with its request id in the `x-amz-request-id` header too, as the
/// origin sent it (s3s writes the id into the XML body only).
#[must_use]
pub fn with_request_id_header(mut e: S3Error) -> S3Error {
    if e.headers().is_none()
        && let Some(id) = e.request_id().and_then(|id| http::HeaderValue::from_str(id).ok())
    {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/xml"),
        );
        headers.insert("x-amz-request-id", id);
        e.set_headers(headers);
    }
    e
}

/// A request to the origin that carries only `input` (the origin signs with its own identity).
#[must_use]
pub fn request<T>(input: T) -> S3Request<T> {
    S3Request {
        input,
        method: http::Method::GET,
        uri: http::Uri::default(),
        headers: http::HeaderMap::new(),
        extensions: http::Extensions::new(),
        credentials: None,
        region: None,
        service: None,
        trailing_headers: None,
    }
}

/// AWS SDK configuration for `region`, with `credentials` or else the default provider chain
/// (shared by the origin's S3 client and the SQS poller).
pub async fn aws_shared_config(
    region: &str,
    credentials: Option<&crate::model::config::Credentials>,
    timeouts: Option<aws_config::timeout::TimeoutConfig>,
) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(Region::new(region.to_owned()));
    if let Some(t) = timeouts {
        loader = loader.timeout_config(t);
    }
    if let Some(c) = credentials {
        loader = loader.credentials_provider(aws_credential_types::Credentials::new(
            &c.access_key,
            &c.secret_key,
            None,
            None,
            "s3cached-config",
        ));
    }
    loader.load().await
}

/// The first byte of an answer must come within `first_byte_timeout`: a hung origin then
/// fails like a 5xx (so stale-if-error can answer). Streaming a large body is not bounded.
fn timeouts(first_byte_timeout: Duration) -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(first_byte_timeout)
        .build()
}

fn s3_client(shared: &aws_config::SdkConfig, endpoint: Option<&str>, force_path_style: bool) -> aws_sdk_s3::Client {
    // Checksums only when S3 requires them: requests reach the origin as the client sent them,
    // instead of gaining SDK-computed trailers some S3-compatible servers reject.
    let mut builder = aws_sdk_s3::config::Builder::from(shared)
        .force_path_style(force_path_style)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(url) = endpoint {
        builder = builder.endpoint_url(url);
    }
    aws_sdk_s3::Client::from_conf(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands for the typed client's failure to get any answer (its `Debug` names the kind).
    #[derive(Debug)]
    enum Failure {
        DispatchFailure,
        ResponseError,
    }

    impl std::fmt::Display for Failure {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }

    impl std::error::Error for Failure {}

    #[test]
    fn typed_client_errors_are_answered_as_the_client_should_get_them() {
        let unreachable = answerable(S3Error::with_source(
            S3ErrorCode::InternalError,
            Box::new(Failure::DispatchFailure),
        ));
        assert_eq!(unreachable.code(), &S3ErrorCode::ServiceUnavailable);
        let unreadable = S3Error::with_source(S3ErrorCode::InternalError, Box::new(Failure::ResponseError));
        assert_eq!(answerable(unreadable).code(), &S3ErrorCode::InternalError);
        let mut ok_status = S3Error::new(S3ErrorCode::InternalError);
        ok_status.set_status_code(http::StatusCode::OK);
        assert_eq!(answerable(ok_status).status_code(), Some(http::StatusCode::BAD_GATEWAY));
        let mut denied = S3Error::new(S3ErrorCode::AccessDenied);
        denied.set_request_id("RID");
        let denied = answerable(denied);
        assert_eq!(denied.status_code(), Some(http::StatusCode::FORBIDDEN));
        assert_eq!(
            denied
                .headers()
                .and_then(|h| h.get("x-amz-request-id"))
                .map(|v| v.as_bytes()),
            Some(&b"RID"[..])
        );
    }
}
