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
//! `recv`.
//!
//! The handshake between the member and its watcher (the arm word, the
//! watcher's loop, the stop) is `ringflow_ring::ready`, model-checked with
//! loom in ring/tests/loom_ready.rs; this file gives it its system calls
//! (futex waits and wakes, the eventfd) and the member's view of the log.
//! So the descriptor can read ready for a moment after an empty receive (a
//! spurious wake), never stay ready with nothing to receive, and never stay
//! quiet with an event. A frame claimed but not yet committed (a loan being
//! written) is not an event (`broadcast::readable_at`), so a long loan does
//! not make every descriptor of the group spin.
//!
//! It must never keep a thread or a descriptor past the member: leaving
//! stops and joins the watcher, dropping closes the eventfd.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use ringflow_ring::ready::{self as protocol, WatchIo};
use ringflow_ring::{broadcast, WaitPoint};

use super::error::JoinError;
use super::join::{self, Shared, ALARM_EXPELLED, ALARM_QUIET};
use super::table;
use crate::futex;

/// How long the watcher sleeps at most when the membarrier that stands in
/// for publishers' fences failed: a late wake-up instead of a lost one.
const BARRIER_FAILED_NAP: Duration = Duration::from_millis(10);

/// What the member and its watcher share.
struct Arm {
    /// The handshake's words.
    state: protocol::Arm,
    /// The descriptor the application polls.
    event: OwnedFd,
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
        let arm = Arm { state: protocol::Arm::new(), event: join::eventfd()? };
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
                arm.state.start_fired();
            } else {
                arm.state.start_armed(cursor);
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
        if arm.state.arm(cursor, || drain(&arm.event)).is_wake() {
            // SAFETY: a word of `arm`, alive for the call.
            let _ = unsafe { futex::wake(arm.state.word().as_ptr(), 1) };
        }
    }

    /// Stops and joins the watcher (at once: it is woken), then leaves the
    /// descriptor readable (a receive now reports the end).
    pub(crate) fn stop(&mut self) {
        if let Some(Ok(Watcher { thread, shared })) = self.watcher.take() {
            let arm = &*self.arm;
            let plain_sleeper = arm.state.stop();
            // SAFETY: a word of `arm`, alive for the call.
            let _ = unsafe { futex::wake(arm.state.word().as_ptr(), 1) };
            if plain_sleeper.is_wake() {
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

/// The watcher: `ringflow_ring::ready::watch` with this member's system
/// calls.
fn watch(shared: &Shared, arm: &Arm) {
    protocol::watch(&arm.state, &Io { shared, arm });
}

/// The watcher's system calls and its view of the log.
struct Io<'a> {
    shared: &'a Shared,
    arm: &'a Arm,
}

/// The watcher announced on the log's data word.
struct Sleep<'a> {
    data: WaitPoint<'a>,
    token: u32,
    /// Set when the membarrier that stands in for publishers' fences
    /// failed: the sleep ends by itself, late rather than never.
    nap: Option<Duration>,
}

impl<'a> WatchIo for Io<'a> {
    type Sleep = Sleep<'a>;

    fn prepare(&self) -> Option<Sleep<'a>> {
        // Garbage in the log's control area: fire, a receive reports it.
        let (data, _) = broadcast::wait_points(&self.shared.mem.log).ok()?;
        let token = data.prepare();
        let nap = match crate::wait::membarrier_if_needed(&data) {
            Ok(_) => None,
            Err(_) => Some(BARRIER_FAILED_NAP),
        };
        Some(Sleep { data, token, nap })
    }

    fn finish(&self, sleep: &Sleep<'a>) {
        sleep.data.finish();
    }

    fn may_have_event(&self, at: u64) -> bool {
        may_have_event(self.shared, at)
    }

    fn sleep(&self, sleep: &Sleep<'a>, word: &AtomicU32, armed: u32) -> bool {
        let words = [
            (sleep.data.futex_word(), sleep.token),
            (word.as_ptr() as *const u32, armed),
            (self.shared.alarm.as_ptr() as *const u32, ALARM_QUIET),
        ];
        // SAFETY: the data word lies in the log, mapped while `shared`
        // lives (we hold it); the other two are local words we borrow.
        // An error: no futex_waitv (before Linux 5.16, or a seccomp filter).
        unsafe { futex::wait_any(&words, sleep.nap) }.is_ok()
    }

    fn sleep_on_data(&self, sleep: &Sleep<'a>) {
        // SAFETY: as in `sleep`.
        let _ = unsafe { futex::wait(sleep.data.futex_word(), sleep.token, sleep.nap) };
    }

    fn wait_word(&self, word: &AtomicU32, current: u32) {
        // SAFETY: a word of `arm`, alive for the call.
        let _ = unsafe { futex::wait(word.as_ptr(), current, None) };
    }

    fn signal(&self) {
        join::signal(&self.arm.event);
    }

    fn drain(&self) {
        drain(&self.arm.event);
    }
}

/// Resets the eventfd to not readable.
fn drain(fd: &OwnedFd) {
    let mut count = 0u64;
    // SAFETY: reads 8 bytes into a local from a nonblocking eventfd we own.
    let _ = unsafe { libc::read(fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
}
