//! The emulator's GRE reader (`emulator::classify`, what it does with every packet the raw
//! GRE socket reads: IPv4 header and all, from anyone on the network). Never a panic; a
//! packet handed to a client is enhanced GRE from inside the input, for the call its key
//! names, from the IPv4 source address.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use xpptp_bench::emulator::{Inbound, classify};
use xpptp_proto::wire::gre::GrePacket;

fuzz_target!(|data: &[u8]| {
    if let Inbound::Control {
        server,
        call_id,
        gre,
    } = classify(data)
    {
        assert!(data.len() >= 20 + gre.len());
        assert_eq!(data[0] >> 4, 4);
        let ihl = usize::from(data[0] & 0x0f) * 4;
        assert_eq!(&data[ihl..], gre);
        let source: [u8; 4] = data[12..16].try_into().expect("four bytes");
        assert_eq!(server, Ipv4Addr::from(source));
        let packet = GrePacket::new_checked(gre).expect("checked by classify");
        assert_eq!(packet.call_id(), call_id);
    }
});
