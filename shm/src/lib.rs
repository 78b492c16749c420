//! ringflow-shm: shared-memory segments for ringflow.
//!
//! A [`Segment`] is a sealed memfd mapped shared; it is created by one
//! process and handed to another as a file descriptor. A [`Layout`] header
//! at offset 0 tells the receiver what the segment holds and where its
//! regions lie, and is validated before anything else is touched. Shared
//! memory refers to shared memory by [`Offset`], never by pointer.
//!
//! This crate must never trust a byte read from a segment, never hold a
//! Rust reference into shared memory, and know nothing of what the regions
//! contain (rings live in `ringflow-ring`, which this crate does not use).

#![deny(missing_docs)]

mod header;
mod layout;
mod layout_builder;
mod layout_error;
mod offset;
mod options;
mod segment;
mod segment_error;
mod sys;

pub use header::{HEADER_AREA_LEN, HEADER_LEN, LAYOUT_VERSION, MAGIC, MAX_REGIONS, REGION_ENTRY_LEN};
pub use layout::{Layout, Region, DEFAULT_REGION_ALIGN, MAX_REGION_ALIGN, MIN_REGION_ALIGN};
pub use layout_builder::LayoutBuilder;
pub use layout_error::{BuildError, LayoutError, WriteHeaderError};
pub use offset::Offset;
pub use options::{HugePages, SegmentOptions, HUGE_PAGE_SIZE};
pub use segment::{Mapping, Segment, MAX_NAME_LEN, MAX_SEGMENT_LEN, MIN_SEGMENT_LEN};
pub use segment_error::{CreateError, OpenError};
