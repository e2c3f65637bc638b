//! The daemon end to end: [`Datapath`] on one end of a veth pair inside a namespace, driven
//! through its command socket like the control plane will drive it.
//!
//! Namespace a runs the datapath on `xa` (native XDP, one queue, copy-mode AF_XDP) and its
//! command server on a socket in a temporary directory. Namespace b is the PPTP client and
//! the inside host over the same link (one-armed mode). The test says Hello, Establishes a
//! call (MPPE 128-bit stateless, keys made up here), sends MPPE GRE frames from b and sees
//! the decrypted packets come back out of `xa`: the first through the TUN (the kernel
//! forwards it while the next hop, b, is resolved: no MAC is configured), the later ones
//! from the fast path once the route cache has b's MAC; the listing shows the call and its
//! counters, and GetWorkerStats the socket's UMEM frames all accounted for (free, receive,
//! transmit) and the XDP program's upstream_mppe verdicts; after Remove the next frame of
//! the call is no longer forwarded.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF, CAP_NET_RAW); fails with what is
//! missing otherwise, never skips. `VethPair`'s guard removes the namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::frames::{ETH_LEN, ETHERTYPE_IPV4, ethernet, gre, ipv4};
use common::netns::{VethPair, run_in};
use common::packet_socket::PacketSocket;
use xpptp_datapath::command::CommandServer;
use xpptp_datapath::command::client::Client;
use xpptp_datapath::daemon::{AttachMode, Datapath, DatapathConfig, DatapathError};
use xpptp_datapath::tun::{Ipv4Prefix, TunConfig};
use xpptp_datapath::worker::Other;
use xpptp_datapath::xsk::{BindMode, XskConfig};
use xpptp_proto::command::{
    CallInfo, Establish, FailureCode, ListCalls, Message, Remove, SendPpp, WorkerStats,
    WorkerStatsReply,
};
use xpptp_proto::crypto::mppe::{MppeEncryptor, MppeMode};
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::{Established, MppeKeyState};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};

const CALL: u16 = 0x2345;
const PEER_CALL: u16 = 0x6789;
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 10);
const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const UP_KEY: StartKey = StartKey([0x5A; 16]);
const DOWN_KEY: StartKey = StartKey([0xC3; 16]);
const RECV_HIGHEST: u32 = 9;

fn established(client: Ipv4Addr) -> Established {
    let key = |k: StartKey| {
        Some(MppeKeyState {
            strength: MppeStrength::Bits128,
            mode: MppeMode::Stateless,
            start_key: k,
        })
    };
    Established {
        role: Role::Server,
        local_call_id: CALL,
        peer_call_id: PEER_CALL,
        peer_address: client,
        peer_recv_window: 64,
        user: Some(b"pptpuser".to_vec()),
        auth_method: None,
        client_tunnel_address: CLIENT_TUNNEL,
        server_tunnel_address: None,
        name_servers: NameServers::default(),
        transmit: key(DOWN_KEY),
        receive: key(UP_KEY),
        gre: GreSnapshot {
            local_call_id: CALL,
            peer_call_id: PEER_CALL,
            next_seq: 100,
            peer_acked: 99,
            ack_owed: None,
            recv_highest: Some(RECV_HIGHEST),
            peer_recv_window: 64,
        },
        peer_mru: 1400,
        our_mru: 1400,
        mtu: 1396,
        acfc: true,
        pfc: true,
    }
}

/// UDP from the client's tunnel address to the inside host (checksum 0: none).
fn udp(tag: u8) -> Vec<u8> {
    let mut udp = vec![0u8; 8 + 100];
    udp[0..2].copy_from_slice(&4000u16.to_be_bytes());
    udp[2..4].copy_from_slice(&5000u16.to_be_bytes());
    udp[4..6].copy_from_slice(&108u16.to_be_bytes());
    for (i, b) in udp[8..].iter_mut().enumerate() {
        *b = tag ^ i as u8;
    }
    ipv4(CLIENT_TUNNEL, INSIDE_HOST, IpProtocol::Udp, &udp)
}

/// The PPTP client's sending half.
struct PptpClient {
    enc: MppeEncryptor,
    seq: u32,
}

impl PptpClient {
    /// An Ethernet frame carrying `inner` in MPPE (ACFC and PFC), next GRE sequence number.
    fn frame(&mut self, pair: &VethPair, inner: &[u8]) -> Vec<u8> {
        self.seq += 1;
        let mut text = vec![0x00, 0x21];
        text.extend_from_slice(inner);
        let header = self.enc.encrypt(&mut text);
        let mut ppp = vec![0xFD];
        ppp.extend_from_slice(&header.to_be_bytes());
        ppp.extend_from_slice(&text);
        let mut f = ethernet(pair.a.mac, pair.b.mac, ETHERTYPE_IPV4);
        f.extend(ipv4(
            pair.b.addr,
            pair.a.addr,
            IpProtocol::Gre,
            &gre(CALL, self.seq, &ppp),
        ));
        f
    }
}

/// The first UDP packet to the inside host `socket` receives within `timeout`.
fn receive_inner(socket: &PacketSocket, timeout: Duration) -> Option<Vec<u8>> {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let n = socket.recv_host(&mut buf, left)?;
        let f = &buf[..n];
        let Some(ip) = f
            .get(ETH_LEN..)
            .and_then(|p| Ipv4Packet::new_checked(p).ok())
        else {
            continue;
        };
        if ip.dst_addr() == INSIDE_HOST && ip.protocol() == IpProtocol::Udp {
            return Some(f.to_vec());
        }
    }
}

fn decremented(packet: &[u8]) -> Vec<u8> {
    let mut p = packet.to_vec();
    Ipv4Packet::new_unchecked(&mut p[..])
        .decrement_ttl()
        .unwrap();
    p
}

fn list(client: &mut Client) -> Vec<CallInfo> {
    match client
        .request(Message::ListCalls(ListCalls { start: 0, max: 100 }))
        .unwrap()
    {
        Message::CallList(page) => {
            assert_eq!(page.next, None);
            page.calls
        }
        other => panic!("expected CallList, got {other:?}"),
    }
}

fn worker_stats(client: &mut Client) -> Vec<WorkerStats> {
    stats_reply(client).workers
}

fn stats_reply(client: &mut Client) -> WorkerStatsReply {
    match client.request(Message::GetWorkerStats).unwrap() {
        Message::WorkerStats(s) => s,
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

struct SocketDir(PathBuf);

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn daemon_establishes_forwards_lists_and_removes_a_call() {
    let pair = VethPair::create("dm", 1);
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let inside = format!("{INSIDE_HOST}/32");
    common::netns::ip(&["-n", &b.netns, "addr", "add", &inside, "dev", b.ifname]);
    let (peer_rx, peer_tx) = run_in(&b.netns, || {
        (
            PacketSocket::open(b.ifname, true, false),
            PacketSocket::open(b.ifname, false, false),
        )
    });

    // The inside host is reached through b; forwarding on, so what goes through the TUN is
    // routed.
    let via = b.addr.to_string();
    common::netns::ip(&["-n", &a.netns, "route", "add", &inside, "via", &via]);
    run_in(&a.netns, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding")
    });
    let mut tun = TunConfig::new(Ipv4Prefix::new(Ipv4Addr::new(10, 8, 0, 1), 24).unwrap());
    tun.name = "xpptp-dm".into();
    let mut config = DatapathConfig::new(a.ifname, tun);
    config.mode = AttachMode::Native;
    config.queues = Some(1);
    config.pin = false;
    config.xsk = XskConfig {
        frame_count: 1024,
        tx_reserve: 64,
        mode: BindMode::Copy,
        ..XskConfig::default()
    };
    let datapath = run_in(&a.netns, || {
        // This test's sysfs belongs to the initial namespace: without the MAC given, the
        // datapath must notice instead of reading another interface's.
        match Datapath::start(&config) {
            Err(DatapathError::Sysfs { .. }) => {}
            other => panic!("expected the sysfs namespace check to refuse, got {other:?}"),
        }
        config.local_mac = Some(a.mac);
        Datapath::start(&config).unwrap_or_else(|err| {
            panic!(
                "cannot start the datapath in {} (needs root: CAP_BPF, CAP_NET_ADMIN, \
                 CAP_NET_RAW, AF_XDP): {:#}",
                a.netns,
                anyhow::Error::new(err)
            )
        })
    });
    assert_eq!(datapath.local_address(), a.addr, "from the interface");
    let datapath = Arc::new(datapath);

    let dir = SocketDir(std::env::temp_dir().join(format!("xpptp-daemon-{}", std::process::id())));
    let socket = dir.0.join("datapath.sock");
    let server = CommandServer::start(&socket, "xpptp-datapath test".into(), Arc::clone(&datapath))
        .expect("command server");

    let (mut control, hello) = Client::connect(&socket, "test control", true).expect("hello");
    assert_eq!((hello.workers, hello.calls), (1, 0));
    let reply = control
        .request(Message::Establish(Box::new(Establish {
            call: established(b.addr),
            replace: false,
        })))
        .unwrap();
    assert_eq!(reply, Message::Done);

    // Upstream: the client's MPPE GRE comes out of xa decrypted, TTL one less, to b's MAC
    // (resolved, not configured). The first packet finds the next hop unresolved and goes
    // through the TUN; once the route cache has b's MAC the workers forward themselves.
    let mut client = PptpClient {
        enc: MppeEncryptor::new(&UP_KEY, MppeStrength::Bits128, MppeMode::Stateless),
        seq: RECV_HIGHEST,
    };
    let mut sent = 0u64;
    let mut inner_bytes = 0u64;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let inner = udp(0x11);
        assert!(peer_tx.send(&client.frame(&pair, &inner)));
        sent += 1;
        inner_bytes += inner.len() as u64;
        let got = receive_inner(&peer_rx, Duration::from_secs(5)).unwrap_or_else(|| {
            panic!(
                "decrypted packet {sent} did not come out; workers {:?}; XDP {:?}",
                datapath.stats(),
                datapath.xdp_counters()
            )
        });
        assert_eq!(&got[..6], &b.mac, "to the next hop");
        assert_eq!(&got[6..12], &a.mac, "from xa");
        assert_eq!(&got[ETH_LEN..], &decremented(&inner)[..]);
        let stats = wait_for(|| datapath.stats(), |s| s.up_rx.packets == sent);
        if sent == 1 {
            assert_eq!(
                stats.other[Other::NextHopUnresolved.index()],
                1,
                "the first packet finds no MAC for b: {stats:?}"
            );
        }
        if stats.up_tx.packets > 0 || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // The listing shows the call and its counters.
    let calls = list(&mut control);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let call = &calls[0];
    assert_eq!(
        (call.local_call_id, call.peer_call_id, call.peer_address),
        (CALL, PEER_CALL, b.addr)
    );
    assert_eq!(call.client_tunnel_address, CLIENT_TUNNEL);
    assert_eq!(call.user.as_deref(), Some(&b"pptpuser"[..]));
    assert_eq!(call.upstream.packets, sent);
    assert_eq!(call.upstream.bytes, inner_bytes);
    assert_eq!(call.dropped, 0);
    assert!(call.receive.is_some() && call.transmit.is_some());
    let stats = wait_for(
        || worker_stats(&mut control),
        |s| s.first().is_some_and(|w| w.upstream.tx.packets == 1),
    );
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].upstream.rx.packets, sent, "{stats:?}");
    assert_eq!(
        stats[0].upstream.tx.packets, 1,
        "the last packet left through the fast path, with b's resolved MAC: {stats:?}"
    );
    // metrics: the AF_XDP frames are accounted for, and the XDP program's verdicts counted
    // the call's frames.
    let reply = stats_reply(&mut control);
    let rings = &reply.workers[0].rings;
    assert_eq!(rings.len(), 1, "one socket, one-armed: {rings:?}");
    let r = rings[0];
    assert_eq!(r.frames, 1024, "the configured UMEM: {r:?}");
    // At rest the worker keeps at most its TX reserve (64) free and lends the rest to the
    // kernel's fill ring.
    assert!(r.free <= 64, "{r:?}");
    assert!(
        r.receive >= 1024 - 64 - r.transmit,
        "the fill ring is stocked: {r:?}"
    );
    assert_eq!(r.free + r.receive + r.transmit, r.frames, "{r:?}");
    assert!(
        r.kernel.is_some(),
        "the kernel's XDP_STATISTICS read: {r:?}"
    );
    let mppe = reply.xdp.iter().find(|v| v.verdict == "upstream_mppe");
    assert!(
        mppe.is_some_and(|v| v.packets >= sent && v.bytes > 0),
        "the call's GRE counted as upstream_mppe: {:?}",
        reply.xdp
    );

    // Refusals change nothing: another call with the same client address, the same call ID
    // without replace; a PPP frame for no call.
    let establish = |call: Established, replace: bool| {
        Message::Establish(Box::new(Establish { call, replace }))
    };
    let mut other = established(b.addr);
    other.local_call_id = CALL + 1;
    other.gre.local_call_id = CALL + 1;
    let code = |reply: Message| match reply {
        Message::Failed(f) => f.code,
        other => panic!("expected Failed, got {other:?}"),
    };
    assert_eq!(
        code(control.request(establish(other, false)).unwrap()),
        FailureCode::AddressInUse
    );
    assert_eq!(
        code(
            control
                .request(establish(established(b.addr), false))
                .unwrap()
        ),
        FailureCode::CallIdInUse
    );
    let ppp = |call| {
        Message::SendPpp(SendPpp {
            call,
            frame: vec![0xc0, 0x21, 0x09, 0x01, 0x00, 0x08, 0, 0, 0, 0],
        })
    };
    assert_eq!(
        code(control.request(ppp(CALL + 1)).unwrap()),
        FailureCode::NoSuchCall
    );
    assert_eq!(list(&mut control).len(), 1);
    assert_eq!(list(&mut control)[0].upstream.packets, sent, "untouched");
    // Replace: a fresh state for the same call (MPPE and counters start again).
    assert_eq!(
        control
            .request(establish(established(b.addr), true))
            .unwrap(),
        Message::Done
    );
    let calls = list(&mut control);
    assert_eq!(
        (calls.len(), calls[0].upstream.packets),
        (1, 0),
        "{calls:?}"
    );

    // Remove: the call is gone, and its next frame is not forwarded.
    assert_eq!(
        control
            .request(Message::Remove(Remove { call: CALL }))
            .unwrap(),
        Message::Done
    );
    assert!(list(&mut control).is_empty());
    assert!(peer_tx.send(&client.frame(&pair, &udp(0x22))));
    assert_eq!(
        receive_inner(&peer_rx, Duration::from_secs(1)),
        None,
        "a removed call's frame must not be forwarded"
    );
    let stats = worker_stats(&mut control);
    assert_eq!(
        stats[0].upstream.rx.packets, sent,
        "the frame no longer reaches a worker: {stats:?}"
    );

    drop(control);
    server.stop();
    assert!(!socket.exists(), "socket file removed");
    match Arc::try_unwrap(datapath) {
        Ok(d) => d.shutdown(),
        Err(_) => panic!("the datapath is still shared after the server stopped"),
    }
    drop(pair);
}
