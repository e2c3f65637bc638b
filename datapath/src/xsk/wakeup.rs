//! The rings' need-wakeup flags, which the `xdp` crate maps but does not expose.
//!
//! With XDP_USE_NEED_WAKEUP the kernel sets XDP_RING_NEED_WAKEUP in a ring's `flags` word
//! when it will not look at that ring again until user space makes a syscall (fill ring:
//! recvfrom or poll; TX ring: sendto). Reading the flag saves a syscall per batch when the
//! kernel (or a zero-copy driver) is already busy with the ring. We map the header page of
//! the fill and TX rings a second time (the kernel allows any number of mappings of a ring)
//! and only ever load the flags word.

use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// One ring's header mapping, read-only use of its `flags` word.
#[derive(Debug)]
struct FlagsView {
    base: NonNull<libc::c_void>,
    len: usize,
    flags_offset: usize,
}

impl FlagsView {
    fn map(fd: RawFd, page_offset: u64, ring: &libc::xdp_ring_offset) -> io::Result<FlagsView> {
        let flags_offset = usize::try_from(ring.flags).map_err(io::Error::other)?;
        let desc = usize::try_from(ring.desc).map_err(io::Error::other)?;
        // The header (producer, consumer, flags) lies before the descriptors.
        if flags_offset.saturating_add(4) > desc || flags_offset % 4 != 0 {
            return Err(io::Error::other(format!(
                "unexpected ring layout: flags at {flags_offset}, descriptors at {desc}"
            )));
        }
        let offset = libc::off_t::try_from(page_offset).map_err(io::Error::other)?;
        // SAFETY: a fresh shared mapping of `desc` bytes of the socket's ring at the offset the
        // kernel defines for it; nothing else is placed at the returned address. The result is
        // checked for MAP_FAILED below.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                desc,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base).ok_or_else(|| io::Error::other("mmap returned null"))?;
        Ok(FlagsView {
            base,
            len: desc,
            flags_offset,
        })
    }

    fn needs_wakeup(&self) -> bool {
        // SAFETY: `flags_offset + 4 <= len` and 4-byte alignment were checked in `map` (the
        // mapping itself is page aligned); the word lives as long as the mapping, which lives
        // as long as `self`. The kernel writes it concurrently, so it is only accessed
        // atomically, as libxdp's READ_ONCE does.
        let flags = unsafe {
            AtomicU32::from_ptr(self.base.as_ptr().byte_add(self.flags_offset).cast::<u32>())
        };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
}

impl Drop for FlagsView {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `map`; no reference into it outlives
        // `self` (needs_wakeup's atomic is a temporary).
        unsafe {
            libc::munmap(self.base.as_ptr(), self.len);
        }
    }
}

/// The fill and TX rings' need-wakeup flags of one socket.
#[derive(Debug)]
pub(super) struct WakeupFlags {
    fill: FlagsView,
    tx: FlagsView,
}

// SAFETY: the views only hold mappings of kernel ring memory, accessed atomically; moving them
// to another thread moves nothing the kernel or another thread relies on.
unsafe impl Send for WakeupFlags {}

impl WakeupFlags {
    /// Maps the flags of `fd`'s fill and TX rings (both must have been configured).
    pub(super) fn map(fd: RawFd) -> io::Result<WakeupFlags> {
        // SAFETY: all-zero is a valid xdp_mmap_offsets (plain integers).
        let mut offsets: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let expected = std::mem::size_of::<libc::xdp_mmap_offsets>();
        let mut len = libc::socklen_t::try_from(expected).map_err(io::Error::other)?;
        // SAFETY: getsockopt writes at most `len` bytes into the exclusively borrowed
        // `offsets`, which is exactly that large.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&raw mut offsets).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        if usize::try_from(len).ok() != Some(expected) {
            return Err(io::Error::other(
                "kernel without ring flags (XDP_MMAP_OFFSETS v1): need-wakeup unsupported",
            ));
        }
        let tx_page = u64::try_from(libc::XDP_PGOFF_TX_RING).map_err(io::Error::other)?;
        Ok(WakeupFlags {
            fill: FlagsView::map(fd, libc::XDP_UMEM_PGOFF_FILL_RING, &offsets.fr)?,
            tx: FlagsView::map(fd, tx_page, &offsets.tx)?,
        })
    }

    /// The kernel waits for a syscall before it looks at the fill ring again.
    pub(super) fn fill(&self) -> bool {
        self.fill.needs_wakeup()
    }

    /// The kernel waits for a syscall (sendto) before it sends what the TX ring holds.
    pub(super) fn tx(&self) -> bool {
        self.tx.needs_wakeup()
    }
}
