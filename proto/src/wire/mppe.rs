//! The MPPE header: RFC 3078 section 3 (bits B and C from MPPC, RFC 2118 section 3).
//!
//! ```text
//!  0                   1
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+---------------------
//! |A|B|C|D|    Coherency Count    |  encrypted data ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+---------------------
//! ```
//!
//! It follows PPP protocol 0x00FD ([`super::ppp::Protocol::Mppe`]). The encrypted data is
//! the inner PPP protocol field (as PFC allows) and information field.
//!
//! * A, flushed: the sender reset its cipher state (RC4 tables) before this packet. In
//!   stateless mode every packet has it; in stateful mode it follows a CCP Reset-Request.
//! * B, C: MPPC only (RFC 2118): packet compressed at the front of the history buffer,
//!   packet compressed. Pure MPPE sends both as 0; they are kept as they came so the layer
//!   above decides.
//! * D, encrypted.
//! * Coherency Count: 12 bits, incremented per packet modulo 4096, so the receiver can tell
//!   how many packets (and so how many key changes) it missed.
//!
//! The header is two bytes and never invalid; only a short buffer is an error.

use super::{Error, Result};

/// Length of the MPPE header.
pub const HEADER_LEN: usize = 2;
/// The coherency count's bits within the header's 16-bit word; also its modulus minus one.
pub const COHERENCY_MASK: u16 = 0x0FFF;
/// Number of distinct coherency counts (4096): the modulus of the count arithmetic.
pub const COUNT_SPACE: u16 = COHERENCY_MASK + 1;

/// Flag bits of the header's 16-bit word. This module and [`COHERENCY_MASK`] are the one
/// definition of the header's bit layout; `crypto::mppe` builds and checks headers as `u16`
/// words with them.
pub mod flags {
    /// A: flushed.
    pub const FLUSHED: u16 = 0x8000;
    /// B: MPPC, packet at the front of the history buffer.
    pub const MPPC_RESTART: u16 = 0x4000;
    /// C: MPPC, packet compressed.
    pub const COMPRESSED: u16 = 0x2000;
    /// D: packet encrypted.
    pub const ENCRYPTED: u16 = 0x1000;
}

mod field {
    use core::ops::Range;

    pub const FLAGS_COUNT: Range<usize> = 0..2;
    pub const PAYLOAD: core::ops::RangeFrom<usize> = 2..;
}

/// The coherency count of a header word (its low 12 bits).
#[inline]
pub const fn coherency_count(word: u16) -> u16 {
    word & COHERENCY_MASK
}

/// How many increments take coherency count `from` to `to`, modulo 4096 (0..=4095).
///
/// A stateless receiver applies this many key changes before decrypting; a stateful one
/// treats a result other than 1 as lost packets (RFC 3078 section 8).
#[inline]
pub fn coherency_distance(from: u16, to: u16) -> u16 {
    to.wrapping_sub(from) & COHERENCY_MASK
}

/// The coherency count after `count`, wrapping at 4096.
#[inline]
pub fn next_coherency_count(count: u16) -> u16 {
    count.wrapping_add(1) & COHERENCY_MASK
}

/// A read/write view of an MPPE header and the encrypted data after it.
#[derive(Debug, PartialEq, Eq, Clone)]
pub struct MppeHeader<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MppeHeader<T> {
    /// Wraps a buffer without checking it; getters may panic until [`Self::check_len`]
    /// has succeeded.
    pub const fn new_unchecked(buffer: T) -> MppeHeader<T> {
        MppeHeader { buffer }
    }

    /// Wraps a buffer and checks it with [`Self::check_len`].
    pub fn new_checked(buffer: T) -> Result<MppeHeader<T>> {
        let header = Self::new_unchecked(buffer);
        header.check_len()?;
        Ok(header)
    }

    /// `Error::Truncated` unless the buffer holds the two header bytes. The encrypted data
    /// may be empty.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The header as one 16-bit word: flags and coherency count.
    #[inline]
    pub fn flags_count(&self) -> u16 {
        let data = self.buffer.as_ref();
        u16::from_be_bytes([
            data[field::FLAGS_COUNT.start],
            data[field::FLAGS_COUNT.start + 1],
        ])
    }

    /// A: the sender flushed (reset) its cipher state before this packet.
    #[inline]
    pub fn flushed(&self) -> bool {
        self.flags_count() & flags::FLUSHED != 0
    }

    /// B: MPPC only, packet compressed at the front of the history buffer.
    #[inline]
    pub fn mppc_restart(&self) -> bool {
        self.flags_count() & flags::MPPC_RESTART != 0
    }

    /// C: MPPC only, packet compressed.
    #[inline]
    pub fn compressed(&self) -> bool {
        self.flags_count() & flags::COMPRESSED != 0
    }

    /// D: packet encrypted.
    #[inline]
    pub fn encrypted(&self) -> bool {
        self.flags_count() & flags::ENCRYPTED != 0
    }

    /// The 12-bit coherency count.
    #[inline]
    pub fn coherency_count(&self) -> u16 {
        coherency_count(self.flags_count())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> MppeHeader<&'a T> {
    /// The (encrypted) data after the header.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MppeHeader<T> {
    /// Sets the whole 16-bit word.
    #[inline]
    pub fn set_flags_count(&mut self, value: u16) {
        self.buffer.as_mut()[field::FLAGS_COUNT].copy_from_slice(&value.to_be_bytes());
    }

    #[inline]
    fn set_flag(&mut self, mask: u16, on: bool) {
        let word = self.flags_count();
        self.set_flags_count(if on { word | mask } else { word & !mask });
    }

    /// Sets or clears A.
    #[inline]
    pub fn set_flushed(&mut self, on: bool) {
        self.set_flag(flags::FLUSHED, on)
    }

    /// Sets or clears B.
    #[inline]
    pub fn set_mppc_restart(&mut self, on: bool) {
        self.set_flag(flags::MPPC_RESTART, on)
    }

    /// Sets or clears C.
    #[inline]
    pub fn set_compressed(&mut self, on: bool) {
        self.set_flag(flags::COMPRESSED, on)
    }

    /// Sets or clears D.
    #[inline]
    pub fn set_encrypted(&mut self, on: bool) {
        self.set_flag(flags::ENCRYPTED, on)
    }

    /// Sets the coherency count; only its low 12 bits are kept.
    #[inline]
    pub fn set_coherency_count(&mut self, count: u16) {
        let word = (self.flags_count() & !COHERENCY_MASK) | (count & COHERENCY_MASK);
        self.set_flags_count(word)
    }

    /// The data after the header, mutable: decrypt and encrypt in place here.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for MppeHeader<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// The meaning of an MPPE header.
#[derive(Debug, PartialEq, Eq, Clone, Copy, Hash)]
pub struct MppeRepr {
    /// A: cipher state flushed before this packet.
    pub flushed: bool,
    /// B: MPPC only; false for MPPE.
    pub mppc_restart: bool,
    /// C: MPPC only; false for MPPE.
    pub compressed: bool,
    /// D: encrypted.
    pub encrypted: bool,
    /// Coherency count, 0..=0xFFF; [`Self::emit`] keeps only the low 12 bits.
    pub coherency_count: u16,
}

impl MppeRepr {
    /// The header of an encrypted, uncompressed packet, the only kind PPTP peers send:
    /// `flushed` always in stateless mode, in stateful mode after a reset.
    pub const fn encrypted_packet(coherency_count: u16, flushed: bool) -> MppeRepr {
        MppeRepr {
            flushed,
            mppc_restart: false,
            compressed: false,
            encrypted: true,
            coherency_count,
        }
    }

    /// Reads a header (checking the length first).
    pub fn parse<T: AsRef<[u8]> + ?Sized>(header: &MppeHeader<&T>) -> Result<MppeRepr> {
        header.check_len()?;
        Ok(MppeRepr {
            flushed: header.flushed(),
            mppc_restart: header.mppc_restart(),
            compressed: header.compressed(),
            encrypted: header.encrypted(),
            coherency_count: header.coherency_count(),
        })
    }

    /// Header bytes [`Self::emit`] writes: always [`HEADER_LEN`].
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Writes the two header bytes at the start of `header`'s buffer
    /// (`Error::BufferTooSmall` if it is shorter). The coherency count is taken modulo
    /// 4096, so a caller may pass a wider counter.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]> + ?Sized>(
        &self,
        header: &mut MppeHeader<&mut T>,
    ) -> Result<()> {
        if header.buffer.as_ref().len() < HEADER_LEN {
            return Err(Error::BufferTooSmall);
        }
        let mut word = self.coherency_count & COHERENCY_MASK;
        for (on, mask) in [
            (self.flushed, flags::FLUSHED),
            (self.mppc_restart, flags::MPPC_RESTART),
            (self.compressed, flags::COMPRESSED),
            (self.encrypted, flags::ENCRYPTED),
        ] {
            if on {
                word |= mask;
            }
        }
        header.set_flags_count(word);
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    // From the reference capture (Debian pptp-linux client <-> Poptop server), frame 56:
    // the PPP payload after the compressed protocol byte 0xFD, i.e. the MPPE header 0x9002
    // (A and D set, coherency count 2) and the start of the ciphertext.
    static STATELESS: [u8; 8] = [0x90, 0x02, 0xbb, 0xc5, 0x51, 0x8e, 0xa7, 0xb0];

    // A stateful-looking header with every flag and the highest count.
    static ALL_FLAGS: [u8; 2] = [0xff, 0xff];

    #[test]
    fn deconstruct() {
        let header = MppeHeader::new_checked(&STATELESS[..]).unwrap();
        assert_eq!(header.flags_count(), 0x9002);
        assert!(header.flushed());
        assert!(!header.mppc_restart());
        assert!(!header.compressed());
        assert!(header.encrypted());
        assert_eq!(header.coherency_count(), 2);
        assert_eq!(header.payload(), &STATELESS[2..]);

        let header = MppeHeader::new_checked(&ALL_FLAGS[..]).unwrap();
        assert!(header.flushed() && header.mppc_restart() && header.compressed());
        assert!(header.encrypted());
        assert_eq!(header.coherency_count(), 0x0fff);
        assert!(header.payload().is_empty());
    }

    #[test]
    fn construct() {
        let mut bytes = STATELESS;
        bytes[..2].fill(0x00);
        let mut header = MppeHeader::new_unchecked(&mut bytes[..]);
        header.set_flushed(true);
        header.set_encrypted(true);
        header.set_coherency_count(0xf002);
        assert_eq!(bytes, STATELESS);

        let mut bytes = [0u8; 2];
        let mut header = MppeHeader::new_unchecked(&mut bytes[..]);
        header.set_flushed(true);
        header.set_mppc_restart(true);
        header.set_compressed(true);
        header.set_encrypted(true);
        header.set_coherency_count(0x0fff);
        assert_eq!(bytes, ALL_FLAGS);
        let mut header = MppeHeader::new_unchecked(&mut bytes[..]);
        header.set_flushed(false);
        header.set_mppc_restart(false);
        header.set_compressed(false);
        assert_eq!(bytes, [0x1f, 0xff]);
    }

    #[test]
    fn parse() {
        assert_eq!(
            MppeRepr::parse(&MppeHeader::new_unchecked(&STATELESS[..])),
            Ok(MppeRepr::encrypted_packet(2, true))
        );
        assert_eq!(
            MppeRepr::parse(&MppeHeader::new_unchecked(&ALL_FLAGS[..])),
            Ok(MppeRepr {
                flushed: true,
                mppc_restart: true,
                compressed: true,
                encrypted: true,
                coherency_count: 0x0fff,
            })
        );
    }

    #[test]
    fn emit() {
        let repr = MppeRepr::encrypted_packet(2, true);
        assert_eq!(repr.buffer_len(), HEADER_LEN);
        let mut bytes = STATELESS;
        bytes[..2].fill(0xee);
        repr.emit(&mut MppeHeader::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(bytes, STATELESS);
        // A wider counter is reduced modulo 4096.
        let mut bytes = [0u8; 2];
        MppeRepr::encrypted_packet(0x1002, false)
            .emit(&mut MppeHeader::new_unchecked(&mut bytes[..]))
            .unwrap();
        assert_eq!(bytes, [0x10, 0x02]);
    }

    #[test]
    fn truncated() {
        for len in 0..HEADER_LEN {
            let header = MppeHeader::new_unchecked(&STATELESS[..len]);
            assert_eq!(header.check_len(), Err(Error::Truncated));
            assert_eq!(MppeRepr::parse(&header), Err(Error::Truncated));
            let mut bytes = [0u8; 1];
            assert_eq!(
                MppeRepr::encrypted_packet(0, true)
                    .emit(&mut MppeHeader::new_unchecked(&mut bytes[..len])),
                Err(Error::BufferTooSmall)
            );
        }
    }

    #[test]
    fn coherency_arithmetic() {
        assert_eq!(coherency_distance(2, 3), 1);
        assert_eq!(coherency_distance(3, 3), 0);
        assert_eq!(coherency_distance(0x0ffe, 0x0001), 3);
        assert_eq!(coherency_distance(3, 2), 0x0fff);
        assert_eq!(next_coherency_count(0x0ffe), 0x0fff);
        assert_eq!(next_coherency_count(0x0fff), 0);
        assert_eq!(coherency_count(0x9abc), 0x0abc);
        assert_eq!(usize::from(COUNT_SPACE), 4096);
    }

    fn any_repr() -> impl Strategy<Value = MppeRepr> {
        (any::<[bool; 4]>(), 0..=COHERENCY_MASK).prop_map(|(f, coherency_count)| MppeRepr {
            flushed: f[0],
            mppc_restart: f[1],
            compressed: f[2],
            encrypted: f[3],
            coherency_count,
        })
    }

    proptest! {
        #[test]
        fn repr_round_trip(repr in any_repr()) {
            let mut bytes = [0u8; HEADER_LEN];
            repr.emit(&mut MppeHeader::new_unchecked(&mut bytes[..])).unwrap();
            prop_assert_eq!(MppeRepr::parse(&MppeHeader::new_unchecked(&bytes[..])), Ok(repr));
        }

        #[test]
        fn bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..4)) {
            let header = MppeHeader::new_unchecked(&bytes[..]);
            if let Ok(repr) = MppeRepr::parse(&header) {
                let mut out = [0u8; HEADER_LEN];
                repr.emit(&mut MppeHeader::new_unchecked(&mut out[..])).unwrap();
                prop_assert_eq!(&out[..], &bytes[..HEADER_LEN]);
            } else {
                prop_assert!(bytes.len() < HEADER_LEN);
            }
        }
    }
}
