//! One PPP link through its phases (RFC 1661 §3.2: Dead, Establish, Authenticate, Network,
//! Terminate), server and client roles.
//!
//! A [`Link`] owns the LCP automaton ([`Lcp`]), the authentication machine of the negotiated
//! method (an [`auth::Server`] or [`auth::Client`]), and the IPCP and CCP automata. It takes
//! whole PPP frames (as GRE carries them: address/control optional, the protocol field
//! compressed or not, [`PppFrame`]) and gives whole PPP frames back, with the header the
//! negotiated ACFC/PFC allow (LCP always with `ff 03` and a two-octet protocol).
//!
//! # Phases and demultiplexing
//!
//! * LCP is taken in every phase but Dead.
//! * PAP and CHAP from the Authenticate phase on (the authenticator keeps answering a
//!   repeated Response after its verdict, as [`auth::Server`] documents); before it they are
//!   dropped and counted (the peer retransmits).
//! * IPCP and CCP in the Network phase only (RFC 1661 §3.5); before it they are dropped.
//! * IPv4, Van Jacobson and MPPE datagrams are never ours: before the link is up they are
//!   dropped (RFC 1661 §2: network-layer packets before their NCP is Opened), after it they
//!   belong to the datapath. Both are counted.
//! * Everything else (IPV6CP, CBCP, BACP, BAP, ECP, Multilink, IPv6, unknown protocols)
//!   gets an LCP Protocol-Reject (RFC 1661 §5.7) while LCP is Opened, its information cut
//!   to fit the peer's MRU; while LCP is not Opened it is dropped.
//!
//! # Life
//!
//! [`Link::open`] starts LCP (the PPTP call is the lower layer, already up). When LCP opens
//! with an authentication method, the [`Authenticate`](Phase::Authenticate) phase runs it;
//! on success the MPPE keys of MS-CHAP are kept and IPCP and CCP start together. The link
//! is up ([`LinkEvent::Up`]) when IPCP is Opened and, with MPPE required, CCP is Opened
//! with MPPE in both directions; with MPPE optional or denied, when CCP has settled either
//! way. Any failure (authentication, MPPE refused, no address, no convergence, echo
//! failure, the peer's Terminate-Request, [`Link::close`]) enters the Terminate phase with
//! a [`Cause`]; [`LinkEvent::Down`] comes out when LCP has finished (Terminate-Ack received,
//! or Max-Terminate timeouts), or at once on [`Link::lower_down`]. A link is used once: it
//! stays Dead after Down.
//!
//! # Calling order (quinn-proto style)
//!
//! After every input ([`open`](Link::open), [`handle_frame`](Link::handle_frame),
//! [`handle_timeout`](Link::handle_timeout), [`close`](Link::close),
//! [`lower_down`](Link::lower_down), [`provide_secret`](Link::provide_secret),
//! [`send_reset_request`](Link::send_reset_request)): drain
//! [`poll_transmit`](Link::poll_transmit), then [`poll_event`](Link::poll_event), then
//! re-arm the timer from [`poll_timeout`](Link::poll_timeout). Both queues are bounded
//! ([`MAX_QUEUED_FRAMES`], [`MAX_QUEUED_EVENTS`]); what does not fit is dropped and counted
//! in [`LinkStats::queue_overflows`].
//!
//! # Randomness
//!
//! No random generator runs inside: the caller gives [`LinkRandom`] (LCP's Magic-Number
//! seed and the authentication [`Nonces`]), usually from 32 random octets with
//! [`LinkRandom::from_seed`].

use core::fmt;
use core::net::Ipv4Addr;
use std::collections::VecDeque;
use std::time::Instant;

use sha1::{Digest, Sha1};

use super::auth::{
    self, AuthPolicy, LookupId, Method, Nonces, SecretAnswer, SecretLookup, Transmit,
};
use super::ccp::{CcpEvent, CcpNegotiator, CcpResult, MppeDirection, MppePolicy, MppeRequirement};
use super::fsm::{Event, Failure, Fsm, FsmConfig, State};
use super::ipcp::{
    AddressAssigner, IpcpClientConfig, IpcpEvent, IpcpNegotiator, IpcpResult, IpcpServerConfig,
};
use super::lcp::{Lcp, LcpConfig, LcpEvent, LcpNegotiated};
use crate::crypto::mppe_keys::SessionKeys;
use crate::session::Cause;
use crate::wire::cp::Code;
use crate::wire::ppp::{PppFrame, PppHeader, Protocol};

/// At most this many frames wait for [`Link::poll_transmit`].
pub const MAX_QUEUED_FRAMES: usize = 64;
/// At most this many events wait for [`Link::poll_event`].
pub const MAX_QUEUED_EVENTS: usize = 16;

/// Which end of the link this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The concentrator: requires authentication, assigns the peer's address.
    Server,
    /// The dialling end (pptp-linux, Windows, the bench's emulator).
    Client,
}

/// The phases of RFC 1661 §3.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Not started, or over.
    Dead,
    /// LCP negotiates.
    Establish,
    /// The negotiated method runs.
    Authenticate,
    /// IPCP and CCP negotiate, and then carry on (the link is up once they are Opened).
    Network,
    /// LCP terminates; [`LinkEvent::Down`] follows.
    Terminate,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Dead => "dead",
            Phase::Establish => "establish",
            Phase::Authenticate => "authenticate",
            Phase::Network => "network",
            Phase::Terminate => "terminate",
        })
    }
}

/// The caller's randomness for one link.
#[derive(Debug, Clone)]
pub struct LinkRandom {
    /// Seeds LCP's Magic-Numbers.
    pub magic_seed: u64,
    /// The authentication machine's identifier, challenge(s) and Peer-Challenge(s).
    pub auth: Nonces,
    /// Secret key for the nonces of a second authentication, needed when LCP is
    /// renegotiated before the network phase (a lost final Configure-Ack does that).
    pub restart_key: [u8; 16],
}

impl LinkRandom {
    /// Expands 32 random octets deterministically (SHA-1 in counter mode): the same seed
    /// gives the same link, which tests and fuzzers rely on.
    pub fn from_seed(seed: [u8; 32]) -> LinkRandom {
        let mut stream = [0u8; 60];
        for (counter, chunk) in stream.chunks_mut(20).enumerate() {
            let digest = Sha1::new()
                .chain_update(b"xpptp link")
                .chain_update([counter as u8])
                .chain_update(seed)
                .finalize();
            chunk.copy_from_slice(&digest[..]);
        }
        let mut magic = [0u8; 8];
        magic.copy_from_slice(&stream[..8]);
        let mut nonces = [0u8; 33];
        nonces.copy_from_slice(&stream[8..41]);
        let mut restart_key = [0u8; 16];
        restart_key.copy_from_slice(&stream[41..57]);
        LinkRandom {
            magic_seed: u64::from_be_bytes(magic),
            auth: Nonces::from_random(nonces),
            restart_key,
        }
    }

    /// Nonces for the `n`th authentication after the first (SHA-1 of the restart key and
    /// `n`): as unpredictable as the key.
    fn restart_nonces(key: &[u8; 16], n: u32) -> Nonces {
        let mut random = [0u8; 33];
        for (block, chunk) in random.chunks_mut(20).enumerate() {
            let digest = Sha1::new()
                .chain_update(key)
                .chain_update(n.to_be_bytes())
                .chain_update([block as u8])
                .finalize();
            let len = chunk.len();
            chunk.copy_from_slice(&digest[..len]);
        }
        Nonces::from_random(random)
    }
}

/// The server role's settings; `Default` is Poptop's shipped configuration (MS-CHAPv2
/// only, `require-mppe-128`, pppd's timers), without addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServerConfig {
    /// LCP (pppd `mru`, `lcp-echo-interval`, ...). Its `auth_require` and `auth_accept`
    /// are replaced from [`auth`](Self::auth): the server requires, and accepts nothing.
    pub lcp: LcpConfig,
    /// Methods the peer may authenticate with (pppd `require-mschap-v2`, `refuse-pap`...).
    /// Empty: no authentication (pppd `noauth`); MPPE then cannot be had.
    pub auth: AuthPolicy,
    /// The authenticator (pppd `name`, `chap-restart`, ...).
    pub authenticator: auth::ServerConfig,
    /// IPCP (pptpd `localip`, pppd `ms-dns`, `ms-wins`).
    pub ipcp: IpcpServerConfig,
    /// MPPE (pppd `require-mppe-128`, `mppe-stateful`, ...).
    pub mppe: MppePolicy,
    /// IPCP and CCP timers and counters (pppd `ipcp-restart`, `ipcp-max-configure`, ...).
    pub ncp_fsm: FsmConfig,
}

/// The client role's settings; `Default` is pptp-linux's pppd with Debian's options
/// (any method, `require-mppe-128`), without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// LCP. Its `auth_require` and `auth_accept` are replaced from
    /// [`auth`](Self::auth): the client accepts, and requires nothing.
    pub lcp: LcpConfig,
    /// Methods we agree to authenticate with (pppd `refuse-*`).
    pub auth: AuthPolicy,
    /// Our credentials and retransmission settings (pppd `user`, `password`).
    pub credentials: auth::ClientConfig,
    /// IPCP (pppd `usepeerdns`, `noipdefault`).
    pub ipcp: IpcpClientConfig,
    /// MPPE.
    pub mppe: MppePolicy,
    /// IPCP and CCP timers and counters.
    pub ncp_fsm: FsmConfig,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            lcp: LcpConfig::default(),
            auth: AuthPolicy::all(),
            credentials: auth::ClientConfig::default(),
            ipcp: IpcpClientConfig::default(),
            mppe: MppePolicy::default(),
            ncp_fsm: FsmConfig::default(),
        }
    }
}

/// MPPE as it runs once the link is up: per direction, from this end's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppeUp {
    /// How we encrypt what we send.
    pub transmit: MppeDirection,
    /// How the peer encrypts what we receive.
    pub receive: MppeDirection,
    /// The start keys (`send` for `transmit`, `receive` for `receive`).
    pub keys: SessionKeys,
}

/// Everything the link negotiated, reported once with [`LinkEvent::Up`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkUp {
    /// Our role.
    pub role: Role,
    /// The authenticated user name (server: the peer's; client: ours), if any method ran.
    pub user: Option<Vec<u8>>,
    /// The method that ran.
    pub auth_method: Option<Method>,
    /// LCP's outcome: MRU each way, ACFC/PFC each way, magic numbers.
    pub lcp: LcpNegotiated,
    /// IPCP's outcome: both tunnel addresses, the name servers given or got.
    pub ipcp: IpcpResult,
    /// MPPE, if CCP agreed on it in both directions.
    pub mppe: Option<MppeUp>,
}

impl LinkUp {
    /// The client's tunnel address: the peer's on the server, ours on the client.
    pub fn client_address(&self) -> Option<Ipv4Addr> {
        match self.role {
            Role::Server => self.ipcp.peer_address,
            Role::Client => self.ipcp.local_address,
        }
    }

    /// The server's tunnel address.
    pub fn server_address(&self) -> Option<Ipv4Addr> {
        match self.role {
            Role::Server => self.ipcp.local_address,
            Role::Client => self.ipcp.peer_address,
        }
    }
}

/// What the layer above learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Authentication succeeded (server: the peer is `user`; client: we are).
    Authenticated {
        /// The user name.
        user: Vec<u8>,
        /// The method.
        method: Method,
    },
    /// The link is up: data may flow. Reported again after the peer renegotiated IPCP or
    /// CCP (MPPE then restarts from its start keys): the layer above replaces what it had.
    Up(Box<LinkUp>),
    /// The peer's CCP Reset-Request (answered already): the datapath's encryptor must
    /// flush its next packet (stateful MPPE).
    ResetRequested,
    /// The link is over.
    Down(Cause),
}

/// Counters of what the link dropped or refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Frames received (well-formed PPP headers).
    pub frames_received: u64,
    /// Frames whose PPP header did not parse.
    pub malformed: u64,
    /// Control frames of a protocol not taken in the current phase (auth before
    /// Authenticate, NCPs before Network, anything after Terminate).
    pub out_of_phase: u64,
    /// Data frames (IPv4, VJ, MPPE): before the link is up, or handed to us after.
    pub data_frames: u64,
    /// Protocol-Rejects sent.
    pub protocol_rejects: u64,
    /// Frames of unknown protocols dropped because LCP was not Opened.
    pub unknown_dropped: u64,
    /// Frames or events dropped because the caller did not drain the queues.
    pub queue_overflows: u64,
}

/// The authentication machine of the negotiated method.
enum Authenticator {
    None,
    Server(auth::Server),
    Client(auth::Client),
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Authenticator::None => f.write_str("None"),
            Authenticator::Server(s) => s.fmt(f),
            Authenticator::Client(c) => c.fmt(f),
        }
    }
}

/// Role-specific settings, kept until the method is known.
enum RoleSide {
    Server {
        config: auth::ServerConfig,
        secrets: Box<dyn SecretLookup + Send>,
    },
    Client {
        config: auth::ClientConfig,
    },
}

impl fmt::Debug for RoleSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleSide::Server { config, .. } => f
                .debug_struct("Server")
                .field("name", &config.name)
                .finish_non_exhaustive(),
            RoleSide::Client { .. } => f.write_str("Client"),
        }
    }
}

/// One PPP link; see the [module documentation](self).
#[derive(Debug)]
pub struct Link {
    role: Role,
    phase: Phase,
    side: RoleSide,
    lcp: Lcp,
    auth: Authenticator,
    nonces: Option<Nonces>,
    restart_key: [u8; 16],
    auth_starts: u32,
    ipcp: Fsm<IpcpNegotiator>,
    ccp: Fsm<CcpNegotiator>,
    mppe: MppePolicy,
    user: Option<Vec<u8>>,
    method: Option<Method>,
    keys: Option<SessionKeys>,
    up: bool,
    cause: Option<Cause>,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
    protocol_reject_id: u8,
    stats: LinkStats,
}

impl Link {
    /// A server link. `secrets` answers for users, `assigner` gives the client's address
    /// (called at most once; giving it back is the caller's job, see
    /// [`assigned_address`](Self::assigned_address)).
    pub fn server(
        config: ServerConfig,
        secrets: Box<dyn SecretLookup + Send>,
        assigner: Box<dyn AddressAssigner + Send>,
        random: LinkRandom,
    ) -> Link {
        let mut lcp = config.lcp;
        lcp.auth_require = config.auth.allowed().map(Method::to_lcp).collect();
        lcp.auth_accept = Vec::new();
        let ipcp = IpcpNegotiator::server(config.ipcp, assigner);
        Link::new(
            Role::Server,
            RoleSide::Server {
                config: config.authenticator,
                secrets,
            },
            lcp,
            ipcp,
            config.mppe,
            config.ncp_fsm,
            random,
        )
    }

    /// A client link.
    pub fn client(config: ClientConfig, random: LinkRandom) -> Link {
        let mut lcp = config.lcp;
        lcp.auth_accept = config.auth.allowed().map(Method::to_lcp).collect();
        lcp.auth_require = Vec::new();
        let ipcp = IpcpNegotiator::client(config.ipcp);
        Link::new(
            Role::Client,
            RoleSide::Client {
                config: config.credentials,
            },
            lcp,
            ipcp,
            config.mppe,
            config.ncp_fsm,
            random,
        )
    }

    fn new(
        role: Role,
        side: RoleSide,
        lcp: LcpConfig,
        ipcp: IpcpNegotiator,
        mppe: MppePolicy,
        ncp_fsm: FsmConfig,
        random: LinkRandom,
    ) -> Link {
        Link {
            role,
            phase: Phase::Dead,
            side,
            lcp: Lcp::new(lcp, random.magic_seed),
            auth: Authenticator::None,
            nonces: Some(random.auth),
            restart_key: random.restart_key,
            auth_starts: 0,
            ipcp: Fsm::new(ipcp, ncp_fsm),
            ccp: Fsm::new(CcpNegotiator::new(mppe), ncp_fsm),
            mppe,
            user: None,
            method: None,
            keys: None,
            up: false,
            cause: None,
            out: VecDeque::new(),
            events: VecDeque::new(),
            protocol_reject_id: 0,
            stats: LinkStats::default(),
        }
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Whether [`LinkEvent::Up`] has been reported (and Down not yet).
    pub fn is_up(&self) -> bool {
        self.up && self.phase == Phase::Network
    }

    /// Why the link ends, once that is decided.
    pub fn cause(&self) -> Option<&Cause> {
        self.cause.as_ref()
    }

    /// The authenticated user, once known.
    pub fn user(&self) -> Option<&[u8]> {
        self.user.as_deref()
    }

    /// LCP (state, statistics, negotiated values).
    pub fn lcp(&self) -> &Lcp {
        &self.lcp
    }

    /// The IPCP automaton.
    pub fn ipcp(&self) -> &Fsm<IpcpNegotiator> {
        &self.ipcp
    }

    /// The CCP automaton.
    pub fn ccp(&self) -> &Fsm<CcpNegotiator> {
        &self.ccp
    }

    /// Server: the address the assigner gave the client, which the caller must give back
    /// when the link ends (also when IPCP never came up).
    pub fn assigned_address(&self) -> Option<Ipv4Addr> {
        self.ipcp.negotiator().assigned_address()
    }

    /// Counters.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// Starts the link: the lower layer (the PPTP call) is up, LCP opens and sends its
    /// Configure-Request. Only from the Dead phase of a new link.
    pub fn open(&mut self, now: Instant) {
        if self.phase != Phase::Dead || self.cause.is_some() {
            return;
        }
        self.phase = Phase::Establish;
        self.lcp.open(now);
        self.lcp.up(now);
        self.pump(now);
    }

    /// Terminates the link from our side: LCP Terminate-Request with
    /// [`Cause::lcp_terminate_text`]; [`LinkEvent::Down`] follows when LCP has finished.
    /// If the link is already terminating, only the first cause is kept.
    pub fn close(&mut self, now: Instant, cause: Cause) {
        if self.phase == Phase::Dead {
            return;
        }
        self.terminate(now, cause);
        self.pump(now);
    }

    /// The lower layer is gone (call cleared, control connection lost): the link ends at
    /// once, without Terminate-Request, and [`LinkEvent::Down`] is queued. Frames still
    /// queued for sending are discarded.
    pub fn lower_down(&mut self, now: Instant, cause: Cause) {
        if self.phase == Phase::Dead {
            return;
        }
        self.cause.get_or_insert(cause);
        self.stop_upper_layers();
        self.lcp.down();
        self.finish();
        self.pump(now);
        self.out.clear();
    }

    /// Server: the answer of a [`SecretLookup`] that said [`auth::Lookup::Pending`].
    pub fn provide_secret(&mut self, now: Instant, id: LookupId, answer: SecretAnswer) {
        if let Authenticator::Server(server) = &mut self.auth {
            server.provide_secret(now, id, answer);
            self.pump(now);
        }
    }

    /// Our MPPE decryptor lost sync (stateful mode): queues a CCP Reset-Request. Returns
    /// whether one was queued (see [`Fsm::send_reset_request`]).
    pub fn send_reset_request(&mut self, now: Instant) -> bool {
        if self.phase != Phase::Network {
            return false;
        }
        let sent = self.ccp.send_reset_request(now);
        self.pump(now);
        sent
    }

    /// One whole PPP frame from the peer (the GRE payload).
    pub fn handle_frame(&mut self, now: Instant, bytes: &[u8]) {
        if self.phase == Phase::Dead {
            self.stats.out_of_phase = self.stats.out_of_phase.saturating_add(1);
            return;
        }
        let Ok(frame) = PppFrame::new_checked(bytes) else {
            self.stats.malformed = self.stats.malformed.saturating_add(1);
            return;
        };
        self.stats.frames_received = self.stats.frames_received.saturating_add(1);
        let payload = frame.payload();
        let protocol = frame.protocol();
        match protocol {
            Protocol::Lcp => self.lcp.handle_packet(now, payload),
            Protocol::Pap | Protocol::Chap => {
                self.lcp.frame_received(now);
                self.handle_auth(now, protocol, payload);
            }
            Protocol::Ipcp | Protocol::Ccp => {
                self.lcp.frame_received(now);
                if self.phase != Phase::Network {
                    self.count_out_of_phase();
                } else if protocol == Protocol::Ipcp {
                    self.ipcp.handle_packet(now, payload);
                } else {
                    self.ccp.handle_packet(now, payload);
                }
            }
            Protocol::Ipv4 | Protocol::VjCompressed | Protocol::VjUncompressed | Protocol::Mppe => {
                self.lcp.frame_received(now);
                self.stats.data_frames = self.stats.data_frames.saturating_add(1);
            }
            _ => {
                self.lcp.frame_received(now);
                self.protocol_reject(frame.protocol_raw(), payload);
            }
        }
        self.pump(now);
    }

    /// Acts on whatever timer is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Dead {
            return;
        }
        self.lcp.handle_timeout(now);
        match &mut self.auth {
            Authenticator::None => {}
            Authenticator::Server(server) => server.handle_timeout(now),
            Authenticator::Client(client) => client.handle_timeout(now),
        }
        self.ipcp.handle_timeout(now);
        self.ccp.handle_timeout(now);
        self.pump(now);
    }

    /// The earliest deadline of LCP (restart timer, keepalive), authentication, IPCP and
    /// CCP.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Dead {
            return None;
        }
        let auth = match &self.auth {
            Authenticator::None => None,
            Authenticator::Server(server) => server.poll_timeout(),
            Authenticator::Client(client) => client.poll_timeout(),
        };
        [
            self.lcp.poll_timeout(),
            auth,
            self.ipcp.poll_timeout(),
            self.ccp.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next whole PPP frame to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    fn count_out_of_phase(&mut self) {
        self.stats.out_of_phase = self.stats.out_of_phase.saturating_add(1);
    }

    fn handle_auth(&mut self, now: Instant, protocol: Protocol, payload: &[u8]) {
        if !matches!(self.phase, Phase::Authenticate | Phase::Network) {
            return self.count_out_of_phase();
        }
        match (&mut self.auth, &mut self.side) {
            (Authenticator::Server(server), RoleSide::Server { secrets, .. }) => {
                server.handle_packet(now, protocol, payload, secrets.as_mut());
            }
            (Authenticator::Client(client), _) => client.handle_packet(now, protocol, payload),
            _ => self.count_out_of_phase(),
        }
    }

    /// LCP Protocol-Reject of a frame (RFC 1661 §5.7), only while LCP is Opened.
    fn protocol_reject(&mut self, protocol: u16, info: &[u8]) {
        let Some(peer_mru) = self.lcp.negotiated().map(|n| n.peer_mru) else {
            self.stats.unknown_dropped = self.stats.unknown_dropped.saturating_add(1);
            return;
        };
        if self.lcp.state() != State::Opened || self.phase == Phase::Terminate {
            self.stats.unknown_dropped = self.stats.unknown_dropped.saturating_add(1);
            return;
        }
        // Code, Identifier, Length, Rejected-Protocol, then as much information as fits.
        let room = usize::from(peer_mru).saturating_sub(6).min(info.len());
        let info = info.get(..room).unwrap_or_default();
        let Ok(length) = u16::try_from(6 + info.len()) else {
            return;
        };
        self.protocol_reject_id = self.protocol_reject_id.wrapping_add(1);
        let mut packet = Vec::with_capacity(usize::from(length));
        packet.push(Code::ProtocolReject.into());
        packet.push(self.protocol_reject_id);
        packet.extend_from_slice(&length.to_be_bytes());
        packet.extend_from_slice(&protocol.to_be_bytes());
        packet.extend_from_slice(info);
        self.stats.protocol_rejects = self.stats.protocol_rejects.saturating_add(1);
        self.queue_frame(Protocol::Lcp, &packet);
    }

    /// Frames a control packet with the header the negotiated options allow.
    fn queue_frame(&mut self, protocol: Protocol, packet: &[u8]) {
        if self.out.len() >= MAX_QUEUED_FRAMES {
            self.stats.queue_overflows = self.stats.queue_overflows.saturating_add(1);
            return;
        }
        let (acfc, pfc) = match self.lcp.negotiated() {
            Some(n) if self.lcp.state() == State::Opened => (n.acfc_tx, n.pfc_tx),
            _ => (false, false),
        };
        let header = PppHeader {
            acfc,
            pfc,
            protocol,
        };
        let header_len = header.buffer_len();
        let mut frame = vec![0u8; header_len.saturating_add(packet.len())];
        if header
            .emit(&mut PppFrame::new_unchecked(&mut frame[..]))
            .is_err()
        {
            return;
        }
        if let Some(info) = frame.get_mut(header_len..) {
            info.copy_from_slice(packet);
        }
        self.out.push_back(frame);
    }

    fn push_event(&mut self, event: LinkEvent) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.stats.queue_overflows = self.stats.queue_overflows.saturating_add(1);
            return;
        }
        self.events.push_back(event);
    }

    /// Enters Terminate with `cause` (the first cause wins) and closes LCP.
    fn terminate(&mut self, now: Instant, cause: Cause) {
        if matches!(self.phase, Phase::Dead | Phase::Terminate) {
            self.cause.get_or_insert(cause);
            return;
        }
        let text = cause.lcp_terminate_text();
        self.cause.get_or_insert(cause);
        self.phase = Phase::Terminate;
        self.stop_upper_layers();
        self.lcp.close(now, text.as_bytes());
    }

    /// Authentication and the NCPs end with LCP (RFC 1661 §3.7: LCP's Terminate covers
    /// them; they get no Terminate-Request of their own).
    fn stop_upper_layers(&mut self) {
        match &mut self.auth {
            Authenticator::None => {}
            Authenticator::Server(server) => server.stop(),
            Authenticator::Client(client) => client.stop(),
        }
        self.ipcp.down();
        self.ccp.down();
        // Their final packets (none should be queued) would go nowhere.
        while self.ipcp.poll_transmit().is_some() {}
        while self.ccp.poll_transmit().is_some() {}
        while self.ipcp.poll_event().is_some() {}
        while self.ccp.poll_event().is_some() {}
    }

    /// The link is over: Down with the cause.
    fn finish(&mut self) {
        if self.phase == Phase::Dead && self.cause.is_none() {
            return;
        }
        let was_dead = self.phase == Phase::Dead;
        self.phase = Phase::Dead;
        self.up = false;
        if !was_dead {
            let cause = self.cause.get_or_insert(Cause::LinkFailed).clone();
            self.push_event(LinkEvent::Down(cause));
        }
    }

    /// Moves every machine's output to ours and acts on their events, until nothing moves.
    fn pump(&mut self, now: Instant) {
        // Each round either moves something or stops; the machines' queues are bounded, so
        // a handful of rounds settle any input.
        for _ in 0..16 {
            let mut moved = false;
            while let Some(packet) = self.lcp.poll_transmit() {
                moved = true;
                if self.phase != Phase::Dead {
                    self.queue_frame(Protocol::Lcp, &packet);
                }
            }
            while let Some(event) = self.lcp.poll_event() {
                moved = true;
                self.on_lcp_event(now, event);
            }
            moved |= self.pump_auth(now);
            while let Some(packet) = self.ipcp.poll_transmit() {
                moved = true;
                if self.phase == Phase::Network {
                    self.queue_frame(Protocol::Ipcp, &packet);
                }
            }
            while let Some(event) = self.ipcp.poll_event() {
                moved = true;
                self.on_ipcp_event(now, event);
            }
            while let Some(packet) = self.ccp.poll_transmit() {
                moved = true;
                if self.phase == Phase::Network {
                    self.queue_frame(Protocol::Ccp, &packet);
                }
            }
            while let Some(event) = self.ccp.poll_event() {
                moved = true;
                self.on_ccp_event(now, event);
            }
            self.check_up();
            if !moved {
                break;
            }
        }
    }

    fn pump_auth(&mut self, now: Instant) -> bool {
        let mut transmits: Vec<Transmit> = Vec::new();
        let mut events = Vec::new();
        match &mut self.auth {
            Authenticator::None => return false,
            Authenticator::Server(server) => {
                while let Some(t) = server.poll_transmit() {
                    transmits.push(t);
                }
                while let Some(e) = server.poll_event() {
                    events.push(e);
                }
            }
            Authenticator::Client(client) => {
                while let Some(t) = client.poll_transmit() {
                    transmits.push(t);
                }
                while let Some(e) = client.poll_event() {
                    events.push(e);
                }
            }
        }
        let moved = !transmits.is_empty() || !events.is_empty();
        for t in transmits {
            if matches!(self.phase, Phase::Authenticate | Phase::Network) {
                self.queue_frame(t.protocol, &t.packet);
            }
        }
        for event in events {
            self.on_auth_event(now, event);
        }
        moved
    }

    fn on_lcp_event(&mut self, now: Instant, event: Event<LcpEvent>) {
        if self.phase == Phase::Dead {
            return;
        }
        match event {
            Event::Up => self.lcp_up(now),
            Event::Down => {
                // Leaving Opened without a Close: the peer renegotiates LCP. Before the
                // network phase that only restarts authentication; after it the datapath's
                // keys and numbering would be stale, so the link ends (a decision of ours:
                // pppd would renegotiate everything).
                match self.phase {
                    Phase::Authenticate => {
                        self.stop_upper_layers();
                        self.auth = Authenticator::None;
                        self.phase = Phase::Establish;
                    }
                    Phase::Network => self.terminate(now, Cause::LinkRenegotiated),
                    _ => {}
                }
            }
            Event::Finished => self.finish(),
            Event::PeerTerminated { data } => {
                self.cause.get_or_insert(Cause::PeerTerminated {
                    reason: String::from_utf8_lossy(&data).into_owned(),
                });
                if self.phase != Phase::Terminate {
                    self.phase = Phase::Terminate;
                    self.stop_upper_layers();
                }
            }
            Event::Failed(failure) => {
                let cause = match failure {
                    // The authentication option (type 3): no method both ends allow.
                    Failure::NotConverging(3) | Failure::RequiredOptionRejected(3) => {
                        Cause::NoCommonAuthMethod
                    }
                    Failure::LoopedBack => Cause::LoopedBack,
                    other => Cause::NegotiationFailed {
                        protocol: Protocol::Lcp,
                        failure: other,
                    },
                };
                self.cause.get_or_insert(cause);
                if self.phase != Phase::Terminate {
                    self.phase = Phase::Terminate;
                    self.stop_upper_layers();
                }
            }
            Event::Negotiator(LcpEvent::EchoFailure) => self.terminate(now, Cause::EchoTimeout),
            Event::Negotiator(LcpEvent::ProtocolRejected(protocol)) => match protocol {
                Protocol::Ipcp if self.phase == Phase::Network => {
                    self.ipcp.protocol_rejected(now);
                }
                Protocol::Ccp if self.phase == Phase::Network => self.ccp.protocol_rejected(now),
                Protocol::Pap | Protocol::Chap if self.phase == Phase::Authenticate => {
                    self.terminate(now, Cause::NoCommonAuthMethod);
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// LCP is Opened: authenticate with the negotiated method, or go to the network phase.
    fn lcp_up(&mut self, now: Instant) {
        if self.phase != Phase::Establish {
            return;
        }
        let Some(negotiated) = self.lcp.negotiated().copied() else {
            return;
        };
        self.ipcp.set_peer_mru(negotiated.peer_mru);
        self.ccp.set_peer_mru(negotiated.peer_mru);
        let method = match self.role {
            Role::Server => negotiated.peer_authenticates_with,
            Role::Client => negotiated.we_authenticate_with,
        }
        .and_then(Method::from_lcp);
        let Some(method) = method else {
            return self.enter_network(now);
        };
        let restarts = self.auth_starts;
        self.auth_starts = self.auth_starts.saturating_add(1);
        let nonces = self
            .nonces
            .take()
            .unwrap_or_else(|| LinkRandom::restart_nonces(&self.restart_key, restarts));
        self.method = Some(method);
        self.phase = Phase::Authenticate;
        self.auth = match &self.side {
            RoleSide::Server { config, .. } => {
                let mut server = auth::Server::new(config.clone(), method);
                server.start(now, nonces);
                Authenticator::Server(server)
            }
            RoleSide::Client { config } => {
                let mut client = auth::Client::new(config.clone(), method);
                client.start(now, nonces);
                Authenticator::Client(client)
            }
        };
    }

    fn on_auth_event(&mut self, now: Instant, event: auth::Event) {
        if !matches!(self.phase, Phase::Authenticate | Phase::Network) {
            return;
        }
        match event {
            auth::Event::Authenticated {
                user,
                method,
                mppe_keys,
            } => {
                if self.phase != Phase::Authenticate {
                    return;
                }
                self.user = Some(user.clone());
                self.method = Some(method);
                self.keys = mppe_keys;
                self.push_event(LinkEvent::Authenticated { user, method });
                self.enter_network(now);
            }
            auth::Event::Failed { cause, .. } => {
                let cause = match cause {
                    auth::FailureCause::NoCommonMethod => Cause::NoCommonAuthMethod,
                    other => Cause::AuthFailed(other),
                };
                self.terminate(now, cause);
            }
        }
    }

    /// Authentication is done (or none was agreed): IPCP and CCP start together.
    fn enter_network(&mut self, now: Instant) {
        if self.mppe.wants_mppe() && self.keys.is_none() {
            // MPPE keys come from MS-CHAP only (RFC 3079).
            if self.mppe.requirement == MppeRequirement::Required {
                return self.terminate(now, Cause::MppeWithoutMsChap);
            }
            let clear = MppePolicy {
                requirement: MppeRequirement::Denied,
                ..self.mppe
            };
            *self.ccp.negotiator_mut() = CcpNegotiator::new(clear);
        }
        self.phase = Phase::Network;
        self.ipcp.open(now);
        self.ipcp.up(now);
        self.ccp.open(now);
        self.ccp.up(now);
    }

    fn on_ipcp_event(&mut self, now: Instant, event: Event<IpcpEvent>) {
        if self.phase != Phase::Network {
            return;
        }
        match event {
            Event::Negotiator(IpcpEvent::NoAddress | IpcpEvent::NoLocalAddress) => {
                self.terminate(now, Cause::NoAddress);
            }
            Event::Failed(failure) => self.terminate(
                now,
                Cause::NegotiationFailed {
                    protocol: Protocol::Ipcp,
                    failure,
                },
            ),
            // The peer renegotiates IPCP (it lost our last Ack, or restarts): Up is reported
            // again when IPCP is Opened again.
            Event::Down => self.up = false,
            _ => {}
        }
    }

    fn on_ccp_event(&mut self, now: Instant, event: Event<CcpEvent>) {
        if self.phase != Phase::Network {
            return;
        }
        match event {
            Event::Negotiator(CcpEvent::Failed(failure)) => {
                self.terminate(now, Cause::Mppe(failure));
            }
            Event::Negotiator(CcpEvent::ResetRequested) => {
                self.push_event(LinkEvent::ResetRequested);
            }
            Event::Failed(failure) => {
                if let Some(mppe) = self.ccp.negotiator().failure_cause(&failure) {
                    self.terminate(now, Cause::Mppe(mppe));
                }
            }
            // CCP renegotiates: MPPE restarts from the start keys (RFC 3078 §7), so Up is
            // reported again once CCP is Opened again.
            Event::Down => self.up = false,
            _ => {}
        }
    }

    fn mppe_required(&self) -> bool {
        self.ccp.negotiator().policy().requirement == MppeRequirement::Required
    }

    /// Reports Up once IPCP is Opened and CCP has what the policy needs.
    fn check_up(&mut self) {
        if self.up || self.phase != Phase::Network || self.ipcp.state() != State::Opened {
            return;
        }
        let ccp_result: Option<CcpResult> = self.ccp.negotiator().negotiated().copied();
        let mppe = match (ccp_result, self.keys) {
            (
                Some(CcpResult {
                    transmit: Some(transmit),
                    receive: Some(receive),
                }),
                Some(keys),
            ) if self.ccp.state() == State::Opened => Some(MppeUp {
                transmit,
                receive,
                keys,
            }),
            _ => None,
        };
        // Optional MPPE: wait until CCP is Opened or has given up, never come up while it
        // still negotiates (the first packets would go out in clear).
        let settled = matches!(
            self.ccp.state(),
            State::Opened | State::Initial | State::Starting | State::Closed | State::Stopped
        );
        if self.mppe_required() {
            if mppe.is_none() {
                return;
            }
        } else if !settled {
            return;
        }
        let (Some(lcp), Some(ipcp)) = (
            self.lcp.negotiated().copied(),
            self.ipcp.negotiator().negotiated().copied(),
        ) else {
            return;
        };
        self.up = true;
        let up = LinkUp {
            role: self.role,
            user: self.user.clone(),
            auth_method: self.method,
            lcp,
            ipcp,
            mppe,
        };
        self.push_event(LinkEvent::Up(Box::new(up)));
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::ppp::auth::{Lookup, SecretRequest};
    use crate::ppp::ipcp::FixedAddress;
    use crate::testing::reference::lcp::{CLIENT_CONFREQ, PROTREJ_IPV6CP};

    /// `ff03`, the protocol and the packet: a frame as pptp-linux sends it before ACFC/PFC.
    fn frame(protocol: u16, packet: &[u8]) -> Vec<u8> {
        let mut frame = vec![0xff, 0x03];
        frame.extend_from_slice(&protocol.to_be_bytes());
        frame.extend_from_slice(packet);
        frame
    }

    fn drain(link: &mut Link) -> (Vec<Vec<u8>>, Vec<LinkEvent>) {
        let frames = std::iter::from_fn(|| link.poll_transmit()).collect();
        let events = std::iter::from_fn(|| link.poll_event()).collect();
        (frames, events)
    }

    /// A default (Poptop) server link, opened at `now`.
    fn server(now: Instant) -> Link {
        let secrets = |_: &SecretRequest<'_>| Lookup::Ready(SecretAnswer::UnknownUser);
        let mut link = Link::server(
            ServerConfig::default(),
            Box::new(secrets),
            Box::new(FixedAddress(None)),
            LinkRandom::from_seed([7; 32]),
        );
        link.open(now);
        link
    }

    /// A server link whose LCP is Opened with the peer's `request` (LCP Configure-Request
    /// packet): the server acks it, and the peer acks the server's own request.
    fn lcp_opened_server(now: Instant, request: &[u8]) -> Link {
        let mut link = server(now);
        let (frames, _) = drain(&mut link);
        let mut our_ack = frames[0].clone();
        assert_eq!(
            our_ack[..5],
            [0xff, 0x03, 0xc0, 0x21, 1],
            "our Configure-Request"
        );
        our_ack[4] = Code::ConfigureAck.into();
        link.handle_frame(now, &frame(0xc021, request));
        link.handle_frame(now, &our_ack);
        assert_eq!(link.lcp().state(), State::Opened);
        assert_eq!(link.phase(), Phase::Authenticate);
        drain(&mut link);
        link
    }

    /// pptp-linux's Configure-Request (frame 20) with an MRU option added.
    fn confreq_with_mru(mru: u16) -> Vec<u8> {
        let mut request = CLIENT_CONFREQ.to_vec();
        request.extend_from_slice(&[0x01, 0x04]);
        request.extend_from_slice(&mru.to_be_bytes());
        let len = request.len() as u16;
        request[2..4].copy_from_slice(&len.to_be_bytes());
        request
    }

    #[test]
    fn ipv6cp_is_protocol_rejected_once_lcp_is_opened() {
        let now = Instant::now();
        let mut link = lcp_opened_server(now, &CLIENT_CONFREQ);
        // pptp-linux's IPV6CP Configure-Request (frame 38) is the rejected information.
        link.handle_frame(now, &frame(0x8057, &PROTREJ_IPV6CP[6..]));
        let (frames, events) = drain(&mut link);
        let mut expected = PROTREJ_IPV6CP;
        expected[1] = 1; // our first Protocol-Reject
        assert_eq!(frames, [frame(0xc021, &expected)]);
        assert!(events.is_empty());
        assert_eq!(link.stats().protocol_rejects, 1);
        assert_eq!(link.stats().unknown_dropped, 0);
    }

    #[test]
    fn protocol_reject_is_cut_to_the_peers_mru() {
        let now = Instant::now();
        let mut link = lcp_opened_server(now, &confreq_with_mru(200));
        let info: Vec<u8> = (0..=255).cycle().take(1000).collect();
        link.handle_frame(now, &frame(0x8057, &info));
        let (frames, _) = drain(&mut link);
        assert_eq!(frames.len(), 1);
        // LCP keeps ff03 and the two-octet protocol; the packet itself is the peer's MRU.
        let packet = &frames[0][4..];
        assert_eq!(packet.len(), 200);
        assert_eq!(packet[..6], [8, 1, 0, 200, 0x80, 0x57]);
        assert_eq!(packet[6..], info[..194]);
        // The next one gets the next identifier.
        link.handle_frame(now, &frame(0x8057, &info[..3]));
        assert_eq!(
            drain(&mut link).0,
            [frame(0xc021, &[8, 2, 0, 9, 0x80, 0x57, 0, 1, 2])]
        );
        assert_eq!(link.stats().protocol_rejects, 2);
    }

    #[test]
    fn unknown_protocol_before_lcp_opens_is_dropped() {
        let now = Instant::now();
        let mut link = server(now);
        drain(&mut link);
        link.handle_frame(now, &frame(0x8057, &PROTREJ_IPV6CP[6..]));
        assert!(drain(&mut link).0.is_empty());
        assert_eq!(link.stats().unknown_dropped, 1);
        assert_eq!(link.stats().protocol_rejects, 0);
    }

    #[test]
    fn data_and_ncp_frames_before_up_are_counted_and_dropped() {
        let now = Instant::now();
        let mut dead = Link::client(ClientConfig::default(), LinkRandom::from_seed([1; 32]));
        dead.handle_frame(now, &frame(0x0021, &[0x45, 0, 0, 20]));
        assert_eq!(dead.stats().out_of_phase, 1);
        assert_eq!(dead.stats().frames_received, 0);

        let mut link = lcp_opened_server(now, &CLIENT_CONFREQ);
        let before = link.stats();
        link.handle_frame(now, &frame(0x0021, &[0x45, 0, 0, 20])); // IPv4
        link.handle_frame(now, &[0xfd, 0x90, 0x00, 0xdc, 0x75]); // MPPE, PFC
        link.handle_frame(now, &frame(0x8021, &[1, 1, 0, 4])); // IPCP before Network
        link.handle_frame(now, &[0xff]); // no protocol
        assert_eq!(drain(&mut link), (vec![], vec![]));
        let stats = link.stats();
        assert_eq!(stats.data_frames - before.data_frames, 2);
        assert_eq!(stats.out_of_phase - before.out_of_phase, 1);
        assert_eq!(stats.malformed - before.malformed, 1);
        assert_eq!(stats.frames_received - before.frames_received, 3);
        assert!(!link.is_up());
        assert_eq!(link.phase(), Phase::Authenticate);
    }
}
