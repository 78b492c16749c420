//! The errors of reading, planning and writing a layout header, one enum per
//! operation: [`LayoutError`] for [`Layout::read`](crate::Layout::read),
//! [`BuildError`] for [`LayoutBuilder`](crate::LayoutBuilder) and
//! [`WriteHeaderError`] for [`LayoutBuilder::write_header`](crate::LayoutBuilder::write_header).
//!
//! This module must never merge distinct causes into one variant: a reader
//! needs to tell a peer speaking another version from a corrupt segment.

use std::error::Error;
use std::fmt;

/// Why [`Layout::read`](crate::Layout::read) rejected a segment's header.
/// Everything but [`TooSmall`](Self::TooSmall) means the peer wrote something
/// we do not accept (another version, another kind, or corruption).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayoutError {
    /// The segment cannot even hold the header and region table.
    TooSmall {
        /// The segment's length.
        len: usize,
        /// Bytes the header area needs.
        min: usize,
    },
    /// The first word is not [`MAGIC`](crate::MAGIC): not a ringflow
    /// segment, or its header is not published yet.
    BadMagic {
        /// The word found.
        found: u64,
    },
    /// The header is of a layout version this build does not read.
    VersionMismatch {
        /// The version in the header.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// The segment holds something other than what the caller expects.
    WrongKind {
        /// The kind in the header.
        found: u32,
        /// The kind the caller asked for.
        expected: u32,
    },
    /// The header's recorded segment length is not the mapping's length.
    LengthMismatch {
        /// The length in the header.
        header: u64,
        /// The length of the mapping.
        actual: usize,
    },
    /// The header's region alignment is not a power of two within
    /// [`MIN_REGION_ALIGN`](crate::MIN_REGION_ALIGN)..=[`MAX_REGION_ALIGN`](crate::MAX_REGION_ALIGN).
    BadAlignment {
        /// The alignment in the header.
        found: u32,
    },
    /// The header claims more regions than the table holds.
    TooManyRegions {
        /// The count in the header.
        found: u32,
        /// [`MAX_REGIONS`](crate::MAX_REGIONS).
        max: usize,
    },
    /// A region has length 0.
    EmptyRegion {
        /// Its index in the table.
        index: usize,
    },
    /// A region does not lie within the part of the segment after the
    /// header area (`HEADER_AREA_LEN..segment_len`), or its end overflows.
    RegionOutOfBounds {
        /// Its index in the table.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its length.
        len: u64,
    },
    /// A region's offset is not a multiple of the region alignment.
    Misaligned {
        /// Its index in the table.
        index: usize,
        /// Its offset.
        offset: u64,
        /// The alignment required.
        align: usize,
    },
    /// Two regions share bytes.
    RegionOverlap {
        /// Index of the first region.
        first: usize,
        /// Index of the second region.
        second: usize,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid segment layout: ")?;
        match self {
            Self::TooSmall { len, min } => write!(f, "segment of {len} bytes cannot hold the {min}-byte header"),
            Self::BadMagic { found } => {
                write!(f, "bad magic {found:#018x} (not a ringflow segment, or header not yet written)")
            }
            Self::VersionMismatch { found, supported } => {
                write!(f, "layout version {found}, this build supports version {supported}")
            }
            Self::WrongKind { found, expected } => {
                write!(f, "segment kind {found}, expected kind {expected}")
            }
            Self::LengthMismatch { header, actual } => {
                write!(f, "header says {header} bytes, the segment has {actual}")
            }
            Self::BadAlignment { found } => write!(f, "invalid region alignment {found}"),
            Self::TooManyRegions { found, max } => {
                write!(f, "{found} regions, at most {max} allowed")
            }
            Self::EmptyRegion { index } => write!(f, "region {index} is empty"),
            Self::RegionOutOfBounds { index, offset, len } => {
                write!(f, "region {index} (offset {offset}, length {len}) is outside the segment's usable area")
            }
            Self::Misaligned { index, offset, align } => {
                write!(f, "region {index} offset {offset} is not a multiple of {align}")
            }
            Self::RegionOverlap { first, second } => {
                write!(f, "regions {first} and {second} overlap")
            }
        }
    }
}

impl Error for LayoutError {}

/// Why a [`LayoutBuilder`](crate::LayoutBuilder) could not plan a layout.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The alignment is not a power of two within
    /// [`MIN_REGION_ALIGN`](crate::MIN_REGION_ALIGN)..=[`MAX_REGION_ALIGN`](crate::MAX_REGION_ALIGN).
    InvalidAlignment {
        /// The alignment asked for.
        align: usize,
    },
    /// The table already holds [`MAX_REGIONS`](crate::MAX_REGIONS) regions.
    TooManyRegions {
        /// [`MAX_REGIONS`](crate::MAX_REGIONS).
        max: usize,
    },
    /// A region of length 0 was asked for.
    EmptyRegion,
    /// The layout would exceed [`MAX_SEGMENT_LEN`](crate::MAX_SEGMENT_LEN).
    TooLarge {
        /// Length of the region that did not fit.
        region_len: usize,
        /// [`MAX_SEGMENT_LEN`](crate::MAX_SEGMENT_LEN).
        max: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot plan segment layout: ")?;
        match self {
            Self::InvalidAlignment { align } => write!(
                f,
                "region alignment {align} is not a power of two between {} and {}",
                crate::MIN_REGION_ALIGN,
                crate::MAX_REGION_ALIGN
            ),
            Self::TooManyRegions { max } => write!(f, "more than {max} regions"),
            Self::EmptyRegion => write!(f, "a region of length 0"),
            Self::TooLarge { region_len, max } => {
                write!(f, "adding a region of {region_len} bytes exceeds the maximum segment size of {max} bytes")
            }
        }
    }
}

impl Error for BuildError {}

/// Why [`LayoutBuilder::write_header`](crate::LayoutBuilder::write_header)
/// wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteHeaderError {
    /// The segment is smaller than the planned layout.
    SegmentTooSmall {
        /// Bytes the layout needs.
        needed: usize,
        /// The segment's length.
        found: usize,
    },
    /// The segment already carries a header (its magic word is not 0).
    AlreadyWritten,
}

impl fmt::Display for WriteHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SegmentTooSmall { needed, found } => {
                write!(f, "cannot write segment header: the layout needs {needed} bytes, the segment has {found}")
            }
            Self::AlreadyWritten => write!(f, "cannot write segment header: the segment already has one"),
        }
    }
}

impl Error for WriteHeaderError {}
