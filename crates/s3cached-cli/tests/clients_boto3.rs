//! boto3/botocore from the test virtualenv against a real `s3cached` process in front of the
//! shared SeaweedFS: objects, metadata, presigned URLs, ranges, conditionals, delete, pagination
//! and auth; and virtual-hosted-style requests (`--domain`).
//!
//! The scripts sign with credentials that differ from the origin's, so every passing request also
//! proves that s3cached verified the client's signature and signed its own request to the origin.

mod support;

use std::fs;

use support::REGION;
use support::cli_tools::{CLIENT_KEY, CLIENT_SECRET, TempDir, fail_with_log, random_bytes, run_python, start_proxy};
use support::seaweed::shared;

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
