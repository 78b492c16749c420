//! A standalone engine (`ringflow engine`) against a hostile peer that has
//! completed the hello: frames for flows that do not exist, lengths beyond
//! what a flow admits, bodies trickled and never finished, floods of
//! opens. After each, the engine is up, answers a legitimate remote flow,
//! and its resident memory stays within its budget
//! (`net.memory_budget`) plus a margin.
//!
//! The hostile peer is a raw TCP client speaking the wire codec
//! (`ringflow_core::wire`); the legitimate flow goes through a second
//! engine process, as an application attached to it. Every process is
//! killed and reaped when its guard drops; every wait has a hang guard;
//! nothing asserts a duration.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::thread;

use ringflow::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos};
use ringflow_core::wire::{self, Checksum, Frame, Hello, HelloAck, OpenResult};
use support::{private_dir, rss_kib, EngineProc, EngineSpec, LONG};

/// The far engine's budget in these tests (its default is far larger).
const BUDGET: usize = 16 << 20;
/// What the engine's resident memory may exceed its idle size by, besides
/// the budget: allocator slack, thread stacks, flows' own state.
const MARGIN: usize = 24 << 20;

fn dir(tag: &str) -> ringflow_testkit::TempDir {
    ringflow_testkit::temp_dir(&format!("eh-{tag}"))
}

/// A peer engine that is not one: the hello, then whatever the test writes.
struct RawPeer {
    sock: TcpStream,
    /// Bytes read past the hello answer.
    rx: Vec<u8>,
}

impl RawPeer {
    /// Connects to `addr` and completes the hello as engine `engine_id`.
    fn connect(addr: &str, engine_id: u64) -> RawPeer {
        let mut sock = TcpStream::connect(addr).expect("connect to the engine");
        sock.set_read_timeout(Some(LONG)).unwrap();
        let mut hello = Vec::new();
        Hello::new(engine_id, wire::Features::NONE, 100, None).encode(&mut hello);
        sock.write_all(&hello).unwrap();
        let mut rx = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            if let Some((_, n)) = HelloAck::decode(&rx).expect("a well-formed hello answer") {
                rx.drain(..n);
                break;
            }
            let n = sock.read(&mut buf).expect("the hello answer");
            assert!(n > 0, "the engine closed the connection during the hello");
            rx.extend_from_slice(&buf[..n]);
        }
        RawPeer { sock, rx }
    }

    fn send(&mut self, frame: &Frame<'_>) {
        let mut out = Vec::new();
        wire::encode(frame, Checksum::None, &mut out).unwrap();
        self.sock.write_all(&out).unwrap();
    }

    /// Writes raw bytes; false if the engine has closed the connection.
    fn write(&mut self, bytes: &[u8]) -> bool {
        self.sock.write_all(bytes).is_ok()
    }

    /// The next frame the engine sends that is not a keepalive.
    fn next_frame(&mut self) -> Option<Frame<'static>> {
        let decoder = wire::Decoder::new(1 << 20);
        let mut buf = [0u8; 4096];
        loop {
            if let Some((frame, n)) = decoder.decode(&self.rx).expect("a well-formed frame") {
                let owned = own(&frame);
                self.rx.drain(..n);
                match owned {
                    Frame::Keepalive { .. } => continue,
                    f => return Some(f),
                }
            }
            match self.sock.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("reading from the engine: {e}"),
            }
        }
    }

    /// Opens flow `flow_id` to `name` with `qos`; the engine's answer.
    fn open(&mut self, flow_id: u32, name: &str, qos: &Qos) -> OpenResult {
        self.send(&Frame::Open { flow_id, name, qos: qos.encode() });
        loop {
            match self.next_frame() {
                Some(Frame::OpenAck { flow_id: id, result, .. }) if id == flow_id => return result,
                Some(_) => {}
                None => panic!("the engine closed the connection instead of answering the open"),
            }
        }
    }

    /// Whether the engine closes the connection: reads (dropping what it
    /// sends) until the end, or the hang guard.
    fn closed_by_engine(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.sock.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// A frame without borrows (the tests only look at fixed-size kinds).
fn own(frame: &Frame<'_>) -> Frame<'static> {
    match *frame {
        Frame::OpenAck { flow_id, result, qos } => Frame::OpenAck { flow_id, result, qos },
        Frame::Ack { flow_id, cumulative_seq } => Frame::Ack { flow_id, cumulative_seq },
        Frame::Close { flow_id, last_seq } => Frame::Close { flow_id, last_seq },
        Frame::Gone { flow_id, last_seq } => Frame::Gone { flow_id, last_seq },
        Frame::Reset { flow_id, consumed_seq } => Frame::Reset { flow_id, consumed_seq },
        Frame::Resume { flow_id, next_expected_seq } => Frame::Resume { flow_id, next_expected_seq },
        Frame::Keepalive { ts_ns } => Frame::Keepalive { ts_ns },
        Frame::Open { flow_id, .. } | Frame::Data { flow_id, .. } => Frame::Reset { flow_id, consumed_seq: u64::MAX },
        // No cluster runs in these tests: a stand-in no test looks for.
        Frame::Cluster { .. } => Frame::Keepalive { ts_ns: u64::MAX },
    }
}

/// The header and fixed fields of a `Data` frame of `flow_id` claiming a
/// payload of `payload_len` bytes (its body to follow, or never).
fn data_header(flow_id: u32, payload_len: usize) -> Vec<u8> {
    wire::data_prefix(flow_id, wire::FIRST_SEQ, payload_len, Checksum::None).unwrap().to_vec()
}

/// The far engine, with a small budget, and a listener `echo` in its
/// runtime directory served by this process: every flow accepted is
/// echoed on a thread of its own until it ends.
struct Far {
    engine: EngineProc,
    _echo: thread::JoinHandle<()>,
}

fn far_engine(far_dir: &Path) -> Far {
    let engine = EngineSpec::new(far_dir, "127.0.0.1:0").env("RINGFLOW_NET_MEMORY_BUDGET", &BUDGET.to_string()).start();
    let mut listener = Listener::bind_with("echo", ListenerOptions::new().remote(true).runtime_dir(far_dir)).unwrap();
    let echo = thread::spawn(move || {
        // Ends when the engine dies (its flows and the accept fail) or the
        // hang guard passes.
        while let Ok(mut flow) = listener.accept_timeout(LONG) {
            thread::spawn(move || {
                let mut buf = vec![0u8; 1 << 20];
                while let Ok(n) = flow.recv_into_timeout(&mut buf, LONG) {
                    if flow.send_timeout(&buf[..n], LONG).is_err() {
                        return;
                    }
                }
            });
        }
    });
    Far { engine, _echo: echo }
}

/// A legitimate remote flow to `echo` through an engine of its own
/// (`near_dir`), and a few round trips on it.
fn legitimate_round_trips(near_dir: &Path, far: &EngineProc) {
    let opts = FlowOptions::new().runtime_dir(near_dir);
    let mut flow = Flow::alloc_with(&format!("echo@{}", far.addr), &Qos::data(), Deadline::after(LONG), opts)
        .expect("a legitimate flow after the attack");
    for i in 0..20u32 {
        let msg = vec![i as u8; 1 + i as usize * 100];
        flow.send_timeout(&msg, LONG).unwrap();
        assert_eq!(&*flow.recv_ref_timeout(LONG).unwrap(), &msg[..], "round trip {i}");
    }
    flow.dealloc_timeout(LONG).unwrap();
}

/// Waits until the engine's resident memory is within the budget and the
/// margin over its idle size (what it freed may take a moment to go back
/// to the system: see the bridge's `give_back`); fails past the hang guard.
fn assert_rss_within_budget(far: &EngineProc, idle_kib: u64, after: &str) {
    let limit = idle_kib + ((BUDGET + MARGIN) >> 10) as u64;
    let mut rss = 0;
    support::wait_until("the engine's memory within its budget", || {
        rss = rss_kib(far.pid());
        if rss <= limit {
            Ok(())
        } else {
            Err(format!("{after}: VmRSS {rss} KiB, idle {idle_kib} KiB, budget + margin {} KiB", limit - idle_kib))
        }
    });
    println!("far engine VmRSS: idle {idle_kib} KiB, {after}: {rss} KiB (budget {} KiB)", BUDGET >> 10);
}

/// Eight connections each send the header of a 48 MiB `Data` frame for a
/// flow that does not exist and trickle 8 MiB of its body: nothing of it is
/// kept (the frame is refused at its header, its bytes dropped as they
/// come), each gets `Reset`, and the engine's memory does not move.
#[test]
fn frames_for_flows_that_do_not_exist_are_refused_at_their_header() {
    let top = dir("unknown");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let far = far_engine(&far_dir);
    let _near = EngineSpec::new(&near_dir, "none").start();
    let idle = rss_kib(far.engine.pid());
    let mut peers: Vec<RawPeer> = (0..8).map(|i| RawPeer::connect(&far.engine.addr, 0xbad0 + i)).collect();
    let chunk = vec![0x5a; 64 << 10];
    for (i, p) in peers.iter_mut().enumerate() {
        assert!(p.write(&data_header(1000 + i as u32, 48 << 20)));
    }
    for _ in 0..(8 << 20) / chunk.len() {
        for p in peers.iter_mut() {
            assert!(
                p.write(&chunk),
                "the engine closed a connection that only sent bytes of a skipped frame; it said {:?}",
                far.engine.said()
            );
        }
    }
    for (i, p) in peers.iter_mut().enumerate() {
        match p.next_frame() {
            Some(Frame::Reset { flow_id, .. }) => assert_eq!(flow_id, 1000 + i as u32),
            other => panic!("connection {i}: {other:?}, expected Reset of the unknown flow"),
        }
    }
    assert_rss_within_budget(&far.engine, idle, "8 × 8 MiB trickled for flows that do not exist");
    legitimate_round_trips(&near_dir, &far.engine);
}

/// A `Data` frame longer than its flow's largest message is refused at its
/// header: the connection is closed before any of the body is kept.
#[test]
fn a_frame_longer_than_its_flow_admits_closes_the_connection() {
    let top = dir("long");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let far = far_engine(&far_dir);
    let _near = EngineSpec::new(&near_dir, "none").start();
    let mut peer = RawPeer::connect(&far.engine.addr, 0x10f6);
    let qos = Qos { max_msg: 64 << 10, ..Qos::data() };
    assert_eq!(peer.open(7, "echo", &qos), OpenResult::Accepted);
    assert!(peer.write(&data_header(7, (64 << 10) + 1)));
    assert!(peer.closed_by_engine(), "a frame beyond the flow's max_msg was waited for");
    legitimate_round_trips(&near_dir, &far.engine);
}

/// Flows that admit large messages, and connections that each trickle a
/// frame as large as that and never finish it: a connection is closed once
/// it holds a quarter of the budget, and together they never hold more
/// than the budget.
#[test]
fn unfinished_large_frames_stay_within_the_memory_budget() {
    let top = dir("budget");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let far = far_engine(&far_dir);
    let _near = EngineSpec::new(&near_dir, "none").start();
    let idle = rss_kib(far.engine.pid());
    let big = 32 << 20;
    let qos = Qos { max_msg: big, ..Qos::data() };
    let mut peers: Vec<RawPeer> = (0..6).map(|i| RawPeer::connect(&far.engine.addr, 0xb16 + i)).collect();
    for p in peers.iter_mut() {
        assert_eq!(p.open(1, "echo", &qos), OpenResult::Accepted);
        assert!(p.write(&data_header(1, big)));
    }
    // Each trickles up to 6 MiB (more than its quarter of the budget).
    let chunk = vec![0xa5; 64 << 10];
    let mut open = vec![true; peers.len()];
    for _ in 0..(6 << 20) / chunk.len() {
        for (p, open) in peers.iter_mut().zip(open.iter_mut()) {
            *open = *open && p.write(&chunk);
        }
    }
    for (i, p) in peers.iter_mut().enumerate() {
        assert!(p.closed_by_engine(), "connection {i} trickled past its share and was kept");
    }
    assert_rss_within_budget(&far.engine, idle, "6 connections trickling 32 MiB frames");
    legitimate_round_trips(&near_dir, &far.engine);
}

/// A listener `name` in `dir` that accepts every flow and drops it at once.
fn dropping_listener(dir: &Path, name: &str) -> thread::JoinHandle<()> {
    let mut listener = Listener::bind_with(name, ListenerOptions::new().remote(true).runtime_dir(dir)).unwrap();
    thread::spawn(move || {
        while let Ok(flow) = listener.accept_timeout(LONG) {
            drop(flow);
        }
    })
}

fn seed() -> u64 {
    let seed = std::env::var("RINGFLOW_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64) | 1
    });
    println!("seed {seed} (RINGFLOW_TEST_SEED={seed} replays it)");
    seed
}

/// Connections that complete the hello and then write headers with forged
/// kinds, flags and lengths, and random bytes: the engine stays up, keeps
/// its memory, and answers a legitimate flow afterwards.
#[test]
fn forged_headers_after_the_hello_leave_the_engine_serving() {
    let mut rng = ringflow_testkit::Rng(seed());
    let top = dir("forged");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let far = far_engine(&far_dir);
    let _near = EngineSpec::new(&near_dir, "none").start();
    let idle = rss_kib(far.engine.pid());
    for i in 0..200u64 {
        let mut peer = RawPeer::connect(&far.engine.addr, 0xf0f0_0000 + i);
        let mut header = Vec::with_capacity(wire::HEADER_LEN + 4);
        header.extend_from_slice(&(rng.forged() as u32).to_le_bytes());
        header.push(rng.below(12) as u8);
        header.push(rng.next_u64() as u8);
        header.extend_from_slice(&(rng.forged() as u16).to_le_bytes());
        header.extend_from_slice(&(rng.forged() as u32).to_le_bytes());
        let tail: Vec<u8> = (0..rng.below(64 << 10)).map(|_| rng.next_u64() as u8).collect();
        // The engine may close the connection at any byte: writes may fail.
        let _ = peer.write(&header) && peer.write(&tail);
    }
    assert_rss_within_budget(&far.engine, idle, "200 connections of forged headers");
    legitimate_round_trips(&near_dir, &far.engine);
}

/// A frame written one byte at a time is still a frame: an `Open` trickled
/// byte by byte is answered.
#[test]
fn a_trickled_open_is_answered() {
    let top = dir("trickle");
    let far_dir = private_dir(top.path(), "far");
    let far = far_engine(&far_dir);
    let mut peer = RawPeer::connect(&far.engine.addr, 0x7e1c);
    let mut open = Vec::new();
    let frame = Frame::Open { flow_id: 9, name: "echo", qos: Qos::data().encode() };
    wire::encode(&frame, Checksum::None, &mut open).unwrap();
    for byte in open {
        assert!(peer.write(&[byte]));
        thread::sleep(std::time::Duration::from_millis(2));
    }
    loop {
        match peer.next_frame() {
            Some(Frame::OpenAck { flow_id: 9, result, .. }) => {
                assert_eq!(result, OpenResult::Accepted);
                break;
            }
            Some(_) => {}
            None => panic!("the engine closed a connection that trickled an open"),
        }
    }
}

/// Thousands of opens on one connection, for names nobody binds and for
/// one that accepts and drops every flow: each is answered (refused,
/// `Busy`, or accepted and then ended), and once the connection is gone
/// the engine holds no more descriptors than before, keeps its memory,
/// and answers a legitimate flow.
#[test]
fn a_flood_of_opens_is_answered_and_leaves_nothing() {
    const MISSING: u32 = 3000;
    // Each flow accepted holds a statistics slot of the engine's (for
    // `ringflow stat`, some 70 KiB, reused by later flows, resident once
    // touched) until it ends: kept few enough for the margin.
    const DROPPED: u32 = 120;
    let top = dir("flood");
    let (near_dir, far_dir) = (private_dir(top.path(), "near"), private_dir(top.path(), "far"));
    let far = far_engine(&far_dir);
    let _near = EngineSpec::new(&near_dir, "none").start();
    let _sink = dropping_listener(&far_dir, "sink");
    let idle = rss_kib(far.engine.pid());
    let before = support::fds_of(far.engine.pid());
    let mut peer = RawPeer::connect(&far.engine.addr, 0xf100d);
    // A short peer timeout: what the engine keeps for the connection goes
    // soon after it does.
    let qos = Qos { peer_timeout: std::time::Duration::from_millis(500), ..Qos::data() }.encode();
    // All the missing names in one burst (most find the engine busy),
    // then the bound one in batches that are answered before the next.
    let open = |flow_id: u32, out: &mut Vec<u8>| {
        let name = if flow_id <= MISSING { format!("nobody-{flow_id}") } else { "sink".to_owned() };
        wire::encode(&Frame::Open { flow_id, name: &name, qos }, Checksum::None, out).unwrap();
    };
    let mut answered = std::collections::HashSet::new();
    let (mut missing, mut busy, mut accepted) = (0, 0, 0);
    let batches =
        std::iter::once(1..=MISSING).chain((0..DROPPED / 30).map(|b| MISSING + 1 + b * 30..=MISSING + 30 + b * 30));
    for batch in batches {
        let mut burst = Vec::new();
        for flow_id in batch.clone() {
            open(flow_id, &mut burst);
        }
        assert!(peer.write(&burst));
        while answered.len() < *batch.end() as usize {
            match peer.next_frame() {
                Some(Frame::OpenAck { flow_id, result, .. }) => {
                    assert!(answered.insert(flow_id), "flow {flow_id} answered twice");
                    match result {
                        OpenResult::NameNotFound => {
                            assert!(flow_id <= MISSING, "{flow_id}: sink is bound");
                            missing += 1;
                        }
                        OpenResult::Busy => busy += 1,
                        OpenResult::Accepted => {
                            assert!(flow_id > MISSING, "{flow_id}: nobody binds that name");
                            accepted += 1;
                        }
                        other => panic!("flow {flow_id}: {other:?}"),
                    }
                }
                Some(_) => {}
                None => panic!("the engine closed the connection after {} answers", answered.len()),
            }
        }
    }
    assert!(accepted > 0, "no open of the bound name was accepted");
    println!("{missing} not found, {busy} busy, {accepted} accepted (and dropped by the listener)");
    drop(peer);
    let mut now = before;
    support::wait_until("the far engine to let go of the flood's flows", || {
        now = support::fds_of(far.engine.pid());
        if now.memfds == before.memfds && now.sockets <= before.sockets {
            Ok(())
        } else {
            Err(format!("before {before:?}, now {now:?}"))
        }
    });
    println!("far engine descriptors before {before:?}, after {now:?}");
    assert_rss_within_budget(&far.engine, idle, "a flood of opens");
    legitimate_round_trips(&near_dir, &far.engine);
}

/// An engine (this test, raw) that grants less than was asked: the
/// sending engine keeps no more unacknowledged than the granted QoS's
/// window, the figure the granting engine bounds its queue of the flow by
/// (more would have it close the connection as a peer over its bounds).
#[test]
fn a_sender_keeps_in_flight_no_more_than_the_granted_qos_allows() {
    use std::sync::mpsc;
    let top = dir("granted");
    let near_dir = private_dir(top.path(), "near");
    let _near = EngineSpec::new(&near_dir, "none").start();
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = server.local_addr().unwrap();
    let asked = Qos { peer_timeout: std::time::Duration::from_millis(500), ..Qos::data() };
    let granted = Qos { max_msg: 64 << 10, ..asked };
    let (tid_tx, tid_rx) = mpsc::channel();
    let app = thread::spawn(move || {
        let opts = FlowOptions::new().runtime_dir(&near_dir);
        let mut flow = Flow::alloc_with(&format!("sink@{addr}"), &asked, Deadline::after(LONG), opts).unwrap();
        let _ = tid_tx.send(ringflow_testkit::thread_id());
        let msg = vec![7u8; 64 << 10];
        // Until the engine takes no more (nothing is ever acknowledged):
        // then blocked, until the flow ends with the connection.
        while flow.send_timeout(&msg, LONG).is_ok() {}
    });
    let (mut sock, _) = server.accept().unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_millis(300))).unwrap();
    let ours = Hello::new(0x6a47, wire::Features::NONE, 100, None);
    let mut rx = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut read_more = |sock: &mut TcpStream, rx: &mut Vec<u8>| -> bool {
        match sock.read(&mut buf) {
            Ok(0) => panic!("the engine closed the connection"),
            Ok(n) => {
                rx.extend_from_slice(&buf[..n]);
                true
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => false,
            Err(e) => panic!("{e}"),
        }
    };
    let theirs = loop {
        if let Some((hello, n)) = Hello::decode(&rx).unwrap() {
            rx.drain(..n);
            break hello;
        }
        read_more(&mut sock, &mut rx);
    };
    let (ack, agreed) = wire::respond(&ours, &theirs, None);
    agreed.expect("a hello we agree with");
    let mut out = Vec::new();
    ack.encode(&mut out);
    sock.write_all(&out).unwrap();
    let decoder = wire::Decoder::new(1 << 21);
    let mut in_flight = 0usize;
    let mut blocked = false;
    // Reads (each ends with a byte, a keepalive at least every 100 ms, or
    // 300 ms of silence) without a new message since the sender blocked.
    let mut quiet = 0;
    loop {
        let before = in_flight;
        while let Some((frame, n)) = decoder.decode(&rx).unwrap() {
            match frame {
                Frame::Open { flow_id, .. } => {
                    let answer = Frame::OpenAck { flow_id, result: OpenResult::Accepted, qos: granted.encode() };
                    let mut out = Vec::new();
                    wire::encode(&answer, Checksum::None, &mut out).unwrap();
                    sock.write_all(&out).unwrap();
                }
                Frame::Data { payload, .. } => in_flight += payload.len(),
                _ => {}
            }
            rx.drain(..n);
        }
        let mut keepalive = Vec::new();
        wire::encode(&Frame::Keepalive { ts_ns: 0 }, Checksum::None, &mut keepalive).unwrap();
        sock.write_all(&keepalive).unwrap();
        read_more(&mut sock, &mut rx);
        if blocked {
            quiet = if in_flight == before { quiet + 1 } else { 0 };
            if quiet == 5 {
                break; // the sender waits, and its engine sends nothing more
            }
        } else {
            if let Ok(tid) = tid_rx.try_recv() {
                ringflow_testkit::wait_until_blocked(tid);
                blocked = true;
            }
        }
    }
    // The window of the granted QoS: 4 rings' worth (1 MiB here).
    let window = (granted.ring_bytes * 4).max(granted.max_msg * 2).max(1 << 20);
    println!("in flight unacknowledged: {in_flight} bytes (granted window {window})");
    assert!(in_flight >= granted.max_msg, "the sender sent nearly nothing: {in_flight}");
    assert!(in_flight <= window, "{in_flight} bytes in flight, the granted QoS's window is {window}");
    // The connection and the listener go: the flow ends at its peer
    // timeout, and the blocked sender with it.
    drop(sock);
    drop(server);
    app.join().unwrap();
}
