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
                    reply.nak_regardless(raw, &LcpOption::MagicNumber(other));
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
        [self.fsm.poll_timeout(), self.echo_deadline]
            .into_iter()
            .flatten()
            .min()
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

#[cfg(test)]
mod test {
    use super::*;

    // The reference capture's LCP packets (Debian pptp-linux/pppd client, Poptop/pppd server).
    use crate::testing::reference::lcp::{
        CLIENT_CONFACK, CLIENT_CONFREQ, CLIENT_ECHO_REQUEST, CLIENT_TERMREQ, PROTREJ_IPV6CP,
        SERVER_CONFREQ, SERVER_TERMACK,
    };

    fn t0() -> Instant {
        Instant::now()
    }

    /// pppd's server options as in the reference session: asyncmap 0, MS-CHAPv2 only.
    fn poptop_server() -> Lcp {
        let config = LcpConfig {
            accm: Some(0),
            ..LcpConfig::server(&[AuthMethod::MS_CHAP_V2])
        };
        Lcp::new(config, 1)
    }

    fn pptp_linux_client() -> Lcp {
        let config = LcpConfig {
            accm: Some(0),
            ..LcpConfig::default()
        };
        Lcp::new(config, 2)
    }

    fn drain(lcp: &mut Lcp) -> (Vec<Vec<u8>>, Vec<LcpFsmEvent>) {
        let packets = core::iter::from_fn(|| lcp.poll_transmit()).collect();
        let events = core::iter::from_fn(|| lcp.poll_event()).collect();
        (packets, events)
    }

    fn server_sends_configure_request(server: &mut Lcp, now: Instant) -> Vec<u8> {
        server.open(now);
        server.up(now);
        let (packets, events) = drain(server);
        assert_eq!(events, [Event::Started]);
        assert_eq!(packets.len(), 1);
        packets.into_iter().next().unwrap()
    }

    #[test]
    fn server_request_is_poptops_but_for_the_magic() {
        let now = t0();
        let mut server = poptop_server();
        let request = server_sends_configure_request(&mut server, now);
        let magic = server.fsm().negotiator().our_magic().to_be_bytes();
        let mut expected = SERVER_CONFREQ;
        expected[17..21].copy_from_slice(&magic);
        assert_eq!(request, expected);
    }

    #[test]
    fn server_acks_reference_client_request() {
        let now = t0();
        let mut server = poptop_server();
        let request = server_sends_configure_request(&mut server, now);
        // rcvd [LCP ConfReq id=0x1 <asyncmap 0x0> <magic 0x56139dac> <pcomp> <accomp>]
        // sent [LCP ConfAck id=0x1 <asyncmap 0x0> <magic 0x56139dac> <pcomp> <accomp>]
        server.handle_packet(now, &CLIENT_CONFREQ);
        let mut ack = CLIENT_CONFREQ;
        ack[0] = 2;
        assert_eq!(drain(&mut server).0, [ack.to_vec()]);
        assert_eq!(server.state(), State::AckSent);
        // rcvd [LCP ConfAck id=0x1 ...]: the client Acks our request.
        let mut client_ack = request.clone();
        client_ack[0] = 2;
        server.handle_packet(now, &client_ack);
        assert_eq!(server.state(), State::Opened);
        assert_eq!(drain(&mut server).1, [Event::Up]);
        let negotiated = *server.negotiated().unwrap();
        assert_eq!(
            negotiated,
            LcpNegotiated {
                our_mru: 1500,
                peer_mru: 1500,
                peer_accm: 0,
                pfc_rx: true,
                pfc_tx: true,
                acfc_rx: true,
                acfc_tx: true,
                peer_authenticates_with: Some(AuthMethod::MS_CHAP_V2),
                we_authenticate_with: None,
                our_magic: server.fsm().negotiator().our_magic(),
                peer_magic: 0x5613_9dac,
            }
        );

        // rcvd [LCP EchoReq id=0x0 magic=0x56139dac] / sent [LCP EchoRep id=0x0 magic=ours]
        server.handle_packet(now, &CLIENT_ECHO_REQUEST);
        let mut reply = vec![0x0a, 0x00, 0x00, 0x08];
        reply.extend_from_slice(&negotiated.our_magic.to_be_bytes());
        assert_eq!(drain(&mut server).0, [reply]);

        // rcvd [LCP TermReq id=0x2 "MPPE disabled"] / sent [LCP TermAck id=0x2]
        server.handle_packet(now, &CLIENT_TERMREQ);
        let (packets, events) = drain(&mut server);
        assert_eq!(packets, [SERVER_TERMACK.to_vec()]);
        assert_eq!(
            events,
            [
                Event::PeerTerminated {
                    data: b"MPPE disabled".to_vec()
                },
                Event::Down
            ]
        );
        assert_eq!(server.state(), State::Stopping);
        assert!(server.negotiated().is_none());
    }

    #[test]
    fn client_acks_reference_server_request() {
        let now = t0();
        let mut client = pptp_linux_client();
        client.open(now);
        client.up(now);
        let (packets, _) = drain(&mut client);
        // Our request is pppd's but for the magic.
        let mut expected = CLIENT_CONFREQ;
        let magic = client.fsm().negotiator().our_magic().to_be_bytes();
        expected[12..16].copy_from_slice(&magic);
        assert_eq!(packets, [expected.to_vec()]);
        client.handle_packet(now, &SERVER_CONFREQ);
        assert_eq!(drain(&mut client).0, [CLIENT_CONFACK.to_vec()]);
        let mut ack = expected;
        ack[0] = 2;
        client.handle_packet(now, &ack);
        assert_eq!(client.state(), State::Opened);
        let negotiated = client.negotiated().unwrap();
        assert_eq!(
            negotiated.we_authenticate_with,
            Some(AuthMethod::MS_CHAP_V2)
        );
        assert_eq!(negotiated.peer_authenticates_with, None);
        assert_eq!(negotiated.peer_magic, 0x7871_55cf);
    }

    #[test]
    fn windows_multilink_options_are_rejected() {
        let now = t0();
        let mut server = poptop_server();
        server_sends_configure_request(&mut server, now);
        // As Windows sends with multilink on: MRU 1400, magic, PFC, ACFC, Callback 6,
        // MRRU 1614, Endpoint Discriminator class 1 (locally assigned, 20 octets).
        let mut request = vec![0x01, 0x03, 0x00, 0x00];
        request.extend_from_slice(&[0x01, 0x04, 0x05, 0x78]);
        request.extend_from_slice(&[0x05, 0x06, 0x11, 0x22, 0x33, 0x44]);
        request.extend_from_slice(&[0x07, 0x02, 0x08, 0x02]);
        let callback = [0x0d, 0x03, 0x06];
        let mrru = [0x11, 0x04, 0x06, 0x4e];
        let mut endpoint = vec![0x13, 0x17, 0x01];
        endpoint.extend((0..20).map(|i| 0xa0 + i));
        request.extend_from_slice(&callback);
        request.extend_from_slice(&mrru);
        request.extend_from_slice(&endpoint);
        let len = request.len() as u16;
        request[2..4].copy_from_slice(&len.to_be_bytes());
        server.handle_packet(now, &request);
        let mut reject = vec![0x04, 0x03, 0x00, 0x00];
        reject.extend_from_slice(&callback);
        reject.extend_from_slice(&mrru);
        reject.extend_from_slice(&endpoint);
        let len = reject.len() as u16;
        reject[2..4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(drain(&mut server).0, [reject]);
        assert_eq!(server.state(), State::ReqSent);
    }

    #[test]
    fn small_mru_and_zero_magic_are_naked() {
        let now = t0();
        let mut server = poptop_server();
        server_sends_configure_request(&mut server, now);
        server.handle_packet(
            now,
            &[1, 7, 0, 14, 0x01, 0x04, 0x00, 0x40, 0x05, 0x06, 0, 0, 0, 0],
        );
        let (packets, _) = drain(&mut server);
        assert_eq!(packets[0][..8], [3, 7, 0, 14, 0x01, 0x04, 0x00, 0x80]);
        assert_eq!(packets[0][8..10], [0x05, 0x06]);
        assert_ne!(packets[0][10..14], [0, 0, 0, 0]);
    }

    /// Runs two LCPs back to back on a virtual clock until both are Opened or nothing
    /// moves; returns the events each saw.
    fn run_pair(a: &mut Lcp, b: &mut Lcp, now: Instant) -> (Vec<LcpFsmEvent>, Vec<LcpFsmEvent>) {
        let (mut ea, mut eb) = (vec![], vec![]);
        let mut now = now;
        a.open(now);
        b.open(now);
        a.up(now);
        b.up(now);
        for _ in 0..500 {
            let (pa, mut ev) = drain(a);
            ea.append(&mut ev);
            let (pb, mut ev) = drain(b);
            eb.append(&mut ev);
            for p in &pa {
                b.handle_packet(now, p);
            }
            for p in &pb {
                a.handle_packet(now, p);
            }
            if pa.is_empty() && pb.is_empty() {
                if a.state() == State::Opened && b.state() == State::Opened {
                    break;
                }
                // Only the restart timers: keepalives would run forever.
                let Some(next) = [a.fsm().poll_timeout(), b.fsm().poll_timeout()]
                    .into_iter()
                    .flatten()
                    .min()
                else {
                    break;
                };
                now = next;
                a.handle_timeout(now);
                b.handle_timeout(now);
            }
        }
        (ea, eb)
    }

    const METHODS: [AuthMethod; 4] = [
        AuthMethod::MS_CHAP_V2,
        AuthMethod::MS_CHAP_V1,
        AuthMethod::CHAP_MD5,
        AuthMethod::Pap,
    ];

    fn subsets() -> Vec<Vec<AuthMethod>> {
        let mut all = vec![];
        for mask in 1..16u32 {
            let set: Vec<_> = (0..4)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| METHODS[i])
                .collect();
            // Each set strongest first, and weakest first (a client preferring PAP).
            if set.len() > 1 {
                all.push(set.iter().rev().copied().collect());
            }
            all.push(set);
        }
        all
    }

    #[test]
    fn auth_nak_dance_for_every_policy_pair() {
        let now = t0();
        for server_policy in subsets() {
            for client_policy in subsets() {
                let mut server = Lcp::new(LcpConfig::server(&server_policy), 3);
                let mut client = Lcp::new(LcpConfig::client(&client_policy), 4);
                let (server_events, _) = run_pair(&mut server, &mut client, now);
                // The server asks for its first; the client Naks with its first; the server
                // takes that if allowed, else walks down its list.
                let expected = if client_policy.contains(&server_policy[0]) {
                    Some(server_policy[0])
                } else if server_policy.contains(&client_policy[0]) {
                    Some(client_policy[0])
                } else {
                    server_policy
                        .iter()
                        .copied()
                        .find(|m| client_policy.contains(m))
                };
                let case = format!("server {server_policy:?} client {client_policy:?}");
                match expected {
                    Some(method) => {
                        assert_eq!(server.state(), State::Opened, "{case}");
                        assert_eq!(client.state(), State::Opened, "{case}");
                        let s = server.negotiated().unwrap();
                        let c = client.negotiated().unwrap();
                        assert_eq!(s.peer_authenticates_with, Some(method), "{case}");
                        assert_eq!(c.we_authenticate_with, Some(method), "{case}");
                        assert_eq!(s.peer_magic, c.our_magic);
                        assert_eq!(c.peer_magic, s.our_magic);
                    }
                    None => {
                        assert_ne!(server.state(), State::Opened, "{case}");
                        assert!(
                            server_events.iter().any(|e| matches!(
                                e,
                                Event::Failed(
                                    Failure::NotConverging(3) | Failure::RequiredOptionRejected(3)
                                )
                            )),
                            "{case}: {server_events:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn client_without_methods_rejects_auth() {
        let now = t0();
        let mut server = Lcp::new(LcpConfig::server(&[AuthMethod::MS_CHAP_V2]), 5);
        let mut client = Lcp::new(LcpConfig::client(&[]), 6);
        let (server_events, _) = run_pair(&mut server, &mut client, now);
        assert!(server_events.contains(&Event::Failed(Failure::RequiredOptionRejected(3))));
        assert_ne!(server.state(), State::Opened);
    }

    fn opened_pair(now: Instant) -> (Lcp, Lcp) {
        let mut server = Lcp::new(LcpConfig::server(&[AuthMethod::MS_CHAP_V2]), 7);
        let mut client = Lcp::new(LcpConfig::client(&[AuthMethod::MS_CHAP_V2]), 8);
        run_pair(&mut server, &mut client, now);
        assert_eq!(
            (server.state(), client.state()),
            (State::Opened, State::Opened)
        );
        (server, client)
    }

    #[test]
    fn echo_timeout_reports_failure() {
        let now = t0();
        let (mut server, mut client) = opened_pair(now);
        drain(&mut server);
        drain(&mut client);
        let interval = Duration::from_secs(30);
        assert_eq!(server.poll_timeout(), Some(now + interval));

        // A peer that answers: no failure, however long.
        let mut t = now;
        for _ in 0..6 {
            t = server.poll_timeout().unwrap();
            server.handle_timeout(t);
            let (packets, events) = drain(&mut server);
            assert!(events.is_empty());
            assert_eq!(packets.len(), 1);
            assert_eq!(packets[0][0], 9, "Echo-Request");
            client.handle_packet(t, &packets[0]);
            let (replies, _) = drain(&mut client);
            assert_eq!(replies[0][0], 10, "Echo-Reply");
            server.handle_packet(t, &replies[0]);
        }

        // A silent peer: four Echo-Requests, then the failure.
        let mut requests = 0;
        loop {
            let next = server.poll_timeout().unwrap();
            assert_eq!(next, t + interval);
            t = next;
            server.handle_timeout(t);
            let (packets, events) = drain(&mut server);
            if !events.is_empty() {
                assert_eq!(events, [Event::Negotiator(LcpEvent::EchoFailure)]);
                break;
            }
            requests += packets.len();
        }
        assert_eq!(requests, 4);
        assert_eq!(server.poll_timeout(), None);
    }

    #[test]
    fn traffic_postpones_echo() {
        let now = t0();
        let (mut server, _client) = opened_pair(now);
        drain(&mut server);
        let later = now + Duration::from_secs(20);
        server.frame_received(later);
        assert_eq!(server.poll_timeout(), Some(later + Duration::from_secs(30)));
        server.handle_timeout(now + Duration::from_secs(30));
        assert!(drain(&mut server).0.is_empty());
    }

    #[test]
    fn looped_back_link_is_detected() {
        let now = t0();
        let mut lcp = Lcp::new(LcpConfig::client(&[AuthMethod::MS_CHAP_V2]), 9);
        lcp.open(now);
        lcp.up(now);
        let mut events = vec![];
        for _ in 0..200 {
            let (packets, mut ev) = drain(&mut lcp);
            events.append(&mut ev);
            if packets.is_empty() {
                break;
            }
            for p in packets {
                lcp.handle_packet(now, &p);
            }
        }
        assert!(
            events.contains(&Event::Failed(Failure::LoopedBack)),
            "{events:?}"
        );
        assert_ne!(lcp.state(), State::Opened);
    }

    #[test]
    fn protocol_reject_and_other_codes_when_opened() {
        let now = t0();
        let (mut server, _client) = opened_pair(now);
        drain(&mut server);
        server.handle_packet(now, &PROTREJ_IPV6CP);
        assert_eq!(
            drain(&mut server).1,
            [Event::Negotiator(LcpEvent::ProtocolRejected(
                Protocol::Ipv6cp
            ))]
        );
        // Identification, Time-Remaining and Discard-Request: ignored.
        server.handle_packet(now, &[12, 1, 0, 12, 0, 0, 0, 0, b'M', b'S', b'R', b'A']);
        server.handle_packet(now, &[13, 2, 0, 12, 0, 0, 0, 0, 0, 0, 0, 60]);
        server.handle_packet(now, &[11, 3, 0, 8, 0, 0, 0, 0]);
        assert_eq!(drain(&mut server), (vec![], vec![]));
        // A CCP code in LCP is Code-Rejected with the packet.
        server.handle_packet(now, &[14, 4, 0, 4]);
        let (packets, _) = drain(&mut server);
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0][0], 7);
        assert_eq!(packets[0][4..], [14, 4, 0, 4]);
        assert_eq!(server.state(), State::Opened);
    }

    #[test]
    fn echo_request_outside_opened_is_not_answered() {
        let now = t0();
        let mut server = poptop_server();
        server_sends_configure_request(&mut server, now);
        server.handle_packet(now, &CLIENT_ECHO_REQUEST);
        assert!(drain(&mut server).0.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_packets_never_panic(
            packets in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 1..20)
        ) {
            let now = t0();
            let (mut server, _client) = opened_pair(now);
            for (i, mut p) in packets.into_iter().enumerate() {
                // Mostly well-framed, so the codes are reached.
                if p.len() >= 4 && i % 2 == 0 {
                    let len = p.len() as u16;
                    p[2..4].copy_from_slice(&len.to_be_bytes());
                    p[0] %= 16;
                }
                server.handle_packet(now, &p);
                let (packets, _) = drain(&mut server);
                for out in packets {
                    proptest::prop_assert!(out.len() <= 1500);
                }
            }
        }
    }
}
