//! IPv4 header (RFC 791 section 3.1), as far as a PPTP concentrator needs it.
//!
//! Two users with different needs:
//!
//! * The fast path reads and patches inner packets in place through [`Ipv4Packet`]: it looks at
//!   addresses, protocol and fragment offset, decrements the TTL and lets TCP clamp its MSS, all
//!   with incremental checksum updates ([`checksum`], RFC 1624) instead of recomputation.
//! * The encapsulation side writes outer headers for GRE. [`Ipv4Repr::emit`] builds a plain
//!   20-byte header; [`Ipv4Template`] precomputes everything that does not change per packet so
//!   that each packet costs a 20-byte copy, two stores and a short checksum fold.
//!
//! Options (IHL > 5) are accepted and skipped: the view exposes them as bytes, the `Repr`
//! ignores them and emits none.

use core::net::Ipv4Addr;

use super::{Error, Result};

enum_with_unknown! {
    /// IP protocol numbers (the IANA "Assigned Internet Protocol Numbers" registry), shared by
    /// the IPv4 Protocol field and the pseudo-headers of TCP and UDP.
    pub enum IpProtocol(u8) {
        /// RFC 792.
        Icmp = 1,
        /// RFC 1112.
        Igmp = 2,
        /// IPv4 in IPv4 (RFC 2003).
        IpIp = 4,
        /// RFC 9293.
        Tcp = 6,
        /// RFC 768.
        Udp = 17,
        /// IPv6 in IPv4 (RFC 4213).
        Ipv6 = 41,
        /// GRE (RFC 2784), and the Enhanced GRE that carries PPTP data (RFC 2637).
        Gre = 47,
        /// IPsec ESP (RFC 4303).
        Esp = 50,
        /// IPsec AH (RFC 4302).
        Ah = 51,
        /// ICMPv6 (RFC 4443).
        Icmpv6 = 58,
        /// OSPF (RFC 2328).
        Ospf = 89,
        /// SCTP (RFC 9260).
        Sctp = 132,
    }
}

/// Length of a header without options; also the only length [`Ipv4Repr`] emits.
pub const HEADER_LEN: usize = 20;

/// Largest header: IHL is four bits of 32-bit words.
pub const MAX_HEADER_LEN: usize = 60;

/// Fragment offsets are carried in units of 8 bytes (RFC 791 section 3.1).
const FRAG_UNIT: u16 = 8;

mod field {
    pub type Field = core::ops::Range<usize>;

    /// Version (high nibble) and IHL in 32-bit words (low nibble).
    pub const VER_IHL: usize = 0;
    /// DSCP (high six bits, RFC 2474) and ECN (low two bits, RFC 3168).
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    /// Reserved, DF and MF flags (high three bits), fragment offset (low 13 bits).
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;
}

const FLAG_RESERVED: u16 = 0x8000;
const FLAG_DONT_FRAG: u16 = 0x4000;
const FLAG_MORE_FRAGS: u16 = 0x2000;
const FRAG_OFFSET_MASK: u16 = 0x1fff;

/// The Internet checksum (RFC 1071) and its incremental update (RFC 1624), for IPv4 headers
/// and the TCP/UDP pseudo-header checksums.
///
/// Conventions, as in smoltcp: a *sum* is the folded one's complement sum, not complemented;
/// the value stored in a header is its complement (`!sum`). Data whose sum, including the
/// stored checksum, is `0xffff` verifies. Every function here is pure and allocation-free.
pub mod checksum {
    use core::net::Ipv4Addr;

    use super::IpProtocol;

    /// Folds a wide one's complement accumulator into 16 bits with end-around carries.
    ///
    /// The result is `0` only when `sum` is `0`; any other class is represented in
    /// `1..=0xffff`, the same representative a 16-bit word-at-a-time sum would produce.
    #[inline]
    pub const fn fold(sum: u64) -> u16 {
        let mut s = sum;
        while s > 0xffff {
            s = (s >> 16) + (s & 0xffff);
        }
        s as u16
    }

    /// One's complement sum of `data` as big-endian 16-bit words, folded to 16 bits.
    ///
    /// An odd trailing byte is padded with a zero byte on its right (RFC 1071 section 4.1).
    /// `data` must start at an even offset of the checksummed stream; to sum pieces, split at
    /// even offsets and [`combine`] the results.
    ///
    /// Words are taken eight bytes at a time: a one's complement sum of 64-bit words folds to
    /// the same 16-bit sum, because 2^16 - 1 divides 2^64 - 1.
    pub fn data(data: &[u8]) -> u16 {
        let mut acc: u64 = 0;
        let (words, rest) = data.as_chunks::<8>();
        for word in words {
            let (sum, carry) = acc.overflowing_add(u64::from_be_bytes(*word));
            // No overflow: after a carry, `sum` is at most 2^64 - 2.
            acc = sum + u64::from(carry);
        }
        // Fold first, then add the at most seven bytes left: no overflow is possible.
        let mut tail = u64::from(fold(acc));
        let (pairs, last) = rest.as_chunks::<2>();
        for pair in pairs {
            tail += u64::from(u16::from_be_bytes(*pair));
        }
        if let [byte] = last {
            tail += u64::from(*byte) << 8;
        }
        fold(tail)
    }

    /// Combines partial sums (from [`data`], [`pseudo_header_v4`], or single words).
    #[inline]
    pub fn combine(sums: &[u16]) -> u16 {
        // At most 2^48 words before u64 could overflow: no slice of u16 is that long.
        fold(sums.iter().map(|&s| u64::from(s)).sum())
    }

    /// Sum of the IPv4 pseudo-header of TCP and UDP (RFC 9293 section 3.1, RFC 768): source,
    /// destination, zero, protocol, and the transport length (header plus data).
    #[inline]
    pub fn pseudo_header_v4(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        protocol: IpProtocol,
        length: u16,
    ) -> u16 {
        let src = src.to_bits();
        let dst = dst.to_bits();
        let sum = u64::from(src >> 16)
            + u64::from(src & 0xffff)
            + u64::from(dst >> 16)
            + u64::from(dst & 0xffff)
            + u64::from(u8::from(protocol))
            + u64::from(length);
        fold(sum)
    }

    /// Updates a stored checksum `checksum` after a 16-bit word at an even offset of the
    /// checksummed data changed from `old` to `new`: RFC 1624 equation 3,
    /// `HC' = ~(~HC + ~m + m')`.
    ///
    /// Equation 3 (not equation 2, `~C + (-m) + m'`) is the one that cannot turn a valid
    /// checksum into `-0`; its result equals a full recomputation whenever the data is not all
    /// zero, which an IPv4 header (version 4) or a pseudo-header (protocol) never is.
    #[inline]
    pub const fn update_u16(checksum: u16, old: u16, new: u16) -> u16 {
        let sum = (!checksum) as u64 + (!old) as u64 + new as u64;
        !fold(sum)
    }

    /// [`update_u16`] for a 32-bit field at an even offset (an address, a sequence number):
    /// both of its words at once.
    #[inline]
    pub const fn update_u32(checksum: u16, old: u32, new: u32) -> u16 {
        let sum = (!checksum) as u64
            + (!(old >> 16) & 0xffff) as u64
            + (!old & 0xffff) as u64
            + (new >> 16) as u64
            + (new & 0xffff) as u64;
        !fold(sum)
    }

    /// [`update_u16`] for a 16-bit value at any byte `offset` of the checksummed data; only
    /// the parity of `offset` matters.
    ///
    /// At an odd offset the value straddles two checksum words: its high byte is the low byte
    /// of one word and its low byte the high byte of the next. Its contribution to the sum is
    /// then exactly its byte-swapped value (RFC 1071 section 2(B), byte order independence),
    /// so updating with the swapped old and new values equals updating both aligned words that
    /// contain it.
    #[inline]
    pub const fn update_u16_at(checksum: u16, offset: usize, old: u16, new: u16) -> u16 {
        if offset.is_multiple_of(2) {
            update_u16(checksum, old, new)
        } else {
            update_u16(checksum, old.swap_bytes(), new.swap_bytes())
        }
    }
}

#[inline]
fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

#[inline]
fn put_be16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// A read/write view of an IPv4 packet: header, options and payload.
///
/// The buffer may be longer than the Total Length field says: Ethernet pads frames to 60
/// bytes, so a short IP packet arrives with trailing zeros. Those bytes are not part of the
/// packet; [`payload`](Self::payload) stops at Total Length and ignores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer and runs [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the fixed header, the options and the payload that the
    /// header announces, so that no getter can panic afterwards.
    ///
    /// * `Truncated`: fewer than 20 bytes, or fewer than Total Length.
    /// * `Malformed("version")`: not 4. Checked here because IHL and Total Length mean nothing
    ///   in another version's header.
    /// * `Malformed("header length")`: IHL below 5 words.
    /// * `Malformed("total length")`: Total Length below the header length.
    ///
    /// A buffer longer than Total Length is accepted (link-layer padding).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        if self.version() != 4 {
            return Err(Error::Malformed("version"));
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::Malformed("header length"));
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed("total length"));
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field; 4 after `new_checked`.
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL times four), options included: 20 to 60.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The DSCP/ECN byte as a whole (once the Type of Service byte, RFC 2474 / RFC 3168).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Differentiated Services Code Point (RFC 2474): the high six bits.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    /// Explicit Congestion Notification (RFC 3168): the low two bits.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    /// Total Length: header plus payload, in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::LENGTH.start)
    }

    /// Identification, for reassembly.
    #[inline]
    pub fn ident(&self) -> u16 {
        be16(self.buffer.as_ref(), field::IDENT.start)
    }

    #[inline]
    fn flags_and_offset(&self) -> u16 {
        be16(self.buffer.as_ref(), field::FLG_OFF.start)
    }

    /// The reserved flag bit, which must be zero (RFC 791); kept readable so that it can be
    /// counted, never acted on.
    #[inline]
    pub fn reserved_flag(&self) -> bool {
        self.flags_and_offset() & FLAG_RESERVED != 0
    }

    /// Don't Fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.flags_and_offset() & FLAG_DONT_FRAG != 0
    }

    /// More Fragments: set on every fragment but the last.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.flags_and_offset() & FLAG_MORE_FRAGS != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units; the largest is 65528).
    ///
    /// Only a packet with offset 0 (an unfragmented packet or a first fragment) starts with
    /// the transport header; anything else must not be read as TCP or UDP. A first fragment
    /// may still hold only part of the transport header: its payload is then too short for
    /// the transport view's `new_checked`.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.flags_and_offset() & FRAG_OFFSET_MASK) * FRAG_UNIT
    }

    /// Whether this packet is a fragment of a larger datagram (MF set or a non-zero offset).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_and_offset() & (FLAG_MORE_FRAGS | FRAG_OFFSET_MASK) != 0
    }

    /// Time to Live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn protocol(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(d[12], d[13], d[14], d[15])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let d = self.buffer.as_ref();
        Ipv4Addr::new(d[16], d[17], d[18], d[19])
    }

    /// The checksum the header should carry: the complement of the sum over the header,
    /// options included, with the checksum field taken as zero.
    pub fn compute_checksum(&self) -> u16 {
        let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
        let before = checksum::data(&header[..field::CHECKSUM.start]);
        let after = checksum::data(&header[field::CHECKSUM.end..]);
        !checksum::combine(&[before, after])
    }

    /// Whether the stored header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        let header = &self.buffer.as_ref()[..usize::from(self.header_len())];
        checksum::data(header) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// Options, between the fixed header and the payload (empty when IHL is 5).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// Payload: from the end of the header to Total Length; link-layer padding excluded.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes; it is stored in 32-bit words, so `len` must be a
    /// multiple of 4 from 20 to 60 (lower bits are dropped).
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    /// Sets the DSCP/ECN byte.
    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the DSCP, keeping ECN.
    #[inline]
    pub fn set_dscp(&mut self, dscp: u8) {
        let ecn = self.ecn();
        self.set_dscp_ecn((dscp << 2) | ecn);
    }

    /// Sets ECN, keeping the DSCP.
    #[inline]
    pub fn set_ecn(&mut self, ecn: u8) {
        let dscp_bits = self.dscp_ecn() & 0xfc;
        self.set_dscp_ecn(dscp_bits | (ecn & 0x03));
    }

    /// Sets Total Length.
    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        put_be16(self.buffer.as_mut(), field::LENGTH.start, len);
    }

    /// Sets Identification.
    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        put_be16(self.buffer.as_mut(), field::IDENT.start, ident);
    }

    #[inline]
    fn set_flags_and_offset(&mut self, value: u16) {
        put_be16(self.buffer.as_mut(), field::FLG_OFF.start, value);
    }

    /// Clears the reserved flag and DF, MF and the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        self.set_flags_and_offset(0);
    }

    /// Sets or clears Don't Fragment.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let raw = self.flags_and_offset() & !FLAG_DONT_FRAG;
        self.set_flags_and_offset(if value { raw | FLAG_DONT_FRAG } else { raw });
    }

    /// Sets or clears More Fragments.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let raw = self.flags_and_offset() & !FLAG_MORE_FRAGS;
        self.set_flags_and_offset(if value { raw | FLAG_MORE_FRAGS } else { raw });
    }

    /// Sets the fragment offset in bytes; it is stored in 8-byte units, so the low three bits
    /// of `offset` are dropped.
    #[inline]
    pub fn set_frag_offset(&mut self, offset: u16) {
        let raw = self.flags_and_offset() & !FRAG_OFFSET_MASK;
        self.set_flags_and_offset(raw | (offset / FRAG_UNIT));
    }

    /// Sets Time to Live, leaving the checksum alone.
    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets Protocol, leaving the checksum alone.
    #[inline]
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.into();
    }

    /// Stores a header checksum as given.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        put_be16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the source address, leaving the checksum alone.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address, leaving the checksum alone.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        let value = self.compute_checksum();
        self.set_checksum(value);
    }

    /// Forwarding's TTL step (RFC 1812 section 5.3.1) with an incremental checksum update
    /// (RFC 1624), so the header is not summed again.
    ///
    /// Returns the new TTL, or `None` when the TTL is 0 or 1: such a packet must not be
    /// forwarded (the caller drops it, or answers ICMP Time Exceeded); it is left unchanged.
    #[must_use = "a packet whose TTL ran out must be dropped"]
    pub fn decrement_ttl(&mut self) -> Option<u8> {
        let ttl = self.ttl();
        if ttl <= 1 {
            return None;
        }
        let new_ttl = ttl - 1;
        let protocol = self.buffer.as_ref()[field::PROTOCOL];
        // TTL and Protocol share the header's fifth 16-bit word.
        let old_word = u16::from_be_bytes([ttl, protocol]);
        let new_word = u16::from_be_bytes([new_ttl, protocol]);
        let updated = checksum::update_u16(self.checksum(), old_word, new_word);
        self.set_ttl(new_ttl);
        self.set_checksum(updated);
        Some(new_ttl)
    }

    /// Options, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Payload, mutable: from the end of the header to Total Length.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        let end = usize::from(self.total_len());
        &mut self.buffer.as_mut()[start..end]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an unfragmented IPv4 header, for building packets (outer GRE headers,
/// test and bench traffic).
///
/// Options are not represented: `parse` skips them and `emit` writes a 20-byte header. Flags
/// other than DF are not represented either; `parse` refuses fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: IpProtocol,
    /// Bytes after the header (Total Length minus the header length).
    pub payload_len: usize,
    pub ttl: u8,
    pub dscp_ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Largest `payload_len` a 20-byte header can announce.
    pub const MAX_PAYLOAD_LEN: usize = u16::MAX as usize - HEADER_LEN;

    /// Reads a header, checking lengths ([`Ipv4Packet::check_len`]) and the checksum.
    ///
    /// * `Malformed("checksum")`: the header checksum does not verify.
    /// * `Unsupported("fragment")`: MF set or a non-zero offset; a `Repr` cannot describe
    ///   a fragment, and only the reassembled datagram has a meaning.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(Error::Malformed("checksum"));
        }
        if packet.is_fragment() {
            return Err(Error::Unsupported("fragment"));
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
            dscp_ecn: packet.dscp_ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Bytes `emit` writes: the 20-byte header. The payload follows it in the same buffer.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Header plus payload: the Total Length `emit` writes.
    pub const fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header, checksum filled, into the start of the packet's buffer.
    ///
    /// The checksum is summed from the field values, not read back from the buffer. The
    /// payload is not touched: the buffer needs 20 bytes, not 20 plus `payload_len`.
    ///
    /// * `BufferTooSmall`: the buffer is shorter than 20 bytes.
    /// * `Malformed("payload length")`: `payload_len` above [`Self::MAX_PAYLOAD_LEN`].
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) -> Result<()> {
        let header = packet
            .buffer
            .as_mut()
            .first_chunk_mut::<HEADER_LEN>()
            .ok_or(Error::BufferTooSmall)?;
        let total_len =
            u16::try_from(self.total_len()).map_err(|_| Error::Malformed("payload length"))?;
        let template = Ipv4Template::new(self);
        template.write(header, total_len, self.ident);
        Ok(())
    }
}

/// A precomputed outer header: everything but Total Length, Identification and the checksum
/// is fixed per tunnel, so it is written once and its checksum partly summed once.
///
/// Per packet, [`emit`](Self::emit) copies 20 bytes, stores two fields and folds three
/// numbers into the checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Template {
    /// The header with Total Length, Identification and Checksum zero.
    header: [u8; HEADER_LEN],
    /// One's complement sum of `header` (unfolded, at most ten 16-bit words).
    fixed_sum: u32,
}

impl Ipv4Template {
    /// Builds the template from a `Repr`; its `payload_len` and `ident` are ignored.
    pub fn new(repr: &Ipv4Repr) -> Self {
        let mut header = [0u8; HEADER_LEN];
        header[field::VER_IHL] = 0x45;
        header[field::DSCP_ECN] = repr.dscp_ecn;
        let flags = if repr.dont_frag { FLAG_DONT_FRAG } else { 0 };
        header[field::FLG_OFF].copy_from_slice(&flags.to_be_bytes());
        header[field::TTL] = repr.ttl;
        header[field::PROTOCOL] = repr.protocol.into();
        header[field::SRC_ADDR].copy_from_slice(&repr.src_addr.octets());
        header[field::DST_ADDR].copy_from_slice(&repr.dst_addr.octets());
        let (words, _) = header.as_chunks::<2>();
        let fixed_sum = words
            .iter()
            .map(|w| u32::from(u16::from_be_bytes(*w)))
            .sum();
        Ipv4Template { header, fixed_sum }
    }

    /// The fixed bytes (Total Length, Identification and Checksum zero).
    pub fn header(&self) -> &[u8; HEADER_LEN] {
        &self.header
    }

    /// Writes the header for a packet with `payload_len` bytes after it into the first 20
    /// bytes of `buffer`.
    ///
    /// * `BufferTooSmall`: `buffer` is shorter than 20 bytes.
    /// * `Malformed("payload length")`: `payload_len` above [`Ipv4Repr::MAX_PAYLOAD_LEN`].
    #[inline]
    pub fn emit(&self, buffer: &mut [u8], payload_len: usize, ident: u16) -> Result<()> {
        let header = buffer
            .first_chunk_mut::<HEADER_LEN>()
            .ok_or(Error::BufferTooSmall)?;
        let total_len = HEADER_LEN
            .checked_add(payload_len)
            .and_then(|len| u16::try_from(len).ok())
            .ok_or(Error::Malformed("payload length"))?;
        self.write(header, total_len, ident);
        Ok(())
    }

    #[inline]
    fn write(&self, header: &mut [u8; HEADER_LEN], total_len: u16, ident: u16) {
        *header = self.header;
        header[field::LENGTH].copy_from_slice(&total_len.to_be_bytes());
        header[field::IDENT].copy_from_slice(&ident.to_be_bytes());
        let sum = u64::from(self.fixed_sum) + u64::from(total_len) + u64::from(ident);
        header[field::CHECKSUM].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    /// ICMP echo request 192.168.77.10 -> 192.168.77.1 as the Poptop server's ppp0 saw it
    /// after MPPE decryption (Debian pptp-linux client, reference capture
    /// pptpd-session-inner-ppp0.pcap, frame 1, its 16-byte Linux cooked (SLL, link type 113)
    /// header removed).
    static ECHO_REQUEST: [u8; 84] = [
        0x45, 0x00, 0x00, 0x54, 0x1a, 0x51, 0x40, 0x00, 0x40, 0x01, 0x04, 0xfc, 0xc0, 0xa8, 0x4d,
        0x0a, 0xc0, 0xa8, 0x4d, 0x01, // header
        0x08, 0x00, 0x22, 0xb5, 0x00, 0xbc, 0x00, 0x01, 0x90, 0x2a, 0x04, 0x6b, 0x00, 0x00, 0x00,
        0x00, 0x7c, 0x25, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
        0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24,
        0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30, 0x31, 0x32, 0x33,
        0x34, 0x35, 0x36, 0x37,
    ];

    /// The reply from the same capture (frame 2): DF clear, ident 0xa9ee.
    static ECHO_REPLY_HEADER: [u8; 20] = [
        0x45, 0x00, 0x00, 0x54, 0xa9, 0xee, 0x00, 0x00, 0x40, 0x01, 0xb5, 0x5e, 0xc0, 0xa8, 0x4d,
        0x01, 0xc0, 0xa8, 0x4d, 0x0a,
    ];

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 10);
    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);

    fn echo_request_repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: CLIENT,
            dst_addr: SERVER,
            protocol: IpProtocol::Icmp,
            payload_len: 64,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0x1a51,
            dont_frag: true,
        }
    }

    /// Straightforward RFC 1071 sum, 16 bits at a time, to check the fast one against.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
            if sum > 0xffff {
                sum -= 0xffff;
            }
        }
        sum as u16
    }

    #[test]
    fn deconstruct() {
        let packet = Ipv4Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp_ecn(), 0);
        assert_eq!(packet.total_len(), 84);
        assert_eq!(packet.ident(), 0x1a51);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert!(!packet.reserved_flag());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::Icmp);
        assert_eq!(packet.checksum(), 0x04fc);
        assert_eq!(packet.src_addr(), CLIENT);
        assert_eq!(packet.dst_addr(), SERVER);
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload(), &ECHO_REQUEST[20..]);
        assert!(packet.verify_checksum());
        assert_eq!(packet.compute_checksum(), 0x04fc);

        let reply = Ipv4Packet::new_unchecked(&ECHO_REPLY_HEADER[..]);
        assert!(!reply.dont_frag());
        assert!(reply.verify_checksum());
        assert_eq!(reply.compute_checksum(), 0xb55e);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 84];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp(0);
        packet.set_ecn(0);
        packet.set_total_len(84);
        packet.set_ident(0x1a51);
        packet.clear_flags();
        packet.set_dont_frag(true);
        packet.set_more_frags(false);
        packet.set_frag_offset(0);
        packet.set_ttl(64);
        packet.set_protocol(IpProtocol::Icmp);
        packet.set_src_addr(CLIENT);
        packet.set_dst_addr(SERVER);
        packet.payload_mut().copy_from_slice(&ECHO_REQUEST[20..]);
        packet.fill_checksum();
        assert_eq!(&bytes[..], &ECHO_REQUEST[..]);
    }

    #[test]
    fn field_setters_round_trip() {
        let mut bytes = ECHO_REQUEST;
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_dscp(46); // EF
        packet.set_ecn(2);
        assert_eq!(
            (packet.dscp(), packet.ecn(), packet.dscp_ecn()),
            (46, 2, 0xba)
        );
        packet.set_more_frags(true);
        packet.set_frag_offset(1480);
        assert!(packet.dont_frag() && packet.more_frags() && packet.is_fragment());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_dont_frag(false);
        packet.set_more_frags(false);
        assert!(packet.is_fragment(), "a last fragment has only an offset");
        packet.set_frag_offset(0);
        assert!(!packet.is_fragment());
        assert_eq!(
            packet.ident(),
            0x1a51,
            "flag setters leave neighbours alone"
        );
    }

    #[test]
    fn parse() {
        let packet = Ipv4Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&packet), Ok(echo_request_repr()));
    }

    #[test]
    fn emit() {
        let repr = echo_request_repr();
        assert_eq!(repr.buffer_len(), 20);
        assert_eq!(repr.total_len(), 84);
        let mut bytes = [0u8; 84];
        bytes[20..].copy_from_slice(&ECHO_REQUEST[20..]);
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        repr.emit(&mut packet).unwrap();
        assert_eq!(&bytes[..], &ECHO_REQUEST[..]);

        let mut short = [0u8; 19];
        assert_eq!(
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut short[..])),
            Err(Error::BufferTooSmall)
        );
        let huge = Ipv4Repr {
            payload_len: Ipv4Repr::MAX_PAYLOAD_LEN + 1,
            ..repr
        };
        let mut header = [0u8; 20];
        assert_eq!(
            huge.emit(&mut Ipv4Packet::new_unchecked(&mut header[..])),
            Err(Error::Malformed("payload length"))
        );
        let largest = Ipv4Repr {
            payload_len: Ipv4Repr::MAX_PAYLOAD_LEN,
            ..repr
        };
        largest
            .emit(&mut Ipv4Packet::new_unchecked(&mut header[..]))
            .unwrap();
        assert_eq!(Ipv4Packet::new_unchecked(&header[..]).total_len(), 0xffff);
    }

    #[test]
    fn emit_reply_without_df() {
        let repr = Ipv4Repr {
            src_addr: SERVER,
            dst_addr: CLIENT,
            ident: 0xa9ee,
            dont_frag: false,
            ..echo_request_repr()
        };
        let mut header = [0u8; 20];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut header[..]))
            .unwrap();
        assert_eq!(header, ECHO_REPLY_HEADER);
    }

    #[test]
    fn template_matches_emit() {
        let template = Ipv4Template::new(&echo_request_repr());
        let mut bytes = [0u8; 84];
        bytes[20..].copy_from_slice(&ECHO_REQUEST[20..]);
        template.emit(&mut bytes, 64, 0x1a51).unwrap();
        assert_eq!(&bytes[..], &ECHO_REQUEST[..]);
        assert_eq!(template.header()[2..6], [0, 0, 0, 0]);
        assert_eq!(
            template.emit(&mut bytes[..19], 0, 0),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(
            template.emit(&mut bytes, usize::MAX, 0),
            Err(Error::Malformed("payload length"))
        );
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        // A 40-byte TCP ACK padded to Ethernet's 46-byte minimum payload.
        let mut bytes = [0u8; 46];
        let repr = Ipv4Repr {
            protocol: IpProtocol::Tcp,
            payload_len: 20,
            ..echo_request_repr()
        };
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]))
            .unwrap();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload().len(), 20);
        assert_eq!(Ipv4Repr::parse(&packet).unwrap().payload_len, 20);
    }

    #[test]
    fn options_are_skipped() {
        // IHL 6: a Router Alert option (RFC 2113) between header and payload.
        let mut bytes = [0u8; 28];
        bytes[..20].copy_from_slice(&ECHO_REQUEST[..20]);
        bytes[20..24].copy_from_slice(&[0x94, 0x04, 0x00, 0x00]);
        bytes[24..].copy_from_slice(&[1, 2, 3, 4]);
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_header_len(24);
        packet.set_total_len(28);
        packet.fill_checksum();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(packet.payload(), &[1, 2, 3, 4]);
        assert!(packet.verify_checksum());
        let repr = Ipv4Repr::parse(&packet).unwrap();
        assert_eq!(repr.payload_len, 4);
    }

    #[test]
    fn truncated_and_malformed() {
        assert_eq!(
            Ipv4Packet::new_checked(&ECHO_REQUEST[..19]).err(),
            Some(Error::Truncated)
        );
        // Total Length 84 but only 83 bytes.
        assert_eq!(
            Ipv4Packet::new_checked(&ECHO_REQUEST[..83]).err(),
            Some(Error::Truncated)
        );

        let mut v6 = ECHO_REQUEST;
        v6[0] = 0x65;
        assert_eq!(
            Ipv4Packet::new_checked(&v6[..]).err(),
            Some(Error::Malformed("version"))
        );

        let mut short_ihl = ECHO_REQUEST;
        short_ihl[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&short_ihl[..]).err(),
            Some(Error::Malformed("header length"))
        );

        let mut short_total = ECHO_REQUEST;
        short_total[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&short_total[..]).err(),
            Some(Error::Malformed("total length"))
        );

        // IHL 15 (60 bytes) inside a 40-byte packet: the total length is below the header.
        let mut long_ihl = ECHO_REQUEST;
        long_ihl[0] = 0x4f;
        long_ihl[2..4].copy_from_slice(&40u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&long_ihl[..]).err(),
            Some(Error::Malformed("total length"))
        );
        // IHL 15 in a 20-byte buffer whose total length claims 60.
        long_ihl[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(
            Ipv4Packet::new_checked(&long_ihl[..20]).err(),
            Some(Error::Truncated)
        );
    }

    #[test]
    fn parse_rejects_bad_checksum_and_fragments() {
        let mut bad = ECHO_REQUEST;
        bad[11] ^= 1;
        let packet = Ipv4Packet::new_checked(&bad[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&packet), Err(Error::Malformed("checksum")));

        let mut frag = ECHO_REQUEST;
        let mut packet = Ipv4Packet::new_unchecked(&mut frag[..]);
        packet.set_more_frags(true);
        packet.fill_checksum();
        let packet = Ipv4Packet::new_checked(&frag[..]).unwrap();
        assert_eq!(
            Ipv4Repr::parse(&packet),
            Err(Error::Unsupported("fragment"))
        );

        // parse checks lengths itself, so an unchecked view cannot make it panic.
        let short = Ipv4Packet::new_unchecked(&ECHO_REQUEST[..10]);
        assert_eq!(Ipv4Repr::parse(&short), Err(Error::Truncated));
    }

    #[test]
    fn unknown_protocol_is_kept() {
        let mut bytes = ECHO_REQUEST;
        bytes[9] = 253; // RFC 3692 experimentation
        let packet = Ipv4Packet::new_unchecked(&bytes[..]);
        assert_eq!(packet.protocol(), IpProtocol::Unknown(253));
        assert_eq!(u8::from(IpProtocol::Gre), 47);
        assert_eq!(IpProtocol::from(50), IpProtocol::Esp);
    }

    #[test]
    fn checksum_vectors() {
        // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
        let rfc1071 = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum::data(&rfc1071), 0xddf2);
        assert_eq!(checksum::data(&rfc1071[..7]), 0xddf2 - 0xf7);
        assert_eq!(checksum::data(&[]), 0);
        assert_eq!(checksum::data(&[0xff, 0xff]), 0xffff);
        // A carry out of the 64-bit accumulator must come back around.
        assert_eq!(checksum::data(&[0xff; 24]), 0xffff);
        assert_eq!(checksum::data(&[0x12]), 0x1200);
        assert_eq!(checksum::combine(&[0xffff, 0x0001]), 0x0001);
        // RFC 1624 section 4: HC 0xdd2f, m 0x5555 -> m' 0x3285 gives HC' 0x0000.
        assert_eq!(checksum::update_u16(0xdd2f, 0x5555, 0x3285), 0x0000);
        assert_eq!(checksum::update_u16(0x04fc, 0x1a51, 0x1a51), 0x04fc);
        assert_eq!(
            checksum::pseudo_header_v4(
                Ipv4Addr::new(172, 30, 0, 2),
                Ipv4Addr::new(172, 30, 0, 1),
                IpProtocol::Tcp,
                40
            ),
            checksum::combine(&[0xac1e, 0x0002, 0xac1e, 0x0001, 0x0006, 0x0028])
        );
    }

    #[test]
    fn unaligned_update_equals_aligned_words() {
        // Bytes 1..3 of "aa bb cc dd" change from bbcc to 1234: updating with swapped values
        // equals updating the two aligned words aabb -> aa12 and ccdd -> 34dd.
        let hc = !checksum::data(&[0xaa, 0xbb, 0xcc, 0xdd]);
        let swapped = checksum::update_u16_at(hc, 1, 0xbbcc, 0x1234);
        let aligned = checksum::update_u32(hc, 0xaabb_ccdd, 0xaa12_34dd);
        assert_eq!(swapped, aligned);
        assert_eq!(swapped, !checksum::data(&[0xaa, 0x12, 0x34, 0xdd]));
    }

    #[test]
    fn decrement_ttl() {
        let mut bytes = ECHO_REQUEST;
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        assert_eq!(packet.decrement_ttl(), Some(63));
        assert_eq!(packet.ttl(), 63);
        assert!(packet.verify_checksum());
        assert_eq!(packet.checksum(), packet.compute_checksum());

        packet.set_ttl(1);
        packet.fill_checksum();
        assert_eq!(packet.decrement_ttl(), None);
        assert_eq!(packet.ttl(), 1, "an expired packet is left as it was");
        packet.set_ttl(0);
        assert_eq!(packet.decrement_ttl(), None);
    }

    fn arb_header() -> impl Strategy<Value = Vec<u8>> {
        // Any version-4 header with 0..=40 bytes of options and a consistent length.
        (
            0usize..=10,
            any::<[u8; 20]>(),
            proptest::collection::vec(any::<u8>(), 40),
        )
            .prop_map(|(option_words, fixed, options)| {
                let header_len = HEADER_LEN + option_words * 4;
                let mut bytes = fixed.to_vec();
                bytes.extend_from_slice(&options[..option_words * 4]);
                let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
                packet.set_version(4);
                packet.set_header_len(header_len as u8);
                packet.set_total_len(header_len as u16);
                packet.fill_checksum();
                bytes
            })
    }

    proptest! {
        #[test]
        fn checksum_data_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            prop_assert_eq!(checksum::data(&data), reference_sum(&data));
            // Splitting at an even offset and combining gives the same sum.
            let mid = (data.len() / 2) & !1;
            let parts = [checksum::data(&data[..mid]), checksum::data(&data[mid..])];
            prop_assert_eq!(checksum::combine(&parts), reference_sum(&data));
        }

        #[test]
        fn filled_header_verifies(header in arb_header()) {
            let packet = Ipv4Packet::new_checked(&header[..]).unwrap();
            prop_assert!(packet.verify_checksum());
        }

        #[test]
        fn incremental_update_equals_recomputation(
            header in arb_header(),
            ttl in any::<u8>(),
            ident in any::<u16>(),
            dscp_ecn in any::<u8>(),
            src in any::<u32>(),
            dst in any::<u32>(),
            value in any::<u16>(),
            at in any::<proptest::sample::Index>(),
            which in 0u8..6,
        ) {
            let mut header = header;
            let mut packet = Ipv4Packet::new_unchecked(&mut header[..]);
            let hc = packet.checksum();
            let updated = match which {
                0 => {
                    let proto = u8::from(packet.protocol());
                    let old = u16::from_be_bytes([packet.ttl(), proto]);
                    packet.set_ttl(ttl);
                    checksum::update_u16(hc, old, u16::from_be_bytes([ttl, proto]))
                }
                1 => {
                    let old = packet.ident();
                    packet.set_ident(ident);
                    checksum::update_u16(hc, old, ident)
                }
                2 => {
                    // DSCP/ECN is the low byte of the first word: as a 16-bit value it
                    // contributes itself.
                    let old = u16::from(packet.dscp_ecn());
                    packet.set_dscp_ecn(dscp_ecn);
                    checksum::update_u16(hc, old, u16::from(dscp_ecn))
                }
                3 => {
                    let old = packet.src_addr().to_bits();
                    packet.set_src_addr(Ipv4Addr::from_bits(src));
                    checksum::update_u32(hc, old, src)
                }
                4 => {
                    let old = packet.dst_addr().to_bits();
                    packet.set_dst_addr(Ipv4Addr::from_bits(dst));
                    checksum::update_u32(hc, old, dst)
                }
                _ => {
                    // A 16-bit value at an odd offset, straddling two checksum words: one of
                    // 13, 15, 17 (inside the addresses) or further inside the options.
                    let header_len = usize::from(packet.header_len());
                    let offset = 13 + 2 * at.index((header_len - 16) / 2);
                    let buffer = packet.into_inner();
                    let old = u16::from_be_bytes([buffer[offset], buffer[offset + 1]]);
                    buffer[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
                    packet = Ipv4Packet::new_unchecked(buffer);
                    checksum::update_u16_at(hc, offset, old, value)
                }
            };
            prop_assert_eq!(updated, packet.compute_checksum());
            packet.set_checksum(updated);
            prop_assert!(packet.verify_checksum());
        }

        #[test]
        fn decrement_ttl_equals_recomputation(header in arb_header()) {
            let mut header = header;
            let mut packet = Ipv4Packet::new_unchecked(&mut header[..]);
            let ttl = packet.ttl();
            match packet.decrement_ttl() {
                Some(new) => {
                    prop_assert_eq!(new, ttl - 1);
                    prop_assert_eq!(packet.checksum(), packet.compute_checksum());
                }
                None => prop_assert!(ttl <= 1),
            }
        }

        #[test]
        fn emit_parse_round_trip(
            src in any::<u32>(),
            dst in any::<u32>(),
            protocol in any::<u8>(),
            payload_len in 0usize..=Ipv4Repr::MAX_PAYLOAD_LEN,
            ttl in any::<u8>(),
            dscp_ecn in any::<u8>(),
            ident in any::<u16>(),
            dont_frag in any::<bool>(),
        ) {
            let repr = Ipv4Repr {
                src_addr: Ipv4Addr::from_bits(src),
                dst_addr: Ipv4Addr::from_bits(dst),
                protocol: IpProtocol::from(protocol),
                payload_len,
                ttl,
                dscp_ecn,
                ident,
                dont_frag,
            };
            let mut bytes = vec![0u8; repr.total_len()];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..])).unwrap();
            let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(packet.compute_checksum(), packet.checksum());
            prop_assert_eq!(Ipv4Repr::parse(&packet), Ok(repr));
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            if let Ok(packet) = Ipv4Packet::new_checked(&bytes[..]) {
                let _ = (packet.options(), packet.payload(), packet.verify_checksum());
                let _ = (packet.src_addr(), packet.dst_addr(), packet.frag_offset());
                prop_assert!(packet.payload().len() <= bytes.len());
            }
            let _ = Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bytes[..]));
        }
    }
}
