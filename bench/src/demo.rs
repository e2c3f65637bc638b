//! `xpptp-bench demo`: the README's main command (run by `scripts/demo.sh`, which installs
//! and builds first). It brings up the [test bed](crate::topology), dials emulated clients
//! through xpptp-control, sends verified traffic both ways through xpptp-datapath, shows
//! what an operator sees with `xpptp sessions` and `xpptp stats` while it flows, hangs
//! everyone up and removes everything it made, on Ctrl-C too.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;

use crate::emulator::cli::{write_dial_summary, write_hang_up_summary};
use crate::emulator::{DialConfig, SourceRange, Users};
use crate::scenario::{self, SenderKind, TrafficSpec};
use crate::topology::{self, Backend, Spec, Topology};
use crate::traffic::SizeMix;

/// `xpptp-bench demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Emulated clients to dial (each from its own address in 10.100.0.0/16).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=16_000))]
    clients: u32,
    /// How long the traffic runs, upstream then downstream, in seconds.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    seconds: u64,
    /// Packets per second offered (each direction in turn).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(1..))]
    pps: u64,
    /// Packet sizes: 64, 512, 1400 (inner IPv4 length) or imix.
    #[arg(long, default_value = "imix")]
    size: SizeMix,
    /// Queues per interface (= datapath workers).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    queues: u32,
    /// The datapath's backend.
    #[arg(long, value_enum, default_value_t = Backend::Xdp)]
    backend: Backend,
    /// Stateful MPPE instead of stateless.
    #[arg(long)]
    stateful: bool,
    /// Sessions shown in the `xpptp sessions` excerpt.
    #[arg(long, default_value_t = 12)]
    show: usize,
}

fn step(n: u32, text: &str) {
    println!("\n==> [{n}/5] {text}");
}

/// Prints the first `lines` lines of `text`, and how many were left out.
fn excerpt(text: &str, lines: usize) {
    let all: Vec<&str> = text.lines().collect();
    for line in all.iter().take(lines) {
        println!("    {line}");
    }
    if all.len() > lines {
        println!("    ... ({} more lines)", all.len() - lines);
    }
}

/// Runs the demo.
pub fn run(args: &DemoArgs) -> anyhow::Result<()> {
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))
            .context("cannot install the Ctrl-C handler")?;
    }
    let started = Instant::now();
    step(
        1,
        "test bed: three network namespaces, xpptp-datapath and xpptp-control",
    );
    let mut bed = Topology::create(Spec {
        tag: "demo".into(),
        queues: args.queues,
        users: args.clients,
        backend: args.backend,
        bin_dir: None,
    })?;
    println!(
        "    clients {}  |  concentrator {}  |  inside {}",
        bed.clients_netns, bed.concentrator_netns, bed.inside_netns
    );
    println!(
        "    xpptp-datapath: {} backend on x0 (clients) and x1 (inside), {} queue(s) each, one worker per queue",
        args.backend.as_str(),
        args.queues
    );
    println!(
        "    xpptp-control: TCP {}:1723, pool {}, logs in {}",
        topology::SERVER,
        topology::POOL,
        bed.work_dir().display()
    );
    if let Err(err) = bed.start() {
        bail!("{err}");
    }
    print!("    ");
    std::io::stdout().flush()?;
    println!(
        "{}",
        bed.xpptp(&["version"])?.trim_end().replace('\n', "\n    ")
    );

    step(
        2,
        &format!(
            "dialling {} emulated clients (PPTP control connection, LCP, MS-CHAPv2, IPCP, CCP: MPPE-128 {})",
            args.clients,
            if args.stateful {
                "stateful"
            } else {
                "stateless"
            }
        ),
    );
    let sources: SourceRange = topology::CLIENT_SOURCES
        .parse()
        .context("the test bed's source range")?;
    let mut config = DialConfig::new(topology::SERVER, args.clients, sources, topology::PASSWORD);
    config.users = Users::Template {
        template: format!("{}{{n}}", topology::USER_PREFIX),
        password: topology::PASSWORD.into(),
    };
    config.stateful = args.stateful;
    let dialled = scenario::dial(&bed, config, &interrupted)?;
    write_dial_summary(&mut std::io::stdout(), &dialled.report)?;
    if dialled.sessions().is_empty() {
        bail!(
            "no client came up; the daemons' logs:\n{}",
            bed.log_tails(20)
        );
    }

    let sessions = u64::try_from(dialled.sessions().len()).unwrap_or(u64::MAX);
    let packets_per_session = (args.pps * args.seconds / 2).div_ceil(sessions).max(1);
    step(
        3,
        &format!(
            "traffic: {} packets per session each way, sizes {}, {} packets/s, verified at the far end",
            packets_per_session,
            args.size.name(),
            args.pps
        ),
    );
    let spec = TrafficSpec {
        sizes: args.size,
        packets_per_session,
        rate_pps: args.pps,
        sender: SenderKind::Sendmmsg,
        upstream: true,
        downstream: true,
    };
    let report = std::thread::scope(|s| {
        let traffic = s.spawn(|| scenario::traffic(&bed, &dialled, &spec, args.backend));
        // While upstream flows: what the operator sees.
        let look_at = Instant::now() + Duration::from_secs((args.seconds / 4).clamp(1, 5));
        while Instant::now() < look_at && !traffic.is_finished() {
            std::thread::sleep(Duration::from_millis(100));
        }
        step(4, "what the operator sees while it flows");
        println!("  $ xpptp sessions --sort -rx-bytes");
        match bed.xpptp(&["sessions", "--sort", "-rx-bytes"]) {
            Ok(table) => excerpt(&table, args.show + 1),
            Err(err) => println!("    {err}"),
        }
        println!("  $ xpptp stats");
        match bed.xpptp(&["stats"]) {
            Ok(stats) => excerpt(&stats, 200),
            Err(err) => println!("    {err}"),
        }
        traffic
            .join()
            .unwrap_or_else(|_| bail!("the traffic thread panicked"))
    })?;
    println!("\n  traffic report:");
    excerpt(&report.to_string(), 200);

    step(5, "hanging up every client, then removing the test bed");
    if interrupted.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    let hang_up = dialled.hang_up()?;
    write_hang_up_summary(&mut std::io::stdout(), &hang_up)?;
    let left = bed.xpptp(&["sessions", "--tsv", "--no-header"])?;
    println!(
        "    sessions left on the concentrator: {}",
        left.lines().count()
    );
    drop(bed);
    println!(
        "    namespaces, daemons and files removed; the demo took {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
