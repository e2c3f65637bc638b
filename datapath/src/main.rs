//! `xpptp-datapath`: for now, loads the XDP steering program, attaches it to an interface and
//! prints its verdict counters. The AF_XDP workers come next (issue 4).

use std::net::Ipv4Addr;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use aya::programs::XdpMode;
use clap::{Parser, ValueEnum};
use xpptp_datapath::steering::Steering;

/// xpptp's data path: XDP steering of established PPTP calls (AF_XDP workers to come).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Interface to attach the XDP program to.
    #[arg(short, long)]
    interface: String,
    /// XDP attach mode: native (driver), generic (skb), or native with a fallback to generic.
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    mode: Mode,
    /// Seconds between counter printouts.
    #[arg(long, default_value_t = 1)]
    interval: u64,
    /// Stop (and detach) after this many seconds; run until killed when absent.
    #[arg(long)]
    duration: Option<u64>,
    /// Mark a call established for testing, as CALL_ID:PEER_ADDR (repeatable).
    #[arg(long = "call", value_parser = parse_call)]
    calls: Vec<(u16, Ipv4Addr)>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Native,
    Generic,
    Auto,
}

fn parse_call(s: &str) -> Result<(u16, Ipv4Addr), String> {
    let (id, addr) = s
        .split_once(':')
        .ok_or_else(|| "expected CALL_ID:PEER_ADDR".to_string())?;
    let id = id.parse().map_err(|e| format!("call ID {id:?}: {e}"))?;
    let addr = addr
        .parse()
        .map_err(|e| format!("peer address {addr:?}: {e}"))?;
    Ok((id, addr))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut steering = Steering::load().context("loading the XDP program")?;
    for &(call_id, peer) in &args.calls {
        steering.establish_call(call_id, peer, false)?;
    }
    match args.mode {
        Mode::Native => steering.attach(&args.interface, XdpMode::Driver)?,
        Mode::Generic => steering.attach(&args.interface, XdpMode::Skb)?,
        Mode::Auto => {
            if let Err(err) = steering.attach(&args.interface, XdpMode::Driver) {
                eprintln!(
                    "warning: native XDP on {} failed ({err}); using generic XDP, which is slower",
                    args.interface
                );
                steering.attach(&args.interface, XdpMode::Skb)?;
            }
        }
    }
    eprintln!(
        "attached to {}; no AF_XDP sockets yet, so steered frames fall back to the kernel",
        args.interface
    );
    let started = Instant::now();
    loop {
        thread::sleep(Duration::from_secs(args.interval.max(1)));
        for (slot, counter) in steering.counters()? {
            if counter.packets != 0 {
                println!(
                    "{:<24} {:>12} packets {:>14} bytes",
                    slot.name(),
                    counter.packets,
                    counter.bytes
                );
            }
        }
        println!();
        if args
            .duration
            .is_some_and(|d| started.elapsed() >= Duration::from_secs(d))
        {
            return Ok(());
        }
    }
}
