//! The daemon two-armed: XDP on an outside and an inside interface, next hops resolved
//! through ARP (no MAC configured), frames crossing from one AF_XDP socket to the other.
//!
//! ```text
//! client  xb <-veth-> xa  concentrator  xb <-veth-> xa  inside host
//!                         (Datapath: outside xa, inside xb, TUN xpptp-2a, pool 10.8.0.0/24)
//! ```
//!
//! * Upstream: the client's MPPE GRE (stateful) carries UDP to the inside host, which
//!   receives it decrypted, TTL one less, from the concentrator's inside MAC to its own. The
//!   first packets find the inside host's MAC unresolved and go through the TUN (the kernel
//!   forwards them and resolves it); the test goes on until one leaves through the fast
//!   path (out of the inside socket, `up_tx`).
//! * Downstream: the inside host's reply (routed back to the pool via the concentrator)
//!   arrives on the inside socket and reaches the client encrypted; until the client's MAC
//!   is resolved the encapsulated packet goes through the kernel's raw socket
//!   (`peer_via_kernel`), then a reply crosses from the inside socket into the outside one.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF, CAP_NET_RAW, /dev/net/tun); fails with
//! what is missing otherwise, never skips. The `VethPair` guards remove the namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::concentrator::{CallSpec, Link, TestClient, decremented, receive, udp};
use common::frames::{ETH_LEN, ETHERTYPE_IPV4, ethernet};
use common::netns::{VethPair, ip, run_in};
use common::packet_socket::PacketSocket;
use xpptp_datapath::command::Fastpath;
use xpptp_datapath::daemon::{AttachMode, Datapath, DatapathConfig, DatapathError};
use xpptp_datapath::tun::{Ipv4Prefix, TunConfig};
use xpptp_datapath::worker::{Other, WorkerStats};
use xpptp_datapath::xsk::{BindMode, XskConfig};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};

const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 10);

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

#[test]
fn two_armed_forwards_with_resolved_next_hops_both_ways() {
    let outer = VethPair::create("2o", 1);
    let inner = VethPair::create("2i", 1);
    let link = Link {
        a: outer.a.clone(),
        b: outer.b.clone(),
    };
    let conc = outer.a.clone();
    let client_end = outer.b.clone();
    let host = inner.a.clone();
    let conc_inside = inner.b.clone();
    // The inside link's b end goes to the concentrator (as `xb`, beside its outside `xa`).
    ip(&[
        "-n",
        &conc_inside.netns,
        "link",
        "set",
        "xb",
        "netns",
        &conc.netns,
    ]);
    let cidr = format!("{}/24", conc_inside.addr);
    ip(&["-n", &conc.netns, "addr", "add", &cidr, "dev", "xb"]);
    ip(&["-n", &conc.netns, "link", "set", "xb", "up"]);
    let via = conc_inside.addr.to_string();
    ip(&[
        "-n",
        &host.netns,
        "route",
        "add",
        "10.8.0.0/24",
        "via",
        &via,
    ]);

    let (client_rx, client_tx) = run_in(&client_end.netns, || {
        (
            PacketSocket::open(client_end.ifname, true, false),
            PacketSocket::open(client_end.ifname, false, false),
        )
    });
    let (host_rx, host_tx) = run_in(&host.netns, || {
        (
            PacketSocket::open(host.ifname, true, false),
            PacketSocket::open(host.ifname, false, false),
        )
    });

    let datapath = run_in(&conc.netns, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding");
        let mut tun = TunConfig::new(Ipv4Prefix::new(Ipv4Addr::new(10, 8, 0, 1), 24).unwrap());
        tun.name = "xpptp-2a".into();
        let mut config = DatapathConfig::new("xa", tun);
        config.inside = Some("xb".into());
        config.mode = AttachMode::Native;
        config.queues = Some(1);
        config.pin = false;
        config.local_mac = Some(conc.mac);
        config.xsk = XskConfig {
            frame_count: 1024,
            tx_reserve: 64,
            mode: BindMode::Copy,
            ..XskConfig::default()
        };
        let mut stat = config.clone();
        stat.next_hop_mac = Some([2, 0, 0, 0, 0, 1]);
        assert!(
            matches!(Datapath::start(&stat), Err(DatapathError::StaticTwoArmed)),
            "a static next hop is refused two-armed"
        );
        Datapath::start(&config).unwrap_or_else(|err| {
            panic!(
                "cannot start the two-armed datapath in {} (needs root: CAP_BPF, \
                 CAP_NET_ADMIN, CAP_NET_RAW, AF_XDP, /dev/net/tun): {:#}",
                conc.netns,
                anyhow::Error::new(err)
            )
        })
    });
    let spec = CallSpec {
        call_id: 0x4567,
        peer_call_id: 0x89AB,
        client_tunnel: CLIENT_TUNNEL,
        mppe: Some(MppeMode::Stateful),
    };
    datapath
        .establish(&spec.established(client_end.addr), false)
        .expect("establish");
    let mut client = TestClient::new(spec);
    let listed = datapath.list_calls(0, 10).calls;
    assert_eq!(
        (listed[0].upstream_owner, listed[0].downstream_owner),
        (Some(0), Some(0)),
        "a stateful call has its owning worker"
    );

    // Upstream, until a packet leaves through the fast path.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut tag = 0u8;
    loop {
        tag += 1;
        let up = udp(CLIENT_TUNNEL, host.addr, tag, 64);
        assert!(client_tx.send(&client.data(&link, &up)));
        let got = receive(&host_rx, |f| {
            let ip = Ipv4Packet::new_checked(f.get(ETH_LEN..)?).ok()?;
            (ip.src_addr() == CLIENT_TUNNEL && ip.dst_addr() == host.addr).then(|| f.to_vec())
        })
        .unwrap_or_else(|| {
            panic!(
                "upstream packet {tag} did not reach the inside host: {:?}; XDP {:?}",
                datapath.stats(),
                datapath.xdp_counters()
            )
        });
        assert_eq!(&got[..6], &host.mac, "to the inside host's MAC (resolved)");
        assert_eq!(
            &got[6..12],
            &conc_inside.mac,
            "from the concentrator's inside MAC"
        );
        assert_eq!(&got[ETH_LEN..], &decremented(&up)[..]);
        let stats = stats_when(&datapath, |s| s.up_rx.packets == u64::from(tag));
        if tag == 1 {
            assert_eq!(
                stats.other[Other::NextHopUnresolved.index()],
                1,
                "{stats:?}"
            );
        }
        if stats.up_tx.packets > 0 {
            // metrics: a two-armed worker reports both its sockets' rings, outside first.
            let rings = datapath
                .worker_stats()
                .first()
                .map(|w| w.rings.clone())
                .unwrap_or_default();
            assert_eq!(rings.len(), 2, "{rings:?}");
            assert_ne!(rings[0].ifindex, rings[1].ifindex, "{rings:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the inside host's MAC was never resolved: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Downstream, until a reply crosses from the inside socket into the outside one.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        tag += 1;
        let reply = udp(host.addr, CLIENT_TUNNEL, tag, 64);
        let mut frame = ethernet(conc_inside.mac, host.mac, ETHERTYPE_IPV4);
        frame.extend_from_slice(&reply);
        assert!(host_tx.send(&frame));
        let got = receive(&client_rx, |f| {
            client.open_data(&link, f).filter(|p| {
                Ipv4Packet::new_checked(&p[..]).is_ok_and(|ip| ip.protocol() == IpProtocol::Udp)
            })
        })
        .unwrap_or_else(|| {
            panic!(
                "the reply did not reach the client: {:?}; XDP {:?}",
                datapath.stats(),
                datapath.xdp_counters()
            )
        });
        assert_eq!(got, decremented(&reply));
        let stats = datapath.stats();
        assert!(
            stats.down_rx.packets >= 1,
            "arrived on the inside socket: {stats:?}"
        );
        let via_kernel = stats.other[Other::PeerViaKernel.index()];
        if stats.down_tx.packets > via_kernel {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the client's MAC was never resolved: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = datapath.stats();
    assert_eq!(stats.dropped(), 0, "{stats:?}");
    assert_eq!(stats.other[Other::TxRingFull.index()], 0, "{stats:?}");

    datapath.shutdown();
    drop(inner);
    drop(outer);
}
