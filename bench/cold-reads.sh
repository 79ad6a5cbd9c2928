#!/usr/bin/env bash
# Cold reads against a distant origin (not run in CI): SeaweedFS behind the bench's delaying
# relay (14 ms per round trip; a second scenario adds a 50 MB/s cap per connection), read
# directly and through s3cached with a cold cache, in one run: whole GETs of 128 MiB objects
# (first, second), a cold 64 KiB range (first byte and whole), and a whole GET from cold blocks
# for several --origin-parallelism values; and 500 misses of small objects against a relay that
# delays 1 % of round trips by 200 ms more, with --hedge-after off and 30ms. Prints a table of
# medians of 3 rounds (percentiles for the misses), each as a
# ratio to the direct read of the same run (crates/s3cached-cli/benches/cold_reads.rs).
#
# Usage: bench/cold-reads.sh [whole|hedging]   (one part only; default: both)
# Installs SeaweedFS and the test tools through scripts/test-env.sh; builds in release mode.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/test-env.sh
source "$REPO/scripts/test-env.sh"
export S3CACHED_TEST_VENV="$REPO/.venv"
export PATH="$REPO/.venv/bin:$PATH"
cd "$REPO"
exec cargo bench -p s3cached-cli --bench cold_reads -- "$@"
