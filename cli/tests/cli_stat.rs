//! `ringflow stat --json` and `ringflow ls --json` read a flow opened by
//! another process: its counts match what was sent, its latency histogram
//! holds every received message, and a garbage stats file next to it is
//! skipped, not fatal. They show a group, its members, each member's
//! counters, latency and lag behind the log's tail, and name the slowest.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{child_arg, is_child, spawn_flow_child};
use ringflow::{
    Deadline, Event, Flow, FlowOptions, Group, GroupOptions, GroupRecvError, Listener, ListenerOptions, Qos,
};

const COUNT: u64 = 1000;
const LONG: Duration = Duration::from_secs(60);

fn ringflow(args: &[&str], dir: &Path) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ringflow"))
        .args(args)
        .arg("--runtime-dir")
        .arg(dir)
        .output()
        .expect("run ringflow");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8").lines().map(str::to_owned).collect()
}

/// The number after `"key":` in a JSON line.
fn field(line: &str, key: &str) -> u64 {
    let pat = format!("\"{key}\":");
    let at = line.find(&pat).unwrap_or_else(|| panic!("no {key} in {line}")) + pat.len();
    line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().unwrap()
}

#[test]
#[ignore]
fn child_runs_a_flow_then_sleeps() {
    if !is_child() {
        return;
    }
    let dir = PathBuf::from(child_arg("DIR"));
    let mut listener = Listener::bind_with("stat-test", ListenerOptions::new().runtime_dir(&dir)).unwrap();
    let d = dir.clone();
    let sender = std::thread::spawn(move || {
        let mut f =
            Flow::alloc_with("stat-test", &Qos::data(), Deadline::after(LONG), FlowOptions::new().runtime_dir(&d))
                .unwrap();
        for i in 0..COUNT {
            f.send(&i.to_le_bytes()).unwrap();
        }
        f
    });
    let mut rx = listener.accept_timeout(LONG).unwrap();
    let mut buf = [0u8; 8];
    for _ in 0..COUNT {
        rx.recv_into(&mut buf).unwrap();
    }
    // An idle receiver looks again: that records the last message's
    // latency in shared memory (see `PendingLatency`).
    assert!(matches!(rx.try_recv_into(&mut buf), Err(ringflow::RecvError::WouldBlock)));
    let _tx = sender.join().unwrap();
    std::fs::write(dir.join("ready"), b"").unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[test]
fn stat_reads_a_live_process_and_survives_garbage() {
    let tmp = ringflow_testkit::temp_dir("cli-stat");
    let dir = tmp.path().to_path_buf();
    // Accepted by the runtime-directory rules (0700), as the child expects.
    ringflow::stats::runtime_dir(Some(&dir)).unwrap();
    let mut child = spawn_flow_child("child_runs_a_flow_then_sleeps", &[("DIR", dir.display().to_string())]);
    let end = Instant::now() + LONG;
    while !dir.join("ready").exists() {
        assert!(Instant::now() < end, "the child never got its flow going");
        assert!(child.try_wait().unwrap().is_none(), "the child died");
        std::thread::sleep(Duration::from_millis(5));
    }
    // Garbage under a live pid (ours): skipped, and the real one still read.
    std::fs::write(dir.join("stats").join(std::process::id().to_string()), vec![0x5au8; 10_000]).unwrap();

    let lines = ringflow(&["stat", "--json", "--window-ms", "50"], &dir);
    let pid = child.id();
    let process = lines
        .iter()
        .find(|l| l.contains("\"type\":\"process\"") && field(l, "pid") == u64::from(pid))
        .unwrap_or_else(|| panic!("the child's process in {lines:#?}"));
    assert!(process.contains("\"skipped\":0"), "{process}");
    assert!(!lines
        .iter()
        .any(|l| l.contains("\"type\":\"process\"") && field(l, "pid") == u64::from(std::process::id())));
    let flows: Vec<&String> =
        lines.iter().filter(|l| l.contains("\"type\":\"flow\"") && l.contains("\"name\":\"stat-test\"")).collect();
    assert_eq!(flows.len(), 2, "{lines:#?}");
    let sender = flows.iter().find(|l| l.contains("\"role\":\"allocator\"")).unwrap();
    let receiver = flows.iter().find(|l| l.contains("\"role\":\"acceptor\"")).unwrap();
    assert_eq!((field(sender, "sent"), field(sender, "bytes_sent")), (COUNT, COUNT * 8));
    assert_eq!((field(receiver, "received"), field(receiver, "bytes_received")), (COUNT, COUNT * 8));
    // Every received message has its latency recorded.
    let latency = &receiver[receiver.find("\"latency\":").unwrap()..];
    assert_eq!(field(latency, "n"), COUNT, "{receiver}");
    assert!(field(latency, "max_ns") >= field(latency, "p50_ns"));
    // Nothing changed during the window: the rates say so.
    assert!(receiver.contains("\"received_per_sec\":0.0"), "{receiver}");

    // The table fits 100 columns and names each flow's peer.
    let table = ringflow(&["stat", "--once", "--window-ms", "50"], &dir);
    assert!(table.iter().all(|l| l.chars().count() <= 100), "{table:#?}");
    assert!(table.iter().any(|l| l.contains("PEER") && l.contains("LAST50")), "{table:#?}");
    let rows: Vec<&String> = table.iter().filter(|l| l.contains("stat-test")).collect();
    assert_eq!(rows.len(), 2, "{table:#?}");
    assert!(rows.iter().all(|l| l.split_whitespace().nth(3) == Some(&pid.to_string()[..])), "{rows:#?}");

    let ls = ringflow(&["ls", "--json"], &dir);
    let bound = format!("{{\"type\":\"name\",\"name\":\"stat-test\",\"live\":true,\"pid\":{pid}}}");
    assert!(ls.contains(&bound), "the listener's process holds the name: {ls:#?}");
    assert_eq!(ls.iter().filter(|l| l.contains("\"type\":\"flow\"") && l.contains("stat-test")).count(), 2);

    let _ = child.kill();
    let _ = child.wait();
    // Its name's files stay behind, held by nobody: ls says so.
    let ls = ringflow(&["ls", "--json"], &dir);
    let leftover = "{\"type\":\"name\",\"name\":\"stat-test\",\"live\":false,\"pid\":null}";
    assert!(ls.iter().any(|l| l == leftover), "{ls:#?}");
    // The dead child's file is removed by the next reader.
    let lines = ringflow(&["stat", "--json", "--window-ms", "1"], &dir);
    assert!(lines.iter().all(|l| !l.contains("stat-test")), "{lines:#?}");
    assert!(!dir.join("stats").join(pid.to_string()).exists());
}

/// The line of `lines` of JSON type `ty` with `"key":value` in it.
fn line_with<'a>(lines: &'a [String], ty: &str, key: &str, value: &str) -> &'a String {
    let (t, kv) = (format!("\"type\":\"{ty}\""), format!("\"{key}\":{value}"));
    lines
        .iter()
        .find(|l| l.contains(&t) && l.contains(&kv))
        .unwrap_or_else(|| panic!("no {ty} with {kv} in {lines:#?}"))
}

#[test]
fn ls_and_stat_show_a_group_its_members_their_lag_and_the_slowest() {
    const SENT: u64 = 100;
    let dir = ringflow_testkit::isolate_runtime_dir();
    let opts = GroupOptions::new().log_capacity(1 << 16).max_message(1024).max_members(4).spin(Duration::ZERO);
    let mut reader = Group::join("stat-group", &opts).unwrap();
    let mut idle = Group::join("stat-group", &opts).unwrap();
    let (r, i) = (reader.local_member().id, idle.local_member().id);
    let events = |g: &mut Group, n: u64| {
        let mut messages = 0;
        for _ in 0..n {
            if let Event::Message(_) = g.recv_timeout(LONG).unwrap() {
                messages += 1;
            }
        }
        assert!(matches!(g.try_recv(), Err(GroupRecvError::WouldBlock)));
        messages
    };
    // Their joins, then every message from the reader (its own too); the
    // idle member reads only its join.
    assert_eq!(events(&mut idle, 1), 0);
    for n in 0..SENT {
        reader.mcast(&n.to_le_bytes()).unwrap();
    }
    assert_eq!(events(&mut reader, 2 + SENT), SENT);
    // A name bound by nobody any more: shown, with why it is not read.
    drop(std::os::unix::net::UnixListener::bind(dir.join("ghost.group.sock")).unwrap());

    let ls = ringflow(&["ls", "--json"], dir);
    assert!(!ls.iter().any(|l| l.contains("\"type\":\"name\"") && l.contains("group")), "{ls:#?}");
    let group = line_with(&ls, "group", "name", "\"stat-group\"");
    assert_eq!((field(group, "members"), field(group, "keeper_pid")), (2, u64::from(std::process::id())));
    for id in [r, i] {
        let m = line_with(&ls, "member", "member_id", &id.to_string());
        assert!(m.contains("\"group\":\"stat-group\"") && m.contains("\"state\":\"active\""), "{m}");
        assert_eq!(field(m, "pid"), u64::from(std::process::id()));
    }
    assert!(line_with(&ls, "group", "name", "\"ghost\"").contains("\"error\":"), "{ls:#?}");

    let stat = ringflow(&["stat", "--json", "--window-ms", "1"], dir);
    let group = line_with(&stat, "group", "name", "\"stat-group\"");
    let slowest = &group[group.find("\"slowest\":").unwrap()..];
    assert_eq!(field(slowest, "member_id"), i, "{group}");
    let laggard = line_with(&stat, "member", "member_id", &i.to_string());
    let tail = field(group, "tail");
    assert!(field(laggard, "lag_bytes") >= SENT * 8 && field(laggard, "lag_bytes") <= tail, "{laggard}");
    assert!(laggard.contains("\"slowest\":true") && laggard.contains("\"published\":true"), "{laggard}");
    assert_eq!((field(laggard, "sent"), field(laggard, "received")), (0, 0));
    let caught_up = line_with(&stat, "member", "member_id", &r.to_string());
    assert_eq!(field(caught_up, "lag_bytes"), 0, "{caught_up}");
    assert!(caught_up.contains("\"slowest\":false"), "{caught_up}");
    assert_eq!((field(caught_up, "sent"), field(caught_up, "received"), field(caught_up, "lost")), (SENT, SENT, 0));
    // Every message the reader received has its one-way latency recorded.
    let latency = &caught_up[caught_up.find("\"latency\":").unwrap()..];
    assert_eq!(field(latency, "n"), SENT, "{caught_up}");
    // Member slots are shown with their group, not as slots of the process.
    assert!(!stat.iter().any(|l| l.starts_with("{\"type\":\"group\",\"pid\"")), "{stat:#?}");

    idle.leave().unwrap();
    reader.leave().unwrap();
    let ls = ringflow(&["ls", "--json"], dir);
    assert!(!ls.iter().any(|l| l.contains("stat-group")), "{ls:#?}");
}
