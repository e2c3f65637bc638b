//! The client-side sink's opening of downstream frames (`traffic::SessionRx::open`, what
//! `client_sink` runs on every GRE packet the clients' raw socket reads): a session with
//! MPPE mode and keys from the input's first bytes, then frames (a big-endian length, then
//! that many bytes, after a placeholder Ethernet header as the sink puts in front) opened
//! in turn on the same state. Never a panic, whatever the GRE, PPP, MPPE or inner IPv4.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use xpptp_bench::traffic::session::{KeyedCall, L2Addresses, Opened, TrafficSession};
use xpptp_datapath::packet::ETHERNET_LEN;
use xpptp_proto::crypto::mppe::MppeMode;

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Some((key, mut rest)) = rest.split_first_chunk::<16>() else {
        return;
    };
    let call = KeyedCall {
        server_call_id: 0x1111,
        client_call_id: 0x2222,
        client_tunnel: Ipv4Addr::new(10, 8, 0, 10),
        server_tunnel: Some(Ipv4Addr::new(10, 8, 0, 1)),
        mode: match mode % 4 {
            0 => None,
            1 => Some(MppeMode::Stateless),
            2 => Some(MppeMode::Stateful),
            _ => Some(MppeMode::StatefulLinux),
        },
        up_key: [0x5a; 16],
        down_key: *key,
        mtu: 1400,
    };
    let l2 = L2Addresses {
        client_mac: [2, 0, 0, 0, 0, 2],
        server_mac: [2, 0, 0, 0, 0, 1],
    };
    let mut session = TrafficSession::new(
        0,
        &call.client(SERVER),
        CLIENT,
        SERVER,
        l2,
        Ipv4Addr::new(198, 51, 100, 7),
    );
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        let (packet, next) = tail.split_at(len);
        rest = next;
        let mut frame = vec![0u8; ETHERNET_LEN];
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(packet);
        if let Opened::Payload(header) = session.rx.open(&mut frame) {
            assert!(frame.len() >= ETHERNET_LEN + 20 + 8 + 24, "{header:?}");
        }
    }
});
