//! Child test processes: this test binary re-run as one of its own
//! `#[ignore]`d tests, killed (SIGKILL) and reaped when its guard drops, and
//! killed by the kernel when the thread that spawned it ends
//! (`PR_SET_PDEATHSIG`), so a failing test leaves nothing running and
//! nothing that could write into its directory after the guard removed it
//! (create the directory guard first: locals drop in reverse order).

use std::ops::{Deref, DerefMut};
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How a child is started: which entry test, its environment, and at most
/// one descriptor handed over at a fixed number.
#[must_use = "a child starts only with `spawn`"]
pub struct ChildCommand {
    cmd: Command,
    entry: String,
    fd: Option<(RawFd, RawFd)>,
}

impl ChildCommand {
    /// This test binary, to run the ignored test `entry` alone (`--exact
    /// --ignored --nocapture --test-threads=1`), its stdout discarded (its
    /// own "test result" lines would mix with the parent's; its panics
    /// still reach stderr).
    pub fn reexec(entry: &str) -> ChildCommand {
        let exe = std::env::current_exe().unwrap_or_else(|e| panic!("this test binary's path: {e}"));
        let mut cmd = Command::new(exe);
        cmd.args([entry, "--exact", "--ignored", "--nocapture", "--test-threads=1"]).stdout(Stdio::null());
        ChildCommand { cmd, entry: entry.to_owned(), fd: None }
    }

    /// Sets an environment variable of the child.
    pub fn env(mut self, key: impl AsRef<std::ffi::OsStr>, value: impl AsRef<std::ffi::OsStr>) -> ChildCommand {
        self.cmd.env(key, value);
        self
    }

    /// Hands the parent's descriptor `fd` to the child as descriptor `at`
    /// (kept open across exec). `fd` must stay open until `spawn` returns.
    pub fn fd_at(mut self, fd: RawFd, at: RawFd) -> ChildCommand {
        self.fd = Some((fd, at));
        self
    }

    /// Starts the child.
    pub fn spawn(mut self) -> ChildProcess {
        let fd = self.fd;
        // SAFETY: the closure runs in the forked child before exec and calls
        // only prctl, fcntl and dup2, which are async-signal-safe; it touches
        // no Rust state (the two descriptor numbers are copied in).
        unsafe {
            self.cmd.pre_exec(move || {
                // A child must never outlive the test that spawned it (a
                // failed test would leave it blocked forever, holding the
                // test's pipes).
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let Some((fd, at)) = fd else { return Ok(()) };
                // dup2 onto itself would keep FD_CLOEXEC: clear it instead.
                let r = if fd == at { libc::fcntl(fd, libc::F_SETFD, 0) } else { libc::dup2(fd, at) };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = self.cmd.spawn().unwrap_or_else(|e| panic!("spawning child test {}: {e}", self.entry));
        ChildProcess { child, entry: self.entry }
    }
}

/// A running child test process; killed and reaped when dropped.
pub struct ChildProcess {
    child: Child,
    entry: String,
}

impl ChildProcess {
    /// The ignored test the child runs.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// kill -9, then reap. Harmless on a child already reaped.
    pub fn kill_and_reap(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (sleeping between looks) until the child has written `file`;
    /// panics if the child exits first or `limit` passes.
    pub fn await_marker(&mut self, file: &Path, limit: Duration) {
        let end = Instant::now() + limit;
        while !file.exists() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("child {} exited ({status}) before writing {}", self.entry, file.display());
            }
            assert!(Instant::now() < end, "child {} never wrote {}", self.entry, file.display());
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Waits (sleeping between looks) for the child to exit and asserts it
    /// succeeded; panics if `limit` passes first.
    pub fn assert_succeeds(&mut self, limit: Duration) {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                assert!(status.success(), "child {} failed ({status}); its panic is above", self.entry);
                return;
            }
            assert!(Instant::now() < end, "child {} did not finish", self.entry);
            thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Deref for ChildProcess {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl DerefMut for ChildProcess {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}
