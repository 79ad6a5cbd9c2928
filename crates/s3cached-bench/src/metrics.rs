//! Reads s3cached's `/metrics` ([`crate::prometheus_text`]) and turns two snapshots into the
//! counters a step moved: hits and misses per tier, origin GETs, single-flight waits.

use http::uri::PathAndQuery;
use serde::Serialize;

use crate::client::{Conn, Endpoint};
use crate::prometheus_text::Exposition;

/// Where a cache's metrics are read.
#[derive(Debug, Clone)]
pub struct MetricsSource {
    endpoint: Endpoint,
    path: PathAndQuery,
}

impl MetricsSource {
    /// From a URL such as `http://127.0.0.1:9091/metrics`.
    ///
    /// # Errors
    /// When the URL does not parse or resolve.
    pub async fn new(url: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse()?;
        let path = uri
            .path_and_query()
            .cloned()
            .filter(|p| p.path() != "/")
            .unwrap_or_else(|| PathAndQuery::from_static("/metrics"));
        let base = format!("http://{}", uri.authority().map(|a| a.as_str()).unwrap_or_default());
        Ok(Self {
            endpoint: Endpoint::resolve(&base).await?,
            path,
        })
    }

    /// Takes a snapshot.
    ///
    /// # Errors
    /// When the endpoint does not answer.
    pub async fn snapshot(&self) -> anyhow::Result<Exposition> {
        let text = Conn::new(self.endpoint.clone()).get_text(&self.path).await?;
        Ok(Exposition::parse(&text))
    }
}

/// Hits and misses of one tier during a step.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TierCounts {
    /// Tier name.
    pub tier: String,
    /// Lookups the tier answered.
    pub hits: u64,
    /// Lookups it could not answer.
    pub misses: u64,
    /// `hits / (hits + misses)`, when there were lookups.
    pub hit_ratio: Option<f64>,
}

/// What the cache's counters moved during a step.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Delta {
    /// Per tier, in the order the cache reports them.
    pub tiers: Vec<TierCounts>,
    /// GetObject requests s3cached sent to the origin.
    pub origin_gets: u64,
    /// Misses served by joining another request's origin read.
    pub singleflight_waits: u64,
}

impl Delta {
    /// `after - before`.
    pub fn between(before: &Exposition, after: &Exposition) -> Self {
        let d = |name: &str, filter: &[(&str, &str)]| {
            let v = after.sum(name, filter).unwrap_or(0.0) - before.sum(name, filter).unwrap_or(0.0);
            if v > 0.0 { v.round() as u64 } else { 0 }
        };
        let mut names = after.label_values("s3cached_cache_hits_total", "tier");
        for t in after.label_values("s3cached_cache_misses_total", "tier") {
            if !names.contains(&t) {
                names.push(t);
            }
        }
        let tiers = names
            .into_iter()
            .map(|tier| {
                let hits = d("s3cached_cache_hits_total", &[("tier", &tier)]);
                let misses = d("s3cached_cache_misses_total", &[("tier", &tier)]);
                let total = hits + misses;
                TierCounts {
                    hit_ratio: (total > 0).then(|| hits as f64 / total as f64),
                    tier,
                    hits,
                    misses,
                }
            })
            .collect();
        Self {
            tiers,
            origin_gets: d("s3cached_origin_requests_total", &[("operation", "GetObject")]),
            singleflight_waits: d("s3cached_singleflight_waits_total", &[]),
        }
    }

    /// Hit ratio of the first (closest to the client) tier.
    pub fn hit_ratio(&self) -> Option<f64> {
        self.tiers.first().and_then(|t| t.hit_ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "\
# HELP s3cached_cache_hits GET/HEAD lookups answered by a cache tier
# TYPE s3cached_cache_hits counter
s3cached_cache_hits_total{tier=\"memory\"} 10
s3cached_cache_misses_total{tier=\"memory\"} 5
s3cached_origin_requests_total{operation=\"GetObject\",result=\"ok\"} 5
s3cached_origin_requests_total{operation=\"HeadObject\",result=\"ok\"} 2
";
    const AFTER: &str = "\
s3cached_cache_hits_total{tier=\"memory\"} 100
s3cached_cache_misses_total{tier=\"memory\"} 15
s3cached_origin_requests_total{operation=\"GetObject\",result=\"ok\"} 14
s3cached_origin_requests_total{operation=\"GetObject\",result=\"NoSuchKey\"} 1
s3cached_singleflight_waits_total 1
";

    #[test]
    fn delta_of_two_snapshots() {
        let d = Delta::between(&Exposition::parse(BEFORE), &Exposition::parse(AFTER));
        assert_eq!(d.tiers.len(), 1);
        assert_eq!(d.tiers[0].tier, "memory");
        assert_eq!(d.tiers[0].hits, 90);
        assert_eq!(d.tiers[0].misses, 10);
        assert_eq!(d.hit_ratio(), Some(0.9));
        assert_eq!(d.origin_gets, 10);
        assert_eq!(d.singleflight_waits, 1);
    }
}
