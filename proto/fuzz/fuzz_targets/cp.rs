//! PPP control protocols (`wire::cp`, `wire::lcp`, `wire::ipcp`, `wire::ccp`): the first
//! input byte picks LCP, IPCP or CCP; the rest is one control packet.
//!
//! * `CpPacket` getters stay inside Length; the generic `cp::Repr` and the protocol's `Repr`
//!   emit into `buffer_len()` bytes and parse back to themselves, and agree on code and id.
//! * The raw option walk goes to its end: if it fails, `rest()` is the unwalked suffix;
//!   if not, `ConfigPacketWriter` rebuilds the very packet from the raw options.
//! * The typed walk (`LcpOption`, `IpcpOption`, `CcpOption`) yields one item per raw option;
//!   each option it decodes emits the exact raw bytes and parses back to itself.
//! * Display (pppd's log format) never panics.
#![no_main]

use core::fmt::{Debug, Display};

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::cp::{
    self, ConfigOption, ConfigPacketWriter, CpPacket, HEADER_LEN, OptionIter, RawOption,
};
use xpptp_proto::wire::{ccp, ipcp, lcp};

fuzz_target!(|input: &[u8]| {
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    let Ok(packet) = CpPacket::new_checked(data) else {
        return;
    };
    let length = usize::from(packet.length());
    assert!(length >= HEADER_LEN && length <= data.len());
    assert_eq!(packet.data(), &data[HEADER_LEN..length]);
    let (code, id) = (packet.code(), packet.identifier());

    let common = cp::Repr::parse(&packet).expect("a checked packet parses");
    assert_eq!(
        (common.code(), common.id(), common.data()),
        (code, id, packet.data())
    );
    let buf = emitted(common.buffer_len(), |p| common.emit(p));
    assert_eq!(
        cp::Repr::parse(&CpPacket::new_unchecked(&buf[..])),
        Ok(common)
    );
    check_raw_walk(&data[..length], code, id);

    let options = packet.data();
    match selector % 3 {
        0 => {
            check_typed::<lcp::LcpOption>(options);
            check_lcp(&packet);
        }
        1 => {
            check_typed::<ipcp::IpcpOption>(options);
            let _ = common.display::<ipcp::IpcpOption>().to_string();
            for option in ipcp::IpcpOption::iter(options).flatten() {
                if let Some(vj) = option.vj() {
                    assert_eq!(
                        option,
                        ipcp::IpcpOption::IpCompressionProtocol {
                            protocol: ipcp::PROTOCOL_VJ,
                            data: &vj.to_bytes(),
                        }
                    );
                }
            }
        }
        _ => {
            check_typed::<ccp::CcpOption>(options);
            check_ccp(&packet);
        }
    }
});

/// Emits with `emit` into a buffer of `len` bytes, which must then hold a packet of that
/// Length; the caller parses it back.
fn emitted(
    len: usize,
    emit: impl FnOnce(&mut CpPacket<&mut [u8]>) -> xpptp_proto::wire::Result<()>,
) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    emit(&mut CpPacket::new_unchecked(&mut buf[..])).expect("a parsed packet emits");
    let packet = CpPacket::new_checked(&buf[..]).expect("an emitted packet checks");
    assert_eq!(usize::from(packet.length()), len);
    buf
}

/// Walks the data as raw options; rebuilds the packet from them when the walk succeeds.
fn check_raw_walk(packet: &[u8], code: cp::Code, id: u8) {
    let list = &packet[HEADER_LEN..];
    let mut iter = OptionIter::new(list);
    let mut raws = Vec::new();
    let mut walked = 0;
    while let Some(item) = iter.next() {
        match item {
            Ok(raw) => {
                walked += raw.buffer_len();
                raws.push(raw);
            }
            Err(_) => {
                assert!(iter.next().is_none(), "the walk stops after an error");
                assert_eq!(iter.rest(), &list[walked..]);
                return;
            }
        }
    }
    assert_eq!(walked, list.len());
    let mut buf = vec![0u8; packet.len()];
    let mut writer = ConfigPacketWriter::new(&mut buf, code, id).expect("room for the header");
    for raw in &raws {
        writer.push(raw).expect("room for the options");
    }
    assert_eq!(writer.options_len(), list.len());
    assert_eq!(writer.remaining(), 0);
    assert_eq!(writer.finish(), packet.len());
    assert_eq!(buf, packet);
}

/// Walks `list` as options of type `O`, next to a raw walk of the same list.
fn check_typed<'a, O>(list: &'a [u8])
where
    O: ConfigOption<'a> + Display + Debug + PartialEq + 'a,
{
    let mut raw_iter = OptionIter::new(list);
    for typed in OptionIter::<O>::typed(list) {
        let raw = raw_iter.next().expect("one typed item per raw item");
        let Ok(option) = typed else {
            continue;
        };
        let raw = raw.expect("a typed option comes from a good raw option");
        let _ = option.to_string();
        let mut buf = vec![0u8; option.buffer_len()];
        assert_eq!(option.emit(&mut buf), Ok(buf.len()));
        let mut raw_bytes = vec![0u8; raw.buffer_len()];
        assert_eq!(raw.emit(&mut raw_bytes), Ok(raw_bytes.len()));
        assert_eq!(
            buf, raw_bytes,
            "{option:?} does not emit what it was parsed from"
        );
        assert_eq!(
            RawOption::parse(&buf).map(|(r, _)| r.kind),
            Ok(option.kind())
        );
    }
    assert!(raw_iter.next().is_none(), "typed walk ended early");
}

fn check_lcp(packet: &CpPacket<&[u8]>) {
    let Ok(repr) = lcp::Repr::parse(packet) else {
        return;
    };
    assert_eq!(
        (repr.code(), repr.id()),
        (packet.code(), packet.identifier())
    );
    if let Some(common) = repr.as_common() {
        assert_eq!(common, cp::Repr::parse(packet).expect("checked"));
    }
    let _ = repr.to_string();
    let buf = emitted(repr.buffer_len(), |p| repr.emit(p));
    assert_eq!(
        lcp::Repr::parse(&CpPacket::new_unchecked(&buf[..])),
        Ok(repr)
    );
    if let lcp::Repr::Common(cp::Repr::ConfigureRequest { options, .. }) = repr {
        for option in lcp::LcpOption::iter(options).flatten() {
            if let Some(method) = option.auth_method() {
                assert_eq!(method.to_option(), option);
                assert_eq!(option.auth_method(), Some(method));
            }
        }
    }
}

fn check_ccp(packet: &CpPacket<&[u8]>) {
    let repr = ccp::Repr::parse(packet).expect("every checked packet is a CCP packet");
    assert_eq!(
        (repr.code(), repr.id()),
        (packet.code(), packet.identifier())
    );
    assert_eq!(repr.as_common().data(), packet.data());
    let _ = repr.to_string();
    let buf = emitted(repr.buffer_len(), |p| repr.emit(p));
    assert_eq!(
        ccp::Repr::parse(&CpPacket::new_unchecked(&buf[..])),
        Ok(repr)
    );
    for bits in ccp::CcpOption::iter(packet.data())
        .flatten()
        .filter_map(|o| o.mppe())
    {
        use ccp::MppeBits as B;
        assert_eq!(B::from_bits(bits.bits()), bits);
        assert_eq!(bits.unknown().bits() & B::KNOWN.bits(), 0);
        assert_eq!(bits.stateless(), bits.contains(B::H));
        let _ = (
            bits.key_128(),
            bits.key_56(),
            bits.key_40(),
            bits.obsolete_d(),
            bits.mppc(),
        );
        let mut cleared = bits;
        cleared.set(B::KNOWN, false);
        assert_eq!(cleared, bits.unknown());
        assert_eq!(bits.with(B::H, true), bits | B::H);
        assert!(!bits.with(B::S, false).intersects(B::S));
        let _ = (bits.to_string(), format!("{bits:?}"));
    }
}
