//! Settings for creating a [`Segment`](crate::Segment): its name, size and
//! whether it is backed by huge pages.
//!
//! This module only describes what to create; it must never perform a system
//! call or validate against the running host (that is `Segment::create`'s job).

/// Size of the huge pages ringflow asks for (`MFD_HUGE_2MB`).
pub const HUGE_PAGE_SIZE: usize = 2 << 20;

/// Whether a segment is backed by huge pages (`MFD_HUGETLB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HugePages {
    /// Normal pages only.
    #[default]
    Never,
    /// Huge pages if the host has some reserved, normal pages otherwise.
    /// [`Segment::huge_pages_used`](crate::Segment::huge_pages_used) tells
    /// which one was used.
    IfAvailable,
    /// Huge pages or an error ([`CreateError::HugePagesUnavailable`](crate::CreateError::HugePagesUnavailable)).
    Require,
}

/// What [`Segment::create`](crate::Segment::create) makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentOptions {
    /// Shown in `/proc/<pid>/fd` as `memfd:<name>`, e.g. `ringflow:flow-x`.
    /// At most [`MAX_NAME_LEN`](crate::MAX_NAME_LEN) bytes, no NUL byte.
    pub name: String,
    /// Requested size in bytes; rounded up to the page size actually used.
    pub size: usize,
    /// Huge-page policy.
    pub huge_pages: HugePages,
}

impl SegmentOptions {
    /// Options for a segment of `size` bytes named `name`, on normal pages.
    pub fn new(name: impl Into<String>, size: usize) -> Self {
        Self { name: name.into(), size, huge_pages: HugePages::Never }
    }

    /// Sets the huge-page policy.
    #[must_use]
    pub fn huge_pages(mut self, huge_pages: HugePages) -> Self {
        self.huge_pages = huge_pages;
        self
    }
}

impl Default for SegmentOptions {
    /// A 1 MiB segment named `ringflow`, on normal pages.
    fn default() -> Self {
        Self::new("ringflow", 1 << 20)
    }
}
