//! Thin, safe wrappers around the few Linux system calls that `std` does not
//! offer: `memfd_create`, the sealing `fcntl`s, `sysconf(_SC_PAGESIZE)` and
//! the `madvise` that prefaults a range.
//!
//! This module is the crate's syscall boundary: it returns raw `io::Error`s
//! and lets the callers add context. It must never interpret what a segment
//! holds, and never hand out a file descriptor it does not own.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Seals that make a memfd safe to map from another process: it can neither
/// shrink (SIGBUS for whoever maps it) nor grow, and the seal set is final.
pub(crate) const REQUIRED_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;

/// Calls `memfd_create(2)`.
pub(crate) fn memfd_create(name: &CStr, flags: libc::c_uint) -> io::Result<OwnedFd> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call;
    // the kernel copies it and keeps no pointer to it.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by a successful memfd_create, so it is an
    // open descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds `seals` with `fcntl(F_ADD_SEALS)`.
pub(crate) fn add_seals(fd: BorrowedFd<'_>, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: `fd` is a live descriptor for the duration of the borrow, and
    // F_ADD_SEALS takes an int argument and touches no memory of ours.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads the seal set with `fcntl(F_GET_SEALS)`.
pub(crate) fn get_seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: `fd` is a live descriptor for the duration of the borrow, and
    // F_GET_SEALS takes no argument and touches no memory of ours.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// The system page size; 4096 if `sysconf` cannot tell (it always can on Linux).
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value; it has no
    // preconditions and touches no memory of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match usize::try_from(size) {
        Ok(size) if size.is_power_of_two() => size,
        _ => 4096,
    }
}

/// `MADV_POPULATE_WRITE` (Linux 5.14; not in the libc crate yet).
const MADV_POPULATE_WRITE: libc::c_int = 23;

/// Faults in `[ptr, ptr + len)` writable (`madvise(MADV_POPULATE_WRITE)`):
/// pages allocated, page-table entries filled, contents unchanged.
///
/// # Safety
/// `ptr` is page-aligned and `[ptr, ptr + len)` lies inside one mapping
/// this process owns and keeps for the call.
pub(crate) unsafe fn populate_write(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: forwarded from our caller; MADV_POPULATE_WRITE changes no
    // byte of the range (it faults pages in as a write would, without
    // writing), so a peer writing the memory meanwhile is unaffected.
    let rc = unsafe { libc::madvise(ptr.cast(), len, MADV_POPULATE_WRITE) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
