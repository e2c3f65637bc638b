"""TRex STL profile: replays an `xpptp-bench pcap` capture once, in order, at a set rate.

Usage (TRex v2.x, trex-console connected to a server whose port 0 faces the concentrator):

    # on the concentrator, before every replay (see the README, "Replaying with TRex or pktgen")
    xpptp-bench install sessions.json
    # in trex-console
    start -f bench/trex/xpptp_replay.py -p 0 -t pcap=/path/upstream.pcap,pps=1000000

Tunables: `pcap` (required; a path on the TRex server), `pps` (default 100000).

* One pass only (loop_count=1): the concentrator's GRE receive window refuses sequence
  numbers it has already accepted and MPPE keys move on with every packet, so a second
  pass is dropped. For longer runs export more --packets-per-session, and install the
  sessions again before the next replay.
* No field engine (vm=None), so TRex varies nothing, in particular not the IP source: the
  concentrator finds a call by outer source address and GRE call ID, and MPPE frames
  cannot be rewritten without re-encrypting them.
* TRex writes its port's MACs (trex_cfg.yaml: src_mac, dest_mac = the concentrator's NIC)
  over the capture's.
* load_pcap makes one chained stream per packet, which suits captures up to some tens of
  thousands of frames. Replay larger ones from the server's disk with
  STLClient.push_remote(pcap, ports=[0], ipg_usec=1e6 / pps, count=1) instead.
"""

import argparse

from trex_stl_lib.api import STLProfile


class XpptpReplay(object):
    def get_streams(self, tunables=None, **kwargs):
        parser = argparse.ArgumentParser(description="replay an xpptp-bench pcap once")
        parser.add_argument("--pcap", required=True, help="the capture, on the TRex server")
        parser.add_argument("--pps", type=float, default=100000.0, help="packets per second")
        if isinstance(tunables, list):
            # TRex >= 2.80 hands `-t` over as an argument list.
            args = parser.parse_args(tunables)
        else:
            # Older TRex hands `-t key=value` over as keyword arguments.
            argv = ["--%s=%s" % (k, v) for k, v in kwargs.items() if k in ("pcap", "pps")]
            args = parser.parse_args(argv)
        if args.pps <= 0:
            parser.error("pps must be positive")
        profile = STLProfile.load_pcap(
            args.pcap, ipg_usec=1e6 / args.pps, loop_count=1, vm=None
        )
        return profile.get_streams()


def register():
    return XpptpReplay()
