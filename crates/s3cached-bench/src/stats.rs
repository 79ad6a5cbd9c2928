//! Latency summaries: average, extremes, percentiles (nearest rank on the sorted samples) and
//! a percentile curve for the chart.

use serde::Serialize;

/// Percentiles (in %) sampled for the chart's curves: dense towards the tail.
const CURVE_POINTS: [f64; 16] = [
    1.0, 10.0, 25.0, 50.0, 75.0, 90.0, 95.0, 97.5, 99.0, 99.5, 99.75, 99.9, 99.95, 99.99, 99.999, 100.0,
];

/// A latency distribution, in milliseconds.
#[derive(Debug, Clone, Serialize, Default)]
pub struct LatencyStats {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub avg_ms: f64,
    /// Fastest.
    pub min_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// `[percentile, ms]` pairs for plotting (percentiles that the sample count resolves).
    pub curve: Vec<[f64; 2]>,
}

impl LatencyStats {
    /// Summarizes samples given in nanoseconds (sorted in place).
    pub fn from_nanos(samples: &mut [u64]) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let ms = |ns: u64| ns as f64 / 1e6;
        let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
        let n = samples.len();
        let pct = |p: f64| ms(percentile(samples, p));
        let curve = CURVE_POINTS
            .iter()
            // A percentile p is resolved when at least one sample lies beyond it.
            .filter(|&&p| p >= 100.0 || (n as f64) * (1.0 - p / 100.0) >= 1.0)
            .map(|&p| [p, pct(p)])
            .collect();
        Self {
            count: n as u64,
            avg_ms: sum as f64 / n as f64 / 1e6,
            min_ms: ms(samples[0]),
            max_ms: ms(samples[n - 1]),
            p50_ms: pct(50.0),
            p90_ms: pct(90.0),
            p99_ms: pct(99.0),
            p999_ms: pct(99.9),
            curve,
        }
    }
}

/// Nearest-rank percentile of sorted samples (`p` in percent).
fn percentile(sorted: &[u64], p: f64) -> u64 {
    let n = sorted.len();
    // The epsilon keeps float error (0.999 * 1000 = 999.0000000000001) off the next rank.
    let rank = ((p / 100.0) * n as f64 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// `100 * (1 - new / old)`: how much lower `new` is than `old`, in percent.
pub fn improvement_pct(old: f64, new: f64) -> f64 {
    if old > 0.0 { 100.0 * (1.0 - new / old) } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<u64> = (1..=1000).rev().map(|i| i * 1_000_000).collect();
        let s = LatencyStats::from_nanos(&mut v);
        assert_eq!(s.count, 1000);
        assert_eq!(s.min_ms, 1.0);
        assert_eq!(s.max_ms, 1000.0);
        assert_eq!(s.p50_ms, 500.0);
        assert_eq!(s.p99_ms, 990.0);
        assert_eq!(s.p999_ms, 999.0);
        assert!((s.avg_ms - 500.5).abs() < 1e-9);
        assert!(s.curve.iter().all(|[p, _]| *p <= 99.9 || *p == 100.0));
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(LatencyStats::from_nanos(&mut []).count, 0);
        assert!((improvement_pct(10.0, 0.1) - 99.0).abs() < 1e-9);
    }
}
