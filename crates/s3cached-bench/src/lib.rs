//! `s3cached bench`: measures an origin and s3cached side by side. The `s3cached` binary's
//! `bench` subcommand is [`BenchArgs`] and [`run`].
//!
//! This crate owns the command's flags, their validation into a [`Plan`], and the order of a
//! run: set up the targets (`targets`), run the mode (`classic` or `load`), then write the
//! terminal table, the JSON file and the SVG chart (`report`, `svg`).
//!
//! By default everything runs inside this process: a local origin (s3s-fs in a temporary
//! directory, served over HTTP on loopback), optionally behind a delaying TCP relay
//! ([`relay`]), and one embedded s3cached per compared tier. `--origin-endpoint` and
//! `--cache-endpoint` point the run at servers that are already running instead.
//!
//! Two modules are public because the `s3cached` integration tests use them too: the
//! [`relay`] (origin latency and bandwidth emulation) and the Prometheus text parser
//! ([`prometheus_text`]).

mod classic;
mod client;
mod load;
mod metrics;
mod plan;
mod progress;
pub mod prometheus_text;
pub mod relay;
mod report;
mod stats;
mod svg;
mod targets;
mod workload;

use clap::Args;

pub use plan::Plan;

/// Flags of `s3cached bench`. Sizes, durations and lists are taken as text and checked by
/// [`Plan::from_args`], so that bad input gives one line and exit code 2.
#[derive(Args, Debug, Clone)]
#[command(after_help = "\
EXAMPLES:
  s3cached bench                                   classic: 100 GETs of 4KiB, origin vs cache
  s3cached bench --origin-latency 14ms --origin-jitter 2ms
  s3cached bench --mode load --sizes 4KiB,1MiB --concurrency 1,64 --zipf 1.1
  s3cached bench --origin-endpoint http://127.0.0.1:8333 --cache-endpoint http://127.0.0.1:8080 \\
                 --cache-metrics http://127.0.0.1:9091/metrics

TARGETS:
  Without endpoints, the origin (s3s-fs in a temporary directory) and s3cached run inside this
  process on loopback ports with invented credentials. --origin-endpoint alone keeps the
  embedded s3cached in front of that origin; with --cache-endpoint too, nothing is embedded.
  External origins are signed for with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; the cache with
  --cache-access-key/--cache-secret-key, else the same pair. Endpoints must be http://.")]
pub struct BenchArgs {
    /// `classic` (sequential GETs, origin vs cache) or `load` (concurrency and size sweeps).
    #[arg(long, default_value = "classic")]
    pub mode: String,

    /// Classic mode: number of objects, and of GETs in each series.
    #[arg(long, default_value = "100")]
    pub objects: String,

    /// Classic mode: object size (e.g. 4KiB, 1MiB).
    #[arg(long, default_value = "4KiB")]
    pub size: String,

    /// Load mode: object sizes to sweep, comma-separated.
    #[arg(long, default_value = "1KiB,64KiB,1MiB,4MiB")]
    pub sizes: String,

    /// Load mode: client connections to sweep, comma-separated.
    #[arg(long, default_value = "1,8,64,256")]
    pub concurrency: String,

    /// Load mode: length of each measured step (e.g. 3s, 500ms).
    #[arg(long, default_value = "3s")]
    pub duration: String,

    /// Load mode: unmeasured warm-up against the cache before each size's sweep.
    #[arg(long, default_value = "1s")]
    pub warmup: String,

    /// Load mode: bytes of distinct objects per size (object count = this / size, 16..=8192).
    #[arg(long, default_value = "64MiB")]
    pub working_set: String,

    /// Load mode, embedded cache: memory capacity, as a size or as a percentage of each size's
    /// working set (entry weights included).
    #[arg(long, default_value = "50%")]
    pub cache_capacity: String,

    /// Load mode: key popularity exponent s of a Zipf distribution; `0` for uniform.
    #[arg(long, default_value = "0")]
    pub zipf: String,

    /// Load mode: skip the same sweep against the origin directly.
    #[arg(long)]
    pub no_origin_baseline: bool,

    /// Delay added to every origin response by a TCP relay in the network path (e.g. 14ms).
    #[arg(long)]
    pub origin_latency: Option<String>,

    /// Random extra delay per response, uniform in ±this (needs --origin-latency).
    #[arg(long)]
    pub origin_jitter: Option<String>,

    /// Cache tiers to compare, comma-separated: memory, redis, memory+redis (the last two need
    /// --redis-url).
    #[arg(long, default_value = "memory")]
    pub tiers: String,

    /// A scratch Redis/Valkey for the redis and memory+redis tiers. The bench EMPTIES this
    /// database (FLUSHDB) before each Redis-backed tier, so each starts cold.
    #[arg(long)]
    pub redis_url: Option<String>,

    /// Use this running S3 origin instead of the embedded one.
    #[arg(long)]
    pub origin_endpoint: Option<String>,

    /// Use this running s3cached instead of the embedded one (needs --origin-endpoint).
    #[arg(long)]
    pub cache_endpoint: Option<String>,

    /// The running s3cached's metrics URL, for hit ratios (e.g. http://127.0.0.1:9091/metrics).
    #[arg(long)]
    pub cache_metrics: Option<String>,

    /// Access key for --cache-endpoint (default: AWS_ACCESS_KEY_ID).
    #[arg(long, env = "S3CACHED_BENCH_CACHE_ACCESS_KEY", requires = "cache_secret_key")]
    pub cache_access_key: Option<String>,

    /// Secret key for --cache-endpoint (default: AWS_SECRET_ACCESS_KEY).
    #[arg(
        long,
        env = "S3CACHED_BENCH_CACHE_SECRET_KEY",
        hide_env_values = true,
        requires = "cache_access_key"
    )]
    pub cache_secret_key: Option<String>,

    /// Region to sign for (external endpoints).
    #[arg(long, default_value = "us-east-1")]
    pub region: String,

    /// Bucket holding the benchmark's objects (created when missing).
    #[arg(long, default_value = "s3cached-bench")]
    pub bucket: String,

    /// Write every figure here as JSON.
    #[arg(long, default_value = "bench-results.json")]
    pub json: String,

    /// Write the chart here as a self-contained SVG.
    #[arg(long, default_value = "bench-results.svg")]
    pub svg: String,

    /// Seed of the key-choice generators (runs with one seed request the same keys).
    #[arg(long, default_value = "1")]
    pub seed: String,

    /// Log level of the embedded servers (tracing filter).
    #[arg(long, default_value = "warn")]
    pub server_log: String,
}

/// Runs `s3cached bench`. Bad input prints one line and exits with code 2; other failures are
/// returned.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let plan = match Plan::from_args(&args) {
        Ok(plan) => plan,
        Err(e) => usage_exit(&e),
    };
    tokio::select! {
        result = execute(plan) => result,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted"),
    }
}

fn usage_exit(e: &plan::PlanError) -> ! {
    eprintln!("s3cached bench: {e}");
    // Code 2 is the command-line usage convention (clap uses it too).
    std::process::exit(2)
}

async fn execute(plan: Plan) -> anyhow::Result<()> {
    let progress = progress::Progress::new();
    let env = targets::Targets::start(&plan).await?;
    let results = match plan.mode {
        plan::Mode::Classic(ref c) => report::Results::Classic(classic::run(&plan, c, &env, &progress).await?),
        plan::Mode::Load(ref l) => report::Results::Load(load::run(&plan, l, &env, &progress).await?),
    };
    progress.finish();
    let doc = report::Document::new(&plan, &env, results);
    print!("{}", doc.table());
    doc.write_json(&plan.json)?;
    std::fs::write(&plan.svg, svg::render(&doc))
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", plan.svg.display()))?;
    println!("wrote {} and {}", plan.json.display(), plan.svg.display());
    env.shutdown().await;
    Ok(())
}
