//! GRE before the hand-over: one raw IPv4 socket for protocol 47 for the whole daemon.
//!
//! The XDP program passes to the kernel every GRE packet that is not fast-path traffic of
//! an established call, so a call's PPP negotiation arrives here. The receive task parses
//! the IPv4 and GRE headers, finds the call by its Call ID (the low half of the GRE key)
//! and hands the GRE packet (after the IPv4 header) to that call's session task, if it
//! came from the call's peer. Sending uses the same socket: the kernel builds the IPv4
//! header (no `IP_HDRINCL`).

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use xpptp_proto::wire::gre::GrePacket;
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};

use super::CallInput;

/// IP protocol number of GRE.
pub const IPPROTO_GRE: i32 = 47;

/// Counters of the receive task.
#[derive(Debug, Default)]
pub struct GreCounters {
    /// Packets handed to a call.
    pub delivered: AtomicU64,
    /// Packets that did not parse as IPv4 + GRE.
    pub malformed: AtomicU64,
    /// GRE for a call ID with no call in negotiation (late packets, scans, established
    /// calls' stragglers).
    pub unknown_call: AtomicU64,
    /// GRE for a known call from another address than its peer's (spoofing).
    pub wrong_peer: AtomicU64,
    /// The call's queue was full (its task is behind).
    pub queue_full: AtomicU64,
}

/// A call the receive task delivers to.
#[derive(Debug, Clone)]
struct Route {
    peer: Ipv4Addr,
    input: mpsc::Sender<CallInput>,
}

/// The raw socket and the call routes.
#[derive(Debug)]
pub(crate) struct GreSocket {
    socket: AsyncFd<Socket>,
    routes: Mutex<HashMap<u16, Route>>,
    counters: GreCounters,
}

impl GreSocket {
    /// Opens the raw socket, bound to `local` unless it is unspecified. Needs
    /// CAP_NET_RAW.
    pub fn open(local: Ipv4Addr) -> io::Result<Arc<GreSocket>> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_GRE)))
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!(
                        "cannot open a raw socket for GRE (protocol 47): {error}; \
                     xpptp-control needs CAP_NET_RAW (run it as root)"
                    ),
                )
            })?;
        socket.set_nonblocking(true)?;
        if !local.is_unspecified() {
            socket.bind(&SockAddr::from(SocketAddrV4::new(local, 0)))?;
        }
        // `AsyncFd::new` is deprecated because a type may return another descriptor from
        // `as_raw_fd` later; `socket2::Socket` owns its one descriptor for its whole life,
        // which is the invariant the unsafe `AsyncFd::register` asks for, without unsafe.
        #[allow(deprecated)]
        let socket = AsyncFd::new(socket)?;
        Ok(Arc::new(GreSocket {
            socket,
            routes: Mutex::new(HashMap::new()),
            counters: GreCounters::default(),
        }))
    }

    fn routes(&self) -> MutexGuard<'_, HashMap<u16, Route>> {
        // Single inserts and removes: a poisoned map is consistent.
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The receive task's counters.
    pub fn counters(&self) -> &GreCounters {
        &self.counters
    }

    /// Delivers GRE for `call_id` from `peer` to `input` from now on.
    pub fn add_route(&self, call_id: u16, peer: Ipv4Addr, input: mpsc::Sender<CallInput>) {
        self.routes().insert(call_id, Route { peer, input });
    }

    /// Stops delivering GRE for `call_id` (hand-over to the datapath, or the call ended).
    pub fn remove_route(&self, call_id: u16) {
        self.routes().remove(&call_id);
    }

    /// Sends a GRE packet (header and payload) to `peer`.
    pub async fn send(&self, peer: Ipv4Addr, packet: &[u8]) -> io::Result<()> {
        let to = SockAddr::from(SocketAddrV4::new(peer, 0));
        loop {
            let mut guard = self.socket.writable().await?;
            match guard.try_io(|socket| socket.get_ref().send_to(packet, &to)) {
                Ok(result) => return result.map(|_| ()),
                Err(_would_block) => continue,
            }
        }
    }

    /// The receive task: runs until the socket fails.
    pub async fn receive_loop(self: Arc<Self>) -> io::Result<()> {
        let mut buffer = vec![0u8; 65536];
        loop {
            let mut guard = self.socket.readable().await?;
            let len = match guard.try_io(|socket| socket.get_ref().read(&mut buffer)) {
                Ok(Ok(len)) => len,
                Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(error)) => return Err(error),
                Err(_would_block) => continue,
            };
            self.deliver(buffer.get(..len).unwrap_or_default());
        }
    }

    /// Routes one received datagram (IPv4 header included, as raw sockets give it).
    fn deliver(&self, datagram: &[u8]) {
        let Ok(ip) = Ipv4Packet::new_checked(datagram) else {
            self.counters.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if ip.protocol() != IpProtocol::Gre {
            self.counters.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let gre_bytes = ip.payload();
        let Ok(gre) = GrePacket::new_checked(gre_bytes) else {
            self.counters.malformed.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Some(route) = self.routes().get(&gre.call_id()).cloned() else {
            self.counters.unknown_call.fetch_add(1, Ordering::Relaxed);
            return;
        };
        if route.peer != ip.src_addr() {
            self.counters.wrong_peer.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match route.input.try_send(CallInput::Gre(gre_bytes.to_vec())) {
            Ok(()) => self.counters.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.counters.queue_full.fetch_add(1, Ordering::Relaxed),
        };
    }
}
