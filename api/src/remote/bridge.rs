//! The engine agent that bridges local flow ends and TCP connections to
//! other engines. It runs on one engine thread (which owns its io_uring) and
//! never blocks there: connects to remote engines use a short timeout, and
//! allocations to local listeners (which wait for an `accept`) run on a
//! helper thread and come back as results.
//!
//! Per connection: a hello exchange (`ringflow_core::wire::handshake`), then
//! frames. Per flow: `Open` / `OpenAck`, `Data` both ways, `Close`.

use std::collections::{HashMap, VecDeque};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringflow_core::config::IoUringSection;
use ringflow_core::engine::Agent;
use ringflow_core::flow::Qos;
use ringflow_core::uring::{ConnId, TcpDriver, TcpEvent};
use ringflow_core::wire::{self, Checksum, Decoder, Features, Frame, Hello, HelloAck, OpenResult};
use ringflow_core::Deadline;

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

/// A request from an application thread.
pub(super) enum Command {
    Open { addr: SocketAddr, name: String, qos: Qos, end: Flow, reply: mpsc::Sender<Result<(), AllocError>> },
}

/// What application threads share with the bridge.
pub(super) struct Shared {
    pub commands: Mutex<Vec<Command>>,
}

/// One flow carried over a connection.
struct Bridged {
    end: Flow,
    /// The remote name (for errors).
    name: String,
    /// Next sequence number to send.
    seq: u64,
    /// Messages from the remote side waiting for room in the local ring.
    inbound: VecDeque<Vec<u8>>,
    /// The application waiting for the remote engine's answer to `Open`.
    opening: Option<mpsc::Sender<Result<(), AllocError>>>,
    /// The remote side closed; end the local flow once `inbound` is empty.
    closing: bool,
}

impl Bridged {
    fn new(end: Flow, name: String, opening: Option<mpsc::Sender<Result<(), AllocError>>>) -> Bridged {
        Bridged { end, name, seq: wire::FIRST_SEQ, inbound: VecDeque::new(), opening, closing: false }
    }
}

struct Conn {
    /// Received bytes not yet decoded.
    rx: Vec<u8>,
    /// The hello exchange is done.
    ready: bool,
    /// We dialled it (we send the Hello; the peer answers).
    dialled: bool,
    addr: Option<SocketAddr>,
    /// Frames (Open) to send once the hello exchange is done.
    queued: Vec<u8>,
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
    conns: HashMap<ConnId, Conn>,
    by_addr: HashMap<SocketAddr, ConnId>,
    flows: HashMap<(ConnId, u32), Bridged>,
    next_flow: u32,
    opened: (mpsc::Sender<Opened>, mpsc::Receiver<Opened>),
    events: Vec<TcpEvent>,
    scratch: Vec<u8>,
}

/// An incoming `Open`, allocated to a local listener on a helper thread.
struct Opened {
    conn: ConnId,
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
        let engine_id = std::process::id() as u64 ^ (Arc::as_ptr(&shared) as u64).rotate_left(32);
        Bridge {
            cfg,
            listen,
            runtime_dir,
            shared,
            ready: Some(ready),
            tcp: None,
            hello: Hello::new(engine_id, Features::NONE, 0),
            decoder: Decoder::new(wire::DEFAULT_MAX_FRAME_LEN.max(64 << 20)),
            conns: HashMap::new(),
            by_addr: HashMap::new(),
            flows: HashMap::new(),
            next_flow: 1,
            opened: mpsc::channel(),
            events: Vec::new(),
            scratch: Vec::new(),
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

    fn send_frame(&mut self, conn: ConnId, frame: &Frame<'_>) {
        self.scratch.clear();
        if wire::encode(frame, Checksum::None, &mut self.scratch).is_err() {
            return;
        }
        let ready = self.conns.get(&conn).is_some_and(|c| c.ready);
        if !ready {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.queued.extend_from_slice(&self.scratch);
            }
            return;
        }
        if let Some(tcp) = self.tcp.as_mut() {
            let _ = tcp.send(conn, &self.scratch);
        }
    }

    fn commands(&mut self) -> usize {
        let cmds = std::mem::take(&mut *self.shared.commands.lock().unwrap_or_else(|p| p.into_inner()));
        let n = cmds.len();
        for Command::Open { addr, name, qos, end, reply } in cmds {
            let conn = match self.conn_to(addr) {
                Ok(conn) => conn,
                Err(e) => {
                    let _ = reply.send(Err(AllocError::EngineUnreachable { addr: addr.to_string(), source: e }));
                    continue;
                }
            };
            let flow_id = self.next_flow;
            self.next_flow = self.next_flow.wrapping_add(1).max(1);
            self.send_frame(conn, &Frame::Open { flow_id, name: &name, qos: qos.encode() });
            self.flows.insert((conn, flow_id), Bridged::new(end, name, Some(reply)));
        }
        n
    }

    /// The connection to the engine at `addr`, dialled if there is none.
    fn conn_to(&mut self, addr: SocketAddr) -> std::io::Result<ConnId> {
        if let Some(&c) = self.by_addr.get(&addr) {
            return Ok(c);
        }
        let stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)?;
        stream.set_nodelay(true)?;
        let tcp = self.tcp.as_mut().ok_or_else(|| std::io::Error::other("engine network not started"))?;
        let conn = tcp.adopt(stream).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        self.by_addr.insert(addr, conn);
        self.conns
            .insert(conn, Conn { rx: Vec::new(), ready: false, dialled: true, addr: Some(addr), queued: Vec::new() });
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
                    let c = Conn { rx: Vec::new(), ready: false, dialled: false, addr: None, queued: Vec::new() };
                    self.conns.insert(conn, c);
                }
                TcpEvent::Received(conn, buf) => {
                    let tcp = self.tcp.as_mut().expect("network started");
                    if let Some(c) = self.conns.get_mut(&conn) {
                        c.rx.extend_from_slice(tcp.data(&buf));
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

    /// Decodes what `conn` has received: the hello exchange, then frames.
    fn decode(&mut self, conn: ConnId) {
        if !self.conns.get(&conn).is_some_and(|c| c.ready) && !self.handshake(conn) {
            return;
        }
        // Collect owned frames first: handling one may touch other state.
        let mut frames = Vec::new();
        let mut broken = false;
        if let Some(c) = self.conns.get_mut(&conn) {
            let mut used = 0;
            loop {
                match self.decoder.decode(&c.rx[used..]) {
                    Ok(Some((frame, n))) => {
                        used += n;
                        frames.push(OwnedFrame::from(&frame));
                    }
                    Ok(None) => break,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            c.rx.drain(..used);
        }
        for f in frames {
            self.on_frame(conn, f);
        }
        if broken {
            self.drop_conn(conn);
        }
    }

    /// Runs the hello exchange on `conn`'s received bytes; true once done.
    fn handshake(&mut self, conn: ConnId) -> bool {
        let Some(c) = self.conns.get_mut(&conn) else { return false };
        let (ok, used, ack) = if c.dialled {
            match HelloAck::decode(&c.rx) {
                Ok(Some((ack, n))) => (wire::accept_ack(&self.hello, &ack).is_ok(), n, None),
                Ok(None) => return false,
                Err(_) => (false, 0, None),
            }
        } else {
            match Hello::decode(&c.rx) {
                Ok(Some((theirs, n))) => {
                    let (ack, agreed) = wire::respond(&self.hello, &theirs);
                    (agreed.is_ok(), n, Some(ack))
                }
                Ok(None) => return false,
                Err(_) => (false, 0, None),
            }
        };
        c.rx.drain(..used);
        let queued = std::mem::take(&mut c.queued);
        if ok {
            c.ready = true;
        }
        if let Some(tcp) = self.tcp.as_mut() {
            if let Some(ack) = ack {
                let mut out = Vec::new();
                ack.encode(&mut out);
                let _ = tcp.send(conn, &out);
            }
            if ok && !queued.is_empty() {
                let _ = tcp.send(conn, &queued);
            }
        }
        if !ok {
            self.drop_conn(conn);
        }
        ok
    }

    /// Closes a connection that broke the protocol.
    fn drop_conn(&mut self, conn: ConnId) {
        if let Some(tcp) = self.tcp.as_mut() {
            let _ = tcp.close(conn);
        }
        self.lost(conn);
    }

    fn on_frame(&mut self, conn: ConnId, frame: OwnedFrame) {
        match frame {
            OwnedFrame::Open { flow_id, name, qos } => self.open_local(conn, flow_id, name, qos),
            OwnedFrame::OpenAck { flow_id, result } => {
                let Some(b) = self.flows.get_mut(&(conn, flow_id)) else { return };
                let Some(reply) = b.opening.take() else { return };
                if result == OpenResult::Accepted {
                    let _ = reply.send(Ok(()));
                } else {
                    let name = b.name.clone();
                    let err = match result {
                        OpenResult::NameNotFound => AllocError::NotFound { name },
                        OpenResult::PermissionDenied => AllocError::PermissionDenied,
                        _ => AllocError::CorruptPeer(format!("remote engine refused the flow: {result:?}")),
                    };
                    let _ = reply.send(Err(err));
                    self.flows.remove(&(conn, flow_id));
                }
            }
            OwnedFrame::Data { flow_id, payload } => {
                if let Some(b) = self.flows.get_mut(&(conn, flow_id)) {
                    b.inbound.push_back(payload);
                }
            }
            OwnedFrame::Close { flow_id } => {
                if let Some(b) = self.flows.get_mut(&(conn, flow_id)) {
                    b.closing = true;
                }
            }
            OwnedFrame::Other => {}
        }
    }

    /// Allocates an incoming flow to the local listener on a helper thread.
    fn open_local(&mut self, conn: ConnId, flow_id: u32, name: String, qos: [u8; 32]) {
        let tx = self.opened.0.clone();
        let dir = self.runtime_dir.clone();
        let spawned = std::thread::Builder::new().name("ringflow-open".into()).spawn(move || {
            let result = Qos::decode(&qos).map_err(AllocError::InvalidQos).and_then(|qos| {
                let opts = match dir {
                    Some(d) => FlowOptions::new().runtime_dir(d),
                    None => FlowOptions::new(),
                };
                Flow::alloc_with(&name, &qos, Deadline::after(Duration::from_secs(5)), opts)
            });
            let _ = tx.send(Opened { conn, flow_id, result });
        });
        if spawned.is_err() {
            self.send_frame(conn, &Frame::OpenAck { flow_id, result: OpenResult::ShuttingDown });
        }
    }

    fn opened(&mut self) -> usize {
        let mut n = 0;
        while let Ok(Opened { conn, flow_id, result }) = self.opened.1.try_recv() {
            n += 1;
            let answer = match result {
                Ok(end) => {
                    let b = Bridged::new(end, String::new(), None);
                    self.flows.insert((conn, flow_id), b);
                    OpenResult::Accepted
                }
                Err(AllocError::NotFound { .. } | AllocError::InvalidName(_)) => OpenResult::NameNotFound,
                Err(AllocError::PermissionDenied) => OpenResult::PermissionDenied,
                Err(AllocError::InvalidQos(_) | AllocError::Refused(_)) => OpenResult::QosRefused,
                Err(_) => OpenResult::NameNotFound,
            };
            self.send_frame(conn, &Frame::OpenAck { flow_id, result: answer });
        }
        n
    }

    /// Moves messages between every flow's local end and its connection.
    fn flows(&mut self) -> usize {
        let mut moved = 0;
        let mut ended = Vec::new();
        let keys: Vec<(ConnId, u32)> = self.flows.keys().copied().collect();
        for key in keys {
            let (conn, flow_id) = key;
            let ready = self.conns.get(&conn).is_some_and(|c| c.ready);
            let Some(b) = self.flows.get_mut(&key) else { continue };
            // Remote -> local: as much as the local ring takes.
            while let Some(msg) = b.inbound.front() {
                match b.end.try_send(msg) {
                    Ok(()) => {
                        b.inbound.pop_front();
                        moved += 1;
                    }
                    Err(SendError::WouldBlock) => break,
                    Err(_) => {
                        b.inbound.clear();
                        ended.push(key);
                        break;
                    }
                }
            }
            if b.closing && b.inbound.is_empty() {
                ended.push(key);
                continue;
            }
            // Local -> remote, once the remote side has accepted the flow.
            if b.opening.is_some() || !ready {
                continue;
            }
            let Some(tcp) = self.tcp.as_mut() else { continue };
            for _ in 0..BATCH {
                if tcp.unsent(conn).unwrap_or(0) > MAX_UNSENT {
                    break;
                }
                match b.end.try_recv_ref() {
                    Ok(m) => {
                        self.scratch.clear();
                        let frame = Frame::Data { flow_id, seq: b.seq, payload: &m };
                        if wire::encode(&frame, Checksum::None, &mut self.scratch).is_ok() {
                            let _ = tcp.send(conn, &self.scratch);
                        }
                        b.seq += 1;
                        moved += 1;
                    }
                    Err(RecvError::WouldBlock) => break,
                    Err(_) => {
                        self.scratch.clear();
                        let close = Frame::Close { flow_id, last_seq: b.seq - 1 };
                        if wire::encode(&close, Checksum::None, &mut self.scratch).is_ok() {
                            let _ = tcp.send(conn, &self.scratch);
                        }
                        ended.push(key);
                        break;
                    }
                }
            }
        }
        for key in ended {
            // Dropping the engine's end ends the flow for the application.
            self.flows.remove(&key);
        }
        moved
    }

    /// A connection is gone: its flows end, pending opens fail.
    fn lost(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.remove(&conn) {
            if let Some(addr) = c.addr {
                self.by_addr.remove(&addr);
            }
        }
        let keys: Vec<_> = self.flows.keys().filter(|(c, _)| *c == conn).copied().collect();
        for key in keys {
            if let Some(mut b) = self.flows.remove(&key) {
                if let Some(reply) = b.opening.take() {
                    let _ = reply.send(Err(AllocError::PeerGone));
                }
            }
        }
    }
}

impl Agent for Bridge {
    fn name(&self) -> &str {
        "ringflow-bridge"
    }

    fn do_work(&mut self) -> usize {
        if self.ready.is_some() {
            self.start_network();
        }
        self.commands() + self.opened() + self.network() + self.flows()
    }

    fn on_close(&mut self) {
        self.flows.clear();
        self.conns.clear();
    }
}

/// A decoded frame, owned, so the receive buffer can be reused while it is
/// handled.
enum OwnedFrame {
    Open { flow_id: u32, name: String, qos: [u8; 32] },
    OpenAck { flow_id: u32, result: OpenResult },
    Data { flow_id: u32, payload: Vec<u8> },
    Close { flow_id: u32 },
    Other,
}

impl From<&Frame<'_>> for OwnedFrame {
    fn from(f: &Frame<'_>) -> Self {
        match *f {
            Frame::Open { flow_id, name, qos } => OwnedFrame::Open { flow_id, name: name.to_owned(), qos },
            Frame::OpenAck { flow_id, result } => OwnedFrame::OpenAck { flow_id, result },
            Frame::Data { flow_id, payload, .. } => OwnedFrame::Data { flow_id, payload: payload.to_vec() },
            Frame::Close { flow_id, .. } => OwnedFrame::Close { flow_id },
            _ => OwnedFrame::Other,
        }
    }
}
