//! MPPE header (`wire::mppe`): the flag and coherency-count getters of a checked
//! `MppeHeader` split the 16-bit word exactly, the payload is everything after it, and an
//! `MppeRepr` emits the same two bytes and parses back to itself. Also checks the coherency
//! count arithmetic (12-bit wrap) on the counts found in the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::mppe::{
    COHERENCY_MASK, HEADER_LEN, MppeHeader, MppeRepr, coherency_distance, flags,
    next_coherency_count,
};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = MppeHeader::new_checked(data) else {
        assert!(data.len() < HEADER_LEN);
        return;
    };
    let word = header.flags_count();
    assert_eq!(header.flushed(), word & flags::FLUSHED != 0);
    assert_eq!(header.mppc_restart(), word & flags::MPPC_RESTART != 0);
    assert_eq!(header.compressed(), word & flags::COMPRESSED != 0);
    assert_eq!(header.encrypted(), word & flags::ENCRYPTED != 0);
    assert_eq!(header.coherency_count(), word & COHERENCY_MASK);
    assert_eq!(header.payload(), &data[HEADER_LEN..]);

    let repr = MppeRepr::parse(&header).expect("a checked MPPE header parses");
    assert_eq!(repr.buffer_len(), HEADER_LEN);
    let mut buf = [0u8; HEADER_LEN];
    repr.emit(&mut MppeHeader::new_unchecked(&mut buf[..]))
        .expect("MPPE header emits into two bytes");
    assert_eq!(buf[..], data[..HEADER_LEN]);
    let again = MppeRepr::parse(&MppeHeader::new_checked(&buf[..]).expect("two bytes check"))
        .expect("emitted MPPE header parses");
    assert_eq!(again, repr);

    // Coherency arithmetic against the next count in the input, if any.
    let from = repr.coherency_count;
    let next = next_coherency_count(from);
    assert!(next <= COHERENCY_MASK);
    assert_eq!(coherency_distance(from, next), 1);
    assert_eq!(coherency_distance(from, from), 0);
    if let Some(&[hi, lo]) = data.get(HEADER_LEN..HEADER_LEN + 2) {
        let to = u16::from_be_bytes([hi, lo]) & COHERENCY_MASK;
        let there = coherency_distance(from, to);
        let back = coherency_distance(to, from);
        assert!(there <= COHERENCY_MASK);
        assert_eq!((there + back) & COHERENCY_MASK, 0);
    }
});
