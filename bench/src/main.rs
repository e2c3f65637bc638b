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
    // --- chart
    /// Renders the charts (throughput, latency, worker cost vs crypto floor) of a results
    /// file as SVG and PNG.
    Chart(xpptp_bench::chart::ChartArgs),
    // --- end chart
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
        // --- chart
        Command::Chart(args) => xpptp_bench::chart::run(&args)
            .map(|written| {
                for path in written {
                    println!("{}", path.display());
                }
            })
            .map_err(anyhow::Error::from),
        // --- end chart
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xpptp-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}
