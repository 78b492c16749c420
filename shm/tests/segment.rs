//! Behaviour of `Segment`: shared memory through two mappings, sealing,
//! refusal of unsafe descriptors, huge-page policies.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use ringflow_shm::{CreateError, HugePages, OpenError, Segment, SegmentOptions, MAX_NAME_LEN};

fn create(size: usize) -> Segment {
    Segment::create(&SegmentOptions::new("ringflow:test", size)).unwrap()
}

/// A memfd made by hand, `size` bytes, with `seals` added if `Some`.
fn handmade_memfd(size: u64, seals: Option<libc::c_int>) -> OwnedFd {
    let flags = if seals.is_some() { libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING } else { libc::MFD_CLOEXEC };
    // SAFETY: the name is a NUL-terminated literal; the kernel copies it.
    let raw = unsafe { libc::memfd_create(c"ringflow:handmade".as_ptr(), flags) };
    assert!(raw >= 0, "memfd_create: {}", std::io::Error::last_os_error());
    // SAFETY: `raw` was just returned by memfd_create and is owned by no one else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let file = File::from(fd);
    file.set_len(size).unwrap();
    if let Some(seals) = seals {
        // SAFETY: F_ADD_SEALS on a live descriptor takes an int and touches no memory.
        let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) };
        assert_eq!(rc, 0, "F_ADD_SEALS: {}", std::io::Error::last_os_error());
    }
    file.into()
}

fn seals_of(fd: &impl AsRawFd) -> libc::c_int {
    // SAFETY: F_GET_SEALS on a live descriptor takes no argument and touches no memory.
    let seals = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    assert!(seals >= 0, "F_GET_SEALS: {}", std::io::Error::last_os_error());
    seals
}

fn proc_count(path: &str) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether the host could hand out huge pages at all.
fn host_has_huge_pages() -> bool {
    proc_count("/proc/sys/vm/nr_hugepages").unwrap_or(0) > 0
        || proc_count("/proc/sys/vm/nr_overcommit_hugepages").unwrap_or(0) > 0
}

#[test]
fn two_mappings_share_one_memory() {
    let first = create(10_000);
    assert!(first.len() >= 10_000);
    let message = b"hello from the first mapping";
    // SAFETY: the mapping is valid for first.len() >= message.len() bytes
    // and nothing else accesses it in this test.
    unsafe { std::ptr::copy_nonoverlapping(message.as_ptr(), first.as_ptr(), message.len()) };

    let second = Segment::from_fd(first.try_clone_fd().unwrap(), Some(first.len())).unwrap();
    assert_eq!(second.len(), first.len());
    assert_ne!(first.as_ptr(), second.as_ptr(), "expected two mappings");

    let mut seen = [0u8; 28];
    // SAFETY: both mappings are valid for at least 28 bytes; the test is single-threaded.
    unsafe { std::ptr::copy_nonoverlapping(second.as_ptr(), seen.as_mut_ptr(), seen.len()) };
    assert_eq!(&seen, message);

    // And back: a write through the second mapping is visible in the first.
    // SAFETY: offset 100 is inside both mappings; single-threaded test.
    unsafe { second.as_ptr().add(100).write_volatile(0xAB) };
    // SAFETY: as above.
    assert_eq!(unsafe { first.as_ptr().add(100).read_volatile() }, 0xAB);
}

#[test]
fn memory_starts_zeroed() {
    let segment = create(8192);
    // SAFETY: the mapping is valid for len() bytes; single-threaded test.
    let bytes = unsafe { std::slice::from_raw_parts(segment.as_ptr(), segment.len()) };
    assert!(bytes.iter().all(|&b| b == 0));
}

#[test]
fn created_segment_is_sealed_and_cannot_shrink() {
    let segment = create(4096);
    let seals = seals_of(&segment);
    let required = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    assert_eq!(seals & required, required);

    let clone = File::from(segment.try_clone_fd().unwrap());
    let err = clone.set_len(0).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    assert_eq!(clone.metadata().unwrap().len(), segment.len() as u64);
    assert_eq!(segment.fd().as_raw_fd(), segment.as_fd().as_raw_fd());
}

#[test]
fn from_fd_refuses_an_unsealed_memfd() {
    // Created without MFD_ALLOW_SEALING: the kernel reports only F_SEAL_SEAL.
    let fd = handmade_memfd(4096, None);
    assert!(matches!(Segment::from_fd(fd, None), Err(OpenError::NotSealed { .. })));
    // Sealable and sealed against growing, but not against shrinking.
    let fd = handmade_memfd(4096, Some(libc::F_SEAL_GROW));
    let err = Segment::from_fd(fd, None).unwrap_err();
    assert!(matches!(err, OpenError::NotSealed { seals } if seals == libc::F_SEAL_GROW));
    assert!(err.to_string().contains("SIGBUS"));
}

#[test]
fn from_fd_accepts_a_memfd_sealed_only_against_shrinking() {
    let fd = handmade_memfd(8192, Some(libc::F_SEAL_SHRINK));
    let segment = Segment::from_fd(fd, Some(8192)).unwrap();
    assert_eq!(segment.len(), 8192);
}

#[test]
fn from_fd_refuses_bad_sizes() {
    let fd = handmade_memfd(0, Some(libc::F_SEAL_SHRINK));
    assert!(matches!(Segment::from_fd(fd, None), Err(OpenError::ZeroSize)));

    let fd = handmade_memfd(100, Some(libc::F_SEAL_SHRINK));
    assert!(matches!(Segment::from_fd(fd, None), Err(OpenError::TooSmall { len: 100, .. })));

    let fd = handmade_memfd(8192, Some(libc::F_SEAL_SHRINK));
    assert!(matches!(Segment::from_fd(fd, Some(4096)), Err(OpenError::LengthMismatch { expected: 4096, found: 8192 })));
}

#[test]
fn from_fd_refuses_what_is_not_a_memfd() {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array of two ints for pipe to fill.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    // SAFETY: both descriptors were just created by pipe and are owned by no one else.
    let (read, _write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    assert!(matches!(Segment::from_fd(read, None), Err(OpenError::NotMemfd)));
}

#[test]
fn from_fd_reports_mmap_failure_on_a_read_only_descriptor() {
    let segment = create(4096);
    let read_only = OpenOptions::new().read(true).open(format!("/proc/self/fd/{}", segment.as_raw_fd())).unwrap();
    match Segment::from_fd(read_only.into(), None) {
        Err(OpenError::Syscall { syscall, source }) => {
            assert_eq!(syscall, "mmap");
            assert_eq!(source.kind(), ErrorKind::PermissionDenied);
        }
        other => panic!("expected an mmap failure, got {other:?}"),
    }
}

#[test]
fn create_validates_size_and_name() {
    assert!(matches!(
        Segment::create(&SegmentOptions::new("ringflow:zero", 0)),
        Err(CreateError::InvalidSize { requested: 0, .. })
    ));
    assert!(matches!(
        Segment::create(&SegmentOptions::new("ringflow:huge", usize::MAX)),
        Err(CreateError::InvalidSize { .. })
    ));
    assert!(matches!(Segment::create(&SegmentOptions::new("bad\0name", 4096)), Err(CreateError::NameContainsNul)));
    assert!(matches!(
        Segment::create(&SegmentOptions::new("x".repeat(MAX_NAME_LEN + 1), 4096)),
        Err(CreateError::NameTooLong { .. })
    ));
    assert!(Segment::create(&SegmentOptions::new("x".repeat(MAX_NAME_LEN), 4096)).is_ok());
}

#[test]
fn name_shows_in_proc() {
    let segment = Segment::create(&SegmentOptions::new("ringflow:flow-x", 4096)).unwrap();
    let target = fs::read_link(format!("/proc/self/fd/{}", segment.as_raw_fd())).unwrap();
    assert!(target.to_string_lossy().starts_with("/memfd:ringflow:flow-x"));
}

#[test]
fn huge_pages_if_available_always_succeeds() {
    let opts = SegmentOptions::new("ringflow:test-huge", 4096).huge_pages(HugePages::IfAvailable);
    let segment = Segment::create(&opts).unwrap();
    if !host_has_huge_pages() {
        assert!(!segment.huge_pages_used());
    }
    if segment.huge_pages_used() {
        assert_eq!(segment.len(), ringflow_shm::HUGE_PAGE_SIZE);
    }
    // The mapping is usable either way.
    // SAFETY: offset 0 is inside the mapping; single-threaded test.
    unsafe { segment.as_ptr().write_volatile(1) };
}

#[test]
fn huge_pages_required_gives_a_typed_error_naming_the_fix() {
    if host_has_huge_pages() {
        eprintln!("skipped: this host has huge pages reserved");
        return;
    }
    let opts = SegmentOptions::new("ringflow:test-huge", 4096).huge_pages(HugePages::Require);
    let err = Segment::create(&opts).unwrap_err();
    assert!(matches!(err, CreateError::HugePagesUnavailable { size, .. } if size == 2 << 20), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("/proc/sys/vm/nr_hugepages"), "{message}");
    assert!(message.contains("vm.nr_hugepages"), "{message}");
}
