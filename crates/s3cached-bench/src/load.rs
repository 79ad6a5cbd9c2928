//! Load mode: throughput and latency under concurrency, per object size, with a working set
//! larger than the cache.
//!
//! For each size: upload the working set to the origin; sweep the connection counts against
//! the origin directly (the baseline, unless `--no-origin-baseline`); then, per tier, start a
//! fresh s3cached with the configured capacity, warm it for `--warmup`, and sweep the same
//! connection counts against it. Each step runs `--duration` (and at most
//! [`MAX_REQUESTS_PER_WORKER`] requests per connection); hits, misses and origin GETs come
//! from the cache's `/metrics` before and after the step.

use std::sync::Arc;
use std::time::{Duration, Instant};

use s3cached::model::size::ByteSize;
use serde::Serialize;
use tokio::sync::Barrier;

use crate::client::{self, CacheStatus, Conn, Endpoint, UrlSet};
use crate::metrics::Delta;
use crate::plan::{Capacity, Load, Plan, Popularity};
use crate::progress::Progress;
use crate::stats::LatencyStats;
use crate::targets::Targets;
use crate::workload::{KeyPicker, SplitMix};

/// Upper bound of requests one connection makes in one step.
pub const MAX_REQUESTS_PER_WORKER: u64 = 5_000_000;
/// S3 Standard GET list price, USD per request ($0.0004 per 1,000).
pub const GET_PRICE_USD: f64 = 0.0004 / 1000.0;
/// Connections of the warm-up.
const WARMUP_CONCURRENCY: usize = 8;
/// Pause after a failed request, so a dead server is not spun on.
const ERROR_PAUSE: Duration = Duration::from_millis(10);
/// Weight s3cached charges per entry on top of the body.
const ENTRY_OVERHEAD: u64 = 512;

/// One measured step.
#[derive(Debug, Clone, Serialize)]
pub struct LoadStep {
    /// Object size in bytes.
    pub size_bytes: u64,
    /// Client connections.
    pub concurrency: usize,
    /// `origin`, or the cache's tier.
    pub target: String,
    /// Measured wall time in seconds.
    pub duration_s: f64,
    /// Completed requests (including errors).
    pub requests: u64,
    /// Failed requests and non-200 answers.
    pub errors: u64,
    /// Body bytes received.
    pub bytes: u64,
    /// Requests per second.
    pub req_per_s: f64,
    /// Body MiB per second.
    pub mib_per_s: f64,
    /// Latency of successful requests.
    pub latency: LatencyStats,
    /// Hit ratio of the first tier (metrics, else the `x-s3cached` header); caches only.
    pub hit_ratio: Option<f64>,
    /// Where `hit_ratio` came from.
    pub hit_ratio_source: Option<&'static str>,
    /// The cache's counters over the step, when readable.
    pub metrics: Option<Delta>,
    /// GetObject requests that reached the origin (metrics, else header misses); caches only.
    pub origin_gets: Option<u64>,
    /// Requests answered without an origin GET.
    pub origin_requests_saved: Option<u64>,
    /// `origin_requests_saved` at the S3 GET list price, USD.
    pub cost_saved_usd: Option<f64>,
    /// The same rate per million client requests, USD.
    pub cost_saved_usd_per_million: Option<f64>,
    /// Requests per second relative to the origin at the same size and concurrency.
    pub throughput_vs_origin: Option<f64>,
    /// p99 relative to the origin's p99 at the same size and concurrency.
    pub p99_vs_origin: Option<f64>,
}

/// The working set of one size.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSize {
    /// Object size in bytes.
    pub size_bytes: u64,
    /// Distinct objects.
    pub objects: u64,
    /// Their total size in bytes.
    pub working_set_bytes: u64,
    /// Memory capacity of the embedded cache, in bytes.
    pub cache_capacity_bytes: Option<u64>,
}

/// Load-mode results.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// `uniform` or `zipf(s)`.
    pub popularity: String,
    /// Configured step length in seconds.
    pub step_duration_s: f64,
    /// Configured warm-up in seconds.
    pub warmup_s: f64,
    /// Per size.
    pub sizes: Vec<LoadSize>,
    /// Every step, in run order.
    pub steps: Vec<LoadStep>,
}

/// What one connection (or, summed, the whole step) measured.
#[derive(Default)]
struct Raw {
    requests: u64,
    errors: u64,
    bytes: u64,
    header_hits: u64,
    header_misses: u64,
    samples: Vec<u64>,
    elapsed: Duration,
}

/// Runs load mode.
///
/// # Errors
/// Set-up failures; failed requests are counted, not fatal.
pub async fn run(plan: &Plan, l: &Load, env: &Targets, progress: &Progress) -> anyhow::Result<LoadResult> {
    let run_id = crate::classic::run_id();
    let origin_sdk = client::sdk(&env.origin.url, &env.origin.keys, &plan.region);
    client::ensure_bucket(&origin_sdk, &plan.bucket).await?;
    let origin_endpoint = Endpoint::resolve(&env.origin.url).await?;
    let per_size = l.concurrency.len() * (plan.tiers.len() + usize::from(l.origin_baseline));
    let total_steps = (l.sizes.len() * per_size) as u64;
    let mut sizes = Vec::new();
    let mut steps = Vec::new();
    let mut done = 0u64;
    for &size in &l.sizes {
        let n = l.keys_for(size);
        let keys: Vec<String> = (0..n).map(|i| format!("load/{run_id}/{size}/obj-{i:05}")).collect();
        progress.phase(format!("uploading {n} objects of {}", ByteSize(size)), n);
        client::put_objects(&origin_sdk, &plan.bucket, &keys, size, || progress.inc(1)).await?;
        let picker = KeyPicker::new(keys.len(), l.popularity);
        let capacity = match l.capacity {
            Capacity::Bytes(b) => b,
            Capacity::Fraction(f) => (f * (n * (size + ENTRY_OVERHEAD)) as f64) as u64,
        }
        .max(1 << 20);
        sizes.push(LoadSize {
            size_bytes: size,
            objects: n,
            working_set_bytes: n * size,
            cache_capacity_bytes: env.embedded_cache.then_some(capacity),
        });
        let mut origin_steps: Vec<(usize, f64, f64)> = Vec::new();
        if l.origin_baseline {
            let urls = client::presign_all(&origin_sdk, origin_endpoint.clone(), &plan.bucket, &keys).await?;
            for &conc in &l.concurrency {
                progress.phase(format!("origin {} x{conc}", ByteSize(size)), total_steps);
                progress.inc(done);
                let raw = step(&urls, &picker, conc, l.duration, plan.seed, size).await;
                let s = finish_step(size, conc, "origin".to_owned(), raw, None, None);
                origin_steps.push((conc, s.req_per_s, s.latency.p99_ms));
                steps.push(s);
                done += 1;
            }
        }
        for &tier in &plan.tiers {
            let cache = env.cache(tier, capacity, (8 << 20u64).max(size)).await?;
            let sdk = client::sdk(&cache.url, &cache.keys, &plan.region);
            let urls = client::presign_all(&sdk, Endpoint::resolve(&cache.url).await?, &plan.bucket, &keys).await?;
            if !l.warmup.is_zero() {
                progress.message(format!("{} {} warm-up", cache.tier, ByteSize(size)));
                let warm = WARMUP_CONCURRENCY.min(l.concurrency.iter().copied().max().unwrap_or(1));
                let _ = step(&urls, &picker, warm, l.warmup, plan.seed ^ 0xa5a5, size).await;
            }
            for &conc in &l.concurrency {
                progress.phase(format!("{} {} x{conc}", cache.tier, ByteSize(size)), total_steps);
                progress.inc(done);
                let before = match &cache.metrics {
                    Some(m) => m.snapshot().await.ok(),
                    None => None,
                };
                let raw = step(&urls, &picker, conc, l.duration, plan.seed, size).await;
                let delta = match (&cache.metrics, before) {
                    (Some(m), Some(before)) => m.snapshot().await.ok().map(|after| Delta::between(&before, &after)),
                    _ => None,
                };
                let baseline = origin_steps.iter().find(|(c, _, _)| *c == conc).copied();
                steps.push(finish_step(
                    size,
                    conc,
                    cache.tier.clone(),
                    raw,
                    Some(delta),
                    baseline.map(|(_, r, p)| (r, p)),
                ));
                done += 1;
            }
            cache.stop().await;
        }
        if plan.external.origin.is_some() {
            client::delete_objects(&origin_sdk, &plan.bucket, &keys).await;
        }
    }
    Ok(LoadResult {
        popularity: match l.popularity {
            Popularity::Uniform => "uniform".to_owned(),
            Popularity::Zipf(s) => format!("zipf({s})"),
        },
        step_duration_s: l.duration.as_secs_f64(),
        warmup_s: l.warmup.as_secs_f64(),
        sizes,
        steps,
    })
}

/// `cache` is `Some(delta)` for cache steps (the delta itself may be unknown); `baseline` is
/// the origin's (req/s, p99) at the same size and concurrency.
fn finish_step(
    size: u64,
    concurrency: usize,
    target: String,
    mut raw: Raw,
    cache: Option<Option<Delta>>,
    baseline: Option<(f64, f64)>,
) -> LoadStep {
    let secs = raw.elapsed.as_secs_f64().max(1e-9);
    let latency = LatencyStats::from_nanos(&mut raw.samples);
    let req_per_s = raw.requests as f64 / secs;
    let (mut hit_ratio, mut source, mut origin_gets, mut metrics) = (None, None, None, None);
    if let Some(delta) = cache {
        match delta {
            Some(d) => {
                hit_ratio = d.hit_ratio();
                source = Some("metrics");
                origin_gets = Some(d.origin_gets);
                metrics = Some(d);
            }
            None => {
                let looked_up = raw.header_hits + raw.header_misses;
                hit_ratio = (looked_up > 0).then(|| raw.header_hits as f64 / looked_up as f64);
                source = Some("header");
                origin_gets = Some(raw.header_misses);
            }
        }
    }
    let saved = origin_gets.map(|g| raw.requests.saturating_sub(g));
    LoadStep {
        size_bytes: size,
        concurrency,
        target,
        duration_s: secs,
        requests: raw.requests,
        errors: raw.errors,
        bytes: raw.bytes,
        req_per_s,
        mib_per_s: raw.bytes as f64 / secs / f64::from(1u32 << 20),
        hit_ratio,
        hit_ratio_source: source,
        metrics,
        origin_gets,
        origin_requests_saved: saved,
        cost_saved_usd: saved.map(|s| s as f64 * GET_PRICE_USD),
        cost_saved_usd_per_million: saved
            .filter(|_| raw.requests > 0)
            .map(|s| s as f64 / raw.requests as f64 * 1e6 * GET_PRICE_USD),
        throughput_vs_origin: baseline.filter(|(r, _)| *r > 0.0).map(|(r, _)| req_per_s / r),
        p99_vs_origin: baseline.filter(|(_, p)| *p > 0.0).map(|(_, p)| latency.p99_ms / p),
        latency,
    }
}

/// `concurrency` connections GET keys chosen by `picker` for `duration`.
async fn step(
    urls: &UrlSet,
    picker: &KeyPicker,
    concurrency: usize,
    duration: Duration,
    seed: u64,
    expected: u64,
) -> Raw {
    let barrier = Arc::new(Barrier::new(concurrency + 1));
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency {
        let (urls, picker, barrier) = (urls.clone(), picker.clone(), Arc::clone(&barrier));
        let mut rng = SplitMix::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ w as u64);
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(urls.endpoint.clone());
            // Connect before the clock starts; a failure shows up as errors below.
            let _ = conn.open().await;
            let mut raw = Raw::default();
            barrier.wait().await;
            let deadline = Instant::now() + duration;
            while Instant::now() < deadline && raw.requests < MAX_REQUESTS_PER_WORKER {
                let path = &urls.paths[picker.pick(&mut rng)];
                raw.requests += 1;
                match conn.get(path).await {
                    Ok(a) if a.status == 200 && a.bytes == expected => {
                        raw.bytes += a.bytes;
                        raw.samples
                            .push(u64::try_from(a.elapsed.as_nanos()).unwrap_or(u64::MAX));
                        match a.cache {
                            CacheStatus::Hit => raw.header_hits += 1,
                            CacheStatus::Miss => raw.header_misses += 1,
                            CacheStatus::Other => {}
                        }
                    }
                    Ok(a) => {
                        raw.errors += 1;
                        raw.bytes += a.bytes;
                    }
                    Err(_) => {
                        raw.errors += 1;
                        tokio::time::sleep(ERROR_PAUSE).await;
                    }
                }
            }
            raw
        }));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut total = Raw::default();
    for t in tasks {
        if let Ok(r) = t.await {
            total.requests += r.requests;
            total.errors += r.errors;
            total.bytes += r.bytes;
            total.header_hits += r.header_hits;
            total.header_misses += r.header_misses;
            total.samples.extend(r.samples);
        }
    }
    total.elapsed = started.elapsed();
    total
}
