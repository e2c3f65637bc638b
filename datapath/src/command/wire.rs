//! Frames on a byte stream: one blocking read or write of a whole [`Frame`].

use std::io::{self, Read, Write};

use xpptp_proto::command::{DecodeError, EncodeError, Frame, HEADER_LEN, Header, frame_len};

/// Why no frame could be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the stream between frames.
    #[error("connection closed")]
    Closed,
    #[error("reading the command stream failed")]
    Io(#[source] io::Error),
    /// The header is wrong (magic, version, length): the stream cannot be resynchronised.
    #[error("bad frame header: {0}")]
    Framing(DecodeError),
    /// The header was fine and the whole frame was read, but its body does not decode: the
    /// stream is still in step, so the request can be refused and the next one read.
    #[error("undecodable {kind_code} frame (request {request_id}): {error}")]
    Body {
        kind_code: u16,
        request_id: u32,
        error: DecodeError,
    },
}

/// Why a frame could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("encoding a frame failed: {0}")]
    Encode(EncodeError),
    #[error("writing the command stream failed")]
    Io(#[source] io::Error),
}

/// Reads one whole frame. `buf` is reused between calls; it never grows beyond
/// [`HEADER_LEN`] + [`MAX_BODY_LEN`](xpptp_proto::command::MAX_BODY_LEN), because the
/// header is checked before the body is read.
pub fn read_frame(stream: &mut impl Read, buf: &mut Vec<u8>) -> Result<Frame, ReadError> {
    buf.clear();
    buf.resize(HEADER_LEN, 0);
    let mut filled = 0;
    while filled < HEADER_LEN {
        let Some(rest) = buf.get_mut(filled..) else {
            break;
        };
        match stream.read(rest) {
            Ok(0) if filled == 0 => return Err(ReadError::Closed),
            Ok(0) => {
                return Err(ReadError::Io(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed inside a frame header",
                )));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let total = match frame_len(buf) {
        Ok(Some(total)) => total,
        Ok(None) => return Err(ReadError::Closed),
        Err(e) => return Err(ReadError::Framing(e)),
    };
    buf.resize(total, 0);
    if let Some(body) = buf.get_mut(HEADER_LEN..) {
        stream.read_exact(body).map_err(ReadError::Io)?;
    }
    match Frame::decode(buf) {
        Ok(Some((frame, _))) => Ok(frame),
        Ok(None) => Err(ReadError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "a complete frame decoded as incomplete",
        ))),
        Err(error) => {
            let header = Header::new_unchecked(&buf[..]);
            Err(ReadError::Body {
                kind_code: u16::from(header.kind()),
                request_id: header.request_id(),
                error,
            })
        }
    }
}

/// Writes one whole frame.
pub fn write_frame(stream: &mut impl Write, frame: &Frame) -> Result<(), WriteError> {
    let mut out = Vec::new();
    frame.encode(&mut out).map_err(WriteError::Encode)?;
    stream.write_all(&out).map_err(WriteError::Io)?;
    stream.flush().map_err(WriteError::Io)
}
