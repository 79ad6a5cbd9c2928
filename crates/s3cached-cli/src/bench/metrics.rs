//! Reads s3cached's Prometheus text (`/metrics`) and turns two snapshots into the counters a
//! step moved: hits and misses per tier, origin GETs, single-flight waits.

use http::uri::PathAndQuery;
use serde::Serialize;

use super::client::{Conn, Endpoint};

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
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let text = Conn::new(self.endpoint.clone()).get_text(&self.path).await?;
        Ok(Snapshot::parse(&text))
    }
}

/// Label pairs of one series.
type Labels = Vec<(String, String)>;

/// Counter values by series (`name{labels}`).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    series: Vec<(String, Labels, f64)>,
}

impl Snapshot {
    /// Parses Prometheus text exposition format (comments and malformed lines are skipped).
    pub fn parse(text: &str) -> Self {
        let mut series = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((head, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.parse::<f64>() else {
                continue;
            };
            let (name, labels) = match head.split_once('{') {
                Some((name, rest)) => (name, parse_labels(rest.trim_end_matches('}'))),
                None => (head, Vec::new()),
            };
            series.push((name.to_owned(), labels, value));
        }
        Self { series }
    }

    /// Sum of `name` over series whose labels include every `(key, value)` of `filter`.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.series
            .iter()
            .filter(|(n, labels, _)| {
                n == name
                    && filter
                        .iter()
                        .all(|(k, v)| labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Values of `label` that `name` has series for.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .series
            .iter()
            .filter(|(n, _, _)| n == name)
            .filter_map(|(_, labels, _)| labels.iter().find(|(k, _)| k == label).map(|(_, v)| v.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn parse_labels(s: &str) -> Labels {
    let mut out = Vec::new();
    for part in s.split("\",") {
        if let Some((k, v)) = part.split_once('=') {
            out.push((
                k.trim().trim_start_matches(',').to_owned(),
                v.trim().trim_matches('"').to_owned(),
            ));
        }
    }
    out
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
    pub fn between(before: &Snapshot, after: &Snapshot) -> Self {
        let d = |name: &str, filter: &[(&str, &str)]| {
            let v = after.sum(name, filter) - before.sum(name, filter);
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
        let d = Delta::between(&Snapshot::parse(BEFORE), &Snapshot::parse(AFTER));
        assert_eq!(d.tiers.len(), 1);
        assert_eq!(d.tiers[0].tier, "memory");
        assert_eq!(d.tiers[0].hits, 90);
        assert_eq!(d.tiers[0].misses, 10);
        assert_eq!(d.hit_ratio(), Some(0.9));
        assert_eq!(d.origin_gets, 10);
        assert_eq!(d.singleflight_waits, 1);
    }
}
