//! Wake-up support: a futex word and a sleeper count per waiting direction.
//!
//! The protocol (an event count) lets a waiter park and a notifier wake it
//! only when someone sleeps:
//!
//! ```text
//! waiter:   token = prepare()          notifier: publish data (Release)
//!           re-check the ring                    notify() -> Wake?
//!           still nothing: futex_wait(word, token); finish()
//! ```
//!
//! `prepare` increments the sleeper count and `notify` reads it, each behind a
//! SeqCst fence (a Dekker pair): either the waiter's re-check sees the data,
//! or the notifier sees the sleeper and bumps the futex word, so the waiter's
//! `futex_wait` returns at once or is woken. No wake is ever lost, and a
//! notifier with nobody asleep pays one fence and one load of a shared line.
//!
//! In [`WakeMode::Membarrier`] the notifier's fence becomes a compiler
//! fence and the waiter pays instead, with one `membarrier` call before its
//! re-check: the commit path then never waits for its stores to drain,
//! which triples stream throughput here (see tuning.md).
//!
//! No system call is made here (this crate makes none): callers pass
//! [`WaitPoint::futex_word`] to `futex_wait` / `futex_wake` and issue the
//! membarrier when [`WaitPoint::needs_membarrier`] says so.

use crate::control::WakeMode;
use crate::sync::{fence, AtomicU64, Ordering};

#[cfg(target_endian = "big")]
compile_error!("the futex word is the low half of a 64-bit word: little-endian only");

/// Whether an operation's caller must wake sleepers (futex_wake on the
/// matching [`WaitPoint`]).
#[must_use = "a sleeper that is not woken may sleep forever"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// Nobody was asleep.
    None,
    /// Someone sleeps on the wait point: wake it.
    Wake,
}

impl Notify {
    /// True when a wake is needed.
    pub fn is_wake(self) -> bool {
        self == Notify::Wake
    }
}

/// One direction's wait point: two words in a ring's control area.
#[derive(Clone, Copy)]
pub struct WaitPoint<'a> {
    seq: &'a AtomicU64,
    sleepers: &'a AtomicU64,
    mode: WakeMode,
}

impl<'a> WaitPoint<'a> {
    pub(crate) fn with_mode(seq: &'a AtomicU64, sleepers: &'a AtomicU64, mode: WakeMode) -> Self {
        WaitPoint { seq, sleepers, mode }
    }

    /// Whether a waiter must issue `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`
    /// between [`prepare`](Self::prepare) and its re-check
    /// ([`WakeMode::Membarrier`]).
    pub fn needs_membarrier(&self) -> bool {
        self.mode == WakeMode::Membarrier
    }

    /// Announces a sleeper and returns the token to pass to `futex_wait`.
    /// The caller must re-check its condition after this and call
    /// [`finish`](Self::finish) whether or not it slept.
    pub fn prepare(&self) -> u32 {
        // SYNC: SeqCst RMW + fence; pairs with the fence in `notify` (Dekker):
        // either our later re-check sees the published data, or the notifier
        // sees this increment.
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        // SYNC: Acquire; pairs with the Release increment in `notify`, so a
        // token that includes a notification also sees its data.
        self.seq.load(Ordering::Acquire) as u32
    }

    /// Withdraws the sleeper announced by [`prepare`](Self::prepare).
    pub fn finish(&self) {
        // SYNC: Relaxed; the count is only a hint for notifiers, ordered by
        // the fences above. A peer corrupting it only causes spurious wakes.
        self.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether anyone announced sleeping here: a hint (Relaxed, no fence),
    /// for choices that are safe either way.
    #[inline]
    pub(crate) fn has_sleepers(&self) -> bool {
        // SYNC: Relaxed; a hint with no data attached (see `notify` for the
        // ordered form).
        self.sleepers.load(Ordering::Relaxed) != 0
    }

    /// Called by the side that just published: tells whether to wake.
    #[inline]
    pub(crate) fn notify(&self) -> Notify {
        #[cfg(not(loom))]
        if self.mode == WakeMode::Membarrier {
            // SYNC: compiler fence only; pairs with the waiter's membarrier,
            // which runs a full barrier on this thread's CPU between the
            // waiter's sleeper increment and its re-check (asymmetric Dekker).
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
        } else {
            // SYNC: SeqCst fence; pairs with the fence in `prepare` (Dekker).
            fence(Ordering::SeqCst);
        }
        // Loom cannot model membarrier: models always run the fenced mode.
        #[cfg(loom)]
        fence(Ordering::SeqCst);
        if self.sleepers.load(Ordering::Relaxed) == 0 {
            return Notify::None;
        }
        // SYNC: Release; pairs with the Acquire load of the token in
        // `prepare`. Changing the word makes a racing futex_wait return.
        self.seq.fetch_add(1, Ordering::Release);
        Notify::Wake
    }

    /// Wakes whoever sleeps here although nothing was published: for a third
    /// party that changed a condition the sleepers re-check (a watcher that
    /// learned the peer died). Store the condition first; then either a
    /// sleeper's re-check after `prepare` sees it, or its token predates the
    /// bump here, so its `futex_wait` returns at once or is woken by the
    /// caller's `futex_wake`.
    ///
    /// Always [`Notify::Wake`]: the caller must wake the futex word whatever
    /// the sleeper count says. The count sits in memory the peer can write
    /// (zeroed, or wrapped to zero from `u64::MAX` by a `prepare`), and a
    /// death must wake every waiter: a count may only ever cause extra wakes.
    pub fn alert(&self) -> Notify {
        // SYNC: SeqCst fence; pairs with the fence in `prepare` (Dekker), as
        // in `notify`, ordering the caller's condition store before the bump.
        fence(Ordering::SeqCst);
        // SYNC: Release; pairs with the Acquire load of the token in `prepare`:
        // a token that includes this bump also sees the caller's condition.
        self.seq.fetch_add(1, Ordering::Release);
        Notify::Wake
    }

    /// The two words of this wait point (sequence, sleepers), for a holder
    /// that must keep them without the ring (see [`from_words`](Self::from_words)).
    pub fn words(&self) -> (&'a AtomicU64, &'a AtomicU64) {
        (self.seq, self.sleepers)
    }

    /// A wait point over words obtained from [`words`](Self::words): lets a
    /// third party alert sleepers without re-reading (and re-trusting) the
    /// ring's control area, which a dying peer may have overwritten.
    pub fn from_words(seq: &'a AtomicU64, sleepers: &'a AtomicU64) -> Self {
        WaitPoint { seq, sleepers, mode: WakeMode::Fenced }
    }

    /// Current value of the futex word (its low 32 bits).
    pub fn current(&self) -> u32 {
        self.seq.load(Ordering::Acquire) as u32
    }

    /// Address of the 32-bit futex word (the low half of the sequence word on
    /// this little-endian target), for `futex_wait` / `futex_wake`.
    #[cfg(not(loom))]
    pub fn futex_word(&self) -> *const u32 {
        self.seq.as_ptr() as *const u32
    }
}
