//! The public errors as a user meets them: every payload type is nameable
//! from this crate, a set's membarrier failure is not called a futex one,
//! and each error that carries another returns it from `source()`.

use std::error::Error as _;
use std::io;

use ringflow_api::{
    AllocError, ControlSendError, Corruption, DeallocError, EngineError, RecvError, SendError, SetError,
};

#[test]
fn a_set_names_the_call_that_failed() {
    let futex = SetError::Io(io::Error::from_raw_os_error(libc::ENOSYS));
    assert!(futex.to_string().starts_with("futex_waitv"), "{futex}");
    let barrier = SetError::Membarrier(io::Error::from_raw_os_error(libc::EPERM));
    assert!(barrier.to_string().starts_with("membarrier"), "{barrier}");
    for (e, errno) in [(&futex, libc::ENOSYS), (&barrier, libc::EPERM)] {
        let inner = e.source().and_then(|s| s.downcast_ref::<io::Error>()).expect("the OS error");
        assert_eq!(inner.raw_os_error(), Some(errno));
    }
    assert!(SetError::Empty.source().is_none());
}

#[test]
fn every_payload_is_nameable_and_matchable_from_the_api() {
    let c = Corruption::Protocol("bad".into());
    let errors: [Box<dyn std::error::Error>; 4] = [
        Box::new(SendError::CorruptPeer(c.clone())),
        Box::new(RecvError::CorruptPeer(c.clone())),
        Box::new(AllocError::CorruptPeer(c.clone())),
        Box::new(AllocError::ControlSend(ControlSendError::Empty)),
    ];
    for e in &errors {
        assert!(e.source().is_some(), "{e}");
    }
    let e = AllocError::EngineNotStarted(std::sync::Arc::new(EngineError::Pin { core: 7 }));
    // Matching from outside the crate needs a wildcard arm: the enums are
    // non-exhaustive, so new causes can be added.
    let named = match &e {
        AllocError::EngineNotStarted(inner) => matches!(**inner, EngineError::Pin { core: 7 }),
        _ => false,
    };
    assert!(named);
    let d = DeallocError::Wait { unconsumed: 1, errno: libc::EINVAL };
    assert!(d.to_string().contains("futex"), "{d}");
}
