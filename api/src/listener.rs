//! A listener: binds a name on this host and accepts flows allocated to it
//! (Ouroboros `flow_accept`, libdill `ipc_listen` / `ipc_accept`).
//!
//! The name is a Unix socket in the per-user runtime directory (mode 0700;
//! the socket 0600). Who may connect is checked by the peer's credentials
//! ([`Permit`]: the same user by default). A peer that is refused or breaks
//! the handshake never ends an accept: it is counted and the listener waits
//! for the next one. The public face of ringflow-core's
//! [`FlowListener`]: every method forwards.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringflow_core::control::Permit;
use ringflow_core::flow::error::{AcceptError, BindError};
use ringflow_core::flow::listener::{self, FlowListener};
use ringflow_core::flow::{MemorySupply, QosLimits};
use ringflow_core::Deadline;

use crate::remote::RemoteEngine;
use crate::Flow;

/// Settings of a listener.
#[derive(Clone, Debug, Default)]
pub struct ListenerOptions {
    inner: listener::ListenerOptions,
}

impl ListenerOptions {
    /// Defaults: the same user only, default QoS limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most this listener grants (larger requests are lowered).
    #[must_use]
    pub fn limits(self, limits: QosLimits) -> Self {
        ListenerOptions { inner: self.inner.limits(limits) }
    }

    /// Who may connect.
    #[must_use]
    pub fn permit(self, permit: Permit) -> Self {
        ListenerOptions { inner: self.inner.permit(permit) }
    }

    /// Spin time of the accepted flows' blocking operations.
    #[must_use]
    pub fn spin(self, spin: Duration) -> Self {
        ListenerOptions { inner: self.inner.spin(spin) }
    }

    /// Where names live (see [`FlowOptions::runtime_dir`](crate::FlowOptions::runtime_dir)).
    #[must_use]
    pub fn runtime_dir(self, dir: impl Into<PathBuf>) -> Self {
        ListenerOptions { inner: self.inner.runtime_dir(dir) }
    }

    /// Binds in a runtime directory shared with other users: an existing
    /// directory this user owns that nobody else can write; its mode says
    /// who reaches the name, and [`permit`](Self::permit) who is admitted
    /// (see [`FlowOptions::shared_runtime_dir`](crate::FlowOptions::shared_runtime_dir)
    /// for the other side).
    #[must_use]
    pub fn shared_runtime_dir(self, dir: impl Into<PathBuf>) -> Self {
        ListenerOptions { inner: self.inner.shared_runtime_dir(dir) }
    }

    /// Whether accepted flows record latencies (see
    /// [`FlowOptions::latency`](crate::FlowOptions::latency)).
    #[must_use]
    pub fn latency(self, on: bool) -> Self {
        ListenerOptions { inner: self.inner.latency(on) }
    }

    /// Whether accepted flows fault their rings in at setup (see
    /// [`FlowOptions::prefault`](crate::FlowOptions::prefault)).
    #[must_use]
    pub fn prefault(self, on: bool) -> Self {
        ListenerOptions { inner: self.inner.prefault(on) }
    }

    /// Whether flows from other hosts may reach this listener (default:
    /// no). A flow from another host arrives through this host's engine
    /// (`name@host:port` on the far side); a listener that does not take
    /// them refuses it, counts it in [`Listener::refused`], and the far
    /// side's alloc gets `AllocError::PermissionDenied`. Which engines may
    /// ask at all is the engines' key's business (`net.key_file`); this
    /// option decides whether this name is offered to them.
    #[must_use]
    pub fn remote(self, on: bool) -> Self {
        ListenerOptions { inner: self.inner.remote(on) }
    }

    /// Lays each accepted flow's receiving direction out in memory this side
    /// supplies (libdill's `ipc_accept_mem`; the allocating side's
    /// counterpart is [`FlowOptions::memory`](crate::FlowOptions::memory)):
    /// `supply` is called once per flow with the bytes the granted QoS needs
    /// there and returns a fresh segment at least that large, for example on
    /// huge pages. A segment that is refused (too small, already laid out)
    /// or not made ends the accept with [`AcceptError::Memory`], and the
    /// allocating side is refused with `ResourceLimit`.
    #[must_use]
    pub fn memory(self, supply: MemorySupply) -> Self {
        ListenerOptions { inner: self.inner.memory(supply) }
    }

    /// The engine that brings this listener its remote flows. Needed only
    /// for an invoker-mode engine (no engine thread runs): a waiting accept
    /// then drives it, and the flows it brings drive it from their calls.
    /// A dedicated engine runs on its own; nothing changes for it.
    #[must_use]
    pub fn engine(self, engine: &RemoteEngine) -> Self {
        match engine.inner.invoker() {
            Some(invoker) => ListenerOptions { inner: self.inner.invoker(Arc::clone(invoker)) },
            None => self,
        }
    }
}

/// A bound name, accepting flows.
///
/// A server's loop: accept each flow and serve it until its client closes
/// it (one at a time here; a thread per flow, or a [`FlowSet`](crate::FlowSet),
/// serves many at once):
///
/// ```
/// # extern crate ringflow_api as ringflow; // (the `ringflow` package re-exports this crate)
/// # ringflow_testkit::isolate_runtime_dir(); // as a test: a private runtime directory, removed at exit
/// use std::time::Duration;
/// use ringflow::{AcceptError, Flow, Listener, ListenerOptions, Permit, Qos, RecvError};
///
/// // Same user only (the default Permit), said explicitly.
/// let mut listener = Listener::bind_with("doc-upper", ListenerOptions::new().permit(Permit::same_user()))?;
/// let clients = std::thread::spawn(|| {
///     for word in ["one", "two"] {
///         let mut flow = Flow::alloc("doc-upper", &Qos::data()).expect("listening");
///         flow.send(word.as_bytes()).expect("send");
///         let mut buf = [0u8; 16];
///         let n = flow.recv_into(&mut buf).expect("reply");
///         assert_eq!(&buf[..n], word.to_uppercase().as_bytes());
///     } // dropping a flow closes it
/// });
/// let mut served = 0;
/// loop {
///     let mut flow = match listener.accept_timeout(Duration::from_millis(500)) {
///         Ok(flow) => flow,
///         Err(AcceptError::TimedOut) if clients.is_finished() => break,
///         Err(AcceptError::TimedOut) => continue,
///         Err(e) => return Err(e.into()),
///     };
///     let mut buf = [0u8; 16];
///     loop {
///         match flow.recv_into(&mut buf) {
///             Ok(n) => flow.send(&buf[..n].to_ascii_uppercase())?,
///             Err(RecvError::Closed) => break,
///             Err(e) => return Err(e.into()),
///         }
///     }
///     served += 1;
/// }
/// assert_eq!(served, 2);
/// clients.join().expect("client thread");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Listener {
    inner: FlowListener,
}

impl Listener {
    /// Binds `name` with default options. A name left behind by a crashed
    /// listener is reclaimed; a live one is `InUse`.
    pub fn bind(name: &str) -> Result<Listener, BindError> {
        Listener::bind_with(name, ListenerOptions::new())
    }

    /// Binds `name` with `opts`.
    pub fn bind_with(name: &str, opts: ListenerOptions) -> Result<Listener, BindError> {
        FlowListener::bind_with(name, opts.inner).map(|inner| Listener { inner })
    }

    /// The bound name.
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Connections refused or broken off during setup so far.
    pub fn refused(&self) -> u64 {
        self.inner.refused()
    }

    /// Accepts the next flow, waiting as long as it takes. A listener given
    /// an invoker-mode engine ([`ListenerOptions::engine`]) drives it while
    /// it waits.
    #[inline]
    pub fn accept(&mut self) -> Result<Flow, AcceptError> {
        self.accept_deadline(Deadline::Never)
    }

    /// [`accept`](Self::accept) without waiting for a flow to be allocated:
    /// [`AcceptError::WouldBlock`] when no request is queued. A queued one is
    /// still set up, which takes a round trip with the allocating side: it
    /// gets a short grace (a fraction of a second) to answer.
    #[inline]
    pub fn try_accept(&mut self) -> Result<Flow, AcceptError> {
        self.accept_deadline(Deadline::Now)
    }

    /// [`accept`](Self::accept), waiting until `deadline`
    /// ([`AcceptError::TimedOut`] after it): the one implementation the
    /// other accept forms call.
    #[inline]
    pub fn accept_deadline(&mut self, deadline: Deadline) -> Result<Flow, AcceptError> {
        self.inner.accept(deadline).map(Flow::from_end)
    }

    /// [`accept`](Self::accept), waiting at most `timeout`
    /// ([`AcceptError::TimedOut`] after it).
    #[inline]
    pub fn accept_timeout(&mut self, timeout: Duration) -> Result<Flow, AcceptError> {
        self.accept_deadline(Deadline::after(timeout))
    }
}

impl AsRawFd for Listener {
    /// The listening socket: readable when a flow waits to be accepted.
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}
