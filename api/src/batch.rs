//! Batches on a [`Flow`]: the throughput forms of `send` and `recv_ref`.
//! Many messages are written and published with one commit and one wake
//! check; many are read in one pass and handed back together. Each is still
//! a message of its own at the other end, with its length, order, count and
//! latency stamp.
//!
//! A batch carries plain messages up to the flow's [`inline_max`](Flow::inline_max).
//! A larger one (it travels through the flow's bulk area) goes alone: first
//! in a batch, it is the batch; later, the batch stops before it and the
//! next call takes it. A receive batch stops in the same way before a
//! message with descriptors or one of a call, and, first, hands it over
//! alone or refuses it as [`recv_ref`](Flow::recv_ref) does.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # ringflow_testkit::isolate_runtime_dir(); // as a test: a private runtime directory, removed at exit
//! use ringflow_api::{Flow, Qos};
//!
//! let (mut tx, mut rx) = Flow::pair(&Qos::data())?;
//! let msgs: Vec<Vec<u8>> = (0u8..10).map(|i| vec![i; 64]).collect();
//! let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
//! let mut sent = 0;
//! while sent < refs.len() {
//!     sent += tx.send_batch(&refs[sent..])?;
//! }
//! let mut seen = Vec::new();
//! while seen.len() < 10 {
//!     rx.recv_batch(32, |m| seen.push(m[0]))?;
//! }
//! assert_eq!(seen, (0u8..10).collect::<Vec<_>>());
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use ringflow_core::flow::error::{RecvError, SendError};
use ringflow_core::Deadline;

use crate::Flow;

impl Flow {
    /// Sends the messages of `msgs` in order, as many as fit in the flow
    /// now, published together; waits for room for the first one. Returns
    /// how many were sent (at least one, unless `msgs` is empty): send the
    /// rest with another call, as after a short `write`.
    #[inline]
    pub fn send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.end.send_batch(msgs)
    }

    /// [`send_batch`](Self::send_batch) without waiting: `WouldBlock` if
    /// not even the first message fits.
    #[inline]
    pub fn try_send_batch(&mut self, msgs: &[&[u8]]) -> Result<usize, SendError> {
        self.end.try_send_batch(msgs)
    }

    /// [`send_batch`](Self::send_batch), waiting at most `timeout` for room.
    #[inline]
    pub fn send_batch_timeout(&mut self, msgs: &[&[u8]], timeout: Duration) -> Result<usize, SendError> {
        self.end.send_batch_timeout(msgs, timeout)
    }

    /// [`send_batch`](Self::send_batch), waiting until `deadline` for room.
    #[inline]
    pub fn send_batch_deadline(&mut self, msgs: &[&[u8]], deadline: Deadline) -> Result<usize, SendError> {
        self.end.send_batch_deadline(msgs, deadline)
    }

    /// The zero-copy batch: message `i` has `lens[i]` bytes, and `fill(i,
    /// buf)` writes it in place in the flow's shared memory and returns
    /// whether the batch goes on after it. Sends as many as fit now,
    /// published together, waiting for room for the first; returns how
    /// many were sent (`fill` was called for exactly those, in order).
    #[inline]
    pub fn send_batch_with(
        &mut self,
        lens: &[usize],
        fill: impl FnMut(usize, &mut [u8]) -> bool,
    ) -> Result<usize, SendError> {
        self.end.send_batch_with(lens, fill)
    }

    /// [`send_batch_with`](Self::send_batch_with) without waiting.
    #[inline]
    pub fn try_send_batch_with(
        &mut self,
        lens: &[usize],
        fill: impl FnMut(usize, &mut [u8]) -> bool,
    ) -> Result<usize, SendError> {
        self.end.try_send_batch_with(lens, fill)
    }

    /// [`send_batch_with`](Self::send_batch_with), waiting at most `timeout`.
    #[inline]
    pub fn send_batch_with_timeout(
        &mut self,
        lens: &[usize],
        fill: impl FnMut(usize, &mut [u8]) -> bool,
        timeout: Duration,
    ) -> Result<usize, SendError> {
        self.end.send_batch_with_timeout(lens, fill, timeout)
    }

    /// [`send_batch_with`](Self::send_batch_with), waiting until `deadline`.
    #[inline]
    pub fn send_batch_with_deadline(
        &mut self,
        lens: &[usize],
        fill: impl FnMut(usize, &mut [u8]) -> bool,
        deadline: Deadline,
    ) -> Result<usize, SendError> {
        self.end.send_batch_with_deadline(lens, fill, deadline)
    }

    /// Receives up to `max` messages, waiting for the first: `f` reads each
    /// in place, in order, and they go back to the sender together once
    /// the batch ends. Returns how many `f` saw (at least one, unless `max`
    /// is 0). The errors are [`recv_ref`](Self::recv_ref)'s, for the first
    /// message.
    ///
    /// The bytes `f` sees live in memory the peer's process maps, as a
    /// [`RecvBuf`](crate::RecvBuf)'s do: parse them once, copy what you keep.
    #[inline]
    pub fn recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.end.recv_batch(max, f)
    }

    /// [`recv_batch`](Self::recv_batch) without waiting: `WouldBlock` if no
    /// message is there.
    #[inline]
    pub fn try_recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.end.try_recv_batch(max, f)
    }

    /// [`recv_batch`](Self::recv_batch), waiting at most `timeout`.
    #[inline]
    pub fn recv_batch_timeout(
        &mut self,
        max: usize,
        f: impl FnMut(&[u8]),
        timeout: Duration,
    ) -> Result<usize, RecvError> {
        self.end.recv_batch_timeout(max, f, timeout)
    }

    /// [`recv_batch`](Self::recv_batch), waiting until `deadline`.
    #[inline]
    pub fn recv_batch_deadline(
        &mut self,
        max: usize,
        f: impl FnMut(&[u8]),
        deadline: Deadline,
    ) -> Result<usize, RecvError> {
        self.end.recv_batch_deadline(max, f, deadline)
    }
}
