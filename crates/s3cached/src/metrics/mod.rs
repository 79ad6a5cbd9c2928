//! Every metric s3cached exports: names, help texts and labels live here and nowhere else.
//! `docs/METRICS.md` lists them for operators.
//!
//! All names carry the `s3cached_` prefix; counters get Prometheus' `_total` suffix.

use std::sync::Mutex;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

mod labels;

pub use self::labels::{
    DenialLabels, Direction, EventLabels, FillResult, Op, OpResult, Reason, Source, Tier, TierCause,
};

/// The series a cache hit updates (`cache_hits`, `bytes_served{source="cache"}`, `requests`
/// with result `ok`, `request_duration_seconds`), resolved once for one tier and operation so
/// that the hot path pays atomic increments rather than label lookups per hit.
#[derive(Clone)]
pub struct HitCounters {
    hits: Counter,
    served: Counter,
    requests: Counter,
    duration: Histogram,
}

impl HitCounters {
    /// Records one hit that took `elapsed` and sent `body_bytes` (none for HEAD).
    pub fn record(&self, body_bytes: Option<u64>, elapsed: Duration) {
        self.hits.inc();
        self.record_answer(body_bytes, elapsed);
    }

    /// Records the answer to a hit whose lookup the tier counted already (a lookup through
    /// `CacheTier::get`), so the hit itself is not counted twice.
    pub fn record_answer(&self, body_bytes: Option<u64>, elapsed: Duration) {
        if let Some(bytes) = body_bytes {
            self.served.inc_by(bytes);
        }
        self.requests.inc();
        self.duration.observe(elapsed.as_secs_f64());
    }
}

/// The metric set of one s3cached process.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<OpResult, Counter>,
    request_duration: Family<Op, Histogram>,
    cache_hits: Family<Tier, Counter>,
    cache_misses: Family<Tier, Counter>,
    cache_bypasses: Family<Op, Counter>,
    hot_path_answers: Family<Op, Counter>,
    cache_entries: Family<Tier, Gauge>,
    cache_bytes: Family<Tier, Gauge>,
    evictions: Family<TierCause, Counter>,
    origin_requests: Family<OpResult, Counter>,
    origin_duration: Family<Op, Histogram>,
    bytes_served: Family<Source, Counter>,
    fills: Family<FillResult, Counter>,
    singleflight_waits: Counter,
    invalidations: Family<Op, Counter>,
    tier_errors: Family<Tier, Counter>,
    tier_bypasses: Family<Tier, Counter>,
    bus_messages: Family<Direction, Counter>,
    bus_ack_timeouts: Counter,
    revalidations: Family<FillResult, Counter>,
    stale_served: Family<Reason, Counter>,
    events: Family<EventLabels, Counter>,
    poison_messages: Counter,
    authorization_denials: Family<DenialLabels, Counter>,
    block_hits: Family<Tier, Counter>,
    block_misses: Family<Tier, Counter>,
    block_bytes_served: Family<Source, Counter>,
    block_origin_fetches: Counter,
    block_origin_fetch_blocks: Counter,
    block_stream_kept: Counter,
    hedges: Family<FillResult, Counter>,
    block_bypasses: Family<Reason, Counter>,
    prefetch_blocks: Family<FillResult, Counter>,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~105 s in doublings: cache hits and S3 round trips both land in resolved buckets.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 22))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    #[must_use]
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("s3cached");
        let requests = Family::<OpResult, Counter>::default();
        r.register(
            "requests",
            "S3 requests answered, by operation and result (ok or S3 error code)",
            requests.clone(),
        );
        let request_duration = Family::<Op, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        r.register(
            "request_duration_seconds",
            "Time to answer an S3 request (to response headers)",
            request_duration.clone(),
        );
        let cache_hits = Family::<Tier, Counter>::default();
        r.register(
            "cache_hits",
            "GET/HEAD lookups answered by a cache tier",
            cache_hits.clone(),
        );
        let cache_misses = Family::<Tier, Counter>::default();
        r.register(
            "cache_misses",
            "GET/HEAD lookups a cache tier could not answer",
            cache_misses.clone(),
        );
        let cache_bypasses = Family::<Op, Counter>::default();
        r.register(
            "cache_bypasses",
            "GET/HEAD requests sent straight to the origin (part numbers, SSE-C, checksum mode, …)",
            cache_bypasses.clone(),
        );
        let hot_path_answers = Family::<Op, Counter>::default();
        r.register(
            "hot_path_answers",
            "GET/HEAD hits (memory or Redis) answered by the hot path, before full S3 request handling",
            hot_path_answers.clone(),
        );
        let cache_entries = Family::<Tier, Gauge>::default();
        r.register("cache_entries", "Entries held by a cache tier", cache_entries.clone());
        let cache_bytes = Family::<Tier, Gauge>::default();
        r.register(
            "cache_bytes",
            "Weighted bytes held by a cache tier (bodies plus per-entry overhead)",
            cache_bytes.clone(),
        );
        let evictions = Family::<TierCause, Counter>::default();
        r.register(
            "cache_evictions",
            "Entries removed by capacity (cause=size) or TTL (cause=expired)",
            evictions.clone(),
        );
        let origin_requests = Family::<OpResult, Counter>::default();
        r.register(
            "origin_requests",
            "Requests sent to the origin, by operation and result",
            origin_requests.clone(),
        );
        let origin_duration = Family::<Op, Histogram>::new_with_constructor(latency_histogram as fn() -> Histogram);
        r.register(
            "origin_request_duration_seconds",
            "Origin round-trip time (to response headers)",
            origin_duration.clone(),
        );
        let bytes_served = Family::<Source, Counter>::default();
        r.register(
            "bytes_served",
            "Body bytes sent to clients, by source (cache or origin)",
            bytes_served.clone(),
        );
        let fills = Family::<FillResult, Counter>::default();
        r.register(
            "cache_fills",
            "Origin reads made to fill the cache, by outcome",
            fills.clone(),
        );
        let singleflight_waits = Counter::default();
        r.register(
            "singleflight_waits",
            "Cache misses that waited for another request's origin read instead of making their own",
            singleflight_waits.clone(),
        );
        let invalidations = Family::<Op, Counter>::default();
        r.register(
            "cache_invalidations",
            "Cache entries invalidated by writes, by write operation",
            invalidations.clone(),
        );
        let tier_errors = Family::<Tier, Counter>::default();
        r.register(
            "cache_tier_errors",
            "Failed or timed-out tier operations (answered from the origin instead)",
            tier_errors.clone(),
        );
        let tier_bypasses = Family::<Tier, Counter>::default();
        r.register(
            "cache_tier_bypasses",
            "Tier calls skipped while the tier's circuit breaker is open",
            tier_bypasses.clone(),
        );
        let bus_messages = Family::<Direction, Counter>::default();
        r.register(
            "bus_invalidations",
            "Invalidations sent to and received from other processes sharing the Redis tier",
            bus_messages.clone(),
        );
        let bus_ack_timeouts = Counter::default();
        r.register(
            "bus_ack_timeouts",
            "Writes whose invalidation some live peer did not acknowledge in time",
            bus_ack_timeouts.clone(),
        );
        let revalidations = Family::<FillResult, Counter>::default();
        r.register(
            "revalidations",
            "Conditional GETs for expired entries: not_modified (renewed, no bytes moved), changed, gone, error",
            revalidations.clone(),
        );
        let stale_served = Family::<Reason, Counter>::default();
        r.register(
            "stale_served",
            "Expired entries served: while_revalidate (a refresh runs) or if_error (the origin failed)",
            stale_served.clone(),
        );
        let events = Family::<EventLabels, Counter>::default();
        r.register(
            "events",
            "S3 event notifications applied, by source and outcome",
            events.clone(),
        );
        let poison_messages = Counter::default();
        r.register(
            "event_poison_messages",
            "Queue messages dropped because they could not be parsed or kept failing",
            poison_messages.clone(),
        );
        let authorization_denials = Family::<DenialLabels, Counter>::default();
        r.register(
            "authorization_denials",
            "Requests refused with AccessDenied by s3cached's own authorization, by identity and action",
            authorization_denials.clone(),
        );
        let block_hits = Family::<Tier, Counter>::default();
        r.register(
            "block_hits",
            "Blocks of large or ranged reads found in a tier, by the tier that held them",
            block_hits.clone(),
        );
        let block_misses = Family::<Tier, Counter>::default();
        r.register(
            "block_misses",
            "Blocks of large or ranged reads not found in the tier (read from the origin)",
            block_misses.clone(),
        );
        let block_bytes_served = Family::<Source, Counter>::default();
        r.register(
            "block_bytes_served",
            "Body bytes of answers made from blocks, by where each block came from (memory, redis, origin)",
            block_bytes_served.clone(),
        );
        let block_origin_fetches = Counter::default();
        r.register(
            "block_origin_fetches",
            "Ranged origin GETs that read missing blocks (contiguous missing blocks share one)",
            block_origin_fetches.clone(),
        );
        let block_origin_fetch_blocks = Counter::default();
        r.register(
            "block_origin_fetch_blocks",
            "Blocks those origin GETs asked for (divided by the fetches: blocks per coalesced request)",
            block_origin_fetch_blocks.clone(),
        );
        let block_stream_kept = Counter::default();
        r.register(
            "block_stream_kept",
            "Blocks kept from whole GETs streamed from the origin (the first read of an object fills its blocks)",
            block_stream_kept.clone(),
        );
        let hedges = Family::<FillResult, Counter>::default();
        r.register(
            "origin_hedges",
            "Hedged origin reads: sent (a second request raced a slow first one), won (the second answered first)",
            hedges.clone(),
        );
        let block_bypasses = Family::<Reason, Counter>::default();
        r.register(
            "block_bypasses",
            "Reads that could have used blocks but went to the origin uncached: in_flight_limit (too many bytes in flight)",
            block_bypasses.clone(),
        );
        let prefetch_blocks = Family::<FillResult, Counter>::default();
        r.register(
            "prefetch_blocks",
            "Blocks read ahead of sequential readers: issued, used (read by a client later), wasted (evicted or expired unread)",
            prefetch_blocks.clone(),
        );
        Self {
            registry: Mutex::new(r),
            requests,
            request_duration,
            cache_hits,
            cache_misses,
            cache_bypasses,
            hot_path_answers,
            cache_entries,
            cache_bytes,
            evictions,
            origin_requests,
            origin_duration,
            bytes_served,
            fills,
            singleflight_waits,
            invalidations,
            tier_errors,
            tier_bypasses,
            bus_messages,
            bus_ack_timeouts,
            revalidations,
            stale_served,
            events,
            poison_messages,
            authorization_denials,
            block_hits,
            block_misses,
            block_bytes_served,
            block_origin_fetches,
            block_origin_fetch_blocks,
            block_stream_kept,
            hedges,
            block_bypasses,
            prefetch_blocks,
        }
    }

    /// Records one answered S3 request.
    pub fn request(&self, operation: &'static str, result: &str, elapsed: Duration) {
        self.requests
            .get_or_create(&OpResult {
                operation,
                result: result.to_owned(),
            })
            .inc();
        self.request_duration
            .get_or_create(&Op { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// Records one origin request.
    pub fn origin_request(&self, operation: &'static str, result: &str, elapsed: Duration) {
        self.origin_requests
            .get_or_create(&OpResult {
                operation,
                result: result.to_owned(),
            })
            .inc();
        self.origin_duration
            .get_or_create(&Op { operation })
            .observe(elapsed.as_secs_f64());
    }

    /// The metrics one cache hit of `operation` answered from `tier` updates, resolved once.
    #[must_use]
    pub fn hit_counters(&self, tier: &'static str, operation: &'static str) -> HitCounters {
        HitCounters {
            hits: self.cache_hits.get_or_create(&Tier { tier }).clone(),
            served: self.bytes_served.get_or_create(&Source { source: "cache" }).clone(),
            requests: self
                .requests
                .get_or_create(&OpResult {
                    operation,
                    result: "ok".to_owned(),
                })
                .clone(),
            duration: self.request_duration.get_or_create(&Op { operation }).clone(),
        }
    }

    /// The `hot_path_answers` series of `operation`, resolved once.
    #[must_use]
    pub fn hot_path_answers(&self, operation: &'static str) -> Counter {
        self.hot_path_answers.get_or_create(&Op { operation }).clone()
    }

    /// Records a lookup answered by `tier`.
    pub fn hit(&self, tier: &'static str) {
        self.cache_hits.get_or_create(&Tier { tier }).inc();
    }

    /// Records a lookup `tier` could not answer.
    pub fn miss(&self, tier: &'static str) {
        self.cache_misses.get_or_create(&Tier { tier }).inc();
    }

    /// Records a read that skipped the cache.
    pub fn bypass(&self, operation: &'static str) {
        self.cache_bypasses.get_or_create(&Op { operation }).inc();
    }

    /// Records entries leaving a tier on their own.
    pub fn eviction(&self, tier: &'static str, cause: &'static str) {
        self.evictions.get_or_create(&TierCause { tier, cause }).inc();
    }

    /// Records body bytes sent to a client.
    pub fn served(&self, source: &'static str, bytes: u64) {
        self.bytes_served.get_or_create(&Source { source }).inc_by(bytes);
    }

    /// Records a block found in `tier`.
    pub fn block_hit(&self, tier: &'static str) {
        self.block_hits.get_or_create(&Tier { tier }).inc();
    }

    /// Records a block `tier` did not hold.
    pub fn block_miss(&self, tier: &'static str) {
        self.block_misses.get_or_create(&Tier { tier }).inc();
    }

    /// Records body bytes of a block answer that came from `source`.
    pub fn block_served(&self, source: &'static str, bytes: u64) {
        self.block_bytes_served.get_or_create(&Source { source }).inc_by(bytes);
    }

    /// Records one ranged origin GET for `blocks` missing blocks.
    pub fn block_origin_fetch(&self, blocks: u64) {
        self.block_origin_fetches.inc();
        self.block_origin_fetch_blocks.inc_by(blocks);
    }

    /// Records a hedged origin read: `sent` or `won`.
    pub fn hedge(&self, result: &'static str) {
        self.hedges.get_or_create(&FillResult { result }).inc();
    }

    /// Records one block kept from a whole GET streaming through.
    pub fn block_kept_from_stream(&self) {
        self.block_stream_kept.inc();
    }

    /// Records a read that went to the origin uncached instead of through blocks.
    pub fn block_bypass(&self, reason: &'static str) {
        self.block_bypasses.get_or_create(&Reason { reason }).inc();
    }

    /// Records read-ahead blocks: `issued`, `used` or `wasted`.
    pub fn prefetch(&self, result: &'static str, blocks: u64) {
        self.prefetch_blocks
            .get_or_create(&FillResult { result })
            .inc_by(blocks);
    }

    /// Records the outcome of a fill.
    pub fn fill(&self, result: &'static str) {
        self.fills.get_or_create(&FillResult { result }).inc();
    }

    /// Records a miss that joined another request's fill.
    pub fn singleflight_wait(&self) {
        self.singleflight_waits.inc();
    }

    /// Records an invalidation caused by a write operation.
    pub fn invalidation(&self, operation: &'static str) {
        self.invalidations.get_or_create(&Op { operation }).inc();
    }

    /// Records a tier call skipped because the tier's circuit breaker is open.
    pub fn tier_bypass(&self, tier: &'static str) {
        self.tier_bypasses.get_or_create(&Tier { tier }).inc();
    }

    /// Records an invalidation sent to or received from peers.
    pub fn bus_message(&self, direction: &'static str) {
        self.bus_messages.get_or_create(&Direction { direction }).inc();
    }

    /// Records a write whose peers did not all acknowledge in time.
    pub fn bus_ack_timeout(&self) {
        self.bus_ack_timeouts.inc();
    }

    /// Records the outcome of a revalidation.
    pub fn revalidation(&self, result: &'static str) {
        self.revalidations.get_or_create(&FillResult { result }).inc();
    }

    /// Records a stale entry served.
    pub fn stale_served(&self, reason: &'static str) {
        self.stale_served.get_or_create(&Reason { reason }).inc();
    }

    /// Records a request refused by authorization.
    pub fn authorization_denied(&self, identity: &str, action: &'static str) {
        self.authorization_denials
            .get_or_create(&DenialLabels {
                identity: identity.to_owned(),
                action,
            })
            .inc();
    }

    /// Records an applied event.
    pub fn event(&self, source: &'static str, result: &'static str) {
        self.events.get_or_create(&EventLabels { source, result }).inc();
    }

    /// Records a dropped queue message.
    pub fn poison_message(&self) {
        self.poison_messages.inc();
    }

    /// Records a failed tier operation.
    pub fn tier_error(&self, tier: &'static str) {
        self.tier_errors.get_or_create(&Tier { tier }).inc();
    }

    /// Sets a tier's size gauges.
    pub fn tier_size(&self, tier: &'static str, entries: u64, bytes: u64) {
        let label = Tier { tier };
        self.cache_entries
            .get_or_create(&label)
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        self.cache_bytes
            .get_or_create(&label)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Renders every metric in the Prometheus text exposition format.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_prefix_and_suffix() {
        let m = Metrics::new();
        m.hit("memory");
        m.miss("memory");
        m.request("GetObject", "ok", Duration::from_millis(1));
        m.origin_request("GetObject", "NoSuchKey", Duration::from_millis(10));
        m.singleflight_wait();
        m.tier_size("memory", 3, 4096);
        let text = m.encode();
        for line in [
            "s3cached_cache_hits_total{tier=\"memory\"} 1",
            "s3cached_cache_misses_total{tier=\"memory\"} 1",
            "s3cached_requests_total{operation=\"GetObject\",result=\"ok\"} 1",
            "s3cached_origin_requests_total{operation=\"GetObject\",result=\"NoSuchKey\"} 1",
            "s3cached_singleflight_waits_total 1",
            "s3cached_cache_entries{tier=\"memory\"} 3",
            "s3cached_cache_bytes{tier=\"memory\"} 4096",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        assert!(text.contains("s3cached_request_duration_seconds_bucket"));
    }
}
