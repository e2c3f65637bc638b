//! The option-negotiation automaton of RFC 1661 §4, shared by LCP, IPCP and CCP.
//!
//! [`Fsm`] runs the ten states and sixteen events of the RFC 1661 §4.1 table, the restart
//! timer and its counters (§4.6), and the identifier rules of §5; the control protocol plugs
//! in as a [`Negotiator`], which decides only about options and its own extra codes.
//!
//! # Implementing a [`Negotiator`]
//!
//! The automaton calls the negotiator at these points (pppd's `fsm_callbacks` are the same
//! idea):
//!
//! * [`reset`](Negotiator::reset) when a new negotiation starts (an initial Configure-Request
//!   from a state that was not negotiating): go back to the configured wishes.
//! * [`write_request`](Negotiator::write_request) to build our Configure-Request: push the
//!   options we want into the [`OptionWriter`]. The automaton keeps the bytes, resends them
//!   unchanged on timeout, and checks that an Ack repeats them exactly.
//! * [`handle_ack`](Negotiator::handle_ack): the peer acknowledged exactly what we sent;
//!   those values now hold for our side.
//! * [`handle_nak`](Negotiator::handle_nak) / [`handle_reject`](Negotiator::handle_reject):
//!   the peer answered our current request (identifier already checked). Adjust what the
//!   next request asks for and return [`ReplyVerdict::Accept`]; return
//!   [`ReplyVerdict::Discard`] if the packet is bad (an option we did not send, a rejected
//!   option with other data than ours, a malformed list): RFC 1661 §5.3/§5.4 say such a
//!   packet is silently discarded. If a Nak asks for something we must not accept, or the
//!   peer rejected an option we cannot do without, call
//!   [`Context::close`] with a [`Failure`]. When [`Context::treat_nak_as_reject`] is set the
//!   peer has Nak'd Max-Failure times in a row: give up on the Nak'd options as if rejected.
//! * [`handle_request`](Negotiator::handle_request): decide on the peer's Configure-Request.
//!   Walk the options in order (a malformed option ends the walk: reject the rest with
//!   [`RequestReply::reject_rest`]); for each, either accept it (remember its value as the
//!   peer's, tentatively: the request may be Nak'd for another option, and a later request
//!   replaces it), call [`RequestReply::reject`] with it, or call [`RequestReply::nak`] with
//!   it and the value we would accept. To ask for an option the peer did not include, use
//!   [`RequestReply::nak_missing`]. The automaton then applies RFC 1661 §5.2–§5.4: any
//!   Reject wins and only the Rejects are sent; else any Nak sends the Nak list; else the
//!   request is Acked verbatim. After Max-Failure Naks without an Ack, `nak` turns into
//!   `reject` by itself (RFC 1661 §4.6), so the negotiator does not count.
//! * [`this_layer_up`](Negotiator::this_layer_up) and
//!   [`this_layer_down`](Negotiator::this_layer_down): the values are final / no longer
//!   valid. [`this_layer_started`](Negotiator::this_layer_started) and
//!   [`this_layer_finished`](Negotiator::this_layer_finished) mirror RFC 1661's tls/tlf.
//!   The same facts reach the caller as [`Event`]s, so these hooks are optional.
//! * [`handle_code`](Negotiator::handle_code) for codes outside 1–7 (LCP's Echo and
//!   Protocol-Reject, CCP's Reset-Request/Ack): answer through [`Context::send`], or return
//!   [`CodeVerdict::Unknown`] and the automaton sends a Code-Reject.
//!   [`code_rejected`](Negotiator::code_rejected) says whether a Code-Reject of such a code
//!   is tolerable (RXJ+) or catastrophic (RXJ-).
//!
//! A negotiator reports its own findings (LCP: Protocol-Reject received, loop-back, echo
//! failure) through [`Context::emit`] as [`Event::Negotiator`]. It never reads a clock or a
//! random number generator; what it needs is given to it at construction.
//!
//! # Driving an [`Fsm`]
//!
//! Inputs: [`Fsm::open`], [`Fsm::close`], [`Fsm::up`], [`Fsm::down`], [`Fsm::handle_packet`],
//! [`Fsm::handle_timeout`], [`Fsm::protocol_rejected`]. After every input, drain
//! [`Fsm::poll_transmit`] (packets to send, without the PPP protocol field) and
//! [`Fsm::poll_event`], then ask [`Fsm::poll_timeout`] when to call `handle_timeout` next.

use core::fmt;
use std::collections::VecDeque;
use std::time::Duration;

use crate::wire::cp::{Code, ConfigOption, OptionWriter, RawOption};

/// The states of RFC 1661 §4.2, numbered as in the §4.1 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// 0: lower layer down, no Open.
    Initial,
    /// 1: Open given, waiting for the lower layer (this-layer-started was signalled).
    Starting,
    /// 2: lower layer up, no Open; every request is answered with Terminate-Ack.
    Closed,
    /// 3: negotiation ended (tlf) with the administrative Open still in force.
    Stopped,
    /// 4: Terminate-Request sent after a Close.
    Closing,
    /// 5: Terminate-Request sent (or received) without a Close.
    Stopping,
    /// 6: our Configure-Request sent, no Ack yet, peer's request not Acked.
    ReqSent,
    /// 7: our request Acked, peer's not yet.
    AckRcvd,
    /// 8: peer's request Acked, ours not yet.
    AckSent,
    /// 9: both Acked: the layer is up.
    Opened,
}

impl fmt::Display for State {
    /// pppd's state names.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Initial => "Initial",
            State::Starting => "Starting",
            State::Closed => "Closed",
            State::Stopped => "Stopped",
            State::Closing => "Closing",
            State::Stopping => "Stopping",
            State::ReqSent => "Req-Sent",
            State::AckRcvd => "Ack-Rcvd",
            State::AckSent => "Ack-Sent",
            State::Opened => "Opened",
        })
    }
}

/// Why a negotiation ended other than by a plain Close, reported as [`Event::Failed`].
///
/// The link maps these to its termination causes and log text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Failure {
    /// Max-Configure Configure-Requests went unanswered (TO- while negotiating, §4.6).
    MaxConfigure,
    /// Max-Terminate Terminate-Requests went unanswered (TO- in Closing/Stopping); the
    /// layer finished anyway.
    MaxTerminate,
    /// The peer Code-Rejected a code we cannot do without (RXJ-, RFC 1661 §5.6).
    CodeRejected(Code),
    /// The peer Protocol-Rejected this whole protocol (RXJ-, RFC 1661 §5.7).
    ProtocolRejected,
    /// The peer rejected an option (Type given) that our configuration requires.
    RequiredOptionRejected(u8),
    /// The peer insists on a value of an option (Type given) that our configuration
    /// refuses, or Naks ours with nothing we can accept.
    NotConverging(u8),
    /// Our own requests come back to us: the link is looped back (LCP Magic-Number,
    /// RFC 1661 §6.4).
    LoopedBack,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::MaxConfigure => f.write_str("Max-Configure exceeded"),
            Failure::MaxTerminate => f.write_str("Max-Terminate exceeded"),
            Failure::CodeRejected(code) => write!(f, "peer rejected code {code}"),
            Failure::ProtocolRejected => f.write_str("peer rejected the protocol"),
            Failure::RequiredOptionRejected(kind) => {
                write!(f, "peer rejected required option {kind}")
            }
            Failure::NotConverging(kind) => write!(f, "no agreement on option {kind}"),
            Failure::LoopedBack => f.write_str("serial line is looped back"),
        }
    }
}

/// What the layer above learns from the automaton, drained with [`Fsm::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<E> {
    /// This-Layer-Started (tls): the lower layer is needed (RFC 1661 §4.4).
    Started,
    /// This-Layer-Up (tlu): negotiation done, the negotiated values hold.
    Up,
    /// This-Layer-Down (tld): leaving Opened.
    Down,
    /// This-Layer-Finished (tlf): the lower layer is no longer needed.
    Finished,
    /// The peer sent a Terminate-Request; `data` is its uninterpreted data (pppd puts a
    /// reason there), cut to [`MAX_REASON_LEN`] octets.
    PeerTerminated { data: Vec<u8> },
    /// The negotiation failed; a [`Finished`](Event::Finished) follows or has been sent.
    Failed(Failure),
    /// Something only the negotiator knows about (LCP: Protocol-Reject received, echo
    /// failure).
    Negotiator(E),
}

/// Longest Terminate-Request data kept in [`Event::PeerTerminated`].
pub const MAX_REASON_LEN: usize = 64;

/// The negotiator's judgement of a Configure-Nak or -Reject of our current request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyVerdict {
    /// A valid answer (RFC 1661's RCN event): the automaton sends a new request.
    Accept,
    /// Not a valid answer to what we sent: silently discarded (RFC 1661 §5.3, §5.4).
    Discard,
}

/// The negotiator's judgement of a packet with a code outside 1–7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeVerdict {
    /// A code of this protocol, dealt with (RXR for Echo and Discard, or a reply sent).
    Handled,
    /// Not a code of this protocol (RUC): the automaton sends a Code-Reject.
    Unknown,
}

/// Whether a Code-Reject of a code is survivable (RFC 1661 §4.1 RXJ+ / RXJ-).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectSeverity {
    /// RXJ+: the peer simply does not do it (for example LCP Identification).
    Tolerable,
    /// RXJ-: the protocol cannot work without it; the layer stops.
    Catastrophic,
}

/// A PPP control protocol's part of the negotiation; see the [module documentation](self)
/// for when each method is called and what it must do.
pub trait Negotiator {
    /// What this protocol reports beyond the automaton's own events (use
    /// `core::convert::Infallible` if nothing).
    type Event: fmt::Debug;

    /// The protocol's name for logs: "LCP", "IPCP", "CCP".
    fn name(&self) -> &'static str;

    /// A new negotiation starts: forget what the peer Nak'd or Rejected and what it asked
    /// for, and go back to the configured wishes (pppd's `resetci`).
    fn reset(&mut self, cx: &mut Context<'_, Self::Event>);

    /// Writes the options of our Configure-Request, in order. An option that does not fit
    /// is left out (`push` refuses it whole).
    fn write_request(&mut self, cx: &mut Context<'_, Self::Event>, out: &mut OptionWriter<'_>);

    /// The peer Acked our request; `options` are exactly the ones we sent.
    fn handle_ack(&mut self, cx: &mut Context<'_, Self::Event>, options: &[u8]);

    /// The peer Nak'd our request with `options` (values it would accept, and maybe options
    /// it wants us to add).
    fn handle_nak(&mut self, cx: &mut Context<'_, Self::Event>, options: &[u8]) -> ReplyVerdict;

    /// The peer Rejected `options` of our request; they must be ours, unchanged.
    fn handle_reject(&mut self, cx: &mut Context<'_, Self::Event>, options: &[u8]) -> ReplyVerdict;

    /// Decides on the peer's Configure-Request `options`, filling `reply` with the options
    /// to Nak or Reject; nothing in it means Ack.
    fn handle_request(
        &mut self,
        cx: &mut Context<'_, Self::Event>,
        options: &[u8],
        reply: &mut RequestReply,
    );

    /// This-Layer-Up: both sides Acked; the values negotiated are final.
    fn this_layer_up(&mut self, cx: &mut Context<'_, Self::Event>) {
        let _ = cx;
    }

    /// This-Layer-Down: leaving Opened; the negotiated values no longer hold.
    fn this_layer_down(&mut self, cx: &mut Context<'_, Self::Event>) {
        let _ = cx;
    }

    /// This-Layer-Started: the automaton wants the lower layer.
    fn this_layer_started(&mut self, cx: &mut Context<'_, Self::Event>) {
        let _ = cx;
    }

    /// This-Layer-Finished: the automaton no longer needs the lower layer.
    fn this_layer_finished(&mut self, cx: &mut Context<'_, Self::Event>) {
        let _ = cx;
    }

    /// A packet whose code is outside 1–7. Answer with [`Context::send`] if the protocol
    /// wants (LCP Echo-Reply), or return [`CodeVerdict::Unknown`] for a Code-Reject.
    /// [`Context::state`] tells whether the layer is Opened.
    fn handle_code(
        &mut self,
        cx: &mut Context<'_, Self::Event>,
        code: Code,
        id: u8,
        data: &[u8],
    ) -> CodeVerdict {
        let _ = (cx, code, id, data);
        CodeVerdict::Unknown
    }

    /// The peer Code-Rejected one of our packets with a code outside 1–7 (codes 1–7 are
    /// always catastrophic). The default tolerates it.
    fn code_rejected(&mut self, cx: &mut Context<'_, Self::Event>, code: Code) -> RejectSeverity {
        let _ = (cx, code);
        RejectSeverity::Tolerable
    }
}

/// What a [`Negotiator`] sees of the automaton while it is called, and how it acts on it.
#[derive(Debug)]
pub struct Context<'a, E> {
    state: State,
    treat_nak_as_reject: bool,
    outbox: &'a mut Outbox,
    events: &'a mut Bounded<Event<E>>,
    close: Option<Failure>,
}

impl<E> Context<'_, E> {
    /// The automaton's state when the call began.
    pub fn state(&self) -> State {
        self.state
    }

    /// Set while handling a Nak after the peer Nak'd Max-Failure times in a row: treat the
    /// Nak'd options as rejected so that the negotiation converges (pppd's `treat_as_reject`).
    pub fn treat_nak_as_reject(&self) -> bool {
        self.treat_nak_as_reject
    }

    /// Reports a negotiator event to the caller ([`Event::Negotiator`]).
    pub fn emit(&mut self, event: E) {
        self.events.push(Event::Negotiator(event));
    }

    /// Queues a packet of this protocol: Code, Identifier, and `data` (all parts
    /// concatenated), for codes the negotiator owns (Echo-Reply, Reset-Ack...).
    pub fn send(&mut self, code: Code, id: u8, data: &[&[u8]]) {
        self.outbox.send(code, id, data);
    }

    /// Gives up: after this call returns the automaton reports [`Event::Failed`] and acts
    /// as on an administrative Close (Terminate-Request if it was negotiating).
    pub fn close(&mut self, failure: Failure) {
        self.close.get_or_insert(failure);
    }
}

/// The answer being built to a peer's Configure-Request (see [`Negotiator::handle_request`]).
///
/// Keeps a Nak list and a Reject list; the automaton sends the Reject list if it is not
/// empty, else the Nak list if that is not empty, else an Ack of the request as received.
#[derive(Debug)]
pub struct RequestReply {
    nak: Vec<u8>,
    reject: Vec<u8>,
    rejected_any: bool,
    naked_any: bool,
    reject_instead_of_nak: bool,
    limit: usize,
}

impl RequestReply {
    #[allow(dead_code)]
    fn new(reject_instead_of_nak: bool, limit: usize) -> RequestReply {
        RequestReply {
            nak: Vec::new(),
            reject: Vec::new(),
            rejected_any: false,
            naked_any: false,
            reject_instead_of_nak,
            limit,
        }
    }

    /// Whether Max-Failure Naks have been sent without an Ack: [`nak`](Self::nak) now
    /// rejects (RFC 1661 §4.6).
    pub fn reject_instead_of_nak(&self) -> bool {
        self.reject_instead_of_nak
    }

    /// Rejects `received` (RFC 1661 §5.4): it is copied as received.
    pub fn reject(&mut self, received: RawOption<'_>) {
        self.rejected_any = true;
        push_option(&mut self.reject, self.limit, &received);
    }

    /// Rejects the octets from a malformed option to the end of the list (what pppd does:
    /// after a bad length the rest cannot be parsed).
    pub fn reject_rest(&mut self, rest: &[u8]) {
        self.rejected_any = true;
        let room = self.limit.saturating_sub(self.reject.len());
        self.reject
            .extend_from_slice(rest.get(..rest.len().min(room)).unwrap_or_default());
    }

    /// Naks `received`, proposing `wanted` instead (RFC 1661 §5.3); after Max-Failure this
    /// rejects `received` instead.
    pub fn nak<'o, O: ConfigOption<'o>>(&mut self, received: RawOption<'_>, wanted: &O) {
        if self.reject_instead_of_nak {
            self.reject(received);
        } else {
            self.naked_any = true;
            push_option(&mut self.nak, self.limit, wanted);
        }
    }

    /// Naks with an option the peer did not include, to ask for it (RFC 1661 §5.3). Nothing
    /// after Max-Failure (it cannot be rejected).
    pub fn nak_missing<'o, O: ConfigOption<'o>>(&mut self, wanted: &O) {
        if !self.reject_instead_of_nak {
            self.naked_any = true;
            push_option(&mut self.nak, self.limit, wanted);
        }
    }

    /// Whether anything was rejected so far.
    pub fn has_rejects(&self) -> bool {
        self.rejected_any
    }

    /// Whether anything was Nak'd so far.
    pub fn has_naks(&self) -> bool {
        self.naked_any
    }
}

/// Appends `option` to `list` if the list stays within `limit` octets; a Nak or Reject list
/// cut short is still a valid answer (the peer asks again).
fn push_option<'o, O: ConfigOption<'o>>(list: &mut Vec<u8>, limit: usize, option: &O) {
    let mut buf = [0u8; 255];
    if let Ok(n) = option.emit(&mut buf)
        && list.len().saturating_add(n) <= limit
    {
        list.extend_from_slice(buf.get(..n).unwrap_or_default());
    }
}

/// A FIFO with a fixed capacity that drops (and counts) what does not fit.
#[derive(Debug)]
struct Bounded<T> {
    items: VecDeque<T>,
    capacity: usize,
    dropped: u64,
}

impl<T> Bounded<T> {
    fn new(capacity: usize) -> Bounded<T> {
        Bounded {
            items: VecDeque::new(),
            capacity,
            dropped: 0,
        }
    }

    fn push(&mut self, item: T) {
        if self.items.len() < self.capacity {
            self.items.push_back(item);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }

    fn pop(&mut self) -> Option<T> {
        self.items.pop_front()
    }
}

/// Packets waiting for [`Fsm::poll_transmit`].
#[derive(Debug)]
struct Outbox {
    packets: Bounded<Vec<u8>>,
}

impl Outbox {
    fn send(&mut self, code: Code, id: u8, data: &[&[u8]]) {
        let data_len = data.iter().fold(0usize, |n, d| n.saturating_add(d.len()));
        let Some(length) = data_len.checked_add(4).and_then(|l| u16::try_from(l).ok()) else {
            return;
        };
        let mut packet = Vec::with_capacity(usize::from(length));
        packet.push(code.into());
        packet.push(id);
        packet.extend_from_slice(&length.to_be_bytes());
        for part in data {
            packet.extend_from_slice(part);
        }
        self.packets.push(packet);
    }
}

/// Timer and counter settings of RFC 1661 §4.6, with pppd's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsmConfig {
    /// Restart timer (pppd `lcp-restart`, `ipcp-restart`): 3 s.
    pub restart_timer: Duration,
    /// Max-Terminate (pppd `lcp-max-terminate`): 2.
    pub max_terminate: u32,
    /// Max-Configure (pppd `lcp-max-configure`): 10.
    pub max_configure: u32,
    /// Max-Failure (pppd `lcp-max-failure`): 5 Naks without an Ack before rejecting.
    pub max_failure: u32,
}

impl Default for FsmConfig {
    fn default() -> FsmConfig {
        FsmConfig {
            restart_timer: Duration::from_secs(3),
            max_terminate: 2,
            max_configure: 10,
            max_failure: 5,
        }
    }
}

/// The RFC 1661 automaton around a [`Negotiator`]; see the [module documentation](self).
#[derive(Debug)]
pub struct Fsm<N: Negotiator> {
    negotiator: N,
    config: FsmConfig,
    state: State,
    outbox: Outbox,
    events: Bounded<Event<N::Event>>,
}

impl<N: Negotiator> Fsm<N> {
    /// A new automaton in the Initial state.
    pub fn new(negotiator: N, config: FsmConfig) -> Fsm<N> {
        Fsm {
            negotiator,
            config,
            state: State::Initial,
            outbox: Outbox {
                packets: Bounded::new(32),
            },
            events: Bounded::new(64),
        }
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The negotiator, for reading what was negotiated.
    pub fn negotiator(&self) -> &N {
        &self.negotiator
    }

    /// The settings.
    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    /// The next packet to send (Code onwards, without the PPP protocol field).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.packets.pop()
    }

    /// The next event for the layer above.
    pub fn poll_event(&mut self) -> Option<Event<N::Event>> {
        self.events.pop()
    }
}
