//! The AF_XDP workers: one thread per NIC receive queue, each owning that queue's
//! [`XskSocket`], running `wait → rx_batch → inbox → control frames → acks → flush` and
//! processing every frame in place.
//!
//! Per received frame (`process_frame`):
//!
//! * Upstream: GRE ([`packet::parse_outer`]) → the call by our call ID
//!   ([`CallTable::get`]) → [`packet::decap_parsed`] in place → on `Forward`, either
//!   * the inner destination is another call's client (client-to-client): the inner packet
//!     is encapsulated downstream to that call in the same frame (TTL already decremented,
//!     so [`packet::encap`] is told it was not routed again), or
//!   * the next hop of the inner destination is looked up ([`NextHops`]: the kernel's route
//!     and neighbour tables, or a static header). Resolved: its link-layer header is written
//!     just in front of the inner packet, the frame's head is moved there
//!     ([`Frame::pull_head`]) and the frame goes back out of the same queue
//!     ([`FrameAction::Transmit`]); a stale neighbour is used and its refresh asked for
//!     ([`Other::NextHopStale`]). Unresolved ([`Other::NextHopUnresolved`]: resolution asked
//!     of the kernel), the concentrator's own ([`Other::Local`]) and no route
//!     ([`Other::NoRoute`]): the inner packet is written into the TUN, TTL restored, and the
//!     kernel forwards it (resolving the neighbour itself, so a flow's first packets are
//!     not lost), delivers it, or answers ICMP unreachable, as a router does.
//!
//!   PPP control frames and MPPE Reset-Requests are copied to the control plane
//!   ([`ControlPath::punt`]).
//! * Downstream: plain IPv4 over Ethernet, untagged or with one or two VLAN tags (which are
//!   stripped) → the call by destination address
//!   ([`CallTable::get_by_address`]) → the frame's head is moved back so the inner packet
//!   has [`ENCAP_HEADROOM`] free bytes in front ([`Frame::push_head`]) → [`packet::encap`]
//!   behind the next hop towards the client's outer address → the frame is trimmed to the
//!   encapsulated frame and sent. When that next hop is not resolved, the encapsulated IPv4
//!   packet goes out through the kernel's raw socket instead ([`Other::PeerViaKernel`]).
//! * From the kernel: the TUN readers ([`TunReaders`]) hand the packets the kernel sends to
//!   clients to the call's owner ([`Handed::Kernel`]), which encapsulates them like
//!   downstream frames, so a call's downstream keeps one owner and one order.
//! * Anything else is recycled and counted ([`Other`], [`packet::DropReason`]).
//!
//! Then, once per turn, the worker drains its hand-off inbox, sends the control plane's PPP
//! frames queued for it ([`ControlPath::send_ppp`], [`ControlPath::send_reset_ack`]) and
//! the pure acks that fell due
//! ([`ACK_DELAY`]), each built in a free UMEM frame with [`XskSocket::send_with`].
//!
//! # Who may mutate a call's state (the rule this module relies on)
//!
//! Every worker shares every call (`Arc<CallTable<WorkerCall>>`). A call's [`CallConfig`] is
//! read-only; its [`AckExchange`] is atomics. Its [`Upstream`] and [`Downstream`] state
//! need `&mut`, and who may take them depends on the call:
//!
//! * **Stateful MPPE in either direction: one owner.** [`WorkerCall::new`] records the
//!   owner, [`control_worker`]`(call_id, workers)`, when the command path establishes the
//!   call; it owns both directions, the call's pure acks and its control frames. Only the
//!   owner ever locks the call's `upstream` and `downstream`. Any other worker that receives
//!   a frame of the call (RSS spreads a client's downstream flows over every queue) copies
//!   it into the owner's [`HandOff`] inbox and recycles its own frame (frames belong to their
//!   socket's UMEM); the owner processes it as if it had received it, in the order the
//!   inbox gives, and sends it through its own socket. The locks therefore never contend:
//!   each is one uncontended atomic swap per packet, kept only so that the state can stay in
//!   the shared call, where the command path reads the call's counters, without `unsafe`.
//!   A full inbox drops the frame ([`Other::HandOffFull`]); the RC4 state is untouched, so
//!   stateful MPPE sees an ordinary loss and resynchronises through a Reset-Request.
//! * **Stateless in both directions: no owner.** Any worker processes the call's frames
//!   with the call's key chain. The GRE receive window, the MPPE decryptor's key-chain
//!   position and the send sequencer are sequential, so each direction's lock is taken for
//!   the whole decap or encap of one packet; two workers meet there only when the same
//!   call's packets arrive on two queues at the same instant (GRE has no ports: RSS sends a
//!   call's upstream to one queue). Splitting the RC4 work out of the lock is the next
//!   step when that shows up in profiles. Control frames and pure acks of a stateless call
//!   go through the same fixed worker, [`control_worker`], so they leave in order.
//!
//! A handed frame is never handed on for the same call: a worker that gets one for a call
//! it does not own (a call established with another number of workers) drops it
//! ([`Other::NotOwner`]). Its inner packet may go on to another call's owner
//! (client-to-client, [`Handed::Routed`]).
//!
//! # One-armed and two-armed
//!
//! One-armed ([`Worker::spawn`]): one socket, every frame leaves through the interface it
//! came in on. Two-armed ([`Worker::spawn_two_armed`]): the worker serves queue `q` of the
//! outside and of the inside interface, receiving from both each turn. Where a frame leaves
//! is the interface of its next hop: the one its socket is on (transmitted in place), or the
//! other one, in which case it is copied into a frame of the other socket's UMEM
//! (frames belong to their socket) and its own frame is recycled. Frames the worker builds (handed
//! frames, control frames, acks) are built in the outside socket and follow the same rule.
//!
//! An owner sleeping in `wait` sees handed frames and control frames only when its poll
//! times out ([`WorkerConfig::poll_timeout`], 1 ms by default); a wake-up eventfd would
//! remove that latency.
//!
//! # Headroom
//!
//! Downstream encapsulation happens in place: the received frame's IPv4 packet must have at
//! least [`ENCAP_HEADROOM`] (66) bytes in front of it. It sits [`ETHERNET_LEN`] bytes (or
//! more, after VLAN tags) after the frame's head, which the socket places
//! [`XskConfig::headroom`](crate::xsk::XskConfig) bytes into the UMEM frame, so
//! `headroom + ETHERNET_LEN >= ENCAP_HEADROOM` is required; [`Worker::spawn`] refuses a
//! socket without it ([`WorkerError::Headroom`]). The default headroom (128) leaves 76 bytes
//! to spare. Client-to-client needs fewer: the inner packet already sits behind the
//! outer headers it arrived with.

mod acks;
mod counters;
mod tun;

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use acks::ACK_DELAY;
pub use counters::{BATCH_BUCKETS, Other, PacketsBytes, RingSnapshot, SharedCounters, WorkerStats};
pub use tun::{TunReaderStats, TunReaders};

use self::acks::AckTimer;
use crate::calls::handoff::{DEFAULT_CAPACITY, HandOff, HandOffError, WorkerId};
use crate::calls::{Call, CallTable};
use crate::packet::{
    self, AckExchange, CallConfig, CallState, DecapVerdict, Downstream, ENCAP_HEADROOM,
    ETHERNET_LEN, EncapVerdict, L2Header, Upstream, VLAN_TAG_LEN,
};
use crate::punt::{ControlPath, OutgoingPpp, Punt, PuntEvent, control_worker};
use crate::route::{NextHop, RouteReader, Routes};
use crate::tun::TunQueue;
use crate::xsk::{Frame, FrameAction, FrameError, KernelStats, XskError, XskSocket};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::wire::ipv4::Ipv4Packet;

const IPPROTO_GRE: u8 = 47;

/// A call as the workers keep it in the [`CallTable`]: the fast path's [`CallState`], each
/// direction's mutable state behind a lock, and the owning worker if the call has one (see
/// the module documentation for who may take the locks).
#[derive(Debug)]
pub struct WorkerCall {
    pub config: CallConfig,
    /// Locked only by the owner when [`owner`](Self::owner) is `Some`; by the command path
    /// to read counters.
    pub upstream: Mutex<Upstream>,
    /// As `upstream`.
    pub downstream: Mutex<Downstream>,
    pub acks: AckExchange,
    owner: Option<WorkerId>,
}

impl WorkerCall {
    /// The call as the workers keep it, for a datapath of `workers` workers: if either
    /// direction runs stateful MPPE, the call gets its owner, [`control_worker`] of its call
    /// ID.
    pub fn new(state: CallState, workers: usize) -> WorkerCall {
        let stateful = |mode: Option<MppeMode>| mode.is_some_and(|m| m != MppeMode::Stateless);
        let owned = stateful(state.upstream.mppe.as_ref().map(|m| m.mode()))
            || stateful(state.downstream.mppe.as_ref().map(|m| m.mode()));
        WorkerCall {
            owner: owned.then(|| control_worker(state.config.local_call_id, workers)),
            config: state.config,
            upstream: Mutex::new(state.upstream),
            downstream: Mutex::new(state.downstream),
            acks: state.acks,
        }
    }

    /// The worker that alone processes this call, if it is stateful; `None`: any worker.
    pub fn owner(&self) -> Option<WorkerId> {
        self.owner
    }
}

/// A poisoned lock means a worker panicked mid-packet; the state is still plain data (at
/// worst one packet's numbering is off), so the others carry on with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one worker copies into another's inbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handed {
    /// A frame as received (from the Ethernet header): the owner processes it as its own.
    Frame(Vec<u8>),
    /// An IPv4 packet another call's upstream routed to the owner's call
    /// (client-to-client; TTL already decremented): the owner encapsulates it.
    Routed(Vec<u8>),
    /// An IPv4 packet the kernel sent into the TUN for the owner's call's client (its TTL
    /// is the kernel's business): the owner encapsulates it.
    Kernel(Vec<u8>),
}

/// Where forwarded frames go next.
#[derive(Debug, Clone)]
pub enum NextHops {
    /// One configured link-layer header for every frame, both directions: a static next
    /// hop (a single router in front of a one-armed concentrator, or a test).
    Static(L2Header),
    /// The kernel's route and neighbour tables ([`crate::route`]): upstream packets by
    /// their inner destination, downstream GRE by the client's outer address. The table's
    /// [`OutputFilter`](crate::route::OutputFilter) must admit only the interface the
    /// worker's socket is on: a route out of anything else is [`NextHop::NoRoute`], and
    /// such packets go through the kernel.
    Routes(Arc<Routes>),
}

impl From<L2Header> for NextHops {
    fn from(l2: L2Header) -> NextHops {
        NextHops::Static(l2)
    }
}

impl From<Arc<Routes>> for NextHops {
    fn from(routes: Arc<Routes>) -> NextHops {
        NextHops::Routes(routes)
    }
}

/// One worker's next-hop source.
enum Hops {
    Static(L2Header),
    Routes(RouteReader),
}

impl Hops {
    fn new(next_hops: &NextHops) -> Hops {
        match next_hops {
            NextHops::Static(l2) => Hops::Static(*l2),
            NextHops::Routes(routes) => Hops::Routes(routes.reader()),
        }
    }

    /// The link-layer header towards `dst` and the interface it leaves by (`None`: the one
    /// the frame is on), or why there is none (the counter for the caller to bump).
    /// Unresolved and stale next hops are asked of the kernel.
    fn resolve(
        &mut self,
        dst: Ipv4Addr,
        stats: &mut WorkerStats,
    ) -> Result<(L2Header, Option<u32>), Other> {
        let reader = match self {
            Hops::Static(l2) => return Ok((*l2, None)),
            Hops::Routes(reader) => reader,
        };
        match reader.lookup(dst) {
            NextHop::Resolved {
                ifindex,
                l2,
                refresh,
                addr,
                ..
            } => {
                if refresh {
                    stats.other(Other::NextHopStale);
                    reader.request(addr, ifindex);
                }
                Ok((l2, Some(ifindex)))
            }
            NextHop::Unresolved { ifindex, addr } => {
                reader.request(addr, ifindex);
                Err(Other::NextHopUnresolved)
            }
            NextHop::Local => Err(Other::Local),
            NextHop::NoRoute => Err(Other::NoRoute),
        }
    }
}

/// The link-layer header of downstream frames the kernel sends ([`Other::PeerViaKernel`]):
/// built like any other, then its [`ETHERNET_LEN`] bytes are cut off.
fn placeholder_l2() -> L2Header {
    L2Header::ethernet([0; 6], [0; 6])
}

/// What every worker needs besides its socket. Clone it for each worker: the queues are
/// shared.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Where frames go next, both directions.
    pub next_hops: NextHops,
    /// The TUN device's queues: worker `q` writes into queue `q % len` the upstream packets
    /// the fast path does not route itself ([`Other::Local`], [`Other::NextHopUnresolved`],
    /// [`Other::NoRoute`]). `None`: those are dropped ([`Other::TunDropped`]).
    pub tun: Option<Arc<[TunQueue]>>,
    /// A raw IPv4 socket (`IPPROTO_RAW`, header included) for downstream GRE whose client's
    /// next hop is not resolved: the kernel routes it ([`Other::PeerViaKernel`]). `None`:
    /// such frames are dropped ([`Other::PeerUnreachable`]).
    pub raw: Option<Arc<socket2::Socket>>,
    /// Most frames per turn, received and handed each.
    pub batch: usize,
    /// How long one `wait` blocks when the worker has nothing queued: the stop flag, the
    /// inbox and the control frames are looked at least this often.
    pub poll_timeout: Duration,
    /// Pin the thread to the core with the queue's index, if that core exists.
    pub pin: bool,
    /// How long an owed GRE ack waits for a data packet before a pure ack goes out.
    pub ack_delay: Duration,
    /// Every worker's inbox (index: the worker's queue).
    pub handoff: Arc<HandOff<Handed>>,
    /// The punt queue and the outgoing PPP queues, shared with the command server.
    pub control: Arc<ControlPath>,
}

impl WorkerConfig {
    /// Defaults for a datapath of `workers` workers, one per queue 0..workers (the calls'
    /// [`WorkerCall::new`] must be given the same number): no TUN, no raw socket.
    pub fn new(next_hops: impl Into<NextHops>, workers: usize) -> WorkerConfig {
        WorkerConfig {
            next_hops: next_hops.into(),
            tun: None,
            raw: None,
            batch: 64,
            poll_timeout: Duration::from_millis(1),
            pin: true,
            ack_delay: ACK_DELAY,
            handoff: Arc::new(HandOff::new(workers.max(1), DEFAULT_CAPACITY)),
            control: ControlPath::new(workers),
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
    #[error(
        "queue {queue} has no inbox: the worker configuration was made for {workers} workers \
         (queues 0 to {workers} - 1); make it with the number of queues served"
    )]
    NoInbox { queue: u32, workers: usize },
    #[error(
        "a two-armed worker serves one queue index on both interfaces; got outside queue \
         {outside} and inside queue {inside}"
    )]
    QueueMismatch { outside: u32, inside: u32 },
    #[error("cannot start the worker thread: {0}")]
    Spawn(#[source] io::Error),
    #[error("AF_XDP socket: {0}")]
    Socket(#[from] XskError),
    #[error("the worker thread panicked")]
    Panicked,
}

/// One turn's view of the world: what processing a frame needs besides the frame.
struct Turn<'a> {
    me: WorkerId,
    calls: &'a CallTable<WorkerCall>,
    config: &'a WorkerConfig,
    stats: &'a mut WorkerStats,
    acks: &'a mut AckTimer,
    hops: &'a mut Hops,
    /// This worker's TUN queue.
    tun: Option<&'a TunQueue>,
    /// The interface of the socket whose UMEM holds the frame being processed, and the
    /// worker's other interface (two-armed mode).
    here: u32,
    there: Option<u32>,
    /// The frame being processed leaves by `there`: [`finish`] copies it into the other
    /// socket.
    cross: bool,
    now: Instant,
    /// The frame being processed came from the inbox and has not passed its call's
    /// ownership check yet: never hand it on. Cleared once it has (its inner packet may
    /// still go to another call's owner, client-to-client).
    handed: bool,
}

impl Turn<'_> {
    /// Copies the frame's data to `owner`, or drops it if it already was handed once.
    fn hand_off(&mut self, owner: WorkerId, packet: Handed) -> FrameAction {
        if self.handed {
            self.stats.other(Other::NotOwner);
            return FrameAction::Recycle;
        }
        match self.config.handoff.send(owner, packet) {
            Ok(()) => self.stats.other(Other::HandedOff),
            Err(HandOffError::Full(_)) => self.stats.other(Other::HandOffFull),
            Err(HandOffError::NoSuchWorker(_)) => self.stats.other(Other::NotOwner),
        }
        FrameAction::Recycle
    }

    /// The worker that must process `call`, if not this one.
    fn elsewhere(&self, call: &WorkerCall) -> Option<WorkerId> {
        call.owner.filter(|&owner| owner != self.me)
    }

    /// The next hop towards `dst`: its link-layer header, with [`cross`](Self::cross) set if
    /// it is on the other interface. A hop on an interface this worker has no socket on
    /// counts as no route (the route filter should not let one through).
    fn hop(&mut self, dst: Ipv4Addr) -> Result<L2Header, Other> {
        let (l2, ifindex) = self.hops.resolve(dst, self.stats)?;
        match ifindex {
            None => Ok(l2),
            Some(i) if i == self.here => Ok(l2),
            Some(i) if Some(i) == self.there => {
                self.cross = true;
                Ok(l2)
            }
            Some(_) => Err(Other::NoRoute),
        }
    }

    fn punt(&mut self, call: &Call<WorkerCall>, event: PuntEvent) {
        let punt = Punt {
            call_id: call.call_id(),
            generation: call.generation(),
            event,
        };
        if !self.config.control.punt(punt) {
            self.stats.other(Other::PuntFull);
        }
    }
}

/// Offset of the IPv4 header after Ethernet and up to two VLAN tags; `None` if the frame
/// carries something else.
fn l3_offset(frame: &[u8]) -> Option<usize> {
    let mut at = ETHERNET_LEN - 2;
    for _ in 0..3 {
        match frame.get(at..at + 2)? {
            [0x08, 0x00] => return Some(at + 2),
            [0x81, 0x00] | [0x88, 0xA8] => at += VLAN_TAG_LEN,
            _ => return None,
        }
    }
    None
}

/// Processes one frame in place and says what to do with it. Never panics, whatever the
/// bytes.
///
/// GRE is upstream unless it is not a call's GRE to us (not PPTP's GRE, no such call, or
/// not addressed to the call's local address) and its destination is a client's tunnel
/// address: then it is inside traffic to that client, as the XDP program classifies it
/// (a client may run GRE through the tunnel). The fallback costs the common path nothing.
fn process_frame(frame: &mut Frame<'_>, t: &mut Turn<'_>) -> FrameAction {
    let Some(l3) = l3_offset(frame) else {
        t.stats.other(Other::NotSteerable);
        return FrameAction::Recycle;
    };
    if frame.get(l3 + 9) != Some(&IPPROTO_GRE) {
        return downstream(frame, l3, t);
    }
    match upstream(frame, t) {
        Ok(action) => action,
        Err(refusal) => {
            if destination(frame, l3).is_some_and(|dst| t.calls.get_by_address(dst).is_some()) {
                return downstream(frame, l3, t);
            }
            match refusal {
                NotUpstream::Drop(reason) => t.stats.drop(reason),
                NotUpstream::Other(other) => t.stats.other(other),
            }
            FrameAction::Recycle
        }
    }
}

/// Why a GRE frame is not a call's upstream (counted only if it is no client's either).
enum NotUpstream {
    Drop(packet::DropReason),
    Other(Other),
}

/// The IPv4 destination of the packet at `l3`.
fn destination(frame: &[u8], l3: usize) -> Option<core::net::Ipv4Addr> {
    match frame.get(l3 + 16..l3 + 20)? {
        &[a, b, c, d] => Some(core::net::Ipv4Addr::new(a, b, c, d)),
        _ => None,
    }
}

fn upstream(frame: &mut Frame<'_>, t: &mut Turn<'_>) -> Result<FrameAction, NotUpstream> {
    let outer = packet::parse_outer(frame).map_err(NotUpstream::Drop)?;
    let guard = t.calls.get(outer.call_id);
    let Some(entry) = guard.as_ref() else {
        return Err(NotUpstream::Other(Other::UnknownCall));
    };
    if outer.dst != entry.config.local_addr {
        return Err(NotUpstream::Drop(packet::DropReason::WrongDestination));
    }
    let call = entry.state();
    if let Some(owner) = t.elsewhere(call) {
        return Ok(t.hand_off(owner, Handed::Frame(frame.to_vec())));
    }
    t.handed = false;
    t.stats.up_rx.add(frame.len());
    let verdict = {
        let mut up = lock(&call.upstream);
        packet::decap_parsed(&call.config, &mut up, &call.acks, frame, &outer)
    };
    if call.acks.ack_owed() {
        t.acks.owe(
            entry.call_id(),
            entry.generation(),
            t.now,
            t.config.ack_delay,
        );
    }
    Ok(match verdict {
        DecapVerdict::Forward { inner } => forward(frame, inner, t),
        DecapVerdict::Local { inner } => to_kernel(frame, inner, false, Other::Local, t),
        DecapVerdict::ToControl { frame: ppp } => {
            t.stats.other(Other::ToControl);
            if let Some(bytes) = frame.get(ppp) {
                let event = PuntEvent::Ppp(bytes.to_vec());
                t.punt(entry, event);
            }
            FrameAction::Recycle
        }
        DecapVerdict::PureAck => {
            t.stats.other(Other::PureAck);
            FrameAction::Recycle
        }
        DecapVerdict::ResetRequest => {
            t.stats.other(Other::ResetRequest);
            t.punt(entry, PuntEvent::ResetRequest);
            FrameAction::Recycle
        }
        DecapVerdict::Drop(reason) => {
            t.stats.drop(reason);
            FrameAction::Recycle
        }
    })
}

/// An upstream inner packet to route: to another call's client, else to its next hop, else
/// to the kernel through the TUN.
fn forward(frame: &mut Frame<'_>, inner: Range<usize>, t: &mut Turn<'_>) -> FrameAction {
    let dst = match frame.get(inner.start + 16..inner.start + 20) {
        Some(&[a, b, c, d]) => core::net::Ipv4Addr::new(a, b, c, d),
        _ => {
            t.stats.drop(packet::DropReason::Truncated);
            return FrameAction::Recycle;
        }
    };
    let guard = t.calls.get_by_address(dst);
    if let Some(target) = guard.as_ref() {
        return client_to_client(frame, inner, target.state(), t);
    }
    let l2 = match t.hop(dst) {
        Ok(l2) => l2,
        Err(why) => return to_kernel(frame, inner, true, why, t),
    };
    let l2 = l2.as_bytes();
    let Some(start) = inner.start.checked_sub(l2.len()) else {
        t.stats.drop(packet::DropReason::NoHeadroom);
        return FrameAction::Recycle;
    };
    let Some(head) = frame.get_mut(start..inner.start) else {
        t.stats.drop(packet::DropReason::Truncated);
        return FrameAction::Recycle;
    };
    head.copy_from_slice(l2);
    let len = l2.len() + inner.len();
    if frame.pull_head(start).is_err() || frame.set_len(len).is_err() {
        t.stats.other(Other::FrameResize);
        return FrameAction::Recycle;
    }
    t.stats.up_tx.add(len);
    FrameAction::Transmit
}

/// Writes the inner packet at `inner` into this worker's TUN queue, for the kernel to deliver
/// or route, counting `why`. `forwarded`: the fast path decremented its TTL; that is undone,
/// since the kernel decrements it when it forwards (one hop through the concentrator, as a
/// routed packet). The frame is recycled either way.
fn to_kernel(
    frame: &mut Frame<'_>,
    inner: Range<usize>,
    forwarded: bool,
    why: Other,
    t: &mut Turn<'_>,
) -> FrameAction {
    t.stats.other(why);
    let Some(tun) = t.tun else {
        t.stats.other(Other::TunDropped);
        return FrameAction::Recycle;
    };
    let Some(packet) = frame.get_mut(inner) else {
        t.stats.drop(packet::DropReason::Truncated);
        return FrameAction::Recycle;
    };
    if forwarded && let Ok(mut ip) = Ipv4Packet::new_checked(&mut *packet) {
        ip.set_ttl(ip.ttl().saturating_add(1));
        ip.fill_checksum();
    }
    if tun.send(packet).is_err() {
        t.stats.other(Other::TunDropped);
    }
    FrameAction::Recycle
}

/// How a call's downstream frames leave: behind `l2` out of this worker's socket, or
/// (`kernel`) through the raw socket, built behind [`placeholder_l2`] which is cut off.
#[derive(Clone, Copy)]
struct PeerHop {
    l2: L2Header,
    kernel: bool,
}

/// The next hop towards `call`'s client; `None` (counted) when there is no way there. Asked
/// before any call state changes, so a frame that cannot leave costs no sequence number and
/// no keystream.
fn peer_hop(call: &WorkerCall, t: &mut Turn<'_>) -> Option<PeerHop> {
    match t.hop(call.config.peer_addr) {
        Ok(l2) => Some(PeerHop { l2, kernel: false }),
        Err(Other::Local) => {
            t.stats.other(Other::PeerUnreachable);
            None
        }
        Err(_) if t.config.raw.is_some() => Some(PeerHop {
            l2: placeholder_l2(),
            kernel: true,
        }),
        Err(_) => {
            t.stats.other(Other::PeerUnreachable);
            None
        }
    }
}

/// Sends the encapsulated frame at `range` (behind [`placeholder_l2`]) as an IPv4 packet
/// through the raw socket; its length if the kernel took it (counted either way).
fn send_via_kernel(
    frame: &Frame<'_>,
    range: Range<usize>,
    call: &WorkerCall,
    t: &mut Turn<'_>,
) -> Option<usize> {
    let start = range.start.checked_add(ETHERNET_LEN)?;
    let sent = match (frame.get(start..range.end), t.config.raw.as_deref()) {
        (Some(ip), Some(raw)) => {
            let to = SocketAddrV4::new(call.config.peer_addr, 0);
            raw.send_to(ip, &to.into()).ok()
        }
        _ => None,
    };
    t.stats.other(match sent {
        Some(_) => Other::PeerViaKernel,
        None => Other::PeerUnreachable,
    });
    sent
}

/// Encapsulates an upstream inner packet (TTL already decremented) to `target`'s client, in
/// the same frame, or hands it to `target`'s owner.
fn client_to_client(
    frame: &mut Frame<'_>,
    inner: Range<usize>,
    target: &WorkerCall,
    t: &mut Turn<'_>,
) -> FrameAction {
    if let Some(owner) = t.elsewhere(target) {
        let Some(bytes) = frame.get(inner) else {
            t.stats.drop(packet::DropReason::Truncated);
            return FrameAction::Recycle;
        };
        let packet = Handed::Routed(bytes.to_vec());
        return t.hand_off(owner, packet);
    }
    let grow = ENCAP_HEADROOM.saturating_sub(inner.start);
    if frame.push_head(grow).is_err() {
        t.stats.drop(packet::DropReason::NoHeadroom);
        return FrameAction::Recycle;
    }
    let inner = inner.start + grow..inner.end + grow;
    let action = encap_to(frame, inner, target, false, t);
    if action == FrameAction::Transmit {
        t.stats.c2c_tx.add(frame.len());
    }
    action
}

fn downstream(frame: &mut Frame<'_>, l3: usize, t: &mut Turn<'_>) -> FrameAction {
    let dst = match frame.get(l3 + 16..l3 + 20) {
        Some(&[a, b, c, d]) => core::net::Ipv4Addr::new(a, b, c, d),
        _ => {
            t.stats.drop(packet::DropReason::Truncated);
            return FrameAction::Recycle;
        }
    };
    let guard = t.calls.get_by_address(dst);
    let Some(entry) = guard.as_ref() else {
        t.stats.other(Other::UnknownClient);
        return FrameAction::Recycle;
    };
    let call = entry.state();
    if let Some(owner) = t.elsewhere(call) {
        return t.hand_off(owner, Handed::Frame(frame.to_vec()));
    }
    t.stats.down_rx.add(frame.len());
    // Make ENCAP_HEADROOM bytes free in front of the inner packet (the link-layer header and
    // any VLAN tags are overwritten): the headroom check in Worker::spawn guarantees the
    // socket has them.
    let grow = ENCAP_HEADROOM.saturating_sub(l3);
    if frame.push_head(grow).is_err() {
        t.stats.drop(packet::DropReason::NoHeadroom);
        return FrameAction::Recycle;
    }
    let inner = l3 + grow..frame.len();
    encap_to(frame, inner, call, true, t)
}

/// [`packet::encap`] of the packet at `inner` for `call`, then the frame trimmed to the
/// result. The caller is allowed to take `call`'s downstream lock (module documentation).
fn encap_to(
    frame: &mut Frame<'_>,
    inner: Range<usize>,
    call: &WorkerCall,
    forwarded: bool,
    t: &mut Turn<'_>,
) -> FrameAction {
    let Some(hop) = peer_hop(call, t) else {
        return FrameAction::Recycle;
    };
    let verdict = {
        let mut down = lock(&call.downstream);
        packet::encap(
            &call.config,
            &mut down,
            &call.acks,
            &hop.l2,
            frame,
            inner,
            forwarded,
        )
    };
    match verdict {
        EncapVerdict::Send { frame: range } if hop.kernel => {
            if let Some(len) = send_via_kernel(frame, range, call, t) {
                t.stats.down_tx.add(len);
            }
            FrameAction::Recycle
        }
        EncapVerdict::Send { frame: range } => {
            let len = range.len();
            if frame.pull_head(range.start).is_err() || frame.set_len(len).is_err() {
                t.stats.other(Other::FrameResize);
                return FrameAction::Recycle;
            }
            t.stats.down_tx.add(len);
            FrameAction::Transmit
        }
        EncapVerdict::Drop(reason) => {
            t.stats.drop(reason);
            FrameAction::Recycle
        }
    }
}

/// A worker's sockets: the outside (clients' GRE) and, two-armed, the inside.
struct Arms<'s> {
    main: &'s mut XskSocket,
    other: Option<&'s mut XskSocket>,
}

/// Builds a frame of at most `len` bytes with `build` in a free UMEM frame of the main
/// socket (then [`finish`]); counts a missing frame.
fn send_built(
    arms: &mut Arms<'_>,
    t: &mut Turn<'_>,
    len: usize,
    build: impl FnOnce(&mut Frame<'_>, &mut Turn<'_>) -> FrameAction,
) {
    t.here = arms.main.ifindex();
    t.there = arms.other.as_ref().map(|o| o.ifindex());
    let other = arms.other.as_deref_mut();
    let sent = arms.main.send_with(len, |frame| {
        let action = build(frame, t);
        finish(frame, action, other, t)
    });
    // Set by a next-hop lookup made for a frame that was never built.
    t.cross = false;
    counted(sent, t);
}

fn counted(sent: Result<(), FrameError>, t: &mut Turn<'_>) {
    match sent {
        Ok(()) => {}
        Err(FrameError::NoFreeFrame) => t.stats.other(Other::TxRingFull),
        Err(_) => t.stats.other(Other::FrameResize),
    }
}

/// The last step for every frame: a frame to transmit whose next hop is on the other
/// interface ([`Turn::cross`]) is copied into a frame of the other socket (frames belong to
/// their socket's UMEM) and its own is recycled.
fn finish(
    frame: &mut Frame<'_>,
    action: FrameAction,
    other: Option<&mut XskSocket>,
    t: &mut Turn<'_>,
) -> FrameAction {
    if !std::mem::take(&mut t.cross) || action != FrameAction::Transmit {
        return action;
    }
    let (Some(other), Some(bytes)) = (other, frame.get(..)) else {
        t.stats.other(Other::FrameResize);
        return FrameAction::Recycle;
    };
    let sent = other.send_with(bytes.len(), |to| match to.get_mut(..) {
        Some(to) if to.len() == bytes.len() => {
            to.copy_from_slice(bytes);
            FrameAction::Transmit
        }
        _ => FrameAction::Recycle,
    });
    counted(sent, t);
    FrameAction::Recycle
}

/// The frames other workers handed to this one, at most one batch, each copied into a
/// frame of this worker's UMEM and processed as if received here.
fn drain_inbox(socket: &mut Arms<'_>, t: &mut Turn<'_>) {
    let (config, me) = (t.config, t.me);
    config
        .handoff
        .drain(me, config.batch, |packet| match packet {
            Handed::Frame(bytes) => send_built(socket, t, bytes.len(), |frame, t| {
                t.handed = true;
                match frame.get_mut(..) {
                    Some(to) if to.len() == bytes.len() => to.copy_from_slice(&bytes),
                    _ => {
                        t.stats.other(Other::FrameResize);
                        return FrameAction::Recycle;
                    }
                }
                process_frame(frame, t)
            }),
            Handed::Routed(bytes) => {
                send_built(socket, t, ENCAP_HEADROOM + bytes.len(), |frame, t| {
                    t.handed = true;
                    routed(frame, &bytes, t)
                })
            }
            Handed::Kernel(bytes) => {
                send_built(socket, t, ENCAP_HEADROOM + bytes.len(), |frame, t| {
                    t.handed = true;
                    from_kernel(frame, &bytes, t)
                })
            }
        });
    t.handed = false;
}

/// A client-to-client packet handed over by the worker that decapsulated it.
fn routed(frame: &mut Frame<'_>, packet: &[u8], t: &mut Turn<'_>) -> FrameAction {
    let inner = ENCAP_HEADROOM..ENCAP_HEADROOM + packet.len();
    match frame.get_mut(inner.clone()) {
        Some(to) => to.copy_from_slice(packet),
        None => {
            t.stats.other(Other::FrameResize);
            return FrameAction::Recycle;
        }
    }
    let dst = match packet.get(16..20) {
        Some(&[a, b, c, d]) => core::net::Ipv4Addr::new(a, b, c, d),
        _ => {
            t.stats.drop(packet::DropReason::Truncated);
            return FrameAction::Recycle;
        }
    };
    let guard = t.calls.get_by_address(dst);
    let Some(target) = guard.as_ref() else {
        t.stats.other(Other::UnknownClient);
        return FrameAction::Recycle;
    };
    client_to_client(frame, inner, target.state(), t)
}

/// A packet the kernel sent into the TUN for a client, handed over by the TUN reader: copied
/// at [`ENCAP_HEADROOM`] and encapsulated to its call (not `forwarded`: the kernel routed it
/// and took care of the TTL).
fn from_kernel(frame: &mut Frame<'_>, packet: &[u8], t: &mut Turn<'_>) -> FrameAction {
    let inner = ENCAP_HEADROOM..ENCAP_HEADROOM + packet.len();
    match frame.get_mut(inner.clone()) {
        Some(to) => to.copy_from_slice(packet),
        None => {
            t.stats.other(Other::FrameResize);
            return FrameAction::Recycle;
        }
    }
    let Some(dst) = destination(packet, 0) else {
        t.stats.drop(packet::DropReason::Truncated);
        return FrameAction::Recycle;
    };
    let guard = t.calls.get_by_address(dst);
    let Some(entry) = guard.as_ref() else {
        t.stats.other(Other::UnknownClient);
        return FrameAction::Recycle;
    };
    let call = entry.state();
    if t.elsewhere(call).is_some() {
        t.stats.other(Other::NotOwner);
        return FrameAction::Recycle;
    }
    t.stats.other(Other::FromTun);
    encap_to(frame, inner, call, false, t)
}

/// The control plane's PPP frames queued for this worker, at most one batch.
fn drain_outgoing(socket: &mut Arms<'_>, t: &mut Turn<'_>) {
    let config = t.config;
    for _ in 0..config.batch {
        let Some(OutgoingPpp {
            call_id,
            frame: ppp,
            reset_encryptor,
        }) = config.control.next_outgoing(t.me)
        else {
            break;
        };
        let calls = t.calls;
        let guard = calls.get(call_id);
        let Some(entry) = guard.as_ref() else {
            t.stats.other(Other::UnknownCall);
            continue;
        };
        let call = entry.state();
        if t.elsewhere(call).is_some() {
            t.stats.other(Other::NotOwner);
            continue;
        }
        let Some(hop) = peer_hop(call, t) else {
            continue;
        };
        let len = packet::ppp_control_len(&hop.l2, ppp.len());
        send_built(socket, t, len, |frame, t| {
            let verdict = {
                let mut down = lock(&call.downstream);
                if reset_encryptor && let Some(encryptor) = down.mppe.as_mut() {
                    encryptor.reset_request();
                }
                packet::ppp_control(&call.config, &mut down, &call.acks, &hop.l2, frame, &ppp)
            };
            let (action, len) = built(frame, verdict, hop, call, t);
            if let Some(len) = len {
                t.stats.control_tx.add(len);
            }
            action
        });
    }
}

/// Pure acks whose delay ran out (see [`ACK_DELAY`]).
fn fire_acks(socket: &mut Arms<'_>, t: &mut Turn<'_>) {
    while let Some((call_id, generation)) = t.acks.pop_due(t.now) {
        let calls = t.calls;
        let guard = calls.get(call_id);
        let Some(entry) = guard.as_ref() else {
            continue;
        };
        let call = entry.state();
        if entry.generation() != generation || t.elsewhere(call).is_some() {
            continue;
        }
        let Some(hop) = peer_hop(call, t) else {
            continue;
        };
        let len = packet::ppp_control_len(&hop.l2, 0);
        send_built(socket, t, len, |frame, t| {
            let verdict = {
                let mut down = lock(&call.downstream);
                packet::pure_ack(&call.config, &mut down, &call.acks, &hop.l2, frame)
            };
            // None: a data packet carried the ack meanwhile.
            let Some(verdict) = verdict else {
                return FrameAction::Recycle;
            };
            let (action, len) = built(frame, verdict, hop, call, t);
            if let Some(len) = len {
                t.stats.ack_tx.add(len);
            }
            action
        });
    }
}

/// A frame built at the start of a `send_with` frame for `call`: trimmed to its length and
/// transmitted, or sent through the kernel (`hop.kernel`), or counted. The length sent, if
/// it was.
fn built(
    frame: &mut Frame<'_>,
    verdict: EncapVerdict,
    hop: PeerHop,
    call: &WorkerCall,
    t: &mut Turn<'_>,
) -> (FrameAction, Option<usize>) {
    match verdict {
        EncapVerdict::Send { frame: range } if hop.kernel => {
            (FrameAction::Recycle, send_via_kernel(frame, range, call, t))
        }
        EncapVerdict::Send { frame: range } if range.start == 0 => {
            if frame.set_len(range.end).is_err() {
                t.stats.other(Other::FrameResize);
                return (FrameAction::Recycle, None);
            }
            (FrameAction::Transmit, Some(range.end))
        }
        EncapVerdict::Send { .. } => {
            t.stats.other(Other::FrameResize);
            (FrameAction::Recycle, None)
        }
        EncapVerdict::Drop(reason) => {
            t.stats.drop(reason);
            (FrameAction::Recycle, None)
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
    /// Starts the worker of `socket`'s queue (one-armed). The socket must already be in the
    /// XSKMAP (or be put there by its fd before the program is attached).
    pub fn spawn(
        socket: XskSocket,
        calls: Arc<CallTable<WorkerCall>>,
        config: WorkerConfig,
    ) -> Result<Worker, WorkerError> {
        Worker::spawn_arms(socket, None, calls, config)
    }

    /// Starts the worker of one queue of two interfaces (two-armed): `outside` faces the
    /// clients, `inside` the network; both sockets are of the same queue index. A frame
    /// whose next hop is on the other interface is copied into the other socket.
    pub fn spawn_two_armed(
        outside: XskSocket,
        inside: XskSocket,
        calls: Arc<CallTable<WorkerCall>>,
        config: WorkerConfig,
    ) -> Result<Worker, WorkerError> {
        if inside.queue() != outside.queue() {
            return Err(WorkerError::QueueMismatch {
                outside: outside.queue(),
                inside: inside.queue(),
            });
        }
        Worker::spawn_arms(outside, Some(inside), calls, config)
    }

    fn spawn_arms(
        mut socket: XskSocket,
        mut inside: Option<XskSocket>,
        calls: Arc<CallTable<WorkerCall>>,
        config: WorkerConfig,
    ) -> Result<Worker, WorkerError> {
        for s in std::iter::once(&socket).chain(inside.as_ref()) {
            let headroom = s.config().headroom as usize;
            if headroom + ETHERNET_LEN < ENCAP_HEADROOM {
                return Err(WorkerError::Headroom { headroom });
            }
        }
        let queue = socket.queue();
        let workers = config.handoff.workers().min(config.control.workers());
        let me = match WorkerId::try_from(queue) {
            Ok(me) if usize::from(me) < workers => me,
            _ => return Err(WorkerError::NoInbox { queue, workers }),
        };
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
                    let mut acks = AckTimer::new();
                    let mut hops = Hops::new(&config.next_hops);
                    let tun = config
                        .tun
                        .as_deref()
                        .and_then(|queues| queues.get(usize::from(me) % queues.len().max(1)));
                    let outside_if = socket.ifindex();
                    let inside_if = inside.as_ref().map(XskSocket::ifindex);
                    let mut kernel = KernelReads::default();
                    while !stop.load(Ordering::Relaxed) {
                        wait_arms(&socket, inside.as_ref(), wait_for(&config, me, &acks))?;
                        let mut turn = Turn {
                            me,
                            calls: &calls,
                            config: &config,
                            stats: &mut stats,
                            acks: &mut acks,
                            hops: &mut hops,
                            tun,
                            here: outside_if,
                            there: inside_if,
                            cross: false,
                            now: Instant::now(),
                            handed: false,
                        };
                        let mut n = socket.rx_batch(config.batch, |frame| {
                            (turn.here, turn.there, turn.cross) = (outside_if, inside_if, false);
                            let action = process_frame(frame, &mut turn);
                            finish(frame, action, inside.as_mut(), &mut turn)
                        });
                        if let (Some(inside), Some(inside_if)) = (inside.as_mut(), inside_if) {
                            n += inside.rx_batch(config.batch, |frame| {
                                (turn.here, turn.there, turn.cross) =
                                    (inside_if, Some(outside_if), false);
                                let action = process_frame(frame, &mut turn);
                                finish(frame, action, Some(&mut socket), &mut turn)
                            });
                        }
                        turn.stats.batch(n);
                        (turn.here, turn.there, turn.cross) = (outside_if, inside_if, false);
                        let mut arms = Arms {
                            main: &mut socket,
                            other: inside.as_mut(),
                        };
                        drain_inbox(&mut arms, &mut turn);
                        drain_outgoing(&mut arms, &mut turn);
                        fire_acks(&mut arms, &mut turn);
                        socket.flush();
                        if let Some(inside) = inside.as_mut() {
                            inside.flush();
                        }
                        counters.publish(&stats);
                        kernel.refresh(&socket, inside.as_ref());
                        let outside = RingSnapshot::of(&socket, kernel.outside);
                        match inside.as_ref() {
                            Some(i) => counters
                                .publish_rings(&[outside, RingSnapshot::of(i, kernel.inside)]),
                            None => counters.publish_rings(&[outside]),
                        }
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

    /// Its sockets' occupancy as last published (once per loop turn).
    pub fn rings(&self) -> Vec<RingSnapshot> {
        self.counters.rings()
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

/// The kernel's counters of a worker's sockets (XDP_STATISTICS, one getsockopt each), read
/// at most once per [`KernelReads::EVERY`]: they are for operators, not for every turn.
#[derive(Debug, Default)]
struct KernelReads {
    at: Option<Instant>,
    outside: Option<KernelStats>,
    inside: Option<KernelStats>,
}

impl KernelReads {
    const EVERY: Duration = Duration::from_secs(1);

    fn refresh(&mut self, outside: &XskSocket, inside: Option<&XskSocket>) {
        let now = Instant::now();
        if self
            .at
            .is_some_and(|at| now.saturating_duration_since(at) < Self::EVERY)
        {
            return;
        }
        self.at = Some(now);
        self.outside = Self::read(outside);
        self.inside = inside.and_then(Self::read);
    }

    fn read(socket: &XskSocket) -> Option<KernelStats> {
        match socket.kernel_stats() {
            Ok(stats) => Some(stats),
            Err(error) => {
                tracing::debug!(queue = socket.queue(), %error, "XDP_STATISTICS not read");
                None
            }
        }
    }
}

/// Waits until either socket has frames to receive, or `timeout` passes.
fn wait_arms(
    outside: &XskSocket,
    inside: Option<&XskSocket>,
    timeout: Duration,
) -> Result<(), WorkerError> {
    let Some(inside) = inside else {
        outside.wait(Some(timeout))?;
        return Ok(());
    };
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [
        PollFd::new(outside.as_fd(), PollFlags::POLLIN),
        PollFd::new(inside.as_fd(), PollFlags::POLLIN),
    ];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(WorkerError::Socket(XskError::Poll(io::Error::from(e)))),
    }
}

/// How long the next `wait` may block: not at all when frames are queued for this worker,
/// else until the next ack is due, at most the poll timeout.
fn wait_for(config: &WorkerConfig, me: WorkerId, acks: &AckTimer) -> Duration {
    if config.handoff.pending(me) > 0 || config.control.outgoing_pending(me) > 0 {
        return Duration::ZERO;
    }
    match acks.next_due() {
        Some(at) => at
            .saturating_duration_since(Instant::now())
            .min(config.poll_timeout),
        None => config.poll_timeout,
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
