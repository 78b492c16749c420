//! Direct receives: on a ring with DEFER_TASKRUN, a spinning driver reads
//! a connection that just became readable with its own `recv(2)`, and runs
//! the ring's task work later, once the bytes are on their way.
//!
//! A segment arriving on a connection wakes its multishot recv's poll,
//! which queues task work and sets the ring's taskrun flag; the bytes reach
//! a completion only when the driver enters the kernel with GETEVENTS and
//! the task work runs the recv. That entry (the kernel's io_uring entry,
//! task work, the recv, a completion) cost 1.5 us on this host where a
//! plain `recv(2)` of the same bytes costs well under half of it
//! (tuning.md, "Direct receives"). So when the flag comes up, the driver
//! first reaps what is already complete, then reads each connection with
//! `recv(2)` into a buffer of its own (`BufRing::take_direct`), and hands
//! the bytes on as the recv's would be. The entry it owes (the flag stays
//! up until task work runs) is made at the end of the *next* duty cycle
//! ([`Owed`]), after that cycle's sends: an answer to what was read leaves
//! before it, not after.
//!
//! Order on the wire holds because, with DEFER_TASKRUN, the ring's task
//! work runs only inside this driver's own entries with GETEVENTS: every
//! completion that carries earlier bytes is in the completion queue before
//! a direct read starts (it is checked empty right before each read), and
//! the recv's task work, run later, reads only bytes after the direct
//! read's. A ring without DEFER_TASKRUN (COOP_TASKRUN: task work runs on
//! any return to user space, an interrupt's included) could post earlier
//! bytes between that check and the read; there this is never done.

use std::os::fd::{AsRawFd, RawFd};

use super::TcpDriver;
use crate::uring::events::{CloseReason, ConnId, RecvBuf, TcpEvent};

/// The most connections a direct read looks at. The flag says only that
/// some task work waits, not whose: each connection read costs a system
/// call, wasted on the ones with nothing. With more connections, the
/// ring's own entry (which runs exactly the work there is) is cheaper.
pub(super) const DIRECT_CONNS: usize = 4;

/// Where the entry a direct read put off stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Owed {
    /// No entry owed.
    #[default]
    None,
    /// A direct read in this duty cycle: its end (`submit`) only submits.
    ThisCycle,
    /// Owed by the end of the duty cycle now starting: its `poll` reads
    /// nothing directly and does not enter, its `submit` enters.
    Next,
    /// A `poll` passed while `Next` without a `submit` after it: the next
    /// `poll` enters.
    Late,
}

impl TcpDriver {
    /// The receiving half of `poll` when direct reads are on: `None` if
    /// the usual path (enter if the ring asks, then reap) is the one to
    /// take, else the events appended.
    pub(super) fn poll_direct(&mut self, events: &mut Vec<TcpEvent>) -> Option<usize> {
        let state = self.uring.state();
        if !state.taskrun || state.overflow {
            // No task work waits (nothing is owed), or the kernel holds
            // completions back: the usual path.
            self.owed = Owed::None;
            return None;
        }
        match self.owed {
            Owed::None => {}
            Owed::ThisCycle | Owed::Next => {
                // The entry waits for this cycle's end (see the module doc).
                self.owed = Owed::Late;
                self.uring.submit_only();
                return Some(self.handle(events));
            }
            Owed::Late => {
                self.owed = Owed::None;
                return None;
            }
        }
        // Earlier bytes first: submit (no task work runs) and reap.
        self.uring.submit_only();
        let reaped = self.handle(events);
        let read = self.read_direct(events);
        if read == 0 {
            // Nothing to read directly: the task work is something else's.
            return Some(reaped + self.enter_and_handle(events));
        }
        self.owed = Owed::ThisCycle;
        Some(reaped + read)
    }

    fn enter_and_handle(&mut self, events: &mut Vec<TcpEvent>) -> usize {
        self.owed = Owed::None;
        self.uring.poll();
        self.handle(events)
    }

    /// Reads every open stream connection with `recv(2)` into direct
    /// buffers while it gives whole buffers, unless there are more than
    /// [`DIRECT_CONNS`]; returns the `Received` events appended.
    fn read_direct(&mut self, events: &mut Vec<TcpEvent>) -> usize {
        let before = events.len();
        if self.shutting_down || !self.few_streams() {
            // Too many to read blindly (none is left unread for the ring's
            // entry to find while others are read: all go that way).
            return 0;
        }
        for index in 0..self.conns.len() {
            let conn = &self.conns[index];
            let Some(fd) = conn.fd.as_ref().filter(|_| is_stream(conn)) else { continue };
            let (fd, id) = (fd.as_raw_fd(), ConnId { index: index as u32, generation: conn.generation });
            // Bounded: a connection flooding faster than we read gets the
            // rest through the ring's recv.
            for _ in 0..super::super::bufring::DIRECT {
                // Order (module doc): nothing complete may wait unreaped.
                if !self.uring.cq_empty() {
                    return events.len() - before;
                }
                match self.recv_direct(fd, id, events) {
                    DirectRead::Got { full: true } => {}
                    // The end of the stream: the ring's recv meets it too
                    // (a read of 0 consumes nothing) and reports it.
                    DirectRead::Got { full: false } | DirectRead::End | DirectRead::Nothing => break,
                    DirectRead::Failed(errno) => {
                        // Reading the error consumed it: the ring's recv
                        // would find only the end. Report it here.
                        self.mark_closed(index as u32, CloseReason::Error(errno), events);
                        break;
                    }
                    DirectRead::NoBuffer => return events.len() - before,
                }
            }
        }
        events.len() - before
    }

    /// Whether at most [`DIRECT_CONNS`] stream connections are open: few
    /// enough that a `recv(2)` of each (direct receives, spin reads) costs
    /// less than the ring's entry it saves.
    pub(super) fn few_streams(&self) -> bool {
        self.conns.iter().filter(|c| is_stream(c)).count() <= DIRECT_CONNS
    }

    /// One `recv(2)` of a connection (`fd`, `id`) into a free direct
    /// buffer, its bytes handed out as a `Received` event. For direct
    /// receives and spin reads (`spin`), whose callers pass the socket of
    /// the connection's slot.
    pub(super) fn recv_direct(&mut self, fd: RawFd, id: ConnId, events: &mut Vec<TcpEvent>) -> DirectRead {
        let Some((bid, at, size)) = self.bufs.take_direct() else { return DirectRead::NoBuffer };
        // SAFETY: `at` is a free direct buffer of `size` bytes, outside the
        // kernel's provided ring, that this driver holds until it lends it
        // on (the event) or gives it back (`recycle`); no `data()` borrow of
        // it is alive (that needs `&self` across this `&mut self` call).
        // The kernel writes at most `size` bytes there whatever `fd` is: a
        // descriptor that is not the connection's socket gives an error or
        // wrong bytes, never a write elsewhere.
        let n = unsafe { libc::recv(fd, at.cast(), size, libc::MSG_DONTWAIT) };
        match usize::try_from(n) {
            Ok(len @ 1..) => {
                self.stats.direct_recvs += 1;
                events.push(TcpEvent::Received(id, RecvBuf { bid, len: len as u32 }));
                DirectRead::Got { full: len == size }
            }
            Ok(0) => {
                self.bufs.recycle(bid);
                DirectRead::End
            }
            Err(_) => {
                let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
                self.bufs.recycle(bid);
                if [libc::EAGAIN, libc::EWOULDBLOCK, libc::EINTR].contains(&errno) {
                    DirectRead::Nothing
                } else {
                    DirectRead::Failed(errno)
                }
            }
        }
    }
}

/// Whether `c` is an open stream connection: what direct receives and
/// spin reads read.
pub(super) fn is_stream(c: &crate::uring::conns::Conn<super::Io>) -> bool {
    c.open && !c.datagram && c.fd.is_some()
}

/// What one [`TcpDriver::recv_direct`] found.
pub(super) enum DirectRead {
    /// Bytes, handed out; whether they filled the buffer (more may wait).
    Got { full: bool },
    /// The end of the stream (a read of 0; the buffer given back).
    End,
    /// Nothing there now (EAGAIN, EINTR).
    Nothing,
    /// An error, which this read consumed (the errno).
    Failed(i32),
    /// No direct buffer free: nothing was read.
    NoBuffer,
}
