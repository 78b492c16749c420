//! `ringflow stat --json` and `ringflow ls --json` read a flow opened by
//! another process: its counts match what was sent, its latency histogram
//! holds every received message, and a garbage stats file next to it is
//! skipped, not fatal.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{child_arg, is_child, spawn_flow_child};
use ringflow::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos};

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

    let ls = ringflow(&["ls", "--json"], &dir);
    assert!(ls.iter().any(|l| l == "{\"type\":\"name\",\"name\":\"stat-test\"}"), "{ls:#?}");
    assert_eq!(ls.iter().filter(|l| l.contains("\"type\":\"flow\"") && l.contains("stat-test")).count(), 2);

    let _ = child.kill();
    let _ = child.wait();
    // The dead child's file is removed by the next reader.
    let lines = ringflow(&["stat", "--json", "--window-ms", "1"], &dir);
    assert!(lines.iter().all(|l| !l.contains("stat-test")), "{lines:#?}");
    assert!(!dir.join("stats").join(pid.to_string()).exists());
}
