//! What the origin has said about identities that have origin credentials of their own
//! ([`crate::model::identities::OriginIdentity`]): may this identity read this object? A cache hit
//! never reaches the origin's IAM, so before such an identity is served a cached object, the
//! origin is asked with a HEAD signed as the identity, and the answer is kept for the
//! identity's `recheck-after`. A 403 from the origin to any of the identity's requests for the
//! object withdraws the kept answer: the next read asks again.

use std::time::{Duration, Instant};

use s3s::{S3Error, S3ErrorCode};

use crate::model::identities::OriginIdentity;
use crate::origin::Origin;
use crate::origin::outgoing::Outgoing;

/// Kept answers are bounded: past this many, the least recently used are asked again.
const MAX_ANSWERS: u64 = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Asked {
    access_key: String,
    bucket: String,
    key: String,
    version: Option<String>,
}

impl Asked {
    fn new(access_key: &str, bucket: &str, key: &str, version: Option<&str>) -> Self {
        Self {
            access_key: access_key.to_owned(),
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version: version.map(str::to_owned),
        }
    }
}

/// The origin's kept answers, and the way to ask it.
pub struct OriginGrants {
    origin: Origin,
    answers: moka::sync::Cache<Asked, (bool, Instant)>,
}

impl OriginGrants {
    /// Asks `origin` (with each identity's own credentials).
    #[must_use]
    pub fn new(origin: Origin) -> Self {
        Self {
            origin,
            answers: moka::sync::Cache::new(MAX_ANSWERS),
        }
    }

    /// The kept answer for `access_key` reading `bucket`/`key`, if it has not run out.
    #[must_use]
    pub fn known(&self, access_key: &str, bucket: &str, key: &str, version: Option<&str>) -> Option<bool> {
        let asked = Asked::new(access_key, bucket, key, version);
        match self.answers.get(&asked) {
            Some((allowed, until)) if Instant::now() < until => Some(allowed),
            Some(_) => {
                self.answers.invalidate(&asked);
                None
            }
            None => None,
        }
    }

    /// Whether the origin lets the identity read the object: the kept answer, or a HEAD signed
    /// as the identity. A 2xx, 304, 404 or 412 is a yes (the origin let the identity learn
    /// about the object); 401 and 403 are a no.
    ///
    /// # Errors
    /// `ServiceUnavailable` when the origin gave no answer either way (unreachable, 5xx):
    /// the read is refused rather than served unchecked.
    pub async fn ask(
        &self,
        access_key: &str,
        origin_identity: &OriginIdentity,
        bucket: &str,
        key: &str,
        version: Option<&str>,
    ) -> Result<bool, S3Error> {
        if let Some(known) = self.known(access_key, bucket, key, version) {
            return Ok(known);
        }
        let mut head = Outgoing::head(bucket, key, version);
        head.credentials = Some(origin_identity.credentials.clone());
        let resp = self.origin.forward("HeadObject", head).await?;
        let status = resp.status().as_u16();
        let allowed = match status {
            200..=299 | 304 | 404 | 412 => true,
            401 | 403 => false,
            _ => {
                return Err(S3Error::with_message(
                    S3ErrorCode::ServiceUnavailable,
                    format!("the origin did not say whether this identity may read the object (HTTP {status})"),
                ));
            }
        };
        self.keep(access_key, bucket, key, version, allowed, origin_identity.recheck_after);
        Ok(allowed)
    }

    /// Withdraws the kept answer for the identity and object (the origin refused it a
    /// request for the object: its next read asks again).
    pub fn revoke(&self, access_key: &str, bucket: &str, key: &str, version: Option<&str>) {
        self.answers.invalidate(&Asked::new(access_key, bucket, key, version));
    }

    fn keep(&self, access_key: &str, bucket: &str, key: &str, version: Option<&str>, allowed: bool, ttl: Duration) {
        let until = Instant::now() + ttl;
        self.answers
            .insert(Asked::new(access_key, bucket, key, version), (allowed, until));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::Metrics;
    use crate::model::config::{Credentials, OriginConfig};
    use crate::origin::forward::LOCAL_KEY;

    fn identity(access_key: &str, secret_key: &str) -> OriginIdentity {
        OriginIdentity {
            credentials: Credentials {
                access_key: access_key.to_owned(),
                secret_key: secret_key.to_owned(),
            },
            recheck_after: Duration::from_secs(60),
        }
    }

    #[tokio::test]
    async fn the_origins_answers_are_asked_once_kept_and_withdrawn() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("bkt")).expect("bucket dir");
        std::fs::write(dir.path().join("bkt").join("obj"), b"data").expect("object");
        let metrics = Arc::new(Metrics::new());
        let origin = Origin::connect(&OriginConfig::LocalDir(dir.path().to_owned()), metrics)
            .await
            .expect("local origin");
        let grants = OriginGrants::new(origin);
        let good = identity(LOCAL_KEY.0, LOCAL_KEY.1);
        let bad = identity(LOCAL_KEY.0, "wrong-secret");

        assert_eq!(grants.known("a", "bkt", "obj", None), None);
        assert_eq!(grants.ask("a", &good, "bkt", "obj", None).await.ok(), Some(true));
        assert_eq!(grants.known("a", "bkt", "obj", None), Some(true));
        // Another identity, another version: asked on their own.
        assert_eq!(grants.known("b", "bkt", "obj", None), None);
        assert_eq!(grants.known("a", "bkt", "obj", Some("v1")), None);
        assert_eq!(grants.ask("b", &bad, "bkt", "obj", None).await.ok(), Some(false));
        assert_eq!(grants.known("b", "bkt", "obj", None), Some(false));
        // A missing object: the origin let the identity learn that.
        assert_eq!(grants.ask("a", &good, "bkt", "missing", None).await.ok(), Some(true));
        grants.revoke("a", "bkt", "obj", None);
        assert_eq!(grants.known("a", "bkt", "obj", None), None);
    }
}
