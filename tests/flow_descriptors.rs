//! How many descriptors a flow end holds, counted in /proc/self/fd before
//! and after: one (its control socket, which is also its readiness
//! descriptor), in a pair as across processes; two more for an end whose
//! application asked for `as_raw_fd`; and as many flows as the descriptor
//! limit allows (10,000 where it allows) open and close leaving nothing.
//!
//! The counts are exact, so the tests of this binary take turns (one lock):
//! a test opening descriptors beside another would change its counts.

mod common;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use common::{child_arg, is_child, spawn_flow_child};
use ringflow::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos, RecvError};

static SERIAL: Mutex<()> = Mutex::new(());
const LONG: Duration = Duration::from_secs(60);

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Mappings of memfds (flow segments).
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().filter(|l| l.contains("/memfd:")).count()
}

/// What `now` says once it equals `want`, or after 30 s (a hang guard): a
/// flow's last reference can be dropped on the watcher's thread an instant
/// after the test let go of it.
fn settled(want: usize, now: impl Fn() -> usize) -> usize {
    let guard = Instant::now() + Duration::from_secs(30);
    while now() != want && Instant::now() < guard {
        thread::sleep(Duration::from_millis(1));
    }
    now()
}

fn small() -> Qos {
    Qos::data().with_ring_bytes(4096).with_max_msg(4096)
}

/// Starts the process-wide things a first flow opens and keeps (the
/// watcher's epoll, the stats file of the default runtime directory).
fn warm_up() {
    ringflow_testkit::isolate_runtime_dir();
    drop(Flow::pair(&small()).unwrap());
}

#[test]
fn a_pair_holds_one_descriptor_per_end_and_as_raw_fd_two_more() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    warm_up();
    let before = fds();
    let mut pairs: Vec<(Flow, Flow)> = (0..100).map(|_| Flow::pair(&small()).unwrap()).collect();
    assert_eq!(fds(), before + 200, "one descriptor per flow end");
    // They work: a message each way on each, a readiness wake on one.
    for (a, b) in &mut pairs {
        a.send(b"ping").unwrap();
        assert_eq!(&*b.recv_ref().unwrap(), b"ping");
        b.send(b"pong").unwrap();
        assert_eq!(&*a.recv_ref().unwrap(), b"pong");
    }
    let fd = pairs[0].1.as_raw_fd();
    assert_eq!(fds(), before + 202, "as_raw_fd: an epoll instance and an eventfd");
    assert_eq!(pairs[0].1.as_raw_fd(), fd, "made once");
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    assert_eq!(unsafe { libc::poll(&mut p, 1, 0) }, 1, "starts readable");
    assert!(matches!(pairs[0].1.try_recv_ref(), Err(RecvError::WouldBlock)));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::poll(&mut p, 1, 0) }, 0, "reset by the WouldBlock");
    pairs[0].0.send(b"wake").unwrap();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::poll(&mut p, 1, 60_000) }, 1, "signalled by the send");
    drop(pairs);
    assert_eq!(settled(before, fds), before, "every descriptor given back");
}

#[test]
fn a_flow_between_a_listener_and_its_client_holds_one_descriptor_per_end() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    warm_up();
    let tmp = ringflow_testkit::temp_dir("fds-local");
    let dir = tmp.path().to_path_buf();
    let mut l = Listener::bind_with("fds", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    // The first flow of this directory opens its stats file.
    let (a, b) = connect(&mut l, &dir);
    drop((a, b));
    let before = settled(fds(), fds);
    let flows: Vec<(Flow, Flow)> = (0..50).map(|_| connect(&mut l, &dir)).collect();
    assert_eq!(fds(), before + 100, "one descriptor per flow end (both ends here)");
    drop(flows);
    assert_eq!(settled(before, fds), before, "every descriptor given back");
}

fn connect(l: &mut Listener, dir: &Path) -> (Flow, Flow) {
    let d = dir.to_path_buf();
    let client = thread::spawn(move || {
        Flow::alloc_with("fds", &small(), Deadline::after(LONG), FlowOptions::new().runtime_dir(d)).unwrap()
    });
    let server = l.accept_timeout(LONG).unwrap();
    (client.join().unwrap(), server)
}

/// Flows the child allocates in [`across_processes_each_end_holds_one_descriptor`].
const CHILD_FLOWS: usize = 40;

#[test]
fn across_processes_each_end_holds_one_descriptor() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    warm_up();
    let tmp = ringflow_testkit::temp_dir("fds-processes");
    let dir = tmp.path().to_path_buf();
    let mut l = Listener::bind_with("fds-child", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    let _child = spawn_flow_child("child_allocates_flows", &[("DIR", dir.display().to_string())]);
    let mut accept = || {
        let mut f = l.accept_timeout(LONG).unwrap();
        assert_eq!(&*f.recv_ref_timeout(LONG).unwrap(), b"hello");
        f
    };
    // The first flow of the directory opens its stats file: count after it.
    let mut flows = vec![accept()];
    let before = fds();
    for _ in 0..CHILD_FLOWS {
        flows.push(accept());
    }
    assert_eq!(fds(), before + CHILD_FLOWS, "one descriptor per accepted flow end");
    let counted = await_file(&dir.join("counted"));
    assert_eq!(counted.trim(), CHILD_FLOWS.to_string(), "the child's ends hold one descriptor each");
    std::fs::write(dir.join("go"), b"").unwrap();
    for f in &mut flows {
        assert!(matches!(f.recv_ref_timeout(LONG), Err(RecvError::Closed)));
    }
    let last = flows.len() - 1;
    drop(flows);
    assert_eq!(settled(before - 1, fds), before - 1, "every descriptor given back ({last} + 1 flows)");
}

fn await_file(file: &Path) -> String {
    let end = Instant::now() + LONG;
    loop {
        if let Ok(text) = std::fs::read_to_string(file) {
            if text.ends_with('\n') {
                return text;
            }
        }
        assert!(Instant::now() < end, "the child never wrote {file:?}");
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
#[ignore]
fn child_allocates_flows() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    let alloc = || {
        let opts = FlowOptions::new().runtime_dir(&dir);
        Flow::alloc_with("fds-child", &small(), Deadline::after(LONG), opts).unwrap()
    };
    // The first one opens the watcher and the stats file: count after it.
    let mut first = alloc();
    first.send(b"hello").unwrap();
    let before = fds();
    let mut flows = vec![first];
    for _ in 0..CHILD_FLOWS {
        let mut f = alloc();
        f.send(b"hello").unwrap();
        flows.push(f);
    }
    let added = fds() - before;
    std::fs::write(dir.join("counted"), format!("{added}\n")).unwrap();
    let end = Instant::now() + LONG;
    while !dir.join("go").exists() && Instant::now() < end {
        thread::sleep(Duration::from_millis(2));
    }
    for f in flows {
        f.dealloc().unwrap();
    }
}

/// Descriptors left aside for the rest of the test process.
const MARGIN: u64 = 256;

#[test]
fn ten_thousand_flows_open_and_close_leaving_nothing() {
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    warm_up();
    let want = 10_000usize;
    let limit = raise_soft_limit();
    let room = (limit.saturating_sub(fds() as u64 + MARGIN) / 2) as usize;
    let n = want.min(room);
    if n < want {
        println!(
            "ten_thousand_flows: the descriptor limit ({limit}) leaves room for {n} pairs, not {want}: \
             testing {n} ({} flow ends)",
            2 * n
        );
    }
    let shm_before: Vec<_> =
        std::fs::read_dir("/dev/shm").map_or(Vec::new(), |d| d.flatten().map(|e| e.file_name()).collect());
    let (before, maps) = (fds(), mappings());
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        pairs.push(Flow::pair(&small()).unwrap());
    }
    assert_eq!(fds(), before + 2 * n, "one descriptor per flow end");
    assert_eq!(mappings(), maps + n, "one mapping per flow");
    let (a, b) = pairs.last_mut().unwrap();
    a.send(b"last").unwrap();
    assert_eq!(&*b.recv_ref().unwrap(), b"last");
    drop(pairs);
    assert_eq!(settled(before, fds), before, "every descriptor given back");
    assert_eq!(settled(maps, mappings), maps, "every mapping given back");
    let shm_now: Vec<_> =
        std::fs::read_dir("/dev/shm").map_or(Vec::new(), |d| d.flatten().map(|e| e.file_name()).collect());
    assert_eq!(shm_now, shm_before, "nothing in /dev/shm");
}

/// Raises the soft RLIMIT_NOFILE to the hard one; returns the soft limit.
fn raise_soft_limit() -> u64 {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: writes into the local struct.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: reads the local struct; within the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        }
    }
    lim.rlim_cur
}
