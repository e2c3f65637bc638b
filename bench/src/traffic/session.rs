//! One emulated client's call as the traffic engine drives it: the client's side of the
//! datapath's own fast-path state, so upstream frames are byte for byte what a PPTP client
//! sends and downstream frames are opened the way a client opens them.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use thiserror::Error;
use xpptp_datapath::packet::{
    CallState, DecapVerdict, DropReason, ENCAP_HEADROOM, EncapVerdict, L2Header, decap_parsed,
    encap, parse_outer,
};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::{Established, MppeKeyState};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, Ipv4Template};

use super::payload::{self, PayloadHeader};

/// UDP header length.
pub const UDP_LEN: usize = 8;
/// Inner IPv4 + UDP headers in front of the payload.
pub const INNER_HEADERS: usize = 20 + UDP_LEN;
/// The smallest inner packet: headers and the payload header.
pub const MIN_INNER_LEN: u16 = (INNER_HEADERS + payload::HEADER_LEN) as u16;
/// UDP port the inside host's sink listens on (upstream's destination port).
pub const UPSTREAM_PORT: u16 = 47_001;
/// UDP port of downstream packets at the client (the client-side sink takes every GRE
/// packet of its sessions, whatever the port).
pub const DOWNSTREAM_PORT: u16 = 47_002;
/// Room for the longest frame: headroom for the tunnel headers and a 1500-byte inner packet.
pub const FRAME_BUF_LEN: usize = ENCAP_HEADROOM + 1500;

/// Packet sizes of a run, as the inner IPv4 packet's Total Length (what the client's IP
/// stack hands to PPP; the frame on the wire adds Ethernet 14, outer IPv4 20, GRE 12 or 16,
/// PPP 1 to 4 and MPPE 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SizeMix {
    /// Every packet this long (at least [`MIN_INNER_LEN`]).
    Fixed(u16),
    /// Simple IMIX, 7:4:1 of 64, 576 and 1400 bytes, interleaved in a fixed cycle of 12 so
    /// that any run of whole cycles has the exact ratio (mean 353.8 bytes).
    Imix,
}

const IMIX_CYCLE: [u16; 12] = [64, 576, 64, 64, 576, 64, 1400, 64, 576, 64, 576, 64];

impl SizeMix {
    /// The inner length of the `n`-th packet of a flow.
    pub fn len_at(&self, n: u64) -> u16 {
        match self {
            SizeMix::Fixed(len) => (*len).max(MIN_INNER_LEN),
            SizeMix::Imix => IMIX_CYCLE[(n % IMIX_CYCLE.len() as u64) as usize],
        }
    }

    /// The largest inner length the mix uses (checked against each session's MTU).
    pub fn max_len(&self) -> u16 {
        match self {
            SizeMix::Fixed(len) => (*len).max(MIN_INNER_LEN),
            SizeMix::Imix => 1400,
        }
    }

    /// "64", "512", "1400" or "imix".
    pub fn name(&self) -> String {
        match self {
            SizeMix::Fixed(len) => len.to_string(),
            SizeMix::Imix => "imix".into(),
        }
    }
}

impl std::str::FromStr for SizeMix {
    type Err = String;

    fn from_str(s: &str) -> Result<SizeMix, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(SizeMix::Imix);
        }
        match s.parse::<u16>() {
            Ok(len) if (MIN_INNER_LEN..=1500).contains(&len) => Ok(SizeMix::Fixed(len)),
            _ => Err(format!(
                "size `{s}`: give an inner IPv4 length from {MIN_INNER_LEN} to 1500 \
                 (64, 512, 1400) or `imix`"
            )),
        }
    }
}

/// Why a session cannot carry the traffic asked for, or a frame could not be built.
#[derive(Debug, Error)]
pub enum SessionError {
    #[error(
        "session {index} (call {call_id}): its tunnel MTU is {mtu}, the size mix needs {need}; \
         use smaller packets or negotiate a larger MRU"
    )]
    MtuTooSmall {
        index: u32,
        call_id: u16,
        mtu: u16,
        need: u16,
    },
    #[error("the fast path refused to encapsulate a packet of session {index}: {reason}")]
    Encap { index: u32, reason: DropReason },
}

/// The sending half of a client's call: its shared state (numbering, MPPE encryptor,
/// addresses) and the inner header template.
#[derive(Debug)]
pub struct SessionTx {
    /// The session's index in the run (the flow name in payloads and reports).
    pub index: u32,
    call: Arc<Mutex<CallState>>,
    l2: L2Header,
    inner: Ipv4Template,
    inner_ident: u16,
    /// Outer destination (the concentrator), for raw-IP senders.
    pub server: Ipv4Addr,
    /// The client's tunnel address: where downstream traffic for this session goes.
    pub tunnel_addr: Ipv4Addr,
}

/// The receiving half of a client's call: window and MPPE decryptor, in the shared state.
#[derive(Debug)]
pub struct SessionRx {
    pub index: u32,
    call: Arc<Mutex<CallState>>,
    call_id: u16,
}

/// One emulated client's call, split into halves a sender thread and a sink thread own.
///
/// Both halves and the emulator's client task (which sends the call's PPP control frames,
/// LCP Echo-Reply and the like, after the hand-over) share one [`CallState`] behind a
/// mutex, so data and control frames carry one GRE numbering, as a real client's do. Each
/// packet holds the lock only while it is encapsulated or opened; the lock is never
/// contended for long, and this is the load generator, not the thing measured.
#[derive(Debug)]
pub struct TrafficSession {
    pub tx: SessionTx,
    pub rx: SessionRx,
}

/// The link-layer addresses of the clients' frames: to the concentrator's MAC (or the next
/// hop towards it) from the clients' interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2Addresses {
    pub client_mac: [u8; 6],
    pub server_mac: [u8; 6],
}

/// The client's side of a call as the datapath's [`CallState`] with two changes:
/// downstream packets come from anywhere (no inner source check) and packets to the
/// client's own tunnel address are local (TTL untouched). The emulator builds its
/// sessions' shared state with this too.
pub fn client_call_state(
    est: &Established,
    client_addr: Ipv4Addr,
    server_addr: Ipv4Addr,
) -> CallState {
    let mut client_view = est.clone();
    client_view.peer_address = server_addr;
    let mut state = CallState::from_established(&client_view, client_addr);
    state.config.check_inner_source = false;
    state.config.server_tunnel_addr = Some(est.client_tunnel_address);
    state
}

fn lock(call: &Mutex<CallState>) -> MutexGuard<'_, CallState> {
    // A panic elsewhere cannot leave a CallState half-written between statements.
    call.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TrafficSession {
    /// A session from the client's [`Established`] (client role: our call ID is the one the
    /// concentrator sends to, keys as the client derived them), the client's outer address,
    /// the concentrator's, and the L2 addresses of upstream frames. `inside_host` is where
    /// upstream packets go.
    pub fn new(
        index: u32,
        est: &Established,
        client_addr: Ipv4Addr,
        server_addr: Ipv4Addr,
        l2: L2Addresses,
        inside_host: Ipv4Addr,
    ) -> TrafficSession {
        let call = Arc::new(Mutex::new(client_call_state(est, client_addr, server_addr)));
        TrafficSession::shared(
            index,
            call,
            est.client_tunnel_address,
            server_addr,
            l2,
            inside_host,
        )
    }

    /// A session over a call state shared with its control plane (the emulator's
    /// [`DialledSession::call`](crate::emulator::DialledSession), built by
    /// [`client_call_state`]); `tunnel_addr` is the client's tunnel address.
    pub fn shared(
        index: u32,
        call: Arc<Mutex<CallState>>,
        tunnel_addr: Ipv4Addr,
        server_addr: Ipv4Addr,
        l2: L2Addresses,
        inside_host: Ipv4Addr,
    ) -> TrafficSession {
        let call_id = lock(&call).config.local_call_id;
        let inner = Ipv4Template::new(&Ipv4Repr {
            src_addr: tunnel_addr,
            dst_addr: inside_host,
            protocol: IpProtocol::Udp,
            payload_len: 0,
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        });
        TrafficSession {
            tx: SessionTx {
                index,
                call: Arc::clone(&call),
                l2: L2Header::ethernet(l2.server_mac, l2.client_mac),
                inner,
                inner_ident: 0,
                server: server_addr,
                tunnel_addr,
            },
            rx: SessionRx {
                index,
                call,
                call_id,
            },
        }
    }

    /// Refuses a size mix the session's MTU cannot carry.
    pub fn check_sizes(&self, sizes: SizeMix) -> Result<(), SessionError> {
        let need = sizes.max_len();
        let mtu = lock(&self.tx.call).config.mtu;
        if need > mtu {
            return Err(SessionError::MtuTooSmall {
                index: self.tx.index,
                call_id: self.rx.call_id,
                mtu,
                need,
            });
        }
        Ok(())
    }
}

/// Writes UDP header (checksum 0: none, allowed over IPv4; the payload pattern is the
/// integrity check) and payload of `len` inner bytes at `buf[at..]`, after 20 bytes left
/// for the IPv4 header. Returns the UDP datagram's range end.
fn write_udp(
    buf: &mut [u8],
    at: usize,
    len: u16,
    ports: (u16, u16),
    header: &PayloadHeader,
) -> Result<usize, DropReason> {
    let end = at + usize::from(len);
    let udp = buf.get_mut(at + 20..end).ok_or(DropReason::NoHeadroom)?;
    let udp_len = len.saturating_sub(20);
    let (head, body) = udp
        .split_first_chunk_mut::<UDP_LEN>()
        .ok_or(DropReason::Truncated)?;
    head[0..2].copy_from_slice(&ports.0.to_be_bytes());
    head[2..4].copy_from_slice(&ports.1.to_be_bytes());
    head[4..6].copy_from_slice(&udp_len.to_be_bytes());
    head[6..8].copy_from_slice(&[0, 0]);
    payload::write(body, header).map_err(|_| DropReason::Truncated)?;
    Ok(end)
}

impl SessionTx {
    /// Builds in `buf` (at least [`FRAME_BUF_LEN`] bytes) the next upstream frame: inner
    /// IPv4/UDP of `len` bytes to the inside host carrying `header`'s payload, encapsulated
    /// by the datapath's [`encap`] with this client's state (next GRE number, ack owed,
    /// MPPE). Returns the frame's range in `buf` (from the Ethernet header).
    pub fn build_frame(
        &mut self,
        buf: &mut [u8],
        len: u16,
        header: &PayloadHeader,
    ) -> Result<std::ops::Range<usize>, SessionError> {
        let at = ENCAP_HEADROOM;
        let fail = |reason| SessionError::Encap {
            index: self.index,
            reason,
        };
        let end = write_udp(buf, at, len, (UPSTREAM_PORT, UPSTREAM_PORT), header).map_err(fail)?;
        self.inner_ident = self.inner_ident.wrapping_add(1);
        let ip = buf.get_mut(at..end).ok_or(fail(DropReason::NoHeadroom))?;
        self.inner
            .emit(ip, usize::from(len) - 20, self.inner_ident)
            .map_err(|_| fail(DropReason::BadInnerIpv4))?;
        let verdict = {
            let mut call = lock(&self.call);
            let CallState {
                config,
                downstream,
                acks,
                ..
            } = &mut *call;
            encap(config, downstream, acks, &self.l2, buf, at..end, false)
        };
        match verdict {
            EncapVerdict::Send { frame } => Ok(frame),
            EncapVerdict::Drop(reason) => Err(fail(reason)),
        }
    }

    /// Length of the link-layer header in front of every frame (raw-IP senders skip it).
    pub fn l2_len(&self) -> usize {
        self.l2.as_bytes().len()
    }
}

/// What the client made of one downstream frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A verified payload of this run.
    Payload(PayloadHeader),
    /// The payload failed verification.
    Corrupt(payload::PayloadError),
    /// The fast path refused the frame (GRE window, MPPE, ...), or it was not UDP.
    Refused(DropReason),
    /// A frame without data: GRE pure ack, or a PPP frame for the client's control plane.
    NoData,
}

impl SessionRx {
    /// Opens one downstream frame of this session (starting at an Ethernet header; a raw
    /// socket's packet needs a placeholder header in front), with the datapath's
    /// [`decap_parsed`] on the client's state.
    pub fn open(&mut self, frame: &mut [u8]) -> Opened {
        let outer = match parse_outer(frame) {
            Ok(outer) => outer,
            Err(reason) => return Opened::Refused(reason),
        };
        let verdict = {
            let mut call = lock(&self.call);
            let CallState {
                config,
                upstream,
                acks,
                ..
            } = &mut *call;
            decap_parsed(config, upstream, acks, frame, &outer)
        };
        match verdict {
            DecapVerdict::Local { inner } | DecapVerdict::Forward { inner } => {
                match frame.get(inner) {
                    Some(ip) => open_udp(ip),
                    None => Opened::Refused(DropReason::Truncated),
                }
            }
            DecapVerdict::Drop(reason) => Opened::Refused(reason),
            DecapVerdict::ResetRequest => Opened::Refused(DropReason::Mppe),
            DecapVerdict::ToControl { .. } | DecapVerdict::PureAck => Opened::NoData,
        }
    }

    /// The call ID downstream GRE carries for this session (the client's own).
    pub fn call_id(&self) -> u16 {
        self.call_id
    }
}

/// Verifies the payload of an inner IPv4/UDP packet.
pub fn open_udp(ip: &[u8]) -> Opened {
    let Ok(packet) = Ipv4Packet::new_checked(ip) else {
        return Opened::Refused(DropReason::BadInnerIpv4);
    };
    if packet.protocol() != IpProtocol::Udp {
        return Opened::Refused(DropReason::NetworkProtocolNotOpen);
    }
    match packet.payload().get(UDP_LEN..) {
        Some(body) => match payload::verify(body) {
            Ok(header) => Opened::Payload(header),
            Err(err) => Opened::Corrupt(err),
        },
        None => Opened::Refused(DropReason::Truncated),
    }
}

/// The UDP payload (after the 28 bytes of headers) of a downstream packet of inner length
/// `len`, written into `buf`; returns its length.
pub fn downstream_payload(buf: &mut [u8], len: u16, header: &PayloadHeader) -> Option<usize> {
    let n = usize::from(len).checked_sub(INNER_HEADERS)?;
    payload::write(buf.get_mut(..n)?, header).ok()?;
    Some(n)
}

/// Where a downstream packet of a session goes: its tunnel address, [`DOWNSTREAM_PORT`].
pub fn downstream_destination(tx: &SessionTx) -> SocketAddrV4 {
    SocketAddrV4::new(tx.tunnel_addr, DOWNSTREAM_PORT)
}

/// A call with keys chosen by the caller, as both ends see it: what a test or an offline
/// export (pcap) installs in the concentrator (`server`) and gives the traffic engine
/// (`client`). The GRE numbering starts fresh on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyedCall {
    /// The concentrator's call ID (GRE upstream carries it).
    pub server_call_id: u16,
    /// The client's call ID (GRE downstream carries it).
    pub client_call_id: u16,
    pub client_tunnel: Ipv4Addr,
    pub server_tunnel: Option<Ipv4Addr>,
    pub mode: Option<MppeMode>,
    /// Upstream (client to server) start key.
    pub up_key: [u8; 16],
    /// Downstream start key.
    pub down_key: [u8; 16],
    /// Inner MTU both ways.
    pub mtu: u16,
}

impl KeyedCall {
    fn established(&self, role: Role, peer: Ipv4Addr) -> Established {
        let key = |k: [u8; 16]| {
            self.mode.map(|mode| MppeKeyState {
                strength: MppeStrength::Bits128,
                mode,
                start_key: StartKey(k),
            })
        };
        let (local, peer_id, transmit, receive) = match role {
            Role::Server => (
                self.server_call_id,
                self.client_call_id,
                self.down_key,
                self.up_key,
            ),
            Role::Client => (
                self.client_call_id,
                self.server_call_id,
                self.up_key,
                self.down_key,
            ),
        };
        Established {
            role,
            local_call_id: local,
            peer_call_id: peer_id,
            peer_address: peer,
            peer_recv_window: 64,
            user: Some(b"xpptp-bench".to_vec()),
            auth_method: None,
            client_tunnel_address: self.client_tunnel,
            server_tunnel_address: self.server_tunnel,
            name_servers: NameServers::default(),
            transmit: key(transmit),
            receive: key(receive),
            gre: GreSnapshot {
                local_call_id: local,
                peer_call_id: peer_id,
                next_seq: 1,
                peer_acked: 0,
                ack_owed: None,
                recv_highest: None,
                peer_recv_window: 64,
            },
            // MPPE's 4 octets; a file's MTU is checked (traffic::cli), a caller's saturates.
            peer_mru: self.mtu.saturating_add(4),
            our_mru: self.mtu.saturating_add(4),
            mtu: self.mtu,
            acfc: true,
            pfc: true,
        }
    }

    /// The concentrator's view, the client at `client_addr`.
    pub fn server(&self, client_addr: Ipv4Addr) -> Established {
        self.established(Role::Server, client_addr)
    }

    /// The client's view, the concentrator at `server_addr`.
    pub fn client(&self, server_addr: Ipv4Addr) -> Established {
        self.established(Role::Client, server_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xpptp_datapath::packet::decap;

    const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const INSIDE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    fn call(mode: Option<MppeMode>) -> KeyedCall {
        KeyedCall {
            server_call_id: 0x1111,
            client_call_id: 0x2222,
            client_tunnel: Ipv4Addr::new(10, 8, 0, 10),
            server_tunnel: Some(Ipv4Addr::new(10, 8, 0, 1)),
            mode,
            up_key: [0x5A; 16],
            down_key: [0xC3; 16],
            mtu: 1400,
        }
    }

    #[test]
    fn upstream_frames_decapsulate_on_the_server_for_every_size_and_mode() {
        let l2 = L2Addresses {
            client_mac: [2, 0, 0, 0, 0, 2],
            server_mac: [2, 0, 0, 0, 0, 1],
        };
        for mode in [None, Some(MppeMode::Stateless), Some(MppeMode::Stateful)] {
            for sizes in [
                SizeMix::Fixed(64),
                SizeMix::Fixed(512),
                SizeMix::Fixed(1400),
                SizeMix::Imix,
            ] {
                let keyed = call(mode);
                let mut client =
                    TrafficSession::new(3, &keyed.client(SERVER), CLIENT, SERVER, l2, INSIDE);
                client.check_sizes(sizes).unwrap();
                let mut server = CallState::from_established(&keyed.server(CLIENT), SERVER);
                let mut buf = vec![0u8; FRAME_BUF_LEN];
                for seq in 0..24 {
                    let header = PayloadHeader {
                        session: 3,
                        seq,
                        sent_ns: 5,
                    };
                    let len = sizes.len_at(seq);
                    let frame = client.tx.build_frame(&mut buf, len, &header).unwrap();
                    let frame = &mut buf[frame];
                    assert_eq!(&frame[..6], &l2.server_mac);
                    let verdict = decap(&server.config, &mut server.upstream, &server.acks, frame);
                    let DecapVerdict::Forward { inner } = verdict else {
                        panic!("{mode:?} {sizes:?} seq {seq}: {verdict:?}");
                    };
                    let ip = Ipv4Packet::new_checked(&frame[inner.clone()]).unwrap();
                    assert_eq!(ip.total_len(), len, "{sizes:?}");
                    assert_eq!(
                        (ip.src_addr(), ip.dst_addr()),
                        (keyed.client_tunnel, INSIDE)
                    );
                    assert_eq!(open_udp(&frame[inner]), Opened::Payload(header));
                }
            }
        }
    }

    #[test]
    fn downstream_frames_open_on_the_client_and_corruption_is_caught() {
        let l2 = L2Addresses {
            client_mac: [2, 0, 0, 0, 0, 2],
            server_mac: [2, 0, 0, 0, 0, 1],
        };
        for mode in [Some(MppeMode::Stateless), Some(MppeMode::Stateful)] {
            let keyed = call(mode);
            let mut client =
                TrafficSession::new(0, &keyed.client(SERVER), CLIENT, SERVER, l2, INSIDE);
            let mut server = CallState::from_established(&keyed.server(CLIENT), SERVER);
            let server_l2 = L2Header::ethernet(l2.client_mac, l2.server_mac);
            let mut buf = vec![0u8; FRAME_BUF_LEN];
            for seq in 0..4u64 {
                let header = PayloadHeader {
                    session: 0,
                    seq,
                    sent_ns: 9,
                };
                // The inside host's packet, as the server's encap gets it.
                let at = ENCAP_HEADROOM;
                let end = write_udp(&mut buf, at, 512, (1, 2), &header).unwrap();
                Ipv4Template::new(&Ipv4Repr {
                    src_addr: INSIDE,
                    dst_addr: keyed.client_tunnel,
                    protocol: IpProtocol::Udp,
                    payload_len: 0,
                    ttl: 64,
                    dscp_ecn: 0,
                    ident: 0,
                    dont_frag: false,
                })
                .emit(&mut buf[at..end], 492, 0)
                .unwrap();
                let EncapVerdict::Send { frame } = encap(
                    &server.config,
                    &mut server.downstream,
                    &server.acks,
                    &server_l2,
                    &mut buf,
                    at..end,
                    true,
                ) else {
                    panic!("encap");
                };
                let mut frame = buf[frame].to_vec();
                if seq == 3 {
                    // Stateless MPPE: a flipped ciphertext byte decrypts to a wrong payload
                    // byte; stateful: the same (RC4 is a stream cipher).
                    let last = frame.len() - 1;
                    frame[last] ^= 0x40;
                    assert!(matches!(
                        client.rx.open(&mut frame),
                        Opened::Corrupt(payload::PayloadError::Corrupt { .. })
                    ));
                } else {
                    assert_eq!(client.rx.open(&mut frame), Opened::Payload(header));
                }
            }
        }
    }
}
