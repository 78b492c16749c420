//! Many-producer single-consumer ring of variable-length frames.
//!
//! Producers claim space with one atomic read-modify-write on the shared tail
//! (a compare-and-swap that also checks for room, so a full ring is refused
//! without claiming anything and `try_claim` never has to wait for space it
//! already owns). The winner marks its frame CLAIMED, writes it in place and
//! commits it by swapping the commit word to DATA with Release. The consumer
//! polls the commit word at its position with Acquire and never sees a
//! half-written frame: CLAIMED and zero both read as "not yet".
//!
//! Unlike the SPSC ring, many producers write commit words concurrently, so
//! nobody can clear "the next" word for the consumer. The consumer zeroes
//! what it consumed before handing the space back; free space is all zeros.
//!
//! A producer that dies between claiming and committing would stall the
//! consumer at its frame forever. [`Consumer::unblock`] skips such a claim
//! (Aeron's "unblock"): a CLAIMED word names the producer and the length and
//! becomes PAD; a zero word (death before the CLAIMED mark) is padded up to
//! the next non-zero word. The skipped space is zeroed and handed back to
//! producers like any other, so `unblock` is an `unsafe fn`: its caller
//! promises the claimant is dead (a live one would write into space another
//! producer now owns). A claim's commit is one compare-and-swap and writes
//! nothing else (the metadata word is written, like the payload, while the
//! claim is held): a claim that was revoked anyway (its holder was stalled,
//! not dead) learns [`CommitError::Revoked`] from that CAS and has written
//! nothing into the ring since the revocation.

use crate::control::{self, attach_side, close_side, side_closed, wait_point, WakeMode, CLAIM_ATTEMPTS};
use crate::error::{AttachError, ClaimError, CommitError, Corrupt, ReadError};
use crate::frame::{self, frame_size, FrameAt, FrameRef, FrameWord, HEADER, KIND_CLAIMED, KIND_DATA, KIND_PAD};
use crate::region::Access;
use crate::region::Region;
use crate::sync::{spin_hint, Ordering};
use crate::wake::{Notify, WaitPoint};
use crate::BLOCK;

const MAGIC: u64 = u64::from_le_bytes(*b"RFMPSC01");

const OFF_CONSUMER: usize = 16;
const OFF_NEXT_ID: usize = 24;
const OFF_LIVE_PRODUCERS: usize = 32;
pub(crate) const OFF_TAIL: usize = BLOCK;
pub(crate) const OFF_HEAD: usize = 2 * BLOCK;
const OFF_DATA_WAIT: usize = 3 * BLOCK;
const OFF_SPACE_WAIT: usize = 4 * BLOCK;
/// Bytes of control area in front of the data area.
pub const CONTROL_LEN: usize = 5 * BLOCK;
pub(crate) const DATA: usize = CONTROL_LEN;

/// Region length needed for a ring with `capacity` bytes of data.
pub const fn region_len(capacity: usize) -> usize {
    CONTROL_LEN + capacity
}

/// Largest payload a ring of `capacity` bytes accepts (half the capacity
/// less a header and the separating word, so a frame always fits once the
/// consumer catches up).
pub const fn max_payload(capacity: usize) -> usize {
    capacity / 2 - HEADER - 8
}

/// Lays out a fresh ring over `region`, zeroing it.
///
/// # Safety
/// No side of a ring in `region` (or in a clone of it) is attached, and
/// nobody in this process uses the region concurrently: `init` rewrites the
/// control words on which the sides' exclusive grants rest, so re-running it
/// under attached sides could grant the same bytes twice. A fresh region (a
/// new `HeapRegion`, a newly created segment) satisfies this.
pub unsafe fn init(region: &impl Region) -> Result<usize, AttachError> {
    // SAFETY: forwarded from our caller.
    unsafe { init_with(region, WakeMode::Fenced) }
}

/// Lays out a fresh ring over `region` with the given wake mode.
///
/// # Safety
/// No side of a ring in `region` (or in a clone of it) is attached, and
/// nobody in this process uses the region concurrently: `init_with` rewrites the
/// control words on which the sides' exclusive grants rest, so re-running it
/// under attached sides could grant the same bytes twice. A fresh region (a
/// new `HeapRegion`, a newly created segment) satisfies this.
pub unsafe fn init_with(region: &impl Region, mode: WakeMode) -> Result<usize, AttachError> {
    control::init(region, MAGIC, CONTROL_LEN, mode, None)
}

fn pad_word(size: u64) -> u64 {
    FrameWord { len: size as u32, kind: KIND_PAD, flags: 0, tag: 0 }.encode()
}

/// One of the writing sides. Any number may attach.
pub struct Producer<R: Region> {
    region: R,
    capacity: usize,
    mask: usize,
    id: u16,
    cached_head: u64,
    wake: WakeMode,
}

impl<R: Region> Producer<R> {
    /// Attaches a producer; it gets an id that tags its frames.
    pub fn attach(region: R) -> Result<Self, AttachError> {
        let (capacity, wake) = control::geometry(&region, MAGIC, CONTROL_LEN)?;
        // SYNC: Relaxed; ids only need to be distinct, which the RMW gives.
        let id = region.word(OFF_NEXT_ID).fetch_add(1, Ordering::Relaxed) as u16;
        // SYNC: Relaxed; a diagnostic count, read by `Consumer::producers`.
        region.word(OFF_LIVE_PRODUCERS).fetch_add(1, Ordering::Relaxed);
        // SYNC: Acquire (in `start_position`); pairs with the Release in
        // `Consumer::release`. A head that could overflow is refused.
        let cached_head = control::start_position(&region, OFF_HEAD)?;
        Ok(Producer { region, capacity, mask: capacity - 1, id, cached_head, wake })
    }

    /// This producer's id, carried in its frames.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Largest payload this ring accepts.
    pub fn max_payload(&self) -> usize {
        max_payload(self.capacity)
    }

    /// Claims room for a frame of `len` payload bytes.
    pub fn try_claim(&mut self, len: usize) -> Result<Claim<'_, R>, ClaimError> {
        let max = self.max_payload();
        if len > max {
            return Err(ClaimError::TooLarge { len, max });
        }
        if side_closed(&self.region, OFF_CONSUMER) {
            return Err(ClaimError::Closed);
        }
        let need = frame_size(len) as u64;
        let cap = self.capacity as u64;
        // SYNC: Relaxed; the tail is only a CAS operand. Our writes into the
        // claimed space are ordered after the consumer's zeroing by the
        // Acquire load of its head (in `refresh_head`), not by the tail.
        let mut tail = self.region.word(OFF_TAIL).load(Ordering::Relaxed);
        let mut attempts = 0;
        let (start, pad) = loop {
            // The tail is peer-written: behind the consumer's position,
            // where our arithmetic could overflow, or off the 8-byte grid
            // frames lie on (its commit word would be misaligned), it is a lie.
            if tail < self.cached_head || tail > control::MAX_POSITION || tail % 8 != 0 {
                return Err(ClaimError::Corrupt(Corrupt {
                    offset: OFF_TAIL,
                    value: tail,
                    what: "tail behind the consumer, out of range or misaligned",
                }));
            }
            let room_to_end = cap - (tail & self.mask as u64);
            let pad = if need <= room_to_end { 0 } else { room_to_end };
            let end = tail + pad + need;
            // +8: one zero word always separates the tail from released
            // space, so a consumer that has read a whole lap without
            // releasing finds zero at the tail, not its own unzeroed frame.
            if end + 8 > self.cached_head + cap {
                self.refresh_head()?;
                if end + 8 > self.cached_head + cap {
                    return Err(ClaimError::Full);
                }
            }
            // SYNC: Relaxed (both); see the tail load above.
            match self.region.word(OFF_TAIL).compare_exchange(tail, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break (tail + pad, pad),
                Err(actual) => {
                    // Bounded: a peer that keeps moving the tail cannot hold
                    // a nonblocking claim here (see `CLAIM_ATTEMPTS`).
                    attempts += 1;
                    if attempts == CLAIM_ATTEMPTS {
                        return Err(ClaimError::Full);
                    }
                    tail = actual;
                    spin_hint();
                }
            }
        };
        if pad > 0 {
            let off = DATA + (tail as usize & self.mask);
            // SYNC: Release; pairs with the consumer's Acquire poll. Padding
            // carries no data; Release keeps the word's history simple.
            self.region.word(off).store(pad_word(pad), Ordering::Release);
        }
        let off = DATA + (start as usize & self.mask);
        let claimed = FrameWord { len: len as u32, kind: KIND_CLAIMED, flags: 0, tag: self.id }.encode();
        // SYNC: Relaxed; marks the claim for `unblock`. It fails only if the
        // consumer's zeroing was skipped: corrupt ring, or claim revoked.
        if let Err(found) = self.region.word(off).compare_exchange(0, claimed, Ordering::Relaxed, Ordering::Relaxed) {
            return Err(ClaimError::Corrupt(Corrupt { offset: off, value: found, what: "claimed space is not free" }));
        }
        // The metadata word starts at zero: released space is all zeros and
        // the claim's own space was checked free (its first word) above.
        Ok(Claim { producer: self, off, len, claimed, flags: 0, done: false })
    }

    #[cold]
    fn refresh_head(&mut self) -> Result<(), ClaimError> {
        // SYNC: Acquire; pairs with the Release in `Consumer::release`: the
        // consumer has read and zeroed everything before this head.
        let head = self.region.word(OFF_HEAD).load(Ordering::Acquire);
        // SYNC: Relaxed; the tail only grows, so a tail loaded after the head
        // is at least the tail the consumer saw: a head beyond it is a lie.
        let tail = self.region.word(OFF_TAIL).load(Ordering::Relaxed);
        if head > tail || tail > control::MAX_POSITION {
            return Err(ClaimError::Corrupt(Corrupt {
                offset: OFF_HEAD,
                value: head,
                what: "consumer ahead of the tail, or the tail out of range",
            }));
        }
        self.cached_head = self.cached_head.max(head);
        Ok(())
    }

    /// Copies `payload` into one frame and commits it.
    pub fn try_send(&mut self, payload: &[u8]) -> Result<Notify, SendError> {
        let mut claim = self.try_claim(payload.len()).map_err(SendError::Claim)?;
        claim.write(0, payload);
        claim.commit().map_err(SendError::Commit)
    }

    /// Where a consumer waiting for data sleeps.
    pub fn data_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_DATA_WAIT, self.wake)
    }

    /// Where producers sleep when the ring is full.
    pub fn space_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_SPACE_WAIT, self.wake)
    }
}

impl<R: Region> Drop for Producer<R> {
    fn drop(&mut self) {
        // SYNC: Relaxed; diagnostic count (see `attach`).
        self.region.word(OFF_LIVE_PRODUCERS).fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why `try_send` failed: in the claim, or in the commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The claim failed.
    Claim(ClaimError),
    /// The commit failed.
    Commit(CommitError),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Claim(e) => e.fmt(f),
            SendError::Commit(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SendError {}

/// A claimed frame. Commit it, or drop it (it becomes padding the consumer
/// skips: the space is already taken from the shared tail).
pub struct Claim<'a, R: Region> {
    producer: &'a mut Producer<R>,
    off: usize,
    len: usize,
    claimed: u64,
    flags: u8,
    done: bool,
}

impl<R: Region> Claim<'_, R> {
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
    pub fn payload_mut(&mut self) -> &mut [u8] {
        // SAFETY: the tail CAS gave this producer the frame inside the data
        // area, the consumer reads it only after the commit, and `self` is
        // the only handle to the claim.
        unsafe { frame::claimed_payload_mut(&self.producer.region, self.off + HEADER, self.len) }
    }

    /// Copies `bytes` into the payload at `at`. Panics if it does not fit.
    pub fn write(&mut self, at: usize, bytes: &[u8]) {
        frame::write_claimed(&self.producer.region, self.off + HEADER, self.len, at, bytes)
    }

    /// Sets the frame's metadata word (written in place now, like the
    /// payload, so that the commit is a single compare-and-swap).
    pub fn set_meta(&mut self, meta: u64) {
        // SYNC: Relaxed; published by the Release commit CAS.
        self.producer.region.word(self.off + 8).store(meta, Ordering::Relaxed);
    }

    /// Sets the frame's flags.
    pub fn set_flags(&mut self, flags: u8) {
        self.flags = flags;
    }

    /// Publishes the frame: one compare-and-swap of the commit word, and no
    /// other write. If the claim was revoked ([`Consumer::unblock`]) the CAS
    /// fails and nothing is written: `Revoked`, the frame is not delivered.
    pub fn commit(mut self) -> Result<Notify, CommitError> {
        self.done = true;
        let region = &self.producer.region;
        let data =
            FrameWord { len: self.len as u32, kind: KIND_DATA, flags: self.flags, tag: self.producer.id }.encode();
        // SYNC: Release on success; pairs with the Acquire in
        // `Consumer::locate`: the payload and meta are visible with the word.
        // Relaxed on failure: we only learn the claim is no longer ours.
        match region.word(self.off).compare_exchange(self.claimed, data, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => Ok(self.producer.data_wait().notify()),
            // Only `unblock` changes a CLAIMED word under its holder; once it
            // did, the space may already be zeroed and claimed again, so any
            // other value means the same: revoked.
            Err(_) => Err(CommitError::Revoked),
        }
    }
}

impl<R: Region> Drop for Claim<'_, R> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let pad = pad_word(frame_size(self.len) as u64);
        // SYNC: Release; pairs with the consumer's Acquire poll. If the CAS
        // fails the claim was already revoked: nothing to do.
        let _ = self.producer.region.word(self.off).compare_exchange(
            self.claimed,
            pad,
            Ordering::Release,
            Ordering::Relaxed,
        );
    }
}

/// What [`Consumer::unblock`] skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unblocked {
    /// The producer whose claim was skipped, when its mark was written.
    pub producer: Option<u16>,
    /// Bytes of ring skipped.
    pub bytes: u64,
}

/// The reading side.
pub struct Consumer<R: Region> {
    region: R,
    capacity: usize,
    mask: usize,
    head: u64,
    published: u64,
    wake: WakeMode,
}

impl<R: Region> Consumer<R> {
    /// Attaches the consumer side of a ring laid out by [`init`].
    pub fn attach(region: R) -> Result<Self, AttachError> {
        let (capacity, wake) = control::geometry(&region, MAGIC, CONTROL_LEN)?;
        attach_side(&region, OFF_CONSUMER)?;
        let head = control::start_position(&region, OFF_HEAD)?;
        Ok(Consumer { region, capacity, mask: capacity - 1, head, published: head, wake })
    }

    /// Producers currently attached (a diagnostic: dead ones stay counted).
    pub fn producers(&self) -> u64 {
        self.region.word(OFF_LIVE_PRODUCERS).load(Ordering::Relaxed)
    }

    fn corrupt(offset: usize, value: u64, what: &'static str) -> ReadError {
        ReadError::Corrupt(Corrupt { offset, value, what })
    }

    /// Finds the frame at the read position, skipping padding (locally).
    ///
    /// Bounded whatever the region holds: producers claim only up to the
    /// published head plus the capacity (less the separating word), so a
    /// frame or padding that ends past that is corrupt, and every step
    /// advances at least 8 bytes: at most one lap per call, and (since
    /// `published` moves only in `release`) at most one lap between releases.
    fn locate(&self) -> Result<FrameAt, ReadError> {
        let mut pos = self.head;
        let limit = self.published + self.capacity as u64;
        loop {
            let at = pos as usize & self.mask;
            let off = DATA + at;
            // SYNC: Acquire; pairs with the Release commit CAS (or padding
            // store) of the producer that claimed this position.
            let raw = self.region.word(off).load(Ordering::Acquire);
            if raw == 0 {
                return Err(ReadError::Empty);
            }
            let word = FrameWord::decode(raw);
            let room = (self.capacity - at) as u64;
            match word.kind {
                KIND_CLAIMED => return Err(ReadError::Empty),
                KIND_PAD => {
                    let size = word.len as u64;
                    if size == 0 || size % 8 != 0 || size > room {
                        return Err(Self::corrupt(off, raw, "padding length out of bounds"));
                    }
                    if pos + size > limit {
                        return Err(Self::corrupt(off, raw, "padding runs more than a lap past the consumer"));
                    }
                    pos += size;
                }
                KIND_DATA => {
                    let len = word.len as usize;
                    let size = frame_size(len) as u64;
                    if len > max_payload(self.capacity) || size > room {
                        return Err(Self::corrupt(off, raw, "frame length out of bounds"));
                    }
                    if pos + size > limit {
                        return Err(Self::corrupt(off, raw, "frame more than a lap past the consumer"));
                    }
                    // SYNC: Relaxed; ordered by the Acquire above.
                    let meta = self.region.word(off + 8).load(Ordering::Relaxed);
                    return Ok(FrameAt {
                        pos,
                        payload: off + HEADER,
                        len,
                        size,
                        meta,
                        flags: word.flags,
                        tag: word.tag,
                    });
                }
                _ => return Err(Self::corrupt(off, raw, "unknown frame kind")),
            }
        }
    }

    /// Whether a frame is ready to read now.
    pub fn has_frame(&self) -> bool {
        self.locate().is_ok()
    }

    /// The next frame, read in place; dropping the guard consumes it locally.
    pub fn try_read(&mut self) -> Result<ReadGuard<'_, R>, ReadError> {
        let frame = self.locate()?;
        Ok(ReadGuard { view: FrameRef { region: &self.region, frame }, head: &mut self.head })
    }

    /// Reads up to `max` frames, calling `f` on each, then releases them.
    pub fn read_batch(
        &mut self,
        max: usize,
        mut f: impl FnMut(&ReadGuard<'_, R>),
    ) -> Result<(usize, Notify), ReadError> {
        let mut n = 0;
        while n < max {
            match self.try_read() {
                Ok(guard) => {
                    f(&guard);
                    n += 1;
                }
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok((n, self.release()))
    }

    /// Zeroes what was consumed and hands the space back to the producers.
    pub fn release(&mut self) -> Notify {
        if self.head == self.published {
            return Notify::None;
        }
        let mut pos = self.published;
        while pos < self.head {
            let at = pos as usize & self.mask;
            let n = ((self.head - pos) as usize).min(self.capacity - at);
            self.region.zero(DATA + at, n);
            pos += n as u64;
        }
        // SYNC: Release; pairs with the Acquire in `Producer::refresh_head`:
        // our reads and zeroing happen before a producer reuses the space.
        self.region.word(OFF_HEAD).store(self.head, Ordering::Release);
        self.published = self.head;
        self.space_wait().notify()
    }

    /// Skips a claim that blocks the consumer (see the module docs). Returns
    /// what was skipped, or `None` when the consumer is not blocked.
    ///
    /// # Safety
    /// The producer holding the claim at the consumer's position must never
    /// write into it again: its process has exited, or (within a process)
    /// its [`Claim`] will from now on only be committed or dropped, both of
    /// which write nothing once revoked. When that position still reads
    /// zero (a producer won the tail but never wrote its CLAIMED mark), the
    /// same promise covers every producer whose claim may lie between the
    /// consumer's position and the next marked word: in practice, call it
    /// only once the producer named by the blocking claim, or every
    /// producer that could be mid-claim, is known dead (its control channel
    /// hung up). The skipped space goes back to the producers: a live
    /// claimant's later writes would race with a new frame there.
    pub unsafe fn unblock(&mut self) -> Option<Unblocked> {
        // SYNC: Acquire; pairs with nothing in particular — we only need a
        // tail at least as new as the claims we are about to inspect, and
        // the claims' own words are read with Acquire below.
        let tail = self.region.word(OFF_TAIL).load(Ordering::Acquire);
        if tail <= self.head {
            return None;
        }
        let at = self.head as usize & self.mask;
        let off = DATA + at;
        let room = (self.capacity - at) as u64;
        let limit = room.min(tail - self.head);
        // SYNC: Acquire; as in `locate`.
        let raw = self.region.word(off).load(Ordering::Acquire);
        let (size, producer) = match FrameWord::decode(raw) {
            w if raw != 0 && w.kind == KIND_CLAIMED => (frame_size(w.len as usize) as u64, Some(w.tag)),
            _ if raw == 0 => {
                // Death before the CLAIMED mark: pad up to the next mark.
                let mut size = 8;
                // SYNC: Acquire; a later claim's mark bounds the dead one.
                while size < limit && self.region.word(off + size as usize).load(Ordering::Acquire) == 0 {
                    size += 8;
                }
                (size, None)
            }
            _ => return None,
        };
        if size > room {
            return None;
        }
        // SYNC: AcqRel; exactly one of this CAS and the producer's commit CAS
        // wins; the producer learns it lost through `CommitError::Revoked`.
        self.region.word(off).compare_exchange(raw, pad_word(size), Ordering::AcqRel, Ordering::Relaxed).ok()?;
        Some(Unblocked { producer, bytes: size })
    }

    /// Where this consumer sleeps when the ring is empty.
    pub fn data_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_DATA_WAIT, self.wake)
    }

    /// Where producers waiting for space sleep.
    pub fn space_wait(&self) -> WaitPoint<'_> {
        wait_point(&self.region, OFF_SPACE_WAIT, self.wake)
    }

    /// Closes the consumer side: producers' next claims get `Closed`.
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

/// A frame being read in place (its accessors are those of [`FrameRef`],
/// plus the producer that wrote it). Dropping it consumes the frame.
pub struct ReadGuard<'a, R: Region> {
    view: FrameRef<'a, R>,
    head: &'a mut u64,
}

impl<R: Region> ReadGuard<'_, R> {
    /// The id of the producer that wrote the frame.
    pub fn producer(&self) -> u16 {
        self.view.frame.tag
    }
}

impl<'a, R: Region> std::ops::Deref for ReadGuard<'a, R> {
    type Target = FrameRef<'a, R>;

    fn deref(&self) -> &FrameRef<'a, R> {
        &self.view
    }
}

impl<R: Region> Drop for ReadGuard<'_, R> {
    fn drop(&mut self) {
        *self.head = self.view.frame.pos + self.view.frame.size;
    }
}
