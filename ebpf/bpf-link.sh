#!/usr/bin/env bash
# The linker for bpfel-unknown-none (set in .cargo/config.toml): does what bpf-linker does,
# with the LLVM tools of the rustup component llvm-tools, because bpf-linker needs LLVM
# development libraries of rustc's LLVM version, which Debian here does not ship
# (shared/notes/environment.md).
#
# For the BPF target rustc's "object files" are LLVM bitcode and it calls this script like
# bpf-linker: [--export-symbols FILE] OBJECTS... RLIBS... [-L DIR] [--cpu CPU] -o OUT [-O3]
# [--debug] [--btf]. We
#   1. unpack every rlib (llvm-ar x) and keep its bitcode members (not lib.rmeta),
#   2. llvm-link the crate's objects with them (only what is referenced),
#   3. opt: internalize everything except the exported symbols (the programs and maps) and
#      the memory builtins LLVM may call, drop debug info (no BTF: aya loads legacy maps
#      without it), and optimise at O3 so dead code goes,
#   4. llc -march=bpfel -mcpu=$XPPTP_BPF_CPU (default v3) -filetype=obj.
# The CPU comes from the environment, not --cpu, because aya-build replaces RUSTFLAGS.
# XPPTP_BPF_LINK_KEEP=1 keeps the work directory for inspection.
set -euo pipefail

cpu="${XPPTP_BPF_CPU:-v3}"
out=""
exports=""
inputs=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        -o) out="$2"; shift 2 ;;
        --export-symbols) exports="$2"; shift 2 ;;
        -L|--cpu|--cpu-features|--target) shift 2 ;;
        -O*|--debug|--btf|--emit=*|--unroll-loops|--ignore-inline-never) shift ;;
        -*) echo "bpf-link.sh: ignoring unknown option $1" >&2; shift ;;
        *) inputs+=("$1"); shift ;;
    esac
done
if [ -z "$out" ]; then
    echo "bpf-link.sh: no -o OUTPUT given" >&2
    exit 2
fi

# The tools of the toolchain that produced the bitcode (rustup sets RUSTUP_TOOLCHAIN for the
# cargo it runs, so this rustc is that toolchain's).
bin="${XPPTP_LLVM_BIN:-$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin}"
for tool in llvm-ar llvm-link opt llc; do
    if [ ! -x "$bin/$tool" ]; then
        echo "bpf-link.sh: $bin/$tool not found: run 'rustup component add llvm-tools --toolchain nightly' (scripts/setup.sh does)" >&2
        exit 2
    fi
done

work="$(mktemp -d "${TMPDIR:-/tmp}/xpptp-bpf-link.XXXXXX")"
if [ "${XPPTP_BPF_LINK_KEEP:-0}" = 1 ]; then
    echo "bpf-link.sh: work directory $work" >&2
else
    trap 'rm -rf "$work"' EXIT
fi

is_bitcode() {
    # Raw bitcode starts with "BC\xC0\xDE"; the wrapper format with 0x0B17C0DE.
    local magic
    magic="$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')"
    [ "$magic" = "4243c0de" ] || [ "$magic" = "dec0170b" ]
}

main=()
deps=()
n=0
for input in "${inputs[@]}"; do
    case "$input" in
        *.rlib|*.a)
            n=$((n + 1))
            dir="$work/ar$n"
            mkdir -p "$dir"
            (cd "$dir" && "$bin/llvm-ar" x "$input")
            for member in "$dir"/*; do
                [ -f "$member" ] && is_bitcode "$member" && deps+=("$member")
            done
            ;;
        *)
            # symbols.o (rustc's list of symbols to keep alive for native linkers) is not
            # bitcode and is not needed: internalize gets the list from --export-symbols.
            if is_bitcode "$input"; then
                main+=("$input")
            fi
            ;;
    esac
done
if [ "${#main[@]}" -eq 0 ]; then
    echo "bpf-link.sh: no bitcode objects among the inputs" >&2
    exit 2
fi

# Symbols that stay visible: the programs and maps (rustc's export list) and the memory
# builtins, which LLVM's BPF backend may emit calls to and which must not be renamed.
keep="$work/keep.txt"
printf '%s\n' memcpy memmove memset memcmp bcmp > "$keep"
if [ -n "$exports" ] && [ -f "$exports" ]; then
    cat "$exports" >> "$keep"
fi

linked="$work/linked.bc"
if [ "${#deps[@]}" -gt 0 ]; then
    "$bin/llvm-link" "${main[@]}" --only-needed "${deps[@]}" -o "$linked"
else
    "$bin/llvm-link" "${main[@]}" -o "$linked"
fi

optimised="$work/optimised.bc"
"$bin/opt" --strip-debug --internalize-public-api-file="$keep" \
    -passes='internalize,default<O3>' "$linked" -o "$optimised"

"$bin/llc" -march=bpfel -mcpu="$cpu" -O3 -filetype=obj "$optimised" -o "$out"
