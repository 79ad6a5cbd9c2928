//! The door for everything the cache does not answer itself. An s3s route takes every
//! request [`crate::model::operation::classify`] names, after s3s has checked its signature (and
//! verified and decoded an aws-chunked body); it is authorized by the one [`Authorizer`] and
//! forwarded to the origin as the client sent it ([`crate::origin::forward`]) through the
//! engine, which invalidates what the request changes. The origin's answer, errors included,
//! goes back unchanged.
//!
//! The cached reads (plain GetObject and HeadObject), ListBuckets (narrowed to the caller's
//! buckets) and browser-form uploads stay with s3s and [`crate::doors::front`].

use std::sync::Arc;
use std::time::Instant;

use http::{Extensions, HeaderMap, Method, Uri, header};
use s3s::path::S3Path;
use s3s::route::S3Route;
use s3s::{Body, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use crate::doors::auth::{self, Authorizer, Caller, Target};
use crate::doors::host::VirtualHosts;
use crate::engine::forward::Writes;
use crate::engine::store::Target as Changed;
use crate::engine::{CACHE_STATUS_HEADER, Engine};
use crate::model::operation::{self, Changes, ClassifyError, Operation};
use crate::origin::forward;
use crate::origin::outgoing::Outgoing;

/// S3 accepts at most 1,000 keys per DeleteObjects; their XML stays well under this.
const MAX_DELETE_BODY: usize = 2 * 1024 * 1024;

/// The s3s route for forwarded requests.
pub struct PassThrough {
    engine: Arc<Engine>,
    authorizer: Arc<Authorizer>,
    hosts: Option<VirtualHosts>,
}

/// What a request names (s3s's `S3Path`, which request extensions cannot hold).
#[derive(Clone)]
enum Named {
    Service,
    Bucket(String),
    Object(String, String),
}

impl From<S3Path> for Named {
    fn from(p: S3Path) -> Self {
        match p {
            S3Path::Root => Self::Service,
            S3Path::Bucket { bucket } => Self::Bucket(bucket.into()),
            S3Path::Object { bucket, key } => Self::Object(bucket.into(), key.into()),
        }
    }
}

/// What `is_match` learned, handed to `check_access` and `call`.
#[derive(Clone)]
struct Routed {
    path: Named,
    operation: Result<Operation, ClassifyError>,
    /// The `versionId` the request names.
    version: Option<String>,
    /// The keys a DeleteObjects body names (read by `check_access`).
    listed: Vec<(String, Option<String>)>,
}

impl PassThrough {
    /// A route forwarding through `engine`, asking `authorizer`; `hosts` parses
    /// virtual-hosted-style requests as the s3s service does.
    #[must_use]
    pub fn new(engine: Arc<Engine>, authorizer: Arc<Authorizer>, hosts: Option<VirtualHosts>) -> Self {
        Self {
            engine,
            authorizer,
            hosts,
        }
    }

    /// The bucket and key the request names, parsed as s3s parses them.
    fn path_of(&self, uri: &Uri, headers: &HeaderMap) -> Option<S3Path> {
        let decoded = percent_encoding::percent_decode_str(uri.path()).decode_utf8().ok()?;
        let vh_bucket = self.hosts.as_ref().and_then(|hosts| {
            let host = headers.get(header::HOST)?.to_str().ok()?;
            hosts.bucket_of(host)
        });
        s3s::path::parse_virtual_hosted_style(vh_bucket, &decoded).ok()
    }

    fn check(&self, caller: Caller<'_>, routed: &Routed) -> S3Result<()> {
        let op = match &routed.operation {
            Ok(op) => op,
            Err(e @ ClassifyError::CopySourceKind) => return Err(s3_error!(AccessDenied, "{e}")),
            Err(e @ ClassifyError::CopySource(_)) => return Err(s3_error!(InvalidArgument, "{e}")),
        };
        let target = match (&routed.path, &op.list_prefix) {
            (Named::Service, _) => Target::Service,
            (Named::Bucket(bucket), Some(prefix)) => Target::Listing(bucket, prefix),
            (Named::Bucket(bucket), None) => Target::Bucket(bucket),
            (Named::Object(bucket, key), _) => Target::Object(bucket, key),
        };
        let deny = |d: auth::Denied| s3_error!(AccessDenied, "{d}");
        self.authorizer.authorize(caller, op.action, target).map_err(deny)?;
        if let Some(source) = &op.copy_source {
            self.authorizer
                .authorize(caller, auth::Action::Read, Target::Object(&source.bucket, &source.key))
                .map_err(deny)?;
        }
        if let Named::Bucket(bucket) = &routed.path {
            for (key, _) in &routed.listed {
                self.authorizer
                    .authorize(caller, op.action, Target::Object(bucket, key))
                    .map_err(deny)?;
            }
        }
        Ok(())
    }
}

/// What the engine invalidates for `op` on `path`.
fn writes_of(op: &Operation, path: &Named, listed: &[(String, Option<String>)]) -> Writes {
    match (&op.changes, path) {
        (Changes::Nothing, _) => Writes::Nothing,
        (Changes::Put, Named::Object(bucket, key)) => match Changed::new(bucket, key, None) {
            Some(t) => Writes::Put(t),
            // A key the cache cannot name was never cached.
            None => Writes::Nothing,
        },
        (Changes::Object { version }, Named::Object(bucket, key)) => {
            Writes::Objects(Changed::new(bucket, key, version.as_deref()).into_iter().collect())
        }
        (Changes::ListedKeys, Named::Bucket(bucket)) => Writes::Objects(
            listed
                .iter()
                .filter_map(|(k, v)| Changed::new(bucket, k, v.as_deref()))
                .collect(),
        ),
        _ => Writes::Nothing,
    }
}

fn routed(extensions: &Extensions) -> S3Result<&Routed> {
    extensions
        .get::<Routed>()
        .ok_or_else(|| S3Error::with_message(S3ErrorCode::InternalError, "forwarded request lost its route"))
}

#[async_trait::async_trait]
impl S3Route for PassThrough {
    fn is_match(&self, method: &Method, uri: &Uri, headers: &HeaderMap, extensions: &mut Extensions) -> bool {
        let Some(path) = self.path_of(uri, headers) else {
            return false;
        };
        let query = operation::query_pairs(uri.query());
        let operation = match operation::classify(method, &path, &query, headers) {
            Ok(Some(op)) => Ok(op),
            Ok(None) => return false,
            Err(e) => Err(e),
        };
        let version = query.into_iter().find(|(n, _)| n == "versionId").map(|(_, v)| v);
        extensions.insert(Routed {
            path: path.into(),
            operation,
            version,
            listed: Vec::new(),
        });
        true
    }

    async fn check_access(&self, req: &mut S3Request<Body>) -> S3Result<()> {
        let is_delete = matches!(
            routed(&req.extensions)?.operation,
            Ok(Operation {
                changes: Changes::ListedKeys,
                ..
            })
        );
        if is_delete {
            // The keys are in the body: read it (bounded), keep it for the origin.
            let body = std::mem::take(&mut req.input);
            let bytes = http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_DELETE_BODY))
                .await
                .map_err(|e| s3_error!(MalformedXML, "cannot read the DeleteObjects body: {e}"))?
                .to_bytes();
            let listed = operation::delete_keys(&bytes).map_err(|e| s3_error!(MalformedXML, "{e}"))?;
            req.input = Body::from(bytes);
            if let Some(r) = req.extensions.get_mut::<Routed>() {
                r.listed = listed;
            }
        }
        let caller = auth::caller(req);
        self.check(caller, routed(&req.extensions)?)
    }

    async fn call(&self, mut req: S3Request<Body>) -> S3Result<S3Response<Body>> {
        let started = Instant::now();
        let Routed {
            path,
            operation,
            version,
            listed,
        } = req
            .extensions
            .remove::<Routed>()
            .ok_or_else(|| S3Error::with_message(S3ErrorCode::InternalError, "forwarded request lost its route"))?;
        let op = operation.map_err(|e| s3_error!(InvalidArgument, "{e}"))?;
        let writes = writes_of(&op, &path, &listed);
        let access_key = req.credentials.as_ref().map(|c| c.access_key.clone());
        let caller = access_key.as_deref().map_or(Caller::Anonymous, Caller::AccessKey);
        let origin_identity = self.authorizer.origin_identity(caller);
        let (bucket, key) = match &path {
            Named::Service => (None, None),
            Named::Bucket(bucket) => (Some(bucket.clone()), None),
            Named::Object(bucket, key) => (Some(bucket.clone()), Some(key.clone())),
        };
        let mut out = Outgoing::from_client(
            req.method.clone(),
            &req.uri,
            std::mem::take(&mut req.headers),
            std::mem::take(&mut req.input),
            req.trailing_headers.take(),
            bucket,
            key,
        )?;
        out.credentials = origin_identity.map(|o| o.credentials);
        let result = self.engine.forward(op.name, writes, out).await;
        if let (Ok(resp), Named::Object(bucket, key)) = (&result, &path)
            && resp.status() == http::StatusCode::FORBIDDEN
        {
            self.authorizer.origin_refused(caller, bucket, key, version.as_deref());
        }
        self.engine
            .metrics()
            .request(op.name, &forward::result_label(&result), started.elapsed());
        let (mut parts, body) = result?.into_parts();
        if matches!(op.name, "GetObject" | "HeadObject") {
            // A read the cache could not answer: counted and marked like the engine's bypasses.
            self.engine.metrics().bypass(op.name);
            if op.name == "GetObject" {
                let len = parts
                    .headers
                    .get(http::header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                self.engine.metrics().served("origin", len);
            }
            parts
                .headers
                .insert(CACHE_STATUS_HEADER, http::HeaderValue::from_static("bypass"));
        }
        let mut resp = S3Response::new(body);
        resp.status = Some(parts.status);
        resp.headers = parts.headers;
        Ok(resp)
    }
}
