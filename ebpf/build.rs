//! Makes cargo relink the program when what the linker does changes: cargo tracks neither
//! the linker (ebpf/bpf-link.sh, set in .cargo/config.toml) nor the variables it reads.

fn main() {
    println!("cargo:rerun-if-changed=bpf-link.sh");
    println!("cargo:rerun-if-env-changed=XPPTP_BPF_CPU");
    println!("cargo:rerun-if-env-changed=XPPTP_LLVM_BIN");
}
