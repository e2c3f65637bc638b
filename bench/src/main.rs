//! `xpptp-bench`: emulates PPTP clients against a running concentrator, drives and
//! verifies traffic through it, and reports what each packet cost.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// xpptp's emulator and benchmark tool.
///
/// Logs go to stderr; RUST_LOG filters them (default `info`).
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The README's demo: a concentrator in network namespaces, emulated clients dialled
    /// through it with traffic both ways, the operator's view; everything removed after.
    Demo(xpptp_bench::demo::DemoArgs),
    Dial(xpptp_bench::emulator::cli::DialArgs),
    /// Drives verified traffic through a concentrator over sessions from a keys file.
    Traffic(xpptp_bench::traffic::cli::TrafficArgs),
    /// The MPPE crypto floor on one core: our code against OpenSSL.
    Floor(xpptp_bench::floor::FloorArgs),
    /// Write the upstream traffic of test-keyed sessions as a pcap, and their sessions file.
    Pcap(xpptp_bench::pcap::PcapArgs),
    /// Establish a sessions file's sessions in a running xpptp-datapath.
    Install(xpptp_bench::pcap::InstallArgs),
    /// Remove a sessions file's sessions from a running xpptp-datapath.
    Uninstall(xpptp_bench::pcap::InstallArgs),
    /// Renders the charts (throughput, latency, worker cost vs crypto floor) of a results
    /// file as SVG and PNG.
    Chart(xpptp_bench::chart::ChartArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Demo(args) => xpptp_bench::demo::run(&args),
        Command::Dial(args) => xpptp_bench::emulator::cli::run(&args),
        Command::Traffic(args) => xpptp_bench::traffic::cli::main(args),
        Command::Floor(args) => xpptp_bench::floor::run(&args),
        Command::Pcap(args) => xpptp_bench::pcap::run(&args),
        Command::Install(args) => xpptp_bench::pcap::run_install(&args),
        Command::Uninstall(args) => xpptp_bench::pcap::run_uninstall(&args),
        Command::Chart(args) => xpptp_bench::chart::run(&args)
            .map(|written| {
                for path in written {
                    println!("{}", path.display());
                }
            })
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xpptp-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
