//! LCP, the Link Control Protocol (RFC 1661, with RFC 1570's extensions).
//!
//! Packets are [`CpPacket`]s; [`Repr`] adds LCP's own codes (Protocol-Reject, Echo,
//! Discard, Identification, Time-Remaining) to the common ones, and [`LcpOption`] decodes the
//! configuration options a PPTP peer sends: Windows and pppd ask for ACCM, magic number, PFC
//! and ACFC, and the server asks for an authentication protocol (MS-CHAPv2 in practice).
//!
//! Protocol numbers (Protocol-Reject, Authentication- and Quality-Protocol) are
//! [`Protocol`]s, which keep numbers they do not know.

use core::fmt;

pub use super::chap::ChapAlgorithm;
use super::cp::{self, Code, ConfigOption, CpPacket, OptionIter, RawOption};
use super::ppp::Protocol;
use super::{Error, Result};

enum_with_unknown! {
    /// LCP configuration option types (RFC 1661 §6, RFC 1570 §2, RFC 1990 §5.1, RFC 2125).
    pub enum OptionType(u8) {
        Mru = 1,
        Accm = 2,
        AuthProtocol = 3,
        QualityProtocol = 4,
        MagicNumber = 5,
        Pfc = 7,
        Acfc = 8,
        Callback = 13,
        Mrru = 17,
        ShortSequence = 18,
        EndpointDiscriminator = 19,
        LinkDiscriminator = 23,
    }
}

/// An authentication method as an Authentication-Protocol option names it.
///
/// The negotiation decides in these terms: what the server asks for, what it Naks with when
/// the peer proposes something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    /// PAP: protocol 0xc023, no data.
    Pap,
    /// CHAP: protocol 0xc223 and exactly one algorithm octet.
    Chap(ChapAlgorithm),
}

impl AuthMethod {
    /// CHAP with MD5 (RFC 1994).
    pub const CHAP_MD5: AuthMethod = AuthMethod::Chap(ChapAlgorithm::Md5);
    /// MS-CHAPv1 (RFC 2433).
    pub const MS_CHAP_V1: AuthMethod = AuthMethod::Chap(ChapAlgorithm::MsChapV1);
    /// MS-CHAPv2 (RFC 2759), what PPTP peers use.
    pub const MS_CHAP_V2: AuthMethod = AuthMethod::Chap(ChapAlgorithm::MsChapV2);

    /// Recognises an Authentication-Protocol option's protocol and data. `None` for other
    /// protocols (EAP, ...) and for PAP with data or CHAP without exactly one octet.
    pub fn from_option(protocol: Protocol, data: &[u8]) -> Option<AuthMethod> {
        match (protocol, data) {
            (Protocol::Pap, []) => Some(AuthMethod::Pap),
            (Protocol::Chap, &[algorithm]) => Some(AuthMethod::Chap(algorithm.into())),
            _ => None,
        }
    }

    /// The PPP protocol number the option carries.
    pub fn protocol(&self) -> Protocol {
        match self {
            AuthMethod::Pap => Protocol::Pap,
            AuthMethod::Chap(_) => Protocol::Chap,
        }
    }

    /// The Authentication-Protocol option that asks for this method.
    pub fn to_option(&self) -> LcpOption<'static> {
        let data = match self {
            AuthMethod::Pap => &[],
            AuthMethod::Chap(algorithm) => single_octet((*algorithm).into()),
        };
        LcpOption::AuthProtocol {
            protocol: self.protocol(),
            data,
        }
    }
}

/// Every octet value, so that a one-octet option datum can be borrowed for `'static`.
static OCTETS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < table.len() {
        table[i] = i as u8;
        i += 1;
    }
    table
};

fn single_octet(value: u8) -> &'static [u8] {
    let i = usize::from(value);
    OCTETS.get(i..=i).unwrap_or_default()
}

/// An LCP configuration option (RFC 1661 §6 and the later RFCs named per variant).
///
/// Parsing checks each option's length against its type: a wrong length is `Malformed`
/// (pppd rejects such an option). Types not listed here stay `Unknown` with their data, to
/// be rejected as received. `Unknown` must not be used to carry a listed type: it would emit
/// fine but parse back as the typed variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LcpOption<'a> {
    /// Maximum-Receive-Unit, RFC 1661 §6.1.
    Mru(u16),
    /// Async-Control-Character-Map, RFC 1662 §7.1. Meaningless over PPTP, but peers send it.
    Accm(u32),
    /// Authentication-Protocol, RFC 1661 §6.2: protocol number, then protocol-specific data
    /// (the CHAP algorithm). See [`AuthMethod`].
    AuthProtocol { protocol: Protocol, data: &'a [u8] },
    /// Quality-Protocol, RFC 1661 §6.3.
    QualityProtocol { protocol: Protocol, data: &'a [u8] },
    /// Magic-Number, RFC 1661 §6.4: loop detection, and the magic of Echo packets.
    MagicNumber(u32),
    /// Protocol-Field-Compression, RFC 1661 §6.5.
    Pfc,
    /// Address-and-Control-Field-Compression, RFC 1661 §6.6.
    Acfc,
    /// Callback, RFC 1570 §2.3: operation, then a message whose meaning the operation sets.
    Callback { operation: u8, message: &'a [u8] },
    /// Multilink Maximum-Received-Reconstructed-Unit, RFC 1990 §5.1.1.
    Mrru(u16),
    /// Multilink Short-Sequence-Number-Header-Format, RFC 1990 §5.1.2.
    ShortSequence,
    /// Multilink Endpoint-Discriminator, RFC 1990 §5.1.3. The address length per class is
    /// not checked.
    EndpointDiscriminator { class: u8, address: &'a [u8] },
    /// Link-Discriminator, RFC 2125 §5.2 (BACP).
    LinkDiscriminator(u16),
    /// Any other type, kept as received.
    Unknown { kind: u8, data: &'a [u8] },
}

impl<'a> LcpOption<'a> {
    /// The option's type.
    pub fn option_type(&self) -> OptionType {
        OptionType::from(self.kind())
    }

    /// The authentication method, if this is an Authentication-Protocol option naming PAP or
    /// CHAP in the form [`AuthMethod::from_option`] accepts.
    pub fn auth_method(&self) -> Option<AuthMethod> {
        match *self {
            LcpOption::AuthProtocol { protocol, data } => AuthMethod::from_option(protocol, data),
            _ => None,
        }
    }

    /// Walks an option list decoding LCP options; see [`OptionIter`] for the error rules.
    pub fn iter(list: &'a [u8]) -> OptionIter<'a, LcpOption<'a>> {
        OptionIter::typed(list)
    }
}

fn exact<const N: usize>(data: &[u8], what: &'static str) -> Result<[u8; N]> {
    <[u8; N]>::try_from(data).map_err(|_| Error::Malformed(what))
}

/// Splits the PPP protocol number off the front of an option's data.
fn with_protocol<'a>(data: &'a [u8], what: &'static str) -> Result<(Protocol, &'a [u8])> {
    let (head, rest) = data
        .split_first_chunk::<2>()
        .ok_or(Error::Malformed(what))?;
    Ok((Protocol::from(u16::from_be_bytes(*head)), rest))
}

impl<'a> ConfigOption<'a> for LcpOption<'a> {
    fn parse(raw: RawOption<'a>) -> Result<LcpOption<'a>> {
        let data = raw.data;
        Ok(match OptionType::from(raw.kind) {
            OptionType::Mru => LcpOption::Mru(u16::from_be_bytes(exact(data, "LCP MRU length")?)),
            OptionType::Accm => {
                LcpOption::Accm(u32::from_be_bytes(exact(data, "LCP ACCM length")?))
            }
            OptionType::AuthProtocol => {
                let (protocol, data) = with_protocol(data, "LCP Authentication-Protocol length")?;
                LcpOption::AuthProtocol { protocol, data }
            }
            OptionType::QualityProtocol => {
                let (protocol, data) = with_protocol(data, "LCP Quality-Protocol length")?;
                LcpOption::QualityProtocol { protocol, data }
            }
            OptionType::MagicNumber => {
                LcpOption::MagicNumber(u32::from_be_bytes(exact(data, "LCP Magic-Number length")?))
            }
            OptionType::Pfc => {
                exact::<0>(data, "LCP PFC length")?;
                LcpOption::Pfc
            }
            OptionType::Acfc => {
                exact::<0>(data, "LCP ACFC length")?;
                LcpOption::Acfc
            }
            OptionType::Callback => {
                let (&operation, message) = data
                    .split_first()
                    .ok_or(Error::Malformed("LCP Callback length"))?;
                LcpOption::Callback { operation, message }
            }
            OptionType::Mrru => {
                LcpOption::Mrru(u16::from_be_bytes(exact(data, "LCP MRRU length")?))
            }
            OptionType::ShortSequence => {
                exact::<0>(data, "LCP Short-Sequence length")?;
                LcpOption::ShortSequence
            }
            OptionType::EndpointDiscriminator => {
                let (&class, address) = data
                    .split_first()
                    .ok_or(Error::Malformed("LCP Endpoint-Discriminator length"))?;
                LcpOption::EndpointDiscriminator { class, address }
            }
            OptionType::LinkDiscriminator => LcpOption::LinkDiscriminator(u16::from_be_bytes(
                exact(data, "LCP Link-Discriminator length")?,
            )),
            OptionType::Unknown(kind) => LcpOption::Unknown { kind, data },
        })
    }

    fn kind(&self) -> u8 {
        let kind = match self {
            LcpOption::Mru(_) => OptionType::Mru,
            LcpOption::Accm(_) => OptionType::Accm,
            LcpOption::AuthProtocol { .. } => OptionType::AuthProtocol,
            LcpOption::QualityProtocol { .. } => OptionType::QualityProtocol,
            LcpOption::MagicNumber(_) => OptionType::MagicNumber,
            LcpOption::Pfc => OptionType::Pfc,
            LcpOption::Acfc => OptionType::Acfc,
            LcpOption::Callback { .. } => OptionType::Callback,
            LcpOption::Mrru(_) => OptionType::Mrru,
            LcpOption::ShortSequence => OptionType::ShortSequence,
            LcpOption::EndpointDiscriminator { .. } => OptionType::EndpointDiscriminator,
            LcpOption::LinkDiscriminator(_) => OptionType::LinkDiscriminator,
            LcpOption::Unknown { kind, .. } => return *kind,
        };
        kind.into()
    }

    fn data_len(&self) -> usize {
        match self {
            LcpOption::Pfc | LcpOption::Acfc | LcpOption::ShortSequence => 0,
            LcpOption::Mru(_) | LcpOption::Mrru(_) | LcpOption::LinkDiscriminator(_) => 2,
            LcpOption::Accm(_) | LcpOption::MagicNumber(_) => 4,
            LcpOption::AuthProtocol { data, .. } | LcpOption::QualityProtocol { data, .. } => {
                data.len().saturating_add(2)
            }
            LcpOption::Callback { message: data, .. }
            | LcpOption::EndpointDiscriminator { address: data, .. } => {
                data.len().saturating_add(1)
            }
            LcpOption::Unknown { data, .. } => data.len(),
        }
    }

    fn emit_data(&self, out: &mut [u8]) {
        match *self {
            LcpOption::Pfc | LcpOption::Acfc | LcpOption::ShortSequence => {}
            LcpOption::Mru(v) | LcpOption::Mrru(v) | LcpOption::LinkDiscriminator(v) => {
                cp::write_parts(out, &[&v.to_be_bytes()])
            }
            LcpOption::Accm(v) | LcpOption::MagicNumber(v) => {
                cp::write_parts(out, &[&v.to_be_bytes()])
            }
            LcpOption::AuthProtocol { protocol, data }
            | LcpOption::QualityProtocol { protocol, data } => {
                cp::write_parts(out, &[&u16::from(protocol).to_be_bytes(), data])
            }
            LcpOption::Callback {
                operation: first,
                message: rest,
            }
            | LcpOption::EndpointDiscriminator {
                class: first,
                address: rest,
            } => cp::write_parts(out, &[&[first], rest]),
            LcpOption::Unknown { data, .. } => cp::write_parts(out, &[data]),
        }
    }
}

/// pppd's option notation (`asyncmap 0x0`, `auth chap MS-v2`, `magic 0x787155cf`, `pcomp`).
impl fmt::Display for LcpOption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex_tail = |f: &mut fmt::Formatter<'_>, data: &[u8]| {
            if data.is_empty() {
                Ok(())
            } else {
                f.write_str(" ")?;
                cp::fmt_hex(f, data)
            }
        };
        match *self {
            LcpOption::Mru(v) => write!(f, "mru {v}"),
            LcpOption::Accm(v) => write!(f, "asyncmap 0x{v:x}"),
            LcpOption::AuthProtocol { protocol, data } => match self.auth_method() {
                Some(AuthMethod::Pap) => f.write_str("auth pap"),
                Some(AuthMethod::Chap(ChapAlgorithm::Md5)) => f.write_str("auth chap MD5"),
                Some(AuthMethod::Chap(ChapAlgorithm::MsChapV1)) => f.write_str("auth chap MS"),
                Some(AuthMethod::Chap(ChapAlgorithm::MsChapV2)) => f.write_str("auth chap MS-v2"),
                _ if protocol == Protocol::Chap => {
                    f.write_str("auth chap")?;
                    hex_tail(f, data)
                }
                _ => {
                    write!(f, "auth 0x{:x}", u16::from(protocol))?;
                    hex_tail(f, data)
                }
            },
            LcpOption::QualityProtocol { protocol, data } => {
                if protocol == Protocol::Lqr {
                    f.write_str("quality lqr")?;
                } else {
                    write!(f, "quality 0x{:x}", u16::from(protocol))?;
                }
                hex_tail(f, data)
            }
            LcpOption::MagicNumber(v) => write!(f, "magic 0x{v:x}"),
            LcpOption::Pfc => f.write_str("pcomp"),
            LcpOption::Acfc => f.write_str("accomp"),
            LcpOption::Callback { operation, message } => {
                write!(f, "callback {operation}")?;
                hex_tail(f, message)
            }
            LcpOption::Mrru(v) => write!(f, "mrru {v}"),
            LcpOption::ShortSequence => f.write_str("ssnhf"),
            LcpOption::EndpointDiscriminator { class, address } => {
                write!(f, "endpoint {class}")?;
                hex_tail(f, address)
            }
            LcpOption::LinkDiscriminator(v) => write!(f, "link-discriminator {v}"),
            LcpOption::Unknown { kind, data } => fmt::Display::fmt(&RawOption { kind, data }, f),
        }
    }
}

/// An LCP packet (RFC 1661 §5, RFC 1570 §2).
///
/// Configure packets keep their option list as bytes; decode it with [`LcpOption::iter`] or
/// walk [`RawOption`]s to copy them into a Nak or Reject. The common codes are a
/// [`cp::Repr`] in `Common`; codes LCP does not define (14 and up) are
/// `Common(cp::Repr::Unknown)`, to be answered with a Code-Reject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// The codes every control protocol has (RFC 1661 §5.1 to §5.6), and codes LCP does
    /// not define (`cp::Repr::Unknown`). [`parse`](Repr::parse) never puts LCP's own codes
    /// here; built by hand with one, it emits the same bytes but parses back as that code's
    /// variant.
    Common(cp::Repr<'a>),
    /// RFC 1661 §5.7: the PPP protocol number of a frame we do not speak, then that frame's
    /// information field, cut to fit the peer's MRU. Sent only while LCP is Opened.
    ProtocolReject {
        id: u8,
        protocol: Protocol,
        information: &'a [u8],
    },
    /// RFC 1661 §5.8: keepalive. `magic` is the sender's Magic-Number, or 0 if none was
    /// negotiated.
    EchoRequest {
        id: u8,
        magic: u32,
        data: &'a [u8],
    },
    EchoReply {
        id: u8,
        magic: u32,
        data: &'a [u8],
    },
    /// RFC 1661 §5.9: silently discarded by the receiver.
    DiscardRequest {
        id: u8,
        magic: u32,
        data: &'a [u8],
    },
    /// RFC 1570 §2.1: a free-form message (Windows sends its version and host name).
    Identification {
        id: u8,
        magic: u32,
        message: &'a [u8],
    },
    /// RFC 1570 §2.2: seconds left in the session, then a free-form message.
    TimeRemaining {
        id: u8,
        magic: u32,
        seconds: u32,
        message: &'a [u8],
    },
}

impl<'a> Repr<'a> {
    /// Parses an LCP packet; checks its length first.
    ///
    /// A Protocol-Reject shorter than its protocol field, or an Echo, Discard,
    /// Identification or Time-Remaining shorter than its fixed fields, is `Malformed`.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &CpPacket<&'a T>) -> Result<Repr<'a>> {
        let (code, id, data) = match cp::Repr::parse(packet)? {
            cp::Repr::Unknown { code, id, data } => (code, id, data),
            common => return Ok(Repr::Common(common)),
        };
        let magic = |what| -> Result<(u32, &'a [u8])> {
            let (magic, rest) = data
                .split_first_chunk::<4>()
                .ok_or(Error::Malformed(what))?;
            Ok((u32::from_be_bytes(*magic), rest))
        };
        Ok(match code {
            Code::ProtocolReject => {
                let (protocol, information) = data
                    .split_first_chunk::<2>()
                    .ok_or(Error::Malformed("LCP Protocol-Reject without protocol"))?;
                Repr::ProtocolReject {
                    id,
                    protocol: Protocol::from(u16::from_be_bytes(*protocol)),
                    information,
                }
            }
            Code::EchoRequest => {
                let (magic, data) = magic("LCP Echo-Request without magic number")?;
                Repr::EchoRequest { id, magic, data }
            }
            Code::EchoReply => {
                let (magic, data) = magic("LCP Echo-Reply without magic number")?;
                Repr::EchoReply { id, magic, data }
            }
            Code::DiscardRequest => {
                let (magic, data) = magic("LCP Discard-Request without magic number")?;
                Repr::DiscardRequest { id, magic, data }
            }
            Code::Identification => {
                let (magic, message) = magic("LCP Identification without magic number")?;
                Repr::Identification { id, magic, message }
            }
            Code::TimeRemaining => {
                let (magic, rest) = magic("LCP Time-Remaining without magic number")?;
                let (seconds, message) = rest
                    .split_first_chunk::<4>()
                    .ok_or(Error::Malformed("LCP Time-Remaining without seconds"))?;
                Repr::TimeRemaining {
                    id,
                    magic,
                    seconds: u32::from_be_bytes(*seconds),
                    message,
                }
            }
            code => Repr::Common(cp::Repr::Unknown { code, id, data }),
        })
    }

    /// The packet as one of the codes every control protocol shares (1 to 7, or `Unknown`),
    /// for a negotiation automaton that handles those generically; `None` for LCP's own.
    pub fn as_common(&self) -> Option<cp::Repr<'a>> {
        match *self {
            Repr::Common(common) => Some(common),
            _ => None,
        }
    }

    /// The Code this packet is sent with.
    pub fn code(&self) -> Code {
        match self {
            Repr::ProtocolReject { .. } => Code::ProtocolReject,
            Repr::EchoRequest { .. } => Code::EchoRequest,
            Repr::EchoReply { .. } => Code::EchoReply,
            Repr::DiscardRequest { .. } => Code::DiscardRequest,
            Repr::Identification { .. } => Code::Identification,
            Repr::TimeRemaining { .. } => Code::TimeRemaining,
            Repr::Common(common) => common.code(),
        }
    }

    /// The Identifier.
    pub fn id(&self) -> u8 {
        match *self {
            Repr::Common(common) => common.id(),
            Repr::ProtocolReject { id, .. }
            | Repr::EchoRequest { id, .. }
            | Repr::EchoReply { id, .. }
            | Repr::DiscardRequest { id, .. }
            | Repr::Identification { id, .. }
            | Repr::TimeRemaining { id, .. } => id,
        }
    }

    /// Calls `f` with the data octets of LCP's own codes, as consecutive parts.
    fn with_own_parts<R>(&self, f: impl FnOnce(&[&[u8]]) -> R) -> Option<R> {
        Some(match *self {
            Repr::ProtocolReject {
                protocol,
                information,
                ..
            } => f(&[&u16::from(protocol).to_be_bytes(), information]),
            Repr::EchoRequest { magic, data, .. }
            | Repr::EchoReply { magic, data, .. }
            | Repr::DiscardRequest { magic, data, .. }
            | Repr::Identification {
                magic,
                message: data,
                ..
            } => f(&[&magic.to_be_bytes(), data]),
            Repr::TimeRemaining {
                magic,
                seconds,
                message,
                ..
            } => f(&[&magic.to_be_bytes(), &seconds.to_be_bytes(), message]),
            _ => return None,
        })
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        match self.as_common() {
            Some(common) => common.buffer_len(),
            None => self
                .with_own_parts(cp::parts_len)
                .unwrap_or(0)
                .saturating_add(cp::HEADER_LEN),
        }
    }

    /// Writes the packet into the front of `packet`, Length included.
    ///
    /// `BufferTooSmall` if the buffer is shorter than [`buffer_len`](Self::buffer_len),
    /// `Malformed` if that exceeds 65535; nothing is written then.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut CpPacket<&mut T>,
    ) -> Result<()> {
        if let Some(common) = self.as_common() {
            return common.emit(packet);
        }
        let (code, id) = (self.code(), self.id());
        self.with_own_parts(|parts| cp::emit_parts(packet, code, id, parts))
            .unwrap_or(Ok(()))
    }
}

/// pppd's log format: `ConfReq id=0x1 <asyncmap 0x0> <magic 0x56139dac> <pcomp> <accomp>`.
impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(common) = self.as_common() {
            return fmt::Display::fmt(&common.display::<LcpOption<'_>>(), f);
        }
        write!(f, "{} id=0x{:x}", self.code(), self.id())?;
        let hex = |f: &mut fmt::Formatter<'_>, data: &[u8]| {
            if data.is_empty() {
                return Ok(());
            }
            f.write_str(" <")?;
            cp::fmt_hex(f, data)?;
            f.write_str(">")
        };
        match *self {
            Repr::ProtocolReject {
                protocol,
                information,
                ..
            } => {
                write!(f, " proto=0x{:x}", u16::from(protocol))?;
                hex(f, information)
            }
            Repr::EchoRequest { magic, data, .. }
            | Repr::EchoReply { magic, data, .. }
            | Repr::DiscardRequest { magic, data, .. } => {
                write!(f, " magic=0x{magic:x}")?;
                hex(f, data)
            }
            Repr::Identification { magic, message, .. } => {
                write!(f, " magic=0x{magic:x}")?;
                cp::fmt_data(f, message)
            }
            Repr::TimeRemaining {
                magic,
                seconds,
                message,
                ..
            } => {
                write!(f, " magic=0x{magic:x} seconds={seconds}")?;
                cp::fmt_data(f, message)
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // The reference capture's LCP packets (Debian pptp-linux/pppd client, Poptop/pppd server).
    use crate::testing::reference::lcp::{
        CLIENT_CONFACK, CLIENT_CONFREQ, CLIENT_ECHO_REQUEST, CLIENT_TERMREQ, PROTREJ_IPV6CP,
        SERVER_CONFREQ, SERVER_ECHO_REPLY, SERVER_TERMACK,
    };

    fn parse(bytes: &[u8]) -> Result<Repr<'_>> {
        Repr::parse(&CpPacket::new_checked(bytes)?)
    }

    fn emit(repr: &Repr<'_>) -> Vec<u8> {
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut CpPacket::new_unchecked(&mut out[..]))
            .unwrap();
        out
    }

    fn options(list: &[u8]) -> Vec<LcpOption<'_>> {
        LcpOption::iter(list).collect::<Result<_>>().unwrap()
    }

    #[test]
    fn deconstruct_client_confreq() {
        let packet = CpPacket::new_checked(&CLIENT_CONFREQ[..]).unwrap();
        assert_eq!(packet.code(), Code::ConfigureRequest);
        assert_eq!(packet.identifier(), 1);
        assert_eq!(packet.length(), 20);
        let raw: Vec<_> = packet.options().map(|o| o.unwrap().kind).collect();
        assert_eq!(raw, [2, 5, 7, 8]);
    }

    #[test]
    fn parse_client_confreq() {
        let repr = parse(&CLIENT_CONFREQ).unwrap();
        let Repr::Common(cp::Repr::ConfigureRequest {
            id: 1,
            options: list,
        }) = repr
        else {
            panic!("{repr:?}");
        };
        assert_eq!(
            options(list),
            [
                LcpOption::Accm(0),
                LcpOption::MagicNumber(0x5613_9dac),
                LcpOption::Pfc,
                LcpOption::Acfc,
            ]
        );
        // The same decode as pppd-server.log: "rcvd [LCP ConfReq id=0x1 ...]".
        assert_eq!(
            repr.to_string(),
            "ConfReq id=0x1 <asyncmap 0x0> <magic 0x56139dac> <pcomp> <accomp>"
        );
    }

    #[test]
    fn parse_server_confreq() {
        let repr = parse(&SERVER_CONFREQ).unwrap();
        let Repr::Common(cp::Repr::ConfigureRequest {
            id: 1,
            options: list,
        }) = repr
        else {
            panic!("{repr:?}");
        };
        let opts = options(list);
        assert_eq!(
            opts,
            [
                LcpOption::Accm(0),
                LcpOption::AuthProtocol {
                    protocol: Protocol::Chap,
                    data: &[0x81]
                },
                LcpOption::MagicNumber(0x7871_55cf),
                LcpOption::Pfc,
                LcpOption::Acfc,
            ]
        );
        assert_eq!(opts[1].auth_method(), Some(AuthMethod::MS_CHAP_V2));
        assert_eq!(opts[0].auth_method(), None);
        assert_eq!(
            repr.to_string(),
            "ConfReq id=0x1 <asyncmap 0x0> <auth chap MS-v2> <magic 0x787155cf> <pcomp> <accomp>"
        );
    }

    #[test]
    fn construct_server_confreq() {
        let mut buf = [0u8; 64];
        let mut w = cp::ConfigPacketWriter::new(&mut buf, Code::ConfigureRequest, 1).unwrap();
        w.push(&LcpOption::Accm(0)).unwrap();
        w.push(&AuthMethod::MS_CHAP_V2.to_option()).unwrap();
        w.push(&LcpOption::MagicNumber(0x7871_55cf)).unwrap();
        w.push(&LcpOption::Pfc).unwrap();
        w.push(&LcpOption::Acfc).unwrap();
        let n = w.finish();
        assert_eq!(&buf[..n], &SERVER_CONFREQ[..]);
    }

    #[test]
    fn ack_echoes_request() {
        // The client's ConfAck is the server's request with code 2: emit it from the parsed
        // request's options.
        let Repr::Common(cp::Repr::ConfigureRequest { id, options }) =
            parse(&SERVER_CONFREQ).unwrap()
        else {
            panic!()
        };
        let ack = Repr::Common(cp::Repr::ConfigureAck { id, options });
        assert_eq!(emit(&ack), CLIENT_CONFACK);
        assert_eq!(parse(&CLIENT_CONFACK).unwrap(), ack);
    }

    #[test]
    fn echo() {
        let request = parse(&CLIENT_ECHO_REQUEST).unwrap();
        assert_eq!(
            request,
            Repr::EchoRequest {
                id: 0,
                magic: 0x5613_9dac,
                data: &[]
            }
        );
        assert_eq!(request.to_string(), "EchoReq id=0x0 magic=0x56139dac");
        assert_eq!(emit(&request), CLIENT_ECHO_REQUEST);

        let reply = Repr::EchoReply {
            id: 0,
            magic: 0x7871_55cf,
            data: &[],
        };
        assert_eq!(reply.buffer_len(), 8);
        assert_eq!(emit(&reply), SERVER_ECHO_REPLY);
        assert_eq!(parse(&SERVER_ECHO_REPLY).unwrap(), reply);
        assert_eq!(reply.to_string(), "EchoRep id=0x0 magic=0x787155cf");

        let with_data = Repr::DiscardRequest {
            id: 3,
            magic: 1,
            data: &[0xab, 0xcd],
        };
        let bytes = emit(&with_data);
        assert_eq!(bytes, [0x0b, 0x03, 0x00, 0x0a, 0, 0, 0, 1, 0xab, 0xcd]);
        assert_eq!(parse(&bytes).unwrap(), with_data);
        assert_eq!(with_data.to_string(), "DiscReq id=0x3 magic=0x1 <abcd>");
    }

    #[test]
    fn terminate() {
        let request = parse(&CLIENT_TERMREQ).unwrap();
        assert_eq!(
            request,
            Repr::Common(cp::Repr::TerminateRequest {
                id: 2,
                data: b"MPPE disabled"
            })
        );
        assert_eq!(request.to_string(), "TermReq id=0x2 \"MPPE disabled\"");
        assert_eq!(emit(&request), CLIENT_TERMREQ);

        let ack = Repr::Common(cp::Repr::TerminateAck { id: 2, data: &[] });
        assert_eq!(parse(&SERVER_TERMACK).unwrap(), ack);
        assert_eq!(emit(&ack), SERVER_TERMACK);
        assert_eq!(ack.to_string(), "TermAck id=0x2");
    }

    #[test]
    fn protocol_reject() {
        let repr = parse(&PROTREJ_IPV6CP).unwrap();
        assert_eq!(
            repr,
            Repr::ProtocolReject {
                id: 5,
                protocol: Protocol::Ipv6cp,
                information: &PROTREJ_IPV6CP[6..]
            }
        );
        assert_eq!(repr.code(), Code::ProtocolReject);
        assert_eq!(repr.as_common(), None);
        assert_eq!(emit(&repr), PROTREJ_IPV6CP);
        assert_eq!(
            repr.to_string(),
            "ProtRej id=0x5 proto=0x8057 <0101000e010ae49519b98d6e6b22>"
        );
        assert!(matches!(
            parse(&[0x08, 0x05, 0x00, 0x05, 0x80]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn code_reject() {
        // Rejecting an unknown code 0x20: the whole packet goes back as data.
        let unknown = [0x20, 0x09, 0x00, 0x06, 0xde, 0xad];
        let repr = parse(&unknown).unwrap();
        assert_eq!(
            repr,
            Repr::Common(cp::Repr::Unknown {
                code: Code::Unknown(0x20),
                id: 9,
                data: &[0xde, 0xad]
            })
        );
        assert_eq!(emit(&repr), unknown);
        let reject = Repr::Common(cp::Repr::CodeReject {
            id: 1,
            rejected_packet: &unknown,
        });
        let bytes = emit(&reject);
        assert_eq!(bytes[..4], [0x07, 0x01, 0x00, 0x0a]);
        assert_eq!(parse(&bytes).unwrap(), reject);
        // CCP's Reset-Request is not an LCP code.
        assert!(matches!(
            parse(&[0x0e, 0x01, 0x00, 0x04]).unwrap(),
            Repr::Common(cp::Repr::Unknown {
                code: Code::ResetRequest,
                ..
            })
        ));
    }

    #[test]
    fn rfc1570_codes() {
        let ident = Repr::Identification {
            id: 4,
            magic: 0x0102_0304,
            message: b"MSRASV5.20",
        };
        let bytes = emit(&ident);
        assert_eq!(bytes[..8], [0x0c, 0x04, 0x00, 0x12, 1, 2, 3, 4]);
        assert_eq!(&bytes[8..], b"MSRASV5.20");
        assert_eq!(parse(&bytes).unwrap(), ident);
        assert_eq!(
            ident.to_string(),
            "Ident id=0x4 magic=0x1020304 \"MSRASV5.20\""
        );

        let remaining = Repr::TimeRemaining {
            id: 5,
            magic: 0,
            seconds: 3600,
            message: b"bye",
        };
        let bytes = emit(&remaining);
        assert_eq!(
            bytes,
            [
                0x0d, 0x05, 0x00, 0x0f, 0, 0, 0, 0, 0, 0, 0x0e, 0x10, b'b', b'y', b'e'
            ]
        );
        assert_eq!(parse(&bytes).unwrap(), remaining);
        assert!(matches!(
            parse(&[0x0d, 0x05, 0x00, 0x0b, 0, 0, 0, 0, 0, 0, 0x0e]),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn short_fixed_fields() {
        for code in [9u8, 10, 11, 12] {
            let bytes = [code, 0, 0x00, 0x07, 0x56, 0x13, 0x9d];
            assert!(
                matches!(parse(&bytes), Err(Error::Malformed(_))),
                "code {code}"
            );
        }
        assert_eq!(parse(&CLIENT_ECHO_REQUEST[..7]), Err(Error::Truncated));
    }

    #[test]
    fn emit_errors() {
        let mut small = [0u8; 7];
        let repr = Repr::EchoRequest {
            id: 0,
            magic: 1,
            data: &[],
        };
        assert_eq!(
            repr.emit(&mut CpPacket::new_unchecked(&mut small[..])),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(small, [0; 7]);
        let big = vec![0u8; 65532];
        let repr = Repr::EchoRequest {
            id: 0,
            magic: 1,
            data: &big,
        };
        let mut out = vec![0u8; 70000];
        assert!(matches!(
            repr.emit(&mut CpPacket::new_unchecked(&mut out[..])),
            Err(Error::Malformed(_))
        ));
    }

    #[test]
    fn option_lengths_checked() {
        let bad: &[(u8, &[u8])] = &[
            (1, &[0x05]),
            (2, &[0, 0, 0]),
            (3, &[0xc0]),
            (4, &[]),
            (5, &[0, 0, 0, 0, 0]),
            (7, &[0]),
            (8, &[0]),
            (13, &[]),
            (17, &[1, 2, 3]),
            (18, &[1]),
            (19, &[]),
            (23, &[1]),
        ];
        for &(kind, data) in bad {
            assert!(
                matches!(
                    LcpOption::parse(RawOption { kind, data }),
                    Err(Error::Malformed(_))
                ),
                "type {kind}"
            );
        }
        // A bad length for one option does not end the walk.
        let list = [0x01, 0x03, 0x05, 0x07, 0x02];
        let items: Vec<_> = LcpOption::iter(&list).collect();
        assert!(items[0].is_err());
        assert_eq!(items[1], Ok(LcpOption::Pfc));
    }

    #[test]
    fn option_round_trips() {
        let cases: &[(LcpOption<'_>, &[u8])] = &[
            (LcpOption::Mru(1400), &[0x01, 0x04, 0x05, 0x78]),
            (
                LcpOption::Accm(0x000a_0000),
                &[0x02, 0x06, 0x00, 0x0a, 0x00, 0x00],
            ),
            (AuthMethod::Pap.to_option(), &[0x03, 0x04, 0xc0, 0x23]),
            (
                AuthMethod::CHAP_MD5.to_option(),
                &[0x03, 0x05, 0xc2, 0x23, 0x05],
            ),
            (
                AuthMethod::MS_CHAP_V1.to_option(),
                &[0x03, 0x05, 0xc2, 0x23, 0x80],
            ),
            (
                LcpOption::QualityProtocol {
                    protocol: Protocol::Lqr,
                    data: &[0, 0, 0x0b, 0xb8],
                },
                &[0x04, 0x08, 0xc0, 0x25, 0x00, 0x00, 0x0b, 0xb8],
            ),
            (LcpOption::Pfc, &[0x07, 0x02]),
            (
                LcpOption::Callback {
                    operation: 6,
                    message: &[],
                },
                &[0x0d, 0x03, 0x06],
            ),
            (LcpOption::Mrru(1600), &[0x11, 0x04, 0x06, 0x40]),
            (LcpOption::ShortSequence, &[0x12, 0x02]),
            (
                LcpOption::EndpointDiscriminator {
                    class: 2,
                    address: &[10, 0, 0, 1],
                },
                &[0x13, 0x07, 0x02, 10, 0, 0, 1],
            ),
            (LcpOption::LinkDiscriminator(7), &[0x17, 0x04, 0x00, 0x07]),
            (
                LcpOption::Unknown {
                    kind: 9,
                    data: &[1],
                },
                &[0x09, 0x03, 0x01],
            ),
        ];
        for (option, bytes) in cases {
            let mut buf = [0u8; 16];
            let n = option.emit(&mut buf).unwrap();
            assert_eq!(&buf[..n], *bytes, "{option:?}");
            assert_eq!(option.buffer_len(), bytes.len());
            let (raw, rest) = RawOption::parse(bytes).unwrap();
            assert!(rest.is_empty());
            assert_eq!(LcpOption::parse(raw).unwrap(), *option);
        }
        assert_eq!(
            AuthMethod::from_option(Protocol::Chap, &[0x07]),
            Some(AuthMethod::Chap(ChapAlgorithm::Unknown(7)))
        );
        assert_eq!(AuthMethod::from_option(Protocol::Chap, &[]), None);
        assert_eq!(AuthMethod::from_option(Protocol::Pap, &[1]), None);
        assert_eq!(AuthMethod::from_option(Protocol::from(0xc227), &[]), None);
        assert_eq!(AuthMethod::Pap.to_option().to_string(), "auth pap");
        assert_eq!(
            AuthMethod::MS_CHAP_V1.to_option().to_string(),
            "auth chap MS"
        );
        assert_eq!(
            LcpOption::AuthProtocol {
                protocol: Protocol::from(0xc227),
                data: &[]
            }
            .to_string(),
            "auth 0xc227"
        );
        assert_eq!(LcpOption::Mru(1400).option_type(), OptionType::Mru);
    }

    /// Owned stand-in for an `LcpOption`, for generating lists.
    #[derive(Debug, Clone)]
    enum Arb {
        Mru(u16),
        Accm(u32),
        Auth(u16, Vec<u8>),
        Quality(u16, Vec<u8>),
        Magic(u32),
        Pfc,
        Acfc,
        Callback(u8, Vec<u8>),
        Mrru(u16),
        Ssn,
        Endpoint(u8, Vec<u8>),
        Link(u16),
        Unknown(u8, Vec<u8>),
    }

    impl Arb {
        fn option(&self) -> LcpOption<'_> {
            match self {
                Arb::Mru(v) => LcpOption::Mru(*v),
                Arb::Accm(v) => LcpOption::Accm(*v),
                Arb::Auth(protocol, data) => LcpOption::AuthProtocol {
                    protocol: Protocol::from(*protocol),
                    data,
                },
                Arb::Quality(protocol, data) => LcpOption::QualityProtocol {
                    protocol: Protocol::from(*protocol),
                    data,
                },
                Arb::Magic(v) => LcpOption::MagicNumber(*v),
                Arb::Pfc => LcpOption::Pfc,
                Arb::Acfc => LcpOption::Acfc,
                Arb::Callback(operation, message) => LcpOption::Callback {
                    operation: *operation,
                    message,
                },
                Arb::Mrru(v) => LcpOption::Mrru(*v),
                Arb::Ssn => LcpOption::ShortSequence,
                Arb::Endpoint(class, address) => LcpOption::EndpointDiscriminator {
                    class: *class,
                    address,
                },
                Arb::Link(v) => LcpOption::LinkDiscriminator(*v),
                Arb::Unknown(kind, data) => LcpOption::Unknown { kind: *kind, data },
            }
        }
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(any::<u8>(), 0..=max)
    }

    fn arb_option() -> impl Strategy<Value = Arb> {
        let unknown_kind = any::<u8>().prop_filter("unlisted type", |k| {
            matches!(OptionType::from(*k), OptionType::Unknown(_))
        });
        prop_oneof![
            any::<u16>().prop_map(Arb::Mru),
            any::<u32>().prop_map(Arb::Accm),
            (any::<u16>(), bytes(251)).prop_map(|(p, d)| Arb::Auth(p, d)),
            (any::<u16>(), bytes(251)).prop_map(|(p, d)| Arb::Quality(p, d)),
            any::<u32>().prop_map(Arb::Magic),
            Just(Arb::Pfc),
            Just(Arb::Acfc),
            (any::<u8>(), bytes(252)).prop_map(|(o, m)| Arb::Callback(o, m)),
            any::<u16>().prop_map(Arb::Mrru),
            Just(Arb::Ssn),
            (any::<u8>(), bytes(252)).prop_map(|(c, a)| Arb::Endpoint(c, a)),
            any::<u16>().prop_map(Arb::Link),
            (unknown_kind, bytes(253)).prop_map(|(k, d)| Arb::Unknown(k, d)),
        ]
    }

    proptest! {
        #[test]
        fn option_lists_round_trip(list in proptest::collection::vec(arb_option(), 0..10)) {
            let options: Vec<_> = list.iter().map(Arb::option).collect();
            let mut buf = vec![0u8; 10 * 255];
            let written = cp::testing::write_options(&mut buf, &options);
            let parsed: Vec<_> = LcpOption::iter(written).collect::<Result<_>>().unwrap();
            prop_assert_eq!(parsed, options);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(repr) = Repr::parse(&CpPacket::new_unchecked(&bytes[..])) {
                let _ = repr.to_string();
                let out = emit(&repr);
                prop_assert_eq!(&out[..], &bytes[..out.len()]);
            }
            for option in LcpOption::iter(&bytes).flatten() {
                let _ = option.to_string();
            }
        }
    }
}
