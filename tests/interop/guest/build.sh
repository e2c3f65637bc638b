#!/usr/bin/env bash
# Builds the interop tests' QEMU guest from Debian packages only: Debian bookworm's kernel
# (which has the PPP, MPPE, PPTP, GRE and PPTP conntrack/NAT modules the host kernel lacks),
# and a minbase bookworm root file system with pppd, pptp-linux and nftables, packed as an
# initramfs with our /init.
#
#   tests/interop/guest/build.sh [OUT_DIR]      (default: target/interop-guest; run as root)
#
# Output: OUT_DIR/vmlinux (uncompressed: QEMU's TCG boots its PVH entry in ~4 s, the xz
# bzImage takes much longer), OUT_DIR/initrd.gz, OUT_DIR/kernel-version. The build is
# cached: OUT_DIR/stamp holds the hash of this script and of init; a matching stamp means
# nothing to do. A cold build takes a minute or two (debootstrap), most of it downloads.
#
# The guest's /init mounts the 9p share "xpptp" at /mnt, runs /mnt/guest.sh with the
# kernel command line's `xpptp.*` words in its environment, writes its exit status to
# /mnt/status, and powers off. Everything a scenario does is in that script (written by the
# test), so the image itself never changes between scenarios.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
out="${1:-$root/target/interop-guest}"
suite=bookworm
mirror="${XPPTP_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf '==> guest: %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "build.sh: needs root (apt-get, debootstrap, chroot); run it as root" >&2
    exit 1
fi

stamp="$(cat "$here/build.sh" "$here/init" | sha256sum | cut -d' ' -f1)"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ] &&
    [ -f "$out/vmlinux" ] && [ -f "$out/initrd.gz" ]; then
    log "cached in $out"
    exit 0
fi

need=()
for p in qemu-system-x86 debootstrap cpio xz-utils kmod; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
    log "apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/xpptp-guest.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# The kernel: the package linux-image-amd64 points at, unpacked (not installed).
kpkg="$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
[ -n "$kpkg" ] || { echo "build.sh: cannot find the kernel package behind linux-image-amd64" >&2; exit 1; }
kver="${kpkg#linux-image-}"
log "kernel $kpkg"
(cd "$work" && apt-get download -qq "$kpkg")
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"

# vmlinux from the bzImage: the payload is the xz stream that starts at its magic.
python3 - "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinux.xz" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
at = data.find(b"\xfd7zXZ\x00")
if at < 0:
    sys.exit("no xz payload in " + sys.argv[1])
open(sys.argv[2], "wb").write(data[at:])
PY
# xz complains about the bytes after the stream (the bzImage's trailer): ignore that, but
# require an ELF out.
xz -dc --single-stream "$work/vmlinux.xz" >"$work/vmlinux" 2>/dev/null || true
head -c 4 "$work/vmlinux" | grep -q ELF || { echo "build.sh: could not extract vmlinux" >&2; exit 1; }

log "debootstrap $suite (minbase + ppp, pptp-linux, nftables)"
debootstrap --variant=minbase \
    --include=ppp,pptp-linux,iproute2,iputils-ping,iperf3,tcpdump,kmod,busybox,procps,nftables \
    "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    echo "build.sh: debootstrap failed (log above); is $mirror reachable?" >&2
    exit 1
}

# Only the modules the guest loads, with their dependencies, resolved by modprobe itself.
# The second line is the `nat` scenario's: veth pairs to the client namespaces, and an
# nftables masquerade with the PPTP conntrack helper (`ct helper` objects: nft_ct, and
# nft_objref to assign them; GRE conntrack is built into nf_conntrack).
modules=(virtio_pci virtio_net 9p 9pnet_virtio ppp_generic ppp_async ppp_synctty ppp_mppe
    pptp gre sha1_generic
    veth nf_conntrack_pptp nf_nat_pptp nft_ct nft_objref nft_chain_nat nft_nat nft_masq)
mkdir -p "$work/rootfs/lib/modules/$kver"
cp "$work/kernel/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} \
    "$work/rootfs/lib/modules/$kver/"
depmod -b "$work/kernel" "$kver"
: >"$work/modules.list"
for m in "${modules[@]}"; do
    # "builtin M" lines need nothing; an unknown module is an error worth stopping for.
    deps="$(modprobe -d "$work/kernel" -S "$kver" --show-depends "$m")" || {
        echo "build.sh: kernel $kver has no module $m" >&2
        exit 1
    }
    awk '$1 == "insmod" {print $2}' <<<"$deps" >>"$work/modules.list"
done
sort -u "$work/modules.list" | while read -r ko; do
    rel="${ko#"$work/kernel/"}"
    mkdir -p "$work/rootfs/$(dirname "$rel")"
    cp "$ko" "$work/rootfs/$rel"
done
depmod -b "$work/rootfs" "$kver"
printf '%s\n' "${modules[@]}" >"$work/rootfs/etc/xpptp-modules"

# Slim down what an initramfs carries for nothing.
rm -rf "$work/rootfs"/usr/share/{doc,man,info,locale} "$work/rootfs"/var/cache/apt/* \
    "$work/rootfs"/var/lib/apt/lists/*
install -m 0755 "$here/init" "$work/rootfs/init"

log "packing initramfs"
(cd "$work/rootfs" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$work/initrd.gz"

mv "$work/vmlinux" "$out/vmlinux"
mv "$work/initrd.gz" "$out/initrd.gz"
echo "$kver" >"$out/kernel-version"
echo "$stamp" >"$out/stamp"
log "built in $out ($(du -sh "$out/initrd.gz" | cut -f1) initramfs, kernel $kver)"
