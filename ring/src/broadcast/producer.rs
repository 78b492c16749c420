//! The writing side of the broadcast log: [`Producer`] and its [`Claim`].

use super::{
    corrupt, frame_bytes, free_slot, geometry, mark_chunks, max_payload, wait_point, write_header, Geometry, Mode,
    ACTIVE, FREE, HEADER, IDLE, OFF_CONSUMERS_USED, OFF_DATA_WAIT, OFF_LATEST, OFF_PRODUCERS_USED, OFF_SPACE_WAIT,
    OFF_TAIL, SLOT_CLAIM_END, SLOT_CLAIM_START, SLOT_CURSOR, SLOT_NEXT_SEQ, SLOT_STATE,
};
use crate::control::CLAIM_ATTEMPTS;
use crate::error::{AttachError, ClaimError};
use crate::frame::{FrameWord, KIND_DATA, KIND_PAD};
use crate::region::Access;
use crate::region::Region;
use crate::sync::{fence, Ordering};
use crate::wake::{Notify, WaitPoint};

/// A writing side. Each producer owns a slot; its index is the producer id
/// carried by its frames.
pub struct Producer<R: Region> {
    region: R,
    geo: Geometry,
    id: u16,
    /// Region offset of our slot.
    slot_off: usize,
    /// Sequence number of the next committed frame.
    seq: u64,
    /// Claims may end at or before this position, as last computed.
    limit: u64,
    closed: bool,
}

impl<R: Region> Producer<R> {
    /// Attaches a producer to a log laid out by [`init`](super::init), taking a free
    /// producer slot ([`AttachError::Busy`] if none is free).
    pub fn attach(region: R) -> Result<Self, AttachError> {
        let geo = geometry(&region)?;
        for j in 0..geo.max_producers {
            match take_slot(&region, &geo, j) {
                Err(AttachError::Busy) => continue,
                r => return r.map(|seq| Producer::at(region, geo, j, seq)),
            }
        }
        Err(AttachError::Busy)
    }

    /// Attaches to producer slot `j` itself: `Busy` if it is taken,
    /// `BadGeometry` if the log has no such slot.
    pub fn attach_slot(region: R, j: usize) -> Result<Self, AttachError> {
        let geo = geometry(&region)?;
        if j >= geo.max_producers {
            return Err(AttachError::BadGeometry { what: "no such producer slot", value: j as u64 });
        }
        take_slot(&region, &geo, j).map(|seq| Producer::at(region, geo, j, seq))
    }

    fn at(region: R, geo: Geometry, j: usize, seq: u64) -> Self {
        Producer { region, geo, id: j as u16, slot_off: geo.producer_slot(j), seq, limit: 0, closed: false }
    }

    /// Gives this side up without freeing its slot (no claim is open: a
    /// claim borrows the producer), for a process to hand it to another.
    /// Returns the slot index.
    pub fn detach(mut self) -> usize {
        self.closed = true;
        self.id as usize
    }

    /// Takes over producer slot `j`, held for the caller by a side that
    /// [detached](Self::detach) it. Its frames go on with the slot's
    /// sequence numbers.
    ///
    /// # Safety
    /// The slot was detached for the caller, and no other side uses it
    /// until this one is dropped, closed or detached: no other `Producer`
    /// in this process holds the slot. Two sides on one slot share one
    /// in-flight marker, so other producers could miss a claim still being
    /// written and overwrite it a lap later.
    pub unsafe fn adopt(region: R, j: usize) -> Result<Self, AttachError> {
        let geo = geometry(&region)?;
        if j >= geo.max_producers {
            return Err(AttachError::BadGeometry { what: "no such producer slot", value: j as u64 });
        }
        let slot = geo.producer_slot(j);
        // SYNC: Acquire; pairs with the CAS that took the slot.
        if region.word(slot + SLOT_STATE).load(Ordering::Acquire) != ACTIVE {
            return Err(AttachError::BadGeometry { what: "producer slot not held", value: j as u64 });
        }
        // SYNC: Relaxed; the slot's own word, ordered by the handover.
        let seq = region.word(slot + SLOT_NEXT_SEQ).load(Ordering::Relaxed);
        // SYNC: Release; pairs with the Acquire in `refreshed_limit`.
        region.word(slot + SLOT_CLAIM_START).store(IDLE, Ordering::Release);
        Ok(Producer::at(region, geo, j, seq))
    }

    /// This producer's id (its slot index), carried by its frames.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Data capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.geo.capacity
    }

    /// The log's mode.
    pub fn mode(&self) -> Mode {
        self.geo.mode
    }

    /// Largest payload this log accepts.
    pub fn max_payload(&self) -> usize {
        max_payload(self.geo.capacity)
    }

    /// Claims room for a frame of `len` payload bytes. Write the payload in
    /// place, then [`commit`](Claim::commit) it; a claim dropped or
    /// [`abandon`](Claim::abandon)ed becomes padding.
    #[inline]
    pub fn try_claim(&mut self, len: usize) -> Result<Claim<'_, R>, ClaimError> {
        let start = self.claim_space(len)?;
        Ok(Claim { producer: self, start, len, meta: 0, flags: 0, done: false })
    }

    /// Claims room for a frame of `len` payload bytes (padding out the
    /// data area's end first if the frame does not fit before it) and
    /// returns the frame's position. The in-flight marker is left set:
    /// the caller commits or pads the frame, then calls `end_claim`.
    #[inline]
    fn claim_space(&mut self, len: usize) -> Result<u64, ClaimError> {
        let max = self.geo.max_payload;
        if len > max {
            return Err(ClaimError::TooLarge { len, max });
        }
        let size = frame_bytes(len) as u64;
        let tail = self.region.word(OFF_TAIL);
        // SYNC: Relaxed; a guess, checked by the CAS below.
        let mut t = tail.load(Ordering::Relaxed);
        let mut attempts = 0;
        let pad = loop {
            if t % 8 != 0 {
                self.end_claim();
                return Err(corrupt(OFF_TAIL, t, "log tail misaligned").into());
            }
            let room = self.geo.room(t) as u64;
            let pad = if size <= room { 0 } else { room };
            let Some(end) = t.checked_add(pad + size) else {
                self.end_claim();
                return Err(corrupt(OFF_TAIL, t, "log tail out of range").into());
            };
            if end > self.limit {
                self.limit = self.refreshed_limit();
                if end > self.limit {
                    self.end_claim();
                    return Err(ClaimError::Full);
                }
            }
            // SYNC: Relaxed; read after the Release store of the start below.
            self.region.word(self.slot_off + SLOT_CLAIM_END).store(end, Ordering::Relaxed);
            // SYNC: Release; pairs with the Acquire in `refreshed_limit`: a producer
            // that sees this marker also sees the writes of our earlier claim.
            self.region.word(self.slot_off + SLOT_CLAIM_START).store(t, Ordering::Release);
            // SYNC: Release on success; pairs with the Acquire load of the
            // tail in `refreshed_limit`. Every later tail value is written by an RMW,
            // so this heads a release sequence: a producer that reads any
            // later tail sees the marker stored above.
            match tail.compare_exchange(t, end, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => break pad,
                Err(now) => {
                    // Bounded: a peer that keeps moving the tail cannot hold
                    // a nonblocking claim here (see `CLAIM_ATTEMPTS`).
                    attempts += 1;
                    if attempts == CLAIM_ATTEMPTS {
                        self.end_claim();
                        return Err(ClaimError::Full);
                    }
                    t = now;
                }
            }
        };
        if self.geo.lossy() {
            let end = t + pad + size;
            mark_chunks(&self.region, &self.geo, t, end);
            // SYNC: Release fence; pairs with the Acquire fence in
            // `Consumer::overwritten` (a seqlock): a consumer that reads any
            // byte we write from here on also sees the lap words above.
            fence(Ordering::Release);
        }
        if pad as usize >= HEADER {
            let word = FrameWord { len: pad as u32, kind: KIND_PAD, flags: 0, tag: self.id };
            write_header(&self.region, &self.geo, t, word, 0, 0);
        }
        Ok(t + pad)
    }

    /// Claims, copies the concatenation of `parts` and commits it as one
    /// frame with metadata word `meta` and `flags`, in one step: what
    /// [`try_claim`](Self::try_claim), [`Claim::write`] and
    /// [`Claim::commit`] do, without a claim built and moved between them
    /// (the path of a small message sent by copy). Returns the wake to
    /// pass on and the frame's [`mark`](Claim::mark).
    #[inline]
    pub fn try_send_parts(&mut self, parts: &[&[u8]], meta: u64, flags: u8) -> Result<(Notify, FrameMark), ClaimError> {
        let len = parts.iter().try_fold(0usize, |n, p| n.checked_add(p.len()));
        let len = len.ok_or(ClaimError::TooLarge { len: usize::MAX, max: self.geo.max_payload })?;
        let start = self.claim_space(len)?;
        // In the data area: the claim holds `[start, start + frame_bytes(len))`,
        // which never straddles its end, and the parts add up to `len`.
        let off = self.geo.offset(start) + HEADER;
        let mut at = 0;
        for p in parts {
            if self.geo.lossy() {
                self.region.write_words(off + at, p);
            } else {
                self.region.write(off + at, p);
            }
            at += p.len();
        }
        let mark =
            FrameMark { position: start, end: start + frame_bytes(len) as u64, producer: self.id, seq: self.seq };
        Ok((self.publish(start, len, flags, meta), mark))
    }

    /// Commits the claimed frame at `start`: its header (commit word
    /// last), the slot's next sequence number, (lossy) the latest frame;
    /// clears the in-flight marker. Returns whether to wake sleepers.
    #[inline(always)]
    fn publish(&mut self, start: u64, len: usize, flags: u8, meta: u64) -> Notify {
        let word = FrameWord { len: len as u32, kind: KIND_DATA, flags, tag: self.id };
        write_header(&self.region, &self.geo, start, word, self.seq, meta);
        self.seq = self.seq.wrapping_add(1);
        // SYNC: Relaxed; read by the slot's next holder after our Release in
        // `free_slot`.
        self.region.word(self.slot_off + SLOT_NEXT_SEQ).store(self.seq, Ordering::Relaxed);
        if self.geo.lossy() {
            // Only lapped readers jump (lossy logs): a reliable log spares
            // every commit this shared line.
            // SYNC: Release; pairs with the Acquire in `Consumer::jump`
            // (which still re-validates the commit word: other producers
            // may store an older position after us).
            self.region.word(OFF_LATEST).store(start, Ordering::Release);
        }
        self.end_claim();
        self.data_wait().notify()
    }

    /// A hint that this producer claims soon, likely at position `at`:
    /// fetches the line of the log's tail and the first two lines from
    /// `at` for writing now, so that the claim's compare-and-swap and the
    /// frame's first writes find them in this core's cache instead of
    /// waiting for them then. For a side that answers what it reads
    /// (`at`: the end of the frame it reads, [`ReadGuard::end`](super::ReadGuard::end)):
    /// called as it reads, the lines' transfers overlap the work before
    /// the answer. It changes nothing in the log (a no-op where the CPU has
    /// no such prefetch; any `at` stays inside the data area). Call it
    /// once per answer, never in a loop: it takes the lines from producers
    /// writing them meanwhile.
    #[inline]
    pub fn prefetch_claim(&self, at: u64) {
        for off in [OFF_TAIL, self.geo.offset(at), self.geo.offset(at.wrapping_add(64))] {
            self.region.prefetch_write(off);
        }
    }

    /// Whether a claim of `len` payload bytes would find room now (to wait
    /// for room without claiming). `false` for a length the log never takes.
    pub fn would_fit(&mut self, len: usize) -> bool {
        if len > self.geo.max_payload {
            return false;
        }
        // SYNC: Relaxed; a guess, as in `try_claim` (the claim re-checks).
        let t = self.region.word(OFF_TAIL).load(Ordering::Relaxed);
        let size = frame_bytes(len) as u64;
        let room = self.geo.room(t) as u64;
        let end = t.saturating_add(if size <= room { size } else { room + size });
        if end > self.limit {
            self.limit = self.refreshed_limit();
        }
        end <= self.limit
    }

    /// Recomputes the claim limit: the minimum of the tail, the claims other
    /// producers are writing and (reliable mode) the consumer cursors, plus
    /// the capacity. Garbage never loops or panics: a value beyond the tail
    /// is ignored, one behind it only makes claims `Full`.
    #[cold]
    fn refreshed_limit(&self) -> u64 {
        let r = &self.region;
        // SYNC: Acquire; pairs with the Release claim CAS of every producer
        // and the Release RMW in `Consumer::attach`: a marker or cursor
        // published before any tail value up to this one is visible below.
        // What the scans miss starts at or after `s`.
        let s = r.word(OFF_TAIL).load(Ordering::Acquire);
        let mut min = s;
        // SYNC: Relaxed (both marks); ordered by the Acquire tail load above
        // (see `take_slot`). A forged mark only narrows or widens the scan
        // within the log's slots, as a forged slot state already can.
        let producers = (r.word(OFF_PRODUCERS_USED).load(Ordering::Relaxed) as usize).min(self.geo.max_producers);
        let consumers = (r.word(OFF_CONSUMERS_USED).load(Ordering::Relaxed) as usize).min(self.geo.max_consumers);
        for j in (0..producers).filter(|&j| j != self.id as usize) {
            let slot = self.geo.producer_slot(j);
            // SYNC: Acquire; pairs with the Release in `free_slot`.
            if r.word(slot + SLOT_STATE).load(Ordering::Acquire) == FREE {
                continue;
            }
            // SYNC: Acquire; pairs with the Release marker stores in
            // `try_claim` and `end_claim`: the writes of a claim that ended
            // happen before we reuse its space.
            min = min.min(r.word(slot + SLOT_CLAIM_START).load(Ordering::Acquire));
        }
        if self.geo.mode == Mode::Reliable {
            for i in 0..consumers {
                let slot = self.geo.consumer_slot(i);
                // SYNC: Acquire; pairs with the Release in `free_slot`.
                if r.word(slot + SLOT_STATE).load(Ordering::Acquire) != ACTIVE {
                    continue;
                }
                // SYNC: Acquire; pairs with the Release in
                // `Consumer::release`: the consumer's reads of the space it
                // released happen before we overwrite it.
                min = min.min(r.word(slot + SLOT_CURSOR).load(Ordering::Acquire));
            }
        }
        min.saturating_add(self.geo.capacity as u64)
    }

    #[inline(always)]
    fn end_claim(&self) {
        // SYNC: Release; pairs with the Acquire in `refreshed_limit`.
        self.region.word(self.slot_off + SLOT_CLAIM_START).store(IDLE, Ordering::Release);
    }

    /// Copies `payload` into one frame and commits it.
    pub fn try_send(&mut self, payload: &[u8]) -> Result<Notify, ClaimError> {
        let mut claim = self.try_claim(payload.len())?;
        claim.write(0, payload);
        Ok(claim.commit())
    }

    /// Where consumers waiting for frames sleep.
    #[inline]
    pub fn data_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, &self.geo, OFF_DATA_WAIT)
    }

    /// Where producers waiting for space sleep (reliable mode; consumers
    /// notify it when they release).
    pub fn space_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, &self.geo, OFF_SPACE_WAIT)
    }

    /// Frees the producer slot.
    pub fn close(mut self) {
        self.free();
    }

    fn free(&mut self) {
        if !self.closed {
            self.closed = true;
            self.end_claim();
            free_slot(&self.region, self.slot_off);
        }
    }
}

/// Takes producer slot `j` (FREE → ACTIVE) and clears its in-flight
/// marker; returns the slot's next sequence number. `Busy` if taken.
fn take_slot<R: Region>(region: &R, geo: &Geometry, j: usize) -> Result<u64, AttachError> {
    let slot = geo.producer_slot(j);
    // SYNC: Relaxed; published to other producers by the Release marker
    // store and claim CAS that precede any claim of this slot: a refresh
    // that sees such a claim's tail sees the mark.
    region.word(OFF_PRODUCERS_USED).fetch_max(j as u64 + 1, Ordering::Relaxed);
    // SYNC: AcqRel; one attacher wins the slot. Acquire pairs with the
    // Release in `free_slot` of an earlier holder (its next_seq).
    let won = region.word(slot + SLOT_STATE).compare_exchange(FREE, ACTIVE, Ordering::AcqRel, Ordering::Relaxed);
    if won.is_err() {
        return Err(AttachError::Busy);
    }
    // SYNC: Relaxed; ordered by the CAS above.
    let seq = region.word(slot + SLOT_NEXT_SEQ).load(Ordering::Relaxed);
    // SYNC: Release; pairs with the Acquire in `refreshed_limit`.
    region.word(slot + SLOT_CLAIM_START).store(IDLE, Ordering::Release);
    Ok(seq)
}

impl<R: Region> Drop for Producer<R> {
    fn drop(&mut self) {
        self.free();
    }
}

/// A frame a producer wrote ([`Claim::mark`]): its extent in the log, its
/// producer and sequence number. A figure, not a grant: it gives no access
/// to the log's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameMark {
    /// The frame's position.
    pub position: u64,
    /// The position just past the frame.
    pub end: u64,
    /// Id of the producer that wrote it.
    pub producer: u16,
    /// Its sequence number.
    pub seq: u64,
}

/// Room for one frame, claimed and not yet committed. Dropping it (or
/// [`abandon`](Claim::abandon)) commits padding over the space, so the log
/// has no hole.
pub struct Claim<'a, R: Region> {
    producer: &'a mut Producer<R>,
    start: u64,
    len: usize,
    meta: u64,
    /// A frame flag byte, kept in a word of its own: read back as part of
    /// a wider load, a byte stored beside `done` stalled every commit on
    /// store forwarding.
    flags: u32,
    done: bool,
}

impl<R: Region> Claim<'_, R> {
    fn payload_offset(&self) -> usize {
        self.producer.geo.offset(self.start) + HEADER
    }

    /// Payload length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The frame's position in the log.
    pub fn position(&self) -> u64 {
        self.start
    }

    /// The sequence number the frame will carry.
    pub fn seq(&self) -> u64 {
        self.producer.seq
    }

    /// Id of the producer that claimed it.
    pub fn producer(&self) -> u16 {
        self.producer.id
    }

    /// Where the frame lies and what it carries, for the producer's own
    /// consumer to step over it unread once committed
    /// ([`Consumer::skip_frame`](super::Consumer::skip_frame)).
    pub fn mark(&self) -> FrameMark {
        let end = self.start + frame_bytes(self.len) as u64;
        FrameMark { position: self.start, end, producer: self.producer.id, seq: self.producer.seq }
    }

    /// The payload, writable in place (zero-copy), on a reliable log.
    /// `None` on a lossy log, whose readers may copy a frame while a
    /// lapping producer rewrites it: there every payload byte travels
    /// through atomic words ([`write`](Self::write)), so that race is never
    /// a data race.
    #[cfg(not(loom))]
    pub fn payload_mut(&mut self) -> Option<&mut [u8]> {
        if self.producer.geo.lossy() {
            return None;
        }
        let off = self.payload_offset();
        // The tail CAS gave this claim the frame inside the data area; a lapped
        // lossy reader validates after copying.
        // SAFETY: no producer writes there until this claim's marker is cleared,
        // and `self` borrows the producer mutably: the only writable view.
        Some(unsafe { crate::frame::claimed_payload_mut(&self.producer.region, off, self.len) })
    }

    /// Copies `bytes` into the payload at `at` (on a lossy log through
    /// atomic words: see [`payload_mut`](Self::payload_mut)). Panics if it
    /// does not fit.
    pub fn write(&mut self, at: usize, bytes: &[u8]) {
        let (region, off) = (&self.producer.region, self.payload_offset());
        if self.producer.geo.lossy() {
            assert!(at.checked_add(bytes.len()).is_some_and(|end| end <= self.len), "write past the claimed payload");
            region.write_words(off + at, bytes);
        } else {
            crate::frame::write_claimed(region, off, self.len, at, bytes)
        }
    }

    /// Sets the metadata word (a send timestamp, for instance).
    pub fn set_meta(&mut self, meta: u64) {
        self.meta = meta;
    }

    /// Sets the frame's flags (free for the layers above).
    pub fn set_flags(&mut self, flags: u8) {
        self.flags = flags.into();
    }

    /// Publishes the frame.
    #[inline]
    pub fn commit(mut self) -> Notify {
        let (start, len, flags, meta) = (self.start, self.len, self.flags, self.meta);
        self.done = true;
        self.producer.publish(start, len, flags as u8, meta)
    }

    /// Gives the space up: it becomes padding that consumers skip.
    pub fn abandon(mut self) -> Notify {
        self.pad_out()
    }

    fn pad_out(&mut self) -> Notify {
        self.done = true;
        let p = &*self.producer;
        let word = FrameWord { len: frame_bytes(self.len) as u32, kind: KIND_PAD, flags: 0, tag: p.id };
        write_header(&p.region, &p.geo, self.start, word, 0, 0);
        p.end_claim();
        p.data_wait().notify()
    }
}

impl<R: Region> Drop for Claim<'_, R> {
    /// Pads out an uncommitted claim. A consumer asleep at it is not woken
    /// here: call [`Claim::abandon`] to get the [`Notify`].
    fn drop(&mut self) {
        if !self.done {
            let _ = self.pad_out();
        }
    }
}
