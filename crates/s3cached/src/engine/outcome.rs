//! What a fill ends with, shared by every request that waited for it.

use std::sync::{Arc, Mutex};

use http::StatusCode;
use s3s::dto::GetObjectOutput;
use s3s::{S3Error, S3ErrorCode};

use crate::model::entry::Entry;

/// How a fill ended, shared with every request that waited for it.
#[derive(Clone)]
pub enum FillOutcome {
    /// The whole object was read (and stored unless a write overtook the fill).
    Cached(Arc<Entry>),
    /// The object may not be buffered (too large, or not cacheable): the first request to
    /// take the origin's answer streams it, the others ask the origin themselves.
    Stream(Arc<Mutex<Option<GetObjectOutput>>>),
    /// The origin answered with an error, which every waiter gets.
    Failed(OriginFailure),
}

/// An origin error, kept so it can be answered to several waiters.
#[derive(Clone, Debug)]
pub struct OriginFailure {
    code: S3ErrorCode,
    message: Option<String>,
    status: Option<StatusCode>,
    request_id: Option<String>,
}

impl OriginFailure {
    /// The failure `e` stands for.
    #[must_use]
    pub fn of(e: &S3Error) -> Self {
        Self {
            code: e.code().clone(),
            message: e.message().map(str::to_owned),
            status: e.status_code(),
            request_id: e.request_id().map(str::to_owned),
        }
    }

    /// An internal error with `message`.
    #[must_use]
    pub fn internal(message: String) -> Self {
        Self {
            code: S3ErrorCode::InternalError,
            message: Some(message),
            status: None,
            request_id: None,
        }
    }

    /// The error to answer a waiter with.
    #[must_use]
    pub fn to_error(&self) -> S3Error {
        let mut e = S3Error::new(self.code.clone());
        if let Some(m) = &self.message {
            e.set_message(m.clone());
        }
        if let Some(s) = self.status {
            e.set_status_code(s);
        }
        if let Some(id) = &self.request_id {
            e.set_request_id(id.clone());
        }
        crate::origin::with_request_id_header(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_failure_keeps_the_origins_request_id_in_body_and_header() {
        let mut origin = S3Error::with_message(S3ErrorCode::NoSuchKey, "gone");
        origin.set_status_code(StatusCode::NOT_FOUND);
        origin.set_request_id("REQ123");
        let answered = OriginFailure::of(&origin).to_error();
        assert_eq!(answered.code(), &S3ErrorCode::NoSuchKey);
        assert_eq!(answered.status_code(), Some(StatusCode::NOT_FOUND));
        assert_eq!(answered.request_id(), Some("REQ123"));
        let headers = answered.headers().cloned().unwrap_or_default();
        assert_eq!(
            headers.get("x-amz-request-id").map(|v| v.as_bytes()),
            Some(&b"REQ123"[..])
        );
        assert_eq!(
            headers.get("content-type").map(|v| v.as_bytes()),
            Some(&b"application/xml"[..])
        );
        // s3cached's own failures have no origin request id to show.
        assert!(OriginFailure::internal("x".to_owned()).to_error().headers().is_none());
    }
}
