#!/usr/bin/env bash
# Runs cargo-fuzz targets of proto/fuzz for SECONDS each (default 60) and fails on the first
# crash, printing its report. Crashing inputs land in proto/fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (all targets when none are named)
set -euo pipefail
cd "$(dirname "$0")/../proto"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

logdir="$(mktemp -d)"
trap 'rm -rf "$logdir"' EXIT
printf '==> cargo fuzz build (%d targets)\n' "${#targets[@]}"
cargo +nightly fuzz build --debug-assertions
for t in "${targets[@]}"; do
    log="$logdir/$t.log"
    if ! cargo +nightly fuzz run --debug-assertions "$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        printf 'fuzz target %s failed: the crashing input is in proto/fuzz/artifacts/%s/\n' "$t" "$t" >&2
        exit 1
    fi
    runs="$(grep -m1 -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
    printf '==> fuzz %-22s %ss, %s runs, no crash\n' "$t" "$seconds" "$runs"
done
