//! Fresh memory for the node store, faulted in one call instead of page by page.
//!
//! The node store grows by large blocks (arena chunks, index tables) that are written in full
//! soon after they are allocated. Letting the first write to each 4 KiB page fault costs a
//! trap per page; on virtual machines that is a large share of a big sync's time. Asking the
//! kernel to populate the whole block at once (`MADV_POPULATE_WRITE`, Linux 5.14+) does the
//! same work for about half the cost. It is only a hint: contents are unchanged, and where the
//! call is unsupported nothing happens.

/// Faults in the pages of `len` bytes from `ptr` (only whole pages inside the range).
pub(crate) fn populate(ptr: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        const PAGE: usize = 4096;
        /// Below this, a block is not worth a system call.
        const MIN_BYTES: usize = 256 << 10;
        /// `MADV_POPULATE_WRITE` (not in every libc release).
        const MADV_POPULATE_WRITE: libc::c_int = 23;
        if len < MIN_BYTES {
            return;
        }
        let start = (ptr as usize).next_multiple_of(PAGE);
        let end = (ptr as usize + len) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies inside an allocation the caller owns; populating only
            // maps its pages (as a write fault would), never changes their contents, and any
            // error (old kernel, unsupported mapping) is ignored.
            unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, MADV_POPULATE_WRITE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (ptr, len);
}

/// A vector with room for `capacity` bytes, its pages faulted in.
pub(crate) fn populated_bytes(capacity: usize) -> Vec<u8> {
    let v = Vec::with_capacity(capacity);
    populate(v.as_ptr(), v.capacity());
    v
}

/// A vector of `len` zeroed `u64`s, its pages faulted in.
pub(crate) fn populated_zeros(len: usize) -> Vec<u64> {
    let v = vec![0u64; len];
    populate(v.as_ptr().cast(), len * 8);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn populated_memory_is_usable_and_zeroed() {
        let z = populated_zeros(1 << 20);
        assert!(z.iter().all(|x| *x == 0));
        let mut b = populated_bytes(1 << 20);
        assert!(b.capacity() >= 1 << 20);
        b.extend_from_slice(&[7; 1000]);
        assert_eq!(b.len(), 1000);
        populate(b.as_ptr(), 10); // tiny and unaligned: a no-op
    }
}
