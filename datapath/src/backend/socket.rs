//! The socket backend: GRE through a raw IPv4 socket, inner packets through the TUN device.
//!
//! # Threads
//!
//! * **One upstream thread** owns the raw socket for IP protocol 47. Every raw socket of a
//!   protocol receives its own copy of every packet of that protocol, so raw sockets cannot
//!   fan out: N of them would mean N copies. One receiver also keeps each call's GRE in
//!   arrival order, which stateful MPPE needs. It receives up to 64 packets (IPv4 header
//!   included) per `recvmmsg`, runs [`packet::decap_parsed`] on each and writes the inner
//!   packet into the TUN (queue 0, one `write` per packet: a TUN has no batched write); the
//!   kernel then routes it (forwarding must be on: `net.ipv4.ip_forward=1`) or delivers it
//!   (the concentrator's own tunnel address).
//! * **N downstream threads** (default one per core), each owning one queue of the
//!   multi-queue TUN (the kernel spreads flows over the queues) and its own send socket. The
//!   client pool is routed into the TUN; each packet read from it is encapsulated
//!   ([`packet::encap`]) in place, and a batch (up to 64) is sent to the clients with one
//!   `sendmmsg`.
//!
//! # Sockets
//!
//! The receive socket is `socket(AF_INET, SOCK_RAW, IPPROTO_GRE)`. The send sockets are
//! `IPPROTO_RAW`: send-only (they receive nothing, so they do not take copies of the GRE
//! traffic) and `IP_HDRINCL`, so the outer IPv4 header [`packet::encap`] builds from the
//! call's template is sent as it is (source, identification, DF, TTL); the kernel only fills
//! the checksum and routes by the destination. The kernel does not answer GRE with ICMP
//! Protocol Unreachable while a raw socket for it is open.
//!
//! GRE of unknown calls is counted ([`Other::UnknownCall`]) and dropped here: in socket mode
//! the control plane reads GRE on a raw socket of its own, which gets its own copy.
//!
//! # Control frames
//!
//! With a [`ControlPath`] ([`SocketConfig::control`]), PPP control frames and MPPE
//! Reset-Requests of established calls are punted by the upstream thread, as the AF_XDP
//! workers punt them; the control plane's frames for a call
//! ([`ControlPath::send_ppp`], with `ControlPath::new(1)`: all for worker 0) are numbered,
//! encrypted when they must be and sent by downstream thread 0, within one poll timeout.
//!
//! # TTL
//!
//! The kernel forwards what the TUN hands it and decrements the TTL then. So that a packet
//! loses one TTL through the concentrator, as with the XDP backend: upstream, the decrement
//! [`packet::decap_parsed`] made is undone before the write; downstream, packets from the
//! TUN are encapsulated with `forwarded = false`.
//!
//! # Counters
//!
//! The same [`WorkerStats`] as the AF_XDP workers, one per thread, published once per
//! batch. Byte counts are of IPv4 packets (there is no link-layer header here): `up_rx`
//! the outer packet, `up_tx` and `down_rx` the inner packet, `down_tx` the outer packet.
//! Packets the kernel refused (TUN queue full, send buffer full, route missing) are counted
//! in [`SocketBackend::io_errors`].

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg};
use socket2::{Domain, Protocol, Socket, Type};
use xpptp_proto::wire::ipv4::Ipv4Packet;

use crate::calls::CallTable;
use crate::packet::{
    self, DecapVerdict, DropReason, ENCAP_HEADROOM, ETHERNET_LEN, EncapVerdict, L2Header,
};
use crate::punt::{ControlPath, OutgoingPpp, Punt, PuntEvent};
use crate::tun::{Tun, TunConfig, TunError, TunQueue, wait_readable};
use crate::worker::{Other, SharedCounters, WorkerCall, WorkerStats};

const IPPROTO_GRE: i32 = 47;
/// Receive buffer asked for the GRE socket (the kernel caps it at net.core.rmem_max).
const GRE_RCVBUF: usize = 4 << 20;
/// [`packet::parse_outer`] and [`packet::encap`] work on Ethernet frames; here the frames
/// are IPv4 packets, so a placeholder Ethernet header is put in front and cut off again.
const PLACEHOLDER_L2: [u8; ETHERNET_LEN] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00];

/// How to run the socket backend.
#[derive(Debug, Clone)]
pub struct SocketConfig {
    /// The TUN device (its `queues` is replaced by [`downstream_threads`](Self::downstream_threads)).
    pub tun: TunConfig,
    /// Downstream threads, one TUN queue each. Default: one per core.
    pub downstream_threads: usize,
    /// Most packets per turn of a thread's loop.
    pub batch: usize,
    /// How long a thread waits for packets before it checks the stop flag.
    pub poll_timeout: Duration,
    /// Pin downstream thread `i` to core `i` (when that core exists); the upstream thread
    /// stays unpinned.
    pub pin: bool,
    /// Where PPP control frames of established calls are punted, and the control plane's
    /// frames taken from (worker 0's queue). `None`: they are counted and dropped.
    pub control: Option<Arc<ControlPath>>,
}

impl SocketConfig {
    pub fn new(tun: TunConfig) -> SocketConfig {
        SocketConfig {
            tun,
            downstream_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            batch: 64,
            poll_timeout: Duration::from_millis(10),
            pin: true,
            control: None,
        }
    }
}

/// Why the socket backend could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SocketBackendError {
    #[error("{0} (the socket backend is already the fallback for hosts without XDP)")]
    Tun(#[from] TunError),
    #[error(
        "opening a raw IPv4 socket for {what} needs CAP_NET_RAW: run as root or grant the \
         capability (`setcap cap_net_admin,cap_net_raw+ep` on the binary)"
    )]
    RawPermission {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("cannot open a raw IPv4 socket for {what}: {source}")]
    RawSocket {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the socket backend needs at least one downstream thread")]
    NoThreads,
    #[error("cannot start a socket backend thread: {0}")]
    Spawn(#[source] io::Error),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("a socket backend thread panicked")]
    Panicked,
}

fn raw_socket_error(what: &'static str, source: io::Error) -> SocketBackendError {
    match source.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            SocketBackendError::RawPermission { what, source }
        }
        _ => SocketBackendError::RawSocket { what, source },
    }
}

fn raw_socket(protocol: i32, what: &'static str) -> Result<Socket, SocketBackendError> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol)))
        .map_err(|source| raw_socket_error(what, source))?;
    socket
        .set_nonblocking(true)
        .map_err(|source| SocketBackendError::Io { what, source })?;
    Ok(socket)
}

/// One thread's published counters and I/O error count.
#[derive(Debug, Default)]
struct ThreadCounters {
    stats: SharedCounters,
    io_errors: AtomicU64,
}

/// What every thread shares.
struct Shared {
    calls: Arc<CallTable<WorkerCall>>,
    control: Option<Arc<ControlPath>>,
    stop: Arc<AtomicBool>,
    batch: usize,
    poll_timeout: Duration,
}

/// The running socket backend: the TUN device, one upstream and N downstream threads.
#[derive(Debug)]
pub struct SocketBackend {
    tun_name: String,
    counters: Vec<Arc<ThreadCounters>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Result<(), SocketBackendError>>>,
}

impl SocketBackend {
    /// Creates the TUN device (address, MTU, pool routes), opens the raw sockets and starts
    /// the threads.
    pub fn spawn(
        calls: Arc<CallTable<WorkerCall>>,
        config: SocketConfig,
    ) -> Result<SocketBackend, SocketBackendError> {
        if config.downstream_threads == 0 {
            return Err(SocketBackendError::NoThreads);
        }
        let gre_rx = raw_socket(IPPROTO_GRE, "receiving GRE")?;
        if let Err(err) = gre_rx.set_recv_buffer_size(GRE_RCVBUF) {
            tracing::warn!("GRE socket: cannot set a {GRE_RCVBUF}-byte receive buffer: {err}");
        }
        let senders = (0..config.downstream_threads)
            .map(|_| raw_socket(libc::IPPROTO_RAW, "sending GRE"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut tun_config = config.tun.clone();
        tun_config.queues = config.downstream_threads;
        let tun = Tun::create(tun_config)?;
        let tun_name = tun.name().to_owned();
        let mtu = tun.config().mtu;
        let pin = config.pin;
        warn_if_not_forwarding(&tun_name);
        let queues: Vec<Arc<TunQueue>> = tun.into_queues().into_iter().map(Arc::new).collect();
        let Some(up_queue) = queues.first().cloned() else {
            return Err(SocketBackendError::NoThreads);
        };

        let stop = Arc::new(AtomicBool::new(false));
        let mut backend = SocketBackend {
            tun_name,
            counters: Vec::new(),
            stop: Arc::clone(&stop),
            threads: Vec::new(),
        };
        let shared = || Shared {
            calls: Arc::clone(&calls),
            control: config.control.clone(),
            stop: Arc::clone(&stop),
            batch: config.batch.max(1),
            poll_timeout: config.poll_timeout,
        };
        // On an error below, dropping `backend` stops and joins the threads already started.
        let counters = Arc::new(ThreadCounters::default());
        backend.counters.push(Arc::clone(&counters));
        let s = shared();
        backend.threads.push(
            std::thread::Builder::new()
                .name("xpptp-sock-up".to_owned())
                .spawn(move || upstream_loop(&s, &gre_rx, &up_queue, &counters))
                .map_err(SocketBackendError::Spawn)?,
        );
        for (i, (queue, sender)) in queues.into_iter().zip(senders).enumerate() {
            let counters = Arc::new(ThreadCounters::default());
            backend.counters.push(Arc::clone(&counters));
            let s = shared();
            backend.threads.push(
                std::thread::Builder::new()
                    .name(format!("xpptp-sock-d{i}"))
                    .spawn(move || {
                        if pin {
                            pin_to_core(i);
                        }
                        downstream_loop(&s, i, &queue, &sender, &counters, mtu)
                    })
                    .map_err(SocketBackendError::Spawn)?,
            );
        }
        Ok(backend)
    }

    /// The TUN device's name.
    pub fn tun_name(&self) -> &str {
        &self.tun_name
    }

    /// Threads running: one upstream, then the downstream ones.
    pub fn threads(&self) -> usize {
        self.threads.len()
    }

    /// Whether every thread is still running (one that stopped on an error reports it
    /// through [`stop`](Self::stop)).
    pub fn all_running(&self) -> bool {
        self.threads.iter().all(|t| !t.is_finished())
    }

    /// Every thread's counters summed, as last published (once per batch).
    pub fn snapshot(&self) -> WorkerStats {
        let mut total = WorkerStats::default();
        for c in &self.counters {
            total.merge(&c.stats.snapshot());
        }
        total
    }

    /// Packets the kernel refused: TUN writes and GRE sends that failed.
    pub fn io_errors(&self) -> u64 {
        self.counters
            .iter()
            .map(|c| c.io_errors.load(Ordering::Relaxed))
            .sum()
    }

    /// Stops every thread (within one poll timeout), removes the TUN device, and returns the
    /// first error a thread stopped with.
    pub fn stop(mut self) -> Result<(), SocketBackendError> {
        self.stop.store(true, Ordering::Relaxed);
        let mut result = Ok(());
        for t in self.threads.drain(..) {
            let r = t.join().unwrap_or(Err(SocketBackendError::Panicked));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

impl Drop for SocketBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Pins the calling thread to core `core`, when it exists (a log line otherwise).
fn pin_to_core(core: usize) {
    let id = core_affinity::get_core_ids().and_then(|ids| ids.into_iter().find(|c| c.id == core));
    match id {
        Some(id) if core_affinity::set_for_current(id) => {}
        Some(_) => tracing::warn!("socket backend: pinning to core {core} failed"),
        None => tracing::info!("socket backend: no core {core}, thread runs unpinned"),
    }
}

/// Routed packets need forwarding on; packets for our own address do not, so a warning.
pub(crate) fn warn_if_not_forwarding(tun: &str) {
    match std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward") {
        Ok(v) if v.trim() == "0" => tracing::warn!(
            "IPv4 forwarding is off: packets from clients through {tun} will not be routed \
             (sysctl -w net.ipv4.ip_forward=1)"
        ),
        Ok(_) => {}
        Err(err) => tracing::warn!("cannot read net.ipv4.ip_forward: {err}"),
    }
}

/// Packets one `recvmmsg` call receives at most (the upstream batch is capped at this).
const RECV_BATCH: usize = 64;
/// Room for one received GRE packet: a 9000-byte jumbo frame's packet and then some. A longer
/// one arrives truncated and is dropped as [`DropReason::Truncated`].
const RECV_SLOT: usize = ETHERNET_LEN + 9216;

/// The upstream thread's receive buffers: [`RECV_BATCH`] slots, each with room for the
/// placeholder Ethernet header in front of the packet, filled by one `recvmmsg`.
struct RecvBatch {
    slots: Vec<u8>,
    headers: MultiHeaders<SockaddrIn>,
    lens: [usize; RECV_BATCH],
}

impl RecvBatch {
    fn new() -> RecvBatch {
        RecvBatch {
            slots: vec![0; RECV_BATCH * RECV_SLOT],
            headers: MultiHeaders::preallocate(RECV_BATCH, None),
            lens: [0; RECV_BATCH],
        }
    }

    /// Receives up to `max` packets without blocking; how many (0 when none is waiting).
    fn recv(&mut self, socket: &Socket, max: usize) -> io::Result<usize> {
        let mut chunks = self.slots.chunks_exact_mut(RECV_SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; RECV_BATCH] = core::array::from_fn(|_| {
            let slot = chunks.next().and_then(|c| c.get_mut(ETHERNET_LEN..));
            [IoSliceMut::new(slot.unwrap_or_default())]
        });
        let max = max.clamp(1, RECV_BATCH);
        let received = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            iovs.iter_mut().take(max),
            MsgFlags::MSG_DONTWAIT,
            None,
        );
        match received {
            Ok(results) => {
                let mut n = 0;
                for (len, msg) in self.lens.iter_mut().zip(results) {
                    *len = msg.bytes;
                    n += 1;
                }
                Ok(n)
            }
            Err(Errno::EAGAIN | Errno::EINTR) => Ok(0),
            Err(e) => Err(io::Error::from(e)),
        }
    }

    /// Slot `i` as an Ethernet frame: placeholder header, then the `i`-th packet received.
    fn frame(&mut self, i: usize) -> Option<&mut [u8]> {
        let len = *self.lens.get(i)?;
        let start = i.checked_mul(RECV_SLOT)?;
        self.slots
            .get_mut(start..start + ETHERNET_LEN + len.min(RECV_SLOT - ETHERNET_LEN))
    }
}

fn upstream_loop(
    s: &Shared,
    gre_rx: &Socket,
    tun: &TunQueue,
    counters: &ThreadCounters,
) -> Result<(), SocketBackendError> {
    let mut batch = RecvBatch::new();
    let mut stats = WorkerStats::default();
    let mut io_errors = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        wait_readable(gre_rx, s.poll_timeout).map_err(|source| SocketBackendError::Io {
            what: "waiting on the GRE socket",
            source,
        })?;
        let n = batch
            .recv(gre_rx, s.batch)
            .map_err(|source| SocketBackendError::Io {
                what: "receiving GRE",
                source,
            })?;
        for i in 0..n {
            let Some(frame) = batch.frame(i) else {
                continue;
            };
            if let Some(out) = upstream(frame, &s.calls, s.control.as_deref(), &mut stats)
                && tun.send(out).is_err()
            {
                io_errors += 1;
            }
        }
        stats.batch(n);
        counters.stats.publish(&stats);
        counters.io_errors.store(io_errors, Ordering::Relaxed);
    }
    Ok(())
}

/// One received GRE packet (behind a placeholder Ethernet header) through the fast path;
/// the inner packet to write into the TUN, if any.
fn upstream<'a>(
    frame: &'a mut [u8],
    calls: &CallTable<WorkerCall>,
    control: Option<&ControlPath>,
    stats: &mut WorkerStats,
) -> Option<&'a [u8]> {
    frame
        .get_mut(..ETHERNET_LEN)?
        .copy_from_slice(&PLACEHOLDER_L2);
    let outer = match packet::parse_outer(frame) {
        Ok(outer) => outer,
        Err(reason) => {
            stats.drop(reason);
            return None;
        }
    };
    let guard = calls.get(outer.call_id);
    let Some(entry) = guard.as_ref() else {
        stats.other(Other::UnknownCall);
        return None;
    };
    let call = entry.state();
    stats.up_rx.add(frame.len().saturating_sub(ETHERNET_LEN));
    let punt = |event: PuntEvent, stats: &mut WorkerStats| {
        let Some(control) = control else {
            return;
        };
        let punt = Punt {
            call_id: entry.call_id(),
            generation: entry.generation(),
            event,
        };
        if !control.punt(punt) {
            stats.other(Other::PuntFull);
        }
    };
    let verdict = {
        let mut up = call
            .upstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        packet::decap_parsed(&call.config, &mut up, &call.acks, frame, &outer)
    };
    match verdict {
        DecapVerdict::Forward { inner } => {
            let packet = frame.get_mut(inner)?;
            // The kernel decrements the TTL when it forwards: undo the fast path's.
            if let Ok(mut ip) = Ipv4Packet::new_checked(&mut *packet) {
                ip.set_ttl(ip.ttl().saturating_add(1));
                ip.fill_checksum();
            }
            stats.up_tx.add(packet.len());
            Some(packet)
        }
        DecapVerdict::Local { inner } => {
            stats.other(Other::Local);
            frame.get(inner)
        }
        DecapVerdict::ToControl { frame: ppp } => {
            stats.other(Other::ToControl);
            if let Some(bytes) = frame.get(ppp) {
                punt(PuntEvent::Ppp(bytes.to_vec()), stats);
            }
            None
        }
        DecapVerdict::PureAck => {
            stats.other(Other::PureAck);
            None
        }
        DecapVerdict::ResetRequest => {
            stats.other(Other::ResetRequest);
            punt(PuntEvent::ResetRequest, stats);
            None
        }
        DecapVerdict::Drop(reason) => {
            stats.drop(reason);
            None
        }
    }
}

/// Packets one `sendmmsg` call sends at most (the downstream batch is capped at this).
const SEND_BATCH: usize = 64;

/// A downstream thread's buffers: [`SEND_BATCH`] slots, each read from the TUN at
/// [`ENCAP_HEADROOM`], encapsulated in place, then all sent by one `sendmmsg`.
struct SendBatch {
    slots: Vec<u8>,
    slot_len: usize,
    /// The outer packet of each queued slot (relative to the slot) and its destination.
    packets: [Range<usize>; SEND_BATCH],
    /// The slot holds a control frame (counted as `control_tx`, not `down_tx`).
    control: [bool; SEND_BATCH],
    peers: [Option<SockaddrIn>; SEND_BATCH],
    queued: usize,
    headers: MultiHeaders<SockaddrIn>,
}

impl SendBatch {
    /// Slots with room for inner packets of `mtu` bytes (longer reads arrive truncated and
    /// are dropped by the encapsulation's length check).
    fn new(mtu: u16) -> SendBatch {
        let slot_len = ENCAP_HEADROOM + usize::from(mtu).max(576);
        SendBatch {
            slots: vec![0; SEND_BATCH * slot_len],
            slot_len,
            packets: core::array::from_fn(|_| 0..0),
            control: [false; SEND_BATCH],
            peers: [None; SEND_BATCH],
            queued: 0,
            headers: MultiHeaders::preallocate(SEND_BATCH, None),
        }
    }

    fn is_full(&self) -> bool {
        self.queued >= SEND_BATCH
    }

    /// The next free slot.
    fn free_slot(&mut self) -> Option<&mut [u8]> {
        let start = self.queued.checked_mul(self.slot_len)?;
        self.slots.get_mut(start..start.checked_add(self.slot_len)?)
    }

    /// Queues the packet at `packet` of the free slot, to `peer`; `control`: a control
    /// frame.
    fn queue(&mut self, packet: Range<usize>, peer: Ipv4Addr, control: bool) {
        if let (Some(p), Some(a), Some(c)) = (
            self.packets.get_mut(self.queued),
            self.peers.get_mut(self.queued),
            self.control.get_mut(self.queued),
        ) {
            *p = packet;
            *a = Some(SockaddrIn::from(SocketAddrV4::new(peer, 0)));
            *c = control;
            self.queued += 1;
        }
    }

    /// Sends every queued packet (one `sendmmsg` when all goes well) and empties the batch.
    /// A packet the kernel refuses is counted (too long for the path: `exceeds_mtu`; anything
    /// else: an I/O error) and the rest are sent after it.
    fn flush(&mut self, socket: &Socket, stats: &mut WorkerStats, io_errors: &mut u64) {
        let SendBatch {
            slots,
            slot_len,
            packets,
            control,
            peers,
            queued,
            headers,
        } = self;
        let n = *queued;
        *queued = 0;
        let mut slot_packets = slots.chunks_exact(*slot_len).zip(packets.iter());
        let iovs: [[IoSlice<'_>; 1]; SEND_BATCH] = core::array::from_fn(|_| {
            let bytes = slot_packets
                .next()
                .and_then(|(slot, range)| slot.get(range.clone()));
            [IoSlice::new(bytes.unwrap_or_default())]
        });
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let mut start = 0;
        while start < n {
            let (Some(slices), Some(addrs)) = (iovs.get(start..n), peers.get(start..n)) else {
                return;
            };
            match sendmmsg(
                socket.as_raw_fd(),
                headers,
                slices,
                addrs,
                no_cmsgs,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(results) => {
                    let sent = results.count();
                    for (p, c) in packets.iter().zip(control.iter()).skip(start).take(sent) {
                        match c {
                            true => stats.control_tx.add(p.len()),
                            false => stats.down_tx.add(p.len()),
                        }
                    }
                    // The kernel stops at a message it cannot send and returns its error
                    // on the next call: `sent` is at least one here.
                    start += sent.max(1);
                }
                Err(Errno::EMSGSIZE) => {
                    stats.drop(DropReason::ExceedsMtu);
                    start += 1;
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    *io_errors += 1;
                    start += 1;
                }
            }
        }
    }
}

fn downstream_loop(
    s: &Shared,
    index: usize,
    tun: &TunQueue,
    sender: &Socket,
    counters: &ThreadCounters,
    mtu: u16,
) -> Result<(), SocketBackendError> {
    let mut batch = SendBatch::new(mtu);
    let l2 = L2Header::ethernet([0; 6], [0; 6]);
    let mut stats = WorkerStats::default();
    let mut io_errors = 0u64;
    while !s.stop.load(Ordering::Relaxed) {
        tun.wait_readable(s.poll_timeout)
            .map_err(|source| SocketBackendError::Io {
                what: "waiting on the TUN queue",
                source,
            })?;
        let mut n = 0;
        while n < s.batch && !batch.is_full() {
            let Some(slot) = batch.free_slot() else {
                break;
            };
            let Some(packet) = slot.get_mut(ENCAP_HEADROOM..) else {
                break;
            };
            let len = match tun.recv(packet) {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(SocketBackendError::Io {
                        what: "reading the TUN queue",
                        source,
                    });
                }
            };
            n += 1;
            let Some(frame) = slot.get_mut(..ENCAP_HEADROOM + len) else {
                continue;
            };
            if let Some((packet, peer)) = downstream(frame, &s.calls, &l2, &mut stats) {
                batch.queue(packet, peer, false);
            }
        }
        // The control plane's frames: all queued for worker 0, sent by thread 0.
        if let Some(control) = s.control.as_deref().filter(|_| index == 0) {
            while !batch.is_full() {
                let Some(out) = control.next_outgoing(0) else {
                    break;
                };
                if let Some((packet, peer)) =
                    control_frame(&mut batch, &s.calls, &l2, out, &mut stats)
                {
                    batch.queue(packet, peer, true);
                }
            }
        }
        batch.flush(sender, &mut stats, &mut io_errors);
        stats.batch(n);
        counters.stats.publish(&stats);
        counters.io_errors.store(io_errors, Ordering::Relaxed);
    }
    Ok(())
}

/// One control-plane PPP frame for a call, built in the batch's free slot; where the outer
/// IPv4 packet lies in the slot, and the client's address, if it is to be sent.
fn control_frame(
    batch: &mut SendBatch,
    calls: &CallTable<WorkerCall>,
    l2: &L2Header,
    out: OutgoingPpp,
    stats: &mut WorkerStats,
) -> Option<(Range<usize>, Ipv4Addr)> {
    let guard = calls.get(out.call_id);
    let Some(entry) = guard.as_ref() else {
        stats.other(Other::UnknownCall);
        return None;
    };
    let call = entry.state();
    let slot = batch.free_slot()?;
    let verdict = {
        let mut down = call
            .downstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if out.reset_encryptor
            && let Some(encryptor) = down.mppe.as_mut()
        {
            encryptor.reset_request();
        }
        packet::ppp_control(&call.config, &mut down, &call.acks, l2, slot, &out.frame)
    };
    match verdict {
        EncapVerdict::Send { frame: range } => {
            let ip = range.start.checked_add(ETHERNET_LEN)?..range.end;
            Some((ip, call.config.peer_addr))
        }
        EncapVerdict::Drop(reason) => {
            stats.drop(reason);
            None
        }
    }
}

/// One packet read from the TUN (at [`ENCAP_HEADROOM`] in `frame`) through the fast path;
/// where the outer IPv4 packet to send lies in `frame`, and the client's address, if any.
fn downstream(
    frame: &mut [u8],
    calls: &CallTable<WorkerCall>,
    l2: &L2Header,
    stats: &mut WorkerStats,
) -> Option<(Range<usize>, Ipv4Addr)> {
    let inner = ENCAP_HEADROOM..frame.len();
    let packet = frame.get(inner.clone())?;
    // IPv6 (router solicitations and the like, when the device has IPv6) is not ours.
    if packet.first().map(|b| b >> 4) != Some(4) {
        stats.other(Other::NotSteerable);
        return None;
    }
    let dst = match packet.get(16..20) {
        Some(&[a, b, c, d]) => Ipv4Addr::new(a, b, c, d),
        _ => {
            stats.drop(DropReason::Truncated);
            return None;
        }
    };
    let guard = calls.get_by_address(dst);
    let Some(call) = guard.as_ref() else {
        stats.other(Other::UnknownClient);
        return None;
    };
    let call = call.state();
    stats.down_rx.add(inner.len());
    let verdict = {
        let mut down = call
            .downstream
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Not `forwarded`: the kernel routed the packet into the TUN and decremented the
        // TTL already.
        packet::encap(&call.config, &mut down, &call.acks, l2, frame, inner, false)
    };
    match verdict {
        EncapVerdict::Send { frame: range } => {
            let ip = range.start.checked_add(ETHERNET_LEN)?..range.end;
            Some((ip, call.config.peer_addr))
        }
        EncapVerdict::Drop(reason) => {
            stats.drop(reason);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_privileges_are_named() {
        let eperm = raw_socket_error("receiving GRE", io::Error::from_raw_os_error(libc::EPERM));
        assert!(matches!(eperm, SocketBackendError::RawPermission { .. }));
        assert!(eperm.to_string().contains("CAP_NET_RAW"), "{eperm}");
        let other = raw_socket_error("sending GRE", io::Error::from_raw_os_error(libc::ENOBUFS));
        assert!(matches!(other, SocketBackendError::RawSocket { .. }));
        let tun = SocketBackendError::from(TunError::NoQueue);
        assert!(tun.to_string().contains("fallback"), "{tun}");
    }

    /// Whatever the bytes and their length, the per-packet steps count and never panic.
    #[test]
    fn any_bytes_are_counted_not_panicked_on() {
        let (calls, _writer) = CallTable::<WorkerCall>::new();
        let l2 = L2Header::ethernet([0; 6], [0; 6]);
        let mut stats = WorkerStats::default();
        let mut gre = vec![
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 47, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        gre.extend_from_slice(&[0x30, 0x81, 0x88, 0x0B, 0, 0, 0x12, 0x34]);
        gre.resize(40, 0xAB);
        if let Some(header) = gre.get_mut(..20) {
            Ipv4Packet::new_unchecked(header).fill_checksum();
        }
        let mut packets = 0;
        for len in 0..=gre.len() {
            for fill in [0x00u8, 0x45, 0xFF] {
                let mut frame = vec![fill; ETHERNET_LEN];
                frame.extend_from_slice(gre.get(..len).unwrap_or_default());
                assert!(upstream(&mut frame, &calls, None, &mut stats).is_none());
                let mut frame = vec![fill; ENCAP_HEADROOM + len];
                if let Some(b) = frame.get_mut(ENCAP_HEADROOM..) {
                    b.copy_from_slice(gre.get(..len).unwrap_or_default());
                }
                assert!(downstream(&mut frame, &calls, &l2, &mut stats).is_none());
                packets += 2;
            }
        }
        let counted = stats.dropped() + stats.other.iter().sum::<u64>();
        assert_eq!(counted, packets, "every packet counted once: {stats:?}");
        assert!(stats.other[Other::UnknownCall.index()] > 0);
        assert!(stats.other[Other::UnknownClient.index()] > 0);
        assert!(stats.other[Other::NotSteerable.index()] > 0);
    }
}
