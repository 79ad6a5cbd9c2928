//! Authorization: the one decision of who may do what, taken for every request before any
//! cache lookup, on both doors (DESIGN.md §4 rule 6). A cache hit never reaches the origin's
//! IAM, so s3cached decides itself.
//!
//! Authentication comes first and is each door's own: s3s checks signatures on the full path,
//! [`crate::sigv4`] on the hot path. Both then ask [`Authorizer::authorize`] with the caller and
//! the operation's [`Action`]; s3s through the [`S3Access`] hook ([`Authorizer::s3s_access`]),
//! the hot path directly.
//!
//! The rules: a client that signed with one of the configured key pairs may do everything the
//! origin credentials can. An unsigned request, when anonymous access is on, may only read and
//! list (public-read, as on a public bucket): it can never write, delete or administer.

use std::collections::HashSet;
use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::{S3Result, s3_error};

use crate::config::ClientAuth;

/// Who sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// No signature.
    Anonymous,
    /// A valid signature by this access key.
    AccessKey(&'a str),
}

/// What an operation does, as far as authorization is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reads an object or its attributes (GetObject, HeadObject, GetObjectTagging, …).
    Read,
    /// Lists buckets, objects, versions, uploads or parts.
    List,
    /// Changes objects (PutObject, DeleteObject(s), multipart uploads, copies, tagging, …).
    Write,
    /// Anything else: bucket creation, deletion and configuration.
    Admin,
}

impl Action {
    /// The action of the S3 operation named `operation` (s3s's operation names).
    #[must_use]
    pub fn of(operation: &str) -> Self {
        match operation {
            "GetObject"
            | "HeadObject"
            | "GetObjectAttributes"
            | "GetObjectTagging"
            | "GetObjectAcl"
            | "GetObjectLegalHold"
            | "GetObjectRetention"
            | "GetObjectTorrent"
            | "SelectObjectContent"
            | "HeadBucket"
            | "GetBucketLocation" => Self::Read,
            "ListBuckets"
            | "ListObjects"
            | "ListObjectsV2"
            | "ListObjectVersions"
            | "ListMultipartUploads"
            | "ListParts"
            | "ListDirectoryBuckets" => Self::List,
            "PutObject"
            | "DeleteObject"
            | "DeleteObjects"
            | "CopyObject"
            | "CreateMultipartUpload"
            | "UploadPart"
            | "UploadPartCopy"
            | "CompleteMultipartUpload"
            | "AbortMultipartUpload"
            | "PutObjectTagging"
            | "DeleteObjectTagging"
            | "PutObjectAcl"
            | "PutObjectLegalHold"
            | "PutObjectRetention"
            | "RestoreObject"
            | "PostObject" => Self::Write,
            _ => Self::Admin,
        }
    }
}

/// A refusal; answered as S3's 403 AccessDenied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access denied: {0}")]
pub struct Denied(pub &'static str);

/// The rules every door asks.
#[derive(Debug)]
pub struct Authorizer {
    access_keys: HashSet<String>,
    anonymous_reads: bool,
}

impl Authorizer {
    /// The rules of `auth`: its key pairs may do everything; unsigned requests may read and
    /// list when `allow_anonymous`.
    #[must_use]
    pub fn new(auth: &ClientAuth) -> Self {
        Self {
            access_keys: auth.credentials.iter().map(|c| c.access_key.clone()).collect(),
            anonymous_reads: auth.allow_anonymous,
        }
    }

    /// Whether `caller` may take `action` on `bucket`/`key` (`None`: the service, or the whole
    /// bucket).
    ///
    /// # Errors
    /// [`Denied`] with the reason.
    pub fn authorize(
        &self,
        caller: Caller<'_>,
        action: Action,
        _bucket: Option<&str>,
        _key: Option<&str>,
    ) -> Result<(), Denied> {
        match caller {
            Caller::AccessKey(key) if self.access_keys.contains(key) => Ok(()),
            Caller::AccessKey(_) => Err(Denied("unknown access key")),
            Caller::Anonymous if !self.anonymous_reads => Err(Denied("signature required")),
            Caller::Anonymous => match action {
                Action::Read | Action::List => Ok(()),
                Action::Write | Action::Admin => Err(Denied("anonymous access is read-only")),
            },
        }
    }

    /// The same decision as s3s's access hook, for the full path.
    #[must_use]
    pub fn s3s_access(self: &Arc<Self>) -> impl S3Access + use<> {
        S3sAccess(Arc::clone(self))
    }
}

/// s3s's access hook over an [`Authorizer`].
struct S3sAccess(Arc<Authorizer>);

#[async_trait::async_trait]
impl S3Access for S3sAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let caller = cx
            .credentials()
            .map_or(Caller::Anonymous, |c| Caller::AccessKey(&c.access_key));
        let action = Action::of(cx.s3_op().name());
        let (bucket, key) = match cx.s3_path() {
            s3s::path::S3Path::Root => (None, None),
            s3s::path::S3Path::Bucket { bucket } => (Some(&**bucket), None),
            s3s::path::S3Path::Object { bucket, key } => (Some(&**bucket), Some(&**key)),
        };
        self.0
            .authorize(caller, action, bucket, key)
            .map_err(|d| s3_error!(AccessDenied, "{d}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Credentials;

    fn authorizer(allow_anonymous: bool) -> Authorizer {
        Authorizer::new(&ClientAuth {
            credentials: vec![Credentials {
                access_key: "AK".into(),
                secret_key: "SK".into(),
            }],
            allow_anonymous,
        })
    }

    #[test]
    fn signed_clients_may_do_everything() {
        let a = authorizer(false);
        for action in [Action::Read, Action::List, Action::Write, Action::Admin] {
            assert!(a.authorize(Caller::AccessKey("AK"), action, Some("b"), None).is_ok());
            assert!(
                a.authorize(Caller::AccessKey("other"), action, Some("b"), None)
                    .is_err()
            );
        }
    }

    #[test]
    fn anonymous_access_is_read_only_and_off_by_default() {
        let off = authorizer(false);
        let on = authorizer(true);
        for op in ["GetObject", "HeadObject", "ListObjectsV2"] {
            assert!(
                off.authorize(Caller::Anonymous, Action::of(op), Some("b"), Some("k"))
                    .is_err()
            );
            assert!(
                on.authorize(Caller::Anonymous, Action::of(op), Some("b"), Some("k"))
                    .is_ok()
            );
        }
        for op in [
            "PutObject",
            "DeleteObject",
            "DeleteObjects",
            "CreateBucket",
            "DeleteBucket",
            "PutBucketPolicy",
            "CompleteMultipartUpload",
            "SomethingNew",
        ] {
            assert!(
                on.authorize(Caller::Anonymous, Action::of(op), Some("b"), None)
                    .is_err(),
                "{op}"
            );
        }
    }
}
