#!/usr/bin/env bash
# Profiles memory-tier hits of a separate `s3cached serve` (not run in CI): 100 objects of
# 4 KiB, GETs of presigned URLs by wrk (64 connections), `perf record -g` on the s3cached
# process while wrk runs; prints wrk's figures, the process's CPU time per request (from
# /proc/PID/stat) and perf's top symbols (self and children).
#
# Usage: bench/profile-hit-path.sh   (DURATION=15 CONNS=64 THREADS=2 FREQ=499 CALLGRAPH=fp|dwarf)
# Release builds carry no frame pointers: CALLGRAPH=dwarf gives callers (costlier, use a
# short DURATION).
# Needs perf (Debian linux-perf) and wrk; the .venv (scripts/test-env.sh) for boto3.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${S3CACHED_BIN:-$REPO/target/release/s3cached}"
DURATION="${DURATION:-15}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
FREQ="${FREQ:-499}"
PY="$REPO/.venv/bin/python"
OUT="${OUT:-$(pwd)/profile-hit-path}"

log() { printf '[profile] %s\n' "$*" >&2; }
for tool in perf wrk curl; do
    command -v "$tool" >/dev/null 2>&1 || { log "$tool not found (apt-get install linux-perf wrk curl)"; exit 1; }
done
[ -x "$BIN" ] || (cd "$REPO" && cargo build --release -p s3cached-cli >&2)
"$PY" -c 'import boto3' 2>/dev/null || bash "$REPO/scripts/test-env.sh" >&2

WORK="$(mktemp -d /tmp/s3cached-profile.XXXXXX)"
pid=""
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
P="$(port)"; AP="$(port)"; AK=profile-key; SK=profile-secret-0123456789
"$BIN" --log-level warn serve --local-dir "$WORK/data" --listen "127.0.0.1:$P" \
    --admin-listen "127.0.0.1:$AP" --access-key "$AK" --secret-key "$SK" >"$WORK/s3cached.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$AP/health" && break; sleep 0.1; done

"$PY" - "$P" "$AK" "$SK" "$WORK" <<'EOF'
import sys, boto3
from botocore.config import Config
port, ak, sk, work = sys.argv[1:5]
c = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                 aws_access_key_id=ak, aws_secret_access_key=sk,
                 config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
c.create_bucket(Bucket="profile")
body = bytes(i % 251 for i in range(4096))
with open(f"{work}/paths", "w") as f:
    for i in range(100):
        c.put_object(Bucket="profile", Key=f"obj-{i:03}", Body=body)
        url = c.generate_presigned_url("get_object", Params={"Bucket": "profile", "Key": f"obj-{i:03}"}, ExpiresIn=3600)
        f.write(url.split(f"127.0.0.1:{port}", 1)[1] + "\n")
EOF
export PATHS_FILE="$WORK/paths"
wrk -t"$THREADS" -c"$CONNS" -d3s -s "$REPO/bench/paths.lua" "http://127.0.0.1:$P" >/dev/null
log "profiling pid $pid for ${DURATION}s under wrk -c$CONNS"
perf record -F "$FREQ" --call-graph "${CALLGRAPH:-fp}" -o "$WORK/perf.data" -p "$pid" -- sleep "$DURATION" 2>"$WORK/perf.err" &
perf_pid=$!
cpu0="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --latency -s "$REPO/bench/paths.lua" "http://127.0.0.1:$P" | tee "$WORK/wrk.txt"
cpu1="$(awk '{print $14 + $15}' "/proc/$pid/stat")"
requests="$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")"
awk -v a="$cpu0" -v b="$cpu1" -v n="$requests" -v t="$(getconf CLK_TCK)" -v d="$DURATION" 'BEGIN {
    printf "s3cached CPU: %.2f s for %d requests = %.1f us per request (%.2f cores; perf sampling included)\n",
        (b - a) / t, n, (b - a) / t / n * 1e6, (b - a) / t / d }'
wait "$perf_pid" || true
mkdir -p "$OUT"
perf report -i "$WORK/perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null | grep -v '^$' | head -n 200 >"$OUT/self.txt" || true
perf report -i "$WORK/perf.data" --children --sort symbol --stdio -g none 2>/dev/null | grep -v '^$' | head -n 120 >"$OUT/children.txt" || true
perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2>/dev/null | grep -v '^$' | head -n 30 >"$OUT/dso.txt" || true
for sym in __memmove_avx512_unaligned_erms __memcmp_evex_movbe _int_malloc _raw_spin_unlock_irqrestore finish_task_switch.isra.0; do
    perf report -i "$WORK/perf.data" --no-children --stdio -S "$sym" -G 2>/dev/null \
        | grep -v '^$' | head -n 60 >"$OUT/callers-$sym.txt" || true
done
log "reports in $OUT (self.txt, children.txt, dso.txt)"
echo "--- top self symbols ---"
grep -E '^ +[0-9]' "$OUT/self.txt" | head -n 40 | cut -c1-150 || true
echo "--- self time by component (symbol-name heuristics) ---"
grep -E '^ +[0-9]' "$OUT/self.txt" | awk '
    { pct = $1; sub(/%/, "", pct); line = $0
      if (line ~ /\[k\]/) c = "kernel (TCP, syscalls, scheduler)"
      else if (line ~ /sha2|hmac|Sha256|sha256/) c = "SHA-256 / HMAC (SigV4)"
      else if (line ~ /s3s::/) c = "s3s (parsing, auth, routing, serialization)"
      else if (line ~ /hyper|httparse|http::/) c = "hyper / http"
      else if (line ~ /tokio|mio/) c = "tokio / mio"
      else if (line ~ /memmove|memcpy|memset|memcmp|strlen/) c = "libc mem*"
      else if (line ~ /malloc|free|realloc|_int_|cfree|tcache/) c = "allocator"
      else if (line ~ /s3cached|moka/) c = "s3cached engine / moka"
      else if (line ~ /prometheus|Histogram|Counter/) c = "metrics"
      else if (line ~ /tracing/) c = "tracing"
      else c = "other"
      sum[c] += pct }
    END { for (c in sum) printf "%6.2f%%  %s\n", sum[c], c }' | sort -rn
