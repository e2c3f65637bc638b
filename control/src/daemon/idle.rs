//! The idle timeout (pppd `idle`): a session whose datapath packet counters (both
//! directions) have not moved for the idle time is ended with [`Cause::IdleTimeout`].
//! The daemon reads the counters from the datapath's ListCalls every
//! [`Settings::idle_check_interval`](super::Settings::idle_check_interval) and feeds them
//! to an [`IdleTracker`], which decides.
//!
//! [`Cause::IdleTimeout`]: xpptp_proto::session::Cause::IdleTimeout

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The last packet count seen per call, and when it last changed.
#[derive(Debug)]
pub struct IdleTracker {
    idle: Duration,
    calls: HashMap<u16, (u64, Instant)>,
}

impl IdleTracker {
    /// Ends calls idle for `idle`.
    pub fn new(idle: Duration) -> IdleTracker {
        IdleTracker {
            idle,
            calls: HashMap::new(),
        }
    }

    /// One reading at `now`: (local call ID, rx + tx packets) of every call the datapath
    /// has. Returns the calls idle for the idle time. A call seen for the first time counts
    /// as active now; calls no longer listed are forgotten.
    pub fn observe(&mut self, now: Instant, calls: &[(u16, u64)]) -> Vec<u16> {
        let mut seen = HashMap::with_capacity(calls.len());
        let mut idle = Vec::new();
        for &(call, packets) in calls {
            let since = match self.calls.get(&call) {
                Some(&(last, since)) if last == packets => since,
                _ => now,
            };
            if now.saturating_duration_since(since) >= self.idle {
                idle.push(call);
            }
            seen.insert(call, (packets, since));
        }
        self.calls = seen;
        idle
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn only_calls_without_traffic_for_the_idle_time_are_idle() {
        let mut tracker = IdleTracker::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        assert!(tracker.observe(t0, &[(1, 10), (2, 10)]).is_empty());
        assert!(tracker.observe(at(20), &[(1, 10), (2, 11)]).is_empty());
        assert_eq!(tracker.observe(at(30), &[(1, 10), (2, 11)]), vec![1]);
        assert!(
            tracker.observe(at(49), &[(2, 11)]).is_empty(),
            "2 moved at 20"
        );
        assert_eq!(tracker.observe(at(50), &[(2, 11), (1, 10)]), vec![2]);
        assert!(
            tracker.observe(at(79), &[(1, 10)]).is_empty(),
            "a call that left and came back starts afresh (at 50)"
        );
        assert_eq!(tracker.observe(at(80), &[(1, 10)]), vec![1]);
    }
}
