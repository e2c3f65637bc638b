//! TCP (`wire::tcp`): every getter of a checked `TcpPacket` stays inside the header; the
//! options iterator walks to its end and every option it yields emits and parses back to
//! itself; `verify_checksum` agrees with `compute_checksum`; `clamp_mss` on a copy leaves
//! no MSS above the clamp, reports only what it lowered, fails only where the iterator does,
//! and keeps a valid checksum valid (RFC 1624); a parsed `TcpRepr` emits into
//! `buffer_len()` bytes and parses back to itself.
//!
//! Input: a control byte (bit 0: fill the checksum first, so that valid segments are
//! common), the clamp (2 bytes), source and destination IPv4 addresses, then the segment.
#![no_main]

use core::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::tcp::{
    HEADER_LEN, MAX_HEADER_LEN, TcpFlags, TcpOption, TcpPacket, TcpRepr, ipv4_mss_for_mtu,
};

fuzz_target!(|input: &[u8]| {
    let Some((prefix, rest)) = input.split_first_chunk::<11>() else {
        return;
    };
    let [control, m0, m1, s0, s1, s2, s3, d0, d1, d2, d3] = *prefix;
    let max_mss = u16::from_be_bytes([m0, m1]);
    let (src, dst) = (Ipv4Addr::new(s0, s1, s2, s3), Ipv4Addr::new(d0, d1, d2, d3));
    assert!(ipv4_mss_for_mtu(max_mss) <= max_mss);

    let mut data = rest.to_vec();
    if control & 1 != 0
        && let Ok(mut packet) = TcpPacket::new_checked(&mut data[..])
    {
        packet.fill_checksum(src, dst);
        assert!(packet.verify_checksum(src, dst));
    }
    let Ok(packet) = TcpPacket::new_checked(&data[..]) else {
        return;
    };

    let header_len = usize::from(packet.header_len());
    assert!((HEADER_LEN..=MAX_HEADER_LEN).contains(&header_len));
    assert_eq!(packet.options(), &data[HEADER_LEN..header_len]);
    assert_eq!(packet.payload(), &data[header_len..]);
    let flags = packet.flags();
    let bits = [
        (packet.fin(), TcpFlags::FIN),
        (packet.syn(), TcpFlags::SYN),
        (packet.rst(), TcpFlags::RST),
        (packet.psh(), TcpFlags::PSH),
        (packet.ack(), TcpFlags::ACK),
        (packet.urg(), TcpFlags::URG),
        (packet.ece(), TcpFlags::ECE),
        (packet.cwr(), TcpFlags::CWR),
    ];
    let mut union = TcpFlags::empty();
    for (set, flag) in bits {
        assert_eq!(set, flags.contains(flag));
        if set {
            union = union | flag;
        }
    }
    assert_eq!(union, flags);
    assert_eq!(TcpFlags::from_bits(flags.bits()), flags);
    let _ = (packet.src_port(), packet.dst_port(), packet.seq_number());
    let _ = (packet.ack_number(), packet.window_len(), packet.urgent_at());

    // Walk the options to the end; each good one round-trips.
    let mut option_error = None;
    let mut items = 0;
    for option in packet.option_iter() {
        items += 1;
        assert!(
            items <= MAX_HEADER_LEN - HEADER_LEN,
            "options iterator does not end"
        );
        match option {
            Ok(option) => {
                let mut buf = vec![0u8; option.buffer_len()];
                assert_eq!(option.emit(&mut buf), Ok(buf.len()));
                assert_eq!(TcpOption::parse(&buf), Ok((option, buf.len())));
                assert_eq!(
                    TcpOption::parse(&buf).map(|(o, _)| o.kind()),
                    Ok(option.kind())
                );
            }
            Err(err) => option_error = Some(err),
        }
    }

    let (stored, computed) = (packet.checksum(), packet.compute_checksum(src, dst));
    let verified = packet.verify_checksum(src, dst);
    assert_ne!(computed, 0xffff);
    assert_eq!(
        verified,
        stored == computed || (computed == 0 && stored == 0xffff)
    );

    check_clamp(&data, max_mss, src, dst, verified, option_error);

    let Ok(repr) = TcpRepr::parse(&packet, src, dst) else {
        return;
    };
    assert!(verified && option_error.is_none());
    assert_eq!(repr.options_len() % 4, 0);
    assert_eq!(repr.buffer_len(), repr.header_len() + repr.payload.len());
    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst)
        .expect("a parsed TCP segment emits");
    let again = TcpPacket::new_checked(&buf[..]).expect("emitted TCP checks");
    assert_eq!(TcpRepr::parse(&again, src, dst), Ok(repr));
});

/// MSS clamping on a copy of the segment.
fn check_clamp(
    data: &[u8],
    max_mss: u16,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    verified: bool,
    option_error: Option<xpptp_proto::wire::Error>,
) {
    let mut copy = data.to_vec();
    let result = TcpPacket::new_unchecked(&mut copy[..]).clamp_mss(max_mss);
    let clamped = TcpPacket::new_checked(&copy[..]).expect("clamping keeps the length");
    if verified {
        assert!(
            clamped.verify_checksum(src, dst),
            "clamp broke the checksum"
        );
    }
    if !clamped.syn() {
        assert_eq!(result, Ok(None));
        assert_eq!(copy, data);
        return;
    }
    match result {
        Ok(replaced) => {
            assert_eq!(option_error, None);
            if let Some(old) = replaced {
                assert!(old > max_mss);
            } else {
                assert_eq!(copy, data);
            }
        }
        Err(err) => assert_eq!(Some(err), option_error),
    }
    for option in clamped.option_iter() {
        match option {
            Ok(TcpOption::MaxSegmentSize(mss)) => assert!(mss <= max_mss),
            Ok(_) => {}
            Err(err) => assert_eq!(Some(err), option_error),
        }
    }
}
