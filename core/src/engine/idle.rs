//! What an engine thread does when a duty cycle found no work: the
//! [`Idler`] built from the configured [`IdleStrategy`].
//!
//! Parking uses `std::thread::park_timeout`, so [`Engine::wake`]
//! (an `unpark` of the thread) ends a park early, and a wake that arrives
//! before the park makes it return at once (the unpark token is kept).
//! The idler never sleeps without a bound and never allocates.
//!
//! [`Engine::wake`]: super::Engine::wake

use std::hint;
use std::thread;
use std::time::Duration;

use crate::config::IdleStrategy;

/// The longest single park of [`IdleStrategy::Park`]. That strategy is
/// "sleep until woken"; the bound is a safety net, so that work which
/// arrives without a wakeup (a bug elsewhere) is late, never lost. Ten idle
/// wakeups a second cost nothing measurable.
pub const PARK_CAP: Duration = Duration::from_millis(100);

/// The first park of a backoff; each following park doubles, up to the
/// configured longest park.
const FIRST_BACKOFF_PARK: Duration = Duration::from_micros(1);

/// How often an idler spun, yielded and parked since it was made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdleStats {
    /// Spin-loop hints (idle polls without giving up the CPU).
    pub spins: u64,
    /// `sched_yield` calls.
    pub yields: u64,
    /// Parks (each ended by a wake, its timeout, or spuriously).
    pub parks: u64,
}

/// One thread's idle state: where it is in its backoff and what it did.
#[derive(Debug)]
pub struct Idler {
    strategy: IdleStrategy,
    park_cap: Duration,
    /// Idle calls since work was last done, for the spin and yield steps.
    idle_calls: u64,
    /// The next backoff park.
    next_park: Duration,
    stats: IdleStats,
}

impl Idler {
    /// An idler for `strategy`; [`IdleStrategy::Park`] parks at most [`PARK_CAP`].
    pub fn new(strategy: IdleStrategy) -> Idler {
        Idler::with_park_cap(strategy, PARK_CAP)
    }

    /// An idler whose [`IdleStrategy::Park`] parks at most `park_cap`.
    pub fn with_park_cap(strategy: IdleStrategy, park_cap: Duration) -> Idler {
        Idler { strategy, park_cap, idle_calls: 0, next_park: FIRST_BACKOFF_PARK, stats: IdleStats::default() }
    }

    /// After a duty cycle that did `work_count` items: returns at once (and
    /// restarts the backoff) when there was work, else idles one step.
    pub fn idle(&mut self, work_count: usize) {
        self.idle_with(work_count, |_| {});
    }

    /// [`Idler::idle`], calling `before_park` with the counters (this park
    /// included) just before parking, so a reader sees a parked thread as
    /// parked rather than one park late.
    pub(crate) fn idle_with(&mut self, work_count: usize, before_park: impl FnOnce(IdleStats)) {
        self.idle_sleeping(work_count, before_park, thread::park_timeout);
    }

    /// [`Idler::idle_with`] that parks by calling `sleep` (which must return
    /// within the duration it is given) instead of `park_timeout`.
    pub(crate) fn idle_sleeping(
        &mut self,
        work_count: usize,
        before_park: impl FnOnce(IdleStats),
        sleep: impl FnOnce(Duration),
    ) {
        if work_count > 0 {
            self.reset();
            return;
        }
        match self.strategy {
            IdleStrategy::Spin => self.spin(),
            IdleStrategy::Park => self.park(self.park_cap, before_park, sleep),
            IdleStrategy::Backoff { spins, yields, park } => {
                let spins = u64::from(spins);
                if self.idle_calls < spins {
                    self.spin();
                } else if self.idle_calls < spins + u64::from(yields) {
                    self.stats.yields += 1;
                    thread::yield_now();
                } else {
                    let this_park = self.next_park.min(park);
                    self.next_park = this_park.saturating_mul(2).min(park);
                    self.park(this_park, before_park, sleep);
                }
                self.idle_calls = self.idle_calls.saturating_add(1);
            }
        }
    }

    /// Restarts the backoff from its first step (work was done).
    pub fn reset(&mut self) {
        self.idle_calls = 0;
        self.next_park = FIRST_BACKOFF_PARK;
    }

    /// What this idler did so far.
    pub fn stats(&self) -> IdleStats {
        self.stats
    }

    fn spin(&mut self) {
        self.stats.spins += 1;
        hint::spin_loop();
    }

    fn park(&mut self, at_most: Duration, before_park: impl FnOnce(IdleStats), sleep: impl FnOnce(Duration)) {
        self.stats.parks += 1;
        before_park(self.stats);
        sleep(at_most);
    }
}
