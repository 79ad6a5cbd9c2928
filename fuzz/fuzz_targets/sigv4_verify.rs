//! SigV4 verification of the hot path (`sigv4::Verifier::verify`, and `recall_presigned` of
//! the presigned requests it remembers): an `Authorization` header or a presigned query, on
//! any request head. The input is a request head in text (see
//! `s3cached_fuzz::request`); the clock is fixed, so the seeds (signed at that time) verify.

#![no_main]

use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use s3cached::config::Credentials;
use s3cached::doors::sigv4::{SignedRequest, Verifier};

/// The key pair the seeds are signed with (the one of the library's SigV4 tests).
const ACCESS_KEY: &str = "AKIDHOTPATH";
const SECRET_KEY: &str = "hot/path/secret/0123456789abcdefghijkl";
/// 2026-11-30T12:00:00Z, when the seeds were signed.
const NOW: Duration = Duration::from_secs(1_796_040_000);

static VERIFIER: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::new(&[Credentials {
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET_KEY.to_owned(),
    }])
});

fuzz_target!(|data: &[u8]| {
    let Some(req) = s3cached_fuzz::request(data) else {
        return;
    };
    // The hot path verifies the decoded path; one that is not UTF-8 never gets here.
    let Ok(path) = percent_encoding::percent_decode_str(req.uri().path()).decode_utf8() else {
        return;
    };
    let query = s3cached_fuzz::query_pairs(req.uri());
    let target = req.uri().path_and_query().map_or("/", http::uri::PathAndQuery::as_str);
    let now = SystemTime::UNIX_EPOCH + NOW;
    let signed = SignedRequest {
        method: req.method().as_str(),
        decoded_path: &path,
        query: &query,
        headers: req.headers(),
        raw_target: Some(target),
    };
    let first = VERIFIER.verify(&signed, now);
    if let Some(key) = first {
        assert_eq!(key, ACCESS_KEY, "only a known access key can sign");
    }
    // The second time the signing key comes from the cache: the same answer.
    assert_eq!(VERIFIER.verify(&signed, now), first, "cached signing key");
    // A request recalled by its bytes is one that verifies.
    let recalled = VERIFIER.recall_presigned(signed.method, target, signed.headers, now);
    if let Some(key) = &recalled {
        assert_eq!(Some(&**key), first, "recalled a request that does not verify");
    }
    if first.is_some() {
        // The method is signed: the same signature under another method is refused.
        let other = if signed.method == "GET" { "HEAD" } else { "GET" };
        let moved = SignedRequest {
            method: other,
            ..signed
        };
        assert_eq!(VERIFIER.verify(&moved, now), None, "signature accepted for {other}");
        assert!(
            VERIFIER.recall_presigned(other, target, signed.headers, now).is_none(),
            "recalled for {other}"
        );
    }
});
