//! One PPTP call tied to one PPP link: the GRE numbering of the call's control frames, and
//! what the layer above must know (authenticated, established, terminated and why).
//!
//! A [`Session`] is built from the call parameters the control connection produced
//! ([`CallEstablished`] plus the peer's address, see [`SessionParams`]) and a
//! [`Link`]. It takes GRE packets as received (after the IPv4 header) and gives GRE packets
//! to send to the peer: PPP frames with this call's sequence and acknowledgment numbers, and
//! pure acknowledgments when there is nothing to piggyback them on.
//!
//! When the link is up the session reports [`SessionEvent::Established`] with everything
//! the datapath needs ([`Established`]: call IDs, addresses, MPPE keys per direction, the
//! GRE numbers to continue from, MRU/MTU). From then on the datapath owns the call's GRE
//! numbering: the caller calls [`Session::hand_over`], after which the session yields bare
//! PPP frames ([`Session::poll_frame`], for the datapath's `send_ppp`) and takes the
//! control frames the datapath passes back ([`Session::handle_frame`]): LCP Echo, CCP
//! Reset-Request, Terminate. A caller without a datapath (the tests, the bench) does not
//! hand over and keeps using GRE.
//!
//! The session never talks to the control connection: the caller owns the
//! [`Connection`](crate::pptp::control::Connection). It tells the session when the call is
//! cleared or the connection is lost ([`Session::lower_down`], with
//! [`Cause::from_call_clear`]), and on [`SessionEvent::Terminated`] it clears the call with
//! [`Cause::disconnect_result`] (server: Call-Disconnect-Notify) or Call-Clear-Request
//! (client).
//!
//! # Calling order
//!
//! After every input ([`handle_gre`](Session::handle_gre),
//! [`handle_frame`](Session::handle_frame), [`handle_timeout`](Session::handle_timeout),
//! [`close`](Session::close), [`lower_down`](Session::lower_down), ...): drain
//! [`poll_transmit`](Session::poll_transmit) (or [`poll_frame`](Session::poll_frame) after
//! the hand-over), then [`poll_event`](Session::poll_event), then re-arm the timer from
//! [`poll_timeout`](Session::poll_timeout). The GRE numbers of queued packets are assigned
//! when they are queued, so the numbers in [`Established`] already count every packet
//! queued before the event. Queues are bounded ([`MAX_QUEUED_PACKETS`] and the link's).

use core::fmt;
use core::net::Ipv4Addr;
use std::collections::VecDeque;
use std::time::Instant;

use crate::crypto::mppe::MppeMode;
use crate::crypto::mppe_keys::{MppeStrength, StartKey};
use crate::ppp::auth::{FailureCause, LookupId, Method, SecretAnswer};
use crate::ppp::ccp::CcpFailure;
use crate::ppp::fsm::Failure;
use crate::ppp::link::{Link, LinkEvent, LinkStats, LinkUp, Role};
use crate::pptp::control::{CallClearCause, CallEstablished, CloseCause};
use crate::pptp::gre::{GreChannel, GreConfig, GreCounters, GreSnapshot, Received};
use crate::wire::ppp::Protocol;
use crate::wire::pptp::{DisconnectResult, ErrorCode, StopReason};

/// At most this many GRE packets (or PPP frames after the hand-over) wait for
/// [`Session::poll_transmit`].
pub const MAX_QUEUED_PACKETS: usize = 64;

/// MPPE adds its 2-octet header, and pppd (Linux `ppp_mppe.c`, `MPPE_PAD`) keeps 4 octets
/// of the peer's MRU free for it: the inner MTU is the MRU minus this.
pub const MPPE_OVERHEAD: u16 = 4;

/// Every way a session ends. `Display` gives the log text; [`Self::disconnect_result`],
/// [`Self::stop_reason`] and [`Self::lcp_terminate_text`] what to tell the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Cause {
    /// The peer sent LCP Terminate-Request (pptp-linux: "MPPE disabled" on hang-up).
    PeerTerminated {
        /// Its data, as text (pppd puts a reason there).
        reason: String,
    },
    /// The peer cleared the call (Call-Clear-Request or Call-Disconnect-Notify).
    PeerCallClear,
    /// We cleared the call through the control connection (the caller's decision).
    LocalCallClear,
    /// The control connection ended (Stop-Control-Connection, echo timeout, framing...).
    ControlConnectionLost(CloseCause),
    /// The peer closed TCP.
    TcpClosed,
    /// LCP Echo-Requests went unanswered (pppd `lcp-echo-failure`).
    EchoTimeout,
    /// Authentication failed (wrong password, unknown user, timeout...).
    AuthFailed(FailureCause),
    /// No authentication method both ends allow.
    NoCommonAuthMethod,
    /// MPPE is required and the peer refused it or offered only what our policy refuses.
    Mppe(CcpFailure),
    /// MPPE is required but the agreed method (PAP, CHAP-MD5, none) yields no keys.
    MppeWithoutMsChap,
    /// No address for the client (pool empty), or none for us (client role).
    NoAddress,
    /// A negotiation did not converge (Max-Configure, Max-Failure, a required option
    /// rejected, the protocol rejected).
    NegotiationFailed {
        /// LCP, IPCP or CCP.
        protocol: Protocol,
        /// What the automaton reported.
        failure: Failure,
    },
    /// Our own LCP requests came back: the link is looped back.
    LoopedBack,
    /// The peer restarted LCP or an NCP after the link was up (we end the session rather
    /// than renegotiate under the datapath's feet).
    LinkRenegotiated,
    /// No traffic for the configured idle time (pppd `idle`).
    IdleTimeout,
    /// The session reached its maximum duration (pppd `maxconnect`, RADIUS
    /// Session-Timeout).
    SessionTimeout,
    /// An operator terminated the session (`xpptp terminate`).
    OperatorTerminate,
    /// The concentrator is shutting down.
    Shutdown,
    /// LCP finished without a reason the link could name.
    LinkFailed,
}

impl Cause {
    /// The cause for a call the control connection reports cleared.
    pub fn from_call_clear(cause: &CallClearCause) -> Cause {
        match cause {
            CallClearCause::PeerClearRequest | CallClearCause::PeerDisconnect { .. } => {
                Cause::PeerCallClear
            }
            CallClearCause::ConnectionClosed(close) => Cause::from_connection_close(close),
            CallClearCause::LocalDisconnect(_)
            | CallClearCause::LocalClear { .. }
            | CallClearCause::Refused { .. }
            | CallClearCause::SetupTimeout => Cause::LocalCallClear,
        }
    }

    /// The cause for a session whose control connection ended.
    pub fn from_connection_close(cause: &CloseCause) -> Cause {
        match cause {
            CloseCause::TcpClosed => Cause::TcpClosed,
            other => Cause::ControlConnectionLost(*other),
        }
    }

    /// Whether the peer ended the session (as opposed to us or a failure).
    pub fn is_peer_initiated(&self) -> bool {
        matches!(
            self,
            Cause::PeerTerminated { .. } | Cause::PeerCallClear | Cause::TcpClosed
        )
    }

    /// The Call-Disconnect-Notify Result Code (RFC 2637 §2.13) a server sends for this
    /// cause: the peer's own request, lost carrier for a dead peer, administrative for our
    /// decisions, general error for failed negotiations.
    pub fn disconnect_result(&self) -> DisconnectResult {
        match self {
            Cause::PeerTerminated { .. } | Cause::PeerCallClear | Cause::LocalCallClear => {
                DisconnectResult::Request
            }
            Cause::EchoTimeout | Cause::TcpClosed | Cause::ControlConnectionLost(_) => {
                DisconnectResult::LostCarrier
            }
            Cause::IdleTimeout
            | Cause::SessionTimeout
            | Cause::OperatorTerminate
            | Cause::Shutdown => DisconnectResult::AdminShutdown,
            Cause::AuthFailed(_)
            | Cause::NoCommonAuthMethod
            | Cause::Mppe(_)
            | Cause::MppeWithoutMsChap
            | Cause::NoAddress
            | Cause::NegotiationFailed { .. }
            | Cause::LoopedBack
            | Cause::LinkRenegotiated
            | Cause::LinkFailed => DisconnectResult::GeneralError,
        }
    }

    /// The Error Code that goes with [`Self::disconnect_result`]: No-Resource when no
    /// address was free, else none.
    pub fn disconnect_error(&self) -> ErrorCode {
        match self {
            Cause::NoAddress => ErrorCode::NoResource,
            _ => ErrorCode::NoError,
        }
    }

    /// The Stop-Control-Connection-Request Reason (RFC 2637 §2.3) when the control
    /// connection is stopped because of this session (one call per connection).
    pub fn stop_reason(&self) -> StopReason {
        match self {
            Cause::Shutdown => StopReason::LocalShutdown,
            Cause::ControlConnectionLost(close) => close.stop_reason(),
            _ => StopReason::GeneralRequest,
        }
    }

    /// The text of our LCP Terminate-Request (pppd's wording where pppd has one).
    pub fn lcp_terminate_text(&self) -> &'static str {
        match self {
            Cause::PeerTerminated { .. } => "Peer requested termination",
            Cause::PeerCallClear | Cause::LocalCallClear => "Call cleared",
            Cause::ControlConnectionLost(_) | Cause::TcpClosed => "Control connection lost",
            Cause::EchoTimeout => "Peer not responding",
            Cause::AuthFailed(FailureCause::PeerRefused(_))
            | Cause::AuthFailed(FailureCause::BadAuthenticatorResponse) => {
                "Failed to authenticate ourselves to peer"
            }
            Cause::AuthFailed(_) => "Authentication failed",
            Cause::NoCommonAuthMethod => "No common authentication method",
            Cause::Mppe(_) | Cause::MppeWithoutMsChap => "MPPE required but not available",
            Cause::NoAddress => "No IP address available",
            Cause::NegotiationFailed { .. } => "Negotiation failed",
            Cause::LoopedBack => "Loopback detected",
            Cause::LinkRenegotiated => "Renegotiation refused",
            Cause::IdleTimeout => "Link inactive",
            Cause::SessionTimeout => "Connect time expired",
            Cause::OperatorTerminate => "Administrative termination",
            Cause::Shutdown => "Server shutdown",
            Cause::LinkFailed => "Link failed",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::PeerTerminated { reason } if reason.is_empty() => {
                f.write_str("peer terminated the link")
            }
            Cause::PeerTerminated { reason } => {
                write!(f, "peer terminated the link: {}", reason.escape_debug())
            }
            Cause::PeerCallClear => f.write_str("peer cleared the call"),
            Cause::LocalCallClear => f.write_str("call cleared"),
            Cause::ControlConnectionLost(close) => write!(f, "control connection lost: {close}"),
            Cause::TcpClosed => f.write_str("peer closed the TCP connection"),
            Cause::EchoTimeout => f.write_str("peer not responding to LCP echo requests"),
            Cause::AuthFailed(cause) => write!(f, "authentication failed: {cause}"),
            Cause::NoCommonAuthMethod => f.write_str("no common authentication method"),
            Cause::Mppe(failure) => write!(f, "{failure}"),
            Cause::MppeWithoutMsChap => {
                f.write_str("MPPE required but the authentication method yields no keys")
            }
            Cause::NoAddress => f.write_str("no IP address available"),
            Cause::NegotiationFailed { protocol, failure } => {
                write!(f, "{protocol:?} negotiation failed: {failure}")
            }
            Cause::LoopedBack => f.write_str("link is looped back"),
            Cause::LinkRenegotiated => f.write_str("peer renegotiated the established link"),
            Cause::IdleTimeout => f.write_str("idle timeout"),
            Cause::SessionTimeout => f.write_str("session timeout"),
            Cause::OperatorTerminate => f.write_str("terminated by operator"),
            Cause::Shutdown => f.write_str("server shutdown"),
            Cause::LinkFailed => f.write_str("link failed"),
        }
    }
}

/// The call a session runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionParams {
    /// Our Call ID: the key of GRE packets we receive.
    pub local_call_id: u16,
    /// The peer's Call ID: the key of GRE packets we send.
    pub peer_call_id: u16,
    /// The peer's Packet Receive Window Size (from its OCRQ or OCRP).
    pub peer_recv_window: u16,
    /// The peer's (outer) IPv4 address.
    pub peer_address: Ipv4Addr,
    /// The first GRE sequence number we send (Poptop 0, pptp-linux 1).
    pub first_seq: u32,
    /// The GRE channel's settings (delayed ack, our receive window).
    pub gre: GreConfig,
}

impl SessionParams {
    /// From the control connection's [`CallEstablished`], with the peer's address; the
    /// first sequence number is 0 (Poptop's).
    pub fn from_call(call: &CallEstablished, peer_address: Ipv4Addr) -> SessionParams {
        SessionParams {
            local_call_id: call.local_call_id,
            peer_call_id: call.peer_call_id,
            peer_recv_window: call.peer_recv_window,
            peer_address,
            first_seq: 0,
            gre: GreConfig::default(),
        }
    }
}

/// One direction of MPPE as the datapath runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MppeKeyState {
    /// 40, 56 or 128 bits.
    pub strength: MppeStrength,
    /// Stateless, or which stateful scheme.
    pub mode: MppeMode,
    /// The start key (RFC 3079).
    pub start_key: StartKey,
}

/// What the datapath needs to carry an established call (the `establish` message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Established {
    /// Our role.
    pub role: Role,
    /// Our Call ID (key of received GRE).
    pub local_call_id: u16,
    /// The peer's Call ID (key of sent GRE).
    pub peer_call_id: u16,
    /// The peer's outer address.
    pub peer_address: Ipv4Addr,
    /// The peer's Packet Receive Window Size.
    pub peer_recv_window: u16,
    /// The authenticated user, if a method ran.
    pub user: Option<Vec<u8>>,
    /// The method.
    pub auth_method: Option<Method>,
    /// The client's tunnel address (the peer's on a server, ours on a client).
    pub client_tunnel_address: Ipv4Addr,
    /// The server's tunnel address, if it sent one.
    pub server_tunnel_address: Option<Ipv4Addr>,
    /// Name servers given (server) or got (client).
    pub name_servers: crate::ppp::ipcp::NameServers,
    /// MPPE for what we send (`send` start key), `None` in clear.
    pub transmit: Option<MppeKeyState>,
    /// MPPE for what we receive (`receive` start key), `None` in clear.
    pub receive: Option<MppeKeyState>,
    /// The GRE numbering to continue from: our next sequence number, the ack owed, the
    /// peer's highest sequence number (it already counts every packet queued before the
    /// event).
    pub gre: GreSnapshot,
    /// The largest PPP frame we may send (the peer's MRU).
    pub peer_mru: u16,
    /// The largest PPP frame we receive (our MRU).
    pub our_mru: u16,
    /// The inner IP MTU towards the peer: its MRU, less [`MPPE_OVERHEAD`] with MPPE.
    pub mtu: u16,
    /// We may leave out address/control.
    pub acfc: bool,
    /// We may send one-octet protocols.
    pub pfc: bool,
}

/// What the layer above learns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Authentication succeeded.
    Authenticated {
        /// The user (server: the peer; client: us).
        user: Vec<u8>,
    },
    /// The link is up: hand [`Established`] to the datapath. Comes again if the peer
    /// renegotiates IPCP or CCP (e.g. it lost our last Configure-Ack): the datapath then
    /// replaces the call's state (MPPE restarts from the start keys).
    Established(Box<Established>),
    /// The peer's CCP Reset-Request: the datapath's encryptor flushes (stateful MPPE).
    ResetRequested,
    /// The session is over.
    Terminated(Cause),
}

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// PPP is negotiating.
    Negotiating,
    /// The link is up.
    Established,
    /// Over.
    Terminated,
}

/// Counters of the session itself (the GRE layer's are [`Session::gre_counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Packets dropped because the caller did not drain the queue.
    pub queue_overflows: u64,
    /// Inputs after the session ended (or GRE after the hand-over).
    pub after_termination: u64,
}

/// One PPTP call and its PPP link; see the [module documentation](self).
#[derive(Debug)]
pub struct Session {
    params: SessionParams,
    gre: GreChannel,
    link: Link,
    state: SessionState,
    handed_over: bool,
    out: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    stats: SessionStats,
}

impl Session {
    /// A session on `params`' call, starting `link` (its LCP Configure-Request is queued).
    pub fn new(now: Instant, params: SessionParams, link: Link) -> Session {
        let mut session = Session {
            params,
            gre: {
                let mut gre = GreChannel::new(
                    params.local_call_id,
                    params.peer_call_id,
                    params.first_seq,
                    params.gre,
                );
                gre.set_peer_recv_window(params.peer_recv_window);
                gre
            },
            link,
            state: SessionState::Negotiating,
            handed_over: false,
            out: VecDeque::new(),
            events: VecDeque::new(),
            stats: SessionStats::default(),
        };
        session.link.open(now);
        session.pump(now);
        session
    }

    /// The call parameters.
    pub fn params(&self) -> &SessionParams {
        &self.params
    }

    /// Where the session stands.
    pub fn state(&self) -> SessionState {
        self.state
    }

    /// The PPP link (phase, negotiated values, statistics).
    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The session's own counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// The GRE layer's counters (drops by reason, pure acks, reordering).
    pub fn gre_counters(&self) -> &GreCounters {
        self.gre.counters()
    }

    /// The link's counters.
    pub fn link_stats(&self) -> LinkStats {
        self.link.stats()
    }

    /// The GRE numbers now.
    pub fn gre_snapshot(&self) -> GreSnapshot {
        self.gre.snapshot()
    }

    /// Whether [`hand_over`](Self::hand_over) was called.
    pub fn is_handed_over(&self) -> bool {
        self.handed_over
    }

    /// A GRE packet from the peer, as received after the IPv4 header. Ignored after the
    /// hand-over (the datapath owns the numbering; it passes frames to
    /// [`handle_frame`](Self::handle_frame)).
    pub fn handle_gre(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == SessionState::Terminated || self.handed_over {
            self.stats.after_termination = self.stats.after_termination.saturating_add(1);
            return;
        }
        // Drops are counted by the channel (gre_counters).
        if let Ok(Received::Frame { ppp, .. }) = self.gre.handle_packet(now, bytes) {
            self.link.handle_frame(now, ppp);
        }
        self.pump(now);
    }

    /// A PPP frame of this call whose GRE header the datapath has already dealt with.
    pub fn handle_frame(&mut self, now: Instant, frame: &[u8]) {
        if self.state == SessionState::Terminated {
            self.stats.after_termination = self.stats.after_termination.saturating_add(1);
            return;
        }
        self.link.handle_frame(now, frame);
        self.pump(now);
    }

    /// Acts on due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.link.handle_timeout(now);
        if !self.handed_over {
            self.gre.handle_timeout(now);
        }
        self.pump(now);
    }

    /// The earliest deadline (the link's timers, the GRE delayed ack).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let gre = if self.handed_over || self.state == SessionState::Terminated {
            None
        } else {
            self.gre.poll_timeout()
        };
        [self.link.poll_timeout(), gre].into_iter().flatten().min()
    }

    /// Ends the session from our side: LCP Terminate-Request, then
    /// [`SessionEvent::Terminated`] when LCP has finished.
    pub fn close(&mut self, now: Instant, cause: Cause) {
        self.link.close(now, cause);
        self.pump(now);
    }

    /// The call or the control connection is gone: the session ends at once.
    pub fn lower_down(&mut self, now: Instant, cause: Cause) {
        self.link.lower_down(now, cause);
        self.pump(now);
        self.out.clear();
    }

    /// Server: a pending secret lookup's answer.
    pub fn provide_secret(&mut self, now: Instant, id: LookupId, answer: SecretAnswer) {
        self.link.provide_secret(now, id, answer);
        self.pump(now);
    }

    /// Our decryptor lost sync (stateful MPPE): queue a CCP Reset-Request.
    pub fn send_reset_request(&mut self, now: Instant) -> bool {
        let sent = self.link.send_reset_request(now);
        self.pump(now);
        sent
    }

    /// Gives the GRE numbering to the datapath: from now on frames come out of
    /// [`poll_frame`](Self::poll_frame) and go in through
    /// [`handle_frame`](Self::handle_frame). Returns the numbers to continue from (the
    /// same as in [`Established`] if nothing was sent since). Call it after draining
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn hand_over(&mut self) -> GreSnapshot {
        self.handed_over = true;
        self.gre.snapshot()
    }

    /// The next GRE packet to send to the peer (before the hand-over).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if self.handed_over {
            return None;
        }
        self.out.pop_front()
    }

    /// The next PPP frame for the datapath to send (after the hand-over).
    pub fn poll_frame(&mut self) -> Option<Vec<u8>> {
        if !self.handed_over {
            return None;
        }
        self.out.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    fn queue(&mut self, packet: Vec<u8>) {
        if self.out.len() >= MAX_QUEUED_PACKETS {
            self.stats.queue_overflows = self.stats.queue_overflows.saturating_add(1);
        } else {
            self.out.push_back(packet);
        }
    }

    /// Numbers the link's frames, takes the channel's pure acks, and turns the link's
    /// events into ours.
    fn pump(&mut self, now: Instant) {
        while let Some(frame) = self.link.poll_transmit() {
            if self.handed_over {
                self.queue(frame);
                continue;
            }
            let mut packet = Vec::with_capacity(frame.len().saturating_add(16));
            if self.gre.encapsulate(now, &frame, &mut packet).is_ok() {
                self.queue(packet);
            }
        }
        if !self.handed_over {
            let mut ack = Vec::new();
            while self.gre.poll_transmit(&mut ack).is_some() {
                if self.state != SessionState::Terminated {
                    self.queue(std::mem::take(&mut ack));
                }
                ack.clear();
            }
        }
        while let Some(event) = self.link.poll_event() {
            let event = match event {
                LinkEvent::Authenticated { user, .. } => SessionEvent::Authenticated { user },
                LinkEvent::Up(up) => match self.established(&up) {
                    Some(established) => {
                        self.state = SessionState::Established;
                        SessionEvent::Established(Box::new(established))
                    }
                    // IPCP does not come up without the client's address; if it ever
                    // did, the session could not be carried.
                    None => {
                        self.link.close(now, Cause::NoAddress);
                        continue;
                    }
                },
                LinkEvent::ResetRequested => SessionEvent::ResetRequested,
                LinkEvent::Down(cause) => {
                    self.state = SessionState::Terminated;
                    SessionEvent::Terminated(cause)
                }
            };
            self.events.push_back(event);
        }
    }

    fn established(&self, up: &LinkUp) -> Option<Established> {
        let client_tunnel_address = up.client_address()?;
        let snapshot = self.gre.snapshot();
        let mppe = up.mppe;
        let transmit = mppe.map(|m| MppeKeyState {
            strength: m.transmit.strength,
            mode: m.transmit.mode,
            start_key: m.keys.send,
        });
        let receive = mppe.map(|m| MppeKeyState {
            strength: m.receive.strength,
            mode: m.receive.mode,
            start_key: m.keys.receive,
        });
        let peer_mru = up.lcp.peer_mru;
        let mtu = if transmit.is_some() {
            peer_mru.saturating_sub(MPPE_OVERHEAD)
        } else {
            peer_mru
        };
        Some(Established {
            role: up.role,
            local_call_id: self.params.local_call_id,
            peer_call_id: self.params.peer_call_id,
            peer_address: self.params.peer_address,
            peer_recv_window: self.params.peer_recv_window,
            user: up.user.clone(),
            auth_method: up.auth_method,
            client_tunnel_address,
            server_tunnel_address: up.server_address(),
            name_servers: up.ipcp.name_servers,
            transmit,
            receive,
            gre: snapshot,
            peer_mru,
            our_mru: up.lcp.our_mru,
            mtu,
            acfc: up.lcp.acfc_tx,
            pfc: up.lcp.pfc_tx,
        })
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// What each cause tells the peer: CDN Result and Error, StopCCRQ Reason, LCP
    /// Terminate-Request text, and whether the peer started it.
    #[test]
    fn cause_tells_the_peer() {
        use DisconnectResult as R;
        let stop = |reason| Cause::ControlConnectionLost(CloseCause::PeerStop(reason));
        #[rustfmt::skip]
        let table: [(Cause, R, ErrorCode, StopReason, &str, bool); 12] = [
            (Cause::PeerTerminated { reason: "MPPE disabled".into() }, R::Request,
                ErrorCode::NoError, StopReason::GeneralRequest, "Peer requested termination", true),
            (Cause::PeerCallClear, R::Request,
                ErrorCode::NoError, StopReason::GeneralRequest, "Call cleared", true),
            (Cause::LocalCallClear, R::Request,
                ErrorCode::NoError, StopReason::GeneralRequest, "Call cleared", false),
            (Cause::TcpClosed, R::LostCarrier,
                ErrorCode::NoError, StopReason::GeneralRequest, "Control connection lost", true),
            (stop(StopReason::StopProtocol), R::LostCarrier,
                ErrorCode::NoError, StopReason::StopProtocol, "Control connection lost", false),
            (Cause::EchoTimeout, R::LostCarrier,
                ErrorCode::NoError, StopReason::GeneralRequest, "Peer not responding", false),
            (Cause::AuthFailed(FailureCause::WrongPassword), R::GeneralError,
                ErrorCode::NoError, StopReason::GeneralRequest, "Authentication failed", false),
            (Cause::AuthFailed(FailureCause::PeerRefused(None)), R::GeneralError,
                ErrorCode::NoError, StopReason::GeneralRequest,
                "Failed to authenticate ourselves to peer", false),
            (Cause::Mppe(CcpFailure::MppeRefused), R::GeneralError,
                ErrorCode::NoError, StopReason::GeneralRequest, "MPPE required but not available",
                false),
            (Cause::NoAddress, R::GeneralError,
                ErrorCode::NoResource, StopReason::GeneralRequest, "No IP address available", false),
            (Cause::IdleTimeout, R::AdminShutdown,
                ErrorCode::NoError, StopReason::GeneralRequest, "Link inactive", false),
            (Cause::Shutdown, R::AdminShutdown,
                ErrorCode::NoError, StopReason::LocalShutdown, "Server shutdown", false),
        ];
        for (cause, result, error, reason, text, peer) in table {
            assert_eq!(cause.disconnect_result(), result, "{cause:?}");
            assert_eq!(cause.disconnect_error(), error, "{cause:?}");
            assert_eq!(cause.stop_reason(), reason, "{cause:?}");
            assert_eq!(cause.lcp_terminate_text(), text, "{cause:?}");
            assert_eq!(cause.is_peer_initiated(), peer, "{cause:?}");
        }
    }

    #[test]
    fn cause_of_a_cleared_call() {
        let cdn = CallClearCause::PeerDisconnect {
            result: DisconnectResult::GeneralError,
            error: ErrorCode::NoError,
            cause_code: 0,
        };
        assert_eq!(Cause::from_call_clear(&cdn), Cause::PeerCallClear);
        assert_eq!(
            Cause::from_call_clear(&CallClearCause::PeerClearRequest),
            Cause::PeerCallClear
        );
        assert_eq!(
            Cause::from_call_clear(&CallClearCause::SetupTimeout),
            Cause::LocalCallClear
        );
        assert_eq!(
            Cause::from_call_clear(&CallClearCause::ConnectionClosed(CloseCause::TcpClosed)),
            Cause::TcpClosed
        );
        assert_eq!(
            Cause::from_call_clear(&CallClearCause::ConnectionClosed(CloseCause::EchoTimeout)),
            Cause::ControlConnectionLost(CloseCause::EchoTimeout)
        );
    }
}
