//! The fast path against a client built on proto: upstream frames the client sends decap to
//! the exact inner packet, downstream frames encap'd here decrypt at the client to the same
//! bytes; stateless and stateful MPPE, 40 and 128 bits; MSS clamping; every drop reason the
//! GRE and IP checks have; truncation at every length.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;

use xpptp_datapath::packet::{
    CallState, DecapVerdict, DropReason, ENCAP_HEADROOM, EncapVerdict, L2Header, decap, encap,
    parse_outer, pure_ack,
};
use xpptp_proto::crypto::mppe::{MppeDecryptor, MppeEncryptor, MppeMode, Verdict};
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::{Established, MppeKeyState};
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use xpptp_proto::wire::mppe::MppeHeader;
use xpptp_proto::wire::ppp::{PppFrame, Protocol};
use xpptp_proto::wire::tcp::{TcpOption, TcpPacket};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 10);
const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 1);
const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const LOCAL_CALL_ID: u16 = 0x1234;
const PEER_CALL_ID: u16 = 0x4321;
/// Client to server (the server's receive key).
const UP_KEY: StartKey = StartKey([0x11; 16]);
/// Server to client.
const DOWN_KEY: StartKey = StartKey([0x22; 16]);
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MTU: u16 = 1396;

fn established(mppe: Option<(MppeStrength, MppeMode)>) -> Established {
    let key = |k: StartKey| {
        mppe.map(|(strength, mode)| MppeKeyState {
            strength,
            mode,
            start_key: k,
        })
    };
    Established {
        role: Role::Server,
        local_call_id: LOCAL_CALL_ID,
        peer_call_id: PEER_CALL_ID,
        peer_address: CLIENT,
        peer_recv_window: 64,
        user: Some(b"pptpuser".to_vec()),
        auth_method: None,
        client_tunnel_address: CLIENT_TUNNEL,
        server_tunnel_address: Some(SERVER_TUNNEL),
        name_servers: NameServers::default(),
        transmit: key(DOWN_KEY),
        receive: key(UP_KEY),
        gre: GreSnapshot {
            local_call_id: LOCAL_CALL_ID,
            peer_call_id: PEER_CALL_ID,
            next_seq: 100,
            peer_acked: 99,
            ack_owed: None,
            recv_highest: Some(9),
            peer_recv_window: 64,
        },
        peer_mru: 1400,
        our_mru: 1400,
        mtu: MTU,
        acfc: true,
        pfc: true,
    }
}

/// The client's end of the call: its own MPPE state, numbering and framing choices.
struct Client {
    enc: Option<MppeEncryptor>,
    dec: Option<MppeDecryptor>,
    /// Send address/control and two-octet protocols (no ACFC/PFC), as some clients do.
    full_header: bool,
}

impl Client {
    fn new(mppe: Option<(MppeStrength, MppeMode)>) -> Client {
        Client {
            enc: mppe.map(|(s, m)| MppeEncryptor::new(&UP_KEY, s, m)),
            dec: mppe.map(|(s, m)| MppeDecryptor::new(&DOWN_KEY, s, m)),
            full_header: false,
        }
    }

    /// An Ethernet frame carrying `inner` upstream with GRE sequence `seq`.
    fn frame(&mut self, seq: u32, ack: Option<u32>, inner: &[u8]) -> Vec<u8> {
        let mut ppp = Vec::new();
        if self.full_header {
            ppp.extend_from_slice(&[0xFF, 0x03]);
        }
        match self.enc.as_mut() {
            Some(enc) => {
                ppp.extend_from_slice(if self.full_header {
                    &[0x00, 0xFD]
                } else {
                    &[0xFD]
                });
                let mut text = vec![0x00, 0x21];
                text.extend_from_slice(inner);
                let header = enc.encrypt(&mut text);
                ppp.extend_from_slice(&header.to_be_bytes());
                ppp.extend_from_slice(&text);
            }
            None => {
                ppp.extend_from_slice(if self.full_header {
                    &[0x00, 0x21]
                } else {
                    &[0x21]
                });
                ppp.extend_from_slice(inner);
            }
        }
        gre_frame(CLIENT, SERVER, LOCAL_CALL_ID, Some(seq), ack, &ppp)
    }

    /// Opens a downstream frame: checks every header and returns the inner packet and the
    /// GRE numbers.
    fn open(&mut self, frame: &[u8]) -> (Vec<u8>, u32, Option<u32>) {
        assert_eq!(&frame[..6], &CLIENT_MAC);
        assert_eq!(&frame[6..12], &SERVER_MAC);
        assert_eq!(&frame[12..14], &[0x08, 0x00]);
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        let repr = Ipv4Repr::parse(&ip).unwrap();
        assert_eq!(
            (repr.src_addr, repr.dst_addr, repr.protocol),
            (SERVER, CLIENT, IpProtocol::Gre)
        );
        assert_eq!(
            usize::from(ip.total_len()),
            frame.len() - 14,
            "outer length"
        );
        let gre = GrePacket::new_checked(ip.payload()).unwrap();
        let g = GreRepr::parse(&gre).unwrap();
        assert_eq!(g.call_id, PEER_CALL_ID);
        let ppp = PppFrame::new_checked(gre.payload()).unwrap();
        let mut body = ppp.payload().to_vec();
        let inner = match self.dec.as_mut() {
            Some(dec) => {
                assert_eq!(ppp.protocol(), Protocol::Mppe);
                let h = MppeHeader::new_checked(&body[..]).unwrap().flags_count();
                assert_eq!(dec.decrypt(h, &mut body[2..]), Verdict::Ok);
                assert_eq!(&body[2..4], &[0x00, 0x21], "inner protocol uncompressed");
                body[4..].to_vec()
            }
            None => {
                assert_eq!(ppp.protocol(), Protocol::Ipv4);
                body
            }
        };
        (inner, g.seq.unwrap(), g.ack)
    }
}

fn gre_frame(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    call_id: u16,
    seq: Option<u32>,
    ack: Option<u32>,
    ppp: &[u8],
) -> Vec<u8> {
    let g = GreRepr {
        call_id,
        seq,
        ack,
        payload_len: ppp.len() as u16,
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Gre,
        payload_len: g.buffer_len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 7,
        dont_frag: false,
    };
    let mut f = vec![0u8; 14 + 20 + g.header_len()];
    f[..6].copy_from_slice(&SERVER_MAC);
    f[6..12].copy_from_slice(&CLIENT_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]))
        .unwrap();
    g.emit(&mut GrePacket::new_unchecked(&mut f[34..])).unwrap();
    f.extend_from_slice(ppp);
    f
}

/// An inner IPv4/UDP packet of `len` bytes in all.
fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, len: usize) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Udp,
        payload_len: len - 20,
        ttl,
        dscp_ecn: 0,
        ident: 0x0101,
        dont_frag: true,
    };
    let mut p = vec![0u8; len];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut p[..]))
        .unwrap();
    for (i, b) in p[20..].iter_mut().enumerate() {
        *b = i as u8;
    }
    p
}

/// What a router makes of `packet`: TTL one less, checksum updated.
fn decremented(packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.decrement_ttl().unwrap();
    assert!(ip.verify_checksum());
    p
}

fn inner_of(frame: &[u8], verdict: &DecapVerdict) -> Vec<u8> {
    match verdict {
        DecapVerdict::Forward { inner } | DecapVerdict::Local { inner } => {
            frame[inner.clone()].to_vec()
        }
        other => panic!("expected a packet, got {other:?}"),
    }
}

/// `decap` for a test call that owns both of its directions, as one worker would.
fn decap_call(call: &mut CallState, frame: &mut [u8]) -> DecapVerdict {
    decap(&call.config, &mut call.upstream, &call.acks, frame)
}

/// `encap` of a forwarded packet for a test call that owns both of its directions.
fn encap_call(
    call: &mut CallState,
    l2: &L2Header,
    buf: &mut [u8],
    inner: std::ops::Range<usize>,
) -> EncapVerdict {
    encap(
        &call.config,
        &mut call.downstream,
        &call.acks,
        l2,
        buf,
        inner,
        true,
    )
}

const MODES: [Option<(MppeStrength, MppeMode)>; 5] = [
    None,
    Some((MppeStrength::Bits40, MppeMode::Stateless)),
    Some((MppeStrength::Bits128, MppeMode::Stateless)),
    Some((MppeStrength::Bits40, MppeMode::Stateful)),
    Some((MppeStrength::Bits128, MppeMode::Stateful)),
];

#[test]
fn upstream_decaps_to_the_exact_inner_packet() {
    for mode in MODES {
        for full_header in [false, true] {
            let mut call = CallState::from_established(&established(mode), SERVER);
            let mut client = Client::new(mode);
            client.full_header = full_header;
            for (i, len) in [64usize, 512, 1396, 20, 300].into_iter().enumerate() {
                let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, 64, len);
                let mut frame = client.frame(10 + i as u32, None, &inner);
                let v = decap_call(&mut call, &mut frame);
                assert!(matches!(v, DecapVerdict::Forward { .. }), "{mode:?} {v:?}");
                assert_eq!(inner_of(&frame, &v), decremented(&inner), "{mode:?} {len}");
            }
            assert_eq!(call.upstream.counters.packets, 5);
            assert_eq!(call.upstream.counters.dropped, 0);
        }
    }
}

#[test]
fn downstream_encaps_to_what_the_client_decrypts() {
    for mode in MODES {
        for (acfc, pfc) in [(true, true), (false, false), (true, false)] {
            let mut est = established(mode);
            est.acfc = acfc;
            est.pfc = pfc;
            let mut call = CallState::from_established(&est, SERVER);
            let mut client = Client::new(mode);
            let l2 = L2Header::ethernet(CLIENT_MAC, SERVER_MAC);
            for (i, len) in [64usize, 512, 1396, 20].into_iter().enumerate() {
                let inner = ip_packet(INSIDE_HOST, CLIENT_TUNNEL, 64, len);
                let mut buf = vec![0xEEu8; ENCAP_HEADROOM + len + 8];
                buf[ENCAP_HEADROOM..ENCAP_HEADROOM + len].copy_from_slice(&inner);
                // The range may include link padding after the packet.
                let range = ENCAP_HEADROOM..ENCAP_HEADROOM + len + 8;
                let v = encap_call(&mut call, &l2, &mut buf, range);
                let EncapVerdict::Send { frame } = v else {
                    panic!("{mode:?}: {v:?}")
                };
                assert_eq!(frame.end, ENCAP_HEADROOM + len);
                let (got, seq, ack) = client.open(&buf[frame]);
                assert_eq!(got, decremented(&inner), "{mode:?} {len}");
                assert_eq!(seq, 100 + i as u32, "numbering continues from the snapshot");
                assert_eq!(ack, None);
            }
        }
    }
}

#[test]
fn acks_ride_on_downstream_data_and_pure_acks() {
    let mode = Some((MppeStrength::Bits128, MppeMode::Stateless));
    let mut call = CallState::from_established(&established(mode), SERVER);
    let mut client = Client::new(mode);
    let l2 = L2Header::ethernet(CLIENT_MAC, SERVER_MAC);
    // Nothing owed yet: no pure ack.
    let mut buf = vec![0u8; 128];
    assert_eq!(
        pure_ack(
            &call.config,
            &mut call.downstream,
            &call.acks,
            &l2,
            &mut buf
        ),
        None
    );

    let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, 64, 100);
    let mut frame = client.frame(20, Some(99), &inner);
    decap_call(&mut call, &mut frame);
    let mut frame = client.frame(21, None, &inner);
    decap_call(&mut call, &mut frame);

    // The next downstream packet carries ack 21.
    let down = ip_packet(INSIDE_HOST, CLIENT_TUNNEL, 64, 100);
    let mut buf = vec![0u8; ENCAP_HEADROOM + 100];
    buf[ENCAP_HEADROOM..].copy_from_slice(&down);
    let v = encap_call(
        &mut call,
        &l2,
        &mut buf,
        ENCAP_HEADROOM..ENCAP_HEADROOM + 100,
    );
    let EncapVerdict::Send { frame } = v else {
        panic!("{v:?}")
    };
    let (_, seq, ack) = client.open(&buf[frame]);
    assert_eq!((seq, ack), (100, Some(21)));
    // The peer acked our 100 in its next packet.
    let mut frame = client.frame(22, Some(100), &inner);
    decap_call(&mut call, &mut frame);
    let mut buf = vec![0u8; 128];
    let Some(EncapVerdict::Send { frame }) = pure_ack(
        &call.config,
        &mut call.downstream,
        &call.acks,
        &l2,
        &mut buf,
    ) else {
        panic!("a pure ack is owed")
    };
    let f = &buf[frame];
    assert_eq!(f.len(), 14 + 20 + 12);
    let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
    assert!(ip.verify_checksum());
    let g = GreRepr::parse(&GrePacket::new_checked(ip.payload()).unwrap()).unwrap();
    assert_eq!(g, GreRepr::pure_ack(PEER_CALL_ID, 22));
    assert_eq!(call.downstream.sequencer.peer_acked(), 100);
    assert_eq!(
        pure_ack(
            &call.config,
            &mut call.downstream,
            &call.acks,
            &l2,
            &mut buf
        ),
        None,
        "acked once"
    );
    // And an upstream pure ack is recognised as such.
    let mut frame = gre_frame(CLIENT, SERVER, LOCAL_CALL_ID, None, Some(100), &[]);
    assert_eq!(decap_call(&mut call, &mut frame), DecapVerdict::PureAck);
}

/// A TCP SYN from the inside with MSS 1460 and the usual options.
fn tcp_syn(mss: u16) -> Vec<u8> {
    let mut tcp = vec![0u8; 32];
    tcp[0..2].copy_from_slice(&443u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&50000u16.to_be_bytes());
    tcp[12] = 8 << 4;
    tcp[13] = 0x12; // SYN ACK
    tcp[14..16].copy_from_slice(&64240u16.to_be_bytes());
    // NOP, MSS (odd offset), NOP, NOP, SACK-permitted... keep it: NOP MSS NOP WS(3 bytes)
    tcp[20..32].copy_from_slice(&[1, 2, 4, 0, 0, 1, 3, 3, 7, 4, 2, 0]);
    tcp[23..25].copy_from_slice(&mss.to_be_bytes());
    let repr = Ipv4Repr {
        src_addr: INSIDE_HOST,
        dst_addr: CLIENT_TUNNEL,
        protocol: IpProtocol::Tcp,
        payload_len: tcp.len(),
        ttl: 60,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
    };
    let mut p = vec![0u8; 20];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut p[..]))
        .unwrap();
    p.extend_from_slice(&tcp);
    let mut t = TcpPacket::new_unchecked(&mut p[20..]);
    t.fill_checksum(INSIDE_HOST, CLIENT_TUNNEL);
    p
}

#[test]
fn downstream_clamps_mss_to_the_tunnel_mtu() {
    let mode = Some((MppeStrength::Bits128, MppeMode::Stateful));
    let mut call = CallState::from_established(&established(mode), SERVER);
    let mut client = Client::new(mode);
    let l2 = L2Header::ethernet(CLIENT_MAC, SERVER_MAC);
    for (mss, want) in [(1460u16, MTU - 40), (1200, 1200)] {
        let syn = tcp_syn(mss);
        let mut buf = vec![0u8; ENCAP_HEADROOM + syn.len()];
        buf[ENCAP_HEADROOM..].copy_from_slice(&syn);
        let v = encap_call(
            &mut call,
            &l2,
            &mut buf,
            ENCAP_HEADROOM..ENCAP_HEADROOM + syn.len(),
        );
        let EncapVerdict::Send { frame } = v else {
            panic!("{v:?}")
        };
        let (inner, _, _) = client.open(&buf[frame]);
        let ip = Ipv4Packet::new_checked(&inner[..]).unwrap();
        assert!(ip.verify_checksum());
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(
            tcp.verify_checksum(INSIDE_HOST, CLIENT_TUNNEL),
            "TCP checksum"
        );
        let got: Vec<_> = tcp.option_iter().map(|o| o.unwrap()).collect();
        assert!(got.contains(&TcpOption::MaxSegmentSize(want)), "{got:?}");
    }
}

fn stateless() -> Option<(MppeStrength, MppeMode)> {
    Some((MppeStrength::Bits128, MppeMode::Stateless))
}

#[test]
fn spoofed_source_and_wrong_call_are_dropped() {
    let mut call = CallState::from_established(&established(stateless()), SERVER);
    let mut client = Client::new(stateless());
    let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, 64, 100);

    let mut frame = client.frame(10, None, &inner);
    frame[14 + 12..14 + 16].copy_from_slice(&[203, 0, 113, 8]);
    fix_outer_checksum(&mut frame);
    assert_eq!(
        decap_call(&mut call, &mut frame),
        DecapVerdict::Drop(DropReason::Spoofed)
    );

    let mut frame = client.frame(11, None, &inner);
    frame[34 + 6..34 + 8].copy_from_slice(&0x9999u16.to_be_bytes());
    assert_eq!(parse_outer(&frame).unwrap().call_id, 0x9999);
    assert_eq!(
        decap_call(&mut call, &mut frame),
        DecapVerdict::Drop(DropReason::CallIdMismatch)
    );

    // Outer checksum broken.
    let mut frame = client.frame(12, None, &inner);
    frame[14 + 10] ^= 1;
    assert_eq!(
        decap_call(&mut call, &mut frame),
        DecapVerdict::Drop(DropReason::BadOuterIpv4)
    );

    // Inner source not the client's tunnel address.
    let other = ip_packet(Ipv4Addr::new(10, 8, 0, 99), INSIDE_HOST, 64, 100);
    let mut frame = client.frame(13, None, &other);
    assert_eq!(
        decap_call(&mut call, &mut frame),
        DecapVerdict::Drop(DropReason::InnerSpoofed)
    );
    // None of these moved the MPPE state out of reach: the next packet decrypts. (The
    // spoofed and mismatched ones never reached MPPE; the last one did, count 3.)
    let mut frame = client.frame(14, None, &inner);
    assert!(matches!(
        decap_call(&mut call, &mut frame),
        DecapVerdict::Forward { .. }
    ));
}

fn fix_outer_checksum(frame: &mut [u8]) {
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.fill_checksum();
}

#[test]
fn sequence_window_duplicates_stale_and_reordering() {
    // Clear call: the GRE window alone decides.
    let mut call = CallState::from_established(&established(None), SERVER);
    let mut client = Client::new(None);
    let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, 64, 60);
    let mut send = |call: &mut CallState, seq: u32| {
        let mut frame = client.frame(seq, None, &inner);
        decap_call(call, &mut frame)
    };
    assert!(matches!(send(&mut call, 12), DecapVerdict::Forward { .. }));
    assert!(
        matches!(send(&mut call, 11), DecapVerdict::Forward { .. }),
        "late, in window"
    );
    assert_eq!(
        send(&mut call, 11),
        DecapVerdict::Drop(DropReason::Duplicate)
    );
    assert_eq!(
        send(&mut call, 12),
        DecapVerdict::Drop(DropReason::Duplicate)
    );
    // Before the hand-over's highest (9): refused.
    assert_eq!(
        send(&mut call, 9),
        DecapVerdict::Drop(DropReason::Duplicate)
    );
    assert!(matches!(send(&mut call, 500), DecapVerdict::Forward { .. }));
    assert_eq!(send(&mut call, 400), DecapVerdict::Drop(DropReason::Stale));
    assert_eq!(call.upstream.counters.dropped, 4);

    // With stateless MPPE, the window accepts a late packet but its key is gone: MPPE drops
    // it (as Linux does), and the one after it still decrypts.
    let mut call = CallState::from_established(&established(stateless()), SERVER);
    let mut client = Client::new(stateless());
    let a = client.frame(10, None, &inner);
    let mut b = client.frame(11, None, &inner);
    let mut c = client.frame(12, None, &inner);
    let mut a2 = a.clone();
    assert!(matches!(
        decap_call(&mut call, &mut b),
        DecapVerdict::Forward { .. }
    ));
    assert_eq!(
        decap_call(&mut call, &mut a2),
        DecapVerdict::Drop(DropReason::Mppe)
    );
    assert!(matches!(
        decap_call(&mut call, &mut c),
        DecapVerdict::Forward { .. }
    ));
    let mut c2 = client.frame(12, None, &inner);
    assert_eq!(
        decap_call(&mut call, &mut c2),
        DecapVerdict::Drop(DropReason::Duplicate)
    );
}

#[test]
fn stateful_loss_asks_for_a_reset() {
    let mode = Some((MppeStrength::Bits128, MppeMode::Stateful));
    let mut call = CallState::from_established(&established(mode), SERVER);
    let mut client = Client::new(mode);
    let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, 64, 80);
    let mut f1 = client.frame(10, None, &inner);
    let _lost = client.frame(11, None, &inner);
    let mut f3 = client.frame(12, None, &inner);
    let mut f4 = client.frame(13, None, &inner);
    assert!(matches!(
        decap_call(&mut call, &mut f1),
        DecapVerdict::Forward { .. }
    ));
    assert_eq!(decap_call(&mut call, &mut f3), DecapVerdict::ResetRequest);
    assert_eq!(
        decap_call(&mut call, &mut f4),
        DecapVerdict::Drop(DropReason::Mppe)
    );
    // The client's encryptor gets the Reset-Request and flushes: we are back in sync.
    client.enc.as_mut().unwrap().reset_request();
    let mut f5 = client.frame(14, None, &inner);
    let v = decap_call(&mut call, &mut f5);
    assert_eq!(inner_of(&f5, &v), decremented(&inner));
}

#[test]
fn ttl_expiry_and_local_delivery() {
    let mut call = CallState::from_established(&established(stateless()), SERVER);
    let mut client = Client::new(stateless());
    for ttl in [0u8, 1] {
        let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, ttl, 60);
        let mut frame = client.frame(10 + u32::from(ttl), None, &inner);
        assert_eq!(
            decap_call(&mut call, &mut frame),
            DecapVerdict::Drop(DropReason::TtlExpired)
        );
    }
    // For the concentrator itself: delivered unchanged, even with TTL 1.
    let inner = ip_packet(CLIENT_TUNNEL, SERVER_TUNNEL, 1, 60);
    let mut frame = client.frame(20, None, &inner);
    let v = decap_call(&mut call, &mut frame);
    assert!(matches!(v, DecapVerdict::Local { .. }));
    assert_eq!(inner_of(&frame, &v), inner);

    // Downstream too, unless the packet is our own.
    let l2 = L2Header::ethernet(CLIENT_MAC, SERVER_MAC);
    let down = ip_packet(INSIDE_HOST, CLIENT_TUNNEL, 1, 60);
    for (forwarded, ok) in [(true, false), (false, true)] {
        let mut buf = vec![0u8; ENCAP_HEADROOM + 60];
        buf[ENCAP_HEADROOM..].copy_from_slice(&down);
        let v = encap(
            &call.config,
            &mut call.downstream,
            &call.acks,
            &l2,
            &mut buf,
            ENCAP_HEADROOM..ENCAP_HEADROOM + 60,
            forwarded,
        );
        assert_eq!(matches!(v, EncapVerdict::Send { .. }), ok, "{v:?}");
    }
}

#[test]
fn control_frames_and_other_protocols() {
    let mut call = CallState::from_established(&established(stateless()), SERVER);
    // LCP Echo-Request in clear, with address/control: to control, from the protocol field.
    let lcp = [0xFF, 0x03, 0xC0, 0x21, 0x09, 0x01, 0x00, 0x08, 1, 2, 3, 4];
    let mut frame = gre_frame(CLIENT, SERVER, LOCAL_CALL_ID, Some(10), None, &lcp);
    let v = decap_call(&mut call, &mut frame);
    let DecapVerdict::ToControl { frame: r } = v else {
        panic!("{v:?}")
    };
    assert_eq!(&frame[r], &lcp[2..]);
    // Plain IPv4 on an MPPE call.
    let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, 64, 60);
    let mut ppp = vec![0x21];
    ppp.extend_from_slice(&inner);
    let mut frame = gre_frame(CLIENT, SERVER, LOCAL_CALL_ID, Some(11), None, &ppp);
    assert_eq!(
        decap_call(&mut call, &mut frame),
        DecapVerdict::Drop(DropReason::Unencrypted)
    );
    // Encrypted IPv6 (no IPV6CP): discarded.
    let mut enc = MppeEncryptor::new(&UP_KEY, MppeStrength::Bits128, MppeMode::Stateless);
    let mut text = vec![0x00, 0x57, 0x60, 0, 0, 0];
    let h = enc.encrypt(&mut text);
    let mut ppp = vec![0xFD];
    ppp.extend_from_slice(&h.to_be_bytes());
    ppp.extend_from_slice(&text);
    let mut frame = gre_frame(CLIENT, SERVER, LOCAL_CALL_ID, Some(12), None, &ppp);
    assert_eq!(
        decap_call(&mut call, &mut frame),
        DecapVerdict::Drop(DropReason::NetworkProtocolNotOpen)
    );
}

#[test]
fn vlan_tags_are_skipped() {
    let mut call = CallState::from_established(&established(stateless()), SERVER);
    let mut client = Client::new(stateless());
    let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, 64, 100);
    let plain = client.frame(10, None, &inner);
    let mut tagged = plain[..12].to_vec();
    tagged.extend_from_slice(&[0x88, 0xA8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0A]);
    tagged.extend_from_slice(&plain[12..]);
    let v = decap_call(&mut call, &mut tagged);
    assert_eq!(inner_of(&tagged, &v), decremented(&inner));
    // Three tags: not ours.
    let mut client = Client::new(stateless());
    let plain = client.frame(11, None, &inner);
    let mut three = plain[..12].to_vec();
    for _ in 0..3 {
        three.extend_from_slice(&[0x81, 0x00, 0x00, 0x0A]);
    }
    three.extend_from_slice(&plain[12..]);
    assert_eq!(
        decap_call(&mut call, &mut three),
        DecapVerdict::Drop(DropReason::NotIpv4)
    );
}

#[test]
fn truncated_and_corrupted_frames_never_panic() {
    for mode in MODES {
        let mut client = Client::new(mode);
        let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, 64, 120);
        let frame = client.frame(10, Some(5), &inner);
        for len in 0..frame.len() {
            let mut call = CallState::from_established(&established(mode), SERVER);
            let mut cut = frame[..len].to_vec();
            let v = decap_call(&mut call, &mut cut);
            assert!(matches!(v, DecapVerdict::Drop(_)), "len {len}: {v:?}");
        }
        for at in 0..frame.len() {
            for flip in [0x01u8, 0x80, 0xFF] {
                let mut call = CallState::from_established(&established(mode), SERVER);
                let mut bad = frame.clone();
                bad[at] ^= flip;
                let _ = decap_call(&mut call, &mut bad);
            }
        }
        // Downstream: every headroom short of enough, every inner length.
        let l2 = L2Header::ethernet(CLIENT_MAC, SERVER_MAC);
        let down = ip_packet(INSIDE_HOST, CLIENT_TUNNEL, 64, 120);
        for start in 0..ENCAP_HEADROOM {
            let mut call = CallState::from_established(&established(mode), SERVER);
            let mut buf = vec![0u8; start + down.len()];
            buf[start..].copy_from_slice(&down);
            let v = encap_call(&mut call, &l2, &mut buf, start..start + down.len());
            if let EncapVerdict::Drop(reason) = v {
                assert_eq!(reason, DropReason::NoHeadroom);
                assert_eq!(
                    call.downstream.sequencer.next_seq(),
                    100,
                    "nothing consumed"
                );
            }
        }
        for len in 0..down.len() {
            let mut call = CallState::from_established(&established(mode), SERVER);
            let mut buf = vec![0u8; ENCAP_HEADROOM + len];
            buf[ENCAP_HEADROOM..].copy_from_slice(&down[..len]);
            let v = encap_call(
                &mut call,
                &l2,
                &mut buf,
                ENCAP_HEADROOM..ENCAP_HEADROOM + len,
            );
            assert!(matches!(v, EncapVerdict::Drop(_)), "len {len}");
        }
        // Ranges outside the buffer.
        let mut call = CallState::from_established(&established(mode), SERVER);
        let mut buf = vec![0u8; 10];
        #[allow(clippy::reversed_empty_ranges)]
        for range in [5..2, 0..11, 20..30] {
            let v = encap_call(&mut call, &l2, &mut buf, range);
            assert!(matches!(v, EncapVerdict::Drop(_)));
        }
    }
}

#[test]
fn downstream_beyond_the_mtu_is_dropped() {
    let mut call = CallState::from_established(&established(stateless()), SERVER);
    let l2 = L2Header::ethernet(CLIENT_MAC, SERVER_MAC);
    let down = ip_packet(INSIDE_HOST, CLIENT_TUNNEL, 64, usize::from(MTU) + 1);
    let mut buf = vec![0u8; ENCAP_HEADROOM + down.len()];
    buf[ENCAP_HEADROOM..].copy_from_slice(&down);
    let end = buf.len();
    let v = encap_call(&mut call, &l2, &mut buf, ENCAP_HEADROOM..end);
    assert_eq!(v, EncapVerdict::Drop(DropReason::ExceedsMtu));
}
