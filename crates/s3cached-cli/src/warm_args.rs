//! `s3cached warm s3://bucket/prefix …`: load objects into the shared tier before traffic
//! arrives: whole up to --max-object-size, as blocks up to --max-block-cached-object-size.
//! Takes the same origin and tier flags as `serve`, and no client credentials (it serves no
//! client).

use std::io::IsTerminal;

use anyhow::bail;
use clap::Args;
use s3cached::config::HydrationRule;
use s3cached::config::TierConfig;
use s3cached::model::size::ByteSize;
use s3cached::server::build_engine;

use crate::serve_args::ServeArgs;

#[derive(Args, Debug)]
pub struct WarmArgs {
    /// What to load: s3://BUCKET/PREFIX (or BUCKET/PREFIX), one or more.
    #[arg(required = true)]
    targets: Vec<HydrationRule>,

    /// Objects loaded at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,

    #[command(flatten)]
    serve: ServeArgs,
}

/// Runs `warm`.
pub async fn run(args: WarmArgs) -> anyhow::Result<()> {
    let config = args.serve.into_config_without_clients()?;
    if config.tier == TierConfig::Memory {
        bail!(
            "warm loads a shared tier: pass --tier redis or --tier memory+redis with --redis-url/--redis-cluster \
             (to warm a serving process's memory tier, use serve --warm)"
        );
    }
    let engine = build_engine(&config).await?;
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut failed = 0;
    for target in &args.targets {
        bar.reset();
        bar.set_message(format!("s3://{}/{}", target.bucket, target.prefix));
        let summary = s3cached::process::warm::warm(&engine, target, args.concurrency, |s| {
            bar.set_length(s.listed_bytes);
            bar.set_position(s.bytes);
            bar.set_message(format!(
                "s3://{}/{}: {} of {} loaded",
                target.bucket, target.prefix, s.loaded, s.listed
            ));
        })
        .await?;
        bar.finish_and_clear();
        println!(
            "s3://{}/{}: {} objects listed, {} loaded ({}; {} of them as blocks), {} skipped (larger than \
             --max-block-cached-object-size), {} failed",
            target.bucket,
            target.prefix,
            summary.listed,
            summary.loaded,
            ByteSize(summary.bytes),
            summary.as_blocks,
            summary.skipped,
            summary.failed
        );
        failed += summary.failed;
    }
    if failed > 0 {
        bail!("{failed} objects could not be loaded");
    }
    Ok(())
}
