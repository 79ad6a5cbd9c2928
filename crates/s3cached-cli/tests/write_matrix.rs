//! Write conformance (issue 10, items 3 to 5): every write shape sent through s3cached and
//! straight to the origin (the shared SeaweedFS) must get the same answer, and what the cache
//! serves afterwards (the miss and the hit, plain and in checksum mode) must equal what the
//! origin serves. Aborted uploads must leave the origin and the cache agreeing without growing
//! s3cached's memory, a 1 GiB upload must stream, and the origin's errors must reach the client
//! as the origin gave them.
//!
//! The cells live in `write_matrix.py` (raw signed requests with every body signing, boto3, the
//! aws cli); the Rust AWS SDK cells are written here and read back by the script. The script
//! prints the matrix as a table and names every cell that differs with its differing fields.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ChecksumAlgorithm;
use support::REGION;
use support::cli_tools::{
    CLIENT_KEY, CLIENT_SECRET, Output, TempDir, random_bytes, run_python_within, start_proxy, tail,
};
use support::clients::s3_client_with_attempts;
use support::proxy::S3Cached;
use support::seaweed::{SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY, SeaweedFs, shared};
use support::util::{free_port, unique_bucket};

const SCRIPT: &str = include_str!("write_matrix.py");

const MIB: usize = 1024 * 1024;

/// Runs the script in `mode` with the endpoints and credentials of both sides.
fn run_script(work: &TempDir, mode: &str, proxy: &S3Cached, seaweed: &SeaweedFs, envs: &[(&str, String)]) -> Output {
    let mut all: Vec<(&str, String)> = vec![
        ("MODE", mode.to_owned()),
        ("PROXY", proxy.endpoint()),
        ("PROXY_PID", proxy.pid().expect("s3cached is running").to_string()),
        ("ORIGIN", seaweed.endpoint()),
        ("CLIENT_KEY", CLIENT_KEY.to_owned()),
        ("CLIENT_SECRET", CLIENT_SECRET.to_owned()),
        ("ORIGIN_KEY", SEAWEED_ACCESS_KEY.to_owned()),
        ("ORIGIN_SECRET", SEAWEED_SECRET_KEY.to_owned()),
        ("REGION", REGION.to_owned()),
    ];
    all.extend(envs.iter().cloned());
    run_python_within(work, "write_matrix.py", SCRIPT, &all, Duration::from_secs(900))
}

/// Prints what the script printed (the table), and fails with the proxy's log when it failed.
fn report(what: &str, output: &Output, proxy: &S3Cached, started: Instant) {
    println!("{}", output.stdout);
    println!("{what}: {:.0} s", started.elapsed().as_secs_f64());
    if !output.success() || !output.stdout.contains("ALL OK") {
        panic!(
            "{what} failed: {}\n--- s3cached log (tail) ---\n{}",
            output.describe(),
            tail(&proxy.log_contents(), 6000)
        );
    }
}

/// The status and error code of one SDK PutObject.
async fn sdk_put(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    key: &str,
    body: Vec<u8>,
    checksum: Option<ChecksumAlgorithm>,
) -> (u16, Option<String>) {
    let mut req = client.put_object().bucket(bucket).key(key).body(ByteStream::from(body));
    if let Some(algorithm) = checksum {
        req = req.checksum_algorithm(algorithm);
    }
    match req.send().await {
        Ok(_) => (200, None),
        Err(e) => (
            e.raw_response().map_or(0, |r| r.status().as_u16()),
            e.code().map(str::to_owned).or_else(|| Some(format!("{e:?}"))),
        ),
    }
}

fn json_side((status, code): &(u16, Option<String>)) -> serde_json::Value {
    serde_json::json!({ "status": status, "code": code })
}

#[tokio::test]
async fn write_conformance_matrix() {
    let started = Instant::now();
    let seaweed = shared();
    let proxy_bucket = seaweed.new_bucket("wm-proxy").await;
    let origin_bucket = seaweed.new_bucket("wm-origin").await;
    let proxy = start_proxy(seaweed, &[]);
    let via = proxy.client(CLIENT_KEY, CLIENT_SECRET);
    let direct = s3_client_with_attempts(&seaweed.endpoint(), SEAWEED_ACCESS_KEY, SEAWEED_SECRET_KEY, 1);

    // The Rust SDK cells: written here (through s3cached and straight to the origin), read back
    // and compared by the script. A cell replacing an object first caches the old one.
    // CRC64NVME is here: botocore needs awscrt for it, which the test virtualenv lacks.
    let cells: [(&str, usize, Option<ChecksumAlgorithm>); 8] = [
        ("sdk default", 0, None),
        ("sdk default", 1, None),
        ("sdk default", 8 * MIB + 1, None),
        ("sdk default", 64 * MIB, None),
        ("ChecksumAlgorithm SHA256", 1000, Some(ChecksumAlgorithm::Sha256)),
        ("ChecksumAlgorithm CRC32", 8 * MIB, Some(ChecksumAlgorithm::Crc32)),
        ("ChecksumAlgorithm CRC64NVME", 1000, Some(ChecksumAlgorithm::Crc64Nvme)),
        (
            "ChecksumAlgorithm CRC64NVME",
            8 * MIB + 1,
            Some(ChecksumAlgorithm::Crc64Nvme),
        ),
    ];
    let mut rust_cells = Vec::new();
    for (i, (signing, size, checksum)) in cells.into_iter().enumerate() {
        let key = format!("rust/{i}/{size}");
        let replaces = size < 64 * MIB;
        if replaces {
            for bucket in [&proxy_bucket, &origin_bucket] {
                seaweed.put_object(bucket, &key, b"the old object".to_vec()).await;
            }
            let cached = via.get_object().bucket(&proxy_bucket).key(&key).send().await;
            assert!(cached.is_ok(), "caching the old {key}: {cached:?}");
        }
        let body = random_bytes(size);
        let p = sdk_put(&via, &proxy_bucket, &key, body.clone(), checksum.clone()).await;
        let o = sdk_put(&direct, &origin_bucket, &key, body, checksum).await;
        let size_name = match size {
            0 => "0".to_owned(),
            1 => "1 B".to_owned(),
            s if s == 8 * MIB + 1 => "8 MiB+1".to_owned(),
            s if s % MIB == 0 => format!("{} MiB", s / MIB),
            s => format!("{s} B"),
        };
        rust_cells.push(serde_json::json!({
            "signing": signing,
            "size": size_name,
            "op": if replaces { "PutObject (replaces a cached object)" } else { "PutObject" },
            "key": key,
            "proxy": json_side(&p),
            "origin": json_side(&o),
        }));
    }

    let work = TempDir::new("write-matrix");
    let output = run_script(
        &work,
        "matrix",
        &proxy,
        seaweed,
        &[
            ("PROXY_BUCKET", proxy_bucket.clone()),
            ("ORIGIN_BUCKET", origin_bucket.clone()),
            ("PROXY_VBUCKET", unique_bucket("wm-proxy-versioned")),
            ("ORIGIN_VBUCKET", unique_bucket("wm-origin-versioned")),
            ("RUST_CELLS", serde_json::Value::Array(rust_cells).to_string()),
        ],
    );
    report("write conformance matrix", &output, &proxy, started);
}

#[tokio::test]
async fn disconnects_mid_upload_and_a_1_gib_upload_leave_memory_flat() {
    let started = Instant::now();
    let seaweed = shared();
    let bucket = seaweed.new_bucket("wm-stream").await;
    // The GET after the upload keeps the blocks it streams, bounded by the block memory;
    // kept small here, so that buffering the upload or the answer would show in the RSS.
    let proxy = start_proxy(seaweed, &["--block-memory-capacity", "32MiB"]);
    let work = TempDir::new("write-matrix-stream");
    let envs = [("PROXY_BUCKET", bucket.clone())];

    // One 1 GiB upload through s3cached, its peak RSS reported and bounded (no buffering).
    let output = run_script(&work, "big", &proxy, seaweed, &envs);
    report("1 GiB streaming upload", &output, &proxy, started);

    // Aborted 64 MiB uploads: the origin keeps the old object (or none), s3cached agrees, and
    // its RSS after the loop is that after the warm-up, within a margin.
    let started = Instant::now();
    let output = run_script(&work, "disconnect", &proxy, seaweed, &envs);
    report("aborted uploads", &output, &proxy, started);
}

#[tokio::test]
async fn origin_errors_reach_the_client_as_the_origin_gave_them() {
    let started = Instant::now();
    let seaweed = shared();
    let bucket = seaweed.new_bucket("wm-errors").await;
    let proxy = start_proxy(seaweed, &[]);
    // The origin refuses this one's signature.
    let bad_secret = S3Cached::builder()
        .args([
            "--origin-endpoint",
            &seaweed.endpoint(),
            "--origin-path-style",
            "--origin-region",
            REGION,
            "--origin-access-key",
            SEAWEED_ACCESS_KEY,
            "--origin-secret-key",
            "not-the-origin-secret",
        ])
        .client_credentials(CLIENT_KEY, CLIENT_SECRET)
        .start();
    // Nothing listens at this one's origin.
    let down = S3Cached::builder()
        .origin(&format!("http://127.0.0.1:{}", free_port()))
        .client_credentials(CLIENT_KEY, CLIENT_SECRET)
        .start();
    let work = TempDir::new("write-matrix-errors");
    let output = run_script(
        &work,
        "errors",
        &proxy,
        seaweed,
        &[
            ("PROXY_BUCKET", bucket),
            ("BAD_PROXY", bad_secret.endpoint()),
            ("DOWN_PROXY", down.endpoint()),
        ],
    );
    report("origin errors", &output, &proxy, started);
}
