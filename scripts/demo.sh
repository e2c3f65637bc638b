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
#      10.100.0.0/16, local on lo)    xpptp-control (TCP 1723, pool 10.64.0.0/20)  source)
#
# xpptp-datapath runs two-armed on x0/x1 with one worker per queue, xpptp-control serves
# TCP 1723 with users demo1..demoN. xpptp-bench then dials N clients (real PPTP control
# connections, MS-CHAPv2, MPPE-128) from N source addresses and sends traffic through them
# both ways while this script shows `xpptp sessions` and `xpptp stats`; at the end it prints
# the bench's report. Everything it made (namespaces, processes, files) is removed on exit,
# Ctrl-C included.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

clients=300
seconds=15
pps=20000
setup=1
usage() {
    sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
    echo "  --clients N   emulated clients to dial (default $clients, at most 4000)"
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
if [ "$clients" -lt 1 ] || [ "$clients" -gt 4000 ]; then
    echo "demo.sh: --clients must be 1 to 4000 (the demo's pool is 10.64.0.0/20)" >&2
    exit 2
fi

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
fail() { echo "demo.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces, XDP, raw sockets): run it with sudo"

if [ "$setup" -eq 1 ]; then
    step "installing what the build needs (scripts/setup.sh --demo)"
    scripts/setup.sh --demo
fi
step "building the release binaries"
cargo build --release --locked -p xpptp-datapath -p xpptp-control -p xpptp-bench
bin="$root/target/release"

tag="$$"
ns_c="xpptp-demo-clients-$tag"
ns_x="xpptp-demo-conc-$tag"
ns_i="xpptp-demo-inside-$tag"
work="$(mktemp -d /tmp/xpptp-demo.XXXXXX)"
pids=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "$ns_c" "$ns_x" "$ns_i"; do ip netns del "$ns" 2>/dev/null || true; done
    if [ "$status" -ne 0 ] && [ -d "$work" ]; then
        for log in "$work"/*.log; do
            [ -s "$log" ] || continue
            echo "--- last lines of $(basename "$log")" >&2
            tail -n 20 "$log" >&2
        done
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
trap 'echo; echo "demo.sh: interrupted, cleaning up" >&2; exit 130' INT TERM

step "network namespaces: $ns_c, $ns_x, $ns_i"
for ns in "$ns_c" "$ns_x" "$ns_i"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
# Two queues each side of the concentrator: one AF_XDP socket and one pinned worker per
# queue, as on a multi-queue NIC.
ip link add c0 netns "$ns_c" numtxqueues 2 numrxqueues 2 type veth peer name x0 netns "$ns_x" numtxqueues 2 numrxqueues 2
ip link add x1 netns "$ns_x" numtxqueues 2 numrxqueues 2 type veth peer name i0 netns "$ns_i" numtxqueues 2 numrxqueues 2
ip -n "$ns_c" addr add 172.31.0.2/24 dev c0
ip -n "$ns_x" addr add 172.31.0.1/24 dev x0
ip -n "$ns_x" addr add 172.31.1.1/24 dev x1
ip -n "$ns_i" addr add 172.31.1.2/24 dev i0
for l in "$ns_c c0" "$ns_x x0" "$ns_x x1" "$ns_i i0"; do
    set -- $l
    ip -n "$1" link set "$2" up
done
# The clients' outer addresses: the whole /16 is local in the clients' namespace, so the
# emulator binds one address per client without configuring thousands of addresses.
ip -n "$ns_c" route add local 10.100.0.0/16 dev lo
ip -n "$ns_c" route add default via 172.31.0.1
ip -n "$ns_x" route add 10.100.0.0/16 via 172.31.0.2
ip -n "$ns_i" route add 10.64.0.0/16 via 172.31.1.1
ip netns exec "$ns_x" sysctl -qw net.ipv4.ip_forward=1

step "configuration in $work"
mkdir -p "$work/run"
{
    echo "# user server secret addresses"
    for n in $(seq 1 "$clients"); do echo "demo$n pptpd \"demo-password-$n\" *"; done
} >"$work/chap-secrets"
chmod 600 "$work/chap-secrets"
cat >"$work/xpptp.toml" <<EOF
listen = "172.31.0.1:1723"
secrets = "$work/chap-secrets"
datapath_socket = "$work/run/datapath.sock"
control_socket = "$work/run/control.sock"

[addresses]
local = ["10.64.0.1"]
pool = ["10.64.0.10-10.64.15.254"]

[limits]
max_starting = 512
# Every emulated client has its own address, but the demo dials them all at once.
connections_per_source_per_minute = 0
EOF
"$bin/xpptp-control" --check --config "$work/xpptp.toml" >"$work/check.log" 2>&1 ||
    fail "the demo's configuration does not check: $(cat "$work/check.log")"

step "starting xpptp-datapath (XDP on x0 and x1) and xpptp-control"
ip netns exec "$ns_x" "$bin/xpptp-datapath" --interface x0 --inside x1 \
    --socket "$work/run/datapath.sock" --tunnel-address 10.64.0.1/20 \
    --stats-interval 5 >"$work/datapath.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -S "$work/run/datapath.sock" ] && break; sleep 0.1; done
[ -S "$work/run/datapath.sock" ] || fail "xpptp-datapath did not start"
ip netns exec "$ns_x" "$bin/xpptp-control" --config "$work/xpptp.toml" >"$work/control.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -S "$work/run/control.sock" ] && break; sleep 0.1; done
[ -S "$work/run/control.sock" ] || fail "xpptp-control did not start"
xpptp() { ip netns exec "$ns_x" "$bin/xpptp" --socket "$work/run/control.sock" "$@"; }
xpptp version
