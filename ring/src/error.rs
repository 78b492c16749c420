//! Errors of the ring operations: one enum per operation, distinct causes.

use std::fmt;

/// The region holds something that breaks the ring's invariants: a peer is
/// buggy, malicious, or scribbled over shared memory. The ring is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Corrupt {
    /// Byte offset in the region where the bad value was found.
    pub offset: usize,
    /// The raw value found there.
    pub value: u64,
    /// Which invariant it breaks.
    pub what: &'static str,
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt ring: {} (value {:#x} at offset {})", self.what, self.value, self.offset)
    }
}

impl std::error::Error for Corrupt {}

/// Why a ring could not be attached to a region.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachError {
    /// The region is too small or its size does not match the ring geometry.
    BadSize {
        /// The region's length in bytes.
        len: usize,
        /// What does not fit.
        what: &'static str,
    },
    /// The region does not start with this ring kind's magic.
    BadMagic {
        /// The word found where the magic belongs.
        found: u64,
    },
    /// The stored geometry is inconsistent with the region.
    BadGeometry {
        /// Which value is out of place.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// That side of the ring is already attached (or all slots are taken).
    Busy,
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::BadSize { len, what } => write!(f, "region of {len} bytes: {what}"),
            AttachError::BadMagic { found } => write!(f, "region holds no ring of this kind (magic {found:#x})"),
            AttachError::BadGeometry { what, value } => write!(f, "ring geometry invalid: {what} ({value})"),
            AttachError::Busy => write!(f, "that side of the ring is already attached"),
        }
    }
}

impl std::error::Error for AttachError {}

/// Why space for a frame could not be claimed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClaimError {
    /// No room now; retry after the consumer releases space. (On a ring
    /// whose tail many producers share, also: the tail kept moving under
    /// a bounded number of claim attempts; retry.)
    Full,
    /// The frame can never fit this ring.
    TooLarge {
        /// The frame's payload length.
        len: usize,
        /// The largest payload this ring takes.
        max: usize,
    },
    /// The consumer side has closed; nothing sent will be read.
    Closed,
    /// The ring is corrupt.
    Corrupt(Corrupt),
}

impl fmt::Display for ClaimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClaimError::Full => write!(f, "ring full"),
            ClaimError::TooLarge { len, max } => write!(f, "frame of {len} bytes exceeds the ring's maximum of {max}"),
            ClaimError::Closed => write!(f, "consumer closed"),
            ClaimError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl std::error::Error for ClaimError {}

impl From<Corrupt> for ClaimError {
    fn from(c: Corrupt) -> Self {
        ClaimError::Corrupt(c)
    }
}

/// Why a claimed frame could not be committed (many-producer rings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitError {
    /// The claim is no longer this producer's: the consumer declared it
    /// abandoned and skipped it (see `mpsc::Consumer::unblock`), or a
    /// misbehaving peer overwrote its commit word. The frame was not
    /// delivered, and the commit wrote nothing.
    Revoked,
    /// The ring is corrupt.
    Corrupt(Corrupt),
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitError::Revoked => write!(f, "claim was revoked by the consumer; frame not delivered"),
            CommitError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl std::error::Error for CommitError {}

/// Why no frame could be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// Nothing committed yet; retry later.
    Empty,
    /// The producer side closed and every committed frame has been read.
    Closed,
    /// (Lossy broadcast) producers overwrote frames before this consumer read
    /// them; the cursor jumped forward past `missed_bytes` bytes of log.
    Lapped {
        /// Bytes of log skipped.
        missed_bytes: u64,
    },
    /// The ring is corrupt.
    Corrupt(Corrupt),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Empty => write!(f, "ring empty"),
            ReadError::Closed => write!(f, "producer closed; all frames read"),
            ReadError::Lapped { missed_bytes } => write!(f, "consumer lapped: {missed_bytes} bytes of log missed"),
            ReadError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<Corrupt> for ReadError {
    fn from(c: Corrupt) -> Self {
        ReadError::Corrupt(c)
    }
}
