//! The close handshake of a flow bridged to another host (`close.rs`): the
//! application's `dealloc` returns once its engine says the flow's end is
//! in the kernel's hands, or its deadline passes, or the engine's end goes;
//! never on a word the engine got wrong. The engine is played by the other
//! end of a pair, which calls what the bridge calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::flow::error::{DeallocError, RecvError};
use crate::flow::Qos;
use crate::Deadline;

use super::FlowEnd;

/// A pair whose first end is an application's flow to another host and
/// whose second is its engine's end.
fn bridged_pair() -> (FlowEnd, FlowEnd) {
    // FlowEnd::pair keeps its statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let (mut app, engine) = FlowEnd::pair(&Qos::data()).unwrap();
    app.crosses_hosts = true;
    (app, engine)
}

/// The engine's part up to its Close: takes every message, then sees the
/// sending side closed.
fn take_until_closed(engine: &mut FlowEnd) -> u32 {
    let mut buf = [0u8; 64];
    let mut taken = 0;
    loop {
        match engine.recv_into_timeout(&mut buf, Duration::from_secs(30)) {
            Ok(_) => taken += 1,
            Err(RecvError::Closed) => return taken,
            Err(e) => panic!("engine end: {e}"),
        }
    }
}

#[test]
fn a_bridged_dealloc_returns_only_after_the_engine_handed_the_close() {
    let (mut app, mut engine) = bridged_pair();
    for i in 0..3u32 {
        app.send(&i.to_le_bytes()).unwrap();
    }
    let confirmed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&confirmed);
    let bridge = thread::spawn(move || {
        assert_eq!(take_until_closed(&mut engine), 3);
        // Everything is consumed now; the dealloc still waits for this.
        flag.store(true, Ordering::SeqCst);
        engine.confirm_close_handed(engine.received_count());
        engine
    });
    assert_eq!(app.dealloc(Deadline::after(Duration::from_secs(30))), Ok(()));
    assert!(confirmed.load(Ordering::SeqCst), "dealloc returned before the engine handed the close");
    drop(bridge.join().unwrap());
}

#[test]
fn everything_consumed_but_the_close_not_handed_is_close_not_sent() {
    let (mut app, mut engine) = bridged_pair();
    app.send(b"one").unwrap();
    app.send(b"two").unwrap();
    let mut buf = [0u8; 8];
    engine.recv_into(&mut buf).unwrap();
    engine.recv_into(&mut buf).unwrap();
    // Consumed, not handed: a try says so at once...
    let (mut app2, mut engine2) = bridged_pair();
    app2.send(b"x").unwrap();
    engine2.recv_into(&mut buf).unwrap();
    assert_eq!(app2.dealloc(Deadline::Now), Err(DeallocError::CloseNotSent));
    // ...and a deadline when it passes.
    assert_eq!(app.dealloc(Deadline::after(Duration::from_millis(50))), Err(DeallocError::CloseNotSent));
    drop((engine, engine2));
}

#[test]
fn a_word_that_does_not_match_what_was_sent_keeps_the_dealloc_waiting() {
    let (mut app, mut engine) = bridged_pair();
    app.send(b"one").unwrap();
    app.send(b"two").unwrap();
    let mut buf = [0u8; 8];
    engine.recv_into(&mut buf).unwrap();
    // The engine confirms after one message of the two: not this close.
    engine.confirm_close_handed(engine.received_count());
    engine.recv_into(&mut buf).unwrap();
    assert_eq!(app.dealloc(Deadline::after(Duration::from_millis(50))), Err(DeallocError::CloseNotSent));
    // Any other value a peer writes is as good as none.
    let (mut app, mut engine) = bridged_pair();
    app.send(b"one").unwrap();
    engine.recv_into(&mut buf).unwrap();
    for lie in [1, 3, u64::MAX] {
        app.shared.memory.tx_close_handed(app.shared.role).store(lie, Ordering::SeqCst);
        let (mut probe, mut probe_engine) = bridged_pair();
        probe.send(b"one").unwrap();
        probe_engine.recv_into(&mut buf).unwrap();
        probe.shared.memory.tx_close_handed(probe.shared.role).store(lie, Ordering::SeqCst);
        assert_eq!(probe.dealloc(Deadline::Now), Err(DeallocError::CloseNotSent), "word {lie}");
        drop(probe_engine);
    }
    // The right value (1 + the one message) ends it.
    app.shared.memory.tx_close_handed(app.shared.role).store(2, Ordering::SeqCst);
    assert_eq!(app.dealloc(Deadline::Now), Ok(()));
    drop(engine);
}

#[test]
fn the_engine_end_going_wakes_a_dealloc_waiting_for_the_close() {
    let (mut app, mut engine) = bridged_pair();
    app.send(b"one").unwrap();
    let bridge = thread::spawn(move || {
        assert_eq!(take_until_closed(&mut engine), 1);
        // The engine lets go of the flow without handing its end.
        drop(engine);
    });
    assert_eq!(app.dealloc(Deadline::Never), Err(DeallocError::PeerGone { unconsumed: 0 }));
    bridge.join().unwrap();
}

#[test]
fn a_flow_on_this_host_does_not_wait_for_a_close() {
    ringflow_testkit::isolate_runtime_dir();
    let (mut app, mut peer) = FlowEnd::pair(&Qos::data()).unwrap();
    app.send(b"one").unwrap();
    let mut buf = [0u8; 8];
    peer.recv_into(&mut buf).unwrap();
    assert_eq!(app.dealloc(Deadline::Now), Ok(()));
    assert!(matches!(peer.recv_into(&mut buf), Err(RecvError::Closed)));
}
