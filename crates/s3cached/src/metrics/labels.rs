//! The label sets of the metrics in [`super`]: one struct per combination of labels, so a
//! series cannot be recorded with a label missing or misspelled.

use prometheus_client::encoding::EncodeLabelSet;

/// Labels: S3 operation and outcome (`ok` or the S3 error code).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpResult {
    /// S3 operation name, e.g. `GetObject`.
    pub operation: &'static str,
    /// `ok`, or the S3 error code (`NoSuchKey`, `AccessDenied`, …).
    pub result: String,
}

/// Labels: S3 operation only.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Op {
    /// S3 operation name.
    pub operation: &'static str,
}

/// Labels: cache tier.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Tier {
    /// Tier name (`memory`, …).
    pub tier: &'static str,
}

/// Labels: cache tier and why an entry left it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierCause {
    /// Tier name.
    pub tier: &'static str,
    /// `size` (capacity eviction) or `expired` (TTL).
    pub cause: &'static str,
}

/// Labels: where response bytes came from.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Source {
    /// `cache` or `origin`.
    pub source: &'static str,
}

/// Labels: outcome of a cache fill.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FillResult {
    /// `stored`, `too_large`, `uncacheable`, `raced` (a write overtook it) or `error`.
    pub result: &'static str,
}

/// Labels: message direction on the invalidation bus.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Direction {
    /// `sent` or `received`.
    pub direction: &'static str,
}

/// Labels: why something happened.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// `while_revalidate` or `if_error`.
    pub reason: &'static str,
}

/// Labels: an event's source and what was done with it.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `webhook` or `sqs`.
    pub source: &'static str,
    /// `hydrated`, `too_large`, `invalidated`, `stale` or `error`.
    pub result: &'static str,
}

/// Labels: the identity refused and the action it asked for.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    /// The access key, `anonymous`, or `unknown` (a key no longer configured).
    pub identity: String,
    /// `read`, `list`, `write` or `admin`.
    pub action: &'static str,
}
