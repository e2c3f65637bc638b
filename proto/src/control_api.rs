//! The control daemon's own interface: typed, versioned messages between `xpptp-control`
//! and the operator's tools (`xpptp`) over the daemon's control socket (issue 5 item 8):
//! list and inspect sessions with their traffic counters, end them, read the daemon's and
//! the datapath's figures. Bytes only: the Unix socket is the daemons' business.
//!
//! # Framing
//!
//! The same as the datapath's [command interface](crate::command), with its own magic so
//! that a tool pointed at the wrong socket is told so at once:
//!
//! ```text
//!  0      4        6       8            12          16
//!  | magic | version | kind | request id | length | body (postcard) ...
//!  "XPCT"    u16 BE   u16 BE   u32 BE      u32 BE
//! ```
//!
//! * `kind` names the body's type ([`Kind`]); `request id` is chosen by the client and
//!   echoed in the reply. Every request has exactly one reply: its answer or [`Failed`].
//! * A reader takes [`HEADER_LEN`] octets, asks [`frame_len`] how many more to read (which
//!   refuses a wrong magic, another version or a body over [`MAX_BODY_LEN`] before anything
//!   is buffered), then [`Frame::decode`]s the whole frame.
//!
//! # Encoding and compatibility
//!
//! Bodies are postcard, as in [`command`](crate::command) (see there why). Any change to an
//! existing body bumps [`VERSION`]; a new [`Kind`] does not (an old daemon answers
//! [`FailureCode::NotSupported`]). [`SessionState`], [`FailureCode`], [`RefusalReason`] and
//! [`AuthMethod`] are numbers on the wire and unknown ones are kept, so new values need no
//! bump either. The datapath's figures ([`CallTraffic`]'s, [`WorkerStats`]) are passed
//! through in the command interface's types: a change there changes this interface too,
//! and bumps this [`VERSION`] with it.

use core::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::frame::{self, Protocol, body};
pub use crate::frame::{EncodeError, HEADER_LEN};

pub use crate::command::{MppeInfo, Traffic, VerdictCount, WorkerStats};
use crate::ppp::auth::Method;

/// First four octets of every frame.
pub const MAGIC: [u8; 4] = *b"XPCT";

/// The version of every body's shape (see the module documentation for when it changes).
pub const VERSION: u16 = 2;

/// Largest body accepted: bounds what a reader buffers for one frame. A full
/// [`SessionList`] page ([`MAX_LIST_PAGE`] sessions, each with a 256-octet user name and
/// every number at its widest: under 400 octets) takes under 800 KiB.
pub const MAX_BODY_LEN: usize = 1024 * 1024;

/// Most sessions in one [`SessionList`] or [`SessionDetails`] reply.
pub const MAX_LIST_PAGE: u16 = 2048;

enum_with_unknown! {
    /// The type of a frame's body.
    pub enum Kind(u16) {
        /// [`Hello`]: client → daemon, first frame on a connection.
        Hello = 1,
        /// [`HelloReply`].
        HelloReply = 2,
        /// [`ListSessions`].
        ListSessions = 3,
        /// [`GetSession`].
        GetSession = 4,
        /// [`Terminate`].
        Terminate = 5,
        /// Ask for [`Stats`] (no body).
        GetStats = 6,
        /// [`Failed`]: a request was refused.
        Failed = 17,
        /// [`SessionList`]: reply to [`ListSessions`].
        SessionList = 18,
        /// [`SessionDetails`]: reply to [`GetSession`].
        SessionDetails = 19,
        /// [`Terminated`]: reply to [`Terminate`].
        Terminated = 20,
        /// [`Stats`]: reply to [`Kind::GetStats`].
        Stats = 21,
    }
}

/// This interface's [`Protocol`]: what its frames are parameterised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control;

/// Why a frame could not be decoded.
pub type DecodeError = frame::DecodeError<Control>;

/// A view of a frame header.
pub type Header<T> = frame::Header<T, Control>;

/// One frame: a message and its request id.
pub type Frame = frame::Frame<Control>;

/// How many octets the frame that starts with this header has in all (header included),
/// once its magic, version and length are checked. `Ok(None)` until [`HEADER_LEN`] octets
/// are there.
pub fn frame_len(bytes: &[u8]) -> Result<Option<usize>, DecodeError> {
    frame::frame_len(bytes)
}

// ---------------------------------------------------------------------------------------
// Requests (tool → daemon)

/// First frame of a connection: who is asking (for logs). The daemon answers
/// [`HelloReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Free text ("xpptp 0.1.0").
    pub client: String,
}

enum_with_unknown! {
    /// Where a session is in its life.
    #[derive(Serialize, Deserialize)]
    #[serde(from = "u16", into = "u16")]
    pub enum SessionState(u16) {
        /// Call accepted; PPP negotiating (LCP, authentication, IPCP, CCP).
        Starting = 1,
        /// Up: the datapath carries its traffic.
        Established = 2,
        /// Ending (terminate asked, peer hung up, timeout, shutdown).
        Finishing = 3,
    }
}

/// List sessions with local call IDs from `start` on, at most `max` (capped at
/// [`MAX_LIST_PAGE`]), keeping those that match every filter given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListSessions {
    /// The first local call ID to include.
    pub start: u16,
    /// How many at most.
    pub max: u16,
    /// Only sessions in this state.
    pub state: Option<SessionState>,
    /// Only sessions of this user (exact, as authenticated).
    pub user: Option<Vec<u8>>,
}

/// Which sessions a [`GetSession`] means.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionSelector {
    /// The session with this local call ID.
    Id(u16),
    /// Every session of this user (at most [`MAX_LIST_PAGE`]).
    User(Vec<u8>),
}

/// Everything known about some sessions, negotiation included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetSession {
    /// Which.
    pub selector: SessionSelector,
}

/// Which sessions a [`Terminate`] ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TerminateTarget {
    /// The session with this local call ID.
    Id(u16),
    /// Every session of this user.
    User(Vec<u8>),
    /// The session whose client has this tunnel address.
    TunnelAddress(Ipv4Addr),
    /// Every session.
    All,
}

/// End sessions as an operator: LCP Terminate, Call-Disconnect-Notify to the client, the
/// call removed from the datapath. The reply ([`Terminated`]) comes when the ending has
/// started, not when it is over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminate {
    /// Which.
    pub target: TerminateTarget,
}

// ---------------------------------------------------------------------------------------
// Replies (daemon → tool)

/// Answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    /// Free text ("xpptp-control 0.1.0").
    pub server: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Whether the datapath is connected now.
    pub datapath_connected: bool,
}

enum_with_unknown! {
    /// Why a request failed.
    #[derive(Serialize, Deserialize)]
    #[serde(from = "u16", into = "u16")]
    pub enum FailureCode(u16) {
        /// No session matches.
        NotFound = 1,
        /// The peer may not use the control socket (not root, not the daemon's user).
        PermissionDenied = 2,
        /// A value out of range, or a body that does not decode.
        InvalidArgument = 3,
        /// A kind this daemon does not handle.
        NotSupported = 4,
        /// The daemon could not do it (see the detail).
        Internal = 5,
        /// The datapath is not connected, so its figures are missing.
        DatapathUnavailable = 6,
        /// Too many connections to the control socket.
        Busy = 7,
    }
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    /// Why.
    pub code: FailureCode,
    /// What went wrong, for the operator.
    pub detail: String,
}

/// A call's traffic as the datapath counts it (from its `ListCalls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CallTraffic {
    /// From the client, forwarded (packets and octets of inner IPv4).
    pub rx: Traffic,
    /// To the client.
    pub tx: Traffic,
    /// Packets of this call dropped (any reason).
    pub dropped: u64,
    /// The worker owning the upstream direction, if it is stateful.
    pub upstream_owner: Option<u16>,
    /// The worker owning the downstream direction, if it is stateful.
    pub downstream_owner: Option<u16>,
}

/// One session, as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session's ID: our (local) call ID.
    pub id: u16,
    /// The peer's call ID.
    pub peer_call_id: u16,
    /// The user, once it has given a name (authenticated when established).
    pub user: Option<Vec<u8>>,
    /// Where it is.
    pub state: SessionState,
    /// The client's outer address.
    pub peer_address: Ipv4Addr,
    /// The client's tunnel address, once IPCP assigned it.
    pub tunnel_address: Option<Ipv4Addr>,
    /// MPPE of what we send, `None` in clear or before CCP.
    pub transmit: Option<MppeInfo>,
    /// MPPE of what we receive.
    pub receive: Option<MppeInfo>,
    /// Seconds since the call was accepted.
    pub uptime_secs: u64,
    /// The datapath's counters; `None` before the hand-over or when the datapath does
    /// not answer.
    pub traffic: Option<CallTraffic>,
}

/// A page of sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionList {
    /// In local call ID order.
    pub sessions: Vec<SessionSummary>,
    /// The `start` of the next page, `None` after the last.
    pub next: Option<u16>,
}

enum_with_unknown! {
    /// How the peer authenticated.
    #[derive(Serialize, Deserialize)]
    #[serde(from = "u16", into = "u16")]
    pub enum AuthMethod(u16) {
        /// MS-CHAPv2.
        MsChapV2 = 1,
        /// MS-CHAPv1.
        MsChapV1 = 2,
        /// CHAP-MD5.
        ChapMd5 = 3,
        /// PAP.
        Pap = 4,
    }
}

impl From<Method> for AuthMethod {
    fn from(method: Method) -> AuthMethod {
        match method {
            Method::MsChapV2 => AuthMethod::MsChapV2,
            Method::MsChapV1 => AuthMethod::MsChapV1,
            Method::ChapMd5 => AuthMethod::ChapMd5,
            Method::Pap => AuthMethod::Pap,
        }
    }
}

/// What an established session negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    /// The largest frame we may send (the peer's MRU).
    pub peer_mru: u16,
    /// The largest frame we receive (our MRU).
    pub our_mru: u16,
    /// The inner MTU towards the peer.
    pub mtu: u16,
    /// Our LCP Magic-Number (0: none).
    pub our_magic: u32,
    /// The peer's LCP Magic-Number (0: none).
    pub peer_magic: u32,
    /// Address and control field compression.
    pub acfc: bool,
    /// Protocol field compression.
    pub pfc: bool,
    /// How the peer authenticated.
    pub auth_method: Option<AuthMethod>,
    /// Our tunnel address (IPCP).
    pub server_tunnel_address: Option<Ipv4Addr>,
    /// The client's tunnel address (IPCP).
    pub client_tunnel_address: Ipv4Addr,
    /// DNS servers given.
    pub primary_dns: Option<Ipv4Addr>,
    /// DNS servers given.
    pub secondary_dns: Option<Ipv4Addr>,
    /// WINS servers given.
    pub primary_nbns: Option<Ipv4Addr>,
    /// WINS servers given.
    pub secondary_nbns: Option<Ipv4Addr>,
    /// MPPE of what we send (CCP), `None` in clear.
    pub transmit: Option<MppeInfo>,
    /// MPPE of what we receive (CCP).
    pub receive: Option<MppeInfo>,
    /// The peer's GRE receive window (PPTP Outgoing-Call-Request).
    pub peer_recv_window: u16,
}

/// One session with everything known about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDetail {
    /// What a listing shows.
    pub summary: SessionSummary,
    /// The PPTP vendor string the client announced (SCCRQ).
    pub peer_vendor: String,
    /// The negotiation's outcome, once established.
    pub negotiated: Option<Negotiated>,
}

/// Reply to [`GetSession`]: one session (by ID) or the user's sessions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDetails {
    /// In local call ID order.
    pub sessions: Vec<SessionDetail>,
}

/// Reply to [`Terminate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terminated {
    /// Sessions told to end.
    pub count: u32,
}

enum_with_unknown! {
    /// Why a connection, call or authentication was refused.
    #[derive(Serialize, Deserialize)]
    #[serde(from = "u16", into = "u16")]
    pub enum RefusalReason(u16) {
        /// `max_sessions` calls existed.
        MaxSessions = 1,
        /// `max_starting` control connections were being set up.
        MaxStarting = 2,
        /// The source opened too many connections in a minute.
        SourceRate = 3,
        /// No Start-Control-Connection-Request within the start timeout.
        StartTimeout = 4,
        /// The user had a session and `duplicate_user = "deny"`.
        DuplicateUser = 5,
        /// The user was in its authentication back-off.
        UserBackoff = 6,
        /// The source address was in its authentication back-off.
        SourceBackoff = 7,
        /// No address for the user.
        NoAddress = 8,
        /// No call ID free.
        NoCallId = 9,
        /// The daemon was shutting down.
        ShuttingDown = 10,
    }
}

/// Refusals of one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalCount {
    /// Why.
    pub reason: RefusalReason,
    /// How many since the daemon started.
    pub count: u64,
}

/// The control plane's raw GRE socket (sessions being negotiated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GreStats {
    /// Packets handed to a call.
    pub delivered: u64,
    /// Packets that did not parse.
    pub malformed: u64,
    /// For a call ID with no call in negotiation.
    pub unknown_call: u64,
    /// For a known call from another address than its peer's.
    pub wrong_peer: u64,
    /// The call's queue was full.
    pub queue_full: u64,
}

/// Reply to [`Kind::GetStats`]: counters since the daemon started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Sessions negotiating now.
    pub sessions_starting: u32,
    /// Sessions up now.
    pub sessions_established: u32,
    /// Sessions ending now.
    pub sessions_finishing: u32,
    /// Sessions that reached established, in all.
    pub setups_total: u64,
    /// Failed authentications, in all.
    pub auth_failures: u64,
    /// Refusals, by reason (every reason, zeros included).
    pub refusals: Vec<RefusalCount>,
    /// The raw GRE socket's counters.
    pub gre: GreStats,
    /// Whether the datapath answered.
    pub datapath_connected: bool,
    /// The datapath's workers (empty when it did not answer).
    pub workers: Vec<WorkerStats>,
    /// The datapath's XDP verdict counters (empty when it did not answer, or on its socket
    /// backend).
    pub xdp: Vec<VerdictCount>,
}

/// Every message, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`HelloReply`].
    HelloReply(HelloReply),
    /// See [`ListSessions`].
    ListSessions(ListSessions),
    /// See [`GetSession`].
    GetSession(GetSession),
    /// See [`Terminate`].
    Terminate(Terminate),
    /// Ask for [`Stats`].
    GetStats,
    /// See [`Failed`].
    Failed(Failed),
    /// See [`SessionList`].
    SessionList(SessionList),
    /// See [`SessionDetails`].
    SessionDetails(SessionDetails),
    /// See [`Terminated`].
    Terminated(Terminated),
    /// See [`Stats`].
    Stats(Box<Stats>),
}

impl Message {
    /// The header's kind for this message.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::HelloReply(_) => Kind::HelloReply,
            Message::ListSessions(_) => Kind::ListSessions,
            Message::GetSession(_) => Kind::GetSession,
            Message::Terminate(_) => Kind::Terminate,
            Message::GetStats => Kind::GetStats,
            Message::Failed(_) => Kind::Failed,
            Message::SessionList(_) => Kind::SessionList,
            Message::SessionDetails(_) => Kind::SessionDetails,
            Message::Terminated(_) => Kind::Terminated,
            Message::Stats(_) => Kind::Stats,
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(kind: Kind, body: &'a [u8]) -> Result<T, DecodeError> {
    frame::parse(kind, body)
}

impl Protocol for Control {
    const MAGIC: [u8; 4] = MAGIC;
    const VERSION: u16 = VERSION;
    const MAX_BODY_LEN: usize = MAX_BODY_LEN;
    const NAME: &'static str = "control interface";
    type Kind = Kind;
    type Message = Message;

    fn kind(message: &Message) -> Kind {
        message.kind()
    }

    fn encode_body(message: &Message, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
        match message {
            Message::Hello(m) => body(m, out),
            Message::HelloReply(m) => body(m, out),
            Message::ListSessions(m) => body(m, out),
            Message::GetSession(m) => body(m, out),
            Message::Terminate(m) => body(m, out),
            Message::GetStats => Ok(()),
            Message::Failed(m) => body(m, out),
            Message::SessionList(m) => body(m, out),
            Message::SessionDetails(m) => body(m, out),
            Message::Terminated(m) => body(m, out),
            Message::Stats(m) => body(m, out),
        }
    }

    fn decode_body(kind: Kind, body_bytes: &[u8]) -> Result<Message, DecodeError> {
        Ok(match kind {
            Kind::Hello => Message::Hello(parse(kind, body_bytes)?),
            Kind::HelloReply => Message::HelloReply(parse(kind, body_bytes)?),
            Kind::ListSessions => Message::ListSessions(parse(kind, body_bytes)?),
            Kind::GetSession => Message::GetSession(parse(kind, body_bytes)?),
            Kind::Terminate => Message::Terminate(parse(kind, body_bytes)?),
            Kind::GetStats if body_bytes.is_empty() => Message::GetStats,
            Kind::GetStats => {
                return Err(DecodeError::TrailingBytes {
                    kind,
                    extra: body_bytes.len(),
                });
            }
            Kind::Failed => Message::Failed(parse(kind, body_bytes)?),
            Kind::SessionList => Message::SessionList(parse(kind, body_bytes)?),
            Kind::SessionDetails => Message::SessionDetails(parse(kind, body_bytes)?),
            Kind::Terminated => Message::Terminated(parse(kind, body_bytes)?),
            Kind::Stats => Message::Stats(Box::new(parse(kind, body_bytes)?)),
            Kind::Unknown(k) => return Err(DecodeError::UnknownKind(k)),
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::command::{DirectionStats, DropCount, DropReason};
    use crate::crypto::mppe::MppeMode;
    use crate::crypto::mppe_keys::MppeStrength;

    fn summary(id: u16) -> SessionSummary {
        SessionSummary {
            id,
            peer_call_id: u16::MAX,
            // pppd caps user names at 256 octets (MAXNAMELEN).
            user: Some(vec![b'u'; 256]),
            state: SessionState::Established,
            peer_address: Ipv4Addr::new(255, 255, 255, 255),
            tunnel_address: Some(Ipv4Addr::new(10, 64, 255, 254)),
            transmit: Some(MppeInfo {
                strength: MppeStrength::Bits128,
                mode: MppeMode::Stateful,
            }),
            receive: Some(MppeInfo {
                strength: MppeStrength::Bits40,
                mode: MppeMode::StatefulLinux,
            }),
            uptime_secs: u64::MAX,
            traffic: Some(CallTraffic {
                rx: Traffic {
                    packets: u64::MAX,
                    bytes: u64::MAX,
                },
                tx: Traffic {
                    packets: u64::MAX,
                    bytes: u64::MAX,
                },
                dropped: u64::MAX,
                upstream_owner: Some(u16::MAX),
                downstream_owner: Some(u16::MAX),
            }),
        }
    }

    fn detail() -> SessionDetail {
        SessionDetail {
            summary: summary(7),
            peer_vendor: "cananian".into(),
            negotiated: Some(Negotiated {
                peer_mru: 1400,
                our_mru: 1400,
                mtu: 1396,
                our_magic: 0xdead_beef,
                peer_magic: 0x0102_0304,
                acfc: true,
                pfc: false,
                auth_method: Some(AuthMethod::MsChapV2),
                server_tunnel_address: Some(Ipv4Addr::new(10, 64, 0, 1)),
                client_tunnel_address: Ipv4Addr::new(10, 64, 0, 2),
                primary_dns: Some(Ipv4Addr::new(10, 0, 0, 53)),
                secondary_dns: None,
                primary_nbns: None,
                secondary_nbns: Some(Ipv4Addr::new(10, 0, 0, 54)),
                transmit: None,
                receive: Some(MppeInfo {
                    strength: MppeStrength::Bits56,
                    mode: MppeMode::Stateless,
                }),
                peer_recv_window: 64,
            }),
        }
    }

    fn every_message() -> Vec<Message> {
        vec![
            Message::Hello(Hello {
                client: "xpptp 0.1.0".into(),
            }),
            Message::HelloReply(HelloReply {
                server: "xpptp-control 0.1.0".into(),
                uptime_secs: 86_400,
                datapath_connected: true,
            }),
            Message::ListSessions(ListSessions {
                start: 0,
                max: MAX_LIST_PAGE,
                state: Some(SessionState::Finishing),
                user: Some(b"alice".to_vec()),
            }),
            Message::ListSessions(ListSessions {
                start: 9,
                max: 1,
                state: None,
                user: None,
            }),
            Message::GetSession(GetSession {
                selector: SessionSelector::Id(7),
            }),
            Message::GetSession(GetSession {
                selector: SessionSelector::User(b"alice".to_vec()),
            }),
            Message::Terminate(Terminate {
                target: TerminateTarget::Id(7),
            }),
            Message::Terminate(Terminate {
                target: TerminateTarget::User(b"bob".to_vec()),
            }),
            Message::Terminate(Terminate {
                target: TerminateTarget::TunnelAddress(Ipv4Addr::new(10, 64, 0, 2)),
            }),
            Message::Terminate(Terminate {
                target: TerminateTarget::All,
            }),
            Message::GetStats,
            Message::Failed(Failed {
                code: FailureCode::NotFound,
                detail: "no session 7".into(),
            }),
            Message::Failed(Failed {
                code: FailureCode::Unknown(4242),
                detail: String::new(),
            }),
            Message::SessionList(SessionList {
                sessions: vec![
                    summary(1),
                    SessionSummary {
                        state: SessionState::Starting,
                        user: None,
                        tunnel_address: None,
                        transmit: None,
                        receive: None,
                        traffic: None,
                        ..summary(2)
                    },
                ],
                next: Some(3),
            }),
            Message::SessionDetails(SessionDetails {
                sessions: vec![
                    detail(),
                    SessionDetail {
                        negotiated: None,
                        ..detail()
                    },
                ],
            }),
            Message::Terminated(Terminated { count: 65_535 }),
            Message::Stats(Box::new(Stats {
                uptime_secs: 3600,
                sessions_starting: 1,
                sessions_established: 2,
                sessions_finishing: 3,
                setups_total: 40,
                auth_failures: 5,
                refusals: vec![
                    RefusalCount {
                        reason: RefusalReason::SourceRate,
                        count: 6,
                    },
                    RefusalCount {
                        reason: RefusalReason::Unknown(99),
                        count: 1,
                    },
                ],
                gre: GreStats {
                    delivered: 100,
                    malformed: 1,
                    unknown_call: 2,
                    wrong_peer: 3,
                    queue_full: 4,
                },
                datapath_connected: true,
                workers: vec![WorkerStats {
                    worker: 0,
                    cpu: Some(1),
                    upstream: DirectionStats::default(),
                    downstream: DirectionStats::default(),
                    drops: vec![DropCount {
                        reason: DropReason::NoRoute,
                        packets: 3,
                    }],
                    batches: 1,
                    batch_packets: 2,
                    handed_off: 0,
                    punted: 1,
                    client_to_client: Traffic::default(),
                    acks_sent: Traffic::default(),
                    control_sent: Traffic::default(),
                    events: Vec::new(),
                    batch_sizes: vec![1, 1],
                    rings: Vec::new(),
                }],
                xdp: vec![VerdictCount {
                    verdict: "pass".into(),
                    packets: 1,
                    bytes: 60,
                }],
            })),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        let messages = every_message();
        for (n, message) in messages.into_iter().enumerate() {
            let frame = Frame::new(n as u32 + 100, message);
            let bytes = frame.to_vec().expect("encode");
            assert_eq!(&bytes[..4], b"XPCT");
            assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
            let decoded = Frame::decode(&bytes).expect("decode");
            assert_eq!(decoded, Some((frame.clone(), bytes.len())), "{frame:?}");
            for cut in 0..bytes.len() {
                assert_eq!(Frame::decode(&bytes[..cut]), Ok(None), "{cut} octets");
            }
        }
    }

    #[test]
    fn every_kind_is_covered() {
        let mut kinds: Vec<u16> = every_message()
            .iter()
            .map(|m| u16::from(m.kind()))
            .collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds, [1, 2, 3, 4, 5, 6, 17, 18, 19, 20, 21]);
    }

    #[test]
    fn header_deconstruct() {
        // GetStats, request 0x01020304, empty body.
        let bytes = [
            b'X', b'P', b'C', b'T', 0x00, 0x02, 0x00, 0x06, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00,
            0x00, 0x00,
        ];
        let header = Header::new_checked(&bytes[..]).expect("16 octets");
        assert_eq!(header.kind(), Kind::GetStats);
        assert_eq!(header.request_id(), 0x0102_0304);
        assert_eq!(header.check(), Ok(0));
        assert_eq!(
            Frame::new(0x0102_0304, Message::GetStats).to_vec(),
            Ok(bytes.to_vec())
        );
    }

    #[test]
    fn the_datapaths_frames_are_refused_by_magic() {
        let datapath = crate::command::Frame::new(1, crate::command::Message::Done)
            .to_vec()
            .expect("encode");
        assert_eq!(
            Frame::decode(&datapath),
            Err(DecodeError::BadMagic(*b"XPDP"))
        );
        assert_eq!(frame_len(&datapath), Err(DecodeError::BadMagic(*b"XPDP")));
    }

    fn get_stats() -> Vec<u8> {
        Frame::new(1, Message::GetStats).to_vec().expect("encode")
    }

    #[test]
    fn bad_version_length_kind_and_bodies_are_named() {
        let mut bytes = get_stats();
        bytes[5] = 3;
        assert_eq!(
            Frame::decode(&bytes),
            Err(DecodeError::UnsupportedVersion {
                got: 3,
                supported: VERSION
            })
        );

        let mut bytes = get_stats();
        bytes[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            frame_len(&bytes),
            Err(DecodeError::Oversize { .. })
        ));

        let mut bytes = get_stats();
        bytes[6..8].copy_from_slice(&0x7777u16.to_be_bytes());
        assert_eq!(Frame::decode(&bytes), Err(DecodeError::UnknownKind(0x7777)));

        let mut bytes = get_stats();
        bytes[15] = 1;
        bytes.push(0);
        assert_eq!(
            Frame::decode(&bytes),
            Err(DecodeError::TrailingBytes {
                kind: Kind::GetStats,
                extra: 1
            })
        );

        // A selector variant that does not exist.
        let mut bytes = Frame::new(
            1,
            Message::GetSession(GetSession {
                selector: SessionSelector::Id(7),
            }),
        )
        .to_vec()
        .expect("encode");
        bytes[16] = 9;
        assert!(matches!(
            Frame::decode(&bytes),
            Err(DecodeError::Malformed {
                kind: Kind::GetSession,
                ..
            })
        ));

        // A user name claiming more octets than the body has: an error, not an allocation.
        let mut bytes = Frame::new(
            1,
            Message::GetSession(GetSession {
                selector: SessionSelector::User(Vec::new()),
            }),
        )
        .to_vec()
        .expect("encode");
        bytes.truncate(17);
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        bytes[12..16].copy_from_slice(&6u32.to_be_bytes());
        assert!(matches!(
            Frame::decode(&bytes),
            Err(DecodeError::Malformed { .. })
        ));
    }

    #[test]
    fn a_full_list_page_fits() {
        let page = Frame::new(
            1,
            Message::SessionList(SessionList {
                sessions: (0..MAX_LIST_PAGE).map(summary).collect(),
                next: Some(u16::MAX),
            }),
        );
        let bytes = page.to_vec().expect("a full page encodes");
        assert!(bytes.len() <= HEADER_LEN + MAX_BODY_LEN, "{}", bytes.len());
        let details = Frame::new(
            1,
            Message::SessionDetails(SessionDetails {
                sessions: (0..MAX_LIST_PAGE).map(|_| detail()).collect(),
            }),
        );
        assert!(details.to_vec().is_ok(), "a user's sessions fit");
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(
            kind in 0u16..30,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..128),
        ) {
            let mut bytes = vec![0; HEADER_LEN];
            let mut header = Header::new_unchecked(&mut bytes[..]);
            header.set_magic(MAGIC);
            header.set_version(VERSION);
            header.set_kind(Kind::from(kind));
            header.set_length(body.len() as u32);
            bytes.extend_from_slice(&body);
            let _ = Frame::decode(&bytes);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = frame_len(&bytes);
            let _ = Frame::decode(&bytes);
        }
    }
}
