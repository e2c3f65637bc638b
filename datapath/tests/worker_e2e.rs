//! The AF_XDP workers end to end on a veth pair, in namespaces the test creates.
//!
//! Namespace a is the concentrator: `xa` with the steering program attached (native mode),
//! one AF_XDP socket and one [`Worker`] per queue, one established call (MPPE 128-bit
//! stateless, keys made up here). Namespace b plays both other parties over the same link
//! (one-armed mode): the PPTP client (outer address `b.addr`, AF_PACKET, proto's MPPE) and
//! the inside host (address [`INSIDE_HOST`], added to `xb`).
//!
//! * Upstream: the client sends MPPE-encrypted GRE carrying UDP to the inside host; the
//!   worker decrypts it and sends the inner packet back out of `xa` to `xb`'s MAC; b
//!   receives it decrypted, TTL one less.
//! * Downstream: the inside host sends UDP to the client's tunnel address; the worker
//!   encapsulates it; b receives GRE for the client's call ID that decrypts to the packet
//!   (TTL one less).
//!
//! With two queues, each round is sent from one CPU per queue (PACKET_QDISC_BYPASS: TX
//! queue = cpu % queues, so xa's RX queue of that index) and each worker must have handled
//! one frame each way; the call's state is shared by both workers (per-direction lock).
//! A replayed upstream frame is dropped and counted as `duplicate`.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF, CAP_NET_RAW); fails with what is
//! missing otherwise, never skips. The namespaces are removed by `VethPair`'s guard.
// Test code: panicking with context is how a test fails.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::programs::XdpMode;
use common::frames::{ETH_LEN, ETHERTYPE_IPV4, ethernet, gre, ipv4};
use common::netns::{VethPair, available_cpus, ip, pin_to_cpu, run_in};
use common::packet_socket::PacketSocket;
use xpptp_datapath::calls::CallTable;
use xpptp_datapath::packet::{CallState, DropReason, L2Header};
use xpptp_datapath::steering::Steering;
use xpptp_datapath::worker::{Worker, WorkerCall, WorkerConfig, WorkerStats};
use xpptp_datapath::xsk::{BindMode, XskConfig, XskSocket};
use xpptp_proto::crypto::mppe::{MppeDecryptor, MppeEncryptor, MppeMode, Verdict};
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::{Established, MppeKeyState};
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};
use xpptp_proto::wire::mppe::MppeHeader;
use xpptp_proto::wire::ppp::{PppFrame, Protocol};

/// Our call ID (in the GRE the client sends).
const CALL: u16 = 0x2345;
/// The client's call ID (in the GRE we send).
const PEER_CALL: u16 = 0x6789;
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 10);
const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
/// The inside host: a second address on the peer's interface.
const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
/// Client to concentrator.
const UP_KEY: StartKey = StartKey([0x5A; 16]);
/// Concentrator to client.
const DOWN_KEY: StartKey = StartKey([0xC3; 16]);
const STRENGTH: MppeStrength = MppeStrength::Bits128;
const MODE: MppeMode = MppeMode::Stateless;
/// The peer's highest GRE number at hand-over: the client's next is this + 1.
const RECV_HIGHEST: u32 = 9;

fn established(client: Ipv4Addr) -> Established {
    let key = |k: StartKey| {
        Some(MppeKeyState {
            strength: STRENGTH,
            mode: MODE,
            start_key: k,
        })
    };
    Established {
        role: Role::Server,
        local_call_id: CALL,
        peer_call_id: PEER_CALL,
        peer_address: client,
        peer_recv_window: 64,
        user: Some(b"pptpuser".to_vec()),
        auth_method: None,
        client_tunnel_address: CLIENT_TUNNEL,
        server_tunnel_address: Some(SERVER_TUNNEL),
        name_servers: NameServers::default(),
        transmit: key(DOWN_KEY),
        receive: key(UP_KEY),
        gre: GreSnapshot {
            local_call_id: CALL,
            peer_call_id: PEER_CALL,
            next_seq: 100,
            peer_acked: 99,
            ack_owed: None,
            recv_highest: Some(RECV_HIGHEST),
            peer_recv_window: 64,
        },
        peer_mru: 1400,
        our_mru: 1400,
        mtu: 1396,
        acfc: true,
        pfc: true,
    }
}

/// A UDP packet (checksum 0: none) of `payload_len` bytes of pattern.
fn udp(src: Ipv4Addr, dst: Ipv4Addr, tag: u8, payload_len: usize) -> Vec<u8> {
    let mut udp = vec![0u8; 8 + payload_len];
    udp[0..2].copy_from_slice(&4000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&5000u16.to_be_bytes());
    udp[4..6].copy_from_slice(&u16::try_from(8 + payload_len).unwrap().to_be_bytes());
    for (i, b) in udp[8..].iter_mut().enumerate() {
        *b = tag ^ i as u8;
    }
    ipv4(src, dst, IpProtocol::Udp, &udp)
}

/// What a router makes of `packet`: TTL one less, checksum updated.
fn decremented(packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.decrement_ttl().unwrap();
    assert!(ip.verify_checksum());
    p
}

/// The PPTP client's end of the call.
struct Client {
    enc: MppeEncryptor,
    dec: MppeDecryptor,
    seq: u32,
}

impl Client {
    fn new() -> Client {
        Client {
            enc: MppeEncryptor::new(&UP_KEY, STRENGTH, MODE),
            dec: MppeDecryptor::new(&DOWN_KEY, STRENGTH, MODE),
            seq: RECV_HIGHEST,
        }
    }

    /// An Ethernet frame from the client carrying `inner` in MPPE (PFC/ACFC).
    fn frame(
        &mut self,
        dst_mac: [u8; 6],
        src_mac: [u8; 6],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        inner: &[u8],
    ) -> Vec<u8> {
        self.seq += 1;
        let mut text = vec![0x00, 0x21];
        text.extend_from_slice(inner);
        let header = self.enc.encrypt(&mut text);
        let mut ppp = vec![0xFD];
        ppp.extend_from_slice(&header.to_be_bytes());
        ppp.extend_from_slice(&text);
        let mut f = ethernet(dst_mac, src_mac, ETHERTYPE_IPV4);
        f.extend(ipv4(src, dst, IpProtocol::Gre, &gre(CALL, self.seq, &ppp)));
        f
    }

    /// The inner packet of a downstream frame of our call, decrypted; None for other frames.
    fn open(&mut self, frame: &[u8]) -> Option<Vec<u8>> {
        let ip = Ipv4Packet::new_checked(frame.get(ETH_LEN..)?).ok()?;
        if ip.protocol() != IpProtocol::Gre {
            return None;
        }
        let gre = GrePacket::new_checked(ip.payload()).ok()?;
        let g = GreRepr::parse(&gre).ok()?;
        if g.call_id != PEER_CALL {
            return None;
        }
        let ppp = PppFrame::new_checked(gre.payload()).expect("PPP");
        assert_eq!(
            ppp.protocol(),
            Protocol::Mppe,
            "downstream must be encrypted"
        );
        let mut body = ppp.payload().to_vec();
        let h = MppeHeader::new_checked(&body[..])
            .expect("MPPE header")
            .flags_count();
        assert_eq!(
            self.dec.decrypt(h, &mut body[2..]),
            Verdict::Ok,
            "client decrypts"
        );
        assert_eq!(&body[2..4], &[0x00, 0x21], "inner protocol IPv4");
        Some(body[4..].to_vec())
    }
}

fn load_steering() -> Steering {
    Steering::load().unwrap_or_else(|err| {
        panic!(
            "cannot load the XDP program (needs root with CAP_BPF): {:#}",
            anyhow::Error::new(err)
        )
    })
}

fn open_socket(ifname: &str, queue: u32) -> XskSocket {
    let config = XskConfig {
        frame_count: 1024,
        tx_reserve: 64,
        mode: BindMode::Copy,
        ..XskConfig::default()
    };
    XskSocket::open_by_name(ifname, queue, config).unwrap_or_else(|err| {
        panic!(
            "cannot open an AF_XDP socket on {ifname} queue {queue} (needs root and AF_XDP): {:#}",
            anyhow::Error::new(err)
        )
    })
}

/// The first frame `socket` receives within `timeout` for which `pick` says Some.
fn receive<T>(
    socket: &PacketSocket,
    timeout: Duration,
    mut pick: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = socket.recv_host(&mut buf, left)?;
        if let Some(t) = pick(&buf[..n]) {
            return Some(t);
        }
    }
}

/// Sends `frame` from a thread pinned to `cpu` (with PACKET_QDISC_BYPASS the TX queue is
/// cpu % queues).
fn send_from_cpu(cpu: usize, socket: &PacketSocket, frame: &[u8]) {
    std::thread::scope(|s| {
        s.spawn(|| {
            pin_to_cpu(cpu);
            assert!(socket.send(frame), "AF_PACKET send refused");
        });
    });
}

fn total(workers: &[Worker]) -> WorkerStats {
    xpptp_datapath::worker::sum(workers)
}

fn forward_both_directions(queues: u32) {
    let cpus = available_cpus();
    assert!(
        cpus >= queues as usize,
        "this test steers frames to each of the {queues} veth queues by sending from one CPU \
         per queue; only {cpus} CPU(s)"
    );
    let pair = VethPair::create("wk", queues);
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let inside_cidr = format!("{INSIDE_HOST}/32");
    ip(&["-n", &b.netns, "addr", "add", &inside_cidr, "dev", b.ifname]);

    let (peer_rx, peer_tx) = run_in(&b.netns, || {
        (
            PacketSocket::open(b.ifname, true, false),
            PacketSocket::open(b.ifname, false, true),
        )
    });

    run_in(&a.netns, || {
        let mut steering = load_steering();
        let (calls, mut writer) = CallTable::<WorkerCall>::new();
        let state = CallState::from_established(&established(b.addr), a.addr);
        writer
            .establish(CALL, CLIENT_TUNNEL, WorkerCall::new(state, queues as usize))
            .expect("establish in the call table");
        let sockets: Vec<XskSocket> = (0..queues).map(|q| open_socket(a.ifname, q)).collect();
        for socket in &sockets {
            steering
                .set_socket(socket.queue(), socket)
                .expect("insert socket into the XSKMAP");
        }
        steering
            .establish_call(CALL, b.addr, false)
            .expect("establish call in the XDP map");
        steering
            .add_client(CLIENT_TUNNEL, CALL)
            .expect("add client to the XDP map");
        steering
            .attach(a.ifname, XdpMode::Driver)
            .expect("attach XDP in native mode to the veth");
        let config = WorkerConfig::new(L2Header::ethernet(b.mac, a.mac), queues as usize);
        let workers: Vec<Worker> = sockets
            .into_iter()
            .map(|s| Worker::spawn(s, Arc::clone(&calls), config.clone()).expect("spawn worker"))
            .collect();

        // Each round's frames leave xb from CPU `cpu`, so through TX queue cpu % queues,
        // so into xa's RX queue of that index: every worker gets one of each direction.
        let mut client = Client::new();
        let mut replay = Vec::new();
        for cpu in 0..queues as usize {
            // Upstream: client -> inside host, through the tunnel.
            let inner_up = udp(CLIENT_TUNNEL, INSIDE_HOST, 0x11, 200);
            let frame = client.frame(a.mac, b.mac, b.addr, a.addr, &inner_up);
            send_from_cpu(cpu, &peer_tx, &frame);
            replay.clone_from(&frame);
            let got = receive(&peer_rx, Duration::from_secs(5), |f| {
                let ip = Ipv4Packet::new_checked(f.get(ETH_LEN..)?).ok()?;
                (ip.dst_addr() == INSIDE_HOST && ip.protocol() == IpProtocol::Udp)
                    .then(|| f.to_vec())
            });
            let Some(got) = got else {
                panic!(
                    "the inner packet did not reach the inside host; workers {:?}; XDP {:?}",
                    total(&workers),
                    steering.counters()
                )
            };
            assert_eq!(&got[..6], &b.mac, "next hop's MAC");
            assert_eq!(&got[6..12], &a.mac, "our MAC");
            assert_eq!(&got[12..14], &[0x08, 0x00]);
            assert_eq!(
                &got[ETH_LEN..],
                &decremented(&inner_up)[..],
                "decrypted, TTL - 1"
            );

            // Downstream: inside host -> client, into the tunnel.
            let inner_down = udp(INSIDE_HOST, CLIENT_TUNNEL, 0x22, 300);
            let mut frame = ethernet(a.mac, b.mac, ETHERTYPE_IPV4);
            frame.extend_from_slice(&inner_down);
            send_from_cpu(cpu, &peer_tx, &frame);
            let got = receive(&peer_rx, Duration::from_secs(5), |f| {
                let ip = Ipv4Packet::new_checked(f.get(ETH_LEN..)?).ok()?;
                (ip.src_addr() == a.addr && ip.dst_addr() == b.addr).then_some(())?;
                client.open(f).map(|inner| (f[..12].to_vec(), inner))
            });
            let Some((macs, inner)) = got else {
                panic!(
                    "no GRE for the client; workers {:?}; XDP {:?}",
                    total(&workers),
                    steering.counters()
                )
            };
            assert_eq!(&macs[..6], &b.mac);
            assert_eq!(&macs[6..12], &a.mac);
            assert_eq!(
                inner,
                decremented(&inner_down),
                "client decrypts the packet, TTL - 1"
            );
        }

        // Counters: published once per loop turn, so wait for the last one.
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut stats = total(&workers);
        while stats.down_tx.packets < u64::from(queues) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
            stats = total(&workers);
        }
        let n = u64::from(queues);
        assert_eq!(stats.up_rx.packets, n, "{stats:?}");
        assert_eq!(stats.up_tx.packets, n, "{stats:?}");
        assert_eq!(stats.up_tx.bytes, n * (ETH_LEN + 20 + 8 + 200) as u64);
        assert_eq!(stats.down_rx.packets, n, "{stats:?}");
        assert_eq!(stats.down_tx.packets, n, "{stats:?}");
        for w in &workers {
            let s = w.snapshot();
            assert_eq!(
                (s.up_rx.packets, s.down_rx.packets),
                (1, 1),
                "queue {}: one frame each way: {s:?}",
                w.queue()
            );
        }
        assert_eq!(stats.dropped(), 0, "drops: {:?}", {
            DropReason::ALL
                .iter()
                .zip(stats.drops.iter())
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| (r.name(), *n))
                .collect::<Vec<_>>()
        });
        assert!(stats.batches >= 2 * n, "{stats:?}");

        // The call's own counters moved too.
        let call = calls.get_full(CALL).expect("call");
        let up = call.state().upstream.lock().unwrap().counters;
        let down = call.state().downstream.lock().unwrap().counters;
        assert_eq!((up.packets, down.packets), (n, n));

        // A replayed upstream frame: dropped by the receive window, counted by name.
        send_from_cpu(0, &peer_tx, &replay);
        let deadline = Instant::now() + Duration::from_secs(2);
        let duplicate = |w: &[Worker]| total(w).drops[DropReason::Duplicate.index()];
        while duplicate(&workers) == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let stats = total(&workers);
        assert_eq!(
            duplicate(&workers),
            1,
            "the replay is a duplicate: {stats:?}"
        );
        assert_eq!(stats.up_tx.packets, n, "nothing more forwarded");

        for w in workers {
            let socket = w.stop().expect("worker stops cleanly");
            assert_eq!(socket.counters().tx_kick_errors, 0);
        }
    });
    drop(pair);
}

#[test]
fn worker_forwards_both_directions_one_queue() {
    forward_both_directions(1);
}

#[test]
fn worker_forwards_both_directions_two_queues() {
    forward_both_directions(2);
}
