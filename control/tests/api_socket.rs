//! The control socket against a running daemon, as root in two namespaces joined by a
//! veth pair (the harness of daemon_e2e.rs: the daemon and a mock datapath in one, a
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

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use xpptp_control::api::client::{ClientError, ControlClient};
use xpptp_control::config;
use xpptp_control::daemon::{ChapSecrets, Daemon, DaemonHandle, Settings, SharedPool};
use xpptp_control::pool::AddressPool;
use xpptp_proto::command::{
    self, CallInfo, CallList, DirectionStats, Frame, HelloReply, Message, PppFromPeer, Traffic,
    WorkerStats, WorkerStatsReply,
};
use xpptp_proto::control_api::{
    AuthMethod, FailureCode, SessionSelector, SessionState, TerminateTarget,
};
use xpptp_proto::ppp::auth::Password;
use xpptp_proto::ppp::link::{ClientConfig, Link, LinkRandom};
use xpptp_proto::pptp::control::{self, Connection, Event, OutgoingCallParams};
use xpptp_proto::session::{Cause, Established, Session, SessionEvent, SessionParams};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};
use xpptp_proto::wire::pptp::DisconnectResult;

use common::netns::{VethPair, enter, run_in};

const USER: &str = "pptpuser";
const PASSWORD: &str = "Pptp-Test-Pass-1";
const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 10);
const CLIENT_CALL_ID: u16 = 0x73ad;
/// Generous bound on each wait: a failure, not a speed measurement.
const PATIENCE: Duration = Duration::from_secs(30);

// ------------------------------------------------------------------ the mock datapath

/// What the mock was asked, in order.
type Log = Arc<Mutex<Vec<Message>>>;
/// Frames the test has the mock send to control unasked (as if punted from a client).
type Pushers = Arc<Mutex<Vec<mpsc::UnboundedSender<Message>>>>;

async fn mock_datapath(listener: UnixListener, log: Log, pushers: Pushers) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (push, pushed) = mpsc::unbounded_channel();
        pushers.lock().unwrap().push(push);
        tokio::spawn(mock_connection(stream, Arc::clone(&log), pushed));
    }
}

async fn mock_connection(
    mut stream: UnixStream,
    log: Log,
    mut pushed: mpsc::UnboundedReceiver<Message>,
) {
    let mut buffer = Vec::new();
    let mut chunk = vec![0u8; 65536];
    loop {
        let n = tokio::select! {
            read = stream.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            Some(message) = pushed.recv() => {
                let bytes = Frame::new(0, message).to_vec().unwrap();
                stream.write_all(&bytes).await.unwrap();
                continue;
            }
        };
        buffer.extend_from_slice(&chunk[..n]);
        while let Some(total) = command::frame_len(&buffer).unwrap() {
            if buffer.len() < total {
                break;
            }
            let (frame, _) = Frame::decode(&buffer[..total]).unwrap().unwrap();
            buffer.drain(..total);
            let mut punt = None;
            let reply = match &frame.message {
                Message::Hello(hello) => {
                    assert!(hello.subscribe, "control must subscribe to punted frames");
                    Message::HelloReply(HelloReply {
                        server: "mock datapath".into(),
                        workers: 1,
                        calls: 0,
                    })
                }
                Message::ListCalls(_) => Message::CallList(CallList {
                    calls: live_calls(&log),
                    next: None,
                }),
                Message::GetWorkerStats => Message::WorkerStats(WorkerStatsReply {
                    workers: vec![worker_stats()],
                }),
                Message::SendPpp(send) => {
                    // The client's pppd acknowledges a Terminate-Request at once; the
                    // datapath would punt that Ack to control.
                    if let Some((5, id)) = lcp_code_id(&send.frame) {
                        punt = Some(Message::PppFromPeer(PppFromPeer {
                            call: send.call,
                            frame: vec![0xff, 0x03, 0xc0, 0x21, 6, id, 0, 4],
                        }));
                    }
                    Message::Done
                }
                Message::Establish(_) | Message::Remove(_) => Message::Done,
                other => panic!("mock datapath: unexpected request {other:?}"),
            };
            log.lock().unwrap().push(frame.message);
            let bytes = Frame::new(frame.request_id, reply).to_vec().unwrap();
            stream.write_all(&bytes).await.unwrap();
            if let Some(punt) = punt {
                let bytes = Frame::new(0, punt).to_vec().unwrap();
                stream.write_all(&bytes).await.unwrap();
            }
        }
    }
}

fn established_calls(log: &Log) -> Vec<Established> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            Message::Establish(e) => Some(e.call.clone()),
            _ => None,
        })
        .collect()
}

fn removed_calls(log: &Log) -> Vec<u16> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            Message::Remove(r) => Some(r.call),
            _ => None,
        })
        .collect()
}

// ------------------------------------------------------------------------- the client

/// A PPTP client like pptp-linux + pppd, driven by proto's client role.
struct Client {
    server: Ipv4Addr,
    tcp: Option<TcpStream>,
    gre: AsyncFd<Socket>,
    ctrl: Connection,
    link: Option<Link>,
    session: Option<Session>,
    events: Vec<SessionEvent>,
    ctrl_events: Vec<Event>,
}

impl Client {
    async fn dial(server: Ipv4Addr, password: &str) -> Client {
        let tcp = TcpStream::connect(SocketAddrV4::new(server, 1723))
            .await
            .expect("connect to the daemon on TCP 1723");
        let gre = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47)))
            .expect("raw GRE socket (needs root)");
        gre.set_nonblocking(true).unwrap();
        #[allow(deprecated)]
        let gre = AsyncFd::new(gre).unwrap();
        let mut config = ClientConfig::default();
        config.credentials.user = USER.as_bytes().to_vec();
        config.credentials.password = Password::new(password);
        let now = std::time::Instant::now();
        Client {
            server,
            tcp: Some(tcp),
            gre,
            ctrl: Connection::client(control::Config::pptp_linux(), now),
            link: Some(Link::client(config, LinkRandom::from_seed([0xc1; 32]))),
            session: None,
            events: Vec::new(),
            ctrl_events: Vec::new(),
        }
    }

    fn established(&self) -> Option<&Established> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Established(e) => Some(&**e),
            _ => None,
        })
    }

    /// Sends what both machines queued and acts on their events.
    async fn flush(&mut self) {
        loop {
            let now = std::time::Instant::now();
            let mut moved = false;
            while let Some(bytes) = self.ctrl.poll_transmit() {
                moved = true;
                if let Some(tcp) = self.tcp.as_mut() {
                    tcp.write_all(&bytes).await.unwrap();
                }
            }
            while let Some(event) = self.ctrl.poll_event() {
                moved = true;
                self.ctrl_events.push(event);
                match event {
                    Event::Established(_) => self
                        .ctrl
                        .place_call(now, CLIENT_CALL_ID, OutgoingCallParams::default())
                        .unwrap(),
                    Event::CallEstablished(call) => {
                        let mut params = SessionParams::from_call(&call, self.server);
                        params.first_seq = 1;
                        let link = self.link.take().expect("one call");
                        self.session = Some(Session::new(now, params, link));
                    }
                    Event::CallCleared { cause, .. } => {
                        if let Some(s) = self.session.as_mut() {
                            s.lower_down(now, Cause::from_call_clear(&cause));
                        }
                    }
                    Event::Closed(cause) => {
                        if let Some(s) = self.session.as_mut() {
                            s.lower_down(now, Cause::from_connection_close(&cause));
                        }
                    }
                    _ => {}
                }
            }
            if let Some(session) = self.session.as_mut() {
                let to = SockAddr::from(SocketAddrV4::new(self.server, 0));
                while let Some(packet) = session.poll_transmit() {
                    moved = true;
                    self.gre.get_ref().send_to(&packet, &to).unwrap();
                }
                while let Some(event) = session.poll_event() {
                    moved = true;
                    self.events.push(event);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Runs until `done` holds; panics after [`PATIENCE`].
    async fn drive_until(&mut self, what: &str, done: impl Fn(&Client) -> bool) {
        let give_up = tokio::time::Instant::now() + PATIENCE;
        let mut tcp_buf = vec![0u8; 4096];
        let mut gre_buf = vec![0u8; 65536];
        loop {
            self.flush().await;
            if done(self) {
                return;
            }
            let deadline = [
                self.ctrl.poll_timeout(),
                self.session.as_ref().and_then(Session::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(give_up)
            .min(give_up);
            let tcp_open = self.tcp.is_some();
            tokio::select! {
                read = async { self.tcp.as_mut().unwrap().read(&mut tcp_buf).await }, if tcp_open => {
                    let now = std::time::Instant::now();
                    match read {
                        Ok(n) if n > 0 => {
                            let mut rest = &tcp_buf[..n];
                            while !rest.is_empty() {
                                let taken = self.ctrl.handle_bytes(now, rest);
                                rest = &rest[taken..];
                                self.flush().await;
                            }
                        }
                        _ => {
                            self.tcp = None;
                            self.ctrl.handle_tcp_closed(now);
                        }
                    }
                }
                ready = self.gre.readable() => {
                    let mut guard = ready.unwrap();
                    if let Ok(Ok(n)) = guard.try_io(|s| s.get_ref().read(&mut gre_buf)) {
                        let ip = Ipv4Packet::new_checked(&gre_buf[..n]).unwrap();
                        if ip.src_addr() == self.server && ip.protocol() == IpProtocol::Gre
                            && let Some(session) = self.session.as_mut() {
                            session.handle_gre(std::time::Instant::now(), ip.payload());
                        }
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    let now = std::time::Instant::now();
                    assert!(tokio::time::Instant::now() < give_up, "client: gave up waiting until {what}; events {:?}", self.events);
                    self.ctrl.handle_timeout(now);
                    if let Some(s) = self.session.as_mut() {
                        s.handle_timeout(now);
                    }
                }
            }
        }
    }
}

/// The LCP code and identifier of a PPP frame (address/control optional), if it is LCP.
fn lcp_code_id(frame: &[u8]) -> Option<(u8, u8)> {
    let frame = frame.strip_prefix(&[0xff, 0x03]).unwrap_or(frame);
    match frame {
        [0xc0, 0x21, code, id, ..] => Some((*code, *id)),
        _ => None,
    }
}

/// Polls `check` until it holds; panics after [`PATIENCE`].
async fn eventually(what: &str, check: impl Fn() -> bool) {
    let give_up = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < give_up,
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ------------------------------------------------------------------------- the daemon

/// A temporary directory for the command socket, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!("xpptp-ctld-api-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Shuts the daemon down when the test ends, passed or failed.
struct ShutdownOnDrop(DaemonHandle);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

fn start_daemon(
    netns: &str,
    listen: Ipv4Addr,
    socket: &Path,
    pool: Arc<SharedPool>,
    log: Log,
    pushers: Pushers,
) -> (DaemonHandle, std::thread::JoinHandle<()>) {
    let settings = Settings {
        listen: SocketAddrV4::new(listen, 1723),
        local_tunnel_address: Some(SERVER_TUNNEL),
        datapath_socket: socket.to_path_buf(),
        control_socket: Some(socket.with_file_name("run").join("control.sock")),
        shutdown_timeout: Duration::from_secs(20),
        ..Settings::default()
    };
    let secrets_file = socket.with_file_name("chap-secrets");
    std::fs::write(&secrets_file, format!("{USER} * \"{PASSWORD}\" *\n")).unwrap();
    let table = config::load_secrets(&secrets_file, &mut Vec::new()).unwrap();
    let secrets = Arc::new(ChapSecrets::new(&secrets_file, table));
    let netns = netns.to_string();
    let socket = socket.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        enter(&netns);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = UnixListener::bind(&socket).expect("mock datapath socket");
            tokio::spawn(mock_datapath(listener, log, pushers));
            let daemon = Daemon::bind(settings, secrets, pool)
                .await
                .expect("daemon binds (needs root for the raw GRE socket)");
            tx.send(daemon.handle()).unwrap();
            daemon.run_until(std::future::pending()).await.unwrap();
        });
    });
    let handle = rx.recv_timeout(PATIENCE).expect("daemon started");
    (handle, thread)
}

/// The calls established and not removed, with made-up counters the listing must show.
fn live_calls(log: &Log) -> Vec<CallInfo> {
    let removed = removed_calls(log);
    established_calls(log)
        .into_iter()
        .filter(|e| !removed.contains(&e.local_call_id))
        .map(|e| CallInfo {
            local_call_id: e.local_call_id,
            peer_call_id: e.peer_call_id,
            peer_address: e.peer_address,
            client_tunnel_address: e.client_tunnel_address,
            user: e.user.clone(),
            transmit: None,
            receive: None,
            mtu: e.mtu,
            upstream_owner: Some(0),
            downstream_owner: None,
            age_secs: 1,
            upstream: Traffic {
                packets: 11,
                bytes: 1100,
            },
            downstream: Traffic {
                packets: 22,
                bytes: 2200,
            },
            dropped: 3,
        })
        .collect()
}

fn worker_stats() -> WorkerStats {
    WorkerStats {
        worker: 0,
        cpu: Some(0),
        upstream: DirectionStats::default(),
        downstream: DirectionStats::default(),
        drops: Vec::new(),
        batches: 5,
        batch_packets: 9,
        handed_off: 0,
        punted: 1,
    }
}

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
    let dir = TempDir::new();
    let socket = dir.0.join("datapath.sock");
    let control_socket = dir.0.join("run").join("control.sock");
    let pool = Arc::new(SharedPool::new(
        AddressPool::new(&[CLIENT_TUNNEL], &[SERVER_TUNNEL], []).unwrap(),
    ));
    let log: Log = Arc::default();
    let pushers: Pushers = Arc::default();
    let (handle, daemon) = start_daemon(
        &pair.a.netns,
        pair.a.addr,
        &socket,
        Arc::clone(&pool),
        Arc::clone(&log),
        Arc::clone(&pushers),
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
