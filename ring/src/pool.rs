//! Bulk pool: a single-producer single-consumer byte arena for messages too
//! large for a frame ring. The producer allocates contiguous slots in FIFO
//! order and announces each by a descriptor — its position and length —
//! carried in an SPSC frame ring; the consumer reads the slot in place and
//! frees slots in the same order.
//!
//! Nothing in the arena itself is a commit word: the producer's committed
//! position (one word of the control area, stored with Release by
//! [`WriteSlot::commit`]) publishes the slot's bytes, and the consumer's
//! released position (Release, read with Acquire) hands space back. So a
//! message costs the lines its payload spans, a 32-byte descriptor and that
//! one word, nothing else — no header or next-frame word to pull back from
//! the consumer's cache. Commit the slot before the frame that announces it.
//!
//! Every descriptor is validated against the consumer's own position (slots
//! come in order, contiguous, inside the arena): a hostile or buggy producer
//! gets [`Corrupt`], never an out-of-bounds read. A slot is opened for
//! reading ([`Consumer::read`]) only below the committed position, so a
//! descriptor of a slot still being written (one read from a live
//! [`WriteSlot`], or forged) gives no view of bytes a `WriteSlot` may be
//! writing.
//!
//! Access to the bytes is a move-only token bound to a borrow of its side:
//! [`Producer::try_alloc`] hands out a [`WriteSlot`], consumed by
//! [`WriteSlot::commit`]; [`Consumer::read`] hands out a [`ReadSlot`],
//! consumed by [`ReadSlot::consume`]. The descriptor that travels between
//! the sides, [`Slot`], is `Copy` and grants no access. So safe code cannot
//! keep a view of a slot past its commit or its consumption:
//!
//! ```compile_fail
//! # use ringflow_ring::{pool, HeapRegion, WakeMode};
//! # let region = HeapRegion::new(pool::region_len(1024));
//! # unsafe { pool::init(&region, WakeMode::Fenced) }.unwrap();
//! # let mut tx = pool::Producer::attach(&region).unwrap();
//! let mut slot = tx.try_alloc(64).unwrap();
//! let bytes = slot.payload_mut();
//! slot.commit();
//! bytes[0] = 1; // the view does not outlive the commit
//! ```
//!
//! ```compile_fail
//! # use ringflow_ring::{pool, HeapRegion, WakeMode};
//! # let region = HeapRegion::new(pool::region_len(1024));
//! # unsafe { pool::init(&region, WakeMode::Fenced) }.unwrap();
//! # let mut tx = pool::Producer::attach(&region).unwrap();
//! let mut slot = tx.try_alloc(64).unwrap();
//! slot.commit();
//! slot.payload_mut()[0] = 1; // a committed slot is gone
//! ```
//!
//! ```compile_fail
//! # use ringflow_ring::{pool, HeapRegion, WakeMode};
//! # let region = HeapRegion::new(pool::region_len(1024));
//! # unsafe { pool::init(&region, WakeMode::Fenced) }.unwrap();
//! # let mut tx = pool::Producer::attach(&region).unwrap();
//! let a = tx.try_alloc(64).unwrap();
//! let b = tx.try_alloc(64).unwrap(); // two live tokens over the same bytes
//! drop(a);
//! ```
//!
//! ```compile_fail
//! # use ringflow_ring::{pool, HeapRegion, WakeMode};
//! # let region = HeapRegion::new(pool::region_len(1024));
//! # unsafe { pool::init(&region, WakeMode::Fenced) }.unwrap();
//! # let mut rx = pool::Consumer::attach(&region).unwrap();
//! let slot = rx.validate(0, 64).unwrap();
//! let token = rx.read(slot).unwrap();
//! let bytes = token.payload();
//! let rx = token.consume();
//! let _ = rx.release();
//! assert_eq!(bytes[0], 0); // reading after release
//! ```
//!
//! ```compile_fail
//! # use ringflow_ring::{pool, HeapRegion, WakeMode};
//! # let region = HeapRegion::new(pool::region_len(1024));
//! # unsafe { pool::init(&region, WakeMode::Fenced) }.unwrap();
//! # let mut rx = pool::Consumer::attach(&region).unwrap();
//! let slot = rx.validate(0, 64).unwrap();
//! let token = rx.read(slot).unwrap();
//! token.consume();
//! let _ = token.payload(); // a consumed slot is gone
//! ```
//!
//! The same steps, in order, compile:
//!
//! ```
//! # use ringflow_ring::{pool, HeapRegion, WakeMode};
//! # let region = HeapRegion::new(pool::region_len(1024));
//! # unsafe { pool::init(&region, WakeMode::Fenced) }.unwrap();
//! # let mut tx = pool::Producer::attach(&region).unwrap();
//! # let mut rx = pool::Consumer::attach(&region).unwrap();
//! let mut slot = tx.try_alloc(64).unwrap();
//! slot.payload_mut()[0] = 7;
//! let desc = slot.commit(); // (the descriptor travels in a frame ring)
//! let token = rx.read(rx.validate(desc.pos(), desc.len() as u64).unwrap()).unwrap();
//! assert_eq!(token.payload()[0], 7);
//! let _ = token.consume().release();
//! ```
//!
//! The consumer's view is of memory the producer's process can write: see
//! [`ReadSlot::payload`] for what that means and what a reader may rely on.

use crate::control::{self, attach_side, close_side, side_closed, wait_point, WakeMode};
use crate::error::{AttachError, ClaimError, Corrupt};
use crate::region::Access;
use crate::region::Region;
use crate::sync::Ordering;
use crate::wake::{Notify, WaitPoint};
use crate::BLOCK;

// 02: the committed position at `OFF_COMMITTED`.
const MAGIC: u64 = u64::from_le_bytes(*b"RFPOOL02");
const OFF_PRODUCER: usize = 16;
const OFF_CONSUMER: usize = 24;
/// The producer's committed position (end of the last committed slot).
const OFF_COMMITTED: usize = 32;
pub(crate) const OFF_HEAD: usize = BLOCK;
const OFF_SPACE_WAIT: usize = 2 * BLOCK;
/// Bytes of control area in front of the arena.
pub const CONTROL_LEN: usize = 3 * BLOCK;
pub(crate) const DATA: usize = CONTROL_LEN;
/// Slots start on cache-line boundaries.
pub const ALIGN: usize = 64;

/// Region length for an arena of `capacity` bytes (a power of two).
pub const fn region_len(capacity: usize) -> usize {
    CONTROL_LEN + capacity
}

/// Largest slot an arena of `capacity` bytes hands out: half of it, so a
/// slot always fits once the consumer has caught up, wherever the previous
/// one ended.
pub const fn max_slot(capacity: usize) -> usize {
    capacity / 2
}

const fn rounded(len: usize) -> u64 {
    ((len + ALIGN - 1) & !(ALIGN - 1)) as u64
}

/// Lays out a fresh arena over `region`. Only the control area is zeroed:
/// the arena's bytes are never interpreted.
///
/// # Safety
/// No side of the arena in `region` (or in a clone of it) is attached, and
/// nobody in this process uses the region concurrently: `init` rewrites the
/// control words on which the sides' exclusive grants rest, so re-running it
/// under attached sides could grant the same bytes twice. A fresh region (a
/// new `HeapRegion`, a newly created segment) satisfies this.
pub unsafe fn init(region: &impl Region, mode: WakeMode) -> Result<usize, AttachError> {
    control::init(region, MAGIC, CONTROL_LEN, mode, Some(0))
}

/// A slot's descriptor: where a message lies in the arena. Its two words
/// travel in a frame ring; it grants no access to the bytes (that takes a
/// [`WriteSlot`] or a [`ReadSlot`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pos: u64,
    len: usize,
}

impl Slot {
    /// Position (monotonic, not wrapped).
    pub fn pos(&self) -> u64 {
        self.pos
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slot is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The allocating side.
pub struct Producer<R: Region> {
    region: R,
    capacity: usize,
    mask: usize,
    /// End of the last slot committed.
    pending: u64,
    /// The consumer's released position as last read.
    cached_head: u64,
    wake: WakeMode,
}

impl<R: Region> Producer<R> {
    /// Attaches the producer side of an arena laid out by [`init`].
    pub fn attach(region: R) -> Result<Self, AttachError> {
        let (capacity, wake) = control::geometry(&region, MAGIC, CONTROL_LEN)?;
        let head = control::start_position(&region, OFF_HEAD)?;
        attach_side(&region, OFF_PRODUCER)?;
        Ok(Producer { region, capacity, mask: capacity - 1, pending: head, cached_head: head, wake })
    }

    /// Arena bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Where a slot of `len` bytes allocated now starts, and where it ends
    /// (a slot that would cross the end starts over at the beginning).
    #[inline]
    fn place(&self, len: usize) -> (u64, u64) {
        let at = self.pending as usize & self.mask;
        let pos = if at + len > self.capacity { self.pending + (self.capacity - at) as u64 } else { self.pending };
        (pos, pos + rounded(len))
    }

    /// Whether [`try_alloc`](Self::try_alloc) of `len` bytes would succeed
    /// now: `Ok(())` or the error it would return.
    #[inline]
    pub fn ready_for(&mut self, len: usize) -> Result<(), ClaimError> {
        let max = max_slot(self.capacity);
        if len > max {
            return Err(ClaimError::TooLarge { len, max });
        }
        let (_, end) = self.place(len);
        if end > self.cached_head + self.capacity as u64 {
            // SYNC: Acquire; pairs with the Release in `Consumer::release`:
            // the consumer is done with everything before the head it
            // publishes.
            let head = self.region.word(OFF_HEAD).load(Ordering::Acquire);
            if head < self.cached_head || head > self.pending {
                return Err(ClaimError::Corrupt(Corrupt {
                    offset: OFF_HEAD,
                    value: head,
                    what: "pool consumer position outside the allocated range",
                }));
            }
            self.cached_head = head;
            if end > head + self.capacity as u64 {
                // A closed consumer never makes room: `Closed`, not `Full`
                // (a waiter would be told `Full` again and again).
                return Err(if side_closed(&self.region, OFF_CONSUMER) {
                    ClaimError::Closed
                } else {
                    ClaimError::Full
                });
            }
        }
        if side_closed(&self.region, OFF_CONSUMER) {
            return Err(ClaimError::Closed);
        }
        Ok(())
    }

    /// Whether a slot of `len` bytes fits now, reading the consumer's
    /// position afresh (for wait conditions, which cannot mutate).
    pub fn fits(&self, len: usize) -> bool {
        // SYNC: Acquire; pairs with the Release in `Consumer::release`.
        let head = self.region.word(OFF_HEAD).load(Ordering::Acquire);
        len <= max_slot(self.capacity) && self.place(len).1 <= head.saturating_add(self.capacity as u64)
    }

    /// Allocates a slot of `len` bytes. Nothing is published: write it
    /// through the returned token, announce its [`descriptor`](WriteSlot::descriptor)
    /// in a frame, then [`commit`](WriteSlot::commit) it. A slot dropped
    /// without a commit is simply reused by the next allocation.
    #[inline]
    pub fn try_alloc(&mut self, len: usize) -> Result<WriteSlot<'_, R>, ClaimError> {
        self.ready_for(len)?;
        let slot = Slot { pos: self.place(len).0, len };
        Ok(WriteSlot { producer: self, slot })
    }

    /// Region offset of the slot's first byte.
    #[inline]
    fn offset(&self, slot: &Slot) -> usize {
        DATA + (slot.pos as usize & self.mask)
    }

    /// Whether the consumer has closed its side.
    pub fn is_consumer_closed(&self) -> bool {
        side_closed(&self.region, OFF_CONSUMER)
    }

    /// Where this producer sleeps while the arena is full.
    pub fn space_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_SPACE_WAIT, self.wake)
    }

    /// Closes the producer side.
    pub fn close(&mut self) {
        close_side(&self.region, OFF_PRODUCER);
    }
}

impl<R: Region> Drop for Producer<R> {
    fn drop(&mut self) {
        self.close();
    }
}

/// The reading side.
pub struct Consumer<R: Region> {
    region: R,
    capacity: usize,
    mask: usize,
    /// End of the last slot consumed.
    head: u64,
    /// Position last published to the producer.
    published: u64,
    /// Position up to which a release has checked for a sleeping producer.
    notified: u64,
    wake: WakeMode,
}

impl<R: Region> Consumer<R> {
    /// Attaches the consumer side of an arena laid out by [`init`].
    pub fn attach(region: R) -> Result<Self, AttachError> {
        let (capacity, wake) = control::geometry(&region, MAGIC, CONTROL_LEN)?;
        let head = control::start_position(&region, OFF_HEAD)?;
        attach_side(&region, OFF_CONSUMER)?;
        Ok(Consumer { region, capacity, mask: capacity - 1, head, published: head, notified: head, wake })
    }

    /// Arena bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Checks a descriptor from the producer: the slot must be the next one
    /// (right after the last consumed, or at the start of the arena when it
    /// would have crossed the end), contiguous and inside the arena.
    #[inline]
    pub fn validate(&self, pos: u64, len: u64) -> Result<Slot, Corrupt> {
        let bad = |what| Corrupt { offset: DATA, value: pos, what };
        let len = usize::try_from(len).map_err(|_| bad("pool slot length out of range"))?;
        if len > max_slot(self.capacity) {
            return Err(bad("pool slot larger than half the arena"));
        }
        let at = self.head as usize & self.mask;
        let expected = if at + len > self.capacity { self.head + (self.capacity - at) as u64 } else { self.head };
        if pos != expected {
            return Err(bad("pool slot out of order"));
        }
        Ok(Slot { pos, len })
    }

    /// The slot `slot` describes, to read in place: the token borrows the
    /// consumer, so no release can hand the bytes back while it lives. The
    /// descriptor is validated again (a stale or forged one is `Corrupt`),
    /// and the slot must lie below the producer's committed position: a
    /// slot still being written through a [`WriteSlot`] is `Corrupt`, never
    /// a view of bytes written under it.
    #[inline]
    pub fn read(&mut self, slot: Slot) -> Result<ReadSlot<'_, R>, Corrupt> {
        let slot = self.validate(slot.pos, slot.len as u64)?;
        // SYNC: Acquire; pairs with the Release in `WriteSlot::commit`: the
        // slot's bytes, written before its commit, are visible.
        let committed = self.region.word(OFF_COMMITTED).load(Ordering::Acquire);
        // No overflow: `validate` placed the slot within a lap of our head.
        if slot.pos + rounded(slot.len) > committed {
            return Err(Corrupt { offset: OFF_COMMITTED, value: committed, what: "pool slot not committed yet" });
        }
        Ok(ReadSlot { consumer: self, slot })
    }

    /// Bytes consumed since the last release.
    #[inline]
    pub fn unreleased(&self) -> usize {
        (self.head - self.notified) as usize
    }

    /// Publishes the consumed position and tells whether a producer sleeps
    /// waiting for room.
    #[inline]
    pub fn release(&mut self) -> Notify {
        if self.head != self.published {
            // SYNC: Release; pairs with the Acquire in `Producer::ready_for`:
            // our reads of the slots happen before the producer reuses them.
            self.region.word(OFF_HEAD).store(self.head, Ordering::Release);
            self.published = self.head;
        }
        if self.head == self.notified {
            return Notify::None;
        }
        self.notified = self.head;
        self.space_wait().notify()
    }

    /// Where a producer waiting for room sleeps.
    pub fn space_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_SPACE_WAIT, self.wake)
    }

    /// Whether the producer has closed its side.
    pub fn is_producer_closed(&self) -> bool {
        side_closed(&self.region, OFF_PRODUCER)
    }

    /// Closes the consumer side; the producer's next allocation gets `Closed`.
    pub fn close(&mut self) -> Notify {
        let _ = self.release();
        close_side(&self.region, OFF_CONSUMER);
        self.space_wait().notify()
    }
}

impl<R: Region> Drop for Consumer<R> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A slot being written: the only view of its bytes, bound to a borrow of
/// the producer. [`commit`](Self::commit) makes the allocation final and
/// consumes the token.
pub struct WriteSlot<'a, R: Region> {
    producer: &'a mut Producer<R>,
    slot: Slot,
}

impl<'a, R: Region> WriteSlot<'a, R> {
    /// The descriptor to announce (position and length; grants no access).
    pub fn descriptor(&self) -> Slot {
        self.slot
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.slot.len
    }

    /// Whether the slot is empty.
    pub fn is_empty(&self) -> bool {
        self.slot.len == 0
    }

    /// The slot's bytes as written so far.
    #[cfg(not(loom))]
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let off = self.producer.offset(&self.slot);
        // SAFETY: `try_alloc` placed the slot inside the arena and the
        // consumer reads it only once its descriptor is published (after
        // this token is gone); the view borrows the token, so no write
        // through it happens while the view lives.
        unsafe { crate::frame::claimed_payload(&self.producer.region, off, self.slot.len) }
    }

    /// The slot's bytes, writable in place.
    #[cfg(not(loom))]
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let off = self.producer.offset(&self.slot);
        // SAFETY: as in `payload`; the token borrows the producer mutably
        // and is the only token (a second `try_alloc` needs that borrow),
        // so this is the only view of those bytes.
        unsafe { crate::frame::claimed_payload_mut(&self.producer.region, off, self.slot.len) }
    }

    /// Copies `bytes` into the slot at `at`. Panics if it does not fit.
    pub fn write(&mut self, at: usize, bytes: &[u8]) {
        let off = self.producer.offset(&self.slot);
        crate::frame::write_claimed(&self.producer.region, off, self.slot.len, at, bytes);
    }

    /// Makes the allocation final and publishes the slot's bytes (one
    /// Release store): the next allocation starts after it, and the
    /// consumer may open it. Returns the descriptor, to announce after
    /// this (a consumer refuses a slot not yet committed).
    #[inline]
    pub fn commit(self) -> Slot {
        let end = self.slot.pos + rounded(self.slot.len);
        self.producer.pending = end;
        // SYNC: Release; pairs with the Acquire in `Consumer::read`: the
        // slot's bytes are visible to a consumer that sees its end here.
        self.producer.region.word(OFF_COMMITTED).store(end, Ordering::Release);
        self.slot
    }
}

/// A slot being read in place, bound to a borrow of the consumer.
/// [`consume`](Self::consume) consumes it; dropping it leaves the slot
/// unconsumed (a later [`Consumer::read`] of the same descriptor sees it
/// again).
pub struct ReadSlot<'a, R: Region> {
    consumer: &'a mut Consumer<R>,
    slot: Slot,
}

impl<'a, R: Region> ReadSlot<'a, R> {
    /// The descriptor (position and length).
    pub fn descriptor(&self) -> Slot {
        self.slot
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.slot.len
    }

    /// Whether the slot is empty.
    pub fn is_empty(&self) -> bool {
        self.slot.len == 0
    }

    fn offset(&self) -> usize {
        DATA + (self.slot.pos as usize & self.consumer.mask)
    }

    /// The slot's bytes, in place (zero-copy).
    ///
    /// They lie in memory the producer's process maps writable: a buggy or
    /// hostile producer can change them while this view lives. ringflow
    /// never takes a length, offset or bound from them; a reader must not
    /// assume two reads of the same byte agree: parse once, and copy out
    /// what you validate before you act on it. In Rust's memory model such
    /// a concurrent write under a `&[u8]` is a data race, one that only a
    /// misbehaving peer can cause and that no library can rule out for
    /// memory shared with another process (see the crate documentation,
    /// "What a peer can and cannot do to you"); ringflow's own bookkeeping
    /// never depends on these bytes. For untrusted peers prefer
    /// [`copy_to`](Self::copy_to) and validate the copy.
    #[cfg(not(loom))]
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let off = self.offset();
        assert!(off.checked_add(self.slot.len).is_some_and(|end| end <= self.consumer.region.len()), "pool slot");
        // SAFETY: in bounds (asserted; `validate` keeps slots whole inside
        // the arena); an honest producer does not reuse the slot before we
        // release it, and the view borrows this token, which borrows the
        // consumer: no release can happen while it lives.
        unsafe { std::slice::from_raw_parts(self.consumer.region.base().add(off), self.slot.len) }
    }

    /// Copies the slot's bytes into `dst` (at least `len()` bytes).
    pub fn copy_to(&self, dst: &mut [u8]) {
        self.consumer.region.read(self.offset(), &mut dst[..self.slot.len]);
    }

    /// Consumes the slot (locally; [`Consumer::release`] hands it back) and
    /// returns the consumer for that release.
    #[inline]
    pub fn consume(self) -> &'a mut Consumer<R> {
        let c = self.consumer;
        c.head = c.head.max(self.slot.pos + rounded(self.slot.len));
        c
    }
}

/// Whether the arena in `region` is as [`init`] left it (no side attached,
/// nothing released).
pub fn is_fresh(region: &impl Region) -> bool {
    control::geometry(region, MAGIC, CONTROL_LEN).is_ok()
        && control::all_zero(region, &[OFF_PRODUCER, OFF_CONSUMER, OFF_COMMITTED, OFF_HEAD])
}

/// The space wait point of the arena in `region`, for a third party that
/// must wake a sleeping producer (see `spsc::wait_points`).
pub fn space_wait_point(region: &impl Region) -> Result<WaitPoint<'_>, AttachError> {
    let (_, mode) = control::geometry(region, MAGIC, CONTROL_LEN)?;
    Ok(wait_point(region, OFF_SPACE_WAIT, mode))
}
