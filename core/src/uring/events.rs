//! The TCP transport's vocabulary: connection ids, received-buffer handles,
//! events, errors and counters. Plain data; no system calls.

/// A connection; stale ids (of closed and reused slots) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConnId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// Bytes received into provided buffer; read it with [`TcpDriver::data`](super::TcpDriver::data),
/// then hand it back with [`TcpDriver::recycle`](super::TcpDriver::recycle) — until then the kernel has
/// one buffer fewer to receive into.
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a received buffer must be recycled"]
pub struct RecvBuf {
    pub(crate) bid: u16,
    pub(crate) len: u32,
}

impl RecvBuf {
    /// Bytes received into the buffer.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// No bytes (the peer closed its side).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Why a connection closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed its side (recv returned 0).
    Eof,
    /// [`TcpDriver::close`](super::TcpDriver::close) was called.
    Local,
    /// A recv or send failed with this errno.
    Error(i32),
}

/// What a duty-cycle step observed.
#[derive(Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// A listener accepted a connection, now known by this id.
    Accepted(ConnId),
    /// Bytes arrived on a connection, in a provided buffer to recycle.
    Received(ConnId, RecvBuf),
    /// The kernel took this many more bytes of the connection's queue.
    Sent(ConnId, usize),
    /// Reported once; the id is dead afterwards.
    Closed(ConnId, CloseReason),
    /// A watched descriptor became readable (`TcpDriver::watch`); with
    /// `more: false`, the watch has ended and is reported no more.
    Rang {
        /// The watch's token.
        token: u32,
        /// Whether the watch goes on.
        more: bool,
    },
}

/// Errors of `listen`, `adopt`, `send` and `close`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TcpError {
    /// The id never existed or its connection is gone.
    UnknownConn,
    /// The connection has closed; nothing more can be sent.
    Closed,
    /// A socket call failed.
    Io {
        /// The socket call that failed.
        op: &'static str,
        /// The OS error number.
        errno: i32,
    },
}

impl std::fmt::Display for TcpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TcpError::UnknownConn => f.write_str("no such connection"),
            TcpError::Closed => f.write_str("connection closed"),
            TcpError::Io { op, errno } => write!(f, "{op}: {}", std::io::Error::from_raw_os_error(*errno)),
        }
    }
}

impl std::error::Error for TcpError {}

pub(crate) fn io_err(op: &'static str) -> impl Fn(std::io::Error) -> TcpError {
    move |e| TcpError::Io { op, errno: e.raw_os_error().unwrap_or(0) }
}

/// Appends `len` bytes to a send queue, written in place by `fill`; if it
/// fails the queue is as it was (both transports' `append_with`).
pub(crate) fn append_in_place<R, E>(
    out: &mut Vec<u8>,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<R, E>,
) -> Result<R, E> {
    let start = out.len();
    out.resize(start + len, 0);
    let written = fill(&mut out[start..]);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// A fill for `append_with` that copies `data` (both transports' `send`).
pub(crate) fn copy_of(data: &[u8]) -> impl FnOnce(&mut [u8]) -> Result<(), std::convert::Infallible> + '_ {
    move |buf| {
        ringflow_ring::copy::copy_bytes(buf, data);
        Ok(())
    }
}

/// Shuts both directions of a socket down (a pending recv then ends).
pub(crate) fn shutdown(fd: &std::os::fd::OwnedFd) {
    use std::os::fd::AsRawFd as _;
    // SAFETY: shutdown on a descriptor the caller owns; no memory involved.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
}

/// Counters of what the transport did, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpStats {
    /// Plain (copying) sends: io_uring SENDs and direct `send(2)`s.
    pub plain_sends: u64,
    /// Of those, `send(2)`s made directly (see `TcpDriver::flush`): the
    /// socket took the queued bytes at once, with no submission.
    pub direct_sends: u64,
    /// SEND_ZCs from unregistered memory.
    pub zc_sends: u64,
    /// SEND_ZCs from registered buffers (`zc_sends` counts the others).
    pub fixed_sends: u64,
    /// Frames larger than a registered buffer, queued on the heap instead.
    pub fixed_too_large: u64,
    /// Times a frame found every registered buffer held and went to the heap.
    pub fixed_busy: u64,
    /// Sends that took fewer bytes than offered and were resubmitted.
    pub short_sends: u64,
    /// Multishot recvs ended by ENOBUFS (every provided buffer lent out).
    pub enobufs: u64,
    /// Multishot recvs armed again after they ended (ENOBUFS or no F_MORE).
    pub recv_rearms: u64,
    /// Multishot accepts armed again after they ended.
    pub accept_rearms: u64,
    /// Recvs moved to the thread that drives the ring (cancelled and armed
    /// again there; see `TcpDriver::note_driver`).
    pub recv_moves: u64,
    /// Reads made with `recv(2)` that got bytes (see `TcpDriver::poll`'s
    /// direct receives).
    pub direct_recvs: u64,
}
