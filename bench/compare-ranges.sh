#!/usr/bin/env bash
# Ranged reads of a large object (not run in CI): the same wrk workload against
#   (a) the origin directly (SeaweedFS from the repository's .venv),
#   (b) nginx with the slice module and proxy_cache (1 MiB slices, the range-caching peer),
#   (c) s3cached (blocks in memory),
#   (d) with REDIS=1: s3cached on `--tier redis` (blocks in Redis),
# in one run, each reported as a ratio to the origin and to nginx.
#
# One object of OBJECT_SIZE bytes. Workloads (MODES): `random:65536` (64 KiB ranges at random
# offsets), `random:1048576`, `sequential:8388608` (each wrk thread reads the object front to
# back in 8 MiB ranges). Before measuring, each cache is warmed with one whole GET and one round
# of every workload, so the rows compare hits; the first whole GET of each cache is timed too
# (a cold read, from the origin). CONNS connections, DURATION per measurement, RUNS rounds;
# the table shows medians.
#
# Usage: bench/compare-ranges.sh   (environment overrides below)
#   OBJECT_SIZE=268435456 MODES="random:65536 random:1048576 sequential:8388608"
#   DURATION=10s CONNS=16 THREADS=2 RUNS=3 REDIS=1
#   S3CACHED_BIN=target/release/s3cached (built when missing)
#   CACHE_FLAGS="--block-size 4MiB": extra flags for every s3cached target
# Installs Debian nginx, wrk and redis-server when missing (apt-get, as root). Everything
# listens on 127.0.0.1 and is stopped on exit; the temporary directory is removed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OBJECT_SIZE="${OBJECT_SIZE:-268435456}"
MODES="${MODES:-random:65536 random:1048576 sequential:8388608}"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-16}"
THREADS="${THREADS:-2}"
RUNS="${RUNS:-3}"
REDIS="${REDIS:-1}"
BIN="${S3CACHED_BIN:-$REPO/target/release/s3cached}"
read -r -a CACHE_FLAGS <<<"${CACHE_FLAGS:-}"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "$REDIS" = 1 ]; then command -v redis-server >/dev/null 2>&1 || missing+=(redis-server); fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then echo "need root to apt-get install ${missing[*]}" >&2; exit 1; fi
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
bench_init compare-ranges
if [ ! -x "$BIN" ]; then
    bench_log "building $BIN"
    (cd "$REPO" && cargo build --release -p s3cached-cli >&2)
fi

start_seaweed
S3P="$SEAWEED_PORT"
start_s3cached memory --block-memory-capacity 1GiB "${CACHE_FLAGS[@]}"
CP="$STARTED_PORT"; CA="$STARTED_ADMIN"
TARGETS="origin:$S3P nginx-slice:NGINX s3cached:$CP"
if [ "$REDIS" = 1 ]; then
    RP="$(free_port_pair)"
    redis-server --bind 127.0.0.1 --port "$RP" --save '' --appendonly no --maxmemory 2gb \
        --maxmemory-policy allkeys-lru --dir "$WORK" --logfile "$WORK/redis.log" &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
    start_s3cached redis --tier redis --redis-url "redis://127.0.0.1:$RP" "${CACHE_FLAGS[@]}"
    TARGETS="$TARGETS s3cached-redis:$STARTED_PORT"
fi

NP="$(free_port_pair)"
mkdir -p "$WORK/nginx/cache" "$WORK/nginx/tmp"
{
    nginx_conf_head auto 2g "$S3P"
    cat <<NGINX
    server {
        listen 127.0.0.1:$NP;
        location / {
            slice 1m;
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:$S3P;
            proxy_set_header Range \$slice_range;
            proxy_cache s3;
            proxy_cache_key \$uri\$is_args\$args\$slice_range;
            proxy_cache_valid 200 206 1h;
            proxy_cache_lock on;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
        }
    }
}
NGINX
} >"$WORK/nginx/nginx.conf"
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >"$WORK/nginx/stdout.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$NP/" "nginx"
TARGETS="${TARGETS/NGINX/$NP}"

bench_log "uploading one object of $OBJECT_SIZE bytes and presigning"
"$PY" - "$S3P" "$OBJECT_SIZE" "$WORK" $TARGETS <<PYEOF
import os, sys, boto3
from botocore.config import Config
s3p, size, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cfg = Config(s3={"addressing_style": "path"}, signature_version="s3v4")
def client(port, ak, sk):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=ak, aws_secret_access_key=sk, config=cfg)
origin = client(s3p, "$ORIGIN_AK", "$ORIGIN_SK")
origin.create_bucket(Bucket="ranges")
origin.upload_fileobj(__import__("io").BytesIO(os.urandom(size)), "ranges", "big.bin")
for t in sys.argv[4:]:
    name, port = t.rsplit(":", 1)
    # nginx forwards the origin's presigned URL as it is.
    c = origin if name in ("origin", "nginx-slice") else client(port, "$CACHE_AK", "$CACHE_SK")
    url = c.generate_presigned_url("get_object", Params={"Bucket": "ranges", "Key": "big.bin"}, ExpiresIn=6 * 3600)
    base = f"127.0.0.1:{s3p}" if name in ("origin", "nginx-slice") else f"127.0.0.1:{port}"
    with open(f"{work}/{name}.path", "w") as f:
        f.write(url.split(base, 1)[1] + "\n")
PYEOF

declare -A COLD
for t in $TARGETS; do
    IFS=: read -r name port <<<"$t"
    out="$(curl -s -o "$WORK/whole.bin" -w '%{http_code} %{time_total}' "http://127.0.0.1:$port$(cat "$WORK/$name.path")")"
    got="$(stat -c %s "$WORK/whole.bin")"
    if [ "${out%% *}" != 200 ] || [ "$got" != "$OBJECT_SIZE" ]; then
        bench_log "$name answered ${out%% *} with $got bytes"; exit 1
    fi
    COLD[$name]="${out##* }"
    bench_log "$name: first whole GET ${COLD[$name]} s"
done

run_wrk() { # port, name, mode, range, duration
    PATH_FILE="$WORK/$2.path" OBJECT_SIZE="$OBJECT_SIZE" MODE="$3" RANGE="$4" \
        wrk -t"$THREADS" -c"$CONNS" -d"$5" --latency -s "$REPO/bench/ranges.lua" "http://127.0.0.1:$1" 2>&1
}

declare -A RPS P99 ERRS
for mode in $MODES; do
    kind="${mode%%:*}"; range="${mode##*:}"
    for t in $TARGETS; do
        IFS=: read -r name port <<<"$t"
        run_wrk "$port" "$name" "$kind" "$range" 3s >/dev/null
    done
    for round in $(seq "$RUNS"); do
        for t in $TARGETS; do
            IFS=: read -r name port <<<"$t"
            bench_log "$mode round $round/$RUNS: $name"
            out="$(run_wrk "$port" "$name" "$kind" "$range" "$DURATION")"
            echo "$out" >"$WORK/run-$name-$kind-$range-$round.txt"
            RPS[$name,$mode]="${RPS[$name,$mode]:-} $(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
            P99[$name,$mode]="${P99[$name,$mode]:-} $(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")"
            errs="$(awk '/Non-2xx or 3xx responses:/ {print $NF} /Socket errors:/ {print "sock"}' <<<"$out" | head -n1)"
            ERRS[$name,$mode]="${ERRS[$name,$mode]:-}${errs:+ $errs}"
        done
    done
done

echo
echo "Ranged reads of one $((OBJECT_SIZE >> 20)) MiB object, wrk -t$THREADS -c$CONNS -d$DURATION, medians of $RUNS rounds"
echo "s3cached flags: --block-memory-capacity 1GiB ${CACHE_FLAGS[*]}"
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $("$BIN" --version); nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///') (slice 1m + proxy_cache)"
echo
printf '%-20s %-16s %10s %8s %10s %10s %10s  %s\n' workload target req/s GB/s "x origin" "x nginx" "p99 ms" errors
for mode in $MODES; do
    range="${mode##*:}"
    o="$(median "${RPS[origin,$mode]}")"; n="$(median "${RPS[nginx-slice,$mode]}")"
    for t in $TARGETS; do
        name="${t%%:*}"
        r="$(median "${RPS[$name,$mode]}")"
        printf '%-20s %-16s %10.0f %8.3f %10s %10s %10s  %s\n' "$mode" "$name" "$r" \
            "$(awk -v a="$r" -v s="$range" 'BEGIN {printf "%.3f", a * s / 1e9}')" \
            "$(awk -v a="$r" -v b="$o" 'BEGIN {printf "%.2fx", a / b}')" \
            "$(awk -v a="$r" -v b="$n" 'BEGIN {printf "%.2fx", a / b}')" \
            "$(median "${P99[$name,$mode]}")" "${ERRS[$name,$mode]:-none}"
    done
done
echo
printf 'first whole GET (cold, from the origin):'
for t in $TARGETS; do printf ' %s %ss' "${t%%:*}" "${COLD[${t%%:*}]}"; done
echo
echo "s3cached block metrics: $(curl -s "http://127.0.0.1:$CA/metrics" | grep -E '^s3cached_(block|prefetch)_' | tr '\n' ' ')"
