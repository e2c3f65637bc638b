//! The traffic engine's sessions (keys) file (`traffic::cli::parse_sessions`, what
//! `read_sessions` does with the file's text): any bytes give calls or an error, never a
//! panic; every call it gives builds both ends' state (the client's traffic session, the
//! concentrator's call) and its first upstream frame when the MTU carries the smallest one.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use xpptp_bench::traffic::cli::parse_sessions;
use xpptp_bench::traffic::payload::PayloadHeader;
use xpptp_bench::traffic::session::{FRAME_BUF_LEN, L2Addresses, SizeMix, TrafficSession};
use xpptp_datapath::packet::CallState;

const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(calls) = parse_sessions(text) else {
        return;
    };
    let l2 = L2Addresses {
        client_mac: [2, 0, 0, 0, 0, 2],
        server_mac: [2, 0, 0, 0, 0, 1],
    };
    let mut buf = vec![0u8; FRAME_BUF_LEN];
    for (index, call) in (0u32..).zip(calls.iter().take(4)) {
        let _ = CallState::from_established(&call.server(CLIENT), SERVER);
        let mut session = TrafficSession::new(
            index,
            &call.client(SERVER),
            CLIENT,
            SERVER,
            l2,
            Ipv4Addr::new(198, 51, 100, 7),
        );
        let sizes = SizeMix::Fixed(64);
        if session.check_sizes(sizes).is_ok() {
            let header = PayloadHeader {
                session: index,
                seq: 0,
                sent_ns: 1,
            };
            session
                .tx
                .build_frame(&mut buf, sizes.len_at(0), &header)
                .expect("a call that passed its checks sends");
        }
    }
});
