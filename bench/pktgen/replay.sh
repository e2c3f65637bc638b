#!/usr/bin/env bash
# Replays an `xpptp-bench pcap` capture once on one DPDK port with Pktgen-DPDK (pktgen-dpdk).
#
# Usage: bench/pktgen/replay.sh PCAP PCI_ADDRESS [RATE_PERCENT]
#   PCAP          the capture (`xpptp-bench pcap --out`)
#   PCI_ADDRESS   the DPDK-bound port facing the concentrator, e.g. 0000:03:00.0
#   RATE_PERCENT  share of the port's line rate (default 10)
# Lcores: 0 runs Pktgen's display, 1 receives and 2 sends on port 0 (-m "[1:2].0").
#
# Before every replay, on the concentrator: `xpptp-bench install sessions.json` (the README's
# "Replaying with TRex or pktgen"). A pass is accepted once per install: GRE sequence numbers
# it has seen are refused and MPPE keys move on per packet. Pktgen's pcap mode loops the
# file, so the port's count is set to the number of frames in the capture: it stops after
# one pass. The capture carries the MACs given to `xpptp-bench pcap --dst-mac --src-mac`;
# Pktgen sends them as they are.
#
# Linux kernel pktgen (the pktgen module) cannot replay a capture: it sends one template
# packet with optional field variation, and every MPPE frame differs (per-packet keys,
# sequence numbers). Without DPDK, replay with tcpreplay instead:
#   tcpreplay --intf1=eth1 --pps=200000 upstream.pcap     (or --topspeed)
set -euo pipefail

if [ $# -lt 2 ]; then
    sed -n '2,20p' "$0" >&2
    exit 2
fi
pcap=$1
pci=$2
rate=${3:-10}

if ! command -v pktgen >/dev/null; then
    echo "replay.sh: pktgen (Pktgen-DPDK) is not on PATH; build it from https://github.com/pktgen/Pktgen-DPDK" >&2
    exit 1
fi
if command -v capinfos >/dev/null; then
    frames=$(capinfos -T -r -M -c "$pcap" | cut -f2)
else
    frames=$(tcpdump -r "$pcap" -nn -q 2>/dev/null | wc -l)
fi

commands=$(mktemp --suffix=.pkt)
trap 'rm -f "$commands"' EXIT
cat >"$commands" <<EOF
set 0 rate $rate
set 0 count $frames
enable 0 pcap
start 0
EOF

echo "replaying $frames frames from $pcap on $pci at $rate% of line rate"
pktgen -l 0-2 -n 4 -a "$pci" -- -T -P \
    -m "[1:2].0" \
    -s "0:$pcap" \
    -f "$commands"
