//! The pure-ack timer of one worker: the calls for which this worker accepted peer data
//! and owes an acknowledgment, in the order the debt arose.
//!
//! Every entry waits the same [`ACK_DELAY`], so the list is a FIFO already sorted by
//! deadline: arming and firing are O(1), and a turn looks only at the front, never at the
//! 65,536 calls. A bitset keeps a call in the list at most once; its deadline is the one of
//! the *first* packet not yet acknowledged (the ack is never later than `ACK_DELAY` after
//! the oldest packet it covers). When the deadline passes the worker builds a pure ack,
//! which goes out only if the ack is still owed: a data packet sent meanwhile carried it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long an owed ack may wait for a data packet to carry it before a pure ack goes out.
///
/// RFC 2637 leaves it open (section 4.4 only asks the receiver to acknowledge in time for
/// the sender's adaptive timeout). 50 ms, as proto's GRE channel uses for the control plane
/// (`GreConfig::ack_delay`): short against any peer's ack timeout (Windows and pptp-linux
/// start around a second), long enough that a reply sent within it piggybacks the ack
/// (interactive traffic, TCP's own delayed ack of 40 ms on Linux).
pub const ACK_DELAY: Duration = Duration::from_millis(50);

const WORDS: usize = (1 << 16) / 64;

/// One worker's owed acks (see the module documentation).
#[derive(Debug)]
pub(crate) struct AckTimer {
    due: VecDeque<(u16, u64, Instant)>,
    queued: Box<[u64; WORDS]>,
}

impl AckTimer {
    pub(crate) fn new() -> AckTimer {
        AckTimer {
            due: VecDeque::with_capacity(1024),
            queued: Box::new([0; WORDS]),
        }
    }

    /// Call `call_id` (table generation `generation`) owes an ack since `now`.
    #[inline]
    pub(crate) fn owe(&mut self, call_id: u16, generation: u64, now: Instant, delay: Duration) {
        let bit = 1u64 << (call_id % 64);
        let Some(word) = self.queued.get_mut(usize::from(call_id / 64)) else {
            return;
        };
        if *word & bit != 0 {
            return;
        }
        *word |= bit;
        let at = now.checked_add(delay).unwrap_or(now);
        self.due.push_back((call_id, generation, at));
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.due.front().map(|&(_, _, at)| at)
    }

    /// Takes the next call whose deadline is at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u16, u64)> {
        let &(call_id, generation, at) = self.due.front()?;
        if at > now {
            return None;
        }
        self.due.pop_front();
        if let Some(word) = self.queued.get_mut(usize::from(call_id / 64)) {
            *word &= !(1u64 << (call_id % 64));
        }
        Some((call_id, generation))
    }

    /// Calls waiting.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.due.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_call_once_in_deadline_order() {
        let mut timer = AckTimer::new();
        let t0 = Instant::now();
        let d = Duration::from_millis(50);
        timer.owe(7, 1, t0, d);
        timer.owe(7, 1, t0 + Duration::from_millis(10), d);
        timer.owe(65535, 2, t0 + Duration::from_millis(20), d);
        assert_eq!(timer.len(), 2, "call 7 is queued once");
        assert_eq!(timer.next_due(), Some(t0 + d));
        assert_eq!(timer.pop_due(t0 + Duration::from_millis(49)), None);
        assert_eq!(timer.pop_due(t0 + d), Some((7, 1)));
        assert_eq!(timer.pop_due(t0 + d), None);
        // Popped: owing again re-arms it, behind 65535.
        timer.owe(7, 1, t0 + d, d);
        assert_eq!(timer.pop_due(t0 + 3 * d), Some((65535, 2)));
        assert_eq!(timer.pop_due(t0 + 3 * d), Some((7, 1)));
        assert_eq!(timer.next_due(), None);
    }
}
