//! `Flow::alloc` of a plain name that no listener of this host has bound
//! goes where `net.peers` (here from `RINGFLOW_NET_PEERS`) says. Its own
//! test binary: the process reads its configuration once.

use std::time::Duration;

use ringflow_api::config::EngineConfig;
use ringflow_api::remote::RemoteEngine;
use ringflow_api::{AllocError, Flow, Listener, ListenerOptions, Qos};

#[test]
fn a_plain_name_bound_on_a_configured_peer_is_found_there() {
    // The embedded engine and this process's flows use the default runtime
    // directory: a private one, removed at exit.
    ringflow_testkit::isolate_runtime_dir();
    let far_tmp = ringflow_testkit::temp_dir("peers-env");
    let far_dir = far_tmp.path().to_path_buf();
    let cfg = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().unwrap();
    let far = RemoteEngine::start(&cfg, Some(far_dir.clone())).unwrap();
    let addr = far.listen_addr().unwrap();
    let mut listener =
        Listener::bind_with("peers-env-svc", ListenerOptions::new().remote(true).runtime_dir(&far_dir)).unwrap();
    let server = std::thread::spawn(move || {
        let mut flow = listener.accept_timeout(Duration::from_secs(30)).unwrap();
        let got = flow.recv_ref_timeout(Duration::from_secs(30)).unwrap().to_vec();
        flow.send(&got).unwrap();
        let _ = flow.recv_ref_timeout(Duration::from_secs(30)).map(|_| ());
    });
    // Before anything in this process reads its configuration.
    std::env::set_var("RINGFLOW_NET_PEERS", format!("peers-env-svc@{addr}"));

    let mut flow = Flow::alloc_timeout("peers-env-svc", &Qos::data(), Duration::from_secs(30)).unwrap();
    flow.send(b"over there").unwrap();
    assert_eq!(&*flow.recv_ref_timeout(Duration::from_secs(30)).unwrap(), b"over there");
    drop(flow);
    server.join().unwrap();
    // A name neither here nor listed is still not found.
    let r = Flow::alloc_timeout("peers-env-unknown", &Qos::data(), Duration::from_secs(5));
    assert!(matches!(r, Err(AllocError::NotFound { .. })), "{r:?}");
    far.shutdown().unwrap();
}
