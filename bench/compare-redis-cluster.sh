#!/usr/bin/env bash
# Redis cluster mode (not run in CI): hit rates of `s3cached --tier redis --redis-cluster` with
# several `--redis-connections` values, against a 3-master Redis cluster on loopback, in one
# run with interleaved rounds. In cluster mode each connection is a cluster connection holding
# one multiplexed connection per node, so N connections means N per node.
#
# Workload: OBJECTS objects of SIZE bytes (their keys spread over the cluster's slots), GETs of
# presigned URLs round robin by wrk, CONNS connections, DURATION per measurement, RUNS rounds;
# the table shows medians. Every request is a Redis hit (checked: `x-s3cached: hit-redis`).
#
# Usage: bench/compare-redis-cluster.sh   (CONNECTIONS="1 2 4" DURATION=8s CONNS=64 THREADS=2
#        OBJECTS=100 SIZE=4096 RUNS=3 S3CACHED_BIN=target/release/s3cached)
# Needs redis-server, redis-cli and wrk (Debian); the .venv with SeaweedFS and boto3.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DURATION="${DURATION:-8s}"
CONNS="${CONNS:-64}"
THREADS="${THREADS:-2}"
OBJECTS="${OBJECTS:-100}"
SIZE="${SIZE:-4096}"
RUNS="${RUNS:-3}"
CONNECTIONS="${CONNECTIONS:-1 2 4}"
BIN="${S3CACHED_BIN:-$REPO/target/release/s3cached}"
SERVER_CPU=()

# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
for tool in redis-server redis-cli wrk curl; do
    command -v "$tool" >/dev/null 2>&1 || { bench_log "$tool not found (apt-get install redis-server redis-tools wrk curl)"; exit 1; }
done
bench_init compare-redis-cluster
[ -x "$BIN" ] || (cd "$REPO" && cargo build --release -p s3cached-cli >&2)

start_seaweed

# --- a 3-master cluster -------------------------------------------------------------
nodes=()
for i in 1 2 3; do
    port="$(free_port_pair)"
    mkdir -p "$WORK/redis-$i"
    redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes --cluster-config-file "$WORK/redis-$i/nodes.conf" \
        --save '' --appendonly no --dir "$WORK/redis-$i" --logfile "$WORK/redis-$i/log" &
    pids+=($!)
    for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    nodes+=("127.0.0.1:$port")
done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >"$WORK/cluster-create.log" 2>&1
for _ in $(seq 100); do
    redis-cli -p "${nodes[0]##*:}" cluster info | grep -q 'cluster_state:ok' && break
    sleep 0.1
done
bench_log "cluster: ${nodes[*]}"
seeds="$(IFS=,; echo "${nodes[*]}")"

targets=()
for n in $CONNECTIONS; do
    start_s3cached "cluster-c$n" --memory-capacity 256MiB --tier redis --redis-cluster "$seeds" --redis-connections "$n"
    targets+=("c$n:$STARTED_PORT")
done

"$PY" - "$SEAWEED_PORT" "$OBJECTS" "$SIZE" "$WORK" "${targets[@]}" <<PYEOF
import sys, boto3
from botocore.config import Config
s3p, n, size, work = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
cfg = Config(s3={"addressing_style": "path"}, signature_version="s3v4")
def client(port, ak, sk):
    return boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                        aws_access_key_id=ak, aws_secret_access_key=sk, config=cfg)
origin = client(s3p, "$ORIGIN_AK", "$ORIGIN_SK")
origin.create_bucket(Bucket="cluster")
body = bytes(i % 251 for i in range(size))
for i in range(n):
    origin.put_object(Bucket="cluster", Key=f"obj-{i:05}", Body=body)
for name, port in (a.rsplit(":", 1) for a in sys.argv[5:]):
    c = client(port, "$CACHE_AK", "$CACHE_SK")
    with open(f"{work}/{name}.paths", "w") as f:
        for i in range(n):
            url = c.generate_presigned_url("get_object", Params={"Bucket": "cluster", "Key": f"obj-{i:05}"}, ExpiresIn=6 * 3600)
            f.write(url.split(f"127.0.0.1:{port}", 1)[1] + "\n")
PYEOF

run_wrk() { # port, name, duration
    wrk_paths "$1" "$WORK/$2.paths" "$3"
}
for t in "${targets[@]}"; do
    run_wrk "${t##*:}" "${t%%:*}" 3s >/dev/null
    status="$(curl -s -D - -o /dev/null "http://127.0.0.1:${t##*:}$(head -n1 "$WORK/${t%%:*}.paths")" | tr -d '\r' | awk -F': ' 'tolower($1)=="x-s3cached"{print $2}')"
    if [ "$status" != hit-redis ]; then bench_log "${t%%:*}: x-s3cached=$status, not hit-redis"; exit 1; fi
done

declare -A RPS P99
for round in $(seq "$RUNS"); do
    for t in "${targets[@]}"; do
        name="${t%%:*}"
        bench_log "round $round/$RUNS: $name"
        out="$(run_wrk "${t##*:}" "$name" "$DURATION")"
        RPS[$name]="${RPS[$name]:-} $(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
        P99[$name]="${P99[$name]:-} $(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")"
        if grep -q 'Non-2xx' <<<"$out"; then bench_log "$name: errors"; echo "$out" >&2; exit 1; fi
    done
done

echo "Redis cluster (3 masters, $(redis-server --version | awk '{print $3}')): $OBJECTS objects of $SIZE bytes, wrk -t$THREADS -c$CONNS -d$DURATION, medians of $RUNS rounds"
echo "machine: $(nproc) CPUs; $("$BIN" --version)"
printf '%-18s %10s %8s %10s\n' "--redis-connections" "req/s" "x c1" "p99 ms"
base="$(median "${RPS[c${CONNECTIONS%% *}]}")"
for n in $CONNECTIONS; do
    rps="$(median "${RPS[c$n]}")"
    printf '%-18s %10.0f %8s %10.3f\n' "$n" "$rps" "$(awk -v a="$rps" -v b="$base" 'BEGIN {printf "%.2fx", a / b}')" "$(median "${P99[c$n]}")"
done
rounds=""
for n in $CONNECTIONS; do rounds="$rounds${rounds:+, }c$n [${RPS[c$n]} ]"; done
echo "per-round req/s: $rounds"
