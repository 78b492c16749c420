//! Remote flows under faults. Between two engines (`RemoteEngine`, real TCP
//! through io_uring on loopback): a TCP connection cut mid-stream — through
//! a test proxy — is resumed and a reliable flow loses and duplicates
//! nothing, in either direction; the death (kill -9) of a remote application
//! or of the remote engine reaches the local application as `PeerGone`, not
//! as an end of flow; without io_uring the engine refuses to start with the
//! cause and the fix while local flows keep working; many flows share one
//! engine pair.
//!
//! Children are this test binary re-run (see common/mod.rs). Nothing here
//! asserts a duration: a link is held down until a redial was refused, the
//! sleeps only poll for a child's marker file or a counter, and every
//! blocking call has a generous deadline so
//! that a bug fails the test instead of hanging it. Engines park when idle;
//! nothing spins.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::numbered::{check_message, make_message};
use common::proxy::Proxy;
use common::{child_arg, is_child, spawn_flow_child, ChildProcess};
use ringflow::config::{EngineConfig, IdleStrategy, NetBackend, ThreadingMode};
use ringflow::remote::Backend;
use ringflow::remote::RemoteEngine;
use ringflow::{AllocError, Deadline, Flow, Listener, ListenerOptions, Qos, RecvError, SendError};

/// The deadline of every blocking call: long enough never to fire on a slow
/// or loaded host, short enough that a bug fails instead of hanging.
const LONG: Duration = Duration::from_secs(30);
/// Largest message of the numbered streams (smallest: the header).
const MAX_MSG: usize = 2000;
/// The stream key of a test's single flow (see [`make_message`]).
const STREAM: u32 = 7;
/// Messages the sender may be ahead of a cut: it waits for the go-ahead
/// this many messages past the point where the receiver cuts, so data is in
/// flight when the link breaks and everything after must cross a new one.
const IN_FLIGHT: u64 = 2_000;

// ---- helpers -------------------------------------------------------------

/// A private (0700) directory under the system temp dir, removed on drop.
struct TestDir(ringflow_testkit::TempDir);

impl TestDir {
    fn new(tag: &str) -> TestDir {
        // Every test here starts engines, whose threads keep their
        // statistics in the default runtime directory.
        ringflow_testkit::isolate_runtime_dir();
        TestDir(ringflow_testkit::temp_dir(&format!("faults-{tag}")))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    /// The runtime directory for names (made 0700 by the first bind).
    fn names(&self) -> PathBuf {
        self.path().join("names")
    }
}

/// Re-runs this binary as `entry` with `dir` as RINGFLOW_TEST_DIR. Must be
/// called on the test's own thread: the child is killed when the thread
/// that spawned it ends (PR_SET_PDEATHSIG).
fn spawn_in(entry: &'static str, dir: &TestDir, extra: &[(&str, String)]) -> ChildProcess {
    let mut args = vec![("DIR", dir.path().display().to_string())];
    args.extend(extra.iter().cloned());
    spawn_flow_child(entry, &args)
}

/// Writes the marker `name` into `dir` so that it appears whole (rename).
fn write_marker(dir: &Path, name: &str, contents: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, contents).expect("write a marker");
    std::fs::rename(&tmp, dir.join(name)).expect("publish a marker");
}

fn sleep_forever() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// An engine that parks when idle (no spinning, no yielding: a park that
/// starts at 1 µs and doubles up to 1 ms), on its own thread, listening on
/// a port of the kernel's choice when `listen`.
fn engine_config(listen: bool) -> EngineConfig {
    let builder = EngineConfig::builder().mode(ThreadingMode::Dedicated).idle(IdleStrategy::Backoff {
        spins: 0,
        yields: 0,
        park: Duration::from_millis(1),
    });
    let builder = if listen { builder.listen(Some("127.0.0.1:0")) } else { builder };
    builder.build().expect("engine configuration")
}

/// The `data` preset (reliable, ordered) with a peer timeout far above any
/// time a test holds a link down.
fn reliable_qos() -> Qos {
    Qos { peer_timeout: Duration::from_secs(20), ..Qos::data() }
}

/// Sends messages `0..count` of `stream`; before message `hold_at[k]` it
/// waits for the `k`th go-ahead on `go`.
fn send_numbered(
    flow: &mut Flow,
    stream: u32,
    count: u64,
    hold_at: &[u64],
    go: &mpsc::Receiver<()>,
) -> Result<(), String> {
    let mut msg = Vec::with_capacity(MAX_MSG);
    for seq in 0..count {
        if hold_at.contains(&seq) {
            go.recv_timeout(LONG).map_err(|e| format!("sender: no go-ahead before message {seq}: {e}"))?;
        }
        make_message(stream, seq, MAX_MSG, &mut msg);
        flow.send_timeout(&msg, LONG).map_err(|e| format!("sender: message {seq} of {count}: {e} ({e:?})"))?;
    }
    Ok(())
}

/// Receives messages `0..count` of `stream` in order, calling `after(n)`
/// once `n` have arrived.
fn recv_numbered(flow: &mut Flow, stream: u32, count: u64, mut after: impl FnMut(u64)) -> Result<(), String> {
    let mut buf = vec![0u8; MAX_MSG];
    let mut expect = Vec::with_capacity(MAX_MSG);
    for seq in 0..count {
        let n = flow
            .recv_into_timeout(&mut buf, LONG)
            .map_err(|e| format!("receiver: message {seq} of {count}: {e} ({e:?})"))?;
        check_message(stream, seq, MAX_MSG, &buf[..n], &mut expect)?;
        after(seq + 1);
    }
    Ok(())
}

/// The next receive, which should be the end of the stream.
fn recv_end(flow: &mut Flow) -> Result<usize, RecvError> {
    let mut buf = vec![0u8; MAX_MSG];
    flow.recv_into_timeout(&mut buf, LONG)
}

/// A listener `name` on a far engine that the near engine reaches through
/// a proxy (which cuts the link or flips a bit when told).
struct Proxied {
    listener: Listener,
    far: RemoteEngine,
    proxy: Proxy,
    near: RemoteEngine,
}

impl Proxied {
    fn start(dir: &TestDir, name: &str) -> Proxied {
        let listener = Listener::bind_with(name, ListenerOptions::new().remote(true).runtime_dir(dir.names())).unwrap();
        let far = RemoteEngine::start(&engine_config(true), Some(dir.names())).unwrap();
        let proxy = Proxy::start(far.listen_addr().unwrap());
        let near = RemoteEngine::start(&engine_config(false), None).unwrap();
        Proxied { listener, far, proxy, near }
    }
}

/// Checks that all `count` numbered messages arrived (`received`) and that
/// the flow then ended.
fn expect_all_then_end(received: Result<(), String>, flow: &mut Flow, proxy: &Proxy, count: u64) {
    if let Err(why) = received {
        panic!(
            "{why} (proxy: {} connections, {} cuts, {} bits flipped)",
            proxy.connections(),
            proxy.cuts(),
            proxy.flipped()
        );
    }
    match recv_end(flow) {
        Err(RecvError::Closed) => {}
        other => panic!("after all {count} messages: {other:?}, expected the end of flow"),
    }
}

/// Cuts every connection through `proxy`; when `hold_down`, keeps the link
/// down (new connections refused) until the engine has tried to redial
/// and been refused.
fn cut_link(proxy: &Proxy, hold_down: bool) {
    let refused = proxy.refused();
    if hold_down {
        proxy.pause(true);
    }
    let cut = proxy.cut();
    assert!(cut >= 1, "cut {}: no connection was open (the flow's traffic went elsewhere?)", proxy.cuts());
    if hold_down {
        ringflow_testkit::wait_for("a redial refused while the link is down", || proxy.refused() > refused);
        proxy.pause(false);
    }
}

// ---- the test proxy itself -----------------------------------------------

#[test]
fn the_test_proxy_forwards_cuts_and_refuses() {
    // An echo server for exactly the two connections the proxy will dial.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = echo.local_addr().unwrap();
    let server = thread::spawn(move || {
        let mut echoers = Vec::new();
        for _ in 0..2 {
            let (mut s, _) = echo.accept().unwrap();
            echoers.push(thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
            }));
        }
        for e in echoers {
            e.join().unwrap();
        }
    });
    let connect = |proxy: &Proxy| {
        let s = TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(LONG)).unwrap();
        s
    };
    let closed = |s: &mut TcpStream| match s.read(&mut [0u8; 16]) {
        Ok(0) => true,
        Err(e) => e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut,
        Ok(_) => false,
    };
    let proxy = Proxy::start(target);

    // Forwarding, both ways, a megabyte intact.
    let mut first = connect(&proxy);
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 + i / 4093) as u8).collect();
    let mut writer = first.try_clone().unwrap();
    let to_write = data.clone();
    let w = thread::spawn(move || writer.write_all(&to_write).unwrap());
    let mut back = vec![0u8; data.len()];
    first.read_exact(&mut back).unwrap();
    w.join().unwrap();
    assert!(back == data, "the proxy changed the bytes");
    assert_eq!((proxy.connections(), proxy.open()), (1, 1));

    // A cut closes the open connection.
    assert_eq!(proxy.cut(), 1);
    assert!(closed(&mut first), "the cut connection still carries data");
    assert_eq!(proxy.cuts(), 1);

    // Paused: accepted, then closed at once; nothing is dialled.
    proxy.pause(true);
    let mut refused = connect(&proxy);
    assert!(closed(&mut refused), "a connection made while paused was forwarded");
    assert_eq!((proxy.refused(), proxy.connections()), (1, 1));

    // Resumed: forwarding again; a half-close reaches the target and its
    // answer (closing too) comes back.
    proxy.pause(false);
    let mut again = connect(&proxy);
    again.write_all(b"again").unwrap();
    let mut five = [0u8; 5];
    again.read_exact(&mut five).unwrap();
    assert_eq!(&five, b"again");
    again.shutdown(Shutdown::Write).unwrap();
    assert!(closed(&mut again));
    assert_eq!(proxy.connections(), 2);
    server.join().unwrap();
    drop(proxy); // joins its threads
}

// ---- a, b: resume after a cut connection ---------------------------------

#[test]
fn a_cut_connection_resumes_a_reliable_flow() {
    const COUNT: u64 = 50_000;
    // The receiver cuts the link once it has this many messages; the second
    // cut holds the link down for a while.
    const CUT_AT: [u64; 3] = [10_000, 25_000, 40_000];
    const HELD_DOWN: usize = 1;
    let dir = TestDir::new("resume");
    let Proxied { mut listener, far, proxy, near } = Proxied::start(&dir, "sink");
    let target = format!("sink@{}", proxy.addr());

    let (go_tx, go_rx) = mpsc::channel();
    let sender = thread::spawn(move || {
        let result = (|| -> Result<(), String> {
            let mut flow = near.alloc_timeout(&target, &reliable_qos(), LONG).map_err(|e| format!("{e}"))?;
            send_numbered(&mut flow, STREAM, COUNT, &CUT_AT.map(|c| c + IN_FLIGHT), &go_rx)?;
            flow.dealloc_timeout(LONG).map_err(|e| format!("sender: dealloc: {e}"))
        })();
        (near, result)
    });

    let mut flow = listener.accept_timeout(LONG).unwrap();
    let received = recv_numbered(&mut flow, STREAM, COUNT, |n| {
        if let Some(k) = CUT_AT.iter().position(|&at| at == n) {
            cut_link(&proxy, k == HELD_DOWN);
            let _ = go_tx.send(());
        }
    });
    expect_all_then_end(received, &mut flow, &proxy, COUNT);
    let (near, sent) = sender.join().expect("sender thread");
    sent.unwrap();
    // Each cut closed every open connection, and messages sent after it
    // still arrived: each needed a new connection.
    assert!(proxy.connections() > CUT_AT.len(), "{} connections for {} cuts", proxy.connections(), CUT_AT.len());
    near.shutdown().unwrap();
    far.shutdown().unwrap();
}

#[test]
fn a_cut_connection_resumes_a_reliable_flow_towards_the_dialling_side() {
    const COUNT: u64 = 20_000;
    const CUT_AT: u64 = 10_000;
    let dir = TestDir::new("resume-back");
    let Proxied { mut listener, far, proxy, near } = Proxied::start(&dir, "source");

    // The far (accepting) side sends: its engine must keep what the near
    // engine has not acknowledged and send it again on the new connection.
    let (go_tx, go_rx) = mpsc::channel();
    let sender = thread::spawn(move || -> Result<(), String> {
        let mut flow = listener.accept_timeout(LONG).map_err(|e| format!("accept: {e}"))?;
        send_numbered(&mut flow, STREAM, COUNT, &[CUT_AT + IN_FLIGHT], &go_rx)?;
        flow.dealloc_timeout(LONG).map_err(|e| format!("sender: dealloc: {e}"))
    });

    let target = format!("source@{}", proxy.addr());
    let mut flow = near.alloc_timeout(&target, &reliable_qos(), LONG).unwrap();
    let received = recv_numbered(&mut flow, STREAM, COUNT, |n| {
        if n == CUT_AT {
            cut_link(&proxy, false);
            let _ = go_tx.send(());
        }
    });
    expect_all_then_end(received, &mut flow, &proxy, COUNT);
    sender.join().expect("sender thread").unwrap();
    assert!(proxy.connections() >= 2, "{} connections: the flow never reconnected", proxy.connections());
    near.shutdown().unwrap();
    far.shutdown().unwrap();
}

#[test]
fn a_flipped_bit_on_a_checked_flow_breaks_the_connection_and_the_flow_resumes_intact() {
    const COUNT: u64 = 20_000;
    const FLIP_AT: u64 = 5_000;
    let dir = TestDir::new("bitflip");
    let Proxied { mut listener, far, proxy, near } = Proxied::start(&dir, "sink");
    let target = format!("sink@{}", proxy.addr());
    let (go_tx, go_rx) = mpsc::channel();
    let sender = thread::spawn(move || {
        let result = (|| -> Result<(), String> {
            let qos = reliable_qos().with_checksum(true);
            let mut flow = near.alloc_timeout(&target, &qos, LONG).map_err(|e| format!("{e}"))?;
            send_numbered(&mut flow, STREAM, COUNT, &[FLIP_AT + IN_FLIGHT], &go_rx)?;
            flow.dealloc_timeout(LONG).map_err(|e| format!("sender: dealloc: {e}"))
        })();
        (near, result)
    });
    let mut flow = listener.accept_timeout(LONG).unwrap();
    // The sender waits at FLIP_AT + IN_FLIGHT: the next chunk upstream is
    // data, and one of its bits flips on the way.
    let received = recv_numbered(&mut flow, STREAM, COUNT, |n| {
        if n == FLIP_AT {
            proxy.flip_next_upstream();
            let _ = go_tx.send(());
        }
    });
    expect_all_then_end(received, &mut flow, &proxy, COUNT);
    let (near, sent) = sender.join().expect("sender thread");
    sent.unwrap();
    assert_eq!(proxy.flipped(), 1);
    assert!(proxy.connections() >= 2, "the corrupt frame must break the connection, not pass");
    near.shutdown().unwrap();
    far.shutdown().unwrap();
}

// ---- c: kill -9 of a remote application ----------------------------------

#[test]
#[ignore]
fn child_far_app_sends_then_sleeps() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    let count: u64 = child_arg("COUNT").parse().unwrap();
    let mut listener =
        Listener::bind_with("src", ListenerOptions::new().remote(true).runtime_dir(dir.join("names"))).unwrap();
    write_marker(&dir, "bound", "");
    accept_and_send_numbered(&mut listener, count);
    write_marker(&dir, "sent", "");
    sleep_forever();
}

/// A child's far application: accepts one flow and sends `count` numbered
/// messages on it.
fn accept_and_send_numbered(listener: &mut Listener, count: u64) {
    let mut flow = listener.accept_timeout(LONG).unwrap();
    let mut msg = Vec::new();
    for seq in 0..count {
        make_message(STREAM, seq, MAX_MSG, &mut msg);
        flow.send_timeout(&msg, LONG).unwrap();
    }
    // The flow stays open (leaked) until the parent kills this process.
    std::mem::forget(flow);
}

#[test]
fn kill_9_of_a_remote_application_is_peer_gone_after_every_message() {
    const COUNT: u64 = 10_000;
    let dir = TestDir::new("app-kill");
    let mut child = spawn_in("child_far_app_sends_then_sleeps", &dir, &[("COUNT", COUNT.to_string())]);
    // The far engine runs here and reaches the child's listener by name.
    let far = RemoteEngine::start(&engine_config(true), Some(dir.names())).unwrap();
    let near = RemoteEngine::start(&engine_config(false), None).unwrap();
    child.await_marker(&dir.path().join("bound"), LONG);
    let target = format!("src@{}", far.listen_addr().unwrap());
    let mut flow = near.alloc_timeout(&target, &reliable_qos(), LONG).unwrap();
    // Received meanwhile: the child's sends may wait for the reader.
    let receiver = thread::spawn(move || -> Result<Result<usize, RecvError>, String> {
        recv_numbered(&mut flow, STREAM, COUNT, |_| {})?;
        Ok(recv_end(&mut flow))
    });
    child.await_marker(&dir.path().join("sent"), LONG);
    child.kill_and_reap();
    match receiver.join().expect("receiver thread") {
        Err(why) => panic!("{why}"),
        Ok(Err(RecvError::PeerGone { received })) => assert_eq!(received, COUNT),
        Ok(other) => panic!("after all {COUNT} messages and the sender's kill -9: {other:?}, expected PeerGone"),
    }
    near.shutdown().unwrap();
    far.shutdown().unwrap();
}

// ---- d: kill -9 of the remote engine -------------------------------------

#[test]
#[ignore]
fn child_far_engine_and_app_send_then_sleep() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    let count: u64 = child_arg("COUNT").parse().unwrap();
    let names = dir.join("names");
    let mut listener = Listener::bind_with("src", ListenerOptions::new().remote(true).runtime_dir(&names)).unwrap();
    let engine = RemoteEngine::start(&engine_config(true), Some(names)).unwrap();
    write_marker(&dir, "port", &engine.listen_addr().unwrap().port().to_string());
    accept_and_send_numbered(&mut listener, count);
    sleep_forever();
}

#[test]
fn kill_9_of_the_remote_engine_is_peer_gone() {
    const COUNT: u64 = 200;
    let dir = TestDir::new("engine-kill");
    let mut child = spawn_in("child_far_engine_and_app_send_then_sleep", &dir, &[("COUNT", COUNT.to_string())]);
    let port_file = dir.path().join("port");
    child.await_marker(&port_file, LONG);
    let port: u16 = std::fs::read_to_string(&port_file).unwrap().trim().parse().unwrap();
    let near = RemoteEngine::start(&engine_config(false), None).unwrap();
    // A short peer timeout: the flow is declared dead soon after the far
    // engine stops answering (reconnects are refused).
    let qos = Qos { peer_timeout: Duration::from_secs(2), ..Qos::data() };
    let mut flow = near.alloc_timeout(&format!("src@127.0.0.1:{port}"), &qos, LONG).unwrap();
    if let Err(why) = recv_numbered(&mut flow, STREAM, COUNT, |_| {}) {
        panic!("{why}");
    }
    child.kill_and_reap();
    // Blocked until the engine gives up on the far engine.
    match recv_end(&mut flow) {
        Err(RecvError::PeerGone { received }) => assert_eq!(received, COUNT),
        other => panic!("after the far engine's kill -9: {other:?}, expected PeerGone"),
    }
    assert!(flow.is_peer_gone());
    // error.rs: `Closed` is a peer that deallocated; a dead one is `PeerGone`.
    match flow.send_timeout(b"anyone there?", LONG) {
        Err(SendError::PeerGone { .. }) => {}
        other => panic!("send after the far engine's death: {other:?}, expected PeerGone"),
    }
    near.shutdown().unwrap();
}

// ---- e: no io_uring ------------------------------------------------------

#[test]
#[ignore]
fn child_without_io_uring() {
    if !is_child() {
        return;
    }
    assert_eq!(
        std::env::var(ringflow_core::uring::probe::TEST_ERRNO_ENV).as_deref(),
        Ok("1"),
        "the child should simulate EPERM from io_uring_setup"
    );
    // An engine that must have io_uring refuses to start, naming the cause
    // and the fix.
    let strict = EngineConfig::builder().listen(Some("127.0.0.1:0")).backend(NetBackend::IoUring).build().unwrap();
    let why = match RemoteEngine::start(&strict, None) {
        Ok(_) => panic!("an engine started on io_uring although it is unavailable"),
        Err(e) => {
            let network =
                matches!(e, ringflow_core::engine::EngineError::Network(ringflow_core::net::NetError::Uring(_)));
            assert!(network, "not the network's own error: {e:?}");
            e.to_string()
        }
    };
    assert!(why.contains("io_uring"), "the error does not name io_uring: {why}");
    assert!(why.contains("EPERM") || why.contains("io_uring_disabled"), "the error does not name the cause: {why}");
    assert!(why.contains("fix"), "the error does not name a fix: {why}");

    // By default the engines fall back to plain sockets, say why, and carry
    // remote flows: here between two of them.
    let remote_dir = PathBuf::from(child_arg("DIR")).join("remote");
    let far = RemoteEngine::start(&engine_config(true), Some(remote_dir.clone())).unwrap();
    let near = RemoteEngine::start(&engine_config(false), None).unwrap();
    for engine in [&far, &near] {
        match engine.backend() {
            Backend::Sockets { why } => assert!(why.contains("EPERM"), "the fallback does not say why: {why}"),
            Backend::IoUring => panic!("io_uring in use although it is unavailable"),
        }
    }
    let mut far_listener =
        Listener::bind_with("svc", ListenerOptions::new().remote(true).runtime_dir(&remote_dir)).unwrap();
    let addr = far.listen_addr().unwrap();
    let echo = thread::spawn(move || {
        let mut flow = far_listener.accept_timeout(LONG).unwrap();
        let got = flow.recv_ref_timeout(LONG).unwrap().to_vec();
        flow.send(&got).unwrap();
        let _ = flow.recv_ref_timeout(LONG).map(|_| ());
    });
    let mut flow = near.alloc_timeout(&format!("svc@{addr}"), &Qos::data(), LONG).unwrap();
    flow.send(b"without io_uring").unwrap();
    assert_eq!(&*flow.recv_ref_timeout(LONG).unwrap(), b"without io_uring");
    drop(flow);
    echo.join().unwrap();
    near.shutdown().unwrap();
    far.shutdown().unwrap();

    // The embedded engine falls back too, so a missing engine is what it is:
    // unreachable (port 9 has no engine).
    match Flow::alloc_timeout("x@127.0.0.1:9", &Qos::data(), LONG) {
        Err(AllocError::EngineUnreachable { .. }) => {}
        other => panic!("expected EngineUnreachable over plain sockets: {other:?}"),
    }

    // Local flows do not need io_uring: a pair ...
    let (mut a, mut b) = Flow::pair(&Qos::data()).unwrap();
    let mut buf = [0u8; 64];
    a.send(b"ping").unwrap();
    let n = b.recv_into_timeout(&mut buf, LONG).unwrap();
    assert_eq!(&buf[..n], b"ping");
    b.send(b"pong").unwrap();
    let n = a.recv_into_timeout(&mut buf, LONG).unwrap();
    assert_eq!(&buf[..n], b"pong");
    drop(a);
    assert!(matches!(b.recv_into_timeout(&mut buf, LONG), Err(RecvError::Closed)));

    // ... and a named flow through a listener.
    let names = PathBuf::from(child_arg("DIR")).join("names");
    let mut listener = Listener::bind_with("local", ListenerOptions::new().remote(true).runtime_dir(&names)).unwrap();
    let client = thread::spawn(move || {
        let opts = ringflow::FlowOptions::new().runtime_dir(names);
        let mut flow = Flow::alloc_with("local", &Qos::data(), Deadline::after(LONG), opts).unwrap();
        flow.send(b"hello").unwrap();
        let mut buf = [0u8; 64];
        let n = flow.recv_into_timeout(&mut buf, LONG).unwrap();
        assert_eq!(&buf[..n], b"welcome");
        flow.dealloc_timeout(LONG).unwrap();
    });
    let mut flow = listener.accept_timeout(LONG).unwrap();
    let n = flow.recv_into_timeout(&mut buf, LONG).unwrap();
    assert_eq!(&buf[..n], b"hello");
    flow.send(b"welcome").unwrap();
    assert!(matches!(flow.recv_into_timeout(&mut buf, LONG), Err(RecvError::Closed)));
    client.join().unwrap();
    // Tells the parent this ran to the end (a child that matched no test
    // would also exit with success).
    write_marker(&PathBuf::from(child_arg("DIR")), "checked", "");
}

#[test]
fn io_uring_unavailable_is_a_clear_error_or_a_fallback_and_local_flows_still_work() {
    let dir = TestDir::new("no-uring");
    // RINGFLOW_TEST_URING_ERRNO=1: io_uring_setup fails as with EPERM.
    let mut child = spawn_in("child_without_io_uring", &dir, &[("URING_ERRNO", "1".into())]);
    child.assert_succeeds(LONG);
    assert!(dir.path().join("checked").exists(), "the child did not run its checks");
}

// ---- f: many flows over one engine pair ----------------------------------

/// One end of a flow in `many_flows_over_one_engine_pair`.
struct End {
    flow: Flow,
    /// The stream this end sends, and the one it must receive.
    sends: u32,
    receives: u32,
}

/// Rounds of `per_round` messages: each end sends its round, then each end
/// receives the peer's. Every message of a round is sent before any end
/// waits for that round, so no end waits for a message not yet sent.
fn exchange(ends: &mut [End], rounds: u64, per_round: u64, max: usize) -> Result<(), String> {
    let mut msg = Vec::with_capacity(max);
    let mut buf = vec![0u8; max];
    let mut expect = Vec::with_capacity(max);
    for round in 0..rounds {
        let seqs = round * per_round..(round + 1) * per_round;
        for end in ends.iter_mut() {
            for seq in seqs.clone() {
                make_message(end.sends, seq, max, &mut msg);
                end.flow.send_timeout(&msg, LONG).map_err(|e| format!("stream {}: send {seq}: {e}", end.sends))?;
            }
        }
        for end in ends.iter_mut() {
            for seq in seqs.clone() {
                let n = end
                    .flow
                    .recv_into_timeout(&mut buf, LONG)
                    .map_err(|e| format!("stream {}: message {seq}: {e} ({e:?})", end.receives))?;
                check_message(end.receives, seq, max, &buf[..n], &mut expect)
                    .map_err(|e| format!("stream {}: {e}", end.receives))?;
            }
        }
    }
    Ok(())
}

/// Accepts `count` flows whose allocators each sent their index first;
/// returns them by index.
fn accept_indexed(mut listener: Listener, count: usize) -> thread::JoinHandle<Result<Vec<Flow>, String>> {
    thread::spawn(move || {
        let mut slots: Vec<Option<Flow>> = (0..count).map(|_| None).collect();
        let mut buf = [0u8; 64];
        for _ in 0..count {
            let mut flow = listener.accept_timeout(LONG).map_err(|e| format!("accept: {e}"))?;
            let n = flow.recv_into_timeout(&mut buf, LONG).map_err(|e| format!("index message: {e}"))?;
            let index = <[u8; 4]>::try_from(&buf[..n]).map(u32::from_le_bytes).map_err(|_| "bad index message")?;
            let slot = slots.get_mut(index as usize).ok_or("index out of range")?;
            if slot.replace(flow).is_some() {
                return Err(format!("index {index} twice"));
            }
        }
        Ok(slots.into_iter().map(|f| f.expect("every index once")).collect())
    })
}

#[test]
fn many_flows_over_one_engine_pair() {
    const FLOWS_EACH_WAY: usize = 32;
    const ROUNDS: u64 = 10;
    const PER_ROUND: u64 = 50; // 500 messages per direction per flow
    const WORKERS: usize = 4;
    const MAX: usize = 64;
    // Small messages: a whole direction (500 × at most 64 bytes) fits in
    // the ring, so a send never waits on a slow reader.
    let qos = Qos::data().with_max_msg(4096);
    let (near_dir, far_dir) = (TestDir::new("many-near"), TestDir::new("many-far"));
    let near_listener =
        Listener::bind_with("n-sink", ListenerOptions::new().remote(true).runtime_dir(near_dir.names())).unwrap();
    let far_listener =
        Listener::bind_with("f-sink", ListenerOptions::new().remote(true).runtime_dir(far_dir.names())).unwrap();
    let near = RemoteEngine::start(&engine_config(true), Some(near_dir.names())).unwrap();
    let far = RemoteEngine::start(&engine_config(true), Some(far_dir.names())).unwrap();
    let accepted_at_far = accept_indexed(far_listener, FLOWS_EACH_WAY);
    let accepted_at_near = accept_indexed(near_listener, FLOWS_EACH_WAY);

    // Flows 0..32 allocated by the near engine's side, 32..64 by the far's.
    let mut allocated = Vec::new();
    let to_far = format!("f-sink@{}", far.listen_addr().unwrap());
    let to_near = format!("n-sink@{}", near.listen_addr().unwrap());
    for (engine, target) in [(&near, &to_far), (&far, &to_near)] {
        for index in 0..FLOWS_EACH_WAY as u32 {
            let mut flow = engine.alloc_timeout(target, &qos, LONG).unwrap();
            flow.send(&index.to_le_bytes()).unwrap();
            allocated.push(flow);
        }
    }
    let mut accepted = accepted_at_far.join().expect("acceptor").unwrap();
    accepted.extend(accepted_at_near.join().expect("acceptor").unwrap());

    // Flow i: its allocating end sends stream 2i, its accepting end 2i+1.
    // The two ends of a flow go to different workers.
    let mut per_worker: Vec<Vec<End>> = (0..WORKERS).map(|_| Vec::new()).collect();
    for (i, (a, b)) in allocated.into_iter().zip(accepted).enumerate() {
        let s = 2 * i as u32;
        per_worker[i % WORKERS].push(End { flow: a, sends: s, receives: s + 1 });
        per_worker[(i + 1) % WORKERS].push(End { flow: b, sends: s + 1, receives: s });
    }
    let workers: Vec<_> = per_worker
        .into_iter()
        .map(|mut ends| thread::spawn(move || exchange(&mut ends, ROUNDS, PER_ROUND, MAX).map(|()| ends)))
        .collect();
    let mut ends = Vec::new();
    for w in workers {
        ends.extend(w.join().expect("worker thread").unwrap());
    }
    // Nothing arrived beyond the numbered messages.
    let mut buf = [0u8; MAX];
    for end in &mut ends {
        match end.flow.try_recv_into(&mut buf) {
            Err(RecvError::WouldBlock) => {}
            other => panic!("stream {}: after all messages: {other:?}", end.receives),
        }
    }
    drop(ends);
    near.shutdown().unwrap();
    far.shutdown().unwrap();
}
