//! `s3cached bench` end to end: the built binary runs a tiny classic run and a tiny load run on
//! its embedded origin and cache, and must print the table, write JSON with plausible figures
//! and a well-formed SVG; bad input must give one line and exit code 2.

mod support;

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest one run may take before the test kills it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

fn s3cached(args: &[&str], dir: &Path) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_s3cached"))
        .args(args)
        .current_dir(dir)
        .env_remove("AWS_ENDPOINT_URL")
        .env("S3CACHED_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start s3cached");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("poll s3cached").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            panic!("s3cached {args:?} ran longer than {RUN_LIMIT:?}; stderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs a tiny bench that must succeed within 20 s; its stdout.
fn tiny_run(args: &[&str], dir: &Path) -> String {
    let started = Instant::now();
    let out = s3cached(args, dir);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    stdout
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn read_json(path: &Path) -> Value {
    let raw = std::fs::read_to_string(path).expect("JSON file written");
    serde_json::from_str(&raw).expect("JSON parses")
}

fn num(v: &Value, pointer: &str) -> f64 {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{pointer} missing or not a number in {v:#}"))
}

fn assert_latency(v: &Value, pointer: &str, count: u64) {
    let s = v.pointer(pointer).unwrap_or_else(|| panic!("{pointer} missing"));
    assert_eq!(num(s, "/count") as u64, count, "{pointer}.count");
    let (min, p50, p90, p99, p999, max) = (
        num(s, "/min_ms"),
        num(s, "/p50_ms"),
        num(s, "/p90_ms"),
        num(s, "/p99_ms"),
        num(s, "/p999_ms"),
        num(s, "/max_ms"),
    );
    assert!(min > 0.0, "{pointer}: min {min}");
    assert!(
        min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{pointer}: percentiles out of order: {s}"
    );
    let avg = num(s, "/avg_ms");
    assert!(min <= avg && avg <= max, "{pointer}: avg {avg}");
    assert!(max < 10_000.0, "{pointer}: implausible max {max} ms");
}

/// Well-formed XML whose root element is `<svg>`.
fn assert_svg(path: &Path) {
    use quick_xml::events::Event;
    let raw = std::fs::read_to_string(path).expect("SVG file written");
    let mut reader = quick_xml::Reader::from_str(&raw);
    reader.config_mut().check_end_names = true;
    let mut root = None;
    let mut depth = 0i32;
    loop {
        match reader.read_event().expect("SVG is well-formed XML") {
            Event::Start(e) => {
                if root.is_none() {
                    root = Some(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                }
                depth += 1;
            }
            Event::End(_) => depth -= 1,
            Event::Empty(e) if root.is_none() => {
                root = Some(String::from_utf8_lossy(e.name().as_ref()).into_owned());
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "unbalanced elements");
    assert_eq!(root.as_deref(), Some("svg"));
    assert!(raw.contains("<polyline"), "chart has no lines");
}

#[test]
fn classic_run_prints_the_table_and_writes_json_and_svg() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("r.json");
    let svg = dir.path().join("r.svg");
    let stdout = tiny_run(
        &[
            "bench",
            "--objects",
            "5",
            "--json",
            json.to_str().expect("utf-8 path"),
            "--svg",
            svg.to_str().expect("utf-8 path"),
        ],
        dir.path(),
    );
    for needle in ["series (ms)", "origin", "memory hit", "memory miss", "improvement"] {
        assert!(stdout.contains(needle), "table lacks {needle:?}:\n{stdout}");
    }

    let v = read_json(&json);
    assert_eq!(v["mode"], "classic");
    assert!(num(&v, "/machine/cpus") >= 1.0);
    assert_eq!(num(&v, "/classic/objects") as u64, 5);
    assert_eq!(num(&v, "/classic/size_bytes") as u64, 4096);
    assert_latency(&v, "/classic/origin", 5);
    let caches = v["classic"]["caches"].as_array().expect("caches array");
    assert_eq!(caches.len(), 1);
    assert_eq!(caches[0]["tier"], "memory");
    assert_latency(&v, "/classic/caches/0/hit", 5);
    assert_latency(&v, "/classic/caches/0/miss", 5);
    let ratio = num(&v, "/classic/caches/0/hit_ratio");
    assert!(ratio > 0.9 && ratio <= 1.0, "hit ratio {ratio}");
    assert_eq!(v["classic"]["caches"][0]["hit_ratio_source"], "metrics");
    let improvement = num(&v, "/classic/caches/0/improvement_avg_pct");
    assert!(improvement > -1000.0 && improvement < 100.0, "{improvement}");
    assert!(num(&v, "/classic/caches/0/metrics/tiers/0/hits") >= 5.0);

    assert_svg(&svg);
    // Nothing else left behind in the working directory.
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("list dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["r.json", "r.svg"]);
}

#[test]
fn load_run_sweeps_one_step_against_origin_and_cache() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("load.json");
    let svg = dir.path().join("load.svg");
    let stdout = tiny_run(
        &[
            "bench",
            "--mode",
            "load",
            "--sizes",
            "4KiB",
            "--concurrency",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "300ms",
            "--working-set",
            "64KiB",
            "--cache-capacity",
            "200%",
            "--zipf",
            "1.1",
            "--json",
            json.to_str().expect("utf-8 path"),
            "--svg",
            svg.to_str().expect("utf-8 path"),
        ],
        dir.path(),
    );
    for needle in ["req/s", "MiB/s", "origin GETs saved"] {
        assert!(stdout.contains(needle), "table lacks {needle:?}:\n{stdout}");
    }

    let v = read_json(&json);
    assert_eq!(v["mode"], "load");
    assert_eq!(v["load"]["popularity"], "zipf(1.1)");
    // 64 KiB of 4 KiB objects: the 16-object floor, so at most 16 misses in warm-up and step.
    assert_eq!(num(&v, "/load/sizes/0/objects") as u64, 16);
    let steps = v["load"]["steps"].as_array().expect("steps array");
    assert_eq!(steps.len(), 2, "one origin and one cache step");
    assert_eq!(steps[0]["target"], "origin");
    assert_eq!(steps[1]["target"], "memory");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["concurrency"], 2);
        assert_eq!(s["size_bytes"], 4096);
        assert_eq!(s["errors"], 0, "step {i}: {s}");
        let requests = num(s, "/requests") as u64;
        assert!(requests > 0);
        assert_latency(&v, &format!("/load/steps/{i}/latency"), requests);
        assert!(num(s, "/req_per_s") > 0.0 && num(s, "/mib_per_s") > 0.0);
        let secs = num(s, "/duration_s");
        assert!((0.9..5.0).contains(&secs), "step {i} ran {secs}s");
    }
    let cache = &steps[1];
    let ratio = num(cache, "/hit_ratio");
    assert!(ratio > 0.9, "hit ratio {ratio} with the working set in the cache");
    let saved = num(cache, "/origin_requests_saved");
    let gets = num(cache, "/origin_gets");
    assert_eq!(saved + gets, num(cache, "/requests"));
    let cost = num(cache, "/cost_saved_usd");
    assert!((cost - saved * 0.0004 / 1000.0).abs() < 1e-12);
    assert!(num(cache, "/throughput_vs_origin") > 0.0);
    assert!(steps[0]["hit_ratio"].is_null());

    assert_svg(&svg);
    let raw = std::fs::read_to_string(&svg).expect("svg");
    assert!(raw.contains("Throughput against connections"));
}

#[test]
fn bad_input_gives_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (args, needle) in [
        (&["bench", "--size", "lots"][..], "--size"),
        (&["bench", "--mode", "turbo"][..], "--mode"),
        (&["bench", "--objects", "0"][..], "--objects"),
        (&["bench", "--tiers", "redis"][..], "--tiers"),
        (&["bench", "--origin-jitter", "2ms"][..], "--origin-jitter"),
        (
            &["bench", "--mode", "load", "--concurrency", "1,x"][..],
            "--concurrency",
        ),
        (&["bench", "--origin-latency", "soon"][..], "--origin-latency"),
    ] {
        let out = s3cached(args, dir.path());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // Nothing was written.
    assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 0);
}

#[test]
fn classic_run_compares_the_redis_tiers_when_a_redis_is_given() {
    let redis = support::redis::RedisServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("r.json");
    let svg = dir.path().join("r.svg");
    let out = s3cached(
        &[
            "bench",
            "--objects",
            "5",
            "--tiers",
            "memory,redis,memory+redis",
            "--redis-url",
            &redis.url(),
            "--json",
            json.to_str().expect("utf-8 path"),
            "--svg",
            svg.to_str().expect("utf-8 path"),
        ],
        dir.path(),
    );
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{stderr}", out.status);
    for needle in ["redis hit", "redis miss", "memory+redis hit"] {
        assert!(stdout.contains(needle), "table lacks {needle:?}:\n{stdout}");
    }
    let v = read_json(&json);
    let tiers: Vec<&str> = v["classic"]["caches"]
        .as_array()
        .expect("caches array")
        .iter()
        .filter_map(|c| c["tier"].as_str())
        .collect();
    assert_eq!(tiers, ["memory", "redis", "memory+redis"]);
    for i in 0..3 {
        assert_latency(&v, &format!("/classic/caches/{i}/hit"), 5);
        let ratio = num(&v, &format!("/classic/caches/{i}/hit_ratio"));
        assert!(ratio > 0.9 && ratio <= 1.0, "tier {i}: hit ratio {ratio}");
    }
    // The redis tier's hits came from Redis, which holds the objects at bucket:key.
    assert!(redis.cli(&["DBSIZE"]).trim().parse::<u64>().unwrap_or(0) >= 5);
    assert_svg(&svg);
}

#[test]
fn redis_tiers_need_a_redis_url() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = s3cached(&["bench", "--tiers", "redis"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("--redis-url"), "{}", text(&out.stderr));
}
