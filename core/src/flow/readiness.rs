//! Readiness descriptors: an eventfd per flow end that becomes readable when
//! the flow may have something to read (or has ended), for integration with
//! epoll-based event loops (mio, tokio) — Corosync's `cpg_fd_get` idea.
//!
//! Each end creates its eventfd and hands it to the peer at setup. A reader
//! that found nothing *arms* its direction (a word in the flow's state area);
//! a sender that publishes while the direction is armed disarms it and
//! signals the reader's eventfd — one write per arming, nothing when unarmed.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A new nonblocking eventfd.
pub fn new_eventfd() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes the eventfd readable. A full counter (EAGAIN) is readable anyway.
pub fn signal(fd: RawFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a local; the fd is an open eventfd.
    let _ = unsafe { libc::write(fd, (&one as *const u64).cast(), 8) };
}

/// Resets the eventfd to not readable.
pub fn drain(fd: RawFd) {
    let mut v: u64 = 0;
    // SAFETY: reads 8 bytes into a local; nonblocking, EAGAIN when unset.
    let _ = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
}

/// Sets O_NONBLOCK on `fd`'s open file description.
pub fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; results checked.
    let flags = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
