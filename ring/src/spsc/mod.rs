//! Single-producer single-consumer ring of variable-length frames.
//!
//! The producer writes a frame in place (header, payload) and publishes it by
//! storing its commit word last, with Release. The consumer polls the commit
//! word at its read position with Acquire: the frame header and the payload
//! usually share the cache line the consumer polls, so a message costs about
//! one cache-line transfer, as the physical limit does.
//!
//! Nothing is zeroed behind the consumer. Instead, before it publishes, the
//! producer zeroes the commit word of the *next* frame position, so the word
//! at the consumer's position is always either zero (nothing yet) or a commit
//! of the current lap — never a stale frame or payload of an earlier lap.
//!
//! Batches: [`Claim::push`] adds a frame without publishing it; the frame
//! words of a batch after the first are stored early, and the first is held
//! back and stored last by [`Producer::commit`], publishing the whole batch
//! with one Release. The consumer advances locally and publishes its position
//! with [`Consumer::release`], once per batch if it likes.
//! [`Producer::write_batch`] claims, fills and publishes a batch of
//! frames in one call, with the producer's state in registers between
//! frames: the fast form for streams.
//!
//! Wrap-around: a frame never straddles the end; the producer fills the tail
//! end with a PAD frame and writes the frame at the start. Frames are at most
//! half the capacity, so a frame always fits once the consumer catches up.
//!
//! The window (opt-in, [`Producer::set_window`]): while the consumer keeps
//! up, the producer wraps early, a few hundred bytes into the ring (a PAD
//! frame to the end), so one message in flight at a time cycles through a
//! few warm cache lines instead of the whole ring: on the bench's 2-core VM
//! a 64-byte ping-pong over 16 KiB rings took 1.9–2.0x the physical limit,
//! over 1 KiB rings 1.1–1.6x. Each time it passes the window it reads the
//! consumer's position once: the consumer within one window of the last
//! published frame (and not asleep) means wrap now, as soon as the start of
//! the ring is free; otherwise the rest of the ring is used as usual. Within
//! a window, not exactly caught up: a request/reply peer typically replies
//! before it releases the request, so the position read at the pass is one
//! frame behind, and an exact rule sent whole laps through cold lines (the
//! exact rule measured 1.14–1.55x the limit, within a window 1.08–1.36x, in
//! the same runs). The consumer sees nothing new: PAD frames to the end of
//! the ring are what it always skipped. The price, and why it is not the
//! default: until the consumer reads that padding, the producer's room is
//! at most what it had written on that lap (at least the window), not the
//! whole ring. A polling consumer reads it at its next look; a consumer
//! that is caught up but not looking (the same thread, about to send a
//! burst before it reads) would see the ring full early.
//!
//! Every word read from the region is validated: a bad kind, length, padding
//! or sequence number is [`Corrupt`], never an out-of-bounds access.

use crate::control::{self, attach_side, close_side, side_closed, wait_point, WakeMode};
pub use crate::control::{MAX_CAPACITY, MIN_CAPACITY};
use crate::error::{AttachError, ClaimError, Corrupt};
use crate::frame::{self, frame_size, FrameWord, HEADER, KIND_DATA, KIND_PAD};
use crate::region::Region;
use crate::sync::Ordering;
use crate::wake::{Notify, WaitPoint};
use crate::BLOCK;

mod consumer;
pub use consumer::{Consumer, Peeked, ReadGuard};

pub(crate) const MAGIC: u64 = u64::from_le_bytes(*b"RFSPSC01");

// Control area: one block per writer so that no two writers share a line.
pub(crate) const OFF_PRODUCER: usize = 16;
pub(crate) const OFF_CONSUMER: usize = 24;
pub(crate) const OFF_HEAD: usize = BLOCK;
pub(crate) const OFF_DATA_WAIT: usize = 2 * BLOCK;
pub(crate) const OFF_SPACE_WAIT: usize = 3 * BLOCK;
pub(crate) const OFF_TAIL: usize = 4 * BLOCK;
/// Bytes of control area in front of the data area.
pub const CONTROL_LEN: usize = 5 * BLOCK;
pub(crate) const DATA: usize = CONTROL_LEN;

/// Region length needed for a ring with `capacity` bytes of data
/// (a power of two, at least [`MIN_CAPACITY`]).
pub const fn region_len(capacity: usize) -> usize {
    CONTROL_LEN + capacity
}

/// A window for request/reply rings ([`Producer::set_window`]): four
/// 64-byte messages per pass. On the bench's 2-core VM a 64-byte ping-pong
/// over 16 KiB rings took 1.12–1.31x the physical limit with 256 bytes,
/// 1.21–1.38x with 1 KiB, in the same runs (tuning.md).
pub const LATENCY_WINDOW: usize = 256;

/// Largest payload a ring of `capacity` bytes accepts: half the capacity,
/// less a header and the next frame's commit word.
pub const fn max_payload(capacity: usize) -> usize {
    capacity / 2 - HEADER - 8
}

/// Lays out a fresh ring over `region`. The data capacity is the region
/// length less [`CONTROL_LEN`], and must be a power of two. Only the control
/// area and the first commit word are zeroed: the producer zeroes each next
/// commit word before it publishes, so whatever else the data area holds is
/// never read as a frame (and a fresh memfd's data pages stay untouched until
/// frames reach them).
pub fn init(region: &impl Region) -> Result<usize, AttachError> {
    init_with(region, WakeMode::Fenced)
}

/// Lays out a fresh ring over `region` with the given wake mode.
pub fn init_with(region: &impl Region, mode: WakeMode) -> Result<usize, AttachError> {
    control::init(region, MAGIC, CONTROL_LEN, mode, Some(8))
}

pub(crate) fn geometry(region: &impl Region) -> Result<(usize, WakeMode), AttachError> {
    control::geometry(region, MAGIC, CONTROL_LEN)
}

/// The two wait points of a ring laid out by [`init`] — `(data, space)` —
/// for a third party that is neither side but must wake the sides' sleepers
/// (a watcher that learned the peer process died).
pub fn wait_points(region: &impl Region) -> Result<(WaitPoint<'_>, WaitPoint<'_>), AttachError> {
    let (_, mode) = geometry(region)?;
    Ok((wait_point(region, OFF_DATA_WAIT, mode), wait_point(region, OFF_SPACE_WAIT, mode)))
}

/// Whether the ring in `region` is as [`init`] left it: no side attached,
/// nothing written (for a process checking a ring a peer laid out).
pub fn is_fresh(region: &impl Region) -> bool {
    geometry(region).is_ok() && control::all_zero(region, &[OFF_PRODUCER, OFF_CONSUMER, OFF_HEAD, OFF_TAIL, DATA])
}

/// The position up to which a frame of `len` bytes starting at `start`
/// needs room: +8 for the commit word after it, which must be free to be
/// zeroed.
#[inline(always)]
const fn end_after(start: u64, len: usize) -> u64 {
    start + frame_size(len) as u64 + 8
}

/// The writing side.
pub struct Producer<R: Region> {
    region: R,
    capacity: usize,
    mask: usize,
    /// Position after the last published frame.
    tail: u64,
    /// Position after the last pushed (maybe unpublished) frame.
    pending: u64,
    /// The commit word held back to publish the pending batch: (offset, word).
    first: Option<(usize, u64)>,
    /// The consumer's position as last read; refreshed only when full.
    cached_head: u64,
    /// Sequence tag of the next frame.
    seq: u16,
    wake: WakeMode,
    /// Offset past which frames wrap early while the consumer keeps up.
    window: usize,
    /// The start position of the lap whose pass over the window was decided.
    window_lap: u64,
    /// The decision of that lap: the consumer was within a window of the
    /// tail and awake.
    caught_up: bool,
}

impl<R: Region> Producer<R> {
    /// Attaches the producer side of a ring laid out by [`init`].
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

    /// Wraps early past `bytes` into the ring while the consumer keeps up
    /// and polls (see the module documentation; off by default, and
    /// `usize::MAX` turns it off again). For rings that carry one request
    /// or reply at a time: [`LATENCY_WINDOW`]. A smaller window keeps fewer
    /// lines warm and reads the consumer's position more often (once per
    /// pass); right after an early wrap, room is what was written on that
    /// lap until the consumer reads on.
    pub fn set_window(&mut self, bytes: usize) {
        self.window = bytes;
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
    #[inline]
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

    /// Where a frame of `len` bytes claimed now starts, and its padding.
    #[inline]
    fn place(&self, len: usize) -> (u64, u64) {
        let need = frame_size(len) as u64;
        let at = self.pending as usize & self.mask;
        let room_to_end = (self.capacity - at) as u64;
        let pad = if need <= room_to_end && !self.wraps_early(at, len) { 0 } else { room_to_end };
        (pad, self.pending + pad)
    }

    /// Whether a frame of `len` bytes at offset `at` starts the next lap
    /// now: past the window, on a lap whose pass found the consumer caught
    /// up, and only if the frame fits there by the position read then (else
    /// it goes where it would have anyway).
    #[inline]
    fn wraps_early(&self, at: usize, len: usize) -> bool {
        let lap = self.pending - at as u64;
        if at < self.window || !self.caught_up || self.window_lap != lap {
            return false;
        }
        end_after(lap + self.capacity as u64, len) <= self.cached_head + self.capacity as u64
    }

    /// Past the window for the first time this lap: reads the consumer's
    /// position once and decides whether this lap ends here.
    #[inline]
    fn pass_window(&mut self) -> Result<(), ClaimError> {
        let at = self.pending as usize & self.mask;
        // Off (the default): one compare per claim, nothing else.
        if at < self.window {
            return Ok(());
        }
        let lap = self.pending - at as u64;
        if self.window_lap == lap {
            return Ok(());
        }
        self.window_lap = lap;
        self.refresh_head()?;
        // Keeping up (within a window: see the module documentation) and
        // polling. A consumer asleep would leave the early padding unread
        // until woken, and until then a burst would have only the window's
        // bytes of room instead of the ring's.
        self.caught_up = self.tail - self.cached_head <= self.window as u64 && !self.data_wait().has_sleepers();
        Ok(())
    }

    #[inline]
    fn end_of(&self, len: usize) -> u64 {
        let (_, start) = self.place(len);
        end_after(start, len)
    }

    #[inline(always)]
    fn room_for(&mut self, len: usize) -> Result<(u64, u64), ClaimError> {
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
                return Err(ClaimError::Full);
            }
        }
        if side_closed(&self.region, OFF_CONSUMER) {
            return Err(ClaimError::Closed);
        }
        Ok((pad, start))
    }

    #[cold]
    fn refresh_head(&mut self) -> Result<(), ClaimError> {
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
        let mut claim = self.try_claim(payload.len())?;
        claim.write(0, payload);
        Ok(claim.commit())
    }

    /// Writes up to `max` frames of `len` payload bytes each in place and
    /// publishes them, with any frames pushed before, with one Release: the
    /// batch form of [`try_claim`](Self::try_claim), [`Claim::push`] and
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
    pub fn write_batch<F>(&mut self, max: usize, len: usize, mut fill: F) -> Result<(usize, Notify), ClaimError>
    where
        F: FnMut(&mut Slot<'_, R>) -> bool,
    {
        let mut written = 0;
        let mut go_on = true;
        while go_on && written < max {
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
            if go_on && written < max {
                let (n, more) = self.push_run(max - written, len, &mut fill);
                written += n;
                go_on = more;
            }
        }
        Ok((written, self.commit()))
    }

    /// Pushes up to `max` frames that need no check beyond the room already
    /// known: the state lives in locals and is stored back once. Returns the
    /// frames pushed and whether `fill` wants more.
    #[inline(always)]
    fn push_run<F>(&mut self, max: usize, len: usize, fill: &mut F) -> (usize, bool)
    where
        F: FnMut(&mut Slot<'_, R>) -> bool,
    {
        let size = frame_size(len) as u64;
        let mut pos = self.pending;
        let lap = pos - (pos & self.mask as u64);
        // The last start position that fits: before the end of this lap,
        // inside the room (+8 for the next commit word, as `end_after`), and
        // short of the window, past which the general path decides.
        let last =
            (lap + self.capacity as u64 - size).min((self.cached_head + self.capacity as u64).saturating_sub(size + 8));
        let window_end = lap.saturating_add(self.window as u64);
        let (mask, region) = (self.mask, &self.region);
        let (mut seq, mut first, mut n, mut go_on) = (self.seq, self.first, 0, true);
        while go_on && n < max && pos <= last && pos < window_end {
            let frame_off = DATA + (pos as usize & mask);
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

    #[inline(always)]
    fn payload_off(&self, start: u64) -> usize {
        DATA + (start as usize & self.mask) + HEADER
    }

    /// Publishes every pushed frame with one Release store.
    #[inline]
    pub fn commit(&mut self) -> Notify {
        let Some((off, word)) = self.first.take() else {
            return Notify::None;
        };
        // The consumer stops at the next position: clear what an earlier lap
        // left there. The claim checks reserved these 8 bytes.
        let next = DATA + (self.pending as usize & self.mask);
        self.region.word(next).store(0, Ordering::Relaxed);
        self.tail = self.pending;
        // SYNC: Relaxed; published by the Release below. The tail goes first:
        // a consumer that sees the batch's first commit word also sees a
        // tail that covers it, so `Consumer::read_batch` can learn what is
        // committed from the tail alone and never polls the line this
        // producer is writing. A tail seen early only points at commit
        // words still zero, which `read_batch` stops at. Its own line, so
        // pollers of frames never contend for it.
        self.region.word(OFF_TAIL).store(self.tail, Ordering::Relaxed);
        // SYNC: Release; pairs with the Acquire in `Consumer::locate` and in
        // `Consumer::read_batch`: payloads, metadata, the batch's later
        // commit words, the zeroed next word and the tail are all visible to
        // a consumer that sees this word.
        self.region.word(off).store(word, Ordering::Release);
        self.data_wait().notify()
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
        (head + self.capacity as u64).saturating_sub(self.pending).min(self.capacity as u64) as usize
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
    /// gets [`ReadError::Closed`]. Pushed but uncommitted frames are dropped.
    pub fn close(&mut self) -> Notify {
        self.first = None;
        close_side(&self.region, OFF_PRODUCER);
        self.data_wait().notify()
    }

    #[inline]
    fn push_frame(&mut self, pad: u64, start: u64, len: usize, meta: u64, flags: u8) {
        let frame_off = DATA + (start as usize & self.mask);
        // SYNC: Relaxed; published by the batch's Release in `commit`.
        self.region.word(frame_off + 8).store(meta, Ordering::Relaxed);
        if pad > 0 {
            let pad_off = DATA + (self.pending as usize & self.mask);
            self.hold_or_store(pad_off, FrameWord { len: pad as u32, kind: KIND_PAD, flags: 0, tag: 0 }.encode());
        }
        let word = FrameWord { len: len as u32, kind: KIND_DATA, flags, tag: self.seq }.encode();
        self.hold_or_store(frame_off, word);
        self.pending = start + frame_size(len) as u64;
        self.seq = self.seq.wrapping_add(1);
    }

    #[inline]
    fn hold_or_store(&mut self, off: usize, word: u64) {
        if self.first.is_none() {
            self.first = Some((off, word));
        } else {
            // SYNC: Relaxed; the consumer reaches this word only after the
            // Acquire of the batch's first word, which `commit` stores later
            // with Release.
            self.region.word(off).store(word, Ordering::Relaxed);
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

/// Room for one frame, claimed and not yet published. Write the payload, then
/// [`push`](Claim::push) or [`commit`](Claim::commit) it; dropping the claim
/// abandons it.
pub struct Claim<'a, R: Region> {
    producer: &'a mut Producer<R>,
    pad: u64,
    start: u64,
    len: usize,
    meta: u64,
    flags: u8,
}

impl<R: Region> Claim<'_, R> {
    fn payload_offset(&self) -> usize {
        self.producer.payload_off(self.start)
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload as written so far, in place.
    #[cfg(not(loom))]
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let off = self.payload_offset();
        // SAFETY: as in `payload_mut`; this shared view borrows `self`, so no
        // write through the claim happens while it lives.
        unsafe { frame::claimed_payload_mut(&self.producer.region, off, self.len) }
    }

    /// The payload, writable in place (zero-copy).
    #[cfg(not(loom))]
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let off = self.payload_offset();
        // SAFETY: `try_claim` reserved the frame inside the data area, the
        // consumer reads it only after the commit, and `self` borrows the
        // producer mutably: this is the only view of those bytes.
        unsafe { frame::claimed_payload_mut(&self.producer.region, off, self.len) }
    }

    /// Copies `bytes` into the payload at `at`. Panics if it does not fit.
    #[inline]
    pub fn write(&mut self, at: usize, bytes: &[u8]) {
        frame::write_claimed(&self.producer.region, self.payload_offset(), self.len, at, bytes)
    }

    /// Sets the frame's metadata word (a send timestamp, for instance).
    pub fn set_meta(&mut self, meta: u64) {
        self.meta = meta;
    }

    /// Sets the frame's flags (free for the layers above).
    pub fn set_flags(&mut self, flags: u8) {
        self.flags = flags;
    }

    /// Adds the frame to the pending batch; [`Producer::commit`] publishes it.
    #[inline]
    pub fn push(self) {
        let Claim { producer, pad, start, len, meta, flags } = self;
        producer.push_frame(pad, start, len, meta, flags);
    }

    /// Publishes the frame, with any frames pushed before it.
    #[inline]
    pub fn commit(self) -> Notify {
        let Claim { producer, pad, start, len, meta, flags } = self;
        producer.push_frame(pad, start, len, meta, flags);
        producer.commit()
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

#[cfg(all(test, not(loom)))]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::HeapRegion;

    fn ring(cap: usize) -> (Producer<Arc<HeapRegion>>, Consumer<Arc<HeapRegion>>) {
        let region = Arc::new(HeapRegion::new(region_len(cap)));
        init(&*region).unwrap();
        (Producer::attach(region.clone()).unwrap(), Consumer::attach(region).unwrap())
    }

    /// One message in flight at a time stays within the window (plus one
    /// frame); a consumer that lags gets the whole ring, as without one.
    #[test]
    fn frames_stay_in_the_window_while_the_consumer_keeps_up() {
        let (mut tx, mut rx) = ring(16 << 10);
        tx.set_window(LATENCY_WINDOW);
        for i in 0..1000u32 {
            let at = tx.pending as usize & tx.mask;
            assert!(at < LATENCY_WINDOW + frame_size(64), "message {i} at {at}");
            let _ = tx.try_send(&[i as u8; 64]).unwrap();
            assert_eq!(rx.try_read().unwrap().payload(), &[i as u8; 64]);
            let _ = rx.release();
        }
        // On to the first frame of a lap, then frames left unread: the
        // consumer lags when the producer next passes the window, and the
        // ring fills up to its capacity, not the window.
        let mut i = 0u8;
        while tx.pending as usize & tx.mask != frame_size(64) {
            let _ = tx.try_send(&[i; 64]).unwrap();
            assert_eq!(rx.try_read().unwrap().payload(), &[i; 64]);
            let _ = rx.release();
            i = i.wrapping_add(1);
        }
        // Four frames unread: more than a window behind at the next pass.
        for _ in 0..4 {
            let _ = tx.try_send(&[7; 64]).unwrap();
        }
        let mut sent = 4;
        while tx.try_send(&[7; 64]).is_ok() {
            sent += 1;
        }
        assert!(sent * frame_size(64) > (16 << 10) - LATENCY_WINDOW - 2 * frame_size(64), "{sent} frames");
        for _ in 0..sent {
            assert_eq!(rx.try_read().unwrap().payload(), &[7; 64]);
        }
        assert_eq!(rx.try_read().err(), Some(crate::ReadError::Empty));
    }

    /// The window's price, and why it is opt-in: a burst right after an
    /// early wrap has the lap's written bytes as room until the consumer
    /// reads on; without a window the same pattern gets the whole ring.
    #[test]
    fn a_burst_after_an_early_wrap_has_the_lap_as_room() {
        let burst = |window: usize| {
            let (mut tx, mut rx) = ring(16 << 10);
            tx.set_window(window);
            // One at a time up to the window, the consumer keeping up: the
            // burst's first claim passes it.
            for i in 0..(LATENCY_WINDOW / frame_size(64) + 1) as u8 {
                let _ = tx.try_send(&[i; 64]).unwrap();
                assert_eq!(rx.try_read().unwrap().payload(), &[i; 64]);
                let _ = rx.release();
            }
            let mut sent = 0;
            while tx.try_send(&[0; 64]).is_ok() {
                sent += 1;
            }
            sent
        };
        let whole = (16 << 10) / frame_size(64);
        assert!(burst(usize::MAX) >= whole - 2, "no window: the whole ring");
        let after_wrap = burst(LATENCY_WINDOW);
        assert!(after_wrap * frame_size(64) <= LATENCY_WINDOW + 2 * frame_size(64), "{after_wrap} frames");
    }

    /// The loom models' case (`early_wraps_*`): 24-byte frames, window 32
    /// in 128 bytes; read one by one, the third frame starts the next lap.
    #[test]
    fn the_third_frame_wraps_early_when_the_first_two_were_read() {
        let (mut tx, mut rx) = ring(128);
        tx.set_window(32);
        for (i, len) in [8usize, 3, 6, 2].into_iter().enumerate() {
            let _ = tx.try_send(&vec![i as u8; len]).unwrap();
            assert_eq!(rx.try_read().unwrap().payload(), &vec![i as u8; len][..]);
            let _ = rx.release();
        }
        // Frames at 0, 24, then 128 (padding from 48), then 152.
        assert_eq!(tx.pending, 128 + 2 * 24);
    }
}
