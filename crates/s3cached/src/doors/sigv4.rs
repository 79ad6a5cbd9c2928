//! SigV4 verification for the hot path ([`crate::doors::hot_path`]): presigned URLs and
//! `Authorization` headers of bodiless GET and HEAD requests, canonicalized the way s3s does it,
//! with each signing key derived once per access key, day, region and service rather than on
//! every request (four HMACs saved per request).
//!
//! The verifier only ever says yes. A request it does not recognise (another algorithm, SigV2, a
//! payload hash other than the empty body's, unsorted signed headers, an expired or skewed date,
//! a wrong signature) is left to s3s, which answers it with the proper S3 error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, header};
use sha2::{Digest, Sha256};

use crate::model::config::Credentials;

type HmacSha256 = Hmac<Sha256>;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// SHA-256 of the empty string: the payload hash of a request without a body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How far a request's date may be from this server's clock (s3s' default, 15 minutes).
const MAX_SKEW: Duration = Duration::from_secs(900);
/// Signing keys kept; one per access key, day and region in practice, so this bound is only
/// reached by a client cycling through regions. The cache is then emptied and refilled.
const MAX_SIGNING_KEYS: usize = 1024;

static X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
static X_AMZ_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-amz-content-sha256");

/// Presigned requests remembered after their signature was verified; past this many, all
/// are forgotten and verified anew.
const MAX_REMEMBERED: usize = 16 * 1024;

/// The parts of a request a signature covers.
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `GET` or `HEAD`.
    pub method: &'a str,
    /// The URI path, percent-decoded (s3s re-encodes it for the canonical request).
    pub decoded_path: &'a str,
    /// The query parameters, decoded (`application/x-www-form-urlencoded`), in request order.
    pub query: &'a [(Cow<'a, str>, Cow<'a, str>)],
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The request target as sent (path and query, percent-encoded), when known: a presigned
    /// request verified with it is remembered, see [`Verifier::recall_presigned`].
    pub raw_target: Option<&'a str>,
}

/// Checks SigV4 signatures against a fixed set of client credentials.
pub struct Verifier {
    secrets: RwLock<HashMap<String, String>>,
    /// Keyed signing HMACs by credential scope (`access-key/date/region/service`).
    signing_keys: RwLock<HashMap<String, HmacSha256>>,
    /// Verified presigned requests by request target.
    remembered: RwLock<HashMap<Box<str>, Vec<RememberedUrl>>>,
}

/// A presigned request whose signature was verified. The same method, target and `Host`
/// (the only signed header) make the same canonical request, so a request with exactly
/// these bytes carries a valid signature for as long as its date allows.
struct RememberedUrl {
    method: Box<str>,
    host: HeaderValue,
    access_key: Arc<str>,
    signed_at: SystemTime,
    expires: Duration,
}

/// Whether a request signed at `signed_at` for `expires` may be taken at `now`.
fn within_window(signed_at: SystemTime, expires: Duration, now: SystemTime) -> bool {
    match now.duration_since(signed_at) {
        Ok(age) => age <= expires,
        Err(early) => early.duration() <= MAX_SKEW,
    }
}

/// The one `Host` value of a request that may be remembered or recalled: presigned only (no
/// `Authorization`) and naming no payload hash, which are checked beside the signature.
fn rememberable_host(headers: &HeaderMap) -> Option<&HeaderValue> {
    if headers.contains_key(header::AUTHORIZATION) || headers.contains_key(&X_AMZ_CONTENT_SHA256) {
        return None;
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    let host = hosts.next()?;
    hosts.next().is_none().then_some(host)
}

impl Verifier {
    /// A verifier accepting signatures made with any of `credentials`.
    #[must_use]
    pub fn new(credentials: &[Credentials]) -> Self {
        Self {
            secrets: RwLock::new(secrets_of(credentials)),
            signing_keys: RwLock::new(HashMap::new()),
            remembered: RwLock::new(HashMap::new()),
        }
    }

    /// The access key of a presigned `method` request for `target` (path and query as sent)
    /// with `headers`, when a request with exactly these bytes was verified before by the
    /// current credentials and its date still allows it at `now`; `None` otherwise (verify
    /// it).
    #[must_use]
    pub fn recall_presigned(
        &self,
        method: &str,
        target: &str,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Option<Arc<str>> {
        let host = rememberable_host(headers)?;
        let remembered = self.remembered.read().unwrap_or_else(PoisonError::into_inner);
        remembered
            .get(target)?
            .iter()
            .find(|r| *r.method == *method && r.host == host && within_window(r.signed_at, r.expires, now))
            .map(|r| Arc::clone(&r.access_key))
    }

    fn remember(&self, req: &SignedRequest<'_>, access_key: &str, signed_at: SystemTime, expires: Duration) {
        let (Some(target), Some(host)) = (req.raw_target, rememberable_host(req.headers)) else {
            return;
        };
        let url = RememberedUrl {
            method: req.method.into(),
            host: host.clone(),
            access_key: access_key.into(),
            signed_at,
            expires,
        };
        let mut remembered = self.remembered.write().unwrap_or_else(PoisonError::into_inner);
        if remembered.len() >= MAX_REMEMBERED {
            remembered.clear();
        }
        let urls = remembered.entry(target.into()).or_default();
        // A target is asked for with few methods and hosts; a few more entries, then start over.
        if urls.len() >= 4 {
            urls.clear();
        }
        urls.push(url);
    }

    /// Accepts signatures by `credentials` from now on (and no others): on reload.
    pub fn replace_credentials(&self, credentials: &[Credentials]) {
        let mut secrets = self.secrets.write().unwrap_or_else(PoisonError::into_inner);
        *secrets = secrets_of(credentials);
        // Derived keys, and requests verified with them, may belong to a secret that changed
        // or went away.
        self.signing_keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.remembered.write().unwrap_or_else(PoisonError::into_inner).clear();
        drop(secrets);
    }

    /// The access key that signed `req`, when it carries a valid SigV4 signature (presigned
    /// URL or `Authorization` header, not both) by a known access key, dated within bounds of
    /// `now`; `None` otherwise (s3s then decides).
    #[must_use]
    pub fn verify<'a>(&self, req: &SignedRequest<'a>, now: SystemTime) -> Option<&'a str> {
        let presigned = req.query.iter().any(|(n, _)| n == "X-Amz-Signature");
        match (req.headers.contains_key(http::header::AUTHORIZATION), presigned) {
            (true, false) => self.verify_header(req, now),
            (false, true) => self.verify_presigned(req, now),
            // Both kinds at once, or neither: s3s reads such requests its own way.
            _ => None,
        }
    }

    fn verify_presigned<'a>(&self, req: &SignedRequest<'a>, now: SystemTime) -> Option<&'a str> {
        let query: &'a [(Cow<'a, str>, Cow<'a, str>)] = req.query;
        let get = |name: &str| -> Option<&'a str> {
            let mut values = query.iter().filter(|(n, _)| n == name);
            let first = values.next()?;
            values.next().is_none().then_some(first.1.as_ref())
        };
        if get("X-Amz-Algorithm")? != ALGORITHM {
            return None;
        }
        let credential = Credential::parse(get("X-Amz-Credential")?)?;
        let date = get("X-Amz-Date")?;
        let signed_at = parse_amz_date(date)?;
        if !date.starts_with(credential.date) {
            return None;
        }
        let expires = Duration::from_secs(u64::from(get("X-Amz-Expires")?.parse::<u32>().ok()?));
        if !within_window(signed_at, expires, now) {
            return None;
        }
        // A presigned request may still name its payload hash; only the empty body's (or
        // none) fits a GET or HEAD without a body.
        if let Some(v) = req.headers.get(&X_AMZ_CONTENT_SHA256) {
            let v = v.to_str().ok()?;
            if v != UNSIGNED_PAYLOAD && v != EMPTY_SHA256 {
                return None;
            }
        }
        let signed_headers: Vec<&str> = get("X-Amz-SignedHeaders")?.split(';').collect();
        if !strictly_sorted(&signed_headers) {
            return None;
        }
        let unsigned_query = req.query.iter().filter(|(n, _)| n != "X-Amz-Signature");
        let canonical = canonical_request(req, unsigned_query, &signed_headers, UNSIGNED_PAYLOAD)?;
        self.check(&credential, date, &canonical, get("X-Amz-Signature")?)?;
        if signed_headers == ["host"] {
            self.remember(req, credential.access_key, signed_at, expires);
        }
        Some(credential.access_key)
    }

    fn verify_header<'a>(&self, req: &SignedRequest<'a>, now: SystemTime) -> Option<&'a str> {
        let headers: &'a HeaderMap = req.headers;
        let auth = Authorization::parse(single_header(headers, &http::header::AUTHORIZATION)?)?;
        let date = single_header(req.headers, &X_AMZ_DATE)?;
        let signed_at = parse_amz_date(date)?;
        if !date.starts_with(auth.credential.date) {
            return None;
        }
        let skew = now.duration_since(signed_at).unwrap_or_else(|early| early.duration());
        if skew > MAX_SKEW {
            return None;
        }
        let payload = single_header(req.headers, &X_AMZ_CONTENT_SHA256)?;
        if payload != UNSIGNED_PAYLOAD && payload != EMPTY_SHA256 {
            return None;
        }
        // s3s sorts the names it is given, and refuses repeated ones.
        let mut signed_headers = auth.signed_headers;
        signed_headers.sort_unstable();
        if !strictly_sorted(&signed_headers) {
            return None;
        }
        let canonical = canonical_request(req, req.query.iter(), &signed_headers, payload)?;
        self.check(&auth.credential, date, &canonical, auth.signature)?;
        Some(auth.credential.access_key)
    }

    /// Signs the canonical request with the scope's key and compares with `expected`.
    fn check(&self, credential: &Credential<'_>, amz_date: &str, canonical: &str, expected: &str) -> Option<()> {
        if credential.service != "s3" {
            return None;
        }
        let mut string_to_sign = String::with_capacity(160);
        string_to_sign.push_str(ALGORITHM);
        string_to_sign.push('\n');
        string_to_sign.push_str(amz_date);
        string_to_sign.push('\n');
        string_to_sign.push_str(credential.scope_without_key);
        string_to_sign.push('\n');
        push_hex(&mut string_to_sign, &Sha256::digest(canonical.as_bytes()));

        let mut mac = self.signing_key(credential)?;
        mac.update(string_to_sign.as_bytes());
        let mut actual = String::with_capacity(64);
        push_hex(&mut actual, &mac.finalize().into_bytes());
        constant_time_eq(actual.as_bytes(), expected.as_bytes()).then_some(())
    }

    /// The keyed HMAC of the credential's scope, derived on first use.
    fn signing_key(&self, credential: &Credential<'_>) -> Option<HmacSha256> {
        let scope = credential.scope;
        if let Some(mac) = self
            .signing_keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(scope)
        {
            return Some(mac.clone());
        }
        // Held until the key is cached, so a reload (which takes it to write) cannot clear
        // the cache between this derivation from the old secret and its insertion.
        let secrets = self.secrets.read().unwrap_or_else(PoisonError::into_inner);
        let secret = secrets.get(credential.access_key)?;
        let k_date = hmac(format!("AWS4{secret}").as_bytes(), credential.date.as_bytes())?;
        let k_region = hmac(&k_date, credential.region.as_bytes())?;
        let k_service = hmac(&k_region, credential.service.as_bytes())?;
        let k_signing = hmac(&k_service, b"aws4_request")?;
        let mac = HmacSha256::new_from_slice(&k_signing).ok()?;
        let mut keys = self.signing_keys.write().unwrap_or_else(PoisonError::into_inner);
        if keys.len() >= MAX_SIGNING_KEYS {
            keys.clear();
        }
        keys.insert(scope.to_owned(), mac.clone());
        drop(keys);
        drop(secrets);
        Some(mac)
    }
}

fn secrets_of(credentials: &[Credentials]) -> HashMap<String, String> {
    credentials
        .iter()
        .map(|c| (c.access_key.clone(), c.secret_key.clone()))
        .collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Option<Vec<u8>> {
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(data);
    Some(mac.finalize().into_bytes().to_vec())
}

/// `Credential=<access-key>/<yyyymmdd>/<region>/<service>/aws4_request`, split up.
struct Credential<'a> {
    access_key: &'a str,
    date: &'a str,
    region: &'a str,
    service: &'a str,
    /// `<access-key>/<date>/<region>/<service>`: names the signing key.
    scope: &'a str,
    /// `<date>/<region>/<service>/aws4_request`: the scope line of the string to sign.
    scope_without_key: &'a str,
}

impl<'a> Credential<'a> {
    fn parse(s: &'a str) -> Option<Self> {
        let scope = s.strip_suffix("/aws4_request")?;
        let mut parts = scope.rsplitn(4, '/');
        let service = parts.next()?;
        let region = parts.next()?;
        let date = parts.next()?;
        let access_key = parts.next()?;
        let valid = !access_key.is_empty() && date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit());
        valid.then(|| Self {
            access_key,
            date,
            region,
            service,
            scope,
            scope_without_key: &s[access_key.len() + 1..],
        })
    }
}

/// `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=a;b, Signature=…`.
struct Authorization<'a> {
    credential: Credential<'a>,
    signed_headers: Vec<&'a str>,
    signature: &'a str,
}

impl<'a> Authorization<'a> {
    fn parse(header: &'a str) -> Option<Self> {
        let rest = header.strip_prefix(ALGORITHM)?;
        if !rest.starts_with(' ') {
            return None;
        }
        let mut fields = rest.split(',').map(str::trim);
        let credential = Credential::parse(fields.next()?.strip_prefix("Credential=")?)?;
        let signed_headers = fields.next()?.strip_prefix("SignedHeaders=")?.split(';').collect();
        let signature = fields.next()?.strip_prefix("Signature=")?;
        fields.next().is_none().then_some(Self {
            credential,
            signed_headers,
            signature,
        })
    }
}

/// Signed header names in the order SigV4 prescribes, each once: anything else is left to s3s,
/// which may canonicalize it differently.
fn strictly_sorted(names: &[&str]) -> bool {
    names.windows(2).all(|w| w[0] < w[1])
}

/// The one value of a header, as text.
fn single_header<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then(|| first.to_str().ok()).flatten()
}

/// `yyyymmddThhmmssZ` as a point in time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let digits = s.get(range)?;
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())
            .flatten()
    };
    let year = i32::try_from(num(0..4)?).ok()?;
    let month = time::Month::try_from(u8::try_from(num(4..6)?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(year, month, u8::try_from(num(6..8)?).ok()?).ok()?;
    let clock = time::Time::from_hms(
        u8::try_from(num(9..11)?).ok()?,
        u8::try_from(num(11..13)?).ok()?,
        u8::try_from(num(13..15)?).ok()?,
    )
    .ok()?;
    let unix = time::PrimitiveDateTime::new(date, clock).assume_utc().unix_timestamp();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).ok()?))
}

/// The canonical request as s3s builds it; `None` when a signed header is missing, not text,
/// or the signed-header list is not in order.
fn canonical_request<'q, 'a: 'q>(
    req: &SignedRequest<'_>,
    query: impl Iterator<Item = &'q (Cow<'a, str>, Cow<'a, str>)>,
    signed_headers: &[&str],
    payload: &str,
) -> Option<String> {
    if signed_headers.is_empty() || !signed_headers.is_sorted() {
        return None;
    }
    let mut out = String::with_capacity(512);
    out.push_str(req.method);
    out.push('\n');
    uri_encode(&mut out, req.decoded_path, false);
    out.push('\n');

    // Sorted by encoded name, stably (repeated names keep their order), as in s3s. Names made
    // of unreserved characters only (SigV4's own, `x-id`) encode to themselves.
    let mut params: Vec<(Cow<'_, str>, &str)> = query
        .map(|(n, v)| {
            let name = if n.bytes().all(is_unreserved) {
                Cow::Borrowed(n.as_ref())
            } else {
                let mut encoded = String::new();
                uri_encode(&mut encoded, n, true);
                Cow::Owned(encoded)
            };
            (name, v.as_ref())
        })
        .collect();
    params.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, value)) in params.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        uri_encode(&mut out, value, true);
    }
    out.push('\n');

    // Each name once (sorted, so repeats are adjacent); `authorization` is never signed.
    let names = || {
        signed_headers
            .iter()
            .enumerate()
            .filter(|&(i, &name)| name != "authorization" && (i == 0 || signed_headers[i - 1] != name))
            .map(|(_, &name)| name)
    };
    for name in names() {
        let mut values = req.headers.get_all(name).iter().peekable();
        values.peek()?;
        out.push_str(name);
        out.push(':');
        for (i, value) in values.enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_normalized(&mut out, value.to_str().ok()?);
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in names().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(payload);
    Some(out)
}

/// Trims a header value and folds runs of whitespace into one space.
fn push_normalized(out: &mut String, value: &str) {
    for (i, word) in value.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// SigV4's URI encoding: everything but unreserved characters (and `/` unless asked) as
/// upper-case `%XX`.
fn uri_encode(out: &mut String, input: &str, encode_slash: bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    // Runs of kept bytes are copied whole. They are ASCII, so a run starts and ends at char
    // boundaries (a byte after a kept one never continues a character).
    let mut start = 0;
    for (i, &b) in input.as_bytes().iter().enumerate() {
        if is_unreserved(b) || (b == b'/' && !encode_slash) {
            continue;
        }
        if start < i {
            out.push_str(input.get(start..i).unwrap_or_default());
        }
        out.push('%');
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
        start = i + 1;
    }
    if start < input.len() {
        out.push_str(input.get(start..).unwrap_or_default());
    }
}

fn is_unreserved(b: u8) -> bool {
    matches!(b, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'~' | b'.')
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
pub(crate) mod tests;
