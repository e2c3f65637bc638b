//! PPTP control messages (RFC 2637 section 2), carried on TCP port 1723.
//!
//! * [`ControlHeader`]: zero-copy view of the 12-octet header every control message starts
//!   with (Length, PPTP Message Type, Magic Cookie, Control Message Type, Reserved0).
//! * [`Message`]: all fifteen control messages as owned, `Copy` structs with named fields,
//!   plus [`UnknownMessage`] for control message types this crate does not know.
//!   `Message::parse(&[u8])`, `buffer_len()`, `emit(&mut [u8])`.
//! * [`StreamDecoder`]: cuts messages out of the TCP byte stream, whatever the segmentation,
//!   with a fixed buffer of [`MAX_MESSAGE_LEN`] octets and no allocation.
//!
//! What a receiver must reject, and how hard:
//!
//! * A Length below [`HEADER_LEN`] or above [`MAX_MESSAGE_LEN`], or a Magic Cookie other
//!   than [`MAGIC_COOKIE`]: the stream cannot be framed any more. The stream decoder reports
//!   this once as [`DecodeError::Framing`] and the connection must be closed (the RFC's
//!   Bad-Format error, section 2.16).
//! * A known Control Message Type whose Length is not that type's fixed length
//!   ([`ControlMessageType::message_len`]), a management message (PPTP Message Type 2, never
//!   specified by the RFC) or another PPTP Message Type: one message is bad but the stream is
//!   still framed, so the decoder reports [`DecodeError::Rejected`] and goes on.
//! * An unknown Control Message Type with a sane Length is not an error at all: it parses to
//!   [`Message::Unknown`], so the control connection can log it and carry on.
//!
//! Reserved fields (Reserved0 and each message's ReservedN) MUST be 0 on the wire, and the
//! RFC lets a receiver answer Bad-Value when they are not. We are lenient: parsing ignores
//! them (Poptop and pptp-linux do not check them either) and emitting writes zeros.
//! [`ControlHeader::reserved0`] still shows Reserved0 to a caller that wants to be strict.

mod fixed_str;
mod message;
mod stream;

pub use fixed_str::FixedStr;
pub use message::{
    CallClearRequest, CallDisconnectNotify, EchoReply, EchoRequest, IncomingCallConnected,
    IncomingCallReply, IncomingCallRequest, Message, OutgoingCallReply, OutgoingCallRequest,
    SetLinkInfo, StartControlConnectionReply, StartControlConnectionRequest,
    StopControlConnectionReply, StopControlConnectionRequest, UnknownMessage, WanErrorNotify,
};
pub use stream::{DecodeError, RejectedMessage, StreamDecoder};

use core::fmt;

use crate::wire::{Error, Result};

/// The well-known TCP port of the control connection (RFC 2637 section 1.3).
pub const TCP_PORT: u16 = 1723;

/// The Magic Cookie every control message carries (RFC 2637 section 1.4): a fixed value
/// that lets a receiver check it is still in step with the TCP stream.
pub const MAGIC_COOKIE: u32 = 0x1A2B_3C4D;

/// Protocol Version 1.0, the only one there is (major version in the high octet).
pub const PROTOCOL_VERSION: u16 = 0x0100;

/// Length of the header common to every control message.
pub const HEADER_LEN: usize = 12;

/// Length of the longest control message, Incoming-Call-Request (220 octets). The stream
/// decoder treats a longer Length as lost framing.
pub const MAX_MESSAGE_LEN: usize = 220;

enum_with_unknown! {
    /// PPTP Message Type (RFC 2637 section 1.4).
    pub enum MessageType(u16) {
        /// Control Message: everything section 2 defines.
        Control = 1,
        /// Management Message: reserved by the RFC and never specified.
        Management = 2,
    }
}

enum_with_unknown! {
    /// Control Message Type (RFC 2637 section 1.4).
    pub enum ControlMessageType(u16) {
        /// Start-Control-Connection-Request (SCCRQ), section 2.1.
        StartControlConnectionRequest = 1,
        /// Start-Control-Connection-Reply (SCCRP), section 2.2.
        StartControlConnectionReply = 2,
        /// Stop-Control-Connection-Request (StopCCRQ), section 2.3.
        StopControlConnectionRequest = 3,
        /// Stop-Control-Connection-Reply (StopCCRP), section 2.4.
        StopControlConnectionReply = 4,
        /// Echo-Request, section 2.5.
        EchoRequest = 5,
        /// Echo-Reply, section 2.6.
        EchoReply = 6,
        /// Outgoing-Call-Request (OCRQ), section 2.7.
        OutgoingCallRequest = 7,
        /// Outgoing-Call-Reply (OCRP), section 2.8.
        OutgoingCallReply = 8,
        /// Incoming-Call-Request (ICRQ), section 2.9.
        IncomingCallRequest = 9,
        /// Incoming-Call-Reply (ICRP), section 2.10.
        IncomingCallReply = 10,
        /// Incoming-Call-Connected (ICCN), section 2.11.
        IncomingCallConnected = 11,
        /// Call-Clear-Request (CCRQ), section 2.12.
        CallClearRequest = 12,
        /// Call-Disconnect-Notify (CDN), section 2.13.
        CallDisconnectNotify = 13,
        /// WAN-Error-Notify (WEN), section 2.14.
        WanErrorNotify = 14,
        /// Set-Link-Info (SLI), section 2.15.
        SetLinkInfo = 15,
    }
}

impl ControlMessageType {
    /// The exact total length (header included) of a message of this type, or `None` for a
    /// type this crate does not know. Each length is the sum of the field layout in RFC 2637
    /// section 2 (Wireshark's packet-pptp.c agrees).
    pub const fn message_len(self) -> Option<usize> {
        use ControlMessageType::*;
        Some(match self {
            StartControlConnectionRequest | StartControlConnectionReply => 156,
            StopControlConnectionRequest | StopControlConnectionReply | EchoRequest => 16,
            EchoReply => 20,
            OutgoingCallRequest => 168,
            OutgoingCallReply => 32,
            IncomingCallRequest => 220,
            IncomingCallReply => 24,
            IncomingCallConnected => 28,
            CallClearRequest => 16,
            CallDisconnectNotify => 148,
            WanErrorNotify => 40,
            SetLinkInfo => 24,
            Unknown(_) => return None,
        })
    }

    /// The RFC's name of the message, for logs.
    pub const fn name(self) -> &'static str {
        use ControlMessageType::*;
        match self {
            StartControlConnectionRequest => "Start-Control-Connection-Request",
            StartControlConnectionReply => "Start-Control-Connection-Reply",
            StopControlConnectionRequest => "Stop-Control-Connection-Request",
            StopControlConnectionReply => "Stop-Control-Connection-Reply",
            EchoRequest => "Echo-Request",
            EchoReply => "Echo-Reply",
            OutgoingCallRequest => "Outgoing-Call-Request",
            OutgoingCallReply => "Outgoing-Call-Reply",
            IncomingCallRequest => "Incoming-Call-Request",
            IncomingCallReply => "Incoming-Call-Reply",
            IncomingCallConnected => "Incoming-Call-Connected",
            CallClearRequest => "Call-Clear-Request",
            CallDisconnectNotify => "Call-Disconnect-Notify",
            WanErrorNotify => "WAN-Error-Notify",
            SetLinkInfo => "Set-Link-Info",
            Unknown(_) => "unknown control message",
        }
    }
}

impl fmt::Display for ControlMessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlMessageType::Unknown(value) => write!(f, "control message type {value}"),
            known => f.write_str(known.name()),
        }
    }
}

enum_with_unknown! {
    /// General Error Code (RFC 2637 section 2.16): the detail behind a "General Error"
    /// result code, 0 otherwise.
    pub enum ErrorCode(u8) {
        /// 0 (None).
        NoError = 0,
        /// 1 (Not-Connected): no control connection exists yet for this PAC-PNS pair.
        NotConnected = 1,
        /// 2 (Bad-Format): Length is wrong or Magic Cookie value is incorrect.
        BadFormat = 2,
        /// 3 (Bad-Value): a field is out of range or a reserved field is non-zero.
        BadValue = 3,
        /// 4 (No-Resource): insufficient resources to handle this command now.
        NoResource = 4,
        /// 5 (Bad-Call ID): the Call ID is invalid in this context.
        BadCallId = 5,
        /// 6 (PAC-Error): a generic vendor-specific error occurred in the PAC.
        PacError = 6,
    }
}

enum_with_unknown! {
    /// Result Code of a Start-Control-Connection-Reply (RFC 2637 section 2.2).
    pub enum StartResult(u8) {
        /// 1: successful channel establishment.
        Success = 1,
        /// 2: general error, see the Error Code.
        GeneralError = 2,
        /// 3: command channel already exists.
        ChannelExists = 3,
        /// 4: requester is not authorized to establish a command channel.
        NotAuthorized = 4,
        /// 5: the requester's protocol version is not supported.
        BadProtocolVersion = 5,
    }
}

enum_with_unknown! {
    /// Reason of a Stop-Control-Connection-Request (RFC 2637 section 2.3).
    pub enum StopReason(u8) {
        /// 1 (None): general request to clear the control connection.
        GeneralRequest = 1,
        /// 2 (Stop-Protocol): cannot support the peer's version of the protocol.
        StopProtocol = 2,
        /// 3 (Stop-Local-Shutdown): the requester is being shut down.
        LocalShutdown = 3,
    }
}

enum_with_unknown! {
    /// Result Code of a Stop-Control-Connection-Reply (RFC 2637 section 2.4).
    pub enum StopResult(u8) {
        /// 1: control connection closed.
        Ok = 1,
        /// 2: control connection not closed, see the Error Code.
        GeneralError = 2,
    }
}

enum_with_unknown! {
    /// Result Code of an Echo-Reply (RFC 2637 section 2.6).
    pub enum EchoResult(u8) {
        /// 1: the Echo-Reply is valid.
        Ok = 1,
        /// 2: Echo-Request not accepted, see the Error Code.
        GeneralError = 2,
    }
}

enum_with_unknown! {
    /// Result Code of an Outgoing-Call-Reply (RFC 2637 section 2.8).
    pub enum OutgoingCallResult(u8) {
        /// 1: call established with no errors.
        Connected = 1,
        /// 2: call not established, see the Error Code.
        GeneralError = 2,
        /// 3: call failed for lack of carrier.
        NoCarrier = 3,
        /// 4: call failed on a busy signal.
        Busy = 4,
        /// 5: call failed for lack of a dial tone.
        NoDialTone = 5,
        /// 6: call not established within the time allotted by the PAC.
        TimeOut = 6,
        /// 7: the call was administratively prohibited.
        DoNotAccept = 7,
    }
}

enum_with_unknown! {
    /// Result Code of an Incoming-Call-Reply (RFC 2637 section 2.10).
    pub enum IncomingCallResult(u8) {
        /// 1 (Connect): the PAC should answer the incoming call.
        Connect = 1,
        /// 2: the PAC should not answer, see the Error Code.
        GeneralError = 2,
        /// 3: the PAC should not accept the incoming call.
        DoNotAccept = 3,
    }
}

enum_with_unknown! {
    /// Result Code of a Call-Disconnect-Notify (RFC 2637 section 2.13). The RFC and
    /// Wireshark number these 1 to 4.
    pub enum DisconnectResult(u8) {
        /// 1: call disconnected due to loss of carrier.
        LostCarrier = 1,
        /// 2: call disconnected for the reason in the Error Code.
        GeneralError = 2,
        /// 3: call disconnected for administrative reasons.
        AdminShutdown = 3,
        /// 4: call disconnected because of a Call-Clear-Request.
        Request = 4,
    }
}

enum_with_unknown! {
    /// Bearer Type of an Outgoing-Call-Request, Call Bearer Type of an
    /// Incoming-Call-Request (RFC 2637 sections 2.7, 2.9).
    pub enum BearerType(u32) {
        /// 1: analog channel.
        Analog = 1,
        /// 2: digital channel.
        Digital = 2,
        /// 3: any type of channel (Outgoing-Call-Request only).
        Any = 3,
    }
}

enum_with_unknown! {
    /// Framing Type of an Outgoing-Call-Request or Incoming-Call-Connected
    /// (RFC 2637 sections 2.7, 2.11).
    pub enum FramingType(u32) {
        /// 1: asynchronous framing.
        Async = 1,
        /// 2: synchronous framing.
        Sync = 2,
        /// 3: either type of framing (Outgoing-Call-Request only).
        Any = 3,
    }
}

/// A 32-bit set of capability flags. Unknown bits are kept, never an error.
macro_rules! capability_flags {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $( $(#[$flag_attr:meta])* const $flag:ident = $bit:expr; )+
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(pub u32);

        impl $name {
            $( $(#[$flag_attr])* pub const $flag: $name = $name($bit); )+

            /// No capability.
            pub const NONE: $name = $name(0);

            /// The raw value, unknown bits included.
            pub const fn bits(self) -> u32 {
                self.0
            }

            /// Whether every bit of `other` is set here.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }
        }

        impl ::core::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, other: $name) -> $name {
                $name(self.0 | other.0)
            }
        }

        impl ::core::ops::BitOrAssign for $name {
            fn bitor_assign(&mut self, other: $name) {
                self.0 |= other.0;
            }
        }

        impl ::core::convert::From<u32> for $name {
            fn from(bits: u32) -> $name {
                $name(bits)
            }
        }

        impl ::core::convert::From<$name> for u32 {
            fn from(flags: $name) -> u32 {
                flags.0
            }
        }
    };
}

capability_flags! {
    /// Framing Capabilities of a Start-Control-Connection-Request/Reply
    /// (RFC 2637 sections 2.1, 2.2). pptp-linux sends `ASYNC | SYNC`, Poptop sends none.
    pub struct FramingCapabilities {
        /// Asynchronous framing supported.
        const ASYNC = 1;
        /// Synchronous framing supported.
        const SYNC = 2;
    }
}

capability_flags! {
    /// Bearer Capabilities of a Start-Control-Connection-Request/Reply
    /// (RFC 2637 sections 2.1, 2.2).
    pub struct BearerCapabilities {
        /// Analog access supported.
        const ANALOG = 1;
        /// Digital access supported.
        const DIGITAL = 2;
    }
}

mod field {
    use core::ops::Range;

    pub const LENGTH: Range<usize> = 0..2;
    pub const MESSAGE_TYPE: Range<usize> = 2..4;
    pub const MAGIC_COOKIE: Range<usize> = 4..8;
    pub const CONTROL_MESSAGE_TYPE: Range<usize> = 8..10;
    pub const RESERVED0: Range<usize> = 10..12;
    pub const BODY: usize = 12;
}

/// A read/write view of the header of one PPTP control message (RFC 2637 section 1.4).
///
/// The header fields need only [`HEADER_LEN`] octets; [`body`](Self::body) needs the whole
/// message, which [`check_len`](Self::check_len) verifies. Framing rules (cookie, maximum
/// length) are [`check_framing`](Self::check_framing)'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ControlHeader<T> {
    /// Wraps a buffer without checking it: getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> ControlHeader<T> {
        ControlHeader { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<ControlHeader<T>> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// Checks that the buffer holds the header and the whole message the Length field
    /// announces: `Truncated` if it is shorter, `Malformed` if Length is below the header
    /// size. Octets after Length are allowed (on a stream they are the next message).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let announced = usize::from(self.length());
        if announced < HEADER_LEN {
            return Err(Error::Malformed("PPTP length below header size"));
        }
        if len < announced {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Checks what keeps a TCP stream in step, on the header alone: a Length of
    /// [`HEADER_LEN`]..=[`MAX_MESSAGE_LEN`] and the Magic Cookie. Returns the Length.
    /// Any error here means the stream is lost and the connection must be closed.
    ///
    /// Needs [`HEADER_LEN`] octets (`Truncated` otherwise), not the whole message.
    pub fn check_framing(&self) -> Result<usize> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let announced = usize::from(self.length());
        if announced < HEADER_LEN {
            return Err(Error::Malformed("PPTP length below header size"));
        }
        if announced > MAX_MESSAGE_LEN {
            return Err(Error::Malformed("PPTP length above longest message"));
        }
        if self.magic_cookie() != MAGIC_COOKIE {
            return Err(Error::Malformed("PPTP magic cookie"));
        }
        Ok(announced)
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn read_u16(&self, range: core::ops::Range<usize>) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([data[range.start], data[range.start + 1]])
    }

    /// Length: total octets of the message, header included.
    pub fn length(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// PPTP Message Type.
    pub fn message_type(&self) -> MessageType {
        MessageType::from(self.read_u16(field::MESSAGE_TYPE))
    }

    /// Magic Cookie, as received.
    pub fn magic_cookie(&self) -> u32 {
        let data = self.buffer.as_ref();
        let c = field::MAGIC_COOKIE.start;
        u32::from_be_bytes([data[c], data[c + 1], data[c + 2], data[c + 3]])
    }

    /// Control Message Type.
    pub fn control_message_type(&self) -> ControlMessageType {
        ControlMessageType::from(self.read_u16(field::CONTROL_MESSAGE_TYPE))
    }

    /// Reserved0, which MUST be 0 (parsing does not insist).
    pub fn reserved0(&self) -> u16 {
        self.read_u16(field::RESERVED0)
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> ControlHeader<&'a T> {
    /// The message after the header, up to Length. Needs [`check_len`](Self::check_len).
    pub fn body(&self) -> &'a [u8] {
        let end = usize::from(self.length());
        &self.buffer.as_ref()[field::BODY..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ControlHeader<T> {
    fn write_u16(&mut self, range: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[range].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets Length.
    pub fn set_length(&mut self, value: u16) {
        self.write_u16(field::LENGTH, value)
    }

    /// Sets PPTP Message Type.
    pub fn set_message_type(&mut self, value: MessageType) {
        self.write_u16(field::MESSAGE_TYPE, value.into())
    }

    /// Sets Magic Cookie; use [`MAGIC_COOKIE`] unless testing a peer's checks.
    pub fn set_magic_cookie(&mut self, value: u32) {
        self.buffer.as_mut()[field::MAGIC_COOKIE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets Control Message Type.
    pub fn set_control_message_type(&mut self, value: ControlMessageType) {
        self.write_u16(field::CONTROL_MESSAGE_TYPE, value.into())
    }

    /// Sets Reserved0.
    pub fn set_reserved0(&mut self, value: u16) {
        self.write_u16(field::RESERVED0, value)
    }

    /// The message after the header, up to Length, for writing. Needs
    /// [`check_len`](Self::check_len).
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.length());
        &mut self.buffer.as_mut()[field::BODY..end]
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// Start of the Echo-Request in `message::test`: Length 16, Control Message, cookie,
    /// type 5, Reserved0, then Identifier 0x01020304.
    static ECHO_REQUEST: [u8; 16] = [
        0x00, 0x10, 0x00, 0x01, 0x1a, 0x2b, 0x3c, 0x4d, 0x00, 0x05, 0x00, 0x00, 0x01, 0x02, 0x03,
        0x04,
    ];

    #[test]
    fn deconstruct() {
        let header = ControlHeader::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(header.length(), 16);
        assert_eq!(header.message_type(), MessageType::Control);
        assert_eq!(header.magic_cookie(), MAGIC_COOKIE);
        assert_eq!(
            header.control_message_type(),
            ControlMessageType::EchoRequest
        );
        assert_eq!(header.reserved0(), 0);
        assert_eq!(header.body(), &[1, 2, 3, 4]);
        assert_eq!(header.check_framing(), Ok(16));
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 16];
        let mut header = ControlHeader::new_unchecked(&mut bytes[..]);
        header.set_length(16);
        header.set_message_type(MessageType::Control);
        header.set_magic_cookie(MAGIC_COOKIE);
        header.set_control_message_type(ControlMessageType::EchoRequest);
        header.set_reserved0(0);
        header.body_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(bytes, ECHO_REQUEST);
    }

    #[test]
    fn check_len() {
        for len in 0..HEADER_LEN {
            assert_eq!(
                ControlHeader::new_checked(&ECHO_REQUEST[..len]).err(),
                Some(Error::Truncated)
            );
        }
        for len in HEADER_LEN..16 {
            assert_eq!(
                ControlHeader::new_checked(&ECHO_REQUEST[..len]).err(),
                Some(Error::Truncated)
            );
        }
        // Trailing octets belong to the next message.
        let mut longer = [0u8; 20];
        longer[..16].copy_from_slice(&ECHO_REQUEST);
        let header = ControlHeader::new_checked(&longer[..]).unwrap();
        assert_eq!(header.body(), &[1, 2, 3, 4]);

        let mut short = ECHO_REQUEST;
        short[1] = 11;
        assert!(matches!(
            ControlHeader::new_checked(&short[..]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn check_framing() {
        let header = |len: u16, cookie: u32| {
            let mut bytes = ECHO_REQUEST;
            let mut view = ControlHeader::new_unchecked(&mut bytes[..]);
            view.set_length(len);
            view.set_magic_cookie(cookie);
            ControlHeader::new_unchecked(bytes).check_framing()
        };
        assert_eq!(header(12, MAGIC_COOKIE), Ok(12));
        assert_eq!(header(220, MAGIC_COOKIE), Ok(220));
        assert!(matches!(header(11, MAGIC_COOKIE), Err(Error::Malformed(_))));
        assert!(matches!(header(0, MAGIC_COOKIE), Err(Error::Malformed(_))));
        assert!(matches!(
            header(221, MAGIC_COOKIE),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            header(0xffff, MAGIC_COOKIE),
            Err(Error::Malformed(_))
        ));
        assert_eq!(
            header(16, 0x1a2b3c4c),
            Err(Error::Malformed("PPTP magic cookie"))
        );
        assert_eq!(
            ControlHeader::new_unchecked(&ECHO_REQUEST[..11]).check_framing(),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn message_lengths_match_rfc_layouts() {
        // Header (12) plus each section 2 layout, summed field by field.
        let expected: [(u16, usize); 15] = [
            (1, 12 + 2 + 2 + 4 + 4 + 2 + 2 + 64 + 64),
            (2, 12 + 2 + 1 + 1 + 4 + 4 + 2 + 2 + 64 + 64),
            (3, 12 + 1 + 1 + 2),
            (4, 12 + 1 + 1 + 2),
            (5, 12 + 4),
            (6, 12 + 4 + 1 + 1 + 2),
            (7, 12 + 2 + 2 + 4 + 4 + 4 + 4 + 2 + 2 + 2 + 2 + 64 + 64),
            (8, 12 + 2 + 2 + 1 + 1 + 2 + 4 + 2 + 2 + 4),
            (9, 12 + 2 + 2 + 4 + 4 + 2 + 2 + 64 + 64 + 64),
            (10, 12 + 2 + 2 + 1 + 1 + 2 + 2 + 2),
            (11, 12 + 2 + 2 + 4 + 2 + 2 + 4),
            (12, 12 + 2 + 2),
            (13, 12 + 2 + 1 + 1 + 2 + 2 + 128),
            (14, 12 + 2 + 2 + 6 * 4),
            (15, 12 + 2 + 2 + 4 + 4),
        ];
        let task = [
            156, 156, 16, 16, 16, 20, 168, 32, 220, 24, 28, 16, 148, 40, 24,
        ];
        for ((ty, sum), len) in expected.into_iter().zip(task) {
            assert_eq!(sum, len);
            assert_eq!(ControlMessageType::from(ty).message_len(), Some(len));
        }
        assert_eq!(ControlMessageType::Unknown(16).message_len(), None);
        assert_eq!(
            expected.iter().map(|&(_, len)| len).max(),
            Some(MAX_MESSAGE_LEN)
        );
    }

    #[test]
    fn names() {
        assert_eq!(
            ControlMessageType::OutgoingCallRequest.to_string(),
            "Outgoing-Call-Request"
        );
        assert_eq!(
            ControlMessageType::Unknown(99).to_string(),
            "control message type 99"
        );
    }

    #[test]
    fn capability_flags() {
        let caps = FramingCapabilities::ASYNC | FramingCapabilities::SYNC;
        assert_eq!(caps.bits(), 3);
        assert!(caps.contains(FramingCapabilities::SYNC));
        assert!(!FramingCapabilities::ASYNC.contains(FramingCapabilities::SYNC));
        assert!(BearerCapabilities::from(0x8000_0001).contains(BearerCapabilities::ANALOG));
        assert_eq!(u32::from(BearerCapabilities::DIGITAL), 2);
    }
}
