//! `xpptp`: the operator's tool for a running xpptp (see `xpptp --help` and the README's
//! "The xpptp tool"). Everything is in the library's [`xpptp_control::cli`].

fn main() -> std::process::ExitCode {
    xpptp_control::cli::main()
}
