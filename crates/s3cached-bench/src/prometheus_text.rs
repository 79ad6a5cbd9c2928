//! The Prometheus / OpenMetrics text exposition format, read back: samples with their names,
//! labels and values, and sums over the series that match a name and some labels. The bench
//! reads s3cached's counters with it ([`crate::metrics`]); the integration tests read
//! `/metrics` with it.
//!
//! Only sample lines matter here: comments (`# HELP`, `# TYPE`, `# EOF`) and blank lines are
//! skipped, a timestamp after the value is ignored, and lines that do not parse are left out.

/// Label pairs of one series, in the order they were written.
pub type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name (with its `_total`, `_bucket`… suffix).
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// Value (`+Inf`, `-Inf` and `NaN` included).
    pub value: f64,
}

impl Sample {
    /// Whether the sample is of `name` and has every `(key, value)` of `filter` among its labels.
    pub fn matches(&self, name: &str, filter: &[(&str, &str)]) -> bool {
        self.name == name
            && filter
                .iter()
                .all(|(k, v)| self.labels.iter().any(|(lk, lv)| lk == k && lv == v))
    }
}

/// Every sample of one exposition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Exposition {
    samples: Vec<Sample>,
}

impl Exposition {
    /// Parses exposition text; comments, blank lines and malformed lines are skipped.
    pub fn parse(text: &str) -> Self {
        let samples = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .filter_map(|line| {
                let (name, labels, rest) = parse_series(line).ok()?;
                let value = match rest.split_whitespace().next()? {
                    "+Inf" => f64::INFINITY,
                    "-Inf" => f64::NEG_INFINITY,
                    other => other.parse().ok()?,
                };
                Some(Sample { name, labels, value })
            })
            .collect();
        Self { samples }
    }

    /// The samples, in the order they were written.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    /// Sum of `name` over the series whose labels include every `(key, value)` of `filter`;
    /// `None` when no series matches.
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .filter(|s| s.matches(name, filter))
            .map(|s| s.value)
            .reduce(|a, b| a + b)
    }

    /// As [`Exposition::sum`], with name and labels written as one series selector:
    /// `s3cached_requests_total{op="GetObject",result="hit"}` or just `s3cached_requests_total`
    /// (label values may also be unquoted: `{result=hit, tier=redis}`).
    ///
    /// # Errors
    /// When `query` is not a series selector.
    pub fn query(&self, query: &str) -> Result<Option<f64>, String> {
        let (name, wanted, rest) = parse_series(query)?;
        if !rest.trim().is_empty() {
            return Err(format!("trailing {rest:?} after the series in {query:?}"));
        }
        let filter: Vec<(&str, &str)> = wanted.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Ok(self.sum(&name, &filter))
    }

    /// Values of `label` that `name` has series for, sorted, without duplicates.
    pub fn label_values(&self, name: &str, label: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .samples
            .iter()
            .filter(|s| s.name == name)
            .filter_map(|s| s.labels.iter().find(|(k, _)| k == label).map(|(_, v)| v.clone()))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Parses `name{a="x",b="y"}` (values may also be unquoted: `name{a=x}`), or just `name`.
/// Returns the name, the labels and the rest of the input.
fn parse_series(input: &str) -> Result<(String, Labels, &str), String> {
    let input = input.trim_start();
    let name_end = input
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(input.len());
    let name = input[..name_end].to_owned();
    if name.is_empty() {
        return Err(format!("no metric name in {input:?}"));
    }
    let mut rest = &input[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = after_brace;
        loop {
            rest = rest.trim_start_matches([' ', ',']);
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = rest
                .find('=')
                .ok_or_else(|| format!("label without '=' in {input:?}"))?;
            let key = rest[..eq].trim().to_owned();
            rest = rest[eq + 1..].trim_start();
            let mut value = String::new();
            if let Some(quoted) = rest.strip_prefix('"') {
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, other)) => value.push(other),
                            None => break,
                        },
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let end = end.ok_or_else(|| format!("unterminated label value in {input:?}"))?;
                rest = &quoted[end + 1..];
            } else {
                let end = rest
                    .find([',', '}'])
                    .ok_or_else(|| format!("unterminated labels in {input:?}"))?;
                value.push_str(rest[..end].trim());
                rest = &rest[end..];
            }
            labels.push((key, value));
        }
    }
    Ok((name, labels, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
# HELP s3cached_requests_total Requests.
# TYPE s3cached_requests_total counter
s3cached_requests_total{op=\"GetObject\",result=\"hit\"} 10
s3cached_requests_total{op=\"GetObject\",result=\"miss\"} 3 1700000000000
s3cached_requests_total{op=\"PutObject\",result=\"ok\"} 0.5
s3cached_odd_total{path=\"a \\\"quoted\\\", {braced} value\\\\\"} 7
s3cached_latency_seconds_bucket{le=\"+Inf\"} +Inf
not a sample line
# EOF
";

    #[test]
    fn sums_series_by_name_and_labels() {
        let e = Exposition::parse(TEXT);
        assert_eq!(e.samples().len(), 5);
        assert_eq!(e.sum("s3cached_requests_total", &[]), Some(13.5));
        assert_eq!(e.sum("s3cached_requests_total", &[("op", "GetObject")]), Some(13.0));
        assert_eq!(e.sum("s3cached_requests_total", &[("op", "DeleteObject")]), None);
        assert_eq!(e.sum("s3cached_requests", &[]), None);
        assert_eq!(
            e.label_values("s3cached_requests_total", "op"),
            ["GetObject", "PutObject"]
        );
    }

    #[test]
    fn reads_escapes_timestamps_and_infinities() {
        let e = Exposition::parse(TEXT);
        assert_eq!(e.query(r#"s3cached_requests_total{result="miss"}"#), Ok(Some(3.0)));
        assert_eq!(
            e.query(r#"s3cached_odd_total{path="a \"quoted\", {braced} value\\"}"#),
            Ok(Some(7.0))
        );
        assert_eq!(
            e.query(r#"s3cached_latency_seconds_bucket{le="+Inf"}"#),
            Ok(Some(f64::INFINITY))
        );
    }

    #[test]
    fn queries_take_unquoted_values_and_reject_garbage() {
        let e = Exposition::parse(TEXT);
        assert_eq!(
            e.query("s3cached_requests_total{op=GetObject, result=hit}"),
            Ok(Some(10.0))
        );
        assert!(e.query("").is_err());
        assert!(e.query("s3cached_requests_total{op").is_err());
        assert!(e.query("s3cached_requests_total extra").is_err());
    }
}
