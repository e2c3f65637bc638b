//! A server and a client back to back through a simulated TCP byte pipe (random chunk sizes)
//! on a virtual clock, and the server fed the reference capture's client bytes.

use super::*;
use crate::wire::pptp::{IncomingCallRequest, MAGIC_COOKIE, UnknownMessage};
use proptest::prelude::*;

// The reference capture's control messages (Debian pptp-linux 1.10.0 talking to Poptop pptpd
// 1.4.0). Our default server config reproduces Poptop's SCCRP byte for byte, and its OCRP
// (call ID 0) given local call ID 0.
use crate::testing::reference::pptp as capture;

const SECOND: Duration = Duration::from_secs(1);

fn h(hex: &str) -> Vec<u8> {
    let digits: String = hex.split_whitespace().collect();
    hex::decode(digits).unwrap()
}

fn bytes_of(message: impl Into<Message>) -> Vec<u8> {
    let message = message.into();
    let mut buf = vec![0; message.buffer_len()];
    message.emit(&mut buf).unwrap();
    buf
}

/// Decodes a whole byte stream into messages (panics on any decode error).
fn decode_all(bytes: &[u8]) -> Vec<Message> {
    let mut decoder = StreamDecoder::new();
    let mut input = bytes;
    let mut out = Vec::new();
    while let Some(item) = decoder.decode(&mut input) {
        out.push(item.unwrap());
    }
    assert_eq!(decoder.buffered(), 0, "a message was cut short");
    out
}

/// One machine plus what it said, on the shared virtual clock.
struct End {
    conn: Connection,
    /// Bytes written to TCP and not yet delivered to the other end.
    wire: Vec<u8>,
    /// Every message it sent, decoded back from its bytes.
    sent: Vec<Message>,
    events: Vec<Event>,
}

impl End {
    fn new(conn: Connection) -> Self {
        let mut end = End {
            conn,
            wire: Vec::new(),
            sent: Vec::new(),
            events: Vec::new(),
        };
        end.drain();
        end
    }

    /// Drains the outputs: bytes onto the wire, events into the log.
    fn drain(&mut self) -> bool {
        let mut moved = false;
        while let Some(bytes) = self.conn.poll_transmit() {
            self.sent.extend(decode_all(&bytes));
            self.wire.extend_from_slice(&bytes);
            moved = true;
        }
        while let Some(event) = self.conn.poll_event() {
            self.events.push(event);
            moved = true;
        }
        moved
    }

    /// Feeds `bytes` as TCP delivers them, honouring back-pressure.
    fn feed(&mut self, now: Instant, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = self.conn.handle_bytes(now, bytes);
            bytes = &bytes[n..];
            let moved = self.drain();
            assert!(n > 0 || moved, "no progress");
        }
        self.drain();
    }

    fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }

    fn take_sent(&mut self) -> Vec<Message> {
        core::mem::take(&mut self.sent)
    }
}

/// Server and client on one virtual clock, joined by a TCP pipe that cuts its bytes into
/// chunks of pseudo-random sizes.
struct Pair {
    now: Instant,
    server: End,
    client: End,
    rng: u64,
}

impl Pair {
    fn new(server: Config, client: Config, seed: u64) -> Self {
        let now = Instant::now();
        Pair {
            now,
            server: End::new(Connection::server(server, now)),
            client: End::new(Connection::client(client, now)),
            rng: seed | 1,
        }
    }

    fn default_pair() -> Self {
        Pair::new(Config::default(), Config::pptp_linux(), 0x5eed)
    }

    fn next_chunk(&mut self) -> usize {
        // xorshift64: deterministic chunk sizes 1..=200.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng % 200) as usize + 1
    }

    /// Moves bytes both ways until nothing moves.
    fn drive(&mut self) {
        loop {
            self.server.drain();
            self.client.drain();
            if self.server.wire.is_empty() && self.client.wire.is_empty() {
                return;
            }
            let to_client = core::mem::take(&mut self.server.wire);
            let mut rest = &to_client[..];
            while !rest.is_empty() {
                let n = self.next_chunk().min(rest.len());
                self.client.feed(self.now, &rest[..n]);
                rest = &rest[n..];
            }
            let to_server = core::mem::take(&mut self.client.wire);
            let mut rest = &to_server[..];
            while !rest.is_empty() {
                let n = self.next_chunk().min(rest.len());
                self.server.feed(self.now, &rest[..n]);
                rest = &rest[n..];
            }
        }
    }

    /// Advances the clock by `by`, firing every timer on the way, in order, and driving
    /// the pipe after each.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = [
                self.server.conn.poll_timeout(),
                self.client.conn.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.server.conn.handle_timeout(self.now);
                    self.client.conn.handle_timeout(self.now);
                    self.drive();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    /// SCCRQ / SCCRP, both ends established.
    fn client_starts_control_connection(&mut self) {
        self.drive();
        assert_eq!(self.server.conn.state(), State::Established);
        assert_eq!(self.client.conn.state(), State::Established);
        assert!(matches!(
            self.server.take_events()[..],
            [Event::Established(peer)] if peer.vendor == "cananian" && peer.max_channels == 65535
        ));
        assert!(matches!(
            self.client.take_events()[..],
            [Event::Established(peer)] if peer.vendor == "linux" && peer.max_channels == 1
        ));
        self.server.take_sent();
        self.client.take_sent();
    }

    /// OCRQ, CallRequested, accept_call, OCRP, CallEstablished on both ends.
    fn client_places_call(&mut self, client_id: u16, server_id: u16) {
        self.client
            .conn
            .place_call(self.now, client_id, OutgoingCallParams::default())
            .unwrap();
        self.drive();
        let request = match self.server.take_events()[..] {
            [Event::CallRequested(request)] => request,
            ref other => panic!("{other:?}"),
        };
        assert_eq!(request.call_id, client_id);
        assert_eq!(request.recv_window_size, 3);
        assert_eq!((request.min_bps, request.max_bps), (2400, 10_000_000));
        self.server
            .conn
            .accept_call(self.now, client_id, server_id, 64)
            .unwrap();
        self.drive();
        let expected_server = CallEstablished {
            local_call_id: server_id,
            peer_call_id: client_id,
            peer_recv_window: 3,
            peer_packet_delay: 0,
            connect_speed: 10_000_000,
        };
        assert_eq!(
            self.server.take_events(),
            vec![Event::CallEstablished(expected_server)]
        );
        let expected_client = CallEstablished {
            local_call_id: client_id,
            peer_call_id: server_id,
            peer_recv_window: 64,
            peer_packet_delay: 0,
            connect_speed: 10_000_000,
        };
        assert_eq!(
            self.client.take_events(),
            vec![Event::CallEstablished(expected_client)]
        );
        self.server.take_sent();
        self.client.take_sent();
    }
}

fn established_pair() -> Pair {
    let mut pair = Pair::default_pair();
    pair.client_starts_control_connection();
    pair
}

fn pair_with_call() -> Pair {
    let mut pair = established_pair();
    pair.client_places_call(0x73ad, 0x1234);
    pair
}

#[test]
fn client_sends_pptp_linux_sccrq() {
    let now = Instant::now();
    let mut client = Connection::client(Config::pptp_linux(), now);
    assert_eq!(client.state(), State::WaitCtlReply);
    assert_eq!(client.poll_transmit(), Some(h(capture::SCCRQ)));
    assert_eq!(client.poll_transmit(), None);
    assert_eq!(client.poll_timeout(), Some(now + 10 * SECOND));
}

#[test]
fn call_setup_and_client_clears() {
    let mut pair = pair_with_call();
    let now = pair.now;

    // pppd's pptp plugin sends Set-Link-Info after LCP.
    pair.client
        .conn
        .set_link_info(now, 0x73ad, 0, 0xffff_ffff)
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.server.take_events(),
        vec![Event::LinkInfo {
            local_call_id: 0x1234,
            send_accm: 0,
            recv_accm: 0xffff_ffff
        }]
    );
    assert_eq!(pair.server.conn.call(0x1234).unwrap().send_accm, 0);

    pair.client.conn.clear_call(now, 0x73ad).unwrap();
    assert_eq!(
        pair.client.conn.call(0x73ad).unwrap().state,
        CallState::WaitDisconnect
    );
    pair.drive();
    assert_eq!(
        pair.server.take_sent(),
        vec![Message::CallDisconnectNotify(CallDisconnectNotify {
            call_id: 0x1234,
            result: DisconnectResult::Request,
            error: ErrorCode::NoError,
            cause_code: 0,
            call_statistics: FixedStr::empty(),
        })]
    );
    assert_eq!(
        pair.server.take_events(),
        vec![Event::CallCleared {
            local_call_id: Some(0x1234),
            peer_call_id: Some(0x73ad),
            cause: CallClearCause::PeerClearRequest,
        }]
    );
    assert_eq!(
        pair.client.take_events(),
        vec![Event::CallCleared {
            local_call_id: Some(0x73ad),
            peer_call_id: Some(0x1234),
            cause: CallClearCause::LocalClear { acknowledged: true },
        }]
    );
    assert_eq!(pair.server.conn.calls().count(), 0);
    assert_eq!(pair.client.conn.calls().count(), 0);

    // Then the client stops the control connection.
    pair.client.conn.stop(now, StopReason::GeneralRequest);
    assert_eq!(pair.client.conn.state(), State::WaitStopReply);
    pair.drive();
    assert_eq!(
        pair.client.take_events(),
        vec![Event::Closed(CloseCause::LocalStop {
            reason: StopReason::GeneralRequest,
            acknowledged: true
        })]
    );
    assert_eq!(
        pair.server.take_events(),
        vec![Event::Closed(CloseCause::PeerStop(
            StopReason::GeneralRequest
        ))]
    );
    assert!(pair.server.conn.is_closed() && pair.client.conn.is_closed());
    assert_eq!(pair.server.conn.poll_timeout(), None);
}

#[test]
fn server_disconnects_call_and_stops() {
    let mut pair = pair_with_call();
    let now = pair.now;
    assert_eq!(
        pair.client
            .conn
            .disconnect_call(now, 0x73ad, DisconnectResult::AdminShutdown),
        Err(CommandError::WrongRole(Role::Client))
    );
    pair.server
        .conn
        .disconnect_call(now, 0x1234, DisconnectResult::AdminShutdown)
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.client.take_events(),
        vec![Event::CallCleared {
            local_call_id: Some(0x73ad),
            peer_call_id: Some(0x1234),
            cause: CallClearCause::PeerDisconnect {
                result: DisconnectResult::AdminShutdown,
                error: ErrorCode::NoError,
                cause_code: 0
            },
        }]
    );
    assert!(matches!(
        pair.server.take_events()[..],
        [Event::CallCleared {
            cause: CallClearCause::LocalDisconnect(DisconnectResult::AdminShutdown),
            ..
        }]
    ));

    // A new call, then the server stops: the call goes with the connection.
    pair.client_places_call(0x73ae, 0x1235);
    pair.server.conn.stop(now, StopReason::LocalShutdown);
    pair.drive();
    let stop = CloseCause::LocalStop {
        reason: StopReason::LocalShutdown,
        acknowledged: true,
    };
    let peer_stop = CloseCause::PeerStop(StopReason::LocalShutdown);
    assert_eq!(
        pair.server.take_events(),
        vec![
            Event::CallCleared {
                local_call_id: Some(0x1235),
                peer_call_id: Some(0x73ae),
                cause: CallClearCause::ConnectionClosed(stop),
            },
            Event::Closed(stop)
        ]
    );
    assert_eq!(
        pair.client.take_events(),
        vec![
            Event::CallCleared {
                local_call_id: Some(0x73ae),
                peer_call_id: Some(0x1235),
                cause: CallClearCause::ConnectionClosed(peer_stop),
            },
            Event::Closed(peer_stop)
        ]
    );
    assert_eq!(
        pair.client.take_sent(),
        vec![Message::StopControlConnectionReply(
            StopControlConnectionReply {
                result: StopResult::Ok,
                error: ErrorCode::NoError
            }
        )]
    );
}

/// The server role fed the client half of the real session, as pptp-linux sent it:
/// SCCRQ, OCRQ, then CCRQ and an immediate TCP close (no StopCCRQ).
#[test]
fn capture_session_against_server() {
    let t0 = Instant::now();
    let mut server = End::new(Connection::server(Config::default(), t0));
    assert_eq!(server.conn.poll_timeout(), Some(t0 + 10 * SECOND));

    server.feed(t0, &h(capture::SCCRQ));
    // Our default answer is Poptop's SCCRP, octet for octet.
    assert_eq!(server.wire, h(capture::SCCRP));
    server.wire.clear();
    assert_eq!(server.conn.state(), State::Established);
    let peer = *server.conn.peer_info().unwrap();
    assert_eq!(peer.host_name, "local");
    assert_eq!(peer.vendor, "cananian");
    assert_eq!(peer.protocol_version, PROTOCOL_VERSION);
    assert_eq!(server.take_events(), vec![Event::Established(peer)]);

    let t1 = t0 + SECOND;
    server.feed(t1, &h(capture::OCRQ));
    assert!(server.wire.is_empty(), "no reply before the caller decides");
    let request = match server.take_events()[..] {
        [Event::CallRequested(request)] => request,
        ref other => panic!("{other:?}"),
    };
    assert_eq!(request.call_id, 0x73ad);
    assert_eq!(request.call_serial_number, 0);
    assert_eq!(request.bearer_type, BearerType::Any);
    assert_eq!(request.framing_type, FramingType::Any);
    assert_eq!(
        server.conn.calls().next().unwrap().state,
        CallState::WaitReply
    );
    // Poptop numbered its call 0 and echoed window 3: so do we, given the same choices.
    server.conn.accept_call(t1, 0x73ad, 0, 3).unwrap();
    server.drain();
    assert_eq!(server.wire, h(capture::OCRP));
    server.wire.clear();
    server.take_events();

    let t2 = t1 + 30 * SECOND;
    server.feed(t2, &h(capture::CCRQ));
    assert_eq!(
        server.take_sent().last(),
        Some(&Message::CallDisconnectNotify(CallDisconnectNotify {
            call_id: 0,
            result: DisconnectResult::Request,
            error: ErrorCode::NoError,
            cause_code: 0,
            call_statistics: FixedStr::empty(),
        }))
    );
    assert_eq!(server.wire.len(), 148);
    assert_eq!(&server.wire[..12], &h("009400011a2b3c4d000d0000")[..]);
    assert!(matches!(
        server.take_events()[..],
        [Event::CallCleared {
            local_call_id: Some(0),
            peer_call_id: Some(0x73ad),
            cause: CallClearCause::PeerClearRequest
        }]
    ));

    server.conn.handle_tcp_closed(t2);
    server.drain();
    assert_eq!(
        server.take_events(),
        vec![Event::Closed(CloseCause::TcpClosed)]
    );
    assert_eq!(server.conn.handle_bytes(t2, &h(capture::SCCRQ)), 156);
    assert_eq!(server.conn.poll_event(), None);
}

#[test]
fn whole_capture_in_one_read() {
    let t0 = Instant::now();
    let mut server = End::new(Connection::server(Config::default(), t0));
    let mut bytes = h(capture::SCCRQ);
    bytes.extend(h(capture::OCRQ));
    bytes.extend(h(capture::CCRQ));
    server.feed(t0, &bytes);
    let types: Vec<_> = server
        .take_sent()
        .iter()
        .map(Message::message_type)
        .collect();
    // The CCRQ clears the call before anyone accepted it: CDN with Call ID 0.
    assert_eq!(
        types,
        [
            ControlMessageType::StartControlConnectionReply,
            ControlMessageType::CallDisconnectNotify
        ]
    );
    assert!(matches!(
        server.take_events()[..],
        [
            Event::Established(_),
            Event::CallRequested(_),
            Event::CallCleared {
                local_call_id: None,
                peer_call_id: Some(0x73ad),
                cause: CallClearCause::PeerClearRequest
            }
        ]
    ));
}

#[test]
fn server_start_timeout() {
    let t0 = Instant::now();
    let mut server = End::new(Connection::server(Config::default(), t0));
    server.conn.handle_timeout(t0 + 9 * SECOND);
    server.drain();
    assert!(server.events.is_empty());
    // An Echo-Request does not count as the start: answered "Not-Connected".
    server.feed(t0 + 9 * SECOND, &bytes_of(EchoRequest { identifier: 9 }));
    assert_eq!(
        server.take_sent(),
        vec![Message::EchoReply(EchoReply {
            identifier: 9,
            result: EchoResult::GeneralError,
            error: ErrorCode::NotConnected
        })]
    );
    assert_eq!(server.conn.poll_timeout(), Some(t0 + 10 * SECOND));
    server.conn.handle_timeout(t0 + 10 * SECOND);
    server.drain();
    assert_eq!(
        server.take_events(),
        vec![Event::Closed(CloseCause::StartTimeout)]
    );
    assert!(server.wire.len() == 20 && server.sent.is_empty());
}

#[test]
fn client_start_timeout() {
    let mut pair = Pair::default_pair();
    // The server never hears the SCCRQ: lose it.
    pair.client.wire.clear();
    pair.advance(10 * SECOND);
    assert_eq!(
        pair.client.take_events(),
        vec![Event::Closed(CloseCause::StartTimeout)]
    );
    assert_eq!(
        pair.server.take_events(),
        vec![Event::Closed(CloseCause::StartTimeout)]
    );
}

#[test]
fn echo_keepalive_keeps_connection_up() {
    let mut pair = pair_with_call();
    // Both ends send an Echo-Request after 60 s of silence; each answers the other's.
    pair.advance(60 * SECOND);
    assert_eq!(pair.server.conn.stats().echo_requests_sent, 1);
    assert_eq!(pair.client.conn.stats().echo_requests_sent, 1);
    let echo_reply = |sent: &[Message]| {
        sent.iter()
            .any(|m| matches!(m, Message::EchoReply(r) if r.result == EchoResult::Ok))
    };
    assert!(echo_reply(&pair.server.take_sent()));
    assert!(echo_reply(&pair.client.take_sent()));
    pair.advance(10 * 60 * SECOND);
    assert_eq!(pair.server.conn.state(), State::Established);
    assert_eq!(pair.client.conn.state(), State::Established);
    assert_eq!(pair.server.conn.stats().echo_requests_sent, 11);
    assert!(pair.server.events.is_empty() && pair.client.events.is_empty());
}

#[test]
fn echo_timeout_closes() {
    let t0 = Instant::now();
    let mut server = End::new(Connection::server(Config::default(), t0));
    server.feed(t0, &h(capture::SCCRQ));
    server.feed(t0, &h(capture::OCRQ));
    server.conn.accept_call(t0, 0x73ad, 7, 3).unwrap();
    server.drain();
    server.take_events();
    server.take_sent();

    // Traffic at 30 s resets the idle clock.
    server.feed(t0 + 30 * SECOND, &bytes_of(EchoRequest { identifier: 1 }));
    server.take_sent();
    assert_eq!(server.conn.poll_timeout(), Some(t0 + 90 * SECOND));
    server.conn.handle_timeout(t0 + 90 * SECOND);
    server.drain();
    assert_eq!(
        server.take_sent(),
        vec![Message::EchoRequest(EchoRequest { identifier: 1 })]
    );
    // A reply with a wrong identifier does not count.
    server.feed(
        t0 + 100 * SECOND,
        &bytes_of(EchoReply {
            identifier: 2,
            result: EchoResult::Ok,
            error: ErrorCode::NoError,
        }),
    );
    assert_eq!(
        server.take_events(),
        vec![Event::Ignored {
            message_type: ControlMessageType::EchoReply,
            reason: IgnoreReason::EchoIdentifierMismatch(2)
        }]
    );
    assert_eq!(server.conn.poll_timeout(), Some(t0 + 150 * SECOND));
    server.conn.handle_timeout(t0 + 150 * SECOND);
    server.drain();
    let cause = CloseCause::EchoTimeout;
    assert_eq!(
        server.take_events(),
        vec![
            Event::CallCleared {
                local_call_id: Some(7),
                peer_call_id: Some(0x73ad),
                cause: CallClearCause::ConnectionClosed(cause)
            },
            Event::Closed(cause)
        ]
    );
    assert_eq!(cause.disconnect_result(), DisconnectResult::LostCarrier);
    assert_eq!(cause.to_string(), "no echo reply in time");
}

#[test]
fn echo_reply_clears_outstanding_request() {
    let t0 = Instant::now();
    let mut server = End::new(Connection::server(Config::default(), t0));
    server.feed(t0, &h(capture::SCCRQ));
    server.conn.handle_timeout(t0 + 60 * SECOND);
    server.drain();
    assert_eq!(
        server.take_sent().last(),
        Some(&Message::EchoRequest(EchoRequest { identifier: 1 }))
    );
    server.feed(
        t0 + 119 * SECOND,
        &bytes_of(EchoReply {
            identifier: 1,
            result: EchoResult::Ok,
            error: ErrorCode::NoError,
        }),
    );
    assert_eq!(server.conn.poll_timeout(), Some(t0 + 179 * SECOND));
    server.conn.handle_timeout(t0 + 120 * SECOND);
    assert_eq!(server.conn.state(), State::Established);
}

#[test]
fn echo_disabled() {
    let t0 = Instant::now();
    let config = Config {
        echo_interval: None,
        ..Config::default()
    };
    let mut server = End::new(Connection::server(config, t0));
    server.feed(t0, &h(capture::SCCRQ));
    assert_eq!(server.conn.poll_timeout(), None);
}

#[test]
fn bad_protocol_version() {
    let t0 = Instant::now();
    let mut server = End::new(Connection::server(Config::default(), t0));
    let mut sccrq = h(capture::SCCRQ);
    sccrq[12] = 2; // version 2.0
    server.feed(t0, &sccrq);
    match server.take_sent()[..] {
        [Message::StartControlConnectionReply(reply)] => {
            assert_eq!(reply.result, StartResult::BadProtocolVersion);
            assert_eq!(reply.protocol_version, PROTOCOL_VERSION);
        }
        ref other => panic!("{other:?}"),
    }
    assert_eq!(
        server.take_events(),
        vec![Event::Closed(CloseCause::BadProtocolVersion(0x0200))]
    );
    assert_eq!(
        CloseCause::BadProtocolVersion(0x0200).to_string(),
        "peer protocol version 2.0 not supported"
    );
}

#[test]
fn client_stops_on_bad_version_in_reply() {
    let t0 = Instant::now();
    let mut client = End::new(Connection::client(Config::pptp_linux(), t0));
    client.take_sent();
    let mut sccrp = h(capture::SCCRP);
    sccrp[12] = 2;
    client.feed(t0, &sccrp);
    assert_eq!(
        client.take_sent(),
        vec![Message::StopControlConnectionRequest(
            StopControlConnectionRequest {
                reason: StopReason::StopProtocol
            }
        )]
    );
    client.feed(
        t0,
        &bytes_of(StopControlConnectionReply {
            result: StopResult::Ok,
            error: ErrorCode::NoError,
        }),
    );
    assert_eq!(
        client.take_events(),
        vec![Event::Closed(CloseCause::BadProtocolVersion(0x0200))]
    );
}

#[test]
fn admission_refused_and_accepted() {
    let config = Config {
        ask_admission: true,
        ..Config::default()
    };
    let t0 = Instant::now();
    let mut server = End::new(Connection::server(config.clone(), t0));
    server.feed(t0, &h(capture::SCCRQ));
    assert!(server.wire.is_empty());
    assert!(matches!(
        server.take_events()[..],
        [Event::ConnectionRequested(peer)] if peer.vendor == "cananian"
    ));
    assert_eq!(server.conn.state(), State::WaitCtlReply);
    server
        .conn
        .refuse(t0, StartResult::NotAuthorized, ErrorCode::NoError)
        .unwrap();
    server.drain();
    assert!(matches!(
        server.take_sent()[..],
        [Message::StartControlConnectionReply(r)] if r.result == StartResult::NotAuthorized
    ));
    assert_eq!(
        server.take_events(),
        vec![Event::Closed(CloseCause::Refused {
            result: StartResult::NotAuthorized,
            error: ErrorCode::NoError
        })]
    );

    let mut server = End::new(Connection::server(config.clone(), t0));
    server.feed(t0, &h(capture::SCCRQ));
    server.take_events();
    server.conn.accept(t0).unwrap();
    server.drain();
    assert_eq!(server.wire, h(capture::SCCRP));
    assert!(matches!(server.take_events()[..], [Event::Established(_)]));
    assert_eq!(
        server.conn.accept(t0),
        Err(CommandError::WrongState(State::Established))
    );

    // Not answering within the start timeout closes.
    let mut server = End::new(Connection::server(config, t0));
    server.feed(t0, &h(capture::SCCRQ));
    server.conn.handle_timeout(t0 + 10 * SECOND);
    server.drain();
    assert_eq!(
        server.events.last(),
        Some(&Event::Closed(CloseCause::StartTimeout))
    );

    // The client sees the refusal.
    let mut pair = Pair::new(
        Config {
            ask_admission: true,
            ..Config::default()
        },
        Config::pptp_linux(),
        3,
    );
    pair.drive();
    pair.server
        .conn
        .refuse(pair.now, StartResult::GeneralError, ErrorCode::NoResource)
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.client.events.last(),
        Some(&Event::Closed(CloseCause::Refused {
            result: StartResult::GeneralError,
            error: ErrorCode::NoResource
        }))
    );
}

#[test]
fn incoming_call_refused() {
    let mut pair = established_pair();
    let icrq = IncomingCallRequest {
        call_id: 0x4242,
        call_serial_number: 1,
        bearer_type: BearerType::Digital,
        physical_channel_id: 0,
        dialed_number_len: 0,
        dialing_number_len: 0,
        dialed_number: FixedStr::empty(),
        dialing_number: FixedStr::empty(),
        subaddress: FixedStr::empty(),
    };
    let now = pair.now;
    pair.server.feed(now, &bytes_of(icrq));
    assert_eq!(
        pair.server.take_sent(),
        vec![Message::IncomingCallReply(IncomingCallReply {
            call_id: 0,
            peer_call_id: 0x4242,
            result: IncomingCallResult::DoNotAccept,
            error: ErrorCode::NoError,
            recv_window_size: 0,
            packet_transmit_delay: 0,
        })]
    );
    assert_eq!(
        pair.server.take_events(),
        vec![Event::Ignored {
            message_type: ControlMessageType::IncomingCallRequest,
            reason: IgnoreReason::IncomingCallRefused
        }]
    );
    assert_eq!(pair.server.conn.calls().count(), 0);
}

#[test]
fn too_many_calls() {
    let mut pair = pair_with_call();
    let now = pair.now;
    // The client's own limit is one call too.
    assert_eq!(
        pair.client
            .conn
            .place_call(now, 2, OutgoingCallParams::default()),
        Err(CommandError::TooManyCalls)
    );
    let mut ocrq = match decode_all(&h(capture::OCRQ))[..] {
        [Message::OutgoingCallRequest(m)] => m,
        _ => unreachable!(),
    };
    ocrq.call_id = 2;
    pair.server.feed(now, &bytes_of(ocrq));
    assert!(matches!(
        pair.server.take_sent()[..],
        [Message::OutgoingCallReply(OutgoingCallReply {
            peer_call_id: 2,
            result: OutgoingCallResult::GeneralError,
            error: ErrorCode::NoResource,
            ..
        })]
    ));
    assert_eq!(
        pair.server.take_events(),
        vec![Event::Ignored {
            message_type: ControlMessageType::OutgoingCallRequest,
            reason: IgnoreReason::TooManyCalls
        }]
    );
    // The same Call ID as the live call: Bad-Call ID.
    ocrq.call_id = 0x73ad;
    pair.server.feed(now, &bytes_of(ocrq));
    assert!(matches!(
        pair.server.take_sent()[..],
        [Message::OutgoingCallReply(OutgoingCallReply {
            error: ErrorCode::BadCallId,
            ..
        })]
    ));
    assert_eq!(pair.server.conn.calls().count(), 1);
}

#[test]
fn several_calls_when_configured() {
    let server = Config {
        max_calls: 3,
        ..Config::default()
    };
    let client = Config {
        max_calls: 3,
        ..Config::pptp_linux()
    };
    let mut pair = Pair::new(server, client, 11);
    pair.client_starts_control_connection();
    pair.client_places_call(10, 100);
    pair.client_places_call(11, 101);
    pair.client_places_call(12, 102);
    assert_eq!(
        pair.server.conn.accept_call(pair.now, 10, 103, 3),
        Err(CommandError::UnknownCall(10))
    );
    assert_eq!(
        pair.server.conn.accept_call(pair.now, 10, 100, 3),
        Err(CommandError::CallIdInUse(100))
    );
    let serials: Vec<u16> = pair.client.conn.calls().map(|c| c.serial_number).collect();
    assert_eq!(serials, [0, 1, 2]);
    pair.client.conn.handle_tcp_closed(pair.now);
    pair.client.drain();
    let events = pair.client.take_events();
    assert_eq!(events.len(), 4);
    assert!(events[..3].iter().all(|e| matches!(
        e,
        Event::CallCleared {
            cause: CallClearCause::ConnectionClosed(CloseCause::TcpClosed),
            ..
        }
    )));
}

#[test]
fn server_refuses_call_and_times_out_unanswered_call() {
    // The client waits longer than the server, so the server's time-out is what it sees.
    let client = Config {
        call_timeout: 90 * SECOND,
        ..Config::pptp_linux()
    };
    let mut pair = Pair::new(Config::default(), client, 7);
    pair.client_starts_control_connection();
    let now = pair.now;
    pair.client
        .conn
        .place_call(now, 5, OutgoingCallParams::default())
        .unwrap();
    pair.drive();
    pair.server.take_events();
    pair.server
        .conn
        .refuse_call(
            now,
            5,
            OutgoingCallResult::GeneralError,
            ErrorCode::NoResource,
        )
        .unwrap();
    pair.drive();
    assert_eq!(
        pair.client.take_events(),
        vec![Event::CallCleared {
            local_call_id: Some(5),
            peer_call_id: None,
            cause: CallClearCause::Refused {
                result: OutgoingCallResult::GeneralError,
                error: ErrorCode::NoResource
            }
        }]
    );
    assert!(matches!(
        pair.server.take_events()[..],
        [Event::CallCleared {
            local_call_id: None,
            peer_call_id: Some(5),
            ..
        }]
    ));

    // Nobody answers the next request: after 60 s the server sends OCRP "Time-out".
    pair.client
        .conn
        .place_call(now, 6, OutgoingCallParams::default())
        .unwrap();
    pair.drive();
    pair.server.take_events();
    pair.advance(60 * SECOND);
    assert!(pair.server.take_sent().iter().any(|m| matches!(
        m,
        Message::OutgoingCallReply(r) if r.result == OutgoingCallResult::TimeOut
    )));
    assert!(pair.server.take_events().contains(&Event::CallCleared {
        local_call_id: None,
        peer_call_id: Some(6),
        cause: CallClearCause::SetupTimeout
    }));
    assert!(pair.client.take_events().iter().any(|e| matches!(
        e,
        Event::CallCleared {
            local_call_id: Some(6),
            cause: CallClearCause::Refused {
                result: OutgoingCallResult::TimeOut,
                ..
            },
            ..
        }
    )));
    assert_eq!(pair.client.conn.calls().count(), 0);
}

#[test]
fn unknown_call_ids_are_ignored() {
    let mut pair = pair_with_call();
    let now = pair.now;
    pair.server
        .feed(now, &bytes_of(CallClearRequest { call_id: 0x9999 }));
    pair.server.feed(
        now,
        &bytes_of(SetLinkInfo {
            peer_call_id: 0x9999,
            send_accm: 0,
            recv_accm: 0,
        }),
    );
    assert!(pair.server.take_sent().is_empty());
    assert_eq!(
        pair.server.take_events(),
        vec![
            Event::Ignored {
                message_type: ControlMessageType::CallClearRequest,
                reason: IgnoreReason::UnknownCallId(0x9999)
            },
            Event::Ignored {
                message_type: ControlMessageType::SetLinkInfo,
                reason: IgnoreReason::UnknownCallId(0x9999)
            }
        ]
    );
    assert_eq!(pair.server.conn.stats().ignored, 2);
    assert_eq!(
        pair.server.conn.accept_call(now, 0x9999, 1, 3),
        Err(CommandError::UnknownCall(0x9999))
    );
    assert_eq!(pair.server.conn.calls().count(), 1);
}

#[test]
fn wan_error_recorded_by_client() {
    let mut pair = pair_with_call();
    let wen = WanErrorNotify {
        peer_call_id: 0x73ad,
        crc_errors: 1,
        framing_errors: 2,
        hardware_overruns: 3,
        buffer_overruns: 4,
        timeout_errors: 5,
        alignment_errors: 6,
    };
    let now = pair.now;
    pair.client.feed(now, &bytes_of(wen));
    assert_eq!(
        pair.client.take_events(),
        vec![Event::WanError {
            local_call_id: 0x73ad,
            errors: wen
        }]
    );
    assert_eq!(pair.client.conn.call(0x73ad).unwrap().wan_errors, Some(wen));
}

#[test]
fn stop_timeout_closes_unacknowledged() {
    let mut pair = established_pair();
    pair.server.conn.stop(pair.now, StopReason::LocalShutdown);
    // The StopCCRQ is lost.
    pair.server.drain();
    pair.server.wire.clear();
    pair.advance(3 * SECOND);
    assert_eq!(
        pair.server.take_events(),
        vec![Event::Closed(CloseCause::LocalStop {
            reason: StopReason::LocalShutdown,
            acknowledged: false
        })]
    );
    assert_eq!(pair.client.conn.state(), State::Established);
}

#[test]
fn crossing_stop_requests() {
    let mut pair = established_pair();
    pair.server.conn.stop(pair.now, StopReason::GeneralRequest);
    pair.client.conn.stop(pair.now, StopReason::GeneralRequest);
    pair.drive();
    for end in [&mut pair.server, &mut pair.client] {
        assert_eq!(
            end.take_events(),
            vec![Event::Closed(CloseCause::LocalStop {
                reason: StopReason::GeneralRequest,
                acknowledged: true
            })]
        );
    }
}

#[test]
fn framing_error_closes() {
    let mut pair = pair_with_call();
    let now = pair.now;
    let mut bad = bytes_of(EchoRequest { identifier: 1 });
    bad[4..8].copy_from_slice(&(MAGIC_COOKIE ^ 1).to_be_bytes());
    let mut stream = bytes_of(EchoRequest { identifier: 5 });
    stream.extend(&bad);
    stream.extend(bytes_of(EchoRequest { identifier: 6 }));
    pair.server.feed(now, &stream);
    // The good message before the break is answered; nothing after it.
    assert_eq!(pair.server.take_sent().len(), 1);
    let cause = CloseCause::FramingError(wire::Error::Malformed("PPTP magic cookie"));
    assert_eq!(
        pair.server.take_events(),
        vec![
            Event::CallCleared {
                local_call_id: Some(0x1234),
                peer_call_id: Some(0x73ad),
                cause: CallClearCause::ConnectionClosed(cause)
            },
            Event::Closed(cause)
        ]
    );
}

#[test]
fn rejected_and_unknown_messages_do_not_close() {
    let mut pair = established_pair();
    let now = pair.now;
    // An Echo-Request with Length 20 and a message of unknown type 99.
    let mut bytes = h("00140001 1a2b3c4d 0005 0000 00000007 00000000");
    bytes.extend(bytes_of(UnknownMessage::new(99, &[1, 2]).unwrap()));
    pair.server.feed(now, &bytes);
    let events = pair.server.take_events();
    assert!(matches!(events[0], Event::Rejected(r) if r.length == 20));
    assert_eq!(
        events[1],
        Event::Ignored {
            message_type: ControlMessageType::Unknown(99),
            reason: IgnoreReason::UnknownMessageType
        }
    );
    assert_eq!(pair.server.conn.state(), State::Established);
    assert_eq!(pair.server.conn.stats().rejected, 1);
}

#[test]
fn echo_flood_is_back_pressured() {
    let mut pair = established_pair();
    let now = pair.now;
    let one = bytes_of(EchoRequest { identifier: 1 });
    let flood: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
    let taken = pair.server.conn.handle_bytes(now, &flood);
    assert_eq!(taken, one.len() * QUEUE_LIMIT);
    assert_eq!(pair.server.conn.handle_bytes(now, &flood[taken..]), 0);
    // Draining lets it go on; every request gets its reply.
    pair.server.feed(now, &flood[taken..]);
    assert_eq!(pair.server.take_sent().len(), 1000);
}

#[test]
fn commands_in_wrong_state_or_role() {
    let t0 = Instant::now();
    let mut server = Connection::server(Config::default(), t0);
    assert_eq!(
        server.place_call(t0, 1, OutgoingCallParams::default()),
        Err(CommandError::WrongRole(Role::Server))
    );
    assert_eq!(
        server.accept_call(t0, 1, 2, 3),
        Err(CommandError::WrongState(State::Idle))
    );
    let mut client = Connection::client(Config::pptp_linux(), t0);
    assert_eq!(
        client.place_call(t0, 1, OutgoingCallParams::default()),
        Err(CommandError::WrongState(State::WaitCtlReply))
    );
    assert_eq!(
        client.accept(t0),
        Err(CommandError::WrongRole(Role::Client))
    );
    client.stop(t0, StopReason::GeneralRequest);
    assert!(client.is_closed());
}

#[test]
fn client_answers_echo_and_refuses_outgoing_call() {
    let mut pair = pair_with_call();
    let now = pair.now;
    pair.client
        .feed(now, &bytes_of(EchoRequest { identifier: 0xabc }));
    assert_eq!(
        pair.client.take_sent(),
        vec![Message::EchoReply(EchoReply {
            identifier: 0xabc,
            result: EchoResult::Ok,
            error: ErrorCode::NoError
        })]
    );
    pair.client.feed(now, &h(capture::OCRQ));
    assert!(matches!(
        pair.client.take_sent()[..],
        [Message::OutgoingCallReply(r)] if r.result == OutgoingCallResult::DoNotAccept
    ));
}

#[test]
fn cause_codes_and_text() {
    let stop = CloseCause::LocalStop {
        reason: StopReason::LocalShutdown,
        acknowledged: true,
    };
    assert_eq!(stop.stop_reason(), StopReason::LocalShutdown);
    assert_eq!(stop.disconnect_result(), DisconnectResult::AdminShutdown);
    assert_eq!(
        CloseCause::BadProtocolVersion(0).stop_reason(),
        StopReason::StopProtocol
    );
    assert_eq!(
        CloseCause::TcpClosed.disconnect_result(),
        DisconnectResult::LostCarrier
    );
    assert_eq!(
        CallClearCause::PeerClearRequest.disconnect_result(),
        DisconnectResult::Request
    );
    assert_eq!(
        CallClearCause::ConnectionClosed(CloseCause::TcpClosed).to_string(),
        "control connection closed: peer closed the TCP connection"
    );
    assert_eq!(
        IgnoreReason::UnknownCallId(7).to_string(),
        "unknown call ID 7"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Full setup and teardown through pipes with random chunking: same outcome whatever
    /// the segmentation.
    #[test]
    fn random_chunking(seed in any::<u64>(), client_id in any::<u16>(), server_id in any::<u16>()) {
        let mut pair = Pair::new(Config::default(), Config::pptp_linux(), seed);
        pair.client_starts_control_connection();
        pair.client_places_call(client_id, server_id);
        pair.client.conn.clear_call(pair.now, client_id).unwrap();
        pair.client.conn.stop(pair.now, StopReason::GeneralRequest);
        pair.drive();
        prop_assert!(pair.server.conn.is_closed());
        prop_assert!(pair.client.conn.is_closed());
        prop_assert_eq!(
            pair.server.events.last(),
            Some(&Event::Closed(CloseCause::PeerStop(StopReason::GeneralRequest)))
        );
    }

    /// Arbitrary bytes after a valid start never panic, and the queues stay bounded.
    #[test]
    fn arbitrary_input(bytes in proptest::collection::vec(any::<u8>(), 0..2000), chunk in 1usize..100) {
        let t0 = Instant::now();
        let mut server = Connection::server(Config::default(), t0);
        let mut input = h(capture::SCCRQ);
        input.extend(bytes);
        for piece in input.chunks(chunk) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = server.handle_bytes(t0, rest);
                rest = &rest[n..];
                prop_assert!(server.transmit.len() <= QUEUE_LIMIT + 3);
                prop_assert!(server.events.len() <= QUEUE_LIMIT + 3);
                while server.poll_transmit().is_some() {}
                while server.poll_event().is_some() {}
            }
        }
        server.handle_timeout(t0 + 1000 * SECOND);
        server.handle_tcp_closed(t0 + 1000 * SECOND);
        prop_assert!(server.is_closed());
    }

    /// Arbitrary messages, typed, in any state: no panic.
    #[test]
    fn arbitrary_messages(ids in proptest::collection::vec((0u16..16, any::<u16>(), any::<u32>()), 0..40)) {
        let t0 = Instant::now();
        let mut server = Connection::server(Config { max_calls: 4, ..Config::default() }, t0);
        let mut client = Connection::client(Config::pptp_linux(), t0);
        for (i, (kind, id, value)) in ids.into_iter().enumerate() {
            let now = t0 + SECOND * i as u32;
            let message: Message = match kind {
                0 => decode_all(&h(capture::SCCRQ))[0],
                1 => decode_all(&h(capture::SCCRP))[0],
                2 => StopControlConnectionRequest { reason: StopReason::from(value as u8) }.into(),
                3 => StopControlConnectionReply { result: StopResult::Ok, error: ErrorCode::NoError }.into(),
                4 => EchoRequest { identifier: value }.into(),
                5 => EchoReply { identifier: value, result: EchoResult::Ok, error: ErrorCode::NoError }.into(),
                6 => {
                    let mut m = match decode_all(&h(capture::OCRQ))[0] {
                        Message::OutgoingCallRequest(m) => m,
                        _ => unreachable!(),
                    };
                    m.call_id = id;
                    m.into()
                }
                7 => OutgoingCallReply {
                    call_id: id, peer_call_id: value as u16, result: OutgoingCallResult::Connected,
                    error: ErrorCode::NoError, cause_code: 0, connect_speed: value,
                    recv_window_size: 3, packet_processing_delay: 0, physical_channel_id: 0,
                }.into(),
                8 => CallClearRequest { call_id: id }.into(),
                9 => CallDisconnectNotify {
                    call_id: id, result: DisconnectResult::Request, error: ErrorCode::NoError,
                    cause_code: 0, call_statistics: FixedStr::empty(),
                }.into(),
                10 => SetLinkInfo { peer_call_id: id, send_accm: value, recv_accm: value }.into(),
                11 => {
                    let _ = server.accept_call(now, id, value as u16, 3);
                    let _ = client.place_call(now, id, OutgoingCallParams::default());
                    continue;
                }
                12 => {
                    let _ = client.clear_call(now, id);
                    let _ = server.disconnect_call(now, id, DisconnectResult::AdminShutdown);
                    continue;
                }
                _ => {
                    server.handle_timeout(now);
                    client.handle_timeout(now);
                    continue;
                }
            };
            server.handle_message(now, message);
            client.handle_message(now, message);
            while server.poll_transmit().is_some() {}
            while client.poll_transmit().is_some() {}
            while server.poll_event().is_some() {}
            while client.poll_event().is_some() {}
            prop_assert!(server.calls().count() <= 4);
        }
    }
}

#[test]
fn client_clears_call_before_its_reply() {
    let mut pair = established_pair();
    let now = pair.now;
    pair.client
        .conn
        .place_call(now, 9, OutgoingCallParams::default())
        .unwrap();
    // The CCRQ follows the OCRQ before the server's caller answered: the server's CDN
    // carries Call ID 0 and still ends the client's call.
    pair.client.conn.clear_call(now, 9).unwrap();
    pair.drive();
    assert!(matches!(
        pair.server.take_events()[..],
        [
            Event::CallRequested(_),
            Event::CallCleared {
                local_call_id: None,
                peer_call_id: Some(9),
                cause: CallClearCause::PeerClearRequest
            }
        ]
    ));
    assert_eq!(
        pair.client.take_events(),
        vec![Event::CallCleared {
            local_call_id: Some(9),
            peer_call_id: None,
            cause: CallClearCause::LocalClear { acknowledged: true }
        }]
    );
}

#[test]
fn client_call_timeouts() {
    let t0 = Instant::now();
    // No keepalive here: the unanswered Echo-Requests would close the connection first.
    let config = Config {
        echo_interval: None,
        ..Config::pptp_linux()
    };
    let mut client = End::new(Connection::client(config, t0));
    client.feed(t0, &h(capture::SCCRP));
    client
        .conn
        .place_call(t0, 1, OutgoingCallParams::default())
        .unwrap();
    client.drain();
    client.take_events();
    client.take_sent();
    // No OCRP: after 60 s the client gives up and clears the call at the server.
    client.conn.handle_timeout(t0 + 60 * SECOND);
    client.drain();
    assert!(
        client
            .take_sent()
            .contains(&Message::CallClearRequest(CallClearRequest { call_id: 1 }))
    );
    assert!(client.take_events().contains(&Event::CallCleared {
        local_call_id: Some(1),
        peer_call_id: None,
        cause: CallClearCause::SetupTimeout
    }));

    // An established call whose CCRQ gets no CDN is cleared after 60 s.
    let t1 = t0 + 61 * SECOND;
    client
        .conn
        .place_call(t1, 2, OutgoingCallParams::default())
        .unwrap();
    client.feed(
        t1,
        &bytes_of(OutgoingCallReply {
            call_id: 77,
            peer_call_id: 2,
            result: OutgoingCallResult::Connected,
            error: ErrorCode::NoError,
            cause_code: 0,
            connect_speed: 64000,
            recv_window_size: 16,
            packet_processing_delay: 0,
            physical_channel_id: 0,
        }),
    );
    assert!(
        client
            .take_events()
            .contains(&Event::CallEstablished(CallEstablished {
                local_call_id: 2,
                peer_call_id: 77,
                peer_recv_window: 16,
                peer_packet_delay: 0,
                connect_speed: 64000,
            }))
    );
    client.conn.clear_call(t1, 2).unwrap();
    assert_eq!(
        client.conn.clear_call(t1, 2),
        Err(CommandError::UnknownCall(2))
    );
    client.conn.handle_timeout(t1 + 60 * SECOND);
    client.drain();
    assert!(client.take_events().contains(&Event::CallCleared {
        local_call_id: Some(2),
        peer_call_id: Some(77),
        cause: CallClearCause::LocalClear {
            acknowledged: false
        }
    }));
}
