//! The command socket against a mock fast path, over a real Unix socket in a temporary
//! directory: requests and their replies, paging, events and subscribers, bad clients, the
//! socket's file modes and the peer credential check.
//!
//! The credential test needs root (it connects from a thread whose credentials it changes
//! to nobody's); it fails with what is missing otherwise, never skips.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use xpptp_datapath::command::client::Client;
use xpptp_datapath::command::wire::{read_frame, write_frame};
use xpptp_datapath::command::{
    CommandServer, Event, EventQueue, Fastpath, ListenError, ServerError,
};
use xpptp_proto::command::{
    CallInfo, CallList, Establish, Failed, FailureCode, Frame, HEADER_LEN, Header, ListCalls,
    MAGIC, MAX_BODY_LEN, Message, PppFromPeer, Remove, ResetRequestNeeded, SendPpp, Traffic,
    VERSION, VerdictCount, WorkerStats,
};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::Established;

/// A fast path that keeps calls in a map and records what it is asked to send.
#[derive(Debug)]
struct Mock {
    calls: Mutex<BTreeMap<u16, Established>>,
    busy: AtomicBool,
    sent: Mutex<Vec<(u16, Vec<u8>)>>,
    events: EventQueue,
}

impl Mock {
    fn new() -> Arc<Mock> {
        Arc::new(Mock {
            calls: Mutex::new(BTreeMap::new()),
            busy: AtomicBool::new(false),
            sent: Mutex::new(Vec::new()),
            events: EventQueue::new(64),
        })
    }
}

fn fail(code: FailureCode, detail: &str) -> Failed {
    Failed {
        code,
        detail: detail.into(),
    }
}

impl Fastpath for Mock {
    fn workers(&self) -> u16 {
        2
    }

    fn call_count(&self) -> u32 {
        self.calls.lock().unwrap().len() as u32
    }

    fn establish(&self, call: &Established, replace: bool) -> Result<(), Failed> {
        let mut calls = self.calls.lock().unwrap();
        if calls.contains_key(&call.local_call_id) && !replace {
            return Err(fail(FailureCode::CallIdInUse, "in use"));
        }
        calls.insert(call.local_call_id, call.clone());
        Ok(())
    }

    fn remove(&self, call: u16) -> Result<(), Failed> {
        match self.calls.lock().unwrap().remove(&call) {
            Some(_) => Ok(()),
            None => Err(fail(FailureCode::NoSuchCall, "no such call")),
        }
    }

    fn send_ppp(&self, call: u16, frame: Vec<u8>) -> Result<(), Failed> {
        if self.busy.load(Ordering::Relaxed) {
            return Err(fail(FailureCode::Busy, "queue full"));
        }
        self.sent.lock().unwrap().push((call, frame));
        Ok(())
    }

    fn list_calls(&self, start: u16, max: u16) -> CallList {
        let calls = self.calls.lock().unwrap();
        let mut range = calls.range(start..);
        let page = range
            .by_ref()
            .take(usize::from(max))
            .map(|(id, e)| CallInfo {
                local_call_id: *id,
                peer_call_id: e.peer_call_id,
                peer_address: e.peer_address,
                client_tunnel_address: e.client_tunnel_address,
                user: e.user.clone(),
                transmit: None,
                receive: None,
                mtu: e.mtu,
                upstream_owner: None,
                downstream_owner: None,
                age_secs: 0,
                upstream: Traffic::default(),
                downstream: Traffic::default(),
                dropped: 0,
            })
            .collect();
        CallList {
            calls: page,
            next: range.next().map(|(id, _)| *id),
        }
    }

    fn worker_stats(&self) -> Vec<WorkerStats> {
        (0..2)
            .map(|w| WorkerStats {
                worker: w,
                cpu: Some(u32::from(w)),
                upstream: Default::default(),
                downstream: Default::default(),
                drops: Vec::new(),
                batches: 10 + u64::from(w),
                batch_packets: 0,
                handed_off: 0,
                punted: 0,
                client_to_client: Traffic::default(),
                acks_sent: Traffic::default(),
                control_sent: Traffic::default(),
                events: Vec::new(),
                batch_sizes: Vec::new(),
                rings: Vec::new(),
            })
            .collect()
    }

    fn xdp_verdicts(&self) -> Vec<VerdictCount> {
        vec![VerdictCount {
            verdict: "to_worker".into(),
            packets: 3,
            bytes: 180,
        }]
    }

    fn wait_events(&self, out: &mut Vec<Event>, timeout: Duration) {
        self.events.wait_drain(out, timeout);
    }
}

/// A directory removed on drop; the socket goes in `run/` below it (created by the server).
struct TempDir(PathBuf);

static NEXT: AtomicU32 = AtomicU32::new(0);

impl TempDir {
    fn new() -> TempDir {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("xpptp-cmd-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create the test directory");
        TempDir(path)
    }

    fn socket(&self) -> PathBuf {
        self.0.join("run").join("datapath.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Fixture {
    mock: Arc<Mock>,
    server: Option<CommandServer<Mock>>,
    dir: TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = TempDir::new();
        let mock = Mock::new();
        let server = CommandServer::start(&dir.socket(), "mock 1".into(), Arc::clone(&mock))
            .expect("start the command server");
        Fixture {
            mock,
            server: Some(server),
            dir,
        }
    }

    fn connect(&self, subscribe: bool) -> Client {
        let (client, hello) =
            Client::connect(&self.dir.socket(), "test", subscribe).expect("connect and hello");
        assert_eq!(hello.server, "mock 1");
        client
    }

    fn raw(&self) -> UnixStream {
        let s = UnixStream::connect(self.dir.socket()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }
}

fn established(id: u16, client: Ipv4Addr) -> Established {
    Established {
        role: Role::Server,
        local_call_id: id,
        peer_call_id: 0x8000 | id,
        peer_address: Ipv4Addr::new(192, 0, 2, 10),
        peer_recv_window: 64,
        user: Some(b"pptpuser".to_vec()),
        auth_method: None,
        client_tunnel_address: client,
        server_tunnel_address: None,
        name_servers: NameServers::default(),
        transmit: None,
        receive: None,
        gre: GreSnapshot {
            local_call_id: id,
            peer_call_id: 0x8000 | id,
            next_seq: 1,
            peer_acked: 0,
            ack_owed: None,
            recv_highest: None,
            peer_recv_window: 64,
        },
        peer_mru: 1400,
        our_mru: 1400,
        mtu: 1400,
        acfc: false,
        pfc: false,
    }
}

fn establish(id: u16, last: u8, replace: bool) -> Message {
    Message::Establish(Box::new(Establish {
        call: established(id, Ipv4Addr::new(10, 64, 0, last)),
        replace,
    }))
}

fn code(reply: Message) -> FailureCode {
    match reply {
        Message::Failed(f) => f.code,
        other => panic!("expected Failed, got {other:?}"),
    }
}

/// Waits for `stream` to be closed by the server, skipping any frames before.
fn assert_closed(stream: &mut UnixStream) -> Vec<Frame> {
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    loop {
        match read_frame(stream, &mut buf) {
            Ok(f) => frames.push(f),
            Err(xpptp_datapath::command::wire::ReadError::Closed) => return frames,
            Err(e) => panic!("expected the server to close the connection: {e}"),
        }
    }
}

#[test]
fn hello_reports_workers_and_calls() {
    let fx = Fixture::new();
    let mut c = fx.connect(false);
    assert_eq!(c.request(establish(5, 5, false)).unwrap(), Message::Done);
    let (_, hello) = Client::connect(&fx.dir.socket(), "second", false).unwrap();
    assert_eq!((hello.workers, hello.calls), (2, 1));
    match c.request(Message::GetWorkerStats).unwrap() {
        Message::WorkerStats(s) => {
            assert_eq!(s.workers.len(), 2);
            assert_eq!(s.workers[1].batches, 11);
            assert_eq!(s.xdp.first().map(|v| v.packets), Some(3));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn establish_duplicate_and_replace() {
    let fx = Fixture::new();
    let mut c = fx.connect(false);
    assert_eq!(c.request(establish(7, 2, false)).unwrap(), Message::Done);
    assert_eq!(
        code(c.request(establish(7, 3, false)).unwrap()),
        FailureCode::CallIdInUse
    );
    assert_eq!(
        fx.mock.calls.lock().unwrap()[&7].client_tunnel_address,
        Ipv4Addr::new(10, 64, 0, 2),
        "a refused establish changes nothing"
    );
    assert_eq!(c.request(establish(7, 3, true)).unwrap(), Message::Done);
    assert_eq!(
        fx.mock.calls.lock().unwrap()[&7].client_tunnel_address,
        Ipv4Addr::new(10, 64, 0, 3),
        "replaced"
    );
}

#[test]
fn remove_unknown_is_no_such_call() {
    let fx = Fixture::new();
    let mut c = fx.connect(false);
    let remove = |call| Message::Remove(Remove { call });
    assert_eq!(code(c.request(remove(9)).unwrap()), FailureCode::NoSuchCall);
    assert_eq!(c.request(establish(9, 9, false)).unwrap(), Message::Done);
    assert_eq!(c.request(remove(9)).unwrap(), Message::Done);
    assert_eq!(code(c.request(remove(9)).unwrap()), FailureCode::NoSuchCall);
}

#[test]
fn list_pages_through_calls_and_caps_max() {
    let fx = Fixture::new();
    let mut c = fx.connect(false);
    for id in [3u16, 10, 11, 200, 65535] {
        assert_eq!(
            c.request(establish(id, id as u8, false)).unwrap(),
            Message::Done
        );
    }
    let mut seen = Vec::new();
    let mut start = Some(0u16);
    let mut pages = 0;
    while let Some(s) = start {
        match c
            .request(Message::ListCalls(ListCalls { start: s, max: 2 }))
            .unwrap()
        {
            Message::CallList(page) => {
                assert!(page.calls.len() <= 2);
                seen.extend(page.calls.iter().map(|c| c.local_call_id));
                start = page.next;
            }
            other => panic!("{other:?}"),
        }
        pages += 1;
    }
    assert_eq!(seen, [3, 10, 11, 200, 65535]);
    assert_eq!(pages, 3);
    // max 0 is raised to 1 (a page that makes progress), not an endless empty page.
    match c
        .request(Message::ListCalls(ListCalls { start: 4, max: 0 }))
        .unwrap()
    {
        Message::CallList(page) => {
            assert_eq!(page.calls.len(), 1);
            assert_eq!(page.calls[0].local_call_id, 10);
            assert_eq!(page.next, Some(11));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn send_ppp_reaches_the_fastpath_and_busy_propagates() {
    let fx = Fixture::new();
    let mut c = fx.connect(false);
    let send = |frame: &[u8]| {
        Message::SendPpp(SendPpp {
            call: 4,
            frame: frame.to_vec(),
        })
    };
    assert_eq!(c.request(send(&[0xc0, 0x21, 9])).unwrap(), Message::Done);
    fx.mock.busy.store(true, Ordering::Relaxed);
    assert_eq!(code(c.request(send(&[1])).unwrap()), FailureCode::Busy);
    assert_eq!(
        *fx.mock.sent.lock().unwrap(),
        vec![(4, vec![0xc0, 0x21, 9])]
    );
}

fn ppp_event(call: u16) -> Event {
    Event::PppFromPeer(PppFromPeer {
        call,
        frame: vec![0xc0, 0x21, 0x09, 0x01, 0x00, 0x08],
    })
}

#[test]
fn events_reach_the_subscriber_only() {
    let fx = Fixture::new();
    let mut other = fx.connect(false);
    let mut control = fx.connect(true);
    assert!(fx.mock.events.push(ppp_event(1)));
    assert!(
        fx.mock
            .events
            .push(Event::ResetRequestNeeded(ResetRequestNeeded { call: 2 }))
    );
    let first = control.next_event(Duration::from_secs(10)).unwrap();
    let second = control.next_event(Duration::from_secs(10)).unwrap();
    assert_eq!(first, Some(Message::from(ppp_event(1))));
    assert_eq!(
        second,
        Some(Message::ResetRequestNeeded(ResetRequestNeeded { call: 2 }))
    );
    assert_eq!(other.next_event(Duration::from_millis(300)).unwrap(), None);
    // Requests and events share the subscriber's stream: replies still match.
    assert!(fx.mock.events.push(ppp_event(3)));
    assert_eq!(
        control.request(establish(3, 3, false)).unwrap(),
        Message::Done
    );
    assert_eq!(
        control.next_event(Duration::from_secs(10)).unwrap(),
        Some(Message::from(ppp_event(3)))
    );
}

#[test]
fn a_new_subscriber_replaces_the_old_one() {
    let fx = Fixture::new();
    let mut old = fx.connect(true);
    let mut new = fx.connect(true);
    assert!(fx.mock.events.push(ppp_event(5)));
    assert_eq!(
        new.next_event(Duration::from_secs(10)).unwrap(),
        Some(Message::from(ppp_event(5)))
    );
    assert_eq!(old.next_event(Duration::from_millis(300)).unwrap(), None);
    // The old connection still serves requests.
    assert_eq!(old.request(establish(5, 5, false)).unwrap(), Message::Done);
}

#[test]
fn calls_survive_a_disconnect_and_are_listed_on_return() {
    let fx = Fixture::new();
    {
        let mut control = fx.connect(true);
        assert_eq!(
            control.request(establish(12, 12, false)).unwrap(),
            Message::Done
        );
    }
    let (mut back, hello) = Client::connect(&fx.dir.socket(), "control", true).unwrap();
    assert_eq!(hello.calls, 1);
    match back
        .request(Message::ListCalls(ListCalls { start: 0, max: 10 }))
        .unwrap()
    {
        Message::CallList(page) => assert_eq!(page.calls[0].local_call_id, 12),
        other => panic!("{other:?}"),
    }
}

#[test]
fn garbage_closes_only_that_connection() {
    let fx = Fixture::new();
    let mut good = fx.connect(true);

    let mut garbage = fx.raw();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let frames = assert_closed(&mut garbage);
    assert!(
        matches!(
            frames.as_slice(),
            [Frame {
                message: Message::Failed(_),
                ..
            }]
        ),
        "one Failed saying why, then closed: {frames:?}"
    );

    let mut oversize = fx.raw();
    let mut header = vec![0u8; HEADER_LEN];
    let mut h = Header::new_unchecked(&mut header[..]);
    h.set_magic(MAGIC);
    h.set_version(VERSION);
    h.set_kind(xpptp_proto::command::Kind::SendPpp);
    h.set_request_id(1);
    h.set_length(MAX_BODY_LEN as u32 + 1);
    oversize.write_all(&header).unwrap();
    assert_closed(&mut oversize);

    // The good connection, and events to it, are unaffected.
    assert_eq!(good.request(establish(1, 1, false)).unwrap(), Message::Done);
    assert!(fx.mock.events.push(ppp_event(1)));
    assert_eq!(
        good.next_event(Duration::from_secs(10)).unwrap(),
        Some(Message::from(ppp_event(1)))
    );
}

#[test]
fn bad_requests_are_refused_and_the_connection_goes_on() {
    let fx = Fixture::new();
    let mut s = fx.raw();
    let mut buf = Vec::new();
    // Before Hello.
    write_frame(&mut s, &Frame::new(1, Message::GetWorkerStats)).unwrap();
    let reply = read_frame(&mut s, &mut buf).unwrap();
    assert_eq!(reply.request_id, 1);
    assert_eq!(code(reply.message), FailureCode::InvalidArgument);
    // Hello, then a kind this build does not know, then a reply kind, then a real request.
    let hello = Message::Hello(xpptp_proto::command::Hello {
        client: "raw".into(),
        subscribe: false,
    });
    write_frame(&mut s, &Frame::new(2, hello)).unwrap();
    assert!(matches!(
        read_frame(&mut s, &mut buf).unwrap().message,
        Message::HelloReply(_)
    ));
    let mut unknown = Frame::new(3, Message::GetWorkerStats).to_vec().unwrap();
    unknown[6..8].copy_from_slice(&0x4242u16.to_be_bytes());
    s.write_all(&unknown).unwrap();
    let reply = read_frame(&mut s, &mut buf).unwrap();
    assert_eq!(reply.request_id, 3);
    assert_eq!(code(reply.message), FailureCode::NotSupported);
    write_frame(&mut s, &Frame::new(4, Message::Done)).unwrap();
    assert_eq!(
        code(read_frame(&mut s, &mut buf).unwrap().message),
        FailureCode::NotSupported
    );
    // A Remove whose body does not decode.
    let mut bad = Frame::new(5, Message::Remove(Remove { call: 7 }))
        .to_vec()
        .unwrap();
    bad[HEADER_LEN] = 0x80;
    s.write_all(&bad).unwrap();
    let reply = read_frame(&mut s, &mut buf).unwrap();
    assert_eq!(reply.request_id, 5);
    assert_eq!(code(reply.message), FailureCode::InvalidArgument);
    write_frame(&mut s, &Frame::new(6, establish(6, 6, false))).unwrap();
    let reply = read_frame(&mut s, &mut buf).unwrap();
    assert_eq!((reply.request_id, reply.message), (6, Message::Done));
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn socket_file_modes_stale_socket_and_cleanup() {
    let dir = TempDir::new();
    let path = dir.socket();
    // A stale socket file: bound, never served, its listener gone.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());

    let mock = Mock::new();
    let server = CommandServer::start(&path, "m".into(), Arc::clone(&mock)).expect("replaces");
    assert_eq!(mode(&path), 0o600, "socket mode");
    // A second server on a live socket is refused.
    match CommandServer::start(&path, "m".into(), Arc::clone(&mock)) {
        Err(ServerError::Listen(ListenError::InUse(p))) => assert_eq!(p, path),
        other => panic!("expected InUse, got {other:?}"),
    }
    // A regular file is never replaced.
    let file = dir.0.join("not-a-socket");
    std::fs::write(&file, b"x").unwrap();
    assert!(matches!(
        CommandServer::start(&file, "m".into(), Arc::clone(&mock)),
        Err(ServerError::Listen(ListenError::NotASocket(_)))
    ));
    server.stop();
    assert!(!path.exists(), "the socket file is removed on stop");

    // A directory the server creates is 0750.
    let nested = dir.0.join("fresh").join("sub").join("d.sock");
    let server = CommandServer::start(&nested, "m".into(), mock).unwrap();
    assert_eq!(mode(nested.parent().unwrap()), 0o750, "directory mode");
    drop(server);
    assert!(!nested.exists(), "removed on drop too");

    // Stopping does not depend on the file: a server whose socket file was removed under
    // it still stops (its acceptor is woken through the listening socket itself).
    let server = CommandServer::start(&nested, "m".into(), Mock::new()).unwrap();
    std::fs::remove_file(&nested).unwrap();
    let (done, stopped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        server.stop();
        let _ = done.send(());
    });
    stopped
        .recv_timeout(Duration::from_secs(30))
        .expect("stop() returns although the socket file is gone");
}

#[test]
fn a_peer_that_is_not_root_is_refused() {
    let fx = Fixture::new();
    let euid = std::fs::metadata("/proc/self").unwrap().uid();
    assert_eq!(
        euid, 0,
        "this test needs root: it connects as nobody from a thread whose credentials it changes"
    );
    // Let nobody reach the socket through the file modes, so that the credential check is
    // what refuses it.
    let socket = fx.dir.socket();
    for (path, mode) in [
        (fx.dir.0.as_path(), 0o755),
        (socket.parent().unwrap(), 0o755),
        (socket.as_path(), 0o777),
    ] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let frames = std::thread::spawn(move || {
        // The raw syscall changes this thread's credentials only (glibc's setresuid would
        // change every thread's).
        // SAFETY: setresuid takes three integers and touches no memory of ours.
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
        assert_eq!(rc, 0, "setresuid: {}", std::io::Error::last_os_error());
        let mut s = UnixStream::connect(&socket).expect("nobody can reach the socket file");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let hello = Message::Hello(xpptp_proto::command::Hello {
            client: "intruder".into(),
            subscribe: true,
        });
        // The server may already have closed: the write may fail, the read tells.
        let _ = write_frame(&mut s, &Frame::new(1, hello));
        let mut rest = Vec::new();
        let mut frames = Vec::new();
        let mut buf = Vec::new();
        while let Ok(f) = read_frame(&mut s, &mut buf) {
            frames.push(f);
        }
        let _ = s.read_to_end(&mut rest);
        frames
    })
    .join()
    .expect("client thread");
    match frames.as_slice() {
        [
            Frame {
                request_id: 0,
                message: Message::Failed(f),
            },
        ] => assert!(f.detail.contains("uid 65534"), "{f:?}"),
        other => panic!("expected one Failed and a close, got {other:?}"),
    }
    assert!(fx.mock.calls.lock().unwrap().is_empty());
    // Root still gets in.
    let mut c = fx.connect(true);
    assert_eq!(c.request(establish(2, 2, false)).unwrap(), Message::Done);
    drop(fx.server);
}
