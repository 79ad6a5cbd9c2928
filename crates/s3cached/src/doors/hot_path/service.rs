//! The S3 listener's service: the hot path in front of s3s for every request hyper serves,
//! and the refusals both doors share (an unknown method, an oversized header section, an
//! upload without a length), answered with S3's error before either door sees the request.

use std::sync::Arc;

use futures::future::{BoxFuture, Either, Ready, ready};
use http::{HeaderMap, Method, Request, Response, header};
use hyper::body::Incoming;
use s3s::service::S3Service;
use s3s::{HttpError, HttpResponse};

use super::{HotPath, MAX_HEADER_SECTION, RequestHead, Verdict};

/// The methods some S3 operation (or CORS preflight) uses; anything else is refused.
fn known_method(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::POST | Method::DELETE | Method::OPTIONS
    )
}

fn header_section_len(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .fold(0, usize::saturating_add)
}

/// An S3-style XML error answer. `extra` is further XML elements, already escaped.
fn s3_error(status: http::StatusCode, code: &str, message: &str, extra: &str) -> HttpResponse {
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>{extra}</Error>"
    );
    let mut resp = Response::new(s3s::Body::from(xml));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, http::HeaderValue::from_static("application/xml"));
    resp
}

/// The answer to a request no S3 operation may take, whichever door it would go to: a
/// header section over S3's limit, or a method S3 does not know.
fn refusal<B>(req: &Request<B>) -> Option<HttpResponse> {
    if !known_method(req.method()) {
        // Method names are tokens (no `<` or `&`), so the name goes into the XML as it is.
        let extra = format!(
            "<Method>{}</Method><ResourceType>OBJECT</ResourceType>",
            req.method().as_str()
        );
        let mut resp = s3_error(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
            &extra,
        );
        resp.headers_mut().insert(
            header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD, PUT, POST, DELETE, OPTIONS"),
        );
        return Some(resp);
    }
    if header_section_len(req.headers()) > MAX_HEADER_SECTION {
        return Some(s3_error(
            http::StatusCode::BAD_REQUEST,
            "RequestHeaderSectionTooLarge",
            "Your request header section exceeds the maximum allowed size.",
            &format!("<MaxSizeAllowed>{MAX_HEADER_SECTION}</MaxSizeAllowed>"),
        ));
    }
    None
}

/// The largest upload body accepted without a length (see [`unframed_upload`]).
pub const MAX_UNFRAMED_BODY: usize = 32 * 1024 * 1024;

/// A PUT or POST whose body comes with `Transfer-Encoding: chunked` and neither a
/// `Content-Length` nor aws-chunked framing (which declares its decoded length). The origin may
/// take it; the signature check needs the length first.
fn unframed_upload<B>(req: &Request<B>) -> bool {
    let h = req.headers();
    (req.method() == Method::PUT || req.method() == Method::POST)
        && !h.contains_key(header::CONTENT_LENGTH)
        && h.get(header::TRANSFER_ENCODING)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
        && !h
            .get("x-amz-content-sha256")
            .is_some_and(|v| v.as_bytes().starts_with(b"STREAMING-"))
}

/// Reads an unframed upload (up to [`MAX_UNFRAMED_BODY`]) so it has a length; a larger one is
/// refused as S3 refuses every unframed upload (411 MissingContentLength).
async fn with_known_length(req: Request<Incoming>) -> Result<Request<s3s::Body>, HttpResponse> {
    use http_body_util::BodyExt as _;
    let (mut parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_UNFRAMED_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(s3_error(
                http::StatusCode::LENGTH_REQUIRED,
                "MissingContentLength",
                "You must provide the Content-Length HTTP header (bodies without one are taken up to 32 MiB).",
                "",
            ));
        }
        Err(_) => {
            return Err(s3_error(
                http::StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "You did not provide the number of bytes specified by the Content-Length HTTP header.",
                "",
            ));
        }
    };
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, http::HeaderValue::from(bytes.len()));
    Ok(Request::from_parts(parts, s3s::Body::from(bytes)))
}

/// The S3 service with the hot path in front: what the S3 listener serves. Requests no S3
/// operation may take (an unknown method, an oversized header section) are answered here with
/// S3's error, before either door.
#[derive(Clone)]
pub struct HotPathService {
    hot: Option<Arc<HotPath>>,
    full: S3Service,
}

impl HotPathService {
    /// `full` behind `hot` (`None`: every request takes the full path).
    #[must_use]
    pub fn new(hot: Option<HotPath>, full: S3Service) -> Self {
        Self {
            hot: hot.map(Arc::new),
            full,
        }
    }

    /// The hot path in front, if any: what [`connection::answer_hits`] answers with.
    #[must_use]
    pub fn hot(&self) -> Option<&Arc<HotPath>> {
        self.hot.as_ref()
    }
}

type Answer = Result<HttpResponse, HttpError>;

impl hyper::service::Service<Request<Incoming>> for HotPathService {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = Either<Ready<Answer>, BoxFuture<'static, Answer>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if let Some(resp) = refusal(&req) {
            return Either::Left(ready(Ok(resp)));
        }
        if unframed_upload(&req) {
            let full = self.full.clone();
            return Either::Right(Box::pin(async move {
                match with_known_length(req).await {
                    Ok(req) => full.call(req).await,
                    Err(resp) => Ok(resp),
                }
            }));
        }
        let Some(hot) = &self.hot else {
            return Either::Right(hyper::service::Service::call(&self.full, req));
        };
        match hot.decide(&RequestHead::of(&req)) {
            Verdict::Answered(hit) => Either::Left(ready(Ok(hit.into_response()))),
            Verdict::Declined => Either::Right(hyper::service::Service::call(&self.full, req)),
            Verdict::Shared(read) => {
                let (hot, full) = (Arc::clone(hot), self.full.clone());
                Either::Right(Box::pin(async move {
                    match hot.answer_shared(read).await {
                        Ok(resp) => Ok(resp),
                        Err(prefetched) => {
                            let mut req = req;
                            req.extensions_mut().insert(prefetched);
                            hyper::service::Service::call(&full, req).await
                        }
                    }
                }))
            }
        }
    }
}
