//! Downstream: an inner IPv4 packet in, Ethernet / IPv4 / GRE / PPP / MPPE around it out.

use core::ops::Range;

use xpptp_proto::wire::Error as WireError;
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{HEADER_LEN as IPV4_HEADER_LEN, IpProtocol, Ipv4Packet};
use xpptp_proto::wire::mppe::HEADER_LEN as MPPE_HEADER_LEN;
use xpptp_proto::wire::ppp::{ADDRESS, CONTROL, Protocol};
use xpptp_proto::wire::tcp::TcpPacket;

use super::{AckExchange, CallConfig, Downstream, DropReason, ETHERNET_LEN, L2_HEADER_MAX};

/// A link-layer header to put in front of every frame to one next hop: Ethernet with up
/// to two VLAN tags, ending with EtherType IPv4. Built once per next hop, copied per packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Header {
    bytes: [u8; L2_HEADER_MAX],
    len: u8,
}

impl L2Header {
    /// Ethernet II to `dst` from `src`, EtherType IPv4.
    pub fn ethernet(dst: [u8; 6], src: [u8; 6]) -> L2Header {
        let mut bytes = [0u8; L2_HEADER_MAX];
        bytes[..6].copy_from_slice(&dst);
        bytes[6..12].copy_from_slice(&src);
        bytes[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        L2Header {
            bytes,
            len: ETHERNET_LEN as u8,
        }
    }

    /// Ethernet II with one 802.1Q tag (`tci`: priority, DEI and VLAN ID).
    pub fn ethernet_vlan(dst: [u8; 6], src: [u8; 6], tci: u16) -> L2Header {
        let mut bytes = [0u8; L2_HEADER_MAX];
        bytes[..6].copy_from_slice(&dst);
        bytes[6..12].copy_from_slice(&src);
        bytes[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        bytes[14..16].copy_from_slice(&tci.to_be_bytes());
        bytes[16..18].copy_from_slice(&0x0800u16.to_be_bytes());
        L2Header { bytes, len: 18 }
    }

    /// The header's bytes.
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

/// What [`encap`] and [`pure_ack`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncapVerdict {
    /// Transmit the frame at this range of the buffer.
    Send {
        /// The whole frame, from the link-layer header.
        frame: Range<usize>,
    },
    /// Dropped, for this reason.
    Drop(DropReason),
}

#[inline]
fn put(buf: &mut [u8], at: usize, bytes: &[u8]) -> Result<(), DropReason> {
    let end = at.checked_add(bytes.len()).ok_or(DropReason::NoHeadroom)?;
    buf.get_mut(at..end)
        .ok_or(DropReason::NoHeadroom)?
        .copy_from_slice(bytes);
    Ok(())
}

/// Encapsulates the inner IPv4 packet at `inner` for the call, in place, and returns where
/// the frame lies (it ends where the inner packet ends).
///
/// * `buf[..inner.start]` must have room for the headers: [`super::ENCAP_HEADROOM`] always
///   suffices (else [`DropReason::NoHeadroom`], nothing consumed).
/// * `inner` may be longer than the packet's Total Length (link padding): the rest is cut.
/// * `forwarded`: the packet was routed here (TTL decremented, expiry dropped); false for
///   packets the concentrator itself sends (from its TUN device).
///
/// Steps: inner header checks (lengths, checksum, MTU), TTL, TCP MSS clamp to the call's
/// MTU (SYNs, unfragmented or first fragments), PPP protocol 0x0021 (always two octets
/// under MPPE, as Linux and Windows send, RFC 3078 section 3), MPPE encryption in place,
/// PPP 0x00FD with PFC/ACFC as negotiated, GRE with the next sequence number and the ack
/// owed, outer IPv4 from the call's template, then `l2`.
pub fn encap(
    call: &CallConfig,
    down: &mut Downstream,
    acks: &AckExchange,
    l2: &L2Header,
    buf: &mut [u8],
    inner: Range<usize>,
    forwarded: bool,
) -> EncapVerdict {
    match encap_inner(call, down, acks, l2, buf, inner, forwarded) {
        Ok(frame) => {
            down.counters.packets += 1;
            down.counters.bytes += frame.1 as u64;
            EncapVerdict::Send { frame: frame.0 }
        }
        Err(reason) => {
            down.counters.dropped += 1;
            EncapVerdict::Drop(reason)
        }
    }
}

/// Returns the frame and the inner packet's length.
#[inline]
fn encap_inner(
    call: &CallConfig,
    down: &mut Downstream,
    acks: &AckExchange,
    l2: &L2Header,
    buf: &mut [u8],
    inner: Range<usize>,
    forwarded: bool,
) -> Result<(Range<usize>, usize), DropReason> {
    let bytes = buf.get_mut(inner.clone()).ok_or(DropReason::NoHeadroom)?;
    let mut ip = Ipv4Packet::new_checked(bytes).map_err(|e| match e {
        WireError::Truncated => DropReason::Truncated,
        _ => DropReason::BadInnerIpv4,
    })?;
    if !ip.verify_checksum() {
        return Err(DropReason::BadInnerIpv4);
    }
    let inner_len = usize::from(ip.total_len());
    if inner_len > usize::from(call.mtu) {
        return Err(DropReason::ExceedsMtu);
    }
    if forwarded && ip.decrement_ttl().is_none() {
        return Err(DropReason::TtlExpired);
    }
    if ip.protocol() == IpProtocol::Tcp && ip.frag_offset() == 0 {
        // A malformed option list leaves the segment as it is (checksum consistent): the
        // receiver judges it, as it would without the tunnel.
        let _ = TcpPacket::new_unchecked(ip.payload_mut()).clamp_mss(call.max_mss());
    }
    let end = inner.start + inner_len;

    // Layout, from the inner packet backwards.
    let mppe = down.mppe.is_some();
    let ppp_protocol = if mppe { Protocol::Mppe } else { Protocol::Ipv4 };
    let protocol_len = if call.pfc { 1 } else { 2 };
    let ac_len = if call.acfc { 0 } else { 2 };
    let mppe_len = if mppe { MPPE_HEADER_LEN + 2 } else { 0 };
    let ppp_len = ac_len + protocol_len + mppe_len;
    // Only moves what upstream learnt into our sequencer: harmless if we drop below.
    acks.apply(&mut down.sequencer);
    let ack_len = if down.sequencer.ack_owed().is_some() {
        4
    } else {
        0
    };
    let gre_len = 12 + ack_len;
    let l2_len = l2.as_bytes().len();
    let overhead = l2_len + IPV4_HEADER_LEN + gre_len + ppp_len;
    // Also what keeps the subtractions below from underflowing.
    if inner.start < overhead {
        return Err(DropReason::NoHeadroom);
    }
    let ppp_start = inner.start - ppp_len;
    let gre_start = ppp_start - gre_len;
    let gre_payload_len = u16::try_from(end - ppp_start).map_err(|_| DropReason::ExceedsMtu)?;

    // From here on nothing fails: state (sequence, MPPE count) moves only for packets sent.
    let mut at = ppp_start;
    if !call.acfc {
        put(buf, at, &[ADDRESS, CONTROL])?;
        at += 2;
    }
    let protocol = u16::from(ppp_protocol).to_be_bytes();
    put(buf, at, &protocol[2 - protocol_len..])?;
    if let Some(encryptor) = down.mppe.as_mut() {
        let plain_at = inner.start - 2;
        put(buf, plain_at, &u16::from(Protocol::Ipv4).to_be_bytes())?;
        let text = buf.get_mut(plain_at..end).ok_or(DropReason::NoHeadroom)?;
        let header = encryptor.encrypt(text);
        put(buf, plain_at - MPPE_HEADER_LEN, &header.to_be_bytes())?;
    }

    let placement = Placement {
        gre_start,
        ppp_start,
        end,
        payload_len: gre_payload_len,
    };
    let start = emit_headers(call, down, l2, buf, &placement, DropReason::ExceedsMtu)?;
    Ok((start..end, inner_len))
}

/// Where a frame's GRE header and PPP go: `gre_start..ppp_start` and `ppp_start..end`, the
/// GRE payload being `payload_len` octets (checked by the caller before any state moved).
struct Placement {
    gre_start: usize,
    ppp_start: usize,
    end: usize,
    payload_len: u16,
}

/// Numbers a frame (the next data sequence number, the ack owed) and writes in front of
/// its PPP its GRE header, the call's outer IPv4 header and `l2`; returns where the frame
/// starts. `outer_error` is the reason given when the outer header cannot be written.
fn emit_headers(
    call: &CallConfig,
    down: &mut Downstream,
    l2: &L2Header,
    buf: &mut [u8],
    at: &Placement,
    outer_error: DropReason,
) -> Result<usize, DropReason> {
    let (seq, ack) = down.sequencer.next_data();
    let repr = GreRepr {
        call_id: call.peer_call_id,
        seq: Some(seq),
        ack,
        payload_len: at.payload_len,
    };
    let gre_bytes = buf
        .get_mut(at.gre_start..at.ppp_start)
        .ok_or(DropReason::NoHeadroom)?;
    repr.emit(&mut GrePacket::new_unchecked(gre_bytes))
        .map_err(|_| DropReason::NoHeadroom)?;
    let ip_start = at
        .gre_start
        .checked_sub(IPV4_HEADER_LEN)
        .ok_or(DropReason::NoHeadroom)?;
    let ip_bytes = buf
        .get_mut(ip_start..at.gre_start)
        .ok_or(DropReason::NoHeadroom)?;
    call.outer
        .emit(ip_bytes, at.end - at.gre_start, down.ident)
        .map_err(|_| outer_error)?;
    down.ident = down.ident.wrapping_add(1);
    let start = ip_start
        .checked_sub(l2.as_bytes().len())
        .ok_or(DropReason::NoHeadroom)?;
    put(buf, start, l2.as_bytes())?;
    Ok(start)
}

/// Builds a pure GRE acknowledgment (no sequence number, no payload; RFC 2637 section
/// 4.2.5) at the start of `buf` if an ack is owed; `None` when none is.
///
/// The worker calls this when a call has received data and sent nothing for the ack
/// delay. `buf` needs `l2` + 20 + 12 bytes.
pub fn pure_ack(
    call: &CallConfig,
    down: &mut Downstream,
    acks: &AckExchange,
    l2: &L2Header,
    buf: &mut [u8],
) -> Option<EncapVerdict> {
    let l2_len = l2.as_bytes().len();
    let gre_start = l2_len + IPV4_HEADER_LEN;
    let end = gre_start + 12;
    if buf.len() < end {
        return Some(EncapVerdict::Drop(DropReason::NoHeadroom));
    }
    acks.apply(&mut down.sequencer);
    let ack = down.sequencer.take_ack()?;
    let repr = GreRepr::pure_ack(call.peer_call_id, ack);
    let result = (|| {
        let gre_bytes = buf.get_mut(gre_start..end).ok_or(DropReason::NoHeadroom)?;
        repr.emit(&mut GrePacket::new_unchecked(gre_bytes))
            .map_err(|_| DropReason::NoHeadroom)?;
        let ip_bytes = buf
            .get_mut(l2_len..gre_start)
            .ok_or(DropReason::NoHeadroom)?;
        call.outer
            .emit(ip_bytes, 12, down.ident)
            .map_err(|_| DropReason::NoHeadroom)?;
        down.ident = down.ident.wrapping_add(1);
        put(buf, 0, l2.as_bytes())?;
        Ok(0..end)
    })();
    Some(match result {
        Ok(frame) => EncapVerdict::Send { frame },
        Err(reason) => EncapVerdict::Drop(reason),
    })
}

/// Bytes [`ppp_control`] writes at most for a PPP frame of `ppp_len` bytes (from its
/// protocol field) behind `l2`: the size of the buffer to give it.
pub const fn ppp_control_len(l2: &L2Header, ppp_len: usize) -> usize {
    l2.len as usize + IPV4_HEADER_LEN + 16 + 2 + ppp_len
}

/// Builds, at the start of `buf`, a frame carrying the control plane's PPP frame `ppp`
/// (from its protocol field, as [`DecapVerdict::ToControl`](super::DecapVerdict) hands
/// frames out) on the call: GRE with the call's next sequence number and the ack owed,
/// unencrypted (PPP control protocols never go through MPPE, RFC 3078 section 3).
///
/// Address and control are always sent: RFC 1661 section 6.6 forbids compressing them on
/// LCP, and every peer accepts them on the others. The protocol field is sent as given.
/// `buf` needs [`ppp_control_len`] bytes. A frame longer than the peer's MRU (the call's
/// MTU plus the 4 bytes of MPPE overhead it was derived from, plus the protocol field) is
/// [`DropReason::ExceedsMtu`].
pub fn ppp_control(
    call: &CallConfig,
    down: &mut Downstream,
    acks: &AckExchange,
    l2: &L2Header,
    buf: &mut [u8],
    ppp: &[u8],
) -> EncapVerdict {
    let result = (|| {
        if ppp.len() < 2 {
            return Err(DropReason::BadPpp);
        }
        // MRU = MTU + 4 (MPPE overhead), plus the 2-byte protocol field.
        if ppp.len() > usize::from(call.mtu) + 6 {
            return Err(DropReason::ExceedsMtu);
        }
        acks.apply(&mut down.sequencer);
        let gre_len = if down.sequencer.ack_owed().is_some() {
            16
        } else {
            12
        };
        let l2_len = l2.as_bytes().len();
        let gre_start = l2_len + IPV4_HEADER_LEN;
        let ppp_start = gre_start + gre_len;
        let end = ppp_start + 2 + ppp.len();
        if buf.len() < end {
            return Err(DropReason::NoHeadroom);
        }
        let payload_len = u16::try_from(end - ppp_start).map_err(|_| DropReason::ExceedsMtu)?;
        put(buf, ppp_start, &[ADDRESS, CONTROL])?;
        put(buf, ppp_start + 2, ppp)?;
        let placement = Placement {
            gre_start,
            ppp_start,
            end,
            payload_len,
        };
        let start = emit_headers(call, down, l2, buf, &placement, DropReason::NoHeadroom)?;
        Ok(start..end)
    })();
    match result {
        Ok(frame) => {
            down.counters.packets += 1;
            down.counters.bytes += ppp.len() as u64;
            EncapVerdict::Send { frame }
        }
        Err(reason) => {
            down.counters.dropped += 1;
            EncapVerdict::Drop(reason)
        }
    }
}
