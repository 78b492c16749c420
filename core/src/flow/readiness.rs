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

/// Most datagrams one [`drain`] takes. The queue holds one per arming from
/// an honest peer (and at most `net.unix.max_dgram_qlen` + 1 from anyone),
/// but a peer holding the signalling end can refill it as fast as we empty
/// it: past this many the descriptor is left readable (a spurious wake for
/// the application, whose next empty receive drains again), never a
/// receive held in the loop.
pub const MAX_DRAIN: usize = 1024;

/// Resets the polled end to not readable (at most [`MAX_DRAIN`] datagrams).
pub fn drain(fd: RawFd) {
    let mut buf = [0u8; 64];
    drain_with(|| {
        // SAFETY: receives into a local buffer; MSG_DONTWAIT never blocks.
        unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) }
    });
}

/// [`drain`]'s loop over `recv` (a `recv(2)` result per call), bounded.
fn drain_with(mut recv: impl FnMut() -> isize) {
    for _ in 0..MAX_DRAIN {
        if recv() <= 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that refills the queue as fast as it is drained (here: a
    /// queue that never runs dry) held a receive in `drain` forever.
    #[test]
    fn a_queue_that_never_runs_dry_is_drained_a_bounded_number_of_times() {
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut calls = 0usize;
            drain_with(|| {
                calls += 1;
                1
            });
            let _ = done.send(calls);
        });
        // A hang guard, not a timing assertion.
        let calls = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("drain never returned");
        assert_eq!(calls, MAX_DRAIN);
    }

    /// An honest queue (a few signals) is drained to empty.
    #[test]
    fn a_few_signals_are_drained_to_empty() {
        let (poll_end, signal_end) = new_pair().unwrap();
        use std::os::fd::AsRawFd;
        for _ in 0..3 {
            signal(signal_end.as_raw_fd());
        }
        drain(poll_end.as_raw_fd());
        let mut b = [0u8; 1];
        // SAFETY: a local buffer; MSG_DONTWAIT never blocks.
        let n = unsafe { libc::recv(poll_end.as_raw_fd(), b.as_mut_ptr().cast(), 1, libc::MSG_DONTWAIT) };
        assert_eq!(n, -1, "drained to empty");
    }
}
