//! The XDP program's verdicts, table-driven (Katran style): each case is a frame built with
//! xpptp-proto's emitters, the call and client maps it runs against, and the action and
//! counter slot it must produce, checked through BPF_PROG_TEST_RUN.
//!
//! Needs root with CAP_BPF (CI runs as root). Without it every test fails with a message
//! saying so: these tests are never skipped.
//!
//! How a redirect is observed: BPF_PROG_TEST_RUN (without live frames) runs the program on
//! the loopback device, receive queue 0, and reports its return value without performing
//! the redirect. The tests put an AF_XDP socket (created, never bound) at XSKMAP index 0, so
//! `bpf_redirect_map` finds it and the program returns XDP_REDIRECT. Without a socket the
//! program falls back to XDP_PASS and counts `redirect_no_socket` (its own test below).
// Test helpers outside #[test] functions: panicking with context is how a test fails.
#![allow(clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;
use std::os::fd::{FromRawFd, OwnedFd};

mod common;

use aya::programs::{TestRun, TestRunOptions};
use common::frames::ipv4;
use xpptp_datapath::steering::Steering;
use xpptp_ebpf_types::{Counter, Slot};
use xpptp_proto::wire::gre::{GrePacket, GreRepr};
use xpptp_proto::wire::ipv4::{IpProtocol, Ipv4Packet};
use xpptp_proto::wire::ppp::{PppFrame, PppHeader, Protocol};

const XDP_ABORTED: u32 = 0;
const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

const PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const OTHER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 99);
const SERVER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const CLIENT_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 5);
const INSIDE_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CALL: u16 = 0x4711;

// ---- frame builders ----

/// An Ethernet header with the given VLAN tags (TPID, VID), outermost first.
fn ethernet(tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
    let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
    for &(tpid, vid) in tags {
        frame.extend_from_slice(&tpid.to_be_bytes());
        frame.extend_from_slice(&vid.to_be_bytes());
    }
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame
}

/// A PPP frame: header (with the given compressions) and information field.
fn ppp(acfc: bool, pfc: bool, protocol: Protocol, info: &[u8]) -> Vec<u8> {
    let header = PppHeader {
        acfc,
        pfc,
        protocol,
    };
    let mut frame = vec![0; header.buffer_len()];
    header
        .emit(&mut PppFrame::new_unchecked(&mut frame[..]))
        .expect("emit PPP");
    frame.extend_from_slice(info);
    frame
}

/// Enhanced GRE carrying `payload` (sequence number and ack present), or a pure ack when
/// `payload` is empty.
fn gre(call_id: u16, payload: &[u8]) -> Vec<u8> {
    let repr = if payload.is_empty() {
        GreRepr::pure_ack(call_id, 41)
    } else {
        GreRepr {
            call_id,
            seq: Some(42),
            ack: Some(41),
            payload_len: u16::try_from(payload.len()).expect("payload fits"),
        }
    };
    let mut packet = vec![0; repr.header_len()];
    repr.emit(&mut GrePacket::new_unchecked(&mut packet[..]))
        .expect("emit GRE");
    packet.extend_from_slice(payload);
    packet
}

/// MPPE payload: a 2-byte MPPE header (flushed, coherency count 5) and some ciphertext.
const MPPE_BODY: &[u8] = &[0x90, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04];

fn mppe_ppp(acfc: bool, pfc: bool) -> Vec<u8> {
    ppp(acfc, pfc, Protocol::Mppe, MPPE_BODY)
}

/// An upstream GRE frame from `src` for `call_id` carrying `ppp_frame`, with VLAN `tags`.
fn upstream(tags: &[(u16, u16)], src: Ipv4Addr, call_id: u16, ppp_frame: &[u8]) -> Vec<u8> {
    let mut frame = ethernet(tags, 0x0800);
    frame.extend(ipv4(src, SERVER, IpProtocol::Gre, &gre(call_id, ppp_frame)));
    frame
}

fn mppe_frame() -> Vec<u8> {
    upstream(&[], PEER, CALL, &mppe_ppp(false, false))
}

fn with_fragment(mut frame: Vec<u8>, more_frags: bool, offset: u16) -> Vec<u8> {
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..]);
    ip.set_more_frags(more_frags);
    ip.set_frag_offset(offset);
    ip.fill_checksum();
    frame
}

/// ICMP echo request (id 1, seq 1) with no data; the checksum does not matter to XDP.
const ICMP_ECHO: &[u8] = &[8, 0, 0xf7, 0xfe, 0, 1, 0, 1];

// ---- the harness ----

/// What the call and client maps hold for one case.
#[derive(Clone, Copy)]
struct Maps {
    /// (call ID, peer, allow plain IP)
    calls: &'static [(u16, Ipv4Addr, bool)],
    /// (tunnel address, call ID)
    clients: &'static [(Ipv4Addr, u16)],
}

const ESTABLISHED: Maps = Maps {
    calls: &[(CALL, PEER, false)],
    clients: &[(CLIENT_TUNNEL, CALL)],
};
const ESTABLISHED_PLAIN_IP: Maps = Maps {
    calls: &[(CALL, PEER, true)],
    clients: &[],
};
const EMPTY: Maps = Maps {
    calls: &[],
    clients: &[],
};

struct Case {
    what: &'static str,
    frame: Vec<u8>,
    maps: Maps,
    action: u32,
    slot: Slot,
}

fn case(what: &'static str, frame: Vec<u8>, maps: Maps, action: u32, slot: Slot) -> Case {
    Case {
        what,
        frame,
        maps,
        action,
        slot,
    }
}

/// Loads the program, failing the test with a clear message where BPF is unavailable.
fn load() -> Steering {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    match Steering::load() {
        Ok(steering) => steering,
        Err(err) => panic!(
            "BPF is unavailable, so the XDP verdict tests cannot run (they are not skipped): \
             they need root with CAP_BPF (effective uid here: {euid}) and a kernel with the \
             bpf() syscall. Error: {:#}",
            anyhow::Error::new(err)
        ),
    }
}

/// An AF_XDP socket, never bound: enough for the XSKMAP to hold it and for
/// bpf_redirect_map to return XDP_REDIRECT under BPF_PROG_TEST_RUN.
fn xdp_socket() -> OwnedFd {
    // SAFETY: plain socket(2) call; the returned descriptor is checked before use.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(
        fd >= 0,
        "socket(AF_XDP) failed: {} (kernel without CONFIG_XDP_SOCKETS?)",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd is a freshly created descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A loaded program with `maps` in place and, if `socket` is given, that socket at queue 0.
fn setup(maps: Maps, socket: Option<&OwnedFd>) -> Steering {
    let mut steering = load();
    for &(call_id, peer, plain_ip) in maps.calls {
        steering
            .establish_call(call_id, peer, plain_ip)
            .expect("establish call");
    }
    for &(addr, call_id) in maps.clients {
        steering.add_client(addr, call_id).expect("add client");
    }
    if let Some(socket) = socket {
        steering
            .set_socket(0, socket)
            .expect("insert AF_XDP socket at queue 0");
    }
    steering
}

/// Runs the program once on `frame`: its return value, or the test-run error.
fn run(steering: &mut Steering, frame: &[u8]) -> Result<u32, aya::programs::ProgramError> {
    let program = steering.program_mut().expect("program");
    let opts = TestRunOptions {
        data_in: Some(frame),
        ..TestRunOptions::default()
    };
    program.test_run(opts).map(|result| result.return_value)
}

fn action_name(action: u32) -> &'static str {
    match action {
        XDP_ABORTED => "XDP_ABORTED",
        1 => "XDP_DROP",
        XDP_PASS => "XDP_PASS",
        3 => "XDP_TX",
        XDP_REDIRECT => "XDP_REDIRECT",
        _ => "unknown action",
    }
}

/// Every non-zero counter, for failure messages.
fn nonzero_counters(steering: &Steering) -> Vec<(&'static str, Counter)> {
    steering
        .counters()
        .expect("read counters")
        .into_iter()
        .filter(|(_, c)| c.packets != 0)
        .map(|(slot, c)| (slot.name(), c))
        .collect()
}

/// Runs one case against a fresh program and checks the action and that exactly its slot
/// (plus nothing else) counted the frame, packets and bytes.
fn check(case: &Case, socket: &OwnedFd) {
    let mut steering = setup(case.maps, Some(socket));
    let action = run(&mut steering, &case.frame)
        .unwrap_or_else(|err| panic!("{}: BPF_PROG_TEST_RUN failed: {err:#?}", case.what));
    assert_eq!(
        action,
        case.action,
        "{}: got {}, expected {}; counters {:?}",
        case.what,
        action_name(action),
        action_name(case.action),
        nonzero_counters(&steering)
    );
    let expected = vec![(
        case.slot.name(),
        Counter {
            packets: 1,
            bytes: case.frame.len() as u64,
        },
    )];
    assert_eq!(
        nonzero_counters(&steering),
        expected,
        "{}: counters",
        case.what
    );
}

// ---- the table ----

fn cases() -> Vec<Case> {
    let lcp_echo = ppp(false, false, Protocol::Lcp, &[9, 1, 0, 8, 1, 2, 3, 4]);
    let ccp_reset = ppp(true, false, Protocol::Ccp, &[14, 3, 0, 4]);
    let inner_ip = ipv4(CLIENT_TUNNEL, INSIDE_HOST, IpProtocol::Icmp, ICMP_ECHO);
    let plain_ip = ppp(true, true, Protocol::Ipv4, &inner_ip);
    let mut downstream = ethernet(&[], 0x0800);
    downstream.extend(ipv4(INSIDE_HOST, CLIENT_TUNNEL, IpProtocol::Udp, &[0; 16]));
    let mut ping_host = ethernet(&[], 0x0800);
    ping_host.extend(ipv4(OTHER, SERVER, IpProtocol::Icmp, ICMP_ECHO));
    let mut arp = ethernet(&[], 0x0806);
    arp.extend([0u8; 28]);
    let mut padded_ack = upstream(&[], PEER, CALL, &[]);
    padded_ack.resize(60, 0);
    let mut gre_v0 = mppe_frame();
    // Flags/version of plain GRE (RFC 2784), protocol still 0x880B.
    gre_v0[34..36].copy_from_slice(&[0x00, 0x00]);
    let mut bad_version = mppe_frame();
    bad_version[14] = 0x65;
    let mut short_payload_len = mppe_frame();
    // Key field's payload length larger than what the datagram holds.
    short_payload_len[38..40].copy_from_slice(&0x0400u16.to_be_bytes());

    vec![
        case(
            "established call, MPPE with FF03 and a 2-byte protocol",
            mppe_frame(),
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamMppe,
        ),
        case(
            "established call, MPPE with ACFC and PFC (one byte FD)",
            upstream(&[], PEER, CALL, &mppe_ppp(true, true)),
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamMppe,
        ),
        case(
            "established call, MPPE with FF03 and PFC",
            upstream(&[], PEER, CALL, &mppe_ppp(false, true)),
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamMppe,
        ),
        case(
            "established call, MPPE with ACFC only",
            upstream(&[], PEER, CALL, &mppe_ppp(true, false)),
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamMppe,
        ),
        case(
            "established call from the wrong source",
            upstream(&[], OTHER, CALL, &mppe_ppp(false, false)),
            ESTABLISHED,
            XDP_PASS,
            Slot::PassSpoofed,
        ),
        case(
            "unknown call",
            upstream(&[], PEER, CALL + 1, &mppe_ppp(false, false)),
            ESTABLISHED,
            XDP_PASS,
            Slot::PassUnknownCall,
        ),
        case(
            "no calls at all",
            mppe_frame(),
            EMPTY,
            XDP_PASS,
            Slot::PassUnknownCall,
        ),
        case(
            "LCP echo request of an established call: to its worker, which punts it",
            upstream(&[], PEER, CALL, &lcp_echo),
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamPppControl,
        ),
        case(
            "CCP reset request (0x80FD, not MPPE's 0x00FD) of an established call",
            upstream(&[], PEER, CALL, &ccp_reset),
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamPppControl,
        ),
        case(
            "pure ack of an established call",
            upstream(&[], PEER, CALL, &[]),
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamAck,
        ),
        case(
            "pure ack padded to Ethernet's 60-byte minimum",
            padded_ack,
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamAck,
        ),
        case(
            "pure ack from the wrong source",
            upstream(&[], OTHER, CALL, &[]),
            ESTABLISHED,
            XDP_PASS,
            Slot::PassSpoofed,
        ),
        case(
            "plain IP on a call that allows it",
            upstream(&[], PEER, CALL, &plain_ip),
            ESTABLISHED_PLAIN_IP,
            XDP_REDIRECT,
            Slot::UpstreamPlainIp,
        ),
        case(
            "plain IP on a call that does not allow it",
            upstream(&[], PEER, CALL, &plain_ip),
            ESTABLISHED,
            XDP_PASS,
            Slot::PassPlainIpRefused,
        ),
        case(
            "802.1Q tagged MPPE",
            upstream(&[(0x8100, 100)], PEER, CALL, &mppe_ppp(false, false)),
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamMppe,
        ),
        case(
            "QinQ (802.1ad + 802.1Q) tagged MPPE",
            upstream(
                &[(0x88A8, 10), (0x8100, 100)],
                PEER,
                CALL,
                &mppe_ppp(false, false),
            ),
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::UpstreamMppe,
        ),
        case(
            "three VLAN tags: not parsed, passed",
            upstream(
                &[(0x88A8, 10), (0x8100, 100), (0x8100, 200)],
                PEER,
                CALL,
                &mppe_ppp(false, false),
            ),
            ESTABLISHED,
            XDP_PASS,
            Slot::PassNotIpv4,
        ),
        case(
            "first IPv4 fragment (MF) of an established call's GRE",
            with_fragment(mppe_frame(), true, 0),
            ESTABLISHED,
            XDP_PASS,
            Slot::PassFragment,
        ),
        case(
            "last IPv4 fragment (offset) of an established call's GRE",
            with_fragment(mppe_frame(), false, 64),
            ESTABLISHED,
            XDP_PASS,
            Slot::PassFragment,
        ),
        case(
            "downstream IPv4 to a client's tunnel address",
            downstream,
            ESTABLISHED,
            XDP_REDIRECT,
            Slot::DownstreamClient,
        ),
        case(
            "ICMP echo to the host",
            ping_host,
            ESTABLISHED,
            XDP_PASS,
            Slot::PassOtherIpv4,
        ),
        case("ARP", arp, ESTABLISHED, XDP_PASS, Slot::PassNotIpv4),
        case(
            "GRE version 0",
            gre_v0,
            ESTABLISHED,
            XDP_PASS,
            Slot::PassGreOther,
        ),
        case(
            "GRE payload length beyond the datagram",
            short_payload_len,
            ESTABLISHED,
            XDP_PASS,
            Slot::PassGreOther,
        ),
        case(
            "IPv4 version 6 in an IPv4 ethertype",
            bad_version,
            ESTABLISHED,
            XDP_PASS,
            Slot::PassBadIpv4,
        ),
    ]
}

#[test]
fn verdicts_table() {
    let socket = xdp_socket();
    for case in cases() {
        check(&case, &socket);
    }
}

#[test]
fn redirect_without_socket_falls_back_to_pass() {
    let mut steering = setup(ESTABLISHED, None);
    let frame = mppe_frame();
    let action = run(&mut steering, &frame).expect("BPF_PROG_TEST_RUN");
    assert_eq!(action, XDP_PASS, "{}", action_name(action));
    let one = Counter {
        packets: 1,
        bytes: frame.len() as u64,
    };
    assert_eq!(
        nonzero_counters(&steering),
        vec![
            (Slot::UpstreamMppe.name(), one),
            (Slot::RedirectNoSocket.name(), one)
        ]
    );
}

#[test]
fn removed_call_and_client_pass_again() {
    let socket = xdp_socket();
    let mut steering = setup(ESTABLISHED, Some(&socket));
    assert_eq!(
        run(&mut steering, &mppe_frame()).expect("run"),
        XDP_REDIRECT
    );
    steering.remove_call(CALL).expect("remove call");
    steering
        .remove_client(CLIENT_TUNNEL)
        .expect("remove client");
    assert_eq!(run(&mut steering, &mppe_frame()).expect("run"), XDP_PASS);
    let mut downstream = ethernet(&[], 0x0800);
    downstream.extend(ipv4(INSIDE_HOST, CLIENT_TUNNEL, IpProtocol::Udp, &[0; 16]));
    assert_eq!(run(&mut steering, &downstream).expect("run"), XDP_PASS);
    let counted = |slot| steering.counter(slot).expect("counter").packets;
    assert_eq!(counted(Slot::UpstreamMppe), 1);
    assert_eq!(counted(Slot::PassUnknownCall), 1);
    assert_eq!(counted(Slot::PassOtherIpv4), 1);
}

/// Every prefix of steerable frames (plain, VLAN, QinQ, pure ack, downstream): the program
/// never redirects a frame whose headers or datagram are cut, and never fails; it aborts
/// (counted as `aborted_truncated`). Frames shorter than an Ethernet header are refused by
/// BPF_PROG_TEST_RUN itself (EINVAL), as no NIC delivers them.
#[test]
fn truncated_frames_at_every_length() {
    let socket = xdp_socket();
    let mut downstream = ethernet(&[], 0x0800);
    downstream.extend(ipv4(INSIDE_HOST, CLIENT_TUNNEL, IpProtocol::Udp, &[0; 16]));
    let frames = [
        mppe_frame(),
        upstream(&[(0x8100, 100)], PEER, CALL, &mppe_ppp(true, true)),
        upstream(
            &[(0x88A8, 10), (0x8100, 100)],
            PEER,
            CALL,
            &mppe_ppp(false, false),
        ),
        upstream(&[], PEER, CALL, &[]),
        downstream,
    ];
    let mut steering = setup(ESTABLISHED, Some(&socket));
    let mut expected_aborts = 0;
    for frame in &frames {
        assert_eq!(
            run(&mut steering, frame).expect("whole frame"),
            XDP_REDIRECT
        );
        for len in 0..frame.len() {
            let prefix = &frame[..len];
            match run(&mut steering, prefix) {
                Ok(action) => {
                    assert!(len >= 14, "a {len}-byte frame ran");
                    assert_eq!(
                        action,
                        XDP_ABORTED,
                        "{len}-byte prefix of a {}-byte frame: {}",
                        frame.len(),
                        action_name(action)
                    );
                    expected_aborts += 1;
                }
                Err(err) => assert!(
                    len < 14,
                    "{len}-byte prefix: BPF_PROG_TEST_RUN failed: {err}"
                ),
            }
        }
    }
    let aborted = steering.counter(Slot::AbortedTruncated).expect("counter");
    assert_eq!(aborted.packets, expected_aborts);
}
