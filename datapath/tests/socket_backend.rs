//! The socket backend end to end, across three namespaces the test creates:
//!
//! ```text
//! client  xa 10.77.n.1 <-veth-> xb 10.77.n.2  concentrator  xa 10.77.m.1 <-veth-> xb 10.77.m.2  inside
//!                                              (SocketBackend, TUN xpptp0,
//!                                               pool 10.8.0.0/24 -> xpptp0)
//! ```
//!
//! * Upstream: the client sends MPPE-encrypted GRE (raw socket, IP_HDRINCL) carrying UDP to
//!   the inside host; the inside host receives it decrypted, TTL one less.
//! * Downstream: the inside host answers with a UDP socket; the kernel routes the answer into
//!   the TUN; the client receives GRE for its call ID with the next sequence number and the
//!   ack of its packet, which decrypts (proto's MppeDecryptor) to the answer, TTL one less.
//! * Local: an echo request to the concentrator's own tunnel address goes to the kernel
//!   through the TUN; the kernel's echo reply comes back to the client through the tunnel.
//! * A burst of 16 upstream packets all arrive, once each; a burst of 16 downstream packets
//!   arrives with consecutive sequence numbers.
//! * GRE for an unknown call ID and GRE for the call from another source address are counted
//!   (`unknown_call`, `spoofed`) and not forwarded.
//!
//! Needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN) and /dev/net/tun; fails with what
//! is missing otherwise, never skips. The namespaces are removed by `VethPair`'s guards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::frames::{gre, ipv4};
use common::netns::{VethPair, ip, run_in};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use xpptp_datapath::backend::socket::{SocketBackend, SocketConfig};
use xpptp_datapath::calls::CallTable;
use xpptp_datapath::packet::{CallState, DropReason};
use xpptp_datapath::tun::{Ipv4Prefix, TunConfig};
use xpptp_datapath::worker::{Other, WorkerCall, WorkerStats};
use xpptp_proto::crypto::mppe::{MppeDecryptor, MppeEncryptor, MppeMode, Verdict};
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::{Established, MppeKeyState};
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet, checksum};
use xpptp_proto::wire::mppe::MppeHeader;
use xpptp_proto::wire::ppp::{PppFrame, Protocol as PppProtocol};

const CALL: u16 = 0x2345;
const PEER_CALL: u16 = 0x6789;
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 10);
const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
const UP_KEY: StartKey = StartKey([0x5A; 16]);
const DOWN_KEY: StartKey = StartKey([0xC3; 16]);
const STRENGTH: MppeStrength = MppeStrength::Bits128;
const MODE: MppeMode = MppeMode::Stateless;
const RECV_HIGHEST: u32 = 9;
const NEXT_SEQ: u32 = 100;
const CLIENT_PORT: u16 = 4000;
const INSIDE_PORT: u16 = 5000;

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
            next_seq: NEXT_SEQ,
            peer_acked: NEXT_SEQ - 1,
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

fn udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    ipv4(*src.ip(), *dst.ip(), IpProtocol::Udp, &udp)
}

fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"xpptp-local");
    let sum = !checksum::data(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4(src, dst, IpProtocol::Icmp, &icmp)
}

fn raw(protocol: i32) -> Socket {
    let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol)))
        .unwrap_or_else(|e| panic!("raw socket (needs CAP_NET_RAW): {e}"));
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

/// The first packet `socket` receives within `timeout` for which `pick` says Some.
fn receive<T>(
    socket: &Socket,
    timeout: Duration,
    mut pick: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(n) = (&*socket).read(&mut buf)
            && let Some(t) = pick(&buf[..n])
        {
            return Some(t);
        }
    }
    None
}

/// The PPTP client: its raw sockets (in its namespace) and its end of the call's crypto.
struct Client {
    tx: Socket,
    rx: Socket,
    enc: MppeEncryptor,
    dec: MppeDecryptor,
    seq: u32,
}

impl Client {
    /// An outer IPv4 + GRE packet from `src` for `call_id` carrying `inner` in MPPE.
    fn packet(&mut self, src: Ipv4Addr, dst: Ipv4Addr, call_id: u16, inner: &[u8]) -> Vec<u8> {
        self.seq += 1;
        let mut text = vec![0x00, 0x21];
        text.extend_from_slice(inner);
        let header = self.enc.encrypt(&mut text);
        let mut ppp = vec![0xFD];
        ppp.extend_from_slice(&header.to_be_bytes());
        ppp.extend_from_slice(&text);
        ipv4(src, dst, IpProtocol::Gre, &gre(call_id, self.seq, &ppp))
    }

    fn send(&self, packet: &[u8], to: Ipv4Addr) {
        self.tx
            .send_to(packet, &SockAddr::from(SocketAddrV4::new(to, 0)))
            .expect("client sends GRE");
    }

    /// (sequence, ack, decrypted inner packet) of a GRE packet for our call.
    fn open(&mut self, packet: &[u8]) -> Option<(u32, Option<u32>, Vec<u8>)> {
        let ip = Ipv4Packet::new_checked(packet).ok()?;
        if ip.protocol() != IpProtocol::Gre {
            return None;
        }
        let gre = GrePacket::new_checked(ip.payload()).ok()?;
        let g = GreRepr::parse(&gre).ok()?;
        if g.call_id != PEER_CALL {
            return None;
        }
        let ppp = PppFrame::new_checked(gre.payload()).expect("PPP");
        assert_eq!(ppp.protocol(), PppProtocol::Mppe, "downstream is encrypted");
        let mut body = ppp.payload().to_vec();
        let h = MppeHeader::new_checked(&body[..]).unwrap().flags_count();
        assert_eq!(self.dec.decrypt(h, &mut body[2..]), Verdict::Ok);
        assert_eq!(&body[2..4], &[0x00, 0x21], "inner protocol IPv4");
        Some((g.seq?, g.ack, body[4..].to_vec()))
    }
}

fn wait_for(backend: &SocketBackend, what: &str, done: impl Fn(&WorkerStats) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !done(&backend.snapshot()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = backend.snapshot();
    assert!(done(&stats), "{what}: {stats:?}");
}

#[test]
fn socket_backend_forwards_both_directions_and_counts_strangers() {
    // client <-> concentrator, then the inside host's link moved into the concentrator.
    let outer = VethPair::create("sbo", 1);
    let inner = VethPair::create("sbi", 1);
    let (client_ns, conc_ns, inside_ns) = (&outer.a.netns, &outer.b.netns, &inner.b.netns);
    let (client_addr, conc_addr) = (outer.a.addr, outer.b.addr);
    let (conc_inside, inside_addr) = (inner.a.addr, inner.b.addr);
    ip(&["-n", &inner.a.netns, "link", "set", "xa", "netns", conc_ns]);
    let cidr = format!("{conc_inside}/24");
    ip(&["-n", conc_ns, "addr", "add", &cidr, "dev", "xa"]);
    ip(&["-n", conc_ns, "link", "set", "xa", "up"]);
    ip(&[
        "-n",
        inside_ns,
        "route",
        "add",
        "10.8.0.0/24",
        "via",
        &conc_inside.to_string(),
    ]);
    let spoof_addr = Ipv4Addr::new(10, 77, client_addr.octets()[2], 3);
    let spoof_cidr = format!("{spoof_addr}/24");
    ip(&["-n", client_ns, "addr", "add", &spoof_cidr, "dev", "xa"]);
    let sysctl = Command::new("ip")
        .args([
            "netns",
            "exec",
            conc_ns,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ])
        .status()
        .expect("run ip netns exec sysctl");
    assert!(
        sysctl.success(),
        "enable forwarding in the concentrator namespace"
    );

    let mut client = run_in(client_ns, || Client {
        tx: raw(libc::IPPROTO_RAW),
        rx: raw(47),
        enc: MppeEncryptor::new(&UP_KEY, STRENGTH, MODE),
        dec: MppeDecryptor::new(&DOWN_KEY, STRENGTH, MODE),
        seq: RECV_HIGHEST,
    });
    let (inside_raw, inside_udp) = run_in(inside_ns, || {
        let udp = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, INSIDE_PORT)).unwrap();
        (raw(libc::IPPROTO_UDP), udp)
    });

    let (calls, mut writer) = CallTable::<WorkerCall>::new();
    let state = CallState::from_established(&established(client_addr), conc_addr);
    writer
        .establish(CALL, CLIENT_TUNNEL, WorkerCall::new(state, 1))
        .expect("establish");
    let backend = run_in(conc_ns, || {
        let mut tun = TunConfig::new(Ipv4Prefix::new(SERVER_TUNNEL, 32).unwrap());
        tun.routes = vec![Ipv4Prefix::new(Ipv4Addr::new(10, 8, 0, 0), 24).unwrap()];
        let mut config = SocketConfig::new(tun);
        config.downstream_threads = 2;
        SocketBackend::spawn(Arc::clone(&calls), config).unwrap_or_else(|err| {
            panic!(
                "cannot start the socket backend (needs root): {:#}",
                anyhow::Error::new(err)
            )
        })
    });
    assert_eq!(backend.tun_name(), "xpptp0");
    assert_eq!(backend.threads(), 3, "one upstream, two downstream");

    // Upstream: client -> inside host.
    let client_sock = SocketAddrV4::new(CLIENT_TUNNEL, CLIENT_PORT);
    let inside_sock = SocketAddrV4::new(inside_addr, INSIDE_PORT);
    let inner_up = udp(client_sock, inside_sock, b"hello from the client");
    let packet = client.packet(client_addr, conc_addr, CALL, &inner_up);
    client.send(&packet, conc_addr);
    let got = receive(&inside_raw, Duration::from_secs(3), |p| {
        let ip = Ipv4Packet::new_checked(p).ok()?;
        (ip.src_addr() == CLIENT_TUNNEL).then(|| p.to_vec())
    });
    let Some(got) = got else {
        panic!("the inside host got nothing; {:?}", backend.snapshot())
    };
    let mut expected = inner_up.clone();
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut expected[..]);
        ip.decrement_ttl().unwrap();
    }
    assert_eq!(
        got, expected,
        "decrypted, TTL one less (once, by the kernel)"
    );
    let mut buf = [0u8; 64];
    let (n, from) = inside_udp.recv_from(&mut buf).expect("UDP socket receives");
    assert_eq!(&buf[..n], b"hello from the client");
    assert_eq!(from, std::net::SocketAddr::V4(client_sock));

    // Downstream: the inside host's answer, routed into the TUN, encapsulated for the client.
    inside_udp.send_to(b"answer", client_sock).unwrap();
    let got = receive(&client.rx, Duration::from_secs(3), |p| {
        let ip = Ipv4Packet::new_checked(p).ok()?;
        (ip.src_addr() == conc_addr && ip.dst_addr() == client_addr).then(|| p.to_vec())
    });
    let Some(got) = got else {
        panic!("the client got no GRE; {:?}", backend.snapshot())
    };
    let (seq, ack, inner) = client.open(&got).expect("GRE of the client's call");
    assert_eq!(
        seq, NEXT_SEQ,
        "our first sequence number after the hand-over"
    );
    assert_eq!(
        ack,
        Some(RECV_HIGHEST + 1),
        "acknowledges the client's packet"
    );
    let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), inside_addr);
    assert_eq!(ip.dst_addr(), CLIENT_TUNNEL);
    assert_eq!(ip.ttl(), 63, "one less than the inside host's 64");
    assert_eq!(ip.protocol(), IpProtocol::Udp);
    assert_eq!(&ip.payload()[0..2], &INSIDE_PORT.to_be_bytes());
    assert_eq!(&ip.payload()[8..], b"answer");

    // The concentrator's own tunnel address: the echo request goes to the kernel through
    // the TUN (Local), the kernel's reply comes back through it to the client.
    let echo = echo_request(CLIENT_TUNNEL, SERVER_TUNNEL, 0x7070, 1);
    let packet = client.packet(client_addr, conc_addr, CALL, &echo);
    client.send(&packet, conc_addr);
    let got = receive(&client.rx, Duration::from_secs(3), |p| {
        let ip = Ipv4Packet::new_checked(p).ok()?;
        (ip.src_addr() == conc_addr && ip.dst_addr() == client_addr).then(|| p.to_vec())
    });
    let Some(got) = got else {
        panic!(
            "no echo reply from the concentrator; {:?}",
            backend.snapshot()
        )
    };
    let (seq, ack, inner) = client.open(&got).expect("GRE of the client's call");
    assert_eq!((seq, ack), (NEXT_SEQ + 1, Some(RECV_HIGHEST + 2)));
    let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
    assert_eq!(
        (ip.src_addr(), ip.dst_addr()),
        (SERVER_TUNNEL, CLIENT_TUNNEL)
    );
    assert_eq!(ip.protocol(), IpProtocol::Icmp);
    assert_eq!(&ip.payload()[..1], &[0], "echo reply");
    assert_eq!(
        &ip.payload()[4..8],
        &[0x70, 0x70, 0, 1],
        "ident and sequence"
    );

    // A burst (received in batches when the thread is behind): every packet arrives once.
    const BURST: u8 = 16;
    for tag in 0..BURST {
        let inner = udp(client_sock, inside_sock, &[b'b', tag]);
        let packet = client.packet(client_addr, conc_addr, CALL, &inner);
        client.send(&packet, conc_addr);
    }
    let mut seen = Vec::new();
    while seen.len() < usize::from(BURST) {
        let got = receive(&inside_raw, Duration::from_secs(3), |p| {
            let ip = Ipv4Packet::new_checked(p).ok()?;
            let payload = ip.payload().get(8..)?;
            (ip.src_addr() == CLIENT_TUNNEL && payload.first() == Some(&b'b')).then(|| payload[1])
        });
        let Some(tag) = got else {
            panic!("burst: got {seen:?}; {:?}", backend.snapshot())
        };
        seen.push(tag);
    }
    seen.sort_unstable();
    assert_eq!(
        seen,
        (0..BURST).collect::<Vec<_>>(),
        "each burst packet once"
    );
    let up = u64::from(BURST) + 1;

    // A downstream burst (one flow, so one TUN queue: in order): consecutive sequence
    // numbers, each decrypting to its packet.
    for tag in 0..BURST {
        inside_udp.send_to(&[b'd', tag], client_sock).unwrap();
    }
    for tag in 0..BURST {
        let got = receive(&client.rx, Duration::from_secs(3), |p| {
            let ip = Ipv4Packet::new_checked(p).ok()?;
            (ip.src_addr() == conc_addr && ip.dst_addr() == client_addr).then(|| p.to_vec())
        });
        let Some(got) = got else {
            panic!(
                "downstream burst: packet {tag} missing; {:?}",
                backend.snapshot()
            )
        };
        let (seq, _, inner) = client.open(&got).expect("GRE of the client's call");
        assert_eq!(seq, NEXT_SEQ + 2 + u32::from(tag));
        let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
        assert_eq!(&ip.payload()[8..], &[b'd', tag]);
    }
    let down = 2 + u64::from(BURST);

    wait_for(&backend, "every packet each way and one local", |s| {
        s.up_tx.packets == up && s.down_tx.packets == down && s.other[Other::Local.index()] == 1
    });

    // Strangers: an unknown call ID, and the call's ID from another source address.
    let stranger = udp(client_sock, inside_sock, b"unknown call");
    let packet = client.packet(client_addr, conc_addr, 0x1111, &stranger);
    client.send(&packet, conc_addr);
    let spoofed = udp(client_sock, inside_sock, b"spoofed source");
    let packet = client.packet(spoof_addr, conc_addr, CALL, &spoofed);
    client.send(&packet, conc_addr);
    wait_for(&backend, "both strangers counted", |s| {
        s.other[Other::UnknownCall.index()] == 1 && s.drops[DropReason::Spoofed.index()] == 1
    });
    let leaked = receive(&inside_raw, Duration::from_millis(300), |p| {
        let ip = Ipv4Packet::new_checked(p).ok()?;
        (ip.src_addr() == CLIENT_TUNNEL).then_some(())
    });
    assert!(leaked.is_none(), "nothing forwarded for the strangers");
    let stats = backend.snapshot();
    assert_eq!(
        stats.up_rx.packets,
        up + 2,
        "the call's packets, the local one and the spoofed one"
    );
    assert_eq!(stats.up_tx.packets, up);
    // Every packet read is counted once: for a call, or as what it was (the kernel may also
    // send the TUN packets of its own, IPv6 ones: not_steerable).
    let others = [
        Other::UnknownCall,
        Other::UnknownClient,
        Other::NotSteerable,
    ]
    .map(|o| stats.other[o.index()])
    .iter()
    .sum::<u64>();
    assert_eq!(
        stats.batch_frames,
        stats.up_rx.packets + stats.down_rx.packets + others,
        "{stats:?}"
    );
    assert_eq!(stats.dropped(), 1, "{stats:?}");
    assert_eq!(backend.io_errors(), 0);

    let call = calls.get_full(CALL).expect("call");
    let up_packets = up + 1;
    let down_packets = down;
    let up = call.state().upstream.lock().unwrap().counters;
    let down = call.state().downstream.lock().unwrap().counters;
    assert_eq!((up.packets, down.packets), (up_packets, down_packets));

    assert!(backend.all_running());
    backend.stop().expect("the backend stops cleanly");
    drop((inner, outer));
}
