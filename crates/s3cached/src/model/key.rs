//! Cache keys: which origin object (and which version of it) a cache entry stands for, and the
//! Redis key schema built from them (DESIGN.md §3), in one place.
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
    /// use s3cached::model::key::CacheKey;
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
    let ok_ends =
        bytes.first().is_some_and(u8::is_ascii_alphanumeric) && bytes.last().is_some_and(u8::is_ascii_alphanumeric);
    if ok_len && ok_chars && ok_ends {
        Ok(())
    } else {
        Err(KeyError::InvalidBucket(bucket.to_owned()))
    }
}

/// The Redis keys of one cached object. Every key here hashes to the same cluster slot, so one
/// MGET, MULTI or script can touch them all.
///
/// - the latest version's bytes at `<bucket>:<key>` (what `r.get(bucket + ':' + key)` reads),
/// - its metadata at `{<bucket>:<key>}:m`,
/// - an explicit version's bytes and metadata at `{<bucket>:<key>}:v:<version>:b` / `…:m`,
/// - the object's write generation at `{<bucket>:<key>}:g` (see the Redis tier).
///
/// Keys containing braces need care, because Redis hashes only the text between the first `{`
/// and the next `}` when there is such a non-empty tag, and because an object key may itself
/// end in text that looks like a suffix (`:m`, `:v:<version>:m`). Every prefix below therefore
/// ends at a `}` that the object's name cannot contain, so where the name ends is never in
/// doubt and two objects (or versions) never share a key:
///
/// - `<bucket>:<key>` without `{` or `}`, or with `{` but no tag: the prefix is
///   `{<bucket>:<key>}`, as above;
/// - with a tag `h`: the prefix is `{h}<escaped>}`, where `<escaped>` is `<bucket>:<key>` with
///   `%`, `{` and `}` percent-escaped; the tag, and so the slot, is the body key's;
/// - with a `}` but no tag: no prefix can share the slot of `<bucket>:<key>`, so the body
///   moves to `{%<escaped>}:b` and readers of `bucket:key` do not see that object.
///
/// After the first `}` a tagged prefix goes on with a bucket name's first character and the
/// others with `:`; an escaped prefix starts with `%`, which no bucket name does; body keys
/// at `<bucket>:<key>` never start with `{`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisKeys {
    /// The object's bytes.
    pub body: String,
    /// The object's metadata record.
    pub meta: String,
    /// The object's write generation counter (shared by all versions).
    pub generation: String,
}

impl RedisKeys {
    /// The keys for `key` (latest version or an explicit one).
    #[must_use]
    pub fn of(key: &CacheKey) -> Self {
        let plain = format!("{}:{}", key.bucket(), key.key());
        let (prefix, latest_body) = match hash_tag(&plain) {
            Some(tag) => (format!("{{{tag}}}{}}}", escape_braces(&plain)), Some(plain.clone())),
            None if !plain.contains('}') => (format!("{{{plain}}}"), Some(plain.clone())),
            // A leading `%` never starts a bucket name, so escaped prefixes cannot meet plain ones.
            None => (format!("{{%{}}}", escape_braces(&plain)), None),
        };
        let generation = format!("{prefix}:g");
        match key.version() {
            Some(v) => Self {
                body: format!("{prefix}:v:{v}:b"),
                meta: format!("{prefix}:v:{v}:m"),
                generation,
            },
            None => Self {
                body: latest_body.unwrap_or_else(|| format!("{prefix}:b")),
                meta: format!("{prefix}:m"),
                generation,
            },
        }
    }
}

/// The part of `key` Redis Cluster hashes, when it is not the whole key: the text between the
/// first `{` and the first `}` after it, if non-empty.
#[must_use]
pub fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let rest = &key[open + 1..];
    let close = rest.find('}')?;
    (close > 0).then(|| &rest[..close])
}

/// The Redis Cluster slot of `key` (CRC16/XMODEM of its hash tag or whole key, mod 16384).
#[must_use]
pub fn cluster_slot(key: &str) -> u16 {
    let hashed = hash_tag(key).unwrap_or(key);
    let mut crc: u16 = 0;
    for &b in hashed.as_bytes() {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

fn escape_braces(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '{' => out.push_str("%7B"),
            '}' => out.push_str("%7D"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::collection::vec;
    use proptest::prelude::*;
    use proptest::sample::select;

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
        assert_eq!(k.object_hash(), k.clone().with_version(Some("v")).object_hash());
        assert_ne!(k.object_hash(), CacheKey::new("abc", "k2").unwrap().object_hash());
    }

    #[test]
    fn redis_schema_for_plain_keys() {
        let k = CacheKey::new("photos", "2024/cat.jpg").unwrap();
        let r = RedisKeys::of(&k);
        assert_eq!(r.body, "photos:2024/cat.jpg");
        assert_eq!(r.meta, "{photos:2024/cat.jpg}:m");
        assert_eq!(r.generation, "{photos:2024/cat.jpg}:g");
        let v = RedisKeys::of(&k.with_version(Some("v1")));
        assert_eq!(v.body, "{photos:2024/cat.jpg}:v:v1:b");
        assert_eq!(v.meta, "{photos:2024/cat.jpg}:v:v1:m");
    }

    #[test]
    fn known_cluster_slots() {
        // Values from Redis' CLUSTER KEYSLOT.
        assert_eq!(cluster_slot("foo"), 12182);
        assert_eq!(cluster_slot("{user1000}.following"), cluster_slot("user1000"));
        assert_eq!(cluster_slot("foo{}{bar}"), cluster_slot("foo{}{bar}"));
        assert_eq!(hash_tag("foo{}{bar}"), None);
        assert_eq!(hash_tag("foo{{bar}}zap"), Some("{bar"));
    }

    #[test]
    fn every_key_of_an_object_shares_one_slot() {
        let awkward = [
            "plain/key.txt",
            "a{b}c",
            "{}",
            "{",
            "}",
            "a}b",
            "a{b",
            "a{}b{c}",
            "}{",
            "{{x}}",
            "x}{y}",
            "100%/a%7Bb",
            "ünï{cødé}",
            "sp ace:{colon}",
            "a:b:c",
        ];
        for name in awkward {
            for version in [None, Some("v9")] {
                let k = CacheKey::new("bkt", name).unwrap().with_version(version);
                let r = RedisKeys::of(&k);
                let slot = cluster_slot(&r.body);
                assert_eq!(cluster_slot(&r.meta), slot, "meta of {name:?} {version:?}: {r:?}");
                assert_eq!(cluster_slot(&r.generation), slot, "generation of {name:?}: {r:?}");
                // Versions share the generation, so a write bumps it for all of them.
                assert_eq!(r.generation, RedisKeys::of(&k.latest()).generation);
            }
        }
    }

    #[test]
    fn a_key_that_ends_like_a_version_suffix_keeps_its_own_keys() {
        // The latest version of `a{b}c:v:x` and version `x` of `a{b}c` once shared `:m`.
        let tricky = RedisKeys::of(&CacheKey::new("bkt", "a{b}c:v:x").unwrap());
        let version = RedisKeys::of(&CacheKey::new("bkt", "a{b}c").unwrap().with_version(Some("x")));
        assert_eq!(tricky.body, "bkt:a{b}c:v:x");
        assert_eq!(tricky.meta, "{b}bkt:a%7Bb%7Dc:v:x}:m");
        assert_eq!(version.meta, "{b}bkt:a%7Bb%7Dc}:v:x:m");
    }

    /// Pieces of generated object keys and version ids: braces, colons, `%` and text that looks
    /// like the schema's own suffixes and escapes.
    const FRAGMENTS: &[&str] = &[
        "a", "b", "x", "v", "{", "}", ":", "%", "%7B", "%7D", "%25", ":v:", ":m", ":b", ":g", "{b}", "}:", "{}",
    ];

    fn text(max: usize) -> impl Strategy<Value = String> {
        vec(select(FRAGMENTS), 1..=max).prop_map(|parts| parts.concat())
    }

    fn version() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(text(3))
    }

    type Object = (&'static str, String, Option<String>);

    /// Independent objects, and pairs whose second key extends the first one's with a tail
    /// (often `:v:<the first one's version>`, the shape of a suffix), where collisions hide.
    fn objects() -> impl Strategy<Value = Vec<Object>> {
        let bucket = select(&["bkt", "bkt2", "b.k-t"][..]);
        let single = (bucket.clone(), text(6), version()).prop_map(|o| vec![o]);
        let pair = (bucket, text(5), version(), version(), text(3), any::<bool>()).prop_map(
            |(bucket, base, v1, v2, tail, suffix_like)| {
                let tail = match (&v1, suffix_like) {
                    (Some(v), true) => format!(":v:{v}"),
                    _ => tail,
                };
                vec![(bucket, base.clone(), v1), (bucket, base + &tail, v2)]
            },
        );
        vec(prop_oneof![single, pair], 1..12).prop_map(|groups| groups.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn distinct_objects_and_versions_never_share_a_redis_key(objects in objects()) {
            // Who owns each Redis key: (role, bucket, key, version); a generation belongs to
            // every version of its object.
            let mut owners: HashMap<String, (&str, &str, String, Option<String>)> = HashMap::new();
            for (bucket, name, version) in &objects {
                let k = CacheKey::new(bucket, name).unwrap().with_version(version.as_deref());
                let r = RedisKeys::of(&k);
                for (role, redis_key, version) in [
                    ("body", r.body, version.clone()),
                    ("meta", r.meta, version.clone()),
                    ("generation", r.generation, None),
                ] {
                    let owner = (role, *bucket, name.clone(), version);
                    if let Some(previous) = owners.get(&redis_key) {
                        prop_assert_eq!(previous, &owner, "both use {}", redis_key);
                    }
                    owners.insert(redis_key, owner);
                }
            }
        }

        #[test]
        fn every_key_of_a_generated_object_shares_one_slot(
            name in text(8),
            v1 in text(3),
            v2 in text(3),
        ) {
            let latest = CacheKey::new("bkt", &name).unwrap();
            let slot = cluster_slot(&RedisKeys::of(&latest).meta);
            for k in [latest.clone(), latest.clone().with_version(Some(&v1)), latest.with_version(Some(&v2))] {
                let r = RedisKeys::of(&k);
                for redis_key in [&r.body, &r.meta, &r.generation] {
                    prop_assert_eq!(cluster_slot(redis_key), slot, "{} of {:?}", redis_key, k);
                }
            }
        }
    }

    #[test]
    fn the_classic_convention_holds_unless_impossible() {
        for name in ["plain", "a{b}c", "a{b", "{{x}}", "x}{y}"] {
            let r = RedisKeys::of(&CacheKey::new("bkt", name).unwrap());
            assert_eq!(r.body, format!("bkt:{name}"), "{name:?}");
        }
        // No hash tag but a '}': the body moves under an escaped tag.
        let r = RedisKeys::of(&CacheKey::new("bkt", "a}b").unwrap());
        assert_eq!(r.body, "{%bkt:a%7Db}:b");
        assert_ne!(
            RedisKeys::of(&CacheKey::new("bkt", "a%7Db").unwrap()).meta,
            r.meta,
            "escaping keeps distinct keys distinct"
        );
    }
}
