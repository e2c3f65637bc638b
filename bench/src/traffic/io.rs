//! Senders and sinks: the sockets that move the engine's packets.
//!
//! * Upstream senders ([`FrameOut`]): [`RawIpSender`] (`sendmmsg` on a raw IPv4 socket:
//!   the kernel adds the link layer) and [`XskSender`] (the datapath's AF_XDP socket, full
//!   frames, copy mode on veth).
//! * Downstream sender: [`send_downstream`] (`sendmmsg` on a UDP socket at the inside host).
//! * Sinks: [`inside_sink`] (UDP, `recvmmsg`) and [`client_sink`] (raw GRE socket in the
//!   clients' namespace, opened with each session's client-side state).
//!
//! Pacing: a batch goes out, then the sender sleeps until the batch's share of the target
//! rate has elapsed; no busy-waiting (the machine is shared).

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{ControlMessage, MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};
use thiserror::Error;
use xpptp_datapath::packet::ETHERNET_LEN;
use xpptp_datapath::xsk::{FrameAction, XskConfig, XskError, XskSocket};

use super::impair::{FlowSchedule, ImpairCounts, Impairer, Impairment};
use super::payload::{self, PayloadHeader, monotonic_ns};
use super::session::{
    FRAME_BUF_LEN, Opened, SessionError, SessionRx, SessionTx, SizeMix, downstream_destination,
    downstream_payload,
};
use super::verify::{RunShape, Verifier};

/// Packets per `sendmmsg` / `recvmmsg` at most.
pub const MAX_BATCH: usize = 64;
const SLOT: usize = 2048;
/// Receive buffer the sinks ask for (the kernel caps it at `net.core.rmem_max`): bursts
/// wait here while the sink verifies, instead of being dropped by the sink's own socket.
const SINK_RCVBUF: usize = 8 << 20;

/// I/O failures, with what to do about them.
#[derive(Debug, Error)]
pub enum TrafficIoError {
    #[error(
        "cannot open a raw IPv4 socket (protocol {protocol}): {source}; run as root (CAP_NET_RAW) in the clients' namespace"
    )]
    RawSocket {
        protocol: i32,
        #[source]
        source: io::Error,
    },
    #[error("cannot open the AF_XDP sender on {interface}: {source}")]
    Xsk {
        interface: String,
        #[source]
        source: XskError,
    },
    #[error("socket I/O failed: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("cannot build the latency histogram: {0}")]
    Histogram(#[from] hdrhistogram::CreationError),
}

/// What a sender is asked to do.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SendPlan {
    /// Packet numbers per session (before impairment): the run is bounded by count.
    pub packets_per_session: u64,
    /// Target packets per second over all sessions; 0: as fast as the sender goes.
    pub rate_pps: u64,
    /// Packets per batch (1 to [`MAX_BATCH`]).
    pub batch: usize,
    pub sizes: SizeMix,
    pub impairment: Impairment,
}

/// What a sender did.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct SendStats {
    /// Packets handed to the socket, duplicates included.
    pub sent: u64,
    /// Their inner IPv4 bytes.
    pub inner_bytes: u64,
    /// Packets the socket refused.
    pub errors: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// What the impairment did.
    pub impaired: ImpairCounts,
}

impl SendStats {
    /// Seconds from the first send to the last.
    pub fn duration_s(&self) -> f64 {
        self.end_ns.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

/// Sleeps so that `sent` packets take at least `sent / rate` seconds from `start`.
#[derive(Debug)]
struct Pacer {
    start: Instant,
    rate: u64,
}

impl Pacer {
    fn wait(&self, sent: u64) {
        if self.rate == 0 {
            return;
        }
        let due = Duration::from_secs_f64(sent as f64 / self.rate as f64);
        if let Some(left) = due.checked_sub(self.start.elapsed()) {
            std::thread::sleep(left);
        }
    }
}

/// Where upstream frames go.
pub trait FrameOut: std::fmt::Debug {
    /// Queues a copy of `frame` (from its Ethernet header) of session `tx`.
    fn push(&mut self, tx: &SessionTx, frame: &[u8]);
    /// Sends everything queued; returns (sent, refused).
    fn flush(&mut self) -> (u64, u64);
}

/// A batch of datagrams for one `sendmmsg`.
#[derive(Debug)]
struct MmsgBatch {
    slots: Vec<u8>,
    lens: [usize; MAX_BATCH],
    addrs: [Option<SockaddrIn>; MAX_BATCH],
    queued: usize,
    headers: MultiHeaders<SockaddrIn>,
}

impl MmsgBatch {
    fn new() -> MmsgBatch {
        MmsgBatch {
            slots: vec![0; MAX_BATCH * SLOT],
            lens: [0; MAX_BATCH],
            addrs: [None; MAX_BATCH],
            queued: 0,
            headers: MultiHeaders::preallocate(MAX_BATCH, None),
        }
    }

    /// The next slot to write a datagram of up to [`SLOT`] bytes into.
    fn slot(&mut self) -> Option<&mut [u8]> {
        let start = self.queued.checked_mul(SLOT)?;
        self.slots.get_mut(start..start + SLOT)
    }

    fn commit(&mut self, len: usize, to: SocketAddrV4) {
        if let (Some(l), Some(a)) = (
            self.lens.get_mut(self.queued),
            self.addrs.get_mut(self.queued),
        ) {
            *l = len.min(SLOT);
            *a = Some(SockaddrIn::from(to));
            self.queued += 1;
        }
    }

    fn flush(&mut self, fd: i32) -> (u64, u64) {
        let n = self.queued;
        self.queued = 0;
        let mut chunks = self.slots.chunks_exact(SLOT).zip(self.lens);
        let iovs: [[IoSlice<'_>; 1]; MAX_BATCH] = core::array::from_fn(|_| {
            let bytes = chunks.next().and_then(|(slot, len)| slot.get(..len));
            [IoSlice::new(bytes.unwrap_or_default())]
        });
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let (mut start, mut sent, mut refused) = (0, 0u64, 0u64);
        while start < n {
            let (Some(slices), Some(addrs)) = (iovs.get(start..n), self.addrs.get(start..n)) else {
                break;
            };
            match sendmmsg(
                fd,
                &mut self.headers,
                slices,
                addrs,
                no_cmsgs,
                MsgFlags::empty(),
            ) {
                Ok(results) => {
                    let k = results.count();
                    sent += k as u64;
                    start += k.max(1);
                }
                Err(Errno::EINTR) => {}
                Err(_) => {
                    refused += 1;
                    start += 1;
                }
            }
        }
        (sent, refused)
    }
}

/// Upstream over a raw IPv4 socket (`IPPROTO_RAW`: the frame's IPv4 packet goes out as
/// built, the kernel resolves the link layer). Open it in the clients' namespace.
#[derive(Debug)]
pub struct RawIpSender {
    socket: Socket,
    batch: MmsgBatch,
}

/// The raw IPv4 socket [`RawIpSender`] sends on (`IPPROTO_RAW`, which implies
/// `IP_HDRINCL`). Open it in the clients' namespace; the socket stays there whichever thread
/// uses it.
pub fn open_raw_ip() -> Result<Socket, TrafficIoError> {
    let protocol = 255;
    Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol)))
        .map_err(|source| TrafficIoError::RawSocket { protocol, source })
}

impl RawIpSender {
    /// A sender on `socket` (from [`open_raw_ip`]). Not `Send` (the `sendmmsg` headers hold
    /// raw pointers): build it on the thread that sends.
    pub fn new(socket: Socket) -> RawIpSender {
        RawIpSender {
            socket,
            batch: MmsgBatch::new(),
        }
    }
}

impl FrameOut for RawIpSender {
    fn push(&mut self, tx: &SessionTx, frame: &[u8]) {
        let Some(packet) = frame.get(tx.l2_len()..) else {
            return;
        };
        if self.batch.queued >= MAX_BATCH {
            self.flush();
        }
        if let Some(slot) = self.batch.slot()
            && let Some(dst) = slot.get_mut(..packet.len())
        {
            dst.copy_from_slice(packet);
            self.batch
                .commit(packet.len(), SocketAddrV4::new(tx.server, 0));
        }
    }

    fn flush(&mut self) -> (u64, u64) {
        self.batch.flush(self.socket.as_raw_fd())
    }
}

/// Upstream through the datapath's AF_XDP socket bound to the clients' interface (queue
/// 0, copy mode on veth): full frames built straight into UMEM frames. No XDP program is
/// needed to transmit.
#[derive(Debug)]
pub struct XskSender {
    socket: XskSocket,
    failed: u64,
}

impl XskSender {
    pub fn open(interface: &str, config: XskConfig) -> Result<XskSender, TrafficIoError> {
        let socket = XskSocket::open_by_name(interface, 0, config).map_err(|source| {
            TrafficIoError::Xsk {
                interface: interface.to_owned(),
                source,
            }
        })?;
        Ok(XskSender { socket, failed: 0 })
    }

    /// "copy" or "zero-copy": how the socket was bound.
    pub fn bound_mode(&self) -> String {
        format!("{:?}", self.socket.mode()).to_lowercase()
    }
}

impl FrameOut for XskSender {
    fn push(&mut self, _tx: &SessionTx, frame: &[u8]) {
        // Wait for completions rather than drop when every frame is in flight.
        for _ in 0..1000 {
            let result = self
                .socket
                .send_with(frame.len(), |f| match f.get_mut(..frame.len()) {
                    Some(dst) => {
                        dst.copy_from_slice(frame);
                        FrameAction::Transmit
                    }
                    None => FrameAction::Recycle,
                });
            if result.is_ok() {
                return;
            }
            self.socket.flush();
            self.socket.reap_completions();
            std::thread::sleep(Duration::from_micros(50));
        }
        self.failed += 1;
    }

    /// Sends what is queued and waits (up to 20 ms) for the kernel to complete it, so that
    /// "sent" counts frames that left and nothing stays behind at the end of a run.
    fn flush(&mut self) -> (u64, u64) {
        let before = self.socket.counters().tx_completed;
        for _ in 0..200 {
            self.socket.flush();
            self.socket.reap_completions();
            if self.socket.tx_outstanding() == 0 {
                break;
            }
            std::thread::sleep(Duration::from_micros(100));
        }
        let sent = self.socket.counters().tx_completed.saturating_sub(before);
        (sent, std::mem::take(&mut self.failed))
    }
}

/// Sends every session's upstream flow, round robin over sessions, `plan.batch` packets
/// per flush, paced to `plan.rate_pps`.
pub fn send_upstream(
    sessions: &mut [SessionTx],
    out: &mut dyn FrameOut,
    plan: &SendPlan,
) -> Result<SendStats, TrafficIoError> {
    let mut impairer = Impairer::new(plan.impairment);
    let mut schedules = vec![FlowSchedule::new(plan.packets_per_session); sessions.len()];
    let mut buf = vec![0u8; FRAME_BUF_LEN];
    let batch = plan.batch.clamp(1, MAX_BATCH);
    let pacer = Pacer {
        start: Instant::now(),
        rate: plan.rate_pps,
    };
    let mut stats = SendStats {
        start_ns: monotonic_ns(),
        ..SendStats::default()
    };
    let (mut queued, mut offered) = (0usize, 0u64);
    loop {
        let mut any = false;
        for (tx, schedule) in sessions.iter_mut().zip(schedules.iter_mut()) {
            let Some(seq) = schedule.next(&mut impairer) else {
                continue;
            };
            any = true;
            let len = plan.sizes.len_at(seq);
            let header = PayloadHeader {
                session: tx.index,
                seq,
                sent_ns: monotonic_ns(),
            };
            let frame = tx.build_frame(&mut buf, len, &header)?;
            if let Some(bytes) = buf.get(frame) {
                out.push(tx, bytes);
            }
            stats.inner_bytes += u64::from(len);
            queued += 1;
            offered += 1;
            if queued >= batch {
                let (sent, refused) = out.flush();
                stats.sent += sent;
                stats.errors += refused;
                queued = 0;
                pacer.wait(offered);
            }
        }
        if !any {
            break;
        }
    }
    let (sent, refused) = out.flush();
    stats.sent += sent;
    stats.errors += refused;
    stats.end_ns = monotonic_ns();
    stats.impaired = impairer.counts;
    Ok(stats)
}

/// Sends every session's downstream flow from the inside host's UDP `socket` to the
/// sessions' tunnel addresses, round robin, batched and paced like [`send_upstream`].
pub fn send_downstream(socket: &UdpSocket, sessions: &[SessionTx], plan: &SendPlan) -> SendStats {
    let mut impairer = Impairer::new(plan.impairment);
    let mut schedules = vec![FlowSchedule::new(plan.packets_per_session); sessions.len()];
    let mut batch = MmsgBatch::new();
    let per_flush = plan.batch.clamp(1, MAX_BATCH);
    let pacer = Pacer {
        start: Instant::now(),
        rate: plan.rate_pps,
    };
    let mut stats = SendStats {
        start_ns: monotonic_ns(),
        ..SendStats::default()
    };
    let mut offered = 0u64;
    let fd = socket.as_raw_fd();
    loop {
        let mut any = false;
        for (tx, schedule) in sessions.iter().zip(schedules.iter_mut()) {
            let Some(seq) = schedule.next(&mut impairer) else {
                continue;
            };
            any = true;
            let len = plan.sizes.len_at(seq);
            let header = PayloadHeader {
                session: tx.index,
                seq,
                sent_ns: monotonic_ns(),
            };
            if let Some(slot) = batch.slot()
                && let Some(n) = downstream_payload(slot, len, &header)
            {
                batch.commit(n, downstream_destination(tx));
                stats.inner_bytes += u64::from(len);
            }
            offered += 1;
            if batch.queued >= per_flush {
                let (sent, refused) = batch.flush(fd);
                stats.sent += sent;
                stats.errors += refused;
                pacer.wait(offered);
            }
        }
        if !any {
            break;
        }
    }
    let (sent, refused) = batch.flush(fd);
    stats.sent += sent;
    stats.errors += refused;
    stats.end_ns = monotonic_ns();
    stats.impaired = impairer.counts;
    stats
}

/// When a sink stops: after `expected` verified packets, or after `idle` without any; and
/// which flows it accepts (`shape`: anything else counts as corrupt).
#[derive(Debug, Clone, Copy)]
pub struct SinkStop {
    pub expected: u64,
    pub idle: Duration,
    pub shape: RunShape,
}

/// Receive buffers for one `recvmmsg`, each slot with [`ETHERNET_LEN`] bytes free in front.
struct RecvBatch {
    slots: Vec<u8>,
    lens: [usize; MAX_BATCH],
    headers: MultiHeaders<SockaddrIn>,
}

impl RecvBatch {
    fn new() -> RecvBatch {
        RecvBatch {
            slots: vec![0; MAX_BATCH * SLOT],
            lens: [0; MAX_BATCH],
            headers: MultiHeaders::preallocate(MAX_BATCH, None),
        }
    }

    /// Blocks (up to the socket's receive timeout) for one packet, then takes what else is
    /// waiting. Returns how many arrived (0 on timeout).
    fn recv(&mut self, fd: i32) -> io::Result<usize> {
        let mut chunks = self.slots.chunks_exact_mut(SLOT);
        let mut iovs: [[IoSliceMut<'_>; 1]; MAX_BATCH] = core::array::from_fn(|_| {
            let slot = chunks.next().and_then(|c| c.get_mut(ETHERNET_LEN..));
            [IoSliceMut::new(slot.unwrap_or_default())]
        });
        match recvmmsg(
            fd,
            &mut self.headers,
            iovs.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        ) {
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

    /// Slot `i`: [`ETHERNET_LEN`] placeholder bytes, then the packet.
    fn slot(&mut self, i: usize) -> Option<&mut [u8]> {
        let len = (*self.lens.get(i)?).min(SLOT - ETHERNET_LEN);
        let start = i.checked_mul(SLOT)?;
        self.slots.get_mut(start..start + ETHERNET_LEN + len)
    }
}

fn receive_loop(
    fd: i32,
    stop: SinkStop,
    verifier: &mut Verifier,
    mut each: impl FnMut(&mut [u8], &mut Verifier, u64),
) -> io::Result<()> {
    let mut batch = RecvBatch::new();
    let mut last = Instant::now();
    while verifier.received() < stop.expected {
        let n = batch.recv(fd)?;
        let now = monotonic_ns();
        if n == 0 {
            if last.elapsed() >= stop.idle {
                break;
            }
            continue;
        }
        last = Instant::now();
        for i in 0..n {
            if let Some(slot) = batch.slot(i) {
                each(slot, verifier, now);
            }
        }
    }
    Ok(())
}

/// The inside host's sink: a UDP socket bound to `addr` (the inside host's address and
/// [`UPSTREAM_PORT`](super::session::UPSTREAM_PORT)). Bind it before the senders start.
pub fn bind_inside(addr: SocketAddrV4) -> Result<UdpSocket, TrafficIoError> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    socket.set_recv_buffer_size(SINK_RCVBUF)?;
    socket.bind(&addr.into())?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(socket.into())
}

/// Receives upstream payloads on `socket` until `stop`.
pub fn inside_sink(socket: &UdpSocket, stop: SinkStop) -> Result<Verifier, TrafficIoError> {
    let mut verifier = Verifier::new(stop.shape)?;
    receive_loop(socket.as_raw_fd(), stop, &mut verifier, |slot, v, now| {
        let body = slot.get(ETHERNET_LEN..).unwrap_or_default();
        v.record(payload::verify(body), now);
    })?;
    Ok(verifier)
}

/// The clients' raw GRE socket (protocol 47), opened in the clients' namespace before the
/// downstream sender starts: it also keeps the kernel from answering the concentrator's GRE
/// with ICMP.
pub fn open_gre_sink() -> Result<Socket, TrafficIoError> {
    let protocol = 47;
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(protocol)))
        .map_err(|source| TrafficIoError::RawSocket { protocol, source })?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    socket.set_recv_buffer_size(SINK_RCVBUF)?;
    Ok(socket)
}

/// Receives downstream GRE on `socket`, opens each packet with its session's client state
/// (by call ID) and verifies the payload. Packets of unknown calls count as foreign.
pub fn client_sink(
    socket: &Socket,
    sessions: &mut [SessionRx],
    stop: SinkStop,
) -> Result<Verifier, TrafficIoError> {
    let by_call: HashMap<u16, usize> = sessions
        .iter()
        .enumerate()
        .map(|(i, s)| (s.call_id(), i))
        .collect();
    let mut verifier = Verifier::new(stop.shape)?;
    receive_loop(socket.as_raw_fd(), stop, &mut verifier, |slot, v, now| {
        // Placeholder Ethernet header: EtherType IPv4, addresses unused.
        if let Some(ethertype) = slot.get_mut(12..14) {
            ethertype.copy_from_slice(&0x0800u16.to_be_bytes());
        }
        let Some(session) = call_id_of(slot)
            .and_then(|id| by_call.get(&id))
            .and_then(|&i| sessions.get_mut(i))
        else {
            v.foreign += 1;
            return;
        };
        match session.open(slot) {
            Opened::Payload(header) => v.record(Ok(header), now),
            Opened::Corrupt(err) => v.record(Err(err), now),
            Opened::Refused(_) => v.foreign += 1,
            Opened::NoData => {}
        }
    })?;
    Ok(verifier)
}

/// The GRE call ID of a frame (placeholder Ethernet, IPv4 without checks: the session's
/// own decapsulation checks everything).
fn call_id_of(frame: &[u8]) -> Option<u16> {
    let ihl = usize::from(frame.get(ETHERNET_LEN)? & 0x0F) * 4;
    let at = ETHERNET_LEN + ihl + 6;
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

/// Binds the inside host's downstream sender: UDP from `addr` (port chosen by the kernel).
pub fn bind_downstream(addr: Ipv4Addr) -> Result<UdpSocket, TrafficIoError> {
    Ok(UdpSocket::bind(SocketAddrV4::new(addr, 0))?)
}
