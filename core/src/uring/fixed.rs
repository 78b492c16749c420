//! Registered (fixed) send buffers: `count` buffers of `size` bytes in one
//! anonymous mapping, registered with the ring (IORING_REGISTER_BUFFERS), so
//! a SEND_ZC from them skips pinning and unpinning the pages on every send.
//!
//! The transport writes outgoing frames straight into a buffer it took from
//! here, sends it, and gives it back when the kernel holds nothing of it:
//! after the send's completion, and for SEND_ZC after its notification too.
//! Each holder (the connection that fills it, each pending notification)
//! counts one reference; the buffer returns to the free list at zero.
//!
//! The memory is reached only through raw pointers, so what the kernel reads
//! never aliases a `&mut`; it must never be unmapped while a send may still
//! read it (see `leak`).

use std::ptr::NonNull;

use super::bufring::map;
use super::probe::UringUnavailable;
use super::ring::UringDriver;

pub(crate) struct FixedBufs {
    pool: NonNull<u8>,
    pool_bytes: usize,
    size: usize,
    /// References per buffer; 0 = free.
    refs: Vec<u16>,
    free: Vec<u16>,
    leaked: bool,
}

// SAFETY: FixedBufs owns its mapping exclusively and has no thread affinity;
// moving it moves that ownership (the ring's issuer rule is the driver's).
unsafe impl Send for FixedBufs {}

impl FixedBufs {
    /// Maps `count` (1..=65535) buffers of `size` bytes and registers them.
    pub(crate) fn new(driver: &mut UringDriver, count: u32, size: usize) -> Result<Self, UringUnavailable> {
        let count = u16::try_from(count)
            .ok()
            .filter(|c| *c > 0)
            .ok_or(UringUnavailable::Other { step: "registered buffers (need 1..=65535)", errno: libc::EINVAL })?;
        let size = size.min(u32::MAX as usize);
        let pool_bytes = usize::from(count) * size;
        let pool = map(pool_bytes, "mmap of the registered buffers")?;
        let iovecs: Vec<libc::iovec> = (0..usize::from(count))
            // SAFETY: `i < count`, so the address stays inside the mapping.
            .map(|i| libc::iovec { iov_base: unsafe { pool.as_ptr().add(i * size) }.cast(), iov_len: size })
            .collect();
        // SAFETY: every iovec lies inside the mapping, which stays mapped
        // until Drop; Drop runs after the ring (the owner's field order), or
        // never unmaps (`leak`).
        if let Err(e) = unsafe { driver.register_buffers(&iovecs) } {
            // SAFETY: mapped above with `pool_bytes`, never registered.
            unsafe { libc::munmap(pool.as_ptr().cast(), pool_bytes) };
            let errno = e.raw_os_error().unwrap_or(0);
            return Err(if errno == libc::ENOMEM {
                UringUnavailable::LockedMemory { limit_bytes: None }
            } else {
                UringUnavailable::Other { step: "IORING_REGISTER_BUFFERS", errno }
            });
        }
        Ok(FixedBufs {
            pool,
            pool_bytes,
            size,
            refs: vec![0; usize::from(count)],
            free: (0..count).rev().collect(),
            leaked: false,
        })
    }

    /// Bytes per buffer.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// Buffers registered.
    pub(crate) fn count(&self) -> usize {
        self.refs.len()
    }

    /// Buffers nobody holds.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.free.len()
    }

    /// A free buffer, with one reference for the caller.
    pub(crate) fn take(&mut self) -> Option<u16> {
        let idx = self.free.pop()?;
        self.refs[usize::from(idx)] = 1;
        Some(idx)
    }

    /// One more reference (a pending SEND_ZC notification).
    pub(crate) fn hold(&mut self, idx: u16) {
        if let Some(r) = self.refs.get_mut(usize::from(idx)) {
            *r += 1;
        }
    }

    /// Drops one reference; the buffer is free again at zero.
    pub(crate) fn release(&mut self, idx: u16) {
        if let Some(r) = self.refs.get_mut(usize::from(idx)) {
            if *r > 0 {
                *r -= 1;
                if *r == 0 {
                    self.free.push(idx);
                }
            }
        }
    }

    /// Address of byte `at` of buffer `idx` (for the SQE and for filling).
    pub(crate) fn ptr(&self, idx: u16, at: usize) -> *mut u8 {
        let idx = usize::from(idx) % self.refs.len();
        // SAFETY: `idx < count` and `at` is clamped to the buffer, so the
        // address stays inside the mapping.
        unsafe { self.pool.as_ptr().add(idx * self.size + at.min(self.size)) }
    }

    /// Bytes `at..at + len` of buffer `idx`, for the holder to write.
    ///
    /// # Safety
    ///
    /// The caller holds `idx` and no send in flight reads this range (the
    /// transport writes only past what it has handed to the kernel).
    pub(crate) unsafe fn window(&mut self, idx: u16, at: usize, len: usize) -> &mut [u8] {
        let len = len.min(self.size - at.min(self.size));
        // SAFETY: inside the mapping (see `ptr`); not read by the kernel nor
        // borrowed elsewhere, by this function's contract and `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(idx, at), len) }
    }

    /// Never unmap: a send may still read the buffers (the ring could not be
    /// drained). Leaks the memory instead of risking that.
    pub(crate) fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for FixedBufs {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: mapped in `new` with this length; the owner drained every
        // send that could read it, and the ring (which registered it) is gone.
        unsafe { libc::munmap(self.pool.as_ptr().cast(), self.pool_bytes) };
    }
}
