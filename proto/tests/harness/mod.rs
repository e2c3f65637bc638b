//! Two endpoints over a simulated network with a virtual clock (quinn-proto's `Pair` and
//! `drive()` idea): a client and a server PPTP control connection joined by a byte pipe,
//! and, once the call is up, a client and a server [`Session`] whose GRE packets cross a
//! link with a fault plan under the test's control (drop the Nth packet each way,
//! duplicate, reorder, drop everything for a while).
//!
//! A test dials as the real client does: SCCRQ, OCRQ (the harness answers the server's
//! `CallRequested` with `accept_call`, and places the call when the client's control
//! connection is up), then PPP. Session terminations are turned into the control messages
//! a real daemon sends (server: Call-Disconnect-Notify; client: Call-Clear-Request), and
//! control events into [`Session::lower_down`].

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use xpptp_proto::ppp::auth::{Lookup, Password, SecretAnswer, SecretRequest, StoredSecret};
use xpptp_proto::ppp::ipcp::FixedAddress;
use xpptp_proto::ppp::link::{self, Link, LinkRandom};
use xpptp_proto::pptp::control::{self, Connection, Event as CtrlEvent, OutgoingCallParams};
use xpptp_proto::session::{Cause, Established, Session, SessionEvent, SessionParams};
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ppp::PppFrame;

pub const SERVER_OUTER: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
pub const CLIENT_OUTER: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 2);
pub const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
pub const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 10);
pub const USER: &str = "pptpuser";
pub const PASSWORD: &str = "Pptp-Test-Pass-1";
/// The server's Call ID (Poptop answers with 0; we pick something visible).
pub const SERVER_CALL_ID: u16 = 0x4000;
/// The client's Call ID.
pub const CLIENT_CALL_ID: u16 = 0x73ad;

/// One-way latency of the simulated network.
pub const LATENCY: Duration = Duration::from_millis(5);

/// Direction of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    ClientToServer,
    ServerToClient,
}

/// What happens to GRE packets in one direction. Packets are numbered from 1 in the order
/// they are sent.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Drop these packets.
    pub drop: BTreeSet<usize>,
    /// Deliver these twice.
    pub duplicate: BTreeSet<usize>,
    /// Delay these by 3 × latency, so later ones overtake them.
    pub delay: BTreeSet<usize>,
    /// Drop everything sent in this time span (relative to the base instant).
    pub blackout: Option<(Duration, Duration)>,
}

/// The two ends' settings.
pub struct Setup {
    pub server: link::ServerConfig,
    pub client: link::ClientConfig,
    /// The users the server knows: (name, password).
    pub users: Vec<(String, String)>,
    /// The client address the server assigns (`None`: pool empty).
    pub pool: Option<Ipv4Addr>,
    pub server_seed: [u8; 32],
    pub client_seed: [u8; 32],
}

impl Default for Setup {
    /// Poptop's configuration against pptp-linux's, as in the reference session.
    fn default() -> Setup {
        let mut server = link::ServerConfig::default();
        server.ipcp.local_address = Some(SERVER_TUNNEL);
        let mut client = link::ClientConfig::default();
        client.credentials.user = USER.as_bytes().to_vec();
        client.credentials.password = Password::new(PASSWORD);
        Setup {
            server,
            client,
            users: vec![(USER.to_string(), PASSWORD.to_string())],
            pool: Some(CLIENT_TUNNEL),
            server_seed: [0x5e; 32],
            client_seed: [0xc1; 32],
        }
    }
}

/// A secret store over a fixed list.
pub fn secrets(
    users: Vec<(String, String)>,
) -> Box<dyn xpptp_proto::ppp::auth::SecretLookup + Send> {
    Box::new(move |request: &SecretRequest<'_>| {
        let answer = users
            .iter()
            .find(|(name, _)| name.as_bytes() == request.user)
            .map_or(SecretAnswer::UnknownUser, |(_, password)| {
                SecretAnswer::Secret(StoredSecret::Password(Password::new(password.clone())))
            });
        Lookup::Ready(answer)
    })
}

/// One end: its control connection, its session and what they reported.
pub struct End {
    pub ctrl: Connection,
    pub session: Option<Session>,
    pub events: Vec<SessionEvent>,
    pub ctrl_events: Vec<CtrlEvent>,
    /// TCP closed by this end (no more bytes flow either way).
    pub tcp_closed: bool,
    link: Option<Link>,
}

impl End {
    pub fn established(&self) -> Option<&Established> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Established(e) => Some(&**e),
            _ => None,
        })
    }

    pub fn terminated(&self) -> Option<&Cause> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Terminated(c) => Some(c),
            _ => None,
        })
    }

    pub fn authenticated(&self) -> Option<&[u8]> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Authenticated { user } => Some(&user[..]),
            _ => None,
        })
    }

    pub fn session(&self) -> &Session {
        self.session.as_ref().expect("no session yet")
    }
}

/// A packet in flight.
struct InFlight {
    at: Instant,
    order: u64,
    dir: Dir,
    bytes: Vec<u8>,
}

/// Client and server with everything between them.
pub struct Pair {
    pub base: Instant,
    pub now: Instant,
    pub client: End,
    pub server: End,
    /// Control bytes on their way, each direction.
    to_server: VecDeque<u8>,
    to_client: VecDeque<u8>,
    flight: Vec<InFlight>,
    order: u64,
    pub faults_c2s: Faults,
    pub faults_s2c: Faults,
    /// GRE packets sent so far, each direction (the fault plan counts with these).
    pub sent_c2s: usize,
    pub sent_s2c: usize,
    /// Every GRE packet sent, as sent (before faults), each direction.
    pub log_c2s: Vec<Vec<u8>>,
    pub log_s2c: Vec<Vec<u8>>,
    /// Whether the client hangs up like pptp-linux (CCRQ then TCP close) after its
    /// session ends.
    pub client_closes_tcp_after_clear: bool,
}

impl Pair {
    /// Both ends, the client's SCCRQ queued.
    pub fn new(setup: Setup) -> Pair {
        let base = Instant::now();
        let server_link = Link::server(
            setup.server,
            secrets(setup.users),
            Box::new(FixedAddress(setup.pool)),
            LinkRandom::from_seed(setup.server_seed),
        );
        let client_link = Link::client(setup.client, LinkRandom::from_seed(setup.client_seed));
        Pair {
            base,
            now: base,
            client: End {
                ctrl: Connection::client(control::Config::pptp_linux(), base),
                session: None,
                events: Vec::new(),
                ctrl_events: Vec::new(),
                tcp_closed: false,
                link: Some(client_link),
            },
            server: End {
                ctrl: Connection::server(control::Config::default(), base),
                session: None,
                events: Vec::new(),
                ctrl_events: Vec::new(),
                tcp_closed: false,
                link: Some(server_link),
            },
            to_server: VecDeque::new(),
            to_client: VecDeque::new(),
            flight: Vec::new(),
            order: 0,
            faults_c2s: Faults::default(),
            faults_s2c: Faults::default(),
            sent_c2s: 0,
            sent_s2c: 0,
            log_c2s: Vec::new(),
            log_s2c: Vec::new(),
            client_closes_tcp_after_clear: false,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Moves every output to where it goes; returns whether anything moved.
    fn flush(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        // Control connections: bytes into the pipes, events acted on.
        while let Some(bytes) = self.client.ctrl.poll_transmit() {
            moved = true;
            if !self.client.tcp_closed && !self.server.tcp_closed {
                self.to_server.extend(bytes);
            }
        }
        while let Some(bytes) = self.server.ctrl.poll_transmit() {
            moved = true;
            if !self.client.tcp_closed && !self.server.tcp_closed {
                self.to_client.extend(bytes);
            }
        }
        while let Some(event) = self.client.ctrl.poll_event() {
            moved = true;
            self.client_ctrl_event(event);
        }
        while let Some(event) = self.server.ctrl.poll_event() {
            moved = true;
            self.server_ctrl_event(event);
        }
        // Sessions: GRE into the network, events acted on.
        for dir in [Dir::ClientToServer, Dir::ServerToClient] {
            loop {
                let end = match dir {
                    Dir::ClientToServer => &mut self.client,
                    Dir::ServerToClient => &mut self.server,
                };
                let Some(session) = end.session.as_mut() else {
                    break;
                };
                let Some(packet) = session.poll_transmit() else {
                    break;
                };
                moved = true;
                self.send_gre(dir, packet);
            }
        }
        let client_events: Vec<_> = self
            .client
            .session
            .as_mut()
            .map(|s| std::iter::from_fn(|| s.poll_event()).collect())
            .unwrap_or_default();
        for event in client_events {
            moved = true;
            self.client_session_event(event);
        }
        let server_events: Vec<_> = self
            .server
            .session
            .as_mut()
            .map(|s| std::iter::from_fn(|| s.poll_event()).collect())
            .unwrap_or_default();
        for event in server_events {
            moved = true;
            self.server_session_event(event);
        }
        // Deliver the control bytes (TCP: reliable, in order, instant here).
        if !self.to_server.is_empty() {
            moved = true;
            let bytes: Vec<u8> = self.to_server.drain(..).collect();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let taken = self.server.ctrl.handle_bytes(now, rest);
                rest = &rest[taken..];
                while let Some(b) = self.server.ctrl.poll_transmit() {
                    self.to_client.extend(b);
                }
                while let Some(e) = self.server.ctrl.poll_event() {
                    self.server_ctrl_event(e);
                }
            }
        }
        if !self.to_client.is_empty() {
            moved = true;
            let bytes: Vec<u8> = self.to_client.drain(..).collect();
            let mut rest = &bytes[..];
            while !rest.is_empty() {
                let taken = self.client.ctrl.handle_bytes(now, rest);
                rest = &rest[taken..];
                while let Some(b) = self.client.ctrl.poll_transmit() {
                    self.to_server.extend(b);
                }
                while let Some(e) = self.client.ctrl.poll_event() {
                    self.client_ctrl_event(e);
                }
            }
        }
        moved
    }

    fn send_gre(&mut self, dir: Dir, packet: Vec<u8>) {
        let (count, faults, log) = match dir {
            Dir::ClientToServer => (&mut self.sent_c2s, &self.faults_c2s, &mut self.log_c2s),
            Dir::ServerToClient => (&mut self.sent_s2c, &self.faults_s2c, &mut self.log_s2c),
        };
        *count += 1;
        let n = *count;
        log.push(packet.clone());
        let since = self.now - self.base;
        if faults.drop.contains(&n)
            || faults
                .blackout
                .is_some_and(|(from, to)| since >= from && since < to)
        {
            return;
        }
        let delay = if faults.delay.contains(&n) {
            LATENCY * 3
        } else {
            LATENCY
        };
        let copies = if faults.duplicate.contains(&n) { 2 } else { 1 };
        for _ in 0..copies {
            self.order += 1;
            self.flight.push(InFlight {
                at: self.now + delay,
                order: self.order,
                dir,
                bytes: packet.clone(),
            });
        }
    }

    fn client_ctrl_event(&mut self, event: CtrlEvent) {
        let now = self.now;
        self.client.ctrl_events.push(event);
        match event {
            CtrlEvent::Established(_) => {
                self.client
                    .ctrl
                    .place_call(now, CLIENT_CALL_ID, OutgoingCallParams::default())
                    .unwrap();
            }
            CtrlEvent::CallEstablished(call) => {
                let mut params = SessionParams::from_call(&call, SERVER_OUTER);
                params.first_seq = 1; // pptp-linux starts at 1
                let link = self.client.link.take().expect("one call per pair");
                self.client.session = Some(Session::new(now, params, link));
            }
            CtrlEvent::CallCleared { cause, .. } => {
                if let Some(s) = self.client.session.as_mut() {
                    s.lower_down(now, Cause::from_call_clear(&cause));
                }
            }
            CtrlEvent::Closed(cause) => {
                if let Some(s) = self.client.session.as_mut() {
                    s.lower_down(now, Cause::from_connection_close(&cause));
                }
            }
            _ => {}
        }
    }

    fn server_ctrl_event(&mut self, event: CtrlEvent) {
        let now = self.now;
        self.server.ctrl_events.push(event);
        match event {
            CtrlEvent::CallRequested(ocrq) => {
                self.server
                    .ctrl
                    .accept_call(now, ocrq.call_id, SERVER_CALL_ID, ocrq.recv_window_size)
                    .unwrap();
            }
            CtrlEvent::CallEstablished(call) => {
                let params = SessionParams::from_call(&call, CLIENT_OUTER);
                let link = self.server.link.take().expect("one call per pair");
                self.server.session = Some(Session::new(now, params, link));
            }
            CtrlEvent::CallCleared { cause, .. } => {
                if let Some(s) = self.server.session.as_mut() {
                    s.lower_down(now, Cause::from_call_clear(&cause));
                }
            }
            CtrlEvent::Closed(cause) => {
                if let Some(s) = self.server.session.as_mut() {
                    s.lower_down(now, Cause::from_connection_close(&cause));
                }
            }
            _ => {}
        }
    }

    fn client_session_event(&mut self, event: SessionEvent) {
        let now = self.now;
        if let SessionEvent::Terminated(_) = &event {
            // pptp-linux: Call-Clear-Request, then (optionally) TCP closed at once.
            let _ = self.client.ctrl.clear_call(now, CLIENT_CALL_ID);
            if self.client_closes_tcp_after_clear {
                self.flush_client_ctrl();
                self.close_tcp_from_client();
            }
        }
        self.client.events.push(event);
    }

    fn server_session_event(&mut self, event: SessionEvent) {
        let now = self.now;
        if let SessionEvent::Terminated(cause) = &event {
            let _ =
                self.server
                    .ctrl
                    .disconnect_call(now, SERVER_CALL_ID, cause.disconnect_result());
        }
        self.server.events.push(event);
    }

    fn flush_client_ctrl(&mut self) {
        while let Some(bytes) = self.client.ctrl.poll_transmit() {
            self.to_server.extend(bytes);
        }
        let bytes: Vec<u8> = self.to_server.drain(..).collect();
        let now = self.now;
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let taken = self.server.ctrl.handle_bytes(now, rest);
            if taken == 0 {
                break;
            }
            rest = &rest[taken..];
        }
    }

    /// The client closes TCP (pptp-linux after its CCRQ): the server sees the close.
    pub fn close_tcp_from_client(&mut self) {
        let now = self.now;
        self.client.tcp_closed = true;
        self.server.ctrl.handle_tcp_closed(now);
        self.client.ctrl.handle_tcp_closed(now);
    }

    /// Delivers the GRE packets due now; returns whether any was.
    fn deliver(&mut self) -> bool {
        let now = self.now;
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.flight.len() {
            if self.flight[i].at <= now {
                due.push(self.flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|p| (p.at, p.order));
        let any = !due.is_empty();
        for packet in due {
            let end = match packet.dir {
                Dir::ClientToServer => &mut self.server,
                Dir::ServerToClient => &mut self.client,
            };
            if let Some(session) = end.session.as_mut() {
                session.handle_gre(now, &packet.bytes);
            }
            self.flush();
        }
        any
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.flight.iter().map(|p| p.at).min(),
            self.client.ctrl.poll_timeout(),
            self.server.ctrl.poll_timeout(),
            self.client.session.as_ref().and_then(Session::poll_timeout),
            self.server.session.as_ref().and_then(Session::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        if self.client.ctrl.poll_timeout().is_some_and(|t| t <= now) {
            self.client.ctrl.handle_timeout(now);
        }
        if self.server.ctrl.poll_timeout().is_some_and(|t| t <= now) {
            self.server.ctrl.handle_timeout(now);
        }
        for end in [&mut self.client, &mut self.server] {
            if let Some(s) = end.session.as_mut()
                && s.poll_timeout().is_some_and(|t| t <= now)
            {
                s.handle_timeout(now);
            }
        }
    }

    /// One step: flush, deliver what is due, fire due timers; else advance the clock to
    /// the next deadline if it is before `limit`. Returns false when nothing is left
    /// before `limit`.
    fn step(&mut self, limit: Instant) -> bool {
        let mut moved = self.flush();
        moved |= self.deliver();
        self.fire_timers();
        moved |= self.flush();
        if moved {
            return true;
        }
        match self.next_deadline() {
            Some(t) if t <= limit => {
                self.now = self.now.max(t);
                true
            }
            _ => false,
        }
    }

    /// Runs until both ends are quiet: nothing in flight and no timer due within 10 s
    /// (keepalives are further away).
    pub fn drive(&mut self) {
        for _ in 0..100_000 {
            let limit = self.now + Duration::from_secs(10);
            if !self.step(limit) {
                return;
            }
        }
        panic!("drive() did not settle");
    }

    /// Runs the clock for `duration`, keepalives included.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        for _ in 0..1_000_000 {
            if !self.step(end) {
                self.now = self.now.max(end);
                return;
            }
        }
        panic!("run_for() did not settle");
    }

    /// Drives until `done` holds (or quiet).
    pub fn drive_until(&mut self, mut done: impl FnMut(&Pair) -> bool) {
        for _ in 0..100_000 {
            if done(self) {
                return;
            }
            let limit = self.now + Duration::from_secs(120);
            if !self.step(limit) {
                return;
            }
        }
    }

    // ---------------------------------------------------------------- protocol steps

    /// SCCRQ/SCCRP, OCRQ/OCRP: both sessions exist afterwards.
    pub fn client_dials(&mut self) {
        self.drive_until(|p| p.client.session.is_some() && p.server.session.is_some());
        assert!(self.client.session.is_some(), "client call not established");
        assert!(self.server.session.is_some(), "server call not established");
    }

    /// The whole handshake: dial, then PPP until quiet.
    pub fn connect(&mut self) {
        self.client_dials();
        self.drive();
    }

    /// Both ends established, with agreeing Established events.
    pub fn assert_established(&self) -> (&Established, &Established) {
        let c = self.client.established().unwrap_or_else(|| {
            panic!(
                "client not established; events {:?}, phase {}",
                self.client.events,
                self.client.session().link().phase()
            )
        });
        let s = self.server.established().unwrap_or_else(|| {
            panic!(
                "server not established; events {:?}, phase {}",
                self.server.events,
                self.server.session().link().phase()
            )
        });
        assert_eq!(c.local_call_id, s.peer_call_id);
        assert_eq!(c.peer_call_id, s.local_call_id);
        assert_eq!(c.client_tunnel_address, s.client_tunnel_address);
        assert_eq!(c.server_tunnel_address, s.server_tunnel_address);
        // Keys cross-match: what one sends with the other receives with.
        assert_eq!(c.transmit, s.receive);
        assert_eq!(c.receive, s.transmit);
        (c, s)
    }

    /// The client hangs up with LCP Terminate (pppd on SIGTERM).
    pub fn client_terminates(&mut self, cause: Cause) {
        let now = self.now;
        self.client.session.as_mut().unwrap().close(now, cause);
    }

    /// The server terminates (operator, shutdown...).
    pub fn server_terminates(&mut self, cause: Cause) {
        let now = self.now;
        self.server.session.as_mut().unwrap().close(now, cause);
    }

    /// The client clears the call without LCP (Call-Clear-Request).
    pub fn client_sends_call_clear(&mut self) {
        let now = self.now;
        self.client.ctrl.clear_call(now, CLIENT_CALL_ID).unwrap();
    }

    /// Every PPP frame sent in a direction, as (protocol, payload).
    pub fn frames(&self, dir: Dir) -> Vec<(u16, Vec<u8>)> {
        let log = match dir {
            Dir::ClientToServer => &self.log_c2s,
            Dir::ServerToClient => &self.log_s2c,
        };
        log.iter()
            .filter_map(|bytes| {
                let gre = GrePacket::new_checked(&bytes[..]).ok()?;
                GreRepr::parse(&gre).ok()?;
                let payload = gre.payload();
                if payload.is_empty() {
                    return None;
                }
                let ppp = PppFrame::new_checked(payload).unwrap();
                Some((ppp.protocol_raw(), ppp.payload().to_vec()))
            })
            .collect()
    }
}

/// A peer made of raw frames: numbers GRE packets for a server session and reads its
/// answers, for tests that send what no client of ours would (Windows' requests).
pub struct RawPeer {
    pub now: Instant,
    pub session: Session,
    seq: u32,
    pub received: Vec<Vec<u8>>,
    pub events: Vec<SessionEvent>,
}

impl RawPeer {
    /// A server session for a raw peer.
    pub fn server(setup: Setup) -> RawPeer {
        let now = Instant::now();
        let link = Link::server(
            setup.server,
            secrets(setup.users),
            Box::new(FixedAddress(setup.pool)),
            LinkRandom::from_seed(setup.server_seed),
        );
        let params = SessionParams {
            local_call_id: SERVER_CALL_ID,
            peer_call_id: CLIENT_CALL_ID,
            peer_recv_window: 64,
            peer_address: CLIENT_OUTER,
            first_seq: 0,
            gre: Default::default(),
        };
        let mut peer = RawPeer {
            now,
            session: Session::new(now, params, link),
            seq: 1,
            received: Vec::new(),
            events: Vec::new(),
        };
        peer.collect();
        peer
    }

    fn collect(&mut self) {
        while let Some(packet) = self.session.poll_transmit() {
            let gre = GrePacket::new_checked(&packet[..]).unwrap();
            let repr = GreRepr::parse(&gre).unwrap();
            assert_eq!(repr.call_id, CLIENT_CALL_ID);
            if !gre.payload().is_empty() {
                self.received.push(gre.payload().to_vec());
            }
        }
        while let Some(event) = self.session.poll_event() {
            self.events.push(event);
        }
    }

    /// Sends one PPP frame; returns the frames the server answered with.
    pub fn send(&mut self, frame: &[u8]) -> Vec<Vec<u8>> {
        let repr = GreRepr {
            call_id: SERVER_CALL_ID,
            seq: Some(self.seq),
            ack: None,
            payload_len: frame.len() as u16,
        };
        self.seq += 1;
        let mut packet = vec![0u8; repr.buffer_len()];
        repr.emit(&mut GrePacket::new_unchecked(&mut packet[..]))
            .unwrap();
        packet[repr.header_len()..].copy_from_slice(frame);
        let before = self.received.len();
        self.session.handle_gre(self.now, &packet);
        self.collect();
        self.received[before..].to_vec()
    }

    /// Hands arbitrary bytes to the session as a GRE packet.
    pub fn send_gre(&mut self, bytes: &[u8]) {
        self.session.handle_gre(self.now, bytes);
        self.collect();
    }

    /// Advances the clock and fires the timers.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        for _ in 0..1000 {
            match self.session.poll_timeout() {
                Some(t) if t <= self.now => {
                    self.session.handle_timeout(self.now);
                    self.collect();
                }
                _ => break,
            }
        }
        self.collect();
    }
}
