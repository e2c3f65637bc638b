//! The authenticator.

use std::fmt;
use std::time::{Duration, Instant};

use super::{
    Event, FailureCause, LookupId, Method, Nonces, Outputs, Proof, Restart, SecretAnswer,
    SecretLookup, SecretRequest, Stats, StoredSecret, Transmit, challenge_len, chap_md5_response,
    emit_chap, emit_pap, restart_timer,
};
use crate::crypto::mppe_keys::{MasterKey, Role, SessionKeys};
use crate::crypto::mschap::{self, NtHash, Secret, VerifyError};
use crate::wire::chap::{
    self, MsChapErrorCode, MsChapV1Failure, MsChapV1Response, MsChapV2Failure, MsChapV2Response,
    MsChapV2Success,
};
use crate::wire::pap;
use crate::wire::ppp::Protocol;

/// The authenticator's settings; `Default` is what Poptop's pppd does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// pppd `name` (Poptop's `pptpd-options` sets `name pptpd`): the Name in our
    /// Challenges, and the server column the secret store matches.
    pub name: Vec<u8>,
    /// pppd `chap-restart` / `pap-restart` (3 s): the Challenge retransmission interval.
    pub restart_interval: Duration,
    /// pppd `chap-max-challenge` (10): Challenge transmissions before giving up.
    pub max_challenges: u32,
    /// pppd `pap-timeout` (30 s), applied to every method: from [`Server::start`] to a
    /// verdict, a pending lookup included. pppd's CHAP has no such timer but gives up
    /// after `max_challenges` × `restart_interval`, also 30 s by default.
    pub timeout: Duration,
    /// Attempts allowed (pppd: 1). With more, a failed MS-CHAP Failure says R=1 and
    /// carries the next challenge, a CHAP-MD5 failure is followed by a new Challenge, and
    /// PAP accepts another Request.
    pub max_failures: u32,
    /// M= text of an MS-CHAPv2 Success, and the message of other Successes and PAP Acks
    /// (pppd: "Access granted").
    pub success_message: Vec<u8>,
    /// M= text of an MS-CHAPv2 Failure, and the message of CHAP-MD5 Failures and PAP Naks
    /// (pppd: "Access denied"). MS-CHAPv1 Failures carry no text.
    pub failure_message: Vec<u8>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            name: b"pptpd".to_vec(),
            restart_interval: Duration::from_secs(3),
            max_challenges: 10,
            timeout: Duration::from_secs(30),
            max_failures: 1,
            success_message: b"Access granted".to_vec(),
            failure_message: b"Access denied".to_vec(),
        }
    }
}

/// The Response (or PAP Request) being verified, owned so the lookup may take its time.
enum Proven {
    V2(MsChapV2Response),
    V1(MsChapV1Response),
    Md5(Vec<u8>),
    Pap(Vec<u8>),
}

struct Pending {
    identifier: u8,
    user: Vec<u8>,
    challenge: [u8; 16],
    proven: Proven,
}

enum State {
    /// Not started (or stopped).
    Idle,
    /// Waiting for the Response to `challenge` with `identifier` (PAP: for any Request).
    /// `retransmit_at` is set while our Challenge packet is to be repeated; it is not after
    /// an MS-CHAP Failure with R=1, whose C= was the new challenge.
    Waiting {
        identifier: u8,
        challenge: [u8; 16],
        retransmit_at: Option<Instant>,
        transmits: u32,
    },
    /// The secret store has not answered `lookup` yet.
    Verifying {
        lookup: LookupId,
        pending: Pending,
    },
    Succeeded,
    Failed,
}

/// The authenticator (server role) of one link, for one method.
///
/// Life: [`new`](Self::new) once LCP has agreed on the method, [`start`](Self::start) when
/// LCP is Opened (sends the first Challenge), then [`handle_packet`](Self::handle_packet)
/// for every packet of [`Method::protocol`], [`provide_secret`](Self::provide_secret) when a
/// pending lookup completes and [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout). After each input drain
/// [`poll_transmit`](Self::poll_transmit), then [`poll_event`](Self::poll_event).
///
/// After the verdict it keeps answering: a Response repeated with the identifier of the
/// last Success or Failure gets that same packet again (Windows repeats its Response when
/// the Success is lost; pppd answers the same way), and PAP Requests after success are
/// Acked (pppd does too).
pub struct Server {
    config: ServerConfig,
    method: Method,
    nonces: Option<Nonces>,
    state: State,
    deadline: Option<Instant>,
    failures: u32,
    next_lookup: u32,
    /// The Challenge packet being retransmitted.
    challenge_packet: Vec<u8>,
    /// Identifier and bytes of our last Success/Failure, for repeated Responses.
    last_reply: Option<(u8, Vec<u8>)>,
    outputs: Outputs,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("method", &self.method)
            .field("state", &self.state_name())
            .field("failures", &self.failures)
            .field("deadline", &self.deadline)
            .field("stats", &self.outputs.stats)
            .finish()
    }
}

impl Server {
    /// A server for `method`, idle until [`start`](Self::start).
    pub fn new(config: ServerConfig, method: Method) -> Server {
        Server {
            config,
            method,
            nonces: None,
            state: State::Idle,
            deadline: None,
            failures: 0,
            next_lookup: 0,
            challenge_packet: Vec::new(),
            last_reply: None,
            outputs: Outputs::default(),
        }
    }

    /// The method this server authenticates with.
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

    /// Whether the peer is authenticated.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Succeeded)
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Idle => "idle",
            State::Waiting { .. } => "waiting",
            State::Verifying { .. } => "verifying",
            State::Succeeded => "succeeded",
            State::Failed => "failed",
        }
    }

    /// LCP is Opened: sends the first Challenge (CHAP) or starts waiting for the peer's
    /// Authenticate-Request (PAP), and starts the overall timeout. Ignored unless idle.
    pub fn start(&mut self, now: Instant, nonces: Nonces) {
        if !matches!(self.state, State::Idle) {
            return;
        }
        let identifier = nonces.identifier();
        self.failures = 0;
        self.last_reply = None;
        self.nonces = Some(nonces);
        self.deadline = now.checked_add(self.config.timeout);
        self.send_challenge(now, identifier);
    }

    /// The link went down: forget everything pending, without an event.
    pub fn stop(&mut self) {
        self.state = State::Idle;
        self.deadline = None;
        self.nonces = None;
    }

    fn next_challenge(&mut self) -> [u8; 16] {
        self.nonces
            .as_mut()
            .map(Nonces::next_value)
            .unwrap_or_default()
    }

    /// Enters `Waiting` with a fresh challenge, sending it for CHAP.
    fn send_challenge(&mut self, now: Instant, identifier: u8) {
        let challenge = self.next_challenge();
        if self.method == Method::Pap {
            self.state = State::Waiting {
                identifier,
                challenge,
                retransmit_at: None,
                transmits: 0,
            };
            return;
        }
        let len = challenge_len(self.method);
        let repr = chap::Repr::Challenge {
            identifier,
            value: &challenge[..len],
            name: &self.config.name,
        };
        self.challenge_packet = emit_chap(&repr).unwrap_or_default();
        self.outputs
            .transmit(Protocol::Chap, self.challenge_packet.clone());
        self.state = State::Waiting {
            identifier,
            challenge,
            retransmit_at: now.checked_add(self.config.restart_interval),
            transmits: 1,
        };
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) must run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retransmit = match self.state {
            State::Waiting { retransmit_at, .. } => retransmit_at,
            _ => None,
        };
        [self.deadline, retransmit].into_iter().flatten().min()
    }

    /// Retransmits the Challenge, or fails on the overall timeout or after the last
    /// retransmission.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|d| now >= d) {
            let user = match &self.state {
                State::Verifying { pending, .. } => Some(pending.user.clone()),
                _ => None,
            };
            self.fail_silently(user, FailureCause::Timeout);
            return;
        }
        let mut exhausted = false;
        if let State::Waiting {
            retransmit_at,
            transmits,
            ..
        } = &mut self.state
        {
            let (interval, max) = (self.config.restart_interval, self.config.max_challenges);
            match restart_timer(retransmit_at, transmits, now, interval, max) {
                Restart::Wait => {}
                Restart::Resend => self
                    .outputs
                    .transmit(Protocol::Chap, self.challenge_packet.clone()),
                Restart::Exhausted => exhausted = true,
            }
        }
        if exhausted {
            self.fail_silently(None, FailureCause::NoResponse);
        }
    }

    fn fail_silently(&mut self, user: Option<Vec<u8>>, cause: FailureCause) {
        self.state = State::Failed;
        self.deadline = None;
        self.outputs.event(Event::Failed {
            user,
            method: self.method,
            cause,
        });
    }

    /// A PAP or CHAP packet from the peer (without the PPP header). Packets of the other
    /// protocol, malformed ones, codes a server does not take, wrong identifiers and wrong
    /// value sizes are ignored and counted. A matching Response is looked up through
    /// `lookup`.
    pub fn handle_packet<L: SecretLookup + ?Sized>(
        &mut self,
        now: Instant,
        protocol: Protocol,
        packet: &[u8],
        lookup: &mut L,
    ) {
        if protocol != self.method.protocol() {
            self.outputs.ignore();
            return;
        }
        if self.method == Method::Pap {
            self.handle_pap(now, packet, lookup);
        } else {
            self.handle_chap(now, packet, lookup);
        }
    }

    fn handle_chap<L: SecretLookup + ?Sized>(
        &mut self,
        now: Instant,
        packet: &[u8],
        lookup: &mut L,
    ) {
        let Ok(view) = chap::Packet::new_checked(packet) else {
            self.outputs.ignore();
            return;
        };
        let Ok(chap::Repr::Response {
            identifier,
            value,
            name,
        }) = chap::Repr::parse(&view)
        else {
            self.outputs.ignore();
            return;
        };
        let challenge = match self.state {
            State::Waiting {
                identifier: expected,
                challenge,
                ..
            } if identifier == expected => challenge,
            _ => {
                self.repeat_reply(identifier);
                return;
            }
        };
        let proven = match self.method {
            Method::MsChapV2 => MsChapV2Response::parse(value).map(Proven::V2).ok(),
            Method::MsChapV1 => MsChapV1Response::parse(value).map(Proven::V1).ok(),
            Method::ChapMd5 if value.len() == 16 => Some(Proven::Md5(value.to_vec())),
            _ => None,
        };
        let Some(proven) = proven else {
            self.outputs.ignore();
            return;
        };
        let pending = Pending {
            identifier,
            user: name.to_vec(),
            challenge,
            proven,
        };
        self.begin_lookup(now, pending, lookup);
    }

    fn handle_pap<L: SecretLookup + ?Sized>(
        &mut self,
        now: Instant,
        packet: &[u8],
        lookup: &mut L,
    ) {
        let Ok(view) = pap::Packet::new_checked(packet) else {
            self.outputs.ignore();
            return;
        };
        let Ok(pap::Repr::AuthenticateRequest {
            identifier,
            peer_id,
            password,
        }) = pap::Repr::parse(&view)
        else {
            self.outputs.ignore();
            return;
        };
        match self.state {
            // A repeat of the Request we just Naked (retries allowed): the same Nak, not
            // another attempt.
            State::Waiting { .. }
                if self
                    .last_reply
                    .as_ref()
                    .is_some_and(|(id, _)| *id == identifier) =>
            {
                self.repeat_reply(identifier);
            }
            State::Waiting { challenge, .. } => {
                let pending = Pending {
                    identifier,
                    user: peer_id.to_vec(),
                    challenge,
                    proven: Proven::Pap(password.to_vec()),
                };
                self.begin_lookup(now, pending, lookup);
            }
            // pppd acks any Request once the peer is authenticated (its retransmission
            // after a lost Ack has a new identifier) and naks any after the final failure.
            State::Succeeded => {
                self.send_pap_reply(identifier, true);
            }
            State::Failed => {
                self.send_pap_reply(identifier, false);
            }
            State::Idle | State::Verifying { .. } => self.outputs.ignore(),
        }
    }

    fn send_pap_reply(&mut self, identifier: u8, ack: bool) -> Option<Vec<u8>> {
        let message = if ack {
            &self.config.success_message
        } else {
            &self.config.failure_message
        };
        let message = message.get(..255).unwrap_or(message);
        let repr = if ack {
            pap::Repr::AuthenticateAck {
                identifier,
                message,
            }
        } else {
            pap::Repr::AuthenticateNak {
                identifier,
                message,
            }
        };
        let packet = emit_pap(&repr)?;
        self.outputs.transmit(Protocol::Pap, packet.clone());
        Some(packet)
    }

    /// A Response that does not answer the outstanding challenge: if it repeats the one we
    /// last answered, answer it the same way again.
    fn repeat_reply(&mut self, identifier: u8) {
        match &self.last_reply {
            Some((id, packet)) if *id == identifier => {
                let packet = packet.clone();
                self.outputs.transmit(self.method.protocol(), packet);
            }
            _ => self.outputs.ignore(),
        }
    }

    fn begin_lookup<L: SecretLookup + ?Sized>(
        &mut self,
        now: Instant,
        pending: Pending,
        lookup: &mut L,
    ) {
        let id = LookupId(self.next_lookup);
        self.next_lookup = self.next_lookup.wrapping_add(1);
        let len = challenge_len(self.method);
        let response_bytes;
        let proof = match &pending.proven {
            Proven::Pap(password) => Proof::Pap { password },
            proven => {
                response_bytes = match proven {
                    Proven::V2(r) => r.to_bytes().to_vec(),
                    Proven::V1(r) => r.to_bytes().to_vec(),
                    Proven::Md5(v) | Proven::Pap(v) => v.clone(),
                };
                Proof::Chap {
                    identifier: pending.identifier,
                    challenge: pending.challenge.get(..len).unwrap_or_default(),
                    response: &response_bytes,
                }
            }
        };
        let request = SecretRequest {
            id,
            method: self.method,
            user: &pending.user,
            server_name: &self.config.name,
            proof,
        };
        let answer = lookup.lookup(&request);
        self.state = State::Verifying {
            lookup: id,
            pending,
        };
        if let super::Lookup::Ready(answer) = answer {
            self.provide_secret(now, id, answer);
        }
    }

    /// The answer to a lookup that returned [`Lookup::Pending`](super::Lookup::Pending).
    /// Ignored unless `id` is the lookup the server is waiting for (a late answer after a
    /// timeout or a newer Response is dropped).
    pub fn provide_secret(&mut self, now: Instant, id: LookupId, answer: SecretAnswer) {
        let pending = match std::mem::replace(&mut self.state, State::Idle) {
            State::Verifying { lookup, pending } if lookup == id => pending,
            other => {
                self.state = other;
                return;
            }
        };
        match self.verify(&pending, answer) {
            Ok(verified) => self.succeed(pending, verified),
            Err(cause) => self.reject(now, pending, cause),
        }
    }

    fn verify(&self, pending: &Pending, answer: SecretAnswer) -> Result<Verified, FailureCause> {
        let secret = match answer {
            SecretAnswer::Secret(secret) => secret,
            SecretAnswer::UnknownUser => return Err(FailureCause::UnknownUser),
            SecretAnswer::Rejected(code) => return Err(FailureCause::Rejected(code)),
            SecretAnswer::Accepted(external) => {
                if self.method == Method::MsChapV2 && external.authenticator_response.is_none() {
                    return Err(FailureCause::BackendError);
                }
                return Ok(Verified {
                    authenticator_response: external.authenticator_response,
                    mppe_keys: external.mppe_keys,
                });
            }
        };
        let as_secret = match &secret {
            StoredSecret::Password(p) => Secret::Password(p.as_str()),
            StoredSecret::NtHash(h) => Secret::NtHash(*h),
        };
        let mismatch = |e: VerifyError| match e {
            VerifyError::Mismatch => FailureCause::WrongPassword,
            VerifyError::Password(_) => FailureCause::UnusableSecret,
        };
        match &pending.proven {
            Proven::V2(response) => {
                let ok = mschap::v2_server_verify(
                    &pending.user,
                    as_secret,
                    &pending.challenge,
                    &response.peer_challenge,
                    &response.nt_response,
                )
                .map_err(mismatch)?;
                let master = MasterKey::from_mschap_v2(&ok.nt_hash_hash, &response.nt_response);
                Ok(Verified {
                    authenticator_response: Some(ok.authenticator_response),
                    mppe_keys: Some(SessionKeys::from_mschap_v2(&master, Role::Server)),
                })
            }
            Proven::V1(response) => {
                if !response.use_nt_response() {
                    return Err(FailureCause::UnsupportedResponse);
                }
                let challenge = first_8(&pending.challenge);
                let nt_hash_hash =
                    mschap::v1_server_verify(as_secret, &challenge, &response.nt_response)
                        .map_err(mismatch)?;
                Ok(Verified {
                    authenticator_response: None,
                    mppe_keys: Some(SessionKeys::from_mschap_v1_nt(&nt_hash_hash, &challenge)),
                })
            }
            Proven::Md5(value) => {
                let StoredSecret::Password(password) = &secret else {
                    return Err(FailureCause::UnusableSecret);
                };
                let expected = chap_md5_response(
                    pending.identifier,
                    password.as_str().as_bytes(),
                    &pending.challenge,
                );
                if mschap::ct_eq(&expected, value) {
                    Ok(Verified::default())
                } else {
                    Err(FailureCause::WrongPassword)
                }
            }
            Proven::Pap(received) => {
                let ok = match &secret {
                    StoredSecret::Password(p) => mschap::ct_eq(p.as_str().as_bytes(), received),
                    StoredSecret::NtHash(stored) => core::str::from_utf8(received)
                        .ok()
                        .and_then(|r| NtHash::from_password(r).ok())
                        .is_some_and(|h| mschap::ct_eq(&h.0, &stored.0)),
                };
                if ok {
                    Ok(Verified::default())
                } else {
                    Err(FailureCause::WrongPassword)
                }
            }
        }
    }

    fn succeed(&mut self, pending: Pending, verified: Verified) {
        let identifier = pending.identifier;
        let message = &self.config.success_message;
        let packet = match self.method {
            Method::Pap => {
                self.last_reply = self
                    .send_pap_reply(identifier, true)
                    .map(|p| (identifier, p));
                None
            }
            Method::MsChapV2 => {
                let success = MsChapV2Success {
                    authenticator_response: verified
                        .authenticator_response
                        .map(|a| a.0)
                        .unwrap_or_default(),
                    message: Some(message),
                };
                let mut text = vec![0u8; success.buffer_len()];
                let n = success.emit(&mut text).unwrap_or(0);
                text.truncate(n);
                emit_chap(&chap::Repr::Success {
                    identifier,
                    message: &text,
                })
            }
            Method::MsChapV1 | Method::ChapMd5 => emit_chap(&chap::Repr::Success {
                identifier,
                message,
            }),
        };
        if let Some(packet) = packet {
            self.outputs.transmit(Protocol::Chap, packet.clone());
            self.last_reply = Some((identifier, packet));
        }
        self.state = State::Succeeded;
        self.deadline = None;
        self.outputs.event(Event::Authenticated {
            user: pending.user,
            method: self.method,
            mppe_keys: verified.mppe_keys,
        });
    }

    fn reject(&mut self, now: Instant, pending: Pending, cause: FailureCause) {
        self.failures = self.failures.saturating_add(1);
        let retry = self.failures < self.config.max_failures;
        let identifier = pending.identifier;
        let next_identifier = identifier.wrapping_add(1);
        let error = match cause {
            FailureCause::Rejected(code) => code,
            _ => MsChapErrorCode::AuthenticationFailure,
        };
        // The challenge the peer must answer next: announced in C= for MS-CHAP.
        let ms_chap = matches!(self.method, Method::MsChapV2 | Method::MsChapV1);
        let next_challenge = if retry && ms_chap {
            self.next_challenge()
        } else {
            pending.challenge
        };
        let message = &self.config.failure_message;
        let packet = match self.method {
            Method::Pap => {
                self.last_reply = self
                    .send_pap_reply(identifier, false)
                    .map(|p| (identifier, p));
                None
            }
            Method::MsChapV2 => {
                let failure = MsChapV2Failure {
                    error,
                    retry,
                    challenge: Some(next_challenge),
                    version: Some(MsChapV2Failure::VERSION_3),
                    message: Some(message),
                };
                failure_packet(identifier, failure.buffer_len(), |b| failure.emit(b))
            }
            Method::MsChapV1 => {
                let failure = MsChapV1Failure {
                    error,
                    retry,
                    challenge: retry.then(|| first_8(&next_challenge)),
                    version: None,
                    message: None,
                };
                failure_packet(identifier, failure.buffer_len(), |b| failure.emit(b))
            }
            Method::ChapMd5 => emit_chap(&chap::Repr::Failure {
                identifier,
                message,
            }),
        };
        if let Some(packet) = packet {
            self.outputs.transmit(Protocol::Chap, packet.clone());
            self.last_reply = Some((identifier, packet));
        }
        if !retry {
            self.fail_silently(Some(pending.user), cause);
            return;
        }
        match self.method {
            // RFC 2759 section 6, RFC 2433: the peer answers C= with Identifier + 1, no
            // Challenge packet in between.
            Method::MsChapV2 | Method::MsChapV1 => {
                self.state = State::Waiting {
                    identifier: next_identifier,
                    challenge: next_challenge,
                    retransmit_at: None,
                    transmits: 0,
                };
            }
            // RFC 1994 has no retry: a new Challenge starts a new exchange.
            Method::ChapMd5 => self.send_challenge(now, next_identifier),
            Method::Pap => {
                self.state = State::Waiting {
                    identifier: next_identifier,
                    challenge: next_challenge,
                    retransmit_at: None,
                    transmits: 0,
                };
            }
        }
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

#[derive(Default)]
struct Verified {
    authenticator_response: Option<mschap::AuthenticatorResponse>,
    mppe_keys: Option<SessionKeys>,
}

fn first_8(challenge: &[u8; 16]) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&challenge[..8]);
    out
}

fn failure_packet(
    identifier: u8,
    len: usize,
    emit: impl FnOnce(&mut [u8]) -> crate::wire::Result<usize>,
) -> Option<Vec<u8>> {
    let mut text = vec![0u8; len];
    let n = emit(&mut text).ok()?;
    text.truncate(n);
    emit_chap(&chap::Repr::Failure {
        identifier,
        message: &text,
    })
}
