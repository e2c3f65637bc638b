//! Known answer: the reference session (Debian pptp-linux client, Poptop server; see
//! proto/tests/data/README.md). Every GRE frame the client sent, exactly as captured on the
//! server's veth (Ethernet), goes through `decap` with the server's receive key; the IPv4
//! packets that come out must be the ones the server's ppp0 saw.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::Ipv4Addr;

use pcap_file::pcap::PcapReader;

use xpptp_datapath::packet::{CallState, DecapVerdict, DropReason, decap, parse_outer};
use xpptp_proto::crypto::mppe::MppeMode;
use xpptp_proto::crypto::mppe_keys::{MppeStrength, StartKey};
use xpptp_proto::ppp::ipcp::NameServers;
use xpptp_proto::ppp::link::Role;
use xpptp_proto::pptp::gre::GreSnapshot;
use xpptp_proto::session::{Established, MppeKeyState};
use xpptp_proto::wire::ipv4::Ipv4Packet;

const SERVER: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 2);
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 10);
const SERVER_TUNNEL: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);

/// The server's receive start key, as proto/tests/reference_session.rs derives it from the
/// capture and the password (and pptpd-session-logs/verify-mschapv2-mppe.txt confirms).
fn receive_key() -> StartKey {
    let bytes = hex::decode("1fb317598ac50acad0542b066d046ba1").unwrap();
    StartKey(bytes.try_into().unwrap())
}

fn frames(name: &str) -> Vec<Vec<u8>> {
    let path = format!("{}/../proto/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut reader = PcapReader::new(file).unwrap();
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        out.push(packet.unwrap().data.into_owned());
    }
    out
}

fn call(server_tunnel: Option<Ipv4Addr>) -> CallState {
    let est = Established {
        role: Role::Server,
        // Poptop answered with call ID 0: the client's GRE carries 0.
        local_call_id: 0,
        peer_call_id: 0,
        peer_address: CLIENT,
        peer_recv_window: 3,
        user: Some(b"pptpuser".to_vec()),
        auth_method: None,
        client_tunnel_address: CLIENT_TUNNEL,
        server_tunnel_address: server_tunnel,
        name_servers: NameServers::default(),
        transmit: None,
        receive: Some(MppeKeyState {
            strength: MppeStrength::Bits128,
            mode: MppeMode::Stateless,
            start_key: receive_key(),
        }),
        gre: GreSnapshot {
            local_call_id: 0,
            peer_call_id: 0,
            next_seq: 0,
            peer_acked: u32::MAX,
            ack_owed: None,
            recv_highest: None,
            peer_recv_window: 3,
        },
        peer_mru: 1400,
        our_mru: 1400,
        mtu: 1396,
        acfc: true,
        pfc: true,
    };
    CallState::from_established(&est, SERVER)
}

/// The client's GRE frames, as captured.
fn upstream_frames() -> Vec<Vec<u8>> {
    frames("pptpd-session.pcap")
        .into_iter()
        .filter(|f| parse_outer(f).is_ok_and(|o| o.src == CLIENT))
        .collect()
}

/// The IPv4 packets the server's ppp0 saw from the client (Linux cooked capture).
fn ppp0_from_client() -> Vec<Vec<u8>> {
    frames("pptpd-session-inner-ppp0.pcap")
        .into_iter()
        .map(|f| f[16..].to_vec())
        .filter(|p| p[0] >> 4 == 4 && p[12..16] == CLIENT_TUNNEL.octets())
        .collect()
}

#[test]
fn captured_upstream_decaps_to_what_ppp0_saw() {
    let mut state = call(Some(SERVER_TUNNEL));
    let mut local = Vec::new();
    let (mut control, mut pure_acks, mut ipv6) = (0, 0, 0);
    for mut frame in upstream_frames() {
        let v = decap(&state.config, &mut state.upstream, &state.acks, &mut frame);
        match v {
            DecapVerdict::Local { inner } => local.push(frame[inner].to_vec()),
            DecapVerdict::ToControl { .. } => control += 1,
            DecapVerdict::PureAck => pure_acks += 1,
            DecapVerdict::Drop(DropReason::NetworkProtocolNotOpen) => ipv6 += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // The client's five echo requests and its three replies to the server's pings, all to
    // the server's tunnel address.
    let expected = ppp0_from_client();
    assert_eq!(expected.len(), 8);
    assert_eq!(
        local, expected,
        "decap output differs from the server's ppp0"
    );
    assert!(control >= 10, "LCP, CHAP, CCP, IPCP frames: {control}");
    assert!(pure_acks > 0);
    assert!(ipv6 > 0, "the client's IPv6 router solicitations");
    assert_eq!(state.upstream.counters.packets, 8 + control);
}

#[test]
fn captured_upstream_forwarded_has_its_ttl_decremented() {
    // Without a server tunnel address the pings are forwarded: TTL one less.
    let mut state = call(None);
    let mut forwarded = Vec::new();
    for mut frame in upstream_frames() {
        if let DecapVerdict::Forward { inner } =
            decap(&state.config, &mut state.upstream, &state.acks, &mut frame)
        {
            forwarded.push(frame[inner].to_vec());
        }
    }
    let expected = ppp0_from_client();
    assert_eq!(forwarded.len(), expected.len());
    for (got, want) in forwarded.iter().zip(&expected) {
        assert_eq!(got[8] + 1, want[8], "TTL");
        assert!(Ipv4Packet::new_checked(&got[..]).unwrap().verify_checksum());
        assert_eq!(got[..8], want[..8]);
        assert_eq!(got[12..], want[12..]);
    }
}
