//! `ringflow engine` standalone: two engine processes (a near one serving
//! this host's applications, a far one accepting remote flows), and this
//! test process as both applications — with no engine of its own. A clean
//! stop (SIGINT) flushes and exits 0; a second SIGINT exits at once.

use std::path::Path;
use std::sync::mpsc;
use std::thread;

use ringflow::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos, RecvError};

mod support;

use support::{EngineProc, EngineSpec, LONG};

/// A private (0700) directory, removed on drop.
fn dir(tag: &str) -> ringflow_testkit::TempDir {
    ringflow_testkit::temp_dir(&format!("host-{tag}"))
}

/// A `ringflow engine` child whose clean stop waits far beyond any test to
/// flush, so the second Ctrl-C, not the flush's end, is what ends it.
fn engine(runtime_dir: &Path, listen: bool) -> EngineProc {
    EngineSpec::new(runtime_dir, if listen { "127.0.0.1:0" } else { "none" }).flush_ms(120_000).start()
}

/// Engine threads of this process (there must be none).
fn engine_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("ringflow-engin") || name.starts_with("ringflow-bridg"))
        .count()
}

#[test]
fn applications_attach_to_the_host_engine_and_a_clean_stop_flushes() {
    let (near_dir, far_dir) = (dir("near"), dir("far"));
    let far = engine(far_dir.path(), true);
    let near = engine(near_dir.path(), false);
    assert!(far.addr.starts_with("127.0.0.1:"), "far engine address: {:?}", far.addr);

    let mut listener =
        Listener::bind_with("svc", ListenerOptions::new().remote(true).runtime_dir(far_dir.path())).unwrap();
    let server = thread::spawn(move || {
        let mut flow = listener.accept_timeout(LONG).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0u32;
        loop {
            match flow.recv_into_timeout(&mut buf, LONG) {
                Ok(len) => {
                    flow.send(&buf[..len]).unwrap();
                    n += 1;
                }
                Err(RecvError::Closed) => return n,
                Err(e) => panic!("server: {e}"),
            }
        }
    });
    let opts = FlowOptions::new().runtime_dir(near_dir.path());
    let target = format!("svc@{}", far.addr);
    let mut flow = Flow::alloc_with(&target, &Qos::data(), Deadline::after(LONG), opts).unwrap();
    for i in 0..300u32 {
        let msg = vec![i as u8; 1 + (i as usize * 37) % 5000];
        flow.send(&msg).unwrap();
        assert_eq!(&*flow.recv_ref_timeout(LONG).unwrap(), &msg[..], "round trip {i}");
    }
    assert_eq!(engine_threads(), 0, "the application attached; it started no engine of its own");
    // A name nobody binds over there is still NotFound, through the host engine.
    let r = Flow::alloc_with(
        &format!("nobody@{}", far.addr),
        &Qos::data(),
        Deadline::after(LONG),
        FlowOptions::new().runtime_dir(near_dir.path()),
    );
    assert!(matches!(r, Err(ringflow::AllocError::NotFound { .. })), "{r:?}");

    flow.dealloc_timeout(LONG).unwrap();
    assert_eq!(server.join().unwrap(), 300);
    // A clean stop: both engines flush (nothing is in flight) and exit 0.
    near.signal(libc::SIGINT);
    far.signal(libc::SIGTERM);
    assert!(near.wait().success());
    assert!(far.wait().success());
}

#[test]
fn a_stop_waits_for_unacknowledged_data_and_a_second_ctrl_c_exits_at_once() {
    let (near_dir, far_dir) = (dir("near2"), dir("far2"));
    let far = engine(far_dir.path(), true);
    let mut near = engine(near_dir.path(), false);
    let mut listener =
        Listener::bind_with("deaf", ListenerOptions::new().remote(true).runtime_dir(far_dir.path())).unwrap();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        // Accepts, never reads: nothing sent to it is ever acknowledged.
        let _flow = listener.accept_timeout(LONG).unwrap();
        let _ = done_rx.recv_timeout(LONG);
    });
    let opts = FlowOptions::new().runtime_dir(near_dir.path());
    let mut flow = Flow::alloc_with(&format!("deaf@{}", far.addr), &Qos::data(), Deadline::after(LONG), opts).unwrap();
    for i in 0..50u32 {
        flow.send(&i.to_le_bytes()).unwrap();
    }
    // The clean stop cannot finish (the data is never consumed) ...
    near.signal(libc::SIGINT);
    near.await_line("stopping");
    assert!(near.child.try_wait().unwrap().is_none(), "the stop did not wait for the unacknowledged data");
    // ... and a second Ctrl-C ends it at once.
    near.signal(libc::SIGINT);
    assert_eq!(near.wait().code(), Some(130));
    let _ = done_tx.send(());
    server.join().unwrap();
}
