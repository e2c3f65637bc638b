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
use std::time::{Duration, Instant};

use crate::wire::cp::{self, Code, ConfigOption, CpPacket, OptionWriter, RawOption};

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

    /// Naks `received` with `wanted` even after Max-Failure: for options whose Nak is
    /// itself the protocol (LCP's Magic-Number on a looped-back link, RFC 1661 §6.4, as
    /// pppd exempts it).
    pub fn nak_regardless<'o, O: ConfigOption<'o>>(&mut self, received: RawOption<'_>, wanted: &O) {
        let _ = received;
        self.naked_any = true;
        push_option(&mut self.nak, self.limit, wanted);
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

/// The events of RFC 1661 §4.3, the rows of the §4.1 table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Input {
    /// Up: the lower layer is ready.
    Up,
    /// Down: the lower layer is gone.
    Down,
    /// Open: administrative open.
    Open,
    /// Close: administrative close.
    Close,
    /// TO+: the restart timer expired with the counter above zero.
    TimeoutRetry,
    /// TO-: the restart timer expired with the counter at zero.
    TimeoutGiveUp,
    /// RCR+: a Configure-Request we Ack.
    GoodRequest,
    /// RCR-: a Configure-Request we Nak or Reject.
    BadRequest,
    /// RCA: a valid Configure-Ack of our request.
    ConfigureAck,
    /// RCN: a valid Configure-Nak or -Reject of our request.
    ConfigureNak,
    /// RTR: Terminate-Request received.
    TerminateRequest,
    /// RTA: Terminate-Ack received.
    TerminateAck,
    /// RUC: a code we do not know.
    UnknownCode,
    /// RXJ+: a tolerable Code-Reject or Protocol-Reject.
    RejectTolerable,
    /// RXJ-: a catastrophic Code-Reject or Protocol-Reject.
    RejectCatastrophic,
    /// RXR: Echo-Request, Echo-Reply or Discard-Request (or another code the negotiator
    /// handled).
    EchoOrDiscard,
}

/// The actions of RFC 1661 §4.4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// tlu: This-Layer-Up.
    Tlu,
    /// tld: This-Layer-Down.
    Tld,
    /// tls: This-Layer-Started.
    Tls,
    /// tlf: This-Layer-Finished.
    Tlf,
    /// irc: Initialize-Restart-Count (Max-Configure before scr, Max-Terminate before str).
    Irc,
    /// zrc: Zero-Restart-Count, and run the timer once (wait for the peer to see our Ack).
    Zrc,
    /// scr: Send-Configure-Request.
    Scr,
    /// sca: Send-Configure-Ack.
    Sca,
    /// scn: Send-Configure-Nak or -Reject.
    Scn,
    /// str: Send-Terminate-Request.
    Str,
    /// sta: Send-Terminate-Ack.
    Sta,
    /// scj: Send-Code-Reject.
    Scj,
    /// ser: Send-Echo-Reply (done by the negotiator, which knows the format).
    Ser,
}

/// The RFC 1661 §4.1 table: the next state and the actions for `input` in `state`, or
/// `None` where the table has a dash (the event cannot happen there; it is ignored).
///
/// The footnotes are not implemented: "r" (restart option: we stay), "p" (passive option:
/// we give up), "x" (crossed connection: handled as written).
pub fn transition(state: State, input: Input) -> Option<(State, &'static [Action])> {
    use Action::*;
    use Input as I;
    use State as S;
    let none: &'static [Action] = &[];
    Some(match (state, input) {
        (S::Initial, I::Up) => (S::Closed, none),
        (S::Initial, I::Open) => (S::Starting, &[Tls]),
        (S::Initial, I::Close) => (S::Initial, none),
        (S::Starting, I::Up) => (S::ReqSent, &[Irc, Scr]),
        (S::Starting, I::Open) => (S::Starting, none),
        (S::Starting, I::Close) => (S::Initial, &[Tlf]),
        (S::Initial | S::Starting, _) => return None,

        (S::Closed | S::Stopped | S::Closing | S::Stopping, I::Up) => return None,
        (S::Closed, I::Down) => (S::Initial, none),
        (S::Stopped, I::Down) => (S::Starting, &[Tls]),
        (S::Closing, I::Down) => (S::Initial, none),
        (S::Stopping, I::Down) => (S::Starting, none),
        (S::Closed, I::Open) => (S::ReqSent, &[Irc, Scr]),
        (S::Stopped, I::Open) => (S::Stopped, none),
        (S::Closing | S::Stopping, I::Open) => (S::Stopping, none),
        (S::Closed | S::Stopped, I::Close) => (S::Closed, none),
        (S::Closing | S::Stopping, I::Close) => (S::Closing, none),
        (S::Closed | S::Stopped, I::TimeoutRetry | I::TimeoutGiveUp) => return None,
        (S::Closing, I::TimeoutRetry) => (S::Closing, &[Str]),
        (S::Stopping, I::TimeoutRetry) => (S::Stopping, &[Str]),
        (S::Closing, I::TimeoutGiveUp) => (S::Closed, &[Tlf]),
        (S::Stopping, I::TimeoutGiveUp) => (S::Stopped, &[Tlf]),
        (S::Closed, I::GoodRequest | I::BadRequest | I::ConfigureAck | I::ConfigureNak) => {
            (S::Closed, &[Sta])
        }
        (S::Stopped, I::GoodRequest) => (S::AckSent, &[Irc, Scr, Sca]),
        (S::Stopped, I::BadRequest) => (S::ReqSent, &[Irc, Scr, Scn]),
        (S::Stopped, I::ConfigureAck | I::ConfigureNak) => (S::Stopped, &[Sta]),
        (
            S::Closing | S::Stopping,
            I::GoodRequest | I::BadRequest | I::ConfigureAck | I::ConfigureNak,
        ) => (state, none),
        (S::Closed | S::Stopped | S::Closing | S::Stopping, I::TerminateRequest) => (state, &[Sta]),
        (S::Closed | S::Stopped, I::TerminateAck) => (state, none),
        (S::Closing, I::TerminateAck) => (S::Closed, &[Tlf]),
        (S::Stopping, I::TerminateAck) => (S::Stopped, &[Tlf]),
        (S::Closed | S::Stopped | S::Closing | S::Stopping, I::UnknownCode) => (state, &[Scj]),
        (
            S::Closed | S::Stopped | S::Closing | S::Stopping,
            I::RejectTolerable | I::EchoOrDiscard,
        ) => (state, none),
        (S::Closed | S::Closing, I::RejectCatastrophic) => (S::Closed, &[Tlf]),
        (S::Stopped | S::Stopping, I::RejectCatastrophic) => (S::Stopped, &[Tlf]),

        (S::ReqSent | S::AckRcvd | S::AckSent | S::Opened, I::Up) => return None,
        (S::ReqSent | S::AckRcvd | S::AckSent, I::Down) => (S::Starting, none),
        (S::Opened, I::Down) => (S::Starting, &[Tld]),
        (S::ReqSent | S::AckRcvd | S::AckSent | S::Opened, I::Open) => (state, none),
        (S::ReqSent | S::AckRcvd | S::AckSent, I::Close) => (S::Closing, &[Irc, Str]),
        (S::Opened, I::Close) => (S::Closing, &[Tld, Irc, Str]),
        (S::ReqSent | S::AckRcvd, I::TimeoutRetry) => (S::ReqSent, &[Scr]),
        (S::AckSent, I::TimeoutRetry) => (S::AckSent, &[Scr]),
        (S::ReqSent | S::AckRcvd | S::AckSent, I::TimeoutGiveUp) => (S::Stopped, &[Tlf]),
        (S::Opened, I::TimeoutRetry | I::TimeoutGiveUp) => return None,
        (S::ReqSent | S::AckSent, I::GoodRequest) => (S::AckSent, &[Sca]),
        (S::AckRcvd, I::GoodRequest) => (S::Opened, &[Sca, Tlu]),
        (S::Opened, I::GoodRequest) => (S::AckSent, &[Tld, Scr, Sca]),
        (S::ReqSent | S::AckSent, I::BadRequest) => (S::ReqSent, &[Scn]),
        (S::AckRcvd, I::BadRequest) => (S::AckRcvd, &[Scn]),
        (S::Opened, I::BadRequest) => (S::ReqSent, &[Tld, Scr, Scn]),
        (S::ReqSent, I::ConfigureAck) => (S::AckRcvd, &[Irc]),
        (S::AckRcvd, I::ConfigureAck | I::ConfigureNak) => (S::ReqSent, &[Scr]),
        (S::AckSent, I::ConfigureAck) => (S::Opened, &[Irc, Tlu]),
        (S::Opened, I::ConfigureAck | I::ConfigureNak) => (S::ReqSent, &[Tld, Scr]),
        (S::ReqSent, I::ConfigureNak) => (S::ReqSent, &[Irc, Scr]),
        (S::AckSent, I::ConfigureNak) => (S::AckSent, &[Irc, Scr]),
        (S::ReqSent | S::AckRcvd | S::AckSent, I::TerminateRequest) => (S::ReqSent, &[Sta]),
        (S::Opened, I::TerminateRequest) => (S::Stopping, &[Tld, Zrc, Sta]),
        (S::ReqSent | S::AckRcvd, I::TerminateAck) => (S::ReqSent, none),
        (S::AckSent, I::TerminateAck) => (S::AckSent, none),
        (S::Opened, I::TerminateAck) => (S::ReqSent, &[Tld, Scr]),
        (S::ReqSent | S::AckRcvd | S::AckSent | S::Opened, I::UnknownCode) => (state, &[Scj]),
        (S::ReqSent | S::AckRcvd, I::RejectTolerable) => (S::ReqSent, none),
        (S::AckSent | S::Opened, I::RejectTolerable) => (state, none),
        (S::ReqSent | S::AckRcvd | S::AckSent, I::RejectCatastrophic) => (S::Stopped, &[Tlf]),
        (S::Opened, I::RejectCatastrophic) => (S::Stopping, &[Tld, Irc, Str]),
        (S::ReqSent | S::AckRcvd | S::AckSent, I::EchoOrDiscard) => (state, none),
        (S::Opened, I::EchoOrDiscard) => (S::Opened, &[Ser]),
    })
}

/// Counters of what the automaton ignored, for logs and statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FsmStats {
    /// Packets too short or with a bad Length.
    pub malformed: u64,
    /// Ack, Nak or Reject with a stale Identifier, or an Ack that does not repeat our
    /// request, or a Nak/Reject the negotiator refused (RFC 1661 §5.2–§5.4).
    pub discarded_replies: u64,
    /// Packets received in Initial or Starting (lower layer down).
    pub ignored: u64,
    /// Packets or events dropped because the caller did not drain the queues.
    pub queue_overflows: u64,
}

/// The RFC 1661 automaton around a [`Negotiator`]; see the [module documentation](self).
///
/// Call order, after every input: drain [`poll_transmit`](Self::poll_transmit), drain
/// [`poll_event`](Self::poll_event), then re-arm the timer from
/// [`poll_timeout`](Self::poll_timeout). Both queues are bounded (32 packets, 64 events);
/// what does not fit is dropped and counted in [`stats`](Self::stats).
#[derive(Debug)]
pub struct Fsm<N: Negotiator> {
    negotiator: N,
    config: FsmConfig,
    state: State,
    outbox: Outbox,
    events: Bounded<Event<N::Event>>,
    /// Restart counter (§4.6) and the timer's deadline.
    restart_count: u32,
    deadline: Option<Instant>,
    last_now: Option<Instant>,
    /// The last Identifier used; the next packet we originate uses the one after.
    last_id: u8,
    /// Our outstanding Configure-Request: its Identifier and options.
    request_id: u8,
    request_options: Vec<u8>,
    /// An Ack, Nak or Reject of `request_id` was accepted; later ones are duplicates.
    seen_reply: bool,
    /// Whether the running timer guards Terminate-Requests we sent (not a zrc wait).
    terminating: bool,
    terminate_reason: Vec<u8>,
    naks_sent: u32,
    naks_received: u32,
    peer_mru: u16,
    pending_close: Option<Failure>,
    /// How the current row's irc and scr behave (set before running its actions).
    irc_for_terminate: bool,
    retransmitting: bool,
    stats: FsmStats,
}

/// What triggered a transition, for the actions that answer a packet.
#[derive(Debug, Clone, Copy)]
struct Trigger<'p> {
    /// Identifier of the received packet (for sta).
    id: u8,
    /// The whole received packet from its Code on (for scj).
    packet: &'p [u8],
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
            restart_count: 0,
            deadline: None,
            last_now: None,
            last_id: 0,
            request_id: 0,
            request_options: Vec::new(),
            seen_reply: false,
            terminating: false,
            terminate_reason: Vec::new(),
            naks_sent: 0,
            naks_received: 0,
            peer_mru: 1500,
            pending_close: None,
            irc_for_terminate: false,
            retransmitting: false,
            stats: FsmStats::default(),
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

    /// The negotiator, mutably (to change its wishes before the next negotiation).
    pub fn negotiator_mut(&mut self) -> &mut N {
        &mut self.negotiator
    }

    /// The settings.
    pub fn config(&self) -> &FsmConfig {
        &self.config
    }

    /// What was ignored so far.
    pub fn stats(&self) -> FsmStats {
        let mut stats = self.stats;
        stats.queue_overflows = self
            .outbox
            .packets
            .dropped
            .saturating_add(self.events.dropped);
        stats
    }

    /// Sets the peer's MRU (from LCP): Code-Rejects and Configure-Nak/-Reject lists are cut
    /// to fit it. Default 1500; values below 64 are taken as 64.
    pub fn set_peer_mru(&mut self, mru: u16) {
        self.peer_mru = mru.max(64);
    }

    /// Room for a packet's data (after the 4-octet header) within the peer's MRU.
    fn data_limit(&self) -> usize {
        usize::from(self.peer_mru).saturating_sub(cp::HEADER_LEN)
    }

    /// The next packet to send (Code onwards, without the PPP protocol field).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outbox.packets.pop()
    }

    /// The next event for the layer above.
    pub fn poll_event(&mut self) -> Option<Event<N::Event>> {
        self.events.pop()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due, if the restart timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Administrative Open (RFC 1661 §4.3).
    pub fn open(&mut self, now: Instant) {
        self.input(Some(now), Input::Open, None);
    }

    /// Administrative Close; `reason` goes into the Terminate-Request's data (pppd sends
    /// text such as "User request"), cut to fit the peer's MRU.
    pub fn close(&mut self, now: Instant, reason: &[u8]) {
        let limit = self.data_limit().min(reason.len());
        self.terminate_reason = reason.get(..limit).unwrap_or_default().to_vec();
        self.input(Some(now), Input::Close, None);
    }

    /// The lower layer is up.
    pub fn up(&mut self, now: Instant) {
        self.input(Some(now), Input::Up, None);
    }

    /// The lower layer is down.
    pub fn down(&mut self) {
        self.input(None, Input::Down, None);
    }

    /// The peer Protocol-Rejected this protocol (RXJ-, RFC 1661 §5.7): LCP learns it and
    /// the link calls this on the rejected protocol's automaton.
    pub fn protocol_rejected(&mut self, now: Instant) {
        if matches!(self.state, State::Initial | State::Starting) {
            return;
        }
        self.events.push(Event::Failed(Failure::ProtocolRejected));
        self.input(Some(now), Input::RejectCatastrophic, None);
    }

    /// Acts on the restart timer if it is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.deadline {
            Some(deadline) if deadline <= now => {}
            _ => return,
        }
        self.deadline = None;
        let input = if self.restart_count > 0 {
            Input::TimeoutRetry
        } else {
            if self.terminating {
                self.events.push(Event::Failed(Failure::MaxTerminate));
            } else if matches!(self.state, State::ReqSent | State::AckRcvd | State::AckSent) {
                self.events.push(Event::Failed(Failure::MaxConfigure));
            }
            Input::TimeoutGiveUp
        };
        self.input(Some(now), input, None);
    }

    /// Handles one control packet of this protocol (Code onwards, without the PPP protocol
    /// field). Bytes after Length are padding and ignored; a packet shorter than its
    /// Length is dropped (counted in [`stats`](Self::stats)).
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.last_now = Some(now);
        let Ok(view) = CpPacket::new_checked(packet) else {
            self.stats.malformed = self.stats.malformed.saturating_add(1);
            return;
        };
        if matches!(self.state, State::Initial | State::Starting) {
            self.stats.ignored = self.stats.ignored.saturating_add(1);
            return;
        }
        let id = view.identifier();
        let data = view.data();
        let length = usize::from(view.length());
        let trigger = Trigger {
            id,
            packet: packet.get(..length).unwrap_or_default(),
        };
        match view.code() {
            Code::ConfigureRequest => self.receive_request(now, trigger, data),
            Code::ConfigureAck => {
                if self.negotiating() {
                    if id != self.request_id
                        || self.seen_reply
                        || data != self.request_options.as_slice()
                    {
                        return self.discard_reply();
                    }
                    self.seen_reply = true;
                    self.naks_received = 0;
                    self.call(|n, cx| n.handle_ack(cx, data));
                }
                self.input(Some(now), Input::ConfigureAck, Some(trigger));
            }
            code @ (Code::ConfigureNak | Code::ConfigureReject) => {
                if self.negotiating() {
                    if id != self.request_id || self.seen_reply {
                        return self.discard_reply();
                    }
                    let is_nak = code == Code::ConfigureNak;
                    if is_nak {
                        self.naks_received = self.naks_received.saturating_add(1);
                    }
                    let treat = is_nak && self.naks_received >= self.config.max_failure;
                    let verdict = self.call_with(treat, |n, cx| {
                        if is_nak {
                            n.handle_nak(cx, data)
                        } else {
                            n.handle_reject(cx, data)
                        }
                    });
                    if verdict == ReplyVerdict::Discard {
                        return self.discard_reply();
                    }
                    self.seen_reply = true;
                }
                self.input(Some(now), Input::ConfigureNak, Some(trigger));
            }
            Code::TerminateRequest => {
                if self.negotiating() {
                    let keep = data.len().min(MAX_REASON_LEN);
                    self.events.push(Event::PeerTerminated {
                        data: data.get(..keep).unwrap_or_default().to_vec(),
                    });
                }
                self.input(Some(now), Input::TerminateRequest, Some(trigger));
            }
            Code::TerminateAck => self.input(Some(now), Input::TerminateAck, Some(trigger)),
            Code::CodeReject => {
                let Some(&rejected) = data.first() else {
                    self.stats.malformed = self.stats.malformed.saturating_add(1);
                    return;
                };
                let rejected = Code::from(rejected);
                let severity = if (1..=7).contains(&u8::from(rejected)) {
                    RejectSeverity::Catastrophic
                } else {
                    self.call(|n, cx| n.code_rejected(cx, rejected))
                };
                let input = match severity {
                    RejectSeverity::Tolerable => Input::RejectTolerable,
                    RejectSeverity::Catastrophic => {
                        self.events
                            .push(Event::Failed(Failure::CodeRejected(rejected)));
                        Input::RejectCatastrophic
                    }
                };
                self.input(Some(now), input, Some(trigger));
            }
            code => {
                let input = match self.call(|n, cx| n.handle_code(cx, code, id, data)) {
                    CodeVerdict::Handled => Input::EchoOrDiscard,
                    CodeVerdict::Unknown => Input::UnknownCode,
                };
                self.input(Some(now), input, Some(trigger));
            }
        }
    }

    /// Queues a packet of this protocol outside the negotiation (LCP Echo-Request, CCP
    /// Reset-Request): Code, `id` and data.
    pub fn send(&mut self, code: Code, id: u8, data: &[&[u8]]) {
        self.outbox.send(code, id, data);
    }

    /// States in which a request of ours is outstanding or was Acked.
    fn negotiating(&self) -> bool {
        matches!(
            self.state,
            State::ReqSent | State::AckRcvd | State::AckSent | State::Opened
        )
    }

    fn discard_reply(&mut self) {
        self.stats.discarded_replies = self.stats.discarded_replies.saturating_add(1);
    }

    fn next_id(&mut self) -> u8 {
        self.last_id = self.last_id.wrapping_add(1);
        self.last_id
    }

    /// Calls the negotiator with a fresh [`Context`]; a close it asks for is kept for
    /// after the current transition.
    fn call<R>(&mut self, f: impl FnOnce(&mut N, &mut Context<'_, N::Event>) -> R) -> R {
        self.call_with(false, f)
    }

    fn call_with<R>(
        &mut self,
        treat_nak_as_reject: bool,
        f: impl FnOnce(&mut N, &mut Context<'_, N::Event>) -> R,
    ) -> R {
        let mut cx = Context {
            state: self.state,
            treat_nak_as_reject,
            outbox: &mut self.outbox,
            events: &mut self.events,
            close: None,
        };
        let result = f(&mut self.negotiator, &mut cx);
        if let Some(failure) = cx.close {
            self.pending_close.get_or_insert(failure);
        }
        result
    }

    /// RCR: runs the actions common to RCR+ and RCR- (they differ only in sca/scn, tlu
    /// and the next state), asks the negotiator, then finishes with the right row.
    fn receive_request(&mut self, now: Instant, trigger: Trigger<'_>, options: &[u8]) {
        let (Some((good_state, good)), Some((bad_state, _))) = (
            transition(self.state, Input::GoodRequest),
            transition(self.state, Input::BadRequest),
        ) else {
            return;
        };
        if !good.contains(&Action::Sca) {
            // Closed, Closing, Stopping: no negotiation, same row for both.
            return self.input(Some(now), Input::GoodRequest, Some(trigger));
        }
        self.irc_for_terminate = false;
        self.retransmitting = false;
        for &action in good {
            if !matches!(action, Action::Sca | Action::Tlu) {
                self.act(now.into(), action, Some(trigger));
            }
        }
        let reject_instead_of_nak = self.naks_sent >= self.config.max_failure;
        let mut reply = RequestReply::new(reject_instead_of_nak, self.data_limit());
        self.call(|n, cx| n.handle_request(cx, options, &mut reply));
        if reply.rejected_any {
            self.outbox
                .send(Code::ConfigureReject, trigger.id, &[&reply.reject]);
        } else if reply.naked_any {
            self.naks_sent = self.naks_sent.saturating_add(1);
            self.outbox
                .send(Code::ConfigureNak, trigger.id, &[&reply.nak]);
        } else {
            self.naks_sent = 0;
            self.outbox.send(Code::ConfigureAck, trigger.id, &[options]);
            if good.contains(&Action::Tlu) {
                self.act(now.into(), Action::Tlu, Some(trigger));
            }
            return self.enter(Some(now), good_state);
        }
        self.enter(Some(now), bad_state);
    }

    /// Runs one row of the table.
    fn input(&mut self, now: Option<Instant>, input: Input, trigger: Option<Trigger<'_>>) {
        if now.is_some() {
            self.last_now = now;
        }
        let Some((next, actions)) = transition(self.state, input) else {
            return self.run_pending_close();
        };
        self.irc_for_terminate = actions.contains(&Action::Str);
        self.retransmitting = input == Input::TimeoutRetry;
        for &action in actions {
            self.act(now, action, trigger);
        }
        self.enter(now, next);
    }

    /// Sets the state; the restart timer runs only in Closing, Stopping and the three
    /// negotiating states (RFC 1661 §4.2). Then handles a close the negotiator asked for.
    fn enter(&mut self, _now: Option<Instant>, next: State) {
        self.state = next;
        if matches!(
            next,
            State::Initial | State::Starting | State::Closed | State::Stopped | State::Opened
        ) {
            self.deadline = None;
            self.terminating = false;
        }
        self.run_pending_close();
    }

    fn run_pending_close(&mut self) {
        if let Some(failure) = self.pending_close.take() {
            self.events.push(Event::Failed(failure));
            let now = self.last_now;
            self.input(now, Input::Close, None);
        }
    }

    fn start_timer(&mut self, now: Option<Instant>) {
        if let Some(now) = now.or(self.last_now) {
            self.deadline = now.checked_add(self.config.restart_timer);
        }
    }

    /// scr. A retransmission (TO+) resends the same Identifier and options; otherwise a new
    /// Identifier and options freshly built. Starting from a state that was not
    /// negotiating resets the negotiator and, as pppd does, the restart counter and the
    /// Nak counters (the table has no irc for Opened's scr rows).
    fn send_configure_request(&mut self, now: Option<Instant>) {
        if !self.retransmitting {
            if !matches!(self.state, State::ReqSent | State::AckRcvd | State::AckSent) {
                self.restart_count = self.config.max_configure;
                self.naks_sent = 0;
                self.naks_received = 0;
                self.call(|n, cx| n.reset(cx));
            }
            let mut buf = vec![0u8; self.data_limit()];
            let mut writer = OptionWriter::new(&mut buf);
            self.call(|n, cx| n.write_request(cx, &mut writer));
            let len = writer.len();
            buf.truncate(len);
            self.request_options = buf;
            self.request_id = self.next_id();
        }
        self.seen_reply = false;
        self.restart_count = self.restart_count.saturating_sub(1);
        self.outbox.send(
            Code::ConfigureRequest,
            self.request_id,
            &[&self.request_options],
        );
        self.start_timer(now);
    }

    fn act(&mut self, now: Option<Instant>, action: Action, trigger: Option<Trigger<'_>>) {
        let received_id = trigger.map_or(0, |t| t.id);
        match action {
            Action::Tlu => {
                self.naks_sent = 0;
                self.call(|n, cx| n.this_layer_up(cx));
                self.events.push(Event::Up);
            }
            Action::Tld => {
                self.call(|n, cx| n.this_layer_down(cx));
                self.events.push(Event::Down);
            }
            Action::Tls => {
                self.call(|n, cx| n.this_layer_started(cx));
                self.events.push(Event::Started);
            }
            Action::Tlf => {
                self.call(|n, cx| n.this_layer_finished(cx));
                self.events.push(Event::Finished);
            }
            Action::Irc => {
                self.restart_count = if self.irc_for_terminate {
                    self.config.max_terminate
                } else {
                    self.config.max_configure
                };
            }
            Action::Zrc => {
                self.restart_count = 0;
                self.terminating = false;
                self.start_timer(now);
            }
            Action::Scr => self.send_configure_request(now),
            Action::Sca | Action::Scn => {
                // Only reached from receive_request, which builds the answer itself.
            }
            Action::Str => {
                self.restart_count = self.restart_count.saturating_sub(1);
                self.terminating = true;
                let id = self.next_id();
                let reason = core::mem::take(&mut self.terminate_reason);
                self.outbox.send(Code::TerminateRequest, id, &[&reason]);
                self.terminate_reason = reason;
                self.start_timer(now);
            }
            Action::Sta => self.outbox.send(Code::TerminateAck, received_id, &[]),
            Action::Scj => {
                let packet = trigger.map_or(&[][..], |t| t.packet);
                let keep = packet.len().min(self.data_limit());
                let id = self.next_id();
                self.outbox.send(
                    Code::CodeReject,
                    id,
                    &[packet.get(..keep).unwrap_or_default()],
                );
            }
            Action::Ser => {
                // The negotiator answered in handle_code: only it knows the Echo format.
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1661 §4.1, verbatim (both halves), parsed by the tests below.
    const RFC1661_TABLE: &str = "
      | State
      |    0         1         2         3         4         5
Events| Initial   Starting  Closed    Stopped   Closing   Stopping
------+-----------------------------------------------------------
 Up   |    2     irc,scr/6     -         -         -         -
 Down |    -         -         0       tls/1       0         1
 Open |  tls/1       1     irc,scr/6     3r        5r        5r
 Close|    0       tlf/0       2         2         4         4
      |
  TO+ |    -         -         -         -       str/4     str/5
  TO- |    -         -         -         -       tlf/2     tlf/3
      |
 RCR+ |    -         -       sta/2 irc,scr,sca/8   4         5
 RCR- |    -         -       sta/2 irc,scr,scn/6   4         5
 RCA  |    -         -       sta/2     sta/3       4         5
 RCN  |    -         -       sta/2     sta/3       4         5
      |
 RTR  |    -         -       sta/2     sta/3     sta/4     sta/5
 RTA  |    -         -         2         3       tlf/2     tlf/3
      |
 RUC  |    -         -       scj/2     scj/3     scj/4     scj/5
 RXJ+ |    -         -         2         3         4         5
 RXJ- |    -         -       tlf/2     tlf/3     tlf/2     tlf/3
      |
 RXR  |    -         -         2         3         4         5

      | State
      |    6         7         8           9
Events| Req-Sent  Ack-Rcvd  Ack-Sent    Opened
------+-----------------------------------------
 Up   |    -         -         -           -
 Down |    1         1         1         tld/1
 Open |    6         7         8           9r
 Close|irc,str/4 irc,str/4 irc,str/4 tld,irc,str/4
      |
  TO+ |  scr/6     scr/6     scr/8         -
  TO- |  tlf/3p    tlf/3p    tlf/3p        -
      |
 RCR+ |  sca/8   sca,tlu/9   sca/8   tld,scr,sca/8
 RCR- |  scn/6     scn/7     scn/6   tld,scr,scn/6
 RCA  |  irc/7     scr/6x  irc,tlu/9   tld,scr/6x
 RCN  |irc,scr/6   scr/6x  irc,scr/8   tld,scr/6x
      |
 RTR  |  sta/6     sta/6     sta/6   tld,zrc,sta/5
 RTA  |    6         6         8       tld,scr/6
      |
 RUC  |  scj/6     scj/7     scj/8       scj/9
 RXJ+ |    6         6         8           9
 RXJ- |  tlf/3     tlf/3     tlf/3   tld,irc,str/5
      |
 RXR  |    6         7         8         ser/9
";

    const STATES: [State; 10] = [
        State::Initial,
        State::Starting,
        State::Closed,
        State::Stopped,
        State::Closing,
        State::Stopping,
        State::ReqSent,
        State::AckRcvd,
        State::AckSent,
        State::Opened,
    ];

    const INPUTS: [(&str, Input); 16] = [
        ("Up", Input::Up),
        ("Down", Input::Down),
        ("Open", Input::Open),
        ("Close", Input::Close),
        ("TO+", Input::TimeoutRetry),
        ("TO-", Input::TimeoutGiveUp),
        ("RCR+", Input::GoodRequest),
        ("RCR-", Input::BadRequest),
        ("RCA", Input::ConfigureAck),
        ("RCN", Input::ConfigureNak),
        ("RTR", Input::TerminateRequest),
        ("RTA", Input::TerminateAck),
        ("RUC", Input::UnknownCode),
        ("RXJ+", Input::RejectTolerable),
        ("RXJ-", Input::RejectCatastrophic),
        ("RXR", Input::EchoOrDiscard),
    ];

    type Cell = Option<(State, Vec<Action>)>;

    fn parse_action(name: &str) -> Action {
        match name {
            "tlu" => Action::Tlu,
            "tld" => Action::Tld,
            "tls" => Action::Tls,
            "tlf" => Action::Tlf,
            "irc" => Action::Irc,
            "zrc" => Action::Zrc,
            "scr" => Action::Scr,
            "sca" => Action::Sca,
            "scn" => Action::Scn,
            "str" => Action::Str,
            "sta" => Action::Sta,
            "scj" => Action::Scj,
            "ser" => Action::Ser,
            other => panic!("unknown action {other}"),
        }
    }

    /// The RFC table as (state, input) -> cell, footnote letters dropped.
    fn rfc_table() -> std::collections::HashMap<(State, Input), Cell> {
        let mut table = std::collections::HashMap::new();
        let mut first_state = 0;
        for line in RFC1661_TABLE.lines() {
            let Some((event, cells)) = line.split_once('|') else {
                continue;
            };
            let event = event.trim();
            if event == "Events" || event.is_empty() {
                if let Some(n) = cells.split_whitespace().next()
                    && let Ok(n) = n.parse::<usize>()
                {
                    first_state = n;
                }
                continue;
            }
            let input = INPUTS.iter().find(|(name, _)| *name == event).unwrap().1;
            for (i, cell) in cells.split_whitespace().enumerate() {
                let state = STATES[first_state + i];
                let parsed = if cell == "-" {
                    None
                } else {
                    let (actions, next) = cell.rsplit_once('/').unwrap_or(("", cell));
                    let digits: String = next.chars().filter(char::is_ascii_digit).collect();
                    let next = STATES[digits.parse::<usize>().unwrap()];
                    let actions = actions
                        .split(',')
                        .filter(|a| !a.is_empty())
                        .map(parse_action)
                        .collect();
                    Some((next, actions))
                };
                assert!(table.insert((state, input), parsed).is_none());
            }
        }
        assert_eq!(table.len(), 160);
        table
    }

    #[test]
    fn transition_table_is_rfc1661() {
        let table = rfc_table();
        for state in STATES {
            for (name, input) in INPUTS {
                let mut expected = table[&(state, input)].clone();
                let mut got = transition(state, input).map(|(s, a)| (s, a.to_vec()));
                for cell in [&mut expected, &mut got].into_iter().flatten() {
                    cell.1.sort_by_key(|a| *a as u8);
                }
                assert_eq!(got, expected, "{state} x {name}");
            }
        }
    }

    /// A negotiator with one option (Type 1, one octet): we ask for `want`, and accept the
    /// peer's value only if it is `accept` (else Nak with it). Everything else is rejected.
    #[derive(Debug, Default)]
    struct OneOption {
        configured: u8,
        want: Option<u8>,
        accept: u8,
        acked: Option<u8>,
        peer: Option<u8>,
    }

    impl OneOption {
        fn new(want: u8, accept: u8) -> OneOption {
            OneOption {
                configured: want,
                want: Some(want),
                accept,
                ..OneOption::default()
            }
        }
    }

    impl Negotiator for OneOption {
        type Event = core::convert::Infallible;

        fn name(&self) -> &'static str {
            "TEST"
        }

        fn reset(&mut self, _cx: &mut Context<'_, Self::Event>) {
            self.want = Some(self.configured);
            self.acked = None;
        }

        fn write_request(
            &mut self,
            _cx: &mut Context<'_, Self::Event>,
            out: &mut OptionWriter<'_>,
        ) {
            if let Some(want) = self.want {
                out.push_raw(1, &[want]).unwrap();
            }
        }

        fn handle_ack(&mut self, _cx: &mut Context<'_, Self::Event>, _options: &[u8]) {
            self.acked = self.want;
        }

        fn handle_nak(
            &mut self,
            cx: &mut Context<'_, Self::Event>,
            options: &[u8],
        ) -> ReplyVerdict {
            for raw in cp::OptionIter::new(options) {
                let Ok(raw) = raw else {
                    return ReplyVerdict::Discard;
                };
                match (raw.kind, raw.data) {
                    (1, [value]) if cx.treat_nak_as_reject() => {
                        let _ = value;
                        self.want = None;
                    }
                    (1, [value]) => self.want = Some(*value),
                    _ => return ReplyVerdict::Discard,
                }
            }
            ReplyVerdict::Accept
        }

        fn handle_reject(
            &mut self,
            _cx: &mut Context<'_, Self::Event>,
            options: &[u8],
        ) -> ReplyVerdict {
            for raw in cp::OptionIter::new(options) {
                match raw {
                    Ok(raw)
                        if raw.kind == 1 && self.want.map(|w| [w]) == raw.data.try_into().ok() =>
                    {
                        self.want = None
                    }
                    _ => return ReplyVerdict::Discard,
                }
            }
            ReplyVerdict::Accept
        }

        fn handle_request(
            &mut self,
            _cx: &mut Context<'_, Self::Event>,
            options: &[u8],
            reply: &mut RequestReply,
        ) {
            let mut iter = cp::OptionIter::new(options);
            while let Some(raw) = iter.next() {
                let Ok(raw) = raw else {
                    return reply.reject_rest(iter.rest());
                };
                match (raw.kind, raw.data) {
                    (1, [value]) if *value == self.accept => self.peer = Some(*value),
                    (1, [_]) => reply.nak(
                        raw,
                        &RawOption {
                            kind: 1,
                            data: &[self.accept],
                        },
                    ),
                    _ => reply.reject(raw),
                }
            }
        }

        fn handle_code(
            &mut self,
            cx: &mut Context<'_, Self::Event>,
            code: Code,
            id: u8,
            data: &[u8],
        ) -> CodeVerdict {
            match code {
                Code::EchoRequest => {
                    if cx.state() == State::Opened {
                        cx.send(Code::EchoReply, id, &[data]);
                    }
                    CodeVerdict::Handled
                }
                _ => CodeVerdict::Unknown,
            }
        }
    }

    fn drain<N: Negotiator>(fsm: &mut Fsm<N>) -> (Vec<Vec<u8>>, Vec<Event<N::Event>>) {
        let packets = core::iter::from_fn(|| fsm.poll_transmit()).collect();
        let events = core::iter::from_fn(|| fsm.poll_event()).collect();
        (packets, events)
    }

    /// Opened and Up at `now`, its first Configure-Request sent (and drained).
    fn req_sent(now: Instant) -> Fsm<OneOption> {
        let mut fsm = Fsm::new(OneOption::new(5, 7), FsmConfig::default());
        fsm.open(now);
        fsm.up(now);
        drain(&mut fsm);
        fsm
    }

    fn base() -> Instant {
        Instant::now()
    }

    #[test]
    fn open_up_sends_configure_request_and_retransmits_same_id() {
        let t0 = base();
        let mut fsm = Fsm::new(OneOption::new(5, 7), FsmConfig::default());
        fsm.open(t0);
        assert_eq!(fsm.state(), State::Starting);
        fsm.up(t0);
        assert_eq!(fsm.state(), State::ReqSent);
        let (packets, events) = drain(&mut fsm);
        assert_eq!(events, [Event::Started]);
        assert_eq!(packets, [vec![1, 1, 0, 7, 1, 3, 5]]);
        assert_eq!(fsm.poll_timeout(), Some(t0 + Duration::from_secs(3)));
        fsm.handle_timeout(t0 + Duration::from_secs(2));
        assert!(drain(&mut fsm).0.is_empty(), "not due yet");
        fsm.handle_timeout(t0 + Duration::from_secs(3));
        assert_eq!(drain(&mut fsm).0, [vec![1, 1, 0, 7, 1, 3, 5]]);
    }

    #[test]
    fn max_configure_gives_up() {
        let t0 = base();
        let mut fsm = Fsm::new(OneOption::new(5, 7), FsmConfig::default());
        fsm.open(t0);
        fsm.up(t0);
        let mut sent = drain(&mut fsm).0.len();
        while let Some(deadline) = fsm.poll_timeout() {
            fsm.handle_timeout(deadline);
            let (packets, events) = drain(&mut fsm);
            sent += packets.len();
            if fsm.state() == State::Stopped {
                assert_eq!(
                    events,
                    [Event::Failed(Failure::MaxConfigure), Event::Finished]
                );
            }
        }
        assert_eq!(sent, 10);
        assert_eq!(fsm.state(), State::Stopped);
    }

    #[test]
    fn stale_or_altered_replies_are_discarded() {
        let t0 = base();
        let mut fsm = req_sent(t0);
        // Wrong identifier.
        fsm.handle_packet(t0, &[2, 9, 0, 7, 1, 3, 5]);
        // Right identifier, other options than we sent.
        fsm.handle_packet(t0, &[2, 1, 0, 7, 1, 3, 6]);
        fsm.handle_packet(t0, &[3, 2, 0, 7, 1, 3, 6]);
        assert_eq!(fsm.state(), State::ReqSent);
        assert_eq!(fsm.stats().discarded_replies, 3);
        fsm.handle_packet(t0, &[2, 1, 0, 7, 1, 3, 5]);
        assert_eq!(fsm.state(), State::AckRcvd);
        // A duplicate Ack is discarded too.
        fsm.handle_packet(t0, &[2, 1, 0, 7, 1, 3, 5]);
        assert_eq!(fsm.stats().discarded_replies, 4);
        assert_eq!(fsm.state(), State::AckRcvd);
    }

    #[test]
    fn nak_becomes_reject_after_max_failure() {
        let t0 = base();
        let mut fsm = req_sent(t0);
        for id in 0..5u8 {
            fsm.handle_packet(t0, &[1, id, 0, 7, 1, 3, 8]);
            assert_eq!(drain(&mut fsm).0, [vec![3, id, 0, 7, 1, 3, 7]], "Nak {id}");
        }
        fsm.handle_packet(t0, &[1, 5, 0, 7, 1, 3, 8]);
        assert_eq!(drain(&mut fsm).0, [vec![4, 5, 0, 7, 1, 3, 8]]);
        // An acceptable request is Acked and resets the count.
        fsm.handle_packet(t0, &[1, 6, 0, 7, 1, 3, 7]);
        assert_eq!(drain(&mut fsm).0, [vec![2, 6, 0, 7, 1, 3, 7]]);
        fsm.handle_packet(t0, &[1, 7, 0, 7, 1, 3, 8]);
        assert_eq!(drain(&mut fsm).0, [vec![3, 7, 0, 7, 1, 3, 7]]);
    }

    #[test]
    fn unknown_code_is_code_rejected_within_peer_mru() {
        let t0 = base();
        let mut fsm = req_sent(t0);
        fsm.set_peer_mru(64);
        let mut packet = vec![0x20, 0x33, 0, 100];
        packet.resize(100, 0xab);
        fsm.handle_packet(t0, &packet);
        let (packets, _) = drain(&mut fsm);
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].len(), 64);
        assert_eq!(packets[0][..4], [7, 2, 0, 64]);
        assert_eq!(packets[0][4..], packet[..60]);
        // Garbage is counted, never a panic.
        for bad in [&[][..], &[1], &[1, 1, 0, 3], &[1, 1, 0, 9, 0]] {
            fsm.handle_packet(t0, bad);
        }
        assert_eq!(fsm.stats().malformed, 4);
    }

    #[test]
    fn terminate_from_opened() {
        let t0 = base();
        let (mut a, mut b) = pair();
        converge(&mut a, &mut b, t0, |_| false);
        drain(&mut a);
        drain(&mut b);
        a.close(t0, b"User request");
        let (packets, events) = drain(&mut a);
        assert_eq!(events, [Event::Down]);
        assert_eq!(a.state(), State::Closing);
        assert_eq!(packets[0][0], 5);
        assert_eq!(&packets[0][4..], b"User request");
        b.handle_packet(t0, &packets[0]);
        let (reply, events) = drain(&mut b);
        assert_eq!(
            events,
            [
                Event::PeerTerminated {
                    data: b"User request".to_vec()
                },
                Event::Down
            ]
        );
        assert_eq!(b.state(), State::Stopping);
        a.handle_packet(t0, &reply[0]);
        assert_eq!(a.state(), State::Closed);
        assert_eq!(drain(&mut a).1, [Event::Finished]);
        // The peer waits one restart period, then finishes without a failure.
        b.handle_timeout(b.poll_timeout().unwrap());
        assert_eq!(b.state(), State::Stopped);
        assert_eq!(drain(&mut b).1, [Event::Finished]);
    }

    fn pair() -> (Fsm<OneOption>, Fsm<OneOption>) {
        let a = Fsm::new(OneOption::new(5, 7), FsmConfig::default());
        let b = Fsm::new(OneOption::new(5, 7), FsmConfig::default());
        (a, b)
    }

    /// Runs two automata back to back on a virtual clock until both are Opened; `lose`
    /// decides, by packet number, which packets the network drops.
    fn converge(
        a: &mut Fsm<OneOption>,
        b: &mut Fsm<OneOption>,
        t0: Instant,
        lose: impl Fn(usize) -> bool,
    ) -> Instant {
        let mut now = t0;
        a.open(now);
        b.open(now);
        a.up(now);
        b.up(now);
        let mut n = 0;
        for _ in 0..200 {
            if a.state() == State::Opened && b.state() == State::Opened {
                return now;
            }
            let mut moved = false;
            while a.poll_event().is_some() || b.poll_event().is_some() {}
            while let Some(p) = a.poll_transmit() {
                n += 1;
                moved = true;
                if !lose(n) {
                    b.handle_packet(now, &p);
                }
            }
            while let Some(p) = b.poll_transmit() {
                n += 1;
                moved = true;
                if !lose(n) {
                    a.handle_packet(now, &p);
                }
            }
            if !moved {
                let next = [a.poll_timeout(), b.poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min();
                let Some(next) = next else { break };
                now = next;
                a.handle_timeout(now);
                b.handle_timeout(now);
            }
        }
        assert_eq!((a.state(), b.state()), (State::Opened, State::Opened));
        now
    }

    #[test]
    fn back_to_back_converge() {
        let t0 = base();
        let (mut a, mut b) = pair();
        let t = converge(&mut a, &mut b, t0, |_| false);
        assert_eq!(t, t0, "no timer needed without loss");
        // Both wanted 5 and accept only 7: each Naks the other's 5 with 7.
        assert_eq!(a.negotiator().acked, Some(7));
        assert_eq!(b.negotiator().acked, Some(7));
        assert_eq!(a.negotiator().peer, Some(7));
        assert_eq!(b.negotiator().peer, Some(7));
    }

    #[test]
    fn back_to_back_converge_with_loss() {
        // A pseudo-random quarter of the packets is lost (a fixed pattern can starve one
        // packet forever); the first packet is always lost so a retransmission is needed.
        for seed in 1..20u64 {
            let t0 = base();
            let (mut a, mut b) = pair();
            let lose = |n: usize| {
                let x = (n as u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                    .wrapping_mul(0x2545_f491_4f6c_dd1d);
                n == 1 || (x >> 60) < 4
            };
            let t = converge(&mut a, &mut b, t0, lose);
            assert!(t > t0, "seed {seed} needed a retransmission");
            assert_eq!(a.negotiator().acked, Some(7));
            assert_eq!(b.negotiator().acked, Some(7));
        }
    }

    /// Steps of the model test: what the peer or the administrator does.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        Up,
        Down,
        Open,
        Close,
        Timeout,
        Request { good: bool },
        Ack { valid: bool },
        Nak { valid: bool },
        TerminateRequest,
        TerminateAck,
        UnknownCode,
        CodeReject { catastrophic: bool },
        Echo,
    }

    fn arb_step() -> impl Strategy<Value = Step> {
        prop_oneof![
            Just(Step::Up),
            Just(Step::Down),
            Just(Step::Open),
            Just(Step::Close),
            Just(Step::Timeout),
            Just(Step::Timeout),
            any::<bool>().prop_map(|good| Step::Request { good }),
            any::<bool>().prop_map(|valid| Step::Ack { valid }),
            any::<bool>().prop_map(|valid| Step::Nak { valid }),
            Just(Step::TerminateRequest),
            Just(Step::TerminateAck),
            Just(Step::UnknownCode),
            any::<bool>().prop_map(|catastrophic| Step::CodeReject { catastrophic }),
            Just(Step::Echo),
        ]
    }

    /// The reference: the parsed RFC text plus the counter rules of §4.6 and the reply
    /// rules of §5.1–§5.4, nothing else.
    struct Model {
        table: std::collections::HashMap<(State, Input), Cell>,
        state: State,
        count: u32,
        /// A request of ours is out and no valid reply to it was taken yet.
        outstanding: bool,
    }

    impl Model {
        /// Applies `input`; returns (codes sent, events) sorted.
        fn step(&mut self, input: Input) -> (Vec<u8>, Vec<&'static str>) {
            let config = FsmConfig::default();
            let mut sent = vec![];
            let mut events = vec![];
            let Some(Some((next, actions))) = self.table.get(&(self.state, input)).cloned() else {
                return (sent, events);
            };
            let negotiating =
                matches!(self.state, State::ReqSent | State::AckRcvd | State::AckSent);
            for action in &actions {
                match action {
                    Action::Irc => {
                        self.count = if actions.contains(&Action::Str) {
                            config.max_terminate
                        } else {
                            config.max_configure
                        }
                    }
                    Action::Zrc => self.count = 0,
                    Action::Scr => {
                        if input != Input::TimeoutRetry && !negotiating {
                            self.count = config.max_configure;
                        }
                        self.count = self.count.saturating_sub(1);
                        self.outstanding = true;
                        sent.push(1);
                    }
                    Action::Str => {
                        self.count = self.count.saturating_sub(1);
                        sent.push(5);
                    }
                    Action::Sca => sent.push(2),
                    Action::Scn => sent.push(3),
                    Action::Sta => sent.push(6),
                    Action::Scj => sent.push(7),
                    Action::Ser => sent.push(10),
                    Action::Tlu => events.push("up"),
                    Action::Tld => events.push("down"),
                    Action::Tls => events.push("started"),
                    Action::Tlf => events.push("finished"),
                }
            }
            self.state = next;
            sent.sort();
            events.sort();
            (sent, events)
        }

        fn timer_running(&self) -> bool {
            matches!(
                self.state,
                State::Closing | State::Stopping | State::ReqSent | State::AckRcvd | State::AckSent
            )
        }

        fn takes_reply(&self) -> bool {
            matches!(
                self.state,
                State::ReqSent | State::AckRcvd | State::AckSent | State::Opened
            )
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn automaton_follows_rfc1661_table(steps in proptest::collection::vec(arb_step(), 1..60)) {
            let t0 = base();
            let mut now = t0;
            let mut fsm = Fsm::new(OneOption::new(5, 7), FsmConfig::default());
            let mut model = Model { table: rfc_table(), state: State::Initial, count: 0, outstanding: false };
            let mut last_request: Option<Vec<u8>> = None;
            let mut peer_id = 0u8;
            for step in steps {
                now += Duration::from_millis(100);
                peer_id = peer_id.wrapping_add(1);
                let expected = match step {
                    Step::Up => { fsm.up(now); model.step(Input::Up) }
                    Step::Down => { fsm.down(); model.step(Input::Down) }
                    Step::Open => { fsm.open(now); model.step(Input::Open) }
                    Step::Close => { fsm.close(now, b"bye"); model.step(Input::Close) }
                    Step::Timeout => {
                        prop_assert_eq!(fsm.poll_timeout().is_some(), model.timer_running());
                        match fsm.poll_timeout() {
                            Some(deadline) => {
                                now = deadline;
                                fsm.handle_timeout(now);
                                let input = if model.count > 0 { Input::TimeoutRetry } else { Input::TimeoutGiveUp };
                                model.step(input)
                            }
                            None => (vec![], vec![]),
                        }
                    }
                    Step::Request { good } => {
                        let value = if good { 7 } else { 8 };
                        fsm.handle_packet(now, &[1, peer_id, 0, 7, 1, 3, value]);
                        if matches!(model.state, State::Initial | State::Starting) {
                            (vec![], vec![])
                        } else {
                            model.step(if good { Input::GoodRequest } else { Input::BadRequest })
                        }
                    }
                    Step::Ack { valid } | Step::Nak { valid } => {
                        let is_ack = matches!(step, Step::Ack { .. });
                        let mut packet = last_request.clone().unwrap_or_else(|| vec![1, 0, 0, 4]);
                        packet[0] = if is_ack { 2 } else { 3 };
                        if !valid {
                            packet[1] = packet[1].wrapping_add(100);
                        } else if !is_ack && packet.len() == 7 {
                            packet[6] = 9;
                        }
                        fsm.handle_packet(now, &packet);
                        let accepted = valid && model.outstanding && last_request.is_some();
                        if matches!(model.state, State::Initial | State::Starting)
                            || (model.takes_reply() && !accepted)
                        {
                            (vec![], vec![])
                        } else {
                            if model.takes_reply() {
                                model.outstanding = false;
                            }
                            model.step(if is_ack { Input::ConfigureAck } else { Input::ConfigureNak })
                        }
                    }
                    Step::TerminateRequest | Step::TerminateAck | Step::UnknownCode
                    | Step::CodeReject { .. } | Step::Echo => {
                        let (packet, input) = match step {
                            Step::TerminateRequest => (vec![5, peer_id, 0, 4], Input::TerminateRequest),
                            Step::TerminateAck => (vec![6, peer_id, 0, 4], Input::TerminateAck),
                            Step::UnknownCode => (vec![0x42, peer_id, 0, 5, 0], Input::UnknownCode),
                            Step::CodeReject { catastrophic: true } =>
                                (vec![7, peer_id, 0, 8, 1, 1, 0, 4], Input::RejectCatastrophic),
                            Step::CodeReject { catastrophic: false } =>
                                (vec![7, peer_id, 0, 8, 12, 1, 0, 4], Input::RejectTolerable),
                            _ => (vec![9, peer_id, 0, 8, 0, 0, 0, 0], Input::EchoOrDiscard),
                        };
                        fsm.handle_packet(now, &packet);
                        if matches!(model.state, State::Initial | State::Starting) {
                            (vec![], vec![])
                        } else {
                            model.step(input)
                        }
                    }
                };
                let (packets, events) = drain(&mut fsm);
                for p in &packets {
                    if p[0] == 1 {
                        last_request = Some(p.clone());
                    }
                }
                let mut codes: Vec<u8> = packets.iter().map(|p| if p[0] == 4 { 3 } else { p[0] }).collect();
                codes.sort();
                let mut names: Vec<&str> = events
                    .iter()
                    .filter_map(|e| match e {
                        Event::Up => Some("up"),
                        Event::Down => Some("down"),
                        Event::Started => Some("started"),
                        Event::Finished => Some("finished"),
                        _ => None,
                    })
                    .collect();
                names.sort();
                prop_assert_eq!(fsm.state(), model.state, "after {:?}", step);
                prop_assert_eq!((codes, names), expected, "after {:?}", step);
            }
        }
    }
}
