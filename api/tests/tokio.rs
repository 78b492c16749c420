//! The async forms (feature `tokio`): one test per waiting operation
//! (alloc, accept, send with back-pressure, receive in its forms, loan,
//! call and reply, group receive), each future dropped while it waits to
//! show what that loses (nothing, where it says so), a peer's death waking
//! an awaiting task, and two processes.
//!
//! Most tests run on a current-thread runtime, where a task that blocked
//! its thread would hang the test: the peer is another task of the same
//! thread. "Pending" is checked by polling a future once, after which only
//! the reactor (a signalled descriptor) can wake it. Timeouts are hang
//! guards, never measurements.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::{pin, Pin};
use std::task::Poll;
use std::time::Duration;

use ringflow_api::{
    AcceptError, AsyncFlow, AsyncGroup, AsyncListener, Deadline, Event, Flow, FlowOptions, Group, GroupOptions,
    Listener, ListenerOptions, Qos, RecvError, SendError, SlowMember,
};
use ringflow_testkit::{ChildCommand, ChildProcess, TempDir};

/// A hang guard, not a measurement.
const LONG: Duration = Duration::from_secs(60);

/// Polls `fut` once: whether it is pending (waiting for the reactor).
async fn pending<F: Future + ?Sized>(mut fut: Pin<&mut F>) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx).is_pending())).await
}

/// `fut`, or a panic after the hang guard.
async fn guarded<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(LONG, fut).await {
        Ok(out) => out,
        Err(_) => panic!("{what}: never completed"),
    }
}

/// Two async ends of a new flow with `qos`.
fn async_pair(qos: &Qos) -> (AsyncFlow, AsyncFlow) {
    ringflow_testkit::isolate_runtime_dir();
    let (a, b) = Flow::pair(qos).expect("pair");
    (AsyncFlow::new(a).expect("register a"), AsyncFlow::new(b).expect("register b"))
}

/// A small ring, so that a few messages fill it.
fn small() -> Qos {
    Qos::data().with_ring_bytes(4 << 10)
}

/// Fills `flow`'s sending ring with numbered 64-byte messages; returns how
/// many went.
fn fill(flow: &mut AsyncFlow) -> u32 {
    fill_with(flow, numbered)
}

/// Sends message `msg(n)` for n = 0, 1, .. until the flow has no room for
/// another; how many went.
fn fill_with<M: AsRef<[u8]>>(flow: &mut AsyncFlow, mut msg: impl FnMut(u32) -> M) -> u32 {
    let mut n = 0u32;
    loop {
        match flow.get_mut().try_send(msg(n).as_ref()) {
            Ok(()) => n += 1,
            Err(SendError::WouldBlock) => return n,
            Err(e) => panic!("filling: {e}"),
        }
    }
}

fn numbered(n: u32) -> [u8; 64] {
    let mut m = [0u8; 64];
    m[..4].copy_from_slice(&n.to_le_bytes());
    m
}

/// Receives (without waiting) every message there is; returns their numbers.
fn drain(flow: &mut AsyncFlow) -> Vec<u32> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match flow.get_mut().try_recv_into(&mut buf) {
            Ok(64) => got.push(u32::from_le_bytes(buf[..4].try_into().expect("4 bytes"))),
            Ok(n) => panic!("a message of {n} bytes"),
            Err(RecvError::WouldBlock) => return got,
            Err(e) => panic!("draining: {e}"),
        }
    }
}

#[tokio::test]
async fn recv_waits_for_a_message_and_the_descriptor_wakes_it() {
    let (mut a, mut b) = async_pair(&Qos::data());
    let mut buf = [0u8; 16];
    let n = {
        let mut recv = pin!(b.recv_into(&mut buf));
        assert!(pending(recv.as_mut()).await, "nothing was sent yet");
        a.send(b"late").await.expect("send");
        guarded("recv", recv).await.expect("the message")
    };
    assert_eq!(&buf[..n], b"late");
}

#[tokio::test]
async fn a_dropped_recv_consumes_nothing() {
    let (mut a, mut b) = async_pair(&Qos::data());
    let mut buf = [0u8; 16];
    {
        let recv = pin!(b.recv_into(&mut buf));
        assert!(pending(recv).await);
        // Dropped here, while it waits.
    }
    // A receive that loses a race with a timer in select!.
    tokio::select! {
        biased;
        _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        r = b.recv_into(&mut buf) => panic!("nothing was sent, yet: {r:?}"),
    }
    a.send(b"kept").await.expect("send");
    // The message is there for the next receive, once.
    let n = guarded("recv", b.recv_into(&mut buf)).await.expect("the message");
    assert_eq!(&buf[..n], b"kept");
    assert!(matches!(b.get_mut().try_recv_into(&mut buf), Err(RecvError::WouldBlock)));
}

#[tokio::test]
async fn recv_ref_reads_in_place_and_a_dropped_one_consumes_nothing() {
    let (mut a, mut b) = async_pair(&Qos::data());
    {
        let recv = pin!(b.recv_ref());
        assert!(pending(recv).await);
    }
    a.send(b"in place").await.expect("send");
    {
        let m = guarded("recv_ref", b.recv_ref()).await.expect("the message");
        assert_eq!(&*m, b"in place");
    }
    // Consumed when the buffer dropped: nothing more.
    let mut buf = [0u8; 16];
    assert!(matches!(b.get_mut().try_recv_into(&mut buf), Err(RecvError::WouldBlock)));
}

#[tokio::test]
async fn send_waits_for_room_until_the_reader_drains() {
    let (mut a, mut b) = async_pair(&small());
    let n = fill(&mut a);
    assert!(n > 0);
    let msg = numbered(n);
    let mut send = pin!(a.send(&msg));
    assert!(pending(send.as_mut()).await, "the ring is full");
    // The reader takes everything: its release of room signals the sender.
    let first = drain(&mut b);
    assert_eq!(first, (0..n).collect::<Vec<_>>());
    guarded("send", send).await.expect("room came");
    assert_eq!(drain(&mut b), vec![n], "the waiting message went, once");
}

#[tokio::test]
async fn a_dropped_send_sends_nothing() {
    let (mut a, mut b) = async_pair(&small());
    let n = fill(&mut a);
    let msg = numbered(u32::MAX);
    tokio::select! {
        biased;
        _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        r = a.send(&msg) => panic!("the ring is full, yet: {r:?}"),
    }
    {
        let send = pin!(a.send(&msg));
        assert!(pending(send).await);
    }
    assert_eq!(drain(&mut b), (0..n).collect::<Vec<_>>(), "exactly the messages sent before");
    // The flow goes on.
    a.send(&numbered(n)).await.expect("send");
    assert_eq!(drain(&mut b), vec![n]);
}

#[tokio::test]
async fn loan_waits_for_room_and_a_dropped_one_claims_nothing() {
    let (mut a, mut b) = async_pair(&small());
    let n = fill(&mut a);
    {
        let loan = pin!(a.loan(64));
        assert!(pending(loan).await, "the ring is full");
    }
    let mut loan = pin!(a.loan(64));
    assert!(pending(loan.as_mut()).await);
    assert_eq!(drain(&mut b), (0..n).collect::<Vec<_>>());
    let mut buf = guarded("loan", loan).await.expect("room came");
    buf.copy_from_slice(&numbered(n));
    buf.send().expect("publish");
    assert_eq!(drain(&mut b), vec![n], "one message: the dropped loan claimed nothing");
}

#[tokio::test]
async fn a_closed_or_dead_peer_wakes_an_awaiting_receive_and_send() {
    let (a, mut b) = async_pair(&Qos::data());
    let mut buf = [0u8; 16];
    let mut recv = pin!(b.recv_into(&mut buf));
    assert!(pending(recv.as_mut()).await);
    drop(a);
    let r = guarded("recv", recv).await;
    assert!(matches!(r, Err(RecvError::Closed) | Err(RecvError::PeerGone { .. })), "{r:?}");

    let (mut a, b) = async_pair(&small());
    fill(&mut a);
    let msg = numbered(0);
    let mut send = pin!(a.send(&msg));
    assert!(pending(send.as_mut()).await);
    drop(b);
    let r = guarded("send", send).await;
    assert!(matches!(r, Err(SendError::Closed) | Err(SendError::PeerGone { .. })), "{r:?}");
}

/// Both sides on two runtime threads, each blocked only in the reactor:
/// a thousand round trips, each message checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong_between_tasks_of_a_multi_thread_runtime() {
    let (mut a, mut b) = async_pair(&Qos::data());
    let echo = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        for _ in 0..1000 {
            let n = b.recv_into(&mut buf).await.expect("ping");
            b.send(&buf[..n]).await.expect("pong");
        }
    });
    let mut buf = [0u8; 64];
    for i in 0..1000u32 {
        a.send(&numbered(i)).await.expect("ping");
        let n = guarded("pong", a.recv_into(&mut buf)).await.expect("pong");
        assert_eq!(&buf[..n], &numbered(i));
    }
    guarded("echo", echo).await.expect("echo task");
}

fn dir(tag: &str) -> TempDir {
    ringflow_testkit::temp_dir(&format!("tk-{tag}"))
}

fn bind(dir: &Path, name: &str) -> AsyncListener {
    AsyncListener::new(Listener::bind_with(name, ListenerOptions::new().runtime_dir(dir)).expect("bind"))
        .expect("register")
}

async fn alloc(dir: &Path, name: &str) -> Result<AsyncFlow, ringflow_api::AllocError> {
    AsyncFlow::alloc_with(name, &Qos::data(), Deadline::after(LONG), FlowOptions::new().runtime_dir(dir)).await
}

#[tokio::test]
async fn accept_and_alloc_on_one_runtime_thread_and_a_dropped_accept_loses_no_request() {
    let d = dir("acc");
    let mut listener = bind(d.path(), "acc");
    // Nobody allocates yet: the accept waits, and loses to a timer.
    tokio::select! {
        biased;
        _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        r = listener.accept() => panic!("nobody allocated, yet: {r:?}"),
    }
    {
        let accept = pin!(listener.accept());
        assert!(pending(accept).await);
    }
    // The allocation's setup runs beside the runtime; the accept on its
    // thread. (Were either to block the thread, the other could not run.)
    let path = d.path().to_owned();
    let client = tokio::spawn(async move {
        let mut flow = alloc(&path, "acc").await.expect("alloc");
        flow.send(b"hello").await.expect("send");
        let mut buf = [0u8; 16];
        let n = flow.recv_into(&mut buf).await.expect("reply");
        assert_eq!(&buf[..n], b"olleh");
    });
    let mut flow = guarded("accept", listener.accept()).await.expect("accept");
    let mut buf = [0u8; 16];
    let n = flow.recv_into(&mut buf).await.expect("hello");
    assert_eq!(&buf[..n], b"hello");
    buf[..n].reverse();
    flow.send(&buf[..n]).await.expect("reply");
    guarded("client", client).await.expect("client task");
    // Nothing else is queued.
    assert!(matches!(listener.get_mut().try_accept(), Err(AcceptError::WouldBlock)));
}

#[tokio::test]
async fn alloc_to_an_unbound_name_fails_without_blocking() {
    let d = dir("nf");
    let r = guarded("alloc", alloc(d.path(), "nobody")).await;
    assert!(matches!(r, Err(ringflow_api::AllocError::NotFound { .. })), "{r:?}");
}

#[tokio::test]
async fn call_and_reply_between_two_tasks_of_one_thread() {
    let (mut client, mut server) = async_pair(&Qos::data());
    let service = tokio::spawn(async move {
        let mut buf = [0u8; 64];
        let mut len = server.receive_request(&mut buf).await.expect("first request");
        let mut served = 1;
        loop {
            let reply = buf[..len].to_ascii_uppercase();
            match server.reply_and_receive(&reply, &mut buf).await {
                Ok(n) => {
                    len = n;
                    served += 1;
                }
                // The client left after the last reply.
                Err(_) => return served,
            }
        }
    });
    let mut reply = [0u8; 64];
    for word in ["ping", "again", "third"] {
        let n = guarded("call", client.call(word.as_bytes(), &mut reply)).await.expect("call");
        assert_eq!(&reply[..n], word.to_ascii_uppercase().as_bytes());
    }
    drop(client);
    assert_eq!(guarded("service", service).await.expect("service task"), 3);
}

#[tokio::test]
async fn a_call_dropped_after_its_request_went_leaves_the_reply_for_receive_more() {
    let (mut client, mut server) = async_pair(&Qos::data());
    let mut reply = [0u8; 64];
    {
        let call = pin!(client.call(b"question", &mut reply));
        assert!(pending(call).await, "no reply yet");
    }
    // The request went (the turn is the server's).
    let mut buf = [0u8; 64];
    let n = guarded("request", server.receive_request(&mut buf)).await.expect("request");
    assert_eq!(&buf[..n], b"question");
    server.reply(b"answer").await.expect("reply");
    let n = guarded("receive_more", client.receive_more(&mut reply)).await.expect("the reply");
    assert_eq!(&reply[..n], b"answer");
    assert!(client.get_ref().holds_turn());
}

fn group_opts() -> GroupOptions {
    GroupOptions::new().log_capacity(1 << 16).max_message(4096).max_members(8).slow_member(SlowMember::Block)
}

/// The payload of the next event, which must be a message.
fn payload(e: Event<'_>) -> Vec<u8> {
    match e {
        Event::Message(m) => m.payload().expect("inline payload").to_vec(),
        _ => panic!("expected a message"),
    }
}

#[tokio::test]
async fn group_recv_waits_for_a_multicast_and_a_dropped_one_takes_nothing() {
    ringflow_testkit::isolate_runtime_dir();
    let mut a = Group::join("tk-group", &group_opts()).expect("create");
    let b = Group::join("tk-group", &group_opts()).expect("join");
    let mut b = AsyncGroup::new(b).expect("register");
    // b's first event is its own join's view.
    assert!(matches!(guarded("view", b.recv()).await.expect("view"), Event::View(_)));
    {
        let recv = pin!(b.recv());
        assert!(pending(recv).await, "nothing multicast yet");
    }
    {
        let mut recv = pin!(b.recv());
        assert!(pending(recv.as_mut()).await);
        a.mcast(b"to all").expect("mcast");
        let got = payload(guarded("recv", recv).await.expect("the message"));
        assert_eq!(got, b"to all");
    }
    a.mcast(b"next").expect("mcast");
    assert_eq!(payload(guarded("recv", b.recv()).await.expect("the next")), b"next");
    drop(b);
    drop(a);
}

// ---- two processes ---------------------------------------------------------

const CHILD_ENV: &str = "RINGFLOW_TOKIO_TEST_CHILD";

fn spawn_child(entry: &str, dir: &Path) -> ChildProcess {
    ringflow_testkit::isolate_runtime_dir();
    ChildCommand::reexec(entry).env(CHILD_ENV, dir).spawn()
}

/// The child of `two_processes_echo_then_the_childs_death_wakes_the_parent`:
/// allocates asynchronously, echoes until `stop`, then waits to be killed.
#[test]
#[ignore = "a child process of another test"]
fn child_async_echo() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else { return };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let mut flow = alloc(&dir, "tk-proc").await.expect("alloc");
        let mut buf = [0u8; 64];
        loop {
            let n = flow.recv_into(&mut buf).await.expect("a message");
            if &buf[..n] == b"stop" {
                break;
            }
            flow.send(&buf[..n]).await.expect("echo");
        }
        // Awaits what never comes, until killed.
        let _ = flow.recv_into(&mut buf).await;
    });
}

#[tokio::test]
async fn two_processes_echo_then_the_childs_death_wakes_the_parent() {
    let d = dir("proc");
    let mut listener = bind(d.path(), "tk-proc");
    let child = spawn_child("child_async_echo", d.path());
    let mut flow = guarded("accept", listener.accept()).await.expect("accept");
    let mut buf = [0u8; 64];
    for i in 0..200u32 {
        flow.send(&numbered(i)).await.expect("send");
        let n = guarded("echo", flow.recv_into(&mut buf)).await.expect("echo");
        assert_eq!(&buf[..n], &numbered(i));
    }
    flow.send(b"stop").await.expect("stop");
    let mut recv = pin!(flow.recv_into(&mut buf));
    assert!(pending(recv.as_mut()).await, "the child sends nothing more");
    drop(child); // SIGKILL
    let r = guarded("recv after the death", recv).await;
    assert!(matches!(r, Err(RecvError::PeerGone { .. })), "{r:?}");
}

/// Messages larger than the ring's inline size travel through the flow's
/// bulk area: a send that waits for room there is woken when the reader
/// hands bulk room back.
#[tokio::test]
async fn a_large_send_waits_for_bulk_room_until_the_reader_drains() {
    let (mut a, mut b) = async_pair(&Qos::data().with_ring_bytes(16 << 10).with_max_msg(64 << 10));
    let big = vec![7u8; a.get_ref().inline_max() + 1];
    let sent = fill_with(&mut a, |_| big.as_slice());
    assert!(sent > 0);
    {
        let mut send = pin!(a.send(&big));
        assert!(pending(send.as_mut()).await, "no room");
        let mut buf = vec![0u8; big.len()];
        for _ in 0..sent {
            let n = b.get_mut().try_recv_into(&mut buf).expect("a large message");
            assert_eq!(&buf[..n], &big[..]);
        }
        assert!(matches!(b.get_mut().try_recv_into(&mut buf), Err(RecvError::WouldBlock)));
        guarded("large send", send).await.expect("room came");
    }
    let mut buf = vec![0u8; big.len()];
    let n = b.get_mut().try_recv_into(&mut buf).expect("the waiting message");
    assert_eq!(n, big.len());
}

/// The bulk area's room comes back a part at a time while the reader
/// reads on (a release per quarter of it): a large send waiting for it is
/// woken by that release, as a blocking send is, not only once the reader
/// finds the flow empty.
#[tokio::test]
async fn a_large_send_is_woken_by_a_partial_release_of_bulk_room() {
    let (mut a, mut b) = async_pair(&Qos::data().with_ring_bytes(64 << 10).with_max_msg(64 << 10));
    let big = vec![3u8; a.get_ref().inline_max() + 1];
    let sent = fill_with(&mut a, |_| big.as_slice());
    let mut buf = vec![0u8; big.len()];
    let mut read = 0;
    {
        let mut send = pin!(a.send(&big));
        assert!(pending(send.as_mut()).await, "no room");
        // Read one message at a time, each time letting the sender look.
        loop {
            assert!(read < sent, "the sender was not woken before the reader ran dry");
            b.get_mut().try_recv_into(&mut buf).expect("a large message");
            read += 1;
            // A yield lets the runtime poll its reactor (a signal is seen
            // there), then the sender has its look.
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            let woken = tokio::time::timeout(Duration::ZERO, send.as_mut()).await;
            if let Ok(r) = woken {
                r.expect("room came");
                break;
            }
        }
    }
    // Everything arrives, once.
    while b.get_mut().try_recv_into(&mut buf).is_ok() {
        read += 1;
    }
    assert_eq!(read, sent + 1);
}

/// Every future can move between the threads of a multi-thread runtime
/// (`tokio::spawn` asks for `Send`). Compiled, not run.
#[allow(dead_code, clippy::let_underscore_future)]
fn the_futures_are_send(flow: &mut AsyncFlow, listener: &mut AsyncListener, group: &mut AsyncGroup) {
    fn send<T: Send>(_: T) {}
    let mut buf = [0u8; 8];
    send(flow.send(b""));
    send(flow.recv_into(&mut buf));
    send(flow.recv_ref());
    send(flow.loan(1));
    send(flow.call(b"", &mut buf));
    send(flow.reply_and_receive(b"", &mut buf));
    send(flow.receive_more(&mut buf));
    send(listener.accept());
    send(AsyncFlow::alloc("x", &Qos::data()));
    send(group.recv());
}
