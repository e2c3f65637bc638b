//! The TUN device in a namespace the test creates: created multi-queue with its address, MTU
//! and pool route; a packet written into it reaches the kernel (an ICMP echo is answered, a
//! UDP datagram is received by a socket); a packet the kernel routes into it is read.
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for the namespace) and /dev/net/tun; fails with
//! what is missing otherwise, never skips. The namespace is removed by `VethPair`'s guard.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::frames::ipv4;
use common::netns::{VethPair, run_in};
use xpptp_datapath::tun::{Ipv4Prefix, Tun, TunConfig, TunError, TunQueue};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet, checksum};

const TUN_ADDR: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
/// The other end of the device's /24: reachable through the TUN by the connected route.
const PEER: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const POOL: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 0);
const POOL_HOST: Ipv4Addr = Ipv4Addr::new(10, 10, 0, 5);

fn ip_output(netns: &str, args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-n")
        .arg(netns)
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn create(name: &str, queues: usize) -> Tun {
    let mut config = TunConfig::new(Ipv4Prefix::new(TUN_ADDR, 24).unwrap());
    config.name = name.to_owned();
    config.mtu = 1280;
    config.routes = vec![Ipv4Prefix::new(POOL, 24).unwrap()];
    config.queues = queues;
    Tun::create(config).unwrap_or_else(|err| {
        panic!(
            "cannot create the TUN device (needs root and /dev/net/tun): {:#}",
            anyhow::Error::new(err)
        )
    })
}

/// The first packet any queue yields within two seconds for which `pick` says Some.
fn read_any<T>(queues: &[TunQueue], mut pick: impl FnMut(&[u8]) -> Option<T>) -> Option<T> {
    let mut buf = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        for q in queues {
            q.wait_readable(Duration::from_millis(5)).unwrap();
            loop {
                match q.recv(&mut buf) {
                    Ok(n) => {
                        if let Some(t) = pick(&buf[..n]) {
                            return Some(t);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("TUN read: {e}"),
                }
            }
        }
    }
    None
}

fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, seq: u16) -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0];
    icmp.extend_from_slice(&ident.to_be_bytes());
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(b"xpptp-tun");
    let sum = !checksum::data(&icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    ipv4(src, dst, IpProtocol::Icmp, &icmp)
}

/// UDP without checksum (0: none, valid over IPv4).
fn udp(src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let mut udp = Vec::new();
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&u16::try_from(8 + payload.len()).unwrap().to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    ipv4(*src.ip(), *dst.ip(), IpProtocol::Udp, &udp)
}

#[test]
fn tun_device_is_set_up_and_exchanges_packets_with_the_kernel() {
    let pair = VethPair::create("tun", 1);
    let ns = pair.a.netns.clone();
    run_in(&ns, || {
        let tun = create("xpptp0", 2);
        assert_eq!(tun.name(), "xpptp0");
        assert_eq!(tun.queues().len(), 2, "one file descriptor per queue");

        let link = ip_output(&ns, &["-o", "link", "show", "xpptp0"]);
        assert!(link.contains("mtu 1280"), "{link}");
        assert!(link.contains(",UP") || link.contains("<UP"), "{link}");
        let addr = ip_output(&ns, &["-o", "-4", "addr", "show", "dev", "xpptp0"]);
        assert!(addr.contains("inet 10.9.0.1/24"), "{addr}");
        let route = ip_output(&ns, &["-4", "route", "show", "10.10.0.0/24"]);
        assert!(
            route.contains("dev xpptp0"),
            "pool routed into the TUN: {route}"
        );

        let queues = tun.queues();
        // A packet written into the TUN reaches the kernel, whose answer comes back out.
        queues[0]
            .send(&echo_request(PEER, TUN_ADDR, 0x4242, 7))
            .unwrap();
        let reply = read_any(queues, |p| {
            let ip = Ipv4Packet::new_checked(p).ok()?;
            let icmp = ip.payload();
            (ip.protocol() == IpProtocol::Icmp && icmp.first() == Some(&0)).then(|| {
                (
                    ip.src_addr(),
                    ip.dst_addr(),
                    icmp[4..8].to_vec(),
                    icmp[8..].to_vec(),
                )
            })
        })
        .expect("the kernel answers the echo request written into the TUN");
        assert_eq!(reply.0, TUN_ADDR);
        assert_eq!(reply.1, PEER);
        assert_eq!(reply.2, [0x42, 0x42, 0, 7], "same ident and sequence");
        assert_eq!(reply.3, b"xpptp-tun");

        // A datagram from a pool address written into queue 1 reaches a socket.
        let socket = UdpSocket::bind((TUN_ADDR, 7000)).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let from = SocketAddrV4::new(POOL_HOST, 4000);
        queues[1]
            .send(&udp(from, SocketAddrV4::new(TUN_ADDR, 7000), b"up the tun"))
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, src) = socket
            .recv_from(&mut buf)
            .expect("the socket receives the datagram written into the TUN");
        assert_eq!(&buf[..n], b"up the tun");
        assert_eq!(src, std::net::SocketAddr::V4(from));

        // What the kernel sends to the pool is routed into the TUN and read there.
        socket
            .send_to(b"down the tun", (Ipv4Addr::new(10, 10, 0, 7), 9))
            .unwrap();
        let got = read_any(queues, |p| {
            let ip = Ipv4Packet::new_checked(p).ok()?;
            (ip.dst_addr() == Ipv4Addr::new(10, 10, 0, 7) && ip.protocol() == IpProtocol::Udp)
                .then(|| (ip.src_addr(), ip.payload()[8..].to_vec()))
        })
        .expect("a packet to the pool is read from the TUN");
        assert_eq!(got, (TUN_ADDR, b"down the tun".to_vec()));

        // A packet longer than the reader's buffer arrives truncated to it (the backends rely
        // on this: the length checks after it drop the packet).
        socket
            .send_to(&[0x55; 600], (Ipv4Addr::new(10, 10, 0, 8), 9))
            .unwrap();
        let mut small = [0u8; 100];
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut outcome = None;
        while outcome.is_none() && Instant::now() < deadline {
            for q in queues {
                q.wait_readable(Duration::from_millis(5)).unwrap();
                match q.recv(&mut small) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    r => outcome = Some(r.map_err(|e| e.raw_os_error())),
                }
            }
        }
        assert_eq!(outcome, Some(Ok(100)), "truncated read");
        drop(tun);
        let links = ip_output(&ns, &["-o", "link", "show"]);
        assert!(!links.contains("xpptp0"), "the device goes with its queues");
    });
    drop(pair);
}

#[test]
fn tun_refuses_a_bad_name_and_no_queue() {
    let mut config = TunConfig::new(Ipv4Prefix::new(TUN_ADDR, 24).unwrap());
    config.name = "a-name-longer-than-15".to_owned();
    assert!(matches!(
        Tun::create(config.clone()),
        Err(TunError::BadName(_))
    ));
    config.name = "xpptp9".to_owned();
    config.queues = 0;
    assert!(matches!(Tun::create(config), Err(TunError::NoQueue)));
    assert!(Ipv4Prefix::new(POOL, 33).is_none());
}
