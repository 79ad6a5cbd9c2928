//! Forwarded requests (everything but the cached reads): the origin answers as it would to
//! the client, and what the request changed is invalidated before the client gets that
//! answer. A plain PutObject's bytes are copied aside while they stream to the origin and
//! become the new entry (write-through).
//!
//! Like [`super::write`], a changing request runs in a task of its own, so a client that
//! disconnects cannot leave the cache holding an object the origin already replaced.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, Response, header};
use http_body_util::{BodyExt, Limited};
use s3s::dto::{ETag, StreamingBlob};
use s3s::{Body, S3Error, S3ErrorCode, S3Result};

use super::Engine;
use super::body::Capture;
use super::store::Target;
use crate::origin::outgoing::Outgoing;

/// What a forwarded request changes in the cache.
#[derive(Debug)]
pub enum Writes {
    /// Nothing: the answer streams straight through.
    Nothing,
    /// These objects are invalidated once the origin has answered.
    Objects(Vec<Target>),
    /// This object is replaced by the request's body (written through when it qualifies).
    Put(Target),
}

/// Answers to writes are small XML documents; anything larger is not an S3 write answer.
const MAX_WRITE_ANSWER: usize = 16 * 1024 * 1024;

/// SSE-C objects cannot be answered without the client's key; tagged uploads make GET report
/// a tag count the HEAD behind write-through does not show.
fn excluded_from_write_through(headers: &HeaderMap) -> bool {
    headers.contains_key("x-amz-server-side-encryption-customer-algorithm") || headers.contains_key("x-amz-tagging")
}

impl Engine {
    /// Forwards `out` to the origin as `operation`, then invalidates what `writes` names.
    ///
    /// # Errors
    /// When the origin cannot be reached; the origin's own errors are answers (`Ok`).
    pub async fn forward(
        self: &Arc<Self>,
        operation: &'static str,
        writes: Writes,
        mut out: Outgoing,
    ) -> S3Result<Response<Body>> {
        if matches!(writes, Writes::Nothing) {
            return self.origin.forward(operation, out).await;
        }
        let capture = match &writes {
            Writes::Put(_) => self.capture_for(&out.headers),
            _ => None,
        };
        // The copy's bytes come out of the in-flight budget; without room, no write-through.
        let capture = capture.and_then(|(c, len)| self.in_flight.try_take(len).map(|held| (c, len, held)));
        if let Some((capture, _, _)) = &capture {
            let body = std::mem::take(&mut out.body);
            out.body = Body::from(capture.tee(StreamingBlob::from(body)));
        }
        let engine = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = match engine.origin.forward(operation, out).await {
                // CopyObject and CompleteMultipartUpload may report an error after a 200:
                // the write is settled when the answer's body is.
                Ok(resp) => settled(resp).await,
                Err(e) => Err(e),
            };
            // Invalidate even when the origin failed: a timeout or 5xx may still have applied.
            match writes {
                Writes::Put(target) => {
                    let (sequence, token) = engine.invalidate(operation, &target).await;
                    if let (Ok(resp), Some((capture, len, _held)), Some(token)) = (&result, capture, token)
                        && resp.status().is_success()
                        && let Some(bytes) = capture.take().filter(|b| b.len() as u64 == len)
                    {
                        let etag = resp
                            .headers()
                            .get(header::ETAG)
                            .and_then(|v| ETag::parse_http_header(v.as_bytes()).ok());
                        engine
                            .write_through(&target.key, etag.as_ref().map(ETag::value), bytes, sequence, token)
                            .await;
                    }
                }
                Writes::Objects(targets) if !targets.is_empty() => {
                    engine.invalidate_all(operation, &targets).await;
                }
                Writes::Objects(_) | Writes::Nothing => {}
            }
            result
        });
        task.await.unwrap_or_else(|e| {
            Err(S3Error::with_message(
                S3ErrorCode::InternalError,
                format!("write task failed: {e}"),
            ))
        })
    }

    /// A capture of a PutObject body that can become an entry, with its announced length.
    fn capture_for(&self, headers: &HeaderMap) -> Option<(Capture, u64)> {
        let len = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())?;
        if len > self.max_object_size() || excluded_from_write_through(headers) {
            return None;
        }
        usize::try_from(len).ok().map(|n| (Capture::new(n), len))
    }
}

/// The answer with its whole body read, so the write it reports is complete.
async fn settled(resp: Response<Body>) -> S3Result<Response<Body>> {
    let (parts, body) = resp.into_parts();
    let bytes: Bytes = Limited::new(body, MAX_WRITE_ANSWER)
        .collect()
        .await
        .map_err(|e| {
            S3Error::with_message(
                S3ErrorCode::InternalError,
                format!("the origin's answer to a write could not be read: {e}"),
            )
        })?
        .to_bytes();
    Ok(Response::from_parts(parts, Body::from(bytes)))
}
