//! The send path of [`TcpDriver`]: frames written in place, coalesced, sent
//! one write at a time per connection so short sends finish in order.
//!
//! Two kinds of driver memory hold what waits to be sent:
//! - a connection's heap queue (`out`, swapped into `inflight` for the
//!   send): always there, grows to the largest backlog and keeps its
//!   capacity, so steady state allocates nothing. Sent with SEND_ZC at or
//!   above the threshold, when the next send must wait for the kernel's
//!   notification before `inflight` is reused.
//! - registered buffers (only with SEND_ZC, see `TcpDriver::new`): frames are
//!   written straight into one, and the buffers queued when a send starts
//!   leave together as one linked chain of sends (SEND_ZC from registered
//!   memory, or a plain send below the threshold), each with MSG_WAITALL so
//!   the kernel finishes a short send itself and the link keeps them in
//!   order. A buffer is free again once its send completed and its
//!   notification arrived; the next chain does not wait for notifications.
//!
//! Order on the wire is the order of appends: a frame goes to a registered
//! buffer only while the heap queue is empty, and registered buffers are
//! sent before the heap queue (they were all filled before it got bytes).

use std::os::fd::AsRawFd;

use io_uring::{cqueue, opcode, squeue, types};

use super::{user_data, TcpDriver, KIND_FIXED, KIND_SEND};
use crate::uring::events::{copy_of, CloseReason, ConnId, TcpError, TcpEvent};

/// The largest queue a direct `send(2)` writes (see `TcpDriver::flush`):
/// larger ones, which a socket often takes only in part (a large message's
/// stream), go as SENDs, which wait for room in the kernel rather than
/// costing a second call.
pub(super) const DIRECT_MAX: usize = 16 << 10;

/// The most registered buffers one chain of sends carries.
pub(super) const MAX_CHAIN: usize = 16;

/// A registered buffer holding `len` bytes of frames.
#[derive(Clone, Copy, Debug)]
pub(super) struct Seg {
    pub(super) idx: u16,
    pub(super) len: u32,
}

impl TcpDriver {
    /// Queues a copy of `data` and sends it before the next kernel entry
    /// (see [`flush`](Self::flush)).
    pub fn send(&mut self, id: ConnId, data: &[u8]) -> Result<(), TcpError> {
        let Ok(()) = self.append_with(id, data.len(), copy_of(data))?;
        self.flush(id);
        Ok(())
    }

    /// Appends a frame of `len` bytes to what `id` has queued, without
    /// starting a send: `fill` writes it in place (it gets exactly `len`
    /// bytes and must write every one of them: they hold an earlier
    /// frame's bytes, or a registered buffer's). If `fill` fails, nothing
    /// is queued and its error comes back. The next
    /// [`flush`](Self::flush) (or `send`) sends what was appended.
    pub fn append_with<R, E>(
        &mut self,
        id: ConnId,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<R, E>,
    ) -> Result<Result<R, E>, TcpError> {
        let index = self.conns.lookup(id)?;
        let conn = &mut self.conns[index as usize];
        if !conn.open || conn.datagram {
            return Err(TcpError::Closed);
        }
        if let Some(fixed) = self.fixed.as_mut().filter(|_| conn.io.out.is_empty()) {
            if len > fixed.size() {
                self.stats.fixed_too_large += 1;
            } else {
                let fits = conn.io.fixed_open
                    && conn.io.fixed_queue.back().is_some_and(|seg| seg.len as usize + len <= fixed.size());
                if !fits {
                    conn.io.fixed_open = false;
                    match fixed.take() {
                        Some(idx) => {
                            conn.io.fixed_queue.push_back(Seg { idx, len: 0 });
                            conn.io.fixed_open = true;
                        }
                        None => self.stats.fixed_busy += 1,
                    }
                }
                if let Some(seg) = conn.io.fixed_queue.back_mut().filter(|_| conn.io.fixed_open) {
                    // SAFETY: this connection holds `seg.idx`, and the buffer
                    // is handed to the kernel only once it left the queue, so
                    // nothing reads bytes `seg.len..` now.
                    let window = unsafe { fixed.window(seg.idx, seg.len as usize, len) };
                    let written = fill(window);
                    if written.is_ok() {
                        seg.len += len as u32;
                        conn.io.fixed_unsent += len;
                    }
                    return Ok(written);
                }
            }
        }
        Ok(conn.io.out.append_in_place(len, fill))
    }

    /// Sends what [`append_with`](Self::append_with) queued on `id` before
    /// the next kernel entry (`poll`, `wait`, `park` or `submit`), unless a
    /// send is already in flight (its completion sends the rest). Frames
    /// flushed in between leave together.
    ///
    /// When that entry finds a single connection flushed, nothing of it in
    /// flight and a heap queue of at most 16 KiB (below the SEND_ZC
    /// threshold), it writes the
    /// queue with a nonblocking `send(2)` instead of a submission: a
    /// request/reply's answer then costs one system call where a SEND
    /// cost an entry, a completion and its reaping (tuning.md, "Direct
    /// sends"). What the socket does not take at once goes as a SEND.
    pub fn flush(&mut self, id: ConnId) {
        if let Ok(index) = self.conns.lookup(id) {
            let conn = &mut self.conns[index as usize];
            if !conn.io.flushed && !conn.io.send_armed {
                conn.io.flushed = true;
                self.flushed.push(index);
            }
        }
    }

    /// Starts the sends of the connections flushed since the last entry.
    pub(super) fn start_flushed(&mut self) {
        let direct = self.flushed.len() == 1;
        while let Some(index) = self.flushed.pop() {
            self.conns[index as usize].io.flushed = false;
            if direct {
                self.send_direct(index);
            }
            self.start_send(index);
        }
    }

    /// Writes connection `index`'s heap queue with `send(2)` if nothing of
    /// it is in flight or waits in registered buffers (order on the wire),
    /// it is below the SEND_ZC threshold, and the socket takes any of it
    /// now; `start_send` then sends the rest, if any.
    fn send_direct(&mut self, index: u32) {
        let conn = &mut self.conns[index as usize];
        let io = &mut conn.io;
        let idle = !io.send_armed && io.zc_notifs == 0 && io.inflight_done == io.inflight.len();
        let zc = self.zc_threshold > 0 && io.out.len() >= self.zc_threshold;
        let (Some(fd), true) = (&conn.fd, conn.open && !conn.datagram && !self.shutting_down) else { return };
        let size = io.out.len();
        if !idle || zc || size == 0 || size > DIRECT_MAX || !io.fixed_queue.is_empty() || !io.fixed_chain.is_empty() {
            return;
        }
        // SAFETY: a nonblocking send from a live buffer of `out.len()`
        // bytes on a socket this driver owns; the kernel keeps no reference.
        let n = unsafe {
            libc::send(fd.as_raw_fd(), io.out.as_ptr().cast(), io.out.len(), libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL)
        };
        // Nothing taken (EAGAIN, or an error a SEND will meet and report
        // as the connection's end): the SEND takes over.
        let Ok(n @ 1..) = usize::try_from(n) else { return };
        self.stats.plain_sends += 1;
        self.stats.direct_sends += 1;
        io.handed += n as u64;
        self.sent_direct.push((ConnId { index, generation: conn.generation }, n));
        if n == io.out.len() {
            io.out.clear();
        } else {
            // The rest leaves from `inflight` as a short send's would.
            self.stats.short_sends += 1;
            std::mem::swap(&mut io.out, &mut io.inflight);
            io.out.clear();
            io.inflight_done = n;
        }
    }

    /// Bytes queued or in flight on `id`, not yet taken by the kernel.
    pub fn unsent(&self, id: ConnId) -> Result<usize, TcpError> {
        let conn = &self.conns[self.conns.lookup(id)? as usize];
        Ok(conn.io.out.len() + conn.io.inflight.len() - conn.io.inflight_done + conn.io.fixed_unsent)
    }

    /// Bytes of `id`'s stream the kernel has taken so far (counted from an
    /// origin of the driver's choosing). A byte appended when
    /// [`appended`](Self::appended) said `n` has been handed to the kernel
    /// once this reaches `n`.
    pub fn handed(&self, id: ConnId) -> Result<u64, TcpError> {
        Ok(self.conns[self.conns.lookup(id)? as usize].io.handed)
    }

    /// Where the end of what `id` has queued stands in its stream, in
    /// [`handed`](Self::handed)'s count.
    pub fn appended(&self, id: ConnId) -> Result<u64, TcpError> {
        Ok(self.handed(id)? + self.unsent(id)? as u64)
    }

    /// Starts the next send on `index` if none is in flight: the rest of a
    /// short one first, then registered buffers, then the heap queue.
    pub(super) fn start_send(&mut self, index: u32) {
        let conn = &mut self.conns[index as usize];
        let Some(fd) = &conn.fd else { return };
        if conn.io.send_armed || !conn.open || self.shutting_down {
            return;
        }
        let fd = types::Fd(fd.as_raw_fd());
        if conn.io.inflight_done == conn.io.inflight.len() {
            if let Some(fixed) = self.fixed.as_mut() {
                while conn.io.fixed_chain.len() < MAX_CHAIN {
                    let Some(seg) = conn.io.fixed_queue.pop_front() else { break };
                    if conn.io.fixed_queue.is_empty() {
                        conn.io.fixed_open = false;
                    }
                    if seg.len == 0 {
                        fixed.release(seg.idx);
                    } else {
                        conn.io.fixed_chain.push_back((seg, 0));
                    }
                }
                if !conn.io.fixed_chain.is_empty() {
                    let mut sqes = std::mem::take(&mut self.chain_sqes);
                    sqes.clear();
                    for &(seg, done) in conn.io.fixed_chain.iter().filter(|(seg, done)| *done < seg.len) {
                        let rest = seg.len - done;
                        let ptr = fixed.ptr(seg.idx, done as usize);
                        let flags = libc::MSG_NOSIGNAL | libc::MSG_WAITALL;
                        let sqe = if rest as usize >= self.zc_threshold {
                            opcode::SendZc::new(fd, ptr, rest).buf_index(Some(seg.idx)).flags(flags).build()
                        } else {
                            opcode::Send::new(fd, ptr, rest).flags(flags).build()
                        };
                        sqes.push(sqe.user_data(user_data(KIND_FIXED, index) | u64::from(seg.idx) << 32));
                    }
                    // Each links to the next; the last links to nothing.
                    let linked = sqes.len().saturating_sub(1);
                    for sqe in &mut sqes[..linked] {
                        *sqe = sqe.clone().flags(squeue::Flags::IO_LINK);
                    }
                    // The connection holds each buffer until its send has
                    // taken all of it, and each SEND_ZC notification holds it
                    // until it arrives; bytes `..seg.len` are not written
                    // again before both (see `append_with`).
                    // SAFETY: so the memory outlives the sends and their notifications.
                    if unsafe { self.uring.push_all(&sqes) }.is_ok() {
                        conn.io.send_armed = true;
                        conn.io.fixed_outstanding = sqes.len() as u32;
                        for sqe in &sqes {
                            if sqe.get_opcode() == u32::from(opcode::SendZc::CODE) {
                                self.stats.fixed_sends += 1;
                            } else {
                                self.stats.plain_sends += 1;
                            }
                        }
                    } else {
                        self.stalled.push(index);
                    }
                    self.chain_sqes = sqes;
                    return;
                }
            }
            if conn.io.zc_notifs > 0 || conn.io.out.is_empty() {
                return; // SEND_ZC may still read `inflight`; or nothing to send.
            }
            std::mem::swap(&mut conn.io.out, &mut conn.io.inflight);
            conn.io.out.clear();
            conn.io.inflight_done = 0;
        }
        let rest = &conn.io.inflight[conn.io.inflight_done..];
        let len = u32::try_from(rest.len()).unwrap_or(u32::MAX);
        let zc = self.zc_threshold > 0 && rest.len() >= self.zc_threshold;
        let sqe = if zc {
            opcode::SendZc::new(fd, rest.as_ptr(), len).flags(libc::MSG_NOSIGNAL).build()
        } else {
            opcode::Send::new(fd, rest.as_ptr(), len).flags(libc::MSG_NOSIGNAL).build()
        };
        let sqe = sqe.user_data(user_data(KIND_SEND, index));
        // `inflight` is neither written nor reallocated while `send_armed` or
        // `zc_notifs > 0` (only `out` grows), and the slot is not freed first.
        // SAFETY: so the bytes outlive the send and its zero-copy notification.
        if unsafe { self.uring.push(&sqe) }.is_ok() {
            conn.io.send_armed = true;
            if zc {
                self.stats.zc_sends += 1;
            } else {
                self.stats.plain_sends += 1;
            }
        } else {
            self.stalled.push(index);
        }
    }

    /// A completion (or SEND_ZC notification) of a send from the heap queue.
    pub(super) fn on_send(&mut self, index: u32, cqe: &cqueue::Entry, events: &mut Vec<TcpEvent>) {
        let conn = &mut self.conns[index as usize];
        if cqueue::notif(cqe.flags()) {
            conn.io.zc_notifs -= 1;
        } else {
            conn.io.send_armed = false;
            if cqueue::more(cqe.flags()) {
                conn.io.zc_notifs += 1;
            }
            if let Some(n) = self.sent(index, cqe.result(), events) {
                let conn = &mut self.conns[index as usize];
                conn.io.inflight_done += n;
                if conn.io.inflight_done < conn.io.inflight.len() {
                    self.stats.short_sends += 1;
                }
            }
        }
        self.start_send(index);
        self.maybe_free(index);
    }

    /// A completion (or SEND_ZC notification) of a send from registered
    /// buffer `idx`. A chain's completions arrive in order; once all are in,
    /// what they sent is released and what they did not (a short send, the
    /// sends its broken link cancelled) goes again in the next chain.
    pub(super) fn on_fixed_send(&mut self, index: u32, idx: u16, cqe: &cqueue::Entry, events: &mut Vec<TcpEvent>) {
        let Some(fixed) = self.fixed.as_mut() else { return };
        let conn = &mut self.conns[index as usize];
        if cqueue::notif(cqe.flags()) {
            conn.io.fixed_notifs -= 1;
            fixed.release(idx);
        } else {
            conn.io.fixed_outstanding = conn.io.fixed_outstanding.saturating_sub(1);
            if cqueue::more(cqe.flags()) {
                conn.io.fixed_notifs += 1;
                fixed.hold(idx);
            }
            let res = cqe.result();
            if res == -libc::ECANCELED {
                // Cancelled by an earlier link's short send: sent again below.
            } else if let Some(n) = self.sent(index, res, events) {
                let conn = &mut self.conns[index as usize];
                if let Some((seg, done)) = conn.io.fixed_chain.iter_mut().find(|(seg, _)| seg.idx == idx) {
                    *done += n as u32;
                    conn.io.fixed_unsent = conn.io.fixed_unsent.saturating_sub(n);
                    if *done < seg.len {
                        self.stats.short_sends += 1;
                    }
                }
            }
            let conn = &mut self.conns[index as usize];
            if conn.io.fixed_outstanding == 0 {
                conn.io.send_armed = false;
                while conn.io.fixed_chain.front().is_some_and(|(seg, done)| *done >= seg.len) {
                    if let (Some((seg, _)), Some(fixed)) = (conn.io.fixed_chain.pop_front(), self.fixed.as_mut()) {
                        fixed.release(seg.idx);
                    }
                }
            }
        }
        self.start_send(index);
        self.maybe_free(index);
    }

    /// The outcome of a send's completion: bytes taken (and a `Sent` event),
    /// or the connection closed on an error.
    fn sent(&mut self, index: u32, res: i32, events: &mut Vec<TcpEvent>) -> Option<usize> {
        let conn = &self.conns[index as usize];
        let id = ConnId { index, generation: conn.generation };
        if res < 0 {
            let reason = if conn.closed_locally { CloseReason::Local } else { CloseReason::Error(-res) };
            self.mark_closed(index, reason, events);
            None
        } else if res > 0 {
            self.conns[index as usize].io.handed += res as u64;
            events.push(TcpEvent::Sent(id, res as usize));
            Some(res as usize)
        } else {
            None
        }
    }
}
