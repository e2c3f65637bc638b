//! The datapath's I/O backends: how GRE and inner packets enter and leave the process.
//!
//! * `xdp` ([`crate::worker`]): the XDP program steers established calls into AF_XDP sockets;
//!   the fast path never goes through the kernel's stack. Needs a NIC driver with XDP and
//!   CAP_BPF / CAP_NET_ADMIN / CAP_NET_RAW.
//! * `socket` ([`socket::SocketBackend`]): a raw IPv4 socket for GRE and a TUN device for the
//!   inside. Runs wherever raw sockets and TUN do (containers without BPF, kernels or NICs
//!   without XDP), and is the baseline the XDP path is benchmarked against.
//!
//! Both run the same per-packet functions ([`crate::packet::decap_parsed`],
//! [`crate::packet::encap`]) over the same [`CallTable`](crate::calls::CallTable) of
//! [`WorkerCall`](crate::worker::WorkerCall)s and count into the same
//! [`WorkerStats`](crate::worker::WorkerStats), so the daemon picks one with
//! `--backend xdp|socket` ([`BackendKind`]) and nothing else changes.

pub mod socket;

use std::fmt;

/// Which backend the daemon runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, clap::ValueEnum)]
pub enum BackendKind {
    /// XDP steering and AF_XDP workers (the fast path).
    #[default]
    Xdp,
    /// Raw GRE socket and TUN device (no XDP needed).
    Socket,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::Xdp => "xdp",
            BackendKind::Socket => "socket",
        })
    }
}

/// What to tell the operator when the XDP backend cannot start (no XDP in the driver or
/// kernel, no CAP_BPF): the fallback, to append to the error naming what is missing.
pub const XDP_FALLBACK_HINT: &str = "without XDP, start the datapath with `--backend socket` \
     (raw GRE socket and TUN device: slower, needs only CAP_NET_ADMIN and CAP_NET_RAW)";
