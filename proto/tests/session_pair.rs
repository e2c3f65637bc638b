//! A client and a server session dialling each other through the PPTP control connection
//! and GRE, on a virtual clock with faults (see `harness`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;

use std::net::Ipv4Addr;
use std::time::Duration;

use harness::{CLIENT_TUNNEL, Dir, Pair, RawPeer, SERVER_TUNNEL, Setup, USER};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::MppeStrength;
use xpptp_proto::ppp::auth::{AuthPolicy, FailureCause, Method, Password};
use xpptp_proto::ppp::ccp::{CcpFailure, MppePolicy, MppeRequirement};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::pptp::control::{CallClearCause, Event as CtrlEvent};
use xpptp_proto::session::{Cause, SessionEvent, SessionState};
use xpptp_proto::wire::pptp::{DisconnectResult, ErrorCode};

fn setup(method: Method, mppe: Option<(MppeStrength, bool)>) -> Setup {
    let mut setup = Setup::default();
    setup.server.auth = AuthPolicy::only(method);
    setup.client.auth = AuthPolicy::all();
    let policy = match mppe {
        None => MppePolicy {
            requirement: MppeRequirement::Denied,
            ..MppePolicy::default()
        },
        Some((strength, stateful)) => MppePolicy {
            requirement: MppeRequirement::Required,
            allow_40: strength == MppeStrength::Bits40,
            allow_56: strength == MppeStrength::Bits56,
            allow_128: strength == MppeStrength::Bits128,
            allow_stateful: stateful,
            prefer_stateful: stateful,
            stateful_mode: MppeMode::Stateful,
        },
    };
    setup.server.mppe = policy;
    setup.client.mppe = MppePolicy {
        prefer_stateful: false,
        ..policy
    };
    setup
}

fn connected(setup: Setup) -> Pair {
    let mut pair = Pair::new(setup);
    pair.connect();
    pair
}

fn assert_success(method: Method, mppe: Option<(MppeStrength, bool)>) {
    let pair = connected(setup(method, mppe));
    let (c, s) = pair.assert_established();
    assert_eq!(s.user.as_deref(), Some(USER.as_bytes()));
    assert_eq!(c.user.as_deref(), Some(USER.as_bytes()));
    assert_eq!(s.auth_method, Some(method));
    assert_eq!(c.auth_method, Some(method));
    assert_eq!(s.client_tunnel_address, CLIENT_TUNNEL);
    assert_eq!(s.server_tunnel_address, Some(SERVER_TUNNEL));
    assert_eq!(pair.server.authenticated(), Some(USER.as_bytes()));
    assert_eq!(pair.client.authenticated(), Some(USER.as_bytes()));
    match mppe {
        None => {
            assert_eq!(s.transmit, None);
            assert_eq!(s.receive, None);
            assert_eq!(s.mtu, s.peer_mru);
        }
        Some((strength, stateful)) => {
            let tx = s.transmit.expect("server transmit MPPE");
            let rx = s.receive.expect("server receive MPPE");
            assert_eq!(tx.strength, strength);
            assert_eq!(rx.strength, strength);
            let mode = if stateful {
                MppeMode::Stateful
            } else {
                MppeMode::Stateless
            };
            assert_eq!(tx.mode, mode);
            assert_eq!(rx.mode, mode);
            if method == Method::MsChapV2 {
                // MS-CHAPv2 keys are asymmetric (RFC 3079 §3).
                assert_ne!(tx.start_key, rx.start_key);
            }
            assert_eq!(s.mtu, s.peer_mru - 4);
        }
    }
    // The GRE numbers continue from what was sent and received.
    assert_eq!(s.gre.next_seq as usize, pair.sent_s2c_with_payload());
    assert_eq!(c.gre.next_seq as usize, pair.sent_c2s_with_payload() + 1);
    assert_eq!(s.gre.local_call_id, c.gre.peer_call_id);
    assert_eq!(pair.server.session().state(), SessionState::Established);
    assert_eq!(pair.client.session().state(), SessionState::Established);
}

trait Counts {
    fn sent_s2c_with_payload(&self) -> usize;
    fn sent_c2s_with_payload(&self) -> usize;
}

impl Counts for Pair {
    fn sent_s2c_with_payload(&self) -> usize {
        self.frames(Dir::ServerToClient).len()
    }
    fn sent_c2s_with_payload(&self) -> usize {
        self.frames(Dir::ClientToServer).len()
    }
}

#[test]
fn mschap_v2_mppe_128_stateless() {
    assert_success(Method::MsChapV2, Some((MppeStrength::Bits128, false)));
}

#[test]
fn mschap_v2_mppe_40_stateless() {
    assert_success(Method::MsChapV2, Some((MppeStrength::Bits40, false)));
}

#[test]
fn mschap_v2_mppe_128_stateful() {
    assert_success(Method::MsChapV2, Some((MppeStrength::Bits128, true)));
}

#[test]
fn mschap_v2_mppe_40_stateful() {
    assert_success(Method::MsChapV2, Some((MppeStrength::Bits40, true)));
}

#[test]
fn mschap_v1_mppe_128_stateless() {
    assert_success(Method::MsChapV1, Some((MppeStrength::Bits128, false)));
}

#[test]
fn mschap_v1_mppe_40_stateful() {
    assert_success(Method::MsChapV1, Some((MppeStrength::Bits40, true)));
}

#[test]
fn chap_md5_without_mppe() {
    assert_success(Method::ChapMd5, None);
}

#[test]
fn pap_without_mppe() {
    assert_success(Method::Pap, None);
}

#[test]
fn reference_like_session_frames_have_negotiated_headers() {
    let pair = connected(Setup::default());
    pair.assert_established();
    // After LCP, ACFC and PFC apply: IPCP frames from the server start with 0x80 0x21.
    let raw = pair
        .log_s2c
        .iter()
        .filter(|p| p.len() > 16)
        .collect::<Vec<_>>();
    assert!(
        raw.iter()
            .any(|p| p[12..].starts_with(&[0x80, 0x21]) || p[16..].starts_with(&[0x80, 0x21])),
        "IPCP sent without address/control"
    );
    // LCP always keeps ff 03 c0 21.
    for (protocol, _) in pair.frames(Dir::ServerToClient) {
        assert_ne!(protocol, 0x8057, "no IPV6CP from us");
    }
}

#[test]
fn wrong_password_is_refused_with_691_and_both_ends_tear_down() {
    let mut setup = Setup::default();
    setup.client.credentials.password = Password::new("not the password");
    let mut pair = Pair::new(setup);
    pair.connect();
    assert_eq!(
        pair.server.terminated(),
        Some(&Cause::AuthFailed(FailureCause::WrongPassword))
    );
    match pair.client.terminated() {
        Some(Cause::AuthFailed(FailureCause::PeerRefused(Some(code)))) => {
            assert_eq!(u32::from(*code), 691);
        }
        other => panic!("client cause {other:?}"),
    }
    // A CHAP Failure went out before the Terminate-Request.
    let frames = pair.frames(Dir::ServerToClient);
    let failure = frames
        .iter()
        .position(|(p, f)| *p == 0xc223 && f[0] == 4)
        .expect("CHAP Failure sent");
    let term = frames
        .iter()
        .position(|(p, f)| *p == 0xc021 && f[0] == 5)
        .expect("LCP Terminate-Request sent");
    assert!(failure < term);
    assert!(String::from_utf8_lossy(&frames[failure].1).contains("E=691"));
    // The server hung up the call with a CDN: General Error, what its Cause maps to, and
    // that is the last thing the client's control connection reports.
    let Some(&CtrlEvent::CallEstablished(call)) = pair
        .client
        .ctrl_events
        .iter()
        .find(|e| matches!(e, CtrlEvent::CallEstablished(_)))
    else {
        panic!("no call: {:?}", pair.client.ctrl_events)
    };
    assert_eq!(
        pair.client.ctrl_events.last(),
        Some(&CtrlEvent::CallCleared {
            local_call_id: Some(call.local_call_id),
            peer_call_id: Some(call.peer_call_id),
            cause: CallClearCause::PeerDisconnect {
                result: DisconnectResult::GeneralError,
                error: ErrorCode::NoError,
                cause_code: 0,
            },
        })
    );
    assert_eq!(
        pair.client
            .ctrl_events
            .iter()
            .filter(|e| matches!(e, CtrlEvent::CallCleared { .. }))
            .count(),
        1
    );
    assert!(pair.server.established().is_none());
    assert!(pair.client.established().is_none());
    assert_eq!(
        Cause::AuthFailed(FailureCause::WrongPassword).disconnect_result(),
        DisconnectResult::GeneralError
    );
}

#[test]
fn no_common_auth_method() {
    let mut setup = Setup::default();
    setup.server.auth = AuthPolicy::only(Method::MsChapV2);
    setup.client.auth = AuthPolicy::only(Method::Pap);
    let pair = connected(setup);
    assert_eq!(pair.server.terminated(), Some(&Cause::NoCommonAuthMethod));
    assert!(matches!(
        pair.client.terminated(),
        Some(Cause::PeerTerminated { .. } | Cause::NoCommonAuthMethod | Cause::PeerCallClear)
    ));
}

#[test]
fn mppe_required_but_refused_by_client() {
    let mut setup = Setup::default();
    setup.client.mppe.requirement = MppeRequirement::Denied;
    let pair = connected(setup);
    assert_eq!(
        pair.server.terminated(),
        Some(&Cause::Mppe(CcpFailure::MppeRefused))
    );
    assert!(pair.server.established().is_none());
    assert!(pair.client.terminated().is_some());
}

#[test]
fn mppe_required_with_pap_fails_without_keys() {
    let mut setup = Setup::default();
    setup.server.auth = AuthPolicy::only(Method::Pap);
    let pair = connected(setup);
    assert_eq!(pair.server.terminated(), Some(&Cause::MppeWithoutMsChap));
}

#[test]
fn no_address_available() {
    let setup = Setup {
        pool: None,
        ..Setup::default()
    };
    let pair = connected(setup);
    assert_eq!(pair.server.terminated(), Some(&Cause::NoAddress));
    assert!(pair.server.established().is_none());
}

/// The number of GRE packets each way in a clean handshake.
fn handshake_len() -> (usize, usize) {
    let pair = connected(Setup::default());
    pair.assert_established();
    (pair.sent_c2s, pair.sent_s2c)
}

#[test]
fn loss_of_any_single_packet_is_recovered() {
    let (c2s, s2c) = handshake_len();
    assert!(c2s > 8 && s2c > 8, "handshake {c2s}/{s2c}");
    for k in 1..=c2s {
        let mut pair = Pair::new(Setup::default());
        pair.faults_c2s.drop.insert(k);
        pair.connect();
        assert_last_established_agree(&pair, &format!("client packet {k} dropped"));
    }
    for k in 1..=s2c {
        let mut pair = Pair::new(Setup::default());
        pair.faults_s2c.drop.insert(k);
        pair.connect();
        assert_last_established_agree(&pair, &format!("server packet {k} dropped"));
    }
}

#[test]
fn duplicated_and_reordered_packets_are_harmless() {
    let (c2s, s2c) = handshake_len();
    for k in 1..=c2s.min(s2c) {
        let mut pair = Pair::new(Setup::default());
        pair.faults_c2s.duplicate.insert(k);
        pair.faults_s2c.delay.insert(k);
        pair.connect();
        assert_last_established_agree(&pair, &format!("packet {k} duplicated/delayed"));
    }
}

#[test]
fn a_blackout_during_the_handshake_is_survived() {
    let mut pair = Pair::new(Setup::default());
    pair.faults_s2c.blackout = Some((Duration::ZERO, Duration::from_secs(7)));
    pair.connect();
    assert_last_established_agree(&pair, "7 s blackout");
}

/// Both ends' latest Established agree (a lost last Ack makes the peer renegotiate an
/// NCP, and Established comes again).
fn assert_last_established_agree(pair: &Pair, what: &str) {
    let last = |events: &[SessionEvent]| {
        events.iter().rev().find_map(|e| match e {
            SessionEvent::Established(e) => Some((**e).clone()),
            _ => None,
        })
    };
    let c = last(&pair.client.events)
        .unwrap_or_else(|| panic!("{what}: client not established: {:?}", pair.client.events));
    let s = last(&pair.server.events)
        .unwrap_or_else(|| panic!("{what}: server not established: {:?}", pair.server.events));
    assert_eq!(c.transmit, s.receive, "{what}");
    assert_eq!(c.receive, s.transmit, "{what}");
    assert_eq!(c.client_tunnel_address, s.client_tunnel_address, "{what}");
    assert!(pair.client.terminated().is_none(), "{what}");
    assert!(pair.server.terminated().is_none(), "{what}");
}

#[test]
fn echo_timeout_ends_the_session() {
    let mut pair = connected(Setup::default());
    pair.assert_established();
    let from = pair.elapsed();
    pair.faults_c2s.blackout = Some((from, Duration::from_secs(100_000)));
    pair.faults_s2c.blackout = Some((from, Duration::from_secs(100_000)));
    pair.run_for(Duration::from_secs(200));
    assert_eq!(pair.server.terminated(), Some(&Cause::EchoTimeout));
    assert_eq!(pair.client.terminated(), Some(&Cause::EchoTimeout));
    assert_eq!(
        Cause::EchoTimeout.disconnect_result(),
        DisconnectResult::LostCarrier
    );
}

#[test]
fn keepalives_keep_an_idle_session_up() {
    let mut pair = connected(Setup::default());
    pair.assert_established();
    pair.run_for(Duration::from_secs(300));
    assert!(pair.server.terminated().is_none());
    assert!(pair.client.terminated().is_none());
    // Echo-Requests went both ways (LCP code 9).
    assert!(
        pair.frames(Dir::ServerToClient)
            .iter()
            .any(|(p, f)| *p == 0xc021 && f[0] == 9)
    );
}

#[test]
fn client_lcp_terminate() {
    let mut pair = connected(Setup::default());
    pair.client_terminates(Cause::OperatorTerminate);
    pair.drive();
    assert_eq!(pair.client.terminated(), Some(&Cause::OperatorTerminate));
    assert_eq!(
        pair.server.terminated(),
        Some(&Cause::PeerTerminated {
            reason: "Administrative termination".into()
        })
    );
}

#[test]
fn server_lcp_terminate() {
    let mut pair = connected(Setup::default());
    pair.server_terminates(Cause::Shutdown);
    pair.drive();
    assert_eq!(pair.server.terminated(), Some(&Cause::Shutdown));
    assert_eq!(
        pair.client.terminated(),
        Some(&Cause::PeerTerminated {
            reason: "Server shutdown".into()
        })
    );
    // The server's CDN reached the client's control connection.
    assert!(pair.client.ctrl_events.iter().any(|e| matches!(
        e,
        CtrlEvent::CallCleared {
            cause: CallClearCause::PeerDisconnect {
                result: DisconnectResult::AdminShutdown,
                ..
            },
            ..
        }
    )));
}

#[test]
fn pptp_linux_hang_up_terminate_then_clear_then_tcp_close() {
    let mut pair = connected(Setup::default());
    pair.client_closes_tcp_after_clear = true;
    pair.client_terminates(Cause::OperatorTerminate);
    pair.drive();
    assert!(matches!(
        pair.server.terminated(),
        Some(Cause::PeerTerminated { .. })
    ));
    assert_eq!(pair.client.terminated(), Some(&Cause::OperatorTerminate));
}

#[test]
fn call_clear_request_ends_the_server_session() {
    let mut pair = connected(Setup::default());
    pair.client_sends_call_clear();
    pair.drive();
    assert_eq!(pair.server.terminated(), Some(&Cause::PeerCallClear));
    assert_eq!(pair.client.terminated(), Some(&Cause::LocalCallClear));
}

#[test]
fn tcp_close_ends_the_server_session() {
    let mut pair = connected(Setup::default());
    pair.close_tcp_from_client();
    pair.drive();
    assert_eq!(pair.server.terminated(), Some(&Cause::TcpClosed));
    assert_eq!(pair.client.terminated(), Some(&Cause::TcpClosed));
}

#[test]
fn windows_ipcp_asks_for_dns_and_wins() {
    let mut setup = Setup::default();
    let servers = NameServers {
        primary_dns: Some(Ipv4Addr::new(10, 0, 0, 53)),
        secondary_dns: Some(Ipv4Addr::new(10, 0, 1, 53)),
        primary_nbns: Some(Ipv4Addr::new(10, 0, 0, 137)),
        secondary_nbns: None,
    };
    setup.server.ipcp.name_servers = servers;
    setup.client.ipcp.request_dns = true;
    setup.client.ipcp.request_nbns = true;
    let pair = connected(setup);
    let (c, s) = pair.assert_established();
    assert_eq!(c.name_servers, servers);
    assert_eq!(s.name_servers, servers);
}

/// An LCP packet in a PPP frame with ff 03.
fn lcp(code: u8, id: u8, data: &[u8]) -> Vec<u8> {
    let mut f = vec![0xff, 0x03, 0xc0, 0x21, code, id];
    f.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
    f.extend_from_slice(data);
    f
}

#[test]
fn windows_lcp_requests() {
    let mut peer = RawPeer::server(Setup::default());
    let server_request = peer.received[0].clone();
    assert_eq!(&server_request[..5], &[0xff, 0x03, 0xc0, 0x21, 0x01]);
    // Windows: MRU 1400, magic, PFC, ACFC, callback 6, MRRU 1614, endpoint discriminator.
    let options: &[u8] = &[
        0x01, 0x04, 0x05, 0x78, // MRU 1400
        0x05, 0x06, 0x11, 0x22, 0x33, 0x44, // magic
        0x07, 0x02, 0x08, 0x02, // PFC, ACFC
        0x0d, 0x03, 0x06, // callback
        0x11, 0x04, 0x06, 0x4e, // MRRU 1614
        0x13, 0x09, 0x01, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, // endpoint discriminator
    ];
    let answers = peer.send(&lcp(1, 0, options));
    let reject = answers
        .iter()
        .find(|f| f[..5] == [0xff, 0x03, 0xc0, 0x21, 0x04])
        .expect("Configure-Reject");
    assert_eq!(
        &reject[8..],
        &[
            0x0d, 0x03, 0x06, 0x11, 0x04, 0x06, 0x4e, 0x13, 0x09, 0x01, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff
        ]
    );
    // Identification (code 12) is ignored: no answer, no Code-Reject.
    let answers = peer.send(&lcp(12, 1, b"\x11\x22\x33\x44MSRASV5.20"));
    assert!(answers.is_empty(), "{answers:?}");
    // The acceptable request is Acked; Ack the server's request: LCP opens, CHAP starts.
    let answers = peer.send(&lcp(1, 2, &options[..14]));
    assert!(
        answers
            .iter()
            .any(|f| f[..5] == [0xff, 0x03, 0xc0, 0x21, 0x02])
    );
    let mut ack = server_request.clone();
    ack[4] = 2;
    let answers = peer.send(&ack);
    assert!(
        answers
            .iter()
            .any(|f| f.ends_with(b"pptpd") && f[..2] == [0xc2, 0x23]),
        "CHAP Challenge, with ACFC: {answers:?}"
    );
    // IPV6CP is Protocol-Rejected (LCP code 8, protocol 0x8057, the request after it).
    let ipv6cp = [
        0x80, 0x57, 0x01, 0x01, 0x00, 0x0e, 0x01, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8,
    ];
    let answers = peer.send(&ipv6cp);
    assert_eq!(answers.len(), 1);
    assert_eq!(&answers[0][..5], &[0xff, 0x03, 0xc0, 0x21, 0x08]);
    assert_eq!(&answers[0][8..10], &[0x80, 0x57]);
    assert_eq!(&answers[0][10..], &ipv6cp[2..]);
    // So are CBCP and an unknown protocol; IPv4 before the link is up is dropped.
    assert_eq!(peer.send(&[0xc0, 0x29, 1, 1, 0, 4]).len(), 1);
    assert_eq!(peer.send(&[0x40, 0x01, 1, 2, 3]).len(), 1);
    assert!(peer.send(&[0x21, 0x45, 0, 0, 20]).is_empty());
    assert_eq!(peer.session.link_stats().data_frames, 1);
    assert_eq!(peer.session.link_stats().protocol_rejects, 3);
}

#[test]
fn protocol_reject_is_cut_to_the_peer_mru() {
    let mut peer = RawPeer::server(Setup::default());
    let server_request = peer.received[0].clone();
    // MRU 128 (the smallest accepted).
    peer.send(&lcp(1, 0, &[0x01, 0x04, 0x00, 0x80]));
    let mut ack = server_request.clone();
    ack[4] = 2;
    peer.send(&ack);
    let mut big = vec![0x80, 0x57];
    big.extend(std::iter::repeat_n(0xab, 1000));
    let answers = peer.send(&big);
    assert_eq!(answers.len(), 1);
    // Header (ff 03 c0 21) plus an LCP packet of at most the MRU.
    assert_eq!(answers[0].len(), 4 + 128);
    assert_eq!(&answers[0][6..8], &128u16.to_be_bytes());
}

#[test]
fn unknown_protocol_before_lcp_opens_is_dropped() {
    let mut peer = RawPeer::server(Setup::default());
    assert!(peer.send(&[0x80, 0x57, 1, 1, 0, 4]).is_empty());
    assert_eq!(peer.session.link_stats().unknown_dropped, 1);
    // And the server's LCP retransmits on its timer.
    let before = peer.received.len();
    peer.advance(Duration::from_secs(3));
    assert_eq!(peer.received.len(), before + 1);
}

#[test]
fn cause_codes_and_texts() {
    assert_eq!(
        Cause::PeerCallClear.disconnect_result(),
        DisconnectResult::Request
    );
    assert_eq!(
        Cause::OperatorTerminate.disconnect_result(),
        DisconnectResult::AdminShutdown
    );
    assert_eq!(
        Cause::Shutdown.stop_reason(),
        xpptp_proto::wire::pptp::StopReason::LocalShutdown
    );
    assert_eq!(
        Cause::EchoTimeout.lcp_terminate_text(),
        "Peer not responding"
    );
    assert_eq!(
        Cause::AuthFailed(FailureCause::WrongPassword).to_string(),
        "authentication failed: wrong password"
    );
    assert_eq!(
        Cause::NoAddress.disconnect_error(),
        xpptp_proto::wire::pptp::ErrorCode::NoResource
    );
}

mod arbitrary_input {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// What the fuzz target `session_server` does, briefly: a server session takes
        /// arbitrary PPP frames in valid GRE (and arbitrary GRE) with timers in between,
        /// without panicking and with bounded output.
        #[test]
        fn server_session_takes_arbitrary_frames(
            records in proptest::collection::vec(
                (any::<u8>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..80)),
                0..24,
            )
        ) {
            let mut peer = RawPeer::server(Setup::default());
            for (delay, wrap, bytes) in records {
                peer.advance(Duration::from_millis(250) * u32::from(delay & 0x1f));
                let before = peer.received.len();
                if wrap {
                    let mut frame = vec![0xff, 0x03];
                    frame.extend_from_slice(&bytes);
                    peer.send(&frame);
                } else {
                    peer.send_gre(&bytes);
                }
                prop_assert!(peer.received.len() - before <= 64);
            }
        }
    }
}
