//! The client side of the reference capture (Debian pptp-linux + pppd 2.4.9 against Poptop,
//! tests/data/README.md) replayed into our server session, configured as Poptop was there:
//! MS-CHAPv2 only, MPPE-128 required, local 192.168.77.1, client 192.168.77.10, the
//! capture's challenge and the capture's LCP magic number.
//!
//! Every client packet is fed in capture order at its capture time. Our replies must parse
//! and be well formed, the ones Poptop sent byte for byte where they depend only on the
//! configuration (LCP, CHAP Challenge and Success, CCP and IPCP requests), authentication
//! must succeed, and the session must reach Established with the start keys the
//! independent checker derived (verify-mschapv2-mppe.txt).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use pcap_file::pcap::PcapReader;

use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::MppeStrength;
use xpptp_proto::ppp::auth::{
    AuthPolicy, Lookup, Method, Nonces, Password, SecretAnswer, SecretRequest, StoredSecret,
};
use xpptp_proto::ppp::ipcp::FixedAddress;
use xpptp_proto::ppp::link::{self, Link, LinkRandom};
use xpptp_proto::session::{Cause, Session, SessionEvent, SessionParams};
use xpptp_proto::wire::cp::CpPacket;
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};
use xpptp_proto::wire::ppp::{PppFrame, Protocol};

const SERVER: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 2);
/// Poptop's LCP Magic-Number in the capture (pppd-server.log: `magic 0x787155cf`).
const POPTOP_MAGIC: u32 = 0x787155cf;
const CHALLENGE: &str = "f7967aa886af0bca41d008b417b730ad";
const SERVER_SEND_KEY: &str = "a3464ddfe2e8f6bfe604bf6efc4d4822";
const SERVER_RECEIVE_KEY: &str = "1fb317598ac50acad0542b066d046ba1";

/// A GRE packet of the capture: time since the first packet, direction, GRE bytes.
struct Gre {
    at: Duration,
    from_client: bool,
    bytes: Vec<u8>,
}

fn capture() -> Vec<Gre> {
    let path = format!(
        "{}/tests/data/pptpd-session.pcap",
        env!("CARGO_MANIFEST_DIR")
    );
    let mut reader = PcapReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    let mut first = None;
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        let frame = &packet.data;
        if frame.len() < 14 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        if ip.protocol() != IpProtocol::Gre {
            continue;
        }
        let from_client = (ip.src_addr(), ip.dst_addr()) == (CLIENT, SERVER);
        let first = *first.get_or_insert(packet.timestamp);
        out.push(Gre {
            at: packet.timestamp - first,
            from_client,
            bytes: ip.payload().to_vec(),
        });
    }
    out
}

/// The PPP frames (protocol, information) Poptop sent.
fn poptop_frames(capture: &[Gre]) -> Vec<(Protocol, Vec<u8>)> {
    capture
        .iter()
        .filter(|g| !g.from_client)
        .filter_map(|g| {
            let gre = GrePacket::new_checked(&g.bytes[..]).unwrap();
            let payload = gre.payload();
            (!payload.is_empty()).then(|| {
                let ppp = PppFrame::new_checked(payload).unwrap();
                (ppp.protocol(), ppp.payload().to_vec())
            })
        })
        .collect()
}

// splitmix64, inverted: the seed whose `k`th Magic-Number is `target` (LCP draws its
// numbers from splitmix64 of the caller's seed; the capture's number is reproduced by
// running the generator backwards).
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
const C1: u64 = 0xbf58_476d_1ce4_e5b9;
const C2: u64 = 0x94d0_49bb_1331_11eb;

fn unxorshift(y: u64, shift: u32) -> u64 {
    let mut x = y;
    for _ in 0..(64 / shift + 1) {
        x = y ^ (x >> shift);
    }
    x
}

fn inverse(c: u64) -> u64 {
    let mut inv = c;
    for _ in 0..6 {
        inv = inv.wrapping_mul(2u64.wrapping_sub(c.wrapping_mul(inv)));
    }
    inv
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(C1);
    z = (z ^ (z >> 27)).wrapping_mul(C2);
    z ^ (z >> 31)
}

fn unmix(z: u64) -> u64 {
    let z = unxorshift(z, 31).wrapping_mul(inverse(C2));
    let z = unxorshift(z, 27).wrapping_mul(inverse(C1));
    unxorshift(z, 30)
}

fn seed_for_magic(target: u32, k: u64) -> u64 {
    let state = unmix(u64::from(target));
    assert_eq!(mix(state) as u32, target);
    state.wrapping_sub(GOLDEN.wrapping_mul(k))
}

fn server_link(magic_seed: u64) -> Link {
    let mut config = link::ServerConfig {
        auth: AuthPolicy::only(Method::MsChapV2),
        ..link::ServerConfig::default()
    };
    config.lcp.accm = Some(0); // pppd's `asyncmap 0`
    config.ipcp.local_address = Some(Ipv4Addr::new(192, 168, 77, 1));
    let mut challenge = [0u8; 16];
    challenge.copy_from_slice(&hex::decode(CHALLENGE).unwrap());
    let random = LinkRandom {
        magic_seed,
        // Poptop's Challenge had Identifier 0xfe.
        auth: Nonces::new(0xfe, challenge, [0x42; 16]),
        restart_key: [0x24; 16],
    };
    let secrets = |request: &SecretRequest<'_>| {
        Lookup::Ready(if request.user == b"pptpuser" {
            SecretAnswer::Secret(StoredSecret::Password(Password::new("Pptp-Test-Pass-1")))
        } else {
            SecretAnswer::UnknownUser
        })
    };
    Link::server(
        config,
        Box::new(secrets),
        Box::new(FixedAddress(Some(Ipv4Addr::new(192, 168, 77, 10)))),
        random,
    )
}

/// The magic number our LCP puts in its first request for a seed: finds which draw of the
/// generator that is, so the capture's number can be reproduced.
fn first_request_magic(seed: u64) -> u32 {
    let mut link = server_link(seed);
    link.open(Instant::now());
    let frame = link.poll_transmit().unwrap();
    // ff 03 c0 21, then the LCP packet; Magic-Number is option 5.
    let options = &frame[8..];
    let mut i = 0;
    while i + 1 < options.len() {
        let (kind, len) = (options[i], usize::from(options[i + 1]));
        if kind == 5 {
            return u32::from_be_bytes(options[i + 2..i + 6].try_into().unwrap());
        }
        i += len;
    }
    panic!("no magic number in {frame:02x?}");
}

fn magic_seed() -> u64 {
    for k in 1..=4 {
        let seed = seed_for_magic(POPTOP_MAGIC, k);
        if first_request_magic(seed) == POPTOP_MAGIC {
            return seed;
        }
    }
    panic!("LCP does not draw its magic number from splitmix64 of the seed any more");
}

/// Checks one of our GRE packets and returns its PPP frame (protocol, information).
fn well_formed(packet: &[u8], peer_call_id: u16) -> Option<(Protocol, Vec<u8>)> {
    let gre = GrePacket::new_checked(packet).expect("our GRE parses");
    let repr = GreRepr::parse(&gre).expect("our GRE is PPTP's");
    assert_eq!(repr.call_id, peer_call_id);
    assert_eq!(repr.buffer_len(), packet.len());
    let payload = gre.payload();
    if payload.is_empty() {
        assert!(repr.is_pure_ack());
        return None;
    }
    let ppp = PppFrame::new_checked(payload).expect("our PPP header parses");
    let protocol = ppp.protocol();
    if protocol == Protocol::Lcp {
        assert!(ppp.has_address_control(), "LCP keeps ff 03");
        assert!(!ppp.protocol_compressed());
    }
    let info = ppp.payload();
    if protocol.is_control() {
        let cp = CpPacket::new_checked(info).expect("control packet parses");
        assert_eq!(usize::from(cp.length()), info.len(), "no trailing bytes");
    }
    Some((protocol, info.to_vec()))
}

#[test]
fn pptp_linux_client_replayed_into_our_server() {
    let capture = capture();
    let poptop = poptop_frames(&capture);
    // The client's Call ID is what Poptop put in its GRE packets; Poptop's was 0.
    let peer_call_id = capture
        .iter()
        .find(|g| !g.from_client)
        .map(|g| GrePacket::new_checked(&g.bytes[..]).unwrap().call_id())
        .unwrap();
    let params = SessionParams {
        local_call_id: 0,
        peer_call_id,
        peer_recv_window: 3,
        peer_address: CLIENT,
        first_seq: 0,
        gre: Default::default(),
    };
    let base = Instant::now();
    let mut server = Session::new(base, params, server_link(magic_seed()));
    let mut sent: Vec<(Protocol, Vec<u8>)> = Vec::new();
    let mut events = Vec::new();
    let drain = |server: &mut Session, sent: &mut Vec<_>, events: &mut Vec<_>| {
        while let Some(packet) = server.poll_transmit() {
            if let Some(frame) = well_formed(&packet, peer_call_id) {
                sent.push(frame);
            }
        }
        while let Some(event) = server.poll_event() {
            events.push(event);
        }
    };
    drain(&mut server, &mut sent, &mut events);
    let mut fed = 0;
    for gre in capture.iter().filter(|g| g.from_client) {
        let now = base + gre.at;
        while let Some(t) = server.poll_timeout().filter(|t| *t <= now) {
            server.handle_timeout(t);
            drain(&mut server, &mut sent, &mut events);
        }
        let drops = server.gre_counters().drops.total();
        server.handle_gre(now, &gre.bytes);
        assert_eq!(
            server.gre_counters().drops.total(),
            drops,
            "client packet {fed} dropped by GRE"
        );
        fed += 1;
        drain(&mut server, &mut sent, &mut events);
    }
    assert!(fed > 20, "only {fed} client packets");
    assert_eq!(server.link_stats().malformed, 0);
    assert_eq!(server.link_stats().out_of_phase, 0);

    // Authenticated, then Established with the checker's keys.
    assert!(events.contains(&SessionEvent::Authenticated {
        user: b"pptpuser".to_vec()
    }));
    let established = events
        .iter()
        .find_map(|e| match e {
            SessionEvent::Established(e) => Some(e.clone()),
            _ => None,
        })
        .expect("established");
    let tx = established.transmit.expect("MPPE out");
    let rx = established.receive.expect("MPPE in");
    assert_eq!(hex::encode(tx.start_key.0), SERVER_SEND_KEY);
    assert_eq!(hex::encode(rx.start_key.0), SERVER_RECEIVE_KEY);
    assert_eq!(
        (tx.strength, tx.mode),
        (MppeStrength::Bits128, MppeMode::Stateless)
    );
    assert_eq!(
        (rx.strength, rx.mode),
        (MppeStrength::Bits128, MppeMode::Stateless)
    );
    assert_eq!(
        established.client_tunnel_address,
        Ipv4Addr::new(192, 168, 77, 10)
    );
    assert_eq!(
        established.server_tunnel_address,
        Some(Ipv4Addr::new(192, 168, 77, 1))
    );
    assert_eq!(established.user.as_deref(), Some(&b"pptpuser"[..]));
    assert!(established.acfc && established.pfc);

    // What depends only on the configuration is what Poptop sent, byte for byte.
    let first = |frames: &[(Protocol, Vec<u8>)], protocol: Protocol, code: u8| {
        frames
            .iter()
            .find(|(p, info)| *p == protocol && info[0] == code)
            .map(|(_, info)| info.clone())
            .unwrap_or_else(|| panic!("no {protocol:?} code {code}"))
    };
    for (protocol, code, what) in [
        (Protocol::Lcp, 1, "LCP Configure-Request"),
        (Protocol::Chap, 1, "CHAP Challenge"),
        (Protocol::Chap, 3, "MS-CHAPv2 Success"),
        (Protocol::Ccp, 1, "CCP Configure-Request"),
        (Protocol::Ipcp, 1, "IPCP Configure-Request"),
        (Protocol::Ipcp, 3, "IPCP Configure-Nak"),
        (Protocol::Ipcp, 4, "IPCP Configure-Reject (VJ)"),
    ] {
        assert_eq!(
            first(&sent, protocol, code),
            first(&poptop, protocol, code),
            "{what}"
        );
    }
    // IPV6CP, which Poptop ran, is Protocol-Rejected here.
    assert!(
        sent.iter()
            .any(|(p, info)| *p == Protocol::Lcp && info[0] == 8 && info[4..6] == [0x80, 0x57])
    );
    // The pings after establishment belong to the datapath.
    assert!(server.link_stats().data_frames >= 8);

    // The client hung up with LCP Terminate-Request "MPPE disabled" (twice): we Ack it and
    // the session ends when LCP has finished.
    let last = base + capture.last().unwrap().at;
    server.handle_timeout(last + Duration::from_secs(5));
    drain(&mut server, &mut sent, &mut events);
    assert!(
        sent.iter()
            .any(|(p, info)| *p == Protocol::Lcp && info[0] == 6)
    );
    assert_eq!(
        events.last(),
        Some(&SessionEvent::Terminated(Cause::PeerTerminated {
            reason: "MPPE disabled".into()
        }))
    );
}
