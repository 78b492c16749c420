//! `ringflow engine` standalone: two engine processes (a near one serving
//! this host's applications, a far one accepting remote flows), and this
//! test process as both applications — with no engine of its own. A clean
//! stop (SIGINT) flushes and exits 0; a second SIGINT exits at once.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ringflow::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos, RecvError};

const LONG: Duration = Duration::from_secs(30);

/// A private (0700) directory, removed on drop.
fn dir(tag: &str) -> ringflow_testkit::TempDir {
    ringflow_testkit::temp_dir(&format!("host-{tag}"))
}

/// A `ringflow engine` child, killed if the test fails.
struct EngineProc {
    child: Child,
    /// Where remote engines reach it (from its first line on stderr).
    addr: String,
    /// Its later lines on stderr.
    stderr: mpsc::Receiver<String>,
}

impl EngineProc {
    fn start(runtime_dir: &Path, listen: bool) -> EngineProc {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringflow"));
        // A stop that cannot flush waits this long: far beyond any test, so
        // the second Ctrl-C, not the flush's end, is what ends it.
        cmd.arg("engine").arg("--flush-ms").arg("120000");
        for (k, _) in std::env::vars() {
            if k.starts_with("RINGFLOW_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RINGFLOW_RUNTIME_DIR", runtime_dir);
        cmd.env("RINGFLOW_NET_LISTEN", if listen { "127.0.0.1:0" } else { "none" });
        let mut child = cmd.stderr(Stdio::piped()).spawn().expect("spawn ringflow engine");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut proc = EngineProc { child, addr: String::new(), stderr: rx };
        // Where io_uring is refused, a line saying so (and that plain
        // sockets stand in) comes first.
        let serving = proc.await_line("serving this host");
        let after = serving.split("reach it at ").nth(1).unwrap_or("");
        proc.addr = after.split_whitespace().next().unwrap_or("").trim_end_matches('.').to_owned();
        proc
    }

    /// Waits for a line on stderr that contains `needle`, and returns it.
    fn await_line(&self, needle: &str) -> String {
        loop {
            let line = self.stderr.recv_timeout(LONG).unwrap_or_else(|e| panic!("no line with {needle:?}: {e}"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    fn wait(mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }
}

impl Drop for EngineProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let far = EngineProc::start(far_dir.path(), true);
    let near = EngineProc::start(near_dir.path(), false);
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
    let far = EngineProc::start(far_dir.path(), true);
    let mut near = EngineProc::start(near_dir.path(), false);
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
