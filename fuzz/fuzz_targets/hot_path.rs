//! The hot path's qualification of a raw request (`HotPath::answer`): method and version,
//! `read_request::scan_headers`, the query parsing and `query_role`, path decoding, SigV4
//! (`sigv4::Verifier`), virtual-hosted-style hosts (`host::VirtualHosts`), `CacheKey::new` and
//! the answer from a memory tier holding a few objects. The input is a request head in text
//! (see `s3cached_fuzz::request`); the same bytes also go to the connection loop's own parse
//! (`hot_path::connection::answers_here`).

#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use s3cached::config::{CachePolicy, ClientAuth, Credentials, EvictionPolicy};
use s3cached::doors::auth::{Authorizer, rules_of};
use s3cached::doors::host::VirtualHosts;
use s3cached::doors::hot_path::{HotPath, MAX_HEADER_SECTION, connection};
use s3cached::engine::Engine;
use s3cached::metrics::Metrics;
use s3cached::model::entry::{Entry, ObjectMeta};
use s3cached::model::key::CacheKey;
use s3cached::model::read_request::{HeaderRole, QueryRole, header_role, query_role};
use s3cached::origin::Origin;
use s3cached::tier::memory::MemoryTier;
use s3cached::tier::{CacheTier, FillToken};
use s3s::dto::{ETag, Metadata, ServerSideEncryption, StorageClass, Timestamp};

/// An origin that answers nothing: only memory hits are answered.
struct NoOrigin;

impl s3s::S3 for NoOrigin {}

/// Objects in the memory tier: path style under `bucket`, and `photos` also reachable as
/// `photos.s3.example.com`.
const OBJECTS: &[(&str, &str)] = &[
    ("bucket", "plain.txt"),
    ("bucket", "dir/sub dir/naïve+plus.bin"),
    ("bucket", "key=with&odd;chars"),
    ("photos", "cat.png"),
];

fn rich_meta(size: u64) -> ObjectMeta {
    let mut metadata = Metadata::default();
    metadata.insert("color".into(), "blue".into());
    metadata.insert("note".into(), "two  words".into());
    ObjectMeta {
        size,
        e_tag: Some(ETag::Strong("0123456789abcdef".into())),
        last_modified: Some(Timestamp::from(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        )),
        content_type: Some("image/png".into()),
        content_disposition: Some("attachment; filename=\"cat.png\"".into()),
        cache_control: Some("max-age=60".into()),
        metadata: Some(metadata),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD_IA)),
        version_id: Some("v-1".into()),
        server_side_encryption: Some(ServerSideEncryption::from_static(ServerSideEncryption::AES256)),
        parts_count: Some(3),
        tag_count: Some(2),
        checksum_crc32: Some("AAAAAA==".into()),
        ..ObjectMeta::default()
    }
}

static HOT: LazyLock<HotPath> = LazyLock::new(|| {
    let metrics = Arc::new(Metrics::new());
    let tier: Arc<dyn CacheTier> = Arc::new(MemoryTier::new(
        16 << 20,
        EvictionPolicy::Lru,
        Some(Arc::clone(&metrics)),
    ));
    for &(bucket, key) in OBJECTS {
        let key = CacheKey::new(bucket, key).expect("key");
        let entry = Entry::new(rich_meta(5), Bytes::from_static(b"hello"));
        futures::executor::block_on(tier.insert(key, Arc::new(entry), None, FillToken::default())).expect("insert");
    }
    let origin = Origin::from_s3(NoOrigin, Arc::clone(&metrics), "none".to_owned());
    let engine = Engine::new(origin, tier, metrics, CachePolicy::default());
    let credentials = vec![Credentials {
        access_key: "AKIDHOTPATH".to_owned(),
        secret_key: "hot/path/secret/0123456789abcdefghijkl".to_owned(),
    }];
    let auth = ClientAuth {
        credentials,
        allow_anonymous: true,
        ..ClientAuth::default()
    };
    let authorizer = Arc::new(Authorizer::new(rules_of(&auth).expect("rules"), None));
    let hosts = VirtualHosts::new(&["s3.example.com".to_owned()]).expect("domain");
    HotPath::new(engine, authorizer, Some(hosts))
});

fuzz_target!(|data: &[u8]| {
    // The connection loop's own parse of the same bytes as a raw HTTP/1.1 head.
    if let Some(head_len) = connection::answers_here(data, &HOT) {
        assert!(head_len <= data.len() && head_len <= MAX_HEADER_SECTION);
        assert!(data[..head_len].ends_with(b"\n"), "a head ends with a blank line");
    }
    let Some(req) = s3cached_fuzz::request(data) else {
        return;
    };
    let req = req.map(|()| http_body_util::Empty::<Bytes>::new());
    let Some(resp) = HOT.answer(&req) else {
        return;
    };
    // What the hot path answers must be a plain read: checked here from the raw request.
    assert!(matches!(req.method().as_str(), "GET" | "HEAD"), "{}", req.method());
    assert_eq!(resp.status(), http::StatusCode::OK);
    for (name, value) in req.headers() {
        match header_role(name.as_str()) {
            HeaderRole::Neutral | HeaderRole::Authorization => {}
            HeaderRole::ChecksumMode => assert_eq!(value, "ENABLED"),
            role => panic!("answered a request with {name} ({role:?})"),
        }
    }
    for (name, _) in s3cached_fuzz::query_pairs(req.uri()) {
        let role = query_role(&name);
        assert!(
            matches!(role, QueryRole::Signature | QueryRole::OperationHint),
            "answered a request with query parameter {name:?} ({role:?})"
        );
    }
});
