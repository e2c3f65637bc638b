//! The reference capture's frames, for every test that needs one: one literal a frame.
//!
//! They come from `tests/data/pptpd-session.pcap` (a copy of
//! /work/shared/reference/pptpd-session/pptpd-session.pcap): one real session between Debian's
//! pptp-linux 1.10.0 + pppd 2.4.9 (client, 172.30.0.2) and Debian's Poptop pptpd 1.4.0 + pppd
//! 2.4.9 (server, 172.30.0.1), user `pptpuser`, password `Pptp-Test-Pass-1`, MS-CHAPv2 with
//! 128-bit stateless MPPE. Frame numbers are the capture's (as tshark counts, from 1). Each
//! submodule holds one layer: [`pptp`] TCP payloads, [`gre`] whole GRE packets, and the
//! others PPP packets from the code field on (the GRE payload after `ff03` and the protocol).
//! The test at the end checks every literal against the capture file.

/// Hex to bytes at compile time; spaces separate fields for the reader.
const fn hex<const N: usize>(text: &str) -> [u8; N] {
    let text = text.as_bytes();
    let mut out = [0u8; N];
    let (mut i, mut n) = (0, 0);
    let mut high: Option<u8> = None;
    while i < text.len() {
        let c = text[i];
        i += 1;
        let nibble = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b' ' => continue,
            _ => panic!("not lowercase hex"),
        };
        match high {
            None => high = Some(nibble),
            Some(h) => {
                assert!(n < N, "more octets than the array holds");
                out[n] = (h << 4) | nibble;
                n += 1;
                high = None;
            }
        }
    }
    assert!(
        n == N && high.is_none(),
        "fewer octets than the array holds"
    );
    out
}

/// PPTP control messages (TCP payloads), as hex text: they are 16 to 168 octets of mostly
/// zero padding, and the PPTP tests compose streams from hex parts.
pub mod pptp {
    /// Frame 12: SCCRQ from pptp-linux. Version 1.0, framing and bearer caps 3, max
    /// channels 65535, firmware 1, host "local", vendor "cananian".
    pub const SCCRQ: &str = "009c00011a2b3c4d00010000010000000000000300000003ffff00016c6f63616c000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000063616e616e69616e0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
    /// Frame 14: SCCRP from Poptop. Success, no capabilities, max channels 1, firmware 1,
    /// host "local", vendor "linux".
    pub const SCCRP: &str = "009c00011a2b3c4d00020000010001000000000000000000000100016c6f63616c00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000006c696e75780000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
    /// Frame 16: OCRQ from pptp-linux. Call ID 0x73ad, serial 0, 2400..10000000 bps,
    /// bearer 3, framing 3, window 3, no phone number.
    pub const OCRQ: &str = "00a800011a2b3c4d0007000073ad00000000096000989680000000030000000300030000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";
    /// Frame 18: OCRP from Poptop. Call ID 0, peer 0x73ad, connected at 10000000 bps,
    /// window 3.
    pub const OCRP: &str = "002000011a2b3c4d00080000000073ad01000000009896800003000000000000";
    /// Frame 82: CCRQ from pptp-linux for call 0x73ad.
    pub const CCRQ: &str = "001000011a2b3c4d000c000073ad0000";
}

/// Whole Enhanced GRE packets (the IPv4 payload). pptp-linux's call ID is 0x73ad, Poptop's 0.
pub mod gre {
    use super::hex;

    /// Frame 20: the client's first packet, flags 0x3001 (K, S; no A), call ID 0, seq 1,
    /// payload 24 octets (`ff03 c021` and the LCP Configure-Request).
    pub const CLIENT_CONFREQ: [u8; 36] = hex("3001 880b 0018 0000 00000001 \
         ff03c021 01010014020600000000050656139dac07020802");
    /// Frame 23: the server's LCP Configure-Ack with K, S and A: call ID 0x73ad, seq 1,
    /// ack 2, payload 24 octets.
    pub const SERVER_CONFACK: [u8; 40] = hex("3081 880b 0018 73ad 00000001 00000002 \
         ff03c021 02010014020600000000050656139dac07020802");
    /// Frame 25: the server's LCP Echo-Request, seq 2 with ack 3 piggybacked.
    pub const SERVER_ECHO_REQUEST: [u8; 26] =
        hex("3081 880b 000a 73ad 00000002 00000003 c021 09000008787155cf");
    /// Frame 28: the server's LCP Echo-Reply, seq 4, no ack (none owed).
    pub const SERVER_ECHO_REPLY: [u8; 22] =
        hex("3001 880b 000a 73ad 00000004 c021 0a000008787155cf");
    /// Frame 29: a pure ack from the client, flags 0x2081 (K, A), call ID 0, ack 4.
    pub const CLIENT_PURE_ACK: [u8; 12] = hex("2081 880b 0000 0000 00000004");
    /// Frame 67: the server's pure ack of the client's seq 20 (0x14).
    pub const SERVER_PURE_ACK: [u8; 12] = hex("2081 880b 0000 73ad 00000014");
}

/// LCP packets (protocol 0xc021).
pub mod lcp {
    use super::hex;

    /// Frame 20, client: ConfReq id=0x1 <asyncmap 0x0> <magic 0x56139dac> <pcomp> <accomp>.
    pub const CLIENT_CONFREQ: [u8; 20] = hex("01 01 0014 0206 00000000 0506 56139dac 0702 0802");
    /// Frame 21, server: ConfReq id=0x1 <asyncmap 0x0> <auth chap MS-v2> <magic 0x787155cf>
    /// <pcomp> <accomp>.
    pub const SERVER_CONFREQ: [u8; 25] =
        hex("01 01 0019 0206 00000000 0305 c22381 0506 787155cf 0702 0802");
    /// Frame 22, client acks the server's request: same options, code 2.
    pub const CLIENT_CONFACK: [u8; 25] =
        hex("02 01 0019 0206 00000000 0305 c22381 0506 787155cf 0702 0802");
    /// Frame 24, client: EchoReq id=0x0 magic=0x56139dac.
    pub const CLIENT_ECHO_REQUEST: [u8; 8] = hex("09 00 0008 56139dac");
    /// Frame 28, server: EchoRep id=0x0 magic=0x787155cf.
    pub const SERVER_ECHO_REPLY: [u8; 8] = hex("0a 00 0008 787155cf");
    /// Frame 76, client: TermReq id=0x2 "MPPE disabled".
    pub const CLIENT_TERMREQ: [u8; 17] = hex("05 02 0011 4d5050452064697361626c6564");
    /// Frame 79, server: TermAck id=0x2.
    pub const SERVER_TERMACK: [u8; 4] = hex("06 02 0004");
    /// Not in the capture (Poptop runs IPV6CP): the Protocol-Reject id=0x5 a server without
    /// IPV6CP must send for the client's IPV6CP Configure-Request of frame 38
    /// (`8057 0101000e010ae49519b98d6e6b22`).
    pub const PROTREJ_IPV6CP: [u8; 20] = hex("08 05 0014 8057 0101000e010ae49519b98d6e6b22");
}

/// CHAP packets (protocol 0xc223), MS-CHAPv2.
pub mod chap {
    use super::hex;

    /// Frame 27, server: Challenge id=0xfe, 16-octet Authenticator Challenge, Name "pptpd".
    pub const CHALLENGE: [u8; 26] =
        hex("01 fe 001a 10 f7967aa886af0bca41d008b417b730ad 7070747064");
    /// Frame 30, client: Response id=0xfe, 49-octet MS-CHAPv2 value (Peer-Challenge,
    /// 8 reserved, NT-Response, flags 0), Name "pptpuser".
    pub const RESPONSE: [u8; 62] = hex("02 fe 003e 31 \
         0d8c807f9fee230de78afc5f0c42c52b 0000000000000000 \
         b6eebe5bc033314ca1259046671922b74f3b6f5d3bb7e302 00 \
         7070747075736572");
    /// Frame 31, server: Success id=0xfe (Length 0x3f) with [`SUCCESS_MESSAGE`].
    pub const SUCCESS: [u8; 63] = hex("03 fe 003f \
         533d34333532423541313332464144374538313046363932313238313234433841313041383630434339 \
         204d3d416363657373206772616e746564");
    /// The Message of [`SUCCESS`]:
    /// `S=4352B5A132FAD7E810F692128124C8A10A860CC9 M=Access granted`.
    pub const SUCCESS_MESSAGE: &[u8] = SUCCESS.split_at(4).1;
}

/// MS-CHAPv2 and MPPE values of the session, as the capture's checker computed them
/// (pptpd-session-logs/verify-mschapv2-mppe.txt); the first four are fields of [`chap`]'s
/// packets.
pub mod mschap {
    use super::hex;

    pub const USER: &[u8] = b"pptpuser";
    pub const PASSWORD: &str = "Pptp-Test-Pass-1";
    /// In [`super::chap::CHALLENGE`].
    pub const AUTHENTICATOR_CHALLENGE: [u8; 16] = hex("f7967aa886af0bca41d008b417b730ad");
    /// In [`super::chap::RESPONSE`].
    pub const PEER_CHALLENGE: [u8; 16] = hex("0d8c807f9fee230de78afc5f0c42c52b");
    /// In [`super::chap::RESPONSE`].
    pub const NT_RESPONSE: [u8; 24] = hex("b6eebe5bc033314ca1259046671922b74f3b6f5d3bb7e302");
    /// In [`super::chap::SUCCESS`] as `S=` and 40 hex digits.
    pub const AUTHENTICATOR_RESPONSE: [u8; 20] = hex("4352b5a132fad7e810f692128124c8a10a860cc9");
    /// MPPE start key client to server (the client's send key, the server's receive key).
    pub const KEY_CLIENT_TO_SERVER: [u8; 16] = hex("1fb317598ac50acad0542b066d046ba1");
    /// MPPE start key server to client.
    pub const KEY_SERVER_TO_CLIENT: [u8; 16] = hex("a3464ddfe2e8f6bfe604bf6efc4d4822");
}

/// CCP packets (protocol 0x80fd). Both sides send the same request and ack the other's.
pub mod ccp {
    use super::hex;

    /// Frames 32 (client) and 33 (server): ConfReq id=0x1 <mppe +H -M +S -L -D -C>.
    pub const CONFREQ_MPPE: [u8; 10] = hex("01 01 000a 1206 01000040");
    /// Frames 34 (client) and 35 (server): the ConfAck of it.
    pub const CONFACK_MPPE: [u8; 10] = hex("02 01 000a 1206 01000040");
}

/// IPCP packets (protocol 0x8021). The server's address is 192.168.77.1, the client's
/// 192.168.77.10.
pub mod ipcp {
    use super::hex;

    /// Frame 36, client: ConfReq id=0x1 <compress VJ 0f 01> <addr 0.0.0.0>.
    pub const CLIENT_CONFREQ_1: [u8; 16] = hex("01 01 0010 0206 002d 0f01 0306 00000000");
    /// Frame 37, server: ConfReq id=0x1 <addr 192.168.77.1>.
    pub const SERVER_CONFREQ: [u8; 10] = hex("01 01 000a 0306 c0a84d01");
    /// Frame 40, client: ConfAck id=0x1 <addr 192.168.77.1>.
    pub const CLIENT_CONFACK: [u8; 10] = hex("02 01 000a 0306 c0a84d01");
    /// Frame 41, server: ConfRej id=0x1 <compress VJ 0f 01>.
    pub const SERVER_CONFREJ: [u8; 10] = hex("04 01 000a 0206 002d 0f01");
    /// Frame 45, client: ConfReq id=0x2 <addr 0.0.0.0>.
    pub const CLIENT_CONFREQ_2: [u8; 10] = hex("01 02 000a 0306 00000000");
    /// Frame 48, server: ConfNak id=0x2 <addr 192.168.77.10>.
    pub const SERVER_CONFNAK: [u8; 10] = hex("03 02 000a 0306 c0a84d0a");
    /// Frame 49, client: ConfReq id=0x3 <addr 192.168.77.10>.
    pub const CLIENT_CONFREQ_3: [u8; 10] = hex("01 03 000a 0306 c0a84d0a");
    /// Frame 50, server: ConfAck id=0x3 <addr 192.168.77.10>.
    pub const SERVER_CONFACK: [u8; 10] = hex("02 03 000a 0306 c0a84d0a");
}

#[cfg(test)]
mod test {
    use std::collections::BTreeMap;

    use super::*;

    /// The capture's IPv4 payloads by frame number (Ethernet, libpcap format).
    fn ip_payloads() -> BTreeMap<u32, &'static [u8]> {
        let file: &[u8] = include_bytes!("../../tests/data/pptpd-session.pcap");
        assert_eq!(
            &file[..4],
            &[0xd4, 0xc3, 0xb2, 0xa1],
            "little-endian libpcap"
        );
        let mut frames = BTreeMap::new();
        let (mut rest, mut number) = (&file[24..], 0);
        while !rest.is_empty() {
            let captured = u32::from_le_bytes(rest[8..12].try_into().unwrap()) as usize;
            let ethernet = &rest[16..16 + captured];
            rest = &rest[16 + captured..];
            number += 1;
            if ethernet[12..14] != [0x08, 0x00] {
                continue; // ARP
            }
            let ip = &ethernet[14..];
            let header_len = usize::from(ip[0] & 0x0f) * 4;
            let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
            frames.insert(number, &ip[header_len..total_len]);
        }
        frames
    }

    fn tcp_payload(frames: &BTreeMap<u32, &'static [u8]>, number: u32) -> &'static [u8] {
        let tcp = frames[&number];
        &tcp[usize::from(tcp[12] >> 4) * 4..]
    }

    /// The PPP packet of a GRE frame: after the optional `ff03` and the two-octet protocol.
    fn ppp_packet(frames: &BTreeMap<u32, &'static [u8]>, number: u32) -> (u16, &'static [u8]) {
        let gre = frames[&number];
        let header_len =
            8 + 4 * usize::from(gre[0] & 0x10 != 0) + 4 * usize::from(gre[1] & 0x80 != 0);
        let ppp = gre[header_len..]
            .strip_prefix(&[0xff, 0x03])
            .unwrap_or(&gre[header_len..]);
        (u16::from_be_bytes([ppp[0], ppp[1]]), &ppp[2..])
    }

    #[test]
    fn every_literal_is_in_the_capture() {
        let frames = ip_payloads();
        for (number, message) in [
            (12, pptp::SCCRQ),
            (14, pptp::SCCRP),
            (16, pptp::OCRQ),
            (18, pptp::OCRP),
            (82, pptp::CCRQ),
        ] {
            assert_eq!(
                tcp_payload(&frames, number),
                hex::decode(message).unwrap(),
                "frame {number}"
            );
        }
        for (number, packet) in [
            (20, &gre::CLIENT_CONFREQ[..]),
            (23, &gre::SERVER_CONFACK),
            (25, &gre::SERVER_ECHO_REQUEST),
            (28, &gre::SERVER_ECHO_REPLY),
            (29, &gre::CLIENT_PURE_ACK),
            (67, &gre::SERVER_PURE_ACK),
        ] {
            assert_eq!(frames[&number], packet, "frame {number}");
        }
        for (number, protocol, packet) in [
            (20, 0xc021, &lcp::CLIENT_CONFREQ[..]),
            (21, 0xc021, &lcp::SERVER_CONFREQ),
            (22, 0xc021, &lcp::CLIENT_CONFACK),
            (24, 0xc021, &lcp::CLIENT_ECHO_REQUEST),
            (28, 0xc021, &lcp::SERVER_ECHO_REPLY),
            (76, 0xc021, &lcp::CLIENT_TERMREQ),
            (79, 0xc021, &lcp::SERVER_TERMACK),
            (27, 0xc223, &chap::CHALLENGE),
            (30, 0xc223, &chap::RESPONSE),
            (31, 0xc223, &chap::SUCCESS),
            (32, 0x80fd, &ccp::CONFREQ_MPPE),
            (33, 0x80fd, &ccp::CONFREQ_MPPE),
            (34, 0x80fd, &ccp::CONFACK_MPPE),
            (35, 0x80fd, &ccp::CONFACK_MPPE),
            (36, 0x8021, &ipcp::CLIENT_CONFREQ_1),
            (37, 0x8021, &ipcp::SERVER_CONFREQ),
            (40, 0x8021, &ipcp::CLIENT_CONFACK),
            (41, 0x8021, &ipcp::SERVER_CONFREJ),
            (45, 0x8021, &ipcp::CLIENT_CONFREQ_2),
            (48, 0x8021, &ipcp::SERVER_CONFNAK),
            (49, 0x8021, &ipcp::CLIENT_CONFREQ_3),
            (50, 0x8021, &ipcp::SERVER_CONFACK),
        ] {
            assert_eq!(
                ppp_packet(&frames, number),
                (protocol, packet),
                "frame {number}"
            );
        }
        // The Protocol-Reject carries frame 38's protocol and packet.
        let (protocol, ipv6cp) = ppp_packet(&frames, 38);
        assert_eq!(&lcp::PROTREJ_IPV6CP[4..6], &protocol.to_be_bytes());
        assert_eq!(&lcp::PROTREJ_IPV6CP[6..], ipv6cp);
    }

    #[test]
    fn mschap_values_are_the_packets_fields() {
        assert_eq!(&chap::CHALLENGE[5..21], &mschap::AUTHENTICATOR_CHALLENGE);
        assert_eq!(&chap::RESPONSE[5..21], &mschap::PEER_CHALLENGE);
        assert_eq!(&chap::RESPONSE[29..53], &mschap::NT_RESPONSE);
        assert_eq!(&chap::RESPONSE[54..], mschap::USER);
        assert_eq!(
            chap::SUCCESS_MESSAGE,
            b"S=4352B5A132FAD7E810F692128124C8A10A860CC9 M=Access granted"
        );
        assert_eq!(
            chap::SUCCESS_MESSAGE[2..42].to_ascii_lowercase(),
            hex::encode(mschap::AUTHENTICATOR_RESPONSE).as_bytes()
        );
    }
}
