//! A flow: a named, bidirectional message channel between two processes on
//! one host, through rings in shared memory (Ouroboros `flow_alloc` /
//! `flow_accept`, libdill `ipc_connect` / `ipc_accept`).
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

mod buf;
#[cfg(test)]
mod latency_tests;
mod pair;
mod recv;
mod send;
pub(crate) mod shared;

use std::mem::ManuallyDrop;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ringflow_core::control::{ConnectError, ControlConn, PeerCred, RuntimeDir};
use ringflow_core::flow::handshake::{self, Established, HandshakeError, Refusal};
use ringflow_core::flow::watch::{self, Watch};
use ringflow_core::flow::{FlowSetupError, Geometry, Qos, Role, Sides};
use ringflow_core::stats::{FlowCounter, Slot, SlotKind, FLOW_LATENCY, FLOW_RTT};
use ringflow_core::Deadline;
use ringflow_shm::Segment;

pub use buf::{RecvBuf, SendBuf};
pub use hdrhistogram::Histogram;

use crate::error::{is_resource_limit, AllocError, DeallocError};
use crate::remote::Invoker;
use shared::FlowShared;

/// Default time a blocking operation spins before it parks.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(20);

/// The send window for request/reply flows ([`Flow::set_send_window`]):
/// a few small messages per pass through the ring's first bytes.
pub const REQUEST_REPLY_WINDOW: usize = ringflow_ring::spsc::LATENCY_WINDOW;

/// Settings of a flow beyond its QoS.
#[derive(Debug, Default)]
pub struct FlowOptions {
    pub(crate) spin: Option<Duration>,
    pub(crate) runtime_dir: Option<PathBuf>,
    pub(crate) memory: Option<Segment>,
    pub(crate) latency: Option<bool>,
    /// The name a pair's ends are listed under (default "(pair)").
    pub(crate) name: Option<String>,
}

impl FlowOptions {
    /// Defaults: spin [`DEFAULT_SPIN`], the per-user runtime directory, a
    /// new memfd for the rings.
    pub fn new() -> Self {
        Self::default()
    }

    /// How long a blocking operation spins before it parks on a futex
    /// (zero: park at once).
    #[must_use]
    pub fn spin(mut self, spin: Duration) -> Self {
        self.spin = Some(spin);
        self
    }

    /// Where names live (default: `$RINGFLOW_RUNTIME_DIR`, else
    /// `$XDG_RUNTIME_DIR/ringflow`, else `$TMPDIR/ringflow-<uid>` with
    /// `/tmp` for an unset `TMPDIR`).
    #[must_use]
    pub fn runtime_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.runtime_dir = Some(dir.into());
        self
    }

    /// Lays the flow's rings out in caller-supplied memory (libdill's `_mem`
    /// idea): a fresh segment from [`Segment::create`], for example on huge
    /// pages. It must be large enough for the granted QoS
    /// ([`Flow::segment_len_for`]). The accepting side may supply the memory
    /// of the direction it receives on ([`ListenerOptions::memory`](crate::ListenerOptions::memory));
    /// this segment then holds the rest of the flow.
    #[must_use]
    pub fn memory(mut self, segment: Segment) -> Self {
        self.memory = Some(segment);
        self
    }

    /// Whether this flow records the one-way latency of every message it
    /// receives and stamps every message it sends (default: on, unless
    /// `RINGFLOW_FLOW_LATENCY=false` or `ringflow::stats::set_latency_default`).
    /// Off saves two clock readings per message (about 10 ns each here).
    #[must_use]
    pub fn latency(mut self, on: bool) -> Self {
        self.latency = Some(on);
        self
    }

    /// Lists a pair's ends under `name` (the engine names its ends after
    /// the remote flow).
    pub(crate) fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub(crate) fn dir(&self) -> Result<RuntimeDir, ringflow_core::control::DirError> {
        match &self.runtime_dir {
            Some(p) => RuntimeDir::at(p.clone()),
            None => RuntimeDir::resolve(),
        }
    }
}

/// Counters and latency histograms of one flow (this side's view), as
/// [`Flow::stats`] copies them. The same figures are published live in the
/// process's stats file, where `ringflow stat` reads them.
#[derive(Clone, Debug)]
pub struct FlowStats {
    /// Messages sent.
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Payload bytes sent.
    pub bytes_sent: u64,
    /// Payload bytes received.
    pub bytes_received: u64,
    /// Messages refused because the ring was full (lossy QoS).
    pub dropped: u64,
    /// Messages lost on their way to this side (a lossy flow between hosts:
    /// lost on the network, or dropped by the receiving engine when this
    /// side's ring stayed full), as the engine counted them.
    pub lost: u64,
    /// Times this side woke its sleeping peer (a futex wake each).
    pub wakeups: u64,
    /// Times this side slept, waiting for a message or for room.
    pub parked: u64,
    /// Times a send found the ring full (it waited, or failed).
    pub backpressure: u64,
    /// Received messages whose send stamp could not give a latency (not
    /// stamped: the sender records no latency; or a clock not shared).
    pub unstamped: u64,
    /// One-way latency of every received message, in nanoseconds: from
    /// the sender's stamp (taken as it published) to the moment a receive
    /// call handed the message over. Empty when recording is off.
    pub latency: Histogram<u64>,
}

/// Futex words of the peer's sleepers, woken after we publish. Addresses in
/// the flow's segment, kept as integers so the flow stays `Send`; valid
/// while the flow's memory is mapped (the flow holds it).
#[derive(Clone, Copy)]
pub(crate) struct Wakers {
    /// Where the peer sleeps for data (our inline ring).
    pub peer_data: usize,
    /// Where the peer sleeps for room (its inline and bulk rings).
    pub peer_space: [usize; 2],
}

impl Wakers {
    /// Wakes sleepers on `word`.
    #[inline]
    pub fn wake(word: usize) {
        // SAFETY: `word` is a futex word of the flow's segment, which the
        // flow (and so every caller holding these Wakers) keeps mapped.
        let _ = unsafe { ringflow_core::futex::wake(word as *const u32, u32::MAX) };
    }
}

/// One end of a flow.
pub struct Flow {
    // Field order is drop order: the ring sides close first, then the
    // watch registration goes, then the socket closes (telling the peer).
    /// Dropped by hand in `Drop` (closed, or abandoned), before the rest.
    pub(crate) sides: ManuallyDrop<Sides>,
    pub(crate) wakers: Wakers,
    pub(crate) shared: Arc<FlowShared>,
    pub(crate) geometry: Geometry,
    pub(crate) qos: Qos,
    pub(crate) spin: Duration,
    /// Counters and histograms, in the process's stats file.
    pub(crate) slot: Slot,
    /// Stamp sends and record receive latencies.
    pub(crate) latency: bool,
    /// The last received message's latency, until the next receive call
    /// records it.
    pub(crate) pending: Option<recv::PendingLatency>,
    name: String,
    peer: Option<PeerCred>,
    /// The peer's readiness eventfd, signalled when we publish while its
    /// receiving direction is armed.
    pub(crate) peer_event: OwnedFd,
    _watch: Watch,
    pub(crate) conn: ControlConn,
    /// The invoker-mode engine this flow drives from its calls, if any
    /// (see [`crate::remote`]).
    pub(crate) invoker: Option<Arc<Invoker>>,
    /// Dropped as if dead (see `abandon`): the ring sides stay open.
    abandoned: bool,
    /// The flow leads to another host: descriptors cannot go with its
    /// messages (`send_fds` refuses them: `TooManyFds { max: 0 }`).
    pub(crate) crosses_hosts: bool,
}

impl Flow {
    /// Allocates a flow to the listener bound to `name`, asking for `qos`;
    /// waits until the listener accepts or `deadline` passes. The granted
    /// QoS (sizes may be lowered) is [`qos`](Self::qos). A name of the form
    /// `name@host:port` reaches a listener on another host through the
    /// process's embedded engine (see [`crate::remote`]); so does a plain
    /// name no listener of this host has bound, when the engine
    /// configuration's `net.peers` knows where it lives.
    pub fn alloc(name: &str, qos: &Qos, deadline: Deadline) -> Result<Flow, AllocError> {
        Flow::alloc_with(name, qos, deadline, FlowOptions::new())
    }

    /// [`alloc`](Self::alloc) with options (spin, runtime directory,
    /// caller-supplied memory).
    pub fn alloc_with(name: &str, qos: &Qos, deadline: Deadline, opts: FlowOptions) -> Result<Flow, AllocError> {
        let qos = qos.validate().map_err(AllocError::InvalidQos)?;
        if crate::remote::is_remote(name) {
            return crate::remote::alloc_embedded(name, &qos, deadline, opts);
        }
        let mut opts = opts;
        match Flow::alloc_local(name, &qos, deadline, &mut opts) {
            Err(AllocError::NotFound { .. }) => crate::remote::alloc_through_peers(name, &qos, deadline, opts),
            done => done,
        }
    }

    /// A flow to the listener bound to `name` on this host, never looked
    /// for elsewhere. `opts` keeps its memory unless a listener was found.
    pub(crate) fn alloc_local(
        name: &str,
        qos: &Qos,
        deadline: Deadline,
        opts: &mut FlowOptions,
    ) -> Result<Flow, AllocError> {
        let qos = qos.validate().map_err(AllocError::InvalidQos)?;
        ringflow_core::control::validate_name(name).map_err(AllocError::InvalidName)?;
        let dir = opts.dir().map_err(AllocError::RuntimeDir)?;
        let conn = ControlConn::connect_deadline(&dir, name, deadline).map_err(|e| match e {
            ConnectError::Name(n) => AllocError::InvalidName(n),
            ConnectError::NotFound { name } => AllocError::NotFound { name },
            ConnectError::PermissionDenied { .. } => AllocError::PermissionDenied,
            ConnectError::PathTooLong(p) => AllocError::Io(std::io::Error::other(p)),
            ConnectError::TimedOut if deadline == Deadline::Now => AllocError::WouldBlock,
            ConnectError::TimedOut => AllocError::TimedOut,
            ConnectError::Io { source, .. } if is_resource_limit(&source) => AllocError::ResourceLimit(source),
            ConnectError::Io { source, .. } => AllocError::Io(source),
        })?;
        let est = handshake::initiate(&conn, name, &qos, opts.memory.take(), deadline).map_err(|e| match e {
            HandshakeError::TimedOut if deadline == Deadline::Now => AllocError::WouldBlock,
            e => alloc_error(e),
        })?;
        let stats = StatsSetup { dir: Some(dir.path()), latency: opts.latency };
        Ok(Flow::from_parts(conn, est, Role::Initiator, name, opts.spin, stats)?)
    }

    /// Segment bytes a flow granted `qos` needs (for caller-supplied memory).
    pub fn segment_len_for(qos: &Qos) -> Result<usize, AllocError> {
        let qos = qos.validate().map_err(AllocError::InvalidQos)?;
        Geometry::for_qos(&qos).segment_len().map_err(AllocError::Memory)
    }

    /// A fresh segment for a flow granted at most `qos` (what
    /// [`FlowOptions::memory`] takes).
    pub(crate) fn segment_for(qos: &Qos) -> Result<Segment, AllocError> {
        let len = Flow::segment_len_for(qos)?;
        Segment::create(&ringflow_shm::SegmentOptions::new("ringflow:remote", len))
            .map_err(|e| AllocError::Memory(ringflow_core::flow::FlowSetupError::Create(e)))
    }

    /// Builds a flow over memory both sides have mapped.
    pub(crate) fn from_parts(
        conn: ControlConn,
        est: Established,
        role: Role,
        name: &str,
        spin: Option<Duration>,
        stats: StatsSetup<'_>,
    ) -> Result<Flow, FromPartsError> {
        let Established { memory, qos, own_event, peer_event } = est;
        let sides = memory.sides(role)?;
        let wakers = {
            let (tx, _) = sides.tx();
            let (rx, rx_bulk) = sides.rx();
            Wakers {
                peer_data: tx.data_wait().futex_word() as usize,
                peer_space: [rx.space_wait().futex_word() as usize, rx_bulk.space_wait().futex_word() as usize],
            }
        };
        let geometry = memory.geometry();
        let shared = Arc::new(FlowShared::new(memory, role, own_event)?);
        let hook: Arc<dyn watch::HangUp> = shared.clone();
        let watch = watch::watch(conn.as_raw_fd(), Arc::downgrade(&hook))?;
        let peer = conn.peer_cred().ok();
        let info = match role {
            Role::Initiator => 1,
            Role::Acceptor => 2,
        };
        let peer_pid = peer.map_or(0, |c| u64::from(c.pid));
        let slot = match stats.dir {
            Some(dir) => Slot::open(dir, SlotKind::Flow, name, info, peer_pid),
            None => Slot::on_heap(),
        };
        let latency = stats.latency.unwrap_or_else(ringflow_core::stats::latency_default);
        if latency {
            // Calibrate the clock now, not on the first receive.
            ringflow_core::clock::init();
        }
        Ok(Flow {
            sides: ManuallyDrop::new(sides),
            wakers,
            shared,
            geometry,
            qos,
            spin: spin.unwrap_or(DEFAULT_SPIN),
            slot,
            latency,
            pending: None,
            name: name.to_owned(),
            peer,
            peer_event,
            _watch: watch,
            conn,
            invoker: None,
            abandoned: false,
            crosses_hosts: false,
        })
    }

    /// The QoS granted to this flow (the same on both sides).
    pub fn qos(&self) -> &Qos {
        &self.qos
    }

    /// The name the flow was allocated to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The peer process's id (from the control socket's credentials).
    pub fn peer_pid(&self) -> Option<u32> {
        self.peer.map(|c| c.pid)
    }

    /// This side's counters and a snapshot of its latency histograms.
    pub fn stats(&self) -> FlowStats {
        // SYNC: Relaxed; a count for reports, nothing rides on it (its
        // writer, `report_lost`, stores Relaxed too).
        let lost = self.shared.memory.rx_lost(self.shared.role).load(std::sync::atomic::Ordering::Relaxed);
        self.slot.set(FlowCounter::Lost as usize, lost);
        let c = |k: FlowCounter| self.slot.get(k as usize);
        let mut stats = FlowStats {
            sent: c(FlowCounter::Sent),
            received: c(FlowCounter::Received),
            bytes_sent: c(FlowCounter::BytesSent),
            bytes_received: c(FlowCounter::BytesReceived),
            dropped: c(FlowCounter::Dropped),
            lost,
            wakeups: c(FlowCounter::Wakeups),
            parked: c(FlowCounter::Parked),
            backpressure: c(FlowCounter::Backpressure),
            unstamped: c(FlowCounter::Unstamped),
            latency: self.slot.hist(FLOW_LATENCY).snapshot(),
        };
        // The last message's latency, not in shared memory yet.
        match self.pending.map(|p| p.latency_ns()) {
            Some(Some(ns)) => stats.latency.saturating_record(ns),
            Some(None) => stats.unstamped += 1,
            None => {}
        }
        stats
    }

    /// Empties this side's latency histograms (counters keep counting):
    /// the start of a new measurement interval.
    pub fn reset_latency(&mut self) {
        self.pending = None;
        self.slot.reset_hists();
    }

    /// Tunes this side's sending ring for request/reply traffic (one message
    /// or a few in flight): while the peer keeps up, messages cycle through
    /// the ring's first `bytes` (plus one message) instead of all of it, so
    /// they travel through cache lines both cores already share. On the
    /// bench's VM it took 0–9% off a 64-byte round trip over 64 KiB rings
    /// (tuning.md, "Window"): the ring's share of a flow's round trip.
    /// [`REQUEST_REPLY_WINDOW`] suits small messages; `None` turns it off
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
    pub fn set_send_window(&mut self, bytes: Option<usize>) {
        self.sides.get().tx.set_window(bytes.unwrap_or(usize::MAX));
    }

    /// Whether this side stamps and records latencies.
    pub fn records_latency(&self) -> bool {
        self.latency
    }

    /// Messages sent so far (cheap: no histogram copy).
    pub(crate) fn sent_count(&self) -> u64 {
        self.slot.get(FlowCounter::Sent as usize)
    }

    /// Messages received so far.
    pub(crate) fn received_count(&self) -> u64 {
        self.slot.get(FlowCounter::Received as usize)
    }

    /// Engine side: records one round trip of this flow (a message's
    /// departure to its acknowledgement), in the engine's end: `ringflow
    /// stat` shows it with the engine's process.
    pub(crate) fn record_rtt(&self, ns: u64) {
        self.slot.hist(FLOW_RTT).record(ns);
    }

    /// Engine side: reports `total` messages lost on their way to the
    /// local peer (see [`FlowStats::lost`]).
    pub(crate) fn report_lost(&self, total: u64) {
        // SYNC: Relaxed; see `stats`.
        self.shared.memory.tx_lost(self.shared.role).store(total, std::sync::atomic::Ordering::Relaxed);
    }

    /// Largest message sent inline through the ring; larger ones travel
    /// through the flow's bulk area (still zero-copy).
    pub fn inline_max(&self) -> usize {
        self.geometry.inline_max
    }

    /// Whether the peer has left (closed or died) as far as this side knows.
    pub fn is_peer_gone(&self) -> bool {
        self.shared.state() != shared::LIVE
    }

    /// Closes the flow, first waiting until the peer has consumed every
    /// message sent (a reliable flow's linger), or `deadline` passes, or the
    /// peer leaves. The peer then reads everything and gets end of flow.
    pub fn dealloc(mut self, deadline: Deadline) -> Result<(), DeallocError> {
        self.close_tx();
        let sent = self.sent_count();
        let consumed = self.shared.memory.tx_consumed(self.shared.role);
        // A figure the peer reports: trusted only for this wait (a lie ends
        // the linger early, or lets it run to its deadline or the peer's end).
        let unconsumed = || sent.saturating_sub(ringflow_ring::linger::consumed(consumed));
        let outcome = if let Some(invoker) = self.invoker.clone() {
            // Invoker mode: the acknowledgements arrive as this thread runs
            // the engine.
            let (tx, _) = self.sides.tx();
            let shared = &self.shared;
            let done = || unconsumed() == 0 || tx.is_consumer_closed() || shared.state() != shared::LIVE;
            Ok(if invoker.drive_until(done, Duration::ZERO, deadline) {
                ringflow_core::WaitOutcome::Ready
            } else {
                ringflow_core::WaitOutcome::TimedOut
            })
        } else {
            let (tx, _) = self.sides.tx();
            let shared = &self.shared;
            ringflow_core::wait_until_with(
                || tx.space_wait(),
                || unconsumed() == 0 || tx.is_consumer_closed() || shared.state() != shared::LIVE,
                Duration::ZERO,
                deadline,
                Some(shared.alarm()),
                linger_barrier,
            )
        };
        match (outcome, unconsumed()) {
            (_, 0) => Ok(()),
            (Ok(ringflow_core::WaitOutcome::TimedOut), n) => Err(DeallocError::TimedOut { unconsumed: n }),
            (_, n) if self.sides.tx().0.is_consumer_closed() => Err(DeallocError::Closed { unconsumed: n }),
            (_, n) => Err(DeallocError::PeerGone { unconsumed: n }),
        }
    }

    /// Engine side: tells the local sender that `total` of its messages
    /// have been consumed (by the remote application), for its linger.
    pub(crate) fn confirm_consumed(&self, total: u64) {
        ringflow_ring::linger::store_consumed(self.shared.memory.rx_consumed(self.shared.role), total);
        // A sender lingering in `dealloc` sleeps on its space word: woken
        // unconditionally here.
        Wakers::wake(self.wakers.peer_space[0]);
    }

    /// Engine side: how many of our messages the local peer says it has
    /// consumed (never more than we sent).
    pub(crate) fn peer_consumed(&self) -> u64 {
        // SYNC: Acquire; pairs with the Release in `count_consumed` on the peer.
        self.shared
            .memory
            .tx_consumed(self.shared.role)
            .load(std::sync::atomic::Ordering::Acquire)
            .min(self.sent_count())
    }

    /// Engine side: whether the local peer has closed its receiving side
    /// (it dropped its flow): nothing more we send will be read.
    pub(crate) fn peer_stopped_reading(&self) -> bool {
        self.sides.tx().0.is_consumer_closed()
    }

    /// Engine side: drops this end as if its process had died (the rings
    /// stay open), so the local peer reads what is there and then gets
    /// `PeerGone`: how the death of a remote application reaches it.
    pub(crate) fn abandon(mut self) {
        self.abandoned = true;
    }

    /// Closes the sending sides and wakes a peer asleep waiting for data
    /// (or waiting on its readiness descriptor).
    pub(crate) fn close_tx(&mut self) {
        let s = self.sides.get();
        s.tx_bulk.close();
        let notify = s.tx.close();
        send::published(
            notify,
            &self.wakers,
            &self.slot,
            self.shared.memory.tx_armed(self.shared.role),
            self.peer_event.as_raw_fd(),
        );
    }
}

impl AsRawFd for Flow {
    /// A descriptor (a datagram socket) that becomes readable when the flow may have
    /// a message to read or has ended, for epoll-based event loops (register
    /// it for `EPOLLIN`). It is edge-like: a receive that finds nothing
    /// (`WouldBlock`) resets it and re-arms it, so after it fires, receive
    /// with the `try_` forms until `WouldBlock`.
    fn as_raw_fd(&self) -> RawFd {
        // SYNC: Relaxed; read only by this flow's own receive path, which
        // the caller orders after this call.
        self.shared.fd_mode.store(true, std::sync::atomic::Ordering::Relaxed);
        // Start readable: the caller's first look decides, then re-arms.
        self.shared.signal_readiness();
        self.shared.readiness.0.as_raw_fd()
    }
}

impl Drop for Flow {
    /// Closes every side at once, without waiting (use
    /// [`dealloc`](Flow::dealloc) to linger), and wakes the peer's sleepers.
    fn drop(&mut self) {
        if self.abandoned {
            // SAFETY: `sides` is taken once, here in drop, and never used after.
            unsafe { ManuallyDrop::take(&mut self.sides) }.abandon();
            return;
        }
        self.record_pending();
        self.close_tx();
        let s = self.sides.get();
        let a = s.rx.close();
        let b = s.rx_bulk.close();
        if a.is_wake() {
            Wakers::wake(self.wakers.peer_space[0]);
        }
        if b.is_wake() {
            Wakers::wake(self.wakers.peer_space[1]);
        }
        // SAFETY: dropped once, here in drop, and never used after.
        unsafe { ManuallyDrop::drop(&mut self.sides) };
    }
}

impl std::fmt::Debug for Flow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flow")
            .field("name", &self.name)
            .field("qos", &self.qos)
            .field("sent", &self.sent_count())
            .field("received", &self.received_count())
            .finish()
    }
}

/// Where a new flow's statistics go: the stats file of a runtime
/// directory (or the heap), and whether it records latencies (`None`: the
/// process default).
#[derive(Clone, Copy, Default)]
pub(crate) struct StatsSetup<'a> {
    pub dir: Option<&'a Path>,
    pub latency: Option<bool>,
}

/// Why an accepted or allocated flow could not be assembled.
#[derive(Debug)]
pub(crate) enum FromPartsError {
    Ring(ringflow_ring::AttachError),
    Watch(std::io::Error),
}

impl From<ringflow_ring::AttachError> for FromPartsError {
    fn from(e: ringflow_ring::AttachError) -> Self {
        FromPartsError::Ring(e)
    }
}

impl From<FromPartsError> for AllocError {
    fn from(e: FromPartsError) -> Self {
        match e {
            FromPartsError::Ring(r) => AllocError::Memory(FlowSetupError::Ring(r)),
            FromPartsError::Watch(e) => AllocError::Io(e),
        }
    }
}

impl From<std::io::Error> for FromPartsError {
    fn from(e: std::io::Error) -> Self {
        FromPartsError::Watch(e)
    }
}

/// How long a lingering `dealloc` sleeps at most between looks when no
/// process-wide barrier is available (see [`linger_barrier`]).
const LINGER_SLICE: Duration = Duration::from_millis(10);

/// The lingering sender's side of the linger handshake
/// (`ringflow_ring::linger`): the receiver orders its consumed count before
/// its look at our closed flag with a compiler fence only, so after our
/// sleeper announcement a process-wide barrier must put the missing fence
/// into its instruction stream before we re-read the count. Without
/// membarrier (seccomp, `nohz_full`), each sleep is capped instead, so a
/// count the barrier would have shown is seen one slice later.
fn linger_barrier(wp: &ringflow_ring::WaitPoint<'_>) -> std::io::Result<Option<Duration>> {
    match ringflow_core::membarrier::barrier_all(wp.needs_membarrier()) {
        Ok(()) => Ok(None),
        Err(_) => Ok(Some(LINGER_SLICE)),
    }
}

fn alloc_error(e: HandshakeError) -> AllocError {
    match e {
        HandshakeError::Refused(Refusal::PermissionDenied) => AllocError::PermissionDenied,
        HandshakeError::Refused(r) => AllocError::Refused(r),
        HandshakeError::Version { found } => {
            AllocError::CorruptPeer(format!("listener speaks control protocol version {found}"))
        }
        HandshakeError::Protocol(what) => AllocError::CorruptPeer(what.to_owned()),
        HandshakeError::BadGrant => AllocError::CorruptPeer("granted a QoS that was not asked for".into()),
        HandshakeError::Qos(q) => AllocError::InvalidQos(q),
        HandshakeError::TimedOut => AllocError::TimedOut,
        HandshakeError::PeerGone => AllocError::PeerGone,
        HandshakeError::Memory(m) | HandshakeError::OwnMemory(m) => AllocError::Memory(m),
        HandshakeError::Io(e) if is_resource_limit(&e) => AllocError::ResourceLimit(e),
        HandshakeError::Io(e) => AllocError::Io(e),
        HandshakeError::Send(e) => AllocError::Io(std::io::Error::other(e)),
    }
}
