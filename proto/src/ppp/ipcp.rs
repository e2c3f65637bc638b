//! The IPCP negotiator (RFC 1332, with the DNS/NBNS options of RFC 1877), server and client.
//!
//! [`IpcpNegotiator`] plugs into the RFC 1661 automaton ([`Fsm`](super::fsm::Fsm)) and
//! decides about IPCP options only; packets, timers and states are the automaton's.
//!
//! # Server (the concentrator)
//!
//! * Our Configure-Request carries IP-Address with our own tunnel address (pptpd's
//!   `localip`). A Nak of it is ignored (pppd without `ipcp-accept-local`); a Reject stops us
//!   sending it.
//! * The client's address comes from an [`AddressAssigner`], asked once per link, the first
//!   time the client's request needs it; the assignment is kept across renegotiations. If
//!   the assigner has nothing, the negotiator emits [`IpcpEvent::NoAddress`] and closes
//!   the automaton with [`Failure::NotConverging`]`(3)`. Giving the address back (to a pool)
//!   is the layer above's job: read it with [`IpcpNegotiator::assigned_address`].
//! * A client asking for `0.0.0.0`, or for another address than the assigned one, is Nak'd
//!   with the assigned one (RFC 1332 §3.3); a client that does not ask is Nak'd once with
//!   IP-Address added, as pppd does.
//! * Primary/Secondary DNS (129/131) and NBNS (130/132), RFC 1877: Acked when they hold the
//!   configured value, Nak'd with it otherwise (Windows asks with `0.0.0.0`), Rejected when
//!   not configured.
//! * Rejected: IP-Compression-Protocol (VJ: the concentrator does not do header
//!   compression; pptp-linux asks for `compress VJ 0f 01`), the deprecated IP-Addresses
//!   (RFC 1332 §3.1), and any other type.
//!
//! # Client (the bench's emulator, the tests)
//!
//! * Our request carries IP-Address `0.0.0.0` (or a configured address) and, if configured
//!   (pppd `usepeerdns`), DNS and NBNS with `0.0.0.0`; the server's Nak values are taken.
//!   Rejected options are not asked again.
//! * The server's IP-Address is Acked if it is not `0.0.0.0` (which is Rejected: we have no
//!   address to offer it); every other option of the server is Rejected.
//! * If the layer comes up without an address for us, the negotiator emits
//!   [`IpcpEvent::NoLocalAddress`] and closes with [`Failure::NotConverging`]`(3)` (pppd:
//!   "Could not determine local IP address").
//!
//! After [`Event::Up`](super::fsm::Event::Up), [`IpcpNegotiator::negotiated`] holds the
//! addresses and name servers.

use core::fmt;
use core::net::Ipv4Addr;

use super::fsm::{Context, Failure, Negotiator, ReplyVerdict, RequestReply};
use crate::wire::cp::{ConfigOption, OptionIter, OptionWriter, RawOption};
use crate::wire::ipcp::{IpcpOption, OptionType};

const UNSPECIFIED: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

/// Where the server gets the client's address: a pool, a per-user fixed address (the fourth
/// column of chap-secrets), RADIUS Framed-IP-Address resolved beforehand...
///
/// Called at most once per link. The assignment is the caller's resource from then on: the
/// negotiator never gives it back, the layer above does (when the link ends), using
/// [`IpcpNegotiator::assigned_address`].
pub trait AddressAssigner {
    /// An address for the client, or `None` if there is none (the link then terminates).
    /// `requested` is the non-zero address the client asked for, if any: an assigner may
    /// honour it (pppd does when the address is allowed for the user) or ignore it.
    fn assign(&mut self, requested: Option<Ipv4Addr>) -> Option<Ipv4Addr>;
}

/// Always the same address, or none: a per-user static address, or an address the layer
/// above took from its pool before starting IPCP (`FixedAddress(None)` fails the link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixedAddress(pub Option<Ipv4Addr>);

impl AddressAssigner for FixedAddress {
    fn assign(&mut self, _requested: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        self.0
    }
}

/// Any closure `FnMut(requested) -> Option<address>` is an assigner.
impl<F> AddressAssigner for F
where
    F: FnMut(Option<Ipv4Addr>) -> Option<Ipv4Addr>,
{
    fn assign(&mut self, requested: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        self(requested)
    }
}

/// The name servers of RFC 1877: what a server gives, or what a client was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct NameServers {
    /// Primary-DNS-Server-Address, option 129 (pppd `ms-dns`, first).
    pub primary_dns: Option<Ipv4Addr>,
    /// Secondary-DNS-Server-Address, option 131 (pppd `ms-dns`, second).
    pub secondary_dns: Option<Ipv4Addr>,
    /// Primary-NBNS-Server-Address (WINS), option 130 (pppd `ms-wins`, first).
    pub primary_nbns: Option<Ipv4Addr>,
    /// Secondary-NBNS-Server-Address (WINS), option 132 (pppd `ms-wins`, second).
    pub secondary_nbns: Option<Ipv4Addr>,
}

/// The four name-server option types, in the order we write them.
const NAME_SERVER_TYPES: [OptionType; 4] = [
    OptionType::PrimaryDns,
    OptionType::PrimaryNbns,
    OptionType::SecondaryDns,
    OptionType::SecondaryNbns,
];

impl NameServers {
    fn slot(&mut self, kind: OptionType) -> Option<&mut Option<Ipv4Addr>> {
        match kind {
            OptionType::PrimaryDns => Some(&mut self.primary_dns),
            OptionType::SecondaryDns => Some(&mut self.secondary_dns),
            OptionType::PrimaryNbns => Some(&mut self.primary_nbns),
            OptionType::SecondaryNbns => Some(&mut self.secondary_nbns),
            _ => None,
        }
    }

    fn get(&self, kind: OptionType) -> Option<Ipv4Addr> {
        match kind {
            OptionType::PrimaryDns => self.primary_dns,
            OptionType::SecondaryDns => self.secondary_dns,
            OptionType::PrimaryNbns => self.primary_nbns,
            OptionType::SecondaryNbns => self.secondary_nbns,
            _ => None,
        }
    }
}

/// The name-server option of type `kind` carrying `address`.
fn name_server_option(kind: OptionType, address: Ipv4Addr) -> Option<IpcpOption<'static>> {
    match kind {
        OptionType::PrimaryDns => Some(IpcpOption::PrimaryDns(address)),
        OptionType::SecondaryDns => Some(IpcpOption::SecondaryDns(address)),
        OptionType::PrimaryNbns => Some(IpcpOption::PrimaryNbns(address)),
        OptionType::SecondaryNbns => Some(IpcpOption::SecondaryNbns(address)),
        _ => None,
    }
}

/// The address carried by IP-Address or a name-server option.
fn address_of(option: &IpcpOption<'_>) -> Option<Ipv4Addr> {
    match *option {
        IpcpOption::IpAddress(a)
        | IpcpOption::PrimaryDns(a)
        | IpcpOption::SecondaryDns(a)
        | IpcpOption::PrimaryNbns(a)
        | IpcpOption::SecondaryNbns(a) => Some(a),
        _ => None,
    }
}

/// The server's IPCP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpcpServerConfig {
    /// Our end of the tunnel, sent in our IP-Address (pptpd `localip`, pppd `local:`).
    /// `None` sends no IP-Address (pppd `noipdefault` with no local address): the client
    /// then has no gateway address, which Windows tolerates.
    pub local_address: Option<Ipv4Addr>,
    /// DNS and NBNS servers given to clients that ask (pppd `ms-dns`, `ms-wins`); an
    /// unset one is Rejected when asked for.
    pub name_servers: NameServers,
}

impl Default for IpcpServerConfig {
    /// No local address and no name servers, as pppd without options.
    fn default() -> IpcpServerConfig {
        IpcpServerConfig {
            local_address: None,
            name_servers: NameServers::default(),
        }
    }
}

/// The client's IPCP settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IpcpClientConfig {
    /// The address to ask for; `None` asks for `0.0.0.0`, letting the server choose (pppd
    /// `noipdefault`, what pptp-linux sends). A server's Nak still wins.
    pub requested_address: Option<Ipv4Addr>,
    /// Ask for the primary and secondary DNS servers (pppd `usepeerdns`). Off by default.
    pub request_dns: bool,
    /// Ask for the primary and secondary NBNS (WINS) servers, as Windows does. No pppd
    /// option; off by default.
    pub request_nbns: bool,
}

/// What IPCP agreed, valid after [`Event::Up`](super::fsm::Event::Up).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpcpResult {
    /// Our address: the server's configured one, or the one the client was given.
    /// `None` only for a server without `local_address`.
    pub local_address: Option<Ipv4Addr>,
    /// The peer's address: the client's assigned address on the server, the server's
    /// IP-Address on the client (`None` if the server did not send one).
    pub peer_address: Option<Ipv4Addr>,
    /// Server: the name servers the client asked for and got (Acked). Client: the name
    /// servers the server gave (Acked by the server).
    pub name_servers: NameServers,
}

/// What only IPCP knows, reported as [`Event::Negotiator`](super::fsm::Event::Negotiator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpcpEvent {
    /// Server: the [`AddressAssigner`] had no address for the client; the link must
    /// terminate ("no address"). The automaton closes with `Failure::NotConverging(3)`.
    NoAddress,
    /// Client: the layer came up without an address for us (the server rejected
    /// IP-Address and none was configured). The automaton closes.
    NoLocalAddress,
}

impl fmt::Display for IpcpEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpcpEvent::NoAddress => "no address available for the peer",
            IpcpEvent::NoLocalAddress => "could not determine local IP address",
        })
    }
}

/// The server-only state.
struct ServerSide {
    config: IpcpServerConfig,
    assigner: Box<dyn AddressAssigner + Send>,
    /// Whether the assigner was asked (once per link).
    asked: bool,
    /// What it answered.
    assigned: Option<Ipv4Addr>,
    /// This negotiation already Nak'd a request lacking IP-Address (ask once, as pppd).
    asked_missing_address: bool,
}

impl fmt::Debug for ServerSide {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSide")
            .field("config", &self.config)
            .field("asked", &self.asked)
            .field("assigned", &self.assigned)
            .field("asked_missing_address", &self.asked_missing_address)
            .finish_non_exhaustive()
    }
}

impl ServerSide {
    /// The client's address, asking the assigner the first time.
    fn assignment(&mut self, requested: Ipv4Addr) -> Option<Ipv4Addr> {
        if !self.asked {
            self.asked = true;
            let hint = (requested != UNSPECIFIED).then_some(requested);
            self.assigned = self.assigner.assign(hint);
        }
        self.assigned
    }
}

#[derive(Debug)]
enum Side {
    Server(ServerSide),
    Client(IpcpClientConfig),
}

/// What our Configure-Request asks for; `None` fields are not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Wishes {
    address: Option<Ipv4Addr>,
    name_servers: NameServers,
}

/// The IPCP [`Negotiator`]; see the [module documentation](self) for the policy.
#[derive(Debug)]
pub struct IpcpNegotiator {
    side: Side,
    /// What our next Configure-Request asks for.
    wishes: Wishes,
    /// Our side's values, from the Ack of our request.
    acked: Option<Wishes>,
    /// What we accepted in the peer's latest request (tentative until Up).
    peer_address: Option<Ipv4Addr>,
    peer_name_servers: NameServers,
    result: Option<IpcpResult>,
}

impl IpcpNegotiator {
    /// A server-side negotiator; `assigner` gives the client's address.
    pub fn server(
        config: IpcpServerConfig,
        assigner: Box<dyn AddressAssigner + Send>,
    ) -> IpcpNegotiator {
        IpcpNegotiator::new(Side::Server(ServerSide {
            config,
            assigner,
            asked: false,
            assigned: None,
            asked_missing_address: false,
        }))
    }

    /// A client-side negotiator.
    pub fn client(config: IpcpClientConfig) -> IpcpNegotiator {
        IpcpNegotiator::new(Side::Client(config))
    }

    fn new(side: Side) -> IpcpNegotiator {
        let mut negotiator = IpcpNegotiator {
            side,
            wishes: Wishes::default(),
            acked: None,
            peer_address: None,
            peer_name_servers: NameServers::default(),
            result: None,
        };
        negotiator.wishes = negotiator.initial_wishes();
        negotiator
    }

    /// Whether this is the server side.
    pub fn is_server(&self) -> bool {
        matches!(self.side, Side::Server(_))
    }

    /// What was negotiated; `Some` from This-Layer-Up until This-Layer-Down.
    pub fn negotiated(&self) -> Option<&IpcpResult> {
        self.result.as_ref()
    }

    /// Server: the address the [`AddressAssigner`] gave, which the layer above must give
    /// back when the link ends (also if IPCP never came up). `None` on the client or if
    /// the assigner was not asked or had nothing.
    pub fn assigned_address(&self) -> Option<Ipv4Addr> {
        match &self.side {
            Side::Server(server) => server.assigned,
            Side::Client(_) => None,
        }
    }

    fn initial_wishes(&self) -> Wishes {
        match &self.side {
            Side::Server(server) => Wishes {
                address: server.config.local_address,
                name_servers: NameServers::default(),
            },
            Side::Client(config) => {
                let ask = |on: bool| on.then_some(UNSPECIFIED);
                Wishes {
                    address: Some(config.requested_address.unwrap_or(UNSPECIFIED)),
                    name_servers: NameServers {
                        primary_dns: ask(config.request_dns),
                        secondary_dns: ask(config.request_dns),
                        primary_nbns: ask(config.request_nbns),
                        secondary_nbns: ask(config.request_nbns),
                    },
                }
            }
        }
    }

    /// The value our current request carries for option `kind`, if it carries one.
    fn wished(&self, kind: OptionType) -> Option<Ipv4Addr> {
        match kind {
            OptionType::IpAddress => self.wishes.address,
            _ => self.wishes.name_servers.get(kind),
        }
    }

    fn wished_slot(&mut self, kind: OptionType) -> Option<&mut Option<Ipv4Addr>> {
        match kind {
            OptionType::IpAddress => Some(&mut self.wishes.address),
            _ => self.wishes.name_servers.slot(kind),
        }
    }

    /// Decides on one well-formed option of the peer's request.
    fn judge(
        &mut self,
        cx: &mut Context<'_, IpcpEvent>,
        raw: RawOption<'_>,
        option: IpcpOption<'_>,
        reply: &mut RequestReply,
    ) {
        let kind = option.option_type();
        match (&mut self.side, option) {
            (Side::Server(server), IpcpOption::IpAddress(requested)) => {
                match server.assignment(requested) {
                    Some(assigned) if assigned == requested => {
                        self.peer_address = Some(assigned);
                    }
                    Some(assigned) => reply.nak(raw, &IpcpOption::IpAddress(assigned)),
                    None => {
                        cx.emit(IpcpEvent::NoAddress);
                        cx.close(Failure::NotConverging(OptionType::IpAddress.into()));
                        reply.reject(raw);
                    }
                }
            }
            (Side::Server(server), option) if NAME_SERVER_TYPES.contains(&kind) => {
                let asked = address_of(&option).unwrap_or(UNSPECIFIED);
                match server.config.name_servers.get(kind) {
                    Some(ours) if ours == asked => {
                        if let Some(slot) = self.peer_name_servers.slot(kind) {
                            *slot = Some(ours);
                        }
                    }
                    Some(ours) => {
                        if let Some(wanted) = name_server_option(kind, ours) {
                            reply.nak(raw, &wanted);
                        }
                    }
                    None => reply.reject(raw),
                }
            }
            (Side::Client(_), IpcpOption::IpAddress(address)) if address != UNSPECIFIED => {
                self.peer_address = Some(address);
            }
            // VJ, IP-Addresses, unknown types; on the client also the server's name-server
            // options and an IP-Address of 0.0.0.0 (we have nothing to offer it).
            _ => reply.reject(raw),
        }
    }

    /// Walks a Nak or Reject of our request; `f` sees each option we sent, as parsed.
    /// `Discard` if the list is malformed or names an option our request did not carry.
    fn walk_reply(
        &mut self,
        options: &[u8],
        rejecting: bool,
        mut f: impl FnMut(&mut Self, OptionType, Ipv4Addr),
    ) -> ReplyVerdict {
        for item in OptionIter::new(options) {
            let Ok(raw) = item else {
                return ReplyVerdict::Discard;
            };
            let Ok(option) = IpcpOption::parse(raw) else {
                return ReplyVerdict::Discard;
            };
            let kind = option.option_type();
            let sent = self.wished(kind);
            match (address_of(&option), sent) {
                (Some(value), Some(ours)) => {
                    // A Reject repeats our option unchanged (RFC 1661 §5.4).
                    if rejecting && value != ours {
                        return ReplyVerdict::Discard;
                    }
                    f(self, kind, value);
                }
                // A Nak may suggest options we did not send (RFC 1661 §5.3): ignored.
                _ if !rejecting => {}
                _ => return ReplyVerdict::Discard,
            }
        }
        ReplyVerdict::Accept
    }
}

impl Negotiator for IpcpNegotiator {
    type Event = IpcpEvent;

    fn name(&self) -> &'static str {
        "IPCP"
    }

    fn reset(&mut self, _cx: &mut Context<'_, IpcpEvent>) {
        self.wishes = self.initial_wishes();
        self.acked = None;
        self.peer_address = None;
        self.peer_name_servers = NameServers::default();
        if let Side::Server(server) = &mut self.side {
            server.asked_missing_address = false;
        }
    }

    fn write_request(&mut self, _cx: &mut Context<'_, IpcpEvent>, out: &mut OptionWriter<'_>) {
        // A full writer leaves the option out; the peer then simply does not see it.
        if let Some(address) = self.wishes.address {
            let _ = out.push(&IpcpOption::IpAddress(address));
        }
        for kind in NAME_SERVER_TYPES {
            if let Some(option) = self
                .wishes
                .name_servers
                .get(kind)
                .and_then(|a| name_server_option(kind, a))
            {
                let _ = out.push(&option);
            }
        }
    }

    fn handle_ack(&mut self, _cx: &mut Context<'_, IpcpEvent>, _options: &[u8]) {
        // The automaton checked that the Ack repeats our request, which is `wishes`.
        self.acked = Some(self.wishes);
    }

    fn handle_nak(&mut self, cx: &mut Context<'_, IpcpEvent>, options: &[u8]) -> ReplyVerdict {
        let give_up = cx.treat_nak_as_reject();
        let is_server = self.is_server();
        self.walk_reply(options, false, |this, kind, value| {
            let Some(slot) = this.wished_slot(kind) else {
                return;
            };
            if give_up {
                *slot = None;
            } else if kind == OptionType::IpAddress && is_server {
                // Our own address is configured: keep asking for it (pppd without
                // `ipcp-accept-local`); Max-Failure ends a disagreement.
            } else if value != UNSPECIFIED {
                *slot = Some(value);
            }
        })
    }

    fn handle_reject(&mut self, _cx: &mut Context<'_, IpcpEvent>, options: &[u8]) -> ReplyVerdict {
        self.walk_reply(options, true, |this, kind, _| {
            if let Some(slot) = this.wished_slot(kind) {
                *slot = None;
            }
        })
    }

    fn handle_request(
        &mut self,
        cx: &mut Context<'_, IpcpEvent>,
        options: &[u8],
        reply: &mut RequestReply,
    ) {
        self.peer_address = None;
        self.peer_name_servers = NameServers::default();
        let mut seen = Vec::with_capacity(4);
        let mut iter = OptionIter::new(options);
        while let Some(item) = iter.next() {
            let Ok(raw) = item else {
                reply.reject_rest(iter.rest());
                break;
            };
            // A repeated option is rejected: which one would hold?
            let Ok(option) = IpcpOption::parse(raw) else {
                reply.reject(raw);
                continue;
            };
            if seen.contains(&raw.kind) {
                reply.reject(raw);
                continue;
            }
            seen.push(raw.kind);
            self.judge(cx, raw, option, reply);
        }
        // A client that does not ask for an address is told which one it has, once per
        // negotiation (pppd does the same).
        let asked_address = seen.contains(&OptionType::IpAddress.into());
        if let Side::Server(server) = &mut self.side
            && !asked_address
            && !server.asked_missing_address
            && !reply.has_rejects()
        {
            server.asked_missing_address = true;
            match server.assignment(UNSPECIFIED) {
                Some(assigned) => reply.nak_missing(&IpcpOption::IpAddress(assigned)),
                None => {
                    cx.emit(IpcpEvent::NoAddress);
                    cx.close(Failure::NotConverging(OptionType::IpAddress.into()));
                }
            }
        }
    }

    fn this_layer_up(&mut self, cx: &mut Context<'_, IpcpEvent>) {
        let acked = self.acked.unwrap_or_default();
        let result = match &self.side {
            Side::Server(server) => IpcpResult {
                local_address: server.config.local_address,
                // A client that never negotiated IP-Address still has the assignment.
                peer_address: self.peer_address.or(server.assigned),
                name_servers: self.peer_name_servers,
            },
            Side::Client(_) => {
                let known = |a: Option<Ipv4Addr>| a.filter(|a| *a != UNSPECIFIED);
                let ns = acked.name_servers;
                IpcpResult {
                    local_address: known(acked.address),
                    peer_address: self.peer_address,
                    name_servers: NameServers {
                        primary_dns: known(ns.primary_dns),
                        secondary_dns: known(ns.secondary_dns),
                        primary_nbns: known(ns.primary_nbns),
                        secondary_nbns: known(ns.secondary_nbns),
                    },
                }
            }
        };
        if !self.is_server() && result.local_address.is_none() {
            cx.emit(IpcpEvent::NoLocalAddress);
            cx.close(Failure::NotConverging(OptionType::IpAddress.into()));
        }
        self.result = Some(result);
    }

    fn this_layer_down(&mut self, _cx: &mut Context<'_, IpcpEvent>) {
        self.result = None;
    }
}

/// Drives two automata against each other, for the tests of IPCP and CCP.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::Instant;

    use crate::ppp::fsm::{Event, Fsm, FsmConfig, Negotiator, State};

    /// Which automaton sent a packet.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum From {
        Server,
        Client,
    }

    /// A server and a client automaton joined by a lossless wire, on a frozen clock.
    pub(crate) struct Pair<S: Negotiator, C: Negotiator> {
        pub(crate) server: Fsm<S>,
        pub(crate) client: Fsm<C>,
        pub(crate) now: Instant,
        /// Every packet delivered, in order.
        pub(crate) wire: Vec<(From, Vec<u8>)>,
        pub(crate) server_events: Vec<Event<S::Event>>,
        pub(crate) client_events: Vec<Event<C::Event>>,
    }

    impl<S: Negotiator, C: Negotiator> Pair<S, C> {
        pub(crate) fn new(server: S, client: C) -> Pair<S, C> {
            Pair {
                server: Fsm::new(server, FsmConfig::default()),
                client: Fsm::new(client, FsmConfig::default()),
                now: Instant::now(),
                wire: Vec::new(),
                server_events: Vec::new(),
                client_events: Vec::new(),
            }
        }

        /// Opens both and brings their lower layers up; the client's request goes first,
        /// as in the reference session's IPCP.
        pub(crate) fn start(&mut self) {
            self.client.open(self.now);
            self.client.up(self.now);
            self.server.open(self.now);
            self.server.up(self.now);
        }

        /// Delivers packets both ways until neither has anything to send (bounded).
        pub(crate) fn drive(&mut self) {
            for _ in 0..100 {
                self.collect_events();
                let mut moved = false;
                while let Some(packet) = self.client.poll_transmit() {
                    self.server.handle_packet(self.now, &packet);
                    self.wire.push((From::Client, packet));
                    moved = true;
                }
                while let Some(packet) = self.server.poll_transmit() {
                    self.client.handle_packet(self.now, &packet);
                    self.wire.push((From::Server, packet));
                    moved = true;
                }
                if !moved {
                    self.collect_events();
                    return;
                }
            }
            panic!("negotiation did not settle");
        }

        fn collect_events(&mut self) {
            while let Some(event) = self.server.poll_event() {
                self.server_events.push(event);
            }
            while let Some(event) = self.client.poll_event() {
                self.client_events.push(event);
            }
        }

        pub(crate) fn both_opened(&self) -> bool {
            self.server.state() == State::Opened && self.client.state() == State::Opened
        }

        /// The packets one side sent, in order.
        pub(crate) fn sent_by(&self, from: From) -> Vec<&[u8]> {
            self.wire
                .iter()
                .filter(|(f, _)| *f == from)
                .map(|(_, p)| p.as_slice())
                .collect()
        }
    }
}

#[cfg(test)]
mod test {
    use std::time::Instant;

    use super::testing::{From, Pair};
    use super::*;
    use crate::ppp::fsm::{Event, Fsm, FsmConfig, State};
    use crate::wire::cp::{Code, ConfigPacketWriter};

    // The reference capture's IPCP packets (Debian pptp-linux/pppd client, Poptop/pppd server).
    use crate::testing::reference::ipcp::{
        CLIENT_CONFACK, CLIENT_CONFREQ_1, CLIENT_CONFREQ_2, CLIENT_CONFREQ_3, SERVER_CONFACK,
        SERVER_CONFNAK, SERVER_CONFREJ, SERVER_CONFREQ,
    };

    const LOCAL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
    const CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 10);
    const DNS1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 53);
    const DNS2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 53);
    const WINS1: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 137);

    fn server_negotiator(name_servers: NameServers) -> IpcpNegotiator {
        IpcpNegotiator::server(
            IpcpServerConfig {
                local_address: Some(LOCAL),
                name_servers,
            },
            Box::new(FixedAddress(Some(CLIENT_ADDR))),
        )
    }

    /// A server automaton that has sent its Configure-Request.
    fn server_sends_configure_request(
        negotiator: IpcpNegotiator,
    ) -> (Fsm<IpcpNegotiator>, Instant) {
        let now = Instant::now();
        let mut server = Fsm::new(negotiator, FsmConfig::default());
        server.open(now);
        server.up(now);
        assert_eq!(server.poll_transmit().as_deref(), Some(&SERVER_CONFREQ[..]));
        (server, now)
    }

    /// Feeds `packet` and returns what the automaton answers.
    fn answer(fsm: &mut Fsm<IpcpNegotiator>, now: Instant, packet: &[u8]) -> Vec<Vec<u8>> {
        fsm.handle_packet(now, packet);
        std::iter::from_fn(|| fsm.poll_transmit()).collect()
    }

    /// A Configure-Request from the client with `options`, identifier `id`.
    fn client_request(id: u8, options: &[IpcpOption<'_>]) -> Vec<u8> {
        let mut buf = [0u8; 128];
        let mut w = ConfigPacketWriter::new(&mut buf, Code::ConfigureRequest, id).unwrap();
        for option in options {
            w.push(option).unwrap();
        }
        let n = w.finish();
        buf[..n].to_vec()
    }

    fn events(fsm: &mut Fsm<IpcpNegotiator>) -> Vec<Event<IpcpEvent>> {
        std::iter::from_fn(|| fsm.poll_event()).collect()
    }

    #[test]
    fn server_reproduces_reference_session() {
        let (mut server, now) =
            server_sends_configure_request(server_negotiator(NameServers::default()));
        // VJ is rejected; only the Reject goes out although the address would be Nak'd.
        assert_eq!(
            answer(&mut server, now, &CLIENT_CONFREQ_1),
            [SERVER_CONFREJ]
        );
        assert!(answer(&mut server, now, &CLIENT_CONFACK).is_empty());
        assert_eq!(
            answer(&mut server, now, &CLIENT_CONFREQ_2),
            [SERVER_CONFNAK]
        );
        assert_eq!(
            answer(&mut server, now, &CLIENT_CONFREQ_3),
            [SERVER_CONFACK]
        );
        assert_eq!(server.state(), State::Opened);
        assert!(events(&mut server).contains(&Event::Up));
        assert_eq!(
            server.negotiator().negotiated(),
            Some(&IpcpResult {
                local_address: Some(LOCAL),
                peer_address: Some(CLIENT_ADDR),
                name_servers: NameServers::default(),
            })
        );
        assert_eq!(server.negotiator().assigned_address(), Some(CLIENT_ADDR));
    }

    #[test]
    fn assigner_called_once_with_hint() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = calls.clone();
        let assigner = move |hint: Option<Ipv4Addr>| {
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            assert_eq!(hint, Some(Ipv4Addr::new(1, 2, 3, 4)));
            Some(CLIENT_ADDR)
        };
        let negotiator = IpcpNegotiator::server(
            IpcpServerConfig {
                local_address: Some(LOCAL),
                name_servers: NameServers::default(),
            },
            Box::new(assigner),
        );
        let (mut server, now) = server_sends_configure_request(negotiator);
        // A client asking for another address is Nak'd with the assigned one, every time.
        let wrong = client_request(1, &[IpcpOption::IpAddress(Ipv4Addr::new(1, 2, 3, 4))]);
        let nak = client_request(1, &[IpcpOption::IpAddress(CLIENT_ADDR)]);
        let mut expected_nak = nak.clone();
        expected_nak[0] = Code::ConfigureNak.into();
        assert_eq!(answer(&mut server, now, &wrong), [expected_nak.clone()]);
        let mut wrong2 = wrong.clone();
        wrong2[1] = 2;
        expected_nak[1] = 2;
        assert_eq!(answer(&mut server, now, &wrong2), [expected_nak]);
        assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[test]
    fn no_address_terminates() {
        let negotiator = IpcpNegotiator::server(
            IpcpServerConfig {
                local_address: Some(LOCAL),
                name_servers: NameServers::default(),
            },
            Box::new(FixedAddress(None)),
        );
        let (mut server, now) = server_sends_configure_request(negotiator);
        let sent = answer(&mut server, now, &CLIENT_CONFREQ_2);
        let events = events(&mut server);
        assert!(events.contains(&Event::Negotiator(IpcpEvent::NoAddress)));
        assert!(events.contains(&Event::Failed(Failure::NotConverging(3))));
        assert!(
            sent.iter()
                .any(|p| p[0] == u8::from(Code::TerminateRequest)),
            "the automaton terminates: {sent:02x?}"
        );
        assert_eq!(server.negotiator().assigned_address(), None);
        assert_eq!(
            IpcpEvent::NoAddress.to_string(),
            "no address available for the peer"
        );
    }

    #[test]
    fn server_naks_windows_name_server_request() {
        let (mut server, now) = server_sends_configure_request(server_negotiator(NameServers {
            primary_dns: Some(DNS1),
            secondary_dns: Some(DNS2),
            primary_nbns: Some(WINS1),
            secondary_nbns: None,
        }));
        // Windows: addr, ms-dns1, ms-wins1, ms-dns2, ms-wins2, all 0.0.0.0.
        let zero = UNSPECIFIED;
        let windows = [
            IpcpOption::IpAddress(zero),
            IpcpOption::PrimaryDns(zero),
            IpcpOption::PrimaryNbns(zero),
            IpcpOption::SecondaryDns(zero),
            IpcpOption::SecondaryNbns(zero),
        ];
        // Secondary NBNS is not configured: rejected first.
        let reject = answer(&mut server, now, &client_request(1, &windows));
        let mut expected = client_request(1, &[IpcpOption::SecondaryNbns(zero)]);
        expected[0] = Code::ConfigureReject.into();
        assert_eq!(reject, [expected]);
        // Without it, every zero is Nak'd with the configured value.
        let nak = answer(&mut server, now, &client_request(2, &windows[..4]));
        let given = [
            IpcpOption::IpAddress(CLIENT_ADDR),
            IpcpOption::PrimaryDns(DNS1),
            IpcpOption::PrimaryNbns(WINS1),
            IpcpOption::SecondaryDns(DNS2),
        ];
        let mut expected = client_request(2, &given);
        expected[0] = Code::ConfigureNak.into();
        assert_eq!(nak, [expected]);
        // The client takes them; Ack.
        let mut expected = client_request(3, &given);
        expected[0] = Code::ConfigureAck.into();
        assert_eq!(
            answer(&mut server, now, &client_request(3, &given)),
            [expected]
        );
        // Complete with the client's Ack of our request, and read the result.
        assert!(answer(&mut server, now, &CLIENT_CONFACK).is_empty());
        let result = server.negotiator().negotiated().unwrap();
        assert_eq!(result.peer_address, Some(CLIENT_ADDR));
        assert_eq!(
            result.name_servers,
            NameServers {
                primary_dns: Some(DNS1),
                secondary_dns: Some(DNS2),
                primary_nbns: Some(WINS1),
                secondary_nbns: None,
            }
        );
    }

    #[test]
    fn server_rejects_unconfigured_and_unknown_options() {
        let (mut server, now) =
            server_sends_configure_request(server_negotiator(NameServers::default()));
        let options = [
            IpcpOption::IpAddresses {
                source: UNSPECIFIED,
                destination: LOCAL,
            },
            IpcpOption::IpAddress(CLIENT_ADDR),
            IpcpOption::PrimaryDns(UNSPECIFIED),
            IpcpOption::SecondaryNbns(UNSPECIFIED),
            IpcpOption::IpCompressionProtocol {
                protocol: crate::wire::ipcp::PROTOCOL_VJ_OLD,
                data: &[],
            },
            IpcpOption::Unknown {
                kind: 0x42,
                data: &[1, 2],
            },
        ];
        let reply = answer(&mut server, now, &client_request(7, &options));
        let rejected: Vec<_> = options.iter().copied().filter(|o| o.kind() != 3).collect();
        let mut expected = client_request(7, &rejected);
        expected[0] = Code::ConfigureReject.into();
        assert_eq!(reply, [expected]);
    }

    #[test]
    fn server_rejects_malformed_and_duplicate_options() {
        let (mut server, now) =
            server_sends_configure_request(server_negotiator(NameServers::default()));
        // IP-Address with 3 octets of data (typed parse fails): rejected as received. Then
        // a duplicate IP-Address, then a length running past the end.
        let request = [
            0x01, 0x05, 0x00, 0x14, 0x03, 0x05, 1, 2, 3, 0x03, 0x06, 192, 168, 77, 10, 0x03, 0x06,
            192, 168, 77,
        ];
        let bad: [u8; 20] = request;
        let reply = answer(&mut server, now, &bad[..]);
        // The last option claims 6 octets but only 5 remain: from there on rejected raw.
        let expected = [
            0x04, 0x05, 0x00, 0x0e, 0x03, 0x05, 1, 2, 3, 0x03, 0x06, 192, 168, 77,
        ];
        assert_eq!(reply, [expected.to_vec()]);

        let dup = client_request(
            6,
            &[
                IpcpOption::IpAddress(CLIENT_ADDR),
                IpcpOption::IpAddress(CLIENT_ADDR),
            ],
        );
        let mut expected = client_request(6, &[IpcpOption::IpAddress(CLIENT_ADDR)]);
        expected[0] = Code::ConfigureReject.into();
        assert_eq!(answer(&mut server, now, &dup), [expected]);
    }

    #[test]
    fn server_asks_client_without_address_once() {
        let (mut server, now) =
            server_sends_configure_request(server_negotiator(NameServers::default()));
        let empty = client_request(1, &[]);
        let mut nak = client_request(1, &[IpcpOption::IpAddress(CLIENT_ADDR)]);
        nak[0] = Code::ConfigureNak.into();
        assert_eq!(answer(&mut server, now, &empty), [nak]);
        // Asked again without it: Acked; the client still gets the assignment.
        let empty = client_request(2, &[]);
        let mut ack = empty.clone();
        ack[0] = Code::ConfigureAck.into();
        assert_eq!(answer(&mut server, now, &empty), [ack]);
        assert!(answer(&mut server, now, &CLIENT_CONFACK).is_empty());
        assert_eq!(
            server.negotiator().negotiated().unwrap().peer_address,
            Some(CLIENT_ADDR)
        );
    }

    #[test]
    fn client_sends_reference_request_shape() {
        // Our client does not ask for VJ: its first request is the reference's second.
        let now = Instant::now();
        let mut client = Fsm::new(
            IpcpNegotiator::client(IpcpClientConfig::default()),
            FsmConfig::default(),
        );
        client.open(now);
        client.up(now);
        let mut first = CLIENT_CONFREQ_2;
        first[1] = 1;
        assert_eq!(client.poll_transmit().as_deref(), Some(&first[..]));
        // The server's request is Acked as the reference client did.
        assert_eq!(answer(&mut client, now, &SERVER_CONFREQ), [CLIENT_CONFACK]);
        // The server's Nak gives us our address; the next request asks for it.
        let mut nak = SERVER_CONFNAK;
        nak[1] = 1;
        let mut req = CLIENT_CONFREQ_3;
        req[1] = 2;
        assert_eq!(answer(&mut client, now, &nak), [req]);
        let mut ack = SERVER_CONFACK;
        ack[1] = 2;
        assert!(answer(&mut client, now, &ack).is_empty());
        assert_eq!(client.state(), State::Opened);
        assert_eq!(
            client.negotiator().negotiated(),
            Some(&IpcpResult {
                local_address: Some(CLIENT_ADDR),
                peer_address: Some(LOCAL),
                name_servers: NameServers::default(),
            })
        );
    }

    #[test]
    fn client_rejects_server_zero_address_and_name_servers() {
        let now = Instant::now();
        let mut client = Fsm::new(
            IpcpNegotiator::client(IpcpClientConfig::default()),
            FsmConfig::default(),
        );
        client.open(now);
        client.up(now);
        let _ = client.poll_transmit();
        let request = client_request(
            4,
            &[
                IpcpOption::IpAddress(UNSPECIFIED),
                IpcpOption::PrimaryDns(DNS1),
            ],
        );
        let mut expected = request.clone();
        expected[0] = Code::ConfigureReject.into();
        assert_eq!(answer(&mut client, now, &request), [expected]);
    }

    #[test]
    fn client_discards_bad_replies() {
        let now = Instant::now();
        let mut client = Fsm::new(
            IpcpNegotiator::client(IpcpClientConfig::default()),
            FsmConfig::default(),
        );
        client.open(now);
        client.up(now);
        let _ = client.poll_transmit();
        // A Reject of an option we did not send, and one with other data than ours.
        for options in [
            &[IpcpOption::PrimaryDns(UNSPECIFIED)][..],
            &[IpcpOption::IpAddress(LOCAL)][..],
        ] {
            let mut reject = client_request(1, options);
            reject[0] = Code::ConfigureReject.into();
            assert!(answer(&mut client, now, &reject).is_empty());
        }
        // A malformed Nak.
        assert!(answer(&mut client, now, &[0x03, 0x01, 0x00, 0x06, 0x03, 0x09]).is_empty());
        assert!(client.stats().discarded_replies >= 3);
        assert_eq!(client.state(), State::ReqSent);
    }

    #[test]
    fn client_without_address_fails() {
        let now = Instant::now();
        let mut client = Fsm::new(
            IpcpNegotiator::client(IpcpClientConfig::default()),
            FsmConfig::default(),
        );
        client.open(now);
        client.up(now);
        let _ = client.poll_transmit();
        let mut reject = CLIENT_CONFREQ_2;
        reject[0] = Code::ConfigureReject.into();
        reject[1] = 1;
        // Next request is empty; the server Acks it and its own request is Acked.
        assert_eq!(
            answer(&mut client, now, &reject),
            [vec![0x01, 0x02, 0x00, 0x04]]
        );
        assert_eq!(answer(&mut client, now, &SERVER_CONFREQ), [CLIENT_CONFACK]);
        let _ = answer(&mut client, now, &[0x02, 0x02, 0x00, 0x04]);
        let events = events(&mut client);
        assert!(events.contains(&Event::Negotiator(IpcpEvent::NoLocalAddress)));
        assert_ne!(client.state(), State::Opened);
    }

    #[test]
    fn client_and_server_converge() {
        let server = server_negotiator(NameServers {
            primary_dns: Some(DNS1),
            secondary_dns: Some(DNS2),
            primary_nbns: None,
            secondary_nbns: None,
        });
        let client = IpcpNegotiator::client(IpcpClientConfig {
            requested_address: None,
            request_dns: true,
            request_nbns: true,
        });
        let mut pair = Pair::new(server, client);
        pair.start();
        pair.drive();
        assert!(pair.both_opened());
        let client = *pair.client.negotiator().negotiated().unwrap();
        let server = *pair.server.negotiator().negotiated().unwrap();
        assert_eq!(client.local_address, Some(CLIENT_ADDR));
        assert_eq!(client.peer_address, Some(LOCAL));
        assert_eq!(server.local_address, Some(LOCAL));
        assert_eq!(server.peer_address, Some(CLIENT_ADDR));
        let given = NameServers {
            primary_dns: Some(DNS1),
            secondary_dns: Some(DNS2),
            primary_nbns: None,
            secondary_nbns: None,
        };
        assert_eq!(client.name_servers, given);
        assert_eq!(server.name_servers, given);
        // NBNS was rejected, so the client stopped asking: the last request has no 130/132.
        let last = pair
            .sent_by(From::Client)
            .into_iter()
            .rev()
            .find(|p| p[0] == 1)
            .unwrap();
        assert!(!last.contains(&130) && !last.contains(&132), "{last:02x?}");
        assert!(pair.server_events.contains(&Event::Up));
        assert!(pair.client_events.contains(&Event::Up));
    }

    #[test]
    fn client_with_configured_address_is_corrected() {
        let mut pair = Pair::new(
            server_negotiator(NameServers::default()),
            IpcpNegotiator::client(IpcpClientConfig {
                requested_address: Some(Ipv4Addr::new(172, 16, 0, 9)),
                ..IpcpClientConfig::default()
            }),
        );
        pair.start();
        pair.drive();
        assert!(pair.both_opened());
        assert_eq!(
            pair.client.negotiator().negotiated().unwrap().local_address,
            Some(CLIENT_ADDR)
        );
    }

    #[test]
    fn down_forgets_result_but_keeps_assignment() {
        let mut pair = Pair::new(
            server_negotiator(NameServers::default()),
            IpcpNegotiator::client(IpcpClientConfig::default()),
        );
        pair.start();
        pair.drive();
        assert!(pair.both_opened());
        pair.server.down();
        assert_eq!(pair.server.negotiator().negotiated(), None);
        assert_eq!(
            pair.server.negotiator().assigned_address(),
            Some(CLIENT_ADDR)
        );
    }

    proptest::proptest! {
        #[test]
        fn server_never_panics_on_arbitrary_packets(
            packets in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 0..12),
        ) {
            let (mut server, now) = server_sends_configure_request(server_negotiator(
                NameServers { primary_dns: Some(DNS1), ..NameServers::default() },
            ));
            for mut packet in packets {
                // Mostly Configure packets, so the negotiator sees them.
                if let Some(code) = packet.first_mut() {
                    *code %= 8;
                }
                server.handle_packet(now, &packet);
                while server.poll_transmit().is_some() {}
                while server.poll_event().is_some() {}
            }
        }
    }
}
