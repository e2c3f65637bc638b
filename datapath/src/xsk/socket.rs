//! One AF_XDP socket with its own UMEM, bound to one (interface, receive queue).
//!
//! # Frame ownership
//!
//! A UMEM frame is, at any moment, in exactly one place, and only that place may touch it:
//!
//! | place                         | owner  | leaves by                                  |
//! |-------------------------------|--------|--------------------------------------------|
//! | UMEM free list (`Umem`)       | us     | [`XskSocket::refill`] or `send_with`'s alloc |
//! | fill ring                     | kernel | a received frame on the RX ring            |
//! | RX ring                       | kernel→us | `rx_batch` takes it into `rx_list`      |
//! | `rx_list` (during `rx_batch`) | us     | the callback's [`FrameAction`]             |
//! | `tx_pending`                  | us     | `flush` puts it on the TX ring             |
//! | TX ring / in flight           | kernel | the completion ring                        |
//! | completion ring               | kernel→us | `reap_completions`: back to the free list |
//!
//! Forwarding on the same UMEM therefore never copies: a received frame handed back with
//! [`FrameAction::Transmit`] goes from `rx_list` to `tx_pending` to the TX ring, and returns to
//! the free list (and so to the fill ring) only when its completion arrives.
//!
//! Ring sizes: RX, TX and completion rings hold `frame_count` entries and the fill ring twice
//! that, so no ring can ever be full when we produce into it (there are only `frame_count`
//! frames). The `xdp` crate reserves all-or-nothing, so this is also what makes a batch
//! never half-submitted. The fill ring is larger than the frames in flight as the notes ask
//! (4096 frames with a 4096-entry fill ring dropped half the traffic here).
//!
//! # Concurrency
//!
//! One socket belongs to one worker thread (`&mut self` everywhere). It may be moved to that
//! thread after it is opened ([`Send`]), never shared. Its UMEM is not shared with any other
//! socket (the `xdp` crate has no shared-UMEM support): forwarding to another queue or
//! interface copies the frame.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use xdp::libc::xdp::XdpStatistics;
use xdp::slab::Slab;
use xdp::socket::{OptName, PollTimeout, SocketError, XdpSocket, XdpSocketBuilder};
use xdp::umem::{FrameSize, UmemCfgBuilder};
use xdp::{
    CompletionRing, Packet, RingConfigBuilder, RxRing, Umem, WakableFillRing, WakableTxRing,
};

use super::memlock::{MemlockLimit, raise_memlock_limit};
use super::wakeup::WakeupFlags;

/// How to bind: zero-copy needs driver support (veth has none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindMode {
    /// Try zero-copy, fall back to copy mode with a log line.
    Auto,
    /// Copy mode only (veth, or to rule zero-copy out).
    Copy,
    /// Zero-copy or fail.
    ZeroCopy,
}

/// The mode a socket ended up bound in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundMode {
    Copy,
    ZeroCopy,
}

/// Sizes of one socket's UMEM and rings.
#[derive(Debug, Clone, Copy)]
pub struct XskConfig {
    /// Frames in the UMEM; a power of two. Every ring is sized from it (module docs).
    pub frame_count: u32,
    /// Bytes per frame: 2048 or 4096. 256 bytes of each are the kernel's XDP headroom.
    pub frame_size: u32,
    /// Bytes kept free in front of every received frame, so encapsulation can prepend
    /// headers in place (outer IPv4 + GRE + PPP + MPPE is 40 bytes).
    pub headroom: u32,
    /// Frames kept out of the fill ring for frames the worker builds itself (pure acks,
    /// control frames), so receiving can never starve sending.
    pub tx_reserve: u32,
    /// Most frames one [`XskSocket::rx_batch`] takes.
    pub max_batch: usize,
    pub mode: BindMode,
}

impl Default for XskConfig {
    /// 4096 frames of 2 KiB (8 MiB per queue), 128 bytes of headroom.
    fn default() -> XskConfig {
        XskConfig {
            frame_count: 4096,
            frame_size: 2048,
            headroom: 128,
            tx_reserve: 256,
            max_batch: 64,
            mode: BindMode::Auto,
        }
    }
}

impl XskConfig {
    /// The UMEM's size in bytes.
    pub fn umem_bytes(&self) -> u64 {
        u64::from(self.frame_count) * u64::from(self.frame_size)
    }

    fn check(&self) -> Result<(FrameSize, u32), XskError> {
        let bad = |what: String| Err(XskError::Config(what));
        let frame_size = match self.frame_size {
            2048 => FrameSize::TwoK,
            4096 => FrameSize::FourK,
            other => return bad(format!("frame_size {other}: must be 2048 or 4096")),
        };
        if !self.frame_count.is_power_of_two() || self.frame_count > 1 << 20 {
            return bad(format!(
                "frame_count {}: must be a power of two up to 2^20",
                self.frame_count
            ));
        }
        // 256 bytes of XDP headroom, then ours, then at least a full 1518-byte frame.
        if self.headroom > 512 || self.frame_size - 256 - self.headroom < 1518 {
            return bad(format!(
                "headroom {}: leaves no room for a 1518-byte frame in {}-byte frames",
                self.headroom, self.frame_size
            ));
        }
        if self.tx_reserve >= self.frame_count {
            return bad(format!(
                "tx_reserve {} must be below frame_count {}",
                self.tx_reserve, self.frame_count
            ));
        }
        if self.max_batch == 0 || self.max_batch > self.frame_count as usize {
            return bad(format!(
                "max_batch {}: must be 1..=frame_count",
                self.max_batch
            ));
        }
        let fill = self
            .frame_count
            .checked_mul(2)
            .ok_or_else(|| XskError::Config("frame_count too large".into()))?;
        Ok((frame_size, fill))
    }
}

/// What opening or driving a socket failed at.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("invalid AF_XDP configuration: {0}")]
    Config(String),
    #[error(
        "cannot create an AF_XDP socket: {0} (needs a kernel with CONFIG_XDP_SOCKETS and \
         CAP_NET_RAW)"
    )]
    Unavailable(#[source] io::Error),
    #[error("mapping the {bytes}-byte UMEM failed")]
    UmemMap {
        bytes: u64,
        #[source]
        source: io::Error,
    },
    #[error(
        "registering the {mib} MiB UMEM failed ({source}). A UMEM is charged to \
         RLIMIT_MEMLOCK (now {limit}) unless the process has CAP_IPC_LOCK. Fix: run with \
         CAP_IPC_LOCK (root normally has it), or raise the limit (ulimit -l, systemd \
         LimitMEMLOCK=; raising needs CAP_SYS_RESOURCE), or use fewer frames per queue"
    )]
    UmemRegistration {
        mib: u64,
        limit: String,
        #[source]
        source: io::Error,
    },
    #[error("setting up the AF_XDP socket: {step} failed")]
    Socket {
        step: &'static str,
        #[source]
        source: SocketError,
    },
    #[error("mapping the ring flags (need-wakeup) failed")]
    WakeupFlags(#[source] io::Error),
    #[error(
        "binding the AF_XDP socket to ifindex {ifindex} queue {queue} in {mode:?} mode failed \
         ({source}): EINVAL means no such queue, EBUSY that the queue already has a socket, \
         EOPNOTSUPP that the driver has no zero-copy"
    )]
    Bind {
        ifindex: u32,
        queue: u32,
        mode: BoundMode,
        #[source]
        source: io::Error,
    },
    #[error("no interface named {0:?}")]
    NoSuchInterface(String),
    #[error("polling the AF_XDP socket failed")]
    Poll(#[source] io::Error),
}

/// What to do with a frame once the worker has looked at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameAction {
    /// Done with it: the frame goes back to the fill ring.
    Recycle,
    /// Send it (as the worker left it) out of this socket's queue, without copying.
    Transmit,
}

/// Why a frame could not be resized, or no frame was available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("{needed} bytes of headroom needed, {available} available")]
    NoHeadroom { needed: usize, available: usize },
    #[error("length {wanted} does not fit: {available} bytes from the head to the frame's end")]
    NoTailroom { wanted: usize, available: usize },
    #[error("cannot remove {wanted} bytes from a {len}-byte frame")]
    TooShort { wanted: usize, len: usize },
    #[error("no free UMEM frame (all are receiving or in flight)")]
    NoFreeFrame,
}

/// A frame in the worker's hands: its bytes, and room to grow at both ends.
///
/// Lives only inside [`XskSocket::rx_batch`]'s callback or [`XskSocket::send_with`]'s
/// builder; the frame itself never leaves the socket.
pub struct Frame<'a> {
    packet: &'a mut Packet,
    /// Mirror of the packet's head offset (bytes in front of the data), which the `xdp` crate
    /// keeps private; it starts at the configured headroom and moves with every resize here.
    head: usize,
}

impl<'a> Frame<'a> {
    fn new(packet: &'a mut Packet, headroom: usize) -> Frame<'a> {
        Frame {
            packet,
            head: headroom,
        }
    }

    pub fn len(&self) -> usize {
        self.packet.len()
    }

    pub fn is_empty(&self) -> bool {
        self.packet.is_empty()
    }

    /// Bytes that [`Frame::push_head`] can still add in front.
    pub fn headroom(&self) -> usize {
        self.head
    }

    /// Most bytes [`Frame::set_len`] accepts.
    pub fn max_len(&self) -> usize {
        self.packet.capacity().saturating_sub(self.head)
    }

    /// Grows the frame by `n` bytes in front (for new outer headers); the new bytes hold
    /// whatever the frame held before.
    pub fn push_head(&mut self, n: usize) -> Result<(), FrameError> {
        let err = FrameError::NoHeadroom {
            needed: n,
            available: self.head,
        };
        let diff = i32::try_from(n).map_err(|_| err)?;
        self.packet.adjust_head(-diff).map_err(|_| err)?;
        self.head -= n;
        Ok(())
    }

    /// Removes `n` bytes from the front (stripping outer headers).
    pub fn pull_head(&mut self, n: usize) -> Result<(), FrameError> {
        let err = FrameError::TooShort {
            wanted: n,
            len: self.len(),
        };
        let diff = i32::try_from(n).map_err(|_| err)?;
        self.packet.adjust_head(diff).map_err(|_| err)?;
        self.head += n;
        Ok(())
    }

    /// Sets the length (shrinking, or growing into the frame's tailroom).
    pub fn set_len(&mut self, len: usize) -> Result<(), FrameError> {
        let err = FrameError::NoTailroom {
            wanted: len,
            available: self.max_len(),
        };
        let current = self.len();
        let diff = if len >= current {
            i32::try_from(len - current)
        } else {
            i32::try_from(current - len).map(|d| -d)
        };
        let diff = diff.map_err(|_| err)?;
        self.packet.adjust_tail(diff).map_err(|_| err)
    }
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("len", &self.len())
            .field("headroom", &self.head)
            .finish()
    }
}

impl std::ops::Deref for Frame<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.packet
    }
}

impl std::ops::DerefMut for Frame<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.packet
    }
}

/// A FIFO of frames with an adjustable limit, so a receive takes at most `limit` frames (the
/// `xdp` crate takes as many as the slab says it has room for).
struct FrameList {
    packets: VecDeque<Packet>,
    limit: usize,
}

impl FrameList {
    fn with_capacity(capacity: usize) -> FrameList {
        FrameList {
            packets: VecDeque::with_capacity(capacity),
            limit: capacity,
        }
    }
}

impl Slab for FrameList {
    fn available(&self) -> usize {
        self.limit.saturating_sub(self.packets.len())
    }
    fn len(&self) -> usize {
        self.packets.len()
    }
    fn is_empty(&self) -> bool {
        self.packets.is_empty()
    }
    fn push_front(&mut self, packet: Packet) -> Option<Packet> {
        if self.packets.len() >= self.limit {
            return Some(packet);
        }
        self.packets.push_front(packet);
        None
    }
    fn pop_back(&mut self) -> Option<Packet> {
        self.packets.pop_back()
    }
}

/// What one socket did, counted by its worker (plain integers: never shared while running).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XskCounters {
    pub rx_frames: u64,
    pub rx_bytes: u64,
    pub rx_batches: u64,
    /// Frames put on the TX ring.
    pub tx_frames: u64,
    pub tx_bytes: u64,
    /// Frames the kernel reported sent (completion ring).
    pub tx_completed: u64,
    /// Received frames handed back to the fill ring.
    pub recycled: u64,
    /// Frames the worker asked to transmit with length 0 (recycled instead: the kernel
    /// rejects empty descriptors).
    pub tx_empty: u64,
    /// sendto() calls that kicked the TX ring.
    pub tx_kicks: u64,
    /// Kicks that failed with something other than "try again".
    pub tx_kick_errors: u64,
    /// Kicks left unfinished (the kernel still said "try again"); retried next batch.
    pub tx_kick_deferred: u64,
    /// Syscalls made because the fill ring needed a wakeup.
    pub fill_wakeups: u64,
    /// `send_with` found no free frame.
    pub alloc_failures: u64,
}

/// The kernel's counters for one socket (XDP_STATISTICS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    /// Frames dropped because our RX ring was full (we were too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty (we returned frames too slowly).
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

impl From<XdpStatistics> for KernelStats {
    fn from(s: XdpStatistics) -> KernelStats {
        KernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        }
    }
}

/// An AF_XDP socket bound to one receive queue, with its own UMEM and rings.
///
/// Field order is drop order: the rings and the socket go before the frame lists and the
/// UMEM (the `xdp` crate's rule: the UMEM outlives the socket and every frame).
pub struct XskSocket {
    wakeup: WakeupFlags,
    fill: WakableFillRing,
    rx: RxRing,
    completion: CompletionRing,
    tx: WakableTxRing,
    socket: XdpSocket,
    /// Frames taken from the RX ring, not yet given to the callback.
    rx_list: FrameList,
    /// Frames to send, not yet on the TX ring.
    tx_pending: FrameList,
    umem: Umem,
    /// Frames on the TX ring or in flight (not yet completed).
    tx_in_flight: u32,
    /// Frames submitted since the last kick that finished.
    tx_unkicked: u32,
    ifindex: u32,
    queue: u32,
    mode: BoundMode,
    config: XskConfig,
    counters: XskCounters,
}

// SAFETY: the only fields that are not Send are the `Packet`s in `rx_list` and `tx_pending`:
// raw pointers into `self.umem`'s mapping. That mapping is heap memory whose address does not
// change when the socket moves, it is freed only after the packets (field order), and the
// packets are only dereferenced through `&mut self` (the socket is never shared; a `Frame`
// borrows the socket mutably). Moving the whole socket to another thread therefore moves
// every pointer together with the memory it points into.
unsafe impl Send for XskSocket {}

impl std::fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSocket")
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue)
            .field("mode", &self.mode)
            .field("free_frames", &self.umem.allocatable())
            .field("tx_in_flight", &self.tx_in_flight)
            .finish_non_exhaustive()
    }
}

/// Sockets, rings and flags of one bind attempt.
struct Bound {
    wakeup: WakeupFlags,
    fill: WakableFillRing,
    rx: RxRing,
    completion: CompletionRing,
    tx: WakableTxRing,
    socket: XdpSocket,
}

fn socket_error(step: &'static str) -> impl FnOnce(SocketError) -> XskError {
    move |source| XskError::Socket { step, source }
}

fn bind_once(
    umem: &Umem,
    config: &XskConfig,
    fill_count: u32,
    ifindex: u32,
    queue: u32,
    mode: BoundMode,
) -> Result<Bound, XskError> {
    let mut builder = XdpSocketBuilder::new().map_err(|err| match err {
        SocketError::SocketCreation(source) => XskError::Unavailable(source),
        other => XskError::Socket {
            step: "socket creation",
            source: other,
        },
    })?;
    let rings = RingConfigBuilder {
        rx_count: config.frame_count,
        tx_count: config.frame_count,
        fill_count,
        completion_count: config.frame_count,
    }
    .build()
    .map_err(|err| XskError::Config(err.to_string()))?;
    let (rings, mut flags) = builder
        .build_wakable_rings(umem, rings)
        .map_err(|err| match err {
            SocketError::SetSockOpt {
                inner,
                option: OptName::UmemRegion,
            } => XskError::UmemRegistration {
                mib: config.umem_bytes() >> 20,
                limit: MemlockLimit::current()
                    .map_or_else(|| "unknown".to_owned(), |l| l.to_string()),
                source: inner,
            },
            other => XskError::Socket {
                step: "ring setup",
                source: other,
            },
        })?;
    // The rings can only be mapped before bind (the kernel refuses once bound).
    let wakeup = WakeupFlags::map(builder.as_raw_fd()).map_err(XskError::WakeupFlags)?;
    match mode {
        BoundMode::Copy => flags.force_copy(),
        BoundMode::ZeroCopy => flags.force_zerocopy(),
    }
    let socket = builder
        .bind(xdp::nic::NicIndex(ifindex), queue, flags)
        .map_err(|err| match err {
            SocketError::Bind(source) => XskError::Bind {
                ifindex,
                queue,
                mode,
                source,
            },
            other => XskError::Socket {
                step: "bind",
                source: other,
            },
        })?;
    let missing = |what| XskError::Config(format!("the xdp crate built no {what} ring"));
    Ok(Bound {
        wakeup,
        fill: rings.fill_ring,
        rx: rings.rx_ring.ok_or_else(|| missing("RX"))?,
        completion: rings.completion_ring,
        tx: rings.tx_ring.ok_or_else(|| missing("TX"))?,
        socket,
    })
}

static MEMLOCK: std::sync::Once = std::sync::Once::new();

impl XskSocket {
    /// Opens a socket on `interface`'s receive queue `queue` (see [`XskSocket::open`]).
    pub fn open_by_name(
        interface: &str,
        queue: u32,
        config: XskConfig,
    ) -> Result<XskSocket, XskError> {
        let name = std::ffi::CString::new(interface)
            .map_err(|_| XskError::NoSuchInterface(interface.to_owned()))?;
        let index = xdp::nic::NicIndex::lookup_by_name(&name)
            .ok()
            .flatten()
            .ok_or_else(|| XskError::NoSuchInterface(interface.to_owned()))?;
        XskSocket::open(index.0, queue, config)
    }

    /// Creates the UMEM and rings, fills the fill ring and binds to (`ifindex`, `queue`).
    ///
    /// The first call in a process tries to lift RLIMIT_MEMLOCK (a failure is a warning).
    /// Frames arrive only once the socket is in the XSKMAP at key `queue` and the program is
    /// attached.
    pub fn open(ifindex: u32, queue: u32, config: XskConfig) -> Result<XskSocket, XskError> {
        let (frame_size, fill_count) = config.check()?;
        MEMLOCK.call_once(|| {
            raise_memlock_limit();
        });
        let umem_config = UmemCfgBuilder {
            frame_size,
            head_room: config.headroom,
            frame_count: config.frame_count,
            ..UmemCfgBuilder::default()
        }
        .build()
        .map_err(|err| XskError::Config(err.to_string()))?;
        let umem = Umem::map(umem_config).map_err(|source| XskError::UmemMap {
            bytes: config.umem_bytes(),
            source,
        })?;
        let (bound, mode) = match config.mode {
            BindMode::Copy => (
                bind_once(&umem, &config, fill_count, ifindex, queue, BoundMode::Copy)?,
                BoundMode::Copy,
            ),
            BindMode::ZeroCopy => (
                bind_once(
                    &umem,
                    &config,
                    fill_count,
                    ifindex,
                    queue,
                    BoundMode::ZeroCopy,
                )?,
                BoundMode::ZeroCopy,
            ),
            BindMode::Auto => {
                match bind_once(
                    &umem,
                    &config,
                    fill_count,
                    ifindex,
                    queue,
                    BoundMode::ZeroCopy,
                ) {
                    Ok(bound) => (bound, BoundMode::ZeroCopy),
                    Err(XskError::Bind { source, .. }) => {
                        tracing::info!(
                            "AF_XDP ifindex {ifindex} queue {queue}: zero-copy unavailable \
                             ({source}), using copy mode"
                        );
                        let bound =
                            bind_once(&umem, &config, fill_count, ifindex, queue, BoundMode::Copy)?;
                        (bound, BoundMode::Copy)
                    }
                    Err(other) => return Err(other),
                }
            }
        };
        let mut socket = XskSocket {
            wakeup: bound.wakeup,
            fill: bound.fill,
            rx: bound.rx,
            completion: bound.completion,
            tx: bound.tx,
            socket: bound.socket,
            rx_list: FrameList::with_capacity(config.max_batch),
            tx_pending: FrameList::with_capacity(config.frame_count as usize),
            umem,
            tx_in_flight: 0,
            tx_unkicked: 0,
            ifindex,
            queue,
            mode,
            config,
            counters: XskCounters::default(),
        };
        socket.refill();
        Ok(socket)
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The receive queue this socket is bound to (its XSKMAP key).
    pub fn queue(&self) -> u32 {
        self.queue
    }

    pub fn mode(&self) -> BoundMode {
        self.mode
    }

    pub fn config(&self) -> &XskConfig {
        &self.config
    }

    pub fn counters(&self) -> XskCounters {
        self.counters
    }

    /// Frames in the UMEM's free list (neither in a ring nor in flight).
    pub fn free_frames(&self) -> usize {
        self.umem.allocatable()
    }

    /// Frames sent to the kernel and not yet completed, plus those waiting to be.
    pub fn tx_outstanding(&self) -> usize {
        self.tx_in_flight as usize + self.tx_pending.len()
    }

    /// The kernel's drop counters for this socket.
    pub fn kernel_stats(&self) -> Result<KernelStats, XskError> {
        self.socket
            .statistics()
            .map(KernelStats::from)
            .map_err(socket_error("XDP_STATISTICS"))
    }

    /// Waits until frames are ready to receive or `timeout` passes (`None`: forever).
    /// Returns whether the socket is readable.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, XskError> {
        let timeout = timeout.map(|t| t.min(Duration::from_secs(3600)));
        self.socket
            .poll_read(PollTimeout::new(timeout))
            .map_err(XskError::Poll)
    }

    /// Moves completed TX frames back to the free list; returns how many.
    pub fn reap_completions(&mut self) -> usize {
        let done = self
            .completion
            .dequeue(&mut self.umem, self.config.frame_count as usize);
        let done32 = u32::try_from(done).unwrap_or(u32::MAX);
        self.tx_in_flight = self.tx_in_flight.saturating_sub(done32);
        self.counters.tx_completed += done as u64;
        done
    }

    /// Gives every free frame but the TX reserve to the fill ring, waking the kernel if it
    /// asked to be woken.
    pub fn refill(&mut self) {
        let reserve = self.config.tx_reserve as usize;
        let n = self.umem.allocatable().saturating_sub(reserve);
        if n > 0 {
            // SAFETY: the UMEM outlives the socket and every ring (field order of XskSocket,
            // and the UMEM is never moved out of it). The fill ring holds twice the frame
            // count, so the crate's all-or-nothing reserve always succeeds.
            let queued = unsafe { self.fill.enqueue(&mut self.umem, n, false) };
            debug_assert!(queued.is_ok());
        }
        if self.wakeup.fill() {
            self.counters.fill_wakeups += 1;
            // SAFETY: recvfrom with a null, zero-length buffer and no address reads and writes
            // no memory; it only tells the kernel to look at the fill ring. A bad descriptor
            // would just return an error.
            unsafe {
                libc::recvfrom(
                    self.socket.as_raw_fd(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                );
            }
        }
    }

    /// Puts pending frames on the TX ring and kicks the kernel (always in copy mode, where
    /// only a syscall sends; in zero-copy mode when the ring asks for a wakeup).
    pub fn flush(&mut self) {
        let pending = self.tx_pending.len();
        if pending > 0 {
            // SAFETY: as in `refill`, the UMEM outlives the socket; every pending packet came
            // from this socket's UMEM (rx_batch or send_with) and is non-empty. The TX ring holds
            // `frame_count` entries, so the all-or-nothing reserve always succeeds.
            let sent = unsafe { self.tx.send(&mut self.tx_pending, false) }.unwrap_or(0);
            let sent32 = u32::try_from(sent).unwrap_or(u32::MAX);
            self.tx_in_flight = self.tx_in_flight.saturating_add(sent32);
            self.tx_unkicked = self.tx_unkicked.saturating_add(sent32);
            self.counters.tx_frames += sent as u64;
        }
        let wanted = match self.mode {
            BoundMode::Copy => self.tx_unkicked > 0,
            BoundMode::ZeroCopy => self.tx_in_flight > 0 && self.wakeup.tx(),
        };
        if wanted {
            self.kick_tx();
        }
    }

    /// sendto(fd, NULL, 0, MSG_DONTWAIT): in copy mode the kernel sends up to a batch (32 on
    /// current kernels) per call and answers EAGAIN while more remain.
    fn kick_tx(&mut self) {
        // Enough calls for every frame at 16 per call; more are retried next batch.
        let budget = self.config.frame_count / 16 + 2;
        for _ in 0..budget {
            self.counters.tx_kicks += 1;
            // SAFETY: sendto with a null, zero-length buffer and no address reads no memory;
            // it only makes the kernel process the TX ring. A bad descriptor returns an error.
            let rc = unsafe {
                libc::sendto(
                    self.socket.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if rc >= 0 {
                self.tx_unkicked = 0;
                return;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::EINTR) => {
                    self.reap_completions();
                }
                _ => {
                    self.counters.tx_kick_errors += 1;
                    return;
                }
            }
        }
        self.counters.tx_kick_deferred += 1;
    }

    /// One turn of the worker loop: reap completions, receive up to `max` frames (at most
    /// `max_batch`), give each to `process` and do what it says, refill the fill ring, send.
    /// Returns how many frames were received.
    pub fn rx_batch<F>(&mut self, max: usize, mut process: F) -> usize
    where
        F: FnMut(&mut Frame<'_>) -> FrameAction,
    {
        self.reap_completions();
        self.rx_list.limit = max.min(self.config.max_batch);
        // SAFETY: received packets point into `self.umem`, which outlives them: they stay in
        // `rx_list` until handed to the free list or `tx_pending` below, all owned by `self`.
        let received = unsafe { self.rx.recv(&self.umem, &mut self.rx_list) };
        if received > 0 {
            self.counters.rx_batches += 1;
        }
        let headroom = self.config.headroom as usize;
        while let Some(mut packet) = self.rx_list.pop_back() {
            self.counters.rx_frames += 1;
            self.counters.rx_bytes += packet.len() as u64;
            let action = process(&mut Frame::new(&mut packet, headroom));
            self.dispose(packet, action);
        }
        self.refill();
        self.flush();
        received
    }

    fn dispose(&mut self, packet: Packet, action: FrameAction) {
        match action {
            FrameAction::Transmit if !packet.is_empty() => {
                self.counters.tx_bytes += packet.len() as u64;
                // Cannot be refused: tx_pending's limit is the frame count.
                if let Some(packet) = self.tx_pending.push_front(packet) {
                    self.umem.free_packet(packet);
                }
            }
            FrameAction::Transmit => {
                self.counters.tx_empty += 1;
                self.umem.free_packet(packet);
            }
            FrameAction::Recycle => {
                self.counters.recycled += 1;
                self.umem.free_packet(packet);
            }
        }
    }

    /// Builds a frame of `len` bytes in a free UMEM frame (its old contents: `build` writes
    /// every byte it sends) and queues it for the next [`XskSocket::flush`] or `rx_batch`,
    /// unless `build` answers [`FrameAction::Recycle`].
    pub fn send_with<F>(&mut self, len: usize, build: F) -> Result<(), FrameError>
    where
        F: FnOnce(&mut Frame<'_>) -> FrameAction,
    {
        if self.umem.allocatable() == 0 {
            self.reap_completions();
        }
        // SAFETY: the packet points into `self.umem` and stays owned by `self` (tx_pending or
        // the free list) until its completion returns it: it cannot outlive the UMEM.
        let Some(mut packet) = (unsafe { self.umem.alloc() }) else {
            self.counters.alloc_failures += 1;
            return Err(FrameError::NoFreeFrame);
        };
        let headroom = self.config.headroom as usize;
        let mut frame = Frame::new(&mut packet, headroom);
        if let Err(err) = frame.set_len(len) {
            self.umem.free_packet(packet);
            return Err(err);
        }
        let action = build(&mut frame);
        self.dispose(packet, action);
        Ok(())
    }
}

impl AsFd for XskSocket {
    /// The socket's descriptor, for the XSKMAP ([`crate::steering::Steering::set_socket`]).
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the descriptor is owned by `self.socket` (an OwnedFd inside XdpSocket) and
        // stays open for as long as `self`, which the returned borrow cannot outlive.
        unsafe { BorrowedFd::borrow_raw(self.socket.as_raw_fd()) }
    }
}
