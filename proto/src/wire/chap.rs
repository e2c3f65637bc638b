//! CHAP, the Challenge-Handshake Authentication Protocol (RFC 1994 section 4, PPP protocol
//! 0xC223), and the layouts MS-CHAP puts inside it: MS-CHAPv1 (RFC 2433) and MS-CHAPv2
//! (RFC 2759).
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Code      |  Identifier   |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! Challenge/Response: | Value-Size | Value ... | Name ... (to Length) |
//! Success/Failure:    | Message ... (to Length) |
//! ```
//!
//! Length counts the header; bytes after Length are link padding and are ignored.
//!
//! The packet layer ([`Packet`], [`Repr`]) is algorithm-agnostic: the Value and Message are
//! bytes. The MS-CHAP types below give them meaning once the algorithm negotiated in LCP
//! ([`ChapAlgorithm`]) is known: [`MsChapV1Challenge`], [`MsChapV1Response`],
//! [`MsChapV2Challenge`], [`MsChapV2Response`] for the Value, and [`MsChapV2Success`],
//! [`MsChapV2Failure`], [`MsChapV1Failure`] for the Message text.

use super::cp::{self, CpPacket};
use super::{Error, Result};

enum_with_unknown! {
    /// CHAP packet codes (RFC 1994 section 4; RFC 2433 and RFC 2759 section 7 add
    /// the change-password codes).
    pub enum Code(u8) {
        /// The authenticator's challenge.
        Challenge = 1,
        /// The peer's answer to a challenge.
        Response = 2,
        /// Authentication succeeded.
        Success = 3,
        /// Authentication failed.
        Failure = 4,
        /// MS-CHAPv1 Change Password, version 1 (RFC 2433); obsolete.
        MsChapV1ChangePassword1 = 5,
        /// MS-CHAPv1 Change Password, version 2 (RFC 2433); obsolete.
        MsChapV1ChangePassword2 = 6,
        /// MS-CHAPv2 Change-Password (RFC 2759 section 7): the peer answers a Failure with
        /// E=648 (password expired) with a new, encrypted password.
        ChangePassword = 7,
    }
}

enum_with_unknown! {
    /// The algorithm octet that follows protocol 0xC223 in the LCP Authentication-Protocol
    /// option (RFC 1994 section 3, RFC 2433 "LCP Configuration", RFC 2759 section 2).
    pub enum ChapAlgorithm(u8) {
        /// CHAP with MD5 (RFC 1994).
        Md5 = 0x05,
        /// MS-CHAPv1 (RFC 2433).
        MsChapV1 = 0x80,
        /// MS-CHAPv2 (RFC 2759).
        MsChapV2 = 0x81,
    }
}

enum_with_unknown! {
    /// The E= error code of an MS-CHAP Failure message (RFC 2759 section 6, and RFC 2433's
    /// Failure Packet). Windows names them `ERROR_*`.
    pub enum MsChapErrorCode(u32) {
        /// 646, ERROR_RESTRICTED_LOGON_HOURS: not allowed to log on at this time.
        RestrictedLogonHours = 646,
        /// 647, ERROR_ACCT_DISABLED.
        AccountDisabled = 647,
        /// 648, ERROR_PASSWD_EXPIRED: the peer may answer with Change-Password.
        PasswordExpired = 648,
        /// 649, ERROR_NO_DIALIN_PERMISSION.
        NoDialinPermission = 649,
        /// 691, ERROR_AUTHENTICATION_FAILURE: wrong user name or password.
        AuthenticationFailure = 691,
        /// 709, ERROR_CHANGING_PASSWORD.
        ChangingPassword = 709,
    }
}

mod field {
    /// Challenge/Response, offsets in the body: Value-Size, then Value.
    pub const VALUE_SIZE: usize = 0;
    pub const VALUE: usize = 1;
}

/// Size of the Code, Identifier and Length header (the RFC 1661 §5 control packet header).
pub const HEADER_LEN: usize = cp::HEADER_LEN;

/// A read/write view of a CHAP packet.
///
/// The Value, Name and Message getters interpret the body whatever the code says; they
/// never panic on a buffer that passed [`check_len`](Packet::check_len) (a field that does
/// not fit reads as empty).
///
/// The header is PPP's control packet header, so the view wraps [`CpPacket`] for it.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    header: CpPacket<T>,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps a buffer without checking it.
    pub const fn new_unchecked(buffer: T) -> Packet<T> {
        Packet {
            header: CpPacket::new_unchecked(buffer),
        }
    }

    /// Wraps a buffer and checks it with [`check_len`](Packet::check_len).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the header and the lengths the body announces.
    ///
    /// * [`Error::Truncated`] if the buffer is shorter than the header or than Length;
    /// * [`Error::Malformed`] if Length is below the header size; for a Challenge or
    ///   Response, if Value-Size is missing or the Value runs past Length; for a
    ///   Change-Password, if the body is not exactly its 582 octets.
    ///
    /// A Value-Size of 0 passes: the algorithm's value type rejects the wrong size.
    pub fn check_len(&self) -> Result<()> {
        self.header.check_header("chap length")?;
        let data = self.data();
        match Code::from(self.code()) {
            Code::Challenge | Code::Response => {
                let value_size = *data
                    .first()
                    .ok_or(Error::Malformed("chap value-size missing"))?;
                if 1 + usize::from(value_size) > data.len() {
                    return Err(Error::Malformed("chap value-size"));
                }
            }
            Code::ChangePassword if data.len() != MsChapV2ChangePassword::DATA_LEN => {
                return Err(Error::Malformed("ms-chapv2 change-password length"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.header.into_inner()
    }

    /// The Code field, raw; see [`Code`].
    pub fn code(&self) -> u8 {
        self.header.code().into()
    }

    /// The Identifier field, which ties a Response to its Challenge and a Success or
    /// Failure to its Response.
    pub fn identifier(&self) -> u8 {
        self.header.identifier()
    }

    /// The Length field: header plus body, in octets.
    pub fn length(&self) -> u16 {
        self.header.length()
    }

    /// The body: the octets after the header, up to Length (padding excluded).
    pub fn data(&self) -> &[u8] {
        self.header.data_ref()
    }

    /// Challenge/Response: the Value-Size octet.
    pub fn value_size(&self) -> u8 {
        self.data().first().copied().unwrap_or(0)
    }

    /// Challenge/Response: the Value (the challenge, or the response to it).
    pub fn value(&self) -> &[u8] {
        value_of(self.data())
    }

    /// Challenge/Response: the Name (the sender's system or user name), to Length.
    pub fn name(&self) -> &[u8] {
        name_of(self.data())
    }

    /// Success/Failure: the Message, to Length. For MS-CHAP it is structured text, see
    /// [`MsChapV2Success`] and [`MsChapV2Failure`].
    pub fn message(&self) -> &[u8] {
        self.data()
    }
}

/// Setters. Like smoltcp's, they panic if the buffer is too short for the field; size the
/// buffer first (as [`Repr::emit`] does) and set Length and Value-Size before the fields
/// they delimit.
impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the Code field.
    pub fn set_code(&mut self, value: u8) {
        self.header.set_code(value.into());
    }

    /// Sets the Identifier field.
    pub fn set_identifier(&mut self, value: u8) {
        self.header.set_identifier(value);
    }

    /// Sets the Length field (header included).
    pub fn set_length(&mut self, value: u16) {
        self.header.set_length(value);
    }

    /// Challenge/Response: sets the Value-Size octet.
    pub fn set_value_size(&mut self, value: u8) {
        self.body_mut()[field::VALUE_SIZE] = value;
    }

    /// Challenge/Response: the Value, sized by Value-Size.
    pub fn value_mut(&mut self) -> &mut [u8] {
        let body = self.body_mut();
        let end = field::VALUE + usize::from(body[field::VALUE_SIZE]);
        &mut body[field::VALUE..end]
    }

    /// Challenge/Response: the Name, from after the Value to Length.
    pub fn name_mut(&mut self) -> &mut [u8] {
        let start = field::VALUE + usize::from(self.body_mut()[field::VALUE_SIZE]);
        &mut self.header.data_mut()[start..]
    }

    /// The body after the header, up to Length: the Message of a Success or Failure.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.header.data_mut()
    }

    // Value-Size locates the Value by itself, so those setters work before Length is set.
    fn body_mut(&mut self) -> &mut [u8] {
        &mut self.header.buffer_mut()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.header.as_ref()
    }
}

// Body accessors over plain slices, shared by the getters and by `Repr::parse` (where the
// result must borrow for the buffer's lifetime, not the packet's). They are total.

fn value_of(data: &[u8]) -> &[u8] {
    let size = usize::from(data.first().copied().unwrap_or(0));
    data.get(1..1 + size).unwrap_or(&[])
}

fn name_of(data: &[u8]) -> &[u8] {
    let size = usize::from(data.first().copied().unwrap_or(0));
    data.get(1 + size..).unwrap_or(&[])
}

/// A parsed CHAP packet. Values, names and messages are borrowed bytes.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Repr<'a> {
    /// Code 1. `name` identifies the authenticator.
    Challenge {
        identifier: u8,
        value: &'a [u8],
        name: &'a [u8],
    },
    /// Code 2. `name` is the peer's user name.
    Response {
        identifier: u8,
        value: &'a [u8],
        name: &'a [u8],
    },
    /// Code 3.
    Success { identifier: u8, message: &'a [u8] },
    /// Code 4.
    Failure { identifier: u8, message: &'a [u8] },
    /// Code 7, MS-CHAPv2 Change-Password. Parsed so it can be logged and refused.
    ChangePassword {
        identifier: u8,
        change_password: MsChapV2ChangePassword<'a>,
    },
    /// Any other code (unknown ones, and MS-CHAPv1's obsolete 5 and 6), kept with its body.
    /// Emitting writes `code` as given, even a code that has its own variant.
    Other {
        code: Code,
        identifier: u8,
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a packet (checking it with [`Packet::check_len`] first).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let data: &'a [u8] = packet.header.data();
        let identifier = packet.identifier();
        Ok(match Code::from(packet.code()) {
            Code::Challenge => Repr::Challenge {
                identifier,
                value: value_of(data),
                name: name_of(data),
            },
            Code::Response => Repr::Response {
                identifier,
                value: value_of(data),
                name: name_of(data),
            },
            Code::Success => Repr::Success {
                identifier,
                message: data,
            },
            Code::Failure => Repr::Failure {
                identifier,
                message: data,
            },
            Code::ChangePassword => Repr::ChangePassword {
                identifier,
                change_password: MsChapV2ChangePassword::parse(data)?,
            },
            code => Repr::Other {
                code,
                identifier,
                data,
            },
        })
    }

    /// The packet's code.
    pub fn code(&self) -> Code {
        match self {
            Repr::Challenge { .. } => Code::Challenge,
            Repr::Response { .. } => Code::Response,
            Repr::Success { .. } => Code::Success,
            Repr::Failure { .. } => Code::Failure,
            Repr::ChangePassword { .. } => Code::ChangePassword,
            Repr::Other { code, .. } => *code,
        }
    }

    /// The packet's identifier.
    pub fn identifier(&self) -> u8 {
        match self {
            Repr::Challenge { identifier, .. }
            | Repr::Response { identifier, .. }
            | Repr::Success { identifier, .. }
            | Repr::Failure { identifier, .. }
            | Repr::ChangePassword { identifier, .. }
            | Repr::Other { identifier, .. } => *identifier,
        }
    }

    /// Octets [`emit`](Repr::emit) writes: the header plus the body.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Repr::Challenge { value, name, .. } | Repr::Response { value, name, .. } => {
                    1 + value.len() + name.len()
                }
                Repr::Success { message, .. } | Repr::Failure { message, .. } => message.len(),
                Repr::ChangePassword { .. } => MsChapV2ChangePassword::DATA_LEN,
                Repr::Other { data, .. } => data.len(),
            }
    }

    /// Writes the packet, Length included, into the front of `packet`.
    ///
    /// Fails with [`Error::BufferTooSmall`] if the buffer is shorter than
    /// [`buffer_len`](Repr::buffer_len), and with [`Error::Malformed`] if a value is longer
    /// than 255 octets or the packet longer than 65535. Nothing is written on failure.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let value_size;
        let parts: [&[u8]; 3] = match *self {
            Repr::Challenge { value, name, .. } | Repr::Response { value, name, .. } => {
                value_size = [u8::try_from(value.len())
                    .map_err(|_| Error::Malformed("chap value longer than 255"))?];
                [&value_size, value, name]
            }
            Repr::Success { message, .. } | Repr::Failure { message, .. } => [message, &[], &[]],
            Repr::ChangePassword { .. } => [&[], &[], &[]],
            Repr::Other { data, .. } => [data, &[], &[]],
        };
        let data_len = self.buffer_len() - HEADER_LEN;
        let out = packet.header.emit_header_as(
            self.code().into(),
            self.identifier(),
            data_len,
            "chap length",
        )?;
        match self {
            Repr::ChangePassword {
                change_password, ..
            } => change_password.emit(out).map(|_| ()),
            _ => {
                cp::write_parts(out, &parts);
                Ok(())
            }
        }
    }
}

/// Reads a fixed-size array from the front of `bytes`, if it is long enough.
fn array_at<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes
        .get(at..at.checked_add(N)?)
        .and_then(|s| <[u8; N]>::try_from(s).ok())
}

fn array_ref_at<const N: usize>(bytes: &[u8], at: usize) -> Option<&[u8; N]> {
    bytes
        .get(at..at.checked_add(N)?)
        .and_then(|s| <&[u8; N]>::try_from(s).ok())
}

/// The Value of an MS-CHAPv1 Challenge: 8 random octets (RFC 2433, Challenge Packet).
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct MsChapV1Challenge(pub [u8; 8]);

impl MsChapV1Challenge {
    /// Value-Size of an MS-CHAPv1 Challenge.
    pub const VALUE_LEN: usize = 8;

    /// Reads a Challenge Value; any size but 8 is [`Error::Malformed`].
    pub fn parse(value: &[u8]) -> Result<Self> {
        <[u8; 8]>::try_from(value)
            .map(Self)
            .map_err(|_| Error::Malformed("ms-chapv1 challenge size"))
    }

    /// The Value octets, for [`Repr::Challenge`].
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

/// The Value of an MS-CHAPv2 Challenge: the 16-octet Authenticator Challenge
/// (RFC 2759 section 3).
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct MsChapV2Challenge(pub [u8; 16]);

impl MsChapV2Challenge {
    /// Value-Size of an MS-CHAPv2 Challenge.
    pub const VALUE_LEN: usize = 16;

    /// Reads a Challenge Value; any size but 16 is [`Error::Malformed`].
    pub fn parse(value: &[u8]) -> Result<Self> {
        <[u8; 16]>::try_from(value)
            .map(Self)
            .map_err(|_| Error::Malformed("ms-chapv2 challenge size"))
    }

    /// The Value octets, for [`Repr::Challenge`].
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

/// The Value of an MS-CHAPv1 Response (RFC 2433, Response Packet):
/// LM-Response (24) | NT-Response (24) | Flags (1).
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct MsChapV1Response {
    /// The LAN Manager compatible response; all zero when only the NT-Response is used.
    pub lm_response: [u8; 24],
    /// The Windows NT compatible response.
    pub nt_response: [u8; 24],
    /// 1 when the NT-Response is to be used; see [`Self::FLAG_USE_NT_RESPONSE`].
    pub flags: u8,
}

impl MsChapV1Response {
    /// Value-Size of an MS-CHAPv1 Response.
    pub const VALUE_LEN: usize = 49;
    /// The Flags value saying "use the NT-Response" (RFC 2433, Response Packet).
    pub const FLAG_USE_NT_RESPONSE: u8 = 1;

    /// Reads a Response Value; any size but 49 is [`Error::Malformed`].
    pub fn parse(value: &[u8]) -> Result<Self> {
        const WHAT: Error = Error::Malformed("ms-chapv1 response size");
        if value.len() != Self::VALUE_LEN {
            return Err(WHAT);
        }
        Ok(Self {
            lm_response: array_at(value, 0).ok_or(WHAT)?,
            nt_response: array_at(value, 24).ok_or(WHAT)?,
            flags: value.get(48).copied().ok_or(WHAT)?,
        })
    }

    /// Whether the peer asks for its NT-Response to be checked (the LM-Response is weak
    /// and modern peers zero it).
    pub fn use_nt_response(&self) -> bool {
        self.flags == Self::FLAG_USE_NT_RESPONSE
    }

    /// The Value octets, for [`Repr::Response`].
    pub fn to_bytes(&self) -> [u8; 49] {
        let mut out = [0u8; 49];
        out[..24].copy_from_slice(&self.lm_response);
        out[24..48].copy_from_slice(&self.nt_response);
        out[48] = self.flags;
        out
    }
}

/// The Value of an MS-CHAPv2 Response (RFC 2759 section 4):
/// Peer-Challenge (16) | Reserved (8, zero) | NT-Response (24) | Flags (1, zero).
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct MsChapV2Response {
    /// The peer's random challenge, an input to the NT-Response and the authenticator
    /// response.
    pub peer_challenge: [u8; 16],
    /// The peer's proof of the password.
    pub nt_response: [u8; 24],
    /// Reserved, zero in RFC 2759; kept as received.
    pub flags: u8,
}

impl MsChapV2Response {
    /// Value-Size of an MS-CHAPv2 Response.
    pub const VALUE_LEN: usize = 49;

    /// A Response with Flags zero.
    pub fn new(peer_challenge: [u8; 16], nt_response: [u8; 24]) -> Self {
        Self {
            peer_challenge,
            nt_response,
            flags: 0,
        }
    }

    /// Reads a Response Value; any size but 49 is [`Error::Malformed`]. The Reserved octets
    /// are not checked, as pppd does not check them.
    pub fn parse(value: &[u8]) -> Result<Self> {
        const WHAT: Error = Error::Malformed("ms-chapv2 response size");
        if value.len() != Self::VALUE_LEN {
            return Err(WHAT);
        }
        Ok(Self {
            peer_challenge: array_at(value, 0).ok_or(WHAT)?,
            nt_response: array_at(value, 24).ok_or(WHAT)?,
            flags: value.get(48).copied().ok_or(WHAT)?,
        })
    }

    /// The Value octets (Reserved zero), for [`Repr::Response`].
    pub fn to_bytes(&self) -> [u8; 49] {
        let mut out = [0u8; 49];
        out[..16].copy_from_slice(&self.peer_challenge);
        out[24..48].copy_from_slice(&self.nt_response);
        out[48] = self.flags;
        out
    }
}

/// The body of an MS-CHAPv2 Change-Password packet (RFC 2759 section 7):
/// Encrypted-Password (516) | Encrypted-Hash (16) | Peer-Challenge (16) | Reserved (8) |
/// NT-Response (24) | Flags (2).
///
/// xpptp refuses password changes; this exists so the packet can be recognised, logged and
/// answered with a Failure rather than treated as garbage.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct MsChapV2ChangePassword<'a> {
    /// The new password, encrypted with the old password's hash.
    pub encrypted_password: &'a [u8; 516],
    /// The old password's hash, encrypted with the new one's.
    pub encrypted_hash: &'a [u8; 16],
    /// As in the Response.
    pub peer_challenge: &'a [u8; 16],
    /// As in the Response, computed with the new password.
    pub nt_response: &'a [u8; 24],
    /// Reserved, zero.
    pub flags: u16,
}

impl<'a> MsChapV2ChangePassword<'a> {
    /// Size of the body after the CHAP header (Length is 586).
    pub const DATA_LEN: usize = 582;

    /// Reads the body of a code 7 packet; any size but 582 is [`Error::Malformed`].
    pub fn parse(data: &'a [u8]) -> Result<Self> {
        const WHAT: Error = Error::Malformed("ms-chapv2 change-password length");
        if data.len() != Self::DATA_LEN {
            return Err(WHAT);
        }
        let flags: [u8; 2] = array_at(data, 580).ok_or(WHAT)?;
        Ok(Self {
            encrypted_password: array_ref_at(data, 0).ok_or(WHAT)?,
            encrypted_hash: array_ref_at(data, 516).ok_or(WHAT)?,
            peer_challenge: array_ref_at(data, 532).ok_or(WHAT)?,
            nt_response: array_ref_at(data, 556).ok_or(WHAT)?,
            flags: u16::from_be_bytes(flags),
        })
    }

    /// Writes the 582-octet body (Reserved zero) into the front of `buf`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let out = buf.get_mut(..Self::DATA_LEN).ok_or(Error::BufferTooSmall)?;
        out[..516].copy_from_slice(self.encrypted_password);
        out[516..532].copy_from_slice(self.encrypted_hash);
        out[532..548].copy_from_slice(self.peer_challenge);
        out[548..556].fill(0);
        out[556..580].copy_from_slice(self.nt_response);
        out[580..582].copy_from_slice(&self.flags.to_be_bytes());
        Ok(Self::DATA_LEN)
    }
}

// ---- MS-CHAP message text ----------------------------------------------------------------

/// An octet as two uppercase hex digits, as MS-CHAP messages write them.
fn hex_upper(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0x0f)],
    ]
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes exactly `2 * N` hex digits of either case.
fn parse_hex<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        if let &[hi, lo] = pair {
            *byte = (hex_value(hi)? << 4) | hex_value(lo)?;
        }
    }
    Some(out)
}

/// Decodes a non-empty run of decimal digits, refusing overflow.
fn parse_decimal(text: &[u8]) -> Option<u32> {
    if text.is_empty() {
        return None;
    }
    text.iter().try_fold(0u32, |acc, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

fn decimal_len(value: u32) -> usize {
    let mut len = 1;
    let mut rest = value / 10;
    while rest != 0 {
        len += 1;
        rest /= 10;
    }
    len
}

/// Writes text into a caller buffer, failing instead of overrunning it.
struct TextWriter<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> TextWriter<'b> {
    fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(Error::BufferTooSmall)?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(Error::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn put_hex(&mut self, bytes: &[u8]) -> Result<()> {
        bytes.iter().try_for_each(|&b| self.put(&hex_upper(b)))
    }

    fn put_decimal(&mut self, value: u32) -> Result<()> {
        let mut digits = [0u8; 10];
        let mut at = digits.len();
        let mut rest = value;
        loop {
            at -= 1;
            // `rest % 10` is a single digit, so the cast cannot truncate.
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.put(&digits[at..])
    }
}

/// Length of `S=` and 40 hex digits, the authenticator response an MS-CHAPv2 Success
/// message starts with.
pub const AUTHENTICATOR_RESPONSE_TEXT_LEN: usize = 42;

/// The Message of an MS-CHAPv2 Success packet (RFC 2759 section 5):
/// `S=<40 hex digits> M=<text>`.
///
/// The peer must check the authenticator response (the S= value) before it trusts the
/// server: it proves the server knew the password too.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct MsChapV2Success<'a> {
    /// The 20-octet authenticator response, sent as 40 hex digits.
    pub authenticator_response: [u8; 20],
    /// The M= text, `None` when the message stops after the S= value.
    pub message: Option<&'a [u8]>,
}

impl<'a> MsChapV2Success<'a> {
    /// Parses the Message text.
    ///
    /// Accepts lowercase hex (the RFC asks for uppercase), a missing M= part, and `M=`
    /// right after the hex without the space, as pppd does. Anything else after the hex is
    /// [`Error::Malformed`].
    pub fn parse(text: &'a [u8]) -> Result<Self> {
        let (authenticator_response, rest) = Self::parse_authenticator_response(text)?;
        let message = if rest.is_empty() {
            None
        } else if let Some(m) = rest.strip_prefix(b" M=") {
            Some(m)
        } else if let Some(m) = rest.strip_prefix(b"M=") {
            Some(m)
        } else {
            return Err(Error::Malformed("ms-chapv2 success: text after S="));
        };
        Ok(Self {
            authenticator_response,
            message,
        })
    }

    /// Reads only the `S=<40 hex digits>` the text starts with (either case), returning the
    /// authenticator response and the rest of the text, unchecked. Enough for a peer to
    /// verify the server; [`parse`](Self::parse) also checks the rest.
    pub fn parse_authenticator_response(text: &'a [u8]) -> Result<([u8; 20], &'a [u8])> {
        let rest = text
            .strip_prefix(b"S=")
            .ok_or(Error::Malformed("ms-chapv2 success: no S="))?;
        let hex = rest
            .get(..40)
            .ok_or(Error::Malformed("ms-chapv2 success: short S="))?;
        let authenticator_response =
            parse_hex(hex).ok_or(Error::Malformed("ms-chapv2 success: bad S= hex"))?;
        Ok((authenticator_response, rest.get(40..).unwrap_or(&[])))
    }

    /// `S=` and the authenticator response as 40 uppercase hex digits: the start of what
    /// [`emit`](Self::emit) writes.
    pub fn authenticator_response_text(
        authenticator_response: &[u8; 20],
    ) -> [u8; AUTHENTICATOR_RESPONSE_TEXT_LEN] {
        let mut out = [0u8; AUTHENTICATOR_RESPONSE_TEXT_LEN];
        out[0] = b'S';
        out[1] = b'=';
        for (pair, &byte) in out[2..].chunks_exact_mut(2).zip(authenticator_response) {
            pair.copy_from_slice(&hex_upper(byte));
        }
        out
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        AUTHENTICATOR_RESPONSE_TEXT_LEN + self.message.map_or(0, |m| 3 + m.len())
    }

    /// Writes `S=<40 uppercase hex> M=<text>` (no ` M=` if `message` is `None`) into the
    /// front of `buf`, returning the length written.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        let mut w = TextWriter::new(buf);
        w.put(&Self::authenticator_response_text(
            &self.authenticator_response,
        ))?;
        if let Some(message) = self.message {
            w.put(b" M=")?;
            w.put(message)?;
        }
        Ok(w.pos)
    }
}

/// The Message of an MS-CHAP Failure packet:
/// `E=eeeeeeeeee R=r C=cccccccccccccccccccccccccccccccc V=vvvvvvvvvv M=<text>`.
///
/// `N` is the size of the C= challenge: use [`MsChapV2Failure`] (16, RFC 2759 section 6) or
/// [`MsChapV1Failure`] (8, RFC 2433 Failure Packet). When retry is allowed the peer answers the
/// new challenge C= (an MS-CHAPv1 Failure may omit C=; RFC 2433 then has the
/// peer derive the next challenge from the old one).
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct MsChapFailure<'a, const N: usize> {
    /// E=, a decimal error code.
    pub error: MsChapErrorCode,
    /// R=1: the peer may try again with new credentials.
    pub retry: bool,
    /// C=, the challenge for the retry, as `2 * N` hex digits.
    pub challenge: Option<[u8; N]>,
    /// V=, the password-change protocol version (3 from Windows, 0 from pppd).
    pub version: Option<u32>,
    /// M=, text for the user; runs to the end of the message.
    pub message: Option<&'a [u8]>,
}

/// An MS-CHAPv2 Failure message (RFC 2759 section 6), C= 16 octets.
pub type MsChapV2Failure<'a> = MsChapFailure<'a, 16>;

/// An MS-CHAPv1 Failure message (RFC 2433, Failure Packet), C= 8 octets.
pub type MsChapV1Failure<'a> = MsChapFailure<'a, 8>;

impl<'a, const N: usize> MsChapFailure<'a, N> {
    /// The V= value Windows sends: "version 3 of the password-change protocol".
    pub const VERSION_3: u32 = 3;

    /// Parses the Message text.
    ///
    /// Fields are separated by spaces and may come in any order; `M=` starts the free
    /// text, which runs to the end. E= is required. R= must be 0 or 1 (absent means 0);
    /// C= must be exactly `2 * N` hex digits of either case; E= and V= are decimal.
    /// Unknown fields are skipped; a repeated field is [`Error::Malformed`].
    pub fn parse(text: &'a [u8]) -> Result<Self> {
        let mut error = None;
        let mut retry = None;
        let mut challenge = None;
        let mut version = None;
        let mut message = None;
        let mut rest = text;
        loop {
            while let Some(tail) = rest.strip_prefix(b" ") {
                rest = tail;
            }
            if rest.is_empty() {
                break;
            }
            if let Some(m) = rest.strip_prefix(b"M=") {
                message = Some(m);
                break;
            }
            let end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
            let (token, tail) = rest.split_at_checked(end).unwrap_or((rest, &[]));
            rest = tail;
            let (key, value) = match token {
                [key, b'=', value @ ..] => (*key, value),
                _ => continue,
            };
            match key {
                b'E' => {
                    let code =
                        parse_decimal(value).ok_or(Error::Malformed("ms-chap failure: E="))?;
                    set_once(&mut error, MsChapErrorCode::from(code))?;
                }
                b'R' => {
                    let flag = match value {
                        b"0" => false,
                        b"1" => true,
                        _ => return Err(Error::Malformed("ms-chap failure: R=")),
                    };
                    set_once(&mut retry, flag)?;
                }
                b'C' => {
                    let c = parse_hex(value).ok_or(Error::Malformed("ms-chap failure: C="))?;
                    set_once(&mut challenge, c)?;
                }
                b'V' => {
                    let v = parse_decimal(value).ok_or(Error::Malformed("ms-chap failure: V="))?;
                    set_once(&mut version, v)?;
                }
                _ => {}
            }
        }
        Ok(Self {
            error: error.ok_or(Error::Malformed("ms-chap failure: no E="))?,
            retry: retry.unwrap_or(false),
            challenge,
            version,
            message,
        })
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        let error = decimal_len(self.error.into());
        // "E=" error " R=" r
        let mut len = 2 + error + 4;
        if self.challenge.is_some() {
            len += 3 + 2 * N;
        }
        if let Some(version) = self.version {
            len += 3 + decimal_len(version);
        }
        if let Some(message) = self.message {
            len += 3 + message.len();
        }
        len
    }

    /// Writes `E=<decimal> R=<0|1>`, then ` C=<uppercase hex>`, ` V=<decimal>` and
    /// ` M=<text>` for the fields present, into the front of `buf`; returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if buf.len() < self.buffer_len() {
            return Err(Error::BufferTooSmall);
        }
        let mut w = TextWriter::new(buf);
        w.put(b"E=")?;
        w.put_decimal(self.error.into())?;
        w.put(if self.retry { b" R=1" } else { b" R=0" })?;
        if let Some(challenge) = &self.challenge {
            w.put(b" C=")?;
            w.put_hex(challenge)?;
        }
        if let Some(version) = self.version {
            w.put(b" V=")?;
            w.put_decimal(version)?;
        }
        if let Some(message) = self.message {
            w.put(b" M=")?;
            w.put(message)?;
        }
        Ok(w.pos)
    }
}

fn set_once<V>(slot: &mut Option<V>, value: V) -> Result<()> {
    if slot.is_some() {
        return Err(Error::Malformed("ms-chap failure: repeated field"));
    }
    *slot = Some(value);
    Ok(())
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // The reference capture's MS-CHAPv2 exchange (Debian Poptop pptpd + pppd 2.4.9 server,
    // Debian pptp-linux + pppd client): Challenge (Name "pptpd"), Response (Name "pptpuser")
    // and Success, and the values inside them.
    use crate::testing::reference::chap::{
        CHALLENGE as CHALLENGE_BYTES, RESPONSE as RESPONSE_BYTES, SUCCESS,
        SUCCESS_MESSAGE as SUCCESS_TEXT,
    };
    use crate::testing::reference::mschap::{
        AUTHENTICATOR_CHALLENGE, AUTHENTICATOR_RESPONSE, NT_RESPONSE, PEER_CHALLENGE,
    };

    fn success_bytes() -> Vec<u8> {
        SUCCESS.to_vec()
    }

    #[test]
    fn test_deconstruct_challenge() {
        let packet = Packet::new_checked(&CHALLENGE_BYTES[..]).unwrap();
        assert_eq!(Code::from(packet.code()), Code::Challenge);
        assert_eq!(packet.identifier(), 0xfe);
        assert_eq!(packet.length(), 26);
        assert_eq!(packet.value_size(), 16);
        assert_eq!(packet.value(), &AUTHENTICATOR_CHALLENGE);
        assert_eq!(packet.name(), b"pptpd");
        assert_eq!(
            MsChapV2Challenge::parse(packet.value()),
            Ok(MsChapV2Challenge(AUTHENTICATOR_CHALLENGE))
        );
    }

    #[test]
    fn test_deconstruct_response() {
        // Padding after Length is not part of the Name.
        let mut bytes = RESPONSE_BYTES.to_vec();
        bytes.push(0x00);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Code::from(packet.code()), Code::Response);
        assert_eq!(packet.identifier(), 0xfe);
        assert_eq!(packet.value_size(), 49);
        assert_eq!(packet.name(), b"pptpuser");
        let response = MsChapV2Response::parse(packet.value()).unwrap();
        assert_eq!(response.peer_challenge, PEER_CHALLENGE);
        assert_eq!(response.nt_response, NT_RESPONSE);
        assert_eq!(response.flags, 0);
        assert_eq!(response.to_bytes(), packet.value());
        assert_eq!(response, MsChapV2Response::new(PEER_CHALLENGE, NT_RESPONSE));
    }

    #[test]
    fn test_deconstruct_success() {
        let bytes = success_bytes();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(Code::from(packet.code()), Code::Success);
        assert_eq!(packet.message(), SUCCESS_TEXT);
        let success = MsChapV2Success::parse(packet.message()).unwrap();
        assert_eq!(success.authenticator_response, AUTHENTICATOR_RESPONSE);
        assert_eq!(success.message, Some(&b"Access granted"[..]));
    }

    #[test]
    fn authenticator_response_alone() {
        let parsed = MsChapV2Success::parse_authenticator_response(SUCCESS_TEXT);
        assert_eq!(
            parsed,
            Ok((AUTHENTICATOR_RESPONSE, &b" M=Access granted"[..]))
        );
        // Unlike parse, what follows the hex is left to the caller.
        let mut odd = SUCCESS_TEXT[..42].to_vec();
        odd.push(b'X');
        let parsed = MsChapV2Success::parse_authenticator_response(&odd);
        assert_eq!(parsed, Ok((AUTHENTICATOR_RESPONSE, &b"X"[..])));
        assert!(MsChapV2Success::parse(&odd).is_err());
        assert_eq!(
            MsChapV2Success::parse_authenticator_response(&SUCCESS_TEXT[..41]),
            Err(Error::Malformed("ms-chapv2 success: short S="))
        );
        assert_eq!(
            MsChapV2Success::authenticator_response_text(&AUTHENTICATOR_RESPONSE),
            SUCCESS_TEXT[..42]
        );
    }

    #[test]
    fn test_construct_challenge() {
        let mut bytes = [0xa5u8; 26];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_code(Code::Challenge.into());
        packet.set_identifier(0xfe);
        packet.set_length(26);
        packet.set_value_size(16);
        packet.value_mut().copy_from_slice(&AUTHENTICATOR_CHALLENGE);
        packet.name_mut().copy_from_slice(b"pptpd");
        assert_eq!(bytes, CHALLENGE_BYTES);
    }

    #[test]
    fn test_construct_success() {
        let mut bytes = vec![0u8; 4 + SUCCESS_TEXT.len()];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_code(Code::Success.into());
        packet.set_identifier(0xfe);
        packet.set_length(0x3f);
        packet.data_mut().copy_from_slice(SUCCESS_TEXT);
        assert_eq!(bytes, success_bytes());
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&CHALLENGE_BYTES[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr::Challenge {
                identifier: 0xfe,
                value: &AUTHENTICATOR_CHALLENGE,
                name: b"pptpd",
            })
        );
        let packet = Packet::new_checked(&RESPONSE_BYTES[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr::Response {
                identifier: 0xfe,
                value: &RESPONSE_BYTES[5..54],
                name: b"pptpuser",
            })
        );
        let bytes = success_bytes();
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr::Success {
                identifier: 0xfe,
                message: SUCCESS_TEXT,
            })
        );
    }

    #[test]
    fn test_emit() {
        let challenge = MsChapV2Challenge(AUTHENTICATOR_CHALLENGE);
        let response = MsChapV2Response::new(PEER_CHALLENGE, NT_RESPONSE).to_bytes();
        let success = MsChapV2Success {
            authenticator_response: AUTHENTICATOR_RESPONSE,
            message: Some(b"Access granted"),
        };
        let mut text = [0u8; 64];
        let text_len = success.emit(&mut text).unwrap();
        let success_bytes = success_bytes();
        for (repr, expected) in [
            (
                Repr::Challenge {
                    identifier: 0xfe,
                    value: challenge.as_bytes(),
                    name: b"pptpd",
                },
                &CHALLENGE_BYTES[..],
            ),
            (
                Repr::Response {
                    identifier: 0xfe,
                    value: &response,
                    name: b"pptpuser",
                },
                &RESPONSE_BYTES[..],
            ),
            (
                Repr::Success {
                    identifier: 0xfe,
                    message: &text[..text_len],
                },
                &success_bytes[..],
            ),
        ] {
            assert_eq!(repr.buffer_len(), expected.len());
            let mut bytes = vec![0xa5u8; repr.buffer_len() + 3];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]))
                .unwrap();
            assert_eq!(&bytes[..expected.len()], expected);
            assert_eq!(&bytes[expected.len()..], &[0xa5; 3]);
        }
    }

    #[test]
    fn test_emit_errors() {
        let repr = Repr::Challenge {
            identifier: 1,
            value: &AUTHENTICATOR_CHALLENGE,
            name: b"pptpd",
        };
        let mut small = [0u8; 25];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut small[..])),
            Err(Error::BufferTooSmall)
        );
        let long = [0u8; 256];
        let repr = Repr::Response {
            identifier: 1,
            value: &long,
            name: b"",
        };
        let mut out = vec![0u8; repr.buffer_len()];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut out[..])),
            Err(Error::Malformed("chap value longer than 255"))
        );
        assert_eq!(out, vec![0u8; out.len()]);
        let huge = vec![0u8; 65535];
        let repr = Repr::Failure {
            identifier: 1,
            message: &huge,
        };
        let mut out = vec![0u8; repr.buffer_len()];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut out[..])),
            Err(Error::Malformed("chap length"))
        );
    }

    #[test]
    fn test_truncated_and_malformed() {
        assert_eq!(
            Packet::new_checked(&CHALLENGE_BYTES[..3]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&CHALLENGE_BYTES[..25]).unwrap_err(),
            Error::Truncated
        );
        assert_eq!(
            Packet::new_checked(&[0x03, 0x01, 0x00, 0x02][..]).unwrap_err(),
            Error::Malformed("chap length")
        );
        // A Challenge without Value-Size.
        assert_eq!(
            Packet::new_checked(&[0x01, 0x01, 0x00, 0x04][..]).unwrap_err(),
            Error::Malformed("chap value-size missing")
        );
        // Value-Size past Length.
        let mut bytes = CHALLENGE_BYTES;
        bytes[4] = 22;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Malformed("chap value-size")
        );
        // Value-Size exactly to Length leaves an empty Name.
        bytes[4] = 21;
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.name(), b"");
        assert_eq!(packet.value().len(), 21);
        // Success and Failure may be empty.
        let packet = Packet::new_checked(&[0x04, 0x01, 0x00, 0x04][..]).unwrap();
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr::Failure {
                identifier: 1,
                message: b""
            })
        );
        // Repr::parse checks an unchecked packet.
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&CHALLENGE_BYTES[..20])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn test_other_codes_kept() {
        let bytes = [0x05, 0x02, 0x00, 0x06, 0x12, 0x34];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr::Other {
                code: Code::MsChapV1ChangePassword1,
                identifier: 2,
                data: &[0x12, 0x34]
            }
        );
        let mut out = [0u8; 6];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, bytes);
        let packet = Packet::new_checked(&[0x2a, 0x02, 0x00, 0x04][..]).unwrap();
        assert_eq!(Repr::parse(&packet).unwrap().code(), Code::Unknown(0x2a));
    }

    fn change_password_bytes() -> Vec<u8> {
        let mut bytes = vec![0x07, 0x09, 0x02, 0x4a];
        bytes.extend((0..516).map(|i| (i % 251) as u8)); // Encrypted-Password
        bytes.extend([0x11; 16]); // Encrypted-Hash
        bytes.extend(PEER_CHALLENGE);
        bytes.extend([0; 8]); // Reserved
        bytes.extend(NT_RESPONSE);
        bytes.extend([0x00, 0x00]); // Flags
        bytes
    }

    #[test]
    fn test_change_password() {
        let bytes = change_password_bytes();
        assert_eq!(bytes.len(), 586);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        let Repr::ChangePassword {
            identifier,
            change_password,
        } = repr
        else {
            panic!("not a Change-Password: {repr:?}");
        };
        assert_eq!(identifier, 9);
        assert_eq!(&change_password.encrypted_password[..], &bytes[4..520]);
        assert_eq!(change_password.encrypted_hash, &[0x11; 16]);
        assert_eq!(change_password.peer_challenge, &PEER_CHALLENGE);
        assert_eq!(change_password.nt_response, &NT_RESPONSE);
        assert_eq!(change_password.flags, 0);
        assert_eq!(repr.buffer_len(), 586);
        let mut out = vec![0xffu8; 586];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, bytes);

        // One octet short (Length 585).
        let mut short = bytes.clone();
        short[3] = 0x49;
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            Error::Malformed("ms-chapv2 change-password length")
        );
    }

    #[test]
    fn test_ms_chap_values() {
        assert_eq!(
            MsChapV2Challenge::parse(&AUTHENTICATOR_CHALLENGE[..15]),
            Err(Error::Malformed("ms-chapv2 challenge size"))
        );
        assert_eq!(
            MsChapV1Challenge::parse(&AUTHENTICATOR_CHALLENGE[..8]),
            Ok(MsChapV1Challenge([
                0xf7, 0x96, 0x7a, 0xa8, 0x86, 0xaf, 0x0b, 0xca
            ]))
        );
        assert_eq!(
            MsChapV1Challenge::parse(&AUTHENTICATOR_CHALLENGE),
            Err(Error::Malformed("ms-chapv1 challenge size"))
        );
        assert_eq!(
            MsChapV2Response::parse(&RESPONSE_BYTES[5..53]),
            Err(Error::Malformed("ms-chapv2 response size"))
        );
        assert_eq!(
            MsChapV2Response::parse(&RESPONSE_BYTES[4..54]),
            Err(Error::Malformed("ms-chapv2 response size"))
        );

        let mut v1 = [0u8; 49];
        v1[24..48].copy_from_slice(&NT_RESPONSE);
        v1[48] = 1;
        let response = MsChapV1Response::parse(&v1).unwrap();
        assert_eq!(response.lm_response, [0; 24]);
        assert_eq!(response.nt_response, NT_RESPONSE);
        assert!(response.use_nt_response());
        assert_eq!(response.to_bytes(), v1);
        assert_eq!(
            MsChapV1Response::parse(&v1[..48]),
            Err(Error::Malformed("ms-chapv1 response size"))
        );
    }

    #[test]
    fn test_algorithm_and_error_numbers() {
        assert_eq!(ChapAlgorithm::from(0x81), ChapAlgorithm::MsChapV2);
        assert_eq!(ChapAlgorithm::from(0x80), ChapAlgorithm::MsChapV1);
        assert_eq!(u8::from(ChapAlgorithm::Md5), 5);
        assert_eq!(ChapAlgorithm::from(0x82), ChapAlgorithm::Unknown(0x82));
        assert_eq!(
            MsChapErrorCode::from(691),
            MsChapErrorCode::AuthenticationFailure
        );
        assert_eq!(u32::from(MsChapErrorCode::ChangingPassword), 709);
        assert_eq!(u32::from(MsChapErrorCode::RestrictedLogonHours), 646);
        assert_eq!(MsChapErrorCode::from(648), MsChapErrorCode::PasswordExpired);
    }

    #[test]
    fn test_success_message_variants() {
        let lower = b"S=4352b5a132fad7e810f692128124c8a10a860cc9 M=Access granted";
        let parsed = MsChapV2Success::parse(lower).unwrap();
        assert_eq!(parsed.authenticator_response, AUTHENTICATOR_RESPONSE);
        // Emitted uppercase, whatever was received.
        let mut out = [0u8; 80];
        let n = parsed.emit(&mut out).unwrap();
        assert_eq!(&out[..n], SUCCESS_TEXT);
        assert_eq!(n, parsed.buffer_len());

        let bare = MsChapV2Success::parse(&SUCCESS_TEXT[..42]).unwrap();
        assert_eq!(bare.message, None);
        assert_eq!(bare.buffer_len(), 42);
        let no_space = b"S=4352B5A132FAD7E810F692128124C8A10A860CC9M=ok";
        assert_eq!(
            MsChapV2Success::parse(no_space).unwrap().message,
            Some(&b"ok"[..])
        );
        let empty_m = MsChapV2Success::parse(&SUCCESS_TEXT[..45]).unwrap();
        assert_eq!(empty_m.message, Some(&b""[..]));

        assert_eq!(
            MsChapV2Success::parse(b"4352B5A132FAD7E810F692128124C8A10A860CC9"),
            Err(Error::Malformed("ms-chapv2 success: no S="))
        );
        assert_eq!(
            MsChapV2Success::parse(&SUCCESS_TEXT[..41]),
            Err(Error::Malformed("ms-chapv2 success: short S="))
        );
        assert_eq!(
            MsChapV2Success::parse(b"S=4352B5A132FAD7E810F692128124C8A10A860CCG"),
            Err(Error::Malformed("ms-chapv2 success: bad S= hex"))
        );
        assert_eq!(
            MsChapV2Success::parse(b"S=4352B5A132FAD7E810F692128124C8A10A860CC9 X=1"),
            Err(Error::Malformed("ms-chapv2 success: text after S="))
        );
        assert_eq!(parsed.emit(&mut out[..58]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn test_failure_message_windows() {
        let text = b"E=691 R=1 C=0123456789ABCDEF0123456789ABCDEF V=3 M=Authentication failure";
        let failure = MsChapV2Failure::parse(text).unwrap();
        assert_eq!(failure.error, MsChapErrorCode::AuthenticationFailure);
        assert!(failure.retry);
        assert_eq!(
            failure.challenge,
            Some([
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                0xcd, 0xef
            ])
        );
        assert_eq!(failure.version, Some(MsChapV2Failure::VERSION_3));
        assert_eq!(failure.message, Some(&b"Authentication failure"[..]));
        let mut out = [0u8; 128];
        let n = failure.emit(&mut out).unwrap();
        assert_eq!(&out[..n], text);
        assert_eq!(n, failure.buffer_len());
        assert_eq!(failure.emit(&mut out[..n - 1]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn test_failure_message_pppd() {
        // pppd writes the challenge in lowercase and V=0.
        let text = b"E=649 R=0 C=f7967aa886af0bca41d008b417b730ad V=0 M=Access denied";
        let failure = MsChapV2Failure::parse(text).unwrap();
        assert_eq!(failure.error, MsChapErrorCode::NoDialinPermission);
        assert!(!failure.retry);
        assert_eq!(failure.challenge, Some(AUTHENTICATOR_CHALLENGE));
        assert_eq!(failure.version, Some(0));
        assert_eq!(failure.message, Some(&b"Access denied"[..]));
    }

    #[test]
    fn test_failure_message_v1() {
        let failure = MsChapV1Failure::parse(b"E=691 R=1").unwrap();
        assert_eq!(
            failure,
            MsChapV1Failure {
                error: MsChapErrorCode::AuthenticationFailure,
                retry: true,
                challenge: None,
                version: None,
                message: None,
            }
        );
        let mut out = [0u8; 9];
        assert_eq!(failure.emit(&mut out), Ok(9));
        assert_eq!(&out, b"E=691 R=1");

        let with_c = MsChapV1Failure::parse(b"E=646 R=0 C=F7967AA886AF0BCA").unwrap();
        assert_eq!(with_c.error, MsChapErrorCode::RestrictedLogonHours);
        assert_eq!(
            with_c.challenge,
            Some([0xf7, 0x96, 0x7a, 0xa8, 0x86, 0xaf, 0x0b, 0xca])
        );
        // A v2-sized challenge is not a v1 challenge.
        assert_eq!(
            MsChapV1Failure::parse(b"E=691 R=1 C=0123456789ABCDEF0123456789ABCDEF"),
            Err(Error::Malformed("ms-chap failure: C="))
        );
    }

    #[test]
    fn test_failure_message_malformed() {
        for (text, error) in [
            (&b""[..], "ms-chap failure: no E="),
            (b"R=1 M=no error code", "ms-chap failure: no E="),
            (b"E= R=1", "ms-chap failure: E="),
            (b"E=69x R=1", "ms-chap failure: E="),
            (b"E=4294967296 R=1", "ms-chap failure: E="),
            (b"E=691 R=2", "ms-chap failure: R="),
            (b"E=691 R=1 C=0123", "ms-chap failure: C="),
            (b"E=691 R=1 V=three", "ms-chap failure: V="),
            (b"E=691 E=646", "ms-chap failure: repeated field"),
        ] {
            assert_eq!(
                MsChapV2Failure::parse(text),
                Err(Error::Malformed(error)),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        // The largest code, unknown fields skipped, extra spaces tolerated, and an M= text
        // that itself holds "E=" and spaces.
        let failure = MsChapV2Failure::parse(b"E=4294967295  X=1 R=0 M=E=1  R=1").unwrap();
        assert_eq!(failure.error, MsChapErrorCode::Unknown(u32::MAX));
        assert_eq!(failure.message, Some(&b"E=1  R=1"[..]));
    }

    /// E=, R=, C=, V= and M= of a Failure message, owned.
    type FailureFields<const N: usize> = (u32, bool, Option<[u8; N]>, Option<u32>, Option<Vec<u8>>);

    fn failure_strategy<const N: usize>() -> impl Strategy<Value = FailureFields<N>>
    where
        [u8; N]: proptest::arbitrary::Arbitrary,
    {
        (
            any::<u32>(),
            any::<bool>(),
            proptest::option::of(any::<[u8; N]>()),
            proptest::option::of(any::<u32>()),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        )
    }

    proptest! {
        #[test]
        fn prop_success_round_trip(
            authenticator_response in any::<[u8; 20]>(),
            message in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        ) {
            let success = MsChapV2Success { authenticator_response, message: message.as_deref() };
            let mut out = vec![0u8; success.buffer_len()];
            prop_assert_eq!(success.emit(&mut out), Ok(out.len()));
            prop_assert_eq!(MsChapV2Success::parse(&out), Ok(success));
        }

        #[test]
        fn prop_v2_failure_round_trip(
            (error, retry, challenge, version, message) in failure_strategy::<16>()
        ) {
            let failure = MsChapV2Failure {
                error: error.into(), retry, challenge, version, message: message.as_deref(),
            };
            let mut out = vec![0u8; failure.buffer_len()];
            prop_assert_eq!(failure.emit(&mut out), Ok(out.len()));
            prop_assert_eq!(MsChapV2Failure::parse(&out), Ok(failure));
        }

        #[test]
        fn prop_v1_failure_round_trip(
            (error, retry, challenge, version, message) in failure_strategy::<8>()
        ) {
            let failure = MsChapV1Failure {
                error: error.into(), retry, challenge, version, message: message.as_deref(),
            };
            let mut out = vec![0u8; failure.buffer_len()];
            prop_assert_eq!(failure.emit(&mut out), Ok(out.len()));
            prop_assert_eq!(MsChapV1Failure::parse(&out), Ok(failure));
        }

        #[test]
        fn prop_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
            let _ = MsChapV2Success::parse(&bytes);
            let _ = MsChapV2Failure::parse(&bytes);
            let _ = MsChapV1Failure::parse(&bytes);
            let _ = MsChapV1Response::parse(&bytes);
            let _ = MsChapV2Response::parse(&bytes);
            let _ = MsChapV2ChangePassword::parse(&bytes);
            let packet = Packet::new_unchecked(&bytes[..]);
            if packet.check_len().is_ok() {
                let _ = (packet.value(), packet.name(), packet.message(), packet.value_size());
            }
            if let Ok(repr) = Repr::parse(&packet) {
                // Whatever parses re-emits to the same bytes, up to Length.
                let mut out = vec![0u8; repr.buffer_len()];
                prop_assert!(repr.emit(&mut Packet::new_unchecked(&mut out[..])).is_ok());
                prop_assert_eq!(&out[..], &bytes[..out.len()]);
            }
        }

        #[test]
        fn prop_text_parsers_never_panic(
            bytes in proptest::collection::vec(
                proptest::sample::select(&b"ESRCVM= 0123456789abcdefABCDEFxz"[..]), 0..80)
        ) {
            // Bytes drawn from the message alphabet reach deeper into the parsers.
            let _ = MsChapV2Success::parse(&bytes);
            let _ = MsChapV2Failure::parse(&bytes);
            let _ = MsChapV1Failure::parse(&bytes);
        }
    }
}
