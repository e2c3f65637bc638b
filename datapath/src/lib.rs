//! xpptp-datapath: the data path daemon's library.
//!
//! * [`calls`]: the call table (by call ID and by client tunnel address, lock-free reads)
//!   and the hand-off of packets to a call's owning worker.
//! * [`steering`]: the XDP program that steers established calls' GRE and their clients'
//!   downstream IPv4 into AF_XDP sockets, and passes everything else to the kernel.
//! * [`xsk`]: the AF_XDP sockets (one UMEM and socket per receive queue) the workers drive.
//! * [`packet`]: the per-packet fast path, upstream (`decap`) and downstream (`encap`), as
//!   pure functions over caller-owned buffers.
//!
//! * [`worker`]: one thread per queue driving its AF_XDP socket through the fast path.
//!
//! The command socket (issue 4) comes next.

pub mod calls;
pub mod packet;
// owner: the workers' punt queue and the control plane's outgoing PPP frames.
pub mod punt;
pub mod steering;
pub mod worker;
pub mod xsk;
