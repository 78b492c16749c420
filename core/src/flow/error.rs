//! The errors of the public API: one enum per operation, a distinct variant
//! for each distinct cause, so a caller can match on what happened (nobody
//! listening is not "permission denied" is not "timed out").

use std::fmt;
use std::io;

use crate::control::{DirError, NameError};
use crate::flow::handshake::Refusal;
use crate::flow::{FlowSetupError, QosError};
use ringflow_ring::Corrupt;

/// Why `Listener::bind` failed.
#[derive(Debug)]
pub enum BindError {
    /// The name is empty, too long, or holds a path separator.
    InvalidName(NameError),
    /// A live listener has this name.
    InUse { name: String },
    /// The per-user runtime directory is unusable (wrong owner, mode).
    RuntimeDir(DirError),
    /// No permission to create the socket.
    PermissionDenied(io::Error),
    /// Another system error.
    Io(io::Error),
}

/// Why `Flow::alloc` failed.
#[derive(Debug)]
pub enum AllocError {
    /// The name is empty, too long, or holds a path separator.
    InvalidName(NameError),
    /// The requested QoS is out of range.
    InvalidQos(QosError),
    /// Nobody listens under this name.
    NotFound { name: String },
    /// A remote flow's engine could not be reached (no engine listens at
    /// that address, or the network failed): distinct from a name nobody
    /// listens on over there.
    EngineUnreachable { addr: String, source: io::Error },
    /// A remote target that is not `name@host:port`.
    InvalidTarget { target: String },
    /// The listener's socket or policy does not admit this user.
    PermissionDenied,
    /// The deadline passed before the listener accepted.
    TimedOut,
    /// `Deadline::Now` and the flow could not be set up at once.
    WouldBlock,
    /// The listener refused for another reason (limits, version).
    Refused(Refusal),
    /// The listener broke the protocol or sent nonsense.
    CorruptPeer(String),
    /// The listener hung up during setup.
    PeerGone,
    /// Out of memory, descriptors, or another limit.
    ResourceLimit(io::Error),
    /// The per-user runtime directory is unusable.
    RuntimeDir(DirError),
    /// The flow's shared memory could not be made.
    Memory(FlowSetupError),
    /// Another system error.
    Io(io::Error),
}

/// Why `Listener::accept` failed. A connecting
/// peer that is refused (permissions) or breaks the handshake does not end
/// the accept: it is counted and the listener waits for the next one.
#[derive(Debug)]
pub enum AcceptError {
    /// The deadline passed.
    TimedOut,
    /// `Deadline::Now` and nobody was waiting.
    WouldBlock,
    /// Out of descriptors or memory.
    ResourceLimit(io::Error),
    /// The memory supplied for the flow ([`ListenerOptions::memory`](crate::ListenerOptions::memory))
    /// was refused (too small for the granted QoS, already laid out) or
    /// could not be made; the allocating side was refused.
    Memory(FlowSetupError),
    /// Another system error.
    Io(io::Error),
}

/// Why a send failed. The message was not sent.
#[derive(Debug)]
pub enum SendError {
    /// `try_` form, or a deadline of now: the ring is full.
    WouldBlock,
    /// The deadline passed while the ring stayed full.
    TimedOut,
    /// Lossy QoS: the ring was full, the message was dropped (counted).
    Full,
    /// The message is larger than the flow's granted maximum.
    TooLarge { len: usize, max: usize },
    /// More descriptors than one message can carry (`max` is 0 on a flow
    /// to another host: descriptors cannot leave their host).
    TooManyFds { count: usize, max: usize },
    /// The peer closed the flow (deallocated); nothing more can be sent.
    Closed,
    /// The peer process died. `delivered` of the messages sent were read.
    PeerGone { delivered: u64 },
    /// The peer corrupted the flow's shared memory.
    CorruptPeer(Corrupt),
    /// The control socket failed.
    Io(io::Error),
}

/// Why a receive failed. Unless the variant says otherwise, no message was
/// consumed.
#[derive(Debug)]
pub enum RecvError {
    /// `try_` form, or a deadline of now: nothing to read.
    WouldBlock,
    /// The deadline passed with nothing to read.
    TimedOut,
    /// The buffer is smaller than the message, which stays in the flow:
    /// retry with at least `needed` bytes.
    TooSmall { needed: usize },
    /// The message carries `needed` file descriptors and fewer slots were
    /// offered (or a form without slots was used). It stays in the flow.
    FdSlots { needed: usize },
    /// End of flow: the peer deallocated and every message it sent was read.
    Closed,
    /// The peer process died; every message it committed was read first.
    PeerGone { received: u64 },
    /// The peer corrupted the flow's shared memory or control stream.
    CorruptPeer(String),
    /// The control socket failed.
    Io(io::Error),
}

/// Why `Flow::dealloc` ended before the peer had
/// consumed everything.
#[derive(Debug, PartialEq, Eq)]
pub enum DeallocError {
    /// `try_dealloc`, or a deadline of now: the flow is closed without
    /// lingering, `unconsumed` messages still unread (the peer can still
    /// read them all).
    WouldBlock { unconsumed: u64 },
    /// The deadline passed; `unconsumed` messages were still unread.
    TimedOut { unconsumed: u64 },
    /// The peer closed the flow first, leaving `unconsumed` messages unread.
    Closed { unconsumed: u64 },
    /// The peer died first, leaving `unconsumed` messages unread.
    PeerGone { unconsumed: u64 },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::InvalidName(e) => write!(f, "invalid flow name: {e}"),
            BindError::InUse { name } => write!(f, "name {name:?} is bound by a live listener"),
            BindError::RuntimeDir(e) => write!(f, "runtime directory: {e}"),
            BindError::PermissionDenied(e) => write!(f, "permission denied: {e}"),
            BindError::Io(e) => write!(f, "bind: {e}"),
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::InvalidName(e) => write!(f, "invalid flow name: {e}"),
            AllocError::InvalidQos(e) => write!(f, "invalid QoS: {e}"),
            AllocError::NotFound { name } => write!(f, "nobody listens on {name:?}"),
            AllocError::EngineUnreachable { addr, source } => write!(f, "no engine reachable at {addr}: {source}"),
            AllocError::InvalidTarget { target } => write!(f, "{target:?} is not name@host:port"),
            AllocError::PermissionDenied => f.write_str("permission denied by the listener"),
            AllocError::TimedOut => f.write_str("timed out waiting for the listener to accept"),
            AllocError::WouldBlock => f.write_str("the flow could not be set up without waiting"),
            AllocError::Refused(r) => write!(f, "listener refused: {r}"),
            AllocError::CorruptPeer(what) => write!(f, "listener broke the protocol: {what}"),
            AllocError::PeerGone => f.write_str("listener hung up during setup"),
            AllocError::ResourceLimit(e) => write!(f, "resource limit: {e}"),
            AllocError::RuntimeDir(e) => write!(f, "runtime directory: {e}"),
            AllocError::Memory(e) => write!(f, "{e}"),
            AllocError::Io(e) => write!(f, "alloc: {e}"),
        }
    }
}

impl fmt::Display for AcceptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcceptError::TimedOut => f.write_str("timed out waiting for a flow"),
            AcceptError::WouldBlock => f.write_str("no flow is waiting to be accepted"),
            AcceptError::ResourceLimit(e) => write!(f, "resource limit: {e}"),
            AcceptError::Memory(e) => write!(f, "{e}"),
            AcceptError::Io(e) => write!(f, "accept: {e}"),
        }
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::WouldBlock => f.write_str("the flow is full"),
            SendError::TimedOut => f.write_str("timed out waiting for room in the flow"),
            SendError::Full => f.write_str("the flow is full: message dropped (lossy QoS)"),
            SendError::TooLarge { len, max } => write!(f, "message of {len} bytes exceeds the flow's maximum of {max}"),
            SendError::TooManyFds { count, max } => write!(f, "{count} descriptors exceed {max} per message"),
            SendError::Closed => f.write_str("the peer closed the flow"),
            SendError::PeerGone { delivered } => write!(f, "the peer died after reading {delivered} messages"),
            SendError::CorruptPeer(c) => write!(f, "the peer corrupted the flow: {c}"),
            SendError::Io(e) => write!(f, "control socket: {e}"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::WouldBlock => f.write_str("no message waiting"),
            RecvError::TimedOut => f.write_str("timed out waiting for a message"),
            RecvError::TooSmall { needed } => write!(f, "buffer too small: the message needs {needed} bytes"),
            RecvError::FdSlots { needed } => {
                write!(f, "the message carries {needed} descriptors: offer that many slots")
            }
            RecvError::Closed => f.write_str("end of flow"),
            RecvError::PeerGone { received } => write!(f, "the peer died; all {received} messages it sent were read"),
            RecvError::CorruptPeer(what) => write!(f, "the peer corrupted the flow: {what}"),
            RecvError::Io(e) => write!(f, "control socket: {e}"),
        }
    }
}

impl fmt::Display for DeallocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeallocError::WouldBlock { unconsumed } => {
                write!(f, "closed without lingering, {unconsumed} messages not yet consumed by the peer")
            }
            DeallocError::TimedOut { unconsumed } => {
                write!(f, "timed out with {unconsumed} messages not yet consumed by the peer")
            }
            DeallocError::Closed { unconsumed } => {
                write!(f, "the peer closed the flow with {unconsumed} messages unread")
            }
            DeallocError::PeerGone { unconsumed } => {
                write!(f, "the peer died with {unconsumed} messages unread")
            }
        }
    }
}

macro_rules! error_with_sources {
    ($($t:ty { $($v:ident),* })*) => {$(
        impl std::error::Error for $t {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $(Self::$v(e) => Some(e),)*
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }
        }
    )*};
}

error_with_sources! {
    BindError { InvalidName, RuntimeDir, PermissionDenied, Io }
    AllocError { InvalidName, InvalidQos, ResourceLimit, RuntimeDir, Memory, Io }
    AcceptError { ResourceLimit, Memory, Io }
    SendError { CorruptPeer, Io }
    RecvError { Io }
    DeallocError {}
}

/// Whether an OS error means a resource limit (descriptors, memory).
pub(crate) fn is_resource_limit(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS | libc::ENOSPC))
}
