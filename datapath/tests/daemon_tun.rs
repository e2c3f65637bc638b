//! The daemon's TUN in XDP mode: what the fast path does not route itself goes to the
//! kernel, and what the kernel sends to clients comes back encapsulated.
//!
//! Namespace a runs [`Datapath`] on `xa` (native XDP, one queue, copy mode) with the TUN
//! `xpptp-tn` holding the concentrator's tunnel address (10.8.0.1/24, the pool routed into
//! it) and next hops from the kernel's tables (no MAC configured). Namespace b is the PPTP
//! client. The call is MPPE 128-bit stateful, so its downstream has one owning worker that
//! the TUN reader must hand the kernel's packets to.
//!
//! * A ping from the client's tunnel address to 10.8.0.1 is decapsulated, written into the
//!   TUN (`local`), answered by the kernel, read back from the TUN and encapsulated: the
//!   client decrypts the echo reply.
//! * A packet to an address a has no route for goes into the TUN (`no_route`); the kernel's
//!   ICMP destination unreachable comes back to the client encrypted.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF, CAP_NET_RAW, /dev/net/tun); fails with
//! what is missing otherwise, never skips. `VethPair`'s guard removes the namespaces (and
//! the TUN with namespace a).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::concentrator::{CallSpec, Link, SERVER_TUNNEL, TestClient, receive};
use common::frames::{ETH_LEN, icmp_echo_frame};
use common::netns::{VethPair, run_in};
use common::packet_socket::PacketSocket;
use xpptp_datapath::command::Fastpath;
use xpptp_datapath::daemon::{AttachMode, Datapath, DatapathConfig};
use xpptp_datapath::tun::{Ipv4Prefix, TunConfig};
use xpptp_datapath::worker::{Other, WorkerStats};
use xpptp_datapath::xsk::{BindMode, XskConfig};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};

const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 10);
/// No route to it in namespace a.
const UNROUTED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

fn start(pair: &VethPair) -> Datapath {
    let a = pair.a.clone();
    run_in(&a.netns, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding");
        let mut tun = TunConfig::new(Ipv4Prefix::new(SERVER_TUNNEL, 24).unwrap());
        tun.name = "xpptp-tn".into();
        tun.routes = vec![Ipv4Prefix::new(Ipv4Addr::new(10, 8, 0, 0), 24).unwrap()];
        let mut config = DatapathConfig::new(a.ifname, tun);
        config.mode = AttachMode::Native;
        config.queues = Some(1);
        config.pin = false;
        config.local_mac = Some(a.mac);
        config.xsk = XskConfig {
            frame_count: 1024,
            tx_reserve: 64,
            mode: BindMode::Copy,
            ..XskConfig::default()
        };
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

fn stats_when(datapath: &Datapath, done: impl Fn(&WorkerStats) -> bool) -> WorkerStats {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let stats = datapath.stats();
        if done(&stats) || Instant::now() >= deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn other(stats: &WorkerStats, what: Other) -> u64 {
    stats.other[what.index()]
}

#[test]
fn the_kernel_answers_through_the_tun_in_xdp_mode() {
    let pair = VethPair::create("tn", 1);
    let link = Link {
        a: pair.a.clone(),
        b: pair.b.clone(),
    };
    let b = pair.b.clone();
    let (rx, tx) = run_in(&b.netns, || {
        (
            PacketSocket::open(b.ifname, true, false),
            PacketSocket::open(b.ifname, false, false),
        )
    });
    let datapath = start(&pair);
    let spec = CallSpec {
        call_id: 0x3456,
        peer_call_id: 0x789A,
        client_tunnel: CLIENT_TUNNEL,
        mppe: Some(MppeMode::Stateful),
    };
    datapath
        .establish(&spec.established(b.addr), false)
        .expect("establish");
    let mut client = TestClient::new(spec);

    // Ping the concentrator's tunnel address through the tunnel.
    let echo = icmp_echo_frame([0; 6], [0; 6], CLIENT_TUNNEL, SERVER_TUNNEL, 0x77, 1);
    let request = &echo[ETH_LEN..];
    assert!(tx.send(&client.data(&link, request)));
    let reply = receive(&rx, |f| client.open_data(&link, f)).unwrap_or_else(|| {
        panic!(
            "no echo reply came back through the tunnel; workers {:?}; TUN {:?}",
            datapath.stats(),
            datapath.tun_stats()
        )
    });
    let ip = Ipv4Packet::new_checked(&reply[..]).expect("IPv4");
    assert_eq!(
        (ip.src_addr(), ip.dst_addr(), ip.protocol()),
        (SERVER_TUNNEL, CLIENT_TUNNEL, IpProtocol::Icmp)
    );
    let icmp = ip.payload();
    assert_eq!(icmp[0], 0, "echo reply");
    assert_eq!(
        &icmp[4..8],
        &request[24..28],
        "same identifier and sequence"
    );
    let stats = stats_when(&datapath, |s| other(s, Other::FromTun) >= 1);
    assert_eq!(other(&stats, Other::Local), 1, "{stats:?}");
    assert_eq!(other(&stats, Other::FromTun), 1, "{stats:?}");
    assert_eq!(other(&stats, Other::TunDropped), 0, "{stats:?}");
    let tun = datapath.tun_stats();
    assert!(tun.handed >= 1, "the reader handed the reply over: {tun:?}");

    // A destination nobody routes: the kernel answers ICMP unreachable to the client.
    let mut udp = vec![0u8; 8 + 32];
    udp[0..2].copy_from_slice(&4000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&5000u16.to_be_bytes());
    udp[4..6].copy_from_slice(&40u16.to_be_bytes());
    let lost = common::frames::ipv4(CLIENT_TUNNEL, UNROUTED, IpProtocol::Udp, &udp);
    assert!(tx.send(&client.data(&link, &lost)));
    let unreachable = receive(&rx, |f| client.open_data(&link, f)).unwrap_or_else(|| {
        panic!(
            "no ICMP unreachable came back; workers {:?}; TUN {:?}",
            datapath.stats(),
            datapath.tun_stats()
        )
    });
    let ip = Ipv4Packet::new_checked(&unreachable[..]).expect("IPv4");
    assert_eq!(
        (ip.dst_addr(), ip.protocol()),
        (CLIENT_TUNNEL, IpProtocol::Icmp)
    );
    let icmp = ip.payload();
    assert_eq!(icmp[0], 3, "destination unreachable: {icmp:02x?}");
    // The ICMP error quotes the packet's header: ours, to the unrouted address.
    let quoted = Ipv4Packet::new_unchecked(&icmp[8..]);
    assert_eq!(quoted.dst_addr(), UNROUTED);
    let stats = stats_when(&datapath, |s| other(s, Other::NoRoute) >= 1);
    assert_eq!(other(&stats, Other::NoRoute), 1, "{stats:?}");
    assert_eq!(
        stats.up_tx.packets, 0,
        "nothing left through the fast path: {stats:?}"
    );

    datapath.shutdown();
    drop(pair);
}
