//! The SPSC ring's layout: the control area's words, the data area, the
//! geometry checks and the sizes derived from the capacity.

use crate::control::{self, wait_point, WakeMode};
use crate::error::AttachError;
use crate::frame::{frame_size, HEADER};
use crate::region::Region;
use crate::wake::WaitPoint;
use crate::BLOCK;

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
/// (a power of two, at least [`MIN_CAPACITY`](crate::MIN_CAPACITY)).
pub const fn region_len(capacity: usize) -> usize {
    CONTROL_LEN + capacity
}

/// A window for request/reply rings ([`Producer::set_window`](super::Producer::set_window)): four
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
///
/// # Safety
/// No side of a ring in `region` (or in a clone of it) is attached, and
/// nobody in this process uses the region concurrently: `init` rewrites the
/// control words on which the sides' exclusive grants rest, so re-running it
/// under attached sides could grant the same bytes twice. A fresh region (a
/// new `HeapRegion`, a newly created segment) satisfies this. Safe code
/// cannot re-run it under attached sides:
///
/// ```compile_fail
/// use ringflow_ring::{spsc, HeapRegion};
/// let region = HeapRegion::new(spsc::region_len(64));
/// spsc::init(&region).unwrap();
/// ```
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
pub(super) const fn end_after(start: u64, len: usize) -> u64 {
    start + frame_size(len) as u64 + 8
}

/// Region offset of ring position `pos` (`mask`: the capacity less one).
/// Positions are 8-aligned (checked at attach, advanced only by frame and
/// padding sizes, multiples of 8), so `& !7` changes none of them: it tells
/// the compiler the words there are aligned, which drops the word accesses'
/// alignment checks from the hot paths.
#[inline(always)]
pub(super) const fn data_off(pos: u64, mask: usize) -> usize {
    DATA + (pos as usize & mask & !7)
}
