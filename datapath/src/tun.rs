//! The TUN device: how packets the fast path does not route itself reach the kernel, and how
//! the kernel's packets for clients come back.
//!
//! * Upstream packets for the concentrator's own tunnel address (`DecapVerdict::Local`), and
//!   in the socket backend every decapsulated packet, are written into the TUN: the kernel
//!   receives them as if they had arrived on `xpptp0` and delivers or routes them.
//! * The client pool is routed through the TUN ([`TunConfig::routes`]), so whatever the
//!   kernel sends or forwards to a client is read back from it and encapsulated downstream.
//!
//! The device is `IFF_TUN | IFF_NO_PI` (bare IPv4 packets, no packet-information prefix) and
//! multi-queue (`IFF_MULTI_QUEUE`): one file descriptor per queue, one queue per worker. The
//! kernel spreads the packets it sends into the device over the queues by flow hash; a write
//! on any queue is a packet received by the kernel. Every queue is non-blocking: wait with
//! [`TunQueue::wait_readable`], then read until [`io::ErrorKind::WouldBlock`].
//!
//! Address, MTU and link state are set by the tun-rs crate (ioctls on the device). Routes are
//! added with iproute2 (`ip route replace PREFIX dev NAME`): it runs once at start-up, and
//! avoids carrying a netlink stack for one message; iproute2 is already a requirement of the
//! deployment (and of the tests). The routes go away with the device.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};
use std::process::Command;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use tun_rs::{DeviceBuilder, SyncDevice};

/// Name of the device unless configured otherwise.
pub const DEFAULT_NAME: &str = "xpptp0";

/// Linux limits interface names to 15 bytes (IFNAMSIZ - 1).
const IFNAMSIZ_MAX: usize = 15;

/// An IPv4 prefix, such as the client pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl Ipv4Prefix {
    /// `addr/len`; `None` when `len` is above 32.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Ipv4Prefix> {
        (len <= 32).then_some(Ipv4Prefix { addr, len })
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// How to set the device up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes). Default [`DEFAULT_NAME`].
    pub name: String,
    /// The concentrator's own tunnel address and its prefix length on the device.
    pub address: Ipv4Prefix,
    /// The device's MTU: the largest inner packet (the calls' MTU, 1400 at most in practice).
    pub mtu: u16,
    /// Prefixes routed into the device (the client pool).
    pub routes: Vec<Ipv4Prefix>,
    /// Queues (file descriptors) to open: one per worker. At least one.
    pub queues: usize,
}

impl TunConfig {
    /// `xpptp0` with `address`, MTU 1400, one queue, no routes.
    pub fn new(address: Ipv4Prefix) -> TunConfig {
        TunConfig {
            name: DEFAULT_NAME.to_owned(),
            address,
            mtu: 1400,
            routes: Vec::new(),
            queues: 1,
        }
    }
}

/// Why the device could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum TunError {
    #[error(
        "/dev/net/tun does not exist: load the tun module (`modprobe tun`) or create the node \
         (`mknod /dev/net/tun c 10 200`)"
    )]
    NoTunDevice(#[source] io::Error),
    #[error(
        "creating TUN device {name} needs CAP_NET_ADMIN: run as root or grant the capability \
         (`setcap cap_net_admin,cap_net_raw+ep` on the binary)"
    )]
    Permission {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("TUN device name {0:?} is empty or longer than 15 bytes")]
    BadName(String),
    #[error("a TUN device needs at least one queue")]
    NoQueue,
    #[error("cannot create TUN device {name}: {source}")]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot open queue {queue} of TUN device {name} (multi-queue): {source}")]
    Queue {
        name: String,
        queue: usize,
        #[source]
        source: io::Error,
    },
    #[error("cannot run `ip` to add route {prefix} via {name} (is iproute2 installed?): {source}")]
    IpCommand {
        name: String,
        prefix: Ipv4Prefix,
        #[source]
        source: io::Error,
    },
    #[error("`ip route replace {prefix} dev {name}` failed: {stderr}")]
    Route {
        name: String,
        prefix: Ipv4Prefix,
        stderr: String,
    },
    #[error("TUN device {name}: {source}")]
    Io {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// One queue of the device: read the packets the kernel sends into it, write packets for the
/// kernel. `Sync`: one thread reads, any thread may write.
pub struct TunQueue {
    device: SyncDevice,
    index: usize,
}

impl fmt::Debug for TunQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunQueue")
            .field("index", &self.index)
            .field("fd", &self.device.as_raw_fd())
            .finish()
    }
}

impl TunQueue {
    /// This queue's index (0-based, in opening order).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Reads one IPv4 packet into `buf`; [`io::ErrorKind::WouldBlock`] when none is waiting.
    /// A packet longer than `buf` is truncated to it (size buffers for the MTU).
    #[inline]
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.device.recv(buf)
    }

    /// Hands one IPv4 packet to the kernel; [`io::ErrorKind::WouldBlock`] when the device's
    /// queue is full (the packet is then dropped by the caller).
    #[inline]
    pub fn send(&self, packet: &[u8]) -> io::Result<usize> {
        self.device.send(packet)
    }

    /// Waits until a packet can be read or `timeout` passes; true when one can.
    pub fn wait_readable(&self, timeout: Duration) -> io::Result<bool> {
        wait_readable(&self.device, timeout)
    }
}

/// Waits until `fd` is readable or `timeout` passes (whole milliseconds, at most 65 s); true
/// when it is. An interrupted wait reports false.
pub(crate) fn wait_readable(fd: &impl AsFd, timeout: Duration) -> io::Result<bool> {
    let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::from(ms)) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// The TUN device with its queues. Dropping it (all queues) removes the device and its routes.
#[derive(Debug)]
pub struct Tun {
    name: String,
    config: TunConfig,
    queues: Vec<TunQueue>,
}

fn classify(name: &str, source: io::Error) -> TunError {
    match source.raw_os_error() {
        Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
            TunError::NoTunDevice(source)
        }
        Some(libc::EPERM) | Some(libc::EACCES) => TunError::Permission {
            name: name.to_owned(),
            source,
        },
        _ => TunError::Create {
            name: name.to_owned(),
            source,
        },
    }
}

impl Tun {
    /// Creates the device (or attaches to a persistent one of that name), opens
    /// `config.queues` queues, sets address, MTU and link up, and adds `config.routes`.
    pub fn create(config: TunConfig) -> Result<Tun, TunError> {
        let name = config.name.clone();
        if name.is_empty() || name.len() > IFNAMSIZ_MAX || name.contains(['/', ' ', '\0']) {
            return Err(TunError::BadName(name));
        }
        if config.queues == 0 {
            return Err(TunError::NoQueue);
        }
        let first = DeviceBuilder::new()
            .name(name.as_str())
            .mtu(config.mtu)
            .ipv4(config.address.addr, config.address.len, None)
            .multi_queue(true)
            .enable(true)
            .build_sync()
            .map_err(|e| classify(&name, e))?;
        let mut devices = vec![first];
        for queue in 1..config.queues {
            let device = devices
                .first()
                .map(SyncDevice::try_clone)
                .ok_or(TunError::NoQueue)?
                .map_err(|source| TunError::Queue {
                    name: name.clone(),
                    queue,
                    source,
                })?;
            devices.push(device);
        }
        let mut queues = Vec::with_capacity(devices.len());
        for (index, device) in devices.into_iter().enumerate() {
            device
                .set_nonblocking(true)
                .map_err(|source| TunError::Io {
                    name: name.clone(),
                    source,
                })?;
            queues.push(TunQueue { device, index });
        }
        let tun = Tun {
            name,
            config,
            queues,
        };
        for prefix in &tun.config.routes {
            tun.add_route(*prefix)?;
        }
        tracing::info!(
            name = %tun.name,
            address = %tun.config.address,
            mtu = tun.config.mtu,
            queues = tun.queues.len(),
            routes = ?tun.config.routes.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "TUN device up"
        );
        Ok(tun)
    }

    /// Routes `prefix` into the device (`ip route replace`: idempotent).
    pub fn add_route(&self, prefix: Ipv4Prefix) -> Result<(), TunError> {
        let text = prefix.to_string();
        let out = Command::new("ip")
            .args(["-4", "route", "replace", &text, "dev", &self.name])
            .output()
            .map_err(|source| TunError::IpCommand {
                name: self.name.clone(),
                prefix,
                source,
            })?;
        if !out.status.success() {
            return Err(TunError::Route {
                name: self.name.clone(),
                prefix,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(())
    }

    /// The interface name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The configuration it was created with.
    pub fn config(&self) -> &TunConfig {
        &self.config
    }

    /// The queues, one per worker.
    pub fn queues(&self) -> &[TunQueue] {
        &self.queues
    }

    /// Takes the queues out (to move them into worker threads); the device lives as long as
    /// one of them does.
    pub fn into_queues(self) -> Vec<TunQueue> {
        self.queues
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_errors_name_what_is_missing() {
        let err = |code| classify("xpptp0", io::Error::from_raw_os_error(code));
        assert!(matches!(err(libc::ENOENT), TunError::NoTunDevice(_)));
        assert!(err(libc::ENOENT).to_string().contains("modprobe tun"));
        assert!(matches!(err(libc::EPERM), TunError::Permission { .. }));
        assert!(err(libc::EPERM).to_string().contains("CAP_NET_ADMIN"));
        assert!(matches!(err(libc::EBUSY), TunError::Create { .. }));
    }

    #[test]
    fn prefix_display() {
        let p = Ipv4Prefix::new(Ipv4Addr::new(10, 8, 0, 0), 24);
        assert_eq!(p.map(|p| p.to_string()).as_deref(), Some("10.8.0.0/24"));
        assert_eq!(Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, 33), None);
    }
}
