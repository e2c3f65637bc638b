//! One emulated client: its TCP control connection, its PPP session and their timers, in
//! one tokio task from the first SYN to the Stop-Control-Connection-Reply.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc, watch};
use xpptp_datapath::packet::{self, CallState, EncapVerdict, L2Header};

use crate::traffic::session::client_call_state;
use xpptp_proto::ppp::link::{ClientConfig, Link, LinkRandom};
use xpptp_proto::pptp::control::{
    self, CallClearCause, CloseCause, Connection, Event, OutgoingCallParams,
};
use xpptp_proto::session::{Cause, Session, SessionEvent, SessionParams};
use xpptp_proto::wire::gre::GrePacket;
use xpptp_proto::wire::pptp::StopReason;

use super::gre::GreSocket;
use super::{DialledSession, Failure, FailureKind};

/// How long a hang-up may take (Call-Clear-Request to Stop-Control-Connection-Reply)
/// before the TCP connection is just closed.
const HANG_UP_PATIENCE: Duration = Duration::from_secs(10);

/// GRE packets kept for a call whose Outgoing-Call-Reply has not been read yet.
const EARLY_GRE: usize = 8;

/// What one client is to do.
#[derive(Debug)]
pub(crate) struct ClientSpec {
    pub index: u32,
    pub user: String,
    pub source: Ipv4Addr,
    pub server: SocketAddrV4,
    pub call_id: u16,
    pub control: control::Config,
    pub link: ClientConfig,
    pub seed: [u8; 32],
    pub connect_timeout: Duration,
    pub setup_timeout: Duration,
    /// Counts established sessions that ended before the hang-up.
    pub lost: Arc<AtomicU64>,
}

/// The dial's outcome: the session and its set-up latency, or why it failed.
pub(crate) type DialOutcome = Result<(DialledSession, Duration), Failure>;

/// Where a client's dial outcome goes: the dial loop's channel; the concurrency permit
/// is given back with it.
#[derive(Debug)]
pub(crate) struct OutcomeSink {
    index: u32,
    results: mpsc::UnboundedSender<(u32, DialOutcome)>,
    permit: OwnedSemaphorePermit,
}

impl OutcomeSink {
    pub(crate) fn new(
        index: u32,
        results: mpsc::UnboundedSender<(u32, DialOutcome)>,
        permit: OwnedSemaphorePermit,
    ) -> OutcomeSink {
        OutcomeSink {
            index,
            results,
            permit,
        }
    }

    fn send(self, outcome: DialOutcome) {
        drop(self.permit);
        // The dial loop is gone only when the emulator is.
        let _ = self.results.send((self.index, outcome));
    }
}

/// How a client's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientEnd {
    /// The session was established at some point.
    pub established: bool,
    /// The control connection ended with a Stop-Control-Connection exchange (ours
    /// answered, or the server's own).
    pub clean: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // CallState stays consistent between statements.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs client `spec` to its end: dials, reports the outcome, keeps the session up until
/// `hang_up` changes (or its sender is dropped), then hangs up like pptp-linux.
pub(crate) async fn run(
    mut spec: ClientSpec,
    gre: Arc<GreSocket>,
    inbound: mpsc::Receiver<Vec<u8>>,
    outcome: OutcomeSink,
    hang_up: watch::Receiver<bool>,
) -> ClientEnd {
    let started = Instant::now();
    let tcp = match tokio::time::timeout(spec.connect_timeout, connect(&spec)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(error)) => {
            let failure = connect_failure(&spec, &error);
            outcome.send(Err(failure));
            return ClientEnd {
                established: false,
                clean: false,
            };
        }
        Err(_) => {
            outcome.send(Err(Failure {
                kind: FailureKind::ConnectTimeout,
                detail: format!(
                    "no answer from {} within {:?}",
                    spec.server, spec.connect_timeout
                ),
            }));
            return ClientEnd {
                established: false,
                clean: false,
            };
        }
    };
    // Without a source range the kernel chose the address: GRE and the traffic engine use
    // the same one.
    if spec.source.is_unspecified()
        && let Ok(SocketAddr::V4(local)) = tcp.local_addr()
    {
        spec.source = *local.ip();
    }
    let now = Instant::now();
    let link = Link::client(spec.link.clone(), LinkRandom::from_seed(spec.seed));
    let mut client = Client {
        ctrl: Connection::client(spec.control.clone(), now),
        setup_deadline: Some(started + spec.setup_timeout),
        spec,
        tcp: Some(tcp),
        link: Some(link),
        session: None,
        call: None,
        gre,
        early_gre: Vec::new(),
        inbound: None,
        outcome: Some(outcome),
        started,
        established: false,
        clean: false,
        hang_up_deadline: None,
    };
    client.drive(inbound, hang_up).await;
    client
        .gre
        .unregister(*client.spec.server.ip(), client.spec.call_id);
    ClientEnd {
        established: client.established,
        clean: client.clean,
    }
}

async fn connect(spec: &ClientSpec) -> io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    // The caller made the range local; FREEBIND lets the bind succeed even before the
    // route is in place and for addresses only routed here.
    socket.set_freebind_v4(true)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(SocketAddrV4::new(spec.source, 0)).into())?;
    let std_stream: std::net::TcpStream = socket.into();
    let socket = TcpSocket::from_std_stream(std_stream);
    let stream = socket.connect(SocketAddr::V4(spec.server)).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn connect_failure(spec: &ClientSpec, error: &io::Error) -> Failure {
    match error.kind() {
        io::ErrorKind::ConnectionRefused => Failure {
            kind: FailureKind::ConnectRefused,
            detail: format!(
                "{} refused the connection: is the concentrator listening there?",
                spec.server
            ),
        },
        io::ErrorKind::TimedOut => Failure {
            kind: FailureKind::ConnectTimeout,
            detail: format!("connecting to {}: {error}", spec.server),
        },
        io::ErrorKind::AddrNotAvailable => Failure {
            kind: FailureKind::Other,
            detail: format!(
                "cannot use source address {}: {error}; make the source range local first \
                 (e.g. `ip route add local 10.100.0.0/16 dev lo`)",
                spec.source
            ),
        },
        _ => Failure {
            kind: FailureKind::Other,
            detail: format!(
                "connecting from {} to {}: {error}",
                spec.source, spec.server
            ),
        },
    }
}

struct Client {
    spec: ClientSpec,
    tcp: Option<TcpStream>,
    ctrl: Connection,
    link: Option<Link>,
    session: Option<Session>,
    /// The call's GRE numbering and MPPE state after the hand-over, shared with the
    /// traffic engine through [`DialledSession::call`].
    call: Option<Arc<Mutex<CallState>>>,
    gre: Arc<GreSocket>,
    /// GRE that came before the Outgoing-Call-Reply, at most [`EARLY_GRE`] packets.
    early_gre: Vec<Vec<u8>>,
    /// GRE for this client, from the reader task.
    inbound: Option<mpsc::Receiver<Vec<u8>>>,
    outcome: Option<OutcomeSink>,
    started: Instant,
    established: bool,
    /// See [`ClientEnd::clean`].
    clean: bool,
    setup_deadline: Option<Instant>,
    hang_up_deadline: Option<Instant>,
}

impl Client {
    async fn drive(
        &mut self,
        inbound: mpsc::Receiver<Vec<u8>>,
        mut hang_up: watch::Receiver<bool>,
    ) {
        self.inbound = Some(inbound);
        let mut tcp_buf = vec![0u8; 4096];
        let mut hang_up_open = true;
        loop {
            self.flush().await;
            if self.ctrl.is_closed() {
                if let Some(mut tcp) = self.tcp.take() {
                    let _ = tcp.shutdown().await;
                }
                return;
            }
            let deadline = [
                self.ctrl.poll_timeout(),
                self.session.as_ref().and_then(Session::poll_timeout),
                self.setup_deadline,
                self.hang_up_deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                    None => std::future::pending().await,
                }
            };
            let tcp_open = self.tcp.is_some();
            tokio::select! {
                read = read_tcp(self.tcp.as_mut(), &mut tcp_buf), if tcp_open => {
                    let now = Instant::now();
                    match read {
                        Ok(n) if n > 0 => {
                            let mut rest = tcp_buf.get(..n).unwrap_or(&[]);
                            while !rest.is_empty() {
                                let taken = self.ctrl.handle_bytes(now, rest);
                                rest = rest.get(taken..).unwrap_or(&[]);
                                self.flush().await;
                                if taken == 0 {
                                    break;
                                }
                            }
                        }
                        _ => {
                            self.tcp = None;
                            self.ctrl.handle_tcp_closed(now);
                        }
                    }
                }
                packet = recv_gre(self.inbound.as_mut()) => match packet {
                    Some(packet) => self.on_gre(&packet),
                    None => self.inbound = None,
                },
                _ = hang_up.changed(), if hang_up_open => {
                    hang_up_open = false;
                    self.begin_hang_up(Instant::now());
                }
                () = sleep => {
                    let now = Instant::now();
                    self.ctrl.handle_timeout(now);
                    if let Some(session) = self.session.as_mut() {
                        session.handle_timeout(now);
                    }
                    if self.setup_deadline.is_some_and(|at| now >= at) {
                        self.setup_deadline = None;
                        let timeout = self.spec.setup_timeout;
                        self.fail(now, FailureKind::NegotiationTimeout, format!("not up within {timeout:?}"));
                    }
                    if self.hang_up_deadline.is_some_and(|at| now >= at) {
                        tracing::debug!(client = self.spec.index, "hang-up unanswered; closing TCP");
                        return;
                    }
                }
            }
        }
    }

    /// Sends what the machines queued and acts on their events, until nothing moves.
    async fn flush(&mut self) {
        loop {
            let now = Instant::now();
            let mut moved = false;
            while let Some(bytes) = self.ctrl.poll_transmit() {
                moved = true;
                if let Some(tcp) = self.tcp.as_mut()
                    && tcp.write_all(&bytes).await.is_err()
                {
                    self.tcp = None;
                    self.ctrl.handle_tcp_closed(now);
                }
            }
            while let Some(event) = self.ctrl.poll_event() {
                moved = true;
                self.on_control_event(now, event);
            }
            let mut events = Vec::new();
            if let Some(session) = self.session.as_mut() {
                let server = *self.spec.server.ip();
                while let Some(packet) = session.poll_transmit() {
                    moved = true;
                    self.gre.send_gre(self.spec.source, server, &packet);
                }
                while let Some(frame) = session.poll_frame() {
                    moved = true;
                    if let Some(call) = self.call.as_ref() {
                        send_control_frame(&self.gre, call, server, &frame);
                    }
                }
                while let Some(event) = session.poll_event() {
                    moved = true;
                    events.push(event);
                }
            }
            for event in events {
                self.on_session_event(now, event);
            }
            if !moved {
                return;
            }
        }
    }

    fn on_control_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::Established(_) => {
                if self.hang_up_deadline.is_some() {
                    self.ctrl.stop(now, StopReason::GeneralRequest);
                } else if let Err(error) =
                    self.ctrl
                        .place_call(now, self.spec.call_id, OutgoingCallParams::default())
                {
                    self.fail(
                        now,
                        FailureKind::Other,
                        format!("placing the call: {error}"),
                    );
                }
            }
            Event::CallEstablished(call) => {
                if let Some(link) = self.link.take() {
                    let mut params = SessionParams::from_call(&call, *self.spec.server.ip());
                    // pptp-linux numbers its GRE from 1.
                    params.first_seq = 1;
                    let mut session = Session::new(now, params, link);
                    for packet in self.early_gre.drain(..) {
                        session.handle_gre(now, &packet);
                    }
                    self.session = Some(session);
                }
            }
            Event::CallCleared { cause, .. } => {
                let ppp = self.ppp_failure();
                if let Some(session) = self.session.as_mut() {
                    session.lower_down(now, Cause::from_call_clear(&cause));
                }
                let (kind, detail) = match cause {
                    CallClearCause::Refused { result, error } => (
                        FailureKind::CallRefused,
                        format!("Outgoing-Call-Reply {result:?}, error {error:?}"),
                    ),
                    CallClearCause::SetupTimeout => (
                        FailureKind::NegotiationTimeout,
                        "no Outgoing-Call-Reply in time".to_string(),
                    ),
                    other => (FailureKind::Other, format!("call cleared: {other:?}")),
                };
                let (kind, detail) = ppp.unwrap_or((kind, detail));
                self.fail(now, kind, detail);
                // pptp-linux closes the control connection with its only call.
                if !self.ctrl.is_closed() {
                    self.ctrl.stop(now, StopReason::GeneralRequest);
                }
            }
            Event::Closed(cause) => {
                let ppp = self.ppp_failure();
                if let Some(session) = self.session.as_mut() {
                    session.lower_down(now, Cause::from_connection_close(&cause));
                }
                // The server may stop the connection itself once its only call is gone
                // (crossing our request): that is a clean end too.
                self.clean = matches!(
                    cause,
                    CloseCause::LocalStop {
                        acknowledged: true,
                        ..
                    } | CloseCause::PeerStop(_)
                );
                let (kind, detail) = match cause {
                    CloseCause::Refused { result, error } => (
                        FailureKind::ControlRefused,
                        format!("Start-Control-Connection-Reply {result:?}, error {error:?}"),
                    ),
                    CloseCause::StartTimeout => (
                        FailureKind::NegotiationTimeout,
                        "no Start-Control-Connection-Reply in time".to_string(),
                    ),
                    other => (
                        FailureKind::Other,
                        format!("control connection closed: {other:?}"),
                    ),
                };
                let (kind, detail) = ppp.unwrap_or((kind, detail));
                self.fail(now, kind, detail);
            }
            _ => {}
        }
    }

    fn on_session_event(&mut self, now: Instant, event: SessionEvent) {
        match event {
            SessionEvent::Established(established) => {
                let Some(session) = self.session.as_mut() else {
                    return;
                };
                let mut established = *established;
                // Everything queued so far was sent by flush before the events: the
                // numbering moves to the shared call state, for control and data alike.
                established.gre = session.hand_over();
                let call = Arc::new(Mutex::new(client_call_state(
                    &established,
                    self.spec.source,
                    *self.spec.server.ip(),
                )));
                self.call = Some(Arc::clone(&call));
                self.established = true;
                self.setup_deadline = None;
                let latency = self.started.elapsed();
                let dialled = DialledSession {
                    index: self.spec.index,
                    user: self.spec.user.clone(),
                    source: self.spec.source,
                    server: *self.spec.server.ip(),
                    established,
                    call,
                };
                if let Some(outcome) = self.outcome.take() {
                    outcome.send(Ok((dialled, latency)));
                }
            }
            SessionEvent::Terminated(cause) => {
                let kind = failure_kind(&cause);
                if self.established && self.hang_up_deadline.is_none() {
                    tracing::info!(client = self.spec.index, %cause, "session ended");
                    self.spec.lost.fetch_add(1, Ordering::Relaxed);
                }
                self.fail(now, kind, format!("PPP: {cause}"));
                if self.ctrl.clear_call(now, self.spec.call_id).is_err() && !self.ctrl.is_closed() {
                    self.ctrl.stop(now, StopReason::GeneralRequest);
                }
            }
            SessionEvent::Authenticated { .. } | SessionEvent::ResetRequested => {}
        }
    }

    /// When the server clears a call still negotiating, the reason is usually in PPP (an
    /// MS-CHAPv2 Failure sent just before): the GRE already queued for us is taken first,
    /// and the link's own verdict, if it has one, names the failure.
    fn ppp_failure(&mut self) -> Option<(FailureKind, String)> {
        self.outcome.as_ref()?;
        while let Some(packet) = self.inbound.as_mut().and_then(|rx| rx.try_recv().ok()) {
            self.on_gre(&packet);
        }
        let cause = self.session.as_ref()?.link().cause()?;
        Some((failure_kind(cause), format!("PPP: {cause}")))
    }

    /// Reports a failure if the dial has no outcome yet, and tears the client down.
    fn fail(&mut self, now: Instant, kind: FailureKind, detail: String) {
        if let Some(outcome) = self.outcome.take() {
            tracing::debug!(client = self.spec.index, ?kind, %detail, "dial failed");
            outcome.send(Err(Failure { kind, detail }));
            self.begin_hang_up(now);
        }
    }

    /// Call-Clear-Request, then Stop-Control-Connection-Request when the call is gone (as
    /// pptp-linux does), within [`HANG_UP_PATIENCE`].
    fn begin_hang_up(&mut self, now: Instant) {
        if self.hang_up_deadline.is_some() {
            return;
        }
        self.hang_up_deadline = Some(now + HANG_UP_PATIENCE);
        self.setup_deadline = None;
        if self.ctrl.is_closed() {
            return;
        }
        if self.ctrl.clear_call(now, self.spec.call_id).is_err() {
            // No call (yet, or any more): stop the control connection straight away. One
            // still starting is stopped when it comes up.
            if self.ctrl.state() != control::State::WaitCtlReply {
                self.ctrl.stop(now, StopReason::GeneralRequest);
            }
        }
    }

    fn on_gre(&mut self, packet: &[u8]) {
        let now = Instant::now();
        let Some(session) = self.session.as_mut() else {
            // The server sends its first LCP Configure-Request right behind the
            // Outgoing-Call-Reply; GRE and TCP race, so keep it for the session.
            if self.early_gre.len() < EARLY_GRE && self.link.is_some() {
                self.early_gre.push(packet.to_vec());
            }
            return;
        };
        if !session.is_handed_over() {
            session.handle_gre(now, packet);
            return;
        }
        let Ok(gre) = GrePacket::new_checked(packet) else {
            return;
        };
        if let Some(call) = self.call.as_ref() {
            let state = lock(call);
            if let Some(ack) = gre.ack() {
                state.acks.note_peer_ack(ack);
            }
            if let Some(seq) = gre.seq() {
                state.acks.note_received(seq);
            }
        }
        let ppp = gre.payload();
        if !ppp.is_empty() {
            session.handle_frame(now, ppp.strip_prefix(&[0xff, 0x03]).unwrap_or(ppp));
        }
    }
}

fn failure_kind(cause: &Cause) -> FailureKind {
    match cause {
        Cause::AuthFailed(_) => FailureKind::AuthFailed,
        Cause::LinkFailed => FailureKind::NegotiationTimeout,
        _ => FailureKind::Other,
    }
}

async fn read_tcp(tcp: Option<&mut TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    match tcp {
        Some(tcp) => tcp.read(buf).await,
        None => std::future::pending().await,
    }
}

async fn recv_gre(inbound: Option<&mut mpsc::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match inbound {
        Some(inbound) => inbound.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends a PPP control frame of a handed-over session, numbered by the shared call
/// state like the traffic engine's data packets.
fn send_control_frame(gre: &GreSocket, call: &Mutex<CallState>, server: Ipv4Addr, frame: &[u8]) {
    let ppp = frame.strip_prefix(&[0xff, 0x03]).unwrap_or(frame);
    // ppp_control writes a link-layer header first; the raw socket takes the IPv4 packet
    // behind it.
    let l2 = L2Header::ethernet([0; 6], [0; 6]);
    let l2_len = l2.as_bytes().len();
    let mut buf = vec![0u8; packet::ppp_control_len(&l2, ppp.len())];
    let verdict = {
        let mut state = lock(call);
        let CallState {
            config,
            downstream,
            acks,
            ..
        } = &mut *state;
        packet::ppp_control(config, downstream, acks, &l2, &mut buf, ppp)
    };
    match verdict {
        EncapVerdict::Send { frame } => {
            if let Some(ip) = buf.get(frame.start.saturating_add(l2_len)..frame.end) {
                gre.send_ipv4(server, ip);
            }
        }
        EncapVerdict::Drop(reason) => {
            tracing::debug!(?reason, "control frame not sent");
        }
    }
}
