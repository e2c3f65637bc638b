//! The traffic engine through the real datapath.
//!
//! ```text
//! clients + inside host (ns b)  xb <-veth-> xa  concentrator (ns a: Datapath, one-armed)
//! ```
//!
//! Four calls established over the datapath's command socket with keys chosen here (two
//! stateless, two stateful MPPE), the engine's client-side sessions built from the client
//! view of the same keys. Upstream goes out of a raw IPv4 socket (and once out of an AF_XDP
//! socket on xb) to the concentrator, which decrypts and forwards to the inside host's UDP
//! sink; downstream goes from the inside host's UDP socket through the concentrator to the
//! clients' raw GRE sink, which decrypts with each session's client state. Runs are bounded
//! by packet count; the assertions are on counts, never on speed.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF, CAP_NET_RAW, AF_XDP, /dev/net/tun);
//! fails with what is missing otherwise, never skips. The `VethPair` guard removes the
//! namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::Arc;

use xpptp_bench::traffic::cost::CostReport;
use xpptp_bench::traffic::run::{self, DatapathProbe, Downstream, Upstream};
use xpptp_bench::traffic::session::UPSTREAM_PORT;
use xpptp_bench::traffic::{
    Conditions, DirectionReport, FrameOut, Impairment, KeyedCall, L2Addresses, RawIpSender,
    SendPlan, SessionRx, SessionTx, SizeMix, TrafficReport, TrafficSession, XskSender,
    bind_downstream, bind_inside, open_gre_sink, open_raw_ip,
};
use xpptp_datapath::command::CommandServer;
use xpptp_datapath::command::client::Client;
use xpptp_datapath::daemon::{AttachMode, Datapath, DatapathConfig};
use xpptp_datapath::tun::{Ipv4Prefix, TunConfig};
use xpptp_datapath::xsk::{BindMode, XskConfig};
use xpptp_proto::command::{Establish, Message};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_testnet::{End, VethPair, ip, run_in};

const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const SESSIONS: u16 = 4;
const PACKETS: u64 = 150;

struct SocketDir(PathBuf);

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn keyed(i: u16) -> KeyedCall {
    KeyedCall {
        server_call_id: 0x3000 + i,
        client_call_id: 0x7000 + i,
        client_tunnel: Ipv4Addr::new(10, 8, 0, 10 + i as u8),
        server_tunnel: Some(Ipv4Addr::new(10, 8, 0, 1)),
        mode: Some(if i.is_multiple_of(2) {
            MppeMode::Stateless
        } else {
            MppeMode::Stateful
        }),
        up_key: [0x11 * (i as u8 + 1); 16],
        down_key: [0x5A ^ i as u8; 16],
        mtu: 1400,
    }
}

fn mac_text(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Both neighbours known from the start: no packet waits for ARP or detours through the
/// kernel, so order is kept and the counts are exact.
fn permanent_neighbour(at: &End, of: &End) {
    let (addr, mac) = (of.addr.to_string(), mac_text(&of.mac));
    ip(&[
        "-n",
        &at.netns,
        "neigh",
        "replace",
        &addr,
        "lladdr",
        &mac,
        "dev",
        at.ifname,
        "nud",
        "permanent",
    ]);
}

fn start_datapath(a: &End) -> Datapath {
    let mut tun = TunConfig::new(Ipv4Prefix::new(Ipv4Addr::new(10, 8, 0, 1), 24).unwrap());
    tun.name = "xpptp-tr".into();
    let mut config = DatapathConfig::new(a.ifname, tun);
    config.mode = AttachMode::Native;
    config.queues = Some(1);
    config.pin = false;
    config.local_mac = Some(a.mac);
    config.xsk = XskConfig {
        frame_count: 2048,
        tx_reserve: 256,
        mode: BindMode::Copy,
        ..XskConfig::default()
    };
    run_in(&a.netns, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding");
        Datapath::start(&config).unwrap_or_else(|err| {
            panic!(
                "cannot start the datapath in {} (needs root: CAP_BPF, CAP_NET_ADMIN, \
                 CAP_NET_RAW, AF_XDP, /dev/net/tun): {:#}",
                a.netns,
                anyhow::Error::new(err)
            )
        })
    })
}

fn plan(impairment: Impairment) -> SendPlan {
    SendPlan {
        packets_per_session: PACKETS,
        rate_pps: 20_000,
        batch: 16,
        sizes: SizeMix::Imix,
        impairment,
    }
}

/// One run: upstream from `out`, downstream too if `both`, sockets opened in b.
fn traffic(
    b: &End,
    txs: &mut [SessionTx],
    rxs: &mut [SessionRx],
    out: &mut dyn FrameOut,
    both: bool,
    impairment: Impairment,
    probe: &DatapathProbe,
) -> TrafficReport {
    let (inside, gre, udp) = run_in(&b.netns, || {
        (
            bind_inside(SocketAddrV4::new(INSIDE_HOST, UPSTREAM_PORT)).expect("inside sink"),
            open_gre_sink().expect("GRE sink"),
            bind_downstream(INSIDE_HOST).expect("downstream sender"),
        )
    });
    run::run(
        txs,
        rxs,
        &plan(impairment),
        Some(Upstream { out, sink: &inside }),
        both.then_some(Downstream {
            socket: &udp,
            sink: &gre,
        }),
        Some(probe),
        Conditions::new(
            "mixed",
            "xdp",
            "copy",
            if both { "sendmmsg" } else { "af_xdp" },
        ),
    )
    .expect("traffic run")
}

fn assert_complete(what: &str, report: &DirectionReport, expected: u64) {
    assert_eq!(report.sent, expected, "{what}: {report:?}");
    assert_eq!(
        (report.received, report.distinct, report.lost),
        (expected, expected, 0),
        "{what}: every packet arrives once: {report:?}"
    );
    assert_eq!(
        (report.reordered, report.duplicated, report.corrupt),
        (0, 0, 0),
        "{what}: {report:?}"
    );
    assert_eq!(report.latency.count, expected, "{what}: {report:?}");
    assert!(report.latency.max_ns > 0, "{what}: {report:?}");
}

fn assert_impaired(what: &str, report: &DirectionReport) {
    let injected = report.injected;
    assert!(
        injected.lost > 0 && injected.reordered > 0 && injected.duplicated > 0,
        "{what}: the seed must inject each kind: {report:?}"
    );
    assert_eq!(report.lost, injected.lost, "{what}: {report:?}");
    assert_eq!(report.reordered, injected.reordered, "{what}: {report:?}");
    assert_eq!(report.duplicated, injected.duplicated, "{what}: {report:?}");
    assert_eq!(report.corrupt, 0, "{what}: {report:?}");
}

fn assert_workers_moved(cost: &CostReport, at_least: u64) {
    assert_eq!(cost.workers.len(), 1, "{cost:?}");
    assert!(cost.packets >= at_least, "{cost:?}");
    assert!(
        cost.cpu_ns > 0,
        "the worker thread's CPU time moved: {cost:?}"
    );
    assert!(cost.ns_per_packet.is_some_and(|ns| ns > 0.0), "{cost:?}");
}

#[test]
fn traffic_through_the_datapath_arrives_verified_both_ways() {
    let pair = VethPair::create("tr", 1);
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let inside = format!("{INSIDE_HOST}/32");
    ip(&["-n", &b.netns, "addr", "add", &inside, "dev", b.ifname]);
    ip(&[
        "-n",
        &a.netns,
        "route",
        "add",
        &inside,
        "via",
        &b.addr.to_string(),
    ]);
    ip(&[
        "-n",
        &b.netns,
        "route",
        "add",
        "10.8.0.0/24",
        "via",
        &a.addr.to_string(),
    ]);
    permanent_neighbour(&a, &b);
    permanent_neighbour(&b, &a);

    let datapath = Arc::new(start_datapath(&a));
    let dir = SocketDir(std::env::temp_dir().join(format!("xpptp-traffic-{}", std::process::id())));
    let socket = dir.0.join("datapath.sock");
    let server = CommandServer::start(&socket, "traffic test".into(), Arc::clone(&datapath))
        .expect("command server");
    let (mut control, _) = Client::connect(&socket, "traffic test", false).expect("hello");
    let l2 = L2Addresses {
        client_mac: b.mac,
        server_mac: a.mac,
    };
    let mut sessions: Vec<TrafficSession> = (0..SESSIONS)
        .map(|i| {
            let call = keyed(i);
            let reply = control
                .request(Message::Establish(Box::new(Establish {
                    call: call.server(b.addr),
                    replace: false,
                })))
                .unwrap();
            assert_eq!(reply, Message::Done, "establish call {i}");
            let session = TrafficSession::new(
                u32::from(i),
                &call.client(a.addr),
                b.addr,
                a.addr,
                l2,
                INSIDE_HOST,
            );
            session.check_sizes(SizeMix::Imix).unwrap();
            session
        })
        .collect();
    let (mut txs, mut rxs): (Vec<SessionTx>, Vec<SessionRx>) =
        sessions.drain(..).map(|s| (s.tx, s.rx)).unzip();
    let expected = u64::from(SESSIONS) * PACKETS;
    let probe = DatapathProbe {
        socket: socket.clone(),
        pid: std::process::id(),
    };
    let raw_socket = run_in(&b.netns, || open_raw_ip().expect("raw IPv4 socket"));
    let mut raw = RawIpSender::new(raw_socket);

    // Clean run, both ways, with the workers' cost.
    let report = traffic(
        &b,
        &mut txs,
        &mut rxs,
        &mut raw,
        true,
        Impairment::default(),
        &probe,
    );
    let (up, down) = (report.upstream.unwrap(), report.downstream.unwrap());
    assert_complete("upstream", &up, expected);
    assert_complete("downstream", &down, expected);
    assert_workers_moved(up.workers.as_ref().unwrap(), expected);
    assert_workers_moved(down.workers.as_ref().unwrap(), expected);
    assert_eq!(
        (report.conditions.sizes.as_str(), report.conditions.sessions),
        ("imix", usize::from(SESSIONS))
    );
    let json = serde_json::to_value(&report.conditions).unwrap();
    assert_eq!(json["sender"], "sendmmsg", "{json}");

    // Impaired run: the sinks count exactly what the senders injected.
    let impaired = Impairment {
        loss: 0.05,
        reorder: 0.05,
        duplicate: 0.05,
        seed: 0x5EED,
    };
    let report = traffic(&b, &mut txs, &mut rxs, &mut raw, true, impaired, &probe);
    assert_impaired("upstream", report.upstream.as_ref().unwrap());
    assert_impaired("downstream", report.downstream.as_ref().unwrap());

    // Upstream through the datapath's AF_XDP socket on the clients' interface.
    let mut xsk = run_in(&b.netns, || {
        XskSender::open(
            b.ifname,
            XskConfig {
                frame_count: 1024,
                tx_reserve: 512,
                mode: BindMode::Copy,
                ..XskConfig::default()
            },
        )
        .unwrap_or_else(|err| panic!("AF_XDP sender on {} (needs root): {err:#}", b.ifname))
    });
    assert_eq!(xsk.bound_mode(), "copy");
    let report = traffic(
        &b,
        &mut txs,
        &mut rxs,
        &mut xsk,
        false,
        Impairment::default(),
        &probe,
    );
    assert!(report.downstream.is_none());
    assert_complete("upstream over AF_XDP", &report.upstream.unwrap(), expected);

    // The `traffic` subcommand: two more calls from a keys file, installed by the tool
    // itself (--establish), sockets opened in b by name, cost read from this process.
    let keys = dir.0.join("sessions.json");
    std::fs::write(
        &keys,
        r#"[{"server_call_id": 16384, "client_call_id": 16385, "client_tunnel": "10.8.0.40",
             "server_tunnel": "10.8.0.1", "mppe": "stateless", "mtu": 1400,
             "up_key": "00112233445566778899aabbccddeeff",
             "down_key": "ffeeddccbbaa99887766554433221100"},
            {"server_call_id": 16386, "client_call_id": 16387, "client_tunnel": "10.8.0.41",
             "server_tunnel": null, "mppe": "stateful", "mtu": 1400,
             "up_key": "0123456789abcdef0123456789abcdef",
             "down_key": "fedcba9876543210fedcba9876543210"}]"#,
    )
    .unwrap();
    let (a_addr, b_addr) = (a.addr.to_string(), b.addr.to_string());
    let pid = std::process::id().to_string();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xpptp-bench"))
        .args(["traffic", "--sessions"])
        .arg(&keys)
        .args(["--client-addr", &b_addr, "--server-addr", &a_addr])
        .args(["--inside-host", "192.0.2.50", "--clients-netns", &b.netns])
        .args([
            "--inside-netns",
            &b.netns,
            "--sizes",
            "1400",
            "--packets",
            "100",
        ])
        .args(["--rate", "5000", "--datapath-socket"])
        .arg(&socket)
        .args(["--datapath-pid", &pid, "--establish", "--json"])
        .output()
        .expect("run xpptp-bench");
    assert!(
        out.status.success(),
        "xpptp-bench traffic failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for way in ["upstream", "downstream"] {
        let d = &json[way];
        assert_eq!(
            (d["received"].as_u64(), d["lost"].as_u64()),
            (Some(200), Some(0)),
            "{json}"
        );
        assert!(
            d["workers"]["ns_per_packet"]
                .as_f64()
                .is_some_and(|ns| ns > 0.0),
            "{json}"
        );
    }
    assert_eq!(json["conditions"]["mppe"], "mixed", "{json}");

    drop(control);
    server.stop();
    match Arc::try_unwrap(datapath) {
        Ok(d) => d.shutdown(),
        Err(_) => panic!("the datapath is still shared after the server stopped"),
    }
    drop(dir);
    drop(pair);
}
