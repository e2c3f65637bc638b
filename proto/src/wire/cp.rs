//! PPP control packets and configuration options, the layer LCP, IPCP and CCP share.
//!
//! Every PPP control protocol frames its packets the same way (RFC 1661 §5): Code (1 octet),
//! Identifier (1), Length (2, header included), then data. Configure-Request, -Ack, -Nak and
//! -Reject carry a list of type-length-value options (RFC 1661 §6). This module holds:
//!
//! * [`Code`], the code numbers of every protocol we speak (RFC 1661, RFC 1570, RFC 1962);
//! * [`CpPacket`], the checked view of one control packet;
//! * [`Repr`], the packets common to all control protocols (codes 1 to 7), which is all of
//!   IPCP; LCP and CCP extend it in their own modules;
//! * [`RawOption`], [`OptionIter`], [`OptionWriter`] and [`ConfigPacketWriter`], the generic
//!   option layer: walking an option list one TLV at a time, and writing option lists (for
//!   example a Configure-Nak or -Reject built by copying options out of a request, in order).
//! * [`ConfigOption`], the trait every protocol's typed option (`LcpOption`, `IpcpOption`,
//!   `CcpOption`) implements, so that the same iterator and writer serve all of them.

use core::fmt;
use core::iter::FusedIterator;
use core::marker::PhantomData;

use super::{Error, Result};

enum_with_unknown! {
    /// The Code field of a PPP control packet.
    ///
    /// Codes 1 to 11 are RFC 1661 §5, 12 and 13 RFC 1570 §2 (LCP only), 14 and 15 RFC 1962
    /// §2.1 (CCP only). Which codes a protocol accepts is the protocol's business: IPCP, for
    /// example, must answer a Protocol-Reject code with a Code-Reject (RFC 1332 §2), so its
    /// parser keeps such a packet as `Unknown`.
    pub enum Code(u8) {
        ConfigureRequest = 1,
        ConfigureAck = 2,
        ConfigureNak = 3,
        ConfigureReject = 4,
        TerminateRequest = 5,
        TerminateAck = 6,
        CodeReject = 7,
        ProtocolReject = 8,
        EchoRequest = 9,
        EchoReply = 10,
        DiscardRequest = 11,
        Identification = 12,
        TimeRemaining = 13,
        ResetRequest = 14,
        ResetAck = 15,
    }
}

/// pppd's abbreviations, so that our logs read like the logs operators know.
impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Code::ConfigureRequest => "ConfReq",
            Code::ConfigureAck => "ConfAck",
            Code::ConfigureNak => "ConfNak",
            Code::ConfigureReject => "ConfRej",
            Code::TerminateRequest => "TermReq",
            Code::TerminateAck => "TermAck",
            Code::CodeReject => "CodeRej",
            Code::ProtocolReject => "ProtRej",
            Code::EchoRequest => "EchoReq",
            Code::EchoReply => "EchoRep",
            Code::DiscardRequest => "DiscReq",
            Code::Identification => "Ident",
            Code::TimeRemaining => "TimeRem",
            Code::ResetRequest => "ResetReq",
            Code::ResetAck => "ResetAck",
            Code::Unknown(code) => return write!(f, "code=0x{code:x}"),
        };
        f.write_str(name)
    }
}

mod field {
    use core::ops::Range;

    pub const CODE: usize = 0;
    pub const IDENTIFIER: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const DATA: usize = 4;
}

/// Length of the Code, Identifier and Length fields.
pub const HEADER_LEN: usize = field::DATA;

/// The largest control packet the 16-bit Length field can describe.
pub const MAX_PACKET_LEN: usize = u16::MAX as usize;

/// The largest option list a control packet can carry.
pub const MAX_OPTIONS_LEN: usize = MAX_PACKET_LEN - HEADER_LEN;

/// A read/write view of a PPP control packet (RFC 1661 §5).
///
/// The Length field counts the header; octets after it are padding that RFC 1661 §5 says to
/// ignore, so [`data`](CpPacket::data) stops at Length, not at the end of the buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> CpPacket<T> {
    /// Wraps a buffer without checking it. Getters may panic until
    /// [`check_len`](Self::check_len) has succeeded.
    pub const fn new_unchecked(buffer: T) -> CpPacket<T> {
        CpPacket { buffer }
    }

    /// Wraps a buffer and checks that the header and the data Length announces are in it.
    pub fn new_checked(buffer: T) -> Result<CpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header fits, that Length counts at least the header
    /// (`Malformed`), and that the buffer holds Length octets (`Truncated`).
    pub fn check_len(&self) -> Result<()> {
        self.check_header("control packet length shorter than its header")
    }

    /// [`check_len`](Self::check_len) with the caller's name for a Length below the header.
    ///
    /// PAP and CHAP frame their packets with this same header (RFC 1334 §2.2, RFC 1994 §4)
    /// and check it through here before checking their bodies.
    pub(crate) fn check_header(&self, short_length: &'static str) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let length = usize::from(self.length());
        if length < HEADER_LEN {
            return Err(Error::Malformed(short_length));
        }
        if length > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The Code field.
    pub fn code(&self) -> Code {
        Code::from(self.buffer.as_ref()[field::CODE])
    }

    /// The Identifier field, which matches replies to requests.
    pub fn identifier(&self) -> u8 {
        self.buffer.as_ref()[field::IDENTIFIER]
    }

    /// The Length field: header plus data, excluding padding.
    pub fn length(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::LENGTH];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The data after the header, up to Length, borrowed from the view (see
    /// [`data`](CpPacket::data) for a borrow of the buffer itself).
    pub(crate) fn data_ref(&self) -> &[u8] {
        data_of(self.buffer.as_ref())
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for CpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The octets after the header, up to Length; empty where the buffer does not hold them, so
/// it is total even on a buffer that failed `check_len`.
fn data_of(buffer: &[u8]) -> &[u8] {
    let length = match buffer.get(field::LENGTH) {
        Some(&[hi, lo]) => usize::from(u16::from_be_bytes([hi, lo])),
        _ => return &[],
    };
    buffer.get(field::DATA..length).unwrap_or_default()
}

impl<'a, T: AsRef<[u8]> + ?Sized> CpPacket<&'a T> {
    /// The data after the header, up to Length (padding excluded).
    pub fn data(&self) -> &'a [u8] {
        data_of(self.buffer.as_ref())
    }

    /// The data read as an option list: right for Configure-Request, -Ack, -Nak and -Reject.
    pub fn options(&self) -> OptionIter<'a> {
        OptionIter::new(self.data())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> CpPacket<T> {
    /// Sets the Code field.
    pub fn set_code(&mut self, code: Code) {
        self.buffer.as_mut()[field::CODE] = code.into();
    }

    /// Sets the Identifier field.
    pub fn set_identifier(&mut self, identifier: u8) {
        self.buffer.as_mut()[field::IDENTIFIER] = identifier;
    }

    /// Sets the Length field (header plus data).
    pub fn set_length(&mut self, length: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&length.to_be_bytes());
    }

    /// The data after the header, up to Length, for writing.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[field::DATA..end]
    }

    /// Writes Code, Identifier and a Length that covers `data_len` octets of data, and
    /// returns the data area to fill.
    ///
    /// For builders whose data is not one slice (LCP Echo: magic number, then data). Fails
    /// with `Malformed` if the packet would exceed [`MAX_PACKET_LEN`] and with
    /// `BufferTooSmall` if the buffer cannot hold it; nothing is written then.
    pub fn emit_header(
        &mut self,
        code: Code,
        identifier: u8,
        data_len: usize,
    ) -> Result<&mut [u8]> {
        self.emit_header_as(
            code.into(),
            identifier,
            data_len,
            "control packet longer than 65535 octets",
        )
    }

    /// [`emit_header`](Self::emit_header) with a raw code (PAP's and CHAP's codes are their
    /// own enums) and the caller's name for a packet longer than 65535 octets.
    pub(crate) fn emit_header_as(
        &mut self,
        code: u8,
        identifier: u8,
        data_len: usize,
        too_long: &'static str,
    ) -> Result<&mut [u8]> {
        let total = HEADER_LEN
            .checked_add(data_len)
            .filter(|&total| total <= MAX_PACKET_LEN)
            .ok_or(Error::Malformed(too_long))?;
        if self.buffer.as_ref().len() < total {
            return Err(Error::BufferTooSmall);
        }
        self.buffer.as_mut()[field::CODE] = code;
        self.set_identifier(identifier);
        // `total <= MAX_PACKET_LEN` was checked above, so this cannot truncate.
        self.set_length(total as u16);
        Ok(self.data_mut())
    }

    /// The whole buffer, for PAP's and CHAP's setters of fields after the header.
    pub(crate) fn buffer_mut(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
}

/// Writes `parts` one after another into `out`; stops silently at the end of `out`.
///
/// Callers size `out` as the sum of the parts' lengths, so nothing is ever cut; the silent
/// stop only keeps a sizing bug from becoming a panic.
pub(crate) fn write_parts(out: &mut [u8], parts: &[&[u8]]) {
    let mut rest = out;
    for part in parts {
        let n = part.len().min(rest.len());
        let (head, tail) = rest.split_at_mut(n);
        head.copy_from_slice(part.get(..n).unwrap_or_default());
        rest = tail;
    }
}

/// Sum of the lengths of `parts`, saturating (a saturated sum is then refused as too long).
pub(crate) fn parts_len(parts: &[&[u8]]) -> usize {
    parts
        .iter()
        .fold(0usize, |acc, p| acc.saturating_add(p.len()))
}

/// Emits a packet whose data is `parts` concatenated.
pub(crate) fn emit_parts<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
    packet: &mut CpPacket<&mut T>,
    code: Code,
    identifier: u8,
    parts: &[&[u8]],
) -> Result<()> {
    let out = packet.emit_header(code, identifier, parts_len(parts))?;
    write_parts(out, parts);
    Ok(())
}

/// Formats `data` the way pppd does after a packet name: nothing if empty, a quoted string
/// if it starts printable, hex otherwise.
pub(crate) fn fmt_data(f: &mut fmt::Formatter<'_>, data: &[u8]) -> fmt::Result {
    match data.first() {
        None => Ok(()),
        Some(b) if (0x20..0x7f).contains(b) => write!(f, " \"{}\"", data.escape_ascii()),
        Some(_) => {
            f.write_str(" <")?;
            fmt_hex(f, data)?;
            f.write_str(">")
        }
    }
}

/// Hex without separators, as pppd prints opaque data.
pub(crate) fn fmt_hex(f: &mut fmt::Formatter<'_>, data: &[u8]) -> fmt::Result {
    data.iter().try_for_each(|b| write!(f, "{b:02x}"))
}

/// Formats an option list as pppd does: ` <opt> <opt>`, with a malformed tail in hex.
pub(crate) fn fmt_options<'a, O>(f: &mut fmt::Formatter<'_>, list: &'a [u8]) -> fmt::Result
where
    O: ConfigOption<'a> + fmt::Display,
{
    let mut iter = OptionIter::new(list);
    while let Some(item) = iter.next() {
        match item {
            Ok(raw) => match O::parse(raw) {
                Ok(option) => write!(f, " <{option}>")?,
                Err(_) => write!(f, " <{raw}>")?,
            },
            Err(_) => {
                f.write_str(" <malformed ")?;
                fmt_hex(f, iter.rest())?;
                f.write_str(">")?;
            }
        }
    }
    Ok(())
}

/// The packets every PPP control protocol has (RFC 1661 §5.1 to §5.6): codes 1 to 7.
///
/// This is the whole of IPCP (RFC 1332 §2). LCP and CCP have their own `Repr` that wraps
/// this one in `Common` and adds their codes; any other code lands in `Unknown` so the
/// automaton can Code-Reject it (RFC 1661 §5.6) with the original bytes.
///
/// Configure packets keep their option list as bytes: walk it with [`OptionIter`], which
/// reports a malformed option where it occurs, so the automaton can reject from there on as
/// pppd does, instead of refusing the whole packet up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    ConfigureRequest {
        id: u8,
        options: &'a [u8],
    },
    ConfigureAck {
        id: u8,
        options: &'a [u8],
    },
    ConfigureNak {
        id: u8,
        options: &'a [u8],
    },
    ConfigureReject {
        id: u8,
        options: &'a [u8],
    },
    /// RFC 1661 §5.5: the data is uninterpreted; pppd puts a reason string there.
    TerminateRequest {
        id: u8,
        data: &'a [u8],
    },
    TerminateAck {
        id: u8,
        data: &'a [u8],
    },
    /// RFC 1661 §5.6: `rejected_packet` is the rejected packet from its Code field on,
    /// truncated by the sender to fit the peer's MRU.
    CodeReject {
        id: u8,
        rejected_packet: &'a [u8],
    },
    /// A code this protocol does not define.
    Unknown {
        code: Code,
        id: u8,
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a control packet; checks its length first, so `new_unchecked` views are fine.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &CpPacket<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let id = packet.identifier();
        let data = packet.data();
        Ok(match packet.code() {
            Code::ConfigureRequest => Repr::ConfigureRequest { id, options: data },
            Code::ConfigureAck => Repr::ConfigureAck { id, options: data },
            Code::ConfigureNak => Repr::ConfigureNak { id, options: data },
            Code::ConfigureReject => Repr::ConfigureReject { id, options: data },
            Code::TerminateRequest => Repr::TerminateRequest { id, data },
            Code::TerminateAck => Repr::TerminateAck { id, data },
            Code::CodeReject => Repr::CodeReject {
                id,
                rejected_packet: data,
            },
            code => Repr::Unknown { code, id, data },
        })
    }

    /// The Code this packet is sent with.
    pub fn code(&self) -> Code {
        match self {
            Repr::ConfigureRequest { .. } => Code::ConfigureRequest,
            Repr::ConfigureAck { .. } => Code::ConfigureAck,
            Repr::ConfigureNak { .. } => Code::ConfigureNak,
            Repr::ConfigureReject { .. } => Code::ConfigureReject,
            Repr::TerminateRequest { .. } => Code::TerminateRequest,
            Repr::TerminateAck { .. } => Code::TerminateAck,
            Repr::CodeReject { .. } => Code::CodeReject,
            Repr::Unknown { code, .. } => *code,
        }
    }

    /// The Identifier.
    pub fn id(&self) -> u8 {
        match *self {
            Repr::ConfigureRequest { id, .. }
            | Repr::ConfigureAck { id, .. }
            | Repr::ConfigureNak { id, .. }
            | Repr::ConfigureReject { id, .. }
            | Repr::TerminateRequest { id, .. }
            | Repr::TerminateAck { id, .. }
            | Repr::CodeReject { id, .. }
            | Repr::Unknown { id, .. } => id,
        }
    }

    /// The data after the header (the option list for Configure packets).
    pub fn data(&self) -> &'a [u8] {
        match *self {
            Repr::ConfigureRequest { options, .. }
            | Repr::ConfigureAck { options, .. }
            | Repr::ConfigureNak { options, .. }
            | Repr::ConfigureReject { options, .. } => options,
            Repr::TerminateRequest { data, .. }
            | Repr::TerminateAck { data, .. }
            | Repr::Unknown { data, .. } => data,
            Repr::CodeReject {
                rejected_packet, ..
            } => rejected_packet,
        }
    }

    /// The option list, if this is a Configure packet.
    pub fn options(&self) -> Option<&'a [u8]> {
        match *self {
            Repr::ConfigureRequest { options, .. }
            | Repr::ConfigureAck { options, .. }
            | Repr::ConfigureNak { options, .. }
            | Repr::ConfigureReject { options, .. } => Some(options),
            _ => None,
        }
    }

    /// Octets [`emit`](Self::emit) writes (no padding).
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.data().len())
    }

    /// Writes the packet into the front of `packet`, Length included.
    ///
    /// Fails with `BufferTooSmall` if the buffer is shorter than
    /// [`buffer_len`](Self::buffer_len) and with `Malformed` if that exceeds 65535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut CpPacket<&mut T>,
    ) -> Result<()> {
        emit_parts(packet, self.code(), self.id(), &[self.data()])
    }

    /// A `Display` that decodes Configure packets' options as `O` (`IpcpOption`, ...), in
    /// pppd's log format: `ConfNak id=0x2 <addr 192.168.77.10>`.
    pub fn display<O>(&self) -> ReprDisplay<'a, O>
    where
        O: ConfigOption<'a> + fmt::Display,
    {
        ReprDisplay {
            repr: *self,
            _option: PhantomData,
        }
    }
}

/// pppd's log format, with options shown raw; see [`Repr::display`] for typed options.
impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.display::<RawOption<'_>>(), f)
    }
}

/// Formats a [`Repr`] with options decoded as `O`; made by [`Repr::display`].
#[derive(Debug, Clone, Copy)]
pub struct ReprDisplay<'a, O> {
    repr: Repr<'a>,
    _option: PhantomData<fn() -> O>,
}

impl<'a, O> fmt::Display for ReprDisplay<'a, O>
where
    O: ConfigOption<'a> + fmt::Display,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} id=0x{:x}", self.repr.code(), self.repr.id())?;
        match self.repr {
            Repr::ConfigureRequest { options, .. }
            | Repr::ConfigureAck { options, .. }
            | Repr::ConfigureNak { options, .. }
            | Repr::ConfigureReject { options, .. } => fmt_options::<O>(f, options),
            Repr::TerminateRequest { data, .. } | Repr::TerminateAck { data, .. } => {
                fmt_data(f, data)
            }
            Repr::CodeReject {
                rejected_packet: data,
                ..
            }
            | Repr::Unknown { data, .. } => {
                if data.is_empty() {
                    return Ok(());
                }
                f.write_str(" <")?;
                fmt_hex(f, data)?;
                f.write_str(">")
            }
        }
    }
}

/// Length of an option's Type and Length octets.
pub const OPTION_HEADER_LEN: usize = 2;

/// The most data one option can carry: its Length octet counts the header and tops at 255.
pub const MAX_OPTION_DATA_LEN: usize = u8::MAX as usize - OPTION_HEADER_LEN;

/// One configuration option, undecoded (RFC 1661 §6): Type, Length, then `data`.
///
/// `data` excludes the Type and Length octets. This is what the negotiation automaton copies
/// into a Configure-Reject, and what a typed option is parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawOption<'a> {
    /// The Type octet.
    pub kind: u8,
    /// The octets after Length.
    pub data: &'a [u8],
}

impl<'a> RawOption<'a> {
    /// Reads the option at the front of `list` and returns it with the octets after it.
    ///
    /// A Length below 2, or one that runs past the end of `list`, is `Malformed` (so is a lone
    /// trailing octet): the list cannot be walked any further.
    pub fn parse(list: &'a [u8]) -> Result<(RawOption<'a>, &'a [u8])> {
        let Some((&[kind, length], _)) = list.split_first_chunk::<OPTION_HEADER_LEN>() else {
            return Err(Error::Malformed("option header cut off"));
        };
        let length = usize::from(length);
        if length < OPTION_HEADER_LEN {
            return Err(Error::Malformed("option length below 2"));
        }
        let (option, rest) = list
            .split_at_checked(length)
            .ok_or(Error::Malformed("option length past end of list"))?;
        let data = option.get(OPTION_HEADER_LEN..).unwrap_or_default();
        Ok((RawOption { kind, data }, rest))
    }
}

impl<'a> ConfigOption<'a> for RawOption<'a> {
    fn parse(raw: RawOption<'a>) -> Result<Self> {
        Ok(raw)
    }

    fn kind(&self) -> u8 {
        self.kind
    }

    fn data_len(&self) -> usize {
        self.data.len()
    }

    fn emit_data(&self, data: &mut [u8]) {
        write_parts(data, &[self.data]);
    }
}

/// `type=0xN <hex>`, for options nobody decoded.
impl fmt::Display for RawOption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "type=0x{:x}", self.kind)?;
        if !self.data.is_empty() {
            f.write_str(" ")?;
            fmt_hex(f, self.data)?;
        }
        Ok(())
    }
}

/// A configuration option of some control protocol, as parsed from and written to the wire.
///
/// LCP, IPCP and CCP options implement it, and so does [`RawOption`]. It lets one
/// [`OptionIter`] decode any protocol's options and one [`OptionWriter`] write them.
pub trait ConfigOption<'a>: Sized {
    /// Decodes a raw option. An option whose length is wrong for its type is `Malformed`;
    /// a type the protocol does not know is kept (as an `Unknown` variant), never an error.
    fn parse(raw: RawOption<'a>) -> Result<Self>;

    /// The Type octet.
    fn kind(&self) -> u8;

    /// Octets of data after Type and Length.
    fn data_len(&self) -> usize;

    /// Writes the data into `data`, which is exactly [`data_len`](Self::data_len) long.
    fn emit_data(&self, data: &mut [u8]);

    /// Octets the whole option takes: `2 + data_len()`.
    fn buffer_len(&self) -> usize {
        OPTION_HEADER_LEN.saturating_add(self.data_len())
    }

    /// Writes the option (Type, Length, data) at the front of `buf`; returns its length.
    ///
    /// `BufferTooSmall` if it does not fit, `Malformed` if the data exceeds
    /// [`MAX_OPTION_DATA_LEN`]; nothing is written then.
    fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let data_len = self.data_len();
        if data_len > MAX_OPTION_DATA_LEN {
            return Err(Error::Malformed("option data longer than 253 octets"));
        }
        let total = OPTION_HEADER_LEN + data_len;
        let out = buf.get_mut(..total).ok_or(Error::BufferTooSmall)?;
        let (header, data) = out.split_at_mut(OPTION_HEADER_LEN);
        // `total <= 255` because `data_len <= 253`.
        write_parts(header, &[&[self.kind(), total as u8]]);
        self.emit_data(data);
        Ok(total)
    }
}

/// Walks an option list one option at a time (RFC 1661 §6).
///
/// Yields `Err(Malformed)` once and then stops if an option's Length is below 2 or runs past
/// the end of the list: after that there is no telling where the next option starts, and
/// [`rest`](Self::rest) holds the octets from the bad option on (pppd rejects all of them).
///
/// `O` is the option type to decode into: [`RawOption`] by default, or a protocol's typed
/// option. A typed option whose length is wrong for its type yields `Err(Malformed)` too, but
/// the walk goes on, since the list's structure is sound. To keep both the raw bytes (for
/// rejecting) and the meaning, walk raw options and call [`ConfigOption::parse`] on each.
#[derive(Debug, Clone)]
pub struct OptionIter<'a, O = RawOption<'a>> {
    rest: &'a [u8],
    failed: bool,
    _option: PhantomData<fn() -> O>,
}

impl<'a> OptionIter<'a> {
    /// Walks `list` yielding [`RawOption`]s.
    pub fn new(list: &'a [u8]) -> OptionIter<'a> {
        Self::typed(list)
    }
}

impl<'a, O: ConfigOption<'a>> OptionIter<'a, O> {
    /// Walks `list` yielding options decoded as `O`.
    pub fn typed(list: &'a [u8]) -> OptionIter<'a, O> {
        OptionIter {
            rest: list,
            failed: false,
            _option: PhantomData,
        }
    }

    /// The octets not walked yet; after an error, the malformed option and everything after.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

impl<'a, O: ConfigOption<'a>> Iterator for OptionIter<'a, O> {
    type Item = Result<O>;

    fn next(&mut self) -> Option<Result<O>> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match RawOption::parse(self.rest) {
            Ok((raw, rest)) => {
                self.rest = rest;
                Some(O::parse(raw))
            }
            Err(err) => {
                self.failed = true;
                Some(Err(err))
            }
        }
    }
}

impl<'a, O: ConfigOption<'a>> FusedIterator for OptionIter<'a, O> {}

/// Writes an option list into a buffer, keeping track of the room left.
///
/// Every push either writes a whole option or nothing (`BufferTooSmall` when it does not fit),
/// so a caller filling a Configure-Nak up to the peer's MRU can stop at the first refusal.
/// The usable room is capped at [`MAX_OPTIONS_LEN`], so the list always fits a packet.
#[derive(Debug)]
pub struct OptionWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> OptionWriter<'b> {
    /// Writes from the start of `buf`.
    pub fn new(buf: &'b mut [u8]) -> OptionWriter<'b> {
        let room = buf.len().min(MAX_OPTIONS_LEN);
        let (buf, _) = buf.split_at_mut(room);
        OptionWriter { buf, len: 0 }
    }

    /// Appends one option.
    pub fn push<'o, O: ConfigOption<'o>>(&mut self, option: &O) -> Result<()> {
        let rest = self.buf.get_mut(self.len..).unwrap_or_default();
        let n = option.emit(rest)?;
        self.len = self.len.saturating_add(n);
        Ok(())
    }

    /// Appends an option given as Type and data.
    pub fn push_raw(&mut self, kind: u8, data: &[u8]) -> Result<()> {
        self.push(&RawOption { kind, data })
    }

    /// Octets written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Octets still free.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.len)
    }

    /// The option list written so far.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    /// Ends writing and returns the option list.
    pub fn into_bytes(self) -> &'b mut [u8] {
        let len = self.len;
        self.buf.get_mut(..len).unwrap_or_default()
    }
}

/// Builds a whole Configure-Request/-Ack/-Nak/-Reject in place: the header, then options
/// pushed one by one, then [`finish`](Self::finish) sets Length.
///
/// The usual way to answer a Configure-Request: walk its options, and push the ones to Nak
/// (with the value we want) or to Reject (the [`RawOption`] as received), in order.
#[derive(Debug)]
pub struct ConfigPacketWriter<'b> {
    header: &'b mut [u8; HEADER_LEN],
    options: OptionWriter<'b>,
}

impl<'b> ConfigPacketWriter<'b> {
    /// Starts a packet with `code` and `identifier` at the front of `buf`.
    /// `BufferTooSmall` if `buf` cannot hold the header.
    pub fn new(buf: &'b mut [u8], code: Code, identifier: u8) -> Result<ConfigPacketWriter<'b>> {
        let (header, rest) = buf
            .split_first_chunk_mut::<HEADER_LEN>()
            .ok_or(Error::BufferTooSmall)?;
        header[field::CODE] = code.into();
        header[field::IDENTIFIER] = identifier;
        header[field::LENGTH].copy_from_slice(&(HEADER_LEN as u16).to_be_bytes());
        Ok(ConfigPacketWriter {
            header,
            options: OptionWriter::new(rest),
        })
    }

    /// Appends one option; `BufferTooSmall` (and nothing written) if it does not fit.
    pub fn push<'o, O: ConfigOption<'o>>(&mut self, option: &O) -> Result<()> {
        self.options.push(option)
    }

    /// Appends an option given as Type and data.
    pub fn push_raw(&mut self, kind: u8, data: &[u8]) -> Result<()> {
        self.options.push_raw(kind, data)
    }

    /// Octets of options written so far.
    pub fn options_len(&self) -> usize {
        self.options.len()
    }

    /// Octets still free for options.
    pub fn remaining(&self) -> usize {
        self.options.remaining()
    }

    /// Sets Length and returns the length of the whole packet.
    pub fn finish(self) -> usize {
        // The option writer caps its room at MAX_OPTIONS_LEN, so this fits in 16 bits.
        let total = HEADER_LEN.saturating_add(self.options.len());
        let length = u16::try_from(total).unwrap_or(u16::MAX);
        self.header[field::LENGTH].copy_from_slice(&length.to_be_bytes());
        total
    }
}

/// Helpers for the tests of the protocols built on this module.
#[cfg(test)]
pub(crate) mod testing {
    use super::{ConfigOption, OptionWriter};

    /// Writes `options` into `buf` one after another, as a Configure packet's option list,
    /// and returns the list; panics if they do not fit.
    pub(crate) fn write_options<'b, 'o, O: ConfigOption<'o>>(
        buf: &'b mut [u8],
        options: &[O],
    ) -> &'b [u8] {
        let mut w = OptionWriter::new(buf);
        for option in options {
            w.push(option).unwrap();
        }
        w.into_bytes()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // The reference capture's client IPCP Configure-Request (frame 36) and LCP
    // Terminate-Request "MPPE disabled" (frame 76).
    use crate::testing::reference::ipcp::{
        CLIENT_CONFREQ_1 as IPCP_CONFREQ, SERVER_CONFREJ as IPCP_CONFREJ,
    };
    use crate::testing::reference::lcp::CLIENT_TERMREQ as LCP_TERMREQ;

    #[test]
    fn code_numbers() {
        assert_eq!(Code::from(1), Code::ConfigureRequest);
        assert_eq!(Code::from(8), Code::ProtocolReject);
        assert_eq!(Code::from(12), Code::Identification);
        assert_eq!(Code::from(15), Code::ResetAck);
        assert_eq!(Code::from(16), Code::Unknown(16));
        assert_eq!(u8::from(Code::TimeRemaining), 13);
        assert_eq!(u8::from(Code::ResetRequest), 14);
        assert_eq!(Code::ConfigureReject.to_string(), "ConfRej");
        assert_eq!(Code::Unknown(0x42).to_string(), "code=0x42");
    }

    #[test]
    fn deconstruct() {
        let packet = CpPacket::new_checked(&IPCP_CONFREQ[..]).unwrap();
        assert_eq!(packet.code(), Code::ConfigureRequest);
        assert_eq!(packet.identifier(), 1);
        assert_eq!(packet.length(), 16);
        assert_eq!(packet.data(), &IPCP_CONFREQ[4..]);
        let options: Vec<_> = packet.options().collect::<Result<_>>().unwrap();
        assert_eq!(
            options,
            [
                RawOption {
                    kind: 2,
                    data: &[0x00, 0x2d, 0x0f, 0x01]
                },
                RawOption {
                    kind: 3,
                    data: &[0, 0, 0, 0]
                },
            ]
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 17];
        let mut packet = CpPacket::new_unchecked(&mut bytes[..]);
        packet.set_code(Code::TerminateRequest);
        packet.set_identifier(2);
        packet.set_length(17);
        packet.data_mut().copy_from_slice(b"MPPE disabled");
        assert_eq!(bytes, LCP_TERMREQ);
    }

    #[test]
    fn padding_is_ignored() {
        let mut bytes = LCP_TERMREQ.to_vec();
        bytes.extend_from_slice(&[0, 0, 0]);
        let packet = CpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.data(), b"MPPE disabled");
        assert_eq!(
            Repr::parse(&packet).unwrap(),
            Repr::TerminateRequest {
                id: 2,
                data: b"MPPE disabled"
            }
        );
    }

    #[test]
    fn check_len_errors() {
        assert_eq!(
            CpPacket::new_checked(&IPCP_CONFREQ[..3]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            CpPacket::new_checked(&IPCP_CONFREQ[..15]).unwrap_err(),
            Error::Truncated
        );
        for length in [0u8, 3] {
            let bytes = [0x05, 0x01, 0x00, length];
            assert!(matches!(
                CpPacket::new_checked(&bytes[..]),
                Err(Error::Malformed(_))
            ));
            // parse checks too, so an unchecked view cannot make it panic.
            assert!(matches!(
                Repr::parse(&CpPacket::new_unchecked(&bytes[..])),
                Err(Error::Malformed(_))
            ));
        }
        assert!(CpPacket::new_checked(&[0x06, 0x02, 0x00, 0x04][..]).is_ok());
    }

    #[test]
    fn parse_and_emit() {
        let packet = CpPacket::new_checked(&IPCP_CONFREQ[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr::ConfigureRequest {
                id: 1,
                options: &IPCP_CONFREQ[4..]
            }
        );
        assert_eq!(repr.buffer_len(), 16);
        let mut out = [0u8; 20];
        repr.emit(&mut CpPacket::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(&out[..16], &IPCP_CONFREQ[..]);
        assert_eq!(&out[16..], &[0; 4]);

        let mut small = [0u8; 15];
        assert_eq!(
            repr.emit(&mut CpPacket::new_unchecked(&mut small[..])),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(small, [0; 15], "nothing written on failure");
    }

    #[test]
    fn unknown_code_kept() {
        // Protocol-Reject is not an IPCP code: the generic Repr keeps it for a Code-Reject.
        let bytes = [0x08, 0x07, 0x00, 0x06, 0x80, 0x57];
        let repr = Repr::parse(&CpPacket::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(
            repr,
            Repr::Unknown {
                code: Code::ProtocolReject,
                id: 7,
                data: &[0x80, 0x57]
            }
        );
        let mut out = [0u8; 6];
        repr.emit(&mut CpPacket::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn emit_too_long() {
        let big = vec![0u8; MAX_OPTIONS_LEN + 1];
        let repr = Repr::TerminateRequest { id: 0, data: &big };
        let mut out = vec![0u8; big.len() + 4];
        assert!(matches!(
            repr.emit(&mut CpPacket::new_unchecked(&mut out[..])),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn display() {
        let repr = Repr::parse(&CpPacket::new_checked(&LCP_TERMREQ[..]).unwrap()).unwrap();
        assert_eq!(repr.to_string(), "TermReq id=0x2 \"MPPE disabled\"");
        let repr = Repr::parse(&CpPacket::new_checked(&IPCP_CONFREQ[..]).unwrap()).unwrap();
        assert_eq!(
            repr.to_string(),
            "ConfReq id=0x1 <type=0x2 002d0f01> <type=0x3 00000000>"
        );
        let repr = Repr::TerminateAck { id: 2, data: &[] };
        assert_eq!(repr.to_string(), "TermAck id=0x2");
        let repr = Repr::ConfigureReject {
            id: 1,
            options: &[0x03, 0x06, 0x00, 0x02, 0x01],
        };
        assert_eq!(repr.to_string(), "ConfRej id=0x1 <malformed 0306000201>");
    }

    #[test]
    fn option_iter_errors() {
        // Length 1 stops the walk; rest() points at the bad option.
        let list = [0x07, 0x02, 0x08, 0x01, 0x09, 0x02];
        let mut iter = OptionIter::new(&list);
        assert_eq!(iter.next(), Some(Ok(RawOption { kind: 7, data: &[] })));
        assert!(matches!(iter.next(), Some(Err(Error::Malformed(_)))));
        assert_eq!(iter.rest(), &list[2..]);
        assert_eq!(iter.next(), None);
        assert_eq!(iter.next(), None);

        // Overrunning the list.
        let list = [0x05, 0x06, 0x00, 0x00, 0x00];
        let mut iter = OptionIter::new(&list);
        assert!(matches!(iter.next(), Some(Err(Error::Malformed(_)))));
        assert_eq!(iter.next(), None);

        // A lone trailing octet.
        let list = [0x07, 0x02, 0x08];
        let items: Vec<_> = OptionIter::new(&list).collect();
        assert_eq!(items.len(), 2);
        assert!(items[1].is_err());

        // Length 0 is malformed too (it would never advance).
        let mut iter = OptionIter::new(&[0x01, 0x00]);
        assert!(matches!(iter.next(), Some(Err(Error::Malformed(_)))));
        assert_eq!(OptionIter::new(&[]).next(), None);
    }

    #[test]
    fn option_writer() {
        let mut buf = [0u8; 9];
        let mut w = OptionWriter::new(&mut buf);
        assert!(w.is_empty());
        w.push_raw(7, &[]).unwrap();
        w.push(&RawOption {
            kind: 3,
            data: &[0, 0, 0, 0],
        })
        .unwrap();
        assert_eq!(w.len(), 8);
        assert_eq!(w.remaining(), 1);
        assert_eq!(w.push_raw(8, &[]), Err(Error::BufferTooSmall));
        assert_eq!(w.len(), 8, "a refused push writes nothing");
        assert_eq!(w.as_bytes(), &[7, 2, 3, 6, 0, 0, 0, 0]);
        assert_eq!(w.into_bytes(), &[7, 2, 3, 6, 0, 0, 0, 0]);
        assert_eq!(buf[8], 0);

        let long = [0u8; 254];
        let mut buf = [0u8; 300];
        let mut w = OptionWriter::new(&mut buf);
        assert!(matches!(w.push_raw(1, &long), Err(Error::Malformed(_))));
        w.push_raw(1, &long[..253]).unwrap();
        assert_eq!(w.as_bytes()[..2], [1, 255]);
    }

    #[test]
    fn config_packet_writer() {
        // Rebuild the client's IPCP Configure-Request option by option, as a Reject would
        // be built: copy the request's options in order.
        let request = CpPacket::new_checked(&IPCP_CONFREQ[..]).unwrap();
        let mut buf = [0u8; 64];
        let mut w = ConfigPacketWriter::new(&mut buf, Code::ConfigureRequest, 1).unwrap();
        for option in request.options() {
            w.push(&option.unwrap()).unwrap();
        }
        assert_eq!(w.options_len(), 12);
        assert_eq!(w.remaining(), 48);
        assert_eq!(w.finish(), 16);
        assert_eq!(&buf[..16], &IPCP_CONFREQ[..]);

        // The server's Configure-Reject of the VJ option (frame 41).
        let mut buf = [0u8; 10];
        let mut w = ConfigPacketWriter::new(&mut buf, Code::ConfigureReject, 1).unwrap();
        w.push(&request.options().next().unwrap().unwrap()).unwrap();
        assert_eq!(w.push_raw(3, &[0, 0, 0, 0]), Err(Error::BufferTooSmall));
        assert_eq!(w.finish(), 10);
        assert_eq!(buf, IPCP_CONFREJ);

        let mut tiny = [0u8; 3];
        assert_eq!(
            ConfigPacketWriter::new(&mut tiny, Code::ConfigureAck, 0).unwrap_err(),
            Error::BufferTooSmall
        );
        // An empty list is a 4-octet packet.
        let mut buf = [0xffu8; 4];
        let w = ConfigPacketWriter::new(&mut buf, Code::ConfigureAck, 9).unwrap();
        assert_eq!(w.finish(), 4);
        assert_eq!(buf, [0x02, 0x09, 0x00, 0x04]);
    }

    #[test]
    fn write_parts_never_overruns() {
        let mut out = [0u8; 3];
        write_parts(&mut out, &[&[1, 2], &[3, 4]]);
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(parts_len(&[&[1, 2], &[3]]), 3);
    }

    fn arb_raw_options() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
        proptest::collection::vec(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..=253)),
            0..8,
        )
    }

    proptest! {
        #[test]
        fn raw_options_round_trip(options in arb_raw_options()) {
            let mut buf = vec![0u8; 8 * 255];
            let mut w = OptionWriter::new(&mut buf);
            for (kind, data) in &options {
                w.push_raw(*kind, data).unwrap();
            }
            let list = w.into_bytes();
            let parsed: Vec<_> = OptionIter::new(list).collect::<Result<_>>().unwrap();
            let expected: Vec<_> = options
                .iter()
                .map(|(kind, data)| RawOption { kind: *kind, data })
                .collect();
            prop_assert_eq!(parsed, expected);
        }

        #[test]
        fn option_iter_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut iter = OptionIter::new(&bytes);
            let mut walked = 0usize;
            for raw in iter.by_ref().flatten() {
                walked += raw.data.len() + 2;
            }
            // Everything is either walked or left in rest().
            prop_assert_eq!(walked + iter.rest().len(), bytes.len());
        }

        #[test]
        fn packet_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let packet = CpPacket::new_unchecked(&bytes[..]);
            if let Ok(repr) = Repr::parse(&packet) {
                let _ = repr.to_string();
                let mut out = vec![0u8; repr.buffer_len()];
                repr.emit(&mut CpPacket::new_unchecked(&mut out[..])).unwrap();
                prop_assert_eq!(&out[..], &bytes[..out.len()]);
            }
        }
    }
}
