#!/usr/bin/env bash
# Interop: Debian's own PPTP client (pppd 2.4.9 + pptp-linux 1.10, in a QEMU guest running
# Debian's kernel, which has the PPP/MPPE/PPTP modules this host lacks) dials xpptp running
# in a network namespace on the host.
#
#   tests/interop/run.sh [SCENARIO ...]     (as root; default: every scenario)
#
# Scenarios (each boots the guest once):
#   mppe128      MS-CHAPv2, MPPE-128 stateless (pppd's default with require-mppe-128)
#   stateful     MS-CHAPv2, MPPE-128 stateful (client option mppe-stateful)
#   mppe40       MS-CHAPv2, MPPE-40
#   badpass      a wrong password: the client must see the authentication fail
#   nat          two clients (two users) behind one nftables masquerade with the PPTP
#                conntrack helper, both up at once: the datapath must tell their calls apart
#                by call ID, as both have the NAT's address
# Each of the first four dials once; each up scenario pings through the tunnel both ways
# (guest -> concentrator's tunnel address, host -> the client's tunnel address), runs iperf3
# both ways for a few seconds, hangs up like a user (SIGTERM to pppd), and checks that no
# call is left in the datapath and the address went back to the pool (the pool has one
# address, and the next scenario under the same control plane dials again). `nat` (guest side:
# guest/nat.sh) checks that both sessions came up with distinct tunnel addresses over two
# control connections, that the datapath held two calls with the NAT's address and distinct
# call IDs (the peers' call IDs being those the NAT's helper translated the clients' into),
# that both carried traffic at the same time (pings both ways, concurrent iperf3; the
# datapath's per-call counters), and that both hang-ups leave no call behind.
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
        "$work"/share/pppd.log "$work"/share/pppd-1.log "$work"/share/pppd-2.log \
        "$work"/share/nft.txt "$work"/share/conntrack.txt "$work"/share/syslog.log "$work"/qemu.log; do
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

# Poptop's files, as an operator has them. pptpd_conf REMOTEIP: the pool. The single-client
# scenarios share one address (192.168.77.10) under one running control plane, so each
# dial after the first proves that the hang-up before it returned the address.
mkdir -p "$work/etc" "$work/run"
pptpd_conf() {
    cat >"$work/etc/pptpd.conf" <<EOC
option $work/etc/pptpd-options
localip 192.168.77.1
remoteip $1
EOC
}
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
pptpuser2   pptpd    "Pptp-Test-Pass-2"  *
EOC

control_pid=""
control_files=""
# (Re)starts xpptp-control when the Poptop files changed since it started (the datapath
# keeps running, and a restarted control plane resynchronises with it).
start_control() {
    local files
    files="$(cat "$work/etc/pptpd.conf" "$work/etc/pptpd-options" | sha256sum)"
    [ "$files" = "$control_files" ] && return 0
    control_files="$files"
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
    # One iperf3 server per concurrent client (an iperf3 server runs one test at a time).
    for port in 5201 5202; do
        ip netns exec "$ns" iperf3 -s -B 192.168.77.1 -p "$port" >"$work/iperf3-server-$port.log" 2>&1 &
        pids+=($!)
    done
}

# Calls the datapath holds now.
datapath_calls() {
    nsx "$bin/xpptp-datapath" calls --socket "$work/run/datapath.sock" --json |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)))'
}

# boot_guest SHARE: starts the guest in the background with SHARE as its 9p share (which
# holds guest.sh); sets $qemu to its pid.
qemu=""
boot_guest() {
    ip netns exec "$ns" timeout 300 qemu-system-x86_64 -m 512 -smp 1 -nographic -no-reboot \
        -kernel "$guest/vmlinux" -initrd "$guest/initrd.gz" \
        -append "console=ttyS0 quiet panic=-1" \
        -virtfs "local,path=$1,mount_tag=xpptp,security_model=none,id=share" \
        -netdev tap,id=net0,ifname=tap0,script=no,downscript=no \
        -device virtio-net-pci,netdev=net0,mac=52:54:00:99:00:02 \
        >"$work/qemu.log" 2>&1 &
    qemu=$!
}

# wait_guest_line SHARE PATTERN: waits until the guest's result.txt has a line matching the
# grep pattern, or the guest is gone (up to 5 minutes).
wait_guest_line() {
    for _ in $(seq 1 1200); do
        grep -q "$2" "$1/result.txt" 2>/dev/null && return 0
        kill -0 "$qemu" 2>/dev/null || return 1
        sleep 0.25
    done
    return 1
}

# Waits until the datapath holds no call (up to 10 s); fails the scenario otherwise.
expect_no_calls() {
    local n=""
    for _ in $(seq 1 50); do
        n="$(datapath_calls)"
        [ "$n" = 0 ] && break
        sleep 0.2
    done
    [ "$n" = 0 ] || fail "$1: $n call(s) left in the datapath after the hang-up"
}

run_scenario() {
    local name="$1" opts password expect
    [ "$name" = nat ] && { run_nat; return; }
    case "$name" in
    mppe128) opts="require-mppe-128" password="Pptp-Test-Pass-1" expect=up ;;
    stateful) opts="require-mppe-128
mppe-stateful" password="Pptp-Test-Pass-1" expect=up ;;
    mppe40) opts="require-mppe-40" password="Pptp-Test-Pass-1" expect=up ;;
    badpass) opts="require-mppe-128" password="not-the-password" expect=auth-fail ;;
    *) fail "unknown scenario $name (mppe128 stateful mppe40 badpass nat)" ;;
    esac
    local server_extra=""
    [ "$name" = stateful ] && server_extra="mppe-prefer-stateful"
    pppd_options "$server_extra"
    pptpd_conf 192.168.77.10
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
    boot_guest "$share"
    # While the guest's link is up, ping its tunnel address from the concentrator's side.
    if [ "$expect" = up ]; then
        wait_guest_line "$share" '^UP=' || true
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
    expect_no_calls "$name"
    log "$name: PASS"
}

# The `nat` scenario: two client namespaces behind one masquerading NAT namespace in the
# guest (guest/nat.sh), each dialing as its own user, both up at once.
run_nat() {
    local name=nat nat_addr=10.99.0.2 pings=20
    pppd_options ""
    pptpd_conf 192.168.77.10-11
    start_control
    local share="$work/share"
    rm -rf "$share"
    mkdir -p "$share"
    cp "$here/guest/nat.sh" "$share/guest.sh"
    cat >"$share/scenario.env" <<EOS
NAT_ADDR=$nat_addr/24
SERVER=10.99.0.1
REMOTENAME=pptpd
PPP_USER_1=pptpuser
PPP_PASSWORD_1='Pptp-Test-Pass-1'
PPP_USER_2=pptpuser2
PPP_PASSWORD_2='Pptp-Test-Pass-2'
MPPE_OPTS='require-mppe-128'
PING_TARGET=192.168.77.1
PING_COUNT=$pings
IPERF_SERVER=192.168.77.1
IPERF_PORT_1=5201
IPERF_PORT_2=5202
IPERF_SECONDS=$iperf_seconds
EOS
    log "$name: booting the guest"
    local started=$SECONDS
    boot_guest "$share"
    local r="$share/result.txt" local_1="" local_2="" tcp=0
    # While both links are up: what the datapath and the control plane hold, then pings to
    # both tunnel addresses from the concentrator's side.
    if wait_guest_line "$share" '^UP=yes' ; then
        nsx "$bin/xpptp-datapath" calls --socket "$work/run/datapath.sock" --json >"$work/calls-up.json" ||
            fail "$name: xpptp-datapath calls failed"
        tcp="$(nsx ss -Htn state established '( sport = :1723 )' | wc -l)"
        local_1="$(sed -n 's/^LOCAL_1=\([0-9.]*\).*/\1/p' "$r")"
        local_2="$(sed -n 's/^LOCAL_2=\([0-9.]*\).*/\1/p' "$r")"
        if nsx ping -c 3 -W 3 "$local_1" >"$work/host-ping.txt" 2>&1 &&
            nsx ping -c 3 -W 3 "$local_2" >>"$work/host-ping.txt" 2>&1; then
            echo ok >"$share/host-ping"
        else
            echo fail >"$share/host-ping"
        fi
        # After both clients' traffic, before their hang-up: the per-call counters.
        if wait_guest_line "$share" '^TRAFFIC=done'; then
            nsx "$bin/xpptp-datapath" calls --socket "$work/run/datapath.sock" --json \
                >"$work/calls-traffic.json" || fail "$name: xpptp-datapath calls failed"
        fi
        echo done >"$share/host-done"
    fi
    wait "$qemu" || fail "$name: qemu failed (see qemu.log)"
    [ -f "$share/status" ] || fail "$name: the guest did not finish its script"
    log "$name: guest done in $((SECONDS - started)) s: $(tr '\n' ' ' <"$r")"
    grep -q '^MODULE_MISSING=' "$r" && fail "$name: the guest lacks $(sed -n 's/^MODULE_MISSING=//p' "$r" | tr '\n' ' ')"
    grep -qx 'NFT=fail' "$r" && fail "$name: the guest's nftables ruleset did not load (see guest.log)"
    grep -qx 'UP_1=yes' "$r" || fail "$name: client 1 did not come up (see pppd-1.log)"
    grep -qx 'UP_2=yes' "$r" || fail "$name: client 2 did not come up (see pppd-2.log)"
    [ -n "$local_1" ] && [ -n "$local_2" ] || fail "$name: no tunnel addresses in result.txt"
    [ "$local_1" != "$local_2" ] || fail "$name: both clients got the tunnel address $local_1"
    [ "$tcp" = 2 ] || fail "$name: $tcp control connection(s) on 1723 while both were up, expected 2"
    grep -qx 'PING_1=0' "$r" || fail "$name: client 1's pings through the tunnel failed"
    grep -qx 'PING_2=0' "$r" || fail "$name: client 2's pings through the tunnel failed"
    [ "$(cat "$share/host-ping")" = ok ] || fail "$name: ping from the concentrator to a client failed"
    grep -qx 'CT_GRE_1=1' "$r" || fail "$name: the NAT does not track client 1's GRE as one flow (see conntrack.txt)"
    grep -qx 'CT_GRE_2=1' "$r" || fail "$name: the NAT does not track client 2's GRE as one flow (see conntrack.txt)"
    local nat_ids
    nat_ids="$(sed -n 's/^NAT_CALL_ID_[12]=[0-9]*:\([0-9]*\)$/\1/p' "$r" | tr '\n' ' ')"
    grep -qx 'IPERF_1=0' "$r" || fail "$name: client 1's iperf3 failed"
    grep -qx 'IPERF_2=0' "$r" || fail "$name: client 2's iperf3 failed"
    for i in 1 2; do
        grep -q 'MPPE 128-bit stateless compression enabled' "$share/pppd-$i.log" ||
            fail "$name: client $i's pppd did not report stateless MPPE-128"
    done
    [ -s "$work/calls-traffic.json" ] || fail "$name: the guest did not finish its traffic"
    # The datapath's view: two calls, both from the NAT's address, told apart by call ID,
    # each with its own user and tunnel address, each having carried the pings both ways.
    local check
    # The peers' call IDs are the ones the NAT's helper translated the clients' into.
    check="$(python3 - "$work/calls-up.json" "$work/calls-traffic.json" "$nat_addr" \
        "$local_1" "$local_2" "$pings" "$nat_ids" <<'PY'
import json, sys
up = json.load(open(sys.argv[1]))
after = json.load(open(sys.argv[2]))
nat, local_1, local_2, pings = sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6])
nat_ids = {int(x) for x in sys.argv[7].split()}
def fail(msg):
    print("FAIL " + msg)
    sys.exit(0)
if len(up) != 2:
    fail(f"the datapath held {len(up)} call(s) while both were up, expected 2")
peers = {c["peer_address"] for c in up}
if peers != {nat}:
    fail(f"peer addresses {sorted(peers)}, expected only the NAT's {nat}")
ids = {c["local_call_id"] for c in up}
if len(ids) != 2:
    fail(f"both calls have the call ID {ids.pop()}")
tunnels = {c["client_tunnel_address"] for c in up}
if tunnels != {local_1, local_2}:
    fail(f"tunnel addresses {sorted(tunnels)}, the clients have {local_1} and {local_2}")
peer_ids = {c["peer_call_id"] for c in up}
if peer_ids != nat_ids or len(nat_ids) != 2:
    fail(f"peer call IDs {sorted(peer_ids)}, the NAT translated the clients' into {sorted(nat_ids)}")
users = {bytes(c["user"] or []).decode(errors="replace") for c in up}
if users != {"pptpuser", "pptpuser2"}:
    fail(f"users {sorted(users)}, expected pptpuser and pptpuser2")
by_id = {c["local_call_id"]: c for c in after}
if set(by_id) != ids:
    fail(f"calls {sorted(ids)} while up, {sorted(by_id)} after the traffic")
out = []
for i in sorted(ids):
    c = by_id[i]
    upk, downk = c["upstream"]["packets"], c["downstream"]["packets"]
    if upk < pings or downk < pings:
        fail(f"call {i} carried {upk} packets up and {downk} down, fewer than the {pings} pings")
    out.append(f"call {i} (peer call {c['peer_call_id']}, {bytes(c['user']).decode()}, "
               f"{c['client_tunnel_address']}): {upk} packets up, {downk} down")
print("OK peer " + nat + "; " + "; ".join(out))
PY
)"
    case "$check" in
    OK*) log "$name: datapath: ${check#OK }" ;;
    *) fail "$name: ${check#FAIL }" ;;
    esac
    local up1 up2
    up1="$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$share/iperf-1.json")"
    up2="$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$share/iperf-2.json")"
    log "$name: concurrent iperf3 upstream: client 1 $((up1 / 1000)) kbit/s, client 2 $((up2 / 1000)) kbit/s (TCG guest)"
    expect_no_calls "$name"
    log "$name: PASS"
}

start_daemons
scenarios=("$@")
# mppe128, mppe40 and badpass run under one control plane with a one-address pool.
[ "${#scenarios[@]}" -gt 0 ] || scenarios=(mppe128 mppe40 badpass stateful nat)
for s in "${scenarios[@]}"; do
    run_scenario "$s"
done
log "all passed: ${scenarios[*]}"
