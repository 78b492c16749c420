//! The memory a ring lives in: a byte region whose 8-byte words can be used
//! as atomics. The heap region backs unit tests and loom models; the raw
//! region wraps a shared-memory mapping. Rings never see the difference.
//!
//! A region never interprets its bytes; bounds are checked here so that a
//! ring bug can at worst panic, never touch memory outside the region.

use crate::sync::AtomicU64;
#[cfg(loom)]
use crate::sync::Ordering;

/// A byte region usable by the rings: ring's own [`HeapRegion`] and
/// [`RawRegion`], or a reference or `Arc` to one.
///
/// The trait is sealed and its public face is the length only. Byte and
/// word access is private to this crate, so safe code outside it cannot
/// race two byte copies, reset a ring's side words or forge a commit word.
/// (The one safe door is [`RawRegion::atomic_word`], for regions that hold
/// no ring; whoever made the `RawRegion` promised, in `unsafe`
/// [`RawRegion::new`], that no ring's words are written that way.) Nor can
/// it implement the trait:
///
/// ```compile_fail
/// struct Mine;
/// impl ringflow_ring::Region for Mine {
///     fn len(&self) -> usize { 0 }
/// }
/// ```
///
/// ```compile_fail
/// use ringflow_ring::{HeapRegion, Region};
/// let region = HeapRegion::new(64);
/// region.write(0, &[1, 2, 3]);
/// ```
///
/// ```compile_fail
/// use ringflow_ring::{HeapRegion, Region};
/// let region = HeapRegion::new(64);
/// region.word(0).store(0, std::sync::atomic::Ordering::Relaxed);
/// ```
///
/// ```compile_fail
/// use ringflow_ring::{HeapRegion, Region};
/// let region = HeapRegion::new(64);
/// region.zero(0, 64);
/// ```
///
/// Generic code gets no further through the bound than concrete code:
///
/// ```compile_fail
/// fn scribble<R: ringflow_ring::Region>(region: &R) {
///     region.word(0);
/// }
/// ```
pub trait Region: sealed::Sealed {
    /// Length in bytes, a multiple of 8.
    fn len(&self) -> usize;

    /// Whether the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(crate) mod sealed {
    use crate::sync::AtomicU64;

    /// Proof that the caller is this crate: only the crate can make one, so
    /// the sealed methods that take it cannot run on behalf of code outside
    /// (not even through a generic `R: Region` bound, which brings a
    /// supertrait's methods into scope). Zero-sized: passing it costs nothing.
    pub struct Token(pub(crate) ());

    /// The byte access behind [`Region`](super::Region). Reached inside
    /// the crate through [`Access`](super::Access).
    ///
    /// # Safety
    /// Implementors guarantee that `len()` is a multiple of 8, that the
    /// memory stays mapped and valid for as long as the region value lives,
    /// that every 8-byte aligned word at offset `off < len()` may be
    /// accessed as an `AtomicU64` through `sealed_word`, and that
    /// `sealed_base()` (outside loom) points to the first of `len()` bytes,
    /// 8-byte aligned.
    pub unsafe trait Sealed {
        fn sealed_word(&self, off: usize, _: Token) -> &AtomicU64;
        fn sealed_write(&self, off: usize, src: &[u8], _: Token);
        fn sealed_read(&self, off: usize, dst: &mut [u8], _: Token);
        fn sealed_zero(&self, off: usize, len: usize, _: Token);
        fn sealed_prefetch(&self, off: usize, _: Token);
        #[cfg(not(loom))]
        fn sealed_base(&self, _: Token) -> *mut u8;
    }
}

use sealed::{Sealed, Token};

/// Byte and word access to a region, for this crate's rings only.
pub(crate) trait Access: Region {
    /// The atomic word at byte offset `off` (8-aligned, `off + 8 <= len`).
    /// Panics on a misaligned or out-of-bounds offset: that is a ring bug,
    /// because rings validate every offset they derive from shared data.
    #[inline]
    fn word(&self, off: usize) -> &AtomicU64 {
        self.sealed_word(off, Token(()))
    }

    /// [`word`](Self::word) without its checks, for a ring's hot paths:
    /// offsets it derived so that they hold by construction (a data
    /// position masked by the capacity, a control word's constant offset)
    /// on a region whose length it checked at attach.
    ///
    /// # Safety
    /// `off` is a multiple of 8 and `off + 8 <= self.len()`.
    #[inline(always)]
    unsafe fn word_unchecked(&self, off: usize) -> &AtomicU64 {
        #[cfg(not(loom))]
        {
            debug_assert!(off % 8 == 0 && off.checked_add(8).is_some_and(|end| end <= self.len()));
            // SAFETY: inside the region and 8-aligned (the caller's promise;
            // every region's base is 8-aligned, `Sealed`'s contract); the
            // region's memory lives as long as `self`, and its words are
            // accessed only as atomics (as `word` hands them out).
            unsafe { &*(self.base().add(off) as *const AtomicU64) }
        }
        #[cfg(loom)]
        self.word(off)
    }

    /// Copies `src` into the region at `off`. Panics if the range
    /// does not fit.
    #[inline]
    fn write(&self, off: usize, src: &[u8]) {
        self.sealed_write(off, src, Token(()))
    }

    /// Copies bytes at `off` into `dst`. Panics if the range does
    /// not fit.
    #[inline]
    fn read(&self, off: usize, dst: &mut [u8]) {
        self.sealed_read(off, dst, Token(()))
    }

    /// Copies `src` into the region at `off` through relaxed atomic stores
    /// of the 8-byte words that cover it, for bytes a reader may copy at the
    /// same moment (a lossy log's seqlock): the race is then between
    /// atomics of one size, never a data race. The covering words (from
    /// `off` rounded down to `off + len` rounded up) must lie in memory the
    /// caller alone writes (its claimed frame: frames are 8-aligned); a word
    /// only partly covered keeps its other bytes (load, merge, store).
    /// Panics if a word is outside the region.
    fn write_words(&self, off: usize, src: &[u8]) {
        let end = off + src.len();
        let mut w = off & !7;
        while w < end {
            let (lo, hi) = (w.max(off), (w + 8).min(end));
            let word = self.word(w);
            // SYNC: Relaxed (both); the claim owns this word, and the
            // commit's Release (or the claim's Release fence, for a lapped
            // reader's check) orders these stores for readers.
            let mut bytes = [0u8; 8];
            if hi - lo == 8 {
                // A whole word: a fixed-size copy (one load, no memcpy call).
                bytes.copy_from_slice(&src[lo - off..lo - off + 8]);
            } else {
                bytes = word.load(crate::sync::Ordering::Relaxed).to_le_bytes();
                bytes[lo - w..hi - w].copy_from_slice(&src[lo - off..hi - off]);
            }
            word.store(u64::from_le_bytes(bytes), crate::sync::Ordering::Relaxed);
            w += 8;
        }
    }

    /// Copies the bytes at `off` into `dst` through relaxed atomic loads of
    /// the 8-byte words that cover them: the reading half of
    /// [`write_words`](Self::write_words). Panics if a word is outside the
    /// region.
    fn read_words(&self, off: usize, dst: &mut [u8]) {
        let end = off + dst.len();
        let mut w = off & !7;
        while w < end {
            let (lo, hi) = (w.max(off), (w + 8).min(end));
            // SYNC: Relaxed; the reader's Acquire fence before it re-checks
            // the tail (`Consumer::overwritten`) orders these loads: a word
            // a later claim wrote makes that check see the claim.
            let bytes = self.word(w).load(crate::sync::Ordering::Relaxed).to_le_bytes();
            if hi - lo == 8 {
                dst[lo - off..lo - off + 8].copy_from_slice(&bytes);
            } else {
                dst[lo - off..hi - off].copy_from_slice(&bytes[lo - w..hi - w]);
            }
            w += 8;
        }
    }

    /// Zeroes `len` bytes at `off` (both multiples of 8).
    #[inline]
    fn zero(&self, off: usize, len: usize) {
        self.sealed_zero(off, len, Token(()))
    }

    /// Hints that the cache line holding `off` will be read soon. Never
    /// faults and has no visible effect; a no-op where unsupported.
    #[inline]
    fn prefetch(&self, off: usize) {
        self.sealed_prefetch(off, Token(()))
    }

    /// Hints that the cache line holding `off` will be written soon: fetches
    /// it for writing now (`prefetchw`), so that a line the other core holds
    /// travels while this one does other work. Never faults, changes no
    /// memory; a no-op where the CPU lacks it, under loom, and outside the
    /// region.
    #[inline]
    fn prefetch_write(&self, off: usize) {
        #[cfg(all(target_arch = "x86_64", not(loom)))]
        if off < self.len() && has_prefetchw() {
            // SAFETY: the CPU has `prefetchw` (checked), a hint: it never
            // faults and writes no memory, flag or register; the address is
            // inside the region (checked above).
            unsafe {
                std::arch::asm!(
                    "prefetchw [{0}]",
                    in(reg) self.base().add(off),
                    options(nostack, preserves_flags, readonly)
                );
            }
        }
        #[cfg(not(all(target_arch = "x86_64", not(loom))))]
        let _ = off;
    }

    /// The first byte of the region, for zero-copy access (not under loom,
    /// whose atomics are not plain memory).
    #[cfg(not(loom))]
    #[inline]
    fn base(&self) -> *mut u8 {
        self.sealed_base(Token(()))
    }
}

/// Whether the CPU has `prefetchw` (CPUID 0x8000_0001, ECX bit 8: PRFCHW,
/// "3DNowPrefetch"), asked once per process (CPUID leaves a VM).
#[cfg(all(target_arch = "x86_64", not(loom)))]
#[inline]
fn has_prefetchw() -> bool {
    use std::sync::atomic::{AtomicU8, Ordering};
    static PRFCHW: AtomicU8 = AtomicU8::new(0);
    // SYNC: Relaxed; a cache of a fact that never changes: a thread that
    // sees 0 asks the CPU itself.
    match PRFCHW.load(Ordering::Relaxed) {
        0 => {
            // Every x86_64 CPU has the extended leaf 0x8000_0001 (the leaf
            // that reports long mode itself).
            let has = std::arch::x86_64::__cpuid(0x8000_0001).ecx & (1 << 8) != 0;
            // SYNC: Relaxed; see the load.
            PRFCHW.store(if has { 2 } else { 1 }, Ordering::Relaxed);
            has
        }
        v => v == 2,
    }
}

impl<R: Region + ?Sized> Access for R {}

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

    /// The atomic word at byte offset `off`, for tests that play a hostile
    /// or buggy peer scribbling over a ring's control words or frames.
    /// Panics on a misaligned or out-of-bounds offset.
    ///
    /// # Safety
    /// A store through the word may break a ring's invariants (reset a side
    /// word, forge a commit word), and the rings' exclusive grants
    /// (`Claim::payload_mut`, `WriteSlot::payload_mut`) rest on them. The
    /// caller promises that nothing it writes can let two sides in this
    /// process hold access to the same bytes at once: it writes only what a
    /// hostile peer could write, while the sides it attacks hold no borrow
    /// of payload bytes the write re-grants.
    #[doc(hidden)]
    pub unsafe fn scribble_word(&self, off: usize) -> &AtomicU64 {
        self.word(off)
    }
}

impl Region for HeapRegion {
    fn len(&self) -> usize {
        self.words.len() * 8
    }
}

// SAFETY: `words` is a live boxed slice of AtomicU64 for as long as the
// HeapRegion lives; its length in bytes is a multiple of 8; `sealed_word`
// hands out references to its elements; `sealed_base` points at its first
// element, which is 8-byte aligned because AtomicU64 is.
unsafe impl Sealed for HeapRegion {
    #[inline]
    fn sealed_word(&self, off: usize, _: Token) -> &AtomicU64 {
        check_word(off);
        &self.words[off / 8]
    }

    #[cfg(not(loom))]
    fn sealed_write(&self, off: usize, src: &[u8], _: Token) {
        check_range(self.len(), off, src.len());
        // The bytes live in AtomicU64 cells (UnsafeCell), so writing through
        // a pointer derived from a shared reference is permitted.
        // SAFETY: range checked inside the region; `src` is a separate borrow
        // and cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.sealed_base(Token(())).add(off), src.len()) }
    }

    #[cfg(not(loom))]
    fn sealed_read(&self, off: usize, dst: &mut [u8], _: Token) {
        check_range(self.len(), off, dst.len());
        // SAFETY: the range was checked to lie inside the region; `dst` is an
        // exclusive borrow and so cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(self.sealed_base(Token(())).add(off), dst.as_mut_ptr(), dst.len()) }
    }

    #[cfg(not(loom))]
    fn sealed_zero(&self, off: usize, len: usize, _: Token) {
        check_range(self.len(), off, len);
        // SAFETY: the range was checked to lie inside the region, whose
        // bytes are AtomicU64 cells and so may be written through `base`.
        unsafe { std::ptr::write_bytes(self.sealed_base(Token(())).add(off), 0, len) }
    }

    // Under loom every byte lives in a model-checked atomic, written and read
    // with Relaxed word accesses: a consumer that reads payload without the
    // right happens-before edge may see stale words, and the model's content
    // checks catch it.
    #[cfg(loom)]
    fn sealed_write(&self, off: usize, src: &[u8], _: Token) {
        check_range(self.len(), off, src.len());
        for (i, &b) in src.iter().enumerate() {
            let w = &self.words[(off + i) / 8];
            let mut bytes = w.load(Ordering::Relaxed).to_le_bytes();
            bytes[(off + i) % 8] = b;
            w.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
    }

    #[cfg(loom)]
    fn sealed_read(&self, off: usize, dst: &mut [u8], _: Token) {
        check_range(self.len(), off, dst.len());
        for (i, b) in dst.iter_mut().enumerate() {
            *b = self.words[(off + i) / 8].load(Ordering::Relaxed).to_le_bytes()[(off + i) % 8];
        }
    }

    #[cfg(loom)]
    fn sealed_zero(&self, off: usize, len: usize, _: Token) {
        check_range(self.len(), off, len);
        for w in &self.words[off / 8..(off + len) / 8] {
            w.store(0, Ordering::Relaxed);
        }
    }

    #[cfg(not(loom))]
    fn sealed_base(&self, _: Token) -> *mut u8 {
        self.words.as_ptr() as *mut u8
    }

    #[cfg(not(loom))]
    #[inline]
    fn sealed_prefetch(&self, off: usize, _: Token) {
        prefetch_at(self.sealed_base(Token(())), self.len(), off)
    }

    #[cfg(loom)]
    #[inline]
    fn sealed_prefetch(&self, off: usize, _: Token) {
        let _ = off;
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
    /// built on them live. In this process, nothing may access those bytes
    /// except through atomics or through rings built on this region, and
    /// nothing may write a ring's control words or frames except that ring's
    /// own sides: the rings' exclusive grants (`Claim::payload_mut`,
    /// `WriteSlot::payload_mut`) rest on the invariants those words carry.
    /// (Another process that maps the memory may write anything: the rings
    /// treat what they read as untrusted, see the crate docs.)
    pub unsafe fn new(base: std::ptr::NonNull<u8>, len: usize) -> Self {
        debug_assert_eq!(base.as_ptr() as usize % 8, 0);
        RawRegion { base, len: len & !7 }
    }

    /// The atomic word at byte offset `off` (8-aligned, inside the region),
    /// for a region that holds plain atomic words and no ring (a flow's
    /// state area). Panics on a misaligned or out-of-bounds offset.
    ///
    /// Safe because an atomic access cannot race; but a store into a region
    /// that holds a ring would break the promise made to [`RawRegion::new`],
    /// so use it only on regions no ring is built on.
    #[inline]
    pub fn atomic_word(&self, off: usize) -> &AtomicU64 {
        self.word(off)
    }

    /// Zeroes `len` bytes at `off` (both multiples of 8), to lay out a
    /// region before anyone uses it. Panics if the range does not fit.
    ///
    /// # Safety
    /// No one in this process uses the range concurrently: no ring built on
    /// the region has a side attached, and no reference from
    /// [`RawRegion::atomic_word`] into the range is in use by another thread.
    pub unsafe fn zero_fill(&self, off: usize, len: usize) {
        self.zero(off, len)
    }

    /// The atomic word at byte offset `off`, for tests that play a hostile
    /// or buggy peer scribbling over a ring's control words or frames.
    /// Panics on a misaligned or out-of-bounds offset.
    ///
    /// # Safety
    /// A store through the word may break a ring's invariants (reset a side
    /// word, forge a commit word), and the rings' exclusive grants rest on
    /// them. The caller promises that nothing it writes can let two sides in
    /// this process hold access to the same bytes at once: it writes only
    /// what a peer in another process could write, to sides whose payload
    /// borrows the write cannot re-grant.
    #[doc(hidden)]
    pub unsafe fn scribble_word(&self, off: usize) -> &AtomicU64 {
        self.word(off)
    }
}

// SAFETY: a RawRegion is a pointer and a length. Every access to the bytes
// goes through this crate: whole words through atomics (which cannot race),
// byte copies and payload slices only where a ring protocol grants a range
// to one side at a time. Those grants hold because no code in this process
// writes a ring's control words except the ring's own sides (the contract
// of `RawRegion::new`, and the byte access is private to this crate), so
// the region may move to and be shared with any thread.
#[cfg(not(loom))]
unsafe impl Send for RawRegion {}
// SAFETY: as for Send.
#[cfg(not(loom))]
unsafe impl Sync for RawRegion {}

#[cfg(not(loom))]
impl Region for RawRegion {
    fn len(&self) -> usize {
        self.len
    }
}

// SAFETY: `new`'s contract gives validity, alignment and lifetime; len was
// rounded down to a multiple of 8.
#[cfg(not(loom))]
unsafe impl Sealed for RawRegion {
    #[inline]
    fn sealed_word(&self, off: usize, _: Token) -> &AtomicU64 {
        check_word(off);
        check_range(self.len, off, 8);
        // SAFETY: the word lies inside the region and is 8-byte aligned
        // (base is aligned and off % 8 == 0); AtomicU64 has the layout of u64;
        // the memory lives as long as `self` (contract of `new`).
        unsafe { &*(self.base.as_ptr().add(off) as *const AtomicU64) }
    }

    // Inline: a message's copy into its frame is on every send (the call
    // alone was 9 of a send and receive's 453 instructions).
    #[inline]
    fn sealed_write(&self, off: usize, src: &[u8], _: Token) {
        check_range(self.len, off, src.len());
        // SAFETY: the range lies inside the region (checked); `src` is a
        // separate borrow and cannot overlap memory the region owns.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.base.as_ptr().add(off), src.len()) }
    }

    #[inline]
    fn sealed_read(&self, off: usize, dst: &mut [u8], _: Token) {
        check_range(self.len, off, dst.len());
        // SAFETY: the range lies inside the region (checked); `dst` is an
        // exclusive borrow and cannot overlap it.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr().add(off), dst.as_mut_ptr(), dst.len()) }
    }

    fn sealed_zero(&self, off: usize, len: usize, _: Token) {
        check_range(self.len, off, len);
        // SAFETY: the range lies inside the region (checked).
        unsafe { std::ptr::write_bytes(self.base.as_ptr().add(off), 0, len) }
    }

    fn sealed_base(&self, _: Token) -> *mut u8 {
        self.base.as_ptr()
    }

    #[inline]
    fn sealed_prefetch(&self, off: usize, _: Token) {
        prefetch_at(self.base.as_ptr(), self.len, off)
    }
}

/// A region behind a reference or a shared pointer is that region.
macro_rules! forward_region {
    ($ty:ty) => {
        // SAFETY: forwards every call to the region behind the pointer,
        // which upholds the contract and outlives the pointer.
        unsafe impl<R: Region + ?Sized> Sealed for $ty {
            #[inline]
            fn sealed_word(&self, off: usize, t: Token) -> &AtomicU64 {
                (**self).sealed_word(off, t)
            }
            #[inline]
            fn sealed_write(&self, off: usize, src: &[u8], t: Token) {
                (**self).sealed_write(off, src, t)
            }
            #[inline]
            fn sealed_read(&self, off: usize, dst: &mut [u8], t: Token) {
                (**self).sealed_read(off, dst, t)
            }
            fn sealed_zero(&self, off: usize, len: usize, t: Token) {
                (**self).sealed_zero(off, len, t)
            }
            #[inline]
            fn sealed_prefetch(&self, off: usize, t: Token) {
                (**self).sealed_prefetch(off, t)
            }
            #[cfg(not(loom))]
            #[inline]
            fn sealed_base(&self, t: Token) -> *mut u8 {
                (**self).sealed_base(t)
            }
        }

        impl<R: Region + ?Sized> Region for $ty {
            fn len(&self) -> usize {
                (**self).len()
            }
        }
    };
}

forward_region!(&R);
forward_region!(std::sync::Arc<R>);
