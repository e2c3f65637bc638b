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

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use xpptp_control::config;
use xpptp_control::daemon::{ChapSecrets, Daemon, DaemonHandle, Settings, SharedPool};
use xpptp_control::pool::AddressPool;
use xpptp_proto::command::{self, CallList, Frame, HelloReply, Message, PppFromPeer};
use xpptp_proto::ppp::auth::Password;
use xpptp_proto::ppp::link::{ClientConfig, Link, LinkRandom};
use xpptp_proto::pptp::control::{self, CloseCause, Connection, Event, OutgoingCallParams};
use xpptp_proto::session::{Cause, Established, Session, SessionEvent, SessionParams};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};
use xpptp_proto::wire::pptp::{DisconnectResult, StopReason};

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
                    calls: Vec::new(),
                    next: None,
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

/// Every LCP frame control sent on `call` through the datapath, as (code, id).
fn lcp_sent(log: &Log, call: u16) -> Vec<(u8, u8)> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            Message::SendPpp(p) if p.call == call => lcp_code_id(&p.frame),
            _ => None,
        })
        .collect()
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

    fn terminated(&self) -> Option<&Cause> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Terminated(c) => Some(c),
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

    /// Hangs up like pptp-linux: Call-Clear-Request, then TCP closed at once.
    async fn hang_up(&mut self) {
        self.ctrl
            .clear_call(std::time::Instant::now(), CLIENT_CALL_ID)
            .unwrap();
        self.flush().await;
        if let Some(mut tcp) = self.tcp.take() {
            tcp.shutdown().await.unwrap();
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
        let path = std::env::temp_dir().join(format!("xpptp-ctld-e2e-{}", std::process::id()));
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

#[test]
fn dial_hang_up_refuse_terminate_and_shut_down() {
    let pair = VethPair::create("ctld", 1);
    let dir = TempDir::new();
    let socket = dir.0.join("datapath.sock");
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
