//! MPPE end to end (`crypto::mppe`): an `MppeEncryptor` sends over a channel that the fuzzer
//! makes lose, hold back (reorder) and duplicate packets, to an `MppeDecryptor` with the
//! same start key, mode and strength. CCP is simulated: a `ResetRequest` or `AwaitingFlush`
//! verdict makes the encryptor `reset_request()` at once.
//!
//! The oracle knows each packet's position `k` in the sent stream and the position `last`
//! of the packet the decryptor last accepted. It checks:
//!
//! * replays are refused: no packet with `k <= last` and `last - k <= 2048` is accepted;
//! * an accepted packet decrypts to what was sent, unless it is a documented desync: a gap of
//!   2048 packets or more (`MppeDecryptor` docs), or in `StatefulLinux` mode a lost flushed
//!   packet that was not a flag packet (`MppeMode::StatefulLinux` docs); after one, only
//!   panics and the replay rule are checked;
//! * liveness: a flushed packet less than 2048 ahead is accepted in the stateful modes, and in
//!   stateless mode so is any packet at most `max_forward` (256) ahead;
//! * a packet that is not accepted is left as it came.
//!
//! Input: a control byte (mode = byte % 3, strength = byte / 3 % 3), then records
//! `action (1 byte) | length (1 byte) | plaintext`. Action bits 0-1: 0 deliver, 1 lose it
//! and `action >> 4` more, 2 hold it back (replacing the held one, which is lost),
//! 3 deliver it, then the held one, then it again.
#![no_main]

#[path = "common/mppe_setting.rs"]
mod mppe_setting;

use libfuzzer_sys::fuzz_target;
use mppe_setting::{START, mode_and_strength};
use xpptp_proto::crypto::mppe::{
    DEFAULT_MAX_FORWARD, DiscardReason, MppeDecryptor, MppeEncryptor, MppeMode, Verdict,
};
use xpptp_proto::wire::mppe::{COUNT_SPACE, coherency_count, flags};

const HALF: i64 = COUNT_SPACE as i64 / 2;

#[derive(Clone)]
struct Sent {
    k: i64,
    header: u16,
    ciphertext: Vec<u8>,
    plaintext: Vec<u8>,
}

struct Link {
    mode: MppeMode,
    encryptor: MppeEncryptor,
    decryptor: MppeDecryptor,
    next_k: i64,
    /// Position of the last accepted packet (-1: none yet, the decryptor expects 0).
    last: i64,
    /// Positions of flushed packets that were not flag packets (StatefulLinux rekeys on them).
    reset_flushes: Vec<i64>,
    desynced: bool,
}

impl Link {
    fn send(&mut self, plaintext: &[u8]) -> Sent {
        let mut ciphertext = plaintext.to_vec();
        let header = self.encryptor.encrypt(&mut ciphertext);
        let k = self.next_k;
        self.next_k += 1;
        assert_eq!(i64::from(coherency_count(header)), k % 4096);
        let flushed = header & flags::FLUSHED != 0;
        if self.mode == MppeMode::StatefulLinux && flushed && header & 0xff != 0xff {
            self.reset_flushes.push(k);
        }
        Sent {
            k,
            header,
            ciphertext,
            plaintext: plaintext.to_vec(),
        }
    }

    fn deliver(&mut self, sent: &Sent) {
        let mut buf = sent.ciphertext.clone();
        let verdict = self.decryptor.decrypt(sent.header, &mut buf);
        let ahead = sent.k - self.last;
        let flushed = sent.header & flags::FLUSHED != 0;
        if verdict != Verdict::Ok {
            assert_eq!(buf, sent.ciphertext, "{verdict:?} touched the payload");
            if !self.desynced && 0 < ahead && ahead < HALF {
                let stateless = self.mode == MppeMode::Stateless;
                assert!(
                    !stateless || ahead > i64::from(DEFAULT_MAX_FORWARD),
                    "{verdict:?}"
                );
                assert!(
                    stateless || !flushed,
                    "flushed packet {ahead} ahead: {verdict:?}"
                );
            }
            if matches!(
                verdict,
                Verdict::ResetRequest | Verdict::Discard(DiscardReason::AwaitingFlush)
            ) {
                self.encryptor.reset_request();
            }
            return;
        }
        assert!(
            ahead > 0 || -ahead > HALF,
            "replay {} behind accepted",
            -ahead
        );
        let linux_lost_flush = self.mode == MppeMode::StatefulLinux
            && self
                .reset_flushes
                .iter()
                .any(|&r| self.last < r && r < sent.k);
        if self.desynced || ahead >= HALF || ahead <= 0 || linux_lost_flush {
            self.desynced = true;
        } else {
            assert_eq!(buf, sent.plaintext, "wrong plaintext {ahead} ahead");
        }
        self.last = sent.k;
        self.reset_flushes.retain(|&r| r > sent.k);
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, mut records)) = input.split_first() else {
        return;
    };
    let (mode, strength) = mode_and_strength(control);
    let mut link = Link {
        mode,
        encryptor: MppeEncryptor::new(&START, strength, mode),
        decryptor: MppeDecryptor::new(&START, strength, mode),
        next_k: 0,
        last: -1,
        reset_flushes: Vec::new(),
        desynced: false,
    };
    let mut held: Option<Sent> = None;
    while let [action, len, ref tail @ ..] = *records {
        let (plaintext, tail) = tail.split_at(usize::from(len).min(tail.len()));
        records = tail;
        let sent = link.send(plaintext);
        match action & 3 {
            0 => link.deliver(&sent),
            1 => {
                for _ in 0..action >> 4 {
                    link.send(plaintext);
                }
            }
            2 => held = Some(sent),
            _ => {
                link.deliver(&sent);
                if let Some(late) = held.take() {
                    link.deliver(&late);
                }
                link.deliver(&sent);
            }
        }
    }
});
