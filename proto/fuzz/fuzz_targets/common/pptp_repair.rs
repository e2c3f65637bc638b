//! Makes random bytes look like a PPTP control stream, for the fuzz targets of
//! `wire::pptp`: random Length and Magic Cookie fields almost never frame.

use xpptp_proto::wire::pptp::{
    ControlHeader, HEADER_LEN, MAGIC_COOKIE, MAX_MESSAGE_LEN, MessageType,
};

/// Walks `stream` message by message and rewrites each header: Length set to its Control
/// Message Type's fixed length (a sane one from the old Length octet for unknown types),
/// PPTP Message Type 1 and the Magic Cookie. The stream is zero-padded to end on a whole
/// message, so every message in it is framed and, for known types, parses.
pub fn repair(stream: &mut Vec<u8>) {
    let mut at = 0;
    while at < stream.len() {
        if stream.len() < at + HEADER_LEN {
            stream.resize(at + HEADER_LEN, 0);
        }
        let header = ControlHeader::new_unchecked(&stream[at..]);
        let len = header
            .control_message_type()
            .message_len()
            .unwrap_or_else(|| usize::from(stream[at + 1]).clamp(HEADER_LEN, MAX_MESSAGE_LEN));
        let mut header = ControlHeader::new_unchecked(&mut stream[at..]);
        header.set_length(len as u16);
        header.set_message_type(MessageType::Control);
        header.set_magic_cookie(MAGIC_COOKIE);
        at += len;
    }
    stream.resize(at, 0);
}
