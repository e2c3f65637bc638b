//! The datapath's command interface: typed, versioned messages between the control plane
//! (or the `xpptp` tool) and `xpptp-datapath` (issue 4 item 7). Bytes only: the Unix socket
//! that carries them is the daemons' business.
//!
//! # Framing
//!
//! Every message is one frame: a 16-octet [`Header`] then a body of `length` octets.
//!
//! ```text
//!  0      4        6       8            12          16
//!  | magic | version | kind | request id | length | body (postcard) ...
//!  "XPDP"    u16 BE   u16 BE   u32 BE      u32 BE
//! ```
//!
//! * `kind` names the body's type ([`Kind`]); `request id` is chosen by whoever sends a
//!   request and echoed in its reply ([`Message::Done`], [`Message::Failed`], the listing
//!   replies), so replies and the unsolicited events ([`Message::PppFromPeer`], ...: id 0)
//!   can share one stream.
//! * A reader takes [`HEADER_LEN`] octets, asks [`frame_len`] how many more to read (which
//!   refuses a wrong magic, another version or a body over [`MAX_BODY_LEN`] before anything
//!   is buffered), then [`Frame::decode`]s the whole frame.
//!
//! # Encoding and compatibility
//!
//! Bodies are [postcard](https://postcard.jamesmunns.com/wire-format) (serde): a specified,
//! compact, non-self-describing format whose decoder returns errors, never panics, on any
//! input, and never allocates more than the input can justify. Hand-written encoders would
//! be more code to fuzz for no gain at this message rate; bincode's maintained line ended.
//! Because postcard is not self-describing, *any* change to an existing body (a field added,
//! removed or reordered, an enum variant inserted) must bump [`VERSION`]; the header makes
//! an old peer refuse such a frame with [`DecodeError::UnsupportedVersion`] instead of
//! misreading it. A new [`Kind`] needs no bump: an old peer reports
//! [`DecodeError::UnknownKind`] and can answer [`FailureCode::NotSupported`]. Counter and
//! failure codes are numbers on the wire ([`DropReason`], [`FailureCode`]) and unknown ones
//! are kept, so new reasons need no bump either.
//!
//! [`Establish`] carries a [`session::Established`](crate::session::Established) field for
//! field: if that struct changes, this module stops compiling until its wire form (and the
//! version) is updated.

use core::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::frame::{self, Protocol, body};
pub use crate::frame::{EncodeError, HEADER_LEN};

use crate::crypto::mppe::MppeMode;
use crate::crypto::mppe_keys::{MppeStrength, StartKey};
use crate::ppp::auth::Method;
use crate::ppp::ipcp::NameServers;
use crate::ppp::link::Role;
use crate::pptp::gre::GreSnapshot;
use crate::session::{Established, MppeKeyState};

/// First four octets of every frame.
pub const MAGIC: [u8; 4] = *b"XPDP";

/// The version of every body's shape (see the module documentation for when it changes).
pub const VERSION: u16 = 2;

/// Largest body accepted: bounds what a reader buffers for one frame. A full
/// [`CallList`] page ([`MAX_LIST_PAGE`] calls, each with a 256-octet user name and every
/// number at its widest: 347 octets) takes 710 KiB; a typical one a fifth of that.
pub const MAX_BODY_LEN: usize = 1024 * 1024;

/// Most calls in one [`CallList`] reply: a listing of 65,535 calls takes 32 requests.
pub const MAX_LIST_PAGE: u16 = 2048;

enum_with_unknown! {
    /// The type of a frame's body.
    pub enum Kind(u16) {
        /// [`Hello`]: control → datapath, first frame on a connection.
        Hello = 1,
        /// [`HelloReply`].
        HelloReply = 2,
        /// [`Establish`]: control → datapath.
        Establish = 3,
        /// [`Remove`]: control → datapath.
        Remove = 4,
        /// [`SendPpp`]: control → datapath.
        SendPpp = 5,
        /// [`ListCalls`]: control → datapath.
        ListCalls = 6,
        /// Ask for [`WorkerStatsReply`] (no body).
        GetWorkerStats = 7,
        /// Request done (no body).
        Done = 16,
        /// [`Failed`]: a request was refused.
        Failed = 17,
        /// [`CallList`]: reply to [`ListCalls`].
        CallList = 18,
        /// [`WorkerStatsReply`].
        WorkerStats = 19,
        /// [`PppFromPeer`]: datapath → control, unsolicited.
        PppFromPeer = 32,
        /// [`ResetRequestNeeded`]: datapath → control, unsolicited.
        ResetRequestNeeded = 33,
    }
}

/// This interface's [`Protocol`]: what its frames are parameterised by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Command;

/// Why a frame could not be decoded.
pub type DecodeError = frame::DecodeError<Command>;

/// A view of a frame header.
pub type Header<T> = frame::Header<T, Command>;

/// One frame: a message and its request id.
pub type Frame = frame::Frame<Command>;

/// How many octets the frame that starts with this header has in all (header included),
/// once its magic, version and length are checked. `Ok(None)` until [`HEADER_LEN`] octets
/// are there.
pub fn frame_len(bytes: &[u8]) -> Result<Option<usize>, DecodeError> {
    frame::frame_len(bytes)
}

// ---------------------------------------------------------------------------------------
// Requests (control → datapath)

/// First frame of a connection: who is asking. The datapath answers [`HelloReply`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Free text for logs ("xpptp-control 0.1.0").
    pub client: String,
    /// Whether this connection wants the punted frames and events
    /// ([`Message::PppFromPeer`], [`Message::ResetRequestNeeded`]); one connection at a time
    /// should (the control plane's).
    pub subscribe: bool,
}

/// Establish a call: the datapath takes over its data and its GRE numbering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Establish {
    /// What the session reported ([`crate::session::SessionEvent::Established`]).
    #[serde(with = "EstablishedDef")]
    pub call: Established,
    /// If the call ID already has a call: `false` fails with
    /// [`FailureCode::CallIdInUse`], `true` replaces it (new keys, numbering, address).
    pub replace: bool,
}

/// Remove a call. Its counters go with it: list it first if they matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remove {
    /// Our call ID.
    pub call: u16,
}

/// Send a PPP frame on an established call: the datapath numbers it (GRE sequence, ack) and
/// encrypts nothing (control frames are never MPPE'd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendPpp {
    /// Our call ID.
    pub call: u16,
    /// The frame as [`Session::poll_frame`](crate::session::Session::poll_frame) gives it.
    pub frame: Vec<u8>,
}

/// List calls with call IDs from `start` on, at most `max` (capped at [`MAX_LIST_PAGE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListCalls {
    /// The first call ID to include.
    pub start: u16,
    /// How many at most.
    pub max: u16,
}

// ---------------------------------------------------------------------------------------
// Replies (datapath → control)

/// Answer to [`Hello`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloReply {
    /// Free text ("xpptp-datapath 0.1.0").
    pub server: String,
    /// Number of workers.
    pub workers: u16,
    /// Calls established now (a returning control plane lists and adopts or removes them).
    pub calls: u32,
}

enum_with_unknown! {
    /// Why a request failed.
    #[derive(Serialize, Deserialize)]
    #[serde(from = "u16", into = "u16")]
    pub enum FailureCode(u16) {
        /// No call with that ID.
        NoSuchCall = 1,
        /// Establish without `replace` on a call ID in use.
        CallIdInUse = 2,
        /// Another call has that client tunnel address.
        AddressInUse = 3,
        /// Call ID 0 is reserved.
        CallIdZero = 4,
        /// A value out of range (MTU, frame size, ...).
        InvalidArgument = 5,
        /// A kind this datapath does not handle.
        NotSupported = 6,
        /// The datapath could not do it (its own failure; see the detail).
        Internal = 7,
        /// The frame could not be queued (the worker's queue is full).
        Busy = 8,
    }
}

/// A refused request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    /// Why.
    pub code: FailureCode,
    /// For logs.
    pub detail: String,
}

/// Packets and octets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Traffic {
    /// Packets.
    pub packets: u64,
    /// Octets (of the inner IPv4 packets for a call; of the frames for a worker).
    pub bytes: u64,
}

/// One direction's MPPE, without its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MppeInfo {
    /// 40, 56 or 128 bits.
    #[serde(with = "MppeStrengthDef")]
    pub strength: MppeStrength,
    /// Stateless or stateful.
    #[serde(with = "MppeModeDef")]
    pub mode: MppeMode,
}

/// One established call as the datapath sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallInfo {
    /// Our call ID.
    pub local_call_id: u16,
    /// The peer's call ID.
    pub peer_call_id: u16,
    /// The peer's outer address.
    pub peer_address: Ipv4Addr,
    /// The client's tunnel address.
    pub client_tunnel_address: Ipv4Addr,
    /// The authenticated user.
    pub user: Option<Vec<u8>>,
    /// MPPE of what we send, `None` in clear.
    pub transmit: Option<MppeInfo>,
    /// MPPE of what we receive, `None` in clear.
    pub receive: Option<MppeInfo>,
    /// Inner MTU towards the peer.
    pub mtu: u16,
    /// The worker owning the upstream direction, if it is stateful.
    pub upstream_owner: Option<u16>,
    /// The worker owning the downstream direction, if it is stateful.
    pub downstream_owner: Option<u16>,
    /// Seconds since the datapath established it.
    pub age_secs: u64,
    /// From the client, forwarded.
    pub upstream: Traffic,
    /// To the client.
    pub downstream: Traffic,
    /// Packets of this call dropped (any reason).
    pub dropped: u64,
}

/// A page of calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallList {
    /// In call ID order.
    pub calls: Vec<CallInfo>,
    /// The `start` of the next page, `None` after the last.
    pub next: Option<u16>,
}

enum_with_unknown! {
    /// Why a worker dropped a packet (issue 4 item 9).
    #[derive(Serialize, Deserialize)]
    #[serde(from = "u16", into = "u16")]
    pub enum DropReason(u16) {
        /// GRE for a call ID with no call.
        UnknownCall = 1,
        /// GRE of a call from a source other than its peer (spoofing).
        WrongPeer = 2,
        /// GRE sequence number outside the receive window (stale).
        OutOfWindow = 3,
        /// GRE sequence number already received.
        Duplicate = 4,
        /// MPPE could not decrypt (coherency count, flush, key).
        MppeError = 5,
        /// A header that does not parse.
        Malformed = 6,
        /// No route for the inner destination.
        NoRoute = 7,
        /// The next hop's link-layer address is not resolved yet.
        NeighbourUnresolved = 8,
        /// The transmit ring was full.
        RingFull = 9,
        /// The owning worker's hand-off queue was full.
        HandOffFull = 10,
        /// Downstream IPv4 for an address with no call.
        UnknownClient = 11,
        /// Larger than the call's MTU (and DF set, or not fragmentable).
        TooBig = 12,
        /// A PPP protocol the fast path does not carry, and the punt queue was full.
        PuntQueueFull = 13,
    }
}

/// Drops of one reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCount {
    /// Why.
    pub reason: DropReason,
    /// How many packets.
    pub packets: u64,
}

/// Receive and transmit of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DirectionStats {
    /// Received (upstream: GRE from clients; downstream: IPv4 for clients).
    pub rx: Traffic,
    /// Sent (upstream: inner IPv4 forwarded; downstream: GRE to clients).
    pub tx: Traffic,
}

/// One worker's counters since it started (readers diff them for rates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// The worker's index (= its NIC queue's within its interface).
    pub worker: u16,
    /// The core it is pinned to.
    pub cpu: Option<u32>,
    /// From the clients.
    pub upstream: DirectionStats,
    /// To the clients.
    pub downstream: DirectionStats,
    /// Drops, by reason (reasons with no drop may be left out).
    pub drops: Vec<DropCount>,
    /// Receive batches processed.
    pub batches: u64,
    /// Packets in those batches (their mean size is `batch_packets / batches`).
    pub batch_packets: u64,
    /// Packets handed to other workers (stateful calls they own).
    pub handed_off: u64,
    /// PPP frames punted to the control plane.
    pub punted: u64,
    /// Upstream packets sent straight to another call's client (client to client), whole
    /// frames (also counted in `downstream.tx`).
    pub client_to_client: Traffic,
    /// Pure GRE acknowledgments sent, whole frames.
    pub acks_sent: Traffic,
    /// The control plane's PPP frames sent on calls, whole frames.
    pub control_sent: Traffic,
    /// Every other count the worker keeps, by the datapath's name for it (`no_route`,
    /// `next_hop_unresolved`, `from_tun`, ...: frames it did not forward itself, and next-hop
    /// lookups that were not a plain resolved hop), zeros included. Names are stable; a new
    /// one needs no [`VERSION`] bump.
    pub events: Vec<EventCount>,
    /// Receive batches by size: counts of loop turns that received 0, 1, 2-3, 4-7, 8-15,
    /// 16-31, 32-63 and 64 or more frames.
    pub batch_sizes: Vec<u64>,
    /// The worker's AF_XDP sockets (the interface facing the clients first, then the
    /// inside one of a two-armed datapath); empty on the socket backend, which has no rings.
    pub rings: Vec<RingStats>,
}

/// A named count of a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventCount {
    /// The datapath's name for it (lower case, `_`-separated).
    pub name: String,
    /// How many packets (or lookups).
    pub packets: u64,
}

/// Where one AF_XDP socket's UMEM frames are, as its worker last published them (once per
/// loop turn). The `xdp` crate does not expose the rings' producer and consumer indices, so
/// the fill and RX rings are reported together (frames lent to the kernel for receiving),
/// and so are the TX and completion rings (frames sent and not yet reaped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RingStats {
    /// The interface's index.
    pub ifindex: u32,
    /// Frames in the UMEM.
    pub frames: u32,
    /// Frames free in user space (in no ring).
    pub free: u32,
    /// Frames on the fill ring or received on the RX ring and not yet read.
    pub receive: u32,
    /// Frames queued to send, on the TX ring, or sent and not yet on the completion ring
    /// read back.
    pub transmit: u32,
    /// The kernel's counters for the socket (XDP_STATISTICS), read at most once a second;
    /// `None` until read or when the kernel refused.
    pub kernel: Option<XskKernelStats>,
}

/// The kernel's counters of one AF_XDP socket (getsockopt XDP_STATISTICS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct XskKernelStats {
    /// Frames dropped for reasons other than the two below.
    pub rx_dropped: u64,
    /// Invalid descriptors on the fill ring.
    pub rx_invalid_descs: u64,
    /// Invalid descriptors on the TX ring.
    pub tx_invalid_descs: u64,
    /// Frames dropped because the RX ring was full (the worker was too slow).
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the kernel found the TX ring empty when woken.
    pub tx_ring_empty_descs: u64,
}

/// One verdict counter of the XDP program, summed over CPUs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCount {
    /// The counter's name (`to_worker`, `pass`, ...).
    pub verdict: String,
    /// Packets.
    pub packets: u64,
    /// Octets (whole frames).
    pub bytes: u64,
}

/// Reply to [`Kind::GetWorkerStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStatsReply {
    /// One per worker.
    pub workers: Vec<WorkerStats>,
    /// The XDP program's verdict counters; empty on the socket backend (no XDP program).
    pub xdp: Vec<VerdictCount>,
}

// ---------------------------------------------------------------------------------------
// Events (datapath → control, request id 0)

/// A PPP frame that arrived on an established call and is not data (LCP Echo, CCP
/// Reset-Request/Ack, Terminate, ...): for [`Session::handle_frame`](crate::session::Session::handle_frame).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PppFromPeer {
    /// Our call ID.
    pub call: u16,
    /// The GRE payload as received (decrypted if it was an MPPE'd control frame).
    pub frame: Vec<u8>,
}

/// Our stateful MPPE receiver lost sync on a call: control should send a CCP Reset-Request
/// ([`Session::send_reset_request`](crate::session::Session::send_reset_request)). Sent once
/// per loss, not per dropped packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetRequestNeeded {
    /// Our call ID.
    pub call: u16,
}

/// Every message, by kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// See [`Hello`].
    Hello(Hello),
    /// See [`HelloReply`].
    HelloReply(HelloReply),
    /// See [`Establish`].
    Establish(Box<Establish>),
    /// See [`Remove`].
    Remove(Remove),
    /// See [`SendPpp`].
    SendPpp(SendPpp),
    /// See [`ListCalls`].
    ListCalls(ListCalls),
    /// Ask for every worker's counters.
    GetWorkerStats,
    /// The request with this frame's id succeeded.
    Done,
    /// See [`Failed`].
    Failed(Failed),
    /// See [`CallList`].
    CallList(CallList),
    /// See [`WorkerStatsReply`].
    WorkerStats(WorkerStatsReply),
    /// See [`PppFromPeer`].
    PppFromPeer(PppFromPeer),
    /// See [`ResetRequestNeeded`].
    ResetRequestNeeded(ResetRequestNeeded),
}

impl Message {
    /// The header's kind for this message.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello(_) => Kind::Hello,
            Message::HelloReply(_) => Kind::HelloReply,
            Message::Establish(_) => Kind::Establish,
            Message::Remove(_) => Kind::Remove,
            Message::SendPpp(_) => Kind::SendPpp,
            Message::ListCalls(_) => Kind::ListCalls,
            Message::GetWorkerStats => Kind::GetWorkerStats,
            Message::Done => Kind::Done,
            Message::Failed(_) => Kind::Failed,
            Message::CallList(_) => Kind::CallList,
            Message::WorkerStats(_) => Kind::WorkerStats,
            Message::PppFromPeer(_) => Kind::PppFromPeer,
            Message::ResetRequestNeeded(_) => Kind::ResetRequestNeeded,
        }
    }
}

fn parse<'a, T: Deserialize<'a>>(kind: Kind, body: &'a [u8]) -> Result<T, DecodeError> {
    frame::parse(kind, body)
}

impl Protocol for Command {
    const MAGIC: [u8; 4] = MAGIC;
    const VERSION: u16 = VERSION;
    const MAX_BODY_LEN: usize = MAX_BODY_LEN;
    const NAME: &'static str = "command interface";
    type Kind = Kind;
    type Message = Message;

    fn kind(message: &Message) -> Kind {
        message.kind()
    }

    fn encode_body(message: &Message, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
        match message {
            Message::Hello(m) => body(m, out),
            Message::HelloReply(m) => body(m, out),
            Message::Establish(m) => body(m, out),
            Message::Remove(m) => body(m, out),
            Message::SendPpp(m) => body(m, out),
            Message::ListCalls(m) => body(m, out),
            Message::GetWorkerStats | Message::Done => Ok(()),
            Message::Failed(m) => body(m, out),
            Message::CallList(m) => body(m, out),
            Message::WorkerStats(m) => body(m, out),
            Message::PppFromPeer(m) => body(m, out),
            Message::ResetRequestNeeded(m) => body(m, out),
        }
    }

    fn decode_body(kind: Kind, body_bytes: &[u8]) -> Result<Message, DecodeError> {
        Ok(match kind {
            Kind::Hello => Message::Hello(parse(kind, body_bytes)?),
            Kind::HelloReply => Message::HelloReply(parse(kind, body_bytes)?),
            Kind::Establish => Message::Establish(Box::new(parse(kind, body_bytes)?)),
            Kind::Remove => Message::Remove(parse(kind, body_bytes)?),
            Kind::SendPpp => Message::SendPpp(parse(kind, body_bytes)?),
            Kind::ListCalls => Message::ListCalls(parse(kind, body_bytes)?),
            Kind::GetWorkerStats => frame::empty(kind, body_bytes, Message::GetWorkerStats)?,
            Kind::Done => frame::empty(kind, body_bytes, Message::Done)?,
            Kind::Failed => Message::Failed(parse(kind, body_bytes)?),
            Kind::CallList => Message::CallList(parse(kind, body_bytes)?),
            Kind::WorkerStats => Message::WorkerStats(parse(kind, body_bytes)?),
            Kind::PppFromPeer => Message::PppFromPeer(parse(kind, body_bytes)?),
            Kind::ResetRequestNeeded => Message::ResetRequestNeeded(parse(kind, body_bytes)?),
            Kind::Unknown(k) => return Err(DecodeError::UnknownKind(k)),
        })
    }
}

// ---------------------------------------------------------------------------------------
// The wire form of `session::Established` and what it holds (serde remote definitions: the
// compiler checks them against the real types field for field).

#[derive(Serialize, Deserialize)]
#[serde(remote = "Role")]
enum RoleDef {
    Server,
    Client,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "Method")]
enum MethodDef {
    MsChapV2,
    MsChapV1,
    ChapMd5,
    Pap,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "MppeStrength")]
enum MppeStrengthDef {
    Bits40,
    Bits56,
    Bits128,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "MppeMode")]
enum MppeModeDef {
    Stateless,
    Stateful,
    StatefulLinux,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "StartKey")]
struct StartKeyDef(pub [u8; 16]);

#[derive(Serialize, Deserialize)]
#[serde(remote = "MppeKeyState")]
struct MppeKeyStateDef {
    #[serde(with = "MppeStrengthDef")]
    strength: MppeStrength,
    #[serde(with = "MppeModeDef")]
    mode: MppeMode,
    #[serde(with = "StartKeyDef")]
    start_key: StartKey,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "NameServers")]
struct NameServersDef {
    primary_dns: Option<Ipv4Addr>,
    secondary_dns: Option<Ipv4Addr>,
    primary_nbns: Option<Ipv4Addr>,
    secondary_nbns: Option<Ipv4Addr>,
}

#[derive(Serialize, Deserialize)]
#[serde(remote = "GreSnapshot")]
struct GreSnapshotDef {
    local_call_id: u16,
    peer_call_id: u16,
    next_seq: u32,
    peer_acked: u32,
    ack_owed: Option<u32>,
    recv_highest: Option<u32>,
    peer_recv_window: u16,
}

/// `Option<T>` of a remote-derived `T`, through a newtype.
macro_rules! remote_option {
    ($module:ident, $ty:ty, $def:literal) => {
        mod $module {
            use super::*;

            #[derive(Serialize, Deserialize)]
            struct Wrap(#[serde(with = $def)] $ty);

            pub fn serialize<S: serde::Serializer>(
                value: &Option<$ty>,
                serializer: S,
            ) -> Result<S::Ok, S::Error> {
                value.map(Wrap).serialize(serializer)
            }

            pub fn deserialize<'de, D: serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Option<$ty>, D::Error> {
                Ok(Option::<Wrap>::deserialize(deserializer)?.map(|Wrap(v)| v))
            }
        }
    };
}

remote_option!(option_method, Method, "MethodDef");
remote_option!(option_key_state, MppeKeyState, "MppeKeyStateDef");

#[derive(Serialize, Deserialize)]
#[serde(remote = "Established")]
struct EstablishedDef {
    #[serde(with = "RoleDef")]
    role: Role,
    local_call_id: u16,
    peer_call_id: u16,
    peer_address: Ipv4Addr,
    peer_recv_window: u16,
    user: Option<Vec<u8>>,
    #[serde(with = "option_method")]
    auth_method: Option<Method>,
    client_tunnel_address: Ipv4Addr,
    server_tunnel_address: Option<Ipv4Addr>,
    #[serde(with = "NameServersDef")]
    name_servers: NameServers,
    #[serde(with = "option_key_state")]
    transmit: Option<MppeKeyState>,
    #[serde(with = "option_key_state")]
    receive: Option<MppeKeyState>,
    #[serde(with = "GreSnapshotDef")]
    gre: GreSnapshot,
    peer_mru: u16,
    our_mru: u16,
    mtu: u16,
    acfc: bool,
    pfc: bool,
}

#[cfg(test)]
mod test {
    use super::*;

    fn established() -> Established {
        Established {
            role: Role::Server,
            local_call_id: 0x1234,
            peer_call_id: 0x8001,
            peer_address: Ipv4Addr::new(192, 0, 2, 10),
            peer_recv_window: 64,
            user: Some(b"pptpuser".to_vec()),
            auth_method: Some(Method::MsChapV2),
            client_tunnel_address: Ipv4Addr::new(10, 64, 0, 2),
            server_tunnel_address: Some(Ipv4Addr::new(10, 64, 0, 1)),
            name_servers: NameServers {
                primary_dns: Some(Ipv4Addr::new(10, 0, 0, 53)),
                ..NameServers::default()
            },
            transmit: Some(MppeKeyState {
                strength: MppeStrength::Bits128,
                mode: MppeMode::Stateless,
                start_key: StartKey([0xa5; 16]),
            }),
            receive: Some(MppeKeyState {
                strength: MppeStrength::Bits40,
                mode: MppeMode::StatefulLinux,
                start_key: StartKey([0x5a; 16]),
            }),
            gre: GreSnapshot {
                local_call_id: 0x1234,
                peer_call_id: 0x8001,
                next_seq: 17,
                peer_acked: 15,
                ack_owed: Some(9),
                recv_highest: Some(9),
                peer_recv_window: 64,
            },
            peer_mru: 1400,
            our_mru: 1400,
            mtu: 1396,
            acfc: true,
            pfc: false,
        }
    }

    fn call_info(id: u16) -> CallInfo {
        CallInfo {
            local_call_id: id,
            peer_call_id: u16::MAX,
            peer_address: Ipv4Addr::new(255, 255, 255, 255),
            client_tunnel_address: Ipv4Addr::new(10, 64, 255, 254),
            // pppd caps user names at 256 octets (MAXNAMELEN).
            user: Some(vec![b'u'; 256]),
            transmit: Some(MppeInfo {
                strength: MppeStrength::Bits128,
                mode: MppeMode::Stateful,
            }),
            receive: None,
            mtu: u16::MAX,
            upstream_owner: Some(u16::MAX),
            downstream_owner: Some(u16::MAX),
            age_secs: u64::MAX,
            upstream: Traffic {
                packets: u64::MAX,
                bytes: u64::MAX,
            },
            downstream: Traffic {
                packets: u64::MAX,
                bytes: u64::MAX,
            },
            dropped: u64::MAX,
        }
    }

    fn every_message() -> Vec<Message> {
        vec![
            Message::Hello(Hello {
                client: "xpptp-control 0.1.0".into(),
                subscribe: true,
            }),
            Message::HelloReply(HelloReply {
                server: "xpptp-datapath 0.1.0".into(),
                workers: 2,
                calls: 65_535,
            }),
            Message::Establish(Box::new(Establish {
                call: established(),
                replace: false,
            })),
            Message::Remove(Remove { call: 7 }),
            Message::SendPpp(SendPpp {
                call: 7,
                frame: vec![0xc0, 0x21, 0x09, 0x01, 0x00, 0x08, 1, 2, 3, 4],
            }),
            Message::ListCalls(ListCalls { start: 1, max: 100 }),
            Message::GetWorkerStats,
            Message::Done,
            Message::Failed(Failed {
                code: FailureCode::AddressInUse,
                detail: "10.64.0.2 belongs to call 9".into(),
            }),
            Message::CallList(CallList {
                calls: vec![call_info(1), call_info(2)],
                next: Some(3),
            }),
            Message::WorkerStats(WorkerStatsReply {
                workers: vec![WorkerStats {
                    worker: 1,
                    cpu: Some(1),
                    upstream: DirectionStats {
                        rx: Traffic {
                            packets: 10,
                            bytes: 14_000,
                        },
                        tx: Traffic {
                            packets: 9,
                            bytes: 12_000,
                        },
                    },
                    downstream: DirectionStats::default(),
                    drops: vec![
                        DropCount {
                            reason: DropReason::WrongPeer,
                            packets: 1,
                        },
                        DropCount {
                            reason: DropReason::Unknown(999),
                            packets: 2,
                        },
                    ],
                    batches: 3,
                    batch_packets: 10,
                    handed_off: 0,
                    punted: 1,
                    client_to_client: Traffic {
                        packets: 1,
                        bytes: 80,
                    },
                    acks_sent: Traffic::default(),
                    control_sent: Traffic {
                        packets: u64::MAX,
                        bytes: u64::MAX,
                    },
                    events: vec![EventCount {
                        name: "next_hop_unresolved".into(),
                        packets: 4,
                    }],
                    batch_sizes: vec![0, 1, 2, 3, 4, 5, 6, 7],
                    rings: vec![RingStats {
                        ifindex: 3,
                        frames: 4096,
                        free: 10,
                        receive: 4000,
                        transmit: 86,
                        kernel: Some(XskKernelStats {
                            rx_ring_full: 5,
                            ..XskKernelStats::default()
                        }),
                    }],
                }],
                xdp: vec![VerdictCount {
                    verdict: "to_worker".into(),
                    packets: 10,
                    bytes: 14_000,
                }],
            }),
            Message::PppFromPeer(PppFromPeer {
                call: 7,
                frame: vec![0x80, 0xfd, 0x0e, 0x05, 0x00, 0x04],
            }),
            Message::ResetRequestNeeded(ResetRequestNeeded { call: 7 }),
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for (n, message) in every_message().into_iter().enumerate() {
            let frame = Frame::new(n as u32 + 100, message);
            let bytes = frame.to_vec().expect("encode");
            assert_eq!(frame_len(&bytes), Ok(Some(bytes.len())));
            let decoded = Frame::decode(&bytes).expect("decode");
            assert_eq!(decoded, Some((frame.clone(), bytes.len())), "{frame:?}");
        }
    }

    #[test]
    fn header_deconstruct() {
        // Done, request 0x01020304, empty body.
        let bytes = [
            b'X', b'P', b'D', b'P', 0x00, 0x02, 0x00, 0x10, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00,
            0x00, 0x00,
        ];
        let header = Header::new_checked(&bytes[..]).expect("16 octets");
        assert_eq!(header.magic(), MAGIC);
        assert_eq!(header.version(), VERSION);
        assert_eq!(header.kind(), Kind::Done);
        assert_eq!(header.request_id(), 0x0102_0304);
        assert_eq!(header.length(), 0);
        assert_eq!(header.check(), Ok(0));
        // Construct: the encoder produces the same octets.
        assert_eq!(
            Frame::new(0x0102_0304, Message::Done).to_vec(),
            Ok(bytes.to_vec())
        );
        assert!(Header::new_checked(&bytes[..15]).is_none());
    }

    #[test]
    fn remove_body_is_compact() {
        // postcard: a u16 is a varint; 7 is one octet.
        let bytes = Frame::new(1, Message::Remove(Remove { call: 7 }))
            .to_vec()
            .expect("encode");
        assert_eq!(&bytes[6..8], &[0x00, 0x04]);
        assert_eq!(&bytes[12..], &[0x00, 0x00, 0x00, 0x01, 0x07]);
    }

    fn done() -> Vec<u8> {
        Frame::new(1, Message::Done).to_vec().expect("encode")
    }

    #[test]
    fn incomplete_frames_wait_for_more() {
        let bytes = Frame::new(1, Message::Remove(Remove { call: 300 }))
            .to_vec()
            .expect("encode");
        for n in 0..bytes.len() {
            assert_eq!(Frame::decode(&bytes[..n]), Ok(None), "{n} octets");
        }
        assert_eq!(frame_len(&bytes[..3]), Ok(None));
    }

    #[test]
    fn bad_magic_version_and_length_are_refused() {
        let mut bytes = done();
        bytes[0] = b'Y';
        assert_eq!(Frame::decode(&bytes), Err(DecodeError::BadMagic(*b"YPDP")));

        let mut bytes = done();
        bytes[5] = 3;
        let expected = DecodeError::UnsupportedVersion {
            got: 3,
            supported: VERSION,
        };
        assert_eq!(Frame::decode(&bytes), Err(expected.clone()));
        assert_eq!(frame_len(&bytes), Err(expected));

        let mut bytes = done();
        bytes[12..16].copy_from_slice(&(MAX_BODY_LEN as u32 + 1).to_be_bytes());
        let expected = DecodeError::Oversize {
            length: MAX_BODY_LEN as u32 + 1,
            max: MAX_BODY_LEN,
        };
        assert_eq!(frame_len(&bytes), Err(expected.clone()));
        assert_eq!(Frame::decode(&bytes), Err(expected));
        bytes[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(
            Frame::decode(&bytes),
            Err(DecodeError::Oversize { .. })
        ));
    }

    #[test]
    fn unknown_kind_malformed_and_trailing_bodies_are_named() {
        let mut bytes = done();
        bytes[6..8].copy_from_slice(&0x7777u16.to_be_bytes());
        assert_eq!(Frame::decode(&bytes), Err(DecodeError::UnknownKind(0x7777)));

        // Done with a body.
        let mut bytes = done();
        bytes[15] = 1;
        bytes.push(0);
        assert_eq!(
            Frame::decode(&bytes),
            Err(DecodeError::TrailingBytes {
                kind: Kind::Done,
                extra: 1
            })
        );

        // Remove whose varint never ends.
        let mut bytes = Frame::new(1, Message::Remove(Remove { call: 7 }))
            .to_vec()
            .expect("encode");
        bytes[16] = 0x80;
        assert!(matches!(
            Frame::decode(&bytes),
            Err(DecodeError::Malformed {
                kind: Kind::Remove,
                ..
            })
        ));

        // Remove with an octet too many.
        let mut bytes = Frame::new(1, Message::Remove(Remove { call: 7 }))
            .to_vec()
            .expect("encode");
        bytes[15] = 2;
        bytes.push(0);
        assert_eq!(
            Frame::decode(&bytes),
            Err(DecodeError::TrailingBytes {
                kind: Kind::Remove,
                extra: 1
            })
        );

        // SendPpp claiming a frame longer than the body: an error, not an allocation.
        let mut bytes = Frame::new(
            1,
            Message::SendPpp(SendPpp {
                call: 1,
                frame: vec![],
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
    fn two_frames_in_one_buffer() {
        let mut bytes = done();
        Frame::new(2, Message::Remove(Remove { call: 9 }))
            .encode(&mut bytes)
            .expect("encode");
        let (first, used) = Frame::decode(&bytes).expect("ok").expect("complete");
        assert_eq!(first.message, Message::Done);
        let (second, rest) = Frame::decode(&bytes[used..])
            .expect("ok")
            .expect("complete");
        assert_eq!(second.message, Message::Remove(Remove { call: 9 }));
        assert_eq!(used + rest, bytes.len());
    }

    #[test]
    fn a_full_list_page_fits() {
        let page = Frame::new(
            1,
            Message::CallList(CallList {
                calls: (0..MAX_LIST_PAGE).map(call_info).collect(),
                next: Some(u16::MAX),
            }),
        );
        let bytes = page.to_vec().expect("a full page encodes");
        assert!(bytes.len() <= HEADER_LEN + MAX_BODY_LEN, "{}", bytes.len());
    }

    #[test]
    fn oversize_bodies_are_not_encoded() {
        let mut out = vec![1, 2, 3];
        let frame = Frame::new(
            1,
            Message::SendPpp(SendPpp {
                call: 1,
                frame: vec![0; MAX_BODY_LEN],
            }),
        );
        assert!(matches!(
            frame.encode(&mut out),
            Err(EncodeError::Oversize { .. })
        ));
        assert_eq!(out, [1, 2, 3], "output left as it was");
    }

    #[test]
    fn codes_keep_unknown_values() {
        let failed = Message::Failed(Failed {
            code: FailureCode::Unknown(4242),
            detail: String::new(),
        });
        let bytes = Frame::new(1, failed.clone()).to_vec().expect("encode");
        let (frame, _) = Frame::decode(&bytes).expect("ok").expect("complete");
        assert_eq!(frame.message, failed);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(
            kind in 0u16..40,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
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
    }
}
