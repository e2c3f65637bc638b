//! The daemon's control socket: a Unix-socket server for [`xpptp_proto::control_api`]
//! frames, the operator's interface (`xpptp sessions`, `xpptp terminate`, `xpptp stats`)
//! to a running daemon (issue 5 item 8). [`client`] is the blocking client the tool uses.
//!
//! * The socket's file and who may connect: [`listen`] (0750 directory, 0600 socket, peer
//!   credentials root or the daemon's user; others get one [`Failed`] `PermissionDenied`
//!   frame and are closed, with a log line).
//! * Requests are answered in order, each reply carrying the request's id. A body that
//!   does not decode, or a kind this build does not know, is refused with [`Failed`] and the
//!   connection carries on; a bad header (magic, version, length) gets one [`Failed`] and
//!   closes that connection only. At most [`MAX_CONNECTIONS`] at once; a client that stops
//!   reading is cut off after [`WRITE_TIMEOUT`].
//! * Listings read the daemon's session table (what each session's task records as it
//!   goes) and merge the datapath's per-call counters (its `ListCalls`) by call ID. When
//!   the datapath does not answer, the listing still comes, without counters.
//! * Terminate does what [`DaemonHandle::terminate`] does: the session's task ends it (LCP
//!   Terminate, Remove to the datapath, Call-Disconnect-Notify to the client); the reply
//!   counts the sessions told to end.

pub mod client;
pub mod listen;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use xpptp_proto::command::CallInfo;
use xpptp_proto::control_api::{
    CallTraffic, DecodeError, Failed, FailureCode, Frame, GetSession, GreStats, HEADER_LEN,
    HelloReply, ListSessions, MAX_LIST_PAGE, Message, RefusalCount, RefusalReason, SessionDetail,
    SessionDetails, SessionList, SessionSelector, SessionState, SessionSummary, Stats, Terminate,
    TerminateTarget, Terminated, frame_len,
};

use crate::daemon::{DaemonHandle, Refusal, SessionInfo, SessionPhase};
use crate::datapath::DatapathError;
pub use listen::ListenError;

/// Most connections served at once; more get [`FailureCode::Busy`].
pub const MAX_CONNECTIONS: usize = 16;

/// How long a write to a client may block before that client is cut off.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the server calls itself in [`HelloReply`].
const SERVER_NAME: &str = concat!("xpptp-control ", env!("CARGO_PKG_VERSION"));

/// A bound control socket, not yet serving. The socket file is removed when it is
/// dropped (after [`ControlServer::serve`] ends).
#[derive(Debug)]
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlServer {
    /// Binds the socket at `path` ([`listen::listen`]). Must run on a tokio runtime.
    pub async fn bind(path: &Path) -> Result<ControlServer, ListenError> {
        let listener = listen::listen(path).await?;
        Ok(ControlServer {
            listener,
            path: path.to_owned(),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves connections until the task is dropped.
    pub async fn serve(self, daemon: DaemonHandle) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        tracing::info!(path = %self.path.display(), "control socket listening");
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let daemon = daemon.clone();
            match Arc::clone(&slots).try_acquire_owned() {
                Ok(slot) => {
                    tokio::spawn(async move {
                        serve_connection(stream, &daemon).await;
                        drop(slot);
                    });
                }
                Err(_) => {
                    tokio::spawn(async move {
                        let mut stream = stream;
                        let failed = failed(
                            FailureCode::Busy,
                            format!("{MAX_CONNECTIONS} control connections are open; try again"),
                        );
                        let _ = write(&mut stream, 0, failed).await;
                        close_after_refusal(stream).await;
                    });
                }
            }
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Closes a refused connection gracefully: our side first, then whatever the client
/// sent meanwhile (its Hello) is read and dropped, for a short while. Closing with its
/// bytes unread would reset the connection and could lose the refusal on its way.
async fn close_after_refusal(mut stream: UnixStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    let drain = async { while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {} };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
}

fn failed(code: FailureCode, detail: impl Into<String>) -> Message {
    Message::Failed(Failed {
        code,
        detail: detail.into(),
    })
}

async fn write(stream: &mut UnixStream, request_id: u32, message: Message) -> bool {
    let bytes = match Frame::new(request_id, message).to_vec() {
        Ok(bytes) => bytes,
        Err(error) => {
            tracing::error!(%error, "control socket reply not encodable");
            match Frame::new(
                request_id,
                failed(
                    FailureCode::Internal,
                    format!("reply not encodable: {error}"),
                ),
            )
            .to_vec()
            {
                Ok(bytes) => bytes,
                Err(_) => return false,
            }
        }
    };
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&bytes)).await,
        Ok(Ok(()))
    )
}

/// What reading one frame gave.
enum Read {
    Frame(Frame),
    /// A body that did not decode: answer and carry on.
    Refused(u32, Message),
    /// End of stream, an I/O error or a bad header: the connection is over (with a last
    /// word if there is one).
    Over(Option<Message>),
}

async fn read_frame(stream: &mut UnixStream) -> Read {
    let mut bytes = vec![0u8; HEADER_LEN];
    if stream.read_exact(&mut bytes).await.is_err() {
        return Read::Over(None);
    }
    let total = match frame_len(&bytes) {
        Ok(Some(total)) => total,
        Ok(None) => return Read::Over(None),
        Err(error) => {
            return Read::Over(Some(failed(
                FailureCode::InvalidArgument,
                format!("{error}; closing (is this an xpptp control client?)"),
            )));
        }
    };
    bytes.resize(total, 0);
    if stream
        .read_exact(bytes.get_mut(HEADER_LEN..).unwrap_or_default())
        .await
        .is_err()
    {
        return Read::Over(None);
    }
    match Frame::decode(&bytes) {
        Ok(Some((frame, _))) => Read::Frame(frame),
        Ok(None) => Read::Over(None),
        Err(error) => {
            let id = xpptp_proto::control_api::Header::new_checked(bytes.as_slice())
                .map_or(0, |h| h.request_id());
            let code = match error {
                DecodeError::UnknownKind(_) => FailureCode::NotSupported,
                _ => FailureCode::InvalidArgument,
            };
            Read::Refused(id, failed(code, error.to_string()))
        }
    }
}

async fn serve_connection(mut stream: UnixStream, daemon: &DaemonHandle) {
    match listen::peer(&stream) {
        Ok((_, uid)) if listen::allowed(uid) => {}
        Ok((pid, uid)) => {
            tracing::warn!(
                pid,
                uid,
                "control socket connection refused: only root or the daemon's user may use it"
            );
            let message = failed(
                FailureCode::PermissionDenied,
                format!("uid {uid} may not use the control socket; run as root"),
            );
            let _ = write(&mut stream, 0, message).await;
            close_after_refusal(stream).await;
            return;
        }
        Err(error) => {
            tracing::warn!(%error, "control socket: no peer credentials; closing");
            return;
        }
    }
    loop {
        let (id, reply) = match read_frame(&mut stream).await {
            Read::Frame(frame) => (frame.request_id, handle(daemon, frame.message).await),
            Read::Refused(id, reply) => (id, reply),
            Read::Over(last) => {
                if let Some(last) = last {
                    tracing::warn!(?last, "control socket: bad frame header; closing");
                    let _ = write(&mut stream, 0, last).await;
                }
                return;
            }
        };
        if !write(&mut stream, id, reply).await {
            tracing::debug!("control socket client gone or not reading; closing");
            return;
        }
    }
}

/// The answer to one request.
pub async fn handle(daemon: &DaemonHandle, request: Message) -> Message {
    match request {
        Message::Hello(hello) => {
            tracing::debug!(client = %hello.client, "control socket client");
            Message::HelloReply(HelloReply {
                server: SERVER_NAME.into(),
                uptime_secs: daemon.started().elapsed().as_secs(),
                datapath_connected: daemon.datapath().is_connected(),
            })
        }
        Message::ListSessions(list) => list_sessions(daemon, &list).await,
        Message::GetSession(get) => get_session(daemon, &get).await,
        Message::Terminate(terminate) => terminate_sessions(daemon, &terminate),
        Message::GetStats => Message::Stats(Box::new(stats(daemon).await)),
        other => failed(
            FailureCode::NotSupported,
            format!("{:?} is a reply, not a request", other.kind()),
        ),
    }
}

fn state(phase: SessionPhase) -> SessionState {
    match phase {
        SessionPhase::Starting => SessionState::Starting,
        SessionPhase::Established => SessionState::Established,
        SessionPhase::Finishing => SessionState::Finishing,
    }
}

/// The datapath's counters of the calls, by call ID; empty when it does not answer (or
/// no session in `sessions` was handed over).
async fn traffic(daemon: &DaemonHandle, sessions: &[SessionInfo]) -> HashMap<u16, CallTraffic> {
    if sessions.iter().all(|s| s.negotiated.is_none()) {
        return HashMap::new();
    }
    match daemon.datapath().list_calls().await {
        Ok(calls) => calls
            .iter()
            .map(|c: &CallInfo| {
                let traffic = CallTraffic {
                    rx: c.upstream,
                    tx: c.downstream,
                    dropped: c.dropped,
                    upstream_owner: c.upstream_owner,
                    downstream_owner: c.downstream_owner,
                };
                (c.local_call_id, traffic)
            })
            .collect(),
        Err(error) => {
            tracing::debug!(%error, "no call counters from the datapath for the listing");
            HashMap::new()
        }
    }
}

fn summary(
    info: &SessionInfo,
    traffic: &HashMap<u16, CallTraffic>,
    now: Instant,
) -> SessionSummary {
    let negotiated = info.negotiated.as_ref();
    SessionSummary {
        id: info.local_call_id,
        peer_call_id: info.peer_call_id,
        user: info.user.clone(),
        state: state(info.phase),
        peer_address: info.peer,
        tunnel_address: negotiated.map(|n| n.client_tunnel_address),
        transmit: negotiated.and_then(|n| n.transmit),
        receive: negotiated.and_then(|n| n.receive),
        uptime_secs: now.saturating_duration_since(info.started).as_secs(),
        traffic: traffic.get(&info.local_call_id).copied(),
    }
}

async fn list_sessions(daemon: &DaemonHandle, list: &ListSessions) -> Message {
    let max = usize::from(list.max.clamp(1, MAX_LIST_PAGE));
    let mut matching = daemon.sessions().into_iter().filter(|s| {
        s.local_call_id >= list.start
            && list.state.is_none_or(|want| state(s.phase) == want)
            && list
                .user
                .as_ref()
                .is_none_or(|want| s.user.as_ref() == Some(want))
    });
    let page: Vec<SessionInfo> = matching.by_ref().take(max).collect();
    let next = matching.next().map(|s| s.local_call_id);
    let traffic = traffic(daemon, &page).await;
    let now = Instant::now();
    Message::SessionList(SessionList {
        sessions: page.iter().map(|s| summary(s, &traffic, now)).collect(),
        next,
    })
}

async fn get_session(daemon: &DaemonHandle, get: &GetSession) -> Message {
    let found: Vec<SessionInfo> = daemon
        .sessions()
        .into_iter()
        .filter(|s| match &get.selector {
            SessionSelector::Id(id) => s.local_call_id == *id,
            SessionSelector::User(user) => s.user.as_ref() == Some(user),
        })
        .take(usize::from(MAX_LIST_PAGE))
        .collect();
    if found.is_empty() {
        return failed(FailureCode::NotFound, not_found(&get.selector));
    }
    let traffic = traffic(daemon, &found).await;
    let now = Instant::now();
    Message::SessionDetails(SessionDetails {
        sessions: found
            .iter()
            .map(|s| SessionDetail {
                summary: summary(s, &traffic, now),
                peer_vendor: s.peer_vendor.clone(),
                negotiated: s.negotiated,
            })
            .collect(),
    })
}

fn not_found(selector: &SessionSelector) -> String {
    match selector {
        SessionSelector::Id(id) => format!("no session with ID {id}"),
        SessionSelector::User(user) => {
            format!("no session of user {:?}", String::from_utf8_lossy(user))
        }
    }
}

fn terminate_sessions(daemon: &DaemonHandle, terminate: &Terminate) -> Message {
    let target = &terminate.target;
    let ids: Vec<u16> = daemon
        .sessions()
        .into_iter()
        .filter(|s| match target {
            TerminateTarget::Id(id) => s.local_call_id == *id,
            TerminateTarget::User(user) => s.user.as_ref() == Some(user),
            TerminateTarget::TunnelAddress(address) => s
                .negotiated
                .is_some_and(|n| n.client_tunnel_address == *address),
            TerminateTarget::All => true,
        })
        .map(|s| s.local_call_id)
        .collect();
    let count = ids.iter().filter(|id| daemon.terminate(**id)).count();
    let count = u32::try_from(count).unwrap_or(u32::MAX);
    let detail = match target {
        _ if count > 0 => None,
        TerminateTarget::Id(id) => Some(not_found(&SessionSelector::Id(*id))),
        TerminateTarget::User(user) => Some(not_found(&SessionSelector::User(user.clone()))),
        TerminateTarget::TunnelAddress(address) => Some(format!(
            "no established session has tunnel address {address}"
        )),
        TerminateTarget::All => None,
    };
    tracing::info!(?target, count, "operator terminate (control socket)");
    match detail {
        Some(detail) => failed(FailureCode::NotFound, detail),
        None => Message::Terminated(Terminated { count }),
    }
}

/// The wire form of a refusal reason.
pub(crate) fn refusal_reason(refusal: Refusal) -> RefusalReason {
    match refusal {
        Refusal::MaxSessions => RefusalReason::MaxSessions,
        Refusal::MaxStarting => RefusalReason::MaxStarting,
        Refusal::SourceRate => RefusalReason::SourceRate,
        Refusal::StartTimeout => RefusalReason::StartTimeout,
        Refusal::DuplicateUser => RefusalReason::DuplicateUser,
        Refusal::UserBackoff => RefusalReason::UserBackoff,
        Refusal::SourceBackoff => RefusalReason::SourceBackoff,
        Refusal::NoAddress => RefusalReason::NoAddress,
        Refusal::NoCallId => RefusalReason::NoCallId,
        Refusal::ShuttingDown => RefusalReason::ShuttingDown,
    }
}

/// How long a `GetStats` (or a metrics scrape) waits for the datapath's figures before
/// reporting it as not connected.
pub const STATS_DATAPATH_TIMEOUT: Duration = Duration::from_secs(2);

/// The daemon's figures and the datapath's, the latter waited for at most
/// [`STATS_DATAPATH_TIMEOUT`].
pub(crate) async fn stats(daemon: &DaemonHandle) -> Stats {
    use std::sync::atomic::Ordering::Relaxed;
    let sessions = daemon.sessions();
    let count = |phase| {
        let n = sessions.iter().filter(|s| s.phase == phase).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    let refusals = daemon.refusals();
    let gre = daemon.gre_counters();
    let counters = daemon.counters();
    let reply = match daemon.datapath().worker_stats(STATS_DATAPATH_TIMEOUT).await {
        Ok(reply) => Some(reply),
        Err(error @ DatapathError::Timeout(_)) => {
            tracing::warn!(%error, "no worker stats from the datapath; reported as not connected");
            None
        }
        Err(error) => {
            tracing::debug!(%error, "no worker stats from the datapath");
            None
        }
    };
    Stats {
        uptime_secs: daemon.started().elapsed().as_secs(),
        sessions_starting: count(SessionPhase::Starting),
        sessions_established: count(SessionPhase::Established),
        sessions_finishing: count(SessionPhase::Finishing),
        setups_total: counters.setups.load(Relaxed),
        auth_failures: counters.auth_failures.load(Relaxed),
        refusals: Refusal::ALL
            .iter()
            .map(|r| RefusalCount {
                reason: refusal_reason(*r),
                count: refusals.get(*r),
            })
            .collect(),
        gre: GreStats {
            delivered: gre.delivered.load(Relaxed),
            malformed: gre.malformed.load(Relaxed),
            unknown_call: gre.unknown_call.load(Relaxed),
            wrong_peer: gre.wrong_peer.load(Relaxed),
            queue_full: gre.queue_full.load(Relaxed),
        },
        datapath_connected: reply.is_some(),
        workers: reply
            .as_ref()
            .map(|r| r.workers.clone())
            .unwrap_or_default(),
        xdp: reply.map(|r| r.xdp).unwrap_or_default(),
    }
}
