//! Request/reply on a flow (Fluke's reliable IPC): the turn, the frame
//! flags that carry it, the phases of a call and the one error enum of
//! every turn operation ([`CallError`]). The operations themselves are
//! methods of the flow end (`end/call.rs`, `end/turn.rs`).
//!
//! A flow used half-duplex has a turn: whoever holds it sends the next
//! request or reply. The end that allocated the flow holds it first; the
//! accepting end waits for a request. A message that hands the turn over is
//! one or more frames of the sending direction's ring: zero or more pieces
//! ([`FLAG_PART`], sent with `send_part`) and a last frame flagged
//! [`FLAG_TURN`]. No frame is added: the flag rides on the message's own
//! frame, so a call costs what a send and a receive cost (one wake per
//! direction when the peer sleeps, none when it polls).
//!
//! Plain messages (`send` / `recv`) keep flowing in both directions
//! whatever the turn. They never mix with a call's messages: a plain
//! receive that meets a frame of a call is `RecvError::CallMessage` and a
//! call that meets a plain message is [`CallError::PlainMessage`]; either
//! way the message stays in the flow for the receive that fits it.
//!
//! Nothing here must ever trust a flag a peer wrote: a frame that carries
//! both turn flags is corrupt, and this side's turn is its own local state,
//! which comes back only with the last frame of the peer's message,
//! delivered whole (copied out, or handed out in place).

use std::fmt;
use std::io;

use crate::flow::error::Corruption;

/// Frame flag: the last frame of a request or reply; its sender hands the
/// turn over with it.
pub const FLAG_TURN: u8 = 4;
/// Frame flag: a piece of a request or reply; more pieces, and a last frame
/// flagged [`FLAG_TURN`], follow. The turn stays with the sender.
pub const FLAG_PART: u8 = 8;

/// Where a call (or a server's reply and receive) was when it failed. The
/// phases on a flow of one host:
///
/// - [`Ack`](Phase::Ack): from the call until the flow is found fit to send
///   on: this side holds the turn, the peer's process is alive and its
///   receiving side open. Nothing is sent in this phase, and it never
///   waits.
/// - [`Send`](Phase::Send): from there until the frame that hands the turn
///   over (the request's last frame) is committed to the ring: waiting for
///   room in the ring and the bulk pool, passing descriptors. A frame is
///   committed whole or not at all, so only pieces sent before
///   (`send_part`) can have gone: `sent` counts their bytes.
/// - [`Over`](Phase::Over): from that commit until the first frame of the
///   peer's answer is seen. The request is in the peer's ring whole; what
///   the peer did with it is unknown. For a server (`receive_request`,
///   `reply_and_receive`) this is the wait for the next request.
/// - [`Recv`](Phase::Recv): from the first frame of the answer until its
///   last frame (the one that hands the turn back), with its descriptors,
///   is delivered. `received` counts the bytes delivered so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Before anything is sent.
    Ack,
    /// While the request (or reply) is being committed.
    Send,
    /// After it is committed, before the answer begins.
    Over,
    /// While the answer arrives.
    Recv,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Ack => "before sending",
            Phase::Send => "while sending",
            Phase::Over => "after sending, before the answer",
            Phase::Recv => "while receiving the answer",
        })
    }
}

/// Why a call, a reply or a request's receive failed, and in which phase
/// (see [`Phase`]). The partial and bounded outcomes are resumable:
///
/// - [`RecvMoreData`](Self::RecvMoreData), [`RecvMoreRefs`](Self::RecvMoreRefs):
///   the answer goes on where it stopped with `receive_more` (or
///   `receive_more_fds`); nothing is lost.
/// - [`WouldBlock`](Self::WouldBlock), [`TimedOut`](Self::TimedOut): in
///   phase [`Send`](Phase::Send) the turn is still this side's and the last
///   frame was not sent: call again with the same message. In
///   [`Over`](Phase::Over) or [`Recv`](Phase::Recv) the message went
///   whole: wait for the answer with `receive_more` (the bytes delivered so
///   far stay where they were written; give a buffer for the rest).
///
/// The `*Disconnected` variants mean the peer left, closed cleanly or died
/// (the flow is then done for calls): which of the two does not change
/// what the caller knows about its request.
#[derive(Debug)]
#[non_exhaustive]
pub enum CallError {
    /// Out of turn: sending (a call, a reply, a piece) while the peer holds
    /// the turn, or receiving a request or an answer while this side holds
    /// it. Nothing happened.
    NotYourTurn,
    /// The peer left before the call sent anything.
    AckDisconnected,
    /// The peer left while the request was being sent; `sent` bytes of it
    /// (its pieces) were committed, its last frame was not.
    SendDisconnected {
        /// Bytes of the request committed before the peer left.
        sent: usize,
    },
    /// The request was sent whole and the peer left before answering. Its
    /// outcome is unknown: the peer may or may not have acted on it. (For a
    /// server: the client left after the last reply, the usual end.)
    OverDisconnected,
    /// The answer does not fit the buffer: the buffer is full, `received`
    /// bytes of the answer were delivered in all, the rest waits for
    /// `receive_more`.
    RecvMoreData {
        /// Bytes of the answer delivered so far.
        received: usize,
    },
    /// The answer carries more descriptors than the slots offered (or an
    /// in-place receive met descriptors): `received_refs` were delivered,
    /// the rest (and any bytes left, `received` delivered so far) wait for
    /// `receive_more_fds`.
    RecvMoreRefs {
        /// Bytes of the answer delivered so far.
        received: usize,
        /// Descriptors of the answer delivered so far.
        received_refs: usize,
    },
    /// The peer left while its answer was arriving; `received` bytes of it
    /// were delivered (its last frame was not).
    RecvDisconnected {
        /// Bytes of the answer delivered before the peer left.
        received: usize,
    },
    /// The deadline passed in `phase`; `sent` bytes of the outgoing message
    /// and `received` of the answer had gone through. Resumable (see the
    /// enum's docs).
    TimedOut {
        /// The phase the deadline passed in.
        phase: Phase,
        /// Bytes of the outgoing message committed.
        sent: usize,
        /// Bytes of the answer delivered.
        received: usize,
    },
    /// A form that never waits (`try_`, `Deadline::Now`) would have waited
    /// in `phase`. Resumable like [`TimedOut`](Self::TimedOut).
    WouldBlock {
        /// The phase that would have waited.
        phase: Phase,
        /// Bytes of the outgoing message committed.
        sent: usize,
        /// Bytes of the answer delivered.
        received: usize,
    },
    /// Where the answer (or a request) was due, the peer's next message is
    /// a plain one (`send`): it stays in the flow; read it with `recv`, then
    /// go on with `receive_more`.
    PlainMessage {
        /// The plain message's length in bytes.
        len: usize,
    },
    /// The message is larger than the flow's granted maximum. Nothing sent.
    TooLarge {
        /// The message's length in bytes.
        len: usize,
        /// The flow's granted maximum.
        max: usize,
    },
    /// More descriptors than one message can carry. Nothing sent.
    TooManyFds {
        /// Descriptors offered.
        count: usize,
        /// The most one message carries.
        max: usize,
    },
    /// Calls need what this flow lacks: a reliable QoS (a lossy flow may
    /// drop a request or a reply).
    Unsupported {
        /// What the flow lacks.
        reason: &'static str,
    },
    /// The peer corrupted the flow's shared memory or control stream.
    CorruptPeer(Corruption),
    /// Waiting failed: a `futex` or `membarrier` call.
    Wait(io::Error),
    /// The control socket failed.
    Io(io::Error),
}

impl CallError {
    /// The phase the call was in, where the error belongs to one.
    pub fn phase(&self) -> Option<Phase> {
        match self {
            CallError::AckDisconnected => Some(Phase::Ack),
            CallError::SendDisconnected { .. } => Some(Phase::Send),
            CallError::OverDisconnected => Some(Phase::Over),
            CallError::RecvMoreData { .. } | CallError::RecvMoreRefs { .. } | CallError::RecvDisconnected { .. } => {
                Some(Phase::Recv)
            }
            CallError::TimedOut { phase, .. } | CallError::WouldBlock { phase, .. } => Some(*phase),
            _ => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::NotYourTurn => f.write_str("out of turn: the other side holds the flow's turn"),
            CallError::AckDisconnected => f.write_str("the peer left before the call: nothing was sent"),
            CallError::SendDisconnected { sent } => {
                write!(f, "the peer left while the request was sent ({sent} bytes of it went)")
            }
            CallError::OverDisconnected => {
                f.write_str("the peer left after the request was sent whole: its outcome is unknown")
            }
            CallError::RecvMoreData { received } => {
                write!(f, "the answer does not fit: {received} bytes delivered, receive_more for the rest")
            }
            CallError::RecvMoreRefs { received, received_refs } => write!(
                f,
                "the answer carries more descriptors than offered: {received_refs} delivered ({received} bytes), \
                 receive_more_fds for the rest"
            ),
            CallError::RecvDisconnected { received } => {
                write!(f, "the peer left during its answer ({received} bytes of it arrived)")
            }
            CallError::TimedOut { phase, sent, received } => {
                write!(f, "timed out {phase} ({sent} bytes sent, {received} received)")
            }
            CallError::WouldBlock { phase, sent, received } => {
                write!(f, "would block {phase} ({sent} bytes sent, {received} received)")
            }
            CallError::PlainMessage { len } => {
                write!(f, "a plain message of {len} bytes came where a call's message was due: recv it first")
            }
            CallError::TooLarge { len, max } => write!(f, "message of {len} bytes exceeds the flow's maximum of {max}"),
            CallError::TooManyFds { count, max } => write!(f, "{count} descriptors exceed {max} per message"),
            CallError::Unsupported { reason } => write!(f, "calls are not supported on this flow: {reason}"),
            CallError::CorruptPeer(c) => write!(f, "the peer corrupted the flow: {c}"),
            CallError::Wait(e) => write!(f, "waiting (futex or membarrier): {e}"),
            CallError::Io(e) => write!(f, "control socket: {e}"),
        }
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::CorruptPeer(c) => Some(c),
            CallError::Wait(e) | CallError::Io(e) => Some(e),
            _ => None,
        }
    }
}
