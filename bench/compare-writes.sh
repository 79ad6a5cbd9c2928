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

log() { printf '[compare-writes] %s\n' "$*" >&2; }

if [ ! -x "$REPO/.venv/bin/weed" ] || ! "$REPO/.venv/bin/python" -c 'import boto3' 2>/dev/null; then
    log "setting up .venv (scripts/test-env.sh)"
    bash "$REPO/scripts/test-env.sh" >&2
fi
PY="$REPO/.venv/bin/python"
WEED="$REPO/.venv/bin/weed"
if [ ! -x "$BIN" ]; then
    log "building $BIN"
    (cd "$REPO" && cargo build --release -p s3cached-cli >&2)
fi

WORK="$(mktemp -d /tmp/s3cached-writes.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port_pair() {
    "$PY" - <<'EOF'
import random, socket
for _ in range(500):
    p = random.randint(20000, 55000)
    ok = True
    for q in (p, p + 10000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", q))
        except OSError:
            ok = False
        finally:
            s.close()
    if ok:
        print(p)
        break
EOF
}

wait_http() {
    for _ in $(seq 150); do
        if curl -s -o /dev/null "$1"; then return 0; fi
        sleep 0.2
    done
    log "$2 did not come up at $1"
    return 1
}

ORIGIN_AK="writes-origin"
ORIGIN_SK="writes-origin-secret-0123456789"
CACHE_AK="writes-cache"
CACHE_SK="writes-cache-secret-0123456789"

S3P="$(free_port_pair)"; MP="$(free_port_pair)"; VP="$(free_port_pair)"; FP="$(free_port_pair)"; AP="$(free_port_pair)"
mkdir -p "$WORK/weed"
log "starting SeaweedFS on 127.0.0.1:$S3P"
AWS_ACCESS_KEY_ID="$ORIGIN_AK" AWS_SECRET_ACCESS_KEY="$ORIGIN_SK" \
    "$WEED" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -admin.ui=false -webdav=false \
    -s3.port="$S3P" -s3.port.grpc=$((S3P + 10000)) -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.port="$MP" -master.port.grpc=$((MP + 10000)) \
    -volume.port="$VP" -volume.port.grpc=$((VP + 10000)) \
    -filer.port="$FP" -filer.port.grpc=$((FP + 10000)) \
    -admin.port="$AP" -admin.port.grpc=$((AP + 10000)) \
    -filer.localSocket="$WORK/filer.sock" -s3.localSocket="$WORK/s3.sock" \
    >"$WORK/weed.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$S3P/" "SeaweedFS"

start_cache() { # bin, name -> port on stdout
    local port admin
    port="$(free_port_pair)"; admin="$(free_port_pair)"
    log "starting $2 ($1) on 127.0.0.1:$port"
    "$1" --log-level warn serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        --origin-endpoint "http://127.0.0.1:$S3P" --origin-path-style \
        --origin-access-key "$ORIGIN_AK" --origin-secret-key "$ORIGIN_SK" \
        --access-key "$CACHE_AK" --secret-key "$CACHE_SK" --memory-capacity 256MiB \
        >"$WORK/$2.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$admin/health" "$2" >&2
    echo "$port"
}
CP="$(start_cache "$BIN" s3cached)"
targets="origin=$S3P:$ORIGIN_AK:$ORIGIN_SK s3cached=$CP:$CACHE_AK:$CACHE_SK"
if [ -n "$BASELINE_BIN" ]; then
    BP="$(start_cache "$BASELINE_BIN" baseline)"
    targets="$targets baseline=$BP:$CACHE_AK:$CACHE_SK"
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
