//! The reading side of the broadcast log: [`Consumer`] and its [`ReadGuard`].

use super::{
    corrupt, free_slot, geometry, wait_point, FrameMark, Geometry, Mode, ACTIVE, FREE, HEADER, JUMP_TRIES,
    OFF_CONSUMERS_USED, OFF_DATA_WAIT, OFF_LATEST, OFF_SPACE_WAIT, OFF_TAIL, SLOT_CURSOR, SLOT_STATE,
};
use crate::error::{AttachError, ReadError};
use crate::frame::{FrameWord, KIND_PAD};
use crate::region::Access;
use crate::region::Region;
use crate::sync::{fence, spin_hint, Ordering};
use crate::wake::{Notify, WaitPoint};

/// A frame as found by a consumer (header fields validated).
#[derive(Clone, Copy, Debug, Default)]
struct FrameAt {
    pos: u64,
    payload: usize,
    len: usize,
    size: u64,
    producer: u16,
    flags: u8,
    seq: u64,
    meta: u64,
    missed_before: u64,
}

/// Next-sequence entry of a producer this consumer has not heard from.
const UNKNOWN_SEQ: u64 = u64::MAX;

/// A reading side, with its own cursor. It receives the frames claimed after
/// it attached.
pub struct Consumer<R: Region> {
    region: R,
    geo: Geometry,
    index: usize,
    /// Region offset of our slot.
    slot_off: usize,
    /// Position of the next frame to read (advanced locally).
    cursor: u64,
    /// Cursor last published to the producers.
    published: u64,
    /// Next expected sequence number per producer id.
    expected: Vec<u64>,
    /// Whether `reading` holds the frame [`peek_frame`](Self::peek_frame)
    /// found, for the `try_read` that follows (valid while the cursor stays
    /// at `reading.pos`).
    peeked: bool,
    /// The frame a [`ReadGuard`] reads, or the one a peek found (kept
    /// here, so that a guard is a reference that moves cheaply through the
    /// layers above, and a peek followed by a read validates and copies
    /// the header once).
    reading: FrameAt,
    closed: bool,
}

/// What [`Consumer::peek_frame`] tells of the next frame, without
/// consuming it or lending its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    /// The frame's position in the log.
    pub position: u64,
    /// Payload length.
    pub len: usize,
    /// Id of the producer that sent it.
    pub producer: u16,
    /// The producer's flags.
    pub flags: u8,
    /// The producer's sequence number of it.
    pub seq: u64,
    /// Frames of this producer lost just before it.
    pub missed_before: u64,
    /// The metadata word.
    pub meta: u64,
}

impl<R: Region> Consumer<R> {
    /// Attaches a consumer, taking a free consumer slot; it joins at the
    /// current tail.
    pub fn attach(region: R) -> Result<Self, AttachError> {
        let geo = geometry(&region)?;
        for index in 0..geo.max_consumers {
            match take_slot(&region, &geo, index) {
                Err(AttachError::Busy) => continue,
                r => return r.map(|cursor| Consumer::at(region, geo, index, cursor)),
            }
        }
        Err(AttachError::Busy)
    }

    /// Attaches to consumer slot `index` itself, joining at the current
    /// tail: [`AttachError::Busy`] if the slot is taken, `BadGeometry` if
    /// the log has no such slot. (A group's keeper takes the slot of the
    /// member it admits, then hands it over: [`detach`](Self::detach),
    /// [`adopt`](Self::adopt).)
    pub fn attach_slot(region: R, index: usize) -> Result<Self, AttachError> {
        let geo = geometry(&region)?;
        if index >= geo.max_consumers {
            return Err(AttachError::BadGeometry { what: "no such consumer slot", value: index as u64 });
        }
        take_slot(&region, &geo, index).map(|cursor| Consumer::at(region, geo, index, cursor))
    }

    fn at(region: R, geo: Geometry, index: usize, cursor: u64) -> Self {
        let expected = vec![UNKNOWN_SEQ; geo.max_producers];
        let slot_off = geo.consumer_slot(index);
        Consumer {
            region,
            geo,
            index,
            slot_off,
            cursor,
            published: cursor,
            expected,
            peeked: false,
            reading: FrameAt::default(),
            closed: false,
        }
    }
    /// Gives this side up without freeing its slot: the slot stays taken
    /// and (reliable mode) its published cursor keeps holding producers
    /// back, until someone [adopts](Self::adopt) or evicts it. Returns the
    /// slot index. Frames read but not [released](Self::release) stay
    /// unreleased.
    pub fn detach(mut self) -> usize {
        self.closed = true;
        self.index
    }

    /// Takes over slot `index`, held for the caller by a side that
    /// [detached](Self::detach) it, and starts reading at `start`: a frame
    /// position at or after the slot's published cursor and at or before
    /// the tail (`BadGeometry` otherwise). The new cursor is published at
    /// once, so producers may reuse what lies before `start`.
    ///
    /// # Safety
    /// The slot was detached for the caller, and no other side uses it
    /// until this one is dropped, closed or detached: no other `Consumer`
    /// in this process holds the slot. Two sides on one slot publish one
    /// cursor; on a reliable log the one ahead lets producers overwrite
    /// frames the one behind still reads in place.
    pub unsafe fn adopt(region: R, index: usize, start: u64) -> Result<Self, AttachError> {
        let geo = geometry(&region)?;
        if index >= geo.max_consumers {
            return Err(AttachError::BadGeometry { what: "no such consumer slot", value: index as u64 });
        }
        let slot = geo.consumer_slot(index);
        // SYNC: Acquire; pairs with the AcqRel CAS that took the slot (and
        // the Release in `free_slot`): a slot nobody holds is refused.
        if region.word(slot + SLOT_STATE).load(Ordering::Acquire) != ACTIVE {
            return Err(AttachError::BadGeometry { what: "consumer slot not held", value: index as u64 });
        }
        // SYNC: Relaxed; our own slot's word, written by the side that
        // detached it (ordered by the handover that told us of it).
        let published = region.word(slot + SLOT_CURSOR).load(Ordering::Relaxed);
        // SYNC: Acquire; pairs with the Release claim CAS: frames below the
        // tail we read were claimed.
        let tail = region.word(OFF_TAIL).load(Ordering::Acquire);
        if start % 8 != 0 || start < published || start > tail {
            return Err(AttachError::BadGeometry {
                what: "start outside the slot's cursor and the tail",
                value: start,
            });
        }
        // SYNC: Release; pairs with the Acquire in `Producer::refreshed_limit`.
        region.word(slot + SLOT_CURSOR).store(start, Ordering::Release);
        let expected = vec![UNKNOWN_SEQ; geo.max_producers];
        Ok(Consumer {
            region,
            geo,
            index,
            slot_off: slot,
            cursor: start,
            published: start,
            expected,
            peeked: false,
            reading: FrameAt::default(),
            closed: false,
        })
    }

    /// This consumer's slot index (for [`evict_consumer`](super::evict_consumer)).
    pub fn slot(&self) -> usize {
        self.index
    }

    /// Tells the consumer the sequence number of `producer`'s next frame
    /// it will find, if it has not heard from that producer yet, so that
    /// [`ReadGuard::missed_before`] counts a loss before the first frame
    /// too. Ignored for a known producer or an id out of range. (A figure
    /// for loss accounting only: a wrong one miscounts, nothing else.)
    pub fn expect(&mut self, producer: u16, seq: u64) {
        if let Some(e) = self.expected.get_mut(producer as usize) {
            if *e == UNKNOWN_SEQ {
                *e = seq;
            }
        }
    }

    /// Position of the next frame to read.
    #[inline]
    pub fn cursor(&self) -> u64 {
        self.cursor
    }

    /// Data capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.geo.capacity
    }

    /// The log's mode.
    pub fn mode(&self) -> Mode {
        self.geo.mode
    }

    /// The next frame. Dropping the guard consumes it locally;
    /// [`release`](Self::release) hands the space back to producers.
    #[inline]
    pub fn try_read(&mut self) -> Result<ReadGuard<'_, R>, ReadError> {
        if !(self.peeked && self.reading.pos == self.cursor) {
            self.peek()?;
        }
        self.peeked = false;
        Ok(ReadGuard { consumer: self, lost: false })
    }

    /// The next frame's header, validated as [`try_read`](Self::try_read)
    /// validates it, without consuming the frame: the `try_read` that
    /// follows (with the cursor unchanged) returns this frame without
    /// reading its header again. Skips padding and reports errors as
    /// `try_read` does.
    #[inline]
    pub fn peek_frame(&mut self) -> Result<FrameInfo, ReadError> {
        if !(self.peeked && self.reading.pos == self.cursor) {
            self.peek()?;
            self.peeked = true;
        }
        let f = &self.reading;
        Ok(FrameInfo {
            position: f.pos,
            len: f.len,
            producer: f.producer,
            flags: f.flags,
            seq: f.seq,
            missed_before: f.missed_before,
            meta: f.meta,
        })
    }

    /// Steps over the frame `mark` without reading it, if the cursor is at
    /// its position: for a side that wrote the frame itself and committed
    /// it (a group member that does not receive its own messages), which
    /// spares it validating a header it wrote. Returns whether it stepped.
    /// A mark of a frame that is not there only misplaces this consumer's
    /// cursor (its next reads find nothing, or a corrupt log); a mark
    /// whose extent is not a plausible frame is refused.
    pub fn skip_frame(&mut self, mark: FrameMark) -> bool {
        let size = mark.end.wrapping_sub(mark.position);
        let plausible = size >= HEADER as u64 && size % 8 == 0 && size <= self.geo.room(mark.position) as u64;
        if mark.position != self.cursor || !plausible {
            return false;
        }
        self.cursor = mark.end;
        if let Some(e) = self.expected.get_mut(mark.producer as usize) {
            *e = mark.seq.wrapping_add(1);
        }
        true
    }

    /// Validates the frame at the cursor into `reading` (skipping
    /// padding). The common case, a committed data frame of a reliable log
    /// with a header's room before the data area's end, is taken here
    /// inline; everything else by [`peek_slow`](Self::peek_slow), which
    /// validates as thoroughly.
    #[inline]
    fn peek(&mut self) -> Result<(), ReadError> {
        let c = self.cursor;
        let room = self.geo.room(c);
        if room >= HEADER && !self.geo.lossy() {
            let off = self.geo.offset(c);
            // SYNC: Acquire; pairs with the Release in `write_header`.
            let w0 = self.region.word(off).load(Ordering::Acquire);
            if w0 != self.geo.commit_word(c) {
                return Err(ReadError::Empty);
            }
            // SYNC: Relaxed (three loads); ordered by the Acquire above.
            let w1 = self.region.word(off + 8).load(Ordering::Relaxed);
            let word = FrameWord::decode(w1);
            if let Some(size) = self.geo.data_frame_size(word, room) {
                let seq = self.region.word(off + 16).load(Ordering::Relaxed);
                let meta = self.region.word(off + 24).load(Ordering::Relaxed);
                self.reading = self.frame_at(c, off, word, size as u64, seq, meta);
                return Ok(());
            }
        }
        self.peek_slow()
    }

    /// The frame found at `c` (region offset `off`), with its loss count.
    #[inline(always)]
    fn frame_at(&self, c: u64, off: usize, word: FrameWord, size: u64, seq: u64, meta: u64) -> FrameAt {
        // In range (the header's check refused ids past the log's producer
        // slots); `get` keeps an id out of range a figure, not a panic.
        let expected = self.expected.get(word.tag as usize).copied().unwrap_or(UNKNOWN_SEQ);
        let missed_before = if expected == UNKNOWN_SEQ { 0 } else { seq.saturating_sub(expected) };
        FrameAt {
            pos: c,
            payload: off + HEADER,
            len: word.len as usize,
            size,
            producer: word.tag,
            flags: word.flags,
            seq,
            meta,
            missed_before,
        }
    }

    #[cold]
    fn peek_slow(&mut self) -> Result<(), ReadError> {
        let start = self.cursor;
        // A log full of committed padding cannot keep us here: at most one
        // lap of skipping per call.
        while self.cursor.wrapping_sub(start) <= self.geo.capacity as u64 {
            let c = self.cursor;
            let room = self.geo.room(c);
            if room < HEADER {
                self.cursor = c.wrapping_add(room as u64);
                continue;
            }
            let off = self.geo.offset(c);
            // SYNC: Acquire; pairs with the Release in `write_header`.
            let w0 = self.region.word(off).load(Ordering::Acquire);
            if w0 != self.geo.commit_word(c) {
                return Err(self.not_committed(c));
            }
            // SYNC: Relaxed (three loads); ordered by the Acquire above.
            let w1 = self.region.word(off + 8).load(Ordering::Relaxed);
            let seq = self.region.word(off + 16).load(Ordering::Relaxed);
            let meta = self.region.word(off + 24).load(Ordering::Relaxed);
            if self.geo.lossy() && self.overwritten(c, c.saturating_add(HEADER as u64)) {
                return Err(self.jump(c));
            }
            let word = FrameWord::decode(w1);
            let size = self.geo.frame_size(word, room).map_err(|what| corrupt(off + 8, w1, what))? as u64;
            if word.kind == KIND_PAD {
                // Padding is committed under a claim, so it ends at or
                // below the tail; padding past it leads the cursor where no
                // producer wrote. (A load on the padding path only.)
                // SYNC: Acquire; pairs with the Release claim CAS.
                let tail = self.region.word(OFF_TAIL).load(Ordering::Acquire);
                if c.wrapping_add(size) > tail {
                    return Err(corrupt(off + 8, w1, "padding runs past the log's tail").into());
                }
                self.cursor = c.wrapping_add(size);
                continue;
            }
            self.reading = self.frame_at(c, off, word, size, seq, meta);
            return Ok(());
        }
        // A lap of padding below the tail (abandoned claims): legitimate;
        // the next call goes on from here.
        Err(ReadError::Empty)
    }

    /// Nothing committed at `c`: empty, or (lossy) lapped.
    fn not_committed(&mut self, c: u64) -> ReadError {
        if !self.geo.lossy() {
            return ReadError::Empty;
        }
        // SYNC: Relaxed; it only decides between Empty and Lapped, and `jump`
        // re-validates everything it trusts with its own Acquire loads.
        // The claim that covers `c` a lap later raised the lap word of
        // `c`'s chunk before it wrote there.
        if self.laps_over(c, c.saturating_add(8)) {
            self.jump(c)
        } else {
            ReadError::Empty
        }
    }

    /// Whether a producer of a later lap may have written into positions
    /// `[c, end)` (one lap), so that what was read there may be torn (the
    /// reader half of the seqlock). Conservative by up to a chunk: a write
    /// a lap later into the chunk before `c` counts too, which makes a
    /// reader that close to being lapped skip ahead a little early (the
    /// loss count stays exact: it counts what was not delivered).
    fn overwritten(&self, c: u64, end: u64) -> bool {
        // SYNC: Acquire fence; pairs with the Release fence after the lap
        // words are raised in `Producer::try_claim` (and `repair_claim`):
        // if any byte we read was written by a later claim, the loads in
        // `laps_over` see its lap word.
        fence(Ordering::Acquire);
        self.laps_over(c, end)
    }

    /// Whether a lap word of the chunks of `[c, end)` is past `c`'s lap.
    fn laps_over(&self, c: u64, end: u64) -> bool {
        let lap = c >> self.geo.cap_shift;
        // SYNC: Relaxed; ordered by the caller (the fence in `overwritten`,
        // or a hint only in `not_committed`).
        self.geo.chunks(c, end).any(|(off, _)| self.region.word(off).load(Ordering::Relaxed) > lap)
    }

    /// Lapped at `c`: moves the cursor to the most recently committed frame
    /// and reports the bytes skipped, or reports Empty (cursor unchanged, the
    /// next read retries) if no valid target turns up.
    fn jump(&mut self, c: u64) -> ReadError {
        for _ in 0..JUMP_TRIES {
            // SYNC: Acquire; pairs with the Release in `Claim::commit`.
            let j = self.region.word(OFF_LATEST).load(Ordering::Acquire);
            // SYNC: Acquire; pairs with the Release claim CAS (only bounds
            // the target; the commit word below is what we trust).
            let tail = self.region.word(OFF_TAIL).load(Ordering::Acquire);
            let fresh = j > c && j % 8 == 0 && j <= tail && tail - j <= self.geo.capacity as u64;
            // SYNC: Acquire; pairs with the Release in `write_header`.
            if fresh
                && self.geo.room(j) >= HEADER
                && self.region.word(self.geo.offset(j)).load(Ordering::Acquire) == self.geo.commit_word(j)
            {
                self.cursor = j;
                return ReadError::Lapped { missed_bytes: j - c };
            }
            spin_hint();
        }
        ReadError::Empty
    }

    /// Publishes the cursor: frames consumed so far become free space for
    /// producers (reliable mode; a no-op on a lossy log).
    pub fn release(&mut self) -> Notify {
        if self.geo.lossy() || self.cursor == self.published {
            return Notify::None;
        }
        // SYNC: Release; pairs with the Acquire in `Producer::refreshed_limit`: our
        // reads of the released frames happen before they are overwritten.
        self.region.word(self.slot_off + SLOT_CURSOR).store(self.cursor, Ordering::Release);
        self.published = self.cursor;
        self.space_wait().notify()
    }

    /// Where this consumer sleeps when no frame is ready.
    pub fn data_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, &self.geo, OFF_DATA_WAIT)
    }

    /// Where producers waiting for space sleep.
    pub fn space_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, &self.geo, OFF_SPACE_WAIT)
    }

    /// Frees the consumer slot; producers stop waiting for it.
    pub fn close(mut self) -> Notify {
        self.free()
    }

    fn free(&mut self) -> Notify {
        if self.closed {
            return Notify::None;
        }
        self.closed = true;
        free_slot(&self.region, self.slot_off);
        self.space_wait().notify()
    }
}

impl<R: Region> Drop for Consumer<R> {
    /// Frees the slot (a producer asleep for space is woken by the layer
    /// above: call [`Consumer::close`] to get the [`Notify`]).
    fn drop(&mut self) {
        let _ = self.free();
    }
}

/// A frame being read. Dropping it consumes the frame (locally).
pub struct ReadGuard<'a, R: Region> {
    /// Its frame is `consumer.reading`.
    consumer: &'a mut Consumer<R>,
    /// The frame was overwritten while read; the cursor has moved already.
    lost: bool,
}

impl<R: Region> ReadGuard<'_, R> {
    /// Payload length.
    #[inline]
    pub fn len(&self) -> usize {
        self.consumer.reading.len
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.consumer.reading.len == 0
    }

    /// The frame's position in the log.
    #[inline]
    pub fn position(&self) -> u64 {
        self.consumer.reading.pos
    }

    /// The position just past this frame (where the next one starts,
    /// unless the data area's end is too close).
    #[inline]
    pub fn end(&self) -> u64 {
        self.consumer.reading.pos.wrapping_add(self.consumer.reading.size)
    }

    /// Id of the producer that sent it.
    #[inline]
    pub fn producer(&self) -> u16 {
        self.consumer.reading.producer
    }

    /// The producer's sequence number of this frame.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.consumer.reading.seq
    }

    /// Frames of this producer lost just before this one (0 normally; also
    /// 0 for the first frame heard from a producer).
    #[inline]
    pub fn missed_before(&self) -> u64 {
        self.consumer.reading.missed_before
    }

    /// The metadata word the producer set.
    #[inline]
    pub fn meta(&self) -> u64 {
        self.consumer.reading.meta
    }

    /// The flags the producer set.
    #[inline]
    pub fn flags(&self) -> u8 {
        self.consumer.reading.flags
    }

    /// The payload in place (zero-copy), on a reliable log. `None` on a
    /// lossy log, where honest producers overwrite frames a slow reader
    /// still looks at: use [`read_into`](Self::read_into) there.
    ///
    /// On a reliable log honest producers leave the frame alone until this
    /// consumer releases it; a misbehaving process that maps the log can
    /// still change the bytes while you read (a data race in Rust's model;
    /// see the crate documentation, "What a peer can and cannot do to
    /// you"). The log takes nothing from them: parse them once and copy out
    /// what you validate.
    #[cfg(not(loom))]
    #[inline]
    pub fn payload(&self) -> Option<&[u8]> {
        if self.consumer.geo.lossy() {
            return None;
        }
        let f = &self.consumer.reading;
        // SAFETY: `peek` checked that the frame lies inside the data area; on a reliable log producers do not
        // claim past the published cursor plus the capacity, and the cursor cannot pass this frame while the
        // guard borrows the consumer.
        Some(unsafe { std::slice::from_raw_parts(self.consumer.region.base().add(f.payload), f.len) })
    }

    /// Copies the first `min(len, dst.len())` payload bytes into `dst` and
    /// returns how many. On a lossy log the copy is validated afterwards (a
    /// seqlock: the copy may race with a producer's overwrite, and is then
    /// discarded, never delivered):
    /// if the frame was overwritten meanwhile, the cursor jumps as for any
    /// lapped read and the error is [`ReadError::Lapped`] (counting from this
    /// frame), or `Empty` if no jump target was found yet (the next read
    /// reports the loss).
    pub fn read_into(&mut self, dst: &mut [u8]) -> Result<usize, ReadError> {
        if self.lost {
            return Err(ReadError::Empty);
        }
        let f = self.consumer.reading;
        let n = f.len.min(dst.len());
        if !self.consumer.geo.lossy() {
            self.consumer.region.read(f.payload, &mut dst[..n]);
            return Ok(n);
        }
        // A producer may be rewriting this frame (it lapped us): copy
        // through atomic words, then check (a seqlock without a data race).
        self.consumer.region.read_words(f.payload, &mut dst[..n]);
        if self.consumer.overwritten(f.pos, f.pos.saturating_add(f.size)) {
            self.lost = true;
            return Err(self.consumer.jump(f.pos));
        }
        Ok(n)
    }
}

impl<R: Region> Drop for ReadGuard<'_, R> {
    #[inline]
    fn drop(&mut self) {
        if self.lost {
            return;
        }
        let c = &mut *self.consumer;
        let f = c.reading;
        c.cursor = f.pos.wrapping_add(f.size);
        if let Some(e) = c.expected.get_mut(f.producer as usize) {
            *e = f.seq.wrapping_add(1);
        }
    }
}

/// Takes consumer slot `index` (FREE → ACTIVE) and publishes a cursor at
/// the tail; returns the cursor. `Busy` if the slot is taken.
fn take_slot<R: Region>(region: &R, geo: &Geometry, index: usize) -> Result<u64, AttachError> {
    let slot = geo.consumer_slot(index);
    // SYNC: Relaxed; published to producers by the Release RMW on the tail
    // below, as the cursor is: a refresh that sees that tail sees the mark.
    region.word(OFF_CONSUMERS_USED).fetch_max(index as u64 + 1, Ordering::Relaxed);
    // SYNC: AcqRel; one attacher wins the slot (pairs with the Release in
    // `free_slot` of an earlier holder).
    let won = region.word(slot + SLOT_STATE).compare_exchange(FREE, ACTIVE, Ordering::AcqRel, Ordering::Relaxed);
    if won.is_err() {
        return Err(AttachError::Busy);
    }
    let tail = region.word(OFF_TAIL);
    // SYNC: Relaxed (load and store); a provisional cursor, published by the
    // Release RMW below. Not needed for safety (a previous holder's cursor is
    // older still, hence more conservative); it narrows the window in which
    // producers see that old cursor.
    region.word(slot + SLOT_CURSOR).store(tail.load(Ordering::Relaxed), Ordering::Relaxed);
    // SYNC: Release RMW; pairs with the Acquire tail load in
    // `Producer::refreshed_limit` (release sequence, see `try_claim`): a
    // refresh that misses the cursor read a tail before this one.
    let t = tail.fetch_add(0, Ordering::Release);
    if t % 8 != 0 {
        free_slot(region, slot);
        return Err(AttachError::BadGeometry { what: "log tail misaligned", value: t });
    }
    // SYNC: Release; pairs with the Acquire in `Producer::refreshed_limit`.
    region.word(slot + SLOT_CURSOR).store(t, Ordering::Release);
    Ok(t)
}
