//! The sender's side of a reliable flow: the [`SendWindow`] numbers
//! messages and keeps every one until the receiver acknowledges consuming
//! it (the receiver's side is [`super::RecvSequencer`]). When a connection
//! drops, the receiver sends `Resume { next_expected_seq }` on the new one and
//! the sender replays its window from there, so the flow goes on with nothing
//! lost and nothing duplicated.
//!
//! The window must never grow without bound: it copies payloads into one
//! store of a configured size allocated up front, and refuses with
//! [`PushError::WindowFull`] rather than grow. It must never trust the
//! peer's numbers: an ack or resume point outside what was sent is an error.
//!
//! Sequence numbers start at [`FIRST_SEQ`]; `Ack { cumulative_seq: n }` means
//! every message up to and including `n` was consumed (0: none), and
//! `Resume { next_expected_seq }` names the first message not received.

use std::collections::vec_deque::{self, VecDeque};
use std::fmt;

use super::frame::{CallMark, Frame};

/// The sequence number of a flow's first message.
pub const FIRST_SEQ: u64 = 1;

/// How much unacknowledged data a [`SendWindow`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WindowLimits {
    /// Payload bytes (the store allocated up front). A message longer than
    /// this is refused with [`PushError::TooLarge`].
    pub max_bytes: usize,
    /// Messages, so that empty or tiny messages cannot pile up unboundedly.
    pub max_messages: usize,
}

/// Why [`SendWindow::push`] refused a message; the caller still has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// No room until the receiver acknowledges more: retry after an `Ack`.
    WindowFull {
        /// Payload bytes awaiting acknowledgement.
        in_flight_bytes: usize,
        /// Messages awaiting acknowledgement.
        in_flight_messages: usize,
    },
    /// Longer than the whole window: it would never fit.
    TooLarge {
        /// The message length.
        len: usize,
        /// The window's byte limit.
        max: usize,
    },
    /// The flow has used up every sequence number.
    SequenceExhausted,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushError::WindowFull { in_flight_bytes, in_flight_messages } => write!(
                f,
                "retransmit window full ({in_flight_messages} messages, {in_flight_bytes} bytes unacknowledged)"
            ),
            PushError::TooLarge { len, max } => {
                write!(f, "message of {len} bytes exceeds the retransmit window of {max} bytes")
            }
            PushError::SequenceExhausted => f.write_str("flow has used every sequence number"),
        }
    }
}

impl std::error::Error for PushError {}

/// Why the peer's acknowledgement or resume point was refused: the peer is
/// confused or hostile, and the connection should be closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckError {
    /// An ack for messages never sent.
    AheadOfSent {
        /// The acknowledged sequence number.
        ack: u64,
        /// The last one sent.
        last_sent: u64,
    },
    /// A resume point past the next message to send.
    ResumeAheadOfSent {
        /// The requested resume point.
        next_expected: u64,
        /// The last sequence number sent.
        last_sent: u64,
    },
    /// A resume point at or before a message the receiver already
    /// acknowledged consuming, which the window no longer holds.
    ResumeBehindAck {
        /// The requested resume point.
        next_expected: u64,
        /// The highest acknowledged sequence number.
        acked: u64,
    },
}

impl fmt::Display for AckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AckError::AheadOfSent { ack, last_sent } => {
                write!(f, "peer acknowledged seq {ack}, only {last_sent} were sent")
            }
            AckError::ResumeAheadOfSent { next_expected, last_sent } => {
                write!(f, "peer asked to resume at seq {next_expected}, the last sent is {last_sent}")
            }
            AckError::ResumeBehindAck { next_expected, acked } => write!(
                f,
                "peer asked to resume at seq {next_expected} after acknowledging up to {acked}: those are gone"
            ),
        }
    }
}

impl std::error::Error for AckError {}

/// One unacknowledged message: where its copy lies in the store.
#[derive(Clone, Copy, Debug)]
struct Entry {
    offset: usize,
    len: usize,
    /// The first message placed at the front after the tail ran out of room.
    starts_front: bool,
    /// Its send stamp (0: none).
    stamp: u64,
    /// What it is to a call.
    call: CallMark,
}

/// The sender's side of a reliable flow.
///
/// Payloads are copied into a store used like a bip buffer: each one lies
/// contiguous (so a resent frame borrows it whole), and one that does not fit
/// before the store's end goes to its front, leaving the end unused until
/// the messages before it are acknowledged. A message no longer than
/// `max_bytes` therefore always fits once the window is empty.
pub struct SendWindow {
    flow_id: u32,
    store: Box<[u8]>,
    entries: VecDeque<Entry>,
    max_messages: usize,
    /// Highest acknowledged seq (0: none); `entries[i]` has seq `acked + 1 + i`.
    acked: u64,
    next_seq: u64,
    /// Offset of the oldest entry (when there is one).
    head: usize,
    /// Where the next payload goes.
    tail: usize,
    /// Live bytes run from `head` towards the end, then from 0 to `tail`.
    wrapped: bool,
    in_flight_bytes: usize,
    /// One message in flight timed for a round trip (seq, send clock
    /// reading): one clock reading per round trip, not one per message.
    probe: Option<(u64, u64)>,
    /// The last round trip measured, not yet taken.
    rtt_ns: Option<u64>,
}

impl SendWindow {
    /// An empty window for `flow_id`; allocates the store and the message
    /// queue now, so that pushing never allocates.
    pub fn new(flow_id: u32, limits: WindowLimits) -> SendWindow {
        // The round-trip clock decides its source (reading /proc) now,
        // not on the data path.
        crate::clock::init();
        SendWindow {
            flow_id,
            store: vec![0u8; limits.max_bytes].into_boxed_slice(),
            entries: VecDeque::with_capacity(limits.max_messages),
            max_messages: limits.max_messages,
            acked: FIRST_SEQ - 1,
            next_seq: FIRST_SEQ,
            head: 0,
            tail: 0,
            wrapped: false,
            in_flight_bytes: 0,
            probe: None,
            rtt_ns: None,
        }
    }

    /// Numbers `payload`, keeps a copy until it is acknowledged, and returns
    /// the `Data` frame to send now.
    pub fn push(&mut self, payload: &[u8]) -> Result<Frame<'_>, PushError> {
        self.push_stamped(payload, 0)
    }

    /// [`push`](Self::push) with the message's send stamp (0: none), which
    /// its frame (and any resend of it) carries.
    pub fn push_stamped(&mut self, payload: &[u8], stamp: u64) -> Result<Frame<'_>, PushError> {
        self.push_call(payload, stamp, CallMark::Plain)
    }

    /// [`push_stamped`](Self::push_stamped) of a call's message: its frame
    /// (and any resend of it) carries `call`.
    pub fn push_call(&mut self, payload: &[u8], stamp: u64, call: CallMark) -> Result<Frame<'_>, PushError> {
        let len = payload.len();
        if len > self.store.len() {
            return Err(PushError::TooLarge { len, max: self.store.len() });
        }
        let full =
            PushError::WindowFull { in_flight_bytes: self.in_flight_bytes, in_flight_messages: self.entries.len() };
        if self.entries.len() >= self.max_messages {
            return Err(full);
        }
        let Some(after) = self.next_seq.checked_add(1) else {
            return Err(PushError::SequenceExhausted);
        };
        let (offset, starts_front) = self.place(len).ok_or(full)?;
        let end = offset + len;
        ringflow_ring::copy::copy_bytes(&mut self.store[offset..end], payload);
        if self.entries.is_empty() {
            self.head = offset;
        }
        self.entries.push_back(Entry { offset, len, starts_front, stamp, call });
        self.wrapped |= starts_front;
        self.tail = end;
        self.in_flight_bytes += len;
        let seq = self.next_seq;
        self.next_seq = after;
        if self.probe.is_none() {
            self.probe = Some((seq, crate::clock::now()));
        }
        Ok(Frame::Data { flow_id: self.flow_id, seq, stamp, call, payload: &self.store[offset..end] })
    }

    /// Where a payload of `len` bytes can go, if anywhere.
    fn place(&self, len: usize) -> Option<(usize, bool)> {
        if self.entries.is_empty() {
            return Some((0, false));
        }
        if self.wrapped {
            // Free: [tail, head).
            return (len <= self.head - self.tail).then_some((self.tail, false));
        }
        // Free: [tail, end) and [0, head).
        if len <= self.store.len() - self.tail {
            Some((self.tail, false))
        } else if len <= self.head {
            Some((0, true))
        } else {
            None
        }
    }

    /// Frees every message up to and including `cumulative` and returns how
    /// many were freed. An ack at or below an earlier one frees nothing.
    pub fn on_ack(&mut self, cumulative: u64) -> Result<usize, AckError> {
        let last_sent = self.last_sent();
        if cumulative > last_sent {
            return Err(AckError::AheadOfSent { ack: cumulative, last_sent });
        }
        let mut freed = 0;
        while self.acked < cumulative {
            self.pop_front();
            self.acked += 1;
            freed += 1;
        }
        if let Some((seq, at)) = self.probe {
            if seq <= cumulative {
                self.probe = None;
                self.rtt_ns = crate::clock::elapsed_ns(at, crate::clock::now());
            }
        }
        Ok(freed)
    }

    /// The round trip last measured, if one completed since the last call:
    /// a timed message's departure to the acknowledgement that it was
    /// consumed (so it includes the receiver's acknowledgement delay).
    pub fn take_rtt_ns(&mut self) -> Option<u64> {
        self.rtt_ns.take()
    }

    fn pop_front(&mut self) {
        let Some(entry) = self.entries.pop_front() else {
            return;
        };
        self.in_flight_bytes -= entry.len;
        match self.entries.front() {
            None => (self.head, self.tail, self.wrapped) = (0, 0, false),
            Some(next) => {
                if next.starts_front {
                    self.wrapped = false;
                }
                self.head = next.offset;
            }
        }
    }

    /// The frames to resend after a reconnect, from the receiver's resume
    /// point on. Messages before it stay in the window until acknowledged:
    /// received is not yet consumed.
    pub fn resume_from(&self, next_expected: u64) -> Result<Resend<'_>, AckError> {
        if next_expected > self.next_seq {
            return Err(AckError::ResumeAheadOfSent { next_expected, last_sent: self.last_sent() });
        }
        if next_expected <= self.acked {
            return Err(AckError::ResumeBehindAck { next_expected, acked: self.acked });
        }
        let skip = usize::try_from(next_expected - self.acked - 1).unwrap_or(usize::MAX).min(self.entries.len());
        Ok(Resend {
            flow_id: self.flow_id,
            seq: next_expected,
            store: &self.store,
            entries: self.entries.range(skip..),
        })
    }

    /// Every unacknowledged message, oldest first (a resend that does not
    /// wait for the receiver's resume point; its sequencer drops duplicates).
    pub fn unacked(&self) -> Resend<'_> {
        Resend { flow_id: self.flow_id, seq: self.acked + 1, store: &self.store, entries: self.entries.range(..) }
    }

    /// The `Close` frame announcing the last message sent.
    pub fn close_frame(&self) -> Frame<'static> {
        Frame::Close { flow_id: self.flow_id, last_seq: self.last_sent() }
    }

    /// The flow this window numbers.
    pub fn flow_id(&self) -> u32 {
        self.flow_id
    }

    /// The sequence number the next push gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last sequence number pushed (0: none).
    pub fn last_sent(&self) -> u64 {
        self.next_seq - 1
    }

    /// The highest acknowledged sequence number (0: none).
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Messages awaiting acknowledgement.
    pub fn in_flight_messages(&self) -> usize {
        self.entries.len()
    }

    /// Payload bytes awaiting acknowledgement.
    pub fn in_flight_bytes(&self) -> usize {
        self.in_flight_bytes
    }

    /// Whether the receiver has consumed everything sent (what a lingering
    /// `dealloc` waits for).
    pub fn is_drained(&self) -> bool {
        self.entries.is_empty()
    }
}

impl fmt::Debug for SendWindow {
    /// The counters, not the stored payloads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendWindow")
            .field("flow_id", &self.flow_id)
            .field("acked", &self.acked)
            .field("next_seq", &self.next_seq)
            .field("in_flight_messages", &self.entries.len())
            .field("in_flight_bytes", &self.in_flight_bytes)
            .field("max_bytes", &self.store.len())
            .field("max_messages", &self.max_messages)
            .finish()
    }
}

/// Frames to resend, oldest first, borrowing payloads from the window.
#[derive(Clone, Debug)]
pub struct Resend<'a> {
    flow_id: u32,
    seq: u64,
    store: &'a [u8],
    entries: vec_deque::Iter<'a, Entry>,
}

impl<'a> Iterator for Resend<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let entry = self.entries.next()?;
        let seq = self.seq;
        self.seq += 1;
        let payload = self.store.get(entry.offset..entry.offset + entry.len).unwrap_or_default();
        Some(Frame::Data { flow_id: self.flow_id, seq, stamp: entry.stamp, call: entry.call, payload })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for Resend<'_> {}
