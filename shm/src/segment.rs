//! A shared-memory segment: a sealed memfd mapped shared read-write.
//!
//! A segment is the unit one process hands to another (as a file descriptor
//! over a Unix socket). The creator seals it so it can never shrink; the
//! receiver refuses a descriptor that is not sealed, so no peer can truncate
//! the memory under our mapping and turn an access into a SIGBUS.
//!
//! This module must never create a Rust reference into the mapping (the peer
//! writes to it concurrently; only raw pointers leave this module), and never
//! interpret the segment's contents (that is [`crate::layout`]'s job).

use std::ffi::CString;
use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

use memmap2::{MmapOptions, MmapRaw};

use crate::options::{HugePages, SegmentOptions, HUGE_PAGE_SIZE};
use crate::segment_error::{CreateError, OpenError};
use crate::sys;

/// The largest segment ringflow creates or maps (1 TiB); anything larger is
/// a bug or a hostile peer.
pub const MAX_SEGMENT_LEN: usize = 1 << 40;

/// The smallest segment [`Segment::from_fd`] maps: one 4 KiB page, which
/// every segment made by [`Segment::create`] reaches after rounding.
pub const MIN_SEGMENT_LEN: usize = 4096;

/// The longest name `memfd_create` accepts (`NAME_MAX` minus `"memfd:"`).
pub const MAX_NAME_LEN: usize = 249;

/// A sealed memfd mapped shared read-write into this process.
///
/// The mapping lives exactly as long as the `Segment`. Pointers obtained from
/// [`as_ptr`](Self::as_ptr) are valid for [`len`](Self::len) bytes until the
/// `Segment` is dropped; other processes may write through the same memory at
/// any time, so access it only through raw pointers, volatile or atomic
/// operations, never through `&`/`&mut` references to plain data.
///
/// `Segment` is `Send + Sync` by its fields: [`MmapRaw`] only hands out raw
/// pointers and `File` is a descriptor; it holds no reference into the memory.
pub struct Segment {
    map: MmapRaw,
    file: File,
    huge_pages_used: bool,
}

/// A failed step of segment creation, before it is given its public meaning.
struct Failure {
    syscall: &'static str,
    source: io::Error,
}

impl Failure {
    fn at(syscall: &'static str) -> impl FnOnce(io::Error) -> Failure {
        move |source| Failure { syscall, source }
    }

    /// Whether the failure means "this host has no huge pages to give"
    /// rather than an ordinary resource problem (such as running out of
    /// descriptors) that normal pages would hit as well.
    fn is_huge_page_shortage(&self) -> bool {
        matches!(
            self.source.raw_os_error(),
            Some(libc::ENOMEM | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::ENODEV | libc::ENOENT)
        )
    }
}

fn round_up(size: usize, page: usize) -> usize {
    // Cannot overflow: size <= MAX_SEGMENT_LEN and page is at most 2 MiB.
    size.div_ceil(page) * page
}

impl Segment {
    /// Creates a segment as `opts` describes: a memfd of at least
    /// `opts.size` bytes (rounded up to the page size used), zero-filled,
    /// sealed with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL`, mapped shared.
    ///
    /// # Errors
    ///
    /// [`CreateError::InvalidSize`] for a size of 0 or above
    /// [`MAX_SEGMENT_LEN`]; [`CreateError::NameContainsNul`] /
    /// [`CreateError::NameTooLong`] for a name `memfd_create` cannot take;
    /// [`CreateError::HugePagesUnavailable`] under [`HugePages::Require`]
    /// when the host has no huge pages to give; [`CreateError::Syscall`]
    /// when a system call fails otherwise.
    pub fn create(opts: &SegmentOptions) -> Result<Segment, CreateError> {
        if opts.size == 0 || opts.size > MAX_SEGMENT_LEN {
            return Err(CreateError::InvalidSize { requested: opts.size, max: MAX_SEGMENT_LEN });
        }
        if opts.name.len() > MAX_NAME_LEN {
            return Err(CreateError::NameTooLong { len: opts.name.len(), max: MAX_NAME_LEN });
        }
        let name = CString::new(opts.name.as_str()).map_err(|_| CreateError::NameContainsNul)?;
        let normal = |f: Failure| CreateError::Syscall { syscall: f.syscall, source: f.source };

        match opts.huge_pages {
            HugePages::Never => Self::create_with(&name, opts.size, false).map_err(normal),
            HugePages::Require => Self::create_with(&name, opts.size, true).map_err(|f| {
                if f.is_huge_page_shortage() {
                    CreateError::HugePagesUnavailable {
                        size: round_up(opts.size, HUGE_PAGE_SIZE),
                        syscall: f.syscall,
                        source: f.source,
                    }
                } else {
                    normal(f)
                }
            }),
            // Any failure of the huge-page attempt falls back: if the cause
            // was not huge pages, the normal attempt fails too and says why.
            HugePages::IfAvailable => Self::create_with(&name, opts.size, true)
                .or_else(|_| Self::create_with(&name, opts.size, false))
                .map_err(normal),
        }
    }

    fn create_with(name: &CString, size: usize, huge: bool) -> Result<Segment, Failure> {
        let (flags, page) = if huge {
            (libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING | libc::MFD_HUGETLB | libc::MFD_HUGE_2MB, HUGE_PAGE_SIZE)
        } else {
            (libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING, sys::page_size())
        };
        let len = round_up(size, page);

        let file = File::from(sys::memfd_create(name, flags).map_err(Failure::at("memfd_create"))?);
        // usize -> u64 is lossless on every target Linux runs on.
        file.set_len(len as u64).map_err(Failure::at("ftruncate"))?;
        sys::add_seals(file.as_fd(), sys::REQUIRED_SEALS).map_err(Failure::at("fcntl(F_ADD_SEALS)"))?;
        // Huge-page reservations are taken here (MAP_SHARED without
        // MAP_NORESERVE), so a host without huge pages fails now with ENOMEM
        // instead of later with SIGBUS on first touch.
        let map = MmapOptions::new().len(len).map_raw(&file).map_err(Failure::at("mmap"))?;
        Ok(Segment { map, file, huge_pages_used: huge })
    }

    /// Maps a segment received from another process.
    ///
    /// The descriptor must be a memfd sealed against shrinking. Seals are
    /// checked before the size is read: once `F_SEAL_SHRINK` is set it can
    /// never be removed, so the size read afterwards can only grow, which
    /// cannot hurt a mapping of the size we saw. `expected`, if given, is
    /// the exact size the caller was told to expect.
    ///
    /// # Errors
    ///
    /// [`OpenError::NotMemfd`], [`OpenError::NotSealed`],
    /// [`OpenError::ZeroSize`], [`OpenError::TooSmall`],
    /// [`OpenError::TooLarge`], [`OpenError::LengthMismatch`] for a
    /// descriptor we refuse; [`OpenError::Syscall`] when `fstat`, `fcntl` or
    /// `mmap` fails (for example `mmap` on a descriptor opened read-only).
    pub fn from_fd(fd: OwnedFd, expected: Option<usize>) -> Result<Segment, OpenError> {
        let file = File::from(fd);

        let seals = match sys::get_seals(file.as_fd()) {
            Ok(seals) => seals,
            // Not a shmem/hugetlbfs file: pipes, sockets, regular files.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Err(OpenError::NotMemfd),
            Err(source) => return Err(OpenError::Syscall { syscall: "fcntl(F_GET_SEALS)", source }),
        };
        if seals & libc::F_SEAL_SHRINK == 0 {
            return Err(OpenError::NotSealed { seals });
        }

        let meta = file.metadata().map_err(|source| OpenError::Syscall { syscall: "fstat", source })?;
        if !meta.file_type().is_file() {
            return Err(OpenError::NotMemfd);
        }
        let found = meta.len();
        if found == 0 {
            return Err(OpenError::ZeroSize);
        }
        // usize -> u64 is lossless on every target Linux runs on.
        if found < MIN_SEGMENT_LEN as u64 {
            return Err(OpenError::TooSmall { len: found, min: MIN_SEGMENT_LEN });
        }
        let len = match usize::try_from(found) {
            Ok(len) if len <= MAX_SEGMENT_LEN => len,
            _ => return Err(OpenError::TooLarge { len: found, max: MAX_SEGMENT_LEN }),
        };
        if let Some(expected) = expected {
            if expected != len {
                return Err(OpenError::LengthMismatch { expected, found });
            }
        }

        let map = MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(|source| OpenError::Syscall { syscall: "mmap", source })?;
        // hugetlbfs reports its page size as the preferred I/O block size.
        let huge_pages_used = usize::try_from(meta.blksize()).is_ok_and(|b| b >= HUGE_PAGE_SIZE);
        Ok(Segment { map, file, huge_pages_used })
    }

    /// Start of the mapping, page-aligned, valid for [`len`](Self::len) bytes
    /// while `self` lives. Other processes may write this memory at any time.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Length of the mapping in bytes (the memfd's size; never 0).
    #[allow(clippy::len_without_is_empty, reason = "a segment is never empty: create and from_fd refuse size 0")]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the segment is backed by huge pages.
    pub fn huge_pages_used(&self) -> bool {
        self.huge_pages_used
    }

    /// The memfd, borrowed (to send it over a socket, for example).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// A new descriptor for the same memfd (close-on-exec), to hand to a peer.
    ///
    /// # Errors
    ///
    /// When `fcntl(F_DUPFD_CLOEXEC)` fails (typically `EMFILE`).
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.file.as_fd().try_clone_to_owned()
    }

    /// Keeps the mapping and closes the memfd: for a process that will
    /// never hand this segment to another one. The memory lives as long as
    /// any process maps it (or holds a descriptor of it), so closing the
    /// descriptor costs nothing but the ability to pass it on, and frees
    /// one slot of the process's descriptor limit.
    pub fn into_mapping(self) -> Mapping {
        let identity = self.file.metadata().ok().map(|m| (m.dev(), m.ino()));
        Mapping { map: self.map, huge_pages_used: self.huge_pages_used, identity }
    }
}

/// A segment's mapping without its descriptor ([`Segment::into_mapping`]).
///
/// As for a [`Segment`], the mapping lives exactly as long as the
/// `Mapping`, other processes may write it at any time, and only raw
/// pointers into it leave this type.
pub struct Mapping {
    map: MmapRaw,
    huge_pages_used: bool,
    identity: Option<(u64, u64)>,
}

impl Mapping {
    /// Start of the mapping, page-aligned, valid for [`len`](Self::len)
    /// bytes while `self` lives. Other processes may write this memory at
    /// any time.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_mut_ptr()
    }

    /// Length of the mapping in bytes (never 0).
    #[allow(clippy::len_without_is_empty, reason = "a mapping is never empty: its segment was not")]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the segment is backed by huge pages.
    pub fn huge_pages_used(&self) -> bool {
        self.huge_pages_used
    }

    /// Faults in the pages of `len` bytes at `offset` now, writable (for
    /// every page the range touches), so that the first accesses to them
    /// take no page fault: what a latency-sensitive user wants of memory
    /// its first messages will cross. The pages count as resident from now
    /// on. A range past the end is cut at it.
    ///
    /// # Errors
    ///
    /// When the kernel cannot (`madvise(MADV_POPULATE_WRITE)` needs Linux
    /// 5.14; `ENOMEM` when memory runs out): the memory then faults in as
    /// it is touched, as it would without this call.
    pub fn prefault(&self, offset: usize, len: usize) -> io::Result<()> {
        let page = sys::page_size();
        let start = (offset / page * page).min(self.len());
        let end = offset.saturating_add(len).min(self.len());
        if end <= start {
            return Ok(());
        }
        // SAFETY: `start` is a page multiple and `[start, end)` lies
        // inside our mapping, which `&self` keeps for the call.
        unsafe { sys::populate_write(self.as_ptr().add(start), end - start) }
    }

    /// The memfd's (device, inode) as it was before the descriptor closed:
    /// the same for every process that maps this segment (`None` if
    /// `fstat` failed).
    pub fn identity(&self) -> Option<(u64, u64)> {
        self.identity
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("ptr", &self.as_ptr())
            .field("len", &self.len())
            .field("huge_pages_used", &self.huge_pages_used)
            .field("identity", &self.identity)
            .finish()
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd()
    }
}

impl AsRawFd for Segment {
    fn as_raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("fd", &self.file.as_raw_fd())
            .field("ptr", &self.as_ptr())
            .field("len", &self.len())
            .field("huge_pages_used", &self.huge_pages_used)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn segment_is_send_and_sync() {
        assert_send_sync::<Segment>();
    }

    #[test]
    fn mapping_is_send_and_sync() {
        assert_send_sync::<Mapping>();
    }

    /// The memory stays: what was written before
    /// reads back through the mapping, and the identity is the memfd's.
    #[test]
    fn into_mapping_closes_the_descriptor_and_keeps_the_memory() {
        let segment = Segment::create(&SegmentOptions::new("ringflow:test-mapping", 4096)).unwrap();
        let ino = segment.file.metadata().unwrap().ino();
        // SAFETY: the segment is ours alone; one byte inside the mapping.
        unsafe { segment.as_ptr().add(100).write_volatile(42) };
        // (That the descriptor is gone is counted where no other test runs
        // beside: the flows' descriptor tests.)
        let mapping = segment.into_mapping();
        assert_eq!(mapping.identity().map(|(_, i)| i), Some(ino));
        // SAFETY: as above; the mapping outlived the descriptor.
        assert_eq!(unsafe { mapping.as_ptr().add(100).read_volatile() }, 42);
        assert_eq!(mapping.len(), sys::page_size());
    }

    fn resident_pages(m: &Mapping) -> usize {
        let page = sys::page_size();
        let mut vec = vec![0u8; m.len() / page];
        // SAFETY: mincore reads the page state of our own mapping into a
        // vector of one byte per page.
        assert_eq!(unsafe { libc::mincore(m.as_ptr().cast(), m.len(), vec.as_mut_ptr()) }, 0);
        vec.iter().filter(|&&b| b & 1 != 0).count()
    }

    /// Prefaulting makes the pages of the range resident, and only those
    /// (a fresh memfd has none); a range past the end is cut.
    #[test]
    fn prefault_makes_exactly_the_range_resident() {
        let page = sys::page_size();
        let m = Segment::create(&SegmentOptions::new("ringflow:test-prefault", 16 * page)).unwrap().into_mapping();
        assert_eq!(resident_pages(&m), 0);
        m.prefault(page + 10, 2 * page).unwrap();
        assert_eq!(resident_pages(&m), 3, "the three pages the range touches");
        m.prefault(15 * page, 10 * page).unwrap();
        assert_eq!(resident_pages(&m), 4);
        m.prefault(20 * page, page).unwrap();
        assert_eq!(resident_pages(&m), 4, "past the end: nothing");
    }

    #[test]
    fn size_is_rounded_up_to_a_page() {
        let segment = Segment::create(&SegmentOptions::new("ringflow:test-round", 1)).unwrap();
        assert_eq!(segment.len(), sys::page_size());
        assert!(!segment.huge_pages_used());
    }
}
