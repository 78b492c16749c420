//! Request/reply on a flow end (Fluke's reliable IPC, see
//! `crate::flow::call`): a call sends its request with the turn flag on the
//! request's own frame and receives the answer; a server replies the same
//! way and receives the next request. Each operation here takes a
//! [`Deadline`] that covers all its phases; the public `Flow` adds the
//! blocking, `try_` and `_timeout` forms.
//!
//! The sending half lives here, the receiving half in `turn.rs`. Neither
//! adds a system call, a frame or a shared word to what a send and a
//! receive cost.

use std::os::fd::{BorrowedFd, OwnedFd};

use crate::flow::call::{CallError, Phase, FLAG_PART, FLAG_TURN};
use crate::flow::error::SendError;
use crate::Deadline;

use super::buf::{RecvBuf, SendBuf};
use super::shared::LIVE;
use super::FlowEnd;

impl FlowEnd {
    /// Sends `request` and hands the turn over in one step, then waits for
    /// the reply into `reply`; returns its length.
    #[inline]
    pub fn call_deadline(&mut self, request: &[u8], reply: &mut [u8], deadline: Deadline) -> Result<usize, CallError> {
        self.send_turn_one(request, deadline)?;
        self.receive_turn_one(reply, deadline)
    }

    /// [`call_deadline`](Self::call_deadline) with descriptors sent with the
    /// request and received with the reply into `slots`; returns (bytes,
    /// descriptors).
    pub fn call_fds_deadline(
        &mut self,
        request: &[u8],
        fds: &[BorrowedFd<'_>],
        reply: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        deadline: Deadline,
    ) -> Result<(usize, usize), CallError> {
        self.send_turn(&[request], fds, deadline, FLAG_TURN)?;
        self.receive_turn(reply, slots, deadline)
    }

    /// [`call_deadline`](Self::call_deadline) with the reply read in place.
    #[inline]
    pub fn call_ref_deadline(&mut self, request: &[u8], deadline: Deadline) -> Result<RecvBuf<'_>, CallError> {
        self.send_turn_one(request, deadline)?;
        self.receive_turn_ref(deadline)
    }

    /// Waits for the next request (the turn then is ours) into `buf`.
    #[inline]
    pub fn receive_request_deadline(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize, CallError> {
        self.receive_turn_one(buf, deadline)
    }

    /// [`receive_request_deadline`](Self::receive_request_deadline) with
    /// the request's descriptors into `slots`.
    pub fn receive_request_fds_deadline(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        deadline: Deadline,
    ) -> Result<(usize, usize), CallError> {
        self.receive_turn(buf, slots, deadline)
    }

    /// [`receive_request_deadline`](Self::receive_request_deadline) in place.
    #[inline]
    pub fn receive_request_ref_deadline(&mut self, deadline: Deadline) -> Result<RecvBuf<'_>, CallError> {
        self.receive_turn_ref(deadline)
    }

    /// Replies, hands the turn back and waits for the next request into
    /// `next`.
    #[inline]
    pub fn reply_and_receive_deadline(
        &mut self,
        reply: &[u8],
        next: &mut [u8],
        deadline: Deadline,
    ) -> Result<usize, CallError> {
        // The server's half is the same turn-around as the client's.
        self.call_deadline(reply, next, deadline)
    }

    /// [`reply_and_receive_deadline`](Self::reply_and_receive_deadline)
    /// with descriptors both ways.
    pub fn reply_fds_and_receive_deadline(
        &mut self,
        reply: &[u8],
        fds: &[BorrowedFd<'_>],
        next: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        deadline: Deadline,
    ) -> Result<(usize, usize), CallError> {
        self.call_fds_deadline(reply, fds, next, slots, deadline)
    }

    /// [`reply_and_receive_deadline`](Self::reply_and_receive_deadline)
    /// with the next request read in place.
    #[inline]
    pub fn reply_and_receive_ref_deadline(
        &mut self,
        reply: &[u8],
        deadline: Deadline,
    ) -> Result<RecvBuf<'_>, CallError> {
        self.call_ref_deadline(reply, deadline)
    }

    /// Replies and hands the turn back without waiting for a request.
    #[inline]
    pub fn reply_deadline(&mut self, reply: &[u8], deadline: Deadline) -> Result<(), CallError> {
        self.send_turn_one(reply, deadline)
    }

    /// [`reply_deadline`](Self::reply_deadline) with descriptors.
    pub fn reply_fds_deadline(
        &mut self,
        reply: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Deadline,
    ) -> Result<(), CallError> {
        self.send_turn(&[reply], fds, deadline, FLAG_TURN)
    }

    /// Sends a piece of the request or reply this side is composing,
    /// keeping the turn; the call or reply that follows sends the last
    /// piece and hands the turn over.
    pub fn send_part_deadline(&mut self, part: &[u8], deadline: Deadline) -> Result<(), CallError> {
        self.send_turn(&[part], &[], deadline, FLAG_PART)
    }

    /// [`send_part_deadline`](Self::send_part_deadline) with descriptors.
    pub fn send_part_fds_deadline(
        &mut self,
        part: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Deadline,
    ) -> Result<(), CallError> {
        self.send_turn(&[part], fds, deadline, FLAG_PART)
    }

    /// Lends `len` bytes of the flow's memory for the last frame of a
    /// request or reply, written in place; [`SendBuf::send`] publishes it
    /// and hands the turn over.
    pub fn loan_request_deadline(&mut self, len: usize, deadline: Deadline) -> Result<SendBuf<'_>, CallError> {
        self.ack()?;
        let sent = self.turn.sent;
        self.loan_with(len, deadline, true).map_err(|e| send_phase_error(e, sent))
    }

    /// [`loan_request_deadline`](Self::loan_request_deadline) for a
    /// server's reply: the same loan, whose send hands the turn back.
    #[inline]
    pub fn loan_reply_deadline(&mut self, len: usize, deadline: Deadline) -> Result<SendBuf<'_>, CallError> {
        self.loan_request_deadline(len, deadline)
    }

    /// Goes on receiving the peer's message where an earlier receive
    /// stopped (`RecvMoreData`, `TimedOut`, `WouldBlock`, a loan's send):
    /// into `buf`, returning the bytes written there.
    #[inline]
    pub fn receive_more_deadline(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize, CallError> {
        self.receive_turn_one(buf, deadline)
    }

    /// [`receive_more_deadline`](Self::receive_more_deadline) with
    /// descriptors (after `RecvMoreRefs`).
    pub fn receive_more_fds_deadline(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        deadline: Deadline,
    ) -> Result<(usize, usize), CallError> {
        self.receive_turn(buf, slots, deadline)
    }

    /// [`receive_more_deadline`](Self::receive_more_deadline) in place: the
    /// next frame of the peer's message (from where a copy stopped).
    #[inline]
    pub fn receive_more_ref_deadline(&mut self, deadline: Deadline) -> Result<RecvBuf<'_>, CallError> {
        self.receive_turn_ref(deadline)
    }

    /// Sends the last frame of a call's message, `msg` without descriptors,
    /// handing the turn over: straight into the inline ring when it fits
    /// there now (a flow's `try_send` with the turn flag on the frame: the
    /// same checks, stamp, copy and commit, and the turn handed over), else
    /// [`send_turn`](Self::send_turn), which tells the phase of whatever
    /// stopped it. The Ack phase's checks are the fast path's conditions:
    /// the turn is ours, the flow reliable and live; the ring's claim
    /// refuses a closed receiving side.
    #[inline(always)]
    fn send_turn_one(&mut self, msg: &[u8], deadline: Deadline) -> Result<(), CallError> {
        let len = msg.len();
        if self.holds_turn()
            && self.qos.reliable
            && len <= self.geometry.inline_max
            && len <= self.qos.max_msg
            && self.shared.state() == LIVE
        {
            let meta = self.stamp();
            if let Ok(notify) = self.sides.get().tx.try_send_with(msg, meta, FLAG_TURN) {
                self.sent(notify, len);
                self.turn.handed_over(len);
                return Ok(());
            }
            // Full, closed or corrupt: the general path reports it in its phase.
        }
        self.send_turn(&[msg], &[], deadline, FLAG_TURN)
    }

    /// Sends a frame of a call's message (`flag`: `FLAG_TURN` for the last,
    /// `FLAG_PART` for a piece): the phases Ack and Send.
    #[inline(never)]
    fn send_turn(
        &mut self,
        parts: &[&[u8]],
        fds: &[BorrowedFd<'_>],
        deadline: Deadline,
        flag: u8,
    ) -> Result<(), CallError> {
        self.ack()?;
        let len: usize = parts.iter().map(|p| p.len()).sum();
        match self.send_parts_at(parts, fds, deadline, 0, flag) {
            Ok(()) if flag == FLAG_TURN => {
                self.turn.handed_over(len);
                Ok(())
            }
            Ok(()) => {
                self.turn.sent += len;
                Ok(())
            }
            Err(e) => Err(send_phase_error(e, self.turn.sent)),
        }
    }

    /// The Ack phase: this side may send a call's message now.
    #[inline]
    fn ack(&self) -> Result<(), CallError> {
        if !self.holds_turn() {
            return Err(CallError::NotYourTurn);
        }
        if !self.qos.reliable {
            return Err(CallError::Unsupported { reason: "a lossy flow may drop a request or a reply" });
        }
        if self.shared.state() != LIVE || self.sides.tx().0.is_consumer_closed() {
            let sent = self.turn.sent;
            // Pieces already went: the call is past its Ack phase.
            return Err(if sent == 0 { CallError::AckDisconnected } else { CallError::SendDisconnected { sent } });
        }
        Ok(())
    }
}

/// A send's failure in the Send phase, `sent` bytes of pieces having gone.
#[cold]
fn send_phase_error(e: SendError, sent: usize) -> CallError {
    let phase = Phase::Send;
    match e {
        SendError::WouldBlock => CallError::WouldBlock { phase, sent, received: 0 },
        SendError::TimedOut => CallError::TimedOut { phase, sent, received: 0 },
        SendError::TooLarge { len, max } => CallError::TooLarge { len, max },
        SendError::TooManyFds { count, max } => CallError::TooManyFds { count, max },
        SendError::Closed | SendError::PeerGone { .. } => CallError::SendDisconnected { sent },
        SendError::CorruptPeer(c) => CallError::CorruptPeer(c),
        SendError::Wait(e) => CallError::Wait(e),
        SendError::Io(e) => CallError::Io(e),
        // A lossy flow never gets here (`ack` refuses it).
        SendError::Full => CallError::WouldBlock { phase, sent, received: 0 },
    }
}
