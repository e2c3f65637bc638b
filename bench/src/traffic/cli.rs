//! `xpptp-bench traffic`: drives traffic over sessions whose keys are in a JSON file
//! (until the emulator dials them itself), and reports.
//!
//! The file is a JSON array, one object per call:
//!
//! ```json
//! [{"server_call_id": 12288, "client_call_id": 28672, "client_tunnel": "10.8.0.10",
//!   "server_tunnel": "10.8.0.1", "mppe": "stateless",
//!   "up_key": "11111111111111111111111111111111",
//!   "down_key": "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", "mtu": 1400}]
//! ```
//!
//! `mppe` is `stateless`, `stateful` or `none`; keys are the 128-bit start keys in hex
//! (upstream: client to concentrator). With `--establish` the calls are installed in the
//! datapath through its command socket first (the concentrator's view of the same keys),
//! which is how a test rig or a pcap replay pre-installs sessions.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Deserialize;
use xpptp_datapath::command::client::Client;
use xpptp_datapath::xsk::{BindMode, XskConfig};
use xpptp_proto::command::{Establish, Message};
use xpptp_proto::crypto::mppe::MppeMode;

use super::io::{FrameOut, MAX_BATCH};
use super::run::{self, DatapathProbe, Downstream, Upstream};
use super::session::UPSTREAM_PORT;
use super::{
    Conditions, Impairment, KeyedCall, L2Addresses, RawIpSender, SendPlan, SessionRx, SessionTx,
    SizeMix, TrafficReport, TrafficSession, XskSender, bind_downstream, bind_inside, open_gre_sink,
    open_raw_ip,
};
use crate::netns::in_netns;

/// Which way traffic flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    Up,
    Down,
    Both,
}

/// The upstream sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Sender {
    /// `sendmmsg` on a raw IPv4 socket (the kernel adds the link layer).
    Sendmmsg,
    /// AF_XDP TX (copy mode) on the clients' interface, full frames.
    AfXdp,
}

/// Arguments of `xpptp-bench traffic`.
#[derive(Debug, Args)]
pub struct TrafficArgs {
    /// JSON file of the sessions' keys (see the module documentation).
    #[arg(long)]
    pub sessions: PathBuf,
    /// The clients' outer address.
    #[arg(long)]
    pub client_addr: Ipv4Addr,
    /// The concentrator's outer address.
    #[arg(long)]
    pub server_addr: Ipv4Addr,
    /// The inside host: upstream packets go to it, downstream packets come from it.
    #[arg(long)]
    pub inside_host: Ipv4Addr,
    /// Network namespace of the clients (default: the current one).
    #[arg(long)]
    pub clients_netns: Option<String>,
    /// Network namespace of the inside host (default: the current one).
    #[arg(long)]
    pub inside_netns: Option<String>,
    /// Packet sizes: an inner IPv4 length (64, 512, 1400) or `imix` (7:4:1 of 64/576/1400).
    #[arg(long, default_value = "64")]
    pub sizes: SizeMix,
    /// Packets per session and direction (before impairment).
    #[arg(long, default_value_t = 1000)]
    pub packets: u64,
    /// Target rate over all sessions, packets per second per direction (0: unpaced).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Packets per send batch (1 to 64).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long, value_enum, default_value_t = Direction::Both)]
    pub direction: Direction,
    #[arg(long, value_enum, default_value_t = Sender::Sendmmsg)]
    pub sender: Sender,
    /// The clients' interface (AF_XDP sender).
    #[arg(long)]
    pub interface: Option<String>,
    /// MAC of the clients' interface (AF_XDP frames' source).
    #[arg(long, value_parser = parse_mac)]
    pub client_mac: Option<[u8; 6]>,
    /// MAC of the concentrator or the next hop to it (AF_XDP frames' destination).
    #[arg(long, value_parser = parse_mac)]
    pub server_mac: Option<[u8; 6]>,
    /// Probability of dropping a packet (robustness runs).
    #[arg(long, default_value_t = 0.0)]
    pub loss: f64,
    /// Probability of sending a packet after the flow's next one.
    #[arg(long, default_value_t = 0.0)]
    pub reorder: f64,
    /// Probability of sending a packet twice.
    #[arg(long, default_value_t = 0.0)]
    pub duplicate: f64,
    /// Seed of the impairment decisions.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The datapath's command socket: worker counters (and `--establish`).
    #[arg(long)]
    pub datapath_socket: Option<PathBuf>,
    /// The datapath's process ID: its worker threads' CPU time.
    #[arg(long, requires = "datapath_socket")]
    pub datapath_pid: Option<u32>,
    /// Install the sessions in the datapath first (needs --datapath-socket).
    #[arg(long, requires = "datapath_socket")]
    pub establish: bool,
    /// The datapath's backend, for the report ("xdp", "socket").
    #[arg(long, default_value = "xdp")]
    pub backend: String,
    /// The datapath's AF_XDP binding, for the report ("copy", "zero-copy", "n/a").
    #[arg(long, default_value = "copy")]
    pub bind_mode: String,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!("MAC `{s}`: six hex octets separated by colons"));
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16)
            .map_err(|_| format!("MAC `{s}`: `{part}` is not a hex octet"))?;
    }
    Ok(mac)
}

/// One entry of the sessions file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionKeys {
    server_call_id: u16,
    client_call_id: u16,
    client_tunnel: Ipv4Addr,
    server_tunnel: Option<Ipv4Addr>,
    mppe: String,
    up_key: String,
    down_key: String,
    mtu: u16,
}

fn key(hex: &str, what: &str, i: usize) -> anyhow::Result<[u8; 16]> {
    let mut key = [0u8; 16];
    let bytes = hex.as_bytes();
    if bytes.len() != 32 {
        bail!("session {i}: {what} must be 32 hex digits (a 128-bit start key)");
    }
    for (k, pair) in key.iter_mut().zip(bytes.chunks(2)) {
        // from_str_radix alone takes a sign: "+f" would read as 0x0f.
        let digit = |b: &u8| char::from(*b).to_digit(16);
        let (Some(high), Some(low)) = (pair.first().and_then(digit), pair.get(1).and_then(digit))
        else {
            bail!("session {i}: {what} is not hex");
        };
        *k = u8::try_from(high * 16 + low).unwrap_or(0);
    }
    Ok(key)
}

/// Inner MTUs a sessions file may give: from IPv4's minimum to what a PPP MRU (16 bits)
/// holds after MPPE's 4 octets.
const MTU_RANGE: std::ops::RangeInclusive<u16> = 68..=u16::MAX - 4;

/// Reads the sessions file.
pub fn read_sessions(path: &std::path::Path) -> anyhow::Result<Vec<KeyedCall>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the sessions file {}", path.display()))?;
    parse_sessions(&text).with_context(|| format!("sessions file {}", path.display()))
}

/// Parses the text of a sessions file (see the [module documentation](self)).
pub fn parse_sessions(text: &str) -> anyhow::Result<Vec<KeyedCall>> {
    let entries: Vec<SessionKeys> = serde_json::from_str(text)
        .context("not a JSON array of session keys (see `xpptp-bench traffic --help`)")?;
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mode = match e.mppe.as_str() {
                "stateless" => Some(MppeMode::Stateless),
                "stateful" => Some(MppeMode::Stateful),
                "none" => None,
                other => bail!("session {i}: mppe `{other}`: stateless, stateful or none"),
            };
            if e.server_call_id == 0 || e.client_call_id == 0 {
                bail!("session {i}: call ID 0 is reserved; give call IDs from 1 to 65535");
            }
            if !MTU_RANGE.contains(&e.mtu) {
                bail!(
                    "session {i}: mtu {}: give an inner MTU from {} to {}",
                    e.mtu,
                    MTU_RANGE.start(),
                    MTU_RANGE.end()
                );
            }
            Ok(KeyedCall {
                server_call_id: e.server_call_id,
                client_call_id: e.client_call_id,
                client_tunnel: e.client_tunnel,
                server_tunnel: e.server_tunnel,
                mode,
                up_key: key(&e.up_key, "up_key", i)?,
                down_key: key(&e.down_key, "down_key", i)?,
                mtu: e.mtu,
            })
        })
        .collect()
}

fn mppe_name(calls: &[KeyedCall]) -> &'static str {
    let stateless = calls.iter().any(|c| c.mode == Some(MppeMode::Stateless));
    let stateful = calls
        .iter()
        .any(|c| matches!(c.mode, Some(m) if m != MppeMode::Stateless));
    let clear = calls.iter().any(|c| c.mode.is_none());
    match (stateless, stateful, clear) {
        (true, false, false) => "stateless",
        (false, true, false) => "stateful",
        (false, false, true) => "none",
        _ => "mixed",
    }
}

/// `xpptp-bench traffic`.
pub fn main(args: TrafficArgs) -> anyhow::Result<()> {
    for (name, p) in [
        ("--loss", args.loss),
        ("--reorder", args.reorder),
        ("--duplicate", args.duplicate),
    ] {
        if !(0.0..=1.0).contains(&p) {
            bail!("{name} {p}: give a probability from 0 to 1");
        }
    }
    let calls = read_sessions(&args.sessions)?;
    if calls.is_empty() {
        bail!("{}: no sessions", args.sessions.display());
    }
    if args.establish
        && let Some(socket) = &args.datapath_socket
    {
        let (mut client, _) = Client::connect(socket, "xpptp-bench traffic", false)?;
        for call in &calls {
            let reply = client.request(Message::Establish(Box::new(Establish {
                call: call.server(args.client_addr),
                replace: true,
            })))?;
            if reply != Message::Done {
                bail!(
                    "the datapath refused call {}: {reply:?}",
                    call.server_call_id
                );
            }
        }
    }
    let l2 = L2Addresses {
        client_mac: args.client_mac.unwrap_or_default(),
        server_mac: args.server_mac.unwrap_or_default(),
    };
    let (mut txs, mut rxs): (Vec<SessionTx>, Vec<SessionRx>) = calls
        .iter()
        .zip(0u32..)
        .map(|(call, i)| {
            let s = TrafficSession::new(
                i,
                &call.client(args.server_addr),
                args.client_addr,
                args.server_addr,
                l2,
                args.inside_host,
            );
            s.check_sizes(args.sizes)?;
            Ok((s.tx, s.rx))
        })
        .collect::<anyhow::Result<Vec<_>>>()?
        .into_iter()
        .unzip();

    let up = args.direction != Direction::Down;
    let down = args.direction != Direction::Up;
    let clients = args.clients_netns.as_deref();
    let inside_ns = args.inside_netns.as_deref();
    let inside = in_netns(inside_ns, || {
        Ok(bind_inside(SocketAddrV4::new(
            args.inside_host,
            UPSTREAM_PORT,
        ))?)
    })?;
    let udp = in_netns(inside_ns, || Ok(bind_downstream(args.inside_host)?))?;
    let gre = in_netns(clients, || Ok(open_gre_sink()?))?;
    let mut out: Box<dyn FrameOut> = match args.sender {
        Sender::Sendmmsg => Box::new(RawIpSender::new(in_netns(clients, || Ok(open_raw_ip()?))?)),
        Sender::AfXdp => {
            let (Some(interface), Some(_), Some(_)) =
                (&args.interface, args.client_mac, args.server_mac)
            else {
                bail!("--sender af-xdp needs --interface, --client-mac and --server-mac");
            };
            let config = XskConfig {
                mode: BindMode::Copy,
                ..XskConfig::default()
            };
            Box::new(in_netns(clients, || {
                Ok(XskSender::open(interface, config)?)
            })?)
        }
    };
    let probe = match (&args.datapath_socket, args.datapath_pid) {
        (Some(socket), Some(pid)) => Some(DatapathProbe {
            socket: socket.clone(),
            pid,
        }),
        _ => None,
    };
    let plan = SendPlan {
        packets_per_session: args.packets,
        rate_pps: args.rate,
        batch: args.batch.clamp(1, MAX_BATCH),
        sizes: args.sizes,
        impairment: Impairment {
            loss: args.loss,
            reorder: args.reorder,
            duplicate: args.duplicate,
            seed: args.seed,
        },
    };
    let sender = match args.sender {
        Sender::Sendmmsg => "sendmmsg",
        Sender::AfXdp => "af_xdp",
    };
    let report: TrafficReport = run::run(
        &mut txs,
        &mut rxs,
        &plan,
        up.then_some(Upstream {
            out: out.as_mut(),
            sink: &inside,
        }),
        down.then_some(Downstream {
            socket: &udp,
            sink: &gre,
        }),
        probe.as_ref(),
        Conditions::new(mppe_name(&calls), &args.backend, &args.bind_mode, sender),
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_file_and_macs_parse_or_say_why_not() {
        let dir = std::env::temp_dir().join(format!("xpptp-traffic-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.json");
        let good = r#"[{"server_call_id": 1, "client_call_id": 2, "client_tunnel": "10.8.0.9",
            "server_tunnel": null, "mppe": "stateful", "mtu": 1400,
            "up_key": "000102030405060708090a0b0c0d0e0f",
            "down_key": "ffffffffffffffffffffffffffffffff"}]"#;
        std::fs::write(&path, good).unwrap();
        let calls = read_sessions(&path).unwrap();
        assert_eq!(calls[0].mode, Some(MppeMode::Stateful));
        assert_eq!(calls[0].up_key[15], 0x0f);
        assert_eq!(mppe_name(&calls), "stateful");
        for (bad, why) in [
            (
                good.replace("stateful", "rc4"),
                "stateless, stateful or none",
            ),
            (good.replace("0e0f", "0e"), "32 hex digits"),
            (good.replace("\"mtu\"", "\"mru\""), "not a JSON array"),
            (good.replace("0e0f\"", "0e+f\""), "up_key is not hex"),
            (
                good.replace("1400", "65535"),
                "mtu 65535: give an inner MTU",
            ),
            (good.replace("1400", "0"), "mtu 0: give an inner MTU"),
            (
                good.replace("\"server_call_id\": 1", "\"server_call_id\": 0"),
                "call ID 0 is reserved",
            ),
        ] {
            std::fs::write(&path, bad).unwrap();
            let err = format!("{:#}", read_sessions(&path).unwrap_err());
            assert!(err.contains(why), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(parse_mac("02:00:00:00:00:0a"), Ok([2, 0, 0, 0, 0, 10]));
        assert!(parse_mac("02:00:00:00:00").is_err());
    }
}
