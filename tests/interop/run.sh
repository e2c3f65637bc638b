#!/usr/bin/env bash
# Interop: Debian's own PPTP client (pppd 2.4.9 + pptp-linux 1.10, in a QEMU guest running
# Debian's kernel, which has the PPP/MPPE/PPTP modules this host lacks) dials xpptp running
# in a network namespace on the host.
#
#   tests/interop/run.sh [SCENARIO ...]     (as root; default: every scenario)
#
# Scenarios (each boots the guest once and dials once):
#   mppe128      MS-CHAPv2, MPPE-128 stateless (pppd's default with require-mppe-128)
#   stateful     MS-CHAPv2, MPPE-128 stateful (client option mppe-stateful)
#   mppe40       MS-CHAPv2, MPPE-40
#   badpass      a wrong password: the client must see the authentication fail
# Each up scenario pings through the tunnel both ways (guest -> concentrator's tunnel
# address, host -> the client's tunnel address), runs iperf3 both ways for a few seconds,
# hangs up like a user (SIGTERM to pppd), and checks that no call is left in the datapath
# and the address went back to the pool.
#
# The concentrator runs in namespace xpptp-interop-<pid> with a tap device to the guest; the
# server side is configured with Poptop's own files (pptpd.conf, pptpd-options,
# chap-secrets) as an operator's existing install would be. Everything is removed on exit,
# also on failure or Ctrl-C.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
bin="$target/debug"
guest="$target/interop-guest"
iperf_seconds="${XPPTP_INTEROP_IPERF_SECONDS:-3}"

ns="xpptp-interop-$$"
work="$(mktemp -d "${TMPDIR:-/tmp}/xpptp-interop.XXXXXX")"
pids=()

log() { printf '==> interop: %s\n' "$*"; }
fail() {
    printf 'interop FAILED: %s\n' "$*" >&2
    for f in "$work"/host-ping.txt "$work"/control.log "$work"/datapath.log "$work"/share/guest.log \
        "$work"/share/pppd.log "$work"/share/syslog.log "$work"/qemu.log; do
        [ -s "$f" ] && { echo "----- $f (last 40 lines)" >&2; tail -n 40 "$f" >&2; }
    done
    exit 1
}
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" -eq 0 ] || fail "needs root (network namespaces, tap, XDP); run it as root"
for b in xpptp-datapath xpptp-control; do
    [ -x "$bin/$b" ] || fail "$bin/$b is missing: run 'cargo build --workspace' first"
done
"$here/guest/build.sh" "$guest"
for t in qemu-system-x86_64 iperf3 ping; do
    command -v "$t" >/dev/null || fail "$t is missing (scripts/setup.sh installs it)"
done

# The concentrator's namespace: tap0 faces the guest; no other interface but lo.
ip netns add "$ns"
# For commands run to completion; background processes use `ip netns exec` directly, so
# that $! is the process itself (ip execs it), not a subshell whose kill would orphan it.
nsx() { ip netns exec "$ns" "$@"; }
nsx ip link set lo up
nsx ip tuntap add tap0 mode tap
nsx ip addr add 10.99.0.1/24 dev tap0
nsx ip link set tap0 up
nsx sysctl -qw net.ipv4.ip_forward=1

# Poptop's files, as an operator has them.
mkdir -p "$work/etc" "$work/run"
cat >"$work/etc/pptpd.conf" <<EOC
option $work/etc/pptpd-options
localip 192.168.77.1
remoteip 192.168.77.10-19
EOC
# pppd_options EXTRA: the server's pppd options file. Debian's pppd client asks for stateless
# MPPE even with mppe-stateful (which only allows stateful), so the stateful scenario runs
# the server with our own keyword mppe-prefer-stateful, which makes it ask for stateful.
pppd_options() {
    cat >"$work/etc/pptpd-options" <<EOC
name pptpd
refuse-pap
refuse-chap
refuse-mschap
require-mschap-v2
require-mppe
mppe-stateful
$1
ms-dns 192.168.77.1
lcp-echo-interval 5
lcp-echo-failure 3
EOC
}
cat >"$work/etc/chap-secrets" <<EOC
# client    server   secret              addresses
pptpuser    pptpd    "Pptp-Test-Pass-1"  *
EOC

control_pid=""
# (Re)starts xpptp-control with the current Poptop files; the datapath keeps running, and
# the restarted control plane resynchronises with it.
start_control() {
    if [ -n "$control_pid" ]; then
        kill "$control_pid"
        wait "$control_pid" 2>/dev/null || true
    fi
    ip netns exec "$ns" "$bin/xpptp-control" --pptpd-conf "$work/etc/pptpd.conf" \
        --chap-secrets "$work/etc/chap-secrets" --datapath-socket "$work/run/datapath.sock" \
        >>"$work/control.log" 2>&1 &
    control_pid=$!
    pids+=("$control_pid")
    for _ in $(seq 1 100); do
        nsx ss -Hltn 'sport = :1723' | grep -q LISTEN && break
        sleep 0.1
    done
    nsx ss -Hltn 'sport = :1723' | grep -q LISTEN || fail "xpptp-control is not listening on 1723"
}

start_daemons() {
    ip netns exec "$ns" "$bin/xpptp-datapath" --interface tap0 --socket "$work/run/datapath.sock" \
        --tunnel-address 192.168.77.1/24 --pool 192.168.77.0/24 --stats-interval 2 \
        >"$work/datapath.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
        [ -S "$work/run/datapath.sock" ] && break
        sleep 0.1
    done
    [ -S "$work/run/datapath.sock" ] || fail "xpptp-datapath did not start"
    ip netns exec "$ns" iperf3 -s -B 192.168.77.1 >"$work/iperf3-server.log" 2>&1 &
    pids+=($!)
}

# Calls the datapath holds now.
datapath_calls() {
    nsx "$bin/xpptp-datapath" calls --socket "$work/run/datapath.sock" --json |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

run_scenario() {
    local name="$1" opts password expect
    case "$name" in
    mppe128) opts="require-mppe-128" password="Pptp-Test-Pass-1" expect=up ;;
    stateful) opts="require-mppe-128
mppe-stateful" password="Pptp-Test-Pass-1" expect=up ;;
    mppe40) opts="require-mppe-40" password="Pptp-Test-Pass-1" expect=up ;;
    badpass) opts="require-mppe-128" password="not-the-password" expect=auth-fail ;;
    *) fail "unknown scenario $name (mppe128 stateful mppe40 badpass)" ;;
    esac
    local server_extra=""
    [ "$name" = stateful ] && server_extra="mppe-prefer-stateful"
    pppd_options "$server_extra"
    start_control
    local share="$work/share"
    rm -rf "$share"
    mkdir -p "$share"
    cp "$here/guest/dial.sh" "$share/guest.sh"
    cat >"$share/scenario.env" <<EOS
CLIENT_ADDR=10.99.0.2/24
SERVER=10.99.0.1
PPP_USER=pptpuser
PPP_PASSWORD='$password'
REMOTENAME=pptpd
MPPE_OPTS='$opts'
EXPECT=$expect
PING_TARGETS=192.168.77.1
IPERF_SERVER=$([ "$expect" = up ] && echo 192.168.77.1)
IPERF_SECONDS=$iperf_seconds
EOS
    log "$name: booting the guest"
    local started=$SECONDS
    ip netns exec "$ns" timeout 300 qemu-system-x86_64 -m 512 -smp 1 -nographic -no-reboot \
        -kernel "$guest/vmlinux" -initrd "$guest/initrd.gz" \
        -append "console=ttyS0 quiet panic=-1" \
        -virtfs "local,path=$share,mount_tag=xpptp,security_model=none,id=share" \
        -netdev tap,id=net0,ifname=tap0,script=no,downscript=no \
        -device virtio-net-pci,netdev=net0,mac=52:54:00:99:00:02 \
        >"$work/qemu.log" 2>&1 &
    local qemu=$!
    # While the guest's link is up, ping its tunnel address from the concentrator's side.
    if [ "$expect" = up ]; then
        for _ in $(seq 1 1200); do
            grep -q '^UP=' "$share/result.txt" 2>/dev/null && break
            kill -0 "$qemu" 2>/dev/null || break
            sleep 0.25
        done
        local client
        client="$(sed -n 's/^LOCAL=\([0-9.]*\).*/\1/p' "$share/result.txt" 2>/dev/null)"
        if [ -n "$client" ] && nsx ping -c 3 -W 3 "$client" >"$work/host-ping.txt" 2>&1; then
            echo ok >"$share/host-ping"
        else
            echo fail >"$share/host-ping"
        fi
    fi
    wait "$qemu" || fail "$name: qemu failed (see qemu.log)"
    [ -f "$share/status" ] || fail "$name: the guest did not finish its script"
    local r="$share/result.txt"
    log "$name: guest done in $((SECONDS - started)) s: $(tr '\n' ' ' <"$r")"
    if [ "$expect" = up ]; then
        grep -qx 'UP=yes' "$r" || fail "$name: the tunnel did not come up"
        grep -qx 'PING_192.168.77.1=ok' "$r" || fail "$name: ping through the tunnel failed"
        [ "$(cat "$share/host-ping")" = ok ] || fail "$name: ping from the concentrator to the client failed"
        grep -qx 'IPERF_UP=0' "$r" || fail "$name: iperf3 upstream failed"
        grep -qx 'IPERF_DOWN=0' "$r" || fail "$name: iperf3 downstream failed"
        local up down
        up="$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$share/iperf-up.json")"
        down="$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$share/iperf-down.json")"
        log "$name: iperf3 upstream $((up / 1000)) kbit/s, downstream $((down / 1000)) kbit/s (TCG guest)"
        case "$name" in
        stateful) grep -q 'MPPE 128-bit stateful compression enabled' "$share/pppd.log" ||
            fail "$name: pppd did not report stateful MPPE-128" ;;
        mppe40) grep -q 'MPPE 40-bit stateless compression enabled' "$share/pppd.log" ||
            fail "$name: pppd did not report MPPE-40" ;;
        mppe128) grep -q 'MPPE 128-bit stateless compression enabled' "$share/pppd.log" ||
            fail "$name: pppd did not report stateless MPPE-128" ;;
        esac
    else
        grep -qx 'UP=no' "$r" || fail "$name: the tunnel came up with a wrong password"
        # pppd's exit status 19: "we failed to authenticate ourselves to the peer".
        grep -qx 'PPPD_EXIT=19' "$r" || fail "$name: pppd did not exit with 19 (authentication failed)"
    fi
    # The hang-up (or the refusal) leaves nothing behind in the datapath.
    local n=""
    for _ in $(seq 1 50); do
        n="$(datapath_calls)"
        [ "$n" = 0 ] && break
        sleep 0.2
    done
    [ "$n" = 0 ] || fail "$name: $n call(s) left in the datapath after the hang-up"
    log "$name: PASS"
}

start_daemons
scenarios=("$@")
[ "${#scenarios[@]}" -gt 0 ] || scenarios=(mppe128 stateful mppe40 badpass)
for s in "${scenarios[@]}"; do
    run_scenario "$s"
done
log "all passed: ${scenarios[*]}"
