//! Conditional requests (If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since)
//! evaluated against cached metadata, with S3's precedence rules.

use s3s::dto::{ETagCondition, Timestamp};

use crate::model::entry::ObjectMeta;

/// The conditional headers of one GET or HEAD request.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// If-Match.
    pub if_match: Option<ETagCondition>,
    /// If-None-Match.
    pub if_none_match: Option<ETagCondition>,
    /// If-Modified-Since.
    pub if_modified_since: Option<Timestamp>,
    /// If-Unmodified-Since.
    pub if_unmodified_since: Option<Timestamp>,
}

/// What the conditions say about answering with the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send the object (200 or 206).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    PreconditionFailed,
}

impl Conditions {
    /// True when no conditional header was sent.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.if_match.is_none()
            && self.if_none_match.is_none()
            && self.if_modified_since.is_none()
            && self.if_unmodified_since.is_none()
    }

    /// Evaluates the conditions the way S3 does (RFC 9110 §13.2.2 order):
    /// If-Match, else If-Unmodified-Since, may fail with 412; then If-None-Match, else
    /// If-Modified-Since, may answer 304. S3 ignores If-Unmodified-Since when If-Match
    /// is present and If-Modified-Since when If-None-Match is present.
    #[must_use]
    pub fn evaluate(&self, meta: &ObjectMeta) -> Verdict {
        let last_modified = meta.last_modified.clone().map(seconds);
        if let Some(cond) = &self.if_match {
            if !etag_matches(cond, meta) {
                return Verdict::PreconditionFailed;
            }
        } else if let (Some(since), Some(lm)) = (&self.if_unmodified_since, last_modified)
            && lm > seconds(since.clone())
        {
            return Verdict::PreconditionFailed;
        }
        if let Some(cond) = &self.if_none_match {
            if etag_matches(cond, meta) {
                return Verdict::NotModified;
            }
        } else if let (Some(since), Some(lm)) = (&self.if_modified_since, last_modified)
            && lm <= seconds(since.clone())
        {
            return Verdict::NotModified;
        }
        Verdict::Proceed
    }
}

fn etag_matches(cond: &ETagCondition, meta: &ObjectMeta) -> bool {
    match cond {
        ETagCondition::Any => true,
        // S3 compares entity tags by value; weak and strong forms of one tag match.
        ETagCondition::ETag(want) => meta.e_tag.as_ref().is_some_and(|have| have.value() == want.value()),
    }
}

/// HTTP dates have one-second resolution; compare at that resolution.
fn seconds(t: Timestamp) -> i64 {
    time::OffsetDateTime::from(t).unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;
    use std::time::{Duration, SystemTime};

    fn at(secs: u64) -> Timestamp {
        Timestamp::from(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
    }

    fn meta() -> ObjectMeta {
        ObjectMeta {
            e_tag: Some(ETag::Strong("abc".into())),
            last_modified: Some(at(1000)),
            ..ObjectMeta::default()
        }
    }

    fn etag(v: &str) -> Option<ETagCondition> {
        Some(ETagCondition::ETag(ETag::Strong(v.into())))
    }

    #[test]
    fn no_conditions_proceed() {
        assert!(Conditions::default().is_empty());
        assert_eq!(Conditions::default().evaluate(&meta()), Verdict::Proceed);
    }

    #[test]
    fn if_match() {
        let c = Conditions {
            if_match: etag("abc"),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::Proceed);
        let c = Conditions {
            if_match: etag("zzz"),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::PreconditionFailed);
        let c = Conditions {
            if_match: Some(ETagCondition::Any),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::Proceed);
    }

    #[test]
    fn if_none_match() {
        let c = Conditions {
            if_none_match: etag("abc"),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::NotModified);
        let c = Conditions {
            if_none_match: etag("zzz"),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::Proceed);
        let weak = Conditions {
            if_none_match: Some(ETagCondition::ETag(ETag::Weak("abc".into()))),
            ..Default::default()
        };
        assert_eq!(weak.evaluate(&meta()), Verdict::NotModified);
    }

    #[test]
    fn dates() {
        let c = Conditions {
            if_modified_since: Some(at(1000)),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::NotModified);
        let c = Conditions {
            if_modified_since: Some(at(999)),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::Proceed);
        let c = Conditions {
            if_unmodified_since: Some(at(999)),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::PreconditionFailed);
        let c = Conditions {
            if_unmodified_since: Some(at(1000)),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::Proceed);
    }

    #[test]
    fn s3_precedence() {
        // If-Match true + If-Unmodified-Since false → 200.
        let c = Conditions {
            if_match: etag("abc"),
            if_unmodified_since: Some(at(10)),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::Proceed);
        // If-None-Match false + If-Modified-Since true(not modified) → 200.
        let c = Conditions {
            if_none_match: etag("zzz"),
            if_modified_since: Some(at(5000)),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::Proceed);
        // 412 wins over 304.
        let c = Conditions {
            if_match: etag("zzz"),
            if_none_match: etag("abc"),
            ..Default::default()
        };
        assert_eq!(c.evaluate(&meta()), Verdict::PreconditionFailed);
    }
}
