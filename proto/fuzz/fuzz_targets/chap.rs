//! CHAP and MS-CHAP (`wire::chap`): every getter of a checked `Packet` stays inside Length,
//! a parsed `Repr` emits into `buffer_len()` bytes and parses back to itself, and the
//! MS-CHAP layers round-trip too: v1/v2 Challenge and Response values, the Change-Password
//! body, and the Success (`S=... M=...`) and v1/v2 Failure (`E=... R=... C=...`) texts, read
//! both from the packet and from the raw input so the text parsers see arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::chap::{
    HEADER_LEN, MsChapFailure, MsChapV1Challenge, MsChapV1Response, MsChapV2Challenge,
    MsChapV2ChangePassword, MsChapV2Response, MsChapV2Success, Packet, Repr,
};

fuzz_target!(|data: &[u8]| {
    check_text(data);
    let Ok(packet) = Packet::new_checked(data) else {
        return;
    };
    let length = usize::from(packet.length());
    assert!((HEADER_LEN..=data.len()).contains(&length));
    assert_eq!(packet.data(), &data[HEADER_LEN..length]);
    let (value, name, message) = (packet.value(), packet.name(), packet.message());
    let _ = (packet.code(), packet.identifier(), packet.value_size());
    check_value(value);
    check_text(message);

    let repr = Repr::parse(&packet);
    let Ok(repr) = repr else {
        return;
    };
    assert_eq!(u8::from(repr.code()), packet.code());
    assert_eq!(repr.identifier(), packet.identifier());
    match repr {
        Repr::Challenge {
            value: v, name: n, ..
        }
        | Repr::Response {
            value: v, name: n, ..
        } => {
            assert_eq!((v, n), (value, name));
            assert_eq!(usize::from(packet.value_size()), v.len());
            assert_eq!(1 + v.len() + n.len(), packet.data().len());
        }
        Repr::Success { message: m, .. } | Repr::Failure { message: m, .. } => {
            assert_eq!(m, message)
        }
        Repr::ChangePassword {
            change_password, ..
        } => {
            let mut body = [0u8; MsChapV2ChangePassword::DATA_LEN];
            assert_eq!(change_password.emit(&mut body), Ok(body.len()));
            assert_eq!(MsChapV2ChangePassword::parse(&body), Ok(change_password));
        }
        Repr::Other { data: d, .. } => assert_eq!(d, packet.data()),
    }

    let mut buf = vec![0u8; repr.buffer_len()];
    repr.emit(&mut Packet::new_unchecked(&mut buf[..]))
        .expect("a parsed CHAP packet emits");
    let again = Repr::parse(&Packet::new_checked(&buf[..]).expect("emitted CHAP checks"))
        .expect("emitted CHAP parses");
    assert_eq!(again, repr);
});

/// A Challenge or Response Value read as each MS-CHAP layout.
fn check_value(value: &[u8]) {
    if let Ok(c) = MsChapV1Challenge::parse(value) {
        assert_eq!(&c.as_bytes()[..], value);
    }
    if let Ok(c) = MsChapV2Challenge::parse(value) {
        assert_eq!(&c.as_bytes()[..], value);
    }
    if let Ok(r) = MsChapV1Response::parse(value) {
        assert_eq!(&r.to_bytes()[..], value);
        assert_eq!(
            r.use_nt_response(),
            r.flags == MsChapV1Response::FLAG_USE_NT_RESPONSE
        );
    }
    if let Ok(r) = MsChapV2Response::parse(value) {
        // Reserved is not kept, so compare the meaning, not the bytes.
        assert_eq!(MsChapV2Response::parse(&r.to_bytes()), Ok(r));
    }
    if let Ok(c) = MsChapV2ChangePassword::parse(value) {
        let mut body = [0u8; MsChapV2ChangePassword::DATA_LEN];
        assert_eq!(c.emit(&mut body), Ok(body.len()));
        assert_eq!(MsChapV2ChangePassword::parse(&body), Ok(c));
    }
}

/// A Success or Failure Message read as each MS-CHAP text.
fn check_text(text: &[u8]) {
    if let Ok(s) = MsChapV2Success::parse(text) {
        let mut buf = vec![0u8; s.buffer_len()];
        assert_eq!(s.emit(&mut buf), Ok(buf.len()));
        assert_eq!(
            MsChapV2Success::parse(&buf),
            Ok(s),
            "{:?}",
            String::from_utf8_lossy(text)
        );
    }
    check_failure::<8>(text);
    check_failure::<16>(text);
}

fn check_failure<const N: usize>(text: &[u8]) {
    if let Ok(f) = MsChapFailure::<N>::parse(text) {
        let mut buf = vec![0u8; f.buffer_len()];
        assert_eq!(f.emit(&mut buf), Ok(buf.len()));
        let again = MsChapFailure::<N>::parse(&buf);
        assert_eq!(again, Ok(f), "{:?}", String::from_utf8_lossy(text));
    }
}
