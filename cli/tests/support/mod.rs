//! Process harness for tests of a standalone `ringflow engine` under
//! faults and attack: engine processes and application children (this test
//! binary re-run as one `#[ignore]`d entry), both killed and reaped when
//! their guard drops, so a failing test leaves nothing running; and what
//! `/proc` says of an engine process (descriptors by kind, resident memory).
//!
//! Nothing here measures time: waits poll a condition with a hang guard.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use ringflow_testkit::{ChildCommand, ChildProcess};

pub mod groups;

/// The deadline of every blocking call: a hang guard, never a measurement.
pub const LONG: Duration = Duration::from_secs(30);

/// Environment variable telling a re-run test binary it is a child.
const CHILD_ENV: &str = "RINGFLOW_TEST_CHILD";

/// A `ringflow engine` process, killed (SIGKILL) and reaped on drop.
pub struct EngineProc {
    pub child: Child,
    /// Where remote engines reach it (from its "serving" line; empty when
    /// it does not listen).
    pub addr: String,
    /// Its later lines on stderr.
    stderr: mpsc::Receiver<String>,
    /// Lines read while waiting for another ([`await_line`](Self::await_line)),
    /// not looked at yet: [`said`](Self::said) returns them first.
    passed: Mutex<Vec<String>>,
}

/// How to start an engine process.
pub struct EngineSpec<'a> {
    pub runtime_dir: &'a Path,
    /// `RINGFLOW_NET_LISTEN` ("none": no listener).
    pub listen: &'a str,
    /// More `RINGFLOW_*` variables.
    pub env: Vec<(String, String)>,
    /// How long a clean stop waits to flush (`--flush-ms`).
    pub flush_ms: u64,
    /// More arguments (`-v`).
    pub args: Vec<String>,
}

impl<'a> EngineSpec<'a> {
    pub fn new(runtime_dir: &'a Path, listen: &'a str) -> EngineSpec<'a> {
        EngineSpec { runtime_dir, listen, env: Vec::new(), flush_ms: 100, args: Vec::new() }
    }

    /// A clean stop that waits up to `ms` to flush.
    pub fn flush_ms(mut self, ms: u64) -> Self {
        self.flush_ms = ms;
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// One node of a cluster of engines on the loopback `ports`: this one
    /// listens at `port` (its `listen`), the others are its peers; the
    /// cluster on, with fast ticks (10 ms, elections after 30, heartbeats
    /// every 3) and its log lines at debug (what the tests read).
    pub fn cluster_node(self, port: u16, ports: &[u16]) -> Self {
        let peers: Vec<String> = ports.iter().filter(|p| **p != port).map(|p| format!("127.0.0.1:{p}")).collect();
        self.env("RINGFLOW_NET_PEERS", &peers.join(", "))
            .env("RINGFLOW_CLUSTER_ENABLED", "true")
            .env("RINGFLOW_CLUSTER_TICK_MS", "10")
            .env("RINGFLOW_CLUSTER_ELECTION_TICKS", "30")
            .env("RINGFLOW_CLUSTER_HEARTBEAT_TICKS", "3")
            .env("RINGFLOW_LOG", "ringflow_core::cluster=debug")
    }

    /// The command, with a clean `RINGFLOW_*` environment.
    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringflow"));
        cmd.arg("engine").arg("--flush-ms").arg(self.flush_ms.to_string()).args(&self.args);
        for (k, _) in std::env::vars() {
            if k.starts_with("RINGFLOW_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RINGFLOW_RUNTIME_DIR", self.runtime_dir);
        cmd.env("RINGFLOW_NET_LISTEN", self.listen);
        // An idle engine parks: two engines and the test share 2 cores.
        cmd.env("RINGFLOW_ENGINE_IDLE", "park");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        // SAFETY: the closure runs in the forked child before exec and only
        // calls prctl, async-signal-safe; it touches no Rust state.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd
    }

    /// Runs the engine to its end (it should fail to start); its exit
    /// status and stderr.
    pub fn run_to_end(&self) -> (std::process::ExitStatus, String) {
        let mut child = self.command().stderr(Stdio::piped()).spawn().expect("spawn ringflow engine");
        let mut stderr = String::new();
        let mut pipe = child.stderr.take().expect("stderr piped");
        let end = Instant::now() + LONG;
        let reader = thread::spawn(move || {
            use std::io::Read as _;
            let _ = pipe.read_to_string(&mut stderr);
            stderr
        });
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait for the engine") {
                break s;
            }
            if Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the engine did not exit");
            }
            thread::sleep(Duration::from_millis(10));
        };
        (status, reader.join().expect("stderr reader"))
    }

    /// Starts the engine and waits until it serves.
    pub fn start(&self) -> EngineProc {
        let mut child = self.command().stderr(Stdio::piped()).spawn().expect("spawn ringflow engine");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut proc = EngineProc { child, addr: String::new(), stderr: rx, passed: Mutex::new(Vec::new()) };
        let serving = proc.await_line("serving this host");
        let after = serving.split("reach it at ").nth(1).unwrap_or("");
        proc.addr = after.split_whitespace().next().unwrap_or("").trim_end_matches('.').to_owned();
        proc
    }
}

impl EngineProc {
    /// Waits for a line on stderr that contains `needle`, and returns it;
    /// the lines before it are kept for [`said`](Self::said).
    pub fn await_line(&self, needle: &str) -> String {
        let mut seen = Vec::new();
        let line = loop {
            match self.stderr.recv_timeout(LONG) {
                Ok(line) if line.contains(needle) => break line,
                Ok(line) => seen.push(line),
                Err(e) => panic!("no line with {needle:?} ({e}); the engine said {seen:?}"),
            }
        };
        self.passed.lock().unwrap_or_else(PoisonError::into_inner).extend(seen);
        line
    }

    /// The lines it wrote to stderr since the last look, those an
    /// [`await_line`](Self::await_line) passed over included (a line a test
    /// reads for a state, such as the leader an engine named at its start,
    /// may come before the line it waited for).
    pub fn said(&self) -> Vec<String> {
        let mut lines = std::mem::take(&mut *self.passed.lock().unwrap_or_else(PoisonError::into_inner));
        lines.extend(self.stderr.try_iter());
        lines
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process still runs.
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// Sends signal `sig` to the engine.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the engine to exit; its status.
    pub fn wait(mut self) -> std::process::ExitStatus {
        let status = self.child.wait().expect("wait for the engine");
        // Reaped: nothing left for Drop to kill.
        std::mem::forget(self);
        status
    }

    /// kill -9 and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for EngineProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Descriptors of a process, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fds {
    pub memfds: usize,
    pub sockets: usize,
    pub total: usize,
}

/// What `/proc/PID/fd` holds now.
pub fn fds_of(pid: u32) -> Fds {
    let mut fds = Fds::default();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return fds };
    for entry in dir.flatten() {
        let Ok(target) = std::fs::read_link(entry.path()) else { continue };
        let target = target.to_string_lossy();
        fds.total += 1;
        if target.starts_with("/memfd:") {
            fds.memfds += 1;
        } else if target.starts_with("socket:") {
            fds.sockets += 1;
        }
    }
    fds
}

/// The process's resident set (VmRSS), in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Polls `check` (sleeping between looks) until it passes; panics with
/// `what` and its last complaint after [`LONG`]: a hang guard, not a
/// measurement.
pub fn wait_until(what: &str, mut check: impl FnMut() -> Result<(), String>) {
    let end = Instant::now() + LONG;
    loop {
        match check() {
            Ok(()) => return,
            Err(why) => assert!(Instant::now() < end, "gave up waiting for {what}: {why}"),
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// True inside a child started by [`AppProc::spawn`].
pub fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// A child argument passed through the environment.
pub fn child_arg(name: &str) -> String {
    std::env::var(format!("RINGFLOW_TEST_{name}")).unwrap_or_default()
}

/// An application process (this test binary re-run as the ignored test
/// `entry`), killed (SIGKILL) and reaped on drop.
pub struct AppProc(ChildProcess);

impl AppProc {
    /// Re-runs this binary as `entry` with `args` as RINGFLOW_TEST_<name>
    /// variables; it dies with the thread that spawned it (PDEATHSIG).
    pub fn spawn(entry: &'static str, args: &[(&str, String)]) -> AppProc {
        let mut cmd = ChildCommand::reexec(entry).env(CHILD_ENV, "1");
        for (k, v) in args {
            cmd = cmd.env(format!("RINGFLOW_TEST_{k}"), v);
        }
        AppProc(cmd.spawn())
    }

    /// kill -9, then reap.
    pub fn kill(&mut self) {
        self.0.kill_and_reap();
    }

    /// Waits until the child wrote the marker `file`; fails if it exits first.
    pub fn await_marker(&mut self, file: &Path) {
        self.0.await_marker(file, LONG);
    }
}

/// Writes the marker `name` into `dir` so that it appears whole (rename).
pub fn write_marker(dir: &Path, name: &str, contents: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, contents).expect("write a marker");
    std::fs::rename(&tmp, dir.join(name)).expect("publish a marker");
}

pub fn sleep_forever() -> ! {
    loop {
        thread::sleep(Duration::from_secs(3600));
    }
}

/// A private (0700) directory `parent/name`, as a runtime directory must be.
pub fn private_dir(parent: &Path, name: &str) -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    let dir = parent.join(name);
    std::fs::DirBuilder::new().mode(0o700).create(&dir).expect("create a private directory");
    dir
}

/// The directory a child is handed.
pub fn child_dir() -> PathBuf {
    PathBuf::from(child_arg("DIR"))
}

/// `n` distinct loopback ports, free a moment ago, outside the range
/// outgoing connections take theirs from (`ringflow_testkit::listen_ports`).
pub fn free_ports(n: usize) -> Vec<u16> {
    ringflow_testkit::listen_ports(n)
}

/// The cluster node id of the engine at `port` among `ports` (ids follow
/// the sorted addresses, from 1).
pub fn node_id(port: u16, ports: &[u16]) -> u64 {
    let mut sorted = ports.to_vec();
    sorted.sort();
    sorted.iter().position(|p| *p == port).expect("known port") as u64 + 1
}

/// The number after ` name=` in a log line.
pub fn log_field(line: &str, name: &str) -> Option<u64> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}
