//! Ping-pong across two processes, as users run ringflow: the ping side
//! runs in the bench's process (on the first core), the pong side in a
//! child process of its own, pinned to the second core. The limit (the
//! cache-line ping-pong of [`crate::limit`], on a file both processes map)
//! and ringflow (a flow the child allocates to a listener of the parent)
//! take turns in one run, as in the threads case.
//!
//! The child is this same executable started again with
//! [`PEER_ENV`] set: a binary that offers that calls [`serve_if_peer`]
//! first thing in `main` and [`enable_peer_binary`] before it benches (the
//! `ringflow` command does). Under `cargo test` the crate's own test binary
//! serves, through the test `processes::tests::peer_entry`. Elsewhere the
//! case fails with a message saying so.

use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use memmap2::MmapMut;
use ringflow_api::{Deadline, Flow, FlowOptions, Listener, ListenerOptions, Qos, REQUEST_REPLY_WINDOW};

use crate::error::BenchError;
use crate::flow::{err, DirGuard, Side, PING_RING_BYTES};
use crate::limit::{self, Lines};
use crate::measure::{Measurement, RunCtx};
use crate::os::Wait;
use crate::pair::Waiter;
use crate::pingpong::{self, Either::Left, Either::Right};

/// Set in a child's environment: what it serves (see [`Spec`]).
pub const PEER_ENV: &str = "RINGFLOW_BENCH_PEER";

/// Whether this executable serves as its own child ([`enable_peer_binary`]).
static PEER_BINARY: AtomicBool = AtomicBool::new(false);

/// Declares that this executable calls [`serve_if_peer`] first thing in
/// `main`, so the cross-process cases may start it again as their child.
pub fn enable_peer_binary() {
    // SYNC: Relaxed; a flag set before any bench runs, on the same thread
    // that later reads it or one it spawned (spawning orders it).
    PEER_BINARY.store(true, Ordering::Relaxed);
}

/// In a child started by a cross-process case: serves its side and returns
/// the exit code for `main`. `None` in any other process.
pub fn serve_if_peer() -> Option<ExitCode> {
    let spec = std::env::var(PEER_ENV).ok()?;
    let served = if spec.starts_with(crate::set_wake::PEER_SPEC) {
        crate::set_wake::serve(&spec)
    } else {
        Spec::parse(&spec).and_then(|s| s.serve())
    };
    Some(match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringflow bench peer ({spec}): {e}");
            ExitCode::FAILURE
        }
    })
}

/// What a child does: `pong <dir> <core|-> <yield 0|1> <deadline ms>`.
struct Spec {
    dir: std::path::PathBuf,
    core: Option<usize>,
    yielding: bool,
    deadline: Duration,
}

impl Spec {
    fn encode(&self) -> String {
        let core = self.core.map_or("-".to_string(), |c| c.to_string());
        format!("pong {} {core} {} {}", self.dir.display(), u8::from(self.yielding), self.deadline.as_millis())
    }

    fn parse(s: &str) -> Result<Spec, BenchError> {
        let bad = || BenchError::Peer { call: "peer spec", error: format!("cannot parse {s:?}") };
        let parts: Vec<&str> = s.split(' ').collect();
        let ["pong", dir, core, yielding, deadline] = parts[..] else { return Err(bad()) };
        Ok(Spec {
            dir: dir.into(),
            core: if core == "-" { None } else { Some(core.parse().map_err(|_| bad())?) },
            yielding: yielding == "1",
            deadline: Duration::from_millis(deadline.parse().map_err(|_| bad())?),
        })
    }

    /// The child's side: pins itself, maps the limit's lines, allocates the
    /// flow, then echoes on whichever variant's turn it is until the stop
    /// message (or its deadline, should the parent vanish).
    fn serve(self) -> Result<(), BenchError> {
        if let Some(id) = self.core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                return Err(BenchError::Pin { core: id });
            }
        }
        let map = map_lines(&self.dir.join(LINES_FILE), false)?;
        let lines = lines_of(&map);
        let qos = Qos::data().with_ring_bytes(PING_RING_BYTES);
        let opts = FlowOptions::new().runtime_dir(&self.dir).spin(Duration::ZERO);
        let mut flow = Flow::alloc_with(LISTENER, &qos, Deadline::after(Duration::from_secs(10)), opts)
            .map_err(|e| err("Flow::alloc", e))?;
        flow.set_send_window(Some(REQUEST_REPLY_WINDOW));
        let (_, limit_pong) = limit::pingpong_sides(lines);
        let mut pongs = vec![Left(limit_pong), Right(Side { flow, wait: Wait::Spin })];
        let abort = AtomicBool::new(false);
        let mut w = Waiter::new(&abort, Instant::now() + self.deadline, self.yielding);
        pingpong::pong_loop::<64, _>(&mut pongs, &mut w)
    }
}

const LINES_FILE: &str = "lines";
const LISTENER: &str = "pong";

/// Maps the file of the limit's two lines (created zeroed when `create`).
fn map_lines(path: &std::path::Path, create: bool) -> Result<MmapMut, BenchError> {
    let os = |call, source| BenchError::Os { call, source };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(create)
        .open(path)
        .map_err(|e| os("open", e))?;
    if create {
        file.set_len(std::mem::size_of::<Lines>() as u64).map_err(|e| os("set_len", e))?;
    }
    // SAFETY: the file is the run's own (in its private directory); the two
    // processes of the run only ever access it through the atomics of
    // `Lines` (see `lines_of`), never through the map's bytes.
    let map = unsafe { MmapMut::map_mut(&file) }.map_err(|e| os("mmap", e))?;
    if map.len() < std::mem::size_of::<Lines>() {
        return Err(os("mmap", std::io::Error::other("the lines file is too short")));
    }
    Ok(map)
}

/// The limit's lines in a shared map.
fn lines_of(map: &MmapMut) -> &Lines {
    let ptr = map.as_ptr();
    assert!(
        ptr.align_offset(std::mem::align_of::<Lines>()) == 0 && map.len() >= std::mem::size_of::<Lines>(),
        "a map is page-aligned and was checked long enough"
    );
    // SAFETY: aligned and long enough (asserted); `Lines` is atomics only,
    // for which every bit pattern (zeroed at creation, or whatever the other
    // process stored) is valid, and both processes access it through them
    // alone; the reference borrows the map, which stays mapped meanwhile.
    unsafe { &*ptr.cast::<Lines>() }
}

/// Kills and reaps the child on every way out.
pub(crate) struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts this executable as a child serving `spec` (what
/// [`serve_if_peer`] reads).
pub(crate) fn spawn_peer(spec: &str) -> Result<ChildGuard, BenchError> {
    let child =
        peer_command(spec)?.spawn().map_err(|e| BenchError::Os { call: "spawn the pong process", source: e })?;
    Ok(ChildGuard(child))
}

/// Waits (checking every few milliseconds, so without taking a core) for
/// the child to end, successfully, or for the other side to fail.
pub(crate) fn reap(child: &mut ChildGuard, w: &mut Waiter<'_>) -> Result<(), BenchError> {
    loop {
        match child.0.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(BenchError::Peer { call: "the pong process", error: format!("ended with {status}") })
            }
            Ok(None) if w.aborted() => return Err(BenchError::Aborted),
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(BenchError::Os { call: "waitpid", source: e }),
        }
    }
}

/// The command that starts this executable as a child serving `spec`.
fn peer_command(spec: &str) -> Result<Command, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::Os { call: "current_exe", source: e })?;
    let mut cmd = Command::new(exe);
    // SYNC: Relaxed; see `enable_peer_binary`.
    if !PEER_BINARY.load(Ordering::Relaxed) {
        if !cfg!(test) {
            return Err(BenchError::Peer {
                call: "start the pong process",
                error: "this executable does not serve as a bench peer (the `ringflow` command does)".into(),
            });
        }
        // The crate's test binary: run only the test that serves.
        cmd.args(["--exact", "processes::tests::peer_entry", "--nocapture", "--test-threads=1"]);
    }
    cmd.env(PEER_ENV, spec).stdin(Stdio::null()).stdout(Stdio::null());
    Ok(cmd)
}

/// Case `pingpong-spin-64B-processes`: the limit and ringflow across two
/// processes, taking turns every [`pingpong::BLOCK`] round trips.
pub fn pingpong_spin(ctx: &RunCtx) -> Result<Vec<Measurement>, BenchError> {
    let dir = DirGuard::new();
    // The listener creates the run's private directory; the lines go in it.
    let opts = ListenerOptions::new().runtime_dir(dir.path()).spin(Duration::ZERO);
    let mut listener = Listener::bind_with(LISTENER, opts).map_err(|e| err("Listener::bind", e))?;
    let map = map_lines(&dir.path().join(LINES_FILE), true)?;
    let lines = lines_of(&map);
    let start = Instant::now();
    let spec = Spec {
        dir: dir.path().to_path_buf(),
        core: ctx.pins.core_of(1),
        yielding: ctx.yielding,
        deadline: ctx.hard_deadline(start) - start + Duration::from_secs(10),
    };
    let mut child = spawn_peer(&spec.encode())?;
    let mut flow = listener.accept_timeout(Duration::from_secs(10)).map_err(|e| err("Listener::accept", e))?;
    flow.set_send_window(Some(REQUEST_REPLY_WINDOW));
    let (limit_ping, _) = limit::pingpong_sides(lines);
    let pings = vec![Left(limit_ping), Right(Side { flow, wait: Wait::Spin })];
    // The harness's second core belongs to the child: this side's second
    // thread only waits for it to end (checking every few milliseconds).
    pingpong::run_alternating_remote::<64, _>(ctx, pings, |w| reap(&mut child, w))
}

#[cfg(test)]
mod tests {
    /// Serves as the child of a cross-process case when started as one (see
    /// `peer_command`); does nothing in a normal test run.
    #[test]
    fn peer_entry() {
        if let Some(code) = super::serve_if_peer() {
            assert_eq!(code, std::process::ExitCode::SUCCESS, "the pong side failed");
        }
    }
}
