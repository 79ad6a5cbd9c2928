//! Authentication keys and authorization: the one decision of who may do what, taken for every
//! request before any cache lookup, on both doors (DESIGN.md §4 rule 6). A cache hit never
//! reaches the origin's IAM, so s3cached decides itself.
//!
//! The [`Authorizer`] holds the current [`Identities`] (replaced whole on reload). Signatures
//! are checked by each door against its secrets: s3s through [`Authorizer::s3s_auth`], the hot
//! path through [`Authorizer::verify`]. Both then ask [`Authorizer::authorize`]: s3s through
//! the access hook ([`Authorizer::s3s_access`], which also checks every key of DeleteObjects,
//! the source of a copy and the prefix of a listing), the hot path directly. The third door,
//! the event webhook on the admin listener, names its sender with
//! [`Authorizer::event_sender`] and asks [`Authorizer::authorize`] for every event.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::{
    CopyObjectInput, CopySource, DeleteObjectsInput, ListMultipartUploadsInput, ListObjectVersionsInput,
    ListObjectsInput, ListObjectsV2Input, PutObjectInput, UploadPartCopyInput,
};
use s3s::{S3Request, S3Result, s3_error};

use crate::doors::origin_grants::OriginGrants;
use crate::doors::sigv4::{SignedRequest, Verifier};
use crate::metrics::Metrics;
use crate::model::config::ClientAuth;
pub use crate::model::identities::Action;
use crate::model::identities::{Grant, Identities, IdentitiesError, OriginIdentity};

/// Who sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// No signature.
    Anonymous,
    /// A valid signature by this access key.
    AccessKey(&'a str),
    /// An event sender (the webhook) that showed this sender's bearer token.
    EventSender(&'a str),
}

/// What a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// The service (ListBuckets).
    Service,
    /// A bucket as a whole (bucket configuration, creation, deletion).
    Bucket(&'a str),
    /// One object.
    Object(&'a str, &'a str),
    /// A listing of a bucket under a prefix.
    Listing(&'a str, &'a str),
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

/// The identities and rules of `auth`: its identities file, plus a full-access identity per
/// key pair and public read for `allow_anonymous`.
///
/// # Errors
/// The file cannot be read, or [`IdentitiesError`] naming the line or identity at fault.
pub fn rules_of(auth: &ClientAuth) -> Result<Identities, RulesError> {
    let mut identities = match &auth.identities_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read(path.clone(), e.to_string()))?;
            Identities::parse(&text, |var| std::env::var(var).ok())?
        }
        None => Identities::default(),
    };
    for c in &auth.credentials {
        identities.add_full_access(c.clone());
    }
    if let Some(token) = &auth.webhook_token {
        identities.add_webhook_token(token.clone());
    }
    if auth.allow_anonymous {
        identities.anonymous.push(Grant::public_read());
    }
    Ok(identities)
}

/// Rules that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The identities file cannot be read.
    #[error("cannot read identities file {0}: {1}")]
    Read(std::path::PathBuf, String),
    /// The identities file is not valid.
    #[error(transparent)]
    Invalid(#[from] IdentitiesError),
}

/// A refusal; answered as S3's 403 AccessDenied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("access denied: {0}")]
pub struct Denied(pub &'static str);

fn grant_covers(grant: &Grant, action: Action, target: Target<'_>) -> bool {
    grant.actions.contains(&action)
        && grant.on.iter().any(|r| match target {
            // ListBuckets is answered with the buckets the caller may see (see `visible`).
            Target::Service => true,
            Target::Bucket(b) if action == Action::Admin => r.covers_bucket(b),
            // Bucket-level reads (HeadBucket) and a multi-object operation's first check:
            // each object is checked again by its own hook.
            Target::Bucket(b) => r.touches_bucket(b),
            Target::Object(b, k) => r.covers_key(b, k),
            Target::Listing(b, p) => r.covers_listing(b, p),
        })
}

/// The rules every door asks, and the secrets both doors check signatures against.
pub struct Authorizer {
    rules: RwLock<Arc<Identities>>,
    verifier: Verifier,
    metrics: Option<Arc<Metrics>>,
    origin_grants: Option<OriginGrants>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    /// The rules of `identities`; denials are counted in `metrics`.
    #[must_use]
    pub fn new(identities: Identities, metrics: Option<Arc<Metrics>>) -> Self {
        let verifier = Verifier::new(&credentials_of(&identities));
        Self {
            rules: RwLock::new(Arc::new(identities)),
            verifier,
            metrics,
            origin_grants: None,
        }
    }

    /// Asks `grants` (the origin) before an identity with origin credentials is served a
    /// cached object. Without it such identities are refused every cached read.
    #[must_use]
    pub fn with_origin_grants(mut self, grants: OriginGrants) -> Self {
        self.origin_grants = Some(grants);
        self
    }

    /// The origin credentials of `caller`, when its identity has its own.
    #[must_use]
    pub fn origin_identity(&self, caller: Caller<'_>) -> Option<OriginIdentity> {
        match caller {
            Caller::AccessKey(key) => self.rules().identities.get(key).and_then(|i| i.origin.clone()),
            Caller::Anonymous | Caller::EventSender(_) => None,
        }
    }

    /// For an identity with origin credentials: whether the origin has let it read the object
    /// (asking it when no answer is kept). Other callers: yes.
    ///
    /// # Errors
    /// `AccessDenied` when the origin said no (counted), `ServiceUnavailable` when it could
    /// not be asked.
    pub async fn origin_allows_read(
        &self,
        caller: Caller<'_>,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> S3Result<()> {
        let (Caller::AccessKey(access_key), Some(origin_identity)) = (caller, self.origin_identity(caller)) else {
            return Ok(());
        };
        let allowed = match &self.origin_grants {
            Some(grants) => grants.ask(access_key, &origin_identity, bucket, key, version).await?,
            None => false,
        };
        if allowed {
            return Ok(());
        }
        if let Some(m) = &self.metrics {
            m.authorization_denied(access_key, Action::Read.as_str());
        }
        Err(s3_error!(
            AccessDenied,
            "access denied: the origin refused this identity"
        ))
    }

    /// Records that the origin refused `caller` a request for the object: the kept answer
    /// for its reads of the object is withdrawn, so the next one asks the origin again.
    pub fn origin_refused(&self, caller: Caller<'_>, bucket: &str, key: &str, version: Option<&str>) {
        if let (Caller::AccessKey(access_key), Some(grants)) = (caller, &self.origin_grants) {
            grants.revoke(access_key, bucket, key, version);
        }
    }

    /// Replaces the rules and secrets; requests already authorized are not affected.
    pub fn reload(&self, identities: Identities) {
        self.verifier.replace_credentials(&credentials_of(&identities));
        *self.rules.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(identities);
    }

    fn rules(&self) -> Arc<Identities> {
        Arc::clone(&self.rules.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The access key that signed `req` (hot path), when this door can vouch for it.
    #[must_use]
    pub fn verify<'a>(&self, req: &SignedRequest<'a>) -> Option<&'a str> {
        self.verifier.verify(req, SystemTime::now())
    }

    /// The access key of a presigned request verified before with exactly these bytes and
    /// still within its date (hot path); see [`crate::doors::sigv4::Verifier::recall_presigned`].
    #[must_use]
    pub fn recall_presigned(&self, method: &str, target: &str, headers: &http::HeaderMap) -> Option<Arc<str>> {
        self.verifier
            .recall_presigned(method, target, headers, SystemTime::now())
    }

    /// Whether `caller` may take `action` on `target`, without counting a refusal: for the hot
    /// path, which leaves every refusal to the full path (where it is answered and counted).
    #[must_use]
    pub fn allows(&self, caller: Caller<'_>, action: Action, target: Target<'_>) -> bool {
        let rules = self.rules();
        if decide(&rules, caller, action, target).is_err() {
            return false;
        }
        // An identity with origin credentials is served a cached object only on a kept yes
        // from the origin; without one, the full path asks.
        match (caller, target) {
            (Caller::AccessKey(access_key), Target::Object(bucket, key))
                if rules.identities.get(access_key).is_some_and(|i| i.origin.is_some()) =>
            {
                self.origin_grants
                    .as_ref()
                    .and_then(|g| g.known(access_key, bucket, key, None))
                    == Some(true)
            }
            _ => true,
        }
    }

    /// Whether `caller` may take `action` on `target`.
    ///
    /// # Errors
    /// [`Denied`] with the reason (counted per identity).
    pub fn authorize(&self, caller: Caller<'_>, action: Action, target: Target<'_>) -> Result<(), Denied> {
        decide(&self.rules(), caller, action, target).map_err(|(identity, denied)| {
            if let Some(m) = &self.metrics {
                m.authorization_denied(identity, action.as_str());
            }
            denied
        })
    }

    /// Whether `caller` may see `bucket` in ListBuckets: it has some grant in it.
    #[must_use]
    pub fn sees_bucket(&self, caller: Caller<'_>, bucket: &str) -> bool {
        let rules = self.rules();
        let grants = match caller {
            Caller::AccessKey(key) => rules.identities.get(key).map(|i| i.grants.as_slice()),
            Caller::Anonymous => Some(rules.anonymous.as_slice()),
            Caller::EventSender(_) => None,
        };
        grants.is_some_and(|gs| gs.iter().any(|g| g.on.iter().any(|r| r.touches_bucket(bucket))))
    }

    /// Whether any event sender may post to the webhook (without one the webhook is off).
    #[must_use]
    pub fn has_event_senders(&self) -> bool {
        !self.rules().event_senders.is_empty()
    }

    /// The name of the event sender whose token `authorization` (`Bearer <token>`) carries.
    #[must_use]
    pub fn event_sender(&self, authorization: Option<&str>) -> Option<String> {
        let given = authorization?.strip_prefix("Bearer ")?;
        // Every token is compared, in constant time, so timing tells nothing of which matched.
        let rules = self.rules();
        rules
            .event_senders
            .iter()
            .fold(None, |found, s| {
                let matches = same_bytes(given.as_bytes(), s.token.as_bytes());
                found.or(matches.then_some(&s.name))
            })
            .cloned()
    }

    /// s3s's authenticator over the current secrets.
    #[must_use]
    pub fn s3s_auth(self: &Arc<Self>) -> impl S3Auth + use<> {
        S3sAuth(Arc::clone(self))
    }

    /// s3s's access hook over [`Self::authorize`].
    #[must_use]
    pub fn s3s_access(self: &Arc<Self>) -> impl S3Access + use<> {
        S3sAccess(Arc::clone(self))
    }
}

/// The decision, and on refusal the identity label to count it under.
fn decide<'c>(
    rules: &Identities,
    caller: Caller<'c>,
    action: Action,
    target: Target<'_>,
) -> Result<(), (&'c str, Denied)> {
    let grants = match caller {
        Caller::AccessKey(key) => match rules.identities.get(key) {
            Some(identity) => &identity.grants,
            // Signatures are checked against the same rules: only a reload in between
            // gets here, so the key is not a label (it could be anything).
            None => return Err(("unknown", Denied("unknown access key"))),
        },
        Caller::Anonymous if rules.anonymous.is_empty() => {
            return Err(("anonymous", Denied("signature required")));
        }
        Caller::Anonymous => &rules.anonymous,
        Caller::EventSender(name) => match rules.event_senders.iter().find(|s| s.name == name) {
            Some(sender) => &sender.grants,
            None => return Err(("unknown", Denied("unknown event sender"))),
        },
    };
    if grants.iter().any(|g| grant_covers(g, action, target)) {
        return Ok(());
    }
    let label = match caller {
        Caller::AccessKey(key) | Caller::EventSender(key) => key,
        Caller::Anonymous => "anonymous",
    };
    Err((label, Denied("not granted")))
}

/// Equality of two byte strings in time that depends only on their lengths.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn credentials_of(identities: &Identities) -> Vec<crate::model::config::Credentials> {
    identities.identities.values().map(|i| i.credentials.clone()).collect()
}

/// The caller of a request the full path (s3s) authenticated.
#[must_use]
pub fn caller<T>(req: &S3Request<T>) -> Caller<'_> {
    req.credentials
        .as_ref()
        .map_or(Caller::Anonymous, |c| Caller::AccessKey(&c.access_key))
}

struct S3sAuth(Arc<Authorizer>);

#[async_trait::async_trait]
impl S3Auth for S3sAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        let rules = self.0.rules();
        match rules.identities.get(access_key) {
            Some(i) => Ok(SecretKey::from(i.credentials.secret_key.as_str())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The access key id you provided does not exist"
            )),
        }
    }
}

struct S3sAccess(Arc<Authorizer>);

impl S3sAccess {
    fn check_one(&self, caller: Caller<'_>, action: Action, target: Target<'_>) -> S3Result<()> {
        self.0
            .authorize(caller, action, target)
            .map_err(|d| s3_error!(AccessDenied, "{d}"))
    }

    fn check_copy_source(&self, caller: Caller<'_>, source: &CopySource) -> S3Result<()> {
        match source {
            CopySource::Bucket { bucket, key, .. } => self.check_one(caller, Action::Read, Target::Object(bucket, key)),
            CopySource::AccessPoint { .. } | CopySource::Outpost { .. } => Err(s3_error!(
                AccessDenied,
                "copies from access points and outposts are not allowed"
            )),
        }
    }
}

#[async_trait::async_trait]
impl S3Access for S3sAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let caller = cx
            .credentials()
            .map_or(Caller::Anonymous, |c| Caller::AccessKey(&c.access_key));
        let operation = cx.s3_op().name();
        let action = Action::of(operation);
        let target = match cx.s3_path() {
            s3s::path::S3Path::Root => Target::Service,
            s3s::path::S3Path::Bucket { bucket } => Target::Bucket(bucket),
            s3s::path::S3Path::Object { bucket, key } => Target::Object(bucket, key),
        };
        self.check_one(caller, action, target)?;
        if let (Target::Object(bucket, key), "GetObject" | "HeadObject") = (target, operation) {
            let version = cx.uri().query().and_then(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .find(|(n, _)| n == "versionId")
                    .map(|(_, v)| v.into_owned())
            });
            self.0
                .origin_allows_read(caller, bucket, key, version.as_deref())
                .await?;
        }
        Ok(())
    }

    /// PutObject, and browser-form uploads (PostObject), which s3s hands over as a PutObject
    /// whose key comes from the form: the generic check saw only the bucket for those.
    async fn put_object(&self, req: &mut S3Request<PutObjectInput>) -> S3Result<()> {
        let i = &req.input;
        let caller = caller(req);
        if self.0.origin_identity(caller).is_some() {
            // Form uploads are written with the cache's own origin credentials.
            return Err(s3_error!(
                AccessDenied,
                "browser-form uploads are not available to identities with their own origin credentials"
            ));
        }
        self.check_one(caller, Action::Write, Target::Object(&i.bucket, &i.key))
    }

    async fn copy_object(&self, req: &mut S3Request<CopyObjectInput>) -> S3Result<()> {
        self.check_copy_source(caller(req), &req.input.copy_source)
    }

    async fn upload_part_copy(&self, req: &mut S3Request<UploadPartCopyInput>) -> S3Result<()> {
        self.check_copy_source(caller(req), &req.input.copy_source)
    }

    async fn delete_objects(&self, req: &mut S3Request<DeleteObjectsInput>) -> S3Result<()> {
        let caller = caller(req);
        let i = &req.input;
        for o in &i.delete.objects {
            self.check_one(caller, Action::Write, Target::Object(&i.bucket, &o.key))?;
        }
        Ok(())
    }

    async fn list_objects(&self, req: &mut S3Request<ListObjectsInput>) -> S3Result<()> {
        let i = &req.input;
        let target = Target::Listing(&i.bucket, i.prefix.as_deref().unwrap_or(""));
        self.check_one(caller(req), Action::List, target)
    }

    async fn list_objects_v2(&self, req: &mut S3Request<ListObjectsV2Input>) -> S3Result<()> {
        let i = &req.input;
        let target = Target::Listing(&i.bucket, i.prefix.as_deref().unwrap_or(""));
        self.check_one(caller(req), Action::List, target)
    }

    async fn list_object_versions(&self, req: &mut S3Request<ListObjectVersionsInput>) -> S3Result<()> {
        let i = &req.input;
        let target = Target::Listing(&i.bucket, i.prefix.as_deref().unwrap_or(""));
        self.check_one(caller(req), Action::List, target)
    }

    async fn list_multipart_uploads(&self, req: &mut S3Request<ListMultipartUploadsInput>) -> S3Result<()> {
        let i = &req.input;
        let target = Target::Listing(&i.bucket, i.prefix.as_deref().unwrap_or(""));
        self.check_one(caller(req), Action::List, target)
    }
}

#[cfg(test)]
mod tests;
