//! An independent check of what we emit: every kind of packet xpptp writes is built with the
//! `wire` emitters, wrapped in Ethernet/IPv4 (TCP port 1723 or GRE), written to a pcap, and
//! decoded by tshark. Each frame must decode with the field values we meant, and with no
//! malformed-packet mark and no expert warning or error.
//!
//! tshark is required: `scripts/setup.sh` installs it (`apt-get install tshark`). The test
//! fails, naming the fix, when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a panic is a failure report

use std::net::Ipv4Addr;
use std::process::Command;

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use serde_json::Value;

use xpptp_proto::wire::ccp::{self, CcpOption, MppeBits};
use xpptp_proto::wire::chap::{
    self, ChapAlgorithm, MsChapV2Failure, MsChapV2Response, MsChapV2Success,
};
use xpptp_proto::wire::cp::{self, Code, ConfigPacketWriter, CpPacket};
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipcp::{IpcpOption, VjCompression};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use xpptp_proto::wire::lcp::{self, LcpOption};
use xpptp_proto::wire::mppe::{MppeHeader, MppeRepr};
use xpptp_proto::wire::pap;
use xpptp_proto::wire::ppp::{PppFrame, PppHeader, Protocol};
use xpptp_proto::wire::pptp::{
    BearerCapabilities, CallClearRequest, CallDisconnectNotify, EchoReply, EchoRequest, ErrorCode,
    FixedStr, FramingCapabilities, IncomingCallConnected, IncomingCallReply, IncomingCallRequest,
    Message, OutgoingCallReply, OutgoingCallRequest, PROTOCOL_VERSION, SetLinkInfo,
    StartControlConnectionReply, StartControlConnectionRequest, StopControlConnectionReply,
    StopControlConnectionRequest, WanErrorNotify,
};
use xpptp_proto::wire::tcp::{TcpFlags, TcpPacket, TcpRepr};

const CLIENT: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 2);
const SERVER: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const PPTP_PORT: u16 = 1723;
const CLIENT_PORT: u16 = 40_000;
/// The call IDs each side chose; GRE carries the receiver's.
const SERVER_CALL_ID: u16 = 0x73ad;
const CLIENT_CALL_ID: u16 = 0x0001;

/// tshark's expert severities (epan/proto.h): chat 0x200000, note 0x400000, warn 0x600000,
/// error 0x800000. Anything at warn or above fails the test.
const EXPERT_WARN: u64 = 0x0060_0000;

#[derive(Clone, Copy, PartialEq)]
enum Dir {
    ToServer,
    ToClient,
}

/// (field, value as tshark's JSON prints it) pairs a frame must show.
type Expect = Vec<(&'static str, String)>;

/// One frame of the capture and what tshark must find in it.
struct Frame {
    what: String,
    bytes: Vec<u8>,
    expect: Expect,
}

/// Builds the capture: a TCP flow for the control connection, GRE for the call.
struct Capture {
    frames: Vec<Frame>,
    client_tcp_seq: u32,
    server_tcp_seq: u32,
    client_gre_seq: u32,
    server_gre_seq: u32,
    ip_ident: u16,
}

impl Capture {
    fn new() -> Capture {
        let mut capture = Capture {
            frames: Vec::new(),
            client_tcp_seq: 1_000,
            server_tcp_seq: 50_000,
            client_gre_seq: 1,
            server_gre_seq: 0,
            ip_ident: 1,
        };
        // The handshake, so that tshark's TCP analysis sees a complete, in-order stream.
        let syn = capture.tcp(Dir::ToServer, TcpFlags::SYN, &[]);
        capture.push("TCP SYN", syn, vec![]);
        capture.client_tcp_seq += 1;
        let syn_ack = capture.tcp(Dir::ToClient, TcpFlags::SYN | TcpFlags::ACK, &[]);
        capture.push("TCP SYN-ACK", syn_ack, vec![]);
        capture.server_tcp_seq += 1;
        capture
    }

    fn push(&mut self, what: impl Into<String>, bytes: Vec<u8>, expect: Expect) {
        self.frames.push(Frame {
            what: what.into(),
            bytes,
            expect,
        });
    }

    fn ethernet_ipv4(&mut self, dir: Dir, protocol: IpProtocol, payload: &[u8]) -> Vec<u8> {
        let (src, dst, src_mac, dst_mac) = match dir {
            Dir::ToServer => (CLIENT, SERVER, CLIENT_MAC, SERVER_MAC),
            Dir::ToClient => (SERVER, CLIENT, SERVER_MAC, CLIENT_MAC),
        };
        let repr = Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol,
            payload_len: payload.len(),
            ttl: 64,
            dscp_ecn: 0,
            ident: self.ip_ident,
            dont_frag: true,
        };
        self.ip_ident += 1;
        let mut frame = Vec::with_capacity(14 + repr.buffer_len() + payload.len());
        frame.extend_from_slice(&dst_mac);
        frame.extend_from_slice(&src_mac);
        frame.extend_from_slice(&0x0800u16.to_be_bytes());
        let mut ip = vec![0u8; repr.buffer_len() + payload.len()];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut ip[..]))
            .unwrap();
        ip[repr.buffer_len()..].copy_from_slice(payload);
        frame.extend_from_slice(&ip);
        frame
    }

    fn tcp(&mut self, dir: Dir, flags: TcpFlags, payload: &[u8]) -> Vec<u8> {
        let (src, dst, src_port, dst_port, seq, ack) = match dir {
            Dir::ToServer => (
                CLIENT,
                SERVER,
                CLIENT_PORT,
                PPTP_PORT,
                self.client_tcp_seq,
                self.server_tcp_seq,
            ),
            Dir::ToClient => (
                SERVER,
                CLIENT,
                PPTP_PORT,
                CLIENT_PORT,
                self.server_tcp_seq,
                self.client_tcp_seq,
            ),
        };
        let syn = flags.contains(TcpFlags::SYN);
        let repr = TcpRepr {
            src_port,
            dst_port,
            seq_number: seq,
            ack_number: if flags.contains(TcpFlags::ACK) {
                ack
            } else {
                0
            },
            flags,
            window_len: 64_240,
            urgent_at: 0,
            max_seg_size: syn.then_some(1460),
            window_scale: None,
            sack_permitted: false,
            timestamp: None,
            payload,
        };
        let mut segment = vec![0u8; repr.buffer_len()];
        repr.emit(&mut TcpPacket::new_unchecked(&mut segment[..]), src, dst)
            .unwrap();
        self.ethernet_ipv4(dir, IpProtocol::Tcp, &segment)
    }

    /// A PPTP control message (already emitted) as the next segment of its direction.
    fn control(&mut self, dir: Dir, what: &str, message: &[u8], expect: Expect) {
        let frame = self.tcp(dir, TcpFlags::ACK | TcpFlags::PSH, message);
        let len = u32::try_from(message.len()).unwrap();
        match dir {
            Dir::ToServer => self.client_tcp_seq += len,
            Dir::ToClient => self.server_tcp_seq += len,
        }
        self.push(what, frame, expect);
    }

    /// A GRE packet of the call: `ppp` is the whole PPP frame (header included), or empty for
    /// a pure acknowledgement. Returns the GRE fields tshark must show.
    fn gre(&mut self, dir: Dir, ppp: &[u8], ack: Option<u32>) -> (Vec<u8>, Expect) {
        let (call_id, seq) = match dir {
            Dir::ToServer => (SERVER_CALL_ID, &mut self.client_gre_seq),
            Dir::ToClient => (CLIENT_CALL_ID, &mut self.server_gre_seq),
        };
        let seq_now = (!ppp.is_empty()).then_some(*seq);
        if !ppp.is_empty() {
            *seq += 1;
        }
        let repr = GreRepr {
            call_id,
            seq: seq_now,
            ack,
            payload_len: u16::try_from(ppp.len()).unwrap(),
        };
        let mut packet = vec![0u8; repr.buffer_len()];
        repr.emit(&mut GrePacket::new_unchecked(&mut packet[..]))
            .unwrap();
        packet[repr.header_len()..].copy_from_slice(ppp);
        let mut expect = vec![
            ("gre.proto", "0x880b".to_string()),
            ("gre.flags.version", "1".to_string()),
            ("gre.key.call_id", call_id.to_string()),
            ("gre.key.payload_length", ppp.len().to_string()),
        ];
        if let Some(s) = seq_now {
            expect.push(("gre.sequence_number", s.to_string()));
        }
        if let Some(a) = ack {
            expect.push(("gre.ack_number", a.to_string()));
        }
        (self.ethernet_ipv4(dir, IpProtocol::Gre, &packet), expect)
    }

    /// A PPP frame inside GRE, with the frame's own expected fields added to GRE's.
    fn ppp(&mut self, dir: Dir, what: &str, ppp: Vec<u8>, mut expect: Expect) {
        let (frame, mut fields) = self.gre(dir, &ppp, Some(7));
        fields.append(&mut expect);
        self.push(what, frame, fields);
    }
}

/// `header` (ff 03 and a two-byte protocol unless the header says otherwise) followed by `body`.
fn ppp_frame(header: PppHeader, body: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8; header.buffer_len() + body.len()];
    header
        .emit(&mut PppFrame::new_unchecked(&mut frame[..]))
        .unwrap();
    frame[header.buffer_len()..].copy_from_slice(body);
    frame
}

fn chap_bytes(repr: &chap::Repr<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut chap::Packet::new_unchecked(&mut buf[..]))
        .unwrap();
    buf
}

fn pap_bytes(repr: &pap::Repr<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut pap::Packet::new_unchecked(&mut buf[..]))
        .unwrap();
    buf
}

fn s(v: impl ToString) -> String {
    v.to_string()
}

/// Every PPTP control message type, in the order a session would use them.
fn add_pptp(c: &mut Capture) {
    let both = FramingCapabilities::ASYNC | FramingCapabilities::SYNC;
    let any_bearer = BearerCapabilities::ANALOG | BearerCapabilities::DIGITAL;
    let messages: Vec<(Dir, Message, Expect)> = vec![
        (
            Dir::ToServer,
            StartControlConnectionRequest {
                protocol_version: PROTOCOL_VERSION,
                framing_capabilities: both,
                bearer_capabilities: any_bearer,
                max_channels: 65535,
                firmware_revision: 1,
                host_name: FixedStr::new("local"),
                vendor: FixedStr::new("xpptp-bench"),
            }
            .into(),
            vec![
                ("pptp.protocol_version", s(256)),
                ("pptp.framing_capabilities", s(3)),
                ("pptp.maximum_channels", s(65535)),
                ("pptp.host_name", s("local")),
                ("pptp.vendor_name", s("xpptp-bench")),
            ],
        ),
        (
            Dir::ToClient,
            StartControlConnectionReply {
                protocol_version: PROTOCOL_VERSION,
                result: 1.into(),
                error: ErrorCode::NoError,
                framing_capabilities: both,
                bearer_capabilities: any_bearer,
                max_channels: 0,
                firmware_revision: 1,
                host_name: FixedStr::new("xpptp"),
                vendor: FixedStr::new("xpptp"),
            }
            .into(),
            vec![
                ("pptp.control_result", s(1)),
                ("pptp.host_name", s("xpptp")),
            ],
        ),
        (
            Dir::ToServer,
            OutgoingCallRequest {
                call_id: CLIENT_CALL_ID,
                call_serial_number: 7,
                min_bps: 2400,
                max_bps: 10_000_000,
                bearer_type: 3.into(),
                framing_type: 3.into(),
                recv_window_size: 64,
                packet_processing_delay: 0,
                phone_number_len: 4,
                phone_number: FixedStr::new("5551"),
                subaddress: FixedStr::new(""),
            }
            .into(),
            vec![
                ("pptp.call_id", s(CLIENT_CALL_ID)),
                ("pptp.call_serial_number", s(7)),
                ("pptp.maximum_bps", s(10_000_000)),
                ("pptp.packet_receive_window_size", s(64)),
                ("pptp.phone_number", s("5551")),
            ],
        ),
        (
            Dir::ToClient,
            OutgoingCallReply {
                call_id: SERVER_CALL_ID,
                peer_call_id: CLIENT_CALL_ID,
                result: 1.into(),
                error: ErrorCode::NoError,
                cause_code: 0,
                connect_speed: 100_000_000,
                recv_window_size: 64,
                packet_processing_delay: 0,
                physical_channel_id: 0,
            }
            .into(),
            vec![
                ("pptp.call_id", s(SERVER_CALL_ID)),
                ("pptp.peer_call_id", s(CLIENT_CALL_ID)),
                ("pptp.out_result", s(1)),
                ("pptp.connect_speed", s(100_000_000)),
            ],
        ),
        (
            Dir::ToServer,
            SetLinkInfo {
                peer_call_id: SERVER_CALL_ID,
                send_accm: 0xffff_ffff,
                recv_accm: 0,
            }
            .into(),
            vec![
                ("pptp.peer_call_id", s(SERVER_CALL_ID)),
                ("pptp.send_accm", s("0xffffffff")),
            ],
        ),
        (
            Dir::ToServer,
            EchoRequest {
                identifier: 0xdead_beef,
            }
            .into(),
            vec![("pptp.identifier", s(0xdead_beef_u32))],
        ),
        (
            Dir::ToClient,
            EchoReply {
                identifier: 0xdead_beef,
                result: 1.into(),
                error: ErrorCode::NoError,
            }
            .into(),
            vec![
                ("pptp.identifier", s(0xdead_beef_u32)),
                ("pptp.echo_result", s(1)),
            ],
        ),
        (
            Dir::ToClient,
            WanErrorNotify {
                peer_call_id: CLIENT_CALL_ID,
                crc_errors: 1,
                framing_errors: 2,
                hardware_overruns: 3,
                buffer_overruns: 4,
                timeout_errors: 5,
                alignment_errors: 6,
            }
            .into(),
            vec![("pptp.crc_errors", s(1)), ("pptp.alignment_errors", s(6))],
        ),
        (
            Dir::ToServer,
            IncomingCallRequest {
                call_id: 9,
                call_serial_number: 8,
                bearer_type: 1.into(),
                physical_channel_id: 2,
                dialed_number_len: 3,
                dialing_number_len: 3,
                dialed_number: FixedStr::new("123"),
                dialing_number: FixedStr::new("456"),
                subaddress: FixedStr::new("sub"),
            }
            .into(),
            vec![
                ("pptp.dialed_number", s("123")),
                ("pptp.dialing_number", s("456")),
            ],
        ),
        (
            Dir::ToClient,
            IncomingCallReply {
                call_id: 10,
                peer_call_id: 9,
                result: 3.into(),
                error: ErrorCode::NoError,
                recv_window_size: 16,
                packet_transmit_delay: 0,
            }
            .into(),
            vec![("pptp.in_result", s(3)), ("pptp.peer_call_id", s(9))],
        ),
        (
            Dir::ToServer,
            IncomingCallConnected {
                peer_call_id: 10,
                connect_speed: 64_000,
                recv_window_size: 16,
                packet_transmit_delay: 0,
                framing_type: 1.into(),
            }
            .into(),
            vec![
                ("pptp.connect_speed", s(64_000)),
                ("pptp.framing_type", s(1)),
            ],
        ),
        (
            Dir::ToServer,
            CallClearRequest {
                call_id: CLIENT_CALL_ID,
            }
            .into(),
            vec![("pptp.call_id", s(CLIENT_CALL_ID))],
        ),
        (
            Dir::ToClient,
            CallDisconnectNotify {
                call_id: SERVER_CALL_ID,
                result: 4.into(),
                error: ErrorCode::NoError,
                cause_code: 0,
                call_statistics: FixedStr::new("rx 10 tx 12"),
            }
            .into(),
            vec![
                ("pptp.disc_result", s(4)),
                ("pptp.call_Statistics", s("rx 10 tx 12")),
            ],
        ),
        (
            Dir::ToServer,
            StopControlConnectionRequest { reason: 1.into() }.into(),
            vec![("pptp.reason", s(1))],
        ),
        (
            Dir::ToClient,
            StopControlConnectionReply {
                result: 1.into(),
                error: ErrorCode::NoError,
            }
            .into(),
            vec![("pptp.stop_result", s(1))],
        ),
    ];
    for (dir, message, mut expect) in messages {
        let mut bytes = vec![0u8; message.buffer_len()];
        assert_eq!(message.emit(&mut bytes).unwrap(), bytes.len());
        let kind = message.message_type();
        expect.extend([
            ("pptp.length", s(bytes.len())),
            ("pptp.magic_cookie", s("0x1a2b3c4d")),
            ("pptp.control_message_type", s(u16::from(kind))),
        ]);
        c.control(dir, &format!("PPTP {kind}"), &bytes, expect);
    }
}

/// A Configure-Request/Ack/Nak/Reject with `options`, for protocol `protocol`.
fn config_packet<'o, O: cp::ConfigOption<'o>>(
    protocol: Protocol,
    code: Code,
    id: u8,
    options: &[O],
) -> Vec<u8> {
    let mut buf = vec![0u8; 256];
    let mut writer = ConfigPacketWriter::new(&mut buf, code, id).unwrap();
    for option in options {
        writer.push(option).unwrap();
    }
    let len = writer.finish();
    buf.truncate(len);
    ppp_frame(PppHeader::uncompressed(protocol), &buf)
}

fn lcp_frame(repr: &lcp::Repr<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut CpPacket::new_unchecked(&mut buf[..]))
        .unwrap();
    ppp_frame(PppHeader::uncompressed(Protocol::Lcp), &buf)
}

fn ccp_frame(repr: &ccp::Repr<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut CpPacket::new_unchecked(&mut buf[..]))
        .unwrap();
    ppp_frame(PppHeader::uncompressed(Protocol::Ccp), &buf)
}

/// LCP, IPCP and CCP as a negotiation would send them.
fn add_negotiation(c: &mut Capture) {
    let request = [
        LcpOption::Mru(1400),
        LcpOption::Accm(0),
        LcpOption::AuthProtocol {
            protocol: Protocol::Chap,
            data: &[u8::from(ChapAlgorithm::MsChapV2)],
        },
        LcpOption::MagicNumber(0x1234_5678),
        LcpOption::Pfc,
        LcpOption::Acfc,
    ];
    c.ppp(
        Dir::ToClient,
        "LCP Configure-Request",
        config_packet(Protocol::Lcp, Code::ConfigureRequest, 1, &request),
        vec![
            ("ppp.protocol", s("0xc021")),
            ("ppp.code", s(1)),
            ("lcp.opt.mru", s(1400)),
            ("lcp.opt.asyncmap", s("0x00000000")),
            ("lcp.opt.auth_protocol", s("0xc223")),
            ("lcp.opt.algorithm", s(0x81)),
            ("lcp.opt.magic_number", s("0x12345678")),
        ],
    );
    let rejected = [
        LcpOption::Mrru(1614),
        LcpOption::EndpointDiscriminator {
            class: 1,
            address: b"\x01\x02\x03\x04",
        },
        LcpOption::Callback {
            operation: 6,
            message: &[],
        },
    ];
    c.ppp(
        Dir::ToClient,
        "LCP Configure-Reject (multilink, callback)",
        config_packet(Protocol::Lcp, Code::ConfigureReject, 2, &rejected),
        vec![
            ("ppp.code", s(4)),
            ("lcp.opt.mrru", s(1614)),
            ("lcp.opt.operation", s(6)),
        ],
    );
    c.ppp(
        Dir::ToServer,
        "LCP Echo-Request",
        lcp_frame(&lcp::Repr::EchoRequest {
            id: 9,
            magic: 0x0bad_cafe,
            data: &[],
        }),
        vec![("ppp.code", s(9)), ("lcp.magic_number", s("0x0badcafe"))],
    );
    c.ppp(
        Dir::ToClient,
        "LCP Echo-Reply",
        lcp_frame(&lcp::Repr::EchoReply {
            id: 9,
            magic: 0x1234_5678,
            data: &[],
        }),
        vec![("ppp.code", s(10)), ("ppp.identifier", s(9))],
    );
    let ipv6cp = [
        1u8, 1, 0, 14, 1, 10, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
    ];
    c.ppp(
        Dir::ToClient,
        "LCP Protocol-Reject of IPV6CP",
        lcp_frame(&lcp::Repr::ProtocolReject {
            id: 3,
            protocol: Protocol::Ipv6cp,
            information: &ipv6cp,
        }),
        vec![("ppp.code", s(8)), ("lcp.rej_proto", s("0x8057"))],
    );
    c.ppp(
        Dir::ToServer,
        "LCP Identification",
        lcp_frame(&lcp::Repr::Identification {
            id: 4,
            magic: 1,
            message: b"MSRASV5.20",
        }),
        vec![("ppp.code", s(12)), ("lcp.message", s("MSRASV5.20"))],
    );
    c.ppp(
        Dir::ToClient,
        "LCP Terminate-Request",
        lcp_frame(&lcp::Repr::Common(cp::Repr::TerminateRequest {
            id: 5,
            data: b"MPPE required",
        })),
        vec![("ppp.code", s(5))],
    );

    let address = |a: [u8; 4]| Ipv4Addr::from(a);
    let ipcp_request = [
        IpcpOption::IpCompressionProtocol {
            protocol: 0x002d,
            data: &VjCompression {
                max_slot_id: 15,
                comp_slot_id: 1,
            }
            .to_bytes(),
        },
        IpcpOption::IpAddress(Ipv4Addr::UNSPECIFIED),
        IpcpOption::PrimaryDns(Ipv4Addr::UNSPECIFIED),
        IpcpOption::PrimaryNbns(Ipv4Addr::UNSPECIFIED),
    ];
    c.ppp(
        Dir::ToServer,
        "IPCP Configure-Request",
        config_packet(Protocol::Ipcp, Code::ConfigureRequest, 1, &ipcp_request),
        vec![
            ("ppp.protocol", s("0x8021")),
            ("ipcp.opt.compress_proto", s("0x002d")),
            ("ipcp.opt.max_slot_id", s(15)),
            ("ipcp.opt.ip_address", s("0.0.0.0")),
        ],
    );
    let ipcp_nak = [
        IpcpOption::IpAddress(address([192, 168, 77, 10])),
        IpcpOption::PrimaryDns(address([192, 0, 2, 53])),
        IpcpOption::SecondaryDns(address([192, 0, 2, 54])),
        IpcpOption::PrimaryNbns(address([192, 0, 2, 137])),
        IpcpOption::SecondaryNbns(address([192, 0, 2, 138])),
    ];
    c.ppp(
        Dir::ToClient,
        "IPCP Configure-Nak (address, DNS, NBNS)",
        config_packet(Protocol::Ipcp, Code::ConfigureNak, 1, &ipcp_nak),
        vec![
            ("ppp.code", s(3)),
            ("ipcp.opt.ip_address", s("192.168.77.10")),
            ("ipcp.opt.pri_dns_address", s("192.0.2.53")),
            ("ipcp.opt.sec_dns_address", s("192.0.2.54")),
            ("ipcp.opt.pri_nbns_address", s("192.0.2.137")),
            ("ipcp.opt.sec_nbns_address", s("192.0.2.138")),
        ],
    );

    let mppe = [CcpOption::Mppe(MppeBits::H | MppeBits::S)];
    c.ppp(
        Dir::ToServer,
        "CCP Configure-Request (MPPE 128 stateless)",
        config_packet(Protocol::Ccp, Code::ConfigureRequest, 1, &mppe),
        vec![
            ("ppp.protocol", s("0x80fd")),
            ("ccp.opt.supported_bits", s("0x01000040")),
            ("ccp.opt.supported_bits.h", s(1)),
            ("ccp.opt.supported_bits.s", s(1)),
            ("ccp.opt.supported_bits.l", s(0)),
        ],
    );
    let stateful_40 = [CcpOption::Mppe(MppeBits::L)];
    c.ppp(
        Dir::ToClient,
        "CCP Configure-Nak (MPPE 40 stateful)",
        config_packet(Protocol::Ccp, Code::ConfigureNak, 1, &stateful_40),
        vec![
            ("ppp.code", s(3)),
            ("ccp.opt.supported_bits", s("0x00000020")),
        ],
    );
    c.ppp(
        Dir::ToServer,
        "CCP Reset-Request",
        ccp_frame(&ccp::Repr::ResetRequest { id: 7, data: &[] }),
        vec![("ppp.code", s(14)), ("ppp.identifier", s(7))],
    );
    c.ppp(
        Dir::ToClient,
        "CCP Reset-Ack",
        ccp_frame(&ccp::Repr::ResetAck { id: 7, data: &[] }),
        vec![("ppp.code", s(15)), ("ppp.identifier", s(7))],
    );
}

fn add_auth(c: &mut Capture) {
    let auth_challenge = [0xf7u8; 16];
    let lcp_chap = |body: Vec<u8>| ppp_frame(PppHeader::uncompressed(Protocol::Chap), &body);
    let challenge = chap_bytes(&chap::Repr::Challenge {
        identifier: 0xfe,
        value: &auth_challenge,
        name: b"pptpd",
    });
    c.ppp(
        Dir::ToClient,
        "CHAP Challenge",
        lcp_chap(challenge),
        vec![
            ("ppp.protocol", s("0xc223")),
            ("chap.code", s(1)),
            ("chap.identifier", s(254)),
            ("chap.value_size", s(16)),
            ("chap.name", s("pptpd")),
        ],
    );
    let response_value = MsChapV2Response::new([0x0d; 16], [0xb6; 24]).to_bytes();
    let response = chap_bytes(&chap::Repr::Response {
        identifier: 0xfe,
        value: &response_value,
        name: b"pptpuser",
    });
    c.ppp(
        Dir::ToServer,
        "CHAP Response (MS-CHAPv2)",
        lcp_chap(response),
        vec![
            ("chap.code", s(2)),
            ("chap.value_size", s(49)),
            ("chap.name", s("pptpuser")),
        ],
    );
    let success = MsChapV2Success {
        authenticator_response: [0x43; 20],
        message: Some(b"Access granted"),
    };
    let mut text = vec![0u8; success.buffer_len()];
    success.emit(&mut text).unwrap();
    let packet = chap_bytes(&chap::Repr::Success {
        identifier: 0xfe,
        message: &text,
    });
    c.ppp(
        Dir::ToClient,
        "CHAP Success (MS-CHAPv2 S=)",
        lcp_chap(packet),
        vec![
            ("chap.code", s(3)),
            (
                "chap.message",
                s("S=4343434343434343434343434343434343434343 M=Access granted"),
            ),
        ],
    );
    let failure = MsChapV2Failure {
        error: 691.into(),
        retry: false,
        challenge: Some([0x5b; 16]),
        version: Some(3),
        message: None,
    };
    let mut text = vec![0u8; failure.buffer_len()];
    failure.emit(&mut text).unwrap();
    let packet = chap_bytes(&chap::Repr::Failure {
        identifier: 0xfe,
        message: &text,
    });
    c.ppp(
        Dir::ToClient,
        "CHAP Failure (MS-CHAPv2 E=691)",
        lcp_chap(packet),
        vec![
            ("chap.code", s(4)),
            (
                "chap.message",
                s("E=691 R=0 C=5B5B5B5B5B5B5B5B5B5B5B5B5B5B5B5B V=3"),
            ),
        ],
    );
    let pap_frame = |body: Vec<u8>| ppp_frame(PppHeader::uncompressed(Protocol::Pap), &body);
    let request = pap_bytes(&pap::Repr::AuthenticateRequest {
        identifier: 3,
        peer_id: b"pptpuser",
        password: b"secret",
    });
    c.ppp(
        Dir::ToServer,
        "PAP Authenticate-Request",
        pap_frame(request),
        vec![
            ("ppp.protocol", s("0xc023")),
            ("pap.code", s(1)),
            ("pap.peer_id", s("pptpuser")),
            ("pap.password", s("secret")),
        ],
    );
    let ack = pap_bytes(&pap::Repr::AuthenticateAck {
        identifier: 3,
        message: b"Login ok",
    });
    c.ppp(
        Dir::ToClient,
        "PAP Authenticate-Ack",
        pap_frame(ack),
        vec![("pap.code", s(2)), ("pap.message", s("Login ok"))],
    );
}

fn add_data(c: &mut Capture) {
    // MPPE data as pppd sends it once ACFC and PFC are on: protocol 0xfd in one byte.
    let header = PppHeader {
        acfc: true,
        pfc: true,
        protocol: Protocol::Mppe,
    };
    let mppe = MppeRepr::encrypted_packet(0x123, true);
    let mut body = vec![0u8; mppe.buffer_len() + 40];
    mppe.emit(&mut MppeHeader::new_unchecked(&mut body[..]))
        .unwrap();
    body[mppe.buffer_len()..].fill(0xa5);
    c.ppp(
        Dir::ToServer,
        "GRE data: MPPE (ACFC + PFC)",
        ppp_frame(header, &body),
        vec![("ppp.protocol", s("0x00fd"))],
    );
    let (frame, expect) = c.gre(Dir::ToClient, &[], Some(12));
    c.push("GRE pure acknowledgement", frame, expect);
    let (frame, expect) = c.gre(Dir::ToServer, &ppp_frame(header, &body), None);
    c.push("GRE data without acknowledgement", frame, expect);
}

/// Runs tshark over `frames` and returns each frame's `layers` object.
fn tshark_decode(frames: &[Frame]) -> Vec<Value> {
    let dir = std::env::temp_dir().join(format!("xpptp-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("emitted.pcap");
    {
        let file = std::fs::File::create(&path).unwrap();
        let header = PcapHeader {
            datalink: DataLink::ETHERNET,
            ..Default::default()
        };
        let mut writer = PcapWriter::with_header(file, header).unwrap();
        for (i, f) in frames.iter().enumerate() {
            let ts = std::time::Duration::from_millis(1_000 + i as u64);
            let len = u32::try_from(f.bytes.len()).unwrap();
            writer
                .write_packet(&PcapPacket::new(ts, len, &f.bytes))
                .unwrap();
        }
    }
    let output = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args(["-T", "json", "--no-duplicate-keys"])
        // Check every checksum we wrote.
        .args([
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
        ])
        .output();
    let output = match output {
        Ok(o) => o,
        Err(e) => panic!(
            "cannot run tshark ({e}); this test needs it: `apt-get install tshark` \
             (scripts/setup.sh installs it)"
        ),
    };
    assert!(
        output.status.success(),
        "tshark failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    let decoded: Value = serde_json::from_slice(&output.stdout).expect("tshark JSON");
    decoded
        .as_array()
        .expect("tshark JSON is an array of frames")
        .iter()
        .map(|p| p["_source"]["layers"].clone())
        .collect()
}

/// Every value of `key` anywhere under `v`, as tshark prints it.
fn find_all(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, val) in map {
                if k == key {
                    match val {
                        Value::Array(items) => out.extend(items.iter().map(scalar)),
                        other => out.push(scalar(other)),
                    }
                }
                find_all(val, key, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| find_all(i, key, out)),
        _ => {}
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn values(v: &Value, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    find_all(v, key, &mut out);
    out
}

/// Checks each decoded frame against its expectations; collects every failure first so one
/// run shows them all.
fn check(frames: &[Frame], decoded: &[Value]) {
    assert_eq!(
        decoded.len(),
        frames.len(),
        "tshark decoded a different number of frames"
    );
    let mut failures = Vec::new();
    for (i, (frame, layers)) in frames.iter().zip(decoded).enumerate() {
        let n = i + 1;
        if layers.get("_ws.malformed").is_some() || !values(layers, "_ws.malformed").is_empty() {
            failures.push(format!("frame {n} ({}): malformed packet", frame.what));
        }
        for (severity, message) in values(layers, "_ws.expert.severity")
            .iter()
            .zip(values(layers, "_ws.expert.message"))
        {
            let level: u64 = severity.parse().unwrap_or(u64::MAX);
            if level >= EXPERT_WARN {
                failures.push(format!(
                    "frame {n} ({}): expert {severity}: {message}",
                    frame.what
                ));
            }
        }
        for (field, want) in &frame.expect {
            let got = values(layers, field);
            if !got.iter().any(|g| g == want) {
                failures.push(format!(
                    "frame {n} ({}): {field} = {got:?}, expected {want:?}",
                    frame.what
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "tshark disagrees:\n{}",
        failures.join("\n")
    );
}

#[test]
fn tshark_decodes_everything_we_emit() {
    let mut capture = Capture::new();
    add_pptp(&mut capture);
    add_negotiation(&mut capture);
    add_auth(&mut capture);
    add_data(&mut capture);
    let decoded = tshark_decode(&capture.frames);
    check(&capture.frames, &decoded);
}
