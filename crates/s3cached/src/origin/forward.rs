//! Raw forwarding: a client's request goes to the origin as the client sent it (method, key,
//! query, headers, body stream and trailers), signed again with the origin's credentials, and
//! the origin's answer comes back as it is (status, headers, body stream).
//!
//! Only what signing needs changes ([`super::outgoing`] prepares the request): the client's
//! signature (header or query), the `Host`, hop-by-hop headers, and the payload framing of
//! aws-chunked uploads, whose chunk signatures s3s verified and removed (a trailer such as a
//! CRC checksum is framed again, see [`super::aws_chunked`]). The key is sent percent-encoded
//! canonically, so the origin reads the same key whatever encoding the client chose. This
//! module signs and sends.
//!
//! The remote origin is reached over HTTP/1.1 (HTTPS with the system's roots); the local
//! development directory through an in-process s3s service over the same directory, so both
//! take the same code path.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials as AwsCredentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
    sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, header};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use s3s::service::S3Service;
use s3s::{Body, S3Error, S3ErrorCode};

use super::aws_chunked::{self, Reframed};
use super::outgoing::{Outgoing, Payload, bad_request};

fn hop_by_hop_response_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "te" | "trailer" | "transfer-encoding" | "upgrade"
    )
}

/// The body once its first bytes are there. An upload that fails before its first byte (the
/// client went away) must not reach the origin as headers followed by a closed connection,
/// which an origin may take as an empty object.
async fn first_bytes(mut body: Body, headers: &HeaderMap) -> Result<Body, S3Error> {
    use futures::StreamExt as _;
    use s3s::stream::ByteStream as _;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if body.remaining_length().exact() == Some(0) || declared == Some(0) {
        return Ok(body);
    }
    let incomplete = |why: String| S3Error::with_message(S3ErrorCode::IncompleteBody, why);
    match body.next().await {
        Some(Ok(first)) => Ok(Body::from(s3s::dto::StreamingBlob::new(aws_chunked::Prepended::new(
            first, body,
        )))),
        Some(Err(e)) => Err(incomplete(format!("the upload failed before its first byte: {e}"))),
        None if declared.is_some_and(|n| n > 0) => Err(incomplete("the upload ended before its first byte".to_owned())),
        None => Ok(Body::empty()),
    }
}

/// Where the origin's requests go.
#[derive(Clone)]
pub struct Endpoint {
    https: bool,
    authority: String,
    path_style: bool,
}

impl Endpoint {
    /// An endpoint URL (`http://127.0.0.1:8333`), or AWS S3 in `region` when `None`.
    ///
    /// # Errors
    /// A message naming the URL when it cannot be used.
    pub fn new(url: Option<&str>, region: &str, path_style: bool) -> Result<Self, String> {
        let Some(url) = url else {
            return Ok(Self {
                https: true,
                authority: format!("s3.{region}.amazonaws.com"),
                path_style,
            });
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("invalid origin endpoint {url:?}: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("origin endpoint {url:?} must start with http:// or https://")),
        };
        let authority = uri
            .authority()
            .ok_or_else(|| format!("origin endpoint {url:?} has no host"))?
            .to_string();
        Ok(Self {
            https,
            authority,
            path_style,
        })
    }

    /// The URL of a request naming `bucket` and `key`, with `query`.
    fn url(&self, bucket: Option<&str>, key: Option<&str>, query: Option<&str>) -> String {
        let scheme = if self.https { "https" } else { "http" };
        // Buckets with dots would not match a wildcard certificate; upper case is not a host.
        let virtual_host = bucket.filter(|b| {
            !self.path_style
                && !b.contains('.')
                && b.bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        });
        let mut url = match virtual_host {
            Some(b) => format!("{scheme}://{b}.{}/", self.authority),
            None => match bucket {
                Some(b) => format!("{scheme}://{}/{}", self.authority, encode_path(b)),
                None => format!("{scheme}://{}/", self.authority),
            },
        };
        if let Some(key) = key {
            if virtual_host.is_none() {
                url.push('/');
            }
            url.push_str(&encode_path(key));
        }
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        url
    }
}

/// A key as its canonical SigV4 path: every byte but the unreserved ones and `/` encoded.
#[must_use]
pub fn encode_path(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 8);
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

enum Transport {
    Remote {
        client: Box<Client<HttpsConnector<HttpConnector>, Body>>,
        endpoint: Endpoint,
    },
    Local(S3Service),
}

/// Sends [`Outgoing`] requests to the origin.
pub struct Forwarder {
    transport: Transport,
    credentials: Option<SharedCredentialsProvider>,
    region: String,
    first_byte_timeout: Option<Duration>,
}

/// The local development origin's key: it never leaves the process.
pub(crate) const LOCAL_KEY: (&str, &str) = ("s3cached-local", "s3cached-local-secret");

impl Forwarder {
    /// A forwarder to a remote endpoint.
    ///
    /// # Errors
    /// A message when the system's root certificates cannot be loaded.
    pub fn remote(
        endpoint: Endpoint,
        credentials: Option<SharedCredentialsProvider>,
        region: &str,
        first_byte_timeout: Duration,
    ) -> Result<Self, String> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(Self {
            transport: Transport::Remote {
                client: Box::new(client),
                endpoint,
            },
            credentials,
            region: region.to_owned(),
            first_byte_timeout: Some(first_byte_timeout),
        })
    }

    /// A forwarder to an in-process s3s service over `s3` (the local directory).
    #[must_use]
    pub fn local(s3: impl s3s::S3) -> Self {
        let mut builder = s3s::service::S3ServiceBuilder::new(s3);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(LOCAL_KEY.0, LOCAL_KEY.1));
        let credentials = AwsCredentials::new(LOCAL_KEY.0, LOCAL_KEY.1, None, None, "s3cached-local");
        Self {
            transport: Transport::Local(builder.build()),
            credentials: Some(SharedCredentialsProvider::new(credentials)),
            region: "us-east-1".to_owned(),
            first_byte_timeout: None,
        }
    }

    /// Sends `out` to the origin and returns its answer as it is, hop-by-hop headers aside.
    ///
    /// # Errors
    /// `ServiceUnavailable` when the origin cannot be reached or did not start answering in
    /// time (reads only); `InvalidRequest` when a header cannot be signed.
    pub async fn send(&self, out: Outgoing) -> Result<Response<Body>, S3Error> {
        let url = match &self.transport {
            Transport::Remote { endpoint, .. } => {
                endpoint.url(out.bucket.as_deref(), out.key.as_deref(), out.query.as_deref())
            }
            Transport::Local(_) => Endpoint {
                https: false,
                authority: "localhost".to_owned(),
                path_style: true,
            }
            .url(out.bucket.as_deref(), out.key.as_deref(), out.query.as_deref()),
        };
        let uri: Uri = url
            .parse()
            .map_err(|e| bad_request(format!("cannot address the origin for this request: {e}")))?;
        let safe = out.method == Method::GET || out.method == Method::HEAD;
        let mut out = out;
        out.body = first_bytes(std::mem::take(&mut out.body), &out.headers).await?;
        let mut request = self.signed(out, uri).await?;
        let response = match &self.transport {
            Transport::Local(service) => {
                *request.version_mut() = http::Version::HTTP_11;
                service
                    .call(request)
                    .await
                    .map_err(|e| unavailable(format!("local origin failed: {e:?}")))?
            }
            Transport::Remote { client, .. } => {
                let call = client.request(request);
                let answer = match self.first_byte_timeout.filter(|_| safe) {
                    Some(limit) => tokio::time::timeout(limit, call)
                        .await
                        .map_err(|_| unavailable(format!("the origin did not answer within {limit:?}")))?,
                    None => call.await,
                };
                answer
                    .map_err(|e| unavailable(format!("cannot reach the origin: {e}")))?
                    .map(Body::from)
            }
        };
        let (mut parts, body) = response.into_parts();
        let names: Vec<HeaderName> = parts
            .headers
            .keys()
            .filter(|n| hop_by_hop_response_header(n))
            .cloned()
            .collect();
        for n in names {
            parts.headers.remove(n);
        }
        Ok(Response::from_parts(parts, body))
    }

    async fn signed(&self, out: Outgoing, uri: Uri) -> Result<Request<Body>, S3Error> {
        let authority = uri
            .authority()
            .map(ToString::to_string)
            .ok_or_else(|| bad_request("origin URL without host"))?;
        let Outgoing {
            method,
            mut headers,
            body,
            payload,
            credentials,
            ..
        } = out;
        headers.insert(
            header::HOST,
            HeaderValue::from_str(&authority).map_err(|_| bad_request("invalid origin host"))?,
        );
        let (body, signable) = match payload {
            Payload::Sha256(hash) => (body, SignableBody::Precomputed(hash)),
            Payload::Unsigned => (body, SignableBody::UnsignedPayload),
            Payload::Trailer {
                names,
                decoded_len,
                source,
            } => {
                let lens: Vec<(&str, usize)> = names
                    .iter()
                    .map(|n| (n.as_str(), aws_chunked::trailer_value_len(n).unwrap_or(0)))
                    .collect();
                let encoded = aws_chunked::encoded_len(decoded_len, &lens);
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(encoded));
                headers.insert("x-amz-decoded-content-length", HeaderValue::from(decoded_len));
                headers.insert(
                    "x-amz-trailer",
                    HeaderValue::from_str(&names.join(",")).map_err(|_| bad_request("invalid x-amz-trailer"))?,
                );
                let encoding = match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
                    Some(rest) => format!("aws-chunked,{rest}"),
                    None => "aws-chunked".to_owned(),
                };
                headers.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_str(&encoding).map_err(|_| bad_request("invalid content-encoding"))?,
                );
                let framed = Reframed::new(body, decoded_len, names, source);
                (
                    Body::from(s3s::dto::StreamingBlob::new(framed)),
                    SignableBody::StreamingUnsignedPayloadTrailer,
                )
            }
        };
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .body(body)
            .map_err(|e| bad_request(format!("cannot build the origin request: {e}")))?;
        *request.headers_mut() = headers;
        self.sign(&mut request, signable, credentials).await?;
        Ok(request)
    }

    async fn sign(
        &self,
        request: &mut Request<Body>,
        body: SignableBody<'_>,
        identity: Option<crate::model::config::Credentials>,
    ) -> Result<(), S3Error> {
        let credentials = match (identity, &self.credentials) {
            (Some(c), _) => AwsCredentials::new(c.access_key, c.secret_key, None, None, "s3cached-identity"),
            (None, Some(provider)) => provider
                .provide_credentials()
                .await
                .map_err(|e| unavailable(format!("origin credentials unavailable: {e}")))?,
            // No credentials configured or found: the origin decides on an unsigned request.
            (None, None) => return Ok(()),
        };
        let identity: Identity = credentials.into();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| unavailable(format!("cannot sign for the origin: {e}")))?
            .into();
        let mut signed_headers = Vec::new();
        for (name, value) in request.headers() {
            let n = name.as_str();
            if n == "host" || n == "content-md5" || n == "content-type" || n.starts_with("x-amz-") {
                let v = value
                    .to_str()
                    .map_err(|_| bad_request(format!("header {n} is not valid ASCII")))?;
                signed_headers.push((n, v));
            }
        }
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(request.method().as_str(), &uri, signed_headers.into_iter(), body)
            .map_err(|e| bad_request(format!("cannot sign this request: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| bad_request(format!("cannot sign this request: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

/// The metric label of a forwarded request's result: `ok` for a 2xx or 304 answer,
/// `http_<status>` for the origin's other answers, the error code when it was not reached.
#[must_use]
pub fn result_label(result: &Result<Response<Body>, S3Error>) -> std::borrow::Cow<'static, str> {
    match result {
        Ok(r) if r.status().is_success() || r.status() == http::StatusCode::NOT_MODIFIED => "ok".into(),
        Ok(r) => format!("http_{}", r.status().as_u16()).into(),
        Err(e) => e.code().as_str().to_owned().into(),
    }
}

fn unavailable(msg: String) -> S3Error {
    S3Error::with_message(S3ErrorCode::ServiceUnavailable, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_canonically() {
        assert_eq!(encode_path(" "), "%20");
        assert_eq!(encode_path("a b/c+d%e?f#g"), "a%20b/c%2Bd%25e%3Ff%23g");
        assert_eq!(encode_path("/lead//x"), "/lead//x");
        assert_eq!(encode_path("é"), "%C3%A9");
        assert_eq!(encode_path("A-Z_a.z~0"), "A-Z_a.z~0");
    }

    #[test]
    fn urls_address_buckets_by_path_or_host() {
        let path = Endpoint::new(Some("http://127.0.0.1:8333"), "us-east-1", true).expect("endpoint");
        assert_eq!(
            path.url(Some("bkt"), Some("a b"), Some("tagging")),
            "http://127.0.0.1:8333/bkt/a%20b?tagging"
        );
        assert_eq!(path.url(Some("bkt"), None, None), "http://127.0.0.1:8333/bkt");
        let aws = Endpoint::new(None, "eu-west-1", false).expect("endpoint");
        assert_eq!(
            aws.url(Some("bkt"), Some("k"), None),
            "https://bkt.s3.eu-west-1.amazonaws.com/k"
        );
        assert_eq!(
            aws.url(Some("bkt"), Some("/k"), None),
            "https://bkt.s3.eu-west-1.amazonaws.com//k"
        );
        // Dots would not match the wildcard certificate.
        assert_eq!(
            aws.url(Some("a.b"), Some("k"), None),
            "https://s3.eu-west-1.amazonaws.com/a.b/k"
        );
        assert!(Endpoint::new(Some("ftp://x"), "r", true).is_err());
        assert!(Endpoint::new(Some("not a url"), "r", true).is_err());
    }
}
