//! CCP, the Compression Control Protocol (RFC 1962), and its MPPE/MPPC option (RFC 3078 §2).
//!
//! Over PPTP, CCP exists to negotiate MPPE: one option, type 18, whose 32 Supported Bits say
//! which key lengths and which mode (stateless or stateful) each end accepts. A Configure-
//! Request lists everything the sender can do; the Nak narrows it to one key length.
//! [`MppeBits`] holds those bits. The other compression options are kept by name with their
//! bytes, to be rejected.
//!
//! CCP adds Reset-Request and Reset-Ack (RFC 1962 §2.1) to the common codes: a stateful MPPE
//! decryptor that lost sync sends Reset-Request.

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign, Not};

use super::cp::{self, Code, ConfigOption, CpPacket, OptionIter, RawOption};
use super::{Error, Result};

enum_with_unknown! {
    /// CCP option types (RFC 1962 §3 and the IANA PPP CCP registry).
    pub enum OptionType(u8) {
        Oui = 0,
        Predictor1 = 1,
        Predictor2 = 2,
        Puddle = 3,
        Hp = 16,
        Stac = 17,
        /// Microsoft PPC: MPPE and MPPC (RFC 3078 §2, RFC 2118).
        Mppe = 18,
        Gandalf = 19,
        V42bis = 20,
        BsdCompress = 21,
        LzsDcp = 23,
        /// Deflate under its draft number, which pppd still offers (`deflate(old#)`).
        DeflateDraft = 24,
        /// Deflate, RFC 1979.
        Deflate = 26,
    }
}

/// The Supported Bits of the MPPE option (RFC 3078 §2), most significant octet first.
///
/// A hand-written bit set: the named constants, plus any bits RFC 3078 does not define,
/// which are kept (pppd shows them as `+U` and rejects them; so should we).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MppeBits(u32);

impl MppeBits {
    /// H: stateless mode, a new key for every packet (RFC 3078 §2; what Windows and pppd use).
    pub const H: MppeBits = MppeBits(0x0100_0000);
    /// M: 56-bit session keys (RFC 3079 §3).
    pub const M: MppeBits = MppeBits(0x0000_0080);
    /// S: 128-bit session keys.
    pub const S: MppeBits = MppeBits(0x0000_0040);
    /// L: 40-bit session keys.
    pub const L: MppeBits = MppeBits(0x0000_0020);
    /// D: obsolete (an early 56-bit draft); never to be agreed.
    pub const D: MppeBits = MppeBits(0x0000_0010);
    /// C: MPPC compression (RFC 2118), not encryption.
    pub const C: MppeBits = MppeBits(0x0000_0001);
    /// Every bit RFC 3078 defines.
    pub const KNOWN: MppeBits = MppeBits(0x0100_00f1);

    /// No bits set.
    pub const fn empty() -> MppeBits {
        MppeBits(0)
    }

    /// From the 32-bit field, keeping every bit (known or not).
    pub const fn from_bits(bits: u32) -> MppeBits {
        MppeBits(bits)
    }

    /// The 32-bit field.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: MppeBits) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: MppeBits) -> bool {
        self.0 & other.0 != 0
    }

    /// Sets or clears the bits of `other`.
    pub fn set(&mut self, other: MppeBits, on: bool) {
        if on {
            self.0 |= other.0;
        } else {
            self.0 &= !other.0;
        }
    }

    /// Copy with the bits of `other` set or cleared.
    #[must_use]
    pub const fn with(self, other: MppeBits, on: bool) -> MppeBits {
        if on {
            MppeBits(self.0 | other.0)
        } else {
            MppeBits(self.0 & !other.0)
        }
    }

    /// H: stateless mode.
    pub const fn stateless(self) -> bool {
        self.contains(Self::H)
    }

    /// S: 128-bit keys.
    pub const fn key_128(self) -> bool {
        self.contains(Self::S)
    }

    /// M: 56-bit keys.
    pub const fn key_56(self) -> bool {
        self.contains(Self::M)
    }

    /// L: 40-bit keys.
    pub const fn key_40(self) -> bool {
        self.contains(Self::L)
    }

    /// D: the obsolete bit.
    pub const fn obsolete_d(self) -> bool {
        self.contains(Self::D)
    }

    /// C: MPPC compression.
    pub const fn mppc(self) -> bool {
        self.contains(Self::C)
    }

    /// The bits RFC 3078 does not define.
    pub const fn unknown(self) -> MppeBits {
        MppeBits(self.0 & !Self::KNOWN.0)
    }
}

impl BitOr for MppeBits {
    type Output = MppeBits;
    fn bitor(self, rhs: MppeBits) -> MppeBits {
        MppeBits(self.0 | rhs.0)
    }
}

impl BitOrAssign for MppeBits {
    fn bitor_assign(&mut self, rhs: MppeBits) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for MppeBits {
    type Output = MppeBits;
    fn bitand(self, rhs: MppeBits) -> MppeBits {
        MppeBits(self.0 & rhs.0)
    }
}

impl Not for MppeBits {
    type Output = MppeBits;
    fn not(self) -> MppeBits {
        MppeBits(!self.0)
    }
}

impl From<u32> for MppeBits {
    fn from(bits: u32) -> MppeBits {
        MppeBits(bits)
    }
}

impl From<MppeBits> for u32 {
    fn from(bits: MppeBits) -> u32 {
        bits.0
    }
}

/// pppd's notation without the leading `mppe`: `+H -M +S -L -D -C`, then ` +U (01 00 00 40)`
/// when undefined bits are set.
impl fmt::Display for MppeBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let flags = [
            ('H', Self::H),
            ('M', Self::M),
            ('S', Self::S),
            ('L', Self::L),
            ('D', Self::D),
            ('C', Self::C),
        ];
        for (i, (name, bit)) in flags.into_iter().enumerate() {
            let sign = if self.contains(bit) { '+' } else { '-' };
            let sep = if i == 0 { "" } else { " " };
            write!(f, "{sep}{sign}{name}")?;
        }
        if self.unknown() != MppeBits::empty() {
            let [a, b, c, d] = self.0.to_be_bytes();
            write!(f, " +U ({a:02x} {b:02x} {c:02x} {d:02x})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for MppeBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MppeBits(0x{:08x}: {})", self.0, self)
    }
}

/// A CCP configuration option.
///
/// Only MPPE is decoded, and its length checked (6). The other named types keep their data
/// undecoded: a PPTP concentrator only ever rejects them. Types not listed stay `Unknown`;
/// neither must carry a type that has a variant of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CcpOption<'a> {
    Oui(&'a [u8]),
    Predictor1(&'a [u8]),
    Predictor2(&'a [u8]),
    Puddle(&'a [u8]),
    Hp(&'a [u8]),
    Stac(&'a [u8]),
    /// MPPE/MPPC, RFC 3078 §2.
    Mppe(MppeBits),
    Gandalf(&'a [u8]),
    V42bis(&'a [u8]),
    BsdCompress(&'a [u8]),
    LzsDcp(&'a [u8]),
    DeflateDraft(&'a [u8]),
    Deflate(&'a [u8]),
    /// Any other type, kept as received.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

impl<'a> CcpOption<'a> {
    /// The option's type.
    pub fn option_type(&self) -> OptionType {
        OptionType::from(self.kind())
    }

    /// The MPPE bits, if this is the MPPE option.
    pub fn mppe(&self) -> Option<MppeBits> {
        match *self {
            CcpOption::Mppe(bits) => Some(bits),
            _ => None,
        }
    }

    /// Walks an option list decoding CCP options; see [`OptionIter`] for the error rules.
    pub fn iter(list: &'a [u8]) -> OptionIter<'a, CcpOption<'a>> {
        OptionIter::typed(list)
    }

    /// The data of every variant but `Mppe`.
    fn opaque_data(&self) -> Option<&'a [u8]> {
        match *self {
            CcpOption::Oui(d)
            | CcpOption::Predictor1(d)
            | CcpOption::Predictor2(d)
            | CcpOption::Puddle(d)
            | CcpOption::Hp(d)
            | CcpOption::Stac(d)
            | CcpOption::Gandalf(d)
            | CcpOption::V42bis(d)
            | CcpOption::BsdCompress(d)
            | CcpOption::LzsDcp(d)
            | CcpOption::DeflateDraft(d)
            | CcpOption::Deflate(d)
            | CcpOption::Unknown { data: d, .. } => Some(d),
            CcpOption::Mppe(_) => None,
        }
    }
}

impl<'a> ConfigOption<'a> for CcpOption<'a> {
    fn parse(raw: RawOption<'a>) -> Result<CcpOption<'a>> {
        let d = raw.data;
        Ok(match OptionType::from(raw.kind) {
            OptionType::Mppe => {
                let bits = <[u8; 4]>::try_from(d)
                    .map_err(|_| Error::Malformed("CCP MPPE option length"))?;
                CcpOption::Mppe(MppeBits(u32::from_be_bytes(bits)))
            }
            OptionType::Oui => CcpOption::Oui(d),
            OptionType::Predictor1 => CcpOption::Predictor1(d),
            OptionType::Predictor2 => CcpOption::Predictor2(d),
            OptionType::Puddle => CcpOption::Puddle(d),
            OptionType::Hp => CcpOption::Hp(d),
            OptionType::Stac => CcpOption::Stac(d),
            OptionType::Gandalf => CcpOption::Gandalf(d),
            OptionType::V42bis => CcpOption::V42bis(d),
            OptionType::BsdCompress => CcpOption::BsdCompress(d),
            OptionType::LzsDcp => CcpOption::LzsDcp(d),
            OptionType::DeflateDraft => CcpOption::DeflateDraft(d),
            OptionType::Deflate => CcpOption::Deflate(d),
            OptionType::Unknown(kind) => CcpOption::Unknown { kind, data: d },
        })
    }

    fn kind(&self) -> u8 {
        let kind = match self {
            CcpOption::Oui(_) => OptionType::Oui,
            CcpOption::Predictor1(_) => OptionType::Predictor1,
            CcpOption::Predictor2(_) => OptionType::Predictor2,
            CcpOption::Puddle(_) => OptionType::Puddle,
            CcpOption::Hp(_) => OptionType::Hp,
            CcpOption::Stac(_) => OptionType::Stac,
            CcpOption::Mppe(_) => OptionType::Mppe,
            CcpOption::Gandalf(_) => OptionType::Gandalf,
            CcpOption::V42bis(_) => OptionType::V42bis,
            CcpOption::BsdCompress(_) => OptionType::BsdCompress,
            CcpOption::LzsDcp(_) => OptionType::LzsDcp,
            CcpOption::DeflateDraft(_) => OptionType::DeflateDraft,
            CcpOption::Deflate(_) => OptionType::Deflate,
            CcpOption::Unknown { kind, .. } => return *kind,
        };
        kind.into()
    }

    fn data_len(&self) -> usize {
        self.opaque_data().map_or(4, <[u8]>::len)
    }

    fn emit_data(&self, out: &mut [u8]) {
        match *self {
            CcpOption::Mppe(bits) => cp::write_parts(out, &[&bits.0.to_be_bytes()]),
            _ => cp::write_parts(out, &[self.opaque_data().unwrap_or_default()]),
        }
    }
}

/// pppd's notation: `mppe +H -M +S -L -D -C`, `deflate 15`, `bsd v1 15`; other types by
/// name with their octets in hex.
impl fmt::Display for CcpOption<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            CcpOption::Mppe(bits) => return write!(f, "mppe {bits}"),
            CcpOption::Deflate(&[window, check, ..])
            | CcpOption::DeflateDraft(&[window, check, ..]) => {
                let old = if matches!(self, CcpOption::DeflateDraft(_)) {
                    "(old#)"
                } else {
                    ""
                };
                // RFC 1979 §2.1: window size in the high nibble (log2 minus 8), method low.
                write!(f, "deflate{old} {}", (window >> 4) + 8)?;
                if window & 0x0f != 8 {
                    write!(f, " method {}", window & 0x0f)?;
                }
                if check != 0 {
                    write!(f, " check {check}")?;
                }
                return Ok(());
            }
            // RFC 1977 §2.1: version in the top 3 bits, dictionary bits below.
            CcpOption::BsdCompress(&[vd]) => {
                return write!(f, "bsd v{} {}", vd >> 5, vd & 0x1f);
            }
            CcpOption::Predictor1(&[]) => return f.write_str("predictor 1"),
            CcpOption::Predictor2(&[]) => return f.write_str("predictor 2"),
            CcpOption::Unknown { kind, data } => {
                return fmt::Display::fmt(&RawOption { kind, data }, f);
            }
            CcpOption::Oui(_) => "oui",
            CcpOption::Predictor1(_) => "predictor 1",
            CcpOption::Predictor2(_) => "predictor 2",
            CcpOption::Puddle(_) => "puddle",
            CcpOption::Hp(_) => "hp-ppc",
            CcpOption::Stac(_) => "stac",
            CcpOption::Gandalf(_) => "gandalf",
            CcpOption::V42bis(_) => "v42bis",
            CcpOption::BsdCompress(_) => "bsd",
            CcpOption::LzsDcp(_) => "lzs-dcp",
            CcpOption::DeflateDraft(_) => "deflate(old#)",
            CcpOption::Deflate(_) => "deflate",
        };
        f.write_str(name)?;
        self.opaque_data()
            .unwrap_or_default()
            .iter()
            .try_for_each(|b| write!(f, " {b:02x}"))
    }
}

/// A CCP packet (RFC 1962 §2): the common codes plus Reset-Request and Reset-Ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr<'a> {
    /// The codes every control protocol has (RFC 1661 §5.1 to §5.6), and codes CCP does
    /// not define (`cp::Repr::Unknown`). [`parse`](Repr::parse) never puts Reset-Request or
    /// -Ack here; built by hand with one, it emits the same bytes but parses back as that
    /// code's variant.
    Common(cp::Repr<'a>),
    /// RFC 1962 §2.1: the receiver's decompressor (for MPPE, decryptor) lost sync. The data
    /// is algorithm-specific and usually empty.
    ResetRequest { id: u8, data: &'a [u8] },
    /// RFC 1962 §2.1: the answer to a Reset-Request, echoing its Identifier.
    ResetAck { id: u8, data: &'a [u8] },
}

impl<'a> Repr<'a> {
    /// Parses a CCP packet; checks its length first.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &CpPacket<&'a T>) -> Result<Repr<'a>> {
        Ok(match cp::Repr::parse(packet)? {
            cp::Repr::Unknown {
                code: Code::ResetRequest,
                id,
                data,
            } => Repr::ResetRequest { id, data },
            cp::Repr::Unknown {
                code: Code::ResetAck,
                id,
                data,
            } => Repr::ResetAck { id, data },
            common => Repr::Common(common),
        })
    }

    /// The packet as one of the codes every control protocol shares (Reset-Request and
    /// -Ack come out as `Unknown` with their code), for a generic negotiation automaton.
    pub fn as_common(&self) -> cp::Repr<'a> {
        match *self {
            Repr::Common(common) => common,
            Repr::ResetRequest { id, data } => cp::Repr::Unknown {
                code: Code::ResetRequest,
                id,
                data,
            },
            Repr::ResetAck { id, data } => cp::Repr::Unknown {
                code: Code::ResetAck,
                id,
                data,
            },
        }
    }

    /// The Code this packet is sent with.
    pub fn code(&self) -> Code {
        self.as_common().code()
    }

    /// The Identifier.
    pub fn id(&self) -> u8 {
        self.as_common().id()
    }

    /// Octets [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        self.as_common().buffer_len()
    }

    /// Writes the packet into the front of `packet`, Length included.
    ///
    /// `BufferTooSmall` if the buffer is shorter than [`buffer_len`](Self::buffer_len),
    /// `Malformed` if that exceeds 65535; nothing is written then.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        packet: &mut CpPacket<&mut T>,
    ) -> Result<()> {
        self.as_common().emit(packet)
    }
}

/// pppd's log format: `ConfReq id=0x1 <mppe +H -M +S -L -D -C>`.
impl fmt::Display for Repr<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.as_common().display::<CcpOption<'_>>(), f)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::wire::cp::ConfigPacketWriter;
    use proptest::prelude::*;

    // The reference capture's CCP packets (Debian pptp-linux/pppd client, Poptop/pppd server).
    use crate::testing::reference::ccp::{CONFACK_MPPE, CONFREQ_MPPE};

    fn parse(bytes: &[u8]) -> Result<Repr<'_>> {
        Repr::parse(&CpPacket::new_checked(bytes)?)
    }

    fn emit(repr: &Repr<'_>) -> Vec<u8> {
        let mut out = vec![0u8; repr.buffer_len()];
        repr.emit(&mut CpPacket::new_unchecked(&mut out[..]))
            .unwrap();
        out
    }

    #[test]
    fn mppe_bit_values() {
        // RFC 3078 §2, and pppd's MPPE_*_BIT in net/ppp-comp.h (H in the first octet, the
        // rest in the last).
        assert_eq!(MppeBits::H.bits(), 0x0100_0000);
        assert_eq!(MppeBits::M.bits(), 0x80);
        assert_eq!(MppeBits::S.bits(), 0x40);
        assert_eq!(MppeBits::L.bits(), 0x20);
        assert_eq!(MppeBits::D.bits(), 0x10);
        assert_eq!(MppeBits::C.bits(), 0x01);
        assert_eq!(
            MppeBits::H | MppeBits::M | MppeBits::S | MppeBits::L | MppeBits::D | MppeBits::C,
            MppeBits::KNOWN
        );
    }

    #[test]
    fn mppe_bits_api() {
        let bits = MppeBits::from_bits(0x0100_0040);
        assert!(bits.stateless() && bits.key_128());
        assert!(!bits.key_56() && !bits.key_40() && !bits.obsolete_d() && !bits.mppc());
        assert!(bits.intersects(MppeBits::S | MppeBits::L));
        assert!(!bits.contains(MppeBits::S | MppeBits::L));
        assert_eq!(bits.unknown(), MppeBits::empty());
        assert_eq!(bits.to_string(), "+H -M +S -L -D -C");

        let mut offer = MppeBits::H | MppeBits::S | MppeBits::L;
        offer.set(MppeBits::L, false);
        assert_eq!(offer, bits);
        assert_eq!(bits.with(MppeBits::H, false), MppeBits::S);
        assert_eq!(bits & !MppeBits::H, MppeBits::S);
        let mut acc = MppeBits::empty();
        acc |= MppeBits::C;
        assert_eq!(u32::from(acc), 1);
        assert_eq!(MppeBits::from(0x20u32), MppeBits::L);

        let odd = MppeBits::from_bits(0x0100_0240);
        assert_eq!(odd.unknown().bits(), 0x200);
        assert_eq!(odd.to_string(), "+H -M +S -L -D -C +U (01 00 02 40)");
        assert_eq!(
            format!("{:?}", MppeBits::L | MppeBits::C),
            "MppeBits(0x00000021: -H -M -S +L -D +C)"
        );
    }

    #[test]
    fn deconstruct_confreq() {
        let packet = CpPacket::new_checked(&CONFREQ_MPPE[..]).unwrap();
        assert_eq!(packet.code(), Code::ConfigureRequest);
        assert_eq!(packet.identifier(), 1);
        let raw: Vec<_> = packet.options().collect::<Result<_>>().unwrap();
        assert_eq!(
            raw,
            [RawOption {
                kind: 18,
                data: &[0x01, 0x00, 0x00, 0x40]
            }]
        );
    }

    #[test]
    fn parse_confreq() {
        let repr = parse(&CONFREQ_MPPE).unwrap();
        let Repr::Common(cp::Repr::ConfigureRequest { id: 1, options }) = repr else {
            panic!("{repr:?}")
        };
        let opts: Vec<_> = CcpOption::iter(options).collect::<Result<_>>().unwrap();
        assert_eq!(opts, [CcpOption::Mppe(MppeBits::H | MppeBits::S)]);
        assert_eq!(opts[0].mppe(), Some(MppeBits::from_bits(0x0100_0040)));
        // As both pppd logs decode it.
        assert_eq!(repr.to_string(), "ConfReq id=0x1 <mppe +H -M +S -L -D -C>");
        assert_eq!(
            parse(&CONFACK_MPPE).unwrap().to_string(),
            "ConfAck id=0x1 <mppe +H -M +S -L -D -C>"
        );
    }

    #[test]
    fn construct_confreq() {
        let mut buf = [0u8; 32];
        let mut w = ConfigPacketWriter::new(&mut buf, Code::ConfigureRequest, 1).unwrap();
        w.push(&CcpOption::Mppe(MppeBits::H | MppeBits::S)).unwrap();
        let n = w.finish();
        assert_eq!(&buf[..n], &CONFREQ_MPPE[..]);

        let Repr::Common(cp::Repr::ConfigureRequest { id, options }) =
            parse(&CONFREQ_MPPE).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            emit(&Repr::Common(cp::Repr::ConfigureAck { id, options })),
            CONFACK_MPPE
        );
    }

    #[test]
    fn reset_codes() {
        let request = [0x0e, 0x03, 0x00, 0x04];
        let repr = parse(&request).unwrap();
        assert_eq!(repr, Repr::ResetRequest { id: 3, data: &[] });
        assert_eq!(repr.code(), Code::ResetRequest);
        assert_eq!(repr.to_string(), "ResetReq id=0x3");
        assert_eq!(emit(&repr), request);

        let ack = Repr::ResetAck { id: 3, data: &[] };
        assert_eq!(emit(&ack), [0x0f, 0x03, 0x00, 0x04]);
        assert_eq!(parse(&[0x0f, 0x03, 0x00, 0x04]).unwrap(), ack);
        assert_eq!(
            ack.as_common(),
            cp::Repr::Unknown {
                code: Code::ResetAck,
                id: 3,
                data: &[]
            }
        );
        // Echo is LCP's, not CCP's.
        assert!(matches!(
            parse(&[0x09, 0x00, 0x00, 0x08, 0, 0, 0, 0]).unwrap(),
            Repr::Common(cp::Repr::Unknown {
                code: Code::EchoRequest,
                ..
            })
        ));
        assert_eq!(parse(&[0x0e, 0x03, 0x00, 0x05]), Err(Error::Truncated));
    }

    #[test]
    fn reject_other_compressors() {
        // pppd's default offer: deflate 15, deflate(old#) 15, bsd v1 15. A PPTP server
        // rejects them all, copying each option as received.
        let list = [
            0x1a, 0x04, 0x78, 0x00, 0x18, 0x04, 0x78, 0x00, 0x15, 0x03, 0x2f,
        ];
        let opts: Vec<_> = CcpOption::iter(&list).collect::<Result<_>>().unwrap();
        assert_eq!(
            opts,
            [
                CcpOption::Deflate(&[0x78, 0x00]),
                CcpOption::DeflateDraft(&[0x78, 0x00]),
                CcpOption::BsdCompress(&[0x2f]),
            ]
        );
        let shown: Vec<_> = opts.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["deflate 15", "deflate(old#) 15", "bsd v1 15"]);

        let mut buf = [0u8; 32];
        let mut w = ConfigPacketWriter::new(&mut buf, Code::ConfigureReject, 4).unwrap();
        for raw in OptionIter::new(&list) {
            w.push(&raw.unwrap()).unwrap();
        }
        let n = w.finish();
        assert_eq!(&buf[..4], &[0x04, 0x04, 0x00, 0x0f]);
        assert_eq!(&buf[4..n], &list[..]);
    }

    #[test]
    fn option_round_trips() {
        let cases: &[(CcpOption<'_>, &[u8])] = &[
            (
                CcpOption::Oui(&[0, 0, 0x0c, 1]),
                &[0x00, 0x06, 0, 0, 0x0c, 1],
            ),
            (CcpOption::Predictor1(&[]), &[0x01, 0x02]),
            (CcpOption::Predictor2(&[]), &[0x02, 0x02]),
            (CcpOption::Puddle(&[1]), &[0x03, 0x03, 1]),
            (CcpOption::Hp(&[0]), &[0x10, 0x03, 0]),
            (CcpOption::Stac(&[0, 1, 3]), &[0x11, 0x05, 0, 1, 3]),
            (
                CcpOption::Mppe(MppeBits::L | MppeBits::S),
                &[0x12, 0x06, 0, 0, 0, 0x60],
            ),
            (CcpOption::Gandalf(&[]), &[0x13, 0x02]),
            (CcpOption::V42bis(&[]), &[0x14, 0x02]),
            (CcpOption::LzsDcp(&[0, 1]), &[0x17, 0x04, 0, 1]),
            (
                CcpOption::Unknown {
                    kind: 0xfe,
                    data: &[7],
                },
                &[0xfe, 0x03, 7],
            ),
        ];
        for (option, bytes) in cases {
            let mut buf = [0u8; 16];
            let n = option.emit(&mut buf).unwrap();
            assert_eq!(&buf[..n], *bytes, "{option:?}");
            let (raw, _) = RawOption::parse(bytes).unwrap();
            assert_eq!(CcpOption::parse(raw).unwrap(), *option);
        }
        assert_eq!(CcpOption::Stac(&[0, 1, 3]).to_string(), "stac 00 01 03");
        assert_eq!(CcpOption::Predictor2(&[]).to_string(), "predictor 2");
        assert_eq!(CcpOption::Mppe(MppeBits::S).option_type(), OptionType::Mppe);
        assert_eq!(CcpOption::Gandalf(&[]).mppe(), None);
    }

    #[test]
    fn mppe_length_checked() {
        for data in [&[][..], &[1, 0, 0], &[1, 0, 0, 0x40, 0]] {
            assert!(matches!(
                CcpOption::parse(RawOption { kind: 18, data }),
                Err(Error::Malformed(_))
            ));
        }
        // Shown by pppd-like Display as the raw option if it cannot be decoded.
        let repr = Repr::Common(cp::Repr::ConfigureRequest {
            id: 1,
            options: &[0x12, 0x05, 0x01, 0x00, 0x00],
        });
        assert_eq!(repr.to_string(), "ConfReq id=0x1 <type=0x12 010000>");
    }

    #[derive(Debug, Clone)]
    enum Arb {
        Mppe(u32),
        Named(u8, Vec<u8>),
    }

    fn arb_option() -> impl Strategy<Value = Arb> {
        prop_oneof![
            any::<u32>().prop_map(Arb::Mppe),
            (
                any::<u8>().prop_filter("not MPPE", |k| *k != 18),
                proptest::collection::vec(any::<u8>(), 0..=253)
            )
                .prop_map(|(k, d)| Arb::Named(k, d)),
        ]
    }

    proptest! {
        #[test]
        fn option_lists_round_trip(list in proptest::collection::vec(arb_option(), 0..10)) {
            // Build through the typed parser so each named type maps to its own variant.
            let options: Vec<CcpOption<'_>> = list
                .iter()
                .map(|a| match a {
                    Arb::Mppe(bits) => CcpOption::Mppe(MppeBits::from_bits(*bits)),
                    Arb::Named(kind, data) => {
                        CcpOption::parse(RawOption { kind: *kind, data }).unwrap()
                    }
                })
                .collect();
            let mut buf = vec![0u8; 10 * 255];
            let written = cp::testing::write_options(&mut buf, &options);
            let parsed: Vec<_> = CcpOption::iter(written).collect::<Result<_>>().unwrap();
            prop_assert_eq!(parsed, options);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(repr) = Repr::parse(&CpPacket::new_unchecked(&bytes[..])) {
                let _ = repr.to_string();
                let out = emit(&repr);
                prop_assert_eq!(&out[..], &bytes[..out.len()]);
            }
            for option in CcpOption::iter(&bytes).flatten() {
                let _ = option.to_string();
            }
        }
    }
}
