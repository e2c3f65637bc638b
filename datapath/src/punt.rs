//! The workers' side of the control path: what they punt to the control plane, and the
//! PPP frames the control plane sends on established calls.
//!
//! One [`ControlPath`] is shared (`Arc`) by every worker and the command server.
//!
//! * **Punts, workers to control.** A worker that decapsulates a PPP control frame (LCP
//!   Echo, Terminate, CCP Reset-Request, an unknown protocol to reject) or loses stateful
//!   MPPE coherency copies the event into one bounded lock-free queue ([`ControlPath::punt`])
//!   and calls the notifier the server installed ([`ControlPath::set_notify`]). The server
//!   drains it with [`ControlPath::next_punt`]. A full queue drops the event and counts it
//!   ([`ControlPath::punts_dropped`]): PPP tolerates lost control frames (the peer retries
//!   its requests), and a stalled control plane must never stall a worker.
//! * **Outgoing PPP, control to workers.** [`ControlPath::send_ppp`] queues a frame for the
//!   one worker that may send on the call: [`control_worker`] of the call ID, which is the
//!   call's owner when it has one (see [`crate::worker`]: a stateful call's owner is
//!   `control_worker(call_id)`), and the same fixed worker for a stateless call, so the
//!   frames of one call leave in the order they were queued. That worker drains its queue
//!   once per turn and sends each frame with the call's next GRE sequence number and the
//!   ack owed ([`crate::packet::ppp_control`]).
//!
//! Both queues are `crossbeam_queue::ArrayQueue`s: no lock, no allocation once built (the
//! frames themselves are `Vec`s, allocated by whoever copies them: these are control frames,
//! a handful per call per minute).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use crossbeam_queue::ArrayQueue;

use crate::calls::handoff::WorkerId;

/// Punt queue size: a burst of LCP echoes from every call of a busy concentrator.
pub const PUNT_CAPACITY: usize = 4096;
/// Outgoing PPP frames queued per worker.
pub const OUTGOING_CAPACITY: usize = 1024;

/// The worker that sends call `call_id`'s control frames and pure acks, and owns the call
/// when it is stateful: `call_id % workers`.
pub fn control_worker(call_id: u16, workers: usize) -> WorkerId {
    let workers = workers.clamp(1, usize::from(WorkerId::MAX) + 1);
    // Below `workers`, itself at most WorkerId::MAX + 1.
    (usize::from(call_id) % workers) as WorkerId
}

/// What a worker tells the control plane about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PuntEvent {
    /// A PPP frame from the peer, decrypted if it came encrypted, from its protocol field
    /// (one or two octets, as received; address/control removed).
    Ppp(Vec<u8>),
    /// Stateful MPPE lost packets: send a CCP Reset-Request (RFC 3078 section 8.2).
    ResetRequest,
}

/// One punted event, with the call it belongs to. `generation` is the call table entry's
/// ([`crate::calls::Call::generation`]): an event of a call since replaced or removed is
/// recognisable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Punt {
    pub call_id: u16,
    pub generation: u64,
    pub event: PuntEvent,
}

/// A queue was full: the frame was not queued (and was counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the worker's outgoing PPP queue is full; retry later")]
pub struct Busy;

/// An outgoing PPP frame for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingPpp {
    pub call_id: u16,
    /// From the protocol field on, unencrypted.
    pub frame: Vec<u8>,
    /// Before sending, make the call's MPPE encryptor send its next packet flushed (the
    /// peer's CCP Reset-Request, answered by this frame, a Reset-Ack).
    pub reset_encryptor: bool,
}

type Notify = Box<dyn Fn() + Send + Sync>;

#[repr(align(128))]
struct Outbox {
    queue: ArrayQueue<OutgoingPpp>,
    dropped: AtomicU64,
}

/// The queues between the workers and the control plane (see the module documentation).
pub struct ControlPath {
    punts: ArrayQueue<Punt>,
    punts_dropped: AtomicU64,
    notify: ArcSwapOption<Notify>,
    outboxes: Box<[Outbox]>,
}

impl fmt::Debug for ControlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ControlPath")
            .field("workers", &self.outboxes.len())
            .field("punts", &self.punts.len())
            .field("punts_dropped", &self.punts_dropped())
            .finish_non_exhaustive()
    }
}

impl ControlPath {
    /// Queues for `workers` workers (at least one), default sizes.
    pub fn new(workers: usize) -> Arc<ControlPath> {
        ControlPath::with_capacity(workers, PUNT_CAPACITY, OUTGOING_CAPACITY)
    }

    /// Queues of the given sizes (each at least 1).
    pub fn with_capacity(workers: usize, punts: usize, outgoing: usize) -> Arc<ControlPath> {
        let workers = workers.clamp(1, usize::from(WorkerId::MAX) + 1);
        Arc::new(ControlPath {
            punts: ArrayQueue::new(punts.max(1)),
            punts_dropped: AtomicU64::new(0),
            notify: ArcSwapOption::empty(),
            outboxes: (0..workers)
                .map(|_| Outbox {
                    queue: ArrayQueue::new(outgoing.max(1)),
                    dropped: AtomicU64::new(0),
                })
                .collect(),
        })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.outboxes.len()
    }

    /// Installs the function called after every punt (e.g. to write an eventfd or unpark
    /// the server thread). It runs on the worker's thread: it must be quick and never block.
    pub fn set_notify(&self, notify: impl Fn() + Send + Sync + 'static) {
        self.notify.store(Some(Arc::new(Box::new(notify))));
    }

    /// Removes the notifier.
    pub fn clear_notify(&self) {
        self.notify.store(None);
    }

    /// Workers: queues `punt` for the control plane. False if the queue was full (the punt
    /// is dropped and counted).
    pub fn punt(&self, punt: Punt) -> bool {
        if self.punts.push(punt).is_err() {
            self.punts_dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if let Some(notify) = self.notify.load().as_ref() {
            notify();
        }
        true
    }

    /// The control plane: the oldest punt, if any.
    pub fn next_punt(&self) -> Option<Punt> {
        self.punts.pop()
    }

    /// Punts waiting.
    pub fn punts_pending(&self) -> usize {
        self.punts.len()
    }

    /// Punts dropped because the queue was full.
    pub fn punts_dropped(&self) -> u64 {
        self.punts_dropped.load(Ordering::Relaxed)
    }

    /// The control plane: sends `frame` (from its protocol field, unencrypted) on call
    /// `call_id` through the worker that numbers the call's GRE ([`control_worker`]).
    /// `Busy` when that worker's queue is full (counted). A frame for a call that is gone
    /// by the time the worker takes it is dropped there and counted in its stats.
    pub fn send_ppp(&self, call_id: u16, frame: Vec<u8>) -> Result<(), Busy> {
        self.queue(OutgoingPpp {
            call_id,
            frame,
            reset_encryptor: false,
        })
    }

    /// The control plane's answer to the peer's CCP Reset-Request (RFC 1962 section 2.1,
    /// RFC 3078 section 8.2): like [`send_ppp`](Self::send_ppp) with the CCP Reset-Ack
    /// `frame`, and the worker first tells the call's encryptor, so the next data packet
    /// after the Reset-Ack goes out flushed (stateful MPPE; nothing changes for stateless).
    pub fn send_reset_ack(&self, call_id: u16, frame: Vec<u8>) -> Result<(), Busy> {
        self.queue(OutgoingPpp {
            call_id,
            frame,
            reset_encryptor: true,
        })
    }

    fn queue(&self, outgoing: OutgoingPpp) -> Result<(), Busy> {
        let worker = control_worker(outgoing.call_id, self.workers());
        let outbox = self.outboxes.get(usize::from(worker)).ok_or(Busy)?;
        outbox.queue.push(outgoing).map_err(|_| {
            outbox.dropped.fetch_add(1, Ordering::Relaxed);
            Busy
        })
    }

    /// Worker `me`: the next frame to send, if any.
    pub fn next_outgoing(&self, me: WorkerId) -> Option<OutgoingPpp> {
        self.outboxes.get(usize::from(me))?.queue.pop()
    }

    /// Frames waiting for worker `me`.
    pub fn outgoing_pending(&self, me: WorkerId) -> usize {
        self.outboxes
            .get(usize::from(me))
            .map_or(0, |o| o.queue.len())
    }

    /// Frames refused ([`Busy`]) for worker `worker`.
    pub fn outgoing_dropped(&self, worker: WorkerId) -> u64 {
        self.outboxes
            .get(usize::from(worker))
            .map_or(0, |o| o.dropped.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn punt(call_id: u16) -> Punt {
        Punt {
            call_id,
            generation: 1,
            event: PuntEvent::ResetRequest,
        }
    }

    #[test]
    fn punts_notify_and_a_full_queue_counts() {
        let control = ControlPath::with_capacity(2, 2, 1);
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        control.set_notify(move || {
            seen.fetch_add(1, Ordering::Relaxed);
        });
        assert!(control.punt(punt(1)));
        assert!(control.punt(punt(2)));
        assert!(!control.punt(punt(3)));
        assert_eq!(control.punts_dropped(), 1);
        assert_eq!(calls.load(Ordering::Relaxed), 2, "notified per queued punt");
        assert_eq!(control.next_punt().map(|p| p.call_id), Some(1));
        assert_eq!(control.next_punt().map(|p| p.call_id), Some(2));
        assert_eq!(control.next_punt(), None);
    }

    #[test]
    fn send_ppp_goes_to_the_calls_worker() {
        let control = ControlPath::with_capacity(2, 1, 1);
        assert_eq!(control.send_ppp(7, vec![0xC0, 0x21, 9]), Ok(()));
        assert_eq!(control.send_ppp(9, vec![0xC0, 0x21]), Err(Busy));
        assert_eq!(control.outgoing_dropped(1), 1);
        assert_eq!(control.outgoing_pending(0), 0);
        assert_eq!(control.next_outgoing(0), None);
        let got = control.next_outgoing(1).expect("queued for worker 7 % 2");
        assert_eq!((got.call_id, got.frame), (7, vec![0xC0, 0x21, 9]));
        assert!(!got.reset_encryptor);
        assert_eq!(
            control.send_reset_ack(7, vec![0x80, 0xFD, 15, 1, 0, 4]),
            Ok(())
        );
        assert!(control.next_outgoing(1).is_some_and(|o| o.reset_encryptor));
    }
}
