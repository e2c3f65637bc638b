//! Exports for external traffic generators: a pcap of the upstream traffic of deterministic,
//! test-keyed PPTP sessions, and the session state a concentrator needs to accept it.
//!
//! * [`generate`] / [`write_files`] (`xpptp-bench pcap`): N sessions, M packets each, as a
//!   client sends them: Ethernet, IPv4, GRE v1 (call ID and sequence number), PPP (ACFC and
//!   PFC), MPPE (stateless or stateful, 40 or 128 bit), and inside the ciphertext an IPv4/UDP
//!   packet from the client's tunnel address to an inside host. The frames are built by the
//!   datapath's own fast-path [`encap`] on a client-role [`CallState`], so they are what our
//!   MPPE and GRE code emits (and `decap` on the server-role state accepts; a unit test
//!   checks every frame). Packets go round-robin over the sessions, in order within each.
//!   Keys, call IDs and addresses follow from the seed and the options alone: the same
//!   command writes the same bytes.
//! * The sessions file (JSON, [`SessionsFile`]) holds per session the call IDs, addresses
//!   and both start keys. [`install`] (`xpptp-bench install`) establishes them in a running
//!   xpptp-datapath over its command socket (`Establish` with `replace = true`, so a fresh
//!   install resets the GRE windows and MPPE counts); [`uninstall`] removes them.
//!
//! # Replaying
//!
//! A replay is accepted once per install: the datapath's GRE receive window refuses
//! sequence numbers it has seen and MPPE moves on with every packet, so install again
//! before every replay. Stateful MPPE also needs the packets of a call in order and none
//! lost (a gap makes the datapath ask for a CCP reset and drop until a flushed packet).
//!
//! # xpptp-control and bench sessions
//!
//! When xpptp-control connects (or reconnects) to the datapath it removes every call it does
//! not know (`control/src/datapath.rs`: calls of an earlier control process cannot be
//! adopted). Installed bench sessions are such calls. So either replay against a datapath
//! running without control, or install after control has connected, with call IDs and
//! tunnel addresses outside what control hands out, and install again whenever control
//! restarts or reconnects.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use serde::{Deserialize, Serialize};
use xpptp_datapath::command::client::{Client, ClientError};
use xpptp_datapath::packet::{
    CallState, DropReason, ENCAP_HEADROOM, EncapVerdict, L2Header, encap,
};
use xpptp_proto::command::{Establish, FailureCode, Message, Remove};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::{Established, MppeKeyState};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Repr, Ipv4Template, checksum};

/// The `format` of the sessions files this version writes and reads.
pub const SESSIONS_FORMAT: &str = "xpptp-bench-sessions/1";

/// IPv4 + UDP headers + the 12-octet tag every payload starts with.
pub const MIN_SIZE: u16 = 20 + 8 + 12;
/// Largest inner packet: with the tunnel's 37 octets (IPv4 20, GRE 12, PPP 1, MPPE 2,
/// protocol 2) the outer packet stays within a 1500-octet Ethernet MTU.
pub const MAX_SIZE: u16 = 1460;
/// The sessions' PPP MRU in both directions ([`MAX_SIZE`] plus the MPPE overhead).
const MRU: u16 = MAX_SIZE + 4;
/// The first GRE sequence number of every session (as pptp-linux starts).
pub const FIRST_SEQ: u32 = 1;
/// Time between consecutive frames in the pcap: 10 us, that is 100,000 packets/s as
/// recorded. Generators replay at the rate they are told (tcpreplay `--pps`, TRex `-m`).
pub const FRAME_SPACING: Duration = Duration::from_micros(10);
/// The first octets of every payload (then session index and packet index, big-endian).
pub const PAYLOAD_MAGIC: [u8; 4] = *b"XPB1";
/// IMIX: 7 x 64, 4 x 576, 1 x 1400 octets (inner IPv4), in this order, repeating.
pub const IMIX: [u16; 12] = [64, 64, 64, 64, 64, 64, 64, 576, 576, 576, 576, 1400];

/// What went wrong generating, reading or writing the export.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("invalid pcap export settings: {0}")]
    Config(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write the pcap {path}: {source}")]
    Pcap {
        path: PathBuf,
        #[source]
        source: pcap_file::PcapError,
    },
    #[error("cannot read the sessions file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a sessions file of this xpptp-bench ({detail}); write it again with \
         `xpptp-bench pcap ... --sessions-out {path}`"
    )]
    BadSessions { path: PathBuf, detail: String },
    #[error("the datapath's encap refused a generated packet ({0}): a bug in the generator")]
    Encap(DropReason),
}

/// Why installing or removing the sessions failed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Sessions(#[from] PcapError),
    #[error(
        "the datapath refused session {index} (call ID {call_id}, client {client}): {code:?}: \
         {detail}; if xpptp-control is attached its calls may hold this call ID or tunnel \
         address: export with other --tunnel-net / fewer sessions, or use a datapath without \
         control"
    )]
    Refused {
        index: usize,
        call_id: u16,
        client: Ipv4Addr,
        code: FailureCode,
        detail: String,
    },
    #[error("the datapath answered an {request} with {reply:?}")]
    Unexpected {
        request: &'static str,
        reply: Box<Message>,
    },
}

/// The inner packet size of each packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketSize {
    /// Every packet this many octets (inner IPv4).
    Fixed(u16),
    /// [`IMIX`] by packet index.
    Imix,
}

impl PacketSize {
    /// The size of a session's `packet`-th packet.
    pub fn of(self, packet: u32) -> u16 {
        match self {
            PacketSize::Fixed(size) => size,
            PacketSize::Imix => {
                let at = usize::try_from(packet).unwrap_or(0) % IMIX.len();
                IMIX.get(at).copied().unwrap_or(MIN_SIZE)
            }
        }
    }
}

impl FromStr for PacketSize {
    type Err = String;

    fn from_str(s: &str) -> Result<PacketSize, String> {
        if s.eq_ignore_ascii_case("imix") {
            return Ok(PacketSize::Imix);
        }
        match s.parse::<u16>() {
            Ok(size) if (MIN_SIZE..=MAX_SIZE).contains(&size) => Ok(PacketSize::Fixed(size)),
            _ => Err(format!(
                "packet size {s:?}: give `imix` or an inner IPv4 size from {MIN_SIZE} to {MAX_SIZE}"
            )),
        }
    }
}

impl std::fmt::Display for PacketSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketSize::Fixed(size) => write!(f, "{size}"),
            PacketSize::Imix => f.write_str("imix"),
        }
    }
}

/// An IPv4 address with a prefix length: `10.1.0.2/16` means the addresses from 10.1.0.2 to
/// the last host of 10.1.0.0/16.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Range {
    first: u32,
    last: u32,
}

impl Ipv4Range {
    /// How many addresses.
    pub fn len(&self) -> u32 {
        self.last - self.first + 1
    }

    /// Never empty (parsing refuses that); here for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `n`-th address, wrapping around.
    pub fn nth_wrapping(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.first + n % self.len())
    }
}

impl FromStr for Ipv4Range {
    type Err = String;

    fn from_str(s: &str) -> Result<Ipv4Range, String> {
        let bad = || format!("{s:?}: expected ADDRESS/PREFIX such as 10.1.0.2/16");
        let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        let prefix: u32 = prefix.parse().map_err(|_| bad())?;
        if prefix > 32 {
            return Err(bad());
        }
        let host_mask = u32::MAX.checked_shr(prefix).unwrap_or(0);
        let network = addr.to_bits() & !host_mask;
        let broadcast = network | host_mask;
        // /31 and /32 have no broadcast address to avoid (RFC 3021).
        let last = if prefix >= 31 {
            broadcast
        } else {
            broadcast - 1
        };
        let first = addr.to_bits();
        if first > last || (prefix < 31 && first == network) {
            return Err(format!(
                "{s:?}: the first address must be a host address of its network"
            ));
        }
        Ok(Ipv4Range { first, last })
    }
}

/// Parses an MPPE key length: 40 or 128.
pub fn parse_bits(s: &str) -> Result<u16, String> {
    match s {
        "40" => Ok(40),
        "128" => Ok(128),
        _ => Err(format!("{s:?}: MPPE key length is 40 or 128")),
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for octet in mac.iter_mut() {
        *octet = parts
            .next()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(|| format!("{s:?}: expected a MAC address such as 02:00:00:00:00:01"))?;
    }
    if parts.next().is_some() {
        return Err(format!("{s:?}: a MAC address has six octets"));
    }
    Ok(mac)
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct PcapConfig {
    pub sessions: u16,
    pub packets_per_session: u32,
    pub size: PacketSize,
    /// Keys derive from it (SHA-1 of a label, the seed and the session index).
    pub seed: u64,
    /// The concentrator's outer address (the clients' GRE destination).
    pub server: Ipv4Addr,
    /// The clients' outer addresses, one per session, wrapping around when fewer.
    pub client_net: Ipv4Range,
    /// The clients' tunnel addresses, one per session (no wrapping: the datapath keys
    /// downstream on them).
    pub tunnel_net: Ipv4Range,
    /// The inside host and UDP port every packet goes to.
    pub inside: SocketAddrV4,
    /// The concentrator NIC's MAC (Ethernet destination).
    pub dst_mac: [u8; 6],
    /// The generator port's MAC (Ethernet source).
    pub src_mac: [u8; 6],
    pub stateful: bool,
    /// 40 or 128.
    pub bits: u16,
}

/// One session of a sessions file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSpec {
    /// The concentrator's call ID (the one in the frames' GRE key field).
    pub server_call_id: u16,
    /// The client's call ID (the one the concentrator sends to).
    pub client_call_id: u16,
    /// The client's outer address (the frames' IPv4 source).
    pub client_address: Ipv4Addr,
    /// The client's tunnel address (the inner packets' source).
    pub client_tunnel_address: Ipv4Addr,
    /// The inner packets' UDP source port.
    pub udp_source_port: u16,
    /// Start key of the client-to-concentrator direction, hex.
    pub upstream_start_key: String,
    /// Start key of the concentrator-to-client direction, hex.
    pub downstream_start_key: String,
}

/// The sessions file: what `install` needs, and what a sink needs to check the payloads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionsFile {
    /// [`SESSIONS_FORMAT`].
    pub format: String,
    pub seed: u64,
    /// The concentrator's outer address.
    pub server: Ipv4Addr,
    /// Inside host and UDP port of every inner packet.
    pub inside: SocketAddrV4,
    /// 40 or 128.
    pub bits: u16,
    pub stateful: bool,
    /// `64`, `1400`, `imix`, ...
    pub size: String,
    pub packets_per_session: u32,
    /// Session `i` sends the payloads tagged with index `i`.
    pub sessions: Vec<SessionSpec>,
}

fn key_hex(key: &StartKey) -> String {
    hex::encode(key.0)
}

fn derive_key(seed: u64, index: u32, direction: &[u8]) -> StartKey {
    let mut sha = openssl::sha::Sha1::new();
    sha.update(b"xpptp-bench pcap start key");
    sha.update(&seed.to_be_bytes());
    sha.update(&index.to_be_bytes());
    sha.update(direction);
    let digest = sha.finish();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    StartKey(key)
}

impl SessionsFile {
    fn strength(&self) -> Result<MppeStrength, String> {
        match self.bits {
            40 => Ok(MppeStrength::Bits40),
            128 => Ok(MppeStrength::Bits128),
            other => Err(format!("bits {other}: only 40 and 128")),
        }
    }

    fn mode(&self) -> MppeMode {
        if self.stateful {
            MppeMode::Stateful
        } else {
            MppeMode::Stateless
        }
    }

    /// The packet size rule.
    pub fn packet_size(&self) -> Result<PacketSize, String> {
        self.size.parse()
    }

    fn key_state(&self, hex_key: &str) -> Result<MppeKeyState, String> {
        let bytes = hex::decode(hex_key).map_err(|e| format!("start key {hex_key:?}: {e}"))?;
        let start_key: [u8; 16] = bytes
            .try_into()
            .map_err(|_| format!("start key {hex_key:?}: needs 16 octets"))?;
        Ok(MppeKeyState {
            strength: self.strength()?,
            mode: self.mode(),
            start_key: StartKey(start_key),
        })
    }

    /// Checks what [`Self::established`] and the generator rely on.
    pub fn validate(&self) -> Result<(), String> {
        if self.format != SESSIONS_FORMAT {
            return Err(format!(
                "format {:?}, expected {SESSIONS_FORMAT:?}",
                self.format
            ));
        }
        self.strength()?;
        self.packet_size()?;
        for (i, s) in self.sessions.iter().enumerate() {
            if s.server_call_id == 0 || s.client_call_id == 0 {
                return Err(format!("session {i}: call ID 0 is reserved"));
            }
            self.key_state(&s.upstream_start_key)
                .and(self.key_state(&s.downstream_start_key))
                .map_err(|e| format!("session {i}: {e}"))?;
        }
        Ok(())
    }

    /// What the session looks like from `role`'s end: the concentrator's (to install) or
    /// the client's (to generate its frames).
    pub fn established(&self, session: &SessionSpec, role: Role) -> Result<Established, String> {
        let up = self.key_state(&session.upstream_start_key)?;
        let down = self.key_state(&session.downstream_start_key)?;
        let (local_call_id, peer_call_id, peer_address, transmit, receive, next_seq) = match role {
            Role::Server => (
                session.server_call_id,
                session.client_call_id,
                session.client_address,
                down,
                up,
                1,
            ),
            Role::Client => (
                session.client_call_id,
                session.server_call_id,
                self.server,
                up,
                down,
                FIRST_SEQ,
            ),
        };
        Ok(Established {
            role,
            local_call_id,
            peer_call_id,
            peer_address,
            peer_recv_window: 64,
            user: (role == Role::Server)
                .then(|| format!("bench-{}", session.server_call_id).into_bytes()),
            auth_method: None,
            client_tunnel_address: session.client_tunnel_address,
            server_tunnel_address: None,
            name_servers: NameServers::default(),
            transmit: Some(transmit),
            receive: Some(receive),
            gre: GreSnapshot {
                local_call_id,
                peer_call_id,
                next_seq,
                peer_acked: next_seq.wrapping_sub(1),
                ack_owed: None,
                recv_highest: None,
                peer_recv_window: 64,
            },
            peer_mru: MRU,
            our_mru: MRU,
            mtu: MAX_SIZE,
            acfc: true,
            pfc: true,
        })
    }

    /// The inner IPv4/UDP packet session `index` sends as its `packet`-th, `size` octets:
    /// checksums filled, payload tagged (magic, session index, packet index) and then a
    /// pattern of both.
    pub fn inner_packet(&self, index: u32, packet: u32, size: u16) -> Option<Vec<u8>> {
        let session = self.sessions.get(usize::try_from(index).ok()?)?;
        if !(MIN_SIZE..=MAX_SIZE).contains(&size) {
            return None;
        }
        let mut p = vec![0u8; usize::from(size)];
        let udp_len = size - 20;
        let (header, udp) = p.split_at_mut(20);
        let repr = Ipv4Repr {
            src_addr: session.client_tunnel_address,
            dst_addr: *self.inside.ip(),
            protocol: IpProtocol::Udp,
            payload_len: usize::from(udp_len),
            ttl: 64,
            dscp_ecn: 0,
            ident: 0,
            dont_frag: false,
        };
        Ipv4Template::new(&repr)
            .emit(header, usize::from(udp_len), packet as u16)
            .ok()?;
        udp[0..2].copy_from_slice(&session.udp_source_port.to_be_bytes());
        udp[2..4].copy_from_slice(&self.inside.port().to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        let payload = udp.get_mut(8..)?;
        payload[..4].copy_from_slice(&PAYLOAD_MAGIC);
        payload[4..8].copy_from_slice(&index.to_be_bytes());
        payload[8..12].copy_from_slice(&packet.to_be_bytes());
        let mut v = (index as u8).wrapping_mul(31) ^ (packet as u8);
        for b in payload.iter_mut().skip(12) {
            *b = v;
            v = v.wrapping_add(7);
        }
        let sum = checksum::combine(&[
            checksum::pseudo_header_v4(
                session.client_tunnel_address,
                *self.inside.ip(),
                IpProtocol::Udp,
                udp_len,
            ),
            checksum::data(udp),
        ]);
        // RFC 768: a computed 0 is sent as all ones.
        let stored = match !sum {
            0 => 0xffff,
            c => c,
        };
        udp[6..8].copy_from_slice(&stored.to_be_bytes());
        Some(p)
    }
}

/// Reads and validates a sessions file.
pub fn read_sessions(path: &Path) -> Result<SessionsFile, PcapError> {
    let text = std::fs::read_to_string(path).map_err(|source| PcapError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_sessions(&text).map_err(|detail| PcapError::BadSessions {
        path: path.to_owned(),
        detail,
    })
}

/// Parses and validates the text of a sessions file; the error says what is wrong.
pub fn parse_sessions(text: &str) -> Result<SessionsFile, String> {
    let file: SessionsFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    file.validate()?;
    Ok(file)
}

/// Where a generated frame belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Session index in [`SessionsFile::sessions`].
    pub session: u32,
    /// Packet index within the session (0 first).
    pub packet: u32,
    /// Frame index in the whole capture.
    pub frame: u64,
}

/// The sessions of `config` (keys, call IDs, addresses), without generating frames.
pub fn sessions(config: &PcapConfig) -> Result<SessionsFile, PcapError> {
    if config.sessions == 0 {
        return Err(PcapError::Config("at least one session".into()));
    }
    if config.bits != 40 && config.bits != 128 {
        return Err(PcapError::Config(format!(
            "--bits {}: MPPE keys here are 40 or 128 bits",
            config.bits
        )));
    }
    if u32::from(config.sessions) > config.tunnel_net.len() {
        return Err(PcapError::Config(format!(
            "{} sessions need as many tunnel addresses; --tunnel-net has {}",
            config.sessions,
            config.tunnel_net.len()
        )));
    }
    let sessions = (0..u32::from(config.sessions))
        .map(|i| {
            // 1..=65535: never the reserved call ID 0.
            let call_id = (i + 1) as u16;
            SessionSpec {
                server_call_id: call_id,
                client_call_id: call_id,
                client_address: config.client_net.nth_wrapping(i),
                client_tunnel_address: config.tunnel_net.nth_wrapping(i),
                udp_source_port: 10_000 + (i % 50_000) as u16,
                upstream_start_key: key_hex(&derive_key(config.seed, i, b"up")),
                downstream_start_key: key_hex(&derive_key(config.seed, i, b"down")),
            }
        })
        .collect();
    Ok(SessionsFile {
        format: SESSIONS_FORMAT.into(),
        seed: config.seed,
        server: config.server,
        inside: config.inside,
        bits: config.bits,
        stateful: config.stateful,
        size: config.size.to_string(),
        packets_per_session: config.packets_per_session,
        sessions,
    })
}

/// Generates the frames of `config`'s sessions, round-robin over the sessions, each in its
/// own order, and hands each to `sink`. Returns the sessions.
pub fn generate<E: From<PcapError>>(
    config: &PcapConfig,
    mut sink: impl FnMut(&FrameInfo, &[u8]) -> Result<(), E>,
) -> Result<SessionsFile, E> {
    let file = sessions(config)?;
    let mut clients = file
        .sessions
        .iter()
        .map(|s| {
            file.established(s, Role::Client)
                .map(|est| CallState::from_established(&est, s.client_address))
                .map_err(PcapError::Config)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let l2 = L2Header::ethernet(config.dst_mac, config.src_mac);
    let mut buf = vec![0u8; ENCAP_HEADROOM + usize::from(MAX_SIZE)];
    let mut frame = 0u64;
    for packet in 0..config.packets_per_session {
        let size = config.size.of(packet);
        for (session, client) in (0u32..).zip(clients.iter_mut()) {
            let inner = file
                .inner_packet(session, packet, size)
                .ok_or_else(|| PcapError::Config(format!("packet size {size}")))?;
            let end = ENCAP_HEADROOM + inner.len();
            buf[ENCAP_HEADROOM..end].copy_from_slice(&inner);
            let verdict = encap(
                &client.config,
                &mut client.downstream,
                &client.acks,
                &l2,
                &mut buf,
                ENCAP_HEADROOM..end,
                false,
            );
            let range = match verdict {
                EncapVerdict::Send { frame } => frame,
                EncapVerdict::Drop(reason) => return Err(PcapError::Encap(reason).into()),
            };
            let info = FrameInfo {
                session,
                packet,
                frame,
            };
            sink(&info, &buf[range])?;
            frame += 1;
        }
    }
    Ok(file)
}

/// What [`write_files`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub frames: u64,
    pub bytes: u64,
}

/// Writes the pcap (Ethernet link type, [`FRAME_SPACING`] apart) and the sessions file.
pub fn write_files(
    config: &PcapConfig,
    pcap_path: &Path,
    sessions_path: &Path,
) -> Result<Written, PcapError> {
    let pcap_error = |source| PcapError::Pcap {
        path: pcap_path.to_owned(),
        source,
    };
    let file = File::create(pcap_path).map_err(|source| PcapError::Write {
        path: pcap_path.to_owned(),
        source,
    })?;
    let header = PcapHeader {
        datalink: DataLink::ETHERNET,
        ..PcapHeader::default()
    };
    let mut writer = PcapWriter::with_header(BufWriter::new(file), header).map_err(pcap_error)?;
    let mut written = Written {
        frames: 0,
        bytes: 0,
    };
    let sessions = generate(config, |info, bytes| {
        let ts = FRAME_SPACING.saturating_mul(u32::try_from(info.frame).unwrap_or(u32::MAX));
        let len = bytes.len() as u32;
        writer
            .write_packet(&PcapPacket::new(ts, len, bytes))
            .map_err(pcap_error)?;
        written.frames += 1;
        written.bytes += u64::from(len);
        Ok::<(), PcapError>(())
    })?;
    writer
        .into_writer()
        .flush()
        .map_err(|source| PcapError::Write {
            path: pcap_path.to_owned(),
            source,
        })?;
    let json = serde_json::to_string_pretty(&sessions)
        .map_err(|e| PcapError::Config(format!("sessions JSON: {e}")))?;
    std::fs::write(sessions_path, json + "\n").map_err(|source| PcapError::Write {
        path: sessions_path.to_owned(),
        source,
    })?;
    Ok(written)
}

/// The name the command socket's log shows for these connections.
const CLIENT_NAME: &str = "xpptp-bench install";

/// Establishes every session of `file` in the datapath listening on `socket`, replacing
/// calls with the same call IDs (so installing again resets their GRE numbering and MPPE
/// for the next replay). Returns how many were installed.
pub fn install(file: &SessionsFile, socket: &Path) -> Result<usize, InstallError> {
    let (mut client, _hello) = Client::connect(socket, CLIENT_NAME, false)?;
    for (index, session) in file.sessions.iter().enumerate() {
        let call = file
            .established(session, Role::Server)
            .map_err(|detail| PcapError::Config(format!("session {index}: {detail}")))?;
        let reply = client.request(Message::Establish(Box::new(Establish {
            call,
            replace: true,
        })))?;
        match reply {
            Message::Done => {}
            Message::Failed(f) => {
                return Err(InstallError::Refused {
                    index,
                    call_id: session.server_call_id,
                    client: session.client_address,
                    code: f.code,
                    detail: f.detail,
                });
            }
            other => {
                return Err(InstallError::Unexpected {
                    request: "Establish",
                    reply: Box::new(other),
                });
            }
        }
    }
    tracing::info!(sessions = file.sessions.len(), socket = %socket.display(), "sessions installed");
    Ok(file.sessions.len())
}

/// Removes every session of `file` from the datapath; calls already gone are skipped.
/// Returns how many were removed.
pub fn uninstall(file: &SessionsFile, socket: &Path) -> Result<usize, InstallError> {
    let (mut client, _hello) = Client::connect(socket, CLIENT_NAME, false)?;
    let mut removed = 0;
    for (index, session) in file.sessions.iter().enumerate() {
        let reply = client.request(Message::Remove(Remove {
            call: session.server_call_id,
        }))?;
        match reply {
            Message::Done => removed += 1,
            Message::Failed(f) if f.code == FailureCode::NoSuchCall => {}
            Message::Failed(f) => {
                return Err(InstallError::Refused {
                    index,
                    call_id: session.server_call_id,
                    client: session.client_address,
                    code: f.code,
                    detail: f.detail,
                });
            }
            other => {
                return Err(InstallError::Unexpected {
                    request: "Remove",
                    reply: Box::new(other),
                });
            }
        }
    }
    tracing::info!(removed, socket = %socket.display(), "sessions removed");
    Ok(removed)
}

/// `xpptp-bench pcap`: writes the upstream traffic of test-keyed sessions and their state.
#[derive(Debug, clap::Args)]
pub struct PcapArgs {
    /// Number of sessions (call IDs 1..=N).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub sessions: u16,
    /// Packets each session sends.
    #[arg(long)]
    pub packets_per_session: u32,
    /// Inner IPv4 packet size: 64, 512, 1400, any size from 40 to 1460, or imix
    /// (7 x 64, 4 x 576, 1 x 1400).
    #[arg(long, default_value = "64")]
    pub size: PacketSize,
    /// The pcap to write.
    #[arg(long)]
    pub out: PathBuf,
    /// The sessions file to write (for `xpptp-bench install`).
    #[arg(long)]
    pub sessions_out: PathBuf,
    /// Keys derive from this seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The concentrator's outer address.
    #[arg(long, default_value = "198.51.100.1")]
    pub server: Ipv4Addr,
    /// Client outer addresses: from this address to the network's last host, one per
    /// session, wrapping around.
    #[arg(long, default_value = "198.51.100.2/24")]
    pub client_net: Ipv4Range,
    /// Client tunnel addresses, one per session (at least as many as sessions).
    #[arg(long, default_value = "10.8.0.2/16")]
    pub tunnel_net: Ipv4Range,
    /// The inside host and UDP port the inner packets go to.
    #[arg(long, default_value = "198.18.0.1:5001")]
    pub inside: SocketAddrV4,
    /// Ethernet destination: the concentrator NIC's MAC.
    #[arg(long, default_value = "02:00:00:00:00:01", value_parser = parse_mac)]
    pub dst_mac: [u8; 6],
    /// Ethernet source: the generator port's MAC.
    #[arg(long, default_value = "02:00:00:00:00:02", value_parser = parse_mac)]
    pub src_mac: [u8; 6],
    /// Stateful MPPE (default: stateless, a key change per packet).
    #[arg(long)]
    pub stateful: bool,
    /// MPPE key length.
    #[arg(long, default_value_t = 128, value_parser = parse_bits)]
    pub bits: u16,
}

impl PcapArgs {
    /// The generator settings these arguments give.
    pub fn config(&self) -> PcapConfig {
        PcapConfig {
            sessions: self.sessions,
            packets_per_session: self.packets_per_session,
            size: self.size,
            seed: self.seed,
            server: self.server,
            client_net: self.client_net,
            tunnel_net: self.tunnel_net,
            inside: self.inside,
            dst_mac: self.dst_mac,
            src_mac: self.src_mac,
            stateful: self.stateful,
            bits: self.bits,
        }
    }
}

/// Runs `xpptp-bench pcap`.
pub fn run(args: &PcapArgs) -> anyhow::Result<()> {
    let written = write_files(&args.config(), &args.out, &args.sessions_out)?;
    println!(
        "wrote {} frames ({} octets) to {} and {} sessions to {}; install them with \
         `xpptp-bench install {}` before every replay",
        written.frames,
        written.bytes,
        args.out.display(),
        args.sessions,
        args.sessions_out.display(),
        args.sessions_out.display()
    );
    Ok(())
}

/// `xpptp-bench install` / `uninstall`: the sessions of a sessions file in a running
/// xpptp-datapath.
#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    /// The sessions file `xpptp-bench pcap --sessions-out` wrote.
    pub file: PathBuf,
    /// The datapath's command socket.
    #[arg(long, default_value = "/run/xpptp/datapath.sock")]
    pub socket: PathBuf,
}

/// Runs `xpptp-bench install`.
pub fn run_install(args: &InstallArgs) -> anyhow::Result<()> {
    let file = read_sessions(&args.file)?;
    let n = install(&file, &args.socket)?;
    println!("installed {n} sessions");
    Ok(())
}

/// Runs `xpptp-bench uninstall`.
pub fn run_uninstall(args: &InstallArgs) -> anyhow::Result<()> {
    let file = read_sessions(&args.file)?;
    let n = uninstall(&file, &args.socket)?;
    println!("removed {n} sessions");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use xpptp_datapath::packet::{DecapVerdict, decap};
    use xpptp_proto::wire::ipv4::Ipv4Packet;

    use super::*;

    fn config(size: PacketSize, stateful: bool, bits: u16) -> PcapConfig {
        PcapConfig {
            sessions: 5,
            packets_per_session: 300,
            size,
            seed: 7,
            server: Ipv4Addr::new(192, 168, 77, 1),
            client_net: "192.168.77.2/30".parse().unwrap(),
            tunnel_net: "10.8.0.2/24".parse().unwrap(),
            inside: "198.18.0.1:5001".parse().unwrap(),
            dst_mac: [2, 0, 0, 0, 0, 1],
            src_mac: [2, 0, 0, 0, 0, 2],
            stateful,
            bits,
        }
    }

    /// Every frame of a written pcap decapsulates, with the concentrator's state built from
    /// the written sessions file alone, to exactly the expected inner packet (TTL one
    /// less), in every mode. Frames are matched to sessions by their GRE call ID and
    /// counted per session, as the concentrator sees them.
    #[test]
    fn every_frame_of_a_written_pcap_decapsulates_to_the_expected_inner_packet() {
        let dir = std::env::temp_dir().join(format!("xpptp-bench-decap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (size, stateful, bits) in [
            (PacketSize::Fixed(64), false, 128),
            (PacketSize::Fixed(1400), true, 128),
            (PacketSize::Imix, false, 40),
            (PacketSize::Imix, true, 40),
        ] {
            let config = config(size, stateful, bits);
            let (pcap, json) = (dir.join("d.pcap"), dir.join("d.json"));
            write_files(&config, &pcap, &json).unwrap();
            let file = read_sessions(&json).unwrap();
            let mut servers: Vec<(CallState, u32)> = file
                .sessions
                .iter()
                .map(|s| {
                    let est = file.established(s, Role::Server).unwrap();
                    (CallState::from_established(&est, file.server), 0)
                })
                .collect();
            let mut reader = pcap_file::pcap::PcapReader::new(File::open(&pcap).unwrap()).unwrap();
            let mut frames = 0u64;
            while let Some(packet) = reader.next_packet() {
                let bytes = packet.unwrap().data;
                let label = format!("frame {frames} ({size}, stateful {stateful}, {bits}-bit)");
                assert_eq!(&bytes[..6], &config.dst_mac);
                assert_eq!(&bytes[6..12], &config.src_mac);
                // The GRE key's call ID names the session (call IDs are index + 1).
                let call_id = u16::from_be_bytes([bytes[14 + 20 + 6], bytes[14 + 20 + 7]]);
                let session = u32::from(call_id) - 1;
                let (server, next) = &mut servers[session as usize];
                assert_eq!(server.config.local_call_id, call_id);
                let mut frame = bytes.to_vec();
                let verdict = decap(
                    &server.config,
                    &mut server.upstream,
                    &server.acks,
                    &mut frame,
                );
                let DecapVerdict::Forward { inner } = verdict else {
                    panic!("{label}: {verdict:?}");
                };
                let mut want = file.inner_packet(session, *next, size.of(*next)).unwrap();
                Ipv4Packet::new_unchecked(&mut want[..])
                    .decrement_ttl()
                    .unwrap();
                assert_eq!(&frame[inner], &want[..], "{label}");
                *next += 1;
                frames += 1;
            }
            assert_eq!(frames, 5 * 300);
            for (s, next) in &servers {
                assert_eq!((s.upstream.counters.packets, *next), (300, 300));
                assert_eq!(s.upstream.counters.dropped, 0);
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_same_settings_give_the_same_bytes_and_another_seed_other_keys() {
        let c = config(PacketSize::Fixed(64), false, 128);
        let collect = |c: &PcapConfig| {
            let mut all = Vec::new();
            let file = generate(c, |_, b| {
                all.push(b.to_vec());
                Ok::<(), PcapError>(())
            })
            .unwrap();
            (file, all)
        };
        let (file_a, a) = collect(&c);
        let (file_b, b) = collect(&c);
        assert_eq!((file_a.clone(), a.clone()), (file_b, b));
        let other = PcapConfig { seed: 8, ..c };
        let (file_c, cc) = collect(&other);
        assert_ne!(
            file_a.sessions[0].upstream_start_key,
            file_c.sessions[0].upstream_start_key
        );
        assert_ne!(a, cc);
    }

    #[test]
    fn addresses_wrap_over_the_client_net_and_not_over_the_tunnel_net() {
        let c = config(PacketSize::Fixed(64), false, 128);
        let file = sessions(&c).unwrap();
        let clients: Vec<_> = file.sessions.iter().map(|s| s.client_address).collect();
        // 192.168.77.2/30 holds .2 only (.3 is the broadcast address).
        assert!(clients.iter().all(|a| *a == Ipv4Addr::new(192, 168, 77, 2)));
        assert_eq!(
            file.sessions[4].client_tunnel_address,
            Ipv4Addr::new(10, 8, 0, 6)
        );
        let small = PcapConfig {
            tunnel_net: "10.8.0.253/24".parse().unwrap(),
            ..c
        };
        assert!(matches!(sessions(&small), Err(PcapError::Config(_))));
    }

    #[test]
    fn inner_packets_have_valid_checksums_and_tagged_payloads() {
        let file = sessions(&config(PacketSize::Imix, false, 128)).unwrap();
        for size in [MIN_SIZE, 64, 576, 1400, MAX_SIZE] {
            let p = file.inner_packet(3, 77, size).unwrap();
            let ip = Ipv4Packet::new_checked(&p[..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(usize::from(ip.total_len()), usize::from(size));
            let udp = ip.payload();
            let sum = checksum::combine(&[
                checksum::pseudo_header_v4(
                    ip.src_addr(),
                    ip.dst_addr(),
                    IpProtocol::Udp,
                    size - 20,
                ),
                checksum::data(udp),
            ]);
            assert_eq!(sum, 0xffff, "UDP checksum of size {size}");
            assert_eq!(&udp[8..12], &PAYLOAD_MAGIC);
            assert_eq!(&udp[12..16], &3u32.to_be_bytes());
            assert_eq!(&udp[16..20], &77u32.to_be_bytes());
        }
        assert_eq!(file.inner_packet(3, 0, MIN_SIZE - 1), None);
        assert_eq!(file.inner_packet(5, 0, 64), None, "no session 5");
    }

    #[test]
    fn options_parse_and_refuse_with_the_fix() {
        assert_eq!("imix".parse::<PacketSize>(), Ok(PacketSize::Imix));
        assert_eq!("512".parse::<PacketSize>(), Ok(PacketSize::Fixed(512)));
        assert!("1500".parse::<PacketSize>().unwrap_err().contains("1460"));
        assert_eq!(
            parse_mac("02:00:00:aa:bb:0f"),
            Ok([2, 0, 0, 0xaa, 0xbb, 0x0f])
        );
        assert!(parse_mac("02:00:00:aa:bb").is_err());
        assert!(parse_mac("02:00:00:aa:bb:0f:01").is_err());
        assert!(
            "10.0.0.0/24".parse::<Ipv4Range>().is_err(),
            "network address"
        );
        assert_eq!("10.0.0.1/32".parse::<Ipv4Range>().unwrap().len(), 1);
        assert_eq!("10.0.0.1/24".parse::<Ipv4Range>().unwrap().len(), 254);
        assert!("10.0.0.1/33".parse::<Ipv4Range>().is_err());
    }

    #[test]
    fn sessions_files_round_trip_and_bad_ones_name_the_problem() {
        let dir = std::env::temp_dir().join(format!("xpptp-bench-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let c = PcapConfig {
            packets_per_session: 3,
            ..config(PacketSize::Fixed(512), true, 40)
        };
        let (pcap, json) = (dir.join("t.pcap"), dir.join("t.json"));
        let written = write_files(&c, &pcap, &json).unwrap();
        assert_eq!(written.frames, 15);
        let file = read_sessions(&json).unwrap();
        assert_eq!(file, sessions(&c).unwrap());
        let mut reader = pcap_file::pcap::PcapReader::new(File::open(&pcap).unwrap()).unwrap();
        let mut n = 0;
        while let Some(p) = reader.next_packet() {
            let p = p.unwrap();
            assert_eq!(p.timestamp, FRAME_SPACING * n);
            n += 1;
        }
        assert_eq!(n, 15);

        let mut broken = file.clone();
        broken.sessions[1].upstream_start_key = "abcd".into();
        std::fs::write(&json, serde_json::to_string(&broken).unwrap()).unwrap();
        let err = read_sessions(&json).unwrap_err().to_string();
        assert!(
            err.contains("session 1") && err.contains("16 octets"),
            "{err}"
        );
        std::fs::write(&json, "{}").unwrap();
        assert!(matches!(
            read_sessions(&json),
            Err(PcapError::BadSessions { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
