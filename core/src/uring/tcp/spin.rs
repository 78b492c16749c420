//! Spin reads: on a ring without DEFER_TASKRUN (invoker mode's default:
//! any thread may drive it), a thread that drives the ring for a while
//! reads the stream connections with `recv(2)` in each poll, with no recv
//! armed in the ring.
//!
//! Such a ring runs a multishot recv's task work at the next return to
//! user space of the thread that armed it, or at its next entry if the
//! taskrun flag brings it there. A segment then reaches the driver through
//! an io_uring entry that runs the task work, posts a completion and is
//! reaped: about 3 us from the sender's `send(2)` to the bridge holding
//! the frame, where a `recv(2)` costs well under one (tuning.md, "Groups
//! across hosts"). Direct receives (`direct`) cut that on rings with
//! DEFER_TASKRUN, whose task work runs only inside the driver's own
//! entries; here task work may run at any return to user space, an
//! interrupt's included, so bytes of an armed recv could be posted between
//! a look at the completion queue and a `recv(2)`, and the stream's order
//! would be lost. So a connection is read one way at a time:
//!
//! - after [`MIGRATE_AFTER`](super::MIGRATE_AFTER) polls by one thread
//!   since it last slept in the ring, with at most
//!   [`DIRECT_CONNS`](super::direct::DIRECT_CONNS) stream connections open,
//!   each one's recv is cancelled (`note_driver`);
//! - once the recv's last completion (the cancel's, after every byte it
//!   took was posted in order before it) is reaped, the connection is
//!   *spun*: nothing of the ring reads it (nothing arms its recv), every
//!   poll reads it with `recv(2)` (up to its share of the direct buffers,
//!   the connections taking turns to go first), and a read of 0 or an
//!   error closes it as the recv's completion would;
//! - before the driver sleeps (`wait`, `park`), every spun connection's
//!   recv is armed again, by the sleeping thread, and no `recv(2)` reads it
//!   until the next spell of polls: what arrives while it sleeps wakes it.
//!
//! A spun connection's bytes are never in flight in the kernel on our
//! behalf, so closing and freeing it waits for nothing of the recv.

use std::os::fd::AsRawFd;

use super::direct::DirectRead;
use super::TcpDriver;
use crate::uring::events::{CloseReason, ConnId, TcpEvent};

impl TcpDriver {
    /// Turns spin reads off (on by default on a ring without
    /// DEFER_TASKRUN): a test of the recvs' move to the driving thread.
    #[cfg(test)]
    pub(crate) fn no_spin_reads(&mut self) {
        self.spin_reads = false;
    }

    /// Whether connections' recvs are cancelled to be spun now: a ring
    /// without DEFER_TASKRUN, not shutting down, with few enough stream
    /// connections that a `recv(2)` of each per poll is cheaper than the
    /// entry it saves.
    pub(super) fn spins(&self) -> bool {
        self.spin_reads && !self.shutting_down && self.few_streams()
    }

    /// Reads every spun connection with `recv(2)` into direct buffers,
    /// each up to its share of them (while it gives whole buffers),
    /// starting one connection further each time: a connection that keeps
    /// its socket full never keeps the others unread. Returns the events
    /// appended.
    pub(super) fn read_spun(&mut self, events: &mut Vec<TcpEvent>) -> usize {
        if self.spun == 0 {
            return 0;
        }
        let before = events.len();
        let slots = self.conns.len();
        let share = (usize::from(crate::uring::bufring::DIRECT) / self.spun).max(1);
        let first = self.spin_next % slots.max(1);
        self.spin_next = first + 1;
        for index in (first..slots).chain(0..first) {
            let conn = &self.conns[index];
            if !conn.io.spun {
                continue;
            }
            if !conn.open {
                // Closed another way while a send of it was in flight: that
                // send's completion found the slot busy; free it now.
                self.maybe_free(index as u32);
                continue;
            }
            let Some(fd) = conn.fd.as_ref() else { continue };
            let (fd, id, local) =
                (fd.as_raw_fd(), ConnId { index: index as u32, generation: conn.generation }, conn.closed_locally);
            // Bounded: the rest waits for the next poll (nothing else
            // reads the connection meanwhile).
            for _ in 0..share {
                match self.recv_direct(fd, id, events) {
                    DirectRead::Got { full: true } => {}
                    DirectRead::Got { full: false } | DirectRead::Nothing => break,
                    DirectRead::End => {
                        let reason = if local { CloseReason::Local } else { CloseReason::Eof };
                        self.close_spun(index as u32, reason, events);
                        break;
                    }
                    DirectRead::Failed(errno) => {
                        self.close_spun(index as u32, CloseReason::Error(errno), events);
                        break;
                    }
                    DirectRead::NoBuffer => return events.len() - before,
                }
            }
        }
        events.len() - before
    }

    /// A spun connection ended (the peer's end of stream, an error, or
    /// our own shutdown read back): closed as its recv's completion would
    /// have closed it.
    fn close_spun(&mut self, index: u32, reason: CloseReason, events: &mut Vec<TcpEvent>) {
        self.mark_closed(index, reason, events);
        self.maybe_free(index);
    }

    /// The cancel of connection `index`'s recv, asked to spin it, ended the
    /// recv: the connection is spun from now on, unless the ring sleeps or
    /// shuts down first.
    pub(super) fn start_spin(&mut self, index: u32) {
        self.conns[index as usize].io.spun = true;
        self.spun += 1;
        self.stats.spin_moves += 1;
    }

    /// Before a sleep: every spun connection's recv armed again (by this
    /// thread, whose sleep its completions then end), and the spell of
    /// polls that spins them starts again.
    pub(super) fn unspin(&mut self) {
        self.spin_polls = 0;
        if self.spun == 0 {
            return;
        }
        for index in 0..self.conns.len() as u32 {
            if std::mem::take(&mut self.conns[index as usize].io.spun) {
                self.spun -= 1;
                self.arm_recv(index);
            }
        }
    }
}
