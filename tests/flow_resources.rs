//! Nothing stale is left: a thousand flows opened and closed give back every
//! descriptor and mapping, and leave no files behind (memfds never appear in
//! /dev/shm; sockets go when their listener does).

use std::path::Path;
use std::thread;

use ringflow::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos};

fn count(path: &str) -> usize {
    match std::fs::read_dir(path) {
        Ok(d) => d.count(),
        Err(_) => 0,
    }
}

/// Mappings of shared-memory segments (memfds). Not every mapping: the
/// allocator may add an arena (and its guard) when threads contend, which
/// is not a leak (CI saw 44 -> 46 that way).
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().filter(|l| l.contains("/memfd:")).count()
}

/// What `now` says once it is at most `baseline`, or after 30 s (a hang
/// guard, not a measurement). A flow's last reference, and with it its
/// socket and mapping, can be dropped on the peer watcher's thread an
/// instant after the test let go of the flow: at either count, one such
/// flow may still be on its way out, so the check is "back to the baseline
/// or below" once that settles, which a leak (one per round, a thousand
/// rounds) can never pass.
fn settled(baseline: usize, now: impl Fn() -> usize) -> usize {
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while now() > baseline && std::time::Instant::now() < guard {
        thread::sleep(std::time::Duration::from_millis(1));
    }
    now()
}

fn shm_entries() -> Vec<String> {
    match std::fs::read_dir("/dev/shm") {
        Ok(d) => d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    }
}

fn round(l: &mut Listener, dir: &Path, i: u32) {
    let d = dir.to_path_buf();
    let qos = Qos::data().with_ring_bytes(16 << 10).with_max_msg(64 << 10);
    let client = thread::spawn(move || {
        let mut f = Flow::alloc_with("many", &qos, Deadline::Never, FlowOptions::new().runtime_dir(d)).unwrap();
        f.send(&i.to_le_bytes()).unwrap();
        f.dealloc().unwrap();
    });
    let mut server = l.accept().unwrap();
    assert_eq!(&*server.recv_ref().unwrap(), &i.to_le_bytes());
    client.join().unwrap();
    assert!(matches!(server.recv_ref(), Err(ringflow::RecvError::Closed)));
}

#[test]
fn a_thousand_flows_open_and_close_without_leaking() {
    // Flow::pair keeps its statistics in the default runtime directory.
    ringflow_testkit::isolate_runtime_dir();
    let tmp = ringflow_testkit::temp_dir("many");
    let dir = tmp.path().to_path_buf();
    let shm_before = shm_entries();
    let mut l = Listener::bind_with("many", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    // The first flow starts the process's peer watcher (an epoll fd and a
    // thread that stay) and opens its runtime directory's stats file (kept
    // for the process's life); so does the first pair, in the default
    // directory: count from after them.
    round(&mut l, &dir, 0);
    drop(Flow::pair(&Qos::data()).unwrap());
    let (fds, maps) = (count("/proc/self/fd"), mappings());
    for i in 1..=1000 {
        round(&mut l, &dir, i);
    }
    let (fds_now, maps_now) = (settled(fds, || count("/proc/self/fd")), settled(maps, mappings));
    assert!(fds_now <= fds, "descriptors leaked: {fds} before, {fds_now} after");
    assert!(maps_now <= maps, "mappings leaked: {maps} before, {maps_now} after");
    // In-process pairs too.
    for i in 0..1000u32 {
        let (mut a, mut b) = Flow::pair(&Qos::data().with_ring_bytes(16 << 10).with_max_msg(64 << 10)).unwrap();
        a.send(&i.to_le_bytes()).unwrap();
        assert_eq!(&*b.recv_ref().unwrap(), &i.to_le_bytes());
    }
    let (fds_now, maps_now) = (settled(fds, || count("/proc/self/fd")), settled(maps, mappings));
    assert!(fds_now <= fds, "descriptors leaked by pairs: {fds} before, {fds_now} after");
    assert!(maps_now <= maps, "mappings leaked by pairs: {maps} before, {maps_now} after");
    assert_eq!(shm_entries(), shm_before, "nothing appears in /dev/shm");
    drop(l);
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).map(|e| e.file_name()).collect();
    // Only the stats directory stays (this process's file goes at exit).
    assert_eq!(left, ["stats"], "the listener's socket and lock are gone");
}
