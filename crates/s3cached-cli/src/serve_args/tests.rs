//! Flags to library configuration: defaults, parsing and the one-line errors.

use super::*;

#[test]
fn ttl_parsing() {
    assert_eq!(parse_ttl("none").unwrap(), None);
    assert_eq!(parse_ttl("90s").unwrap(), Some(Duration::from_secs(90)));
    assert!(parse_ttl("0s").is_err());
    assert!(parse_ttl("soon").is_err());
    assert_eq!(parse_ttl("1h30m").unwrap(), Some(Duration::from_secs(5400)));
}

#[derive(clap::Parser)]
struct Cli {
    #[command(flatten)]
    serve: ServeArgs,
}

fn config(args: &[&str]) -> anyhow::Result<ServeConfig> {
    use clap::Parser;
    let argv = ["s3cached", "--local-dir", "/nonexistent", "--allow-anonymous"];
    let cli = Cli::try_parse_from(argv.iter().chain(args))?;
    cli.serve.into_config()
}

#[test]
fn ttl_rules_take_humantime_durations() {
    let c = config(&["--ttl-rule", "bkt/=1h30m", "--ttl-rule", "bkt/a/=none,bkt/b/=2d 12h"]).unwrap();
    let rules: Vec<_> = c.policy.ttl_rules.iter().map(|r| (r.prefix.as_str(), r.ttl)).collect();
    assert_eq!(
        rules,
        [
            ("", Some(Duration::from_secs(5400))),
            ("a/", None),
            ("b/", Some(Duration::from_secs(60 * 3600)))
        ]
    );
    assert!(config(&["--ttl-rule", "bkt/=0s"]).is_err());
}

#[test]
fn sizes_take_any_case_and_decimals() {
    let c = config(&["--memory-capacity", "1gb", "--max-object-size", "1.5MiB"]).unwrap();
    assert_eq!(c.memory.capacity, 1_000_000_000);
    assert_eq!(c.policy.max_object_size, 3 << 19);
    assert!(config(&["--memory-capacity", "lots"]).is_err());
}

#[test]
fn block_ttl_defaults_to_a_day_and_takes_none() {
    let c = config(&[]).unwrap();
    assert_eq!(c.policy.blocks.ttl, Some(Duration::from_secs(86_400)));
    let c = config(&["--block-ttl", "none"]).unwrap();
    assert_eq!(c.policy.blocks.ttl, None);
    let c = config(&["--block-ttl", "6h"]).unwrap();
    assert_eq!(c.policy.blocks.ttl, Some(Duration::from_secs(6 * 3600)));
    let e = config(&["--block-ttl", "0s"]).unwrap_err().to_string();
    assert!(e.contains("--block-ttl"), "{e}");
    assert!(config(&["--block-ttl", "soon"]).is_err());
}

#[test]
fn hedge_after_takes_off_a_duration_or_a_percentile() {
    let hedge = |args: &[&str]| {
        use clap::Parser;
        let argv = [
            "s3cached",
            "--origin-endpoint",
            "http://127.0.0.1:1",
            "--allow-anonymous",
        ];
        let cli = Cli::try_parse_from(argv.iter().chain(args))?;
        cli.serve.into_config().map(|c| match c.origin {
            s3cached::config::OriginConfig::S3 { hedge_after, .. } => hedge_after,
            s3cached::config::OriginConfig::LocalDir(_) => panic!("not an S3 origin"),
        })
    };
    assert_eq!(hedge(&[]).unwrap(), HedgeAfter::Off);
    assert_eq!(
        hedge(&["--hedge-after", "50ms"]).unwrap(),
        HedgeAfter::After(Duration::from_millis(50))
    );
    assert_eq!(hedge(&["--hedge-after", "p99"]).unwrap(), HedgeAfter::Percentile(99));
    for bad in ["p100", "p5", "0s", "soon"] {
        let e = hedge(&["--hedge-after", bad]).unwrap_err().to_string();
        assert!(e.contains("--hedge-after"), "{bad}: {e}");
    }
}
