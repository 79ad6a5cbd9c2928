//! Helpers shared by the fuzz targets: turning fuzz bytes into the inputs the library parses.

use std::borrow::Cow;

/// An HTTP/1.1-like request head in text, one line each, `\r` optional:
///
/// ```text
/// GET /bucket/key?X-Amz-Date=... HTTP/1.1
/// host: 127.0.0.1:9000
/// authorization: AWS4-HMAC-SHA256 Credential=...
/// ```
///
/// The version is optional (HTTP/1.1 by default); a header line without `:` is skipped. `None`
/// when the method, the request target or a header does not make an `http` request at all.
#[must_use]
pub fn request(data: &[u8]) -> Option<http::Request<()>> {
    let mut lines = data.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut start = lines.next()?.splitn(3, |&b| b == b' ');
    let method = http::Method::from_bytes(start.next()?).ok()?;
    let uri = http::Uri::try_from(start.next()?).ok()?;
    let version = match start.next() {
        None | Some(b"HTTP/1.1") => http::Version::HTTP_11,
        Some(b"HTTP/1.0") => http::Version::HTTP_10,
        Some(b"HTTP/0.9") => http::Version::HTTP_09,
        Some(b"HTTP/2") | Some(b"HTTP/2.0") => http::Version::HTTP_2,
        Some(_) => http::Version::HTTP_3,
    };
    let mut builder = http::Request::builder().method(method).uri(uri).version(version);
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = http::HeaderName::from_bytes(&line[..colon]).ok()?;
        let value = line[colon + 1..].trim_ascii_start();
        let value = http::HeaderValue::from_bytes(value).ok()?;
        builder = builder.header(name, value);
    }
    builder.body(()).ok()
}

/// The first `n - 1` lines of `data` and the rest, as text (invalid UTF-8 replaced); fewer
/// when `data` has fewer lines.
#[must_use]
pub fn fields(data: &[u8], n: usize) -> Vec<Cow<'_, str>> {
    data.splitn(n, |&b| b == b'\n').map(String::from_utf8_lossy).collect()
}

/// The query pairs of `uri`, decoded as `application/x-www-form-urlencoded` (what s3s reads).
#[must_use]
pub fn query_pairs(uri: &http::Uri) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    uri.query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).collect())
        .unwrap_or_default()
}
