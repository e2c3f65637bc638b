#!/usr/bin/env bash
# Runs every check xpptp has: formatting, clippy, the whole test suite (including the RFC
# vectors, the reference-capture known answer and the tshark cross-check), the interop run
# with Debian's real PPTP client in a QEMU guest, the README's demo, and each fuzz target
# for a bounded time. This is the command the README gives and CI runs.
#
#   FUZZ_SECONDS=N   seconds per fuzz target (default 20; 0 skips fuzzing, for quick local runs)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

scripts/setup.sh

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

log "cargo test"
cargo test --workspace --locked

# Debian's pppd + pptp-linux in a QEMU guest dial the daemons built above.
log "interop with the real Linux client"
cargo build --workspace --locked --bins
tests/interop/run.sh

# The README's main command, bounded: 200 emulated clients dialled through the concentrator
# in namespaces, traffic both ways, the operator's view; its output is checked.
log "the README's demo (scripts/demo.sh)"
demo_log="$(mktemp)"
timeout 1200 scripts/demo.sh --no-setup --clients 200 --seconds 6 --pps 10000 2>&1 | tee "$demo_log"
python3 scripts/check-demo.py 200 "$demo_log"
rm -f "$demo_log"

fuzz_seconds="${FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" -gt 0 ]; then
    scripts/fuzz.sh "$fuzz_seconds"
fi
log "all checks passed"
