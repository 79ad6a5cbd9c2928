#!/usr/bin/env bash
# Write and miss-path throughput (not run in CI): the same load against
#   (a) the origin directly (SeaweedFS from the repository's .venv),
#   (b) s3cached in front of it,
#   (c) optionally a baseline s3cached build (BASELINE_BIN), e.g. the previous commit's,
# in one run, each reported as a ratio to the origin direct.
#
# Two phases per target, each DURATION long with CONNS client threads:
#   put:  PutObject of SIZE-byte bodies to fresh keys (presigned PUT URLs, UNSIGNED-PAYLOAD);
#   miss: GetObject of keys written straight to the origin and never read before, so every
#         GET through s3cached is a cache miss (a fill, or a stream-through above the cacheable
#         size).
# The client is Python (urllib3, one connection per thread); it is the same for every target,
# so the ratios compare the servers.
#
# Usage: bench/compare-writes.sh   (environment overrides below)
#   DURATION=10 CONNS=16 SIZE=262144 MISS_OBJECTS=1500
#   S3CACHED_BIN=target/release/s3cached (built when missing)
#   BASELINE_BIN=path/to/another/s3cached
# Installs the .venv with SeaweedFS and boto3 through scripts/test-env.sh when missing.
# Everything listens on 127.0.0.1 and is stopped on exit; the temporary directory is removed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10}"
CONNS="${CONNS:-16}"
SIZE="${SIZE:-262144}"
MISS_OBJECTS="${MISS_OBJECTS:-1500}"
BIN="${S3CACHED_BIN:-$REPO/target/release/s3cached}"
BASELINE_BIN="${BASELINE_BIN:-}"

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
log() { bench_log "$@"; }
bench_init compare-writes
if [ ! -x "$BIN" ]; then
    log "building $BIN"
    (cd "$REPO" && cargo build --release -p s3cached-cli >&2)
fi
start_seaweed
S3P="$SEAWEED_PORT"

# Not in a subshell: the servers' pids must reach the cleanup.
start_s3cached s3cached --memory-capacity 256MiB
targets="origin=$S3P:$ORIGIN_AK:$ORIGIN_SK s3cached=$STARTED_PORT:$CACHE_AK:$CACHE_SK"
if [ -n "$BASELINE_BIN" ]; then
    BIN="$BASELINE_BIN" start_s3cached baseline --memory-capacity 256MiB
    targets="$targets baseline=$STARTED_PORT:$CACHE_AK:$CACHE_SK"
fi

"$PY" - "$S3P" "$ORIGIN_AK" "$ORIGIN_SK" "$DURATION" "$CONNS" "$SIZE" "$MISS_OBJECTS" $targets <<'EOF'
import os, sys, threading, time
import boto3, urllib3
from botocore.config import Config

s3p, oak, osk, duration, conns, size, miss_objects = sys.argv[1:8]
duration, conns, size, miss_objects = float(duration), int(conns), int(size), int(miss_objects)
targets = [(t.split("=")[0], *t.split("=")[1].split(":")) for t in sys.argv[8:]]

def client(port, ak, sk):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id=ak,
                        aws_secret_access_key=sk, region_name="us-east-1",
                        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))

origin = client(s3p, oak, osk)
origin.create_bucket(Bucket="writes")
body = os.urandom(size)

def run(name, urls, method):
    pool = urllib3.PoolManager(maxsize=conns)
    done, failed, lock = [0], [0], threading.Lock()
    stop = time.monotonic() + duration
    def worker(mine):
        for url in mine:
            if time.monotonic() >= stop:
                return
            r = pool.request(method, url, body=body if method == "PUT" else None, preload_content=True, retries=False)
            with lock:
                if r.status == 200 and (method == "PUT" or len(r.data) == size):
                    done[0] += 1
                else:
                    failed[0] += 1
    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(urls[i::conns],)) for i in range(conns)]
    for t in threads: t.start()
    for t in threads: t.join()
    elapsed = time.monotonic() - started
    return done[0] / elapsed, failed[0]

results = {}
for name, port, ak, sk in targets:
    c = client(port, ak, sk)
    # Fresh keys for the misses: written straight to the origin, never read before.
    miss_keys = [f"{name}/miss-{i:06}" for i in range(miss_objects)]
    for k in miss_keys:
        origin.put_object(Bucket="writes", Key=k, Body=body)
    put_urls = [c.generate_presigned_url("put_object", Params={"Bucket": "writes", "Key": f"{name}/put-{i:06}"}, ExpiresIn=3600)
                for i in range(200000 if size <= 65536 else 20000)]
    get_urls = [c.generate_presigned_url("get_object", Params={"Bucket": "writes", "Key": k}, ExpiresIn=3600) for k in miss_keys]
    put_rate, put_failed = run(name, put_urls, "PUT")
    miss_rate, miss_failed = run(name, get_urls, "GET")
    results[name] = (put_rate, miss_rate, put_failed, miss_failed)

base_put, base_miss = results["origin"][0], results["origin"][1]
print(f"size {size} B, {conns} connections, {duration:.0f} s per phase")
print(f"| target | PUT req/s | PUT MB/s | PUT vs origin | miss req/s | miss MB/s | miss vs origin | failed |")
print(f"|---|---|---|---|---|---|---|---|")
for name, (p, m, pf, mf) in results.items():
    print(f"| {name} | {p:.0f} | {p * size / 1e6:.1f} | {p / base_put:.2f}x | {m:.0f} | {m * size / 1e6:.1f} | {m / base_miss:.2f}x | {pf + mf} |")
EOF
