//! The engine agent that bridges local flow ends and TCP connections to
//! other engines. It runs on one engine thread (or the invoking
//! application thread), which owns its io_uring, and never blocks there for
//! long: connects use a short timeout, and allocations to local listeners
//! (which wait for an `accept`) run on a helper thread and come back as
//! results.
//!
//! **Links.** Everything between this engine and one other engine goes over
//! one *link*: a TCP connection plus the state that outlives it. A link we
//! dialled is redialled when its connection drops; a link that dialled us
//! is found again by the peer engine's id (from the hello) when it
//! reconnects. A flow gives up — its local application gets `PeerGone` —
//! once its link has been down for longer than the flow's QoS peer timeout,
//! or when the remote engine turns out to be a new one (it restarted).
//!
//! **Per flow** (`Open` / `OpenAck` first; the granted QoS is written back):
//! - sending: messages are taken from the local ring and, on a reliable
//!   flow, copied into a [`SendWindow`] until the remote engine
//!   acknowledges that its *application* consumed them; those
//!   acknowledgements are what the local sender's `dealloc` lingers on.
//! - receiving: a [`RecvSequencer`] drops what a resend repeats; messages
//!   go into the local ring (queued while it is full); consumption by the
//!   local application is acknowledged (`Ack`).
//! - after a reconnect each side sends `Resume { next_expected }` for every
//!   flow it receives on, and sends nothing new on a flow until the peer's
//!   `Resume` says where to start: nothing is lost, nothing duplicated.
//! - the end: `Close` (the application closed its sending side; resent
//!   after a reconnect until acknowledged, and on the peer's `Resume` even
//!   after the flow finished here: the last finished flows' ends are kept
//!   for that), `Gone` (the application died:
//!   the far side gets `PeerGone` after every message, and its engine,
//!   once it delivered them, answers `Reset` so that the dead side's
//!   engine lets go of the flow), `Reset` (the application stopped reading,
//!   or the flow is unknown here).
//!
//! **What a peer can make this engine hold** (see `budget`): a frame is
//! judged at its header (a `Data` frame of a flow not here is dropped as
//! its bytes arrive; one longer than its flow's `max_msg` closes the
//! connection); a flow's queued messages stay within its sender's window;
//! everything held stays within `net.memory_budget`, a quarter of it per
//! connection.
//!
//! Lossy flows take the same path without the window: after a reconnect
//! they continue where they are, and what was lost in between is counted by
//! the receiver's sequencer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::config::IoUringSection;
use crate::engine::{Agent, EngineError};
use crate::flow::Qos;
use crate::net::{Backend, NetDriver};
use crate::uring::{ConnId, TcpEvent};
use crate::wire::{
    self, Agreed, AuthKey, CallMark, Checksum, Decoder, Features, Frame, Hello, HelloAck, HelloProof, OpenResult,
    PushError, RecvSequencer, SendWindow, WindowLimits, FIRST_SEQ,
};
use crate::Deadline;

use super::invoker::{self, Invoker};

use crate::flow::end::{FlowEnd, FlowOptions};
use crate::flow::error::{AllocError, Corruption, RecvError, SendError};

mod agent;
mod budget;
mod cluster;
mod data;
mod fast_hash;
mod frames;
mod guests;
mod links;
mod shared;
mod udp;

pub(in crate::remote) use cluster::ClusterHook;
use fast_hash::Fast;
pub(in crate::remote) use shared::{Command, Reply, Shared};

/// Incoming opens under way at once (each on a helper thread until the
/// local listener accepts); more are answered `Busy`.
const MAX_OPENING: usize = 64;
/// Finished flows whose last frame (`Close` or `Gone`) a resume may still
/// ask for (see `Bridge::ended`): the most recent this many are kept.
const ENDED_KEPT: usize = 1024;
/// Bytes queued for a connection beyond which flows stop draining into it:
/// the back-pressure that reaches a sender through its full local ring.
const MAX_UNSENT: usize = 4 << 20;
/// How long the engine thread may wait for a TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an engine keeps trying its `net.listen` address while it is
/// in use (`NetDriver::listen_patiently`) before it gives up.
const LISTEN_PATIENCE: Duration = Duration::from_secs(2);
/// A connection with nothing to send sends a keepalive this often.
const KEEPALIVE: Duration = Duration::from_millis(100);
/// A connection silent this long (no frame, no keepalive) is taken for
/// dead and dropped; its link reconnects.
const SILENT_LIMIT: Duration = Duration::from_secs(3);
/// First and longest pause between redials of a lost link.
const REDIAL_FIRST: Duration = Duration::from_millis(10);
const REDIAL_MAX: Duration = Duration::from_millis(500);
/// Consumption is acknowledged after this many messages, or once this long
/// has passed since the last acknowledgement.
const ACK_EVERY: u64 = 64;
const ACK_AFTER: Duration = Duration::from_micros(500);
/// A spinning engine looks at the clock for [`ACK_AFTER`] once in this
/// many duty cycles (and after every sleep).
const ACK_CLOCK_EVERY: u64 = 16;
/// A lossy flow's queue of messages waiting for room in the local ring;
/// beyond it messages are dropped (and counted).
const LOSSY_QUEUE: usize = 4096;
/// Bytes of buffers a flow keeps from delivered queued messages for the
/// next ones: a flow whose local ring stays full queues without allocating
/// once it has this many.
const SPARE_BYTES: usize = 1 << 20;
/// How long an idle engine sleeps when only its own timers (keepalives,
/// the silence check) need it: every other source of work wakes it.
const SETTLED_SLEEP: Duration = Duration::from_millis(50);
/// One connection may hold this share of `net.memory_budget` (1/4): a
/// single peer cannot spend it all.
const CONN_SHARE: usize = 4;
/// Duty cycles a flow stays on the hot list after its last activity (see
/// `Bridge::hot`): long against the gaps of a ping-pong, short against a
/// flow that went quiet.
const QUIET_CYCLES: u32 = 256;
/// One flow off the hot list is looked at every this many duty cycles
/// (see `Bridge::sweep`): a safety net under the doorbells, at a cost a
/// busy flow does not see.
const SWEEP_EVERY: u64 = 64;

type LinkId = u32;

/// Everything between this engine and one other engine.
struct Link {
    /// Where to redial (we dialled it); `None`: it dialled us.
    addr: Option<SocketAddr>,
    /// The current connection, if any (hello possibly still under way).
    conn: Option<ConnId>,
    /// The remote engine's id, once a hello told us.
    peer_engine: Option<u64>,
    /// When the link lost its connection (`None` while it has one).
    down_since: Option<Instant>,
    next_dial: Instant,
    backoff: Duration,
    /// Frames for the link once its hello is done (only `Open`s queue).
    queued: Vec<u8>,
    /// Lossy flows' datagrams (see `udp`).
    udp: udp::LinkUdp,
    /// Data frames on this link carry their send stamps (the peer reads
    /// them and shares this host's clock).
    stamps: bool,
}

impl Link {
    fn new(addr: Option<SocketAddr>, conn: ConnId) -> Link {
        Link {
            addr,
            conn: Some(conn),
            peer_engine: None,
            down_since: None,
            next_dial: Instant::now(),
            backoff: REDIAL_FIRST,
            queued: Vec::new(),
            udp: udp::LinkUdp::default(),
            stamps: false,
        }
    }
}

/// What a connection must do before it is trusted (`net.key_file`,
/// `net.hello_timeout_ms`, `net.max_hellos`).
pub(in crate::remote) struct HelloPolicy {
    /// The engines' pre-shared key, if this engine has one.
    pub(in crate::remote) key: Option<AuthKey>,
    /// A connection still in its hello this long after it opened is dropped.
    pub(in crate::remote) timeout: Duration,
    /// Connections in their hello at once; one more drops the oldest.
    pub(in crate::remote) max_pending: usize,
}

/// What the engine admits from other engines: connections that pass
/// `hellos`, and at most `budget` bytes (`net.memory_budget`) of what they
/// send held at once (see `budget.rs`).
pub(in crate::remote) struct Admission {
    pub(in crate::remote) hellos: HelloPolicy,
    pub(in crate::remote) budget: usize,
}

struct Conn {
    /// Received bytes not yet decoded.
    rx: Vec<u8>,
    /// The hello exchange (and the proof of the key, if any) is done: only
    /// now are its frames read.
    ready: bool,
    /// When it opened (the hello's deadline runs from here).
    opened: Instant,
    /// Our nonce on this connection (with a key).
    nonce: Option<wire::auth::Nonce>,
    /// Accepted, keyed: we answered the hello and wait for the dialler's
    /// proof of the key; what was agreed.
    proof_due: Option<Agreed>,
    /// Its hello failed and we told the peer why: nothing more is read, and
    /// it is closed once the peer hangs up or at the hello's deadline
    /// (closing at once could drop the refusal before it is sent).
    refused: bool,
    /// We dialled it (we send the Hello; the peer answers).
    dialled: bool,
    /// Its link (for a connection that dialled us: once its hello names the
    /// peer engine).
    link: Option<LinkId>,
    /// When it last received and sent, as of the timers' last tick (see
    /// `Bridge::timers`): the data path sets `rx_seen` / `tx_seen` instead
    /// of reading the clock per message, and the tick stamps them.
    last_rx: Instant,
    last_tx: Instant,
    rx_seen: bool,
    tx_seen: bool,
    /// Bytes of a frame for a flow not here still to come: dropped as
    /// they arrive, never buffered.
    skip: usize,
    /// What `rx` holds beyond its idle size, as counted in
    /// `Bridge::rx_held`.
    counted: usize,
    /// The driver's `handed` count of this connection as the bridge has
    /// seen it: its value at adoption plus every `Sent` event since. It
    /// lags the driver's count, never leads it, and outlives the driver's
    /// slot until the connection's `Closed` is handled (whose `Sent` events
    /// come first): what the close handshake compares its marks with.
    handed: u64,
}

impl Conn {
    /// A new connection, before its hello; `dialled`: we dialled it.
    /// `buffer_size`: bytes one receive hands over at most; the reassembly
    /// buffer starts large enough for a partial frame plus one of them, so
    /// a steady stream of frames smaller than a receive never grows it.
    /// A connection that dialled us starts with no reassembly buffer: a
    /// stranger's connection costs no memory until its hello is done.
    fn new(dialled: bool, buffer_size: usize) -> Conn {
        let now = Instant::now();
        let rx = Vec::with_capacity(if dialled { 2 * buffer_size } else { 0 });
        Conn {
            rx,
            ready: false,
            opened: now,
            nonce: None,
            proof_due: None,
            refused: false,
            dialled,
            link: None,
            last_rx: now,
            last_tx: now,
            rx_seen: false,
            tx_seen: false,
            skip: 0,
            counted: 0,
            handed: 0,
        }
    }
}

/// How one direction of a flow ended, or that it has not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    Open,
    /// Closed cleanly after this sequence number.
    Closed(u64),
    /// The application died after this sequence number.
    Gone(u64),
    /// The receiving application stopped reading.
    Reset,
}

/// One flow carried over a link.
struct Bridged {
    end: FlowEnd,
    /// The remote name (for errors).
    name: String,
    reliable: bool,
    peer_timeout: Duration,
    /// The application waiting for the remote engine's answer to `Open`.
    opening: Option<Reply>,
    /// The request, resent if the link reconnects before the answer.
    open_qos: [u8; wire::QOS_LEN],

    // Local application -> remote.
    /// Reliable flows: every message until the remote application consumed it.
    window: Option<SendWindow>,
    /// Lossy flows: the next sequence number.
    next_seq: u64,
    /// Messages taken from the local ring.
    forwarded: u64,
    /// After a reconnect: send nothing new until the peer's `Resume`.
    paused: bool,
    /// How our application's sending side ended (and so what we told the peer).
    tx: End,
    /// Our `Close` is queued on this connection and ends at this position
    /// of its stream (`NetDriver::appended`): once the kernel has taken
    /// that far, the local sender's `dealloc` is told (the close handshake,
    /// `FlowEnd::confirm_close_handed`). The flow is not finished before.
    close_mark: Option<(ConnId, u64)>,

    // Remote -> local application.
    seq: RecvSequencer,
    /// Messages waiting for room in the local ring.
    /// Received messages not yet delivered, with their send stamps (0:
    /// none; the delivery then stamps them).
    /// And what each is to a call (the flags its local frame gets).
    inbound: data::Inbound,
    /// Buffers of delivered messages kept for the next queued ones (at most
    /// [`SPARE_BYTES`] of them), and their capacity in bytes.
    spare: Vec<Vec<u8>>,
    spare_bytes: usize,
    /// Messages put into the local ring.
    delivered: u64,
    /// The consumption we last acknowledged.
    acked: u64,
    acked_at: Instant,
    /// How the peer's sending side ended.
    rx: End,
    /// Lossy flows: messages dropped because the local ring stayed full.
    dropped: u64,
    /// Messages the end had sent / received before it was bridged (an
    /// attached application's request and the engine's answer): not part
    /// of the remote flow's numbering.
    sent_base: u64,
    recv_base: u64,
    /// Lost messages last reported to the local application.
    reported_lost: u64,
    /// The peer's clean close was passed on (our sending side closed).
    closed_local: bool,
    /// Whether this flow's data frames carry a CRC32C (`Qos::checksum`).
    checksum: Checksum,
    /// The last forward found the retransmit window full (until an Ack).
    window_full: bool,
    /// On the bridge's hot list (see `Bridge::hot`).
    hot: bool,
    /// Duty cycles since it last did something, while hot.
    quiet: u32,
    /// The token of the network driver's watch on the end's doorbell
    /// descriptor, set up when the flow first left the hot list.
    doorbell: Option<u32>,
}

pub(super) struct Bridge {
    cfg: IoUringSection,
    listen: Option<SocketAddr>,
    runtime_dir: Option<PathBuf>,
    shared: Arc<Shared>,
    ready: Option<mpsc::Sender<Result<Option<SocketAddr>, EngineError>>>,
    tcp: Option<NetDriver>,
    /// `net.backend`: which transport to build.
    backend: crate::config::NetBackend,
    /// The read end of the wake-up socketpair (see `Shared::wake`).
    poke_conn: Option<ConnId>,
    /// Scratch of `wait`: the futex words armed and whose flows they are.
    futex_words: Vec<(usize, u32)>,
    futex_flows: Vec<(LinkId, u32)>,
    /// Scratch of the network loop: the datagram being handled.
    datagram: Vec<u8>,
    /// The UDP socket of lossy flows, if it could be bound.
    udp: Option<udp::Udp>,
    /// Our hello, without this connection's nonce.
    hello: Hello,
    /// The key, the hello's deadline, the bound on connections in their hello.
    hellos: HelloPolicy,
    /// Refusals of hellos written to stderr: when the last went out, and
    /// how many were held back since (at most one line a second).
    reported: (Option<Instant>, u64),
    decoder: Decoder,
    conns: HashMap<ConnId, Conn, Fast>,
    links: HashMap<LinkId, Link, Fast>,
    next_link: LinkId,
    flows: HashMap<(LinkId, u32), Bridged, Fast>,
    /// The flows every duty cycle walks: those that did something in the
    /// last [`QUIET_CYCLES`] cycles, were told something by the network (a
    /// frame for them) or rang their doorbell, or were just opened. A flow
    /// leaves the list with its doorbell armed (`FlowEnd::arm_doorbell`:
    /// the local application's next publish, or the flow's end, makes a
    /// descriptor readable that the network driver receives on), so an
    /// engine carrying thousands of silent flows spends on a busy one what
    /// it would alone. A flow whose doorbell cannot be set up stays hot.
    hot: Vec<(LinkId, u32)>,
    /// The doorbells' watch tokens and their flows (see `Bridged::doorbell`),
    /// and the next token.
    doorbells: HashMap<u32, (LinkId, u32), Fast>,
    next_doorbell: u32,
    /// Every flow's key as of the sweep's last start, and how far the
    /// sweep has come through it.
    sweep: Vec<(LinkId, u32)>,
    sweep_at: usize,
    /// Incoming opens being allocated on a helper thread.
    opening: HashSet<(LinkId, u32), Fast>,
    /// Flows finished here whose last frame, `Close` (false) or `Gone`
    /// (true) with its last sequence number, went out once: sent into a
    /// link that was cut, it never arrived, and the peer's reader would
    /// wait for it for ever. A `Resume` for such a flow re-sends it.
    /// Oldest first, at most [`ENDED_KEPT`].
    ended: VecDeque<((LinkId, u32), bool, u64)>,
    next_flow: u32,
    opened: (mpsc::Sender<Opened>, mpsc::Receiver<Opened>),
    events: Vec<TcpEvent>,
    /// When the timers last ran.
    ticked: Instant,
    /// Duty cycles so far.
    cycles: u64,
    /// When the UDP hellos last went out.
    hellos_at: Instant,
    /// `net.memory_budget`: bytes of received data held for every
    /// connection together (see `admit` and `held_over_budget`).
    budget: usize,
    /// What the connections' receive buffers hold beyond their idle size.
    rx_held: usize,
    /// Bytes of messages queued for full local rings, over every flow
    /// (each flow's `Inbound` keeps it).
    inbound_held: Arc<std::sync::atomic::AtomicUsize>,
    /// Flows ended and opens answered since memory was last given back
    /// (see `give_back`), and when that was.
    churn: usize,
    trimmed_at: Instant,
    /// Lists a duty cycle fills and empties again: kept, so that a steady
    /// duty cycle allocates nothing.
    scratch: Scratch,
    /// The cluster node's port (`cluster.rs`), when the engine runs one.
    cluster: Option<ClusterHook>,
    /// Agents run in this duty cycle (`crate::remote::guest`): the
    /// cluster node, then the crossing groups' gateways. Dropped in
    /// reverse order (the gateways leave before the node stops).
    guests: Vec<Box<dyn crate::remote::guest::Guest>>,
    /// Scratch of `wait`: what the guests' events need of the sleep.
    guest_sleep: crate::remote::guest::Sleep,
    /// The engine thread's statistics slot (for wake-up latencies).
    stats: Option<Arc<crate::stats::Slot>>,
    /// This duty cycle follows a sleep: the first message forwarded in it
    /// (stamped by its sender) tells how long the wake-up took.
    woke: bool,
}

/// The bridge's reused lists (see `Bridge::scratch`): each is empty
/// between uses and keeps its capacity.
struct Scratch {
    /// Flows that ended in this cycle's walk over the flows.
    finished: Vec<(LinkId, u32)>,
    /// Frames that walk decided to send (they need `&mut self` to go).
    frames: Vec<(LinkId, Frame<'static>)>,
    /// The flows that walk visits: the hot ones and a few others.
    visit: Vec<(LinkId, u32)>,
    /// The timers' connections: silent ones, and ones due a keepalive.
    silent: Vec<ConnId>,
    keepalive: Vec<ConnId>,
    /// Links whose connection is up (for their UDP hellos).
    links: Vec<LinkId>,
    /// Connections the walk over the flows queued messages on: flushed
    /// once the walk's other frames (acknowledgements) are queued too, so
    /// that both leave in one write.
    flush: Vec<ConnId>,
}

impl Scratch {
    /// Lists that hold `n` entries before they first grow: a list first
    /// used late (a timer, a flow ending) then allocates nothing for the
    /// flows and connections of an engine of that size.
    fn with_capacity(n: usize) -> Scratch {
        Scratch {
            finished: Vec::with_capacity(n),
            frames: Vec::with_capacity(n),
            visit: Vec::with_capacity(n),
            silent: Vec::with_capacity(n),
            keepalive: Vec::with_capacity(n),
            links: Vec::with_capacity(n),
            flush: Vec::with_capacity(n),
        }
    }
}

/// Entries the bridge's per-cycle lists hold before they first grow (they
/// keep whatever they grow to).
const WAIT_WORDS: usize = 64;

/// An incoming `Open`, allocated to a local listener on a helper thread.
struct Opened {
    link: LinkId,
    flow_id: u32,
    result: Result<FlowEnd, AllocError>,
}

impl Bridge {
    pub(super) fn new(
        cfg: IoUringSection,
        backend: crate::config::NetBackend,
        listen: Option<SocketAddr>,
        runtime_dir: Option<PathBuf>,
        shared: Arc<Shared>,
        ready: mpsc::Sender<Result<Option<SocketAddr>, EngineError>>,
        admission: Admission,
    ) -> Bridge {
        let Admission { hellos, budget } = admission;
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let engine_id = (std::process::id() as u64) << 32 ^ (nanos as u64) ^ (Arc::as_ptr(&shared) as u64);
        Bridge {
            cfg,
            listen,
            runtime_dir,
            shared,
            ready: Some(ready),
            tcp: None,
            backend,
            poke_conn: None,
            // Sized for the flows of a busy engine, so a first sleep with
            // many flows armed does not allocate in a steady state.
            futex_words: Vec::with_capacity(WAIT_WORDS),
            futex_flows: Vec::with_capacity(WAIT_WORDS),
            stats: None,
            woke: false,
            datagram: Vec::new(),
            udp: None,
            hello: Hello::new(engine_id, Features::STAMPS, KEEPALIVE.as_millis() as u32, None),
            hellos,
            reported: (None, 0),
            decoder: Decoder::new(wire::DEFAULT_MAX_FRAME_LEN.max(64 << 20)),
            conns: HashMap::default(),
            links: HashMap::default(),
            next_link: 1,
            flows: HashMap::default(),
            hot: Vec::new(),
            doorbells: HashMap::default(),
            next_doorbell: 0,
            sweep: Vec::new(),
            sweep_at: 0,
            opening: HashSet::default(),
            ended: VecDeque::new(),
            next_flow: 1,
            opened: mpsc::channel(),
            events: Vec::new(),
            ticked: Instant::now(),
            cycles: 0,
            hellos_at: Instant::now(),
            budget,
            rx_held: 0,
            inbound_held: Arc::default(),
            churn: 0,
            trimmed_at: Instant::now(),
            scratch: Scratch::with_capacity(WAIT_WORDS),
            cluster: None,
            guests: Vec::new(),
            guest_sleep: crate::remote::guest::Sleep::with_capacity(WAIT_WORDS),
        }
    }

    /// Hands `Cluster` frames to the cluster node and sends its messages
    /// (see `cluster.rs`).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(in crate::remote) fn attach_cluster(&mut self, hook: ClusterHook) {
        self.cluster = Some(hook);
    }

    /// Builds the io_uring and the listener on the engine thread.
    fn start_network(&mut self) {
        let Some(ready) = self.ready.take() else { return };
        let result =
            NetDriver::new(&self.cfg, self.backend).map_err(EngineError::Network).and_then(|(mut tcp, backend)| {
                if let Backend::Sockets { why } = &backend {
                    if self.backend == crate::config::NetBackend::Auto {
                        tracing::warn!(reason = %why, "no io_uring: sockets driven without it (net.backend = \"auto\")");
                        crate::log::stderr_if_unheard(format_args!(
                            "ringflow: {why}\nringflow: this engine drives its sockets without io_uring \
                         (net.backend = \"auto\"): remote flows work, slower; set net.backend = \"io_uring\" \
                         to refuse instead"
                        ));
                    }
                }
                let _ = self.shared.backend.set(backend);
                let bound = match self.listen {
                    Some(addr) => Some(
                        tcp.listen_patiently(addr, LISTEN_PATIENCE)
                            .map_err(|source| EngineError::Listen { addr, source })?,
                    ),
                    None => None,
                };
                self.tcp = Some(tcp);
                Ok(bound)
            });
        if let Ok(bound) = result {
            self.start_udp(bound);
            // The wake-up socketpair: its read end is received through the
            // io_uring, so a `Poke` ends the bridge's sleep there. Without
            // it the bridge does not sleep in its ring (see `sleeps`).
            if let (Ok((read, write)), Some(tcp)) = (crate::flow::readiness::new_pair(), self.tcp.as_mut()) {
                self.poke_conn = tcp.adopt_datagram_fd(read).ok();
                let _ = self.shared.poke.set(write);
            }
        }
        let _ = ready.send(result);
    }

    /// Work the bridge would miss if it slept now: a command, a message in
    /// a hot local flow's ring (the fence in `wait` orders this look after
    /// the `sleeping` store; the other flows' doorbells are armed).
    fn local_work(&mut self) -> bool {
        // SYNC: Relaxed; ordered by the caller's fence, see `Shared::wake`.
        self.shared.pending.load(std::sync::atomic::Ordering::Relaxed)
            || self
                .hot
                .iter()
                .any(|key| self.flows.get(key).is_some_and(|b| self.may_forward(key.0, b) && b.end.has_message()))
    }

    /// Whether nothing but the keepalive and silence timers needs a duty
    /// cycle: no link waits to be redialled or for its hello, no open is
    /// under way, no flow is closing, holds undelivered messages or
    /// consumption to acknowledge (the application consuming wakes no one),
    /// and every flow that can forward is covered by the sleep's futex wait.
    fn settled(&self) -> bool {
        // SYNC: Relaxed; a stale answer costs one short or one long sleep,
        // and shutdown wakes the bridge through its hook anyway.
        let draining = self.shared.draining.load(std::sync::atomic::Ordering::Relaxed);
        // Without futex waits a local flow's publish does not end a sleep.
        let futexes = self.tcp.as_ref().is_some_and(NetDriver::futex_waits);
        if draining || !futexes || !self.opening.is_empty() {
            return false;
        }
        if self.links.values().any(|l| l.conn.is_none()) || self.conns.values().any(|c| !c.ready) {
            return false;
        }
        let mut forwarding = 0;
        for (&(link, _), b) in &self.flows {
            let busy = !b.inbound.is_empty() || b.opening.is_some() || b.tx != End::Open || b.rx != End::Open;
            if busy || (b.reliable && b.consumed().min(b.delivered) != b.acked) {
                return false;
            }
            // A flow off the hot list sleeps on its doorbell, not its futex.
            forwarding += usize::from(b.hot && self.may_forward(link, b));
        }
        forwarding <= crate::uring::MAX_FUTEX_WAITS
    }

    /// Whether the data path would take a message of `b` now (what it waits
    /// for otherwise comes from the network: an answer, a connection, an Ack).
    fn may_forward(&self, link: LinkId, b: &Bridged) -> bool {
        let open = b.tx == End::Open && !b.paused && b.opening.is_none() && !b.window_full;
        open && self.ready_conn(link).is_some_and(|c| {
            // A connection full of unsent bytes waits for its send completions.
            self.tcp.as_ref().is_some_and(|t| t.unsent(c).unwrap_or(0) <= MAX_UNSENT)
        })
    }

    /// The link's connection, if its hello is done.
    fn ready_conn(&self, link: LinkId) -> Option<ConnId> {
        let conn = self.links.get(&link)?.conn?;
        self.conns.get(&conn).is_some_and(|c| c.ready).then_some(conn)
    }

    /// Sends `frame` on `link` if it is up. Only `Open`s are kept for a link
    /// that is not (yet) up: every other frame is re-created by the flow's
    /// state after a reconnect.
    fn send_frame(&mut self, link: LinkId, frame: &Frame<'_>) {
        match self.ready_conn(link) {
            Some(conn) => {
                if let Some(tcp) = self.tcp.as_mut() {
                    put_frame(tcp, conn, frame, Checksum::None);
                    tcp.flush(conn);
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.tx_seen = true;
                }
            }
            None if matches!(frame, Frame::Open { .. }) => {
                if let Some(l) = self.links.get_mut(&link) {
                    let _ = wire::encode(frame, Checksum::None, &mut l.queued);
                }
            }
            None => {}
        }
    }

    fn commands(&mut self) -> usize {
        // A load first: a spinning duty cycle pays no locked swap (and takes
        // no cache line exclusively) while there is nothing.
        // SYNC: Relaxed; only a hint, the swap below decides.
        if !self.shared.pending.load(std::sync::atomic::Ordering::Relaxed) {
            return 0;
        }
        // SYNC: Acquire; pairs with the Release in `Shared::push` (the
        // command itself is then read under the mutex).
        if !self.shared.pending.swap(false, std::sync::atomic::Ordering::Acquire) {
            return 0;
        }
        let cmds = std::mem::take(&mut *self.shared.commands.lock().unwrap_or_else(|p| p.into_inner()));
        let n = cmds.len();
        for Command::Open { addr, name, qos, mut end, reply } in cmds {
            // SYNC: Relaxed; the flag orders nothing else.
            if self.shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
                reply.answer(&mut end, Err(AllocError::EngineShuttingDown));
                continue;
            }
            let link = match self.link_to(addr) {
                Ok(link) => link,
                Err(e) => {
                    let e = e.into_alloc_error(addr);
                    tracing::warn!(peer = %addr, flow = %name, error = %e, "flow open failed: no connection");
                    reply.answer(&mut end, Err(e));
                    continue;
                }
            };
            let flow_id = self.next_flow;
            self.next_flow = self.next_flow.wrapping_add(1).max(1);
            tracing::debug!(peer = %addr, flow = %name, flow_id, "opening a flow on a remote engine");
            self.send_frame(link, &Frame::Open { flow_id, name: &name, qos: qos.encode() });
            let held = Arc::clone(&self.inbound_held);
            self.insert_flow((link, flow_id), Bridged::new(end, name, flow_id, Some(reply), held));
        }
        n
    }

    /// Adds a flow, on the hot list. Room for its doorbell (set up the
    /// first time it goes quiet, at any moment of its life) is made now:
    /// a steady duty cycle never grows a map.
    fn insert_flow(&mut self, key: (LinkId, u32), b: Bridged) {
        self.flows.insert(key, b);
        let flows = self.flows.len();
        self.doorbells.reserve(flows.saturating_sub(self.doorbells.len()));
        // The lists of flow keys a duty cycle fills (the hot flows, the
        // sweep's list, the walk's visits) hold every flow from now on: a
        // flow that goes quiet, or the sweep's next rebuild, at any later
        // moment then allocates nothing.
        self.hot.reserve(flows.saturating_sub(self.hot.len()));
        self.sweep.reserve(flows.saturating_sub(self.sweep.len()));
        self.scratch.visit.reserve(flows + 1);
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.reserve_watches(flows);
        }
        self.mark_hot(key);
    }

    /// Puts flow `key` (if it exists) on the hot list: something happened
    /// to it that the data path must look at.
    fn mark_hot(&mut self, key: (LinkId, u32)) {
        if let Some(b) = self.flows.get_mut(&key) {
            b.quiet = 0;
            if !b.hot {
                b.hot = true;
                self.hot.push(key);
            }
        }
    }
}

/// Appends `frame` to what `conn` has queued, encoded in place in the
/// driver's send memory (a registered buffer when there is one). A frame
/// that cannot be encoded (too large) is dropped whole, never sent half.
fn put_frame(tcp: &mut NetDriver, conn: ConnId, frame: &Frame<'_>, sum: Checksum) {
    if let Ok(len) = wire::encoded_len(frame, sum) {
        let written = tcp.append_with(conn, len, |buf| wire::encode_into(frame, sum, buf));
        // The queue's memory is not zeroed (`OutBuf`): the frame must cover
        // every byte it was given, as `encoded_len` promises.
        debug_assert!(!matches!(written, Ok(Ok(n)) if n != len), "a frame of {len} bytes encoded short");
    }
}
