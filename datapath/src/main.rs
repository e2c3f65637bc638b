//! `xpptp-datapath`: attaches the XDP steering program, runs one AF_XDP worker per receive
//! queue (or, with `--backend socket`, the raw-socket and TUN backend), creates the TUN
//! device for the kernel's share of the traffic, and serves the command socket the control
//! plane establishes calls through.
//!
//! SIGTERM or SIGINT: the command socket closes (its file is removed), XDP is detached (the
//! kernel handles the interface's traffic again) and the workers stop.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tracing_subscriber::EnvFilter;
use xpptp_datapath::backend::BackendKind;
use xpptp_datapath::command::client::Client;
use xpptp_datapath::command::{CommandServer, DEFAULT_SOCKET};
use xpptp_datapath::daemon::{AttachMode, Datapath, DatapathConfig};
use xpptp_datapath::tun::{self, Ipv4Prefix, TunConfig};
use xpptp_datapath::worker::Other;
use xpptp_proto::command::{CallInfo, ListCalls, MAX_LIST_PAGE, Message};

/// xpptp's data path: XDP steering and AF_XDP workers for established PPTP calls, driven
/// by the control plane over a Unix command socket.
///
/// Needs root, or CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW and CAP_IPC_LOCK. Log verbosity:
/// RUST_LOG (for example RUST_LOG=debug, or RUST_LOG=xpptp_datapath=debug).
#[derive(Debug, Parser)]
#[command(
    version,
    subcommand_negates_reqs = true,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: Args,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the calls a running datapath carries (from its command socket), one line each,
    /// or as JSON.
    Calls {
        /// The running datapath's command socket.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Every field of every call as a JSON array, raw numbers.
        #[arg(long)]
        json: bool,
    },
}

/// Running the datapath (no subcommand).
#[derive(Debug, clap::Args)]
struct Args {
    /// Interface the clients' GRE arrives on (and, one-armed, the uplink).
    // Option only so that `calls` can go without it: clap requires it for a run.
    #[arg(short, long, required = true)]
    interface: Option<String>,
    /// Two-armed mode: the interface facing the network (upstream leaves through it,
    /// downstream arrives on it; XDP on both, worker N serves queue N of both) [default:
    /// one-armed].
    #[arg(long)]
    inside: Option<String>,
    /// I/O backend: xdp (XDP steering and AF_XDP workers) or socket (raw GRE socket and the
    /// TUN device, for hosts without XDP; slower).
    #[arg(long, value_enum, default_value_t = BackendKind::Xdp)]
    backend: BackendKind,
    /// The socket backend's downstream threads, one TUN queue each [default: one per core].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    socket_threads: Option<u16>,
    /// XDP attach mode: native (in the driver), generic (skb, any interface, slower), or
    /// auto (native, falling back to generic with a warning).
    #[arg(long, value_enum, default_value_t = Mode::Auto)]
    mode: Mode,
    /// Receive queues to serve, one AF_XDP socket and one pinned worker each [default:
    /// every RX queue of the interface].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    queues: Option<u32>,
    /// The command socket (created 0600, its directory 0750 if missing).
    #[arg(long, default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// A static next hop: every frame, both directions, goes to this MAC (aa:bb:cc:dd:ee:ff)
    /// instead of the next hop the kernel's route and neighbour tables give [default: the
    /// kernel's tables].
    #[arg(long, value_parser = parse_mac)]
    next_hop_mac: Option<[u8; 6]>,
    /// The concentrator's own tunnel address and prefix on the TUN device, as
    /// 192.168.77.1/24 (the server address IPCP gives the clients).
    #[arg(long, value_parser = parse_prefix, required = true)]
    tunnel_address: Option<Ipv4Prefix>,
    /// A client address pool routed into the TUN device, as 192.168.77.0/24 (repeatable):
    /// what the kernel sends to these addresses is encapsulated to the clients.
    #[arg(long = "pool", value_parser = parse_prefix)]
    pools: Vec<Ipv4Prefix>,
    /// The TUN device's name.
    #[arg(long, default_value = tun::DEFAULT_NAME)]
    tun_name: String,
    /// The TUN device's MTU: the largest inner packet of a call.
    #[arg(long, default_value_t = 1400, value_parser = clap::value_parser!(u16).range(576..))]
    tun_mtu: u16,
    /// Our outer IPv4 address, the one clients' control connections reach [default: the
    /// interface's].
    #[arg(long)]
    local_address: Option<Ipv4Addr>,
    /// The interface's MAC address [default: read from sysfs].
    #[arg(long, value_parser = parse_mac)]
    local_mac: Option<[u8; 6]>,
    /// Do not pin worker N to core N.
    #[arg(long)]
    no_pin: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Log the workers' and the XDP program's counters every this many seconds.
    #[arg(long)]
    stats_interval: Option<u64>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Native,
    Generic,
    Auto,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let bad = || format!("{s:?} is not a MAC address (expected aa:bb:cc:dd:ee:ff)");
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 {
            return Err(bad());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    match parts.next() {
        None => Ok(mac),
        Some(_) => Err(bad()),
    }
}

fn parse_prefix(s: &str) -> Result<Ipv4Prefix, String> {
    let bad = || format!("{s:?} is not an IPv4 prefix (expected a.b.c.d/len, len 0 to 32)");
    let (addr, len) = s.split_once('/').ok_or_else(bad)?;
    let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    Ipv4Prefix::new(addr, len).ok_or_else(bad)
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn log_stats(datapath: &Datapath) {
    use xpptp_datapath::command::Fastpath as _;
    for w in datapath.worker_stats() {
        tracing::info!(
            worker = w.worker,
            up_rx = w.upstream.rx.packets,
            up_tx = w.upstream.tx.packets,
            down_rx = w.downstream.rx.packets,
            down_tx = w.downstream.tx.packets,
            drops = ?w.drops,
            rings = ?w.rings,
            "worker counters"
        );
    }
    let xdp: Vec<String> = datapath
        .xdp_counters()
        .into_iter()
        .filter(|(_, packets, _)| *packets != 0)
        .map(|(name, packets, _)| format!("{name}={packets}"))
        .collect();
    tracing::info!(counters = %xdp.join(" "), "XDP verdicts");
    let stats = datapath.stats();
    let named: Vec<String> = Other::ALL
        .iter()
        .filter_map(|o| {
            let n = stats.other.get(o.index()).copied().unwrap_or(0);
            (n != 0).then(|| format!("{}={n}", o.name()))
        })
        .collect();
    tracing::info!(
        counters = %named.join(" "),
        tun = ?datapath.tun_stats(),
        "datapath counters"
    );
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Calls { socket, json }) = cli.command {
        return match list_calls(&socket, json) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // The client's errors already say what to check; their sources repeat it.
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let args = cli.run;
    init_logging(args.log_format);
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed, why, and (in the errors' own text) what to do.
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Pages through the datapath's calls and prints them.
fn list_calls(socket: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let (mut client, _) = Client::connect(socket, "xpptp-datapath calls", false)?;
    let mut calls: Vec<CallInfo> = Vec::new();
    let mut start = 0;
    loop {
        let page = client.request(Message::ListCalls(ListCalls {
            start,
            max: MAX_LIST_PAGE,
        }))?;
        let Message::CallList(page) = page else {
            anyhow::bail!("the datapath answered ListCalls with {page:?}");
        };
        calls.extend(page.calls);
        match page.next {
            Some(next) => start = next,
            None => break,
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&calls)?);
        return Ok(());
    }
    println!(
        "{:>6} {:>6} {:<15} {:<15} {:<16} {:>10} {:>10} {:>8}",
        "call", "peer", "peer address", "tunnel address", "user", "up pkts", "down pkts", "age s"
    );
    for c in &calls {
        let user = c
            .user
            .as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        println!(
            "{:>6} {:>6} {:<15} {:<15} {:<16} {:>10} {:>10} {:>8}",
            c.local_call_id,
            c.peer_call_id,
            c.peer_address,
            c.client_tunnel_address,
            user,
            c.upstream.packets,
            c.downstream.packets,
            c.age_secs
        );
    }
    Ok(())
}

fn run(args: &Args) -> anyhow::Result<()> {
    let (Some(interface), Some(tunnel_address)) = (&args.interface, args.tunnel_address) else {
        anyhow::bail!("--interface and --tunnel-address are required (see --help)");
    };
    let mut tun = TunConfig::new(tunnel_address);
    tun.name = args.tun_name.clone();
    tun.mtu = args.tun_mtu;
    tun.routes = args.pools.clone();
    let mut config = DatapathConfig::new(interface.clone(), tun);
    config.next_hop_mac = args.next_hop_mac;
    config.inside = args.inside.clone();
    config.backend = args.backend;
    config.socket_threads = args.socket_threads.map(usize::from);
    config.mode = match args.mode {
        Mode::Native => AttachMode::Native,
        Mode::Generic => AttachMode::Generic,
        Mode::Auto => AttachMode::Auto,
    };
    config.queues = args.queues;
    config.local_address = args.local_address;
    config.local_mac = args.local_mac;
    config.pin = !args.no_pin;

    // Signals first, so a SIGTERM during start-up still shuts down cleanly.
    let mut signals =
        Signals::new([SIGTERM, SIGINT]).context("installing the SIGTERM/SIGINT handlers")?;
    let datapath = Arc::new(Datapath::start(&config)?);
    let server_name = format!("xpptp-datapath {}", env!("CARGO_PKG_VERSION"));
    let server = CommandServer::start(&args.socket, server_name, Arc::clone(&datapath))?;

    // The stats thread stops when `stop_stats` is dropped.
    let (stop_stats, stopped) = std::sync::mpsc::channel::<()>();
    let stats = match args.stats_interval.filter(|s| *s > 0) {
        Some(secs) => {
            let datapath = Arc::clone(&datapath);
            let thread = std::thread::Builder::new()
                .name("xpptp-stats".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) =
                        stopped.recv_timeout(Duration::from_secs(secs))
                    {
                        log_stats(&datapath);
                    }
                })
                .context("starting the stats thread")?;
            Some(thread)
        }
        None => None,
    };

    if let Some(signal) = signals.forever().next() {
        tracing::info!(signal, "stopping");
    }
    server.stop();
    drop(stop_stats);
    if let Some(stats) = stats {
        let _ = stats.join();
    }
    match Arc::try_unwrap(datapath) {
        Ok(datapath) => datapath.shutdown(),
        // Not expected: every user of the Arc has stopped. Dropping detaches and stops too.
        Err(_) => tracing::warn!("the datapath is still shared at exit; relying on drop"),
    }
    Ok(())
}
