//! Batches on flows (`send_batch`, `send_batch_with`, `recv_batch`): every
//! message arrives whole, in order and counted, as with the single forms;
//! what cannot join a batch goes alone; the four forms wait as their names
//! say.

use std::os::fd::AsFd;
use std::thread;
use std::time::Duration;

use ringflow_api::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos, RecvError, SendError};
use ringflow_testkit::TempDir;

/// A connected pair (allocating side, accepting side) granted `qos`.
fn pair(qos: Qos) -> (Flow, Flow, TempDir) {
    let tmp = ringflow_testkit::temp_dir("batch");
    let dir = tmp.path().to_path_buf();
    let mut l = Listener::bind_with("batch", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    let client =
        thread::spawn(move || Flow::alloc_with("batch", &qos, Deadline::Never, FlowOptions::new().runtime_dir(dir)));
    let server = l.accept().unwrap();
    (client.join().unwrap().unwrap(), server, tmp)
}

/// Message `i`: its length and bytes follow from `i` alone.
fn message(i: usize, max: usize) -> Vec<u8> {
    let len = (i * 37) % (max + 1);
    (0..len).map(|k| (i * 31 + k) as u8).collect()
}

#[test]
fn batches_deliver_every_message_whole_in_order_and_counted() {
    // A 4 KiB ring: batches wrap it hundreds of times and meet it full.
    let (mut tx, mut rx, _dir) = pair(Qos::data().with_ring_bytes(4 << 10));
    let max = 200.min(tx.inline_max());
    const N: usize = 20_000;
    let sender = thread::spawn(move || {
        let msgs: Vec<Vec<u8>> = (0..N).map(|i| message(i, max)).collect();
        let mut sent = 0;
        while sent < N {
            // Batches of 1 to 37 messages asked for; the flow takes what fits.
            let ask = &msgs[sent..N.min(sent + 1 + sent % 37)];
            let refs: Vec<&[u8]> = ask.iter().map(|m| &m[..]).collect();
            let n = tx.send_batch(&refs).unwrap();
            assert!((1..=refs.len()).contains(&n));
            sent += n;
        }
        tx
    });
    let mut got = 0;
    while got < N {
        let n = rx
            .recv_batch(50, |m| {
                assert_eq!(m, &message(got, max)[..], "message {got}");
                got += 1;
            })
            .unwrap();
        assert!((1..=50).contains(&n));
    }
    let tx = sender.join().unwrap();
    let (sent, received) = (tx.stats(), rx.stats());
    assert_eq!((sent.sent, received.received), (N as u64, N as u64));
    assert_eq!(sent.bytes_sent, received.bytes_received);
    assert_eq!(received.latency.len() + received.unstamped, N as u64, "one latency per message");
    assert!(matches!(rx.try_recv_batch(8, |_| {}), Err(RecvError::WouldBlock)));
}

#[test]
fn the_zero_copy_batch_fills_exactly_the_messages_it_sends() {
    let (mut tx, mut rx, _dir) = pair(Qos::data().with_ring_bytes(4 << 10));
    let lens: Vec<usize> = (0..500).map(|i| i % 64).collect();
    let mut filled = vec![];
    let n = tx
        .try_send_batch_with(&lens, |i, buf| {
            assert_eq!(buf.len(), lens[i]);
            buf.fill(i as u8);
            filled.push(i);
            true
        })
        .unwrap();
    assert!(n > 1 && n < lens.len(), "a 4 KiB ring takes some of 500 messages: {n}");
    assert_eq!(filled, (0..n).collect::<Vec<_>>(), "fill runs once per message sent, in order");
    let mut seen = 0;
    while seen < n {
        rx.try_recv_batch(usize::MAX, |m| {
            assert_eq!((m.len(), m.iter().all(|&b| b == seen as u8)), (lens[seen], true));
            seen += 1;
        })
        .unwrap();
    }
    assert_eq!(seen, n);
    // `fill` ends the batch: the message it wrote is the last sent.
    let n = tx.try_send_batch_with(&[8; 10], |i, _| i < 3).unwrap();
    assert_eq!(n, 4);
}

#[test]
fn a_bulk_message_goes_alone_on_both_sides() {
    let (mut tx, mut rx, _dir) = pair(Qos::data());
    let big = vec![9u8; tx.inline_max() + 1];
    let msgs: [&[u8]; 4] = [b"a", b"b", &big, b"c"];
    assert_eq!(tx.try_send_batch(&msgs).unwrap(), 2, "the batch stops before the bulk message");
    assert_eq!(tx.try_send_batch(&msgs[2..]).unwrap(), 1, "first, the bulk message is the batch");
    assert_eq!(tx.try_send_batch(&msgs[3..]).unwrap(), 1);
    let mut got: Vec<Vec<u8>> = vec![];
    for expect in [2, 1, 1] {
        assert_eq!(rx.try_recv_batch(8, |m| got.push(m.to_vec())).unwrap(), expect);
    }
    assert_eq!(got, msgs.iter().map(|m| m.to_vec()).collect::<Vec<_>>());
}

#[test]
fn a_message_with_descriptors_is_refused_first_and_ends_a_batch() {
    let (mut tx, mut rx, _dir) = pair(Qos::data());
    let file = std::fs::File::open("/dev/null").unwrap();
    tx.send(b"plain").unwrap();
    tx.send_fds(b"with fd", &[file.as_fd()]).unwrap();
    tx.send(b"after").unwrap();
    let mut got = vec![];
    assert_eq!(rx.try_recv_batch(8, |m| got.push(m.to_vec())).unwrap(), 1);
    assert!(matches!(rx.try_recv_batch(8, |_| {}), Err(RecvError::FdSlots { needed: 1 })), "the message stays");
    let (mut buf, mut slots) = ([0u8; 16], [None]);
    assert_eq!(rx.try_recv_fds(&mut buf, &mut slots).unwrap(), (7, 1));
    assert!(slots[0].is_some());
    assert_eq!(rx.try_recv_batch(8, |m| got.push(m.to_vec())).unwrap(), 1);
    assert_eq!(got, [b"plain".to_vec(), b"after".to_vec()]);
}

#[test]
fn a_full_flow_takes_what_fits_and_the_forms_wait_as_named() {
    let (mut tx, mut rx, _dir) = pair(Qos::data().with_ring_bytes(4 << 10));
    let msg = [1u8; 64];
    let msgs = vec![&msg[..]; 1000];
    let n = tx.try_send_batch(&msgs).unwrap();
    assert!(n > 1 && n < 1000, "{n}");
    assert!(matches!(tx.try_send_batch(&msgs), Err(SendError::WouldBlock)));
    assert!(matches!(tx.send_batch_timeout(&msgs, Duration::from_millis(20)), Err(SendError::TimedOut)));
    assert_eq!(tx.try_send_batch(&[]).unwrap(), 0);
    // A blocked batch sends once the receiver makes room.
    let reader = thread::spawn(move || {
        let mut got = 0;
        while got < n + 1 {
            got += rx.recv_batch_timeout(usize::MAX, |m| assert_eq!(m, &[1u8; 64]), Duration::from_secs(30)).unwrap();
        }
        rx
    });
    assert!(tx.send_batch_deadline(&msgs[..1], Deadline::after(Duration::from_secs(30))).unwrap() == 1);
    let mut rx = reader.join().unwrap();
    assert!(matches!(rx.recv_batch_timeout(8, |_| {}, Duration::from_millis(20)), Err(RecvError::TimedOut)));
    assert_eq!(rx.recv_batch(0, |_| {}).unwrap(), 0, "a batch of none never waits");
}

#[test]
fn a_lossy_flow_drops_a_batch_that_finds_no_room() {
    let (mut tx, _rx, _dir) = pair(Qos::data().with_ring_bytes(4 << 10).with_reliable(false));
    let msg = [1u8; 64];
    let msgs = vec![&msg[..]; 1000];
    let n = tx.send_batch(&msgs).unwrap();
    assert!(n < 1000);
    assert!(matches!(tx.send_batch(&msgs), Err(SendError::Full)), "lossy: never waits for room");
    assert_eq!(tx.stats().dropped, 1);
}

#[test]
fn the_end_of_the_flow_comes_after_every_batched_message() {
    let (mut tx, mut rx, _dir) = pair(Qos::data());
    let msgs = [&b"x"[..]; 10];
    assert_eq!(tx.send_batch(&msgs).unwrap(), 10);
    tx.dealloc_timeout(Duration::ZERO).ok();
    let mut got = 0;
    while got < 10 {
        got += rx.recv_batch(3, |m| assert_eq!(m, b"x")).unwrap();
    }
    assert_eq!(got, 10);
    assert!(matches!(rx.recv_batch(3, |_| {}), Err(RecvError::Closed)));
}
