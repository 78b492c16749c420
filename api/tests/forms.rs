//! The four forms of every control operation that can wait (`alloc`,
//! `accept`, `dealloc`, `FlowSet::wait`, `RemoteEngine::alloc`, with an
//! engine thread and in invoker mode; and the engine's flushing shutdown):
//! the blocking form returns when the event comes from another thread, `try_`
//! returns `WouldBlock` at once where it would wait, and the deadline and
//! timeout forms return `TimedOut` when nothing comes. Short deadlines are
//! only the trigger of a timeout; no test measures how long anything took.

use std::net::TcpListener;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use ringflow_testkit::{thread_id, wait_until_blocked, TempDir};

use ringflow_api::config::EngineConfig;
use ringflow_api::remote::RemoteEngine;
use ringflow_api::{
    AcceptError, AllocError, Deadline, DeallocError, Flow, FlowOptions, FlowSet, Interest, Listener, ListenerOptions,
    Qos, RecvError, SetError,
};

/// What makes a deadline or timeout form give up: nothing comes in it.
const SHORT: Duration = Duration::from_millis(30);
/// A hang guard, never reached when the code works.
const LONG: Duration = Duration::from_secs(30);

mod support;

fn test_dir() -> TempDir {
    ringflow_testkit::temp_dir("forms")
}

fn listener(dir: &TempDir, name: &str) -> Listener {
    Listener::bind_with(name, ListenerOptions::new().remote(true).runtime_dir(dir.path())).unwrap()
}

/// A connected pair through a listener in `dir`: (allocating side,
/// accepting side).
fn pair(dir: &TempDir) -> (Flow, Flow) {
    let mut l = listener(dir, "pair");
    let d = dir.path().to_path_buf();
    let client = thread::spawn(move || {
        Flow::alloc_with("pair", &Qos::data(), Deadline::after(LONG), FlowOptions::new().runtime_dir(d))
    });
    let server = l.accept_timeout(LONG).unwrap();
    (client.join().unwrap().unwrap(), server)
}

/// Checks that `a` and `b` are the two ends of one live flow.
fn connected(a: &mut Flow, b: &mut Flow) {
    a.send(b"ping").unwrap();
    assert_eq!(&*b.recv_ref_timeout(LONG).unwrap(), b"ping");
}

// Flow::alloc forms. They take no options, so they reach listeners in the
// default runtime directory: a private one for this test process.

#[test]
fn try_alloc_would_block_where_a_listener_must_answer_and_fails_at_once_where_none_is_bound() {
    ringflow_testkit::isolate_runtime_dir();
    let l = Listener::bind("forms-try-alloc").unwrap();
    let r = Flow::try_alloc("forms-try-alloc", &Qos::data());
    assert!(matches!(r, Err(AllocError::WouldBlock)), "{r:?}");
    drop(l);
    let r = Flow::try_alloc("forms-try-alloc", &Qos::data());
    assert!(matches!(r, Err(AllocError::NotFound { .. })), "{r:?}");
}

#[test]
fn try_alloc_leaves_a_request_the_listener_counts_as_refused() {
    ringflow_testkit::isolate_runtime_dir();
    let mut l = Listener::bind("forms-try-alloc-refused").unwrap();
    let r = Flow::try_alloc("forms-try-alloc-refused", &Qos::data());
    assert!(matches!(r, Err(AllocError::WouldBlock)), "{r:?}");
    // The abandoned request is queued: the listener takes it, finds its
    // peer gone, counts it and goes on waiting for a real one.
    let r = l.accept_timeout(SHORT);
    assert!(matches!(r, Err(AcceptError::TimedOut)), "{r:?}");
    assert_eq!(l.refused(), 1);
}

#[test]
fn alloc_deadline_and_alloc_timeout_time_out_while_the_listener_does_not_accept() {
    ringflow_testkit::isolate_runtime_dir();
    let _l = Listener::bind("forms-alloc-late").unwrap();
    let r = Flow::alloc_deadline("forms-alloc-late", &Qos::data(), Deadline::after(SHORT));
    assert!(matches!(r, Err(AllocError::TimedOut)), "{r:?}");
    let r = Flow::alloc_timeout("forms-alloc-late", &Qos::data(), SHORT);
    assert!(matches!(r, Err(AllocError::TimedOut)), "{r:?}");
    // A deadline of now is the try form.
    let r = Flow::alloc_deadline("forms-alloc-late", &Qos::data(), Deadline::Now);
    assert!(matches!(r, Err(AllocError::WouldBlock)), "{r:?}");
}

#[test]
fn alloc_blocks_until_the_listener_accepts_on_another_thread() {
    ringflow_testkit::isolate_runtime_dir();
    let mut l = Listener::bind("forms-alloc").unwrap();
    let allocating = thread_id();
    let acceptor = thread::spawn(move || {
        wait_until_blocked(allocating);
        l.accept_timeout(LONG).unwrap()
    });
    let mut a = Flow::alloc("forms-alloc", &Qos::data()).unwrap();
    let mut b = acceptor.join().unwrap();
    connected(&mut a, &mut b);
}

#[test]
fn the_deadline_and_timeout_forms_of_alloc_succeed_when_the_listener_accepts_in_time() {
    ringflow_testkit::isolate_runtime_dir();
    let mut l = Listener::bind("forms-alloc-in-time").unwrap();
    let acceptor = thread::spawn(move || {
        let b1 = l.accept_timeout(LONG).unwrap();
        let b2 = l.accept_timeout(LONG).unwrap();
        (b1, b2)
    });
    let mut a1 = Flow::alloc_deadline("forms-alloc-in-time", &Qos::data(), Deadline::after(LONG)).unwrap();
    let mut a2 = Flow::alloc_timeout("forms-alloc-in-time", &Qos::data(), LONG).unwrap();
    let (mut b1, mut b2) = acceptor.join().unwrap();
    connected(&mut a1, &mut b1);
    connected(&mut a2, &mut b2);
}

// Listener::accept forms.

#[test]
fn try_accept_would_block_with_nobody_allocating() {
    let dir = test_dir();
    let mut l = listener(&dir, "acc");
    let r = l.try_accept();
    assert!(matches!(r, Err(AcceptError::WouldBlock)), "{r:?}");
    let r = l.accept_deadline(Deadline::Now);
    assert!(matches!(r, Err(AcceptError::WouldBlock)), "{r:?}");
    assert_eq!(l.refused(), 0);
}

#[test]
fn accept_deadline_and_accept_timeout_time_out_with_nobody_allocating() {
    let dir = test_dir();
    let mut l = listener(&dir, "acc");
    let r = l.accept_deadline(Deadline::after(SHORT));
    assert!(matches!(r, Err(AcceptError::TimedOut)), "{r:?}");
    let r = l.accept_timeout(SHORT);
    assert!(matches!(r, Err(AcceptError::TimedOut)), "{r:?}");
}

#[test]
fn accept_blocks_until_a_flow_is_allocated_on_another_thread() {
    let dir = test_dir();
    let mut l = listener(&dir, "acc");
    let accepting = thread_id();
    let d = dir.path().to_path_buf();
    let client = thread::spawn(move || {
        wait_until_blocked(accepting);
        Flow::alloc_with("acc", &Qos::data(), Deadline::after(LONG), FlowOptions::new().runtime_dir(d)).unwrap()
    });
    let mut b = l.accept().unwrap();
    let mut a = client.join().unwrap();
    connected(&mut a, &mut b);
}

#[test]
fn the_deadline_and_timeout_forms_of_accept_succeed_when_a_flow_comes_in_time() {
    let dir = test_dir();
    let mut l = listener(&dir, "acc");
    let d = dir.path().to_path_buf();
    let client = thread::spawn(move || {
        let alloc = || {
            let opts = FlowOptions::new().runtime_dir(&d);
            Flow::alloc_with("acc", &Qos::data(), Deadline::after(LONG), opts).unwrap()
        };
        (alloc(), alloc())
    });
    let mut b1 = l.accept_deadline(Deadline::after(LONG)).unwrap();
    let mut b2 = l.accept_timeout(LONG).unwrap();
    let (mut a1, mut a2) = client.join().unwrap();
    connected(&mut a1, &mut b1);
    connected(&mut a2, &mut b2);
}

// Flow::dealloc forms.

#[test]
fn try_dealloc_is_ok_when_everything_sent_was_consumed() {
    let dir = test_dir();
    let (mut a, mut b) = pair(&dir);
    connected(&mut a, &mut b);
    assert_eq!(a.try_dealloc(), Ok(()));
    assert!(matches!(b.try_recv_ref(), Err(RecvError::Closed)));
}

#[test]
fn try_dealloc_closes_at_once_and_reports_what_was_unread_which_the_peer_still_reads() {
    let dir = test_dir();
    let (mut a, mut b) = pair(&dir);
    a.send(b"one").unwrap();
    a.send(b"two").unwrap();
    assert_eq!(a.try_dealloc(), Err(DeallocError::WouldBlock { unconsumed: 2 }));
    assert_eq!(&*b.try_recv_ref().unwrap(), b"one");
    assert_eq!(&*b.try_recv_ref().unwrap(), b"two");
    assert!(matches!(b.try_recv_ref(), Err(RecvError::Closed)));
}

#[test]
fn a_dealloc_deadline_of_now_is_the_try_form() {
    let dir = test_dir();
    let (mut a, _b) = pair(&dir);
    a.send(b"unread").unwrap();
    assert_eq!(a.dealloc_deadline(Deadline::Now), Err(DeallocError::WouldBlock { unconsumed: 1 }));
}

#[test]
fn dealloc_deadline_and_dealloc_timeout_time_out_while_nobody_reads() {
    let dir = test_dir();
    let (mut a1, mut b1) = pair(&dir);
    a1.send(b"unread").unwrap();
    assert_eq!(a1.dealloc_deadline(Deadline::after(SHORT)), Err(DeallocError::TimedOut { unconsumed: 1 }));
    // Timed out or not, the flow is closed and nothing is lost.
    assert_eq!(&*b1.try_recv_ref().unwrap(), b"unread");
    assert!(matches!(b1.try_recv_ref(), Err(RecvError::Closed)));
    drop(b1);
    let (mut a2, _b2) = pair(&dir);
    a2.send(b"unread").unwrap();
    assert_eq!(a2.dealloc_timeout(SHORT), Err(DeallocError::TimedOut { unconsumed: 1 }));
}

#[test]
fn dealloc_lingers_until_the_peer_reads_on_another_thread() {
    let dir = test_dir();
    let (mut a, mut b) = pair(&dir);
    a.send(b"one").unwrap();
    a.send(b"two").unwrap();
    let lingering = thread_id();
    let reader = thread::spawn(move || {
        wait_until_blocked(lingering);
        let mut got = Vec::new();
        loop {
            match b.recv_ref_timeout(LONG) {
                Ok(m) => got.push(m.to_vec()),
                Err(RecvError::Closed) => return got,
                Err(e) => panic!("{e}"),
            }
        }
    });
    assert_eq!(a.dealloc(), Ok(()));
    assert_eq!(reader.join().unwrap(), [b"one".to_vec(), b"two".to_vec()]);
}

#[test]
fn the_deadline_and_timeout_forms_of_dealloc_succeed_when_the_peer_reads_in_time() {
    let dir = test_dir();
    for deadline_form in [true, false] {
        let (mut a, mut b) = pair(&dir);
        a.send(b"read").unwrap();
        let reader = thread::spawn(move || {
            let m = b.recv_ref_timeout(LONG).unwrap().to_vec();
            (m, b)
        });
        let r = if deadline_form { a.dealloc_deadline(Deadline::after(LONG)) } else { a.dealloc_timeout(LONG) };
        assert_eq!(r, Ok(()));
        let (m, _b) = reader.join().unwrap();
        assert_eq!(m, b"read");
    }
}

// FlowSet::wait forms.

#[test]
fn try_wait_would_block_and_the_deadline_forms_time_out_with_nothing_ready() {
    ringflow_testkit::require_futex_waitv!();
    let dir = test_dir();
    let (mut a, b) = pair(&dir);
    let mut set = FlowSet::new();
    let key = set.insert(b, Interest::Readable);
    let stale = || vec![ringflow_api::Ready { key: 99, readable: true, writable: false, closed: false }];
    let mut ready = stale();
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));
    assert!(ready.is_empty());
    ready = stale();
    assert!(matches!(set.wait_deadline(&mut ready, Deadline::Now), Err(SetError::WouldBlock)));
    assert!(ready.is_empty());
    ready = stale();
    assert!(matches!(set.wait_deadline(&mut ready, Deadline::after(SHORT)), Err(SetError::TimedOut)));
    assert!(ready.is_empty());
    ready = stale();
    assert!(matches!(set.wait_timeout(&mut ready, SHORT), Err(SetError::TimedOut)));
    assert!(ready.is_empty());
    // With a message waiting, every form says so at once.
    a.send(b"here").unwrap();
    assert_eq!(set.try_wait(&mut ready).unwrap(), 1);
    assert_eq!(ready[0].key, key);
    assert!(ready[0].readable);
    assert_eq!(set.wait_deadline(&mut ready, Deadline::after(LONG)).unwrap(), 1);
    assert_eq!(set.wait_timeout(&mut ready, LONG).unwrap(), 1);
    assert_eq!(set.wait(&mut ready).unwrap(), 1);
}

#[test]
fn wait_blocks_until_a_flow_in_the_set_gets_a_message_from_another_thread() {
    ringflow_testkit::require_futex_waitv!();
    let dir = test_dir();
    let (mut a, b) = pair(&dir);
    let mut set = FlowSet::new();
    let key = set.insert(b, Interest::Readable);
    let waiting = thread_id();
    let sender = thread::spawn(move || {
        wait_until_blocked(waiting);
        a.send(b"wake").unwrap();
        a
    });
    let mut ready = Vec::new();
    assert_eq!(set.wait(&mut ready).unwrap(), 1);
    assert_eq!((ready[0].key, ready[0].readable, ready[0].closed), (key, true, false));
    assert_eq!(&*set.get_mut(key).unwrap().try_recv_ref().unwrap(), b"wake");
    let _a = sender.join().unwrap();
}

#[test]
fn every_wait_form_refuses_an_empty_set() {
    let mut set = FlowSet::new();
    let mut ready = Vec::new();
    assert!(matches!(set.wait(&mut ready), Err(SetError::Empty)));
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::Empty)));
    assert!(matches!(set.wait_deadline(&mut ready, Deadline::Never), Err(SetError::Empty)));
    assert!(matches!(set.wait_timeout(&mut ready, LONG), Err(SetError::Empty)));
}

// RemoteEngine::alloc forms.

fn near_engine() -> RemoteEngine {
    // Engines keep their threads' statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    RemoteEngine::start(&EngineConfig::default(), None).unwrap()
}

#[test]
fn remote_alloc_forms_would_block_or_time_out_while_the_far_side_says_nothing() {
    let near = near_engine();
    // A TCP port whose connections the kernel completes but nobody answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("svc@{}", silent.local_addr().unwrap());
    let r = near.try_alloc(&target, &Qos::data());
    assert!(matches!(r, Err(AllocError::WouldBlock)), "{r:?}");
    let r = near.alloc_deadline(&target, &Qos::data(), Deadline::Now);
    assert!(matches!(r, Err(AllocError::WouldBlock)), "{r:?}");
    let r = near.alloc_deadline(&target, &Qos::data(), Deadline::after(SHORT));
    assert!(matches!(r, Err(AllocError::TimedOut)), "{r:?}");
    let r = near.alloc_timeout(&target, &Qos::data(), SHORT);
    assert!(matches!(r, Err(AllocError::TimedOut)), "{r:?}");
    // What needs no answer is refused at once by every form.
    let r = near.try_alloc("no-at-sign", &Qos::data());
    assert!(matches!(r, Err(AllocError::InvalidTarget { .. })), "{r:?}");
}

#[test]
fn remote_alloc_blocks_until_the_far_listener_accepts_on_another_thread() {
    let dir = test_dir();
    let mut l = listener(&dir, "svc");
    let near = near_engine();
    let far_cfg = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().unwrap();
    let far = RemoteEngine::start(&far_cfg, Some(dir.path().to_path_buf())).unwrap();
    let target = format!("svc@{}", far.listen_addr().unwrap());
    let allocating = thread_id();
    let (accepted, flows) = mpsc::channel();
    let acceptor = thread::spawn(move || {
        wait_until_blocked(allocating);
        let first = l.accept_timeout(LONG).unwrap();
        accepted.send(first).unwrap();
        (l.accept_timeout(LONG).unwrap(), l.accept_timeout(LONG).unwrap())
    });
    let mut a = near.alloc(&target, &Qos::data()).unwrap();
    let mut b = flows.recv().unwrap();
    connected(&mut a, &mut b);
    // The deadline and timeout forms succeed as well when the answer comes.
    let mut a2 = near.alloc_deadline(&target, &Qos::data(), Deadline::after(LONG)).unwrap();
    let mut a3 = near.alloc_timeout(&target, &Qos::data(), LONG).unwrap();
    let (mut b2, mut b3) = acceptor.join().unwrap();
    connected(&mut a2, &mut b2);
    connected(&mut a3, &mut b3);
}

// RemoteEngine shutdown: `shutdown` stops at once; flushing first takes a
// deadline (`shutdown_deadline`) or a timeout (`shutdown_within`).

#[test]
fn an_engine_with_nothing_in_flight_flushes_and_stops_under_every_deadline() {
    assert!(near_engine().shutdown_deadline(Deadline::Never).unwrap());
    assert!(near_engine().shutdown_deadline(Deadline::after(LONG)).unwrap());
    assert!(near_engine().shutdown_within(LONG).unwrap());
}

#[test]
fn an_engine_shutdown_gives_up_flushing_at_its_deadline_while_a_message_stays_unacknowledged() {
    for deadline_form in [true, false] {
        let dir = test_dir();
        let mut l = listener(&dir, "svc");
        let near = near_engine();
        let far_cfg = EngineConfig::builder().listen(Some("127.0.0.1:0")).build().unwrap();
        let far = RemoteEngine::start(&far_cfg, Some(dir.path().to_path_buf())).unwrap();
        let target = format!("svc@{}", far.listen_addr().unwrap());
        let acceptor = thread::spawn(move || l.accept_timeout(LONG).unwrap());
        let mut a = near.alloc_timeout(&target, &Qos::data(), LONG).unwrap();
        let mut b = acceptor.join().unwrap();
        connected(&mut a, &mut b);
        // The far application keeps its end and never reads again: what is
        // sent now is never consumed, so never acknowledged.
        a.send(b"never acknowledged").unwrap();
        let flushed =
            if deadline_form { near.shutdown_deadline(Deadline::after(SHORT)) } else { near.shutdown_within(SHORT) };
        assert!(!flushed.unwrap());
        drop((a, b));
        far.shutdown().unwrap();
    }
}

// Invoker mode: no engine thread; the waiting calls drive the engine, under
// the same four forms.

fn invoker_engine(listen: Option<&str>, dir: Option<&TempDir>) -> RemoteEngine {
    support::invoker_engine(listen, dir.map(|d| d.path()))
}

#[test]
fn invoker_mode_alloc_and_accept_would_block_or_time_out_when_nothing_comes() {
    let dir = test_dir();
    let near = invoker_engine(None, None);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = format!("svc@{}", silent.local_addr().unwrap());
    let r = near.try_alloc(&target, &Qos::data());
    assert!(matches!(r, Err(AllocError::WouldBlock)), "{r:?}");
    let r = near.alloc_deadline(&target, &Qos::data(), Deadline::after(SHORT));
    assert!(matches!(r, Err(AllocError::TimedOut)), "{r:?}");
    let r = near.alloc_timeout(&target, &Qos::data(), SHORT);
    assert!(matches!(r, Err(AllocError::TimedOut)), "{r:?}");
    let far = invoker_engine(Some("127.0.0.1:0"), Some(&dir));
    let opts = ListenerOptions::new().remote(true).runtime_dir(dir.path()).engine(&far);
    let mut l = Listener::bind_with("inv", opts).unwrap();
    let r = l.try_accept();
    assert!(matches!(r, Err(AcceptError::WouldBlock)), "{r:?}");
    let r = l.accept_deadline(Deadline::after(SHORT));
    assert!(matches!(r, Err(AcceptError::TimedOut)), "{r:?}");
    let r = l.accept_timeout(SHORT);
    assert!(matches!(r, Err(AcceptError::TimedOut)), "{r:?}");
}

#[test]
fn invoker_mode_alloc_blocks_until_an_accept_on_another_thread_drives_the_far_engine() {
    let dir = test_dir();
    let far = invoker_engine(Some("127.0.0.1:0"), Some(&dir));
    let target = format!("inv@{}", far.listen_addr().unwrap());
    let opts = ListenerOptions::new().remote(true).runtime_dir(dir.path()).engine(&far);
    let mut l = Listener::bind_with("inv", opts).unwrap();
    let near = invoker_engine(None, None);
    let allocating = thread_id();
    // The far engine runs only inside this thread's calls: its accept, its
    // receives until the flow ends, then its flushing shutdown, which must
    // not end before the acknowledgement of the last consumption has left
    // (else the near side's linger runs to its peer timeout: `PeerGone`).
    let acceptor = thread::spawn(move || {
        wait_until_blocked(allocating);
        let mut b = l.accept().unwrap();
        let mut got = Vec::new();
        loop {
            match b.recv_ref_timeout(LONG) {
                Ok(m) => got.push(m.to_vec()),
                Err(RecvError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
        drop(b);
        assert!(far.shutdown_deadline(Deadline::after(LONG)).unwrap(), "the far engine flushed");
        got
    });
    let mut a = near.alloc(&target, &Qos::data()).unwrap();
    a.send(b"driven").unwrap();
    // The lingering dealloc drives the near engine until the far
    // application has consumed the message.
    assert_eq!(a.dealloc(), Ok(()));
    assert_eq!(acceptor.join().unwrap(), [b"driven".to_vec()]);
}
