//! Nothing stale is left by groups (issue 15): a thousand join / multicast /
//! leave cycles in one process, alone (each join makes the group, each
//! leave ends it) and beside a member process that keeps the group, and
//! fifty member processes killed with SIGKILL, leave this process's
//! descriptors and ringflow mappings, `/dev/shm` and the runtime directory
//! as they were (once a statistics reader has removed the files of killed
//! processes, as `ringflow stat` does); the keeping member's own
//! descriptors and mappings too.
//!
//! The tests of this file share the process-wide counts, so they run one
//! at a time. Each prints how long its cycles took (never asserted).

mod common;

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::group::*;
use ringflow::Group;

const SPEC: Spec = Spec::new("agreed", "block", 1 << 16);
const ENTRY: &str = "group_cycles_child";
const CYCLES: usize = 1000;
const KILLED: usize = 50;

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn ringflow_mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps").unwrap().lines().filter(|l| l.contains("/memfd:")).count()
}

fn listing(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.filter_map(|e| e.ok()) {
            let p = e.path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() {
                walk(&p, base, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// What this process holds and the host shows.
#[derive(Debug)]
struct Snapshot {
    fds: usize,
    maps: usize,
    shm: Vec<String>,
    runtime: Vec<String>,
}

fn snapshot() -> Snapshot {
    Snapshot {
        fds: fds(),
        maps: ringflow_mappings(),
        shm: listing(Path::new("/dev/shm")),
        runtime: listing(ringflow_testkit::isolate_runtime_dir()),
    }
}

/// What `now` says once it is at most `baseline`, or after 30 s (a hang
/// guard): a member's last descriptor may go on a background thread an
/// instant after `leave` returned.
fn settled(baseline: usize, now: impl Fn() -> usize) -> usize {
    let guard = Instant::now() + Duration::from_secs(30);
    while now() > baseline && Instant::now() < guard {
        std::thread::sleep(Duration::from_millis(1));
    }
    now()
}

fn assert_as_before(before: &Snapshot, what: &str) {
    let fds_now = settled(before.fds, fds);
    let maps_now = settled(before.maps, ringflow_mappings);
    assert!(fds_now <= before.fds, "{what}: descriptors {} before, {fds_now} after", before.fds);
    assert!(maps_now <= before.maps, "{what}: ringflow mappings {} before, {maps_now} after", before.maps);
    reap_stats_of_the_dead(what);
    let after = snapshot();
    assert_eq!(after.shm, before.shm, "{what}: /dev/shm changed");
    assert_eq!(after.runtime, before.runtime, "{what}: the runtime directory changed");
}

/// A process killed with SIGKILL cannot remove its statistics file
/// (`stats/<pid>` in the runtime directory); by design the next reader that
/// finds the process gone does (`ringflow stat`, through
/// `ringflow_core::stats::read_dir`). Read as it does, and say how many
/// such files there were.
fn reap_stats_of_the_dead(what: &str) {
    let dir = ringflow_testkit::isolate_runtime_dir();
    let before = listing(dir).len();
    ringflow_core::stats::read_dir(dir).unwrap();
    let reaped = before - listing(dir).len();
    if reaped > 0 {
        eprintln!("{what}: {reaped} statistics files of killed processes, removed by a reader");
    }
}

/// The first member of a process opens what stays for the process's life
/// (its statistics file in the runtime directory): one cycle, before counting.
fn warm_up() {
    cycle("cycles-warm", 0, 0);
}

/// Joins, checks its own join, multicasts message `n` and receives it,
/// leaves. `flags` marks the message.
fn cycle(name: &str, n: u64, flags: u32) {
    let mut g = Group::join_timeout(name, &SPEC.options(), LONG).unwrap();
    let mut rec = Recorder::new(&g);
    let me = rec.me;
    assert!(rec.next(&mut g).view_change(me, "Joined"), "cycle {n}: the first event is not the own join");
    let mut buf = Vec::new();
    payload(9, n, flags, &mut buf);
    g.mcast_timeout(&buf, LONG).unwrap();
    rec.until_any(&mut g, |r| matches!(r, Rec::Msg { sender, .. } if *sender == me));
    let Some((_, Rec::Msg { n: got, .. })) = rec.recs.last() else { unreachable!() };
    assert_eq!(*got, n, "cycle {n}: another message came back");
    g.leave().unwrap();
}

#[test]
fn a_thousand_joins_and_leaves_alone_leave_nothing() {
    let _one = one_at_a_time();
    ringflow_testkit::isolate_runtime_dir();
    let name = "cycles-alone";
    // The first member of a process may start what stays for the
    // process's life (a watcher thread, its epoll descriptor): count
    // from after it.
    cycle(name, 0, 0);
    let before = snapshot();
    let start = Instant::now();
    for n in 1..=CYCLES as u64 {
        cycle(name, n, 0);
    }
    eprintln!("{CYCLES} join/mcast/leave cycles alone: {:?}", start.elapsed());
    assert_as_before(&before, "cycles alone");
}

#[test]
fn a_thousand_joins_and_leaves_beside_a_member_leave_nothing() {
    let _one = one_at_a_time();
    ringflow_testkit::isolate_runtime_dir();
    let tmp = ringflow_testkit::temp_dir("gcycles");
    let dir = tmp.path();
    let name = "cycles-beside";
    warm_up();
    let outside = snapshot();
    let mut keeper = spawn_member(ENTRY, dir, name, &SPEC, "m", "watcher", &[("CYCLES", (CYCLES + 2).to_string())]);
    await_stage(dir, "m", "joined");
    cycle(name, 0, 0);
    let before = snapshot();
    let start = Instant::now();
    for n in 1..=CYCLES as u64 {
        cycle(name, n, 0);
    }
    eprintln!("{CYCLES} join/mcast/leave cycles beside a member: {:?}", start.elapsed());
    assert_as_before(&before, "cycles beside a member");
    // The last cycle tells the member to stop.
    cycle(name, CYCLES as u64 + 1, LAST);
    wait_success(&mut keeper, "the member that kept the group");
    let said = std::fs::read_to_string(dir.join("m-counts")).unwrap();
    let v: Vec<usize> = said.split_whitespace().map(|w| w.parse().unwrap()).collect();
    let [joins, leaves, fds0, fds1, maps0, maps1] = v[..] else { panic!("{said}") };
    assert_eq!((joins, leaves), (CYCLES + 2, CYCLES + 2), "the member saw every join and leave");
    assert!(fds1 <= fds0, "the keeping member's descriptors: {fds0} before, {fds1} after");
    assert!(maps1 <= maps0, "the keeping member's ringflow mappings: {maps0} before, {maps1} after");
    drop(tmp);
    assert_as_before(&outside, "after the group's last member left");
}

#[test]
fn fifty_killed_members_leave_nothing() {
    let _one = one_at_a_time();
    ringflow_testkit::isolate_runtime_dir();
    let tmp = ringflow_testkit::temp_dir("gkilled");
    let dir = tmp.path();
    let name = "cycles-killed";
    warm_up();
    let outside = snapshot();
    let mut g = Group::join_timeout(name, &SPEC.options(), LONG).unwrap();
    let mut rec = Recorder::new(&g);
    rec.next(&mut g);
    let kill_one = |i: usize, rec: &mut Recorder, g: &mut Group| {
        let label = format!("v{i}");
        let mut c = spawn_member(ENTRY, dir, name, &SPEC, &label, "idle", &[]);
        let pid = c.id();
        rec.until_any(g, |r| r.view_change_pid(pid, "Joined"));
        kill9(&mut c);
        rec.until_any(g, |r| r.view_change_pid(pid, "ProcessDown"));
    };
    kill_one(0, &mut rec, &mut g);
    let before = snapshot();
    let start = Instant::now();
    for i in 1..=KILLED {
        kill_one(i, &mut rec, &mut g);
    }
    eprintln!("{KILLED} members joined and were killed: {:?}", start.elapsed());
    // Only this process's stage files are in the test's own directory.
    assert_as_before(&before, "killed members");
    assert_eq!(g.members().len(), 1, "only this member is left: {:?}", g.members());
    g.leave().unwrap();
    drop(tmp);
    assert_as_before(&outside, "after the group's last member left");
}

#[test]
#[ignore = "child process of the group cycle tests"]
fn group_cycles_child() {
    let Some((ctx, role)) = own_child_role() else { return };
    assert_eq!(role, "watcher");
    let cycles: usize = ctx.arg("CYCLES").parse().unwrap();
    let parent = std::os::unix::process::parent_id();
    let mut g = ctx.join();
    let mut rec = Recorder::new(&g);
    rec.next(&mut g);
    ctx.mark("joined");
    let left = |r: &Rec| r.view_change_pid(parent, "Left");
    rec.until_any(&mut g, left);
    let (fds0, maps0) = (fds(), ringflow_mappings());
    let mut count = 1;
    rec.until_next(&mut g, |r| {
        count += usize::from(left(r));
        count >= cycles
    });
    assert!(has_last_from(&rec.recs, &[9]), "the last cycle's message");
    let joins = rec.recs.iter().filter(|(_, r)| r.view_change_pid(parent, "Joined")).count();
    let (fds1, maps1) = (settled(fds0, fds), settled(maps0, ringflow_mappings));
    std::fs::write(ctx.dir.join("m-counts"), format!("{joins} {count} {fds0} {fds1} {maps0} {maps1}")).unwrap();
    g.leave().unwrap();
}
