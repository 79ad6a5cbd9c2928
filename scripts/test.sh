#!/usr/bin/env bash
# The project's test command: installs the test tools when missing
# (scripts/test-env.sh), then runs every test of the workspace:
#   cargo test --workspace --all-targets
# Extra arguments go to `cargo test`. When they select targets or packages
# themselves (e.g. `scripts/test.sh --test harness_smoke`), --all-targets and
# --workspace are left out so that only the selection runs.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Sourced so that S3CACHED_TEST_VENV and PATH carry over.
# shellcheck source=scripts/test-env.sh
source "$REPO/scripts/test-env.sh"

export S3CACHED_TEST_VENV="$REPO/.venv"
export PATH="$REPO/.venv/bin:$PATH"

select_targets=(--all-targets)
select_packages=(--workspace)
for arg in "$@"; do
    case "$arg" in
        --) break ;;
        --lib | --bin | --bin=* | --bins | --example | --example=* | --examples | \
            --test | --test=* | --tests | --bench | --bench=* | --benches | --doc | --all-targets)
            select_targets=() ;;
        -p | -p* | --package | --package=* | --workspace)
            select_packages=() ;;
    esac
done

cd "$REPO"
cmd=(cargo test "${select_packages[@]}" "${select_targets[@]}" "$@")
echo "+ ${cmd[*]}" >&2
exec "${cmd[@]}"
