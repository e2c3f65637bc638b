//! Enhanced GRE (`wire::gre`): every getter of a checked `GrePacket` stays in range, the
//! flag getters agree with the raw word, `payload()` is exactly Payload Length bytes, and a
//! parsed `GreRepr` emits into `buffer_len()` bytes and parses back to itself.
//!
//! Input: a control byte, then the packet. Random bytes almost never pass `check_fields`,
//! so the control byte can repair them first: bit 0 writes PPTP's fixed fields (K, version
//! 1, protocol 0x880B; S from bit 1, A from bit 2), bit 3 sets Payload Length to the bytes
//! after the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::gre::{
    GrePacket, GreRepr, HEADER_LEN_MIN, PROTOCOL_PPP, VERSION, flags, seq_after, seq_diff,
};

fuzz_target!(|input: &[u8]| {
    let Some((&control, rest)) = input.split_first() else {
        return;
    };
    let mut data = rest.to_vec();
    if control & 1 != 0
        && let Some(fixed) = data.first_chunk_mut::<4>()
    {
        let mut word = flags::KEY | u16::from(VERSION);
        if control & 2 != 0 {
            word |= flags::SEQ;
        }
        if control & 4 != 0 {
            word |= flags::ACK;
        }
        fixed[..2].copy_from_slice(&word.to_be_bytes());
        fixed[2..].copy_from_slice(&PROTOCOL_PPP.to_be_bytes());
    }
    if control & 8 != 0 && data.len() >= HEADER_LEN_MIN {
        // Payload Length: whatever follows the header (capped), so check_len passes.
        let header_len = GrePacket::new_unchecked(&data[..]).header_len();
        let room = data
            .len()
            .saturating_sub(header_len)
            .min(usize::from(u16::MAX));
        GrePacket::new_unchecked(&mut data[..]).set_payload_len(room as u16);
    }
    let data = &data[..];

    // check_fields needs only eight bytes and must never panic, checked view or not.
    let fields = GrePacket::new_unchecked(data).check_fields();

    let Ok(packet) = GrePacket::new_checked(data) else {
        return;
    };
    let word = packet.flags_version();
    assert_eq!(packet.checksum_present(), word & flags::CHECKSUM != 0);
    assert_eq!(packet.routing_present(), word & flags::ROUTING != 0);
    assert_eq!(packet.key_present(), word & flags::KEY != 0);
    assert_eq!(packet.seq_present(), word & flags::SEQ != 0);
    assert_eq!(packet.ack_present(), word & flags::ACK != 0);
    let _ = (packet.strict_source_route(), packet.recursion_control());
    let _ = (
        packet.reserved_flags(),
        packet.version(),
        packet.protocol_type(),
    );
    let _ = packet.call_id();
    assert_eq!(packet.seq().is_some(), packet.seq_present());
    assert_eq!(packet.ack().is_some(), packet.ack_present());
    assert!(packet.header_len() <= data.len());
    assert!(packet.total_len() <= data.len());
    assert_eq!(packet.payload().len(), usize::from(packet.payload_len()));
    assert_eq!(
        packet.header_len() + packet.payload().len(),
        packet.total_len()
    );

    let parsed = GreRepr::parse(&packet);
    assert_eq!(parsed.is_ok(), fields.is_ok());
    let Ok(repr) = parsed else {
        return;
    };
    assert_eq!(repr.header_len(), packet.header_len());
    assert_eq!(repr.buffer_len(), packet.total_len());
    assert_eq!(
        repr.is_pure_ack(),
        repr.seq.is_none() && repr.payload_len == 0
    );
    if let (Some(seq), Some(ack)) = (repr.seq, repr.ack) {
        // RFC 1982 order is antisymmetric, and the difference is the wrapped subtraction.
        assert!(!(seq_after(seq, ack) && seq_after(ack, seq)));
        assert_eq!(ack.wrapping_add(seq_diff(seq, ack) as u32), seq);
    }

    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut GrePacket::new_unchecked(&mut buf[..]))
        .expect("a parsed GRE header emits");
    assert_eq!(buf[..repr.header_len()], data[..repr.header_len()]);
    let again = GreRepr::parse(&GrePacket::new_checked(&buf[..]).expect("emitted GRE checks"))
        .expect("emitted GRE parses");
    assert_eq!(again, repr);
});
