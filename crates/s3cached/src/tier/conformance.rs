//! The conformance suite every [`CacheTier`] must pass. Each tier's tests call [`run`].

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::CacheTier;
use crate::model::entry::{Entry, ObjectMeta};
use crate::model::key::CacheKey;

fn entry(body: &'static [u8], etag: &str) -> Arc<Entry> {
    Arc::new(Entry::new(
        ObjectMeta {
            size: body.len() as u64,
            e_tag: Some(s3s::dto::ETag::Strong(etag.to_owned())),
            content_type: Some("application/octet-stream".to_owned()),
            ..ObjectMeta::default()
        },
        Bytes::from_static(body),
    ))
}

/// Runs every conformance check against `tier`. Keys are prefixed per check so one tier
/// instance can be shared.
///
/// # Panics
/// When the tier breaks the [`CacheTier`] contract.
pub async fn run(tier: &dyn CacheTier) {
    miss_then_hit(tier).await;
    replace(tier).await;
    remove(tier).await;
    versions_are_separate(tier).await;
    ttl_expires(tier).await;
    awkward_keys(tier).await;
    metadata_of_blocks(tier).await;
    blocks_are_kept_by_version(tier).await;
    large_values(tier).await;
    if tier.shared() {
        stale_fills_are_refused(tier).await;
    }
}

/// An entry whose bytes are blocks reads back as such, and invalidation removes it.
async fn metadata_of_blocks(tier: &dyn CacheTier) {
    let k = key("in-blocks");
    let meta = ObjectMeta {
        size: 5 << 30,
        e_tag: Some(s3s::dto::ETag::Strong("big".to_owned())),
        ..ObjectMeta::default()
    };
    let token = tier.get(&k).await.expect("get").token;
    let stored = tier
        .insert(k.clone(), Arc::new(Entry::in_blocks(meta.clone())), None, token)
        .await
        .expect("insert");
    assert!(stored, "{}: metadata of a block-cached object must store", tier.name());
    let got = tier.get(&k).await.expect("get").entry.expect("hit");
    assert!(
        got.in_blocks && got.body.is_empty() && got.meta == meta,
        "{}",
        tier.name()
    );
    tier.invalidate(&k).await.expect("invalidate");
    assert!(tier.get(&k).await.expect("get").entry.is_none(), "{}", tier.name());
}

/// An entry and a block large enough to arrive over many reads come back byte-exact.
async fn large_values(tier: &dyn CacheTier) {
    use crate::model::block::BlockKey;
    let pattern = |len: usize, seed: u8| -> Bytes { (0..len).map(|i| (i % 253) as u8 ^ seed).collect() };
    let k = key("large-entry");
    let body = pattern(200 * 1024 + 3, 0x5a);
    let meta = ObjectMeta {
        size: body.len() as u64,
        e_tag: Some(s3s::dto::ETag::Strong("large".to_owned())),
        ..ObjectMeta::default()
    };
    fill(tier, k.clone(), Arc::new(Entry::new(meta, body.clone())), None).await;
    let got = tier.get(&k).await.expect("get").entry.expect("hit");
    assert!(got.body == body, "{}: a 200 KiB entry reads back", tier.name());

    let block = BlockKey::new(&k, "large", 1 << 20, 0);
    let bytes = pattern(1 << 20, 0xa5);
    tier.put_block(&block, bytes.clone(), None).await.expect("put_block");
    let whole = tier
        .get_block(&block, 0..bytes.len(), bytes.len())
        .await
        .expect("get_block");
    assert!(
        whole.is_some_and(|(b, _)| b == bytes),
        "{}: a 1 MiB block reads back",
        tier.name()
    );
    let part = tier
        .get_block(&block, 4096..70_000, bytes.len())
        .await
        .expect("get_block");
    assert!(
        part.is_some_and(|(b, _)| b == bytes.slice(4096..70_000)),
        "{}: a part of a 1 MiB block reads back",
        tier.name()
    );
}

/// Blocks read back by their key; another version's key or index is another block.
async fn blocks_are_kept_by_version(tier: &dyn CacheTier) {
    use crate::model::block::BlockKey;
    let object = key("blocks");
    let (v1, v2) = (
        BlockKey::new(&object, "etag-1", 4, 0),
        BlockKey::new(&object, "etag-2", 4, 0),
    );
    let ttl = Some(Duration::from_secs(60));
    tier.put_block(&v1, Bytes::from_static(b"abcd"), ttl)
        .await
        .expect("put block");
    let got = |key: BlockKey, part: std::ops::Range<usize>, len: usize| async move {
        tier.get_block(&key, part, len)
            .await
            .expect("get block")
            .map(|(b, _)| b)
    };
    let name = tier.name();
    assert_eq!(
        got(v1.clone(), 0..4, 4).await,
        Some(Bytes::from_static(b"abcd")),
        "{name}"
    );
    assert_eq!(
        got(v1.clone(), 1..3, 4).await,
        Some(Bytes::from_static(b"bc")),
        "{name}"
    );
    // A block of another length than asked for is not that block.
    assert_eq!(got(v1.clone(), 0..5, 5).await, None, "{name}");
    assert_eq!(got(v2, 0..4, 4).await, None, "{name}");
    assert_eq!(
        got(BlockKey::new(&object, "etag-1", 4, 1), 0..4, 4).await,
        None,
        "{name}"
    );
}

/// A fill whose lookup preceded a write must not store (the shared-tier half of DESIGN §4.2).
async fn stale_fills_are_refused(tier: &dyn CacheTier) {
    let k = key("stale-fill");
    let token = tier.get(&k).await.expect("get").token;
    let fresh = tier.invalidate(&k).await.expect("invalidate");
    let stored = tier
        .insert(k.clone(), entry(b"old", "e1"), None, token)
        .await
        .expect("insert");
    assert!(!stored, "{}: a fill older than a write must be refused", tier.name());
    assert!(tier.get(&k).await.expect("get").entry.is_none());
    let stored = tier
        .insert(k.clone(), entry(b"new", "e2"), None, fresh)
        .await
        .expect("insert");
    assert!(stored, "{}: the write's own token must store", tier.name());
    let got = tier.get(&k).await.expect("get").entry.expect("hit");
    assert_eq!(got.body, Bytes::from_static(b"new"));
}

/// Stores like a fill does: with the token of a lookup made just before.
async fn fill(tier: &dyn CacheTier, key: CacheKey, entry: Arc<Entry>, ttl: Option<Duration>) {
    let token = tier.get(&key).await.expect("lookup before fill").token;
    let stored = tier.insert(key, entry, ttl, token).await.expect("insert");
    assert!(stored, "{}: a fill with a fresh token must store", tier.name());
}

fn key(name: &str) -> CacheKey {
    CacheKey::new("conformance", name).expect("valid key")
}

async fn miss_then_hit(tier: &dyn CacheTier) {
    let k = key("miss-then-hit");
    assert!(
        tier.get(&k).await.expect("get").entry.is_none(),
        "{}: empty tier must miss",
        tier.name()
    );
    let e = entry(b"hello", "e1");
    fill(tier, k.clone(), Arc::clone(&e), None).await;
    let got = tier.get(&k).await.expect("get").entry.expect("hit after insert");
    assert_eq!(*got, *e, "{}: entry must round-trip unchanged", tier.name());
}

async fn replace(tier: &dyn CacheTier) {
    let k = key("replace");
    fill(tier, k.clone(), entry(b"old", "e1"), None).await;
    fill(tier, k.clone(), entry(b"new", "e2"), None).await;
    let got = tier.get(&k).await.expect("get").entry.expect("hit");
    assert_eq!(
        got.body,
        Bytes::from_static(b"new"),
        "{}: insert must replace",
        tier.name()
    );
}

async fn remove(tier: &dyn CacheTier) {
    let k = key("remove");
    fill(tier, k.clone(), entry(b"x", "e1"), None).await;
    tier.invalidate(&k).await.expect("invalidate");
    assert!(
        tier.get(&k).await.expect("get").entry.is_none(),
        "{}: removed entry must miss",
        tier.name()
    );
    tier.invalidate(&k)
        .await
        .expect("invalidating an absent entry is not an error");
}

async fn versions_are_separate(tier: &dyn CacheTier) {
    let latest = key("versions");
    let v1 = latest.clone().with_version(Some("v1"));
    fill(tier, latest.clone(), entry(b"latest", "e2"), None).await;
    fill(tier, v1.clone(), entry(b"first", "e1"), None).await;
    tier.invalidate(&latest).await.expect("invalidate");
    let got = tier.get(&v1).await.expect("get").entry.expect("version entry survives");
    assert_eq!(got.body, Bytes::from_static(b"first"));
}

async fn ttl_expires(tier: &dyn CacheTier) {
    let k = key("ttl");
    fill(
        tier,
        k.clone(),
        entry(b"short-lived", "e1"),
        Some(Duration::from_millis(200)),
    )
    .await;
    assert!(
        tier.get(&k).await.expect("get").entry.is_some(),
        "{}: fresh entry must hit",
        tier.name()
    );
    // Poll instead of sleeping a fixed time: expiry may be lazy, but must happen.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if tier.get(&k).await.expect("get").entry.is_none() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: entry outlived its TTL",
            tier.name()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn awkward_keys(tier: &dyn CacheTier) {
    for name in ["sp ace/ünï:cødé", "{tag}/x}{", "100%/a%2Fb", "a:b:c"] {
        let k = key(name);
        fill(tier, k.clone(), entry(b"odd", "e1"), None).await;
        let got = tier.get(&k).await.expect("get").entry;
        assert!(got.is_some(), "{}: key {name:?} must round-trip", tier.name());
        let other = key(&format!("{name}-other"));
        assert!(
            tier.get(&other).await.expect("get").entry.is_none(),
            "{}: keys must not collide",
            tier.name()
        );
    }
}
