//! The control area every ring starts with: magic, capacity, side states and
//! wait points, validated before any ring trusts them.

use crate::error::AttachError;
use crate::region::Access;
use crate::region::Region;
use crate::sync::Ordering;
use crate::wake::WaitPoint;

pub(crate) const OFF_MAGIC: usize = 0;
pub(crate) const OFF_CAPACITY: usize = 8;
/// Block 0: magic at 0, capacity at 8, ring-specific words at 16..56
/// (side states, producer counts), the wake mode in the line's last word.
const OFF_WAKE_MODE: usize = 56;

/// How the side that publishes makes sure it sees a sleeper (see `wake`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WakeMode {
    /// Every commit and release pays a SeqCst fence. Works everywhere.
    #[default]
    Fenced,
    /// Commits and releases pay only a compiler fence; a waiter, just before
    /// it sleeps, forces a barrier on every running thread of the processes
    /// involved with `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`. Every
    /// process attached to the ring must have registered for those barriers
    /// (`MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`) before attaching: the
    /// layer that makes system calls (ringflow-core) does so.
    Membarrier,
}

impl WakeMode {
    fn word(self) -> u64 {
        match self {
            WakeMode::Fenced => 0,
            WakeMode::Membarrier => 1,
        }
    }
}

pub(crate) const SIDE_FREE: u64 = 0;
pub(crate) const SIDE_ATTACHED: u64 = 1;
pub(crate) const SIDE_CLOSED: u64 = 2;

/// Smallest data capacity (bytes); capacities are powers of two.
pub const MIN_CAPACITY: usize = 64;
/// Largest data capacity (bytes).
pub const MAX_CAPACITY: usize = 1 << 40;

/// Lays out a ring's control area (magic written last; the data capacity is
/// the region length less `control_len`). `zero_data` is how many bytes of the data
/// area the ring's invariants need zeroed (rings that never read a word
/// before their producer has zeroed it need only the first one: the rest may
/// hold anything, and a fresh memfd's pages stay untouched).
pub(crate) fn init(
    region: &impl Region,
    magic: u64,
    control_len: usize,
    mode: WakeMode,
    zero_data: Option<usize>,
) -> Result<usize, AttachError> {
    let len = region.len();
    let capacity =
        len.checked_sub(control_len).ok_or(AttachError::BadSize { len, what: "smaller than the control area" })?;
    if !capacity.is_power_of_two() || !(MIN_CAPACITY..=MAX_CAPACITY).contains(&capacity) {
        return Err(AttachError::BadSize { len, what: "data capacity must be a power of two between 64 B and 1 TiB" });
    }
    region.zero(0, zero_data.map_or(len, |z| control_len + z.min(capacity)));
    region.word(OFF_CAPACITY).store(capacity as u64, Ordering::Relaxed);
    region.word(OFF_WAKE_MODE).store(mode.word(), Ordering::Relaxed);
    // SYNC: Release; pairs with the Acquire in `geometry`: a side that sees
    // the magic sees the zeroed ring and its capacity.
    region.word(OFF_MAGIC).store(magic, Ordering::Release);
    Ok(capacity)
}

/// Validates magic, capacity and wake mode; returns capacity and mode.
pub(crate) fn geometry(region: &impl Region, magic: u64, control_len: usize) -> Result<(usize, WakeMode), AttachError> {
    let len = region.len();
    if len < control_len + MIN_CAPACITY {
        return Err(AttachError::BadSize { len, what: "too small for this ring" });
    }
    // SYNC: Acquire; pairs with the Release in `init`.
    let found = region.word(OFF_MAGIC).load(Ordering::Acquire);
    if found != magic {
        return Err(AttachError::BadMagic { found });
    }
    let cap = region.word(OFF_CAPACITY).load(Ordering::Relaxed);
    let fits = cap.is_power_of_two()
        && (MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&cap)
        && control_len as u64 + cap == len as u64;
    if !fits {
        return Err(AttachError::BadGeometry { what: "capacity does not match the region", value: cap });
    }
    let mode = match region.word(OFF_WAKE_MODE).load(Ordering::Relaxed) {
        0 => WakeMode::Fenced,
        1 => WakeMode::Membarrier,
        other => return Err(AttachError::BadGeometry { what: "unknown wake mode", value: other }),
    };
    Ok((cap as usize, mode))
}

/// Takes one side of a ring (exactly one attacher wins).
pub(crate) fn attach_side(region: &impl Region, off: usize) -> Result<(), AttachError> {
    // SYNC: AcqRel on success; the CAS makes one attacher win the side.
    region
        .word(off)
        .compare_exchange(SIDE_FREE, SIDE_ATTACHED, Ordering::AcqRel, Ordering::Acquire)
        .map(|_| ())
        .map_err(|_| AttachError::Busy)
}

/// Largest ring position a side accepts when it attaches: positions only
/// grow by at most the capacity per operation, so starting below this they
/// never overflow; a larger one can only come from a corrupt or hostile peer.
pub(crate) const MAX_POSITION: u64 = 1 << 62;

/// Most compare-and-swap attempts a claim on a shared tail makes before it
/// reports `Full` (try again later). Each failure means another producer
/// moved the tail, so honest contention ends long before this; the bound
/// keeps a peer that rewrites the tail in a loop from holding a nonblocking
/// claim forever.
pub(crate) const CLAIM_ATTEMPTS: usize = 1 << 16;

/// Loads a position word (Acquire) a side starts from, refusing one that
/// could overflow, or that is not a multiple of 8 (frames, and the words
/// that start them, lie on 8-byte boundaries: a side starting elsewhere
/// would address a misaligned word).
pub(crate) fn start_position(region: &impl Region, off: usize) -> Result<u64, AttachError> {
    // SYNC: Acquire; pairs with the Release stores of that position.
    let pos = region.word(off).load(Ordering::Acquire);
    if pos > MAX_POSITION || pos % 8 != 0 {
        return Err(AttachError::BadGeometry { what: "ring position out of range or misaligned", value: pos });
    }
    Ok(pos)
}

/// Whether the words at `offs` are all zero: a ring nobody has used yet
/// (positions zero, sides free).
pub(crate) fn all_zero(region: &impl Region, offs: &[usize]) -> bool {
    // SYNC: Acquire; a check before attaching, ordered after the layout's
    // Release of the magic.
    offs.iter().all(|&off| region.word(off).load(Ordering::Acquire) == 0)
}

pub(crate) fn side_closed(region: &impl Region, off: usize) -> bool {
    // SYNC: Acquire; pairs with the Release in `close_side`: everything the
    // closing side did before closing is visible.
    region.word(off).load(Ordering::Acquire) == SIDE_CLOSED
}

pub(crate) fn close_side(region: &impl Region, off: usize) {
    // SYNC: Release; pairs with the Acquire in `side_closed`.
    region.word(off).store(SIDE_CLOSED, Ordering::Release);
}

/// The wait point whose sequence word is at `off` (sleeper count follows).
pub(crate) fn wait_point(region: &impl Region, off: usize, mode: WakeMode) -> WaitPoint<'_> {
    WaitPoint::with_mode(region.word(off), region.word(off + 8), mode)
}
