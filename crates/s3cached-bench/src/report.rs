//! The results of a run as one document: the terminal table and the JSON file. The chart
//! ([`crate::svg`]) reads the same document.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use s3cached::model::size::ByteSize;
use serde::Serialize;

use crate::classic::ClassicResult;
use crate::load::LoadResult;
use crate::plan::Plan;
use crate::targets::Targets;

/// What a mode produced.
pub enum Results {
    /// Classic mode.
    Classic(ClassicResult),
    /// Load mode.
    Load(LoadResult),
}

/// The machine the run measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// Logical CPUs available to the process.
    pub cpus: usize,
    /// CPU model, when readable.
    pub cpu_model: Option<String>,
    /// Total memory in MiB, when readable.
    pub memory_mib: Option<u64>,
    /// Operating system and architecture.
    pub os: String,
}

impl Machine {
    fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        Self {
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model: cpuinfo
                .lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned()),
            memory_mib: meminfo
                .lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
                .map(|kib| kib / 1024),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
        }
    }
}

/// How the run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    /// The origin, as measured.
    pub origin: String,
    /// Relay delay in ms, when emulated.
    pub origin_latency_ms: Option<f64>,
    /// Relay jitter (±) in ms, when emulated.
    pub origin_jitter_ms: Option<f64>,
    /// `embedded`, or the external cache's URL.
    pub cache: String,
    /// Tiers compared.
    pub tiers: Vec<String>,
    /// Bucket used.
    pub bucket: String,
    /// Key-choice seed.
    pub seed: u64,
}

/// Everything a run measured; serialized as the JSON file.
#[derive(Debug, Clone, Serialize)]
pub struct Document {
    /// Producer and format version.
    pub tool: String,
    /// `classic` or `load`.
    pub mode: &'static str,
    /// Seconds since the Unix epoch when the report was made.
    pub finished_unix: u64,
    /// The machine.
    pub machine: Machine,
    /// The set-up.
    pub setup: Setup,
    /// Classic-mode figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classic: Option<ClassicResult>,
    /// Load-mode figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<LoadResult>,
}

fn ms(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0))
}

impl Document {
    /// Assembles the document.
    pub fn new(plan: &Plan, env: &Targets, results: Results) -> Self {
        let (classic, load) = match results {
            Results::Classic(c) => (Some(c), None),
            Results::Load(l) => (None, Some(l)),
        };
        Self {
            tool: format!("s3cached bench {}", env!("CARGO_PKG_VERSION")),
            mode: plan.mode.name(),
            finished_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            machine: Machine::detect(),
            setup: Setup {
                origin: env.origin.description.clone(),
                origin_latency_ms: plan.latency.map(|l| l.base.as_secs_f64() * 1e3),
                origin_jitter_ms: plan.latency.map(|l| l.jitter.as_secs_f64() * 1e3),
                cache: match &plan.external.cache {
                    Some((url, _, _)) => url.clone(),
                    None => "embedded".to_owned(),
                },
                tiers: if env.embedded_cache {
                    plan.tiers.iter().map(|t| t.name().to_owned()).collect()
                } else {
                    vec!["external".to_owned()]
                },
                bucket: plan.bucket.clone(),
                seed: plan.seed,
            },
            classic,
            load,
        }
    }

    /// The terminal table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        if let Some(c) = &self.classic {
            self.classic_table(c, &mut out);
        }
        if let Some(l) = &self.load {
            self.load_table(l, &mut out);
        }
        out
    }

    fn classic_table(&self, c: &ClassicResult, out: &mut String) {
        let _ = writeln!(
            out,
            "\ns3cached bench, classic: {} sequential GETs of {} objects per series, one connection",
            c.objects,
            ByteSize(c.size_bytes)
        );
        let _ = writeln!(out, "origin: {}", self.setup.origin);
        let _ = writeln!(out, "cache:  {}\n", self.setup.cache);
        let _ = writeln!(
            out,
            "{:<16} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "series (ms)", "count", "avg", "min", "p50", "p90", "p99", "p99.9", "max"
        );
        let mut row = |name: &str, s: &crate::stats::LatencyStats| {
            let _ = writeln!(
                out,
                "{:<16} {:>6} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name,
                s.count,
                ms(s.avg_ms),
                ms(s.min_ms),
                ms(s.p50_ms),
                ms(s.p90_ms),
                ms(s.p99_ms),
                ms(s.p999_ms),
                ms(s.max_ms)
            );
        };
        row("origin", &c.origin);
        for s in &c.caches {
            row(&format!("{} hit", s.tier), &s.hit);
            row(&format!("{} miss", s.tier), &s.miss);
        }
        out.push('\n');
        for s in &c.caches {
            let _ = writeln!(
                out,
                "{}: improvement {:.2}% (avg), {:.2}% (p50), {:.2}% (p99) over the origin; \
                 hit ratio {} ({}); miss p50 {:+.3} ms over the origin",
                s.tier,
                s.improvement_avg_pct,
                s.improvement_p50_pct,
                s.improvement_p99_pct,
                pct(Some(s.hit_ratio)),
                s.hit_ratio_source,
                s.miss_overhead_p50_ms
            );
        }
    }

    fn load_table(&self, l: &LoadResult, out: &mut String) {
        let _ = writeln!(
            out,
            "\ns3cached bench, load: {} keys, {:.1}s per step after {:.1}s warm-up",
            l.popularity, l.step_duration_s, l.warmup_s
        );
        let _ = writeln!(out, "origin: {}", self.setup.origin);
        let _ = writeln!(out, "cache:  {}", self.setup.cache);
        for s in &l.sizes {
            let _ = writeln!(
                out,
                "  {}: {} objects ({}), cache capacity {}",
                ByteSize(s.size_bytes),
                s.objects,
                ByteSize(s.working_set_bytes),
                s.cache_capacity_bytes
                    .map_or_else(|| "unknown".to_owned(), |b| ByteSize(b).to_string())
            );
        }
        let _ = writeln!(
            out,
            "\n{:>7} {:>5} {:<8} {:>10} {:>9} {:>8} {:>8} {:>9} {:>6} {:>7} {:>8} {:>11} {:>10}",
            "size",
            "conn",
            "target",
            "req/s",
            "MiB/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "errors",
            "hit",
            "x origin",
            "GETs saved",
            "$ saved/1M"
        );
        for s in &l.steps {
            let _ = writeln!(
                out,
                "{:>7} {:>5} {:<8} {:>10.0} {:>9.1} {:>8} {:>8} {:>9} {:>6} {:>7} {:>8} {:>11} {:>10}",
                ByteSize(s.size_bytes).to_string(),
                s.concurrency,
                s.target,
                s.req_per_s,
                s.mib_per_s,
                ms(s.latency.p50_ms),
                ms(s.latency.p99_ms),
                ms(s.latency.p999_ms),
                s.errors,
                pct(s.hit_ratio),
                s.throughput_vs_origin
                    .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x")),
                s.origin_requests_saved
                    .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                s.cost_saved_usd_per_million
                    .map_or_else(|| "-".to_owned(), |c| format!("${c:.3}")),
            );
        }
        let saved: u64 = l.steps.iter().filter_map(|s| s.origin_requests_saved).sum();
        let usd: f64 = l.steps.iter().filter_map(|s| s.cost_saved_usd).sum();
        let _ = writeln!(
            out,
            "\norigin GETs saved in this run: {saved} (${usd:.4} at $0.0004 per 1,000 GETs)"
        );
    }

    /// Writes the JSON file.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("serializing the results")?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
    }
}
