//! Owned file descriptors and the system calls the kernel transports make on
//! them. Each method is one system call with its errno as an `io::Error`;
//! nothing here retries or waits: that is the caller's choice (spin or
//! block).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// One end of a kernel byte stream (socket or pipe), closed on drop.
pub(super) struct Fd(OwnedFd);

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Self {
        Fd(fd)
    }
}

/// `Ok(())` for a zero result, the errno otherwise.
fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The byte count of a read or write, or its errno.
fn check_len(r: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(r).map_err(|_| io::Error::last_os_error())
}

impl Fd {
    /// Takes ownership of a descriptor a system call just returned.
    ///
    /// # Safety
    /// `raw` is open and owned by nobody else (it is closed on drop).
    unsafe fn from_raw(raw: RawFd) -> Self {
        // SAFETY: the caller guarantees `raw` is open and unowned.
        Fd(unsafe { OwnedFd::from_raw_fd(raw) })
    }

    fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    /// Sets O_NONBLOCK: reads and writes return EAGAIN instead of sleeping.
    pub(super) fn set_nonblocking(&self) -> io::Result<()> {
        // SAFETY: F_GETFL on a descriptor we own takes no argument and
        // touches no memory of ours.
        let flags = unsafe { libc::fcntl(self.raw(), libc::F_GETFL) };
        check(flags)?;
        // SAFETY: F_SETFL on a descriptor we own takes an int of flags and
        // touches no memory of ours.
        check(unsafe { libc::fcntl(self.raw(), libc::F_SETFL, flags | libc::O_NONBLOCK) })
    }

    /// Sets SO_RCVTIMEO and SO_SNDTIMEO: a blocking recv or send that waits
    /// `timeout` fails with EAGAIN.
    pub(super) fn set_socket_timeouts(&self, timeout: Duration) -> io::Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
            tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
        };
        for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
            // SAFETY: `tv` is a live timeval and the length passed is its
            // size, which is what SO_RCVTIMEO / SO_SNDTIMEO read.
            let r = unsafe {
                libc::setsockopt(
                    self.raw(),
                    libc::SOL_SOCKET,
                    option,
                    (&raw const tv).cast::<libc::c_void>(),
                    size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            check(r)?;
        }
        Ok(())
    }

    /// One `recv`: bytes received, 0 at end of stream.
    #[inline]
    pub(super) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the
        // whole call and nothing else borrows it.
        check_len(unsafe { libc::recv(self.raw(), buf.as_mut_ptr().cast(), buf.len(), 0) })
    }

    /// One `send`, without SIGPIPE when the peer is gone (EPIPE instead).
    #[inline]
    pub(super) fn send(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the
        // whole call.
        check_len(unsafe { libc::send(self.raw(), buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) })
    }

    /// One `read`: bytes read, 0 at end of stream.
    #[inline]
    pub(super) fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the
        // whole call and nothing else borrows it.
        check_len(unsafe { libc::read(self.raw(), buf.as_mut_ptr().cast(), buf.len()) })
    }

    /// One `write`.
    #[inline]
    pub(super) fn write(&self, buf: &[u8]) -> io::Result<usize> {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the
        // whole call.
        check_len(unsafe { libc::write(self.raw(), buf.as_ptr().cast(), buf.len()) })
    }

    /// Sleeps until the descriptor is readable (data, or the writer gone) or
    /// `timeout` passes; true when readable.
    pub(super) fn poll_readable(&self, timeout: Duration) -> io::Result<bool> {
        let mut pfd = libc::pollfd { fd: self.raw(), events: libc::POLLIN, revents: 0 };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pfd` is one live pollfd, matching the count of 1.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        check(r)?;
        Ok(r > 0)
    }
}

/// A connected pair of Unix stream sockets (close-on-exec, blocking).
pub(super) fn unix_socketpair() -> io::Result<(Fd, Fd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair writes.
    let r = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) };
    check(r)?;
    // SAFETY: socketpair succeeded, so both are fresh descriptors that
    // nobody else owns.
    Ok(unsafe { (Fd::from_raw(fds[0]), Fd::from_raw(fds[1])) })
}

/// A pipe (close-on-exec, blocking): (read end, write end).
pub(super) fn pipe() -> io::Result<(Fd, Fd)> {
    let mut fds: [RawFd; 2] = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: pipe2 succeeded, so both are fresh descriptors that nobody
    // else owns.
    Ok(unsafe { (Fd::from_raw(fds[0]), Fd::from_raw(fds[1])) })
}
