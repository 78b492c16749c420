//! Waiting for a control socket to become readable (or writable), with the timeout
//! convention of `accept` and `recv`: `None` waits forever, `Some(ZERO)`
//! tries once, anything else waits that long. It never consumes data and
//! never returns early on a signal (EINTR retries with the time left).

use crate::wait::Deadline;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

/// How a readiness wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Readiness {
    /// Readable, hung up or in error: the next call on the socket says which.
    Ready,
    /// Nothing was ready on a try-once call.
    WouldBlock,
    /// The timeout elapsed.
    TimedOut,
}

/// The deadline a caller's timeout means, taken now.
pub(super) fn deadline(timeout: Option<Duration>) -> Deadline {
    match timeout {
        None => Deadline::Never,
        Some(Duration::ZERO) => Deadline::Now,
        Some(d) => Deadline::after(d),
    }
}

/// Waits until `fd` is readable or `deadline` passes.
pub(super) fn wait_readable(fd: BorrowedFd<'_>, deadline: Deadline) -> io::Result<Readiness> {
    wait_for(fd, libc::POLLIN, deadline)
}

/// Waits until `fd` can take a message or `deadline` passes.
pub(super) fn wait_writable(fd: BorrowedFd<'_>, deadline: Deadline) -> io::Result<Readiness> {
    wait_for(fd, libc::POLLOUT, deadline)
}

fn wait_for(fd: BorrowedFd<'_>, events: libc::c_short, deadline: Deadline) -> io::Result<Readiness> {
    loop {
        let timeout_ms = match deadline.remaining() {
            None => -1,
            // Rounded up, so that an empty poll means the deadline passed.
            Some(left) => left.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32,
        };
        let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events, revents: 0 };
        // SAFETY: `pfd` is one valid pollfd, alive for the call; the fd is
        // borrowed, so open.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r > 0 {
            return Ok(Readiness::Ready);
        }
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return Err(err);
        }
        match deadline {
            Deadline::Now => return Ok(Readiness::WouldBlock),
            Deadline::At(at) if Instant::now() >= at => return Ok(Readiness::TimedOut),
            Deadline::At(_) | Deadline::Never => {}
        }
    }
}
