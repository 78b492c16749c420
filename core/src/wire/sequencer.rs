//! The receiver's side of a flow across engines: the [`RecvSequencer`] takes
//! `Data` frames in sequence order, drops duplicates (resends after a
//! reconnect), and for a reliable flow refuses a gap, since TCP loses
//! nothing and a gap means the peer is wrong; for a lossy flow (UDP) it
//! counts the loss instead. It must never deliver a message twice or out of
//! order, and never acknowledge what it has not received.

use std::fmt;

use super::frame::Frame;
use super::reliable::FIRST_SEQ;

/// What to do with an arriving `Data` frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// The next message: deliver it.
    InOrder,
    /// Already delivered (a resend), or late after a loss: drop it.
    Stale,
    /// Lossy flows only: deliver it; `missed` messages before it were lost.
    AfterGap {
        /// Messages skipped.
        missed: u64,
    },
}

/// Why the receiver refused a sequence number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceError {
    /// Reliable flows only: a message is missing before this one.
    Gap {
        /// The sequence number expected.
        expected: u64,
        /// The one that arrived.
        got: u64,
    },
    /// The peer used the last sequence number there is.
    Exhausted,
    /// An ack for messages not yet received.
    AckAheadOfReceived {
        /// The ack asked for.
        ack: u64,
        /// The last sequence number received.
        received: u64,
    },
    /// A `Close` whose last sequence number disagrees with what arrived.
    CloseMismatch {
        /// The sender's last sequence number.
        last_seq: u64,
        /// The last one received.
        received: u64,
    },
}

impl fmt::Display for SequenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SequenceError::Gap { expected, got } => {
                write!(f, "reliable flow skipped messages: expected seq {expected}, got {got}")
            }
            SequenceError::Exhausted => f.write_str("peer used the last sequence number"),
            SequenceError::AckAheadOfReceived { ack, received } => {
                write!(f, "cannot acknowledge seq {ack}: only {received} received")
            }
            SequenceError::CloseMismatch { last_seq, received } => {
                write!(f, "peer closed after seq {last_seq}, but {received} were received")
            }
        }
    }
}

impl std::error::Error for SequenceError {}

/// The receiver's side of a flow: in order, no duplicates; for a reliable
/// flow a gap is an error (TCP lost nothing, so the peer is wrong), for a
/// lossy one it is counted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecvSequencer {
    flow_id: u32,
    next_expected: u64,
    lossy: bool,
    lost: u64,
}

impl RecvSequencer {
    /// For a reliable flow (over TCP).
    pub const fn reliable(flow_id: u32) -> RecvSequencer {
        RecvSequencer { flow_id, next_expected: FIRST_SEQ, lossy: false, lost: 0 }
    }

    /// For a lossy flow (over UDP). Reordered datagrams count as lost and
    /// are dropped when they arrive late.
    pub const fn lossy(flow_id: u32) -> RecvSequencer {
        RecvSequencer { flow_id, next_expected: FIRST_SEQ, lossy: true, lost: 0 }
    }

    /// Decides what to do with `Data { seq }`.
    pub fn accept(&mut self, seq: u64) -> Result<Delivery, SequenceError> {
        let expected = self.next_expected;
        if seq < expected {
            return Ok(Delivery::Stale);
        }
        if seq > expected && !self.lossy {
            return Err(SequenceError::Gap { expected, got: seq });
        }
        self.next_expected = seq.checked_add(1).ok_or(SequenceError::Exhausted)?;
        let missed = seq - expected;
        if missed == 0 {
            return Ok(Delivery::InOrder);
        }
        self.lost = self.lost.saturating_add(missed);
        Ok(Delivery::AfterGap { missed })
    }

    /// Checks the sender's `Close { last_seq }` against what arrived. A lossy
    /// flow counts messages lost at the end; a reliable one must have them all.
    pub fn on_close(&mut self, last_seq: u64) -> Result<(), SequenceError> {
        let received = self.received();
        if last_seq == received {
            return Ok(());
        }
        if self.lossy && last_seq > received {
            self.lost = self.lost.saturating_add(last_seq - received);
            self.next_expected = last_seq.saturating_add(1);
            return Ok(());
        }
        Err(SequenceError::CloseMismatch { last_seq, received })
    }

    /// The `Ack` telling the sender that everything up to `consumed_through`
    /// was consumed (by the local application, not merely received).
    pub fn ack_frame(&self, consumed_through: u64) -> Result<Frame<'static>, SequenceError> {
        let received = self.received();
        if consumed_through > received {
            return Err(SequenceError::AckAheadOfReceived { ack: consumed_through, received });
        }
        Ok(Frame::Ack { flow_id: self.flow_id, cumulative_seq: consumed_through })
    }

    /// The `Resume` to send on a new connection.
    pub fn resume_frame(&self) -> Frame<'static> {
        Frame::Resume { flow_id: self.flow_id, next_expected_seq: self.next_expected }
    }

    /// The flow this sequencer orders.
    pub fn flow_id(&self) -> u32 {
        self.flow_id
    }

    /// The first sequence number not received yet.
    pub fn next_expected(&self) -> u64 {
        self.next_expected
    }

    /// The last sequence number received (0: none).
    pub fn received(&self) -> u64 {
        self.next_expected - 1
    }

    /// Messages a lossy flow lost (always 0 for a reliable one).
    pub fn lost(&self) -> u64 {
        self.lost
    }
}
