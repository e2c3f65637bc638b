//! Ethernet frames built with xpptp-proto's emitters, for the AF_XDP tests.
// Test helpers: panicking with context is how a test fails.
#![allow(clippy::expect_used, clippy::panic, dead_code)]

use std::net::Ipv4Addr;

use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, checksum};
use xpptp_proto::wire::ppp::{PppFrame, PppHeader, Protocol};

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETH_LEN: usize = 14;

pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut frame = Vec::with_capacity(128);
    frame.extend_from_slice(&dst);
    frame.extend_from_slice(&src);
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame
}

pub fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol,
        payload_len: payload.len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
    };
    let mut packet = vec![0; repr.buffer_len()];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut packet))
        .expect("emit IPv4");
    packet.extend_from_slice(payload);
    packet
}

/// Enhanced GRE with sequence number `seq` carrying `payload`, or a pure ack if it is empty.
pub fn gre(call_id: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let repr = if payload.is_empty() {
        GreRepr::pure_ack(call_id, seq)
    } else {
        GreRepr {
            call_id,
            seq: Some(seq),
            ack: None,
            payload_len: u16::try_from(payload.len()).expect("payload fits"),
        }
    };
    let mut packet = vec![0; repr.header_len()];
    repr.emit(&mut GrePacket::new_unchecked(&mut packet[..]))
        .expect("emit GRE");
    packet.extend_from_slice(payload);
    packet
}

/// PPP (ACFC and PFC) carrying MPPE: a 2-byte MPPE header and some "ciphertext".
pub fn mppe_ppp(body: &[u8]) -> Vec<u8> {
    let header = PppHeader {
        acfc: true,
        pfc: true,
        protocol: Protocol::Mppe,
    };
    let mut frame = vec![0; header.buffer_len()];
    header
        .emit(&mut PppFrame::new_unchecked(&mut frame[..]))
        .expect("emit PPP");
    frame.extend_from_slice(&[0x90, 0x05]);
    frame.extend_from_slice(body);
    frame
}

/// A whole Ethernet frame: upstream GRE of `call_id` with sequence `seq` and MPPE data.
#[allow(clippy::too_many_arguments)]
pub fn gre_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    call_id: u16,
    seq: u32,
) -> Vec<u8> {
    let body = seq.to_be_bytes();
    let mut frame = ethernet(dst_mac, src_mac, ETHERTYPE_IPV4);
    let gre = gre(
        call_id,
        seq,
        &mppe_ppp(&[body[0], body[1], body[2], body[3], 0xaa, 0xbb]),
    );
    frame.extend(ipv4(src, dst, IpProtocol::Gre, &gre));
    frame
}

/// ICMP echo request `ident`/`seq` as a whole Ethernet frame.
pub fn icmp_echo_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ident: u16,
    seq: u16,
) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"xpptp-ping");
    let sum = !checksum::data(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let mut frame = ethernet(dst_mac, src_mac, ETHERTYPE_IPV4);
    frame.extend(ipv4(src, dst, IpProtocol::Icmp, &icmp));
    frame
}

/// The IPv4 packet of an Ethernet frame, if it is one with a valid header.
pub fn ipv4_of(frame: &[u8]) -> Option<Ipv4Packet<&[u8]>> {
    if frame.len() < ETH_LEN || frame[12..14] != ETHERTYPE_IPV4.to_be_bytes() {
        return None;
    }
    Ipv4Packet::new_checked(&frame[ETH_LEN..]).ok()
}

/// (call ID, sequence number) of an Ethernet frame carrying Enhanced GRE.
pub fn gre_of(frame: &[u8]) -> Option<(u16, Option<u32>)> {
    let ip = ipv4_of(frame)?;
    if ip.protocol() != IpProtocol::Gre {
        return None;
    }
    let gre = GrePacket::new_checked(ip.payload()).ok()?;
    Some((gre.call_id(), gre.seq()))
}
