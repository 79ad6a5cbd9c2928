//! Reading s3cached's `/metrics` in tests: sums over series selected like
//! `s3cached_requests_total{operation="GetObject"}`, and waiting for a counter to move. The text
//! format is parsed by `s3cached_bench::prometheus_text`, the parser the bench uses.

use std::time::{Duration, Instant};

pub use s3cached_bench::prometheus_text::{Exposition, Sample};

use super::proxy::S3Cached;

/// Every sample of a Prometheus/OpenMetrics text exposition (comments and blank lines skipped).
pub fn parse_metrics(text: &str) -> Vec<Sample> {
    Exposition::parse(text).samples().to_vec()
}

/// Sum of every series in `text` with the name of `query` whose labels include all of
/// `query`'s labels; `None` when no series matches. `query` looks like
/// `s3cached_requests_total{op="GetObject",result="hit"}` or just `s3cached_requests_total`
/// (label values may be unquoted). Panics when `query` is not a series selector.
pub fn metric_sum(text: &str, query: &str) -> Option<f64> {
    Exposition::parse(text)
        .query(query)
        .unwrap_or_else(|e| panic!("bad metric query {query:?}: {e}"))
}

/// Polls `query` on `p` until it reaches `at_least`; panics with the log after `timeout`.
pub async fn wait_metric(p: &S3Cached, query: &str, at_least: f64, timeout: Duration) -> f64 {
    let started = Instant::now();
    loop {
        let value = p.metric_value(query).await;
        if value >= at_least {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "{query} = {value}, still below {at_least} after {timeout:?}\n{}",
            p.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
