//! The `s3cached` executable: parses flags (with `S3CACHED_*` environment fallbacks), sets up
//! logging and runs a subcommand. All behaviour lives in the `s3cached` library.

mod config_file;
mod serve_args;
mod warm_args;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use config_file::CliError;
use tracing_subscriber::EnvFilter;

/// Every request allocates a few small, short-lived buffers (headers, signatures, bodies);
/// mimalloc serves them with less CPU than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A caching layer for Amazon S3: a drop-in S3 endpoint that serves hot objects from memory.
#[derive(Parser, Debug)]
#[command(name = "s3cached", version, about, long_about = None)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax, e.g. `info` or `s3cached=debug`).
    #[arg(long, global = true, env = "S3CACHED_LOG", default_value = "info")]
    log_level: String,

    /// Log format.
    #[arg(long, global = true, env = "S3CACHED_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the S3 caching endpoint.
    Serve(Box<serve_args::ServeArgs>),
    /// Load objects under s3://BUCKET/PREFIX into the shared (Redis) tier.
    Warm(Box<warm_args::WarmArgs>),
    /// Measure an origin and s3cached side by side (classic or load mode); writes a table,
    /// JSON and an SVG chart.
    Bench(Box<s3cached_bench::BenchArgs>),
}

fn init_logging(level: &str, format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("invalid --log-level {level:?}: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = match config_file::try_parse_from::<Cli>(std::env::args_os()) {
        Ok(cli) => cli,
        Err(CliError::Clap(e)) => e.exit(),
        Err(CliError::File(e)) => {
            eprintln!("s3cached: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = init_logging(&cli.log_level, cli.log_format) {
        eprintln!("s3cached: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s3cached: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve_args::run(*args).await,
            Command::Warm(args) => warm_args::run(*args).await,
            Command::Bench(args) => s3cached_bench::run(*args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("s3cached: {e:#}");
            ExitCode::FAILURE
        }
    }
}
