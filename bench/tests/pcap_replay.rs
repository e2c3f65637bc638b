//! The pcap export end to end: what `xpptp-bench pcap` writes, replayed by tcpreplay into a
//! veth, is decrypted and forwarded by an xpptp-datapath that got the sessions through its
//! command socket with `xpptp_bench::pcap::install`.
//!
//! Namespace a runs the datapath on `xa` (native XDP, one queue, copy-mode AF_XDP) and its
//! command server; namespace b plays both the traffic generator (tcpreplay on `xb`) and the
//! inside host (198.18.0.1 on `xb`, a UDP sink). Two rounds, each installed afresh (which
//! also checks that `replace` resets a call for a new replay): stateless 128-bit IMIX, then
//! stateful 40-bit 1400-octet packets. Each round asserts that the sink got every replayed
//! packet exactly once with its expected payload and that the datapath counted exactly
//! the replayed packets per call and per worker, none dropped. Then `uninstall` empties the
//! call table.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF, CAP_NET_RAW) and tcpreplay (Debian
//! package `tcpreplay`, in scripts/setup.sh); fails naming what is missing, never skips.
//! `VethPair`'s guard removes the namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use xpptp_bench::pcap::{
    PAYLOAD_MAGIC, PacketSize, PcapConfig, SessionsFile, install, read_sessions, uninstall,
    write_files,
};
use xpptp_datapath::command::CommandServer;
use xpptp_datapath::command::client::Client;
use xpptp_datapath::daemon::{AttachMode, Datapath, DatapathConfig};
use xpptp_datapath::tun::{Ipv4Prefix, TunConfig};
use xpptp_datapath::xsk::{BindMode, XskConfig};
use xpptp_proto::command::{CallInfo, ListCalls, Message, WorkerStats};
use xpptp_testnet::{VethPair, ip, run_in};

const INSIDE: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(198, 18, 0, 1), 5001);
const SESSIONS: u16 = 4;
const PACKETS: u32 = 40;

/// Removes the test's files (socket, pcaps, sessions files) even when the test fails.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tcpreplay_present() {
    match Command::new("tcpreplay").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`tcpreplay --version` failed ({}): {}; install the Debian package tcpreplay \
             (scripts/setup.sh does)",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(err) => panic!(
            "tcpreplay is missing ({err}): install the Debian package tcpreplay \
             (scripts/setup.sh does)"
        ),
    }
}

/// `tcpreplay --intf1=IF FILE` inside `netns`, at a rate the veth backlog keeps up with.
fn tcpreplay(netns: &str, ifname: &str, pcap: &Path) {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "tcpreplay", "--pps=2000"])
        .arg(format!("--intf1={ifname}"))
        .arg(pcap)
        .output()
        .expect("run tcpreplay");
    assert!(
        out.status.success(),
        "tcpreplay failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn list(client: &mut Client) -> Vec<CallInfo> {
    match client
        .request(Message::ListCalls(ListCalls { start: 0, max: 100 }))
        .unwrap()
    {
        Message::CallList(page) => page.calls,
        other => panic!("expected CallList, got {other:?}"),
    }
}

fn worker_stats(client: &mut Client) -> Vec<WorkerStats> {
    match client.request(Message::GetWorkerStats).unwrap() {
        Message::WorkerStats(s) => s.workers,
        other => panic!("expected WorkerStats, got {other:?}"),
    }
}

/// Waits (the workers publish counters once per loop turn) until `want` holds.
fn wait_for<T>(mut read: impl FnMut() -> T, want: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let value = read();
        if want(&value) || Instant::now() >= deadline {
            return value;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Receives until every (session, packet) of `file` arrived or 10 s passed; checks each
/// datagram's payload against the generator's and that none comes twice.
fn sink_all(sink: &UdpSocket, file: &SessionsFile) -> HashSet<(u32, u32)> {
    let size = file.packet_size().unwrap();
    let want = usize::from(SESSIONS) * PACKETS as usize;
    let mut got = HashSet::new();
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < want && Instant::now() < deadline {
        let Ok(n) = sink.recv(&mut buf) else {
            continue;
        };
        let payload = &buf[..n];
        assert_eq!(&payload[..4], &PAYLOAD_MAGIC, "not a bench payload");
        let session = u32::from_be_bytes(payload[4..8].try_into().unwrap());
        let packet = u32::from_be_bytes(payload[8..12].try_into().unwrap());
        let inner = file
            .inner_packet(session, packet, size.of(packet))
            .unwrap_or_else(|| panic!("session {session} packet {packet} does not exist"));
        assert_eq!(payload, &inner[28..], "session {session} packet {packet}");
        assert!(
            got.insert((session, packet)),
            "session {session} packet {packet} arrived twice"
        );
    }
    got
}

#[test]
fn replayed_pcap_is_decrypted_and_forwarded_by_the_datapath() {
    tcpreplay_present();
    let pair = VethPair::create("pr", 1);
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let inside = format!("{}/32", INSIDE.ip());
    ip(&["-n", &b.netns, "addr", "add", &inside, "dev", b.ifname]);
    // Replies (none are sent) and reverse-path checks: the tunnel net is behind a.
    let a_addr = a.addr.to_string();
    ip(&[
        "-n",
        &b.netns,
        "route",
        "add",
        "10.8.0.0/24",
        "via",
        &a_addr,
    ]);
    let b_addr = b.addr.to_string();
    ip(&["-n", &a.netns, "route", "add", &inside, "via", &b_addr]);
    run_in(&a.netns, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding")
    });
    let sink = run_in(&b.netns, || {
        UdpSocket::bind(INSIDE).expect("bind the UDP sink")
    });
    sink.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let mut tun = TunConfig::new(Ipv4Prefix::new(Ipv4Addr::new(10, 8, 0, 1), 24).unwrap());
    tun.name = "xpptp-pr".into();
    let mut config = DatapathConfig::new(a.ifname, tun);
    config.mode = AttachMode::Native;
    config.queues = Some(1);
    config.pin = false;
    config.local_mac = Some(a.mac);
    config.xsk = XskConfig {
        frame_count: 1024,
        tx_reserve: 64,
        mode: BindMode::Copy,
        ..XskConfig::default()
    };
    let datapath = run_in(&a.netns, || {
        Datapath::start(&config).unwrap_or_else(|err| {
            panic!(
                "cannot start the datapath in {} (needs root: CAP_BPF, CAP_NET_ADMIN, \
                 CAP_NET_RAW, AF_XDP): {:#}",
                a.netns,
                anyhow::Error::new(err)
            )
        })
    });
    let datapath = Arc::new(datapath);
    let dir =
        TempDir(std::env::temp_dir().join(format!("xpptp-pcap-replay-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let socket = dir.0.join("datapath.sock");
    let server = CommandServer::start(&socket, "xpptp-datapath test".into(), Arc::clone(&datapath))
        .expect("command server");
    let (mut observer, _) = Client::connect(&socket, "test observer", false).expect("hello");

    let rounds = [
        (PacketSize::Imix, false, 128),
        (PacketSize::Fixed(1400), true, 40),
    ];
    let mut replayed = 0u64;
    let mut file = None;
    for (round, (size, stateful, bits)) in rounds.into_iter().enumerate() {
        let generator = PcapConfig {
            sessions: SESSIONS,
            packets_per_session: PACKETS,
            size,
            seed: 42 + round as u64,
            server: a.addr,
            client_net: format!("{}/32", b.addr).parse().unwrap(),
            tunnel_net: "10.8.0.2/24".parse().unwrap(),
            inside: INSIDE,
            dst_mac: a.mac,
            src_mac: b.mac,
            stateful,
            bits,
        };
        let label = format!("round {round} ({size}, stateful {stateful}, {bits}-bit)");
        let pcap = dir.0.join(format!("round{round}.pcap"));
        let json = dir.0.join(format!("round{round}.json"));
        let written = write_files(&generator, &pcap, &json).unwrap();
        assert_eq!(written.frames, u64::from(SESSIONS) * u64::from(PACKETS));
        let sessions = read_sessions(&json).unwrap();
        assert_eq!(install(&sessions, &socket).unwrap(), usize::from(SESSIONS));
        let calls = list(&mut observer);
        assert_eq!(calls.len(), usize::from(SESSIONS), "{label}: {calls:?}");
        assert!(
            calls.iter().all(|c| c.upstream.packets == 0),
            "{label}: fresh"
        );

        // The sink reads while tcpreplay sends: a socket buffer holds fewer than a round of
        // 1400-octet datagrams.
        let got = std::thread::scope(|scope| {
            let receiver = scope.spawn(|| sink_all(&sink, &sessions));
            tcpreplay(&b.netns, b.ifname, &pcap);
            receiver.join().unwrap()
        });
        replayed += written.frames;
        assert_eq!(
            got.len() as u64,
            written.frames,
            "{label}: the inside host got {} of {} packets; workers {:?}; XDP {:?}",
            got.len(),
            written.frames,
            datapath.stats(),
            datapath.xdp_counters()
        );
        let calls = wait_for(
            || list(&mut observer),
            |calls| {
                calls
                    .iter()
                    .all(|c| c.upstream.packets == u64::from(PACKETS))
            },
        );
        for call in &calls {
            assert_eq!(
                (call.upstream.packets, call.dropped),
                (u64::from(PACKETS), 0),
                "{label}: call {}: {call:?}",
                call.local_call_id
            );
        }
        let stats = wait_for(
            || worker_stats(&mut observer),
            |s| s.iter().map(|w| w.upstream.rx.packets).sum::<u64>() == replayed,
        );
        assert_eq!(
            stats.iter().map(|w| w.upstream.rx.packets).sum::<u64>(),
            replayed,
            "{label}: the workers decrypted exactly what was replayed: {stats:?}"
        );
        assert!(
            stats.iter().all(|w| w.drops.iter().all(|d| d.packets == 0)),
            "{label}: no drops: {stats:?}"
        );
        file = Some(sessions);
    }

    let file = file.unwrap();
    assert_eq!(uninstall(&file, &socket).unwrap(), usize::from(SESSIONS));
    assert!(list(&mut observer).is_empty());
    assert_eq!(uninstall(&file, &socket).unwrap(), 0, "already gone");

    drop(observer);
    server.stop();
    match Arc::try_unwrap(datapath) {
        Ok(d) => d.shutdown(),
        Err(_) => panic!("the datapath is still shared after the server stopped"),
    }
    drop(pair);
}
