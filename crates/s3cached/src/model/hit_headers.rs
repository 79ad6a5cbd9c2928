//! The response headers of an answer from the cache, rendered from an entry's metadata: one
//! renderer for both doors. The hot path sends them as they are (keeping its variants on the
//! entry, also as HTTP/1.1 bytes, see [`wire`]); the full read path hands them to s3s as the response's headers. They are the
//! headers s3s writes for the same GetObject or HeadObject output.

use std::ops;

use http::{HeaderMap, HeaderName, HeaderValue, header};
use s3s::dto::{Timestamp, TimestampFormat};

use crate::model::entry::{ObjectMeta, RenderedHit};
use crate::model::range;
use crate::model::read_request::Overrides;

/// Which answer the headers are for.
#[derive(Debug, Clone, Copy)]
pub struct HitView<'a> {
    /// GetObject (`true`) or HeadObject: only GET reports the tag count.
    pub get: bool,
    /// The request asked for checksums (sent only with whole-object answers, as S3 does).
    pub checksums: bool,
    /// The span of a ranged answer (Content-Range, and Content-Length of the span).
    pub span: Option<&'a ops::Range<u64>>,
    /// The request's `response-*` overrides.
    pub overrides: &'a Overrides,
}

static NO_OVERRIDES: Overrides = Overrides {
    cache_control: None,
    content_disposition: None,
    content_encoding: None,
    content_language: None,
    content_type: None,
    expires: None,
};

impl HitView<'static> {
    /// A whole-object answer without overrides (what the hot path serves).
    #[must_use]
    pub fn plain(get: bool, checksums: bool) -> Self {
        Self {
            get,
            checksums,
            span: None,
            overrides: &NO_OVERRIDES,
        }
    }
}

static BUCKET_KEY_ENABLED: HeaderName = HeaderName::from_static("x-amz-server-side-encryption-bucket-key-enabled");
static CHECKSUM_CRC32: HeaderName = HeaderName::from_static("x-amz-checksum-crc32");
static CHECKSUM_CRC32C: HeaderName = HeaderName::from_static("x-amz-checksum-crc32c");
static CHECKSUM_CRC64NVME: HeaderName = HeaderName::from_static("x-amz-checksum-crc64nvme");
static CHECKSUM_SHA1: HeaderName = HeaderName::from_static("x-amz-checksum-sha1");
static CHECKSUM_SHA256: HeaderName = HeaderName::from_static("x-amz-checksum-sha256");
static CHECKSUM_TYPE: HeaderName = HeaderName::from_static("x-amz-checksum-type");
static EXPIRATION: HeaderName = HeaderName::from_static("x-amz-expiration");
static MISSING_META: HeaderName = HeaderName::from_static("x-amz-missing-meta");
static LEGAL_HOLD: HeaderName = HeaderName::from_static("x-amz-object-lock-legal-hold");
static LOCK_MODE: HeaderName = HeaderName::from_static("x-amz-object-lock-mode");
static RETAIN_UNTIL: HeaderName = HeaderName::from_static("x-amz-object-lock-retain-until-date");
static PARTS_COUNT: HeaderName = HeaderName::from_static("x-amz-mp-parts-count");
static REPLICATION_STATUS: HeaderName = HeaderName::from_static("x-amz-replication-status");
static RESTORE: HeaderName = HeaderName::from_static("x-amz-restore");
static KMS_KEY_ID: HeaderName = HeaderName::from_static("x-amz-server-side-encryption-aws-kms-key-id");
static SERVER_SIDE_ENCRYPTION: HeaderName = HeaderName::from_static("x-amz-server-side-encryption");
static STORAGE_CLASS: HeaderName = HeaderName::from_static("x-amz-storage-class");
static TAGGING_COUNT: HeaderName = HeaderName::from_static("x-amz-tagging-count");
static VERSION_ID: HeaderName = HeaderName::from_static("x-amz-version-id");
static REDIRECT_LOCATION: HeaderName = HeaderName::from_static("x-amz-website-redirect-location");

/// Collects headers; the first value that is not a valid header value spoils the whole map.
struct Headers {
    map: HeaderMap,
    valid: bool,
}

impl Headers {
    fn put(&mut self, name: &HeaderName, value: Option<HeaderValue>) {
        match value {
            Some(v) => {
                self.map.insert(name.clone(), v);
            }
            None => self.valid = false,
        }
    }

    fn text(&mut self, name: &HeaderName, value: Option<&str>) {
        if let Some(v) = value {
            self.put(name, HeaderValue::from_str(v).ok());
        }
    }

    fn number(&mut self, name: &HeaderName, value: Option<i32>) {
        if let Some(v) = value {
            self.put(name, Some(HeaderValue::from(v)));
        }
    }

    fn time(&mut self, name: &HeaderName, value: Option<&Timestamp>, format: TimestampFormat) {
        if let Some(t) = value {
            self.put(name, timestamp(t, format));
        }
    }
}

/// Rendered response headers.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The headers.
    pub headers: HeaderMap,
    /// User metadata (`x-amz-meta-*`) was left out because a value needs RFC 2047 encoding,
    /// which s3s applies: the full path hands the metadata to s3s, the hot path declines.
    pub metadata_left_out: bool,
}

impl Rendered {
    /// The headers, when they are the whole answer's.
    #[must_use]
    pub fn complete(self) -> Option<HeaderMap> {
        (!self.metadata_left_out).then_some(self.headers)
    }
}

/// The hot path's headers for a whole-object answer from `meta`, in both forms; `None` when
/// they cannot be the whole answer's (see [`Rendered::complete`]).
#[must_use]
pub fn hit(meta: &ObjectMeta, get: bool, checksums: bool) -> Option<RenderedHit> {
    let headers = render(meta, &HitView::plain(get, checksums))?.complete()?;
    let wire = wire(&headers);
    Some(RenderedHit { headers, wire })
}

/// `200 OK` with `headers` as hyper writes an HTTP/1.1 answer's head, up to (not including)
/// the headers added per answer and the blank line that ends the head.
#[must_use]
pub fn wire(headers: &HeaderMap) -> bytes::Bytes {
    let len = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>();
    let mut out = Vec::with_capacity(WIRE_STATUS_LINE.len() + len);
    out.extend_from_slice(WIRE_STATUS_LINE);
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.into()
}

const WIRE_STATUS_LINE: &[u8] = b"HTTP/1.1 200 OK\r\n";

/// The headers s3s writes for a GetObject (`view.get`) or HeadObject answer from `meta`,
/// without the cache-status header (added per answer); `None` when a value is not a valid
/// header value (s3s would fail the answer too).
#[must_use]
pub fn render(meta: &ObjectMeta, view: &HitView<'_>) -> Option<Rendered> {
    let o = view.overrides;
    let mut h = Headers {
        map: HeaderMap::with_capacity(16),
        valid: true,
    };
    h.text(&header::ACCEPT_RANGES, meta.accept_ranges.as_deref());
    if let Some(v) = meta.bucket_key_enabled {
        h.put(
            &BUCKET_KEY_ENABLED,
            Some(HeaderValue::from_static(if v { "true" } else { "false" })),
        );
    }
    h.text(
        &header::CACHE_CONTROL,
        o.cache_control.as_deref().or(meta.cache_control.as_deref()),
    );
    if view.checksums && view.span.is_none() {
        h.text(&CHECKSUM_CRC32, meta.checksum_crc32.as_deref());
        h.text(&CHECKSUM_CRC32C, meta.checksum_crc32c.as_deref());
        h.text(&CHECKSUM_CRC64NVME, meta.checksum_crc64nvme.as_deref());
        h.text(&CHECKSUM_SHA1, meta.checksum_sha1.as_deref());
        h.text(&CHECKSUM_SHA256, meta.checksum_sha256.as_deref());
        h.text(
            &CHECKSUM_TYPE,
            meta.checksum_type.as_ref().map(s3s::dto::ChecksumType::as_str),
        );
    }
    h.text(
        &header::CONTENT_DISPOSITION,
        o.content_disposition.as_deref().or(meta.content_disposition.as_deref()),
    );
    h.text(
        &header::CONTENT_ENCODING,
        o.content_encoding.as_deref().or(meta.content_encoding.as_deref()),
    );
    h.text(
        &header::CONTENT_LANGUAGE,
        o.content_language.as_deref().or(meta.content_language.as_deref()),
    );
    let length = view.span.map_or(meta.size, |s| s.end - s.start);
    h.put(&header::CONTENT_LENGTH, Some(HeaderValue::from(length)));
    if let Some(span) = view.span {
        h.put(
            &header::CONTENT_RANGE,
            HeaderValue::from_str(&range::content_range(span, meta.size)).ok(),
        );
    }
    h.text(
        &header::CONTENT_TYPE,
        o.content_type.as_deref().or(meta.content_type.as_deref()),
    );
    if let Some(e) = &meta.e_tag {
        h.put(&header::ETAG, e.to_http_header().ok());
    }
    h.text(&EXPIRATION, meta.expiration.as_deref());
    h.time(
        &header::EXPIRES,
        o.expires.as_ref().or(meta.expires.as_ref()),
        TimestampFormat::HttpDate,
    );
    h.time(
        &header::LAST_MODIFIED,
        meta.last_modified.as_ref(),
        TimestampFormat::HttpDate,
    );
    // s3s RFC 2047-encodes values with non-printable or non-ASCII characters.
    let metadata_left_out = meta
        .metadata
        .as_ref()
        .is_some_and(|m| m.values().any(|v| !v.bytes().all(|b| (0x20..0x7f).contains(&b))));
    if let Some(metadata) = meta.metadata.as_ref().filter(|_| !metadata_left_out) {
        for (name, value) in metadata {
            let name = HeaderName::from_bytes(format!("x-amz-meta-{name}").as_bytes()).ok()?;
            h.text(&name, Some(value));
        }
    }
    h.number(&MISSING_META, meta.missing_meta);
    h.text(
        &LEGAL_HOLD,
        meta.object_lock_legal_hold_status
            .as_ref()
            .map(s3s::dto::ObjectLockLegalHoldStatus::as_str),
    );
    h.text(
        &LOCK_MODE,
        meta.object_lock_mode.as_ref().map(s3s::dto::ObjectLockMode::as_str),
    );
    h.time(
        &RETAIN_UNTIL,
        meta.object_lock_retain_until_date.as_ref(),
        TimestampFormat::DateTime,
    );
    h.number(&PARTS_COUNT, meta.parts_count);
    h.text(
        &REPLICATION_STATUS,
        meta.replication_status
            .as_ref()
            .map(s3s::dto::ReplicationStatus::as_str),
    );
    h.text(&RESTORE, meta.restore.as_deref());
    h.text(&KMS_KEY_ID, meta.ssekms_key_id.as_deref());
    h.text(
        &SERVER_SIDE_ENCRYPTION,
        meta.server_side_encryption
            .as_ref()
            .map(s3s::dto::ServerSideEncryption::as_str),
    );
    h.text(
        &STORAGE_CLASS,
        meta.storage_class.as_ref().map(s3s::dto::StorageClass::as_str),
    );
    if view.get {
        h.number(&TAGGING_COUNT, meta.tag_count);
    }
    h.text(&VERSION_ID, meta.version_id.as_deref());
    h.text(&REDIRECT_LOCATION, meta.website_redirect_location.as_deref());
    h.valid.then_some(Rendered {
        headers: h.map,
        metadata_left_out,
    })
}

fn timestamp(t: &Timestamp, format: TimestampFormat) -> Option<HeaderValue> {
    let mut buf = Vec::with_capacity(32);
    t.format(format, &mut buf).ok()?;
    HeaderValue::from_bytes(&buf).ok()
}
