# Runs in the interop guest as /mnt/guest.sh's body for the `nat` scenario: two PPTP clients
# behind one masquerading NAT dial xpptp at the same time, as two users of a home or office
# network behind one router would.
#
#   namespace nat:  eth0 (NAT_ADDR, towards the concentrator), n1 and n2 (172.16.0.1 peer
#                   172.16.0.11 / .12), nftables masquerade out of eth0 with the PPTP
#                   conntrack helper on TCP 1723 (nf_conntrack_pptp + nf_nat_pptp: it tracks
#                   the call IDs so that the two clients' GRE can share one outer address)
#   namespace c1:   veth0 172.16.0.11, default route via the NAT, pppd + pptp-linux (user 1)
#   namespace c2:   veth0 172.16.0.12, likewise (user 2)
#
# /mnt/scenario.env (written by the host side) sets:
#   NAT_ADDR        the NAT's eth0 address with prefix (10.99.0.2/24)
#   SERVER          the concentrator's address
#   REMOTENAME      the server's name in chap-secrets
#   PPP_USER_1 PPP_PASSWORD_1 PPP_USER_2 PPP_PASSWORD_2
#   MPPE_OPTS       pppd options for both clients
#   PING_TARGET     the concentrator's tunnel address, pinged by both clients at once
#   PING_COUNT      echo requests per client (0.2 s apart)
#   IPERF_SERVER    address of the iperf3 servers reached through the tunnel
#   IPERF_PORT_1 IPERF_PORT_2  one iperf3 server per client (iperf3 serves one test at once)
#   IPERF_SECONDS   seconds of iperf3 per client, both at once
# Handshake through /mnt: we write UP=yes (after LOCAL_1/LOCAL_2) when both links have their
# addresses; the host lists the datapath's calls, pings both tunnel addresses and writes
# /mnt/host-ping; when our own traffic is done we write TRAFFIC=done, the host lists the calls
# again (their counters) and writes /mnt/host-done; then both clients hang up.
# Results: result.txt (KEY=VALUE lines the host checks), pppd-1.log, pppd-2.log, syslog.log,
# ping-1.txt, ping-2.txt, iperf-1.json, iperf-2.json, nft.txt, conntrack.txt.
set -u
. /mnt/scenario.env
result=/mnt/result.txt
: >"$result"
say() { echo "$1" >>"$result"; }
nsx() { ns="$1"; shift; ip netns exec "$ns" "$@"; }

# pptp-linux logs only to syslog.
busybox syslogd -n -O /mnt/syslog.log &

# /init loaded them; the helper cannot be assigned without them.
for m in nf_conntrack_pptp nf_nat_pptp; do
    [ -d "/sys/module/$m" ] || say "MODULE_MISSING=$m"
done

# The NAT: it owns eth0.
ip netns add nat
ip link set eth0 netns nat
nsx nat ip link set lo up
nsx nat ip link set eth0 up
nsx nat ip addr add "$NAT_ADDR" dev eth0
nsx nat sysctl -qw net.ipv4.ip_forward=1
for i in 1 2; do
    ip netns add "c$i"
    ip link add "n$i" netns nat type veth peer name veth0 netns "c$i"
    nsx nat ip addr add 172.16.0.1 peer "172.16.0.1$i" dev "n$i"
    nsx nat ip link set "n$i" up
    nsx "c$i" ip link set lo up
    nsx "c$i" ip addr add "172.16.0.1$i" peer 172.16.0.1 dev veth0
    nsx "c$i" ip link set veth0 up
    nsx "c$i" ip route add default via 172.16.0.1 dev veth0
done
# The PPTP helper is assigned explicitly (automatic assignment is off since Linux 4.7); it
# must see the control connection from its first packet, hence prerouting, before the
# connection is confirmed.
nsx nat nft -f - <<'EON' || say "NFT=fail"
table ip nat {
    ct helper pptp {
        type "pptp" protocol tcp
        l3proto ip
    }
    chain prerouting {
        type filter hook prerouting priority filter; policy accept;
        iifname { "n1", "n2" } tcp dport 1723 ct helper set "pptp"
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "eth0" masquerade
    }
}
EON
nsx nat nft list ruleset >/mnt/nft.txt 2>&1

# One chap-secrets for both clients; each has its own peers file, link name and ppp unit.
mkdir -p /etc/ppp/peers
{
    printf '%s %s "%s" *\n' "$PPP_USER_1" "$REMOTENAME" "$PPP_PASSWORD_1"
    printf '%s %s "%s" *\n' "$PPP_USER_2" "$REMOTENAME" "$PPP_PASSWORD_2"
} >/etc/ppp/chap-secrets
chmod 600 /etc/ppp/chap-secrets
for i in 1 2; do
    eval "user=\$PPP_USER_$i"
    # --localbind also names pptp-linux's call manager socket (/var/run/pptp/SERVER:ADDR):
    # without it the second client would hand its call to the first one's call manager, in
    # the other namespace, over the same control connection.
    cat >"/etc/ppp/peers/xpptp$i" <<EOP
pty "pptp $SERVER --nolaunchpppd --loglevel 1 --localbind 172.16.0.1$i"
name $user
remotename $REMOTENAME
$MPPE_OPTS
file /etc/ppp/options.pptp
ipparam xpptp$i
linkname xpptp$i
unit $((i - 1))
noauth
nodefaultroute
debug
logfile /mnt/pppd-$i.log
EOP
done

# `ip netns exec` execs pppd: $! is pppd itself.
ip netns exec c1 pppd call xpptp1 nodetach &
pppd_1=$!
ip netns exec c2 pppd call xpptp2 nodetach &
pppd_2=$!

# pppd may report the link before IPv4 is configured: wait for each pppN's address.
addr_of() { nsx "c$1" ip -4 addr show dev "ppp$(($1 - 1))" 2>/dev/null | awk '/inet / {print $2; exit}'; }
up_1=no up_2=no
for _ in $(seq 1 200); do
    [ -n "$(addr_of 1)" ] && up_1=yes
    [ -n "$(addr_of 2)" ] && up_2=yes
    [ "$up_1" = yes ] && [ "$up_2" = yes ] && break
    kill -0 "$pppd_1" 2>/dev/null || [ "$up_1" = yes ] || break
    kill -0 "$pppd_2" 2>/dev/null || [ "$up_2" = yes ] || break
    sleep 0.2
done
say "UP_1=$up_1"
say "UP_2=$up_2"
up=no
if [ "$up_1" = yes ] && [ "$up_2" = yes ]; then
    up=yes
    say "LOCAL_1=$(addr_of 1)"
    say "LOCAL_2=$(addr_of 2)"
fi
nsx nat cat /proc/net/nf_conntrack >/mnt/conntrack.txt 2>/dev/null
echo ---- >>/mnt/conntrack.txt
# Last: the host lists the calls and pings LOCAL_1 and LOCAL_2 when it sees this line.
say "UP=$up"

if [ "$up" = yes ]; then
    # Both clients at once: pings, then iperf3, each pair running concurrently.
    for i in 1 2; do
        nsx "c$i" ip route add "$PING_TARGET/32" dev "ppp$((i - 1))" 2>/dev/null
        nsx "c$i" ip route add "$IPERF_SERVER/32" dev "ppp$((i - 1))" 2>/dev/null
    done
    nsx c1 ping -c "$PING_COUNT" -i 0.2 -W 3 "$PING_TARGET" >/mnt/ping-1.txt 2>&1 &
    ping_1=$!
    nsx c2 ping -c "$PING_COUNT" -i 0.2 -W 3 "$PING_TARGET" >/mnt/ping-2.txt 2>&1 &
    ping_2=$!
    wait "$ping_1"
    say "PING_1=$?"
    wait "$ping_2"
    say "PING_2=$?"
    nsx c1 iperf3 -c "$IPERF_SERVER" -p "$IPERF_PORT_1" -t "$IPERF_SECONDS" -J >/mnt/iperf-1.json 2>&1 &
    iperf_1=$!
    nsx c2 iperf3 -c "$IPERF_SERVER" -p "$IPERF_PORT_2" -t "$IPERF_SECONDS" -J >/mnt/iperf-2.json 2>&1 &
    iperf_2=$!
    wait "$iperf_1"
    say "IPERF_1=$?"
    wait "$iperf_2"
    say "IPERF_2=$?"
    # The host's pings to both tunnel addresses must be done before the hang-up.
    for _ in $(seq 1 150); do
        [ -f /mnt/host-ping ] && break
        sleep 0.2
    done
    # The NAT's conntrack: one GRE flow per client, keyed by call ID, with the call ID the
    # client chose (its first srckey) translated by nf_nat_pptp into the one the
    # concentrator sees (the reply direction's dstkey): CT_GRE_i=flows,
    # NAT_CALL_ID_i=client's:translated (decimal).
    nsx nat cat /proc/net/nf_conntrack >>/mnt/conntrack.txt 2>/dev/null
    for i in 1 2; do
        flows="$(nsx nat cat /proc/net/nf_conntrack 2>/dev/null |
            grep " gre .* src=172\.16\.0\.1$i .*\[ASSURED\]")"
        say "CT_GRE_$i=$(printf '%s' "$flows" | grep -c .)"
        keys="$(printf '%s\n' "$flows" | awk 'NR == 1 {
            for (f = 1; f <= NF; f++) {
                if ($f ~ /^srckey=/ && s == "") s = substr($f, 8)
                if ($f ~ /^dstkey=/) d = substr($f, 8)
            }
            print s, d }')"
        set -- $keys
        [ $# -eq 2 ] && say "NAT_CALL_ID_$i=$(($1)):$(($2))"
    done
    say "TRAFFIC=done"
    for _ in $(seq 1 150); do
        [ -f /mnt/host-done ] && break
        sleep 0.2
    done
fi

# A user's hang-up, both at once: SIGTERM to each pppd (LCP Terminate, then pptp-linux
# clears the call). pppd waits up to 5 s for its pptp child after the link is down.
kill -TERM "$pppd_1" "$pppd_2" 2>/dev/null
for _ in $(seq 1 100); do
    kill -0 "$pppd_1" 2>/dev/null || kill -0 "$pppd_2" 2>/dev/null || break
    sleep 0.1
done
wait "$pppd_1"
say "PPPD_EXIT_1=$?"
wait "$pppd_2"
say "PPPD_EXIT_2=$?"
sleep 0.5
[ "$up" = yes ]
