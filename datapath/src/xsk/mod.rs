//! AF_XDP sockets: one UMEM and one socket per NIC receive queue, driven by one worker.
//!
//! Built on the `xdp` crate (pure Rust; UMEM, the four rings, bind). This module is the only
//! place in the datapath with `unsafe`: the crate leaves the lifetime of frames (pointers into
//! the UMEM) to its caller, and the need-wakeup flags, the TX kick and the memlock limit are
//! raw syscalls. Everything above it sees [`XskSocket`], [`Frame`] and plain byte slices.
//!
//! The loop a worker runs (the shape of xdp-tools' xdpsock and of xdpilone):
//!
//! ```text
//! loop {
//!     socket.wait(timeout)?;            // poll(); skip when busy
//!     socket.rx_batch(64, |frame| ...); // reap completions, receive a batch, process each
//!                                       // frame in place, refill the fill ring, submit the
//!                                       // frames to send, kick TX
//! }
//! ```
//!
//! Frame ownership (which ring or list a UMEM frame is in) is the invariant everything here
//! relies on; see [`socket`]. Each frame is in exactly one of: the UMEM's free list, the fill
//! ring, the RX ring, the worker's hands (inside [`XskSocket::rx_batch`]'s callback), the
//! pending-TX list, the TX ring, the completion ring. Every ring is at least as large as the
//! number of frames, so no producer step can ever find its ring full.
//!
//! Setup order (shared/notes/environment.md): load the XDP program, open the sockets,
//! insert each into the XSKMAP at its queue index
//! ([`crate::steering::Steering::set_socket`]), then attach.

mod memlock;
mod socket;
mod wakeup;

pub use memlock::{MemlockLimit, raise_memlock_limit};
pub use socket::{
    BindMode, BoundMode, Frame, FrameAction, FrameError, KernelStats, XskConfig, XskCounters,
    XskError, XskSocket,
};
