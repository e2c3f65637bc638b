//! xpptp-datapath: the data path daemon's library.
//!
//! * [`steering`]: the XDP program that steers established calls' GRE and their clients'
//!   downstream IPv4 into AF_XDP sockets, and passes everything else to the kernel.
//! * [`packet`]: the per-packet fast path, upstream (`decap`) and downstream (`encap`), as
//!   pure functions over caller-owned buffers.
//!
//! The AF_XDP workers, the call table and the command interface (issue 4) come next.

pub mod packet;
pub mod steering;
