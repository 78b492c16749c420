//! `ringflow ping` / `ringflow pong` as two processes: pong binds and
//! echoes, ping measures; ping exits 0 with the percentiles printed, pong
//! sees ping's flow arrive and leave and (with --once) exits 0. A name
//! nobody binds is an error naming the directory looked in.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

mod support;

/// A hang guard, never a measurement.
const LONG: Duration = Duration::from_secs(60);

/// A `ringflow pong` child, killed and reaped on drop; its stdout lines.
struct Pong {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Pong {
    fn start(dir: &Path, name: &str) -> Pong {
        Pong::start_with(dir, name, &[])
    }

    fn start_with(dir: &Path, name: &str, more: &[&str]) -> Pong {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringflow"))
            .args(["pong", name, "--once", "--runtime-dir"])
            .arg(dir)
            .args(more)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn ringflow pong");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Pong { child, lines }
    }

    /// The next line containing `needle` (panics after [`LONG`]).
    fn await_line(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.lines.recv_timeout(LONG) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("pong never said {needle:?} ({e}); it said {seen:?}"),
            }
        }
    }
}

impl Drop for Pong {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringflow"))
        .arg("ping")
        .args(args)
        .arg("--runtime-dir")
        .arg(dir)
        .output()
        .expect("run ringflow ping")
}

#[test]
fn ping_measures_through_pong_and_pong_sees_it_leave() {
    let tmp = ringflow_testkit::temp_dir("ping");
    let mut pong = Pong::start(tmp.path(), "echo-svc");
    pong.await_line("PONG listening on \"echo-svc\"");

    let out = ping(tmp.path(), &["echo-svc", "-c", "500", "-s", "100"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ping failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.starts_with("PING echo-svc (100 B, 500 round trips"), "{stdout}");
    assert!(stdout.contains("500 round trips of 100 B"), "{stdout}");
    let summary = stdout.lines().find(|l| l.starts_with("round trip ")).expect("a summary line");
    for label in ["p50 ", "p90 ", "p99 ", "p99.9 ", "max "] {
        assert!(summary.contains(label), "no {label:?} in {summary:?}");
    }

    let arrived = pong.await_line("arrived");
    assert!(arrived.contains("flow 1 from pid"), "{arrived}");
    let left = pong.await_line("left after");
    assert!(left.contains("left after 500 messages"), "{left}");
    // --once: out after the first flow left.
    let status = loop {
        if let Some(s) = pong.child.try_wait().expect("wait for pong") {
            break s;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "pong exited with {status}");
}

#[test]
fn ping_to_a_name_nobody_binds_fails_naming_the_directory() {
    let tmp = ringflow_testkit::temp_dir("ping-nobody");
    let out = ping(tmp.path(), &["nobody-here", "-c", "1", "--timeout-ms", "2000"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nobody listens on \"nobody-here\" in"), "{stderr}");
    let canonical = tmp.path().canonicalize().unwrap();
    assert!(
        stderr.contains(&*tmp.path().to_string_lossy()) || stderr.contains(&*canonical.to_string_lossy()),
        "{stderr}"
    );
}

/// Through engines: pong takes remote flows on the far engine's host, ping
/// allocates `name@host:port` (its own embedded engine carries the flow).
#[test]
fn ping_reaches_a_pong_on_another_host_through_the_engines() {
    let top = ringflow_testkit::temp_dir("ping-remote");
    let (near, far_dir) = (support::private_dir(top.path(), "near"), support::private_dir(top.path(), "far"));
    let far = support::EngineSpec::new(&far_dir, "127.0.0.1:0").start();
    let pong = Pong::start_with(&far_dir, "remote-echo", &["--remote"]);
    pong.await_line("PONG listening");
    let target = format!("remote-echo@{}", far.addr);
    let mut ping = Command::new(env!("CARGO_BIN_EXE_ringflow"));
    ping.args(["ping", &target, "-c", "200", "--runtime-dir"]).arg(&near);
    // The embedded engine reads no RINGFLOW_* of the test's environment,
    // and parks when idle (two engines share 2 cores).
    for (k, _) in std::env::vars() {
        if k.starts_with("RINGFLOW_") {
            ping.env_remove(k);
        }
    }
    let out = ping
        .env("RINGFLOW_ENGINE_IDLE", "park")
        .env("RINGFLOW_RUNTIME_DIR", &near)
        .output()
        .expect("run ringflow ping");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "ping failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("200 round trips of 64 B"), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("round trip ") && l.contains("p99.9 ")), "{stdout}");
    let left = pong.await_line("left after");
    // The flow's peer on pong's host is the far engine that carries it.
    assert!(left.contains(&format!("from pid {} left after 200 messages", far.pid())), "{left}");
}
