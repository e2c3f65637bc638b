//! A quick, bounded look at AF_XDP receive rate on veth (copy mode): a sender in the peer
//! namespace floods GRE of an established call through AF_PACKET for at most a second; the
//! sockets receive and recycle. The rate is printed (run with --nocapture), not asserted: the
//! machine is shared. The test asserts only that traffic arrived.
//!
//! Needs root, like xsk_veth.rs; fails with what is missing, never skips.
// Test code: panicking with context is how a test fails.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aya::programs::XdpMode;
use common::frames::gre_frame;
use common::netns::{VethPair, available_cpus, pin_to_cpu, run_in};
use common::packet_socket::PacketSocket;
use xpptp_datapath::steering::Steering;
use xpptp_datapath::xsk::{BindMode, FrameAction, XskConfig, XskSocket};

const CALL: u16 = 0x1234;
const MAX_FRAMES: u64 = 300_000;
const WINDOW: Duration = Duration::from_secs(1);

#[test]
fn xsk_receive_rate_informational() {
    let pair = VethPair::create("rate", 2);
    let (a, b) = (pair.a.clone(), pair.b.clone());
    let peer_tx = run_in(&b.netns, || PacketSocket::open(b.ifname, false, true));
    run_in(&a.netns, || {
        let mut steering = Steering::load().unwrap_or_else(|err| {
            panic!("cannot load the XDP program (needs root with CAP_BPF): {err:#?}")
        });
        let mut sockets: Vec<XskSocket> = (0..2)
            .map(|queue| {
                let config = XskConfig {
                    mode: BindMode::Copy,
                    ..XskConfig::default()
                };
                XskSocket::open_by_name(a.ifname, queue, config)
                    .unwrap_or_else(|err| panic!("AF_XDP socket on queue {queue}: {err:#?}"))
            })
            .collect();
        for socket in &sockets {
            steering.set_socket(socket.queue(), socket).expect("XSKMAP");
        }
        steering.establish_call(CALL, b.addr, false).expect("call");
        steering.attach(a.ifname, XdpMode::Driver).expect("attach");

        let frame = gre_frame(a.mac, b.mac, b.addr, a.addr, CALL, 1);
        let sent = AtomicU64::new(0);
        let done = AtomicBool::new(false);
        let sender_cpu = available_cpus().saturating_sub(1);
        let (received, elapsed) = std::thread::scope(|s| {
            s.spawn(|| {
                pin_to_cpu(sender_cpu);
                let start = Instant::now();
                let mut n = 0;
                while n < MAX_FRAMES && start.elapsed() < WINDOW {
                    if peer_tx.send(&frame) {
                        n += 1;
                    }
                }
                sent.store(n, Ordering::Relaxed);
                done.store(true, Ordering::Release);
            });
            let start = Instant::now();
            let mut received = 0u64;
            let mut idle_since = None;
            loop {
                let mut batch = 0;
                for socket in &mut sockets {
                    batch += socket.rx_batch(64, |_| FrameAction::Recycle);
                }
                received += batch as u64;
                if batch == 0 {
                    if done.load(Ordering::Acquire) {
                        // Drain for a short while after the sender stopped.
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_millis(100) {
                            break;
                        }
                    }
                    for socket in &sockets {
                        socket.wait(Some(Duration::from_millis(1))).expect("poll");
                    }
                } else {
                    idle_since = None;
                }
                if start.elapsed() > WINDOW * 3 {
                    break;
                }
            }
            (received, start.elapsed())
        });
        let sent = sent.load(Ordering::Relaxed);
        let per_queue: Vec<_> = sockets.iter().map(|s| s.counters().rx_frames).collect();
        let kernel: Vec<_> = sockets.iter().map(|s| s.kernel_stats()).collect();
        eprintln!(
            "AF_XDP copy mode on veth: sent {sent}, received {received} (per queue \
             {per_queue:?}) in {elapsed:?}: {:.0} frames/s received; kernel stats {kernel:?}",
            received as f64 / elapsed.as_secs_f64()
        );
        assert!(received > 0, "no frames arrived; sent {sent}");
    });
    drop(pair);
}
