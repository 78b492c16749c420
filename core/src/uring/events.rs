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

/// A connection's queue of bytes to send (both transports). The bytes
/// past what is queued stay initialized from earlier frames, so a frame
/// appended where the queue once reached is written in place without
/// being zeroed first: a `Vec` cleared after each send zeroed every
/// frame before it was encoded (a 64 KiB `memset` per frame, 3% of a
/// 64 KiB stream's samples). Its memory is kept, as the `Vec`'s capacity
/// was.
#[derive(Default)]
pub(crate) struct OutBuf {
    buf: Vec<u8>,
    /// Bytes queued: `buf[..len]`.
    len: usize,
}

impl OutBuf {
    /// Appends `len` bytes, written in place by `fill`, which must write
    /// every byte: the slice holds whatever an earlier frame left there
    /// (zeros only past the high-water mark), and all of it is sent. If
    /// `fill` fails the queue is as it was.
    pub(crate) fn append_in_place<R, E>(
        &mut self,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<R, E>,
    ) -> Result<R, E> {
        let (start, end) = (self.len, self.len + len);
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        let written = fill(&mut self.buf[start..end]);
        if written.is_ok() {
            self.len = end;
        }
        written
    }

    /// Empties the queue (its memory stays).
    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }
}

impl std::ops::Deref for OutBuf {
    type Target = [u8];

    /// The bytes queued.
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
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
    /// direct receives and spin reads).
    pub direct_recvs: u64,
    /// Connections moved from the ring's recv to spin reads (a ring
    /// without DEFER_TASKRUN driven by one thread for a while; see
    /// `TcpDriver::poll`).
    pub spin_moves: u64,
}

#[cfg(test)]
mod tests {
    use super::OutBuf;

    /// Appends queue exactly what their fills wrote, a failed fill leaves
    /// the queue as it was, and after `clear` the old bytes are reused
    /// (never shown as queued) for frames of any size.
    #[test]
    fn out_buf_queues_what_was_written_and_reuses_its_memory() {
        let mut out = OutBuf::default();
        let put = |out: &mut OutBuf, bytes: &[u8]| {
            out.append_in_place(bytes.len(), |buf| {
                buf.copy_from_slice(bytes);
                Ok::<_, ()>(())
            })
        };
        put(&mut out, b"abc").unwrap();
        put(&mut out, b"defg").unwrap();
        assert_eq!(&*out, b"abcdefg");
        assert!(out
            .append_in_place(5, |buf| {
                buf.fill(b'x');
                Err::<(), _>("no")
            })
            .is_err());
        assert_eq!(&*out, b"abcdefg", "a failed fill queues nothing");
        out.clear();
        assert!(out.is_empty());
        put(&mut out, b"12").unwrap();
        assert_eq!(&*out, b"12", "the stale bytes past the queue are not queued");
        put(&mut out, &[7u8; 100]).unwrap();
        assert_eq!(out.len(), 102);
        assert_eq!(&out[..2], b"12");
        assert!(out[2..].iter().all(|&b| b == 7));
    }
}
