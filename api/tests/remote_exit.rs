//! A process that deallocates its flow to another host and exits at once
//! (`std::process::exit`, its embedded engine never dropped) still ends the
//! flow cleanly: the remote application reads every message and then the
//! typed end of flow (`RecvError::Closed`), never its peer's death. The
//! flow's `dealloc` returns only once the engine has handed the flow's end
//! to the kernel (the close handshake, `flow::end::close` in core).
//!
//! The child widens the race on purpose: by the time it calls `dealloc`,
//! the remote application has consumed everything and said so, so the
//! linger itself has nothing to wait for. Each mode runs many rounds.

use std::time::Duration;

use ringflow_testkit::{ChildCommand, TempDir};

use ringflow_api::config::{EngineConfig, ThreadingMode};
use ringflow_api::remote::RemoteEngine;
use ringflow_api::{Flow, Listener, ListenerOptions, Qos, RecvError};

mod support;

/// The child's target (`name@host:port`); set only in the child (not a
/// `RINGFLOW_` variable: the engine's configuration refuses unknown ones).
const TARGET_ENV: &str = "RF_TEST_REMOTE_EXIT_TARGET";
/// Messages the child sends before it deallocates.
const MESSAGES: u32 = 50;
/// Children per engine mode.
const ROUNDS: usize = 12;
const LONG: Duration = Duration::from_secs(30);

/// The child: sends, waits until the remote application has read it all,
/// deallocates and exits at once, its engine still running.
#[test]
#[ignore = "a child process of another test"]
fn child_sends_deallocs_and_exits() {
    let Ok(target) = std::env::var(TARGET_ENV) else { return };
    // A short peer timeout: were the flow's end lost, the remote side would
    // say its peer died soon after this process is gone.
    let qos = Qos { peer_timeout: Duration::from_millis(500), ..Qos::data() };
    let mut flow = Flow::alloc_timeout(&target, &qos, LONG).expect("alloc");
    for i in 0..MESSAGES {
        flow.send(&i.to_le_bytes()).expect("send");
    }
    let mut buf = [0u8; 16];
    let n = flow.recv_into_timeout(&mut buf, LONG).expect("the remote application's word");
    assert_eq!(&buf[..n], b"read");
    // Give the last acknowledgement time to arrive: the linger then has
    // nothing left to wait for, the race at its widest.
    std::thread::sleep(Duration::from_millis(5));
    if let Err(e) = flow.dealloc_timeout(LONG) {
        eprintln!("child: dealloc: {e}");
        std::process::exit(2);
    }
    std::process::exit(0);
}

/// Runs [`ROUNDS`] children whose embedded engines run in `mode` against a
/// far engine here; each child's flow must end with `Closed`.
fn children_exit_right_after_dealloc(mode: ThreadingMode, tmp: &TempDir) {
    let dir = tmp.path().to_path_buf();
    let mut listener = Listener::bind_with("exiting", ListenerOptions::new().remote(true).runtime_dir(&dir)).unwrap();
    let far_cfg = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().unwrap();
    let far = RemoteEngine::start(&far_cfg, Some(dir.clone())).unwrap();
    let target = format!("exiting@{}", far.listen_addr().unwrap());
    let mode_name = match mode {
        ThreadingMode::Invoker => "invoker",
        _ => "dedicated",
    };
    for round in 0..ROUNDS {
        let mut child = ChildCommand::reexec("child_sends_deallocs_and_exits")
            .env(TARGET_ENV, &target)
            .env("RINGFLOW_ENGINE_MODE", mode_name)
            .spawn();
        let mut flow = listener.accept_timeout(LONG).unwrap();
        let mut buf = [0u8; 16];
        for i in 0..MESSAGES {
            let n = flow.recv_into_timeout(&mut buf, LONG).unwrap();
            assert_eq!(&buf[..n], &i.to_le_bytes(), "{mode_name} round {round}: message {i}");
        }
        flow.send(b"read").unwrap();
        match flow.recv_into_timeout(&mut buf, LONG) {
            Err(RecvError::Closed) => {}
            other => panic!("{mode_name} round {round}: after every message the flow ended with {other:?}, not Closed"),
        }
        child.assert_succeeds(LONG);
    }
    far.shutdown().unwrap();
}

#[test]
fn a_dedicated_engines_process_exiting_right_after_dealloc_ends_the_flow_cleanly() {
    let tmp = support::test_dir("exit-dedicated");
    children_exit_right_after_dealloc(ThreadingMode::Dedicated, &tmp);
}

#[test]
fn an_invoker_engines_process_exiting_right_after_dealloc_ends_the_flow_cleanly() {
    let tmp = support::test_dir("exit-invoker");
    children_exit_right_after_dealloc(ThreadingMode::Invoker, &tmp);
}

/// The accepting child's directory (its listener's name, and the file it
/// writes its engine's address to); set only in that child.
const DIR_ENV: &str = "RF_TEST_REMOTE_EXIT_DIR";
/// The engine mode of the accepting child ("invoker" or "dedicated").
const MODE_ENV: &str = "RF_TEST_REMOTE_EXIT_MODE";

/// The other side: a listener behind this child's own engine accepts a
/// flow from another host, sends, waits until the remote application has
/// read it all, deallocates and exits at once, its engine still running.
#[test]
#[ignore = "a child process of another test"]
fn child_accepts_sends_deallocs_and_exits() {
    let Some(dir) = std::env::var_os(DIR_ENV).map(std::path::PathBuf::from) else { return };
    let invoker = std::env::var(MODE_ENV).is_ok_and(|m| m == "invoker");
    let mode = if invoker { ThreadingMode::Invoker } else { ThreadingMode::Dedicated };
    let cfg = EngineConfig::builder().mode(mode).listen(Some("127.0.0.1:0")).build().unwrap();
    let engine = RemoteEngine::start(&cfg, Some(dir.clone())).expect("engine");
    let opts = ListenerOptions::new().remote(true).runtime_dir(&dir);
    let opts = if invoker { opts.engine(&engine) } else { opts };
    let mut listener = Listener::bind_with("accepting", opts).expect("bind");
    let addr = engine.listen_addr().expect("listening").to_string();
    std::fs::write(dir.join("addr.tmp"), addr).expect("address file");
    std::fs::rename(dir.join("addr.tmp"), dir.join("addr")).expect("address file");
    let mut flow = listener.accept_timeout(LONG).expect("accept");
    for i in 0..MESSAGES {
        flow.send(&i.to_le_bytes()).expect("send");
    }
    let mut buf = [0u8; 16];
    let n = flow.recv_into_timeout(&mut buf, LONG).expect("the remote application's word");
    assert_eq!(&buf[..n], b"read");
    std::thread::sleep(Duration::from_millis(5));
    if let Err(e) = flow.dealloc_timeout(LONG) {
        eprintln!("child: dealloc: {e}");
        std::process::exit(2);
    }
    std::process::exit(0);
}

/// Runs [`ROUNDS`] accepting children with engines in `mode`; the flow each
/// accepted must end with `Closed` here.
fn acceptors_exit_right_after_dealloc(mode: &str, tmp: &TempDir) {
    let near = RemoteEngine::start(&EngineConfig::default(), None).unwrap();
    for round in 0..ROUNDS {
        let dir = tmp.path().join(format!("round-{round}"));
        std::fs::create_dir(&dir).unwrap();
        // A runtime directory must be the user's alone.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let mut child = ChildCommand::reexec("child_accepts_sends_deallocs_and_exits")
            .env(DIR_ENV, &dir)
            .env(MODE_ENV, mode)
            .spawn();
        child.await_marker(&dir.join("addr"), LONG);
        let addr = std::fs::read_to_string(dir.join("addr")).unwrap();
        let mut flow = near.alloc_timeout(&format!("accepting@{addr}"), &Qos::data(), LONG).unwrap();
        let mut buf = [0u8; 16];
        for i in 0..MESSAGES {
            let n = flow.recv_into_timeout(&mut buf, LONG).unwrap();
            assert_eq!(&buf[..n], &i.to_le_bytes(), "{mode} round {round}: message {i}");
        }
        flow.send(b"read").unwrap();
        match flow.recv_into_timeout(&mut buf, LONG) {
            Err(RecvError::Closed) => {}
            other => panic!("{mode} round {round}: after every message the flow ended with {other:?}, not Closed"),
        }
        child.assert_succeeds(LONG);
    }
    near.shutdown().unwrap();
}

#[test]
fn an_accepting_process_exiting_right_after_dealloc_ends_the_flow_cleanly() {
    let tmp = support::test_dir("exit-acceptor");
    acceptors_exit_right_after_dealloc("dedicated", &tmp);
}

#[test]
fn an_accepting_invoker_process_exiting_right_after_dealloc_ends_the_flow_cleanly() {
    let tmp = support::test_dir("exit-acceptor-invoker");
    acceptors_exit_right_after_dealloc("invoker", &tmp);
}

/// The engine's own shutdown right after its application dropped a flow
/// (no linger at all) still sends the flow's end first: the remote
/// application reads every message, then `Closed`. Many rounds, each with
/// an engine of its own.
#[test]
fn an_engine_shut_down_right_after_its_flow_was_dropped_ends_the_flow_cleanly() {
    let tmp = support::test_dir("exit-shutdown");
    let dir = tmp.path().to_path_buf();
    let mut listener = Listener::bind_with("dropped", ListenerOptions::new().remote(true).runtime_dir(&dir)).unwrap();
    let far_cfg = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().unwrap();
    let far = RemoteEngine::start(&far_cfg, Some(dir.clone())).unwrap();
    let target = format!("dropped@{}", far.listen_addr().unwrap());
    let qos = Qos { peer_timeout: Duration::from_millis(500), ..Qos::data() };
    for round in 0..ROUNDS {
        let near = RemoteEngine::start(&EngineConfig::default(), None).unwrap();
        // The far engine's open waits for this accept: it runs beside the alloc.
        let (mut flow, mut remote) = std::thread::scope(|s| {
            let accepting = s.spawn(|| listener.accept_timeout(LONG).unwrap());
            let flow = near.alloc_timeout(&target, &qos, LONG).unwrap();
            (flow, accepting.join().unwrap())
        });
        for i in 0..MESSAGES {
            flow.send(&i.to_le_bytes()).unwrap();
        }
        let mut buf = [0u8; 16];
        for i in 0..MESSAGES {
            let n = remote.recv_into_timeout(&mut buf, LONG).unwrap();
            assert_eq!(&buf[..n], &i.to_le_bytes(), "round {round}: message {i}");
        }
        drop(flow);
        near.shutdown().unwrap();
        match remote.recv_into_timeout(&mut buf, LONG) {
            Err(RecvError::Closed) => {}
            other => panic!("round {round}: after every message the flow ended with {other:?}, not Closed"),
        }
    }
    far.shutdown().unwrap();
}
