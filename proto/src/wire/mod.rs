//! Wire formats: one header per file, each a zero-copy checked view plus a `Repr`.
//!
//! The shape follows smoltcp's `wire` module:
//!
//! * `Packet<T: AsRef<[u8]>>` (or a more specific name) is a view over a buffer the caller
//!   owns. `new_unchecked` wraps, `check_len` verifies that every fixed field and every length
//!   the header announces lies inside the buffer, and `new_checked` does both; after
//!   `new_checked` succeeds no getter can panic. Setters live in an
//!   `impl<T: AsRef<[u8]> + AsMut<[u8]>>` block.
//! * Field positions are named byte ranges in a private `mod field`.
//! * `Repr` is the parsed, owned-or-borrowed meaning: `Repr::parse(&packet)`,
//!   `repr.buffer_len()`, `repr.emit(&mut packet)`. Emitting never allocates; the caller sizes
//!   the buffer with `buffer_len()`.
//! * Protocol numbers, codes and option types are `enum_with_unknown!` enums: unknown values
//!   are kept, never an error, so the layer above can reject them with the original bytes.
//! * Variable-length option lists are walked one option at a time by an iterator that yields
//!   `Result<Option>`; a malformed option ends the walk with an error instead of a panic.
//!
//! Parsers return the small [`Error`] below; anything richer belongs to the layer above.

pub mod ccp;
pub mod chap;
pub mod cp;
pub mod gre;
pub mod ipcp;
pub mod ipv4;
pub mod lcp;
pub mod mppe;
pub mod pap;
pub mod ppp;
pub mod pptp;
pub mod tcp;

use core::fmt;

/// Why bytes could not be read as the format they claim to be.
///
/// Small and `Copy` so the fast path can count it; the `&'static str` names the field or rule
/// that failed, for logs and drop reasons.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer ends before a fixed field, or before the length a header announces.
    Truncated,
    /// A field holds a value the format forbids (bad version, bad magic cookie, a length
    /// smaller than its header, ...). The string names the field.
    Malformed(&'static str),
    /// Well formed, but a variant this implementation does not handle (for example GRE with
    /// routing present). The string names what.
    Unsupported(&'static str),
    /// The output buffer given to `emit` is too small.
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated"),
            Error::Malformed(what) => write!(f, "malformed: {what}"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
            Error::BufferTooSmall => f.write_str("output buffer too small"),
        }
    }
}

impl core::error::Error for Error {}

/// Result of every parser in this module.
pub type Result<T> = core::result::Result<T, Error>;
