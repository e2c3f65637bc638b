//! The worker's per-packet path (`packet::decap`, `packet::encap`) beside the bare MPPE cost
//! of the same packets, in the same run (issue 4, "Benchmark"): 128-bit MPPE, stateless and
//! stateful, inner IPv4 packets of 64, 512 and 1400 bytes.
//!
//! Each iteration processes one packet:
//!
//! * decap: the pristine client frame is copied into the work buffer and the call's
//!   upstream state restored from a snapshot (decryption is in place and moves the MPPE
//!   state; restoring makes every iteration decrypt the same real packet), then `decap`.
//!   The bare case does the same restore, then only `MppeDecryptor::decrypt` on the
//!   MPPE payload.
//! * encap: the inner packet is copied behind the headroom, then `encap` (state runs on:
//!   sequence numbers, coherency counts). The bare case copies, then only
//!   `MppeEncryptor::encrypt` over protocol field and packet.
//! * restore: the copy/restore alone, measured so that it can be taken out of both sides.
//!
//! After criterion's own report a table gives the median ns/packet of each case, the
//! difference and the ratio fast path / bare MPPE with the restore cost removed from both.
//! Targets: ratio at most 1.15 at 1400 bytes, difference at most 150 ns at 64 bytes
//! stateful.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // bench code

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::Criterion;

use xpptp_datapath::packet::{
    CallState, DecapVerdict, ENCAP_HEADROOM, EncapVerdict, L2Header, decap, encap,
};
use xpptp_proto::crypto::mppe::{MppeEncryptor, MppeMode};
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::{Established, MppeKeyState};
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};

const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 7);
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 8, 0, 10);
const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 50);
const UP_KEY: StartKey = StartKey([0x11; 16]);
const DOWN_KEY: StartKey = StartKey([0x22; 16]);
const SIZES: [usize; 3] = [64, 512, 1400];
/// Ethernet 14 + IPv4 20 + GRE 12 (sequence, no ack) + PPP protocol 0xFD (PFC).
const MPPE_AT: usize = 14 + 20 + 12 + 1;

/// Median ns/iteration per case, from criterion's own samples (`iter_custom`).
static SAMPLES: Mutex<BTreeMap<String, Vec<f64>>> = Mutex::new(BTreeMap::new());

fn record(name: &str, iters: u64, elapsed: Duration) {
    if iters >= 50 {
        let ns = elapsed.as_nanos() as f64 / iters as f64;
        SAMPLES
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default()
            .push(ns);
    }
}

fn median(name: &str) -> f64 {
    let mut v = SAMPLES
        .lock()
        .unwrap()
        .get(name)
        .cloned()
        .unwrap_or_default();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn call(mode: MppeMode) -> CallState {
    let key = |k| {
        Some(MppeKeyState {
            strength: MppeStrength::Bits128,
            mode,
            start_key: k,
        })
    };
    let est = Established {
        role: Role::Server,
        local_call_id: 1,
        peer_call_id: 2,
        peer_address: CLIENT,
        peer_recv_window: 64,
        user: None,
        auth_method: None,
        client_tunnel_address: CLIENT_TUNNEL,
        server_tunnel_address: None,
        name_servers: NameServers::default(),
        transmit: key(DOWN_KEY),
        receive: key(UP_KEY),
        gre: GreSnapshot {
            local_call_id: 1,
            peer_call_id: 2,
            next_seq: 0,
            peer_acked: u32::MAX,
            ack_owed: None,
            recv_highest: None,
            peer_recv_window: 64,
        },
        peer_mru: 1404,
        our_mru: 1404,
        mtu: 1400,
        acfc: true,
        pfc: true,
    };
    CallState::from_established(&est, SERVER)
}

fn ip_packet(src: Ipv4Addr, dst: Ipv4Addr, len: usize) -> Vec<u8> {
    let repr = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        protocol: IpProtocol::Udp,
        payload_len: len - 20,
        ttl: 64,
        dscp_ecn: 0,
        ident: 1,
        dont_frag: true,
    };
    let mut p = vec![0u8; len];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut p[..]))
        .unwrap();
    p
}

/// The client's first upstream frame carrying `inner` (count 0, sequence 0).
fn client_frame(mode: MppeMode, inner: &[u8]) -> Vec<u8> {
    let mut enc = MppeEncryptor::new(&UP_KEY, MppeStrength::Bits128, mode);
    let mut text = vec![0x00, 0x21];
    text.extend_from_slice(inner);
    let header = enc.encrypt(&mut text);
    let mut ppp = vec![0xFD];
    ppp.extend_from_slice(&header.to_be_bytes());
    ppp.extend_from_slice(&text);
    let g = GreRepr {
        call_id: 1,
        seq: Some(0),
        ack: None,
        payload_len: ppp.len() as u16,
    };
    let ip = Ipv4Repr {
        src_addr: CLIENT,
        dst_addr: SERVER,
        protocol: IpProtocol::Gre,
        payload_len: g.buffer_len(),
        ttl: 64,
        dscp_ecn: 0,
        ident: 7,
        dont_frag: false,
    };
    let mut f = vec![0u8; 14 + 20 + g.header_len()];
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut f[14..]))
        .unwrap();
    g.emit(&mut GrePacket::new_unchecked(&mut f[34..])).unwrap();
    f.extend_from_slice(&ppp);
    assert_eq!(f.len(), MPPE_AT + 2 + 2 + inner.len());
    f
}

fn mode_name(mode: MppeMode) -> &'static str {
    match mode {
        MppeMode::Stateless => "stateless",
        _ => "stateful",
    }
}

fn benches(c: &mut Criterion) {
    for mode in [MppeMode::Stateless, MppeMode::Stateful] {
        let mut group = c.benchmark_group(format!("fastpath/{}", mode_name(mode)));
        for size in SIZES {
            bench_decap(&mut group, mode, size);
            bench_encap(&mut group, mode, size);
        }
        group.finish();
    }
}

type Group<'a> = criterion::BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn bench_decap(group: &mut Group<'_>, mode: MppeMode, size: usize) {
    let m = mode_name(mode);
    let inner = ip_packet(CLIENT_TUNNEL, INSIDE_HOST, size);
    let pristine = client_frame(mode, &inner);
    let state = call(mode);
    let snapshot = state.upstream.clone();
    // Sanity: the path under test forwards.
    {
        let mut s = call(mode);
        let mut f = pristine.clone();
        let v = decap(&s.config, &mut s.upstream, &s.acks, &mut f);
        assert!(matches!(v, DecapVerdict::Forward { .. }), "{v:?}");
    }

    let mut run = |name: String, which: u8| {
        let mut s = call(mode);
        let mut work = pristine.clone();
        group.bench_function(name.clone(), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    work.copy_from_slice(&pristine);
                    s.upstream.clone_from(&snapshot);
                    match which {
                        0 => {}
                        1 => {
                            let header = u16::from_be_bytes([work[MPPE_AT], work[MPPE_AT + 1]]);
                            let dec = s.upstream.mppe.as_mut().unwrap();
                            black_box(dec.decrypt(header, &mut work[MPPE_AT + 2..]));
                        }
                        _ => {
                            black_box(decap(&s.config, &mut s.upstream, &s.acks, &mut work));
                        }
                    }
                    black_box(&mut work);
                }
                let elapsed = start.elapsed();
                record(&name, iters, elapsed);
                elapsed
            })
        });
    };
    run(format!("decap-restore/{m}/{size}"), 0);
    run(format!("decap-bare-mppe/{m}/{size}"), 1);
    run(format!("decap/{m}/{size}"), 2);
}

fn bench_encap(group: &mut Group<'_>, mode: MppeMode, size: usize) {
    let m = mode_name(mode);
    let inner = ip_packet(INSIDE_HOST, CLIENT_TUNNEL, size);
    let l2 = L2Header::ethernet([2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 1]);
    let at = ENCAP_HEADROOM;
    let end = at + size;
    let mut run = |name: String, which: u8| {
        let mut s = call(mode);
        let mut buf = vec![0u8; end];
        group.bench_function(name.clone(), |b| {
            b.iter_custom(|iters| {
                let start = Instant::now();
                for _ in 0..iters {
                    buf[at..end].copy_from_slice(&inner);
                    match which {
                        0 => {}
                        1 => {
                            buf[at - 2..at].copy_from_slice(&[0x00, 0x21]);
                            let enc = s.downstream.mppe.as_mut().unwrap();
                            black_box(enc.encrypt(&mut buf[at - 2..end]));
                        }
                        _ => {
                            let v = encap(
                                &s.config,
                                &mut s.downstream,
                                &s.acks,
                                &l2,
                                &mut buf,
                                at..end,
                                true,
                            );
                            debug_assert!(matches!(v, EncapVerdict::Send { .. }));
                            black_box(v);
                        }
                    }
                    black_box(&mut buf);
                }
                let elapsed = start.elapsed();
                record(&name, iters, elapsed);
                elapsed
            })
        });
    };
    run(format!("encap-restore/{m}/{size}"), 0);
    run(format!("encap-bare-mppe/{m}/{size}"), 1);
    run(format!("encap/{m}/{size}"), 2);
}

fn print_table() {
    println!();
    println!("Median ns/packet (restore = per-iteration copy/state restore, in both columns)");
    println!(
        "{:<6} {:<10} {:>5} | {:>8} {:>9} {:>9} | {:>8} {:>7}",
        "dir", "mode", "size", "restore", "bare-mppe", "fastpath", "diff ns", "ratio"
    );
    for dir in ["decap", "encap"] {
        for m in ["stateless", "stateful"] {
            for size in SIZES {
                let r = median(&format!("{dir}-restore/{m}/{size}"));
                let bare = median(&format!("{dir}-bare-mppe/{m}/{size}"));
                let fast = median(&format!("{dir}/{m}/{size}"));
                if fast.is_nan() {
                    continue; // filtered out on the command line
                }
                let ratio = (fast - r) / (bare - r);
                println!(
                    "{dir:<6} {m:<10} {size:>5} | {r:>8.1} {bare:>9.1} {fast:>9.1} | {:>8.1} {ratio:>7.3}",
                    fast - bare
                );
            }
        }
    }
    println!("ratio = (fastpath - restore) / (bare-mppe - restore); diff = fastpath - bare-mppe");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c);
    c.final_summary();
    print_table();
}
