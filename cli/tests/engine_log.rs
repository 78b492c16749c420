//! `ringflow engine`'s log: with `-v` or `RINGFLOW_LOG` it says, one line
//! per event with its fields, when a link to another engine comes up, when
//! an application opens a flow through it, and when a remote flow opens or
//! is refused (with the flow's name and the reason); without either it
//! prints no such line.

use std::path::Path;
use std::thread;

use ringflow::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos};

mod support;

use support::{EngineSpec, LONG};

fn dir(tag: &str) -> ringflow_testkit::TempDir {
    ringflow_testkit::temp_dir(&format!("log-{tag}"))
}

/// One echo through the near engine to `svc@far`.
fn echo_once(near_dir: &Path, far_dir: &Path, far_addr: &str) {
    let mut listener =
        Listener::bind_with("svc", ListenerOptions::new().remote(true).runtime_dir(far_dir)).expect("bind svc");
    let server = thread::spawn(move || {
        let mut flow = listener.accept_timeout(LONG).expect("accept");
        let got = flow.recv_ref_timeout(LONG).expect("request").to_vec();
        flow.send(&got).expect("echo");
        let _ = flow.recv_ref_timeout(LONG); // until the client leaves
    });
    let opts = FlowOptions::new().runtime_dir(near_dir);
    let mut flow =
        Flow::alloc_with(&format!("svc@{far_addr}"), &Qos::data(), Deadline::after(LONG), opts).expect("alloc svc");
    flow.send(b"hello").expect("send");
    assert_eq!(&*flow.recv_ref_timeout(LONG).expect("echo"), b"hello");
    flow.dealloc_timeout(LONG).expect("dealloc");
    server.join().expect("server");
}

#[test]
fn a_verbose_engine_logs_links_and_flows_with_their_fields() {
    let (near_dir, far_dir) = (dir("near"), dir("far"));
    let far = EngineSpec::new(far_dir.path(), "127.0.0.1:0").env("RINGFLOW_LOG", "info").start();
    let near = EngineSpec::new(near_dir.path(), "none").arg("-v").start();
    echo_once(near_dir.path(), far_dir.path(), &far.addr);

    let attached = near.await_line("opens a flow through this host's engine");
    assert!(attached.contains("INFO") && attached.contains(&format!("to=svc@{}", far.addr)), "{attached}");
    let opened = near.await_line("remote flow opened");
    assert!(opened.contains("flow=svc") && opened.contains("flow_id="), "{opened}");
    let up = far.await_line("link up");
    assert!(up.contains("peer=Some(127.0.0.1:") && up.contains("peer_engine="), "{up}");
    far.await_line("flow from a remote engine accepted");

    // A name nobody binds over there: refused, with the reason.
    let r = Flow::alloc_with(
        &format!("nobody@{}", far.addr),
        &Qos::data(),
        Deadline::after(LONG),
        FlowOptions::new().runtime_dir(near_dir.path()),
    );
    assert!(matches!(r, Err(ringflow::AllocError::NotFound { .. })), "{r:?}");
    let refused = near.await_line("remote flow refused");
    assert!(refused.contains("flow=nobody") && refused.contains("reason="), "{refused}");
}

#[test]
fn a_quiet_engine_prints_no_info_and_a_bad_filter_is_refused() {
    let (near_dir, far_dir) = (dir("qnear"), dir("qfar"));
    let far = EngineSpec::new(far_dir.path(), "127.0.0.1:0").start();
    let near = EngineSpec::new(near_dir.path(), "none").arg("-v").start();
    echo_once(near_dir.path(), far_dir.path(), &far.addr);
    // The loud one logged the flow; by then the quiet one had its link up.
    near.await_line("remote flow opened");
    let said = far.said();
    assert!(said.iter().all(|l| !l.contains("INFO")), "the quiet engine said {said:?}");

    let (status, stderr) =
        EngineSpec::new(near_dir.path(), "none").env("RINGFLOW_LOG", "ringflow_core=loud").run_to_end();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("RINGFLOW_LOG") && stderr.contains("not a log filter"), "{stderr}");
}
