//! The framing shared by the datapath's [command interface](crate::command) and the control
//! daemon's [socket](crate::control_api): a 16-octet [`Header`] then a postcard body of
//! `length` octets.
//!
//! ```text
//!  0      4        6       8            12          16
//!  | magic | version | kind | request id | length | body (postcard) ...
//!  4 octets  u16 BE   u16 BE   u32 BE      u32 BE
//! ```
//!
//! What differs between the two interfaces (magic, version, kinds, messages, body limit) is
//! a [`Protocol`]; each module names its instances with type aliases (`command::Frame`,
//! `control_api::Header`, ...), so the wire format is written once.

use core::fmt;
use core::marker::PhantomData;

use serde::{Deserialize, Serialize};

/// Octets of the [`Header`].
pub const HEADER_LEN: usize = 16;

mod field {
    use core::ops::Range;

    pub const MAGIC: Range<usize> = 0..4;
    pub const VERSION: Range<usize> = 4..6;
    pub const KIND: Range<usize> = 6..8;
    pub const REQUEST_ID: Range<usize> = 8..12;
    pub const LENGTH: Range<usize> = 12..16;
}

/// One interface framed this way: its constants, kinds and messages.
pub trait Protocol: fmt::Debug + Clone + Copy + PartialEq + Eq + 'static {
    /// First four octets of every frame.
    const MAGIC: [u8; 4];
    /// The version of every body's shape.
    const VERSION: u16;
    /// Largest body accepted (and encoded).
    const MAX_BODY_LEN: usize;
    /// The interface's name in error messages ("command interface").
    const NAME: &'static str;
    /// The header's body type.
    type Kind: fmt::Debug + Clone + Copy + PartialEq + Eq + From<u16> + Into<u16>;
    /// Every message, by kind.
    type Message;

    /// The header's kind for this message.
    fn kind(message: &Self::Message) -> Self::Kind;
    /// Appends the message's body (not the header) to `out`.
    fn encode_body(message: &Self::Message, out: &mut Vec<u8>) -> Result<(), postcard::Error>;
    /// Decodes a whole body of this kind.
    fn decode_body(kind: Self::Kind, body: &[u8]) -> Result<Self::Message, DecodeError<Self>>;
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError<P: Protocol> {
    /// The first four octets are not the protocol's magic: not our protocol, or a
    /// desynchronised stream (close the connection).
    BadMagic([u8; 4]),
    /// Another version of the interface.
    UnsupportedVersion {
        /// What the frame says.
        got: u16,
        /// What this build speaks.
        supported: u16,
    },
    /// The body is longer than the protocol's limit.
    Oversize {
        /// What the header says.
        length: u32,
        /// The limit.
        max: usize,
    },
    /// A kind this build does not know (a newer peer): the frame can be skipped.
    UnknownKind(u16),
    /// The body does not decode as its kind says.
    Malformed {
        /// The frame's kind.
        kind: P::Kind,
        /// postcard's error.
        error: postcard::Error,
    },
    /// The body decoded with octets left over.
    TrailingBytes {
        /// The frame's kind.
        kind: P::Kind,
        /// How many.
        extra: usize,
    },
}

impl<P: Protocol> fmt::Display for DecodeError<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::BadMagic(m) => write!(f, "bad magic {m:02x?}"),
            DecodeError::UnsupportedVersion { got, supported } => {
                write!(
                    f,
                    "{} version {got}, this build speaks {supported}",
                    P::NAME
                )
            }
            DecodeError::Oversize { length, max } => {
                write!(f, "body of {length} octets, at most {max} accepted")
            }
            DecodeError::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            DecodeError::Malformed { kind, error } => write!(f, "malformed {kind:?}: {error}"),
            DecodeError::TrailingBytes { kind, extra } => {
                write!(f, "{kind:?} with {extra} octets left over")
            }
        }
    }
}

impl<P: Protocol> std::error::Error for DecodeError<P> {}

/// Why a frame could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// The body would exceed the protocol's limit (split a listing into pages).
    Oversize {
        /// Its length.
        length: usize,
        /// The limit.
        max: usize,
    },
    /// postcard refused the value (not expected for these types).
    Serialize(postcard::Error),
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::Oversize { length, max } => {
                write!(f, "body of {length} octets, at most {max} allowed")
            }
            EncodeError::Serialize(e) => write!(f, "cannot encode: {e}"),
        }
    }
}

impl std::error::Error for EncodeError {}

/// A view of a frame header (smoltcp style).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>, P: Protocol> {
    buffer: T,
    protocol: PhantomData<P>,
}

impl<T: AsRef<[u8]>, P: Protocol> Header<T, P> {
    /// A view without checking the length: getters panic on a buffer under [`HEADER_LEN`].
    pub const fn new_unchecked(buffer: T) -> Header<T, P> {
        Header {
            buffer,
            protocol: PhantomData,
        }
    }

    /// A view of a buffer of at least [`HEADER_LEN`] octets (`None` if shorter): no getter
    /// panics afterwards. Says nothing of the values: see [`Header::check`].
    pub fn new_checked(buffer: T) -> Option<Header<T, P>> {
        let header = Header::new_unchecked(buffer);
        (header.buffer.as_ref().len() >= HEADER_LEN).then_some(header)
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn array<const N: usize>(&self, range: core::ops::Range<usize>) -> [u8; N] {
        let mut out = [0; N];
        if let Some(bytes) = self.buffer.as_ref().get(range) {
            out.copy_from_slice(bytes);
        }
        out
    }

    /// The magic.
    pub fn magic(&self) -> [u8; 4] {
        self.array(field::MAGIC)
    }

    /// The version.
    pub fn version(&self) -> u16 {
        u16::from_be_bytes(self.array(field::VERSION))
    }

    /// The body's kind.
    pub fn kind(&self) -> P::Kind {
        P::Kind::from(u16::from_be_bytes(self.array(field::KIND)))
    }

    /// The request id (0 for unsolicited frames).
    pub fn request_id(&self) -> u32 {
        u32::from_be_bytes(self.array(field::REQUEST_ID))
    }

    /// The body's length.
    pub fn length(&self) -> u32 {
        u32::from_be_bytes(self.array(field::LENGTH))
    }

    /// Checks magic, version and length; returns the body length.
    pub fn check(&self) -> Result<usize, DecodeError<P>> {
        if self.magic() != P::MAGIC {
            return Err(DecodeError::BadMagic(self.magic()));
        }
        if self.version() != P::VERSION {
            return Err(DecodeError::UnsupportedVersion {
                got: self.version(),
                supported: P::VERSION,
            });
        }
        let length = self.length();
        match usize::try_from(length) {
            Ok(n) if n <= P::MAX_BODY_LEN => Ok(n),
            _ => Err(DecodeError::Oversize {
                length,
                max: P::MAX_BODY_LEN,
            }),
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>, P: Protocol> Header<T, P> {
    fn set(&mut self, range: core::ops::Range<usize>, value: &[u8]) {
        if let Some(bytes) = self.buffer.as_mut().get_mut(range) {
            bytes.copy_from_slice(value);
        }
    }

    /// Sets the magic.
    pub fn set_magic(&mut self, value: [u8; 4]) {
        self.set(field::MAGIC, &value);
    }

    /// Sets the version.
    pub fn set_version(&mut self, value: u16) {
        self.set(field::VERSION, &value.to_be_bytes());
    }

    /// Sets the kind.
    pub fn set_kind(&mut self, value: P::Kind) {
        self.set(field::KIND, &value.into().to_be_bytes());
    }

    /// Sets the request id.
    pub fn set_request_id(&mut self, value: u32) {
        self.set(field::REQUEST_ID, &value.to_be_bytes());
    }

    /// Sets the body length.
    pub fn set_length(&mut self, value: u32) {
        self.set(field::LENGTH, &value.to_be_bytes());
    }
}

/// How many octets the frame that starts with this header has in all (header included),
/// once its magic, version and length are checked. `Ok(None)` until [`HEADER_LEN`] octets
/// are there.
pub fn frame_len<P: Protocol>(bytes: &[u8]) -> Result<Option<usize>, DecodeError<P>> {
    let Some(header) = Header::<_, P>::new_checked(bytes) else {
        return Ok(None);
    };
    Ok(Some(header.check()?.saturating_add(HEADER_LEN)))
}

/// One frame: a message and its request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame<P: Protocol> {
    /// Chosen by the requester and echoed in the reply; 0 for unsolicited frames.
    pub request_id: u32,
    /// The message.
    pub message: P::Message,
}

impl<P: Protocol> Frame<P> {
    /// A frame.
    pub fn new(request_id: u32, message: P::Message) -> Frame<P> {
        Frame {
            request_id,
            message,
        }
    }

    /// Appends the frame (header and body) to `out`. On error `out` is as it was.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER_LEN]);
        let result = P::encode_body(&self.message, out);
        let length = out.len().saturating_sub(start + HEADER_LEN);
        let length = match (result, u32::try_from(length)) {
            (Ok(()), Ok(n)) if length <= P::MAX_BODY_LEN => n,
            (Err(e), _) => {
                out.truncate(start);
                return Err(EncodeError::Serialize(e));
            }
            _ => {
                out.truncate(start);
                return Err(EncodeError::Oversize {
                    length,
                    max: P::MAX_BODY_LEN,
                });
            }
        };
        if let Some(bytes) = out.get_mut(start..start + HEADER_LEN) {
            let mut header = Header::<_, P>::new_unchecked(bytes);
            header.set_magic(P::MAGIC);
            header.set_version(P::VERSION);
            header.set_kind(P::kind(&self.message));
            header.set_request_id(self.request_id);
            header.set_length(length);
        }
        Ok(())
    }

    /// The frame as bytes.
    pub fn to_vec(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Decodes the frame at the start of `bytes`: `Ok(None)` if the frame is not complete
    /// yet, else the frame and how many octets it took (the rest is the next frame).
    pub fn decode(bytes: &[u8]) -> Result<Option<(Frame<P>, usize)>, DecodeError<P>> {
        let Some(header) = Header::<_, P>::new_checked(bytes) else {
            return Ok(None);
        };
        let length = header.check()?;
        let total = HEADER_LEN.saturating_add(length);
        let Some(body) = bytes.get(HEADER_LEN..total) else {
            return Ok(None);
        };
        let message = P::decode_body(header.kind(), body)?;
        Ok(Some((
            Frame {
                request_id: header.request_id(),
                message,
            },
            total,
        )))
    }
}

/// Appends `value`'s postcard encoding to `out` (for [`Protocol::encode_body`]).
pub fn body<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), postcard::Error> {
    postcard::to_extend(value, core::mem::take(out)).map(|v| *out = v)
}

/// Decodes a whole body of `kind` as a `T` (for [`Protocol::decode_body`]): octets left
/// over are an error.
pub fn parse<'a, P: Protocol, T: Deserialize<'a>>(
    kind: P::Kind,
    body: &'a [u8],
) -> Result<T, DecodeError<P>> {
    let (value, rest) =
        postcard::take_from_bytes(body).map_err(|error| DecodeError::Malformed { kind, error })?;
    if rest.is_empty() {
        Ok(value)
    } else {
        Err(DecodeError::TrailingBytes {
            kind,
            extra: rest.len(),
        })
    }
}

/// `message` if the body of `kind` is empty, as kinds without a body must be (for
/// [`Protocol::decode_body`]).
pub fn empty<P: Protocol>(
    kind: P::Kind,
    body: &[u8],
    message: P::Message,
) -> Result<P::Message, DecodeError<P>> {
    if body.is_empty() {
        Ok(message)
    } else {
        Err(DecodeError::TrailingBytes {
            kind,
            extra: body.len(),
        })
    }
}
