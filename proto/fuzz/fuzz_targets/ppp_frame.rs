//! PPP framing (`wire::ppp`): a checked `PppFrame` has a 1 to 4 byte header inside the
//! buffer, its getters agree with each other, and the protocol classifiers partition the
//! number space. A parsed `PppHeader` emits into `buffer_len()` bytes and parses back to
//! itself, except that LCP always goes out with address/control (RFC 1661 section 6.6).
//! The first three input bytes also serve as an arbitrary header to send: whatever `emit`
//! accepts must parse back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::ppp::{HEADER_LEN_MAX, PppFrame, PppHeader, Protocol};

/// What a receiver reads back from the frame `header.emit` writes.
fn as_sent(header: &PppHeader) -> PppHeader {
    PppHeader {
        acfc: !header.sends_address_control(),
        pfc: header.sends_compressed_protocol(),
        protocol: header.protocol,
    }
}

fn check_protocol(protocol: Protocol) {
    let value = u16::from(protocol);
    assert_eq!(Protocol::from(value), protocol);
    let _ = (protocol.is_valid(), protocol.is_compressible());
    let classes = [
        protocol.is_network_layer(),
        protocol.is_low_volume(),
        protocol.is_control(),
    ];
    assert_eq!(classes.iter().filter(|&&c| c).count(), 1, "{value:#06x}");
    assert_eq!(
        protocol.is_control(),
        protocol.is_network_control() || protocol.is_link_control()
    );
    assert!(!(protocol.is_network_control() && protocol.is_link_control()));
    if let Some(ncp) = protocol.network_control_protocol() {
        assert!(protocol.is_network_layer());
        assert!(ncp.is_network_control(), "{value:#06x} -> {ncp:?}");
    }
}

/// Emits `header` into a buffer of `buffer_len()` bytes; if it succeeds, the bytes must
/// parse back to what the header says is sent.
fn round_trip(header: &PppHeader) -> Option<Vec<u8>> {
    let len = header.buffer_len();
    assert!((1..=HEADER_LEN_MAX).contains(&len));
    let mut buf = vec![0u8; len];
    header
        .emit(&mut PppFrame::new_unchecked(&mut buf[..]))
        .ok()?;
    let frame = PppFrame::new_checked(&buf[..]).expect("emitted PPP header checks");
    assert_eq!(frame.header_len(), len);
    assert!(frame.payload().is_empty());
    let again = PppHeader::parse(&frame).expect("emitted PPP header parses");
    assert_eq!(again, as_sent(header));
    Some(buf)
}

fuzz_target!(|data: &[u8]| {
    if let [flags, hi, lo, ..] = *data {
        let header = PppHeader {
            acfc: flags & 1 != 0,
            pfc: flags & 2 != 0,
            protocol: Protocol::from(u16::from_be_bytes([hi, lo])),
        };
        check_protocol(header.protocol);
        let emitted = round_trip(&header);
        assert_eq!(emitted.is_some(), header.protocol.is_valid());
    }

    let Ok(frame) = PppFrame::new_checked(data) else {
        return;
    };
    let header_len = frame.header_len();
    assert!((1..=HEADER_LEN_MAX).contains(&header_len));
    assert_eq!(
        header_len,
        frame.protocol_len() + if frame.has_address_control() { 2 } else { 0 }
    );
    assert_eq!(frame.protocol_len() == 1, frame.protocol_compressed());
    assert_eq!(u16::from(frame.protocol()), frame.protocol_raw());
    assert_eq!(frame.payload(), &data[header_len..]);
    check_protocol(frame.protocol());

    let repr = PppHeader::parse(&frame).expect("a checked frame parses");
    assert!(repr.protocol.is_valid(), "parsed {repr:?}");
    let emitted = round_trip(&repr).expect("a parsed PPP header emits");
    // LCP always goes out uncompressed, and so does 0x00FF, which a receiver still accepts
    // compressed (after ff 03 it cannot be mistaken for the Address field).
    let resent_differently =
        repr.protocol == Protocol::Lcp || (repr.pfc && !repr.protocol.is_compressible());
    if !resent_differently {
        assert_eq!(as_sent(&repr), repr);
        assert_eq!(emitted[..], data[..header_len]);
    }
});
