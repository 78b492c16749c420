//! What the tests of flows between hosts share: a private runtime
//! directory and pairs of engines in this process (the wire between them
//! is real TCP on loopback).
#![allow(dead_code)] // each test binary uses its own part

use std::net::SocketAddr;
use std::path::Path;

use ringflow_testkit::TempDir;

use ringflow_api::config::{EngineConfig, ThreadingMode};
use ringflow_api::remote::RemoteEngine;
use ringflow_api::{Listener, ListenerOptions};

/// A temporary directory for listeners' names; engines keep their
/// statistics in the default runtime directory, made private first.
pub fn test_dir(prefix: &str) -> TempDir {
    ringflow_testkit::isolate_runtime_dir();
    ringflow_testkit::temp_dir(prefix)
}

/// `(near, far)`: `far` listens on loopback and serves names bound in
/// `dir`. The default idle strategy parks (at most 1 ms): tests never keep
/// a core spinning.
pub fn engines(dir: &Path) -> (RemoteEngine, RemoteEngine) {
    let far_cfg = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().unwrap();
    let far = RemoteEngine::start(&far_cfg, Some(dir.to_path_buf())).unwrap();
    let near = RemoteEngine::start(&EngineConfig::default(), None).unwrap();
    (near, far)
}

/// An engine in invoker mode (no engine thread: the application's
/// waiting calls drive it), listening on `listen` if given.
pub fn invoker_engine(listen: Option<&str>, dir: Option<&Path>) -> RemoteEngine {
    ringflow_testkit::isolate_runtime_dir();
    let cfg = EngineConfig::builder().mode(ThreadingMode::Invoker).listen(listen).build().unwrap();
    RemoteEngine::start(&cfg, dir.map(Path::to_path_buf)).unwrap()
}

/// An invoker-mode engine whose ring has one issuer and deferred task run
/// (what `ringflow bench remote` runs): only the thread that calls this may
/// drive it, nothing else does (no minder), and it reads arriving bytes
/// directly (`uring::tcp::direct`).
pub fn single_issuer_engine(listen: Option<&str>, dir: Option<&Path>) -> RemoteEngine {
    ringflow_testkit::isolate_runtime_dir();
    let cfg = EngineConfig::builder()
        .mode(ThreadingMode::Invoker)
        .single_issuer(true)
        .defer_taskrun(true)
        .listen(listen)
        .build()
        .unwrap();
    RemoteEngine::start(&cfg, dir.map(Path::to_path_buf)).unwrap()
}

/// An invoker-mode engine listening on loopback with a listener `name`
/// told of it (its accept drives it), and the engine's address.
pub fn invoker_server(name: &str, dir: &Path) -> (RemoteEngine, Listener, SocketAddr) {
    let far = invoker_engine(Some("127.0.0.1:0"), Some(dir));
    let listener =
        Listener::bind_with(name, ListenerOptions::new().remote(true).runtime_dir(dir).engine(&far)).unwrap();
    let addr = far.listen_addr().unwrap();
    (far, listener, addr)
}
