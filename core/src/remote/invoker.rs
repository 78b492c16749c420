//! Invoker mode (Aeron's INVOKER): no engine thread; the application's own
//! threads run the engine's duty cycle inside their flow and listener calls.
//!
//! A flow allocated through an invoker-mode [`super::RemoteEngine`] drives
//! it: after every send, on every receive that finds nothing, and while a
//! blocking call waits (where it spins for the flow's spin time, then
//! sleeps in the engine's io_uring for at most [`WAIT_CAP`] at a time).
//! A listener told of the engine (`ListenerOptions::invoker`) drives it
//! while its accept waits, since an incoming remote flow can only arrive
//! through it; the flow the engine allocated to that listener (the far end
//! of the remote flow) is found again by its segment's inode in this
//! engine's own set when the listener accepts it, and drives the engine the
//! same way. There is no process-wide list of engines.
//!
//! Two threads never run one engine at once: a caller that finds the engine
//! busy moves on (the other thread is making progress for both).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};
use std::time::{Duration, Instant};

use crate::engine::Engine;
use crate::Deadline;

/// The longest one idle wait in the engine's io_uring. Bounds how late a
/// message sent by another thread of this process (which found the engine
/// busy with this thread's wait) leaves.
pub const WAIT_CAP: Duration = Duration::from_millis(1);

/// A send runs a duty cycle only if the last one started at least this
/// long ago; otherwise its message leaves with the next call into ringflow
/// (any send, receive or wait, or [`super::RemoteEngine::invoke`]). A stream
/// of sends thus pays one socket write per this much time, not one per
/// message; a lone send, or one after a receive, leaves at once.
pub const SEND_BATCH: Duration = Duration::from_micros(5);

/// An engine in invoker mode, driven by whoever calls.
pub struct Invoker {
    /// `None` once shut down.
    engine: Mutex<Option<Engine>>,
    /// When the last duty cycle started (nanoseconds since `born`).
    last: AtomicU64,
    born: Instant,
    /// With io_uring's single issuer: the one thread that may drive it
    /// (see `this_thread`).
    owner: Option<usize>,
    /// Segments of flows this engine is allocating to listeners of this
    /// process, by (device, inode): the accepting side looks its segment up
    /// to learn that it must drive this engine.
    segments: Mutex<HashSet<SegmentKey>>,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker").field("owner", &self.owner).finish_non_exhaustive()
    }
}

impl Invoker {
    pub(crate) fn new(engine: Engine, owner: Option<usize>) -> Arc<Invoker> {
        Arc::new(Invoker {
            engine: Mutex::new(Some(engine)),
            last: AtomicU64::new(0),
            born: Instant::now(),
            owner,
            segments: Mutex::new(HashSet::new()),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// After a send: one duty cycle, unless one started less than
    /// [`SEND_BATCH`] ago.
    #[inline]
    pub fn invoke_after_send(&self) {
        let now = self.now();
        // SYNC: Relaxed (load and store); a hint for batching, no data rides on it.
        if now.saturating_sub(self.last.load(Ordering::Relaxed)) >= SEND_BATCH.as_nanos() as u64 {
            self.last.store(now, Ordering::Relaxed);
            self.invoke();
        }
    }

    /// One duty cycle, unless another thread is running one; the work done.
    #[inline]
    pub fn invoke(&self) -> usize {
        if self.owner.is_some_and(|o| o != this_thread()) {
            return 0; // a single-issuer ring: only its owner may drive it
        }
        match self.engine.try_lock() {
            Ok(mut engine) => engine.as_mut().map_or(0, Engine::invoke),
            Err(TryLockError::Poisoned(p)) => p.into_inner().as_mut().map_or(0, Engine::invoke),
            Err(TryLockError::WouldBlock) => 0,
        }
    }

    /// Sleeps in the engine's event source for at most `timeout` (capped
    /// at [`WAIT_CAP`]); yields if another thread is running the engine.
    pub fn wait(&self, timeout: Duration) {
        let timeout = timeout.min(WAIT_CAP);
        if self.owner.is_some_and(|o| o != this_thread()) {
            return std::thread::sleep(timeout.min(Duration::from_micros(50)));
        }
        let mut engine = match self.engine.try_lock() {
            Ok(engine) => engine,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return std::thread::yield_now(),
        };
        match engine.as_mut() {
            Some(engine) => engine.invoke_wait(timeout),
            None => std::thread::sleep(timeout),
        }
    }

    /// Takes the engine out to shut it down; flows that still drive it
    /// find nothing to run from then on.
    pub(crate) fn take(&self) -> Option<Engine> {
        self.engine.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    /// Drives the engine until `ready` says yes or `deadline` passes:
    /// spins (invoking) for `spin`, then sleeps in the engine between
    /// duty cycles. Returns whether `ready` said yes.
    pub fn drive_until(&self, mut ready: impl FnMut() -> bool, spin: Duration, deadline: Deadline) -> bool {
        drive_until(|| self.invoke(), |t| self.wait(t), &mut ready, spin, deadline)
    }
}

/// A cheap identity of the calling thread: the address of a thread-local
/// (unique among live threads; `thread::current()` costs more in a
/// spinning loop).
pub(crate) fn this_thread() -> usize {
    thread_local!(static MARK: u8 = const { 0 });
    MARK.with(|m| m as *const u8 as usize)
}

fn drive_until(
    mut invoke: impl FnMut() -> usize,
    mut wait: impl FnMut(Duration),
    ready: &mut dyn FnMut() -> bool,
    spin: Duration,
    deadline: Deadline,
) -> bool {
    if deadline == Deadline::Now {
        invoke();
        return ready();
    }
    // The clock is read once every CLOCK_EVERY rounds while spinning.
    const CLOCK_EVERY: u32 = 64;
    let spin_until = Instant::now() + spin;
    let mut round = 0u32;
    loop {
        let work = invoke();
        if ready() {
            return true;
        }
        round = round.wrapping_add(1);
        if work > 0 || (round % CLOCK_EVERY != 0 && spin > Duration::ZERO) {
            std::hint::spin_loop();
            continue;
        }
        let left = match deadline.remaining() {
            Some(Duration::ZERO) => return false,
            Some(left) => left,
            None => WAIT_CAP,
        };
        if Instant::now() < spin_until {
            std::hint::spin_loop();
        } else {
            wait(left);
        }
    }
}

/// A segment's (device, inode).
type SegmentKey = (u64, u64);

/// The (device, inode) of an fd.
pub(crate) fn inode_of(fd: std::os::fd::BorrowedFd<'_>) -> Option<SegmentKey> {
    use std::os::unix::fs::MetadataExt as _;
    let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    let meta = file.metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

impl Invoker {
    /// Records that the flow over the segment `key` is this engine's.
    pub(crate) fn register_segment(&self, key: SegmentKey) {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner).insert(key);
    }

    /// Forgets a segment (its allocation failed, or nobody here accepts it).
    pub(crate) fn forget_segment(&self, key: SegmentKey) {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
    }

    /// Whether the accepted flow over segment `key` is this engine's (each
    /// segment is accepted once, so the entry goes).
    pub(crate) fn claim_segment(&self, key: SegmentKey) -> bool {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner).remove(&key)
    }
}
