//! The CCP negotiator for MPPE (RFC 1962, RFC 3078 §2, key strengths of RFC 3079), both
//! roles, with Reset-Request/-Ack.
//!
//! Over PPTP, CCP exists to agree on MPPE: one option (type 18) whose bits say the key
//! strength (L 40, M 56, S 128 bits) and the mode (H: stateless; clear: stateful).
//! [`CcpNegotiator`] plugs into the RFC 1661 automaton ([`Fsm`]).
//!
//! # How the bits are negotiated (RFC 3078 §2, and what pppd's `ccp.c` does)
//!
//! * Each side's Configure-Request lists every strength it allows, with H set unless it
//!   prefers stateful mode ([`MppePolicy::prefer_stateful`]).
//! * The responder Naks with the single strongest strength both allow, and H per its policy:
//!   H set unless stateful is allowed and either the peer asked for stateful or we prefer
//!   it (the latter once per negotiation: a peer that asks for stateless again gets it).
//!   A request with exactly that is Acked. Bits the responder does not do (C, that is MPPC
//!   compression, D, undefined bits) are dropped in the Nak; a request with no strength at
//!   all (MPPC alone) is Nak'd with our strongest strength. A request whose strengths are
//!   all refused is Rejected, as pppd does.
//! * The requester takes a Nak's strength if it allows it and its mode if allowed
//!   (stateful only with [`MppePolicy::allow_stateful`], as pppd's `mppe-stateful`). A Nak
//!   with no strength it allows fails the negotiation (pppd: "MPPE required but peer
//!   negotiation failed"); a Nak towards stateful it does not allow is declined by asking
//!   for stateless again (where pppd closes the link).
//! * Every other CCP option (Deflate, BSD-Compress, Predictor, Stac, MPPC elsewhere...) is
//!   Rejected: MPPE is not combined with compression.
//!
//! MPPE is symmetric in practice: each direction is negotiated separately (our request
//! sets how we receive, the peer's how we send), but both sides ask for the same thing and
//! Windows and pppd end up with one strength and one mode. [`CcpResult`] reports both
//! directions; [`CcpResult::symmetric`] gives the common setting.
//!
//! # When MPPE is required
//!
//! With [`MppeRequirement::Required`] (pppd `require-mppe`, Poptop's default), the link
//! must not come up in clear (RFC 3078 §2: "the link SHOULD be terminated"). The negotiator
//! emits [`CcpEvent::Failed`] and closes the automaton when the peer rejects the MPPE
//! option, Naks it with nothing we accept, or the layer comes up without MPPE in both
//! directions. A Protocol-Reject of CCP reaches the automaton, not the negotiator: the link
//! asks [`CcpNegotiator::failure_cause`] what it means ([`CcpFailure::MppeRefused`]).
//!
//! # Reset-Request and Reset-Ack (RFC 1962 §2.1, RFC 3078 §8)
//!
//! In stateful mode a decryptor that lost packets asks the peer's encryptor to flush:
//! * Received Reset-Request (while Opened): a Reset-Ack with the same Identifier goes out
//!   and [`CcpEvent::ResetRequested`] tells the datapath to call
//!   [`MppeEncryptor::reset_request`](crate::crypto::mppe::MppeEncryptor::reset_request).
//! * [`Fsm::send_reset_request`] (on `Fsm<CcpNegotiator>`) queues our Reset-Request when
//!   our decryptor asks (at most one outstanding per [`RESET_ACK_TIMEOUT`]); the matching
//!   Reset-Ack is reported as [`CcpEvent::ResetAcked`].

use core::fmt;
use std::time::{Duration, Instant};

use super::fsm::{
    CodeVerdict, Context, Failure, Fsm, Negotiator, ReplyVerdict, RequestReply, State,
};
use crate::crypto::mppe::MppeMode;
use crate::crypto::mppe_keys::MppeStrength;
use crate::wire::ccp::{CcpOption, MppeBits};
use crate::wire::cp::{Code, ConfigOption, OptionIter, OptionWriter};

/// The MPPE option's type (RFC 3078 §2), as the automaton's [`Failure`] names it.
const MPPE_TYPE: u8 = 18;

/// The strength bits, strongest first.
const STRENGTHS: [(MppeStrength, MppeBits); 3] = [
    (MppeStrength::Bits128, MppeBits::S),
    (MppeStrength::Bits56, MppeBits::M),
    (MppeStrength::Bits40, MppeBits::L),
];

/// The Supported Bit of a strength.
pub fn strength_bit(strength: MppeStrength) -> MppeBits {
    match strength {
        MppeStrength::Bits40 => MppeBits::L,
        MppeStrength::Bits56 => MppeBits::M,
        MppeStrength::Bits128 => MppeBits::S,
    }
}

/// The strongest strength among `bits`.
pub fn strongest(bits: MppeBits) -> Option<MppeStrength> {
    STRENGTHS
        .into_iter()
        .find(|(_, bit)| bits.contains(*bit))
        .map(|(strength, _)| strength)
}

/// Whether MPPE must, may or must not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MppeRequirement {
    /// Ask for MPPE and terminate the link without it (pppd `require-mppe`).
    Required,
    /// Ask for MPPE but carry on in clear if the peer refuses it.
    Optional,
    /// Never MPPE: our request is empty and the peer's MPPE option is Rejected (pppd
    /// `nomppe`).
    Denied,
}

/// What we accept of MPPE, for both roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MppePolicy {
    /// Required, optional or denied (pppd `require-mppe`, `nomppe`).
    pub requirement: MppeRequirement,
    /// 40-bit keys allowed (pppd `require-mppe-40`; `nomppe-40` clears it).
    pub allow_40: bool,
    /// 56-bit keys allowed. pppd cannot do 56 bits; Windows can. Off by default.
    pub allow_56: bool,
    /// 128-bit keys allowed (pppd `require-mppe-128`; `nomppe-128` clears it).
    pub allow_128: bool,
    /// Stateful mode allowed when the peer asks for it or Naks to it (pppd
    /// `mppe-stateful`). Stateless is always allowed.
    pub allow_stateful: bool,
    /// Ask for stateful mode: our request has H clear, and a peer asking for stateless is
    /// Nak'd once with H clear (xpptp `mppe-prefer-stateful`). Windows then falls back to
    /// stateful, pppd with `mppe-stateful` too; pppd without it closes the link ("Refusing
    /// MPPE stateful mode offered by peer"), so only use this where the clients are known.
    /// Our own client role declines and stays stateless. Needs `allow_stateful`.
    pub prefer_stateful: bool,
    /// Which stateful scheme to run when stateful is agreed (the bits cannot say):
    /// [`MppeMode::Stateful`] (RFC 3078, Windows) or [`MppeMode::StatefulLinux`] (towards
    /// a Linux pppd peer).
    pub stateful_mode: MppeMode,
}

impl Default for MppePolicy {
    /// Poptop's shipped `options.pptpd`: `require-mppe-128`, stateless only.
    fn default() -> MppePolicy {
        MppePolicy {
            requirement: MppeRequirement::Required,
            allow_40: false,
            allow_56: false,
            allow_128: true,
            allow_stateful: false,
            prefer_stateful: false,
            stateful_mode: MppeMode::Stateful,
        }
    }
}

impl MppePolicy {
    /// The strength bits allowed.
    pub fn strength_bits(&self) -> MppeBits {
        MppeBits::empty()
            .with(MppeBits::L, self.allow_40)
            .with(MppeBits::M, self.allow_56)
            .with(MppeBits::S, self.allow_128)
    }

    /// Whether we want MPPE at all (not denied, some strength allowed).
    pub fn wants_mppe(&self) -> bool {
        self.requirement != MppeRequirement::Denied && self.strength_bits() != MppeBits::empty()
    }

    fn wants_stateful(&self) -> bool {
        self.allow_stateful && self.prefer_stateful
    }

    /// The bits of our first Configure-Request, `None` if we do not ask for MPPE.
    pub fn request_bits(&self) -> Option<MppeBits> {
        self.wants_mppe().then(|| {
            self.strength_bits()
                .with(MppeBits::H, !self.wants_stateful())
        })
    }

    fn mode(&self, bits: MppeBits) -> MppeMode {
        if bits.stateless() {
            MppeMode::Stateless
        } else {
            self.stateful_mode
        }
    }
}

/// One direction's MPPE setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MppeDirection {
    /// Key strength.
    pub strength: MppeStrength,
    /// Stateless or stateful (which stateful scheme: [`MppePolicy::stateful_mode`]).
    pub mode: MppeMode,
}

/// What CCP agreed, valid after [`Event::Up`](super::fsm::Event::Up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CcpResult {
    /// How we encrypt what we send: the peer's request, which we Acked. `None`: in clear.
    pub transmit: Option<MppeDirection>,
    /// How the peer encrypts what we receive: our request, which the peer Acked.
    pub receive: Option<MppeDirection>,
}

impl CcpResult {
    /// The one setting of both directions, if they agree (what Windows and pppd do).
    pub fn symmetric(&self) -> Option<MppeDirection> {
        match (self.transmit, self.receive) {
            (Some(tx), Some(rx)) if tx == rx => Some(tx),
            _ => None,
        }
    }
}

/// Why MPPE could not be agreed (pppd's messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CcpFailure {
    /// The peer rejected the MPPE option or CCP altogether, or did not ask for MPPE.
    MppeRefused,
    /// The peer offers or Naks with only what our policy refuses (strength or mode).
    MppeNotAgreed,
}

impl fmt::Display for CcpFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CcpFailure::MppeRefused => "MPPE required but refused by the peer",
            CcpFailure::MppeNotAgreed => "MPPE required but peer negotiation failed",
        })
    }
}

/// What only CCP knows, reported as [`Event::Negotiator`](super::fsm::Event::Negotiator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CcpEvent {
    /// MPPE is required and cannot be had: the link must terminate with this cause. The
    /// automaton is closed too ([`Failure::RequiredOptionRejected`] or
    /// [`Failure::NotConverging`] of option 18).
    Failed(CcpFailure),
    /// The peer sent a Reset-Request (answered already): make our encryptor send its next
    /// packet flushed ([`MppeEncryptor::reset_request`](crate::crypto::mppe::MppeEncryptor::reset_request)).
    ResetRequested,
    /// The peer acknowledged our Reset-Request.
    ResetAcked,
}

/// How long a Reset-Request stays outstanding: another one is not sent before (pppd's
/// `RACKTIMEOUT`, 1 s).
pub const RESET_ACK_TIMEOUT: Duration = Duration::from_secs(1);

/// Our outstanding Reset-Request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingReset {
    id: u8,
    sent: Instant,
}

/// The CCP [`Negotiator`] for MPPE; see the [module documentation](self).
#[derive(Debug)]
pub struct CcpNegotiator {
    policy: MppePolicy,
    /// The MPPE bits our next request carries; `None`: not asking.
    want: Option<MppeBits>,
    /// Our bits, once Acked.
    acked: Option<MppeBits>,
    /// The MPPE bits of the peer's latest request, if we were ready to Ack them.
    peer: Option<MppeBits>,
    /// This negotiation already Nak'd a stateless request towards stateful.
    suggested_stateful: bool,
    /// This negotiation already asked (Nak) a peer that did not offer MPPE to add it.
    asked_missing: bool,
    result: Option<CcpResult>,
    next_reset_id: u8,
    pending_reset: Option<PendingReset>,
}

impl CcpNegotiator {
    /// A negotiator with `policy` (the same for server and client).
    pub fn new(policy: MppePolicy) -> CcpNegotiator {
        CcpNegotiator {
            policy,
            want: policy.request_bits(),
            acked: None,
            peer: None,
            suggested_stateful: false,
            asked_missing: false,
            result: None,
            next_reset_id: 0,
            pending_reset: None,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &MppePolicy {
        &self.policy
    }

    /// What was negotiated; `Some` from This-Layer-Up until This-Layer-Down.
    pub fn negotiated(&self) -> Option<&CcpResult> {
        self.result.as_ref()
    }

    /// What an automaton failure means for MPPE: with MPPE required, a Protocol-Reject of
    /// CCP (or Max-Configure: CCP never answered) is [`CcpFailure::MppeRefused`]. `None`
    /// when MPPE is not required or the failure is not about MPPE.
    pub fn failure_cause(&self, failure: &Failure) -> Option<CcpFailure> {
        if self.policy.requirement != MppeRequirement::Required {
            return None;
        }
        match failure {
            Failure::ProtocolRejected
            | Failure::MaxConfigure
            | Failure::RequiredOptionRejected(MPPE_TYPE) => Some(CcpFailure::MppeRefused),
            Failure::NotConverging(MPPE_TYPE) => Some(CcpFailure::MppeNotAgreed),
            _ => None,
        }
    }

    /// Reserves the Identifier of a new Reset-Request (RFC 1962 §2.1) for our decryptor,
    /// which lost sync; [`Fsm::send_reset_request`] sends it. `None` while an earlier one is
    /// outstanding (less than [`RESET_ACK_TIMEOUT`] old), or if CCP is not up.
    pub fn prepare_reset_request(&mut self, now: Instant) -> Option<u8> {
        self.result?;
        if let Some(pending) = self.pending_reset
            && now.saturating_duration_since(pending.sent) < RESET_ACK_TIMEOUT
        {
            return None;
        }
        let id = self.next_reset_id;
        self.next_reset_id = id.wrapping_add(1);
        self.pending_reset = Some(PendingReset { id, sent: now });
        Some(id)
    }

    /// Whether a Reset-Request of ours awaits its Ack.
    pub fn reset_pending(&self) -> bool {
        self.pending_reset.is_some()
    }

    fn fail(&mut self, cx: &mut Context<'_, CcpEvent>, cause: CcpFailure) {
        self.want = None;
        if self.policy.requirement == MppeRequirement::Required {
            cx.emit(CcpEvent::Failed(cause));
            cx.close(match cause {
                CcpFailure::MppeRefused => Failure::RequiredOptionRejected(MPPE_TYPE),
                CcpFailure::MppeNotAgreed => Failure::NotConverging(MPPE_TYPE),
            });
        }
    }

    /// Our answer to the peer's MPPE bits: `None` to Reject, else the bits to Ack (if equal
    /// to `offered`) or Nak with.
    fn answer(&mut self, offered: MppeBits) -> Option<MppeBits> {
        let allowed = self.policy.strength_bits();
        let offered_strengths = offered & (MppeBits::S | MppeBits::M | MppeBits::L);
        let strength = if offered_strengths == MppeBits::empty() {
            // MPPC alone, or nothing: suggest our strongest.
            strongest(allowed)?
        } else {
            strongest(offered_strengths & allowed)?
        };
        let stateful = if !self.policy.allow_stateful {
            false
        } else if !offered.stateless() {
            true
        } else if self.policy.prefer_stateful && !self.suggested_stateful {
            self.suggested_stateful = true;
            true
        } else {
            false
        };
        Some(strength_bit(strength).with(MppeBits::H, !stateful))
    }

    fn direction(&self, bits: MppeBits) -> Option<MppeDirection> {
        Some(MppeDirection {
            strength: strongest(bits)?,
            mode: self.policy.mode(bits),
        })
    }

    /// The MPPE option of a Nak or Reject list; `Err` if the list is malformed.
    fn mppe_in(options: &[u8]) -> Result<Option<MppeBits>, ()> {
        let mut found = None;
        for item in CcpOption::iter(options) {
            match item {
                Ok(CcpOption::Mppe(bits)) => found = Some(bits),
                Ok(_) => {}
                Err(_) => return Err(()),
            }
        }
        Ok(found)
    }
}

impl Fsm<CcpNegotiator> {
    /// Our decryptor lost sync (stateful MPPE, [`Verdict::ResetRequest`]): queues a CCP
    /// Reset-Request for [`poll_transmit`](Fsm::poll_transmit). Returns whether one was
    /// queued: not while an earlier one is outstanding (see
    /// [`CcpNegotiator::prepare_reset_request`]) or when CCP is not Opened. The peer's
    /// Reset-Ack comes back as [`CcpEvent::ResetAcked`].
    ///
    /// [`Verdict::ResetRequest`]: crate::crypto::mppe::Verdict::ResetRequest
    pub fn send_reset_request(&mut self, now: Instant) -> bool {
        if self.state() != State::Opened {
            return false;
        }
        match self.negotiator_mut().prepare_reset_request(now) {
            Some(id) => {
                self.send(Code::ResetRequest, id, &[]);
                true
            }
            None => false,
        }
    }
}

impl Negotiator for CcpNegotiator {
    type Event = CcpEvent;

    fn name(&self) -> &'static str {
        "CCP"
    }

    fn reset(&mut self, _cx: &mut Context<'_, CcpEvent>) {
        self.want = self.policy.request_bits();
        self.acked = None;
        self.peer = None;
        self.suggested_stateful = false;
        self.asked_missing = false;
    }

    fn write_request(&mut self, _cx: &mut Context<'_, CcpEvent>, out: &mut OptionWriter<'_>) {
        if let Some(bits) = self.want {
            // Six octets always fit a Configure-Request.
            let _ = out.push(&CcpOption::Mppe(bits));
        }
    }

    fn handle_ack(&mut self, _cx: &mut Context<'_, CcpEvent>, _options: &[u8]) {
        self.acked = self.want;
    }

    fn handle_nak(&mut self, cx: &mut Context<'_, CcpEvent>, options: &[u8]) -> ReplyVerdict {
        let Ok(nak) = Self::mppe_in(options) else {
            return ReplyVerdict::Discard;
        };
        // Options we did not ask for are suggestions; only MPPE matters.
        let (Some(nak), Some(_)) = (nak, self.want) else {
            return ReplyVerdict::Accept;
        };
        if cx.treat_nak_as_reject() {
            self.fail(cx, CcpFailure::MppeNotAgreed);
            return ReplyVerdict::Accept;
        }
        let Some(strength) = strongest(nak & self.policy.strength_bits()) else {
            self.fail(cx, CcpFailure::MppeNotAgreed);
            return ReplyVerdict::Accept;
        };
        // A Nak towards stateful that we do not allow is a suggestion we decline: we keep
        // asking for stateless (pppd closes the link instead; keeping on converges with a
        // peer that suggests once, and Max-Failure ends it with one that insists).
        let stateless = nak.stateless() || !self.policy.allow_stateful;
        self.want = Some(strength_bit(strength).with(MppeBits::H, stateless));
        ReplyVerdict::Accept
    }

    fn handle_reject(&mut self, cx: &mut Context<'_, CcpEvent>, options: &[u8]) -> ReplyVerdict {
        match (Self::mppe_in(options), self.want) {
            (Ok(Some(rejected)), Some(want)) if rejected == want => {
                self.fail(cx, CcpFailure::MppeRefused);
                ReplyVerdict::Accept
            }
            // An empty Reject of an empty request: nothing to take back.
            (Ok(None), None) if options.is_empty() => ReplyVerdict::Accept,
            _ => ReplyVerdict::Discard,
        }
    }

    fn handle_request(
        &mut self,
        cx: &mut Context<'_, CcpEvent>,
        options: &[u8],
        reply: &mut RequestReply,
    ) {
        self.peer = None;
        let mut seen_mppe = false;
        let mut iter = OptionIter::new(options);
        while let Some(item) = iter.next() {
            let Ok(raw) = item else {
                reply.reject_rest(iter.rest());
                break;
            };
            let option = CcpOption::parse(raw);
            let Ok(CcpOption::Mppe(offered)) = option else {
                // Malformed MPPE, or any compression method: rejected.
                reply.reject(raw);
                continue;
            };
            if seen_mppe || !self.policy.wants_mppe() {
                reply.reject(raw);
                continue;
            }
            seen_mppe = true;
            match self.answer(offered) {
                Some(bits) if bits == offered => self.peer = Some(offered),
                Some(bits) => reply.nak(raw, &CcpOption::Mppe(bits)),
                None => {
                    reply.reject(raw);
                    self.fail(cx, CcpFailure::MppeNotAgreed);
                }
            }
        }
        // A peer that does not offer MPPE is asked once to add it (RFC 1661 §5.3 lets a
        // Nak name options the request lacks); if it still does not, Up fails below.
        if !seen_mppe
            && !self.asked_missing
            && self.policy.requirement == MppeRequirement::Required
            && !reply.has_rejects()
            && let Some(bits) = self.policy.request_bits()
            && let Some(strength) = strongest(bits)
        {
            self.asked_missing = true;
            let bits = strength_bit(strength).with(MppeBits::H, bits.stateless());
            reply.nak_missing(&CcpOption::Mppe(bits));
        }
    }

    fn this_layer_up(&mut self, cx: &mut Context<'_, CcpEvent>) {
        let result = CcpResult {
            transmit: self.peer.and_then(|bits| self.direction(bits)),
            receive: self.acked.and_then(|bits| self.direction(bits)),
        };
        self.result = Some(result);
        self.pending_reset = None;
        let encrypted = result.transmit.is_some() && result.receive.is_some();
        if !encrypted && self.policy.requirement == MppeRequirement::Required {
            self.fail(cx, CcpFailure::MppeRefused);
        }
    }

    fn this_layer_down(&mut self, _cx: &mut Context<'_, CcpEvent>) {
        self.result = None;
        self.pending_reset = None;
    }

    fn handle_code(
        &mut self,
        cx: &mut Context<'_, CcpEvent>,
        code: Code,
        id: u8,
        _data: &[u8],
    ) -> CodeVerdict {
        match code {
            Code::ResetRequest => {
                // RFC 1962 §2.1: only meaningful while Opened; pppd ignores it otherwise.
                if cx.state() == State::Opened {
                    cx.send(Code::ResetAck, id, &[]);
                    cx.emit(CcpEvent::ResetRequested);
                }
                CodeVerdict::Handled
            }
            Code::ResetAck => {
                if self.pending_reset.is_some_and(|p| p.id == id) {
                    self.pending_reset = None;
                    cx.emit(CcpEvent::ResetAcked);
                }
                CodeVerdict::Handled
            }
            _ => CodeVerdict::Unknown,
        }
    }
}

#[cfg(test)]
mod test {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ppp::fsm::{Event, FsmConfig};
    use crate::ppp::ipcp::testing::{From, Pair};
    use crate::wire::cp::ConfigPacketWriter;

    // The reference capture's CCP packets (both sides `require-mppe-128`).
    use crate::testing::reference::ccp::{CONFACK_MPPE, CONFREQ_MPPE};

    const STATELESS_128: MppeDirection = MppeDirection {
        strength: MppeStrength::Bits128,
        mode: MppeMode::Stateless,
    };

    fn policy() -> MppePolicy {
        MppePolicy::default()
    }

    fn answer(fsm: &mut Fsm<CcpNegotiator>, now: Instant, packet: &[u8]) -> Vec<Vec<u8>> {
        fsm.handle_packet(now, packet);
        std::iter::from_fn(|| fsm.poll_transmit()).collect()
    }

    fn events(fsm: &mut Fsm<CcpNegotiator>) -> Vec<Event<CcpEvent>> {
        std::iter::from_fn(|| fsm.poll_event()).collect()
    }

    fn packet(code: Code, id: u8, options: &[CcpOption<'_>]) -> Vec<u8> {
        let mut buf = [0u8; 128];
        let mut w = ConfigPacketWriter::new(&mut buf, code, id).unwrap();
        for option in options {
            w.push(option).unwrap();
        }
        let n = w.finish();
        buf[..n].to_vec()
    }

    fn bits(list: &[MppeBits]) -> MppeBits {
        list.iter().fold(MppeBits::empty(), |acc, b| acc | *b)
    }

    /// A server automaton that has sent its Configure-Request.
    fn server_sends_configure_request(policy: MppePolicy) -> (Fsm<CcpNegotiator>, Instant) {
        let now = Instant::now();
        let mut fsm = Fsm::new(CcpNegotiator::new(policy), FsmConfig::default());
        fsm.open(now);
        fsm.up(now);
        (fsm, now)
    }

    fn negotiate(server: MppePolicy, client: MppePolicy) -> Pair<CcpNegotiator, CcpNegotiator> {
        let mut pair = Pair::new(CcpNegotiator::new(server), CcpNegotiator::new(client));
        pair.start();
        pair.drive();
        pair
    }

    fn symmetric(pair: &Pair<CcpNegotiator, CcpNegotiator>) -> Option<MppeDirection> {
        assert!(pair.both_opened(), "not opened: {:?}", pair.wire);
        let server = pair.server.negotiator().negotiated().unwrap();
        let client = pair.client.negotiator().negotiated().unwrap();
        assert_eq!(server.transmit, client.receive);
        assert_eq!(server.receive, client.transmit);
        server.symmetric()
    }

    fn failed(events: &[Event<CcpEvent>]) -> Option<CcpFailure> {
        events.iter().find_map(|e| match e {
            Event::Negotiator(CcpEvent::Failed(cause)) => Some(*cause),
            _ => None,
        })
    }

    #[test]
    fn server_reproduces_reference_session() {
        let (mut server, now) = server_sends_configure_request(policy());
        assert_eq!(server.poll_transmit().as_deref(), Some(&CONFREQ_MPPE[..]));
        assert_eq!(answer(&mut server, now, &CONFREQ_MPPE), [CONFACK_MPPE]);
        assert!(answer(&mut server, now, &CONFACK_MPPE).is_empty());
        assert_eq!(server.state(), State::Opened);
        let result = server.negotiator().negotiated().unwrap();
        assert_eq!(result.transmit, Some(STATELESS_128));
        assert_eq!(result.symmetric(), Some(STATELESS_128));
        assert!(events(&mut server).contains(&Event::Up));
    }

    #[test]
    fn client_reproduces_reference_session() {
        let mut pair = negotiate(policy(), policy());
        assert_eq!(symmetric(&pair), Some(STATELESS_128));
        assert_eq!(
            pair.sent_by(From::Client),
            [&CONFREQ_MPPE[..], &CONFACK_MPPE[..]]
        );
        assert_eq!(
            pair.sent_by(From::Server),
            [&CONFREQ_MPPE[..], &CONFACK_MPPE[..]]
        );
        assert!(failed(&std::mem::take(&mut pair.server_events)).is_none());
    }

    #[test]
    fn strongest_common_strength() {
        let all = MppePolicy {
            allow_40: true,
            allow_56: true,
            allow_128: true,
            ..policy()
        };
        let only = |a40, a56, a128| MppePolicy {
            allow_40: a40,
            allow_56: a56,
            allow_128: a128,
            ..policy()
        };
        let cases = [
            (all, all, MppeStrength::Bits128),
            (all, only(true, false, false), MppeStrength::Bits40),
            (only(true, false, false), all, MppeStrength::Bits40),
            (all, only(false, true, false), MppeStrength::Bits56),
            (
                only(true, false, true),
                only(true, true, false),
                MppeStrength::Bits40,
            ),
            (only(true, false, true), all, MppeStrength::Bits128),
        ];
        for (server, client, strength) in cases {
            let pair = negotiate(server, client);
            assert_eq!(
                symmetric(&pair),
                Some(MppeDirection {
                    strength,
                    mode: MppeMode::Stateless
                }),
                "{server:?} x {client:?}"
            );
        }
    }

    #[test]
    fn no_common_strength_fails_both_sides() {
        let pair = negotiate(
            policy(),
            MppePolicy {
                allow_40: true,
                allow_128: false,
                ..policy()
            },
        );
        assert!(!pair.both_opened());
        assert_eq!(failed(&pair.server_events), Some(CcpFailure::MppeNotAgreed));
        assert_eq!(failed(&pair.client_events), Some(CcpFailure::MppeNotAgreed));
        assert!(
            pair.server_events
                .contains(&Event::Failed(Failure::NotConverging(18)))
        );
    }

    #[test]
    fn stateful_negotiation() {
        let stateful_ok = MppePolicy {
            allow_stateful: true,
            ..policy()
        };
        let prefers = MppePolicy {
            allow_stateful: true,
            prefer_stateful: true,
            ..policy()
        };
        let linux = MppePolicy {
            stateful_mode: MppeMode::StatefulLinux,
            ..prefers
        };
        let stateful = |mode| {
            Some(MppeDirection {
                strength: MppeStrength::Bits128,
                mode,
            })
        };
        // Allowing stateful is not asking for it.
        assert_eq!(
            symmetric(&negotiate(stateful_ok, stateful_ok)),
            Some(STATELESS_128)
        );
        // xpptp's mppe-prefer-stateful against a client that allows it (Windows; pppd with
        // mppe-stateful): the client's stateless request is Nak'd to stateful.
        let pair = negotiate(prefers, stateful_ok);
        assert_eq!(symmetric(&pair), stateful(MppeMode::Stateful));
        let nak = packet(Code::ConfigureNak, 1, &[CcpOption::Mppe(MppeBits::S)]);
        assert!(
            pair.sent_by(From::Server).contains(&&nak[..]),
            "{:02x?}",
            pair.wire
        );
        // A client that prefers stateful gets it from a server that allows it.
        assert_eq!(
            symmetric(&negotiate(stateful_ok, prefers)),
            stateful(MppeMode::Stateful)
        );
        // The stateful scheme is the policy's, not the wire's.
        let linux_ok = MppePolicy {
            stateful_mode: MppeMode::StatefulLinux,
            ..stateful_ok
        };
        assert_eq!(
            symmetric(&negotiate(linux, linux_ok)),
            stateful(MppeMode::StatefulLinux)
        );
        // A server that does not allow stateful keeps a stateful-preferring client
        // stateless.
        assert_eq!(
            symmetric(&negotiate(policy(), prefers)),
            Some(STATELESS_128)
        );
    }

    #[test]
    fn prefer_stateful_falls_back_to_stateless() {
        // Our client without allow_stateful declines the Nak to stateful and asks for
        // stateless again, which the server then Acks (it suggests stateful once). pppd
        // without mppe-stateful would close the link instead.
        let prefers = MppePolicy {
            allow_stateful: true,
            prefer_stateful: true,
            ..policy()
        };
        let pair = negotiate(prefers, policy());
        assert_eq!(symmetric(&pair), Some(STATELESS_128));
        let stateful_nak = packet(Code::ConfigureNak, 1, &[CcpOption::Mppe(MppeBits::S)]);
        assert!(pair.sent_by(From::Server).contains(&&stateful_nak[..]));
    }

    #[test]
    fn stateful_suggested_once_per_negotiation() {
        let prefers = MppePolicy {
            allow_stateful: true,
            prefer_stateful: true,
            ..policy()
        };
        let (mut server, now) = server_sends_configure_request(prefers);
        let _ = server.poll_transmit();
        let stateless = packet(
            Code::ConfigureRequest,
            1,
            &[CcpOption::Mppe(MppeBits::H | MppeBits::S)],
        );
        let reply = answer(&mut server, now, &stateless);
        assert_eq!(
            reply,
            [packet(
                Code::ConfigureNak,
                1,
                &[CcpOption::Mppe(MppeBits::S)]
            )]
        );
        let mut again = stateless.clone();
        again[1] = 2;
        let mut ack = again.clone();
        ack[0] = Code::ConfigureAck.into();
        assert_eq!(answer(&mut server, now, &again), [ack]);
    }

    #[test]
    fn mppc_is_naked_away() {
        let (mut server, now) = server_sends_configure_request(policy());
        let _ = server.poll_transmit();
        let wanted = packet(
            Code::ConfigureNak,
            1,
            &[CcpOption::Mppe(MppeBits::H | MppeBits::S)],
        );
        // MPPC alone (Windows with compression on, encryption off).
        let mppc = packet(Code::ConfigureRequest, 1, &[CcpOption::Mppe(MppeBits::C)]);
        assert_eq!(
            answer(&mut server, now, &mppc),
            std::slice::from_ref(&wanted)
        );
        // MPPE with MPPC, 40 and 128, the obsolete D and an undefined bit.
        let everything = bits(&[
            MppeBits::H,
            MppeBits::S,
            MppeBits::L,
            MppeBits::D,
            MppeBits::C,
            MppeBits::from_bits(0x0000_0200),
        ]);
        let mut wanted = wanted;
        wanted[1] = 2;
        let req = packet(Code::ConfigureRequest, 2, &[CcpOption::Mppe(everything)]);
        assert_eq!(answer(&mut server, now, &req), [wanted]);
    }

    #[test]
    fn other_compression_rejected() {
        let (mut server, now) = server_sends_configure_request(policy());
        let _ = server.poll_transmit();
        let deflate = CcpOption::Deflate(&[0x78, 0x00]);
        let deflate_draft = CcpOption::DeflateDraft(&[0x78, 0x00]);
        let bsd = CcpOption::BsdCompress(&[0x2f]);
        let stac = CcpOption::Stac(&[0x00, 0x01, 0x03]);
        let predictor = CcpOption::Predictor1(&[]);
        let mppe = CcpOption::Mppe(MppeBits::H | MppeBits::S);
        let req = packet(
            Code::ConfigureRequest,
            1,
            &[deflate, deflate_draft, mppe, bsd, stac, predictor],
        );
        let reply = answer(&mut server, now, &req);
        assert_eq!(
            reply,
            [packet(
                Code::ConfigureReject,
                1,
                &[deflate, deflate_draft, bsd, stac, predictor]
            )]
        );
        // A second MPPE option and a malformed one are rejected too.
        let req = [
            0x01, 0x02, 0x00, 0x13, 0x12, 0x06, 0x01, 0x00, 0x00, 0x40, 0x12, 0x06, 0x01, 0x00,
            0x00, 0x40, 0x12, 0x03, 0x00,
        ];
        let reply = answer(&mut server, now, &req);
        assert_eq!(
            reply,
            [vec![
                0x04, 0x02, 0x00, 0x0d, 0x12, 0x06, 0x01, 0x00, 0x00, 0x40, 0x12, 0x03, 0x00
            ]]
        );
    }

    #[test]
    fn required_vs_denied() {
        let denied = MppePolicy {
            requirement: MppeRequirement::Denied,
            ..policy()
        };
        let optional = MppePolicy {
            requirement: MppeRequirement::Optional,
            ..policy()
        };
        // Server requires, client denies: the client rejects our MPPE option.
        let pair = negotiate(policy(), denied);
        assert_eq!(failed(&pair.server_events), Some(CcpFailure::MppeRefused));
        assert!(
            pair.server_events
                .contains(&Event::Failed(Failure::RequiredOptionRejected(18)))
        );
        assert!(!pair.both_opened());
        assert_eq!(
            CcpFailure::MppeRefused.to_string(),
            "MPPE required but refused by the peer"
        );
        // The client required MPPE, the server denies it.
        let pair = negotiate(denied, policy());
        assert_eq!(failed(&pair.client_events), Some(CcpFailure::MppeRefused));
        // Optional against denied: CCP opens in clear, nobody fails.
        let pair = negotiate(optional, denied);
        assert!(pair.both_opened());
        assert_eq!(
            pair.server.negotiator().negotiated(),
            Some(&CcpResult {
                transmit: None,
                receive: None
            })
        );
        assert_eq!(failed(&pair.server_events), None);
        assert_eq!(failed(&pair.client_events), None);
        // Optional against required: MPPE.
        assert_eq!(
            symmetric(&negotiate(optional, policy())),
            Some(STATELESS_128)
        );
    }

    #[test]
    fn required_peer_without_mppe_is_asked_then_fails() {
        let (mut server, now) = server_sends_configure_request(policy());
        let _ = server.poll_transmit();
        // An empty request: Nak'd once with the MPPE option added.
        let reply = answer(&mut server, now, &[0x01, 0x01, 0x00, 0x04]);
        let mut nak = CONFREQ_MPPE;
        nak[0] = Code::ConfigureNak.into();
        assert_eq!(reply, [nak]);
        // Empty again: Acked; with our side Acked the layer comes up without transmit
        // encryption, which fails.
        assert_eq!(
            answer(&mut server, now, &[0x01, 0x02, 0x00, 0x04]),
            [vec![0x02, 0x02, 0x00, 0x04]]
        );
        let _ = answer(&mut server, now, &CONFACK_MPPE);
        assert_eq!(failed(&events(&mut server)), Some(CcpFailure::MppeRefused));
        assert_ne!(server.state(), State::Opened);
    }

    #[test]
    fn protocol_reject_maps_to_refused() {
        let (mut server, now) = server_sends_configure_request(policy());
        server.protocol_rejected(now);
        let failure = events(&mut server)
            .into_iter()
            .find_map(|e| match e {
                Event::Failed(f) => Some(f),
                _ => None,
            })
            .unwrap();
        assert_eq!(
            server.negotiator().failure_cause(&failure),
            Some(CcpFailure::MppeRefused)
        );
        let optional = CcpNegotiator::new(MppePolicy {
            requirement: MppeRequirement::Optional,
            ..policy()
        });
        assert_eq!(optional.failure_cause(&failure), None);
    }

    #[test]
    fn reset_request_and_ack() {
        let mut pair = negotiate(policy(), policy());
        assert!(pair.both_opened());
        let now = pair.now;
        assert!(pair.client.send_reset_request(now));
        assert!(pair.client.negotiator().reset_pending());
        // Only one outstanding within RESET_ACK_TIMEOUT.
        assert!(
            !pair
                .client
                .send_reset_request(now + Duration::from_millis(500))
        );
        pair.drive();
        let sent = pair.sent_by(From::Client);
        let request = *sent.last().unwrap();
        assert_eq!(request, [14, 0, 0, 4]);
        assert_eq!(*pair.sent_by(From::Server).last().unwrap(), [15, 0, 0, 4]);
        assert!(
            pair.server_events
                .contains(&Event::Negotiator(CcpEvent::ResetRequested))
        );
        assert!(
            pair.client_events
                .contains(&Event::Negotiator(CcpEvent::ResetAcked))
        );
        assert!(!pair.client.negotiator().reset_pending());
        // The next one gets a new identifier; an Ack with a stale one is ignored.
        assert!(pair.client.send_reset_request(now));
        let next = pair.client.poll_transmit().unwrap();
        assert_eq!(next, [14, 1, 0, 4]);
        pair.client.handle_packet(now, &[15, 0, 0, 4]);
        assert!(pair.client.negotiator().reset_pending());
        // Unanswered: resent after the timeout.
        assert!(pair.client.send_reset_request(now + RESET_ACK_TIMEOUT));
        // The peer's Reset-Request with data is answered with its identifier.
        let reply = answer(&mut pair.server, now, &[14, 0x42, 0, 6, 1, 2]);
        assert_eq!(reply, [vec![15, 0x42, 0, 4]]);
    }

    #[test]
    fn reset_request_ignored_unless_opened() {
        let (mut server, now) = server_sends_configure_request(policy());
        let _ = server.poll_transmit();
        assert!(answer(&mut server, now, &[14, 1, 0, 4]).is_empty());
        assert!(!events(&mut server).contains(&Event::Negotiator(CcpEvent::ResetRequested)));
        assert!(!server.send_reset_request(now));
    }

    #[test]
    fn bad_replies_discarded() {
        let (mut server, now) = server_sends_configure_request(policy());
        let _ = server.poll_transmit();
        // A Reject of MPPE bits we did not send, and a malformed Nak.
        let reject = packet(Code::ConfigureReject, 1, &[CcpOption::Mppe(MppeBits::L)]);
        assert!(answer(&mut server, now, &reject).is_empty());
        assert!(answer(&mut server, now, &[0x03, 0x01, 0x00, 0x06, 0x12, 0x09]).is_empty());
        assert!(
            events(&mut server)
                .iter()
                .all(|e| !matches!(e, Event::Failed(_)))
        );
        assert_eq!(server.state(), State::ReqSent);
    }

    #[test]
    fn policy_bits() {
        assert_eq!(policy().request_bits(), Some(MppeBits::H | MppeBits::S));
        let all = MppePolicy {
            allow_40: true,
            allow_56: true,
            allow_stateful: true,
            prefer_stateful: true,
            ..policy()
        };
        assert_eq!(
            all.request_bits(),
            Some(bits(&[MppeBits::S, MppeBits::M, MppeBits::L]))
        );
        let none = MppePolicy {
            allow_128: false,
            ..policy()
        };
        assert_eq!(none.request_bits(), None);
        assert_eq!(
            strongest(MppeBits::L | MppeBits::M),
            Some(MppeStrength::Bits56)
        );
        assert_eq!(strongest(MppeBits::C), None);
        assert_eq!(strength_bit(MppeStrength::Bits40), MppeBits::L);
    }

    proptest::proptest! {
        #[test]
        fn server_never_panics_on_arbitrary_packets(
            packets in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..12),
        ) {
            let mut pair = negotiate(
                MppePolicy { allow_40: true, allow_stateful: true, prefer_stateful: true, ..policy() },
                policy(),
            );
            let now = pair.now;
            for mut packet in packets {
                // Mostly codes CCP knows (1 to 15), so the negotiator sees them.
                if let Some(code) = packet.first_mut() {
                    *code %= 16;
                }
                pair.server.handle_packet(now, &packet);
                while pair.server.poll_transmit().is_some() {}
                while pair.server.poll_event().is_some() {}
            }
        }
    }
}
