//! Offsets into a segment, the only way shared memory refers to shared
//! memory: each process maps a segment at its own address, so a stored
//! pointer would mean nothing to the peer.
//!
//! An [`Offset`] must never become a pointer without a bounds check against
//! the segment it is resolved in.

use crate::segment::Segment;

/// A byte offset from the start of a segment, as stored in shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(transparent)]
pub struct Offset(u64);

impl Offset {
    /// An offset of `bytes` from the start of a segment.
    pub const fn new(bytes: u64) -> Self {
        Self(bytes)
    }

    /// The offset in bytes.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// A pointer to `len` bytes at this offset in `segment`, or `None` if
    /// they do not lie entirely inside it. The pointer is valid while
    /// `segment` lives; it is not aligned beyond what the offset implies.
    pub fn resolve(self, segment: &Segment, len: usize) -> Option<*mut u8> {
        let start = usize::try_from(self.0).ok()?;
        let end = start.checked_add(len)?;
        if end > segment.len() {
            return None;
        }
        // In bounds (start <= segment.len()), so this is the pointer
        // `add` would give, without needing an unsafe block.
        Some(segment.as_ptr().wrapping_add(start))
    }
}

impl From<u64> for Offset {
    fn from(bytes: u64) -> Self {
        Self(bytes)
    }
}

impl From<Offset> for u64 {
    fn from(offset: Offset) -> Self {
        offset.0
    }
}
