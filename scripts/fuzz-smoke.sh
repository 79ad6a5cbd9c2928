#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz target in fuzz/ once, then runs each for a bounded
# time (FUZZ_SECONDS, default 30) starting from its seed corpus in fuzz/corpus/<target>/.
# Prints, per target, the executions and the time; fails when any target crashed (the input
# is left in fuzz/artifacts/<target>/).
#
# Needs a nightly toolchain (installed with rustup when missing) and cargo-fuzz (installed
# when missing). FUZZ_SANITIZER (default: none) is passed to `cargo fuzz --sanitizer`; the
# targets are built optimized with debug assertions, so overflows and failed assertions
# crash. Extra arguments name the targets to run (default: all).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_EACH="${FUZZ_SECONDS:-30}"
SANITIZER="${FUZZ_SANITIZER:-none}"
TOOLCHAIN="${FUZZ_TOOLCHAIN:-nightly}"

if ! rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1; then
    rustup toolchain install "$TOOLCHAIN" --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

cd "$REPO/fuzz"
fuzz=(cargo "+$TOOLCHAIN" fuzz)
build_flags=(--sanitizer "$SANITIZER" --debug-assertions)

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("${fuzz[@]}" list)
fi

echo "+ ${fuzz[*]} build ${build_flags[*]}" >&2
started=$(date +%s)
"${fuzz[@]}" build "${build_flags[@]}"
echo "built ${#targets[@]} targets in $(( $(date +%s) - started )) s"

summary=()
failed=()
for target in "${targets[@]}"; do
    log="$(mktemp)"
    echo
    echo "==> $target (${SECONDS_EACH} s)"
    # -timeout: one input taking longer than 10 s is a hang, reported as a crash.
    if ! "${fuzz[@]}" run "${build_flags[@]}" "$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $target failed; the input is in fuzz/artifacts/$target/" >&2
        failed+=("$target")
        summary+=("$(printf '%-16s CRASHED' "$target")")
        rm -f "$log"
        continue
    fi
    runs="$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | tail -n 1 || true)"
    summary+=("$(printf '%-16s %s' "$target" "${runs:-no summary (see the log above)}")")
    echo "${summary[-1]}"
    rm -f "$log"
done

echo
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "==> fuzz smoke: ${#failed[@]} target(s) crashed: ${failed[*]}" >&2
    exit 1
fi
echo "==> fuzz smoke: no crash"
