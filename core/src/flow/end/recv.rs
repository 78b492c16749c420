//! Receiving: into a caller's buffer, in place (zero-copy), or with passed
//! file descriptors. One internal path finds the next message with a
//! deadline; a message is consumed only once it has been delivered whole,
//! so every error that can be retried leaves it in the flow.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::control::SCM_MAX_FD;
use crate::flow::handshake::{self, HandshakeError, Kind};
use crate::flow::{readiness, DESCRIPTOR_LEN, FLAG_BULK, FLAG_FDS, FLAG_PART, FLAG_TURN};
use crate::stats::{FlowCounter, FLOW_LATENCY};
use crate::{membarrier_if_needed, wait_until_with, Deadline, WaitOutcome};
use ringflow_ring::pool::Slot;
use ringflow_ring::spsc::Peeked;
use ringflow_ring::ReadError;

use super::buf::{consume, consume_bulk, count_consumed, release, release_bulk, RecvBuf};
use super::send::FDS_SHIFT;
use super::shared::LIVE;
use super::FlowEnd;
use crate::flow::error::{Corruption, RecvError};

/// A located message: its inline frame and, for a large one, its bulk frame.
#[derive(Clone, Copy)]
pub(super) struct Located {
    pub(super) frame: Peeked,
    pub(super) bulk: Option<Slot>,
}

impl Located {
    pub(super) fn len(&self) -> usize {
        self.bulk.as_ref().map_or(self.frame.len(), |b| b.len())
    }

    pub(super) fn fds(&self) -> usize {
        if self.frame.flags() & FLAG_FDS != 0 {
            (self.frame.meta() >> FDS_SHIFT) as usize
        } else {
            0
        }
    }
}

impl FlowEnd {
    /// Receives the next message into `buf`, waiting for one; returns its
    /// length. A buffer too small gets `TooSmall` and the message stays.
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_into_deadline(buf, Deadline::Never)
    }

    /// [`recv_into`](Self::recv_into) without waiting (`WouldBlock`).
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.recv_into_deadline(buf, Deadline::Now)
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout`.
    pub fn recv_into_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, RecvError> {
        self.recv_into_deadline(buf, Deadline::after(timeout))
    }

    /// [`recv_into`](Self::recv_into), waiting until `deadline`.
    pub fn recv_into_deadline(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize, RecvError> {
        let (len, _) = self.recv_parts(buf, &mut [], deadline)?;
        Ok(len)
    }

    /// Receives a message and the file descriptors sent with it into
    /// `slots`, waiting for one; returns (bytes, descriptors). Too few slots:
    /// `FdSlots`, and the message (with its descriptors) stays for a retry.
    pub fn recv_fds(&mut self, buf: &mut [u8], slots: &mut [Option<OwnedFd>]) -> Result<(usize, usize), RecvError> {
        self.recv_parts(buf, slots, Deadline::Never)
    }

    /// [`recv_fds`](Self::recv_fds) without waiting.
    pub fn try_recv_fds(&mut self, buf: &mut [u8], slots: &mut [Option<OwnedFd>]) -> Result<(usize, usize), RecvError> {
        self.recv_parts(buf, slots, Deadline::Now)
    }

    /// [`recv_fds`](Self::recv_fds), waiting until `deadline`.
    pub fn recv_fds_deadline(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        deadline: Deadline,
    ) -> Result<(usize, usize), RecvError> {
        self.recv_parts(buf, slots, deadline)
    }

    /// [`recv_fds`](Self::recv_fds), waiting at most `timeout`.
    pub fn recv_fds_timeout(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        timeout: Duration,
    ) -> Result<(usize, usize), RecvError> {
        self.recv_parts(buf, slots, Deadline::after(timeout))
    }

    /// Receives the next message in place, waiting for one. The message is
    /// consumed when the returned buffer is dropped.
    pub fn recv_ref(&mut self) -> Result<RecvBuf<'_>, RecvError> {
        self.recv_ref_deadline(Deadline::Never)
    }

    /// [`recv_ref`](Self::recv_ref) without waiting. Inlinable into other
    /// crates, as [`try_send`](Self::try_send) is.
    #[inline]
    pub fn try_recv_ref(&mut self) -> Result<RecvBuf<'_>, RecvError> {
        self.recv_ref_deadline(Deadline::Now)
    }

    /// [`recv_ref`](Self::recv_ref), waiting at most `timeout`.
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<RecvBuf<'_>, RecvError> {
        self.recv_ref_deadline(Deadline::after(timeout))
    }

    /// [`recv_ref`](Self::recv_ref), waiting until `deadline`.
    #[inline(always)]
    pub fn recv_ref_deadline(&mut self, deadline: Deadline) -> Result<RecvBuf<'_>, RecvError> {
        // The ping-pong's path: a plain inline message is there now. It is
        // the first case of `locate_as`, taken without the rest.
        let found = self.sides.rx().0.peek();
        if let Ok(frame) = found {
            if frame.flags() == 0 && frame.len() <= self.geometry.inline_max {
                self.handed_over_frame(&frame);
                return Ok(RecvBuf {
                    rx: self.sides.get().rx,
                    frame,
                    start: 0,
                    bulk: None,
                    wakers: &self.wakers,
                    slot: &self.slot,
                });
            }
        }
        if matches!(found, Err(ReadError::Empty)) && deadline == Deadline::Now && self.idle() {
            return Err(RecvError::WouldBlock);
        }
        self.recv_ref_found(found, deadline)
    }

    /// Whether a look that found the ring empty has nothing else to do and
    /// may say `WouldBlock` at once (a spinning receiver's repeated look):
    /// no latency to record, nothing consumed to hand back, the peer alive,
    /// no engine to drive and no readiness descriptor to arm. Otherwise the
    /// general path does what is due ([`locate_from`](Self::locate_from),
    /// [`wait_message_as`](Self::wait_message_as)).
    #[inline(always)]
    pub(super) fn idle(&self) -> bool {
        let (rx, pool) = self.sides.rx();
        self.pending.is_none()
            && rx.unreleased() == 0
            && pool.unreleased() == 0
            && self.invoker.is_none()
            // SYNC: Relaxed; set by `as_raw_fd` on this flow (as in
            // `wait_message_as`).
            && !self.shared.fd_mode.load(Ordering::Relaxed)
            && self.shared.state() == LIVE
    }

    /// [`recv_ref_deadline`](Self::recv_ref_deadline) past its first look,
    /// which `found` anything but a plain inline message.
    #[inline(never)]
    fn recv_ref_found(
        &mut self,
        found: Result<Peeked, ReadError>,
        deadline: Deadline,
    ) -> Result<RecvBuf<'_>, RecvError> {
        let m = match self.locate_from::<false>(found) {
            Ok(m) => m,
            Err(e) => self.wait_message(e, deadline)?,
        };
        if m.fds() > 0 {
            return Err(RecvError::FdSlots { needed: m.fds() });
        }
        self.handed_over(&m);
        let s = self.sides.get();
        let bulk = match m.bulk {
            Some(b) => Some(s.rx_bulk.read(b).map_err(|c| RecvError::CorruptPeer(Corruption::Memory(c)))?),
            None => None,
        };
        Ok(RecvBuf { rx: s.rx, frame: m.frame, start: 0, bulk, wakers: &self.wakers, slot: &self.slot })
    }

    /// The copy path behind `recv_into` and `recv_fds`.
    #[inline]
    fn recv_parts(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        deadline: Deadline,
    ) -> Result<(usize, usize), RecvError> {
        let m = match self.locate() {
            Ok(m) => m,
            Err(e) => self.wait_message(e, deadline)?,
        };
        let (len, nfds) = (m.len(), m.fds());
        if nfds > slots.len() {
            return Err(RecvError::FdSlots { needed: nfds });
        }
        if len > buf.len() {
            return Err(RecvError::TooSmall { needed: len });
        }
        if nfds > 0 {
            self.take_fds(&mut slots[..nfds])?;
        }
        self.handed_over(&m);
        let s = self.sides.get();
        let bulk = match m.bulk {
            Some(b) => Some(s.rx_bulk.read(b).map_err(|c| RecvError::CorruptPeer(Corruption::Memory(c)))?),
            None => None,
        };
        match &bulk {
            Some(b) => b.copy_to(buf),
            None => s.rx.view(&m.frame).copy_to(buf),
        }
        count_consumed(&self.slot, self.wakers.consumed());
        if let Some(b) = bulk {
            consume_bulk(b, &self.wakers);
        }
        consume(s.rx, &m.frame, &self.wakers);
        Ok((len, nfds))
    }

    /// Counts a message handed to the application and records its one-way
    /// latency from the sender's stamp (the low bits of the frame's
    /// metadata word; 0 when the sender does not stamp).
    ///
    /// Only the clock is read here; the histogram is written at the next
    /// receive call (see [`PendingLatency`]).
    #[inline(always)]
    pub(super) fn handed_over(&mut self, m: &Located) {
        self.slot.add(FlowCounter::BytesReceived as usize, m.len() as u64);
        self.stamp_received(&m.frame);
        self.note_received();
    }

    /// [`handed_over`](Self::handed_over) of an inline message.
    #[inline(always)]
    pub(super) fn handed_over_frame(&mut self, frame: &Peeked) {
        self.slot.add(FlowCounter::BytesReceived as usize, frame.len() as u64);
        self.stamp_received(frame);
        self.note_received();
    }

    /// Invoker mode: the application took a message, so its next send
    /// answers it and runs the engine at once (`Invoker::note_received`).
    #[inline(always)]
    pub(super) fn note_received(&self) {
        if let Some(invoker) = &self.invoker {
            invoker.note_received();
        }
    }

    /// Reads the clock for the latency of the message in `frame`, and
    /// records the one before it (if not yet).
    #[inline(always)]
    fn stamp_received(&mut self, frame: &Peeked) {
        if self.latency {
            let stamp = frame.meta() & crate::clock::TICKS_MASK;
            let at = crate::clock::now();
            if let Some(before) = self.pending.replace(PendingLatency { stamp, at }) {
                before.record(&self.slot);
            }
        }
    }

    /// Records the latency of the last message handed over, if not yet.
    #[inline]
    pub(crate) fn record_pending(&mut self) {
        if let Some(p) = self.pending.take() {
            p.record(&self.slot);
        }
    }

    /// Takes the descriptors the peer queued on the control socket before
    /// it committed the message.
    pub(super) fn take_fds(&mut self, slots: &mut [Option<OwnedFd>]) -> Result<(), RecvError> {
        let corrupt = |what: &str| RecvError::CorruptPeer(Corruption::Protocol(format!("passed descriptors: {what}")));
        // Readiness signals may be queued before the packet: taken (every
        // wait on the descriptor arms and looks again first, so none is
        // lost to it).
        readiness::drain(self.conn.as_raw_fd());
        let p = handshake::recv(&self.conn, slots, Deadline::Now).map_err(|e| match e {
            HandshakeError::TimedOut => corrupt("announced but not sent"),
            HandshakeError::PeerGone => corrupt("announced but the peer hung up first"),
            HandshakeError::Io(e) => RecvError::Io(e),
            HandshakeError::Protocol(what) => corrupt(what),
            // `handshake::recv` gives nothing else; any other is a packet
            // the peer should not have sent here.
            e => corrupt(&e.to_string()),
        })?;
        if p.kind != Kind::Fds || p.code as usize != slots.len() || slots.iter().any(Option::is_none) {
            slots.iter_mut().for_each(|s| *s = None);
            return Err(corrupt("count does not match the message"));
        }
        Ok(())
    }

    /// The slow path: `first` is what the first look found; waits for the
    /// next message (or the end of the flow).
    #[inline(never)]
    fn wait_message(&mut self, first: RecvError, deadline: Deadline) -> Result<Located, RecvError> {
        self.wait_message_as::<false>(first, deadline)
    }

    /// [`wait_message`](Self::wait_message), for a call's message when
    /// `CALL` (see [`locate_as`](Self::locate_as)).
    #[inline(never)]
    pub(super) fn wait_message_as<const CALL: bool>(
        &mut self,
        first: RecvError,
        deadline: Deadline,
    ) -> Result<Located, RecvError> {
        let mut found = Err(first);
        let mut armed = false;
        loop {
            match found {
                Err(RecvError::WouldBlock) => {}
                other => return other,
            }
            if let Some(invoker) = &self.invoker {
                // Invoker mode: messages arrive only as this thread runs
                // the engine. (Borrowed, not cloned: this is a polling
                // loop's path, and a clone is two atomic RMWs.)
                let (rx, _) = self.sides.rx();
                let shared = &self.shared;
                let arrived = || !matches!(rx.peek(), Err(ReadError::Empty)) || shared.state() != LIVE;
                if !invoker.drive_until(arrived, self.spin, deadline) {
                    return Err(if deadline == Deadline::Now { RecvError::WouldBlock } else { RecvError::TimedOut });
                }
                found = self.locate_as::<CALL>();
                continue;
            }
            if deadline == Deadline::Now {
                // SYNC: Relaxed; set by `as_raw_fd` on this flow.
                if !armed && self.shared.fd_mode.load(Ordering::Relaxed) {
                    armed = true;
                    if self.arm() {
                        // It raced the arm: hand it out now (a descriptor
                        // that cannot be signalled by this side, the
                        // control socket itself, would miss it).
                        found = self.locate_as::<CALL>();
                        continue;
                    }
                }
                return Err(RecvError::WouldBlock);
            }
            self.park_for_message(deadline)?;
            found = self.locate_as::<CALL>();
        }
    }

    /// Spins, then parks until a message (or the end) may be there.
    #[inline(never)]
    fn park_for_message(&self, deadline: Deadline) -> Result<(), RecvError> {
        {
            let (rx, _) = self.sides.rx();
            let shared = &self.shared;
            let slot = &self.slot;
            let outcome = wait_until_with(
                || {
                    slot.add(FlowCounter::Parked as usize, 1);
                    rx.data_wait()
                },
                || !matches!(rx.peek(), Err(ReadError::Empty)) || shared.state() != LIVE,
                self.spin,
                deadline,
                Some(shared.alarm()),
                membarrier_if_needed,
            )
            .map_err(RecvError::Wait)?;
            if outcome == WaitOutcome::TimedOut {
                return Err(RecvError::TimedOut);
            }
            Ok(())
        }
    }

    /// The next message, if one is there.
    #[inline(always)]
    fn locate(&mut self) -> Result<Located, RecvError> {
        self.locate_as::<false>()
    }

    /// The next message, if one is there. `CALL`: for a call's receive,
    /// which takes the frames of a call (`FLAG_TURN`, `FLAG_PART`) and
    /// leaves the sorting out of plain ones to its caller; otherwise a
    /// frame of a call is `CallMessage`, and stays.
    #[inline(always)]
    pub(super) fn locate_as<const CALL: bool>(&mut self) -> Result<Located, RecvError> {
        let found = self.sides.rx().0.peek();
        self.locate_from::<CALL>(found)
    }

    /// [`locate_as`](Self::locate_as), given what the ring's first look
    /// `found`.
    #[inline(always)]
    pub(super) fn locate_from<const CALL: bool>(
        &mut self,
        mut found: Result<Peeked, ReadError>,
    ) -> Result<Located, RecvError> {
        if found.is_err() {
            self.ran_dry();
            if matches!(found, Err(ReadError::Empty)) && self.shared.state() != LIVE {
                // The peer's process left: whatever it committed is visible
                // by now (the hang-up came after its last store). Look once
                // more; still nothing (and no clean close) means it died.
                found = self.sides.rx().0.peek();
                if matches!(found, Err(ReadError::Empty)) {
                    return Err(RecvError::PeerGone {
                        received: self.received_count().saturating_sub(self.preamble.received),
                    });
                }
            }
        }
        match found {
            // A call's fast path also takes the last frame of a call
            // (`FLAG_TURN`) inline; for a plain receive the mask is 0.
            Ok(frame)
                if frame.flags() & !(if CALL { FLAG_TURN } else { 0 }) == 0
                    && frame.len() <= self.geometry.inline_max =>
            {
                Ok(Located { frame, bulk: None })
            }
            Ok(frame) => self.checked(frame, CALL),
            Err(ReadError::Empty) => Err(RecvError::WouldBlock),
            // The peer closed its sending side after its last message.
            Err(ReadError::Closed) => Err(RecvError::Closed),
            Err(ReadError::Corrupt(c)) => Err(RecvError::CorruptPeer(Corruption::Memory(c))),
            Err(ReadError::Lapped { .. }) => {
                Err(RecvError::CorruptPeer(Corruption::Frame("the ring claims it lapped the reader".into())))
            }
            // No other state comes from a flow's ring today (the enum is
            // non-exhaustive): whatever it is, the ring cannot be read.
            Err(other) => Err(RecvError::CorruptPeer(Corruption::Frame(format!("unreadable ring: {other}")))),
        }
    }

    /// A frame with flags, or longer than the inline size: checked against
    /// what this flow granted (the ring checked it only against its own
    /// bounds). Every length and count a peer writes is one the sender
    /// could have produced, or the frame is `CorruptPeer`: an inline
    /// message at most the inline size, a bulk message longer than that and
    /// at most `max_msg`, a descriptor count from 1 to `SCM_MAX_FD`, no
    /// unknown flag.
    #[inline(never)]
    fn checked(&self, frame: Peeked, call: bool) -> Result<Located, RecvError> {
        let corrupt = |what: String| Err(RecvError::CorruptPeer(Corruption::Frame(what)));
        let flags = frame.flags();
        if flags & !(FLAG_BULK | FLAG_FDS | FLAG_TURN | FLAG_PART) != 0 {
            return corrupt(format!("unknown frame flags {flags:#04x}"));
        }
        if flags & (FLAG_TURN | FLAG_PART) == FLAG_TURN | FLAG_PART {
            return corrupt("a frame both hands the turn over and announces more pieces".into());
        }
        if flags & FLAG_FDS != 0 {
            let n = frame.meta() >> FDS_SHIFT;
            if n == 0 || n > SCM_MAX_FD as u64 {
                return corrupt(format!("{n} passed descriptors announced (1 to {SCM_MAX_FD} allowed)"));
            }
        }
        if flags & FLAG_BULK == 0 {
            if frame.len() > self.geometry.inline_max {
                return corrupt(format!(
                    "inline message of {} bytes on a flow whose inline size is {}",
                    frame.len(),
                    self.geometry.inline_max
                ));
            }
            if !call && flags & (FLAG_TURN | FLAG_PART) != 0 {
                return Err(RecvError::CallMessage { len: frame.len() });
            }
            return Ok(Located { frame, bulk: None });
        }
        let located = self.bulk_slot(frame)?;
        let len = located.len();
        if len <= self.geometry.inline_max || len > self.qos.max_msg {
            return corrupt(format!(
                "bulk message of {len} bytes on a flow granted {} (inline up to {})",
                self.qos.max_msg, self.geometry.inline_max
            ));
        }
        if !call && flags & (FLAG_TURN | FLAG_PART) != 0 {
            return Err(RecvError::CallMessage { len });
        }
        Ok(located)
    }

    /// The bulk slot a descriptor frame points to, validated against the
    /// pool's own position (its length is checked against the QoS by
    /// [`checked`](Self::checked)).
    #[inline]
    fn bulk_slot(&self, frame: Peeked) -> Result<Located, RecvError> {
        let (rx, pool) = self.sides.rx();
        let view = rx.view(&frame);
        if view.len() != DESCRIPTOR_LEN {
            return Err(RecvError::CorruptPeer(Corruption::Frame("bulk descriptor of the wrong size".into())));
        }
        // Copied out once, then validated: the peer can still write the
        // frame's bytes, so the position and length come from our copy.
        let mut d = [0u8; DESCRIPTOR_LEN];
        view.copy_to(&mut d);
        let word = |at: usize| {
            u64::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3], d[at + 4], d[at + 5], d[at + 6], d[at + 7]])
        };
        let (pos, len) = (word(0), word(8));
        match pool.validate(pos, len) {
            Ok(slot) => Ok(Located { frame, bulk: Some(slot) }),
            Err(c) => Err(RecvError::CorruptPeer(Corruption::Memory(c))),
        }
    }

    /// Found nothing to read: hand back whatever was consumed and not yet
    /// released (cheap when there is none).
    #[inline]
    fn ran_dry(&mut self) {
        self.record_pending();
        let s = self.sides.get();
        if s.rx.unreleased() > 0 {
            release(s.rx, &self.wakers);
        }
        if s.rx_bulk.unreleased() > 0 {
            release_bulk(s.rx_bulk, &self.wakers);
        }
    }

    /// Arms the readiness fd: reset it, announce we wait (the sender signals
    /// it after its next publish), then look again so a message that raced
    /// the announcement is not missed: returns whether one (or the end) is
    /// there, after signalling the descriptor for it.
    pub(super) fn arm(&mut self) -> bool {
        self.reset_readiness();
        ringflow_ring::arm::arm(self.shared.memory.rx_armed(self.shared.role));
        let barrier_failed = self.sides.rx().0.data_wait().needs_membarrier()
            // Senders publish without a fence: pay for theirs here (if that
            // fails, a spurious signal below is the safe answer).
            && crate::membarrier::heavy_barrier().is_err();
        let there = !matches!(self.sides.rx().0.peek(), Err(ReadError::Empty)) || self.shared.state() != LIVE;
        if barrier_failed || there {
            self.shared.signal_readiness();
        }
        there
    }
}

/// The engine's side of a bridged flow (see `crate::remote`).
impl FlowEnd {
    /// Whether a message (or the end) waits to be read.
    pub fn has_message(&self) -> bool {
        !matches!(self.sides.rx().0.peek(), Err(ReadError::Empty))
    }

    /// Where a reader of this flow sleeps for data: the peer's publish
    /// wakes it when a sleeper is announced there.
    pub fn data_wait(&self) -> ringflow_ring::WaitPoint<'_> {
        self.sides.rx().0.data_wait()
    }

    /// Offers the next message to `take` without waiting; consumes it only
    /// if `take` returns true, and never counts it as consumed for the
    /// sender's linger (the engine confirms that once the remote
    /// application has consumed it: [`FlowEnd::confirm_consumed`]). Returns
    /// the taken message's send stamp (0: not stamped), or `None` if
    /// `take` refused it. A message that carries descriptors cannot leave
    /// the host: `FdSlots`. A call's frames go like plain ones, with their
    /// call flags (`FLAG_TURN`, `FLAG_PART`, or 0) handed to `take`: the
    /// turn travels with the frames, and this end's own turn never moves.
    pub(crate) fn forward(&mut self, take: impl FnOnce(&[u8], u64, u8) -> bool) -> Result<Option<u64>, RecvError> {
        let m = match self.locate_as::<true>() {
            Ok(m) => m,
            Err(e) => self.wait_message_as::<true>(e, Deadline::Now)?,
        };
        if m.fds() > 0 {
            return Err(RecvError::FdSlots { needed: m.fds() });
        }
        let s = self.sides.get();
        let bulk = match m.bulk {
            Some(b) => Some(s.rx_bulk.read(b).map_err(|c| RecvError::CorruptPeer(Corruption::Memory(c)))?),
            None => None,
        };
        let payload = match &bulk {
            Some(b) => b.payload(),
            None => s.rx.payload_of(&m.frame),
        };
        let stamp = m.frame.meta() & crate::clock::TICKS_MASK;
        if !take(payload, stamp, m.frame.flags() & (FLAG_TURN | FLAG_PART)) {
            return Ok(None);
        }
        if let Some(b) = bulk {
            consume_bulk(b, &self.wakers);
        }
        consume(s.rx, &m.frame, &self.wakers);
        Ok(Some(stamp))
    }
}

/// A message's one-way latency, read but not yet recorded: its send stamp
/// and the clock when it was handed over. Recording (a conversion, a
/// bucket's index and its counter) waits for the receiver's next call, the
/// first look that finds the ring empty or the next message: in a
/// request/reply exchange that is after the reply went out, while the peer
/// works, instead of between the receive and the reply. `FlowEnd::stats`
/// counts it in; an outside reader (`ringflow stat`) sees it once the
/// receiver looks again.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PendingLatency {
    stamp: u64,
    at: u64,
}

impl PendingLatency {
    /// Counts it into `slot`'s latency histogram (or as unstamped).
    #[inline]
    pub(crate) fn record(self, slot: &crate::stats::Slot) {
        match self.latency_ns() {
            Some(ns) => slot.hist(FLOW_LATENCY).record(ns),
            None => slot.add(FlowCounter::Unstamped as usize, 1),
        }
    }

    /// The latency in nanoseconds, or `None` when the message was not
    /// stamped (or the stamp is not from this host's clock).
    pub(crate) fn latency_ns(self) -> Option<u64> {
        if self.stamp == 0 {
            return None;
        }
        crate::clock::elapsed_ns(self.stamp, self.at)
    }
}
