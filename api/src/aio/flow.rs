//! [`AsyncFlow`]: a [`Flow`] whose waiting operations are futures.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};

use ringflow_core::flow::end::{FlowOptions, RecvBuf, SendBuf};
use ringflow_core::flow::error::{AllocError, RecvError, SendError};
use ringflow_core::flow::Qos;
use ringflow_core::Deadline;
use tokio::io::unix::AsyncFd;

use super::{register, signalled};
use crate::Flow;

/// A [`Flow`] for tokio: the same flow, with `async` forms of its waiting
/// operations, woken through the flow's readiness descriptor (a runtime
/// thread never parks in ringflow).
///
/// Make one inside a runtime (it registers the descriptor with the
/// runtime's reactor): from a flow ([`new`](Self::new)), by allocating one
/// ([`alloc`](Self::alloc)), or with
/// [`AsyncListener::accept`](crate::AsyncListener::accept). The flow's
/// nonblocking and other methods stay at hand through
/// [`get_ref`](Self::get_ref) and [`get_mut`](Self::get_mut); the blocking
/// forms work too, but park the thread, which an async task must not do.
///
/// ```
/// # extern crate ringflow_api as ringflow; // (the `ringflow` package re-exports this crate)
/// # ringflow_testkit::isolate_runtime_dir(); // as a test: a private runtime directory, removed at exit
/// use ringflow::{AsyncFlow, Flow, Qos};
///
/// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
/// let (a, b) = Flow::pair(&Qos::data())?;
/// let (mut a, mut b) = (AsyncFlow::new(a)?, AsyncFlow::new(b)?);
/// let reader = tokio::spawn(async move {
///     let mut buf = [0u8; 16];
///     let n = b.recv_into(&mut buf).await.expect("a message");
///     buf[..n].to_vec()
/// });
/// a.send(b"hello").await?;
/// assert_eq!(reader.await?, b"hello");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// How it waits: each operation tries the nonblocking form; when that
/// would block, it arms the flow's readiness descriptor (the peer's next
/// publish, or release of room, signals it), tries once more, and only
/// then awaits the descriptor. So no message or room that comes meanwhile
/// is missed, and a sender pays a system call only while a receiver is
/// armed. A peer's death signals the descriptor whatever was armed.
///
/// Every future here may be dropped before it completes (in a `select!`,
/// under a timeout); what that loses is written on each. Deadlines are
/// tokio's: wrap a future in `tokio::time::timeout`.
///
/// A flow accepted by a listener served by an invoker-mode engine
/// ([`ListenerOptions::engine`](crate::ListenerOptions::engine)) moves only
/// while a thread drives that engine in a blocking call: its async forms
/// would wait for ever. Use the blocking forms there.
pub struct AsyncFlow {
    // The registration, over a duplicate of the descriptor it owns (see
    // `register`).
    fd: AsyncFd<OwnedFd>,
    pub(super) flow: Flow,
    /// Bytes of the peer's call message (a reply, a request) delivered so
    /// far when a call's receive stopped short of its end (`call.rs`).
    pub(super) answer: usize,
}

impl AsyncFlow {
    /// Wraps `flow`, registering its readiness descriptor with the current
    /// runtime's reactor. Like tokio's own types, it panics outside a
    /// runtime with I/O enabled (call it from a task, or within
    /// `Runtime::enter`). Fails when the descriptor cannot be duplicated
    /// (the registration holds a duplicate of its own) or registered.
    pub fn new(flow: Flow) -> io::Result<AsyncFlow> {
        let fd = register(flow.end.readiness_fd())?;
        Ok(AsyncFlow { fd, flow, answer: 0 })
    }

    /// Allocates a flow to the listener bound to `name` ([`Flow::alloc`]).
    ///
    /// The connection and the setup round trip with the listener run on
    /// tokio's blocking pool (`spawn_blocking`), never on a runtime thread.
    /// Not cancel-safe: dropping the future does not stop the setup; a
    /// flow it then makes is closed at once (the listener's side sees it
    /// end). Bound it with [`alloc_with`](Self::alloc_with)'s deadline
    /// rather than with a timer alone, so that the setup itself gives up.
    pub async fn alloc(name: &str, qos: &Qos) -> Result<AsyncFlow, AllocError> {
        AsyncFlow::alloc_with(name, qos, Deadline::Never, FlowOptions::new()).await
    }

    /// [`alloc`](Self::alloc) with a deadline and options
    /// ([`Flow::alloc_with`]).
    pub async fn alloc_with(
        name: &str,
        qos: &Qos,
        deadline: Deadline,
        opts: FlowOptions,
    ) -> Result<AsyncFlow, AllocError> {
        let (name, qos) = (name.to_owned(), *qos);
        let flow = tokio::task::spawn_blocking(move || Flow::alloc_with(&name, &qos, deadline, opts))
            .await
            .map_err(|e| AllocError::Io(io::Error::other(format!("the allocating task failed: {e}"))))??;
        AsyncFlow::new(flow).map_err(AllocError::Io)
    }

    /// The flow.
    pub fn get_ref(&self) -> &Flow {
        &self.flow
    }

    /// The flow, for its nonblocking (`try_`) and other methods.
    pub fn get_mut(&mut self) -> &mut Flow {
        &mut self.flow
    }

    /// The flow back, its descriptor unregistered from the reactor.
    pub fn into_inner(self) -> Flow {
        let AsyncFlow { fd, flow, .. } = self;
        drop(fd);
        flow
    }

    /// One step of a wait for `reads` (a message, or the end) or `writes`
    /// (room): the first call arms the descriptor and returns, so that the
    /// caller looks again (the arm handshake's re-check); the next sleeps
    /// until the descriptor is signalled. `armed` carries the step.
    pub(super) async fn wait(&self, armed: &mut bool, reads: bool, writes: bool) -> io::Result<()> {
        if !*armed {
            *armed = true;
            if self.flow.end.set_arm(reads, writes) {
                // Some publishers skip their fence: pay for theirs here.
                ringflow_core::membarrier::heavy_barrier()?;
            }
            return Ok(());
        }
        *armed = false;
        signalled(&self.fd).await
    }

    /// Sends `msg` ([`Flow::send`]), waiting for room as long as it takes
    /// (back-pressure: a full ring waits until the reader consumes).
    ///
    /// Cancel-safe: the message is sent whole when this returns `Ok`, and
    /// not at all if the future is dropped before it completes (every
    /// attempt is a `try_send`, which sends all or nothing).
    pub async fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        let mut armed = false;
        loop {
            match self.flow.try_send(msg) {
                Err(SendError::WouldBlock) => {}
                done => return done,
            }
            self.wait(&mut armed, false, true).await.map_err(SendError::Wait)?;
        }
    }

    /// Gather form of [`send`](Self::send) ([`Flow::send_vectored`]);
    /// cancel-safe in the same way.
    pub async fn send_vectored(&mut self, parts: &[&[u8]]) -> Result<(), SendError> {
        let mut armed = false;
        loop {
            match self.flow.try_send_vectored(parts) {
                Err(SendError::WouldBlock) => {}
                done => return done,
            }
            self.wait(&mut armed, false, true).await.map_err(SendError::Wait)?;
        }
    }

    /// [`send`](Self::send) with descriptors ([`Flow::send_fds`]);
    /// cancel-safe in the same way (nothing, descriptors included, goes
    /// unless it returns `Ok`).
    pub async fn send_fds(&mut self, msg: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), SendError> {
        let mut armed = false;
        loop {
            match self.flow.try_send_fds(msg, fds) {
                Err(SendError::WouldBlock) => {}
                done => return done,
            }
            self.wait(&mut armed, false, true).await.map_err(SendError::Wait)?;
        }
    }

    /// Lends `len` bytes of the flow's memory to write a message in place
    /// ([`Flow::loan`]), waiting for room; [`SendBuf::send`] publishes it.
    ///
    /// Cancel-safe: a future dropped before it returns has claimed
    /// nothing. A returned loan dropped unsent is abandoned and leaves no
    /// trace (as a blocking loan's).
    pub async fn loan(&mut self, len: usize) -> Result<SendBuf<'_>, SendError> {
        let mut armed = false;
        loop {
            // A probe: a loan found here is dropped unsent (which leaves no
            // trace) and taken again below, once the borrow of this loop is
            // over. Room only grows meanwhile: this end is the only writer.
            match self.flow.try_loan(len) {
                Ok(_probe) => break,
                Err(SendError::WouldBlock) => {}
                Err(e) => return Err(e),
            }
            self.wait(&mut armed, false, true).await.map_err(SendError::Wait)?;
        }
        self.flow.try_loan(len)
    }

    /// Receives the next message into `buf` ([`Flow::recv_into`]), waiting
    /// for one; returns its length.
    ///
    /// Cancel-safe: a message is consumed only by the call that returns
    /// it; a future dropped while waiting leaves the next message in the
    /// flow for the next receive.
    pub async fn recv_into(&mut self, buf: &mut [u8]) -> Result<usize, RecvError> {
        let mut armed = false;
        loop {
            match self.flow.try_recv_into(buf) {
                Err(RecvError::WouldBlock) => {}
                done => return done,
            }
            self.wait(&mut armed, true, false).await.map_err(RecvError::Wait)?;
        }
    }

    /// [`recv_into`](Self::recv_into) with descriptors
    /// ([`Flow::recv_fds`]); returns (bytes, descriptors). Cancel-safe in
    /// the same way.
    pub async fn recv_fds(
        &mut self,
        buf: &mut [u8],
        slots: &mut [Option<OwnedFd>],
    ) -> Result<(usize, usize), RecvError> {
        let mut armed = false;
        loop {
            match self.flow.try_recv_fds(buf, slots) {
                Err(RecvError::WouldBlock) => {}
                done => return done,
            }
            self.wait(&mut armed, true, false).await.map_err(RecvError::Wait)?;
        }
    }

    /// Receives the next message in place ([`Flow::recv_ref`]), waiting for
    /// one; it is consumed when the returned buffer is dropped.
    ///
    /// Cancel-safe: a future dropped before it returns consumed nothing.
    pub async fn recv_ref(&mut self) -> Result<RecvBuf<'_>, RecvError> {
        let mut armed = false;
        // Looks without taking (a message, or the flow's end: exactly when
        // a receive would not say `WouldBlock`), then takes it once the
        // loop's borrows are over.
        while !(self.flow.end.has_message() || self.flow.end.is_ended()) {
            self.wait(&mut armed, true, false).await.map_err(RecvError::Wait)?;
        }
        self.flow.try_recv_ref()
    }
}

impl std::fmt::Debug for AsyncFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncFlow").field("flow", &self.flow).finish()
    }
}
