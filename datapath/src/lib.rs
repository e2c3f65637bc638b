//! xpptp-datapath: the data path daemon's library.
//!
//! * [`steering`]: the XDP program that steers established calls' GRE and their clients'
//!   downstream IPv4 into AF_XDP sockets, and passes everything else to the kernel.
//! * [`xsk`]: the AF_XDP sockets (one UMEM and socket per receive queue) the workers drive.
//!
//! The AF_XDP workers, the call table and the command interface (issue 4) come next.

pub mod steering;
pub mod xsk;
