//! The hot path allocates nothing: send, receive, loan and recv_ref (small
//! and large messages, blocking and nonblocking forms), and calls with
//! their replies (copied, in place, loaned, in pieces, resumed) run under a
//! counting allocator that counts each thread's allocations only.

use std::thread;

use ringflow::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos, RecvError};

#[global_allocator]
static GLOBAL: ringflow_testkit::ThreadCounting = ringflow_testkit::ThreadCounting;

use ringflow_testkit::thread_allocs as allocs;

#[test]
fn send_receive_loan_and_recv_ref_allocate_nothing() {
    let tmp = ringflow_testkit::temp_dir("alloc");
    let dir = tmp.path().to_path_buf();
    let mut l = Listener::bind_with("alloc", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    let d = dir.clone();
    let qos = Qos::data().with_ring_bytes(64 << 10).with_max_msg(1 << 20);
    // The echo side: anything it does is on its own thread, not counted.
    let echo = thread::spawn(move || {
        let mut f = Flow::alloc_with("alloc", &qos, Deadline::Never, FlowOptions::new().runtime_dir(d)).unwrap();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match f.recv_into(&mut buf) {
                Ok(n) => f.send(&buf[..n]).unwrap(),
                Err(RecvError::Closed) => break,
                Err(e) => panic!("{e}"),
            }
        }
    });
    let mut flow = l.accept().unwrap();
    let small = [5u8; 64];
    let large = vec![9u8; 300_000];
    let mut buf = vec![0u8; 1 << 20];
    let mut exercise = |flow: &mut Flow| {
        for i in 0..200 {
            let msg: &[u8] = if i % 10 == 0 { &large } else { &small };
            match i % 4 {
                0 => flow.send(msg).unwrap(),
                1 => flow.send_deadline(msg, Deadline::Never).unwrap(),
                2 => flow.send_vectored(&[&msg[..1], &msg[1..]]).unwrap(),
                _ => {
                    let mut loan = flow.loan(msg.len()).unwrap();
                    loan.copy_from_slice(msg);
                    loan.send().unwrap();
                }
            }
            if i % 2 == 0 {
                let n = flow.recv_into(&mut buf).unwrap();
                assert_eq!(n, msg.len());
            } else {
                let m = flow.recv_ref().unwrap();
                assert_eq!(m.len(), msg.len());
            }
            assert!(matches!(flow.try_recv_into(&mut buf), Err(RecvError::WouldBlock)));
        }
    };
    exercise(&mut flow); // warm-up: lazily initialised runtime state
    let before = allocs();
    exercise(&mut flow);
    let during = allocs() - before;
    drop(flow);
    echo.join().unwrap();
    assert_eq!(during, 0, "the hot path allocated {during} times");
}

#[test]
fn calls_and_replies_allocate_nothing() {
    use ringflow::CallError;
    const ROUND: u64 = 200;
    let tmp = ringflow_testkit::temp_dir("alloc-call");
    let dir = tmp.path().to_path_buf();
    let mut l = Listener::bind_with("alloc", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    let d = dir.clone();
    let qos = Qos::data().with_ring_bytes(64 << 10).with_max_msg(1 << 20);
    let client = thread::spawn(move || {
        Flow::alloc_with("alloc", &qos, Deadline::Never, FlowOptions::new().runtime_dir(d)).unwrap()
    });
    let mut server = l.accept().unwrap();
    let mut flow = client.join().unwrap();
    // The server: a warm-up round, then a counted one, on its own thread;
    // each reply in a piece and a last frame, replies as large as requests.
    let server = thread::spawn(move || {
        let (mut buf, mut out) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        let mut len = server.receive_request(&mut buf).unwrap();
        let mut before = 0;
        for i in 0..2 * ROUND {
            if i == ROUND {
                before = allocs();
            }
            server.send_part(&buf[..1]).unwrap();
            out[..len - 1].copy_from_slice(&buf[1..len]);
            let reply = &out[..len - 1];
            let r = if i % 2 == 0 {
                server.reply_and_receive(reply, &mut buf)
            } else {
                server.reply(reply).unwrap();
                server.receive_request(&mut buf)
            };
            match r {
                Ok(n) => len = n,
                Err(CallError::OverDisconnected) => return allocs() - before,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the client made more calls than expected");
    });
    let small = [5u8; 64];
    let large = vec![9u8; 300_000];
    let mut buf = vec![0u8; 1 << 20];
    let mut exercise = |flow: &mut Flow| {
        for i in 0..ROUND as usize {
            let msg: &[u8] = if i % 10 == 0 { &large } else { &small };
            match i % 4 {
                0 => assert_eq!(flow.call(msg, &mut buf).unwrap(), msg.len()),
                1 => {
                    // Piece by piece, in place.
                    let mut got = flow.call_ref(msg).unwrap().len();
                    got += flow.receive_more_ref().unwrap().len();
                    assert_eq!(got, msg.len());
                }
                2 => {
                    let mut loan = flow.loan_request(msg.len()).unwrap();
                    loan.copy_from_slice(msg);
                    loan.send().unwrap();
                    assert_eq!(flow.receive_more(&mut buf).unwrap(), msg.len());
                }
                _ => {
                    // A buffer too small, then resumed.
                    let first = match flow.call_deadline(msg, &mut buf[..10], Deadline::Never) {
                        Err(CallError::RecvMoreData { received }) => received,
                        other => panic!("{other:?}"),
                    };
                    assert_eq!(first + flow.receive_more(&mut buf).unwrap(), msg.len());
                }
            }
        }
    };
    exercise(&mut flow); // warm-up: lazily initialised runtime state
    let before = allocs();
    exercise(&mut flow);
    let during = allocs() - before;
    drop(flow);
    let server_during = server.join().unwrap();
    assert_eq!(during, 0, "the client's calls allocated {during} times");
    assert_eq!(server_during, 0, "the server's replies allocated {server_during} times");
}
