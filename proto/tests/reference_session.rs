//! Known answer from a real session: Debian's Poptop (pptpd + pppd 2.4.9) and pptp-linux +
//! pppd 2.4.9, captured on the server's veth (tests/data/README.md). Nobody on this project
//! wrote either end.
//!
//! From the capture alone plus the password, this test dissects every frame with our wire
//! parsers, checks the MS-CHAPv2 exchange both ways (the client's NT-Response and the
//! server's S= value), derives the MPPE keys, and decrypts every MPPE packet of the session
//! in both directions. The decrypted IPv4 packets must be exactly the ones the server's ppp0
//! saw (the second capture), with valid header checksums.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::net::Ipv4Addr;

use pcap_file::pcap::PcapReader;

use xpptp_proto::crypto::mppe::{MppeDecryptor, MppeMode, Verdict};
use xpptp_proto::crypto::mppe_keys::{MasterKey, MppeStrength, Role, SessionKeys, StartKey};
use xpptp_proto::crypto::mschap::{self, Secret};
use xpptp_proto::wire::chap::{self, MsChapV2Challenge, MsChapV2Response, MsChapV2Success};
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};
use xpptp_proto::wire::mppe::MppeHeader;
use xpptp_proto::wire::ppp::{PppFrame, Protocol};
use xpptp_proto::wire::pptp::StreamDecoder;

const SERVER: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 2);
const USER: &[u8] = b"pptpuser";
const PASSWORD: &str = "Pptp-Test-Pass-1";

/// One GRE packet of the session, dissected.
struct Gre {
    from_client: bool,
    payload: Vec<u8>,
}

/// Everything the capture holds, dissected with our parsers.
struct Session {
    gre: Vec<Gre>,
    /// The PPTP control messages each way, cut out of the TCP streams by `StreamDecoder`.
    control_to_server: Vec<String>,
    control_to_client: Vec<String>,
}

fn frames(path: &str) -> (u32, Vec<Vec<u8>>) {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut reader = PcapReader::new(file).unwrap();
    let link = reader.header().datalink.into();
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        out.push(packet.unwrap().data.into_owned());
    }
    (link, out)
}

fn data(name: &str) -> String {
    format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn dissect() -> Session {
    let (link, frames) = frames(&data("pptpd-session.pcap"));
    assert_eq!(link, 1, "the outer capture is Ethernet");
    let mut session = Session {
        gre: Vec::new(),
        control_to_server: Vec::new(),
        control_to_client: Vec::new(),
    };
    let mut to_server = StreamDecoder::new();
    let mut to_client = StreamDecoder::new();
    for frame in &frames {
        if frame.len() < 14 || frame[12..14] != [0x08, 0x00] {
            continue; // ARP, IPv6 neighbour discovery
        }
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert!(ip.verify_checksum(), "outer IPv4 checksum");
        let from_client = match (ip.src_addr(), ip.dst_addr()) {
            (CLIENT, SERVER) => true,
            (SERVER, CLIENT) => false,
            other => panic!("unexpected addresses {other:?}"),
        };
        match ip.protocol() {
            IpProtocol::Gre => {
                let gre = GrePacket::new_checked(ip.payload()).unwrap();
                let repr = GreRepr::parse(&gre).unwrap();
                // Poptop answered with call ID 0; pptp-linux's call ID is not 0.
                assert_eq!(
                    repr.call_id == 0,
                    from_client,
                    "GRE carries the receiver's call ID"
                );
                session.gre.push(Gre {
                    from_client,
                    payload: gre.payload().to_vec(),
                });
            }
            IpProtocol::Tcp => {
                let tcp = xpptp_proto::wire::tcp::TcpPacket::new_checked(ip.payload()).unwrap();
                assert!(
                    tcp.verify_checksum(ip.src_addr(), ip.dst_addr()),
                    "TCP checksum"
                );
                let (decoder, names) = if from_client {
                    (&mut to_server, &mut session.control_to_server)
                } else {
                    (&mut to_client, &mut session.control_to_client)
                };
                let mut bytes = tcp.payload();
                while let Some(message) = decoder.decode(&mut bytes) {
                    names.push(message.unwrap().message_type().to_string());
                }
                assert_eq!(decoder.buffered(), 0, "a PPTP message cut short");
            }
            other => panic!("unexpected protocol {other:?}"),
        }
    }
    session
}

/// The PPP frames of one direction with the given protocol: (protocol payload).
fn ppp_frames(session: &Session, from_client: bool, protocol: Protocol) -> Vec<Vec<u8>> {
    session
        .gre
        .iter()
        .filter(|g| g.from_client == from_client && !g.payload.is_empty())
        .filter_map(|g| {
            let frame = PppFrame::new_checked(&g.payload[..]).unwrap();
            (frame.protocol() == protocol).then(|| frame.payload().to_vec())
        })
        .collect()
}

struct Exchange {
    auth_challenge: [u8; 16],
    response: MsChapV2Response,
    success_text: Vec<u8>,
}

fn mschap_exchange(session: &Session) -> Exchange {
    let challenges = ppp_frames(session, false, Protocol::Chap);
    let responses = ppp_frames(session, true, Protocol::Chap);
    let mut auth_challenge = None;
    let mut success_text = None;
    for bytes in &challenges {
        match chap::Repr::parse(&chap::Packet::new_checked(&bytes[..]).unwrap()).unwrap() {
            chap::Repr::Challenge { value, name, .. } => {
                assert_eq!(name, b"pptpd");
                auth_challenge = Some(MsChapV2Challenge::parse(value).unwrap().0);
            }
            chap::Repr::Success { message, .. } => success_text = Some(message.to_vec()),
            other => panic!("unexpected CHAP from the server: {other:?}"),
        }
    }
    let [response] = &responses[..] else {
        panic!("expected one CHAP Response, got {}", responses.len());
    };
    let response = match chap::Repr::parse(&chap::Packet::new_checked(&response[..]).unwrap()) {
        Ok(chap::Repr::Response { value, name, .. }) => {
            assert_eq!(name, USER);
            MsChapV2Response::parse(value).unwrap()
        }
        other => panic!("expected a CHAP Response: {other:?}"),
    };
    Exchange {
        auth_challenge: auth_challenge.expect("a CHAP Challenge"),
        response,
        success_text: success_text.expect("a CHAP Success"),
    }
}

#[test]
fn control_connection_is_the_one_pptp_linux_ran() {
    let session = dissect();
    assert_eq!(
        session.control_to_server,
        [
            "Start-Control-Connection-Request",
            "Outgoing-Call-Request",
            "Call-Clear-Request"
        ]
        .map(String::from)
    );
    assert_eq!(
        session.control_to_client,
        ["Start-Control-Connection-Reply", "Outgoing-Call-Reply"].map(String::from)
    );
}

#[test]
fn mschap_v2_exchange_verifies_both_ways() {
    let session = dissect();
    let exchange = mschap_exchange(&session);
    assert_eq!(
        hex::encode(exchange.auth_challenge),
        "f7967aa886af0bca41d008b417b730ad"
    );
    assert_eq!(
        hex::encode(exchange.response.peer_challenge),
        "0d8c807f9fee230de78afc5f0c42c52b"
    );

    // The server side: the client's NT-Response is right for this password...
    let success = mschap::v2_server_verify(
        USER,
        Secret::Password(PASSWORD),
        &exchange.auth_challenge,
        &exchange.response.peer_challenge,
        &exchange.response.nt_response,
    )
    .expect("the captured NT-Response verifies with the known password");
    // ...and not for another.
    assert!(
        mschap::v2_server_verify(
            USER,
            Secret::Password("Pptp-Test-Pass-2"),
            &exchange.auth_challenge,
            &exchange.response.peer_challenge,
            &exchange.response.nt_response,
        )
        .is_err()
    );
    // Poptop's Success carried the S= value we compute.
    let sent = MsChapV2Success::parse(&exchange.success_text).unwrap();
    assert_eq!(
        sent.authenticator_response,
        success.authenticator_response.0
    );
    assert_eq!(sent.message, Some(&b"Access granted"[..]));

    // The client side: from the challenge alone we compute the NT-Response pptp-linux sent
    // and the S= value it expected.
    let client = mschap::v2_client_response(
        USER,
        PASSWORD,
        &exchange.auth_challenge,
        &exchange.response.peer_challenge,
    )
    .unwrap();
    assert_eq!(client.nt_response, exchange.response.nt_response);
    assert!(
        client
            .expected_authenticator_response
            .verify_message(&exchange.success_text)
    );
}

/// The server's keys, derived from the capture and the password.
fn server_keys(session: &Session) -> SessionKeys {
    let exchange = mschap_exchange(session);
    let verified = mschap::v2_server_verify(
        USER,
        Secret::Password(PASSWORD),
        &exchange.auth_challenge,
        &exchange.response.peer_challenge,
        &exchange.response.nt_response,
    )
    .unwrap();
    let master = MasterKey::from_mschap_v2(&verified.nt_hash_hash, &exchange.response.nt_response);
    assert_eq!(hex::encode(master.0), "a37a9498ee467274a0ada125b6931b26");
    SessionKeys::from_mschap_v2(&master, Role::Server)
}

#[test]
fn mppe_start_keys_match_the_independent_checker() {
    let keys = server_keys(&dissect());
    // Values from pptpd-session-logs/verify-mschapv2-mppe.txt.
    assert_eq!(
        hex::encode(keys.receive.0),
        "1fb317598ac50acad0542b066d046ba1"
    );
    assert_eq!(hex::encode(keys.send.0), "a3464ddfe2e8f6bfe604bf6efc4d4822");
}

/// Decrypts every MPPE frame of one direction; returns the inner PPP frames in order.
fn decrypt_direction(
    session: &Session,
    from_client: bool,
    start: &StartKey,
) -> Vec<(Protocol, Vec<u8>)> {
    // pppd negotiated `mppe +H -M +S -L -D -C`: 128-bit, stateless.
    let mut decryptor = MppeDecryptor::new(start, MppeStrength::Bits128, MppeMode::Stateless);
    let mut out = Vec::new();
    for mut payload in ppp_frames(session, from_client, Protocol::Mppe) {
        let header = MppeHeader::new_checked(&payload[..]).unwrap();
        assert!(
            header.encrypted() && header.flushed(),
            "stateless MPPE sets A and D"
        );
        let value = u16::from_be_bytes([payload[0], payload[1]]);
        let ciphertext = &mut payload[2..];
        assert_eq!(decryptor.decrypt(value, ciphertext), Verdict::Ok);
        // The plaintext is a PPP protocol field (maybe compressed) and its information.
        let frame = PppFrame::new_checked(&ciphertext[..]).unwrap();
        out.push((frame.protocol(), frame.payload().to_vec()));
    }
    out
}

#[test]
fn every_mppe_packet_decrypts_to_what_ppp0_saw() {
    let session = dissect();
    let keys = server_keys(&session);
    let upstream = decrypt_direction(&session, true, &keys.receive);
    let downstream = decrypt_direction(&session, false, &keys.send);

    // The inner capture: the server's ppp0, Linux cooked headers (16 octets) then IPv4.
    let (link, inner) = frames(&data("pptpd-session-inner-ppp0.pcap"));
    assert_eq!(link, 113, "the inner capture is Linux cooked (SLL)");
    let inner_ip: Vec<Vec<u8>> = inner.iter().map(|f| f[16..].to_vec()).collect();

    let mut decrypted_ipv4 = Vec::new();
    let mut decrypted_ipv6 = Vec::new();
    for (protocol, packet) in upstream.iter().chain(&downstream) {
        match protocol {
            Protocol::Ipv4 => {
                let ip = Ipv4Packet::new_checked(&packet[..]).unwrap();
                assert!(ip.verify_checksum(), "decrypted IPv4 header checksum");
                assert_eq!(ip.protocol(), IpProtocol::Icmp);
                decrypted_ipv4.push(packet.clone());
            }
            // Both pppds sent IPv6 (router solicitations) before IPV6CP was rejected.
            Protocol::Ipv6 => {
                assert_eq!(packet[0] >> 4, 6, "decrypted IPv6 version");
                decrypted_ipv6.push(packet.clone());
            }
            other => panic!("unexpected decrypted protocol {other:?}"),
        }
    }
    // 5 pings from the client and 3 from the server: 16 ICMP packets in all.
    assert_eq!(decrypted_ipv4.len(), 16);
    let tunnel = (
        Ipv4Addr::new(192, 168, 77, 10),
        Ipv4Addr::new(192, 168, 77, 1),
    );
    for packet in &decrypted_ipv4 {
        let ip = Ipv4Packet::new_checked(&packet[..]).unwrap();
        let pair = (ip.src_addr(), ip.dst_addr());
        assert!(pair == tunnel || pair == (tunnel.1, tunnel.0), "{pair:?}");
    }
    let (mut expected_ipv4, inner_ipv6): (Vec<_>, Vec<_>) =
        inner_ip.into_iter().partition(|p| p[0] >> 4 == 4);
    expected_ipv4.sort();
    decrypted_ipv4.sort();
    assert_eq!(
        decrypted_ipv4, expected_ipv4,
        "decrypted IPv4 packets differ from the server's ppp0 capture"
    );
    // ppp0's capture started after the first router solicitations; what it holds of IPv6
    // must be among what we decrypted.
    assert!(!inner_ipv6.is_empty());
    for packet in &inner_ipv6 {
        assert!(
            decrypted_ipv6.contains(packet),
            "ppp0's IPv6 packet was not decrypted"
        );
    }
    assert!(upstream.len() >= 9 && downstream.len() >= 9);
}
