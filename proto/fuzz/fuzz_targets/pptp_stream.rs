//! PPTP control stream framing (`wire::pptp::StreamDecoder`): a stream cut into chunks at
//! fuzzer-chosen points and fed through `feed` + `next_message` yields exactly the items
//! that `decode` yields on the whole stream, and leaves the same partial message buffered.
//! Along the way: a fatal framing error comes once and last, nothing more is taken after it,
//! `buffered()` never exceeds one message, and every message parses back from its emission.
//!
//! Input: a control byte (low four bits: the number `n` of cuts; bit 4: repair every
//! header first, see `common/pptp_repair.rs`), `n` chunk lengths, then the stream.
#![no_main]

#[path = "common/pptp_repair.rs"]
mod pptp_repair;

use libfuzzer_sys::fuzz_target;
use xpptp_proto::wire::pptp::{DecodeError, MAX_MESSAGE_LEN, Message, StreamDecoder};

type Item = Result<Message, DecodeError>;

fuzz_target!(|input: &[u8]| {
    let Some((&control, rest)) = input.split_first() else {
        return;
    };
    let count = usize::from(control & 0x0f).min(rest.len());
    let (cuts, stream) = rest.split_at(count);
    let mut stream = stream.to_vec();
    if control & 0x10 != 0 {
        pptp_repair::repair(&mut stream);
    }
    let stream = &stream[..];

    let mut whole = StreamDecoder::new();
    let mut expected = Vec::new();
    let mut input = stream;
    while let Some(item) = whole.decode(&mut input) {
        expected.push(item);
    }
    assert!(input.is_empty());
    check_items(&expected, &whole);

    let mut chunked = StreamDecoder::new();
    let mut got = Vec::new();
    let mut rest = stream;
    for &cut in cuts {
        let (chunk, tail) = rest.split_at(usize::from(cut).min(rest.len()));
        rest = tail;
        feed_chunk(&mut chunked, chunk, &mut got);
    }
    feed_chunk(&mut chunked, rest, &mut got);

    assert_eq!(got, expected);
    assert_eq!(chunked.buffered(), whole.buffered());
    assert_eq!(chunked.framing_error(), whole.framing_error());
});

/// Feeds one chunk with the two-step API, collecting every item it completes.
fn feed_chunk(decoder: &mut StreamDecoder, mut chunk: &[u8], items: &mut Vec<Item>) {
    // Each round either consumes input or yields an item, and a chunk completes at most
    // len / 12 + 1 messages, so the loop is bounded.
    for _ in 0..chunk.len() + 4 {
        let taken = decoder.feed(chunk);
        assert!(taken <= chunk.len());
        chunk = &chunk[taken..];
        assert!(decoder.buffered() <= MAX_MESSAGE_LEN);
        match decoder.next_message() {
            Some(item) => items.push(item),
            None if chunk.is_empty() => return,
            None => panic!("decoder took nothing and produced nothing"),
        }
    }
    panic!("decoder loop did not end");
}

fn check_items(items: &[Item], decoder: &StreamDecoder) {
    for (i, item) in items.iter().enumerate() {
        match item {
            Ok(message) => {
                let mut buf = vec![0u8; message.buffer_len()];
                assert_eq!(message.emit(&mut buf), Ok(buf.len()));
                assert_eq!(Message::parse(&buf).as_ref(), Ok(message));
            }
            Err(err) if err.is_fatal() => {
                assert_eq!(i, items.len() - 1, "a fatal error must be the last item");
                assert_eq!(decoder.framing_error(), Some(err.error()));
                assert_eq!(decoder.buffered(), 0);
            }
            Err(err) => {
                let _ = (err.error(), err.to_string());
            }
        }
    }
    if decoder.framing_error().is_none() {
        assert!(decoder.buffered() < MAX_MESSAGE_LEN);
    }
}
