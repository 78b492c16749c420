//! The public errors as a user meets them: every payload type is nameable
//! from this crate, a set's membarrier failure is not called a futex one,
//! and each error that carries another returns it from `source()`.

use std::error::Error as _;
use std::io;

use ringflow_api::{
    AllocError, CallError, ControlSendError, Corruption, DeallocError, EngineError, Phase, RecvError, SendError,
    SetError,
};

#[test]
fn a_set_names_the_call_that_failed() {
    let futex = SetError::Io(io::Error::from_raw_os_error(libc::ENOSYS));
    assert!(futex.to_string().starts_with("futex_waitv"), "{futex}");
    let barrier = SetError::Membarrier(io::Error::from_raw_os_error(libc::EPERM));
    assert!(barrier.to_string().starts_with("membarrier"), "{barrier}");
    let poll = SetError::Poll(io::Error::from_raw_os_error(libc::EMFILE));
    assert!(poll.to_string().starts_with("epoll"), "{poll}");
    for (e, errno) in [(&futex, libc::ENOSYS), (&barrier, libc::EPERM), (&poll, libc::EMFILE)] {
        let inner = e.source().and_then(|s| s.downcast_ref::<io::Error>()).expect("the OS error");
        assert_eq!(inner.raw_os_error(), Some(errno));
    }
    assert!(SetError::Empty.source().is_none());
}

#[test]
fn every_payload_is_nameable_and_matchable_from_the_api() {
    let c = Corruption::Protocol("bad".into());
    let errors: [Box<dyn std::error::Error>; 5] = [
        Box::new(SendError::CorruptPeer(c.clone())),
        Box::new(CallError::CorruptPeer(c.clone())),
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

#[test]
fn a_call_error_names_its_phase() {
    let cases = [
        (CallError::AckDisconnected, Some(Phase::Ack), "nothing was sent"),
        (CallError::SendDisconnected { sent: 3 }, Some(Phase::Send), "3 bytes"),
        (CallError::OverDisconnected, Some(Phase::Over), "outcome is unknown"),
        (CallError::RecvDisconnected { received: 5 }, Some(Phase::Recv), "5 bytes"),
        (CallError::RecvMoreData { received: 6 }, Some(Phase::Recv), "receive_more"),
        (CallError::RecvMoreRefs { received: 0, received_refs: 2 }, Some(Phase::Recv), "receive_more_fds"),
        (CallError::TimedOut { phase: Phase::Over, sent: 1, received: 0 }, Some(Phase::Over), "timed out"),
        (CallError::WouldBlock { phase: Phase::Send, sent: 0, received: 0 }, Some(Phase::Send), "would block"),
        (CallError::NotYourTurn, None, "out of turn"),
        (CallError::PlainMessage { len: 4 }, None, "plain message"),
    ];
    for (e, phase, text) in cases {
        assert_eq!(e.phase(), phase, "{e}");
        assert!(e.to_string().contains(text), "{e}");
        assert!(e.source().is_none());
    }
    let wait = CallError::Wait(io::Error::from_raw_os_error(libc::EINTR));
    assert_eq!(
        wait.source().and_then(|s| s.downcast_ref::<io::Error>()).and_then(|e| e.raw_os_error()),
        Some(libc::EINTR)
    );
}
