//! Upstream: Ethernet / IPv4 / GRE / PPP / MPPE / PPP / IPv4 in, the inner IPv4 packet's
//! place out.

use core::net::Ipv4Addr;
use core::ops::Range;

use xpptp_proto::crypto::mppe::Verdict as MppeVerdict;
use xpptp_proto::pptp::gre::Verdict as WindowVerdict;
use xpptp_proto::wire::Error as WireError;
use xpptp_proto::wire::gre::{GrePacket, seq_after};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};
use xpptp_proto::wire::mppe::HEADER_LEN as MPPE_HEADER_LEN;
use xpptp_proto::wire::ppp::{PppFrame, Protocol};

use super::{AckExchange, CallConfig, DropReason, ETHERNET_LEN, Upstream, VLAN_TAG_LEN};

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88A8;

/// What to do with an upstream frame after [`decap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecapVerdict {
    /// Route the inner IPv4 packet at `inner` (to another call's client or out the inside
    /// interface). Its header checksum was verified and its TTL decremented (RFC 1812
    /// section 5.3.1, checksum updated incrementally, RFC 1624).
    Forward {
        /// The inner IPv4 packet, exactly Total Length bytes.
        inner: Range<usize>,
    },
    /// The inner packet is for the concentrator's own tunnel address: to the kernel (TUN).
    /// Checked like `Forward`, TTL untouched.
    Local {
        /// The inner IPv4 packet, exactly Total Length bytes.
        inner: Range<usize>,
    },
    /// A PPP frame for the control plane (LCP Echo, CCP Reset-Request, Terminate, an
    /// unknown protocol to Protocol-Reject), decrypted if it came encrypted.
    ToControl {
        /// The frame from its protocol field (address/control removed), one- or two-octet
        /// protocol as received.
        frame: Range<usize>,
    },
    /// A GRE packet without payload: its acknowledgment was recorded, nothing to forward.
    PureAck,
    /// Stateful MPPE lost packets: this one is dropped and the control plane must send a
    /// CCP Reset-Request (RFC 3078 section 8.2). Until a flushed packet arrives, the
    /// call's further packets are dropped as [`DropReason::Mppe`].
    ResetRequest,
    /// Dropped, for this reason.
    Drop(DropReason),
}

/// Where the outer headers of an upstream frame lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OuterGre {
    /// Outer source address.
    pub src: Ipv4Addr,
    /// Outer destination address.
    pub dst: Ipv4Addr,
    /// The GRE call ID: our call ID, the key of the call table.
    pub call_id: u16,
    /// The GRE packet: header and exactly Payload Length bytes.
    pub gre: Range<usize>,
}

#[inline]
fn be16(data: &[u8], at: usize) -> Option<u16> {
    let bytes = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]))
}

/// Offset of the IPv4 header after Ethernet and up to two VLAN tags.
#[inline]
fn l3_offset(frame: &[u8]) -> Result<usize, DropReason> {
    let mut at = ETHERNET_LEN - 2;
    for _ in 0..3 {
        match be16(frame, at).ok_or(DropReason::Truncated)? {
            ETHERTYPE_IPV4 => return Ok(at + 2),
            ETHERTYPE_VLAN | ETHERTYPE_QINQ => at += VLAN_TAG_LEN,
            _ => return Err(DropReason::NotIpv4),
        }
    }
    Err(DropReason::NotIpv4)
}

/// Parses Ethernet, VLAN tags, the outer IPv4 header and the GRE header: everything the
/// caller needs to find the call (`call_id`), nothing that needs the call. The checks of
/// GRE fields PPTP fixes (version 1, protocol 0x880B, K set, no C/R/s/recursion) are done
/// here, so an unknown call ID is only reported for a well-formed PPTP packet.
pub fn parse_outer(frame: &[u8]) -> Result<OuterGre, DropReason> {
    let ip_at = l3_offset(frame)?;
    let ip_bytes = frame.get(ip_at..).ok_or(DropReason::Truncated)?;
    let ip = Ipv4Packet::new_checked(ip_bytes).map_err(|e| match e {
        WireError::Truncated => DropReason::Truncated,
        _ => DropReason::BadOuterIpv4,
    })?;
    if !ip.verify_checksum() {
        return Err(DropReason::BadOuterIpv4);
    }
    if ip.is_fragment() {
        return Err(DropReason::OuterFragment);
    }
    if ip.protocol() != IpProtocol::Gre {
        return Err(DropReason::NotGre);
    }
    // check_len: header_len <= total_len <= buffer length.
    let gre_start = ip_at + usize::from(ip.header_len());
    let ip_end = ip_at + usize::from(ip.total_len());
    let gre_bytes = frame.get(gre_start..ip_end).ok_or(DropReason::Truncated)?;
    let gre = GrePacket::new_unchecked(gre_bytes);
    gre.check_fields().map_err(|e| match e {
        WireError::Truncated => DropReason::Truncated,
        _ => DropReason::BadGre,
    })?;
    gre.check_len().map_err(|_| DropReason::Truncated)?;
    Ok(OuterGre {
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        call_id: gre.call_id(),
        gre: gre_start..gre_start + gre.total_len(),
    })
}

/// Processes one upstream frame of the call whose state is given, in place.
///
/// `frame` starts at the Ethernet header (0 to 2 VLAN tags). The caller found the call by
/// the GRE call ID ([`parse_outer`]); it is checked again here, as is the outer source
/// (the call's peer, else [`DropReason::Spoofed`]) and destination.
///
/// Order: outer headers, call ID, source, sequence number (receive window: duplicates and
/// stale numbers dropped, late arrivals inside the window accepted once), the peer's ack,
/// MPPE decryption in place, PPP (address/control and PFC accepted whatever was
/// negotiated, as Linux does), then the inner IPv4 header (checksum, lengths, source) and
/// its TTL.
///
/// Counts the outcome in `up.counters`. Allocates nothing, never panics, whatever the
/// bytes.
pub fn decap(
    call: &CallConfig,
    up: &mut Upstream,
    acks: &AckExchange,
    frame: &mut [u8],
) -> DecapVerdict {
    match parse_outer(frame) {
        Ok(outer) => decap_parsed(call, up, acks, frame, &outer),
        Err(reason) => {
            up.counters.dropped += 1;
            DecapVerdict::Drop(reason)
        }
    }
}

/// [`decap`] after [`parse_outer`], for a caller that parsed the frame to find the call.
/// `outer` must come from `parse_outer(frame)` (a mismatched one gives a drop, not a panic).
/// Keeps the call's upstream counters, as `decap` does.
pub fn decap_parsed(
    call: &CallConfig,
    up: &mut Upstream,
    acks: &AckExchange,
    frame: &mut [u8],
    outer: &OuterGre,
) -> DecapVerdict {
    let verdict = match decap_inner(call, up, acks, frame, outer) {
        Ok(verdict) => verdict,
        Err(reason) => DecapVerdict::Drop(reason),
    };
    let c = &mut up.counters;
    match &verdict {
        DecapVerdict::Forward { inner } | DecapVerdict::Local { inner } => {
            c.packets += 1;
            c.bytes += inner.len() as u64;
        }
        DecapVerdict::ToControl { frame } => {
            c.packets += 1;
            c.bytes += frame.len() as u64;
        }
        DecapVerdict::PureAck => {}
        DecapVerdict::ResetRequest | DecapVerdict::Drop(_) => c.dropped += 1,
    }
    verdict
}

#[inline]
fn decap_inner(
    call: &CallConfig,
    up: &mut Upstream,
    acks: &AckExchange,
    frame: &mut [u8],
    outer: &OuterGre,
) -> Result<DecapVerdict, DropReason> {
    if outer.call_id != call.local_call_id {
        return Err(DropReason::CallIdMismatch);
    }
    if outer.src != call.peer_addr {
        return Err(DropReason::Spoofed);
    }
    if outer.dst != call.local_addr {
        return Err(DropReason::WrongDestination);
    }
    let gre_bytes = frame.get(outer.gre.clone()).ok_or(DropReason::Truncated)?;
    let gre = GrePacket::new_checked(gre_bytes).map_err(|_| DropReason::Truncated)?;
    let payload = outer.gre.start + gre.header_len()..outer.gre.end;

    match gre.seq() {
        Some(seq) if !payload.is_empty() => match up.window.accept(seq) {
            WindowVerdict::Accept { in_order } => {
                if in_order {
                    acks.note_received(seq);
                }
            }
            WindowVerdict::Duplicate => return Err(DropReason::Duplicate),
            WindowVerdict::Stale => return Err(DropReason::Stale),
        },
        // A payload always has a sequence number (check_fields); a sequence number without
        // payload is an ack in effect.
        _ => {}
    }
    if let Some(ack) = gre.ack()
        && up.peer_ack.is_none_or(|prev| seq_after(ack, prev))
    {
        up.peer_ack = Some(ack);
        acks.note_peer_ack(ack);
    }
    if payload.is_empty() {
        return Ok(DecapVerdict::PureAck);
    }

    // PPP: address/control (optional), protocol (one or two octets).
    let ppp_bytes = frame.get(payload.clone()).ok_or(DropReason::Truncated)?;
    let ppp = PppFrame::new_checked(ppp_bytes).map_err(|e| match e {
        WireError::Truncated => DropReason::Truncated,
        _ => DropReason::BadPpp,
    })?;
    let protocol_at = payload.start + if ppp.has_address_control() { 2 } else { 0 };
    let protocol = ppp.protocol();
    let body = payload.start + ppp.header_len()..payload.end;

    let (protocol, protocol_at, body) = if protocol == Protocol::Mppe {
        let Some(decryptor) = up.mppe.as_mut() else {
            return Err(DropReason::UnexpectedMppe);
        };
        let header = be16(frame, body.start).ok_or(DropReason::Truncated)?;
        let cipher = body.start + MPPE_HEADER_LEN..body.end;
        let text = frame.get_mut(cipher.clone()).ok_or(DropReason::Truncated)?;
        match decryptor.decrypt(header, text) {
            MppeVerdict::Ok => {}
            MppeVerdict::ResetRequest => return Ok(DecapVerdict::ResetRequest),
            MppeVerdict::Discard(_) => return Err(DropReason::Mppe),
        }
        // The plaintext starts with the protocol field: two octets from Linux and Windows,
        // one when its first octet is odd (RFC 1661 section 6.5, RFC 3078 section 3).
        let first = *text.first().ok_or(DropReason::Truncated)?;
        let (protocol, len) = if first & 1 == 1 {
            (u16::from(first), 1)
        } else {
            let second = *text.get(1).ok_or(DropReason::Truncated)?;
            if second & 1 == 0 {
                return Err(DropReason::BadPpp);
            }
            (u16::from_be_bytes([first, second]), 2)
        };
        (
            Protocol::from(protocol),
            cipher.start,
            cipher.start + len..cipher.end,
        )
    } else {
        if protocol == Protocol::Ipv4 && up.mppe.is_some() {
            return Err(DropReason::Unencrypted);
        }
        (protocol, protocol_at, body)
    };

    if protocol != Protocol::Ipv4 {
        // Control protocols go to the control plane, and so do protocols outside the
        // network-layer range it must Protocol-Reject; network-layer protocols whose NCP is
        // not open are discarded silently (RFC 1661 section 2).
        return if protocol.is_network_layer() {
            Err(DropReason::NetworkProtocolNotOpen)
        } else {
            Ok(DecapVerdict::ToControl {
                frame: protocol_at..body.end,
            })
        };
    }
    inner_ipv4(call, frame, body)
}

/// Validates the inner IPv4 packet at `body` and decides Forward (TTL decremented) or Local.
#[inline]
fn inner_ipv4(
    call: &CallConfig,
    frame: &mut [u8],
    body: Range<usize>,
) -> Result<DecapVerdict, DropReason> {
    let bytes = frame.get_mut(body.clone()).ok_or(DropReason::Truncated)?;
    let mut ip = Ipv4Packet::new_checked(bytes).map_err(|_| DropReason::BadInnerIpv4)?;
    if !ip.verify_checksum() {
        return Err(DropReason::BadInnerIpv4);
    }
    if call.check_inner_source && ip.src_addr() != call.client_tunnel_addr {
        return Err(DropReason::InnerSpoofed);
    }
    let inner = body.start..body.start + usize::from(ip.total_len());
    if call.server_tunnel_addr == Some(ip.dst_addr()) {
        return Ok(DecapVerdict::Local { inner });
    }
    if ip.decrement_ttl().is_none() {
        return Err(DropReason::TtlExpired);
    }
    Ok(DecapVerdict::Forward { inner })
}
