//! A provided-buffer ring (IORING_REGISTER_PBUF_RING): `count` buffers of
//! `size` bytes that the kernel picks from for multishot recv, and that come
//! back to it when the consumer recycles them; and [`DIRECT`] more of the
//! same size, never given to the kernel, for the driver's own `recv(2)`
//! (see `TcpDriver::read_direct`), lent and recycled the same way.
//!
//! Ownership rule: a buffer id below `count` belongs to the kernel from
//! `recycle` (or setup) until a CQE names it; then to the consumer until
//! `recycle`. One from `count` up is the driver's while free, the
//! consumer's from `take_direct` to `recycle`. The
//! memory is an anonymous mapping reached only through raw pointers, so the
//! kernel's writes never alias a Rust reference: `slice` hands out a view of
//! a buffer only while the consumer owns it. It must never be unmapped while
//! a recv may still write into it (see `leak`).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use super::probe::UringUnavailable;
use super::ring::UringDriver;

/// Buffers beside the kernel's, for direct receives.
pub(crate) const DIRECT: u16 = 8;

pub(crate) struct BufRing {
    ring: NonNull<BufRingEntry>,
    ring_bytes: usize,
    pool: NonNull<u8>,
    pool_bytes: usize,
    count: u16,
    size: usize,
    /// Our copy of the tail; published with `publish`.
    tail: u16,
    /// Buffers the consumer holds.
    lent: u32,
    /// Direct buffers (ids `count..count + DIRECT`) nobody holds.
    free_direct: Vec<u16>,
    bgid: u16,
    leaked: bool,
}

// SAFETY: BufRing owns its two mappings exclusively and has no thread
// affinity; moving it moves that ownership (the ring's issuer rule is the
// driver's business, not the memory's).
unsafe impl Send for BufRing {}

pub(crate) fn map(bytes: usize, step: &'static str) -> Result<NonNull<u8>, UringUnavailable> {
    // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
        return Err(UringUnavailable::Other { step, errno });
    }
    NonNull::new(p.cast()).ok_or(UringUnavailable::Other { step, errno: libc::ENOMEM })
}

impl BufRing {
    /// Maps and registers `count` (a power of two ≤ 32768) buffers of `size` bytes as group `bgid`.
    pub(crate) fn new(driver: &mut UringDriver, count: u32, size: usize, bgid: u16) -> Result<Self, UringUnavailable> {
        let count = u16::try_from(count).ok().filter(|c| c.is_power_of_two() && *c <= 1 << 15).ok_or(
            UringUnavailable::Other { step: "provided buffers (need a power of two <= 32768)", errno: libc::EINVAL },
        )?;
        let size = size.min(u32::MAX as usize);
        let ring_bytes = usize::from(count) * std::mem::size_of::<BufRingEntry>();
        // mmap returns page-aligned zeroed memory: the kernel's alignment rule
        // for buffer rings, and a tail of 0.
        let ring = map(ring_bytes, "mmap of the buffer ring")?.cast::<BufRingEntry>();
        let pool_bytes = usize::from(count + DIRECT) * size;
        let pool = match map(pool_bytes, "mmap of the provided buffers") {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: `ring` was mapped above with `ring_bytes` and is not registered yet.
                unsafe { libc::munmap(ring.as_ptr().cast(), ring_bytes) };
                return Err(e);
            }
        };
        let free_direct = (count..count + DIRECT).rev().collect();
        let mut this = BufRing {
            ring,
            ring_bytes,
            pool,
            pool_bytes,
            count,
            size,
            tail: 0,
            lent: 0,
            free_direct,
            bgid,
            leaked: false,
        };
        // SAFETY: `ring` holds `count` entries, page-aligned, and stays mapped
        // until Drop, which runs only after the driver stopped using the group
        // (or never unmaps, see `leak`).
        unsafe { driver.register_buf_ring(ring.as_ptr() as u64, count, bgid) }.map_err(|e| {
            let errno = e.raw_os_error().unwrap_or(0);
            if errno == libc::ENOMEM {
                UringUnavailable::LockedMemory { limit_bytes: None }
            } else {
                UringUnavailable::Other { step: "IORING_REGISTER_PBUF_RING", errno }
            }
        })?;
        for bid in 0..count {
            this.push(bid);
        }
        this.lent = 0;
        this.publish();
        Ok(this)
    }

    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Buffers currently in the kernel's hands (not lent to the consumer).
    pub(crate) fn available(&self) -> u32 {
        u32::from(self.count) - self.lent
    }

    /// Records that a CQE handed buffer `bid` to the consumer.
    pub(crate) fn lend(&mut self) {
        self.lent += 1;
    }

    /// The first `len` bytes of buffer `bid`, which the consumer owns.
    pub(crate) fn slice(&self, bid: u16, len: usize) -> &[u8] {
        let bid = usize::from(bid % (self.count + DIRECT));
        let len = len.min(self.size);
        // The kernel wrote the buffer before posting the CQE that lent `bid`
        // (or the driver's own `recv(2)` wrote a direct one before lending
        // it), and writes it again only after `recycle(bid)`, which needs `&mut
        // self` and so ends this borrow first.
        // SAFETY: the range lies inside the pool mapping (bid and len bounded).
        unsafe { std::slice::from_raw_parts(self.pool.as_ptr().add(bid * self.size), len) }
    }

    /// Gives buffer `bid` back: to the kernel, published at once, or to
    /// the free direct buffers.
    pub(crate) fn recycle(&mut self, bid: u16) {
        if bid >= self.count {
            if bid < self.count + DIRECT && !self.free_direct.contains(&bid) {
                self.free_direct.push(bid);
            }
            return;
        }
        self.push(bid);
        self.publish();
    }

    /// A free direct buffer: its id and where its `size` bytes start. The
    /// caller may write them until it gives the id back with `recycle`
    /// (or lends it on to the consumer, who does).
    pub(crate) fn take_direct(&mut self) -> Option<(u16, *mut u8, usize)> {
        let bid = self.free_direct.pop()?;
        // SAFETY: `count <= bid < count + DIRECT`: inside the pool mapping,
        // which holds `count + DIRECT` buffers.
        let at = unsafe { self.pool.as_ptr().add(usize::from(bid) * self.size) };
        Some((bid, at, self.size))
    }

    fn push(&mut self, bid: u16) {
        let mask = self.count - 1;
        let slot = usize::from(self.tail & mask);
        // SAFETY: `slot < count`, inside the ring mapping. The kernel reads
        // entries only between its head and the published tail; this slot is
        // beyond the published tail, so nobody else touches it now.
        let entry = unsafe { &mut *self.ring.as_ptr().add(slot) };
        // SAFETY: `bid < count`, so the address stays inside the pool.
        let addr = unsafe { self.pool.as_ptr().add(usize::from(bid % self.count) * self.size) };
        entry.set_addr(addr as u64);
        entry.set_len(self.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.lent = self.lent.saturating_sub(1);
    }

    fn publish(&mut self) {
        // SAFETY: the tail field lives in entry 0's reserved word, inside the
        // mapping, which is 2-byte aligned; the kernel only reads it.
        let tail = unsafe { &*BufRingEntry::tail(self.ring.as_ptr()).cast::<AtomicU16>() };
        // SYNC: Release; pairs with the kernel's smp_load_acquire(&br->tail)
        // in io_ring_buffer_select, so it sees the entries written before.
        tail.store(self.tail, Ordering::Release);
    }

    /// Never unmap: the kernel may still write into the buffers (the ring
    /// could not be drained). Leaks the memory instead of risking that.
    pub(crate) fn leak(&mut self) {
        self.leaked = true;
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.leaked {
            return;
        }
        // SAFETY: both mappings were made in `new` with these lengths; the
        // owner drained every recv that could use them before dropping us.
        unsafe {
            libc::munmap(self.pool.as_ptr().cast(), self.pool_bytes);
            libc::munmap(self.ring.as_ptr().cast(), self.ring_bytes);
        }
    }
}
