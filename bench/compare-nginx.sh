#!/usr/bin/env bash
# Peer comparison (not run in CI): the same wrk workload against
#   (a) the origin directly (SeaweedFS from the repository's .venv),
#   (b) nginx proxy_cache in front of that origin (Debian nginx),
#   (c) s3cached in front of that origin,
#   (c') nginx serving the same bytes as static files (sendfile), the ceiling for an HTTP server
#        on this machine, as `nginx-static`,
#   (d) with REDIS=1 (the default): redis-benchmark GETs of a pre-populated value of SIZE bytes
#       (Redis's own rate, with CONNS clients), and s3cached on `--tier redis` and
#       `--tier memory+redis` against that Redis,
# in one run, each reported as a ratio to nginx proxy_cache and to nginx-static (and the Redis
# tiers to redis-benchmark too).
#
# Workload: OBJECTS objects of SIZE bytes, GETs of presigned URLs (SigV4 in the query, signed
# once up front with boto3) spread round-robin over the objects, CONNS connections, DURATION
# per measurement, RUNS interleaved rounds; the table shows medians. nginx forwards the
# origin's presigned URLs with the origin's Host header, so it needs no signing; its cache key
# is the request URI, so every repeat of a URL is a hit. s3cached gets URLs presigned for
# itself and verifies every signature.
#
# `cpu us` is the server's CPU time (user and system, all threads) per request in a round, read
# from /proc before and after it: s3cached's process, nginx's workers (the origin behind nginx
# proxy_cache is not counted, it serves no hits), redis-server for redis-benchmark.
# `all us` is the whole machine's busy CPU time per request (/proc/stat: every process, the
# load generator, Redis and the kernel's network work included): when the CPUs are saturated,
# rates between targets go as the inverse of this.
#
# Usage: bench/compare-nginx.sh          (environment overrides below)
#   DURATION=10s CONNS=64 THREADS=2 OBJECTS=100 SIZE=4096 RUNS=3
#   S3CACHED_BIN=target/release/s3cached (built when missing)
#   BASELINE_BIN=path/to/another/s3cached: also measures that build, same flags, as "baseline"
#          (e.g. the previous commit's release build), so before/after ratios come from one run;
#          with REDIS=1 that build also runs on --tier redis, as "redis-base"
#   NGINX_WORKERS=auto
#   REDIS=1: the Redis rows (0 leaves them out); REDIS_CONNECTIONS="1": the s3cached
#          --redis-connections of the `redis` target; several values ("1 2 4 8") measure one
#          `redis-cN` target per value in the same run
#   REDIS_NO_HOT=1: also a `redis-nohot` target (--tier redis --no-hot-path), the full path
#   VENV=<repo>/.venv: the virtualenv with SeaweedFS and boto3
#   PIN=1: the servers on CPU 1 (nginx with one worker, s3cached with one runtime thread) and
#          wrk on CPU 0 (one thread), so the load generator does not preempt the servers
#   ONLY="nginx-static s3cached": measure only the named targets (the others are still started)
#   TLS=1: HTTPS between wrk and nginx, nginx-static and every s3cached target (a self-signed
#          certificate for 127.0.0.1, made with openssl); the origin and Redis stay plain
#   RATE=40000 WRK2=path/to/wrk2: latency at a fixed offered rate rather than at saturation.
#          wrk keeps CONNS requests in flight, so its latencies grow with the target's own rate
#          (a faster server keeps wrk busier); wrk2 (github.com/giltene/wrk2, built by hand)
#          sends RATE requests per second in all, on schedule, and counts each latency from
#          the request's scheduled time, so every target gets the same load. Pick a RATE that
#          every measured target sustains (use ONLY), and compare the p50 and p99 columns.
# Installs Debian nginx and wrk when missing (apt-get, as root) and the .venv with SeaweedFS
# and boto3 through scripts/test-env.sh. Everything it starts listens on 127.0.0.1 only and is
# stopped on exit; its temporary directory is removed.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-10s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
OBJECTS="${OBJECTS:-100}"
SIZE="${SIZE:-4096}"
RUNS="${RUNS:-3}"
NGINX_WORKERS="${NGINX_WORKERS:-auto}"
PIN="${PIN:-0}"
ONLY="${ONLY:-}"
RATE="${RATE:-}"
WRK2="${WRK2:-}"
if [ -n "$RATE" ] && [ ! -x "$WRK2" ]; then
    echo "RATE needs WRK2=path to a wrk2 binary (github.com/giltene/wrk2)" >&2
    exit 1
fi
TLS="${TLS:-0}"
REDIS="${REDIS:-1}"
REDIS_CONNECTIONS="${REDIS_CONNECTIONS:-1}"
VENV="${VENV:-$REPO/.venv}"
SERVER_CPU=()
CLIENT_CPU=()
if [ "$PIN" = 1 ]; then
    SERVER_CPU=(taskset -c 1)
    CLIENT_CPU=(taskset -c 0)
    NGINX_WORKERS=1
    THREADS=1
    export TOKIO_WORKER_THREADS=1
fi
BIN="${S3CACHED_BIN:-$REPO/target/release/s3cached}"
BASELINE_BIN="${BASELINE_BIN:-}"

BENCH_NAME=compare-nginx
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
log() { bench_log "$@"; }

# --- tools --------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ "$REDIS" = 1 ]; then
    command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
    command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "need root to apt-get install ${missing[*]}"
        exit 1
    fi
    log "apt-get install ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
PY="$VENV/bin/python"
WEED="$VENV/bin/weed"
bench_init compare-nginx
if [ ! -x "$BIN" ]; then
    log "building $BIN"
    (cd "$REPO" && cargo build --release -p s3cached-cli >&2)
fi

# --- TLS ------------------------------------------------------------------------
# SCHEME for the servers compared; CACHE_TLS, s3cached's flags; NGINX_SSL and NGINX_TLS, the
# `listen` parameter and the directives of nginx's servers.
SCHEME=http
CACHE_TLS=()
NGINX_SSL=""
NGINX_TLS=""
if [ "$TLS" = 1 ]; then
    SCHEME=https
    mkdir -p "$WORK/tls"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$WORK/tls/key.pem" -out "$WORK/tls/cert.pem" 2>/dev/null
    CACHE_TLS=(--tls-cert "$WORK/tls/cert.pem" --tls-key "$WORK/tls/key.pem")
    NGINX_SSL=" ssl"
    NGINX_TLS="ssl_certificate $WORK/tls/cert.pem; ssl_certificate_key $WORK/tls/key.pem;"
fi
# The URL wrk and curl use for a target: plain for the origin, SCHEME for the servers compared.
url_of() { # name, port
    if [ "$1" = origin ]; then echo "http://127.0.0.1:$2"; else echo "$SCHEME://127.0.0.1:$2"; fi
}

# --- SeaweedFS ------------------------------------------------------------------
start_seaweed
S3P="$SEAWEED_PORT"

# --- s3cached -------------------------------------------------------------------
# The processes whose CPU time a target's requests cost, by target name (nginx's: its workers).
declare -A SERVER_PIDS
start_cache() { # name, extra flags... -> sets STARTED_PORT
    start_s3cached "$1" --memory-capacity 256MiB --max-object-size 2MiB ${CACHE_TLS[@]+"${CACHE_TLS[@]}"} "${@:2}"
    SERVER_PIDS[$1]="$STARTED_PID"
}
start_cache s3cached
CP="$STARTED_PORT"
# name:port of the further s3cached targets (signed with the cache's keys, like s3cached's).
EXTRA_CACHES=()
RP=""
if [ "$REDIS" = 1 ]; then
    RP="$(free_port_pair)"
    log "starting redis-server on 127.0.0.1:$RP"
    start_redis "$RP" "$WORK" ${SERVER_CPU[@]+"${SERVER_CPU[@]}"}
    SERVER_PIDS[redis-bench]="$STARTED_PID"
    read -r -a conn_counts <<<"$REDIS_CONNECTIONS"
    if [ "${#conn_counts[@]}" = 1 ]; then
        start_cache redis --tier redis --redis-url "redis://127.0.0.1:$RP" --redis-connections "${conn_counts[0]}"
        EXTRA_CACHES+=("redis:$STARTED_PORT")
    else
        for n in "${conn_counts[@]}"; do
            start_cache "redis-c$n" --tier redis --redis-url "redis://127.0.0.1:$RP" --redis-connections "$n"
            EXTRA_CACHES+=("redis-c$n:$STARTED_PORT")
        done
    fi
    if [ "${REDIS_NO_HOT:-0}" = 1 ]; then
        start_cache redis-nohot --tier redis --redis-url "redis://127.0.0.1:$RP" \
            --redis-connections "${conn_counts[0]}" --no-hot-path
        EXTRA_CACHES+=("redis-nohot:$STARTED_PORT")
    fi
    start_cache mem+redis --tier memory+redis --redis-url "redis://127.0.0.1:$RP" \
        --redis-connections "${conn_counts[0]}"
    EXTRA_CACHES+=("mem+redis:$STARTED_PORT")
fi
BP=""
if [ -n "$BASELINE_BIN" ]; then
    BIN="$BASELINE_BIN" start_cache baseline
    BP="$STARTED_PORT"
    if [ -n "$RP" ]; then
        BIN="$BASELINE_BIN" start_cache redis-base --tier redis --redis-url "redis://127.0.0.1:$RP" \
            --redis-connections "${conn_counts[0]}"
        EXTRA_CACHES+=("redis-base:$STARTED_PORT")
    fi
fi

# --- nginx ----------------------------------------------------------------------
NP="$(free_port_pair)"
NSP="$(free_port_pair)"
mkdir -p "$WORK/nginx/cache" "$WORK/nginx/tmp" "$WORK/static"
{
    nginx_conf_head "$NGINX_WORKERS" 1g "$S3P"
    cat <<EOF
    server {
        listen 127.0.0.1:$NP$NGINX_SSL;
        $NGINX_TLS
        location / {
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host 127.0.0.1:$S3P;
            proxy_cache s3;
            proxy_cache_key \$request_uri;
            proxy_cache_valid 200 1h;
            proxy_cache_lock on;
            proxy_ignore_headers Cache-Control Expires Set-Cookie;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
    # The objects' bytes as files, at the same paths (the query string is ignored).
    server {
        listen 127.0.0.1:$NSP$NGINX_SSL;
        $NGINX_TLS
        root $WORK/static;
        sendfile on;
        tcp_nopush on;
        open_file_cache max=1000 inactive=60s;
        location / { }
    }
}
EOF
} >"$WORK/nginx/nginx.conf"
log "starting nginx on 127.0.0.1:$NP"
"${SERVER_CPU[@]}" "$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' >"$WORK/nginx/stdout.log" 2>&1 &
pids+=($!)
NGINX_PID=$!
wait_http "$(url_of nginx "$NP")/" "nginx"
TARGETS="origin:$S3P:origin nginx:$NP:origin nginx-static:$NSP:origin s3cached:$CP:cache"
if [ -n "$BP" ]; then TARGETS="$TARGETS baseline:$BP:baseline"; fi
for c in "${EXTRA_CACHES[@]}"; do
    TARGETS="$TARGETS ${c%%:*}:${c##*:}:${c%%:*}"
done

# --- objects and presigned URLs ---------------------------------------------------
log "uploading $OBJECTS objects of $SIZE bytes and presigning"
"$PY" - "$S3P" "$CP" "$OBJECTS" "$SIZE" "$WORK" "$BP" "${EXTRA_CACHES[@]}" <<EOF
import sys, boto3
from botocore.config import Config
s3p, cp, n, size, work, bp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
extra = [a.rsplit(":", 1) for a in sys.argv[7:]]
cfg = Config(s3={"addressing_style": "path"}, signature_version="s3v4", retries={"max_attempts": 3})
def client(port, ak, sk):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=ak, aws_secret_access_key=sk, config=cfg)
origin = client(s3p, "$ORIGIN_AK", "$ORIGIN_SK")
cache = client(cp, "$CACHE_AK", "$CACHE_SK")
targets = [("origin", origin, s3p), ("cache", cache, cp)]
if bp:
    targets.append(("baseline", client(bp, "$CACHE_AK", "$CACHE_SK"), bp))
for name, port in extra:
    targets.append((name, client(port, "$CACHE_AK", "$CACHE_SK"), port))
origin.create_bucket(Bucket="compare")
body = bytes(i % 251 for i in range(size))
import os
os.makedirs(f"{work}/static/compare", exist_ok=True)
for i in range(n):
    origin.put_object(Bucket="compare", Key=f"obj-{i:05}", Body=body)
    with open(f"{work}/static/compare/obj-{i:05}", "wb") as f:
        f.write(body)
for name, c, port in targets:
    with open(f"{work}/{name}.paths", "w") as f:
        for i in range(n):
            url = c.generate_presigned_url("get_object", Params={"Bucket": "compare", "Key": f"obj-{i:05}"}, ExpiresIn=6 * 3600)
            f.write(url.split(f"127.0.0.1:{port}", 1)[1] + "\n")
EOF


first_path() { head -n1 "$WORK/$1.paths"; }
# Check that each target answers 200 with the whole object.
for t in $TARGETS; do
    IFS=: read -r name port paths <<<"$t"
    code="$(curl -sk -o "$WORK/check.body" -w '%{http_code}' "$(url_of "$name" "$port")$(first_path "$paths")")"
    got="$(stat -c %s "$WORK/check.body")"
    if [ "$code" != 200 ] || [ "$got" != "$SIZE" ]; then
        log "$name answered $code with $got bytes"; cat "$WORK/check.body" >&2; exit 1
    fi
done

wanted() { [ -z "$ONLY" ] || [[ " $ONLY " == *" $1 "* ]]; }
run_wrk() { # URL, paths name, duration -> wrk output
    wrk_paths "$1" "$WORK/$2.paths" "$3"
}
# A measured round: wrk, or wrk2 at RATE when it is set.
measure_wrk() { # URL, paths name, duration -> wrk or wrk2 output
    if [ -n "$RATE" ]; then
        wrk_paths "$1" "$WORK/$2.paths" "$3" "$WRK2" -R"$RATE"
    else
        run_wrk "$@"
    fi
}
# wrk prints "50%  1.20ms", wrk2 " 50.000%    1.20ms".
percentile() { # 50 or 99, wrk output -> ms
    to_ms "$(awk -v p="$1" '$1 == p "%" || $1 == p ".000%" {print $2; exit}' <<<"$2")"
}

log "warming each target (3s)"
for t in $TARGETS; do
    IFS=: read -r name port paths <<<"$t"
    wanted "$name" || continue
    run_wrk "$(url_of "$name" "$port")" "$paths" 3s >"$WORK/warm-$name.txt"
done
nginx_status="$(curl -sk -D - -o /dev/null "$(url_of nginx "$NP")$(first_path origin)" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-cache-status"{print $2}')"
s3c_status="$(curl -sk -D - -o /dev/null "$(url_of s3cached "$CP")$(first_path cache)" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-s3cached"{print $2}')"
log "after warm-up: nginx X-Cache-Status=$nginx_status, s3cached x-s3cached=$s3c_status"
for c in "${EXTRA_CACHES[@]}"; do
    status="$(curl -sk -D - -o /dev/null "$(url_of "${c%%:*}" "${c##*:}")$(first_path "${c%%:*}")" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-s3cached"{print $2}')"
    log "after warm-up: ${c%%:*} x-s3cached=$status"
done

# redis-benchmark: GETs of one value of SIZE bytes, stored first under the key `-t get` reads.
# It counts requests, not time: a short calibration sets the count for about DURATION.
duration_s() { awk -v d="$DURATION" 'BEGIN { if (d ~ /m$/) { sub(/m$/, "", d); print d * 60 } else { sub(/s$/, "", d); print d + 0 } }'; }
RB_REQUESTS=""
if [ -n "$RP" ]; then
    redis_benchmark_key "$RP" "$SIZE" || exit 1
    calib="$(redis-benchmark -h 127.0.0.1 -p "$RP" -t get -d "$SIZE" -c "$CONNS" --threads "$THREADS" -n $((CONNS * 50)) --csv | awk -F'"' 'NR==2 {print $4}')"
    RB_REQUESTS="$(awk -v r="$calib" -v s="$(duration_s)" 'BEGIN {printf "%d", r * s < 1000 ? 1000 : r * s}')"
    TARGETS="$TARGETS redis-bench:$RP:-"
fi

# nginx's workers (both nginx targets); the origin's CPU is not counted.
nginx_workers="$(pgrep -P "$NGINX_PID" | tr '\n' ' ')"
SERVER_PIDS[nginx]="$nginx_workers"
SERVER_PIDS[nginx-static]="$nginx_workers"

declare -A RPS P50 P99 ERRS CPU ALL_CPU
for round in $(seq "$RUNS"); do
    for t in $TARGETS; do
        IFS=: read -r name port paths <<<"$t"
        wanted "$name" || continue
        log "round $round/$RUNS: $name ($CONNS connections, $DURATION)"
        # shellcheck disable=SC2086 # a list of pids
        ticks_before="$(cpu_ticks ${SERVER_PIDS[$name]:-})"
        busy_before="$(busy_ticks)"
        if [ "$name" = redis-bench ]; then
            # CSV columns: test, rps, avg, min, p50, p95, p99, max (ms).
            out="$("${CLIENT_CPU[@]}" redis-benchmark -h 127.0.0.1 -p "$port" -t get -d "$SIZE" -c "$CONNS" \
                --threads "$THREADS" -n "$RB_REQUESTS" --csv)"
            echo "$out" >"$WORK/run-$name-$round.txt"
            rps="$(awk -F'"' 'NR==2 {print $4}' <<<"$out")"
            p50="$(awk -F'"' 'NR==2 {print $10}' <<<"$out")"
            p99="$(awk -F'"' 'NR==2 {print $14}' <<<"$out")"
            requests="$RB_REQUESTS"
            errs=""
        else
            out="$(measure_wrk "$(url_of "$name" "$port")" "$paths" "$DURATION")"
            echo "$out" >"$WORK/run-$name-$round.txt"
            rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
            p50="$(percentile 50 "$out")"
            p99="$(percentile 99 "$out")"
            requests="$(awk '/ requests in / {print $1; exit}' <<<"$out")"
            errs="$(awk '/Non-2xx or 3xx responses:/ {print $NF} /Socket errors:/ {print "sock"}' <<<"$out" | head -n1)"
        fi
        # shellcheck disable=SC2086
        ticks="$(($(cpu_ticks ${SERVER_PIDS[$name]:-}) - ticks_before))"
        busy="$(($(busy_ticks) - busy_before))"
        if [ "${requests:-0}" -gt 0 ]; then
            ALL_CPU[$name]="${ALL_CPU[$name]:-} $(us_per_request "$busy" "$requests")"
        fi
        if [ -n "${SERVER_PIDS[$name]:-}" ] && [ "${requests:-0}" -gt 0 ]; then
            CPU[$name]="${CPU[$name]:-} $(us_per_request "$ticks" "$requests")"
        fi
        RPS[$name]="${RPS[$name]:-} $rps"
        P50[$name]="${P50[$name]:-} $p50"
        P99[$name]="${P99[$name]:-} $p99"
        ERRS[$name]="${ERRS[$name]:-}${errs:+ $errs}"
    done
done


echo
echo "Peer comparison: $OBJECTS objects of $SIZE bytes, wrk -t$THREADS -c$CONNS -d$DURATION, medians of $RUNS rounds"
echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
if [ "$PIN" = 1 ]; then echo "pinned: servers on CPU 1 (one worker or runtime thread each), wrk on CPU 0"; fi
if [ "$TLS" = 1 ]; then echo "TLS: HTTPS (self-signed P-256 certificate) to nginx, nginx-static and s3cached; the origin and Redis plain"; fi
echo "nginx $("$NGINX" -v 2>&1 | sed 's/.*nginx\///'), wrk $(wrk -v 2>&1 | head -n1 | awk '{print $2}'), $("$BIN" --version)"
if [ -n "$RP" ]; then
    echo "$(redis-server --version | awk '{print $1, $2, $3}'); redis-benchmark -t get -d $SIZE -c $CONNS --threads $THREADS -n $RB_REQUESTS (one pre-populated key); s3cached Redis targets: --redis-connections ${REDIS_CONNECTIONS}"
fi
echo
n_rps="$(median "${RPS[nginx]:-}")"
n_p50="$(median "${P50[nginx]:-}")"
n_p99="$(median "${P99[nginx]:-}")"
ns_rps="$(median "${RPS[nginx-static]:-}")"
ns_p99="$(median "${P99[nginx-static]:-}")"
rb_rps=""
if [ -n "$RP" ]; then rb_rps="$(median "${RPS[redis-bench]:-}")"; fi
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2fx", a / b; else printf "-"}'; }
if [ -n "$RATE" ]; then echo "wrk2 at a fixed rate of $RATE requests/s in all (latencies from each request's scheduled time)"; fi
printf '%-12s %12s %8s %10s %10s %10s %10s %10s %10s %10s %10s %10s %10s  %s\n' target req/s GB/s "x nginx" "x static" "x redis" "p50 ms" "x nginx" "p99 ms" "x nginx" "x static" "cpu us" "all us" "errors"
names=""
for name in origin nginx nginx-static s3cached; do wanted "$name" && names="$names $name"; done
if [ -n "$BP" ] && wanted baseline; then names="$names baseline"; fi
for c in "${EXTRA_CACHES[@]}"; do wanted "${c%%:*}" && names="$names ${c%%:*}"; done
if [ -n "$RP" ] && wanted redis-bench; then names="$names redis-bench"; fi
for name in $names; do
    rps="$(median "${RPS[$name]}")"; p50="$(median "${P50[$name]}")"; p99="$(median "${P99[$name]}")"
    cpu="-"
    all="$(median "${ALL_CPU[$name]:-}")"
    if [ -n "${CPU[$name]:-}" ]; then cpu="$(median "${CPU[$name]}")"; fi
    printf '%-12s %12.0f %8.3f %10s %10s %10s %10.3f %10s %10.3f %10s %10s %10s %10s  %s\n' "$name" "$rps" \
        "$(awk -v a="$rps" -v s="$SIZE" 'BEGIN {printf "%.3f", a * s / 1e9}')" \
        "$(ratio "$rps" "$n_rps")" "$(ratio "$rps" "$ns_rps")" "$(ratio "$rps" "$rb_rps")" \
        "$p50" "$(ratio "$p50" "$n_p50")" "$p99" "$(ratio "$p99" "$n_p99")" "$(ratio "$p99" "$ns_p99")" \
        "$cpu" "${all:--}" "${ERRS[$name]:-none}"
done
echo
rounds=""
tails=""
for name in $names; do
    rounds="$rounds${rounds:+, }$name [${RPS[$name]} ]"
    tails="$tails${tails:+, }$name [${P99[$name]} ]"
done
echo "per-round req/s: $rounds"
echo "per-round p99 ms: $tails"
if [ -n "$BP" ] && wanted s3cached && wanted baseline; then
    echo "s3cached / baseline req/s: $(awk -v a="$(median "${RPS[s3cached]}")" -v b="$(median "${RPS[baseline]}")" 'BEGIN {printf "%.3fx", a / b}')"
fi
if [ -n "${RPS[redis-base]:-}" ] && [ -n "${RPS[redis]:-}" ]; then
    echo "redis / redis-base req/s: $(awk -v a="$(median "${RPS[redis]}")" -v b="$(median "${RPS[redis-base]}")" 'BEGIN {printf "%.3fx", a / b}')"
fi
