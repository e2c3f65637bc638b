//! The command socket: a Unix-socket server for [`xpptp_proto::command`] frames in front of
//! whatever carries the calls ([`Fastpath`]; the daemon's is
//! [`Datapath`](crate::daemon::Datapath)).
//!
//! # Threads, and why not an async runtime
//!
//! One acceptor thread, one thread per connection (at most [`MAX_CONNECTIONS`]) and one
//! event pump. The traffic is a control plane's: a handful of connections, requests that
//! are each a few BPF map syscalls, events at the rate of LCP echoes and CCP resets. Blocking
//! std I/O keeps every request's handling a straight line, needs no runtime, and makes the
//! [`Fastpath`] calls (which block in syscalls anyway) plain calls. Nothing here runs on a
//! worker thread, and the only things shared with workers are what the [`Fastpath`]
//! implementation shares.
//!
//! # Connections
//!
//! * The peer's credentials are checked first ([`listen::allowed`]): others get one
//!   [`Failed`] frame and are closed, with a log line.
//! * Requests are answered in order, each reply carrying the request's id. A body that does
//!   not decode, or a kind this build does not know, is refused with [`Failed`] and the
//!   connection carries on (the stream is still in step); a bad header (magic, version,
//!   length over [`MAX_BODY_LEN`](xpptp_proto::command::MAX_BODY_LEN)) closes that
//!   connection only, with a log line. A client that stops reading is cut off after
//!   [`WRITE_TIMEOUT`].
//! * Events ([`Event`]) go to the one connection whose latest [`Hello`] asked for them; a
//!   new subscriber replaces the previous one (logged). With no subscriber, events are
//!   dropped and counted (the control plane is away; its calls keep forwarding).
//! * Calls outlive connections: a control plane that disconnects leaves its calls
//!   established; when it returns, [`HelloReply::calls`] says how many there are and
//!   [`ListCalls`](xpptp_proto::command::ListCalls) pages through them, and adopting or
//!   removing them is its decision.

pub mod client;
pub mod events;
pub mod listen;
pub mod wire;

use std::collections::HashMap;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use xpptp_proto::command::{
    CallList, DecodeError, Failed, FailureCode, Frame, Hello, HelloReply, MAX_LIST_PAGE, Message,
    VerdictCount, WorkerStats, WorkerStatsReply,
};
use xpptp_proto::session::Established;

pub use events::{Event, EventQueue};
pub use listen::ListenError;
use wire::{ReadError, read_frame, write_frame};

/// Where the daemon listens unless told otherwise (`--socket`).
pub const DEFAULT_SOCKET: &str = "/run/xpptp/datapath.sock";

/// Most connections served at once; more are refused with [`FailureCode::Busy`].
pub const MAX_CONNECTIONS: usize = 16;

/// How long a write to a client may block before that client is cut off.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the event pump looks at the stop flag when no event comes.
const EVENT_POLL: Duration = Duration::from_millis(200);

/// What the command server drives. Every method may be called from several connection
/// threads at once: implementations synchronise themselves.
pub trait Fastpath: Send + Sync + 'static {
    /// Number of workers (for [`HelloReply`]).
    fn workers(&self) -> u16;

    /// Calls established now.
    fn call_count(&self) -> u32;

    /// Establishes `call`; with `replace`, a call already on its call ID is replaced (new
    /// keys, numbering, address), else that is [`FailureCode::CallIdInUse`]. All or
    /// nothing: a failure leaves the datapath as it was.
    fn establish(&self, call: &Established, replace: bool) -> Result<(), Failed>;

    /// Removes call `call` ([`FailureCode::NoSuchCall`] if there is none).
    fn remove(&self, call: u16) -> Result<(), Failed>;

    /// Queues a PPP frame for the peer of `call` ([`FailureCode::Busy`] when the queue is
    /// full).
    fn send_ppp(&self, call: u16, frame: Vec<u8>) -> Result<(), Failed>;

    /// Calls with IDs from `start` on, at most `max` (the server caps it at
    /// [`MAX_LIST_PAGE`] and raises 0 to 1), in call ID order.
    fn list_calls(&self, start: u16, max: u16) -> CallList;

    /// Every worker's counters.
    fn worker_stats(&self) -> Vec<WorkerStats>;

    /// The XDP program's verdict counters, summed over CPUs (none without an XDP program).
    fn xdp_verdicts(&self) -> Vec<VerdictCount>;

    /// Moves pending events into `out`, waiting up to `timeout` for the first one.
    fn wait_events(&self, out: &mut Vec<Event>, timeout: Duration);
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot start the command server's {what} thread")]
    Spawn {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every value behind these locks stays consistent between statements.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn failed(code: FailureCode, detail: impl Into<String>) -> Message {
    Message::Failed(Failed {
        code,
        detail: detail.into(),
    })
}

/// The write half of a connection, shared by its request thread and the event pump.
type Writer = Arc<Mutex<UnixStream>>;

#[derive(Debug, Clone)]
struct Subscriber {
    conn: u64,
    client: String,
    writer: Writer,
}

#[derive(Debug)]
struct Connection {
    /// A clone of the stream, to shut it down from [`CommandServer::stop`].
    stream: UnixStream,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared<F> {
    fastpath: Arc<F>,
    server_name: String,
    stop: AtomicBool,
    next_conn: AtomicU64,
    connections: Mutex<HashMap<u64, Connection>>,
    subscriber: Mutex<Option<Subscriber>>,
    events_dropped: AtomicU64,
}

/// The running server: its listener thread, its connections and its event pump. Stopping
/// (or dropping) it closes every connection and removes the socket file; the calls stay.
#[derive(Debug)]
pub struct CommandServer<F: Fastpath> {
    shared: Arc<Shared<F>>,
    path: PathBuf,
    /// A clone of the listening socket, shut down to wake the acceptor.
    listener: UnixListener,
    acceptor: Option<JoinHandle<()>>,
    pump: Option<JoinHandle<()>>,
}

impl<F: Fastpath> CommandServer<F> {
    /// Listens on `path` ([`listen::listen`]: directory 0750, socket 0600, a stale socket
    /// replaced) and serves `fastpath`. `server_name` goes into every [`HelloReply`].
    pub fn start(
        path: &Path,
        server_name: String,
        fastpath: Arc<F>,
    ) -> Result<CommandServer<F>, ServerError> {
        let listener = listen::listen(path)?;
        let waker = listener.try_clone().map_err(|source| ListenError::Bind {
            path: path.to_owned(),
            source,
        })?;
        let shared = Arc::new(Shared {
            fastpath,
            server_name,
            stop: AtomicBool::new(false),
            next_conn: AtomicU64::new(1),
            connections: Mutex::new(HashMap::new()),
            subscriber: Mutex::new(None),
            events_dropped: AtomicU64::new(0),
        });
        let spawn = |what: &'static str, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(format!("xpptp-cmd-{what}"))
                .spawn(f)
                .map_err(|source| ServerError::Spawn { what, source })
        };
        let pump = {
            let shared = Arc::clone(&shared);
            spawn("events", Box::new(move || pump_events(&shared)))?
        };
        let acceptor = {
            let shared = Arc::clone(&shared);
            spawn("accept", Box::new(move || accept_loop(&shared, &listener)))
        };
        let acceptor = match acceptor {
            Ok(a) => a,
            Err(e) => {
                shared.stop.store(true, Ordering::Relaxed);
                let _ = pump.join();
                let _ = std::fs::remove_file(path);
                return Err(e);
            }
        };
        tracing::info!(socket = %path.display(), "command socket listening");
        Ok(CommandServer {
            shared,
            path: path.to_owned(),
            listener: waker,
            acceptor: Some(acceptor),
            pump: Some(pump),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Events dropped because no connection was subscribed.
    pub fn events_dropped(&self) -> u64 {
        self.shared.events_dropped.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection, stops the event pump and removes the
    /// socket file. The calls are the [`Fastpath`]'s and stay as they are.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stop.store(true, Ordering::Relaxed);
        // Wake the blocking accept(): on Linux a shut-down listening socket fails accept()
        // with EINVAL; the acceptor then sees the flag and returns. (Connecting to the path
        // would also wake it, but not if someone removed the file.)
        if let Err(e) = rustix::net::shutdown(&self.listener, rustix::net::Shutdown::Both) {
            tracing::warn!(
                "command socket: shutting the listener down failed ({e}); connecting to wake it"
            );
            drop(UnixStream::connect(&self.path));
        }
        let _ = acceptor.join();
        let connections: Vec<Connection> = lock(&self.shared.connections)
            .drain()
            .map(|(_, c)| c)
            .collect();
        for mut c in connections {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
            if let Some(t) = c.thread.take() {
                let _ = t.join();
            }
        }
        if let Some(pump) = self.pump.take() {
            let _ = pump.join();
        }
        if let Err(e) = std::fs::remove_file(&self.path) {
            tracing::warn!(socket = %self.path.display(), "cannot remove the command socket: {e}");
        }
        tracing::info!(socket = %self.path.display(), "command socket closed");
    }
}

impl<F: Fastpath> Drop for CommandServer<F> {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop<F: Fastpath>(shared: &Arc<Shared<F>>, listener: &UnixListener) {
    loop {
        let accepted = listener.accept();
        if shared.stop.load(Ordering::Relaxed) {
            return;
        }
        match accepted {
            Ok((stream, _)) => admit(shared, stream),
            Err(e) => {
                // EMFILE and the like: wait a little instead of spinning.
                tracing::warn!("command socket: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Sends one `Failed` (request id 0) to a connection that will not be served, and closes it.
fn refuse(mut stream: UnixStream, code: FailureCode, detail: String) {
    let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
    let _ = write_frame(&mut stream, &Frame::new(0, failed(code, detail)));
    close_after_reply(&mut stream);
}

/// Closes a connection whose last frame (a `Failed` saying why) is written, so that the
/// client reads it: a Unix socket closed with unread bytes in its receive queue makes the
/// peer's next read fail with ECONNRESET, possibly before it has read that frame. So the
/// write half is shut first (the client sees the frame, then EOF), and what the client sent
/// meanwhile is read and discarded, for at most `LINGER` and 64 KiB, before the close.
fn close_after_reply(stream: &mut UnixStream) {
    const LINGER: Duration = Duration::from_millis(500);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER));
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        match std::io::Read::read(stream, &mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

fn admit<F: Fastpath>(shared: &Arc<Shared<F>>, stream: UnixStream) {
    let peer = match listen::peer(&stream) {
        Ok(peer) => peer,
        Err(e) => {
            tracing::warn!("command socket: cannot read the peer's credentials ({e}); closed");
            return;
        }
    };
    if !listen::allowed(peer.uid) {
        tracing::warn!(
            pid = peer.pid,
            uid = peer.uid,
            "command socket: refused a connection from uid {} (only root or the daemon's own \
             user may connect)",
            peer.uid
        );
        let detail = format!(
            "permission denied: uid {} may not use the datapath's command socket (only root \
             or the daemon's user)",
            peer.uid
        );
        refuse(stream, FailureCode::NotSupported, detail);
        return;
    }
    let mut connections = lock(&shared.connections);
    if connections.len() >= MAX_CONNECTIONS {
        drop(connections);
        tracing::warn!(
            pid = peer.pid,
            "command socket: {MAX_CONNECTIONS} connections already open; refused another"
        );
        let detail = format!("too many command connections (at most {MAX_CONNECTIONS})");
        refuse(stream, FailureCode::Busy, detail);
        return;
    }
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let clones = stream
        .try_clone()
        .and_then(|s| Ok((s, stream.try_clone()?)));
    let (shutdown_handle, writer) = match clones {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("command socket: cannot clone connection {id}: {e}; closed");
            return;
        }
    };
    if let Err(e) = writer.set_write_timeout(Some(WRITE_TIMEOUT)) {
        tracing::warn!("command socket: connection {id}: cannot set a write timeout: {e}");
    }
    let thread = {
        let shared = Arc::clone(shared);
        std::thread::Builder::new()
            .name(format!("xpptp-cmd-{id}"))
            .spawn(move || {
                serve(&shared, id, peer, stream, Arc::new(Mutex::new(writer)));
                lock(&shared.connections).remove(&id);
            })
    };
    match thread {
        Ok(thread) => {
            tracing::debug!(
                conn = id,
                pid = peer.pid,
                uid = peer.uid,
                "command connection"
            );
            connections.insert(
                id,
                Connection {
                    stream: shutdown_handle,
                    thread: Some(thread),
                },
            );
        }
        Err(e) => tracing::warn!("command socket: cannot start a connection thread: {e}"),
    }
}

/// One connection's requests, in order, until it closes or breaks the framing.
fn serve<F: Fastpath>(
    shared: &Shared<F>,
    id: u64,
    peer: listen::Peer,
    mut reader: UnixStream,
    writer: Writer,
) {
    let mut buf = Vec::new();
    let mut client: Option<String> = None;
    loop {
        let (request_id, reply) = match read_frame(&mut reader, &mut buf) {
            Ok(frame) => {
                let request_id = frame.request_id;
                if let Message::Hello(hello) = frame.message {
                    // Hello writes its own reply: subscribing and answering are one step
                    // for the event pump (see `hello`).
                    if !hello_request(shared, id, request_id, hello, &writer, &mut client) {
                        break;
                    }
                    continue;
                }
                let reply = match &client {
                    None => failed(
                        FailureCode::InvalidArgument,
                        "send Hello first: it must be the first frame on a connection",
                    ),
                    Some(_) => request(shared.fastpath.as_ref(), frame.message),
                };
                (request_id, reply)
            }
            Err(ReadError::Closed) => {
                tracing::debug!(conn = id, "command connection closed by the client");
                break;
            }
            Err(ReadError::Body {
                kind_code,
                request_id,
                error,
            }) => {
                tracing::warn!(
                    conn = id,
                    pid = peer.pid,
                    "command connection: refused frame of kind {kind_code}: {error}"
                );
                let code = match error {
                    DecodeError::UnknownKind(_) => FailureCode::NotSupported,
                    _ => FailureCode::InvalidArgument,
                };
                (request_id, failed(code, error.to_string()))
            }
            Err(ReadError::Framing(error)) => {
                tracing::warn!(
                    conn = id,
                    pid = peer.pid,
                    "command connection closed: {error}"
                );
                // Say why before closing, in case the client can read this version.
                let detail = format!("closing the connection: {error}");
                let frame = Frame::new(0, failed(FailureCode::InvalidArgument, detail));
                let _ = write_frame(&mut *lock(&writer), &frame);
                close_after_reply(&mut reader);
                break;
            }
            Err(ReadError::Io(e)) => {
                if !shared.stop.load(Ordering::Relaxed) {
                    tracing::warn!(conn = id, pid = peer.pid, "command connection closed: {e}");
                }
                break;
            }
        };
        if let Err(e) = write_frame(&mut *lock(&writer), &Frame::new(request_id, reply)) {
            tracing::warn!(conn = id, pid = peer.pid, "command connection closed: {e}");
            break;
        }
    }
    let _ = reader.shutdown(std::net::Shutdown::Both);
    let mut subscriber = lock(&shared.subscriber);
    if subscriber.as_ref().is_some_and(|s| s.conn == id) {
        *subscriber = None;
        tracing::info!(
            conn = id,
            client = client.as_deref().unwrap_or(""),
            "the event subscriber disconnected; established calls keep forwarding"
        );
    }
}

/// Answers a Hello: (un)subscribes the connection and writes the reply while holding its
/// writer, so that no event reaches it before its reply. `false`: the connection is broken.
fn hello_request<F: Fastpath>(
    shared: &Shared<F>,
    id: u64,
    request_id: u32,
    hello: Hello,
    writer: &Writer,
    client: &mut Option<String>,
) -> bool {
    let mut out = lock(writer);
    {
        let mut subscriber = lock(&shared.subscriber);
        let current = subscriber.as_ref().map(|s| (s.conn, s.client.clone()));
        match (hello.subscribe, current) {
            (true, Some((conn, old))) if conn != id => {
                tracing::warn!(
                    conn = id,
                    "events now go to {:?} (connection {id}); {old:?} (connection {conn}) no \
                     longer receives them",
                    hello.client
                );
            }
            (true, _) => {
                tracing::info!(conn = id, client = %hello.client, "event subscriber connected");
            }
            (false, Some((conn, _))) if conn == id => *subscriber = None,
            (false, _) => {}
        }
        if hello.subscribe {
            *subscriber = Some(Subscriber {
                conn: id,
                client: hello.client.clone(),
                writer: Arc::clone(writer),
            });
        }
    }
    let fastpath = shared.fastpath.as_ref();
    let calls = fastpath.call_count();
    tracing::info!(conn = id, client = %hello.client, calls, "command client said hello");
    *client = Some(hello.client);
    let reply = Message::HelloReply(HelloReply {
        server: shared.server_name.clone(),
        workers: fastpath.workers(),
        calls,
    });
    match write_frame(&mut *out, &Frame::new(request_id, reply)) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(conn = id, "command connection closed: {e}");
            false
        }
    }
}

fn done_or_failed(result: Result<(), Failed>) -> Message {
    match result {
        Ok(()) => Message::Done,
        Err(f) => Message::Failed(f),
    }
}

/// Everything but Hello.
fn request(fastpath: &impl Fastpath, message: Message) -> Message {
    match message {
        Message::Establish(e) => {
            let result = fastpath.establish(&e.call, e.replace);
            match &result {
                Ok(()) => tracing::info!(
                    call = e.call.local_call_id,
                    peer = %e.call.peer_address,
                    client = %e.call.client_tunnel_address,
                    replace = e.replace,
                    "call established"
                ),
                Err(f) => tracing::info!(
                    call = e.call.local_call_id,
                    "establish refused: {:?}: {}",
                    f.code,
                    f.detail
                ),
            }
            done_or_failed(result)
        }
        Message::Remove(r) => {
            let result = fastpath.remove(r.call);
            if result.is_ok() {
                tracing::info!(call = r.call, "call removed");
            }
            done_or_failed(result)
        }
        Message::SendPpp(s) => done_or_failed(fastpath.send_ppp(s.call, s.frame)),
        Message::ListCalls(l) => {
            Message::CallList(fastpath.list_calls(l.start, l.max.clamp(1, MAX_LIST_PAGE)))
        }
        Message::GetWorkerStats => Message::WorkerStats(WorkerStatsReply {
            workers: fastpath.worker_stats(),
            xdp: fastpath.xdp_verdicts(),
        }),
        other => failed(
            FailureCode::NotSupported,
            format!("{:?} is not a request", other.kind()),
        ),
    }
}

fn pump_events<F: Fastpath>(shared: &Shared<F>) {
    let mut events = Vec::new();
    let mut unsubscribed_since_last_log = 0u64;
    while !shared.stop.load(Ordering::Relaxed) {
        events.clear();
        shared.fastpath.wait_events(&mut events, EVENT_POLL);
        if events.is_empty() {
            continue;
        }
        let subscriber = lock(&shared.subscriber).clone();
        let Some(subscriber) = subscriber else {
            let n = events.len() as u64;
            shared.events_dropped.fetch_add(n, Ordering::Relaxed);
            if unsubscribed_since_last_log == 0 {
                tracing::warn!("events for the control plane dropped: no connection subscribed");
            }
            unsubscribed_since_last_log = unsubscribed_since_last_log.saturating_add(n);
            continue;
        };
        if unsubscribed_since_last_log > 0 {
            tracing::info!(
                dropped = unsubscribed_since_last_log,
                "events reach a subscriber again"
            );
            unsubscribed_since_last_log = 0;
        }
        let mut out = lock(&subscriber.writer);
        for event in events.drain(..) {
            if let Err(e) = write_frame(&mut *out, &Frame::new(0, Message::from(event))) {
                tracing::warn!(
                    conn = subscriber.conn,
                    "event subscriber {:?} cut off: {e}",
                    subscriber.client
                );
                let _ = out.shutdown(std::net::Shutdown::Both);
                let mut current = lock(&shared.subscriber);
                if current.as_ref().is_some_and(|s| s.conn == subscriber.conn) {
                    *current = None;
                }
                break;
            }
        }
    }
}
