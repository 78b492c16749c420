//! Read-only views of a log for observers (a group's keeper, statistics,
//! `ringflow stat`): the tail, a consumer's published cursor, a producer's
//! next sequence number. Every value is what the region says now, which a
//! peer may have written: use them for lag and loss accounting, never to
//! grant access to bytes.

use super::{
    geometry, wait_point, ACTIVE, HEADER, IDLE, OFF_DATA_WAIT, OFF_SPACE_WAIT, OFF_TAIL, SLOT_CLAIM_START, SLOT_CURSOR,
    SLOT_NEXT_SEQ, SLOT_STATE,
};
use crate::error::AttachError;
use crate::region::Access;
use crate::region::Region;
use crate::sync::Ordering;
use crate::wake::WaitPoint;

/// The log's tail: the end of the last claim.
pub fn tail(region: &impl Region) -> Result<u64, AttachError> {
    geometry(region)?;
    // SYNC: Acquire; pairs with the Release claim CAS (a figure, not a grant).
    Ok(region.word(OFF_TAIL).load(Ordering::Acquire))
}

/// The published cursor of consumer slot `slot`, or `None` if the slot is
/// not held (or does not exist).
pub fn consumer_cursor(region: &impl Region, slot: usize) -> Result<Option<u64>, AttachError> {
    let geo = geometry(region)?;
    if slot >= geo.max_consumers {
        return Ok(None);
    }
    let off = geo.consumer_slot(slot);
    // SYNC: Acquire (both loads); pair with the Release stores of the slot's
    // holder (`take_slot`, `Consumer::release`).
    if region.word(off + SLOT_STATE).load(Ordering::Acquire) != ACTIVE {
        return Ok(None);
    }
    Ok(Some(region.word(off + SLOT_CURSOR).load(Ordering::Acquire)))
}

/// The sequence number producer slot `slot` gives its next frame: how many
/// frames the slot has committed since the log was laid out. `None` if the
/// slot does not exist.
pub fn producer_next_seq(region: &impl Region, slot: usize) -> Result<Option<u64>, AttachError> {
    let geo = geometry(region)?;
    if slot >= geo.max_producers {
        return Ok(None);
    }
    // SYNC: Relaxed; a count the slot's holder stores after each commit.
    Ok(Some(region.word(geo.producer_slot(slot) + SLOT_NEXT_SEQ).load(Ordering::Relaxed)))
}

/// Whether a consumer whose cursor is at `pos` would find something to
/// read now: a committed frame (data or padding) at `pos`, past the short
/// end of the data area a frame never straddles, or, on a lossy log, a lap.
/// `false` while the frame at `pos` is claimed but not yet committed (a
/// loan being written). For a third party that waits on a consumer's
/// behalf without its side (a readiness descriptor): a hint that grants no
/// access, which the consumer's own read confirms or not.
pub fn readable_at(region: &impl Region, pos: u64) -> Result<bool, AttachError> {
    // It never reads the tail: a waiter spinning here would take its line
    // from every producer's claim.
    let geo = geometry(region)?;
    let room = geo.room(pos);
    let at = if room < HEADER { pos.wrapping_add(room as u64) } else { pos };
    // SYNC: Acquire; pairs with the Release of the commit word in
    // `write_header`. A waiter that announced itself (`WaitPoint::prepare`)
    // before this load either sees the commit or is seen by its notify.
    if region.word(geo.offset(at)).load(Ordering::Acquire) == geo.commit_word(at) {
        return Ok(true);
    }
    // Lapped (lossy): a claim a lap later raised the lap word of `at`'s
    // chunk, as the consumer's own read would find.
    // SYNC: Relaxed; a hint (see above), confirmed by the consumer's read.
    let lap = at >> geo.cap_shift;
    Ok(geo.lossy()
        && geo.chunks(at, at.saturating_add(8)).any(|(off, _)| region.word(off).load(Ordering::Relaxed) > lap))
}

/// The log's two wait points (consumers waiting for frames, producers
/// waiting for room), for a third party that wakes sleepers after it
/// changed something they re-check (an eviction, a member's removal).
pub fn wait_points(region: &impl Region) -> Result<(WaitPoint<'_>, WaitPoint<'_>), AttachError> {
    let geo = geometry(region)?;
    Ok((wait_point(region, &geo, OFF_DATA_WAIT), wait_point(region, &geo, OFF_SPACE_WAIT)))
}

/// Where producer slot `slot`'s claim being written starts, or `None` if
/// it writes none now (or the slot does not exist).
pub fn producer_in_flight(region: &impl Region, slot: usize) -> Result<Option<u64>, AttachError> {
    let geo = geometry(region)?;
    if slot >= geo.max_producers {
        return Ok(None);
    }
    // SYNC: Acquire; pairs with the Release marker stores of the producer
    // (`try_claim`, `end_claim`): a marker seen idle follows the commit (and
    // the next-sequence store) of the claim before it.
    let start = region.word(geo.producer_slot(slot) + SLOT_CLAIM_START).load(Ordering::Acquire);
    Ok((start != IDLE).then_some(start))
}
