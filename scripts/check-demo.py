#!/usr/bin/env python3
"""Checks the output of scripts/demo.sh (run by scripts/test.sh): every client came up,
the operator's tool showed them and the datapath's figures, traffic went both ways
through the concentrator with (almost) nothing lost, and nothing was left behind.

    check-demo.py CLIENTS LOG
"""
import re
import sys


def main() -> int:
    clients, path = int(sys.argv[1]), sys.argv[2]
    text = open(path, encoding="utf-8", errors="replace").read()
    failures = []

    def expect(pattern: str, what: str) -> "re.Match | None":
        match = re.search(pattern, text, re.MULTILINE)
        if not match:
            failures.append(f"{what} (no line matching {pattern!r})")
        return match

    expect(rf"dialled {clients} clients in .*: {clients} established, 0 failed", "every client came up")
    expect(r"^\s+id\s+user\s+state\s+peer\s+tunnel-ip\s+mppe\s+uptime\s+rx-bytes\s+tx-bytes$",
           "xpptp sessions printed its table")
    expect(r"^\s+\d+\s+bench\d+\s+established\s+10\.100\.\d+\.\d+\s+10\.64\.\d+\.\d+\s+128-stateless\s",
           "a session row: user, state, peer, tunnel address, MPPE")
    expect(rf"sessions\s+0 starting, {clients} established", "xpptp stats counted the sessions")
    expect(r"^\s+total\s+-\s+\S+", "xpptp stats printed the per-worker totals")
    expect(r"^\s+upstream-mppe\s+[1-9]", "the XDP program steered MPPE traffic")
    for direction in ("upstream", "downstream"):
        m = expect(rf"{direction}: sent (\d+) .*received (\d+)", f"{direction} traffic was reported")
        lost = re.search(rf"{direction}: sent \d+.*\n\s+lost (\d+), reordered (\d+), duplicated (\d+), corrupt (\d+)", text)
        if m and lost:
            sent, received = int(m.group(1)), int(m.group(2))
            if sent == 0 or received * 100 < sent * 99:
                failures.append(f"{direction}: {received} of {sent} packets arrived (under 99%)")
            if int(lost.group(4)) != 0:
                failures.append(f"{direction}: {lost.group(4)} corrupt packets")
        elif m:
            failures.append(f"{direction}: no loss line")
    expect(rf"hung up {clients} clients: {clients} sessions stopped cleanly", "every client hung up cleanly")
    expect(r"sessions left on the concentrator: 0$", "no session was left")
    expect(r"namespaces, daemons and files removed", "the demo cleaned up")
    if failures:
        print("demo output check failed:", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print(f"demo output check: {clients} clients, traffic both ways, clean teardown")
    return 0


if __name__ == "__main__":
    sys.exit(main())
