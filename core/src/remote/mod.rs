//! Flows between hosts, through an engine: an engine agent (the bridge)
//! and the engine's handle ([`RemoteEngine`]); ringflow-api's `remote`
//! module is their public face. The application's flow is one end of an
//! in-process [`FlowEnd::pair`]; the engine holds the
//! other and carries its messages over TCP (io_uring, or plain sockets where
//! io_uring is refused: `net.backend`) to the engine at
//! `host:port`, which allocates a flow to the local listener of that name
//! and bridges it the same way. The application sees a local flow: every
//! API form, zero-copy included, on its side.
//!
//! `Flow::alloc("name@host:port", ..)` starts an embedded engine on first
//! use, configured by [`EngineConfig::load`] (`RINGFLOW_CONFIG`,
//! `RINGFLOW_*`); [`RemoteEngine::start`] runs one explicitly.
//!
//! Reliable flows survive a dropped connection: the engines reconnect and
//! resume with nothing lost or duplicated, and `dealloc` lingers until the
//! remote *application* has consumed every message (see `bridge`). A flow
//! whose link stays down longer than its QoS peer timeout, or whose remote
//! application dies, ends with `PeerGone` after every message that made it.
//!
//! With `engine.mode = "invoker"` no engine thread runs: the application's
//! threads drive the engine inside their flow calls, and a listener told of
//! the engine drives it while it waits (see `invoker`).
//!
//! Lossy flows ride UDP once a datagram from the peer proved the path (see
//! `bridge::udp`), else TCP; their losses show in the receiver's
//! `FlowStats::lost`. A flow whose QoS asks for `checksum` has a CRC32C on
//! every data frame. File descriptors cannot leave their host: `send_fds`
//! on a remote flow refuses them (`TooManyFds { max: 0 }`).

mod authkey;
mod bridge;
#[cfg(test)]
mod errors_tests;
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) mod guest;
mod host;
pub(crate) mod invoker;
mod peers;
#[cfg(test)]
mod peers_tests;

pub use crate::net::Backend;
pub use authkey::{load_key_file, random_nonce, KeyFileError};
pub use host::{HostService, ENGINE_NAME};
pub use invoker::{Invoker, LARGE_BATCH, LARGE_SEND, MIND_EVERY, SEND_BATCH, WAIT_CAP};
pub(crate) use peers::alloc_through_peers;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::{EngineConfig, ThreadingMode};
use crate::engine::{Engine, EngineError, Waker};
use crate::flow::Qos;
use crate::Deadline;

use crate::flow::end::FlowEnd;
use crate::flow::error::AllocError;
use bridge::{Bridge, Command, Reply, Shared};

/// Counters of a [`RemoteEngine`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RemoteStats {
    /// UDP datagrams carrying lossy flows' messages, sent.
    pub datagrams_sent: u64,
    /// UDP datagrams carrying messages, received.
    pub datagrams_received: u64,
    /// Datagrams the socket refused (its buffer full): their messages lost.
    pub datagrams_dropped: u64,
    /// TCP sends that copied (plain `send`), as of the engine's last duty
    /// cycle with network events.
    pub plain_sends: u64,
    /// TCP sends with SEND_ZC from the engine's own queue
    /// (`io_uring.send_zc_threshold`).
    pub zc_sends: u64,
    /// TCP sends with SEND_ZC from registered buffers
    /// (`io_uring.registered_buffers`).
    pub registered_sends: u64,
    /// Send buffers the engine registered with its io_uring: 0 unless
    /// SEND_ZC is on and `io_uring.buffer_size` reaches its threshold.
    pub registered_buffers: u64,
    /// Times a flow the engine had stopped looking at (silent for a while:
    /// its doorbell armed) was brought back by its doorbell: a publish of
    /// its local application, or its end. An engine carrying many flows
    /// looks at the busy ones only (tuning.md, "Many flows").
    pub doorbells_rung: u64,
    /// TCP reads the engine made itself, with `recv(2)`, when its io_uring
    /// said a socket had become readable (DEFER_TASKRUN only; tuning.md,
    /// "Direct receives"), as of its last duty cycle with network events.
    pub direct_receives: u64,
}

/// An engine carrying flows to and from other hosts.
pub struct RemoteEngine {
    run: Run,
    shared: Arc<Shared>,
    listen: Option<SocketAddr>,
    /// Where its listeners are (`None`: the default runtime directory):
    /// a flow addressed to this engine itself goes to them directly.
    runtime_dir: Option<PathBuf>,
    /// Its cluster node (`cluster.enabled`; wp-raft's, issue 17).
    #[cfg(feature = "cluster")]
    cluster: Option<crate::cluster::ClusterRun>,
}

enum Run {
    /// Engine threads. Behind a mutex only so the handle is `Sync` (the
    /// embedded engine is a static); allocs never take it.
    Dedicated { engine: Mutex<Option<Engine>>, waker: Waker },
    /// Driven by the application's flow calls.
    Invoker(Arc<Invoker>),
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
        let shared = Arc::new(Shared::default());
        // SYNC: Relaxed; a setting read when flows are set up, published to
        // the engine thread by its spawn.
        shared.latency.store(config.flow().latency, std::sync::atomic::Ordering::Relaxed);
        if !matches!(config.origin("flow.prefault"), None | Some(crate::config::Origin::Default)) {
            crate::flow::memory::set_prefault_default(config.flow().prefault);
        }
        let (ready_tx, ready_rx) = mpsc::channel();
        let invoker_mode = config.engine().mode == ThreadingMode::Invoker;
        let mut uring = config.io_uring().clone();
        let set = |key: &str| !matches!(config.origin(key), None | Some(crate::config::Origin::Default));
        if invoker_mode && !set("io_uring.single_issuer") && !set("io_uring.defer_taskrun") {
            // By default any application thread may drive the ring: no
            // single issuer, so no deferred task run either; cooperative
            // task run with the taskrun flag keeps the latency floor
            // (DESIGN, "The engine"). Set them explicitly to have them: the
            // engine then belongs to the thread that starts it.
            uring.single_issuer = false;
            uring.defer_taskrun = false;
            uring.coop_taskrun = !uring.sqpoll;
        }
        let owner = (invoker_mode && uring.single_issuer).then(invoker::this_thread);
        let net = config.net();
        let key = match &net.key_file {
            Some(path) => Some(load_key_file(path).map_err(EngineError::AuthKey)?),
            None => None,
        };
        let hellos = bridge::HelloPolicy { key, timeout: net.hello_timeout, max_pending: net.max_hellos };
        let keyed = hellos.key.is_some();
        let admission = bridge::Admission { hellos, budget: net.memory_budget };
        #[allow(unused_mut)]
        let mut bridge =
            Bridge::new(uring, net.backend, listen, runtime_dir.clone(), Arc::clone(&shared), ready_tx, admission);
        // The cluster node and the gateways of the groups that cross hosts
        // run in the bridge's duty cycle (`guest`): made here, they start
        // with it. Each gateway joins its group now; it reads what the
        // cluster commits (`crate::xgroup`).
        #[cfg(feature = "cluster")]
        let cluster = match (config.cluster().enabled, listen) {
            (true, _) if owner.is_some() => {
                // The node ticks when nobody calls in only through the
                // invoker's minder, which a single-issuer ring refuses.
                return Err(EngineError::Config(
                    "cluster: in engine.mode = \"invoker\" any thread must be able to drive the engine \
                     (io_uring.single_issuer = false): the cluster's ticks go on while the application is \
                     elsewhere"
                        .to_owned(),
                ));
            }
            (true, Some(addr)) => {
                let (run, port, node) = crate::cluster::start_node(config, addr)?;
                bridge.attach_cluster(bridge::ClusterHook::new(port));
                bridge.attach_guest(node);
                if !config.cluster().groups.is_empty() {
                    let committed = run.take_committed().ok_or_else(|| {
                        EngineError::Config("cluster.groups: the committed stream is taken".to_owned())
                    })?;
                    let gateways = crate::xgroup::start(
                        config,
                        runtime_dir.as_deref(),
                        run.handle().clone(),
                        committed,
                        run.take_relay(),
                    )?;
                    bridge.attach_guest(Box::new(gateways));
                }
                Some(run)
            }
            _ => None,
        };
        #[cfg(not(feature = "cluster"))]
        if config.cluster().enabled {
            return Err(EngineError::Config(
                "cluster.enabled: this build has no cluster (ringflow-core's feature `cluster`)".to_owned(),
            ));
        }
        let mut engine = Engine::start(config, vec![Box::new(bridge)])?;
        #[cfg(feature = "cluster")]
        if let Some(run) = &cluster {
            run.set_bridge_waker(engine.waker());
        }
        if invoker_mode {
            // The first duty cycle builds the network, here and now.
            engine.invoke();
        }
        // The bridge builds its io_uring and listener on the thread that
        // runs it (io_uring's single-issuer rule) and reports how that went.
        let bound = ready_rx.recv_timeout(Duration::from_secs(10)).map_err(|_| EngineError::NetworkNotReported)??;
        tracing::info!(listen = ?bound, keyed, invoker = invoker_mode, "remote engine started");
        if let Some(addr) = bound.filter(|a| !keyed && !a.ip().is_loopback()) {
            tracing::warn!(
                listen = %addr,
                "listening beyond loopback without a key (net.key_file): any host that reaches this port can \
                 open flows to this host's listeners that take remote flows"
            );
            crate::log::stderr_if_unheard(format_args!(
                "ringflow: warning: this engine listens on {addr}, beyond loopback, without a key \
                 (net.key_file): any host that reaches this port can open flows to this host's listeners that \
                 take remote flows"
            ));
        }
        let run = if invoker_mode {
            let invoker = Invoker::new(engine, owner);
            // The minder keeps timers (and the cluster's ticks) going while
            // the application is elsewhere (`invoker`'s module doc).
            let mut every = invoker::MIND_EVERY;
            if config.cluster().enabled {
                every = every.min(config.cluster().tick);
            }
            invoker.start_minder(every).map_err(EngineError::Spawn)?;
            let _ = shared.invoker.set(Arc::downgrade(&invoker));
            Run::Invoker(invoker)
        } else {
            let waker = engine.waker();
            Run::Dedicated { engine: Mutex::new(Some(engine)), waker }
        };
        Ok(RemoteEngine {
            run,
            shared,
            listen: bound,
            runtime_dir,
            #[cfg(feature = "cluster")]
            cluster,
        })
    }

    /// Its cluster node's handle, when `cluster.enabled`.
    #[cfg(feature = "cluster")]
    pub fn cluster(&self) -> Option<&crate::cluster::ClusterHandle> {
        self.cluster.as_ref().map(crate::cluster::ClusterRun::handle)
    }

    /// What its cluster node commits, in log order (see
    /// [`ClusterRun::take_committed`](crate::cluster::ClusterRun::take_committed)).
    #[cfg(feature = "cluster")]
    pub fn take_cluster_committed(&self) -> Option<std::sync::mpsc::Receiver<crate::cluster::Committed>> {
        self.cluster.as_ref().and_then(crate::cluster::ClusterRun::take_committed)
    }

    /// Invoker mode: runs one duty cycle of the engine on this thread and
    /// returns the work done (flows of this engine do it from their calls;
    /// call this when the application waits elsewhere). 0 in dedicated mode.
    pub fn invoke(&self) -> usize {
        match &self.run {
            Run::Invoker(i) => i.invoke(),
            Run::Dedicated { .. } => 0,
        }
    }

    /// Counters of the engine's traffic so far.
    pub fn stats(&self) -> RemoteStats {
        use std::sync::atomic::Ordering::Relaxed;
        // SYNC: Relaxed; see `Shared::count`.
        RemoteStats {
            datagrams_sent: self.shared.datagrams_sent.load(Relaxed),
            datagrams_received: self.shared.datagrams_received.load(Relaxed),
            datagrams_dropped: self.shared.datagrams_dropped.load(Relaxed),
            plain_sends: self.shared.plain_sends.load(Relaxed),
            direct_receives: self.shared.direct_receives.load(Relaxed),
            zc_sends: self.shared.zc_sends.load(Relaxed),
            registered_sends: self.shared.registered_sends.load(Relaxed),
            registered_buffers: self.shared.registered_buffers.load(Relaxed),
            doorbells_rung: self.shared.doorbells_rung.load(Relaxed),
        }
    }

    /// The transport the engine drives its sockets with: io_uring, or
    /// plain sockets and why (`net.backend`).
    pub fn backend(&self) -> Backend {
        self.shared.backend.get().cloned().unwrap_or(Backend::IoUring)
    }

    /// The mode the engine runs in.
    pub fn mode(&self) -> ThreadingMode {
        match self.run {
            Run::Invoker(_) => ThreadingMode::Invoker,
            Run::Dedicated { .. } => ThreadingMode::Dedicated,
        }
    }

    /// Invoker mode: the engine the application's calls drive (what
    /// [`ListenerOptions::invoker`](crate::flow::listener::ListenerOptions::invoker)
    /// takes); `None` in dedicated mode.
    pub fn invoker(&self) -> Option<&Arc<Invoker>> {
        match &self.run {
            Run::Invoker(i) => Some(i),
            Run::Dedicated { .. } => None,
        }
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
    pub fn alloc(&self, target: &str, qos: &Qos, deadline: Deadline) -> Result<FlowEnd, AllocError> {
        let (name, addr) = parse_target(target)?;
        if is_own_addr(self.listen, addr) {
            // This engine itself (it does not connect to itself): the
            // listener is on this host, reached as any local flow.
            let opts = crate::flow::end::FlowOptions::new();
            let mut opts = match &self.runtime_dir {
                Some(dir) => opts.runtime_dir(dir.clone()),
                None => opts,
            };
            return FlowEnd::alloc_local(&name, qos, deadline, &mut opts);
        }
        // SYNC: Relaxed; see `start`.
        let latency = self.shared.latency.load(std::sync::atomic::Ordering::Relaxed);
        let opts = crate::flow::end::FlowOptions::new().named(target).latency(latency);
        let (mut app_end, engine_end) = FlowEnd::pair_with(qos, opts)?;
        let (reply_tx, reply_rx) = mpsc::channel();
        let open = Command::Open { addr, name, qos: *app_end.qos(), end: engine_end, reply: Reply::Channel(reply_tx) };
        self.shared.push(open);
        let timed_out = || if deadline == Deadline::Now { AllocError::WouldBlock } else { AllocError::TimedOut };
        let answer = match &self.run {
            Run::Dedicated { waker, .. } => {
                waker.wake();
                match deadline.remaining() {
                    None => reply_rx.recv().map_err(|_| AllocError::PeerGone),
                    Some(left) => reply_rx.recv_timeout(left).map_err(|e| match e {
                        mpsc::RecvTimeoutError::Timeout => timed_out(),
                        mpsc::RecvTimeoutError::Disconnected => AllocError::PeerGone,
                    }),
                }
            }
            Run::Invoker(invoker) => {
                let mut answer = None;
                let got = |a: &mut Option<_>| match reply_rx.try_recv() {
                    Ok(r) => {
                        *a = Some(Ok(r));
                        true
                    }
                    Err(mpsc::TryRecvError::Empty) => false,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        *a = Some(Err(AllocError::PeerGone));
                        true
                    }
                };
                invoker.drive_until(|| got(&mut answer), Duration::ZERO, deadline);
                app_end.invoker = Some(Arc::clone(invoker));
                answer.unwrap_or_else(|| Err(timed_out()))
            }
        };
        let granted = answer.and_then(|r| r)?;
        app_end.crosses_hosts = true;
        app_end.qos.max_msg = granted.max_msg.min(app_end.qos.max_msg);
        app_end.qos.peer_timeout = granted.peer_timeout;
        Ok(app_end)
    }

    /// Serves every process of the host: binds [`ENGINE_NAME`] in
    /// `runtime_dir` (default: the per-user one), and a process that
    /// allocates a remote flow while it is bound attaches to this engine
    /// instead of starting its own (`ringflow engine` does this). Serving
    /// stops when the returned handle is dropped. Dedicated mode only.
    pub fn serve_host(&self, runtime_dir: Option<PathBuf>) -> Result<HostService, crate::flow::error::BindError> {
        let Run::Dedicated { waker, .. } = &self.run else {
            return Err(crate::flow::error::BindError::InvokerEngine);
        };
        let shared = Arc::clone(&self.shared);
        let waker = waker.clone();
        let listen = self.listen;
        HostService::start(runtime_dir, move |target, mut end| {
            let (name, addr) = match parse_target(target) {
                Ok(t) => t,
                Err(e) => return Err(Box::new((end, e))),
            };
            if is_own_addr(listen, addr) {
                // This engine itself: the application allocates the name
                // here (an engine does not connect to itself).
                let _ = end.try_send(&host::encode_local(&name));
                return Ok(());
            }
            let open = Command::Open { addr, name, qos: *end.qos(), end, reply: Reply::Announce };
            shared.push(open);
            waker.wake();
            Ok(())
        })
    }

    /// Stops the engine cleanly: refuses new flows, waits up to `flush` for
    /// every reliable message in flight to be acknowledged and every
    /// received one to be delivered, then stops (flows still open end; their
    /// local peers see end of flow). Returns whether everything was flushed.
    pub fn shutdown_within(self, flush: Duration) -> Result<bool, EngineError> {
        self.shutdown_deadline(Deadline::after(flush))
    }

    /// [`shutdown_within`](Self::shutdown_within), flushing until `deadline`
    /// (`Deadline::Never`: as long as it takes; `Deadline::Now`: one look).
    pub fn shutdown_deadline(self, deadline: Deadline) -> Result<bool, EngineError> {
        use std::sync::atomic::Ordering::Relaxed;
        // SYNC: Relaxed (both flags): see the bridge's duty cycle.
        self.shared.draining.store(true, Relaxed);
        let drained = || self.shared.drained.load(Relaxed);
        let flushed = match &self.run {
            Run::Invoker(invoker) => invoker.drive_until(drained, Duration::ZERO, deadline),
            Run::Dedicated { waker, .. } => loop {
                waker.wake();
                if drained() {
                    break true;
                }
                if deadline.remaining() == Some(Duration::ZERO) {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(1));
            },
        };
        self.shutdown().map(|()| flushed)
    }

    /// Stops the engine: its flows end (their local peers see end of
    /// flow); see [`shutdown_within`](Self::shutdown_within) to flush first.
    /// It waits only (at most [`CLOSE_FLUSH`]) for the ends of flows their
    /// applications closed to leave for the other host, so that the remote
    /// applications see those flows closed rather than their peer dead.
    pub fn shutdown(self) -> Result<(), EngineError> {
        self.flush_closes(Deadline::after(CLOSE_FLUSH));
        match self.run {
            Run::Dedicated { engine, .. } => match engine.lock().unwrap_or_else(|p| p.into_inner()).take() {
                Some(e) => e.shutdown(Duration::from_secs(5)).map(|_| ()),
                None => Ok(()),
            },
            Run::Invoker(invoker) => match invoker.take() {
                // Flows of this engine hold the invoker too: stop it for them all.
                Some(e) => e.shutdown(Duration::from_secs(5)).map(|_| ()),
                None => Ok(()),
            },
        }
    }
}

/// How long [`RemoteEngine::shutdown`] waits at most for the ends (`Close`)
/// of flows their applications closed to be handed to the network.
pub const CLOSE_FLUSH: Duration = Duration::from_secs(1);

impl RemoteEngine {
    /// Runs the bridge until every flow its local application closed has
    /// its end in the kernel's hands, or `deadline` passes; returns which.
    fn flush_closes(&self, deadline: Deadline) -> bool {
        use std::sync::atomic::Ordering;
        // SYNC: Release; pairs with the Acquire in the bridge's duty cycle
        // (closes made before this call are seen there).
        self.shared.closing.store(true, Ordering::Release);
        // SYNC: Relaxed; a report polled until it holds (see the bridge).
        let out = || self.shared.closes_out.load(Ordering::Relaxed);
        match &self.run {
            Run::Invoker(invoker) => invoker.drive_until(out, Duration::ZERO, deadline),
            Run::Dedicated { waker, .. } => loop {
                waker.wake();
                if out() {
                    break true;
                }
                if deadline.remaining() == Some(Duration::ZERO) {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(1));
            },
        }
    }
}

/// The process's embedded engine, started on the first remote alloc; or
/// why it did not start (kept, so every later alloc says so too).
static EMBEDDED: std::sync::OnceLock<Result<RemoteEngine, NotStarted>> = std::sync::OnceLock::new();

/// Why the embedded engine did not start.
enum NotStarted {
    Config(Arc<crate::config::ConfigError>),
    Engine(Arc<EngineError>),
}

/// Allocates through the host engine if one serves this runtime directory,
/// else through the embedded engine (see the module header).
pub(crate) fn alloc_embedded(
    target: &str,
    qos: &Qos,
    deadline: Deadline,
    opts: crate::flow::end::FlowOptions,
) -> Result<FlowEnd, AllocError> {
    parse_target(target)?;
    if let Some(flow) = host::alloc_attached(target, qos, deadline, opts)? {
        return Ok(flow);
    }
    let engine = EMBEDDED.get_or_init(|| {
        let config = EngineConfig::load().map_err(|e| NotStarted::Config(Arc::new(e)))?;
        RemoteEngine::start(&config, None).map_err(|e| NotStarted::Engine(Arc::new(e)))
    });
    match engine {
        Ok(engine) => engine.alloc(target, qos, deadline),
        Err(NotStarted::Config(e)) => Err(AllocError::Config(Arc::clone(e))),
        Err(NotStarted::Engine(e)) => Err(AllocError::EngineNotStarted(Arc::clone(e))),
    }
}

/// Whether `addr` reaches the engine listening at `listen`: the same
/// address, or its port on a loopback address when it listens on all of
/// this host's addresses or on loopback, or its port on any address of
/// this host when it listens on all of them.
fn is_own_addr(listen: Option<SocketAddr>, addr: SocketAddr) -> bool {
    let Some(listen) = listen else { return false };
    if addr == listen {
        return true;
    }
    if addr.port() != listen.port() {
        return false;
    }
    let local_ip = |ip: std::net::IpAddr| ip.is_loopback() || ip.is_unspecified();
    (local_ip(addr.ip()) && local_ip(listen.ip())) || (listen.ip().is_unspecified() && host_has_ip(addr.ip()))
}

/// Whether `ip` is an address of one of this host's interfaces
/// (`getifaddrs`); false when they cannot be listed.
fn host_has_ip(ip: std::net::IpAddr) -> bool {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `list`, freed below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return false;
    }
    let mut found = false;
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, alive
        // until freeifaddrs; the kernel's list is finite and null-ended.
        let node = unsafe { &*at };
        if !node.ifa_addr.is_null() {
            // SAFETY: a non-null ifa_addr points at a sockaddr whose family
            // says which struct it is (checked before each cast).
            let family = i32::from(unsafe { (*node.ifa_addr).sa_family });
            let this = match family {
                libc::AF_INET => {
                    // SAFETY: family AF_INET: a sockaddr_in.
                    let a = unsafe { &*(node.ifa_addr as *const libc::sockaddr_in) };
                    Some(std::net::IpAddr::from(u32::from_be(a.sin_addr.s_addr).to_be_bytes()))
                }
                libc::AF_INET6 => {
                    // SAFETY: family AF_INET6: a sockaddr_in6.
                    let a = unsafe { &*(node.ifa_addr as *const libc::sockaddr_in6) };
                    Some(std::net::IpAddr::from(a.sin6_addr.s6_addr))
                }
                _ => None,
            };
            if this == Some(ip) {
                found = true;
                break;
            }
        }
        at = node.ifa_next;
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// Whether a flow name addresses another host (`name@host:port`).
pub(crate) fn is_remote(target: &str) -> bool {
    target.contains('@')
}

/// Splits `name@host:port` and resolves the address: a target of the
/// wrong form is [`AllocError::InvalidTarget`], a well-formed host that
/// does not resolve [`AllocError::UnresolvedHost`].
pub(crate) fn parse_target(target: &str) -> Result<(String, SocketAddr), AllocError> {
    let bad = || AllocError::InvalidTarget { target: target.to_owned() };
    let (name, hostport) = target.split_once('@').ok_or_else(bad)?;
    crate::control::validate_name(name).map_err(AllocError::InvalidName)?;
    let parsed = crate::config::HostPort::parse(hostport).map_err(|_| bad())?;
    if let Some(addr) = parsed.socket_addr() {
        return Ok((name.to_owned(), addr));
    }
    let unresolved = |reason: String| AllocError::UnresolvedHost { host: parsed.host().to_owned(), reason };
    let addr = (parsed.host(), parsed.port())
        .to_socket_addrs()
        .map_err(|e| unresolved(e.to_string()))?
        .next()
        .ok_or_else(|| unresolved("the resolver returned no address".to_owned()))?;
    Ok((name.to_owned(), addr))
}

#[cfg(test)]
mod own_addr_tests {
    use super::*;

    /// An engine listening on all addresses is reached at its port on
    /// loopback and on any address of this host's interfaces, never on
    /// another host's address or another port.
    #[test]
    fn every_address_of_this_host_is_the_engine_listening_on_all() {
        let all: SocketAddr = "0.0.0.0:7788".parse().unwrap();
        assert!(is_own_addr(Some(all), "127.0.0.1:7788".parse().unwrap()));
        assert!(!is_own_addr(Some(all), "127.0.0.1:7789".parse().unwrap()));
        // A documentation address (RFC 5737's TEST-NET-3) is no address of
        // this host.
        assert!(!is_own_addr(Some(all), "203.0.113.77:7788".parse().unwrap()));
        // This host's first non-loopback IPv4 address, if it has one.
        let lan = std::net::UdpSocket::bind("0.0.0.0:0")
            .and_then(|s| s.connect("203.0.113.77:9").map(|()| s))
            .and_then(|s| s.local_addr())
            .map(|a| a.ip())
            .ok()
            .filter(|ip| !ip.is_loopback() && !ip.is_unspecified());
        match lan {
            Some(ip) => {
                assert!(host_has_ip(ip), "{ip} is this host's");
                assert!(is_own_addr(Some(all), SocketAddr::new(ip, 7788)));
                let one: SocketAddr = "127.0.0.1:7788".parse().unwrap();
                assert!(!is_own_addr(Some(one), SocketAddr::new(ip, 7788)), "listening on loopback only");
            }
            None => eprintln!("skipped the LAN address: this host routes to no network"),
        }
        assert!(!is_own_addr(None, "127.0.0.1:7788".parse().unwrap()));
    }
}
