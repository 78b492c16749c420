//! A group member's readiness descriptor (epoll wakes on a message and on a
//! view, and reads empty once the member is drained; a loan still being
//! written is no event), group members and flows waited on in one
//! `FlowSet`, and a member that leaves or drops taking its watcher thread
//! and descriptor with it.
//!
//! The tests run one at a time (`SERIAL`): the last one counts this
//! process's descriptors and threads.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use ringflow_api::{Event, Flow, FlowSet, Group, GroupOptions, GroupRecvError, Interest, Qos, SetError, SlowMember};
use ringflow_testkit::{thread_id, wait_for, wait_until_blocked};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn opts() -> GroupOptions {
    GroupOptions::new().log_capacity(1 << 16).max_message(4096).max_members(8).spin(Duration::ZERO)
}

/// A hang guard for every wait, never a measurement.
const GUARD_MS: i32 = 60_000;

struct Epoll(OwnedFd);

impl Epoll {
    fn on(fd: RawFd) -> Epoll {
        // SAFETY: plain syscall; checked below.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(ep >= 0, "epoll_create1: {}", std::io::Error::last_os_error());
        // SAFETY: a fresh descriptor we own.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: 7 };
        // SAFETY: both descriptors are open; the kernel reads `ev` during the call.
        let r = unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        assert_eq!(r, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
        Epoll(ep)
    }

    /// Whether the descriptor is readable within `ms` (0: now).
    fn wait(&self, ms: i32) -> bool {
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }];
        loop {
            // SAFETY: one entry for the kernel to fill.
            let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), ev.as_mut_ptr(), 1, ms) };
            if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            assert!(n >= 0, "epoll_wait: {}", std::io::Error::last_os_error());
            return n == 1 && ev[0].u64 == 7 && ev[0].events & libc::EPOLLIN as u32 != 0;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Got {
    Msg(u64, Vec<u8>),
    View(usize),
}

/// Receives until `WouldBlock` (which re-arms the descriptor).
fn drain(g: &mut Group) -> Vec<Got> {
    let mut out = Vec::new();
    loop {
        match g.try_recv() {
            Ok(Event::Message(mut m)) => {
                let mut b = vec![0; m.len()];
                m.read_into(&mut b).unwrap();
                out.push(Got::Msg(m.sender().id, b));
            }
            Ok(Event::View(v)) => out.push(Got::View(v.members.len())),
            Ok(Event::Lost { count }) => panic!("a Block group lost {count}"),
            Err(GroupRecvError::WouldBlock) => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn epoll_wakes_on_a_message_and_a_view_and_reads_empty_once_drained() {
    let _serial = serial();
    ringflow_testkit::isolate_runtime_dir();
    let mut a = Group::join("r-epoll", &opts()).expect("create");
    let fd = a.ready_fd().expect("watcher").as_raw_fd();
    assert_eq!(fd, a.as_raw_fd());
    let ep = Epoll::on(fd);
    // The first event, a's own join view, is there already.
    assert!(ep.wait(GUARD_MS), "the join view makes the descriptor readable");
    assert_eq!(drain(&mut a), vec![Got::View(1)]);
    wait_for("the descriptor to read empty once drained", || !ep.wait(0));

    // A view: b joins while a sleeps in epoll_wait.
    let (hand, handed) = mpsc::channel();
    let sleeper = thread_id();
    let joiner = thread::spawn(move || {
        wait_until_blocked(sleeper);
        hand.send(Group::join("r-epoll", &opts()).expect("join")).unwrap();
    });
    assert!(ep.wait(GUARD_MS), "b's join wakes a's epoll");
    joiner.join().unwrap();
    let mut b = handed.recv().unwrap();
    assert_eq!(drain(&mut a), vec![Got::View(2)]);
    wait_for("the descriptor to read empty once drained", || !ep.wait(0));

    // A message from another member while a sleeps.
    let idb = b.local_member().id;
    let sender = thread::spawn(move || {
        wait_until_blocked(sleeper);
        b.mcast(b"hello").unwrap();
        b
    });
    assert!(ep.wait(GUARD_MS), "b's message wakes a's epoll");
    let mut b = sender.join().unwrap();
    assert_eq!(drain(&mut a), vec![Got::Msg(idb, b"hello".to_vec())]);
    wait_for("the descriptor to read empty once drained", || !ep.wait(0));

    // A loan being written is no event; its send is.
    let mut loan = b.loan(5).unwrap();
    loan.write(0, b"later");
    assert!(!ep.wait(0), "a claim not yet committed made the descriptor readable");
    assert!(matches!(a.try_recv(), Err(GroupRecvError::WouldBlock)));
    loan.send().unwrap();
    assert!(ep.wait(GUARD_MS), "the loan's send wakes a's epoll");
    assert_eq!(drain(&mut a), vec![Got::Msg(idb, b"later".to_vec())]);
    wait_for("the descriptor to read empty once drained", || !ep.wait(0));

    // Several events, one wake: the descriptor stays readable until a
    // receive finds nothing.
    b.mcast(b"1").unwrap();
    b.mcast(b"2").unwrap();
    assert!(ep.wait(GUARD_MS));
    assert!(matches!(a.try_recv(), Ok(Event::Message(_))));
    assert!(ep.wait(0), "readable while an event is left");
    assert_eq!(drain(&mut a), vec![Got::Msg(idb, b"2".to_vec())]);
    wait_for("the descriptor to read empty once drained", || !ep.wait(0));
    drop(b);
    assert!(ep.wait(GUARD_MS), "b's leave view wakes a's epoll");
    assert_eq!(drain(&mut a), vec![Got::View(1)]);
    a.leave().expect("leave");
}

#[test]
fn a_flow_set_reports_a_flow_and_a_group_member_each_when_ready() {
    ringflow_testkit::require_futex_waitv!();
    let _serial = serial();
    ringflow_testkit::isolate_runtime_dir();
    let (mine, mut peer) = Flow::pair(&Qos::data().with_ring_bytes(4096)).expect("flow pair");
    let mut set = FlowSet::new();
    let kf = set.insert(mine, Interest::Readable);
    let kg = set.insert_group(Group::join("r-set", &opts()).expect("create"), Interest::Readable);
    assert_ne!(kf, kg);
    let mut ready = Vec::new();
    // The member's join view is waiting.
    assert_eq!(set.try_wait(&mut ready).unwrap(), 1);
    assert_eq!((ready[0].key, ready[0].readable, ready[0].closed), (kg, true, false));
    assert_eq!(drain(set.get_group_mut(kg).unwrap()), vec![Got::View(1)]);
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));

    // A flow message while the set sleeps: only the flow is ready.
    let sleeper = thread_id();
    let writer = thread::spawn(move || {
        wait_until_blocked(sleeper);
        peer.send(b"flow").unwrap();
        peer
    });
    assert_eq!(set.wait_timeout(&mut ready, Duration::from_secs(60)).unwrap(), 1);
    let _peer = writer.join().unwrap();
    assert_eq!((ready[0].key, ready[0].readable), (kf, true));
    let mut buf = [0u8; 16];
    let n = set.get_mut(kf).unwrap().try_recv_into(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"flow");
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));

    // Another member joins while the set sleeps: the member is ready.
    let joiner = thread::spawn(move || {
        wait_until_blocked(sleeper);
        Group::join("r-set", &opts()).expect("join")
    });
    assert_eq!(set.wait_timeout(&mut ready, Duration::from_secs(60)).unwrap(), 1);
    let mut b = joiner.join().unwrap();
    assert_eq!((ready[0].key, ready[0].readable), (kg, true));
    assert_eq!(drain(set.get_group_mut(kg).unwrap()), vec![Got::View(2)]);
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));

    // A loan being written is no event; its send, while the set sleeps, is.
    let idb = b.local_member().id;
    let mut loan = b.loan(4).unwrap();
    loan.write(0, b"grp!");
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));
    thread::scope(|s| {
        let sender = s.spawn(move || {
            wait_until_blocked(sleeper);
            loan.send().unwrap();
        });
        assert_eq!(set.wait_timeout(&mut ready, Duration::from_secs(60)).unwrap(), 1);
        sender.join().unwrap();
    });
    assert_eq!((ready[0].key, ready[0].readable), (kg, true));
    assert_eq!(drain(set.get_group_mut(kg).unwrap()), vec![Got::Msg(idb, b"grp!".to_vec())]);

    // Keys hold what they held: a flow's key gives no group and back.
    assert!(set.get_group_mut(kf).is_none() && set.get_mut(kg).is_none());
    assert!(set.remove(kg).is_none() && set.remove_group(kf).is_none());
    assert_eq!(set.len(), 2);
    let a = set.remove_group(kg).expect("the member back");
    assert_eq!(set.len(), 1);
    drop(b);
    a.leave().expect("leave");
}

/// A Block group: the member is writable while a largest message fits, and
/// waking it for room works like a flow's.
#[test]
fn a_flow_set_waits_for_room_in_a_group() {
    ringflow_testkit::require_futex_waitv!();
    let _serial = serial();
    ringflow_testkit::isolate_runtime_dir();
    let mut set = FlowSet::new();
    let ka = set.insert_group(Group::join("r-room", &opts()).expect("create"), Interest::Writable);
    let mut b = Group::join("r-room", &opts()).expect("join");
    let mut ready = Vec::new();
    assert_eq!(set.try_wait(&mut ready).unwrap(), 1);
    assert_eq!((ready[0].key, ready[0].writable, ready[0].readable), (ka, true, false));
    // Fill the log until a largest message no longer fits (b does not read).
    let a = set.get_group_mut(ka).unwrap();
    while a.try_mcast(&[0u8; 1024]).is_ok() {}
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));
    // b reads while the set sleeps; a, reading too, frees the rest.
    let sleeper = thread_id();
    let reader = thread::spawn(move || {
        wait_until_blocked(sleeper);
        drain(&mut b);
        b
    });
    // a's own cursor holds the log too: drain it first, from this thread.
    drain(set.get_group_mut(ka).unwrap());
    assert_eq!(set.wait_timeout(&mut ready, Duration::from_secs(60)).unwrap(), 1);
    assert_eq!((ready[0].key, ready[0].writable), (ka, true));
    let b = reader.join().unwrap();
    drop(b);
    set.remove_group(ka).unwrap().leave().expect("leave");
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn ready_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == "ringflow-ready")
        .count()
}

#[test]
fn leaving_or_dropping_a_member_takes_its_watcher_and_descriptor_along() {
    let _serial = serial();
    ringflow_testkit::isolate_runtime_dir();
    // Warm up what a process sets up once.
    let g = Group::join("r-fds", &opts()).unwrap();
    let _ = g.as_fd();
    g.leave().unwrap();
    let before = open_fds();
    wait_for("no watcher left from before", || ready_threads() == 0);
    for round in 0..4 {
        let mut a = Group::join("r-fds", &opts()).unwrap();
        let b = Group::join("r-fds", &opts()).unwrap();
        let ep = Epoll::on(a.as_raw_fd());
        let _ = b.as_fd();
        wait_for("one watcher per member that asked", || ready_threads() == 2);
        assert!(ep.wait(GUARD_MS));
        drain(&mut a);
        drop(ep);
        // Leave one, drop the other, in both orders (the keeper moves).
        if round % 2 == 0 {
            a.leave().unwrap();
            drop(b);
        } else {
            drop(b);
            drop(a);
        }
        wait_for("no watcher to outlive its member", || ready_threads() == 0);
    }
    // The keepers' sockets close as their last member goes; wait for the
    // agent threads to finish with theirs.
    wait_for("the descriptors to be back as they were", || open_fds() == before);
}

/// Members that read free the log for senders (a receive publishes its
/// cursor before it would wait and as it reads): a Block group carries
/// many logs' worth of messages, never stuck after the first.
#[test]
fn a_block_group_carries_many_logs_worth_when_members_read() {
    let _serial = serial();
    ringflow_testkit::isolate_runtime_dir();
    let mut a = Group::join("r-laps", &opts()).expect("create");
    let mut b = Group::join("r-laps", &opts()).expect("join");
    let ida = a.local_member().id;
    let payload = [9u8; 1000];
    let mut got = 0;
    // 64 KiB of log; 640 KiB of messages.
    for i in 0..640 {
        a.mcast_timeout(&payload, Duration::from_secs(60)).unwrap_or_else(|e| panic!("message {i}: {e}"));
        for g in [&mut a, &mut b] {
            for e in drain(g) {
                if let Got::Msg(from, bytes) = e {
                    assert_eq!((from, bytes.len()), (ida, payload.len()));
                    got += 1;
                }
            }
        }
    }
    assert_eq!(got, 2 * 640);
    drop(b);
    a.leave().expect("leave");
}

/// A member blocked in `recv` while another writes a loan sleeps until the
/// loan is sent (it used to spin on the claimed tail until then).
#[test]
fn a_blocked_receive_sleeps_through_a_loan_being_written() {
    let _serial = serial();
    ringflow_testkit::isolate_runtime_dir();
    let mut a = Group::join("r-loan", &opts()).expect("create");
    let mut b = Group::join("r-loan", &opts()).expect("join");
    assert_eq!(drain(&mut a), vec![Got::View(1), Got::View(2)]);
    let idb = b.local_member().id;
    let mut loan = b.loan(5).unwrap();
    loan.write(0, b"slow!");
    let (tell, told) = mpsc::channel();
    thread::scope(|s| {
        let receiver = s.spawn(|| {
            tell.send(thread_id()).unwrap();
            match a.recv_timeout(Duration::from_secs(60)).expect("the loan's message") {
                Event::Message(mut m) => {
                    let mut buf = [0u8; 5];
                    m.read_into(&mut buf).unwrap();
                    (m.sender().id, buf)
                }
                _ => panic!("not the message"),
            }
        });
        // Asleep (not spinning) while the claim is open.
        wait_until_blocked(told.recv().unwrap());
        loan.send().unwrap();
        assert_eq!(receiver.join().unwrap(), (idb, *b"slow!"));
    });
    drop(b);
    a.leave().expect("leave");
}

/// No lost wake: a member that sleeps in epoll between bursts of another
/// member's messages, arriving at every point of its arm–check–sleep
/// cycle, receives them all, each wait ending in a wake (a lost one would
/// leave it asleep with messages waiting, until the hang guard).
#[test]
fn epoll_loses_no_wake_under_a_stream_of_messages() {
    const N: usize = 3000;
    let _serial = serial();
    ringflow_testkit::isolate_runtime_dir();
    let mut a = Group::join("r-stream", &opts()).expect("create");
    let mut b = Group::join("r-stream", &opts()).expect("join");
    let ep = Epoll::on(a.as_raw_fd());
    let idb = b.local_member().id;
    let sender = thread::spawn(move || {
        for i in 0..N {
            b.mcast(&(i as u64).to_le_bytes()).unwrap();
            // Vary the spacing so arrivals hit every phase.
            for _ in 0..(i % 7) {
                thread::yield_now();
            }
            drain(&mut b);
        }
        b
    });
    let mut next = 0u64;
    while next < N as u64 {
        assert!(ep.wait(GUARD_MS), "asleep with message {next} on its way: a lost wake");
        for e in drain(&mut a) {
            if let Got::Msg(from, bytes) = e {
                assert_eq!(from, idb);
                assert_eq!(bytes, next.to_le_bytes(), "in order, none missing");
                next += 1;
            }
        }
    }
    let b = sender.join().unwrap();
    drop(b);
    a.leave().expect("leave");
}

/// An Evict group: a member in a set that stops reading is evicted while
/// the set sleeps; the set reports it closed, its descriptor reads ready,
/// and its receive says why.
#[test]
fn a_set_reports_an_evicted_member_closed() {
    ringflow_testkit::require_futex_waitv!();
    let _serial = serial();
    ringflow_testkit::isolate_runtime_dir();
    let evict = opts().slow_member(SlowMember::Evict { after: Duration::from_millis(20) });
    let mut set = FlowSet::new();
    let ka = set.insert_group(Group::join("r-evict", &evict).expect("create"), Interest::Writable);
    let fd = set.get_group_mut(ka).unwrap().as_raw_fd();
    let mut b = Group::join("r-evict", &evict).expect("join");
    drain(&mut b);
    // b fills the log, reading its own share; a reads nothing.
    while b.try_mcast(&[0u8; 1024]).is_ok() {
        drain(&mut b);
    }
    let mut ready = Vec::new();
    assert!(matches!(set.try_wait(&mut ready), Err(SetError::WouldBlock)));
    assert_eq!(set.wait_timeout(&mut ready, Duration::from_secs(60)).unwrap(), 1);
    assert_eq!((ready[0].key, ready[0].closed), (ka, true), "{ready:?}");
    assert!(Epoll::on(fd).wait(GUARD_MS), "an evicted member's descriptor reads ready");
    let a = set.get_group_mut(ka).unwrap();
    let mut evicted = false;
    for _ in 0..10_000 {
        match a.try_recv() {
            Ok(_) => continue,
            Err(GroupRecvError::Evicted) => {
                evicted = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(evicted, "the receive says the member was evicted");
    drop(b);
    drop(set);
}
