//! LCP, the Link Control Protocol (RFC 1661 §6, RFC 1570): the [`LcpNegotiator`] that the
//! [`Fsm`] runs, and [`Lcp`], which adds what LCP does beyond negotiating: Echo keepalives,
//! Echo-Reply, Protocol-Reject reception, and ignoring Discard, Identification and
//! Time-Remaining.
//!
//! Options over PPTP (the link is synchronous GRE, RFC 2637 §4.2):
//!
//! * MRU: we request ours only if it differs from 1500 (as pppd); the peer's is accepted if
//!   at least [`LcpConfig::min_peer_mru`], else Nak'd with that minimum.
//! * ACCM: meaningless on a synchronous link; the peer's is accepted whatever it is, ours is
//!   requested only if configured.
//! * Authentication-Protocol: the authenticator (server) requests the first method of
//!   [`LcpConfig::auth_require`]; the peer (client) accepts a method in
//!   [`LcpConfig::auth_accept`] and Naks any other with its first one. When its request is
//!   Nak'd the authenticator moves to the proposed method if its policy allows it, else to
//!   the next allowed method not yet refused, and gives up when none is left.
//! * Magic-Number: from a seed the caller passes (no random generator inside); loop-back is
//!   detected as RFC 1661 §6.4 describes and reported as [`Failure::LoopedBack`].
//! * PFC and ACFC: requested and accepted (each configurable).
//! * Rejected: Quality-Protocol, Callback (and so CBCP), MRRU, Short Sequence, Endpoint and
//!   Link Discriminator (Windows asks for the multilink ones), anything unknown or malformed.

use core::fmt;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::fsm::{
    CodeVerdict, Context, Event, Failure, Fsm, FsmConfig, Negotiator, ReplyVerdict, RequestReply,
    State,
};
use crate::wire::cp::{Code, ConfigOption, OptionIter, OptionWriter, RawOption};
use crate::wire::lcp::{AuthMethod, LcpOption, OptionType};
use crate::wire::ppp::Protocol;

/// The MRU when none is negotiated (RFC 1661 §6.1).
pub const DEFAULT_MRU: u16 = 1500;

/// LCP settings; `Default` is what Debian's pppd does with its stock options file
/// (`/etc/ppp/options`: `lcp-echo-interval 30`, `lcp-echo-failure 4`), as a client that
/// authenticates with any method (an authenticator sets [`auth_require`](Self::auth_require)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LcpConfig {
    /// The MRU we request (pppd `mru`): 1500, which is then not requested at all.
    pub mru: u16,
    /// The smallest MRU we accept from the peer; below it we Nak with it (pppd's MINMRU,
    /// 128).
    pub min_peer_mru: u16,
    /// The ACCM we request (pppd `asyncmap`); `None`: not requested (sync link). pppd sends
    /// `asyncmap 0x0`.
    pub accm: Option<u32>,
    /// Methods we require the peer to authenticate with, strongest first (pppd
    /// `require-mschap-v2`, `require-chap`...). Empty: no authentication (pppd `noauth`).
    pub auth_require: Vec<AuthMethod>,
    /// Methods we agree to authenticate ourselves with, preferred first (pppd `refuse-*`
    /// removes entries). Empty: we reject the peer's Authentication-Protocol.
    pub auth_accept: Vec<AuthMethod>,
    /// Whether to negotiate a Magic-Number (pppd `magic`; `nomagic` turns it off).
    pub magic: bool,
    /// Request and accept Protocol-Field-Compression (pppd `pcomp`, off with `nopcomp`).
    pub pfc: bool,
    /// Request and accept Address-and-Control-Field-Compression (pppd `accomp`).
    pub acfc: bool,
    /// Send an Echo-Request after this long without any frame from the peer (pppd
    /// `lcp-echo-interval`, 30 s); `None` disables keepalives.
    pub echo_interval: Option<Duration>,
    /// Report [`LcpEvent::EchoFailure`] after this many unanswered Echo-Requests (pppd
    /// `lcp-echo-failure`, 4); 0 never reports.
    pub echo_failures: u32,
    /// Nak rounds of our Magic-Number that find it looped back before giving up (pppd's
    /// `lcp_loopbackfail`, 10).
    pub max_loopback: u32,
    /// Restart timer and counters (pppd `lcp-restart`, `lcp-max-configure`,
    /// `lcp-max-terminate`, `lcp-max-failure`).
    pub fsm: FsmConfig,
}

impl Default for LcpConfig {
    fn default() -> LcpConfig {
        LcpConfig {
            mru: DEFAULT_MRU,
            min_peer_mru: 128,
            accm: None,
            auth_require: Vec::new(),
            auth_accept: vec![
                AuthMethod::MS_CHAP_V2,
                AuthMethod::MS_CHAP_V1,
                AuthMethod::CHAP_MD5,
                AuthMethod::Pap,
            ],
            magic: true,
            pfc: true,
            acfc: true,
            echo_interval: Some(Duration::from_secs(30)),
            echo_failures: 4,
            max_loopback: 10,
            fsm: FsmConfig::default(),
        }
    }
}

impl LcpConfig {
    /// An authenticator (the PPTP server) requiring `methods`, strongest first, and not
    /// authenticating itself.
    pub fn server(methods: &[AuthMethod]) -> LcpConfig {
        LcpConfig {
            auth_require: methods.to_vec(),
            auth_accept: Vec::new(),
            ..LcpConfig::default()
        }
    }

    /// A client that authenticates with `methods`, preferred first, and requires nothing.
    pub fn client(methods: &[AuthMethod]) -> LcpConfig {
        LcpConfig {
            auth_accept: methods.to_vec(),
            ..LcpConfig::default()
        }
    }
}

/// What LCP agreed on, both directions; read by the link after [`Event::Up`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LcpNegotiated {
    /// The largest frame we receive (our MRU as Acked, else 1500).
    pub our_mru: u16,
    /// The largest frame we may send (the peer's MRU, else 1500).
    pub peer_mru: u16,
    /// ACCM the peer asked for (meaningless on GRE, kept for logs).
    pub peer_accm: u32,
    /// The peer may compress the protocol field of frames to us (our PFC Acked).
    pub pfc_rx: bool,
    /// We may compress the protocol field of frames to the peer (its PFC Acked by us).
    pub pfc_tx: bool,
    /// The peer may omit address and control of frames to us.
    pub acfc_rx: bool,
    /// We may omit address and control in frames to the peer.
    pub acfc_tx: bool,
    /// How the peer must authenticate to us (we are the authenticator).
    pub peer_authenticates_with: Option<AuthMethod>,
    /// How we must authenticate to the peer.
    pub we_authenticate_with: Option<AuthMethod>,
    /// Our Magic-Number (0: none negotiated).
    pub our_magic: u32,
    /// The peer's Magic-Number (0: none).
    pub peer_magic: u32,
}

/// LCP's own events, as [`Event::Negotiator`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcpEvent {
    /// The peer Protocol-Rejected `protocol` (RFC 1661 §5.7): the link stops that
    /// protocol's automaton ([`Fsm::protocol_rejected`]).
    ProtocolRejected(Protocol),
    /// [`LcpConfig::echo_failures`] Echo-Requests went unanswered: the peer is gone and
    /// the link should terminate.
    EchoFailure,
}

/// The events [`Lcp::poll_event`] yields.
pub type LcpFsmEvent = Event<LcpEvent>;

/// splitmix64: spreads the caller's seed into a sequence of Magic-Numbers.
#[derive(Debug, Clone)]
struct MagicSource(u64);

impl MagicSource {
    fn next(&mut self) -> u32 {
        loop {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let value = (z ^ (z >> 31)) as u32;
            // RFC 1661 §6.4: zero means "no magic number".
            if value != 0 {
                return value;
            }
        }
    }
}

/// Our wishes for the current negotiation (pppd's `wantoptions` copied to `gotoptions`).
#[derive(Debug, Clone, Default)]
struct Wants {
    mru: Option<u16>,
    accm: Option<u32>,
    auth: Option<AuthMethod>,
    magic: Option<u32>,
    pfc: bool,
    acfc: bool,
}

/// What the peer asked for in the request we are about to Ack.
#[derive(Debug, Clone, Copy, Default)]
struct PeerOptions {
    mru: Option<u16>,
    accm: Option<u32>,
    auth: Option<AuthMethod>,
    magic: Option<u32>,
    pfc: bool,
    acfc: bool,
}

/// The LCP [`Negotiator`].
#[derive(Debug)]
pub struct LcpNegotiator {
    config: LcpConfig,
    magic_source: MagicSource,
    wants: Wants,
    /// The options of our last request, to check a Reject against.
    sent: Vec<u8>,
    /// Authentication methods the peer has refused in this negotiation.
    auth_refused: Vec<AuthMethod>,
    loops: u32,
    peer: PeerOptions,
    negotiated: Option<LcpNegotiated>,
    /// Set by an Echo-Reply; [`Lcp`] clears it.
    echo_reply_seen: bool,
}

impl LcpNegotiator {
    /// A negotiator; `magic_seed` (random, from the caller) seeds our Magic-Numbers.
    pub fn new(config: LcpConfig, magic_seed: u64) -> LcpNegotiator {
        let mut negotiator = LcpNegotiator {
            config,
            magic_source: MagicSource(magic_seed),
            wants: Wants::default(),
            sent: Vec::new(),
            auth_refused: Vec::new(),
            loops: 0,
            peer: PeerOptions::default(),
            negotiated: None,
            echo_reply_seen: false,
        };
        negotiator.reset_wants();
        negotiator
    }

    /// The settings.
    pub fn config(&self) -> &LcpConfig {
        &self.config
    }

    /// What was negotiated, while LCP is Opened.
    pub fn negotiated(&self) -> Option<&LcpNegotiated> {
        self.negotiated.as_ref()
    }

    /// Our Magic-Number as currently requested (0 if none).
    pub fn our_magic(&self) -> u32 {
        self.wants.magic.unwrap_or(0)
    }

    fn reset_wants(&mut self) {
        let config = &self.config;
        self.wants = Wants {
            mru: (config.mru != DEFAULT_MRU).then_some(config.mru),
            accm: config.accm,
            auth: config.auth_require.first().copied(),
            magic: None,
            pfc: config.pfc,
            acfc: config.acfc,
        };
        if config.magic {
            self.wants.magic = Some(self.magic_source.next());
        }
        self.auth_refused.clear();
        self.loops = 0;
        self.peer = PeerOptions::default();
    }

    /// The peer Nak'd our Authentication-Protocol proposing `proposed`: move to it if our
    /// policy allows it, else to the next allowed method not refused yet.
    fn auth_naked(&mut self, cx: &mut Context<'_, LcpEvent>, proposed: Option<AuthMethod>) {
        if let Some(current) = self.wants.auth {
            self.auth_refused.push(current);
        }
        let usable = |m: &AuthMethod| !self.auth_refused.contains(m);
        let next = proposed
            .filter(|p| self.config.auth_require.contains(p) && usable(p))
            .or_else(|| self.config.auth_require.iter().copied().find(usable));
        match next {
            Some(method) if !cx.treat_nak_as_reject() => self.wants.auth = Some(method),
            _ => cx.close(Failure::NotConverging(OptionType::AuthProtocol.into())),
        }
    }

    /// Decides on one option of the peer's request.
    fn request_option(&mut self, raw: RawOption<'_>, reply: &mut RequestReply) {
        let Ok(option) = LcpOption::parse(raw) else {
            // Wrong length for its type: pppd rejects it.
            return reply.reject(raw);
        };
        match option {
            LcpOption::Mru(mru) if mru >= self.config.min_peer_mru => self.peer.mru = Some(mru),
            LcpOption::Mru(_) => reply.nak(raw, &LcpOption::Mru(self.config.min_peer_mru)),
            LcpOption::Accm(accm) => self.peer.accm = Some(accm),
            LcpOption::AuthProtocol { .. } => {
                let method = option.auth_method();
                match method {
                    Some(m) if self.config.auth_accept.contains(&m) => self.peer.auth = Some(m),
                    _ => match self.config.auth_accept.first() {
                        Some(preferred) => reply.nak(raw, &preferred.to_option()),
                        None => reply.reject(raw),
                    },
                }
            }
            LcpOption::MagicNumber(magic) => {
                if magic == 0 || (self.wants.magic == Some(magic)) {
                    // Zero is illegal; our own number means the link may be looped back:
                    // RFC 1661 §6.4 says Nak with another number.
                    let other = self.magic_source.next();
                    reply.nak(raw, &LcpOption::MagicNumber(other));
                } else {
                    self.peer.magic = Some(magic);
                }
            }
            LcpOption::Pfc if self.config.pfc => self.peer.pfc = true,
            LcpOption::Acfc if self.config.acfc => self.peer.acfc = true,
            // Quality-Protocol, Callback (CBCP), multilink (MRRU, Short Sequence, Endpoint
            // Discriminator), Link Discriminator, unknown types, and PFC/ACFC if disabled.
            _ => reply.reject(raw),
        }
    }
}

impl Negotiator for LcpNegotiator {
    type Event = LcpEvent;

    fn name(&self) -> &'static str {
        "LCP"
    }

    fn reset(&mut self, _cx: &mut Context<'_, LcpEvent>) {
        self.reset_wants();
    }

    fn write_request(&mut self, _cx: &mut Context<'_, LcpEvent>, out: &mut OptionWriter<'_>) {
        let wants = &self.wants;
        let auth = wants.auth.map(|m| m.to_option());
        let options = [
            wants.mru.map(LcpOption::Mru),
            wants.accm.map(LcpOption::Accm),
            auth,
            wants.magic.map(LcpOption::MagicNumber),
            wants.pfc.then_some(LcpOption::Pfc),
            wants.acfc.then_some(LcpOption::Acfc),
        ];
        for option in options.iter().flatten() {
            // 1500 octets hold every option above; a refusal would only drop one.
            let _ = out.push(option);
        }
        self.sent = out.as_bytes().to_vec();
    }

    fn handle_ack(&mut self, _cx: &mut Context<'_, LcpEvent>, _options: &[u8]) {
        self.loops = 0;
    }

    fn handle_nak(&mut self, cx: &mut Context<'_, LcpEvent>, options: &[u8]) -> ReplyVerdict {
        let mut looped = false;
        for raw in OptionIter::new(options) {
            let Ok(raw) = raw else {
                return ReplyVerdict::Discard;
            };
            let Ok(option) = LcpOption::parse(raw) else {
                return ReplyVerdict::Discard;
            };
            let give_up = cx.treat_nak_as_reject();
            match option {
                LcpOption::Mru(mru) => {
                    let acceptable = (self.config.min_peer_mru..=self.config.mru.max(DEFAULT_MRU))
                        .contains(&mru);
                    self.wants.mru = (acceptable && !give_up).then_some(mru);
                }
                LcpOption::Accm(accm) => {
                    if self.wants.accm.is_some() && !give_up {
                        self.wants.accm = self.wants.accm.map(|ours| ours | accm);
                    } else {
                        self.wants.accm = None;
                    }
                }
                // A peer asking us to require authentication is ignored.
                LcpOption::AuthProtocol { .. } if self.wants.auth.is_some() => {
                    self.auth_naked(cx, option.auth_method());
                }
                // RFC 1661 §6.4: a Nak of our number may be our own Nak coming back; pick
                // another and count.
                LcpOption::MagicNumber(_) if self.wants.magic.is_some() => {
                    looped = true;
                    self.wants.magic = Some(self.magic_source.next());
                }
                // The peer asks us to add something we do not do: ignore.
                _ => {}
            }
        }
        if looped {
            self.loops = self.loops.saturating_add(1);
            if self.loops >= self.config.max_loopback {
                cx.close(Failure::LoopedBack);
            }
        } else {
            self.loops = 0;
        }
        ReplyVerdict::Accept
    }

    fn handle_reject(&mut self, cx: &mut Context<'_, LcpEvent>, options: &[u8]) -> ReplyVerdict {
        let mut rejected = Vec::new();
        for raw in OptionIter::new(options) {
            let Ok(raw) = raw else {
                return ReplyVerdict::Discard;
            };
            // A Reject must repeat options of our request unchanged (RFC 1661 §5.4).
            if !OptionIter::new(&self.sent)
                .flatten()
                .any(|ours| ours == raw)
            {
                return ReplyVerdict::Discard;
            }
            rejected.push(raw.kind);
        }
        for kind in rejected {
            match OptionType::from(kind) {
                OptionType::Mru => self.wants.mru = None,
                OptionType::Accm => self.wants.accm = None,
                OptionType::AuthProtocol => {
                    self.wants.auth = None;
                    cx.close(Failure::RequiredOptionRejected(kind));
                }
                OptionType::MagicNumber => self.wants.magic = None,
                OptionType::Pfc => self.wants.pfc = false,
                OptionType::Acfc => self.wants.acfc = false,
                _ => {}
            }
        }
        ReplyVerdict::Accept
    }

    fn handle_request(
        &mut self,
        _cx: &mut Context<'_, LcpEvent>,
        options: &[u8],
        reply: &mut RequestReply,
    ) {
        self.peer = PeerOptions::default();
        let mut iter = OptionIter::new(options);
        while let Some(raw) = iter.next() {
            match raw {
                Ok(raw) => self.request_option(raw, reply),
                Err(_) => return reply.reject_rest(iter.rest()),
            }
        }
    }

    fn this_layer_up(&mut self, _cx: &mut Context<'_, LcpEvent>) {
        let (wants, peer) = (&self.wants, &self.peer);
        self.negotiated = Some(LcpNegotiated {
            our_mru: wants.mru.unwrap_or(DEFAULT_MRU),
            peer_mru: peer.mru.unwrap_or(DEFAULT_MRU),
            peer_accm: peer.accm.unwrap_or(u32::MAX),
            pfc_rx: wants.pfc,
            pfc_tx: peer.pfc,
            acfc_rx: wants.acfc,
            acfc_tx: peer.acfc,
            peer_authenticates_with: wants.auth,
            we_authenticate_with: peer.auth,
            our_magic: wants.magic.unwrap_or(0),
            peer_magic: peer.magic.unwrap_or(0),
        });
    }

    fn this_layer_down(&mut self, _cx: &mut Context<'_, LcpEvent>) {
        self.negotiated = None;
    }

    fn handle_code(
        &mut self,
        cx: &mut Context<'_, LcpEvent>,
        code: Code,
        id: u8,
        data: &[u8],
    ) -> CodeVerdict {
        let opened = cx.state() == State::Opened;
        match code {
            Code::EchoRequest => {
                // RFC 1661 §5.8: answered only in Opened, with our magic and the data.
                if opened && let Some((_, rest)) = data.split_first_chunk::<4>() {
                    let peer_mru = self.negotiated.map_or(DEFAULT_MRU, |n| n.peer_mru);
                    let room = usize::from(peer_mru).saturating_sub(8).min(rest.len());
                    let magic = self.our_magic().to_be_bytes();
                    cx.send(
                        Code::EchoReply,
                        id,
                        &[&magic, rest.get(..room).unwrap_or_default()],
                    );
                }
                CodeVerdict::Handled
            }
            Code::EchoReply => {
                if opened {
                    self.echo_reply_seen = true;
                }
                CodeVerdict::Handled
            }
            Code::ProtocolReject => {
                // RFC 1661 §5.7: only meaningful in Opened; else silently discarded.
                if opened && let Some((protocol, _)) = data.split_first_chunk::<2>() {
                    let protocol = Protocol::from(u16::from_be_bytes(*protocol));
                    if protocol == Protocol::Lcp {
                        cx.close(Failure::ProtocolRejected);
                    } else {
                        cx.emit(LcpEvent::ProtocolRejected(protocol));
                    }
                }
                CodeVerdict::Handled
            }
            Code::DiscardRequest | Code::Identification | Code::TimeRemaining => {
                CodeVerdict::Handled
            }
            _ => CodeVerdict::Unknown,
        }
    }
}

/// One LCP: the automaton with the [`LcpNegotiator`], plus Echo keepalives.
///
/// Inputs: [`open`](Self::open), [`close`](Self::close), [`up`](Self::up),
/// [`down`](Self::down), [`handle_packet`](Self::handle_packet) (LCP packets, Code on),
/// [`frame_received`](Self::frame_received) (any frame of the link arrived: it proves the
/// peer alive), [`handle_timeout`](Self::handle_timeout). After each, drain
/// [`poll_transmit`](Self::poll_transmit) and [`poll_event`](Self::poll_event), then re-arm
/// the timer from [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Lcp {
    fsm: Fsm<LcpNegotiator>,
    events: VecDeque<LcpFsmEvent>,
    /// When the next Echo-Request is due, while Opened and echoes are configured.
    echo_deadline: Option<Instant>,
    echo_unanswered: u32,
    echo_id: u8,
}

impl Lcp {
    /// A new LCP in the Initial state; `magic_seed` must be random (it seeds the
    /// Magic-Numbers that detect loop-back).
    pub fn new(config: LcpConfig, magic_seed: u64) -> Lcp {
        let fsm_config = config.fsm;
        Lcp {
            fsm: Fsm::new(LcpNegotiator::new(config, magic_seed), fsm_config),
            events: VecDeque::new(),
            echo_deadline: None,
            echo_unanswered: 0,
            echo_id: 0,
        }
    }

    /// The automaton's state.
    pub fn state(&self) -> State {
        self.fsm.state()
    }

    /// The automaton (for its statistics and settings).
    pub fn fsm(&self) -> &Fsm<LcpNegotiator> {
        &self.fsm
    }

    /// What was negotiated, while Opened.
    pub fn negotiated(&self) -> Option<&LcpNegotiated> {
        self.fsm.negotiator().negotiated()
    }

    /// Administrative Open.
    pub fn open(&mut self, now: Instant) {
        self.fsm.open(now);
        self.after_input(now);
    }

    /// Administrative Close, `reason` in the Terminate-Request.
    pub fn close(&mut self, now: Instant, reason: &[u8]) {
        self.fsm.close(now, reason);
        self.after_input(now);
    }

    /// The lower layer (the PPTP call) is up.
    pub fn up(&mut self, now: Instant) {
        self.fsm.up(now);
        self.after_input(now);
    }

    /// The lower layer is gone.
    pub fn down(&mut self) {
        self.fsm.down();
        self.echo_deadline = None;
        self.collect_events(None);
    }

    /// An LCP packet (Code onwards). Also counts as traffic for the keepalive.
    pub fn handle_packet(&mut self, now: Instant, packet: &[u8]) {
        self.frame_received(now);
        self.fsm.handle_packet(now, packet);
        if std::mem::take(&mut self.fsm.negotiator_mut().echo_reply_seen) {
            self.echo_unanswered = 0;
        }
        self.after_input(now);
    }

    /// Any frame arrived from the peer: postpones the next Echo-Request and forgives the
    /// unanswered ones.
    pub fn frame_received(&mut self, now: Instant) {
        self.echo_unanswered = 0;
        if self.echo_deadline.is_some() {
            self.echo_deadline = self.echo_interval().and_then(|i| now.checked_add(i));
        }
    }

    /// The earliest of the restart timer and the keepalive.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.fsm.poll_timeout(), self.echo_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Acts on whatever is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.fsm.handle_timeout(now);
        if let Some(deadline) = self.echo_deadline
            && deadline <= now
            && self.fsm.state() == State::Opened
        {
            let failures = self.fsm.negotiator().config().echo_failures;
            if failures != 0 && self.echo_unanswered >= failures {
                self.events
                    .push_back(Event::Negotiator(LcpEvent::EchoFailure));
                self.echo_deadline = None;
            } else {
                self.send_echo_request();
                self.echo_deadline = self.echo_interval().and_then(|i| now.checked_add(i));
            }
        }
        self.after_input(now);
    }

    /// The next LCP packet to send (Code onwards).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.fsm.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<LcpFsmEvent> {
        self.events.pop_front()
    }

    fn echo_interval(&self) -> Option<Duration> {
        self.fsm.negotiator().config().echo_interval
    }

    fn send_echo_request(&mut self) {
        self.echo_unanswered = self.echo_unanswered.saturating_add(1);
        let id = self.echo_id;
        self.echo_id = self.echo_id.wrapping_add(1);
        let magic = self.fsm.negotiator().our_magic().to_be_bytes();
        self.fsm.send(Code::EchoRequest, id, &[&magic]);
    }

    /// Moves the automaton's events to ours, arming or stopping the keepalive and telling
    /// the automaton the peer's MRU when the layer comes up.
    fn after_input(&mut self, now: Instant) {
        self.collect_events(Some(now));
    }

    fn collect_events(&mut self, now: Option<Instant>) {
        while let Some(event) = self.fsm.poll_event() {
            match event {
                Event::Up => {
                    if let Some(peer_mru) = self.negotiated().map(|n| n.peer_mru) {
                        self.fsm.set_peer_mru(peer_mru);
                    }
                    self.echo_unanswered = 0;
                    self.echo_deadline = now
                        .zip(self.echo_interval())
                        .and_then(|(now, i)| now.checked_add(i));
                }
                Event::Down => self.echo_deadline = None,
                _ => {}
            }
            // Bounded by the automaton's own queue: events only come from it and from
            // echo failure, and the caller drains after every input.
            if self.events.len() < 128 {
                self.events.push_back(event);
            }
        }
    }
}

impl fmt::Display for LcpNegotiated {
    /// One line for logs: `mru 1500/1400 pcomp accomp auth MS-v2 magic 0x1/0x2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mru {}/{} magic 0x{:x}/0x{:x}",
            self.our_mru, self.peer_mru, self.our_magic, self.peer_magic
        )?;
        if let Some(method) = self.peer_authenticates_with {
            write!(f, " peer-auth {}", method.to_option())?;
        }
        if let Some(method) = self.we_authenticate_with {
            write!(f, " our-auth {}", method.to_option())?;
        }
        Ok(())
    }
}
