//! PPTP control messages (`wire::pptp`): `ControlHeader` getters and `check_framing` on any
//! input, then `Message::parse`; a parsed message has the Length its type fixes, emits into
//! exactly `buffer_len()` bytes (and refuses one byte less) with the same header, and parses
//! back to itself. The `FixedStr` text fields keep their invariants (text before the first
//! NUL, `prefix` never past it, lossless raw round trip).
//!
//! Input: a control byte, then the message. With bit 0 set the header is repaired first
//! (Length, Message Type, Magic Cookie: see `common/pptp_repair.rs`), so that most inputs
//! reach the message parsers.
#![no_main]

#[path = "common/pptp_repair.rs"]
mod pptp_repair;

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::Error;
use xpptp_proto::wire::pptp::{
    ControlHeader, FixedStr, HEADER_LEN, MAGIC_COOKIE, MAX_MESSAGE_LEN, Message, MessageType,
    UnknownMessage,
};

fuzz_target!(|input: &[u8]| {
    let Some((&control, rest)) = input.split_first() else {
        return;
    };
    let mut data = rest.to_vec();
    if control & 1 != 0 {
        pptp_repair::repair(&mut data);
    }
    let data = &data[..];
    let framing = ControlHeader::new_unchecked(data).check_framing();
    if let Ok(header) = ControlHeader::new_checked(data) {
        let length = usize::from(header.length());
        assert!(length >= HEADER_LEN && length <= data.len());
        assert_eq!(header.body(), &data[HEADER_LEN..length]);
        let _ = (
            header.message_type(),
            header.magic_cookie(),
            header.reserved0(),
        );
        let kind = header.control_message_type();
        let _ = (kind.message_len(), kind.name(), kind.to_string());
        if let Ok(framed) = framing {
            assert_eq!(framed, length);
            assert!(framed <= MAX_MESSAGE_LEN);
            assert_eq!(header.magic_cookie(), MAGIC_COOKIE);
        }
    }

    let Ok(message) = Message::parse(data) else {
        return;
    };
    let header = ControlHeader::new_checked(data).expect("a parsed message checks");
    let length = framing.expect("a parsed message is framed");
    assert_eq!(header.message_type(), MessageType::Control);
    assert_eq!(message.message_type(), header.control_message_type());
    assert_eq!(message.buffer_len(), length);
    if let Some(fixed) = message.message_type().message_len() {
        assert_eq!(fixed, length);
    }
    check_texts(&message);
    let _ = format!("{message:?}");

    let mut buf = vec![0u8; message.buffer_len()];
    assert_eq!(
        message.emit(&mut buf[..length - 1]),
        Err(Error::BufferTooSmall)
    );
    assert_eq!(message.emit(&mut buf), Ok(length));
    // Length, Message Type, Magic Cookie and Control Message Type are copied; Reserved0 is 0.
    assert_eq!(buf[..10], data[..10]);
    assert_eq!(buf[10..12], [0, 0]);
    assert_eq!(Message::parse(&buf), Ok(message));
});

fn check_texts(message: &Message) {
    match message {
        Message::StartControlConnectionRequest(m) => {
            check_text(&m.host_name, 0);
            check_text(&m.vendor, 0);
        }
        Message::StartControlConnectionReply(m) => {
            check_text(&m.host_name, 0);
            check_text(&m.vendor, 0);
        }
        Message::OutgoingCallRequest(m) => {
            check_text(&m.phone_number, m.phone_number_len);
            assert_eq!(
                m.phone_number_digits(),
                m.phone_number.prefix(m.phone_number_len)
            );
            check_text(&m.subaddress, 0);
        }
        Message::IncomingCallRequest(m) => {
            check_text(&m.dialed_number, m.dialed_number_len);
            check_text(&m.dialing_number, m.dialing_number_len);
            assert_eq!(
                m.dialed_number_digits(),
                m.dialed_number.prefix(m.dialed_number_len)
            );
            assert_eq!(
                m.dialing_number_digits(),
                m.dialing_number.prefix(m.dialing_number_len)
            );
            check_text(&m.subaddress, 0);
        }
        Message::CallDisconnectNotify(m) => check_text(&m.call_statistics, 0),
        Message::Unknown(m) => {
            assert!(m.body().len() <= UnknownMessage::MAX_BODY_LEN);
            let _ = m.control_message_type();
        }
        _ => {}
    }
}

/// Invariants of a received fixed-size text field, cut by `len` where the message has a
/// length field for it.
fn check_text<const N: usize>(text: &FixedStr<N>, len: u16) {
    let bytes = text.as_bytes();
    assert!(bytes.len() <= N && !bytes.contains(&0));
    assert_eq!(&text.raw()[..bytes.len()], bytes);
    assert_eq!(text.len(), bytes.len());
    assert_eq!(text.is_empty(), bytes.is_empty());
    let prefix = text.prefix(len);
    assert!(bytes.starts_with(prefix));
    assert!(prefix.len() == usize::from(len) || prefix == bytes);
    let lossy = text.as_str_lossy();
    assert!(bytes.starts_with(lossy.as_bytes()));
    if let Some(s) = text.as_str() {
        assert_eq!(s, lossy);
    }
    let _ = text.to_string();
    assert_eq!(FixedStr::from_raw(*text.raw()), *text);
    assert_eq!(FixedStr::<N>::from_bytes(bytes).as_bytes(), bytes);
}
