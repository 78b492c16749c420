//! Names resolved through `net.peers`: a named entry sends the flow where
//! it says; unnamed entries are asked in order, past an unreachable one and
//! one that lacks the name; a name nobody has is `NotFound`, or
//! `EngineUnreachable` when an engine could not be asked.

use std::time::Duration;

use ringflow_testkit::TempDir;

use crate::config::Peer;

use super::peers::resolve;
use super::RemoteEngine;
use crate::config::EngineConfig;
use crate::flow::end::FlowOptions;
use crate::flow::error::AllocError;
use crate::flow::listener::{FlowListener, ListenerOptions};
use crate::flow::Qos;
use crate::Deadline;

/// An engine listening on loopback for the listeners bound in its own
/// runtime directory, and that directory (removed when dropped).
fn far_engine() -> (RemoteEngine, TempDir) {
    // Engine threads keep their statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let d = ringflow_testkit::temp_dir("peers");
    let cfg = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().expect("config");
    (RemoteEngine::start(&cfg, Some(d.path().to_path_buf())).expect("engine"), d)
}

/// Accepts one flow on `name` in `dir` and echoes one message.
fn echo_once(name: &str, dir: &std::path::Path) -> std::thread::JoinHandle<()> {
    let mut listener =
        FlowListener::bind_with(name, ListenerOptions::new().remote(true).runtime_dir(dir)).expect("bind");
    std::thread::spawn(move || {
        let mut flow = listener.accept(Deadline::after(Duration::from_secs(30))).expect("accept");
        let mut buf = [0u8; 64];
        let n = flow.recv_into_timeout(&mut buf, Duration::from_secs(30)).expect("recv");
        flow.send(&buf[..n]).expect("echo");
        let _ = flow.recv_into_timeout(&mut buf, Duration::from_secs(30));
    })
}

fn peer(text: &str) -> Peer {
    Peer::parse(text).expect("peer")
}

fn soon() -> Deadline {
    Deadline::after(Duration::from_secs(30))
}

#[test]
fn named_and_unnamed_peers_resolve_plain_names() {
    let (a, a_dir) = far_engine();
    let (b, b_dir) = far_engine();
    let (a_addr, b_addr) = (a.listen_addr().expect("a listens"), b.listen_addr().expect("b listens"));
    // Nothing listens on port 1 of loopback: that engine is unreachable.
    let peers =
        [peer(&format!("orders@{a_addr}")), peer("127.0.0.1:1"), peer(&a_addr.to_string()), peer(&b_addr.to_string())];

    let orders = echo_once("peers-orders", a_dir.path());
    let stock = echo_once("peers-stock", b_dir.path());
    let named = [peer(&format!("peers-orders@{a_addr}"))];
    for (name, list, server) in [("peers-orders", &named[..], orders), ("peers-stock", &peers[..], stock)] {
        let mut flow = resolve(name, list, &Qos::data(), soon(), FlowOptions::new()).expect(name);
        flow.send(name.as_bytes()).expect("send");
        let back = flow.recv_ref_timeout(Duration::from_secs(30)).expect("echo");
        assert_eq!(&*back, name.as_bytes());
        drop(back);
        drop(flow);
        server.join().expect("server");
    }

    let reachable = [peer(&a_addr.to_string()), peer(&b_addr.to_string())];
    let r = resolve("peers-nowhere", &reachable, &Qos::data(), soon(), FlowOptions::new());
    assert!(matches!(r, Err(AllocError::NotFound { ref name, .. }) if name == "peers-nowhere"), "{r:?}");
    let r = resolve("peers-nowhere", &peers, &Qos::data(), soon(), FlowOptions::new());
    assert!(matches!(r, Err(AllocError::EngineUnreachable { .. })), "not everyone could be asked: {r:?}");
    let r = resolve("peers-nowhere", &[], &Qos::data(), soon(), FlowOptions::new());
    assert!(matches!(r, Err(AllocError::NotFound { .. })), "{r:?}");
    a.shutdown().expect("a");
    b.shutdown().expect("b");
}
