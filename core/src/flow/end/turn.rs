//! The receiving half of a call (`crate::flow::call`): who holds the turn,
//! and the receive of the peer's message that hands it back (a request for
//! a server, a reply for a client), resumable wherever it stopped.
//!
//! The state is this side's alone (nothing of it is in shared memory):
//! the turn moves to this side only when the last frame of the peer's
//! message (flag `FLAG_TURN`) has been delivered whole, with every
//! descriptor of it: copied out and consumed, or handed out in place (a
//! `RecvBuf`, consumed when dropped). A frame is consumed only once all its
//! bytes were delivered; until then it stays in the ring and `offset` says
//! how far the caller got, so a buffer too small loses nothing.

use std::os::fd::OwnedFd;

use crate::flow::call::{CallError, Phase, FLAG_PART, FLAG_TURN};
use crate::flow::error::{Corruption, RecvError};
use crate::Deadline;

use ringflow_ring::spsc::Peeked;
use ringflow_ring::ReadError;

use super::buf::{consume, consume_bulk, count_consumed, RecvBuf};
use super::recv::Located;
use super::FlowEnd;

/// Who holds a flow's turn, and how far the message in flight has come.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    /// This side holds the turn: it may send a call's message.
    mine: bool,
    /// Bytes of this side's outgoing message committed: its pieces while
    /// it is sent, all of it once the turn was handed over.
    pub(super) sent: usize,
    /// Bytes of the peer's message delivered to the caller.
    received: usize,
    /// Descriptors of the peer's message delivered to the caller.
    received_refs: usize,
    /// Bytes of the current frame already delivered (it stays in the ring
    /// until all are).
    offset: usize,
    /// The current frame's descriptors were taken off the control socket.
    fds_taken: bool,
    /// A frame of the peer's message was seen: the phase is `Recv`.
    started: bool,
    /// The peer's last frame is consumed; only descriptors are left
    /// (`held`) before the turn is ours.
    last_taken: bool,
    /// Descriptors received that the caller's slots could not take yet.
    held: Vec<OwnedFd>,
}

impl Turn {
    /// The turn of a new flow end: held by the allocating side.
    pub(crate) fn new(mine: bool) -> Turn {
        Turn { mine, ..Turn::default() }
    }

    /// This side published the last frame of a message of `len` bytes:
    /// the peer holds the turn, and its answer is awaited from scratch.
    /// (Field by field: `held` stays as it is, and is empty, since the turn
    /// comes back only once every held descriptor was handed out.)
    #[inline(always)]
    pub(crate) fn handed_over(&mut self, len: usize) {
        self.mine = false;
        self.sent += len;
        self.received = 0;
        self.received_refs = 0;
        self.offset = 0;
        self.fds_taken = false;
        self.started = false;
        self.last_taken = false;
    }

    /// The peer's message was delivered whole: the turn is ours.
    fn taken_back(&mut self) {
        self.mine = true;
        self.sent = 0;
        self.last_taken = false;
    }

    /// The phase of a receive that failed now.
    fn phase(&self) -> Phase {
        if self.started {
            Phase::Recv
        } else {
            Phase::Over
        }
    }

    fn more_refs(&self) -> CallError {
        CallError::RecvMoreRefs { received: self.received, received_refs: self.received_refs }
    }
}

impl FlowEnd {
    /// Whether this side holds the flow's turn (may call or reply). The
    /// allocating side holds it first; the accepting side waits for a
    /// request.
    #[inline]
    pub fn holds_turn(&self) -> bool {
        self.turn.mine
    }

    /// Receives the peer's message into `buf`, without descriptors;
    /// returns its length. When nothing of the answer was delivered yet and
    /// the whole answer is there now as one inline frame that fits `buf`
    /// (the ping-pong's case), it is taken straight, as a flow's in-place
    /// receive takes a plain message, without the rest of
    /// [`receive_turn`](Self::receive_turn)'s bookkeeping; anything else
    /// goes there. `!started` (and the turn not ours) means the receive
    /// state is fresh: no piece delivered, no descriptor taken or held.
    #[inline(always)]
    pub(super) fn receive_turn_one(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize, CallError> {
        if self.turn.mine || self.turn.started {
            return self.receive_turn(buf, &mut [], deadline).map(|(n, _)| n);
        }
        let found = self.sides.rx().0.peek();
        if let Ok(frame) = found {
            let len = frame.len();
            if frame.flags() == FLAG_TURN && len <= self.geometry.inline_max && len <= buf.len() {
                self.handed_over_frame(&frame);
                let s = self.sides.get();
                buf[..len].copy_from_slice(s.rx.payload_of(&frame));
                count_consumed(&self.slot, self.wakers.consumed());
                consume(s.rx, &frame, &self.wakers);
                self.turn.started = true;
                self.turn.received = len;
                self.turn.taken_back();
                return Ok(len);
            }
        }
        if matches!(found, Err(ReadError::Empty)) && deadline == Deadline::Now && self.idle() {
            // What the general path says there (phase Over: nothing of the
            // answer seen yet), without its bookkeeping.
            return Err(CallError::WouldBlock { phase: Phase::Over, sent: self.turn.sent, received: 0 });
        }
        self.receive_turn_at(buf, &mut [], deadline, Some(found)).map(|(n, _)| n)
    }

    /// Receives (the rest of) the peer's message into `buf`, its
    /// descriptors into `slots`; returns what went into these two. The one
    /// copy path behind a call's and a server's receives.
    pub(super) fn receive_turn(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        deadline: Deadline,
    ) -> Result<(usize, usize), CallError> {
        self.receive_turn_at(buf, slots, deadline, None)
    }

    /// [`receive_turn`](Self::receive_turn), given what a first look at the
    /// ring `found` (if one was taken).
    #[inline(never)]
    fn receive_turn_at(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        deadline: Deadline,
        mut first: Option<Result<Peeked, ReadError>>,
    ) -> Result<(usize, usize), CallError> {
        if self.turn.mine {
            return Err(CallError::NotYourTurn);
        }
        let mut written = 0;
        let mut given = 0;
        for slot in slots.iter_mut() {
            let Some(fd) = self.turn.held.pop() else { break };
            *slot = Some(fd);
            given += 1;
        }
        self.turn.received_refs += given;
        if !self.turn.held.is_empty() {
            return Err(self.turn.more_refs());
        }
        if self.turn.last_taken {
            self.turn.taken_back();
            return Ok((0, given));
        }
        loop {
            let m = self.locate_turn(first.take(), deadline)?;
            let flags = m.frame.flags();
            if self.turn.offset == 0 && !self.turn.fds_taken {
                self.handed_over(&m);
                self.turn.started = true;
            }
            let nfds = m.fds();
            if nfds > 0 && !self.turn.fds_taken {
                given += self.take_turn_fds(nfds, &mut slots[given..])?;
            }
            let s = self.sides.get();
            let bulk = match m.bulk {
                Some(b) => Some(s.rx_bulk.read(b).map_err(|c| CallError::CorruptPeer(Corruption::Memory(c)))?),
                None => None,
            };
            let payload = match &bulk {
                Some(b) => b.payload(),
                None => s.rx.payload_of(&m.frame),
            };
            let from = self.turn.offset.min(payload.len());
            let n = (payload.len() - from).min(buf.len() - written);
            buf[written..written + n].copy_from_slice(&payload[from..from + n]);
            written += n;
            self.turn.received += n;
            if from + n < payload.len() {
                // The frame stays: `receive_more` goes on at `offset`.
                self.turn.offset = from + n;
                return Err(CallError::RecvMoreData { received: self.turn.received });
            }
            count_consumed(&self.slot, self.wakers.consumed());
            if let Some(b) = bulk {
                consume_bulk(b, &self.wakers);
            }
            consume(s.rx, &m.frame, &self.wakers);
            self.turn.offset = 0;
            self.turn.fds_taken = false;
            let last = flags & FLAG_TURN != 0;
            if !self.turn.held.is_empty() {
                self.turn.last_taken = last;
                return Err(self.turn.more_refs());
            }
            if last {
                self.turn.taken_back();
                return Ok((written, given));
            }
        }
    }

    /// Receives the next frame of the peer's message in place (from where
    /// a copying receive stopped, if one did). The turn is ours once the
    /// buffer holds the last frame; [`RecvBuf::more_follows`] says whether
    /// it does not.
    pub(super) fn receive_turn_ref(&mut self, deadline: Deadline) -> Result<RecvBuf<'_>, CallError> {
        if self.turn.mine {
            return Err(CallError::NotYourTurn);
        }
        if !self.turn.held.is_empty() || self.turn.last_taken {
            return Err(self.turn.more_refs());
        }
        let m = self.locate_turn(None, deadline)?;
        if m.fds() > 0 && !self.turn.fds_taken {
            // Descriptors need slots: the frame stays for receive_more_fds.
            return Err(self.turn.more_refs());
        }
        if self.turn.offset == 0 && !self.turn.fds_taken {
            self.handed_over(&m);
            self.turn.started = true;
        }
        let start = self.turn.offset.min(m.len());
        self.turn.offset = 0;
        self.turn.fds_taken = false;
        self.turn.received += m.len() - start;
        if m.frame.flags() & FLAG_TURN != 0 {
            self.turn.taken_back();
        }
        let s = self.sides.get();
        let bulk = match m.bulk {
            Some(b) => Some(s.rx_bulk.read(b).map_err(|c| CallError::CorruptPeer(Corruption::Memory(c)))?),
            None => None,
        };
        Ok(RecvBuf { rx: s.rx, frame: m.frame, start, bulk, wakers: &self.wakers, slot: &self.slot })
    }

    /// The next frame of the peer's message, waiting until `deadline`; a
    /// plain message there is `PlainMessage` (it stays). `first`: what a
    /// look at the ring just found, if the caller took one.
    #[inline(always)]
    fn locate_turn(
        &mut self,
        first: Option<Result<Peeked, ReadError>>,
        deadline: Deadline,
    ) -> Result<Located, CallError> {
        let found = match first {
            Some(found) => self.locate_from::<true>(found),
            None => self.locate_as::<true>(),
        };
        let m = match found {
            Ok(m) => m,
            Err(e) => match self.wait_message_as::<true>(e, deadline) {
                Ok(m) => m,
                Err(e) => return Err(self.turn_recv_error(e)),
            },
        };
        if m.frame.flags() & (FLAG_TURN | FLAG_PART) == 0 {
            return Err(CallError::PlainMessage { len: m.len() });
        }
        Ok(m)
    }

    /// Takes the current frame's `nfds` descriptors off the control socket:
    /// into `slots` as far as they go, the rest held for
    /// `receive_more_fds`. Returns how many went into `slots`.
    fn take_turn_fds(&mut self, nfds: usize, slots: &mut [Option<OwnedFd>]) -> Result<usize, CallError> {
        let fd_error = |e: RecvError| match e {
            RecvError::CorruptPeer(c) => CallError::CorruptPeer(c),
            RecvError::Io(e) => CallError::Io(e),
            other => CallError::CorruptPeer(Corruption::Protocol(format!("passed descriptors: {other}"))),
        };
        let given = if slots.len() >= nfds {
            self.take_fds(&mut slots[..nfds]).map_err(fd_error)?;
            nfds
        } else {
            // Cold: more descriptors than offered slots.
            let mut all: Vec<Option<OwnedFd>> = (0..nfds).map(|_| None).collect();
            self.take_fds(&mut all).map_err(fd_error)?;
            let mut fds = all.into_iter().flatten();
            for slot in slots.iter_mut() {
                *slot = fds.next();
            }
            // Held in reverse, handed out from the back: the order sent.
            let mut rest: Vec<OwnedFd> = fds.collect();
            rest.reverse();
            self.turn.held = rest;
            slots.len()
        };
        self.turn.fds_taken = true;
        self.turn.received_refs += given;
        Ok(given)
    }

    /// A receive's failure, as the call's error in its phase.
    #[cold]
    fn turn_recv_error(&self, e: RecvError) -> CallError {
        let (phase, sent, received) = (self.turn.phase(), self.turn.sent, self.turn.received);
        match e {
            RecvError::WouldBlock => CallError::WouldBlock { phase, sent, received },
            RecvError::TimedOut => CallError::TimedOut { phase, sent, received },
            RecvError::Closed | RecvError::PeerGone { .. } => match phase {
                Phase::Recv => CallError::RecvDisconnected { received },
                _ => CallError::OverDisconnected,
            },
            RecvError::CorruptPeer(c) => CallError::CorruptPeer(c),
            RecvError::Wait(e) => CallError::Wait(e),
            RecvError::Io(e) => CallError::Io(e),
            // A call's locate gives none of the others.
            other => CallError::CorruptPeer(Corruption::Protocol(format!("unexpected receive outcome: {other}"))),
        }
    }
}
