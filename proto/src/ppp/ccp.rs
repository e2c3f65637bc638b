//! The CCP negotiator for MPPE (RFC 1962, RFC 3078 §2, key strengths of RFC 3079), both
//! roles, with Reset-Request/-Ack.
//!
//! Over PPTP, CCP exists to agree on MPPE: one option (type 18) whose bits say the key
//! strength (L 40, M 56, S 128 bits) and the mode (H: stateless; clear: stateful).
//! [`CcpNegotiator`] plugs into the RFC 1661 automaton ([`Fsm`](super::fsm::Fsm)).
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
//!   (stateful only with [`MppePolicy::allow_stateful`], as pppd's `mppe-stateful`).
//!   A Nak it cannot accept fails the negotiation (pppd: "MPPE required but peer
//!   negotiation failed").
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
    /// stateful, pppd with `mppe-stateful` too; pppd without it closes the link, so only
    /// use this where the clients are known. Needs `allow_stateful`.
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
        let strength = strongest(nak & self.policy.strength_bits());
        let mode_ok = nak.stateless() || self.policy.allow_stateful;
        match strength {
            Some(strength) if mode_ok => {
                self.want = Some(strength_bit(strength).with(MppeBits::H, nak.stateless()));
            }
            _ => self.fail(cx, CcpFailure::MppeNotAgreed),
        }
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
