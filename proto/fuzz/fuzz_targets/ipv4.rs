//! IPv4 (`wire::ipv4`): every getter of a checked `Ipv4Packet` stays inside the header and
//! Total Length; `verify_checksum` agrees with `compute_checksum`; `fill_checksum` makes a
//! header verify and `decrement_ttl` (RFC 1624 update) keeps a valid one valid; a parsed
//! `Ipv4Repr` emits a header that parses back to itself, byte for byte the one
//! `Ipv4Template` writes; and `checksum::data` of split buffers combines to the whole.
//!
//! Input: one control byte (bit 0: fill the checksum first, so that valid headers are
//! common; the rest picks a split point), then the packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::ipv4::{
    HEADER_LEN, Ipv4Packet, Ipv4Repr, Ipv4Template, MAX_HEADER_LEN, checksum,
};

fuzz_target!(|input: &[u8]| {
    let Some((&control, rest)) = input.split_first() else {
        return;
    };
    check_sum_split(rest, usize::from(control >> 1) * 2);
    let mut data = rest.to_vec();
    if control & 1 != 0
        && let Ok(mut packet) = Ipv4Packet::new_checked(&mut data[..])
    {
        packet.fill_checksum();
        assert!(packet.verify_checksum());
    }
    let Ok(packet) = Ipv4Packet::new_checked(&data[..]) else {
        return;
    };

    let header_len = usize::from(packet.header_len());
    let total_len = usize::from(packet.total_len());
    assert_eq!(packet.version(), 4);
    assert!((HEADER_LEN..=MAX_HEADER_LEN).contains(&header_len));
    assert!(header_len <= total_len && total_len <= data.len());
    assert_eq!(packet.dscp_ecn(), packet.dscp() << 2 | packet.ecn());
    assert_eq!(packet.options(), &data[HEADER_LEN..header_len]);
    assert_eq!(packet.payload(), &data[header_len..total_len]);
    assert_eq!(
        packet.is_fragment(),
        packet.more_frags() || packet.frag_offset() != 0
    );
    let _ = (
        packet.ident(),
        packet.reserved_flag(),
        packet.dont_frag(),
        packet.ttl(),
    );
    let _ = (packet.protocol(), packet.src_addr(), packet.dst_addr());
    let (stored, computed) = (packet.checksum(), packet.compute_checksum());
    // 0x0000 and 0xffff are both zero in one's complement; a header is never all zero, so
    // the computed value is never 0xffff.
    let verified = packet.verify_checksum();
    assert_ne!(computed, 0xffff);
    assert_eq!(
        verified,
        stored == computed || (computed == 0 && stored == 0xffff)
    );

    // TTL step on a copy: RFC 1624 keeps a valid checksum valid.
    let mut copy = data.clone();
    let mut forwarded = Ipv4Packet::new_unchecked(&mut copy[..]);
    let ttl = packet.ttl();
    match forwarded.decrement_ttl() {
        None => {
            assert!(ttl <= 1);
            assert_eq!(copy, data);
        }
        Some(new_ttl) => {
            assert_eq!(new_ttl, ttl - 1);
            assert_eq!(Ipv4Packet::new_unchecked(&copy[..]).ttl(), new_ttl);
            if verified {
                assert!(Ipv4Packet::new_unchecked(&copy[..]).verify_checksum());
            }
        }
    }

    let Ok(repr) = Ipv4Repr::parse(&packet) else {
        return;
    };
    assert!(verified && !packet.is_fragment());
    assert_eq!(repr.payload_len, total_len - header_len);
    assert_eq!(repr.buffer_len(), HEADER_LEN);
    // The buffer needs room for the payload too, or Total Length would not check.
    let mut buf = vec![0u8; repr.total_len()];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]))
        .expect("a parsed IPv4 header emits");
    let again = Ipv4Repr::parse(&Ipv4Packet::new_checked(&buf[..]).expect("emitted IPv4 checks"))
        .expect("emitted IPv4 parses");
    assert_eq!(again, repr);

    let template = Ipv4Template::new(&repr);
    let mut from_template = [0u8; HEADER_LEN];
    template
        .emit(&mut from_template, repr.payload_len, repr.ident)
        .expect("template emits");
    assert_eq!(from_template[..], buf[..HEADER_LEN]);
    let mut fixed = from_template;
    fixed[2..6].fill(0);
    fixed[10..12].fill(0);
    assert_eq!(template.header(), &fixed);
});

/// The sum of a buffer equals the combined sums of its two halves split at an even offset.
fn check_sum_split(data: &[u8], at: usize) {
    let at = at.min(data.len() & !1);
    let (a, b) = data.split_at(at);
    assert_eq!(
        checksum::data(data),
        checksum::combine(&[checksum::data(a), checksum::data(b)])
    );
}
