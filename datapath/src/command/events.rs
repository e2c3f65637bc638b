//! The datapath's unsolicited messages to the control plane, and a bounded queue for them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

use xpptp_proto::command::{Message, PppFromPeer, ResetRequestNeeded};

/// Something the subscribed control connection must hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A PPP frame of an established call that is not data (LCP, CCP, ...).
    PppFromPeer(PppFromPeer),
    /// A stateful MPPE receiver lost sync: control sends a CCP Reset-Request.
    ResetRequestNeeded(ResetRequestNeeded),
}

impl From<Event> for Message {
    fn from(event: Event) -> Message {
        match event {
            Event::PppFromPeer(e) => Message::PppFromPeer(e),
            Event::ResetRequestNeeded(e) => Message::ResetRequestNeeded(e),
        }
    }
}

/// A bounded multi-producer queue of [`Event`]s with a blocking, draining consumer.
///
/// Producers never block on the consumer: a full queue refuses the event (and counts it),
/// since a stalled control plane must not stall whoever produces (the control plane
/// recovers: LCP echoes are retried, a lost Reset-Request is asked for again on the next
/// loss). One lock protects the queue; it is held for a push or a drain, never across I/O.
#[derive(Debug)]
pub struct EventQueue {
    queue: Mutex<VecDeque<Event>>,
    ready: Condvar,
    capacity: usize,
    refused: AtomicU64,
}

impl EventQueue {
    /// A queue of at most `capacity` events (at least one).
    pub fn new(capacity: usize) -> EventQueue {
        EventQueue {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            refused: AtomicU64::new(0),
        }
    }

    /// Queues `event` and wakes the consumer; `false` (counted) if the queue is full.
    pub fn push(&self, event: Event) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if queue.len() >= self.capacity {
            drop(queue);
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        queue.push_back(event);
        drop(queue);
        self.ready.notify_one();
        true
    }

    /// Moves every queued event into `out`, waiting up to `timeout` for the first one.
    pub fn wait_drain(&self, out: &mut Vec<Event>, timeout: Duration) {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut queue, _) = self
            .ready
            .wait_timeout_while(queue, timeout, |q| q.is_empty())
            .unwrap_or_else(PoisonError::into_inner);
        out.extend(queue.drain(..));
    }

    /// Events refused because the queue was full.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reset(call: u16) -> Event {
        Event::ResetRequestNeeded(ResetRequestNeeded { call })
    }

    #[test]
    fn full_queue_refuses_and_counts() {
        let q = EventQueue::new(2);
        assert!(q.push(reset(1)));
        assert!(q.push(reset(2)));
        assert!(!q.push(reset(3)));
        assert_eq!(q.refused(), 1);
        let mut out = Vec::new();
        q.wait_drain(&mut out, Duration::ZERO);
        assert_eq!(out, vec![reset(1), reset(2)]);
        out.clear();
        q.wait_drain(&mut out, Duration::from_millis(1));
        assert!(out.is_empty());
    }

    #[test]
    fn a_push_wakes_the_consumer() {
        let q = std::sync::Arc::new(EventQueue::new(8));
        let producer = {
            let q = std::sync::Arc::clone(&q);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                q.push(reset(7))
            })
        };
        let mut out = Vec::new();
        // Generous: the assertion is that the event arrives, not how fast.
        q.wait_drain(&mut out, Duration::from_secs(30));
        assert_eq!(out, vec![reset(7)]);
        assert!(producer.join().unwrap_or(false));
    }
}
