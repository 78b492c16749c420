//! Broadcast log: one or many producers, many consumers, each with its own
//! cursor. The base of multicast groups.
//!
//! Producers claim space with a compare-and-swap on the shared `tail`, so the
//! log order is one total order for every consumer. Positions are absolute
//! byte positions (u64, never wrapping in practice); the physical offset is
//! `pos & (capacity - 1)`. The mode is fixed at [`init`]:
//!
//! - [`Mode::Reliable`]: a producer never claims past the slowest registered
//!   consumer plus the capacity ([`ClaimError::Full`] instead); consumers read
//!   payloads in place.
//! - [`Mode::Lossy`]: producers ignore consumers. A lapped consumer learns
//!   exactly how many bytes of log it missed ([`ReadError::Lapped`]), jumps to
//!   the most recently committed frame and continues. Payloads are copied
//!   in and out through relaxed atomic 8-byte words (no writable or readable
//!   slice is lent: `payload_mut` and `payload` are `None`) and validated
//!   after the copy (a seqlock whose race is between atomics, never a data
//!   race): a frame overwritten while it was read is never delivered.
//!
//! A frame is a 32-byte header and its payload, 8-aligned, never straddling
//! the end of the data area. Header words: the commit word `pos ^ salt`
//! (stored last, with Release), `[len u32][kind u8][flags u8][producer u16]`,
//! the producer's sequence number, and a free metadata word. A stale header
//! of an earlier lap holds `(pos - k * capacity) ^ salt`, so it never looks
//! committed, and the random salt makes stale payload bytes practically
//! unable to. Every consumer counts frames per producer and reports gaps
//! ([`ReadGuard::missed_before`]).
//!
//! This module must never trust the region: headers, cursors, markers and
//! slot states are validated before use; garbage gives [`Corrupt`], `Full` or
//! `Empty`, never a panic, an out-of-bounds access or an endless loop (a
//! read skips at most one lap of padding, and padding that leads past the
//! tail is `Corrupt`). Payload bytes are never trusted for anything and may
//! change under a reader if a process misbehaves (see the crate docs).
//!
//! Deviations from the first design, with their reasons:
//!
//! - **Producers hold back behind a producer still writing a lap ago**, in
//!   both modes. Each producer slot holds an in-flight marker (the start and
//!   end of the claim being written, published before the claim's CAS). With
//!   many producers, a producer stalled mid-write for a whole lap would
//!   otherwise scribble its late writes over newer frames; the reader's lap
//!   check cannot see that (the stale writer's claim is *behind* the frame),
//!   so torn frames would be delivered as valid. So a producer's limit is
//!   `min(tail, in-flight markers, [reliable] consumer cursors) + capacity`.
//!   In lossy mode `Full` therefore means "another producer is a full lap
//!   behind": back off and retry; nothing notifies that case.
//! - **[`evict_producer`]** (not only [`evict_consumer`]): a producer that dies
//!   mid-claim would block consumers at its hole and, through its marker,
//!   producers a lap later. Evicting it pads its claim and frees its slot.
//! - **Joining is ordered by an RMW on `tail`**: a consumer publishes a
//!   provisional cursor, then reads the tail with `fetch_add(0, Release)`.
//!   A producer whose refresh misses the new cursor loaded a tail no later
//!   than the joiner's, so it never claims past the joiner's start plus the
//!   capacity. A plain load would leave that window open.
//! - **A lossy reader validates its copy against lap words, not the tail**.
//!   The data area is cut into up to 64 chunks, each with a word holding the
//!   highest lap any claim wrote into it; a claim raises the words of the
//!   chunks it covers (an RMW only when it enters a chunk's new lap) before
//!   a Release fence and its writes, and a reader checks the words of the
//!   frame's chunks after an Acquire fence. Readers then never load the
//!   tail, whose line every claim takes: checked against the tail, each
//!   read of each reader pulled that line away from the producers, which
//!   cost a publisher three quarters of its rate with a single reader. The
//!   check is conservative by up to a chunk (a reader that close to being
//!   lapped skips ahead a little early); its loss counts stay exact.
//! - A tail end shorter than a header (8–24 bytes) is skipped without a PAD
//!   frame: readers and writers both step over it. PAD frames record their
//!   total length and the id of the producer that wrote them.
//! - [`init`] sets the top bit of the salt, so no commit word is ever zero
//!   (a zeroed region never looks committed at position 0).
//! - One guard type: [`ReadGuard::payload`] returns `None` on a lossy log;
//!   [`ReadGuard::read_into`] works in both modes.
//! - In lossy mode [`Consumer::try_read`] also checks the tail after reading
//!   the header, so the header fields of a returned guard are never torn.
//!
//! [`ClaimError::Full`]: crate::ClaimError::Full
//! [`ReadError::Lapped`]: crate::ReadError::Lapped

use crate::error::{AttachError, Corrupt};
use crate::frame::{align8, FrameWord, KIND_DATA, KIND_PAD};
use crate::region::Access;
use crate::region::Region;
use crate::sync::Ordering;
use crate::wake::WaitPoint;
use crate::WakeMode;
use crate::BLOCK;

mod consumer;
mod evict;
mod inspect;
mod producer;
#[cfg(all(test, not(loom)))]
mod tests;

pub use consumer::{Consumer, FrameInfo, ReadGuard};
pub use evict::{evict_consumer, evict_producer, EvictError, Wakes};
pub use inspect::{consumer_cursor, producer_in_flight, producer_next_seq, readable_at, tail, wait_points};
pub use producer::{Claim, FrameMark, Producer};

const MAGIC: u64 = u64::from_le_bytes(*b"RFBCAST2");

// Block 0: geometry, written once by `init`.
const OFF_MAGIC: usize = 0;
const OFF_CAPACITY: usize = 8;
const OFF_MODE: usize = 16;
const OFF_MAX_CONSUMERS: usize = 24;
const OFF_MAX_PRODUCERS: usize = 32;
pub(crate) const OFF_SALT: usize = 40;
/// How publishers make sure they see a sleeper (0 fenced, 1 membarrier).
const OFF_WAKE: usize = 48;
/// High-water marks: one more than the highest consumer (producer) slot
/// ever taken. A refresh of a producer's limit scans the slots below them
/// only, so a log with room for many members but few of them pays for the
/// few. Raised (`fetch_max`) by `take_slot` before the slot is used.
pub(crate) const OFF_CONSUMERS_USED: usize = 64;
pub(crate) const OFF_PRODUCERS_USED: usize = 72;
// One block per contended word.
pub(crate) const OFF_TAIL: usize = BLOCK;
const OFF_LATEST: usize = 2 * BLOCK;
/// Wait points (futex word, then sleeper count), as for the other rings.
const OFF_DATA_WAIT: usize = 3 * BLOCK;
const OFF_SPACE_WAIT: usize = 4 * BLOCK;
/// Consumer slots, then producer slots, one block each.
/// The lap words of lossy logs ([`CHUNKS`] of them, one per chunk of the
/// data area): the highest lap any claim wrote into the chunk.
pub(crate) const OFF_CHUNKS: usize = 5 * BLOCK;
const OFF_SLOTS: usize = OFF_CHUNKS + CHUNKS * 8;

// Words of a slot.
const SLOT_STATE: usize = 0;
/// Consumer slot: the published cursor.
const SLOT_CURSOR: usize = 8;
/// Producer slot: the sequence number of the slot's next frame.
const SLOT_NEXT_SEQ: usize = 8;
/// Producer slot: start of the claim being written, or IDLE.
const SLOT_CLAIM_START: usize = 16;
/// Producer slot: end of the claim being written.
const SLOT_CLAIM_END: usize = 24;

const FREE: u64 = 0;
const ACTIVE: u64 = 1;
/// In-flight marker of a producer that is not writing.
const IDLE: u64 = u64::MAX;
const SALT_MARK: u64 = 1 << 63;
/// Attempts at a valid jump target before a lapped read reports `Empty`.
const JUMP_TRIES: usize = 4;
/// How many chunks a lossy log's data area is cut into (fewer in logs
/// smaller than `CHUNKS * MIN_CHUNK` bytes).
pub(crate) const CHUNKS: usize = 64;
/// The smallest chunk: two cache lines' worth of frames.
const MIN_CHUNK_SHIFT: u32 = 6;

/// Bytes of header in front of every frame.
pub const HEADER: usize = 32;
/// Smallest data capacity (bytes); capacities are powers of two.
pub const MIN_CAPACITY: usize = 256;
/// Largest data capacity (bytes).
pub const MAX_CAPACITY: usize = 1 << 40;
/// Most consumer slots a log may have.
pub const MAX_CONSUMERS: usize = 1 << 12;
/// Most producer slots a log may have.
pub const MAX_PRODUCERS: usize = 1 << 12;

/// Whether producers wait for consumers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Producers never overwrite what a registered consumer has not read.
    Reliable,
    /// Producers never wait for consumers; slow consumers are lapped.
    Lossy,
}

impl Mode {
    const fn word(self) -> u64 {
        match self {
            Mode::Reliable => 1,
            Mode::Lossy => 2,
        }
    }

    const fn from_word(w: u64) -> Option<Mode> {
        match w {
            1 => Some(Mode::Reliable),
            2 => Some(Mode::Lossy),
            _ => None,
        }
    }
}

/// Bytes in front of the data area for the given slot counts.
pub const fn control_len(max_consumers: usize, max_producers: usize) -> usize {
    OFF_SLOTS + (max_consumers + max_producers) * BLOCK
}

/// Region length of a log with `capacity` bytes of data (a power of two, at
/// least [`MIN_CAPACITY`]) and the given slot counts.
pub const fn region_len(capacity: usize, max_consumers: usize, max_producers: usize) -> usize {
    control_len(max_consumers, max_producers) + capacity
}

/// Largest payload a log of `capacity` bytes accepts: a frame (with the
/// padding in front of it) always fits in one lap.
pub const fn max_payload(capacity: usize) -> usize {
    let half = capacity / 2;
    (if half > 1 << 31 { 1 << 31 } else { half }) - HEADER
}

/// Bytes a frame with `len` payload bytes occupies.
const fn frame_bytes(len: usize) -> usize {
    align8(HEADER + len)
}

/// Lays out a fresh log over `region`, zeroing it. The data capacity is what
/// the slots leave of the region and must be a power of two. `salt` should
/// be random (its top bit is forced on); returns the capacity.
///
/// # Safety
/// No side of the log in `region` (or in a clone of it) is attached, and
/// nobody in this process uses the region concurrently: `init` rewrites the
/// control words on which the sides' exclusive grants rest, so re-running it
/// under attached sides could grant the same bytes twice. A fresh region (a
/// new `HeapRegion`, a newly created segment) satisfies this.
pub unsafe fn init(
    region: &impl Region,
    mode: Mode,
    max_consumers: usize,
    max_producers: usize,
    salt: u64,
) -> Result<usize, AttachError> {
    // SAFETY: the caller's promise, passed on.
    unsafe { init_with_wake(region, mode, max_consumers, max_producers, salt, WakeMode::Fenced) }
}

/// [`init`] with the way publishers see sleepers: [`WakeMode::Membarrier`]
/// spares every commit its SeqCst fence, and then every process that
/// attaches a side must have registered for global expedited membarriers
/// first (ringflow-core does), and every waiter must issue one between
/// announcing itself and its re-check ([`WaitPoint::needs_membarrier`]).
///
/// # Safety
/// As for [`init`].
pub unsafe fn init_with_wake(
    region: &impl Region,
    mode: Mode,
    max_consumers: usize,
    max_producers: usize,
    salt: u64,
    wake: WakeMode,
) -> Result<usize, AttachError> {
    if !(1..=MAX_CONSUMERS).contains(&max_consumers) {
        return Err(AttachError::BadGeometry { what: "consumer slots out of range", value: max_consumers as u64 });
    }
    if !(1..=MAX_PRODUCERS).contains(&max_producers) {
        return Err(AttachError::BadGeometry { what: "producer slots out of range", value: max_producers as u64 });
    }
    let len = region.len();
    let control = control_len(max_consumers, max_producers);
    let capacity =
        len.checked_sub(control).ok_or(AttachError::BadSize { len, what: "smaller than the control area" })?;
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(AttachError::BadSize { len, what: "data capacity must be a power of two between 256 B and 1 TiB" });
    }
    region.zero(0, len);
    // SYNC: Relaxed (all the stores below); published by the Release store of
    // the magic, last.
    let relaxed = Ordering::Relaxed;
    region.word(OFF_CAPACITY).store(capacity as u64, relaxed);
    region.word(OFF_MODE).store(mode.word(), relaxed);
    region.word(OFF_MAX_CONSUMERS).store(max_consumers as u64, relaxed);
    region.word(OFF_MAX_PRODUCERS).store(max_producers as u64, relaxed);
    region.word(OFF_SALT).store(salt | SALT_MARK, relaxed);
    let wake_word = match wake {
        WakeMode::Fenced => 0,
        WakeMode::Membarrier => 1,
    };
    region.word(OFF_WAKE).store(wake_word, relaxed);
    for j in 0..max_producers {
        region.word(OFF_SLOTS + (max_consumers + j) * BLOCK + SLOT_CLAIM_START).store(IDLE, relaxed);
    }
    // SYNC: Release; pairs with the Acquire in `geometry`: whoever sees the
    // magic sees the zeroed log and its geometry.
    region.word(OFF_MAGIC).store(MAGIC, Ordering::Release);
    Ok(capacity)
}

/// The validated geometry of a log, read once at attach.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    capacity: usize,
    mask: usize,
    mode: Mode,
    max_consumers: usize,
    max_producers: usize,
    salt: u64,
    data: usize,
    wake: WakeMode,
    /// log2 of the capacity: a position's lap is `pos >> cap_shift`.
    cap_shift: u32,
    /// log2 of a lossy log's chunk size (see [`OFF_CHUNKS`]).
    chunk_shift: u32,
    /// `max_payload(capacity)`, computed once.
    max_payload: usize,
}

impl Geometry {
    fn consumer_slot(&self, i: usize) -> usize {
        OFF_SLOTS + i * BLOCK
    }

    fn producer_slot(&self, j: usize) -> usize {
        OFF_SLOTS + (self.max_consumers + j) * BLOCK
    }

    /// Region offset of position `pos` (in bounds for any `pos`).
    #[inline(always)]
    fn offset(&self, pos: u64) -> usize {
        self.data + (pos as usize & self.mask)
    }

    /// Bytes from `pos` to the end of the data area.
    #[inline(always)]
    fn room(&self, pos: u64) -> usize {
        self.capacity - (pos as usize & self.mask)
    }

    #[inline(always)]
    fn commit_word(&self, pos: u64) -> u64 {
        pos ^ self.salt
    }

    #[inline(always)]
    fn lossy(&self) -> bool {
        self.mode == Mode::Lossy
    }

    /// The chunks that positions `[start, end)` touch, as (offset of the
    /// chunk's lap word, lap of the positions there): at most one lap's
    /// worth of chunks and one more, whatever the range says.
    fn chunks(&self, start: u64, end: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
        let step = 1u64 << self.chunk_shift;
        let mut pos = start;
        std::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let at = (pos, OFF_CHUNKS + ((pos as usize & self.mask) >> self.chunk_shift) * 8);
            pos = (pos | (step - 1)).saturating_add(1);
            Some((at.1, at.0 >> self.cap_shift))
        })
        .take(CHUNKS + 1)
    }

    /// [`frame_size`](Self::frame_size) of a data frame, inline: `None`
    /// for any other header (padding, or one `frame_size` refuses).
    #[inline(always)]
    fn data_frame_size(&self, word: FrameWord, room: usize) -> Option<usize> {
        let len = word.len as usize;
        let ok = word.kind == KIND_DATA
            && (word.tag as usize) < self.max_producers
            && len <= self.max_payload
            && frame_bytes(len) <= room;
        ok.then(|| frame_bytes(len))
    }

    /// Checks a header found at a position with `room` bytes to the end and
    /// returns the frame's size in the log.
    fn frame_size(&self, word: FrameWord, room: usize) -> Result<usize, &'static str> {
        if word.tag as usize >= self.max_producers {
            return Err("producer id out of range");
        }
        let len = word.len as usize;
        match word.kind {
            KIND_PAD if len % 8 == 0 && (HEADER..=room).contains(&len) => Ok(len),
            KIND_PAD => Err("padding length out of bounds"),
            KIND_DATA if len <= self.max_payload && frame_bytes(len) <= room => Ok(frame_bytes(len)),
            KIND_DATA => Err("frame length out of bounds"),
            _ => Err("unknown frame kind"),
        }
    }
}

/// Validates the control area.
fn geometry(region: &impl Region) -> Result<Geometry, AttachError> {
    let len = region.len();
    if len < region_len(MIN_CAPACITY, 1, 1) {
        return Err(AttachError::BadSize { len, what: "too small for a broadcast log" });
    }
    // SYNC: Acquire; pairs with the Release in `init`.
    let magic = region.word(OFF_MAGIC).load(Ordering::Acquire);
    if magic != MAGIC {
        return Err(AttachError::BadMagic { found: magic });
    }
    // SYNC: Relaxed (the loads below); ordered by the Acquire of the magic.
    let load = |off: usize| region.word(off).load(Ordering::Relaxed);
    let (cap, mode, consumers, producers, salt) =
        (load(OFF_CAPACITY), load(OFF_MODE), load(OFF_MAX_CONSUMERS), load(OFF_MAX_PRODUCERS), load(OFF_SALT));
    let wake = match load(OFF_WAKE) {
        0 => WakeMode::Fenced,
        1 => WakeMode::Membarrier,
        w => return Err(AttachError::BadGeometry { what: "unknown wake mode", value: w }),
    };
    let bad = |what, value| Err(AttachError::BadGeometry { what, value });
    let Some(mode) = Mode::from_word(mode) else { return bad("unknown mode", mode) };
    if consumers == 0 || consumers > MAX_CONSUMERS as u64 {
        return bad("consumer slots out of range", consumers);
    }
    if producers == 0 || producers > MAX_PRODUCERS as u64 {
        return bad("producer slots out of range", producers);
    }
    if !cap.is_power_of_two() || cap < MIN_CAPACITY as u64 || cap > MAX_CAPACITY as u64 {
        return bad("capacity out of range", cap);
    }
    if salt & SALT_MARK == 0 {
        return bad("salt lacks its mark bit", salt);
    }
    let (capacity, max_consumers, max_producers) = (cap as usize, consumers as usize, producers as usize);
    if region_len(capacity, max_consumers, max_producers) != len {
        return bad("capacity and slots do not match the region", cap);
    }
    let data = control_len(max_consumers, max_producers);
    let cap_shift = capacity.trailing_zeros();
    let chunk_shift = cap_shift.saturating_sub(CHUNKS.trailing_zeros()).max(MIN_CHUNK_SHIFT);
    Ok(Geometry {
        capacity,
        mask: capacity - 1,
        mode,
        max_consumers,
        max_producers,
        salt,
        data,
        wake,
        cap_shift,
        chunk_shift,
        max_payload: max_payload(capacity),
    })
}

/// The log's wait point at `off`, in the log's wake mode.
fn wait_point<'a>(region: &'a impl Region, geo: &Geometry, off: usize) -> WaitPoint<'a> {
    crate::control::wait_point(region, off, geo.wake)
}

/// The wake mode the log was laid out with.
pub fn wake_mode(region: &impl Region) -> Result<WakeMode, AttachError> {
    geometry(region).map(|g| g.wake)
}

/// Writes a frame header at `pos`, commit word last.
#[inline(always)]
fn write_header(region: &impl Region, geo: &Geometry, pos: u64, word: FrameWord, seq: u64, meta: u64) {
    let off = geo.offset(pos);
    // SYNC: Relaxed (three stores); published by the Release store below.
    region.word(off + 8).store(word.encode(), Ordering::Relaxed);
    region.word(off + 16).store(seq, Ordering::Relaxed);
    region.word(off + 24).store(meta, Ordering::Relaxed);
    // SYNC: Release; pairs with the Acquire of the commit word in
    // `Consumer::peek`: a consumer that sees it sees header and payload.
    region.word(off).store(geo.commit_word(pos), Ordering::Release);
}

/// A lossy claim of `[start, end)` is about to be written: raises the lap
/// word of each chunk it touches to the lap it writes there (never lowers
/// one: a slower producer's older lap must not hide a newer one). The
/// caller then issues the Release fence that orders these words before the
/// bytes it writes (the writer half of the seqlock; see
/// `Consumer::overwritten`).
fn mark_chunks(region: &impl Region, geo: &Geometry, start: u64, end: u64) {
    for (off, lap) in geo.chunks(start, end) {
        let word = region.word(off);
        // SYNC: Relaxed (load and max); ordered before our writes by the
        // caller's Release fence. A value at least `lap` already read here
        // is seen by any reader whose Acquire fence follows that fence
        // (read-read coherence), so it needs no store of ours.
        if word.load(Ordering::Relaxed) < lap {
            word.fetch_max(lap, Ordering::Relaxed);
        }
    }
}

fn corrupt(offset: usize, value: u64, what: &'static str) -> Corrupt {
    Corrupt { offset, value, what }
}

fn free_slot(region: &impl Region, slot: usize) {
    // SYNC: Release; pairs with the Acquire state loads in `refreshed_limit` and the
    // slot CAS of the next attacher.
    region.word(slot + SLOT_STATE).store(FREE, Ordering::Release);
}
