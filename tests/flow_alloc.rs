//! The hot path allocates nothing: send, receive, loan and recv_ref (small
//! and large messages, blocking and nonblocking forms) run under a counting
//! allocator that counts this thread's allocations only.

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
