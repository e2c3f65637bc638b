//! Server and client back to back, on a virtual clock, and the reference session replayed.

use std::cell::Cell;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::crypto::mppe_keys::StartKey;
use crate::wire::chap::MsChapErrorCode;

// The reference capture's MS-CHAPv2 exchange (Debian Poptop pptpd + pppd 2.4.9 server, Debian
// pptp-linux + pppd client) and the values its checker computed.
use crate::testing::reference::chap::{CHALLENGE, RESPONSE, SUCCESS};
use crate::testing::reference::mschap::{
    AUTHENTICATOR_CHALLENGE, AUTHENTICATOR_RESPONSE, KEY_CLIENT_TO_SERVER, KEY_SERVER_TO_CLIENT,
    PASSWORD, PEER_CHALLENGE, USER,
};

/// A chap-secrets stand-in: one user, answering at once or later; counts lookups.
struct Secrets {
    secret: Option<StoredSecret>,
    pending: bool,
    lookups: Cell<u32>,
    last: Option<LookupId>,
}

impl Secrets {
    fn with_password(password: &str) -> Secrets {
        Secrets {
            secret: Some(StoredSecret::Password(Password::new(password))),
            pending: false,
            lookups: Cell::new(0),
            last: None,
        }
    }

    fn answer(&self) -> SecretAnswer {
        match &self.secret {
            Some(s) => SecretAnswer::Secret(s.clone()),
            None => SecretAnswer::UnknownUser,
        }
    }
}

impl SecretLookup for Secrets {
    fn lookup(&mut self, request: &SecretRequest<'_>) -> Lookup {
        self.lookups.set(self.lookups.get() + 1);
        self.last = Some(request.id);
        if request.user != USER {
            return Lookup::Ready(SecretAnswer::UnknownUser);
        }
        if self.pending {
            Lookup::Pending
        } else {
            Lookup::Ready(self.answer())
        }
    }
}

fn server_config() -> ServerConfig {
    ServerConfig::default()
}

fn client_config(password: &str) -> ClientConfig {
    ClientConfig {
        user: USER.to_vec(),
        password: Password::new(password),
        ..ClientConfig::default()
    }
}

fn server_nonces() -> Nonces {
    Nonces::new(0x10, [0x5a; 16], [0x11; 16])
}

fn client_nonces() -> Nonces {
    Nonces::new(0x20, [0xc3; 16], [0x22; 16])
}

/// Two machines and a virtual clock; `drive` carries packets both ways until quiet.
struct Pair {
    base: Instant,
    now: Instant,
    server: Server,
    client: Client,
    secrets: Secrets,
    server_events: Vec<Event>,
    client_events: Vec<Event>,
    /// Every packet the server sent, in order.
    server_sent: Vec<Transmit>,
    client_sent: Vec<Transmit>,
}

impl Pair {
    fn new(method: Method, server: ServerConfig, client: ClientConfig, secrets: Secrets) -> Pair {
        let base = Instant::now();
        Pair {
            base,
            now: base,
            server: Server::new(server, method),
            client: Client::new(client, method),
            secrets,
            server_events: Vec::new(),
            client_events: Vec::new(),
            server_sent: Vec::new(),
            client_sent: Vec::new(),
        }
    }

    fn lcp_opens(&mut self) {
        self.client.start(self.now, client_nonces());
        self.server.start(self.now, server_nonces());
    }

    /// Takes the server's pending packets (and events).
    fn server_sends(&mut self) -> Vec<Transmit> {
        let mut out = Vec::new();
        while let Some(t) = self.server.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
        self.server_sent.extend(out.iter().cloned());
        out
    }

    fn client_sends(&mut self) -> Vec<Transmit> {
        let mut out = Vec::new();
        while let Some(t) = self.client.poll_transmit() {
            out.push(t);
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        self.client_sent.extend(out.iter().cloned());
        out
    }

    fn client_receives(&mut self, packets: Vec<Transmit>) {
        for t in packets {
            self.client.handle_packet(self.now, t.protocol, &t.packet);
        }
    }

    fn server_receives(&mut self, packets: Vec<Transmit>) {
        for t in packets {
            self.server
                .handle_packet(self.now, t.protocol, &t.packet, &mut self.secrets);
        }
    }

    /// Carries packets until neither side has anything to send.
    fn drive(&mut self) {
        for _ in 0..20 {
            let to_client = self.server_sends();
            let to_server = self.client_sends();
            if to_client.is_empty() && to_server.is_empty() {
                return;
            }
            self.client_receives(to_client);
            self.server_receives(to_server);
        }
        panic!("no quiescence");
    }

    /// Moves the clock to `at` seconds after the start and fires due timers.
    fn advance_to(&mut self, at: Duration) {
        self.now = self.base + at;
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
        }
        if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
            self.client.handle_timeout(self.now);
        }
    }
}

fn authenticated_keys(events: &[Event]) -> Option<SessionKeys> {
    match events {
        [Event::Authenticated { mppe_keys, .. }] => *mppe_keys,
        other => panic!("expected one Authenticated, got {other:?}"),
    }
}

fn failed_cause(events: &[Event]) -> FailureCause {
    match events {
        [Event::Failed { cause, .. }] => *cause,
        other => panic!("expected one Failed, got {other:?}"),
    }
}

fn succeed_back_to_back(method: Method) -> Pair {
    let mut pair = Pair::new(
        method,
        server_config(),
        client_config(PASSWORD),
        Secrets::with_password(PASSWORD),
    );
    pair.lcp_opens();
    pair.drive();
    assert!(pair.server.is_authenticated(), "{method}");
    assert!(pair.client.is_authenticated(), "{method}");
    match &pair.server_events[..] {
        [
            Event::Authenticated {
                user, method: m, ..
            },
        ] => {
            assert_eq!(user, USER);
            assert_eq!(*m, method);
        }
        other => panic!("{other:?}"),
    }
    pair
}

#[test]
fn test_every_method_back_to_back() {
    for method in Method::ALL {
        let pair = succeed_back_to_back(method);
        let server_keys = authenticated_keys(&pair.server_events);
        let client_keys = authenticated_keys(&pair.client_events);
        assert_eq!(
            server_keys.is_some(),
            method.provides_mppe_keys(),
            "{method}"
        );
        if let (Some(s), Some(c)) = (server_keys, client_keys) {
            assert_eq!(s.send, c.receive, "{method}");
            assert_eq!(s.receive, c.send, "{method}");
        } else {
            assert_eq!(client_keys, None);
        }
        // One exchange each way: Challenge (or nothing), Response, Success.
        let expected_server = if method == Method::Pap { 1 } else { 2 };
        assert_eq!(pair.server_sent.len(), expected_server, "{method}");
        assert_eq!(pair.client_sent.len(), 1, "{method}");
        assert_eq!(pair.server.poll_timeout(), None);
        assert_eq!(pair.client.poll_timeout(), None);
    }
}

#[test]
fn test_ms_chap_v2_keys_are_asymmetric_v1_symmetric() {
    let v2 = succeed_back_to_back(Method::MsChapV2);
    let keys = authenticated_keys(&v2.server_events).unwrap();
    assert_ne!(keys.send, keys.receive);
    let v1 = succeed_back_to_back(Method::MsChapV1);
    let keys = authenticated_keys(&v1.server_events).unwrap();
    assert_eq!(keys.send, keys.receive);
}

#[test]
fn test_server_replays_reference_session() {
    let mut server = Server::new(server_config(), Method::MsChapV2);
    let now = Instant::now();
    server.start(now, Nonces::new(0xfe, AUTHENTICATOR_CHALLENGE, [0; 16]));
    // server_sends_challenge: byte for byte what pppd sent.
    let challenge = server.poll_transmit().unwrap();
    assert_eq!(challenge.protocol, Protocol::Chap);
    assert_eq!(challenge.packet, CHALLENGE.to_vec());
    // server_receives_response (pptp-linux's) and sends pppd's Success.
    let mut secrets = Secrets::with_password(PASSWORD);
    let response = RESPONSE.to_vec();
    server.handle_packet(now, Protocol::Chap, &response, &mut secrets);
    let success = server.poll_transmit().unwrap();
    assert_eq!(success.packet, SUCCESS.to_vec());
    assert_eq!(server.poll_transmit(), None);
    let Some(Event::Authenticated {
        user,
        method,
        mppe_keys: Some(keys),
    }) = server.poll_event()
    else {
        panic!("not authenticated");
    };
    assert_eq!(user, USER);
    assert_eq!(method, Method::MsChapV2);
    assert_eq!(keys.send, StartKey(KEY_SERVER_TO_CLIENT));
    assert_eq!(keys.receive, StartKey(KEY_CLIENT_TO_SERVER));

    // client_retransmits_response: the same Success again, no second lookup or event.
    server.handle_packet(now, Protocol::Chap, &response, &mut secrets);
    assert_eq!(server.poll_transmit().unwrap().packet, SUCCESS.to_vec());
    assert_eq!(server.poll_event(), None);
    assert_eq!(secrets.lookups.get(), 1);
}

#[test]
fn test_server_stores_only_nt_hash() {
    let mut server = Server::new(server_config(), Method::MsChapV2);
    let now = Instant::now();
    server.start(now, Nonces::new(0xfe, AUTHENTICATOR_CHALLENGE, [0; 16]));
    server.poll_transmit();
    let mut lookup = |_: &SecretRequest<'_>| {
        Lookup::Ready(SecretAnswer::Secret(StoredSecret::NtHash(
            NtHash::from_password(PASSWORD).unwrap(),
        )))
    };
    server.handle_packet(now, Protocol::Chap, &RESPONSE, &mut lookup);
    assert_eq!(server.poll_transmit().unwrap().packet, SUCCESS.to_vec());
}

#[test]
fn test_client_replays_reference_session() {
    let mut client = Client::new(client_config(PASSWORD), Method::MsChapV2);
    let now = Instant::now();
    client.start(now, Nonces::new(0, PEER_CHALLENGE, [0; 16]));
    assert_eq!(client.poll_transmit(), None);
    client.handle_packet(now, Protocol::Chap, &CHALLENGE);
    // client_sends_response: byte for byte what pptp-linux's pppd sent.
    assert_eq!(client.poll_transmit().unwrap().packet, RESPONSE.to_vec());
    client.handle_packet(now, Protocol::Chap, &SUCCESS);
    let Some(Event::Authenticated {
        mppe_keys: Some(keys),
        ..
    }) = client.poll_event()
    else {
        panic!("not authenticated");
    };
    assert_eq!(keys.send, StartKey(KEY_CLIENT_TO_SERVER));
    assert_eq!(keys.receive, StartKey(KEY_SERVER_TO_CLIENT));
}

#[test]
fn test_client_rejects_bad_authenticator_response() {
    let mut client = Client::new(client_config(PASSWORD), Method::MsChapV2);
    let now = Instant::now();
    client.start(now, Nonces::new(0, PEER_CHALLENGE, [0; 16]));
    client.handle_packet(now, Protocol::Chap, &CHALLENGE);
    client.poll_transmit();
    let mut forged = SUCCESS.to_vec();
    forged[4 + 2] = b'5'; // S=5352...: one digit off.
    client.handle_packet(now, Protocol::Chap, &forged);
    assert_eq!(
        client.poll_event(),
        Some(Event::Failed {
            user: Some(USER.to_vec()),
            method: Method::MsChapV2,
            cause: FailureCause::BadAuthenticatorResponse
        })
    );
    assert!(!client.is_authenticated());
    // A Success without S= at all fails the same way.
    let mut client = Client::new(client_config(PASSWORD), Method::MsChapV2);
    client.start(now, Nonces::new(0, PEER_CHALLENGE, [0; 16]));
    client.handle_packet(now, Protocol::Chap, &CHALLENGE);
    client.handle_packet(now, Protocol::Chap, b"\x03\xfe\x00\x12M=Access granted");
    assert_eq!(
        failed_cause(&[client.poll_event().unwrap()]),
        FailureCause::BadAuthenticatorResponse
    );
}

fn fail_with_wrong_password(method: Method) -> Pair {
    let mut pair = Pair::new(
        method,
        server_config(),
        client_config("not-the-password"),
        Secrets::with_password(PASSWORD),
    );
    pair.lcp_opens();
    pair.drive();
    assert!(pair.server.is_done() && !pair.server.is_authenticated());
    assert!(pair.client.is_done() && !pair.client.is_authenticated());
    assert_eq!(
        failed_cause(&pair.server_events),
        FailureCause::WrongPassword
    );
    pair
}

#[test]
fn test_wrong_password_ms_chap_v2() {
    let pair = fail_with_wrong_password(Method::MsChapV2);
    let failure = &pair.server_sent.last().unwrap().packet;
    let challenge_hex = hex::encode_upper([0x5a; 16]);
    let text = format!("E=691 R=0 C={challenge_hex} V=3 M=Access denied");
    assert_eq!(&failure[..2], &[0x04, 0x10]);
    assert_eq!(usize::from(failure[3]), 4 + text.len());
    assert_eq!(&failure[4..], text.as_bytes());
    assert_eq!(
        failed_cause(&pair.client_events),
        FailureCause::PeerRefused(Some(MsChapErrorCode::AuthenticationFailure))
    );
    assert_eq!(pair.server.poll_timeout(), None);
    assert_eq!(pair.client.poll_timeout(), None);
}

#[test]
fn test_wrong_password_other_methods() {
    let v1 = fail_with_wrong_password(Method::MsChapV1);
    assert_eq!(&v1.server_sent.last().unwrap().packet[4..], b"E=691 R=0");
    assert_eq!(
        failed_cause(&v1.client_events),
        FailureCause::PeerRefused(Some(MsChapErrorCode::AuthenticationFailure))
    );
    let md5 = fail_with_wrong_password(Method::ChapMd5);
    assert_eq!(
        md5.server_sent.last().unwrap().packet,
        b"\x04\x10\x00\x11Access denied"
    );
    assert_eq!(
        failed_cause(&md5.client_events),
        FailureCause::PeerRefused(None)
    );
    let pap = fail_with_wrong_password(Method::Pap);
    assert_eq!(
        pap.server_sent.last().unwrap().packet,
        b"\x03\x20\x00\x12\x0dAccess denied"
    );
    assert_eq!(
        failed_cause(&pap.client_events),
        FailureCause::PeerRefused(None)
    );
}

#[test]
fn test_unknown_user_looks_like_wrong_password() {
    let wrong = fail_with_wrong_password(Method::MsChapV2);
    let mut secrets = Secrets::with_password(PASSWORD);
    secrets.secret = None;
    let mut unknown = Pair::new(
        Method::MsChapV2,
        server_config(),
        client_config(PASSWORD),
        secrets,
    );
    unknown.lcp_opens();
    unknown.drive();
    assert_eq!(
        failed_cause(&unknown.server_events),
        FailureCause::UnknownUser
    );
    assert_eq!(
        unknown.server_sent.last().unwrap().packet,
        wrong.server_sent.last().unwrap().packet
    );
}

#[test]
fn test_retransmitted_response_after_failure_gets_same_failure() {
    let mut pair = fail_with_wrong_password(Method::MsChapV2);
    let failure = pair.server_sent.last().unwrap().clone();
    let response = pair.client_sent[0].clone();
    pair.server_receives(vec![response]);
    assert_eq!(pair.server_sends(), vec![failure]);
    assert_eq!(pair.server_events.len(), 1);
}

#[test]
fn test_retry_after_failure_with_new_password() {
    let mut config = server_config();
    config.max_failures = 2;
    let mut client = client_config("typo");
    client.max_retries = 1;
    let mut pair = Pair::new(
        Method::MsChapV2,
        config,
        client,
        Secrets::with_password(PASSWORD),
    );
    pair.lcp_opens();
    let challenge = pair.server_sends();
    pair.client_receives(challenge);
    let response = pair.client_sends();
    pair.server_receives(response);
    // server_sends_failure_with_retry: R=1 and the next challenge in C=.
    let failure = pair.server_sends();
    let text = &failure[0].packet[4..];
    let parsed = crate::wire::chap::MsChapV2Failure::parse(text).unwrap();
    assert!(parsed.retry);
    let next = parsed.challenge.unwrap();
    assert_ne!(next, [0x5a; 16]);
    assert!(pair.server_events.is_empty());
    // The user types the right password; the client answers C= with Identifier + 1.
    pair.client.set_password(Password::new(PASSWORD));
    pair.client_receives(failure);
    let retry = pair.client_sends();
    assert_eq!(retry[0].packet[..2], [0x02, 0x11]);
    pair.server_receives(retry);
    pair.drive();
    authenticated_keys(&pair.server_events).unwrap();
    authenticated_keys(&pair.client_events).unwrap();
    assert_eq!(pair.secrets.lookups.get(), 2);
}

#[test]
fn test_retries_exhausted() {
    for method in Method::ALL {
        let mut config = server_config();
        config.max_failures = 2;
        let mut client = client_config("typo");
        // One retry: a CHAP-MD5 Failure does not say whether another Challenge follows.
        client.max_retries = 1;
        let mut pair = Pair::new(method, config, client, Secrets::with_password(PASSWORD));
        pair.lcp_opens();
        pair.drive();
        assert_eq!(pair.secrets.lookups.get(), 2, "{method}");
        assert_eq!(
            failed_cause(&pair.server_events),
            FailureCause::WrongPassword
        );
        assert!(pair.client.is_done(), "{method}");
        let last = &pair.server_sent.last().unwrap().packet;
        // CHAP Failure (4) or PAP Authenticate-Nak (3).
        let failure_code = if method == Method::Pap { 3 } else { 4 };
        assert_eq!(last[0], failure_code, "{method}");
    }
}

#[test]
fn test_delayed_secret_lookup() {
    let mut secrets = Secrets::with_password(PASSWORD);
    secrets.pending = true;
    let mut pair = Pair::new(
        Method::MsChapV2,
        server_config(),
        client_config(PASSWORD),
        secrets,
    );
    pair.lcp_opens();
    pair.drive();
    assert!(!pair.server.is_done());
    assert_eq!(pair.server_sent.len(), 1);
    let id = pair.secrets.last.unwrap();
    // The client repeats its Response while the store works: ignored, no new lookup.
    pair.advance_to(Duration::from_secs(3));
    pair.drive();
    assert_eq!(pair.secrets.lookups.get(), 1);
    assert_eq!(pair.server_sent.len(), 1);
    // A stale answer is ignored.
    pair.server.provide_secret(
        pair.now,
        LookupId(id.0.wrapping_add(7)),
        SecretAnswer::UnknownUser,
    );
    assert!(!pair.server.is_done());
    // store_answers: the Success goes out now.
    let answer = pair.secrets.answer();
    pair.server.provide_secret(pair.now, id, answer);
    pair.drive();
    let server_keys = authenticated_keys(&pair.server_events).unwrap();
    let client_keys = authenticated_keys(&pair.client_events).unwrap();
    assert_eq!(server_keys.send, client_keys.receive);
}

#[test]
fn test_lookup_that_never_answers_times_out() {
    let mut secrets = Secrets::with_password(PASSWORD);
    secrets.pending = true;
    let mut pair = Pair::new(
        Method::MsChapV2,
        server_config(),
        client_config(PASSWORD),
        secrets,
    );
    pair.lcp_opens();
    pair.drive();
    assert_eq!(
        pair.server.poll_timeout(),
        Some(pair.base + Duration::from_secs(30))
    );
    pair.advance_to(Duration::from_secs(30));
    pair.server_sends();
    match &pair.server_events[..] {
        [Event::Failed { user, cause, .. }] => {
            assert_eq!(user.as_deref(), Some(USER));
            assert_eq!(*cause, FailureCause::Timeout);
        }
        other => panic!("{other:?}"),
    }
    // The late answer changes nothing.
    let id = pair.secrets.last.unwrap();
    let answer = pair.secrets.answer();
    pair.server.provide_secret(pair.now, id, answer);
    assert_eq!(pair.server.poll_transmit(), None);
    assert!(!pair.server.is_authenticated());
}

#[test]
fn test_external_verifier() {
    let now = Instant::now();
    // A RADIUS-like store that verified the proof itself.
    let mut server = Server::new(server_config(), Method::MsChapV2);
    server.start(now, Nonces::new(0xfe, AUTHENTICATOR_CHALLENGE, [0; 16]));
    server.poll_transmit();
    let mut seen_response = Vec::new();
    let mut radius = |r: &SecretRequest<'_>| {
        if let Proof::Chap { response, .. } = r.proof {
            seen_response = response.to_vec();
        }
        Lookup::Pending
    };
    server.handle_packet(now, Protocol::Chap, &RESPONSE, &mut radius);
    assert_eq!(seen_response, RESPONSE[5..54]);
    server.provide_secret(
        now,
        LookupId(0),
        SecretAnswer::Accepted(ExternalSuccess {
            authenticator_response: Some(AuthenticatorResponse(AUTHENTICATOR_RESPONSE)),
            mppe_keys: None,
        }),
    );
    assert_eq!(server.poll_transmit().unwrap().packet, SUCCESS.to_vec());

    // Refused with "no dial-in permission".
    let mut server = Server::new(server_config(), Method::MsChapV2);
    server.start(now, server_nonces());
    server.poll_transmit();
    let mut response = RESPONSE.to_vec();
    response[1] = 0x10;
    let mut radius =
        |_: &SecretRequest<'_>| Lookup::Ready(SecretAnswer::Rejected(MsChapErrorCode::from(649)));
    server.handle_packet(now, Protocol::Chap, &response, &mut radius);
    assert!(server.poll_transmit().unwrap().packet[4..].starts_with(b"E=649 R=0 C="));
    assert_eq!(
        failed_cause(&[server.poll_event().unwrap()]),
        FailureCause::Rejected(MsChapErrorCode::NoDialinPermission)
    );
}

#[test]
fn test_nt_hash_secret_per_method() {
    for (method, works) in [
        (Method::MsChapV2, true),
        (Method::MsChapV1, true),
        (Method::ChapMd5, false),
        (Method::Pap, true),
    ] {
        let mut secrets = Secrets::with_password(PASSWORD);
        secrets.secret = Some(StoredSecret::NtHash(
            NtHash::from_password(PASSWORD).unwrap(),
        ));
        let mut pair = Pair::new(method, server_config(), client_config(PASSWORD), secrets);
        pair.lcp_opens();
        pair.drive();
        assert_eq!(pair.server.is_authenticated(), works, "{method}");
        if !works {
            assert_eq!(
                failed_cause(&pair.server_events),
                FailureCause::UnusableSecret
            );
        }
    }
}

#[test]
fn test_lost_challenge_is_retransmitted() {
    let mut pair = succeed_after_loss(|pair| {
        // The first Challenge is lost.
        assert_eq!(pair.server_sends().len(), 1);
        assert_eq!(
            pair.server.poll_timeout(),
            Some(pair.base + Duration::from_secs(3))
        );
        pair.advance_to(Duration::from_secs(3));
    });
    assert_eq!(pair.server_sent[0], pair.server_sent[1]);
    pair.drive();
}

#[test]
fn test_lost_response_answered_from_retransmitted_challenge() {
    let pair = succeed_after_loss(|pair| {
        let challenge = pair.server_sends();
        pair.client_receives(challenge);
        assert_eq!(pair.client_sends().len(), 1); // lost
        pair.advance_to(Duration::from_secs(3));
        let again = pair.server_sends();
        assert_eq!(again, vec![pair.server_sent[0].clone()]);
        pair.client_receives(again);
    });
    // The repeated Challenge got the very same Response.
    assert_eq!(pair.client_sent[0], pair.client_sent[1]);
}

#[test]
fn test_lost_success_answered_from_retransmitted_response() {
    let pair = succeed_after_loss(|pair| {
        let challenge = pair.server_sends();
        pair.client_receives(challenge);
        let response = pair.client_sends();
        pair.server_receives(response);
        assert_eq!(pair.server_sends().len(), 1); // the Success, lost
        assert_eq!(
            pair.client.poll_timeout(),
            Some(pair.base + Duration::from_secs(3))
        );
        pair.advance_to(Duration::from_secs(3));
    });
    assert_eq!(pair.client_sent[0], pair.client_sent[1]);
    assert_eq!(pair.server_sent[1], pair.server_sent[2]);
}

fn succeed_after_loss(lose: impl FnOnce(&mut Pair)) -> Pair {
    let mut pair = Pair::new(
        Method::MsChapV2,
        server_config(),
        client_config(PASSWORD),
        Secrets::with_password(PASSWORD),
    );
    pair.lcp_opens();
    lose(&mut pair);
    pair.drive();
    let s = authenticated_keys(&pair.server_events).unwrap();
    let c = authenticated_keys(&pair.client_events).unwrap();
    assert_eq!(s.send, c.receive);
    pair
}

#[test]
fn test_unanswered_challenges() {
    let mut config = server_config();
    config.timeout = Duration::from_secs(120);
    let mut server = Server::new(config, Method::MsChapV2);
    let base = Instant::now();
    server.start(base, server_nonces());
    let mut sent = 0;
    while let Some(at) = server.poll_timeout() {
        while server.poll_transmit().is_some() {
            sent += 1;
        }
        server.handle_timeout(at);
    }
    assert_eq!(sent, 10);
    assert_eq!(
        failed_cause(&[server.poll_event().unwrap()]),
        FailureCause::NoResponse
    );
    // With the default 30 s timeout the overall deadline comes first.
    let mut server = Server::new(server_config(), Method::MsChapV2);
    server.start(base, server_nonces());
    server.handle_timeout(base + Duration::from_secs(30));
    assert_eq!(
        failed_cause(&[server.poll_event().unwrap()]),
        FailureCause::Timeout
    );
}

#[test]
fn test_client_waits_for_challenge_until_timeout() {
    let mut client = Client::new(client_config(PASSWORD), Method::MsChapV2);
    let base = Instant::now();
    client.start(base, client_nonces());
    assert_eq!(client.poll_timeout(), Some(base + Duration::from_secs(30)));
    client.handle_timeout(base + Duration::from_secs(29));
    assert_eq!(client.poll_event(), None);
    client.handle_timeout(base + Duration::from_secs(30));
    assert_eq!(
        failed_cause(&[client.poll_event().unwrap()]),
        FailureCause::Timeout
    );
}

#[test]
fn test_pap_request_retransmitted_and_ack_repeated() {
    let mut pair = Pair::new(
        Method::Pap,
        server_config(),
        client_config(PASSWORD),
        Secrets::with_password(PASSWORD),
    );
    pair.lcp_opens();
    // client_sends_authenticate_request, lost.
    let request = pair.client_sends();
    assert_eq!(request[0].protocol, Protocol::Pap);
    assert_eq!(
        pair.server.poll_timeout(),
        Some(pair.base + Duration::from_secs(30))
    );
    pair.advance_to(Duration::from_secs(3));
    let again = pair.client_sends();
    assert_eq!(again, request);
    pair.server_receives(again);
    // server_sends_ack, lost; the client repeats, the server acks again.
    let ack = pair.server_sends();
    assert_eq!(ack[0].packet, b"\x02\x20\x00\x13\x0eAccess granted");
    pair.advance_to(Duration::from_secs(6));
    pair.drive();
    assert_eq!(pair.server_sent.len(), 2);
    assert_eq!(pair.server_sent[0], pair.server_sent[1]);
    assert!(pair.client.is_authenticated());
    assert_eq!(pair.secrets.lookups.get(), 1);
}

#[test]
fn test_wrong_identifiers_and_sizes_ignored() {
    let mut server = Server::new(server_config(), Method::MsChapV2);
    let now = Instant::now();
    server.start(now, Nonces::new(0xfe, AUTHENTICATOR_CHALLENGE, [0; 16]));
    server.poll_transmit();
    let mut secrets = Secrets::with_password(PASSWORD);
    let mut response = RESPONSE.to_vec();
    response[1] = 0xfd; // wrong identifier
    server.handle_packet(now, Protocol::Chap, &response, &mut secrets);
    // A Value one octet short (Value-Size 48, Name one longer).
    let mut short = RESPONSE.to_vec();
    short[4] = 48;
    server.handle_packet(now, Protocol::Chap, &short, &mut secrets);
    // The right packet on the wrong protocol, and a Challenge sent to the server.
    server.handle_packet(now, Protocol::Pap, &RESPONSE, &mut secrets);
    server.handle_packet(now, Protocol::Chap, &CHALLENGE, &mut secrets);
    assert_eq!(server.poll_transmit(), None);
    assert_eq!(server.stats().ignored_packets, 4);
    assert_eq!(secrets.lookups.get(), 0);
    // The good one still works.
    server.handle_packet(now, Protocol::Chap, &RESPONSE, &mut secrets);
    assert_eq!(server.poll_transmit().unwrap().packet, SUCCESS.to_vec());

    // The client ignores a Success for another identifier and a short MS-CHAPv2 challenge.
    let mut client = Client::new(client_config(PASSWORD), Method::MsChapV2);
    client.start(now, client_nonces());
    let mut short_challenge = CHALLENGE.to_vec();
    short_challenge[4] = 15;
    client.handle_packet(now, Protocol::Chap, &short_challenge);
    assert_eq!(client.poll_transmit(), None);
    client.handle_packet(now, Protocol::Chap, &CHALLENGE);
    client.poll_transmit().unwrap();
    let mut other_id = SUCCESS.to_vec();
    other_id[1] = 0x01;
    client.handle_packet(now, Protocol::Chap, &other_id);
    assert_eq!(client.poll_event(), None);
    assert_eq!(client.stats().ignored_packets, 2);
}

#[test]
fn test_debug_never_shows_secrets() {
    let config = client_config(PASSWORD);
    let mut client = Client::new(config.clone(), Method::Pap);
    client.start(Instant::now(), client_nonces());
    let request = client.poll_transmit().unwrap();
    for text in [
        format!("{config:?}"),
        format!("{request:?}"),
        format!("{client:?}"),
        format!("{:?}", StoredSecret::Password(Password::new(PASSWORD))),
        format!(
            "{:?}",
            Proof::Pap {
                password: PASSWORD.as_bytes()
            }
        ),
    ] {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    let pair = succeed_back_to_back(Method::MsChapV2);
    let keys = authenticated_keys(&pair.server_events).unwrap();
    let text = format!("{:?}", pair.server_events);
    assert!(!text.contains(&format!("{:?}", keys.send.0)), "{text}");
    assert!(text.contains("redacted"));
}

#[test]
fn test_nonces_derive_distinct_values() {
    let mut nonces = Nonces::from_random([7; 33]);
    assert_eq!(nonces.identifier(), 7);
    let first = nonces.next_value();
    let second = nonces.next_value();
    assert_eq!(first, [7; 16]);
    assert_ne!(first, second);
    assert_ne!(second, nonces.next_value());
}

proptest! {
    #[test]
    fn prop_server_survives_arbitrary_packets(
        method in proptest::sample::select(&Method::ALL[..]),
        packets in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..80)), 0..12),
    ) {
        let mut server = Server::new(server_config(), method);
        let mut client = Client::new(client_config(PASSWORD), method);
        let now = Instant::now();
        server.start(now, server_nonces());
        client.start(now, client_nonces());
        let mut secrets = Secrets::with_password(PASSWORD);
        for (pap, mut bytes) in packets {
            // Steer some packets past the header checks: a plausible header and length.
            if bytes.len() >= 4 {
                let len = bytes.len() as u16;
                bytes[2..4].copy_from_slice(&len.to_be_bytes());
            }
            let protocol = if pap { Protocol::Pap } else { Protocol::Chap };
            server.handle_packet(now, protocol, &bytes, &mut secrets);
            client.handle_packet(now, protocol, &bytes);
        }
        let mut sent = 0;
        while server.poll_transmit().is_some() { sent += 1; }
        while client.poll_transmit().is_some() { sent += 1; }
        prop_assert!(sent <= 2 * MAX_QUEUED_TRANSMITS);
    }
}

#[test]
fn test_pap_repeated_request_after_nak_is_not_another_attempt() {
    let mut config = server_config();
    config.max_failures = 3;
    let mut pair = Pair::new(
        Method::Pap,
        config,
        client_config("typo"),
        Secrets::with_password(PASSWORD),
    );
    pair.lcp_opens();
    let request = pair.client_sends();
    pair.server_receives(request.clone());
    let nak = pair.server_sends();
    assert_eq!(nak[0].packet[0], 3);
    // The Nak is lost; the client repeats the same Request.
    pair.server_receives(request);
    assert_eq!(pair.server_sends(), nak);
    assert_eq!(pair.secrets.lookups.get(), 1);
    assert!(!pair.server.is_done());
    // A new Request (new identifier) with the right password is the second attempt.
    let mut retry = Client::new(client_config(PASSWORD), Method::Pap);
    retry.start(pair.now, Nonces::new(0x21, [0; 16], [0; 16]));
    let request = retry.poll_transmit().unwrap();
    pair.server_receives(vec![request]);
    pair.server_sends();
    authenticated_keys(&pair.server_events);
    assert_eq!(pair.secrets.lookups.get(), 2);
}
