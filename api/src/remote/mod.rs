//! Flows between hosts, through an engine (first cut). The application's
//! [`Flow`] is one end of an in-process [`Flow::pair`]; the engine holds the
//! other and carries its messages over TCP (io_uring) to the engine at
//! `host:port`, which allocates a flow to the local listener of that name
//! and bridges it the same way. The application sees a local flow: every
//! API form, zero-copy included, on its side.
//!
//! `Flow::alloc("name@host:port", ..)` starts an embedded engine on first
//! use, configured by [`EngineConfig::load`] (`RINGFLOW_CONFIG`,
//! `RINGFLOW_*`); [`RemoteEngine::start`] runs one explicitly.
//!
//! What this first cut does not do yet (see the issue tracker): resume a
//! reliable flow after a reconnect (a lost connection ends its flows),
//! carry lossy QoS over UDP, and write the remote listener's granted QoS
//! back (the flow keeps what was asked).

mod bridge;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringflow_core::config::EngineConfig;
use ringflow_core::engine::{Engine, EngineError, Waker};
use ringflow_core::flow::Qos;
use ringflow_core::Deadline;

use crate::error::AllocError;
use crate::Flow;
use bridge::{Bridge, Command, Shared};

/// An engine carrying flows to and from other hosts.
pub struct RemoteEngine {
    /// Behind a mutex only so the handle is `Sync` (the embedded engine is
    /// a static); allocs never take it.
    engine: Mutex<Option<Engine>>,
    shared: Arc<Shared>,
    waker: Waker,
    listen: Option<SocketAddr>,
}

impl RemoteEngine {
    /// Starts an engine with `config` (its `net.listen`, if set, accepts
    /// remote flows: they are allocated to listeners of this host, found in
    /// `runtime_dir` or the default runtime directory).
    pub fn start(config: &EngineConfig, runtime_dir: Option<PathBuf>) -> Result<RemoteEngine, EngineError> {
        let listen = match &config.net().listen {
            Some(hp) => Some(
                (hp.host(), hp.port())
                    .to_socket_addrs()
                    .ok()
                    .and_then(|mut a| a.next())
                    .ok_or_else(|| EngineError::Config(format!("net.listen {hp} does not resolve")))?,
            ),
            None => None,
        };
        let shared = Arc::new(Shared { commands: Mutex::new(Vec::new()) });
        let (ready_tx, ready_rx) = mpsc::channel();
        let bridge = Bridge::new(config.io_uring().clone(), listen, runtime_dir, Arc::clone(&shared), ready_tx);
        let engine = Engine::start(config, vec![Box::new(bridge)])?;
        let waker = engine.waker();
        // The bridge builds its io_uring and listener on the engine thread
        // (io_uring's single-issuer rule) and reports how that went.
        let bound = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .map_err(|_| EngineError::Config("the engine did not start its network".into()))?
            .map_err(EngineError::Config)?;
        Ok(RemoteEngine { engine: Mutex::new(Some(engine)), shared, waker, listen: bound })
    }

    /// The address remote engines reach this one at (with the port chosen
    /// when `net.listen` said 0), if it listens.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen
    }

    /// Allocates a flow to `name@host:port`: the listener `name` on the host
    /// whose engine listens at `host:port`. An engine that cannot be reached
    /// is [`AllocError::EngineUnreachable`], distinct from a name nobody
    /// listens on there ([`AllocError::NotFound`]).
    pub fn alloc(&self, target: &str, qos: &Qos, deadline: Deadline) -> Result<Flow, AllocError> {
        let (name, addr) = parse_target(target)?;
        let (app_end, engine_end) = Flow::pair(qos)?;
        let (reply_tx, reply_rx) = mpsc::channel();
        let open = Command::Open { addr, name, qos: *app_end.qos(), end: engine_end, reply: reply_tx };
        self.shared.commands.lock().unwrap_or_else(|p| p.into_inner()).push(open);
        self.waker.wake();
        let answer = match deadline.remaining() {
            None => reply_rx.recv().map_err(|_| AllocError::PeerGone),
            Some(left) => reply_rx.recv_timeout(left).map_err(|e| match e {
                mpsc::RecvTimeoutError::Timeout if deadline == Deadline::Now => AllocError::WouldBlock,
                mpsc::RecvTimeoutError::Timeout => AllocError::TimedOut,
                mpsc::RecvTimeoutError::Disconnected => AllocError::PeerGone,
            }),
        };
        answer.and_then(|r| r).map(|()| app_end)
    }

    /// Stops the engine: its flows end (their local peers see end of flow).
    pub fn shutdown(self) -> Result<(), EngineError> {
        match self.engine.lock().unwrap_or_else(|p| p.into_inner()).take() {
            Some(e) => e.shutdown(Duration::from_secs(5)).map(|_| ()),
            None => Ok(()),
        }
    }
}

/// The process's embedded engine, started on the first remote alloc.
static EMBEDDED: std::sync::OnceLock<Result<RemoteEngine, String>> = std::sync::OnceLock::new();

/// Allocates through the embedded engine (see the module header).
pub(crate) fn alloc_embedded(target: &str, qos: &Qos, deadline: Deadline) -> Result<Flow, AllocError> {
    let engine = EMBEDDED.get_or_init(|| {
        let config = EngineConfig::load().map_err(|e| e.to_string())?;
        RemoteEngine::start(&config, None).map_err(|e| e.to_string())
    });
    match engine {
        Ok(engine) => engine.alloc(target, qos, deadline),
        Err(why) => Err(AllocError::Io(std::io::Error::other(format!("the embedded engine did not start: {why}")))),
    }
}

/// Whether a flow name addresses another host (`name@host:port`).
pub(crate) fn is_remote(target: &str) -> bool {
    target.contains('@')
}

/// Splits `name@host:port` and resolves the address.
fn parse_target(target: &str) -> Result<(String, SocketAddr), AllocError> {
    let bad = || AllocError::InvalidTarget { target: target.to_owned() };
    let (name, hostport) = target.split_once('@').ok_or_else(bad)?;
    ringflow_core::control::validate_name(name).map_err(AllocError::InvalidName)?;
    let addr = hostport.to_socket_addrs().map_err(|_| bad())?.next().ok_or_else(bad)?;
    Ok((name.to_owned(), addr))
}
