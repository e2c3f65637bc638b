//! `Emulator::dial` against the real control daemon (in-process, with the control tests'
//! mock datapath): clients in one namespace with distinct source addresses, the daemon in
//! another across a veth pair. Needs root (namespaces, raw GRE sockets).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

/// How long the tests wait for anything (also read by the shared mock, as `super::PATIENCE`).
const PATIENCE: Duration = Duration::from_secs(60);

mod netns {
    pub use xpptp_testnet::*;
}

// The control tests' mock datapath (answers the command protocol, records what it was
// told); its PPTP client and daemon starter are not used here.
#[allow(dead_code)]
#[path = "../../control/tests/common/daemon.rs"]
mod daemon;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use daemon::{MockDatapath, ShutdownOnDrop, mock_datapath};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::net::UnixListener;
use xpptp_bench::emulator::{
    DialConfig, DialledSession, Emulator, FailureKind, MppeBits, SourceRange, Vendor,
};
use xpptp_control::config;
use xpptp_control::daemon::{
    ChapSecrets, Daemon, DaemonHandle, SessionPhase, Settings, SharedPool,
};
use xpptp_control::pool::AddressPool;
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::MppeStrength;
use xpptp_proto::ppp::ccp::MppePolicy;
use xpptp_testnet::{VethPair, enter, ip, run_in};

const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const PASSWORD: &str = "Bench-Pass-1";
const SOURCES: &str = "10.100.0.0/24";

/// A directory for the daemon's sockets and secrets, removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("xpptp-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The two namespaces: the daemon on `a`, the clients on `b` with `SOURCES` local and
/// routed back from `a`.
fn network(tag: &str) -> VethPair {
    let pair = VethPair::create(tag, 1);
    ip(&[
        "-n",
        &pair.b.netns,
        "route",
        "add",
        "local",
        SOURCES,
        "dev",
        "lo",
    ]);
    ip(&[
        "-n",
        &pair.a.netns,
        "route",
        "add",
        SOURCES,
        "via",
        &pair.b.addr.to_string(),
    ]);
    pair
}

/// Runs the daemon in `netns` on `listen`:1723 with users user1..user{users} (password
/// [`PASSWORD`]) and a pool of `users` addresses.
fn start_daemon(
    netns: &str,
    listen: Ipv4Addr,
    dir: &Path,
    users: u8,
    mppe: MppePolicy,
) -> (ShutdownOnDrop, std::thread::JoinHandle<()>) {
    let secrets_file = dir.join("chap-secrets");
    let lines: String = (1..=users)
        .map(|n| format!("user{n} * \"{PASSWORD}\" *\n"))
        .collect();
    std::fs::write(&secrets_file, lines).unwrap();
    let table = config::load_secrets(&secrets_file, &mut Vec::new()).unwrap();
    let secrets = Arc::new(ChapSecrets::new(&secrets_file, table));
    let addresses: Vec<Ipv4Addr> = (0..users)
        .map(|n| Ipv4Addr::new(192, 168, 77, 10 + n))
        .collect();
    let pool = Arc::new(SharedPool::new(
        AddressPool::new(&addresses, &[SERVER_TUNNEL], []).unwrap(),
    ));
    let socket = dir.join("datapath.sock");
    let settings = Settings {
        listen: SocketAddrV4::new(listen, 1723),
        local_tunnel_address: Some(SERVER_TUNNEL),
        datapath_socket: socket.clone(),
        shutdown_timeout: Duration::from_secs(20),
        mppe,
        ..Settings::default()
    };
    let netns = netns.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        enter(&netns);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = UnixListener::bind(&socket).expect("mock datapath socket");
            tokio::spawn(mock_datapath(listener, MockDatapath::default()));
            let daemon = Daemon::bind(settings, secrets, pool)
                .await
                .expect("daemon binds (needs root for the raw GRE socket)");
            tx.send(daemon.handle()).unwrap();
            daemon.run_until(std::future::pending()).await.unwrap();
        });
    });
    let handle = rx.recv_timeout(PATIENCE).expect("daemon started");
    (ShutdownOnDrop(handle), thread)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn wait_for_sessions(daemon: &DaemonHandle, what: &str, done: impl Fn(usize) -> bool) {
    let give_up = std::time::Instant::now() + PATIENCE;
    loop {
        let n = daemon.sessions().len();
        if done(n) {
            return;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "gave up waiting for {what}: the daemon has {n} sessions"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn fifty_clients_from_distinct_sources_come_up_and_hang_up() {
    const CLIENTS: u8 = 50;
    let net = network("dial");
    let dir = TempDir::new("dial");
    let (daemon, _thread) = start_daemon(
        &net.a.netns,
        net.a.addr,
        &dir.0,
        CLIENTS,
        MppePolicy::default(),
    );
    let server = net.a.addr;
    let mut config = DialConfig::new(
        server,
        u32::from(CLIENTS),
        SOURCES.parse::<SourceRange>().unwrap(),
        PASSWORD,
    );
    config.concurrency = 16;
    config.rate = Some(500.0);
    let daemon_handle = daemon.0.clone();
    let hang_up = run_in(&net.b.netns, move || {
        runtime().block_on(async move {
            let mut reported = 0;
            let emulator = Emulator::dial(config, |_| reported += 1).await.unwrap();
            let report = emulator.report().clone();
            assert_eq!(
                reported,
                u32::from(CLIENTS),
                "one progress call per outcome"
            );
            assert_eq!(
                (report.established, report.failed),
                (u32::from(CLIENTS), 0),
                "failures: {:?}",
                report.failure_examples
            );
            assert!(report.latency.p50_ms > 0.0);
            assert!(report.latency.max_ms >= report.latency.p99_ms);
            assert!(report.latency.p99_ms >= report.latency.p50_ms);
            assert!(report.setups_per_sec > 0.0);

            let sessions = emulator.sessions();
            assert_eq!(sessions.len(), usize::from(CLIENTS));
            let sources: HashSet<Ipv4Addr> = sessions.iter().map(|s| s.source).collect();
            assert_eq!(
                sources.len(),
                usize::from(CLIENTS),
                "distinct source addresses"
            );
            let tunnels: HashSet<Ipv4Addr> = sessions
                .iter()
                .map(|s| s.established.client_tunnel_address)
                .collect();
            assert_eq!(
                tunnels.len(),
                usize::from(CLIENTS),
                "distinct tunnel addresses"
            );
            for session in sessions {
                assert_eq!(session.server, server);
                assert_eq!(
                    session.established.server_tunnel_address,
                    Some(SERVER_TUNNEL)
                );
                assert!(session.established.transmit.is_some(), "MPPE keys");
                assert_eq!(session.user, format!("user{}", session.index + 1));
                let call = session.call.lock().unwrap();
                assert_eq!(call.config.local_addr, session.source);
                assert_eq!(call.config.peer_addr, server);
                assert_eq!(call.config.peer_call_id, session.established.peer_call_id);
                // The shared state continues from the hand-over's numbers (a late control
                // frame, e.g. a retransmitted Ack answered, may already have taken one).
                let sent_since = call
                    .downstream
                    .sequencer
                    .next_seq()
                    .wrapping_sub(session.established.gre.next_seq);
                assert!(
                    sent_since < 8,
                    "{sent_since} control frames since the hand-over"
                );
            }

            // The daemon lists every one of them, from its own source, and hands each over
            // to the datapath (its own IPCP/CCP may finish just after the client's).
            let listed = daemon_handle.sessions();
            assert_eq!(listed.len(), usize::from(CLIENTS));
            let peers: HashSet<Ipv4Addr> = listed.iter().map(|s| s.peer).collect();
            assert_eq!(peers, sources);
            let give_up = tokio::time::Instant::now() + PATIENCE;
            while !daemon_handle
                .sessions()
                .iter()
                .all(|s| s.phase == SessionPhase::Established)
            {
                assert!(
                    tokio::time::Instant::now() < give_up,
                    "daemon sessions not all established"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }

            assert_eq!(emulator.sessions_lost(), 0);
            emulator.hang_up_all().await
        })
    });
    assert_eq!(hang_up.ended, u32::from(CLIENTS));
    assert_eq!(
        hang_up.clean,
        u32::from(CLIENTS),
        "every control connection stopped by the protocol: {hang_up:?}"
    );
    wait_for_sessions(&daemon.0, "every session to end", |n| n == 0);
}

#[test]
fn a_wrong_password_counts_as_an_authentication_failure() {
    const CLIENTS: u8 = 3;
    let net = network("dialauth");
    let dir = TempDir::new("dialauth");
    let (daemon, _thread) = start_daemon(
        &net.a.netns,
        net.a.addr,
        &dir.0,
        CLIENTS,
        MppePolicy::default(),
    );
    let config = DialConfig::new(
        net.a.addr,
        u32::from(CLIENTS),
        SOURCES.parse::<SourceRange>().unwrap(),
        "not-the-password",
    );
    let (report, hang_up) = run_in(&net.b.netns, move || {
        runtime().block_on(async move {
            let emulator = Emulator::dial(config, |_| {}).await.unwrap();
            let report = emulator.report().clone();
            (report, emulator.hang_up_all().await)
        })
    });
    assert_eq!(report.established, 0);
    assert_eq!(
        report.failures.get(&FailureKind::AuthFailed).copied(),
        Some(u64::from(CLIENTS)),
        "{:?}",
        report.failure_examples
    );
    assert_eq!(hang_up.ended, u32::from(CLIENTS));
    wait_for_sessions(&daemon.0, "the refused sessions to end", |n| n == 0);
}

#[test]
fn forty_bit_stateful_windows_clients_get_what_they_asked_for() {
    const CLIENTS: u8 = 4;
    let net = network("dial40");
    let dir = TempDir::new("dial40");
    let policy = MppePolicy {
        allow_40: true,
        allow_128: false,
        allow_stateful: true,
        prefer_stateful: true,
        ..MppePolicy::default()
    };
    let (daemon, _thread) = start_daemon(&net.a.netns, net.a.addr, &dir.0, CLIENTS, policy);
    let mut config = DialConfig::new(
        net.a.addr,
        u32::from(CLIENTS),
        SOURCES.parse::<SourceRange>().unwrap(),
        PASSWORD,
    );
    config.mppe = MppeBits::Bits40;
    config.stateful = true;
    config.vendor = Vendor::Windows;
    let (sessions, hang_up) = run_in(&net.b.netns, move || {
        runtime().block_on(async move {
            let emulator = Emulator::dial(config, |_| {}).await.unwrap();
            let report = emulator.report().clone();
            assert_eq!(
                report.established,
                u32::from(CLIENTS),
                "{:?}",
                report.failure_examples
            );
            let sessions = emulator.sessions().to_vec();
            (sessions, emulator.hang_up_all().await)
        })
    });
    for session in &sessions {
        for keys in [session.established.transmit, session.established.receive] {
            let keys = keys.expect("MPPE both ways");
            assert_eq!(keys.strength, MppeStrength::Bits40);
            assert_eq!(keys.mode, MppeMode::Stateful);
        }
    }
    assert_eq!(hang_up.clean, u32::from(CLIENTS), "{hang_up:?}");
    wait_for_sessions(&daemon.0, "every session to end", |n| n == 0);
}

/// Sends an LCP Echo-Request to `session`'s client as the server would after the
/// hand-over (from the server's namespace, on a raw GRE socket) and returns the GRE packet
/// of its reply.
fn echo_through(session: &DialledSession, our_seq: u32) -> Vec<u8> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(47))).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let ppp = [0xff, 0x03, 0xc0, 0x21, 9, 0x42, 0, 8, 0, 0, 0, 0];
    let mut gre = vec![0x30, 0x01, 0x88, 0x0b];
    gre.extend_from_slice(&u16::try_from(ppp.len()).unwrap().to_be_bytes());
    gre.extend_from_slice(&session.established.local_call_id.to_be_bytes());
    gre.extend_from_slice(&our_seq.to_be_bytes());
    gre.extend_from_slice(&ppp);
    socket
        .send_to(&gre, &SockAddr::from(SocketAddrV4::new(session.source, 0)))
        .unwrap();
    let give_up = std::time::Instant::now() + PATIENCE;
    let mut buf = [0u8; 2048];
    loop {
        assert!(
            std::time::Instant::now() < give_up,
            "no Echo-Reply from the client"
        );
        let Ok(n) = std::io::Read::read(&mut &socket, &mut buf) else {
            continue;
        };
        let packet = &buf[..n];
        let header_len = usize::from(packet[0] & 0x0f) * 4;
        let from = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
        let gre = &packet[header_len..];
        let key = u16::from_be_bytes([gre[6], gre[7]]);
        if from == session.source
            && key == session.established.peer_call_id
            && gre.windows(4).any(|w| w == [0xc0, 0x21, 10, 0x42])
        {
            return gre.to_vec();
        }
    }
}

#[test]
fn control_frames_after_the_hand_over_share_the_calls_numbering() {
    const CLIENTS: u8 = 2;
    let net = network("dialecho");
    let dir = TempDir::new("dialecho");
    let (_daemon, _thread) = start_daemon(
        &net.a.netns,
        net.a.addr,
        &dir.0,
        CLIENTS,
        MppePolicy::default(),
    );
    let config = DialConfig::new(
        net.a.addr,
        u32::from(CLIENTS),
        SOURCES.parse::<SourceRange>().unwrap(),
        PASSWORD,
    );
    let server_ns = net.a.netns.clone();
    run_in(&net.b.netns, move || {
        runtime().block_on(async move {
            let emulator = Emulator::dial(config, |_| {}).await.unwrap();
            let session = emulator.sessions()[1].clone();
            // The traffic engine would number its data from here.
            let before = session.call.lock().unwrap().downstream.sequencer.next_seq();
            assert!(before.wrapping_sub(session.established.gre.next_seq) < 8);
            let probe = session.clone();
            let reply = tokio::task::spawn_blocking(move || {
                run_in(&server_ns, || echo_through(&probe, 0x1000_0000))
            })
            .await
            .unwrap();
            // Sequence number present, then acknowledgment present: our Echo-Request's.
            assert_eq!(reply[1] & 0x80, 0x80, "ack present");
            let seq = u32::from_be_bytes(reply[8..12].try_into().unwrap());
            let ack = u32::from_be_bytes(reply[12..16].try_into().unwrap());
            assert_eq!(seq, before, "the reply takes the call's next number");
            assert_eq!(ack, 0x1000_0000);
            let after = session.call.lock().unwrap().downstream.sequencer.next_seq();
            assert_eq!(
                after,
                before.wrapping_add(1),
                "and the traffic engine continues after it"
            );
            emulator.hang_up_all().await
        })
    });
}

#[test]
fn the_dial_command_prints_its_figures_as_json() {
    const CLIENTS: u8 = 5;
    let net = network("dialcli");
    let dir = TempDir::new("dialcli");
    let (daemon, _thread) = start_daemon(
        &net.a.netns,
        net.a.addr,
        &dir.0,
        CLIENTS,
        MppePolicy::default(),
    );
    let output = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.b.netns,
            env!("CARGO_BIN_EXE_xpptp-bench"),
            "dial",
        ])
        .args(["--server", &net.a.addr.to_string(), "--clients", "5"])
        .args([
            "--source",
            SOURCES,
            "--rate",
            "100",
            "--json",
            "--users-file",
        ])
        // The daemon's own chap-secrets: user1..user5.
        .arg(dir.0.join("chap-secrets"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "xpptp-bench dial failed: {stderr}");
    assert!(
        stderr.contains("dial: 5/5"),
        "plain progress lines off a terminal: {stderr}"
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["dial"]["established"], 5, "{json}");
    assert_eq!(json["dial"]["failed"], 0, "{json}");
    assert!(
        json["dial"]["latency"]["p99_ms"].as_f64().unwrap() > 0.0,
        "{json}"
    );
    assert!(
        json["dial"]["setups_per_sec"].as_f64().unwrap() > 0.0,
        "{json}"
    );
    assert_eq!(json["hang_up"]["clean"], 5, "{json}");
    assert_eq!(json["mppe"], "bits128");
    wait_for_sessions(&daemon.0, "every session to end", |n| n == 0);
}

#[test]
fn without_cap_net_raw_the_dial_command_says_what_is_missing() {
    // setpriv (util-linux) drops CAP_NET_RAW from the bounding set: even root lacks it then.
    let output = std::process::Command::new("setpriv")
        .args([
            "--bounding-set",
            "-net_raw",
            env!("CARGO_BIN_EXE_xpptp-bench"),
            "dial",
        ])
        .args(["--server", "192.0.2.1", "--password", "x"])
        .output()
        .expect("run setpriv (util-linux) to drop CAP_NET_RAW");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("CAP_NET_RAW"), "{stderr}");
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    assert_eq!(
        stderr.matches("Operation not permitted").count(),
        1,
        "{stderr}"
    );
}
