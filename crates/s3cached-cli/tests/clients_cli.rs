//! Real S3 clients against a real `s3cached` process: the aws cli (v1) and boto3/botocore from
//! the test virtualenv, in front of the shared SeaweedFS (or, in development mode, in front of a
//! local directory), plus the command line's handling of bad input.
//!
//! Clients sign with credentials that differ from the origin's, so every passing request also
//! proves that s3cached verified the client's signature and signed its own request to the origin.

mod support;

use std::ffi::OsStr;
use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::{REGION, S3Cached, SeaweedFs, error_chain, free_port, http_get, shared, unique_bucket, venv_bin};

/// Credentials the clients sign with (the origin's are `SEAWEED_ACCESS_KEY`/`_SECRET_KEY`).
const CLIENT_KEY: &str = "client-key";
const CLIENT_SECRET: &str = "client-secret";

/// Credentials development mode accepts when none are configured.
const DEV_KEY: &str = "s3cached";
const DEV_SECRET: &str = "s3cached-dev-secret";

/// Longest any single client command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A directory under the cargo target dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(unique_bucket(prefix));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), seeded from the clock so that runs differ.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut state = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
        | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What a finished command printed.
struct Output {
    what: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Output {
    fn success(&self) -> bool {
        self.code == Some(0)
    }

    fn describe(&self) -> String {
        format!(
            "{} -> exit {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.what,
            self.code,
            tail(&self.stdout, 4000),
            tail(&self.stderr, 8000)
        )
    }

    fn expect_success(self) -> Output {
        assert!(self.success(), "command failed: {}", self.describe());
        self
    }
}

fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Runs `cmd` to completion (killing it after `timeout`), capturing stdout and stderr.
fn run(mut cmd: Command, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().ok();
            }
            Err(e) => panic!("wait for {what}: {e}"),
        }
    };
    let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let output = Output {
        what,
        code: status.and_then(|s| s.code()),
        stdout,
        stderr,
    };
    assert!(
        !timed_out,
        "command did not finish within {timeout:?}: {}",
        output.describe()
    );
    output
}

/// Removes every AWS_* and S3CACHED_* variable the test process may have from `cmd`'s
/// environment, so only what a test sets explicitly reaches the child.
fn clear_aws_env(cmd: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name_str = name.to_string_lossy();
        if name_str.starts_with("AWS_") || name_str.starts_with("S3CACHED_") {
            cmd.env_remove(&name);
        }
    }
}

/// The aws cli (v1) with its own config files, credentials and endpoint. `server_log` gives
/// the log of the server it talks to, shown when a command fails.
struct AwsCli<'a> {
    endpoint: String,
    access_key: String,
    secret_key: String,
    home: TempDir,
    server_log: Box<dyn Fn() -> String + 'a>,
}

impl<'a> AwsCli<'a> {
    fn new(endpoint: &str, access_key: &str, secret_key: &str, server_log: impl Fn() -> String + 'a) -> AwsCli<'a> {
        let home = TempDir::new("awscli-home");
        // Path-style addressing: the endpoint is an IP address, and that is what the proxy is
        // started for (virtual-hosted style has its own test).
        fs::write(home.join("config"), "[default]\ns3 =\n    addressing_style = path\n").expect("write aws config");
        fs::write(home.join("credentials"), "").expect("write aws credentials file");
        AwsCli {
            endpoint: endpoint.to_owned(),
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            home,
            server_log: Box::new(server_log),
        }
    }

    fn command<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(venv_bin("aws"));
        clear_aws_env(&mut cmd);
        cmd.args(args)
            .arg("--endpoint-url")
            .arg(&self.endpoint)
            .env("AWS_ACCESS_KEY_ID", &self.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret_key)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_CONFIG_FILE", self.home.join("config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", self.home.join("credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            // One attempt per request: a retry must not hide a failed request.
            .env("AWS_RETRY_MODE", "standard")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("HOME", self.home.path())
            .current_dir(self.home.path());
        cmd
    }

    fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.command(args), COMMAND_TIMEOUT)
    }

    /// `aws s3 cp FROM TO` (a local path or an `s3://` URL on either side); must succeed.
    fn cp(&self, from: impl AsRef<OsStr>, to: impl AsRef<OsStr>) -> Output {
        self.ok([OsStr::new("s3"), OsStr::new("cp"), from.as_ref(), to.as_ref()])
    }

    fn ok<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let output = self.run(args);
        if !output.success() {
            panic!(
                "command failed: {}\n--- server log (tail) ---\n{}",
                output.describe(),
                tail(&(self.server_log)(), 8000)
            );
        }
        output
    }
}

/// Keys printed by `aws s3 ls --recursive` (lines `DATE TIME SIZE KEY`; keys may hold spaces).
fn ls_recursive_entries(stdout: &str) -> Vec<(u64, String)> {
    stdout
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let mut rest = line;
            let mut fields = Vec::new();
            for _ in 0..3 {
                rest = rest.trim_start();
                let end = rest
                    .find(char::is_whitespace)
                    .unwrap_or_else(|| panic!("unexpected `aws s3 ls` line {line:?}"));
                fields.push(&rest[..end]);
                rest = &rest[end..];
            }
            let size = fields[2]
                .parse()
                .unwrap_or_else(|e| panic!("size in `aws s3 ls` line {line:?}: {e}"));
            // Exactly one separator space before the key.
            let key = rest
                .strip_prefix(' ')
                .unwrap_or_else(|| panic!("unexpected `aws s3 ls` line {line:?}"));
            (size, key.to_owned())
        })
        .collect()
}

/// Runs a Python script with the virtualenv's interpreter; `envs` pass the inputs. The scripts
/// exit non-zero with a message on the first failed check and print `ALL OK` at the end.
fn run_python(dir: &TempDir, name: &str, script: &str, envs: &[(&str, String)]) -> Output {
    let path = dir.join(name);
    fs::write(&path, script).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    let mut cmd = Command::new(venv_bin("python"));
    clear_aws_env(&mut cmd);
    cmd.arg(&path)
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.join("no-aws-credentials"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("PYTHONUNBUFFERED", "1")
        .current_dir(dir.path());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    run(cmd, COMMAND_TIMEOUT)
}

/// s3cached in front of the shared SeaweedFS, with client credentials of its own.
fn start_proxy(seaweed: &SeaweedFs, extra: &[&str]) -> S3Cached {
    S3Cached::builder()
        .origin(&seaweed.endpoint())
        .client_credentials(CLIENT_KEY, CLIENT_SECRET)
        .args(extra.iter().copied())
        .start()
}

/// Panics with the proxy's log appended.
fn fail_with_log(proxy: &S3Cached, message: String) -> ! {
    panic!(
        "{message}\n--- s3cached log (tail) ---\n{}",
        tail(&proxy.log_contents(), 8000)
    )
}

// ---------------------------------------------------------------------------------------------
// 1. aws cli: mb, multipart cp up and down, ls, sync, rm --recursive
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn aws_cli_bucket_multipart_copy_sync_and_remove() {
    let seaweed = shared();
    let proxy = start_proxy(seaweed, &[]);
    let aws = AwsCli::new(&proxy.endpoint(), CLIENT_KEY, CLIENT_SECRET, || proxy.log_contents());
    let work = TempDir::new("cli-roundtrip");
    let bucket = unique_bucket("cli-roundtrip");
    let s3_bucket = format!("s3://{bucket}");

    // A bucket created through s3cached exists at the origin.
    let mb = aws.ok(["s3", "mb", &s3_bucket]);
    assert!(mb.stdout.contains(&bucket), "mb output: {}", mb.describe());
    seaweed
        .client()
        .head_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            fail_with_log(
                &proxy,
                format!("bucket made through s3cached missing at origin: {}", error_chain(&e)),
            )
        });

    // 20 MiB: above the cli's 8 MiB multipart threshold (3 parts up, ranged GETs down) and
    // above s3cached's default --max-object-size (streamed through, never cached whole).
    let size: usize = 20 * 1024 * 1024;
    let big = random_bytes(size);
    let up = work.join("big.bin");
    fs::write(&up, &big).expect("write big.bin");
    aws.cp(&up, format!("{s3_bucket}/big.bin"));

    // The origin is the source of truth: the object is there, whole, as a multipart object.
    let origin_head = seaweed
        .client()
        .head_object()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .unwrap_or_else(|e| {
            fail_with_log(
                &proxy,
                format!("big.bin missing at origin after `aws s3 cp`: {}", error_chain(&e)),
            )
        });
    assert_eq!(origin_head.content_length(), Some(size as i64));
    let origin_etag = origin_head.e_tag().unwrap_or_default().to_owned();
    assert!(
        origin_etag.trim_matches('"').ends_with("-3"),
        "expected a 3-part multipart ETag at the origin, got {origin_etag:?}"
    );
    let origin_bytes = seaweed
        .client()
        .get_object()
        .bucket(&bucket)
        .key("big.bin")
        .send()
        .await
        .expect("GetObject big.bin from origin")
        .body
        .collect()
        .await
        .expect("read big.bin from origin")
        .into_bytes();
    assert!(
        origin_bytes.as_ref() == big.as_slice(),
        "the origin's big.bin differs from the uploaded file ({} bytes vs {})",
        origin_bytes.len(),
        big.len()
    );

    // HEAD through s3cached answers like the origin.
    let head = aws.ok(["s3api", "head-object", "--bucket", &bucket, "--key", "big.bin"]);
    assert!(
        head.stdout.contains(&format!("\"ContentLength\": {size}")),
        "head-object through s3cached: {}",
        head.describe()
    );
    assert!(
        head.stdout.contains(&origin_etag.replace('"', "\\\"")),
        "head-object through s3cached should carry the origin's ETag {origin_etag}: {}",
        head.describe()
    );

    // Down again, twice (the second time nothing may come from a half-filled cache).
    for round in 0..2 {
        let down = work.join(format!("big-down-{round}.bin"));
        aws.cp(format!("{s3_bucket}/big.bin"), &down);
        let got = fs::read(&down).expect("read downloaded big.bin");
        assert_eq!(got.len(), size, "downloaded size (round {round})");
        assert!(got == big, "downloaded big.bin differs (round {round})");
    }

    // An empty object. It is uploaded on its own: awscli 1.46's bundled botocore mishandles a
    // keep-alive connection after a PUT that got its final response without `100 Continue`
    // (what hyper, like Go's net/http, answers to `Expect: 100-continue` with no body): the
    // next PUT on that connection waits for EOF and `aws s3 sync` hangs. The same happens
    // against SeaweedFS directly, so it is no fault of s3cached.
    let empty = work.join("empty.txt");
    fs::write(&empty, b"").expect("write empty.txt");
    aws.cp(&empty, format!("{s3_bucket}/empty.txt"));
    let empty_down = work.join("empty-down.txt");
    aws.cp(format!("{s3_bucket}/empty.txt"), &empty_down);
    assert_eq!(fs::read(&empty_down).expect("read empty-down.txt"), b"");

    // `aws s3 ls` lists the bucket and the objects.
    let buckets = aws.ok(["s3", "ls"]);
    assert!(
        buckets.stdout.lines().any(|l| l.ends_with(&format!(" {bucket}"))),
        "`aws s3 ls` does not list {bucket}: {}",
        buckets.describe()
    );
    let listing = aws.ok(["s3", "ls", &format!("{s3_bucket}/")]);
    assert_eq!(
        ls_recursive_entries(&listing.stdout),
        vec![(size as u64, "big.bin".to_owned()), (0, "empty.txt".to_owned())],
        "{}",
        listing.describe()
    );

    // sync of 20 small files, names with spaces, unicode and a subdirectory.
    let tree = work.join("tree");
    fs::create_dir_all(tree.join("sub dir")).expect("create tree");
    let mut expected: Vec<(u64, String)> = Vec::new();
    let names = [
        "plain.txt",
        "with space.txt",
        "two  spaces.txt",
        "ünïcödé.txt",
        "日本語のファイル.txt",
        "emoji 🚀 rocket.bin",
        "Ελληνικά.dat",
        "русский файл.txt",
        "mixed-Case_Name.TXT",
        "plus+sign.txt",
        "percent%41.txt",
        "equals=and&amp.txt",
        "(parens) [brackets].txt",
        "comma,semicolon;.txt",
        "tilde~dollar$.txt",
        "question?mark.txt",
        "sub dir/nested file.txt",
        "sub dir/ñandú.txt",
        "sub dir/deeper.bin",
        "apostrophe's.txt",
    ];
    for (i, name) in names.iter().enumerate() {
        let mut body = format!("file {i}: {name}\n").into_bytes();
        body.extend(random_bytes(i * 37));
        let path = tree.join(name);
        fs::write(&path, &body).unwrap_or_else(|e| panic!("write {name}: {e}"));
        // Listings give LastModified in whole seconds; a file written in the same second as
        // its upload would look newer than its copy and be uploaded again by the next sync.
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(SystemTime::now() - Duration::from_secs(3600)))
            .unwrap_or_else(|e| panic!("set mtime of {name}: {e}"));
        expected.push((body.len() as u64, format!("synced/{name}")));
    }
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    aws.ok([
        OsStr::new("s3"),
        OsStr::new("sync"),
        tree.as_os_str(),
        OsStr::new(&format!("{s3_bucket}/synced/")),
    ]);
    let listing = aws.ok(["s3", "ls", "--recursive", &format!("{s3_bucket}/synced/")]);
    let mut listed = ls_recursive_entries(&listing.stdout);
    listed.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(listed, expected, "{}", listing.describe());

    // Nothing changed locally: a second sync uploads nothing (sizes and times line up).
    let again = aws.ok([
        OsStr::new("s3"),
        OsStr::new("sync"),
        tree.as_os_str(),
        OsStr::new(&format!("{s3_bucket}/synced/")),
    ]);
    assert!(
        !again.stdout.contains("upload:"),
        "a second sync of an unchanged tree uploaded again: {}",
        again.describe()
    );

    // And the content of an awkward name round-trips through s3cached.
    let probe = "sub dir/ñandú.txt";
    let probe_down = work.join("probe-down");
    aws.cp(format!("{s3_bucket}/synced/{probe}"), &probe_down);
    assert_eq!(
        fs::read(&probe_down).expect("read probe"),
        fs::read(tree.join(probe)).expect("read probe source")
    );

    // rm --recursive empties the bucket, at the origin too.
    aws.ok(["s3", "rm", "--recursive", &format!("{s3_bucket}/")]);
    let listing = aws.run(["s3", "ls", "--recursive", &format!("{s3_bucket}/")]);
    // awscli v1 exits 1 when a listing is empty.
    assert!(
        matches!(listing.code, Some(0 | 1)) && listing.stdout.trim().is_empty(),
        "listing after rm --recursive should be empty: {}",
        listing.describe()
    );
    let at_origin = seaweed
        .client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("ListObjectsV2 at origin");
    assert_eq!(
        at_origin.key_count().unwrap_or(0),
        0,
        "objects left at origin: {:?}",
        at_origin.contents().iter().filter_map(|o| o.key()).collect::<Vec<_>>()
    );
    // A removed object is gone through s3cached as well (no stale cache entry).
    let gone = aws.run(["s3api", "head-object", "--bucket", &bucket, "--key", "big.bin"]);
    assert!(
        !gone.success() && (gone.stderr.contains("404") || gone.stderr.contains("Not Found")),
        "head-object of a removed object: {}",
        gone.describe()
    );

    aws.ok(["s3", "rb", &s3_bucket]);
    assert!(
        seaweed.client().head_bucket().bucket(&bucket).send().await.is_err(),
        "bucket {bucket} still exists at the origin after `aws s3 rb`"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. aws cli: the second get-object is a cache hit
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn aws_cli_second_get_object_is_served_from_cache() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("cli-cache-hit").await;
    let body = random_bytes(3000);
    seaweed.put_object(&bucket, "hot/object.bin", body.clone()).await;

    let proxy = start_proxy(seaweed, &[]);
    let aws = AwsCli::new(&proxy.endpoint(), CLIENT_KEY, CLIENT_SECRET, || proxy.log_contents());
    let work = TempDir::new("cli-cache-hit");

    const ORIGIN_GETS: &str = r#"s3cached_origin_requests_total{operation="GetObject"}"#;
    const HITS: &str = r#"s3cached_cache_hits_total{tier="memory"}"#;
    const MISSES: &str = r#"s3cached_cache_misses_total{tier="memory"}"#;

    let mut statuses = Vec::new();
    let mut snapshots = vec![(
        proxy.metric_value(ORIGIN_GETS).await,
        proxy.metric_value(HITS).await,
        proxy.metric_value(MISSES).await,
    )];
    for round in 0..2 {
        let out = work.join(format!("out-{round}"));
        let result = aws.ok([
            OsStr::new("s3api"),
            OsStr::new("get-object"),
            OsStr::new("--bucket"),
            OsStr::new(&bucket),
            OsStr::new("--key"),
            OsStr::new("hot/object.bin"),
            out.as_os_str(),
            OsStr::new("--debug"),
        ]);
        assert_eq!(
            fs::read(&out).expect("read get-object output"),
            body,
            "get-object #{round} bytes"
        );
        assert!(
            result.stdout.contains(&format!("\"ContentLength\": {}", body.len())),
            "{}",
            result.describe()
        );
        // botocore logs the response headers as a dict at debug level.
        let status = ["hit-memory", "miss", "bypass"]
            .into_iter()
            .find(|s| result.stderr.contains(&format!("'x-s3cached': '{s}'")))
            .unwrap_or("<no x-s3cached header in the debug log>");
        statuses.push(status);
        snapshots.push((
            proxy.metric_value(ORIGIN_GETS).await,
            proxy.metric_value(HITS).await,
            proxy.metric_value(MISSES).await,
        ));
    }

    let [(g0, h0, m0), (g1, h1, m1), (g2, h2, m2)] = snapshots[..] else {
        unreachable!()
    };
    let report = format!(
        "(origin GetObject, memory hits, memory misses) before/after #1/after #2: \
         {:?}; x-s3cached: {statuses:?}",
        snapshots
    );
    if g1 - g0 != 1.0 || m1 - m0 != 1.0 {
        fail_with_log(
            &proxy,
            format!("first get-object should be one miss filled from the origin: {report}"),
        );
    }
    if g2 != g1 || h2 - h1 != 1.0 || m2 != m1 {
        fail_with_log(
            &proxy,
            format!("second get-object should be a memory hit without an origin call: {report}"),
        );
    }
    assert_eq!(h1, h0, "first get-object counted a hit: {report}");
    assert_eq!(statuses, ["miss", "hit-memory"], "{report}");
    // The aws cli's signed GET (checksum mode on) is a plain hit: the hot path answers it.
    assert_eq!(
        proxy
            .metric_value(r#"s3cached_hot_path_answers_total{operation="GetObject"}"#)
            .await,
        1.0,
        "{report}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. boto3: objects, metadata, presigned URLs, ranges, conditionals, delete, pagination, auth
// ---------------------------------------------------------------------------------------------

const BOTO3_SCRIPT: &str = r#"
import json, os, sys, urllib.request, urllib.error
import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

endpoint = os.environ["S3_ENDPOINT"]
bucket = os.environ["BUCKET"]
key_id = os.environ["CLIENT_KEY"]
secret = os.environ["CLIENT_SECRET"]
region = os.environ["REGION"]

def client(secret_key=secret):
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret_key,
        region_name=region,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"total_max_attempts": 1},
        ),
    )

def fail(msg):
    sys.exit("FAIL: " + msg)

def eq(what, got, want):
    if got != want:
        fail(f"{what}: got {got!r}, want {want!r}")

def error_of(fn, **kw):
    try:
        resp = fn(**kw)
    except ClientError as e:
        return e.response
    fail(f"{fn.__name__}({kw!r}) succeeded, expected an error: {resp!r}")

s3 = client()
results = {}
data = os.urandom(1000) + b"0123456789"
key = "dir/object with space.bin"
meta = {"color": "blue", "owner": "tests"}

put = s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType="application/x-s3cached-test",
                    Metadata=meta)
etag = put["ETag"]
results["put_etag"] = etag

# Twice: whatever tier answers, the answer is the same.
gets = []
for i in range(2):
    g = s3.get_object(Bucket=bucket, Key=key)
    body = g["Body"].read()
    eq(f"get #{i} body length", len(body), len(data))
    if body != data:
        fail(f"get #{i} body differs")
    eq(f"get #{i} metadata", g["Metadata"], meta)
    eq(f"get #{i} content type", g["ContentType"], "application/x-s3cached-test")
    eq(f"get #{i} ETag", g["ETag"], etag)
    eq(f"get #{i} ContentLength", g["ContentLength"], len(data))
    gets.append(g["ResponseMetadata"]["HTTPHeaders"].get("x-s3cached"))
results["get_x_s3cached"] = gets
eq("second get served by", gets[1], "hit-memory")

h = s3.head_object(Bucket=bucket, Key=key)
eq("head ContentLength", h["ContentLength"], len(data))
eq("head ETag", h["ETag"], etag)
eq("head ContentType", h["ContentType"], "application/x-s3cached-test")
eq("head Metadata", h["Metadata"], meta)

# A presigned URL, fetched with no credentials at all.
url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
results["presigned_url"] = url
if "X-Amz-Signature=" not in url:
    fail(f"not a SigV4 presigned URL: {url}")
with urllib.request.urlopen(url, timeout=20) as resp:
    eq("presigned GET status", resp.status, 200)
    if resp.read() != data:
        fail("presigned GET body differs")
# A tampered presigned URL (one hex digit of the signature changed) is refused.
sig_at = url.index("X-Amz-Signature=") + len("X-Amz-Signature=")
tampered = url[:sig_at] + ("0" if url[sig_at] != "0" else "1") + url[sig_at + 1:]
try:
    urllib.request.urlopen(tampered, timeout=20)
    fail("a presigned URL with a tampered signature was accepted")
except urllib.error.HTTPError as e:
    eq("tampered presigned GET status", e.code, 403)

# Range GET.
r = s3.get_object(Bucket=bucket, Key=key, Range="bytes=2-5")
eq("range status", r["ResponseMetadata"]["HTTPStatusCode"], 206)
eq("range ContentRange", r["ContentRange"], f"bytes 2-5/{len(data)}")
eq("range ContentLength", r["ContentLength"], 4)
eq("range body", r["Body"].read(), data[2:6])
# Suffix range.
r = s3.get_object(Bucket=bucket, Key=key, Range="bytes=-10")
eq("suffix range status", r["ResponseMetadata"]["HTTPStatusCode"], 206)
eq("suffix range ContentRange", r["ContentRange"], f"bytes {len(data) - 10}-{len(data) - 1}/{len(data)}")
eq("suffix range body", r["Body"].read(), b"0123456789")

# Conditional GETs.
e = error_of(s3.get_object, Bucket=bucket, Key=key, IfNoneMatch=etag)
eq("If-None-Match status", e["ResponseMetadata"]["HTTPStatusCode"], 304)
e = error_of(s3.get_object, Bucket=bucket, Key=key, IfMatch='"0123456789abcdef0123456789abcdef"')
eq("If-Match (other ETag) status", e["ResponseMetadata"]["HTTPStatusCode"], 412)
g = s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)
if g["Body"].read() != data:
    fail("If-Match (same ETag) body differs")

# Delete, then the object is gone (not served from the cache).
s3.delete_object(Bucket=bucket, Key=key)
e = error_of(s3.get_object, Bucket=bucket, Key=key)
eq("get after delete: error code", e["Error"]["Code"], "NoSuchKey")
e = error_of(s3.head_object, Bucket=bucket, Key=key)
eq("head after delete: status", e["ResponseMetadata"]["HTTPStatusCode"], 404)

# Pagination: 12 objects, 5 per page.
want = [f"page/k{i:02d}" for i in range(12)]
for k in want:
    s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
got, pages, token = [], [], None
while True:
    kw = {"Bucket": bucket, "Prefix": "page/", "MaxKeys": 5}
    if token:
        kw["ContinuationToken"] = token
    p = s3.list_objects_v2(**kw)
    keys = [o["Key"] for o in p.get("Contents", [])]
    pages.append(len(keys))
    got.extend(keys)
    if not p.get("IsTruncated"):
        break
    token = p.get("NextContinuationToken")
    if not token:
        fail(f"truncated page without NextContinuationToken: {p!r}")
    if len(pages) > 10:
        fail(f"pagination does not end: pages {pages}")
eq("paginated keys", got, want)
eq("page sizes", pages, [5, 5, 2])
results["pages"] = pages

# A wrong secret key is refused, for reads and for writes (and the write does not happen).
bad = client(secret_key="not-the-secret")
for name, fn, kw in [
    ("get_object", bad.get_object, {"Bucket": bucket, "Key": "page/k00"}),
    ("list_objects_v2", bad.list_objects_v2, {"Bucket": bucket}),
    ("put_object", bad.put_object, {"Bucket": bucket, "Key": "forged", "Body": b"x"}),
]:
    e = error_of(fn, **kw)
    code = e["Error"].get("Code")
    status = e["ResponseMetadata"]["HTTPStatusCode"]
    if code != "SignatureDoesNotMatch" and status != 403:
        fail(f"{name} with a wrong secret: got {code} / HTTP {status}")
    results[f"wrong_secret_{name}"] = [code, status]
e = error_of(s3.head_object, Bucket=bucket, Key="forged")
eq("forged object (put with a wrong secret) status", e["ResponseMetadata"]["HTTPStatusCode"], 404)

print(json.dumps(results, indent=1))
print("ALL OK")
"#;

#[tokio::test]
async fn boto3_objects_presign_ranges_conditionals_pagination_and_auth() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("boto3").await;
    let proxy = start_proxy(seaweed, &[]);
    let work = TempDir::new("boto3");

    let output = run_python(
        &work,
        "boto3_checks.py",
        BOTO3_SCRIPT,
        &[
            ("S3_ENDPOINT", proxy.endpoint()),
            ("BUCKET", bucket.clone()),
            ("CLIENT_KEY", CLIENT_KEY.to_owned()),
            ("CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("REGION", REGION.to_owned()),
        ],
    );
    if !output.success() || !output.stdout.contains("ALL OK") {
        fail_with_log(&proxy, format!("boto3 checks failed: {}", output.describe()));
    }

    // The origin agrees: the deleted object and the forged one are absent, the 12 are there.
    let listed = seaweed
        .client()
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .expect("ListObjectsV2 at origin");
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    let want: Vec<String> = (0..12).map(|i| format!("page/k{i:02}")).collect();
    assert_eq!(keys, want, "objects at the origin after the boto3 checks");
}

// ---------------------------------------------------------------------------------------------
// 4. Virtual-hosted-style requests (--domain)
// ---------------------------------------------------------------------------------------------

const VHOST_SCRIPT: &str = r#"
import hashlib, http.client, os, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

port = int(os.environ["PORT"])
bucket = os.environ["BUCKET"]
key = os.environ["KEY"]
want = open(os.environ["EXPECTED_FILE"], "rb").read()
creds = Credentials(os.environ["CLIENT_KEY"], os.environ["CLIENT_SECRET"])
region = os.environ["REGION"]
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

def fail(msg):
    sys.exit("FAIL: " + msg)

def signed_get(host, path_and_query):
    url = f"http://{host}{path_and_query}"
    req = AWSRequest(method="GET", url=url, headers={
        "Host": host,
        "x-amz-content-sha256": EMPTY_SHA256,
    })
    SigV4Auth(creds, "s3", region).add_auth(req)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", path_and_query, headers=dict(req.headers.items()))
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, resp.getheader("x-s3cached"), body

vhost = f"{bucket}.s3cached.test:{port}"
served_by = []
for i in range(2):
    status, cache, body = signed_get(vhost, f"/{key}")
    if status != 200:
        fail(f"virtual-hosted GET #{i} http://{vhost}/{key}: HTTP {status}: {body[:500]!r}")
    if body != want:
        fail(f"virtual-hosted GET #{i}: body differs ({len(body)} bytes, want {len(want)})")
    served_by.append(cache)
print("virtual-hosted x-s3cached:", served_by)

status, cache, body = signed_get(f"127.0.0.1:{port}", f"/{bucket}/{key}")
if status != 200:
    fail(f"path-style GET /{bucket}/{key}: HTTP {status}: {body[:500]!r}")
if body != want:
    fail("path-style GET: body differs")
served_by.append(cache)
print("path-style x-s3cached:", cache)

status, _, body = signed_get(vhost, "/?list-type=2")
if status != 200:
    fail(f"virtual-hosted ListObjectsV2: HTTP {status}: {body[:500]!r}")
if f"<Key>{key}</Key>".encode() not in body:
    fail(f"virtual-hosted ListObjectsV2 does not list {key}: {body[:1000]!r}")

if served_by != ["miss", "hit-memory", "hit-memory"]:
    fail(f"x-s3cached of vhost GET, vhost GET, path-style GET: {served_by}")
print("ALL OK")
"#;

#[tokio::test]
async fn virtual_hosted_style_requests_signed_with_botocore() {
    let seaweed = shared();
    let bucket = seaweed.new_bucket("vhost").await;
    let key = "dir/vhost-object.txt";
    let body = random_bytes(777);
    seaweed.put_object(&bucket, key, body.clone()).await;

    let proxy = start_proxy(seaweed, &["--domain", "s3cached.test"]);
    let work = TempDir::new("vhost");
    let expected = work.join("expected.bin");
    fs::write(&expected, &body).expect("write expected body");

    let output = run_python(
        &work,
        "vhost_checks.py",
        VHOST_SCRIPT,
        &[
            ("PORT", proxy.port().to_string()),
            ("BUCKET", bucket.clone()),
            ("KEY", key.to_owned()),
            ("EXPECTED_FILE", expected.display().to_string()),
            ("CLIENT_KEY", CLIENT_KEY.to_owned()),
            ("CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("REGION", REGION.to_owned()),
        ],
    );
    if !output.success() || !output.stdout.contains("ALL OK") {
        fail_with_log(
            &proxy,
            format!("virtual-hosted-style checks failed: {}", output.describe()),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Development mode: no origin, a local directory served as S3
// ---------------------------------------------------------------------------------------------

/// An `s3cached serve` started by hand (the harness's builder cannot clear the environment).
struct DevServer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl DevServer {
    fn start(cwd: &Path) -> DevServer {
        let port = free_port();
        let admin_port = free_port();
        let log = cwd.join("s3cached.log");
        let log_file = || {
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .expect("open dev-mode log")
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3cached"));
        clear_aws_env(&mut cmd);
        cmd.args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin_port}"),
        ])
        .env("NO_COLOR", "1")
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(log_file())
        .stderr(log_file());
        {
            use std::os::unix::process::CommandExt as _;
            // SAFETY: only async-signal-safe calls (prctl) run between fork and exec.
            // The child dies with the thread that spawned it (this test's thread), so a test
            // process that dies before `Drop` runs leaves nothing behind.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = cmd.spawn().expect("spawn s3cached in development mode");
        let mut server = DevServer {
            child: Some(child),
            port,
            log,
        };

        let health = format!("http://127.0.0.1:{admin_port}/health");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(child) = server.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "s3cached (development mode) exited during startup: {status}\n{}",
                    server.log_contents()
                );
            }
            let probe = support::block_on_thread(async {
                tokio::time::timeout(Duration::from_secs(2), http_get(&health)).await
            });
            if let Ok(Ok((200, _))) = probe {
                break;
            }
            if Instant::now() >= deadline {
                panic!(
                    "s3cached (development mode) not healthy after 30 s: {probe:?}\n{}",
                    server.log_contents()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_contents(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn development_mode_serves_a_local_directory() {
    let cwd = TempDir::new("devmode");
    let server = DevServer::start(cwd.path());
    let log = server.log_contents();
    assert!(
        log.contains("DEVELOPMENT MODE"),
        "the startup log does not say DEVELOPMENT MODE:\n{log}"
    );

    let aws = AwsCli::new(&server.endpoint(), DEV_KEY, DEV_SECRET, || server.log_contents());
    let bucket = unique_bucket("devmode");
    let s3_bucket = format!("s3://{bucket}");
    aws.ok(["s3", "mb", &s3_bucket]);
    let body = random_bytes(100_000);
    let up = cwd.join("upload.bin");
    fs::write(&up, &body).expect("write upload.bin");
    aws.cp(&up, format!("{s3_bucket}/docs/upload file.bin"));
    let listing = aws.ok(["s3", "ls", "--recursive", &format!("{s3_bucket}/")]);
    assert_eq!(
        ls_recursive_entries(&listing.stdout),
        vec![(body.len() as u64, "docs/upload file.bin".to_owned())],
        "{}",
        listing.describe()
    );
    let down = cwd.join("download.bin");
    aws.cp(format!("{s3_bucket}/docs/upload file.bin"), &down);
    assert!(
        fs::read(&down).expect("read download.bin") == body,
        "downloaded file differs from the uploaded one"
    );

    // The data lives in ./s3cached-data of the server's working directory.
    let stored = cwd.join("s3cached-data").join(&bucket).join("docs/upload file.bin");
    assert!(
        fs::read(&stored).map(|b| b == body).unwrap_or(false),
        "expected the object's bytes in {}",
        stored.display()
    );

    // Credentials other than the development pair are refused.
    let intruder = AwsCli::new(&server.endpoint(), DEV_KEY, "wrong-secret", || server.log_contents());
    let refused = intruder.run(["s3", "ls", &format!("{s3_bucket}/")]);
    assert!(
        !refused.success() && (refused.stderr.contains("SignatureDoesNotMatch") || refused.stderr.contains("403")),
        "a wrong secret in development mode: {}",
        refused.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// 6. Bad input on the command line
// ---------------------------------------------------------------------------------------------

/// `s3cached serve <args>` with a clean environment, an unused origin and the admin port off;
/// must exit by itself.
fn serve_with(args: &[&str]) -> Output {
    let cwd = TempDir::new("badinput");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3cached"));
    clear_aws_env(&mut cmd);
    cmd.arg("serve")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "off",
            "--origin-endpoint",
            "http://127.0.0.1:9",
            "--origin-region",
            REGION,
            "--access-key",
            CLIENT_KEY,
            "--secret-key",
            CLIENT_SECRET,
        ])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .current_dir(cwd.path());
    run(cmd, Duration::from_secs(20))
}

fn assert_no_panic(output: &Output) {
    for word in ["panicked", "backtrace", "RUST_BACKTRACE"] {
        assert!(
            !output.stderr.contains(word) && !output.stdout.contains(word),
            "output mentions {word:?}: {}",
            output.describe()
        );
    }
}

#[test]
fn bad_command_line_input_is_reported_plainly() {
    // --ttl: one line, naming the flag.
    let ttl = serve_with(&["--ttl", "soon"]);
    assert!(
        !ttl.success() && ttl.code.is_some(),
        "serve --ttl soon should exit with an error: {}",
        ttl.describe()
    );
    assert_no_panic(&ttl);
    let lines: Vec<&str> = ttl.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "serve --ttl soon should print one line: {}",
        ttl.describe()
    );
    assert!(
        lines[0].contains("--ttl") && lines[0].contains("soon"),
        "the error should name --ttl and the value: {}",
        ttl.describe()
    );

    let zero = serve_with(&["--ttl", "0s"]);
    assert!(!zero.success(), "serve --ttl 0s: {}", zero.describe());
    assert_no_panic(&zero);
    assert!(zero.stderr.contains("--ttl"), "{}", zero.describe());

    // --memory-capacity: a message naming the flag and the value.
    let capacity = serve_with(&["--memory-capacity", "lots"]);
    assert!(
        !capacity.success() && capacity.code.is_some(),
        "serve --memory-capacity lots should exit with an error: {}",
        capacity.describe()
    );
    assert_no_panic(&capacity);
    assert!(
        capacity.stderr.contains("--memory-capacity") && capacity.stderr.contains("lots"),
        "the error should name --memory-capacity and the value: {}",
        capacity.describe()
    );

    // Contradicting sizes.
    let sizes = serve_with(&["--memory-capacity", "1MiB", "--max-object-size", "8MiB"]);
    assert!(!sizes.success(), "{}", sizes.describe());
    assert_no_panic(&sizes);
    assert!(sizes.stderr.contains("--max-object-size"), "{}", sizes.describe());

    // --help documents the main flags and their environment variables.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3cached"));
    clear_aws_env(&mut cmd);
    cmd.args(["serve", "--help"]);
    let help = run(cmd, Duration::from_secs(20)).expect_success();
    for needle in ["--origin-endpoint", "--max-object-size", "--ttl", "S3CACHED_"] {
        assert!(
            help.stdout.contains(needle),
            "`s3cached serve --help` does not mention {needle}: {}",
            help.describe()
        );
    }
}
