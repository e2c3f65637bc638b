//! The harness of the daemon tests: a mock datapath on a Unix socket that answers the
//! command protocol and records what it was told, a PPTP client running proto's client
//! role (control connection over real TCP, PPP over a raw GRE socket), and the daemon
//! started in a namespace with both.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::mpsc;
use xpptp_control::config;
use xpptp_control::daemon::{ChapSecrets, Daemon, DaemonHandle, Settings, SharedPool};
use xpptp_proto::command::{
    self, CallInfo, CallList, DirectionStats, DropCount, DropReason, EventCount, Frame, HelloReply,
    Message, PppFromPeer, RingStats, Traffic, VerdictCount, WorkerStats, WorkerStatsReply,
    XskKernelStats,
};
use xpptp_proto::ppp::auth::Password;
use xpptp_proto::ppp::link::{ClientConfig, Link, LinkRandom};
use xpptp_proto::pptp::control::{self, Connection, Event, OutgoingCallParams};
use xpptp_proto::session::{Cause, Established, Session, SessionEvent, SessionParams};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};

use super::PATIENCE;
use super::netns::enter;

pub const USER: &str = "pptpuser";
pub const PASSWORD: &str = "Pptp-Test-Pass-1";
pub const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
pub const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 10);
pub const CLIENT_CALL_ID: u16 = 0x73ad;

/// What the mock was asked, in order.
pub type Log = Arc<Mutex<Vec<Message>>>;
/// Frames the test has the mock send to control unasked (as if punted from a client).
pub type Pushers = Arc<Mutex<Vec<mpsc::UnboundedSender<Message>>>>;

/// The mock datapath's record and controls, shared with the test.
#[derive(Clone, Default)]
pub struct MockDatapath {
    /// What the mock was asked.
    pub log: Log,
    /// One sender per connection control made, to push frames unasked.
    pub pushers: Pushers,
    /// Whether ListCalls reports the calls established and not removed (with made-up
    /// counters) rather than none.
    pub report_calls: bool,
    // metrics: a datapath that stops answering GetWorkerStats while set.
    /// While set, GetWorkerStats gets no reply (a stuck datapath).
    pub stall_stats: Arc<AtomicBool>,
}

pub async fn mock_datapath(listener: UnixListener, mock: MockDatapath) {
    let MockDatapath {
        log,
        pushers,
        report_calls,
        stall_stats,
    } = mock;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (push, pushed) = mpsc::unbounded_channel();
        pushers.lock().unwrap().push(push);
        tokio::spawn(mock_connection(
            stream,
            Arc::clone(&log),
            pushed,
            report_calls,
            Arc::clone(&stall_stats),
        ));
    }
}

pub async fn mock_connection(
    mut stream: UnixStream,
    log: Log,
    mut pushed: mpsc::UnboundedReceiver<Message>,
    report_calls: bool,
    stall_stats: Arc<AtomicBool>,
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
            if frame.message == Message::GetWorkerStats && stall_stats.load(Ordering::Relaxed) {
                log.lock().unwrap().push(frame.message);
                continue;
            }
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
                    calls: if report_calls {
                        live_calls(&log)
                    } else {
                        Vec::new()
                    },
                    next: None,
                }),
                Message::GetWorkerStats => Message::WorkerStats(WorkerStatsReply {
                    workers: vec![worker_stats()],
                    xdp: xdp_verdicts(),
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
pub fn lcp_sent(log: &Log, call: u16) -> Vec<(u8, u8)> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            Message::SendPpp(p) if p.call == call => lcp_code_id(&p.frame),
            _ => None,
        })
        .collect()
}

pub fn established_calls(log: &Log) -> Vec<Established> {
    log.lock()
        .unwrap()
        .iter()
        .filter_map(|m| match m {
            Message::Establish(e) => Some(e.call.clone()),
            _ => None,
        })
        .collect()
}

pub fn removed_calls(log: &Log) -> Vec<u16> {
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
pub struct Client {
    pub server: Ipv4Addr,
    pub tcp: Option<TcpStream>,
    pub gre: AsyncFd<Socket>,
    pub ctrl: Connection,
    pub link: Option<Link>,
    pub session: Option<Session>,
    pub events: Vec<SessionEvent>,
    pub ctrl_events: Vec<Event>,
}

impl Client {
    pub async fn dial(server: Ipv4Addr, password: &str) -> Client {
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

    pub fn established(&self) -> Option<&Established> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Established(e) => Some(&**e),
            _ => None,
        })
    }

    pub fn terminated(&self) -> Option<&Cause> {
        self.events.iter().find_map(|e| match e {
            SessionEvent::Terminated(c) => Some(c),
            _ => None,
        })
    }

    /// Sends what both machines queued and acts on their events.
    pub async fn flush(&mut self) {
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
    pub async fn drive_until(&mut self, what: &str, done: impl Fn(&Client) -> bool) {
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
    pub async fn hang_up(&mut self) {
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
pub fn lcp_code_id(frame: &[u8]) -> Option<(u8, u8)> {
    let frame = frame.strip_prefix(&[0xff, 0x03]).unwrap_or(frame);
    match frame {
        [0xc0, 0x21, code, id, ..] => Some((*code, *id)),
        _ => None,
    }
}

// ------------------------------------------------------------------------- the daemon

/// Shuts the daemon down when the test ends, passed or failed.
pub struct ShutdownOnDrop(pub DaemonHandle);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

pub fn start_daemon(
    netns: &str,
    listen: Ipv4Addr,
    socket: &Path,
    pool: Arc<SharedPool>,
    mock: MockDatapath,
    control_socket: Option<PathBuf>,
) -> (DaemonHandle, std::thread::JoinHandle<()>) {
    let settings = test_settings(listen, socket, control_socket);
    start_daemon_with(netns, settings, pool, mock)
}

// metrics: the settings start_daemon uses, for tests that change one (the metrics address).
pub fn test_settings(listen: Ipv4Addr, socket: &Path, control_socket: Option<PathBuf>) -> Settings {
    Settings {
        listen: SocketAddrV4::new(listen, 1723),
        local_tunnel_address: Some(SERVER_TUNNEL),
        datapath_socket: socket.to_path_buf(),
        control_socket,
        shutdown_timeout: Duration::from_secs(20),
        ..Settings::default()
    }
}

/// start_daemon with the settings given (the datapath socket is theirs).
pub fn start_daemon_with(
    netns: &str,
    settings: Settings,
    pool: Arc<SharedPool>,
    mock: MockDatapath,
) -> (DaemonHandle, std::thread::JoinHandle<()>) {
    let socket = settings.datapath_socket.as_path();
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
            tokio::spawn(mock_datapath(listener, mock));
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
pub fn live_calls(log: &Log) -> Vec<CallInfo> {
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

pub fn worker_stats() -> WorkerStats {
    WorkerStats {
        worker: 0,
        cpu: Some(0),
        upstream: DirectionStats::default(),
        downstream: DirectionStats::default(),
        drops: vec![DropCount {
            reason: DropReason::NoRoute,
            packets: 3,
        }],
        batches: 5,
        batch_packets: 9,
        handed_off: 0,
        punted: 1,
        // metrics: figures the Prometheus test finds again.
        client_to_client: Traffic::default(),
        acks_sent: Traffic {
            packets: 2,
            bytes: 120,
        },
        control_sent: Traffic::default(),
        events: vec![EventCount {
            name: "next_hop_unresolved".into(),
            packets: 4,
        }],
        batch_sizes: vec![3, 2, 2, 1, 0, 0, 0, 0],
        rings: vec![RingStats {
            ifindex: 2,
            frames: 4096,
            free: 96,
            receive: 3990,
            transmit: 10,
            kernel: Some(XskKernelStats {
                rx_ring_full: 6,
                ..XskKernelStats::default()
            }),
        }],
    }
}

// metrics: the mock's XDP verdict counters.
pub fn xdp_verdicts() -> Vec<VerdictCount> {
    vec![
        VerdictCount {
            verdict: "to_worker".into(),
            packets: 9,
            bytes: 1260,
        },
        VerdictCount {
            verdict: "pass".into(),
            packets: 1,
            bytes: 60,
        },
    ]
}
