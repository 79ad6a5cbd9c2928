//! Classic mode: the well-known "S3 versus cache, N sequential GETs" comparison.
//!
//! N objects of one size are uploaded to the origin. One connection then GETs each object
//! once from the origin; then, per tier, a fresh s3cached is started and each object is read
//! through it twice: the first pass are misses (filled from the origin), the second pass hits.
//! Every series starts with one extra, dropped request (connection and code paths warm), so
//! each reported series has exactly N samples.

use serde::Serialize;

use crate::client::{self, CacheStatus, Conn, Endpoint, UrlSet};
use crate::metrics::Delta;
use crate::plan::{Classic, Plan};
use crate::progress::Progress;
use crate::stats::{LatencyStats, improvement_pct};
use crate::targets::Targets;

/// Memory capacity of the embedded cache in classic mode: room for every object.
const MIN_CAPACITY: u64 = 256 << 20;
/// Default largest cacheable object of the embedded cache.
const MAX_OBJECT_SIZE: u64 = 8 << 20;

/// One cache's series.
#[derive(Debug, Clone, Serialize)]
pub struct CacheSeries {
    /// Tier (`memory`, or `external`).
    pub tier: String,
    /// Hits: the second pass through the cache.
    pub hit: LatencyStats,
    /// Misses: the first pass through the cache (origin read and fill).
    pub miss: LatencyStats,
    /// Lower average latency of hits than of the origin, in percent.
    pub improvement_avg_pct: f64,
    /// The same for the median.
    pub improvement_p50_pct: f64,
    /// The same for p99.
    pub improvement_p99_pct: f64,
    /// Median of misses minus the origin's median, in ms.
    pub miss_overhead_p50_ms: f64,
    /// Hit ratio of the hit pass: from s3cached's metrics when readable, else from the
    /// `x-s3cached` response header.
    pub hit_ratio: f64,
    /// Where `hit_ratio` came from (`metrics` or `header`).
    pub hit_ratio_source: &'static str,
    /// The cache's counters over the hit pass, when its metrics are readable.
    pub metrics: Option<Delta>,
}

/// Classic-mode results.
#[derive(Debug, Clone, Serialize)]
pub struct ClassicResult {
    /// Objects, and samples per series.
    pub objects: u64,
    /// Object size in bytes.
    pub size_bytes: u64,
    /// Direct origin GETs.
    pub origin: LatencyStats,
    /// One entry per cache compared.
    pub caches: Vec<CacheSeries>,
}

/// Runs classic mode.
///
/// # Errors
/// Set-up failures and any GET that does not return the whole object.
pub async fn run(plan: &Plan, c: &Classic, env: &Targets, progress: &Progress) -> anyhow::Result<ClassicResult> {
    let run_id = run_id();
    // Object N is the warm-up object each series starts with.
    let keys: Vec<String> = (0..=c.objects)
        .map(|i| format!("classic/{run_id}/obj-{i:06}"))
        .collect();
    let origin_sdk = client::sdk(&env.origin.url, &env.origin.keys, &plan.region);
    client::ensure_bucket(&origin_sdk, &plan.bucket).await?;
    progress.phase(format!("uploading {} objects", keys.len()), keys.len() as u64);
    client::put_objects(&origin_sdk, &plan.bucket, &keys, c.size, || progress.inc(1)).await?;

    let origin_urls = client::presign_all(
        &origin_sdk,
        Endpoint::resolve(&env.origin.url).await?,
        &plan.bucket,
        &keys,
    )
    .await?;
    progress.phase("origin: sequential GETs", c.objects + 1);
    let (origin, _) = series(&origin_urls, c, progress).await?;

    let mut caches = Vec::new();
    for &tier in &plan.tiers {
        let capacity = MIN_CAPACITY.max(2 * (c.objects + 1) * (c.size + 512));
        let cache = env.cache(tier, capacity, MAX_OBJECT_SIZE.max(c.size)).await?;
        let cache_sdk = client::sdk(&cache.url, &cache.keys, &plan.region);
        let urls = client::presign_all(&cache_sdk, Endpoint::resolve(&cache.url).await?, &plan.bucket, &keys).await?;
        progress.phase(format!("{}: first GETs (misses)", cache.tier), c.objects + 1);
        let (miss, _) = series(&urls, c, progress).await?;
        let before = match &cache.metrics {
            Some(m) => Some(m.snapshot().await?),
            None => None,
        };
        progress.phase(format!("{}: second GETs (hits)", cache.tier), c.objects + 1);
        let (hit, header_hits) = series(&urls, c, progress).await?;
        let delta = match (&cache.metrics, before) {
            (Some(m), Some(before)) => {
                // The pass includes its dropped warm-up request; the delta covers all N + 1.
                Some(Delta::between(&before, &m.snapshot().await?))
            }
            _ => None,
        };
        let (hit_ratio, hit_ratio_source) = match delta.as_ref().and_then(Delta::hit_ratio) {
            Some(r) => (r, "metrics"),
            None => (header_hits as f64 / (c.objects + 1) as f64, "header"),
        };
        caches.push(CacheSeries {
            tier: cache.tier.clone(),
            improvement_avg_pct: improvement_pct(origin.avg_ms, hit.avg_ms),
            improvement_p50_pct: improvement_pct(origin.p50_ms, hit.p50_ms),
            improvement_p99_pct: improvement_pct(origin.p99_ms, hit.p99_ms),
            miss_overhead_p50_ms: miss.p50_ms - origin.p50_ms,
            hit,
            miss,
            hit_ratio,
            hit_ratio_source,
            metrics: delta,
        });
        cache.stop().await;
    }
    if plan.external.origin.is_some() {
        client::delete_objects(&origin_sdk, &plan.bucket, &keys).await;
    }
    Ok(ClassicResult {
        objects: c.objects,
        size_bytes: c.size,
        origin,
        caches,
    })
}

/// One pass: a dropped GET of the warm-up object, then each object once, in order. Returns
/// the latencies and how many answers (warm-up included) said `x-s3cached: hit-*`.
async fn series(urls: &UrlSet, c: &Classic, progress: &Progress) -> anyhow::Result<(LatencyStats, u64)> {
    let n = usize::try_from(c.objects)?;
    let mut conn = Conn::new(urls.endpoint.clone());
    conn.open().await?;
    let mut samples = Vec::with_capacity(n);
    let mut hits = 0;
    for i in std::iter::once(n).chain(0..n) {
        let answer = conn.get(&urls.paths[i]).await?;
        anyhow::ensure!(
            answer.status == 200 && answer.bytes == c.size,
            "GET {}{} answered {} with {} of {} bytes",
            urls.endpoint.url,
            urls.paths[i].path(),
            answer.status,
            answer.bytes,
            c.size
        );
        if answer.cache == CacheStatus::Hit {
            hits += 1;
        }
        if i != n {
            samples.push(u64::try_from(answer.elapsed.as_nanos()).unwrap_or(u64::MAX));
        }
        progress.inc(1);
    }
    Ok((LatencyStats::from_nanos(&mut samples), hits))
}

/// A short id that keeps one run's objects apart from another's in a shared bucket.
pub fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}-{:x}", std::process::id(), nanos & 0xff_ffff_ffff)
}
