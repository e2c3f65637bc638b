//! Fixed-size, NUL-padded text fields of PPTP control messages.
//!
//! RFC 2637 section 2 carries host names, vendor strings, phone numbers, subaddresses and call
//! statistics as fixed 64- or 128-octet fields: the text, then octets of value 0 up to the end
//! of the field. A name of exactly the field's size has no terminating NUL at all.

use core::fmt;

/// A fixed `N`-octet text field, stored exactly as it is on the wire.
///
/// The text is everything before the first NUL (or all `N` octets when there is none). The
/// octets after that NUL are kept as received, so that parse then emit gives back the same
/// bytes; equality compares all `N` octets. Compare the text with [`FixedStr::as_bytes`] or
/// with `==` against a `str`.
///
/// The bytes are not guaranteed to be UTF-8 (peers send whatever their locale holds):
/// [`FixedStr::as_str`] checks, [`FixedStr::as_str_lossy`] and `Display` never fail.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FixedStr<const N: usize> {
    bytes: [u8; N],
}

impl<const N: usize> FixedStr<N> {
    /// The size of the field on the wire.
    pub const CAPACITY: usize = N;

    /// The empty text: all octets zero.
    pub const fn empty() -> Self {
        FixedStr { bytes: [0; N] }
    }

    /// The text `text`, cut to at most `N` octets at a character boundary so the stored text
    /// stays valid UTF-8. Text after an interior NUL is stored but not part of
    /// [`as_bytes`](Self::as_bytes), exactly as a peer would read it.
    pub fn new(text: &str) -> Self {
        let mut end = text.len().min(N);
        while !text.is_char_boundary(end) {
            // `end` > 0 here: 0 is always a char boundary.
            end -= 1;
        }
        Self::from_bytes(text.as_bytes().get(..end).unwrap_or_default())
    }

    /// The octets `bytes`, cut to `N`, then padded with zeros.
    pub fn from_bytes(bytes: &[u8]) -> Self {
        let mut field = Self::empty();
        let len = bytes.len().min(N);
        if let (Some(dst), Some(src)) = (field.bytes.get_mut(..len), bytes.get(..len)) {
            dst.copy_from_slice(src);
        }
        field
    }

    /// The field exactly as it is on the wire: all `N` octets, padding included.
    pub const fn from_raw(bytes: [u8; N]) -> Self {
        FixedStr { bytes }
    }

    /// All `N` octets, padding included.
    pub const fn raw(&self) -> &[u8; N] {
        &self.bytes
    }

    /// The text: the octets before the first NUL.
    pub fn as_bytes(&self) -> &[u8] {
        let end = self.bytes.iter().position(|&b| b == 0).unwrap_or(N);
        self.bytes.get(..end).unwrap_or_default()
    }

    /// The text at most `len` octets long: how PPTP's explicit length fields (Phone Number
    /// Length, Dialed/Dialing Number Length) cut the field. A length larger than the text is
    /// ignored, so a peer's wrong length cannot expose the padding.
    pub fn prefix(&self, len: u16) -> &[u8] {
        let text = self.as_bytes();
        text.get(..usize::from(len)).unwrap_or(text)
    }

    /// Length of the text in octets (up to the first NUL).
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// Whether the text is empty (the first octet is NUL).
    pub fn is_empty(&self) -> bool {
        self.bytes.first().is_none_or(|&b| b == 0)
    }

    /// The text, if it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(self.as_bytes()).ok()
    }

    /// The longest prefix of the text that is valid UTF-8: never fails, never allocates.
    /// Use `Display` to see the invalid octets as U+FFFD instead.
    pub fn as_str_lossy(&self) -> &str {
        let bytes = self.as_bytes();
        match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => bytes
                .get(..err.valid_up_to())
                .and_then(|valid| core::str::from_utf8(valid).ok())
                .unwrap_or_default(),
        }
    }
}

impl<const N: usize> Default for FixedStr<N> {
    fn default() -> Self {
        Self::empty()
    }
}

impl<const N: usize> From<&str> for FixedStr<N> {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl<const N: usize> PartialEq<str> for FixedStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> PartialEq<&str> for FixedStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// The text, with each invalid UTF-8 sequence shown as U+FFFD.
impl<const N: usize> fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.as_bytes().utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

/// The text as a quoted string (the padding is not shown), not `N` numbers.
impl<const N: usize> fmt::Debug for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FixedStr<{N}>(\"")?;
        for chunk in self.as_bytes().utf8_chunks() {
            write!(f, "{}", chunk.valid().escape_debug())?;
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        f.write_str("\")")
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn new_pads_with_zeros() {
        let s = FixedStr::<8>::new("local");
        assert_eq!(s.raw(), b"local\0\0\0");
        assert_eq!(s.as_bytes(), b"local");
        assert_eq!(s.len(), 5);
        assert!(!s.is_empty());
        assert_eq!(s.as_str(), Some("local"));
        assert_eq!(s, "local");
        assert_eq!(s.to_string(), "local");
    }

    #[test]
    fn full_field_has_no_nul() {
        let s = FixedStr::<4>::new("abcd");
        assert_eq!(s.raw(), b"abcd");
        assert_eq!(s.as_bytes(), b"abcd");
    }

    #[test]
    fn new_truncates_at_char_boundary() {
        // "é" is two octets: it does not fit in the last octet, so it is dropped whole.
        let s = FixedStr::<4>::new("abcé");
        assert_eq!(s.raw(), b"abc\0");
        assert_eq!(s.as_str(), Some("abc"));
        let s = FixedStr::<5>::new("abcé");
        assert_eq!(s.as_str(), Some("abcé"));
        // Four-octet character into a three-octet field: nothing fits.
        let s = FixedStr::<3>::new("\u{1F600}");
        assert!(s.is_empty());
        let s = FixedStr::<2>::new("abcdef");
        assert_eq!(s, "ab");
    }

    #[test]
    fn empty() {
        let s = FixedStr::<64>::default();
        assert!(s.is_empty());
        assert_eq!(s.len(), 0);
        assert_eq!(s.as_bytes(), b"");
        assert_eq!(FixedStr::<0>::new("x").as_bytes(), b"");
        assert!(FixedStr::<0>::empty().is_empty());
    }

    #[test]
    fn text_ends_at_first_nul_and_padding_is_kept() {
        let s = FixedStr::<8>::from_raw(*b"ab\0junk!");
        assert_eq!(s.as_bytes(), b"ab");
        assert_eq!(s, "ab");
        assert_eq!(s.raw(), b"ab\0junk!");
        assert_ne!(s, FixedStr::new("ab"));
    }

    #[test]
    fn from_bytes_truncates() {
        let s = FixedStr::<3>::from_bytes(b"\xff\xfe\xfd\xfc");
        assert_eq!(s.raw(), b"\xff\xfe\xfd");
    }

    #[test]
    fn non_utf8() {
        let s = FixedStr::<8>::from_bytes(b"ab\xffcd");
        assert_eq!(s.as_str(), None);
        assert_eq!(s.as_str_lossy(), "ab");
        assert_eq!(s.to_string(), "ab\u{FFFD}cd");
        assert_eq!(format!("{s:?}"), "FixedStr<8>(\"ab\\xffcd\")");
    }

    #[test]
    fn prefix_by_length_field() {
        let s = FixedStr::<8>::new("5551234");
        assert_eq!(s.prefix(3), b"555");
        assert_eq!(s.prefix(7), b"5551234");
        // A length beyond the text does not reach into the padding.
        assert_eq!(s.prefix(200), b"5551234");
        assert_eq!(s.prefix(0), b"");
    }
}
