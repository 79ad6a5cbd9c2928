//! What a cache entry holds: the object's bytes and every piece of metadata needed to answer
//! GetObject and HeadObject exactly as the origin would.

use std::sync::OnceLock;
use std::time::SystemTime;

use bytes::Bytes;
use s3s::dto::{ETag, GetObjectOutput, HeadObjectOutput, Metadata, ServerSideEncryption, StorageClass, Timestamp};

/// Response metadata of one object version, as the origin returned it.
///
/// Per-request fields (request id, request-charged, Content-Range) are not part of it; they
/// are filled in for each response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectMeta {
    /// Size of the whole object in bytes.
    pub size: u64,
    /// Entity tag, compared by conditional requests.
    pub e_tag: Option<ETag>,
    /// Last-Modified, compared by If-Modified-Since / If-Unmodified-Since.
    pub last_modified: Option<Timestamp>,
    /// Content-Type.
    pub content_type: Option<String>,
    /// Content-Encoding.
    pub content_encoding: Option<String>,
    /// Content-Disposition.
    pub content_disposition: Option<String>,
    /// Content-Language.
    pub content_language: Option<String>,
    /// Cache-Control.
    pub cache_control: Option<String>,
    /// Expires.
    pub expires: Option<Timestamp>,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: Option<Metadata>,
    /// `x-amz-storage-class`.
    pub storage_class: Option<StorageClass>,
    /// `x-amz-version-id`.
    pub version_id: Option<String>,
    /// `x-amz-server-side-encryption`.
    pub server_side_encryption: Option<ServerSideEncryption>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    pub ssekms_key_id: Option<String>,
    /// `x-amz-server-side-encryption-bucket-key-enabled`.
    pub bucket_key_enabled: Option<bool>,
    /// `x-amz-website-redirect-location`.
    pub website_redirect_location: Option<String>,
    /// `x-amz-expiration` (lifecycle rule that applies).
    pub expiration: Option<String>,
    /// `x-amz-missing-meta`.
    pub missing_meta: Option<i32>,
    /// `x-amz-mp-parts-count`.
    pub parts_count: Option<i32>,
    /// `x-amz-tagging-count`.
    pub tag_count: Option<i32>,
    /// `x-amz-replication-status`.
    pub replication_status: Option<s3s::dto::ReplicationStatus>,
    /// `x-amz-restore`.
    pub restore: Option<String>,
    /// `x-amz-object-lock-mode`.
    pub object_lock_mode: Option<s3s::dto::ObjectLockMode>,
    /// `x-amz-object-lock-retain-until-date`.
    pub object_lock_retain_until_date: Option<Timestamp>,
    /// `x-amz-object-lock-legal-hold`.
    pub object_lock_legal_hold_status: Option<s3s::dto::ObjectLockLegalHoldStatus>,
    /// `Accept-Ranges`.
    pub accept_ranges: Option<String>,
    /// `x-amz-checksum-crc32` (sent only to requests with checksum mode enabled).
    pub checksum_crc32: Option<String>,
    /// `x-amz-checksum-crc32c`.
    pub checksum_crc32c: Option<String>,
    /// `x-amz-checksum-crc64nvme`.
    pub checksum_crc64nvme: Option<String>,
    /// `x-amz-checksum-sha1`.
    pub checksum_sha1: Option<String>,
    /// `x-amz-checksum-sha256`.
    pub checksum_sha256: Option<String>,
    /// `x-amz-checksum-type`.
    pub checksum_type: Option<s3s::dto::ChecksumType>,
}

/// A cached object: metadata plus the whole body, shared without copying; metadata only, for
/// an object whose bytes are cached as blocks ([`crate::model::block`]); or the origin's "no such
/// key" for it (negative caching).
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Metadata to answer GET/HEAD with.
    pub meta: ObjectMeta,
    /// The object's bytes.
    pub body: Bytes,
    /// When the origin last confirmed this version (read it, or answered 304 to it). The entry
    /// is fresh for the key's TTL from then on.
    pub validated_at: SystemTime,
    /// The origin answered NoSuchKey: this entry stands for the object's absence.
    pub missing: bool,
    /// The body is not here (it is empty): the object's bytes are cached as blocks, keyed
    /// by this metadata's ETag.
    pub in_blocks: bool,
    /// The hot path's GetObject response headers for this entry, rendered on its first hit.
    pub hit_headers: HitHeaders,
}

/// The hot path's response headers, rendered once per entry and view (GET or HEAD, with or
/// without checksums) and reused by every hit it answers (`None` inside: the entry cannot be
/// rendered and takes the full path). Derived from the metadata, so a copy starts empty and
/// all entries compare equal on it.
#[derive(Default)]
pub struct HitHeaders {
    views: [OnceLock<Option<RenderedHit>>; 4],
}

/// One view's answer headers, in both forms the hot path writes.
#[derive(Debug)]
pub struct RenderedHit {
    /// The headers, for answers written by hyper.
    pub headers: http::HeaderMap,
    /// The status line and the same headers as HTTP/1.1 bytes (`name: value` lines in the
    /// map's order), for answers written straight to the socket.
    pub wire: Bytes,
}

impl HitHeaders {
    /// The headers of the view (`get`, `checksums`), rendered by `render` on first use.
    pub fn get_or_render(
        &self,
        get: bool,
        checksums: bool,
        render: impl FnOnce() -> Option<RenderedHit>,
    ) -> Option<&RenderedHit> {
        self.views[usize::from(get) * 2 + usize::from(checksums)]
            .get_or_init(render)
            .as_ref()
    }
}

impl Clone for HitHeaders {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for HitHeaders {
    fn eq(&self, _other: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for HitHeaders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HitHeaders")
    }
}

/// The current time at millisecond resolution: what a shared tier's record keeps, so an entry
/// reads back from any tier exactly as it was stored.
#[must_use]
pub fn now_millis() -> SystemTime {
    let now = SystemTime::now();
    let since = now.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// Fixed per-entry bookkeeping added to the body size when weighing entries (metadata,
/// index and allocator overhead, measured roughly).
pub const ENTRY_OVERHEAD_BYTES: u64 = 512;

impl Entry {
    /// An object entry validated now.
    #[must_use]
    pub fn new(meta: ObjectMeta, body: Bytes) -> Self {
        Self {
            meta,
            body,
            validated_at: now_millis(),
            missing: false,
            in_blocks: false,
            hit_headers: HitHeaders::default(),
        }
    }

    /// The metadata of an object whose bytes are cached as blocks, validated now.
    #[must_use]
    pub fn in_blocks(meta: ObjectMeta) -> Self {
        Self {
            in_blocks: true,
            ..Self::new(meta, Bytes::new())
        }
    }

    /// True when the entry holds the object's whole body.
    #[must_use]
    pub fn has_body(&self) -> bool {
        !self.missing && !self.in_blocks
    }

    /// A negative entry: the origin said the object does not exist.
    #[must_use]
    pub fn missing() -> Self {
        Self {
            meta: ObjectMeta::default(),
            body: Bytes::new(),
            validated_at: now_millis(),
            missing: true,
            in_blocks: false,
            hit_headers: HitHeaders::default(),
        }
    }

    /// The same object, confirmed by the origin now.
    #[must_use]
    pub fn revalidated(&self) -> Self {
        Self {
            validated_at: now_millis(),
            ..self.clone()
        }
    }

    /// Bytes this entry is charged against a byte-weighted tier's capacity.
    #[must_use]
    pub fn weight(&self) -> u64 {
        self.body.len() as u64 + ENTRY_OVERHEAD_BYTES
    }
}

impl ObjectMeta {
    /// Takes the metadata of a whole-object GetObject answer (the body is left in `out`).
    #[must_use]
    pub fn from_get_output(out: &GetObjectOutput) -> Self {
        Self {
            size: out.content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            tag_count: out.tag_count,
            e_tag: out.e_tag.clone(),
            last_modified: out.last_modified.clone(),
            content_type: out.content_type.clone(),
            content_encoding: out.content_encoding.clone(),
            content_disposition: out.content_disposition.clone(),
            content_language: out.content_language.clone(),
            cache_control: out.cache_control.clone(),
            expires: out.expires.clone(),
            metadata: out.metadata.clone(),
            storage_class: out.storage_class.clone(),
            version_id: out.version_id.clone(),
            server_side_encryption: out.server_side_encryption.clone(),
            ssekms_key_id: out.ssekms_key_id.clone(),
            bucket_key_enabled: out.bucket_key_enabled,
            website_redirect_location: out.website_redirect_location.clone(),
            expiration: out.expiration.clone(),
            missing_meta: out.missing_meta,
            parts_count: out.parts_count,
            replication_status: out.replication_status.clone(),
            restore: out.restore.clone(),
            object_lock_mode: out.object_lock_mode.clone(),
            object_lock_retain_until_date: out.object_lock_retain_until_date.clone(),
            object_lock_legal_hold_status: out.object_lock_legal_hold_status.clone(),
            accept_ranges: out.accept_ranges.clone(),
            checksum_crc32: out.checksum_crc32.clone(),
            checksum_crc32c: out.checksum_crc32c.clone(),
            checksum_crc64nvme: out.checksum_crc64nvme.clone(),
            checksum_sha1: out.checksum_sha1.clone(),
            checksum_sha256: out.checksum_sha256.clone(),
            checksum_type: out.checksum_type.clone(),
        }
    }

    /// Takes the metadata of a HeadObject answer. HEAD does not report the tag count, so the
    /// result has none.
    #[must_use]
    pub fn from_head_output(out: &HeadObjectOutput) -> Self {
        Self {
            size: out.content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
            tag_count: None,
            e_tag: out.e_tag.clone(),
            last_modified: out.last_modified.clone(),
            content_type: out.content_type.clone(),
            content_encoding: out.content_encoding.clone(),
            content_disposition: out.content_disposition.clone(),
            content_language: out.content_language.clone(),
            cache_control: out.cache_control.clone(),
            expires: out.expires.clone(),
            metadata: out.metadata.clone(),
            storage_class: out.storage_class.clone(),
            version_id: out.version_id.clone(),
            server_side_encryption: out.server_side_encryption.clone(),
            ssekms_key_id: out.ssekms_key_id.clone(),
            bucket_key_enabled: out.bucket_key_enabled,
            website_redirect_location: out.website_redirect_location.clone(),
            expiration: out.expiration.clone(),
            missing_meta: out.missing_meta,
            parts_count: out.parts_count,
            replication_status: out.replication_status.clone(),
            restore: out.restore.clone(),
            object_lock_mode: out.object_lock_mode.clone(),
            object_lock_retain_until_date: out.object_lock_retain_until_date.clone(),
            object_lock_legal_hold_status: out.object_lock_legal_hold_status.clone(),
            accept_ranges: out.accept_ranges.clone(),
            checksum_crc32: out.checksum_crc32.clone(),
            checksum_crc32c: out.checksum_crc32c.clone(),
            checksum_crc64nvme: out.checksum_crc64nvme.clone(),
            checksum_sha1: out.checksum_sha1.clone(),
            checksum_sha256: out.checksum_sha256.clone(),
            checksum_type: out.checksum_type.clone(),
        }
    }

    /// True when the origin reported any object checksum.
    #[must_use]
    pub fn has_checksums(&self) -> bool {
        self.checksum_crc32.is_some()
            || self.checksum_crc32c.is_some()
            || self.checksum_crc64nvme.is_some()
            || self.checksum_sha1.is_some()
            || self.checksum_sha256.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_output() -> GetObjectOutput {
        let mut metadata = Metadata::default();
        metadata.insert("color".into(), "blue".into());
        GetObjectOutput {
            content_length: Some(4096),
            e_tag: Some(ETag::Strong("abc".into())),
            last_modified: Some(Timestamp::from(std::time::SystemTime::UNIX_EPOCH)),
            content_type: Some("text/plain".into()),
            content_encoding: Some("gzip".into()),
            content_disposition: Some("attachment".into()),
            content_language: Some("en".into()),
            cache_control: Some("max-age=60".into()),
            metadata: Some(metadata),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            version_id: Some("v1".into()),
            tag_count: Some(2),
            accept_ranges: Some("bytes".into()),
            ..GetObjectOutput::default()
        }
    }

    #[test]
    fn get_output_fields_are_taken() {
        let meta = ObjectMeta::from_get_output(&sample_output());
        assert_eq!(meta.size, 4096);
        assert_eq!(meta.e_tag, Some(ETag::Strong("abc".into())));
        assert_eq!(meta.tag_count, Some(2));
        assert_eq!(meta.cache_control.as_deref(), Some("max-age=60"));
        assert_eq!(
            meta.metadata.as_ref().and_then(|m| m.get("color")).map(String::as_str),
            Some("blue")
        );
    }

    #[test]
    fn head_output_carries_no_tag_count() {
        let out = sample_output();
        let head = HeadObjectOutput {
            content_length: out.content_length,
            e_tag: out.e_tag.clone(),
            content_type: out.content_type.clone(),
            version_id: out.version_id.clone(),
            ..HeadObjectOutput::default()
        };
        let meta = ObjectMeta::from_head_output(&head);
        assert_eq!((meta.size, meta.tag_count), (4096, None));
        assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
        assert_eq!(meta.version_id.as_deref(), Some("v1"));
    }

    #[test]
    fn weight_counts_body_and_overhead() {
        let e = Entry::new(ObjectMeta::default(), Bytes::from_static(&[0; 100]));
        assert_eq!(e.weight(), 100 + ENTRY_OVERHEAD_BYTES);
    }
}
