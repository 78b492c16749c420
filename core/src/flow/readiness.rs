//! Readiness descriptors: a socket per flow end that becomes readable when
//! the flow may have something to read (or has ended), for integration with
//! epoll-based event loops (mio, tokio) — Corosync's `cpg_fd_get` idea.
//!
//! Each end makes a datagram socket pair: it keeps the reading end (the
//! descriptor the application polls) and hands the other end to the peer at
//! setup. A reader that found nothing *arms* its direction (a word in the
//! flow's state area); a sender that publishes while the direction is armed
//! disarms it and sends one byte on the peer's end — one send per arming,
//! nothing when unarmed. Sends use `MSG_DONTWAIT`, so no descriptor a
//! hostile peer hands over (and no flag it flips on it) can ever block the
//! sender's data path.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// A new readiness pair: (the end to poll and drain, the end to signal).
pub fn new_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: socketpair writes two descriptors into `fds`; checked below.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
            fds.as_mut_ptr(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Makes the pair's polled end readable. Never blocks; a full queue is
/// readable anyway, and a descriptor that is not a socket is ignored.
pub fn signal(fd: RawFd) {
    let one = [1u8];
    // SAFETY: sends one byte from a local buffer; MSG_DONTWAIT never blocks.
    let _ = unsafe { libc::send(fd, one.as_ptr().cast(), 1, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
}

/// Resets the polled end to not readable.
pub fn drain(fd: RawFd) {
    let mut buf = [0u8; 64];
    loop {
        // SAFETY: receives into a local buffer; MSG_DONTWAIT never blocks.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n <= 0 {
            return;
        }
    }
}
