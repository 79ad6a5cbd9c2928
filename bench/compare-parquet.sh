#!/usr/bin/env bash
# Parquet scans (not run in CI): DuckDB (httpfs) and pyarrow scan a four-file Parquet dataset
# (about 35 MB) straight from the origin, then through s3cached twice (cold, then warm, each
# with a fresh client so nothing comes from the engine's own cache), with the release build.
# It runs the integration test's script (crates/s3cached-cli/tests/analytics_scan.py), which
# also checks that every scan returns the origin's results and that the warm scan reads
# nothing from the origin, and prints each scan's time.
#
# The origin is SeaweedFS on loopback (no added latency), so the cold scan shows s3cached's
# overhead and the warm one its speed-up over a fast origin; S3's 10-200 ms per request
# would widen the gap.
#
# Usage: bench/compare-parquet.sh   (S3CACHED_BIN=target/release/s3cached, built when missing)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="${S3CACHED_BIN:-$REPO/target/release/s3cached}"
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"
bench_init compare-parquet
if [ ! -x "$BIN" ]; then
    bench_log "building $BIN"
    (cd "$REPO" && cargo build --release -p s3cached-cli >&2)
fi
start_seaweed
start_s3cached s3cached
"$PY" - "$SEAWEED_PORT" <<PYEOF
import sys, boto3
boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1",
             aws_access_key_id="$ORIGIN_AK", aws_secret_access_key="$ORIGIN_SK").create_bucket(Bucket="parquet")
PYEOF
echo "machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); $("$BIN" --version); duckdb $("$PY" -c 'import duckdb; print(duckdb.__version__)'), pyarrow $("$PY" -c 'import pyarrow; print(pyarrow.__version__)')"
cd "$WORK"
PROXY_ENDPOINT="http://127.0.0.1:$STARTED_PORT" ORIGIN_ENDPOINT="http://127.0.0.1:$SEAWEED_PORT" \
    METRICS_URL="http://127.0.0.1:$STARTED_ADMIN/metrics" BUCKET=parquet \
    CLIENT_KEY="$CACHE_AK" CLIENT_SECRET="$CACHE_SK" ORIGIN_KEY="$ORIGIN_AK" ORIGIN_SECRET="$ORIGIN_SK" \
    "$PY" "$REPO/crates/s3cached-cli/tests/analytics_scan.py"
