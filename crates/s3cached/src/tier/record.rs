//! The compact binary record that stores an entry's metadata in a shared tier
//! (`{bucket:key}:m` in Redis). Fixed field order, length-prefixed strings, a magic and a
//! version byte up front so a future layout can be told apart.

use s3s::dto::{ETag, Metadata, Timestamp};

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::entry::{Entry, ObjectMeta};

const MAGIC: &[u8; 4] = b"S3C\x01";

/// A record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// Not a record of this version.
    #[error("bad magic or version")]
    Magic,
    /// The record ended early or has trailing bytes.
    #[error("truncated or oversized record at byte {0}")]
    Length(usize),
    /// A string is not UTF-8.
    #[error("invalid UTF-8 at byte {0}")]
    Utf8(usize),
    /// A timestamp is out of range.
    #[error("invalid timestamp at byte {0}")]
    Time(usize),
}

struct Writer(Vec<u8>);

impl Writer {
    fn flag(&mut self, present: bool) {
        self.0.push(u8::from(present));
    }

    fn str(&mut self, s: &str) {
        // Header values and metadata are far below 4 GiB; longer strings are cut to fit.
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(&s.as_bytes()[..len as usize]);
    }

    fn opt_str(&mut self, s: Option<&str>) {
        self.flag(s.is_some());
        if let Some(s) = s {
            self.str(s);
        }
    }

    fn opt_i32(&mut self, v: Option<i32>) {
        self.flag(v.is_some());
        if let Some(v) = v {
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn opt_bool(&mut self, v: Option<bool>) {
        self.0.push(match v {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        });
    }

    fn opt_time(&mut self, t: Option<&Timestamp>) {
        self.flag(t.is_some());
        if let Some(t) = t {
            let nanos = time::OffsetDateTime::from(t.clone()).unix_timestamp_nanos();
            self.0.extend_from_slice(&nanos.to_le_bytes());
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(RecordError::Length(self.pos))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], RecordError> {
        let at = self.pos;
        self.take(N)?.try_into().map_err(|_| RecordError::Length(at))
    }

    fn flag(&mut self) -> Result<bool, RecordError> {
        let at = self.pos;
        match self.take(1)?[0] {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(RecordError::Length(at)),
        }
    }

    fn str(&mut self) -> Result<String, RecordError> {
        let len = u32::from_le_bytes(self.array()?) as usize;
        let at = self.pos;
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| RecordError::Utf8(at))
    }

    fn opt_str(&mut self) -> Result<Option<String>, RecordError> {
        if self.flag()? { self.str().map(Some) } else { Ok(None) }
    }

    fn opt_i32(&mut self) -> Result<Option<i32>, RecordError> {
        if self.flag()? {
            Ok(Some(i32::from_le_bytes(self.array()?)))
        } else {
            Ok(None)
        }
    }

    fn opt_bool(&mut self) -> Result<Option<bool>, RecordError> {
        let at = self.pos;
        match self.take(1)?[0] {
            0 => Ok(None),
            1 => Ok(Some(false)),
            2 => Ok(Some(true)),
            _ => Err(RecordError::Length(at)),
        }
    }

    fn opt_time(&mut self) -> Result<Option<Timestamp>, RecordError> {
        if !self.flag()? {
            return Ok(None);
        }
        let at = self.pos;
        let nanos = i128::from_le_bytes(self.array()?);
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .map(|t| Some(Timestamp::from(t)))
            .map_err(|_| RecordError::Time(at))
    }
}

/// Everything about an entry except its body.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The object's metadata.
    pub meta: ObjectMeta,
    /// When the origin last confirmed the entry.
    pub validated_at: SystemTime,
    /// A negative entry.
    pub missing: bool,
    /// The object's bytes are cached as blocks, not with the record.
    pub in_blocks: bool,
}

impl Header {
    /// The header of `entry`.
    #[must_use]
    pub fn of(entry: &Entry) -> Self {
        Self {
            meta: entry.meta.clone(),
            validated_at: entry.validated_at,
            missing: entry.missing,
            in_blocks: entry.in_blocks,
        }
    }

    /// The entry made of this header and `body`.
    #[must_use]
    pub fn with_body(self, body: bytes::Bytes) -> Entry {
        Entry {
            meta: self.meta,
            body,
            validated_at: self.validated_at,
            missing: self.missing,
            in_blocks: self.in_blocks,
            hit_headers: crate::model::entry::HitHeaders::default(),
        }
    }
}

/// Encodes an entry's header as a record.
#[must_use]
pub fn encode(header: &Header) -> Vec<u8> {
    let meta = &header.meta;
    let mut w = Writer(Vec::with_capacity(256));
    w.0.extend_from_slice(MAGIC);
    w.0.extend_from_slice(&meta.size.to_le_bytes());
    match &meta.e_tag {
        None => w.0.push(0),
        Some(ETag::Strong(v)) => {
            w.0.push(1);
            w.str(v);
        }
        Some(ETag::Weak(v)) => {
            w.0.push(2);
            w.str(v);
        }
    }
    w.opt_time(meta.last_modified.as_ref());
    w.opt_time(meta.expires.as_ref());
    w.opt_time(meta.object_lock_retain_until_date.as_ref());
    // The string-like fields, in record order.
    w.opt_str(meta.content_type.as_deref());
    w.opt_str(meta.content_encoding.as_deref());
    w.opt_str(meta.content_disposition.as_deref());
    w.opt_str(meta.content_language.as_deref());
    w.opt_str(meta.cache_control.as_deref());
    w.opt_str(meta.storage_class.as_ref().map(s3s::dto::StorageClass::as_str));
    w.opt_str(meta.version_id.as_deref());
    w.opt_str(
        meta.server_side_encryption
            .as_ref()
            .map(s3s::dto::ServerSideEncryption::as_str),
    );
    w.opt_str(meta.ssekms_key_id.as_deref());
    w.opt_str(meta.website_redirect_location.as_deref());
    w.opt_str(meta.expiration.as_deref());
    w.opt_str(
        meta.replication_status
            .as_ref()
            .map(s3s::dto::ReplicationStatus::as_str),
    );
    w.opt_str(meta.restore.as_deref());
    w.opt_str(meta.object_lock_mode.as_ref().map(s3s::dto::ObjectLockMode::as_str));
    w.opt_str(
        meta.object_lock_legal_hold_status
            .as_ref()
            .map(s3s::dto::ObjectLockLegalHoldStatus::as_str),
    );
    w.opt_str(meta.accept_ranges.as_deref());
    w.opt_str(meta.checksum_crc32.as_deref());
    w.opt_str(meta.checksum_crc32c.as_deref());
    w.opt_str(meta.checksum_crc64nvme.as_deref());
    w.opt_str(meta.checksum_sha1.as_deref());
    w.opt_str(meta.checksum_sha256.as_deref());
    w.opt_str(meta.checksum_type.as_ref().map(s3s::dto::ChecksumType::as_str));
    w.opt_bool(meta.bucket_key_enabled);
    w.opt_i32(meta.missing_meta);
    w.opt_i32(meta.parts_count);
    w.opt_i32(meta.tag_count);
    w.flag(meta.metadata.is_some());
    if let Some(m) = &meta.metadata {
        let mut pairs: Vec<_> = m.iter().collect();
        pairs.sort();
        w.0.extend_from_slice(&u32::try_from(pairs.len()).unwrap_or(u32::MAX).to_le_bytes());
        for (k, v) in pairs {
            w.str(k);
            w.str(v);
        }
    }
    let millis = header
        .validated_at
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    w.0.extend_from_slice(&millis.to_le_bytes());
    // The entry's kind; records written before blocks existed hold only 0 or 1 here.
    w.0.push(if header.missing {
        KIND_MISSING
    } else if header.in_blocks {
        KIND_IN_BLOCKS
    } else {
        KIND_OBJECT
    });
    w.0
}

const KIND_OBJECT: u8 = 0;
const KIND_MISSING: u8 = 1;
const KIND_IN_BLOCKS: u8 = 2;

/// Decodes a record made by [`encode`].
///
/// # Errors
/// [`RecordError`] when `buf` is not a complete record of this version.
pub fn decode(buf: &[u8]) -> Result<Header, RecordError> {
    let mut r = Reader { buf, pos: 0 };
    if r.take(4).map_err(|_| RecordError::Magic)? != MAGIC {
        return Err(RecordError::Magic);
    }
    let mut meta = ObjectMeta {
        size: u64::from_le_bytes(r.array()?),
        ..ObjectMeta::default()
    };
    let at = r.pos;
    meta.e_tag = match r.take(1)?[0] {
        0 => None,
        1 => Some(ETag::Strong(r.str()?)),
        2 => Some(ETag::Weak(r.str()?)),
        _ => return Err(RecordError::Length(at)),
    };
    meta.last_modified = r.opt_time()?;
    meta.expires = r.opt_time()?;
    meta.object_lock_retain_until_date = r.opt_time()?;
    meta.content_type = r.opt_str()?;
    meta.content_encoding = r.opt_str()?;
    meta.content_disposition = r.opt_str()?;
    meta.content_language = r.opt_str()?;
    meta.cache_control = r.opt_str()?;
    meta.storage_class = r.opt_str()?.map(s3s::dto::StorageClass::from);
    meta.version_id = r.opt_str()?;
    meta.server_side_encryption = r.opt_str()?.map(s3s::dto::ServerSideEncryption::from);
    meta.ssekms_key_id = r.opt_str()?;
    meta.website_redirect_location = r.opt_str()?;
    meta.expiration = r.opt_str()?;
    meta.replication_status = r.opt_str()?.map(s3s::dto::ReplicationStatus::from);
    meta.restore = r.opt_str()?;
    meta.object_lock_mode = r.opt_str()?.map(s3s::dto::ObjectLockMode::from);
    meta.object_lock_legal_hold_status = r.opt_str()?.map(s3s::dto::ObjectLockLegalHoldStatus::from);
    meta.accept_ranges = r.opt_str()?;
    meta.checksum_crc32 = r.opt_str()?;
    meta.checksum_crc32c = r.opt_str()?;
    meta.checksum_crc64nvme = r.opt_str()?;
    meta.checksum_sha1 = r.opt_str()?;
    meta.checksum_sha256 = r.opt_str()?;
    meta.checksum_type = r.opt_str()?.map(s3s::dto::ChecksumType::from);
    meta.bucket_key_enabled = r.opt_bool()?;
    meta.missing_meta = r.opt_i32()?;
    meta.parts_count = r.opt_i32()?;
    meta.tag_count = r.opt_i32()?;
    if r.flag()? {
        let n = u32::from_le_bytes(r.array()?);
        let mut m = Metadata::default();
        for _ in 0..n {
            let k = r.str()?;
            let v = r.str()?;
            m.insert(k, v);
        }
        meta.metadata = Some(m);
    }
    let validated_at = UNIX_EPOCH + Duration::from_millis(u64::from_le_bytes(r.array()?));
    let at = r.pos;
    let (missing, in_blocks) = match r.take(1)?[0] {
        KIND_OBJECT => (false, false),
        KIND_MISSING => (true, false),
        KIND_IN_BLOCKS => (false, true),
        _ => return Err(RecordError::Length(at)),
    };
    if r.pos != buf.len() {
        return Err(RecordError::Length(r.pos));
    }
    Ok(Header {
        meta,
        validated_at,
        missing,
        in_blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn full() -> ObjectMeta {
        let mut metadata = Metadata::default();
        metadata.insert("color".into(), "blue".into());
        metadata.insert("ünï".into(), "cødé: {x}".into());
        ObjectMeta {
            size: 4096,
            e_tag: Some(ETag::Strong("d41d8cd98f00b204e9800998ecf8427e".into())),
            last_modified: Some(Timestamp::from(
                SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123),
            )),
            expires: Some(Timestamp::from(
                SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            )),
            content_type: Some("text/plain; charset=utf-8".into()),
            content_encoding: Some("gzip".into()),
            content_disposition: Some("attachment; filename=\"a b.txt\"".into()),
            content_language: Some("en".into()),
            cache_control: Some("max-age=60".into()),
            metadata: Some(metadata),
            storage_class: Some("STANDARD".to_owned().into()),
            version_id: Some("3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY".into()),
            server_side_encryption: Some("AES256".to_owned().into()),
            bucket_key_enabled: Some(false),
            missing_meta: Some(0),
            parts_count: Some(3),
            tag_count: Some(2),
            accept_ranges: Some("bytes".into()),
            checksum_crc32: Some("NjowIA==".into()),
            checksum_type: Some("FULL_OBJECT".to_owned().into()),
            ..ObjectMeta::default()
        }
    }

    fn header(meta: ObjectMeta, missing: bool) -> Header {
        Header {
            meta,
            validated_at: UNIX_EPOCH + Duration::from_millis(1_700_000_000_456),
            missing,
            in_blocks: false,
        }
    }

    #[test]
    fn round_trips() {
        let weak = ObjectMeta {
            e_tag: Some(ETag::Weak("w".into())),
            ..Default::default()
        };
        for h in [
            header(full(), false),
            header(ObjectMeta::default(), true),
            header(weak, false),
            Header {
                in_blocks: true,
                ..header(full(), false)
            },
        ] {
            assert_eq!(decode(&encode(&h)).unwrap(), h);
        }
        // A kind byte that names no kind is refused.
        let mut bad = encode(&header(full(), false));
        if let Some(last) = bad.last_mut() {
            *last = 3;
        }
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn is_compact() {
        let len = encode(&header(full(), false)).len();
        assert!(len < 400, "record is {len} bytes");
    }

    /// Writes the seeds of the `record_decode` fuzz target:
    /// `S3CACHED_FUZZ_CORPUS=fuzz/corpus cargo test -p s3cached --lib write_fuzz_seeds -- --ignored`.
    #[test]
    #[ignore = "writes the fuzz seed corpus"]
    fn write_fuzz_seeds() {
        let Some(corpus) = std::env::var_os("S3CACHED_FUZZ_CORPUS") else {
            return;
        };
        let dir = std::path::Path::new(&corpus).join("record_decode");
        std::fs::create_dir_all(&dir).expect("corpus dir");
        let weak = ObjectMeta {
            e_tag: Some(ETag::Weak("w".into())),
            object_lock_retain_until_date: Some(Timestamp::from(UNIX_EPOCH + Duration::from_secs(1_900_000_000))),
            ..Default::default()
        };
        for (name, h) in [
            ("full", header(full(), false)),
            ("missing", header(ObjectMeta::default(), true)),
            ("weak", header(weak, false)),
            (
                "in-blocks",
                Header {
                    in_blocks: true,
                    ..header(full(), false)
                },
            ),
        ] {
            std::fs::write(dir.join(format!("seed-{name}")), encode(&h)).expect("write seed");
        }
    }

    #[test]
    fn rejects_damage() {
        let good = encode(&header(full(), false));
        assert_eq!(decode(b"nope"), Err(RecordError::Magic));
        for cut in [4, 12, good.len() / 2, good.len() - 1] {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }
}
