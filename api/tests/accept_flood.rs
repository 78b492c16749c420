//! A listener behind clients that connect and fail their setup (a flood of
//! bad requests, or of refused peers): each accept form still returns, a
//! `try_accept` after a bounded number of them.

use ringflow_api::{AcceptError, Listener, ListenerOptions};
use ringflow_core::control::{ControlConn, RuntimeDir};
use ringflow_core::flow::listener::NOW_SETUP_ATTEMPTS;

/// Before: `try_accept` set up every queued connection in one call, so
/// clients that kept connecting and failing kept it from ever returning.
#[test]
fn a_try_accept_gives_up_after_a_bounded_number_of_failed_setups() {
    let tmp = ringflow_testkit::temp_dir("accept-flood");
    let mut l = Listener::bind_with("flood", ListenerOptions::new().runtime_dir(tmp.path())).unwrap();
    let dir = RuntimeDir::at(tmp.path()).unwrap();
    // Queued clients whose request the handshake refuses at once.
    let clients: Vec<ControlConn> = (0..3 * NOW_SETUP_ATTEMPTS)
        .map(|_| {
            let c = ControlConn::connect(&dir, "flood").unwrap();
            c.send(b"not a request", &[]).unwrap();
            c
        })
        .collect();
    assert!(matches!(l.try_accept(), Err(AcceptError::WouldBlock)));
    assert_eq!(l.refused(), NOW_SETUP_ATTEMPTS as u64);
    // Each call goes on with the next ones.
    assert!(matches!(l.try_accept(), Err(AcceptError::WouldBlock)));
    assert_eq!(l.refused(), 2 * NOW_SETUP_ATTEMPTS as u64);
    drop(clients);
}
