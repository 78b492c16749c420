//! The memory a ring lives in: a byte region whose 8-byte words can be used
//! as atomics. The heap region backs unit tests and loom models; the raw
//! region wraps a shared-memory mapping. Rings never see the difference.
//!
//! A region never interprets its bytes; bounds are checked here so that a
//! ring bug can at worst panic, never touch memory outside the region.

use crate::sync::AtomicU64;
#[cfg(loom)]
use crate::sync::Ordering;

/// A byte region usable by the rings.
///
/// # Safety
/// Implementors guarantee that `len()` is a multiple of 8, that the memory
/// stays mapped and valid for as long as the region value lives, that every
/// 8-byte aligned word at offset `off < len()` may be accessed as an
/// `AtomicU64` through [`Region::word`], and that `base()` (outside loom)
/// points to the first of `len()` bytes, 8-byte aligned.
pub unsafe trait Region {
    /// Length in bytes, a multiple of 8.
    fn len(&self) -> usize;

    /// Whether the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The atomic word at byte offset `off` (8-aligned, `off + 8 <= len`).
    /// Panics on a misaligned or out-of-bounds offset: that is a ring bug,
    /// because rings validate every offset they derive from shared data.
    fn word(&self, off: usize) -> &AtomicU64;

    /// Copies `src` into the region at `off`. Panics if the range
    /// does not fit.
    fn write(&self, off: usize, src: &[u8]);

    /// Copies bytes at `off` into `dst`. Panics if the range does
    /// not fit.
    fn read(&self, off: usize, dst: &mut [u8]);

    /// Zeroes `len` bytes at `off` (both multiples of 8).
    fn zero(&self, off: usize, len: usize);

    /// Hints that the cache line holding `off` will be read soon. Never
    /// faults and has no visible effect; a no-op where unsupported.
    #[inline]
    fn prefetch(&self, off: usize) {
        let _ = off;
    }

    /// The first byte of the region, for zero-copy access (not under loom,
    /// whose atomics are not plain memory).
    #[cfg(not(loom))]
    fn base(&self) -> *mut u8;
}

#[inline]
fn check_range(region_len: usize, off: usize, len: usize) {
    if off.checked_add(len).is_none_or(|end| end > region_len) {
        outside(region_len, off, len)
    }
}

#[inline]
fn check_word(off: usize) {
    if off % 8 != 0 {
        misaligned(off)
    }
}

// The panics are out of line and cold: formatting them inline made the hot
// paths store their arguments to the stack before every check, store-buffer
// entries that a stream producer queues behind its stores into the ring.
#[cold]
#[inline(never)]
fn outside(region_len: usize, off: usize, len: usize) -> ! {
    panic!("ring bug: range {off}+{len} outside region of {region_len} bytes")
}

#[cold]
#[inline(never)]
fn misaligned(off: usize) -> ! {
    panic!("ring bug: misaligned word offset {off}")
}

/// A region on the heap, zero-initialised.
pub struct HeapRegion {
    words: Box<[AtomicU64]>,
}

impl HeapRegion {
    /// A zeroed region of `len` bytes rounded up to a multiple of 8.
    pub fn new(len: usize) -> Self {
        let words = (0..len.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
        HeapRegion { words }
    }
}

// SAFETY: `words` is a live boxed slice of AtomicU64 for as long as the
// HeapRegion lives; its length in bytes is a multiple of 8; `word` hands out
// references to its elements; `base` points at its first element, which is
// 8-byte aligned because AtomicU64 is.
unsafe impl Region for HeapRegion {
    fn len(&self) -> usize {
        self.words.len() * 8
    }

    #[inline]
    fn word(&self, off: usize) -> &AtomicU64 {
        check_word(off);
        &self.words[off / 8]
    }

    #[cfg(not(loom))]
    fn write(&self, off: usize, src: &[u8]) {
        check_range(self.len(), off, src.len());
        // The bytes live in AtomicU64 cells (UnsafeCell), so writing through
        // a pointer derived from a shared reference is permitted.
        // SAFETY: range checked inside the region; `src` is a separate borrow
        // and cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base().add(off), src.len()) }
    }

    #[cfg(not(loom))]
    fn read(&self, off: usize, dst: &mut [u8]) {
        check_range(self.len(), off, dst.len());
        // SAFETY: the range was checked to lie inside the region; `dst` is an
        // exclusive borrow and so cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(self.base().add(off), dst.as_mut_ptr(), dst.len()) }
    }

    #[cfg(not(loom))]
    fn zero(&self, off: usize, len: usize) {
        check_range(self.len(), off, len);
        // SAFETY: the range was checked to lie inside the region, whose
        // bytes are AtomicU64 cells and so may be written through `base`.
        unsafe { std::ptr::write_bytes(self.base().add(off), 0, len) }
    }

    // Under loom every byte lives in a model-checked atomic, written and read
    // with Relaxed word accesses: a consumer that reads payload without the
    // right happens-before edge may see stale words, and the model's content
    // checks catch it.
    #[cfg(loom)]
    fn write(&self, off: usize, src: &[u8]) {
        check_range(self.len(), off, src.len());
        for (i, &b) in src.iter().enumerate() {
            let w = &self.words[(off + i) / 8];
            let mut bytes = w.load(Ordering::Relaxed).to_le_bytes();
            bytes[(off + i) % 8] = b;
            w.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
    }

    #[cfg(loom)]
    fn read(&self, off: usize, dst: &mut [u8]) {
        check_range(self.len(), off, dst.len());
        for (i, b) in dst.iter_mut().enumerate() {
            *b = self.words[(off + i) / 8].load(Ordering::Relaxed).to_le_bytes()[(off + i) % 8];
        }
    }

    #[cfg(loom)]
    fn zero(&self, off: usize, len: usize) {
        check_range(self.len(), off, len);
        for w in &self.words[off / 8..(off + len) / 8] {
            w.store(0, Ordering::Relaxed);
        }
    }

    #[cfg(not(loom))]
    fn base(&self) -> *mut u8 {
        self.words.as_ptr() as *mut u8
    }

    #[cfg(not(loom))]
    #[inline]
    fn prefetch(&self, off: usize) {
        prefetch_at(self.base(), self.len(), off)
    }
}

/// Issues a prefetch for `base + off` when it lies inside `len` bytes.
#[cfg(not(loom))]
#[inline]
fn prefetch_at(base: *mut u8, len: usize, off: usize) {
    if off >= len {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint that never faults and never changes
    // memory; the address is inside the region anyway (checked above).
    unsafe {
        std::arch::x86_64::_mm_prefetch(base.add(off) as *const i8, std::arch::x86_64::_MM_HINT_T0)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = base;
}

/// A region over memory the caller owns: a shared-memory mapping, or memory
/// the application supplies (huge pages, a static buffer).
#[cfg(not(loom))]
#[derive(Clone)]
pub struct RawRegion {
    base: std::ptr::NonNull<u8>,
    len: usize,
}

#[cfg(not(loom))]
impl RawRegion {
    /// Wraps `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` must be 8-byte aligned and valid for reads and writes of `len`
    /// bytes for as long as the returned region, its clones, and every ring
    /// built on them live, and nothing may access those bytes except through atomics or
    /// through rings built on this region (other processes included).
    pub unsafe fn new(base: std::ptr::NonNull<u8>, len: usize) -> Self {
        debug_assert_eq!(base.as_ptr() as usize % 8, 0);
        RawRegion { base, len: len & !7 }
    }
}

// SAFETY: the memory is valid shared memory accessed only through atomics and
// ring protocols (the contract of `RawRegion::new`), so it may be used from
// any thread.
#[cfg(not(loom))]
unsafe impl Send for RawRegion {}
// SAFETY: as for Send: all concurrent access goes through atomics or through
// ranges a ring protocol hands to one side at a time.
#[cfg(not(loom))]
unsafe impl Sync for RawRegion {}

// SAFETY: `new`'s contract gives validity, alignment and lifetime; len was
// rounded down to a multiple of 8.
#[cfg(not(loom))]
unsafe impl Region for RawRegion {
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn word(&self, off: usize) -> &AtomicU64 {
        check_word(off);
        check_range(self.len, off, 8);
        // SAFETY: the word lies inside the region and is 8-byte aligned
        // (base is aligned and off % 8 == 0); AtomicU64 has the layout of u64;
        // the memory lives as long as `self` (contract of `new`).
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU64) }
    }

    fn write(&self, off: usize, src: &[u8]) {
        check_range(self.len, off, src.len());
        // SAFETY: the range lies inside the region (checked); `src` is a
        // separate borrow and cannot overlap memory the region owns.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.as_ptr().add(off), src.len()) }
    }

    fn read(&self, off: usize, dst: &mut [u8]) {
        check_range(self.len, off, dst.len());
        // SAFETY: the range lies inside the region (checked); `dst` is an
        // exclusive borrow and cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) }
    }

    fn zero(&self, off: usize, len: usize) {
        check_range(self.len, off, len);
        // SAFETY: the range lies inside the region (checked).
        unsafe { std::ptr::write_bytes(self.base.as_ptr().add(off), 0, len) }
    }

    fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    #[inline]
    fn prefetch(&self, off: usize) {
        prefetch_at(self.base.as_ptr(), self.len, off)
    }
}

// SAFETY: forwards to the borrowed region, which upholds the contract and
// outlives the borrow.
unsafe impl<R: Region + ?Sized> Region for &R {
    fn len(&self) -> usize {
        (**self).len()
    }
    #[inline]
    fn word(&self, off: usize) -> &AtomicU64 {
        (**self).word(off)
    }
    #[inline]
    fn write(&self, off: usize, src: &[u8]) {
        (**self).write(off, src)
    }
    #[inline]
    fn read(&self, off: usize, dst: &mut [u8]) {
        (**self).read(off, dst)
    }
    fn zero(&self, off: usize, len: usize) {
        (**self).zero(off, len)
    }
    #[inline]
    fn prefetch(&self, off: usize) {
        (**self).prefetch(off)
    }
    #[cfg(not(loom))]
    #[inline]
    fn base(&self) -> *mut u8 {
        (**self).base()
    }
}

// SAFETY: forwards to the shared region, which upholds the contract.
unsafe impl<R: Region + ?Sized> Region for std::sync::Arc<R> {
    fn len(&self) -> usize {
        (**self).len()
    }
    #[inline]
    fn word(&self, off: usize) -> &AtomicU64 {
        (**self).word(off)
    }
    #[inline]
    fn write(&self, off: usize, src: &[u8]) {
        (**self).write(off, src)
    }
    #[inline]
    fn read(&self, off: usize, dst: &mut [u8]) {
        (**self).read(off, dst)
    }
    fn zero(&self, off: usize, len: usize) {
        (**self).zero(off, len)
    }
    #[inline]
    fn prefetch(&self, off: usize) {
        (**self).prefetch(off)
    }
    #[cfg(not(loom))]
    #[inline]
    fn base(&self) -> *mut u8 {
        (**self).base()
    }
}
