//! The control socket against a running daemon, as root in two namespaces joined by a
//! veth pair (common::daemon, shared with daemon_e2e.rs: the daemon and a mock datapath in one, a
//! client running proto's client role in the other; Unix sockets are reached by path from
//! anywhere).
//!
//! `list_get_stats_terminate_and_refuse_strangers`: a dialled session is listed with its
//! user, state, addresses, MPPE and the mock datapath's counters merged by call ID; GetSession by
//! user gives what was negotiated (auth method, IPCP addresses, MRU, magic); GetStats
//! counts the set-up and passes the datapath's worker stats through; a connection from
//! another user than root is refused with PermissionDenied even with the socket's modes
//! opened up; Terminate by ID ends the session (the client sees Call-Disconnect-Notify,
//! the mock datapath sees Remove), and a second Terminate of it is NotFound; the socket
//! file is removed when the daemon stops.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use xpptp_control::api::client::{ClientError, ControlClient};
use xpptp_control::daemon::SharedPool;
use xpptp_control::pool::AddressPool;
use xpptp_proto::control_api::{
    AuthMethod, FailureCode, SessionSelector, SessionState, TerminateTarget,
};
use xpptp_proto::pptp::control::{self, Event};
use xpptp_proto::wire::pptp::DisconnectResult;

use common::daemon::{
    CLIENT_CALL_ID, CLIENT_TUNNEL, Client, MockDatapath, PASSWORD, SERVER_TUNNEL, ShutdownOnDrop,
    USER, established_calls, removed_calls, start_daemon, worker_stats,
};
use common::netns::{VethPair, run_in};
use common::{TempDir, eventually};

/// Runs `f` with a blocking control client on another thread (the client is blocking).
async fn with_client<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce(&mut ControlClient) -> T + Send + 'static,
) -> T {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut client = ControlClient::connect(&path, "api test").expect("control socket");
        f(&mut client)
    })
    .await
    .unwrap()
}

#[test]
fn list_get_stats_terminate_and_refuse_strangers() {
    let pair = VethPair::create("ctla", 1);
    let dir = TempDir::new("ctld-api");
    let socket = dir.0.join("datapath.sock");
    let control_socket = dir.0.join("run").join("control.sock");
    let pool = Arc::new(SharedPool::new(
        AddressPool::new(&[CLIENT_TUNNEL], &[SERVER_TUNNEL], []).unwrap(),
    ));
    let mock = MockDatapath {
        report_calls: true,
        ..MockDatapath::default()
    };
    let log = Arc::clone(&mock.log);
    let (handle, daemon) = start_daemon(
        &pair.a.netns,
        pair.a.addr,
        &socket,
        Arc::clone(&pool),
        mock,
        Some(control_socket.clone()),
    );
    let guard = ShutdownOnDrop(handle.clone());
    let server = pair.a.addr;
    let client_outer = pair.b.addr;

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&control_socket), 0o600, "socket mode");
    assert_eq!(
        mode(control_socket.parent().unwrap()),
        0o750,
        "directory mode"
    );

    run_in(&pair.b.netns, || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let path = control_socket.clone();
            let empty = with_client(&path, |c| c.list_sessions(None, None).unwrap()).await;
            assert!(empty.is_empty());

            let mut client = Client::dial(server, PASSWORD).await;
            client
                .drive_until("established", |c| c.established().is_some())
                .await;
            eventually("the datapath gets the call", || {
                established_calls(&log).len() == 1
            })
            .await;
            let call = established_calls(&log)[0].local_call_id;

            let (listed, by_state, by_other_user, hello) = with_client(&path, |c| {
                (
                    c.list_sessions(None, None).unwrap(),
                    c.list_sessions(Some(SessionState::Starting), None).unwrap(),
                    c.list_sessions(None, Some(b"nobody")).unwrap(),
                    c.server().clone(),
                )
            })
            .await;
            assert!(hello.server.starts_with("xpptp-control"));
            assert!(hello.datapath_connected);
            assert_eq!(listed.len(), 1, "{listed:?}");
            let s = &listed[0];
            assert_eq!(s.id, call);
            assert_eq!(s.peer_call_id, CLIENT_CALL_ID);
            assert_eq!(s.user.as_deref(), Some(USER.as_bytes()));
            assert_eq!(s.state, SessionState::Established);
            assert_eq!(s.peer_address, client_outer);
            assert_eq!(s.tunnel_address, Some(CLIENT_TUNNEL));
            assert!(s.transmit.is_some() && s.receive.is_some(), "MPPE on");
            let traffic = s.traffic.expect("the datapath's counters merged");
            assert_eq!((traffic.rx.packets, traffic.tx.bytes), (11, 2200));
            assert_eq!(traffic.dropped, 3);
            assert_eq!(traffic.upstream_owner, Some(0));
            assert!(by_state.is_empty(), "the state filter");
            assert!(by_other_user.is_empty(), "the user filter");

            let (details, stats) = with_client(&path, |c| {
                (
                    c.get_session(SessionSelector::User(USER.as_bytes().to_vec()))
                        .unwrap(),
                    c.stats().unwrap(),
                )
            })
            .await;
            assert_eq!(details.len(), 1);
            assert_eq!(details[0].summary.id, call);
            assert_eq!(
                details[0].peer_vendor, "cananian",
                "pptp-linux's vendor string"
            );
            let n = details[0].negotiated.expect("negotiated");
            assert_eq!(n.auth_method, Some(AuthMethod::MsChapV2));
            assert_eq!(n.server_tunnel_address, Some(SERVER_TUNNEL));
            assert_eq!(n.client_tunnel_address, CLIENT_TUNNEL);
            assert_ne!(n.peer_mru, 0);
            assert_ne!(n.our_magic, 0, "our LCP magic");
            assert_eq!(n.transmit, s.transmit);
            assert_eq!(stats.sessions_established, 1);
            assert_eq!(stats.sessions_starting, 0);
            assert_eq!(stats.setups_total, 1);
            assert_eq!(stats.auth_failures, 0);
            assert_eq!(stats.refusals.len(), 10, "every reason");
            assert!(stats.datapath_connected);
            assert_eq!(stats.workers, vec![worker_stats()]);

            // A stranger: modes opened up, the credential check still refuses.
            std::fs::set_permissions(
                control_socket.parent().unwrap(),
                std::fs::Permissions::from_mode(0o777),
            )
            .unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
            let stranger_path = path.clone();
            let refused = std::thread::spawn(move || {
                let nobody = rustix::process::Uid::from_raw(65534);
                rustix::thread::set_thread_res_uid(nobody, nobody, nobody)
                    .expect("setresuid on this thread (needs root)");
                ControlClient::connect(&stranger_path, "stranger").map(|_| ())
            })
            .join()
            .unwrap();
            match refused {
                Err(ClientError::Failed { code, .. }) => {
                    assert_eq!(code, FailureCode::PermissionDenied)
                }
                other => panic!("a non-root peer must be refused, got {other:?}"),
            }

            // Terminate by ID: the client sees Call-Disconnect-Notify, the datapath Remove.
            let count = with_client(&path, move |c| {
                c.terminate(TerminateTarget::Id(call)).unwrap()
            })
            .await;
            assert_eq!(count, 1);
            client
                .drive_until("the call is cleared", |c| {
                    c.ctrl_events
                        .iter()
                        .any(|e| matches!(e, Event::CallCleared { .. }))
                })
                .await;
            assert!(
                client.ctrl_events.iter().any(|e| matches!(
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
                client.ctrl_events
            );
            eventually("the datapath removes the call", || {
                removed_calls(&log).contains(&call)
            })
            .await;
            eventually("no session is left", || handle.sessions().is_empty()).await;
            let again = with_client(&path, move |c| c.terminate(TerminateTarget::Id(call))).await;
            assert!(
                matches!(
                    &again,
                    Err(ClientError::Failed {
                        code: FailureCode::NotFound,
                        ..
                    })
                ),
                "{again:?}"
            );
        });
    });

    drop(guard);
    daemon.join().expect("daemon thread");
    assert!(
        !control_socket.exists(),
        "the socket file goes with the daemon"
    );
}
