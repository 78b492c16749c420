//! The epoll side of a large [`FlowSet`](crate::FlowSet): one wait over any
//! number of flows, whose cost grows with the flows that are active, not
//! with the flows in the set.
//!
//! Each flow's readiness descriptor is registered once, when the flow joins
//! (its key is the event's data). Every flow is at any time either *queued*
//! (to be looked at on the next wait: just added, ready at the last wait,
//! or signalled since) or *armed* (looked at, found with nothing to offer,
//! and its directions armed, so that the peer's next publish or release of
//! room, or its death, signals the descriptor). A wait looks at the queued
//! flows only, then sleeps in `epoll_wait`, which queues the signalled ones.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// Events one `epoll_wait` takes (more stay for the next).
const EVENTS: usize = 256;

pub(crate) struct Poller {
    epoll: OwnedFd,
    /// Keys to look at on the next wait, each once.
    queue: Vec<usize>,
    /// By key: whether it is in `queue`.
    queued: Vec<bool>,
    events: Vec<libc::epoll_event>,
}

impl Poller {
    pub(crate) fn new() -> io::Result<Poller> {
        // SAFETY: plain system call; the result is checked below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor we own.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Poller { epoll, queue: Vec::new(), queued: Vec::new(), events: Vec::with_capacity(EVENTS) })
    }

    /// Registers the readiness descriptor of the flow at `key` and queues it.
    pub(crate) fn add(&mut self, key: usize, fd: BorrowedFd<'_>) -> io::Result<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: key as u64 };
        // SAFETY: `ev` is a valid event for the call; the descriptor is
        // borrowed, so open; the kernel copies the event.
        let r = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd.as_raw_fd(), &mut ev) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        self.queue(key);
        Ok(())
    }

    /// Unregisters the flow at `key` (before the set hands the flow back,
    /// while its descriptor is still open).
    pub(crate) fn remove(&mut self, key: usize, fd: BorrowedFd<'_>) {
        // SAFETY: the descriptor is borrowed, so open; a null event is
        // allowed for EPOLL_CTL_DEL. A failure leaves nothing to undo: the
        // entry goes with the descriptor's last close.
        let _ = unsafe {
            libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, fd.as_raw_fd(), std::ptr::null_mut())
        };
        if let Some(q) = self.queued.get_mut(key) {
            // A queued key of a removed flow is skipped when looked at.
            *q = false;
        }
    }

    /// Queues `key` for the next wait's look (once).
    pub(crate) fn queue(&mut self, key: usize) {
        if self.queued.len() <= key {
            self.queued.resize(key + 1, false);
        }
        if !self.queued[key] {
            self.queued[key] = true;
            self.queue.push(key);
        }
    }

    /// Takes the queued keys into `into` (cleared first).
    pub(crate) fn take_queue(&mut self, into: &mut Vec<usize>) {
        into.clear();
        for key in self.queue.drain(..) {
            // Removed since it was queued: nothing to look at.
            if std::mem::take(&mut self.queued[key]) {
                into.push(key);
            }
        }
    }

    /// Sleeps until a registered descriptor is signalled or `timeout`
    /// passes (`None`: no limit), queueing the signalled flows. Returns
    /// how many were signalled (0: the time passed, or a signal handler
    /// interrupted the sleep).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        // Rounded up to the next millisecond: never a busy loop of zero
        // timeouts short of the deadline.
        let ms = timeout.map_or(-1, |t| t.as_nanos().div_ceil(1_000_000).min(i32::MAX as u128) as i32);
        self.events.clear();
        // SAFETY: the buffer has room for EVENTS events, and the kernel
        // writes at most that many; `set_len` below trusts its count.
        let n = unsafe { libc::epoll_wait(self.epoll.as_raw_fd(), self.events.as_mut_ptr(), EVENTS as i32, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(0) } else { Err(e) };
        }
        // SAFETY: the kernel initialised the first `n` (<= EVENTS) events.
        unsafe { self.events.set_len(n as usize) };
        for i in 0..self.events.len() {
            let key = self.events[i].u64 as usize;
            self.queue(key);
        }
        Ok(n as usize)
    }
}
