//! The engine's own refusals: each its own variant, produced where it
//! should be.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::RemoteEngine;
use crate::config::{EngineConfig, ThreadingMode};
use crate::engine::EngineError;
use crate::flow::error::{AllocError, BindError};
use crate::flow::Qos;
use crate::uring::TcpError;
use crate::Deadline;

/// An engine that is shutting down answers a new alloc with
/// `EngineShuttingDown`, before dialling anyone.
#[test]
fn a_draining_engine_refuses_an_alloc_as_shutting_down() {
    // Engine threads keep their statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let engine = RemoteEngine::start(&EngineConfig::builder().build().expect("config"), None).expect("engine");
    // SYNC: Relaxed; as `shutdown_within` sets it (the command's mutex
    // orders it for the bridge).
    engine.shared.draining.store(true, Ordering::Relaxed);
    let r = engine.alloc("svc@127.0.0.1:9", &Qos::data(), Deadline::after(Duration::from_secs(30)));
    assert!(matches!(r, Err(AllocError::EngineShuttingDown)), "{:?}", r.as_ref().map(|_| ()));
    engine.shutdown().expect("shutdown");
}

/// An invoker-mode engine cannot serve the host: a variant that says so.
#[test]
fn an_invoker_engine_cannot_serve_the_host() {
    ringflow_testkit::isolate_runtime_dir();
    let cfg = EngineConfig::builder().mode(ThreadingMode::Invoker).build().expect("config");
    let engine = RemoteEngine::start(&cfg, None).expect("engine");
    let tmp = ringflow_testkit::temp_dir("invoker-host");
    let r = engine.serve_host(Some(tmp.path().to_path_buf()));
    assert!(matches!(r, Err(BindError::InvokerEngine)), "{:?}", r.as_ref().map(|_| ()));
    engine.shutdown().expect("shutdown");
}

/// An address another socket holds: the engine says it cannot listen
/// there, with the socket call's error, not a configuration complaint.
#[test]
fn a_listen_address_in_use_is_a_listen_error() {
    ringflow_testkit::isolate_runtime_dir();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let addr = taken.local_addr().expect("its address");
    let cfg = EngineConfig::builder().listen(Some(&addr.to_string())).build().expect("config");
    match RemoteEngine::start(&cfg, None) {
        Err(e @ EngineError::Listen { .. }) => {
            let EngineError::Listen { addr: at, source } = &e else { unreachable!() };
            assert_eq!(*at, addr);
            assert!(matches!(source, TcpError::Io { errno, .. } if *errno == libc::EADDRINUSE), "{source:?}");
            assert!(e.to_string().contains(&addr.to_string()), "{e}");
            assert!(std::error::Error::source(&e).is_some());
        }
        Err(e) => panic!("expected Listen: {e:?}"),
        Ok(engine) => {
            let _ = engine.shutdown();
            panic!("an engine listened on a taken address");
        }
    }
}
