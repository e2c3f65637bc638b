//! PPP framing as PPTP carries it in GRE: RFC 1661 section 2 and RFC 1662 section 3.
//!
//! ```text
//! +----------+----------+-----------------+-------------+
//! | Address  | Control  |    Protocol     | Information |
//! |   0xFF   |   0x03   | 1 or 2 octets   |     ...     |
//! +----------+----------+-----------------+-------------+
//!  (absent with ACFC)     (1 octet with PFC)
//! ```
//!
//! PPTP frames PPP synchronously: no flags, no FCS, no byte stuffing; GRE's Payload Length
//! delimits the frame. Address/Control may be left out once Address-and-Control-Field-
//! Compression (ACFC, RFC 1661 section 6.6) is negotiated, and Protocol shortened to one byte
//! once Protocol-Field-Compression (PFC, section 6.5) is. A receiver accepts every form at all
//! times (both sections: "MUST continue to receive" the uncompressed form); the sender's
//! choice is the negotiated options, except that LCP is always sent uncompressed.
//!
//! Protocol numbers follow the ISO 3309 extension rule (RFC 1661 section 2): the last byte
//! is odd and every byte before it even. So a first byte with its low bit set is a whole
//! one-byte (compressed) protocol, and a two-byte protocol whose second byte is even is
//! malformed.

use super::{Error, Result};

/// The all-stations address (RFC 1662 section 3.1).
pub const ADDRESS: u8 = 0xFF;
/// Unnumbered Information control field (RFC 1662 section 3.1).
pub const CONTROL: u8 = 0x03;
/// Longest header: address, control and a two-byte protocol.
pub const HEADER_LEN_MAX: usize = 4;

enum_with_unknown! {
    /// PPP protocol numbers (IANA "PPP DLL Protocol Numbers"; RFC 1661 section 2).
    pub enum Protocol(u16) {
        /// Internet Protocol version 4 (RFC 1332).
        Ipv4 = 0x0021,
        /// Van Jacobson compressed TCP/IP (RFC 1144, negotiated by IPCP).
        VjCompressed = 0x002D,
        /// Van Jacobson uncompressed TCP/IP (RFC 1144, negotiated by IPCP).
        VjUncompressed = 0x002F,
        /// Multilink PPP (RFC 1990).
        Mp = 0x003D,
        /// Internet Protocol version 6 (RFC 5072).
        Ipv6 = 0x0057,
        /// Compressed datagram (RFC 1962). In PPTP this is always MPPE (RFC 3078): the
        /// MPPE header and the encrypted (inner protocol + data) follow.
        Mppe = 0x00FD,
        /// IP Control Protocol (RFC 1332).
        Ipcp = 0x8021,
        /// Encryption Control Protocol (RFC 1968). MPPE is negotiated by CCP, not ECP.
        Ecp = 0x8053,
        /// IPv6 Control Protocol (RFC 5072).
        Ipv6cp = 0x8057,
        /// Compression Control Protocol (RFC 1962); negotiates MPPE (RFC 3078).
        Ccp = 0x80FD,
        /// Link Control Protocol (RFC 1661).
        Lcp = 0xC021,
        /// Password Authentication Protocol (RFC 1334).
        Pap = 0xC023,
        /// Link Quality Report (RFC 1989).
        Lqr = 0xC025,
        /// Callback Control Protocol (Microsoft, draft-ietf-pppext-callback-cp).
        Cbcp = 0xC029,
        /// Bandwidth Allocation Control Protocol (RFC 2125).
        Bacp = 0xC02B,
        /// Bandwidth Allocation Protocol (RFC 2125).
        Bap = 0xC02D,
        /// Challenge Handshake Authentication Protocol, MS-CHAP included (RFC 1994,
        /// RFC 2433, RFC 2759).
        Chap = 0xC223,
    }
}

impl Protocol {
    /// Whether the number obeys the extension rule: low byte odd, high byte even
    /// (RFC 1661 section 2). Only such numbers can appear on the wire.
    #[inline]
    pub fn is_valid(self) -> bool {
        let value = u16::from(self);
        value & 0x0001 == 1 && value & 0x0100 == 0
    }

    /// Whether PFC may send this protocol in one byte: values below 0x100 only
    /// (RFC 1661 section 6.5), except 0x00FF: its single byte would read as the Address
    /// field of an uncompressed frame (IANA reserves 0x00FF as "compression inefficient").
    #[inline]
    pub fn is_compressible(self) -> bool {
        let value = u16::from(self);
        value < 0x00FF
    }

    /// Network-layer datagrams, 0x0000..=0x3FFF (RFC 1661 section 2). They may be sent
    /// only while their NCP is Opened; received otherwise, they are silently discarded.
    #[inline]
    pub fn is_network_layer(self) -> bool {
        u16::from(self) < 0x4000
    }

    /// Low-volume traffic without an associated NCP, 0x4000..=0x7FFF (RFC 1661 section 2).
    #[inline]
    pub fn is_low_volume(self) -> bool {
        (0x4000..0x8000).contains(&u16::from(self))
    }

    /// Network Control Protocols, 0x8000..=0xBFFF (RFC 1661 section 2): IPCP, IPV6CP, CCP,
    /// ECP and their kind. An unknown one is answered with LCP Protocol-Reject.
    #[inline]
    pub fn is_network_control(self) -> bool {
        (0x8000..0xC000).contains(&u16::from(self))
    }

    /// Link-layer control protocols, 0xC000..=0xFFFF (RFC 1661 section 2): LCP,
    /// authentication, link quality and the like.
    #[inline]
    pub fn is_link_control(self) -> bool {
        u16::from(self) >= 0xC000
    }

    /// Whether the protocol is a control protocol of either kind (0x8000..=0xFFFF).
    #[inline]
    pub fn is_control(self) -> bool {
        u16::from(self) >= 0x8000
    }

    /// The control protocol that governs a network-layer protocol: whose Opened state
    /// decides whether its datagrams are accepted, and which is Protocol-Rejected when we
    /// do not run it.
    ///
    /// Van Jacobson TCP/IP belongs to IPCP and MPPE to CCP; any other network-layer number
    /// maps to number + 0x8000 by the convention of RFC 1661 section 2. `None` for numbers
    /// that are not network-layer, and for Multilink (enabled by LCP's MRRU option,
    /// RFC 1990), so a link without Multilink Protocol-Rejects it.
    pub fn network_control_protocol(self) -> Option<Protocol> {
        match self {
            Protocol::Ipv4 | Protocol::VjCompressed | Protocol::VjUncompressed => {
                Some(Protocol::Ipcp)
            }
            Protocol::Ipv6 => Some(Protocol::Ipv6cp),
            Protocol::Mppe => Some(Protocol::Ccp),
            // Multilink is enabled by LCP's MRRU option (RFC 1990), not by an NCP.
            Protocol::Mp => None,
            other if other.is_network_layer() => Some(Protocol::from(u16::from(other) | 0x8000)),
            _ => None,
        }
    }
}

/// A read/write view of a PPP frame inside GRE: optional address/control, protocol,
/// information.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct PppFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> PppFrame<T> {
    /// Wraps a buffer without checking it; getters may panic until [`Self::check_len`]
    /// has succeeded.
    pub const fn new_unchecked(buffer: T) -> PppFrame<T> {
        PppFrame { buffer }
    }

    /// Wraps a buffer and checks it with [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<PppFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Checks the header's shape, which decides its length: `Error::Truncated` if the
    /// buffer ends inside the header; `Malformed("PPP control field")` when 0xFF is not
    /// followed by 0x03 (no protocol number starts with 0xFF); `Malformed("PPP protocol
    /// field")` for a two-byte protocol with an even second byte. After success no getter
    /// panics. The information field may be empty.
    pub fn check_len(&self) -> Result<()> {
        let data = self.buffer.as_ref();
        let offset = match data {
            [] | [ADDRESS] => return Err(Error::Truncated),
            [ADDRESS, CONTROL, ..] => 2,
            [ADDRESS, _, ..] => return Err(Error::Malformed("PPP control field")),
            _ => 0,
        };
        match data.get(offset..) {
            None | Some([]) => Err(Error::Truncated),
            Some([first, ..]) if first & 1 == 1 => Ok(()),
            Some([_]) => Err(Error::Truncated),
            Some([_, second, ..]) if second & 1 == 1 => Ok(()),
            Some(_) => Err(Error::Malformed("PPP protocol field")),
        }
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Whether the frame starts with address 0xFF and control 0x03.
    #[inline]
    pub fn has_address_control(&self) -> bool {
        self.buffer.as_ref()[0] == ADDRESS
    }

    #[inline]
    fn protocol_offset(&self) -> usize {
        if self.has_address_control() { 2 } else { 0 }
    }

    /// Whether the protocol field is one byte (PFC).
    #[inline]
    pub fn protocol_compressed(&self) -> bool {
        self.buffer.as_ref()[self.protocol_offset()] & 1 == 1
    }

    /// Length of the protocol field: 1 or 2.
    #[inline]
    pub fn protocol_len(&self) -> usize {
        if self.protocol_compressed() { 1 } else { 2 }
    }

    /// The protocol number, a compressed one widened (0xFD becomes 0x00FD).
    #[inline]
    pub fn protocol_raw(&self) -> u16 {
        let data = self.buffer.as_ref();
        let offset = self.protocol_offset();
        if self.protocol_compressed() {
            u16::from(data[offset])
        } else {
            u16::from_be_bytes([data[offset], data[offset + 1]])
        }
    }

    /// The protocol.
    #[inline]
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.protocol_raw())
    }

    /// Header length: 1 to 4 bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.protocol_offset() + self.protocol_len()
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> PppFrame<&'a T> {
    /// The information field: everything after the header (GRE has already cut the frame
    /// to its Payload Length; PPTP has no FCS or padding to strip).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> PppFrame<T> {
    /// The information field, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        &mut self.buffer.as_mut()[start..]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for PppFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A PPP header to send, or the form of one received.
///
/// `acfc` and `pfc` say which compressions the link has negotiated (sending) or the frame
/// used (parsed). [`Self::emit`] applies them only where allowed: LCP always goes out with
/// address/control and a two-byte protocol (RFC 1661 sections 6.5 and 6.6, so LCP is
/// recognised whatever the negotiated state), and PFC shortens only protocols below 0x100.
///
/// Received frames need not follow the LCP rule: Linux pppd compresses address/control on
/// LCP Echo-Request/Reply (only codes 1 to 7 stay uncompressed), as the reference capture
/// shows, so [`Self::parse`] reports `acfc: true` for such a frame.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct PppHeader {
    /// Address-and-Control-Field-Compression: leave out 0xFF 0x03.
    pub acfc: bool,
    /// Protocol-Field-Compression: one-byte protocol where possible.
    pub pfc: bool,
    /// The protocol of the information field.
    pub protocol: Protocol,
}

impl PppHeader {
    /// An uncompressed header, the form every peer accepts (and the only one before LCP
    /// has negotiated ACFC/PFC).
    pub const fn uncompressed(protocol: Protocol) -> PppHeader {
        PppHeader {
            acfc: false,
            pfc: false,
            protocol,
        }
    }

    /// Reads the header of a frame (checking it first, see [`PppFrame::check_len`]).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(frame: &PppFrame<&T>) -> Result<PppHeader> {
        frame.check_len()?;
        Ok(PppHeader {
            acfc: !frame.has_address_control(),
            pfc: frame.protocol_compressed(),
            protocol: frame.protocol(),
        })
    }

    /// Whether [`Self::emit`] writes 0xFF 0x03: unless ACFC is on, and always for LCP.
    #[inline]
    pub fn sends_address_control(&self) -> bool {
        !self.acfc || self.protocol == Protocol::Lcp
    }

    /// Whether [`Self::emit`] writes a one-byte protocol: PFC on and protocol below 0x100
    /// (LCP, 0xC021, never qualifies).
    #[inline]
    pub fn sends_compressed_protocol(&self) -> bool {
        self.pfc && self.protocol.is_compressible()
    }

    /// Header bytes [`Self::emit`] writes: 1 to 4.
    #[inline]
    pub fn buffer_len(&self) -> usize {
        (if self.sends_address_control() { 2 } else { 0 })
            + if self.sends_compressed_protocol() {
                1
            } else {
                2
            }
    }

    /// Writes the header at the start of `frame`'s buffer, which must hold at least
    /// [`Self::buffer_len`] bytes (`Error::BufferTooSmall` otherwise); the information
    /// field goes after it. A protocol number that breaks the extension rule is refused
    /// with `Malformed("PPP protocol field")`, since no peer could parse it.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        frame: &mut PppFrame<&mut T>,
    ) -> Result<()> {
        if !self.protocol.is_valid() {
            return Err(Error::Malformed("PPP protocol field"));
        }
        let len = self.buffer_len();
        let Some(header) = frame.buffer.as_mut().get_mut(..len) else {
            return Err(Error::BufferTooSmall);
        };
        let protocol = u16::from(self.protocol).to_be_bytes();
        // `header` is exactly buffer_len() bytes, so every index below is in range.
        let mut at = 0;
        if self.sends_address_control() {
            header[0] = ADDRESS;
            header[1] = CONTROL;
            at = 2;
        }
        if self.sends_compressed_protocol() {
            header[at] = protocol[1];
        } else {
            header[at..at + 2].copy_from_slice(&protocol);
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // GRE payloads from the reference capture (Debian pptp-linux client <-> Poptop server).

    // Frame 20: the client's LCP Configure-Request, with ff03 and a two-byte protocol.
    static LCP_CONFREQ: [u8; 24] = [
        0xff, 0x03, 0xc0, 0x21, 0x01, 0x01, 0x00, 0x14, 0x02, 0x06, 0x00, 0x00, 0x00, 0x00, 0x05,
        0x06, 0x56, 0x13, 0x9d, 0xac, 0x07, 0x02, 0x08, 0x02,
    ];

    // Frame 24: the client's LCP Echo-Request after ACFC was negotiated: pppd leaves out
    // ff03 even for LCP.
    static LCP_ECHO_NO_AC: [u8; 10] = [0xc0, 0x21, 0x09, 0x00, 0x00, 0x08, 0x56, 0x13, 0x9d, 0xac];

    // Frame 36: the client's IPCP Configure-Request, no ff03, two-byte protocol.
    static IPCP_CONFREQ: [u8; 18] = [
        0x80, 0x21, 0x01, 0x01, 0x00, 0x10, 0x02, 0x06, 0x00, 0x2d, 0x0f, 0x01, 0x03, 0x06, 0x00,
        0x00, 0x00, 0x00,
    ];

    // Frame 46: the start of an MPPE frame: PFC-compressed protocol 0xFD, then the MPPE
    // header 0x9000 (flushed, encrypted, coherency count 0) and ciphertext.
    static MPPE_PFC: [u8; 8] = [0xfd, 0x90, 0x00, 0xdc, 0x75, 0x20, 0xda, 0x25];

    #[test]
    fn deconstruct_lcp_with_address_control() {
        let frame = PppFrame::new_checked(&LCP_CONFREQ[..]).unwrap();
        assert!(frame.has_address_control());
        assert!(!frame.protocol_compressed());
        assert_eq!(frame.protocol_len(), 2);
        assert_eq!(frame.protocol_raw(), 0xc021);
        assert_eq!(frame.protocol(), Protocol::Lcp);
        assert_eq!(frame.header_len(), 4);
        assert_eq!(frame.payload(), &LCP_CONFREQ[4..]);
    }

    #[test]
    fn deconstruct_without_address_control() {
        let frame = PppFrame::new_checked(&LCP_ECHO_NO_AC[..]).unwrap();
        assert!(!frame.has_address_control());
        assert_eq!(frame.protocol(), Protocol::Lcp);
        assert_eq!(frame.header_len(), 2);
        assert_eq!(frame.payload(), &LCP_ECHO_NO_AC[2..]);

        let frame = PppFrame::new_checked(&IPCP_CONFREQ[..]).unwrap();
        assert_eq!(frame.protocol(), Protocol::Ipcp);
        assert_eq!(frame.payload()[0], 0x01);
    }

    #[test]
    fn deconstruct_compressed_protocol() {
        let frame = PppFrame::new_checked(&MPPE_PFC[..]).unwrap();
        assert!(!frame.has_address_control());
        assert!(frame.protocol_compressed());
        assert_eq!(frame.protocol_len(), 1);
        assert_eq!(frame.protocol(), Protocol::Mppe);
        assert_eq!(frame.header_len(), 1);
        assert_eq!(frame.payload(), &MPPE_PFC[1..]);
        // Address/control followed by a compressed protocol is legal too.
        let frame = PppFrame::new_checked(&[0xff, 0x03, 0x21, 0x45][..]).unwrap();
        assert_eq!(frame.protocol(), Protocol::Ipv4);
        assert_eq!(frame.header_len(), 3);
        assert_eq!(frame.payload(), &[0x45]);
    }

    #[test]
    fn payload_mut_in_place() {
        let mut bytes = MPPE_PFC;
        let mut frame = PppFrame::new_checked(&mut bytes[..]).unwrap();
        frame.payload_mut()[0] = 0x10;
        assert_eq!(bytes[1], 0x10);
        assert_eq!(bytes[0], 0xfd);
    }

    #[test]
    fn parse_forms() {
        let parse = |bytes: &[u8]| PppHeader::parse(&PppFrame::new_unchecked(bytes));
        assert_eq!(
            parse(&LCP_CONFREQ),
            Ok(PppHeader::uncompressed(Protocol::Lcp))
        );
        assert_eq!(
            parse(&LCP_ECHO_NO_AC),
            Ok(PppHeader {
                acfc: true,
                pfc: false,
                protocol: Protocol::Lcp
            })
        );
        assert_eq!(
            parse(&MPPE_PFC),
            Ok(PppHeader {
                acfc: true,
                pfc: true,
                protocol: Protocol::Mppe
            })
        );
        // Unknown protocols are kept, for Protocol-Reject.
        assert_eq!(
            parse(&[0x80, 0x81, 0x01]).map(|h| h.protocol),
            Ok(Protocol::Unknown(0x8081))
        );
    }

    #[test]
    fn emit_forms() {
        let emit = |header: PppHeader| {
            let mut bytes = [0xaau8; 6];
            header
                .emit(&mut PppFrame::new_unchecked(&mut bytes[..]))
                .unwrap();
            bytes[..header.buffer_len()].to_vec()
        };
        assert_eq!(
            emit(PppHeader::uncompressed(Protocol::Lcp)),
            &LCP_CONFREQ[..4]
        );
        // LCP ignores ACFC and PFC when sending.
        let lcp = PppHeader {
            acfc: true,
            pfc: true,
            protocol: Protocol::Lcp,
        };
        assert_eq!(lcp.buffer_len(), 4);
        assert_eq!(emit(lcp), &LCP_CONFREQ[..4]);
        // IPCP: ACFC applies; PFC cannot shorten 0x8021.
        let ipcp = PppHeader {
            acfc: true,
            pfc: true,
            protocol: Protocol::Ipcp,
        };
        assert_eq!(emit(ipcp), &IPCP_CONFREQ[..2]);
        // MPPE with both compressions, as the capture's data frames.
        let mppe = PppHeader {
            acfc: true,
            pfc: true,
            protocol: Protocol::Mppe,
        };
        assert_eq!(mppe.buffer_len(), 1);
        assert_eq!(emit(mppe), &MPPE_PFC[..1]);
        let ipv4 = PppHeader {
            acfc: false,
            pfc: true,
            protocol: Protocol::Ipv4,
        };
        assert_eq!(emit(ipv4), &[0xff, 0x03, 0x21]);
        assert_eq!(
            emit(PppHeader::uncompressed(Protocol::Ipv4)),
            &[0xff, 0x03, 0x00, 0x21]
        );
    }

    #[test]
    fn emit_errors() {
        let mut short = [0u8; 3];
        assert_eq!(
            PppHeader::uncompressed(Protocol::Lcp)
                .emit(&mut PppFrame::new_unchecked(&mut short[..])),
            Err(Error::BufferTooSmall)
        );
        let mut bytes = [0u8; 4];
        assert_eq!(
            PppHeader::uncompressed(Protocol::Unknown(0x0100))
                .emit(&mut PppFrame::new_unchecked(&mut bytes[..])),
            Err(Error::Malformed("PPP protocol field"))
        );
    }

    #[test]
    fn truncated_and_malformed() {
        let check = |bytes: &[u8]| PppFrame::new_unchecked(bytes).check_len();
        assert_eq!(check(&[]), Err(Error::Truncated));
        assert_eq!(check(&[0xff]), Err(Error::Truncated));
        assert_eq!(check(&[0xff, 0x03]), Err(Error::Truncated));
        assert_eq!(check(&[0xff, 0x03, 0xc0]), Err(Error::Truncated));
        assert_eq!(check(&[0xc0]), Err(Error::Truncated));
        assert_eq!(
            check(&[0xff, 0x13, 0xc0, 0x21]),
            Err(Error::Malformed("PPP control field"))
        );
        assert_eq!(
            check(&[0xc0, 0x22]),
            Err(Error::Malformed("PPP protocol field"))
        );
        assert_eq!(
            check(&[0xff, 0x03, 0x00, 0x00]),
            Err(Error::Malformed("PPP protocol field"))
        );
        // Header only, empty information field: fine.
        assert_eq!(check(&[0xc0, 0x21]), Ok(()));
        assert_eq!(check(&[0xfd]), Ok(()));
        assert_eq!(
            PppHeader::parse(&PppFrame::new_unchecked(&[0xff, 0x03, 0x80][..])),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn protocol_classes() {
        assert!(Protocol::Ipv4.is_network_layer());
        assert!(Protocol::Mppe.is_network_layer());
        assert!(Protocol::Ipcp.is_network_control());
        assert!(Protocol::Ccp.is_network_control());
        assert!(Protocol::Ipv6cp.is_network_control());
        assert!(!Protocol::Lcp.is_network_control());
        assert!(Protocol::Lcp.is_link_control());
        assert!(Protocol::Chap.is_link_control());
        assert!(Protocol::Chap.is_control());
        assert!(!Protocol::Ipv6.is_control());
        assert!(Protocol::Unknown(0x4021).is_low_volume());
        assert!(Protocol::Mppe.is_compressible());
        assert!(!Protocol::Lcp.is_compressible());
        assert!(Protocol::Lcp.is_valid());
        assert!(!Protocol::Unknown(0x0020).is_valid());
        assert!(!Protocol::Unknown(0x0121).is_valid());
        assert_eq!(Protocol::from(0x00fd), Protocol::Mppe);
        assert_eq!(u16::from(Protocol::Bap), 0xc02d);
    }

    #[test]
    fn control_protocol_of() {
        assert_eq!(
            Protocol::Ipv4.network_control_protocol(),
            Some(Protocol::Ipcp)
        );
        assert_eq!(
            Protocol::VjCompressed.network_control_protocol(),
            Some(Protocol::Ipcp)
        );
        assert_eq!(
            Protocol::VjUncompressed.network_control_protocol(),
            Some(Protocol::Ipcp)
        );
        assert_eq!(
            Protocol::Ipv6.network_control_protocol(),
            Some(Protocol::Ipv6cp)
        );
        assert_eq!(
            Protocol::Mppe.network_control_protocol(),
            Some(Protocol::Ccp)
        );
        assert_eq!(
            Protocol::Unknown(0x002b).network_control_protocol(),
            Some(Protocol::Unknown(0x802b))
        );
        assert_eq!(Protocol::Mp.network_control_protocol(), None);
        assert_eq!(Protocol::Ipcp.network_control_protocol(), None);
        assert_eq!(Protocol::Lcp.network_control_protocol(), None);
    }

    fn valid_protocol() -> impl Strategy<Value = Protocol> {
        any::<u16>().prop_map(|v| Protocol::from((v | 0x0001) & !0x0100))
    }

    proptest! {
        #[test]
        fn header_round_trip(acfc: bool, pfc: bool, protocol in valid_protocol()) {
            let header = PppHeader { acfc, pfc, protocol };
            let mut bytes = [0u8; HEADER_LEN_MAX];
            header.emit(&mut PppFrame::new_unchecked(&mut bytes[..])).unwrap();
            let frame = PppFrame::new_checked(&bytes[..header.buffer_len()]).unwrap();
            prop_assert_eq!(frame.header_len(), header.buffer_len());
            prop_assert!(frame.payload().is_empty());
            let parsed = PppHeader::parse(&frame).unwrap();
            // The parsed form is what was actually sent.
            prop_assert_eq!(parsed, PppHeader {
                acfc: !header.sends_address_control(),
                pfc: header.sends_compressed_protocol(),
                protocol,
            });
            // And sending the parsed form again gives the same bytes.
            let mut again = [0u8; HEADER_LEN_MAX];
            parsed.emit(&mut PppFrame::new_unchecked(&mut again[..])).unwrap();
            prop_assert_eq!(again, bytes);
        }

        #[test]
        fn bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..8)) {
            let frame = PppFrame::new_unchecked(&bytes[..]);
            if let Ok(header) = PppHeader::parse(&frame) {
                prop_assert!(header.protocol.is_valid());
                prop_assert_eq!(frame.header_len() + frame.payload().len(), bytes.len());
                let mut out = [0u8; HEADER_LEN_MAX];
                header.emit(&mut PppFrame::new_unchecked(&mut out[..])).unwrap();
                // LCP without address/control (as pppd sends Echo) is re-sent with it.
                if header.protocol != Protocol::Lcp || !header.acfc {
                    prop_assert_eq!(&out[..header.buffer_len()], &bytes[..frame.header_len()]);
                }
            }
        }
    }
}
