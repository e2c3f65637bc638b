//! TCP header (RFC 9293 section 3.1), as far as a tunnel concentrator touches it.
//!
//! The fast path's one TCP job is MSS clamping: a host behind the tunnel announces an MSS
//! from its own link's MTU, which is larger than what fits through PPP-in-GRE, and path MTU
//! discovery often fails (ICMP filtered). Lowering the MSS option of every SYN that crosses
//! the concentrator ([`TcpPacket::clamp_mss`]) keeps both ends' segments small enough. The
//! change is patched into the checksum incrementally (RFC 1624), never by summing the segment.
//!
//! [`TcpRepr`] builds and reads whole segments for tests and the traffic generator.

use core::fmt;
use core::net::Ipv4Addr;

use super::ipv4::{IpProtocol, checksum};
use super::{Error, Result};

enum_with_unknown! {
    /// TCP option kinds (IANA "TCP Option Kind Numbers").
    pub enum TcpOptionKind(u8) {
        /// End of option list (RFC 9293).
        EndOfList = 0,
        /// No-operation, used for alignment (RFC 9293).
        NoOperation = 1,
        /// Maximum segment size (RFC 9293 section 3.7.1).
        MaxSegmentSize = 2,
        /// Window scale (RFC 7323 section 2).
        WindowScale = 3,
        /// SACK permitted (RFC 2018).
        SackPermitted = 4,
        /// SACK blocks (RFC 2018).
        Sack = 5,
        /// Timestamps (RFC 7323 section 3).
        Timestamp = 8,
        /// MD5 signature (RFC 2385).
        Md5Signature = 19,
        /// User timeout (RFC 5482).
        UserTimeout = 28,
        /// TCP-AO (RFC 5925).
        Authentication = 29,
        /// Multipath TCP (RFC 8684).
        Multipath = 30,
        /// TCP Fast Open cookie (RFC 7413).
        FastOpen = 34,
    }
}

/// Length of a header without options.
pub const HEADER_LEN: usize = 20;

/// Largest header: the data offset is four bits of 32-bit words.
pub const MAX_HEADER_LEN: usize = 60;

/// IPv4 and TCP headers without options: what an MSS leaves out of the MTU (RFC 9293
/// section 3.7.1, RFC 879).
pub const IPV4_TCP_HEADERS_LEN: u16 = 40;

/// The MSS to clamp SYNs to for a tunnel whose inner MTU (the PPP link's MTU, the largest
/// inner IPv4 packet) is `mtu`: `mtu - 40`, or 0 for an MTU that cannot hold the headers.
///
/// A PPTP link with the usual MTU of 1400 gives 1360.
pub const fn ipv4_mss_for_mtu(mtu: u16) -> u16 {
    mtu.saturating_sub(IPV4_TCP_HEADERS_LEN)
}

mod field {
    pub type Field = core::ops::Range<usize>;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset in 32-bit words (high nibble), reserved bits (low nibble).
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// The eight control bits of RFC 9293 section 3.1 (with ECE and CWR from RFC 3168).
///
/// The four bits before them (reserved, once NS) are not part of this set and setters keep
/// them as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers: the first segment in each direction.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// The acknowledgment number is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// The urgent pointer is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x80);

    const NAMES: [(TcpFlags, &'static str); 8] = [
        (Self::FIN, "FIN"),
        (Self::SYN, "SYN"),
        (Self::RST, "RST"),
        (Self::PSH, "PSH"),
        (Self::ACK, "ACK"),
        (Self::URG, "URG"),
        (Self::ECE, "ECE"),
        (Self::CWR, "CWR"),
    ];

    /// No flag set.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// From the flags byte of the header.
    pub const fn from_bits(bits: u8) -> TcpFlags {
        TcpFlags(bits)
    }

    /// The flags byte of the header.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of flags.
    pub const fn union(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }

    /// `self` without the flags of `other`.
    pub const fn difference(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & !other.0)
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        self.union(rhs)
    }
}

impl fmt::Debug for TcpFlags {
    /// Prints `TcpFlags(SYN | ACK)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TcpFlags(")?;
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        f.write_str(")")
    }
}

#[inline]
fn be16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

#[inline]
fn be32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

#[inline]
fn put_be16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[inline]
fn put_be32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Sum of the IPv4 pseudo-header for a segment of `len` bytes. The pseudo-header's length is
/// 16 bits; a longer buffer cannot come out of an IPv4 packet, and its length wraps.
#[inline]
fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> u16 {
    checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp, len as u16)
}

/// A read/write view of a TCP segment: header, options and data.
///
/// The buffer must end where the segment ends (an IPv4 packet's `payload()`, which stops at
/// Total Length), because the checksum covers the whole buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a buffer and runs [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the buffer holds the fixed header and the options the data offset
    /// announces, so that no getter can panic afterwards.
    ///
    /// * `Truncated`: fewer than 20 bytes, or fewer than the data offset says. This is also
    ///   what a first IPv4 fragment too short for its TCP header gives.
    /// * `Malformed("data offset")`: a data offset below 5 words.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::Malformed("data offset"));
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Gives the buffer back.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        be16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::SEQ_NUM.start)
    }

    /// Acknowledgment number; meaningful only with ACK.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        be32(self.buffer.as_ref(), field::ACK_NUM.start)
    }

    /// Header length in bytes (data offset times four), options included: 20 to 60 after
    /// `new_checked`.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// The control bits.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// FIN.
    #[inline]
    pub fn fin(&self) -> bool {
        self.flags().contains(TcpFlags::FIN)
    }

    /// SYN, with or without ACK: the segments that carry the MSS option.
    #[inline]
    pub fn syn(&self) -> bool {
        self.flags().contains(TcpFlags::SYN)
    }

    /// RST.
    #[inline]
    pub fn rst(&self) -> bool {
        self.flags().contains(TcpFlags::RST)
    }

    /// PSH.
    #[inline]
    pub fn psh(&self) -> bool {
        self.flags().contains(TcpFlags::PSH)
    }

    /// ACK.
    #[inline]
    pub fn ack(&self) -> bool {
        self.flags().contains(TcpFlags::ACK)
    }

    /// URG.
    #[inline]
    pub fn urg(&self) -> bool {
        self.flags().contains(TcpFlags::URG)
    }

    /// ECE (RFC 3168).
    #[inline]
    pub fn ece(&self) -> bool {
        self.flags().contains(TcpFlags::ECE)
    }

    /// CWR (RFC 3168).
    #[inline]
    pub fn cwr(&self) -> bool {
        self.flags().contains(TcpFlags::CWR)
    }

    /// Window, unscaled.
    #[inline]
    pub fn window_len(&self) -> u16 {
        be16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    /// Checksum as stored.
    #[inline]
    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    /// Urgent pointer; meaningful only with URG.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        be16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// Walks the options one at a time.
    #[inline]
    pub fn option_iter(&self) -> TcpOptions<'_> {
        let end = usize::from(self.header_len());
        TcpOptions::new(&self.buffer.as_ref()[HEADER_LEN..end])
    }

    /// The checksum the segment should carry, carried between IPv4 `src` and `dst`: the
    /// complement of the sum over the pseudo-header and the whole buffer, checksum field
    /// taken as zero.
    pub fn compute_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let data = self.buffer.as_ref();
        let pseudo = pseudo_header(src, dst, data.len());
        let before = checksum::data(&data[..field::CHECKSUM.start]);
        let after = checksum::data(&data[field::CHECKSUM.end..]);
        !checksum::combine(&[pseudo, before, after])
    }

    /// Whether the stored checksum is correct for a segment between IPv4 `src` and `dst`.
    ///
    /// Only an unfragmented packet can be verified: a first fragment holds part of the data.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.buffer.as_ref();
        let pseudo = pseudo_header(src, dst, data.len());
        checksum::combine(&[pseudo, checksum::data(data)]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The options, as bytes (walk them with [`TcpOptions`]).
    #[inline]
    pub fn options(&self) -> &'a [u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The data after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, port: u16) {
        put_be16(self.buffer.as_mut(), field::SRC_PORT.start, port);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, port: u16) {
        put_be16(self.buffer.as_mut(), field::DST_PORT.start, port);
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        put_be32(self.buffer.as_mut(), field::SEQ_NUM.start, value);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        put_be32(self.buffer.as_mut(), field::ACK_NUM.start, value);
    }

    /// Sets the header length in bytes; it is stored in 32-bit words, so `len` must be a
    /// multiple of 4 from 20 to 60 (lower bits are dropped). The reserved bits are kept.
    #[inline]
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (((len / 4) & 0x0f) << 4) | (*b & 0x0f);
    }

    /// Sets the control bits.
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.bits();
    }

    /// Sets the window.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        put_be16(self.buffer.as_mut(), field::WIN_SIZE.start, value);
    }

    /// Stores a checksum as given.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        put_be16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        put_be16(self.buffer.as_mut(), field::URGENT.start, value);
    }

    /// Computes and stores the checksum for a segment between IPv4 `src` and `dst`.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        let value = self.compute_checksum(src, dst);
        self.set_checksum(value);
    }

    /// The options, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// The data after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Lowers the MSS option of a SYN (or SYN-ACK) to `max_mss` if it announces more, and
    /// patches the checksum incrementally (RFC 1624): the cost is a walk over at most 40
    /// option bytes, whatever the payload.
    ///
    /// Returns `Ok(Some(old))` with the MSS it replaced, or `Ok(None)` when nothing changed:
    /// not a SYN, no MSS option, or an MSS of `max_mss` or less. A SYN without an MSS option
    /// is left alone: its peer assumes 536 (RFC 9293 section 3.7.1), below any tunnel's
    /// clamp. Every MSS option is clamped should there be several (Linux honours the last);
    /// `old` is then the first one replaced.
    ///
    /// The caller passes only unfragmented packets or first fragments (IPv4 fragment offset
    /// 0); the checksum update is right for a first fragment too, as it does not depend on
    /// the data that follows.
    ///
    /// The MSS value sits at an odd offset when one NOP precedes it; it then straddles two
    /// checksum words, and the update uses its byte-swapped value
    /// ([`checksum::update_u16_at`]), which equals updating the two aligned words.
    ///
    /// Errors: what [`check_len`](Self::check_len) reports, or the error of a malformed
    /// option. A receiver such as Linux still honours options before a malformed one, so
    /// MSS options met before it have been clamped already; in every case the checksum is
    /// consistent with the bytes, and the caller may forward the segment or drop it.
    pub fn clamp_mss(&mut self, max_mss: u16) -> Result<Option<u16>> {
        self.check_len()?;
        if !self.syn() {
            return Ok(None);
        }
        let header_len = usize::from(self.header_len());
        let mut replaced = None;
        let mut at = HEADER_LEN;
        while at < header_len {
            let options = &self.buffer.as_ref()[at..header_len];
            let (option, len) = TcpOption::parse(options)?;
            match option {
                TcpOption::EndOfList => break,
                TcpOption::MaxSegmentSize(mss) if mss > max_mss => {
                    // The value follows the kind and length bytes.
                    let value_at = at + 2;
                    put_be16(self.buffer.as_mut(), value_at, max_mss);
                    let updated = checksum::update_u16_at(self.checksum(), value_at, mss, max_mss);
                    self.set_checksum(updated);
                    replaced = replaced.or(Some(mss));
                }
                _ => {}
            }
            at += len;
        }
        Ok(replaced)
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The Timestamps option (RFC 7323 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpTimestamp {
    /// TSval: the sender's clock.
    pub tsval: u32,
    /// TSecr: the TSval echoed back; meaningful only with ACK.
    pub tsecr: u32,
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpOption<'a> {
    /// End of the list; what follows it in the header is padding.
    EndOfList,
    /// Padding for alignment.
    NoOperation,
    /// The largest segment the sender of a SYN will receive.
    MaxSegmentSize(u16),
    /// Window shift count. RFC 7323 says to use 14 for anything larger; the wire value is
    /// kept here.
    WindowScale(u8),
    /// SACK may be used (SYN only).
    SackPermitted,
    /// SACK blocks: one to four pairs of big-endian 32-bit left and right edges.
    Sack(&'a [u8]),
    /// Timestamps.
    Timestamp(TcpTimestamp),
    /// Any other kind, with its data (the bytes after kind and length).
    Other { kind: TcpOptionKind, data: &'a [u8] },
}

impl<'a> TcpOption<'a> {
    /// Reads the option at the start of `buffer` (the rest of the options area) and returns
    /// it with the number of bytes it takes.
    ///
    /// * `Malformed("tcp option length")`: no length byte, a length below 2, or a length
    ///   running past the options area.
    /// * `Malformed("mss option")`, `("window scale option")`, `("sack permitted option")`,
    ///   `("timestamp option")`, `("sack option")`: a known kind with a length it cannot
    ///   have.
    ///
    /// An empty `buffer` gives `EndOfList`.
    pub fn parse(buffer: &'a [u8]) -> Result<(TcpOption<'a>, usize)> {
        let (kind, len, data) = match buffer {
            [] | [0, ..] => return Ok((TcpOption::EndOfList, 1)),
            [1, ..] => return Ok((TcpOption::NoOperation, 1)),
            [kind, len, ..] => {
                let len = usize::from(*len);
                if len < 2 {
                    return Err(Error::Malformed("tcp option length"));
                }
                let data = buffer
                    .get(2..len)
                    .ok_or(Error::Malformed("tcp option length"))?;
                (TcpOptionKind::from(*kind), len, data)
            }
            [_] => return Err(Error::Malformed("tcp option length")),
        };
        let option = match (kind, data) {
            (TcpOptionKind::MaxSegmentSize, &[hi, lo]) => {
                TcpOption::MaxSegmentSize(u16::from_be_bytes([hi, lo]))
            }
            (TcpOptionKind::MaxSegmentSize, _) => return Err(Error::Malformed("mss option")),
            (TcpOptionKind::WindowScale, &[shift]) => TcpOption::WindowScale(shift),
            (TcpOptionKind::WindowScale, _) => {
                return Err(Error::Malformed("window scale option"));
            }
            (TcpOptionKind::SackPermitted, &[]) => TcpOption::SackPermitted,
            (TcpOptionKind::SackPermitted, _) => {
                return Err(Error::Malformed("sack permitted option"));
            }
            (TcpOptionKind::Timestamp, &[a, b, c, d, e, f, g, h]) => {
                TcpOption::Timestamp(TcpTimestamp {
                    tsval: u32::from_be_bytes([a, b, c, d]),
                    tsecr: u32::from_be_bytes([e, f, g, h]),
                })
            }
            (TcpOptionKind::Timestamp, _) => return Err(Error::Malformed("timestamp option")),
            (TcpOptionKind::Sack, blocks) => {
                if blocks.is_empty() || !blocks.len().is_multiple_of(8) {
                    return Err(Error::Malformed("sack option"));
                }
                TcpOption::Sack(blocks)
            }
            (kind, data) => TcpOption::Other { kind, data },
        };
        Ok((option, len))
    }

    /// The option's kind.
    pub fn kind(&self) -> TcpOptionKind {
        match self {
            TcpOption::EndOfList => TcpOptionKind::EndOfList,
            TcpOption::NoOperation => TcpOptionKind::NoOperation,
            TcpOption::MaxSegmentSize(_) => TcpOptionKind::MaxSegmentSize,
            TcpOption::WindowScale(_) => TcpOptionKind::WindowScale,
            TcpOption::SackPermitted => TcpOptionKind::SackPermitted,
            TcpOption::Sack(_) => TcpOptionKind::Sack,
            TcpOption::Timestamp(_) => TcpOptionKind::Timestamp,
            TcpOption::Other { kind, .. } => *kind,
        }
    }

    /// Bytes the option takes on the wire.
    pub fn buffer_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::Sack(data) | TcpOption::Other { data, .. } => 2 + data.len(),
            TcpOption::Timestamp(_) => 10,
        }
    }

    /// Writes the option at the start of `buffer` and returns its length.
    ///
    /// * `BufferTooSmall`: `buffer` is shorter than [`buffer_len`](Self::buffer_len).
    /// * `Malformed("tcp option length")`: `Sack` or `Other` data longer than 253 bytes.
    pub fn emit(&self, buffer: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        let out = buffer.get_mut(..len).ok_or(Error::BufferTooSmall)?;
        let kind = u8::from(self.kind());
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => out[0] = kind,
            TcpOption::MaxSegmentSize(mss) => {
                out[..2].copy_from_slice(&[kind, 4]);
                out[2..].copy_from_slice(&mss.to_be_bytes());
            }
            TcpOption::WindowScale(shift) => out.copy_from_slice(&[kind, 3, *shift]),
            TcpOption::SackPermitted => out.copy_from_slice(&[kind, 2]),
            TcpOption::Timestamp(ts) => {
                out[..2].copy_from_slice(&[kind, 10]);
                out[2..6].copy_from_slice(&ts.tsval.to_be_bytes());
                out[6..].copy_from_slice(&ts.tsecr.to_be_bytes());
            }
            TcpOption::Sack(data) | TcpOption::Other { data, .. } => {
                let len_byte =
                    u8::try_from(len).map_err(|_| Error::Malformed("tcp option length"))?;
                out[..2].copy_from_slice(&[kind, len_byte]);
                out[2..].copy_from_slice(data);
            }
        }
        Ok(len)
    }
}

/// Iterator over an options area, one [`TcpOption`] at a time.
///
/// Stops after `EndOfList` (the rest is padding) and after the first error, so a malformed
/// option is reported once and nothing after it is read.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    remaining: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Walks `options`: the bytes between the fixed header and the data offset.
    pub const fn new(options: &'a [u8]) -> Self {
        TcpOptions { remaining: options }
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining.is_empty() {
            return None;
        }
        match TcpOption::parse(self.remaining) {
            Ok((option, len)) => {
                self.remaining = match option {
                    TcpOption::EndOfList => &[],
                    _ => self.remaining.get(len..).unwrap_or(&[]),
                };
                Some(Ok(option))
            }
            Err(err) => {
                self.remaining = &[];
                Some(Err(err))
            }
        }
    }
}

impl core::iter::FusedIterator for TcpOptions<'_> {}

/// The meaning of a TCP segment, for building and reading whole segments in tests and
/// traffic generators.
///
/// Options known here are kept as fields; SACK blocks and other kinds are skipped by `parse`
/// and never emitted. `emit` lays options out as Linux does (MSS, SACK-permitted with
/// timestamps, window scale), each group 32-bit aligned with NOPs, so no padding is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq_number: u32,
    /// Sent as is; meaningful only with ACK in `flags`.
    pub ack_number: u32,
    pub flags: TcpFlags,
    pub window_len: u16,
    pub urgent_at: u16,
    pub max_seg_size: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub timestamp: Option<TcpTimestamp>,
    pub payload: &'a [u8],
}

impl<'a> TcpRepr<'a> {
    /// Reads a segment carried between IPv4 `src` and `dst`, checking lengths, the checksum
    /// and every option.
    ///
    /// * `Malformed("checksum")`: the checksum does not verify.
    /// * Errors of [`TcpPacket::check_len`] and [`TcpOption::parse`].
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<TcpRepr<'a>> {
        packet.check_len()?;
        if !packet.verify_checksum(src, dst) {
            return Err(Error::Malformed("checksum"));
        }
        let mut repr = TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            timestamp: None,
            payload: packet.payload(),
        };
        for option in TcpOptions::new(packet.options()) {
            match option? {
                TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
                TcpOption::WindowScale(shift) => repr.window_scale = Some(shift),
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::Timestamp(ts) => repr.timestamp = Some(ts),
                TcpOption::EndOfList
                | TcpOption::NoOperation
                | TcpOption::Sack(_)
                | TcpOption::Other { .. } => {}
            }
        }
        Ok(repr)
    }

    /// Bytes of options `emit` writes: a multiple of 4, at most 24.
    pub const fn options_len(&self) -> usize {
        let mut len = 0;
        if self.max_seg_size.is_some() {
            len += 4;
        }
        if self.timestamp.is_some() {
            // SACK-permitted rides in the timestamp option's alignment bytes.
            len += 12;
        } else if self.sack_permitted {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        len
    }

    /// Header length `emit` writes.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN + self.options_len()
    }

    /// Header plus payload: the bytes `emit` writes and the checksum covers.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes the segment, checksum filled for IPv4 `src` and `dst`, into the first
    /// [`buffer_len`](Self::buffer_len) bytes of the packet's buffer. The checksum covers
    /// exactly those bytes, so a view for reading it back must end there too.
    ///
    /// * `BufferTooSmall`: the buffer is shorter than `buffer_len()`.
    /// * `Malformed("payload length")`: the segment is longer than 65535 bytes, which no
    ///   IPv4 packet can carry.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
    ) -> Result<()> {
        let len = self.buffer_len();
        if len > usize::from(u16::MAX) {
            return Err(Error::Malformed("payload length"));
        }
        let segment = packet
            .buffer
            .as_mut()
            .get_mut(..len)
            .ok_or(Error::BufferTooSmall)?;
        let mut out = TcpPacket::new_unchecked(segment);
        out.set_src_port(self.src_port);
        out.set_dst_port(self.dst_port);
        out.set_seq_number(self.seq_number);
        out.set_ack_number(self.ack_number);
        // Whole byte: data offset and zero reserved bits.
        out.buffer[field::DATA_OFF] = ((self.header_len() / 4) as u8) << 4;
        out.set_flags(self.flags);
        out.set_window_len(self.window_len);
        out.set_urgent_at(self.urgent_at);
        self.emit_options(out.options_mut());
        out.payload_mut().copy_from_slice(self.payload);
        out.fill_checksum(src, dst);
        Ok(())
    }

    /// Writes the options into `out`, exactly `options_len()` bytes long.
    fn emit_options(&self, out: &mut [u8]) {
        const NOP: u8 = 1;
        let mut at = 0;
        let mut put = |bytes: &[u8]| {
            out[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        if let Some(mss) = self.max_seg_size {
            let [hi, lo] = mss.to_be_bytes();
            put(&[TcpOptionKind::MaxSegmentSize.into(), 4, hi, lo]);
        }
        if let Some(ts) = self.timestamp {
            if self.sack_permitted {
                put(&[TcpOptionKind::SackPermitted.into(), 2]);
            } else {
                put(&[NOP, NOP]);
            }
            put(&[TcpOptionKind::Timestamp.into(), 10]);
            put(&ts.tsval.to_be_bytes());
            put(&ts.tsecr.to_be_bytes());
        } else if self.sack_permitted {
            put(&[NOP, NOP, TcpOptionKind::SackPermitted.into(), 2]);
        }
        if let Some(shift) = self.window_scale {
            put(&[NOP, TcpOptionKind::WindowScale.into(), 3, shift]);
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 2);
    const SERVER: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);

    /// The SYN that opens the PPTP control connection, from the Debian pptp-linux client to
    /// Poptop (reference capture pptpd-session.pcap, frame 9): MSS 1460, SACK-permitted,
    /// timestamps, NOP, window scale 6.
    static SYN: [u8; 40] = [
        0x9f, 0x60, 0x06, 0xbb, 0xa7, 0xec, 0x2b, 0x09, 0x00, 0x00, 0x00, 0x00, 0xa0, 0x02, 0xfa,
        0xf0, 0xa7, 0xce, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x1b, 0xd3,
        0xb8, 0x1d, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x06,
    ];

    /// Poptop's SYN-ACK (same capture, frame 10).
    static SYN_ACK: [u8; 40] = [
        0x06, 0xbb, 0x9f, 0x60, 0xa4, 0x1a, 0x7c, 0xc3, 0xa7, 0xec, 0x2b, 0x0a, 0xa0, 0x12, 0xfe,
        0x88, 0x85, 0x3b, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a, 0x51, 0x19,
        0xac, 0xf2, 0x1b, 0xd3, 0xb8, 0x1d, 0x01, 0x03, 0x03, 0x06,
    ];

    /// The client's ACK completing the handshake (frame 11): NOP, NOP, timestamps.
    static ACK: [u8; 32] = [
        0x9f, 0x60, 0x06, 0xbb, 0xa7, 0xec, 0x2b, 0x0a, 0xa4, 0x1a, 0x7c, 0xc4, 0x80, 0x10, 0x03,
        0xec, 0xae, 0x96, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x1b, 0xd3, 0xb8, 0x2a, 0x51, 0x19,
        0xac, 0xf2,
    ];

    /// Poptop's Outgoing-Call-Reply segment (frame 18): PSH-ACK with 32 bytes of data.
    static OCRP: [u8; 64] = [
        0x06, 0xbb, 0x9f, 0x60, 0xa4, 0x1a, 0x7d, 0x60, 0xa7, 0xec, 0x2c, 0x4e, 0x80, 0x18, 0x03,
        0xf6, 0x42, 0x01, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a, 0x51, 0x19, 0xb1, 0x07, 0x1b, 0xd3,
        0xbc, 0x2e, 0x00, 0x20, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x08, 0x00, 0x00, 0x00,
        0x00, 0x73, 0xad, 0x01, 0x00, 0x00, 0x00, 0x00, 0x98, 0x96, 0x80, 0x00, 0x03, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00,
    ];

    fn syn_repr() -> TcpRepr<'static> {
        TcpRepr {
            src_port: 40800,
            dst_port: 1723,
            seq_number: 0xa7ec2b09,
            ack_number: 0,
            flags: TcpFlags::SYN,
            window_len: 64240,
            urgent_at: 0,
            max_seg_size: Some(1460),
            window_scale: Some(6),
            sack_permitted: true,
            timestamp: Some(TcpTimestamp {
                tsval: 0x1bd3b81d,
                tsecr: 0,
            }),
            payload: &[],
        }
    }

    #[test]
    fn deconstruct() {
        let packet = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(packet.src_port(), 40800);
        assert_eq!(packet.dst_port(), 1723);
        assert_eq!(packet.seq_number(), 0xa7ec2b09);
        assert_eq!(packet.ack_number(), 0);
        assert_eq!(packet.header_len(), 40);
        assert_eq!(packet.flags(), TcpFlags::SYN);
        assert!(packet.syn() && !packet.ack() && !packet.fin() && !packet.rst());
        assert!(!packet.psh() && !packet.urg() && !packet.ece() && !packet.cwr());
        assert_eq!(packet.window_len(), 64240);
        assert_eq!(packet.checksum(), 0xa7ce);
        assert_eq!(packet.urgent_at(), 0);
        assert_eq!(packet.options(), &SYN[20..]);
        assert!(packet.payload().is_empty());
        assert!(packet.verify_checksum(CLIENT, SERVER));
        assert!(!packet.verify_checksum(CLIENT, Ipv4Addr::new(172, 30, 0, 3)));
        assert_eq!(packet.compute_checksum(CLIENT, SERVER), 0xa7ce);

        let options: Vec<_> = packet.option_iter().collect();
        assert_eq!(
            options,
            [
                Ok(TcpOption::MaxSegmentSize(1460)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::Timestamp(TcpTimestamp {
                    tsval: 0x1bd3b81d,
                    tsecr: 0
                })),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(6)),
            ]
        );

        let syn_ack = TcpPacket::new_checked(&SYN_ACK[..]).unwrap();
        assert_eq!(syn_ack.flags(), TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(syn_ack.ack_number(), 0xa7ec2b0a);
        assert!(syn_ack.verify_checksum(SERVER, CLIENT));

        let ocrp = TcpPacket::new_checked(&OCRP[..]).unwrap();
        assert_eq!(ocrp.flags(), TcpFlags::PSH | TcpFlags::ACK);
        assert_eq!(ocrp.header_len(), 32);
        assert_eq!(ocrp.payload(), &OCRP[32..]);
        assert!(ocrp.verify_checksum(SERVER, CLIENT));
        assert_eq!(ocrp.compute_checksum(SERVER, CLIENT), 0x4201);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 40];
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(40800);
        packet.set_dst_port(1723);
        packet.set_seq_number(0xa7ec2b09);
        packet.set_ack_number(0);
        packet.set_header_len(40);
        packet.set_flags(TcpFlags::SYN);
        packet.set_window_len(64240);
        packet.set_urgent_at(0);
        let mut at = 0;
        for option in [
            TcpOption::MaxSegmentSize(1460),
            TcpOption::SackPermitted,
            TcpOption::Timestamp(TcpTimestamp {
                tsval: 0x1bd3b81d,
                tsecr: 0,
            }),
            TcpOption::NoOperation,
            TcpOption::WindowScale(6),
        ] {
            at += option.emit(&mut packet.options_mut()[at..]).unwrap();
        }
        assert_eq!(at, 20);
        // The reserved nibble was 0x5 from the fill pattern: the literal has it zero.
        packet.into_inner()[12] = 0xa0;
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(CLIENT, SERVER);
        assert_eq!(bytes, SYN);
    }

    #[test]
    fn parse() {
        let packet = TcpPacket::new_checked(&SYN[..]).unwrap();
        assert_eq!(TcpRepr::parse(&packet, CLIENT, SERVER), Ok(syn_repr()));

        let packet = TcpPacket::new_checked(&OCRP[..]).unwrap();
        let repr = TcpRepr::parse(&packet, SERVER, CLIENT).unwrap();
        assert_eq!(repr.payload, &OCRP[32..]);
        assert_eq!(repr.max_seg_size, None);
        assert_eq!(
            repr.timestamp,
            Some(TcpTimestamp {
                tsval: 0x5119b107,
                tsecr: 0x1bd3bc2e
            })
        );
        // Swapping the addresses keeps the pseudo-header sum; another address does not.
        let elsewhere = Ipv4Addr::new(172, 30, 0, 3);
        assert_eq!(
            TcpRepr::parse(&packet, SERVER, elsewhere),
            Err(Error::Malformed("checksum"))
        );
    }

    #[test]
    fn emit() {
        let repr = syn_repr();
        assert_eq!(repr.buffer_len(), 40);
        let mut bytes = [0xffu8; 40];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut bytes[..]),
            CLIENT,
            SERVER,
        )
        .unwrap();
        assert_eq!(bytes, SYN);

        // Without SACK-permitted the timestamp gets two NOPs, as Linux does (the ACK above).
        let packet = TcpPacket::new_checked(&OCRP[..]).unwrap();
        let repr = TcpRepr::parse(&packet, SERVER, CLIENT).unwrap();
        let mut bytes = [0u8; 64];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut bytes[..]),
            SERVER,
            CLIENT,
        )
        .unwrap();
        assert_eq!(bytes, OCRP);

        let mut short = [0u8; 39];
        assert_eq!(
            syn_repr().emit(
                &mut TcpPacket::new_unchecked(&mut short[..]),
                CLIENT,
                SERVER
            ),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn emit_sack_permitted_alone() {
        let repr = TcpRepr {
            timestamp: None,
            window_scale: None,
            ..syn_repr()
        };
        let mut bytes = [0u8; 28];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut bytes[..]),
            CLIENT,
            SERVER,
        )
        .unwrap();
        assert_eq!(bytes[20..], [2, 4, 0x05, 0xb4, 1, 1, 4, 2]);
        let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(TcpRepr::parse(&packet, CLIENT, SERVER), Ok(repr));
    }

    #[test]
    fn truncated_and_malformed() {
        assert_eq!(
            TcpPacket::new_checked(&SYN[..19]).err(),
            Some(Error::Truncated)
        );
        // Data offset 10 words, 39 bytes.
        assert_eq!(
            TcpPacket::new_checked(&SYN[..39]).err(),
            Some(Error::Truncated)
        );
        let mut bytes = SYN;
        bytes[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&bytes[..]).err(),
            Some(Error::Malformed("data offset"))
        );
        // clamp_mss checks lengths itself.
        assert_eq!(
            TcpPacket::new_unchecked(&mut bytes[..]).clamp_mss(1360),
            Err(Error::Malformed("data offset"))
        );
        assert_eq!(
            TcpRepr::parse(&TcpPacket::new_unchecked(&SYN[..30]), CLIENT, SERVER),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn option_errors() {
        let cases: [(&[u8], Error); 9] = [
            (&[2], Error::Malformed("tcp option length")),
            (&[2, 1, 0, 0], Error::Malformed("tcp option length")),
            (&[2, 0], Error::Malformed("tcp option length")),
            (&[2, 6, 5, 0xb4], Error::Malformed("tcp option length")),
            (&[2, 3, 5, 0], Error::Malformed("mss option")),
            (&[3, 4, 6, 0], Error::Malformed("window scale option")),
            (&[4, 3, 0, 0], Error::Malformed("sack permitted option")),
            (&[8, 6, 0, 0, 0, 0], Error::Malformed("timestamp option")),
            (&[5, 6, 0, 0, 0, 0], Error::Malformed("sack option")),
        ];
        for (bytes, err) in cases {
            let mut iter = TcpOptions::new(bytes);
            assert_eq!(iter.next(), Some(Err(err)), "{bytes:02x?}");
            assert_eq!(iter.next(), None, "the walk stops at an error");
        }
    }

    #[test]
    fn options_iteration() {
        let bytes = [
            1, // NOP
            5, 10, 0, 0, 0, 1, 0, 0, 0, 2, // SACK block 1..2
            253, 4, 0xbe, 0xef, // experimental (RFC 4727)
            34, 2, // Fast Open cookie request
            0, 0xaa, 0xbb, // End of list, then padding never read
        ];
        let options: Vec<_> = TcpOptions::new(&bytes).collect();
        assert_eq!(
            options,
            [
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::Sack(&bytes[3..11])),
                Ok(TcpOption::Other {
                    kind: TcpOptionKind::Unknown(253),
                    data: &[0xbe, 0xef]
                }),
                Ok(TcpOption::Other {
                    kind: TcpOptionKind::FastOpen,
                    data: &[]
                }),
                Ok(TcpOption::EndOfList),
            ]
        );
        // Every parsed option emits back to its own bytes.
        let mut out = [0u8; 20];
        let mut at = 0;
        for option in TcpOptions::new(&bytes) {
            at += option.unwrap().emit(&mut out[at..]).unwrap();
        }
        assert_eq!(out[..at], bytes[..at]);
        assert_eq!(
            TcpOption::MaxSegmentSize(1).emit(&mut out[..3]),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn flags_debug() {
        assert_eq!(
            format!("{:?}", TcpFlags::SYN | TcpFlags::ACK),
            "TcpFlags(SYN | ACK)"
        );
        assert_eq!(format!("{:?}", TcpFlags::empty()), "TcpFlags()");
        assert_eq!(
            (TcpFlags::SYN | TcpFlags::ACK).difference(TcpFlags::ACK),
            TcpFlags::SYN
        );
        assert_eq!(TcpFlags::from_bits(0x12).bits(), 0x12);
    }

    #[test]
    fn mss_for_mtu() {
        assert_eq!(ipv4_mss_for_mtu(1400), 1360);
        assert_eq!(ipv4_mss_for_mtu(1500), 1460);
        assert_eq!(ipv4_mss_for_mtu(20), 0);
    }

    #[test]
    fn clamp_syn() {
        let mut bytes = SYN;
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        assert_eq!(packet.clamp_mss(1360), Ok(Some(1460)));
        assert!(packet.verify_checksum(CLIENT, SERVER));
        assert_eq!(packet.checksum(), packet.compute_checksum(CLIENT, SERVER));
        assert_eq!(
            packet.option_iter().next(),
            Some(Ok(TcpOption::MaxSegmentSize(1360)))
        );
        // Only the MSS value and the checksum changed.
        let changed: Vec<usize> = (0..40).filter(|&i| bytes[i] != SYN[i]).collect();
        assert_eq!(changed, [16, 17, 23], "1460 = 0x05b4, 1360 = 0x0550");

        let mut bytes = SYN_ACK;
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        assert_eq!(packet.clamp_mss(ipv4_mss_for_mtu(1400)), Ok(Some(1460)));
        assert!(packet.verify_checksum(SERVER, CLIENT));
    }

    #[test]
    fn clamp_leaves_others_alone() {
        // Not a SYN: the handshake's ACK and a data segment.
        for literal in [&ACK[..], &OCRP[..]] {
            let mut bytes = literal.to_vec();
            assert_eq!(
                TcpPacket::new_unchecked(&mut bytes[..]).clamp_mss(536),
                Ok(None)
            );
            assert_eq!(bytes, literal);
        }
        // A SYN whose MSS is already small enough, or exactly the clamp.
        for max in [1460, 1500, u16::MAX] {
            let mut bytes = SYN;
            assert_eq!(
                TcpPacket::new_unchecked(&mut bytes[..]).clamp_mss(max),
                Ok(None)
            );
            assert_eq!(bytes, SYN);
        }
        // A SYN without an MSS option.
        let repr = TcpRepr {
            max_seg_size: None,
            ..syn_repr()
        };
        let mut bytes = [0u8; 36];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut bytes[..]),
            CLIENT,
            SERVER,
        )
        .unwrap();
        let before = bytes;
        assert_eq!(
            TcpPacket::new_unchecked(&mut bytes[..]).clamp_mss(1360),
            Ok(None)
        );
        assert_eq!(bytes, before);
    }

    #[test]
    fn clamp_odd_offset_and_duplicates() {
        // NOP, MSS 1460 at an odd offset, NOP, MSS 9000 (a second copy), NOP, NOP, NOP, End.
        let options = [1, 2, 4, 0x05, 0xb4, 1, 2, 4, 0x23, 0x28, 1, 1, 1, 0, 0, 0];
        let mut bytes = [0u8; 36 + 5];
        bytes[..20].copy_from_slice(&SYN[..20]);
        bytes[12] = 0x90; // 36 bytes of header
        bytes[20..36].copy_from_slice(&options);
        bytes[36..].copy_from_slice(b"hello");
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(CLIENT, SERVER);
        assert_eq!(packet.clamp_mss(1360), Ok(Some(1460)));
        assert!(packet.verify_checksum(CLIENT, SERVER));
        let mss: Vec<_> = packet
            .option_iter()
            .filter_map(|o| match o {
                Ok(TcpOption::MaxSegmentSize(v)) => Some(v),
                _ => None,
            })
            .collect();
        assert_eq!(mss, [1360, 1360]);
    }

    #[test]
    fn clamp_stops_at_malformed_option() {
        // MSS 1460, then a window scale option claiming 9 bytes inside a 4-byte remainder.
        let options = [2, 4, 0x05, 0xb4, 3, 9, 6, 0];
        let mut bytes = [0u8; 28];
        bytes[..20].copy_from_slice(&SYN[..20]);
        bytes[12] = 0x70;
        bytes[20..].copy_from_slice(&options);
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.fill_checksum(CLIENT, SERVER);
        assert_eq!(
            packet.clamp_mss(1360),
            Err(Error::Malformed("tcp option length"))
        );
        // The MSS before the bad option was clamped, and the checksum still verifies.
        assert_eq!(
            packet.option_iter().next(),
            Some(Ok(TcpOption::MaxSegmentSize(1360)))
        );
        assert!(packet.verify_checksum(CLIENT, SERVER));
    }

    /// A well-formed option other than MSS, for building random SYNs.
    fn arb_other_option() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(vec![1]),
            any::<u8>().prop_map(|s| vec![3, 3, s]),
            Just(vec![4, 2]),
            any::<[u8; 8]>().prop_map(|ts| [&[8, 10][..], &ts].concat()),
            proptest::collection::vec(any::<u8>(), 0..6).prop_map(|d| [
                &[253, d.len() as u8 + 2][..],
                &d
            ]
            .concat()),
        ]
    }

    prop_compose! {
        /// A SYN (or SYN-ACK) with MSS `mss` after `nops` NOPs and other options, padded with
        /// End and zeros, random data, and a correct checksum. Returns the segment, the
        /// offset of the MSS value and the addresses.
        fn arb_syn()(
            before in proptest::collection::vec(arb_other_option(), 0..3),
            nops in 0usize..4,
            mss in any::<u16>(),
            after in proptest::collection::vec(arb_other_option(), 0..3),
            syn_ack in any::<bool>(),
            header in any::<[u8; 20]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            src in any::<u32>(),
            dst in any::<u32>(),
        ) -> (Vec<u8>, usize, u16, Ipv4Addr, Ipv4Addr) {
            let mut options: Vec<u8> = before.concat();
            options.extend(std::iter::repeat_n(1, nops));
            let mss_at = HEADER_LEN + options.len() + 2;
            options.extend_from_slice(&[2, 4]);
            options.extend_from_slice(&mss.to_be_bytes());
            // At most 27 bytes so far; keep what fits in the 40-byte options area.
            for option in after {
                if options.len() + option.len() <= 40 {
                    options.extend_from_slice(&option);
                }
            }
            if !options.len().is_multiple_of(4) {
                options.push(0); // End of list, then zero padding.
            }
            while !options.len().is_multiple_of(4) {
                options.push(0);
            }
            let mut bytes = header.to_vec();
            bytes.extend_from_slice(&options);
            bytes.extend_from_slice(&payload);
            let (src, dst) = (Ipv4Addr::from_bits(src), Ipv4Addr::from_bits(dst));
            let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
            packet.set_header_len((HEADER_LEN + options.len()) as u8);
            let flags = TcpFlags::from_bits(header[13]).union(TcpFlags::SYN);
            packet.set_flags(if syn_ack { flags | TcpFlags::ACK } else { flags });
            packet.fill_checksum(src, dst);
            (bytes, mss_at, mss, src, dst)
        }
    }

    proptest! {
        #[test]
        fn clamped_syn_verifies(
            (bytes, mss_at, mss, src, dst) in arb_syn(),
            max_mss in any::<u16>(),
        ) {
            let mut bytes = bytes;
            let mut packet = TcpPacket::new_checked(&mut bytes[..]).unwrap();
            let result = packet.clamp_mss(max_mss);
            prop_assert!(packet.verify_checksum(src, dst));
            prop_assert_eq!(packet.checksum(), packet.compute_checksum(src, dst));
            let now = u16::from_be_bytes([bytes[mss_at], bytes[mss_at + 1]]);
            prop_assert_eq!(now, mss.min(max_mss));
            prop_assert_eq!(result, Ok((mss > max_mss).then_some(mss)));
        }

        #[test]
        fn non_syn_is_never_changed(
            (bytes, _, _, _, _) in arb_syn(),
            flags in any::<u8>(),
            max_mss in any::<u16>(),
        ) {
            let mut bytes = bytes;
            bytes[13] = flags & !TcpFlags::SYN.bits();
            let before = bytes.clone();
            let result = TcpPacket::new_unchecked(&mut bytes[..]).clamp_mss(max_mss);
            prop_assert_eq!(result, Ok(None));
            prop_assert_eq!(bytes, before);
        }

        #[test]
        fn arbitrary_options_are_safe(
            words in 0usize..=10,
            option_bytes in proptest::collection::vec(any::<u8>(), 40),
            payload in proptest::collection::vec(any::<u8>(), 0..16),
            max_mss in any::<u16>(),
        ) {
            // Random option bytes (mostly MSS-like kinds) behind a random data offset: the
            // walk never panics and the checksum stays right whatever the outcome.
            let mut bytes = SYN[..20].to_vec();
            bytes[12] = ((5 + words as u8) << 4) | (bytes[12] & 0x0f);
            for (i, b) in option_bytes.iter().take(words * 4).enumerate() {
                // Bias towards kinds the parser knows, lengths near the valid ones.
                bytes.push(if i % 4 == 0 { b % 10 } else if i % 4 == 1 { b % 12 } else { *b });
            }
            bytes.extend_from_slice(&payload);
            let mut packet = TcpPacket::new_checked(&mut bytes[..]).unwrap();
            packet.fill_checksum(CLIENT, SERVER);
            let _ = packet.clamp_mss(max_mss);
            prop_assert!(packet.verify_checksum(CLIENT, SERVER));
            let walked = packet.option_iter().count();
            prop_assert!(walked <= words * 4);
            if let Ok(packet) = TcpPacket::new_checked(&bytes[..]) {
                let _ = TcpRepr::parse(&packet, CLIENT, SERVER);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..80),
            max_mss in any::<u16>(),
        ) {
            if let Ok(packet) = TcpPacket::new_checked(&bytes[..]) {
                let _ = (packet.options(), packet.payload(), packet.option_iter().count());
                let _ = TcpRepr::parse(&packet, CLIENT, SERVER);
            }
            let mut bytes = bytes;
            let _ = TcpPacket::new_unchecked(&mut bytes[..]).clamp_mss(max_mss);
        }

        #[test]
        fn repr_round_trip(
            ports in any::<(u16, u16)>(),
            numbers in any::<(u32, u32)>(),
            flags in any::<u8>(),
            window_len in any::<u16>(),
            urgent_at in any::<u16>(),
            max_seg_size in any::<Option<u16>>(),
            window_scale in any::<Option<u8>>(),
            sack_permitted in any::<bool>(),
            timestamp in any::<Option<(u32, u32)>>(),
            payload in proptest::collection::vec(any::<u8>(), 0..32),
        ) {
            let repr = TcpRepr {
                src_port: ports.0,
                dst_port: ports.1,
                seq_number: numbers.0,
                ack_number: numbers.1,
                flags: TcpFlags::from_bits(flags),
                window_len,
                urgent_at,
                max_seg_size,
                window_scale,
                sack_permitted,
                timestamp: timestamp.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
                payload: &payload,
            };
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut TcpPacket::new_unchecked(&mut bytes[..]), CLIENT, SERVER).unwrap();
            let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(usize::from(packet.header_len()), repr.header_len());
            prop_assert_eq!(TcpRepr::parse(&packet, CLIENT, SERVER), Ok(repr));
        }
    }
}
