//! The two doors against one corpus: every request goes to the hot path and to the full path
//! (s3s with the front end), for a cached object, with anonymous access off and on.
//!
//! Each case says what both doors must decide. `Both`: the hot path answers, and its answer is
//! the full path's, byte for byte. `Neither`: the hot path declines and the full path refuses.
//! `FullDecides`: the hot path declines on purpose (it cannot vouch for the request) and the
//! full path's answer is the only one. A door that starts accepting a request the other
//! refuses breaks a `Both` or `Neither` case.

use std::time::Duration;

use aws_sigv4::http_request::SignatureLocation;
use bytes::Bytes;

use super::tests::{Setup, hello, now, parts, put, setup, setup_with, with_body};
use crate::doors::sigv4::tests::{ACCESS_KEY, HOST, SECRET_KEY, signed, signed_by};
use crate::model::identities::Identities;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Both,
    Neither,
    FullDecides,
}

/// What the case is, the request, and what both doors must decide.
type Case = (&'static str, http::Request<()>, Expect);

fn anonymous(method: &str, path: &str, host: Option<&str>) -> http::Request<()> {
    let mut b = http::Request::builder().method(method).uri(path);
    if let Some(h) = host {
        b = b.header("host", h);
    }
    b.body(()).expect("request")
}

fn with_header(mut req: http::Request<()>, name: &'static str, value: &str) -> http::Request<()> {
    req.headers_mut()
        .append(name, http::HeaderValue::from_str(value).expect("header value"));
    req
}

/// The corpus, with what each door must decide when anonymous reads are `anonymous_reads`.
fn corpus(anonymous_reads: bool) -> Vec<Case> {
    use Expect::{Both, FullDecides, Neither};
    let anon = if anonymous_reads { Both } else { Neither };
    let q = SignatureLocation::QueryParams;
    let h = SignatureLocation::Headers;
    let hour = Duration::from_secs(3600);
    let skew = Duration::from_secs(20 * 60);
    let header_signed = || signed("GET", "/bucket/k", h, SECRET_KEY, now());
    let presigned = || signed("GET", "/bucket/k", q, SECRET_KEY, now());
    let auth_of = |req: &http::Request<()>| {
        req.headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .expect("authorization header")
    };
    let repeated_signed_headers = {
        let mut req = header_signed();
        let auth = auth_of(&req).replacen("SignedHeaders=host;", "SignedHeaders=host;host;", 1);
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, auth.parse().expect("header"));
        req
    };
    let unsorted_signed_headers = {
        let mut req = header_signed();
        let auth = auth_of(&req).replacen(
            "SignedHeaders=host;x-amz-content-sha256;x-amz-date",
            "SignedHeaders=x-amz-date;host;x-amz-content-sha256",
            1,
        );
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, auth.parse().expect("header"));
        req
    };
    let presigned_plus_header = {
        let mut req = presigned();
        let other = header_signed();
        for (name, value) in other.headers() {
            if name != http::header::HOST {
                req.headers_mut().insert(name.clone(), value.clone());
            }
        }
        req
    };
    let garbage = "AWS4-HMAC-SHA256 Credential=AKIDHOTPATH/20200101/eu-west-1/s3/aws4_request, \
                   SignedHeaders=host, Signature=00";
    let mut cases = vec![
        ("presigned GET", presigned(), Both),
        (
            "presigned HEAD",
            signed("HEAD", "/bucket/k", q, SECRET_KEY, now()),
            Both,
        ),
        ("header-signed GET", header_signed(), Both),
        (
            "header-signed HEAD",
            signed("HEAD", "/bucket/k", h, SECRET_KEY, now()),
            Both,
        ),
        (
            "header-signed GET, x-id",
            signed("GET", "/bucket/k?x-id=GetObject", h, SECRET_KEY, now()),
            Both,
        ),
        (
            "header-signed GET, UNSIGNED-PAYLOAD",
            signed_by(ACCESS_KEY, "GET", "/bucket/k", h, SECRET_KEY, now(), true),
            Both,
        ),
        (
            "presigned, checksum mode",
            with_header(presigned(), "x-amz-checksum-mode", "ENABLED"),
            Both,
        ),
        (
            "expired presigned URL",
            signed("GET", "/bucket/k", q, SECRET_KEY, now() - hour),
            Neither,
        ),
        (
            "presigned URL from the future",
            signed("GET", "/bucket/k", q, SECRET_KEY, now() + hour),
            Neither,
        ),
        (
            "header signature 20 minutes old",
            signed("GET", "/bucket/k", h, SECRET_KEY, now() - skew),
            Neither,
        ),
        (
            "header signature 20 minutes ahead",
            signed("GET", "/bucket/k", h, SECRET_KEY, now() + skew),
            Neither,
        ),
        (
            "wrong secret, presigned",
            signed("GET", "/bucket/k", q, "wrong", now()),
            Neither,
        ),
        (
            "wrong secret, header",
            signed("GET", "/bucket/k", h, "wrong", now()),
            Neither,
        ),
        (
            "unknown access key",
            signed_by("AKIDUNKNOWN", "GET", "/bucket/k", q, SECRET_KEY, now(), false),
            Neither,
        ),
        (
            "signature for another path",
            {
                let mut req = presigned();
                let uri = req.uri().to_string().replacen("/bucket/k", "/bucket/other", 1);
                *req.uri_mut() = uri.parse().expect("uri");
                req
            },
            Neither,
        ),
        (
            "signature for another method",
            {
                let mut req = signed("HEAD", "/bucket/k", q, SECRET_KEY, now());
                *req.method_mut() = http::Method::GET;
                req
            },
            Neither,
        ),
        (
            "signed host changed",
            {
                let mut req = presigned();
                req.headers_mut()
                    .insert(http::header::HOST, http::HeaderValue::from_static("evil.example"));
                req
            },
            Neither,
        ),
        ("repeated SignedHeaders", repeated_signed_headers, Neither),
        ("unsorted SignedHeaders", unsorted_signed_headers, Both),
        (
            "duplicated Authorization, valid first",
            with_header(header_signed(), "authorization", garbage),
            FullDecides,
        ),
        (
            "duplicated Authorization, garbage first",
            {
                let valid = auth_of(&header_signed());
                let mut req = header_signed();
                req.headers_mut()
                    .insert(http::header::AUTHORIZATION, garbage.parse().expect("header"));
                with_header(req, "authorization", &valid)
            },
            FullDecides,
        ),
        (
            "presigned URL plus Authorization header",
            presigned_plus_header,
            FullDecides,
        ),
        (
            "SigV2 header",
            with_header(
                anonymous("GET", "/bucket/k", Some(HOST)),
                "authorization",
                &format!("AWS {ACCESS_KEY}:c2lnbmF0dXJl"),
            ),
            Neither,
        ),
        ("anonymous GET", anonymous("GET", "/bucket/k", Some("localhost")), anon),
        (
            "anonymous HEAD",
            anonymous("HEAD", "/bucket/k", Some("localhost")),
            anon,
        ),
        ("anonymous GET, no Host", anonymous("GET", "/bucket/k", None), anon),
        (
            "anonymous GET, upper-case Host",
            anonymous("GET", "/bucket/k", Some("LOCALHOST")),
            anon,
        ),
        (
            "anonymous GET, IPv6 Host",
            anonymous("GET", "/bucket/k", Some("[::1]:8080")),
            anon,
        ),
        (
            "anonymous GET, encoded key",
            anonymous("GET", "/bucket/%6B", Some("localhost")),
            anon,
        ),
        (
            "anonymous GET, dot segment",
            anonymous("GET", "/bucket/./k", Some("localhost")),
            FullDecides,
        ),
        (
            "anonymous GET, double slash",
            anonymous("GET", "//bucket/k", Some("localhost")),
            FullDecides,
        ),
        (
            "anonymous GET, other key",
            anonymous("GET", "/bucket//k", Some("localhost")),
            FullDecides,
        ),
        (
            "anonymous PUT",
            anonymous("PUT", "/bucket/k", Some("localhost")),
            Neither,
        ),
        (
            "anonymous DELETE",
            anonymous("DELETE", "/bucket/k", Some("localhost")),
            Neither,
        ),
        (
            "anonymous bucket creation",
            anonymous("PUT", "/newbucket", Some("localhost")),
            Neither,
        ),
        (
            "anonymous GET, presigned parameters without a signature",
            anonymous("GET", "/bucket/k?X-Amz-Algorithm=AWS4-HMAC-SHA256", Some("localhost")),
            anon,
        ),
        (
            "anonymous GET, range",
            with_header(anonymous("GET", "/bucket/k", Some("localhost")), "range", "bytes=0-1"),
            FullDecides,
        ),
    ];
    // The same requests with a query parameter the hot path does not know are the full
    // path's alone.
    cases.push((
        "presigned GET, unknown parameter",
        {
            let mut req = presigned();
            let uri = format!("{}&tagging", req.uri());
            *req.uri_mut() = uri.parse().expect("uri");
            req
        },
        FullDecides,
    ));
    cases
}

async fn run(s: &Setup, cases: Vec<Case>, context: &str) {
    let mut failures = Vec::new();
    for (what, req, expect) in cases {
        let what = format!("{what} ({context})");
        let hot = s.hot.answer(&with_body(req.clone()));
        let full = parts(s.full.call(with_body(req)).await.expect("full path")).await;
        let accepted = full.0.is_success();
        match (expect, hot) {
            (Expect::Both, Some(hot)) => {
                let hot = parts(hot).await;
                if hot != full {
                    failures.push(format!("{what}: answers differ\n  hot:  {hot:?}\n  full: {full:?}"));
                }
            }
            (Expect::Both, None) => failures.push(format!("{what}: the hot path declined (full: {})", full.0)),
            (Expect::Neither | Expect::FullDecides, Some(_)) => {
                failures.push(format!("{what}: the hot path answered (full: {})", full.0));
            }
            (Expect::Neither, None) if accepted => {
                failures.push(format!("{what}: the full path accepted it ({})", full.0));
            }
            (Expect::Neither | Expect::FullDecides, None) => {}
        }
        if expect == Expect::Both && !accepted {
            failures.push(format!("{what}: the full path refused it ({})", full.0));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn both_doors_decide_alike() {
    for anonymous_reads in [false, true] {
        let s = setup(anonymous_reads);
        put(&s, "bucket", "k", hello()).await;
        run(
            &s,
            corpus(anonymous_reads),
            &format!("anonymous reads {anonymous_reads}"),
        )
        .await;
        // The object the doors answer with is the cached one.
        let req = signed("GET", "/bucket/k", SignatureLocation::QueryParams, SECRET_KEY, now());
        let answer = parts(s.hot.answer(&with_body(req)).expect("hot path")).await;
        assert_eq!(answer.2, Bytes::from_static(b"hello"));
    }
}

/// Identities with narrower rules: a prefix-scoped reader, a writer that may not read, an
/// identity the origin decides for, and anonymous reads of one prefix. The doors must refuse
/// the same reads.
#[tokio::test]
async fn both_doors_apply_the_same_grants() {
    use Expect::{Both, Neither};
    let file = format!(
        r#"
[[identity]]
access-key = "{ACCESS_KEY}"
secret-key = "{SECRET_KEY}"
allow = [{{ actions = ["read"], on = ["bucket/pub/"] }}]

[[identity]]
access-key = "AKIDWRITER"
secret-key = "{SECRET_KEY}"
allow = [{{ actions = ["write", "list"], on = ["bucket"] }}]

[[identity]]
access-key = "AKIDMAPPED"
secret-key = "{SECRET_KEY}"
allow = [{{ actions = ["read"], on = ["*"] }}]
[identity.origin]
access-key = "origin-key"
secret-key = "origin-secret"

[anonymous]
allow = [{{ actions = ["read"], on = ["bucket/pub/"] }}]
"#
    );
    let s = setup_with(Identities::parse(&file, |_| None).expect("identities"));
    put(&s, "bucket", "pub/a", hello()).await;
    put(&s, "bucket", "priv/b", hello()).await;
    let q = SignatureLocation::QueryParams;
    let h = SignatureLocation::Headers;
    let writer = |path: &str| signed_by("AKIDWRITER", "GET", path, q, SECRET_KEY, now(), false);
    // No origin is asked here: without the origin's yes, neither door serves it.
    let mapped = |path: &str| signed_by("AKIDMAPPED", "GET", path, q, SECRET_KEY, now(), false);
    let cases = vec![
        (
            "scoped reader, presigned, in prefix",
            signed("GET", "/bucket/pub/a", q, SECRET_KEY, now()),
            Both,
        ),
        (
            "scoped reader, header, in prefix",
            signed("GET", "/bucket/pub/a", h, SECRET_KEY, now()),
            Both,
        ),
        (
            "scoped reader, HEAD in prefix",
            signed("HEAD", "/bucket/pub/a", h, SECRET_KEY, now()),
            Both,
        ),
        (
            "scoped reader, outside its prefix",
            signed("GET", "/bucket/priv/b", q, SECRET_KEY, now()),
            Neither,
        ),
        (
            "scoped reader, HEAD outside",
            signed("HEAD", "/bucket/priv/b", h, SECRET_KEY, now()),
            Neither,
        ),
        (
            "scoped reader, expired",
            signed("GET", "/bucket/pub/a", q, SECRET_KEY, now() - Duration::from_secs(3600)),
            Neither,
        ),
        (
            "scoped reader, wrong secret",
            signed("GET", "/bucket/pub/a", q, "wrong", now()),
            Neither,
        ),
        ("writer without read", writer("/bucket/pub/a"), Neither),
        (
            "origin-mapped identity, origin not asked",
            mapped("/bucket/pub/a"),
            Neither,
        ),
        (
            "anonymous in prefix",
            anonymous("GET", "/bucket/pub/a", Some("localhost")),
            Both,
        ),
        (
            "anonymous outside",
            anonymous("GET", "/bucket/priv/b", Some("localhost")),
            Neither,
        ),
        (
            "anonymous write",
            anonymous("PUT", "/bucket/pub/a", Some("localhost")),
            Neither,
        ),
    ];
    run(&s, cases, "identities file").await;
}
