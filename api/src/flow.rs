//! A flow: a named, bidirectional message channel between two processes on
//! one host, through rings in shared memory (Ouroboros `flow_alloc` /
//! `flow_accept`, libdill `ipc_connect` / `ipc_accept`), or to another host
//! through an engine (see [`crate::remote`]).
//!
//! The data path never makes a system call unless the other side sleeps:
//! a send writes a frame in place and publishes it with one Release store;
//! a receive reads it in place. The control socket that set the flow up
//! stays open: it carries passed descriptors, and its hang-up tells the
//! process's watcher that the peer died.
//!
//! Every operation that can wait comes in four forms over one internal
//! function taking a [`Deadline`]: `x` (blocks), `try_x` (never waits,
//! `WouldBlock`), `x_deadline(d)` and `x_timeout(dur)`.
//!
//! [`Flow`] is the public face of a flow end of ringflow-core
//! ([`FlowEnd`]), which implements every operation once, for this type and
//! for the engine's bridge alike. Every method here only forwards (and is
//! inlined): nothing engine-only is reachable from a `Flow`.

use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use ringflow_core::flow::end::{FlowEnd, FlowOptions, FlowStats, RecvBuf, SendBuf};
use ringflow_core::flow::error::{AllocError, DeallocError, RecvError, SendError};
use ringflow_core::flow::Qos;
use ringflow_core::Deadline;

/// One end of a flow.
///
/// A listener accepts flows allocated to its name; each end sends and
/// receives (here the client is a thread; across processes it is the same
/// code in another program):
///
/// ```
/// # extern crate ringflow_api as ringflow; // (the `ringflow` package re-exports this crate)
/// # ringflow_testkit::isolate_runtime_dir(); // as a test: a private runtime directory, removed at exit
/// use std::time::Duration;
/// use ringflow::{Flow, Listener, Qos, RecvError};
///
/// let mut listener = Listener::bind("doc-flow")?;
/// let client = std::thread::spawn(|| {
///     let mut flow = Flow::alloc_timeout("doc-flow", &Qos::data(), Duration::from_secs(5)).expect("listening");
///     flow.send(b"ping").expect("send");
///     let mut buf = [0u8; 16];
///     let n = flow.recv_into(&mut buf).expect("reply");
///     assert_eq!(&buf[..n], b"pong");
///     flow.dealloc().expect("dealloc"); // returns once the peer has read everything
/// });
/// let mut flow = listener.accept_timeout(Duration::from_secs(5))?;
/// let mut buf = [0u8; 16];
/// let n = flow.recv_into(&mut buf)?;
/// assert_eq!(&buf[..n], b"ping");
/// flow.send(b"pong")?;
/// // The client deallocated the flow: the next receive says so.
/// assert!(matches!(flow.recv_into(&mut buf), Err(RecvError::Closed)));
/// client.join().expect("client thread");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Nothing engine-only is reachable from it: the engine's bridge holds a
/// ringflow-core flow end of its own, and a `Flow` neither exposes that end
/// nor the operations the bridge uses on it. Dropping an end as if its
/// process had died, for one:
///
/// ```compile_fail
/// fn f(flow: ringflow_api::Flow) {
///     flow.abandon();
/// }
/// ```
///
/// or delivering a message with a stamp from another host:
///
/// ```compile_fail
/// fn f(mut flow: ringflow_api::Flow) {
///     let _ = flow.try_send_stamped(b"x", 1);
/// }
/// ```
///
/// or reaching the end underneath:
///
/// ```compile_fail
/// fn f(flow: ringflow_api::Flow) {
///     let _ = &flow.end;
/// }
/// ```
pub struct Flow {
    pub(crate) end: FlowEnd,
}

impl Flow {
    /// Wraps a flow end set up by ringflow-core (a listener's, an engine's).
    #[inline]
    pub(crate) fn from_end(end: FlowEnd) -> Flow {
        Flow { end }
    }

    /// Allocates a flow to the listener bound to `name`, asking for `qos`;
    /// waits until the listener accepts (or refuses, or is not there). The
    /// granted QoS (sizes may be lowered) is [`qos`](Self::qos). A name of
    /// the form `name@host:port` reaches a listener on another host through
    /// the process's embedded engine (see [`crate::remote`]); so does a
    /// plain name no listener of this host has bound, when the engine
    /// configuration's `net.peers` knows where it lives.
    #[inline]
    pub fn alloc(name: &str, qos: &Qos) -> Result<Flow, AllocError> {
        Flow::alloc_with(name, qos, Deadline::Never, FlowOptions::new())
    }

    /// [`alloc`](Self::alloc) without waiting. What needs no answer from a
    /// listener comes back at once ([`AllocError::NotFound`], an invalid
    /// name or QoS, ...); but setting a flow up is a round trip with the
    /// listener, which a call that never waits cannot make, so where a
    /// listener is bound this is [`AllocError::WouldBlock`] unless its
    /// answer is already there. The abandoned request is counted by the
    /// listener as refused ([`Listener::refused`](crate::Listener::refused)).
    #[inline]
    pub fn try_alloc(name: &str, qos: &Qos) -> Result<Flow, AllocError> {
        Flow::alloc_with(name, qos, Deadline::Now, FlowOptions::new())
    }

    /// [`alloc`](Self::alloc), waiting until `deadline`
    /// ([`AllocError::TimedOut`] after it).
    #[inline]
    pub fn alloc_deadline(name: &str, qos: &Qos, deadline: Deadline) -> Result<Flow, AllocError> {
        Flow::alloc_with(name, qos, deadline, FlowOptions::new())
    }

    /// [`alloc`](Self::alloc), waiting at most `timeout`
    /// ([`AllocError::TimedOut`] after it).
    #[inline]
    pub fn alloc_timeout(name: &str, qos: &Qos, timeout: Duration) -> Result<Flow, AllocError> {
        Flow::alloc_with(name, qos, Deadline::after(timeout), FlowOptions::new())
    }

    /// [`alloc_deadline`](Self::alloc_deadline) with options (spin, runtime
    /// directory, caller-supplied memory): the one implementation the other
    /// alloc forms call.
    #[inline]
    pub fn alloc_with(name: &str, qos: &Qos, deadline: Deadline, opts: FlowOptions) -> Result<Flow, AllocError> {
        FlowEnd::alloc_with(name, qos, deadline, opts).map(Flow::from_end)
    }

    /// Segment bytes a flow granted `qos` needs (for caller-supplied memory).
    #[inline]
    pub fn segment_len_for(qos: &Qos) -> Result<usize, AllocError> {
        FlowEnd::segment_len_for(qos)
    }

    /// The QoS granted to this flow (the same on both sides).
    #[inline]
    pub fn qos(&self) -> &Qos {
        self.end.qos()
    }

    /// The name the flow was allocated to.
    #[inline]
    pub fn name(&self) -> &str {
        self.end.name()
    }

    /// The peer process's id (from the control socket's credentials).
    #[inline]
    pub fn peer_pid(&self) -> Option<u32> {
        self.end.peer_pid()
    }

    /// This side's counters and a snapshot of its latency histograms.
    #[inline]
    pub fn stats(&self) -> FlowStats {
        self.end.stats()
    }

    /// Empties this side's latency histograms (counters keep counting):
    /// the start of a new measurement interval.
    #[inline]
    pub fn reset_latency(&mut self) {
        self.end.reset_latency()
    }

    /// Tunes this side's sending ring for request/reply traffic (one message
    /// or a few in flight): while the peer keeps up, messages cycle through
    /// the ring's first `bytes` (plus one message) instead of all of it, so
    /// they travel through cache lines both cores already share (what that
    /// gains a round trip: tuning.md, "Window").
    /// [`REQUEST_REPLY_WINDOW`](crate::REQUEST_REPLY_WINDOW) suits small messages; `None` turns it off
    /// (the default). Local to this side: the peer reads as before.
    ///
    /// The price, and why it is off by default: right after the ring wraps
    /// early, this side's room is what it wrote on that pass through the
    /// ring, until the peer reads on. A peer that polls or parks on the flow
    /// does so at once; a burst of sends while the peer is busy elsewhere
    /// (sending to us, say, with its own ring full) waits for it sooner
    /// than with the whole ring. The ring never overwrites a message the
    /// peer has not read: it wraps early only while the peer is awake and
    /// within one window of the last message.
    #[inline]
    pub fn set_send_window(&mut self, bytes: Option<usize>) {
        self.end.set_send_window(bytes)
    }

    /// Whether this side stamps and records latencies.
    #[inline]
    pub fn records_latency(&self) -> bool {
        self.end.records_latency()
    }

    /// Largest message sent inline through the ring; larger ones travel
    /// through the flow's bulk area (still zero-copy).
    #[inline]
    pub fn inline_max(&self) -> usize {
        self.end.inline_max()
    }

    /// Whether the peer has left (closed or died) as far as this side knows.
    #[inline]
    pub fn is_peer_gone(&self) -> bool {
        self.end.is_peer_gone()
    }

    /// Closes the flow, first waiting as long as it takes until the peer has
    /// consumed every message sent (a reliable flow's linger) or leaves. The
    /// peer then reads everything and gets end of flow. Whatever the outcome,
    /// the flow is closed when this returns: the error only says what the
    /// peer had not consumed ([`DeallocError::Closed`] or
    /// [`DeallocError::PeerGone`]; [`DeallocError::Wait`] if the wait itself
    /// failed).
    ///
    /// A flow to another host also waits until its engine has handed the
    /// flow's end to the network: after `Ok(())` the process may exit at
    /// once and the remote application still reads end of flow, not its
    /// peer's death. Everything consumed but the end not yet handed when a
    /// deadline passes (or at once, for [`try_dealloc`](Self::try_dealloc))
    /// is [`DeallocError::CloseNotSent`]; the engine letting go of the flow
    /// first is [`DeallocError::PeerGone`] with nothing unconsumed.
    #[inline]
    pub fn dealloc(self) -> Result<(), DeallocError> {
        self.dealloc_deadline(Deadline::Never)
    }

    /// Closes the flow at once, without lingering. `Ok(())` when the peer
    /// had already consumed every message sent;
    /// [`DeallocError::WouldBlock`] with the count still unread when a
    /// lingering [`dealloc`](Self::dealloc) would have waited. Either way the
    /// flow is closed and nothing is lost: the peer still reads every
    /// message sent, then gets end of flow (unlike the lingering forms, the
    /// sender just does not learn whether it did).
    #[inline]
    pub fn try_dealloc(self) -> Result<(), DeallocError> {
        self.dealloc_deadline(Deadline::Now)
    }

    /// [`dealloc`](Self::dealloc), lingering until `deadline` at most
    /// ([`DeallocError::TimedOut`] with the count still unread after it; the
    /// flow is closed all the same).
    #[inline]
    pub fn dealloc_deadline(self, deadline: Deadline) -> Result<(), DeallocError> {
        self.end.dealloc(deadline)
    }

    /// [`dealloc`](Self::dealloc), lingering at most `timeout`
    /// ([`DeallocError::TimedOut`] after it).
    #[inline]
    pub fn dealloc_timeout(self, timeout: Duration) -> Result<(), DeallocError> {
        self.dealloc_deadline(Deadline::after(timeout))
    }

    /// Two connected ends of a new flow with `qos` (granted as asked: there
    /// is no listener to lower it).
    #[inline]
    pub fn pair(qos: &Qos) -> Result<(Flow, Flow), AllocError> {
        FlowEnd::pair(qos).map(|(a, b)| (Flow::from_end(a), Flow::from_end(b)))
    }

    /// [`pair`](Self::pair) with options (spin, caller-supplied memory).
    #[inline]
    pub fn pair_with(qos: &Qos, opts: FlowOptions) -> Result<(Flow, Flow), AllocError> {
        FlowEnd::pair_with(qos, opts).map(|(a, b)| (Flow::from_end(a), Flow::from_end(b)))
    }

    /// Sends `msg`, waiting for room (reliable QoS) — copy form.
    #[inline]
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.end.send(msg)
    }

    /// Sends `msg` if there is room now (`WouldBlock` otherwise).
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.end.try_send(msg)
    }

    /// Sends `msg`, waiting for room until `deadline`.
    #[inline]
    pub fn send_deadline(&mut self, msg: &[u8], deadline: Deadline) -> Result<(), SendError> {
        self.end.send_deadline(msg, deadline)
    }

    /// Sends `msg`, waiting for room at most `timeout`.
    #[inline]
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.end.send_timeout(msg, timeout)
    }

    /// Gather form: sends the concatenation of `parts` as one message,
    /// waiting for room.
    #[inline]
    pub fn send_vectored(&mut self, parts: &[&[u8]]) -> Result<(), SendError> {
        self.end.send_vectored(parts)
    }

    /// [`send_vectored`](Self::send_vectored) if there is room now.
    #[inline]
    pub fn try_send_vectored(&mut self, parts: &[&[u8]]) -> Result<(), SendError> {
        self.end.try_send_vectored(parts)
    }

    /// [`send_vectored`](Self::send_vectored), waiting until `deadline`.
    #[inline]
    pub fn send_vectored_deadline(&mut self, parts: &[&[u8]], deadline: Deadline) -> Result<(), SendError> {
        self.end.send_vectored_deadline(parts, deadline)
    }

    /// [`send_vectored`](Self::send_vectored), waiting at most `timeout`.
    #[inline]
    pub fn send_vectored_timeout(&mut self, parts: &[&[u8]], timeout: Duration) -> Result<(), SendError> {
        self.end.send_vectored_timeout(parts, timeout)
    }

    /// Sends `msg` with file descriptors attached (libdill `ipc_sendfd`),
    /// waiting for room; the receiver takes them with `recv_fds`. The
    /// descriptors are duplicated into the peer; ours stay open.
    #[inline]
    pub fn send_fds(&mut self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), SendError> {
        self.end.send_fds(msg, fds)
    }

    /// [`send_fds`](Self::send_fds) if there is room now.
    #[inline]
    pub fn try_send_fds(&mut self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), SendError> {
        self.end.try_send_fds(msg, fds)
    }

    /// [`send_fds`](Self::send_fds), waiting until `deadline`.
    #[inline]
    pub fn send_fds_deadline(
        &mut self,
        msg: &[u8],
        fds: &[BorrowedFd<'_>],
        deadline: Deadline,
    ) -> Result<(), SendError> {
        self.end.send_fds_deadline(msg, fds, deadline)
    }

    /// [`send_fds`](Self::send_fds), waiting at most `timeout`.
    #[inline]
    pub fn send_fds_timeout(&mut self, msg: &[u8], fds: &[BorrowedFd<'_>], timeout: Duration) -> Result<(), SendError> {
        self.end.send_fds_timeout(msg, fds, timeout)
    }

    /// Lends `len` bytes of the flow's shared memory to write a message in
    /// place, waiting for room; [`SendBuf::send`] publishes it, dropping the
    /// buffer abandons it.
    #[inline]
    pub fn loan(&mut self, len: usize) -> Result<SendBuf<'_>, SendError> {
        self.end.loan(len)
    }

    /// [`loan`](Self::loan) if there is room now.
    #[inline]
    pub fn try_loan(&mut self, len: usize) -> Result<SendBuf<'_>, SendError> {
        self.end.try_loan(len)
    }

    /// [`loan`](Self::loan), waiting at most `timeout`.
    #[inline]
    pub fn loan_timeout(&mut self, len: usize, timeout: Duration) -> Result<SendBuf<'_>, SendError> {
        self.end.loan_timeout(len, timeout)
    }

    /// [`loan`](Self::loan), waiting until `deadline`.
    #[inline]
    pub fn loan_deadline(&mut self, len: usize, deadline: Deadline) -> Result<SendBuf<'_>, SendError> {
        self.end.loan_deadline(len, deadline)
    }

    /// Receives the next message into `buf`, waiting for one; returns its
    /// length. A buffer too small gets `TooSmall` and the message stays.
    #[inline]
    pub fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.end.recv_into(buf)
    }

    /// [`recv_into`](Self::recv_into) without waiting (`WouldBlock`).
    #[inline]
    pub fn try_recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        self.end.try_recv_into(buf)
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout`.
    #[inline]
    pub fn recv_into_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, RecvError> {
        self.end.recv_into_timeout(buf, timeout)
    }

    /// [`recv_into`](Self::recv_into), waiting until `deadline`.
    #[inline]
    pub fn recv_into_deadline(&mut self, buf: &mut [u8], deadline: Deadline) -> Result<usize, RecvError> {
        self.end.recv_into_deadline(buf, deadline)
    }

    /// Receives a message and the file descriptors sent with it into
    /// `slots`, waiting for one; returns (bytes, descriptors). Too few slots:
    /// `FdSlots`, and the message (with its descriptors) stays for a retry.
    #[inline]
    pub fn recv_fds(&mut self, buf: &mut [u8], slots: &mut [Option<OwnedFd>]) -> Result<(usize, usize), RecvError> {
        self.end.recv_fds(buf, slots)
    }

    /// [`recv_fds`](Self::recv_fds) without waiting.
    #[inline]
    pub fn try_recv_fds(&mut self, buf: &mut [u8], slots: &mut [Option<OwnedFd>]) -> Result<(usize, usize), RecvError> {
        self.end.try_recv_fds(buf, slots)
    }

    /// [`recv_fds`](Self::recv_fds), waiting until `deadline`.
    #[inline]
    pub fn recv_fds_deadline(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        deadline: Deadline,
    ) -> Result<(usize, usize), RecvError> {
        self.end.recv_fds_deadline(buf, slots, deadline)
    }

    /// [`recv_fds`](Self::recv_fds), waiting at most `timeout`.
    #[inline]
    pub fn recv_fds_timeout(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
        timeout: Duration,
    ) -> Result<(usize, usize), RecvError> {
        self.end.recv_fds_timeout(buf, slots, timeout)
    }

    /// Receives the next message in place, waiting for one. The message is
    /// consumed when the returned buffer is dropped.
    #[inline]
    pub fn recv_ref(&mut self) -> Result<RecvBuf<'_>, RecvError> {
        self.end.recv_ref()
    }

    /// [`recv_ref`](Self::recv_ref) without waiting.
    #[inline]
    pub fn try_recv_ref(&mut self) -> Result<RecvBuf<'_>, RecvError> {
        self.end.try_recv_ref()
    }

    /// [`recv_ref`](Self::recv_ref), waiting at most `timeout`.
    #[inline]
    pub fn recv_ref_timeout(&mut self, timeout: Duration) -> Result<RecvBuf<'_>, RecvError> {
        self.end.recv_ref_timeout(timeout)
    }

    /// [`recv_ref`](Self::recv_ref), waiting until `deadline`.
    #[inline]
    pub fn recv_ref_deadline(&mut self, deadline: Deadline) -> Result<RecvBuf<'_>, RecvError> {
        self.end.recv_ref_deadline(deadline)
    }
}

impl AsRawFd for Flow {
    /// A descriptor (an epoll instance) that becomes readable when the flow
    /// may have a message to read or has ended, for epoll-based event loops
    /// (register it for `EPOLLIN`). It starts readable and is edge-like: a
    /// receive that finds nothing (`WouldBlock`) resets it and re-arms it,
    /// so after it fires, receive with the `try_` forms until `WouldBlock`.
    /// The first call makes it (two descriptors, kept until the flow is
    /// dropped; a flow holds one otherwise). If the process has none left,
    /// it is the flow's control socket instead, which does not start
    /// readable: receive until `WouldBlock` before the first wait then.
    #[inline]
    fn as_raw_fd(&self) -> RawFd {
        self.end.as_raw_fd()
    }
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.end.fmt(f)
    }
}
