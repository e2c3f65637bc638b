//! The client of the datapath's command socket (proto's [`command`] messages over a Unix
//! stream socket).
//!
//! [`DatapathClient::start`] spawns one task that keeps a connection up: it connects
//! (retrying with back-off while the datapath is away), says [`Hello`] with
//! `subscribe = true` (so the datapath punts this connection the calls' PPP control frames),
//! then resynchronises before anyone else may use the connection:
//!
//! * every call control has established is pushed again with `replace = true`: the datapath
//!   may have restarted and lost them (its call table lives in its memory);
//! * every call the datapath lists that control does not know is removed. Such calls were
//!   established by an earlier control process. Control does not adopt them: it lost their
//!   TCP control connections (the peer sees them closed and hangs up anyway), its PPP state
//!   (LCP echo, CCP resets, terminate) and its keys for any renegotiation, and it cannot tell
//!   which address or call ID leases to re-create without a persistent store. Removing them
//!   frees their call IDs and addresses at once; their clients redial.
//!
//! Requests carry ids; a reply is matched to its request by id ([`command::Frame`]), the
//! unsolicited events ([`PppFromPeer`], [`ResetRequestNeeded`]) go out on the channel
//! [`start`](DatapathClient::start) returns. Establish and remove are serialised with the
//! resynchronisation (one lock), so a call removed while the datapath reconnects is never
//! pushed back, and one established meanwhile is never missed. `send_ppp` does not wait for
//! its reply (a refusal is logged): it is on the path of LCP echoes and CCP resets.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use xpptp_proto::command::{
    self, CallInfo, CallList, EncodeError, Establish, FailureCode, Frame, Hello, Kind, ListCalls,
    MAX_LIST_PAGE, Message, PppFromPeer, Remove, ResetRequestNeeded, SendPpp, WorkerStatsReply,
};
use xpptp_proto::session::Established;

/// How long a request waits for its reply.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// First reconnection delay; doubled after each failure up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest reconnection delay.
pub const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Frames waiting to be written to the socket; beyond this `send_ppp` reports busy.
const WRITE_QUEUE: usize = 1024;
/// Punted frames waiting for the daemon.
const EVENT_QUEUE: usize = 1024;

/// What the datapath tells control unasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatapathEvent {
    /// A PPP control frame of an established call, for its session's `handle_frame`.
    PppFromPeer(PppFromPeer),
    /// The call's stateful MPPE receiver lost sync: send a CCP Reset-Request.
    ResetRequestNeeded(ResetRequestNeeded),
}

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DatapathError {
    /// No connection to the datapath now (it is not running, or restarting); calls
    /// established meanwhile are pushed when it comes back.
    #[error("not connected to the datapath (is xpptp-datapath running?)")]
    NotConnected,
    /// The connection went away before the reply came.
    #[error("datapath connection lost before it replied")]
    Disconnected,
    /// No reply within the time given ([`REQUEST_TIMEOUT`] unless the request says).
    #[error("datapath did not reply within {0:?}")]
    Timeout(Duration),
    /// The write queue is full (the datapath does not read).
    #[error("datapath command queue full")]
    Busy,
    /// The datapath refused the request.
    #[error("datapath refused: {code:?}: {detail}")]
    Failed {
        /// Its code.
        code: FailureCode,
        /// Its text.
        detail: String,
    },
    /// A reply of the wrong kind.
    #[error("datapath answered with an unexpected {0:?}")]
    Unexpected(Kind),
    /// The request could not be encoded.
    #[error("cannot encode the request: {0}")]
    Encode(#[from] EncodeError),
}

/// A handle on the datapath connection; cheap to clone.
#[derive(Debug, Clone)]
pub struct DatapathClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    client_name: String,
    /// Every call control has established, by local call ID: what a resynchronisation
    /// pushes again. Holds keys; never logged.
    established: Mutex<BTreeMap<u16, Established>>,
    /// The writer of the connection, once resynchronised.
    ready: Mutex<Option<mpsc::Sender<Vec<u8>>>>,
    /// Requests waiting for their reply, by request id.
    pending: Mutex<HashMap<u32, oneshot::Sender<Message>>>,
    next_request: AtomicU32,
    /// Serialises establish/remove with the resynchronisation.
    ops: tokio::sync::Mutex<()>,
    connected: watch::Sender<bool>,
    events: mpsc::Sender<DatapathEvent>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single map operation: a poisoned map is consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl DatapathClient {
    /// Starts the connection task for the socket at `path` (on the current tokio runtime).
    /// Returns the handle and the channel of the datapath's events.
    pub fn start(path: &Path) -> (DatapathClient, mpsc::Receiver<DatapathEvent>) {
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let client = DatapathClient {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                client_name: format!("xpptp-control {}", env!("CARGO_PKG_VERSION")),
                established: Mutex::new(BTreeMap::new()),
                ready: Mutex::new(None),
                pending: Mutex::new(HashMap::new()),
                next_request: AtomicU32::new(1),
                ops: tokio::sync::Mutex::new(()),
                connected: watch::channel(false).0,
                events,
            }),
        };
        tokio::spawn(Arc::clone(&client.inner).run());
        (client, receiver)
    }

    /// Whether the connection is up and resynchronised.
    pub fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// Waits until the connection is up and resynchronised.
    pub async fn wait_connected(&self) {
        let mut connected = self.inner.connected.subscribe();
        // The sender lives in `inner`, which we hold: wait_for fails only if it is dropped.
        let _ = connected.wait_for(|up| *up).await;
    }

    /// Local call IDs of the calls control has established.
    pub fn established_calls(&self) -> Vec<u16> {
        lock(&self.inner.established).keys().copied().collect()
    }

    /// Hands an established call to the datapath (`replace = true`: the session may report
    /// `Established` again after a renegotiation). The call is remembered even when the
    /// datapath is away ([`DatapathError::NotConnected`]) and pushed when it comes back;
    /// [`remove`](Self::remove) forgets it.
    pub async fn establish(&self, call: Established) -> Result<(), DatapathError> {
        let _ops = self.inner.ops.lock().await;
        let id = call.local_call_id;
        lock(&self.inner.established).insert(id, call.clone());
        let writer = self.inner.writer().ok_or(DatapathError::NotConnected)?;
        let message = Message::Establish(Box::new(Establish {
            call,
            replace: true,
        }));
        expect_done(self.inner.request(&writer, message).await?)
    }

    /// Takes a call out of the datapath and forgets it. A call the datapath does not have
    /// (it restarted and was not resynchronised yet) is not an error.
    pub async fn remove(&self, call: u16) -> Result<(), DatapathError> {
        let _ops = self.inner.ops.lock().await;
        let known = lock(&self.inner.established).remove(&call).is_some();
        if !known {
            return Ok(());
        }
        let writer = self.inner.writer().ok_or(DatapathError::NotConnected)?;
        match expect_done(
            self.inner
                .request(&writer, Message::Remove(Remove { call }))
                .await?,
        ) {
            Err(DatapathError::Failed {
                code: FailureCode::NoSuchCall,
                ..
            }) => Ok(()),
            other => other,
        }
    }

    /// Every call the datapath has, with its counters (ListCalls, page by page).
    pub async fn list_calls(&self) -> Result<Vec<CallInfo>, DatapathError> {
        let writer = self.inner.writer().ok_or(DatapathError::NotConnected)?;
        let mut all = Vec::new();
        let mut start = 0u16;
        loop {
            let list = Message::ListCalls(ListCalls {
                start,
                max: MAX_LIST_PAGE,
            });
            let CallList { calls, next } = match self.inner.request(&writer, list).await? {
                Message::CallList(list) => list,
                other => return Err(DatapathError::Unexpected(other.kind())),
            };
            all.extend(calls);
            match next {
                Some(next) if next > start => start = next,
                _ => return Ok(all),
            }
        }
    }

    /// Every worker's counters and the XDP verdicts (GetWorkerStats), for the control
    /// socket's stats (ctlsock) and the metrics, waiting at most `within` for them.
    pub async fn worker_stats(&self, within: Duration) -> Result<WorkerStatsReply, DatapathError> {
        let writer = self.inner.writer().ok_or(DatapathError::NotConnected)?;
        match self
            .inner
            .request_within(&writer, Message::GetWorkerStats, within)
            .await?
        {
            Message::WorkerStats(reply) => Ok(reply),
            Message::Failed(failed) => Err(DatapathError::Failed {
                code: failed.code,
                detail: failed.detail,
            }),
            other => Err(DatapathError::Unexpected(other.kind())),
        }
    }

    /// Queues a PPP frame for the datapath to send on `call` (GRE-numbered by it). Does
    /// not wait for the reply; a refusal is logged when it comes.
    pub fn send_ppp(&self, call: u16, frame: Vec<u8>) -> Result<(), DatapathError> {
        let writer = self.inner.writer().ok_or(DatapathError::NotConnected)?;
        let id = self.inner.request_id();
        let bytes = Frame::new(id, Message::SendPpp(SendPpp { call, frame })).to_vec()?;
        writer.try_send(bytes).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => DatapathError::Busy,
            mpsc::error::TrySendError::Closed(_) => DatapathError::NotConnected,
        })
    }
}

/// `Done`, or the failure it is not.
fn expect_done(reply: Message) -> Result<(), DatapathError> {
    match reply {
        Message::Done => Ok(()),
        Message::Failed(failed) => Err(DatapathError::Failed {
            code: failed.code,
            detail: failed.detail,
        }),
        other => Err(DatapathError::Unexpected(other.kind())),
    }
}

impl Inner {
    fn writer(&self) -> Option<mpsc::Sender<Vec<u8>>> {
        lock(&self.ready).clone()
    }

    fn request_id(&self) -> u32 {
        loop {
            // 0 is the id of events: never use it for a request.
            let id = self.next_request.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    /// Sends a request on `writer` and waits for its reply.
    async fn request(
        &self,
        writer: &mpsc::Sender<Vec<u8>>,
        message: Message,
    ) -> Result<Message, DatapathError> {
        self.request_within(writer, message, REQUEST_TIMEOUT).await
    }

    /// [`Inner::request`], waiting at most `within` for the reply.
    async fn request_within(
        &self,
        writer: &mpsc::Sender<Vec<u8>>,
        message: Message,
        within: Duration,
    ) -> Result<Message, DatapathError> {
        let id = self.request_id();
        let bytes = Frame::new(id, message).to_vec()?;
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).insert(id, tx);
        if writer.send(bytes).await.is_err() {
            lock(&self.pending).remove(&id);
            return Err(DatapathError::Disconnected);
        }
        match tokio::time::timeout(within, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(DatapathError::Disconnected),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(DatapathError::Timeout(within))
            }
        }
    }

    /// The connection task: connect, resynchronise, serve, and again when it drops.
    async fn run(self: Arc<Self>) {
        let mut backoff = MIN_BACKOFF;
        let mut warned = false;
        loop {
            let stream = match UnixStream::connect(&self.path).await {
                Ok(stream) => stream,
                Err(error) => {
                    if !warned {
                        tracing::warn!(
                            path = %self.path.display(),
                            %error,
                            "cannot reach the datapath command socket; retrying (start \
                             xpptp-datapath, or check --datapath-socket)"
                        );
                        warned = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(MAX_BACKOFF);
                    continue;
                }
            };
            warned = false;
            backoff = MIN_BACKOFF;
            let (read, write) = stream.into_split();
            let (writer, queue) = mpsc::channel(WRITE_QUEUE);
            let writing = tokio::spawn(write_loop(write, queue));
            let mut reading = tokio::spawn(Arc::clone(&self).read_loop(read));
            tokio::select! {
                result = self.resync(&writer) => match result {
                    Ok(()) => {
                        tracing::info!(path = %self.path.display(), "datapath connected");
                        let _ = (&mut reading).await;
                    }
                    Err(error) => tracing::warn!(%error, "datapath resynchronisation failed"),
                },
                _ = &mut reading => {}
            }
            *lock(&self.ready) = None;
            self.connected.send_replace(false);
            lock(&self.pending).clear();
            reading.abort();
            writing.abort();
            tracing::warn!(
                path = %self.path.display(),
                "datapath connection lost; reconnecting"
            );
            tokio::time::sleep(backoff).await;
        }
    }

    /// Hello, re-push what control knows, remove what it does not, then open the
    /// connection to everyone.
    async fn resync(&self, writer: &mpsc::Sender<Vec<u8>>) -> Result<(), DatapathError> {
        let hello = Message::Hello(Hello {
            client: self.client_name.clone(),
            subscribe: true,
        });
        let reply = match self.request(writer, hello).await? {
            Message::HelloReply(reply) => reply,
            Message::Failed(failed) => {
                return Err(DatapathError::Failed {
                    code: failed.code,
                    detail: failed.detail,
                });
            }
            other => return Err(DatapathError::Unexpected(other.kind())),
        };
        tracing::info!(
            server = %reply.server,
            workers = reply.workers,
            calls = reply.calls,
            "datapath said hello"
        );
        let _ops = self.ops.lock().await;
        let known: Vec<Established> = lock(&self.established).values().cloned().collect();
        for call in known {
            let id = call.local_call_id;
            let message = Message::Establish(Box::new(Establish {
                call,
                replace: true,
            }));
            match expect_done(self.request(writer, message).await?) {
                Ok(()) => tracing::info!(local_call_id = id, "call pushed to the datapath again"),
                Err(error) => {
                    tracing::warn!(local_call_id = id, %error, "datapath refused a re-pushed call")
                }
            }
        }
        let mut start = 0u16;
        loop {
            let list = Message::ListCalls(ListCalls {
                start,
                max: MAX_LIST_PAGE,
            });
            let CallList { calls, next } = match self.request(writer, list).await? {
                Message::CallList(list) => list,
                other => return Err(DatapathError::Unexpected(other.kind())),
            };
            for call in calls {
                let id = call.local_call_id;
                if lock(&self.established).contains_key(&id) {
                    continue;
                }
                tracing::info!(
                    local_call_id = id,
                    peer_call_id = call.peer_call_id,
                    peer = %call.peer_address,
                    client_address = %call.client_tunnel_address,
                    "removing a datapath call control does not know (established before \
                     control restarted)"
                );
                let reply = self
                    .request(writer, Message::Remove(Remove { call: id }))
                    .await?;
                if let Err(error) = expect_done(reply) {
                    tracing::warn!(local_call_id = id, %error, "datapath refused to remove a call");
                }
            }
            match next {
                Some(next) if next > start => start = next,
                _ => break,
            }
        }
        *lock(&self.ready) = Some(writer.clone());
        self.connected.send_replace(true);
        Ok(())
    }

    /// Reads frames until the connection ends or loses its framing.
    async fn read_loop(self: Arc<Self>, mut read: OwnedReadHalf) {
        let mut buffer: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = match read.read(&mut chunk).await {
                Ok(0) => return,
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(%error, "datapath socket read failed");
                    return;
                }
            };
            buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
            loop {
                let total = match command::frame_len(&buffer) {
                    Ok(Some(total)) if buffer.len() >= total => total,
                    Ok(_) => break,
                    Err(error) => {
                        tracing::error!(%error, "datapath command stream unusable; reconnecting");
                        return;
                    }
                };
                match Frame::decode(buffer.get(..total).unwrap_or_default()) {
                    Ok(Some((frame, _))) => self.dispatch(frame).await,
                    Ok(None) => {}
                    Err(error) => tracing::warn!(%error, "skipping a datapath frame"),
                }
                buffer.drain(..total);
            }
        }
    }

    async fn dispatch(&self, frame: Frame) {
        let event = match frame.message {
            Message::PppFromPeer(m) => DatapathEvent::PppFromPeer(m),
            Message::ResetRequestNeeded(m) => DatapathEvent::ResetRequestNeeded(m),
            reply => {
                let waiter = lock(&self.pending).remove(&frame.request_id);
                match (waiter, reply) {
                    (Some(waiter), reply) => {
                        let _ = waiter.send(reply);
                    }
                    (None, Message::Failed(failed)) => tracing::warn!(
                        code = ?failed.code,
                        detail = %failed.detail,
                        "datapath refused a request"
                    ),
                    (None, _) => {}
                }
                return;
            }
        };
        // The receiver lives as long as the daemon; a send fails only while it shuts down.
        let _ = self.events.send(event).await;
    }
}

async fn write_loop(mut write: OwnedWriteHalf, mut queue: mpsc::Receiver<Vec<u8>>) {
    while let Some(bytes) = queue.recv().await {
        if let Err(error) = write.write_all(&bytes).await {
            tracing::warn!(%error, "datapath socket write failed");
            return;
        }
    }
}
