//! The pcap export's sessions file (`pcap::parse_sessions`, what `read_sessions` does with
//! the file's text): any bytes give a validated file or an error, never a panic. What a
//! validated file promises holds: both ends' sessions build, and the generator's inner
//! packets exist for every size its rule gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_bench::pcap::parse_sessions;
use xpptp_datapath::packet::CallState;
use xpptp_proto::ppp::link::Role;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = parse_sessions(text) else {
        return;
    };
    let size = file.packet_size().expect("validated");
    for (index, session) in (0u32..).zip(file.sessions.iter().take(4)) {
        let server = file
            .established(session, Role::Server)
            .expect("validated: the server's end builds");
        let client = file
            .established(session, Role::Client)
            .expect("validated: the client's end builds");
        let _ = CallState::from_established(&server, session.client_address);
        let _ = CallState::from_established(&client, file.server);
        for packet in 0..13 {
            let inner = file
                .inner_packet(index, packet, size.of(packet))
                .expect("every size of the rule makes a packet");
            assert_eq!(inner.len(), usize::from(size.of(packet)));
        }
    }
});
