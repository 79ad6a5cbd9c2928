//! Cache keys and the Redis key schema (`key::CacheKey::new`, `key::RedisKeys::of`) for
//! bucket, key and version names from requests and events. Input: two objects, each as three
//! lines (bucket, key, version; an empty version line is the latest version).
//!
//! Checked: every Redis key of an object lands in one cluster slot (one MGET or script can
//! touch them all), and two different objects never share a body or metadata key.

#![no_main]

use libfuzzer_sys::fuzz_target;
use s3cached::model::key::{CacheKey, RedisKeys, cluster_slot};

fn object(bucket: &str, key: &str, version: &str) -> Option<CacheKey> {
    let version = (!version.is_empty()).then_some(version);
    Some(CacheKey::new(bucket, key).ok()?.with_version(version))
}

fn check(k: &CacheKey) -> RedisKeys {
    let r = RedisKeys::of(k);
    let slot = cluster_slot(&r.meta);
    assert_eq!(cluster_slot(&r.body), slot, "body of {k:?}: {r:?}");
    assert_eq!(cluster_slot(&r.generation), slot, "generation of {k:?}: {r:?}");
    // One generation per object, whichever version.
    assert_eq!(RedisKeys::of(&k.latest()).generation, r.generation, "{k:?}");
    r
}

fuzz_target!(|data: &[u8]| {
    let f = s3cached_fuzz::fields(data, 6);
    let part = |i: usize| f.get(i).map_or("", |s| s.as_ref());
    let a = object(part(0), part(1), part(2));
    let b = object(part(3), part(4), part(5));
    let ra = a.as_ref().map(check);
    let rb = b.as_ref().map(check);
    if let (Some(a), Some(b), Some(ra), Some(rb)) = (a, b, ra, rb) {
        if a != b {
            assert_ne!(ra.meta, rb.meta, "{a:?} and {b:?} share a metadata key");
            assert_ne!(ra.body, rb.body, "{a:?} and {b:?} share a body key");
        }
        if a.bucket() != b.bucket() || a.key() != b.key() {
            assert_ne!(ra.generation, rb.generation, "{a:?} and {b:?} share a generation");
        }
    }
});
