//! Cold reads of large objects against an origin far away: SeaweedFS behind the bench's relay
//! (14 ms per round trip, optionally a bandwidth cap per connection, as S3 has), read directly
//! and through `s3cached serve` with a cold cache, in one run. Each figure is the median of
//! `ROUNDS` rounds, each on a new object and a new s3cached process, and is reported as a ratio
//! to the direct read measured in the same run:
//!
//! - a whole GET, first (cold) and second (a hit);
//! - a whole GET of an object whose metadata is cached but none of its blocks (a HEAD first),
//!   the path `--origin-parallelism` speeds up, for several values of it;
//! - one 64 KiB range of a cold object: time to first byte and to the whole answer;
//! - misses of small objects against a relay that delays 1 % of round trips by 200 ms more,
//!   with `--hedge-after` off and on: their p50 and p99, and the origin requests they made.
//!
//! Run with `bench/cold-reads.sh` (it installs SeaweedFS and builds in release mode). Under
//! `cargo test` this target does nothing.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use s3cached_bench::relay::{Relay, Shaping};
use support::cli_tools::{CLIENT_KEY, CLIENT_SECRET, random_bytes};
use support::clients::s3_client;
use support::proxy::{S3Cached, seaweed_origin_args};
use support::seaweed::{SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY, shared};

const ROUNDS: usize = 3;
const LATENCY: Duration = Duration::from_millis(14);

/// Seconds to the first body byte and to the last, and the bytes read.
async fn timed_get(client: &aws_sdk_s3::Client, bucket: &str, key: &str, range: Option<&str>) -> (f64, f64, usize) {
    let started = Instant::now();
    let resp = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .set_range(range.map(str::to_owned))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    let mut body = resp.body;
    let mut first = None;
    let mut read = 0;
    while let Some(chunk) = body.try_next().await.expect("body") {
        first.get_or_insert_with(|| started.elapsed().as_secs_f64());
        read += chunk.len();
    }
    let total = started.elapsed().as_secs_f64();
    (first.unwrap_or(total), total, read)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn proxy(relay: &Relay, extra: &[&str]) -> S3Cached {
    S3Cached::builder()
        .args(seaweed_origin_args(&relay.endpoint()))
        .client_credentials(CLIENT_KEY, CLIENT_SECRET)
        .args(extra.iter().copied())
        .start()
}

struct Row {
    what: String,
    seconds: f64,
    direct: f64,
}

async fn scenario(name: &str, shaping: Shaping, size: usize, rows: &mut Vec<Row>) {
    let seaweed = shared();
    let relay = Relay::start(
        format!("127.0.0.1:{}", seaweed.s3_port()).parse().expect("addr"),
        shaping,
    )
    .await
    .expect("relay");
    let direct_client = s3_client(&relay.endpoint(), SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY);
    let bucket = seaweed.new_bucket("cold").await;
    let data = random_bytes(size);
    let mut objects = Vec::new();
    for i in 0..ROUNDS * 8 {
        let key = format!("obj-{i}");
        seaweed.put_object(&bucket, &key, data.clone()).await;
        objects.push(key);
    }
    let mut keys = objects.iter();
    let mut next = || keys.next().expect("enough objects").clone();
    let mib = size >> 20;

    let mut direct = Vec::new();
    let (mut first, mut second) = (Vec::new(), Vec::new());
    let (mut range_direct_ttfb, mut range_direct) = (Vec::new(), Vec::new());
    let (mut range_ttfb, mut range) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let key = next();
        direct.push(timed_get(&direct_client, &bucket, &key, None).await.1);
        let p = proxy(&relay, &[]);
        let c = p.client(CLIENT_KEY, CLIENT_SECRET);
        let key = next();
        first.push(timed_get(&c, &bucket, &key, None).await.1);
        // The kept blocks are stored just after the bytes went out.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gets = p
            .metric_value(r#"s3cached_origin_requests_total{operation="GetObject"}"#)
            .await;
        second.push(timed_get(&c, &bucket, &key, None).await.1);
        let after = p
            .metric_value(r#"s3cached_origin_requests_total{operation="GetObject"}"#)
            .await;
        assert_eq!(after, gets, "the second whole GET read the origin");

        let key = next();
        let r = "bytes=70000000-70065535";
        let (t, total, n) = timed_get(&direct_client, &bucket, &key, Some(r)).await;
        assert_eq!(n, 65_536);
        range_direct_ttfb.push(t);
        range_direct.push(total);
        let key = next();
        let (t, total, _) = timed_get(&c, &bucket, &key, Some(r)).await;
        range_ttfb.push(t);
        range.push(total);
    }
    let direct = median(direct);
    rows.push(Row {
        what: format!("{name}: direct whole GET, {mib} MiB"),
        seconds: direct,
        direct,
    });
    rows.push(Row {
        what: format!("{name}: 1st whole GET through s3cached (cold)"),
        seconds: median(first),
        direct,
    });
    rows.push(Row {
        what: format!("{name}: 2nd whole GET (hit, 0 origin GETs)"),
        seconds: median(second),
        direct,
    });
    let rd = median(range_direct);
    let rdt = median(range_direct_ttfb);
    rows.push(Row {
        what: format!("{name}: direct 64 KiB range, first byte"),
        seconds: rdt,
        direct: rdt,
    });
    rows.push(Row {
        what: format!("{name}: cold 64 KiB range, first byte"),
        seconds: median(range_ttfb),
        direct: rdt,
    });
    rows.push(Row {
        what: format!("{name}: direct 64 KiB range, whole"),
        seconds: rd,
        direct: rd,
    });
    rows.push(Row {
        what: format!("{name}: cold 64 KiB range, whole"),
        seconds: median(range),
        direct: rd,
    });

    for parallelism in ["1", "2", "4", "8"] {
        let mut times = Vec::new();
        for _ in 0..ROUNDS {
            let p = proxy(&relay, &["--origin-parallelism", parallelism]);
            let c = p.client(CLIENT_KEY, CLIENT_SECRET);
            let key = next();
            c.head_object().bucket(&bucket).key(&key).send().await.expect("HEAD");
            times.push(timed_get(&c, &bucket, &key, None).await.1);
        }
        rows.push(Row {
            what: format!("{name}: whole GET from cold blocks, --origin-parallelism {parallelism}"),
            seconds: median(times),
            direct,
        });
    }
}

/// Misses of `count` small objects, one at a time, against a relay with a slow tail: p50 and
/// p99 in seconds, and origin GETs per miss, for each `--hedge-after` value.
async fn hedging(count: usize, rows: &mut Vec<Row>) {
    let seaweed = shared();
    let shaping = Shaping::latency(LATENCY).with_tail(10, Duration::from_millis(200), 11);
    let relay = Relay::start(
        format!("127.0.0.1:{}", seaweed.s3_port()).parse().expect("addr"),
        shaping,
    )
    .await
    .expect("relay");
    let bucket = seaweed.new_bucket("hedge").await;
    let body = random_bytes(4096);
    for i in 0..count * 2 {
        seaweed.put_object(&bucket, &format!("small-{i}"), body.clone()).await;
    }
    let mut base_p99 = None;
    for (n, hedge) in ["off", "30ms"].into_iter().enumerate() {
        let p = proxy(&relay, &["--hedge-after", hedge]);
        let c = p.client(CLIENT_KEY, CLIENT_SECRET);
        let mut times = Vec::with_capacity(count);
        for i in 0..count {
            times.push(
                timed_get(&c, &bucket, &format!("small-{}", n * count + i), None)
                    .await
                    .1,
            );
        }
        times.sort_by(f64::total_cmp);
        let (p50, p99) = (times[count / 2], times[count * 99 / 100]);
        let gets = p
            .metric_value(r#"s3cached_origin_requests_total{operation="GetObject"}"#)
            .await;
        let sent = p.metric_value(r#"s3cached_origin_hedges_total{result="sent"}"#).await;
        let won = p.metric_value(r#"s3cached_origin_hedges_total{result="won"}"#).await;
        let base = *base_p99.get_or_insert(p99);
        rows.push(Row {
            what: format!("{count} misses, 1 % of round trips +200 ms, --hedge-after {hedge}: p50"),
            seconds: p50,
            direct: p50,
        });
        rows.push(Row {
            what: format!(
                "… p99 (against --hedge-after off; hedges sent {sent}, won {won}, origin GETs {gets} for {count} misses)"
            ),
            seconds: p99,
            direct: base,
        });
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // `bench/cold-reads.sh hedging` (or `whole`) runs one part only.
    let only = std::env::args().skip(1).find(|a| !a.starts_with("--"));
    let wants = |part: &str| only.as_deref().is_none_or(|o| o == part);
    let size = 128usize << 20;
    let mut rows = Vec::new();
    if wants("whole") {
        scenario("14 ms", Shaping::latency(LATENCY), size, &mut rows).await;
        scenario(
            "14 ms, 50 MB/s per connection",
            Shaping::latency(LATENCY).with_bandwidth(50_000_000),
            size,
            &mut rows,
        )
        .await;
    }
    if wants("hedging") {
        hedging(500, &mut rows).await;
    }
    println!("\n| read | seconds (median of {ROUNDS}) | speed against direct |");
    println!("|---|---|---|");
    for r in rows {
        println!("| {} | {:.4} | {:.2}x |", r.what, r.seconds, r.direct / r.seconds);
    }
}
