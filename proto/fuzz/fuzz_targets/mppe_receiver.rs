//! The MPPE receiver (`crypto::mppe::MppeDecryptor`) fed arbitrary (header, payload)
//! records, with a fixed start key. Checks that it never panics and that:
//!
//! * a discarded packet (any `Discard` or `ResetRequest`) leaves the payload and the
//!   coherency count untouched;
//! * an accepted packet has D set and C clear, moves the count forward by less than half the
//!   count space, and (stateful) is flushed or the very next count;
//! * stateless: one packet moves the key chain at most `max_forward` steps, or at most 2047
//!   when it confirms a jump refused just before (the bound documented on `MppeDecryptor`),
//!   and it decrypts with the key a reference `KeyChain` reaches after the same steps;
//! * `decrypt_batch` on a clone gives the same verdicts, plaintexts and final count as
//!   `decrypt` packet by packet.
//!
//! Input: a control byte (mode = byte % 3, strength = byte / 3 % 3, bit 7: take
//! `max_forward` from the next byte), a `max_forward` byte, then records
//! `header (2 bytes, big-endian) | length (1 byte) | payload`.
#![no_main]

#[path = "common/mppe_setting.rs"]
mod mppe_setting;

use libfuzzer_sys::fuzz_target;
use mppe_setting::{START, mode_and_strength};
use xpptp_proto::crypto::mppe::{
    DEFAULT_MAX_FORWARD, DiscardReason, KeyChain, MppeDecryptor, MppeMode, Verdict,
    stateless_decrypt,
};
use xpptp_proto::wire::mppe::{COHERENCY_MASK, COUNT_SPACE, coherency_count, flags};

/// Half the coherency count space: counts this far ahead are behind.
const HALF: u16 = COUNT_SPACE / 2;

fuzz_target!(|input: &[u8]| {
    let [control, forward, ref records @ ..] = *input else {
        return;
    };
    let (mode, strength) = mode_and_strength(control);
    let max_forward = if control & 0x80 != 0 {
        u16::from(forward) * 8
    } else {
        DEFAULT_MAX_FORWARD
    };
    let bound = max_forward.clamp(1, HALF - 1);
    let mut decryptor = MppeDecryptor::new(&START, strength, mode).with_max_forward(max_forward);
    assert_eq!(decryptor.mode(), mode);
    let mut batch = decryptor.clone();
    let mut reference = KeyChain::new(&START, strength);
    let mut jump_pending = false;
    let (mut headers, mut inputs, mut outputs, mut verdicts) = (vec![], vec![], vec![], vec![]);

    let mut rest = records;
    while let [hi, lo, len, ref tail @ ..] = *rest {
        let (payload, tail) = tail.split_at(usize::from(len).min(tail.len()));
        rest = tail;
        let head = u16::from_be_bytes([hi, lo]);
        let count = coherency_count(head);
        let before = decryptor.last_ccount();
        if mode != MppeMode::Stateless {
            assert_eq!(
                decryptor.stateless_key(head),
                Err(DiscardReason::NotStateless)
            );
        }
        let mut buf = payload.to_vec();
        let verdict = decryptor.decrypt(head, &mut buf);

        if verdict != Verdict::Ok {
            assert_eq!(buf, payload, "{verdict:?} touched the payload");
            assert_eq!(
                decryptor.last_ccount(),
                before,
                "{verdict:?} moved the count"
            );
        } else {
            assert_ne!(head & flags::ENCRYPTED, 0);
            assert_eq!(head & flags::COMPRESSED, 0);
            assert_eq!(decryptor.last_ccount(), count);
            let steps = count.wrapping_sub(before) & COHERENCY_MASK;
            assert!((1..HALF).contains(&steps), "accepted {steps} ahead");
            let flushed = head & flags::FLUSHED != 0;
            if mode == MppeMode::Stateless {
                assert!(flushed);
                assert!(
                    steps <= bound || jump_pending,
                    "{steps} key changes for one packet, bound {bound}"
                );
                reference.advance_by(steps);
                let mut expected = payload.to_vec();
                stateless_decrypt(reference.key(), &mut expected);
                assert_eq!(buf, expected, "wrong key after {steps} steps");
            } else {
                assert!(flushed || steps == 1);
            }
        }
        match verdict {
            Verdict::Ok => jump_pending = false,
            Verdict::Discard(DiscardReason::TooFarAhead) => {
                assert_eq!(mode, MppeMode::Stateless);
                jump_pending = true;
            }
            Verdict::Discard(DiscardReason::NotFlushed) => assert_eq!(mode, MppeMode::Stateless),
            Verdict::Discard(DiscardReason::FlagNotFlushed | DiscardReason::AwaitingFlush)
            | Verdict::ResetRequest => assert_ne!(mode, MppeMode::Stateless),
            Verdict::Discard(DiscardReason::NotStateless) => panic!("decrypt said NotStateless"),
            Verdict::Discard(_) => {}
        }
        headers.push(head);
        inputs.push(payload.to_vec());
        outputs.push(buf);
        verdicts.push(verdict);
    }

    let n = headers.len();
    let mut payloads: Vec<&mut [u8]> = inputs.iter_mut().map(|p| &mut p[..]).collect();
    let mut batch_verdicts = vec![Verdict::Ok; n];
    assert_eq!(
        batch.decrypt_batch(&headers, &mut payloads, &mut batch_verdicts),
        n
    );
    assert_eq!(batch_verdicts, verdicts);
    assert_eq!(inputs, outputs);
    assert_eq!(batch.last_ccount(), decryptor.last_ccount());
});
