//! A server session (Poptop's configuration, fixed seed) fed arbitrary GRE packets.
//!
//! The input is a sequence of records: `op`, a 2-octet length, then that many octets.
//! `op & 0x3f` advances the virtual clock by that many quarter seconds before the record
//! (timers fire in between); with `op & 0x80` the octets are a PPP frame that the target
//! wraps in a valid GRE header for the session (so the fuzzer reaches PPP quickly),
//! otherwise they are the GRE packet itself. Asserts: no panic, and output per record
//! bounded (the session's queues are bounded, whatever the peer sends).
#![no_main]

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xpptp_proto::ppp::auth::{Lookup, Password, SecretAnswer, SecretRequest, StoredSecret};
use xpptp_proto::ppp::ipcp::FixedAddress;
use xpptp_proto::ppp::link::{self, Link, LinkRandom};
use xpptp_proto::session::{MAX_QUEUED_PACKETS, Session, SessionParams};
use xpptp_proto::wire::gre::{GrePacket, GreRepr};

const LOCAL_CALL_ID: u16 = 0x4000;

fn session(now: Instant) -> Session {
    let mut config = link::ServerConfig::default();
    config.ipcp.local_address = Some(Ipv4Addr::new(192, 168, 77, 1));
    let secrets = |request: &SecretRequest<'_>| {
        Lookup::Ready(if request.user == b"pptpuser" {
            SecretAnswer::Secret(StoredSecret::Password(Password::new("Pptp-Test-Pass-1")))
        } else {
            SecretAnswer::UnknownUser
        })
    };
    let link = Link::server(
        config,
        Box::new(secrets),
        Box::new(FixedAddress(Some(Ipv4Addr::new(192, 168, 77, 10)))),
        LinkRandom::from_seed([7; 32]),
    );
    let params = SessionParams {
        local_call_id: LOCAL_CALL_ID,
        peer_call_id: 0x73ad,
        peer_recv_window: 3,
        peer_address: Ipv4Addr::new(172, 30, 0, 2),
        first_seq: 0,
        gre: Default::default(),
    };
    Session::new(now, params, link)
}

/// Drains the outputs; panics if a single input produced more than the queues can hold.
fn drain(session: &mut Session) {
    let mut packets = 0usize;
    while let Some(packet) = session.poll_transmit() {
        packets += 1;
        assert!(packets <= MAX_QUEUED_PACKETS + 1, "unbounded output");
        let gre = GrePacket::new_checked(&packet[..]).expect("our GRE parses");
        GreRepr::parse(&gre).expect("our GRE is valid");
    }
    let mut events = 0usize;
    while session.poll_event().is_some() {
        events += 1;
        assert!(events <= 64, "unbounded events");
    }
}

fuzz_target!(|data: &[u8]| {
    let base = Instant::now();
    let mut now = base;
    let mut session = session(now);
    drain(&mut session);
    let mut seq = 1u32;
    let mut rest = data;
    while let [op, hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (record, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(250) * u32::from(op & 0x3f);
        for _ in 0..1000 {
            match session.poll_timeout() {
                Some(t) if t <= now => {
                    session.handle_timeout(now);
                    drain(&mut session);
                }
                _ => break,
            }
        }
        if op & 0x80 != 0 {
            let repr = GreRepr {
                call_id: LOCAL_CALL_ID,
                seq: Some(seq),
                ack: None,
                payload_len: record.len() as u16,
            };
            seq = seq.wrapping_add(1);
            let mut packet = vec![0u8; repr.buffer_len()];
            repr.emit(&mut GrePacket::new_unchecked(&mut packet[..]))
                .expect("header fits");
            packet[repr.header_len()..].copy_from_slice(record);
            session.handle_gre(now, &packet);
        } else {
            session.handle_gre(now, record);
        }
        drain(&mut session);
    }
});
