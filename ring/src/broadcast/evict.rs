//! Eviction of dead consumers and producers: [`evict_consumer`], [`evict_producer`].

use super::{
    corrupt, free_slot, geometry, mark_chunks, wait_point, write_header, Geometry, FREE, HEADER, IDLE, OFF_DATA_WAIT,
    OFF_SPACE_WAIT, OFF_TAIL, SLOT_CLAIM_END, SLOT_CLAIM_START, SLOT_STATE,
};
use crate::error::{AttachError, Corrupt};
use crate::frame::{FrameWord, KIND_PAD};
use crate::region::Access;
use crate::region::Region;
use crate::sync::{fence, Ordering};
use crate::wake::Notify;
use std::fmt;

/// Why a slot could not be evicted.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvictError {
    /// The region holds no valid log.
    Region(AttachError),
    /// There is no slot with that index.
    NoSuchSlot {
        /// The slot asked for.
        slot: usize,
        /// How many slots the log has.
        slots: usize,
    },
    /// The log is corrupt.
    Corrupt(Corrupt),
}

impl fmt::Display for EvictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvictError::Region(e) => e.fmt(f),
            EvictError::NoSuchSlot { slot, slots } => write!(f, "no slot {slot} (the log has {slots})"),
            EvictError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl std::error::Error for EvictError {}

impl From<AttachError> for EvictError {
    fn from(e: AttachError) -> Self {
        EvictError::Region(e)
    }
}

/// Whom an eviction may unblock: wake sleepers on both wait points as told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wakes {
    /// Consumers waiting for frames.
    pub data: Notify,
    /// Producers waiting for space.
    pub space: Notify,
}

/// Frees the slot of a dead consumer, so producers stop waiting for it.
///
/// # Safety
/// The consumer that held `slot` must be dead: its process has exited, or
/// (within a process) its [`Consumer`](super::Consumer) is gone or will
/// never read again. On a reliable log producers then overwrite the frames
/// its cursor held back; a live consumer reading one in place
/// ([`ReadGuard::payload`](super::ReadGuard::payload)) would race with
/// those writes. The slot must also not have been freed and taken again by
/// a new consumer since that death (a slot freed by its holder's `Drop`
/// can be reattached; evict only slots whose holder died without freeing).
pub unsafe fn evict_consumer(region: &impl Region, slot: usize) -> Result<Notify, EvictError> {
    let geo = geometry(region)?;
    if slot >= geo.max_consumers {
        return Err(EvictError::NoSuchSlot { slot, slots: geo.max_consumers });
    }
    free_slot(region, geo.consumer_slot(slot));
    Ok(wait_point(region, &geo, OFF_SPACE_WAIT).notify())
}

/// Frees the slot of a dead producer. A claim it left half written becomes
/// padding, so consumers move past it and producers stop holding back for it.
///
/// # Safety
/// The producer that held `slot` must be dead: its process has exited, or
/// (within a process) its [`Producer`](super::Producer) and any claim of it
/// will never write to the log again (a forgotten claim, a thread that
/// stopped for good). Its claim's space is padded here and handed to other
/// producers: a live holder's later writes would race with their frames,
/// and consumers could read a torn frame. As for [`evict_consumer`], the
/// slot must not have been freed and taken by a new producer since.
pub unsafe fn evict_producer(region: &impl Region, slot: usize) -> Result<Wakes, EvictError> {
    let geo = geometry(region)?;
    if slot >= geo.max_producers {
        return Err(EvictError::NoSuchSlot { slot, slots: geo.max_producers });
    }
    let base = geo.producer_slot(slot);
    // SYNC: Acquire; pairs with the Release marker stores of the producer.
    let start = region.word(base + SLOT_CLAIM_START).load(Ordering::Acquire);
    let repaired = if start == IDLE {
        Ok(())
    } else {
        // SYNC: Relaxed; stored before the start, ordered by the Acquire above.
        let end = region.word(base + SLOT_CLAIM_END).load(Ordering::Relaxed);
        repair_claim(region, &geo, slot, start, end)
    };
    // SYNC: Release; pairs with the Acquire in `refreshed_limit`: our padding happens
    // before the space is reused.
    region.word(base + SLOT_CLAIM_START).store(IDLE, Ordering::Release);
    free_slot(region, base);
    repaired.map_err(EvictError::Corrupt)?;
    Ok(Wakes {
        data: wait_point(region, &geo, OFF_DATA_WAIT).notify(),
        space: wait_point(region, &geo, OFF_SPACE_WAIT).notify(),
    })
}

/// Pads the uncommitted parts of a dead producer's claim [start, end).
fn repair_claim(region: &impl Region, geo: &Geometry, slot: usize, start: u64, end: u64) -> Result<(), Corrupt> {
    // SYNC: Acquire; pairs with the Release claim CAS: a claim that won is
    // below the tail we read.
    let tail = region.word(OFF_TAIL).load(Ordering::Acquire);
    let plausible = start % 8 == 0 && end % 8 == 0 && start < end && end - start <= geo.capacity as u64;
    if !plausible || end > tail {
        return Ok(()); // its CAS never won (or the marker is garbage): no hole
    }
    // A live producer that claimed at the same start owns it (its CAS won
    // where the dead one's failed).
    for j in (0..geo.max_producers).filter(|&j| j != slot) {
        let other = geo.producer_slot(j);
        // SYNC: Acquire (both loads); pairs with the Release stores in
        // `free_slot` and `try_claim`.
        if region.word(other + SLOT_STATE).load(Ordering::Acquire) != FREE
            && region.word(other + SLOT_CLAIM_START).load(Ordering::Acquire) == start
        {
            return Ok(());
        }
    }
    if geo.lossy() {
        // The claim may have died before it marked its chunks: readers of
        // the lap before must see the padding's lap before its bytes.
        mark_chunks(region, geo, start, end);
        // SYNC: Release fence; pairs with the Acquire fence in
        // `Consumer::overwritten`, as in `Producer::try_claim`.
        fence(Ordering::Release);
    }
    let (mut pos, mut first) = (start, true);
    while pos < end {
        let room = geo.room(pos);
        if room < HEADER {
            pos += room as u64;
            continue;
        }
        let off = geo.offset(pos);
        let was_first = std::mem::replace(&mut first, false);
        // SYNC: Acquire; pairs with the Release in `write_header`.
        if region.word(off).load(Ordering::Acquire) == geo.commit_word(pos) {
            // SYNC: Relaxed; ordered by the Acquire above.
            let raw = region.word(off + 8).load(Ordering::Relaxed);
            let word = FrameWord::decode(raw);
            if was_first && word.tag as usize != slot {
                return Ok(()); // committed by the producer that won this start
            }
            pos += geo.frame_size(word, room).map_err(|what| corrupt(off + 8, raw, what))? as u64;
            continue;
        }
        let len = (end - pos).min(room as u64);
        if (len as usize) < HEADER {
            return Ok(());
        }
        let word = FrameWord { len: len as u32, kind: KIND_PAD, flags: 0, tag: slot as u16 };
        write_header(region, geo, pos, word, 0, 0);
        pos += len;
    }
    Ok(())
}
