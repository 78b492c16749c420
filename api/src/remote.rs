//! Flows between hosts, through an engine. The application's [`Flow`] is
//! one end of an in-process pair; the engine holds the other and carries its
//! messages over TCP (io_uring, or plain sockets where io_uring is refused:
//! `net.backend`) to the engine at `host:port`, which allocates a flow to
//! the local listener of that name and bridges it the same way. The
//! application sees a local flow: every API form, zero-copy included, on
//! its side.
//!
//! `Flow::alloc("name@host:port", ..)` starts an embedded engine on first
//! use, configured by [`EngineConfig::load`] (`RINGFLOW_CONFIG`,
//! `RINGFLOW_*`); [`RemoteEngine::start`] runs one explicitly.
//!
//! Reliable flows survive a dropped connection: the engines reconnect and
//! resume with nothing lost or duplicated, and `dealloc` lingers until the
//! remote *application* has consumed every message. A flow whose link stays
//! down longer than its QoS peer timeout, or whose remote application dies,
//! ends with `PeerGone` after every message that made it.
//!
//! With `engine.mode = "invoker"` no engine thread runs: the application's
//! threads drive the engine inside their flow calls. A listener that
//! receives remote flows through such an engine is told of it
//! ([`ListenerOptions::engine`](crate::ListenerOptions::engine)): its
//! accepts then drive the engine.
//!
//! Lossy flows ride UDP once a datagram from the peer proved the path, else
//! TCP; their losses show in the receiver's `FlowStats::lost`. A flow whose
//! QoS asks for `checksum` has a CRC32C on every data frame. File
//! descriptors cannot leave their host: `send_fds` on a remote flow refuses
//! them (`TooManyFds { max: 0 }`).
//!
//! The engine and its bridge live in ringflow-core
//! (`ringflow_core::remote`); this module is their public face.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use ringflow_core::remote::{
    Backend, HostService, Invoker, RemoteStats, ENGINE_NAME, LARGE_BATCH, LARGE_SEND, MIND_EVERY, SEND_BATCH, WAIT_CAP,
};

use ringflow_core::config::{EngineConfig, ThreadingMode};
use ringflow_core::engine::EngineError;
use ringflow_core::flow::error::{AllocError, BindError};
use ringflow_core::flow::Qos;
use ringflow_core::Deadline;

use crate::Flow;

/// An engine carrying flows to and from other hosts.
pub struct RemoteEngine {
    pub(crate) inner: ringflow_core::remote::RemoteEngine,
}

impl RemoteEngine {
    /// Starts an engine with `config` (its `net.listen`, if set, accepts
    /// remote flows: they are allocated to listeners of this host, found in
    /// `runtime_dir` or the default runtime directory).
    pub fn start(config: &EngineConfig, runtime_dir: Option<PathBuf>) -> Result<RemoteEngine, EngineError> {
        ringflow_core::remote::RemoteEngine::start(config, runtime_dir).map(|inner| RemoteEngine { inner })
    }

    /// Invoker mode: runs one duty cycle of the engine on this thread and
    /// returns the work done (flows of this engine do it from their calls;
    /// call this when the application waits elsewhere). 0 in dedicated mode.
    #[inline]
    pub fn invoke(&self) -> usize {
        self.inner.invoke()
    }

    /// Invoker mode: the engine, for the members of groups that cross
    /// hosts through it to drive (`GroupOptions::invoker`); `None` in
    /// dedicated mode (the engine runs on its own).
    ///
    /// ```no_run
    /// # extern crate ringflow_api as ringflow;
    /// # fn f(engine: &ringflow::remote::RemoteEngine) -> Result<(), Box<dyn std::error::Error>> {
    /// use ringflow::{Group, GroupOptions};
    /// let opts = GroupOptions::new().invoker(engine.invoker());
    /// let member = Group::join("orders", &opts)?;
    /// # Ok(()) }
    /// ```
    pub fn invoker(&self) -> Option<std::sync::Arc<Invoker>> {
        self.inner.invoker().cloned()
    }

    /// Counters of the engine's traffic so far.
    pub fn stats(&self) -> RemoteStats {
        self.inner.stats()
    }

    /// The transport the engine drives its sockets with: io_uring, or
    /// plain sockets and why (`net.backend`).
    pub fn backend(&self) -> Backend {
        self.inner.backend()
    }

    /// The mode the engine runs in.
    pub fn mode(&self) -> ThreadingMode {
        self.inner.mode()
    }

    /// The address remote engines reach this one at (with the port chosen
    /// when `net.listen` said 0), if it listens.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.inner.listen_addr()
    }

    /// Allocates a flow to `name@host:port`: the listener `name` on the host
    /// whose engine listens at `host:port`; waits as long as it takes for
    /// the far side's answer. An engine that cannot be reached is
    /// [`AllocError::EngineUnreachable`], distinct from a name nobody
    /// listens on there ([`AllocError::NotFound`]).
    #[inline]
    pub fn alloc(&self, target: &str, qos: &Qos) -> Result<Flow, AllocError> {
        self.alloc_deadline(target, qos, Deadline::Never)
    }

    /// [`alloc`](Self::alloc) without waiting. A malformed target comes back
    /// at once ([`AllocError::InvalidTarget`]); otherwise setting the flow
    /// up is a round trip with the far engine, which a call that never
    /// waits cannot make, so this is [`AllocError::WouldBlock`] unless the
    /// answer is already there. A `host` given by name rather than address
    /// is resolved first, which may wait for the system's resolver.
    #[inline]
    pub fn try_alloc(&self, target: &str, qos: &Qos) -> Result<Flow, AllocError> {
        self.alloc_deadline(target, qos, Deadline::Now)
    }

    /// [`alloc`](Self::alloc), waiting until `deadline`
    /// ([`AllocError::TimedOut`] after it): the one implementation the other
    /// alloc forms call.
    #[inline]
    pub fn alloc_deadline(&self, target: &str, qos: &Qos, deadline: Deadline) -> Result<Flow, AllocError> {
        self.inner.alloc(target, qos, deadline).map(Flow::from_end)
    }

    /// [`alloc`](Self::alloc), waiting at most `timeout`
    /// ([`AllocError::TimedOut`] after it).
    #[inline]
    pub fn alloc_timeout(&self, target: &str, qos: &Qos, timeout: Duration) -> Result<Flow, AllocError> {
        self.alloc_deadline(target, qos, Deadline::after(timeout))
    }

    /// Serves every process of the host: binds [`ENGINE_NAME`] in
    /// `runtime_dir` (default: the per-user one), and a process that
    /// allocates a remote flow while it is bound attaches to this engine
    /// instead of starting its own (`ringflow engine` does this). Serving
    /// stops when the returned handle is dropped. Dedicated mode only.
    pub fn serve_host(&self, runtime_dir: Option<PathBuf>) -> Result<HostService, BindError> {
        self.inner.serve_host(runtime_dir)
    }

    /// Stops the engine cleanly: refuses new flows, waits up to `flush` for
    /// every reliable message in flight to be acknowledged and every
    /// received one to be delivered, then stops (flows still open end; their
    /// local peers see end of flow). Returns whether everything was flushed.
    pub fn shutdown_within(self, flush: Duration) -> Result<bool, EngineError> {
        self.shutdown_deadline(Deadline::after(flush))
    }

    /// [`shutdown_within`](Self::shutdown_within), flushing until `deadline`
    /// ([`Deadline::Never`]: as long as it takes, [`Deadline::Now`]: one
    /// look): the one implementation under it. There is no blocking
    /// `shutdown` that flushes: [`shutdown`](Self::shutdown) stops at once.
    #[inline]
    pub fn shutdown_deadline(self, deadline: Deadline) -> Result<bool, EngineError> {
        self.inner.shutdown_deadline(deadline)
    }

    /// Stops the engine at once: its flows end (their local peers see end
    /// of flow); see [`shutdown_within`](Self::shutdown_within) to flush first.
    pub fn shutdown(self) -> Result<(), EngineError> {
        self.inner.shutdown()
    }
}

impl std::fmt::Debug for RemoteEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteEngine")
            .field("mode", &self.mode())
            .field("listen", &self.listen_addr())
            .finish_non_exhaustive()
    }
}
