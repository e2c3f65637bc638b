//! The PPTP control connection and its calls (RFC 2637 section 3), as a sans-I/O state
//! machine in both roles.
//!
//! In VPN use the client (pptp-linux, Windows) opens the control connection and asks for an
//! outgoing call, i.e. it plays the RFC's PNS; the concentrator answers as the PAC. We call
//! the two ends [`Role::Server`] (answers SCCRQ and OCRQ) and [`Role::Client`] (dials).
//!
//! One [`Connection`] is one TCP connection on port 1723 and every call on it. It reads no
//! clock and does no I/O (the quinn-proto shape):
//!
//! * inputs: [`Connection::handle_bytes`] (what TCP delivered),
//!   [`Connection::handle_message`] (a message already decoded: tests, fuzzers),
//!   [`Connection::handle_timeout`], [`Connection::handle_tcp_closed`], and the commands
//!   ([`accept`](Connection::accept), [`accept_call`](Connection::accept_call),
//!   [`place_call`](Connection::place_call), [`stop`](Connection::stop), ...);
//! * outputs: [`Connection::poll_transmit`] (bytes to write to TCP, one message each; or
//!   [`Connection::poll_message`] for the typed message), [`Connection::poll_event`], and
//!   [`Connection::poll_timeout`] (the earliest deadline).
//!
//! After every input, drain `poll_transmit` (write the bytes to TCP in order), then
//! `poll_event`, then re-arm the timer from `poll_timeout`. Once [`Event::Closed`] has come
//! out, write what `poll_transmit` still holds (a reply such as Stop-Control-Connection-Reply
//! may be queued) and close TCP; the connection takes no more input.
//!
//! Both queues are bounded: [`Connection::handle_bytes`] stops reading when either holds
//! [`QUEUE_LIMIT`] entries and returns how much it took, so a peer that floods us with
//! Echo-Requests is slowed down to the rate the caller drains replies at (TCP flow control
//! does the rest), never buffered without bound.

use core::fmt;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::wire;
use crate::wire::pptp::{
    BearerCapabilities, BearerType, CallClearRequest, CallDisconnectNotify, ControlMessageType,
    DecodeError, DisconnectResult, EchoReply, EchoRequest, EchoResult, ErrorCode, FixedStr,
    FramingCapabilities, FramingType, IncomingCallReply, IncomingCallResult, Message,
    OutgoingCallReply, OutgoingCallRequest, OutgoingCallResult, PROTOCOL_VERSION, RejectedMessage,
    SetLinkInfo, StartControlConnectionReply, StartControlConnectionRequest, StartResult,
    StopControlConnectionReply, StopControlConnectionRequest, StopReason, StopResult,
    StreamDecoder, WanErrorNotify,
};

#[cfg(test)]
mod test;

/// Soft bound of the transmit and the event queues: [`Connection::handle_bytes`] takes no
/// further message while either holds this many entries. One message adds at most
/// `2 + max_calls` entries, so neither queue exceeds `QUEUE_LIMIT + 2 + max_calls` through
/// peer input.
pub const QUEUE_LIMIT: usize = 64;

/// Which end of the control connection this machine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Answers Start-Control-Connection-Request and Outgoing-Call-Request: the concentrator
    /// (Poptop's role; the RFC's PAC).
    Server,
    /// Sends Start-Control-Connection-Request and Outgoing-Call-Request: pptp-linux's or
    /// Windows' role (the RFC's PNS). Used by the bench and the tests.
    Client,
}

/// Settings of one control connection. [`Default`] is what Poptop's pptpd answers with;
/// [`Config::pptp_linux`] is what pptp-linux dials with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Host Name sent in our SCCRQ/SCCRP. Poptop and pptp-linux both send "local".
    pub host_name: FixedStr<64>,
    /// Vendor String sent in our SCCRQ/SCCRP. Poptop sends "linux", pptp-linux "cananian".
    pub vendor: FixedStr<64>,
    /// Firmware Revision sent in our SCCRQ/SCCRP (1 for both).
    pub firmware_revision: u16,
    /// Framing Capabilities we announce (Poptop: none; pptp-linux: async and sync).
    pub framing_capabilities: FramingCapabilities,
    /// Bearer Capabilities we announce (Poptop: none; pptp-linux: analog and digital).
    pub bearer_capabilities: BearerCapabilities,
    /// Maximum Channels we announce (Poptop: 1; pptp-linux: 65535). Informational only: the
    /// limit we enforce is [`max_calls`](Self::max_calls).
    pub max_channels: u16,
    /// Server: the first message (SCCRQ) must arrive, and the caller must
    /// [`accept`](Connection::accept) it when admission is asked, within this time of
    /// [`Connection::new`]. Client: the SCCRP must arrive within it. Poptop's `stimeout`
    /// option, default 10 s.
    pub start_timeout: Duration,
    /// Send an Echo-Request after this long without any message from the peer
    /// (RFC 2637 section 2.5: 60 s). `None` sends none (we still answer the peer's).
    pub echo_interval: Option<Duration>,
    /// Close the connection when our Echo-Request has no Echo-Reply within this time
    /// (RFC 2637 section 2.5: 60 s).
    pub echo_timeout: Duration,
    /// After our Stop-Control-Connection-Request, wait this long for the reply before
    /// closing anyway. The RFC names no value; 3 s, as mpd does.
    pub stop_timeout: Duration,
    /// A call waiting for its answer is given up after this long. Server: the caller did not
    /// [`accept_call`](Connection::accept_call) in time, the peer gets an OCRP "Time-out".
    /// Client: no OCRP came (we send a CCRQ), or no CDN came after our CCRQ. 60 s.
    pub call_timeout: Duration,
    /// Calls (live or being set up) allowed on this connection; a further OCRQ gets OCRP
    /// "General Error / No-Resource". Poptop and every real client use one call per control
    /// connection, so 1; raise it for a client emulator that multiplexes.
    pub max_calls: usize,
    /// Server: when set, a valid SCCRQ raises [`Event::ConnectionRequested`] and waits for
    /// [`Connection::accept`] or [`Connection::refuse`] (e.g. for a connection limit per
    /// peer or overall). When clear (the default, as Poptop), the SCCRQ is answered at once.
    pub ask_admission: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host_name: FixedStr::new("local"),
            vendor: FixedStr::new("linux"),
            firmware_revision: 1,
            framing_capabilities: FramingCapabilities::NONE,
            bearer_capabilities: BearerCapabilities::NONE,
            max_channels: 1,
            start_timeout: Duration::from_secs(10),
            echo_interval: Some(Duration::from_secs(60)),
            echo_timeout: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(3),
            call_timeout: Duration::from_secs(60),
            max_calls: 1,
            ask_admission: false,
        }
    }
}

impl Config {
    /// What pptp-linux 1.10 sends in its SCCRQ (framing and bearer 3, max channels 65535,
    /// firmware 1, host "local", vendor "cananian"), with the default timers.
    pub fn pptp_linux() -> Self {
        Config {
            vendor: FixedStr::new("cananian"),
            framing_capabilities: FramingCapabilities::ASYNC | FramingCapabilities::SYNC,
            bearer_capabilities: BearerCapabilities::ANALOG | BearerCapabilities::DIGITAL,
            max_channels: 65535,
            ..Config::default()
        }
    }
}

/// What a client asks for in its Outgoing-Call-Request (RFC 2637 section 2.7). [`Default`]
/// is pptp-linux's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingCallParams {
    /// Our Packet Receive Window Size: GRE packets the peer may send unacknowledged
    /// (pptp-linux: 3).
    pub recv_window: u16,
    /// Minimum BPS (pptp-linux: 2400).
    pub min_bps: u32,
    /// Maximum BPS (pptp-linux: 10 000 000).
    pub max_bps: u32,
    /// Bearer Type (pptp-linux: any).
    pub bearer_type: BearerType,
    /// Framing Type (pptp-linux: any).
    pub framing_type: FramingType,
    /// Packet Processing Delay, in 1/10 s (0).
    pub packet_processing_delay: u16,
}

impl Default for OutgoingCallParams {
    fn default() -> Self {
        OutgoingCallParams {
            recv_window: 3,
            min_bps: 2400,
            max_bps: 10_000_000,
            bearer_type: BearerType::Any,
            framing_type: FramingType::Any,
            packet_processing_delay: 0,
        }
    }
}

/// State of the control connection (RFC 2637 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Server: TCP is open, no SCCRQ yet (the start timer runs).
    Idle,
    /// Client: our SCCRQ is out, the SCCRP has not come. Server: the SCCRQ came and the
    /// caller has not answered it yet ([`Config::ask_admission`]).
    WaitCtlReply,
    /// Calls may be placed.
    Established,
    /// Our Stop-Control-Connection-Request is out; the reply has not come.
    WaitStopReply,
    /// Over: see the [`Event::Closed`] cause.
    Closed,
}

/// State of one call (RFC 2637 section 3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallState {
    /// Server: the OCRQ came and the caller has not answered. Client: our OCRQ is out and
    /// the OCRP has not come.
    WaitReply,
    /// The call carries PPP.
    Established,
    /// Client: our Call-Clear-Request is out, the Call-Disconnect-Notify has not come.
    WaitDisconnect,
}

/// One call on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// Our Call ID: what the peer puts in GRE packets to us. Server: `None` until
    /// [`Connection::accept_call`].
    pub local_call_id: Option<u16>,
    /// The peer's Call ID: what we put in GRE packets to it. Client: `None` until the OCRP.
    pub peer_call_id: Option<u16>,
    /// Where the call stands.
    pub state: CallState,
    /// Call Serial Number of the OCRQ.
    pub serial_number: u16,
    /// The peer's Packet Receive Window Size (0 until known).
    pub peer_recv_window: u16,
    /// The peer's Packet Processing Delay, in 1/10 s.
    pub peer_packet_delay: u16,
    /// Connect Speed of the OCRP (sent or received), in bits per second.
    pub connect_speed: u32,
    /// Send ACCM of the last Set-Link-Info (0xffffffff, PPP's default, before any).
    pub send_accm: u32,
    /// Receive ACCM of the last Set-Link-Info (0xffffffff before any).
    pub recv_accm: u32,
    /// The last WAN-Error-Notify counters for this call, if any came.
    pub wan_errors: Option<WanErrorNotify>,
    deadline: Option<Instant>,
}

/// What the peer announced in its SCCRQ (server) or SCCRP (client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInfo {
    /// Protocol Version (0x0100).
    pub protocol_version: u16,
    /// Framing Capabilities.
    pub framing_capabilities: FramingCapabilities,
    /// Bearer Capabilities.
    pub bearer_capabilities: BearerCapabilities,
    /// Maximum Channels.
    pub max_channels: u16,
    /// Firmware Revision.
    pub firmware_revision: u16,
    /// Host Name.
    pub host_name: FixedStr<64>,
    /// Vendor String.
    pub vendor: FixedStr<64>,
}

impl From<&StartControlConnectionRequest> for PeerInfo {
    fn from(m: &StartControlConnectionRequest) -> Self {
        PeerInfo {
            protocol_version: m.protocol_version,
            framing_capabilities: m.framing_capabilities,
            bearer_capabilities: m.bearer_capabilities,
            max_channels: m.max_channels,
            firmware_revision: m.firmware_revision,
            host_name: m.host_name,
            vendor: m.vendor,
        }
    }
}

impl From<&StartControlConnectionReply> for PeerInfo {
    fn from(m: &StartControlConnectionReply) -> Self {
        PeerInfo {
            protocol_version: m.protocol_version,
            framing_capabilities: m.framing_capabilities,
            bearer_capabilities: m.bearer_capabilities,
            max_channels: m.max_channels,
            firmware_revision: m.firmware_revision,
            host_name: m.host_name,
            vendor: m.vendor,
        }
    }
}

/// A call is up: what the GRE layer needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallEstablished {
    /// Our Call ID (the key of GRE packets we receive).
    pub local_call_id: u16,
    /// The peer's Call ID (the key of GRE packets we send).
    pub peer_call_id: u16,
    /// The peer's Packet Receive Window Size.
    pub peer_recv_window: u16,
    /// The peer's Packet Processing Delay, in 1/10 s.
    pub peer_packet_delay: u16,
    /// Connect Speed of the OCRP, in bits per second.
    pub connect_speed: u32,
}

/// Why a control connection ended. `Display` gives the log text; [`Self::stop_reason`] and
/// [`Self::disconnect_result`] the RFC codes that fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    /// The peer sent Stop-Control-Connection-Request (we replied).
    PeerStop(StopReason),
    /// We sent Stop-Control-Connection-Request ([`Connection::stop`]); `acknowledged` when
    /// the reply came (or the peer's own StopCCRQ crossed ours), not on timeout or TCP close.
    LocalStop {
        /// The Reason we sent.
        reason: StopReason,
        /// Whether the peer answered.
        acknowledged: bool,
    },
    /// No SCCRQ (server) or SCCRP (client) within [`Config::start_timeout`].
    StartTimeout,
    /// Our Echo-Request had no reply within [`Config::echo_timeout`].
    EchoTimeout,
    /// The byte stream lost its framing (bad Length or Magic Cookie): RFC 2637 Bad-Format.
    FramingError(wire::Error),
    /// The peer closed TCP ([`Connection::handle_tcp_closed`]).
    TcpClosed,
    /// The peer speaks another protocol version (its value). Server: we answered SCCRP
    /// result 5; client: we sent StopCCRQ "Stop-Protocol".
    BadProtocolVersion(u16),
    /// The SCCRQ was refused: by the caller ([`Connection::refuse`], server) or by the peer
    /// (an SCCRP result other than Success, client).
    Refused {
        /// Result Code of the SCCRP.
        result: StartResult,
        /// Error Code of the SCCRP.
        error: ErrorCode,
    },
}

impl CloseCause {
    /// The Stop-Control-Connection-Request Reason that describes this cause, for a caller
    /// that reports it to a peer.
    pub fn stop_reason(&self) -> StopReason {
        match self {
            CloseCause::PeerStop(reason) | CloseCause::LocalStop { reason, .. } => *reason,
            CloseCause::BadProtocolVersion(_) => StopReason::StopProtocol,
            _ => StopReason::GeneralRequest,
        }
    }

    /// The Call-Disconnect-Notify Result that describes a call ended by this cause: an
    /// orderly stop is an administrative shutdown, a dead link a lost carrier.
    pub fn disconnect_result(&self) -> DisconnectResult {
        match self {
            CloseCause::PeerStop(_) | CloseCause::LocalStop { .. } | CloseCause::Refused { .. } => {
                DisconnectResult::AdminShutdown
            }
            CloseCause::StartTimeout
            | CloseCause::EchoTimeout
            | CloseCause::TcpClosed
            | CloseCause::FramingError(_) => DisconnectResult::LostCarrier,
            CloseCause::BadProtocolVersion(_) => DisconnectResult::GeneralError,
        }
    }
}

impl fmt::Display for CloseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseCause::PeerStop(reason) => {
                write!(f, "peer stopped the control connection (reason {reason:?})")
            }
            CloseCause::LocalStop {
                reason,
                acknowledged: true,
            } => write!(f, "control connection stopped (reason {reason:?})"),
            CloseCause::LocalStop { reason, .. } => write!(
                f,
                "control connection stopped (reason {reason:?}), peer did not reply"
            ),
            CloseCause::StartTimeout => f.write_str("no start-control-connection in time"),
            CloseCause::EchoTimeout => f.write_str("no echo reply in time"),
            CloseCause::FramingError(error) => write!(f, "control stream framing lost: {error}"),
            CloseCause::TcpClosed => f.write_str("peer closed the TCP connection"),
            CloseCause::BadProtocolVersion(version) => write!(
                f,
                "peer protocol version {}.{} not supported",
                version >> 8,
                version & 0xff
            ),
            CloseCause::Refused { result, error } => write!(
                f,
                "control connection refused (result {result:?}, error {error:?})"
            ),
        }
    }
}

/// Why a call ended (or never started). `Display` gives the log text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallClearCause {
    /// The peer sent Call-Clear-Request; we answered Call-Disconnect-Notify "Request".
    PeerClearRequest,
    /// The peer sent Call-Disconnect-Notify.
    PeerDisconnect {
        /// Its Result Code.
        result: DisconnectResult,
        /// Its Error Code.
        error: ErrorCode,
        /// Its Cause Code.
        cause_code: u16,
    },
    /// We sent Call-Disconnect-Notify ([`Connection::disconnect_call`]).
    LocalDisconnect(DisconnectResult),
    /// We sent Call-Clear-Request ([`Connection::clear_call`]); `acknowledged` when the CDN
    /// came, not on timeout.
    LocalClear {
        /// Whether the peer answered with a CDN.
        acknowledged: bool,
    },
    /// The OCRP said no: sent by us ([`Connection::refuse_call`]) or received (client).
    Refused {
        /// Result Code of the OCRP.
        result: OutgoingCallResult,
        /// Error Code of the OCRP.
        error: ErrorCode,
    },
    /// No answer within [`Config::call_timeout`] (server: we sent OCRP "Time-out"; client:
    /// we sent Call-Clear-Request).
    SetupTimeout,
    /// The control connection ended, taking the call with it.
    ConnectionClosed(CloseCause),
}

impl CallClearCause {
    /// The Call-Disconnect-Notify Result that describes this cause.
    pub fn disconnect_result(&self) -> DisconnectResult {
        match self {
            CallClearCause::PeerClearRequest | CallClearCause::LocalClear { .. } => {
                DisconnectResult::Request
            }
            CallClearCause::PeerDisconnect { result, .. }
            | CallClearCause::LocalDisconnect(result) => *result,
            CallClearCause::Refused { .. } | CallClearCause::SetupTimeout => {
                DisconnectResult::GeneralError
            }
            CallClearCause::ConnectionClosed(cause) => cause.disconnect_result(),
        }
    }
}

impl fmt::Display for CallClearCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallClearCause::PeerClearRequest => f.write_str("peer cleared the call"),
            CallClearCause::PeerDisconnect {
                result,
                error,
                cause_code,
            } => write!(
                f,
                "peer disconnected the call (result {result:?}, error {error:?}, cause {cause_code})"
            ),
            CallClearCause::LocalDisconnect(result) => {
                write!(f, "call disconnected (result {result:?})")
            }
            CallClearCause::LocalClear { acknowledged: true } => f.write_str("call cleared"),
            CallClearCause::LocalClear { .. } => {
                f.write_str("call cleared, peer sent no disconnect notify")
            }
            CallClearCause::Refused { result, error } => {
                write!(f, "call refused (result {result:?}, error {error:?})")
            }
            CallClearCause::SetupTimeout => f.write_str("call not answered in time"),
            CallClearCause::ConnectionClosed(cause) => {
                write!(f, "control connection closed: {cause}")
            }
        }
    }
}

/// Why a well-formed message did nothing but, at most, an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoreReason {
    /// Not valid in this connection state (answered where the RFC has an answer: an
    /// Echo-Request or OCRQ before the connection is up gets "Not-Connected"; a second
    /// SCCRQ gets SCCRP "channel exists").
    UnexpectedInState(State),
    /// No call on this connection has this Call ID (a CCRQ, CDN, SLI, WEN or OCRP for a
    /// call we do not know, or no longer know).
    UnknownCallId(u16),
    /// A Control Message Type we do not know.
    UnknownMessageType,
    /// An Echo-Reply whose Identifier is not that of our outstanding Echo-Request.
    EchoIdentifierMismatch(u32),
    /// An Incoming-Call-Request: we never accept incoming calls (ICRP "Do Not Accept").
    IncomingCallRefused,
    /// An OCRQ to a client, which takes no calls (OCRP "Do Not Accept").
    OutgoingCallRefused,
    /// An OCRQ beyond [`Config::max_calls`] (OCRP "General Error / No-Resource").
    TooManyCalls,
    /// An OCRQ with a Call ID a live call already has (OCRP "General Error / Bad-Call ID").
    DuplicateCallId(u16),
}

impl fmt::Display for IgnoreReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IgnoreReason::UnexpectedInState(state) => write!(f, "unexpected in state {state:?}"),
            IgnoreReason::UnknownCallId(id) => write!(f, "unknown call ID {id}"),
            IgnoreReason::UnknownMessageType => f.write_str("unknown message type"),
            IgnoreReason::EchoIdentifierMismatch(id) => {
                write!(f, "echo reply with unexpected identifier {id:#x}")
            }
            IgnoreReason::IncomingCallRefused => f.write_str("incoming calls not accepted"),
            IgnoreReason::OutgoingCallRefused => f.write_str("outgoing calls not accepted"),
            IgnoreReason::TooManyCalls => f.write_str("too many calls on this connection"),
            IgnoreReason::DuplicateCallId(id) => write!(f, "call ID {id} already in use"),
        }
    }
}

/// What the layer above must know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Server with [`Config::ask_admission`]: a valid SCCRQ came; answer with
    /// [`Connection::accept`] or [`Connection::refuse`] before the start timeout.
    ConnectionRequested(PeerInfo),
    /// The control connection is up (SCCRP Success sent or received).
    Established(PeerInfo),
    /// Server: the peer asks for a call. Answer with [`Connection::accept_call`] (after
    /// allocating a local Call ID) or [`Connection::refuse_call`], keyed by the request's
    /// `call_id` (the peer's Call ID), before [`Config::call_timeout`].
    CallRequested(OutgoingCallRequest),
    /// A call is up: server after `accept_call`, client on the OCRP.
    CallEstablished(CallEstablished),
    /// The peer sent Set-Link-Info for a call: PPP's negotiated ACCMs.
    LinkInfo {
        /// Our Call ID of the call.
        local_call_id: u16,
        /// Send ACCM.
        send_accm: u32,
        /// Receive ACCM.
        recv_accm: u32,
    },
    /// The peer sent WAN-Error-Notify for a call.
    WanError {
        /// Our Call ID of the call.
        local_call_id: u16,
        /// The counters.
        errors: WanErrorNotify,
    },
    /// A call ended, or a request for one was given up. Every call that was reported
    /// (`CallRequested`, `place_call`) ends with exactly one of these.
    CallCleared {
        /// Our Call ID, if one was assigned.
        local_call_id: Option<u16>,
        /// The peer's Call ID, if known.
        peer_call_id: Option<u16>,
        /// Why.
        cause: CallClearCause,
    },
    /// A well-formed message was ignored (or answered with an error) instead of acted on.
    Ignored {
        /// Its type.
        message_type: ControlMessageType,
        /// Why.
        reason: IgnoreReason,
    },
    /// The stream decoder cut out a message it could not parse (a known type with the wrong
    /// Length, a management message): logged, not answered, the stream goes on.
    Rejected(RejectedMessage),
    /// The connection is over. The last event; flush `poll_transmit`, then close TCP.
    Closed(CloseCause),
}

/// Why a command was not carried out. Nothing was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandError {
    /// The connection is not in a state where this command means anything.
    WrongState(State),
    /// This role does not do that (e.g. a server placing a call).
    WrongRole(Role),
    /// No call with that Call ID (in the state the command needs).
    UnknownCall(u16),
    /// A live call on this connection already uses that local Call ID.
    CallIdInUse(u16),
    /// [`Config::max_calls`] calls already exist.
    TooManyCalls,
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommandError::WrongState(state) => write!(f, "not possible in state {state:?}"),
            CommandError::WrongRole(role) => write!(f, "not possible in role {role:?}"),
            CommandError::UnknownCall(id) => write!(f, "no call with ID {id}"),
            CommandError::CallIdInUse(id) => write!(f, "call ID {id} already in use"),
            CommandError::TooManyCalls => f.write_str("too many calls"),
        }
    }
}

impl core::error::Error for CommandError {}

/// Message counters of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Messages received and parsed.
    pub messages_received: u64,
    /// Messages queued for sending.
    pub messages_sent: u64,
    /// Messages the decoder rejected ([`Event::Rejected`]).
    pub rejected: u64,
    /// Messages ignored ([`Event::Ignored`]).
    pub ignored: u64,
    /// Echo-Requests we sent.
    pub echo_requests_sent: u64,
}

/// Echo keepalive bookkeeping (RFC 2637 section 2.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Echo {
    /// Nothing outstanding; the next Echo-Request goes at `last_rx + echo_interval`.
    Idle,
    /// Our Echo-Request with this Identifier waits for its reply until `deadline`.
    Outstanding { identifier: u32, deadline: Instant },
}

/// One PPTP control connection and its calls, either role. See the [module docs](self) for
/// the order of calls.
#[derive(Debug, Clone)]
pub struct Connection {
    role: Role,
    config: Config,
    state: State,
    decoder: StreamDecoder,
    transmit: VecDeque<Message>,
    events: VecDeque<Event>,
    calls: Vec<Call>,
    peer: Option<PeerInfo>,
    /// Start timer (Idle/WaitCtlReply) or stop timer (WaitStopReply).
    deadline: Option<Instant>,
    /// The cause reported when WaitStopReply ends.
    stop_cause: Option<CloseCause>,
    last_rx: Instant,
    echo: Echo,
    next_echo_identifier: u32,
    next_serial: u16,
    stats: Stats,
}

impl Connection {
    /// A connection whose TCP connection has just opened at `now`. A server starts in
    /// [`State::Idle`] with the start timer running; a client queues its SCCRQ at once and
    /// waits in [`State::WaitCtlReply`].
    pub fn new(role: Role, config: Config, now: Instant) -> Self {
        let deadline = now.checked_add(config.start_timeout);
        let mut connection = Connection {
            role,
            config,
            state: State::Idle,
            decoder: StreamDecoder::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            calls: Vec::new(),
            peer: None,
            deadline,
            stop_cause: None,
            last_rx: now,
            echo: Echo::Idle,
            next_echo_identifier: 1,
            next_serial: 0,
            stats: Stats::default(),
        };
        if role == Role::Client {
            let sccrq = StartControlConnectionRequest {
                protocol_version: PROTOCOL_VERSION,
                framing_capabilities: connection.config.framing_capabilities,
                bearer_capabilities: connection.config.bearer_capabilities,
                max_channels: connection.config.max_channels,
                firmware_revision: connection.config.firmware_revision,
                host_name: connection.config.host_name,
                vendor: connection.config.vendor,
            };
            connection.send(sccrq);
            connection.state = State::WaitCtlReply;
        }
        connection
    }

    /// A server-role connection ([`Role::Server`]).
    pub fn server(config: Config, now: Instant) -> Self {
        Self::new(Role::Server, config, now)
    }

    /// A client-role connection ([`Role::Client`]); its SCCRQ is queued.
    pub fn client(config: Config, now: Instant) -> Self {
        Self::new(Role::Client, config, now)
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The connection state.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the connection is over.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// What the peer announced, once its SCCRQ (server) or SCCRP (client) came.
    pub fn peer_info(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// Every call not yet cleared.
    pub fn calls(&self) -> impl Iterator<Item = &Call> {
        self.calls.iter()
    }

    /// The call with this local Call ID.
    pub fn call(&self, local_call_id: u16) -> Option<&Call> {
        self.calls
            .iter()
            .find(|c| c.local_call_id == Some(local_call_id))
    }

    /// Message counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    // ---------------------------------------------------------------- outputs

    /// The next message to write to TCP, as bytes (one whole message), oldest first.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let message = self.transmit.pop_front()?;
        let mut buf = vec![0; message.buffer_len()];
        // `buffer_len` octets are always enough; on the impossible error nothing is written.
        let len = message.emit(&mut buf).unwrap_or(0);
        buf.truncate(len);
        Some(buf)
    }

    /// The next message to send, typed (the same queue as [`Self::poll_transmit`]).
    pub fn poll_message(&mut self) -> Option<Message> {
        self.transmit.pop_front()
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest deadline; call [`Self::handle_timeout`] when it is reached. `None` when
    /// no timer runs (closed, or echo disabled with nothing pending).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let mut earliest = self.deadline;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        };
        if self.state == State::Established {
            consider(match self.echo {
                Echo::Idle => self
                    .config
                    .echo_interval
                    .and_then(|i| self.last_rx.checked_add(i)),
                Echo::Outstanding { deadline, .. } => Some(deadline),
            });
        }
        for call in &self.calls {
            consider(call.deadline);
        }
        earliest
    }

    // ----------------------------------------------------------------- inputs

    /// Feeds bytes TCP delivered. Returns how many were taken: all of them unless a queue
    /// reached [`QUEUE_LIMIT`]; then drain the outputs and call again with the rest. After
    /// the connection closed, input is taken and discarded.
    #[must_use = "bytes not taken must be fed again"]
    pub fn handle_bytes(&mut self, now: Instant, data: &[u8]) -> usize {
        let mut taken = 0;
        loop {
            if self.state == State::Closed {
                return data.len();
            }
            if self.transmit.len() >= QUEUE_LIMIT || self.events.len() >= QUEUE_LIMIT {
                return taken;
            }
            let mut input = data.get(taken..).unwrap_or_default();
            let before = input.len();
            let item = self.decoder.decode(&mut input);
            taken = taken.saturating_add(before.saturating_sub(input.len()));
            match item {
                None => return taken,
                Some(Ok(message)) => self.handle_message(now, message),
                Some(Err(DecodeError::Framing(error))) => {
                    self.close(CloseCause::FramingError(error));
                }
                Some(Err(DecodeError::Rejected(rejected))) => {
                    self.last_rx = now;
                    self.stats.rejected = self.stats.rejected.saturating_add(1);
                    self.events.push_back(Event::Rejected(rejected));
                }
            }
        }
    }

    /// Handles one message from the peer (what [`Self::handle_bytes`] does for each message
    /// it decodes). Ignored once closed.
    pub fn handle_message(&mut self, now: Instant, message: Message) {
        if self.state == State::Closed {
            return;
        }
        self.stats.messages_received = self.stats.messages_received.saturating_add(1);
        self.last_rx = now;
        match message {
            Message::StartControlConnectionRequest(m) => self.on_sccrq(now, m),
            Message::StartControlConnectionReply(m) => self.on_sccrp(now, m),
            Message::StopControlConnectionRequest(m) => self.on_stop_request(m),
            Message::StopControlConnectionReply(_) => self.on_stop_reply(),
            Message::EchoRequest(m) => self.on_echo_request(m),
            Message::EchoReply(m) => self.on_echo_reply(m),
            Message::OutgoingCallRequest(m) => self.on_ocrq(now, m),
            Message::OutgoingCallReply(m) => self.on_ocrp(m),
            Message::IncomingCallRequest(m) => {
                self.send(IncomingCallReply {
                    call_id: 0,
                    peer_call_id: m.call_id,
                    result: IncomingCallResult::DoNotAccept,
                    error: ErrorCode::NoError,
                    recv_window_size: 0,
                    packet_transmit_delay: 0,
                });
                self.ignore(
                    ControlMessageType::IncomingCallRequest,
                    IgnoreReason::IncomingCallRefused,
                );
            }
            Message::IncomingCallReply(_) | Message::IncomingCallConnected(_) => {
                self.unexpected(message.message_type())
            }
            Message::CallClearRequest(m) => self.on_ccrq(m),
            Message::CallDisconnectNotify(m) => self.on_cdn(m),
            Message::WanErrorNotify(m) => self.on_wen(m),
            Message::SetLinkInfo(m) => self.on_sli(m),
            Message::Unknown(m) => {
                self.ignore(m.control_message_type(), IgnoreReason::UnknownMessageType)
            }
        }
    }

    /// Acts on every deadline reached by `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Closed {
            return;
        }
        if self.deadline.is_some_and(|d| d <= now) {
            self.deadline = None;
            match self.state {
                State::Idle | State::WaitCtlReply => {
                    self.close(CloseCause::StartTimeout);
                    return;
                }
                State::WaitStopReply => {
                    let cause = self.stop_cause.unwrap_or(CloseCause::LocalStop {
                        reason: StopReason::GeneralRequest,
                        acknowledged: false,
                    });
                    self.close(cause);
                    return;
                }
                State::Established | State::Closed => {}
            }
        }
        if self.state == State::Established {
            match self.echo {
                Echo::Outstanding { deadline, .. } if deadline <= now => {
                    self.close(CloseCause::EchoTimeout);
                    return;
                }
                Echo::Idle => {
                    let due = self
                        .config
                        .echo_interval
                        .and_then(|i| self.last_rx.checked_add(i));
                    if due.is_some_and(|d| d <= now) {
                        let identifier = self.next_echo_identifier;
                        self.next_echo_identifier = identifier.wrapping_add(1);
                        self.stats.echo_requests_sent =
                            self.stats.echo_requests_sent.saturating_add(1);
                        self.send(EchoRequest { identifier });
                        let deadline = now.checked_add(self.config.echo_timeout).unwrap_or(now);
                        self.echo = Echo::Outstanding {
                            identifier,
                            deadline,
                        };
                    }
                }
                Echo::Outstanding { .. } => {}
            }
        }
        self.call_timeouts(now);
    }

    /// The peer closed TCP (EOF or reset): the connection ends with
    /// [`CloseCause::TcpClosed`], or, while our StopCCRQ waits for its reply, with that
    /// stop's cause (a peer may close instead of replying).
    pub fn handle_tcp_closed(&mut self, _now: Instant) {
        match self.state {
            State::Closed => {}
            State::WaitStopReply => {
                let cause = self.stop_cause.unwrap_or(CloseCause::TcpClosed);
                self.close(cause);
            }
            _ => self.close(CloseCause::TcpClosed),
        }
    }

    // --------------------------------------------------------------- commands

    /// Server, [`State::WaitCtlReply`] (admission asked): answer SCCRP Success.
    pub fn accept(&mut self, _now: Instant) -> Result<(), CommandError> {
        self.require(Role::Server, State::WaitCtlReply)?;
        self.send_sccrp(StartResult::Success, ErrorCode::NoError);
        self.establish();
        Ok(())
    }

    /// Server, [`State::WaitCtlReply`] (admission asked): answer the SCCRQ with `result`
    /// (usually [`StartResult::NotAuthorized`], or [`StartResult::GeneralError`] with
    /// [`ErrorCode::NoResource`] for a connection limit) and close with
    /// [`CloseCause::Refused`].
    pub fn refuse(
        &mut self,
        _now: Instant,
        result: StartResult,
        error: ErrorCode,
    ) -> Result<(), CommandError> {
        self.require(Role::Server, State::WaitCtlReply)?;
        self.send_sccrp(result, error);
        self.close(CloseCause::Refused { result, error });
        Ok(())
    }

    /// Server: accept the call the peer asked for with Call ID `peer_call_id`
    /// ([`Event::CallRequested`]). `local_call_id` is ours: the control plane allocates it,
    /// unique among all live calls of the concentrator and unpredictable (this machine only
    /// checks uniqueness on this connection). `recv_window` is our Packet Receive Window
    /// Size (Poptop and accel-ppp echo the peer's). Sends OCRP "Connected" at the peer's
    /// Maximum BPS and raises [`Event::CallEstablished`].
    pub fn accept_call(
        &mut self,
        _now: Instant,
        peer_call_id: u16,
        local_call_id: u16,
        recv_window: u16,
    ) -> Result<(), CommandError> {
        self.require(Role::Server, State::Established)?;
        if self.call(local_call_id).is_some() {
            return Err(CommandError::CallIdInUse(local_call_id));
        }
        let index = self
            .pending_server_call(peer_call_id)
            .ok_or(CommandError::UnknownCall(peer_call_id))?;
        let Some(call) = self.calls.get_mut(index) else {
            return Err(CommandError::UnknownCall(peer_call_id));
        };
        call.local_call_id = Some(local_call_id);
        call.state = CallState::Established;
        call.deadline = None;
        let established = CallEstablished {
            local_call_id,
            peer_call_id,
            peer_recv_window: call.peer_recv_window,
            peer_packet_delay: call.peer_packet_delay,
            connect_speed: call.connect_speed,
        };
        self.send(OutgoingCallReply {
            call_id: local_call_id,
            peer_call_id,
            result: OutgoingCallResult::Connected,
            error: ErrorCode::NoError,
            cause_code: 0,
            connect_speed: established.connect_speed,
            recv_window_size: recv_window,
            packet_processing_delay: 0,
            physical_channel_id: 0,
        });
        self.events.push_back(Event::CallEstablished(established));
        Ok(())
    }

    /// Server: refuse the call the peer asked for with Call ID `peer_call_id`: OCRP with
    /// `result` (not `Connected`; e.g. [`OutgoingCallResult::GeneralError`] with
    /// [`ErrorCode::NoResource`] when no Call ID or address is free, or
    /// [`OutgoingCallResult::DoNotAccept`]). Raises [`Event::CallCleared`].
    pub fn refuse_call(
        &mut self,
        _now: Instant,
        peer_call_id: u16,
        result: OutgoingCallResult,
        error: ErrorCode,
    ) -> Result<(), CommandError> {
        self.require(Role::Server, State::Established)?;
        let index = self
            .pending_server_call(peer_call_id)
            .ok_or(CommandError::UnknownCall(peer_call_id))?;
        self.send_ocrp_refusal(peer_call_id, result, error);
        self.remove_call(index, CallClearCause::Refused { result, error });
        Ok(())
    }

    /// Server: hang up an established call: Call-Disconnect-Notify with `result` (usually
    /// [`DisconnectResult::AdminShutdown`]). Raises [`Event::CallCleared`].
    pub fn disconnect_call(
        &mut self,
        _now: Instant,
        local_call_id: u16,
        result: DisconnectResult,
    ) -> Result<(), CommandError> {
        self.require(Role::Server, State::Established)?;
        let index = self
            .call_index(local_call_id)
            .ok_or(CommandError::UnknownCall(local_call_id))?;
        self.send(CallDisconnectNotify {
            call_id: local_call_id,
            result,
            error: ErrorCode::NoError,
            cause_code: 0,
            call_statistics: FixedStr::empty(),
        });
        self.remove_call(index, CallClearCause::LocalDisconnect(result));
        Ok(())
    }

    /// Client: ask for a call with our Call ID `local_call_id`: OCRQ with the next Call
    /// Serial Number (from 0, as pptp-linux). The answer comes as [`Event::CallEstablished`]
    /// or [`Event::CallCleared`].
    pub fn place_call(
        &mut self,
        now: Instant,
        local_call_id: u16,
        params: OutgoingCallParams,
    ) -> Result<(), CommandError> {
        self.require(Role::Client, State::Established)?;
        if self.call(local_call_id).is_some() {
            return Err(CommandError::CallIdInUse(local_call_id));
        }
        if self.calls.len() >= self.config.max_calls {
            return Err(CommandError::TooManyCalls);
        }
        let serial_number = self.next_serial;
        self.next_serial = serial_number.wrapping_add(1);
        self.calls.push(Call {
            local_call_id: Some(local_call_id),
            peer_call_id: None,
            state: CallState::WaitReply,
            serial_number,
            peer_recv_window: 0,
            peer_packet_delay: 0,
            connect_speed: 0,
            send_accm: u32::MAX,
            recv_accm: u32::MAX,
            wan_errors: None,
            deadline: now.checked_add(self.config.call_timeout),
        });
        self.send(OutgoingCallRequest {
            call_id: local_call_id,
            call_serial_number: serial_number,
            min_bps: params.min_bps,
            max_bps: params.max_bps,
            bearer_type: params.bearer_type,
            framing_type: params.framing_type,
            recv_window_size: params.recv_window,
            packet_processing_delay: params.packet_processing_delay,
            phone_number_len: 0,
            phone_number: FixedStr::empty(),
            subaddress: FixedStr::empty(),
        });
        Ok(())
    }

    /// Client: hang up a call (established or still waiting for its OCRP): Call-Clear-Request,
    /// then wait for the CDN ([`Config::call_timeout`]). pptp-linux instead closes TCP
    /// right after its CCRQ; a caller that wants that can call [`Self::stop`] or just drop
    /// the connection.
    pub fn clear_call(&mut self, now: Instant, local_call_id: u16) -> Result<(), CommandError> {
        self.require(Role::Client, State::Established)?;
        let index = self
            .call_index(local_call_id)
            .ok_or(CommandError::UnknownCall(local_call_id))?;
        let deadline = now.checked_add(self.config.call_timeout);
        if let Some(call) = self.calls.get_mut(index) {
            if call.state == CallState::WaitDisconnect {
                return Err(CommandError::UnknownCall(local_call_id));
            }
            call.state = CallState::WaitDisconnect;
            call.deadline = deadline;
        }
        self.send(CallClearRequest {
            call_id: local_call_id,
        });
        Ok(())
    }

    /// Send Set-Link-Info for an established call (what pppd's pptp plugin does after LCP):
    /// the ACCMs PPP negotiated.
    pub fn set_link_info(
        &mut self,
        _now: Instant,
        local_call_id: u16,
        send_accm: u32,
        recv_accm: u32,
    ) -> Result<(), CommandError> {
        self.require_state(State::Established)?;
        let peer_call_id = self
            .call(local_call_id)
            .filter(|c| c.state == CallState::Established)
            .and_then(|c| c.peer_call_id)
            .ok_or(CommandError::UnknownCall(local_call_id))?;
        self.send(SetLinkInfo {
            peer_call_id,
            send_accm,
            recv_accm,
        });
        Ok(())
    }

    /// Stop the control connection. Established: Stop-Control-Connection-Request with
    /// `reason`, then wait for the reply ([`Config::stop_timeout`]) and close with
    /// [`CloseCause::LocalStop`]; the calls are cleared with it (the RFC's implicit clear).
    /// Before that: close at once (nothing to stop). Closed: nothing.
    pub fn stop(&mut self, now: Instant, reason: StopReason) {
        match self.state {
            State::Closed | State::WaitStopReply => {}
            State::Idle | State::WaitCtlReply => self.close(CloseCause::LocalStop {
                reason,
                acknowledged: false,
            }),
            State::Established => self.begin_stop(
                now,
                reason,
                CloseCause::LocalStop {
                    reason,
                    acknowledged: false,
                },
            ),
        }
    }

    // -------------------------------------------------------------- internals

    /// A command's precondition: our role, then the connection's state.
    fn require(&self, role: Role, state: State) -> Result<(), CommandError> {
        if self.role != role {
            return Err(CommandError::WrongRole(self.role));
        }
        self.require_state(state)
    }

    fn require_state(&self, state: State) -> Result<(), CommandError> {
        if self.state == state {
            Ok(())
        } else {
            Err(CommandError::WrongState(self.state))
        }
    }

    fn send(&mut self, message: impl Into<Message>) {
        self.stats.messages_sent = self.stats.messages_sent.saturating_add(1);
        self.transmit.push_back(message.into());
    }

    fn ignore(&mut self, message_type: ControlMessageType, reason: IgnoreReason) {
        self.stats.ignored = self.stats.ignored.saturating_add(1);
        self.events.push_back(Event::Ignored {
            message_type,
            reason,
        });
    }

    fn unexpected(&mut self, message_type: ControlMessageType) {
        self.ignore(message_type, IgnoreReason::UnexpectedInState(self.state));
    }

    fn send_sccrp(&mut self, result: StartResult, error: ErrorCode) {
        self.send(StartControlConnectionReply {
            protocol_version: PROTOCOL_VERSION,
            result,
            error,
            framing_capabilities: self.config.framing_capabilities,
            bearer_capabilities: self.config.bearer_capabilities,
            max_channels: self.config.max_channels,
            firmware_revision: self.config.firmware_revision,
            host_name: self.config.host_name,
            vendor: self.config.vendor,
        });
    }

    fn send_ocrp_refusal(
        &mut self,
        peer_call_id: u16,
        result: OutgoingCallResult,
        error: ErrorCode,
    ) {
        self.send(OutgoingCallReply {
            call_id: 0,
            peer_call_id,
            result,
            error,
            cause_code: 0,
            connect_speed: 0,
            recv_window_size: 0,
            packet_processing_delay: 0,
            physical_channel_id: 0,
        });
    }

    fn establish(&mut self) {
        self.state = State::Established;
        self.deadline = None;
        self.echo = Echo::Idle;
        if let Some(peer) = self.peer {
            self.events.push_back(Event::Established(peer));
        }
    }

    fn begin_stop(&mut self, now: Instant, reason: StopReason, cause: CloseCause) {
        self.send(StopControlConnectionRequest { reason });
        self.state = State::WaitStopReply;
        self.stop_cause = Some(cause);
        self.deadline = Some(now.checked_add(self.config.stop_timeout).unwrap_or(now));
    }

    /// Ends the connection: every call is cleared with the cause, then `Closed`.
    fn close(&mut self, cause: CloseCause) {
        if self.state == State::Closed {
            return;
        }
        for call in core::mem::take(&mut self.calls) {
            self.events.push_back(Event::CallCleared {
                local_call_id: call.local_call_id,
                peer_call_id: call.peer_call_id,
                cause: CallClearCause::ConnectionClosed(cause),
            });
        }
        self.state = State::Closed;
        self.deadline = None;
        self.stop_cause = None;
        self.events.push_back(Event::Closed(cause));
    }

    fn remove_call(&mut self, index: usize, cause: CallClearCause) {
        if index < self.calls.len() {
            let call = self.calls.remove(index);
            self.events.push_back(Event::CallCleared {
                local_call_id: call.local_call_id,
                peer_call_id: call.peer_call_id,
                cause,
            });
        }
    }

    fn call_index(&self, local_call_id: u16) -> Option<usize> {
        self.calls
            .iter()
            .position(|c| c.local_call_id == Some(local_call_id))
    }

    fn peer_call_index(&self, peer_call_id: u16) -> Option<usize> {
        self.calls
            .iter()
            .position(|c| c.peer_call_id == Some(peer_call_id))
    }

    fn pending_server_call(&self, peer_call_id: u16) -> Option<usize> {
        self.calls
            .iter()
            .position(|c| c.peer_call_id == Some(peer_call_id) && c.state == CallState::WaitReply)
    }

    fn call_timeouts(&mut self, now: Instant) {
        while let Some(index) = self
            .calls
            .iter()
            .position(|c| c.deadline.is_some_and(|d| d <= now))
        {
            let Some(call) = self.calls.get(index).copied() else {
                return;
            };
            match (self.role, call.state) {
                (Role::Server, _) => {
                    if let Some(peer_call_id) = call.peer_call_id {
                        self.send_ocrp_refusal(
                            peer_call_id,
                            OutgoingCallResult::TimeOut,
                            ErrorCode::NoError,
                        );
                    }
                    self.remove_call(index, CallClearCause::SetupTimeout);
                }
                (Role::Client, CallState::WaitDisconnect) => {
                    self.remove_call(
                        index,
                        CallClearCause::LocalClear {
                            acknowledged: false,
                        },
                    );
                }
                (Role::Client, _) => {
                    if let Some(call_id) = call.local_call_id {
                        self.send(CallClearRequest { call_id });
                    }
                    self.remove_call(index, CallClearCause::SetupTimeout);
                }
            }
        }
    }

    // ------------------------------------------------------ message handlers

    fn on_sccrq(&mut self, _now: Instant, m: StartControlConnectionRequest) {
        let kind = ControlMessageType::StartControlConnectionRequest;
        if self.role == Role::Client {
            return self.unexpected(kind);
        }
        match self.state {
            State::Idle => {}
            State::Established | State::WaitCtlReply => {
                // RFC 2637 section 2.2, result 3: a command channel already exists.
                self.send_sccrp(StartResult::ChannelExists, ErrorCode::NoError);
                return self.unexpected(kind);
            }
            State::WaitStopReply | State::Closed => return self.unexpected(kind),
        }
        self.peer = Some(PeerInfo::from(&m));
        if m.protocol_version != PROTOCOL_VERSION {
            // RFC 2637 section 3.1.2: reply with the version we speak, then close.
            self.send_sccrp(StartResult::BadProtocolVersion, ErrorCode::NoError);
            return self.close(CloseCause::BadProtocolVersion(m.protocol_version));
        }
        if self.config.ask_admission {
            self.state = State::WaitCtlReply;
            self.events
                .push_back(Event::ConnectionRequested(PeerInfo::from(&m)));
        } else {
            self.send_sccrp(StartResult::Success, ErrorCode::NoError);
            self.establish();
        }
    }

    fn on_sccrp(&mut self, now: Instant, m: StartControlConnectionReply) {
        if self.role != Role::Client || self.state != State::WaitCtlReply {
            return self.unexpected(ControlMessageType::StartControlConnectionReply);
        }
        self.peer = Some(PeerInfo::from(&m));
        if m.result != StartResult::Success {
            if m.result == StartResult::BadProtocolVersion {
                return self.close(CloseCause::BadProtocolVersion(m.protocol_version));
            }
            return self.close(CloseCause::Refused {
                result: m.result,
                error: m.error,
            });
        }
        if m.protocol_version != PROTOCOL_VERSION {
            // RFC 2637 section 3.1.1: a version we do not support gets StopCCRQ.
            return self.begin_stop(
                now,
                StopReason::StopProtocol,
                CloseCause::BadProtocolVersion(m.protocol_version),
            );
        }
        self.establish();
    }

    fn on_stop_request(&mut self, m: StopControlConnectionRequest) {
        self.send(StopControlConnectionReply {
            result: StopResult::Ok,
            error: ErrorCode::NoError,
        });
        // Our own StopCCRQ crossed theirs: both sides agree, ours is answered.
        let cause = match self.stop_cause {
            Some(CloseCause::LocalStop { reason, .. }) => CloseCause::LocalStop {
                reason,
                acknowledged: true,
            },
            Some(cause) => cause,
            None => CloseCause::PeerStop(m.reason),
        };
        self.close(cause);
    }

    fn on_stop_reply(&mut self) {
        if self.state != State::WaitStopReply {
            return self.unexpected(ControlMessageType::StopControlConnectionReply);
        }
        let cause = match self.stop_cause {
            Some(CloseCause::LocalStop { reason, .. }) => CloseCause::LocalStop {
                reason,
                acknowledged: true,
            },
            Some(cause) => cause,
            None => CloseCause::LocalStop {
                reason: StopReason::GeneralRequest,
                acknowledged: true,
            },
        };
        self.close(cause);
    }

    fn on_echo_request(&mut self, m: EchoRequest) {
        // RFC 2637 section 2.6: before the connection is up, "General Error / Not-Connected".
        let (result, error) = match self.state {
            State::Established | State::WaitStopReply => (EchoResult::Ok, ErrorCode::NoError),
            _ => (EchoResult::GeneralError, ErrorCode::NotConnected),
        };
        self.send(EchoReply {
            identifier: m.identifier,
            result,
            error,
        });
    }

    fn on_echo_reply(&mut self, m: EchoReply) {
        match self.echo {
            Echo::Outstanding { identifier, .. } if identifier == m.identifier => {
                self.echo = Echo::Idle;
            }
            _ => self.ignore(
                ControlMessageType::EchoReply,
                IgnoreReason::EchoIdentifierMismatch(m.identifier),
            ),
        }
    }

    fn on_ocrq(&mut self, now: Instant, m: OutgoingCallRequest) {
        let kind = ControlMessageType::OutgoingCallRequest;
        if self.state != State::Established {
            if matches!(self.state, State::Idle | State::WaitCtlReply) {
                self.send_ocrp_refusal(
                    m.call_id,
                    OutgoingCallResult::GeneralError,
                    ErrorCode::NotConnected,
                );
            }
            return self.unexpected(kind);
        }
        if self.role == Role::Client {
            self.send_ocrp_refusal(
                m.call_id,
                OutgoingCallResult::DoNotAccept,
                ErrorCode::NoError,
            );
            return self.ignore(kind, IgnoreReason::OutgoingCallRefused);
        }
        if self.peer_call_index(m.call_id).is_some() {
            self.send_ocrp_refusal(
                m.call_id,
                OutgoingCallResult::GeneralError,
                ErrorCode::BadCallId,
            );
            return self.ignore(kind, IgnoreReason::DuplicateCallId(m.call_id));
        }
        if self.calls.len() >= self.config.max_calls {
            self.send_ocrp_refusal(
                m.call_id,
                OutgoingCallResult::GeneralError,
                ErrorCode::NoResource,
            );
            return self.ignore(kind, IgnoreReason::TooManyCalls);
        }
        self.calls.push(Call {
            local_call_id: None,
            peer_call_id: Some(m.call_id),
            state: CallState::WaitReply,
            serial_number: m.call_serial_number,
            peer_recv_window: m.recv_window_size,
            peer_packet_delay: m.packet_processing_delay,
            // Poptop and accel-ppp answer at the peer's Maximum BPS.
            connect_speed: m.max_bps,
            send_accm: u32::MAX,
            recv_accm: u32::MAX,
            wan_errors: None,
            deadline: now.checked_add(self.config.call_timeout),
        });
        self.events.push_back(Event::CallRequested(m));
    }

    fn on_ocrp(&mut self, m: OutgoingCallReply) {
        let kind = ControlMessageType::OutgoingCallReply;
        if self.role != Role::Client || self.state != State::Established {
            return self.unexpected(kind);
        }
        // The OCRP's Peer's Call ID is ours (RFC 2637 section 2.8).
        let Some(index) = self.calls.iter().position(|c| {
            c.local_call_id == Some(m.peer_call_id) && c.state == CallState::WaitReply
        }) else {
            return self.ignore(kind, IgnoreReason::UnknownCallId(m.peer_call_id));
        };
        if m.result != OutgoingCallResult::Connected {
            return self.remove_call(
                index,
                CallClearCause::Refused {
                    result: m.result,
                    error: m.error,
                },
            );
        }
        if self.peer_call_index(m.call_id).is_some() {
            // Two of our calls cannot share one peer Call ID: GRE could not tell them apart.
            self.send(CallClearRequest {
                call_id: m.peer_call_id,
            });
            self.remove_call(
                index,
                CallClearCause::Refused {
                    result: m.result,
                    error: ErrorCode::BadCallId,
                },
            );
            return self.ignore(kind, IgnoreReason::DuplicateCallId(m.call_id));
        }
        let Some(call) = self.calls.get_mut(index) else {
            return;
        };
        call.peer_call_id = Some(m.call_id);
        call.state = CallState::Established;
        call.deadline = None;
        call.peer_recv_window = m.recv_window_size;
        call.peer_packet_delay = m.packet_processing_delay;
        call.connect_speed = m.connect_speed;
        let established = CallEstablished {
            local_call_id: m.peer_call_id,
            peer_call_id: m.call_id,
            peer_recv_window: m.recv_window_size,
            peer_packet_delay: m.packet_processing_delay,
            connect_speed: m.connect_speed,
        };
        self.events.push_back(Event::CallEstablished(established));
    }

    fn on_ccrq(&mut self, m: CallClearRequest) {
        let kind = ControlMessageType::CallClearRequest;
        if self.state != State::Established {
            return self.unexpected(kind);
        }
        // The CCRQ carries the sender's own Call ID (RFC 2637 section 2.12): our peer's.
        let Some(index) = self.peer_call_index(m.call_id) else {
            return self.ignore(kind, IgnoreReason::UnknownCallId(m.call_id));
        };
        let local_call_id = self
            .calls
            .get(index)
            .and_then(|c| c.local_call_id)
            .unwrap_or(0);
        // RFC 2637 section 2.13: result 4, "disconnected due to a Call-Clear-Request".
        self.send(CallDisconnectNotify {
            call_id: local_call_id,
            result: DisconnectResult::Request,
            error: ErrorCode::NoError,
            cause_code: 0,
            call_statistics: FixedStr::empty(),
        });
        self.remove_call(index, CallClearCause::PeerClearRequest);
    }

    fn on_cdn(&mut self, m: CallDisconnectNotify) {
        let kind = ControlMessageType::CallDisconnectNotify;
        if self.state != State::Established {
            return self.unexpected(kind);
        }
        // The CDN carries the sender's own Call ID (RFC 2637 section 2.13): our peer's.
        // A CDN may also answer a CCRQ for a call whose OCRP never came: then the peer's
        // Call ID is unknown and only a call of ours in WaitDisconnect without one matches.
        let index = self.peer_call_index(m.call_id).or_else(|| {
            self.calls
                .iter()
                .position(|c| c.peer_call_id.is_none() && c.state == CallState::WaitDisconnect)
        });
        let Some(index) = index else {
            return self.ignore(kind, IgnoreReason::UnknownCallId(m.call_id));
        };
        let cause = match self.calls.get(index).map(|c| c.state) {
            Some(CallState::WaitDisconnect) => CallClearCause::LocalClear { acknowledged: true },
            _ => CallClearCause::PeerDisconnect {
                result: m.result,
                error: m.error,
                cause_code: m.cause_code,
            },
        };
        self.remove_call(index, cause);
    }

    fn on_sli(&mut self, m: SetLinkInfo) {
        let kind = ControlMessageType::SetLinkInfo;
        if self.state != State::Established {
            return self.unexpected(kind);
        }
        // Set-Link-Info's Peer's Call ID is the recipient's: ours (RFC 2637 section 2.15).
        let Some(call) = self
            .calls
            .iter_mut()
            .find(|c| c.local_call_id == Some(m.peer_call_id) && c.state == CallState::Established)
        else {
            return self.ignore(kind, IgnoreReason::UnknownCallId(m.peer_call_id));
        };
        call.send_accm = m.send_accm;
        call.recv_accm = m.recv_accm;
        self.events.push_back(Event::LinkInfo {
            local_call_id: m.peer_call_id,
            send_accm: m.send_accm,
            recv_accm: m.recv_accm,
        });
    }

    fn on_wen(&mut self, m: WanErrorNotify) {
        let kind = ControlMessageType::WanErrorNotify;
        if self.state != State::Established {
            return self.unexpected(kind);
        }
        // WAN-Error-Notify's Peer's Call ID is the recipient's: ours (RFC 2637 section 2.14).
        let Some(call) = self
            .calls
            .iter_mut()
            .find(|c| c.local_call_id == Some(m.peer_call_id))
        else {
            return self.ignore(kind, IgnoreReason::UnknownCallId(m.peer_call_id));
        };
        call.wan_errors = Some(m);
        self.events.push_back(Event::WanError {
            local_call_id: m.peer_call_id,
            errors: m,
        });
    }
}
