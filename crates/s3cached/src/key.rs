//! Cache keys: which origin object (and which version of it) a cache entry stands for.
//!
//! Bucket names are validated against S3's rules so that the `bucket:key` convention used by
//! the shared tiers stays unambiguous (a bucket name never contains `:`).

use std::fmt;
use std::sync::Arc;

/// Why a bucket name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The bucket name breaks S3's naming rules.
    #[error("invalid bucket name {0:?}: 3-63 characters of a-z, 0-9, '.', '-', '_'")]
    InvalidBucket(String),
    /// Object keys must not be empty.
    #[error("object key must not be empty")]
    EmptyKey,
}

/// Identifies one cached object: bucket, key and, for versioned reads, the version id.
///
/// Reads without a version id address "the latest version"; that entry is the one writes
/// invalidate. Entries for an explicit version are immutable on the origin and stay valid
/// until a DeleteObject names that version.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    bucket: Arc<str>,
    key: Arc<str>,
    version: Option<Arc<str>>,
}

impl CacheKey {
    /// Builds a key for the latest version of `bucket`/`key`.
    ///
    /// ```
    /// use s3cached::key::CacheKey;
    /// let k = CacheKey::new("photos", "2024/cat.jpg").unwrap();
    /// assert_eq!(k.to_string(), "photos:2024/cat.jpg");
    /// ```
    ///
    /// # Errors
    /// [`KeyError`] when the bucket name is not a valid S3 bucket name or the key is empty.
    pub fn new(bucket: &str, key: &str) -> Result<Self, KeyError> {
        validate_bucket(bucket)?;
        if key.is_empty() {
            return Err(KeyError::EmptyKey);
        }
        Ok(Self {
            bucket: Arc::from(bucket),
            key: Arc::from(key),
            version: None,
        })
    }

    /// The same object at an explicit version (`None` means the latest version).
    #[must_use]
    pub fn with_version(mut self, version: Option<&str>) -> Self {
        self.version = version.map(Arc::from);
        self
    }

    /// The key of the latest version of the same object.
    #[must_use]
    pub fn latest(&self) -> Self {
        Self {
            bucket: Arc::clone(&self.bucket),
            key: Arc::clone(&self.key),
            version: None,
        }
    }

    /// The bucket name.
    #[must_use]
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The object key.
    #[must_use]
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The version id, when the entry is for an explicit version.
    #[must_use]
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// A stable 64-bit hash of bucket and key (not version), used to pick lock stripes.
    #[must_use]
    pub fn object_hash(&self) -> u64 {
        // FNV-1a: cheap, stable across processes, good enough to spread stripes.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.bucket.bytes().chain([b':']).chain(self.key.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
}

impl fmt::Display for CacheKey {
    /// `bucket:key`, with `?versionId=…` appended for versioned entries.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.bucket, self.key)?;
        if let Some(v) = &self.version {
            write!(f, "?versionId={v}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CacheKey({self})")
    }
}

/// Checks a bucket name against S3's rules (lenient on legacy `_` and upper-case-free names).
///
/// # Errors
/// [`KeyError::InvalidBucket`] when the name is not 3-63 characters of `a-z0-9.-_`, or starts
/// or ends with a separator.
pub fn validate_bucket(bucket: &str) -> Result<(), KeyError> {
    let bytes = bucket.as_bytes();
    let ok_len = (3..=63).contains(&bytes.len());
    let ok_chars = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'));
    let ok_ends = bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok_len && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(KeyError::InvalidBucket(bucket.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_bucket_colon_key() {
        let k = CacheKey::new("my-bucket", "a/b c:{d}%").unwrap();
        assert_eq!(k.to_string(), "my-bucket:a/b c:{d}%");
        let v = k.clone().with_version(Some("v1"));
        assert_eq!(v.to_string(), "my-bucket:a/b c:{d}%?versionId=v1");
        assert_ne!(k, v);
        assert_eq!(v.latest(), k);
    }

    #[test]
    fn unicode_keys_are_kept_verbatim() {
        let k = CacheKey::new("bkt", "ümlaut/日本語 file.txt").unwrap();
        assert_eq!(k.key(), "ümlaut/日本語 file.txt");
    }

    #[test]
    fn bucket_rules() {
        for ok in ["abc", "a.b-c_d", "x1y", &"a".repeat(63)] {
            assert!(validate_bucket(ok).is_ok(), "{ok}");
        }
        for bad in ["ab", "Abc", "a:b", "-ab", "ab-", "a b", "", &"a".repeat(64)] {
            assert!(validate_bucket(bad).is_err(), "{bad}");
        }
        assert_eq!(CacheKey::new("abc", ""), Err(KeyError::EmptyKey));
    }

    #[test]
    fn object_hash_ignores_version_and_is_stable() {
        let k = CacheKey::new("abc", "k").unwrap();
        assert_eq!(
            k.object_hash(),
            k.clone().with_version(Some("v")).object_hash()
        );
        assert_ne!(
            k.object_hash(),
            CacheKey::new("abc", "k2").unwrap().object_hash()
        );
    }
}
