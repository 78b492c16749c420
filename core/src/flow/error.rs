//! The errors of the public API: one enum per operation, a distinct variant
//! for each distinct cause, so a caller can match on what happened (nobody
//! listening is not "permission denied" is not "timed out").

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::ConfigError;
use crate::control::{DirError, NameError, SendError as ControlSendError};
use crate::engine::EngineError;
use crate::flow::handshake::Refusal;
use crate::flow::{FlowSetupError, QosError};
use ringflow_ring::Corrupt;

/// What a peer corrupted: the one payload of every `CorruptPeer` variant
/// (send, receive, alloc). The flow (or the setup) is unusable.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// A word of the flow's shared memory (a ring or pool index, a frame
    /// header, a descriptor's position) breaks its invariant.
    Memory(Corrupt),
    /// A frame the ring accepted that this flow never allows: unknown
    /// flags, a length beyond the inline size or the granted `max_msg`, a
    /// descriptor count out of range, a ring that claims it lapped.
    Frame(String),
    /// The control stream or a handshake (with the listener, a host
    /// engine, or a remote engine) broke the protocol.
    Protocol(String),
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::Memory(c) => write!(f, "shared memory: {c}"),
            Corruption::Frame(what) => write!(f, "frame outside what the flow allows: {what}"),
            Corruption::Protocol(what) => write!(f, "protocol: {what}"),
        }
    }
}

impl std::error::Error for Corruption {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Corruption::Memory(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Corrupt> for Corruption {
    fn from(c: Corrupt) -> Self {
        Corruption::Memory(c)
    }
}

/// Why `Listener::bind` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BindError {
    /// The name is empty, too long, or holds a path separator.
    InvalidName(NameError),
    /// A live listener has this name.
    InUse {
        /// The name.
        name: String,
    },
    /// The per-user runtime directory is unusable (wrong owner, mode).
    RuntimeDir(DirError),
    /// The name's socket path (runtime directory and name) is longer than
    /// a Unix socket address holds (`len` bytes, at most `max`).
    PathTooLong {
        /// The socket path that does not fit.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The most a Unix socket address holds.
        max: usize,
    },
    /// `serve_host` on an engine in invoker mode: such an engine runs only
    /// inside its application's calls and cannot serve other processes.
    InvokerEngine,
    /// The thread that serves the bound name (`serve_host`) could not be
    /// started.
    Spawn(io::Error),
    /// No permission to create the socket.
    PermissionDenied(io::Error),
    /// Another system error.
    Io(io::Error),
}

/// Why `Flow::alloc` failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum AllocError {
    /// The name is empty, too long, or holds a path separator.
    InvalidName(NameError),
    /// The requested QoS is out of range.
    InvalidQos(QosError),
    /// Nobody listens under this name.
    NotFound {
        /// The name looked up (in the runtime directory, then in `net.peers`).
        name: String,
        /// The runtime directory it was looked up in on this host; `None`
        /// when another host's engine looked (`name@host:port`), in a
        /// directory of its own.
        dir: Option<PathBuf>,
    },
    /// A remote flow's engine could not be reached (no engine listens at
    /// that address, or the network failed): distinct from a name nobody
    /// listens on over there. (Through a host engine, whose socket errors
    /// are not this process's, it is [`RemoteUnreachable`](Self::RemoteUnreachable).)
    EngineUnreachable {
        /// The engine's address, as dialled.
        addr: String,
        /// Why the connection failed.
        source: io::Error,
    },
    /// A host engine (`ringflow engine`) could not reach the engine at
    /// `addr`; `reported` is its own account of why.
    RemoteUnreachable {
        /// The far engine's address, as the host engine dialled it.
        addr: String,
        /// The host engine's account of the failure.
        reported: String,
    },
    /// A remote target that is not `name@host:port`.
    InvalidTarget {
        /// The target as given.
        target: String,
    },
    /// The host of `name@host:port` is well formed but does not resolve to
    /// an address (DNS has no such name, or the resolver failed): not a
    /// syntax error.
    UnresolvedHost {
        /// The host as given (without the port).
        host: String,
        /// The resolver's account of the failure.
        reason: String,
    },
    /// The listener's socket or policy does not admit this user.
    PermissionDenied,
    /// The deadline passed before the listener accepted.
    TimedOut,
    /// `Deadline::Now` and the flow could not be set up at once.
    WouldBlock,
    /// The listener refused for another reason (limits, version).
    Refused(Refusal),
    /// The listener (or an engine on the way) broke the protocol or sent
    /// nonsense.
    CorruptPeer(Corruption),
    /// The listener hung up during setup.
    PeerGone,
    /// Out of memory, descriptors, or another limit.
    ResourceLimit(io::Error),
    /// The per-user runtime directory is unusable.
    RuntimeDir(DirError),
    /// The flow's shared memory could not be made.
    Memory(FlowSetupError),
    /// The name's socket path (runtime directory and name) is longer than
    /// a Unix socket address holds (`len` bytes, at most `max`).
    PathTooLong {
        /// The socket path that does not fit.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The most a Unix socket address holds.
        max: usize,
    },
    /// This side could not send a handshake packet as it was made (a bug
    /// in ringflow, never the peer's doing).
    ControlSend(ControlSendError),
    /// The remote engine is at its limit of opening flows: try again later.
    RemoteBusy,
    /// The remote engine is shutting down and opens no more flows.
    RemoteShuttingDown,
    /// The remote engine could not set the flow up for want of a resource
    /// (descriptors, memory, threads): the name may well be bound there.
    /// `errno` is the cause the remote engine reported (0: unknown).
    RemoteResourceLimit {
        /// The remote engine's errno (0: unknown).
        errno: i32,
    },
    /// This process's engine (or the host engine) is shutting down and
    /// opens no more flows.
    EngineShuttingDown,
    /// The engine's network is not running (it failed to start).
    EngineNetworkDown,
    /// The engine at `addr` and this one did not agree to talk: their keys
    /// (`net.key_file`) differ, only one of them has one, or they share no
    /// protocol version (`reason` says which).
    EngineRefused {
        /// The remote engine's address, as dialled.
        addr: String,
        /// Why the hello failed.
        reason: crate::wire::RejectReason,
    },
    /// The process's embedded engine, started on the first remote alloc,
    /// did not start (every later remote alloc of the process says so too).
    EngineNotStarted(Arc<EngineError>),
    /// The engine configuration (needed for a remote flow or to look a name
    /// up in `net.peers`) could not be read.
    Config(Arc<ConfigError>),
    /// The host engine failed the open for a reason it could only describe
    /// (`message` is its text).
    HostEngine {
        /// The host engine's text.
        message: String,
    },
    /// The request to the host engine could not be sent.
    HostRequest(Box<SendError>),
    /// The host engine's answer could not be received.
    HostAnswer(Box<RecvError>),
    /// Another system error.
    Io(io::Error),
}

/// Why `Listener::accept` failed. A connecting
/// peer that is refused (permissions) or breaks the handshake does not end
/// the accept: it is counted and the listener waits for the next one.
#[derive(Debug)]
#[non_exhaustive]
pub enum AcceptError {
    /// The deadline passed.
    TimedOut,
    /// `Deadline::Now` and nobody was waiting.
    WouldBlock,
    /// Out of descriptors or memory.
    ResourceLimit(io::Error),
    /// The memory supplied for the flow ([`ListenerOptions::memory`](crate::flow::listener::ListenerOptions::memory))
    /// was refused (too small for the granted QoS, already laid out) or
    /// could not be made; the allocating side was refused.
    Memory(FlowSetupError),
    /// Another system error.
    Io(io::Error),
}

/// Why a send failed. The message was not sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// `try_` form, or a deadline of now: the ring is full.
    WouldBlock,
    /// The deadline passed while the ring stayed full.
    TimedOut,
    /// Lossy QoS: the ring was full, the message was dropped (counted).
    Full,
    /// The message is larger than the flow's granted maximum.
    TooLarge {
        /// The message's length in bytes.
        len: usize,
        /// The flow's granted maximum (`Qos::max_msg`).
        max: usize,
    },
    /// More descriptors than one message can carry (`max` is 0 on a flow
    /// to another host: descriptors cannot leave their host).
    TooManyFds {
        /// Descriptors offered.
        count: usize,
        /// The most one message carries.
        max: usize,
    },
    /// The peer closed the flow (deallocated); nothing more can be sent.
    Closed,
    /// The peer process died. `delivered` of the messages sent were read.
    PeerGone {
        /// Messages of this side that the peer read before it died.
        delivered: u64,
    },
    /// The peer corrupted the flow's shared memory.
    CorruptPeer(Corruption),
    /// Waiting for room failed: a `futex` or `membarrier` call.
    Wait(io::Error),
    /// The control socket failed.
    Io(io::Error),
}

/// Why a receive failed. Unless the variant says otherwise, no message was
/// consumed.
#[derive(Debug)]
#[non_exhaustive]
pub enum RecvError {
    /// `try_` form, or a deadline of now: nothing to read.
    WouldBlock,
    /// The deadline passed with nothing to read.
    TimedOut,
    /// The buffer is smaller than the message, which stays in the flow:
    /// retry with at least `needed` bytes.
    TooSmall {
        /// The message's length: a buffer this large receives it.
        needed: usize,
    },
    /// The message carries `needed` file descriptors and fewer slots were
    /// offered (or a form without slots was used). It stays in the flow.
    FdSlots {
        /// The descriptors the message carries.
        needed: usize,
    },
    /// The next message is part of a call (a request or a reply: sent with
    /// `call`, `reply` or `send_part`): it stays in the flow; receive it
    /// with `receive_request` or `receive_more`.
    CallMessage {
        /// The call message's length in bytes.
        len: usize,
    },
    /// End of flow: the peer deallocated and every message it sent was read.
    Closed,
    /// The peer process died; every message it committed was read first.
    PeerGone {
        /// Messages this side received from the peer in all.
        received: u64,
    },
    /// The peer corrupted the flow's shared memory or control stream.
    CorruptPeer(Corruption),
    /// Waiting for a message failed: a `futex` or `membarrier` call.
    Wait(io::Error),
    /// The control socket failed.
    Io(io::Error),
}

/// Why `Flow::dealloc` ended before the peer had
/// consumed everything.
#[derive(Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeallocError {
    /// `try_dealloc`, or a deadline of now: the flow is closed without
    /// lingering, `unconsumed` messages still unread (the peer can still
    /// read them all).
    WouldBlock {
        /// Messages sent on the flow that the peer had not read.
        unconsumed: u64,
    },
    /// The deadline passed; `unconsumed` messages were still unread.
    TimedOut {
        /// Messages sent on the flow that the peer had not read.
        unconsumed: u64,
    },
    /// The peer closed the flow first, leaving `unconsumed` messages unread.
    Closed {
        /// Messages sent on the flow that the peer had not read.
        unconsumed: u64,
    },
    /// The peer died first, leaving `unconsumed` messages unread.
    PeerGone {
        /// Messages sent on the flow that the peer had not read.
        unconsumed: u64,
    },
    /// A flow to another host: the remote application consumed every
    /// message, but the engine had not handed the flow's end (the wire's
    /// `Close`) to the network when the deadline passed (or, under
    /// [`Deadline::Now`](crate::Deadline::Now), yet). It still will while
    /// this process lives; if the process exits first, the remote side sees
    /// the flow end as its peer's death rather than a close.
    CloseNotSent,
    /// Waiting for the peer to consume failed (`futex_wait` returned the
    /// OS error `errno`), with `unconsumed` messages still unread.
    Wait {
        /// Messages sent on the flow that the peer had not read.
        unconsumed: u64,
        /// The OS error number of the failed wait.
        errno: i32,
    },
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::InvalidName(e) => write!(f, "invalid flow name: {e}"),
            BindError::InUse { name } => write!(f, "name {name:?} is bound by a live listener"),
            BindError::RuntimeDir(e) => write!(f, "runtime directory: {e}"),
            BindError::PathTooLong { path, len, max } => write!(
                f,
                "socket path {} is {len} bytes long, the limit is {max} (use a shorter runtime directory or name)",
                path.display()
            ),
            BindError::InvokerEngine => f.write_str(
                "an invoker-mode engine runs only inside its application and cannot serve the host; use \
                 engine.mode = \"dedicated\"",
            ),
            BindError::Spawn(e) => write!(f, "cannot start the thread that serves the name: {e}"),
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
            AllocError::NotFound { name, dir: Some(dir) } => write!(
                f,
                "nobody listens on {name:?} in {} (a listener in another runtime directory, \
                 RINGFLOW_RUNTIME_DIR, is not seen)",
                dir.display()
            ),
            AllocError::NotFound { name, dir: None } => write!(f, "nobody listens on {name:?} on that host"),
            AllocError::UnresolvedHost { host, reason } => write!(f, "host {host:?} does not resolve: {reason}"),
            AllocError::EngineUnreachable { addr, source } => write!(f, "no engine reachable at {addr}: {source}"),
            AllocError::RemoteUnreachable { addr, reported } => {
                write!(f, "the host engine could not reach the engine at {addr}: {reported}")
            }
            AllocError::InvalidTarget { target } => write!(f, "{target:?} is not name@host:port"),
            AllocError::PermissionDenied => f.write_str("permission denied by the listener"),
            AllocError::EngineRefused { addr, reason } => {
                write!(f, "the engine at {addr} and this one refused each other: {reason}")
            }
            AllocError::TimedOut => f.write_str("timed out waiting for the listener to accept"),
            AllocError::WouldBlock => f.write_str("the flow could not be set up without waiting"),
            AllocError::Refused(r) => write!(f, "listener refused: {r}"),
            AllocError::CorruptPeer(what) => write!(f, "listener broke the protocol: {what}"),
            AllocError::PeerGone => f.write_str("listener hung up during setup"),
            AllocError::ResourceLimit(e) => write!(f, "resource limit: {e}"),
            AllocError::RuntimeDir(e) => write!(f, "runtime directory: {e}"),
            AllocError::Memory(e) => write!(f, "{e}"),
            AllocError::PathTooLong { path, len, max } => write!(
                f,
                "socket path {} is {len} bytes long, the limit is {max} (use a shorter runtime directory or name)",
                path.display()
            ),
            AllocError::ControlSend(e) => write!(f, "handshake packet not sent (a bug in ringflow): {e}"),
            AllocError::RemoteBusy => f.write_str("the remote engine cannot open the flow now: try again later"),
            AllocError::RemoteShuttingDown => f.write_str("the remote engine is shutting down"),
            AllocError::RemoteResourceLimit { errno: 0 } => {
                f.write_str("the remote engine ran out of a resource setting the flow up")
            }
            AllocError::RemoteResourceLimit { errno } => write!(
                f,
                "the remote engine ran out of a resource setting the flow up: {}",
                io::Error::from_raw_os_error(*errno)
            ),
            AllocError::EngineShuttingDown => f.write_str("the engine is shutting down"),
            AllocError::EngineNetworkDown => f.write_str("the engine's network is not running"),
            AllocError::EngineNotStarted(e) => write!(f, "the embedded engine did not start: {e}"),
            AllocError::Config(e) => write!(f, "the engine configuration could not be read: {e}"),
            AllocError::HostEngine { message } => write!(f, "the host engine failed the open: {message}"),
            AllocError::HostRequest(e) => write!(f, "request to the host engine not sent: {e}"),
            AllocError::HostAnswer(e) => write!(f, "the host engine's answer not received: {e}"),
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
            SendError::Wait(e) => write!(f, "waiting for room in the flow (futex or membarrier): {e}"),
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
            RecvError::CallMessage { len } => {
                write!(f, "the next message ({len} bytes) is part of a call: receive it with receive_more")
            }
            RecvError::Closed => f.write_str("end of flow"),
            RecvError::PeerGone { received } => write!(f, "the peer died; all {received} messages it sent were read"),
            RecvError::CorruptPeer(c) => write!(f, "the peer corrupted the flow: {c}"),
            RecvError::Wait(e) => write!(f, "waiting for a message (futex or membarrier): {e}"),
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
            DeallocError::CloseNotSent => f.write_str(
                "every message was consumed, but the engine had not yet sent the end of the flow to the other host",
            ),
            DeallocError::Wait { unconsumed, errno } => write!(
                f,
                "waiting for the peer to consume (futex): {}; {unconsumed} messages not yet consumed",
                io::Error::from_raw_os_error(*errno)
            ),
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
    BindError { InvalidName, RuntimeDir, Spawn, PermissionDenied, Io }
    AcceptError { ResourceLimit, Memory, Io }
    SendError { CorruptPeer, Wait, Io }
    RecvError { CorruptPeer, Wait, Io }
    DeallocError {}
}

impl std::error::Error for AllocError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AllocError::InvalidName(e) => Some(e),
            AllocError::InvalidQos(e) => Some(e),
            AllocError::EngineUnreachable { source, .. } => Some(source),
            AllocError::Refused(r) => Some(r),
            AllocError::CorruptPeer(c) => Some(c),
            AllocError::ResourceLimit(e) | AllocError::Io(e) => Some(e),
            AllocError::RuntimeDir(e) => Some(e),
            AllocError::Memory(e) => Some(e),
            AllocError::ControlSend(e) => Some(e),
            AllocError::EngineNotStarted(e) => Some(&**e),
            AllocError::Config(e) => Some(&**e),
            AllocError::HostRequest(e) => Some(&**e),
            AllocError::HostAnswer(e) => Some(&**e),
            AllocError::NotFound { .. }
            | AllocError::RemoteUnreachable { .. }
            | AllocError::InvalidTarget { .. }
            | AllocError::UnresolvedHost { .. }
            | AllocError::PermissionDenied
            | AllocError::TimedOut
            | AllocError::WouldBlock
            | AllocError::PeerGone
            | AllocError::PathTooLong { .. }
            | AllocError::RemoteBusy
            | AllocError::RemoteShuttingDown
            | AllocError::RemoteResourceLimit { .. }
            | AllocError::EngineShuttingDown
            | AllocError::EngineNetworkDown
            | AllocError::EngineRefused { .. }
            | AllocError::HostEngine { .. } => None,
        }
    }
}

/// Whether an OS error means a resource limit (descriptors, memory).
pub(crate) fn is_resource_limit(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ENOBUFS | libc::ENOSPC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    fn os(errno: i32) -> io::Error {
        io::Error::from_raw_os_error(errno)
    }

    /// The OS error a variant carries comes back from `source()`.
    fn source_errno(e: &dyn std::error::Error) -> Option<i32> {
        e.source()?.downcast_ref::<io::Error>()?.raw_os_error()
    }

    #[test]
    fn a_wait_failure_is_not_a_control_socket_failure() {
        let send = SendError::Wait(os(libc::EINVAL)).to_string();
        assert!(send.contains("futex") && !send.contains("control socket"), "{send}");
        let recv = RecvError::Wait(os(libc::EINVAL)).to_string();
        assert!(recv.contains("futex") && !recv.contains("control socket"), "{recv}");
        assert!(SendError::Io(os(libc::EPIPE)).to_string().starts_with("control socket"));
        assert!(RecvError::Io(os(libc::EPIPE)).to_string().starts_with("control socket"));
        assert_eq!(source_errno(&SendError::Wait(os(libc::EINVAL))), Some(libc::EINVAL));
        assert_eq!(source_errno(&RecvError::Wait(os(libc::EINTR))), Some(libc::EINTR));
        assert_eq!(source_errno(&RecvError::Io(os(libc::EBADF))), Some(libc::EBADF));
        let d = DeallocError::Wait { unconsumed: 3, errno: libc::EINVAL };
        let text = d.to_string();
        assert!(text.contains("futex") && text.contains('3'), "{text}");
        assert!(text.contains(&os(libc::EINVAL).to_string()), "{text}");
    }

    #[test]
    fn one_corruption_type_for_send_receive_and_alloc() {
        let c = Corruption::Memory(Corrupt { offset: 64, value: 0xdead, what: "head beyond tail" });
        for e in [
            &SendError::CorruptPeer(c.clone()) as &dyn std::error::Error,
            &RecvError::CorruptPeer(c.clone()),
            &AllocError::CorruptPeer(c.clone()),
        ] {
            assert!(e.to_string().contains("head beyond tail"), "{e}");
            let inner = e.source().and_then(|s| s.downcast_ref::<Corruption>()).expect("the corruption");
            assert_eq!(inner, &c);
            // And the corruption's own source is the ring's report.
            let ring = inner.source().and_then(|s| s.downcast_ref::<Corrupt>()).expect("the ring's report");
            assert_eq!(ring.offset, 64);
        }
        assert!(Corruption::Frame("unknown frame flags 0x80".into()).to_string().contains("frame"));
        assert!(Corruption::Protocol("oversized control packet".into()).to_string().contains("protocol"));
        assert!(Corruption::Frame(String::new()).source().is_none());
        assert_eq!(
            Corruption::from(Corrupt { offset: 1, value: 2, what: "x" }),
            Corruption::Memory(Corrupt { offset: 1, value: 2, what: "x" })
        );
    }

    #[test]
    fn each_new_alloc_variant_says_its_cause_and_keeps_its_source() {
        let long = PathBuf::from(format!("/run/{}", "d".repeat(120)));
        let e = AllocError::PathTooLong { path: long.clone(), len: 125, max: 107 };
        assert!(e.to_string().contains("125 bytes") && e.to_string().contains(&*long.to_string_lossy()), "{e}");
        assert!(e.source().is_none());
        let e = BindError::PathTooLong { path: long, len: 125, max: 107 };
        assert!(e.to_string().contains("the limit is 107"), "{e}");
        assert!(BindError::InvokerEngine.to_string().contains("invoker"));

        let e = AllocError::ControlSend(ControlSendError::TooLarge { len: 9 });
        assert!(e.to_string().contains("9 bytes"), "{e}");
        assert!(e.source().and_then(|s| s.downcast_ref::<ControlSendError>()).is_some());

        assert!(AllocError::RemoteBusy.to_string().contains("try again"));
        assert!(AllocError::RemoteShuttingDown.to_string().contains("remote engine is shutting down"));
        assert_eq!(AllocError::EngineShuttingDown.to_string(), "the engine is shutting down");
        assert!(AllocError::EngineNetworkDown.to_string().contains("network"));

        let engine = Arc::new(EngineError::Pin { core: 999 });
        let e = AllocError::EngineNotStarted(Arc::clone(&engine));
        assert!(e.to_string().starts_with("the embedded engine did not start: cannot pin"), "{e}");
        assert!(matches!(
            e.source().and_then(|s| s.downcast_ref::<EngineError>()),
            Some(EngineError::Pin { core: 999 })
        ));

        let config = crate::config::EngineConfig::from_toml_str("engine = 5").expect_err("not a table");
        let e = AllocError::Config(Arc::new(config));
        assert!(e.to_string().starts_with("the engine configuration could not be read"), "{e}");
        assert!(e.source().and_then(|s| s.downcast_ref::<ConfigError>()).is_some());

        let e = AllocError::HostEngine { message: "no listener thread".into() };
        assert!(e.to_string().contains("host engine") && e.to_string().contains("no listener thread"), "{e}");
        let e = AllocError::RemoteUnreachable { addr: "10.1.1.1:7".into(), reported: "timed out".into() };
        assert!(e.to_string().contains("10.1.1.1:7") && e.to_string().contains("timed out"), "{e}");
        let e = AllocError::HostRequest(Box::new(SendError::Wait(os(libc::EINVAL))));
        assert!(e.to_string().contains("host engine") && e.to_string().contains("futex"), "{e}");
        assert!(e.source().and_then(|s| s.downcast_ref::<SendError>()).is_some());
        let e = AllocError::HostAnswer(Box::new(RecvError::Io(os(libc::EBADF))));
        assert!(e.source().and_then(|s| s.downcast_ref::<RecvError>()).is_some());
        let e = AllocError::EngineUnreachable { addr: "a".into(), source: os(libc::ECONNREFUSED) };
        assert_eq!(source_errno(&e), Some(libc::ECONNREFUSED));
        assert!(AllocError::Refused(Refusal::Version).source().is_some());
    }
}
