//! A listener: binds a name on this host and accepts flows allocated to it
//! (Ouroboros `flow_accept`, libdill `ipc_listen` / `ipc_accept`).
//!
//! The name is a Unix socket in the per-user runtime directory (mode 0700;
//! the socket 0600). Who may connect is checked by the peer's credentials
//! ([`Permit`]: the same user by default). A peer that is refused or breaks
//! the handshake never ends an accept: it is counted and the listener waits
//! for the next one.

use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::control::{self, ControlListener, Permit, RuntimeDir};
use crate::flow::handshake::{self, HandshakeError, Refusal};
use crate::flow::{MemorySupply, QosLimits, Role};
use crate::Deadline;

use crate::flow::end::{DirChoice, FlowEnd, StatsSetup};
use crate::flow::error::{is_resource_limit, AcceptError, BindError};
use crate::remote::invoker::Invoker;

/// Longest a connecting peer may take over the handshake.
const SETUP_LIMIT: Duration = Duration::from_secs(5);
/// The same under `Deadline::Now` (a try: the peer's request is normally
/// already queued).
const SETUP_NOW: Duration = Duration::from_millis(100);

/// Settings of a listener.
#[derive(Clone, Debug, Default)]
pub struct ListenerOptions {
    limits: QosLimits,
    permit: Permit,
    spin: Option<Duration>,
    runtime_dir: Option<DirChoice>,
    latency: Option<bool>,
    prefault: Option<bool>,
    /// The invoker-mode engine the accepts drive, and whose flows to this
    /// listener drive it.
    invoker: Option<Arc<Invoker>>,
    /// Supplies each accepted flow's receiving direction, if set.
    memory: Option<MemorySupply>,
    /// Flows from other hosts (through an engine) are accepted.
    remote: bool,
}

impl ListenerOptions {
    /// Defaults: the same user only, default QoS limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// The most this listener grants (larger requests are lowered).
    #[must_use]
    pub fn limits(mut self, limits: QosLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Who may connect.
    #[must_use]
    pub fn permit(mut self, permit: Permit) -> Self {
        self.permit = permit;
        self
    }

    /// Spin time of the accepted flows' blocking operations.
    #[must_use]
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = Some(spin);
        self
    }

    /// Where names live (see [`FlowOptions::runtime_dir`](crate::flow::end::FlowOptions::runtime_dir)).
    #[must_use]
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(DirChoice { path: dir.into(), shared: false });
        self
    }

    /// Binds in a runtime directory shared with other users (see
    /// [`RuntimeDir::shared`]): an existing directory this user owns that
    /// nobody else can write; its mode says who reaches the name, and
    /// [`permit`](Self::permit) who is admitted (add their uids or a gid).
    #[must_use]
    pub fn shared_runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(DirChoice { path: dir.into(), shared: true });
        self
    }

    /// Whether accepted flows record latencies (see
    /// [`FlowOptions::latency`](crate::flow::end::FlowOptions::latency)).
    #[must_use]
    pub fn latency(mut self, on: bool) -> Self {
        self.latency = Some(on);
        self
    }

    /// Whether accepted flows fault their rings in at setup (see
    /// [`FlowOptions::prefault`](crate::flow::end::FlowOptions::prefault)).
    #[must_use]
    pub fn prefault(mut self, on: bool) -> Self {
        self.prefault = Some(on);
        self
    }

    /// The invoker-mode engine this listener's application runs: a waiting
    /// accept drives it (a remote flow can only arrive through it), and a
    /// flow it allocates to this listener drives it from its calls.
    #[must_use]
    pub fn invoker(mut self, invoker: Arc<Invoker>) -> Self {
        self.invoker = Some(invoker);
        self
    }

    /// Whether flows from other hosts, which this host's engine allocates
    /// for remote opens, are accepted (default: no; a refused one is
    /// counted in [`FlowListener::refused`] and its opener gets
    /// `PermissionDenied`).
    #[must_use]
    pub fn remote(mut self, on: bool) -> Self {
        self.remote = on;
        self
    }

    /// Lays each accepted flow's receiving direction out in memory `supply`
    /// makes (see `ringflow_api::ListenerOptions::memory`).
    #[must_use]
    pub fn memory(mut self, supply: MemorySupply) -> Self {
        self.memory = Some(supply);
        self
    }
}

/// A bound name, accepting flows.
pub struct FlowListener {
    ctl: ControlListener,
    opts: ListenerOptions,
    /// The runtime directory (its stats file takes accepted flows' slots).
    dir: PathBuf,
    refused: u64,
}

impl FlowListener {
    /// Binds `name` with default options. A name left behind by a crashed
    /// listener is reclaimed; a live one is `InUse`.
    pub fn bind(name: &str) -> Result<FlowListener, BindError> {
        FlowListener::bind_with(name, ListenerOptions::new())
    }

    /// Binds `name` with `opts`.
    pub fn bind_with(name: &str, opts: ListenerOptions) -> Result<FlowListener, BindError> {
        control::validate_name(name).map_err(BindError::InvalidName)?;
        let dir = match &opts.runtime_dir {
            Some(choice) => choice.open(),
            None => RuntimeDir::resolve(),
        }
        .map_err(BindError::RuntimeDir)?;
        let ctl = ControlListener::bind(&dir, name).map_err(|e| match e {
            control::BindError::Name(n) => BindError::InvalidName(n),
            control::BindError::InUse { name } => BindError::InUse { name },
            control::BindError::PathTooLong(p) => BindError::PathTooLong { path: p.path, len: p.len, max: p.max },
            control::BindError::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
                BindError::PermissionDenied(source)
            }
            control::BindError::Io { source, .. } => BindError::Io(source),
        })?;
        Ok(FlowListener { ctl, opts, dir: dir.path().to_path_buf(), refused: 0 })
    }

    /// The bound name.
    pub fn name(&self) -> &str {
        self.ctl.name()
    }

    /// Connections refused or broken off during setup so far.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Accepts the next flow, waiting until `deadline`. A listener given an
    /// invoker-mode engine ([`ListenerOptions::invoker`]) drives it while
    /// it waits.
    pub fn accept(&mut self, deadline: Deadline) -> Result<FlowEnd, AcceptError> {
        let Some(invoker) = self.opts.invoker.clone() else {
            return self.accept_now_or_wait(deadline);
        };
        let mut outcome = None;
        let accepted = invoker.drive_until(
            || match self.accept_now_or_wait(Deadline::Now) {
                Err(AcceptError::WouldBlock) => false,
                other => {
                    outcome = Some(other);
                    true
                }
            },
            Duration::ZERO,
            deadline,
        );
        match outcome {
            Some(r) if accepted => r,
            _ => Err(if deadline == Deadline::Now { AcceptError::WouldBlock } else { AcceptError::TimedOut }),
        }
    }

    fn accept_now_or_wait(&mut self, deadline: Deadline) -> Result<FlowEnd, AcceptError> {
        let mut failed = 0;
        loop {
            // Connections refused or broken off in setup do not hold the
            // call past its deadline: clients that keep connecting and
            // failing (a flood of bad requests) would otherwise keep it in
            // this loop for ever, a `try_accept` included.
            if failed > 0 && setup_gave_up(deadline, failed) {
                return Err(if deadline == Deadline::Now { AcceptError::WouldBlock } else { AcceptError::TimedOut });
            }
            let conn = self.ctl.accept(deadline.remaining()).map_err(|e| match e {
                control::AcceptError::WouldBlock => AcceptError::WouldBlock,
                control::AcceptError::TimedOut => AcceptError::TimedOut,
                control::AcceptError::Io { source, .. } if is_resource_limit(&source) => {
                    AcceptError::ResourceLimit(source)
                }
                control::AcceptError::Io { source, .. } => AcceptError::Io(source),
            })?;
            if self.opts.permit.check_peer(&conn).is_err() {
                handshake::refuse(&conn, Refusal::PermissionDenied);
                self.refused += 1;
                failed += 1;
                continue;
            }
            // The peer sends its request right after connecting: give it a
            // moment even under `Deadline::Now`, and never more than
            // SETUP_LIMIT, so one stalled client cannot hold up the next.
            let limit = Instant::now() + if deadline == Deadline::Now { SETUP_NOW } else { SETUP_LIMIT };
            let setup = match deadline {
                Deadline::At(t) if t < limit => deadline,
                _ => Deadline::At(limit),
            };
            match handshake::respond(&conn, &self.opts.limits, self.opts.memory.as_ref(), self.opts.remote, setup) {
                Ok(est) => {
                    let stats =
                        StatsSetup { dir: Some(&self.dir), latency: self.opts.latency, prefault: self.opts.prefault };
                    let flow = FlowEnd::from_parts(conn, est, Role::Acceptor, self.ctl.name(), self.opts.spin, stats);
                    match flow {
                        Ok(mut flow) => {
                            if let Some(inv) = &self.opts.invoker {
                                // Allocated by this listener's invoker-mode
                                // engine? Then this flow drives it.
                                let key = flow.shared.memory.segment().identity();
                                if flow.peer_pid() == Some(std::process::id())
                                    && key.is_some_and(|k| inv.claim_segment(k))
                                {
                                    flow.invoker = Some(Arc::clone(inv));
                                }
                            }
                            return Ok(flow);
                        }
                        Err(_) => {
                            self.refused += 1;
                            failed += 1;
                        }
                    }
                }
                Err(HandshakeError::TimedOut) if deadline.remaining() == Some(Duration::ZERO) => {
                    self.refused += 1;
                    return Err(if deadline == Deadline::Now {
                        AcceptError::WouldBlock
                    } else {
                        AcceptError::TimedOut
                    });
                }
                Err(HandshakeError::Io(e)) if is_resource_limit(&e) => return Err(AcceptError::ResourceLimit(e)),
                Err(HandshakeError::OwnMemory(e)) => return Err(AcceptError::Memory(e)),
                Err(_) => {
                    self.refused += 1;
                    failed += 1;
                }
            }
        }
    }

    /// [`accept`](Self::accept) without waiting.
    pub fn try_accept(&mut self) -> Result<FlowEnd, AcceptError> {
        self.accept(Deadline::Now)
    }

    /// [`accept`](Self::accept), waiting at most `timeout`.
    pub fn accept_timeout(&mut self, timeout: Duration) -> Result<FlowEnd, AcceptError> {
        self.accept(Deadline::after(timeout))
    }
}

/// Connections one `try_accept` sets up at most: past this many refused
/// or broken ones it reports `WouldBlock` (the listening socket stays
/// readable while more wait).
pub const NOW_SETUP_ATTEMPTS: usize = 8;

/// Whether an accept that saw `failed` connections fail in setup stops:
/// `Deadline::Now` after [`NOW_SETUP_ATTEMPTS`], a deadline once it passed.
fn setup_gave_up(deadline: Deadline, failed: usize) -> bool {
    match deadline {
        Deadline::Now => failed >= NOW_SETUP_ATTEMPTS,
        Deadline::At(t) => Instant::now() >= t,
        Deadline::Never => false,
    }
}

impl AsRawFd for FlowListener {
    /// The listening socket: readable when a flow waits to be accepted.
    fn as_raw_fd(&self) -> RawFd {
        self.ctl.as_raw_fd()
    }
}

impl std::fmt::Debug for FlowListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("name", &self.name()).field("refused", &self.refused).finish()
    }
}
