//! A remote flow between two engines in two processes: the child runs the
//! far engine and an echoing listener behind it; the parent allocates
//! `echo@127.0.0.1:port` through its own engine.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::{child_arg, is_child, spawn_flow_child};
use ringflow::config::EngineConfig;
use ringflow::remote::RemoteEngine;
use ringflow::{Listener, ListenerOptions, Qos, RecvError};

const LONG: Duration = Duration::from_secs(60);

#[test]
#[ignore]
fn child_far_engine_with_an_echo_listener() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    // The names' directory must be private (0700): a subdirectory made for it.
    let names = dir.join("names");
    let mut listener = Listener::bind_with("echo", ListenerOptions::new().remote(true).runtime_dir(&names)).unwrap();
    let cfg = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().unwrap();
    let engine = RemoteEngine::start(&cfg, Some(names)).unwrap();
    let port = engine.listen_addr().unwrap().port();
    std::fs::write(dir.join("port.tmp"), port.to_string()).unwrap();
    std::fs::rename(dir.join("port.tmp"), dir.join("port")).unwrap();
    let mut flow = listener.accept_timeout(LONG).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match flow.recv_into_timeout(&mut buf, LONG) {
            Ok(n) => flow.send(&buf[..n]).unwrap(),
            Err(RecvError::Closed) => break,
            Err(e) => panic!("{e}"),
        }
    }
    engine.shutdown().unwrap();
}

#[test]
fn a_remote_flow_between_two_processes() {
    let tmp = ringflow_testkit::temp_dir("remote-proc");
    let dir = tmp.path().to_path_buf();
    let mut child = spawn_flow_child("child_far_engine_with_an_echo_listener", &[("DIR", dir.display().to_string())]);
    let port_file = dir.join("port");
    let end = Instant::now() + LONG;
    while !port_file.exists() {
        assert!(Instant::now() < end, "the far engine never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let port: u16 = std::fs::read_to_string(&port_file).unwrap().trim().parse().unwrap();
    let near = RemoteEngine::start(&EngineConfig::default(), None).unwrap();
    let mut flow = near.alloc_timeout(&format!("echo@127.0.0.1:{port}"), &Qos::data(), LONG).unwrap();
    for i in 0..100u32 {
        let msg = if i % 25 == 3 { vec![i as u8; 200_000] } else { i.to_le_bytes().to_vec() };
        flow.send(&msg).unwrap();
        assert_eq!(&*flow.recv_ref_timeout(LONG).unwrap(), &msg[..], "round trip {i}");
    }
    drop(flow);
    assert!(child.wait().unwrap().success());
    near.shutdown().unwrap();
}
