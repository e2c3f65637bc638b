//! Cutting PPTP control messages out of the TCP byte stream.
//!
//! TCP delivers the control connection as a byte stream: one read may hold part of a
//! message, several messages, or the end of one and the start of the next. The Length
//! field frames each message, and the Magic Cookie checks that framing is still right
//! (RFC 2637 section 1.4). Once framing is lost nothing later on the stream can be trusted.

use core::fmt;

use super::{ControlHeader, ControlMessageType, HEADER_LEN, MAX_MESSAGE_LEN, Message, MessageType};
use crate::wire::Error;

/// Why the stream decoder produced no message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// Framing is lost: a Length below 12 or above 220, or a bad Magic Cookie. **Fatal**:
    /// close the TCP connection (no reply can be trusted to reach a peer that is out of
    /// step). The decoder reports this once, then yields nothing more and discards all
    /// input.
    Framing(Error),
    /// One correctly framed message was cut out of the stream but could not be parsed: a
    /// known Control Message Type with the wrong Length, a management message, or an
    /// unknown PPTP Message Type. Not fatal: the stream goes on with the next message.
    /// The control connection may log it, answer it (General Error, Bad-Format) or close.
    Rejected(RejectedMessage),
}

impl DecodeError {
    /// Whether the connection must be closed.
    pub const fn is_fatal(&self) -> bool {
        matches!(self, DecodeError::Framing(_))
    }

    /// The underlying parse error.
    pub const fn error(&self) -> Error {
        match self {
            DecodeError::Framing(error) => *error,
            DecodeError::Rejected(rejected) => rejected.error,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Framing(error) => write!(f, "PPTP control stream framing lost: {error}"),
            DecodeError::Rejected(rejected) => write!(
                f,
                "PPTP {} of length {} rejected: {}",
                rejected.control_message_type, rejected.length, rejected.error
            ),
        }
    }
}

impl core::error::Error for DecodeError {}

/// The header of a message the decoder cut out but could not parse, for logs and replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RejectedMessage {
    /// Length, as received (12..=220).
    pub length: u16,
    /// PPTP Message Type, as received.
    pub message_type: MessageType,
    /// Control Message Type, as received.
    pub control_message_type: ControlMessageType,
    /// Why it was rejected.
    pub error: Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Framing was lost; `reported` once `next_message` has returned the error.
    Broken {
        error: Error,
        reported: bool,
    },
}

/// Cuts PPTP control messages out of a TCP byte stream, whatever the segmentation.
///
/// It holds at most one message ([`MAX_MESSAGE_LEN`] octets) in a fixed buffer and never
/// allocates. The usual loop, after each TCP read:
///
/// ```
/// # use xpptp_proto::wire::pptp::StreamDecoder;
/// # let mut decoder = StreamDecoder::new();
/// # let read_bytes: &[u8] = &[];
/// let mut input = read_bytes;
/// while let Some(item) = decoder.decode(&mut input) {
///     match item {
///         Ok(message) => { /* handle it */ }
///         Err(err) if err.is_fatal() => { /* close the connection */ break }
///         Err(err) => { /* log or answer; the stream goes on */ }
///     }
/// }
/// // `input` is empty unless the loop stopped early; the decoder keeps any partial message.
/// ```
///
/// [`feed`](Self::feed) and [`next_message`](Self::next_message) are the same thing in two
/// steps. At end of stream, [`buffered`](Self::buffered) > 0 means the peer closed in the
/// middle of a message.
#[derive(Clone)]
pub struct StreamDecoder {
    /// `buf[..len]` is the start of the current message.
    buf: [u8; MAX_MESSAGE_LEN],
    len: usize,
    state: State,
}

impl Default for StreamDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StreamDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamDecoder")
            .field("buffered", &self.len)
            .field("state", &self.state)
            .finish()
    }
}

impl StreamDecoder {
    /// A decoder at the start of a stream.
    pub const fn new() -> Self {
        StreamDecoder {
            buf: [0; MAX_MESSAGE_LEN],
            len: 0,
            state: State::Open,
        }
    }

    /// Takes octets from the front of `data` and returns how many it took.
    ///
    /// It takes only up to the end of the current message, so after a call either all of
    /// `data` was taken, or a complete message (or a framing error) waits for
    /// [`next_message`](Self::next_message); while one waits, `feed` takes nothing. Once
    /// framing is lost, `feed` takes and discards everything.
    pub fn feed(&mut self, data: &[u8]) -> usize {
        if self.state != State::Open {
            return data.len();
        }
        let mut taken = 0;
        loop {
            let target = if self.len < HEADER_LEN {
                HEADER_LEN
            } else {
                match self.header().check_framing() {
                    Ok(len) => len,
                    Err(error) => {
                        self.state = State::Broken {
                            error,
                            reported: false,
                        };
                        self.len = 0;
                        return data.len();
                    }
                }
            };
            // Invariant: self.len <= target <= MAX_MESSAGE_LEN == buf.len(), and
            // taken <= data.len(), so every range below is in bounds.
            let rest = data.get(taken..).unwrap_or_default();
            let wanted = target.saturating_sub(self.len);
            let n = wanted.min(rest.len());
            if n == 0 {
                return taken;
            }
            if let (Some(dst), Some(src)) =
                (self.buf.get_mut(self.len..self.len + n), rest.get(..n))
            {
                dst.copy_from_slice(src);
            }
            self.len += n;
            taken += n;
        }
    }

    /// The next complete message, if one is buffered.
    ///
    /// `None` means more input is needed (or the stream is broken and its error was
    /// already returned). `Some(Err(e))` with `e.is_fatal()` is returned exactly once.
    pub fn next_message(&mut self) -> Option<Result<Message, DecodeError>> {
        match self.state {
            State::Open => {}
            State::Broken {
                error,
                reported: false,
            } => {
                self.state = State::Broken {
                    error,
                    reported: true,
                };
                return Some(Err(DecodeError::Framing(error)));
            }
            State::Broken { reported: true, .. } => return None,
        }
        if self.len < HEADER_LEN {
            return None;
        }
        let header = self.header();
        // `feed` has checked framing before taking anything past the header.
        let msg_len = header.check_framing().ok()?;
        if self.len < msg_len {
            return None;
        }
        let rejected = RejectedMessage {
            length: header.length(),
            message_type: header.message_type(),
            control_message_type: header.control_message_type(),
            error: Error::Truncated,
        };
        let result = Message::parse(self.buf.get(..msg_len).unwrap_or_default())
            .map_err(|error| DecodeError::Rejected(RejectedMessage { error, ..rejected }));
        self.len = 0;
        Some(result)
    }

    /// Feeds from the front of `*input`, advances it past what was taken, and returns the
    /// next complete message. `None` once `*input` is exhausted with no complete message
    /// left. See the type's docs for the loop.
    pub fn decode(&mut self, input: &mut &[u8]) -> Option<Result<Message, DecodeError>> {
        let taken = self.feed(input);
        *input = input.get(taken..).unwrap_or_default();
        self.next_message()
    }

    /// Octets held of a message not yet complete (or complete and not yet taken).
    pub fn buffered(&self) -> usize {
        self.len
    }

    /// The framing error, once framing is lost; then the connection must be closed.
    pub fn framing_error(&self) -> Option<Error> {
        match self.state {
            State::Open => None,
            State::Broken { error, .. } => Some(error),
        }
    }

    /// The header of the current message; needs `len >= HEADER_LEN`.
    fn header(&self) -> ControlHeader<&[u8]> {
        ControlHeader::new_unchecked(self.buf.get(..HEADER_LEN).unwrap_or_default())
    }
}

#[cfg(test)]
mod test {
    use super::super::message::test::{
        arb_message, capture_ccrq, capture_ocrp, capture_ocrq, capture_sccrp, capture_sccrq, h,
        literals,
    };
    use super::super::{EchoRequest, SetLinkInfo, UnknownMessage};
    use super::*;
    use crate::testing::reference::pptp as capture;
    use proptest::prelude::*;

    type Item = Result<Message, DecodeError>;

    /// Decodes `stream` delivered in the given chunks.
    fn decode_chunks<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<Item> {
        let mut decoder = StreamDecoder::new();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut input = chunk;
            while let Some(item) = decoder.decode(&mut input) {
                out.push(item);
            }
            assert!(input.is_empty());
        }
        out
    }

    /// The capture's control stream, both directions in frame order.
    fn capture_stream() -> (Vec<u8>, Vec<Item>) {
        let bytes = h(&[
            capture::SCCRQ,
            capture::SCCRP,
            capture::OCRQ,
            capture::OCRP,
            capture::CCRQ,
        ]);
        let messages = vec![
            Ok(capture_sccrq()),
            Ok(capture_sccrp()),
            Ok(capture_ocrq()),
            Ok(capture_ocrp()),
            Ok(capture_ccrq()),
        ];
        (bytes, messages)
    }

    #[test]
    fn whole_stream_in_one_chunk() {
        let (bytes, expected) = capture_stream();
        assert_eq!(decode_chunks([&bytes[..]]), expected);
    }

    #[test]
    fn byte_by_byte() {
        let (bytes, expected) = capture_stream();
        assert_eq!(decode_chunks(bytes.chunks(1)), expected);
        let all: Vec<u8> = literals().into_iter().flat_map(|(b, _)| b).collect();
        let expected: Vec<Item> = literals().into_iter().map(|(_, m)| Ok(m)).collect();
        assert_eq!(decode_chunks(all.chunks(1)), expected);
    }

    #[test]
    fn split_at_every_boundary() {
        let (bytes, expected) = capture_stream();
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            assert_eq!(decode_chunks([a, b]), expected, "split at {at}");
        }
    }

    #[test]
    fn longest_message_split_at_every_pair_of_boundaries() {
        let (bytes, message) = literals().swap_remove(8);
        assert_eq!(bytes.len(), MAX_MESSAGE_LEN);
        for i in 0..=bytes.len() {
            for j in i..=bytes.len() {
                let chunks = [&bytes[..i], &bytes[i..j], &bytes[j..]];
                assert_eq!(decode_chunks(chunks), vec![Ok(message)], "{i} {j}");
            }
        }
    }

    #[test]
    fn feed_stops_at_message_end() {
        let (bytes, _) = capture_stream();
        let mut decoder = StreamDecoder::new();
        assert_eq!(decoder.feed(&bytes), 156);
        assert_eq!(decoder.buffered(), 156);
        // A complete message waits: nothing more is taken.
        assert_eq!(decoder.feed(&bytes[156..]), 0);
        assert_eq!(decoder.next_message(), Some(Ok(capture_sccrq())));
        assert_eq!(decoder.buffered(), 0);
        assert_eq!(decoder.next_message(), None);
        assert_eq!(decoder.feed(&bytes[156..160]), 4);
        assert_eq!(decoder.next_message(), None);
        assert_eq!(decoder.buffered(), 4);
    }

    #[test]
    fn bad_messages_do_not_kill_the_stream() {
        let echo = Message::from(EchoRequest { identifier: 7 });
        let sli = Message::from(SetLinkInfo {
            peer_call_id: 1,
            send_accm: 0,
            recv_accm: 0,
        });
        let bytes = h(&[
            "0010 0001 1a2b3c4d 0005 0000 00000007",
            // Echo-Request with Length 20.
            "0014 0001 1a2b3c4d 0005 0000 00000007 00000000",
            // Management message.
            "0010 0002 1a2b3c4d 0005 0000 00000007",
            // Unknown control message type 99: a message, not an error.
            "000e 0001 1a2b3c4d 0063 0000 abcd",
            "0018 0001 1a2b3c4d 000f 0000 0001 0000 00000000 00000000",
        ]);
        let expected = vec![
            Ok(echo),
            Err(DecodeError::Rejected(RejectedMessage {
                length: 20,
                message_type: MessageType::Control,
                control_message_type: ControlMessageType::EchoRequest,
                error: Error::Malformed("PPTP length does not match control message type"),
            })),
            Err(DecodeError::Rejected(RejectedMessage {
                length: 16,
                message_type: MessageType::Management,
                control_message_type: ControlMessageType::EchoRequest,
                error: Error::Unsupported("PPTP management message"),
            })),
            Ok(Message::Unknown(
                UnknownMessage::new(99, &[0xab, 0xcd]).unwrap(),
            )),
            Ok(sli),
        ];
        assert_eq!(decode_chunks([&bytes[..]]), expected);
        assert_eq!(decode_chunks(bytes.chunks(1)), expected);
        assert!(!expected[1].unwrap_err().is_fatal());
    }

    fn assert_fatal_after_echo(bad: &str, error: Error) {
        let bytes = h(&["0010 0001 1a2b3c4d 0005 0000 00000007", bad, capture::CCRQ]);
        for chunk in [1, 7, 16, 17, bytes.len()] {
            let mut decoder = StreamDecoder::new();
            let mut out = Vec::new();
            for piece in bytes.chunks(chunk) {
                let mut input = piece;
                while let Some(item) = decoder.decode(&mut input) {
                    out.push(item);
                }
                assert!(input.is_empty(), "a broken decoder discards input");
            }
            assert_eq!(
                out,
                vec![
                    Ok(Message::from(EchoRequest { identifier: 7 })),
                    Err(DecodeError::Framing(error)),
                ],
                "chunk {chunk}"
            );
            assert!(out[1].unwrap_err().is_fatal());
            assert_eq!(decoder.framing_error(), Some(error));
            assert_eq!(decoder.next_message(), None);
            assert_eq!(decoder.feed(&bytes), bytes.len());
            assert_eq!(decoder.next_message(), None);
            assert_eq!(decoder.buffered(), 0);
        }
    }

    #[test]
    fn framing_errors_are_fatal() {
        let too_short = Error::Malformed("PPTP length below header size");
        let too_long = Error::Malformed("PPTP length above longest message");
        let cookie = Error::Malformed("PPTP magic cookie");
        assert_fatal_after_echo("000b 0001 1a2b3c4d 0005 0000", too_short);
        assert_fatal_after_echo("0000 0001 1a2b3c4d 0005 0000", too_short);
        assert_fatal_after_echo("00dd 0001 1a2b3c4d 0005 0000", too_long);
        assert_fatal_after_echo("ffff 0001 1a2b3c4d 0005 0000", too_long);
        assert_fatal_after_echo("0010 0001 4d3c2b1a 0005 0000 00000007", cookie);
    }

    #[test]
    fn framing_error_found_from_the_header_alone() {
        // Length 200 announced, bad cookie: detected without waiting for 200 octets.
        let bytes = h(&["00c8 0001 00000000 0001 0000"]);
        let mut decoder = StreamDecoder::new();
        let mut input = &bytes[..];
        assert_eq!(
            decoder.decode(&mut input),
            Some(Err(DecodeError::Framing(Error::Malformed(
                "PPTP magic cookie"
            ))))
        );
        assert_eq!(decoder.decode(&mut input), None);
    }

    #[test]
    fn partial_message_stays_buffered() {
        let bytes = h(&[capture::OCRP]);
        let mut decoder = StreamDecoder::new();
        let mut input = &bytes[..31];
        assert_eq!(decoder.decode(&mut input), None);
        assert!(input.is_empty());
        assert_eq!(decoder.buffered(), 31);
        let mut input = &bytes[31..];
        assert_eq!(decoder.decode(&mut input), Some(Ok(capture_ocrp())));
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn error_display() {
        let fatal = DecodeError::Framing(Error::Malformed("PPTP magic cookie"));
        assert_eq!(
            fatal.to_string(),
            "PPTP control stream framing lost: malformed: PPTP magic cookie"
        );
        let rejected = DecodeError::Rejected(RejectedMessage {
            length: 20,
            message_type: MessageType::Control,
            control_message_type: ControlMessageType::EchoRequest,
            error: Error::Malformed("x"),
        });
        assert_eq!(
            rejected.to_string(),
            "PPTP Echo-Request of length 20 rejected: malformed: x"
        );
        assert_eq!(rejected.error(), Error::Malformed("x"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random messages, emitted back to back, cut into random chunks: the same
        /// messages come out, in order.
        #[test]
        fn random_chunks(
            messages in proptest::collection::vec(arb_message(), 1..8),
            sizes in proptest::collection::vec(1usize..300, 1..20),
        ) {
            let mut bytes = Vec::new();
            for message in &messages {
                let mut buf = [0u8; MAX_MESSAGE_LEN];
                let n = message.emit(&mut buf).unwrap();
                bytes.extend_from_slice(&buf[..n]);
            }
            let mut chunks = Vec::new();
            let mut rest = &bytes[..];
            for size in sizes.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (chunk, tail) = rest.split_at((*size).min(rest.len()));
                chunks.push(chunk);
                rest = tail;
            }
            let expected: Vec<Item> = messages.into_iter().map(Ok).collect();
            prop_assert_eq!(decode_chunks(chunks), expected.clone());
            prop_assert_eq!(decode_chunks(bytes.chunks(1)), expected.clone());
            prop_assert_eq!(decode_chunks([&bytes[..]]), expected);
        }

        /// Garbage never panics, every octet is accounted for, and a fatal error is last.
        #[test]
        fn arbitrary_bytes(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            size in 1usize..64,
        ) {
            let out = decode_chunks(bytes.chunks(size));
            if let Some(pos) = out.iter().position(|item| matches!(item, Err(e) if e.is_fatal())) {
                prop_assert_eq!(pos + 1, out.len());
            }
            prop_assert_eq!(decode_chunks([&bytes[..]]), out);
        }
    }
}
