//! Waiting for a ring condition: spin briefly, then park on the ring's futex
//! word until a peer wakes us, the deadline passes, or the caller's check
//! says stop (peer gone). The shared building block of every blocking and
//! deadline operation; it never busy-waits past its spin budget.

use ringflow_ring::{Notify, WaitPoint};
use std::io;
use std::sync::atomic::AtomicU32;
use std::time::{Duration, Instant};

/// When to give up waiting (libdill's convention: `Now` tries once, `Never`
/// blocks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// Try once, never wait.
    Now,
    /// Wait until this instant.
    At(Instant),
    /// Wait as long as it takes.
    Never,
}

impl Deadline {
    /// A deadline `d` from now.
    pub fn after(d: Duration) -> Self {
        Instant::now().checked_add(d).map_or(Deadline::Never, Deadline::At)
    }

    /// From libdill-style milliseconds: 0 = now (try once), -1 = never,
    /// a positive count = that long from now. Any other negative value is
    /// `None` (invalid).
    pub fn from_millis(ms: i64) -> Option<Self> {
        match ms {
            0 => Some(Deadline::Now),
            -1 => Some(Deadline::Never),
            ms if ms > 0 => Some(Deadline::after(Duration::from_millis(ms as u64))),
            _ => None,
        }
    }

    /// Time left: `None` means forever.
    pub fn remaining(self) -> Option<Duration> {
        match self {
            Deadline::Now => Some(Duration::ZERO),
            Deadline::At(t) => Some(t.saturating_duration_since(Instant::now())),
            Deadline::Never => None,
        }
    }
}

/// How a wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitOutcome {
    /// The condition holds.
    Ready,
    /// The deadline passed first.
    TimedOut,
}

/// Waits until `ready()` returns true. Spins `spin` first, then parks on
/// `wait_point()`'s futex word. `ready` must read the ring afresh (it is
/// re-checked after announcing the sleep, which is what makes the protocol
/// lose no wake-up).
///
/// The futex word is in memory a peer can write: a change only makes the
/// sleep end early (then `ready` is re-checked and the wait resumes), so a
/// scribbled word can cost wake-ups, never an endless sleep past a wake.
pub fn wait_until<'a>(
    wait_point: impl FnMut() -> WaitPoint<'a>,
    ready: impl FnMut() -> bool,
    spin: Duration,
    deadline: Deadline,
) -> io::Result<WaitOutcome> {
    wait_until_with(wait_point, ready, spin, deadline, None, membarrier_if_needed)
}

/// The barrier [`wait_until`] runs after its sleeper announcement: in
/// membarrier mode the publishers skipped their fence, so the waiter pays
/// for it here, before the re-check (see `ringflow_ring::wake`).
pub fn membarrier_if_needed(wp: &WaitPoint<'_>) -> io::Result<Option<Duration>> {
    if wp.needs_membarrier() {
        crate::membarrier::heavy_barrier()?;
    }
    Ok(None)
}

/// [`wait_until`] with a local alarm word and the caller's barrier.
///
/// `alarm`: a futex word in this process's own memory and its quiet value
/// (a flow's peer state: live). The sleep also ends when it changes and is
/// woken (`futex_waitv` on both words), so a third party in this process
/// (the peer watcher) reaches the sleeper whatever a peer wrote into the
/// shared word. Where `futex_waitv` fails (a kernel before 5.16, a seccomp
/// filter) the sleep falls back to the shared word alone.
///
/// `barrier` runs after each sleeper announcement and before the re-check
/// (it replaces the membarrier `wait_until` issues in membarrier mode, so
/// it must cover that too: see [`membarrier_if_needed`]). It returns
/// `Ok(None)`, or `Ok(Some(cap))` when it could not do its job and the next
/// sleep must last at most `cap` (the re-check then comes soon whatever the
/// peer did); an error ends the wait.
pub fn wait_until_with<'a>(
    mut wait_point: impl FnMut() -> WaitPoint<'a>,
    mut ready: impl FnMut() -> bool,
    spin: Duration,
    deadline: Deadline,
    alarm: Option<(&AtomicU32, u32)>,
    mut barrier: impl FnMut(&WaitPoint<'a>) -> io::Result<Option<Duration>>,
) -> io::Result<WaitOutcome> {
    if ready() {
        return Ok(WaitOutcome::Ready);
    }
    if deadline == Deadline::Now {
        return Ok(WaitOutcome::TimedOut);
    }
    let spin_until = Instant::now() + spin;
    while Instant::now() < spin_until {
        std::hint::spin_loop();
        if ready() {
            return Ok(WaitOutcome::Ready);
        }
    }
    loop {
        let mut timeout = deadline.remaining();
        if timeout == Some(Duration::ZERO) {
            return Ok(if ready() { WaitOutcome::Ready } else { WaitOutcome::TimedOut });
        }
        let wp = wait_point();
        let token = wp.prepare();
        match barrier(&wp) {
            Ok(None) => {}
            Ok(Some(cap)) => timeout = Some(timeout.map_or(cap, |t| t.min(cap))),
            Err(e) => {
                wp.finish();
                return Err(e);
            }
        }
        if ready() {
            wp.finish();
            return Ok(WaitOutcome::Ready);
        }
        let r = match alarm {
            Some((word, quiet)) => {
                let words = [(wp.futex_word(), token), (word.as_ptr() as *const u32, quiet)];
                // SAFETY: the first word lives in the ring's region, which
                // outlives this call (the WaitPoint borrows it); the second
                // is borrowed for the call.
                match unsafe { crate::futex::wait_any(&words, timeout) } {
                    // No futex_waitv (ENOSYS before 5.16, or a seccomp
                    // filter): the shared word alone, as `wait_until`.
                    // SAFETY: as below.
                    Err(_) => unsafe { crate::futex::wait(wp.futex_word(), token, timeout) },
                    r => r,
                }
            }
            // SAFETY: the futex word lives in the ring's region, which
            // outlives this call (the WaitPoint borrows it).
            None => unsafe { crate::futex::wait(wp.futex_word(), token, timeout) },
        };
        wp.finish();
        r?;
        if ready() {
            return Ok(WaitOutcome::Ready);
        }
    }
}

/// Performs the wake a ring operation asked for.
pub fn notify(wait_point: WaitPoint<'_>, notify: Notify) -> io::Result<()> {
    if notify.is_wake() {
        // SAFETY: the word lives in the ring's region, borrowed by the
        // WaitPoint for the duration of the call.
        unsafe { crate::futex::wake(wait_point.futex_word(), u32::MAX) }?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringflow_ring::spsc::{self, Consumer};
    use ringflow_ring::HeapRegion;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    /// A sleeper with an alarm word is woken through that word alone: nobody
    /// bumps or wakes the shared word (as when a peer restored it after the
    /// watcher's alert), yet the wait ends, long before its deadline.
    #[test]
    fn the_alarm_word_wakes_a_sleeper_whatever_the_shared_words_say() {
        let region = Arc::new(HeapRegion::new(spsc::region_len(64)));
        // SAFETY: a fresh region: no side attached, nobody else uses it yet.
        unsafe { spsc::init(&*region) }.unwrap();
        let rx = Consumer::attach(region).unwrap();
        let alarm = Arc::new(AtomicU32::new(0));
        let waker = {
            let alarm = alarm.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                // SYNC: Release; pairs with the Acquire in the ready check.
                alarm.store(1, Ordering::Release);
                // SAFETY: `alarm` is a live, aligned u32.
                unsafe { crate::futex::wake(alarm.as_ptr(), u32::MAX) }.unwrap();
            })
        };
        let outcome = wait_until_with(
            || rx.data_wait(),
            // SYNC: Acquire; pairs with the waker's Release store.
            || alarm.load(Ordering::Acquire) != 0,
            Duration::ZERO,
            Deadline::after(Duration::from_secs(60)),
            Some((&alarm, 0)),
            membarrier_if_needed,
        )
        .unwrap();
        assert_eq!(outcome, WaitOutcome::Ready);
        waker.join().unwrap();
    }
}
