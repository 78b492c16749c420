//! The readiness watcher handshake: how a receiver that hands an event
//! loop a descriptor (a group member's eventfd, Corosync's `cpg_fd_get`)
//! gets it signalled when an event arrives at its cursor, by a watcher
//! thread of its own, without publishers paying anything per descriptor.
//!
//! The receiver and its watcher share an [`Arm`]: a word holding a kind
//! (ARMED, FIRED, STOP) and a generation that each arming bumps, and the
//! cursor the receiver armed at. The watcher is [`watch`], generic over
//! what it does outside memory ([`WatchIo`]: its sleeps, the log's wait
//! point, the descriptor), so the same loop runs in the group code and in
//! the loom model (ring/tests/loom_ready.rs).
//!
//! ```text
//! receiver (found nothing at cursor c):   watcher (armed at c):
//!   FIRED? drain the descriptor             prepare() on the data word
//!   at := c; word := ARMED (gen + 1); wake  re-check: armed still? an event at c?
//!                                           yes: signal; word := FIRED (else drain)
//!                                           no:  sleep on data and word
//! ```
//!
//! No wake is lost: the watcher re-checks after announcing itself on the
//! data word (the Dekker pair of [`crate::wake`]), and a receiver that
//! re-arms changes the word the watcher sleeps on. The receiver moves the
//! word to ARMED (bumping the generation), the watcher moves it from that
//! ARMED to FIRED, after its signal: a signal either ends in FIRED (drained
//! by the receiver's next arming) or, when the receiver re-armed meanwhile,
//! is drained by the watcher itself. So the descriptor can read ready for a
//! moment after an empty receive (a spurious wake), never stay ready with
//! nothing to receive, and never stay quiet with an event.
//!
//! Where the watcher cannot sleep on both words at once (no `futex_waitv`)
//! it sleeps on the data word alone, which a re-arm does not wake (a
//! re-arm needs a commit at the old position, and that wakes the data
//! word) but a stop must: [`Arm::stop`] and the watcher make a Dekker pair
//! over the STOP word and a `plain_sleep` flag, so either the watcher sees
//! STOP before it sleeps or the stop sees it sleeps and has the data word
//! woken. The pair uses SeqCst fences, which loom models (it treats SeqCst
//! accesses as AcqRel).
//!
//! The [`Arm`] is the receiver's own memory, shared with no other process.
//! Nothing here makes a system call: [`WatchIo`] does, in the caller.

use crate::sync::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use crate::Notify;

/// Kinds of the arm word (its low two bits; the rest is a generation that
/// each arming bumps).
const ARMED: u32 = 1;
const FIRED: u32 = 2;
const STOP: u32 = 3;
const KIND: u32 = 3;
const GENERATION: u32 = 4;

/// What a receiver and its watcher share.
pub struct Arm {
    /// Kind and generation (see the module docs); the watcher's futex word.
    word: AtomicU32,
    /// The receiver's cursor when it armed.
    at: AtomicU64,
    /// The watcher sleeps on the data word alone: a stop must wake it.
    plain_sleep: AtomicBool,
}

impl Default for Arm {
    fn default() -> Self {
        Arm::new()
    }
}

impl Arm {
    /// Neither armed nor fired: [`start_armed`](Self::start_armed) or
    /// [`start_fired`](Self::start_fired) before the watcher starts.
    pub fn new() -> Arm {
        Arm { word: AtomicU32::new(0), at: AtomicU64::new(0), plain_sleep: AtomicBool::new(false) }
    }

    /// Before the watcher starts: armed at `cursor`.
    pub fn start_armed(&self, cursor: u64) {
        // SYNC: Relaxed (both); published to the watcher by its spawn.
        self.at.store(cursor, Ordering::Relaxed);
        self.word.store(GENERATION | ARMED, Ordering::Relaxed);
    }

    /// Before the watcher starts: fired (the caller signalled the
    /// descriptor, the receiver has events already).
    pub fn start_fired(&self) {
        // SYNC: Relaxed; published to the watcher by its spawn.
        self.word.store(FIRED, Ordering::Relaxed);
    }

    /// The watcher's futex word: [`arm`](Self::arm) and
    /// [`stop`](Self::stop) change it, and their callers wake it.
    pub fn word(&self) -> &AtomicU32 {
        &self.word
    }

    /// Receiver: its receive found nothing at `cursor`; arms the watcher
    /// there, calling `drain` to reset the descriptor if the last arming
    /// fired. [`Notify::Wake`]: the caller wakes [`word`](Self::word).
    /// Nothing to do when armed there already, or stopped.
    pub fn arm(&self, cursor: u64, mut drain: impl FnMut()) -> Notify {
        // Bounded: a compare-exchange fails only when the watcher fired the
        // arming we saw (ARMED to FIRED, once); the next pass sees FIRED.
        for _ in 0..4 {
            // SYNC: Acquire; pairs with the Release of the watcher's FIRED
            // compare-exchange: its signal, made before, is drained below.
            let w = self.word.load(Ordering::Acquire);
            match w & KIND {
                STOP => return Notify::None,
                // SYNC: Relaxed; only the receiver stores `at`.
                ARMED if self.at.load(Ordering::Relaxed) == cursor => return Notify::None,
                FIRED => drain(),
                _ => {}
            }
            // SYNC: Relaxed; published by the Release below.
            self.at.store(cursor, Ordering::Relaxed);
            let next = (w & !KIND).wrapping_add(GENERATION) | ARMED;
            // SYNC: Release; pairs with the watcher's Acquire loads of the
            // word: who sees this generation sees `at`.
            if self.word.compare_exchange(w, next, Ordering::Release, Ordering::Relaxed).is_ok() {
                return Notify::Wake;
            }
        }
        Notify::None
    }

    /// Receiver: stops the watcher. The caller then wakes
    /// [`word`](Self::word), and on [`Notify::Wake`] also the data word
    /// (the watcher may sleep on it alone), then joins the watcher.
    pub fn stop(&self) -> Notify {
        // SYNC: SeqCst swap + fence; pairs with the fence after the store
        // of `plain_sleep` in `watch` (Dekker): either the watcher's load of
        // the word sees STOP before it sleeps on the data word alone, or our
        // load below sees it does. A swap, not a store: the same instruction
        // on x86 (a SeqCst store is an xchg), and loom 0.7 modelled a plain
        // store racing the watcher's FIRED compare-exchange with the STOP
        // lost behind it (an execution C11 forbids: a deadlock reported in
        // a correct stop).
        let _ = self.word.swap(STOP, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // SYNC: SeqCst; see above.
        if self.plain_sleep.load(Ordering::SeqCst) {
            Notify::Wake
        } else {
            Notify::None
        }
    }
}

/// What the watcher does outside memory: for a group member, futex waits,
/// the group log's data wait point, the member's eventfd; for the loom
/// model, their models.
pub trait WatchIo {
    /// An announced sleeper on the data word (its token, and whatever the
    /// sleep needs).
    type Sleep;

    /// Announces the watcher on the data word (`WaitPoint::prepare`, and
    /// the heavy barrier where the mode asks for it). `None` when the data
    /// word cannot be found (garbage in the log): the watcher fires, and
    /// the receive reports why.
    fn prepare(&self) -> Option<Self::Sleep>;

    /// Withdraws the sleeper announced by [`prepare`](Self::prepare).
    fn finish(&self, sleep: &Self::Sleep);

    /// Whether a receive at `at` may return an event now.
    fn may_have_event(&self, at: u64) -> bool;

    /// Sleeps until the data word leaves the sleep's token or `word`
    /// leaves `armed` (or is woken; an implementation may also wake for
    /// words of its own, as a member's alarm); false if it cannot wait on
    /// both words at once (it then did not sleep).
    fn sleep(&self, sleep: &Self::Sleep, word: &AtomicU32, armed: u32) -> bool;

    /// Sleeps on the data word alone, until it leaves the sleep's token.
    fn sleep_on_data(&self, sleep: &Self::Sleep);

    /// Sleeps until `word` leaves `current` (neither armed nor stopped).
    fn wait_word(&self, word: &AtomicU32, current: u32);

    /// Makes the descriptor readable.
    fn signal(&self);

    /// Resets the descriptor to not readable.
    fn drain(&self);
}

/// The watcher: fires the descriptor once per arming that finds an event;
/// returns once the receiver stopped it.
pub fn watch(arm: &Arm, io: &impl WatchIo) {
    loop {
        // SYNC: Acquire; pairs with the Release compare-exchange in
        // `Arm::arm` (the armed position is visible).
        let w = arm.word.load(Ordering::Acquire);
        match w & KIND {
            STOP => return,
            ARMED => {}
            _ => {
                io.wait_word(&arm.word, w);
                continue;
            }
        }
        // SYNC: Relaxed; ordered by the Acquire above.
        let at = arm.at.load(Ordering::Relaxed);
        // Announce, then look (a publish after the look sees us and
        // changes the data word we sleep on).
        let Some(sleep) = io.prepare() else {
            fire(arm, io, w);
            continue;
        };
        // SYNC: Acquire; as above (re-armed or stopped meanwhile?).
        if arm.word.load(Ordering::Acquire) != w {
            io.finish(&sleep);
            continue;
        }
        if io.may_have_event(at) {
            io.finish(&sleep);
            fire(arm, io, w);
            continue;
        }
        if !io.sleep(&sleep, &arm.word, w) {
            // The data word alone. A re-arm needs a commit at the old
            // position (which wakes it), an expulsion alerts it, and a stop
            // does too once it sees `plain_sleep`.
            // SYNC: SeqCst store + fence; the Dekker pair with `Arm::stop`.
            arm.plain_sleep.store(true, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            // SYNC: SeqCst; see above.
            if arm.word.load(Ordering::SeqCst) == w {
                io.sleep_on_data(&sleep);
            }
        }
        io.finish(&sleep);
    }
}

/// Signals the descriptor for the arming `w`, and marks it fired; a signal
/// for an arming replaced meanwhile (or a stop) is taken back.
fn fire(arm: &Arm, io: &impl WatchIo, w: u32) {
    io.signal();
    let fired = (w & !KIND) | FIRED;
    // SYNC: Release; pairs with the Acquire load in `Arm::arm`: a receiver
    // that sees FIRED drains the signal made above.
    if arm.word.compare_exchange(w, fired, Ordering::Release, Ordering::Relaxed).is_err() {
        io.drain();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn arming_again_at_the_same_cursor_costs_nothing() {
        let arm = Arm::new();
        arm.start_armed(8);
        let drained = Cell::new(0);
        assert_eq!(arm.arm(8, || drained.set(drained.get() + 1)), Notify::None);
        assert_eq!(arm.arm(16, || drained.set(drained.get() + 1)), Notify::Wake);
        assert_eq!(drained.get(), 0, "nothing fired: nothing to drain");
    }

    #[test]
    fn a_fired_arming_is_drained_by_the_next_one_and_a_stop_ends_arming() {
        let arm = Arm::new();
        arm.start_fired();
        let drained = Cell::new(0);
        assert_eq!(arm.arm(8, || drained.set(drained.get() + 1)), Notify::Wake);
        assert_eq!(drained.get(), 1);
        assert_eq!(arm.stop(), Notify::None, "the watcher never slept on the data word alone");
        assert_eq!(arm.arm(16, || drained.set(drained.get() + 1)), Notify::None);
    }
}
