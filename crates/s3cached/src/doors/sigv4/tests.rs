use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;

use super::*;

pub(crate) const ACCESS_KEY: &str = "AKIDHOTPATH";
pub(crate) const SECRET_KEY: &str = "hot/path/secret/0123456789abcdefghijkl";
pub(crate) const HOST: &str = "127.0.0.1:9000";

pub(crate) fn verifier() -> Verifier {
    Verifier::new(&[Credentials {
        access_key: ACCESS_KEY.to_owned(),
        secret_key: SECRET_KEY.to_owned(),
    }])
}

/// `GET http://HOST{path_and_query}` signed by `secret` at `at`, as the AWS SDKs do it.
pub(crate) fn signed(
    method: &str,
    path_and_query: &str,
    location: SignatureLocation,
    secret: &str,
    at: SystemTime,
) -> http::Request<()> {
    signed_by(ACCESS_KEY, method, path_and_query, location, secret, at, false)
}

/// Like [`signed`], by `access_key`; `unsigned_payload` names `UNSIGNED-PAYLOAD` as the payload
/// hash of a header signature (as some clients do for GETs).
pub(crate) fn signed_by(
    access_key: &str,
    method: &str,
    path_and_query: &str,
    location: SignatureLocation,
    secret: &str,
    at: SystemTime,
    unsigned_payload: bool,
) -> http::Request<()> {
    let url = format!("http://{HOST}{path_and_query}");
    let mut req = http::Request::builder()
        .method(method)
        .uri(&url)
        .header("host", HOST)
        .body(())
        .expect("request");
    let identity = aws_credential_types::Credentials::new(access_key, secret, None, None, "test").into();
    let mut settings = SigningSettings::default();
    // What the S3 clients use: keys are encoded once and paths are not normalized.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.signature_location = location;
    let body = if location == SignatureLocation::Headers {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        if unsigned_payload {
            SignableBody::UnsignedPayload
        } else {
            SignableBody::Bytes(&[])
        }
    } else {
        settings.expires_in = Some(Duration::from_secs(300));
        SignableBody::UnsignedPayload
    };
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name("s3")
        .time(at)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(method, url.as_str(), [("host", HOST)].into_iter(), body).expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    instructions.apply_to_request_http1x(&mut req);
    req
}

fn check(v: &Verifier, req: &http::Request<()>, now: SystemTime) -> bool {
    check_remembering(v, req, now, false)
}

/// Like [`check`]; with `remember`, the request target is given, so a verified presigned
/// request is remembered.
fn check_remembering(v: &Verifier, req: &http::Request<()>, now: SystemTime, remember: bool) -> bool {
    let decoded = percent_encoding::percent_decode_str(req.uri().path())
        .decode_utf8()
        .expect("utf-8 path");
    let query: Vec<_> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
        .unwrap_or_default();
    v.verify(
        &SignedRequest {
            method: req.method().as_str(),
            decoded_path: &decoded,
            query: &query,
            headers: req.headers(),
            raw_target: remember.then(|| target(req)),
        },
        now,
    )
    .is_some()
}

fn target(req: &http::Request<()>) -> &str {
    req.uri().path_and_query().map_or("/", http::uri::PathAndQuery::as_str)
}

#[test]
fn a_verified_presigned_request_is_recalled_only_by_its_exact_bytes_and_within_its_date() {
    let v = verifier();
    // Whole seconds, as X-Amz-Date has it.
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let req = signed(
        "GET",
        "/bucket/key.txt?x-id=GetObject",
        SignatureLocation::QueryParams,
        SECRET_KEY,
        at,
    );
    let recall = |v: &Verifier, req: &http::Request<()>, method: &str, now: SystemTime| {
        v.recall_presigned(method, target(req), req.headers(), now)
    };
    // Nothing is recalled before a verification, nor after one that was not given the target.
    assert!(recall(&v, &req, "GET", at).is_none());
    assert!(check(&v, &req, at));
    assert!(recall(&v, &req, "GET", at).is_none());
    assert!(check_remembering(&v, &req, at, true));
    assert_eq!(recall(&v, &req, "GET", at).as_deref(), Some(ACCESS_KEY));

    // Other bytes: the method, the target, the host, or headers checked beside the signature.
    assert!(recall(&v, &req, "HEAD", at).is_none());
    let other_target = target(&req).replacen("key.txt", "key.tx", 1);
    assert!(v.recall_presigned("GET", &other_target, req.headers(), at).is_none());
    for (name, value) in [
        ("host", "127.0.0.1:9001"),
        ("authorization", "AWS4-HMAC-SHA256 Credential=x"),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ] {
        let mut headers = req.headers().clone();
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
        assert!(
            v.recall_presigned("GET", target(&req), &headers, at).is_none(),
            "{name}"
        );
    }
    let mut two_hosts = req.headers().clone();
    two_hosts.append(header::HOST, HeaderValue::from_static(HOST));
    assert!(v.recall_presigned("GET", target(&req), &two_hosts, at).is_none());

    // The date as the verification checks it: 300 s of validity, 15 minutes of skew.
    assert!(recall(&v, &req, "GET", at + Duration::from_secs(300)).is_some());
    assert!(recall(&v, &req, "GET", at + Duration::from_secs(302)).is_none());
    assert!(recall(&v, &req, "GET", at - Duration::from_secs(890)).is_some());
    assert!(recall(&v, &req, "GET", at - Duration::from_secs(902)).is_none());

    // New credentials: verified anew.
    v.replace_credentials(&[Credentials {
        access_key: ACCESS_KEY.to_owned(),
        secret_key: "another/secret/0123456789abcdefghijklmn".to_owned(),
    }]);
    assert!(recall(&v, &req, "GET", at).is_none());
    assert!(!check_remembering(&v, &req, at, true));

    // A header signature is never remembered.
    let v = verifier();
    let req = signed("GET", "/bucket/key.txt", SignatureLocation::Headers, SECRET_KEY, at);
    assert!(check_remembering(&v, &req, at, true));
    assert!(recall(&v, &req, "GET", at).is_none());
}

const LOCATIONS: [SignatureLocation; 2] = [SignatureLocation::QueryParams, SignatureLocation::Headers];

#[test]
fn accepts_what_the_sdk_signs() {
    let v = verifier();
    let now = SystemTime::now();
    for location in LOCATIONS {
        for path in [
            "/bucket/plain.txt",
            "/bucket/dir/sub%20dir/na%C3%AFve%2Bplus.bin",
            "/bucket/key%3Dwith%26odd%3Bchars",
            "/bucket/object?x-id=GetObject",
        ] {
            for method in ["GET", "HEAD"] {
                let req = signed(method, path, location, SECRET_KEY, now);
                assert!(check(&v, &req, now), "{location:?} {method} {path}");
                // The second time the signing key comes from the cache.
                assert!(check(&v, &req, now), "{location:?} {method} {path} (cached key)");
            }
        }
    }
}

#[test]
fn rejects_tampering_and_wrong_secrets() {
    let v = verifier();
    let now = SystemTime::now();
    for location in LOCATIONS {
        let req = signed("GET", "/bucket/a.txt", location, SECRET_KEY, now);
        // Another object, another method, another query.
        let mut other = req.clone();
        let uri = req.uri().to_string().replace("/a.txt", "/b.txt");
        *other.uri_mut() = uri.parse().expect("uri");
        assert!(!check(&v, &other, now), "{location:?}: other key");
        let mut head = req.clone();
        *head.method_mut() = http::Method::HEAD;
        assert!(!check(&v, &head, now), "{location:?}: other method");
        let mut host = req.clone();
        host.headers_mut()
            .insert("host", http::HeaderValue::from_static("evil:1"));
        assert!(!check(&v, &host, now), "{location:?}: other host");
        // The same request signed with a wrong secret.
        let wrong = signed("GET", "/bucket/a.txt", location, "not-the-secret", now);
        assert!(!check(&v, &wrong, now), "{location:?}: wrong secret");
    }
    // An unknown access key.
    let nobody = Verifier::new(&[]);
    let req = signed("GET", "/bucket/a.txt", SignatureLocation::QueryParams, SECRET_KEY, now);
    assert!(!check(&nobody, &req, now));
}

#[test]
fn enforces_expiry_and_clock_skew() {
    let v = verifier();
    let signed_at = SystemTime::now();
    let presigned = signed(
        "GET",
        "/bucket/a.txt",
        SignatureLocation::QueryParams,
        SECRET_KEY,
        signed_at,
    );
    assert!(check(&v, &presigned, signed_at + Duration::from_secs(299)));
    assert!(!check(&v, &presigned, signed_at + Duration::from_secs(302)), "expired");
    assert!(check(&v, &presigned, signed_at - Duration::from_secs(800)));
    assert!(
        !check(&v, &presigned, signed_at - Duration::from_secs(1000)),
        "from the future"
    );
    let header = signed(
        "GET",
        "/bucket/a.txt",
        SignatureLocation::Headers,
        SECRET_KEY,
        signed_at,
    );
    assert!(check(&v, &header, signed_at + Duration::from_secs(800)));
    assert!(!check(&v, &header, signed_at + Duration::from_secs(1000)), "too old");
    assert!(!check(&v, &header, signed_at - Duration::from_secs(1000)), "too new");
}

#[test]
fn leaves_payloads_other_than_the_empty_body_to_the_full_path() {
    let v = verifier();
    let now = SystemTime::now();
    let mut req = signed("GET", "/bucket/a.txt", SignatureLocation::QueryParams, SECRET_KEY, now);
    req.headers_mut().insert(
        "x-amz-content-sha256",
        http::HeaderValue::from_static("STREAMING-AWS4-HMAC-SHA256-PAYLOAD"),
    );
    assert!(!check(&v, &req, now));
}

#[test]
fn parses_credentials_and_dates() {
    let c = Credential::parse("AKID/20261126/us-east-1/s3/aws4_request").expect("credential");
    assert_eq!(
        (c.access_key, c.date, c.region, c.service, c.scope, c.scope_without_key),
        (
            "AKID",
            "20261126",
            "us-east-1",
            "s3",
            "AKID/20261126/us-east-1/s3",
            "20261126/us-east-1/s3/aws4_request"
        )
    );
    for bad in [
        "AKID/2026112/us-east-1/s3/aws4_request",
        "/20261126/r/s3/aws4_request",
        "AKID/20261126/r/s3",
    ] {
        assert!(Credential::parse(bad).is_none(), "{bad}");
    }
    assert_eq!(
        parse_amz_date("20261126T163808Z"),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_711_088))
    );
    for bad in [
        "20261126T163808",
        "2026-11-26T16:38:08Z",
        "20261326T163808Z",
        "20261126T246000Z",
    ] {
        assert!(parse_amz_date(bad).is_none(), "{bad}");
    }
}

/// Writes the seeds of the `sigv4_verify` and `hot_path` fuzz targets: requests signed as the
/// SDKs sign them, at the fuzz target's fixed clock (2026-11-30T12:00:00Z), as request heads
/// in text. `S3CACHED_FUZZ_CORPUS=fuzz/corpus cargo test -p s3cached --lib write_fuzz_seeds --
/// --ignored`.
#[test]
#[ignore = "writes the fuzz seed corpus"]
fn write_fuzz_seeds() {
    let Some(corpus) = std::env::var_os("S3CACHED_FUZZ_CORPUS") else {
        return;
    };
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_040_000);
    let requests = [
        (
            "presigned-get",
            signed(
                "GET",
                "/bucket/plain.txt",
                SignatureLocation::QueryParams,
                SECRET_KEY,
                at,
            ),
        ),
        (
            "header-get",
            signed("GET", "/bucket/plain.txt", SignatureLocation::Headers, SECRET_KEY, at),
        ),
        (
            "header-head",
            signed(
                "HEAD",
                "/bucket/key%3Dwith%26odd%3Bchars",
                SignatureLocation::Headers,
                SECRET_KEY,
                at,
            ),
        ),
        (
            "presigned-odd-path",
            signed(
                "GET",
                "/bucket/dir/sub%20dir/na%C3%AFve%2Bplus.bin?x-id=GetObject",
                SignatureLocation::QueryParams,
                SECRET_KEY,
                at,
            ),
        ),
        (
            "header-unsigned-payload",
            signed_by(
                ACCESS_KEY,
                "GET",
                "/photos/cat.png",
                SignatureLocation::Headers,
                SECRET_KEY,
                at,
                true,
            ),
        ),
    ];
    for target in ["sigv4_verify", "hot_path"] {
        let dir = std::path::Path::new(&corpus).join(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (name, req) in &requests {
            let mut text = format!(
                "{} {} HTTP/1.1\n",
                req.method(),
                req.uri().path_and_query().expect("path")
            );
            for (n, v) in req.headers() {
                text.push_str(&format!("{n}: {}\n", v.to_str().expect("text header")));
            }
            std::fs::write(dir.join(format!("seed-{name}")), text).expect("write seed");
        }
    }
}
