//! The byte format of the layout header at offset 0 of a segment, and the
//! only code that reads or writes it in shared memory.
//!
//! ```text
//! offset  size  field
//!      0     8  magic          b"RINGFLOW" as a little-endian u64; written LAST
//!      8     4  version        LAYOUT_VERSION
//!     12     4  kind           what the segment holds (defined by upper layers)
//!     16     8  segment_len    length of the whole segment in bytes
//!     24     4  region_count   entries used in the region table
//!     28     4  region_align   alignment of every region offset (power of two)
//!     32    32  reserved       zero
//!     64   192  region table   MAX_REGIONS entries of { offset: u64, len: u64, kind: u32, pad: u32 }
//!    256        first byte a region may use
//! ```
//!
//! Publication: the writer stores every other field first and the magic
//! last, with a Release store; a reader loads the magic with Acquire before
//! copying the rest. A reader that sees the magic therefore sees the whole
//! header its creator wrote.
//!
//! This module copies the header out of shared memory and never validates
//! it (that is [`crate::layout`]'s job); it must never hold a reference into
//! the mapping, since a peer may rewrite the bytes at any moment.

use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::segment::Segment;

/// `b"RINGFLOW"` read as a little-endian `u64`: the first word of every
/// segment that carries a layout header.
pub const MAGIC: u64 = u64::from_le_bytes(*b"RINGFLOW");

/// The layout version this crate writes and reads.
pub const LAYOUT_VERSION: u32 = 1;

/// The most regions a segment's table can describe.
pub const MAX_REGIONS: usize = 8;

/// Size of the fixed header (magic to reserved), in bytes.
pub const HEADER_LEN: usize = 64;

/// Size of one region-table entry, in bytes.
pub const REGION_ENTRY_LEN: usize = 24;

/// Size of the header plus the full region table: no region may start below.
pub const HEADER_AREA_LEN: usize = HEADER_LEN + MAX_REGIONS * REGION_ENTRY_LEN;

/// The header fields after the magic (bytes 8..64).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawFields {
    pub(crate) version: u32,
    pub(crate) kind: u32,
    pub(crate) segment_len: u64,
    pub(crate) region_count: u32,
    pub(crate) region_align: u32,
    pub(crate) reserved: [u64; 4],
}

/// One region-table entry as stored.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawRegion {
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) kind: u32,
    pub(crate) pad: u32,
}

/// A private copy of everything the header area holds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RawHeader {
    pub(crate) magic: u64,
    pub(crate) fields: RawFields,
    pub(crate) regions: [RawRegion; MAX_REGIONS],
}

// The format is an ABI between processes: pin it.
const _: () = assert!(8 + size_of::<RawFields>() == HEADER_LEN);
const _: () = assert!(size_of::<RawRegion>() == REGION_ENTRY_LEN);
const _: () = assert!(align_of::<RawFields>() <= 8 && align_of::<RawRegion>() <= 8);

/// Copies the header area out of `segment`, or `None` if the segment is too
/// small to hold it.
pub(crate) fn read(segment: &Segment) -> Option<RawHeader> {
    if segment.len() < HEADER_AREA_LEN {
        return None;
    }
    let base = segment.as_ptr();
    // The mapping is page-aligned and readable and writable for at least
    // HEADER_AREA_LEN bytes (checked above) while `segment` is borrowed.
    // SAFETY: the u64 at offset 0 is in bounds and 8-aligned, and this crate
    // only ever accesses the magic word atomically.
    let magic_word = unsafe { AtomicU64::from_ptr(base.cast::<u64>()) };
    // SYNC: Acquire; pairs with the Release store of the magic in `write`.
    let magic = magic_word.load(Ordering::Acquire);
    // Volatile copies: a peer may change the bytes, we validate the copy only.
    // SAFETY: bytes 8..64 and 64..256 are in bounds (checked above) and
    // 8-aligned (page-aligned base plus multiples of 8); RawFields and
    // RawRegion are plain integers, valid for any bit pattern.
    let (fields, regions) = unsafe {
        (
            ptr::read_volatile(base.add(8).cast::<RawFields>()),
            ptr::read_volatile(base.add(HEADER_LEN).cast::<[RawRegion; MAX_REGIONS]>()),
        )
    };
    Some(RawHeader { magic, fields, regions })
}

/// Loads the magic word (0 in a fresh segment), or `None` if the segment is
/// too small to hold a header.
pub(crate) fn read_magic(segment: &Segment) -> Option<u64> {
    if segment.len() < HEADER_AREA_LEN {
        return None;
    }
    // SAFETY: as in `read`: page-aligned, in bounds, only accessed atomically.
    let magic_word = unsafe { AtomicU64::from_ptr(segment.as_ptr().cast::<u64>()) };
    // SYNC: Acquire; pairs with the Release store of the magic in `write`.
    Some(magic_word.load(Ordering::Acquire))
}

/// Writes `header` into `segment`, magic last. Returns `false` (writing
/// nothing) if the segment is too small to hold it.
pub(crate) fn write(segment: &Segment, header: &RawHeader) -> bool {
    if segment.len() < HEADER_AREA_LEN {
        return false;
    }
    let base = segment.as_ptr();
    // SAFETY: bytes 8..256 lie inside the writable mapping (checked above)
    // and are 8-aligned; volatile because other processes share the memory.
    unsafe {
        ptr::write_volatile(base.add(8).cast::<RawFields>(), header.fields);
        ptr::write_volatile(base.add(HEADER_LEN).cast::<[RawRegion; MAX_REGIONS]>(), header.regions);
    }
    // SAFETY: as in `read`: page-aligned, in bounds, only accessed atomically.
    let magic_word = unsafe { AtomicU64::from_ptr(base.cast::<u64>()) };
    // SYNC: Release; pairs with the Acquire load in `read`: whoever sees the
    // magic sees the fields and table written above.
    magic_word.store(header.magic, Ordering::Release);
    true
}
