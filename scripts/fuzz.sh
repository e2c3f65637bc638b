#!/usr/bin/env bash
# Runs the cargo-fuzz targets of proto/fuzz, control/fuzz and bench/fuzz for SECONDS each
# (default 60) and fails on the first crash, printing its report. Crashing inputs land in
# CRATE/fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (all targets when none are named)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

seconds="${1:-60}"
shift || true
wanted=("$@")

logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT

# ctlconf: every crate with a cargo-fuzz workspace, proto's and control's; a named target
# runs in the crate that has it. fuzzb: and bench's.
ran=0
for crate in proto control bench; do
    cd "$root/$crate"
    mapfile -t available < <(cargo +nightly fuzz list)
    targets=()
    for t in "${available[@]}"; do
        if [ "${#wanted[@]}" -eq 0 ] || printf '%s\n' "${wanted[@]}" | grep -qx "$t"; then
            targets+=("$t")
        fi
    done
    [ "${#targets[@]}" -eq 0 ] && continue
    printf '==> cargo fuzz build in %s (%d targets)\n' "$crate" "${#targets[@]}"
    cargo +nightly fuzz build --debug-assertions
    for t in "${targets[@]}"; do
        log="$logdir/$crate-$t.log"
        if ! cargo +nightly fuzz run --debug-assertions "$t" -- \
            -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
            tail -n 60 "$log"
            printf 'fuzz target %s failed: the crashing input is in %s/fuzz/artifacts/%s/\n' "$t" "$crate" "$t" >&2
            exit 1
        fi
        runs="$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
        printf '==> fuzz %-22s %ss, %s runs, no crash\n' "$t" "$seconds" "$runs"
        ran=$((ran + 1))
    done
done
if [ "$ran" -eq 0 ]; then
    printf 'no fuzz target named %s in proto/fuzz, control/fuzz or bench/fuzz\n' "${wanted[*]}" >&2
    exit 1
fi
# ctlconf: end
