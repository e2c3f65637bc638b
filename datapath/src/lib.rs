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
//! * [`tun`] (sockbe): the TUN device through which the kernel gets the packets the fast
//!   path does not route, and gives back its packets for clients.
//! * [`backend`] (sockbe): the choice of I/O backend, and the socket backend (raw GRE socket
//!   and TUN) for hosts without XDP.
//!
//! The command socket (issue 4) comes next.

pub mod calls;
pub mod packet;
pub mod steering;
pub mod worker;
pub mod xsk;
// sockbe: TUN device and socket backend.
pub mod backend;
pub mod tun;
