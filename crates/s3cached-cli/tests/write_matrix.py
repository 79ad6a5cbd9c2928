"""Write conformance of s3cached against its origin (driven by write_matrix.rs).

Every cell runs one write twice: through s3cached into the bucket PROXY_BUCKET, and straight to
the origin into ORIGIN_BUCKET, under the same key. Both must answer with the same status (and
error code). Then the object written through s3cached is read through s3cached four times
(plain, plain, checksum mode, checksum mode: the miss and the hit of each) and each answer must
equal a GET of the same object straight from the origin: status, body, and the headers that
describe the object. The origin's copy of both writes must also agree (same bytes, same
metadata), so a write that s3cached changed on its way is caught even when its reads agree.

MODE selects what runs: `matrix` (the cells), `disconnect` (aborted uploads, RSS), `big` (one
1 GiB upload, RSS), `errors` (origin errors through s3cached). The script prints a table and
exits non-zero when a cell differs, naming the cell and the differing fields.
"""

import base64
import binascii
import datetime
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENV = os.environ
REGION = ENV.get("REGION", "us-east-1")
PROXY = ENV["PROXY"]
ORIGIN = ENV["ORIGIN"]
CLIENT_CREDS = (ENV["CLIENT_KEY"], ENV["CLIENT_SECRET"])
ORIGIN_CREDS = (ENV["ORIGIN_KEY"], ENV["ORIGIN_SECRET"])
ONLY = re.compile(ENV.get("ONLY", ""))
MiB = 1024 * 1024
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# Headers that describe the object: they must be equal through s3cached and straight from the
# origin. IGNORED ones are not compared (per request, or transport); any other header that
# differs (e.g. SeaweedFS's own seaweed-* headers) is reported, not failed.
DESCRIBING = {
    "etag", "content-length", "content-type", "content-encoding", "content-disposition",
    "content-language", "cache-control", "expires", "last-modified", "content-range",
    "x-amz-tagging-count", "x-amz-version-id", "x-amz-delete-marker",
    "x-amz-website-redirect-location",
}
DESCRIBING_PREFIXES = ("x-amz-meta-", "x-amz-checksum-", "x-amz-server-side-encryption")
IGNORED = {
    "date", "x-amz-request-id", "x-amz-id-2", "server", "x-s3cached", "accept-ranges",
    "connection", "keep-alive", "transfer-encoding", "vary",
}


def describing(name):
    return name in DESCRIBING or name.startswith(DESCRIBING_PREFIXES)


# ------------------------------------------------------------------------------------------
# SigV4 by hand (header auth, any payload hash), raw HTTP
# ------------------------------------------------------------------------------------------

def enc_key(key):
    return urllib.parse.quote(key, safe="/~")


def q(s):
    return urllib.parse.quote(str(s), safe="-_.~")


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, REGION)
    k = _hmac(k, "s3")
    return _hmac(k, "aws4_request")


def sign(method, host, path, query, headers, payload_hash, creds, now=None):
    """Adds x-amz-date, x-amz-content-sha256 and Authorization to `headers` (lower-case names).
    Returns (headers, seed signature, scope, amz date, signing key)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    date = amz_date[:8]
    headers = {k.lower(): str(v) for k, v in headers.items()}
    headers["host"] = host
    headers["x-amz-date"] = amz_date
    headers["x-amz-content-sha256"] = payload_hash
    names = sorted(headers)
    canon_headers = "".join(f"{n}:{' '.join(headers[n].strip().split())}\n" for n in names)
    canon_query = "&".join(f"{q(k)}={q(v or '')}" for k, v in sorted(query, key=lambda kv: (q(kv[0]), q(kv[1] or ""))))
    creq = "\n".join([method, path, canon_query, canon_headers, ";".join(names), payload_hash])
    scope = f"{date}/{REGION}/s3/aws4_request"
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(creq.encode()).hexdigest()])
    skey = signing_key(creds[1], date)
    sig = hmac.new(skey, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds[0]}/{scope}, SignedHeaders={';'.join(names)}, Signature={sig}"
    )
    return headers, sig, scope, amz_date, skey


class Resp:
    def __init__(self, status, headers, body=b"", sha=None, length=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.sha = sha if sha is not None else hashlib.sha256(body).hexdigest()
        self.length = length if length is not None else len(body)

    def code(self):
        m = re.search(rb"<Code>([^<]*)</Code>", self.body or b"")
        return m.group(1).decode() if m else None

    def request_id(self):
        m = re.search(rb"<RequestId>([^<]*)</RequestId>", self.body or b"")
        return m.group(1).decode() if m else None


def request(endpoint, method, path, query=(), headers=None, body=b"", creds=None, payload_hash=None,
            keep_body=True, timeout=300, content_length=None, chunked=False):
    """One request; `body` is bytes or an iterable of bytes (then `content_length` is given,
    or `chunked` sends it with Transfer-Encoding: chunked and no Content-Length)."""
    host = endpoint.split("//", 1)[1]
    headers = dict(headers or {})
    if creds is not None:
        if payload_hash is None:
            payload_hash = hashlib.sha256(body).hexdigest() if isinstance(body, bytes) else "UNSIGNED-PAYLOAD"
        headers, *_ = sign(method, host, path, query, headers, payload_hash, creds)
    if chunked:
        headers["transfer-encoding"] = "chunked"
        parts = [body] if isinstance(body, bytes) else body
        body = [f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in parts if c] + [b"0\r\n\r\n"]
    elif content_length is not None:
        headers["content-length"] = str(content_length)
    elif isinstance(body, bytes) and (body or method in ("PUT", "POST")):
        headers["content-length"] = str(len(body))
    qs = "&".join(q(k) if v is None else f"{q(k)}={q(v)}" for k, v in query)
    target = path + ("?" + qs if qs else "")
    h, p = host.rsplit(":", 1)
    conn = http.client.HTTPConnection(h, int(p), timeout=timeout)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        try:
            if isinstance(body, bytes):
                if body:
                    conn.send(body)
            else:
                for chunk in body:
                    conn.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered early and closed; its answer is still to be read
        r = conn.getresponse()
        hdrs = {}
        for k, v in r.getheaders():
            k = k.lower()
            hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
        if keep_body:
            return Resp(r.status, hdrs, r.read())
        sha = hashlib.sha256()
        n = 0
        while True:
            b = r.read(MiB)
            if not b:
                break
            sha.update(b)
            n += len(b)
        return Resp(r.status, hdrs, b"", sha.hexdigest(), n)
    finally:
        conn.close()


class Side:
    def __init__(self, name, endpoint, creds, bucket, vbucket):
        self.name = name
        self.endpoint = endpoint
        self.creds = creds
        self.bucket = bucket
        self.vbucket = vbucket
        self.state = {}

    def path(self, key, bucket=None):
        return f"/{bucket or self.bucket}/{enc_key(key)}"

    def raw(self, method, key, *, bucket=None, query=(), headers=None, body=b"", payload_hash=None, **kw):
        return request(self.endpoint, method, self.path(key, bucket), query, headers, body, self.creds,
                       payload_hash, **kw)

    def boto(self, **config):
        cfg = {"signature_version": "s3v4", "s3": {"addressing_style": "path"},
               "retries": {"total_max_attempts": 1}, "read_timeout": 300}
        cfg.update(config)
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.creds[0],
                            aws_secret_access_key=self.creds[1], region_name=REGION, config=Config(**cfg))


def outcome(fn):
    """(status, code, response) of a boto3 call."""
    try:
        r = fn()
        return r["ResponseMetadata"]["HTTPStatusCode"], None, r
    except ClientError as e:
        return e.response["ResponseMetadata"]["HTTPStatusCode"], e.response["Error"].get("Code"), e.response


def from_raw(r):
    return r.status, (r.code() if r.status >= 300 else None), r


# ------------------------------------------------------------------------------------------
# Bodies and body signing
# ------------------------------------------------------------------------------------------

def chunks_of(data, size=64 * 1024):
    return [data[i:i + size] for i in range(0, len(data), size)]


def put_signed(side, key, data, headers=None, signing="signed"):
    """A raw PutObject with the body signed as `signing` says."""
    headers = dict(headers or {})
    host = side.endpoint.split("//", 1)[1]
    if signing == "signed":
        return side.raw("PUT", key, headers=headers, body=data)
    if signing == "unsigned":
        return side.raw("PUT", key, headers=headers, body=data, payload_hash="UNSIGNED-PAYLOAD")
    path = side.path(key)
    if signing == "chunked":
        parts = chunks_of(data) + [b""]
        enc_len = sum(len(f"{len(c):x}") + len(";chunk-signature=") + 64 + 4 + len(c) for c in parts)
        headers.update({"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                        "content-length": str(enc_len)})
        headers, prev, scope, amz_date, skey = sign("PUT", host, path, (), headers,
                                                   "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", side.creds)
        out = []
        for c in parts:
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256,
                             hashlib.sha256(c).hexdigest()])
            prev = hmac.new(skey, sts.encode(), hashlib.sha256).hexdigest()
            out.append(f"{len(c):x};chunk-signature={prev}\r\n".encode() + c + b"\r\n")
        body = b"".join(out)
        assert len(body) == enc_len
        return from_raw(request(side.endpoint, "PUT", path, (), headers, body))
    if signing == "trailer":
        crc = base64.b64encode((binascii.crc32(data) & 0xFFFFFFFF).to_bytes(4, "big")).decode()
        out = [f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks_of(data)]
        out.append(f"0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode())
        body = b"".join(out)
        headers.update({"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(data)),
                        "x-amz-trailer": "x-amz-checksum-crc32", "content-length": str(len(body))})
        headers, *_ = sign("PUT", host, path, (), headers, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", side.creds)
        return from_raw(request(side.endpoint, "PUT", path, (), headers, body))
    raise ValueError(signing)


def _raw_outcome(r):
    return r if isinstance(r, tuple) else from_raw(r)


# ------------------------------------------------------------------------------------------
# Comparing reads
# ------------------------------------------------------------------------------------------

def header_diffs(got, want, skip=()):
    diffs, notes = [], []
    for name in sorted(set(got.headers) | set(want.headers)):
        if name in IGNORED or name in skip:
            continue
        g, w = got.headers.get(name), want.headers.get(name)
        if g == w:
            continue
        (diffs if describing(name) else notes).append(f"{name}: {g!r} != {w!r}")
    return diffs, notes


def compare(label, got, want, skip=()):
    diffs = []
    if got.status != want.status:
        diffs.append(f"status {got.status} != {want.status}")
    if got.status >= 300 or want.status >= 300:
        if got.code() != want.code():
            diffs.append(f"error code {got.code()!r} != {want.code()!r}")
    elif (got.sha, got.length) != (want.sha, want.length):
        diffs.append(f"body differs ({got.length} bytes, want {want.length})")
    if got.status >= 300 or want.status >= 300:
        # An error's XML names the request: its length is not the object's.
        skip = tuple(skip) + ("content-length",)
    d, notes = header_diffs(got, want, skip=skip)
    diffs += d
    return [f"{label}: {x}" for x in diffs], [f"{label}: {x}" for x in notes]


def sse_c_headers(key_bytes):
    return {
        "x-amz-server-side-encryption-customer-algorithm": "AES256",
        "x-amz-server-side-encryption-customer-key": base64.b64encode(key_bytes).decode(),
        "x-amz-server-side-encryption-customer-key-md5": base64.b64encode(hashlib.md5(key_bytes).digest()).decode(),
    }


def read_checks(cell, reads):
    """Reads through s3cached (miss, hit; plain and checksum mode) against the origin."""
    diffs, notes, served = [], [], []
    for rd in reads:
        key = rd["key"]
        bucket = rd.get("bucket", P.bucket)
        hdrs = dict(rd.get("headers", {}))
        query = list(rd.get("query", []))
        tag = rd.get("label", key)
        for mode in ("plain", "checksum"):
            h = dict(hdrs)
            if mode == "checksum":
                h["x-amz-checksum-mode"] = "ENABLED"
            want = request(ORIGIN, "GET", P.path(key, bucket), query, h, b"", ORIGIN_CREDS, keep_body=False)
            for attempt in ("1st", "2nd"):
                got = P.raw("GET", key, bucket=bucket, query=query, headers=h, keep_body=False)
                served.append(got.headers.get("x-s3cached", "-"))
                d, n = compare(f"GET {tag} via s3cached ({mode}, {attempt})", got, want)
                diffs += d
                notes += n
        # The origin's copies of both writes agree (same bytes, same description).
        if "oquery" in rd or not query:
            oquery = rd.get("oquery", query)
            obucket = rd.get("obucket", O.bucket)
            mine = request(ORIGIN, "GET", P.path(key, bucket), query, hdrs, b"", ORIGIN_CREDS, keep_body=False)
            theirs = request(ORIGIN, "GET", O.path(key, obucket), oquery, hdrs, b"", ORIGIN_CREDS,
                             keep_body=False)
            if theirs.headers.get("content-encoding") == "aws-chunked" and "content-encoding" not in mine.headers:
                # SeaweedFS stores the framing of an aws-chunked upload sent to it directly as the
                # object's Content-Encoding; S3 does not (aws-chunked is not part of the object),
                # and s3cached sends the origin the decoded body. Reported, not compared.
                del theirs.headers["content-encoding"]
                notes.append(f"origin copy of {tag}: direct upload stored Content-Encoding: aws-chunked: "
                             "SeaweedFS keeps the transfer framing; via s3cached it is not stored")
            d, _ = compare(f"origin copy of {tag}, written via s3cached vs direct", mine, theirs,
                           skip=("last-modified", "x-amz-version-id"))
            diffs += d
    return diffs, notes, served


# ------------------------------------------------------------------------------------------
# The cells
# ------------------------------------------------------------------------------------------

RESULTS = []


def seed_old(key, bucket_p=None, bucket_o=None):
    """An old object under `key` on both sides, cached by s3cached (so a stale answer shows)."""
    old = b"old object " + key.encode() + os.urandom(16)
    po = P.boto_origin
    po.put_object(Bucket=bucket_p or P.bucket, Key=key, Body=old)
    po.put_object(Bucket=bucket_o or O.bucket, Key=key, Body=old)
    r = P.raw("GET", key, bucket=bucket_p)
    if r.status != 200:
        raise AssertionError(f"caching the old object {key!r}: HTTP {r.status}")
    P.raw("GET", key, bucket=bucket_p)


def cell(client, signing, size, op, key, write, reads=None, replace=False, expect=None):
    """Runs `write(side)` -> (status, code, extra) on both sides and compares."""
    name = f"{client} | {signing} | {size} | {op}"
    if not ONLY.search(name):
        return
    started = time.time()
    diffs, notes, served = [], [], []
    try:
        if replace:
            seed_old(key)
        p = _raw_outcome(write(P))
        o = _raw_outcome(write(O))
        if (p[0], p[1]) != (o[0], o[1]):
            diffs.append(f"write: s3cached {p[0]} {p[1] or ''} != origin {o[0]} {o[1] or ''}")
        if expect is not None and o[0] != expect:
            notes.append(f"origin answered {o[0]} {o[1] or ''} (expected {expect})")
        if reads is None:
            reads = [{"key": key}]
        elif callable(reads):
            reads = reads(p, o)
        d, n, served = read_checks(name, reads)
        diffs += d
        notes += n
    except Exception as e:  # a crashed cell is a failed cell
        import traceback
        diffs.append(f"exception: {e!r}\n{traceback.format_exc()}")
        p = o = ("-", None, None)
    RESULTS.append({
        "cell": name, "client": client, "signing": signing, "size": size, "op": op,
        "proxy": f"{p[0]}{' ' + p[1] if p[1] else ''}", "origin": f"{o[0]}{' ' + o[1] if o[1] else ''}",
        "served": "/".join(served[:4]), "ok": not diffs, "diffs": diffs, "notes": notes,
        "secs": round(time.time() - started, 1),
    })
    status = "ok" if not diffs else "DIFFERS"
    print(f"[{status}] {name}: s3cached {RESULTS[-1]['proxy']}, origin {RESULTS[-1]['origin']}, "
          f"reads {RESULTS[-1]['served']} ({RESULTS[-1]['secs']} s)", flush=True)
    for d in diffs:
        print(f"    DIFF {d}", flush=True)
    for n in sorted({n for n in notes if "aws-chunked" in n}):
        print(f"    note {n}", flush=True)
    # SeaweedFS's own seaweed-* headers are left out here; the summary after the table lists them.
    other = sorted({n.split(": ", 2)[1] for n in notes if n.count(": ") >= 2 and "aws-chunked" not in n}
                   - {n.split(": ", 2)[1] for n in notes if n.split(": ", 2)[1].startswith("seaweed-")})
    if other:
        print(f"    note: headers outside the compared set differ: {', '.join(other)}", flush=True)


def size_name(n):
    names = {0: "0", 1: "1 B", 8 * MiB - 1: "8 MiB-1", 8 * MiB: "8 MiB", 8 * MiB + 1: "8 MiB+1",
             16 * MiB: "16 MiB", 64 * MiB: "64 MiB", 1024 * MiB: "1 GiB"}
    if n in names:
        return names[n]
    return f"{n} B" if n < 1024 else f"{n / 1024:g} KiB" if n < MiB else f"{n / MiB:g} MiB"


def boto_put(side, config, key, data, **kw):
    c = side.boto(**config)
    return outcome(lambda: c.put_object(Bucket=side.bucket, Key=key, Body=data, **kw))


def aws_cli(side, args):
    """The aws cli (v1) of the virtualenv, path-style, one attempt."""
    home = os.path.abspath(f"awscli-{side.name}")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "config"), "w") as f:
        f.write("[default]\ns3 =\n    addressing_style = path\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({
        "AWS_ACCESS_KEY_ID": side.creds[0], "AWS_SECRET_ACCESS_KEY": side.creds[1],
        "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.path.join(home, "config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.path.join(home, "credentials"), "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard", "AWS_EC2_METADATA_DISABLED": "true", "AWS_PAGER": "", "HOME": home,
    })
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    r = subprocess.run([aws, *args, "--endpoint-url", side.endpoint], env=env, capture_output=True, text=True,
                       timeout=300)
    if r.returncode != 0:
        m = re.search(r"\(([A-Za-z]+)\)", r.stderr)
        return f"exit {r.returncode}", (m.group(1) if m else r.stderr.strip()[-200:]), None
    return 200, None, r.stdout


def matrix():
    sizes_all = [0, 1, 8 * MiB - 1, 8 * MiB, 8 * MiB + 1]
    data_of = {}

    def data(n):
        if n not in data_of:
            data_of[n] = os.urandom(n)
        return data_of[n]

    # --- Raw signed requests: the four body signings, across sizes -------------------------
    plan = {
        "signed": sizes_all + [64 * MiB],
        "unsigned": [0, 1, 8 * MiB - 1, 8 * MiB + 1],
        "chunked": [0, 1, 8 * MiB, 8 * MiB + 1, 64 * MiB],
        "trailer": [0, 1, 8 * MiB - 1, 8 * MiB + 1],
    }
    label = {"signed": "signed payload (hex SHA-256)", "unsigned": "UNSIGNED-PAYLOAD",
             "chunked": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "trailer": "STREAMING-UNSIGNED-PAYLOAD-TRAILER crc32"}
    for signing, sizes in plan.items():
        for n in sizes:
            key = f"raw/{signing}/{n}"
            cell("raw", label[signing], size_name(n), "PutObject (replaces a cached object)" if n < 64 * MiB
                 else "PutObject", key, lambda s, key=key, n=n, signing=signing: put_signed(s, key, data(n), signing=signing),
                 replace=n < 64 * MiB)

    # Transfer-Encoding: chunked, no Content-Length (curl -T - and streaming HTTP clients).
    for signing, n in (("signed", 1000), ("unsigned", 8 * MiB + 1)):
        key = f"raw/te-chunked/{signing}/{n}"
        cell("raw", label[signing] + ", Transfer-Encoding: chunked", size_name(n),
             "PutObject without Content-Length (replaces a cached object)", key,
             lambda s, key=key, n=n, signing=signing: s.raw(
                 "PUT", key, body=data(n), chunked=True,
                 payload_hash=None if signing == "signed" else "UNSIGNED-PAYLOAD"), replace=True)

    # --- boto3 ---------------------------------------------------------------------------
    boto_plan = [
        ("boto3 default", {}, {}, [0, 1, 8 * MiB, 8 * MiB + 1, 64 * MiB]),
        ("boto3 checksum SHA256", {}, {"ChecksumAlgorithm": "SHA256"}, [1, 8 * MiB + 1]),
        ("boto3 checksum CRC32", {}, {"ChecksumAlgorithm": "CRC32"}, [1, 8 * MiB]),
        ("boto3 checksum SHA1", {}, {"ChecksumAlgorithm": "SHA1"}, [1]),
        ("boto3 when_required", {"request_checksum_calculation": "when_required"}, {}, [1, 8 * MiB + 1]),
    ]
    for client, cfg, kw, sizes in boto_plan:
        for n in sizes:
            key = f"boto/{client.replace(' ', '-')}/{n}"
            cell(client, "botocore default", size_name(n), "PutObject" + (" (replaces a cached object)" if n < 64 * MiB else ""),
                 key, lambda s, key=key, n=n, cfg=cfg, kw=kw: boto_put(s, cfg, key, data(n), **kw), replace=n < 64 * MiB)
    # CRC64NVME needs awscrt, which the test virtualenv does not have.
    try:
        import awscrt  # noqa: F401
        have_crt = True
    except ImportError:
        have_crt = False
    if have_crt:
        cell("boto3 checksum CRC64NVME", "botocore default", "1 B", "PutObject", "boto/crc64",
             lambda s: boto_put(s, {}, "boto/crc64", data(1), ChecksumAlgorithm="CRC64NVME"), replace=True)
    else:
        print("note: botocore without awscrt: no CRC64NVME cell", flush=True)

    # --- aws cli ---------------------------------------------------------------------------
    tmp = os.path.abspath("cli-bodies")
    os.makedirs(tmp, exist_ok=True)
    for n in (1, 8 * MiB + 1):
        path = os.path.join(tmp, f"{n}.bin")
        with open(path, "wb") as f:
            f.write(data(n))
        key = f"cli/cp/{n}"
        cell("aws cli s3 cp", "cli default" + (" (multipart, 8 MiB parts)" if n > 8 * MiB else ""), size_name(n),
             ("PutObject" if n <= 8 * MiB else "multipart upload") + " (replaces a cached object)", key,
             lambda s, key=key, path=path: aws_cli(s, ["s3", "cp", path, f"s3://{s.bucket}/{key}"]), replace=True)
    path0 = os.path.join(tmp, "0.bin")
    open(path0, "wb").close()
    cell("aws cli s3api put-object", "cli default", "0", "PutObject (replaces a cached object)", "cli/api/0",
         lambda s: aws_cli(s, ["s3api", "put-object", "--bucket", s.bucket, "--key", "cli/api/0", "--body", path0]),
         replace=True)
    path_big = os.path.join(tmp, f"{8 * MiB + 1}.bin")
    cell("aws cli s3api put-object", "cli default", "8 MiB+1", "PutObject with metadata and Content-* headers",
         "cli/api/meta",
         lambda s: aws_cli(s, ["s3api", "put-object", "--bucket", s.bucket, "--key", "cli/api/meta", "--body", path_big,
                               "--content-type", "text/x-matrix", "--cache-control", "no-cache",
                               "--content-disposition", "inline", "--content-language", "fr",
                               "--metadata", "shade=teal,count=3"]), replace=True)

    # --- PutObject options --------------------------------------------------------------
    small = data(1000)
    md5 = base64.b64encode(hashlib.md5(small).digest()).decode()
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    cell("raw", "signed payload (hex SHA-256)", "1000 B", "PutObject Content-MD5 right", "opt/md5-right",
         lambda s: put_signed(s, "opt/md5-right", small, {"content-md5": md5}), replace=True)
    cell("raw", "signed payload (hex SHA-256)", "1000 B", "PutObject Content-MD5 wrong", "opt/md5-wrong",
         lambda s: put_signed(s, "opt/md5-wrong", small, {"content-md5": wrong}), replace=True, expect=400)
    cell("raw", "UNSIGNED-PAYLOAD", "1000 B", "PutObject Content-MD5 wrong", "opt/md5-wrong-unsigned",
         lambda s: put_signed(s, "opt/md5-wrong-unsigned", small, {"content-md5": wrong}, signing="unsigned"),
         replace=True, expect=400)
    meta_kw = dict(Metadata={"color": "blue", "owner": "matrix"}, ContentType="application/x-matrix",
                   ContentEncoding="gzip", ContentDisposition='attachment; filename="a b.txt"',
                   ContentLanguage="de-CH", CacheControl="max-age=60, private",
                   Expires=datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc))
    cell("boto3 default", "botocore default", "1000 B", "PutObject with metadata, Content-*, Cache-Control, Expires",
         "opt/meta", lambda s: boto_put(s, {}, "opt/meta", small, **meta_kw), replace=True)
    cell("raw", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "1000 B", "PutObject with metadata and Content-* headers",
         "opt/meta-chunked", lambda s: put_signed(s, "opt/meta-chunked", small, {
             "x-amz-meta-color": "green", "content-type": "text/x-chunked", "content-disposition": "inline",
             "content-language": "en", "cache-control": "no-store", "expires": "Wed, 02 Jan 2030 03:04:05 GMT"},
             signing="chunked"), replace=True)
    cell("boto3 default", "botocore default", "1000 B", "PutObject with Tagging", "opt/tags",
         lambda s: boto_put(s, {}, "opt/tags", small, Tagging="a=1&b=two"), replace=True)
    cell("boto3 default", "botocore default", "9 MiB", "PutObject with Tagging", "opt/tags-big",
         lambda s: boto_put(s, {}, "opt/tags-big", data(9 * MiB), Tagging="a=1"), replace=True)

    ssec_key = os.urandom(32)
    ssec = sse_c_headers(ssec_key)
    ssec_reads = [{"key": "opt/ssec", "headers": ssec, "label": "opt/ssec with the SSE-C key"},
                  {"key": "opt/ssec", "label": "opt/ssec without the SSE-C key"}]
    cell("boto3 default", "botocore default", "1000 B", "PutObject with SSE-C", "opt/ssec",
         lambda s: boto_put(s, {}, "opt/ssec", small, SSECustomerAlgorithm="AES256", SSECustomerKey=ssec_key),
         reads=ssec_reads, replace=True)
    ssec_big = [{"key": "opt/ssec-big", "headers": ssec, "label": "opt/ssec-big with the SSE-C key"}]
    cell("raw", "UNSIGNED-PAYLOAD", "8 MiB+1", "PutObject with SSE-C", "opt/ssec-big",
         lambda s: put_signed(s, "opt/ssec-big", data(8 * MiB + 1), ssec, signing="unsigned"), reads=ssec_big,
         replace=True)

    # Conditional writes.
    cell("boto3 default", "botocore default", "1000 B", "PutObject If-None-Match: * (new key)", "cond/inm-new",
         lambda s: boto_put(s, {}, "cond/inm-new", small, IfNoneMatch="*"))
    cell("boto3 default", "botocore default", "1000 B", "PutObject If-None-Match: * (existing key)", "cond/inm-old",
         lambda s: boto_put(s, {}, "cond/inm-old", small, IfNoneMatch="*"), replace=True, expect=412)

    def if_match(s, key, right):
        etag = s.boto_origin.head_object(Bucket=s.bucket, Key=key)["ETag"] if right else '"0123456789abcdef0123456789abcdef"'
        return put_signed(s, key, small, {"if-match": etag})

    cell("raw", "signed payload (hex SHA-256)", "1000 B", "PutObject If-Match (right ETag)", "cond/im-right",
         lambda s: if_match(s, "cond/im-right", True), replace=True)
    cell("raw", "signed payload (hex SHA-256)", "1000 B", "PutObject If-Match (wrong ETag)", "cond/im-wrong",
         lambda s: if_match(s, "cond/im-wrong", False), replace=True, expect=412)

    # --- CopyObject and multipart -------------------------------------------------------
    src16 = data(16 * MiB)
    for s in (P, O):
        s.boto_origin.put_object(Bucket=s.bucket, Key="copy/src16", Body=src16)
        s.boto_origin.put_object(Bucket=s.bucket, Key="copy/src-small", Body=small, ContentType="text/x-src",
                                 Metadata={"from": "source"})

    def copy(s, key, src, **kw):
        c = s.boto()
        return outcome(lambda: c.copy_object(Bucket=s.bucket, Key=key, CopySource={"Bucket": s.bucket, "Key": src}, **kw))

    cell("boto3 default", "botocore default", "1000 B", "CopyObject (COPY metadata)", "copy/dst-copy",
         lambda s: copy(s, "copy/dst-copy", "copy/src-small"), replace=True)
    cell("boto3 default", "botocore default", "1000 B", "CopyObject MetadataDirective REPLACE", "copy/dst-replace",
         lambda s: copy(s, "copy/dst-replace", "copy/src-small", MetadataDirective="REPLACE",
                        ContentType="text/x-replaced", Metadata={"new": "yes"}), replace=True)
    cell("boto3 default", "botocore default", "16 MiB", "CopyObject (16 MiB source)", "copy/dst-16",
         lambda s: copy(s, "copy/dst-16", "copy/src16"), replace=True)
    cell("raw", "signed payload (hex SHA-256)", "1000 B", "CopyObject onto itself (REPLACE)", "copy/src-small",
         lambda s: s.raw("PUT", "copy/src-small", headers={
             "x-amz-copy-source": f"/{s.bucket}/copy/src-small", "x-amz-metadata-directive": "REPLACE",
             "content-type": "text/x-self"}), replace=True)

    part5 = data(5 * MiB)

    def multipart(s, key, copy_part=False, abort=False):
        c = s.boto()
        up = c.create_multipart_upload(Bucket=s.bucket, Key=key, ContentType="text/x-multipart",
                                       Metadata={"mp": "yes"})
        uid = up["UploadId"]
        parts = []
        if copy_part:
            for i, rng in enumerate(["bytes=0-5242879", f"bytes=5242880-{16 * MiB - 1}"], start=1):
                r = c.upload_part_copy(Bucket=s.bucket, Key=key, UploadId=uid, PartNumber=i,
                                       CopySource={"Bucket": s.bucket, "Key": "copy/src16"}, CopySourceRange=rng)
                parts.append({"PartNumber": i, "ETag": r["CopyPartResult"]["ETag"]})
        else:
            for i, body in enumerate([part5, small], start=1):
                r = c.upload_part(Bucket=s.bucket, Key=key, UploadId=uid, PartNumber=i, Body=body)
                parts.append({"PartNumber": i, "ETag": r["ETag"]})
        lp = c.list_parts(Bucket=s.bucket, Key=key, UploadId=uid)
        s.state[key] = [(p["PartNumber"], p["ETag"], p["Size"]) for p in lp.get("Parts", [])]
        if abort:
            st = outcome(lambda: c.abort_multipart_upload(Bucket=s.bucket, Key=key, UploadId=uid))
            after = outcome(lambda: c.list_parts(Bucket=s.bucket, Key=key, UploadId=uid))
            s.state[key + "/after-abort"] = (after[0], after[1])
            return st
        return outcome(lambda: c.complete_multipart_upload(Bucket=s.bucket, Key=key, UploadId=uid,
                                                           MultipartUpload={"Parts": parts}))

    def parts_agree(key):
        def reads(p, o):
            if P.state.get(key) != O.state.get(key):
                raise AssertionError(f"ListParts: s3cached {P.state.get(key)} != origin {O.state.get(key)}")
            if P.state.get(key + "/after-abort") != O.state.get(key + "/after-abort"):
                raise AssertionError(f"ListParts after Abort: s3cached {P.state.get(key + '/after-abort')} "
                                     f"!= origin {O.state.get(key + '/after-abort')}")
            return [{"key": key}]
        return reads

    cell("boto3 default", "botocore default", "5 MiB + 1000 B", "Create/UploadPart/ListParts/Complete", "mp/upload",
         lambda s: multipart(s, "mp/upload"), reads=parts_agree("mp/upload"), replace=True)
    cell("boto3 default", "botocore default", "16 MiB", "UploadPartCopy x2, ListParts, Complete", "mp/copy",
         lambda s: multipart(s, "mp/copy", copy_part=True), reads=parts_agree("mp/copy"), replace=True)
    cell("boto3 default", "botocore default", "5 MiB + 1000 B", "Create/UploadPart/ListParts/Abort", "mp/abort",
         lambda s: multipart(s, "mp/abort", abort=True), reads=parts_agree("mp/abort"), replace=True)

    # --- DeleteObjects with 1,000 keys -------------------------------------------------
    keys = [f"del/{i:04d}" for i in range(1000)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kb: P.boto_origin.put_object(Bucket=kb[1], Key=kb[0], Body=kb[0].encode()),
                      [(k, b) for k in keys for b in (P.bucket, O.bucket)]))
    cached = keys[:3] + keys[500:502] + keys[-2:]
    for k in cached:
        P.raw("GET", k)
        P.raw("GET", k)

    def delete_many(s):
        c = s.boto()
        st = outcome(lambda: c.delete_objects(Bucket=s.bucket, Delete={"Objects": [{"Key": k} for k in keys]}))
        if st[0] == 200:
            resp = st[2]
            s.state["deleted"] = (len(resp.get("Deleted", [])), len(resp.get("Errors", [])))
            s.state["left"] = s.boto_origin.list_objects_v2(Bucket=s.bucket, Prefix="del/").get("KeyCount", 0)
        return st

    def deleted_reads(p, o):
        if (P.state.get("deleted"), P.state.get("left")) != (O.state.get("deleted"), O.state.get("left")):
            raise AssertionError(f"DeleteObjects (deleted, errors), left: s3cached {P.state.get('deleted')}, "
                                 f"{P.state.get('left')} != origin {O.state.get('deleted')}, {O.state.get('left')}")
        return [{"key": k} for k in cached]

    cell("boto3 default", "botocore default", "1,000 keys", "DeleteObjects (7 of them cached)", "del/*",
         delete_many, reads=deleted_reads)

    # --- A versioned bucket --------------------------------------------------------------
    def versions(s):
        c = s.boto()
        v1 = c.put_object(Bucket=s.vbucket, Key="v/obj", Body=b"version one", ContentType="text/x-v1")["VersionId"]
        v2 = c.put_object(Bucket=s.vbucket, Key="v/obj", Body=b"version two, longer")["VersionId"]
        s.state["versions"] = (v1, v2)
        return 200, None, None

    def version_reads(p, o):
        (v1, v2), (ov1, ov2) = P.state["versions"], O.state["versions"]
        return [
            {"key": "v/obj", "bucket": P.vbucket, "obucket": O.vbucket, "label": "v/obj (latest)"},
            {"key": "v/obj", "bucket": P.vbucket, "obucket": O.vbucket, "query": [("versionId", v1)],
             "oquery": [("versionId", ov1)], "label": "v/obj?versionId=v1"},
            {"key": "v/obj", "bucket": P.vbucket, "obucket": O.vbucket, "query": [("versionId", v2)],
             "oquery": [("versionId", ov2)], "label": "v/obj?versionId=v2"},
        ]

    cell("boto3 default", "botocore default", "11 B, 19 B", "PutObject x2 in a versioned bucket", "v/obj",
         versions, reads=version_reads)

    def delete_latest(s):
        c = s.boto()
        return outcome(lambda: c.delete_object(Bucket=s.vbucket, Key="v/obj"))

    cell("boto3 default", "botocore default", "-", "DeleteObject (delete marker) in a versioned bucket", "v/obj",
         delete_latest, reads=version_reads)

    def delete_version(s):
        c = s.boto()
        return outcome(lambda: c.delete_object(Bucket=s.vbucket, Key="v/obj", VersionId=s.state["versions"][0]))

    cell("boto3 default", "botocore default", "-", "DeleteObject of an old version (cached first)", "v/obj",
         delete_version, reads=version_reads)

    # --- GetObjectAttributes -------------------------------------------------------------
    def attributes(s):
        c = s.boto()
        st = outcome(lambda: c.get_object_attributes(
            Bucket=P.bucket, Key="mp/upload",
            ObjectAttributes=["ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize"]))
        s.state["attrs"] = {k: v for k, v in (st[2] or {}).items() if k not in ("ResponseMetadata", "Error")}
        return st

    def attrs_agree(p, o):
        if P.state["attrs"] != O.state["attrs"]:
            raise AssertionError(f"GetObjectAttributes: s3cached {P.state['attrs']} != origin {O.state['attrs']}")
        return []

    # Both sides ask about the same object (the multipart one written through s3cached).
    cell("boto3 default", "botocore default", "-", "GetObjectAttributes (same object)", "mp/upload", attributes,
         reads=attrs_agree)

    # --- Object keys -----------------------------------------------------------------------
    for key in [" ", "%", "+", "?", "#", "ключ/é ✓", "a//b", "/leading", "sp ace+plus%25"]:
        cell("raw", "signed payload (hex SHA-256)", "100 B", f"PutObject key {key!r}", key,
             lambda s, key=key: put_signed(s, key, data(100)))
    cell("raw", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "100 B", "PutObject key ' ' (replaces a cached object)", " ",
         lambda s: put_signed(s, " ", data(100)[::-1], signing="chunked"), replace=True)
    cell("boto3 default", "botocore default", "100 B", "PutObject key ' +%#?'", " +%#?",
         lambda s: boto_put(s, {}, " +%#?", data(100)))


def rust_cells():
    """Cells the Rust test wrote with aws-sdk-s3 (RUST_CELLS): only the reads run here."""
    for c in json.loads(ENV.get("RUST_CELLS", "[]")):
        def write(s, c=c):
            side = c["proxy"] if s is P else c["origin"]
            return side["status"], side.get("code"), None
        cell("Rust aws-sdk-s3", c["signing"], c["size"], c["op"], c["key"], write)


def print_table():
    rows = [[r["client"], r["signing"], r["size"], r["op"], r["proxy"], r["origin"], r["served"],
             "ok" if r["ok"] else "DIFFERS"] for r in RESULTS]
    heads = ["client", "body signing", "size", "operation", "via s3cached", "direct", "x-s3cached of the 4 GETs",
             "result"]
    widths = [max(len(str(x)) for x in col) for col in zip(heads, *rows)]
    line = lambda xs: "| " + " | ".join(str(x).ljust(w) for x, w in zip(xs, widths)) + " |"
    print()
    print(line(heads))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    print()


# ------------------------------------------------------------------------------------------
# Aborted uploads (disconnects mid-upload) and the one 1 GiB upload: s3cached's memory
# ------------------------------------------------------------------------------------------

def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def abort_upload(key, total, sent, signing, rst):
    host = PROXY.split("//", 1)[1]
    path = P.path(key)
    headers = {"content-length": str(total)}
    if signing == "chunked":
        # The declared encoded length of 64 KiB chunks; the client dies long before the end.
        n_chunks = (total + 65535) // 65536
        enc = n_chunks * (len("10000") + 17 + 64 + 4 + 65536) + (1 + 17 + 64 + 4)
        headers = {"content-encoding": "aws-chunked", "x-amz-decoded-content-length": str(total),
                   "content-length": str(enc)}
        headers, prev, scope, amz_date, skey = sign("PUT", host, path, (), headers,
                                                   "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", CLIENT_CREDS)
    else:
        headers, *_ = sign("PUT", host, path, (), headers, "UNSIGNED-PAYLOAD", CLIENT_CREDS)
    h, p = host.rsplit(":", 1)
    sock = socket.create_connection((h, int(p)), timeout=30)
    head = f"PUT {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    sock.sendall(head.encode())
    block = os.urandom(65536)
    done = 0
    while done < sent:
        if signing == "chunked":
            sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, EMPTY_SHA256,
                             hashlib.sha256(block).hexdigest()])
            prev = hmac.new(skey, sts.encode(), hashlib.sha256).hexdigest()
            sock.sendall(f"10000;chunk-signature={prev}\r\n".encode() + block + b"\r\n")
        else:
            sock.sendall(block)
        done += len(block)
    if rst:
        import struct
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def disconnect():
    pid = int(ENV["PROXY_PID"])
    rounds = int(ENV.get("ROUNDS", "100"))
    warmup = 5
    failures = []
    before = None
    started = time.time()
    for i in range(warmup + rounds):
        key = f"abort/{i % 10}"
        old = None
        # The old object is written (or deleted) through s3cached, so the cache knows of it.
        if i % 2 == 0:
            old = f"old {i}".encode() + os.urandom(10)
            r = P.raw("PUT", key, body=old)
        else:
            r = P.raw("DELETE", key)
        if r.status not in (200, 204):
            failures.append(f"round {i}: preparing {key} through s3cached: HTTP {r.status} {r.code()}")
        P.raw("GET", key)  # cache the old object (or its absence)
        # aws-chunked uploads are cut earlier: their chunk signatures make them slower to send.
        signing = "chunked" if i % 4 == 0 else "unsigned"
        sent = random.randint(1, 8 if signing == "chunked" else 32) * MiB
        abort_upload(key, 64 * MiB, sent, signing, rst=i % 3 == 0)
        want = request(ORIGIN, "GET", P.path(key), (), {}, b"", ORIGIN_CREDS)
        if old is None and want.status != 404:
            failures.append(f"round {i}: origin has an object after an aborted upload of a new key: {want.status}")
        if old is not None and (want.status != 200 or want.body != old):
            failures.append(f"round {i}: origin lost the old object: HTTP {want.status}, {len(want.body)} bytes")
        got = P.raw("GET", key)
        d, _ = compare(f"round {i} ({signing}, {sent // MiB} MiB of 64 sent) GET {key}", got, want)
        failures += d
        if i == warmup - 1:
            time.sleep(1)
            before = rss_kib(pid)
    time.sleep(2)
    after = rss_kib(pid)
    hwm = rss_kib(pid, "VmHWM")
    print(f"aborted uploads: {rounds} rounds (+{warmup} warm-up) of 64 MiB PUTs cut after 1..32 MiB (aws-chunked: 1..8 MiB) in "
          f"{time.time() - started:.1f} s", flush=True)
    print(f"s3cached VmRSS after warm-up: {before / 1024:.1f} MiB; after {rounds} rounds: {after / 1024:.1f} MiB; "
          f"VmHWM {hwm / 1024:.1f} MiB", flush=True)
    margin = 64 * 1024
    if after > before + margin:
        failures.append(f"RSS grew from {before} KiB to {after} KiB over {rounds} aborted uploads (margin {margin} KiB)")
    for f in failures:
        print("DIFF", f, flush=True)
    print(json.dumps({"rss_before_kib": before, "rss_after_kib": after, "hwm_kib": hwm, "rounds": rounds}))
    return not failures


def big():
    pid = int(ENV["PROXY_PID"])
    total = int(ENV.get("BIG_SIZE", str(1024 * MiB)))
    block = os.urandom(4 * MiB)
    sha = hashlib.sha256()
    peak = [rss_kib(pid)]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], rss_kib(pid))
            except Exception:
                pass
            time.sleep(0.05)

    def body():
        for i in range(total // len(block)):
            r = (i * 7919) % len(block)
            chunk = block[r:] + block[:r]
            sha.update(chunk)
            yield chunk

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.time()
    put = P.raw("PUT", "big/1gib", body=body(), payload_hash="UNSIGNED-PAYLOAD", content_length=total,
                timeout=600)
    put_secs = time.time() - start
    start = time.time()
    got = P.raw("GET", "big/1gib", keep_body=False, timeout=600)
    get_secs = time.time() - start
    stop.set()
    sampler.join()
    hwm = rss_kib(pid, "VmHWM")
    head = request(ORIGIN, "HEAD", P.path("big/1gib"), (), {}, b"", ORIGIN_CREDS)
    ok = True
    print(f"1 GiB PUT through s3cached (UNSIGNED-PAYLOAD): HTTP {put.status} in {put_secs:.1f} s; "
          f"GET through s3cached: HTTP {got.status}, {got.length} bytes in {get_secs:.1f} s", flush=True)
    print(f"s3cached peak VmRSS sampled every 50 ms: {peak[0] / 1024:.1f} MiB; VmHWM: {hwm / 1024:.1f} MiB", flush=True)
    if put.status != 200:
        print("DIFF 1 GiB PUT:", put.status, put.body[:500], flush=True)
        ok = False
    if got.status != 200 or got.sha != sha.hexdigest() or got.length != total:
        print(f"DIFF 1 GiB GET: HTTP {got.status}, {got.length} bytes, sha256 {got.sha} (sent {sha.hexdigest()})")
        ok = False
    if head.status != 200 or head.headers.get("content-length") != str(total) or \
            head.headers.get("etag") != got.headers.get("etag"):
        print(f"DIFF origin HEAD: {head.status} {head.headers}, GET ETag {got.headers.get('etag')}")
        ok = False
    gone = P.raw("DELETE", "big/1gib")  # give the origin its disk back
    if gone.status != 204:
        print(f"note: deleting the 1 GiB object: HTTP {gone.status} {gone.code()}")
    limit = 300 * 1024
    if hwm > limit:
        print(f"DIFF s3cached VmHWM {hwm} KiB is over {limit} KiB: the upload or the GET was buffered")
        ok = False
    print(json.dumps({"peak_rss_kib": peak[0], "hwm_kib": hwm, "put_secs": round(put_secs, 1),
                      "get_secs": round(get_secs, 1)}))
    return ok


# ------------------------------------------------------------------------------------------
# Origin errors
# ------------------------------------------------------------------------------------------

def errors():
    ok = True
    bad_proxy = ENV["BAD_PROXY"]
    down_proxy = ENV["DOWN_PROXY"]
    po = P.boto_origin
    po.put_object(Bucket=P.bucket, Key="err/exists", Body=b"x")
    # {mb}: a bucket that does not exist, one per side (SeaweedFS creates a bucket on a
    # PutObject into it, so that case answers 200 on both sides).
    cases = [
        ("NoSuchBucket: GetObjectTagging", "GET", "/{mb}/k", [("tagging", None)], b""),
        ("NoSuchBucket: ListObjectsV2", "GET", "/{mb}", [("list-type", "2")], b""),
        ("NoSuchBucket: DeleteObject", "DELETE", "/{mb}/k", [], b""),
        ("NoSuchBucket: PutObject (SeaweedFS creates the bucket)", "PUT", "/{mb}/k", [], b"data"),
        ("NoSuchKey: GetObjectTagging", "GET", f"/{P.bucket}/err/missing", [("tagging", None)], b""),
        ("NoSuchUpload: ListParts", "GET", f"/{P.bucket}/err/exists", [("uploadId", "no-such-upload")], b""),
        ("InvalidArgument: ListObjects allow-unordered + delimiter", "GET", f"/{P.bucket}",
         [("allow-unordered", "true"), ("delimiter", "/")], b""),
        ("InvalidArgument: GetObjectAttributes without attributes", "GET", f"/{P.bucket}/err/exists",
         [("attributes", None)], b""),
    ]
    rows = []

    def rid_column(r):
        if r.status < 300:
            return "-"
        return "yes" if r.request_id() and r.request_id() == r.headers.get("x-amz-request-id") else "no"

    def row(name, via, direct, require_xml=True):
        nonlocal ok
        diffs = []
        if via.status != direct.status:
            diffs.append(f"status {via.status} != {direct.status}")
        if via.code() != direct.code():
            diffs.append(f"code {via.code()!r} != {direct.code()!r}")
        for who, r in (("s3cached", via), ("origin", direct)):
            if r.status >= 300 and r.request_id() is not None and r.request_id() != r.headers.get("x-amz-request-id"):
                diffs.append(f"{who}: body RequestId {r.request_id()!r} != x-amz-request-id "
                             f"{r.headers.get('x-amz-request-id')!r}")
        if via.status >= 300 and via.request_id() is None and direct.request_id() is not None:
            diffs.append("s3cached's error body has no RequestId")
        rows.append((name, f"{via.status} {via.code() or ''}", f"{direct.status} {direct.code() or ''}",
                     rid_column(via), not diffs))
        print(f"[{'ok' if not diffs else 'DIFFERS'}] {name}: s3cached {via.status} {via.code()}, "
              f"origin {direct.status} {direct.code()}", flush=True)
        for d in diffs:
            print("    DIFF", d, flush=True)
        ok = ok and not diffs

    for i, (name, method, path, query, body) in enumerate(cases):
        via = request(PROXY, method, path.format(mb=f"{P.bucket}-missing-{i}-p"), query, {}, body, CLIENT_CREDS)
        direct = request(ORIGIN, method, path.format(mb=f"{P.bucket}-missing-{i}-o"), query, {}, body,
                         ORIGIN_CREDS)
        row(name, via, direct)

    # A second s3cached whose origin secret is wrong: the origin refuses it; the client sees the
    # origin's refusal, as a client signing with that secret straight to the origin would.
    wrong = (ORIGIN_CREDS[0], "not-the-origin-secret")
    for name, method, path, query, body in [
        ("origin refuses s3cached's signature: GetObjectTagging", "GET", f"/{P.bucket}/err/exists",
         [("tagging", None)], b""),
        ("origin refuses s3cached's signature: PutObject", "PUT", f"/{P.bucket}/err/bad-secret", [], b"data"),
        ("origin refuses s3cached's signature: GetObject (miss)", "GET", f"/{P.bucket}/err/exists", [], b""),
    ]:
        via = request(bad_proxy, method, path, query, {}, body, CLIENT_CREDS)
        direct = request(ORIGIN, method, path, query, {}, body, wrong)
        row(name, via, direct)

    # An origin that is down: a forwarded request answers 503 with an S3 error, in time.
    for name, method, path, query, body in [
        ("origin down: GetObjectTagging", "GET", f"/{P.bucket}/err/exists", [("tagging", None)], b""),
        ("origin down: PutObject", "PUT", f"/{P.bucket}/err/down", [], b"data"),
        ("origin down: GetObject (miss)", "GET", f"/{P.bucket}/err/exists", [], b""),
    ]:
        start = time.time()
        try:
            via = request(down_proxy, method, path, query, {}, body, CLIENT_CREDS, timeout=60)
        except Exception as e:
            print(f"[DIFFERS] {name}: no answer within 60 s: {e!r}", flush=True)
            ok = False
            continue
        secs = time.time() - start
        good = via.status == 503 and via.code() is not None and secs < 30
        rows.append((name, f"{via.status} {via.code() or ''} in {secs:.1f} s", "(origin down)",
                     rid_column(via), good))
        print(f"[{'ok' if good else 'DIFFERS'}] {name}: HTTP {via.status} {via.code()} in {secs:.1f} s: "
              f"{via.body[:300]!r}", flush=True)
        ok = ok and good
    print()
    print("| origin error | via s3cached | direct | RequestId = x-amz-request-id | result |")
    print("|---|---|---|---|---|")
    for name, v, d, rid, good in rows:
        print(f"| {name} | {v} | {d} | {rid} | {'ok' if good else 'DIFFERS'} |")
    return ok


# ------------------------------------------------------------------------------------------

P = Side("proxy", PROXY, CLIENT_CREDS, ENV["PROXY_BUCKET"], ENV.get("PROXY_VBUCKET"))
O = Side("origin", ORIGIN, ORIGIN_CREDS, ENV.get("ORIGIN_BUCKET", ""), ENV.get("ORIGIN_VBUCKET"))
for _s in (P, O):
    _s.boto_origin = boto3.client("s3", endpoint_url=ORIGIN, aws_access_key_id=ORIGIN_CREDS[0],
                                  aws_secret_access_key=ORIGIN_CREDS[1], region_name=REGION,
                                  config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                                max_pool_connections=20))


def main():
    mode = ENV.get("MODE", "matrix")
    t0 = time.time()
    if mode == "matrix":
        for s in (P, O):
            for b in (s.vbucket,):
                s.boto_origin.create_bucket(Bucket=b)
                s.boto_origin.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
        matrix()
        rust_cells()
        print_table()
        other = sorted({n.split(": ", 2)[1] for r in RESULTS for n in r["notes"]
                        if n.count(": ") >= 2 and "aws-chunked" not in n})
        print(f"headers outside the compared set that differ between s3cached's GETs and the origin's: "
              f"{', '.join(other) or 'none'}")
        bad = [r for r in RESULTS if not r["ok"]]
        print(f"{len(RESULTS)} cells, {len(bad)} differ, {time.time() - t0:.0f} s", flush=True)
        for r in bad:
            print(f"DIFFERS: {r['cell']}")
            for d in r["diffs"]:
                print(f"    {d}")
        ok = not bad
    elif mode == "disconnect":
        ok = disconnect()
    elif mode == "big":
        ok = big()
    elif mode == "errors":
        ok = errors()
    else:
        raise SystemExit(f"unknown MODE {mode}")
    print("ALL OK" if ok else "SOME CELLS DIFFER")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
