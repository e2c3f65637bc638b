//! The peer: authenticates itself to the server.

use std::fmt;
use std::time::{Duration, Instant};

use super::{
    Event, FailureCause, Method, Nonces, Outputs, Password, Restart, Stats, Transmit,
    chap_md5_response, emit_chap, emit_pap, restart_timer,
};
use crate::crypto::mppe_keys::{MasterKey, Role, SessionKeys};
use crate::crypto::mschap::{self, AuthenticatorResponse, NtHash};
use crate::wire::chap::{
    self, MsChapV1Failure, MsChapV1Response, MsChapV2Failure, MsChapV2Response,
};
use crate::wire::pap;
use crate::wire::ppp::Protocol;

/// The peer's settings; `Default` is what pppd (pptp-linux's) does, with empty
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// pppd `user`: our CHAP Name / PAP Peer-ID (may carry a `DOMAIN\` prefix).
    pub user: Vec<u8>,
    /// pppd `password` (or our line of chap-secrets).
    pub password: Password,
    /// pppd `chap-response-interval` / `pap-restart` (3 s): Response or
    /// Authenticate-Request retransmission interval.
    pub restart_interval: Duration,
    /// pppd `chap-response-failure` / `pap-max-authreq` (10): transmissions of one
    /// Response or Request before giving up.
    pub max_transmits: u32,
    /// Overall limit from [`Client::start`] to a verdict, waiting for the Challenge
    /// included (30 s, as the server's; pppd's client has none for CHAP).
    pub timeout: Duration,
    /// How many failures we try again after (pppd: 0, it gives up; Windows asks the user
    /// again): an MS-CHAP Failure with R=1 is answered with a new Response to its C=, a
    /// CHAP-MD5 Failure makes us wait for a new Challenge, a PAP Nak makes us send a new
    /// Request. Change the password with [`Client::set_password`] before passing the
    /// Failure in, to retry with another.
    pub max_retries: u32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            user: Vec::new(),
            password: Password::default(),
            restart_interval: Duration::from_secs(3),
            max_transmits: 10,
            timeout: Duration::from_secs(30),
            max_retries: 0,
        }
    }
}

/// What the server's verdict will be checked against.
enum Expect {
    V2 {
        authenticator_response: AuthenticatorResponse,
        keys: SessionKeys,
    },
    V1 {
        keys: SessionKeys,
    },
    Plain,
}

enum State {
    Idle,
    /// CHAP: no Challenge yet.
    AwaitingChallenge,
    /// Our Response (or PAP Request) `packet` with `identifier` is out.
    Sent {
        identifier: u8,
        challenge: Vec<u8>,
        packet: Vec<u8>,
        transmits: u32,
        retransmit_at: Option<Instant>,
        expect: Expect,
    },
    Succeeded,
    Failed,
}

/// The peer (client role) of one link, for one method.
///
/// Life: [`new`](Self::new) once LCP has agreed on the method, [`start`](Self::start) when
/// LCP is Opened (PAP: sends the Authenticate-Request), then
/// [`handle_packet`](Self::handle_packet) for every packet of [`Method::protocol`] and
/// [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout). After
/// each input drain [`poll_transmit`](Self::poll_transmit), then
/// [`poll_event`](Self::poll_event).
///
/// A Challenge repeated with the identifier and value we answered gets the same Response
/// (the server lost it); a new one gets a new Response. Challenges after the verdict
/// (RFC 1994 re-authentication) are ignored.
pub struct Client {
    config: ClientConfig,
    method: Method,
    nonces: Option<Nonces>,
    state: State,
    deadline: Option<Instant>,
    retries: u32,
    outputs: Outputs,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Idle => "idle",
            State::AwaitingChallenge => "awaiting-challenge",
            State::Sent { .. } => "sent",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
        };
        f.debug_struct("Client")
            .field("method", &self.method)
            .field("state", &state)
            .field("deadline", &self.deadline)
            .field("stats", &self.outputs.stats)
            .finish()
    }
}

impl Client {
    /// A client for `method`, idle until [`start`](Self::start).
    pub fn new(config: ClientConfig, method: Method) -> Client {
        Client {
            config,
            method,
            nonces: None,
            state: State::Idle,
            deadline: None,
            retries: 0,
            outputs: Outputs::default(),
        }
    }

    /// The method in use.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Counters of ignored packets and dropped outputs.
    pub fn stats(&self) -> Stats {
        self.outputs.stats
    }

    /// Whether a verdict (success or failure) has been reached.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Succeeded | State::Failed)
    }

    /// Whether the server accepted us (and, for MS-CHAPv2, proved it knows the password).
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Succeeded)
    }

    /// Replaces the password for the next Response (a retry after an MS-CHAP Failure
    /// with R=1, as a Windows user would type a new one).
    pub fn set_password(&mut self, password: Password) {
        self.config.password = password;
    }

    /// LCP is Opened: CHAP waits for the Challenge; PAP sends its Authenticate-Request
    /// (Identifier from `nonces`). Starts the overall timeout. Ignored unless idle.
    pub fn start(&mut self, now: Instant, nonces: Nonces) {
        if !matches!(self.state, State::Idle) {
            return;
        }
        let identifier = nonces.identifier();
        self.nonces = Some(nonces);
        self.retries = 0;
        self.deadline = now.checked_add(self.config.timeout);
        if self.method == Method::Pap {
            self.send_pap_request(now, identifier);
        } else {
            self.state = State::AwaitingChallenge;
        }
    }

    /// The link went down: forget everything pending, without an event.
    pub fn stop(&mut self) {
        self.state = State::Idle;
        self.deadline = None;
        self.nonces = None;
    }

    fn send(
        &mut self,
        now: Instant,
        identifier: u8,
        challenge: Vec<u8>,
        packet: Vec<u8>,
        expect: Expect,
    ) {
        self.outputs
            .transmit(self.method.protocol(), packet.clone());
        self.state = State::Sent {
            identifier,
            challenge,
            packet,
            transmits: 1,
            retransmit_at: now.checked_add(self.config.restart_interval),
            expect,
        };
    }

    fn fail(&mut self, cause: FailureCause) {
        self.state = State::Failed;
        self.deadline = None;
        self.outputs.event(Event::Failed {
            user: Some(self.config.user.clone()),
            method: self.method,
            cause,
        });
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retransmit = match self.state {
            State::Sent { retransmit_at, .. } => retransmit_at,
            _ => None,
        };
        [self.deadline, retransmit].into_iter().flatten().min()
    }

    /// Retransmits our Response or Request, or fails on the overall timeout or after the
    /// last retransmission.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            self.fail(FailureCause::Timeout);
            return;
        }
        let protocol = self.method.protocol();
        let mut exhausted = false;
        if let State::Sent {
            retransmit_at,
            transmits,
            packet,
            ..
        } = &mut self.state
        {
            let (interval, max) = (self.config.restart_interval, self.config.max_transmits);
            match restart_timer(retransmit_at, transmits, now, interval, max) {
                Restart::Wait => {}
                Restart::Resend => self.outputs.transmit(protocol, packet.clone()),
                Restart::Exhausted => exhausted = true,
            }
        }
        if exhausted {
            self.fail(FailureCause::NoResponse);
        }
    }

    /// A PAP or CHAP packet from the server (without the PPP header). Packets of the other
    /// protocol, malformed ones, codes a client does not take and wrong identifiers are
    /// ignored and counted.
    pub fn handle_packet(&mut self, now: Instant, protocol: Protocol, packet: &[u8]) {
        if protocol != self.method.protocol() {
            self.outputs.ignore();
            return;
        }
        if self.method == Method::Pap {
            self.handle_pap(now, packet);
        } else {
            self.handle_chap(now, packet);
        }
    }

    fn handle_pap(&mut self, now: Instant, packet: &[u8]) {
        let Ok(view) = pap::Packet::new_checked(packet) else {
            self.outputs.ignore();
            return;
        };
        let (identifier, ack) = match pap::Repr::parse(&view) {
            Ok(pap::Repr::AuthenticateAck { identifier, .. }) => (identifier, true),
            Ok(pap::Repr::AuthenticateNak { identifier, .. }) => (identifier, false),
            _ => {
                self.outputs.ignore();
                return;
            }
        };
        match self.state {
            State::Sent {
                identifier: sent, ..
            } if sent == identifier => {}
            _ => {
                self.outputs.ignore();
                return;
            }
        }
        if ack {
            self.succeed(None);
        } else if self.retries < self.config.max_retries {
            self.retries = self.retries.saturating_add(1);
            self.send_pap_request(now, identifier.wrapping_add(1));
        } else {
            self.fail(FailureCause::PeerRefused(None));
        }
    }

    fn send_pap_request(&mut self, now: Instant, identifier: u8) {
        let repr = pap::Repr::AuthenticateRequest {
            identifier,
            peer_id: &self.config.user,
            password: self.config.password.as_str().as_bytes(),
        };
        let Some(packet) = emit_pap(&repr) else {
            self.fail(FailureCause::UnusableSecret);
            return;
        };
        self.send(now, identifier, Vec::new(), packet, Expect::Plain);
    }

    fn handle_chap(&mut self, now: Instant, packet: &[u8]) {
        let Ok(view) = chap::Packet::new_checked(packet) else {
            self.outputs.ignore();
            return;
        };
        match chap::Repr::parse(&view) {
            Ok(chap::Repr::Challenge {
                identifier, value, ..
            }) => self.handle_challenge(now, identifier, value),
            Ok(chap::Repr::Success {
                identifier,
                message,
            }) if self.is_answer(identifier) => self.handle_success(message),
            Ok(chap::Repr::Failure {
                identifier,
                message,
            }) if self.is_answer(identifier) => self.handle_failure(now, identifier, message),
            _ => self.outputs.ignore(),
        }
    }

    fn is_answer(&self, identifier: u8) -> bool {
        matches!(self.state, State::Sent { identifier: sent, .. } if sent == identifier)
    }

    fn handle_challenge(&mut self, now: Instant, identifier: u8, value: &[u8]) {
        match &self.state {
            State::AwaitingChallenge => {}
            State::Sent {
                identifier: sent,
                challenge,
                packet,
                ..
            } => {
                if *sent == identifier && challenge.as_slice() == value {
                    // The server did not get our Response: the same one again.
                    let packet = packet.clone();
                    self.outputs.transmit(Protocol::Chap, packet);
                    return;
                }
            }
            State::Idle | State::Succeeded | State::Failed => {
                self.outputs.ignore();
                return;
            }
        }
        let size_ok = match self.method {
            Method::MsChapV2 => value.len() == 16,
            Method::MsChapV1 => value.len() == 8,
            Method::ChapMd5 => !value.is_empty(),
            Method::Pap => false,
        };
        if !size_ok {
            self.outputs.ignore();
            return;
        }
        self.respond(now, identifier, value);
    }

    /// Computes and sends the Response to `challenge` (sized for the method).
    fn respond(&mut self, now: Instant, identifier: u8, challenge: &[u8]) {
        let password = self.config.password.as_str();
        let user = &self.config.user;
        let value: Vec<u8>;
        let expect = match self.method {
            Method::MsChapV2 => {
                let Ok(authenticator_challenge) = <[u8; 16]>::try_from(challenge) else {
                    return;
                };
                let peer_challenge = self
                    .nonces
                    .as_mut()
                    .map(Nonces::next_value)
                    .unwrap_or_default();
                let Ok(response) = mschap::v2_client_response(
                    user,
                    password,
                    &authenticator_challenge,
                    &peer_challenge,
                ) else {
                    self.fail(FailureCause::UnusableSecret);
                    return;
                };
                value = MsChapV2Response::new(peer_challenge, response.nt_response)
                    .to_bytes()
                    .to_vec();
                let master =
                    MasterKey::from_mschap_v2(&response.nt_hash_hash, &response.nt_response);
                Expect::V2 {
                    authenticator_response: response.expected_authenticator_response,
                    keys: SessionKeys::from_mschap_v2(&master, Role::Client),
                }
            }
            Method::MsChapV1 => {
                let Ok(challenge8) = <[u8; 8]>::try_from(challenge) else {
                    return;
                };
                let Ok(nt_hash) = NtHash::from_password(password) else {
                    self.fail(FailureCause::UnusableSecret);
                    return;
                };
                // Only the NT-Response, as pppd sends by default: the LM hash is too weak
                // to offer (and our server refuses LM-only responses).
                let response = MsChapV1Response {
                    lm_response: [0; 24],
                    nt_response: mschap::nt_challenge_response(&challenge8, &nt_hash),
                    flags: MsChapV1Response::FLAG_USE_NT_RESPONSE,
                };
                value = response.to_bytes().to_vec();
                Expect::V1 {
                    keys: SessionKeys::from_mschap_v1_nt(&nt_hash.hash(), &challenge8),
                }
            }
            Method::ChapMd5 => {
                value = chap_md5_response(identifier, password.as_bytes(), challenge).to_vec();
                Expect::Plain
            }
            Method::Pap => return,
        };
        let repr = chap::Repr::Response {
            identifier,
            value: &value,
            name: user,
        };
        let Some(packet) = emit_chap(&repr) else {
            self.fail(FailureCause::UnusableSecret);
            return;
        };
        self.send(now, identifier, challenge.to_vec(), packet, expect);
    }

    fn handle_success(&mut self, message: &[u8]) {
        let keys = match &self.state {
            State::Sent {
                expect:
                    Expect::V2 {
                        authenticator_response,
                        keys,
                    },
                ..
            } => {
                if !authenticator_response.verify_message(message) {
                    self.fail(FailureCause::BadAuthenticatorResponse);
                    return;
                }
                Some(*keys)
            }
            State::Sent {
                expect: Expect::V1 { keys },
                ..
            } => Some(*keys),
            _ => None,
        };
        self.succeed(keys);
    }

    fn handle_failure(&mut self, now: Instant, identifier: u8, message: &[u8]) {
        let (code, retry_challenge): (_, Option<Vec<u8>>) = match self.method {
            Method::MsChapV2 => match MsChapV2Failure::parse(message) {
                Ok(f) => (
                    Some(f.error),
                    f.challenge.filter(|_| f.retry).map(|c| c.to_vec()),
                ),
                Err(_) => (None, None),
            },
            Method::MsChapV1 => match MsChapV1Failure::parse(message) {
                Ok(f) => (
                    Some(f.error),
                    f.challenge.filter(|_| f.retry).map(|c| c.to_vec()),
                ),
                Err(_) => (None, None),
            },
            Method::ChapMd5 | Method::Pap => (None, None),
        };
        if let Some(challenge) = retry_challenge
            && self.retries < self.config.max_retries
        {
            self.retries = self.retries.saturating_add(1);
            // RFC 2759 section 6: answer C= with the Failure's Identifier plus one.
            self.respond(now, identifier.wrapping_add(1), &challenge);
            return;
        }
        if self.method == Method::ChapMd5 && self.retries < self.config.max_retries {
            // RFC 1994 has no retry, but an authenticator may challenge again.
            self.retries = self.retries.saturating_add(1);
            self.state = State::AwaitingChallenge;
            return;
        }
        self.fail(FailureCause::PeerRefused(code));
    }

    fn succeed(&mut self, mppe_keys: Option<SessionKeys>) {
        self.state = State::Succeeded;
        self.deadline = None;
        self.outputs.event(Event::Authenticated {
            user: self.config.user.clone(),
            method: self.method,
            mppe_keys,
        });
    }

    /// The next packet to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outputs.transmits.pop_front()
    }

    /// The next event for the layer above.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.outputs.events.pop_front()
    }
}
