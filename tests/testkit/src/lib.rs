//! Test support shared by ringflow's test suites: temporary directories
//! that remove themselves, a private runtime directory for code that uses
//! the default one, and skips for kernel features a machine may refuse.
//!
//! Every test removes what it creates, also when it fails: a directory is a
//! [`TempDir`] guard that removes it on drop, and a panicking test unwinds
//! through its drop. A child process a test spawns or forks must work in
//! its parent's directory and never make one of its own, so that killing it
//! leaves nothing behind. Everything lives under [`std::env::temp_dir`], so
//! a run with `TMPDIR` set stays inside that directory.
//!
//! This crate is a dev-dependency only; it must never reach a library or
//! binary target.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use tempfile::TempDir;

mod alloc;
pub use alloc::{largest_alloc, thread_allocs, LargestAlloc, ThreadCounting};

mod child;
pub use child::{ChildCommand, ChildProcess};

mod proxy;
pub use proxy::Proxy;

/// The variable naming the runtime directory (`ringflow_core::control::RUNTIME_DIR_ENV`;
/// repeated here so this crate depends on none of ringflow's).
const RUNTIME_DIR_ENV: &str = "RINGFLOW_RUNTIME_DIR";

/// A fresh private (0700) directory `ringflow-<tag>-XXXXXX` in the temporary
/// directory, removed with everything in it when the guard drops.
///
/// Keep `tag` short: a socket path in it (directory, name, `.sock`) must
/// fit in the 107 bytes of `sun_path`.
pub fn temp_dir(tag: &str) -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    tempfile::Builder::new()
        .prefix(&format!("ringflow-{tag}-"))
        // A runtime directory must grant nobody else anything; the umask can
        // only take bits away.
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir()
        .unwrap_or_else(|e| panic!("creating a temporary directory in {}: {e}", std::env::temp_dir().display()))
}

/// Points `RINGFLOW_RUNTIME_DIR` of this process, and of every child it
/// spawns afterwards, at a private directory removed when the process exits
/// through `exit` (the test harness does, whether its tests pass or fail; a
/// process killed by a signal leaves it behind). Code that uses the default
/// runtime directory (an engine's statistics, `Flow::pair`, `Flow::alloc`
/// without options) then leaves nothing in the user's own.
///
/// Call it at the start of every test that may reach the default runtime
/// directory, and before spawning a child. Idempotent. When the variable is
/// already set (in a child: by its parent), that directory is used and left
/// alone: its owner removes it.
pub fn isolate_runtime_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os(RUNTIME_DIR_ENV).filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        let dir = temp_dir("runtime").keep();
        // Setting a variable races with C code reading the environment on
        // another thread at that instant; the tests read it through
        // `std::env`, which serialises with this, and set it once, early.
        std::env::set_var(RUNTIME_DIR_ENV, &dir);
        let _ = OWNED_RUNTIME_DIR.set(dir.clone());
        // SAFETY: registers a plain `extern "C" fn` with no arguments.
        unsafe { libc::atexit(remove_owned_runtime_dir) };
        dir
    })
}

/// The runtime directory this process made, to remove at exit.
static OWNED_RUNTIME_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_owned_runtime_dir() {
    if let Some(dir) = OWNED_RUNTIME_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The calling thread's kernel id, for [`wait_until_blocked`].
pub fn thread_id() -> i32 {
    // SAFETY: gettid takes no arguments, cannot fail and touches no memory.
    unsafe { libc::gettid() }
}

/// Waits until thread `tid` of this process sleeps in the kernel (state
/// `S`: a futex wait, a poll, an accept), so that a test's event reaches a
/// call that really blocks, instead of one that has not started yet. (A
/// thread seen in another brief sleep on its way there only makes the test
/// check less, never fail.) Polls every millisecond; panics after 30 s, a
/// hang guard, not a measurement.
pub fn wait_until_blocked(tid: i32) {
    let path = format!("/proc/self/task/{tid}/stat");
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // "tid (comm) S ...": the name may hold spaces and parentheses.
        let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
        if state == Some("S") {
            return;
        }
        assert!(std::time::Instant::now() < guard, "thread {tid} never blocked (state {state:?})");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Polls `condition` every millisecond until it holds; panics with `what`
/// after 30 s, a hang guard, not a measurement.
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition() {
        assert!(std::time::Instant::now() < guard, "gave up waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Why this kernel refuses io_uring, or `None` when a ring can be set up.
///
/// Only refusals count (`ENOSYS`: no io_uring in this kernel; `EPERM`/`EACCES`:
/// a seccomp filter, a container or `kernel.io_uring_disabled`; `EINVAL`: a
/// kernel too old for the setup); any other failure is not a reason to skip,
/// so the test goes on and reports it.
pub fn uring_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| match io_uring::IoUring::new(8) {
        Ok(_) => None,
        Err(e) => refusal(&e),
    })
    .as_deref()
}

/// Why `futex_waitv` (Linux 5.16, behind `FlowSet::wait`) is missing, or
/// `None` when the kernel has it.
pub fn futex_waitv_unavailable() -> Option<&'static str> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        // An empty list is refused with EINVAL by a kernel that has the call,
        // with ENOSYS (or a seccomp EPERM) by one that does not.
        // SAFETY: a null list of zero waiters and no timeout: the kernel
        // reads no memory of ours.
        let r = unsafe {
            libc::syscall(libc::SYS_futex_waitv, std::ptr::null::<u8>(), 0u32, 0u32, std::ptr::null::<u8>(), 0)
        };
        let err = std::io::Error::last_os_error();
        if r < 0 && matches!(err.raw_os_error(), Some(libc::ENOSYS | libc::EPERM | libc::EACCES)) {
            Some(format!("futex_waitv: {err}"))
        } else {
            None
        }
    })
    .as_deref()
}

/// xorshift64*: a seeded, reproducible stream, for tests that print their
/// seed so that a failure replays.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value below `n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A value a hostile peer might forge a shared word to: small, huge,
    /// around powers of two, or random.
    pub fn forged(&mut self) -> u64 {
        match self.next_u64() % 6 {
            0 => 0,
            1 => u64::MAX - self.next_u64() % 4,
            2 => 1 << (self.next_u64() % 64),
            3 => (1 << (self.next_u64() % 64)) - 1,
            4 => self.next_u64() % 4096,
            _ => self.next_u64(),
        }
    }
}

/// The skip reason for an error from setting up an io_uring, if it is a
/// refusal by the kernel (see [`uring_unavailable`]).
pub fn refusal(e: &std::io::Error) -> Option<String> {
    let why = match e.raw_os_error()? {
        libc::ENOSYS => "the kernel has no io_uring",
        libc::EPERM | libc::EACCES => "not permitted (seccomp, a container, or kernel.io_uring_disabled)",
        libc::EINVAL => "the kernel refuses this setup (too old)",
        _ => return None,
    };
    Some(format!("{why}: {e}"))
}

/// Returns from the calling test, printing `skipped: io_uring unavailable:
/// <reason>`, when the kernel refuses io_uring (see [`uring_unavailable`]).
#[macro_export]
macro_rules! require_uring {
    () => {
        if let Some(why) = $crate::uring_unavailable() {
            eprintln!("skipped: io_uring unavailable: {why}");
            return;
        }
    };
}

/// Returns from the calling test, printing `skipped: futex_waitv
/// unavailable: <reason>`, when the kernel lacks `futex_waitv`.
#[macro_export]
macro_rules! require_futex_waitv {
    () => {
        if let Some(why) = $crate::futex_waitv_unavailable() {
            eprintln!("skipped: futex_waitv unavailable: {why}");
            return;
        }
    };
}

/// `n` distinct loopback ports for servers a test starts later (engines
/// whose cluster numbers its nodes by their fixed addresses), free a
/// moment ago: bound together, then let go. Taken below the kernel's
/// ephemeral range (`net.ipv4.ip_local_port_range`), so that no outgoing
/// connection (an engine dialling its peers) takes one before its server
/// binds it, as a port the kernel handed out for `:0` could be; picked at
/// random there, so that tests running at once rarely try the same.
pub fn listen_ports(n: usize) -> Vec<u16> {
    use std::net::TcpListener;
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|w| w.parse::<u16>().ok()))
        .unwrap_or(32768);
    let (from, to) = (10_000u16, low.max(10_001));
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
            ^ (u64::from(std::process::id()) << 32);
    let mut held: Vec<TcpListener> = Vec::with_capacity(n);
    for _ in 0..10_000 {
        if held.len() == n {
            break;
        }
        // xorshift64: spread over the range, different in each process.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = from + (seed % u64::from(to - from)) as u16;
        if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
            held.push(l);
        }
    }
    if held.len() < n {
        // The low range is full: the kernel's own, as before.
        held.extend((held.len()..n).map(|_| TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")));
    }
    held.iter().map(|l| l.local_addr().expect("a bound address").port()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_is_private_and_removed_on_drop_even_in_a_panic() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("kit");
        let path = dir.path().to_path_buf();
        assert!(path.starts_with(std::env::temp_dir()));
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::create_dir(path.join("inner")).unwrap();
        std::fs::write(path.join("inner/file"), b"x").unwrap();
        let panicked = std::panic::catch_unwind(move || {
            let _dir = dir;
            panic!("a failing test");
        });
        assert!(panicked.is_err());
        assert!(!path.exists(), "{} outlived its guard", path.display());
    }

    #[test]
    fn a_thread_blocked_in_the_kernel_is_seen_blocked() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            tid_tx.send(thread_id()).unwrap();
            rx.recv().is_ok()
        });
        wait_until_blocked(tid_rx.recv().unwrap());
        tx.send(()).unwrap();
        assert!(t.join().unwrap());
        let mut polls = 0;
        wait_for("three polls", || {
            polls += 1;
            polls == 3
        });
    }

    /// In a child process: isolates its runtime directory, writes into it
    /// and says where it is.
    #[test]
    #[ignore = "child of the runtime-directory tests"]
    fn child_isolates_its_runtime_dir() {
        if std::env::var_os("RINGFLOW_TESTKIT_CHILD").is_none() {
            return;
        }
        let dir = isolate_runtime_dir();
        std::fs::write(dir.join("stats-like"), b"x").unwrap();
        println!("runtime dir: {}", dir.display());
    }

    /// Runs [`child_isolates_its_runtime_dir`] with `runtime` as its
    /// `RINGFLOW_RUNTIME_DIR` (unset for `None`): the directory it used.
    fn run_child(runtime: Option<&Path>) -> PathBuf {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args(["tests::child_isolates_its_runtime_dir", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("RINGFLOW_TESTKIT_CHILD", "1");
        match runtime {
            Some(dir) => cmd.env(RUNTIME_DIR_ENV, dir),
            None => cmd.env_remove(RUNTIME_DIR_ENV),
        };
        let out = cmd.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "child failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let line = stdout.lines().find_map(|l| Some(l.split_once("runtime dir: ")?.1)).expect("the child's directory");
        PathBuf::from(line)
    }

    #[test]
    fn a_private_runtime_dir_is_removed_at_exit_and_an_inherited_one_is_kept() {
        let own = run_child(None);
        assert!(own.starts_with(std::env::temp_dir()), "{}", own.display());
        assert!(!own.exists(), "{} outlived the process that made it", own.display());
        let parents = temp_dir("kit-parent");
        assert_eq!(run_child(Some(parents.path())), parents.path());
        assert!(parents.path().join("stats-like").exists(), "a child removed its parent's directory");
    }

    #[test]
    fn refusals_are_told_apart_from_other_failures() {
        for errno in [libc::ENOSYS, libc::EPERM, libc::EACCES, libc::EINVAL] {
            let why = refusal(&std::io::Error::from_raw_os_error(errno)).expect("a refusal");
            assert!(why.contains(&std::io::Error::from_raw_os_error(errno).to_string()), "{why}");
        }
        for errno in [libc::ENOMEM, libc::EMFILE, libc::EFAULT] {
            assert_eq!(refusal(&std::io::Error::from_raw_os_error(errno)), None);
        }
        assert_eq!(refusal(&std::io::Error::other("not the kernel's")), None);
    }
}
