//! The writing side of the SPSC ring: claiming room, publishing frames and
//! batches with one Release, closing. The window policy is in `window.rs`,
//! the batch writer in `batch.rs`, the claim token in `claim.rs`.

use super::claim::Claim;
use super::layout::{
    data_off, end_after, geometry, max_payload, OFF_CONSUMER, OFF_DATA_WAIT, OFF_HEAD, OFF_PRODUCER, OFF_SPACE_WAIT,
    OFF_TAIL,
};
use crate::control::{self, attach_side, close_side, side_closed, wait_point, WakeMode};
use crate::error::{AttachError, ClaimError, Corrupt};
use crate::frame::{frame_size, FrameWord, HEADER, KIND_DATA, KIND_PAD};
use crate::region::Access;
use crate::region::Region;
use crate::sync::Ordering;
use crate::wake::{Notify, WaitPoint};

/// The writing side.
pub struct Producer<R: Region> {
    pub(super) region: R,
    pub(super) capacity: usize,
    pub(super) mask: usize,
    /// Position after the last published frame.
    pub(super) tail: u64,
    /// Position after the last pushed (maybe unpublished) frame.
    pub(super) pending: u64,
    /// The commit word held back to publish the pending batch: (offset, word).
    pub(super) first: Option<(usize, u64)>,
    /// The consumer's position as last read; refreshed only when full.
    pub(super) cached_head: u64,
    /// Sequence tag of the next frame.
    pub(super) seq: u16,
    pub(super) wake: WakeMode,
    /// Offset past which frames wrap early while the consumer keeps up.
    pub(super) window: usize,
    /// The start position of the lap whose pass over the window was decided.
    pub(super) window_lap: u64,
    /// The decision of that lap: the consumer was within a window of the
    /// tail and awake.
    pub(super) caught_up: bool,
}

impl<R: Region> Producer<R> {
    /// Attaches the producer side of a ring laid out by [`init`](super::init).
    pub fn attach(region: R) -> Result<Self, AttachError> {
        let (capacity, wake) = geometry(&region)?;
        let head = control::start_position(&region, OFF_HEAD)?;
        attach_side(&region, OFF_PRODUCER)?;
        Ok(Producer {
            region,
            capacity,
            mask: capacity - 1,
            tail: head,
            pending: head,
            first: None,
            cached_head: head,
            seq: 0,
            wake,
            window: usize::MAX,
            window_lap: u64::MAX,
            caught_up: false,
        })
    }

    /// Data capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Largest payload this ring accepts.
    pub fn max_payload(&self) -> usize {
        max_payload(self.capacity)
    }

    /// Whether the consumer has closed its side.
    pub fn is_consumer_closed(&self) -> bool {
        side_closed(&self.region, OFF_CONSUMER)
    }

    /// Claims room for a frame of `len` payload bytes. The frame is written
    /// in place through the returned [`Claim`], then pushed or committed;
    /// dropping the claim abandons it with no trace in the ring.
    #[inline(always)]
    pub fn try_claim(&mut self, len: usize) -> Result<Claim<'_, R>, ClaimError> {
        let (pad, start) = self.room_for(len)?;
        Ok(Claim { producer: self, pad, start, len, meta: 0, flags: 0 })
    }

    /// Whether [`try_claim`](Self::try_claim) of `len` bytes would succeed
    /// now: `Ok(())`, or the error it would return. For a layer above that
    /// must wait for room before it claims.
    #[inline]
    pub fn ready_for(&mut self, len: usize) -> Result<(), ClaimError> {
        self.room_for(len).map(|_| ())
    }

    /// Whether a frame of `len` bytes fits now, reading the consumer's
    /// position afresh (for wait conditions, which cannot mutate).
    pub fn fits(&self, len: usize) -> bool {
        // SYNC: Acquire; pairs with the Release in `Consumer::release`.
        let head = self.region.word(OFF_HEAD).load(Ordering::Acquire);
        len <= self.max_payload() && self.end_of(len) <= head.saturating_add(self.capacity as u64)
    }

    #[inline]
    pub(super) fn end_of(&self, len: usize) -> u64 {
        let (_, start) = self.place(len);
        end_after(start, len)
    }

    #[inline(always)]
    pub(super) fn room_for(&mut self, len: usize) -> Result<(u64, u64), ClaimError> {
        let max = self.max_payload();
        if len > max {
            return Err(ClaimError::TooLarge { len, max });
        }
        self.pass_window()?;
        let (pad, start) = self.place(len);
        let end = end_after(start, len);
        if end > self.cached_head + self.capacity as u64 {
            self.refresh_head()?;
            if end > self.cached_head + self.capacity as u64 {
                return Err(self.full_or_closed());
            }
        }
        if side_closed(&self.region, OFF_CONSUMER) {
            return Err(ClaimError::Closed);
        }
        Ok((pad, start))
    }

    /// No room: `Full`, unless the consumer has closed, which will never
    /// make room (a waiter told `Full` would wait for nothing, and one
    /// whose wait ends at the close would be told `Full` again and again).
    #[cold]
    fn full_or_closed(&self) -> ClaimError {
        if side_closed(&self.region, OFF_CONSUMER) {
            ClaimError::Closed
        } else {
            ClaimError::Full
        }
    }

    #[cold]
    pub(super) fn refresh_head(&mut self) -> Result<(), ClaimError> {
        // SYNC: Acquire; pairs with the Release in `Consumer::release`: the
        // consumer is done reading everything before the head it publishes.
        let head = self.region.word(OFF_HEAD).load(Ordering::Acquire);
        // The consumer cannot have released more than was published, nor go
        // backwards; anything else is a corrupt (or hostile) consumer.
        if head < self.cached_head || head > self.tail {
            return Err(ClaimError::Corrupt(Corrupt {
                offset: OFF_HEAD,
                value: head,
                what: "consumer position outside the published range",
            }));
        }
        self.cached_head = head;
        Ok(())
    }

    /// Copies `payload` into one frame and publishes it (with any frames
    /// pushed before it).
    pub fn try_send(&mut self, payload: &[u8]) -> Result<Notify, ClaimError> {
        self.try_send_with(payload, 0, 0)
    }

    /// [`try_send`](Self::try_send) with the frame's metadata word and
    /// flags: a claim, its write and its commit in one step, for the copy
    /// path of the layers above (the same stores in the same order as
    /// through a [`Claim`]).
    #[inline(always)]
    pub fn try_send_with(&mut self, payload: &[u8], meta: u64, flags: u8) -> Result<Notify, ClaimError> {
        let len = payload.len();
        let (pad, start) = self.room_for(len)?;
        crate::frame::write_claimed(&self.region, self.payload_off(start), len, 0, payload);
        self.push_frame(pad, start, len, meta, flags);
        Ok(self.commit())
    }

    #[inline(always)]
    pub(super) fn payload_off(&self, start: u64) -> usize {
        data_off(start, self.mask) + HEADER
    }

    /// Publishes every pushed frame with one Release store.
    #[inline(always)]
    pub fn commit(&mut self) -> Notify {
        let Some((off, word)) = self.first.take() else {
            return Notify::None;
        };
        // The consumer stops at the next position: clear what an earlier lap
        // left there. The claim checks reserved these 8 bytes.
        let next = data_off(self.pending, self.mask);
        // SAFETY: `data_off` is DATA plus `pos & mask & !7`: 8-aligned and
        // at most DATA + capacity - 8; attach checked (`geometry`) that the
        // region is CONTROL_LEN (= DATA) + capacity bytes, `mask` capacity - 1.
        let next_word = unsafe { self.region.word_unchecked(next) };
        next_word.store(0, Ordering::Relaxed);
        self.tail = self.pending;
        // SYNC: Relaxed; published by the Release below. The tail goes first:
        // a consumer that sees the batch's first commit word also sees a
        // tail that covers it, so `Consumer::read_batch` can learn what is
        // committed from the tail alone and never polls the line this
        // producer is writing. A tail seen early only points at commit
        // words still zero, which `read_batch` stops at. Its own line, so
        // pollers of frames never contend for it.
        // SAFETY: a control word: OFF_TAIL + 8 <= CONTROL_LEN, inside the
        // region (attach checked its length, `geometry`).
        unsafe { self.region.word_unchecked(OFF_TAIL) }.store(self.tail, Ordering::Relaxed);
        // SYNC: Release; pairs with the Acquire in `Consumer::locate` and in
        // `Consumer::read_batch`: payloads, metadata, the batch's later
        // commit words, the zeroed next word and the tail are all visible to
        // a consumer that sees this word.
        // SAFETY: `off` is a `data_off` (`push_frame`, `write_batch`): as
        // for `next` above.
        unsafe { self.region.word_unchecked(off) }.store(word, Ordering::Release);
        // SAFETY: control words: OFF_DATA_WAIT + 16 <= CONTROL_LEN, inside
        // the region (attach checked its length, `geometry`). The same wait
        // point as `data_wait`, without its two checked lookups.
        let (seq, sleepers) =
            unsafe { (self.region.word_unchecked(OFF_DATA_WAIT), self.region.word_unchecked(OFF_DATA_WAIT + 8)) };
        WaitPoint::with_mode(seq, sleepers, self.wake).notify()
    }

    /// Frames pushed but not yet committed.
    pub fn has_pending(&self) -> bool {
        self.first.is_some()
    }

    /// Bytes of ring not yet handed back by the consumer, read afresh (for
    /// deciding when to stop waiting, not for hot paths).
    pub fn free_bytes(&self) -> usize {
        // SYNC: Acquire; pairs with the Release in `Consumer::release`.
        let head = self.region.word(OFF_HEAD).load(Ordering::Acquire);
        head.saturating_add(self.capacity as u64).saturating_sub(self.pending).min(self.capacity as u64) as usize
    }

    /// Where a consumer waiting for data sleeps (for the caller's futex).
    pub fn data_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_DATA_WAIT, self.wake)
    }

    /// Where this producer sleeps when the ring is full.
    pub fn space_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_SPACE_WAIT, self.wake)
    }

    /// Closes the producer side: the consumer reads what was committed, then
    /// gets [`ReadError::Closed`](crate::ReadError::Closed). Pushed but uncommitted frames are dropped.
    pub fn close(&mut self) -> Notify {
        self.first = None;
        close_side(&self.region, OFF_PRODUCER);
        self.data_wait().notify()
    }

    #[inline(always)]
    pub(super) fn push_frame(&mut self, pad: u64, start: u64, len: usize, meta: u64, flags: u8) {
        let frame_off = data_off(start, self.mask);
        // SYNC: Relaxed; published by the batch's Release in `commit`.
        // SAFETY: `frame_off` is a `data_off` (8-aligned) where the claim
        // placed a frame of at least 16 bytes whole before the ring's end
        // (`place` pads otherwise), so its second word ends at most at DATA
        // + capacity, the region's length (checked at attach).
        unsafe { self.region.word_unchecked(frame_off + 8) }.store(meta, Ordering::Relaxed);
        if pad > 0 {
            let pad_off = data_off(self.pending, self.mask);
            self.hold_or_store(pad_off, FrameWord { len: pad as u32, kind: KIND_PAD, flags: 0, tag: 0 }.encode());
        }
        let word = FrameWord { len: len as u32, kind: KIND_DATA, flags, tag: self.seq }.encode();
        self.hold_or_store(frame_off, word);
        self.pending = start + frame_size(len) as u64;
        self.seq = self.seq.wrapping_add(1);
    }

    #[inline(always)]
    pub(super) fn hold_or_store(&mut self, off: usize, word: u64) {
        if self.first.is_none() {
            self.first = Some((off, word));
        } else {
            // SYNC: Relaxed; the consumer reaches this word only after the
            // Acquire of the batch's first word, which `commit` stores later
            // with Release.
            // SAFETY: `off` is a `data_off` (`push_frame`): 8-aligned, at
            // most DATA + capacity - 8, inside the region (checked at attach).
            unsafe { self.region.word_unchecked(off) }.store(word, Ordering::Relaxed);
        }
    }
}

impl<R: Region> Drop for Producer<R> {
    /// Closes the side. A consumer asleep on the ring is not woken here (no
    /// system calls in this crate): the layer above wakes it.
    fn drop(&mut self) {
        let _ = self.close();
    }
}
