//! Flow semantics between two threads of one process (the same code paths as
//! between processes: a Unix socket, a memfd, futexes; the workspace's
//! tests/ run them across real processes and crashes).

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::thread;
use std::time::{Duration, Instant};

use ringflow_testkit::{thread_id, wait_until_blocked, TempDir};

use ringflow_api::{
    AllocError, BindError, Deadline, Flow, FlowOptions, FlowSet, Interest, Listener, ListenerOptions, Qos, QosLimits,
    RecvError, SendError, SetError, REQUEST_REPLY_WINDOW,
};

fn test_dir() -> TempDir {
    ringflow_testkit::temp_dir("api")
}

/// A connected pair: (allocating side, accepting side).
fn pair_with(qos: Qos, limits: QosLimits) -> (Flow, Flow, TempDir) {
    let tmp = test_dir();
    let dir = tmp.path().to_path_buf();
    let mut l = Listener::bind_with("pair", ListenerOptions::new().runtime_dir(&dir).limits(limits)).unwrap();
    let d2 = dir.clone();
    let client =
        thread::spawn(move || Flow::alloc_with("pair", &qos, Deadline::Never, FlowOptions::new().runtime_dir(d2)));
    let server = l.accept().unwrap();
    (client.join().unwrap().unwrap(), server, tmp)
}

fn pair() -> (Flow, Flow) {
    let (a, b, _) = pair_with(Qos::data().with_ring_bytes(64 << 10), QosLimits::default());
    (a, b)
}

#[test]
fn names_are_validated_and_unbound_names_are_not_found() {
    let tmp = test_dir();
    let dir = tmp.path().to_path_buf();
    let opts = || FlowOptions::new().runtime_dir(&dir);
    for bad in ["", "a/b", &"x".repeat(300)] {
        assert!(matches!(Flow::alloc_with(bad, &Qos::data(), Deadline::Now, opts()), Err(AllocError::InvalidName(_))));
        assert!(matches!(
            Listener::bind_with(bad, ListenerOptions::new().runtime_dir(&dir)),
            Err(BindError::InvalidName(_))
        ));
    }
    match Flow::alloc_with("nobody-here", &Qos::data(), Deadline::Never, opts()) {
        Err(e @ AllocError::NotFound { .. }) => {
            let AllocError::NotFound { name, dir: looked_in } = &e else { unreachable!() };
            assert_eq!(name, "nobody-here");
            // It names the directory it looked in, in its text too.
            let looked_in = looked_in.as_deref().expect("a local lookup names its directory");
            assert_eq!(looked_in.canonicalize().unwrap(), dir.canonicalize().unwrap());
            let text = e.to_string();
            assert!(text.contains("\"nobody-here\"") && text.contains(&*looked_in.to_string_lossy()), "{text}");
        }
        other => panic!("{other:?}"),
    }
    // A host that does not resolve is said as such, not as a bad target
    // (RFC 6761: .invalid never resolves); a malformed one is InvalidTarget.
    match Flow::alloc_with("svc@nosuchhost.invalid:7000", &Qos::data(), Deadline::Never, opts()) {
        Err(e @ AllocError::UnresolvedHost { .. }) => {
            assert!(matches!(&e, AllocError::UnresolvedHost { host, .. } if host == "nosuchhost.invalid"));
            assert!(e.to_string().contains("\"nosuchhost.invalid\" does not resolve"), "{e}");
        }
        other => panic!("{:?}", other.map(|_| "a flow")),
    }
    for malformed in ["svc@nosuchhost", "svc@bad host:7000", "svc@host:port"] {
        let r = Flow::alloc_with(malformed, &Qos::data(), Deadline::Never, opts());
        assert!(matches!(r, Err(AllocError::InvalidTarget { .. })), "{malformed}: {:?}", r.map(|_| "a flow"));
    }
    let _l = Listener::bind_with("taken", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    assert!(matches!(
        Listener::bind_with("taken", ListenerOptions::new().runtime_dir(&dir)),
        Err(BindError::InUse { .. })
    ));
}

#[test]
fn messages_arrive_in_order_in_every_form() {
    let (mut a, mut b) = pair();
    assert_eq!(a.qos(), b.qos(), "both sides hold the granted QoS");
    a.send(b"copy").unwrap();
    a.send_vectored(&[b"gat", b"her"]).unwrap();
    let mut loan = a.loan(4).unwrap();
    loan.copy_from_slice(b"loan");
    loan.send().unwrap();
    {
        let mut abandoned = a.loan(9).unwrap();
        abandoned.fill(0xee); // never sent: leaves no trace
    }
    a.try_send(b"try").unwrap();
    let mut buf = [0u8; 16];
    let n = b.recv_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"copy");
    assert_eq!(&*b.recv_ref().unwrap(), b"gather");
    assert_eq!(&*b.try_recv_ref().unwrap(), b"loan");
    let n = b.recv_into_timeout(&mut buf, Duration::from_secs(5)).unwrap();
    assert_eq!(&buf[..n], b"try");
    assert!(matches!(b.try_recv_into(&mut buf), Err(RecvError::WouldBlock)));
    // And back the other way.
    b.send(b"reply").unwrap();
    assert_eq!(&*a.recv_ref().unwrap(), b"reply");
    assert_eq!((a.stats().sent, b.stats().received), (4, 4));
}

/// With send windows on both sides (request/reply), round trips of every
/// size and then bursts far larger than the window (and the ring) arrive
/// whole and in order: early wraps change where messages go, never what
/// arrives, and a burst waits for the peer instead of overwriting.
#[test]
fn send_windows_keep_round_trips_and_bursts_whole() {
    let (mut a, mut b, _) = pair_with(Qos::data().with_ring_bytes(4 << 10), QosLimits::default());
    a.set_send_window(Some(REQUEST_REPLY_WINDOW));
    b.set_send_window(Some(REQUEST_REPLY_WINDOW));
    let msg = |i: usize| -> Vec<u8> { (0..1 + i * 7 % 300).map(|j| (i + j) as u8).collect() };
    const ROUND_TRIPS: usize = 2000;
    const BURST: usize = 500;
    let echo = thread::spawn(move || {
        for _ in 0..ROUND_TRIPS {
            let request = b.recv_ref().unwrap().to_vec();
            b.send(&request).unwrap();
        }
        for i in 0..BURST {
            assert_eq!(&*b.recv_ref().unwrap(), &msg(i)[..], "burst message {i}");
        }
        b
    });
    for i in 0..ROUND_TRIPS {
        a.send(&msg(i)).unwrap();
        assert_eq!(&*a.recv_ref().unwrap(), &msg(i)[..], "round trip {i}");
    }
    for i in 0..BURST {
        a.send(&msg(i)).unwrap();
    }
    let b = echo.join().unwrap();
    assert_eq!((a.stats().sent, b.stats().received), ((ROUND_TRIPS + BURST) as u64, (ROUND_TRIPS + BURST) as u64));
}

#[test]
fn a_small_buffer_keeps_the_message() {
    let (mut a, mut b) = pair();
    a.send(&[7u8; 100]).unwrap();
    let mut small = [0u8; 10];
    assert!(matches!(b.recv_into(&mut small), Err(RecvError::TooSmall { needed: 100 })));
    let mut big = [0u8; 100];
    assert_eq!(b.recv_into(&mut big).unwrap(), 100);
    assert_eq!(big, [7u8; 100]);
}

#[test]
fn large_messages_travel_in_place_through_the_bulk_ring() {
    let qos = Qos::data().with_ring_bytes(64 << 10).with_max_msg(16 << 20);
    let (mut a, mut b, _) = pair_with(qos, QosLimits::default());
    assert_eq!(a.qos().max_msg, 16 << 20);
    let big: Vec<u8> = (0..(16 << 20)).map(|i: usize| (i * 31 % 251) as u8).collect();
    let sender = thread::spawn(move || {
        for round in 0..3u8 {
            let mut loan = a.loan(big.len()).unwrap();
            loan.copy_from_slice(&big);
            loan[0] = round;
            loan.send().unwrap();
            a.send(&[round; 10]).unwrap();
        }
        a
    });
    for round in 0..3u8 {
        let m = b.recv_ref().unwrap();
        assert_eq!(m.len(), 16 << 20);
        assert_eq!(m[0], round);
        assert!(m[1..].iter().enumerate().all(|(i, &x)| x == ((i + 1) * 31 % 251) as u8));
        drop(m);
        assert_eq!(&*b.recv_ref().unwrap(), &[round; 10]);
    }
    let mut a = sender.join().unwrap();
    assert!(matches!(a.send(&vec![0u8; (16 << 20) + 1]), Err(SendError::TooLarge { .. })));
}

#[test]
fn deadlines_now_past_and_never() {
    let (mut a, mut b) = pair();
    let mut buf = [0u8; 8];
    assert!(matches!(b.recv_into_deadline(&mut buf, Deadline::Now), Err(RecvError::WouldBlock)));
    let past = Instant::now() - Duration::from_millis(1);
    assert!(matches!(b.recv_into_deadline(&mut buf, Deadline::At(past)), Err(RecvError::TimedOut)));
    assert!(matches!(b.recv_into_timeout(&mut buf, Duration::from_millis(20)), Err(RecvError::TimedOut)));
    assert_eq!(Deadline::from_millis(0), Some(Deadline::Now));
    assert_eq!(Deadline::from_millis(-1), Some(Deadline::Never));
    assert_eq!(Deadline::from_millis(-7), None);
    // Never is woken by data sent once it sleeps.
    let receiver = thread_id();
    let t = thread::spawn(move || {
        wait_until_blocked(receiver);
        a.send(b"late").unwrap();
        a
    });
    let n = b.recv_into_deadline(&mut buf, Deadline::Never).unwrap();
    assert_eq!(&buf[..n], b"late");
    t.join().unwrap();
}

#[test]
fn a_full_reliable_flow_blocks_and_a_lossy_one_refuses() {
    let (mut a, mut b) = pair();
    let msg = [1u8; 1000];
    let mut sent = 0;
    while a.try_send(&msg).is_ok() {
        sent += 1;
    }
    assert!(matches!(a.try_send(&msg), Err(SendError::WouldBlock)));
    assert!(matches!(a.send_timeout(&msg, Duration::from_millis(10)), Err(SendError::TimedOut)));
    // A blocked send completes once the receiver reads.
    let t = thread::spawn(move || {
        a.send(&msg).unwrap();
        a
    });
    let mut buf = [0u8; 1000];
    for _ in 0..=sent {
        b.recv_into(&mut buf).unwrap();
    }
    t.join().unwrap();

    let lossy = Qos::voice().with_ring_bytes(16 << 10);
    let (mut a, _b, _) = pair_with(lossy, QosLimits::default());
    assert!(!a.qos().reliable);
    let mut refused = 0;
    for _ in 0..100 {
        match a.send(&msg) {
            Ok(()) => {}
            Err(SendError::Full) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused > 0);
    assert_eq!(a.stats().dropped, refused);
}

#[test]
fn qos_is_negotiated_down_to_the_listeners_limits() {
    let limits = QosLimits { max_msg: 1 << 16, max_ring_bytes: 16 << 10 };
    let (a, b, _) = pair_with(Qos::video(), limits);
    assert_eq!(a.qos(), b.qos());
    assert_eq!((a.qos().max_msg, a.qos().ring_bytes), (1 << 16, 16 << 10));
    assert!(!a.qos().reliable);
}

#[test]
fn dealloc_lingers_until_the_peer_read_everything_then_end_of_flow() {
    let (mut a, mut b) = pair();
    for i in 0..50u32 {
        a.send(&i.to_le_bytes()).unwrap();
    }
    let lingering = thread_id();
    let reader = thread::spawn(move || {
        // Read only once dealloc lingers.
        wait_until_blocked(lingering);
        let mut got = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            match b.recv_into(&mut buf) {
                Ok(_) => got.push(u32::from_le_bytes(buf)),
                Err(RecvError::Closed) => return got,
                Err(e) => panic!("{e}"),
            }
        }
    });
    a.dealloc_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(reader.join().unwrap(), (0..50).collect::<Vec<_>>());
}

#[test]
fn dealloc_returns_once_everything_was_read_even_if_the_peer_then_idles() {
    let (mut a, mut b) = pair();
    for i in 0..3u8 {
        a.send(&[i]).unwrap();
    }
    let mut buf = [0u8; 1];
    for _ in 0..3 {
        b.recv_into(&mut buf).unwrap();
    }
    // b keeps its end open and never receives again.
    a.dealloc_timeout(Duration::from_secs(10)).unwrap();
    drop(b);
}

#[test]
fn dealloc_times_out_when_nobody_reads() {
    let (mut a, _b) = pair();
    a.send(b"unread").unwrap();
    let r = a.dealloc_timeout(Duration::from_millis(20));
    assert_eq!(r, Err(ringflow_api::DeallocError::TimedOut { unconsumed: 1 }));
}

#[test]
fn dropping_a_flow_ends_it_after_the_last_message() {
    let (mut a, mut b) = pair();
    a.send(b"last").unwrap();
    drop(a);
    assert_eq!(&*b.recv_ref().unwrap(), b"last");
    assert!(matches!(b.recv_ref(), Err(RecvError::Closed)));
    assert!(matches!(b.send(b"x"), Err(SendError::Closed)));
}

#[test]
fn descriptors_travel_with_messages() {
    let (mut a, mut b) = pair();
    let (r, w) = std::io::pipe().unwrap();
    a.try_send_fds(b"fd", &[w.as_fd()]).unwrap();
    drop(w);
    let mut buf = [0u8; 8];
    assert!(matches!(b.recv_into(&mut buf), Err(RecvError::FdSlots { needed: 1 })), "no slots: kept");
    let mut slots: [Option<OwnedFd>; 2] = [None, None];
    let (n, nfds) = b.recv_fds_timeout(&mut buf, &mut slots, Duration::from_secs(5)).unwrap();
    assert_eq!((&buf[..n], nfds), (&b"fd"[..], 1));
    let w2 = std::fs::File::from(slots[0].take().unwrap());
    use std::io::{Read, Write};
    (&w2).write_all(b"through").unwrap();
    drop(w2);
    let mut s = String::new();
    (&r).read_to_string(&mut s).unwrap();
    assert_eq!(s, "through");
}

#[test]
fn a_flow_set_wakes_for_the_flow_that_has_data() {
    ringflow_testkit::require_futex_waitv!();
    let (a1, b1) = pair();
    let (mut a2, b2) = pair();
    let mut set = FlowSet::new();
    let k1 = set.insert(b1, Interest::Readable);
    let k2 = set.insert(b2, Interest::Readable);
    let mut ready = Vec::new();
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));
    assert!(matches!(set.wait_timeout(&mut ready, Duration::from_millis(10)), Err(SetError::TimedOut)));
    let waiter = thread_id();
    let t = thread::spawn(move || {
        wait_until_blocked(waiter);
        a2.send(b"two").unwrap();
        a2
    });
    assert_eq!(set.wait(&mut ready).unwrap(), 1);
    assert_eq!(ready[0].key, k2);
    assert!(ready[0].readable && !ready[0].closed);
    assert_eq!(&*set.get_mut(k2).unwrap().recv_ref().unwrap(), b"two");
    let _a2 = t.join().unwrap();
    // A peer that leaves makes its flow ready too.
    drop(a1);
    set.wait_timeout(&mut ready, Duration::from_secs(10)).unwrap();
    assert_eq!(ready.iter().map(|r| (r.key, r.closed)).collect::<Vec<_>>(), vec![(k1, true)]);
}

#[test]
fn the_readiness_fd_becomes_readable_when_a_message_arrives() {
    let (mut a, mut b) = pair();
    let fd = b.as_raw_fd();
    let poll = |timeout_ms| {
        let mut p = libc_pollfd(fd);
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout_ms) }
    };
    assert_eq!(poll(0), 1, "starts readable");
    assert!(matches!(b.try_recv_ref(), Err(RecvError::WouldBlock)));
    assert_eq!(poll(0), 0, "a WouldBlock resets it");
    a.send(b"ping").unwrap();
    assert_eq!(poll(5000), 1);
    assert_eq!(&*b.try_recv_ref().unwrap(), b"ping");
    // The end of the flow makes it readable too.
    assert!(matches!(b.try_recv_ref(), Err(RecvError::WouldBlock)));
    assert_eq!(poll(0), 0);
    drop(a);
    assert_eq!(poll(5000), 1);
    assert!(matches!(b.try_recv_ref(), Err(RecvError::Closed)));
}

fn libc_pollfd(fd: i32) -> libc::pollfd {
    libc::pollfd { fd, events: libc::POLLIN, revents: 0 }
}

#[test]
fn rings_can_live_in_caller_supplied_memory() {
    use ringflow_api::shm::{HugePages, Segment, SegmentOptions};
    let tmp = test_dir();
    let dir = tmp.path().to_path_buf();
    let qos = Qos::data().with_ring_bytes(64 << 10).with_max_msg(1 << 20);
    let len = Flow::segment_len_for(&qos).unwrap();
    // Huge pages when the host has them reserved, normal pages otherwise.
    let seg = Segment::create(&SegmentOptions::new("caller-owned", len).huge_pages(HugePages::IfAvailable)).unwrap();
    let mut l = Listener::bind_with("mem", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    let d2 = dir.clone();
    let client = thread::spawn(move || {
        Flow::alloc_with("mem", &qos, Deadline::Never, FlowOptions::new().runtime_dir(d2).memory(seg))
    });
    let mut b = l.accept().unwrap();
    let mut a = client.join().unwrap().unwrap();
    a.send(&[1u8; 500_000]).unwrap();
    assert_eq!(b.recv_ref().unwrap().len(), 500_000);
    b.send(b"back").unwrap();
    assert_eq!(&*a.recv_ref().unwrap(), b"back");

    // Memory too small for the granted QoS is a typed error, not a crash.
    let small = Segment::create(&SegmentOptions::new("too-small", 4096)).unwrap();
    let d3 = dir.clone();
    let client = thread::spawn(move || {
        Flow::alloc_with("mem", &qos, Deadline::Never, FlowOptions::new().runtime_dir(d3).memory(small))
    });
    // The listener answers that peer, which gives up; the listener refuses
    // nothing on its side and waits on for the next one.
    let guard = Instant::now() + Duration::from_secs(30);
    while !client.is_finished() {
        assert!(Instant::now() < guard, "the client never gave up");
        let _ = l.accept_timeout(Duration::from_millis(10));
    }
    assert!(matches!(client.join().unwrap(), Err(AllocError::Memory(_))));
}

#[test]
fn passing_descriptors_never_blocks_a_try_send_on_a_peer_that_does_not_read() {
    // A large ring, so the control socket's queue (one packet per message
    // with descriptors) fills before the ring does.
    let (mut a, _b, _) = pair_with(Qos::data().with_ring_bytes(16 << 20), QosLimits::default());
    let (_r, w) = std::io::pipe().unwrap();
    let mut sent = 0;
    let err = loop {
        match a.try_send_fds(b"fd", &[w.as_fd()]) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
        assert!(sent < 1_000_000, "neither the ring nor the socket ever filled");
    };
    assert!(matches!(err, SendError::WouldBlock), "{err:?}");
    assert!(sent > 0);
    assert!(matches!(a.send_fds_timeout(b"fd", &[w.as_fd()], Duration::from_millis(20)), Err(SendError::TimedOut)));
}

#[test]
fn an_in_process_pair_behaves_like_an_allocated_flow() {
    ringflow_testkit::require_futex_waitv!();
    // Flow::pair keeps its statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let qos = Qos::data().with_ring_bytes(64 << 10);
    let (mut a, mut b) = Flow::pair(&qos).unwrap();
    assert_eq!(a.qos(), b.qos());
    a.send(b"there").unwrap();
    assert_eq!(&*b.recv_ref().unwrap(), b"there");
    b.send(&vec![9u8; 300_000]).unwrap();
    assert_eq!(a.recv_ref().unwrap().len(), 300_000);
    let mut set = FlowSet::new();
    let key = set.insert(b, Interest::Readable);
    drop(a);
    let mut ready = Vec::new();
    set.wait_timeout(&mut ready, Duration::from_secs(10)).unwrap();
    assert!(ready.iter().any(|r| r.key == key && r.closed));
    assert!(matches!(set.get_mut(key).unwrap().recv_ref(), Err(RecvError::Closed)));
}
