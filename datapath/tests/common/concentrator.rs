//! A concentrator of AF_XDP workers in namespace a of a [`VethPair`](super::netns::VethPair),
//! and PPTP clients played from namespace b over AF_PACKET, for the worker tests.
//!
//! One-armed: the clients (outer address `b.addr`) and the inside host (an address the
//! test adds to `xb`) sit behind the same link; the workers send both directions to `xb`'s
//! MAC.
// Test helpers: panicking with context is how a test fails.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used, dead_code)]

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aya::programs::XdpMode;
use xpptp_datapath::calls::{CallTable, CallTableWriter};
use xpptp_datapath::packet::{CallState, L2Header};
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

use super::frames::{ETH_LEN, ETHERTYPE_IPV4, ethernet, ipv4};
use super::netns::End;
use super::packet_socket::PacketSocket;

/// The concentrator's tunnel address (IPCP's local address) on every test call.
pub const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
/// The peer's highest GRE number at hand-over: its next is this + 1.
pub const RECV_HIGHEST: u32 = 9;
/// Our first GRE sequence number on every test call.
pub const FIRST_SEQ: u32 = 100;
/// The tunnel MTU of every test call.
pub const MTU: u16 = 1396;

/// One test call: IDs, the client's tunnel address and the MPPE mode (`None`: plain IP).
#[derive(Debug, Clone, Copy)]
pub struct CallSpec {
    pub call_id: u16,
    pub peer_call_id: u16,
    pub client_tunnel: Ipv4Addr,
    pub mppe: Option<MppeMode>,
}

impl CallSpec {
    fn up_key(&self) -> StartKey {
        StartKey([self.call_id as u8 ^ 0x5A; 16])
    }

    fn down_key(&self) -> StartKey {
        StartKey([self.call_id as u8 ^ 0xC3; 16])
    }

    /// What the control plane would hand over for this call with client `peer`.
    pub fn established(&self, peer: Ipv4Addr) -> Established {
        let key = |k: StartKey| {
            self.mppe.map(|mode| MppeKeyState {
                strength: MppeStrength::Bits128,
                mode,
                start_key: k,
            })
        };
        Established {
            role: Role::Server,
            local_call_id: self.call_id,
            peer_call_id: self.peer_call_id,
            peer_address: peer,
            peer_recv_window: 64,
            user: Some(b"pptpuser".to_vec()),
            auth_method: None,
            client_tunnel_address: self.client_tunnel,
            server_tunnel_address: Some(SERVER_TUNNEL),
            name_servers: NameServers::default(),
            transmit: key(self.down_key()),
            receive: key(self.up_key()),
            gre: GreSnapshot {
                local_call_id: self.call_id,
                peer_call_id: self.peer_call_id,
                next_seq: FIRST_SEQ,
                peer_acked: FIRST_SEQ - 1,
                ack_owed: None,
                recv_highest: Some(RECV_HIGHEST),
                peer_recv_window: 64,
            },
            peer_mru: MTU + 4,
            our_mru: MTU + 4,
            mtu: MTU,
            acfc: true,
            pfc: true,
        }
    }
}

/// The link's two ends as frames need them.
#[derive(Debug, Clone)]
pub struct Link {
    pub a: End,
    pub b: End,
}

/// A GRE packet the client received on its call, decrypted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub seq: Option<u32>,
    pub ack: Option<u32>,
    /// The PPP frame from its protocol field (decrypted if it came encrypted); empty for a
    /// pure ack.
    pub ppp: Vec<u8>,
    pub encrypted: bool,
    /// Address and control were present.
    pub address_control: bool,
    /// What the client's MPPE decryptor said (None: not encrypted). Unless `Ok`, `ppp` is
    /// the ciphertext.
    pub mppe: Option<Verdict>,
}

/// The PPTP client's end of one call (GRE numbering, MPPE both ways).
pub struct TestClient {
    pub spec: CallSpec,
    enc: Option<MppeEncryptor>,
    dec: Option<MppeDecryptor>,
    /// Our last GRE sequence number.
    pub seq: u32,
}

impl TestClient {
    pub fn new(spec: CallSpec) -> TestClient {
        let strength = MppeStrength::Bits128;
        TestClient {
            enc: spec
                .mppe
                .map(|m| MppeEncryptor::new(&spec.up_key(), strength, m)),
            dec: spec
                .mppe
                .map(|m| MppeDecryptor::new(&spec.down_key(), strength, m)),
            spec,
            seq: RECV_HIGHEST,
        }
    }

    /// PPP (ACFC, PFC) carrying `protocol` and `body`, through MPPE if the call has it.
    pub fn ppp(&mut self, protocol: u16, body: &[u8]) -> Vec<u8> {
        match self.enc.as_mut() {
            Some(enc) => {
                let mut text = protocol.to_be_bytes().to_vec();
                text.extend_from_slice(body);
                let header = enc.encrypt(&mut text);
                let mut ppp = vec![0xFD];
                ppp.extend_from_slice(&header.to_be_bytes());
                ppp.extend_from_slice(&text);
                ppp
            }
            None => {
                let mut ppp = if protocol == 0x0021 {
                    vec![0x21]
                } else {
                    protocol.to_be_bytes().to_vec()
                };
                ppp.extend_from_slice(body);
                ppp
            }
        }
    }

    /// An Ethernet frame from the client with GRE sequence `seq` carrying `ppp`, from outer
    /// address `src`.
    pub fn frame_from(&self, link: &Link, src: Ipv4Addr, seq: u32, ppp: &[u8]) -> Vec<u8> {
        let gre = super::frames::gre(self.spec.call_id, seq, ppp);
        let mut f = ethernet(link.a.mac, link.b.mac, ETHERTYPE_IPV4);
        f.extend(ipv4(src, link.a.addr, IpProtocol::Gre, &gre));
        f
    }

    /// The next upstream frame carrying IPv4 packet `inner`.
    pub fn data(&mut self, link: &Link, inner: &[u8]) -> Vec<u8> {
        let ppp = self.ppp(0x0021, inner);
        self.seq += 1;
        self.frame_from(link, link.b.addr, self.seq, &ppp)
    }

    /// The next upstream frame carrying a PPP frame of `protocol`.
    pub fn control(&mut self, link: &Link, protocol: u16, body: &[u8]) -> Vec<u8> {
        let ppp = self.ppp(protocol, body);
        self.seq += 1;
        self.frame_from(link, link.b.addr, self.seq, &ppp)
    }

    /// A downstream frame of this call, decrypted; None for any other frame.
    pub fn open(&mut self, link: &Link, frame: &[u8]) -> Option<Received> {
        let ip = Ipv4Packet::new_checked(frame.get(ETH_LEN..)?).ok()?;
        if ip.protocol() != IpProtocol::Gre
            || ip.src_addr() != link.a.addr
            || ip.dst_addr() != link.b.addr
        {
            return None;
        }
        let gre = GrePacket::new_checked(ip.payload()).ok()?;
        let g = GreRepr::parse(&gre).ok()?;
        if g.call_id != self.spec.peer_call_id {
            return None;
        }
        assert_eq!(&frame[..6], &link.b.mac, "to the next hop's MAC");
        assert_eq!(&frame[6..12], &link.a.mac, "from our MAC");
        assert_eq!(&frame[12..14], &[0x08, 0x00], "untagged IPv4");
        if gre.payload().is_empty() {
            return Some(Received {
                seq: g.seq,
                ack: g.ack,
                ppp: Vec::new(),
                encrypted: false,
                address_control: false,
                mppe: None,
            });
        }
        let frame = PppFrame::new_checked(gre.payload()).expect("PPP");
        let address_control = frame.has_address_control();
        let at = if address_control { 2 } else { 0 };
        let raw = &gre.payload()[at..];
        if frame.protocol() != Protocol::Mppe {
            return Some(Received {
                seq: g.seq,
                ack: g.ack,
                ppp: raw.to_vec(),
                encrypted: false,
                address_control,
                mppe: None,
            });
        }
        let dec = self.dec.as_mut().expect("MPPE on a call without MPPE");
        let mut body = frame.payload().to_vec();
        let h = MppeHeader::new_checked(&body[..])
            .expect("MPPE header")
            .flags_count();
        let verdict = dec.decrypt(h, &mut body[2..]);
        Some(Received {
            seq: g.seq,
            ack: g.ack,
            ppp: body[2..].to_vec(),
            encrypted: true,
            address_control,
            mppe: Some(verdict),
        })
    }

    /// The inner IPv4 packet of a downstream data frame of this call.
    pub fn open_data(&mut self, link: &Link, frame: &[u8]) -> Option<Vec<u8>> {
        let got = self.open(link, frame)?;
        if got.ppp.is_empty() {
            return None;
        }
        assert_eq!(
            got.encrypted,
            self.dec.is_some(),
            "encrypted as the call says"
        );
        if got.encrypted {
            assert_eq!(got.mppe, Some(Verdict::Ok), "client decrypts");
        }
        let inner = match got.ppp.as_slice() {
            [0x00, 0x21, rest @ ..] | [0x21, rest @ ..] => rest,
            other => panic!("not IPv4: {other:02x?}"),
        };
        Some(inner.to_vec())
    }
}

/// A UDP packet (checksum 0: none) of `payload_len` bytes of pattern.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, tag: u8, payload_len: usize) -> Vec<u8> {
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
pub fn decremented(packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.decrement_ttl().unwrap();
    assert!(ip.verify_checksum());
    p
}

/// The concentrator side: steering, call table, workers. Build it inside namespace a.
pub struct Concentrator {
    pub steering: Steering,
    pub calls: Arc<CallTable<WorkerCall>>,
    pub writer: CallTableWriter<WorkerCall>,
    pub config: WorkerConfig,
    pub workers: Vec<Worker>,
}

impl Concentrator {
    /// Loads the program, opens one copy-mode socket and worker per queue, establishes
    /// `calls` (each in the table and in the XDP maps, from client `link.b.addr`) and
    /// attaches in native mode. Call from a thread inside `link.a.netns`.
    pub fn start(link: &Link, queues: u32, calls: &[CallSpec]) -> Concentrator {
        let steering = Steering::load().unwrap_or_else(|err| {
            panic!(
                "cannot load the XDP program (needs root with CAP_BPF): {:#}",
                anyhow::Error::new(err)
            )
        });
        let (table, writer) = CallTable::<WorkerCall>::new();
        let config = WorkerConfig::new(L2Header::ethernet(link.b.mac, link.a.mac), queues as usize);
        let mut c = Concentrator {
            steering,
            calls: table,
            writer,
            config,
            workers: Vec::new(),
        };
        for spec in calls {
            c.establish(link, spec);
        }
        let sockets: Vec<XskSocket> = (0..queues)
            .map(|q| {
                let config = XskConfig {
                    frame_count: 1024,
                    tx_reserve: 64,
                    mode: BindMode::Copy,
                    ..XskConfig::default()
                };
                XskSocket::open_by_name(link.a.ifname, q, config).unwrap_or_else(|err| {
                    panic!(
                        "cannot open an AF_XDP socket on {} queue {q} (needs root and \
                         AF_XDP): {:#}",
                        link.a.ifname,
                        anyhow::Error::new(err)
                    )
                })
            })
            .collect();
        for socket in &sockets {
            c.steering
                .set_socket(socket.queue(), socket)
                .expect("insert socket into the XSKMAP");
        }
        c.steering
            .attach(link.a.ifname, XdpMode::Driver)
            .expect("attach XDP in native mode to the veth");
        c.workers = sockets
            .into_iter()
            .map(|s| {
                Worker::spawn(s, Arc::clone(&c.calls), c.config.clone()).expect("spawn worker")
            })
            .collect();
        c
    }

    /// Establishes `spec` from client `link.b.addr` in the table and the XDP maps.
    pub fn establish(&mut self, link: &Link, spec: &CallSpec) {
        let state = CallState::from_established(&spec.established(link.b.addr), link.a.addr);
        let workers = self.config.handoff.workers();
        self.writer
            .establish(
                spec.call_id,
                spec.client_tunnel,
                WorkerCall::new(state, workers),
            )
            .expect("establish in the call table");
        self.steering
            .establish_call(spec.call_id, link.b.addr, spec.mppe.is_none())
            .expect("establish call in the XDP map");
        self.steering
            .add_client(spec.client_tunnel, spec.call_id)
            .expect("add client to the XDP map");
    }

    pub fn total(&self) -> WorkerStats {
        xpptp_datapath::worker::sum(&self.workers)
    }

    /// The summed counters once `done` holds for them (they are published once per loop
    /// turn), or as they are after 3 s.
    pub fn stats_when(&self, done: impl Fn(&WorkerStats) -> bool) -> WorkerStats {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let stats = self.total();
            if done(&stats) || Instant::now() >= deadline {
                return stats;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops every worker; fails if one stopped with an error.
    pub fn stop(self) {
        for w in self.workers {
            let socket = w.stop().expect("worker stops cleanly");
            assert_eq!(socket.counters().tx_kick_errors, 0);
        }
    }
}

/// The first frame `socket` receives within 3 s for which `pick` says Some.
pub fn receive<T>(socket: &PacketSocket, mut pick: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = socket.recv_host(&mut buf, left)?;
        if let Some(t) = pick(&buf[..n]) {
            return Some(t);
        }
    }
}

/// Sends `frame` from a thread pinned to `cpu` (with PACKET_QDISC_BYPASS the TX queue is
/// cpu % queues, so the concentrator's RX queue of that index).
pub fn send_from_cpu(cpu: usize, socket: &PacketSocket, frame: &[u8]) {
    std::thread::scope(|s| {
        s.spawn(|| {
            super::netns::pin_to_cpu(cpu);
            assert!(socket.send(frame), "AF_PACKET send refused");
        });
    });
}

/// An inside-host frame to `link.a` carrying `packet`, with an 802.1Q tag if `vlan`.
pub fn inside_frame(link: &Link, packet: &[u8], vlan: Option<u16>) -> Vec<u8> {
    let mut f = match vlan {
        Some(tci) => {
            let mut f = ethernet(link.a.mac, link.b.mac, 0x8100);
            f.extend_from_slice(&tci.to_be_bytes());
            f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            f
        }
        None => ethernet(link.a.mac, link.b.mac, ETHERTYPE_IPV4),
    };
    f.extend_from_slice(packet);
    f
}
