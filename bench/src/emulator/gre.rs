//! The emulator's one raw GRE socket: every client sends through it (with its own source
//! address in the IPv4 header we write, `IP_HDRINCL`), and one reader task hands what
//! arrives to the client it is for, by (server address, our call ID in the GRE key).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use xpptp_proto::wire::gre::GrePacket;

/// IP protocol number of GRE.
const IPPROTO_GRE: i32 = 47;
/// GRE packets waiting for one client's task before further ones are dropped.
pub(crate) const CLIENT_QUEUE: usize = 64;

/// The counters of the GRE socket, shared with the report.
#[derive(Debug, Default)]
pub struct GreCounters {
    /// GRE packets received for a client and queued to it.
    pub delivered: AtomicU64,
    /// Dropped because the client's queue was full.
    pub queue_full: AtomicU64,
    /// GRE for no client of ours (another program's, or a client already gone).
    pub unknown_call: AtomicU64,
    /// MPPE or IP data packets: left to the traffic engine, which sinks them itself.
    pub data_ignored: AtomicU64,
    /// Not a well-formed IPv4 + enhanced GRE packet.
    pub malformed: AtomicU64,
    /// Sends the kernel refused (send buffer full, no route).
    pub send_errors: AtomicU64,
}

fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

type Routes = HashMap<(Ipv4Addr, u16), mpsc::Sender<Vec<u8>>>;

/// The socket and the routing table of the reader.
#[derive(Debug)]
pub(crate) struct GreSocket {
    fd: AsyncFd<Socket>,
    routes: Mutex<Routes>,
    pub(crate) counters: GreCounters,
}

fn lock(routes: &Mutex<Routes>) -> MutexGuard<'_, Routes> {
    // The table stays consistent between statements.
    routes.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GreSocket {
    /// Opens the raw GRE socket (needs CAP_NET_RAW) inside the current runtime.
    pub(crate) fn open() -> io::Result<GreSocket> {
        let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IPPROTO_GRE)))?;
        socket.set_header_included_v4(true)?;
        socket.set_nonblocking(true)?;
        // Thousands of clients negotiating at once: room for their bursts.
        let _ = socket.set_recv_buffer_size(8 << 20);
        let _ = socket.set_send_buffer_size(4 << 20);
        // `AsyncFd::new` is deprecated because a type may return another descriptor from
        // `as_raw_fd` later; `socket2::Socket` owns its one descriptor for its whole life,
        // which is the invariant the unsafe `AsyncFd::register` asks for, without unsafe.
        #[allow(deprecated)]
        let fd = AsyncFd::new(socket)?;
        Ok(GreSocket {
            fd,
            routes: Mutex::new(HashMap::new()),
            counters: GreCounters::default(),
        })
    }

    /// Routes GRE from `server` with our call ID `call_id` to the returned receiver.
    pub(crate) fn register(&self, server: Ipv4Addr, call_id: u16) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(CLIENT_QUEUE);
        lock(&self.routes).insert((server, call_id), tx);
        rx
    }

    /// Stops routing to a client that has finished.
    pub(crate) fn unregister(&self, server: Ipv4Addr, call_id: u16) {
        lock(&self.routes).remove(&(server, call_id));
    }

    /// Sends the GRE packet `gre` from `source` to `server`, writing the IPv4 header.
    pub(crate) fn send_gre(&self, source: Ipv4Addr, server: Ipv4Addr, gre: &[u8]) {
        let mut packet = Vec::with_capacity(20 + gre.len());
        // Version 4, IHL 5; the kernel fills in the total length, ID and checksum.
        packet.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0, 0, 64, IPPROTO_GRE as u8, 0, 0]);
        packet.extend_from_slice(&source.octets());
        packet.extend_from_slice(&server.octets());
        packet.extend_from_slice(gre);
        self.send_ipv4(server, &packet);
    }

    /// Sends a complete IPv4 packet to `server`.
    pub(crate) fn send_ipv4(&self, server: Ipv4Addr, packet: &[u8]) {
        let to = SockAddr::from(SocketAddrV4::new(server, 0));
        if let Err(error) = self.fd.get_ref().send_to(packet, &to) {
            count(&self.counters.send_errors);
            tracing::debug!(%server, %error, "GRE send failed");
        }
    }

    /// Reads GRE forever, handing each packet's GRE part to its client.
    pub(crate) async fn run_reader(self: Arc<Self>) {
        let mut buf = vec![0u8; 65536];
        loop {
            let mut guard = match self.fd.readable().await {
                Ok(guard) => guard,
                Err(error) => {
                    tracing::error!(%error, "the raw GRE socket failed; no more GRE is received");
                    return;
                }
            };
            loop {
                match guard.try_io(|fd| io::Read::read(&mut fd.get_ref(), &mut buf)) {
                    Ok(Ok(n)) => self.dispatch(buf.get(..n).unwrap_or(&[])),
                    Ok(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "reading the raw GRE socket");
                        break;
                    }
                    Err(_would_block) => break,
                }
            }
        }
    }

    fn dispatch(&self, packet: &[u8]) {
        let (server, call_id, gre) = match classify(packet) {
            Inbound::Control {
                server,
                call_id,
                gre,
            } => (server, call_id, gre),
            Inbound::Data => {
                count(&self.counters.data_ignored);
                return;
            }
            Inbound::Malformed => {
                count(&self.counters.malformed);
                return;
            }
        };
        let sender = lock(&self.routes).get(&(server, call_id)).cloned();
        let Some(sender) = sender else {
            count(&self.counters.unknown_call);
            return;
        };
        match sender.try_send(gre.to_vec()) {
            Ok(()) => count(&self.counters.delivered),
            Err(mpsc::error::TrySendError::Full(_)) => count(&self.counters.queue_full),
            Err(mpsc::error::TrySendError::Closed(_)) => count(&self.counters.unknown_call),
        }
    }
}

/// What the reader makes of one packet from the raw socket (IPv4 header included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// Enhanced GRE without data (PPP control frames, pure acknowledgments) for our call
    /// `call_id` from `server`: its GRE part, for the client's task.
    Control {
        server: Ipv4Addr,
        call_id: u16,
        gre: &'a [u8],
    },
    /// MPPE or IP data: the traffic engine sinks it itself.
    Data,
    /// Not a well-formed IPv4 + enhanced GRE packet.
    Malformed,
}

/// Classifies one packet the raw GRE socket read (untrusted: anything on the network).
pub fn classify(packet: &[u8]) -> Inbound<'_> {
    let Some((server, gre)) = split_ipv4_gre(packet) else {
        return Inbound::Malformed;
    };
    let Ok(header) = GrePacket::new_checked(gre) else {
        return Inbound::Malformed;
    };
    if is_data(header.payload()) {
        return Inbound::Data;
    }
    Inbound::Control {
        server,
        call_id: header.call_id(),
        gre,
    }
}

/// The minimum IPv4 header: IHL 5.
const IPV4_MIN_HEADER: usize = 20;

/// The source address and GRE part of an IPv4 packet carrying GRE, if it is one.
fn split_ipv4_gre(packet: &[u8]) -> Option<(Ipv4Addr, &[u8])> {
    let first = *packet.first()?;
    if first >> 4 != 4 || *packet.get(9)? != IPPROTO_GRE as u8 {
        return None;
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < IPV4_MIN_HEADER {
        return None;
    }
    let source: [u8; 4] = packet.get(12..16)?.try_into().ok()?;
    Some((Ipv4Addr::from(source), packet.get(header_len..)?))
}

/// Whether a GRE payload (a PPP frame, address/control optional) is data: MPPE (0x00fd)
/// or IPv4 (0x0021), compressed protocol field or not.
fn is_data(ppp: &[u8]) -> bool {
    let ppp = ppp.strip_prefix(&[0xff, 0x03]).unwrap_or(ppp);
    matches!(
        ppp,
        [0x00, 0xfd, ..] | [0x00, 0x21, ..] | [0xfd, ..] | [0x21, ..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_told_from_control() {
        assert!(is_data(&[0xff, 0x03, 0x00, 0xfd, 0x90, 0x00]));
        assert!(is_data(&[0x00, 0x21, 0x45]));
        assert!(is_data(&[0xfd, 0x90, 0x00]));
        assert!(!is_data(&[0xff, 0x03, 0xc0, 0x21, 9, 1, 0, 8]));
        assert!(!is_data(&[0x80, 0xfd, 14, 1]));
        assert!(!is_data(&[]));
    }

    #[test]
    fn ipv4_gre_is_split_and_anything_else_refused() {
        let mut packet = vec![
            0x45, 0, 0, 24, 0, 0, 0, 0, 64, 47, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        packet.extend_from_slice(&[0x30, 0x01, 0x88, 0x0b]);
        let (source, gre) = split_ipv4_gre(&packet).unwrap();
        assert_eq!(source, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(gre, &[0x30, 0x01, 0x88, 0x0b]);
        packet[9] = 6;
        assert!(split_ipv4_gre(&packet).is_none());
        packet[9] = 47;
        packet[0] = 0x4f;
        assert!(split_ipv4_gre(&packet).is_none());
        assert!(split_ipv4_gre(&packet[..5]).is_none());
    }

    #[test]
    fn an_ihl_below_five_is_malformed() {
        // An IHL below 5 once made the "GRE part" start inside the IPv4 header itself,
        // whose bytes a crafted packet can make read as enhanced GRE for any call.
        let mut packet = vec![
            0x40, 0, 0, 24, 0, 0, 0, 0, 64, 47, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        packet.extend_from_slice(&[0x20, 0x01, 0x88, 0x0b, 0, 0, 0, 7]);
        for ihl in 0..5u8 {
            packet[0] = 0x40 | ihl;
            assert!(split_ipv4_gre(&packet).is_none(), "IHL {ihl}");
            assert_eq!(classify(&packet), Inbound::Malformed, "IHL {ihl}");
        }
        packet[0] = 0x45;
        assert_eq!(
            classify(&packet),
            Inbound::Control {
                server: Ipv4Addr::new(10, 0, 0, 1),
                call_id: 7,
                gre: &[0x20, 0x01, 0x88, 0x0b, 0, 0, 0, 7],
            }
        );
    }
}
