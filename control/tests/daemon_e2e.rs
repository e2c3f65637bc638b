//! The daemon end to end, as root in two namespaces joined by a veth pair: the daemon in
//! one, a client in the other running proto's client role (control connection over real
//! TCP, PPP over a raw GRE socket), and a mock datapath on a Unix socket that answers the
//! command protocol and records what it was told.
//!
//! * `dial_hang_up_refuse_terminate_and_shut_down`: the session comes up, the mock got an
//!   Establish whose keys, call IDs and addresses match the client's view; the client
//!   hangs up like pptp-linux (Call-Clear-Request, then TCP closed) and the mock sees the
//!   Remove, the address goes back to the pool and no session is left. Then a client with
//!   a wrong password is refused (the client sees an authentication failure) and nothing
//!   reaches the mock. Last, a shutdown while a session is up: LCP Terminate-Request
//!   through the datapath, Call-Disconnect-Notify Admin-Shutdown and Stop-Control-Connection
//!   Local-Shutdown to the client, the call removed and the address returned. Before
//!   that, after a hand-over: an LCP Echo-Request punted by the mock is answered through
//!   SendPpp, and an operator terminate ends the session (the mock plays the client's
//!   Terminate-Ack back, as the datapath would punt it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use xpptp_control::daemon::SharedPool;
use xpptp_control::pool::AddressPool;
use xpptp_proto::command::{Message, PppFromPeer};
use xpptp_proto::pptp::control::{self, CloseCause, Event};
use xpptp_proto::session::Cause;
use xpptp_proto::wire::pptp::{DisconnectResult, StopReason};

use common::daemon::{
    CLIENT_CALL_ID, CLIENT_TUNNEL, Client, MockDatapath, PASSWORD, SERVER_TUNNEL, ShutdownOnDrop,
    USER, established_calls, lcp_sent, removed_calls, start_daemon,
};
use common::netns::{VethPair, run_in};
use common::{TempDir, eventually};

#[test]
fn dial_hang_up_refuse_terminate_and_shut_down() {
    let pair = VethPair::create("ctld", 1);
    let dir = TempDir::new("ctld-e2e");
    let socket = dir.0.join("datapath.sock");
    let pool = Arc::new(SharedPool::new(
        AddressPool::new(&[CLIENT_TUNNEL], &[SERVER_TUNNEL], []).unwrap(),
    ));
    let mock = MockDatapath {
        report_calls: false,
        ..MockDatapath::default()
    };
    let (log, pushers) = (Arc::clone(&mock.log), Arc::clone(&mock.pushers));
    let (handle, daemon) = start_daemon(
        &pair.a.netns,
        pair.a.addr,
        &socket,
        Arc::clone(&pool),
        mock,
        None,
    );
    let guard = ShutdownOnDrop(handle.clone());
    let server = pair.a.addr;
    let client_outer = pair.b.addr;

    run_in(&pair.b.netns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            // The right password: established, pushed, hung up, removed, released.
            let mut client = Client::dial(server, PASSWORD).await;
            client
                .drive_until("established", |c| c.established().is_some())
                .await;
            let ours = client.established().unwrap().clone();
            eventually("the datapath gets the call", || {
                !established_calls(&log).is_empty()
            })
            .await;
            let pushed = established_calls(&log);
            assert_eq!(pushed.len(), 1, "one Establish");
            let theirs = &pushed[0];
            assert_eq!(theirs.peer_call_id, CLIENT_CALL_ID);
            assert_eq!(theirs.local_call_id, ours.peer_call_id);
            assert_ne!(theirs.local_call_id, 0);
            assert_eq!(theirs.peer_address, client_outer);
            assert_eq!(theirs.client_tunnel_address, CLIENT_TUNNEL);
            assert_eq!(ours.client_tunnel_address, CLIENT_TUNNEL);
            assert_eq!(theirs.server_tunnel_address, Some(SERVER_TUNNEL));
            assert_eq!(theirs.user.as_deref(), Some(USER.as_bytes()));
            assert!(
                theirs.transmit.is_some() && theirs.receive.is_some(),
                "MPPE on"
            );
            assert_eq!(
                theirs.transmit, ours.receive,
                "server's send key is our receive key"
            );
            assert_eq!(
                theirs.receive, ours.transmit,
                "server's receive key is our send key"
            );
            assert!(pool.lock().is_leased(CLIENT_TUNNEL));
            assert_eq!(pool.lock().leased(), 1);
            let sessions = handle.sessions();
            assert_eq!(sessions.len(), 1);
            assert_eq!(sessions[0].local_call_id, theirs.local_call_id);
            assert_eq!(sessions[0].peer, client_outer);
            assert!(handle.datapath().is_connected());

            client.hang_up().await;
            let call = theirs.local_call_id;
            eventually("the datapath removes the call", || {
                removed_calls(&log).contains(&call)
            })
            .await;
            eventually("the address is back in the pool", || {
                pool.lock().leased() == 0
            })
            .await;
            eventually("no session is left", || handle.sessions().is_empty()).await;
            assert!(handle.datapath().established_calls().is_empty());

            // A wrong password: the client is told, nothing reaches the datapath.
            let mut intruder = Client::dial(server, "not-the-password").await;
            intruder
                .drive_until("terminated", |c| c.terminated().is_some())
                .await;
            let cause = intruder.terminated().unwrap().clone();
            assert!(
                matches!(cause, Cause::AuthFailed(_)),
                "the client sees an authentication failure, not {cause:?}"
            );
            assert!(intruder.established().is_none());
            assert_eq!(
                established_calls(&log).len(),
                1,
                "no Establish for the intruder"
            );
            eventually("the failed session is gone", || {
                handle.sessions().is_empty()
            })
            .await;
            assert!(
                pool.lock().leased() == 0,
                "no address given to the intruder"
            );

            // After the hand-over: a punted LCP Echo-Request is answered through the
            // datapath; an operator terminate ends the session.
            let mut third = Client::dial(server, PASSWORD).await;
            third
                .drive_until("established", |c| c.established().is_some())
                .await;
            eventually("the datapath gets the third call", || {
                established_calls(&log).len() == 2
            })
            .await;
            let call = established_calls(&log)[1].local_call_id;
            let echo = vec![0xff, 0x03, 0xc0, 0x21, 9, 0x42, 0, 8, 1, 2, 3, 4];
            for push in pushers.lock().unwrap().iter() {
                let _ = push.send(Message::PppFromPeer(PppFromPeer {
                    call,
                    frame: echo.clone(),
                }));
            }
            eventually("the Echo-Reply goes out through the datapath", || {
                lcp_sent(&log, call).contains(&(10, 0x42))
            })
            .await;
            assert!(handle.terminate(call), "the session exists");
            third
                .drive_until("the call is cleared", |c| {
                    c.ctrl_events
                        .iter()
                        .any(|e| matches!(e, Event::CallCleared { .. }))
                })
                .await;
            assert!(
                third.ctrl_events.iter().any(|e| matches!(
                    e,
                    Event::CallCleared {
                        cause: control::CallClearCause::PeerDisconnect {
                            result: DisconnectResult::AdminShutdown,
                            ..
                        },
                        ..
                    }
                )),
                "Call-Disconnect-Notify Admin-Shutdown: {:?}",
                third.ctrl_events
            );
            eventually("the datapath removes the third call", || {
                removed_calls(&log).contains(&call)
            })
            .await;
            eventually("the address is back", || pool.lock().leased() == 0).await;
            drop(third);

            // Shutdown: the server terminates LCP, then clears the call and stops the
            // control connection, and takes the call out of the datapath.
            let mut last = Client::dial(server, PASSWORD).await;
            last.drive_until("established", |c| c.established().is_some())
                .await;
            eventually("the datapath gets the last call", || {
                established_calls(&log).len() == 3
            })
            .await;
            let call = established_calls(&log)[2].local_call_id;
            handle.shutdown();
            last.drive_until("the control connection is closed", |c| c.ctrl.is_closed())
                .await;
            assert!(
                last.ctrl_events.iter().any(|e| matches!(
                    e,
                    Event::CallCleared {
                        cause: control::CallClearCause::PeerDisconnect {
                            result: DisconnectResult::AdminShutdown,
                            ..
                        },
                        ..
                    }
                )),
                "Call-Disconnect-Notify Admin-Shutdown: {:?}",
                last.ctrl_events
            );
            assert!(
                last.ctrl_events.iter().any(|e| matches!(
                    e,
                    Event::Closed(CloseCause::PeerStop(StopReason::LocalShutdown))
                )),
                "Stop-Control-Connection-Request Local-Shutdown: {:?}",
                last.ctrl_events
            );
            assert!(
                lcp_sent(&log, call).iter().any(|(code, _)| *code == 5),
                "LCP Terminate-Request sent through the datapath"
            );
            eventually("the datapath removes the last call", || {
                removed_calls(&log).contains(&call)
            })
            .await;
            eventually("the address is back", || pool.lock().leased() == 0).await;
        });
    });

    drop(guard);
    daemon.join().expect("daemon thread");
    assert!(handle.sessions().is_empty());
}
