//! Per-worker counters: plain integers while a batch runs, published once per batch into a
//! cache-padded block of atomics that any thread may read.
//!
//! Ownership: one worker writes its own [`SharedCounters`] (relaxed stores of values it
//! alone computes), readers load them (relaxed). No read-modify-write on the shared line, and
//! each worker's block sits on its own cache lines ([`CachePadded`]), so readers and other
//! workers never make the writer's line bounce while a batch runs.

use core::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::packet::DropReason;
use crate::xsk::{KernelStats, XskSocket};

/// Batch-size histogram buckets: 0, 1, 2-3, 4-7, 8-15, 16-31, 32-63, 64+.
pub const BATCH_BUCKETS: usize = 8;

/// Named counts besides the drops: frames a worker did not forward itself (frames of no call,
/// frames handed to the control plane, to another worker or to the kernel, frames lost
/// because a queue or the UMEM was full: none is an error of the packet), and the outcome of
/// next-hop lookups that were not a plain resolved hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Other {
    /// GRE whose call ID is in no call of the table (removed meanwhile, or XDP map stale).
    UnknownCall,
    /// IPv4 whose destination is no client's tunnel address (the XDP map is stale).
    UnknownClient,
    /// Not IPv4 over Ethernet with at most two VLAN tags.
    NotSteerable,
    /// Upstream packets for the concentrator itself (its tunnel address, or a route of the
    /// `local` table): written into the TUN for the kernel.
    Local,
    /// PPP frames for the control plane (punted: `crate::punt`).
    ToControl,
    /// GRE acknowledgments without payload (recorded, nothing to send).
    PureAck,
    /// Stateful MPPE lost packets: punted, the control plane sends a CCP Reset-Request.
    ResetRequest,
    /// The frame could not be resized for sending (a bug; counted rather than panicking).
    FrameResize,
    /// Copied to the call's owning worker's inbox, which processes it (not a drop).
    HandedOff,
    /// The owning worker's inbox was full: dropped.
    HandOffFull,
    /// A handed frame or an outgoing PPP frame reached a worker that does not own its call
    /// (the call was established for another number of workers): dropped.
    NotOwner,
    /// The control plane's punt queue was full: the PPP frame or Reset-Request is lost.
    PuntFull,
    /// No free UMEM frame to build a frame in (handed frame, PPP frame, pure ack): dropped.
    TxRingFull,
    /// Upstream packets whose next hop has no MAC yet: resolution asked of the kernel, the
    /// packet written into the TUN (the kernel forwards it and resolves the neighbour).
    NextHopUnresolved,
    /// Frames sent (either direction) through a neighbour entry the kernel holds as stale
    /// (used, and its confirmation asked of the kernel).
    NextHopStale,
    /// Upstream packets with no route out of the interfaces we may use (or a reject route):
    /// written into the TUN, the kernel routes them or answers ICMP unreachable.
    NoRoute,
    /// Packets for the kernel that could not be written into the TUN (no TUN configured, or
    /// its queue full): dropped.
    TunDropped,
    /// Downstream GRE whose client (peer) next hop is not resolved here: sent through the
    /// kernel (raw IPv4 socket), which routes it and resolves the neighbour.
    PeerViaKernel,
    /// Downstream GRE that neither a next hop nor the kernel's raw socket could take
    /// (no raw socket, peer address local, send refused): dropped.
    PeerUnreachable,
    /// Packets the kernel sent into the TUN for a client, encapsulated by this worker.
    FromTun,
}

impl Other {
    pub const COUNT: usize = Other::FromTun as usize + 1;
    pub const ALL: [Other; Other::COUNT] = [
        Other::UnknownCall,
        Other::UnknownClient,
        Other::NotSteerable,
        Other::Local,
        Other::ToControl,
        Other::PureAck,
        Other::ResetRequest,
        Other::FrameResize,
        Other::HandedOff,
        Other::HandOffFull,
        Other::NotOwner,
        Other::PuntFull,
        Other::TxRingFull,
        Other::NextHopUnresolved,
        Other::NextHopStale,
        Other::NoRoute,
        Other::TunDropped,
        Other::PeerViaKernel,
        Other::PeerUnreachable,
        Other::FromTun,
    ];

    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            Other::UnknownCall => "unknown_call",
            Other::UnknownClient => "unknown_client",
            Other::NotSteerable => "not_steerable",
            Other::Local => "local",
            Other::ToControl => "to_control",
            Other::PureAck => "pure_ack",
            Other::ResetRequest => "reset_request",
            Other::FrameResize => "frame_resize",
            Other::HandedOff => "handed_off",
            Other::HandOffFull => "hand_off_full",
            Other::NotOwner => "not_owner",
            Other::PuntFull => "punt_full",
            Other::TxRingFull => "tx_ring_full",
            Other::NextHopUnresolved => "next_hop_unresolved",
            Other::NextHopStale => "next_hop_stale",
            Other::NoRoute => "no_route",
            Other::TunDropped => "tun_dropped",
            Other::PeerViaKernel => "peer_via_kernel",
            Other::PeerUnreachable => "peer_unreachable",
            Other::FromTun => "from_tun",
        }
    }
}

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketsBytes {
    pub packets: u64,
    pub bytes: u64,
}

impl PacketsBytes {
    #[inline]
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }
}

/// One worker's counters (or the sum of several: [`WorkerStats::merge`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Upstream frames received (whole Ethernet frames) for a known call.
    pub up_rx: PacketsBytes,
    /// Upstream inner packets forwarded (with their new link-layer header).
    pub up_tx: PacketsBytes,
    /// Downstream frames received (whole Ethernet frames) for a known client.
    pub down_rx: PacketsBytes,
    /// Downstream frames sent to clients (whole encapsulated frames), client-to-client
    /// ones included.
    pub down_tx: PacketsBytes,
    /// Upstream packets sent to another call's client (client-to-client), whole frames.
    pub c2c_tx: PacketsBytes,
    /// Pure GRE acknowledgments sent (ack timer), whole frames.
    pub ack_tx: PacketsBytes,
    /// PPP frames of the control plane sent on calls, whole frames.
    pub control_tx: PacketsBytes,
    /// Drops by [`DropReason::index`].
    pub drops: [u64; DropReason::COUNT],
    /// Frames not processed, by [`Other::index`].
    pub other: [u64; Other::COUNT],
    /// Non-empty batches and the frames in them.
    pub batches: u64,
    pub batch_frames: u64,
    /// Batch sizes, [`BATCH_BUCKETS`] power-of-two buckets (index 0: empty turns).
    pub batch_sizes: [u64; BATCH_BUCKETS],
}

impl WorkerStats {
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        if let Some(c) = self.drops.get_mut(reason.index()) {
            *c += 1;
        }
    }

    #[inline]
    pub fn other(&mut self, what: Other) {
        if let Some(c) = self.other.get_mut(what.index()) {
            *c += 1;
        }
    }

    /// Records one turn of the loop that received `n` frames.
    #[inline]
    pub fn batch(&mut self, n: usize) {
        if n > 0 {
            self.batches += 1;
            self.batch_frames += n as u64;
        }
        let bucket = match n {
            0 => 0,
            n => (usize::BITS - n.leading_zeros()) as usize,
        };
        if let Some(c) = self.batch_sizes.get_mut(bucket.min(BATCH_BUCKETS - 1)) {
            *c += 1;
        }
    }

    /// Every drop, any reason.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Adds `other` into `self` (summing workers).
    pub fn merge(&mut self, o: &WorkerStats) {
        for (a, b) in [
            (&mut self.up_rx, &o.up_rx),
            (&mut self.up_tx, &o.up_tx),
            (&mut self.down_rx, &o.down_rx),
            (&mut self.down_tx, &o.down_tx),
            (&mut self.c2c_tx, &o.c2c_tx),
            (&mut self.ack_tx, &o.ack_tx),
            (&mut self.control_tx, &o.control_tx),
        ] {
            a.packets += b.packets;
            a.bytes += b.bytes;
        }
        for (a, b) in self.drops.iter_mut().zip(o.drops.iter()) {
            *a += b;
        }
        for (a, b) in self.other.iter_mut().zip(o.other.iter()) {
            *a += b;
        }
        self.batches += o.batches;
        self.batch_frames += o.batch_frames;
        for (a, b) in self.batch_sizes.iter_mut().zip(o.batch_sizes.iter()) {
            *a += b;
        }
    }
}

/// Where one AF_XDP socket's UMEM frames are (see `xpptp_proto::command::RingStats`), and
/// the kernel's counters for it when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingSnapshot {
    pub ifindex: u32,
    pub frames: u32,
    pub free: u32,
    pub receive: u32,
    pub transmit: u32,
    pub kernel: Option<KernelStats>,
}

impl RingSnapshot {
    /// `socket`'s occupancy now, with the kernel counters last read (`kernel`).
    pub fn of(socket: &XskSocket, kernel: Option<KernelStats>) -> RingSnapshot {
        let frames = socket.config().frame_count;
        let free = u32::try_from(socket.free_frames()).unwrap_or(u32::MAX);
        let transmit = u32::try_from(socket.tx_outstanding()).unwrap_or(u32::MAX);
        RingSnapshot {
            ifindex: socket.ifindex(),
            frames,
            free,
            // What is neither free nor sending is lent to the kernel for receiving (the
            // worker holds no received frame between turns).
            receive: frames.saturating_sub(free).saturating_sub(transmit),
            transmit,
            kernel,
        }
    }
}

/// Words of one published [`RingSnapshot`]: a "present" flag, five figures, a "kernel
/// counters read" flag and the six kernel counters.
const RING_WORDS: usize = 13;

/// Sockets per worker: the outside one and, two-armed, the inside one.
const MAX_ARMS: usize = 2;

const SCALARS: usize = 16;
const WORDS: usize = SCALARS + DropReason::COUNT + Other::COUNT + BATCH_BUCKETS;

/// A worker's published counters: one writer (the worker, once per batch), any readers.
#[derive(Debug)]
pub struct SharedCounters {
    words: CachePadded<[AtomicU64; WORDS]>,
    rings: CachePadded<[[AtomicU64; RING_WORDS]; MAX_ARMS]>,
}

impl Default for SharedCounters {
    fn default() -> Self {
        SharedCounters {
            words: CachePadded::new(core::array::from_fn(|_| AtomicU64::new(0))),
            rings: CachePadded::new(core::array::from_fn(|_| {
                core::array::from_fn(|_| AtomicU64::new(0))
            })),
        }
    }
}

impl SharedCounters {
    fn flatten(s: &WorkerStats) -> [u64; WORDS] {
        let mut out = [0u64; WORDS];
        let scalars = [
            s.up_rx.packets,
            s.up_rx.bytes,
            s.up_tx.packets,
            s.up_tx.bytes,
            s.down_rx.packets,
            s.down_rx.bytes,
            s.down_tx.packets,
            s.down_tx.bytes,
            s.c2c_tx.packets,
            s.c2c_tx.bytes,
            s.ack_tx.packets,
            s.ack_tx.bytes,
            s.control_tx.packets,
            s.control_tx.bytes,
            s.batches,
            s.batch_frames,
        ];
        let all = scalars
            .iter()
            .chain(s.drops.iter())
            .chain(s.other.iter())
            .chain(s.batch_sizes.iter());
        for (o, v) in out.iter_mut().zip(all) {
            *o = *v;
        }
        out
    }

    /// The worker publishes its running totals (only the owning worker calls this).
    pub fn publish(&self, stats: &WorkerStats) {
        for (word, value) in self.words.iter().zip(Self::flatten(stats)) {
            word.store(value, Ordering::Relaxed);
        }
    }

    /// The worker publishes its sockets' occupancy (outside first; only the owning worker
    /// calls this).
    pub fn publish_rings(&self, arms: &[RingSnapshot]) {
        for (n, words) in self.rings.iter().enumerate() {
            let flat = match arms.get(n) {
                Some(r) => {
                    let k = r.kernel.unwrap_or_default();
                    [
                        1,
                        u64::from(r.ifindex),
                        u64::from(r.frames),
                        u64::from(r.free),
                        u64::from(r.receive),
                        u64::from(r.transmit),
                        u64::from(r.kernel.is_some()),
                        k.rx_dropped,
                        k.rx_invalid_descs,
                        k.tx_invalid_descs,
                        k.rx_ring_full,
                        k.rx_fill_ring_empty_descs,
                        k.tx_ring_empty_descs,
                    ]
                }
                None => [0; RING_WORDS],
            };
            for (word, value) in words.iter().zip(flat) {
                word.store(value, Ordering::Relaxed);
            }
        }
    }

    /// The occupancy last published, one per socket.
    pub fn rings(&self) -> Vec<RingSnapshot> {
        self.rings
            .iter()
            .filter_map(|words| {
                let w: [u64; RING_WORDS] =
                    core::array::from_fn(|i| words.get(i).map_or(0, |a| a.load(Ordering::Relaxed)));
                let [
                    present,
                    ifindex,
                    frames,
                    free,
                    receive,
                    transmit,
                    read,
                    rx_dropped,
                    rx_invalid_descs,
                    tx_invalid_descs,
                    rx_ring_full,
                    rx_fill_ring_empty_descs,
                    tx_ring_empty_descs,
                ] = w;
                let narrow = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
                (present == 1).then(|| RingSnapshot {
                    ifindex: narrow(ifindex),
                    frames: narrow(frames),
                    free: narrow(free),
                    receive: narrow(receive),
                    transmit: narrow(transmit),
                    kernel: (read == 1).then_some(KernelStats {
                        rx_dropped,
                        rx_invalid_descs,
                        tx_invalid_descs,
                        rx_ring_full,
                        rx_fill_ring_empty_descs,
                        tx_ring_empty_descs,
                    }),
                })
            })
            .collect()
    }

    /// The last published totals. Each word is consistent on its own; the set is not one
    /// instant (fine for counters).
    pub fn snapshot(&self) -> WorkerStats {
        let w: [u64; WORDS] =
            core::array::from_fn(|i| self.words.get(i).map_or(0, |a| a.load(Ordering::Relaxed)));
        let at = |i: usize| w.get(i).copied().unwrap_or(0);
        let pb = |i: usize| PacketsBytes {
            packets: at(i),
            bytes: at(i + 1),
        };
        WorkerStats {
            up_rx: pb(0),
            up_tx: pb(2),
            down_rx: pb(4),
            down_tx: pb(6),
            c2c_tx: pb(8),
            ack_tx: pb(10),
            control_tx: pb(12),
            batches: at(14),
            batch_frames: at(15),
            drops: core::array::from_fn(|i| at(SCALARS + i)),
            other: core::array::from_fn(|i| at(SCALARS + DropReason::COUNT + i)),
            batch_sizes: core::array::from_fn(|i| {
                at(SCALARS + DropReason::COUNT + Other::COUNT + i)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_snapshot_roundtrip_and_merge() {
        let mut s = WorkerStats::default();
        s.up_rx.add(100);
        s.down_tx.add(70);
        s.control_tx.add(40);
        s.other(Other::TxRingFull);
        s.drop(DropReason::Spoofed);
        s.other(Other::PureAck);
        s.batch(0);
        s.batch(1);
        s.batch(3);
        s.batch(64);
        let shared = SharedCounters::default();
        shared.publish(&s);
        let snap = shared.snapshot();
        assert_eq!(snap, s);
        assert_eq!(snap.batch_sizes, [1, 1, 1, 0, 0, 0, 0, 1]);
        let mut sum = WorkerStats::default();
        sum.merge(&snap);
        sum.merge(&snap);
        assert_eq!(sum.up_rx.bytes, 200);
        assert_eq!(sum.dropped(), 2);
    }

    #[test]
    fn rings_publish_and_read_back() {
        let shared = SharedCounters::default();
        assert!(shared.rings().is_empty(), "nothing published yet");
        let outside = RingSnapshot {
            ifindex: 3,
            frames: 4096,
            free: 6,
            receive: 4000,
            transmit: 90,
            kernel: None,
        };
        let inside = RingSnapshot {
            ifindex: 4,
            kernel: Some(KernelStats {
                rx_ring_full: 7,
                tx_ring_empty_descs: 1,
                ..KernelStats::default()
            }),
            ..outside
        };
        shared.publish_rings(&[outside, inside]);
        assert_eq!(shared.rings(), vec![outside, inside]);
        shared.publish_rings(&[outside]);
        assert_eq!(shared.rings(), vec![outside]);
    }
}
