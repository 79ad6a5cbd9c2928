#!/usr/bin/env bash
# Resident memory of a separate `s3cached serve` process (not run in CI):
#   1. full of 64 KiB objects: `s3cached bench --mode load` against it with a working set of
#      twice its memory capacity, while VmRSS is sampled from /proc/PID/status;
#   2. streaming a 1 GiB object (above --max-object-size, so not cached whole) through it with
#      curl, sampling VmRSS every 100 ms: the first GET streams through;
#   3. the same GET again: now it is read as blocks (--block-memory-capacity BLOCK_CAPACITY),
#      filling the block cache, which must stay within its capacity.
# The measured process fronts a second s3cached in development mode (--local-dir) acting as
# the S3 origin, so the measured process uses its real S3 client path (aws-sdk-s3).
#
# Usage: bench/memory-rss.sh      (CAPACITY=256MiB BLOCK_CAPACITY=256MiB FILL_SECS=20 BIG=1GiB)
# Targets: peak RSS <= 1.25 x CAPACITY + 64 MiB when full; the streaming GET does not grow it;
# the GET read as blocks grows it by at most 1.25 x BLOCK_CAPACITY + the read-ahead budget
# (64 MiB) + 64 MiB.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${S3CACHED_BIN:-$REPO/target/release/s3cached}"
CAPACITY="${CAPACITY:-256MiB}"
BLOCK_CAPACITY="${BLOCK_CAPACITY:-256MiB}"
FILL_SECS="${FILL_SECS:-20}"
BIG="${BIG:-1GiB}"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
log() { bench_log "$@"; }
bench_init memory-rss
[ -x "$BIN" ] || (cd "$REPO" && cargo build --release -p s3cached-cli >&2)

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
metric() { curl -s "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 ~ "^"m {s += $2} END {printf "%.0f", s}'; }

AK=rss-key; SK=rss-secret-0123456789
OP="$(port)"; OAP="$(port)"; CP="$(port)"; CAP="$(port)"
log "origin: s3cached serve --local-dir on 127.0.0.1:$OP"
"$BIN" --log-level warn serve --local-dir "$WORK/data" --listen "127.0.0.1:$OP" \
    --admin-listen "127.0.0.1:$OAP" --access-key "$AK" --secret-key "$SK" --memory-capacity 16MiB \
    --max-object-size 1MiB >"$WORK/origin.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$OAP/health" "the origin"
log "measured: s3cached serve --memory-capacity $CAPACITY on 127.0.0.1:$CP"
"$BIN" --log-level warn serve --listen "127.0.0.1:$CP" --admin-listen "127.0.0.1:$CAP" \
    --origin-endpoint "http://127.0.0.1:$OP" --origin-path-style --origin-access-key "$AK" \
    --origin-secret-key "$SK" --access-key "$AK" --secret-key "$SK" \
    --memory-capacity "$CAPACITY" --block-memory-capacity "$BLOCK_CAPACITY" --max-object-size 8MiB \
    --ttl none >"$WORK/cache.log" 2>&1 &
PID=$!
pids+=("$PID")
wait_http "http://127.0.0.1:$CAP/health" "s3cached"
idle="$(rss_kib "$PID")"

bytes_of() { # a size such as 256MiB -> bytes
    "$PY" -c "
s='$1'.lower()
for u,m in (('gib',1<<30),('mib',1<<20),('kib',1<<10),('b',1)):
    if s.endswith(u): print(int(s[:-len(u)])*m); break
else: print(int(s))"
}
cap_bytes="$(bytes_of "$CAPACITY")"
ws=$((cap_bytes * 2))

# --- 1. full of 64 KiB objects --------------------------------------------------
sample() { # pid, file: VmRSS every 100 ms until the file "$2.stop" exists
    while [ ! -e "$2.stop" ]; do rss_kib "$1" >>"$2" 2>/dev/null || break; sleep 0.1; done
}
sample "$PID" "$WORK/fill.rss" &
sampler=$!
log "filling: 64KiB objects, working set $((ws >> 20)) MiB, ${FILL_SECS}s of GETs"
AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY="$SK" "$BIN" --log-level warn bench --mode load \
    --origin-endpoint "http://127.0.0.1:$OP" --cache-endpoint "http://127.0.0.1:$CP" \
    --cache-metrics "http://127.0.0.1:$CAP/metrics" --sizes 64KiB --working-set "$((ws))" \
    --concurrency 8 --duration "${FILL_SECS}s" --warmup 0s --no-origin-baseline \
    --json "$WORK/fill.json" --svg "$WORK/fill.svg" >"$WORK/fill.txt" 2>&1 || {
    cat "$WORK/fill.txt" >&2; exit 1; }
touch "$WORK/fill.rss.stop"; wait "$sampler" || true
full_peak="$(sort -n "$WORK/fill.rss" | tail -n1)"
full_now="$(rss_kib "$PID")"
cached="$(metric "$CAP" 's3cached_cache_bytes')"
entries="$(metric "$CAP" 's3cached_cache_entries')"
hit="$("$PY" -c "import json; d=json.load(open('$WORK/fill.json')); print(round(d['load']['steps'][0]['hit_ratio'] or 0, 3))")"

# --- 2. streaming an uncacheable object ------------------------------------------
log "writing a $BIG object through the origin"
"$PY" - "$OP" "$BIG" "$WORK" "$AK" "$SK" <<'EOF'
import sys, boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
port, big, work, ak, sk = sys.argv[1:6]
n = {"gib": 1 << 30, "mib": 1 << 20}[big[-3:].lower()] * int(big[:-3])
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                 aws_access_key_id=ak, aws_secret_access_key=sk,
                 config=Config(s3={"addressing_style": "path"}))
try:
    c.create_bucket(Bucket="rss")
except Exception:
    pass
class Zeros:
    def __init__(self, n): self.left = n
    def read(self, k=-1):
        k = self.left if k < 0 else min(k, self.left)
        self.left -= k
        return b"\0" * k
c.upload_fileobj(Zeros(n), "rss", "big.bin", Config=TransferConfig(multipart_chunksize=64 << 20))
EOF
url="$("$PY" -c "
import boto3
from botocore.config import Config
c = boto3.client('s3', endpoint_url='http://127.0.0.1:$CP', region_name='us-east-1',
                 aws_access_key_id='$AK', aws_secret_access_key='$SK',
                 config=Config(s3={'addressing_style': 'path'}, signature_version='s3v4'))
print(c.generate_presigned_url('get_object', Params={'Bucket': 'rss', 'Key': 'big.bin'}, ExpiresIn=3600))")"
# GETs $url while sampling VmRSS into $WORK/NAME.rss; sets GOT (status, bytes, s) and PEAK.
sampled_get() { # name
    sample "$PID" "$WORK/$1.rss" &
    local sampler=$!
    GOT="$(curl -s -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$url")"
    touch "$WORK/$1.rss.stop"; wait "$sampler" || true
    PEAK="$(sort -n "$WORK/$1.rss" | tail -n1)"
}
before="$(rss_kib "$PID")"
log "streaming $BIG through s3cached"
sampled_get stream
got="$GOT"; stream_peak="$PEAK"
after="$(rss_kib "$PID")"

# --- 3. the same object again, read as blocks -------------------------------------
log "reading $BIG again: from blocks, filling the block cache"
sampled_get blocks
got_blocks="$GOT"; blocks_peak="$PEAK"
block_bytes="$(metric "$CAP" 's3cached_block_bytes_served_total')"
cached_after_blocks="$(metric "$CAP" 's3cached_cache_bytes')"
block_cap_bytes="$(bytes_of "$BLOCK_CAPACITY")"

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
limit=$(( (cap_bytes + cap_bytes / 4) / 1024 + 64 * 1024 ))
echo
echo "memory capacity $CAPACITY ($((cap_bytes >> 20)) MiB); target when full: <= $(mib "$limit") MiB RSS"
echo "idle RSS:                          $(mib "$idle") MiB"
echo "full of 64 KiB objects, peak RSS:  $(mib "$full_peak") MiB  ($(awk -v a="$full_peak" -v c="$cap_bytes" 'BEGIN {printf "%.3f", a * 1024 / c}') x capacity)  cached $((cached >> 20)) MiB in $entries entries, hit ratio $hit"
echo "full, at the end of the fill:      $(mib "$full_now") MiB"
echo "streaming $BIG (status, bytes, s): $got"
echo "  RSS before $(mib "$before") MiB, peak during $(mib "$stream_peak") MiB, after $(mib "$after") MiB"
if [ "$full_peak" -le "$limit" ]; then echo "full target: met"; else echo "full target: MISSED"; fi
if [ "$stream_peak" -le $((before + 16 * 1024)) ]; then echo "streaming target (peak within 16 MiB of before): met"; else echo "streaming target: MISSED"; fi
# Read-ahead holds up to its budget (64 MiB by default) in flight on top of the cache.
blocks_limit=$(( after + (block_cap_bytes + block_cap_bytes / 4) / 1024 + (64 + 64) * 1024 ))
echo "read again as blocks (status, bytes, s): $got_blocks; $((block_bytes >> 20)) MiB served from blocks"
echo "  cached after it: $((cached_after_blocks >> 20)) MiB (entries and blocks)"
echo "  RSS peak $(mib "$blocks_peak") MiB; target <= $(mib "$blocks_limit") MiB: 1.25 x block capacity $BLOCK_CAPACITY + 64 MiB read-ahead budget + 64 MiB"
if [ "$blocks_peak" -le "$blocks_limit" ]; then echo "blocks target: met"; else echo "blocks target: MISSED"; fi
