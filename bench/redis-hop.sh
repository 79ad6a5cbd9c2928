#!/usr/bin/env bash
# What one network hop costs a Redis GET on this machine (not run in CI): `redis-benchmark -t get`
# of one pre-populated value of SIZE bytes, straight to redis-server and through HAProxy in TCP
# mode (a relay that only moves bytes, with splice(2) so they are not even copied through user
# space), in interleaved rounds. A cache in front of Redis moves every value twice as well (from
# Redis, then to its client), so the relay's rate over the direct one bounds what any such cache
# can reach against `redis-benchmark` when all of them share the same CPUs.
#
# `all us` is the whole machine's busy CPU time per request (/proc/stat), clients included.
#
# Usage: bench/redis-hop.sh      SIZE=1048576 CONNS=16 THREADS=2 REQUESTS=20000 RUNS=5
# Needs redis-server, redis-benchmark (Debian redis-tools) and haproxy.
set -euo pipefail

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SIZE="${SIZE:-1048576}"
CONNS="${CONNS:-16}"
THREADS="${THREADS:-2}"
REQUESTS="${REQUESTS:-20000}"
RUNS="${RUNS:-5}"
PY="${PY:-python3}"

for tool in redis-server redis-benchmark redis-cli haproxy; do
    command -v "$tool" >/dev/null 2>&1 || { echo "redis-hop: $tool not found (apt-get install redis-server redis-tools haproxy)" >&2; exit 1; }
done

WORK="$(mktemp -d /tmp/s3cached-redis-hop.XXXXXX)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

RP="$(free_port_pair)"
HP="$(free_port_pair)"
start_redis "$RP" "$WORK"
cat >"$WORK/haproxy.cfg" <<EOF
global
    maxconn 1024
defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    option splice-request
    option splice-response
listen redis
    bind 127.0.0.1:$HP
    server redis 127.0.0.1:$RP
EOF
haproxy -f "$WORK/haproxy.cfg" -db >"$WORK/haproxy.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$HP" ping >/dev/null 2>&1 && break; sleep 0.1; done

redis_benchmark_key "$RP" "$SIZE" "$HP" || exit 1

declare -A RPS ALL
for round in $(seq "$RUNS"); do
    for target in direct:"$RP" haproxy:"$HP"; do
        name="${target%%:*}" port="${target##*:}"
        before="$(busy_ticks)"
        rps="$(redis-benchmark -h 127.0.0.1 -p "$port" -t get -d "$SIZE" -c "$CONNS" --threads "$THREADS" \
            -n "$REQUESTS" --csv | awk -F'"' 'NR==2 {print $4}')"
        busy="$(($(busy_ticks) - before))"
        RPS[$name]="${RPS[$name]:-} $rps"
        ALL[$name]="${ALL[$name]:-} $(us_per_request "$busy" "$REQUESTS")"
        echo "round $round/$RUNS: $name $rps req/s" >&2
    done
done

echo "redis-benchmark -t get -d $SIZE -c $CONNS --threads $THREADS -n $REQUESTS, medians of $RUNS rounds"
echo "machine: $(nproc) CPUs; $(redis-server --version | awk '{print $1, $2, $3}'); $(haproxy -v | head -n1 | awk '{print $1, $2, $3}')"
printf '%-10s %10s %8s %10s %10s\n' target req/s GB/s "x direct" "all us"
d="$(median "${RPS[direct]}")"
for name in direct haproxy; do
    r="$(median "${RPS[$name]}")"
    printf '%-10s %10.0f %8.3f %10s %10s\n' "$name" "$r" "$(awk -v a="$r" -v s="$SIZE" 'BEGIN {printf "%.3f", a * s / 1e9}')" \
        "$(awk -v a="$r" -v b="$d" 'BEGIN {printf "%.2fx", a / b}')" "$(median "${ALL[$name]}")"
done
echo "per-round req/s: direct [${RPS[direct]} ], haproxy [${RPS[haproxy]} ]"
