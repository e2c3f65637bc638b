#!/usr/bin/env bash
# xpptp's demo, the README's main command: on a fresh machine, as root,
#
#     sudo scripts/demo.sh [--clients N] [--seconds S] [--pps P] [--no-setup]
#
# installs what the build needs (scripts/setup.sh --demo), builds the release binaries, and
# brings up three network namespaces:
#
#     clients  c0 172.31.0.2 ----- x0 172.31.0.1  concentrator  x1 172.31.1.1 ----- i0 172.31.1.2  inside
#     (emulated clients from          xpptp-datapath (XDP on x0 and x1)           (traffic sink and
#      10.100.0.0/16, local on lo)    xpptp-control (TCP 1723, pool 10.64.0.0/18)  source)
#
# (`xpptp-bench demo` builds them: bench/src/topology.rs). xpptp-datapath runs two-armed on
# x0/x1 with one worker per queue, xpptp-control serves TCP 1723 with users bench1..benchN.
# The emulator then dials N clients (real PPTP control connections, MS-CHAPv2, MPPE-128)
# from N source addresses and sends traffic through them both ways while the demo shows
# `xpptp sessions` and `xpptp stats`; at the end it prints the bench's report. Everything it
# made (namespaces, processes, files) is removed on exit, Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

clients=300
seconds=15
pps=20000
setup=1
usage() {
    sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
    echo "  --clients N   emulated clients to dial (default $clients)"
    echo "  --seconds S   how long traffic runs (default $seconds)"
    echo "  --pps P       packets per second offered each way (default $pps)"
    echo "  --no-setup    skip scripts/setup.sh (packages and toolchains already there)"
}
while [ $# -gt 0 ]; do
    case "$1" in
        --clients) clients="${2:?--clients needs a number}"; shift 2 ;;
        --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
        --pps) pps="${2:?--pps needs a number}"; shift 2 ;;
        --no-setup) setup=0; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "demo.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$clients$seconds$pps" in *[!0-9]*) echo "demo.sh: --clients, --seconds and --pps take whole numbers" >&2; exit 2 ;; esac

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { echo "demo.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces, XDP, raw sockets): run it with sudo"

if [ "$setup" -eq 1 ]; then
    step "installing what the build needs (scripts/setup.sh --demo)"
    scripts/setup.sh --demo
fi
step "building the release binaries"
cargo build --release --locked -p xpptp-datapath -p xpptp-control -p xpptp-bench

step "running the demo (target/release/xpptp-bench demo)"
exec "$root/target/release/xpptp-bench" demo --clients "$clients" --seconds "$seconds" --pps "$pps"
