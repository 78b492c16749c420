//! A validated view of a segment's layout header: which kind of segment it
//! is and where its regions lie.
//!
//! A process that maps a segment from an untrusted peer calls
//! [`Layout::read`] before touching anything else in it. Validation works on
//! a private copy of the header, so a peer rewriting the header afterwards
//! cannot invalidate what was checked; the resulting [`Layout`] is plain
//! data. This module must never panic or dereference anything based on
//! unvalidated bytes, whatever the segment holds.

use crate::header::{self, RawHeader, HEADER_AREA_LEN, LAYOUT_VERSION, MAGIC, MAX_REGIONS};
use crate::layout_error::LayoutError;
use crate::offset::Offset;
use crate::options::HUGE_PAGE_SIZE;
use crate::segment::Segment;

/// The smallest region alignment: two cache lines, so regions never share a
/// cache line (or an adjacent-line prefetch pair).
pub const MIN_REGION_ALIGN: usize = 128;

/// The largest region alignment: one huge page.
pub const MAX_REGION_ALIGN: usize = HUGE_PAGE_SIZE;

/// The default region alignment: one page, so huge-page-unaware and
/// page-granular code (mprotect, madvise) can treat regions separately.
pub const DEFAULT_REGION_ALIGN: usize = 4096;

/// One entry of a validated region table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    pub(crate) offset: usize,
    pub(crate) len: usize,
    pub(crate) kind: u32,
}

impl Region {
    /// Offset of the region from the start of the segment.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Length of the region in bytes (never 0).
    #[allow(clippy::len_without_is_empty, reason = "a region is never empty: builder and reader refuse length 0")]
    pub fn len(&self) -> usize {
        self.len
    }

    /// What the region holds (defined by upper layers).
    pub fn kind(&self) -> u32 {
        self.kind
    }
}

/// A segment's layout, validated: every region lies after the header area,
/// inside the segment, aligned, non-empty, and apart from every other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub(crate) kind: u32,
    pub(crate) segment_len: usize,
    pub(crate) region_align: usize,
    pub(crate) region_count: usize,
    pub(crate) regions: [Region; MAX_REGIONS],
}

/// Whether `align` is an alignment layouts may use.
pub(crate) fn is_valid_alignment(align: usize) -> bool {
    align.is_power_of_two() && (MIN_REGION_ALIGN..=MAX_REGION_ALIGN).contains(&align)
}

impl Layout {
    /// Reads and validates the header of `segment`, which must be of kind
    /// `expected_kind`.
    ///
    /// # Errors
    ///
    /// One [`LayoutError`] variant per defect, checked in this order: the
    /// segment is too small for a header, the magic, version, kind, recorded
    /// length, alignment and region count are wrong, then each region
    /// (empty, out of bounds, misaligned), then overlaps between regions.
    pub fn read(segment: &Segment, expected_kind: u32) -> Result<Layout, LayoutError> {
        let raw = header::read(segment).ok_or(LayoutError::TooSmall { len: segment.len(), min: HEADER_AREA_LEN })?;
        Self::validate(&raw, segment.len(), expected_kind)
    }

    /// Validates a private copy of a header against a segment of `actual_len` bytes.
    fn validate(raw: &RawHeader, actual_len: usize, expected_kind: u32) -> Result<Layout, LayoutError> {
        let fields = &raw.fields;
        if raw.magic != MAGIC {
            return Err(LayoutError::BadMagic { found: raw.magic });
        }
        if fields.version != LAYOUT_VERSION {
            return Err(LayoutError::VersionMismatch { found: fields.version, supported: LAYOUT_VERSION });
        }
        if fields.kind != expected_kind {
            return Err(LayoutError::WrongKind { found: fields.kind, expected: expected_kind });
        }
        if usize::try_from(fields.segment_len) != Ok(actual_len) {
            return Err(LayoutError::LengthMismatch { header: fields.segment_len, actual: actual_len });
        }
        let align = match usize::try_from(fields.region_align) {
            Ok(align) if is_valid_alignment(align) => align,
            _ => return Err(LayoutError::BadAlignment { found: fields.region_align }),
        };
        let count = match usize::try_from(fields.region_count) {
            Ok(count) if count <= MAX_REGIONS => count,
            _ => return Err(LayoutError::TooManyRegions { found: fields.region_count, max: MAX_REGIONS }),
        };

        let mut regions = [Region::default(); MAX_REGIONS];
        for (index, (raw_region, region)) in raw.regions[..count].iter().zip(regions.iter_mut()).enumerate() {
            *region = Self::validate_region(index, raw_region.offset, raw_region.len, actual_len, align)?;
            region.kind = raw_region.kind;
        }
        for first in 0..count {
            for second in first + 1..count {
                let (a, b) = (regions[first], regions[second]);
                // Both ends are known not to overflow: each is <= actual_len.
                if a.offset < b.offset + b.len && b.offset < a.offset + a.len {
                    return Err(LayoutError::RegionOverlap { first, second });
                }
            }
        }

        Ok(Layout { kind: fields.kind, segment_len: actual_len, region_align: align, region_count: count, regions })
    }

    fn validate_region(
        index: usize,
        offset: u64,
        len: u64,
        actual_len: usize,
        align: usize,
    ) -> Result<Region, LayoutError> {
        if len == 0 {
            return Err(LayoutError::EmptyRegion { index });
        }
        let out_of_bounds = LayoutError::RegionOutOfBounds { index, offset, len };
        let start = usize::try_from(offset).map_err(|_| out_of_bounds.clone())?;
        let size = usize::try_from(len).map_err(|_| out_of_bounds.clone())?;
        match start.checked_add(size) {
            Some(end) if start >= HEADER_AREA_LEN && end <= actual_len => {}
            _ => return Err(out_of_bounds),
        }
        if start % align != 0 {
            return Err(LayoutError::Misaligned { index, offset, align });
        }
        Ok(Region { offset: start, len: size, kind: 0 })
    }

    /// What the segment holds (the kind the caller expected).
    pub fn kind(&self) -> u32 {
        self.kind
    }

    /// Length of the segment the layout was read from.
    pub fn segment_len(&self) -> usize {
        self.segment_len
    }

    /// Alignment of every region's offset.
    pub fn region_align(&self) -> usize {
        self.region_align
    }

    /// The regions, in table order.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.region_count]
    }

    /// The region at `index` in the table.
    pub fn region(&self, index: usize) -> Option<Region> {
        self.regions().get(index).copied()
    }

    /// The first region of kind `kind`, with its index.
    pub fn find(&self, kind: u32) -> Option<(usize, Region)> {
        self.regions().iter().copied().enumerate().find(|(_, region)| region.kind == kind)
    }

    /// Start and length of region `index` inside `segment`: the raw memory
    /// an upper layer (a ring, a buffer pool) wraps. The bounds are checked
    /// again against `segment`, so a layout paired with the wrong segment
    /// gives `None`, never a pointer past a mapping. The pointer is valid
    /// while `segment` lives; the memory is shared with the peer.
    pub fn region_ptr(&self, segment: &Segment, index: usize) -> Option<(*mut u8, usize)> {
        let region = self.region(index)?;
        // usize -> u64 is lossless on every target Linux runs on.
        let ptr = Offset::new(region.offset as u64).resolve(segment, region.len)?;
        Some((ptr, region.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{RawFields, RawRegion};

    fn valid() -> RawHeader {
        let mut raw = RawHeader {
            magic: MAGIC,
            fields: RawFields {
                version: LAYOUT_VERSION,
                kind: 7,
                segment_len: 1 << 16,
                region_count: 2,
                region_align: 4096,
                reserved: [0; 4],
            },
            regions: [RawRegion::default(); MAX_REGIONS],
        };
        raw.regions[0] = RawRegion { offset: 4096, len: 4096, kind: 1, pad: 0 };
        raw.regions[1] = RawRegion { offset: 8192, len: 100, kind: 2, pad: 0 };
        raw
    }

    #[test]
    fn a_valid_copy_validates() {
        let layout = Layout::validate(&valid(), 1 << 16, 7).unwrap();
        assert_eq!(layout.regions().len(), 2);
        assert_eq!(layout.find(2).unwrap().1.offset(), 8192);
    }

    #[test]
    fn overflowing_region_end_is_out_of_bounds() {
        let mut raw = valid();
        raw.regions[1].offset = u64::MAX - 4095;
        raw.regions[1].len = 8192;
        assert!(matches!(Layout::validate(&raw, 1 << 16, 7), Err(LayoutError::RegionOutOfBounds { index: 1, .. })));
    }

    #[test]
    fn a_region_in_the_header_area_is_out_of_bounds() {
        let mut raw = valid();
        raw.fields.region_align = 128;
        raw.regions[0].offset = 128;
        assert!(matches!(Layout::validate(&raw, 1 << 16, 7), Err(LayoutError::RegionOutOfBounds { index: 0, .. })));
    }

    #[test]
    fn empty_region_and_bad_alignment_are_refused() {
        let mut raw = valid();
        raw.regions[0].len = 0;
        assert_eq!(Layout::validate(&raw, 1 << 16, 7), Err(LayoutError::EmptyRegion { index: 0 }));
        let mut raw = valid();
        raw.fields.region_align = 4095;
        assert_eq!(Layout::validate(&raw, 1 << 16, 7), Err(LayoutError::BadAlignment { found: 4095 }));
    }
}
