//! What a forwarded request asks of S3, read from its method, path, query and headers the way
//! S3 routes it: the operation's name (metrics), the action it needs (authorization), and
//! what it changes (invalidation). The cached reads (plain GetObject and HeadObject),
//! ListBuckets and browser-form uploads are not classified here: s3s routes those to the
//! cache's own handlers.

use http::{HeaderMap, Method};
use s3s::dto::CopySource;
use s3s::path::S3Path;

use crate::model::identities::Action;
use crate::model::read_request::{HeaderRole, QueryRole, header_role, query_role};

/// A request the cache forwards to the origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// S3's name of the operation (`PutObject`, `GetBucketCors`, ...).
    pub name: &'static str,
    /// What the caller needs to be granted on the path's bucket or object.
    pub action: Action,
    /// What the operation changes in the cache's view of the bucket.
    pub changes: Changes,
    /// The object a copy reads (`x-amz-copy-source`), which needs a read grant.
    pub copy_source: Option<SourceObject>,
    /// The prefix a listing is limited to (`prefix`), when it is a listing.
    pub list_prefix: Option<String>,
}

/// The object named by `x-amz-copy-source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceObject {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
}

/// What a forwarded operation changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// Nothing the cache holds (reads, bucket configuration, multipart steps before
    /// completion).
    Nothing,
    /// The object of the path (of `version`, when the request names one).
    Object {
        /// The `versionId` the request names.
        version: Option<String>,
    },
    /// The object of the path, replaced by the request's body (PutObject: write-through).
    Put,
    /// The objects the request body lists (DeleteObjects).
    ListedKeys,
}

/// Why a copy source cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClassifyError {
    /// `x-amz-copy-source` is not `bucket/key[?versionId=...]`.
    #[error("invalid x-amz-copy-source: {0}")]
    CopySource(String),
    /// Copies from access points and outposts cannot be authorized per object here.
    #[error("copies from access points and outposts are not supported")]
    CopySourceKind,
}

/// The request's query pairs, decoded as s3s reads them (`+` is a space).
#[must_use]
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn has(query: &[(String, String)], name: &str) -> bool {
    query.iter().any(|(n, _)| n == name)
}

fn value<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Bucket subresources, with the operation names S3 gives them per method.
const BUCKET_SUBRESOURCES: &[(&str, &str, &str, &str)] = &[
    // (query name, GET, PUT, DELETE)
    (
        "accelerate",
        "GetBucketAccelerateConfiguration",
        "PutBucketAccelerateConfiguration",
        "",
    ),
    ("acl", "GetBucketAcl", "PutBucketAcl", ""),
    (
        "analytics",
        "GetBucketAnalyticsConfiguration",
        "PutBucketAnalyticsConfiguration",
        "DeleteBucketAnalyticsConfiguration",
    ),
    ("cors", "GetBucketCors", "PutBucketCors", "DeleteBucketCors"),
    (
        "encryption",
        "GetBucketEncryption",
        "PutBucketEncryption",
        "DeleteBucketEncryption",
    ),
    (
        "intelligent-tiering",
        "GetBucketIntelligentTieringConfiguration",
        "PutBucketIntelligentTieringConfiguration",
        "DeleteBucketIntelligentTieringConfiguration",
    ),
    (
        "inventory",
        "GetBucketInventoryConfiguration",
        "PutBucketInventoryConfiguration",
        "DeleteBucketInventoryConfiguration",
    ),
    (
        "lifecycle",
        "GetBucketLifecycleConfiguration",
        "PutBucketLifecycleConfiguration",
        "DeleteBucketLifecycle",
    ),
    ("logging", "GetBucketLogging", "PutBucketLogging", ""),
    (
        "metadataTable",
        "GetBucketMetadataTableConfiguration",
        "",
        "DeleteBucketMetadataTableConfiguration",
    ),
    (
        "metrics",
        "GetBucketMetricsConfiguration",
        "PutBucketMetricsConfiguration",
        "DeleteBucketMetricsConfiguration",
    ),
    (
        "notification",
        "GetBucketNotificationConfiguration",
        "PutBucketNotificationConfiguration",
        "",
    ),
    (
        "object-lock",
        "GetObjectLockConfiguration",
        "PutObjectLockConfiguration",
        "",
    ),
    (
        "ownershipControls",
        "GetBucketOwnershipControls",
        "PutBucketOwnershipControls",
        "DeleteBucketOwnershipControls",
    ),
    ("policy", "GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy"),
    ("policyStatus", "GetBucketPolicyStatus", "", ""),
    (
        "publicAccessBlock",
        "GetPublicAccessBlock",
        "PutPublicAccessBlock",
        "DeletePublicAccessBlock",
    ),
    (
        "replication",
        "GetBucketReplication",
        "PutBucketReplication",
        "DeleteBucketReplication",
    ),
    (
        "requestPayment",
        "GetBucketRequestPayment",
        "PutBucketRequestPayment",
        "",
    ),
    ("tagging", "GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging"),
    ("versioning", "GetBucketVersioning", "PutBucketVersioning", ""),
    ("website", "GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite"),
];

fn op(name: &'static str, action: Action) -> Operation {
    Operation {
        name,
        action,
        changes: Changes::Nothing,
        copy_source: None,
        list_prefix: None,
    }
}

fn listing(name: &'static str, query: &[(String, String)]) -> Operation {
    Operation {
        list_prefix: Some(value(query, "prefix").unwrap_or("").to_owned()),
        ..op(name, Action::List)
    }
}

fn changing(name: &'static str, changes: Changes) -> Operation {
    Operation {
        changes,
        ..op(name, Action::Write)
    }
}

fn copy_source(headers: &HeaderMap) -> Result<Option<SourceObject>, ClassifyError> {
    let Some(raw) = headers.get("x-amz-copy-source") else {
        return Ok(None);
    };
    let text = raw
        .to_str()
        .map_err(|_| ClassifyError::CopySource("not ASCII".to_owned()))?;
    match CopySource::parse(text).map_err(|e| ClassifyError::CopySource(e.to_string()))? {
        CopySource::Bucket { bucket, key, .. } => Ok(Some(SourceObject {
            bucket: bucket.into(),
            key: key.into(),
        })),
        CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => Err(ClassifyError::CopySourceKind),
    }
}

/// The operation of a request to forward, or `None` for the requests s3s routes to the
/// cache's own handlers (and requests S3 would not route at all, which s3s answers).
///
/// # Errors
/// [`ClassifyError`] when a copy names a source that cannot be authorized.
pub fn classify(
    method: &Method,
    path: &S3Path,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Option<Operation>, ClassifyError> {
    let version = || value(query, "versionId").map(str::to_owned);
    Ok(match path {
        S3Path::Root => None,
        S3Path::Bucket { .. } => match *method {
            Method::HEAD => Some(op("HeadBucket", Action::Read)),
            Method::GET => Some(bucket_get(query)),
            Method::PUT => Some(
                BUCKET_SUBRESOURCES
                    .iter()
                    .find(|(q, _, put, _)| !put.is_empty() && has(query, q))
                    .map_or_else(
                        || op("CreateBucket", Action::Admin),
                        |(_, _, put, _)| op(put, Action::Admin),
                    ),
            ),
            Method::DELETE => Some(
                BUCKET_SUBRESOURCES
                    .iter()
                    .find(|(q, _, _, del)| !del.is_empty() && has(query, q))
                    .map_or_else(
                        || op("DeleteBucket", Action::Admin),
                        |(_, _, _, del)| op(del, Action::Admin),
                    ),
            ),
            Method::POST if has(query, "delete") => Some(changing("DeleteObjects", Changes::ListedKeys)),
            Method::POST if has(query, "metadataTable") => {
                Some(op("CreateBucketMetadataTableConfiguration", Action::Admin))
            }
            // Browser-form uploads (PostObject) and anything else: s3s.
            _ => None,
        },
        // The typed client behind the cache's reads takes a key of only spaces for no key:
        // such objects are read through, uncached.
        S3Path::Object { key, .. }
            if key.trim().is_empty() && *method == Method::GET && object_get(query).is_none() =>
        {
            Some(op("GetObject", Action::Read))
        }
        S3Path::Object { key, .. } if key.trim().is_empty() && *method == Method::HEAD => {
            Some(op("HeadObject", Action::Read))
        }
        // Reads the cache cannot answer exactly (SSE-C keys, part numbers, bucket-owner checks,
        // requester pays) go to the origin as sent.
        S3Path::Object { .. }
            if *method == Method::GET && object_get(query).is_none() && bypasses_cache(query, headers) =>
        {
            Some(op("GetObject", Action::Read))
        }
        S3Path::Object { .. } if *method == Method::HEAD && bypasses_cache(query, headers) => {
            Some(op("HeadObject", Action::Read))
        }
        S3Path::Object { .. } => match *method {
            Method::GET => object_get(query),
            Method::PUT => Some(object_put(query, headers, version())?),
            Method::DELETE if has(query, "uploadId") => Some(changing("AbortMultipartUpload", Changes::Nothing)),
            Method::DELETE if has(query, "tagging") => {
                Some(changing("DeleteObjectTagging", Changes::Object { version: version() }))
            }
            Method::DELETE => Some(changing("DeleteObject", Changes::Object { version: version() })),
            Method::POST if has(query, "uploads") => Some(changing("CreateMultipartUpload", Changes::Nothing)),
            Method::POST if has(query, "uploadId") => {
                Some(changing("CompleteMultipartUpload", Changes::Object { version: None }))
            }
            Method::POST if has(query, "restore") => {
                Some(changing("RestoreObject", Changes::Object { version: version() }))
            }
            Method::POST if has(query, "select") => Some(op("SelectObjectContent", Action::Read)),
            // HEAD is HeadObject, a cached read.
            _ => None,
        },
    })
}

/// A GET or HEAD only the origin can answer ([`HeaderRole::Bypass`], [`QueryRole::Bypass`]).
fn bypasses_cache(query: &[(String, String)], headers: &HeaderMap) -> bool {
    headers.keys().any(|n| header_role(n.as_str()) == HeaderRole::Bypass)
        || query.iter().any(|(n, _)| query_role(n) == QueryRole::Bypass)
}

fn bucket_get(query: &[(String, String)]) -> Operation {
    if has(query, "location") {
        return op("GetBucketLocation", Action::Read);
    }
    if has(query, "uploads") {
        return listing("ListMultipartUploads", query);
    }
    if has(query, "versions") {
        return listing("ListObjectVersions", query);
    }
    if has(query, "session") {
        return op("CreateSession", Action::Admin);
    }
    if let Some((_, get, _, _)) = BUCKET_SUBRESOURCES.iter().find(|(q, ..)| has(query, q)) {
        return op(get, Action::Admin);
    }
    if value(query, "list-type") == Some("2") {
        return listing("ListObjectsV2", query);
    }
    listing("ListObjects", query)
}

fn object_get(query: &[(String, String)]) -> Option<Operation> {
    let sub = [
        ("acl", "GetObjectAcl"),
        ("attributes", "GetObjectAttributes"),
        ("legal-hold", "GetObjectLegalHold"),
        ("retention", "GetObjectRetention"),
        ("tagging", "GetObjectTagging"),
        ("torrent", "GetObjectTorrent"),
    ];
    if let Some((_, name)) = sub.iter().find(|(q, _)| has(query, q)) {
        return Some(op(name, Action::Read));
    }
    if has(query, "uploadId") {
        return Some(op("ListParts", Action::List));
    }
    // GetObject: the cache's read path.
    None
}

fn object_put(
    query: &[(String, String)],
    headers: &HeaderMap,
    version: Option<String>,
) -> Result<Operation, ClassifyError> {
    let sub = [
        ("acl", "PutObjectAcl"),
        ("legal-hold", "PutObjectLegalHold"),
        ("retention", "PutObjectRetention"),
        ("tagging", "PutObjectTagging"),
    ];
    if let Some((_, name)) = sub.iter().find(|(q, _)| has(query, q)) {
        return Ok(changing(name, Changes::Object { version }));
    }
    let source = copy_source(headers)?;
    if has(query, "partNumber") && has(query, "uploadId") {
        return Ok(match source {
            Some(s) => Operation {
                copy_source: Some(s),
                ..changing("UploadPartCopy", Changes::Nothing)
            },
            None => changing("UploadPart", Changes::Nothing),
        });
    }
    Ok(match source {
        Some(s) => Operation {
            copy_source: Some(s),
            ..changing("CopyObject", Changes::Object { version: None })
        },
        None => changing("PutObject", Changes::Put),
    })
}

/// The keys a DeleteObjects body names.
///
/// # Errors
/// A message when the body is not a `Delete` document.
pub fn delete_keys(body: &[u8]) -> Result<Vec<(String, Option<String>)>, String> {
    use s3s::xml::Deserialize as _;
    let mut d = s3s::xml::Deserializer::new(body);
    let delete = s3s::dto::Delete::deserialize(&mut d).map_err(|e| format!("{e:?}"))?;
    d.expect_eof().map_err(|e| format!("{e:?}"))?;
    Ok(delete.objects.into_iter().map(|o| (o.key, o.version_id)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_str(method: &str, path: &str, query: &str, headers: &[(&str, &str)]) -> Option<Operation> {
        let mut h = HeaderMap::new();
        for (n, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(n.as_bytes()).unwrap_or(http::header::ACCEPT),
                http::HeaderValue::from_str(v).unwrap_or(http::HeaderValue::from_static("")),
            );
        }
        let path = s3s::path::parse_path_style(path).ok()?;
        let method = Method::from_bytes(method.as_bytes()).ok()?;
        classify(&method, &path, &query_pairs(Some(query)), &h).ok().flatten()
    }

    fn name(method: &str, path: &str, query: &str) -> Option<&'static str> {
        classify_str(method, path, query, &[]).map(|o| o.name)
    }

    #[test]
    fn cached_reads_and_listbuckets_are_left_to_s3s() {
        assert_eq!(name("GET", "/bkt/k", ""), None);
        assert_eq!(name("GET", "/bkt/k", "versionId=1&response-content-type=a"), None);
        assert_eq!(name("HEAD", "/bkt/k", ""), None);
        assert_eq!(name("GET", "/", ""), None);
        assert_eq!(name("POST", "/bkt", ""), None);
    }

    #[test]
    fn reads_only_the_origin_can_answer_are_forwarded() {
        assert_eq!(name("GET", "/bkt/k", "partNumber=2"), Some("GetObject"));
        assert_eq!(name("HEAD", "/bkt/k", "partNumber=1"), Some("HeadObject"));
        let ssec = [("x-amz-server-side-encryption-customer-algorithm", "AES256")];
        assert_eq!(
            classify_str("GET", "/bkt/k", "", &ssec).map(|o| o.name),
            Some("GetObject")
        );
        assert_eq!(
            classify_str("HEAD", "/bkt/k", "", &ssec).map(|o| (o.name, o.action)),
            Some(("HeadObject", Action::Read))
        );
        let owner = [("x-amz-expected-bucket-owner", "123")];
        assert_eq!(
            classify_str("GET", "/bkt/k", "", &owner).map(|o| o.name),
            Some("GetObject")
        );
        assert_eq!(classify_str("GET", "/bkt/k", "", &[("range", "bytes=0-1")]), None);
    }

    #[test]
    fn blank_keys_are_read_through() {
        assert_eq!(name("GET", "/bkt/ ", ""), Some("GetObject"));
        assert_eq!(name("HEAD", "/bkt/  ", ""), Some("HeadObject"));
        assert_eq!(name("GET", "/bkt/ ", "tagging"), Some("GetObjectTagging"));
    }

    #[test]
    fn object_operations() {
        assert_eq!(name("PUT", "/bkt/k", ""), Some("PutObject"));
        assert_eq!(name("PUT", "/bkt/k", "partNumber=1&uploadId=u"), Some("UploadPart"));
        assert_eq!(name("DELETE", "/bkt/k", "uploadId=u"), Some("AbortMultipartUpload"));
        assert_eq!(name("POST", "/bkt/k", "uploads"), Some("CreateMultipartUpload"));
        assert_eq!(name("POST", "/bkt/k", "uploadId=u"), Some("CompleteMultipartUpload"));
        assert_eq!(name("GET", "/bkt/k", "uploadId=u"), Some("ListParts"));
        assert_eq!(name("GET", "/bkt/k", "attributes"), Some("GetObjectAttributes"));
        assert_eq!(name("PUT", "/bkt/k", "tagging"), Some("PutObjectTagging"));
        assert_eq!(
            name("DELETE", "/bkt/k", "tagging&versionId=v"),
            Some("DeleteObjectTagging")
        );
        let del = classify_str("DELETE", "/bkt/k", "versionId=v%201", &[]);
        assert_eq!(
            del.map(|o| o.changes),
            Some(Changes::Object {
                version: Some("v 1".to_owned())
            })
        );
    }

    #[test]
    fn copies_name_their_source() {
        let copy = classify_str("PUT", "/bkt/k", "", &[("x-amz-copy-source", "/src/a%20b?versionId=3")]);
        assert_eq!(copy.as_ref().map(|o| o.name), Some("CopyObject"));
        assert_eq!(
            copy.and_then(|o| o.copy_source),
            Some(SourceObject {
                bucket: "src".to_owned(),
                key: "a b".to_owned()
            })
        );
        let part = classify_str(
            "PUT",
            "/bkt/k",
            "partNumber=2&uploadId=u",
            &[("x-amz-copy-source", "src/k")],
        );
        assert_eq!(
            part.map(|o| (o.name, o.changes)),
            Some(("UploadPartCopy", Changes::Nothing))
        );
    }

    #[test]
    fn bad_copy_sources_are_errors() {
        let mut h = HeaderMap::new();
        h.insert("x-amz-copy-source", http::HeaderValue::from_static("no-slash"));
        let path = S3Path::Object {
            bucket: "b".into(),
            key: "k".into(),
        };
        assert!(classify(&Method::PUT, &path, &[], &h).is_err());
        h.insert(
            "x-amz-copy-source",
            http::HeaderValue::from_static("arn:aws:s3:us-east-1:123:accesspoint/ap/object/k"),
        );
        assert!(classify(&Method::PUT, &path, &[], &h).is_err());
    }

    #[test]
    fn bucket_operations() {
        assert_eq!(name("GET", "/bkt", ""), Some("ListObjects"));
        assert_eq!(name("GET", "/bkt", "list-type=2&prefix=a%2F"), Some("ListObjectsV2"));
        assert_eq!(
            classify_str("GET", "/bkt", "list-type=2&prefix=a%2F", &[]).and_then(|o| o.list_prefix),
            Some("a/".to_owned())
        );
        assert_eq!(name("GET", "/bkt", "versions"), Some("ListObjectVersions"));
        assert_eq!(name("GET", "/bkt", "uploads"), Some("ListMultipartUploads"));
        assert_eq!(name("GET", "/bkt", "location"), Some("GetBucketLocation"));
        assert_eq!(name("GET", "/bkt", "cors"), Some("GetBucketCors"));
        assert_eq!(name("PUT", "/bkt", ""), Some("CreateBucket"));
        assert_eq!(name("PUT", "/bkt", "versioning"), Some("PutBucketVersioning"));
        assert_eq!(name("DELETE", "/bkt", ""), Some("DeleteBucket"));
        assert_eq!(name("DELETE", "/bkt", "lifecycle"), Some("DeleteBucketLifecycle"));
        assert_eq!(name("HEAD", "/bkt", ""), Some("HeadBucket"));
        assert_eq!(name("POST", "/bkt", "delete"), Some("DeleteObjects"));
    }

    #[test]
    fn delete_bodies() {
        let body =
            b"<Delete><Object><Key>a</Key></Object><Object><Key>b</Key><VersionId>1</VersionId></Object></Delete>";
        assert_eq!(
            delete_keys(body),
            Ok(vec![("a".to_owned(), None), ("b".to_owned(), Some("1".to_owned()))])
        );
        assert!(delete_keys(b"").is_err());
        assert!(delete_keys(b"<Delete><Object>").is_err());
        assert!(delete_keys(b"<Other/>").is_err());
    }
}
