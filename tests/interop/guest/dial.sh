# Runs in the interop guest as /mnt/guest.sh's body: dials xpptp with Debian's pppd and
# pptp-linux, as an operator's Linux user would (Debian's /etc/ppp/options.pptp, a peers
# file like pptp-linux's documentation gives), exercises the tunnel, hangs up.
#
# /mnt/scenario.env (written by the host side) sets:
#   CLIENT_ADDR    the guest's eth0 address with prefix (10.99.0.2/24)
#   SERVER         the concentrator's address
#   PPP_USER PPP_PASSWORD REMOTENAME
#   MPPE_OPTS      pppd options for this scenario (require-mppe-128, mppe-stateful, ...)
#   EXPECT         up | auth-fail
#   PING_TARGETS   addresses to ping through the tunnel (space separated)
#   IPERF_SERVER   address of an iperf3 server reached through the tunnel, or empty
#   IPERF_SECONDS  seconds per iperf3 direction
# The host writes /mnt/host-ping after pinging our tunnel address (it waits for UP=yes).
# Results go to /mnt: result.txt (KEY=VALUE lines the host checks), pppd.log, syslog.log,
# iperf-up.json, iperf-down.json.
set -u
. /mnt/scenario.env
result=/mnt/result.txt
: >"$result"
say() { echo "$1" >>"$result"; }

# pptp-linux logs only to syslog.
busybox syslogd -n -O /mnt/syslog.log &
ip link set eth0 up
ip addr add "$CLIENT_ADDR" dev eth0

mkdir -p /etc/ppp/peers
printf '%s %s "%s" *\n' "$PPP_USER" "$REMOTENAME" "$PPP_PASSWORD" >/etc/ppp/chap-secrets
chmod 600 /etc/ppp/chap-secrets
cat >/etc/ppp/peers/xpptp <<EOP
pty "pptp $SERVER --nolaunchpppd --loglevel 1"
name $PPP_USER
remotename $REMOTENAME
$MPPE_OPTS
file /etc/ppp/options.pptp
ipparam xpptp
linkname xpptp
noauth
nodefaultroute
debug
logfile /mnt/pppd.log
EOP

pppd call xpptp nodetach &
pppd_pid=$!

# pppd may report the link before IPv4 is configured: wait for ppp0's address.
up=no
for _ in $(seq 1 150); do
    if ip -4 addr show dev ppp0 2>/dev/null | grep -q 'inet '; then
        up=yes
        break
    fi
    kill -0 "$pppd_pid" 2>/dev/null || break
    sleep 0.2
done
if [ "$up" = yes ]; then
    local_addr="$(ip -4 addr show dev ppp0 | awk '/inet / {print $2}')"
    peer_addr="$(ip -4 addr show dev ppp0 | awk '/inet / {print $4}')"
    say "LOCAL=$local_addr"
    say "PEER=${peer_addr%/*}"
fi
# Last: the host starts pinging LOCAL when it sees this line.
say "UP=$up"

if [ "$up" = yes ]; then
    for t in $PING_TARGETS; do
        ip route add "$t/32" dev ppp0 2>/dev/null
        if ping -c 3 -W 3 "$t" >/mnt/ping-"$t".txt 2>&1; then
            say "PING_$t=ok"
        else
            say "PING_$t=fail"
        fi
    done
    if [ -n "${IPERF_SERVER:-}" ]; then
        ip route add "$IPERF_SERVER/32" dev ppp0 2>/dev/null
        iperf3 -c "$IPERF_SERVER" -t "$IPERF_SECONDS" -J >/mnt/iperf-up.json 2>&1
        say "IPERF_UP=$?"
        iperf3 -c "$IPERF_SERVER" -t "$IPERF_SECONDS" -R -J >/mnt/iperf-down.json 2>&1
        say "IPERF_DOWN=$?"
    fi
    # The host pings our tunnel address once it sees UP=yes: wait for it before hanging up.
    for _ in $(seq 1 150); do
        [ -f /mnt/host-ping ] && break
        sleep 0.2
    done
    # A user's hang-up: SIGTERM to pppd (LCP Terminate, then pptp-linux clears the call).
    kill -TERM "$pppd_pid"
fi

# pppd waits up to 5 s for the pptp child after the link is down.
for _ in $(seq 1 100); do
    kill -0 "$pppd_pid" 2>/dev/null || break
    sleep 0.1
done
wait "$pppd_pid"
say "PPPD_EXIT=$?"
sleep 0.5
[ "$EXPECT" = "$( [ "$up" = yes ] && echo up || echo auth-fail )" ]
