//! A minimal AF_PACKET socket for tests: send whole Ethernet frames on one interface,
//! receive the frames addressed to this host on it.
// Test helpers: panicking with context is how a test fails.
#![allow(clippy::expect_used, clippy::panic, dead_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

const ETH_P_ALL: u16 = 0x0003;

/// An AF_PACKET raw socket bound to one interface of the current thread's namespace.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

fn check(rc: libc::c_int, what: &str) {
    assert!(
        rc >= 0,
        "{what} failed: {} (AF_PACKET needs CAP_NET_RAW)",
        io::Error::last_os_error()
    );
}

impl PacketSocket {
    /// `receive`: also receive every frame on the interface (else the socket only sends).
    /// `bypass_qdisc`: PACKET_QDISC_BYPASS, so the TX queue is chosen from the sending CPU
    /// (cpu % queues on a device without XPS), which lets a test pick the peer's RX queue.
    pub fn open(ifname: &str, receive: bool, bypass_qdisc: bool) -> PacketSocket {
        let name = CString::new(ifname).expect("interface name");
        // SAFETY: if_nametoindex reads the NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert_ne!(ifindex, 0, "no interface {ifname} in this namespace");
        let protocol = if receive { ETH_P_ALL.to_be() } else { 0 };
        // SAFETY: plain socket(2); the descriptor is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(protocol),
            )
        };
        check(fd, "socket(AF_PACKET)");
        // SAFETY: fd is a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if bypass_qdisc {
            let one: libc::c_int = 1;
            // SAFETY: setsockopt reads one c_int from `one`.
            let rc = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_PACKET,
                    libc::PACKET_QDISC_BYPASS,
                    (&raw const one).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            };
            check(rc, "setsockopt(PACKET_QDISC_BYPASS)");
        }
        // SAFETY: sockaddr_ll is plain data; all-zero is valid.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = i32::try_from(ifindex).expect("ifindex fits");
        // SAFETY: bind reads a sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        check(rc, "bind(AF_PACKET)");
        PacketSocket { fd }
    }

    /// Sends one Ethernet frame; returns false if the kernel refused it for now (ENOBUFS).
    pub fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: send reads `frame.len()` bytes from `frame`.
        let rc = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if rc < 0 {
            let err = io::Error::last_os_error();
            assert!(
                matches!(err.raw_os_error(), Some(libc::ENOBUFS | libc::EAGAIN)),
                "send(AF_PACKET) failed: {err}"
            );
            return false;
        }
        true
    }

    /// The next frame addressed to this host (PACKET_HOST), or None after `timeout`.
    pub fn recv_host(&self, buf: &mut [u8], timeout: Duration) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: poll reads and writes the one pollfd passed.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc <= 0 {
                continue;
            }
            // SAFETY: sockaddr_ll is plain data; all-zero is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: recvfrom writes at most `buf.len()` bytes into `buf` and at most
            // `from_len` bytes into `from`.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut from).cast(),
                    &mut from_len,
                )
            };
            if n < 0 {
                continue;
            }
            if from.sll_pkttype == libc::PACKET_HOST {
                return usize::try_from(n).ok();
            }
        }
    }
}
