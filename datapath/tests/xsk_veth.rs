//! AF_XDP end to end on a veth pair with two queues, in namespaces the test creates.
//!
//! Namespace a holds `xa` with the steering program attached (native mode) and one AF_XDP
//! socket per queue in the XSKMAP; namespace b holds `xb`, the "client", which sends GRE of an
//! established call through AF_PACKET. The test checks that the frames reach the socket of
//! the queue they arrived on, that the worker can send them back out in place through the TX
//! ring (and build new frames), that the peer receives them, and that a ping to the host is
//! still answered by the kernel (XDP_PASS).
//!
//! Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF, CAP_NET_RAW) and two CPUs; fails with
//! what is missing otherwise, never skips.
// Test code: panicking with context is how a test fails.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aya::programs::XdpMode;
use common::frames::{ETH_LEN, gre_frame, gre_of, icmp_echo_frame, ipv4_of};
use common::netns::{VethPair, available_cpus, pin_to_cpu, run_in};
use common::packet_socket::PacketSocket;
use xpptp_datapath::steering::Steering;
use xpptp_datapath::xsk::{BindMode, BoundMode, FrameAction, XskConfig, XskSocket};
use xpptp_ebpf_types::Slot;
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};

/// The call ID the concentrator (namespace a) assigned: GRE from the client carries it.
const CALL: u16 = 0x2345;
/// The client's call ID: GRE back to the client carries it.
const PEER_CALL: u16 = 0x6789;
const PER_QUEUE: u32 = 32;

fn load_steering() -> Steering {
    Steering::load().unwrap_or_else(|err| {
        panic!(
            "cannot load the XDP program (needs root with CAP_BPF): {:#}",
            anyhow::Error::new(err)
        )
    })
}

fn open_socket(ifname: &str, queue: u32, mode: BindMode) -> XskSocket {
    let config = XskConfig {
        frame_count: 1024,
        tx_reserve: 64,
        mode,
        ..XskConfig::default()
    };
    XskSocket::open_by_name(ifname, queue, config).unwrap_or_else(|err| {
        panic!(
            "cannot open an AF_XDP socket on {ifname} queue {queue}: {:#}",
            anyhow::Error::new(err)
        )
    })
}

/// Swaps Ethernet and IPv4 addresses and puts the peer's call ID in the GRE header: what the
/// datapath does to a frame it sends back, done in place.
fn reflect(frame: &mut [u8]) {
    let (dst, src) = frame.split_at_mut(6);
    dst.swap_with_slice(&mut src[..6]);
    let mut ip = Ipv4Packet::new_checked(&mut frame[ETH_LEN..]).expect("IPv4");
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.fill_checksum();
    let header_len = usize::from(ip.header_len());
    let mut gre = GrePacket::new_checked(&mut frame[ETH_LEN + header_len..]).expect("GRE");
    gre.set_call_id(PEER_CALL);
}

/// Receives on every socket until `want` frames came in or `timeout` passed; each frame is
/// checked, recorded as (queue, seq) and sent back out of its own queue.
fn receive_and_reflect(
    sockets: &mut [XskSocket],
    want: usize,
    timeout: Duration,
) -> Vec<(u32, u32)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + timeout;
    while got.len() < want && Instant::now() < deadline {
        for socket in sockets.iter_mut() {
            socket.wait(Some(Duration::from_millis(5))).expect("poll");
            let queue = socket.queue();
            socket.rx_batch(64, |frame| {
                match gre_of(frame) {
                    Some((CALL, Some(seq))) => got.push((queue, seq)),
                    other => panic!(
                        "queue {queue}: unexpected frame {other:?}: {:02x?}",
                        &frame[..]
                    ),
                }
                reflect(frame);
                FrameAction::Transmit
            });
        }
    }
    got
}

/// Frames of `call` that `socket` receives within `timeout`, up to `want`: their sequence
/// numbers (None for pure acks).
fn peer_receive(
    socket: &PacketSocket,
    call: u16,
    want: usize,
    timeout: Duration,
) -> Vec<Option<u32>> {
    let mut buf = [0u8; 2048];
    let mut seqs = Vec::new();
    let deadline = Instant::now() + timeout;
    while seqs.len() < want {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(n) = socket.recv_host(&mut buf, left) else {
            break;
        };
        if let Some((id, seq)) = gre_of(&buf[..n])
            && id == call
        {
            seqs.push(seq);
        }
    }
    seqs
}

#[test]
fn xsk_two_queues_receive_transmit_and_pass() {
    let cpus = available_cpus();
    assert!(
        cpus >= 2,
        "this test steers frames to both veth queues by sending from CPU 0 and CPU 1 \
         (AF_PACKET with PACKET_QDISC_BYPASS picks queue = cpu % queues); only {cpus} CPU(s)"
    );
    let pair = VethPair::create("xsk", 2);
    let (a, b) = (pair.a.clone(), pair.b.clone());

    // The client side: a receiver (frames for b) and a sender that bypasses the qdisc.
    let (peer_rx, peer_tx) = run_in(&b.netns, || {
        (
            PacketSocket::open(b.ifname, true, false),
            PacketSocket::open(b.ifname, false, true),
        )
    });

    run_in(&a.netns, || {
        let mut steering = load_steering();
        // Queue 0 asks for zero-copy first: veth has none, so this also checks the fallback.
        let mut sockets = vec![
            open_socket(a.ifname, 0, BindMode::Auto),
            open_socket(a.ifname, 1, BindMode::Copy),
        ];
        for socket in &sockets {
            assert_eq!(socket.mode(), BoundMode::Copy, "veth has no zero-copy");
            steering
                .set_socket(socket.queue(), socket)
                .expect("insert socket into the XSKMAP");
        }
        steering
            .establish_call(CALL, b.addr, false)
            .expect("establish call");
        steering
            .attach(a.ifname, XdpMode::Driver)
            .expect("attach XDP in native mode to the veth");

        // Client -> concentrator: PER_QUEUE frames from each CPU, so from each TX queue of xb,
        // so into the same RX queue of xa.
        for cpu in 0..2u32 {
            let (b, peer_tx) = (&b, &peer_tx);
            std::thread::scope(|s| {
                s.spawn(move || {
                    pin_to_cpu(cpu as usize);
                    for i in 0..PER_QUEUE {
                        let frame = gre_frame(a.mac, b.mac, b.addr, a.addr, CALL, cpu * 1000 + i);
                        assert!(peer_tx.send(&frame), "AF_PACKET send refused");
                    }
                });
            });
        }

        let want = (2 * PER_QUEUE) as usize;
        let got = receive_and_reflect(&mut sockets, want, Duration::from_secs(5));
        let counters: Vec<_> = sockets.iter().map(|s| s.counters()).collect();
        assert_eq!(
            got.len(),
            want,
            "frames on the AF_XDP sockets: {got:?}; socket counters {counters:?}; kernel \
             stats {:?}; XDP counters {:?}",
            sockets.iter().map(|s| s.kernel_stats()).collect::<Vec<_>>(),
            steering.counters()
        );
        for queue in 0..2u32 {
            let seqs: BTreeSet<u32> = got
                .iter()
                .filter(|(q, _)| *q == queue)
                .map(|&(_, seq)| seq)
                .collect();
            let expected: BTreeSet<u32> = (0..PER_QUEUE).map(|i| queue * 1000 + i).collect();
            assert_eq!(
                seqs, expected,
                "queue {queue} must carry exactly the frames sent from CPU {queue}"
            );
        }
        let mppe = steering.counter(Slot::UpstreamMppe).expect("counter");
        assert_eq!(mppe.packets, u64::from(2 * PER_QUEUE), "XDP redirect count");
        let no_socket = steering.counter(Slot::RedirectNoSocket).expect("counter");
        assert_eq!(no_socket.packets, 0, "every queue has a socket");

        // Concentrator -> client: the reflected frames went out of the TX rings.
        let back = peer_receive(&peer_rx, PEER_CALL, want, Duration::from_secs(5));
        let back: BTreeSet<u32> = back.into_iter().flatten().collect();
        let sent: BTreeSet<u32> = got.iter().map(|&(_, seq)| seq).collect();
        assert_eq!(
            back, sent,
            "the peer must receive every frame sent back through TX"
        );
        for socket in &mut sockets {
            // Completions in copy mode arrive when the skb is freed: give them a moment.
            let deadline = Instant::now() + Duration::from_secs(2);
            while socket.tx_outstanding() > 0 && Instant::now() < deadline {
                socket.reap_completions();
                std::thread::sleep(Duration::from_millis(1));
            }
            let c = socket.counters();
            assert_eq!(
                c.tx_frames,
                u64::from(PER_QUEUE),
                "queue {}",
                socket.queue()
            );
            assert_eq!(
                c.tx_completed,
                c.tx_frames,
                "queue {}: {c:?}",
                socket.queue()
            );
            assert_eq!(c.tx_kick_errors, 0, "queue {}: {c:?}", socket.queue());
        }

        // A frame the worker builds itself (a pure ack), from a free UMEM frame.
        let ack = GreRepr::pure_ack(PEER_CALL, 77);
        let mut ack_frame = common::frames::ethernet(b.mac, a.mac, 0x0800);
        let mut gre = vec![0; ack.header_len()];
        ack.emit(&mut GrePacket::new_unchecked(&mut gre[..]))
            .expect("emit ack");
        ack_frame.extend(common::frames::ipv4(a.addr, b.addr, IpProtocol::Gre, &gre));
        sockets[1]
            .send_with(ack_frame.len(), |frame| {
                frame.copy_from_slice(&ack_frame);
                FrameAction::Transmit
            })
            .expect("a free frame for TX");
        sockets[1].flush();
        let acks = peer_receive(&peer_rx, PEER_CALL, 1, Duration::from_secs(5));
        assert_eq!(
            acks,
            vec![None],
            "the pure ack built in the UMEM reaches the peer"
        );

        // The host still answers ping: ICMP is passed to the kernel, not redirected.
        let before: u64 = sockets.iter().map(|s| s.counters().rx_frames).sum();
        let echo = icmp_echo_frame(a.mac, b.mac, b.addr, a.addr, 0x77, 1);
        assert!(peer_tx.send(&echo), "AF_PACKET send refused");
        let mut buf = [0u8; 2048];
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut answered = false;
        while !answered {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(n) = peer_rx.recv_host(&mut buf, left) else {
                break;
            };
            if let Some(ip) = ipv4_of(&buf[..n])
                && ip.protocol() == IpProtocol::Icmp
                && ip.src_addr() == a.addr
            {
                let icmp = ip.payload();
                answered = icmp.first() == Some(&0) && icmp.get(4..6) == Some(&[0, 0x77][..]);
            }
        }
        assert!(
            answered,
            "no echo reply from {}: XDP_PASS path broken? XDP counters {:?}",
            a.addr,
            steering.counters()
        );
        for socket in &mut sockets {
            socket.rx_batch(64, |_| FrameAction::Recycle);
        }
        let after: u64 = sockets.iter().map(|s| s.counters().rx_frames).sum();
        assert_eq!(before, after, "the ping must not reach the AF_XDP sockets");
        let passed = steering.counter(Slot::PassOtherIpv4).expect("counter");
        assert!(
            passed.packets >= 1,
            "the echo request was passed: {passed:?}"
        );
    });
    drop(pair);
}
