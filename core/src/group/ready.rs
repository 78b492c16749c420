//! A member's readiness descriptor (Corosync's `cpg_fd_get`): an eventfd
//! that becomes readable when a receive may return an event — a message, a
//! view, a loss, or an error such as an eviction — for epoll-based event
//! loops. Also the checks a wait on many ends (`FlowSet`) makes for a
//! member.
//!
//! Nobody publishes to a descriptor: a publish stays one claim whatever the
//! number of members, and a member that never asks for its descriptor costs
//! nothing but the idle eventfd. The first request starts a small watcher
//! thread for the member. It sleeps on a local word while the member is
//! not *armed*, and is a registered sleeper on the log's data word (with
//! the member's alarm word, through `futex_waitv`) only while it is armed
//! — that is when publishers pay their wake, as for a member blocked in
//! `recv`:
//!
//! ```text
//! member (receive found nothing at cursor c):   watcher (armed at c):
//!   FIRED? drain the eventfd                      prepare() on the data word
//!   at := c; word := ARMED (gen + 1); wake          re-check: armed still? an event at c?
//!                                                 yes: signal; word := FIRED (else drain)
//!                                                 no:  sleep on data, word, alarm
//! ```
//!
//! No wake is lost: the watcher re-checks after announcing itself on the
//! data word (the Dekker pair of `ringflow_ring::wake`), and a member that
//! re-arms changes the word the watcher sleeps on. The member moves the word
//! to ARMED (bumping a generation), the watcher moves it from that ARMED to
//! FIRED, after its signal: a signal either ends in FIRED (drained by the
//! member's next receive that finds nothing) or, when the member re-armed
//! meanwhile, is drained by the watcher itself. So the descriptor can read
//! ready for a moment after an empty receive (a spurious wake), never stay
//! ready with nothing to receive, and never stay quiet with an event. A frame
//! claimed but not yet committed (a loan being written) is not an event
//! (`broadcast::readable_at`), so a long loan does not make every
//! descriptor of the group spin.
//!
//! It must never keep a thread or a descriptor past the member: leaving
//! stops and joins the watcher, dropping closes the eventfd.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use ringflow_ring::broadcast;

use super::error::JoinError;
use super::join::{self, Shared, ALARM_EXPELLED, ALARM_QUIET};
use super::table;
use crate::futex;

/// Kinds of the arm word (its low two bits; the rest is a generation that
/// each arming bumps).
const ARMED: u32 = 1;
const FIRED: u32 = 2;
const STOP: u32 = 3;
const KIND: u32 = 3;
const GENERATION: u32 = 4;

/// How long the watcher sleeps at most when the membarrier that stands in
/// for publishers' fences failed: a late wake-up instead of a lost one.
const BARRIER_FAILED_NAP: Duration = Duration::from_millis(10);

/// What the member and its watcher share.
struct Arm {
    /// Kind and generation (see the module docs). Local memory.
    word: AtomicU32,
    /// The member's cursor when it armed.
    at: AtomicU64,
    /// The descriptor the application polls.
    event: OwnedFd,
    /// The watcher sleeps on the log's data word alone (no `futex_waitv`
    /// here): a stop must wake that word too.
    plain_sleep: AtomicBool,
}

/// A member's readiness descriptor and its watcher (started on first use).
pub(crate) struct Readiness {
    arm: Arc<Arm>,
    watcher: OnceLock<Result<Watcher, io::ErrorKind>>,
}

/// A running watcher: its thread, and the group it watches (to wake the
/// log's data word at a stop, see `Arm::plain_sleep`).
struct Watcher {
    thread: JoinHandle<()>,
    shared: Arc<Shared>,
}

impl Readiness {
    /// The eventfd (created with the member: the descriptor a caller gets
    /// must exist whatever happens later); no thread yet.
    pub(crate) fn new() -> Result<Readiness, JoinError> {
        let arm = Arm {
            word: AtomicU32::new(0),
            at: AtomicU64::new(0),
            event: join::eventfd()?,
            plain_sleep: AtomicBool::new(false),
        };
        Ok(Readiness { arm: Arc::new(arm), watcher: OnceLock::new() })
    }

    /// The descriptor, starting the watcher on the first call: armed at
    /// `cursor`, or readable at once if the member has `queued` events.
    /// If the watcher cannot start, the descriptor is left readable for
    /// good (an event loop wakes spuriously, never misses an event) and
    /// the error says why.
    pub(crate) fn start(&self, shared: &Arc<Shared>, cursor: u64, queued: bool) -> io::Result<BorrowedFd<'_>> {
        let started = self.watcher.get_or_init(|| {
            let arm = &self.arm;
            if queued {
                join::signal(&arm.event);
                // SYNC: Relaxed; published to the watcher by its spawn.
                arm.word.store(FIRED, Ordering::Relaxed);
            } else {
                // SYNC: Relaxed (both); published to the watcher by its spawn.
                arm.at.store(cursor, Ordering::Relaxed);
                arm.word.store(GENERATION | ARMED, Ordering::Relaxed);
            }
            let (a, s) = (self.arm.clone(), shared.clone());
            std::thread::Builder::new()
                .name("ringflow-ready".into())
                .stack_size(64 << 10)
                .spawn(move || watch(&s, &a))
                .map(|thread| Watcher { thread, shared: shared.clone() })
                .map_err(|e| {
                    join::signal(&self.arm.event);
                    e.kind()
                })
        });
        match started {
            Ok(_) => Ok(self.arm.event.as_fd()),
            Err(kind) => Err(io::Error::new(*kind, "the group's readiness watcher could not start")),
        }
    }

    /// The descriptor as it is (readable for good if the watcher failed;
    /// never readable before [`start`](Self::start)).
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.arm.event.as_fd()
    }

    /// The member's receive found nothing at `cursor` (no queued events):
    /// reset the descriptor and arm the watcher there. One load when it is
    /// armed there already; nothing when no descriptor was asked for.
    pub(crate) fn arm(&self, cursor: u64) {
        if !matches!(self.watcher.get(), Some(Ok(_))) {
            return;
        }
        let arm = &*self.arm;
        // Bounded: a compare-exchange fails only when the watcher fired the
        // arming we saw (ARMED to FIRED, once); the next pass sees FIRED.
        for _ in 0..4 {
            // SYNC: Acquire; pairs with the Release of the watcher's FIRED
            // compare-exchange: its signal, made before, is drained below.
            let w = arm.word.load(Ordering::Acquire);
            match w & KIND {
                STOP => return,
                // SYNC: Relaxed; only this member stores `at`.
                ARMED if arm.at.load(Ordering::Relaxed) == cursor => return,
                FIRED => drain(&arm.event),
                _ => {}
            }
            // SYNC: Relaxed; published by the Release below.
            arm.at.store(cursor, Ordering::Relaxed);
            let next = (w & !KIND).wrapping_add(GENERATION) | ARMED;
            // SYNC: Release; pairs with the watcher's Acquire loads of the
            // word: who sees this generation sees `at`.
            if arm.word.compare_exchange(w, next, Ordering::Release, Ordering::Relaxed).is_ok() {
                // SAFETY: a word of `arm`, alive for the call.
                let _ = unsafe { futex::wake(arm.word.as_ptr(), 1) };
                return;
            }
        }
    }

    /// Stops and joins the watcher (at once: it is woken), then leaves the
    /// descriptor readable (a receive now reports the end).
    pub(crate) fn stop(&mut self) {
        if let Some(Ok(Watcher { thread, shared })) = self.watcher.take() {
            let arm = &*self.arm;
            // SYNC: SeqCst; pairs with the SeqCst store of `plain_sleep` and
            // load of the word in `watch` (Dekker): either the watcher sees
            // STOP before it sleeps on the data word alone, or we see it
            // does and wake that word.
            arm.word.store(STOP, Ordering::SeqCst);
            // SAFETY: a word of `arm`, alive for the call.
            let _ = unsafe { futex::wake(arm.word.as_ptr(), 1) };
            // SYNC: SeqCst; see above.
            if arm.plain_sleep.load(Ordering::SeqCst) {
                if let Ok((d, _)) = broadcast::wait_points(&shared.mem.log) {
                    let _ = crate::wait::notify(d, d.alert());
                }
            }
            let _ = thread.join();
        }
        join::signal(&self.arm.event);
    }
}

impl Drop for Readiness {
    fn drop(&mut self) {
        // The group end stops it when it leaves; this covers an end torn
        // down otherwise.
        if matches!(self.watcher.get(), Some(Ok(_))) {
            self.stop();
        }
    }
}

/// Whether a member whose cursor is at `at` (with no queued events) may
/// receive an event now: it was expelled or is being evicted (receive
/// reports it), or the log holds a committed frame or a lap at its cursor.
/// A log whose control area is garbage counts as ready (receive reports
/// the corruption).
pub(crate) fn may_have_event(shared: &Shared, at: u64) -> bool {
    closed(shared) || broadcast::readable_at(&shared.mem.log, at).unwrap_or(true)
}

/// Whether the member is out of the group for good (expelled after a
/// takeover, or evicted); its receives and sends report it.
pub(crate) fn closed(shared: &Shared) -> bool {
    // SYNC: Acquire; pairs with the Release in `join::expel`.
    if shared.alarm.load(Ordering::Acquire) == ALARM_EXPELLED {
        return true;
    }
    table::entry(&shared.mem.table, shared.slot).is_some_and(|e| matches!(e.state(), table::EVICTING | table::EVICTED))
}

/// The watcher: fires the descriptor once per arming that finds an event.
fn watch(shared: &Shared, arm: &Arm) {
    loop {
        // SYNC: Acquire; pairs with the Release compare-exchange in
        // `Readiness::arm` (the armed position is visible).
        let w = arm.word.load(Ordering::Acquire);
        match w & KIND {
            STOP => return,
            ARMED => {}
            _ => {
                // SAFETY: a word of `arm`, alive for the call.
                let _ = unsafe { futex::wait(arm.word.as_ptr(), w, None) };
                continue;
            }
        }
        // SYNC: Relaxed; ordered by the Acquire above.
        let at = arm.at.load(Ordering::Relaxed);
        let Ok((data, _)) = broadcast::wait_points(&shared.mem.log) else {
            // Garbage in the log's control area: a receive reports it.
            fire(arm, w);
            continue;
        };
        // Announce, then look (a publish after the look sees us and
        // changes the data word we sleep on).
        let token = data.prepare();
        let nap = match crate::wait::membarrier_if_needed(&data) {
            Ok(_) => None,
            Err(_) => Some(BARRIER_FAILED_NAP),
        };
        // SYNC: Acquire; as above (re-armed or stopped meanwhile?).
        if arm.word.load(Ordering::Acquire) != w {
            data.finish();
            continue;
        }
        if may_have_event(shared, at) {
            data.finish();
            fire(arm, w);
            continue;
        }
        let words = [
            (data.futex_word(), token),
            (arm.word.as_ptr() as *const u32, w),
            (shared.alarm.as_ptr() as *const u32, ALARM_QUIET),
        ];
        // SAFETY: the data word lies in the log, mapped while `shared`
        // lives (we hold it); the other two are local words we borrow.
        if unsafe { futex::wait_any(&words, nap) }.is_err() {
            // No futex_waitv (before Linux 5.16, or a seccomp filter): the
            // data word alone. A re-arm needs a commit at the old position
            // (which wakes this word), an expulsion alerts it, and a stop
            // does too once it sees `plain_sleep`.
            // SYNC: SeqCst (both); the Dekker pair with `Readiness::stop`.
            arm.plain_sleep.store(true, Ordering::SeqCst);
            if arm.word.load(Ordering::SeqCst) == w {
                // SAFETY: as above.
                let _ = unsafe { futex::wait(data.futex_word(), token, nap) };
            }
        }
        data.finish();
    }
}

/// Signals the descriptor for the arming `w`, and marks it fired; a signal
/// for an arming replaced meanwhile (or a stop) is taken back.
fn fire(arm: &Arm, w: u32) {
    join::signal(&arm.event);
    let fired = (w & !KIND) | FIRED;
    // SYNC: Release; pairs with the Acquire load in `Readiness::arm`: a
    // member that sees FIRED drains the signal made above.
    if arm.word.compare_exchange(w, fired, Ordering::Release, Ordering::Relaxed).is_err() {
        drain(&arm.event);
    }
}

/// Resets the eventfd to not readable.
fn drain(fd: &OwnedFd) {
    let mut count = 0u64;
    // SAFETY: reads 8 bytes into a local from a nonblocking eventfd we own.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
}
