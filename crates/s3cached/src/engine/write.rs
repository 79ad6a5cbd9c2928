//! The write path of the uploads s3s parses itself (browser-form PutObject): the origin first;
//! after it answered, the cache is invalidated and updated with the new bytes before the client
//! gets its answer. Every other write is forwarded as sent, with the same order of origin and
//! cache ([`super::forward`]); both write through with `write_through` below.
//!
//! The origin call and the cache update run in their own task, so a client that disconnects
//! mid-request cannot leave the cache holding an object the origin already replaced.

use std::sync::Arc;

use s3s::dto::{HeadObjectInput, PutObjectInput, PutObjectOutput};
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use tracing::{debug, warn};

use super::Engine;
use super::body::Capture;
use super::store::Target;
use crate::model::entry::{Entry, ObjectMeta};
use crate::model::key::CacheKey;
use crate::origin;
use crate::tier::FillToken;

impl Engine {
    /// PutObject: origin first, then write-through of bodies up to the cacheable size.
    ///
    /// # Errors
    /// The origin's answer, unchanged.
    pub async fn put_object(
        self: &Arc<Self>,
        mut req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let Some(target) = Target::new(&req.input.bucket, &req.input.key, None) else {
            return self.origin.call("PutObject", self.origin.s3().put_object(req)).await;
        };
        let declared = req.input.content_length.and_then(|n| u64::try_from(n).ok());
        let capture = match declared {
            // Tagged uploads are only invalidated: GET reports a tag count that HEAD does not,
            // so a write-through entry could not answer exactly like the origin.
            Some(len)
                if len <= self.max_object_size()
                    && req.input.sse_customer_algorithm.is_none()
                    && req.input.tagging.is_none() =>
            {
                usize::try_from(len).ok().map(Capture::new)
            }
            _ => None,
        };
        if let (Some(capture), Some(body)) = (&capture, req.input.body.take()) {
            req.input.body = Some(capture.tee(body));
        }
        let engine = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = engine
                .origin
                .call("PutObject", engine.origin.s3().put_object(req))
                .await;
            let (sequence, token) = engine.invalidate("PutObject", &target).await;
            if let (Ok(resp), Some(capture), Some(len), Some(token)) = (&result, capture, declared, token)
                && let Some(bytes) = capture.take().filter(|b| b.len() as u64 == len)
            {
                let etag = resp.output.e_tag.as_ref().map(s3s::dto::ETag::value);
                engine.write_through(&target.key, etag, bytes, sequence, token).await;
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

    /// Stores the bytes just written, with the metadata the origin now reports for them
    /// (checksums included, so checksum-mode reads are answered as the origin would).
    /// The origin's HEAD must show the ETag the PUT returned: otherwise another writer came
    /// in between and the entry stays invalidated.
    pub(super) async fn write_through(
        &self,
        key: &CacheKey,
        put_etag: Option<&str>,
        bytes: bytes::Bytes,
        sequence: u64,
        token: FillToken,
    ) {
        let head_input = match HeadObjectInput::builder()
            .bucket(key.bucket().to_owned())
            .key(key.key().to_owned())
            .checksum_mode(Some(s3s::dto::ChecksumMode::from_static(
                s3s::dto::ChecksumMode::ENABLED,
            )))
            .build()
        {
            Ok(input) => input,
            Err(e) => {
                warn!(%key, error = %e, "cannot build HEAD for write-through");
                return;
            }
        };
        let head = match self
            .origin
            .call_read("HeadObject", self.origin.s3().head_object(origin::request(head_input)))
            .await
        {
            Ok(resp) => resp.output,
            Err(e) => {
                debug!(%key, error = %e, "HEAD after PUT failed; entry stays invalidated");
                return;
            }
        };
        let same_version = put_etag.is_some()
            && head.e_tag.as_ref().map(s3s::dto::ETag::value) == put_etag
            && head.content_length.and_then(|n| u64::try_from(n).ok()) == Some(bytes.len() as u64);
        if !same_version || head.sse_customer_algorithm.is_some() {
            debug!(%key, "object changed again after PUT; entry stays invalidated");
            return;
        }
        let meta = ObjectMeta::from_head_output(&head);
        self.store(key.clone(), Arc::new(Entry::new(meta, bytes)), sequence, token)
            .await;
    }

    /// Drops what the cache holds for an object that changed at the origin (an event).
    pub async fn invalidate_object(&self, bucket: &str, key: &str, version: Option<&str>) {
        if let Some(target) = Target::new(bucket, key, version) {
            let _ = self.invalidate("Event", &target).await;
        }
    }
}
