//! A process whose engine configuration cannot be read: a remote alloc and
//! a plain name looked up in `net.peers` both say so, with the
//! configuration's own error as the source, not an OS error made of its
//! text. Its own test binary: the process reads its configuration once.

use std::error::Error as _;
use std::time::Duration;

use ringflow_core::config::ConfigError;
use ringflow_core::flow::end::FlowEnd;
use ringflow_core::flow::error::AllocError;
use ringflow_core::flow::Qos;
use ringflow_core::Deadline;

#[test]
fn an_unreadable_configuration_is_a_config_error() {
    ringflow_testkit::isolate_runtime_dir();
    let tmp = ringflow_testkit::temp_dir("bad-config");
    let path = tmp.path().join("ringflow.toml");
    std::fs::write(&path, "engine = 5\n").unwrap();
    // Before anything in this process reads its configuration.
    std::env::set_var("RINGFLOW_CONFIG", &path);
    let guard = Deadline::after(Duration::from_secs(30));

    let r = FlowEnd::alloc("bad-config-unbound", &Qos::data(), guard);
    match &r {
        Err(e @ AllocError::Config(_)) => {
            assert!(e.source().and_then(|s| s.downcast_ref::<ConfigError>()).is_some(), "{e:?}");
            assert!(e.to_string().contains("configuration"), "{e}");
        }
        other => panic!("expected Config: {:?}", other.as_ref().map(|_| ())),
    }

    // The embedded engine needs the same configuration: it never started.
    let r = FlowEnd::alloc("svc@127.0.0.1:9", &Qos::data(), guard);
    assert!(matches!(r, Err(AllocError::Config(_))), "{:?}", r.as_ref().map(|_| ()));
    // And says so again (the cause is kept, not turned into text).
    let r = FlowEnd::alloc("svc@127.0.0.1:9", &Qos::data(), guard);
    assert!(matches!(r, Err(AllocError::Config(_))), "{:?}", r.as_ref().map(|_| ()));
}
