//! IPCP, the IP Control Protocol (RFC 1332), with Microsoft's DNS/NBNS options (RFC 1877).
//!
//! IPCP packets are plain control packets with codes 1 to 7 (RFC 1332 §2), so
//! [`Repr`] is [`cp::Repr`]; anything else is `Unknown` and must be Code-Rejected. This module
//! adds the options: the address the client is given (a client asks for `0.0.0.0` and the
//! server Naks with the address it assigns), the DNS and NBNS servers Windows asks for, and
//! Van Jacobson compression, which PPTP servers usually reject.
//!
//! Display a packet in pppd's log format with `repr.display::<IpcpOption>()`.

use core::fmt;
use core::net::Ipv4Addr;

use super::cp::{self, ConfigOption, OptionIter, RawOption};
use super::{Error, Result};

/// An IPCP packet: the codes every control protocol shares, and nothing more.
pub type Repr<'a> = cp::Repr<'a>;

enum_with_unknown! {
    /// IPCP configuration option types (RFC 1332 §3, RFC 1877 §1).
    pub enum OptionType(u8) {
        IpAddresses = 1,
        IpCompressionProtocol = 2,
        IpAddress = 3,
        PrimaryDns = 129,
        PrimaryNbns = 130,
        SecondaryDns = 131,
        SecondaryNbns = 132,
    }
}

/// Van Jacobson TCP/IP header compression, as IP-Compression-Protocol names it (RFC 1332 §4).
pub const PROTOCOL_VJ: u16 = 0x002d;

/// The number RFC 1172 gave VJ compression by mistake; old peers still send it (pppd
/// prints it as `old-VJ`).
pub const PROTOCOL_VJ_OLD: u16 = 0x0037;

/// The parameters of VJ compression (RFC 1332 §4): the highest slot number, and whether the
/// slot id may be compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VjCompression {
    /// Max-Slot-Id: the number of slots minus one.
    pub max_slot_id: u8,
    /// Comp-Slot-Id: 1 if the slot id may be omitted, 0 if not.
    pub comp_slot_id: u8,
}

impl VjCompression {
    /// The option data after the protocol number, for
    /// [`IpcpOption::IpCompressionProtocol`] with [`PROTOCOL_VJ`].
    pub fn to_bytes(&self) -> [u8; 2] {
        [self.max_slot_id, self.comp_slot_id]
    }
}

/// An IPCP configuration option.
///
/// Parsing checks each option's length against its type (`Malformed` if wrong). Types not
/// listed stay `Unknown`, to be rejected as received; `Unknown` must not carry a listed type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpcpOption<'a> {
    /// IP-Addresses, RFC 1332 §3.1: deprecated (RFC 1172), both ends' addresses at once.
    IpAddresses {
        source: Ipv4Addr,
        destination: Ipv4Addr,
    },
    /// IP-Compression-Protocol, RFC 1332 §3.2: protocol number, then its parameters
    /// (see [`IpcpOption::vj`]).
    IpCompressionProtocol { protocol: u16, data: &'a [u8] },
    /// IP-Address, RFC 1332 §3.3: the sender's own address; `0.0.0.0` asks the peer to
    /// assign one (in a Nak).
    IpAddress(Ipv4Addr),
    /// Primary-DNS-Server-Address, RFC 1877 §1.1.
    PrimaryDns(Ipv4Addr),
    /// Primary-NBNS-Server-Address (WINS), RFC 1877 §1.2.
    PrimaryNbns(Ipv4Addr),
    /// Secondary-DNS-Server-Address, RFC 1877 §1.3.
    SecondaryDns(Ipv4Addr),
    /// Secondary-NBNS-Server-Address (WINS), RFC 1877 §1.4.
    SecondaryNbns(Ipv4Addr),
    /// Any other type, kept as received.
    Unknown { kind: u8, data: &'a [u8] },
}

impl<'a> IpcpOption<'a> {
    /// The option's type.
    pub fn option_type(&self) -> OptionType {
        OptionType::from(self.kind())
    }

    /// The VJ parameters, if this is IP-Compression-Protocol naming VJ with its two octets.
    pub fn vj(&self) -> Option<VjCompression> {
        match *self {
            IpcpOption::IpCompressionProtocol {
                protocol: PROTOCOL_VJ,
                data: &[max_slot_id, comp_slot_id],
            } => Some(VjCompression {
                max_slot_id,
                comp_slot_id,
            }),
            _ => None,
        }
    }

    /// Walks an option list decoding IPCP options; see [`OptionIter`] for the error rules.
    pub fn iter(list: &'a [u8]) -> OptionIter<'a, IpcpOption<'a>> {
        OptionIter::typed(list)
    }
}

fn address(data: &[u8], what: &'static str) -> Result<Ipv4Addr> {
    <[u8; 4]>::try_from(data)
        .map(Ipv4Addr::from)
        .map_err(|_| Error::Malformed(what))
}

impl<'a> ConfigOption<'a> for IpcpOption<'a> {
    fn parse(raw: RawOption<'a>) -> Result<IpcpOption<'a>> {
        let data = raw.data;
        Ok(match OptionType::from(raw.kind) {
            OptionType::IpAddresses => {
                let what = "IPCP IP-Addresses length";
                let bytes = <[u8; 8]>::try_from(data).map_err(|_| Error::Malformed(what))?;
                let (source, destination) = bytes.split_at(4);
                IpcpOption::IpAddresses {
                    source: address(source, what)?,
                    destination: address(destination, what)?,
                }
            }
            OptionType::IpCompressionProtocol => {
                let (protocol, data) = data
                    .split_first_chunk::<2>()
                    .ok_or(Error::Malformed("IPCP IP-Compression-Protocol length"))?;
                IpcpOption::IpCompressionProtocol {
                    protocol: u16::from_be_bytes(*protocol),
                    data,
                }
            }
            OptionType::IpAddress => {
                IpcpOption::IpAddress(address(data, "IPCP IP-Address length")?)
            }
            OptionType::PrimaryDns => {
                IpcpOption::PrimaryDns(address(data, "IPCP Primary-DNS length")?)
            }
            OptionType::PrimaryNbns => {
                IpcpOption::PrimaryNbns(address(data, "IPCP Primary-NBNS length")?)
            }
            OptionType::SecondaryDns => {
                IpcpOption::SecondaryDns(address(data, "IPCP Secondary-DNS length")?)
            }
            OptionType::SecondaryNbns => {
                IpcpOption::SecondaryNbns(address(data, "IPCP Secondary-NBNS length")?)
            }
            OptionType::Unknown(kind) => IpcpOption::Unknown { kind, data },
        })
    }

    fn kind(&self) -> u8 {
        let kind = match self {
            IpcpOption::IpAddresses { .. } => OptionType::IpAddresses,
            IpcpOption::IpCompressionProtocol { .. } => OptionType::IpCompressionProtocol,
            IpcpOption::IpAddress(_) => OptionType::IpAddress,
            IpcpOption::PrimaryDns(_) => OptionType::PrimaryDns,
            IpcpOption::PrimaryNbns(_) => OptionType::PrimaryNbns,
            IpcpOption::SecondaryDns(_) => OptionType::SecondaryDns,
            IpcpOption::SecondaryNbns(_) => OptionType::SecondaryNbns,
            IpcpOption::Unknown { kind, .. } => return *kind,
        };
        kind.into()
    }

    fn data_len(&self) -> usize {
        match self {
            IpcpOption::IpAddresses { .. } => 8,
            IpcpOption::IpCompressionProtocol { data, .. } => data.len().saturating_add(2),
            IpcpOption::IpAddress(_)
            | IpcpOption::PrimaryDns(_)
            | IpcpOption::PrimaryNbns(_)
            | IpcpOption::SecondaryDns(_)
            | IpcpOption::SecondaryNbns(_) => 4,
            IpcpOption::Unknown { data, .. } => data.len(),
        }
    }

    fn emit_data(&self, out: &mut [u8]) {
        match *self {
            IpcpOption::IpAddresses {
                source,
                destination,
            } => cp::write_parts(out, &[&source.octets(), &destination.octets()]),
            IpcpOption::IpCompressionProtocol { protocol, data } => {
                cp::write_parts(out, &[&protocol.to_be_bytes(), data])
            }
            IpcpOption::IpAddress(a)
            | IpcpOption::PrimaryDns(a)
            | IpcpOption::PrimaryNbns(a)
            | IpcpOption::SecondaryDns(a)
            | IpcpOption::SecondaryNbns(a) => cp::write_parts(out, &[&a.octets()]),
            IpcpOption::Unknown { data, .. } => cp::write_parts(out, &[data]),
        }
    }
}

/// pppd's option notation: `addr 192.168.77.10`, `compress VJ 0f 01`, `ms-dns1 10.0.0.1`.
impl fmt::Display for IpcpOption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpcpOption::IpAddresses {
                source,
                destination,
            } => write!(f, "addrs {source} {destination}"),
            IpcpOption::IpCompressionProtocol { protocol, data } => {
                match protocol {
                    PROTOCOL_VJ => f.write_str("compress VJ")?,
                    PROTOCOL_VJ_OLD => f.write_str("compress old-VJ")?,
                    _ => write!(f, "compress 0x{protocol:x}")?,
                }
                data.iter().try_for_each(|b| write!(f, " {b:02x}"))
            }
            IpcpOption::IpAddress(a) => write!(f, "addr {a}"),
            IpcpOption::PrimaryDns(a) => write!(f, "ms-dns1 {a}"),
            IpcpOption::SecondaryDns(a) => write!(f, "ms-dns2 {a}"),
            IpcpOption::PrimaryNbns(a) => write!(f, "ms-wins1 {a}"),
            IpcpOption::SecondaryNbns(a) => write!(f, "ms-wins2 {a}"),
            IpcpOption::Unknown { kind, data } => fmt::Display::fmt(&RawOption { kind, data }, f),
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::cp::{Code, ConfigPacketWriter, CpPacket};
    use proptest::prelude::*;

    // The reference capture's IPCP packets (Debian pptp-linux/pppd client, Poptop/pppd server).
    use crate::testing::reference::ipcp::{
        CLIENT_CONFREQ_1, CLIENT_CONFREQ_2, SERVER_CONFACK, SERVER_CONFNAK, SERVER_CONFREJ,
        SERVER_CONFREQ,
    };

    fn parse(bytes: &[u8]) -> Repr<'_> {
        Repr::parse(&CpPacket::new_checked(bytes).unwrap()).unwrap()
    }

    fn options(list: &[u8]) -> Vec<IpcpOption<'_>> {
        IpcpOption::iter(list).collect::<Result<_>>().unwrap()
    }

    #[test]
    fn parse_client_confreq() {
        let repr = parse(&CLIENT_CONFREQ_1);
        let Repr::ConfigureRequest {
            id: 1,
            options: list,
        } = repr
        else {
            panic!("{repr:?}")
        };
        let opts = options(list);
        assert_eq!(
            opts,
            [
                IpcpOption::IpCompressionProtocol {
                    protocol: PROTOCOL_VJ,
                    data: &[0x0f, 0x01]
                },
                IpcpOption::IpAddress(Ipv4Addr::UNSPECIFIED),
            ]
        );
        assert_eq!(
            opts[0].vj(),
            Some(VjCompression {
                max_slot_id: 15,
                comp_slot_id: 1
            })
        );
        assert_eq!(opts[1].vj(), None);
        // As pppd-server.log decodes it.
        assert_eq!(
            repr.display::<IpcpOption>().to_string(),
            "ConfReq id=0x1 <compress VJ 0f 01> <addr 0.0.0.0>"
        );
    }

    #[test]
    fn reject_copies_the_option() {
        // Build the server's Configure-Reject by copying the VJ option out of the request.
        let request = CpPacket::new_checked(&CLIENT_CONFREQ_1[..]).unwrap();
        let mut buf = [0u8; 32];
        let mut w = ConfigPacketWriter::new(&mut buf, Code::ConfigureReject, 1).unwrap();
        for raw in request.options() {
            let raw = raw.unwrap();
            if IpcpOption::parse(raw).unwrap().vj().is_some() {
                w.push(&raw).unwrap();
            }
        }
        let n = w.finish();
        assert_eq!(&buf[..n], &SERVER_CONFREJ[..]);
        assert_eq!(
            parse(&SERVER_CONFREJ).display::<IpcpOption>().to_string(),
            "ConfRej id=0x1 <compress VJ 0f 01>"
        );
    }

    #[test]
    fn nak_assigns_the_address() {
        let Repr::ConfigureRequest { id, options: list } = parse(&CLIENT_CONFREQ_2) else {
            panic!()
        };
        assert_eq!(
            options(list),
            [IpcpOption::IpAddress(Ipv4Addr::UNSPECIFIED)]
        );

        let mut buf = [0u8; 32];
        let mut w = ConfigPacketWriter::new(&mut buf, Code::ConfigureNak, id).unwrap();
        w.push(&IpcpOption::IpAddress(Ipv4Addr::new(192, 168, 77, 10)))
            .unwrap();
        let n = w.finish();
        assert_eq!(&buf[..n], &SERVER_CONFNAK[..]);

        let nak = parse(&SERVER_CONFNAK);
        assert_eq!(
            nak.display::<IpcpOption>().to_string(),
            "ConfNak id=0x2 <addr 192.168.77.10>"
        );
        let ack = Repr::ConfigureAck {
            id: 3,
            options: nak.data(),
        };
        let mut out = [0u8; 10];
        ack.emit(&mut CpPacket::new_unchecked(&mut out[..]))
            .unwrap();
        assert_eq!(out, SERVER_CONFACK);
    }

    #[test]
    fn server_confreq() {
        let repr = parse(&SERVER_CONFREQ);
        assert_eq!(repr.code(), Code::ConfigureRequest);
        assert_eq!(
            options(repr.data()),
            [IpcpOption::IpAddress(Ipv4Addr::new(192, 168, 77, 1))]
        );
    }

    #[test]
    fn non_ipcp_codes_are_unknown() {
        // Echo-Request and Reset-Request are not IPCP codes: they are to be Code-Rejected.
        for code in [9u8, 14] {
            let bytes = [code, 1, 0x00, 0x08, 0, 0, 0, 0];
            assert_eq!(
                parse(&bytes),
                Repr::Unknown {
                    code: Code::from(code),
                    id: 1,
                    data: &[0, 0, 0, 0]
                }
            );
        }
    }

    #[test]
    fn dns_options() {
        // A Nak handing out DNS and WINS servers to a Windows client (RFC 1877).
        let opts = [
            IpcpOption::PrimaryDns(Ipv4Addr::new(10, 0, 0, 1)),
            IpcpOption::PrimaryNbns(Ipv4Addr::new(10, 0, 0, 2)),
            IpcpOption::SecondaryDns(Ipv4Addr::new(10, 0, 0, 3)),
            IpcpOption::SecondaryNbns(Ipv4Addr::new(10, 0, 0, 4)),
        ];
        let mut buf = [0u8; 64];
        let mut w = ConfigPacketWriter::new(&mut buf, Code::ConfigureNak, 7).unwrap();
        for o in &opts {
            w.push(o).unwrap();
        }
        let n = w.finish();
        assert_eq!(
            &buf[..n],
            &[
                0x03, 0x07, 0x00, 0x1c, 0x81, 0x06, 10, 0, 0, 1, 0x82, 0x06, 10, 0, 0, 2, 0x83,
                0x06, 10, 0, 0, 3, 0x84, 0x06, 10, 0, 0, 4
            ][..]
        );
        let repr = parse(&buf[..n]);
        assert_eq!(options(repr.data()), opts);
        assert_eq!(
            repr.display::<IpcpOption>().to_string(),
            "ConfNak id=0x7 <ms-dns1 10.0.0.1> <ms-wins1 10.0.0.2> <ms-dns2 10.0.0.3> \
             <ms-wins2 10.0.0.4>"
        );
        assert_eq!(opts[2].option_type(), OptionType::SecondaryDns);
    }

    #[test]
    fn ip_addresses() {
        let option = IpcpOption::IpAddresses {
            source: Ipv4Addr::new(1, 2, 3, 4),
            destination: Ipv4Addr::new(5, 6, 7, 8),
        };
        let mut buf = [0u8; 10];
        assert_eq!(option.emit(&mut buf), Ok(10));
        assert_eq!(buf, [0x01, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8]);
        let (raw, _) = RawOption::parse(&buf).unwrap();
        assert_eq!(IpcpOption::parse(raw), Ok(option));
        assert_eq!(option.to_string(), "addrs 1.2.3.4 5.6.7.8");
        assert_eq!(option.emit(&mut [0u8; 9]), Err(Error::BufferTooSmall));
    }

    #[test]
    fn option_lengths_checked() {
        let bad: &[(u8, &[u8])] = &[
            (1, &[1, 2, 3, 4]),
            (2, &[0x00]),
            (3, &[0, 0, 0]),
            (3, &[0, 0, 0, 0, 0]),
            (129, &[]),
            (130, &[1, 2, 3]),
            (131, &[1]),
            (132, &[1, 2, 3, 4, 5]),
        ];
        for &(kind, data) in bad {
            assert!(
                matches!(
                    IpcpOption::parse(RawOption { kind, data }),
                    Err(Error::Malformed(_))
                ),
                "type {kind}"
            );
        }
        let unknown = IpcpOption::parse(RawOption {
            kind: 4,
            data: &[9],
        })
        .unwrap();
        assert_eq!(
            unknown,
            IpcpOption::Unknown {
                kind: 4,
                data: &[9]
            }
        );
        assert_eq!(unknown.to_string(), "type=0x4 09");
        let old_vj = IpcpOption::IpCompressionProtocol {
            protocol: PROTOCOL_VJ_OLD,
            data: &[],
        };
        assert_eq!(old_vj.to_string(), "compress old-VJ");
        assert_eq!(old_vj.vj(), None);
    }

    #[derive(Debug, Clone)]
    enum Arb {
        Addrs([u8; 4], [u8; 4]),
        Compression(u16, Vec<u8>),
        Addr(OptionType, [u8; 4]),
        Unknown(u8, Vec<u8>),
    }

    impl Arb {
        fn option(&self) -> IpcpOption<'_> {
            match self {
                Arb::Addrs(s, d) => IpcpOption::IpAddresses {
                    source: (*s).into(),
                    destination: (*d).into(),
                },
                Arb::Compression(protocol, data) => IpcpOption::IpCompressionProtocol {
                    protocol: *protocol,
                    data,
                },
                Arb::Addr(kind, a) => {
                    let a = Ipv4Addr::from(*a);
                    match kind {
                        OptionType::PrimaryDns => IpcpOption::PrimaryDns(a),
                        OptionType::PrimaryNbns => IpcpOption::PrimaryNbns(a),
                        OptionType::SecondaryDns => IpcpOption::SecondaryDns(a),
                        OptionType::SecondaryNbns => IpcpOption::SecondaryNbns(a),
                        _ => IpcpOption::IpAddress(a),
                    }
                }
                Arb::Unknown(kind, data) => IpcpOption::Unknown { kind: *kind, data },
            }
        }
    }

    fn arb_option() -> impl Strategy<Value = Arb> {
        let unknown_kind = any::<u8>().prop_filter("unlisted type", |k| {
            matches!(OptionType::from(*k), OptionType::Unknown(_))
        });
        prop_oneof![
            (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| Arb::Addrs(s, d)),
            (
                any::<u16>(),
                proptest::collection::vec(any::<u8>(), 0..=251)
            )
                .prop_map(|(p, d)| Arb::Compression(p, d)),
            (
                prop_oneof![
                    Just(OptionType::IpAddress),
                    Just(OptionType::PrimaryDns),
                    Just(OptionType::PrimaryNbns),
                    Just(OptionType::SecondaryDns),
                    Just(OptionType::SecondaryNbns),
                ],
                any::<[u8; 4]>()
            )
                .prop_map(|(k, a)| Arb::Addr(k, a)),
            (
                unknown_kind,
                proptest::collection::vec(any::<u8>(), 0..=253)
            )
                .prop_map(|(k, d)| Arb::Unknown(k, d)),
        ]
    }

    proptest! {
        #[test]
        fn option_lists_round_trip(list in proptest::collection::vec(arb_option(), 0..10)) {
            let options: Vec<_> = list.iter().map(Arb::option).collect();
            let mut buf = vec![0u8; 10 * 255];
            let written = cp::testing::write_options(&mut buf, &options);
            let parsed: Vec<_> = IpcpOption::iter(written).collect::<Result<_>>().unwrap();
            prop_assert_eq!(parsed, options);
        }

        #[test]
        fn option_iter_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for option in IpcpOption::iter(&bytes).flatten() {
                let _ = option.to_string();
                let _ = option.vj();
            }
        }
    }
}
