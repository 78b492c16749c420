//! The SPSC producer's batch writer, [`Producer::write_batch`], and the
//! [`Slot`] each of its frames is written through.

use super::layout::data_off;
use super::producer::Producer;
use crate::error::ClaimError;
use crate::frame::{self, frame_size, FrameWord, HEADER, KIND_DATA};
use crate::region::Access;
use crate::region::Region;
use crate::sync::Ordering;
use crate::wake::Notify;

impl<R: Region> Producer<R> {
    /// Writes up to `max` frames of `len` payload bytes each in place and
    /// publishes them, with any frames pushed before, with one Release: the
    /// batch form of [`try_claim`](Self::try_claim), [`Claim::push`](super::Claim::push) and
    /// [`commit`](Self::commit). `fill` writes each frame through its
    /// [`Slot`] and returns whether the batch goes on; the batch also ends
    /// when the ring is full.
    ///
    /// Why a closure: between claims, the producer's position, sequence
    /// number and held-back commit word stay in registers. Claim by claim,
    /// the compiler must keep them in the producer's memory, because a
    /// store into the ring might alias it; each frame then adds half a
    /// dozen stores to the store buffer, behind the frame's own stores to
    /// lines the consumer last held. A one-way stream is bound by exactly
    /// those stores: on the bench's 2-core VM, 64-byte frames in batches of
    /// 32 went from 0.45–0.52x rtrb's throughput to 0.87–0.95x
    /// (`ringflow bench ring --quick`, stream-64B).
    ///
    /// The first frame is claimed as by `try_claim`, with all its checks
    /// (size, closed consumer, window, room read afresh when short); the
    /// frames after it, as long as they fit before the end of the ring,
    /// inside the room already known and short of the window, skip them.
    /// Returns the frames written (at least one, unless `max` is 0) and
    /// whether to wake the consumer; if not even one fits, the error
    /// `try_claim` would return, and nothing is published.
    /// An error after the first frame ends the batch early; the next call
    /// reports it.
    #[inline]
    pub fn write_batch<F>(&mut self, max: usize, len: usize, fill: F) -> Result<(usize, Notify), ClaimError>
    where
        F: FnMut(&mut Slot<'_, R>) -> bool,
    {
        self.write_batch_sized(|i| (i < max).then_some(len), fill)
    }

    /// [`write_batch`](Self::write_batch) of frames of any lengths: frame
    /// `i` of the batch (from 0) has `len_of(i)` payload bytes, and the
    /// batch ends at the first `None`. `len_of` must give the same answer
    /// each time it is asked about one `i`; `fill` is called once per frame
    /// written, in order (count the calls to know which frame it is).
    #[inline]
    pub fn write_batch_sized<L, F>(&mut self, len_of: L, mut fill: F) -> Result<(usize, Notify), ClaimError>
    where
        L: Fn(usize) -> Option<usize>,
        F: FnMut(&mut Slot<'_, R>) -> bool,
    {
        let mut written = 0;
        let mut go_on = true;
        while go_on {
            let Some(len) = len_of(written) else { break };
            // The general path: the first frame, and whatever the run below
            // cannot place (the end of the ring, the window, room to read).
            let (pad, start) = match self.room_for(len) {
                Ok(placed) => placed,
                Err(e) if written == 0 => return Err(e),
                Err(_) => break,
            };
            let mut slot = Slot { region: &self.region, off: self.payload_off(start), len, meta: 0, flags: 0 };
            go_on = fill(&mut slot);
            let (meta, flags) = (slot.meta, slot.flags);
            self.push_frame(pad, start, len, meta, flags);
            written += 1;
            if go_on {
                let (n, more) = self.push_run(written, &len_of, &mut fill);
                written += n;
                go_on = more;
            }
        }
        Ok((written, self.commit()))
    }

    /// Pushes frames `from`, `from + 1`, ... while they need no check beyond
    /// the room already known: the state lives in locals and is stored back
    /// once. Returns the frames pushed and whether `fill` wants more.
    #[inline(always)]
    fn push_run<L, F>(&mut self, from: usize, len_of: &L, fill: &mut F) -> (usize, bool)
    where
        L: Fn(usize) -> Option<usize>,
        F: FnMut(&mut Slot<'_, R>) -> bool,
    {
        let mut pos = self.pending;
        let lap = pos - (pos & self.mask as u64);
        // Where frames of this run may end: before the end of this lap, and
        // inside the room (less 8 bytes for the next commit word, as
        // `end_after`); each frame must also start short of the window, past
        // which the general path decides.
        let end_limit = (lap + self.capacity as u64).min((self.cached_head + self.capacity as u64).saturating_sub(8));
        let window_end = lap.saturating_add(self.window as u64);
        let max_payload = self.max_payload();
        let (mask, region) = (self.mask, &self.region);
        let (mut seq, mut first, mut n, mut go_on) = (self.seq, self.first, 0, true);
        while go_on && pos < window_end {
            let Some(len) = len_of(from + n) else { break };
            // The length first: `frame_size` of a huge one would overflow.
            if len > max_payload || pos + frame_size(len) as u64 > end_limit {
                break;
            }
            let size = frame_size(len) as u64;
            let frame_off = data_off(pos, mask);
            let mut slot = Slot { region, off: frame_off + HEADER, len, meta: 0, flags: 0 };
            go_on = fill(&mut slot);
            // SYNC: Relaxed; published by the batch's Release in `commit`.
            region.word(frame_off + 8).store(slot.meta, Ordering::Relaxed);
            let word = FrameWord { len: len as u32, kind: KIND_DATA, flags: slot.flags, tag: seq }.encode();
            if first.is_none() {
                first = Some((frame_off, word));
            } else {
                // SYNC: Relaxed; as in `hold_or_store`: reached only after the
                // Acquire of the batch's first word, stored later with Release.
                region.word(frame_off).store(word, Ordering::Relaxed);
            }
            pos += size;
            seq = seq.wrapping_add(1);
            n += 1;
        }
        self.pending = pos;
        self.seq = seq;
        self.first = first;
        (n, go_on)
    }
}

/// One frame of a [`Producer::write_batch`], written in place: the payload,
/// and the metadata word and flags its header will carry.
pub struct Slot<'a, R: Region> {
    region: &'a R,
    /// Region offset of the payload.
    off: usize,
    len: usize,
    meta: u64,
    flags: u8,
}

impl<R: Region> Slot<'_, R> {
    /// Payload length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload, writable in place (zero-copy).
    #[cfg(not(loom))]
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: the frame lies in room the consumer handed back and reads
        // again only after the commit; the slot lives inside `fill`, with the
        // producer borrowed mutably: this is the only view of those bytes.
        unsafe { frame::claimed_payload_mut(self.region, self.off, self.len) }
    }

    /// Copies `bytes` into the payload at `at`. Panics if it does not fit.
    #[inline]
    pub fn write(&mut self, at: usize, bytes: &[u8]) {
        frame::write_claimed(self.region, self.off, self.len, at, bytes)
    }

    /// Sets the frame's metadata word (a send timestamp, for instance).
    pub fn set_meta(&mut self, meta: u64) {
        self.meta = meta;
    }

    /// Sets the frame's flags (free for the layers above).
    pub fn set_flags(&mut self, flags: u8) {
        self.flags = flags;
    }
}
