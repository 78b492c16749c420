//! Plans a segment's regions (offsets, alignment, total size) and writes
//! the layout header into a fresh segment.
//!
//! Used by the process that creates a segment, before it shares it. This
//! module must never write into a segment that already carries a header,
//! and never publish the magic before the rest of the header.

use crate::header::{self, RawFields, RawHeader, RawRegion, HEADER_AREA_LEN, LAYOUT_VERSION, MAGIC, MAX_REGIONS};
use crate::layout::{is_valid_alignment, Layout, Region, DEFAULT_REGION_ALIGN};
use crate::layout_error::{BuildError, WriteHeaderError};
use crate::segment::{Segment, MAX_SEGMENT_LEN};

/// Plans a layout: regions are placed one after another after the header
/// area, each at the next multiple of the alignment.
///
/// ```
/// # use ringflow_shm::{LayoutBuilder, Segment, SegmentOptions};
/// let mut plan = LayoutBuilder::new(1);
/// let rx = plan.add_region(10, 64 * 1024)?;
/// let tx = plan.add_region(11, 64 * 1024)?;
/// let segment = Segment::create(&SegmentOptions::new("ringflow:doc", plan.total_len()))?;
/// let layout = plan.write_header(&segment)?;
/// let (_ptr, len) = layout.region_ptr(&segment, tx).ok_or("region")?;
/// assert_eq!(len, 64 * 1024);
/// # let _ = rx;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LayoutBuilder {
    kind: u32,
    align: usize,
    region_count: usize,
    regions: [Region; MAX_REGIONS],
    end: usize,
}

impl LayoutBuilder {
    /// A plan for a segment of kind `kind`, regions aligned to
    /// [`DEFAULT_REGION_ALIGN`].
    pub fn new(kind: u32) -> Self {
        Self {
            kind,
            align: DEFAULT_REGION_ALIGN,
            region_count: 0,
            regions: [Region::default(); MAX_REGIONS],
            end: HEADER_AREA_LEN,
        }
    }

    /// A plan whose regions are aligned to `align` bytes.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidAlignment`] unless `align` is a power of two
    /// within [`MIN_REGION_ALIGN`](crate::MIN_REGION_ALIGN)..=[`MAX_REGION_ALIGN`](crate::MAX_REGION_ALIGN).
    pub fn with_alignment(kind: u32, align: usize) -> Result<Self, BuildError> {
        if !is_valid_alignment(align) {
            return Err(BuildError::InvalidAlignment { align });
        }
        Ok(Self { align, ..Self::new(kind) })
    }

    /// Adds a region of `len` bytes holding `kind`; returns its index.
    ///
    /// # Errors
    ///
    /// [`BuildError::EmptyRegion`] for `len == 0`,
    /// [`BuildError::TooManyRegions`] past [`MAX_REGIONS`],
    /// [`BuildError::TooLarge`] if the layout would pass
    /// [`MAX_SEGMENT_LEN`].
    pub fn add_region(&mut self, kind: u32, len: usize) -> Result<usize, BuildError> {
        if len == 0 {
            return Err(BuildError::EmptyRegion);
        }
        let index = self.region_count;
        let slot = self.regions.get_mut(index).ok_or(BuildError::TooManyRegions { max: MAX_REGIONS })?;
        let too_large = BuildError::TooLarge { region_len: len, max: MAX_SEGMENT_LEN };
        // end <= MAX_SEGMENT_LEN and align <= 2 MiB: rounding cannot overflow.
        let offset = self.end.div_ceil(self.align) * self.align;
        let end = offset.checked_add(len).ok_or(too_large.clone())?;
        if end > MAX_SEGMENT_LEN {
            return Err(too_large);
        }
        *slot = Region { offset, len, kind };
        self.region_count += 1;
        self.end = end;
        Ok(index)
    }

    /// The regions planned so far.
    pub fn regions(&self) -> &[Region] {
        &self.regions[..self.region_count]
    }

    /// Alignment of every region.
    pub fn region_align(&self) -> usize {
        self.align
    }

    /// Bytes a segment needs to hold this layout: pass it to
    /// [`SegmentOptions::new`](crate::SegmentOptions::new).
    pub fn total_len(&self) -> usize {
        self.end
    }

    /// Writes the header into `segment`, which must be fresh (all zero, as
    /// [`Segment::create`] returns it) and at least [`total_len`](Self::total_len)
    /// bytes long. The header records the segment's actual length. The magic
    /// is stored last, with Release ordering, so a reader that sees it sees
    /// the whole header. Call this before sharing the segment; two writers
    /// racing on one segment are not detected.
    ///
    /// # Errors
    ///
    /// [`WriteHeaderError::SegmentTooSmall`], or
    /// [`WriteHeaderError::AlreadyWritten`] if the magic word is not 0.
    pub fn write_header(&self, segment: &Segment) -> Result<Layout, WriteHeaderError> {
        let too_small = WriteHeaderError::SegmentTooSmall { needed: self.end, found: segment.len() };
        if segment.len() < self.end {
            return Err(too_small);
        }
        match header::read_magic(segment) {
            None => return Err(too_small),
            Some(0) => {}
            Some(_) => return Err(WriteHeaderError::AlreadyWritten),
        }

        let mut raw = RawHeader {
            magic: MAGIC,
            fields: RawFields {
                version: LAYOUT_VERSION,
                kind: self.kind,
                // usize -> u64 is lossless on every target Linux runs on.
                segment_len: segment.len() as u64,
                // Both fit in u32: at most MAX_REGIONS, at most 2 MiB.
                region_count: self.region_count as u32,
                region_align: self.align as u32,
                reserved: [0; 4],
            },
            regions: [RawRegion::default(); MAX_REGIONS],
        };
        for (raw_region, region) in raw.regions.iter_mut().zip(self.regions()) {
            *raw_region = RawRegion { offset: region.offset as u64, len: region.len as u64, kind: region.kind, pad: 0 };
        }
        if !header::write(segment, &raw) {
            return Err(too_small);
        }
        Ok(Layout {
            kind: self.kind,
            segment_len: segment.len(),
            region_align: self.align,
            region_count: self.region_count,
            regions: self.regions,
        })
    }
}
