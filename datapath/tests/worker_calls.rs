//! The workers' call handling end to end on a veth pair, in namespaces the test creates:
//! stateful MPPE (one owner, hand-off between two queues), the control path (punts, PPP
//! frames from the control plane, pure acks), the GRE receive window, client-to-client,
//! MSS clamping, VLAN-tagged inside traffic, and the frames the workers refuse.
//!
//! Namespace a is the concentrator ([`Concentrator`]); namespace b plays the PPTP clients
//! (outer address `b.addr`, AF_PACKET) and the inside host ([`INSIDE_HOST`], an address on
//! `xb`). Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF, CAP_NET_RAW); fails with what is
//! missing otherwise, never skips. `VethPair`'s guard removes the namespaces.
// Test code: panicking with context is how a test fails.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;

use common::concentrator::{
    CallSpec, Concentrator, FIRST_SEQ, Link, MTU, RECV_HIGHEST, TestClient, decremented,
    inside_frame, receive, send_from_cpu, udp,
};
use common::frames::{ETH_LEN, gre_of, ipv4};
use common::netns::{VethPair, available_cpus, ip, run_in};
use common::packet_socket::PacketSocket;
use xpptp_datapath::packet::DropReason;
use xpptp_datapath::punt::{Punt, PuntEvent};
use xpptp_datapath::worker::Other;
use xpptp_ebpf_types::Slot;
use xpptp_proto::crypto::mppe::{MppeMode, Verdict};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};
use xpptp_proto::wire::tcp::{TcpOption, TcpPacket};

const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const LCP: u16 = 0xC021;

/// A pair, the inside host's address on `xb`, and b's receiving and sending sockets.
fn setup(tag: &str, queues: u32) -> (VethPair, Link, PacketSocket, PacketSocket) {
    let pair = VethPair::create(tag, queues);
    let link = Link {
        a: pair.a.clone(),
        b: pair.b.clone(),
    };
    let inside = format!("{INSIDE_HOST}/32");
    ip(&[
        "-n",
        &link.b.netns,
        "addr",
        "add",
        &inside,
        "dev",
        link.b.ifname,
    ]);
    let (rx, tx) = run_in(&link.b.netns, || {
        (
            PacketSocket::open(link.b.ifname, true, false),
            PacketSocket::open(link.b.ifname, false, true),
        )
    });
    (pair, link, rx, tx)
}

/// The inner packet as the inside host receives it, if `f` is one to it.
fn to_inside(f: &[u8], protocol: IpProtocol) -> Option<Vec<u8>> {
    let ip = Ipv4Packet::new_checked(f.get(ETH_LEN..)?).ok()?;
    (ip.dst_addr() == INSIDE_HOST && ip.protocol() == protocol).then(|| f[ETH_LEN..].to_vec())
}

/// A TCP SYN from the inside host with MSS option `mss`.
fn tcp_syn(src: Ipv4Addr, dst: Ipv4Addr, mss: u16) -> Vec<u8> {
    let mut tcp = vec![0u8; 24];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
    tcp[4..8].copy_from_slice(&7u32.to_be_bytes());
    tcp[12] = 6 << 4;
    tcp[13] = 0x02;
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    tcp[20..24].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8]);
    let mut packet = ipv4(src, dst, IpProtocol::Tcp, &tcp);
    let sum = TcpPacket::new_checked(&packet[20..])
        .unwrap()
        .compute_checksum(src, dst);
    packet[36..38].copy_from_slice(&sum.to_be_bytes());
    packet
}

fn mss_of(packet: &[u8]) -> Option<u16> {
    let ip = Ipv4Packet::new_checked(packet).unwrap();
    let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
    assert!(
        tcp.verify_checksum(ip.src_addr(), ip.dst_addr()),
        "TCP checksum still right"
    );
    tcp.option_iter().find_map(|o| match o {
        Ok(TcpOption::MaxSegmentSize(mss)) => Some(mss),
        _ => None,
    })
}

fn drops(stats: &xpptp_datapath::worker::WorkerStats) -> Vec<(&'static str, u64)> {
    DropReason::ALL
        .iter()
        .zip(stats.drops.iter())
        .filter(|(_, n)| **n > 0)
        .map(|(r, n)| (r.name(), *n))
        .collect()
}

/// Stateful MPPE both ways on one worker, and the control path of that call.
#[test]
fn stateful_call_data_acks_and_control_frames() {
    let (pair, link, peer_rx, peer_tx) = setup("sf", 1);
    let spec = CallSpec {
        call_id: 0x1234,
        peer_call_id: 0x4321,
        client_tunnel: Ipv4Addr::new(10, 8, 0, 10),
        mppe: Some(MppeMode::Stateful),
    };
    run_in(&link.a.netns, || {
        let c = Concentrator::start(&link, 1, &[spec]);
        let mut client = TestClient::new(spec);

        // Upstream data, decrypted and forwarded.
        let inner = udp(spec.client_tunnel, INSIDE_HOST, 1, 300);
        let frame = client.data(&link, &inner);
        assert!(peer_tx.send(&frame));
        let got = receive(&peer_rx, |f| to_inside(f, IpProtocol::Udp));
        assert_eq!(got, Some(decremented(&inner)), "{:?}", c.total());

        // Nothing goes back to the client: after ACK_DELAY a pure ack for what it sent.
        let ack = receive(&peer_rx, |f| client.open(&link, f));
        let ack = ack.unwrap_or_else(|| panic!("no pure ack: {:?}", c.total()));
        assert_eq!((ack.seq, ack.ack), (None, Some(RECV_HIGHEST + 1)));
        assert!(ack.ppp.is_empty());

        // Downstream data: encrypted with the running RC4 state, our first number.
        let down = udp(INSIDE_HOST, spec.client_tunnel, 2, 200);
        assert!(peer_tx.send(&inside_frame(&link, &down, None)));
        let got = receive(&peer_rx, |f| {
            let seq = client.open(&link, f).and_then(|r| r.seq);
            seq.map(|s| (s, f.to_vec()))
        });
        let (seq, _) = got.unwrap_or_else(|| panic!("no downstream: {:?}", c.total()));
        assert_eq!(seq, FIRST_SEQ);

        // A TCP SYN to the client: MSS clamped to the tunnel MTU, still decrypts.
        let syn = tcp_syn(INSIDE_HOST, spec.client_tunnel, 1460);
        assert!(peer_tx.send(&inside_frame(&link, &syn, None)));
        let got = receive(&peer_rx, |f| client.open_data(&link, f));
        let got = got.unwrap_or_else(|| panic!("no SYN: {:?}", c.total()));
        assert_eq!(mss_of(&got), Some(MTU - 40), "MSS clamped to MTU - 40");
        assert_eq!(mss_of(&syn), Some(1460));

        // An LCP Echo-Request from the client (here inside MPPE, which XDP steers to the
        // workers): punted to the control plane as decrypted.
        let echo = [0x09, 0x05, 0x00, 0x08, 0xde, 0xad, 0xbe, 0xef];
        let frame = client.control(&link, LCP, &echo);
        assert!(peer_tx.send(&frame));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let punt = loop {
            if let Some(p) = c.config.control.next_punt() {
                break Some(p);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let call = c.calls.get_full(spec.call_id).unwrap();
        let mut expected = LCP.to_be_bytes().to_vec();
        expected.extend_from_slice(&echo);
        assert_eq!(
            punt,
            Some(Punt {
                call_id: spec.call_id,
                generation: call.generation(),
                event: PuntEvent::Ppp(expected),
            }),
            "{:?}",
            c.total()
        );

        // The control plane's Echo-Reply: our next GRE number, the client's last number
        // acknowledged, address/control present, unencrypted.
        let mut reply = LCP.to_be_bytes().to_vec();
        reply.extend_from_slice(&[0x0A, 0x05, 0x00, 0x08, 1, 2, 3, 4]);
        c.config
            .control
            .send_ppp(spec.call_id, reply.clone())
            .expect("queue the reply");
        let got = receive(&peer_rx, |f| client.open(&link, f).filter(|r| !r.encrypted));
        let got = got.unwrap_or_else(|| panic!("no Echo-Reply: {:?}", c.total()));
        assert_eq!(got.seq, Some(FIRST_SEQ + 2), "after the two data packets");
        assert_eq!(got.ack, Some(client.seq), "acknowledges the echo request");
        assert_eq!(got.ppp, reply);
        assert!(got.address_control, "LCP is never sent with ACFC");

        // Data after the control frame: the RC4 state is untouched by it.
        let down = udp(INSIDE_HOST, spec.client_tunnel, 3, 100);
        assert!(peer_tx.send(&inside_frame(&link, &down, None)));
        let got = receive(&peer_rx, |f| client.open_data(&link, f));
        assert_eq!(got, Some(decremented(&down)), "{:?}", c.total());

        // A downstream packet lost: the client's decryptor sees the gap and would send a
        // CCP Reset-Request; the control plane answers with a Reset-Ack through the worker,
        // which makes the next data packet go out flushed: the client decrypts again.
        let lost = udp(INSIDE_HOST, spec.client_tunnel, 6, 60);
        assert!(peer_tx.send(&inside_frame(&link, &lost, None)));
        let got = receive(&peer_rx, |f| {
            gre_of(f).filter(|&(id, seq)| id == spec.peer_call_id && seq.is_some())
        });
        assert!(got.is_some(), "the packet to lose: {:?}", c.total());
        let after_gap = udp(INSIDE_HOST, spec.client_tunnel, 7, 60);
        assert!(peer_tx.send(&inside_frame(&link, &after_gap, None)));
        let got = receive(&peer_rx, |f| client.open(&link, f).filter(|r| r.encrypted));
        assert_eq!(got.and_then(|r| r.mppe), Some(Verdict::ResetRequest));
        let reset_ack = vec![0x80, 0xFD, 15, 1, 0, 4];
        c.config
            .control
            .send_reset_ack(spec.call_id, reset_ack.clone())
            .expect("queue the Reset-Ack");
        let got = receive(&peer_rx, |f| client.open(&link, f).filter(|r| !r.encrypted));
        assert_eq!(got.map(|r| r.ppp), Some(reset_ack), "{:?}", c.total());
        let flushed = udp(INSIDE_HOST, spec.client_tunnel, 8, 60);
        assert!(peer_tx.send(&inside_frame(&link, &flushed, None)));
        let got = receive(&peer_rx, |f| client.open_data(&link, f));
        assert_eq!(got, Some(decremented(&flushed)), "{:?}", c.total());

        // A lost packet: stateful MPPE cannot decrypt past the gap, the control plane is
        // asked for a CCP Reset-Request.
        let _lost = client.data(&link, &udp(spec.client_tunnel, INSIDE_HOST, 4, 50));
        let frame = client.data(&link, &udp(spec.client_tunnel, INSIDE_HOST, 5, 50));
        assert!(peer_tx.send(&frame));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        let punt = loop {
            if let Some(p) = c.config.control.next_punt() {
                break Some(p);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert_eq!(
            punt.map(|p| (p.call_id, p.event)),
            Some((spec.call_id, PuntEvent::ResetRequest)),
            "{:?}",
            c.total()
        );

        let stats = c.stats_when(|s| s.down_tx.packets >= 6 && s.control_tx.packets >= 2);
        assert_eq!(stats.dropped(), 0, "drops: {:?}", drops(&stats));
        assert_eq!(stats.other[Other::ResetRequest.index()], 1, "{stats:?}");
        assert_eq!(stats.up_rx.packets, 3, "{stats:?}");
        assert_eq!(stats.other[Other::ToControl.index()], 1);
        assert_eq!(stats.down_tx.packets, 6, "{stats:?}");
        assert_eq!(stats.control_tx.packets, 2, "{stats:?}");
        assert!(stats.ack_tx.packets >= 1, "{stats:?}");
        c.stop();
    });
    drop(pair);
}

/// A stateful call owned by worker 1 whose frames arrive on both queues: worker 0 hands
/// them over, worker 1 processes them in order; both directions decrypt. Then
/// client-to-client between calls of different owners.
#[test]
fn stateful_call_on_two_queues_is_handed_to_its_owner() {
    assert!(
        available_cpus() >= 2,
        "this test steers frames to each of the 2 veth queues by sending from one CPU per \
         queue; only {} CPU(s)",
        available_cpus()
    );
    let (pair, link, peer_rx, peer_tx) = setup("ho", 2);
    // Odd call ID: owner 1 of 2.
    let spec = CallSpec {
        call_id: 0x2001,
        peer_call_id: 0x1002,
        client_tunnel: Ipv4Addr::new(10, 8, 0, 20),
        mppe: Some(MppeMode::Stateful),
    };
    // Even call ID: owner 0, for client-to-client across owners.
    let other = CallSpec {
        call_id: 0x2002,
        peer_call_id: 0x1003,
        client_tunnel: Ipv4Addr::new(10, 8, 0, 21),
        mppe: Some(MppeMode::Stateful),
    };
    run_in(&link.a.netns, || {
        let c = Concentrator::start(&link, 2, &[spec, other]);
        assert_eq!(c.calls.get_full(spec.call_id).unwrap().owner(), Some(1));
        assert_eq!(c.calls.get_full(other.call_id).unwrap().owner(), Some(0));
        let mut client = TestClient::new(spec);
        let rounds = 4u8;
        for round in 0..rounds {
            let cpu = usize::from(round % 2);
            let inner = udp(
                spec.client_tunnel,
                INSIDE_HOST,
                round,
                100 + usize::from(round),
            );
            send_from_cpu(cpu, &peer_tx, &client.data(&link, &inner));
            let got = receive(&peer_rx, |f| to_inside(f, IpProtocol::Udp));
            assert_eq!(
                got,
                Some(decremented(&inner)),
                "round {round}: {:?}",
                c.total()
            );

            let down = udp(INSIDE_HOST, spec.client_tunnel, round, 200);
            send_from_cpu(cpu, &peer_tx, &inside_frame(&link, &down, None));
            let got = receive(&peer_rx, |f| client.open_data(&link, f));
            assert_eq!(
                got,
                Some(decremented(&down)),
                "round {round}: {:?}",
                c.total()
            );
        }
        let n = u64::from(rounds);
        let done = |s: &xpptp_datapath::worker::WorkerStats| s.down_tx.packets >= n;
        let stats = c.stats_when(done);
        assert_eq!(stats.dropped(), 0, "drops: {:?}", drops(&stats));
        let (w0, w1) = (c.workers[0].snapshot(), c.workers[1].snapshot());
        assert_eq!(
            w0.other[Other::HandedOff.index()],
            n,
            "worker 0 hands over its 2 + 2 frames: {w0:?}"
        );
        assert_eq!((w0.up_rx.packets, w0.down_rx.packets), (0, 0), "{w0:?}");
        assert_eq!((w1.up_rx.packets, w1.down_rx.packets), (n, n), "{w1:?}");
        assert_eq!((w1.up_tx.packets, w1.down_tx.packets), (n, n), "{w1:?}");
        assert_eq!(w1.other[Other::HandedOff.index()], 0);
        assert_eq!(stats.other[Other::HandOffFull.index()], 0);

        // Client-to-client between the two owners, arriving on queue 0: worker 0 hands the
        // frame to 1, which decrypts it and hands the inner packet back to 0, the other
        // call's owner, which encrypts it for that client.
        let mut peer = TestClient::new(other);
        let inner = udp(spec.client_tunnel, other.client_tunnel, 0x77, 90);
        send_from_cpu(0, &peer_tx, &client.data(&link, &inner));
        let got = receive(&peer_rx, |f| peer.open_data(&link, f));
        assert_eq!(got, Some(decremented(&inner)), "{:?}", c.total());
        let stats = c.stats_when(|s| s.c2c_tx.packets >= 1);
        let (w0, w1) = (c.workers[0].snapshot(), c.workers[1].snapshot());
        assert_eq!(w0.other[Other::HandedOff.index()], n + 1, "{w0:?}");
        assert_eq!(w1.other[Other::HandedOff.index()], 1, "{w1:?}");
        assert_eq!((w0.c2c_tx.packets, w1.c2c_tx.packets), (1, 0));
        assert_eq!(stats.dropped(), 0, "drops: {:?}", drops(&stats));
        assert_eq!(stats.other[Other::NotOwner.index()], 0);
        c.stop();
    });
    drop(pair);
}

/// A plain-IP call and a stateless MPPE call on one worker: the GRE window, spoofed and
/// unknown calls, client-to-client, VLAN-tagged inside traffic, and inside GRE to a client.
#[test]
fn window_refusals_client_to_client_and_vlan() {
    let (pair, link, peer_rx, peer_tx) = setup("cc", 1);
    let plain = CallSpec {
        call_id: 0x0301,
        peer_call_id: 0x1301,
        client_tunnel: Ipv4Addr::new(10, 8, 0, 31),
        mppe: None,
    };
    let stateless = CallSpec {
        call_id: 0x0302,
        peer_call_id: 0x1302,
        client_tunnel: Ipv4Addr::new(10, 8, 0, 32),
        mppe: Some(MppeMode::Stateless),
    };
    // In the XDP map only: the worker's table does not know it (a stale map).
    let unknown: u16 = 0x0303;
    // In the XDP map from SPOOF, in the worker's table from the real client.
    let spoofed = CallSpec {
        call_id: 0x0304,
        peer_call_id: 0x1304,
        client_tunnel: Ipv4Addr::new(10, 8, 0, 34),
        mppe: None,
    };
    let spoof = Ipv4Addr::new(link.b.addr.octets()[0], link.b.addr.octets()[1], 99, 3);
    run_in(&link.a.netns, || {
        let mut c = Concentrator::start(&link, 1, &[plain, stateless, spoofed]);
        c.steering
            .establish_call(unknown, link.b.addr, true)
            .expect("XDP call map");
        c.steering
            .establish_call(spoofed.call_id, spoof, true)
            .expect("XDP call map");
        let mut a = TestClient::new(plain);
        let mut b = TestClient::new(stateless);

        // Reordered within the window: all three forwarded; a repeat is a duplicate.
        let packets: Vec<Vec<u8>> = (0..3)
            .map(|i| udp(plain.client_tunnel, INSIDE_HOST, 0x40 + i, 64))
            .collect();
        let ppp: Vec<Vec<u8>> = packets.iter().map(|p| a.ppp(0x0021, p)).collect();
        let base = RECV_HIGHEST + 1;
        for i in [0usize, 2, 1] {
            let frame = a.frame_from(&link, link.b.addr, base + i as u32, &ppp[i]);
            assert!(peer_tx.send(&frame));
            let got = receive(&peer_rx, |f| to_inside(f, IpProtocol::Udp));
            assert_eq!(
                got,
                Some(decremented(&packets[i])),
                "packet {i}: {:?}",
                c.total()
            );
        }
        assert!(peer_tx.send(&a.frame_from(&link, link.b.addr, base + 1, &ppp[1])));
        let stats = c.stats_when(|s| s.drops[DropReason::Duplicate.index()] >= 1);
        assert_eq!(stats.drops[DropReason::Duplicate.index()], 1, "{stats:?}");
        assert_eq!(stats.up_tx.packets, 3, "{stats:?}");
        a.seq = base + 2;

        // Spoofed source: XDP passes it to the kernel (counted there); where XDP's map
        // lets it through, the worker drops it as spoofed.
        let before = c.steering.counter(Slot::PassSpoofed).unwrap().packets;
        let body = a.ppp(0x0021, &packets[0]);
        assert!(peer_tx.send(&a.frame_from(&link, spoof, base + 3, &body)));
        let other = TestClient::new(spoofed);
        assert!(peer_tx.send(&other.frame_from(&link, spoof, base, &body)));
        // Unknown call: steered by the stale XDP entry, counted by the worker.
        let stray = TestClient::new(CallSpec {
            call_id: unknown,
            ..plain
        });
        assert!(peer_tx.send(&stray.frame_from(&link, link.b.addr, base, &body)));
        let stats = c.stats_when(|s| {
            s.drops[DropReason::Spoofed.index()] >= 1 && s.other[Other::UnknownCall.index()] >= 1
        });
        assert_eq!(stats.drops[DropReason::Spoofed.index()], 1, "{stats:?}");
        assert_eq!(stats.other[Other::UnknownCall.index()], 1, "{stats:?}");
        let after = c.steering.counter(Slot::PassSpoofed).unwrap().packets;
        assert_eq!(
            after - before,
            1,
            "XDP passes the spoofed frame of a known call"
        );
        assert_eq!(stats.up_tx.packets, 3, "nothing more forwarded: {stats:?}");

        // Client-to-client: plain client to the stateless client, encrypted to it, TTL
        // decremented once.
        let inner = udp(plain.client_tunnel, stateless.client_tunnel, 0x50, 120);
        assert!(peer_tx.send(&a.data(&link, &inner)));
        let got = receive(&peer_rx, |f| b.open_data(&link, f));
        assert_eq!(got, Some(decremented(&inner)), "{:?}", c.total());

        // VLAN-tagged inside traffic: encapsulated, the tag stripped.
        let down = udp(INSIDE_HOST, stateless.client_tunnel, 0x60, 80);
        assert!(peer_tx.send(&inside_frame(&link, &down, Some(42))));
        let got = receive(&peer_rx, |f| b.open_data(&link, f));
        assert_eq!(got, Some(decremented(&down)), "{:?}", c.total());

        // PPTP-looking GRE from the inside to a client, even with a known call's ID: inside
        // traffic to that client, encapsulated (as XDP classifies it), not upstream.
        let gre = common::frames::gre(plain.call_id, 77, b"the client's own GRE");
        let down = ipv4(INSIDE_HOST, stateless.client_tunnel, IpProtocol::Gre, &gre);
        assert!(peer_tx.send(&inside_frame(&link, &down, None)));
        let got = receive(&peer_rx, |f| b.open_data(&link, f));
        assert_eq!(got, Some(decremented(&down)), "{:?}", c.total());

        let stats = c.stats_when(|s| s.down_tx.packets >= 3);
        assert_eq!(stats.c2c_tx.packets, 1, "{stats:?}");
        assert_eq!(stats.down_tx.packets, 3, "{stats:?}");
        assert_eq!(
            stats.down_rx.packets, 2,
            "the VLAN and GRE frames: {stats:?}"
        );
        assert_eq!(
            stats.dropped(),
            2,
            "only the duplicate and the spoofed frame: {:?}",
            drops(&stats)
        );
        c.stop();
    });
    drop(pair);
}
