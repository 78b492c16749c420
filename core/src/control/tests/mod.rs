//! Tests of the control plane over real sockets and processes, and the
//! helpers they share. Each test works in its own 0700 temporary directory,
//! so tests run in parallel; none asserts on time.

mod listen;
mod messages;
mod privilege;

use super::conn::ControlConn;
use super::dir::RuntimeDir;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

/// A fresh private (0700) directory, removed with everything in it on drop.
pub(crate) struct TestDir {
    dir: ringflow_testkit::TempDir,
}

impl TestDir {
    pub(crate) fn new() -> Self {
        TestDir { dir: ringflow_testkit::temp_dir("ctl") }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn runtime(&self) -> RuntimeDir {
        RuntimeDir::at(self.path()).unwrap()
    }

    /// The directory's entries, sorted.
    pub(crate) fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> =
            fs::read_dir(self.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        names
    }
}

/// A close-on-exec pipe: (read end, write end).
pub(crate) fn pipe() -> (File, File) {
    let mut fds = [-1; 2];
    // SAFETY: `fds` is two writable ints, as pipe2 expects.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 returned two new descriptors nothing else owns.
    unsafe { (File::from(OwnedFd::from_raw_fd(fds[0])), File::from(OwnedFd::from_raw_fd(fds[1]))) }
}

/// The descriptor a forked child finds the `keep` descriptor at.
pub(crate) const CHILD_FD: RawFd = 3;

/// Forks a child that runs `child` and exits with its return value (101 if
/// it panics), without running any destructor. Before `child` runs, the
/// child moves `keep` to [`CHILD_FD`] and closes every other inherited
/// descriptor, so it cannot hold other tests' sockets or locks open; it is
/// killed if this process dies.
///
/// The test harness is multi-threaded, so `child` may only do what is safe
/// after fork: system calls and allocation (glibc's malloc is reset for the
/// child), no locks other threads might hold (no printing, no env).
pub(crate) fn fork_child(keep: Option<&impl AsRawFd>, child: impl FnOnce() -> i32) -> libc::pid_t {
    let keep = keep.map(|fd| fd.as_raw_fd());
    // SAFETY: fork has no memory preconditions; the child restricts itself
    // to the operations listed above and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid > 0 {
        return pid;
    }
    // SAFETY: in the child, single-threaded: prctl, dup2 and close_range
    // take integers and only change this process's own state.
    let setup_ok = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0
            && keep.is_none_or(|fd| fd == CHILD_FD || libc::dup2(fd, CHILD_FD) == CHILD_FD)
            && libc::syscall(libc::SYS_close_range, CHILD_FD as u32 + 1, u32::MAX, 0u32) == 0
    };
    let code =
        if setup_ok { std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101) } else { 100 };
    // SAFETY: _exit ends the child at once, running no destructors or
    // atexit handlers that could touch state shared with the parent.
    unsafe { libc::_exit(code) }
}

/// Waits for child `pid`: its exit code, or minus the signal that killed it.
pub(crate) fn wait_exit(pid: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: `status` is a writable int; `pid` is our child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    }
}

/// Blocks until the peer of `conn` hangs up, without consuming anything.
/// (`is_hung_up` alone could race with a sibling test's fork, whose child
/// holds a copy of every descriptor until it closes them.)
pub(crate) fn wait_hung_up(conn: &ControlConn) {
    let mut pfd = libc::pollfd { fd: conn.as_raw_fd(), events: libc::POLLRDHUP, revents: 0 };
    loop {
        // SAFETY: `pfd` is one valid pollfd, alive for the call.
        let r = unsafe { libc::poll(&mut pfd, 1, -1) };
        if r > 0 {
            return;
        }
        assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EINTR));
    }
}
