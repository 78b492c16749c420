//! Messages on a control connection: one `send` is one `recv` (SEQPACKET
//! keeps boundaries), optionally carrying descriptors (SCM_RIGHTS). They
//! must never allocate, never raise SIGPIPE, and never leak a received
//! descriptor.
//!
//! Descriptors only arrive into slots the receiver offers: the kernel closes
//! any that do not fit and reports `FdsTruncated`, and the message is gone.
//! So a receiver must know how many to expect before it receives; the flow
//! layer reads the count from shared memory first.

use super::cmsg::{CmsgBuf, SCM_MAX_FD};
use super::conn::ControlConn;
use super::ready::{self, Readiness};
use crate::wait::Deadline;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// What one `recv` delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Message bytes, at the start of the buffer.
    pub len: usize,
    /// Descriptors, in the first `nfds` slots.
    pub nfds: usize,
}

/// Why sending a message failed. Nothing was sent.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// Messages must carry at least one byte: an empty one would read as a
    /// hang-up at the other end.
    Empty,
    /// More descriptors than one message may carry.
    TooManyFds {
        /// Descriptors offered.
        count: usize,
        /// The most one message carries.
        max: usize,
    },
    /// The message is larger than the socket's send buffer allows.
    TooLarge {
        /// The message's length in bytes.
        len: usize,
    },
    /// The peer closed its end.
    PeerGone,
    /// The peer's queue stayed full and the deadline was now.
    WouldBlock,
    /// The peer's queue stayed full until the deadline.
    TimedOut,
    /// A system call failed.
    Io {
        /// The socket error.
        source: io::Error,
    },
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Empty => f.write_str("cannot send an empty control message"),
            SendError::TooManyFds { count, max } => {
                write!(f, "cannot send {count} descriptors in one message, the limit is {max}")
            }
            SendError::TooLarge { len } => write!(f, "control message of {len} bytes is too large"),
            SendError::PeerGone => f.write_str("the peer closed the control connection"),
            SendError::WouldBlock => f.write_str("the peer's control queue is full"),
            SendError::TimedOut => f.write_str("timed out waiting for room in the peer's control queue"),
            SendError::Io { source } => write!(f, "sendmsg: {source}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Io { source } => Some(source),
            _ => None,
        }
    }
}

/// Why receiving a message failed. In the two truncation cases the message
/// was consumed: what fitted is in the buffer and the slots (the slots hold
/// `OwnedFd`s, so dropping them closes the descriptors).
#[derive(Debug)]
#[non_exhaustive]
pub enum RecvError {
    /// `Some(Duration::ZERO)` was given and no message was waiting.
    WouldBlock,
    /// No message arrived within the timeout.
    TimedOut,
    /// The peer closed its end and every message it sent has been received.
    PeerGone,
    /// The message was `len` bytes, more than the buffer's `capacity`; the
    /// rest was discarded. `nfds` descriptors arrived.
    Truncated {
        /// Bytes received (the buffer's worth).
        len: usize,
        /// The buffer's size.
        capacity: usize,
        /// Descriptors received with it.
        nfds: usize,
    },
    /// The message carried more descriptors than slots were offered; the
    /// kernel closed the excess. The `len` bytes and `nfds` that fitted
    /// arrived.
    FdsTruncated {
        /// Bytes received.
        len: usize,
        /// Descriptors received (the slots' worth).
        nfds: usize,
    },
    /// A system call failed.
    Io {
        /// The system call that failed.
        op: &'static str,
        /// Its error.
        source: io::Error,
    },
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::WouldBlock => f.write_str("no control message is waiting"),
            RecvError::TimedOut => f.write_str("timed out waiting for a control message"),
            RecvError::PeerGone => f.write_str("the peer closed the control connection"),
            RecvError::Truncated { len, capacity, .. } => {
                write!(f, "control message of {len} bytes truncated to the buffer's {capacity}")
            }
            RecvError::FdsTruncated { nfds, .. } => {
                write!(f, "control message carried more descriptors than the {nfds} slots offered")
            }
            RecvError::Io { op, source } => write!(f, "{op}: {source}"),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A `msghdr` with no address, one iovec and no control data yet.
fn msghdr_for(iov: &mut libc::iovec) -> libc::msghdr {
    // SAFETY: msghdr is pointers and integers (plus padding on some
    // targets), for which all-zero is valid: null pointers, zero lengths.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov;
    msg.msg_iovlen = 1;
    msg
}

impl ControlConn {
    /// Sends one message of `bytes` (at least one byte) with `fds` attached
    /// (at most SCM_MAX_FD). The descriptors are duplicated into the peer
    /// when it receives; ours stay open. Blocks while the peer's receive
    /// queue is full.
    pub fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), SendError> {
        self.send_deadline(bytes, fds, Deadline::Never)
    }

    /// [`send`](Self::send), waiting for room in the peer's queue only until
    /// `deadline` (a peer that stops reading cannot hold us longer).
    pub fn send_deadline(&self, bytes: &[u8], fds: &[BorrowedFd<'_>], deadline: Deadline) -> Result<(), SendError> {
        if bytes.is_empty() {
            return Err(SendError::Empty);
        }
        if fds.len() > SCM_MAX_FD {
            return Err(SendError::TooManyFds { count: fds.len(), max: SCM_MAX_FD });
        }
        // sendmsg never writes through iov_base; the pointer is only *mut
        // because the same struct serves recvmsg.
        let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
        let mut msg = msghdr_for(&mut iov);
        let mut cmsg = CmsgBuf::new();
        if !fds.is_empty() {
            cmsg.attach_rights(&mut msg, fds);
        }
        loop {
            // SAFETY: `msg` points to `iov` (describing `bytes`) and, if set,
            // to `cmsg`'s buffer with a valid SCM_RIGHTS message; all outlive
            // the call.
            let n = unsafe { libc::sendmsg(self.as_raw_fd(), &msg, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) };
            if n >= 0 {
                // SEQPACKET sends a message whole or not at all.
                debug_assert_eq!(n as usize, bytes.len());
                return Ok(());
            }
            let source = io::Error::last_os_error();
            let err = match source.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => match ready::wait_writable(self.as_fd(), deadline) {
                    Ok(Readiness::Ready) => continue,
                    Ok(Readiness::WouldBlock) => SendError::WouldBlock,
                    Ok(Readiness::TimedOut) => SendError::TimedOut,
                    Err(source) => SendError::Io { source },
                },
                Some(libc::EPIPE | libc::ECONNRESET | libc::ENOTCONN) => SendError::PeerGone,
                Some(libc::EMSGSIZE) => SendError::TooLarge { len: bytes.len() },
                _ => SendError::Io { source },
            };
            return Err(err);
        }
    }

    /// Receives one message into `buf`, and the descriptors it carries into
    /// the first slots of `fds` (close-on-exec; see the module header for
    /// offering enough slots). `None` waits as long as it takes,
    /// `Some(Duration::ZERO)` only takes a message already waiting
    /// (`WouldBlock` otherwise), other timeouts end in `TimedOut`.
    pub fn recv(
        &self,
        buf: &mut [u8],
        fds: &mut [Option<OwnedFd>],
        timeout: Option<Duration>,
    ) -> Result<Received, RecvError> {
        let deadline = ready::deadline(timeout);
        let mut cmsg = CmsgBuf::new();
        loop {
            match ready::wait_readable(self.as_fd(), deadline) {
                Ok(Readiness::Ready) => {}
                Ok(Readiness::WouldBlock) => return Err(RecvError::WouldBlock),
                Ok(Readiness::TimedOut) => return Err(RecvError::TimedOut),
                Err(source) => return Err(RecvError::Io { op: "poll", source }),
            }
            let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
            let mut msg = msghdr_for(&mut iov);
            cmsg.offer(&mut msg, fds.len());
            // MSG_TRUNC makes recvmsg return the message's full length.
            // MSG_DONTWAIT: poll said readable, but another thread may have
            // taken the message; then we wait again with the time left.
            let flags = libc::MSG_CMSG_CLOEXEC | libc::MSG_TRUNC | libc::MSG_DONTWAIT;
            // SAFETY: `msg` points to `iov` (describing `buf`, writable) and to
            // `cmsg`'s buffer of msg_controllen bytes or null; all outlive the
            // call.
            let n = unsafe { libc::recvmsg(self.as_raw_fd(), &mut msg, flags) };
            if n < 0 {
                let source = io::Error::last_os_error();
                match source.raw_os_error() {
                    Some(libc::EAGAIN | libc::EINTR) => continue,
                    Some(libc::ECONNRESET) => return Err(RecvError::PeerGone),
                    _ => return Err(RecvError::Io { op: "recvmsg", source }),
                }
            }
            // Before anything else, so that no received descriptor leaks.
            let taken = cmsg.take_rights(&msg, fds);
            let (len, nfds) = (n as usize, taken.stored);
            if len == 0 && nfds == 0 {
                return Err(RecvError::PeerGone);
            }
            if msg.msg_flags & libc::MSG_TRUNC != 0 {
                return Err(RecvError::Truncated { len, capacity: buf.len(), nfds });
            }
            if msg.msg_flags & libc::MSG_CTRUNC != 0 || taken.closed > 0 {
                return Err(RecvError::FdsTruncated { len, nfds });
            }
            return Ok(Received { len, nfds });
        }
    }
}
