#!/usr/bin/env bash
# Runs every check xpptp has: formatting, clippy, the whole test suite (including the RFC
# vectors, the reference-capture known answer and the tshark cross-check), the interop run
# with Debian's real PPTP client in a QEMU guest, and each fuzz target for a bounded time. This is the command the README gives and CI runs.
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

fuzz_seconds="${FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" -gt 0 ]; then
    scripts/fuzz.sh "$fuzz_seconds"
fi
log "all checks passed"
