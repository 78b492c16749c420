//! [`AsyncListener`]: a [`Listener`] whose accept is a future.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use ringflow_core::flow::error::AcceptError;
use tokio::io::unix::AsyncFd;

use super::{register, signalled, AsyncFlow};
use crate::Listener;

/// A [`Listener`] for tokio: [`accept`](Self::accept) awaits the listening
/// socket's readability instead of blocking a thread.
///
/// ```
/// # extern crate ringflow_api as ringflow; // (the `ringflow` package re-exports this crate)
/// # ringflow_testkit::isolate_runtime_dir(); // as a test: a private runtime directory, removed at exit
/// use ringflow::{AsyncFlow, AsyncListener, Listener, Qos};
///
/// # tokio::runtime::Builder::new_current_thread().enable_io().build()?.block_on(async {
/// let mut listener = AsyncListener::new(Listener::bind("doc-async")?)?;
/// let client = tokio::spawn(async {
///     let mut flow = AsyncFlow::alloc("doc-async", &Qos::data()).await.expect("listening");
///     flow.send(b"hi").await.expect("send");
/// });
/// let mut flow = listener.accept().await?;
/// let mut buf = [0u8; 8];
/// let n = flow.recv_into(&mut buf).await?;
/// assert_eq!(&buf[..n], b"hi");
/// client.await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AsyncListener {
    // The registration, over a duplicate of the descriptor it owns (see
    // `register`).
    fd: AsyncFd<OwnedFd>,
    listener: Listener,
}

impl AsyncListener {
    /// Wraps `listener`, registering its socket with the current runtime's
    /// reactor (call it from a task, or within `Runtime::enter`: like
    /// tokio's own types, it panics elsewhere).
    pub fn new(listener: Listener) -> io::Result<AsyncListener> {
        let fd = register(listener_fd(&listener))?;
        Ok(AsyncListener { fd, listener })
    }

    /// The listener.
    pub fn get_ref(&self) -> &Listener {
        &self.listener
    }

    /// The listener, for its other methods.
    pub fn get_mut(&mut self) -> &mut Listener {
        &mut self.listener
    }

    /// The listener back, its socket unregistered from the reactor.
    pub fn into_inner(self) -> Listener {
        let AsyncListener { fd, listener } = self;
        drop(fd);
        listener
    }

    /// Accepts the next flow ([`Listener::accept`]), as an [`AsyncFlow`] of
    /// the same runtime.
    ///
    /// It sleeps until the listening socket is readable, then accepts with
    /// [`Listener::try_accept`], which sets the flow up on the calling
    /// thread: a round trip with the allocating side, whose request is
    /// normally queued already (microseconds), bounded at a tenth of a
    /// second for a client that stalls.
    ///
    /// Cancel-safe: a future dropped while it sleeps leaves every queued
    /// request for the next accept; once it accepts, it returns.
    pub async fn accept(&mut self) -> Result<AsyncFlow, AcceptError> {
        loop {
            match self.listener.try_accept() {
                Ok(flow) => return AsyncFlow::new(flow).map_err(AcceptError::Io),
                Err(AcceptError::WouldBlock) => {}
                Err(e) => return Err(e),
            }
            // Every connection queued after the try above signals the
            // socket anew (tokio's registration is edge-triggered; each
            // arrival is an edge); one queued before it was taken by it.
            signalled(&self.fd).await.map_err(AcceptError::Io)?;
        }
    }
}

/// The listening socket of `listener`, borrowed.
fn listener_fd(listener: &Listener) -> BorrowedFd<'_> {
    // SAFETY: the listener owns its listening socket and keeps it open for
    // as long as it lives, which the returned borrow cannot outlast.
    unsafe { BorrowedFd::borrow_raw(listener.as_raw_fd()) }
}

impl std::fmt::Debug for AsyncListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncListener").field("listener", &self.listener).finish()
    }
}
