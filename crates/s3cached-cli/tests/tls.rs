//! HTTPS on the S3 listener (`--tls-cert`, `--tls-key`) with s3cached in front of the shared
//! SeaweedFS: the aws cli (`--ca-bundle`, `AWS_CA_BUNDLE`) and boto3 (`verify=`) put, get and
//! list; curl gets the same bytes over HTTP/2 as over HTTP/1.1; a renewed certificate is served
//! to new connections while an open one keeps working; a bad certificate stops the start with
//! one line.
//!
//! The certificates are made for each run (`support::tls`), signed by a test CA that only the
//! clients here trust.

mod support;

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::REGION;
use support::cli_tools::{
    AwsCli, CLIENT_KEY, CLIENT_SECRET, Output, TempDir, clear_aws_env, fail_with_log, ls_recursive_entries,
    random_bytes, run, run_python, start_proxy,
};
use support::process::signal;
use support::proxy::S3Cached;
use support::seaweed::shared;
use support::tls::TestCa;

const HITS: &str = r#"s3cached_cache_hits_total{tier="memory"}"#;

/// `aws ARGS --ca-bundle CA`; must succeed.
fn aws_ok(aws: &AwsCli<'_>, https: &HttpsProxy, args: &[&str]) -> Output {
    let ca = https.ca_path();
    let cmd = aws.command(args.iter().copied().chain(["--ca-bundle", ca.as_str()]));
    let out = run(cmd, support::cli_tools::COMMAND_TIMEOUT);
    if !out.success() {
        fail_with_log(&https.proxy, format!("aws failed: {}", out.describe()));
    }
    out
}

/// s3cached serving HTTPS with a leaf certificate of a fresh test CA.
struct HttpsProxy {
    dir: TempDir,
    ca: TestCa,
    ca_file: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    proxy: S3Cached,
}

impl HttpsProxy {
    fn start(name: &str) -> HttpsProxy {
        let dir = TempDir::new(name);
        let ca = TestCa::new();
        let ca_file = dir.join("ca.pem");
        fs::write(&ca_file, ca.pem()).expect("write ca.pem");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        ca.leaf("s3cached first", 1001).write(&cert, &key);
        let (cert_arg, key_arg) = (cert.to_string_lossy(), key.to_string_lossy());
        let proxy = start_proxy(shared(), &["--tls-cert", &cert_arg, "--tls-key", &key_arg]);
        HttpsProxy {
            dir,
            ca,
            ca_file,
            cert,
            key,
            proxy,
        }
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.proxy.port())
    }

    fn ca_path(&self) -> String {
        self.ca_file.to_string_lossy().into_owned()
    }

    fn python(&self, name: &str, script: &str, envs: &[(&str, String)]) -> Output {
        let mut all = vec![
            ("S3_ENDPOINT", self.endpoint()),
            ("CA_FILE", self.ca_path()),
            ("CLIENT_KEY", CLIENT_KEY.to_owned()),
            ("CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("REGION", REGION.to_owned()),
        ];
        all.extend(envs.iter().cloned());
        let out = run_python(&self.dir, name, script, &all);
        if !out.success() || !out.stdout.contains("ALL OK") {
            fail_with_log(&self.proxy, format!("python script failed: {}", out.describe()));
        }
        out
    }
}

#[tokio::test]
async fn aws_cli_puts_gets_and_lists_over_https() {
    let https = HttpsProxy::start("tls-awscli");
    let bucket = shared().new_bucket("tls-cli").await;
    let aws = AwsCli::new(&https.endpoint(), CLIENT_KEY, CLIENT_SECRET, || {
        https.proxy.log_contents()
    });
    let ca = https.ca_path();
    let data = random_bytes(100_000);
    let up = https.dir.join("up.bin");
    fs::write(&up, &data).expect("write up.bin");
    let object = format!("s3://{bucket}/dir/object.bin");

    aws_ok(&aws, &https, &["s3", "cp", &up.to_string_lossy(), &object]);
    let hits_before = https.proxy.metric_value(HITS).await;
    for i in 0..2 {
        let down = https.dir.join(format!("down-{i}.bin"));
        aws_ok(&aws, &https, &["s3", "cp", &object, &down.to_string_lossy()]);
        assert!(fs::read(&down).expect("read download") == data, "download {i} differs");
    }
    assert!(
        https.proxy.metric_value(HITS).await > hits_before,
        "the gets were not served from the cache"
    );

    // The CA from the environment instead of the flag.
    let mut ls = aws.command(["s3", "ls", &format!("s3://{bucket}/"), "--recursive"]);
    ls.env("AWS_CA_BUNDLE", &ca);
    let ls = run(ls, support::cli_tools::COMMAND_TIMEOUT);
    assert!(ls.success(), "{}", ls.describe());
    assert_eq!(
        ls_recursive_entries(&ls.stdout),
        [(data.len() as u64, "dir/object.bin".to_owned())]
    );

    // Without the CA the client refuses the server: it really is TLS with this certificate.
    let refused = aws.run(["s3", "ls", &format!("s3://{bucket}/")]);
    assert!(
        !refused.success() && refused.stderr.contains("CERTIFICATE_VERIFY_FAILED"),
        "{}",
        refused.describe()
    );
}

const BOTO3_SCRIPT: &str = r#"
import os, sys
import boto3
from botocore.config import Config

bucket = os.environ["BUCKET"]
s3 = boto3.client(
    "s3",
    endpoint_url=os.environ["S3_ENDPOINT"],
    aws_access_key_id=os.environ["CLIENT_KEY"],
    aws_secret_access_key=os.environ["CLIENT_SECRET"],
    region_name=os.environ["REGION"],
    verify=os.environ["CA_FILE"],
    config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                  retries={"total_max_attempts": 1}),
)

def fail(msg):
    sys.exit("FAIL: " + msg)

data = os.urandom(50_000)
s3.put_object(Bucket=bucket, Key="b.bin", Body=data)
for i in range(2):
    body = s3.get_object(Bucket=bucket, Key="b.bin")["Body"].read()
    if body != data:
        fail(f"get #{i} differs")
keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
if keys != ["b.bin"]:
    fail(f"listing: {keys!r}")
with open("b.bin", "wb") as f:
    f.write(data)

# One HTTP/1.1 connection: hits answered by the hot path's loop inside TLS, a miss that hands
# the connection to hyper, and a hit answered through hyper: the same headers either way.
import http.client, ssl, urllib.parse
def presign(method, key):
    u = urllib.parse.urlsplit(s3.generate_presigned_url(method, Params={"Bucket": bucket, "Key": key},
                                                        ExpiresIn=600))
    return u, u.path + "?" + u.query
url, get_path = presign("get_object", "b.bin")
_, head_path = presign("head_object", "b.bin")
_, missing_path = presign("get_object", "missing.bin")
conn = http.client.HTTPSConnection(url.hostname, url.port, timeout=10,
                                   context=ssl.create_default_context(cafile=os.environ["CA_FILE"]))
def ask(method, path):
    conn.request(method, path)
    r = conn.getresponse()
    return r.status, {k.lower(): v for k, v in r.getheaders() if k.lower() != "date"}, r.read()
first = ask("GET", get_path)
sock = conn.sock
answers = [first, ask("GET", get_path), ask("HEAD", head_path), ask("GET", missing_path), ask("GET", get_path)]
if conn.sock is not sock:
    fail("the connection was not kept")
for i in (0, 1, 4):
    status, headers, body = answers[i]
    if status != 200 or body != data or not headers.get("x-s3cached", "").startswith("hit"):
        fail(f"keep-alive GET #{i}: {status} {headers!r}")
if answers[0][1] != answers[4][1] or answers[0][1] != answers[1][1]:
    fail(f"headers differ between the loop and hyper: {answers[0][1]!r} / {answers[4][1]!r}")
status, headers, body = answers[2]
if status != 200 or body or headers.get("content-length") != str(len(data)):
    fail(f"keep-alive HEAD: {status} {headers!r}")
if answers[3][0] != 404:
    fail(f"keep-alive miss: {answers[3][0]}")

print("PRESIGNED " + s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "b.bin"},
                                                ExpiresIn=600))
print("ALL OK")
"#;

/// `curl --http2` / `--http1.1` GET of `url` trusting `ca`: the HTTP version and status curl
/// reports, and the body.
fn curl_get(ca: &str, version_flag: &str, url: &str, out: &std::path::Path) -> (String, Vec<u8>) {
    let mut cmd = Command::new("curl");
    clear_aws_env(&mut cmd);
    cmd.args(["-sS", version_flag, "--cacert", ca, "-o"])
        .arg(out)
        .args(["-w", "%{http_version} %{http_code}", url]);
    let output = run(cmd, Duration::from_secs(30));
    assert!(output.success(), "{}", output.describe());
    (output.stdout, fs::read(out).expect("read curl output"))
}

#[tokio::test]
async fn boto3_over_https_hits_on_one_connection_and_the_same_bytes_over_http2() {
    let https = HttpsProxy::start("tls-boto3");
    let bucket = shared().new_bucket("tls-boto3").await;
    let out = https.python("boto3_tls.py", BOTO3_SCRIPT, &[("BUCKET", bucket.clone())]);
    let url = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("PRESIGNED "))
        .unwrap_or_else(|| panic!("no presigned URL: {}", out.describe()))
        .to_owned();
    let original = fs::read(https.dir.join("b.bin")).expect("read b.bin");

    let ca = https.ca_path();
    let (h1, body1) = curl_get(&ca, "--http1.1", &url, &https.dir.join("h1.bin"));
    let (h2, body2) = curl_get(&ca, "--http2", &url, &https.dir.join("h2.bin"));
    assert_eq!(h1, "1.1 200");
    assert_eq!(h2, "2 200", "ALPN did not give HTTP/2");
    assert!(body1 == original, "HTTP/1.1 body differs");
    assert!(body2 == original, "HTTP/2 body differs");
}

const RELOAD_SCRIPT: &str = r#"
import http.client, os, ssl, sys, time, urllib.parse
import boto3
from botocore.config import Config

bucket = os.environ["BUCKET"]
endpoint = os.environ["S3_ENDPOINT"]
s3 = boto3.client(
    "s3", endpoint_url=endpoint, aws_access_key_id=os.environ["CLIENT_KEY"],
    aws_secret_access_key=os.environ["CLIENT_SECRET"], region_name=os.environ["REGION"],
    verify=os.environ["CA_FILE"], config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
)
data = b"served before and after the reload"
s3.put_object(Bucket=bucket, Key="k", Body=data)
url = urllib.parse.urlsplit(s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"},
                                                      ExpiresIn=600))
path = url.path + "?" + url.query
ctx = ssl.create_default_context(cafile=os.environ["CA_FILE"])

def fail(msg):
    sys.exit("FAIL: " + msg)

def connect():
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
    conn.connect()
    return conn

def cn(conn):
    return dict(x[0] for x in conn.sock.getpeercert()["subject"])["commonName"]

def get(conn, what):
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200 or body != data:
        fail(f"{what}: HTTP {resp.status} {body[:200]!r}")

def wait_for_cn(want):
    deadline = time.time() + 15
    while True:
        conn = connect()
        if cn(conn) == want:
            return conn
        conn.close()
        if time.time() > deadline:
            fail(f"new connections still see {cn(connect())!r}, want {want!r}")
        time.sleep(0.1)

old = connect()
if cn(old) != "s3cached first":
    fail(f"first certificate: {cn(old)!r}")
get(old, "old connection before the reload")

os.replace(os.environ["NEXT_CERT"], os.environ["CERT_FILE"])
os.replace(os.environ["NEXT_KEY"], os.environ["KEY_FILE"])
new = wait_for_cn("s3cached renewed")
get(new, "new connection")
get(old, "old connection after the reload")
if cn(old) != "s3cached first":
    fail("the old connection changed certificates")

# A broken certificate file: logged, the renewed certificate stays.
with open(os.environ["CERT_FILE"] + ".tmp", "w") as f:
    f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
os.replace(os.environ["CERT_FILE"] + ".tmp", os.environ["CERT_FILE"])
time.sleep(2.5)
third = connect()
if cn(third) != "s3cached renewed":
    fail(f"after a bad file: {cn(third)!r}")
get(third, "connection after a bad file")
get(old, "old connection after a bad file")
print("ALL OK")
"#;

#[tokio::test]
async fn a_renewed_certificate_reaches_new_connections_and_open_ones_continue() {
    let https = HttpsProxy::start("tls-reload");
    let bucket = shared().new_bucket("tls-reload").await;
    let (next_cert, next_key) = (https.dir.join("next-cert.pem"), https.dir.join("next-key.pem"));
    let renewed = https.ca.leaf("s3cached renewed", 1002);
    fs::write(&next_cert, &renewed.cert_pem).expect("write next cert");
    fs::write(&next_key, &renewed.key_pem).expect("write next key");
    let path = |p: &PathBuf| p.to_string_lossy().into_owned();
    https.python(
        "reload.py",
        RELOAD_SCRIPT,
        &[
            ("BUCKET", bucket),
            ("CERT_FILE", path(&https.cert)),
            ("KEY_FILE", path(&https.key)),
            ("NEXT_CERT", path(&next_cert)),
            ("NEXT_KEY", path(&next_key)),
        ],
    );
    let log = https.proxy.log_contents();
    assert!(log.contains("TLS certificate reloaded"), "{log}");
    assert!(log.contains("no usable PEM certificate in"), "{log}");

    // SIGHUP asks for a reload at once (and does not end the process).
    renewed.write(&https.cert, &https.key);
    signal(https.proxy.pid().expect("running"), libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !https.proxy.log_contents().contains("SIGHUP received") {
        assert!(
            Instant::now() < deadline,
            "no SIGHUP reload: {}",
            https.proxy.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        https.proxy.metrics_text().await.contains("s3cached_"),
        "alive after SIGHUP"
    );
}

/// `s3cached serve` with `args` on top of a valid setup; must exit by itself.
fn serve_expecting_exit(dir: &TempDir, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_s3cached"));
    clear_aws_env(&mut cmd);
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
        .args(["--origin-endpoint", "http://127.0.0.1:9", "--origin-region", REGION])
        .args(["--access-key", CLIENT_KEY, "--secret-key", CLIENT_SECRET])
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("RUST_BACKTRACE")
        .current_dir(dir.path());
    run(cmd, Duration::from_secs(20))
}

#[test]
fn a_bad_certificate_at_start_is_one_line() {
    let dir = TempDir::new("tls-bad");
    let ca = TestCa::new();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    ca.leaf("s3cached", 1).write(&cert, &key);
    let other = ca.leaf("other", 2);
    let other_key = dir.join("other-key.pem");
    fs::write(&other_key, &other.key_pem).expect("write other key");
    let garbage = dir.join("garbage.pem");
    fs::write(&garbage, "not PEM at all\n").expect("write garbage");
    let missing = dir.join("missing.pem");
    let p = |p: &PathBuf| p.to_string_lossy().into_owned();

    for (cert, key, expected) in [
        (p(&garbage), p(&key), "no usable PEM certificate in"),
        (p(&cert), p(&garbage), "no usable PEM private key in"),
        (p(&cert), p(&other_key), "does not belong to the certificate"),
        (p(&missing), p(&key), "cannot read TLS certificate"),
    ] {
        let out = serve_expecting_exit(&dir, &["--tls-cert", &cert, "--tls-key", &key]);
        let stderr = out.stderr.trim_end();
        assert!(!out.success(), "{}", out.describe());
        assert!(
            stderr.lines().count() == 1 && stderr.starts_with("s3cached: ") && stderr.contains(expected),
            "{}",
            out.describe()
        );
    }
    // Both or neither.
    let alone = serve_expecting_exit(&dir, &["--tls-cert", &p(&cert)]);
    assert!(
        alone.code == Some(2) && alone.stderr.contains("--tls-key"),
        "{}",
        alone.describe()
    );
}
