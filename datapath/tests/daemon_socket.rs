//! The daemon with `--backend socket`: [`Datapath`] over the socket backend serves the
//! command socket like the XDP one, and forwards.
//!
//! Namespace a runs the datapath on `xa` with the socket backend (raw GRE socket, TUN
//! `xpptp-sk`, pool 10.8.0.0/24) and its command server. Namespace b is both the PPTP client
//! and the inside host (192.0.2.50, routed through b from a; the pool routed through a from
//! b). Through the command socket the test says Hello, Establishes a call (MPPE 128-bit
//! stateless): the client's GRE arrives decrypted at the inside host, TTL one less; the
//! inside host's packet to the client's tunnel address reaches the client encrypted; the
//! listing and the worker statistics show the traffic; the client's LCP Echo-Request is
//! punted to the control plane and its SendPpp reaches the client; Remove empties the
//! listing.
//!
//! Needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_SYS_ADMIN) and /dev/net/tun; fails with what
//! is missing otherwise, never skips. `VethPair`'s guard removes the namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::concentrator::{CallSpec, Link, TestClient, decremented, inside_frame, receive, udp};
use common::frames::ETH_LEN;
use common::netns::{VethPair, ip, run_in};
use common::packet_socket::PacketSocket;
use xpptp_datapath::backend::BackendKind;
use xpptp_datapath::command::CommandServer;
use xpptp_datapath::command::client::Client;
use xpptp_datapath::daemon::{Datapath, DatapathConfig};
use xpptp_datapath::tun::{Ipv4Prefix, TunConfig};
use xpptp_proto::command::{Establish, ListCalls, Message, Remove, SendPpp, WorkerStats};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};

const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 10);
const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);

struct SocketDir(PathBuf);

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn worker_stats(client: &mut Client) -> Vec<WorkerStats> {
    match client.request(Message::GetWorkerStats).unwrap() {
        Message::WorkerStats(s) => s.workers,
        other => panic!("expected WorkerStats, got {other:?}"),
    }
}

#[test]
fn socket_backend_daemon_serves_commands_and_forwards() {
    let pair = VethPair::create("sk", 1);
    let link = Link {
        a: pair.a.clone(),
        b: pair.b.clone(),
    };
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let inside = format!("{INSIDE_HOST}/32");
    ip(&["-n", &b.netns, "addr", "add", &inside, "dev", b.ifname]);
    ip(&[
        "-n",
        &a.netns,
        "route",
        "add",
        &inside,
        "via",
        &b.addr.to_string(),
    ]);
    ip(&[
        "-n",
        &b.netns,
        "route",
        "add",
        "10.8.0.0/24",
        "via",
        &a.addr.to_string(),
    ]);
    let (rx, tx) = run_in(&b.netns, || {
        (
            PacketSocket::open(b.ifname, true, false),
            PacketSocket::open(b.ifname, false, false),
        )
    });

    let datapath = run_in(&a.netns, || {
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").expect("enable forwarding");
        let mut tun = TunConfig::new(Ipv4Prefix::new(Ipv4Addr::new(10, 8, 0, 1), 24).unwrap());
        tun.name = "xpptp-sk".into();
        let mut config = DatapathConfig::new(a.ifname, tun);
        config.backend = BackendKind::Socket;
        config.socket_threads = Some(1);
        config.pin = false;
        Datapath::start(&config).unwrap_or_else(|err| {
            panic!(
                "cannot start the socket backend in {} (needs root: CAP_NET_ADMIN, \
                 CAP_NET_RAW, /dev/net/tun): {:#}",
                a.netns,
                anyhow::Error::new(err)
            )
        })
    });
    assert_eq!(datapath.backend(), BackendKind::Socket);
    assert_eq!(datapath.local_address(), a.addr);
    assert!(datapath.xdp_counters().is_empty(), "no XDP program");
    let datapath = Arc::new(datapath);
    let dir = SocketDir(std::env::temp_dir().join(format!("xpptp-sock-{}", std::process::id())));
    let path = dir.0.join("datapath.sock");
    let server = CommandServer::start(&path, "xpptp-datapath test".into(), Arc::clone(&datapath))
        .expect("command server");
    let (mut control, hello) = Client::connect(&path, "test control", true).expect("hello");
    assert_eq!(hello.calls, 0);
    assert_eq!(hello.workers, 2, "one upstream and one downstream thread");

    let spec = CallSpec {
        call_id: 0x2345,
        peer_call_id: 0x6789,
        client_tunnel: CLIENT_TUNNEL,
        mppe: Some(MppeMode::Stateless),
    };
    let reply = control
        .request(Message::Establish(Box::new(Establish {
            call: spec.established(b.addr),
            replace: false,
        })))
        .unwrap();
    assert_eq!(reply, Message::Done);
    let mut client = TestClient::new(spec);

    // Upstream: through the raw GRE socket, the TUN and the kernel's forwarding.
    let up = udp(CLIENT_TUNNEL, INSIDE_HOST, 0x11, 64);
    assert!(tx.send(&client.data(&link, &up)));
    let got = receive(&rx, |f| {
        let ip = Ipv4Packet::new_checked(f.get(ETH_LEN..)?).ok()?;
        (ip.dst_addr() == INSIDE_HOST && ip.src_addr() == CLIENT_TUNNEL).then(|| f.to_vec())
    })
    .unwrap_or_else(|| {
        panic!(
            "the decrypted packet did not arrive: {:?}",
            datapath.stats()
        )
    });
    assert_eq!(&got[ETH_LEN..], &decremented(&up)[..]);

    // Downstream: the inside host's packet, routed into the TUN, reaches the client (after,
    // possibly, b's ICMP port unreachable for the UDP above, which takes the same way).
    let down = udp(INSIDE_HOST, CLIENT_TUNNEL, 0x22, 64);
    assert!(tx.send(&inside_frame(&link, &down, None)));
    let got = receive(&rx, |f| {
        client.open_data(&link, f).filter(|p| {
            Ipv4Packet::new_checked(&p[..]).is_ok_and(|ip| ip.protocol() == IpProtocol::Udp)
        })
    })
    .unwrap_or_else(|| panic!("nothing came back to the client: {:?}", datapath.stats()));
    assert_eq!(got, decremented(&down));

    // The command path sees it all.
    let deadline = Instant::now() + Duration::from_secs(3);
    let stats = loop {
        let stats = worker_stats(&mut control);
        let done = stats
            .first()
            .is_some_and(|w| w.upstream.tx.packets == 1 && w.downstream.tx.packets >= 1);
        if done || Instant::now() > deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(stats.len(), 1, "{stats:?}");
    assert_eq!(stats[0].upstream.rx.packets, 1, "{stats:?}");
    assert_eq!(stats[0].upstream.tx.packets, 1, "{stats:?}");
    assert!(stats[0].downstream.tx.packets >= 1, "{stats:?}");
    // metrics: no AF_XDP rings and no XDP program here.
    assert!(stats[0].rings.is_empty(), "{stats:?}");
    match control.request(Message::GetWorkerStats).unwrap() {
        Message::WorkerStats(reply) => assert!(reply.xdp.is_empty(), "{reply:?}"),
        other => panic!("expected WorkerStats, got {other:?}"),
    }
    let calls = match control
        .request(Message::ListCalls(ListCalls { start: 0, max: 10 }))
        .unwrap()
    {
        Message::CallList(page) => page.calls,
        other => panic!("expected CallList, got {other:?}"),
    };
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].local_call_id, 0x2345);
    assert_eq!(calls[0].upstream.packets, 1);
    assert!(calls[0].downstream.packets >= 1, "{calls:?}");

    // Control frames: the client's LCP Echo-Request is punted to the control plane; the
    // control plane's Echo-Reply reaches the client.
    let echo = [0x09, 0x07, 0x00, 0x08, 0x11, 0x22, 0x33, 0x44];
    assert!(tx.send(&client.control(&link, 0xC021, &echo)));
    let deadline = Instant::now() + Duration::from_secs(3);
    let punted = loop {
        match control.next_event(Duration::from_millis(200)).unwrap() {
            Some(Message::PppFromPeer(p)) => break p,
            Some(_) | None => assert!(Instant::now() < deadline, "no punt: {:?}", datapath.stats()),
        }
    };
    assert_eq!(punted.call, 0x2345);
    assert!(punted.frame.ends_with(&echo), "{:02x?}", punted.frame);
    let reply = vec![0xc0, 0x21, 0x0A, 0x07, 0x00, 0x08, 0, 0, 0, 0];
    assert_eq!(
        control
            .request(Message::SendPpp(SendPpp {
                call: 0x2345,
                frame: reply.clone(),
            }))
            .unwrap(),
        Message::Done
    );
    // Skipping data (b's ICMP port unreachable for the first UDP may still be on its way).
    let got = receive(&rx, |f| {
        client
            .open(&link, f)
            .filter(|r| !r.encrypted && r.ppp.starts_with(&[0xc0, 0x21]))
    })
    .unwrap_or_else(|| panic!("the control frame did not reach the client"));
    assert!(
        got.ppp.ends_with(&reply),
        "LCP Echo-Reply as sent: {:02x?}",
        got.ppp
    );
    // Published once per turn of the thread's loop, after the send.
    let deadline = Instant::now() + Duration::from_secs(3);
    while datapath.stats().control_tx.packets == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stats = datapath.stats();
    assert_eq!(stats.control_tx.packets, 1, "{stats:?}");
    assert_eq!(
        control
            .request(Message::Remove(Remove { call: 0x2345 }))
            .unwrap(),
        Message::Done
    );

    drop(control);
    server.stop();
    match Arc::try_unwrap(datapath) {
        Ok(d) => d.shutdown(),
        Err(_) => panic!("the datapath is still shared after the server stopped"),
    }
    drop(dir);
    drop(pair);
}
