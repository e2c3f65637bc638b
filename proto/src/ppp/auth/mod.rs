//! PPP authentication, both roles: PAP (RFC 1334), CHAP with MD5 (RFC 1994), MS-CHAPv1
//! (RFC 2433) and MS-CHAPv2 (RFC 2759), as sans-I/O state machines.
//!
//! * [`AuthPolicy`] and [`Method`]: which methods the LCP negotiator may agree on.
//! * [`Server`]: the authenticator. It challenges, looks the user's secret up through
//!   [`SecretLookup`] (which may answer later), verifies, and answers Success or Failure.
//! * [`Client`]: the peer. It answers challenges (or sends PAP requests) with its
//!   configured credentials and, for MS-CHAPv2, checks the server's proof.
//!
//! Both report [`Event::Authenticated`] (with the MPPE start keys MS-CHAP yields, from
//! their own point of view: the server's `send` is the client's `receive`) or
//! [`Event::Failed`] with a [`FailureCause`]; after a failure the link must terminate.
//!
//! # Calling order
//! As in quinn-proto: feed an input (`start`, `handle_packet`, `provide_secret`,
//! `handle_timeout`), then drain `poll_transmit` until `None`, then `poll_event` until
//! `None`, then re-arm the timer from `poll_timeout`. Output queues are bounded
//! ([`MAX_QUEUED_TRANSMITS`], [`MAX_QUEUED_EVENTS`]): outputs beyond them are dropped and
//! counted, so a caller that drains after every input never loses one.
//!
//! # Randomness
//! The machines read no RNG: the caller passes [`Nonces`] (the first identifier, the first
//! challenge and a key from which later challenges are derived) when it starts one.
//!
//! # Secrets
//! Passwords, NT hashes, PAP packets and MPPE keys never appear in `Debug` output. Secrets
//! are not zeroed on drop (there is no zeroize dependency); the machines keep a secret only
//! while they need it (a PAP password while its lookup is pending).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

use crate::crypto::mppe_keys::SessionKeys;
use crate::crypto::mschap::{AuthenticatorResponse, NtHash};
use crate::wire::chap::MsChapErrorCode;
use crate::wire::ppp::Protocol;

mod client;
mod policy;
mod server;
#[cfg(test)]
mod tests;

pub use client::{Client, ClientConfig};
pub use policy::{AuthPolicy, AuthReply, Method, PppdAuthOption};
pub use server::{Server, ServerConfig};

/// At most this many packets wait in a machine's transmit queue.
pub const MAX_QUEUED_TRANSMITS: usize = 8;
/// At most this many events wait in a machine's event queue.
pub const MAX_QUEUED_EVENTS: usize = 4;

/// A packet to send: the PAP or CHAP packet (Code, Identifier, Length, body), without the
/// PPP header; `protocol` says which PPP protocol number to put in front.
///
/// `Debug` shows the protocol, code, identifier and length only: a PAP Authenticate-Request
/// carries the password in clear.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    /// [`Protocol::Chap`] or [`Protocol::Pap`].
    pub protocol: Protocol,
    /// The control packet, Length included.
    pub packet: Vec<u8>,
}

impl fmt::Debug for Transmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transmit")
            .field("protocol", &self.protocol)
            .field("code", &self.packet.first())
            .field("identifier", &self.packet.get(1))
            .field("len", &self.packet.len())
            .finish()
    }
}

/// What the layer above must know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Authentication succeeded. `user` is the name the peer gave (server role) or our own
    /// (client role). `mppe_keys` are the MPPE start keys for MS-CHAP, from this end's point
    /// of view, and `None` for CHAP-MD5 and PAP.
    Authenticated {
        user: Vec<u8>,
        method: Method,
        mppe_keys: Option<SessionKeys>,
    },
    /// Authentication failed for good: the link must be terminated. `user` is the name the
    /// peer gave, if it got that far (server role), or our own (client role).
    Failed {
        user: Option<Vec<u8>>,
        method: Method,
        cause: FailureCause,
    },
}

/// Why authentication failed. The peer is never told more than "failed" (E=691 for every
/// credential problem), so that user names cannot be probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureCause {
    /// Server: the response did not match the user's secret.
    WrongPassword,
    /// Server: no secret for this user.
    UnknownUser,
    /// Server: the stored secret cannot check this method (an NT hash for CHAP-MD5, a
    /// password too long to hash); client: our password cannot be hashed.
    UnusableSecret,
    /// Server: an MS-CHAPv1 response with only the LM-Response, which we do not accept.
    UnsupportedResponse,
    /// Server: the secret back end (e.g. RADIUS) refused the user with this error code.
    Rejected(MsChapErrorCode),
    /// Server: the back end accepted an MS-CHAPv2 response without giving the
    /// authenticator response the Success message needs.
    BackendError,
    /// No method both ends allow (the LCP negotiator's verdict, reported with this type).
    NoCommonMethod,
    /// The overall authentication deadline passed.
    Timeout,
    /// The last retransmission of our Challenge, Response or Authenticate-Request went
    /// unanswered.
    NoResponse,
    /// Client: the server sent Failure (with its MS-CHAP E= code, if it gave one) or a PAP
    /// Authenticate-Nak.
    PeerRefused(Option<MsChapErrorCode>),
    /// Client: the server's MS-CHAPv2 Success did not carry the authenticator response our
    /// password predicts, so the server does not know it (RFC 2759 section 5, mutual
    /// authentication); pppd fails the link the same way.
    BadAuthenticatorResponse,
}

impl fmt::Display for FailureCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureCause::WrongPassword => f.write_str("wrong password"),
            FailureCause::UnknownUser => f.write_str("no secret for user"),
            FailureCause::UnusableSecret => f.write_str("secret unusable for this method"),
            FailureCause::UnsupportedResponse => f.write_str("LM-only MS-CHAP response"),
            FailureCause::Rejected(code) => {
                write!(f, "refused by back end (E={})", u32::from(*code))
            }
            FailureCause::BackendError => f.write_str("back end answer unusable"),
            FailureCause::NoCommonMethod => f.write_str("no common authentication method"),
            FailureCause::Timeout => f.write_str("authentication timed out"),
            FailureCause::NoResponse => f.write_str("peer did not respond"),
            FailureCause::PeerRefused(Some(code)) => {
                write!(f, "peer refused us (E={})", u32::from(*code))
            }
            FailureCause::PeerRefused(None) => f.write_str("peer refused us"),
            FailureCause::BadAuthenticatorResponse => {
                f.write_str("server failed mutual authentication (bad S=)")
            }
        }
    }
}

/// A clear-text password; `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(password: impl Into<String>) -> Password {
        Password(password.into())
    }

    /// The password.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// The caller's randomness for one machine: the first Identifier, the first challenge
/// value (server: the Challenge; client: the MS-CHAPv2 Peer-Challenge) and a key from which
/// every later value is derived as SHA-1(key, counter, previous value), so that later
/// values stay unpredictable to the peer as long as the key is secret.
///
/// A server uses as much of each 16-octet value as its method needs (8 for MS-CHAPv1).
#[derive(Clone)]
pub struct Nonces {
    identifier: u8,
    next: [u8; 16],
    key: [u8; 16],
    counter: u32,
}

impl Nonces {
    /// Nonces with a chosen first identifier and value (tests, replays).
    pub fn new(identifier: u8, first: [u8; 16], key: [u8; 16]) -> Nonces {
        Nonces {
            identifier,
            next: first,
            key,
            counter: 0,
        }
    }

    /// Nonces from 33 random octets: the identifier, the first value, the key.
    pub fn from_random(random: [u8; 33]) -> Nonces {
        let mut first = [0u8; 16];
        let mut key = [0u8; 16];
        first.copy_from_slice(&random[1..17]);
        key.copy_from_slice(&random[17..33]);
        Nonces::new(random[0], first, key)
    }

    /// The first identifier.
    pub fn identifier(&self) -> u8 {
        self.identifier
    }

    /// The next 16-octet value.
    fn next_value(&mut self) -> [u8; 16] {
        let value = self.next;
        self.counter = self.counter.wrapping_add(1);
        let digest = Sha1::new()
            .chain_update(self.key)
            .chain_update(self.counter.to_be_bytes())
            .chain_update(value)
            .finalize();
        self.next.copy_from_slice(&digest[..16]);
        value
    }
}

impl fmt::Debug for Nonces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Nonces(<redacted>)")
    }
}

/// Ties a [`SecretLookup`] answer to the request it answers; a stale answer is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LookupId(pub u32);

/// What the authenticator asks its secret store about.
///
/// A store that holds secrets (chap-secrets) looks at `user` (and `server_name`, the
/// second column of chap-secrets) and answers [`SecretAnswer::Secret`]. A store that
/// verifies by itself (RADIUS) also needs `proof` and answers
/// [`SecretAnswer::Accepted`] or [`SecretAnswer::Rejected`].
#[derive(Debug, Clone, Copy)]
pub struct SecretRequest<'a> {
    /// Quote it in [`Server::provide_secret`] when answering later.
    pub id: LookupId,
    /// The method in use.
    pub method: Method,
    /// The CHAP Name or PAP Peer-ID, as received (an MS-CHAP `DOMAIN\` prefix included:
    /// the store decides whether to strip it).
    pub user: &'a [u8],
    /// Our name ([`ServerConfig::name`]).
    pub server_name: &'a [u8],
    /// What the peer sent, for stores that verify themselves.
    pub proof: Proof<'a>,
}

/// The peer's proof of its password, as sent.
#[derive(Clone, Copy)]
pub enum Proof<'a> {
    /// CHAP and MS-CHAP: our challenge, and the Value of the peer's Response.
    Chap {
        identifier: u8,
        challenge: &'a [u8],
        response: &'a [u8],
    },
    /// PAP: the password in clear (redacted in `Debug`).
    Pap { password: &'a [u8] },
}

impl fmt::Debug for Proof<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proof::Chap {
                identifier,
                challenge,
                response,
            } => f
                .debug_struct("Chap")
                .field("identifier", identifier)
                .field("challenge_len", &challenge.len())
                .field("response_len", &response.len())
                .finish(),
            Proof::Pap { .. } => f.write_str("Pap(<redacted>)"),
        }
    }
}

/// A user's secret as a store keeps it.
///
/// MS-CHAP (v1 and v2) needs only the NT hash; CHAP-MD5 needs the password itself; PAP
/// works with either (the received password is hashed and compared).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StoredSecret {
    /// The clear-text password (chap-secrets).
    Password(Password),
    /// Its NtPasswordHash (MD4 of the UTF-16LE password).
    NtHash(NtHash),
}

/// What the store found.
#[derive(Clone, Debug)]
pub enum SecretAnswer {
    /// The user's secret: the machine verifies the response itself.
    Secret(StoredSecret),
    /// No such user. The peer sees the same Failure as for a wrong password.
    UnknownUser,
    /// The store verified the proof itself and accepts it.
    Accepted(ExternalSuccess),
    /// The store verified the proof itself and refuses it with this MS-CHAP error code
    /// (691 for bad credentials; 647 account disabled, 649 no dial-in permission...).
    Rejected(MsChapErrorCode),
}

/// What a verifying store (RADIUS: MS-CHAP2-Success, MS-MPPE-Send/Recv-Key) returns on
/// success.
#[derive(Clone, Debug, Default)]
pub struct ExternalSuccess {
    /// The MS-CHAPv2 authenticator response for the Success message; required for
    /// MS-CHAPv2, ignored otherwise.
    pub authenticator_response: Option<AuthenticatorResponse>,
    /// MPPE start keys from the server's point of view.
    pub mppe_keys: Option<SessionKeys>,
}

/// A store's answer: now, or later through [`Server::provide_secret`].
#[derive(Clone, Debug)]
pub enum Lookup {
    /// The answer is known now.
    Ready(SecretAnswer),
    /// The store will answer later; the server waits (its overall timeout still runs) and
    /// ignores retransmitted Responses meanwhile.
    Pending,
}

/// The authenticator's secret store (chap-secrets now, RADIUS later).
///
/// Called once per Response (or PAP Request) that matches the outstanding challenge. It
/// must not block: a store that has to wait answers [`Lookup::Pending`] and later calls
/// [`Server::provide_secret`] with `request.id`.
pub trait SecretLookup {
    /// Looks the user of `request` up.
    fn lookup(&mut self, request: &SecretRequest<'_>) -> Lookup;
}

impl<F: FnMut(&SecretRequest<'_>) -> Lookup> SecretLookup for F {
    fn lookup(&mut self, request: &SecretRequest<'_>) -> Lookup {
        self(request)
    }
}

/// Counters of what a machine dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Packets ignored: malformed, wrong protocol, code, identifier or value size, or
    /// unexpected in the current state.
    pub ignored_packets: u64,
    /// Outputs dropped because a queue was full.
    pub dropped_outputs: u64,
}

/// The bounded output queues both roles share.
#[derive(Debug, Default)]
struct Outputs {
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

impl Outputs {
    fn transmit(&mut self, protocol: Protocol, packet: Vec<u8>) {
        if self.transmits.len() >= MAX_QUEUED_TRANSMITS {
            self.stats.dropped_outputs = self.stats.dropped_outputs.saturating_add(1);
            return;
        }
        self.transmits.push_back(Transmit { protocol, packet });
    }

    fn event(&mut self, event: Event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.stats.dropped_outputs = self.stats.dropped_outputs.saturating_add(1);
            return;
        }
        self.events.push_back(event);
    }

    fn ignore(&mut self) {
        self.stats.ignored_packets = self.stats.ignored_packets.saturating_add(1);
    }
}

/// What the restart timer on our last packet asks for (the Challenge, RFC 1994 section 4.1;
/// the Response or PAP Authenticate-Request, RFC 1334 section 2.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// Not due (or not running).
    Wait,
    /// Send the packet again: counted, and the timer rearmed `interval` from now.
    Resend,
    /// `max` transmissions went out unanswered: give up.
    Exhausted,
}

/// Runs the restart timer `at` at `now`, counting `transmits` against `max`.
fn restart_timer(
    at: &mut Option<Instant>,
    transmits: &mut u32,
    now: Instant,
    interval: Duration,
    max: u32,
) -> Restart {
    if !at.is_some_and(|at| now >= at) {
        return Restart::Wait;
    }
    if *transmits >= max {
        return Restart::Exhausted;
    }
    *transmits = transmits.saturating_add(1);
    *at = Some(now.checked_add(interval).unwrap_or(now));
    Restart::Resend
}

/// Emits a CHAP packet into a fresh buffer; `None` if it cannot be encoded (a value over
/// 255 octets or a packet over 65535: only a misconfigured name can cause that).
fn emit_chap(repr: &crate::wire::chap::Repr<'_>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut crate::wire::chap::Packet::new_unchecked(&mut buf[..]))
        .ok()?;
    Some(buf)
}

/// Emits a PAP packet into a fresh buffer; `None` if it cannot be encoded (a field over
/// 255 octets).
fn emit_pap(repr: &crate::wire::pap::Repr<'_>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut crate::wire::pap::Packet::new_unchecked(&mut buf[..]))
        .ok()?;
    Some(buf)
}

/// The CHAP-MD5 response (RFC 1994 section 4.1): MD5 over Identifier, secret, challenge.
fn chap_md5_response(identifier: u8, secret: &[u8], challenge: &[u8]) -> [u8; 16] {
    use md5::Md5;
    Md5::new()
        .chain_update([identifier])
        .chain_update(secret)
        .chain_update(challenge)
        .finalize()
        .into()
}

/// Size of the challenge a server sends for `method` (16 for MS-CHAPv2 and our CHAP-MD5,
/// 8 for MS-CHAPv1, none for PAP).
fn challenge_len(method: Method) -> usize {
    match method {
        Method::MsChapV2 | Method::ChapMd5 => 16,
        Method::MsChapV1 => 8,
        Method::Pap => 0,
    }
}
