//! xpptp-datapath: the data path daemon's library.
//!
//! * [`calls`]: the call table (by call ID and by client tunnel address, lock-free reads)
//!   and the hand-off of packets to a call's owning worker.
//! * [`steering`]: the XDP program that steers established calls' GRE and their clients'
//!   downstream IPv4 into AF_XDP sockets, and passes everything else to the kernel.
//! * [`xsk`]: the AF_XDP sockets (one UMEM and socket per receive queue) the workers drive.
//! * [`packet`]: the per-packet fast path, upstream (`decap`) and downstream (`encap`), as
//!   pure functions over caller-owned buffers.
//! * [`worker`]: one thread per queue driving its AF_XDP socket through the fast path.
//! * [`punt`]: PPP control frames from the workers to the control plane, and its frames
//!   to the workers.
//! * [`route`]: next hops for forwarded packets, from the kernel's route and neighbour
//!   tables (rtnetlink), read by the workers without locks.
//! * [`tun`]: the TUN device through which the kernel gets the packets the fast path does
//!   not route, and gives back its packets for clients.
//! * [`backend`]: the choice of I/O backend, and the socket backend (raw GRE socket and
//!   TUN) for hosts without XDP.
//! * [`command`]: the command socket (a Unix socket of `xpptp_proto::command` frames) in
//!   front of a [`command::Fastpath`]; [`daemon`]: the [`daemon::Datapath`] that assembles
//!   steering, sockets, call table and workers and is that fast path.

pub mod backend;
pub mod calls;
pub mod command;
pub mod daemon;
pub mod packet;
pub mod route;
// owner: the workers' punt queue and the control plane's outgoing PPP frames.
pub mod punt;
pub mod steering;
pub mod tun;
pub mod worker;
pub mod xsk;
