//! Seeded impairment of what a sender sends, for robustness runs: loss, reordering and
//! duplication at the flow level (before encapsulation), so that every impaired packet is a
//! well-formed one the concentrator forwards and the sink's counts must match the
//! sender's exactly, for stateless and stateful MPPE alike.
//!
//! (Duplicating or reordering the GRE frames themselves would test the concentrator's
//! receive window instead: it drops GRE duplicates by design and stateful MPPE cannot take
//! reordered frames, so the sink could not tell the injection from the defence.)

use serde::Serialize;

/// Probabilities, each from 0 to 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Impairment {
    /// A packet's number is used up but the packet is not sent.
    pub loss: f64,
    /// A packet is held back and sent after the flow's next one.
    pub reorder: f64,
    /// A packet is sent twice.
    pub duplicate: f64,
    /// Seed of the decisions (same seed, same decisions).
    pub seed: u64,
}

impl Impairment {
    /// Whether any impairment is asked for.
    pub fn is_active(&self) -> bool {
        self.loss > 0.0 || self.reorder > 0.0 || self.duplicate > 0.0
    }
}

/// What happens to one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Send,
    Lose,
    /// Send after the next packet of the flow.
    Delay,
    Duplicate,
}

/// What the sender did, for comparison with the sink's counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImpairCounts {
    pub lost: u64,
    pub reordered: u64,
    pub duplicated: u64,
}

/// SplitMix64 draws over an [`Impairment`].
#[derive(Debug, Clone)]
pub struct Impairer {
    config: Impairment,
    state: u64,
    pub counts: ImpairCounts,
}

impl Impairer {
    pub fn new(config: Impairment) -> Impairer {
        Impairer {
            config,
            state: config.seed,
            counts: ImpairCounts::default(),
        }
    }

    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The fate of the next packet (one draw per kind, in a fixed order). `can_delay`: the
    /// flow has a next packet to swap with. Counts what it decides.
    pub fn decide(&mut self, can_delay: bool) -> Fate {
        if !self.config.is_active() {
            return Fate::Send;
        }
        let (l, r, d) = (self.uniform(), self.uniform(), self.uniform());
        if l < self.config.loss {
            self.counts.lost += 1;
            Fate::Lose
        } else if can_delay && r < self.config.reorder {
            self.counts.reordered += 1;
            Fate::Delay
        } else if d < self.config.duplicate {
            self.counts.duplicated += 1;
            Fate::Duplicate
        } else {
            Fate::Send
        }
    }
}

/// The send order of one flow's `count` numbers under an [`Impairer`]: lost numbers are
/// skipped, a delayed number follows the next one (which is then sent as it is, so that
/// the sink sees exactly one reordering per delay), a duplicated number comes twice.
#[derive(Debug, Clone, Default)]
pub struct FlowSchedule {
    next: u64,
    count: u64,
    held: Option<u64>,
    pending: Option<u64>,
}

impl FlowSchedule {
    pub fn new(count: u64) -> FlowSchedule {
        FlowSchedule {
            count,
            ..FlowSchedule::default()
        }
    }

    /// The next number to send, or None when the flow is done.
    pub fn next(&mut self, impairer: &mut Impairer) -> Option<u64> {
        loop {
            if let Some(p) = self.pending.take() {
                return Some(p);
            }
            if self.next >= self.count {
                return self.held.take();
            }
            let seq = self.next;
            self.next += 1;
            if let Some(held) = self.held.take() {
                self.pending = Some(held);
                return Some(seq);
            }
            match impairer.decide(self.next < self.count) {
                Fate::Send => return Some(seq),
                Fate::Lose => {}
                Fate::Delay => self.held = Some(seq),
                Fate::Duplicate => {
                    self.pending = Some(seq);
                    return Some(seq);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::payload::{self, PayloadHeader};
    use crate::traffic::verify::{RunShape, Verifier};

    #[test]
    fn the_sink_sees_exactly_what_was_injected() {
        let mut impairer = Impairer::new(Impairment {
            loss: 0.05,
            reorder: 0.05,
            duplicate: 0.05,
            seed: 7,
        });
        let mut schedule = FlowSchedule::new(5_000);
        let mut sink = Verifier::new(RunShape {
            sessions: 1,
            packets_per_session: 5_000,
        })
        .unwrap();
        let mut buf = [0u8; 40];
        while let Some(seq) = schedule.next(&mut impairer) {
            let header = PayloadHeader {
                session: 0,
                seq,
                sent_ns: 1,
            };
            payload::write(&mut buf, &header).unwrap();
            sink.record(payload::verify(&buf), 2);
        }
        let c = impairer.counts;
        assert!(
            c.lost > 100 && c.reordered > 100 && c.duplicated > 100,
            "{c:?}"
        );
        let t = sink.totals();
        assert_eq!(t.distinct, 5_000 - c.lost);
        assert_eq!(t.reordered, c.reordered);
        assert_eq!(t.duplicated, c.duplicated);
    }
}
