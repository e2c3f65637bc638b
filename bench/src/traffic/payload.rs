//! The test payload every packet of a run carries: a header saying whose packet it is and
//! when it left, then bytes derived from (session, sequence) that the sink recomputes.
//!
//! ```text
//! 0      4        8                16               24
//! | magic | session | sequence (u64) | sent ns (u64)  | pattern ...
//! ```
//!
//! All big-endian. `sent ns` is CLOCK_MONOTONIC, which every network namespace of a host
//! shares, so sender and sink in different namespaces measure one-way latency on one clock.

use thiserror::Error;

/// "XPTR": the first four bytes of every payload.
pub const MAGIC: u32 = 0x5850_5452;
/// Bytes of the header before the pattern.
pub const HEADER_LEN: usize = 24;

/// Whose packet, which one, sent when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadHeader {
    /// The session's index in the run (not its call ID: the index names the flow in reports).
    pub session: u32,
    /// The packet's number in its flow (one flow per session and direction), from 0.
    pub seq: u64,
    /// CLOCK_MONOTONIC at the send, in nanoseconds.
    pub sent_ns: u64,
}

/// Why a payload did not verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum PayloadError {
    #[error("payload shorter than its {HEADER_LEN}-byte header")]
    Truncated,
    #[error("payload does not start with the traffic magic (not a packet of this run)")]
    BadMagic,
    #[error("payload byte {offset} differs from the pattern of its (session, sequence)")]
    Corrupt { offset: usize },
}

/// SplitMix64's finaliser: a cheap, well-mixed function of one word.
#[inline]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[inline]
fn pattern_word(session: u32, seq: u64, chunk: usize) -> [u8; 8] {
    let seed = mix((u64::from(session) << 40) ^ seq);
    mix(seed.wrapping_add(chunk as u64)).to_le_bytes()
}

/// Writes the header and fills the rest of `buf` with the pattern of (session, seq).
/// Returns `Err(Truncated)` when `buf` is shorter than the header.
pub fn write(buf: &mut [u8], header: &PayloadHeader) -> Result<(), PayloadError> {
    let (head, rest) = buf
        .split_first_chunk_mut::<HEADER_LEN>()
        .ok_or(PayloadError::Truncated)?;
    head[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    head[4..8].copy_from_slice(&header.session.to_be_bytes());
    head[8..16].copy_from_slice(&header.seq.to_be_bytes());
    head[16..24].copy_from_slice(&header.sent_ns.to_be_bytes());
    for (chunk, bytes) in rest.chunks_mut(8).enumerate() {
        let word = pattern_word(header.session, header.seq, chunk);
        for (b, w) in bytes.iter_mut().zip(word) {
            *b = w;
        }
    }
    Ok(())
}

/// Reads the header and checks every pattern byte.
pub fn verify(buf: &[u8]) -> Result<PayloadHeader, PayloadError> {
    let (head, rest) = buf
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(PayloadError::Truncated)?;
    let word = |at: usize| -> u64 {
        let mut w = [0u8; 8];
        w.copy_from_slice(&head[at..at + 8]);
        u64::from_be_bytes(w)
    };
    if head[0..4] != MAGIC.to_be_bytes() {
        return Err(PayloadError::BadMagic);
    }
    let header = PayloadHeader {
        session: u32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        seq: word(8),
        sent_ns: word(16),
    };
    for (chunk, bytes) in rest.chunks(8).enumerate() {
        let want = pattern_word(header.session, header.seq, chunk);
        if let Some(i) = bytes.iter().zip(want).position(|(b, w)| *b != w) {
            return Err(PayloadError::Corrupt {
                offset: HEADER_LEN + chunk * 8 + i,
            });
        }
    }
    Ok(header)
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of [`PayloadHeader::sent_ns`].
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => u64::try_from(ts.tv_sec())
            .unwrap_or(0)
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::try_from(ts.tv_nsec()).unwrap_or(0)),
        // CLOCK_MONOTONIC cannot fail on Linux; 0 makes latencies absurd rather than wrong.
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_every_changed_byte() {
        let header = PayloadHeader {
            session: 7,
            seq: 123_456,
            sent_ns: 42,
        };
        let mut buf = vec![0u8; 61];
        write(&mut buf, &header).unwrap();
        assert_eq!(verify(&buf), Ok(header));
        for at in HEADER_LEN..buf.len() {
            let mut bad = buf.clone();
            bad[at] ^= 0x01;
            assert_eq!(verify(&bad), Err(PayloadError::Corrupt { offset: at }));
        }
        let mut other = buf.clone();
        other[15] ^= 1; // another sequence number: the pattern no longer matches
        assert!(matches!(verify(&other), Err(PayloadError::Corrupt { .. })));
        buf[0] = 0;
        assert_eq!(verify(&buf), Err(PayloadError::BadMagic));
        assert_eq!(verify(&buf[..10]), Err(PayloadError::Truncated));
    }
}
