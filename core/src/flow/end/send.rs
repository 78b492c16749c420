//! Sending: copy, gather and zero-copy (loan) forms, with file descriptors
//! optionally attached. One internal path per shape, taking a deadline.
//!
//! A message up to the flow's inline size is one frame of the inline ring.
//! A larger one is written in place into the bulk ring and announced by an
//! empty descriptor frame in the inline ring; both are claimed before either
//! is committed, so a timeout never leaves half a message behind.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::control::{SendError as CtlSendError, SCM_MAX_FD};
use crate::flow::handshake::{Kind, Packet};
use crate::flow::{readiness, DESCRIPTOR_LEN, FLAG_BULK, FLAG_FDS, FLAG_PART, FLAG_TURN};
use crate::stats::{FlowCounter, Slot};
use crate::{membarrier_if_needed, wait_until_with, Deadline, WaitOutcome};
use ringflow_ring::spsc::Claim;
use ringflow_ring::{ClaimError, Notify, RawRegion};

use super::buf::{commit_bulk, Loan, SendBuf};
use super::shared::LIVE;
use super::{FlowEnd, Wakers};
use crate::flow::error::{Corruption, SendError};

/// Bits of a frame's metadata word that carry the descriptor count.
pub(crate) const FDS_SHIFT: u32 = 56;

impl FlowEnd {
    /// Sends `msg`, waiting for room (reliable QoS) — copy form.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.send_one(msg, Deadline::Never)
    }

    /// Sends `msg` if there is room now (`WouldBlock` otherwise).
    /// Inlinable into other crates (the API's `Flow` and its callers): the
    /// ping-pong's send, without a call's prologue and epilogue.
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.send_one(msg, Deadline::Now)
    }

    /// Sends `msg`, waiting for room until `deadline`.
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<(), SendError> {
        self.send_one(msg, deadline)
    }

    /// Sends `msg`, waiting for room at most `timeout`.
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.send_one(msg, Deadline::after(timeout))
    }

    /// Gather form: sends the concatenation of `parts` as one message,
    /// waiting for room.
    pub fn send_vectored(&mut self, parts: &[&[u8]]) -> Result<(), SendError> {
        self.send_parts(parts, &[], Deadline::Never)
    }

    /// [`send_vectored`](Self::send_vectored) if there is room now.
    pub fn try_send_vectored(&mut self, parts: &[&[u8]]) -> Result<(), SendError> {
        self.send_parts(parts, &[], Deadline::Now)
    }

    /// [`send_vectored`](Self::send_vectored), waiting until `deadline`.
    pub fn send_vectored_deadline(&mut self, parts: &[&[u8]], deadline: Deadline) -> Result<(), SendError> {
        self.send_parts(parts, &[], deadline)
    }

    /// [`send_vectored`](Self::send_vectored), waiting at most `timeout`.
    pub fn send_vectored_timeout(&mut self, parts: &[&[u8]], timeout: Duration) -> Result<(), SendError> {
        self.send_parts(parts, &[], Deadline::after(timeout))
    }

    /// Sends `msg` with file descriptors attached (libdill `ipc_sendfd`),
    /// waiting for room; the receiver takes them with `recv_fds`. The
    /// descriptors are duplicated into the peer; ours stay open.
    pub fn send_fds(&mut self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), SendError> {
        self.send_parts(&[msg], fds, Deadline::Never)
    }

    /// [`send_fds`](Self::send_fds) if there is room now.
    pub fn try_send_fds(&mut self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), SendError> {
        self.send_parts(&[msg], fds, Deadline::Now)
    }

    /// [`send_fds`](Self::send_fds), waiting until `deadline`.
    pub fn send_fds_deadline(
        &mut self,
        msg: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Deadline,
    ) -> Result<(), SendError> {
        self.send_parts(&[msg], fds, deadline)
    }

    /// [`send_fds`](Self::send_fds), waiting at most `timeout`.
    pub fn send_fds_timeout(&mut self, msg: &[u8], fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<(), SendError> {
        self.send_parts(&[msg], fds, Deadline::after(timeout))
    }

    /// Lends `len` bytes of the flow's shared memory to write a message in
    /// place, waiting for room; [`SendBuf::send`] publishes it, dropping the
    /// buffer abandons it.
    pub fn loan(&mut self, len: usize) -> Result<SendBuf<'_>, SendError> {
        self.loan_deadline(len, Deadline::Never)
    }

    /// [`loan`](Self::loan) if there is room now.
    pub fn try_loan(&mut self, len: usize) -> Result<SendBuf<'_>, SendError> {
        self.loan_deadline(len, Deadline::Now)
    }

    /// [`loan`](Self::loan), waiting at most `timeout`.
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<SendBuf<'_>, SendError> {
        self.loan_deadline(len, Deadline::after(timeout))
    }

    /// [`loan`](Self::loan), waiting until `deadline`.
    pub fn loan_deadline(&mut self, len: usize, deadline: Deadline) -> Result<SendBuf<'_>, SendError> {
        self.loan_with(len, deadline, false)
    }

    /// The one loan path: `turn` makes the loan the last frame of a call's
    /// message, whose `send` hands the turn over (`crate::flow::call`).
    #[inline]
    pub(crate) fn loan_with(&mut self, len: usize, deadline: Deadline, turn: bool) -> Result<SendBuf<'_>, SendError> {
        let bulk = self.admit(len)?;
        self.wait_room(len, bulk, deadline)?;
        let wakers = self.wakers;
        let latency = self.latency;
        let FlowEnd { sides, slot, shared, conn, invoker, turn: state, .. } = self;
        let s = sides.get();
        let flag = if turn { FLAG_TURN } else { 0 };
        let loan = if bulk {
            let slot = s.tx_bulk.try_alloc(len).map_err(claim_error)?;
            let mut desc = s.tx.try_claim(DESCRIPTOR_LEN).map_err(claim_error)?;
            desc.set_flags(FLAG_BULK | flag);
            Loan::Bulk { slot, desc }
        } else {
            let mut c = s.tx.try_claim(len).map_err(claim_error)?;
            c.set_flags(flag);
            Loan::Inline(c)
        };
        Ok(SendBuf {
            loan,
            turn: if turn { Some(state) } else { None },
            invoker: invoker.as_deref(),
            wakers,
            slot,
            latency,
            armed: shared.memory.tx_armed(shared.role),
            peer_event: conn.as_raw_fd(),
        })
    }

    /// Engine side: [`try_send`](Self::try_send) of a message that arrived
    /// from another host with its sender's `stamp` (0: none, stamp it now),
    /// so the receiver's latency runs from the remote send, and its call
    /// flags (`call`: 0, `FLAG_TURN` or `FLAG_PART`, as the remote frame
    /// carried them: the turn travels with the frames).
    pub(crate) fn try_send_stamped(&mut self, msg: &[u8], stamp: u64, call: u8) -> Result<(), SendError> {
        self.send_parts_at(&[msg], &[], Deadline::Now, stamp, call & (FLAG_TURN | FLAG_PART))
    }

    /// One message, no descriptors: straight into the inline ring when it
    /// fits there now (the ping-pong's path: nothing on it but the checks,
    /// the stamp, the copy and the commit), else the one copy path.
    #[inline(always)]
    fn send_one(&mut self, msg: &[u8], deadline: Deadline) -> Result<(), SendError> {
        // Both bounds: a remote flow's QoS can be lowered after its rings
        // were sized (the far listener's grant is written back).
        let len = msg.len();
        if len <= self.geometry.inline_max && len <= self.qos.max_msg && self.shared.state() == LIVE {
            let meta = self.stamp();
            if let Ok(notify) = self.sides.get().tx.try_send_with(msg, meta, 0) {
                self.sent(notify, len);
                return Ok(());
            }
            // Full, or an error the general path reports as it should.
        }
        self.send_parts(&[msg], &[], deadline)
    }

    /// The one copy path behind every send form.
    #[inline]
    fn send_parts(&mut self, parts: &[&[u8]], fds: &[BorrowedFd<'_>], deadline: Deadline) -> Result<(), SendError> {
        self.send_parts_at(parts, fds, deadline, 0, 0)
    }

    /// [`send_parts`](Self::send_parts) with a given stamp (0: now) and
    /// call flags (`turn`: 0, or `FLAG_TURN` / `FLAG_PART` for a call's
    /// message, see `crate::flow::call`) on its frame.
    #[inline]
    pub(crate) fn send_parts_at(
        &mut self,
        parts: &[&[u8]],
        fds: &[BorrowedFd<'_>],
        deadline: Deadline,
        stamp: u64,
        turn: u8,
    ) -> Result<(), SendError> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let max = if self.crosses_hosts { 0 } else { SCM_MAX_FD };
        if fds.len() > max {
            return Err(SendError::TooManyFds { count: fds.len(), max });
        }
        let bulk = self.admit(len)?;
        // A stamp from the network is masked to its bits: it must never
        // reach the descriptor count above them.
        let stamp = if stamp != 0 && self.latency { stamp & crate::clock::TICKS_MASK } else { self.stamp() };
        let meta = (fds.len() as u64) << FDS_SHIFT | stamp;
        let flags = turn | if fds.is_empty() { 0 } else { FLAG_FDS };
        if !bulk {
            // The common case first: room in the inline ring right now.
            match self.sides.get().tx.try_claim(len) {
                Ok(c) => {
                    let notify = fill_and_commit(c, parts, flags, meta, &self.conn, fds, deadline)?;
                    self.sent(notify, len);
                    return Ok(());
                }
                Err(ClaimError::Full) => {}
                Err(e) => return Err(self.claim_failed(e)),
            }
        }
        self.wait_room(len, bulk, deadline)?;
        let s = self.sides.get();
        let notify = if bulk {
            let mut slot = s.tx_bulk.try_alloc(len).map_err(claim_error)?;
            let mut desc = s.tx.try_claim(DESCRIPTOR_LEN).map_err(claim_error)?;
            write_parts(slot.payload_mut(), parts);
            desc.set_flags(FLAG_BULK | flags);
            desc.set_meta(meta);
            if !fds.is_empty() {
                // Before the commit: a failure leaves nothing half sent.
                send_fd_packet(&self.conn, fds, deadline)?;
            }
            commit_bulk(slot, desc)
        } else {
            let c = s.tx.try_claim(len).map_err(claim_error)?;
            fill_and_commit(c, parts, flags, meta, &self.conn, fds, deadline)?
        };
        self.sent(notify, len);
        Ok(())
    }

    /// The send stamp of a message published now (0: not stamped).
    #[inline(always)]
    pub(crate) fn stamp(&self) -> u64 {
        if self.latency {
            crate::clock::now()
        } else {
            0
        }
    }

    /// Counts a published message and wakes or signals the peer.
    #[inline]
    pub(super) fn sent(&mut self, notify: Notify, len: usize) {
        self.sent_n(notify, 1, len as u64);
    }

    /// Counts `n` messages of `bytes` in all, published together, and
    /// wakes or signals the peer.
    #[inline(always)]
    pub(super) fn sent_n(&mut self, notify: Notify, n: u64, bytes: u64) {
        self.slot.add(FlowCounter::Sent as usize, n);
        self.slot.add(FlowCounter::BytesSent as usize, bytes);
        published(notify, &self.wakers, &self.slot, self.wakers.data_armed(), self.wakers.peer_event);
        if let Some(invoker) = &self.invoker {
            invoker.invoke_after_send(bytes);
        }
    }

    /// Checks a message of `len` bytes may be sent; returns whether it goes
    /// to the bulk ring.
    #[inline]
    pub(super) fn admit(&self, len: usize) -> Result<bool, SendError> {
        if len > self.qos.max_msg {
            return Err(SendError::TooLarge { len, max: self.qos.max_msg });
        }
        if self.shared.state() != LIVE {
            return Err(self.gone_error());
        }
        Ok(len > self.geometry.inline_max)
    }

    /// Waits until a message of `len` bytes can be claimed without `Full`:
    /// room in the inline ring (for the message or its descriptor) and, for
    /// a bulk message, in the bulk pool.
    #[inline]
    pub(super) fn wait_room(&mut self, len: usize, bulk: bool, deadline: Deadline) -> Result<(), SendError> {
        loop {
            let s = self.sides.get();
            let inline_need = if bulk { DESCRIPTOR_LEN } else { len };
            let full_pool = if bulk {
                match s.tx_bulk.ready_for(len) {
                    Ok(()) => false,
                    Err(ClaimError::Full) => true,
                    Err(e) => return Err(self.claim_failed(e)),
                }
            } else {
                false
            };
            if !full_pool {
                match s.tx.ready_for(inline_need) {
                    Ok(()) => return Ok(()),
                    Err(ClaimError::Full) => {}
                    Err(e) => return Err(self.claim_failed(e)),
                }
            }
            self.slot.add(FlowCounter::Backpressure as usize, 1);
            if !self.qos.reliable {
                self.slot.add(FlowCounter::Dropped as usize, 1);
                return Err(SendError::Full);
            }
            let shared = &self.shared;
            let (tx, pool) = self.sides.tx();
            if let Some(invoker) = &self.invoker {
                // Invoker mode: room appears only as the engine drains the
                // ring, which is this thread's job while it waits.
                let room = || {
                    let fits = if full_pool { pool.fits(len) } else { tx.fits(inline_need) };
                    fits || pool.is_consumer_closed() || tx.is_consumer_closed() || shared.state() != LIVE
                };
                if !invoker.drive_until(room, self.spin, deadline) {
                    return Err(if deadline == Deadline::Now { SendError::WouldBlock } else { SendError::TimedOut });
                }
                if self.shared.state() != LIVE {
                    return Err(self.gone_error());
                }
                continue;
            }
            let slot = &self.slot;
            let outcome = if full_pool {
                wait_until_with(
                    || {
                        slot.add(FlowCounter::Parked as usize, 1);
                        pool.space_wait()
                    },
                    || pool.fits(len) || pool.is_consumer_closed() || shared.state() != LIVE,
                    self.spin,
                    deadline,
                    Some(shared.alarm()),
                    membarrier_if_needed,
                )
            } else {
                wait_until_with(
                    || {
                        slot.add(FlowCounter::Parked as usize, 1);
                        tx.space_wait()
                    },
                    || tx.fits(inline_need) || tx.is_consumer_closed() || shared.state() != LIVE,
                    self.spin,
                    deadline,
                    Some(shared.alarm()),
                    membarrier_if_needed,
                )
            }
            .map_err(SendError::Wait)?;
            if outcome == WaitOutcome::TimedOut {
                return Err(if deadline == Deadline::Now { SendError::WouldBlock } else { SendError::TimedOut });
            }
            if self.shared.state() != LIVE {
                return Err(self.gone_error());
            }
        }
    }

    #[cold]
    pub(super) fn claim_failed(&self, e: ClaimError) -> SendError {
        match e {
            ClaimError::Closed => self.gone_error(),
            e => claim_error(e),
        }
    }

    /// The error for a peer that left: it closed its receiving side (a
    /// clean close), or its process died (then: how many of our messages it
    /// had read).
    #[cold]
    pub(crate) fn gone_error(&self) -> SendError {
        if !self.sides.tx().0.is_consumer_closed() {
            // SYNC: Acquire; pairs with the Release in `count_consumed`.
            let consumed = self.shared.memory.tx_consumed(self.shared.role).load(Ordering::Acquire);
            SendError::PeerGone { delivered: consumed.min(self.sent_count()).saturating_sub(self.preamble.sent) }
        } else {
            SendError::Closed
        }
    }
}

fn claim_error(e: ClaimError) -> SendError {
    match e {
        ClaimError::Full => SendError::WouldBlock,
        ClaimError::TooLarge { len, max } => SendError::TooLarge { len, max },
        ClaimError::Closed => SendError::Closed,
        ClaimError::Corrupt(c) => SendError::CorruptPeer(Corruption::Memory(c)),
        // No other failure comes from a flow's ring today (the enum is
        // non-exhaustive): whatever it is, the ring cannot be written.
        other => SendError::CorruptPeer(Corruption::Frame(format!("unwritable ring: {other}"))),
    }
}

/// Writes `parts` into a claimed frame, sends its descriptors (if any) and
/// commits it.
#[inline(always)]
fn fill_and_commit(
    mut c: Claim<'_, RawRegion>,
    parts: &[&[u8]],
    flags: u8,
    meta: u64,
    conn: &crate::control::ControlConn,
    fds: &[BorrowedFd<'_>],
    deadline: Deadline,
) -> Result<Notify, SendError> {
    write_parts(c.payload_mut(), parts);
    c.set_flags(flags);
    c.set_meta(meta);
    if !fds.is_empty() {
        send_fd_packet(conn, fds, deadline)?;
    }
    Ok(c.commit())
}

#[inline(always)]
fn write_parts(dst: &mut [u8], parts: &[&[u8]]) {
    let mut at = 0;
    for p in parts {
        dst[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
}

/// Sends the descriptors of the message about to be committed. They are in
/// the peer's socket queue before the frame is visible, so a receiver that
/// sees `FLAG_FDS` finds them there.
fn send_fd_packet(
    conn: &crate::control::ControlConn,
    fds: &[BorrowedFd<'_>],
    deadline: Deadline,
) -> Result<(), SendError> {
    let packet = Packet::new(Kind::Fds, fds.len() as u32).encode();
    conn.send_deadline(&packet, fds, deadline).map_err(|e| match e {
        CtlSendError::PeerGone => SendError::Closed,
        CtlSendError::WouldBlock => SendError::WouldBlock,
        CtlSendError::TimedOut => SendError::TimedOut,
        CtlSendError::TooManyFds { count, max } => SendError::TooManyFds { count, max },
        CtlSendError::Io { source } => SendError::Io(source),
        // The kernel's EMSGSIZE (a packet of fixed size, far below any
        // socket buffer, never meets it); `Empty` cannot happen (the
        // packet has a fixed, non-zero size).
        CtlSendError::TooLarge { .. } | CtlSendError::Empty => {
            SendError::Io(std::io::Error::from_raw_os_error(libc::EMSGSIZE))
        }
    })
}

/// After a publish: wake a sleeping peer, and signal its readiness fd if it
/// armed it (the arm handshake, `ringflow_ring::arm`). The commit's notify
/// ordered the arm-word load below after the commit store: a SeqCst fence
/// in fenced mode; in membarrier mode only a compiler fence, and the
/// reader's membarrier between its arm and its re-check (`Flow::arm`) does
/// the rest.
#[inline(always)]
pub(crate) fn published(
    notify: Notify,
    wakers: &Wakers,
    slot: &Slot,
    armed: &std::sync::atomic::AtomicU64,
    peer_event: i32,
) {
    if notify.is_wake() {
        slot.add(FlowCounter::Wakeups as usize, 1);
        Wakers::wake(wakers.peer_data);
    }
    if ringflow_ring::arm::take_arm(armed) {
        readiness::signal(peer_event);
    }
}

/// Counts one message of `len` bytes sent.
#[inline(always)]
pub(crate) fn count_sent(slot: &Slot, len: usize) {
    slot.add(FlowCounter::Sent as usize, 1);
    slot.add(FlowCounter::BytesSent as usize, len as u64);
}
