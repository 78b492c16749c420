//! The errors of [`Segment::create`](crate::Segment::create) and
//! [`Segment::from_fd`](crate::Segment::from_fd), one enum per operation.
//!
//! Every system-call failure names the call that failed. This module must
//! never hide a distinct cause behind a shared variant.

use std::error::Error;
use std::fmt;
use std::io;

use crate::options::HUGE_PAGE_SIZE;

/// Why [`Segment::create`](crate::Segment::create) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError {
    /// The requested size is 0 or larger than [`MAX_SEGMENT_LEN`](crate::MAX_SEGMENT_LEN).
    InvalidSize {
        /// The size asked for.
        requested: usize,
        /// The largest size allowed.
        max: usize,
    },
    /// The name contains a NUL byte, which `memfd_create` cannot take.
    NameContainsNul,
    /// The name is longer than `memfd_create` accepts.
    NameTooLong {
        /// Length of the name in bytes.
        len: usize,
        /// The longest name allowed.
        max: usize,
    },
    /// [`HugePages::Require`](crate::HugePages::Require) was asked for and
    /// the host could not provide huge pages.
    HugePagesUnavailable {
        /// Size of the segment, rounded up to whole huge pages.
        size: usize,
        /// The call that failed (`memfd_create`, `ftruncate`, `fcntl(F_ADD_SEALS)` or `mmap`).
        syscall: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// A system call failed.
    Syscall {
        /// The call that failed.
        syscall: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSize { requested: 0, .. } => {
                write!(f, "cannot create a shared-memory segment of size 0")
            }
            Self::InvalidSize { requested, max } => {
                write!(f, "shared-memory segment size {requested} bytes exceeds the maximum of {max} bytes")
            }
            Self::NameContainsNul => {
                write!(f, "shared-memory segment name contains a NUL byte")
            }
            Self::NameTooLong { len, max } => {
                write!(f, "shared-memory segment name is {len} bytes long; memfd_create accepts at most {max}")
            }
            Self::HugePagesUnavailable { size, syscall, source } => write!(
                f,
                "huge pages required but unavailable ({syscall} failed: {source}); \
                 reserve at least {pages} huge page(s) of {mib} MiB, e.g. \
                 `echo {pages} > /proc/sys/vm/nr_hugepages` as root or \
                 `sysctl -w vm.nr_hugepages={pages}` (vm.nr_hugepages in /etc/sysctl.conf to persist), \
                 or use HugePages::IfAvailable",
                pages = size.div_ceil(HUGE_PAGE_SIZE),
                mib = HUGE_PAGE_SIZE >> 20,
            ),
            Self::Syscall { syscall, source } => {
                write!(f, "creating a shared-memory segment: {syscall} failed: {source}")
            }
        }
    }
}

impl Error for CreateError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::HugePagesUnavailable { source, .. } | Self::Syscall { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why [`Segment::from_fd`](crate::Segment::from_fd) refused a descriptor.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The descriptor is not a memfd (not a regular file, or one that does
    /// not support seals).
    NotMemfd,
    /// The memfd is not sealed against shrinking: the peer could truncate it
    /// under our mapping and make every access a SIGBUS.
    NotSealed {
        /// The seals it does carry (`F_SEAL_*` bits).
        seals: i32,
    },
    /// The memfd is empty.
    ZeroSize,
    /// The memfd is smaller than [`MIN_SEGMENT_LEN`](crate::MIN_SEGMENT_LEN).
    TooSmall {
        /// Its size.
        len: u64,
        /// The smallest size accepted.
        min: usize,
    },
    /// The memfd is larger than [`MAX_SEGMENT_LEN`](crate::MAX_SEGMENT_LEN).
    TooLarge {
        /// Its size.
        len: u64,
        /// The largest size accepted.
        max: usize,
    },
    /// The memfd's size is not the one the caller expected.
    LengthMismatch {
        /// The size the caller expected.
        expected: usize,
        /// The size it has.
        found: u64,
    },
    /// A system call failed.
    Syscall {
        /// The call that failed.
        syscall: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotMemfd => write!(f, "refusing shared-memory descriptor: it is not a memfd that supports sealing"),
            Self::NotSealed { seals } => write!(
                f,
                "refusing shared-memory segment: not sealed against shrinking \
                 (seals {seals:#x}), the peer could truncate it and crash us with SIGBUS"
            ),
            Self::ZeroSize => write!(f, "refusing shared-memory segment: it is empty"),
            Self::TooSmall { len, min } => {
                write!(f, "refusing shared-memory segment: {len} bytes is below the minimum of {min}")
            }
            Self::TooLarge { len, max } => {
                write!(f, "refusing shared-memory segment: {len} bytes exceeds the maximum of {max}")
            }
            Self::LengthMismatch { expected, found } => {
                write!(f, "refusing shared-memory segment: expected {expected} bytes, found {found}")
            }
            Self::Syscall { syscall, source } => {
                write!(f, "opening a shared-memory segment: {syscall} failed: {source}")
            }
        }
    }
}

impl Error for OpenError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            Self::Syscall { source, .. } => Some(source),
            _ => None,
        }
    }
}
