#!/usr/bin/env bash
# Installs everything xpptp's build and tests need on a fresh Debian machine of the kind
# described in shared/notes/environment.md. Idempotent and non-interactive; run as root.
#
#   scripts/setup.sh          the build and every test (scripts/test.sh runs this)
#   scripts/setup.sh --demo   only what building the binaries needs (scripts/demo.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

demo=0
case "${1:-}" in
    --demo) demo=1 ;;
    "") ;;
    *) echo "setup.sh: unknown argument '$1' (only --demo)" >&2; exit 2 ;;
esac

log() { printf '==> %s\n' "$*"; }

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: needs root (apt-get install); run it with sudo or as root" >&2
    exit 1
fi

# Debian packages: tshark checks what we emit; libssl-dev is the baseline of the MPPE benchmark;
# iproute2 (`ip`) builds the namespaces of the datapath tests; iperf3 measures through the
# tunnel in the interop run, and ping through it (whose guest image tests/interop/guest/build.sh installs QEMU
# and debootstrap for).
build_packages=(libssl-dev pkg-config iproute2)
apt_packages=(tshark libssl-dev pkg-config iproute2 iperf3 iputils-ping)
# promtool (package prometheus) validates the metrics exposition (control/tests/metrics.rs);
# tcpreplay replays the bench's pcap into a veth (bench/tests/pcap_replay.rs); the bench's
# charts draw text with DejaVu's font file (bench/src/chart.rs), so no font libraries.
apt_packages+=(prometheus tcpreplay fonts-dejavu-core)
[ "$demo" -eq 1 ] && apt_packages=("${build_packages[@]}")
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; the answer does not matter here.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The pinned stable toolchain (rust-toolchain.toml) with rustfmt and clippy, and nightly for
# cargo-fuzz and the eBPF build: datapath/build.rs builds ebpf/ with nightly, -Z build-std=core
# (rust-src) and links it with ebpf/bpf-link.sh, which runs llvm-tools' llvm-link, opt and llc.
log "rustup toolchains"
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup component add rustfmt clippy >/dev/null
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
rustup component add rust-src llvm-tools --toolchain nightly >/dev/null

[ "$demo" -eq 1 ] && { log "setup done"; exit 0; }
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    log "cargo install cargo-fuzz"
    cargo install --locked cargo-fuzz --quiet
fi
log "setup done"
