//! What a GetObject or HeadObject request asks of the cache: one definition for both doors.
//!
//! The full read path builds a [`ReadRequest`] from the input s3s parsed ([`ReadInput`]); the hot
//! path qualifies the raw HTTP request with [`scan_headers`] and [`query_role`]. Both take the
//! meaning of each header from [`header_role`], so a header that changes what GetObject answers
//! cannot be honoured by one door and ignored by the other. A request is answered by the hot
//! path only when it is [`ReadRequest::is_plain`] in the full path's eyes too (the differential
//! test in `hot_path` checks this over a corpus of requests).

use s3s::dto::{ChecksumMode, GetObjectInput, HeadObjectInput, Range, Timestamp};

use crate::model::conditional::Conditions;
use crate::model::key::CacheKey;

/// How a request header bears on a GetObject or HeadObject answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderRole {
    /// Only the origin can answer exactly: SSE-C keys, bucket-owner checks, requester pays.
    Bypass,
    /// A condition evaluated against the cached metadata (`If-*`).
    Condition,
    /// A byte range.
    Range,
    /// `x-amz-checksum-mode`: whether the answer carries the object's checksums.
    ChecksumMode,
    /// `Authorization`: a SigV4 signature.
    Authorization,
    /// No bearing on the answer.
    Neutral,
}

/// The role of the request header `name` (lower case, as `http` stores names).
#[must_use]
pub fn header_role(name: &str) -> HeaderRole {
    match name {
        "range" => HeaderRole::Range,
        "if-match" | "if-none-match" | "if-modified-since" | "if-unmodified-since" => HeaderRole::Condition,
        "x-amz-expected-bucket-owner"
        | "x-amz-request-payer"
        | "x-amz-server-side-encryption-customer-algorithm"
        | "x-amz-server-side-encryption-customer-key"
        | "x-amz-server-side-encryption-customer-key-md5" => HeaderRole::Bypass,
        "x-amz-checksum-mode" => HeaderRole::ChecksumMode,
        "authorization" => HeaderRole::Authorization,
        _ => HeaderRole::Neutral,
    }
}

/// How a query parameter bears on a GetObject or HeadObject answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryRole {
    /// Part of a presigned URL's SigV4 signature.
    Signature,
    /// `x-id`, the operation name SDKs add; no bearing on the answer.
    OperationHint,
    /// `versionId`: names a version other than the latest.
    Version,
    /// `response-*`: overrides a response header.
    Override,
    /// `partNumber`: only the origin can answer.
    Bypass,
    /// Anything else (another operation's parameter, or unknown).
    Other,
}

/// The role of the query parameter `name` (decoded).
#[must_use]
pub fn query_role(name: &str) -> QueryRole {
    match name {
        "X-Amz-Algorithm"
        | "X-Amz-Credential"
        | "X-Amz-Date"
        | "X-Amz-Expires"
        | "X-Amz-SignedHeaders"
        | "X-Amz-Signature"
        | "X-Amz-Security-Token" => QueryRole::Signature,
        "x-id" => QueryRole::OperationHint,
        "versionId" => QueryRole::Version,
        "response-cache-control"
        | "response-content-disposition"
        | "response-content-encoding"
        | "response-content-language"
        | "response-content-type"
        | "response-expires" => QueryRole::Override,
        "partNumber" => QueryRole::Bypass,
        _ => QueryRole::Other,
    }
}

/// What one pass over a request's headers found, for a request the hot path may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderScan {
    /// An `Authorization` header is present (exactly one).
    pub signed: bool,
    /// `x-amz-checksum-mode: ENABLED`.
    pub checksums: bool,
}

/// One pass over the request headers (cheaper than a lookup per name). `None` when a header
/// makes the request other than a plain read ([`HeaderRole`] other than neutral, a checksum
/// mode other than `ENABLED`, or a repeated `Authorization`, which s3s may read differently).
#[must_use]
pub fn scan_headers(headers: &http::HeaderMap) -> Option<HeaderScan> {
    let mut scan = HeaderScan {
        signed: false,
        checksums: false,
    };
    for (name, value) in headers {
        match header_role(name.as_str()) {
            HeaderRole::Neutral => {}
            // Recent SDKs ask for checksums on every GET; other values are rare.
            HeaderRole::ChecksumMode if value.as_bytes() == ChecksumMode::ENABLED.as_bytes() => {
                scan.checksums = true;
            }
            HeaderRole::Authorization if !scan.signed => scan.signed = true,
            HeaderRole::Authorization
            | HeaderRole::ChecksumMode
            | HeaderRole::Bypass
            | HeaderRole::Condition
            | HeaderRole::Range => return None,
        }
    }
    Some(scan)
}

/// The `response-*` overrides of one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `response-cache-control`.
    pub cache_control: Option<String>,
    /// `response-content-disposition`.
    pub content_disposition: Option<String>,
    /// `response-content-encoding`.
    pub content_encoding: Option<String>,
    /// `response-content-language`.
    pub content_language: Option<String>,
    /// `response-content-type`.
    pub content_type: Option<String>,
    /// `response-expires`.
    pub expires: Option<Timestamp>,
}

impl Overrides {
    /// True when no override was asked for.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The fields of a GetObject or HeadObject input the read path looks at (both inputs carry
/// the same ones).
pub trait ReadInput {
    /// Bucket name.
    fn bucket(&self) -> &str;
    /// Object key.
    fn object_key(&self) -> &str;
    /// `versionId`.
    fn version_id(&self) -> Option<&str>;
    /// True when the request carries a parameter only the origin can answer: a part number,
    /// SSE-C keys, a bucket-owner check or requester pays ([`HeaderRole::Bypass`],
    /// [`QueryRole::Bypass`]).
    fn bypasses_cache(&self) -> bool;
    /// `x-amz-checksum-mode: ENABLED`.
    fn wants_checksums(&self) -> bool;
    /// The `If-*` headers.
    fn conditions(&self) -> Conditions;
    /// The `Range` header.
    fn range(&self) -> Option<Range>;
    /// The `response-*` overrides.
    fn overrides(&self) -> Overrides;
}

fn checksum_enabled(mode: Option<&ChecksumMode>) -> bool {
    mode.is_some_and(|m| m.as_str() == ChecksumMode::ENABLED)
}

impl ReadInput for GetObjectInput {
    fn bucket(&self) -> &str {
        &self.bucket
    }
    fn object_key(&self) -> &str {
        &self.key
    }
    fn version_id(&self) -> Option<&str> {
        self.version_id.as_deref()
    }
    fn bypasses_cache(&self) -> bool {
        self.part_number.is_some()
            || self.sse_customer_algorithm.is_some()
            || self.sse_customer_key.is_some()
            || self.sse_customer_key_md5.is_some()
            || self.expected_bucket_owner.is_some()
            || self.request_payer.is_some()
    }
    fn wants_checksums(&self) -> bool {
        checksum_enabled(self.checksum_mode.as_ref())
    }
    fn conditions(&self) -> Conditions {
        Conditions {
            if_match: self.if_match.clone(),
            if_none_match: self.if_none_match.clone(),
            if_modified_since: self.if_modified_since.clone(),
            if_unmodified_since: self.if_unmodified_since.clone(),
        }
    }
    fn range(&self) -> Option<Range> {
        self.range
    }
    fn overrides(&self) -> Overrides {
        Overrides {
            cache_control: self.response_cache_control.clone(),
            content_disposition: self.response_content_disposition.clone(),
            content_encoding: self.response_content_encoding.clone(),
            content_language: self.response_content_language.clone(),
            content_type: self.response_content_type.clone(),
            expires: self.response_expires.clone(),
        }
    }
}

impl ReadInput for HeadObjectInput {
    fn bucket(&self) -> &str {
        &self.bucket
    }
    fn object_key(&self) -> &str {
        &self.key
    }
    fn version_id(&self) -> Option<&str> {
        self.version_id.as_deref()
    }
    fn bypasses_cache(&self) -> bool {
        self.part_number.is_some()
            || self.sse_customer_algorithm.is_some()
            || self.sse_customer_key.is_some()
            || self.sse_customer_key_md5.is_some()
            || self.expected_bucket_owner.is_some()
            || self.request_payer.is_some()
    }
    fn wants_checksums(&self) -> bool {
        checksum_enabled(self.checksum_mode.as_ref())
    }
    fn conditions(&self) -> Conditions {
        Conditions {
            if_match: self.if_match.clone(),
            if_none_match: self.if_none_match.clone(),
            if_modified_since: self.if_modified_since.clone(),
            if_unmodified_since: self.if_unmodified_since.clone(),
        }
    }
    fn range(&self) -> Option<Range> {
        self.range
    }
    fn overrides(&self) -> Overrides {
        Overrides {
            cache_control: self.response_cache_control.clone(),
            content_disposition: self.response_content_disposition.clone(),
            content_encoding: self.response_content_encoding.clone(),
            content_language: self.response_content_language.clone(),
            content_type: self.response_content_type.clone(),
            expires: self.response_expires.clone(),
        }
    }
}

/// What a GetObject or HeadObject request asks of the cache.
#[derive(Debug, Clone, Default)]
pub struct ReadRequest {
    /// The object (and version) the cache keeps it under; `None` when the names cannot be
    /// cached.
    pub key: Option<CacheKey>,
    /// Only the origin can answer ([`ReadInput::bypasses_cache`]).
    pub bypass: bool,
    /// The answer carries the object's checksums (whole-object answers only, as S3 does).
    pub checksums: bool,
    /// The `If-*` headers.
    pub conditions: Conditions,
    /// The `Range` header.
    pub range: Option<Range>,
    /// The `response-*` overrides.
    pub overrides: Overrides,
}

impl ReadRequest {
    /// What `input` asks for.
    #[must_use]
    pub fn of(input: &impl ReadInput) -> Self {
        Self {
            key: CacheKey::new(input.bucket(), input.object_key())
                .ok()
                .map(|k| k.with_version(input.version_id())),
            bypass: input.bypasses_cache(),
            checksums: input.wants_checksums(),
            conditions: input.conditions(),
            range: input.range(),
            overrides: input.overrides(),
        }
    }

    /// The key the cache answers this request from; `None` when it must go to the origin.
    #[must_use]
    pub fn cache_key(&self) -> Option<&CacheKey> {
        self.key.as_ref().filter(|_| !self.bypass)
    }

    /// True for a request the hot path may answer: the latest version of an object, whole,
    /// unconditional, without overrides.
    #[must_use]
    pub fn is_plain(&self) -> bool {
        self.cache_key().is_some_and(|k| k.version().is_none())
            && self.conditions.is_empty()
            && self.range.is_none()
            && self.overrides.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    http::HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn plain_requests_scan_clean() {
        let scan = scan_headers(&headers(&[("host", "h"), ("x-amz-checksum-mode", "ENABLED")])).unwrap();
        assert!(scan.checksums && !scan.signed);
        assert!(
            scan_headers(&headers(&[("authorization", "AWS4-HMAC-SHA256 x")]))
                .unwrap()
                .signed
        );
    }

    #[test]
    fn every_non_neutral_header_declines() {
        for name in [
            "range",
            "if-match",
            "if-none-match",
            "if-modified-since",
            "if-unmodified-since",
            "x-amz-expected-bucket-owner",
            "x-amz-request-payer",
            "x-amz-server-side-encryption-customer-algorithm",
            "x-amz-server-side-encryption-customer-key",
            "x-amz-server-side-encryption-customer-key-md5",
        ] {
            assert_ne!(header_role(name), HeaderRole::Neutral, "{name}");
            assert!(scan_headers(&headers(&[(name, "x")])).is_none(), "{name}");
        }
        assert!(scan_headers(&headers(&[("x-amz-checksum-mode", "enabled")])).is_none());
    }

    #[test]
    fn a_repeated_authorization_header_declines() {
        let mut h = headers(&[("authorization", "a")]);
        h.append(http::header::AUTHORIZATION, http::HeaderValue::from_static("b"));
        assert!(scan_headers(&h).is_none());
    }

    #[test]
    fn inputs_map_to_the_same_request() {
        let get = GetObjectInput::builder()
            .bucket("bkt".into())
            .key("k".into())
            .part_number(Some(1))
            .build()
            .unwrap();
        let head = HeadObjectInput::builder()
            .bucket("bkt".into())
            .key("k".into())
            .version_id(Some("v".into()))
            .build()
            .unwrap();
        let (get, head) = (ReadRequest::of(&get), ReadRequest::of(&head));
        assert!(get.bypass && get.cache_key().is_none() && !get.is_plain());
        assert!(!head.bypass && head.cache_key().is_some() && !head.is_plain());
        assert_eq!(query_role("partNumber"), QueryRole::Bypass);
        assert_eq!(query_role("X-Amz-Signature"), QueryRole::Signature);
    }
}
