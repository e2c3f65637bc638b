//! Handing a packet to the worker that owns its call.
//!
//! # The ownership rule
//!
//! A call with per-packet state that cannot be shared (stateful MPPE in either direction:
//! the RC4 state runs on from packet to packet) has exactly one owning worker, chosen by
//! the command path when it establishes the call
//! ([`WorkerCall::new`](crate::worker::WorkerCall::new)) and recorded in the call's
//! published state. Only the owner touches that state: it sits in the shared
//! [`Call`](super::Call) behind a lock that only the owner ever takes (so it is never
//! contended, and the command path can read the call's counters without `unsafe`). Any
//! other worker that receives a packet of that call (RSS spreads downstream flows over
//! every queue) does not process it: it copies the packet (frames belong to their socket's
//! UMEM) and [`send`](HandOff::send)s the copy to the owner's inbox and moves on. The owner
//! drains its inbox once per turn, beside its own receive ring, processes each packet as
//! if it had received it and sends it through its own socket.
//!
//! A stateless call has no owner: any worker processes it with the shared key chain, each
//! direction's sequential part (GRE window, sequencer) behind its own lock (see
//! [`crate::worker`]), so nothing goes through here.
//!
//! # Bound and drops
//!
//! Each inbox is a bounded lock-free `crossbeam_queue::ArrayQueue` of [`DEFAULT_CAPACITY`]
//! packets. A full inbox means the owner is already behind by that many packets; queueing more
//! would only add latency, so the sender gets the packet back (to return its frame to its own
//! pool) and the inbox counts one drop. Drops are rare by construction, so the shared
//! counter's cache line is touched only on the slow path.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_queue::ArrayQueue;

/// A worker's index (= its NIC queue's index).
pub type WorkerId = u16;

/// Inbox size: 16 batches of 64 packets, about 0.3 ms of one worker's 3 Mpps.
pub const DEFAULT_CAPACITY: usize = 1024;

/// Why a packet was not handed over. Both give the packet back.
#[derive(PartialEq, Eq)]
pub enum HandOffError<P> {
    /// The owner's inbox is full (counted in [`HandOff::dropped`]).
    Full(P),
    /// No worker with that index (a call established with a stale owner).
    NoSuchWorker(P),
}

impl<P> HandOffError<P> {
    /// The packet that was not handed over.
    pub fn into_inner(self) -> P {
        match self {
            HandOffError::Full(p) | HandOffError::NoSuchWorker(p) => p,
        }
    }
}

impl<P> fmt::Debug for HandOffError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandOffError::Full(_) => f.write_str("Full(..)"),
            HandOffError::NoSuchWorker(_) => f.write_str("NoSuchWorker(..)"),
        }
    }
}

/// One worker's inbox, on its own cache lines so that two inboxes never share one.
#[repr(align(128))]
struct Inbox<P> {
    queue: ArrayQueue<P>,
    dropped: AtomicU64,
}

/// The inboxes of every worker; share it (`Arc`) between them.
pub struct HandOff<P> {
    inboxes: Box<[Inbox<P>]>,
}

impl<P> fmt::Debug for HandOff<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandOff")
            .field("workers", &self.inboxes.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl<P> HandOff<P> {
    /// Inboxes for `workers` workers of `capacity` packets each (at least 1).
    pub fn new(workers: usize, capacity: usize) -> HandOff<P> {
        let capacity = capacity.max(1);
        HandOff {
            inboxes: (0..workers)
                .map(|_| Inbox {
                    queue: ArrayQueue::new(capacity),
                    dropped: AtomicU64::new(0),
                })
                .collect(),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.inboxes.len()
    }

    /// Packets each inbox holds.
    pub fn capacity(&self) -> usize {
        self.inboxes.first().map_or(0, |i| i.queue.capacity())
    }

    /// Queues `packet` for worker `owner`. Lock-free; any worker may call it.
    pub fn send(&self, owner: WorkerId, packet: P) -> Result<(), HandOffError<P>> {
        let Some(inbox) = self.inboxes.get(usize::from(owner)) else {
            return Err(HandOffError::NoSuchWorker(packet));
        };
        inbox.queue.push(packet).map_err(|packet| {
            inbox.dropped.fetch_add(1, Ordering::Relaxed);
            HandOffError::Full(packet)
        })
    }

    /// The next packet handed to worker `me`. Only that worker calls it (the queue would
    /// allow others, but the ownership rule is what makes the call's state single-writer).
    pub fn receive(&self, me: WorkerId) -> Option<P> {
        self.inboxes.get(usize::from(me))?.queue.pop()
    }

    /// Up to `max` packets handed to worker `me`, in order, each passed to `f`; returns how
    /// many. Bounded so that a flood of hand-offs cannot starve the worker's own ring.
    pub fn drain(&self, me: WorkerId, max: usize, mut f: impl FnMut(P)) -> usize {
        let Some(inbox) = self.inboxes.get(usize::from(me)) else {
            return 0;
        };
        let mut n = 0;
        while n < max {
            let Some(packet) = inbox.queue.pop() else {
                break;
            };
            f(packet);
            n += 1;
        }
        n
    }

    /// Packets waiting for worker `me`.
    pub fn pending(&self, me: WorkerId) -> usize {
        self.inboxes
            .get(usize::from(me))
            .map_or(0, |inbox| inbox.queue.len())
    }

    /// Packets dropped because worker `owner`'s inbox was full.
    pub fn dropped(&self, owner: WorkerId) -> u64 {
        self.inboxes
            .get(usize::from(owner))
            .map_or(0, |inbox| inbox.dropped.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn full_inbox_returns_the_packet_and_counts() {
        let handoff = HandOff::new(2, 2);
        assert_eq!(handoff.send(1, 10u32), Ok(()));
        assert_eq!(handoff.send(1, 11), Ok(()));
        assert_eq!(handoff.send(1, 12), Err(HandOffError::Full(12)));
        assert_eq!(handoff.dropped(1), 1);
        assert_eq!(handoff.dropped(0), 0);
        assert_eq!(handoff.pending(1), 2);
        let mut got = Vec::new();
        assert_eq!(handoff.drain(1, 8, |p| got.push(p)), 2);
        assert_eq!(got, [10, 11]);
        assert_eq!(handoff.receive(1), None);
    }

    #[test]
    fn unknown_worker_gives_the_packet_back() {
        let handoff = HandOff::new(1, 4);
        assert_eq!(handoff.send(3, 5u8), Err(HandOffError::NoSuchWorker(5)));
        assert_eq!(handoff.receive(3), None);
        assert_eq!(handoff.drain(3, 4, |_| {}), 0);
    }

    #[test]
    fn drain_stops_at_max() {
        let handoff = HandOff::new(1, 8);
        for p in 0..5u8 {
            assert_eq!(handoff.send(0, p), Ok(()));
        }
        assert_eq!(handoff.drain(0, 3, |_| {}), 3);
        assert_eq!(handoff.pending(0), 2);
    }
}
