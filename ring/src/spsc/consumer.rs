//! The reading side of the SPSC ring: the latency path (`try_read`, `peek`)
//! polls the commit word at the read position; the throughput path
//! (`read_batch`) follows the producer's published tail. Everything read
//! from the region is validated (see the ring's module documentation).

use super::layout::data_off;
use super::{
    geometry, max_payload, DATA, OFF_CONSUMER, OFF_DATA_WAIT, OFF_HEAD, OFF_PRODUCER, OFF_SPACE_WAIT, OFF_TAIL,
};
use crate::control::{self, attach_side, close_side, side_closed, wait_point, WakeMode};
use crate::error::{AttachError, Corrupt, ReadError};
use crate::frame::{frame_size, FrameAt, FrameRef, FrameWord, HEADER, KIND_DATA, KIND_PAD};
use crate::region::Access;
use crate::region::Region;
use crate::sync::Ordering;
use crate::wake::{Notify, WaitPoint};

/// The reading side.
pub struct Consumer<R: Region> {
    region: R,
    capacity: usize,
    mask: usize,
    /// Position of the next frame to read (advanced locally).
    head: u64,
    /// Position last published to the producer.
    published: u64,
    /// Position up to which a release has checked for sleeping producers.
    notified: u64,
    /// Sequence tag the next frame must carry.
    seq: u16,
    wake: WakeMode,
    /// Position up to which `read_batch` has prefetched.
    prefetched: u64,
    /// This consumer's own number, carried by every [`Peeked`] it hands
    /// out, so that one of another ring is never taken for its own.
    id: u64,
}

/// [`Consumer::classify`] with the ring's capacity passed in: the batch
/// loop keeps it in a register across the frames (a field would be
/// reloaded after every Acquire load and every store the caller's closure
/// makes).
#[inline(always)]
fn classify_in<R: Region>(region: &R, capacity: usize, pos: u64, raw: u64, seq: u16) -> Result<Found, ReadError> {
    // `& !7`: as in `data_off`.
    let at = pos as usize & (capacity - 1) & !7;
    let off = DATA + at;
    let word = FrameWord::decode(raw);
    let room = capacity - at;
    match word.kind {
        // A producer pads only from inside the ring to its end (never a
        // whole lap: frames fit at offset 0), so padding at offset 0 is
        // a hostile loop back to itself.
        KIND_PAD if word.len as usize == room && at != 0 => Ok(Found::Pad(room as u64)),
        KIND_PAD => Err(corrupt(off, raw, "padding does not end at the end of the ring, or fills a lap")),
        KIND_DATA => {
            let len = word.len as usize;
            if len > max_payload(capacity) || frame_size(len) > room {
                return Err(corrupt(off, raw, "frame length out of bounds"));
            }
            if word.tag != seq {
                return Err(corrupt(off, raw, "frame sequence number out of order"));
            }
            // SYNC: Relaxed; ordered by the Acquire that found `raw`.
            // SAFETY: `off` is DATA + `at` (8-aligned, `at` masked by the
            // capacity) and the frame, at least 16 bytes, fits in the `room`
            // to the ring's end (checked above): its second word ends at
            // most at DATA + capacity, the region's length (checked at
            // attach, `geometry`; `capacity` is the one it read).
            let meta = unsafe { region.word_unchecked(off + 8) }.load(Ordering::Relaxed);
            Ok(Found::Frame(FrameAt {
                pos,
                payload: off + HEADER,
                len,
                size: frame_size(len) as u64,
                meta,
                flags: word.flags,
                tag: word.tag,
            }))
        }
        _ => Err(corrupt(off, raw, "unknown frame kind")),
    }
}

fn corrupt(offset: usize, value: u64, what: &'static str) -> ReadError {
    ReadError::Corrupt(Corrupt { offset, value, what })
}

/// The numbers [`Consumer`]s carry (never reused, unlike addresses).
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl<R: Region> Consumer<R> {
    /// Attaches the consumer side of a ring laid out by [`init`](super::init).
    pub fn attach(region: R) -> Result<Self, AttachError> {
        let (capacity, wake) = geometry(&region)?;
        let head = control::start_position(&region, OFF_HEAD)?;
        attach_side(&region, OFF_CONSUMER)?;
        Ok(Consumer {
            region,
            capacity,
            mask: capacity - 1,
            head,
            published: head,
            notified: head,
            seq: 0,
            wake,
            prefetched: head,
            // SYNC: Relaxed; only distinctness matters, which the RMW gives.
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Data capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the producer has closed its side (frames may remain to read).
    pub fn is_producer_closed(&self) -> bool {
        side_closed(&self.region, OFF_PRODUCER)
    }

    fn corrupt(&self, offset: usize, value: u64, what: &'static str) -> ReadError {
        corrupt(offset, value, what)
    }

    /// Finds the frame at the read position, skipping padding (locally).
    ///
    /// Bounded whatever the region holds: padding is valid only where it
    /// ends at the end of the ring and does not start at offset 0 (a whole
    /// lap of padding is never written), so after one padding the next word
    /// is at offset 0 and cannot be padding: at most two words per call.
    #[inline(always)]
    fn locate(&self) -> Result<FrameAt, ReadError> {
        let mut pos = self.head;
        loop {
            let off = data_off(pos, self.mask);
            let at = off - DATA;
            // SYNC: Acquire; pairs with the Release in `Producer::commit`.
            // SAFETY: `data_off` is DATA plus `pos & mask & !7`: 8-aligned,
            // at most DATA + capacity - 8; attach checked (`geometry`) that
            // the region is DATA + capacity bytes, `mask` capacity - 1.
            let raw = unsafe { self.region.word_unchecked(off) }.load(Ordering::Acquire);
            if raw == 0 {
                // Touch the next line while waiting: a frame that arrives
                // usually spans it, and fetching it now overlaps its miss
                // with the commit word's.
                let next = (at & !63) + 64;
                if next < self.capacity {
                    self.region.prefetch(DATA + next);
                }
                return Err(self.empty_or_closed(off));
            }
            match self.classify(pos, raw, self.seq)? {
                Found::Pad(size) => pos += size,
                Found::Frame(frame) => return Ok(frame),
            }
        }
    }

    /// Validates the non-zero commit word `raw` found at `pos` (read with
    /// Acquire, or below a tail read with Acquire), for a frame that must
    /// carry sequence tag `seq`.
    #[inline(always)]
    fn classify(&self, pos: u64, raw: u64, seq: u16) -> Result<Found, ReadError> {
        classify_in(&self.region, self.capacity, pos, raw, seq)
    }

    #[cold]
    fn empty_or_closed(&self, off: usize) -> ReadError {
        if !side_closed(&self.region, OFF_PRODUCER) {
            return ReadError::Empty;
        }
        // The producer closed after its last commit (Release/Acquire on the
        // side word): if the word is still zero, nothing more will come.
        if self.region.word(off).load(Ordering::Acquire) == 0 {
            ReadError::Closed
        } else {
            ReadError::Empty
        }
    }

    /// Whether a frame is ready to read now.
    pub fn has_frame(&self) -> bool {
        self.locate().is_ok()
    }

    /// The next frame, read in place. Dropping the guard consumes it locally;
    /// [`release`](Self::release) hands the space back to the producer.
    #[inline]
    pub fn try_read(&mut self) -> Result<ReadGuard<'_, R>, ReadError> {
        let frame = self.locate()?;
        Ok(ReadGuard { view: FrameRef { region: &self.region, frame }, head: &mut self.head, seq: &mut self.seq })
    }

    /// The next frame, left in place and not consumed: read it with
    /// [`view`](Self::view), then [`consume`](Self::consume) it. For a
    /// layer above that holds the consumer and the frame at once (a receive
    /// buffer released on drop) and may decide not to consume it.
    #[inline(always)]
    pub fn peek(&self) -> Result<Peeked, ReadError> {
        self.locate().map(|f| Peeked {
            pos: f.pos,
            word: FrameWord { len: f.len as u32, kind: KIND_DATA, flags: f.flags, tag: f.tag }.encode(),
            meta: f.meta,
            ring: self.id,
        })
    }

    /// Where the frame `peeked` lies (rebuilt from its words). A `Peeked`
    /// that is not the next frame of this ring (see
    /// [`is_next`](Self::is_next)) is an empty frame: its bytes may
    /// already be the producer's again.
    #[inline(always)]
    fn frame_of(&self, peeked: &Peeked) -> FrameAt {
        let w = FrameWord::decode(peeked.word);
        let next = self.is_next(peeked);
        let len = if next { w.len as usize } else { 0 };
        FrameAt {
            pos: peeked.pos,
            // An empty frame points at the start of the data area: a stale
            // position may lie anywhere in the ring.
            payload: if next { data_off(peeked.pos, self.mask) + HEADER } else { DATA },
            len,
            size: frame_size(len) as u64,
            meta: peeked.meta,
            flags: w.flags,
            tag: w.tag,
        }
    }

    /// Whether `peeked` is the next frame to read, as [`peek`](Self::peek)
    /// found it: handed out by this consumer (not another ring's), at the
    /// read position or, past padding there, at the start of the next lap,
    /// with the expected sequence tag. Such a frame was validated against
    /// this ring when it was found and stays the producer's until released,
    /// so its length holds whatever the peer writes since: no load, only
    /// compares. Anything else (consumed already, another ring's) must give
    /// no view of bytes the producer may be writing and must not move the
    /// read position past what the producer published.
    #[inline(always)]
    fn is_next(&self, peeked: &Peeked) -> bool {
        let at = self.head as usize & self.mask;
        let placed = peeked.pos == self.head || (at != 0 && peeked.pos == self.head + (self.capacity - at) as u64);
        peeked.ring == self.id && placed && FrameWord::decode(peeked.word).tag == self.seq
    }

    /// The frame `peeked` describes, read in place.
    #[inline]
    pub fn view(&self, peeked: &Peeked) -> FrameRef<'_, R> {
        FrameRef { region: &self.region, frame: self.frame_of(peeked) }
    }

    /// The payload of the frame `peeked`, in place (as [`FrameRef::payload`]).
    #[cfg(not(loom))]
    #[inline(always)]
    pub fn payload_of<'a>(&'a self, peeked: &Peeked) -> &'a [u8] {
        self.frame_of(peeked).payload(&self.region)
    }

    /// Consumes the frame `peeked` (locally; [`release`](Self::release)
    /// hands the space back). Returns false, doing nothing, for a frame that
    /// is not the next one (consumed already, or of another ring).
    #[inline(always)]
    pub fn consume(&mut self, peeked: &Peeked) -> bool {
        if !self.is_next(peeked) {
            return false;
        }
        let w = FrameWord::decode(peeked.word);
        self.head = peeked.pos + frame_size(w.len as usize) as u64;
        self.seq = self.seq.wrapping_add(1);
        true
    }

    /// Bytes consumed since the last [`release`](Self::release).
    #[inline]
    pub fn unreleased(&self) -> usize {
        (self.head - self.notified) as usize
    }

    /// Reads up to `max` frames, calling `f` on each, then releases them all
    /// at once. Returns how many were read; an error is returned only when
    /// no frame was read.
    ///
    /// This is the throughput path. It learns how far the producer has
    /// committed from the producer's published tail, which lives on its own
    /// line, so a consumer that has caught up polls that line instead of the
    /// lines the producer is writing (polling those would steal them from
    /// the producer on every store). The frames below the tail are then
    /// prefetched together and walked one by one, each validated through its
    /// commit word as in [`try_read`](Self::try_read): a wrong tail can only
    /// cost time. `try_read` is the latency path: it polls the commit word
    /// itself, one cache-line transfer sooner.
    pub fn read_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&FrameRef<'_, R>),
    ) -> Result<(usize, Notify), ReadError> {
        self.read_batch_while(max, |frame| {
            f(frame);
            true
        })
    }

    /// [`read_batch`](Self::read_batch) that `take` can stop: it sees each
    /// frame and returns whether it takes it. The first frame it refuses is
    /// left in the ring, unconsumed, and ends the batch (a layer above
    /// hands such a frame to a path of its own). Returns how many frames
    /// were taken: `Ok` with 0 when the first frame is refused.
    #[inline]
    pub fn read_batch_while(
        &mut self,
        max: usize,
        mut take: impl FnMut(&FrameRef<'_, R>) -> bool,
    ) -> Result<(usize, Notify), ReadError> {
        // SYNC: Relaxed; a hint: the commit words below, loaded with Acquire,
        // are the truth. The producer stores the tail before it publishes a
        // batch's first commit word (Release), so a frame `try_read` would
        // see is always below the tail: nothing is missed by not polling
        // the commit word at the head, the line the producer is writing.
        let tail = self.region.word(OFF_TAIL).load(Ordering::Relaxed);
        if tail <= self.head {
            return Err(self.tail_behind(tail));
        }
        // At most one lap per call: the producer never publishes more than
        // a capacity past what we consumed. (One compare per batch.)
        if tail - self.head > self.capacity as u64 {
            return Err(self.corrupt(OFF_TAIL, tail, "producer tail more than a lap ahead of the consumer"));
        }
        self.prefetch_range(tail);
        let (region, capacity, mask) = (&self.region, self.capacity, self.mask);
        let (mut pos, mut seq, mut n) = (self.head, self.seq, 0);
        let (mut failure, mut refused) = (None, false);
        // Up to the tail, not beyond: the word there is the one the producer
        // zeroed and writes next; reading it would take its line away from
        // the producer mid-batch.
        while n < max && pos < tail {
            // SYNC: Acquire; pairs with the Release in `Producer::commit`.
            // A frame below the tail is committed; zero means the tail lied
            // (or the producer closed): stop there.
            let raw = region.word(data_off(pos, mask)).load(Ordering::Acquire);
            if raw == 0 {
                break;
            }
            match classify_in(region, capacity, pos, raw, seq) {
                Ok(Found::Pad(size)) => pos += size,
                Ok(Found::Frame(frame)) => {
                    if !take(&FrameRef { region, frame }) {
                        refused = true;
                        break;
                    }
                    pos = frame.pos + frame.size;
                    seq = seq.wrapping_add(1);
                    n += 1;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        self.head = pos;
        self.seq = seq;
        match failure {
            // A corrupt frame after good ones is reported by the next call.
            Some(e) if n == 0 => Err(e),
            _ if n == 0 && !refused => Err(self.empty_or_closed(DATA + (pos as usize & self.mask))),
            _ => Ok((n, self.release())),
        }
    }

    /// A tail at or behind the read position: empty (or closed) when equal;
    /// behind is a lie, because the producer stores its tail before the
    /// commit word that let us read up to our position.
    #[cold]
    fn tail_behind(&self, tail: u64) -> ReadError {
        if tail < self.head {
            return self.corrupt(OFF_TAIL, tail, "producer tail behind the consumer");
        }
        self.empty_or_closed(DATA + (self.head as usize & self.mask))
    }

    /// Frames form a dependent chain (each header says where the next one
    /// starts), so walking them one cache miss at a time would serialise the
    /// misses: prefetch the committed lines not yet prefetched (bounded), so
    /// their misses overlap.
    #[inline]
    fn prefetch_range(&mut self, tail: u64) {
        const MAX_AHEAD: u64 = 4096;
        let end = tail.min(self.head + MAX_AHEAD);
        let mut pos = self.prefetched.max((self.head & !63) + 64);
        while pos < end {
            self.region.prefetch(DATA + (pos as usize & self.mask));
            pos += 64;
        }
        self.prefetched = self.prefetched.max(end);
    }

    /// Publishes the read position: frames consumed so far become free space,
    /// and a producer asleep waiting for room is told to wake.
    #[inline]
    pub fn release(&mut self) -> Notify {
        self.publish();
        if self.head == self.notified {
            return Notify::None;
        }
        self.notified = self.head;
        self.space_wait().notify()
    }

    /// Publishes the read position without checking for a sleeping producer
    /// (one Release store, no fence): the producer sees the room on its next
    /// look, and a sleeping one is woken by the next [`release`](Self::release).
    /// For a layer that keeps its position exact on every message but pays
    /// for the wake-up check only now and then.
    #[inline]
    pub fn publish(&mut self) {
        if self.head != self.published {
            // SYNC: Release; pairs with the Acquire in `Producer::refresh_head`:
            // our reads of the released frames happen before the producer
            // reuses their space.
            self.region.word(OFF_HEAD).store(self.head, Ordering::Release);
            self.published = self.head;
        }
    }

    /// Where this consumer sleeps when the ring is empty.
    pub fn data_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_DATA_WAIT, self.wake)
    }

    /// Where a producer waiting for space sleeps.
    pub fn space_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_SPACE_WAIT, self.wake)
    }

    /// Closes the consumer side; the producer's next claim gets `Closed`.
    pub fn close(&mut self) -> Notify {
        let _ = self.release();
        close_side(&self.region, OFF_CONSUMER);
        self.space_wait().notify()
    }
}

impl<R: Region> Drop for Consumer<R> {
    /// Closes the side (a sleeping producer is woken by the layer above).
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// A frame located by [`Consumer::peek`], not yet consumed: its position,
/// its (validated) commit word, its metadata word, and which consumer found
/// it (another consumer treats it as no frame).
#[derive(Clone, Copy, Debug)]
pub struct Peeked {
    pos: u64,
    word: u64,
    meta: u64,
    ring: u64,
}

impl Peeked {
    /// Payload length.
    #[inline]
    pub fn len(&self) -> usize {
        FrameWord::decode(self.word).len as usize
    }

    /// Whether the payload is empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The producer's flags.
    #[inline]
    pub fn flags(&self) -> u8 {
        FrameWord::decode(self.word).flags
    }

    /// The producer's metadata word.
    #[inline]
    pub fn meta(&self) -> u64 {
        self.meta
    }
}

/// What a commit word announces.
enum Found {
    /// Padding of this many bytes up to the end of the ring.
    Pad(u64),
    /// A data frame.
    Frame(FrameAt),
}

/// A frame being read in place (its accessors are those of [`FrameRef`]).
/// Dropping it consumes the frame.
pub struct ReadGuard<'a, R: Region> {
    view: FrameRef<'a, R>,
    head: &'a mut u64,
    seq: &'a mut u16,
}

impl<'a, R: Region> std::ops::Deref for ReadGuard<'a, R> {
    type Target = FrameRef<'a, R>;

    fn deref(&self) -> &FrameRef<'a, R> {
        &self.view
    }
}

impl<R: Region> ReadGuard<'_, R> {
    /// Leaves the frame in the ring: the next read returns it again (for a
    /// reader whose buffer turned out too small).
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl<R: Region> Drop for ReadGuard<'_, R> {
    #[inline]
    fn drop(&mut self) {
        *self.head = self.view.frame.pos + self.view.frame.size;
        *self.seq = self.seq.wrapping_add(1);
    }
}
