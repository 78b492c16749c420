//! Batches: many messages sent with one commit and one wake check, many
//! received in one pass and handed back together. The throughput forms of
//! `send` and `recv_ref`, with the same guarantees: every message is a
//! message of its own at the other end (its length, its order, its count
//! in `PeerGone`), stamped for the latency histograms, and nothing is
//! published until the whole batch is written.
//!
//! A batch carries plain inline messages. A message larger than the inline
//! size (it travels through the bulk area) goes on its own: first in a
//! batch, it is the batch; later, the batch stops before it and the next
//! call sends it. Receiving stops in the same way before a message that
//! carries descriptors, belongs to a call, or lies in the bulk area; first
//! in a batch, it is handed over on its own (or refused as `recv_ref`
//! refuses it: `FdSlots`, `CallMessage`).

use std::time::Duration;

use ringflow_ring::ClaimError;

use super::buf::release;
use super::FlowEnd;
use crate::flow::error::{RecvError, SendError};
use crate::stats::{FlowCounter, FLOW_LATENCY};
use crate::Deadline;

impl FlowEnd {
    /// Sends the messages of `msgs` in order, as many as fit in the flow
    /// now, published together; waits for room for the first one. Returns
    /// how many were sent (at least one, unless `msgs` is empty): send the
    /// rest with another call, as with a short `write`.
    pub fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.send_batch_deadline(msgs, Deadline::Never)
    }

    /// [`send_batch`](Self::send_batch) without waiting: `WouldBlock` if
    /// not even the first message fits.
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.send_batch_deadline(msgs, Deadline::Now)
    }

    /// [`send_batch`](Self::send_batch), waiting at most `timeout` for room.
    pub fn send_batch_timeout(&mut self, msgs: &[&[u8]], timeout: Duration) -> Result<usize, SendError> {
        self.send_batch_deadline(msgs, Deadline::after(timeout))
    }

    /// [`send_batch`](Self::send_batch), waiting until `deadline` for room.
    pub fn send_batch_deadline(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize, SendError> {
        let copy = |i: usize, dst: &mut [u8]| {
            dst.copy_from_slice(msgs[i]);
            true
        };
        self.batch_at(|i| msgs.get(i).map(|m| m.len()), copy, deadline)
    }

    /// The zero-copy batch: message `i` has `lens[i]` bytes, and `fill(i,
    /// buf)` writes it in place in the flow's memory and returns whether
    /// the batch goes on after it. Sends as many as fit now, published
    /// together, waiting for room for the first; returns how many were sent
    /// (`fill` was called for exactly those).
    pub fn send_batch_with(
        &mut self,
        lens: &[usize],
        fill: impl FnMut(usize, &mut [u8]) -> bool,
    ) -> Result<usize, SendError> {
        self.send_batch_with_deadline(lens, fill, Deadline::Never)
    }

    /// [`send_batch_with`](Self::send_batch_with) without waiting.
    pub fn try_send_batch_with(
        &mut self,
        lens: &[usize],
        fill: impl FnMut(usize, &mut [u8]) -> bool,
    ) -> Result<usize, SendError> {
        self.send_batch_with_deadline(lens, fill, Deadline::Now)
    }

    /// [`send_batch_with`](Self::send_batch_with), waiting at most `timeout`.
    pub fn send_batch_with_timeout(
        &mut self,
        lens: &[usize],
        fill: impl FnMut(usize, &mut [u8]) -> bool,
        timeout: Duration,
    ) -> Result<usize, SendError> {
        self.send_batch_with_deadline(lens, fill, Deadline::after(timeout))
    }

    /// [`send_batch_with`](Self::send_batch_with), waiting until `deadline`.
    pub fn send_batch_with_deadline(
        &mut self,
        lens: &[usize],
        fill: impl FnMut(usize, &mut [u8]) -> bool,
        deadline: Deadline,
    ) -> Result<usize, SendError> {
        self.batch_at(|i| lens.get(i).copied(), fill, deadline)
    }

    /// The one batch path: message `i` has `len_of(i)` bytes (`None`: no
    /// more) and is written by `fill(i, ..)`.
    #[inline]
    fn batch_at(
        &mut self,
        len_of: impl Fn(usize) -> Option<usize>,
        mut fill: impl FnMut(usize, &mut [u8]) -> bool,
        deadline: Deadline,
    ) -> Result<usize, SendError> {
        let Some(first) = len_of(0) else { return Ok(0) };
        if self.admit(first)? {
            // For the bulk area: alone, through the loan path.
            let mut buf = self.loan_with(first, deadline, false)?;
            let _ = fill(0, &mut buf);
            buf.send()?;
            return Ok(1);
        }
        // Later messages join while they are inline and within the QoS; the
        // first that is not ends the batch (the next call takes it).
        let inline_max = self.geometry.inline_max;
        let inline = |i: usize| len_of(i).filter(|&len| len <= inline_max);
        loop {
            let stamp = self.stamp();
            let (mut written, mut bytes) = (0, 0);
            let batch = self.sides.get().tx.write_batch_sized(inline, |slot| {
                let go_on = fill(written, slot.payload_mut());
                slot.set_meta(stamp);
                written += 1;
                bytes += slot.len() as u64;
                go_on
            });
            match batch {
                Ok((n, notify)) => {
                    self.sent_n(notify, n as u64, bytes);
                    return Ok(n);
                }
                Err(ClaimError::Full) => self.wait_room(first, false, deadline)?,
                Err(e) => return Err(self.claim_failed(e)),
            }
        }
    }

    /// Receives up to `max` messages, waiting for the first: `f` reads each
    /// in place, in order, and they are handed back to the sender together
    /// once the batch ends. Returns how many `f` saw (at least one, unless
    /// `max` is 0). The errors are `recv_ref`'s, for the first message; a
    /// message that cannot join a batch (see the module docs) ends it.
    ///
    /// The bytes `f` sees live in memory the peer's process maps (see
    /// [`RecvBuf`](super::RecvBuf)): parse them once, copy what you keep.
    pub fn recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.recv_batch_deadline(max, f, Deadline::Never)
    }

    /// [`recv_batch`](Self::recv_batch) without waiting: `WouldBlock` if
    /// no message is there.
    pub fn try_recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.recv_batch_deadline(max, f, Deadline::Now)
    }

    /// [`recv_batch`](Self::recv_batch), waiting at most `timeout`.
    pub fn recv_batch_timeout(
        &mut self,
        max: usize,
        f: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<usize, RecvError> {
        self.recv_batch_deadline(max, f, Deadline::after(timeout))
    }

    /// [`recv_batch`](Self::recv_batch), waiting until `deadline`.
    pub fn recv_batch_deadline(
        &mut self,
        max: usize,
        mut f: impl FnMut(&[u8]),
        deadline: Deadline,
    ) -> Result<usize, RecvError> {
        if max == 0 {
            return Ok(0);
        }
        let n = self.drain(max, &mut f);
        if n > 0 {
            return Ok(n);
        }
        // Nothing plain there now: the single path waits for the first
        // message, checks it, and hands over one that goes alone.
        let plain = {
            let first = self.recv_ref_deadline(deadline)?;
            f(&first);
            first.is_plain_inline()
        };
        if !plain || max == 1 {
            return Ok(1);
        }
        Ok(1 + self.drain(max - 1, f))
    }

    /// Hands over up to `max` plain inline messages that are there now, in
    /// one pass over the ring, and releases them together; stops before any
    /// other kind (and at a corrupt frame, which the next receive reports).
    fn drain(&mut self, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        self.record_pending();
        let (inline_max, latency) = (self.geometry.inline_max, self.latency);
        let slot = &self.slot;
        let consumed = self.shared.memory.rx_consumed(self.shared.role);
        let mut received = slot.get(FlowCounter::Received as usize);
        let mut bytes = 0;
        let mut stamps = Stamps::default();
        let rx = &mut *self.sides.get().rx;
        let read = rx.read_batch_while(max, |frame| {
            if frame.flags() != 0 || frame.len() > inline_max {
                return false;
            }
            f(frame.payload());
            // Exact on every message (the linger handshake, `PeerGone`
            // counts), and stored before the ring's release below.
            received += 1;
            ringflow_ring::linger::store_consumed(consumed, received);
            bytes += frame.len() as u64;
            if latency {
                stamps.add(frame.meta() & crate::clock::TICKS_MASK, slot);
            }
            true
        });
        stamps.flush(slot);
        slot.set(FlowCounter::Received as usize, received);
        slot.add(FlowCounter::BytesReceived as usize, bytes);
        if matches!(read, Ok((1.., _))) {
            if let Some(invoker) = &self.invoker {
                invoker.note_received();
            }
        }
        match read {
            Ok((n, notify)) => {
                if notify.is_wake() {
                    super::Wakers::wake(self.wakers.peer_space[0]);
                }
                if n > 0 {
                    // Frames were taken: the release handed room back.
                    self.wakers.room_released();
                }
                n
            }
            Err(_) => {
                // Nothing more there (or a corrupt frame, left for the next
                // receive to report): hand back what the first message left.
                release(rx, &self.wakers);
                0
            }
        }
    }
}

/// Latencies of a receive batch, recorded a run at a time: messages sent in
/// one batch carry one stamp, and a run of equal stamps is one histogram
/// update.
#[derive(Default)]
struct Stamps {
    /// The clock when the batch was handed over (read at its first stamped
    /// message).
    at: Option<u64>,
    stamp: u64,
    run: u64,
}

impl Stamps {
    /// Counts a message stamped `stamp`: one compare and one add while the
    /// run goes on (a batch's messages share their stamp).
    #[inline(always)]
    fn add(&mut self, stamp: u64, slot: &crate::stats::Slot) {
        if stamp != self.stamp {
            self.start_run(stamp, slot);
        }
        self.run += 1;
    }

    /// A message with another stamp than the run's: records the run and
    /// starts one (reading the clock at the first stamped message).
    #[inline(never)]
    fn start_run(&mut self, stamp: u64, slot: &crate::stats::Slot) {
        self.flush(slot);
        if stamp != 0 {
            self.at.get_or_insert_with(crate::clock::now);
        }
        self.stamp = stamp;
    }

    #[inline]
    fn flush(&mut self, slot: &crate::stats::Slot) {
        if self.run == 0 {
            return;
        }
        let ns = match self.at {
            Some(at) if self.stamp != 0 => crate::clock::elapsed_ns(self.stamp, at),
            _ => None,
        };
        match ns {
            Some(ns) => slot.hist(FLOW_LATENCY).record_n(ns, self.run),
            None => slot.add(FlowCounter::Unstamped as usize, self.run),
        }
        self.run = 0;
    }
}
