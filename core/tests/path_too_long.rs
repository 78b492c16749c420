//! A runtime directory too long for a Unix socket address: bind and alloc
//! both say `PathTooLong` with the path and the limit, not an OS error
//! made of a message.

use std::time::Duration;

use ringflow_core::control::MAX_SOCKET_PATH;
use ringflow_core::flow::end::{FlowEnd, FlowOptions};
use ringflow_core::flow::error::{AllocError, BindError};
use ringflow_core::flow::listener::{FlowListener, ListenerOptions};
use ringflow_core::flow::Qos;
use ringflow_core::Deadline;

#[test]
fn a_socket_path_beyond_sun_path_is_path_too_long_at_bind_and_alloc() {
    let tmp = ringflow_testkit::temp_dir("long");
    let dir = tmp.path().join("d".repeat(MAX_SOCKET_PATH));
    let name = "svc";

    match FlowListener::bind_with(name, ListenerOptions::new().runtime_dir(&dir)) {
        Err(BindError::PathTooLong { path, len, max }) => {
            assert!(path.starts_with(&dir), "{}", path.display());
            assert!(len > max, "{len} <= {max}");
            assert_eq!(max, MAX_SOCKET_PATH);
        }
        other => panic!("bind: expected PathTooLong, got {:?}", other.map(|_| ())),
    }

    let opts = FlowOptions::new().runtime_dir(&dir);
    match FlowEnd::alloc_with(name, &Qos::data(), Deadline::after(Duration::from_secs(30)), opts) {
        Err(e @ AllocError::PathTooLong { .. }) => {
            let AllocError::PathTooLong { path, len, max } = &e else { unreachable!() };
            assert!(path.starts_with(&dir), "{}", path.display());
            assert!(len > max);
            assert!(e.to_string().contains("the limit is"), "{e}");
        }
        other => panic!("alloc: expected PathTooLong, got {:?}", other.map(|_| ())),
    }
}
