//! PAP, the Password Authentication Protocol (RFC 1334 section 2, PPP protocol 0xC023).
//!
//! ```text
//!  0                   1                   2                   3
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Code      |  Identifier   |            Length             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! Authenticate-Request: | Peer-ID Length | Peer-ID ... | Passwd-Length | Password ... |
//! Authenticate-Ack/Nak: | Msg-Length | Message ... |
//! ```
//!
//! Length counts the header; bytes after Length are link padding and are ignored.

use super::cp::{self, CpPacket};
use super::{Error, Result};

enum_with_unknown! {
    /// PAP packet codes (RFC 1334 section 2.2).
    pub enum Code(u8) {
        /// The peer sends its name and password.
        AuthenticateRequest = 1,
        /// The authenticator accepts them.
        AuthenticateAck = 2,
        /// The authenticator refuses them.
        AuthenticateNak = 3,
    }
}

/// Size of the Code, Identifier and Length header (the RFC 1661 §5 control packet header).
pub const HEADER_LEN: usize = cp::HEADER_LEN;

/// A read/write view of a PAP packet.
///
/// The body fields are at offsets that depend on earlier length bytes; their getters never
/// panic on a buffer that passed [`check_len`](Packet::check_len) (a field that does not fit
/// reads as empty), so asking for the peer-id of an Authenticate-Ack is harmless.
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
    /// * [`Error::Malformed`] if Length is below the header size, or (for a Request) the
    ///   Peer-ID or Password runs past Length, or (for an Ack/Nak) the Message does.
    ///
    /// An Ack or Nak with Length 4 (no Msg-Length octet) is accepted as an empty message,
    /// as pppd does; unknown codes are checked as far as the header only.
    pub fn check_len(&self) -> Result<()> {
        self.header.check_header("pap length")?;
        let data = self.data();
        match Code::from(self.code()) {
            Code::AuthenticateRequest => {
                let peer_id_len =
                    usize::from(*data.first().ok_or(Error::Malformed("pap peer-id length"))?);
                let password_len_at = 1 + peer_id_len;
                let password_len = usize::from(
                    *data
                        .get(password_len_at)
                        .ok_or(Error::Malformed("pap peer-id length"))?,
                );
                if password_len_at + 1 + password_len > data.len() {
                    return Err(Error::Malformed("pap passwd-length"));
                }
            }
            Code::AuthenticateAck | Code::AuthenticateNak => {
                if let Some(&msg_len) = data.first()
                    && 1 + usize::from(msg_len) > data.len()
                {
                    return Err(Error::Malformed("pap msg-length"));
                }
            }
            Code::Unknown(_) => {}
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

    /// The Identifier field, which matches an Ack/Nak to its Request.
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

    /// Authenticate-Request: the Peer-ID Length octet.
    pub fn peer_id_len(&self) -> u8 {
        byte_at(self.data(), 0)
    }

    /// Authenticate-Request: the Peer-ID (the user name).
    pub fn peer_id(&self) -> &[u8] {
        request_peer_id(self.data())
    }

    /// Authenticate-Request: the Passwd-Length octet.
    pub fn password_len(&self) -> u8 {
        byte_at(self.data(), 1 + usize::from(self.peer_id_len()))
    }

    /// Authenticate-Request: the Password, in clear text.
    pub fn password(&self) -> &[u8] {
        request_password(self.data())
    }

    /// Authenticate-Ack/Nak: the Msg-Length octet (0 when absent).
    pub fn message_len(&self) -> u8 {
        byte_at(self.data(), 0)
    }

    /// Authenticate-Ack/Nak: the Message, human-readable text.
    pub fn message(&self) -> &[u8] {
        counted(self.data(), 0)
    }
}

/// Setters. Like smoltcp's, they panic if the buffer is too short for the field; size the
/// buffer first (as [`Repr::emit`] does) and set the length octets before the fields they
/// locate.
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

    /// Authenticate-Request: sets the Peer-ID Length octet.
    pub fn set_peer_id_len(&mut self, value: u8) {
        self.body_mut()[0] = value;
    }

    /// Authenticate-Request: the Peer-ID, sized by Peer-ID Length.
    pub fn peer_id_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.body_mut()[0]);
        &mut self.body_mut()[1..1 + len]
    }

    /// Authenticate-Request: sets the Passwd-Length octet (after Peer-ID).
    pub fn set_password_len(&mut self, value: u8) {
        let at = 1 + usize::from(self.body_mut()[0]);
        self.body_mut()[at] = value;
    }

    /// Authenticate-Request: the Password, sized by Passwd-Length.
    pub fn password_mut(&mut self) -> &mut [u8] {
        let body = self.body_mut();
        let at = 1 + usize::from(body[0]);
        let len = usize::from(body[at]);
        &mut body[at + 1..at + 1 + len]
    }

    /// Authenticate-Ack/Nak: sets the Msg-Length octet.
    pub fn set_message_len(&mut self, value: u8) {
        self.body_mut()[0] = value;
    }

    /// Authenticate-Ack/Nak: the Message, sized by Msg-Length.
    pub fn message_mut(&mut self) -> &mut [u8] {
        let body = self.body_mut();
        let len = usize::from(body[0]);
        &mut body[1..1 + len]
    }

    /// The body after the header, up to Length, for codes this module does not know.
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.header.data_mut()
    }

    // The setters locate fields by the length octets in the buffer itself, not through
    // Length, so that they work before Length is set.
    fn body_mut(&mut self) -> &mut [u8] {
        &mut self.header.buffer_mut()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.header.as_ref()
    }
}

/// A parsed PAP packet. Strings are borrowed as raw bytes: PAP does not say which charset.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Repr<'a> {
    /// Code 1: the peer's credentials.
    AuthenticateRequest {
        identifier: u8,
        peer_id: &'a [u8],
        password: &'a [u8],
    },
    /// Code 2: accepted, with an optional text for the user.
    AuthenticateAck { identifier: u8, message: &'a [u8] },
    /// Code 3: refused, with an optional text for the user.
    AuthenticateNak { identifier: u8, message: &'a [u8] },
    /// Any other code, kept with its body so the caller can log or drop it (PAP has no
    /// Code-Reject).
    Other {
        code: Code,
        identifier: u8,
        data: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses a packet that passed [`Packet::check_len`] (it checks again).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Packet<&'a T>) -> Result<Repr<'a>> {
        packet.check_len()?;
        let data: &'a [u8] = packet.header.data();
        let identifier = packet.identifier();
        Ok(match Code::from(packet.code()) {
            Code::AuthenticateRequest => Repr::AuthenticateRequest {
                identifier,
                peer_id: request_peer_id(data),
                password: request_password(data),
            },
            Code::AuthenticateAck => Repr::AuthenticateAck {
                identifier,
                message: counted(data, 0),
            },
            Code::AuthenticateNak => Repr::AuthenticateNak {
                identifier,
                message: counted(data, 0),
            },
            code @ Code::Unknown(_) => Repr::Other {
                code,
                identifier,
                data,
            },
        })
    }

    /// The packet's code.
    pub fn code(&self) -> Code {
        match self {
            Repr::AuthenticateRequest { .. } => Code::AuthenticateRequest,
            Repr::AuthenticateAck { .. } => Code::AuthenticateAck,
            Repr::AuthenticateNak { .. } => Code::AuthenticateNak,
            Repr::Other { code, .. } => *code,
        }
    }

    /// The packet's identifier.
    pub fn identifier(&self) -> u8 {
        match self {
            Repr::AuthenticateRequest { identifier, .. }
            | Repr::AuthenticateAck { identifier, .. }
            | Repr::AuthenticateNak { identifier, .. }
            | Repr::Other { identifier, .. } => *identifier,
        }
    }

    /// Octets [`emit`](Repr::emit) writes: the header plus the body.
    pub fn buffer_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Repr::AuthenticateRequest {
                    peer_id, password, ..
                } => 2 + peer_id.len() + password.len(),
                Repr::AuthenticateAck { message, .. } | Repr::AuthenticateNak { message, .. } => {
                    1 + message.len()
                }
                Repr::Other { data, .. } => data.len(),
            }
    }

    /// Writes the packet, Length included, into the front of `packet`.
    ///
    /// Fails with [`Error::BufferTooSmall`] if the buffer is shorter than
    /// [`buffer_len`](Repr::buffer_len), and with [`Error::Malformed`] if a peer-id,
    /// password or message is longer than its one-octet length field can say, or the
    /// whole packet longer than 65535 octets. Nothing is written on failure.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut Packet<&mut T>,
    ) -> Result<()> {
        let octet = |s: &[u8], what| u8::try_from(s.len()).map_err(|_| Error::Malformed(what));
        let (first_len, second_len);
        let parts: [&[u8]; 4] = match *self {
            Repr::AuthenticateRequest {
                peer_id, password, ..
            } => {
                first_len = [octet(peer_id, "pap peer-id longer than 255")?];
                second_len = [octet(password, "pap password longer than 255")?];
                [&first_len, peer_id, &second_len, password]
            }
            Repr::AuthenticateAck { message, .. } | Repr::AuthenticateNak { message, .. } => {
                first_len = [octet(message, "pap message longer than 255")?];
                [&first_len, message, &[], &[]]
            }
            Repr::Other { data, .. } => [data, &[], &[], &[]],
        };
        let out = packet.header.emit_header_as(
            self.code().into(),
            self.identifier(),
            cp::parts_len(&parts),
            "pap length",
        )?;
        cp::write_parts(out, &parts);
        Ok(())
    }
}

// Body accessors over plain slices, shared by the getters and by `Repr::parse` (where the
// result must borrow for the buffer's lifetime, not the packet's). Out-of-range reads give 0
// or an empty slice, so they are total on any input.

fn byte_at(data: &[u8], at: usize) -> u8 {
    data.get(at).copied().unwrap_or(0)
}

/// The string whose length octet is at `at` and whose bytes follow it.
fn counted(data: &[u8], at: usize) -> &[u8] {
    let len = usize::from(byte_at(data, at));
    data.get(at + 1..at + 1 + len).unwrap_or(&[])
}

fn request_peer_id(data: &[u8]) -> &[u8] {
    counted(data, 0)
}

fn request_password(data: &[u8]) -> &[u8] {
    counted(data, 1 + usize::from(byte_at(data, 0)))
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // The reference capture negotiates MS-CHAPv2 only, so these are built by hand from
    // RFC 1334 section 2.2.
    static REQUEST_BYTES: [u8; 14] = [
        0x01, 0x07, 0x00, 0x0e, // Code 1, Identifier 7, Length 14
        0x04, b'u', b's', b'e', b'r', // Peer-ID Length 4, "user"
        0x04, b'p', b'a', b's', b's', // Passwd-Length 4, "pass"
    ];
    static ACK_BYTES: [u8; 13] = [
        0x02, 0x07, 0x00, 0x0d, 0x08, b'L', b'o', b'g', b'i', b'n', b' ', b'o', b'k',
    ];
    static NAK_BYTES: [u8; 14] = [
        0x03, 0x07, 0x00, 0x0e, 0x09, b'B', b'a', b'd', b' ', b'l', b'o', b'g', b'i', b'n',
    ];

    fn request_repr() -> Repr<'static> {
        Repr::AuthenticateRequest {
            identifier: 7,
            peer_id: b"user",
            password: b"pass",
        }
    }

    #[test]
    fn test_deconstruct_request() {
        // Trailing link padding must not be read as body.
        let mut bytes = REQUEST_BYTES.to_vec();
        bytes.extend_from_slice(&[0xaa, 0xbb]);
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.code(), 1);
        assert_eq!(Code::from(packet.code()), Code::AuthenticateRequest);
        assert_eq!(packet.identifier(), 7);
        assert_eq!(packet.length(), 14);
        assert_eq!(packet.data(), &REQUEST_BYTES[4..]);
        assert_eq!(packet.peer_id_len(), 4);
        assert_eq!(packet.peer_id(), b"user");
        assert_eq!(packet.password_len(), 4);
        assert_eq!(packet.password(), b"pass");
    }

    #[test]
    fn test_deconstruct_nak() {
        let packet = Packet::new_checked(&NAK_BYTES[..]).unwrap();
        assert_eq!(Code::from(packet.code()), Code::AuthenticateNak);
        assert_eq!(packet.message_len(), 9);
        assert_eq!(packet.message(), b"Bad login");
    }

    #[test]
    fn test_construct_request() {
        let mut bytes = [0xffu8; 14];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_code(Code::AuthenticateRequest.into());
        packet.set_identifier(7);
        packet.set_length(14);
        packet.set_peer_id_len(4);
        packet.peer_id_mut().copy_from_slice(b"user");
        packet.set_password_len(4);
        packet.password_mut().copy_from_slice(b"pass");
        assert_eq!(bytes, REQUEST_BYTES);
    }

    #[test]
    fn test_construct_ack() {
        let mut bytes = [0u8; 13];
        let mut packet = Packet::new_unchecked(&mut bytes[..]);
        packet.set_code(Code::AuthenticateAck.into());
        packet.set_identifier(7);
        packet.set_length(13);
        packet.set_message_len(8);
        packet.message_mut().copy_from_slice(b"Login ok");
        assert_eq!(bytes, ACK_BYTES);
    }

    #[test]
    fn test_parse() {
        let packet = Packet::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(Repr::parse(&packet), Ok(request_repr()));
        let packet = Packet::new_checked(&ACK_BYTES[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr::AuthenticateAck {
                identifier: 7,
                message: b"Login ok"
            })
        );
        let packet = Packet::new_checked(&NAK_BYTES[..]).unwrap();
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr::AuthenticateNak {
                identifier: 7,
                message: b"Bad login"
            })
        );
    }

    #[test]
    fn test_emit() {
        for (repr, expected) in [
            (request_repr(), &REQUEST_BYTES[..]),
            (
                Repr::AuthenticateAck {
                    identifier: 7,
                    message: b"Login ok",
                },
                &ACK_BYTES[..],
            ),
            (
                Repr::AuthenticateNak {
                    identifier: 7,
                    message: b"Bad login",
                },
                &NAK_BYTES[..],
            ),
        ] {
            assert_eq!(repr.buffer_len(), expected.len());
            let mut bytes = vec![0xa5u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..]))
                .unwrap();
            assert_eq!(bytes, expected);
        }
    }

    #[test]
    fn test_ack_without_msg_length() {
        // pppd accepts an Ack whose Length stops at the header.
        let bytes = [0x02, 0x09, 0x00, 0x04];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.message(), b"");
        assert_eq!(
            Repr::parse(&packet),
            Ok(Repr::AuthenticateAck {
                identifier: 9,
                message: b""
            })
        );
    }

    #[test]
    fn test_unknown_code_kept() {
        let bytes = [0x09, 0x01, 0x00, 0x06, 0xde, 0xad];
        let packet = Packet::new_checked(&bytes[..]).unwrap();
        let repr = Repr::parse(&packet).unwrap();
        assert_eq!(
            repr,
            Repr::Other {
                code: Code::Unknown(9),
                identifier: 1,
                data: &[0xde, 0xad]
            }
        );
        let mut out = [0u8; 6];
        repr.emit(&mut Packet::new_unchecked(&mut out[..])).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn test_truncated_and_malformed() {
        assert_eq!(
            Packet::new_checked(&REQUEST_BYTES[..3]).unwrap_err(),
            Error::Truncated
        );
        // Length beyond the buffer.
        assert_eq!(
            Packet::new_checked(&REQUEST_BYTES[..13]).unwrap_err(),
            Error::Truncated
        );
        // Length below the header.
        assert_eq!(
            Packet::new_checked(&[0x02, 0x01, 0x00, 0x03][..]).unwrap_err(),
            Error::Malformed("pap length")
        );
        // Passwd-Length runs past Length (Length 13 cuts the password short).
        let mut bytes = REQUEST_BYTES;
        bytes[3] = 13;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Malformed("pap passwd-length")
        );
        // Peer-ID Length leaves no room for Passwd-Length.
        let mut bytes = REQUEST_BYTES;
        bytes[4] = 9;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Malformed("pap peer-id length")
        );
        // A Request with an empty body.
        assert_eq!(
            Packet::new_checked(&[0x01, 0x01, 0x00, 0x04][..]).unwrap_err(),
            Error::Malformed("pap peer-id length")
        );
        // Msg-Length runs past Length.
        let mut bytes = NAK_BYTES;
        bytes[4] = 10;
        assert_eq!(
            Packet::new_checked(&bytes[..]).unwrap_err(),
            Error::Malformed("pap msg-length")
        );
        // Repr::parse checks even an unchecked packet.
        assert_eq!(
            Repr::parse(&Packet::new_unchecked(&bytes[..])),
            Err(Error::Malformed("pap msg-length"))
        );
    }

    #[test]
    fn test_emit_errors() {
        let mut small = [0u8; 13];
        assert_eq!(
            request_repr().emit(&mut Packet::new_unchecked(&mut small[..])),
            Err(Error::BufferTooSmall)
        );
        let long = [b'x'; 256];
        let repr = Repr::AuthenticateRequest {
            identifier: 1,
            peer_id: &long,
            password: b"",
        };
        let mut out = vec![0u8; repr.buffer_len()];
        assert_eq!(
            repr.emit(&mut Packet::new_unchecked(&mut out[..])),
            Err(Error::Malformed("pap peer-id longer than 255"))
        );
    }

    proptest! {
        #[test]
        fn prop_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let packet = Packet::new_unchecked(&bytes[..]);
            if packet.check_len().is_ok() {
                let _ = (packet.peer_id(), packet.password(), packet.message(), packet.data());
                let _ = Repr::parse(&packet);
            }
        }

        #[test]
        fn prop_request_round_trip(
            identifier in any::<u8>(),
            peer_id in proptest::collection::vec(any::<u8>(), 0..=255),
            password in proptest::collection::vec(any::<u8>(), 0..=255),
        ) {
            let repr = Repr::AuthenticateRequest { identifier, peer_id: &peer_id, password: &password };
            let mut bytes = vec![0u8; repr.buffer_len()];
            repr.emit(&mut Packet::new_unchecked(&mut bytes[..])).unwrap();
            let packet = Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(Repr::parse(&packet).unwrap(), repr);
        }
    }
}
