//! The process's peer watcher: one thread, asleep in `epoll_wait`, that
//! learns when the peer of a flow hangs up its control socket (it exited,
//! crashed or was killed) and wakes whoever sleeps on that flow.
//!
//! Parked futex waits cannot also wait for a socket, so without this a
//! receiver blocked on a dead peer would sleep forever. The thread costs
//! nothing while peers live: it is registered for hang-ups only (never for
//! data), so it wakes once per flow, when its peer goes. It must never touch
//! a flow's rings except to wake their sleepers.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Told when the peer behind a watched socket hung up.
pub trait HangUp: Send + Sync {
    /// Called on the watcher thread, once.
    fn hung_up(&self);
}

struct Watcher {
    epoll: OwnedFd,
    flows: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    hooks: HashMap<u64, Weak<dyn HangUp>>,
}

/// The process's death word: bumped and woken once per hang-up, after the
/// flow's own state word is marked gone (`FlowShared::hung_up`). A wait
/// on many flows (`FlowSet::wait`) sleeps on it once instead of on one
/// state word per flow, so a set of many flows stays within
/// `futex_waitv`'s 128 words. A death of an unrelated flow's peer only
/// wakes such a wait spuriously: its re-check of the flows decides.
static DEATHS: AtomicU32 = AtomicU32::new(0);

/// The death word and its value now, to sleep on beside other words.
///
/// Read it *before* the last check of the flows' states (the one a sleep
/// follows): a death marked after that check bumps the word after this
/// read, so the sleep finds the value changed or is woken.
pub fn deaths() -> (&'static AtomicU32, u32) {
    // SYNC: Acquire; pairs with the Release of the bump in `death`: a
    // waiter that reads a bumped value sees the state word the watcher
    // marked gone before it (so the check that follows finds the flow
    // ended). A waiter that read the old value sleeps with it: the
    // kernel's compare finds the bump, or the wake in `death` finds the
    // waiter queued.
    (&DEATHS, DEATHS.load(Ordering::Acquire))
}

/// Bumps the death word and wakes every wait asleep on it. The caller
/// has marked the dead peer's flow gone already (see [`deaths`]).
pub(crate) fn death() {
    // SYNC: Release; pairs with the Acquire in `deaths`: the flow's state
    // store, made before, is visible to a waiter that sees the bump.
    DEATHS.fetch_add(1, Ordering::Release);
    // SAFETY: a static word, alive for the whole process.
    let _ = unsafe { crate::futex::wake(DEATHS.as_ptr(), u32::MAX) };
}

static WATCHER: OnceLock<Result<Arc<Watcher>, io::ErrorKind>> = OnceLock::new();

/// A registration; dropping it stops watching (before the socket closes).
pub struct Watch {
    watcher: Arc<Watcher>,
    fd: RawFd,
    key: u64,
}

/// Watches `fd` (a connected control socket that outlives the returned
/// [`Watch`]) and calls `hook` once its peer hangs up.
pub fn watch(fd: RawFd, hook: Weak<dyn HangUp>) -> io::Result<Watch> {
    let watcher = match WATCHER.get_or_init(start) {
        Ok(w) => Arc::clone(w),
        Err(kind) => return Err(io::Error::new(*kind, "the ringflow peer watcher could not start")),
    };
    let key = {
        let mut reg = watcher.flows.lock().unwrap_or_else(|p| p.into_inner());
        reg.next += 1;
        let key = reg.next;
        reg.hooks.insert(key, hook);
        key
    };
    let mut ev =
        libc::epoll_event { events: (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLONESHOT) as u32, u64: key };
    // SAFETY: epoll_ctl reads `ev` during the call only; both fds are open.
    let r = unsafe { libc::epoll_ctl(watcher.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
    if r != 0 {
        let e = io::Error::last_os_error();
        watcher.flows.lock().unwrap_or_else(|p| p.into_inner()).hooks.remove(&key);
        return Err(e);
    }
    Ok(Watch { watcher, fd, key })
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: removing a registration; the socket is still open (the
        // Watch is dropped before it, by the contract of `watch`). A failure
        // (already removed after a hang-up) is harmless.
        unsafe { libc::epoll_ctl(self.watcher.epoll.as_raw_fd(), libc::EPOLL_CTL_DEL, self.fd, std::ptr::null_mut()) };
        self.watcher.flows.lock().unwrap_or_else(|p| p.into_inner()).hooks.remove(&self.key);
    }
}

fn start() -> Result<Arc<Watcher>, io::ErrorKind> {
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error().kind());
    }
    // SAFETY: a fresh descriptor we own.
    let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
    let watcher = Arc::new(Watcher { epoll, flows: Mutex::new(Registry::default()) });
    let w = Arc::clone(&watcher);
    std::thread::Builder::new().name("ringflow-watch".into()).spawn(move || run(&w)).map_err(|e| e.kind())?;
    Ok(watcher)
}

fn run(w: &Watcher) -> ! {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; 32];
    loop {
        // SAFETY: the buffer holds `events.len()` entries for the kernel to fill.
        let n = unsafe { libc::epoll_wait(w.epoll.as_raw_fd(), events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // Never stop watching (flows would be left unwatched): back
                // off and try again.
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            continue;
        }
        for ev in &events[..n as usize] {
            let key = ev.u64;
            let hook = w.flows.lock().unwrap_or_else(|p| p.into_inner()).hooks.remove(&key);
            if let Some(hook) = hook.and_then(|h| h.upgrade()) {
                hook.hung_up();
            }
        }
    }
}
