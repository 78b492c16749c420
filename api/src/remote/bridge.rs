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
//!   after a reconnect until acknowledged), `Gone` (the application died:
//!   the far side gets `PeerGone` after every message), `Reset` (the
//!   application stopped reading, or the flow is unknown here).
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

use ringflow_core::config::IoUringSection;
use ringflow_core::engine::Agent;
use ringflow_core::flow::Qos;
use ringflow_core::uring::{ConnId, TcpDriver, TcpEvent};
use ringflow_core::wire::{
    self, Checksum, Decoder, Features, Frame, Hello, HelloAck, OpenResult, PushError, RecvSequencer, SendWindow,
    WindowLimits, FIRST_SEQ,
};
use ringflow_core::Deadline;

use super::invoker::{self, Invoker};
use crate::error::{AllocError, RecvError, SendError};
use crate::{Flow, FlowOptions};

/// Messages moved per flow per duty cycle, so one busy flow cannot starve
/// the others.
const BATCH: usize = 64;
/// Bytes queued for a connection beyond which flows stop draining into it:
/// the back-pressure that reaches a sender through its full local ring.
const MAX_UNSENT: usize = 4 << 20;
/// How long the engine thread may wait for a TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
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
/// A lossy flow's queue of messages waiting for room in the local ring;
/// beyond it messages are dropped (and counted).
const LOSSY_QUEUE: usize = 4096;

/// A reply to the application that asked to open a flow: the granted QoS.
pub(super) type OpenReply = mpsc::Sender<Result<Qos, AllocError>>;

/// Where the outcome of an `Open` goes.
pub(super) enum Reply {
    /// To an application thread of this process, waiting on the channel.
    Channel(OpenReply),
    /// Into the flow itself, as its first message (an application attached
    /// to the host engine: see `host`).
    Announce,
}

impl Shared {
    /// Queues a command for the bridge (then wake it, if it has a thread).
    pub(super) fn push(&self, command: Command) {
        self.commands.lock().unwrap_or_else(|p| p.into_inner()).push(command);
        // SYNC: Release; pairs with the Acquire swap in `Bridge::commands`.
        self.pending.store(true, std::sync::atomic::Ordering::Release);
    }
}

impl Reply {
    fn answer(self, end: &mut Flow, result: Result<Qos, AllocError>) {
        match self {
            Reply::Channel(tx) => {
                let _ = tx.send(result);
            }
            Reply::Announce => {
                // The ring is empty: nothing was delivered before the outcome.
                let _ = end.try_send(&super::host::encode_outcome(&result));
            }
        }
    }
}

/// A request from an application thread.
pub(super) enum Command {
    Open { addr: SocketAddr, name: String, qos: Qos, end: Flow, reply: Reply },
}

/// What application threads share with the bridge.
#[derive(Default)]
pub(super) struct Shared {
    pub commands: Mutex<Vec<Command>>,
    /// Set in invoker mode: the engine that flows this bridge allocates to
    /// local listeners must drive.
    pub invoker: std::sync::OnceLock<Weak<Invoker>>,
    /// Commands are waiting (so an idle duty cycle takes no lock).
    pub pending: std::sync::atomic::AtomicBool,
    /// Set by a clean shutdown: refuse new flows, finish what is in flight.
    pub draining: std::sync::atomic::AtomicBool,
    /// Set by the bridge while draining once every reliable message was
    /// acknowledged and every received one delivered.
    pub drained: std::sync::atomic::AtomicBool,
}

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
        }
    }
}

struct Conn {
    /// Received bytes not yet decoded.
    rx: Vec<u8>,
    /// The hello exchange is done.
    ready: bool,
    /// We dialled it (we send the Hello; the peer answers).
    dialled: bool,
    /// Its link (for a connection that dialled us: once its hello names the
    /// peer engine).
    link: Option<LinkId>,
    last_rx: Instant,
    last_tx: Instant,
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
    end: Flow,
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

    // Remote -> local application.
    seq: RecvSequencer,
    /// Messages waiting for room in the local ring.
    inbound: VecDeque<Vec<u8>>,
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
}

impl Bridged {
    fn new(end: Flow, name: String, flow_id: u32, opening: Option<Reply>) -> Bridged {
        let qos = *end.qos();
        let window = qos.reliable.then(|| SendWindow::new(flow_id, window_limits(&qos)));
        let seq = if qos.reliable { RecvSequencer::reliable(flow_id) } else { RecvSequencer::lossy(flow_id) };
        Bridged {
            end,
            name,
            reliable: qos.reliable,
            peer_timeout: qos.peer_timeout,
            opening,
            open_qos: qos.encode(),
            window,
            next_seq: FIRST_SEQ,
            forwarded: 0,
            paused: false,
            tx: End::Open,
            seq,
            inbound: VecDeque::new(),
            delivered: 0,
            acked: 0,
            acked_at: Instant::now(),
            rx: End::Open,
            dropped: 0,
            sent_base: 0,
            recv_base: 0,
        }
        .based()
    }

    /// Takes the end's counts so far as the base of the remote numbering.
    fn based(mut self) -> Bridged {
        let stats = self.end.stats();
        (self.sent_base, self.recv_base) = (stats.sent, stats.received);
        self
    }

    /// Remote messages the local application has consumed.
    fn consumed(&self) -> u64 {
        self.end.peer_consumed().saturating_sub(self.sent_base)
    }

    /// The last sequence number sent.
    fn last_sent(&self) -> u64 {
        match &self.window {
            Some(w) => w.last_sent(),
            None => self.next_seq - 1,
        }
    }

    /// Both directions are over: the flow can go.
    fn finished(&self) -> bool {
        let tx_done = match self.tx {
            End::Open => false,
            End::Reset => true,
            End::Closed(_) | End::Gone(_) => self.window.as_ref().is_none_or(SendWindow::is_drained),
        };
        let rx_done = match self.rx {
            End::Open => false,
            End::Reset => true,
            // Every message up to the death is delivered before the end.
            End::Gone(_) => self.inbound.is_empty(),
            End::Closed(_) => {
                self.inbound.is_empty() && (self.consumed() >= self.delivered || self.end.peer_stopped_reading())
            }
        };
        tx_done && rx_done
    }
}

/// The retransmit window of a reliable flow: room for the remote ring's
/// worth of messages several times over, and always for one largest message.
fn window_limits(qos: &Qos) -> WindowLimits {
    let bytes = (qos.ring_bytes.saturating_mul(4)).max(qos.max_msg.saturating_mul(2)).max(1 << 20);
    WindowLimits { max_bytes: bytes.min(256 << 20).max(qos.max_msg), max_messages: 1 << 18 }
}

pub(super) struct Bridge {
    cfg: IoUringSection,
    listen: Option<SocketAddr>,
    runtime_dir: Option<PathBuf>,
    shared: Arc<Shared>,
    ready: Option<mpsc::Sender<Result<Option<SocketAddr>, String>>>,
    tcp: Option<TcpDriver>,
    hello: Hello,
    decoder: Decoder,
    conns: HashMap<ConnId, Conn, Fast>,
    links: HashMap<LinkId, Link, Fast>,
    next_link: LinkId,
    flows: HashMap<(LinkId, u32), Bridged, Fast>,
    /// Incoming opens being allocated on a helper thread.
    opening: HashSet<(LinkId, u32), Fast>,
    next_flow: u32,
    opened: (mpsc::Sender<Opened>, mpsc::Receiver<Opened>),
    events: Vec<TcpEvent>,
    /// When the timers last ran.
    ticked: Instant,
    /// Duty cycles so far.
    cycles: u64,
}

/// An incoming `Open`, allocated to a local listener on a helper thread.
struct Opened {
    link: LinkId,
    flow_id: u32,
    result: Result<Flow, AllocError>,
}

impl Bridge {
    pub(super) fn new(
        cfg: IoUringSection,
        listen: Option<SocketAddr>,
        runtime_dir: Option<PathBuf>,
        shared: Arc<Shared>,
        ready: mpsc::Sender<Result<Option<SocketAddr>, String>>,
    ) -> Bridge {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let engine_id = (std::process::id() as u64) << 32 ^ (nanos as u64) ^ (Arc::as_ptr(&shared) as u64);
        Bridge {
            cfg,
            listen,
            runtime_dir,
            shared,
            ready: Some(ready),
            tcp: None,
            hello: Hello::new(engine_id, Features::NONE, KEEPALIVE.as_millis() as u32),
            decoder: Decoder::new(wire::DEFAULT_MAX_FRAME_LEN.max(64 << 20)),
            conns: HashMap::default(),
            links: HashMap::default(),
            next_link: 1,
            flows: HashMap::default(),
            opening: HashSet::default(),
            next_flow: 1,
            opened: mpsc::channel(),
            events: Vec::new(),
            ticked: Instant::now(),
            cycles: 0,
        }
    }

    /// Builds the io_uring and the listener on the engine thread.
    fn start_network(&mut self) {
        let Some(ready) = self.ready.take() else { return };
        let result = TcpDriver::new(&self.cfg).map_err(|e| e.to_string()).and_then(|mut tcp| {
            let bound = match self.listen {
                Some(addr) => Some(tcp.listen(addr).map_err(|e| format!("listen on {addr}: {e:?}"))?),
                None => None,
            };
            self.tcp = Some(tcp);
            Ok(bound)
        });
        let _ = ready.send(result);
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
                    let _ = tcp.append(conn, |out| wire::encode(frame, Checksum::None, out));
                    tcp.flush(conn);
                }
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.last_tx = Instant::now();
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
                reply.answer(&mut end, Err(AllocError::Io(std::io::Error::other("the engine is shutting down"))));
                continue;
            }
            let link = match self.link_to(addr) {
                Ok(link) => link,
                Err(e) => {
                    reply.answer(&mut end, Err(AllocError::EngineUnreachable { addr: addr.to_string(), source: e }));
                    continue;
                }
            };
            let flow_id = self.next_flow;
            self.next_flow = self.next_flow.wrapping_add(1).max(1);
            self.send_frame(link, &Frame::Open { flow_id, name: &name, qos: qos.encode() });
            self.flows.insert((link, flow_id), Bridged::new(end, name, flow_id, Some(reply)));
        }
        n
    }

    /// The link to the engine at `addr`, dialled if there is none.
    fn link_to(&mut self, addr: SocketAddr) -> std::io::Result<LinkId> {
        if let Some((&id, _)) = self.links.iter().find(|(_, l)| l.addr == Some(addr)) {
            return Ok(id);
        }
        let conn = self.dial(addr)?;
        let id = self.next_link;
        self.next_link = self.next_link.wrapping_add(1).max(1);
        self.links.insert(id, Link::new(Some(addr), conn));
        if let Some(c) = self.conns.get_mut(&conn) {
            c.link = Some(id);
        }
        Ok(id)
    }

    /// Connects to `addr` and sends our hello.
    fn dial(&mut self, addr: SocketAddr) -> std::io::Result<ConnId> {
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        let tcp = self.tcp.as_mut().ok_or_else(|| std::io::Error::other("engine network not started"))?;
        let conn = tcp.adopt(stream).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let now = Instant::now();
        self.conns
            .insert(conn, Conn { rx: Vec::new(), ready: false, dialled: true, link: None, last_rx: now, last_tx: now });
        let mut hello = Vec::new();
        self.hello.encode(&mut hello);
        let _ = tcp.send(conn, &hello);
        Ok(conn)
    }

    fn network(&mut self) -> usize {
        let Some(tcp) = self.tcp.as_mut() else { return 0 };
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        tcp.poll(&mut events);
        let n = events.len();
        for ev in events.drain(..) {
            match ev {
                TcpEvent::Accepted(conn) => {
                    let now = Instant::now();
                    let c =
                        Conn { rx: Vec::new(), ready: false, dialled: false, link: None, last_rx: now, last_tx: now };
                    self.conns.insert(conn, c);
                }
                TcpEvent::Received(conn, buf) => {
                    let tcp = self.tcp.as_mut().expect("network started");
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.rx.extend_from_slice(tcp.data(&buf));
                        c.last_rx = Instant::now();
                    }
                    tcp.recycle(buf);
                    self.decode(conn);
                }
                TcpEvent::Sent(..) => {}
                TcpEvent::Closed(conn, _) => self.lost(conn),
            }
        }
        self.events = events;
        n
    }

    /// Decodes what `conn` has received: the hello exchange, then frames,
    /// each handled where it lies in the receive buffer.
    fn decode(&mut self, conn: ConnId) {
        if !self.conns.get(&conn).is_some_and(|c| c.ready) && !self.handshake(conn) {
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else { return };
        let Some(link) = c.link else { return };
        let rx = std::mem::take(&mut c.rx);
        let decoder = self.decoder;
        let mut used = 0;
        let mut broken = false;
        loop {
            match decoder.decode(&rx[used..]) {
                Ok(Some((frame, n))) => {
                    used += n;
                    if !self.on_frame(link, &frame) {
                        broken = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        if broken {
            self.drop_conn(conn);
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            let mut rx = rx;
            rx.drain(..used);
            rx.extend_from_slice(&c.rx);
            c.rx = rx;
        }
    }

    /// Runs the hello exchange on `conn`'s received bytes; true once done.
    fn handshake(&mut self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else { return false };
        let (peer, used, ack) = if c.dialled {
            match HelloAck::decode(&c.rx) {
                Ok(Some((ack, n))) => (wire::accept_ack(&self.hello, &ack).ok().map(|a| a.peer_engine_id), n, None),
                Ok(None) => return false,
                Err(_) => (None, 0, None),
            }
        } else {
            match Hello::decode(&c.rx) {
                Ok(Some((theirs, n))) => {
                    let (ack, agreed) = wire::respond(&self.hello, &theirs);
                    (agreed.ok().map(|a| a.peer_engine_id), n, Some(ack))
                }
                Ok(None) => return false,
                Err(_) => (None, 0, None),
            }
        };
        c.rx.drain(..used);
        if let (Some(ack), Some(tcp)) = (ack, self.tcp.as_mut()) {
            let mut out = Vec::new();
            ack.encode(&mut out);
            let _ = tcp.send(conn, &out);
        }
        let Some(peer) = peer else {
            self.drop_conn(conn);
            return false;
        };
        c.ready = true;
        let link = match c.link {
            Some(link) => link,
            None => self.adopt_link(conn, peer),
        };
        self.link_up(link, conn, peer);
        true
    }

    /// The link of a connection that dialled us: the one of the same peer
    /// engine if it had one (a reconnect), else a new one.
    fn adopt_link(&mut self, conn: ConnId, peer: u64) -> LinkId {
        let old = self.links.iter().find(|(_, l)| l.addr.is_none() && l.peer_engine == Some(peer)).map(|(&id, _)| id);
        let id = match old {
            Some(id) => {
                // A half-open old connection of the same peer goes.
                if let Some(prev) = self.links.get_mut(&id).and_then(|l| l.conn.take()) {
                    if let Some(tcp) = self.tcp.as_mut() {
                        let _ = tcp.close(prev);
                    }
                    if let Some(c) = self.conns.get_mut(&prev) {
                        c.link = None;
                    }
                }
                id
            }
            None => {
                let id = self.next_link;
                self.next_link = self.next_link.wrapping_add(1).max(1);
                let mut link = Link::new(None, conn);
                link.peer_engine = Some(peer);
                self.links.insert(id, link);
                id
            }
        };
        if let Some(l) = self.links.get_mut(&id) {
            l.conn = Some(conn);
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.link = Some(id);
        }
        id
    }

    /// The hello on `link`'s connection is done: resume its flows.
    fn link_up(&mut self, link: LinkId, conn: ConnId, peer: u64) {
        let Some(l) = self.links.get_mut(&link) else { return };
        let restarted = l.peer_engine.is_some_and(|p| p != peer);
        l.peer_engine = Some(peer);
        l.down_since = None;
        l.backoff = REDIAL_FIRST;
        let queued = std::mem::take(&mut l.queued);
        if let Some(tcp) = self.tcp.as_mut() {
            if !queued.is_empty() {
                let _ = tcp.send(conn, &queued);
            }
        }
        let keys: Vec<_> = self.flows.keys().filter(|(l, _)| *l == link).copied().collect();
        for key in keys {
            let (_, flow_id) = key;
            let Some(b) = self.flows.get_mut(&key) else { continue };
            if b.opening.is_some() {
                if !queued.is_empty() {
                    continue; // its Open just went out with the queue
                }
                let (name, qos) = (b.name.clone(), b.open_qos);
                self.send_frame(link, &Frame::Open { flow_id, name: &name, qos });
                continue;
            }
            if restarted {
                // A new engine there: the flows of the old one are gone.
                if let Some(b) = self.flows.remove(&key) {
                    b.end.abandon();
                }
                continue;
            }
            b.paused = b.tx != End::Reset;
            let resume = b.seq.resume_frame();
            // What we said on the lost connection may not have arrived: say
            // it again (both are idempotent). Without the ack a sender whose
            // window filled would wait forever for consumption already done.
            let ack = (b.reliable && b.acked > 0).then_some(Frame::Ack { flow_id, cumulative_seq: b.acked });
            let reset = (b.rx == End::Reset).then_some(Frame::Reset { flow_id, consumed_seq: b.acked });
            self.send_frame(link, &resume);
            for frame in [ack, reset].into_iter().flatten() {
                self.send_frame(link, &frame);
            }
        }
    }

    /// Closes a connection that broke the protocol.
    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(tcp) = self.tcp.as_mut() {
            let _ = tcp.close(conn);
        }
        self.lost(conn);
    }

    /// Handles one frame from `link`; false if the peer broke the protocol.
    fn on_frame(&mut self, link: LinkId, frame: &Frame<'_>) -> bool {
        match *frame {
            Frame::Open { flow_id, name, qos } => self.open_local(link, flow_id, name, qos),
            Frame::OpenAck { flow_id, result, qos } => self.on_open_ack(link, flow_id, result, qos),
            Frame::Data { flow_id, seq, payload } => return self.on_data(link, flow_id, seq, payload),
            Frame::Ack { flow_id, cumulative_seq } => {
                let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
                    return self.reset_unknown(link, flow_id);
                };
                if let Some(w) = b.window.as_mut() {
                    if w.on_ack(cumulative_seq).is_err() {
                        return false;
                    }
                    b.end.confirm_consumed(b.recv_base + w.acked());
                }
            }
            Frame::Close { flow_id, last_seq } | Frame::Gone { flow_id, last_seq } => {
                let gone = matches!(frame, Frame::Gone { .. });
                let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
                    return self.reset_unknown(link, flow_id);
                };
                if b.rx == End::Open {
                    if b.seq.on_close(last_seq).is_err() && !gone {
                        return false;
                    }
                    b.rx = if gone { End::Gone(last_seq) } else { End::Closed(last_seq) };
                }
            }
            Frame::Reset { flow_id, consumed_seq } => {
                if let Some(b) = self.flows.get_mut(&(link, flow_id)) {
                    if let Some(w) = b.window.as_mut() {
                        let _ = w.on_ack(consumed_seq.min(w.last_sent()));
                        b.end.confirm_consumed(b.recv_base + w.acked());
                    }
                    b.window = None;
                    b.tx = End::Reset;
                    b.paused = false;
                }
            }
            Frame::Resume { flow_id, next_expected_seq } => return self.on_resume(link, flow_id, next_expected_seq),
            Frame::Keepalive { .. } => {}
        }
        true
    }

    /// The peer says it knows nothing of `flow_id`, or we do not.
    fn reset_unknown(&mut self, link: LinkId, flow_id: u32) -> bool {
        if !self.opening.contains(&(link, flow_id)) {
            self.send_frame(link, &Frame::Reset { flow_id, consumed_seq: 0 });
        }
        true
    }

    fn on_open_ack(&mut self, link: LinkId, flow_id: u32, result: OpenResult, qos: [u8; wire::QOS_LEN]) {
        let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
            if result == OpenResult::Accepted {
                self.send_frame(link, &Frame::Reset { flow_id, consumed_seq: 0 });
            }
            return;
        };
        let Some(reply) = b.opening.take() else { return };
        if result == OpenResult::Accepted {
            let granted = Qos::decode(&qos).ok().filter(|g| g.max_msg <= b.end.qos().max_msg);
            match granted {
                Some(granted) => {
                    reply.answer(&mut b.end, Ok(granted));
                    // The answer (if written into the flow) is not a remote message.
                    b.sent_base = b.end.stats().sent;
                    return;
                }
                None => {
                    let e = AllocError::CorruptPeer("remote engine granted a QoS it was not asked for".into());
                    reply.answer(&mut b.end, Err(e));
                    self.flows.remove(&(link, flow_id));
                    self.send_frame(link, &Frame::Reset { flow_id, consumed_seq: 0 });
                    return;
                }
            }
        }
        let name = b.name.clone();
        let err = match result {
            OpenResult::NameNotFound => AllocError::NotFound { name },
            OpenResult::PermissionDenied => AllocError::PermissionDenied,
            OpenResult::QosRefused => AllocError::Refused(ringflow_core::flow::handshake::Refusal::InvalidQos),
            _ => AllocError::CorruptPeer(format!("remote engine refused the flow: {result:?}")),
        };
        reply.answer(&mut b.end, Err(err));
        self.flows.remove(&(link, flow_id));
    }

    fn on_data(&mut self, link: LinkId, flow_id: u32, seq: u64, payload: &[u8]) -> bool {
        let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
            return self.reset_unknown(link, flow_id);
        };
        if b.rx != End::Open {
            return true; // after Reset or Gone on our side: dropped
        }
        match b.seq.accept(seq) {
            Ok(wire::Delivery::Stale) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        if b.inbound.is_empty() {
            match b.end.try_send(payload) {
                Ok(()) => {
                    b.delivered += 1;
                    return true;
                }
                Err(SendError::WouldBlock | SendError::Full) => {}
                Err(_) => return true, // the local application left; `flows` notices
            }
        }
        if !b.reliable && b.inbound.len() >= LOSSY_QUEUE {
            b.dropped += 1;
            return true;
        }
        b.inbound.push_back(payload.to_vec());
        true
    }

    fn on_resume(&mut self, link: LinkId, flow_id: u32, next: u64) -> bool {
        let Some(b) = self.flows.get_mut(&(link, flow_id)) else {
            return self.reset_unknown(link, flow_id);
        };
        let Some(conn) = self.links.get(&link).and_then(|l| l.conn) else { return true };
        let Some(tcp) = self.tcp.as_mut() else { return true };
        if let Some(w) = b.window.as_ref() {
            let Ok(resend) = w.resume_from(next) else { return false };
            for frame in resend {
                let _ = tcp.append(conn, |out| wire::encode(&frame, Checksum::None, out));
            }
        }
        let last = b.last_sent();
        let end = match b.tx {
            End::Closed(_) => Some(Frame::Close { flow_id, last_seq: last }),
            End::Gone(_) => Some(Frame::Gone { flow_id, last_seq: last }),
            End::Open | End::Reset => None,
        };
        if let Some(end) = end {
            let _ = tcp.append(conn, |out| wire::encode(&end, Checksum::None, out));
        }
        tcp.flush(conn);
        b.paused = false;
        true
    }

    /// Allocates an incoming flow to the local listener on a helper thread.
    fn open_local(&mut self, link: LinkId, flow_id: u32, name: &str, qos: [u8; wire::QOS_LEN]) {
        if let Some(b) = self.flows.get(&(link, flow_id)) {
            // A repeated Open (the link reconnected before our answer).
            let qos = b.end.qos().encode();
            self.send_frame(link, &Frame::OpenAck { flow_id, result: OpenResult::Accepted, qos });
            return;
        }
        // SYNC: Relaxed; the flag orders nothing else.
        if self.shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
            let refuse = Frame::OpenAck { flow_id, result: OpenResult::ShuttingDown, qos: [0; wire::QOS_LEN] };
            self.send_frame(link, &refuse);
            return;
        }
        if !self.opening.insert((link, flow_id)) {
            return;
        }
        let tx = self.opened.0.clone();
        let dir = self.runtime_dir.clone();
        let invoker = self.shared.invoker.get().cloned();
        let name = name.to_owned();
        let spawned = std::thread::Builder::new().name("ringflow-open".into()).spawn(move || {
            let result = Qos::decode(&qos).map_err(AllocError::InvalidQos).and_then(|qos| {
                let mut opts = match dir {
                    Some(d) => FlowOptions::new().runtime_dir(d),
                    None => FlowOptions::new(),
                };
                // Invoker mode: the accepting application must find this
                // engine again to drive it (see `invoker`).
                let mut key = None;
                if let Some(inv) = invoker {
                    let segment = Flow::segment_for(&qos)?;
                    key = invoker::inode_of(segment.fd());
                    if let Some(k) = key {
                        invoker::register_segment(k, inv);
                    }
                    opts = opts.memory(segment);
                }
                let r = Flow::alloc_with(&name, &qos, Deadline::after(Duration::from_secs(5)), opts);
                if let (Err(_), Some(k)) = (&r, key) {
                    invoker::forget_segment(k);
                }
                r
            });
            let _ = tx.send(Opened { link, flow_id, result });
        });
        if spawned.is_err() {
            self.opening.remove(&(link, flow_id));
            self.send_frame(
                link,
                &Frame::OpenAck { flow_id, result: OpenResult::ShuttingDown, qos: [0; wire::QOS_LEN] },
            );
        }
    }

    fn opened(&mut self) -> usize {
        if self.opening.is_empty() {
            return 0;
        }
        let mut n = 0;
        while let Ok(Opened { link, flow_id, result }) = self.opened.1.try_recv() {
            n += 1;
            self.opening.remove(&(link, flow_id));
            let mut qos = [0; wire::QOS_LEN];
            let answer = match result {
                Ok(end) => {
                    qos = end.qos().encode();
                    if self.links.contains_key(&link) {
                        self.flows.insert((link, flow_id), Bridged::new(end, String::new(), flow_id, None));
                    }
                    OpenResult::Accepted
                }
                Err(AllocError::NotFound { .. } | AllocError::InvalidName(_)) => OpenResult::NameNotFound,
                Err(AllocError::PermissionDenied) => OpenResult::PermissionDenied,
                Err(AllocError::InvalidQos(_) | AllocError::Refused(_)) => OpenResult::QosRefused,
                Err(_) => OpenResult::NameNotFound,
            };
            self.send_frame(link, &Frame::OpenAck { flow_id, result: answer, qos });
        }
        n
    }

    /// Moves messages between every flow's local end and its link.
    fn flows(&mut self) -> usize {
        let mut moved = 0;
        let mut finished = Vec::new();
        let mut frames: Vec<(LinkId, Frame<'static>)> = Vec::new();
        // The clock is read only when needed (it shows in a spinning profile).
        let mut clock: Option<Instant> = None;
        let mut now = || *clock.get_or_insert_with(Instant::now);
        // SYNC: Relaxed; the flag orders nothing else. While draining, every
        // consumption is acknowledged at once.
        let urgent = self.shared.draining.load(std::sync::atomic::Ordering::Relaxed);
        let Bridge { flows, links, conns, tcp, .. } = self;
        for (&key, b) in flows.iter_mut() {
            let (link, flow_id) = key;
            moved += deliver(b);
            // Acknowledge what the local application consumed.
            let consumed = b.consumed().min(b.delivered);
            if b.reliable
                && consumed > b.acked
                && (consumed - b.acked >= ACK_EVERY || urgent || b.rx != End::Open || now() - b.acked_at >= ACK_AFTER)
            {
                b.acked = consumed;
                b.acked_at = now();
                frames.push((link, Frame::Ack { flow_id, cumulative_seq: consumed }));
            }
            if b.rx == End::Open && b.end.peer_stopped_reading() {
                b.rx = End::Reset;
                b.inbound.clear();
                frames.push((link, Frame::Reset { flow_id, consumed_seq: consumed }));
            }
            if let End::Gone(_) = b.rx {
                if b.inbound.is_empty() {
                    finished.push(key);
                    continue;
                }
            }
            if let End::Closed(_) = b.rx {
                if b.inbound.is_empty() {
                    b.end.close_tx();
                }
            }
            if b.finished() {
                finished.push(key);
                continue;
            }
            // Local -> remote, once the remote side has accepted the flow
            // and the link is up and resumed.
            if b.opening.is_some() || b.paused || b.tx != End::Open {
                continue;
            }
            let Some(conn) = links.get(&link).and_then(|l| l.conn).filter(|c| conns.get(c).is_some_and(|c| c.ready))
            else {
                continue;
            };
            let Some(tcp) = tcp.as_mut() else { continue };
            let mut sent = 0;
            for _ in 0..BATCH {
                if tcp.unsent(conn).unwrap_or(0) > MAX_UNSENT {
                    break;
                }
                let (end, window, next_seq) = (&mut b.end, &mut b.window, &mut b.next_seq);
                let taken = end.forward(|payload| match window {
                    Some(w) => match w.push(payload) {
                        Ok(frame) => {
                            let _ = tcp.append(conn, |out| wire::encode(&frame, Checksum::None, out));
                            true
                        }
                        Err(
                            PushError::WindowFull { .. } | PushError::TooLarge { .. } | PushError::SequenceExhausted,
                        ) => false,
                    },
                    None => {
                        let frame = Frame::Data { flow_id, seq: *next_seq, payload };
                        let _ = tcp.append(conn, |out| wire::encode(&frame, Checksum::None, out));
                        *next_seq += 1;
                        true
                    }
                });
                match taken {
                    Ok(true) => {
                        b.forwarded += 1;
                        sent += 1;
                    }
                    Ok(false) | Err(RecvError::WouldBlock) => break,
                    Err(e) => {
                        let last = b.last_sent();
                        let gone = matches!(e, RecvError::PeerGone { .. } | RecvError::CorruptPeer(_));
                        b.tx = if gone { End::Gone(last) } else { End::Closed(last) };
                        let frame = if gone {
                            Frame::Gone { flow_id, last_seq: last }
                        } else {
                            Frame::Close { flow_id, last_seq: last }
                        };
                        let _ = tcp.append(conn, |out| wire::encode(&frame, Checksum::None, out));
                        if gone && b.rx == End::Open {
                            // Nobody will read what the peer sends.
                            b.rx = End::Reset;
                            b.inbound.clear();
                            let frame = Frame::Reset { flow_id, consumed_seq: b.acked };
                            let _ = tcp.append(conn, |out| wire::encode(&frame, Checksum::None, out));
                        }
                        sent += 1;
                        break;
                    }
                }
            }
            if sent > 0 {
                tcp.flush(conn);
                if let Some(c) = conns.get_mut(&conn) {
                    c.last_tx = now();
                }
                if b.window.is_none() {
                    // Lossy: what left is as consumed as it will get.
                    b.end.confirm_consumed(b.recv_base + b.forwarded);
                }
                moved += sent;
            }
        }
        for (link, frame) in frames {
            self.send_frame(link, &frame);
        }
        for key in finished {
            if let Some(b) = self.flows.remove(&key) {
                if let End::Gone(_) = b.rx {
                    b.end.abandon();
                }
            }
        }
        moved
    }

    /// Keepalives, silent connections, redials and flows that waited too
    /// long for their link.
    fn timers(&mut self) -> usize {
        // Every 32nd cycle: often enough for millisecond timers, rare
        // enough to keep the clock out of a spinning duty cycle.
        self.cycles = self.cycles.wrapping_add(1);
        if self.cycles % 32 != 0 {
            return 0;
        }
        let now = Instant::now();
        if now - self.ticked < Duration::from_millis(5) {
            return 0;
        }
        self.ticked = now;
        let mut work = 0;
        let mut silent = Vec::new();
        let mut keepalive = Vec::new();
        for (&id, c) in &self.conns {
            if now - c.last_rx > SILENT_LIMIT {
                silent.push(id);
            } else if c.ready && now - c.last_tx >= KEEPALIVE {
                keepalive.push(id);
            }
        }
        for id in silent {
            self.drop_conn(id);
            work += 1;
        }
        if let Some(tcp) = self.tcp.as_mut() {
            let frame = Frame::Keepalive { ts_ns: 0 };
            for id in keepalive {
                let _ = tcp.append(id, |out| wire::encode(&frame, Checksum::None, out));
                tcp.flush(id);
                if let Some(c) = self.conns.get_mut(&id) {
                    c.last_tx = now;
                }
            }
        }
        // Redial links that lost their connection.
        let due: Vec<(LinkId, SocketAddr)> = self
            .links
            .iter()
            .filter(|(_, l)| l.conn.is_none() && l.next_dial <= now)
            .filter_map(|(&id, l)| l.addr.map(|a| (id, a)))
            .collect();
        for (id, addr) in due {
            work += 1;
            match self.dial(addr) {
                Ok(conn) => {
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.link = Some(id);
                    }
                    if let Some(l) = self.links.get_mut(&id) {
                        l.conn = Some(conn);
                    }
                }
                Err(_) => {
                    if let Some(l) = self.links.get_mut(&id) {
                        l.next_dial = now + l.backoff;
                        l.backoff = (l.backoff * 2).min(REDIAL_MAX);
                    }
                }
            }
        }
        // Flows whose link has been down longer than their peer timeout.
        let expired: Vec<(LinkId, u32)> = self
            .flows
            .iter()
            .filter(|((link, _), b)| {
                self.links.get(link).is_none_or(|l| l.down_since.is_some_and(|since| now - since > b.peer_timeout))
            })
            .map(|(&k, _)| k)
            .collect();
        for key in expired {
            work += 1;
            if let Some(mut b) = self.flows.remove(&key) {
                match b.opening.take() {
                    Some(reply) => reply.answer(&mut b.end, Err(AllocError::PeerGone)),
                    None => b.end.abandon(),
                }
            }
        }
        // Links with no flow left and no connection go.
        let idle: Vec<LinkId> = self
            .links
            .iter()
            .filter(|(id, l)| l.conn.is_none() && !self.flows.keys().any(|(fl, _)| fl == *id))
            .map(|(&id, _)| id)
            .collect();
        for id in idle {
            self.links.remove(&id);
        }
        work
    }

    /// A connection is gone: its link waits for a new one.
    fn lost(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else { return };
        let Some(link) = c.link else { return };
        let Some(l) = self.links.get_mut(&link) else { return };
        if l.conn == Some(conn) {
            l.conn = None;
            l.down_since.get_or_insert_with(Instant::now);
            l.next_dial = Instant::now();
        }
    }
}

/// A hasher for the bridge's maps, keyed by small integers this engine
/// chose (never by anything a peer picks freely: a flow id from the wire is
/// only looked up, and a lookup of a colliding id costs a probe, not a
/// denial of service worth SipHash on every duty cycle).
type Fast = std::hash::BuildHasherDefault<FastHasher>;

/// Multiply-rotate hashing of integer words (FxHash's scheme).
#[derive(Default)]
struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
}

/// Puts queued remote messages into the local ring; returns how many.
fn deliver(b: &mut Bridged) -> usize {
    let mut moved = 0;
    while let Some(msg) = b.inbound.front() {
        match b.end.try_send(msg) {
            Ok(()) => {
                b.inbound.pop_front();
                b.delivered += 1;
                moved += 1;
            }
            Err(SendError::WouldBlock | SendError::Full) => break,
            Err(_) => {
                b.inbound.clear();
                break;
            }
        }
    }
    moved
}

impl Agent for Bridge {
    fn name(&self) -> &str {
        "ringflow-bridge"
    }

    fn do_work(&mut self) -> usize {
        if self.ready.is_some() {
            self.start_network();
        }
        let work = self.commands() + self.opened() + self.network() + self.flows() + self.timers();
        // SYNC: Relaxed (both flags); `RemoteEngine::shutdown` polls
        // `drained` and then joins the engine thread, which orders the rest.
        if self.shared.draining.load(std::sync::atomic::Ordering::Relaxed) {
            // Drained: nothing of ours unacknowledged, nothing received left
            // to deliver, and every consumption acknowledged to the sender.
            let done = self.flows.values().all(|b| {
                b.inbound.is_empty()
                    && b.window.as_ref().is_none_or(SendWindow::is_drained)
                    && b.opening.is_none()
                    && (!b.reliable || b.consumed().min(b.delivered) == b.acked)
            });
            self.shared.drained.store(done, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(tcp) = self.tcp.as_mut() {
            // Hand what this cycle queued to the kernel now, not next cycle.
            tcp.submit();
        }
        work
    }

    fn wait(&mut self, timeout: Duration) {
        if let Some(tcp) = self.tcp.as_mut() {
            tcp.park(timeout);
        }
    }

    fn on_close(&mut self) {
        self.flows.clear();
        self.conns.clear();
    }
}
