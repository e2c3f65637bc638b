//! The AF_XDP workers: one thread per NIC receive queue, each owning that queue's
//! [`XskSocket`], running `wait → rx_batch` and processing every frame in place.
//!
//! Per frame ([`process_frame`]):
//!
//! * Upstream: GRE ([`packet::parse_outer`]) → the call by our call ID
//!   ([`CallTable::get`]) → [`packet::decap_parsed`] in place → on `Forward`, a new
//!   link-layer header is written just in front of the inner packet, the frame's head is
//!   moved there ([`Frame::pull_head`]) and the frame is sent back out of the same queue
//!   ([`FrameAction::Transmit`]).
//! * Downstream: plain IPv4 over untagged Ethernet → the call by destination address
//!   ([`CallTable::get_by_address`]) → the frame's head is moved back by
//!   `ENCAP_HEADROOM - ETHERNET_LEN` ([`Frame::push_head`]) so the inner packet has
//!   [`ENCAP_HEADROOM`] free bytes in front → [`packet::encap`] → the frame is trimmed to the
//!   encapsulated frame and sent.
//! * Anything else is recycled and counted ([`Other`], [`DropReason`]).
//!
//! # One-armed mode, and what is not done yet
//!
//! Both directions leave through the interface they came in on (one-armed concentrator),
//! with one link-layer header from [`WorkerConfig::l2`]: the next hop's MAC is configured,
//! not resolved. Neighbour resolution (ARP / the kernel's neighbour table per destination),
//! a second interface, the TUN device for [`Other::Local`], the command channel for
//! [`Other::ToControl`] / [`Other::ResetRequest`], the pure-ack timer and downstream VLAN
//! tags are later work.
//!
//! # Headroom
//!
//! Downstream encapsulation happens in place: the received frame's IPv4 packet must have at
//! least [`ENCAP_HEADROOM`] (66) bytes in front of it. It sits [`ETHERNET_LEN`] bytes after
//! the frame's head, which the socket places [`XskConfig::headroom`](crate::xsk::XskConfig)
//! bytes into the UMEM frame, so `headroom + ETHERNET_LEN >= ENCAP_HEADROOM` is required;
//! [`Worker::spawn`] refuses a socket without it ([`WorkerError::Headroom`]). The default
//! headroom (128) leaves 76 bytes to spare.
//!
//! # Who may mutate a call's state (the rule this module relies on)
//!
//! Every worker shares every call (`Arc<CallTable<WorkerCall>>`). A call's
//! [`CallConfig`] is read-only; its [`AckExchange`] is atomics. Its [`Upstream`] and
//! [`Downstream`] state need `&mut`: **first step**, each direction sits behind its own
//! `std::sync::Mutex` in [`WorkerCall`]. With one queue (or with the NIC's RSS hashing a
//! call's GRE, which has no ports, always to the same queue, and a client's downstream to
//! one queue) the lock is uncontended: one atomic swap per packet. Packets of one call that
//! arrive on two queues serialize on the lock, which is correct (stateful MPPE also needs
//! them in order, which it then gets per queue, not globally).
//!
//! The target rule, which replaces the locks: the worker of queue `call_id % workers` owns
//! both directions of the call; other workers hand the call's frames over through
//! [`crate::calls::handoff::HandOff`] (copying the frame, as frames belong to their
//! socket's UMEM), and the owner uses plain `&mut`. [`owner_of`] is that mapping.

mod counters;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use counters::{BATCH_BUCKETS, Other, PacketsBytes, SharedCounters, WorkerStats};

use crate::calls::CallTable;
use crate::calls::handoff::WorkerId;
use crate::packet::{
    self, AckExchange, CallConfig, CallState, DecapVerdict, Downstream, ENCAP_HEADROOM,
    ETHERNET_LEN, EncapVerdict, L2Header, Upstream,
};
use crate::xsk::{Frame, FrameAction, XskError, XskSocket};

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const IPPROTO_GRE: u8 = 47;

/// A call as the workers keep it in the [`CallTable`]: the fast path's [`CallState`] with
/// each direction's mutable state behind its own lock (see the module documentation).
#[derive(Debug)]
pub struct WorkerCall {
    pub config: CallConfig,
    pub upstream: Mutex<Upstream>,
    pub downstream: Mutex<Downstream>,
    pub acks: AckExchange,
}

impl From<CallState> for WorkerCall {
    fn from(s: CallState) -> WorkerCall {
        WorkerCall {
            config: s.config,
            upstream: Mutex::new(s.upstream),
            downstream: Mutex::new(s.downstream),
            acks: s.acks,
        }
    }
}

/// A poisoned lock means a worker panicked mid-packet; the state is still plain data (at
/// worst one packet's numbering is off), so the others carry on with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The worker that will own call `call_id` once hand-off replaces the per-direction locks.
pub fn owner_of(call_id: u16, workers: usize) -> WorkerId {
    let workers = workers.max(1);
    // The result is below `workers`, itself at most u16::MAX + 1 in any use.
    (usize::from(call_id) % workers) as WorkerId
}

/// What every worker needs besides its socket.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Link-layer header of every frame sent, both directions (one-armed mode, next hop's
    /// MAC configured: neighbour resolution is later work).
    pub l2: L2Header,
    /// Most frames per turn.
    pub batch: usize,
    /// How long one `wait` blocks before the loop checks the stop flag.
    pub poll_timeout: Duration,
    /// Pin the thread to the core with the queue's index, if that core exists.
    pub pin: bool,
}

impl WorkerConfig {
    pub fn new(l2: L2Header) -> WorkerConfig {
        WorkerConfig {
            l2,
            batch: 64,
            poll_timeout: Duration::from_millis(10),
            pin: true,
        }
    }
}

/// Why a worker could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error(
        "socket headroom {headroom} + {ETHERNET_LEN} (Ethernet) is less than the {ENCAP_HEADROOM} \
         bytes in-place encapsulation needs"
    )]
    Headroom { headroom: usize },
    #[error("cannot start the worker thread: {0}")]
    Spawn(#[source] io::Error),
    #[error("AF_XDP socket: {0}")]
    Socket(#[from] XskError),
    #[error("the worker thread panicked")]
    Panicked,
}

/// Processes one received frame in place and says what to do with it. Counts into `stats`.
/// Never panics, whatever the bytes.
pub fn process_frame(
    frame: &mut Frame<'_>,
    calls: &CallTable<WorkerCall>,
    config: &WorkerConfig,
    stats: &mut WorkerStats,
) -> FrameAction {
    let is_gre = frame.get(12..14) == Some(&ETHERTYPE_IPV4[..])
        && frame.get(ETHERNET_LEN + 9) == Some(&IPPROTO_GRE);
    // VLAN-tagged frames go to parse_outer too, which skips the tags; untagged non-GRE
    // IPv4 is the downstream candidate.
    let vlan = matches!(frame.get(12..14), Some([0x81, 0x00] | [0x88, 0xA8]));
    if is_gre || vlan {
        upstream(frame, calls, config, stats)
    } else if frame.get(12..14) == Some(&ETHERTYPE_IPV4[..]) {
        downstream(frame, calls, config, stats)
    } else {
        stats.other(Other::NotSteerable);
        FrameAction::Recycle
    }
}

fn upstream(
    frame: &mut Frame<'_>,
    calls: &CallTable<WorkerCall>,
    config: &WorkerConfig,
    stats: &mut WorkerStats,
) -> FrameAction {
    let outer = match packet::parse_outer(frame) {
        Ok(outer) => outer,
        // A VLAN-tagged frame that is not GRE: downstream over VLAN is later work.
        Err(packet::DropReason::NotGre) => {
            stats.other(Other::NotSteerable);
            return FrameAction::Recycle;
        }
        Err(reason) => {
            stats.drop(reason);
            return FrameAction::Recycle;
        }
    };
    let guard = calls.get(outer.call_id);
    let Some(call) = guard.as_ref() else {
        stats.other(Other::UnknownCall);
        return FrameAction::Recycle;
    };
    let call = call.state();
    stats.up_rx.add(frame.len());
    let verdict = {
        let mut up = lock(&call.upstream);
        packet::decap_parsed(&call.config, &mut up, &call.acks, frame, &outer)
    };
    match verdict {
        DecapVerdict::Forward { inner } => {
            let l2 = config.l2.as_bytes();
            let Some(start) = inner.start.checked_sub(l2.len()) else {
                stats.drop(packet::DropReason::NoHeadroom);
                return FrameAction::Recycle;
            };
            let Some(head) = frame.get_mut(start..inner.start) else {
                stats.drop(packet::DropReason::Truncated);
                return FrameAction::Recycle;
            };
            head.copy_from_slice(l2);
            let len = l2.len() + inner.len();
            if frame.pull_head(start).is_err() || frame.set_len(len).is_err() {
                stats.other(Other::FrameResize);
                return FrameAction::Recycle;
            }
            stats.up_tx.add(len);
            FrameAction::Transmit
        }
        DecapVerdict::Local { .. } => {
            stats.other(Other::Local);
            FrameAction::Recycle
        }
        DecapVerdict::ToControl { .. } => {
            stats.other(Other::ToControl);
            FrameAction::Recycle
        }
        DecapVerdict::PureAck => {
            stats.other(Other::PureAck);
            FrameAction::Recycle
        }
        DecapVerdict::ResetRequest => {
            stats.other(Other::ResetRequest);
            FrameAction::Recycle
        }
        DecapVerdict::Drop(reason) => {
            stats.drop(reason);
            FrameAction::Recycle
        }
    }
}

fn downstream(
    frame: &mut Frame<'_>,
    calls: &CallTable<WorkerCall>,
    config: &WorkerConfig,
    stats: &mut WorkerStats,
) -> FrameAction {
    let dst = match frame.get(ETHERNET_LEN + 16..ETHERNET_LEN + 20) {
        Some(&[a, b, c, d]) => core::net::Ipv4Addr::new(a, b, c, d),
        _ => {
            stats.drop(packet::DropReason::Truncated);
            return FrameAction::Recycle;
        }
    };
    let guard = calls.get_by_address(dst);
    let Some(call) = guard.as_ref() else {
        stats.other(Other::UnknownClient);
        return FrameAction::Recycle;
    };
    let call = call.state();
    stats.down_rx.add(frame.len());
    // Make ENCAP_HEADROOM bytes free in front of the inner packet: the headroom check in
    // Worker::spawn guarantees the socket has them.
    let grow = ENCAP_HEADROOM - ETHERNET_LEN;
    if frame.push_head(grow).is_err() {
        stats.drop(packet::DropReason::NoHeadroom);
        return FrameAction::Recycle;
    }
    let inner = ENCAP_HEADROOM..frame.len();
    let verdict = {
        let mut down = lock(&call.downstream);
        packet::encap(
            &call.config,
            &mut down,
            &call.acks,
            &config.l2,
            frame,
            inner,
            true,
        )
    };
    match verdict {
        EncapVerdict::Send { frame: range } => {
            let len = range.len();
            if frame.pull_head(range.start).is_err() || frame.set_len(len).is_err() {
                stats.other(Other::FrameResize);
                return FrameAction::Recycle;
            }
            stats.down_tx.add(len);
            FrameAction::Transmit
        }
        EncapVerdict::Drop(reason) => {
            stats.drop(reason);
            FrameAction::Recycle
        }
    }
}

/// A running worker: its thread, its published counters, and the stop flag it shares.
#[derive(Debug)]
pub struct Worker {
    queue: u32,
    counters: Arc<SharedCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<XskSocket, WorkerError>>>,
}

impl Worker {
    /// Starts the worker of `socket`'s queue. The socket must already be in the XSKMAP (or
    /// be put there by its fd before the program is attached).
    pub fn spawn(
        mut socket: XskSocket,
        calls: Arc<CallTable<WorkerCall>>,
        config: WorkerConfig,
    ) -> Result<Worker, WorkerError> {
        let headroom = socket.config().headroom as usize;
        if headroom + ETHERNET_LEN < ENCAP_HEADROOM {
            return Err(WorkerError::Headroom { headroom });
        }
        let queue = socket.queue();
        let counters = Arc::new(SharedCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (counters, stop) = (Arc::clone(&counters), Arc::clone(&stop));
            std::thread::Builder::new()
                .name(format!("xpptp-q{queue}"))
                .spawn(move || {
                    if config.pin {
                        pin(queue);
                    }
                    let mut stats = WorkerStats::default();
                    while !stop.load(Ordering::Relaxed) {
                        socket.wait(Some(config.poll_timeout))?;
                        let n = socket.rx_batch(config.batch, |frame| {
                            process_frame(frame, &calls, &config, &mut stats)
                        });
                        stats.batch(n);
                        counters.publish(&stats);
                    }
                    Ok(socket)
                })
                .map_err(WorkerError::Spawn)?
        };
        Ok(Worker {
            queue,
            counters,
            stop,
            thread: Some(thread),
        })
    }

    /// The receive queue this worker serves.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The worker's counters as last published (once per loop turn).
    pub fn snapshot(&self) -> WorkerStats {
        self.counters.snapshot()
    }

    /// The published counters, to read from elsewhere after the worker is gone.
    pub fn counters(&self) -> Arc<SharedCounters> {
        Arc::clone(&self.counters)
    }

    /// Stops the loop (within one poll timeout) and gives the socket back.
    pub fn stop(mut self) -> Result<XskSocket, WorkerError> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| WorkerError::Panicked)?,
            None => Err(WorkerError::Panicked),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Pins the calling thread to the core numbered `queue`, when that core exists (a log line
/// otherwise: the worker runs unpinned).
fn pin(queue: u32) {
    let core = core_affinity::get_core_ids()
        .and_then(|ids| ids.into_iter().find(|c| c.id == queue as usize));
    match core {
        Some(core) if core_affinity::set_for_current(core) => {}
        Some(_) => tracing::warn!("worker of queue {queue}: pinning to core {queue} failed"),
        None => tracing::info!("worker of queue {queue}: no core {queue}, running unpinned"),
    }
}

/// Sum of several workers' counters.
pub fn sum(workers: &[Worker]) -> WorkerStats {
    let mut total = WorkerStats::default();
    for w in workers {
        total.merge(&w.snapshot());
    }
    total
}
