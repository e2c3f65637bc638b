//! The sinks' bookkeeping: per flow, which sequence numbers arrived, in what order, how
//! often; one-way latency of every verified packet.

use std::collections::HashMap;

use hdrhistogram::Histogram;

use super::payload::{PayloadError, PayloadHeader};

/// The flows a run sends: payloads outside them are forged (or of another run) and count
/// as corrupt, so a sink's memory is bounded by the run, whatever arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunShape {
    /// Session indices run from 0 to `sessions - 1`.
    pub sessions: u32,
    /// Sequence numbers of every flow run from 0 to `packets_per_session - 1`.
    pub packets_per_session: u64,
}

/// One flow's counts.
#[derive(Debug, Clone, Default)]
pub struct FlowTracker {
    seen: Vec<u64>,
    highest: Option<u64>,
    /// Verified packets, duplicates included.
    pub received: u64,
    /// Packets whose number was below the highest already seen (first arrival only).
    pub reordered: u64,
    /// Packets whose number had already arrived.
    pub duplicated: u64,
}

impl FlowTracker {
    /// Records one packet; false when its number is at or beyond `limit`, the flow's
    /// packet count (the bitmap then never grows past `limit` bits).
    pub fn record(&mut self, seq: u64, limit: u64) -> bool {
        if seq >= limit {
            return false;
        }
        let (Ok(word), bit) = (usize::try_from(seq / 64), seq % 64) else {
            return false;
        };
        if self.seen.len() <= word {
            self.seen.resize(word.saturating_add(1), 0);
        }
        let Some(slot) = self.seen.get_mut(word) else {
            return false;
        };
        self.received += 1;
        if *slot & (1 << bit) != 0 {
            self.duplicated += 1;
            return true;
        }
        *slot |= 1 << bit;
        match self.highest {
            Some(h) if seq < h => self.reordered += 1,
            _ => self.highest = Some(seq),
        }
        true
    }

    /// Distinct packets received.
    pub fn distinct(&self) -> u64 {
        self.received - self.duplicated
    }
}

/// Totals over every flow of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowTotals {
    pub received: u64,
    pub distinct: u64,
    pub reordered: u64,
    pub duplicated: u64,
}

/// A sink's state: flows by session index, latency, refusals.
#[derive(Debug)]
pub struct Verifier {
    /// The flows that can arrive.
    pub shape: RunShape,
    pub flows: HashMap<u32, FlowTracker>,
    /// One-way latency in nanoseconds of every verified packet.
    pub latency: Histogram<u64>,
    /// Payloads that failed verification, or claimed a session or sequence number outside
    /// the run's [`RunShape`].
    pub corrupt: u64,
    /// Packets that were not of this run (bad magic) or that the fast path refused.
    pub foreign: u64,
    /// CLOCK_MONOTONIC of the last verified packet.
    pub last_ns: u64,
}

impl Verifier {
    /// An empty sink state for a run of `shape`; latencies from 1 ns to 100 s at 3
    /// significant digits (the histogram crate refuses only impossible bounds).
    pub fn new(shape: RunShape) -> Result<Verifier, hdrhistogram::CreationError> {
        Ok(Verifier {
            shape,
            flows: HashMap::new(),
            latency: Histogram::new_with_bounds(1, 100_000_000_000, 3)?,
            corrupt: 0,
            foreign: 0,
            last_ns: 0,
        })
    }

    /// Records the outcome of verifying one payload at `now_ns`.
    pub fn record(&mut self, result: Result<PayloadHeader, PayloadError>, now_ns: u64) {
        match result {
            Ok(header) => {
                let limit = self.shape.packets_per_session;
                if header.session >= self.shape.sessions
                    || !self
                        .flows
                        .entry(header.session)
                        .or_default()
                        .record(header.seq, limit)
                {
                    self.corrupt += 1;
                    return;
                }
                let latency = now_ns.saturating_sub(header.sent_ns).max(1);
                self.latency.saturating_record(latency);
                self.last_ns = self.last_ns.max(now_ns);
            }
            Err(PayloadError::BadMagic) => self.foreign += 1,
            Err(_) => self.corrupt += 1,
        }
    }

    /// Sums of every flow.
    pub fn totals(&self) -> FlowTotals {
        self.flows
            .values()
            .fold(FlowTotals::default(), |t, f| FlowTotals {
                received: t.received + f.received,
                distinct: t.distinct + f.distinct(),
                reordered: t.reordered + f.reordered,
                duplicated: t.duplicated + f.duplicated,
            })
    }

    /// Verified packets of every flow, duplicates included.
    pub fn received(&self) -> u64 {
        self.totals().received
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::payload::{self, PayloadHeader};

    fn packet(session: u32, seq: u64) -> Vec<u8> {
        let mut buf = vec![0u8; 100];
        let header = PayloadHeader {
            session,
            seq,
            sent_ns: 1_000,
        };
        payload::write(&mut buf, &header).unwrap();
        buf
    }

    #[test]
    fn counts_reorder_duplicates_loss_and_corruption() {
        let mut v = Verifier::new(RunShape {
            sessions: 2,
            packets_per_session: 8,
        })
        .unwrap();
        for seq in [0, 1, 3, 2, 2, 5, 0] {
            v.record(payload::verify(&packet(1, seq)), 2_000);
        }
        let mut bad = packet(1, 6);
        bad[50] ^= 0xFF;
        v.record(payload::verify(&bad), 2_000);
        let mut foreign = packet(1, 7);
        foreign[0] = 0;
        v.record(payload::verify(&foreign), 2_000);
        let flow = &v.flows[&1];
        assert_eq!(flow.received, 7);
        assert_eq!(flow.duplicated, 2, "2 and 0 again");
        assert_eq!(flow.reordered, 1, "2 after 3");
        assert_eq!(flow.distinct(), 5, "0 1 2 3 5: 4 was lost");
        assert_eq!((v.corrupt, v.foreign), (1, 1));
        assert_eq!(v.latency.len(), 7);
        assert_eq!(v.latency.max(), v.latency.highest_equivalent(1_000));
        assert!(!v.flows.get_mut(&1).unwrap().record(8, 8), "beyond the run");
    }

    #[test]
    fn forged_sessions_and_sequence_numbers_are_corrupt_and_take_no_memory() {
        let mut v = Verifier::new(RunShape {
            sessions: 3,
            packets_per_session: 100,
        })
        .unwrap();
        // Once, a flow's highest number plus a fixed jump was the only bound: stepping by
        // the jump grew one flow's bitmap by 2 MiB per packet, and every session number a
        // new flow.
        for step in 1..=64u64 {
            v.record(payload::verify(&packet(1, step << 24)), 2_000);
            v.record(payload::verify(&packet(3 + step as u32, 0)), 2_000);
        }
        v.record(payload::verify(&packet(2, 99)), 2_000);
        assert_eq!(v.corrupt, 128);
        assert_eq!(v.received(), 1);
        assert!(v.flows.values().all(|f| f.seen.len() <= 2));
        assert!(v.flows.keys().all(|&s| s < 3));
    }
}
