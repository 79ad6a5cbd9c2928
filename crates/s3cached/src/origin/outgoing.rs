//! What goes to the origin: a client's request, authenticated and authorized, made ready to
//! be signed again ([`Outgoing`]). The client's signature (header or presigned query), the
//! hop-by-hop headers and the aws-chunked framing of uploads are taken off here; everything
//! else goes as the client sent it. [`super::forward`] signs and sends it.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use s3s::{Body, S3Error, S3ErrorCode, TrailingHeaders};

use super::aws_chunked::{self, ExactLength, TrailerSource};

/// What the origin receives: a client's request, already authenticated and authorized.
pub struct Outgoing {
    /// The client's method.
    pub method: Method,
    /// The bucket, when the request names one.
    pub bucket: Option<String>,
    /// The object key (decoded), when the request names an object.
    pub key: Option<String>,
    /// The client's query string as sent, without its signature parameters.
    pub query: Option<String>,
    /// The client's end-to-end headers, without its signature.
    pub headers: HeaderMap,
    /// The body, as s3s verified it.
    pub body: Body,
    /// How the body is signed for the origin.
    pub payload: Payload,
    /// The key pair to sign with instead of the origin's own (a client identity's).
    pub credentials: Option<crate::model::config::Credentials>,
}

/// How a forwarded body is declared to the origin.
pub enum Payload {
    /// The SHA-256 the client signed: the origin checks the bytes against it again.
    Sha256(String),
    /// No payload signature.
    Unsigned,
    /// An aws-chunked upload with trailers, framed again for the origin.
    Trailer {
        /// The trailer names (`x-amz-trailer`).
        names: Vec<String>,
        /// The decoded body length.
        decoded_len: u64,
        /// The trailers, once the body has ended.
        source: TrailerSource,
    },
}

/// Query parameters of a presigned URL (SigV4, and SigV2's last three): the client's
/// signature, not part of the request.
const PRESIGN_PARAMS: &[&str] = &[
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Security-Token",
    "AWSAccessKeyId",
    "Signature",
    "Expires",
];

/// Headers that belong to one connection, or to the client's signature.
fn dropped_request_header(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "host"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "expect"
            | "authorization"
            | "x-amz-date"
            | "x-amz-security-token"
            | "x-amz-content-sha256"
    )
}

/// The query without SigV4's presigned-URL parameters, in the client's order and encoding.
#[must_use]
pub fn strip_presign_params(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(n, _)| n);
            !pair.is_empty() && !PRESIGN_PARAMS.contains(&name)
        })
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// `content-encoding` without the `aws-chunked` token (None when nothing else is left).
fn without_aws_chunked(value: &HeaderValue) -> Option<HeaderValue> {
    let rest: Vec<&str> = value
        .to_str()
        .ok()?
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!rest.is_empty()).then(|| HeaderValue::from_str(&rest.join(",")).ok())?
}
fn decoded_len_of(headers: &HeaderMap) -> Option<u64> {
    headers
        .get("x-amz-decoded-content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

pub(super) fn bad_request(msg: impl Into<String>) -> S3Error {
    S3Error::with_message(S3ErrorCode::InvalidRequest, msg.into())
}

impl Outgoing {
    /// The request s3s authenticated (its body already decoded and checked), made ready for
    /// the origin. `bucket` and `key` are what the request names.
    ///
    /// # Errors
    /// `InvalidRequest` when the payload declaration is unusable.
    pub fn from_client(
        method: Method,
        uri: &Uri,
        mut headers: HeaderMap,
        body: Body,
        trailing: Option<TrailingHeaders>,
        bucket: Option<String>,
        key: Option<String>,
    ) -> Result<Self, S3Error> {
        let declared = headers
            .get("x-amz-content-sha256")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let streaming = declared.as_deref().is_some_and(|d| d.starts_with("STREAMING-"));
        let payload = match declared.as_deref() {
            Some(hash) if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Payload::Sha256(hash.to_ascii_lowercase())
            }
            _ if streaming => {
                let names: Vec<String> = headers
                    .get("x-amz-trailer")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| {
                        v.split(',')
                            .map(|n| n.trim().to_ascii_lowercase())
                            .filter(|n| !n.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                // s3s required it; the decoded body is held to it (`ExactLength`, `Reframed`).
                let decoded_len = decoded_len_of(&headers)
                    .ok_or_else(|| bad_request("aws-chunked upload without x-amz-decoded-content-length"))?;
                // The client may have sent the encoded body without a Content-Length.
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(decoded_len));
                match (names.is_empty(), trailing) {
                    (false, Some(trailing)) => {
                        if let Some(unknown) = names.iter().find(|n| aws_chunked::trailer_value_len(n).is_none()) {
                            return Err(bad_request(format!("unsupported trailer {unknown}")));
                        }
                        Payload::Trailer {
                            names,
                            decoded_len,
                            source: Box::new(move || trailing.take()),
                        }
                    }
                    _ => Payload::Unsigned,
                }
            }
            _ => Payload::Unsigned,
        };
        // A cut aws-chunked upload must fail at the origin, not arrive short but complete.
        let body = match (&payload, streaming, decoded_len_of(&headers)) {
            (Payload::Unsigned, true, Some(declared)) => {
                Body::from(s3s::dto::StreamingBlob::new(ExactLength::new(body, declared)))
            }
            _ => body,
        };
        headers.retain_dropped();
        if streaming {
            match headers.get(header::CONTENT_ENCODING).and_then(without_aws_chunked) {
                Some(v) => {
                    headers.insert(header::CONTENT_ENCODING, v);
                }
                None => {
                    headers.remove(header::CONTENT_ENCODING);
                }
            }
            headers.remove("x-amz-decoded-content-length");
            headers.remove("x-amz-trailer");
        }
        Ok(Self {
            method,
            bucket,
            key,
            query: uri.query().and_then(strip_presign_params),
            headers,
            body,
            payload,
            credentials: None,
        })
    }

    /// A HEAD of `bucket`/`key` (of `version`), with no client behind it.
    #[must_use]
    pub fn head(bucket: &str, key: &str, version: Option<&str>) -> Self {
        let query = version.map(|v| {
            let encoded: String = form_urlencoded::byte_serialize(v.as_bytes()).collect();
            format!("versionId={encoded}")
        });
        Self {
            method: Method::HEAD,
            bucket: Some(bucket.to_owned()),
            key: Some(key.to_owned()),
            query,
            headers: HeaderMap::new(),
            body: Body::empty(),
            payload: Payload::Unsigned,
            credentials: None,
        }
    }
}

trait RetainDropped {
    fn retain_dropped(&mut self);
}

impl RetainDropped for HeaderMap {
    fn retain_dropped(&mut self) {
        let names: Vec<HeaderName> = self.keys().filter(|n| dropped_request_header(n)).cloned().collect();
        for n in names {
            self.remove(n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_parameters_are_dropped_and_the_rest_kept_as_sent() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&list-type=2&prefix=a%2Fb+c&X-Amz-Signature=ab&x-id=ListObjectsV2";
        assert_eq!(
            strip_presign_params(q).as_deref(),
            Some("list-type=2&prefix=a%2Fb+c&x-id=ListObjectsV2")
        );
        assert_eq!(strip_presign_params("AWSAccessKeyId=a&Signature=s&Expires=1"), None);
        assert_eq!(strip_presign_params("uploads&&"), Some("uploads".to_owned()));
    }

    #[test]
    fn streaming_uploads_lose_their_chunk_framing() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
        );
        h.insert("content-encoding", HeaderValue::from_static("aws-chunked,gzip"));
        h.insert("x-amz-decoded-content-length", HeaderValue::from_static("5"));
        h.insert("authorization", HeaderValue::from_static("AWS4-HMAC-SHA256 ..."));
        h.insert("x-amz-meta-a", HeaderValue::from_static("b"));
        let uri: Uri = "/bkt/k?X-Amz-Date=1".parse().expect("uri");
        let out = Outgoing::from_client(Method::PUT, &uri, h, Body::empty(), None, None, None).expect("outgoing");
        assert!(matches!(out.payload, Payload::Unsigned));
        assert_eq!(
            out.headers.get("content-encoding").map(HeaderValue::as_bytes),
            Some(&b"gzip"[..])
        );
        assert_eq!(
            out.headers.get("content-length").map(HeaderValue::as_bytes),
            Some(&b"5"[..])
        );
        assert!(
            out.headers.get("authorization").is_none() && out.headers.get("x-amz-decoded-content-length").is_none()
        );
        assert_eq!(
            out.headers.get("x-amz-meta-a").map(HeaderValue::as_bytes),
            Some(&b"b"[..])
        );
        assert_eq!(out.query, None);
        let mut h = HeaderMap::new();
        h.insert(
            "x-amz-content-sha256",
            HeaderValue::from_static("STREAMING-UNSIGNED-PAYLOAD-TRAILER"),
        );
        assert!(Outgoing::from_client(Method::PUT, &uri, h, Body::empty(), None, None, None).is_err());
    }
}
