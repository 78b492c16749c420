//! Calls between hosts under faults: two engines on loopback (real TCP), a
//! test proxy on the link between them. A cut link resumes a call exactly
//! once (the server executes every request once, the client gets every
//! reply once), whether the cut comes while the server holds a request or
//! at random moments; the server application killed with kill -9 behind its
//! engine is reported in the phase the call was in (Over: nothing of the
//! reply came; Recv: what came is reported). Children are this test binary
//! re-run (see common/mod.rs). Nothing here asserts a duration; engines
//! park when idle.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use common::proxy::Proxy;
use common::{await_file, child_arg, is_child, spawn_flow_child};
use ringflow::config::{EngineConfig, IdleStrategy, ThreadingMode};
use ringflow::remote::RemoteEngine;
use ringflow::{CallError, Flow, Listener, ListenerOptions, Qos};
use ringflow_testkit::TempDir;

const LONG: Duration = Duration::from_secs(30);

fn test_dir(tag: &str) -> TempDir {
    // Engines keep their statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    ringflow_testkit::temp_dir(&format!("rcp-{tag}"))
}

/// An engine on its own thread that parks when idle, listening on a port
/// of the kernel's choice when `listen`.
fn engine(listen: bool, names: Option<PathBuf>) -> RemoteEngine {
    let builder = EngineConfig::builder().mode(ThreadingMode::Dedicated).idle(IdleStrategy::Backoff {
        spins: 0,
        yields: 0,
        park: Duration::from_millis(1),
    });
    let builder = if listen { builder.listen(Some("127.0.0.1:0")) } else { builder };
    RemoteEngine::start(&builder.build().unwrap(), names).unwrap()
}

/// Reliable, with a peer timeout far above any time a link is held down.
fn qos() -> Qos {
    Qos { peer_timeout: Duration::from_secs(20), ..Qos::data() }
}

fn reply_for(id: u64) -> Vec<u8> {
    (0..200u64).map(|i| (id.wrapping_mul(31) + i) as u8).collect()
}

/// Serves numbered requests until the client leaves: each must be the next
/// number (a request executed twice or skipped fails the test); before
/// replying to one that `cut_before` names, asks for a cut on `cut` and
/// waits for it. Returns how many it served.
fn serve_numbered(flow: &mut Flow, cut_before: &[u64], cut: &mpsc::Sender<mpsc::Sender<()>>) -> u64 {
    let mut buf = [0u8; 64];
    let mut expect = 0u64;
    let mut next = flow.receive_request_timeout(&mut buf, LONG);
    loop {
        let n = match next {
            Ok(n) => n,
            Err(CallError::OverDisconnected) => return expect,
            Err(e) => panic!("server: {e}"),
        };
        let id = u64::from_le_bytes(buf[..n].try_into().expect("an 8-byte request"));
        assert_eq!(id, expect, "server: request {id} where {expect} was due (run twice or lost)");
        expect += 1;
        if cut_before.contains(&id) {
            let (done_tx, done_rx) = mpsc::channel();
            cut.send(done_tx).unwrap();
            done_rx.recv_timeout(LONG).unwrap();
        }
        next = flow.reply_and_receive_timeout(&reply_for(id), &mut buf, LONG);
    }
}

/// A client leaves while its link is breaking: its engine's `Close` is lost
/// with the link, and the engine forgets the finished flow. After the
/// reconnect the server's engine asks to resume the flow; the client's
/// engine answers with the `Close` again (not "unknown flow"), so the server
/// learns the client left instead of waiting for a request for ever.
#[test]
fn a_close_lost_in_a_cut_link_reaches_the_server_after_the_resume() {
    let tmp = test_dir("lost-close");
    let names = tmp.path().join("names");
    let mut listener = Listener::bind_with("svc", ListenerOptions::new().remote(true).runtime_dir(&names)).unwrap();
    let far = engine(true, Some(names));
    let proxy = Proxy::start(far.listen_addr().unwrap());
    let near = engine(false, None);
    let (served_tx, served_rx) = mpsc::channel();
    let server = thread::spawn(move || {
        let mut flow = listener.accept_timeout(LONG).unwrap();
        let mut buf = [0u8; 64];
        let n = flow.receive_request_timeout(&mut buf, LONG).unwrap();
        let request = buf[..n].to_vec();
        let r = flow.reply_and_receive_timeout(&request, &mut buf, Duration::from_secs(10));
        served_tx.send(()).unwrap();
        r
    });
    let mut flow = near.alloc_timeout(&format!("svc@{}", proxy.addr()), &qos(), LONG).unwrap();
    let mut reply = [0u8; 64];
    assert_eq!(flow.call_timeout(b"hello", &mut reply, LONG).unwrap(), 5);
    // From now on nothing the client's engine sends arrives: the Close of
    // the dealloc below is lost, and the engine finishes the flow.
    proxy.swallow_upstream(true);
    flow.dealloc_timeout(LONG).unwrap();
    thread::sleep(Duration::from_millis(300));
    proxy.swallow_upstream(false);
    assert!(proxy.cut() > 0, "the link was up");
    // No duration asserted: the server's own timeout only ends a hang.
    let r = server.join().unwrap();
    assert!(matches!(r, Err(CallError::OverDisconnected)), "the server's wait for the next request: {r:?}");
    served_rx.recv().unwrap();
    near.shutdown().unwrap();
    far.shutdown().unwrap();
}

#[test]
fn a_cut_link_resumes_calls_exactly_once() {
    const CALLS: u64 = 3_000;
    // Cut while the server holds these requests (the replies cross a new
    // connection); besides, a thread cuts at random moments.
    const CUT_BEFORE: [u64; 3] = [100, 1_000, 2_000];
    let tmp = test_dir("cut");
    let names = tmp.path().join("names");
    let mut listener = Listener::bind_with("svc", ListenerOptions::new().remote(true).runtime_dir(&names)).unwrap();
    let far = engine(true, Some(names));
    let proxy = Arc::new(Proxy::start(far.listen_addr().unwrap()));
    let near = engine(false, None);
    let (cut_tx, cut_rx) = mpsc::channel::<mpsc::Sender<()>>();
    let server = thread::spawn(move || {
        let mut flow = listener.accept_timeout(LONG).unwrap();
        serve_numbered(&mut flow, &CUT_BEFORE, &cut_tx)
    });
    let done = Arc::new(AtomicBool::new(false));
    let random_cuts = Arc::new(AtomicU64::new(0));
    let cutter = {
        let (proxy, done, random_cuts) = (Arc::clone(&proxy), Arc::clone(&done), Arc::clone(&random_cuts));
        thread::spawn(move || {
            let mut x = u64::from(std::process::id()) | 1;
            // SYNC: Relaxed; a stop flag, no data published with it.
            while !done.load(Ordering::Relaxed) {
                // The server's asks come first; between them, random cuts.
                match cut_rx.recv_timeout(Duration::from_millis(1 + x % 15)) {
                    Ok(reply) => {
                        proxy.cut();
                        let _ = reply.send(());
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if x % 4 == 0 && proxy.cut() > 0 {
                            // SYNC: Relaxed; a counter read after the join.
                            random_cuts.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        })
    };
    let mut flow = near.alloc_timeout(&format!("svc@{}", proxy.addr()), &qos(), LONG).unwrap();
    let mut reply = [0u8; 256];
    for id in 0..CALLS {
        let n = flow.call_timeout(&id.to_le_bytes(), &mut reply, LONG).unwrap_or_else(|e| panic!("call {id}: {e}"));
        assert_eq!(&reply[..n], &reply_for(id)[..], "the reply to call {id}, once");
    }
    flow.dealloc_timeout(LONG).unwrap();
    // SYNC: Relaxed; the cutter only needs to stop eventually.
    done.store(true, Ordering::Relaxed);
    assert_eq!(server.join().unwrap(), CALLS, "every request executed once");
    cutter.join().unwrap();
    assert!(proxy.cuts() >= CUT_BEFORE.len(), "{} cuts", proxy.cuts());
    eprintln!("cuts: {} asked by the server, {} at random", CUT_BEFORE.len(), random_cuts.load(Ordering::Relaxed));
    near.shutdown().unwrap();
    far.shutdown().unwrap();
}

// ---- kill -9 of the remote server application ------------------------------

#[test]
#[ignore]
fn child_remote_server() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    let mut listener =
        Listener::bind_with("srv", ListenerOptions::new().remote(true).runtime_dir(dir.join("names"))).unwrap();
    std::fs::write(dir.join("bound"), b"").unwrap();
    let mut flow = listener.accept_timeout(LONG).unwrap();
    let mut buf = [0u8; 64];
    flow.receive_request_timeout(&mut buf, LONG).unwrap();
    if child_arg("MODE") == "pieces" {
        flow.send_part_timeout(b"first", LONG).unwrap();
        flow.send_part_timeout(b"second", LONG).unwrap();
    }
    std::fs::write(dir.join("got"), b"").unwrap();
    // Leaked: the flow stays open until this process is killed.
    std::mem::forget(flow);
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// Calls a server child (running `mode`) behind a far engine of this
/// process, kills it once it has taken the request (and sent what `mode`
/// sends), and returns the call's outcome and the reply buffer.
fn call_a_server_killed(tmp: &Path, mode: &str) -> (Result<usize, CallError>, [u8; 64]) {
    let child =
        spawn_flow_child("child_remote_server", &[("DIR", tmp.display().to_string()), ("MODE", mode.to_string())]);
    let far = engine(true, Some(tmp.join("names")));
    let near = engine(false, None);
    await_file(&tmp.join("bound"));
    let mut flow = near.alloc_timeout(&format!("srv@{}", far.listen_addr().unwrap()), &qos(), LONG).unwrap();
    let got = tmp.join("got");
    let killer = thread::spawn(move || {
        await_file(&got);
        drop(child);
    });
    let mut reply = [0u8; 64];
    let r = flow.call_timeout(b"request", &mut reply, LONG);
    killer.join().unwrap();
    drop(flow);
    near.shutdown().unwrap();
    far.shutdown().unwrap();
    (r, reply)
}

#[test]
fn a_remote_server_killed_after_taking_the_request_is_over_disconnected() {
    let tmp = test_dir("over");
    match call_a_server_killed(tmp.path(), "silent") {
        (Err(CallError::OverDisconnected), _) => {}
        (other, _) => panic!("{other:?}"),
    }
}

#[test]
fn a_remote_server_killed_during_its_reply_is_recv_disconnected_with_what_came() {
    let tmp = test_dir("recv");
    match call_a_server_killed(tmp.path(), "pieces") {
        (Err(CallError::RecvDisconnected { received: 11 }), reply) => assert_eq!(&reply[..11], b"firstsecond"),
        (other, _) => panic!("{other:?}"),
    }
}
