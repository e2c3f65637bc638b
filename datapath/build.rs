//! Builds the XDP program (ebpf/) for bpfel-unknown-none with nightly and build-std, through
//! aya-build; src/steering.rs embeds the object. Needs the nightly toolchain with rust-src
//! and llvm-tools (scripts/setup.sh installs them); see ebpf/bpf-link.sh for the linker.

fn main() -> aya_build::Result<()> {
    // aya-build watches the program's crate; cargo tracks neither the linker script nor the
    // shared types' crate for a binary built this way, nor the variables the script reads.
    println!("cargo:rerun-if-changed=../ebpf/bpf-link.sh");
    println!("cargo:rerun-if-changed=../ebpf-types");
    println!("cargo:rerun-if-changed=../.cargo/config.toml");
    println!("cargo:rerun-if-env-changed=XPPTP_BPF_CPU");
    println!("cargo:rerun-if-env-changed=XPPTP_LLVM_BIN");
    let ebpf = aya_build::Package {
        name: "xpptp-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([ebpf], aya_build::Toolchain::Nightly)
}
